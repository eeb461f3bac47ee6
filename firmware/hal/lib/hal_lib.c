/* hal_lib.c - the HAL of the host library libtdn (firmware/lib/): one worker, run inline.
 *
 * The library is built with TDN_WORKERS=1, so a fork is a plain call of the task on core 0
 * and a barrier has nobody to wait for: no threads, no locks, nothing allocated, which is
 * what an audio plugin's run() may do. DMA is a memcpy into the calling instance's own L1
 * buffer: each instance owns one (hal_lib_bind_l1 before its frame), and the binding is
 * thread-local, so instances processed at the same time on different threads never share
 * a tile buffer. The results are the same bits as the 8-worker simulator's: every layer is
 * split by whole output rows (kernels.h).
 *
 * There is no transport (the library is called, it serves no link), no memory level to place
 * a blob in (the library keeps its own copy) and no instruction counter.
 */
#include <string.h>

#include "tdn/config.h"
#include "tdn/hal.h"
#include "hal_lib.h"

#if TDN_WORKERS != 1
#error "hal/lib runs the cluster inline: build with -DTDN_WORKERS=1"
#endif

/* initial-exec: the pointer lives in the static TLS block, so even a library that a host
 * dlopen()s reads it without __tls_get_addr (which may allocate on a thread's first use). */
static _Thread_local uint8_t *bound_l1 __attribute__((tls_model("initial-exec")));

void hal_lib_bind_l1(uint8_t *l1) { bound_l1 = l1; }

int hal_init(int argc, char **argv) { (void)argc; (void)argv; return 0; }

const char *hal_target_name(void) { return "libtdn"; }

void hal_cluster_fork(hal_task_fn fn, void *arg) { fn(0, arg); }

void hal_cluster_barrier(unsigned core) { (void)core; }

hal_dma_id hal_dma_copy_async(void *dst, const void *src, size_t bytes)
{
    memcpy(dst, src, bytes);
    return 0;
}

void hal_dma_wait(hal_dma_id id) { (void)id; }

uint8_t *hal_l1(void) { return bound_l1; }

uint8_t *hal_mem(int level, uint32_t *capacity)
{
    (void)level;
    *capacity = 0;
    return NULL;
}

/* The frame's ticks are not read by the library (tdn_model_frame does not time itself). */
uint32_t hal_timer_ticks(void) { return 0; }

uint32_t hal_timer_hz(void) { return 1000000u; }

int hal_transport_read(uint8_t *buf, size_t max, uint32_t timeout_ms)
{
    (void)buf; (void)max; (void)timeout_ms;
    return -1;
}

int hal_transport_write(const uint8_t *buf, size_t n)
{
    (void)buf; (void)n;
    return -1;
}

uint64_t hal_instret(unsigned hart) { (void)hart; return 0; }
