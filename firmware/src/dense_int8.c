/* dense_int8.c - dense layer rows with per-row int8 weights and int8 inputs.
 *
 * Contract ("Dense layers", int8):
 *   acc = sum_k wq[r,k] * xq[k]             exact int32 (|acc| <= 127*127*cols < 2^24)
 *   m   = f32(w_scale[r] * s_in)            the row's requantisation multiplier
 *   pre = f32(f32(acc) * m) + f32(bias[r])  bias stored as binary16
 * Output: DENSE_RELU_F32 y = max(pre, 0) in binary32 (the consumer requantises);
 *         DENSE_SIGMOID_F16 y = f16(sigmoid(pre)).
 */
#include "tdn/act.h"
#include "tdn/fp16.h"
#include "tdn/kernels.h"

void dense_int8_rows(const int8_t *w, const float *w_scale, const uint16_t *bias, const int8_t *xq,
                     float s_in, unsigned cols, unsigned lo, unsigned hi, dense_act act, float *y)
{
    for (unsigned r = lo; r < hi; r++) {
        const int8_t *wr = w + (uint32_t)r * cols;
        int32_t acc = 0;
        float m, pre;
        for (unsigned k = 0; k < cols; k++)
            acc += (int32_t)wr[k] * (int32_t)xq[k];
        m = w_scale[r] * s_in;
        pre = (float)acc * m + fp16_to_f32(bias[r]);
        if (act == DENSE_SIGMOID_F16) y[r] = f16r(act_sigmoid(pre));
        else if (act == DENSE_RELU_F16) y[r] = f16r(act_relu(pre));
        else y[r] = act_relu(pre);
    }
}
