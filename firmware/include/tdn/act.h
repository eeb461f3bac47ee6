/* act.h - the contract's nonlinearities and requantisers, binary32 only (no libm).
 *
 * tanh: rational fit x*P(x^2)/Q(x^2) on |x| <= 9, clamped to 1; sigmoid(x) = 0.5*tanh(0.5x)+0.5.
 * q8(x, inv)  = rne(clamp(x*inv, -127, 127));  q16 likewise with +-32767.
 * Requires -ffp-contract=off and no -ffast-math: every operation rounds once, in order.
 */
#ifndef TDN_ACT_H
#define TDN_ACT_H

#include <stdint.h>

float act_tanh(float x);
float act_sigmoid(float x);

/* Round half to even for |x| <= 2^22, in the default rounding mode: adding 1.5 * 2^23 puts the
 * integer part in the unit bit. NaN (not produced by a valid model) becomes 0. */
static inline float act_rne(float x)
{
    const float magic = 12582912.0f;
    if (x != x) return 0.0f;
    return (x + magic) - magic;
}

static inline int8_t act_q8(float x, float inv)
{
    float s = x * inv;
    if (s > 127.0f) s = 127.0f;
    else if (s < -127.0f) s = -127.0f;
    return (int8_t)(int32_t)act_rne(s);
}

static inline int16_t act_q16(float x, float inv)
{
    float s = x * inv;
    if (s > 32767.0f) s = 32767.0f;
    else if (s < -32767.0f) s = -32767.0f;
    return (int16_t)(int32_t)act_rne(s);
}

/* numpy's maximum(x, 0): +0 for x = -0. */
static inline float act_relu(float x) { return x > 0.0f ? x : 0.0f; }

#endif
