; vmx_vmfunc.asm - VMFUNC and EPTP switching (cases 151-172). The guest
;   (sharing the host's paging, so linear = guest-physical) runs under one of
;   two EPTs built here: EPT A maps guest-physical [0, 1 GiB) to itself with
;   2-MiB pages, EPT B likewise except the 2-MiB page at DATA_PAGE, which it
;   maps to host-physical ALT_PAGE. The host puts different values at DATA
;   and ALT_PAGE + (DATA - DATA_PAGE), so a guest read of DATA shows which
;   EPT is in use. VMFUNC EAX = 0 picks an EPTP from the list at EPTP_LIST:
;   0 = A, 1 = B, 2 = A with accessed/dirty flags (bit 6), 3 = A with walk
;   length 5, 4 = A with reserved bit 7 set, everything else 0.
;
; Checks: #UD outside VMX operation and in VMX root operation; switching
; A -> B -> A -> B without a VM exit (the guest sees the data of each EPT,
; EPT_POINTER is written); ECX bits 63:32 ignored; VM exit 59 (instruction
; length 3, GUEST_RIP at the VMFUNC, EPT_POINTER unchanged) for ECX = 512,
; an invalid list entry (walk length 5, reserved bit, 0), function 1, and
; VM-function controls 0; #UD (through the exception bitmap: exit 0) for
; EAX = 64 and with "enable VM functions" 0; the VM-entry checks on the
; VM-function controls (a bit IA32_VMX_VMFUNC does not allow, EPTP switching
; without EPT, EPTP-list address unaligned or beyond the physical-address
; width: VMfailValid 7) and that the list address is not checked with no
; function enabled.
;
; Only values the SDM defines are printed: no exit qualification for VMFUNC
; exits (the SDM gives them none).
;
; Needs: secondary controls with enable EPT (1) and enable VM functions
; (13); IA32_VMX_VMFUNC[0] (EPTP switching); EPT WB paging structures,
; 4-level walks, 2-MiB pages and accessed/dirty flags (IA32_VMX_EPT_VPID_CAP
; bits 14, 6, 16, 21); at least 8 MiB of memory.

%define IMAGE_NAME "vmx_vmfunc"
%include "inc/boot.inc"
%include "inc/modes.inc"
%include "inc/vmxdefs.inc"
%include "inc/vmxlib.inc"
%assign CASE_NO 150

DATA_PAGE       equ 0x400000            ; the guest-physical page A and B map apart
DATA            equ DATA_PAGE + 0x5000
ALT_PAGE        equ 0x600000            ; where EPT B maps DATA_PAGE
VALUE_A         equ 0x1111AAAA
VALUE_B         equ 0x2222BBBB
EPT_WB_4LEVEL   equ 6 | (3 << 3)        ; EPTP: memory type WB, walk length 4
EPT_LEAF_2M     equ 7 | (6 << 3) | (1 << 7) ; RWX, memory type WB, 2-MiB page
EPTP_A          equ EPT_A_PML4 | EPT_WB_4LEVEL
EPTP_B          equ EPT_B_PML4 | EPT_WB_4LEVEL

; ------------------------------------------------------------ guest code
g_read:
        mov r8, [abs DATA]
        vmcall
g_switch:
        mov r8, [abs DATA]
        xor eax, eax
        mov ecx, 1
        vmfunc                          ; -> B
        mov r9, [abs DATA]
        xor eax, eax
        xor ecx, ecx
        vmfunc                          ; -> A
        mov r10, [abs DATA]
        xor eax, eax
        mov ecx, 1
        vmfunc                          ; -> B
        mov r11, [abs DATA]
        vmcall
g_vmfunc:                               ; EAX, RCX from vl_gregs
        vmfunc
        mov r8, [abs DATA]
        vmcall

; ------------------------------------------------------------ host side

; build_ept: RDI = PML4 page of a new EPT (three pages: PML4, PDPT, PD),
; RSI = host-physical address for DATA_PAGE. Maps guest-physical [0, 1 GiB)
; with 2-MiB pages, to itself except DATA_PAGE.
build_ept:
        push rax
        push rcx
        push rdx
        push rdi
        mov rdx, rdi
        xor eax, eax
        mov ecx, 3 * 4096 / 8
        rep stosq
        lea rax, [rdx + 0x1000 + 7]
        mov [rdx], rax                  ; PML4E 0 -> PDPT, RWX
        lea rax, [rdx + 0x2000 + 7]
        mov [rdx + 0x1000], rax         ; PDPTE 0 -> PD, RWX
        xor ecx, ecx
.pde:
        mov rax, rcx
        shl rax, 21
        cmp rax, DATA_PAGE
        jne .same
        mov rax, rsi
.same:
        or rax, EPT_LEAF_2M
        mov [rdx + 0x2000 + rcx * 8], rax
        inc ecx
        cmp ecx, 512
        jb .pde
        pop rdi
        pop rdx
        pop rcx
        pop rax
        ret

; VF eax, rcx: the guest's EAX and RCX for g_vmfunc.
%macro VF 2
        mov rax, %1
        mov [vl_gregs + 0 * 8], rax
        mov rax, %2
        mov [vl_gregs + 1 * 8], rax
%endmacro

; VF_EXIT: after a VMFUNC that should exit: length, RIP, EPT_POINTER.
%macro VF_EXIT 0
        PRF "len", F_EXIT_INSTR_LEN
        PRIP "rip", g_vmfunc
        PRF "eptp", F_EPT_POINTER
%endmacro

vmx_main:
        CASE "vmfunc-outside-vmx"
        xor eax, eax
        xor ecx, ecx
        VMX_TRY vmfunc

        call vl_vmx_on
        PUTS64 "caps:"
        CAPBIT "proc-secondary", IA32_VMX_PROCBASED, 32 + 31
        CAPBIT "proc2-ept", IA32_VMX_PROCBASED2, 32 + 1
        CAPBIT "proc2-vmfunc", IA32_VMX_PROCBASED2, 32 + 13
        CAPBIT "vmfunc-eptp-switching", IA32_VMX_VMFUNC, 0
        CAPBIT "ept-4level", IA32_VMX_EPT_VPID_CAP, 6
        CAPBIT "ept-wb", IA32_VMX_EPT_VPID_CAP, 14
        CAPBIT "ept-2m", IA32_VMX_EPT_VPID_CAP, 16
        CAPBIT "ept-ad", IA32_VMX_EPT_VPID_CAP, 21
        call putnl64

        ; the two EPTs, the EPTP list and the data each one shows
        mov rdi, EPT_A_PML4
        mov rsi, DATA_PAGE
        call build_ept
        mov rdi, EPT_B_PML4
        mov rsi, ALT_PAGE
        call build_ept
        mov rdi, EPTP_LIST
        xor eax, eax
        mov ecx, 4096 / 8
        rep stosq
        mov qword [EPTP_LIST + 0 * 8], EPTP_A
        mov qword [EPTP_LIST + 1 * 8], EPTP_B
        mov qword [EPTP_LIST + 2 * 8], EPTP_A | (1 << 6)
        mov qword [EPTP_LIST + 3 * 8], EPT_A_PML4 | 6 | (4 << 3)
        mov qword [EPTP_LIST + 4 * 8], EPTP_A | (1 << 7)
        mov dword [DATA], VALUE_A
        mov dword [ALT_PAGE + (DATA - DATA_PAGE)], VALUE_B

        CASE "vmlaunch-ept-vmfunc-guest"
        mov eax, PROC_SECONDARY
        mov [vl_proc], rax
        mov qword [vl_proc2], PROC2_EPT | PROC2_VMFUNC
        mov rdi, VMCS_A
        mov rsi, g_read
        call vl_fresh_vmcs
        VMW F_EPT_POINTER, EPTP_A
        VMW F_VM_FUNCTION_CTL, 1
        VMW F_EPTP_LIST_ADDR, EPTP_LIST
        LAUNCH
        PGREG "r8", 8
        call putnl64

        CASE "vmfunc-in-root-operation"
        xor eax, eax
        mov ecx, 1
        VMX_TRY vmfunc

        CASE "vmfunc-switches-ept-without-exit"
        GO g_switch
        PGREG "r8", 8
        PGREG "r9", 9
        PGREG "r10", 10
        PGREG "r11", 11
        PRF "eptp", F_EPT_POINTER
        PRIP "rip", g_switch
        call putnl64

        CASE "vmfunc-ecx-bits-63-32-ignored"
        VMW F_EPT_POINTER, EPTP_A
        VF 0, 0xFFFFFFFF00000001
        GO g_vmfunc
        PGREG "r8", 8
        PRF "eptp", F_EPT_POINTER
        call putnl64

        CASE "vmfunc-entry-with-ad-flags"
        VMW F_EPT_POINTER, EPTP_B
        VF 0, 2
        GO g_vmfunc
        PGREG "r8", 8
        PRF "eptp", F_EPT_POINTER
        call putnl64

        CASE "vmfunc-ecx-512-exits"
        VMW F_EPT_POINTER, EPTP_A
        VF 0, 512
        GO g_vmfunc
        VF_EXIT
        call putnl64

        CASE "vmfunc-ecx-ffffffff-exits"
        VF 0, 0xFFFFFFFF
        GO g_vmfunc
        VF_EXIT
        call putnl64

        CASE "vmfunc-entry-walk-length-5-exits"
        VF 0, 3
        GO g_vmfunc
        VF_EXIT
        call putnl64

        CASE "vmfunc-entry-reserved-bit-7-exits"
        VF 0, 4
        GO g_vmfunc
        VF_EXIT
        call putnl64

        CASE "vmfunc-entry-zero-exits"
        VF 0, 511
        GO g_vmfunc
        VF_EXIT
        call putnl64

        CASE "vmfunc-function-1-exits"
        VF 1, 1
        GO g_vmfunc
        VF_EXIT
        call putnl64

        CASE "vmfunc-function-63-exits"
        VF 63, 1
        GO g_vmfunc
        VF_EXIT
        call putnl64

        CASE "vmfunc-no-function-enabled-exits"
        VMW F_VM_FUNCTION_CTL, 0
        VF 0, 1
        GO g_vmfunc
        VF_EXIT
        call putnl64
        VMW F_VM_FUNCTION_CTL, 1

        CASE "vmfunc-eax-64-ud"
        VMW F_EXC_BITMAP, 1 << 6
        VF 64, 1
        GO g_vmfunc
        PRF "intr-info", F_EXIT_INTR_INFO
        PRIP "rip", g_vmfunc
        PRF "eptp", F_EPT_POINTER
        call putnl64

        CASE "vmfunc-eax-ffffffff-ud"
        VF 0xFFFFFFFF, 1
        GO g_vmfunc
        PRF "intr-info", F_EXIT_INTR_INFO
        PRIP "rip", g_vmfunc
        call putnl64

        CASE "vmfunc-control-off-ud"
        SET_PROC2 PROC2_EPT
        VF 0, 1
        GO g_vmfunc
        PRF "intr-info", F_EXIT_INTR_INFO
        PRIP "rip", g_vmfunc
        PRF "eptp", F_EPT_POINTER
        call putnl64
        SET_PROC2 PROC2_EPT | PROC2_VMFUNC
        VMW F_EXC_BITMAP, 0

        CASE "entry-vm-function-1-not-allowed"
        VMW F_VM_FUNCTION_CTL, 3
        VMW F_GUEST_RIP, g_read
        RESUME
        call putnl64
        VMW F_VM_FUNCTION_CTL, 1

        CASE "entry-eptp-switching-without-ept"
        SET_PROC2 PROC2_VMFUNC
        RESUME
        call putnl64
        SET_PROC2 PROC2_EPT | PROC2_VMFUNC

        CASE "entry-eptp-list-unaligned"
        VMW F_EPTP_LIST_ADDR, EPTP_LIST + 8
        RESUME
        call putnl64

        CASE "entry-eptp-list-too-wide"
        mov rax, (1 << 51) | EPTP_LIST
        VMW F_EPTP_LIST_ADDR, rax
        RESUME
        call putnl64

        CASE "entry-no-function-list-not-checked"
        VMW F_VM_FUNCTION_CTL, 0
        VMW F_EPTP_LIST_ADDR, EPTP_LIST + 8
        GO g_read
        PGREG "r8", 8
        call putnl64

        jmp shutdown64

%include "inc/vmxtail.inc"
