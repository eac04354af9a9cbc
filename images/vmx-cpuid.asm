; vmx-cpuid.asm - the shipped VMX example image: a hypervisor that runs a
; 64-bit guest executing CPUID in a tight loop, handling every CPUID VM exit
; (emulate, advance GUEST_RIP, VMRESUME). Self-contained (no includes).
;
; Assemble from the repository root:
;
;   nasm -f bin -o images/vmx-cpuid.img images/vmx-cpuid.asm            (ITER = 1,000,000)
;   nasm -f bin -DITER=1 -o /tmp/vmx-cpuid-1.img images/vmx-cpuid.asm   (other counts)
;
; Run:  tests/boot/run-bochs.sh images/vmx-cpuid.img
;       target/release/vmxsim exec images/vmx-cpuid.img
; Golden output (default ITER, the bytes between the marker lines):
; images/vmx-cpuid.expected.
;
; What it does:
;   * sector 0: prints "=== BEGIN vmx_cpuid ===", reads the rest of the image
;     to 0x7E00 with INT 13h AH=02h (one sector per call), real mode ->
;     32-bit protected mode -> 64-bit mode (first 1 GiB identity-mapped with
;     2 MiB pages), IDT for vectors 0-31 (any exception: report and shut
;     down), 64-bit TSS (TR is needed by VM entry / exit).
;   * VMX on: CPUID.1:ECX.VMX; IA32_FEATURE_CONTROL: if unlocked, set lock +
;     "VMXON outside SMX" (what firmware does); if locked without VMXON
;     enabled, stop. CR0 and CR4 adjusted with IA32_VMX_CR0/CR4_FIXED0/1,
;     VMXON, VMCLEAR + VMPTRLD of one VMCS.
;   * Controls: desired | allowed-0, & allowed-1, from the TRUE capability
;     MSRs when IA32_VMX_BASIC[55] = 1 (so CR3-load / CR3-store exiting
;     stay off), otherwise from the plain ones. Desired: no pin-based or
;     processor-based controls (CPUID and VMCALL exit unconditionally),
;     exit: host address-space size, entry: IA-32e mode guest.
;   * Guest: 64-bit, CPL0, same CR3 / GDT / IDT / TSS as the host. It runs
;         mov r15d, ITER / xor r14d, r14d / xor r13d, r13d
;     .loop: mov eax, 0 / cpuid / add r14, rbx / add r13, rdx / dec r15 / jnz
;         vmcall
;     Its other GPRs keep the values the host gave them at VMLAUNCH.
;   * Host exit handler (HOST_RIP = exit_handler, HOST_RSP fixed): saves all
;     guest GPRs to memory, VMREADs the exit reason; CPUID (10): returns
;     fixed values (EAX = 1, EBX:EDX:ECX = "VmxSimCPUID!"), GUEST_RIP +=
;     VM-exit instruction length, counts the exit, restores the guest GPRs
;     and VMRESUMEs. VMCALL (18): prints the counts, the guest registers
;     and a checksum over all 16 guest GPRs (RSP from GUEST_RSP), then the
;     END marker, and writes "Shutdown" to port 0x8900. Anything else
;     (other exit, failed VM entry, VMfail, exception) prints a diagnostic
;     line and shuts down the same way.
;
; Checksum: s = 0; for each guest GPR in register-number order (RAX, RCX,
; RDX, RBX, RSP, RBP, RSI, RDI, R8..R15): s = rol(s, 13) + reg (mod 2^64).
;
; Exits: ITER CPUID exits + 1 VMCALL exit; ITER VM entries by VMRESUME + 1
; VMLAUNCH. One round trip = 6 guest instructions (the exiting CPUID
; included) + 48 host instructions (the VMRESUME included): Bochs' tick count
; grows by 54 per iteration. Everything printed is defined by the SDM and the loop (no TSC,
; no capability values), so the output is the same on any VMX machine.
;
; Memory: image at 0x7C00 (must stay below 0x10000), page tables
; 0x10000-0x12FFF, IDT 0x13000, TSS 0x14000, VMXON region 0x20000, VMCS
; 0x21000, guest stack below 0x60000 (unused), host stack below 0x80000.
; Needs only the boot contract of tests/boot/README.md (INT 13h AH=02h,
; ports 0xE9, 0x8900, 0x92).

%ifndef ITER
%define ITER 1000000
%endif

; ------------------------------------------------------------- constants
PML4            equ 0x10000
PDPT            equ 0x11000
PD              equ 0x12000
IDT_BASE        equ 0x13000
TSS_BASE        equ 0x14000
VMXON_REGION    equ 0x20000
VMCS_REGION     equ 0x21000
GUEST_STACK     equ 0x60000
HOST_STACK      equ 0x80000

SEL_CODE32      equ 0x08
SEL_DATA32      equ 0x10
SEL_CODE64      equ 0x18
SEL_DATA64      equ 0x20
SEL_TSS         equ 0x28

IA32_FEATURE_CONTROL    equ 0x3A
IA32_VMX_BASIC          equ 0x480
IA32_VMX_PINBASED       equ 0x481
IA32_VMX_PROCBASED      equ 0x482
IA32_VMX_EXIT           equ 0x483
IA32_VMX_ENTRY          equ 0x484
IA32_VMX_CR0_FIXED0     equ 0x486
IA32_VMX_CR0_FIXED1     equ 0x487
IA32_VMX_CR4_FIXED0     equ 0x488
IA32_VMX_CR4_FIXED1     equ 0x489
IA32_VMX_TRUE_PINBASED  equ 0x48D       ; TRUE_* = plain + 0x0C
IA32_EFER               equ 0xC0000080

; VMCS field encodings (SDM Vol. 3D, Appendix B)
F_GUEST_ES_SEL          equ 0x0800
F_GUEST_CS_SEL          equ 0x0802
F_GUEST_SS_SEL          equ 0x0804
F_GUEST_DS_SEL          equ 0x0806
F_GUEST_FS_SEL          equ 0x0808
F_GUEST_GS_SEL          equ 0x080A
F_GUEST_LDTR_SEL        equ 0x080C
F_GUEST_TR_SEL          equ 0x080E
F_HOST_ES_SEL           equ 0x0C00
F_HOST_CS_SEL           equ 0x0C02
F_HOST_SS_SEL           equ 0x0C04
F_HOST_DS_SEL           equ 0x0C06
F_HOST_FS_SEL           equ 0x0C08
F_HOST_GS_SEL           equ 0x0C0A
F_HOST_TR_SEL           equ 0x0C0C
F_VMCS_LINK_PTR         equ 0x2800
F_GUEST_DEBUGCTL        equ 0x2802
F_PIN_CTLS              equ 0x4000
F_PROC_CTLS             equ 0x4002
F_EXC_BITMAP            equ 0x4004
F_PFEC_MASK             equ 0x4006
F_PFEC_MATCH            equ 0x4008
F_CR3_TARGET_COUNT      equ 0x400A
F_EXIT_CTLS             equ 0x400C
F_EXIT_MSR_STORE_COUNT  equ 0x400E
F_EXIT_MSR_LOAD_COUNT   equ 0x4010
F_ENTRY_CTLS            equ 0x4012
F_ENTRY_MSR_LOAD_COUNT  equ 0x4014
F_ENTRY_INTR_INFO       equ 0x4016
F_VM_INSTR_ERROR        equ 0x4400
F_EXIT_REASON           equ 0x4402
F_EXIT_INSTR_LEN        equ 0x440C
F_GUEST_ES_LIMIT        equ 0x4800
F_GUEST_CS_LIMIT        equ 0x4802
F_GUEST_SS_LIMIT        equ 0x4804
F_GUEST_DS_LIMIT        equ 0x4806
F_GUEST_FS_LIMIT        equ 0x4808
F_GUEST_GS_LIMIT        equ 0x480A
F_GUEST_LDTR_LIMIT      equ 0x480C
F_GUEST_TR_LIMIT        equ 0x480E
F_GUEST_GDTR_LIMIT      equ 0x4810
F_GUEST_IDTR_LIMIT      equ 0x4812
F_GUEST_ES_AR           equ 0x4814
F_GUEST_CS_AR           equ 0x4816
F_GUEST_SS_AR           equ 0x4818
F_GUEST_DS_AR           equ 0x481A
F_GUEST_FS_AR           equ 0x481C
F_GUEST_GS_AR           equ 0x481E
F_GUEST_LDTR_AR         equ 0x4820
F_GUEST_TR_AR           equ 0x4822
F_GUEST_INTERRUPTIBILITY equ 0x4824
F_GUEST_ACTIVITY        equ 0x4826
F_GUEST_SYSENTER_CS     equ 0x482A
F_HOST_SYSENTER_CS      equ 0x4C00
F_CR0_MASK              equ 0x6000
F_CR4_MASK              equ 0x6002
F_CR0_SHADOW            equ 0x6004
F_CR4_SHADOW            equ 0x6006
F_EXIT_QUAL             equ 0x6400
F_GUEST_CR0             equ 0x6800
F_GUEST_CR3             equ 0x6802
F_GUEST_CR4             equ 0x6804
F_GUEST_ES_BASE         equ 0x6806
F_GUEST_CS_BASE         equ 0x6808
F_GUEST_SS_BASE         equ 0x680A
F_GUEST_DS_BASE         equ 0x680C
F_GUEST_FS_BASE         equ 0x680E
F_GUEST_GS_BASE         equ 0x6810
F_GUEST_LDTR_BASE       equ 0x6812
F_GUEST_TR_BASE         equ 0x6814
F_GUEST_GDTR_BASE       equ 0x6816
F_GUEST_IDTR_BASE       equ 0x6818
F_GUEST_DR7             equ 0x681A
F_GUEST_RSP             equ 0x681C
F_GUEST_RIP             equ 0x681E
F_GUEST_RFLAGS          equ 0x6820
F_GUEST_PENDING_DBG     equ 0x6822
F_GUEST_SYSENTER_ESP    equ 0x6824
F_GUEST_SYSENTER_EIP    equ 0x6826
F_HOST_CR0              equ 0x6C00
F_HOST_CR3              equ 0x6C02
F_HOST_CR4              equ 0x6C04
F_HOST_FS_BASE          equ 0x6C06
F_HOST_GS_BASE          equ 0x6C08
F_HOST_TR_BASE          equ 0x6C0A
F_HOST_GDTR_BASE        equ 0x6C0C
F_HOST_IDTR_BASE        equ 0x6C0E
F_HOST_SYSENTER_ESP     equ 0x6C10
F_HOST_SYSENTER_EIP     equ 0x6C12
F_HOST_RSP              equ 0x6C14
F_HOST_RIP              equ 0x6C16

EXIT_HOST_64            equ 1 << 9      ; VM-exit: host address-space size
ENTRY_IA32E_GUEST       equ 1 << 9      ; VM-entry: IA-32e mode guest

EXIT_CPUID              equ 10
EXIT_VMCALL             equ 18

; what the emulated CPUID returns (any leaf): max leaf 1, "VmxSimCPUID!"
CPUID_EAX               equ 1
CPUID_EBX               equ 0x53786D56  ; "VmxS"
CPUID_EDX               equ 0x50436D69  ; "imCP"
CPUID_ECX               equ 0x21444955  ; "UID!"

; guest GPR save area: index = register number (RSP's slot unused)
G_RAX equ 0
G_RCX equ 1
G_RDX equ 2
G_RBX equ 3
G_RBP equ 5
G_RSI equ 6
G_RDI equ 7
G_R8  equ 8
G_R13 equ 13
G_R14 equ 14
G_R15 equ 15

; ================================================================ sector 0
bits 16
org 0x7C00

IMAGE_SECTORS equ (image_end - boot_start + 511) / 512

boot_start:
        cli
        cld
        xor ax, ax
        mov ds, ax
        mov es, ax
        mov ss, ax
        mov sp, 0x7C00
        jmp 0x0000:.cs_ok
.cs_ok:
        mov [boot_drive], dl
        mov si, msg_begin
        call puts16
        mov si, 1                       ; next LBA
        mov ax, 0x07E0                  ; destination segment (0x7E00)
        mov es, ax
.read:
        cmp si, IMAGE_SECTORS
        jae .loaded
        mov ax, si                      ; LBA -> CHS (18 sectors, 2 heads)
        xor dx, dx
        mov cx, 18
        div cx
        mov cl, dl
        inc cl                          ; sector (1-based)
        mov dh, al
        and dh, 1                       ; head
        shr ax, 1
        mov ch, al                      ; cylinder
        mov dl, [boot_drive]
        xor bx, bx
        mov ax, 0x0201                  ; read 1 sector to ES:0
        push si
        int 0x13
        pop si
        cli
        jc .disk_error
        inc si
        mov ax, es
        add ax, 0x20
        mov es, ax
        jmp .read
.disk_error:
        mov si, msg_disk_error
        call puts16
        mov si, msg_end
        call puts16
        mov si, shutdown_str
        mov dx, 0x8900
        mov cx, 8
        rep outsb
.halt:
        hlt
        jmp .halt
.loaded:
        xor ax, ax
        mov es, ax
        in al, 0x92                     ; fast A20 (bit 0 written as 0)
        or al, 2
        and al, 0xFE
        out 0x92, al
        lgdt [gdtr]
        mov eax, cr0
        or eax, 1
        mov cr0, eax
        jmp dword SEL_CODE32:pm32

puts16:                                 ; DS:SI -> NUL-terminated string
        lodsb
        test al, al
        jz .done
        out 0xE9, al
        jmp puts16
.done:
        ret

boot_drive:     db 0
msg_begin:      db "=== BEGIN vmx_cpuid ===", 10, 0
msg_disk_error: db "INT 13h read error", 10, 0
msg_end:        db "=== END vmx_cpuid ===", 10, 0
shutdown_str:   db "Shutdown"

        times 510 - ($ - $$) db 0
        dw 0xAA55

; ================================================================ sector 1..
bits 32
pm32:
        mov ax, SEL_DATA32
        mov ds, ax
        mov es, ax
        mov fs, ax
        mov gs, ax
        mov ss, ax
        mov esp, HOST_STACK
        mov edi, PML4                   ; 1 GiB identity map, 2 MiB pages
        mov ecx, 3 * 4096 / 4
        xor eax, eax
        rep stosd
        mov dword [PML4], PDPT | 3
        mov dword [PDPT], PD | 3
        mov edi, PD
        mov eax, 0x83                   ; P | RW | PS
        mov ecx, 512
.pde:
        mov [edi], eax
        add eax, 0x200000
        add edi, 8
        loop .pde
        mov eax, 0x20                   ; CR4.PAE
        mov cr4, eax
        mov eax, PML4
        mov cr3, eax
        mov ecx, IA32_EFER
        rdmsr
        or eax, 1 << 8                  ; LME
        wrmsr
        mov eax, cr0
        or eax, 0x80000001              ; PG | PE
        mov cr0, eax
        jmp SEL_CODE64:lm64

; LOAD_GUEST_GPRS: all GPRs but RSP from gregs (RSP: GUEST_RSP in the VMCS).
%macro LOAD_GUEST_GPRS 0
        mov rax, [gregs + 0 * 8]
        mov rcx, [gregs + 1 * 8]
        mov rdx, [gregs + 2 * 8]
        mov rbx, [gregs + 3 * 8]
        mov rbp, [gregs + 5 * 8]
        mov rsi, [gregs + 6 * 8]
        mov rdi, [gregs + 7 * 8]
        mov r8,  [gregs + 8 * 8]
        mov r9,  [gregs + 9 * 8]
        mov r10, [gregs + 10 * 8]
        mov r11, [gregs + 11 * 8]
        mov r12, [gregs + 12 * 8]
        mov r13, [gregs + 13 * 8]
        mov r14, [gregs + 14 * 8]
        mov r15, [gregs + 15 * 8]
%endmacro

bits 64
lm64:
        mov ax, SEL_DATA64
        mov ds, ax
        mov es, ax
        mov fs, ax
        mov gs, ax
        mov ss, ax
        mov rsp, HOST_STACK
        call setup_idt_tss
        call vmx_on
        call setup_vmcs

        ; VMLAUNCH with the initial guest GPRs. From here on the host runs
        ; only in exit_handler (HOST_RIP), on a fresh stack each time.
        mov rbx, F_HOST_RSP
        mov rax, HOST_STACK
        vmwrite rbx, rax
        LOAD_GUEST_GPRS
        vmlaunch
        ; VMLAUNCH fell through: VMfailInvalid / VMfailValid
        pushfq
        pop rbx
        lea rsi, [rel msg_launch_failed]
        jmp vmfail_report

; ------------------------------------------------------------- the guest
guest_entry:
        mov r15d, ITER
        xor r14d, r14d
        xor r13d, r13d
.loop:
        mov eax, 0
        cpuid                           ; VM exit 10
        add r14, rbx
        add r13, rdx
        dec r15
        jnz .loop
        vmcall                          ; VM exit 18: done
.stuck:
        hlt                             ; (the host never resumes after VMCALL)
        jmp .stuck

; ------------------------------------------------------ the exit handler
; Entered on every VM exit with the guest's GPRs still in the registers,
; RSP = HOST_STACK, RFLAGS = 2.
exit_handler:
        mov [gregs + 0 * 8], rax
        mov [gregs + 1 * 8], rcx
        mov [gregs + 2 * 8], rdx
        mov [gregs + 3 * 8], rbx
        mov [gregs + 5 * 8], rbp
        mov [gregs + 6 * 8], rsi
        mov [gregs + 7 * 8], rdi
        mov [gregs + 8 * 8], r8
        mov [gregs + 9 * 8], r9
        mov [gregs + 10 * 8], r10
        mov [gregs + 11 * 8], r11
        mov [gregs + 12 * 8], r12
        mov [gregs + 13 * 8], r13
        mov [gregs + 14 * 8], r14
        mov [gregs + 15 * 8], r15
        inc qword [total_exits]
        mov ebx, F_EXIT_REASON
        vmread rax, rbx
        mov [last_exit_reason], rax
        cmp eax, EXIT_CPUID             ; (bit 31 = failed entry: never equal)
        jne .not_cpuid
        ; emulate CPUID: fixed values, upper halves zero
        mov qword [gregs + G_RAX * 8], CPUID_EAX
        mov qword [gregs + G_RBX * 8], CPUID_EBX
        mov qword [gregs + G_RCX * 8], CPUID_ECX
        mov qword [gregs + G_RDX * 8], CPUID_EDX
        inc qword [cpuid_exits]
        ; skip the instruction
        mov ebx, F_GUEST_RIP
        vmread rax, rbx
        mov ecx, F_EXIT_INSTR_LEN
        vmread rdx, rcx
        add rax, rdx
        vmwrite rbx, rax
        LOAD_GUEST_GPRS
        vmresume
        ; VMRESUME fell through: VMfailInvalid / VMfailValid
        pushfq
        pop rbx
        lea rsi, [rel msg_resume_failed]
        jmp vmfail_report
.not_cpuid:
        cmp eax, EXIT_VMCALL
        je guest_done
        ; anything else: report and stop
        lea rsi, [rel msg_unexpected_exit]
        call puts64
        mov rax, [last_exit_reason]
        call puthex64
        lea rsi, [rel msg_qual]
        call puts64
        mov ebx, F_EXIT_QUAL
        vmread rax, rbx
        call puthex64
        lea rsi, [rel msg_rip]
        call puts64
        mov ebx, F_GUEST_RIP
        vmread rax, rbx
        call puthex64
        lea rsi, [rel msg_after]
        call puts64
        mov rax, [cpuid_exits]
        call putdec64
        call putnl64
        jmp shutdown

; vmfail_report: RSI = message, RBX = RFLAGS after the VMX instruction.
vmfail_report:
        call puts64
        test ebx, 1                     ; CF: VMfailInvalid
        jz .valid
        lea rsi, [rel msg_fail_invalid]
        call puts64
        jmp .out
.valid:
        lea rsi, [rel msg_fail_valid]
        call puts64
        mov ebx, F_VM_INSTR_ERROR
        vmread rax, rbx
        call putdec64
.out:
        lea rsi, [rel msg_after]
        call puts64
        mov rax, [cpuid_exits]
        call putdec64
        call putnl64
        jmp shutdown

; guest_done: the guest's VMCALL. Print the results and stop.
guest_done:
        mov ebx, F_GUEST_RSP
        vmread rax, rbx
        mov [gregs + 4 * 8], rax
        lea rsi, [rel msg_iter]
        mov rax, ITER
        call put_count
        lea rsi, [rel msg_cpuid_exits]
        mov rax, [cpuid_exits]
        call put_count
        lea rsi, [rel msg_total_exits]
        mov rax, [total_exits]
        call put_count
        lea rsi, [rel msg_last_exit]
        call puts64
        mov rax, [last_exit_reason]
        call putdec64
        call putnl64
        ; guest registers, four to a line, and the checksum:
        ; sum = rol(sum, 13) + reg, over registers 0..15 in number order
        lea rsi, [rel reg_names]
        xor r12d, r12d                  ; register number
        xor r13d, r13d                  ; checksum
.reg:
        call puts64                     ; "rax=" ...
        lea rsi, [rsi + 5]
        mov rax, [gregs + r12 * 8]
        rol r13, 13
        add r13, rax
        call puthex64
        inc r12d
        test r12d, 3
        jz .eol
        mov al, ' '
        out 0xE9, al
        jmp .next
.eol:
        call putnl64
.next:
        cmp r12d, 16
        jb .reg
        lea rsi, [rel msg_checksum]
        call puts64
        mov rax, r13
        call puthex64
        call putnl64
        jmp shutdown

; put_count: RSI = label; prints label, RAX as 16 hex digits, " (decimal)".
put_count:
        call puts64
        call puthex64
        push rax
        mov al, ' '
        out 0xE9, al
        mov al, '('
        out 0xE9, al
        pop rax
        call putdec64
        mov al, ')'
        out 0xE9, al
        jmp putnl64

; ------------------------------------------------------------ VMX set-up
vmx_on:
        mov eax, 1                      ; CPUID.1:ECX.VMX[5]
        cpuid
        bt ecx, 5
        jc .has_vmx
        lea rsi, [rel msg_no_vmx]
        jmp fatal
.has_vmx:
        mov ecx, IA32_FEATURE_CONTROL
        rdmsr
        test al, 1                      ; locked?
        jnz .locked
        or eax, 1 | 4                   ; lock + VMXON outside SMX
        wrmsr
        jmp .fc_ok
.locked:
        test al, 4
        jnz .fc_ok
        lea rsi, [rel msg_vmx_disabled]
        jmp fatal
.fc_ok:
        ; CR0 = (CR0 | FIXED0) & FIXED1, same for CR4 (sets CR0.NE, CR4.VMXE)
        mov ecx, IA32_VMX_CR0_FIXED0
        call rdmsr64
        mov rbx, cr0
        or rbx, rax
        mov ecx, IA32_VMX_CR0_FIXED1
        call rdmsr64
        and rbx, rax
        mov cr0, rbx
        mov ecx, IA32_VMX_CR4_FIXED0
        call rdmsr64
        mov rbx, cr4
        or rbx, rax
        mov ecx, IA32_VMX_CR4_FIXED1
        call rdmsr64
        and rbx, rax
        mov cr4, rbx
        ; revision id, TRUE-controls flag
        mov ecx, IA32_VMX_BASIC
        call rdmsr64
        mov rdx, rax
        and eax, 0x7FFFFFFF
        mov [revision], eax
        bt rdx, 55
        jnc .plain
        mov dword [ctl_msr_delta], IA32_VMX_TRUE_PINBASED - IA32_VMX_PINBASED
.plain:
        mov rdi, VMXON_REGION
        call init_region
        mov rdi, VMCS_REGION
        call init_region
        vmxon [vmxon_ptr]
        pushfq
        pop rbx
        test ebx, 0x41                  ; CF | ZF
        jz .on
        lea rsi, [rel msg_vmxon_failed]
        jmp vmfail_report
.on:
        vmclear [vmcs_ptr]
        pushfq
        pop rbx
        lea rsi, [rel msg_vmclear_failed]
        test ebx, 0x41
        jnz vmfail_report
        vmptrld [vmcs_ptr]
        pushfq
        pop rbx
        lea rsi, [rel msg_vmptrld_failed]
        test ebx, 0x41
        jnz vmfail_report
        ret

; init_region: RDI = 4 KiB region: zero it, revision id at offset 0.
init_region:
        push rdi
        xor eax, eax
        mov ecx, 4096 / 4
        rep stosd
        pop rdi
        mov eax, [revision]
        mov [rdi], eax
        ret

; rdmsr64: RAX = MSR ECX (64 bits). Clobbers RDX.
rdmsr64:
        rdmsr
        shl rdx, 32
        or rax, rdx
        ret

; adjust_ctl: EAX = desired bits, ECX = plain capability MSR (0x481..0x484);
; uses the TRUE MSR when IA32_VMX_BASIC[55] = 1. Returns EAX =
; (desired | allowed-0) & allowed-1. Clobbers RDX, RSI.
adjust_ctl:
        mov esi, eax
        add ecx, [ctl_msr_delta]
        rdmsr
        or eax, esi
        and eax, edx
        ret

; VMWRITE field, value (register or imm32); a failure stops the image.
%macro VMW 2
        mov rax, %2
        mov ebx, %1
        call vmwrite_checked
%endmacro
vmwrite_checked:                        ; RBX = field, RAX = value
        vmwrite rbx, rax
        jna .fail                       ; CF or ZF
        ret
.fail:
        pushfq
        push rbx
        lea rsi, [rel msg_vmwrite_failed]
        call puts64
        pop rax
        call puthex64
        pop rbx
        lea rsi, [rel msg_colon]
        jmp vmfail_report

setup_vmcs:
        mov eax, 0                      ; pin-based: nothing
        mov ecx, IA32_VMX_PINBASED
        call adjust_ctl
        VMW F_PIN_CTLS, rax
        mov eax, 0                      ; primary: nothing (CPUID, VMCALL exit anyway)
        mov ecx, IA32_VMX_PROCBASED
        call adjust_ctl
        VMW F_PROC_CTLS, rax
        mov eax, EXIT_HOST_64
        mov ecx, IA32_VMX_EXIT
        call adjust_ctl
        VMW F_EXIT_CTLS, rax
        mov eax, ENTRY_IA32E_GUEST
        mov ecx, IA32_VMX_ENTRY
        call adjust_ctl
        VMW F_ENTRY_CTLS, rax
        VMW F_EXC_BITMAP, 0
        VMW F_PFEC_MASK, 0
        VMW F_PFEC_MATCH, 0
        VMW F_CR3_TARGET_COUNT, 0
        VMW F_EXIT_MSR_STORE_COUNT, 0
        VMW F_EXIT_MSR_LOAD_COUNT, 0
        VMW F_ENTRY_MSR_LOAD_COUNT, 0
        VMW F_ENTRY_INTR_INFO, 0
        VMW F_CR0_MASK, 0
        VMW F_CR4_MASK, 0
        VMW F_VMCS_LINK_PTR, -1
        ; host state = the current state; guest control registers the same
        mov rax, cr0
        VMW F_HOST_CR0, rax
        VMW F_GUEST_CR0, rax
        VMW F_CR0_SHADOW, rax
        mov rax, cr3
        VMW F_HOST_CR3, rax
        VMW F_GUEST_CR3, rax
        mov rax, cr4
        VMW F_HOST_CR4, rax
        VMW F_GUEST_CR4, rax
        VMW F_CR4_SHADOW, rax
        VMW F_HOST_CS_SEL, SEL_CODE64
        VMW F_HOST_SS_SEL, SEL_DATA64
        VMW F_HOST_DS_SEL, SEL_DATA64
        VMW F_HOST_ES_SEL, SEL_DATA64
        VMW F_HOST_FS_SEL, SEL_DATA64
        VMW F_HOST_GS_SEL, SEL_DATA64
        VMW F_HOST_TR_SEL, SEL_TSS
        VMW F_HOST_FS_BASE, 0
        VMW F_HOST_GS_BASE, 0
        VMW F_HOST_TR_BASE, TSS_BASE
        VMW F_HOST_GDTR_BASE, gdt
        VMW F_HOST_IDTR_BASE, IDT_BASE
        VMW F_HOST_SYSENTER_CS, 0
        VMW F_HOST_SYSENTER_ESP, 0
        VMW F_HOST_SYSENTER_EIP, 0
        VMW F_HOST_RIP, exit_handler
        VMW F_HOST_RSP, HOST_STACK
        ; guest segments: CS 64-bit code, the others flat data, at CPL0
        VMW F_GUEST_CS_SEL, SEL_CODE64
        VMW F_GUEST_CS_BASE, 0
        VMW F_GUEST_CS_LIMIT, 0xFFFFFFFF
        VMW F_GUEST_CS_AR, 0xA09B       ; G, L, P, S, code exec/read accessed
%macro GUEST_DATA_SEG 1
        VMW F_GUEST_%1_SEL, SEL_DATA64
        VMW F_GUEST_%1_BASE, 0
        VMW F_GUEST_%1_LIMIT, 0xFFFFFFFF
        VMW F_GUEST_%1_AR, 0xC093       ; G, D/B, P, S, data read/write accessed
%endmacro
        GUEST_DATA_SEG SS
        GUEST_DATA_SEG DS
        GUEST_DATA_SEG ES
        GUEST_DATA_SEG FS
        GUEST_DATA_SEG GS
        VMW F_GUEST_LDTR_SEL, 0
        VMW F_GUEST_LDTR_BASE, 0
        VMW F_GUEST_LDTR_LIMIT, 0
        VMW F_GUEST_LDTR_AR, 0x10000    ; unusable
        VMW F_GUEST_TR_SEL, SEL_TSS
        VMW F_GUEST_TR_BASE, TSS_BASE
        VMW F_GUEST_TR_LIMIT, 0x67
        VMW F_GUEST_TR_AR, 0x8B         ; P, busy 64-bit TSS
        VMW F_GUEST_GDTR_BASE, gdt
        VMW F_GUEST_GDTR_LIMIT, gdt_end - gdt - 1
        VMW F_GUEST_IDTR_BASE, IDT_BASE
        VMW F_GUEST_IDTR_LIMIT, 32 * 16 - 1
        VMW F_GUEST_DR7, 0x400
        VMW F_GUEST_RSP, GUEST_STACK
        VMW F_GUEST_RIP, guest_entry
        VMW F_GUEST_RFLAGS, 2
        VMW F_GUEST_PENDING_DBG, 0
        VMW F_GUEST_INTERRUPTIBILITY, 0
        VMW F_GUEST_ACTIVITY, 0
        VMW F_GUEST_DEBUGCTL, 0
        VMW F_GUEST_SYSENTER_CS, 0
        VMW F_GUEST_SYSENTER_ESP, 0
        VMW F_GUEST_SYSENTER_EIP, 0
        ret

; ------------------------------------------------------ IDT, TSS, faults
setup_idt_tss:
        mov rdi, IDT_BASE
        xor eax, eax
        mov ecx, 32 * 16 / 4
        rep stosd
        mov rdi, IDT_BASE
        lea rsi, [rel isr_stubs]
        mov ecx, 32
.gate:
        mov rax, rsi
        mov [rdi], ax                   ; offset 15:0
        mov word [rdi + 2], SEL_CODE64
        mov word [rdi + 4], 0x8E00      ; P, DPL0, 64-bit interrupt gate
        shr rax, 16
        mov [rdi + 6], ax               ; offset 31:16 (63:32 = 0)
        add rsi, ISR_STUB_SIZE
        add rdi, 16
        loop .gate
        lidt [idtr]
        mov rdi, TSS_BASE
        xor eax, eax
        mov ecx, 104 / 4
        rep stosd
        mov qword [TSS_BASE + 4], HOST_STACK    ; RSP0 (unused: no CPL change)
        mov word [TSS_BASE + 102], 104          ; no I/O bitmap
        mov ax, SEL_TSS
        ltr ax
        ret

; 32 stubs of equal size: push the vector, then the common handler.
; Vectors with an error code: 8, 10-14, 17, 21, 29, 30.
ERRCODE_VECTORS equ (1 << 8) | (0x1F << 10) | (1 << 17) | (1 << 21) | (1 << 29) | (1 << 30)
isr_stubs:
%assign v 0
%rep 32
        push qword v
        jmp near isr_common
  %if v == 0
ISR_STUB_SIZE equ $ - isr_stubs
  %endif
  %assign v v + 1
%endrep

        ; every stub must have the same size (the IDT set-up steps by it)
        times 0 - ((($ - isr_stubs) != 32 * ISR_STUB_SIZE)) db 0

isr_common:                             ; [rsp] vector, [errcode], rip, ...
        lea rsi, [rel msg_exception]
        call puts64
        pop rax
        mov rbx, rax
        call putdec64
        mov ecx, ERRCODE_VECTORS
        bt ecx, ebx
        jnc .noerr
        lea rsi, [rel msg_errcode]
        call puts64
        pop rax
        call puthex64
.noerr:
        lea rsi, [rel msg_rip]
        call puts64
        pop rax
        call puthex64
        lea rsi, [rel msg_after]
        call puts64
        mov rax, [cpuid_exits]
        call putdec64
        call putnl64
        jmp shutdown

; fatal: RSI = message line. Prints it and stops.
fatal:
        call puts64

; shutdown: END marker, "Shutdown" to port 0x8900, halt.
shutdown:
        lea rsi, [rel msg_end]
        call puts64
        lea rsi, [rel shutdown_str]
        mov dx, 0x8900
        mov ecx, 8
        rep outsb
.halt:
        cli
        hlt
        jmp .halt

; ------------------------------------------------------------- printing
puts64:                                 ; RSI -> NUL-terminated string
        push rax
        push rsi
.next:
        mov al, [rsi]
        inc rsi
        test al, al
        jz .done
        out 0xE9, al
        jmp .next
.done:
        pop rsi
        pop rax
        ret

puthex64:                               ; RAX as 16 hex digits
        push rax
        push rcx
        push rdx
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
        dec ecx
        jnz .digit
        pop rdx
        pop rcx
        pop rax
        ret

putdec64:                               ; RAX in decimal
        push rax
        push rbx
        push rcx
        push rdx
        mov ebx, 10
        xor ecx, ecx
.div:
        xor edx, edx
        div rbx
        push rdx
        inc ecx
        test rax, rax
        jnz .div
.out:
        pop rax
        add al, '0'
        out 0xE9, al
        loop .out
        pop rdx
        pop rcx
        pop rbx
        pop rax
        ret

putnl64:
        push rax
        mov al, 10
        out 0xE9, al
        pop rax
        ret

; ------------------------------------------------------------------ data
        align 8, db 0
vmxon_ptr:        dq VMXON_REGION
vmcs_ptr:         dq VMCS_REGION
revision:         dd 0
ctl_msr_delta:    dd 0                  ; 0 or TRUE_* - plain (0x0C)
cpuid_exits:      dq 0
total_exits:      dq 0
last_exit_reason: dq 0

; guest GPRs by register number; the initial values are what VMLAUNCH
; gives the guest (RAX-RDX, R13-R15 are overwritten by the guest's loop;
; the RSP slot is filled from GUEST_RSP at the end).
gregs:
        dq 0x0000000000000000           ; rax
        dq 0x1111111111111111           ; rcx
        dq 0x2222222222222222           ; rdx
        dq 0x3333333333333333           ; rbx
        dq 0                            ; (rsp)
        dq 0x5555555555555555           ; rbp
        dq 0x6666666666666666           ; rsi
        dq 0x7777777777777777           ; rdi
        dq 0x8888888888888888           ; r8
        dq 0x9999999999999999           ; r9
        dq 0xAAAAAAAAAAAAAAAA           ; r10
        dq 0xBBBBBBBBBBBBBBBB           ; r11
        dq 0xCCCCCCCCCCCCCCCC           ; r12
        dq 0xDDDDDDDDDDDDDDDD           ; r13
        dq 0xEEEEEEEEEEEEEEEE           ; r14
        dq 0xFFFFFFFFFFFFFFFF           ; r15

        align 8, db 0
        dw 0, 0, 0
idtr:   dw 32 * 16 - 1
        dq IDT_BASE

        align 8, db 0
gdt:
        dq 0
        dq 0x00CF9A000000FFFF           ; 0x08 code32
        dq 0x00CF92000000FFFF           ; 0x10 data32
        dq 0x00AF9A000000FFFF           ; 0x18 code64
        dq 0x00CF92000000FFFF           ; 0x20 data
        dq 0x0000890140000067           ; 0x28 TSS64 at 0x14000, limit 0x67
        dq 0                            ;      (base 63:32)
gdt_end:
gdtr:   dw gdt_end - gdt - 1
        dq gdt                          ; (lgdt in 16-bit mode reads 6 bytes)

reg_names:      db "rax=", 0, "rcx=", 0, "rdx=", 0, "rbx=", 0
                db "rsp=", 0, "rbp=", 0, "rsi=", 0, "rdi=", 0
                db "r8 =", 0, "r9 =", 0, "r10=", 0, "r11=", 0
                db "r12=", 0, "r13=", 0, "r14=", 0, "r15=", 0
msg_iter:            db "iterations=", 0
msg_cpuid_exits:     db "cpuid-exits=", 0
msg_total_exits:     db "total-exits=", 0
msg_last_exit:       db "last-exit-reason=", 0
msg_checksum:        db "checksum=", 0
msg_no_vmx:          db "FAILED: CPUID.1:ECX.VMX = 0", 10, 0
msg_vmx_disabled:    db "FAILED: IA32_FEATURE_CONTROL locked with VMXON disabled", 10, 0
msg_vmxon_failed:    db "FAILED: VMXON", 0
msg_vmclear_failed:  db "FAILED: VMCLEAR", 0
msg_vmptrld_failed:  db "FAILED: VMPTRLD", 0
msg_vmwrite_failed:  db "FAILED: VMWRITE field=", 0
msg_launch_failed:   db "FAILED: VMLAUNCH", 0
msg_resume_failed:   db "FAILED: VMRESUME", 0
msg_colon:           db ":", 0
msg_fail_invalid:    db " VMfailInvalid", 0
msg_fail_valid:      db " VMfailValid err=", 0
msg_unexpected_exit: db "FAILED: unexpected exit reason=", 0
msg_qual:            db " qual=", 0
msg_rip:             db " rip=", 0
msg_after:           db " after cpuid-exits=", 0
msg_exception:       db "FAILED: exception vector=", 0
msg_errcode:         db " error=", 0

        align 512, db 0
image_end:
        ; the image (loaded at 0x7C00) must end below the page tables
        times 0 - ((image_end - boot_start) > (PML4 - 0x7C00)) db 0
