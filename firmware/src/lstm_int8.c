/* lstm_int8.c - LSTM layer with per-row int8 weights, int8 x and h, int16 cell state.
 *
 * Contract ("Recurrent layers", int8, LSTM; gate rows [i | f | g | o], H rows each):
 * rows (split by gate row r):
 *   ax = sum_k wq_ih[r,k]*xq[k];  ah = sum_k wq_hh[r,k]*hq[k]        exact int32
 *   m_ih = f32(s_ih[r]*s_x);  m_hh = f32(s_hh[r]*S_H);  b = f32(b_ih[r]) + f32(b_hh[r])
 *   z[r] = (f32(ax)*m_ih + f32(ah)*m_hh) + b
 * units (split by hidden unit j, after every row is done):
 *   i, f, o = sigmoid(z_i, z_f, z_o);  g = tanh(z_g)
 *   cq' = q16(f * (f32(cq)*s_c) + i*g, inv_s_c)
 *   hq' = q8(o * tanh(f32(cq')*s_c), 127)
 */
#include "tdn/act.h"
#include "tdn/fp16.h"
#include "tdn/kernels.h"

void lstm_int8_rows(const int8_t *w_ih, const float *s_ih, const int8_t *w_hh, const float *s_hh,
                    const uint16_t *b_ih, const uint16_t *b_hh, const int8_t *xq, float s_x,
                    const int8_t *hq, unsigned k_in, unsigned hidden, unsigned lo, unsigned hi,
                    float *z)
{
    for (unsigned r = lo; r < hi; r++) {
        const int8_t *wi = w_ih + (uint32_t)r * k_in;
        const int8_t *wh = w_hh + (uint32_t)r * hidden;
        int32_t ax = 0, ah = 0;
        float m_ih, m_hh, b;
        for (unsigned k = 0; k < k_in; k++) ax += (int32_t)wi[k] * (int32_t)xq[k];
        for (unsigned k = 0; k < hidden; k++) ah += (int32_t)wh[k] * (int32_t)hq[k];
        m_ih = s_ih[r] * s_x;
        m_hh = s_hh[r] * TDN_S_H;
        b = fp16_to_f32(b_ih[r]) + fp16_to_f32(b_hh[r]);
        z[r] = ((float)ax * m_ih + (float)ah * m_hh) + b;
    }
}

void lstm_int8_units(const float *z, unsigned hidden, float s_c, float inv_s_c, int16_t *cq,
                     int8_t *hq, unsigned j0, unsigned j1)
{
    for (unsigned j = j0; j < j1; j++) {
        float i = act_sigmoid(z[j]);
        float f = act_sigmoid(z[hidden + j]);
        float g = act_tanh(z[2u * hidden + j]);
        float o = act_sigmoid(z[3u * hidden + j]);
        float c_prev = (float)cq[j] * s_c;
        int16_t c_new = act_q16(f * c_prev + i * g, inv_s_c);
        float h = o * act_tanh((float)c_new * s_c);
        cq[j] = c_new;
        hq[j] = act_q8(h, TDN_INV_S_H);
    }
}
