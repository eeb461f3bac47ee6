/* kernels.h - one compute kernel per source file (src/<name>.c), each following
 * docs/arithmetic-contract.md to the bit. The cluster splits every layer by output rows: a
 * "rows" kernel computes whole dot products for rows [lo, hi) of a tile held in L1 (row 0 of
 * the tile's arrays = the tile's first row); a "units" kernel does the elementwise gate work
 * for hidden units [j0, j1). No kernel splits a dot product, so each row's accumulation order
 * is the contract's (biases first, k ascending) whatever the core count.
 *
 * Activations are passed as binary32 arrays holding binary16 values (fp16 path) or as int8 /
 * int16 codes (int8 path). Weights stay in their storage type (binary16 bits, int8).
 */
#ifndef TDN_KERNELS_H
#define TDN_KERNELS_H

#include <stdint.h>

/* Output stage of a dense layer. */
typedef enum {
    DENSE_RELU_F16 = 0,  /* y = f16(max(acc, 0))      fc0/fc1 in fp16 storage          */
    DENSE_RELU_F32 = 1,  /* y = max(pre, 0), binary32  fc0/fc1 in int8 storage          */
    DENSE_SIGMOID_F16 = 2 /* y = f16(sigmoid(acc))     fc2: the mask                    */
} dense_act;

/* dense_fp16.c */
void dense_fp16_rows(const uint16_t *w, const uint16_t *bias, const float *x, unsigned cols,
                     unsigned lo, unsigned hi, dense_act act, float *y);
/* dense_int8.c */
void dense_int8_rows(const int8_t *w, const float *w_scale, const uint16_t *bias, const int8_t *xq,
                     float s_in, unsigned cols, unsigned lo, unsigned hi, dense_act act, float *y);

/* lstm_int8.c */
void lstm_int8_rows(const int8_t *w_ih, const float *s_ih, const int8_t *w_hh, const float *s_hh,
                    const uint16_t *b_ih, const uint16_t *b_hh, const int8_t *xq, float s_x,
                    const int8_t *hq, unsigned k_in, unsigned hidden, unsigned lo, unsigned hi,
                    float *z);
void lstm_int8_units(const float *z, unsigned hidden, float s_c, float inv_s_c, int16_t *cq,
                     int8_t *hq, unsigned j0, unsigned j1);
/* lstm_fp16.c */
void lstm_fp16_rows(const uint16_t *w_ih, const uint16_t *w_hh, const uint16_t *b_ih,
                    const uint16_t *b_hh, const float *x, const float *h, unsigned k_in,
                    unsigned hidden, unsigned lo, unsigned hi, float *z);
void lstm_fp16_units(const float *z, unsigned hidden, float *c, float *h, unsigned j0, unsigned j1);
/* gru_int8.c */
void gru_int8_rows(const int8_t *w_ih, const float *s_ih, const int8_t *w_hh, const float *s_hh,
                   const uint16_t *b_ih, const uint16_t *b_hh, const int8_t *xq, float s_x,
                   const int8_t *hq, unsigned k_in, unsigned hidden, unsigned lo, unsigned hi,
                   float *gi, float *gh);
void gru_int8_units(const float *gi, const float *gh, unsigned hidden, int8_t *hq, unsigned j0,
                    unsigned j1);
/* gru_fp16.c */
void gru_fp16_rows(const uint16_t *w_ih, const uint16_t *w_hh, const uint16_t *b_ih,
                   const uint16_t *b_hh, const float *x, const float *h, unsigned k_in,
                   unsigned hidden, unsigned lo, unsigned hi, float *gi, float *gh);
void gru_fp16_units(const float *gi, const float *gh, unsigned hidden, float *h, unsigned j0,
                    unsigned j1);

/* requant.c: elementwise conversions between layers, for elements [i0, i1). */
void requant_input(const uint16_t *mags, float *x, unsigned i0, unsigned i1);
void requant_q8(const float *x, float inv, int8_t *q, unsigned i0, unsigned i1);
void requant_state_to_f16(const int8_t *hq, float *x, unsigned i0, unsigned i1);

/* Fixed scale of every int8 recurrent output: S_H = f32(1/127), inverse 127. */
#define TDN_S_H (1.0f / 127.0f)
#define TDN_INV_S_H 127.0f

#endif
