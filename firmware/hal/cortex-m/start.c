/* start.c - reset and the vector table for a Cortex-M under QEMU: clear .bss, turn the FPU on
 * (round to nearest even, no flush-to-zero: FPSCR's reset value), then main. QEMU loads the
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
    static char name[] = "tdn-qemu-m7";
    char *argv[] = {name, 0};
    for (uint32_t *p = __bss_start; p < __bss_end; p++) *p = 0;
    CPACR |= 0xFu << 20; /* CP10 and CP11: full access to the FPU */
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    __asm__ volatile("vmsr fpscr, %0" : : "r"(0u)); /* RN, no FZ, no DN, no flags */
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
__attribute__((section(".vectors"), used)) static const vector vectors[16 + 2] = {
    (vector)(uintptr_t)__stack_top,
    reset_handler,
    fault_handler,       /* NMI */
    fault_handler,       /* HardFault */
    fault_handler,       /* MemManage */
    fault_handler,       /* BusFault */
    fault_handler,       /* UsageFault */
    0, 0, 0, 0,
    fault_handler,       /* SVCall */
    fault_handler,       /* DebugMonitor */
    0,
    fault_handler,       /* PendSV */
    hal_systick_handler, /* SysTick */
    hal_uart_rx_handler, /* IRQ 0: UART0 RX */
    fault_handler,       /* IRQ 1: UART0 TX (never enabled) */
};
