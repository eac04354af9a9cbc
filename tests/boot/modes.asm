; modes.asm - walk through the x86 operating modes, computing something in
; each one and printing the results:
;   real mode -> 16-bit protected mode -> 32-bit protected mode
;   -> 32-bit PAE paging (and back off) -> IA-32e compatibility mode
;   -> 64-bit mode.
; Every printed value is architecturally defined (no flags left undefined by
; the SDM, no timing, no CPUID-model data).

%define IMAGE_NAME "modes"
%include "inc/boot.inc"
%include "inc/modes.inc"

bits 16
main16:
        ; ---------------------------------------------------- real mode
        mov bx, sp
        PUTS16 "real mode: cs="
        HEX16_16 cs
        PUTS16 " ss="
        HEX16_16 ss
        PUTS16 " sp="
        HEX16_16 bx
        call putnl16

        ; Fletcher-16 of a string, using div for the mod-255 reductions
        mov si, fox
        mov cx, fox_len
        xor di, di                      ; sum1
        xor bp, bp                      ; sum2
        mov bx, 255
.fletcher:
        lodsb
        xor ah, ah
        add ax, di
        xor dx, dx
        div bx
        mov di, dx
        mov ax, bp
        add ax, di
        xor dx, dx
        div bx
        mov bp, dx
        loop .fletcher
        mov ax, bp
        shl ax, 8
        or ax, di
        SHOW16 "real: fletcher16", ax

        ; rep movsb a string to 0x0600 and print it from there
        mov si, copy_msg
        mov di, 0x0600
        mov cx, copy_msg_len
        rep movsb
        mov si, 0x0600
        call puts16

        ; recursive factorial with call/ret/push/pop
        mov ax, 8
        call fact16
        SHOW16 "real: 8!", ax

        ; 16x16 multiply
        mov ax, 0x1234
        mov cx, 0x5678
        mul cx
        SHOW16 "real: mul hi", dx
        SHOW16 "real: mul lo", ax

        ; 32-bit registers in real mode (operand-size prefix)
        mov eax, 0x12345678
        rol eax, 8
        bswap eax
        mov ebx, eax
        shr ebx, 16
        PUTS16 "real: bswap(rol(12345678,8))="
        HEX16_16 bx
        HEX16_16 ax
        call putnl16

        ; ------------------------------------- 16-bit protected mode
        cli
        ENABLE_A20
        lgdt [gdtr]
        mov eax, cr0
        or eax, 1
        mov cr0, eax
        jmp SEL_CODE16:pm16
pm16:
        mov ax, SEL_DATA16
        mov ds, ax
        mov es, ax
        mov ss, ax
        mov bx, cs
        PUTS16 "16-bit protected mode: cs="
        HEX16_16 bx
        PUTS16 " ds="
        HEX16_16 ds
        call putnl16

        mov ax, -300
        mov bx, 200
        imul bx
        SHOW16 "pm16: imul hi", dx
        SHOW16 "pm16: imul lo", ax
        mov al, 0x80
        cbw
        SHOW16 "pm16: cbw(80)", ax
        mov bx, hexdigits
        mov al, 11
        xlatb
        xor ah, ah
        SHOW16 "pm16: xlat(11)", ax
        mov di, scan_str
        mov al, '!'
        mov cx, scan_str_len
        repne scasb
        SHOW16 "pm16: repne scasb cx", cx
        mov ax, di
        sub ax, scan_str
        SHOW16 "pm16: repne scasb di-start", ax

        jmp dword SEL_CODE32:pm32

fact16:                                 ; AX = n -> AX = n! (16-bit)
        cmp ax, 1
        jbe .one
        push ax
        dec ax
        call fact16
        pop cx
        mul cx
        ret
.one:
        mov ax, 1
        ret

fox:            db "The quick brown fox jumps over the lazy dog"
fox_len         equ $ - fox
copy_msg:       db "real: copied by rep movsb", 10, 0
copy_msg_len    equ $ - copy_msg
hexdigits:      db "0123456789ABCDEF"
scan_str:       db "find the bang! here"
scan_str_len    equ $ - scan_str

; ------------------------------------------------- 32-bit protected mode
%include "inc/print32.inc"

pm32:
        LOAD_FLAT32 0x80000
        mov edi, esp
        mov bx, cs
        PUTS32 "32-bit protected mode: cs="
        HEX16 bx
        PUTS32 " ss="
        mov bx, ss
        HEX16 bx
        PUTS32 " esp="
        HEX32 edi
        call putnl32

        ; A20: 0x100500 must not wrap onto 0x000500
        mov dword [0x500], 0x11111111
        mov dword [0x100500], 0x22222222
        SHOW32 "pm32: [0x500] after A20", [0x500]

        ; rep stosd then sum with lodsd
        mov edi, 0x20000
        mov eax, 0x01020304
        mov ecx, 64
        rep stosd
        SHOW32 "pm32: edi after rep stosd", edi
        mov esi, 0x20000
        mov ecx, 64
        xor ebx, ebx
.sum:
        lodsd
        add ebx, eax
        loop .sum
        SHOW32 "pm32: sum", ebx

        ; xorshift32, 1000 rounds
        mov eax, 0x12345678
        mov ecx, 1000
.xs:
        mov edx, eax
        shl edx, 13
        xor eax, edx
        mov edx, eax
        shr edx, 17
        xor eax, edx
        mov edx, eax
        shl edx, 5
        xor eax, edx
        dec ecx
        jnz .xs
        SHOW32 "pm32: xorshift32", eax

        ; bit scans, extensions, double shifts, carries, setcc/cmovcc
        mov eax, 0x80000100
        bsf ecx, eax
        bsr edx, eax
        SHOW32 "pm32: bsf(80000100)", ecx
        SHOW32 "pm32: bsr(80000100)", edx
        movsx eax, byte [neg_byte]
        SHOW32 "pm32: movsx byte 85", eax
        movzx eax, word [neg_word]
        SHOW32 "pm32: movzx word 8001", eax
        mov eax, 0x12345678
        mov edx, 0x9ABCDEF0
        shld eax, edx, 8
        SHOW32 "pm32: shld", eax
        mov eax, 0x12345678
        shrd eax, edx, 12
        SHOW32 "pm32: shrd", eax
        mov eax, 0xFFFFFFFF             ; 64-bit add FFFFFFFF_FFFFFFFF + 1
        mov edx, 0xFFFFFFFF
        add eax, 1
        adc edx, 0
        setc bl
        movzx ebx, bl
        SHOW32 "pm32: add/adc lo", eax
        SHOW32 "pm32: add/adc hi", edx
        SHOW32 "pm32: carry out", ebx
        mov ecx, 5
        mov edx, 7
        cmp ecx, edx
        cmovl ecx, edx                  ; max(5, 7)
        SHOW32 "pm32: cmovl max", ecx
        mov eax, 0x0000ABCD
        mov ecx, 0x00001234
        mul ecx
        SHOW32 "pm32: mul lo", eax
        SHOW32 "pm32: mul hi", edx
        mov eax, 1000000
        xor edx, edx
        mov ecx, 7
        div ecx
        SHOW32 "pm32: 1000000/7", eax
        SHOW32 "pm32: 1000000%7", edx

        ; call with stack arguments and `ret imm16`
        push dword 0x1000
        push dword 0x0234
        call add2_stdcall
        mov edi, esp
        SHOW32 "pm32: stdcall add", eax
        SHOW32 "pm32: esp after stdcall", edi

        ; ------------------------------------------ 32-bit PAE paging
        ; PDPT at 0x14000 (PDPTEs: only P may be set), PD at 0x15000:
        ;   PD[0]  0x000000 -> phys 0x000000 (2 MiB)
        ;   PD[1]  0x200000 -> phys 0x200000
        ;   PD[2]  0x400000 -> phys 0x000000 (alias of the first 2 MiB)
        mov edi, 0x14000
        xor eax, eax
        mov ecx, 2 * 4096 / 4
        rep stosd
        mov dword [0x14000], 0x15000 | 1
        mov dword [0x15000 + 0 * 8], 0x000000 | 0x83
        mov dword [0x15000 + 1 * 8], 0x200000 | 0x83
        mov dword [0x15000 + 2 * 8], 0x000000 | 0x83
        mov eax, 0x20                   ; CR4.PAE
        mov cr4, eax
        mov eax, 0x14000
        mov cr3, eax
        mov eax, cr0
        or eax, 0x80000000
        mov cr0, eax
        jmp .pae_on                     ; (not required, customary)
.pae_on:
        mov esi, pae_msg + 0x400000     ; print through the alias
        call puts32
        mov dword [0x400000 + 0x21000], 0xA5A5F00D
        SHOW32 "pae: [0x21000] after write via alias", [0x21000]
        mov eax, cr0
        and eax, 0x7FFFFFFF
        mov cr0, eax                    ; paging off again
        PUTS32 "pae: paging off", 10

        ; ------------------------------------- IA-32e compatibility mode
        ; 4-level tables: PML4 0x10000, PDPT 0x11000, PD 0x12000
        mov edi, LM_PML4
        xor eax, eax
        mov ecx, 3 * 4096 / 4
        rep stosd
        mov dword [LM_PML4], LM_PDPT | 3
        mov dword [LM_PDPT], LM_PD | 3
        mov dword [LM_PD + 0 * 8], 0x000000 | 0x83
        mov dword [LM_PD + 1 * 8], 0x200000 | 0x83
        mov eax, 0x20
        mov cr4, eax
        mov eax, LM_PML4
        mov cr3, eax
        mov ecx, 0xC0000080
        rdmsr
        or eax, 1 << 8                  ; EFER.LME
        wrmsr
        mov eax, cr0
        or eax, 0x80000000
        mov cr0, eax                    ; -> IA-32e mode, compatibility (CS.L=0)
        mov ecx, 0xC0000080
        rdmsr
        PUTS32 "compatibility mode: efer="
        HEX32 eax
        PUTS32 " cr4="
        mov eax, cr4
        HEX32 eax
        call putnl32
        jmp SEL_CODE64:lm64

add2_stdcall:                           ; stdcall add(a, b), callee pops
        push ebp
        mov ebp, esp
        mov eax, [ebp + 8]
        add eax, [ebp + 12]
        pop ebp
        ret 8

neg_byte:       db 0x85
                align 2, db 0
neg_word:       dw 0x8001
pae_msg:        db "pae: 32-bit PAE paging on, printed via alias 0x400000+", 10, 0

; --------------------------------------------------------- 64-bit mode
%include "inc/print64.inc"

lm64:
        LOAD_FLAT64 0x80000
        mov rdi, rsp
        mov bx, cs
        PUTS64 "64-bit mode: cs="
        HEX16_64 bx
        PUTS64 " rsp="
        HEX64 rdi
        call putnl64

        mov rax, 0x123456789ABCDEF0
        mov rcx, 0x0FEDCBA987654321
        mul rcx
        SHOW64 "lm64: mul hi", rdx
        SHOW64 "lm64: mul lo", rax
        mov rdx, 1
        xor eax, eax
        mov rcx, 3
        div rcx
        SHOW64 "lm64: 2^64/3", rax
        SHOW64 "lm64: 2^64%3", rdx
        mov rax, -123456789
        cqo
        mov rcx, 1000
        idiv rcx
        SHOW64 "lm64: -123456789/1000", rax
        SHOW64 "lm64: -123456789%1000", rdx

        ; rep movsq a table, then fold it: h = rol(h, 13) ^ q
        lea rsi, [rel qtable]
        mov rdi, 0x30000
        mov ecx, 8
        rep movsq
        SHOW64 "lm64: rdi after rep movsq", rdi
        mov rsi, 0x30000
        mov ecx, 8
        xor ebx, ebx
.fold:
        lodsq
        rol rbx, 13
        xor rbx, rax
        dec ecx
        jnz .fold
        SHOW64 "lm64: fold", rbx

        ; extended registers, lea arithmetic, imul imm, movsxd
        mov r8, 1
        lea r9, [r8 * 2 + r8 + 5]       ; 8
        lea r10, [r9 * 8 + r9]          ; 72
        lea r11, [r10 + r9 * 4 - 3]     ; 101
        imul r12, r11, 1000003
        mov r13, r12
        shr r13, 3
        mov r14d, -2                    ; zero-extends into r14
        movsxd r15, r14d
        mov rax, r8
        add rax, r9
        add rax, r10
        add rax, r11
        add rax, r12
        add rax, r13
        SHOW64 "lm64: r8..r13 sum", rax
        SHOW64 "lm64: r14 (mov r14d,-2)", r14
        SHOW64 "lm64: r15 (movsxd)", r15

        push -1
        pop rax
        SHOW64 "lm64: push -1/pop", rax

        mov ecx, 20
        call fib64
        SHOW64 "lm64: fib(20) recursive", rax

        lea rax, [rel lm64]
        SHOW64 "lm64: lea rel lm64", rax

        jmp shutdown64

fib64:                                  ; RCX = n -> RAX = fib(n)
        cmp rcx, 2
        jb .small
        push rcx
        dec rcx
        call fib64
        pop rcx
        push rax
        push rcx
        sub rcx, 2
        call fib64
        pop rcx
        pop rdx
        add rax, rdx
        ret
.small:
        mov rax, rcx
        ret

        align 8, db 0
qtable: dq 0x0123456789ABCDEF, 0xFEDCBA9876543210, 0x0F0F0F0F0F0F0F0F
        dq 0x1111111111111111, 0x8000000000000001, 0x7FFFFFFFFFFFFFFF
        dq 0xDEADBEEFCAFEBABE, 0x0000000000000042

%include "inc/gdt.inc"
gdt_end:

%include "inc/end.inc"
