/* requant.c - elementwise conversions between layers (split by element across workers).
 *
 * requant_input:        network input stage: binary16 magnitudes; NaN -> 0, +-inf -> +-65504
 *                       (the contract's f16(clamp(nan_to_num(x))) for binary16 input).
 * requant_q8:           q[i] = q8(x[i], inv)  =  rne(clamp(f32(x*inv), -127, 127)).
 * requant_state_to_f16: x[i] = f16(f32(hq[i]) * S_H)  (mixed mode: int8 h of rnn2 -> fc1).
 */
#include "tdn/act.h"
#include "tdn/fp16.h"
#include "tdn/kernels.h"

void requant_input(const uint16_t *mags, float *x, unsigned i0, unsigned i1)
{
    for (unsigned i = i0; i < i1; i++) {
        uint16_t h = mags[i];
        if ((h & 0x7c00u) == 0x7c00u)
            h = (h & 0x03ffu) ? 0u : (uint16_t)((h & 0x8000u) | 0x7bffu);
        x[i] = fp16_to_f32(h);
    }
}

void requant_q8(const float *x, float inv, int8_t *q, unsigned i0, unsigned i1)
{
    for (unsigned i = i0; i < i1; i++) q[i] = act_q8(x[i], inv);
}

void requant_state_to_f16(const int8_t *hq, float *x, unsigned i0, unsigned i1)
{
    for (unsigned i = i0; i < i1; i++) x[i] = f16r((float)hq[i] * TDN_S_H);
}
