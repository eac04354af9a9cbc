; vmx_timer_shadow.asm - the VMX-preemption timer and VMCS shadowing
;   (cases 139-150). Timer: value 0 (exit 52 before the first guest
;   instruction), a small value with "save VMX-preemption timer value" (the
;   saved value is 0 after a timer exit), the timer ending a guest HLT
;   (activity state HLT saved, RIP after the HLT). Shadowing (secondary
;   control 14, VMCS link pointer = a shadow VMCS, VMREAD/VMWRITE bitmaps):
;   guest VMREAD of a field whose bitmap bit is clear reads the shadow VMCS
;   (no exit), bit set -> exit 23 (qualification 0 for a register operand,
;   instruction information), an encoding with bits 63:15 set always exits,
;   an unsupported field with a clear bit -> VMfailValid in the guest, guest
;   VMWRITE with a clear bit writes the shadow VMCS (read back by the host),
;   bit set -> exit 25, shadowing with link pointer FFFFFFFF_FFFFFFFF ->
;   VMfailInvalid in the guest; VMXOFF with a launched current VMCS.
;
; Only deterministic values are printed: never a timer count but the one
; the SDM fixes (0 after a timer exit). Guest RFLAGS are printed as
; "guest-flags" = the six status flags after the guest's VMX instruction.
;
; Needs: pin-based control 6 (preemption timer), exit control 22 (save
; timer value), IA32_VMX_MISC[6] (HLT activity state) for the HLT case,
; secondary controls (primary bit 31) with bit 14 (VMCS shadowing).

%define IMAGE_NAME "vmx_timer_shadow"
%include "inc/boot.inc"
%include "inc/modes.inc"
%include "inc/vmxdefs.inc"
%include "inc/vmxlib.inc"
%assign CASE_NO 138

SHADOW_VALUE equ 0xABCDEF

; ------------------------------------------------------------ guest code
g_start:
        vmcall
g_spin:
        inc r8
        jmp g_spin
g_hlt:
        hlt
        vmcall
g_vmread_rip:
        mov ebx, F_GUEST_RIP
        vmread rax, rbx
        pushfq
        pop rcx
        vmcall
g_vmread_es:
        mov edx, F_GUEST_ES_SEL
        vmread rsi, rdx                 ; info: reg1 = 6, reg2 = 2
g_vmread_high:
        mov rbx, (1 << 32) | F_GUEST_RIP
        vmread rax, rbx
g_vmread_bad:
        mov ebx, 0x7FFE
        vmread rax, rbx
        pushfq
        pop rcx
        vmcall
g_vmwrite_rip:
        mov ebx, F_GUEST_RIP
        mov eax, 0x1357
        vmwrite rbx, rax
        pushfq
        pop rcx
        vmcall
g_vmwrite_es:
        mov r9d, F_GUEST_ES_SEL
        vmwrite r9, r10                 ; info: reg1 = 10 (value), reg2 = 9 (field)

; ------------------------------------------------------------ host side
        align 8, db 0
ptr_a:          dq VMCS_A
ptr_shadow:     dq VMCS_SHADOW

; GFLAGS: print " guest-flags=0x.." = guest RCX (its RFLAGS) & status flags.
%macro GFLAGS 0
        mov rax, [vl_gregs + 1 * 8]
        and eax, 0x8D5
        SHOWM " guest-flags", rax
%endmacro

vmx_main:
        call vl_vmx_on
        PUTS64 "caps:"
        CAPBIT "pin-timer", IA32_VMX_PINBASED, 32 + 6
        CAPBIT "exit-save-timer", IA32_VMX_EXIT, 32 + 22
        CAPBIT "misc-hlt-state", IA32_VMX_MISC, 6
        CAPBIT "proc-secondary", IA32_VMX_PROCBASED, 32 + 31
        CAPBIT "proc2-shadowing", IA32_VMX_PROCBASED2, 32 + 14
        call putnl64

        ; the shadow VMCS: revision id | bit 31, two fields written
        mov rdi, VMCS_SHADOW
        call vl_load_vmcs               ; current = shadow region, rev. w/o bit 31
        TRYFAULT vmclear [ptr_shadow]
        or dword [VMCS_SHADOW], 0x80000000
        TRYFAULT vmptrld [ptr_shadow]
        VMW F_GUEST_RIP, SHADOW_VALUE
        VMW F_GUEST_ES_SEL, 0x77
        TRYFAULT vmclear [ptr_shadow]
        ; bitmaps: VMREAD: only GUEST_ES_SEL set; VMWRITE: only GUEST_ES_SEL
        xor eax, eax
        mov rdi, VMREAD_BM_PG
        mov ecx, 2 * 4096 / 4
        rep stosd
        bts dword [VMREAD_BM_PG + (F_GUEST_ES_SEL >> 5) * 4], F_GUEST_ES_SEL & 31
        bts dword [VMWRITE_BM_PG + (F_GUEST_ES_SEL >> 5) * 4], F_GUEST_ES_SEL & 31

        CASE "vmlaunch-timer-shadow-guest"
        mov rdi, VMCS_A
        mov rsi, g_start
        call vl_fresh_vmcs
        LAUNCH
        call putnl64

        CASE "preemption-timer-value-0"
        SET_PIN PIN_PREEMPT_TIMER
        VMW F_PREEMPT_TIMER, 0
        mov qword [vl_gregs + 8 * 8], 0
        GO g_spin
        PRF "qual", F_EXIT_QUAL
        PRIP "rip", g_spin
        PGREG "r8", 8
        call putnl64

        CASE "preemption-timer-small-saved-value"
        SET_EXIT EXIT_HOST_64 | EXIT_SAVE_TIMER
        VMW F_PREEMPT_TIMER, 500
        RESUME
        PRF "qual", F_EXIT_QUAL
        PRF "saved-timer", F_PREEMPT_TIMER
        call putnl64

        CASE "preemption-timer-ends-guest-hlt"
        VMW F_PREEMPT_TIMER, 2000
        GO g_hlt
        PRF "qual", F_EXIT_QUAL
        PRF "activity", F_GUEST_ACTIVITY
        PRIP "rip", g_hlt
        call putnl64
        VMW F_GUEST_ACTIVITY, 0
        SET_PIN 0
        SET_EXIT EXIT_HOST_64

        CASE "shadowing-vmread-bit-clear-no-exit"
        SET_PROC PROC_SECONDARY
        SET_PROC2 PROC2_SHADOW_VMCS
        VMW F_VMCS_LINK_PTR, VMCS_SHADOW
        VMW F_VMREAD_BITMAP, VMREAD_BM_PG
        VMW F_VMWRITE_BITMAP, VMWRITE_BM_PG
        GO g_vmread_rip
        PRIP "rip", g_vmread_rip
        PGREG "guest-rax", 0
        GFLAGS
        call putnl64

        CASE "shadowing-vmread-bit-set-exits"
        GO g_vmread_es
        PRF "qual", F_EXIT_QUAL
        PRF "len", F_EXIT_INSTR_LEN
        VMR rax, F_EXIT_INSTR_INFO
        and eax, 0xF0000478             ; bits defined for a register operand
        SHOWM " info", rax
        PRIP "rip", g_vmread_es
        call putnl64

        CASE "shadowing-vmread-encoding-bits-63-15-exit"
        GO g_vmread_high
        PRF "qual", F_EXIT_QUAL
        PRIP "rip", g_vmread_high
        call putnl64

        CASE "shadowing-vmread-unsupported-field"
        GO g_vmread_bad
        PRIP "rip", g_vmread_bad
        GFLAGS
        call putnl64

        CASE "shadowing-vmwrite-bit-clear-no-exit"
        GO g_vmwrite_rip
        PRIP "rip", g_vmwrite_rip
        GFLAGS
        TRYFAULT vmptrld [ptr_shadow]
        PUTS64 " vmptrld-shadow:"
        call vl_print_status
        VMR rax, F_GUEST_RIP
        SHOWM " shadow-field", rax
        TRYFAULT vmptrld [ptr_a]
        PUTS64 " vmptrld-a:"
        call vl_print_status
        call putnl64

        CASE "shadowing-vmwrite-bit-set-exits"
        GO g_vmwrite_es
        PRF "qual", F_EXIT_QUAL
        PRF "len", F_EXIT_INSTR_LEN
        VMR rax, F_EXIT_INSTR_INFO
        and eax, 0xF0000478
        SHOWM " info", rax
        PRIP "rip", g_vmwrite_es
        call putnl64

        CASE "shadowing-link-pointer-invalid"
        VMW F_VMCS_LINK_PTR, -1
        GO g_vmread_rip
        PRIP "rip", g_vmread_rip
        GFLAGS
        call putnl64

        CASE "vmxoff-with-launched-current-vmcs"
        VMX_TRY vmxoff

        jmp shutdown64

%include "inc/vmxtail.inc"
