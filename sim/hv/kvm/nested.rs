//! Nested VMX: this level as the hypervisor of a hypervisor (KVM's nested.c code of 4.13/4.14,
//! then still in vmx.c). vmcs12 lives in the guest's memory in this program's own layout
//! (field `i` of the SDM table at offset 16 + 8i); the VMX instructions of the guest are
//! emulated against it; VMLAUNCH/VMRESUME build vmcs02 and enter the nested guest; exits of
//! the nested guest are reflected into vmcs12 and the guest resumes at its host RIP.

use super::*;

/// Shadow EPT roots kept (one per guest EPTP in use).
const EPT02_ROOTS: u64 = 4;
const EPT02_SLICE: u64 = (L::EPT02_POOL_END - L::EPT02_POOL) / EPT02_ROOTS;
/// vCPU slots of the shadow-EPT cache and the INVEPT/INVVPID descriptor.
const N_EPT02_TAGS: u64 = 0x1A0;
const N_EPT02_NEXTS: u64 = 0x180;
const N_EPT02_VICTIM: u64 = 0x178;
const N_EPT02_END: u64 = 0x170;
const N_EPT02_CUR: u64 = 0x168;
const N_LAST_VPID: u64 = 0x1C0;
const N_DESC: u64 = 0x270;

/// Guest-state fields `prepare_vmcs02` copies straight from vmcs12, in 4.13's order.
const GUEST_SEGMENTS: [u32; 36] = [
    f::GUEST_ES_SELECTOR,
    f::GUEST_CS_SELECTOR,
    f::GUEST_SS_SELECTOR,
    f::GUEST_DS_SELECTOR,
    f::GUEST_FS_SELECTOR,
    f::GUEST_GS_SELECTOR,
    f::GUEST_LDTR_SELECTOR,
    f::GUEST_TR_SELECTOR,
    f::GUEST_ES_LIMIT,
    f::GUEST_CS_LIMIT,
    f::GUEST_SS_LIMIT,
    f::GUEST_DS_LIMIT,
    f::GUEST_FS_LIMIT,
    f::GUEST_GS_LIMIT,
    f::GUEST_LDTR_LIMIT,
    f::GUEST_TR_LIMIT,
    f::GUEST_GDTR_LIMIT,
    f::GUEST_IDTR_LIMIT,
    f::GUEST_ES_AR_BYTES,
    f::GUEST_CS_AR_BYTES,
    f::GUEST_SS_AR_BYTES,
    f::GUEST_DS_AR_BYTES,
    f::GUEST_FS_AR_BYTES,
    f::GUEST_GS_AR_BYTES,
    f::GUEST_LDTR_AR_BYTES,
    f::GUEST_TR_AR_BYTES,
    f::GUEST_ES_BASE,
    f::GUEST_CS_BASE,
    f::GUEST_SS_BASE,
    f::GUEST_DS_BASE,
    f::GUEST_FS_BASE,
    f::GUEST_GS_BASE,
    f::GUEST_LDTR_BASE,
    f::GUEST_TR_BASE,
    f::GUEST_GDTR_BASE,
    f::GUEST_IDTR_BASE,
];

/// Other guest fields `prepare_vmcs02` copies and `sync_vmcs12` reads back.
const GUEST_OTHER: [u32; 14] = [
    f::GUEST_INTERRUPTIBILITY_INFO,
    f::GUEST_PENDING_DBG_EXCEPTIONS,
    f::GUEST_SYSENTER_CS,
    f::GUEST_SYSENTER_ESP,
    f::GUEST_SYSENTER_EIP,
    f::GUEST_IA32_PAT,
    f::GUEST_IA32_EFER,
    f::GUEST_DR7,
    f::GUEST_IA32_DEBUGCTL,
    f::GUEST_PDPTR0,
    f::GUEST_PDPTR1,
    f::GUEST_PDPTR2,
    f::GUEST_PDPTR3,
    f::GUEST_CR3,
];

/// Straight copies of vmcs12 controls into vmcs02.
const CONTROL_COPIES: [u32; 7] = [
    f::PAGE_FAULT_ERROR_CODE_MASK,
    f::PAGE_FAULT_ERROR_CODE_MATCH,
    f::VM_ENTRY_INTR_INFO_FIELD,
    f::VM_ENTRY_EXCEPTION_ERROR_CODE,
    f::VM_ENTRY_INSTRUCTION_LEN,
    f::TPR_THRESHOLD,
    f::CR3_TARGET_COUNT,
];

/// Copies field `enc` of vmcs12 (at rbx) into the current VMCS.
fn copy_to_vmcs(a: &mut CodeAssembler, enc: u32) -> R {
    a.mov(rax, qword_ptr(rbx + off12(enc)))?;
    vmwrite(a, enc, rax)
}
/// VMREADs `enc` from the current VMCS into vmcs12 (at rbx).
fn copy_to_vmcs12(a: &mut CodeAssembler, enc: u32) -> R {
    vmread(a, rax, enc)?;
    a.mov(qword_ptr(rbx + off12(enc)), rax)
}

pub(super) fn emit(b: &mut ProgramBuilder, p: &HvParams, guest_size: u64) -> R {
    let _ = guest_size; // ---- helpers -----------------------------------------------------------------------
                        // vmcs12_lookup(esi = encoding) -> rax = byte offset in vmcs12 (bit 0 of the encoding
                        // adds 4 for the HIGH half), or -1 for an unsupported component.
    b.func("vmcs_field_to_offset", |b| {
        let table = b.label("vmcs_field_to_offset_table");
        let a = &mut b.asm;
        let mut bad = a.create_label();
        a.test(esi, !0x6FFFu32 as i32)?;
        a.jnz(bad)?;
        a.mov(eax, esi)?;
        a.shr(eax, 13)?;
        a.and(eax, 3)?;
        a.shl(eax, 11)?;
        a.mov(ecx, esi)?;
        a.shr(ecx, 10)?;
        a.and(ecx, 3)?;
        a.shl(ecx, 9)?;
        a.or(eax, ecx)?;
        a.mov(ecx, esi)?;
        a.shr(ecx, 1)?;
        a.and(ecx, 0x1FF)?;
        a.or(eax, ecx)?;
        a.lea(rcx, ptr(table))?;
        a.movzx(eax, word_ptr(rcx + rax * 2))?;
        a.cmp(eax, 0xFFFF)?;
        a.je(bad)?;
        a.test(esi, 1)?;
        let mut full = a.create_label();
        a.jz(full)?;
        a.add(eax, 4)?;
        a.set_label(&mut full)?;
        a.ret()?;
        a.set_label(&mut bad)?;
        a.mov(rax, -1i64)?;
        a.ret()
    })?;

    // vmcs12_read_any(esi = encoding) -> rax (value cut to the field's width); CF on error.
    b.func("vmcs12_read_any", |b| {
        let lookup = b.label("vmcs_field_to_offset");
        let a = &mut b.asm;
        a.call(lookup)?;
        let mut bad = a.create_label();
        a.cmp(rax, -1)?;
        a.je(bad)?;
        a.add(rax, vc(v::N_VMCS12))?;
        a.mov(rax, qword_ptr(rax))?;
        // Width: bits 14:13 (0: 16-bit, 1: 64-bit, 2: 32-bit, 3: natural) and HIGH access.
        let mut wide = a.create_label();
        let mut w32 = a.create_label();
        a.mov(ecx, esi)?;
        a.shr(ecx, 13)?;
        a.and(ecx, 3)?;
        a.test(esi, 1)?;
        a.jnz(w32)?;
        a.cmp(ecx, 2)?;
        a.je(w32)?;
        a.test(ecx, ecx)?;
        a.jnz(wide)?;
        a.movzx(eax, ax)?;
        a.jmp(wide)?;
        a.set_label(&mut w32)?;
        a.mov(eax, eax)?;
        a.set_label(&mut wide)?;
        a.clc()?;
        a.ret()?;
        a.set_label(&mut bad)?;
        a.stc()?;
        a.ret()
    })?;

    // vmcs12_write_any(esi = encoding, rdx = value); CF on error.
    b.func("vmcs12_write_any", |b| {
        let lookup = b.label("vmcs_field_to_offset");
        let a = &mut b.asm;
        a.call(lookup)?;
        let mut bad = a.create_label();
        a.cmp(rax, -1)?;
        a.je(bad)?;
        a.add(rax, vc(v::N_VMCS12))?;
        let mut w16 = a.create_label();
        let mut w32 = a.create_label();
        let mut done = a.create_label();
        a.mov(ecx, esi)?;
        a.shr(ecx, 13)?;
        a.and(ecx, 3)?;
        a.test(esi, 1)?;
        a.jnz(w32)?;
        a.cmp(ecx, 2)?;
        a.je(w32)?;
        a.test(ecx, ecx)?;
        a.jz(w16)?;
        a.mov(qword_ptr(rax), rdx)?;
        a.jmp(done)?;
        a.set_label(&mut w32)?;
        a.mov(dword_ptr(rax), edx)?;
        a.jmp(done)?;
        a.set_label(&mut w16)?;
        a.movzx(edx, dx)?;
        a.mov(qword_ptr(rax), rdx)?;
        a.set_label(&mut done)?;
        a.clc()?;
        a.ret()?;
        a.set_label(&mut bad)?;
        a.stc()?;
        a.ret()
    })?;

    // nested_vmx_succeed / failInvalid / failValid(edi): the guest's RFLAGS and
    // VM_INSTRUCTION_ERROR in vmcs12; then the instruction is skipped.
    b.func("nested_vmx_succeed", |b| {
        let skip = b.label("kvm_skip_emulated_instruction");
        let a = &mut b.asm;
        vmread(a, rax, f::GUEST_RFLAGS)?;
        a.and(eax, !0x8D5)?;
        vmwrite(a, f::GUEST_RFLAGS, rax)?;
        a.jmp(skip)
    })?;
    b.func("nested_vmx_failInvalid", |b| {
        let skip = b.label("kvm_skip_emulated_instruction");
        let a = &mut b.asm;
        vmread(a, rax, f::GUEST_RFLAGS)?;
        a.and(eax, !0x8D5)?;
        a.or(eax, 1)?;
        vmwrite(a, f::GUEST_RFLAGS, rax)?;
        a.jmp(skip)
    })?;
    b.func("nested_vmx_failValid", |b| {
        let skip = b.label("kvm_skip_emulated_instruction");
        let invalid = b.label("nested_vmx_failInvalid");
        let a = &mut b.asm;
        a.cmp(qword_ptr(L::VCPU + v::N_CURRENT_PTR), -1)?;
        a.je(invalid)?;
        vmread(a, rax, f::GUEST_RFLAGS)?;
        a.and(eax, !0x8D5)?;
        a.or(eax, 0x40)?;
        vmwrite(a, f::GUEST_RFLAGS, rax)?;
        a.mov(rax, vc(v::N_VMCS12))?;
        a.mov(qword_ptr(rax + off12(f::VM_INSTRUCTION_ERROR)), rdi)?;
        a.jmp(skip)
    })?;

    // nested_vmx_check_permission: #UD outside VMX operation (returns ZF=1 to stop).
    b.func("nested_vmx_check_permission", |b| {
        let a = &mut b.asm;
        let mut ok = a.create_label();
        a.cmp(qword_ptr(L::VCPU + v::N_VMXON), 0)?;
        a.jne(ok)?;
        vmwrite_imm(a, f::VM_ENTRY_INTR_INFO_FIELD, 0x8000_0306)?;
        a.xor(eax, eax)?;
        a.ret()?;
        a.set_label(&mut ok)?;
        a.mov(eax, 1u32)?;
        a.test(eax, eax)?;
        a.ret()
    })?;

    // get_vmx_mem_address -> rax = linear address of the memory operand (64-bit mode:
    // segment bases are 0 except FS/GS, which the model's guests do not use here).
    b.func("get_vmx_mem_address", |b| {
        let getreg = b.label("kvm_register_read");
        let a = &mut b.asm;
        a.push(rbx)?;
        vmread(a, rbx, f::EXIT_QUALIFICATION)?; // displacement
        vmread(a, rsi, f::VMX_INSTRUCTION_INFO)?;
        let mut no_base = a.create_label();
        let mut no_index = a.create_label();
        a.bt(esi, 27)?;
        a.jc(no_base)?;
        a.mov(ecx, esi)?;
        a.shr(ecx, 23)?;
        a.and(ecx, 15)?;
        a.push(rsi)?;
        a.call(getreg)?;
        a.pop(rsi)?;
        a.add(rbx, rax)?;
        a.set_label(&mut no_base)?;
        a.bt(esi, 22)?;
        a.jc(no_index)?;
        a.mov(ecx, esi)?;
        a.shr(ecx, 18)?;
        a.and(ecx, 15)?;
        a.push(rsi)?;
        a.call(getreg)?;
        a.pop(rsi)?;
        a.mov(ecx, esi)?;
        a.and(ecx, 3)?;
        a.shl(rax, cl)?;
        a.add(rbx, rax)?;
        a.set_label(&mut no_index)?;
        a.mov(rax, rbx)?;
        a.pop(rbx)?;
        a.ret()
    })?;

    // kvm_mmu_gva_to_gpa(rdi = linear) -> rax = guest-physical (-1 if not mapped): a walk of
    // the guest's 4-level page tables in its memory.
    b.func("kvm_mmu_gva_to_gpa", |b| {
        let a = &mut b.asm;
        let mut fail = a.create_label();
        vmread(a, rax, f::GUEST_CR3)?;
        a.mov(rcx, 0x000F_FFFF_FFFF_F000u64)?;
        a.and(rax, rcx)?;
        for (shift, large) in [(39u32, None), (30, Some(0x3FFF_FFFFu64)), (21, Some(0x1F_FFFF)), (12, None)] {
            a.mov(rdx, rdi)?;
            a.shr(rdx, shift)?;
            a.and(edx, 0x1FF)?;
            a.mov(rsi, GUEST_BASE)?;
            a.add(rsi, rax)?;
            a.mov(rax, qword_ptr(rsi + rdx * 8))?;
            a.test(eax, 1)?;
            a.jz(fail)?;
            if let Some(mask) = large {
                let mut small = a.create_label();
                a.bt(eax, 7)?;
                a.jnc(small)?;
                a.and(rax, rcx)?;
                a.mov(rdx, !mask)?;
                a.and(rax, rdx)?;
                a.mov(rdx, mask)?;
                a.and(rdx, rdi)?;
                a.or(rax, rdx)?;
                a.ret()?;
                a.set_label(&mut small)?;
            }
            a.and(rax, rcx)?;
        }
        a.mov(edx, edi)?;
        a.and(edx, 0xFFF)?;
        a.or(rax, rdx)?;
        a.ret()?;
        a.set_label(&mut fail)?;
        a.mov(rax, -1i64)?;
        a.ret()
    })?;

    // nested_vmx_get_vmptr -> rax = the 64-bit memory operand of VMXON/VMCLEAR/VMPTRLD.
    b.func("nested_vmx_get_vmptr", |b| {
        let addr = b.label("get_vmx_mem_address");
        let walk = b.label("kvm_mmu_gva_to_gpa");
        let a = &mut b.asm;
        operand_in_guest_memory(a, addr, walk)?;
        a.mov(rax, qword_ptr(rcx + rax))?;
        a.ret()
    })?;

    // handle_vmon.
    b.func("handle_vmon", |b| {
        let getptr = b.label("nested_vmx_get_vmptr");
        let succeed = b.label("nested_vmx_succeed");
        let invalid = b.label("nested_vmx_failInvalid");
        let gp = b.label("kvm_inject_gp");
        let a = &mut b.asm;
        a.test(qword_ptr(L::VCPU + v::CR4), crate::arch::x86::cr4::VMXE as i32)?;
        a.jz(gp)?;
        a.call(getptr)?;
        a.test(eax, 0xFFF)?;
        a.jnz(invalid)?;
        a.mov(rcx, GUEST_BASE)?;
        a.cmp(dword_ptr(rcx + rax), VMCS12_REVISION as i32)?;
        a.jne(invalid)?;
        a.mov(vc(v::N_VMXON_PTR), rax)?;
        a.mov(qword_ptr(L::VCPU + v::N_VMXON), 1)?;
        a.jmp(succeed)
    })?;

    b.func("handle_vmoff", |b| {
        let check = b.label("nested_vmx_check_permission");
        let release = b.label("nested_release_vmcs12");
        let succeed = b.label("nested_vmx_succeed");
        let a = &mut b.asm;
        permission_check(a, check)?;
        a.call(release)?;
        a.mov(qword_ptr(L::VCPU + v::N_VMXON), 0)?;
        a.jmp(succeed)
    })?;

    // nested_release_vmcs12: the current vmcs12 stops being current (shadow synced back,
    // shadowing turned off in vmcs01).
    b.func("nested_release_vmcs12", |b| {
        let from_shadow = b.label("copy_shadow_to_vmcs12");
        let a = &mut b.asm;
        let mut out = a.create_label();
        a.cmp(qword_ptr(L::VCPU + v::N_CURRENT_PTR), -1)?;
        a.je(out)?;
        let mut no_shadow = a.create_label();
        a.test(qword_ptr(L::VCPU + v::FEAT), feat::SHADOW as i32)?;
        a.jz(no_shadow)?;
        a.call(from_shadow)?;
        vmread(a, rax, f::SECONDARY_VM_EXEC_CONTROL)?;
        a.and(eax, !(p2::SECONDARY_EXEC_SHADOW_VMCS as i32))?;
        vmwrite(a, f::SECONDARY_VM_EXEC_CONTROL, rax)?;
        vmwrite_imm(a, f::VMCS_LINK_POINTER, u64::MAX)?;
        a.set_label(&mut no_shadow)?;
        a.mov(qword_ptr(L::VCPU + v::N_CURRENT_PTR), -1)?;
        a.set_label(&mut out)?;
        a.ret()
    })?;

    b.func("handle_vmclear", |b| {
        let check = b.label("nested_vmx_check_permission");
        let getptr = b.label("nested_vmx_get_vmptr");
        let release = b.label("nested_release_vmcs12");
        let succeed = b.label("nested_vmx_succeed");
        let fail = b.label("nested_vmx_failValid");
        let a = &mut b.asm;
        permission_check(a, check)?;
        a.call(getptr)?;
        a.mov(edi, 2u32)?; // VMCLEAR with invalid physical address
        a.test(eax, 0xFFF)?;
        a.jnz(fail)?;
        a.mov(edi, 3u32)?; // VMCLEAR with VMXON pointer
        a.cmp(rax, vc(v::N_VMXON_PTR))?;
        a.je(fail)?;
        let mut not_current = a.create_label();
        a.cmp(rax, vc(v::N_CURRENT_PTR))?;
        a.jne(not_current)?;
        a.push(rax)?;
        a.call(release)?;
        a.pop(rax)?;
        a.set_label(&mut not_current)?;
        // launch_state = clear, in the region in guest memory.
        a.mov(rcx, GUEST_BASE)?;
        a.mov(qword_ptr(rcx + rax + 8), 0)?;
        a.jmp(succeed)
    })?;

    b.func("handle_vmptrld", |b| {
        let check = b.label("nested_vmx_check_permission");
        let getptr = b.label("nested_vmx_get_vmptr");
        let release = b.label("nested_release_vmcs12");
        let succeed = b.label("nested_vmx_succeed");
        let fail = b.label("nested_vmx_failValid");
        let a = &mut b.asm;
        permission_check(a, check)?;
        a.call(getptr)?;
        a.mov(edi, 9u32)?;
        a.test(eax, 0xFFF)?;
        a.jnz(fail)?;
        a.mov(edi, 10u32)?;
        a.cmp(rax, vc(v::N_VMXON_PTR))?;
        a.je(fail)?;
        let mut same = a.create_label();
        a.cmp(rax, vc(v::N_CURRENT_PTR))?;
        a.je(same)?;
        a.mov(rcx, GUEST_BASE)?;
        a.mov(edi, 11u32)?;
        a.cmp(dword_ptr(rcx + rax), VMCS12_REVISION as i32)?;
        a.jne(fail)?;
        a.push(rax)?;
        a.call(release)?;
        a.pop(rax)?;
        a.mov(vc(v::N_CURRENT_PTR), rax)?;
        a.mov(rcx, GUEST_BASE)?;
        a.add(rax, rcx)?;
        a.mov(vc(v::N_VMCS12), rax)?;
        // With VMCS shadowing: vmcs01 points at the shadow VMCS, synced on the next entry.
        let mut no_shadow = a.create_label();
        a.test(qword_ptr(L::VCPU + v::FEAT), feat::SHADOW as i32)?;
        a.jz(no_shadow)?;
        vmread(a, rax, f::SECONDARY_VM_EXEC_CONTROL)?;
        a.or(eax, p2::SECONDARY_EXEC_SHADOW_VMCS as i32)?;
        vmwrite(a, f::SECONDARY_VM_EXEC_CONTROL, rax)?;
        vmwrite_imm(a, f::VMCS_LINK_POINTER, L::SHADOW_VMCS)?;
        vmwrite_imm(a, f::VMREAD_BITMAP, L::VMREAD_BITMAP)?;
        vmwrite_imm(a, f::VMWRITE_BITMAP, L::VMWRITE_BITMAP)?;
        a.mov(qword_ptr(L::VCPU + v::N_SYNC_SHADOW), 1)?;
        a.set_label(&mut no_shadow)?;
        a.zero_bytes()?;
        a.set_label(&mut same)?;
        a.jmp(succeed)
    })?;

    b.func("handle_vmptrst", |b| {
        let check = b.label("nested_vmx_check_permission");
        let addr = b.label("get_vmx_mem_address");
        let walk = b.label("kvm_mmu_gva_to_gpa");
        let succeed = b.label("nested_vmx_succeed");
        let a = &mut b.asm;
        permission_check(a, check)?;
        operand_in_guest_memory(a, addr, walk)?;
        a.mov(rdx, vc(v::N_CURRENT_PTR))?;
        a.mov(qword_ptr(rcx + rax), rdx)?;
        a.jmp(succeed)
    })?;

    // handle_vmread: the field from vmcs12 into a register or memory.
    b.func("handle_vmread", |b| {
        let check = b.label("nested_vmx_check_permission");
        let getreg = b.label("kvm_register_read");
        let setreg = b.label("kvm_register_write");
        let read = b.label("vmcs12_read_any");
        let addr = b.label("get_vmx_mem_address");
        let walk = b.label("kvm_mmu_gva_to_gpa");
        let succeed = b.label("nested_vmx_succeed");
        let fail = b.label("nested_vmx_failValid");
        let invalid = b.label("nested_vmx_failInvalid");
        let a = &mut b.asm;
        permission_check(a, check)?;
        vmread(a, r12, f::EXIT_QUALIFICATION)?;
        vmread(a, r13, f::VMX_INSTRUCTION_INFO)?;
        a.cmp(qword_ptr(L::VCPU + v::N_CURRENT_PTR), -1)?;
        a.je(invalid)?;
        a.mov(ecx, r13d)?;
        a.shr(ecx, 28)?;
        a.call(getreg)?;
        a.mov(esi, eax)?;
        a.call(read)?;
        a.mov(edi, 12u32)?;
        a.jc(fail)?;
        let mut mem = a.create_label();
        a.bt(r13d, 10)?;
        a.jnc(mem)?;
        a.mov(ecx, r13d)?;
        a.shr(ecx, 3)?;
        a.and(ecx, 15)?;
        a.call(setreg)?;
        a.jmp(succeed)?;
        a.set_label(&mut mem)?;
        a.mov(r12, rax)?;
        operand_in_guest_memory(a, addr, walk)?;
        a.mov(qword_ptr(rcx + rax), r12)?;
        a.jmp(succeed)
    })?;

    // handle_vmwrite: a register or memory value into the vmcs12 field (error 13 for
    // read-only fields: this hypervisor does not offer VMWRITE to exit-information fields).
    b.func("handle_vmwrite", |b| {
        let check = b.label("nested_vmx_check_permission");
        let getreg = b.label("kvm_register_read");
        let write = b.label("vmcs12_write_any");
        let addr = b.label("get_vmx_mem_address");
        let walk = b.label("kvm_mmu_gva_to_gpa");
        let succeed = b.label("nested_vmx_succeed");
        let fail = b.label("nested_vmx_failValid");
        let invalid = b.label("nested_vmx_failInvalid");
        let a = &mut b.asm;
        permission_check(a, check)?;
        vmread(a, r12, f::EXIT_QUALIFICATION)?;
        vmread(a, r13, f::VMX_INSTRUCTION_INFO)?;
        a.cmp(qword_ptr(L::VCPU + v::N_CURRENT_PTR), -1)?;
        a.je(invalid)?;
        let mut mem = a.create_label();
        let mut have = a.create_label();
        a.bt(r13d, 10)?;
        a.jnc(mem)?;
        a.mov(ecx, r13d)?;
        a.shr(ecx, 3)?;
        a.and(ecx, 15)?;
        a.call(getreg)?;
        a.mov(r12, rax)?;
        a.jmp(have)?;
        a.set_label(&mut mem)?;
        operand_in_guest_memory(a, addr, walk)?;
        a.mov(r12, qword_ptr(rcx + rax))?;
        a.set_label(&mut have)?;
        a.mov(ecx, r13d)?;
        a.shr(ecx, 28)?;
        a.call(getreg)?;
        a.mov(esi, eax)?;
        // Read-only (VM-exit information) fields: type bits 11:10 = 1.
        a.mov(eax, esi)?;
        a.shr(eax, 10)?;
        a.and(eax, 3)?;
        a.mov(edi, 13u32)?;
        a.cmp(eax, 1)?;
        a.je(fail)?;
        a.mov(rdx, r12)?;
        a.call(write)?;
        a.mov(edi, 12u32)?;
        a.jc(fail)?;
        a.mov(qword_ptr(L::VCPU + v::N_DIRTY_VMCS12), 1)?;
        a.jmp(succeed)
    })?;

    for (name, launch) in [("handle_vmlaunch", 1u32), ("handle_vmresume", 0)] {
        b.func(name, |b| {
            let run = b.label("nested_vmx_run");
            let a = &mut b.asm;
            a.mov(edi, launch)?;
            a.jmp(run)
        })?;
    }

    b.func("handle_invept", |b| {
        let check = b.label("nested_vmx_check_permission");
        let succeed = b.label("nested_vmx_succeed");
        let a = &mut b.asm;
        permission_check(a, check)?;
        // Every shadow EPT is rebuilt from scratch on its next use.
        for i in 0..EPT02_ROOTS {
            a.mov(qword_ptr(L::VCPU + N_EPT02_TAGS + 8 * i), -1)?;
        }
        a.jmp(succeed)
    })?;
    b.func("handle_invvpid", |b| {
        let check = b.label("nested_vmx_check_permission");
        let succeed = b.label("nested_vmx_succeed");
        let a = &mut b.asm;
        permission_check(a, check)?;
        a.jmp(succeed)
    })?;

    // copy_shadow_to_vmcs12: the guest's writes to shadowed fields, back into vmcs12.
    b.func("copy_shadow_to_vmcs12", |b| {
        let write = b.label("vmcs12_write_any");
        let fields = b.label("shadow_read_write_fields");
        let a = &mut b.asm;
        a.push(rbx)?;
        a.push(r12)?;
        a.mov(rax, L::SHADOW_VMCS)?;
        a.mov(qword_ptr(L::VCPU + 0x1F0), rax)?;
        a.vmptrld(qword_ptr(L::VCPU + 0x1F0))?;
        a.lea(rbx, ptr(fields))?;
        a.mov(r12d, p.shadow_read_write.len() as u32)?;
        let mut top = a.create_label();
        let mut done = a.create_label();
        a.set_label(&mut top)?;
        a.test(r12d, r12d)?;
        a.jz(done)?;
        a.mov(esi, dword_ptr(rbx))?;
        a.vmread(rdx, rsi)?;
        a.call(write)?;
        a.add(rbx, 4)?;
        a.dec(r12d)?;
        a.jmp(top)?;
        a.set_label(&mut done)?;
        a.vmclear(qword_ptr(L::VCPU + 0x1F0))?;
        a.mov(rax, vc(v::LAUNCHED_PTR))?;
        a.mov(rax, L::VMCS01)?;
        a.mov(qword_ptr(L::VCPU + 0x1F0), rax)?;
        a.vmptrld(qword_ptr(L::VCPU + 0x1F0))?;
        a.pop(r12)?;
        a.pop(rbx)?;
        a.ret()
    })?;

    // copy_vmcs12_to_shadow: vmcs12 into the shadow VMCS (read-write and read-only fields).
    b.func("copy_vmcs12_to_shadow", |b| {
        let read = b.label("vmcs12_read_any");
        let rw = b.label("shadow_read_write_fields");
        let ro = b.label("shadow_read_only_fields");
        let a = &mut b.asm;
        a.push(rbx)?;
        a.push(r12)?;
        a.mov(rax, L::SHADOW_VMCS)?;
        a.mov(qword_ptr(L::VCPU + 0x1F0), rax)?;
        a.vmptrld(qword_ptr(L::VCPU + 0x1F0))?;
        for (list, n) in [(rw, p.shadow_read_write.len()), (ro, p.shadow_read_only.len())] {
            a.lea(rbx, ptr(list))?;
            a.mov(r12d, n as u32)?;
            let mut top = a.create_label();
            let mut done = a.create_label();
            a.set_label(&mut top)?;
            a.test(r12d, r12d)?;
            a.jz(done)?;
            a.mov(esi, dword_ptr(rbx))?;
            a.call(read)?;
            a.mov(esi, dword_ptr(rbx))?;
            a.vmwrite(rsi, rax)?;
            a.add(rbx, 4)?;
            a.dec(r12d)?;
            a.jmp(top)?;
            a.set_label(&mut done)?;
        }
        a.vmclear(qword_ptr(L::VCPU + 0x1F0))?;
        a.mov(rax, L::VMCS01)?;
        a.mov(qword_ptr(L::VCPU + 0x1F0), rax)?;
        a.vmptrld(qword_ptr(L::VCPU + 0x1F0))?;
        a.pop(r12)?;
        a.pop(rbx)?;
        a.ret()
    })?;

    // vmx_switch_vmcs(rdi = VMCS): vcpu_put + vcpu_load of the other VMCS.
    b.func("vmx_switch_vmcs", |b| {
        let a = &mut b.asm;
        a.mov(qword_ptr(L::VCPU + 0x1E8), rdi)?;
        a.vmptrld(qword_ptr(L::VCPU + 0x1E8))?;
        a.mov(rax, L::VCPU + v::LAUNCHED01)?;
        a.mov(rcx, L::VCPU + v::LAUNCHED02)?;
        a.mov(rdx, L::VMCS02)?;
        a.cmp(rdi, rdx)?;
        a.cmove(rax, rcx)?;
        a.mov(vc(v::LAUNCHED_PTR), rax)?;
        a.mov(qword_ptr(L::VCPU + v::HOST_RSP_VMCS), 0)?;
        // vmx_vcpu_load's per-CPU bookkeeping; the register cache refers to the new VMCS.
        a.mov(qword_ptr(L::VCPU + v::REGS_STATE), 0)?;
        a.ret()
    })?;

    // nested_vmx_run(edi = launch): the guest's VMLAUNCH/VMRESUME.
    b.func("nested_vmx_run", |b| {
        let check = b.label("nested_vmx_check_permission");
        let from_shadow = b.label("copy_shadow_to_vmcs12");
        let fail = b.label("nested_vmx_failValid");
        let invalid = b.label("nested_vmx_failInvalid");
        let skip = b.label("kvm_skip_emulated_instruction");
        let checks = b.label("check_vmentry_prereqs");
        let enter = b.label("enter_vmx_non_root_mode");
        let a = &mut b.asm;
        a.push(rbx)?;
        a.mov(r14d, edi)?;
        let mut ok = a.create_label();
        let mut out = a.create_label();
        a.call(check)?;
        a.jnz(ok)?;
        a.pop(rbx)?;
        a.ret()?;
        a.set_label(&mut ok)?;
        vmread(a, rax, f::GUEST_INTERRUPTIBILITY_INFO)?;
        a.cmp(qword_ptr(L::VCPU + v::N_CURRENT_PTR), -1)?;
        let mut cur = a.create_label();
        a.jne(cur)?;
        a.pop(rbx)?;
        a.jmp(invalid)?;
        a.set_label(&mut cur)?;
        let mut no_shadow = a.create_label();
        a.test(qword_ptr(L::VCPU + v::FEAT), feat::SHADOW as i32)?;
        a.jz(no_shadow)?;
        a.call(from_shadow)?;
        a.set_label(&mut no_shadow)?;
        a.mov(rbx, vc(v::N_VMCS12))?;
        // Launch state: VMLAUNCH needs clear (error 4), VMRESUME launched (error 5).
        let mut state_ok = a.create_label();
        a.mov(rax, qword_ptr(rbx + 8))?;
        a.mov(edi, 5u32)?;
        a.sub(edi, r14d)?;
        a.cmp(eax, r14d)?;
        a.jne(state_ok)?;
        a.pop(rbx)?;
        a.jmp(fail)?;
        a.set_label(&mut state_ok)?;
        a.call(checks)?;
        a.test(edi, edi)?;
        let mut checked = a.create_label();
        a.jz(checked)?;
        a.pop(rbx)?;
        a.jmp(fail)?;
        a.set_label(&mut checked)?;
        a.call(skip)?;
        a.call(enter)?;
        a.mov(qword_ptr(rbx + 8), 1)?; // launched
        a.set_label(&mut out)?;
        a.pop(rbx)?;
        a.mov(eax, 1u32)?;
        a.ret()
    })?;

    // check_vmentry_prereqs (rbx = vmcs12) -> edi = 0 or the VM-instruction error: the
    // controls against the capabilities reported to the guest, the link pointer.
    b.inline_func("check_vmentry_prereqs", |b| {
        let a = &mut b.asm;
        let caps = L::VCPU + v::NESTED_CAPS;
        let mut bad = a.create_label();
        for (enc, msr) in [
            (f::PIN_BASED_VM_EXEC_CONTROL, vm::IA32_VMX_TRUE_PINBASED_CTLS),
            (f::CPU_BASED_VM_EXEC_CONTROL, vm::IA32_VMX_TRUE_PROCBASED_CTLS),
            (f::VM_EXIT_CONTROLS, vm::IA32_VMX_TRUE_EXIT_CTLS),
            (f::VM_ENTRY_CONTROLS, vm::IA32_VMX_TRUE_ENTRY_CTLS),
        ] {
            let m = caps + 8 * u64::from(msr - vm::IA32_VMX_BASIC);
            // vmx_control_verify: must-be-1 bits set, may-be-1 bits only.
            a.mov(eax, dword_ptr(rbx + off12(enc)))?;
            a.mov(ecx, dword_ptr(m))?;
            a.and(ecx, eax)?;
            a.cmp(ecx, dword_ptr(m))?;
            a.jne(bad)?;
            a.mov(ecx, dword_ptr(m + 4))?;
            a.not(ecx)?;
            a.test(eax, ecx)?;
            a.jnz(bad)?;
        }
        let m2 = caps + 8 * u64::from(vm::IA32_VMX_PROCBASED_CTLS2 - vm::IA32_VMX_BASIC);
        let mut no2 = a.create_label();
        a.test(dword_ptr(rbx + off12(f::CPU_BASED_VM_EXEC_CONTROL)), p1::CPU_BASED_ACTIVATE_SECONDARY_CONTROLS as i32)?;
        a.jz(no2)?;
        a.mov(eax, dword_ptr(rbx + off12(f::SECONDARY_VM_EXEC_CONTROL)))?;
        a.mov(ecx, dword_ptr(m2 + 4))?;
        a.not(ecx)?;
        a.test(eax, ecx)?;
        a.jnz(bad)?;
        a.set_label(&mut no2)?;
        a.cmp(qword_ptr(rbx + off12(f::VMCS_LINK_POINTER)), -1)?;
        a.jne(bad)?;
        a.xor(edi, edi)?;
        a.ret()?;
        a.set_label(&mut bad)?;
        a.mov(edi, 7u32)?;
        a.ret()
    })?;

    // enter_vmx_non_root_mode: vmcs02 for this vmcs12, prepare_vmcs02, the MSR bitmap.
    b.inline_func("enter_vmx_non_root_mode", |b| {
        let switch = b.label("vmx_switch_vmcs");
        let prepare = b.label("prepare_vmcs02");
        let pages = b.label("nested_get_vmcs12_pages");
        let a = &mut b.asm;
        vmread(a, rax, f::GUEST_IA32_DEBUGCTL)?;
        a.mov(vc(v::DEBUGCTL), rax)?;
        // The vmcs02 pool holds one VMCS: another vmcs12 means a fresh vmcs02.
        let mut same = a.create_label();
        a.mov(rax, vc(v::N_CURRENT_PTR))?;
        a.cmp(rax, qword_ptr(L::VCPU + 0x1D8))?;
        a.je(same)?;
        a.mov(qword_ptr(L::VCPU + 0x1D8), rax)?;
        a.mov(rax, L::VMCS02)?;
        a.mov(qword_ptr(L::VCPU + 0x1E0), rax)?;
        a.vmclear(qword_ptr(L::VCPU + 0x1E0))?;
        a.mov(qword_ptr(L::VCPU + v::LAUNCHED02), 0)?;
        a.set_label(&mut same)?;
        a.mov(rdi, L::VMCS02)?;
        a.call(switch)?;
        a.call(prepare)?;
        a.call(pages)?;
        a.mov(qword_ptr(L::VCPU + v::N_GUEST_MODE), 1)?;
        a.mov(qword_ptr(L::VCPU + v::N_RUN_PENDING), 1)?;
        a.ret()
    })?;

    // prepare_vmcs02 (rbx = vmcs12): every field of vmcs02, on every nested entry (4.13).
    b.inline_func("prepare_vmcs02", |b| {
        let host = b.label("vmx_set_constant_host_state");
        let ept = b.label("nested_ept_init_mmu_context");
        let a = &mut b.asm;
        let dirty_only = p.vmcs02_rebuild == Vmcs02Rebuild::DirtyTracking;
        let mut full_done = a.create_label();
        if dirty_only {
            // prepare_vmcs02_full only after the guest wrote a non-shadowed field.
            a.cmp(qword_ptr(L::VCPU + v::N_DIRTY_VMCS12), 0)?;
            a.je(full_done)?;
        }
        for &enc in GUEST_SEGMENTS.iter() {
            if dirty_only && p.shadow_read_write.contains(&enc) {
                continue;
            }
            copy_to_vmcs(a, enc)?;
        }
        for &enc in GUEST_OTHER.iter().chain(CONTROL_COPIES.iter()) {
            if dirty_only && p.shadow_read_write.contains(&enc) {
                continue;
            }
            copy_to_vmcs(a, enc)?;
        }
        vmwrite_imm(a, f::VMCS_LINK_POINTER, u64::MAX)?;
        a.call(host)?;
        // MSR-load/store lists: none.
        for e in [f::VM_EXIT_MSR_STORE_COUNT, f::VM_EXIT_MSR_LOAD_COUNT, f::VM_ENTRY_MSR_LOAD_COUNT] {
            vmwrite_imm(a, e, 0)?;
        }
        vmwrite_imm(a, f::VM_EXIT_MSR_LOAD_ADDR, 0)?;
        vmwrite_imm(a, f::VM_ENTRY_MSR_LOAD_ADDR, 0)?;
        // VPID, PML.
        let mut no_vpid = a.create_label();
        a.test(qword_ptr(L::VCPU + v::FEAT), feat::VPID as i32)?;
        a.jz(no_vpid)?;
        vmwrite_imm(a, f::VIRTUAL_PROCESSOR_ID, 2)?;
        // vpid02 serves every nested guest: flush it when the guest's VPID changes.
        let mut same_vpid = a.create_label();
        a.movzx(eax, word_ptr(rbx + off12(f::VIRTUAL_PROCESSOR_ID)))?;
        a.cmp(rax, vc(N_LAST_VPID))?;
        a.je(same_vpid)?;
        a.mov(vc(N_LAST_VPID), rax)?;
        a.mov(qword_ptr(L::VCPU + N_DESC), 2)?;
        a.mov(qword_ptr(L::VCPU + N_DESC + 8), 0)?;
        a.mov(eax, 1u32)?;
        a.invvpid(rax, xmmword_ptr(L::VCPU + N_DESC))?;
        a.set_label(&mut same_vpid)?;
        a.zero_bytes()?;
        a.set_label(&mut no_vpid)?;
        let mut no_pml = a.create_label();
        a.test(qword_ptr(L::VCPU + v::FEAT), feat::PML as i32)?;
        a.jz(no_pml)?;
        vmwrite_imm(a, f::PML_ADDRESS, L::PML_BUFFER)?;
        vmwrite_imm(a, f::GUEST_PML_INDEX, PML_ENTITY_NUM - 1)?;
        a.set_label(&mut no_pml)?;
        a.mov(qword_ptr(L::VCPU + v::N_DIRTY_VMCS12), 0)?;
        a.set_label(&mut full_done)?;
        if dirty_only {
            // The shadowed guest fields, every time.
            for &enc in GUEST_SEGMENTS.iter().chain(GUEST_OTHER.iter()).chain(CONTROL_COPIES.iter()) {
                if p.shadow_read_write.contains(&enc) {
                    copy_to_vmcs(a, enc)?;
                }
            }
        }
        // Pin-based: the guest's, plus this level's exits; its preemption timer is emulated
        // with a host timer (4.13), so the hardware one is off.
        a.mov(eax, dword_ptr(rbx + off12(f::PIN_BASED_VM_EXEC_CONTROL)))?;
        a.or(eax, (pin::PIN_BASED_EXT_INTR_MASK | pin::PIN_BASED_NMI_EXITING) as i32)?;
        a.and(eax, !(pin::PIN_BASED_VMX_PREEMPTION_TIMER as i32))?;
        vmwrite(a, f::PIN_BASED_VM_EXEC_CONTROL, rax)?;
        // The guest's preemption timer: the deadline of the host timer that emulates it.
        let mut no_timer = a.create_label();
        a.test(dword_ptr(rbx + off12(f::PIN_BASED_VM_EXEC_CONTROL)), pin::PIN_BASED_VMX_PREEMPTION_TIMER as i32)?;
        a.jz(no_timer)?;
        a.rdtsc()?;
        a.shl(rdx, 32)?;
        a.or(rax, rdx)?;
        a.mov(ecx, dword_ptr(rbx + off12(f::VMX_PREEMPTION_TIMER_VALUE)))?;
        a.shl(rcx, 5)?;
        a.add(rax, rcx)?;
        a.mov(vc(v::N_L2_TIMER_DEADLINE), rax)?;
        a.set_label(&mut no_timer)?;
        // Primary: this level's controls with the guest's; I/O always exits here and is
        // checked against the guest's bitmaps.
        a.mov(eax, dword_ptr(rbx + off12(f::CPU_BASED_VM_EXEC_CONTROL)))?;
        a.or(
            eax,
            (p1::CPU_BASED_HLT_EXITING
                | p1::CPU_BASED_UNCOND_IO_EXITING
                | p1::CPU_BASED_MWAIT_EXITING
                | p1::CPU_BASED_MONITOR_EXITING
                | p1::CPU_BASED_USE_TSC_OFFSETTING
                | p1::CPU_BASED_USE_MSR_BITMAPS
                | p1::CPU_BASED_ACTIVATE_SECONDARY_CONTROLS) as i32,
        )?;
        a.and(eax, !(p1::CPU_BASED_USE_IO_BITMAPS as i32))?;
        a.mov(vc(0x1D0), rax)?; // the merge may clear USE_MSR_BITMAPS
        vmwrite(a, f::CPU_BASED_VM_EXEC_CONTROL, rax)?;
        let mut no_tpr = a.create_label();
        a.test(eax, p1::CPU_BASED_TPR_SHADOW as i32)?;
        a.jz(no_tpr)?;
        a.mov(rax, qword_ptr(rbx + off12(f::VIRTUAL_APIC_PAGE_ADDR)))?;
        a.mov(rcx, GUEST_BASE)?;
        a.add(rax, rcx)?;
        vmwrite(a, f::VIRTUAL_APIC_PAGE_ADDR, rax)?;
        a.set_label(&mut no_tpr)?;
        // Secondary: EPT (this level's shadow EPT02), VPID and PML its own, the guest's APIC
        // virtualization and descriptor/WBINVD exiting.
        a.xor(eax, eax)?;
        let mut no2 = a.create_label();
        a.test(dword_ptr(rbx + off12(f::CPU_BASED_VM_EXEC_CONTROL)), p1::CPU_BASED_ACTIVATE_SECONDARY_CONTROLS as i32)?;
        a.jz(no2)?;
        a.mov(eax, dword_ptr(rbx + off12(f::SECONDARY_VM_EXEC_CONTROL)))?;
        a.set_label(&mut no2)?;
        a.or(eax, (p2::SECONDARY_EXEC_ENABLE_EPT | p2::SECONDARY_EXEC_ENABLE_RDTSCP) as i32)?;
        a.and(eax, !((p2::SECONDARY_EXEC_ENABLE_VPID | p2::SECONDARY_EXEC_ENABLE_PML) as i32))?;
        a.mov(rcx, vc(v::FEAT))?;
        let mut nv = a.create_label();
        a.test(ecx, feat::VPID as i32)?;
        a.jz(nv)?;
        a.or(eax, p2::SECONDARY_EXEC_ENABLE_VPID as i32)?;
        a.set_label(&mut nv)?;
        let mut np = a.create_label();
        a.test(ecx, feat::PML as i32)?;
        a.jz(np)?;
        a.or(eax, p2::SECONDARY_EXEC_ENABLE_PML as i32)?;
        a.set_label(&mut np)?;
        vmwrite(a, f::SECONDARY_VM_EXEC_CONTROL, rax)?;
        let mut no_vid = a.create_label();
        a.test(eax, p2::SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY as i32)?;
        a.jz(no_vid)?;
        for e in
            [f::EOI_EXIT_BITMAP0, f::EOI_EXIT_BITMAP1, f::EOI_EXIT_BITMAP2, f::EOI_EXIT_BITMAP3, f::GUEST_INTR_STATUS]
        {
            copy_to_vmcs(a, e)?;
        }
        a.set_label(&mut no_vid)?;
        // Exception bitmap: this level's and the guest's.
        a.mov(eax, dword_ptr(rbx + off12(f::EXCEPTION_BITMAP)))?;
        a.or(eax, (1 << 6) | (1 << 18) | (1 << 8))?;
        vmwrite(a, f::EXCEPTION_BITMAP, rax)?;
        // Exit controls: this level's; entry controls: the guest's (EFER always loaded).
        a.mov(
            edi,
            ex::VM_EXIT_HOST_ADDR_SPACE_SIZE
                | ex::VM_EXIT_ACK_INTR_ON_EXIT
                | ex::VM_EXIT_SAVE_IA32_EFER
                | ex::VM_EXIT_LOAD_IA32_EFER
                | ex::VM_EXIT_SAVE_IA32_PAT
                | ex::VM_EXIT_LOAD_IA32_PAT
                | ex::DEFAULT1,
        )?;
        a.mov(rax, rdi)?;
        vmwrite(a, f::VM_EXIT_CONTROLS, rax)?;
        a.mov(eax, dword_ptr(rbx + off12(f::VM_ENTRY_CONTROLS)))?;
        a.or(eax, en::VM_ENTRY_LOAD_IA32_EFER as i32)?;
        vmwrite(a, f::VM_ENTRY_CONTROLS, rax)?;
        // TSC offset: this level's plus the guest's.
        a.mov(rax, vc(v::TSC_OFFSET))?;
        a.add(rax, qword_ptr(rbx + off12(f::TSC_OFFSET)))?;
        vmwrite(a, f::TSC_OFFSET, rax)?;
        // CR0/CR4: masks of both levels, the guest's read shadows; CR3.
        a.mov(rax, qword_ptr(rbx + off12(f::CR0_GUEST_HOST_MASK)))?;
        a.or(rax, -9)?;
        vmwrite(a, f::CR0_GUEST_HOST_MASK, rax)?;
        a.mov(rax, qword_ptr(rbx + off12(f::CR4_GUEST_HOST_MASK)))?;
        a.or(rax, !0x7A2i32)?;
        vmwrite(a, f::CR4_GUEST_HOST_MASK, rax)?;
        a.mov(rax, qword_ptr(rbx + off12(f::GUEST_CR0)))?;
        a.or(eax, 0x20)?;
        vmwrite(a, f::GUEST_CR0, rax)?;
        copy_to_vmcs(a, f::CR0_READ_SHADOW)?;
        a.mov(rax, qword_ptr(rbx + off12(f::GUEST_CR4)))?;
        a.mov(vc(v::CR4), rax)?;
        a.or(eax, crate::arch::x86::cr4::VMXE as i32)?;
        vmwrite(a, f::GUEST_CR4, rax)?;
        copy_to_vmcs(a, f::CR4_READ_SHADOW)?;
        a.mov(rax, qword_ptr(rbx + off12(f::GUEST_RFLAGS)))?;
        vmwrite(a, f::GUEST_RFLAGS, rax)?;
        // RSP/RIP through the register cache (written by vmx_vcpu_run).
        a.mov(rax, qword_ptr(rbx + off12(f::GUEST_RSP)))?;
        a.mov(vc(v::RSP), rax)?;
        a.mov(rax, qword_ptr(rbx + off12(f::GUEST_RIP)))?;
        a.mov(vc(v::RIP), rax)?;
        a.mov(qword_ptr(L::VCPU + v::REGS_STATE), 0xF)?;
        a.call(ept)?;
        a.ret()
    })?;

    // nested_ept_init_mmu_context: vmcs02's EPTP is this level's shadow of the guest's EPT.
    // Shadow EPT roots are kept per guest EPTP (KVM finds its shadow pages again by role),
    // EPT02_ROOTS of them, the oldest recycled (emptied, and INVEPT for its EPTP).
    b.inline_func("nested_ept_init_mmu_context", |b| {
        let a = &mut b.asm;
        let mut found = a.create_label();
        a.mov(rax, qword_ptr(rbx + off12(f::EPT_POINTER)))?;
        for i in 0..EPT02_ROOTS {
            let mut next = a.create_label();
            a.cmp(rax, qword_ptr(L::VCPU + N_EPT02_TAGS + 8 * i))?;
            a.jne(next)?;
            a.mov(edx, i as u32)?;
            a.jmp(found)?;
            a.set_label(&mut next)?;
        }
        // kvm_mmu_reset_context with a new root: an empty EPT02.
        a.mov(rdx, vc(N_EPT02_VICTIM))?;
        a.lea(ecx, dword_ptr(rdx + 1))?;
        a.and(ecx, (EPT02_ROOTS - 1) as i32)?;
        a.mov(vc(N_EPT02_VICTIM), rcx)?;
        a.mov(qword_ptr(rdx * 8 + (L::VCPU + N_EPT02_TAGS)), rax)?;
        a.imul_3(rdi, rdx, EPT02_SLICE as i32)?;
        a.mov(rax, L::EPT02_POOL)?;
        a.add(rdi, rax)?;
        a.lea(rax, qword_ptr(rdi + 0x1000))?;
        a.mov(qword_ptr(rdx * 8 + (L::VCPU + N_EPT02_NEXTS)), rax)?;
        a.push(rdx)?;
        a.push(rdi)?;
        a.mov(ecx, 512u32)?;
        a.xor(eax, eax)?;
        a.rep().stosq()?;
        a.pop(rax)?;
        a.or(rax, (3 << 3) | 6)?;
        a.mov(vc(N_DESC), rax)?;
        a.mov(qword_ptr(L::VCPU + N_DESC + 8), 0)?;
        a.mov(eax, 1u32)?;
        a.invept(rax, xmmword_ptr(L::VCPU + N_DESC))?;
        a.pop(rdx)?;
        a.set_label(&mut found)?;
        a.mov(vc(N_EPT02_CUR), rdx)?;
        a.imul_3(rax, rdx, EPT02_SLICE as i32)?;
        a.mov(rcx, L::EPT02_POOL)?;
        a.add(rax, rcx)?;
        a.mov(vc(v::N_EPT02_FOR), rax)?;
        a.lea(rcx, qword_ptr(rax + EPT02_SLICE))?;
        a.mov(vc(N_EPT02_END), rcx)?;
        a.or(rax, (3 << 3) | 6)?;
        vmwrite(a, f::EPT_POINTER, rax)?;
        a.ret()
    })?;

    // nested_get_vmcs12_pages → nested_vmx_merge_msr_bitmap (only with virtualize x2APIC
    // mode and MSR bitmaps in vmcs12; otherwise vmcs02 runs without MSR bitmaps).
    b.inline_func("nested_get_vmcs12_pages", |b| {
        let merge = b.label("nested_vmx_merge_msr_bitmap");
        let a = &mut b.asm;
        let mut no = a.create_label();
        a.mov(rax, vc(0x1D0))?;
        a.test(dword_ptr(rbx + off12(f::CPU_BASED_VM_EXEC_CONTROL)), p1::CPU_BASED_USE_MSR_BITMAPS as i32)?;
        a.jz(no)?;
        a.test(dword_ptr(rbx + off12(f::CPU_BASED_VM_EXEC_CONTROL)), p1::CPU_BASED_ACTIVATE_SECONDARY_CONTROLS as i32)?;
        a.jz(no)?;
        a.test(dword_ptr(rbx + off12(f::SECONDARY_VM_EXEC_CONTROL)), p2::SECONDARY_EXEC_VIRTUALIZE_X2APIC_MODE as i32)?;
        a.jz(no)?;
        a.call(merge)?;
        vmwrite_imm(a, f::MSR_BITMAP, L::MSR_BITMAP_NESTED)?;
        a.ret()?;
        a.set_label(&mut no)?;
        a.mov(rax, vc(0x1D0))?;
        a.and(eax, !(p1::CPU_BASED_USE_MSR_BITMAPS as i32))?;
        vmwrite(a, f::CPU_BASED_VM_EXEC_CONTROL, rax)?;
        a.ret()
    })?;

    b.inline_func("nested_vmx_merge_msr_bitmap", |b| {
        let one = b.label("nested_vmx_disable_intercept_for_msr");
        let a = &mut b.asm;
        a.push(r12)?;
        a.push(r13)?;
        a.mov(r13, qword_ptr(rbx + off12(f::MSR_BITMAP)))?;
        a.mov(rax, GUEST_BASE)?;
        a.add(r13, rax)?;
        match p.msr_bitmap_merge {
            MsrBitmapMerge::PerMsr => {
                a.mov(rdi, L::MSR_BITMAP_NESTED)?;
                a.mov(ecx, 512u32)?;
                a.mov(rax, -1i64)?;
                a.rep().stosq()?;
                let mut no_regvirt = a.create_label();
                a.test(
                    dword_ptr(rbx + off12(f::SECONDARY_VM_EXEC_CONTROL)),
                    p2::SECONDARY_EXEC_APIC_REGISTER_VIRT as i32,
                )?;
                a.jz(no_regvirt)?;
                a.mov(r12d, 0x800u32)?;
                let mut top = a.create_label();
                a.set_label(&mut top)?;
                a.mov(rdi, r13)?;
                a.mov(esi, r12d)?;
                a.mov(edx, 1u32)?;
                a.call(one)?;
                a.inc(r12d)?;
                a.cmp(r12d, 0x8FF)?;
                a.jbe(top)?;
                a.set_label(&mut no_regvirt)?;
            }
            MsrBitmapMerge::WordCopy => {
                // 4.16: the merged bitmap was initialised to all-intercept once (below, on
                // first use); copy L1's x2APIC read permissions, 64 MSRs at a time.
                let mut inited = a.create_label();
                a.cmp(qword_ptr(L::VCPU + 0x1C8), 0)?;
                a.jne(inited)?;
                a.mov(rdi, L::MSR_BITMAP_NESTED)?;
                a.mov(ecx, 512u32)?;
                a.mov(rax, -1i64)?;
                a.rep().stosq()?;
                a.mov(qword_ptr(L::VCPU + 0x1C8), 1)?;
                a.set_label(&mut inited)?;
                let mut no_regvirt = a.create_label();
                a.test(
                    dword_ptr(rbx + off12(f::SECONDARY_VM_EXEC_CONTROL)),
                    p2::SECONDARY_EXEC_APIC_REGISTER_VIRT as i32,
                )?;
                a.jz(no_regvirt)?;
                for w in 0..4u64 {
                    a.mov(rax, qword_ptr(r13 + (0x800 / 8 + w * 8)))?;
                    a.mov(qword_ptr(L::MSR_BITMAP_NESTED + 0x800 / 8 + w * 8), rax)?;
                }
                a.set_label(&mut no_regvirt)?;
            }
        }
        // TPR read/write; EOI and SELF_IPI writes with virtual-interrupt delivery.
        for (msr, ty) in [(0x808u32, 3u32), (0x80B, 2), (0x83F, 2)] {
            a.mov(rdi, r13)?;
            a.mov(esi, msr)?;
            a.mov(edx, ty)?;
            a.call(one)?;
        }
        a.pop(r13)?;
        a.pop(r12)?;
        a.ret()
    })?;

    // nested_ept_fault: an EPT violation of the nested guest. Walk the guest's EPT12; if it
    // maps the address, install guest-physical(L2) -> this level's physical in EPT02 (4 KiB);
    // otherwise reflect the violation to the guest.
    b.func("nested_ept_fault", |b| {
        let vmexit = b.label("nested_vmx_vmexit");
        let fatal = b.label("kvm_fatal");
        let a = &mut b.asm;
        a.push(rbx)?;
        vmread(a, rdi, f::GUEST_PHYSICAL_ADDRESS)?;
        a.mov(rbx, vc(v::N_VMCS12))?;
        a.mov(rax, qword_ptr(rbx + off12(f::EPT_POINTER)))?;
        let mask = 0x000F_FFFF_FFFF_F000u64;
        a.mov(r8, mask)?;
        a.and(rax, r8)?;
        let mut reflect = a.create_label();
        let mut mapped = a.create_label();
        for (shift, large) in [(39u32, None), (30, Some(0x3FFF_FFFFu64)), (21, Some(0x1F_FFFF)), (12, None)] {
            a.mov(rdx, rdi)?;
            a.shr(rdx, shift)?;
            a.and(edx, 0x1FF)?;
            a.mov(rsi, GUEST_BASE)?;
            a.add(rsi, rax)?;
            a.mov(rax, qword_ptr(rsi + rdx * 8))?;
            a.test(eax, 7)?;
            a.jz(reflect)?;
            if let Some(m) = large {
                let mut small = a.create_label();
                a.bt(eax, 7)?;
                a.jnc(small)?;
                a.and(rax, r8)?;
                a.mov(rdx, !m)?;
                a.and(rax, rdx)?;
                a.mov(rdx, m)?;
                a.and(rdx, rdi)?;
                a.or(rax, rdx)?;
                a.jmp(mapped)?;
                a.set_label(&mut small)?;
            }
            a.and(rax, r8)?;
        }
        a.mov(edx, edi)?;
        a.and(edx, 0xFFF)?;
        a.or(rax, rdx)?;
        a.set_label(&mut mapped)?;
        // rax = guest-physical of this level's guest; its memory is at GUEST_BASE.
        a.mov(rsi, rax)?;
        a.mov(rcx, GUEST_BASE)?;
        a.add(rsi, rcx)?;
        a.and(rsi, r8)?;
        // Install in EPT02, allocating tables from the current root's slice of the pool.
        a.mov(rax, vc(v::N_EPT02_FOR))?;
        a.mov(r11, vc(N_EPT02_CUR))?;
        for shift in [39u32, 30, 21] {
            let mut present = a.create_label();
            a.mov(rdx, rdi)?;
            a.shr(rdx, shift)?;
            a.and(edx, 0x1FF)?;
            a.lea(r9, qword_ptr(rax + rdx * 8))?;
            a.mov(rax, qword_ptr(r9))?;
            a.test(eax, 7)?;
            a.jnz(present)?;
            a.mov(rax, qword_ptr(r11 * 8 + (L::VCPU + N_EPT02_NEXTS)))?;
            a.cmp(rax, vc(N_EPT02_END))?;
            let mut room = a.create_label();
            a.jb(room)?;
            a.mov(edi, 0xE9u32)?;
            a.jmp(fatal)?;
            a.set_label(&mut room)?;
            a.push(rdi)?;
            a.mov(rdi, rax)?;
            a.mov(r10, rax)?;
            a.mov(ecx, 512u32)?;
            a.xor(eax, eax)?;
            a.rep().stosq()?;
            a.pop(rdi)?;
            a.lea(rax, qword_ptr(r10 + 0x1000))?;
            a.mov(qword_ptr(r11 * 8 + (L::VCPU + N_EPT02_NEXTS)), rax)?;
            a.mov(rax, r10)?;
            a.or(rax, 7)?;
            a.mov(qword_ptr(r9), rax)?;
            a.set_label(&mut present)?;
            a.and(rax, r8)?;
        }
        a.mov(rdx, rdi)?;
        a.shr(rdx, 12)?;
        a.and(edx, 0x1FF)?;
        a.or(rsi, (6 << 3) | 7)?;
        a.mov(qword_ptr(rax + rdx * 8), rsi)?;
        a.pop(rbx)?;
        a.mov(eax, 1u32)?;
        a.ret()?;
        a.set_label(&mut reflect)?;
        a.pop(rbx)?;
        a.jmp(vmexit)
    })?;

    // nested_vmx_disable_intercept_for_msr(l1 bitmap = rdi, msr = esi, type = edx): clear
    // this level's (merged) bit only where the guest's bitmap does not intercept.
    b.func("nested_vmx_disable_intercept_for_msr", |b| {
        let a = &mut b.asm;
        let mut out = a.create_label();
        let mut low = a.create_label();
        a.mov(r8, L::MSR_BITMAP_NESTED)?;
        a.cmp(esi, 0x1FFF)?;
        a.jbe(low)?;
        a.sub(esi, 0xC000_0000u32 as i32)?;
        a.cmp(esi, 0x1FFF)?;
        a.ja(out)?;
        a.add(rdi, 0x400)?;
        a.add(r8, 0x400)?;
        a.set_label(&mut low)?;
        let mut no_r = a.create_label();
        a.test(edx, 1)?;
        a.jz(no_r)?;
        a.bt(qword_ptr(rdi), rsi)?;
        a.jc(no_r)?;
        a.btr(qword_ptr(r8), rsi)?;
        a.set_label(&mut no_r)?;
        a.test(edx, 2)?;
        a.jz(out)?;
        a.bt(qword_ptr(rdi + 0x800), rsi)?;
        a.jc(out)?;
        a.btr(qword_ptr(r8 + 0x800), rsi)?;
        a.set_label(&mut out)?;
        a.ret()
    })?;

    // nested_vmx_exit_reflected -> eax = 1 when the guest hypervisor handles this exit.
    b.func("nested_vmx_exit_reflected", |b| {
        let a = &mut b.asm;
        let mut yes = a.create_label();
        let mut no = a.create_label();
        a.push(rbx)?;
        a.mov(rbx, vc(v::N_VMCS12))?;
        a.mov(eax, vc32(v::EXIT_REASON))?;
        a.and(eax, 0xFFFF)?;
        // Always: triple fault, CPUID, INVD, VMCALL, the VMX instructions, XSETBV, GETSEC.
        for r in [2u32, 10, 11, 13, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 50, 53, 55] {
            a.cmp(eax, r as i32)?;
            a.je(yes)?;
        }
        // This level's own: interrupts, EPT, its preemption timer, PML.
        for r in [1u32, 48, 49, 52, 62] {
            a.cmp(eax, r as i32)?;
            a.je(no)?;
        }
        let ctl = |a: &mut CodeAssembler, reason: u32, bit: u32, yes: CodeLabel| -> R {
            let mut next = a.create_label();
            a.cmp(eax, reason as i32)?;
            a.jne(next)?;
            a.test(dword_ptr(rbx + off12(f::CPU_BASED_VM_EXEC_CONTROL)), bit as i32)?;
            a.jnz(yes)?;
            a.pop(rbx)?;
            a.xor(eax, eax)?;
            a.ret()?;
            a.set_label(&mut next)
        };
        ctl(a, 12, p1::CPU_BASED_HLT_EXITING, yes)?;
        ctl(a, 16, p1::CPU_BASED_RDTSC_EXITING, yes)?;
        ctl(a, 7, p1::CPU_BASED_INTR_WINDOW_EXITING, yes)?;
        ctl(a, 43, p1::CPU_BASED_TPR_SHADOW, yes)?;
        // Exceptions: the guest's exception bitmap.
        let mut not_exc = a.create_label();
        a.test(eax, eax)?;
        a.jnz(not_exc)?;
        vmread(a, rcx, f::VM_EXIT_INTR_INFO)?;
        a.and(ecx, 0xFF)?;
        a.mov(eax, dword_ptr(rbx + off12(f::EXCEPTION_BITMAP)))?;
        a.bt(eax, ecx)?;
        a.jc(yes)?;
        a.jmp(no)?;
        a.set_label(&mut not_exc)?;
        // MSR accesses: the guest's MSR bitmap, in its memory.
        let mut not_msr = a.create_label();
        a.cmp(eax, 31)?;
        a.jb(not_msr)?;
        a.cmp(eax, 32)?;
        a.ja(not_msr)?;
        a.test(dword_ptr(rbx + off12(f::CPU_BASED_VM_EXEC_CONTROL)), p1::CPU_BASED_USE_MSR_BITMAPS as i32)?;
        a.jz(yes)?;
        a.mov(rsi, qword_ptr(rbx + off12(f::MSR_BITMAP)))?;
        a.mov(rcx, GUEST_BASE)?;
        a.add(rsi, rcx)?;
        let mut read = a.create_label();
        a.cmp(eax, 31)?;
        a.je(read)?;
        a.add(rsi, 0x800)?;
        a.set_label(&mut read)?;
        a.mov(ecx, vc32(reg_slot(1)))?;
        let mut low = a.create_label();
        a.cmp(ecx, 0x1FFF)?;
        a.jbe(low)?;
        a.sub(ecx, 0xC000_0000u32 as i32)?;
        a.cmp(ecx, 0x1FFF)?;
        a.ja(yes)?;
        a.add(rsi, 0x400)?;
        a.set_label(&mut low)?;
        a.bt(qword_ptr(rsi), rcx)?;
        a.jc(yes)?;
        a.jmp(no)?;
        a.set_label(&mut not_msr)?;
        // Control-register accesses: the bits the guest hypervisor owns.
        let mut not_cr = a.create_label();
        a.cmp(eax, 28)?;
        a.jne(not_cr)?;
        vmread(a, rsi, f::EXIT_QUALIFICATION)?;
        a.mov(edx, esi)?;
        a.and(edx, 0x3F)?;
        let mut l_cr4 = a.create_label();
        let mut l_cr0 = a.create_label();
        a.cmp(edx, 4)?;
        a.je(l_cr4)?;
        a.test(edx, edx)?;
        a.je(l_cr0)?;
        a.jmp(yes)?;
        for (l, shadow, mask) in [
            (&mut l_cr4, f::CR4_READ_SHADOW, f::CR4_GUEST_HOST_MASK),
            (&mut l_cr0, f::CR0_READ_SHADOW, f::CR0_GUEST_HOST_MASK),
        ] {
            a.set_label(l)?;
            a.mov(ecx, esi)?;
            a.shr(ecx, 8)?;
            a.and(ecx, 15)?;
            a.mov(rax, qword_ptr(rcx * 8 + (L::VCPU + v::REGS)))?;
            a.xor(rax, qword_ptr(rbx + off12(shadow)))?;
            a.test(qword_ptr(rbx + off12(mask)), rax)?;
            a.jnz(yes)?;
            a.jmp(no)?;
        }
        a.set_label(&mut not_cr)?;
        // I/O: unconditional exiting or the guest's I/O bitmaps.
        let mut not_io = a.create_label();
        a.cmp(eax, 30)?;
        a.jne(not_io)?;
        let mut bitmaps = a.create_label();
        a.test(dword_ptr(rbx + off12(f::CPU_BASED_VM_EXEC_CONTROL)), p1::CPU_BASED_USE_IO_BITMAPS as i32)?;
        a.jnz(bitmaps)?;
        a.test(dword_ptr(rbx + off12(f::CPU_BASED_VM_EXEC_CONTROL)), p1::CPU_BASED_UNCOND_IO_EXITING as i32)?;
        a.jnz(yes)?;
        a.jmp(no)?;
        a.set_label(&mut bitmaps)?;
        vmread(a, rsi, f::EXIT_QUALIFICATION)?;
        a.shr(esi, 16)?;
        a.mov(rax, qword_ptr(rbx + off12(f::IO_BITMAP_A)))?;
        let mut lowp = a.create_label();
        a.cmp(esi, 0x8000)?;
        a.jb(lowp)?;
        a.mov(rax, qword_ptr(rbx + off12(f::IO_BITMAP_B)))?;
        a.sub(esi, 0x8000)?;
        a.set_label(&mut lowp)?;
        a.mov(rcx, GUEST_BASE)?;
        a.add(rax, rcx)?;
        a.bt(qword_ptr(rax), rsi)?;
        a.jc(yes)?;
        a.jmp(no)?;
        a.set_label(&mut not_io)?;
        a.zero_bytes()?;
        a.set_label(&mut yes)?;
        a.pop(rbx)?;
        a.mov(eax, 1u32)?;
        a.ret()?;
        a.set_label(&mut no)?;
        a.pop(rbx)?;
        a.xor(eax, eax)?;
        a.ret()
    })?;

    // nested_vmx_vmexit: reflect the current exit of the nested guest to its hypervisor.
    b.func("nested_vmx_vmexit", |b| {
        let sync = b.label("sync_vmcs12");
        let switch = b.label("vmx_switch_vmcs");
        let host = b.label("load_vmcs12_host_state");
        let a = &mut b.asm;
        a.push(rbx)?;
        a.mov(rbx, vc(v::N_VMCS12))?;
        // prepare_vmcs12: the guest state, then the exit information.
        a.call(sync)?;
        a.mov(eax, vc32(v::EXIT_REASON))?;
        a.mov(qword_ptr(rbx + off12(f::VM_EXIT_REASON)), rax)?;
        for e in [
            f::EXIT_QUALIFICATION,
            f::VM_EXIT_INTR_INFO,
            f::VM_EXIT_INTR_ERROR_CODE,
            f::IDT_VECTORING_ERROR_CODE,
            f::VM_EXIT_INSTRUCTION_LEN,
            f::VMX_INSTRUCTION_INFO,
            f::GUEST_PHYSICAL_ADDRESS,
        ] {
            copy_to_vmcs12(a, e)?;
        }
        a.mov(rax, vc(v::IDT_VECTORING))?;
        a.mov(qword_ptr(rbx + off12(f::IDT_VECTORING_INFO_FIELD)), rax)?;
        a.and(dword_ptr(rbx + off12(f::VM_ENTRY_INTR_INFO_FIELD)), 0x7FFF_FFFF)?;
        a.mov(rdi, L::VMCS01)?;
        a.call(switch)?;
        // vm_entry/exit controls, MSR-list counts, TSC offset, pin-based controls of vmcs01.
        for e in [f::VM_EXIT_MSR_LOAD_COUNT, f::VM_ENTRY_MSR_LOAD_COUNT] {
            vmwrite_imm(a, e, 0)?;
        }
        a.mov(rax, vc(v::TSC_OFFSET))?;
        vmwrite(a, f::TSC_OFFSET, rax)?;
        vmread(a, rax, f::PIN_BASED_VM_EXEC_CONTROL)?;
        vmwrite(a, f::PIN_BASED_VM_EXEC_CONTROL, rax)?;
        a.call(host)?;
        a.mov(qword_ptr(L::VCPU + v::N_GUEST_MODE), 0)?;
        let mut no_shadow = a.create_label();
        a.test(qword_ptr(L::VCPU + v::FEAT), feat::SHADOW as i32)?;
        a.jz(no_shadow)?;
        a.mov(qword_ptr(L::VCPU + v::N_SYNC_SHADOW), 1)?;
        a.set_label(&mut no_shadow)?;
        a.pop(rbx)?;
        a.mov(eax, 1u32)?;
        a.ret()
    })?;

    // sync_vmcs12 (rbx = vmcs12): the nested guest's state from vmcs02.
    b.func("sync_vmcs12", |b| {
        let rsp_read = b.label("kvm_rsp_read");
        let rip_read = b.label("kvm_rip_read");
        let a = &mut b.asm;
        // vmcs12_guest_cr0/cr4: the hardware values (with the read shadows consulted).
        for (e, shadow) in [(f::GUEST_CR0, f::CR0_READ_SHADOW), (f::GUEST_CR4, f::CR4_READ_SHADOW)] {
            vmread(a, rcx, shadow)?;
            copy_to_vmcs12(a, e)?;
        }
        a.call(rsp_read)?;
        a.mov(qword_ptr(rbx + off12(f::GUEST_RSP)), rax)?;
        a.call(rip_read)?;
        a.mov(qword_ptr(rbx + off12(f::GUEST_RIP)), rax)?;
        copy_to_vmcs12(a, f::GUEST_RFLAGS)?;
        for &e in GUEST_SEGMENTS.iter() {
            copy_to_vmcs12(a, e)?;
        }
        for e in [
            f::GUEST_INTERRUPTIBILITY_INFO,
            f::GUEST_PENDING_DBG_EXCEPTIONS,
            f::GUEST_CR3,
            f::GUEST_PDPTR0,
            f::GUEST_PDPTR1,
            f::GUEST_PDPTR2,
            f::GUEST_PDPTR3,
            f::GUEST_LINEAR_ADDRESS,
            f::GUEST_SYSENTER_CS,
            f::GUEST_SYSENTER_ESP,
            f::GUEST_SYSENTER_EIP,
            f::GUEST_IA32_EFER,
            f::GUEST_IA32_PAT,
        ] {
            copy_to_vmcs12(a, e)?;
        }
        // With virtual-interrupt delivery the processor moved RVI/SVI.
        let mut no_vid = a.create_label();
        a.test(dword_ptr(rbx + off12(f::SECONDARY_VM_EXEC_CONTROL)), p2::SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY as i32)?;
        a.jz(no_vid)?;
        copy_to_vmcs12(a, f::GUEST_INTR_STATUS)?;
        a.set_label(&mut no_vid)?;
        a.ret()
    })?;

    // load_vmcs12_host_state (rbx = vmcs12): the guest hypervisor's host state becomes its
    // state in vmcs01.
    b.func("load_vmcs12_host_state", |b| {
        let a = &mut b.asm;
        a.mov(rax, qword_ptr(rbx + off12(f::HOST_IA32_EFER)))?;
        vmwrite(a, f::GUEST_IA32_EFER, rax)?;
        a.mov(rax, qword_ptr(rbx + off12(f::HOST_RSP)))?;
        a.mov(vc(v::RSP), rax)?;
        a.mov(rax, qword_ptr(rbx + off12(f::HOST_RIP)))?;
        a.mov(vc(v::RIP), rax)?;
        a.mov(qword_ptr(L::VCPU + v::REGS_STATE), 0xF)?;
        vmwrite_imm(a, f::GUEST_RFLAGS, 2)?;
        // vmx_set_cr0 / vmx_set_cr4 / CR3 (with an MMU context reset).
        a.mov(rax, qword_ptr(rbx + off12(f::HOST_CR0)))?;
        a.mov(vc(v::CR0), rax)?;
        vmwrite(a, f::CR0_READ_SHADOW, rax)?;
        vmwrite(a, f::GUEST_CR0, rax)?;
        vmwrite_imm(a, f::CR0_GUEST_HOST_MASK, !0x8u64)?;
        a.mov(rax, qword_ptr(rbx + off12(f::HOST_CR4)))?;
        a.mov(vc(v::CR4), rax)?;
        vmwrite(a, f::CR4_READ_SHADOW, rax)?;
        a.or(eax, crate::arch::x86::cr4::VMXE as i32)?;
        vmwrite(a, f::GUEST_CR4, rax)?;
        vmwrite_imm(a, f::CR4_GUEST_HOST_MASK, !0x7A2u64)?;
        copy_host(a, f::HOST_CR3, f::GUEST_CR3)?;
        // Segments: selectors from the host fields, flat 64-bit code and data.
        for (sel, host) in [
            (f::GUEST_ES_SELECTOR, f::HOST_ES_SELECTOR),
            (f::GUEST_CS_SELECTOR, f::HOST_CS_SELECTOR),
            (f::GUEST_SS_SELECTOR, f::HOST_SS_SELECTOR),
            (f::GUEST_DS_SELECTOR, f::HOST_DS_SELECTOR),
            (f::GUEST_FS_SELECTOR, f::HOST_FS_SELECTOR),
            (f::GUEST_GS_SELECTOR, f::HOST_GS_SELECTOR),
            (f::GUEST_TR_SELECTOR, f::HOST_TR_SELECTOR),
        ] {
            copy_host(a, host, sel)?;
        }
        for (ar, lim, base, val) in [
            (f::GUEST_ES_AR_BYTES, f::GUEST_ES_LIMIT, Some(f::GUEST_ES_BASE), 0xC093u64),
            (f::GUEST_CS_AR_BYTES, f::GUEST_CS_LIMIT, Some(f::GUEST_CS_BASE), 0xA09B),
            (f::GUEST_SS_AR_BYTES, f::GUEST_SS_LIMIT, Some(f::GUEST_SS_BASE), 0xC093),
            (f::GUEST_DS_AR_BYTES, f::GUEST_DS_LIMIT, Some(f::GUEST_DS_BASE), 0xC093),
            (f::GUEST_FS_AR_BYTES, f::GUEST_FS_LIMIT, None, 0xC093),
            (f::GUEST_GS_AR_BYTES, f::GUEST_GS_LIMIT, None, 0xC093),
            (f::GUEST_TR_AR_BYTES, f::GUEST_TR_LIMIT, None, 0x8B),
        ] {
            vmwrite_imm(a, ar, val)?;
            vmwrite_imm(a, lim, if val == 0x8B { 0x67 } else { 0xFFFF_FFFF })?;
            if let Some(bse) = base {
                vmwrite_imm(a, bse, 0)?;
            }
        }
        copy_host(a, f::HOST_FS_BASE, f::GUEST_FS_BASE)?;
        copy_host(a, f::HOST_GS_BASE, f::GUEST_GS_BASE)?;
        copy_host(a, f::HOST_TR_BASE, f::GUEST_TR_BASE)?;
        vmwrite_imm(a, f::GUEST_LDTR_SELECTOR, 0)?;
        vmwrite_imm(a, f::GUEST_LDTR_AR_BYTES, 0x1_0000)?;
        copy_host(a, f::HOST_GDTR_BASE, f::GUEST_GDTR_BASE)?;
        copy_host(a, f::HOST_IDTR_BASE, f::GUEST_IDTR_BASE)?;
        vmwrite_imm(a, f::GUEST_GDTR_LIMIT, 0xFFFF)?;
        vmwrite_imm(a, f::GUEST_IDTR_LIMIT, 0xFFFF)?;
        copy_host(a, f::HOST_IA32_SYSENTER_CS, f::GUEST_SYSENTER_CS)?;
        copy_host(a, f::HOST_IA32_SYSENTER_ESP, f::GUEST_SYSENTER_ESP)?;
        copy_host(a, f::HOST_IA32_SYSENTER_EIP, f::GUEST_SYSENTER_EIP)?;
        copy_host(a, f::HOST_IA32_PAT, f::GUEST_IA32_PAT)?;
        vmwrite_imm(a, f::GUEST_DR7, 0x400)?;
        vmwrite_imm(a, f::GUEST_IA32_DEBUGCTL, 0)?;
        vmwrite_imm(a, f::GUEST_INTERRUPTIBILITY_INFO, 0)?;
        // vmx_update_msr_bitmap: vmcs01's bitmap for the guest's APIC mode.
        a.mov(rax, L::MSR_BITMAP_LEGACY)?;
        a.mov(rcx, L::MSR_BITMAP_X2APIC)?;
        a.bt(qword_ptr(L::VCPU + v::APIC_BASE), 10)?;
        let mut legacy = a.create_label();
        a.jnc(legacy)?;
        a.test(qword_ptr(L::VCPU + v::FEAT), feat::APICV as i32)?;
        a.jz(legacy)?;
        a.mov(rax, rcx)?;
        a.set_label(&mut legacy)?;
        vmwrite(a, f::MSR_BITMAP, rax)?;
        a.ret()
    })?;
    Ok(())
}

/// VMWRITE of vmcs12's host field `host` (rbx = vmcs12) into the current VMCS's `guest`.
fn copy_host(a: &mut CodeAssembler, host: u32, guest: u32) -> R {
    a.mov(rax, qword_ptr(rbx + off12(host)))?;
    vmwrite(a, guest, rax)
}

/// The call site of `nested_vmx_check_permission`: outside VMX operation the handler
/// returns (with the #UD queued for the guest).
fn permission_check(a: &mut CodeAssembler, check: CodeLabel) -> R {
    let mut ok = a.create_label();
    a.call(check)?;
    a.jnz(ok)?;
    a.ret()?;
    a.set_label(&mut ok)
}

/// The memory operand of the exiting VMX instruction (`get_vmx_mem_address`) translated by
/// a walk of the guest's page tables: rax = its guest-physical address, rcx = GUEST_BASE.
fn operand_in_guest_memory(a: &mut CodeAssembler, addr: CodeLabel, walk: CodeLabel) -> R {
    a.call(addr)?;
    a.mov(rdi, rax)?;
    a.call(walk)?;
    a.mov(rcx, GUEST_BASE)
}
