/* le.h - little-endian reads and writes of the wire and the blob, written once. */
#ifndef TDN_LE_H
#define TDN_LE_H

#include <stdint.h>
#include <string.h>

static inline uint16_t tdn_get_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t tdn_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
/* binary32 as stored: this firmware runs on little-endian cores only (RV32, Cortex-M, x86). */
static inline float tdn_get_f32(const uint8_t *p) { float f; memcpy(&f, p, 4); return f; }
static inline void tdn_put_u16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void tdn_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}
static inline void tdn_put_u64(uint8_t *p, uint64_t v)
{
    tdn_put_u32(p, (uint32_t)v);
    tdn_put_u32(p + 4, (uint32_t)(v >> 32));
}
/* Arrays in the blob and in L1 tiles start on 4-byte boundaries. */
static inline uint32_t tdn_align4(uint32_t v) { return (v + 3u) & ~3u; }

#endif
