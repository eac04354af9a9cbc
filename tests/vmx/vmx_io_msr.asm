; vmx_io_msr.asm - I/O and MSR VM exits (cases 104-119):
;   unconditional I/O exiting (exit 30; qualification = size - 1, direction,
;   string, REP, immediate operand, port) for OUT imm8, IN EAX,DX, OUT DX,AX
;   and REP OUTSB (also the guest-linear-address field and the defined bits
;   of the instruction-information field, IA32_VMX_BASIC[54]); I/O bitmaps
;   (a port set in bitmap A, a port set in bitmap B, an access whose second
;   byte's bit is set, an access wrapping from port FFFFh to 0000h; a clear
;   port 0xE9 is passed through: the guest prints " guest-out" itself);
;   MSR bitmaps (RDMSR of an intercepted MSR -> 31, of a passed-through MSR
;   -> no exit and the guest reads the value loaded from the guest-state
;   area, RDMSR outside the bitmap ranges -> 31, WRMSR intercepted -> 32,
;   WRMSR + RDMSR passed through); RDMSR without MSR bitmaps -> 31; the host
;   IA32_SYSENTER_CS loaded from the host-state area.
;
; Needs: unconditional I/O exiting, I/O bitmaps, MSR bitmaps (primary
; controls 24, 25, 28), IA32_VMX_BASIC[54] (INS/OUTS instruction info).

%define IMAGE_NAME "vmx_io_msr"
%include "inc/boot.inc"
%include "inc/modes.inc"
%include "inc/vmxdefs.inc"
%include "inc/vmxlib.inc"
%assign CASE_NO 103

; ------------------------------------------------------------ guest code
g_start:
        vmcall
g_out_imm:
        mov al, 0x41
        out 0x80, al
g_in_dx:
        mov dx, 0x1234
        in eax, dx
g_out_word_dx:
        mov dx, 0x70
        out dx, ax
g_rep_outsb:
        mov dx, 0x3F8
        mov rsi, g_text
        mov ecx, 3
        rep outsb
g_text: db "abc"
g_pass_e9:
        mov rsi, g_msg
        mov dx, 0xE9
        mov ecx, g_msg_end - g_msg
        rep outsb
        vmcall
g_msg:  db " guest-out"
g_msg_end:
g_in_b:
        mov dx, 0x8001
        in al, dx
g_in_split:
        mov dx, 0x7FFF
        in ax, dx
g_in_wrap:
        mov dx, 0xFFFF
        in eax, dx
g_rdmsr_efer:
        mov ecx, IA32_EFER
        rdmsr
g_rdmsr_sysenter:
        mov ecx, IA32_SYSENTER_CS
        rdmsr
        vmcall
g_rdmsr_hv:
        mov ecx, 0x40000000
        rdmsr
g_wrmsr_sysenter:
        mov ecx, IA32_SYSENTER_CS
        mov eax, 0x5678
        xor edx, edx
        wrmsr
g_kgs:
        mov ecx, IA32_KERNEL_GS_BASE
        mov eax, 0x9ABC0000
        mov edx, 0xFFFF8000
        wrmsr
        xor eax, eax
        xor edx, edx
        rdmsr
        vmcall

; ------------------------------------------------------------ host side
; SETBIT base, bit: set bit `bit` of the bitmap at `base`.
%macro SETBIT 2
        bts dword [(%1) + ((%2) >> 5) * 4], (%2) & 31
%endmacro

vmx_main:
        call vl_vmx_on
        PUTS64 "caps:"
        CAPBIT "uncond-io", IA32_VMX_PROCBASED, 32 + 24
        CAPBIT "io-bitmaps", IA32_VMX_PROCBASED, 32 + 25
        CAPBIT "msr-bitmaps", IA32_VMX_PROCBASED, 32 + 28
        CAPBIT "basic-ins-outs-info", IA32_VMX_BASIC, 54
        call putnl64
        ; bitmaps: all clear but the ports / MSRs named below
        xor eax, eax
        mov ecx, 3 * 4096 / 4           ; MSR bitmap, I/O A, I/O B: 0x24000..0x26FFF
        mov rdi, MSR_BITMAP
        rep stosd
        SETBIT IO_BITMAP_A_PG, 0x80
        SETBIT IO_BITMAP_B_PG, 0x8001 - 0x8000
        SETBIT IO_BITMAP_B_PG, 0x8000 - 0x8000
        SETBIT MSR_BITMAP + 1024, IA32_EFER - 0xC0000000        ; read high
        SETBIT MSR_BITMAP + 2048, IA32_SYSENTER_CS              ; write low

        CASE "vmlaunch-io-msr-guest"
        mov rdi, VMCS_A
        mov rsi, g_start
        call vl_fresh_vmcs
        VMW F_IO_BITMAP_A, IO_BITMAP_A_PG
        VMW F_IO_BITMAP_B, IO_BITMAP_B_PG
        VMW F_MSR_BITMAP, MSR_BITMAP
        LAUNCH
        call putnl64

        CASE "out-imm8-uncond-io"
        SET_PROC PROC_UNCOND_IO
        GO g_out_imm
        PRF "qual", F_EXIT_QUAL
        PRF "len", F_EXIT_INSTR_LEN
        PRIP "rip", g_out_imm
        call putnl64

        CASE "in-eax-dx-uncond-io"
        GO g_in_dx
        PRF "qual", F_EXIT_QUAL
        PRF "len", F_EXIT_INSTR_LEN
        PRIP "rip", g_in_dx
        call putnl64

        CASE "out-dx-ax-uncond-io"
        GO g_out_word_dx
        PRF "qual", F_EXIT_QUAL
        PRF "len", F_EXIT_INSTR_LEN
        PRIP "rip", g_out_word_dx
        call putnl64

        CASE "rep-outsb-uncond-io"
        GO g_rep_outsb
        PRF "qual", F_EXIT_QUAL
        PRF "len", F_EXIT_INSTR_LEN
        PRIP "rip", g_rep_outsb
        VMR rax, F_GUEST_LINEAR
        sub rax, g_text
        PUTS64 " linear=g_text+"
        DEC64 rax
        VMR rax, F_EXIT_INSTR_INFO
        and eax, 0x38380                ; address size, segment
        SHOWM " info", rax
        PGREG "rcx", 1
        call putnl64

        CASE "io-bitmap-a-port-set"
        SET_PROC PROC_IO_BITMAPS
        GO g_out_imm
        PRF "qual", F_EXIT_QUAL
        PRIP "rip", g_out_imm
        call putnl64

        CASE "io-bitmap-port-e9-clear-passes"
        GO g_pass_e9
        PRIP "rip", g_pass_e9
        call putnl64

        CASE "io-bitmap-b-port-set"
        GO g_in_b
        PRF "qual", F_EXIT_QUAL
        PRIP "rip", g_in_b
        call putnl64

        CASE "io-bitmap-second-byte-port-set"
        GO g_in_split
        PRF "qual", F_EXIT_QUAL
        PRIP "rip", g_in_split
        call putnl64

        CASE "io-bitmap-wrap-ffff"
        GO g_in_wrap
        PRF "qual", F_EXIT_QUAL
        PRIP "rip", g_in_wrap
        call putnl64

        CASE "rdmsr-intercepted-efer"
        SET_PROC PROC_MSR_BITMAPS
        GO g_rdmsr_efer
        PRF "qual", F_EXIT_QUAL
        PRF "len", F_EXIT_INSTR_LEN
        PRIP "rip", g_rdmsr_efer
        PGREG "ecx", 1
        call putnl64

        CASE "rdmsr-passthrough-sysenter-cs"
        VMW F_GUEST_SYSENTER_CS, 0x1234
        GO g_rdmsr_sysenter
        PRIP "rip", g_rdmsr_sysenter
        PGREG "guest-eax", 0
        RDMSR64 IA32_SYSENTER_CS
        SHOWM " host-value", rax
        call putnl64

        CASE "rdmsr-outside-bitmap-ranges"
        GO g_rdmsr_hv
        PRF "len", F_EXIT_INSTR_LEN
        PRIP "rip", g_rdmsr_hv
        PGREG "ecx", 1
        call putnl64

        CASE "wrmsr-intercepted-sysenter-cs"
        GO g_wrmsr_sysenter
        PRF "qual", F_EXIT_QUAL
        PRF "len", F_EXIT_INSTR_LEN
        PRIP "rip", g_wrmsr_sysenter
        PGREG "ecx", 1
        PGREG "eax", 0
        PGREG "edx", 2
        call putnl64

        CASE "wrmsr-rdmsr-passthrough-kernel-gs-base"
        GO g_kgs
        PRIP "rip", g_kgs
        PGREG "eax", 0
        PGREG "edx", 2
        call putnl64

        CASE "rdmsr-without-msr-bitmaps"
        SET_PROC 0
        GO g_rdmsr_sysenter
        PRF "len", F_EXIT_INSTR_LEN
        PRIP "rip", g_rdmsr_sysenter
        PGREG "ecx", 1
        call putnl64

        jmp shutdown64

%include "inc/vmxtail.inc"
