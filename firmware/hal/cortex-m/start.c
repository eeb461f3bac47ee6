/* start.c - reset and the vector table for a Cortex-M under QEMU: clear .bss, turn the FPU on
 * (round to nearest even, no flush-to-zero), then main. QEMU loads the
 * ELF's segments where they belong (.data included), so nothing is copied from flash.
 */
#include <stdint.h>

extern uint32_t __bss_start[], __bss_end[], __stack_top[];
int main(int argc, char **argv);
void hal_systick_handler(void);
void hal_uart_rx_handler(void);
void hal_fault(uint32_t ipsr, const uint32_t *frame);

#define CPACR (*(volatile uint32_t *)0xE000ED88u)
#define CCR (*(volatile uint32_t *)0xE000ED14u)

void reset_handler(void);
void fault_handler(void);

__attribute__((noreturn)) void reset_handler(void)
{
    static char name[] = "tdn-qemu-cm";
    char *argv[] = {name, 0};
    for (uint32_t *p = __bss_start; p < __bss_end; p++) *p = 0;
    CPACR |= 0xFu << 20; /* CP10 and CP11: full access to the FPU */
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    {   /* round to nearest even, no flush-to-zero, no default NaN, IEEE half, no flags; the
         * other bits stay (on v8.1-M, LTPSIZE: 4 = no tail predication, which loops need) */
        uint32_t fpscr;
        __asm__ volatile("vmrs %0, fpscr" : "=r"(fpscr));
        fpscr &= ~((0x1Fu << 22) | 0x9Fu);
        __asm__ volatile("vmsr fpscr, %0" : : "r"(fpscr));
    }
    CCR |= 1u << 4; /* DIV_0_TRP: a division by zero in integer code faults instead of reading 0 */
    main(1, argv);
    for (;;) __asm__ volatile("wfi");
}

/* Any fault: hand the exception number and the stacked frame to the HAL's reporter. */
__attribute__((naked)) void fault_handler(void)
{
    __asm__ volatile("tst lr, #4\n\t"
                     "ite eq\n\t"
                     "mrseq r1, msp\n\t"
                     "mrsne r1, psp\n\t"
                     "mrs r0, ipsr\n\t"
                     "b hal_fault\n");
}

typedef void (*vector)(void);
#if defined(TDN_BOARD_AN547)
#define UART0_RX_IRQ 33 /* mps3-an547 */
#else
#define UART0_RX_IRQ 0 /* mps2-an500 */
#endif
/* The 16 system exceptions, then external interrupts up to UART0's receive interrupt. */
__attribute__((section(".vectors"), used)) static const vector vectors[16 + UART0_RX_IRQ + 1] = {
    [0] = (vector)(uintptr_t)__stack_top,
    [1] = reset_handler,
    [2 ... 6] = fault_handler, /* NMI, HardFault, MemManage, BusFault, UsageFault */
    [7] = fault_handler,       /* SecureFault (v8-M) */
    [11] = fault_handler,      /* SVCall */
    [12] = fault_handler,      /* DebugMonitor */
    [14] = fault_handler,      /* PendSV */
    [15] = hal_systick_handler,
    [16 + UART0_RX_IRQ] = hal_uart_rx_handler,
};
