; vmx_nmi.asm - the VMX controls for NMIs (cases 173-181): "virtual NMIs"
;   without "NMI exiting" and "NMI-window exiting" without "virtual NMIs"
;   (VMfailValid 7), NMI-window exits (reason 8) before the first guest
;   instruction, after one instruction under blocking by MOV SS, none under
;   virtual-NMI blocking (bit 3 of the interruptibility state), their
;   priority over interrupt-window exits and below the VMX-preemption timer.
;   No NMI is ever sent: these cases need no NMI source.
;
; Needs: pin-based controls 3 (NMI exiting), 5 (virtual NMIs) and 6
; (preemption timer), primary controls 2 (interrupt-window exiting) and 22
; (NMI-window exiting).

%define IMAGE_NAME "vmx_nmi"
%include "inc/boot.inc"
%include "inc/modes.inc"
%include "inc/vmxdefs.inc"
%include "inc/vmxlib.inc"
%assign CASE_NO 172

PIN_VIRTUAL_NMI         equ 1 << 5
PROC_INTR_WINDOW        equ 1 << 2
PROC_NMI_WINDOW         equ 1 << 22

; FRESH: a freshly set-up VMCS_A whose guest starts at g_start.
%macro FRESH 0
        mov rdi, VMCS_A
        mov rsi, g_start
        call vl_fresh_vmcs
%endmacro

; ------------------------------------------------------------ guest code
g_start:
        mov r8d, 1
        mov r8d, 2
        vmcall

vmx_main:
        call vl_vmx_on
        PUTS64 "caps:"
        CAPBIT "pin-nmi-exiting", IA32_VMX_PINBASED, 32 + 3
        CAPBIT "pin-virtual-nmis", IA32_VMX_PINBASED, 32 + 5
        CAPBIT "pin-timer", IA32_VMX_PINBASED, 32 + 6
        CAPBIT "proc-intr-window", IA32_VMX_PROCBASED, 32 + 2
        CAPBIT "proc-nmi-window", IA32_VMX_PROCBASED, 32 + 22
        call putnl64

        CASE "vmlaunch-nmi-guest"
        FRESH
        LAUNCH
        PRIP "rip", g_start
        call putnl64

        CASE "virtual-nmis-without-nmi-exiting"
        FRESH
        SET_PIN PIN_VIRTUAL_NMI
        LAUNCH
        call putnl64

        CASE "nmi-window-without-virtual-nmis"
        FRESH
        SET_PIN PIN_NMI
        SET_PROC PROC_NMI_WINDOW
        LAUNCH
        call putnl64

        CASE "nmi-window-exit-before-first-instruction"
        FRESH
        SET_PIN PIN_NMI | PIN_VIRTUAL_NMI
        SET_PROC PROC_NMI_WINDOW
        mov qword [vl_gregs + 8 * 8], 0
        LAUNCH
        PRF "qual", F_EXIT_QUAL
        PRF "interruptibility", F_GUEST_INTERRUPTIBILITY
        PRIP "rip", g_start
        PGREG "r8", 8
        call putnl64

        CASE "nmi-window-after-mov-ss-blocking"
        VMW F_GUEST_INTERRUPTIBILITY, 2
        GO g_start
        PRF "interruptibility", F_GUEST_INTERRUPTIBILITY
        PRIP "rip", g_start
        PGREG "r8", 8
        call putnl64

        CASE "no-nmi-window-under-virtual-nmi-blocking"
        mov qword [vl_gregs + 8 * 8], 0
        VMW F_GUEST_INTERRUPTIBILITY, 8
        GO g_start
        PRF "interruptibility", F_GUEST_INTERRUPTIBILITY
        PRIP "rip", g_start
        PGREG "r8", 8
        call putnl64

        CASE "nmi-window-before-interrupt-window"
        VMW F_GUEST_INTERRUPTIBILITY, 0
        VMW F_GUEST_RFLAGS, 0x202
        SET_PROC PROC_NMI_WINDOW | PROC_INTR_WINDOW
        GO g_start
        PRIP "rip", g_start
        call putnl64

        CASE "interrupt-window-without-nmi-window"
        SET_PROC PROC_INTR_WINDOW
        GO g_start
        PRIP "rip", g_start
        call putnl64

        CASE "preemption-timer-before-nmi-window"
        VMW F_GUEST_RFLAGS, 0x2
        SET_PIN PIN_NMI | PIN_VIRTUAL_NMI | PIN_PREEMPT_TIMER
        SET_PROC PROC_NMI_WINDOW
        VMW F_PREEMPT_TIMER, 0
        GO g_start
        PRIP "rip", g_start
        call putnl64

        jmp shutdown64

%include "inc/vmxtail.inc"
