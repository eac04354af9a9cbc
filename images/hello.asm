; hello.asm - the smallest vmxsim boot image, self-contained (no includes).
;
;   nasm -f bin -o hello.img hello.asm
;   vmxsim exec hello.img            (detected as a boot image by 0x55AA)
;
; Sector 0 is loaded by the "BIOS" at 0000:7C00 and runs in real mode with
; DL = boot drive. It prints a greeting to port 0xE9, reads sectors 1 and 2
; of the image to 0x7E00 with INT 13h AH=02h (the only BIOS service used),
; prints strings that live in those sectors, then writes "Shutdown" to port
; 0x8900, which ends the run with status 0.
;
; Everything between the "=== BEGIN hello ===" and "=== END hello ===" lines
; is compared with tests/boot/hello.expected by tests/boot_images.rs.

bits 16
org 0x7C00

SECTORS_TO_READ equ 2                   ; sectors 1 and 2 of the floppy

start:
        cli
        cld
        xor ax, ax                      ; our own segments and stack:
        mov ds, ax                      ; assume nothing from the BIOS
        mov es, ax
        mov ss, ax
        mov sp, 0x7C00
        jmp 0x0000:.cs_ok               ; make CS = 0 (some BIOSes use 07C0:0000)
.cs_ok:
        mov [boot_drive], dl

        mov si, msg_begin
        call puts
        mov si, msg_hello
        call puts
        mov si, msg_drive
        call puts
        mov al, [boot_drive]
        call puthex8
        call newline

        ; INT 13h AH=02h: read AL sectors from cylinder CH, head DH, sector CL
        ; (1-based) of drive DL into ES:BX. CF=1 on error.
        mov ax, 0x0200 | SECTORS_TO_READ
        mov cx, 0x0002                  ; cylinder 0, sector 2 (= LBA 1)
        xor dh, dh                      ; head 0
        mov dl, [boot_drive]
        mov bx, 0x7E00
        int 0x13
        cli                             ; a real BIOS may have enabled interrupts
        jc disk_error
        mov si, msg_read_ok
        call puts
        jmp stage2                      ; code in sector 1

disk_error:
        mov si, msg_disk_error
        call puts
        jmp shutdown

; puts: print the NUL-terminated string at DS:SI to port 0xE9.
puts:
        push ax
        push si
.next:
        lodsb
        test al, al
        jz .done
        out 0xE9, al
        jmp .next
.done:
        pop si
        pop ax
        ret

; puthex8: print AL as two hex digits.
puthex8:
        push ax
        push cx
        mov ah, al
        mov cx, 2
.digit:
        rol ah, 4
        mov al, ah
        and al, 0x0F
        add al, '0'
        cmp al, '9'
        jbe .out
        add al, 'A' - '9' - 1
.out:
        out 0xE9, al
        loop .digit
        pop cx
        pop ax
        ret

newline:
        push ax
        mov al, 10
        out 0xE9, al
        pop ax
        ret

; shutdown: END marker, then "Shutdown" to port 0x8900; halt if still alive.
shutdown:
        mov si, msg_end
        call puts
        mov si, shutdown_str
        mov dx, 0x8900
.next:
        lodsb
        test al, al
        jz .halt
        out dx, al
        jmp .next
.halt:
        cli
        hlt
        jmp .halt

boot_drive:     db 0
msg_begin:      db "=== BEGIN hello ===", 10, 0
msg_end:        db "=== END hello ===", 10, 0
msg_hello:      db "hello from the boot sector (real mode, 0000:7C00)", 10, 0
msg_drive:      db "boot drive DL=", 0
msg_read_ok:    db "INT 13h AH=02h read 2 sectors", 10, 0
msg_disk_error: db "INT 13h read error", 10, 0
shutdown_str:   db "Shutdown", 0

        times 510 - ($ - $$) db 0
        dw 0xAA55

; ---------------------------------------------------------------- sector 1
stage2:
        mov si, msg_sector1
        call puts
        ; sum the bytes of sector 2 (all of it) as a check of the read
        mov si, sector2
        mov cx, 512
        xor bx, bx
        xor ah, ah
.sum:
        lodsb
        add bx, ax
        loop .sum
        mov si, msg_sum
        call puts
        mov al, bh
        call puthex8
        mov al, bl
        call puthex8
        call newline
        mov si, sector2                 ; a string stored in sector 2
        call puts
        jmp shutdown

msg_sector1:    db "hello from sector 1 (LBA 1, loaded at 0x7E00)", 10, 0
msg_sum:        db "byte sum of sector 2: ", 0

        times 1024 - ($ - $$) db 0

; ---------------------------------------------------------------- sector 2
sector2:
        db "hello from sector 2 (LBA 2, loaded at 0x8000)", 10, 0
        times 1536 - ($ - $$) db 0
