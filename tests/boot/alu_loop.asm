; alu_loop.asm - the benchmark image: a tight loop of register ALU
; instructions in 64-bit mode. Self-contained (no includes), two sectors:
; sector 0 reads sector 1 to 0x7E00 with INT 13h AH=02h.
;
;   nasm -f bin -o alu-loop.img alu_loop.asm                 (ITER = 50,000,000)
;   nasm -f bin -DITER=100000 -o alu-loop-small.img alu_loop.asm
;
; Real mode -> 32-bit protected mode -> 64-bit mode (identity-mapped 2 MiB
; page), then ITER iterations of a 12-instruction loop body (add, xor, mov,
; shl, sub, inc, add, xor, cmp, adc, dec, jnz), then the final registers and
; their checksum are printed in hex and "Shutdown" is written to port 0x8900.
;
; Instructions retired in the loop: 12 * ITER. Everything before the loop is
; about 60 instructions; the printing after it a few thousand.

%ifndef ITER
%define ITER 50000000
%endif

bits 16
org 0x7C00

start:
        cli
        cld
        xor ax, ax
        mov ds, ax
        mov es, ax
        mov ss, ax
        mov sp, 0x7C00
        jmp 0x0000:.cs_ok
.cs_ok:
        mov ax, 0x0201                  ; read 1 sector: C0 H0 S2 -> 0000:7E00
        mov cx, 0x0002
        xor dh, dh                      ; (DL = boot drive, from the BIOS)
        mov bx, 0x7E00
        int 0x13
        cli
        jc .halt16
        in al, 0x92                     ; fast A20
        or al, 2
        and al, 0xFE
        out 0x92, al
        lgdt [gdtr]
        mov eax, cr0
        or al, 1
        mov cr0, eax
        jmp 0x08:pm32
.halt16:
        hlt
        jmp .halt16

bits 32
pm32:
        mov ax, 0x10
        mov ds, ax
        mov es, ax
        mov ss, ax
        mov esp, 0x7C00
        mov edi, 0x1000                 ; PML4 0x1000, PDPT 0x2000, PD 0x3000
        xor eax, eax
        mov ecx, 3 * 4096 / 4
        rep stosd
        mov byte [0x1000], 0x03         ; -> 0x2000 | P | RW (low bytes)
        mov byte [0x1001], 0x20
        mov byte [0x2000], 0x03         ; -> 0x3000
        mov byte [0x2001], 0x30
        mov byte [0x3000], 0x83         ; 0..2 MiB, PS
        mov al, 0x20                    ; CR4.PAE
        mov cr4, eax
        mov al, 0x10                    ; eax = 0x1000
        shl eax, 8
        mov cr3, eax
        mov ecx, 0xC0000080             ; EFER.LME
        rdmsr
        or ah, 1
        wrmsr
        mov eax, cr0
        or eax, 0x80000000
        mov cr0, eax
        jmp 0x18:lm64

        align 8, db 0
gdt:    dq 0
        dq 0x00CF9A000000FFFF           ; 0x08 code32
        dq 0x00CF92000000FFFF           ; 0x10 data
        dq 0x00AF9A000000FFFF           ; 0x18 code64
gdtr:   dw gdtr - gdt - 1
        dd gdt

        times 510 - ($ - $$) db 0
        dw 0xAA55

; ---------------------------------------------------------------- sector 1
bits 64
lm64:
        mov ax, 0x10
        mov ds, ax
        mov es, ax
        mov ss, ax
        lea rsi, [rel msg_begin]
        call puts
        mov eax, ITER
        call puthex
        call newline

        mov rax, 0x0123456789ABCDEF
        mov rbx, 0x0FEDCBA987654321
        mov rcx, 0x5555AAAA3333CCCC
        xor esi, esi
        mov edi, 1
        xor ebp, ebp
        mov r8d, ITER
        align 16
.loop:
        add rax, rbx
        xor rbx, rcx
        mov rdx, rax
        shl rdx, 7
        sub rcx, rdx
        inc rsi
        add rdi, rsi
        xor rax, rdi
        cmp rax, rbx
        adc rbp, 0
        dec r8
        jnz .loop

        mov r12d, 0x9000                ; save the results, then print
        mov [r12], rax
        mov [r12 + 8], rbx
        mov [r12 + 16], rcx
        mov [r12 + 24], rsi
        mov [r12 + 32], rdi
        mov [r12 + 40], rbp
        xor rax, rbx                    ; checksum = xor of the six
        xor rax, rcx
        xor rax, rsi
        xor rax, rdi
        xor rax, rbp
        mov [r12 + 48], rax
        lea r9, [rel regs_msg]
        mov r13d, 7
.print:
        mov r10, [r12]
        call put_reg
        add r12, 8
        dec r13d
        jnz .print
        lea rsi, [rel msg_end]
        call puts
        lea rsi, [rel shutdown_str]
        mov dx, 0x8900
        mov ecx, 8
        rep outsb                       ; string output: "Shutdown"
.halt:
        cli
        hlt
        jmp .halt

put_reg:                                ; "name=" from [r9], R10 in hex, "\n"
        mov rsi, r9
        call puts
        lea r9, [rsi + 1]
        mov rax, r10
        call puthex
newline:
        mov al, 10
        out 0xE9, al
        ret

puts:                                   ; RSI -> NUL-terminated string
        lodsb
        test al, al
        jz .done
        out 0xE9, al
        jmp puts
.done:
        dec rsi                         ; RSI -> the NUL
        ret

puthex:                                 ; RAX as 16 hex digits
        mov rdx, rax
        mov ecx, 16
.digit:
        rol rdx, 4
        mov al, dl
        and al, 0x0F
        add al, '0'
        cmp al, '9'
        jbe .out
        add al, 'A' - '9' - 1
.out:
        out 0xE9, al
        loop .digit
        ret

msg_begin:      db "=== BEGIN alu_loop ===", 10, "64-bit mode, iterations=", 0
regs_msg:       db "rax=", 0, "rbx=", 0, "rcx=", 0, "rsi=", 0, "rdi=", 0
                db "rbp=", 0, "checksum=", 0
msg_end:        db "=== END alu_loop ===", 10, 0
shutdown_str:   db "Shutdown"

        times 1024 - ($ - $$) db 0
