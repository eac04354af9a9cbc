; exceptions32.asm - exceptions in 32-bit protected mode.
; An IDT of 32-bit interrupt gates (vectors 0..31) routes every exception to
; one handler that prints "exception VV #MN [err=...] [cr2=...] eip=...",
; then either resumes at [resume_eip] (set by the test before the faulting
; instruction), or, for #PF, makes the page present / writable and retries
; the instruction, or, for traps (#BP, #OF), returns to the next instruction.
; Each test then prints "ok".
;
; Tests: #UD ud2; #DE div by 0 and idiv overflow; #BP int3; #OF into;
; #BR bound; #GP (selector beyond the GDT limit, far jmp to a data segment,
; write through a read-only data segment, null SS, execute-only code into
; DS); #NP (not-present data segment into DS); #SS (not-present segment into
; SS, and an access beyond the limit of SS); #TS (iret with NT=1 whose TSS
; back link is not a TSS); #PF with 32-bit (non-PAE) paging: read and write
; of a not-present page, write to a read-only page with CR0.WP=1 (and no
; fault with CR0.WP=0), instruction fetch from a not-present page.

%define IMAGE_NAME "exceptions32"
%include "inc/boot.inc"
%include "inc/modes.inc"

IDT32     equ 0x18000
TSS32     equ 0x17000
PGDIR     equ 0x10000
PGTAB     equ 0x11000                   ; maps 0..4 MiB with 4 KiB pages

SEL_TSS   equ 0x50
SEL_NP    equ 0x58                      ; data, not present
SEL_RO    equ 0x60                      ; data, read-only
SEL_XO    equ 0x68                      ; code, execute-only
SEL_SMALL equ 0x70                      ; data, limit 0xFFF (for #SS(0))
SEL_BEYOND equ 0xF8                     ; beyond the GDT limit

bits 16
main16:
        ENTER_PM32 pm32

%include "inc/print32.inc"
%include "inc/exc_names.inc"

; ------------------------------------------------------------------- IDT
%assign v 0
%rep 32
isr32_ %+ v:
  %if ((EXC_ERRMASK_PP >> v) & 1) == 0
        push dword 0                    ; no error code: push a dummy
  %endif
        push dword v
        jmp isr32_common
  %assign v v + 1
%endrep

isr32_table:
%assign v 0
%rep 32
        dd isr32_ %+ v
  %assign v v + 1
%endrep

resume_eip: dd 0
exc_count:  dd 0
saved_esp:  dd 0

isr32_common:
        pushad
        mov ebp, esp
        ; [ebp+32] vector, [ebp+36] error code, [ebp+40] EIP, [ebp+44] CS,
        ; [ebp+48] EFLAGS
        inc dword [exc_count]
        cmp dword [exc_count], 40
        jbe .print
        PUTS32 "too many exceptions, stopping", 10
        jmp shutdown32
.print:
        mov ebx, [ebp + 32]
        PUTS32 "  exception "
        HEX8 bl
        PUTS32 " #"
        lea esi, [exc_names + ebx * 4]
        call puts32
        bt [exc_errmask], ebx
        jnc .no_err
        PUTS32 " err="
        HEX32 [ebp + 36]
.no_err:
        cmp ebx, 14
        jne .no_cr2
        PUTS32 " cr2="
        mov eax, cr2
        HEX32 eax
.no_cr2:
        PUTS32 " eip="
        HEX32 [ebp + 40]
        call putnl32

        cmp ebx, 14
        je .fix_pf
        mov eax, [resume_eip]
        test eax, eax
        jz .no_resume
        mov [ebp + 40], eax
        mov dword [resume_eip], 0
        jmp .return
.no_resume:
        cmp ebx, 3                      ; #BP and #OF are traps: EIP is
        je .return                      ; already past the instruction
        cmp ebx, 4
        je .return
        PUTS32 "unexpected exception, stopping", 10
        jmp shutdown32

.fix_pf:                                ; make the page present, else writable
        mov eax, cr2
        cmp eax, 0x400000
        jae .bad_pf
        mov edx, eax
        shr edx, 12
        lea edi, [PGTAB + edx * 4]
        test dword [edi], 1
        jz .set_p
        test dword [edi], 2
        jnz .bad_pf
        or dword [edi], 2
        jmp .flush
.set_p:
        or dword [edi], 1
.flush:
        invlpg [eax]
        jmp .return                     ; retry the faulting instruction
.bad_pf:
        PUTS32 "unexpected page fault, stopping", 10
        jmp shutdown32

.return:
        and dword [ebp + 48], ~0x4000   ; clear NT in the saved EFLAGS
        popad
        add esp, 8                      ; vector and error code
        iretd

; ---------------------------------------------------------------- tests
%macro TEST 1+
        PUTS32 %1, 10
%endmacro
%macro OK 0
        PUTS32 "  ok", 10
%endmacro
; RESUME label: where the handler continues after a fault
%macro RESUME 1
        mov dword [resume_eip], %1
%endmacro

pm32:
        LOAD_FLAT32 0x80000
        PUTS32 "32-bit protected mode", 10

        ; IDT: 32-bit interrupt gates, selector 0x08, DPL 0
        mov edi, IDT32
        xor eax, eax
        mov ecx, 256 * 8 / 4
        rep stosd
        xor ecx, ecx
.idt:
        mov eax, [isr32_table + ecx * 4]
        mov edx, eax
        and eax, 0xFFFF
        or eax, SEL_CODE32 << 16
        and edx, 0xFFFF0000
        or edx, 0x8E00                  ; P, DPL0, 32-bit interrupt gate
        mov [IDT32 + ecx * 8], eax
        mov [IDT32 + ecx * 8 + 4], edx
        inc ecx
        cmp ecx, 32
        jb .idt
        lidt [idtr32]

        ; TSS (needed for the #TS test): back link = 0x10, a data segment
        mov edi, TSS32
        xor eax, eax
        mov ecx, 104 / 4
        rep stosd
        mov dword [TSS32 + 0], SEL_DATA32 ; back link
        mov dword [TSS32 + 4], 0x80000  ; ESP0
        mov dword [TSS32 + 8], SEL_DATA32 ; SS0
        mov word [TSS32 + 102], 104     ; no I/O bitmap
        mov ax, SEL_TSS
        ltr ax

        TEST "#UD: ud2"
        RESUME .ud_done
        ud2
.ud_done:
        OK

        TEST "#DE: div by zero"
        RESUME .de_done
        mov eax, 1234
        xor edx, edx
        xor ecx, ecx
        div ecx
.de_done:
        OK

        TEST "#DE: idiv 80000000/-1 overflow"
        RESUME .de2_done
        mov eax, 0x80000000
        cdq
        mov ecx, -1
        idiv ecx
.de2_done:
        OK

        TEST "#BP: int3 (trap, eip = next instruction)"
        int3
        OK

        TEST "#OF: into with OF=1 (trap)"
        mov al, 0x7F
        add al, 1
        into
        OK

        TEST "#BR: bound 20 in [0,10]"
        RESUME .br_done
        mov eax, 20
        bound eax, [bounds]
.br_done:
        OK

        TEST "#GP: mov ds, selector beyond GDT limit"
        RESUME .gp1_done
        mov ax, SEL_BEYOND
        mov ds, ax
.gp1_done:
        OK

        TEST "#GP: far jmp to a data segment"
        RESUME .gp2_done
        jmp SEL_DATA32:.gp2_done
.gp2_done:
        OK

        TEST "#GP: write through a read-only data segment"
        RESUME .gp3_done
        mov ax, SEL_RO
        mov es, ax
        mov byte [es:0x600], 1
.gp3_done:
        mov ax, SEL_DATA32
        mov es, ax
        OK

        TEST "#GP: mov ss, null selector"
        RESUME .gp4_done
        xor eax, eax
        mov ss, ax
.gp4_done:
        OK

        TEST "#GP: mov ds, execute-only code segment"
        RESUME .gp5_done
        mov ax, SEL_XO
        mov ds, ax
.gp5_done:
        OK

        TEST "#NP: mov ds, not-present segment"
        RESUME .np_done
        mov ax, SEL_NP
        mov ds, ax
.np_done:
        OK

        TEST "#SS: mov ss, not-present segment"
        RESUME .ss1_done
        mov ax, SEL_NP
        mov ss, ax
.ss1_done:
        OK

        TEST "#SS: access beyond the SS limit"
        mov [saved_esp], esp
        mov ax, SEL_SMALL
        mov ss, ax
        mov esp, 0x0F00
        RESUME .ss2_done
        mov eax, [esp + 0x200]
.ss2_done:
        mov ax, SEL_DATA32
        mov ss, ax
        mov esp, [saved_esp]
        OK

        TEST "#TS: iret with NT=1, back link = data segment"
        RESUME .ts_done
        pushfd
        or dword [esp], 0x4000
        popfd
        iretd
.ts_done:
        pushfd
        pop eax
        and eax, 0x4000
        SHOW32 "  NT after resume", eax
        OK

        ; ------------------------------------------- 32-bit paging, 4 KiB
        mov edi, PGDIR
        xor eax, eax
        mov ecx, 4096 / 4
        rep stosd
        mov dword [PGDIR], PGTAB | 3
        mov edi, PGTAB
        mov eax, 3                      ; P | RW
        mov ecx, 1024
.pte:
        stosd
        add eax, 0x1000
        loop .pte
        mov eax, PGDIR
        mov cr3, eax
        mov eax, cr0
        or eax, 0x80010000              ; PG | WP
        mov cr0, eax
        PUTS32 "paging on (32-bit, 4 KiB pages, CR0.WP=1)", 10

        mov dword [0x300010], 0x12345678
        mov byte [0x304000], 0xC3       ; ret

        TEST "#PF: read of a not-present page"
        and dword [PGTAB + 0x300 * 4], ~1
        invlpg [0x300000]
        mov eax, [0x300010]
        SHOW32 "  value read after fix", eax
        OK

        TEST "#PF: write to a not-present page"
        and dword [PGTAB + 0x301 * 4], ~1
        invlpg [0x301000]
        mov dword [0x301020], 0xCAFEF00D
        SHOW32 "  value written after fix", [0x301020]
        OK

        TEST "#PF: write to a read-only page with CR0.WP=1"
        and dword [PGTAB + 0x302 * 4], ~2
        invlpg [0x302000]
        mov dword [0x302030], 0xBEEF
        SHOW32 "  value written after fix", [0x302030]
        OK

        TEST "no #PF: write to a read-only page with CR0.WP=0"
        mov eax, cr0
        and eax, ~0x10000
        mov cr0, eax
        and dword [PGTAB + 0x303 * 4], ~2
        invlpg [0x303000]
        mov dword [0x303040], 0x600D
        SHOW32 "  value written", [0x303040]
        mov eax, cr0
        or eax, 0x10000
        mov cr0, eax
        OK

        TEST "#PF: instruction fetch from a not-present page"
        and dword [PGTAB + 0x304 * 4], ~1
        invlpg [0x304000]
        mov eax, 0x304000
        call eax
        OK

        SHOW32 "exceptions taken", [exc_count]
        jmp shutdown32

        align 4, db 0
bounds: dd 0, 10
        dw 0
idtr32: dw 256 * 8 - 1
        dd IDT32

%include "inc/gdt.inc"
        dq 0x0000890170000067           ; 0x50 TSS32 at 0x17000, limit 0x67
        dq 0x00CF12000000FFFF           ; 0x58 data RW, not present
        dq 0x00CF90000000FFFF           ; 0x60 data read-only
        dq 0x00CF98000000FFFF           ; 0x68 code execute-only
        dq 0x0040920000000FFF           ; 0x70 data RW, limit 0xFFF, B=1
gdt_end:

%include "inc/end.inc"
