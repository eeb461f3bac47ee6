/* dense_fp16.c - dense layer rows with binary16 weights and inputs, binary32 accumulation.
 *
 * Contract (docs/arithmetic-contract.md, "Dense layers", fp16):
 *   acc = f32(bias[r]);  for k = 0..cols-1 ascending: acc = f32(acc + f32(w[r,k]) * x[k])
 * w[r,k] and x[k] are binary16 values, so each product is exact in binary32 and the only
 * rounding per term is the add (a fused multiply-add would give the same bits).
 * Output: DENSE_RELU_F16 y = f16(max(acc,0)); DENSE_SIGMOID_F16 y = f16(sigmoid(acc)).
 * Rows [lo, hi) of the tile; w and bias are the tile's copies in L1, y is offset to the tile.
 */
#include "tdn/act.h"
#include "tdn/fp16.h"
#include "tdn/kernels.h"

void dense_fp16_rows(const uint16_t *w, const uint16_t *bias, const float *x, unsigned cols,
                     unsigned lo, unsigned hi, dense_act act, float *y)
{
    for (unsigned r = lo; r < hi; r++) {
        const uint16_t *wr = w + (uint32_t)r * cols;
        float acc = fp16_to_f32(bias[r]);
        for (unsigned k = 0; k < cols; k++)
            acc = acc + fp16_to_f32(wr[k]) * x[k];
        if (act == DENSE_SIGMOID_F16) y[r] = f16r(act_sigmoid(acc));
        else if (act == DENSE_RELU_F16) y[r] = f16r(act_relu(acc));
        else y[r] = act_relu(acc);
    }
}
