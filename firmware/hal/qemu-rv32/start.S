/* start.S - reset entry for every hart of QEMU virt (-bios none jumps all harts to 0x80000000
 * in M-mode, a0 = mhartid). Hart 0 clears .bss and runs main (the controller); harts 1..8
 * wait for it, then park in the HAL's worker loop; any further hart sleeps forever.
 * Interrupts stay globally off (mstatus.MIE = 0): WFI still wakes on an interrupt enabled in
 * mie, which is all the HAL needs, so there is no interrupt handler, only a trap reporter.
 */
#define HARTS 9
#define STACK_SHIFT 15          /* 32 kB per hart */

    .section .text.init, "ax"
    .globl _start
_start:
    .option push
    .option norelax
    la      gp, __global_pointer$
    .option pop
    csrw    mie, zero
    la      t0, trap_entry
    csrw    mtvec, t0
    li      t0, 0x2000          /* mstatus.FS = initial: the F extension is on */
    csrs    mstatus, t0
    fscsr   zero                /* round to nearest even, no flags */
    csrr    a0, mhartid
    li      t0, HARTS
    bgeu    a0, t0, park
    la      sp, __stacks_end    /* hart h's stack ends 32 kB * h below the top */
    slli    t0, a0, STACK_SHIFT
    sub     sp, sp, t0
    bnez    a0, worker

    la      t0, __bss_start
    la      t1, __bss_end
1:  bgeu    t0, t1, 2f
    sw      zero, 0(t0)
    addi    t0, t0, 4
    j       1b
2:  fence
    la      t0, boot_done       /* in .data: not cleared above */
    li      t1, 1
    sw      t1, 0(t0)
    call    hal_controller_entry
    j       park

worker:
    la      t0, boot_done
3:  lw      t1, 0(t0)
    beqz    t1, 3b
    fence
    call    hal_worker_entry    /* a0 = hart id; never returns */
park:
    wfi
    j       park

    .align  2
trap_entry:
    csrr    a0, mcause
    csrr    a1, mepc
    csrr    a2, mtval
    call    hal_trap            /* reports on the UART and stops this hart */
    j       park

    .section .data
    .globl  boot_done
    .align  2
boot_done:
    .word   0
