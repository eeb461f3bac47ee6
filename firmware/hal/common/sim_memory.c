/* sim_memory.c - the memory levels of the simulated targets (host simulator and QEMU): static
 * arrays with the capacities a GAP9 offers the weights. A HAL for the chip itself returns its
 * real L1, L2, MRAM and L3 regions instead.
 */
#include "tdn/config.h"
#include "tdn/hal.h"

#define SIM_L2_WEIGHTS (1200u * 1024u) /* of 1.5 MB L2: the rest is code, stacks, buffers */
#define SIM_MRAM (2u * 1024u * 1024u)
#define SIM_L3 (8u * 1024u * 1024u)

static _Alignas(64) uint8_t l1_mem[TDN_L1_BYTES];
static _Alignas(64) uint8_t l2_mem[SIM_L2_WEIGHTS];
static _Alignas(64) uint8_t mram_mem[SIM_MRAM];
static _Alignas(64) uint8_t l3_mem[SIM_L3];

uint8_t *hal_l1(void) { return l1_mem; }

uint8_t *hal_mem(int level, uint32_t *capacity)
{
    switch (level) {
    case TDN_LEVEL_L2: *capacity = SIM_L2_WEIGHTS; return l2_mem;
    case TDN_LEVEL_MRAM: *capacity = SIM_MRAM; return mram_mem;
    case TDN_LEVEL_L3: *capacity = SIM_L3; return l3_mem;
    default: *capacity = 0; return NULL;
    }
}
