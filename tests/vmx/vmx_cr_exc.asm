; vmx_cr_exc.asm - control-register accesses and exceptions in the guest
;   (cases 120-138): MOV to CR3 with CR3-load exiting (exit 28,
;   qualification: CR number, access type, GPR), no exit when the value is
;   a CR3-target value, MOV from CR3 with CR3-store exiting; CR0 guest/host
;   mask: MOV to CR0 changing an owned bit (exit 28), not changing it (no
;   exit), MOV from CR0 reading the read shadow, CLTS (access type 2), LMSW
;   (type 3, source data in the qualification); CR4 mask hiding CR4.VMXE;
;   exception bitmap: #UD (exit 0, interruption information, no error code),
;   #BP from INT3 (software exception, instruction length 1); #PF with the
;   error-code mask/match rule (all #PF exit; writes-only with a read fault:
;   no exit, the guest's own handler sees it; bit 14 clear with a
;   mismatching write fault: exit), CR2 not written by a #PF VM exit; a #PF
;   while delivering a #UD (IDT-vectoring information); event injection on
;   VM entry (#UD; #GP with error code; the valid bit of the
;   VM-entry interruption-information field cleared by the VM exit); a
;   triple fault in the guest (exit 2).
;
; Needs: CR3-load/-store exiting, exception bitmap, PFEC mask/match,
; IA32_VMX_MISC[24:16] >= 1 CR3-target value.

%define IMAGE_NAME "vmx_cr_exc"
%include "inc/boot.inc"
%include "inc/modes.inc"
%include "inc/vmxdefs.inc"
%include "inc/vmxlib.inc"
%assign CASE_NO 119

; ------------------------------------------------------------ guest code
g_start:
        vmcall
g_mov_to_cr3:
        mov ebx, LM_PML4                ; = CR3 (not read: CR3-store exiting
        mov cr3, rbx                    ;  is a default-1 control)
        vmcall
g_mov_from_cr3:
        mov rdx, cr3
        vmcall
g_cr0_set_ts:
        mov rcx, cr0
        bts rcx, 3
        mov cr0, rcx
        vmcall
g_cr0_same:
        mov rcx, cr0
        btr rcx, 3
        mov cr0, rcx
        vmcall
g_cr0_read:
        mov rax, cr0
        vmcall
g_clts:
        clts
        vmcall
g_lmsw:
        mov rax, cr0
        or eax, 8
        lmsw ax
        vmcall
g_cr4_read_write:
        mov rax, cr4
        mov cr4, rax
        vmcall
g_ud:
        ud2
g_int3:
        int3
        vmcall
g_pf_read:
        mov qword [vl_fault_vec], VL_NOFAULT
        mov qword [vl_fault_resume], .after
        mov rax, [UNMAPPED + 0x123]
.after:
        mov r8, [vl_fault_vec]
        mov r9, [vl_fault_err]
        mov r10, cr2
        vmcall
g_pf_write:
        mov dword [UNMAPPED + 0x456], 1
        vmcall
g_ud_bad_stack:
        mov rsp, UNMAPPED + 0x800
        ud2
g_injected:
        mov r8, [vl_fault_vec]
        mov r9, [vl_fault_err]
        vmcall
g_triple:
        ud2

; ------------------------------------------------------------ host side
%macro EXC_INFO 0
        PRF "intr-info", F_EXIT_INTR_INFO
        PRF "idt-vect", F_IDT_VECT_INFO
%endmacro

vmx_main:
        call vl_vmx_on
        PUTS64 "caps:"
        RDMSR64 IA32_VMX_MISC
        shr eax, 16
        and eax, 0x1FF
        SHOWD " misc-cr3-targets", rax
        CAPBIT "cr3-load-allowed0", IA32_VMX_PROCBASED, 15
        CAPBIT "cr3-store-allowed0", IA32_VMX_PROCBASED, 16
        call putnl64

        CASE "vmlaunch-cr-exc-guest"
        mov rdi, VMCS_A
        mov rsi, g_start
        call vl_fresh_vmcs
        LAUNCH
        call putnl64

        CASE "mov-to-cr3-load-exiting"
        SET_PROC PROC_CR3_LOAD
        GO g_mov_to_cr3
        PRF "qual", F_EXIT_QUAL
        PRF "len", F_EXIT_INSTR_LEN
        PRIP "rip", g_mov_to_cr3
        call putnl64

        CASE "mov-to-cr3-target-value-no-exit"
        mov rax, cr3
        VMW F_CR3_TARGET0, rax
        VMW F_CR3_TARGET_COUNT, 1
        GO g_mov_to_cr3
        PRIP "rip", g_mov_to_cr3
        call putnl64
        VMW F_CR3_TARGET_COUNT, 0

        CASE "mov-from-cr3-store-exiting"
        SET_PROC PROC_CR3_STORE
        GO g_mov_from_cr3
        PRF "qual", F_EXIT_QUAL
        PRF "len", F_EXIT_INSTR_LEN
        PRIP "rip", g_mov_from_cr3
        call putnl64

        CASE "mov-to-cr0-owned-bit-changed"
        mov rax, cr0
        btr rax, 3
        VMW F_CR0_SHADOW, rax           ; shadow TS = 0
        VMW F_CR0_MASK, 1 << 3          ; host owns CR0.TS
        GO g_cr0_set_ts
        PRF "qual", F_EXIT_QUAL
        PRF "len", F_EXIT_INSTR_LEN
        PRIP "rip", g_cr0_set_ts
        call putnl64

        CASE "mov-to-cr0-owned-bit-same-no-exit"
        GO g_cr0_same
        PRIP "rip", g_cr0_same
        call putnl64

        CASE "mov-from-cr0-reads-shadow"
        mov rax, cr0
        bts rax, 3
        VMW F_CR0_SHADOW, rax           ; shadow TS = 1, real guest TS = 0
        GO g_cr0_read
        mov rax, [vl_gregs + 0 * 8]
        and eax, 1 << 3
        SHOWM " guest-read-ts", rax
        VMR rax, F_GUEST_CR0
        and eax, 1 << 3
        SHOWM " real-ts", rax
        call putnl64

        CASE "clts-owned-ts-shadow-1"
        GO g_clts
        PRF "qual", F_EXIT_QUAL
        PRF "len", F_EXIT_INSTR_LEN
        PRIP "rip", g_clts
        call putnl64

        CASE "lmsw-owned-ts"
        mov rax, cr0
        btr rax, 3
        VMW F_CR0_SHADOW, rax           ; shadow TS = 0, LMSW sets it
        GO g_lmsw
        PRF "qual", F_EXIT_QUAL
        PRF "len", F_EXIT_INSTR_LEN
        PRIP "rip", g_lmsw
        call putnl64
        VMW F_CR0_MASK, 0

        CASE "cr4-mask-hides-vmxe"
        mov rax, cr4
        btr rax, 13
        VMW F_CR4_SHADOW, rax           ; guest sees VMXE = 0
        VMW F_CR4_MASK, 1 << 13
        GO g_cr4_read_write
        mov rax, [vl_gregs + 0 * 8]
        and eax, 1 << 13
        SHOWM " guest-read-vmxe", rax
        VMR rax, F_GUEST_CR4
        and eax, 1 << 13
        SHOWM " real-vmxe", rax
        PRIP "rip", g_cr4_read_write
        call putnl64
        VMW F_CR4_MASK, 0

        CASE "exception-bitmap-ud"
        VMW F_EXC_BITMAP, 1 << 6
        GO g_ud
        PRF "qual", F_EXIT_QUAL
        EXC_INFO
        PRIP "rip", g_ud
        call putnl64

        CASE "exception-bitmap-bp-int3"
        VMW F_EXC_BITMAP, 1 << 3
        GO g_int3
        PRF "qual", F_EXIT_QUAL
        EXC_INFO
        PRF "len", F_EXIT_INSTR_LEN
        PRIP "rip", g_int3
        call putnl64

        CASE "pf-all-intercepted"
        mov rax, 0x1111
        mov cr2, rax
        VMW F_EXC_BITMAP, 1 << 14
        VMW F_PFEC_MASK, 0
        VMW F_PFEC_MATCH, 0
        GO g_pf_read
        PRF "qual", F_EXIT_QUAL
        EXC_INFO
        PRF "errcode", F_EXIT_INTR_ERRCODE
        PRIP "rip", g_pf_read
        mov rax, cr2
        SHOWM " cr2", rax
        call putnl64

        CASE "pf-writes-only-read-fault-no-exit"
        VMW F_PFEC_MASK, 1 << 1
        VMW F_PFEC_MATCH, 1 << 1
        GO g_pf_read
        PRIP "rip", g_pf_read
        PGREG "guest-vector", 8
        PGREG "guest-errcode", 9
        PGREG "guest-cr2", 10
        call putnl64

        CASE "pf-bit14-clear-mismatch-exits"
        VMW F_EXC_BITMAP, 0
        VMW F_PFEC_MASK, 1 << 1
        VMW F_PFEC_MATCH, 0
        GO g_pf_write
        PRF "qual", F_EXIT_QUAL
        EXC_INFO
        PRF "errcode", F_EXIT_INTR_ERRCODE
        PRIP "rip", g_pf_write
        call putnl64

        CASE "pf-during-ud-delivery"
        VMW F_EXC_BITMAP, 1 << 14
        VMW F_PFEC_MASK, 0
        VMW F_PFEC_MATCH, 0
        GO g_ud_bad_stack
        VMR rax, F_EXIT_QUAL
        and rax, ~0xFFF
        SHOWM " qual-page", rax
        EXC_INFO
        PRF "errcode", F_EXIT_INTR_ERRCODE
        PRIP "rip", g_ud_bad_stack
        call putnl64
        VMW F_GUEST_RSP, GUEST_STACK
        VMW F_EXC_BITMAP, 0

        CASE "inject-ud-on-entry"
        mov qword [vl_fault_vec], VL_NOFAULT
        mov qword [vl_fault_resume], g_injected
        VMW F_ENTRY_INTR_INFO, 0x80000306
        GO g_triple                     ; (not reached: the handler goes on at g_injected)
        PRIP "rip", g_injected
        PGREG "guest-vector", 8
        VMR rax, F_ENTRY_INTR_INFO
        shr eax, 31
        SHOWD " entry-info-valid", rax
        call putnl64

        CASE "inject-gp-with-error-code"
        mov qword [vl_fault_vec], VL_NOFAULT
        mov qword [vl_fault_resume], g_injected
        VMW F_ENTRY_INTR_INFO, 0x80000B0D
        VMW F_ENTRY_EXC_ERRCODE, 0x1234
        GO g_triple
        PRIP "rip", g_injected
        PGREG "guest-vector", 8
        PGREG "guest-errcode", 9
        call putnl64

        CASE "guest-triple-fault"
        VMW F_GUEST_IDTR_LIMIT, 0
        GO g_triple
        PRF "qual", F_EXIT_QUAL
        PRIP "rip", g_triple
        call putnl64

        jmp shutdown64

%include "inc/vmxtail.inc"
