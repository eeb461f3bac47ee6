/* hal_cm.c - the HAL for a single-core Cortex-M under QEMU (`mps2-an500`, Cortex-M7 + FPU, or
 * with -DTDN_BOARD_AN547 `mps3-an547`, Cortex-M55):
 * the one core is the controller and the only worker (TDN_WORKERS = 1), so a fork is a call
 * and a barrier has nobody to wait for; the weights are read in place (TDN_WEIGHTS_IN_PLACE),
 * so there is no L1 and no DMA. The CMSDK APB UART0 is the byte transport; a free-running
 * counter on the system clock is the frame timer (the CMSDK dual timer's first timer on the
 * AN500, the SSE-300 system counter on the AN547); SysTick's 1 ms interrupt paces the timeouts
 * and wakes the idle loop; retired instructions come from the TCG plugin of
 * hal/qemu-rv32/instret_plugin.c (QEMU models no DWT cycle counter).
 *
 * The controller waiting for bytes sleeps in WFI with PRIMASK set, so an interrupt that arrives
 * between the check and the WFI still wakes it (the Cortex-M race-free idle pattern); the UART's
 * receive interrupt and the 1 ms SysTick are the only wake-ups.
 */
#include <stdio.h>
#include <string.h>

#include "tdn/config.h"
#include "tdn/hal.h"

#include "../common/icnt_page.h"

#if TDN_WORKERS != 1 || !TDN_WEIGHTS_IN_PLACE
#error "hal/cortex-m is single-core: build with -DTDN_WORKERS=1 -DTDN_WEIGHTS_IN_PLACE=1"
#endif

/* ---- the board: QEMU mps2-an500 (Cortex-M7) or mps3-an547 (Cortex-M55) ---------------------- */
#if defined(TDN_BOARD_AN547)
/* mps3-an547 (QEMU hw/arm/mps2-tz.c, ARM AN547): UART0 behind the secure APB PPC, RX on IRQ 33;
 * SYSCLK 32 MHz, which also drives the SSE-300 system counter (QEMU hw/arm/armsse.c: its
 * control frame, Secure only, and its status frame with the 64-bit count); the counter page
 * is the last 4 kB of the 2 GB DDR (the machine's RAM). */
#define UART0 0x49303000u
#define UART0_RX_IRQ 33u
#define CPU_HZ 32000000u
#define SYSCOUNTER_CNTCR (*(volatile uint32_t *)0x58100000u) /* bit 0: enable */
#define SYSCOUNTER_CNTCV_LOW (*(volatile uint32_t *)0x48101000u)
#define ICNT_PAGE 0xdffff000u
#define TARGET_NAME "qemu-m55"
#else
/* mps2-an500 (QEMU hw/arm/mps2.c, ARM AN500): UART0 RX on IRQ 0, TX on IRQ 1; SYSCLK 25 MHz,
 * which also clocks the CMSDK APB dual timer; the counter page is the last 4 kB of the 16 MB
 * PSRAM (the machine's RAM). */
#define UART0 0x40004000u
#define UART0_RX_IRQ 0u
#define CPU_HZ 25000000u
#define DUALTIMER 0x40002000u
#define TIMER1_LOAD (*(volatile uint32_t *)(DUALTIMER + 0x00u))
#define TIMER1_VALUE (*(volatile uint32_t *)(DUALTIMER + 0x04u))
#define TIMER1_CONTROL (*(volatile uint32_t *)(DUALTIMER + 0x08u))
#define TIMER_ENABLE 0x80u /* free-running (not periodic), no interrupt, no prescale */
#define TIMER_SIZE_32 0x02u
#define ICNT_PAGE 0x60fff000u
#define TARGET_NAME "qemu-m7"
#endif

#define UART_REG(off) (*(volatile uint32_t *)(UART0 + (off)))
#define UART_DATA 0x00u
#define UART_STATE 0x04u  /* bit 0 TX full, bit 1 RX full */
#define UART_CTRL 0x08u   /* bit 0 TX enable, bit 1 RX enable, bit 3 RX interrupt enable */
#define UART_INT 0x0Cu    /* read: status, write 1: clear; bit 1 RX */
#define UART_BAUDDIV 0x10u
#define STATE_TXFULL 1u
#define STATE_RXFULL 2u

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define NVIC_ISER(n) (*(volatile uint32_t *)(0xE000E100u + 4u * (n)))
#define SYSTICK_PERIOD (CPU_HZ / 1000u) /* SysTick on the processor clock (SYSCLK on QEMU's boards) */

/* The instruction counter page (hal/common/icnt_page.h) lies at ICNT_PAGE, which the launcher
 * makes a shared file (link.ld keeps the firmware out of it). */

const char *hal_target_name(void) { return TARGET_NAME; }

/* ---- interrupts ---------------------------------------------------------------------------- */
static inline void irq_off(void) { __asm__ volatile("cpsid i" ::: "memory"); }
static inline void irq_on(void) { __asm__ volatile("cpsie i" ::: "memory"); }
static inline void wfi(void) { __asm__ volatile("dsb\n\twfi" ::: "memory"); }

static volatile uint32_t systick_ms; /* SysTick periods since hal_init: the timeouts' clock */

void hal_systick_handler(void) { systick_ms++; }

/* The byte is read by the polling loop; the handler only acknowledges the interrupt. */
void hal_uart_rx_handler(void) { UART_REG(UART_INT) = STATE_RXFULL; }

/* ---- timer: a free-running 32-bit count of the system clock ---------------------------------
 * One register read, not a composition of SysTick's count and a count of its wraps: QEMU
 * reloads SysTick on its I/O thread and the vCPU takes the interrupt only at its next block,
 * so such a clock read one period early now and then, and when the host starved QEMU the
 * wraps coalesced and frames read low or 0 ticks. This counter is computed from QEMU's clock
 * at each read. */
uint32_t hal_timer_ticks(void)
{
#if defined(TDN_BOARD_AN547)
    return SYSCOUNTER_CNTCV_LOW; /* counts up; its low word wraps as a u32 clock should */
#else
    return ~TIMER1_VALUE; /* counts down from 0xffffffff and wraps there */
#endif
}

uint32_t hal_timer_hz(void) { return CPU_HZ; }

/* ---- cluster: one core, so the worker's task runs here, now -------------------------------- */
void hal_cluster_fork(hal_task_fn fn, void *arg) { fn(0, arg); }
void hal_cluster_barrier(unsigned core) { (void)core; }

/* ---- DMA: the weights are read in place (TDN_WEIGHTS_IN_PLACE), so nothing issues a copy;
 * a plain copy keeps the interface whole. ------------------------------------------------------ */
hal_dma_id hal_dma_copy_async(void *dst, const void *src, size_t bytes)
{
    memcpy(dst, src, bytes);
    return 1;
}
void hal_dma_wait(hal_dma_id id) { (void)id; }

/* ---- instruction counts -------------------------------------------------------------------- */
static int icnt_present;

/* The core is both the controller (hart 0) and worker 0 (hart 1); its count is reported once,
 * as the worker's, so that a sum over harts counts each instruction once. */
uint64_t hal_instret(unsigned hart)
{
    if (!icnt_present || hart != 1) return 0;
    return icnt_page_count(ICNT_PAGE, 0); /* the one vCPU's slot */
}

/* ---- transport: UART0 ---------------------------------------------------------------------- */
static void uart_putc(uint8_t c)
{
    uint32_t start = systick_ms;
    while (UART_REG(UART_STATE) & STATE_TXFULL) /* QEMU drains at once; bounded anyway */
        if (systick_ms - start > 100u) return;
    UART_REG(UART_DATA) = c;
}

int hal_transport_read(uint8_t *buf, size_t max, uint32_t timeout_ms)
{
    uint32_t start = systick_ms;
    size_t n = 0;
    for (;;) {
        /* QEMU's CMSDK UART holds one byte: take it, and the next arrives once this one is
         * read (its receive interrupt wakes the WFI below when the host is slower). */
        while (n < max && (UART_REG(UART_STATE) & STATE_RXFULL)) buf[n++] = (uint8_t)UART_REG(UART_DATA);
        if (n > 0) return (int)n;
        if (systick_ms - start >= timeout_ms) return 0;
        /* Sleep, not spin: a spinning core's register reads contend with QEMU's I/O thread for
         * its lock, and uploads measured 2-4x slower with 200-5000 polls before each sleep. */
        irq_off();
        if (!(UART_REG(UART_STATE) & STATE_RXFULL)) wfi();
        irq_on();
    }
}

int hal_transport_write(const uint8_t *buf, size_t n)
{
    for (size_t i = 0; i < n; i++) uart_putc(buf[i]);
    return 0;
}

/* picolibc's stdio (main.c and the fault handler report on stderr): the UART. */
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
    UART_REG(UART_BAUDDIV) = 16u; /* the smallest legal divisor; QEMU does not pace bytes by it */
    UART_REG(UART_CTRL) = 0x1u | 0x2u | 0x8u; /* TX, RX, RX interrupt */
    NVIC_ISER(UART0_RX_IRQ / 32u) = 1u << (UART0_RX_IRQ % 32u);
    SYST_RVR = SYSTICK_PERIOD - 1u;
    SYST_CVR = 0;
    SYST_CSR = 0x7u; /* enable, interrupt, processor clock */
#if defined(TDN_BOARD_AN547)
    SYSCOUNTER_CNTCR = 1u; /* enable; no scaling: one count per SYSCLK */
#else
    TIMER1_CONTROL = 0;
    TIMER1_LOAD = 0xffffffffu;
    TIMER1_CONTROL = TIMER_ENABLE | TIMER_SIZE_32;
#endif
    icnt_present = icnt_page_ready(ICNT_PAGE, 1u);
    irq_on();
    return 0;
}

/* A fault is a firmware bug: say which on the UART (the host sees garbage, then a silent
 * device: its timeouts cover it) and stop. */
void hal_fault(uint32_t ipsr, const uint32_t *frame)
{
    fprintf(stderr, "\r\nFAULT exception %lu pc %lx lr %lx\r\n", (unsigned long)ipsr,
            (unsigned long)frame[6], (unsigned long)frame[5]);
    irq_off();
    for (;;) wfi();
}
