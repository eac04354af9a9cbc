; exceptions64.asm - exceptions and interrupts in 64-bit mode.
; A 64-bit IDT routes vectors 0..31 and 0x80..0x83 to one handler (iretq).
; Exceptions print "exception VV #MN [err=...] [cr2=...] rip=... cs=...";
; the handler then resumes at [resume_rip] (set by the test before the
; faulting instruction), or for #PF fixes the page-table entry and retries,
; or for the #BP trap returns to the next instruction.
;
; Kernel (CPL0) tests: #UD, #DE, #GP (non-canonical data address, non-
; canonical jmp target, far jmp to a data segment, iretq with NT=1), #SS
; (non-canonical address through RBP), #BP, int 0x80, mov ss,null (no fault
; at CPL0), #PF (not-present read/write, write to read-only with CR0.WP=1,
; fetch from an XD page with EFER.NXE=1).
; User (CPL3, entered with iretq, TSS.RSP0 for the way back) tests: int 0x80
; through a DPL3 gate (frame, SS=0 in the handler), #GP for cli, hlt, mov
; from CR0, out with IOPL=0, int 0x81 through a DPL0 gate; #PF for user
; read of a supervisor page, write to a read-only page, read of a
; not-present page; #AC (CR0.AM=1, RFLAGS.AC=1, misaligned load); back to
; ring 0 with int 0x82. Finally int 0x83 through a gate with IST1.

%define IMAGE_NAME "exceptions64"
%include "inc/boot.inc"
%include "inc/modes.inc"

IDT64   equ 0x18000
TSS64   equ 0x17000
PT0     equ 0x13000                     ; 4 KiB page table for 0..2 MiB
RSP0    equ 0x88000
IST1    equ 0x8C000
USTACK  equ 0x70000
SEL_TSS equ 0x50

bits 16
main16:
        ENTER_PM32 pm32

bits 32
pm32:
        LOAD_FLAT32 0x80000
        ENTER_LONG64 lm64

%include "inc/print64.inc"
%include "inc/exc_names.inc"

; ------------------------------------------------------------------- IDT
%macro ISR64 1
isr64_%1:
  %if %1 >= 32 || ((EXC_ERRMASK_PP >> %1) & 1) == 0
        push 0                          ; no error code: push a dummy
  %endif
        push %1
        jmp isr64_common
%endmacro

%assign v 0
%rep 32
        ISR64 v
  %assign v v + 1
%endrep
        ISR64 0x80
        ISR64 0x81
        ISR64 0x82
        ISR64 0x83

        align 8, db 0
; (vector, handler, gate attributes: P | DPL | type 0xE, IST) entries
isr64_table:
%assign v 0
%rep 32
        dq v, isr64_ %+ v, 0x8E00
  %assign v v + 1
%endrep
        dq 0x80, isr64_0x80, 0xEE00     ; DPL3
        dq 0x81, isr64_0x81, 0x8E00     ; DPL0
        dq 0x82, isr64_0x82, 0xEE00     ; DPL3
        dq 0x83, isr64_0x83, 0xEE01     ; DPL3, IST1
isr64_table_end:

        align 8, db 0
resume_rip: dq 0
kernel_rsp: dq 0
exc_count:  dq 0
        dq 0                            ; (misaligned-load target below)
ac_data:    dq 0x1122334455667788, 0x99AABBCCDDEEFF00

; Stack frame in isr64_common after the 15 pushes:
F_VEC    equ 120
F_ERR    equ 128
F_RIP    equ 136
F_CS     equ 144
F_RFLAGS equ 152
F_RSP    equ 160
F_SS     equ 168

isr64_common:
        push rax
        push rbx
        push rcx
        push rdx
        push rsi
        push rdi
        push rbp
        push r8
        push r9
        push r10
        push r11
        push r12
        push r13
        push r14
        push r15
        mov rbp, rsp
        mov rbx, [rbp + F_VEC]
        cmp rbx, 0x80
        je int80
        cmp rbx, 0x82
        je int82
        cmp rbx, 0x83
        je int83

        inc qword [exc_count]
        cmp qword [exc_count], 60
        jbe .print
        PUTS64 "too many exceptions, stopping", 10
        jmp shutdown64
.print:
        PUTS64 "  exception "
        HEX8_64 bl
        cmp rbx, 32
        jae .no_name
        PUTS64 " #"
        lea rsi, [rel exc_names]
        lea rsi, [rsi + rbx * 4]
        call puts64
.no_name:
        cmp rbx, 32
        jae .no_err
        bt dword [rel exc_errmask], ebx
        jnc .no_err
        PUTS64 " err="
        HEX32_64 [rbp + F_ERR]
.no_err:
        cmp rbx, 14
        jne .no_cr2
        PUTS64 " cr2="
        mov rax, cr2
        HEX64 rax
.no_cr2:
        PUTS64 " rip="
        HEX64 [rbp + F_RIP]
        PUTS64 " cs="
        HEX16_64 word [rbp + F_CS]
        call putnl64

        cmp rbx, 14
        je .fix_pf
        cmp rbx, 17
        jne .not_ac
        and qword [rbp + F_RFLAGS], ~0x40000 ; clear AC
.not_ac:
        mov rax, [rel resume_rip]
        test rax, rax
        jz .no_resume
        mov [rbp + F_RIP], rax
        mov qword [rel resume_rip], 0
        jmp isr64_return
.no_resume:
        cmp rbx, 3                      ; #BP is a trap
        je isr64_return
        PUTS64 "unexpected exception, stopping", 10
        jmp shutdown64

.fix_pf:
        ; PTE of CR2 (only the first 2 MiB use 4 KiB pages). Not present ->
        ; set P; fetch -> clear XD; user access -> set U/S; write -> set R/W.
        mov rax, cr2
        cmp rax, 0x200000
        jae .bad_pf
        mov rdx, rax
        shr rdx, 12
        lea rdi, [PT0 + rdx * 8]
        mov rcx, [rbp + F_ERR]
        mov rdx, [rdi]
        test rdx, 1
        jz .set_p
        test rcx, 0x10
        jnz .clear_xd
        test rcx, 4
        jz .not_user
        test rdx, 4
        jz .set_u
.not_user:
        test rcx, 2
        jz .bad_pf
        test rdx, 2
        jnz .bad_pf
        or qword [rdi], 2
        jmp .flush
.set_p:
        or qword [rdi], 1
        jmp .flush
.clear_xd:
        btr qword [rdi], 63
        jmp .flush
.set_u:
        or qword [rdi], 4
.flush:
        invlpg [rax]
        jmp isr64_return                ; retry the faulting instruction
.bad_pf:
        PUTS64 "unexpected page fault, stopping", 10
        jmp shutdown64

isr64_return:
        and qword [rbp + F_RFLAGS], ~0x4000 ; clear NT
        pop r15
        pop r14
        pop r13
        pop r12
        pop r11
        pop r10
        pop r9
        pop r8
        pop rbp
        pop rdi
        pop rsi
        pop rdx
        pop rcx
        pop rbx
        pop rax
        add rsp, 16                     ; vector and error code
        iretq

; int 0x80: RAX=1 prints the string at RSI; otherwise prints the context.
int80:
        cmp qword [rbp + 15 * 8 - 8], 1 ; saved RAX (pushed first)
        jne .info
        mov rsi, [rbp + 10 * 8]         ; saved RSI
        call puts64
        call putnl64
        jmp isr64_return
.info:
        mov ax, ss
        mov dx, ds
        PUTS64 "  int 80: rax="
        HEX64 [rbp + 14 * 8]
        PUTS64 " rbx="
        HEX64 [rbp + 13 * 8]
        call putnl64
        PUTS64 "    frame: cs="
        HEX16_64 word [rbp + F_CS]
        PUTS64 " ss="
        HEX16_64 word [rbp + F_SS]
        PUTS64 " rsp="
        HEX64 [rbp + F_RSP]
        PUTS64 " rflags="
        HEX64 [rbp + F_RFLAGS]
        call putnl64
        lea rcx, [rbp + F_RIP]
        PUTS64 "    handler: ss="
        HEX16_64 ax
        PUTS64 " frame at "
        HEX64 rcx
        call putnl64
        jmp isr64_return

; int 0x82: leave user mode for good (continue in the kernel).
int82:
        lea rcx, [rbp + F_RIP]
        PUTS64 "  int 82 from cs="
        HEX16_64 word [rbp + F_CS]
        PUTS64 ", frame at "
        HEX64 rcx
        call putnl64
        mov rsp, [rel kernel_rsp]
        jmp back_in_kernel

; int 0x83: IST1 gate.
int83:
        lea rcx, [rbp + F_RIP]
        PUTS64 "  int 83 (IST1): frame at "
        HEX64 rcx
        call putnl64
        jmp isr64_return

; ---------------------------------------------------------------- tests
%macro TEST 1+
        PUTS64 %1, 10
%endmacro
%macro OK 0
        PUTS64 "  ok", 10
%endmacro
%macro RESUME 1
        lea rax, [rel %1]
        mov [rel resume_rip], rax
%endmacro

lm64:
        LOAD_FLAT64 0x80000
        PUTS64 "64-bit mode", 10

        ; 4 KiB page table for the first 2 MiB (P|RW|US), reload CR3
        mov rdi, PT0
        mov eax, 7
        mov ecx, 512
.pte:
        mov [rdi], rax
        add rax, 0x1000
        add rdi, 8
        dec ecx
        jnz .pte
        mov qword [LM_PD], PT0 | 7
        mov rax, cr3
        mov cr3, rax

        ; IDT
        mov rdi, IDT64
        xor eax, eax
        mov ecx, 256 * 16 / 4
        rep stosd
        lea rsi, [rel isr64_table]
.idt:
        mov rdx, [rsi]                  ; vector
        shl rdx, 4
        add rdx, IDT64
        mov rax, [rsi + 8]              ; handler
        mov ecx, eax
        and ecx, 0xFFFF
        or ecx, SEL_CODE64 << 16
        mov [rdx], ecx
        mov ecx, eax
        and ecx, 0xFFFF0000
        or ecx, [rsi + 16]              ; attributes, IST
        mov [rdx + 4], ecx
        shr rax, 32
        mov [rdx + 8], eax
        mov dword [rdx + 12], 0
        add rsi, 24
        lea rax, [rel isr64_table_end]
        cmp rsi, rax
        jb .idt
        lidt [rel idtr64]

        ; TSS: RSP0, IST1, no I/O bitmap
        mov rdi, TSS64
        xor eax, eax
        mov ecx, 104 / 4
        rep stosd
        mov qword [TSS64 + 4], RSP0
        mov qword [TSS64 + 36], IST1
        mov word [TSS64 + 102], 104
        mov ax, SEL_TSS
        ltr ax

        ; EFER.NXE, CR0.WP, CR0.AM
        mov ecx, 0xC0000080
        rdmsr
        or eax, 1 << 11
        wrmsr
        mov rax, cr0
        or rax, (1 << 16) | (1 << 18)
        mov cr0, rax

        TEST "#UD: ud2"
        RESUME .ud_done
        ud2
.ud_done:
        OK

        TEST "#DE: div rcx with rcx=0"
        RESUME .de_done
        mov eax, 1
        xor edx, edx
        xor ecx, ecx
        div rcx
.de_done:
        OK

        TEST "#GP: load from non-canonical 0000800000000000"
        RESUME .gp1_done
        mov rax, 0x0000800000000000
        mov rbx, [rax]
.gp1_done:
        OK

        TEST "#SS: load from non-canonical address through RBP"
        RESUME .ss_done
        mov rbp, 0x8000000000000000
        mov rbx, [rbp]
.ss_done:
        OK

        TEST "#GP: jmp to non-canonical target (rip = the jmp)"
        RESUME .gp2_done
        mov rax, 0xFFFF7FFFFFFFF000
        jmp rax
.gp2_done:
        OK

        TEST "#GP: far jmp to a data segment"
        RESUME .gp3_done
        jmp dword far [rel far_to_data] ; FF /5, m16:32 (no REX.W)
.gp3_done:
        OK

        TEST "#GP: iretq with NT=1"
        RESUME .gp4_done
        pushfq
        or qword [rsp], 0x4000
        popfq
        iretq
.gp4_done:
        OK

        TEST "#BP: int3"
        int3
        OK

        TEST "int 0x80 from CPL0"
        xor eax, eax
        mov ebx, 0x1234
        cmp eax, eax                    ; all flags defined (xor leaves AF undefined)
        int 0x80
        OK

        TEST "no fault: mov ss, null selector at CPL0 in 64-bit mode"
        xor eax, eax
        mov ss, ax
        mov bx, ss
        mov ax, SEL_DATA64
        mov ss, ax
        PUTS64 "  ss was "
        HEX16_64 bx
        call putnl64
        OK

        ; kernel page faults
        mov qword [0x180010], 0x12345678
        mov byte [0x183000], 0xC3       ; ret
        and qword [PT0 + 0x180 * 8], ~1 ; not present
        and qword [PT0 + 0x181 * 8], ~1 ; not present
        and qword [PT0 + 0x182 * 8], ~2 ; read-only
        bts qword [PT0 + 0x183 * 8], 63 ; execute-disable
        and qword [PT0 + 0x184 * 8], ~4 ; supervisor only
        and qword [PT0 + 0x185 * 8], ~2 ; read-only (user)
        and qword [PT0 + 0x186 * 8], ~1 ; not present (user)
        mov rax, cr3
        mov cr3, rax

        TEST "#PF: read of a not-present page"
        mov rax, [0x180010]
        SHOW64 "  value read after fix", rax
        OK

        TEST "#PF: write to a not-present page"
        mov dword [0x181020], 0xCAFEF00D
        SHOW32_64 "  value written after fix", [0x181020]
        OK

        TEST "#PF: write to a read-only page with CR0.WP=1"
        mov dword [0x182030], 0xBEEF
        SHOW32_64 "  value written after fix", [0x182030]
        OK

        TEST "#PF: fetch from an execute-disable page"
        mov eax, 0x183000
        call rax
        OK

        ; ------------------------------------------------ user mode
        TEST "iretq to CPL3 (rflags.AC=1, CR0.AM=1)"
        mov [rel kernel_rsp], rsp
        push SEL_UDATA | 3
        push USTACK
        push 0x40002
        push SEL_UCODE64 | 3
        lea rax, [rel user_entry]
        push rax
        iretq

back_in_kernel:
        mov ax, SEL_DATA64
        mov ds, ax
        mov es, ax
        mov ss, ax
        mov bx, cs
        PUTS64 "back in ring 0: cs="
        HEX16_64 bx
        call putnl64

        TEST "int 0x83 through an IST1 gate"
        int 0x83
        OK

        SHOW64 "exceptions taken", [rel exc_count]
        jmp shutdown64

; ------------------------------------------------------ CPL3 code
%macro UPUTS 1+
        jmp %%skip
%%str:  db %1, 0
%%skip:
        lea rsi, [rel %%str]
        mov eax, 1
        int 0x80
%endmacro

user_entry:
        UPUTS "user mode: int 0x80 with rax=0, rbx=ds"
        mov bx, ds
        movzx ebx, bx
        xor eax, eax
        cmp eax, eax                    ; all flags defined (xor leaves AF undefined)
        int 0x80

        UPUTS "#GP: cli at CPL3"
        RESUME .u1
        cli
.u1:
        UPUTS "#GP: hlt at CPL3"
        RESUME .u2
        hlt
.u2:
        UPUTS "#GP: mov rax, cr0 at CPL3"
        RESUME .u3
        mov rax, cr0
.u3:
        UPUTS "#GP: out 0xE9 at CPL3 with IOPL=0"
        RESUME .u4
        out 0xE9, al
.u4:
        UPUTS "#GP: int 0x81 (DPL0 gate) at CPL3"
        RESUME .u5
        int 0x81
.u5:
        UPUTS "#PF: user read of a supervisor page"
        mov rax, [0x184000]
        UPUTS "#PF: user write to a read-only page"
        mov dword [0x185000], 1
        UPUTS "#PF: user read of a not-present page"
        mov rax, [0x186000]
        UPUTS "#AC: misaligned load at CPL3"
        RESUME .u6
        lea rbx, [rel ac_data]
        mov rax, [rbx + 3]
.u6:
        UPUTS "user mode done, int 0x82"
        int 0x82
        ud2                             ; not reached

        align 8, db 0
far_to_data:
        dd 0                            ; offset
        dw SEL_DATA64                   ; selector (a data segment)
        align 4, db 0
        dw 0
idtr64: dw 256 * 16 - 1
        dq IDT64

%include "inc/gdt.inc"
        dq 0x0000890170000067           ; 0x50 TSS64 at 0x17000, limit 0x67
        dq 0                            ;      (base 63:32)
gdt_end:

%include "inc/end.inc"
