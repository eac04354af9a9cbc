; vmx_fields.asm - VMREAD / VMWRITE (cases 48-67): unsupported encodings
;   (error 12: an encoding with reserved bit 12 set, the HIGH half of a
;   32-bit field, bits 63:32 of the encoding register set), VMWRITE to
;   read-only VM-exit information fields (error 13 unless
;   IA32_VMX_MISC[29] = 1, printed), round trips of 16-, 32-, 64-bit and
;   natural-width fields (high bits of the source ignored, reads
;   zero-extended), the HIGH half of a 64-bit field (encoding | 1) read and
;   written, register and memory operand forms, field values surviving
;   VMCLEAR + VMPTRLD and a switch to another VMCS, the VM-instruction error
;   field keeping its value across successful instructions.

%define IMAGE_NAME "vmx_fields"
%include "inc/boot.inc"
%include "inc/modes.inc"
%include "inc/vmxdefs.inc"
%include "inc/vmxlib.inc"
%assign CASE_NO 47

        align 8, db 0
ptr_a:          dq VMCS_A
ptr_b:          dq VMCS_B
mem_src:        dq 0x0123456789ABCDEF
mem_dst:        dq 0

; RDBACK field: VMREAD the field into RAX, print " vmread:STATUS =0x...".
%macro RDBACK 1
        mov ebx, %1
        TRYFAULT vmread rax, rbx
        PUTS64 " vmread:"
        call vl_print_status
        SHOWM " value", rax
%endmacro

; WRTRY field, value: VMWRITE (RBX = field, RAX = value), print
; " vmwrite:STATUS".
%macro WRTRY 2
        mov rax, %2
        mov rbx, %1
        TRYFAULT vmwrite rbx, rax
        PUTS64 " vmwrite:"
        call vl_print_status
%endmacro

vmx_main:
        call vl_vmx_on
        mov rdi, VMCS_A
        call vl_load_vmcs

        CASE "vmread-unsupported-encoding"
        mov ebx, 0x7FFE                 ; bit 12 set: no such field
        VMX_TRY vmread rax, rbx

        CASE "vmwrite-unsupported-encoding"
        mov ebx, 0x7FFE
        VMX_TRY vmwrite rbx, rax

        CASE "vmread-high-of-32bit-field"
        mov ebx, F_PROC_CTLS | 1
        VMX_TRY vmread rax, rbx

        CASE "vmwrite-high-of-natural-field"
        mov ebx, F_GUEST_RIP | 1
        VMX_TRY vmwrite rbx, rax

        CASE "vmread-encoding-bits-63-32"
        mov rbx, (1 << 32) | F_GUEST_RIP
        VMX_TRY vmread rax, rbx

        CASE "vmwrite-encoding-bits-63-32"
        mov rbx, (1 << 32) | F_GUEST_RIP
        VMX_TRY vmwrite rbx, rax

        CASE "vmwrite-exit-reason-readonly"
        CAPBIT "IA32_VMX_MISC[29]", IA32_VMX_MISC, 29
        WRTRY F_EXIT_REASON, 0x12345678
        RDBACK F_EXIT_REASON
        call putnl64

        CASE "vmwrite-exit-qualification-readonly"
        CAPBIT "IA32_VMX_MISC[29]", IA32_VMX_MISC, 29
        WRTRY F_EXIT_QUAL, 0x1234
        RDBACK F_EXIT_QUAL
        call putnl64

        CASE "vmwrite-vmread-16bit"
        WRTRY F_GUEST_ES_SEL, 0xFFFFFFFF12345678
        RDBACK F_GUEST_ES_SEL
        call putnl64

        CASE "vmwrite-vmread-32bit"
        WRTRY F_GUEST_ES_LIMIT, 0xAAAABBBBCCCCDDDD
        RDBACK F_GUEST_ES_LIMIT
        call putnl64

        CASE "vmwrite-vmread-64bit"
        WRTRY F_TSC_OFFSET, 0x1122334455667788
        RDBACK F_TSC_OFFSET
        call putnl64

        CASE "vmread-64bit-high"
        RDBACK F_TSC_OFFSET | 1
        call putnl64

        CASE "vmwrite-64bit-high-then-full"
        WRTRY F_TSC_OFFSET | 1, 0xFFFFFFFFAABBCCDD
        RDBACK F_TSC_OFFSET
        call putnl64

        CASE "vmwrite-64bit-full-after-high"
        WRTRY F_TSC_OFFSET, 0x00000000FFFF0000
        RDBACK F_TSC_OFFSET | 1
        call putnl64

        CASE "vmwrite-vmread-natural"
        WRTRY F_CR3_TARGET0, 0x876543210FEDCBA9
        RDBACK F_CR3_TARGET0
        call putnl64

        CASE "vmwrite-mem-source-vmread-mem-dest"
        mov rbx, F_TSC_OFFSET
        TRYFAULT vmwrite rbx, [mem_src]
        PUTS64 " vmwrite:"
        call vl_print_status
        mov rax, 0xCCCCCCCCCCCCCCCC
        mov [mem_dst], rax
        TRYFAULT vmread [mem_dst], rbx
        PUTS64 " vmread:"
        call vl_print_status
        SHOWM " mem", [mem_dst]
        call putnl64

        CASE "vmread-16bit-to-mem-zero-extends"
        mov rax, 0xCCCCCCCCCCCCCCCC
        mov [mem_dst], rax
        mov ebx, F_GUEST_ES_SEL
        TRYFAULT vmread [mem_dst], rbx
        PUTS64 " vmread:"
        call vl_print_status
        SHOWM " mem", [mem_dst]
        call putnl64

        CASE "values-survive-vmclear-vmptrld"
        TRYFAULT vmclear [ptr_a]
        PUTS64 " vmclear:"
        call vl_print_status
        TRYFAULT vmptrld [ptr_a]
        PUTS64 " vmptrld:"
        call vl_print_status
        RDBACK F_TSC_OFFSET
        RDBACK F_GUEST_ES_SEL
        RDBACK F_CR3_TARGET0
        call putnl64

        CASE "two-vmcs-keep-own-values"
        mov rdi, VMCS_B
        call vl_load_vmcs
        WRTRY F_TSC_OFFSET, 0xB
        TRYFAULT vmptrld [ptr_a]
        PUTS64 " vmptrld-a:"
        call vl_print_status
        RDBACK F_TSC_OFFSET
        TRYFAULT vmptrld [ptr_b]
        PUTS64 " vmptrld-b:"
        call vl_print_status
        RDBACK F_TSC_OFFSET
        call putnl64

        CASE "instruction-error-kept-after-success"
        mov ebx, 0x7FFE
        TRYFAULT vmread rax, rbx        ; error 12
        WRTRY F_GUEST_ES_SEL, 0x10      ; succeeds
        RDBACK F_VM_INSTR_ERROR
        call putnl64

        jmp shutdown64

%include "inc/vmxtail.inc"
