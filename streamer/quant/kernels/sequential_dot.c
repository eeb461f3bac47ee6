/* The arithmetic contract's fp16 dense sum for a batch of streams, compiled for the host.
 *
 * docs/arithmetic-contract.md: every row's sum is sequential in binary32,
 *     acc = term[0]; for k = 1 .. terms-1: acc = f32(acc + f32(w[k][r] * x[k]))
 * and this file keeps exactly that order for every (stream, row). The speed comes only from
 * doing many independent sums at once: a tile of rows for two streams is held in registers
 * while the terms go by, so each weight is loaded once per two streams and the compiler
 * vectorises across the rows. Nothing is reassociated: build without -ffast-math and with
 * -ffp-contract=off (streamer/quant/compiled.py does), and the Python side still checks the
 * result against the plain definition once per process before using it.
 *
 * Layout (all float32, C order):
 *   terms_t  (terms, rows)    the terms' weights, term-major (biases first, as terms times 1.0)
 *   inputs   (streams, terms) each stream's multipliers of those terms (1.0 for the biases)
 *   out      (streams, rows)
 */
#include <float.h>
#include <stddef.h>

#if FLT_EVAL_METHOD != 0
#error "every binary32 operation must round to binary32 (FLT_EVAL_METHOD 0)"
#endif

enum { TILE_ROWS = 32, TILE_STREAMS = 2 };

/* Where the compiler and C library can dispatch at load time, an AVX2 copy beside the
 * baseline one; both round every operation the same way, only the vector width differs. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(SEQUENTIAL_DOT_NO_CLONES)
#define WIDEST_VECTORS __attribute__((target_clones("avx2", "default")))
#else
#define WIDEST_VECTORS
#endif

#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* One tile: rows r0 .. r0+nr-1 of streams b0 .. b0+nb-1 (nr <= TILE_ROWS, nb <= TILE_STREAMS). */
ALWAYS_INLINE void sum_tile(const float *restrict terms_t, size_t terms, size_t rows,
                            const float *restrict inputs, float *restrict out,
                            size_t r0, size_t nr, size_t b0, size_t nb)
{
    float acc[TILE_STREAMS][TILE_ROWS];
    for (size_t b = 0; b < nb; b++)
        for (size_t r = 0; r < nr; r++)
            acc[b][r] = terms_t[r0 + r] * inputs[(b0 + b) * terms];
    for (size_t k = 1; k < terms; k++) {
        const float *restrict w = terms_t + k * rows + r0;
        for (size_t b = 0; b < nb; b++) {
            const float x = inputs[(b0 + b) * terms + k];
            for (size_t r = 0; r < nr; r++)
                acc[b][r] = acc[b][r] + w[r] * x;
        }
    }
    for (size_t b = 0; b < nb; b++)
        for (size_t r = 0; r < nr; r++)
            out[(b0 + b) * rows + r0 + r] = acc[b][r];
}

WIDEST_VECTORS
void sequential_dot(const float *restrict terms_t, size_t terms, size_t rows,
                    const float *restrict inputs, size_t streams, float *restrict out)
{
    if (terms == 0)
        return;
    for (size_t b0 = 0; b0 < streams; b0 += TILE_STREAMS) {
        const size_t nb = streams - b0 < TILE_STREAMS ? streams - b0 : TILE_STREAMS;
        for (size_t r0 = 0; r0 < rows; r0 += TILE_ROWS) {
            const size_t nr = rows - r0 < TILE_ROWS ? rows - r0 : TILE_ROWS;
            /* Full tiles with constant bounds, so that they are unrolled and kept in registers. */
            if (nb == TILE_STREAMS && nr == TILE_ROWS)
                sum_tile(terms_t, terms, rows, inputs, out, r0, TILE_ROWS, b0, TILE_STREAMS);
            else if (nb == 1 && nr == TILE_ROWS)
                sum_tile(terms_t, terms, rows, inputs, out, r0, TILE_ROWS, b0, 1);
            else
                sum_tile(terms_t, terms, rows, inputs, out, r0, nr, b0, nb);
        }
    }
}
