; sysinstr.asm - system instructions in 64-bit mode:
;   lgdt/sgdt, lidt/sidt; CPUID (only "max leaf >= N" and feature bits this
;   image needs, never vendor strings or model data); RDMSR/WRMSR round
;   trips of IA32_STAR, IA32_LSTAR, IA32_FMASK, IA32_KERNEL_GS_BASE;
;   SWAPGS; SYSRET to CPL3 and SYSCALL back, twice; CMPXCHG16B and
;   CMPXCHG8B (success and failure), LOCK XADD, LOCK CMPXCHG, BTS/BTR with a
;   bit offset beyond the operand; REP OUTSB to port 0xE9.

%define IMAGE_NAME "sysinstr"
%include "inc/boot.inc"
%include "inc/modes.inc"

IA32_EFER           equ 0xC0000080
IA32_STAR           equ 0xC0000081
IA32_LSTAR          equ 0xC0000082
IA32_FMASK          equ 0xC0000084
IA32_GS_BASE        equ 0xC0000101
IA32_KERNEL_GS_BASE equ 0xC0000102
USTACK              equ 0x70000
SCRATCH             equ 0x30000

bits 16
main16:
        ENTER_PM32 pm32

bits 32
pm32:
        LOAD_FLAT32 0x80000
        ENTER_LONG64 lm64

%include "inc/print64.inc"

; RDMSR_SHOW "label", msr: prints "label=EDX:EAX" as 16 hex digits
%macro RDMSR_SHOW 2
        mov ecx, %2
        rdmsr
        shl rdx, 32
        or rax, rdx
        SHOW64 %1, rax
%endmacro
; WRMSR64 msr, value64 (clobbers RAX, RCX, RDX)
%macro WRMSR64 2
        mov ecx, %1
        mov rax, %2
        mov rdx, rax
        shr rdx, 32
        wrmsr
%endmacro

lm64:
        LOAD_FLAT64 0x80000
        PUTS64 "64-bit mode", 10

        ; ------------------------------------------------ sgdt / sidt
        sgdt [SCRATCH]
        PUTS64 "sgdt: limit="
        HEX16_64 word [SCRATCH]
        PUTS64 " base="
        HEX64 [SCRATCH + 2]
        call putnl64
        lidt [rel test_idtr]
        sidt [SCRATCH]
        PUTS64 "sidt after lidt: limit="
        HEX16_64 word [SCRATCH]
        PUTS64 " base="
        HEX64 [SCRATCH + 2]
        call putnl64

        ; -------------------------------------------------------- cpuid
        xor eax, eax
        cpuid
        cmp eax, 0xD
        setae bl
        PUTS64 "cpuid.0: max basic leaf >= 0000000D: "
        HEX8_64 bl
        call putnl64
        mov eax, 0x80000000
        cpuid
        cmp eax, 0x80000008
        setae bl
        PUTS64 "cpuid.80000000: max extended leaf >= 80000008: "
        HEX8_64 bl
        call putnl64
        mov eax, 1
        cpuid
        bt ecx, 13
        setc bl
        PUTS64 "cpuid.1: cx16="
        HEX8_64 bl
        mov eax, 0x80000001
        cpuid
        bt edx, 11
        setc bl
        PUTS64 " syscall="
        HEX8_64 bl
        bt edx, 20
        setc bl
        PUTS64 " nx="
        HEX8_64 bl
        bt edx, 29
        setc bl
        PUTS64 " lm="
        HEX8_64 bl
        call putnl64

        ; ------------------------------------------------ MSR round trips
        mov ecx, IA32_EFER
        rdmsr
        or eax, 1                       ; SCE
        wrmsr
        RDMSR_SHOW "efer", IA32_EFER
        WRMSR64 IA32_STAR, 0x0038002812345678
        RDMSR_SHOW "star", IA32_STAR
        lea rbx, [rel syscall_entry]
        WRMSR64 IA32_LSTAR, rbx
        RDMSR_SHOW "lstar", IA32_LSTAR
        WRMSR64 IA32_FMASK, 0x40700     ; AC | DF | IF | TF
        RDMSR_SHOW "fmask", IA32_FMASK

        ; ---------------------------------------------------------- swapgs
        lea rbx, [rel gs_a]
        WRMSR64 IA32_GS_BASE, rbx
        lea rbx, [rel gs_b]
        WRMSR64 IA32_KERNEL_GS_BASE, rbx
        SHOW64 "[gs:0] before swapgs", [gs:0]
        swapgs
        SHOW64 "[gs:0] after swapgs ", [gs:0]
        mov ecx, IA32_GS_BASE
        rdmsr
        shl rdx, 32
        or rax, rdx
        lea rbx, [rel gs_b]
        sub rax, rbx
        SHOW64 "gs_base - gs_b", rax
        mov ecx, IA32_KERNEL_GS_BASE
        rdmsr
        shl rdx, 32
        or rax, rdx
        lea rbx, [rel gs_a]
        sub rax, rbx
        SHOW64 "kernel_gs_base - gs_a", rax
        swapgs

        ; ------------------------------------------------ sysret / syscall
        PUTS64 "sysretq to CPL3 (r11 = 0000000000000CD7)", 10
        mov [rel kernel_rsp], rsp
        lea rcx, [rel user_code]
        mov r11d, 0xCD7                 ; CF PF AF ZF SF DF OF, IF=0
        mov rsp, USTACK
        o64 sysret

after_syscalls:
        mov rsp, [rel kernel_rsp]
        PUTS64 "back in the kernel", 10

        ; ------------------------------------------------ atomics
        mov rdi, SCRATCH + 0x100        ; 16-byte aligned
        mov rax, 0x1111111111111111
        mov [rdi], rax
        mov rax, 0x2222222222222222
        mov [rdi + 8], rax
        mov rax, 0x1111111111111111     ; expected (matches)
        mov rdx, 0x2222222222222222
        mov rbx, 0x3333333333333333     ; new value
        mov rcx, 0x4444444444444444
        lock cmpxchg16b [rdi]
        setz r8b
        PUTS64 "cmpxchg16b (match): zf="
        HEX8_64 r8b
        PUTS64 " mem="
        HEX64 [rdi + 8]
        PUTS64 ":"
        HEX64 [rdi]
        call putnl64
        mov rax, 0x1111111111111111     ; expected (does not match now)
        mov rdx, 0x2222222222222222
        mov rbx, 0x5555555555555555
        mov rcx, 0x6666666666666666
        lock cmpxchg16b [rdi]
        setz r8b
        mov r9, rax
        PUTS64 "cmpxchg16b (mismatch): zf="
        HEX8_64 r8b
        PUTS64 " rdx:rax="
        HEX64 rdx
        PUTS64 ":"
        HEX64 r9
        call putnl64

        mov dword [rdi], 0xAAAAAAAA
        mov dword [rdi + 4], 0xBBBBBBBB
        mov eax, 0xAAAAAAAA
        mov edx, 0xBBBBBBBB
        mov ebx, 0xCCCCCCCC
        mov ecx, 0xDDDDDDDD
        cmpxchg8b [rdi]
        setz r8b
        PUTS64 "cmpxchg8b (match): zf="
        HEX8_64 r8b
        PUTS64 " mem="
        HEX64 [rdi]
        call putnl64

        mov qword [rdi], 10
        mov eax, 5
        lock xadd [rdi], rax
        PUTS64 "lock xadd: old="
        HEX64 rax
        PUTS64 " mem="
        HEX64 [rdi]
        call putnl64
        mov eax, 15
        mov ecx, 99
        lock cmpxchg [rdi], rcx
        setz r8b
        PUTS64 "lock cmpxchg: zf="
        HEX8_64 r8b
        PUTS64 " mem="
        HEX64 [rdi]
        call putnl64

        xor eax, eax
        mov [rdi], rax
        mov [rdi + 8], rax
        mov [rdi + 16], rax
        mov eax, 100
        bts [rdi], rax                  ; bit 100 of the bit string
        mov eax, 130
        bts [rdi], rax
        mov rax, -1
        bts qword [rdi + 16], rax       ; bit -1 relative to rdi+16: bit 127
        mov eax, 130
        btr [rdi], rax
        setc r8b
        PUTS64 "bts/btr bit string: "
        HEX64 [rdi + 16]
        PUTS64 " "
        HEX64 [rdi + 8]
        PUTS64 " "
        HEX64 [rdi]
        PUTS64 " cf="
        HEX8_64 r8b
        call putnl64

        ; -------------------------------------------------- rep outsb
        lea rsi, [rel outs_msg]
        mov ecx, outs_msg_len
        mov dx, 0xE9
        rep outsb
        SHOW64 "rcx after rep outsb", rcx

        jmp shutdown64

; SYSCALL lands here at CPL0, on the user stack.
syscall_entry:
        mov [rel user_rsp], rsp
        mov rsp, [rel kernel_rsp]
        mov r12, rcx
        mov r13, r11
        mov r14, rax
        pushfq
        pop r15
        mov bx, cs
        mov dx, ss
        PUTS64 "  syscall: rax="
        HEX64 r14
        PUTS64 " rcx-user_ret="
        lea rax, [rel user_ret1]
        cmp r14, 1
        je .r1
        lea rax, [rel user_ret2]
.r1:
        neg rax
        add rax, r12
        HEX64 rax
        call putnl64
        PUTS64 "    r11="
        HEX64 r13
        PUTS64 " rflags="
        HEX64 r15
        PUTS64 " cs="
        HEX16_64 bx
        PUTS64 " ss="
        HEX16_64 dx
        call putnl64
        PUTS64 "    user cs="
        HEX16_64 di
        PUTS64 " user ss="
        HEX16_64 si
        PUTS64 " user rsp="
        HEX64 [rel user_rsp]
        call putnl64
        cmp r14, 1
        jne after_syscalls
        mov rcx, r12                    ; back to user mode
        mov r11, r13
        mov rsp, [rel user_rsp]
        o64 sysret

user_code:                              ; CPL3
        mov di, cs
        mov si, ss
        mov eax, 1
        syscall
user_ret1:
        mov eax, 2
        syscall
user_ret2:
        ud2                             ; not reached

        align 8, db 0
kernel_rsp: dq 0
user_rsp:   dq 0
gs_a:       dq 0xAAAA00000000AAAA
gs_b:       dq 0xBBBB00000000BBBB
        dw 0, 0, 0
test_idtr:  dw 0x0FFF
            dq 0x18000
outs_msg:   db "printed by rep outsb", 10
outs_msg_len equ $ - outs_msg

%include "inc/gdt.inc"
gdt_end:

%include "inc/end.inc"
