/* rt.c - counted wrappers over the HAL's fork/join, barrier and DMA. */
#include <string.h>

#include "tdn/rt.h"

tdn_counters tdn_cnt;

void rt_counters_reset(void) { memset(&tdn_cnt, 0, sizeof tdn_cnt); }

uint32_t rt_barrier_waits_total(void)
{
    uint32_t n = 0;
    for (unsigned i = 0; i < TDN_WORKERS; i++) n += tdn_cnt.barrier_waits[i];
    return n;
}

void rt_fork(hal_task_fn fn, void *arg)
{
    tdn_cnt.forks++;
    hal_cluster_fork(fn, arg);
}

void rt_barrier(unsigned core)
{
    tdn_cnt.barrier_waits[core]++;
    hal_cluster_barrier(core);
}

hal_dma_id rt_dma(void *dst, const void *src, uint32_t bytes, int level)
{
    tdn_cnt.l1_bytes[level] += bytes;
    tdn_cnt.dma_transfers++;
    return hal_dma_copy_async(dst, src, bytes);
}
