/* gru_int8.c - GRU layer with per-row int8 weights, int8 x and h.
 *
 * Contract ("Recurrent layers", int8, GRU; gate rows [r | z | n], H rows each):
 * rows:  gi[r] = f32(ax)*f32(s_ih[r]*s_x) + f32(b_ih[r])
 *        gh[r] = f32(ah)*f32(s_hh[r]*S_H) + f32(b_hh[r])       (ax, ah exact int32 sums)
 * units: r = sigmoid(gi_r + gh_r);  z = sigmoid(gi_z + gh_z);  n = tanh(gi_n + r*gh_n)
 *        h = (1 - z)*n + z*(f32(hq)*S_H);  hq' = q8(h, 127)
 */
#include "tdn/act.h"
#include "tdn/fp16.h"
#include "tdn/kernels.h"

void gru_int8_rows(const int8_t *w_ih, const float *s_ih, const int8_t *w_hh, const float *s_hh,
                   const uint16_t *b_ih, const uint16_t *b_hh, const int8_t *xq, float s_x,
                   const int8_t *hq, unsigned k_in, unsigned hidden, unsigned lo, unsigned hi,
                   float *gi, float *gh)
{
    for (unsigned r = lo; r < hi; r++) {
        const int8_t *wi = w_ih + (uint32_t)r * k_in;
        const int8_t *wh = w_hh + (uint32_t)r * hidden;
        int32_t ax = 0, ah = 0;
        for (unsigned k = 0; k < k_in; k++) ax += (int32_t)wi[k] * (int32_t)xq[k];
        for (unsigned k = 0; k < hidden; k++) ah += (int32_t)wh[k] * (int32_t)hq[k];
        gi[r] = (float)ax * (s_ih[r] * s_x) + fp16_to_f32(b_ih[r]);
        gh[r] = (float)ah * (s_hh[r] * TDN_S_H) + fp16_to_f32(b_hh[r]);
    }
}

void gru_int8_units(const float *gi, const float *gh, unsigned hidden, int8_t *hq, unsigned j0,
                    unsigned j1)
{
    for (unsigned j = j0; j < j1; j++) {
        float r = act_sigmoid(gi[j] + gh[j]);
        float z = act_sigmoid(gi[hidden + j] + gh[hidden + j]);
        float n = act_tanh(gi[2u * hidden + j] + r * gh[2u * hidden + j]);
        float h_prev = (float)hq[j] * TDN_S_H;
        float h = (1.0f - z) * n + z * h_prev;
        hq[j] = act_q8(h, TDN_INV_S_H);
    }
}
