/* lstm_fp16.c - LSTM layer in binary16 storage with binary32 accumulation.
 *
 * Contract ("Recurrent layers", fp16, LSTM):
 * rows:  acc = f32(b_ih[r]); acc = acc + f32(b_hh[r]);
 *        then acc = acc + w_ih[r,k]*x[k] for k ascending, then acc = acc + w_hh[r,k]*h[k]
 *        (every product of two binary16 values is exact; one rounding per term)
 * units: i, f, o = f16(sigmoid(z));  g = f16(tanh(z_g))
 *        c' = f16(f*c + i*g);  h' = f16(o * f16(tanh(c')))
 * x, h, c hold binary16 values as binary32.
 */
#include "tdn/act.h"
#include "tdn/fp16.h"
#include "tdn/kernels.h"

void lstm_fp16_rows(const uint16_t *w_ih, const uint16_t *w_hh, const uint16_t *b_ih,
                    const uint16_t *b_hh, const float *x, const float *h, unsigned k_in,
                    unsigned hidden, unsigned lo, unsigned hi, float *z)
{
    for (unsigned r = lo; r < hi; r++) {
        const uint16_t *wi = w_ih + (uint32_t)r * k_in;
        const uint16_t *wh = w_hh + (uint32_t)r * hidden;
        float acc = fp16_to_f32(b_ih[r]);
        acc = acc + fp16_to_f32(b_hh[r]);
        for (unsigned k = 0; k < k_in; k++) acc = acc + fp16_to_f32(wi[k]) * x[k];
        for (unsigned k = 0; k < hidden; k++) acc = acc + fp16_to_f32(wh[k]) * h[k];
        z[r] = acc;
    }
}

void lstm_fp16_units(const float *z, unsigned hidden, float *c, float *h, unsigned j0, unsigned j1)
{
    for (unsigned j = j0; j < j1; j++) {
        float i = f16r(act_sigmoid(z[j]));
        float f = f16r(act_sigmoid(z[hidden + j]));
        float g = f16r(act_tanh(z[2u * hidden + j]));
        float o = f16r(act_sigmoid(z[3u * hidden + j]));
        float c_new = f16r(f * c[j] + i * g);
        c[j] = c_new;
        h[j] = f16r(o * f16r(act_tanh(c_new)));
    }
}
