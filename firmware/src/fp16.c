/* fp16.c - binary16 <-> binary32 in integer code, for targets without _Float16.
 *
 * Contract: fp16_from_f32 rounds to nearest, ties to even, keeps subnormal binary16 results
 * (gradual underflow), overflows to +-inf (|x| >= 65520) and keeps NaN quiet with the top ten
 * payload bits (at least one set): the same bits as numpy's astype(np.float16). fp16_sat (in
 * fp16.h) saturates to +-65504 first, which is the contract's f16(). fp16_to_f32 is exact.
 */
#include "tdn/fp16.h"

uint16_t fp16_from_f32(float f)
{
    uint32_t x = tdn_f32_bits(f);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t ax = x & 0x7fffffffu;

    if (ax >= 0x7f800000u) { /* inf or NaN */
        uint32_t m = (ax & 0x007fffffu) >> 13;
        if (ax == 0x7f800000u) return (uint16_t)(sign | 0x7c00u);
        return (uint16_t)(sign | 0x7c00u | (m ? m : 1u));
    }
    if (ax >= 0x477ff000u) /* >= 65520: rounds past the largest finite binary16 */
        return (uint16_t)(sign | 0x7c00u);
    if (ax >= 0x38800000u) { /* normal binary16: rebias the exponent, round 13 bits away */
        uint32_t v = ax - 0x38000000u;
        v += 0x0fffu + ((v >> 13) & 1u);
        return (uint16_t)(sign | (v >> 13));
    }
    if (ax < 0x33000000u) /* below half the smallest subnormal (2^-25): signed zero */
        return (uint16_t)sign;
    {   /* subnormal binary16: value / 2^-24 = m * 2^(e - 126), shift by 14..24 */
        uint32_t e = ax >> 23;
        uint32_t m = (ax & 0x007fffffu) | 0x00800000u;
        uint32_t shift = 126u - e;
        uint32_t q = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1u);
        uint32_t half = 1u << (shift - 1u);
        if (rem > half || (rem == half && (q & 1u))) q++;
        return (uint16_t)(sign | q); /* q may carry into 0x400: the smallest normal */
    }
}

float fp16_to_f32_slow(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (uint32_t)(h >> 10) & 0x1fu;
    uint32_t m = h & 0x3ffu;
    if (e == 0x1fu) return tdn_bits_f32(sign | 0x7f800000u | (m << 13));
    if (e != 0u) return tdn_bits_f32(sign | ((e + 112u) << 23) | (m << 13));
    if (m == 0u) return tdn_bits_f32(sign);
    {   /* subnormal: normalise */
        int32_t ex = 1;
        while (!(m & 0x400u)) { m <<= 1; ex--; }
        return tdn_bits_f32(sign | ((uint32_t)(ex + 112) << 23) | ((m & 0x3ffu) << 13));
    }
}
