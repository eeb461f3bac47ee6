/* icnt_page.h - the instruction counter page: the one layout that hal/qemu-rv32/instret_plugin.c
 * writes (in the host's QEMU process) and the QEMU HALs read (in the guest).
 *
 * A page of guest RAM, little-endian: u32 magic "ICNT", u32 harts, u64 count[harts]. The plugin
 * writes harts first and the magic last, so a guest that sees the magic sees the hart count.
 * Each vCPU thread adds to its own count before running each translated block.
 */
#ifndef TDN_ICNT_PAGE_H
#define TDN_ICNT_PAGE_H

#include <stdint.h>

#define ICNT_MAGIC 0x544e4349u /* "ICNT" */
#define ICNT_HEADER_WORDS 2u   /* magic, harts; then the counts, two words each */

/* Whether the plugin set up the page at `page` for at least `harts` harts. */
static inline int icnt_page_ready(uintptr_t page, uint32_t harts)
{
    const volatile uint32_t *words = (const volatile uint32_t *)page;
    return words[0] == ICNT_MAGIC && words[1] >= harts;
}

/* The count of `hart`. The two 32-bit loads may sit in two translated blocks, with the
 * plugin's add between them: re-read if the low word carried into the high one meanwhile. */
static inline uint64_t icnt_page_count(uintptr_t page, unsigned hart)
{
    const volatile uint32_t *slot = (const volatile uint32_t *)page + ICNT_HEADER_WORDS + 2u * hart;
    uint32_t high, low;
    do {
        high = slot[1];
        low = slot[0];
    } while (high != slot[1]);
    return (uint64_t)high << 32 | low;
}

#endif
