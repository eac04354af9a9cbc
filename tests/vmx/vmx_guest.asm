; vmx_guest.asm - a 64-bit guest (same paging, GDT, IDT as the host, CPL0)
;   and instruction VM exits (cases 89-103): CPUID (exit 10, always; the
;   host emulates it, advances GUEST_RIP by the instruction length and
;   resumes; the guest sees the emulated values), HLT with HLT exiting (12),
;   VMCALL (18), RDTSC with and without RDTSC exiting (16 / none), RDPMC
;   exiting (15), INVLPG exiting (14, qualification = linear address), MOV
;   from DR7 with MOV-DR exiting (29, qualification), PAUSE exiting (40),
;   guest VMX instructions (VMPTRLD -> 21 with qualification =
;   displacement and the instruction-information field, VMLAUNCH -> 20,
;   VMXON -> 27), the guest RSP saved on exit. Exit qualifications are
;   printed for every exit (the SDM says the field is cleared for exits
;   that do not define it), the instruction length for exits that define
;   it, guest RIP as an offset from the guest snippet's start.
;
; Needs: primary controls HLT, INVLPG, RDPMC, RDTSC, MOV-DR, PAUSE exiting
; (allowed-1 in IA32_VMX_PROCBASED_CTLS); nothing else.

%define IMAGE_NAME "vmx_guest"
%include "inc/boot.inc"
%include "inc/modes.inc"
%include "inc/vmxdefs.inc"
%include "inc/vmxlib.inc"
%assign CASE_NO 88

; ------------------------------------------------------------ guest code
g_start:
        vmcall
g_cpuid:
        mov eax, 0x40000000
        mov ecx, 7
        cpuid
        mov r8, rax                     ; what the guest saw
        mov r9, rbx
        mov r10, rcx
        mov r11, rdx
        vmcall
g_hlt:
        hlt
g_rdtsc:
        rdtsc
g_rdtsc_noexit:
        rdtsc
        vmcall
g_rdpmc:
        xor ecx, ecx
        rdpmc
g_invlpg:
        mov rax, 0x12345678
        invlpg [rax]
g_movdr:
        mov rcx, dr7
g_pause:
        pause
g_rsp:
        mov rsp, GUEST_STACK - 0x1230
        vmcall
g_vmptrld:
        mov rbx, SCRATCH
        mov rcx, 2
        vmptrld [rbx + rcx * 8 + 0x10]
g_vmlaunch:
        vmlaunch
g_vmxon:
        vmxon [abs SCRATCH + 0x40]

; ------------------------------------------------------------ host side
vmx_main:
        call vl_vmx_on
        PUTS64 "caps: allowed-1 exiting controls:"
        CAPBIT "hlt", IA32_VMX_PROCBASED, 32 + 7
        CAPBIT "invlpg", IA32_VMX_PROCBASED, 32 + 9
        CAPBIT "rdpmc", IA32_VMX_PROCBASED, 32 + 11
        CAPBIT "rdtsc", IA32_VMX_PROCBASED, 32 + 12
        CAPBIT "mov-dr", IA32_VMX_PROCBASED, 32 + 23
        CAPBIT "pause", IA32_VMX_PROCBASED, 32 + 30
        call putnl64

        CASE "vmlaunch-guest"
        mov rdi, VMCS_A
        mov rsi, g_start
        call vl_fresh_vmcs
        LAUNCH
        PRF "qual", F_EXIT_QUAL
        PRF "len", F_EXIT_INSTR_LEN
        PRIP "rip", g_start
        call putnl64

        CASE "guest-cpuid"
        GO g_cpuid
        PRF "qual", F_EXIT_QUAL
        PRF "len", F_EXIT_INSTR_LEN
        PRIP "rip", g_cpuid
        PGREG "eax", 0
        PGREG "ecx", 1
        call putnl64

        CASE "cpuid-emulated-then-vmresume"
        mov qword [vl_gregs + 0 * 8], 0x11
        mov qword [vl_gregs + 3 * 8], 0x22
        mov qword [vl_gregs + 1 * 8], 0x33
        mov qword [vl_gregs + 2 * 8], 0x44
        call vl_skip_instr
        RESUME
        PRIP "rip", g_cpuid
        PGREG "seen-eax", 8
        PGREG "seen-ebx", 9
        PGREG "seen-ecx", 10
        PGREG "seen-edx", 11
        call putnl64

        CASE "guest-hlt-exiting"
        SET_PROC PROC_HLT
        GO g_hlt
        PRF "qual", F_EXIT_QUAL
        PRF "len", F_EXIT_INSTR_LEN
        PRIP "rip", g_hlt
        PRF "activity", F_GUEST_ACTIVITY
        call putnl64

        CASE "guest-vmcall"
        GO g_start
        PRF "qual", F_EXIT_QUAL
        PRF "len", F_EXIT_INSTR_LEN
        PRIP "rip", g_start
        call putnl64

        CASE "guest-rdtsc-exiting"
        SET_PROC PROC_RDTSC
        GO g_rdtsc
        PRF "qual", F_EXIT_QUAL
        PRF "len", F_EXIT_INSTR_LEN
        PRIP "rip", g_rdtsc
        call putnl64

        CASE "guest-rdtsc-no-exiting"
        SET_PROC 0
        GO g_rdtsc_noexit
        PRIP "rip", g_rdtsc_noexit
        call putnl64

        CASE "guest-rdpmc-exiting"
        SET_PROC PROC_RDPMC
        GO g_rdpmc
        PRF "qual", F_EXIT_QUAL
        PRF "len", F_EXIT_INSTR_LEN
        PRIP "rip", g_rdpmc
        call putnl64

        CASE "guest-invlpg-exiting"
        SET_PROC PROC_INVLPG
        GO g_invlpg
        PRF "qual", F_EXIT_QUAL
        PRF "len", F_EXIT_INSTR_LEN
        PRIP "rip", g_invlpg
        call putnl64

        CASE "guest-mov-from-dr7-exiting"
        SET_PROC PROC_MOV_DR
        GO g_movdr
        PRF "qual", F_EXIT_QUAL
        PRF "len", F_EXIT_INSTR_LEN
        PRIP "rip", g_movdr
        call putnl64

        CASE "guest-pause-exiting"
        SET_PROC PROC_PAUSE
        GO g_pause
        PRF "qual", F_EXIT_QUAL
        PRF "len", F_EXIT_INSTR_LEN
        PRIP "rip", g_pause
        call putnl64

        CASE "guest-rsp-saved"
        SET_PROC 0
        GO g_rsp
        PRF "guest-rsp", F_GUEST_RSP
        call putnl64

        CASE "guest-vmptrld"
        VMW F_GUEST_RSP, GUEST_STACK
        GO g_vmptrld
        PRF "qual", F_EXIT_QUAL
        PRF "len", F_EXIT_INSTR_LEN
        VMR rax, F_EXIT_INSTR_INFO
        and eax, 0x0FFF8783             ; the bits defined for a memory operand
        SHOWM " info", rax
        PRIP "rip", g_vmptrld
        call putnl64

        CASE "guest-vmlaunch"
        GO g_vmlaunch
        PRF "qual", F_EXIT_QUAL
        PRF "len", F_EXIT_INSTR_LEN
        PRIP "rip", g_vmlaunch
        call putnl64

        CASE "guest-vmxon"
        GO g_vmxon
        PRF "qual", F_EXIT_QUAL
        PRF "len", F_EXIT_INSTR_LEN
        VMR rax, F_EXIT_INSTR_INFO
        and eax, 0x08438780             ; no base, no index: fewer bits defined
        SHOWM " info", rax
        PRIP "rip", g_vmxon
        call putnl64

        jmp shutdown64

%include "inc/vmxtail.inc"
