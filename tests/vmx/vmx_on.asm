; vmx_on.asm - entering and leaving VMX operation (cases 01-19):
;   CPUID.1:ECX.VMX; IA32_FEATURE_CONTROL as the firmware left it (Bochs:
;   0x5, locked with "VMX outside SMX"; when found unlocked, VMXON is tried
;   first (#GP) and the image locks it itself); WRMSR to the locked MSR
;   (#GP); VMXON with CR4.VMXE = 0 (#UD), with CR0.NE = 0 (#GP: CR0 fixed-1
;   bit), with a wrong / shadow-flagged revision id, an unaligned pointer and
;   a pointer beyond the physical-address width (VMfailInvalid); VMX
;   instructions outside VMX operation (#UD); VMXON; VMXOFF; #UD again after
;   VMXOFF; VMXON again.

%define IMAGE_NAME "vmx_on"
%include "inc/boot.inc"
%include "inc/modes.inc"
%include "inc/vmxdefs.inc"
%include "inc/vmxlib.inc"
%assign CASE_NO 0

        align 8, db 0
ptr_region:     dq VMXON_REGION
ptr_bad:        dq BAD_REGION
ptr_unaligned:  dq VMXON_REGION + 0x10
ptr_too_wide:   dq VMXON_REGION | (1 << 51)     ; beyond any MAXPHYADDR < 52
ptr_vmcs:       dq VMCS_A
stored:         dq 0

vmx_main:
        call vl_read_revision
        mov rdi, VMXON_REGION
        call vl_init_region

        CASE "cpuid-vmx"
        mov eax, 1
        cpuid
        shr ecx, 5
        and ecx, 1
        SHOWD " CPUID.1:ECX.VMX", rcx
        call putnl64

        CASE "feature-control-at-boot"
        RDMSR64 IA32_FEATURE_CONTROL
        and eax, 7                      ; lock, VMX in SMX, VMX outside SMX
        SHOWM " IA32_FEATURE_CONTROL[2:0]", rax
        mov rbx, rax
        call putnl64

        CASE "vmxon-cr4-vmxe-0"
        VMX_TRY vmxon [ptr_region]

        call vl_cr_fixed                ; CR0.NE = 1, CR4.VMXE = 1

        CASE "vmxon-feature-control-unlocked"
        test bl, FC_LOCK
        jz .unlocked
        PUTS64 " not testable: locked at boot", 10
        jmp .locked
.unlocked:
        VMX_TRY vmxon [ptr_region]
        call vl_lock_fc
.locked:

        CASE "wrmsr-feature-control-locked"
        mov ecx, IA32_FEATURE_CONTROL
        mov eax, FC_LOCK | FC_VMX_OUTSIDE_SMX
        xor edx, edx
        VMX_TRY wrmsr

        CASE "vmxon-cr0-ne-0"
        mov rax, cr0
        and eax, ~(1 << 5)
        mov cr0, rax
        VMX_TRY vmxon [ptr_region]
        call vl_cr_fixed

        CASE "vmxoff-outside-vmx"
        VMX_TRY vmxoff

        CASE "vmptrst-outside-vmx"
        VMX_TRY vmptrst [stored]

        CASE "vmcall-outside-vmx"
        VMX_TRY vmcall

        CASE "vmxon-bad-revision"
        mov rdi, BAD_REGION
        call vl_init_region
        mov eax, [vl_revision]
        xor eax, 0x7F                   ; a different revision id
        mov [BAD_REGION], eax
        VMX_TRY vmxon [ptr_bad]

        CASE "vmxon-revision-bit31"
        mov eax, [vl_revision]
        or eax, 0x80000000              ; shadow-VMCS indicator: not for VMXON
        mov [BAD_REGION], eax
        VMX_TRY vmxon [ptr_bad]

        CASE "vmxon-unaligned"
        VMX_TRY vmxon [ptr_unaligned]

        CASE "vmxon-beyond-phys-width"
        VMX_TRY vmxon [ptr_too_wide]

        CASE "vmxon"
        VMX_TRY vmxon [ptr_region]

        CASE "vmxoff"
        VMX_TRY vmxoff

        CASE "vmptrst-after-vmxoff"
        VMX_TRY vmptrst [stored]

        CASE "vmxoff-after-vmxoff"
        VMX_TRY vmxoff

        CASE "vmxon-again"
        VMX_TRY vmxon [ptr_region]

        CASE "vmxoff-again"
        VMX_TRY vmxoff

        jmp shutdown64

%include "inc/vmxtail.inc"
