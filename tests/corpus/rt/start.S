/*
 * start.S - entry point of the freestanding corpus image.
 *
 * vmxsim enters here in 64-bit mode, CPL0, identity paging, interrupts off,
 * with RSP 16-byte aligned.  We clear DF, re-align RSP (a no-op under the
 * documented contract), zero .bss, and call rt_main; `call` leaves RSP at
 * 8 mod 16 inside rt_main, which is what the SysV ABI expects.
 */
    .section .text.entry, "ax"
    .globl _start
    .type _start, @function
_start:
    cld
    xorl    %ebp, %ebp
    andq    $-16, %rsp
    movq    $__bss_start, %rdi
    movq    $__bss_end, %rcx
1:  cmpq    %rcx, %rdi
    jae     2f
    movq    $0, (%rdi)
    addq    $8, %rdi
    jmp     1b
2:  call    rt_main
3:  cli
    hlt
    jmp     3b
    .size _start, . - _start

    .section .note.GNU-stack, "", @progbits
