/* hal.h - the thin hardware abstraction layer: the only code that differs between targets.
 *
 * firmware/hal/host/      pthreads cluster, memcpy DMA, clock_gettime, pty or TCP transport.
 * firmware/hal/qemu-rv32/ hart 0 controller, harts 1..8 workers, 16550 UART, CLINT
 *                         timer, per-hart instruction counts (docs/qemu.md).
 * firmware/hal/cortex-m/  one Cortex-M7 core (controller and the only worker), weights read
 *                         in place, CMSDK UART, SysTick (docs/cortex-m.md).
 *
 * Everything else (kernels, model, protocol, controller, counters) is portable C11 and calls
 * only these functions. Counting (MACs, DMA bytes, forks, barrier waits) is done by the
 * portable runtime (rt.h) so that every target counts the same way.
 */
#ifndef TDN_HAL_H
#define TDN_HAL_H

#include <stddef.h>
#include <stdint.h>

/* Start the target: worker cores, timer, transport (argv may select it). 0 on success. */
int hal_init(int argc, char **argv);
/* Short ASCII name reported in DeviceInfo ("host-sim", "qemu-rv32"). */
const char *hal_target_name(void);

/* --- cluster ---------------------------------------------------------------------------- */
typedef void (*hal_task_fn)(unsigned core, void *arg);
/* Run fn(core, arg) on every worker core 0..TDN_WORKERS-1; return when all have returned
 * (fork + join). Called by the controller only; forks do not nest. */
void hal_cluster_fork(hal_task_fn fn, void *arg);
/* Inside a fork: block until every worker has reached the barrier (memory is synchronised). */
void hal_cluster_barrier(unsigned core);

/* --- DMA into L1 ------------------------------------------------------------------------ */
typedef uint32_t hal_dma_id;
/* Start copying `bytes` from `src` (L2, MRAM or L3) to `dst` (L1); returns a transfer id. */
hal_dma_id hal_dma_copy_async(void *dst, const void *src, size_t bytes);
/* Block until transfer `id` (and every earlier one) has completed. */
void hal_dma_wait(hal_dma_id id);

/* --- memory ----------------------------------------------------------------------------- */
/* The cluster's L1 tile buffer (TDN_L1_BYTES, 8-byte aligned). */
uint8_t *hal_l1(void);
/* Region that can hold a model's weights at `level` (TDN_LEVEL_*), and its capacity. The L3
 * region is the largest and also receives the blob during an upload. 8-byte aligned. */
uint8_t *hal_mem(int level, uint32_t *capacity);

/* --- timer ------------------------------------------------------------------------------ */
uint32_t hal_timer_ticks(void); /* free-running, wraps */
uint32_t hal_timer_hz(void);

/* --- byte transport --------------------------------------------------------------------- */
/* Read up to `max` bytes, waiting at most `timeout_ms`. Returns the count (0 on timeout),
 * or < 0 if the transport failed for good. */
int hal_transport_read(uint8_t *buf, size_t max, uint32_t timeout_ms);
/* Write all `n` bytes (bounded wait; bytes may be dropped if the peer is gone). 0 on success. */
int hal_transport_write(const uint8_t *buf, size_t n);

/* --- performance counters --------------------------------------------------------------- */
/* Retired instructions of `hart` (0 controller, 1..TDN_WORKERS workers); 0 if not available. */
uint64_t hal_instret(unsigned hart);

#endif
