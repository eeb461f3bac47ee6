/* gru_fp16.c - GRU layer in binary16 storage with binary32 accumulation.
 *
 * Contract ("Recurrent layers", fp16, GRU):
 * rows:  gi[r] = f32(b_ih[r]) then + w_ih[r,k]*x[k], k ascending
 *        gh[r] = f32(b_hh[r]) then + w_hh[r,k]*h[k], k ascending   (kept separate)
 * units: r = f16(sigmoid(gi_r + gh_r));  z = f16(sigmoid(gi_z + gh_z))
 *        n = f16(tanh(gi_n + r*gh_n));    h' = f16((1 - z)*n + z*h)
 */
#include "tdn/act.h"
#include "tdn/fp16.h"
#include "tdn/kernels.h"

void gru_fp16_rows(const uint16_t *w_ih, const uint16_t *w_hh, const uint16_t *b_ih,
                   const uint16_t *b_hh, const float *x, const float *h, unsigned k_in,
                   unsigned hidden, unsigned lo, unsigned hi, float *gi, float *gh)
{
    for (unsigned r = lo; r < hi; r++) {
        const uint16_t *wi = w_ih + (uint32_t)r * k_in;
        const uint16_t *wh = w_hh + (uint32_t)r * hidden;
        float a = fp16_to_f32(b_ih[r]);
        float b = fp16_to_f32(b_hh[r]);
        for (unsigned k = 0; k < k_in; k++) a = a + fp16_to_f32(wi[k]) * x[k];
        for (unsigned k = 0; k < hidden; k++) b = b + fp16_to_f32(wh[k]) * h[k];
        gi[r] = a;
        gh[r] = b;
    }
}

void gru_fp16_units(const float *gi, const float *gh, unsigned hidden, float *h, unsigned j0,
                    unsigned j1)
{
    for (unsigned j = j0; j < j1; j++) {
        float r = f16r(act_sigmoid(gi[j] + gh[j]));
        float z = f16r(act_sigmoid(gi[hidden + j] + gh[hidden + j]));
        float n = f16r(act_tanh(gi[2u * hidden + j] + r * gh[2u * hidden + j]));
        h[j] = f16r((1.0f - z) * n + z * h[j]);
    }
}
