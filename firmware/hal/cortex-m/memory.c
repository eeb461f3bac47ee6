/* memory.c - where a single-core Cortex-M keeps the weights, as an STM32H7-class part would
 * (calibration/targets/cortex-m7.toml): the memory levels of the link's ModelInfo are
 *   L2   on-chip SRAM (512 kB, an STM32H743's AXI SRAM),
 *   MRAM the on-chip flash (2 MB; on QEMU a region of SSRAM1 standing in for it),
 *   L3   external memory behind QSPI/FMC (8 MB of the MPS2's PSRAM), also the upload staging.
 * No L1: the kernels read the weights where they lie (TDN_WEIGHTS_IN_PLACE).
 */
#include "tdn/config.h"
#include "tdn/hal.h"

#define CM_SRAM_WEIGHTS (512u * 1024u)
#define CM_FLASH (2u * 1024u * 1024u)
#define CM_EXTERNAL (8u * 1024u * 1024u)

/* Not cleared at reset (NOLOAD sections of link.ld): an upload writes them before any read. */
static _Alignas(8) uint8_t sram_mem[CM_SRAM_WEIGHTS] __attribute__((section(".weights_sram")));
static _Alignas(8) uint8_t flash_mem[CM_FLASH] __attribute__((section(".weights_flash")));
static _Alignas(8) uint8_t ext_mem[CM_EXTERNAL] __attribute__((section(".weights_ext")));

uint8_t *hal_l1(void) { return NULL; }

uint8_t *hal_mem(int level, uint32_t *capacity)
{
    switch (level) {
    case TDN_LEVEL_L2: *capacity = CM_SRAM_WEIGHTS; return sram_mem;
    case TDN_LEVEL_MRAM: *capacity = CM_FLASH; return flash_mem;
    case TDN_LEVEL_L3: *capacity = CM_EXTERNAL; return ext_mem;
    default: *capacity = 0; return NULL;
    }
}
