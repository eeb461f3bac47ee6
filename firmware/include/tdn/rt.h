/* rt.h - the portable runtime over the HAL: fork/join, barrier and DMA, each counted.
 *
 * Per frame the controller zeroes tdn_cnt, runs the network and copies the counters into the
 * MASK reply. Worker `core` writes only its own slots (no locks needed); DMA and fork
 * counters are written by one core at a time (worker 0 issues every DMA, the controller forks).
 */
#ifndef TDN_RT_H
#define TDN_RT_H

#include <stdint.h>

#include "tdn/config.h"
#include "tdn/hal.h"

typedef struct {
    uint32_t ticks;                          /* compute time of the frame (device timer) */
    uint32_t macs_int8[TDN_WORKERS];         /* int8 multiply-accumulates per worker */
    uint32_t macs_fp16[TDN_WORKERS];         /* binary16 x binary16 -> binary32 MACs per worker */
    uint32_t l1_bytes[TDN_LEVELS];           /* bytes copied into L1 from L2, MRAM, L3 */
    uint32_t dma_transfers;                  /* DMA transfers issued */
    uint32_t forks;                          /* parallel regions (fork + join) */
    uint32_t barrier_waits[TDN_WORKERS];     /* barrier arrivals per worker */
} tdn_counters;

extern tdn_counters tdn_cnt;

void rt_counters_reset(void);
uint32_t rt_barrier_waits_total(void);
void rt_fork(hal_task_fn fn, void *arg);
void rt_barrier(unsigned core);
/* Copy `bytes` from weights memory at `level` into L1; counted. */
hal_dma_id rt_dma(void *dst, const void *src, uint32_t bytes, int level);

#endif
