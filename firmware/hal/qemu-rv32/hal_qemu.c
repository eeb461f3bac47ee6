/* hal_qemu.c - the HAL for QEMU `virt` (RV32IMAFC, -smp 9 -bios none): hart 0 is the
 * controller, harts 1..8 the cluster workers; the 16550 UART is the byte transport, the
 * CLINT gives the timer (mtime, 10 MHz) and the inter-hart interrupts, DMA is a copy done
 * by hart 0 while the workers compute, and per-hart retired instructions come from
 * instret_plugin.c (QEMU's minstret counts host time, not instructions).
 *
 * Nothing spins for long: a waiting hart sleeps in WFI and is woken by a software interrupt
 * (CLINT msip) from the hart it waits for, the controller waiting for bytes sleeps until the
 * UART's receive interrupt (through the PLIC) or its CLINT deadline. Interrupts stay globally
 * disabled (mstatus.MIE = 0): WFI wakes on any interrupt enabled in mie, so no handler is
 * needed and the wake-up loops simply re-check their condition. That keeps QEMU's host
 * threads idle while the emulated cores wait, as on the real chip the cores clock-gate.
 */
#include <stdio.h>
#include <string.h>

#include "tdn/config.h"
#include "tdn/hal.h"

#include "../common/icnt_page.h"

/* ---- memory map of QEMU virt ------------------------------------------------------------- */
#define CLINT 0x02000000u
#define CLINT_MSIP(h) (*(volatile uint32_t *)(CLINT + 4u * (h)))
#define CLINT_MTIMECMP_LO(h) (*(volatile uint32_t *)(CLINT + 0x4000u + 8u * (h)))
#define CLINT_MTIMECMP_HI(h) (*(volatile uint32_t *)(CLINT + 0x4004u + 8u * (h)))
#define CLINT_MTIME_LO (*(volatile uint32_t *)(CLINT + 0xBFF8u))
#define CLINT_MTIME_HI (*(volatile uint32_t *)(CLINT + 0xBFFCu))
#define MTIME_HZ 10000000u /* virt's timebase-frequency */

#define UART 0x10000000u
#define UART_REG(r) (*(volatile uint8_t *)(UART + (r)))
#define UART_RBR 0 /* read: receive buffer; write: THR */
#define UART_IER 1
#define UART_FCR 2
#define UART_LCR 3
#define UART_LSR 5
#define LSR_DR 0x01u
#define LSR_THRE 0x20u
#define UART_IRQ 10 /* the UART's PLIC source on virt */

#define PLIC 0x0c000000u
#define PLIC_PRIORITY(s) (*(volatile uint32_t *)(PLIC + 4u * (s)))
#define PLIC_ENABLE_M(h) (*(volatile uint32_t *)(PLIC + 0x2000u + 0x100u * (h))) /* context 2h: M-mode */
#define PLIC_THRESHOLD_M(h) (*(volatile uint32_t *)(PLIC + 0x200000u + 0x2000u * (h)))
#define PLIC_CLAIM_M(h) (*(volatile uint32_t *)(PLIC + 0x200004u + 0x2000u * (h)))

/* The per-hart instruction counters that instret_plugin.c keeps in the last page of RAM
 * (link.ld leaves it out of the firmware; its layout: hal/common/icnt_page.h). */
#define ICNT_PAGE 0x87fff000u

#define MIE_MSIE (1u << 3)
#define MIE_MTIE (1u << 7)
#define MIE_MEIE (1u << 11)

/* Memory levels: hal/common/sim_memory.c. */

const char *hal_target_name(void) { return "qemu-rv32"; }

/* ---- CSRs -------------------------------------------------------------------------------- */
#define csr_read(name) ({ uint32_t v_; __asm__ volatile("csrr %0, " #name : "=r"(v_)); v_; })
#define csr_write(name, v) __asm__ volatile("csrw " #name ", %0" : : "r"((uint32_t)(v)))

static inline void wfi(void) { __asm__ volatile("wfi" ::: "memory"); }

/* Retired instructions of the calling hart. QEMU's minstret is no such counter (without
 * -icount it returns the host's time-stamp counter; with it, one count for all harts), so
 * the count comes from instret_plugin.c's page when the launcher loaded the plugin, and is
 * 0 ("no counter", as protocol.md allows) when it did not. */
static int icnt_present; /* set by hart 0 in hal_init, before the first fork */

static uint64_t own_instret(unsigned hart)
{
    return icnt_present ? icnt_page_count(ICNT_PAGE, hart) : 0;
}

static uint64_t mtime(void)
{
    uint32_t hi, lo;
    do {
        hi = CLINT_MTIME_HI;
        lo = CLINT_MTIME_LO;
    } while (hi != CLINT_MTIME_HI);
    return (uint64_t)hi << 32 | lo;
}

static void set_mtimecmp(unsigned hart, uint64_t t)
{
    CLINT_MTIMECMP_HI(hart) = 0xffffffffu; /* no spurious match while the halves change */
    CLINT_MTIMECMP_LO(hart) = (uint32_t)t;
    CLINT_MTIMECMP_HI(hart) = (uint32_t)(t >> 32);
}

/* ---- timer ------------------------------------------------------------------------------- */
uint32_t hal_timer_ticks(void) { return CLINT_MTIME_LO; }
uint32_t hal_timer_hz(void) { return MTIME_HZ; }

/* ---- DMA: the controller hart plays the DMA engine ------------------------------------------
 * QEMU virt has no DMA engine. Worker 0 issues every transfer (model.c); if it copied them
 * itself, its instruction count would carry all the weight traffic and the workers' counts
 * would no longer show how the compute splits. So transfers go into a ring that hart 0,
 * idle in the fork's join anyway, copies from: the copy overlaps the workers' compute as the
 * real DMA does, and hart 0's count includes the copies. */
#define DMA_RING 16u
typedef struct { void *dst; const void *src; size_t bytes; } dma_desc;
static dma_desc dma_ring[DMA_RING];
static uint32_t dma_issued, dma_done; /* transfers issued (worker 0) / completed (hart 0) */

static void wake(unsigned hart);

hal_dma_id hal_dma_copy_async(void *dst, const void *src, size_t bytes)
{
    uint32_t id = dma_issued; /* only worker 0 writes it */
    while (id - __atomic_load_n(&dma_done, __ATOMIC_ACQUIRE) >= DMA_RING) /* ring full: rare */
        __asm__ volatile("" ::: "memory");
    dma_ring[id % DMA_RING] = (dma_desc){dst, src, bytes};
    __atomic_store_n(&dma_issued, id + 1u, __ATOMIC_RELEASE);
    wake(0);
    return id + 1u;
}

void hal_dma_wait(hal_dma_id id)
{
    for (;;) { /* only worker 0 (hart 1) issues and waits */
        CLINT_MSIP(1) = 0;
        __sync_synchronize();
        if ((int32_t)(__atomic_load_n(&dma_done, __ATOMIC_ACQUIRE) - id) >= 0) return;
        __asm__ volatile("wfi" ::: "memory");
    }
}

/* Word copy where both ends are 4-byte aligned (every tile array is): picolibc's memcpy is
 * built for size and copies bytes, which would make hart 0's count 4x the traffic. */
static void dma_copy(void *dst, const void *src, size_t bytes)
{
    if ((((uintptr_t)dst | (uintptr_t)src) & 3u) == 0) {
        uint32_t *d = dst;
        const uint32_t *s = src;
        size_t words = bytes / 4u;
        for (size_t i = 0; i < words; i++) d[i] = s[i];
        dst = d + words;
        src = s + words;
        bytes -= words * 4u;
    }
    memcpy(dst, src, bytes);
}

/* Hart 0: copy every issued transfer, waking worker 0 after each. */
static void dma_serve(void)
{
    uint32_t done = dma_done;
    while (done != __atomic_load_n(&dma_issued, __ATOMIC_ACQUIRE)) {
        const dma_desc *d = &dma_ring[done % DMA_RING];
        dma_copy(d->dst, d->src, d->bytes);
        __atomic_store_n(&dma_done, ++done, __ATOMIC_RELEASE);
        wake(1);
    }
}

/* ---- cluster: fork/join and barrier over AMOs, waiting in WFI, woken by CLINT msip -------- */
static volatile hal_task_fn fork_fn;
static void *volatile fork_arg;
static uint32_t fork_gen;      /* bumped by each fork: a worker runs once per new value */
static uint32_t fork_done;     /* workers finished with the current fork */
static uint32_t bar_count;     /* arrivals at the current barrier */
static uint32_t bar_gen;       /* bumped by the last arrival: releases the others */
/* Each worker's instruction count at the end of its last task: the controller cannot read another
 * hart's counter, so workers publish theirs before joining. */
static volatile uint64_t worker_instret[TDN_WORKERS];

/* Sleep until *word != old. Clearing our msip before the check and sleeping only after it
 * means a wake-up sent in between leaves msip pending, so WFI returns at once. */
static void wait_change(const uint32_t *word, uint32_t old, unsigned hart)
{
    for (;;) {
        CLINT_MSIP(hart) = 0;
        __sync_synchronize();
        if (__atomic_load_n(word, __ATOMIC_ACQUIRE) != old) return;
        wfi();
    }
}

static void wake(unsigned hart)
{
    __sync_synchronize(); /* the flag is visible before the interrupt */
    CLINT_MSIP(hart) = 1;
}

void hal_cluster_fork(hal_task_fn fn, void *arg)
{
    fork_fn = fn;
    fork_arg = arg;
    __atomic_store_n(&fork_done, 0, __ATOMIC_RELAXED);
    __atomic_fetch_add(&fork_gen, 1, __ATOMIC_RELEASE);
    for (unsigned h = 1; h <= TDN_WORKERS; h++) wake(h);
    for (;;) { /* join: the last worker to finish wakes the controller; so does each DMA */
        CLINT_MSIP(0) = 0;
        __sync_synchronize();
        dma_serve();
        if (__atomic_load_n(&fork_done, __ATOMIC_ACQUIRE) == TDN_WORKERS) return;
        wfi();
    }
}

void hal_cluster_barrier(unsigned core)
{
    uint32_t gen = __atomic_load_n(&bar_gen, __ATOMIC_ACQUIRE);
    if (__atomic_add_fetch(&bar_count, 1, __ATOMIC_ACQ_REL) == TDN_WORKERS) {
        __atomic_store_n(&bar_count, 0, __ATOMIC_RELAXED); /* nobody arrives until gen moves */
        __atomic_fetch_add(&bar_gen, 1, __ATOMIC_RELEASE);
        for (unsigned c = 0; c < TDN_WORKERS; c++)
            if (c != core) wake(c + 1);
    } else {
        wait_change(&bar_gen, gen, core + 1);
    }
}

/* Harts 1..8 (start.S): wait for a fork, run the task, publish the instruction count, join. */
void hal_worker_entry(unsigned hart)
{
    uint32_t seen = 0;
    csr_write(mie, MIE_MSIE);
    for (;;) {
        wait_change(&fork_gen, seen, hart);
        seen = __atomic_load_n(&fork_gen, __ATOMIC_ACQUIRE);
        fork_fn(hart - 1, fork_arg);
        worker_instret[hart - 1] = own_instret(hart);
        if (__atomic_add_fetch(&fork_done, 1, __ATOMIC_ACQ_REL) == TDN_WORKERS) wake(0);
    }
}

uint64_t hal_instret(unsigned hart)
{
    if (hart == 0) return own_instret(0);
    return hart <= TDN_WORKERS ? worker_instret[hart - 1] : 0;
}

/* ---- transport: the 16550 UART, polled, with the CLINT for timeouts ---------------------- */
static void uart_putc(uint8_t c)
{
    uint64_t deadline = mtime() + MTIME_HZ / 10u; /* QEMU drains at once; bounded anyway */
    while (!(UART_REG(UART_LSR) & LSR_THRE))
        if (mtime() > deadline) return;
    UART_REG(UART_RBR) = c;
}

int hal_transport_read(uint8_t *buf, size_t max, uint32_t timeout_ms)
{
    uint64_t deadline = mtime() + (uint64_t)timeout_ms * (MTIME_HZ / 1000u);
    size_t n = 0;
    for (;;) {
        CLINT_MSIP(0) = 0; /* a join's late wake-up must not keep WFI from sleeping */
        while (n < max && (UART_REG(UART_LSR) & LSR_DR)) buf[n++] = UART_REG(UART_RBR);
        if (n > 0 || mtime() >= deadline) return (int)n;
        /* Nothing yet: sleep until the UART's receive interrupt or the deadline. A byte that
         * arrived after the check above keeps the PLIC's interrupt pending, so WFI does not
         * sleep through it. Polling instead is slower: the spinning hart takes the host CPU
         * that QEMU's I/O thread needs to refill the FIFO (measured: 3x slower uploads). */
        set_mtimecmp(0, deadline);
        wfi();
        PLIC_CLAIM_M(0) = PLIC_CLAIM_M(0); /* claim and complete: re-arm the gateway */
        set_mtimecmp(0, UINT64_MAX);
    }
}

int hal_transport_write(const uint8_t *buf, size_t n)
{
    for (size_t i = 0; i < n; i++) uart_putc(buf[i]);
    return 0;
}

/* picolibc's stdio (main.c reports a failed start on stderr): the UART. */
static int uart_stdio_put(char c, FILE *f)
{
    (void)f;
    uart_putc((uint8_t)c);
    return (unsigned char)c;
}

static FILE uart_stdio = FDEV_SETUP_STREAM(uart_stdio_put, NULL, NULL, _FDEV_SETUP_WRITE);
FILE *const stdout = &uart_stdio;
FILE *const stderr = &uart_stdio;

int hal_init(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    UART_REG(UART_IER) = 0;
    /* Divisor 1 (115200 baud at QEMU's 1.8432 MHz clock): QEMU does not pace bytes by it, but
     * its receive timeout (4 character times) is what wakes us for a packet's last few bytes. */
    UART_REG(UART_LCR) = 0x80;
    UART_REG(0) = 1;
    UART_REG(1) = 0;
    UART_REG(UART_LCR) = 0x03; /* 8N1 */
    /* FIFOs on, trigger level 14: QEMU hands the UART as many bytes per main-loop turn as the
     * trigger level allows, so level 1 would move one byte per turn (~6 kB/s). Not cleared:
     * the host may have sent its first request while this hart was still clearing .bss. */
    UART_REG(UART_FCR) = 0xC1;
    UART_REG(UART_IER) = 0x01; /* receive-data interrupt: wakes the controller's WFI */
    PLIC_PRIORITY(UART_IRQ) = 1;
    PLIC_ENABLE_M(0) = 1u << UART_IRQ;
    PLIC_THRESHOLD_M(0) = 0;
    set_mtimecmp(0, UINT64_MAX);
    icnt_present = icnt_page_ready(ICNT_PAGE, TDN_WORKERS + 1u);
    csr_write(mie, MIE_MSIE | MIE_MTIE | MIE_MEIE);
    return 0;
}

/* A trap is a firmware bug: say where on the UART (the host sees garbage, then a silent
 * device: its timeouts cover it) and stop this hart. */
void hal_trap(uint32_t cause, uint32_t epc, uint32_t tval)
{
    fprintf(stderr, "\r\nTRAP hart %lu mcause %lx mepc %lx mtval %lx\r\n",
            (unsigned long)csr_read(mhartid), (unsigned long)cause, (unsigned long)epc,
            (unsigned long)tval);
    for (;;) wfi();
}

/* start.S: hart 0 after .bss is cleared. */
int main(int argc, char **argv);
void hal_controller_entry(void)
{
    static char name[] = "tdn-qemu";
    char *argv[] = {name, NULL};
    main(1, argv);
}
