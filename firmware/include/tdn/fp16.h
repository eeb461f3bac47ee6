/* fp16.h - software binary16 <-> binary32 (no _Float16 on the RISC-V GCC 12 toolchain).
 *
 * fp16_from_f32: IEEE round to nearest even, subnormals kept, overflow to +-inf, NaN kept
 *                quiet with its top payload bits (numpy's astype(np.float16) bit for bit).
 * fp16_sat:      the contract's f16(): clamp to +-65504 first, so never +-inf.
 * fp16_to_f32:   exact.
 */
#ifndef TDN_FP16_H
#define TDN_FP16_H

#include <stdint.h>
#include <string.h>

#define TDN_FP16_MAX 65504.0f

uint16_t fp16_from_f32(float f);
float fp16_to_f32_slow(uint16_t h);

static inline float tdn_bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline uint32_t tdn_f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

/* Exact widening; normal numbers inline, zero/subnormal/inf/NaN out of line. */
static inline float fp16_to_f32(uint16_t h)
{
    uint32_t e = (uint32_t)(h >> 10) & 0x1fu;
    if (e != 0u && e != 0x1fu)
        return tdn_bits_f32(((uint32_t)(h & 0x8000u) << 16) | (((uint32_t)h & 0x7fffu) + 0x1c000u) << 13);
    return fp16_to_f32_slow(h);
}

/* The contract's f16(x): saturate to +-65504, then round to nearest even. */
static inline uint16_t fp16_sat(float x)
{
    if (x > TDN_FP16_MAX) x = TDN_FP16_MAX;
    else if (x < -TDN_FP16_MAX) x = -TDN_FP16_MAX;
    return fp16_from_f32(x);
}

/* f16(x) returned as the binary32 value of the binary16 result. */
static inline float f16r(float x) { return fp16_to_f32(fp16_sat(x)); }

#endif
