//! vCPU state helpers of vmx.c that KVM 4.13/4.14 calls out of line on every nested entry
//! and exit: switching the loaded VMCS (`vmx_switch_vmcs` = `vmx_vcpu_put` + `vmx_vcpu_load`,
//! then `vmx_save_host_state` before the next entry), the constant host state, and the
//! register setters (`vmx_set_cr0`/`cr4`/`cr3`/`efer`/`rflags`/`segment`, `kvm_set_dr`,
//! `update_exception_bitmap`, `set_cr4_guest_host_mask`, `vmx_set_msr_bitmap`). Each is its
//! own symbol, as in `perf` on the real module, so the VMWRITEs they do are not counted in
//! `nested_vmx_run` or `load_vmcs12_host_state`.
//!
//! Register convention (the rest of the program's): arguments in rdi, rsi, rdx; rax, rcx,
//! rdx, rsi, rdi, r8-r11 are clobbered; rbx, rbp, r12-r15 are preserved.

use super::*;

/// EFER bits.
const EFER_SCE: u64 = 1;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
/// CR0/CR4 bits used here.
const CR4_PAE: u64 = 1 << 5;
const CR4_MCE: u64 = 1 << 6;
const CR4_VMXE: u64 = 1 << 13;
/// The exceptions this hypervisor intercepts for its own sake (update_exception_bitmap).
pub(super) const EXCEPTION_BITMAP_BASE: u32 = (1 << 6) | (1 << 18) | (1 << 8);
/// KVM_CR4_GUEST_OWNED_BITS | X86_CR4_PGE (with EPT), as this model's masks have them.
pub(super) const CR4_GUEST_OWNED_BITS: u64 = 0x7A2;
/// The kvm_segment struct vmx_set_segment takes (at `v::SEG_SCRATCH`).
pub(super) mod seg {
    pub const BASE: u64 = 0x00;
    pub const LIMIT: u64 = 0x08;
    pub const SELECTOR: u64 = 0x0C;
    pub const TYPE: u64 = 0x0E;
    pub const PRESENT: u64 = 0x0F;
    pub const DPL: u64 = 0x10;
    pub const DB: u64 = 0x11;
    pub const S: u64 = 0x12;
    pub const L: u64 = 0x13;
    pub const G: u64 = 0x14;
    pub const AVL: u64 = 0x15;
    pub const UNUSABLE: u64 = 0x16;
}
/// VCPU_SREG_* numbers (kvm_vmx_segment_fields[] order).
pub(super) mod sreg {
    pub const ES: u32 = 0;
    pub const CS: u32 = 1;
    pub const SS: u32 = 2;
    pub const DS: u32 = 3;
    pub const FS: u32 = 4;
    pub const GS: u32 = 5;
    pub const TR: u32 = 6;
    pub const LDTR: u32 = 7;
}
/// vmx_msr_index[] (64-bit): the MSRs KVM switches lazily through the user-return notifier.
pub(super) const VMX_MSR_INDEX: [u32; 6] =
    [m::IA32_FMASK, m::IA32_LSTAR, m::IA32_CSTAR, m::IA32_EFER, m::IA32_TSC_AUX, m::IA32_STAR];

/// vm_entry_controls_set / vm_exit_controls_set: VMWRITE only when the shadow differs
/// (eax = new value).
fn controls_set(a: &mut CodeAssembler, shadow: u64, enc: u32) -> R {
    let mut same = a.create_label();
    a.cmp(eax, vc32(shadow))?;
    a.je(same)?;
    a.mov(vc(shadow), rax)?;
    vmwrite(a, enc, rax)?;
    a.set_label(&mut same)
}
/// setbit / clearbit on a controls shadow.
fn controls_bit(a: &mut CodeAssembler, shadow: u64, enc: u32, bit: u32, set: bool) -> R {
    a.mov(eax, vc32(shadow))?;
    if set {
        a.or(eax, bit as i32)?;
    } else {
        a.and(eax, !bit as i32)?;
    }
    controls_set(a, shadow, enc)
}

/// construct_eptp(rax = root) -> rax: write-back, 4-level walk, A/D for this level's own
/// guest when it uses them (the shadow EPT02 is run without A/D, as the model builds it).
pub(super) fn construct_eptp(a: &mut CodeAssembler) -> R {
    a.or(rax, (3 << 3) | 6)?;
    let mut no_ad = a.create_label();
    a.cmp(qword_ptr(L::VCPU + v::N_GUEST_MODE), 0)?;
    a.jne(no_ad)?;
    a.test(qword_ptr(L::VCPU + v::FEAT), feat::EPT_AD as i32)?;
    a.jz(no_ad)?;
    a.or(rax, 1 << 6)?;
    a.set_label(&mut no_ad)
}

pub(super) fn emit(b: &mut ProgramBuilder, p: &HvParams) -> R {
    let _ = p;
    // ---- switching the loaded VMCS ----------------------------------------------------------

    // vmx_switch_vmcs(rdi = VMCS): get_cpu, vmx_vcpu_put, vmx_vcpu_load, put_cpu.
    b.func("vmx_switch_vmcs", |b| {
        let put = b.label("vmx_vcpu_put");
        let load = b.label("vmx_vcpu_load");
        let a = &mut b.asm;
        let mut out = a.create_label();
        a.cmp(rdi, vc(v::LOADED_VMCS))?;
        a.je(out)?;
        a.inc(qword_ptr(L::VCPU + v::PREEMPT_COUNT))?;
        a.mov(vc(v::LOADED_VMCS), rdi)?;
        a.call(put)?;
        a.call(load)?;
        a.dec(qword_ptr(L::VCPU + v::PREEMPT_COUNT))?;
        // The model's loaded_vmcs->launched pointer; the register cache refers to the new VMCS.
        a.mov(rdi, vc(v::LOADED_VMCS))?;
        a.mov(rax, L::VCPU + v::LAUNCHED01)?;
        a.mov(rcx, L::VCPU + v::LAUNCHED02)?;
        a.mov(rdx, L::VMCS02)?;
        a.cmp(rdi, rdx)?;
        a.cmove(rax, rcx)?;
        a.mov(vc(v::LAUNCHED_PTR), rax)?;
        a.mov(qword_ptr(L::VCPU + v::HOST_RSP_VMCS), 0)?;
        a.mov(qword_ptr(L::VCPU + v::REGS_STATE), 0)?;
        a.set_label(&mut out)?;
        a.ret()
    })?;

    // vmx_vcpu_put: vmx_vcpu_pi_put (nothing without an assigned device), then the host's
    // segment and KERNEL_GS_BASE state back.
    b.func("vmx_vcpu_put", |b| {
        let load_host = b.label("__vmx_load_host_state");
        let a = &mut b.asm;
        a.cmp(qword_ptr(L::VCPU + v::ASSIGNED_DEVICES), 0)?;
        a.jmp(load_host)
    })?;

    // __vmx_load_host_state: undo vmx_save_host_state (RDMSR the guest's KERNEL_GS_BASE,
    // WRMSR the host's, reload selectors that need it, invalidate the TSS limit, LGDT the
    // per-CPU GDT).
    b.func("__vmx_load_host_state", |b| {
        let gdt_desc = b.label("gdt_desc");
        let a = &mut b.asm;
        let mut out = a.create_label();
        a.cmp(qword_ptr(L::VCPU + v::HOST_STATE_LOADED), 0)?;
        a.je(out)?;
        a.inc(qword_ptr(L::VCPU + v::STAT_HOST_STATE_RELOAD))?;
        a.mov(qword_ptr(L::VCPU + v::HOST_STATE_LOADED), 0)?;
        let mut not_long = a.create_label();
        a.test(qword_ptr(L::VCPU + v::ARCH_EFER), EFER_LMA as i32)?;
        a.jz(not_long)?;
        a.mov(ecx, m::IA32_KERNEL_GS_BASE)?;
        a.rdmsr()?;
        a.shl(rdx, 32)?;
        a.or(rax, rdx)?;
        a.mov(vc(v::GUEST_KERNEL_GS_BASE), rax)?;
        a.set_label(&mut not_long)?;
        let mut no_gs = a.create_label();
        a.cmp(qword_ptr(L::VCPU + v::GS_LDT_RELOAD_NEEDED), 0)?;
        a.je(no_gs)?;
        a.mov(rax, vc(v::HOST_LDT_SEL))?;
        a.lldt(ax)?;
        a.mov(rax, vc(v::HOST_GS_SEL))?;
        a.mov(gs, ax)?;
        a.set_label(&mut no_gs)?;
        let mut no_fs = a.create_label();
        a.cmp(qword_ptr(L::VCPU + v::FS_RELOAD_NEEDED), 0)?;
        a.je(no_fs)?;
        a.mov(rax, vc(v::HOST_FS_SEL))?;
        a.mov(fs, ax)?;
        a.set_label(&mut no_fs)?;
        // Linux reloads DS/ES only when user space had non-null selectors there; this
        // program's kernel data selector plays the role of the null one.
        let mut no_ds = a.create_label();
        let mut reload_ds = a.create_label();
        a.cmp(qword_ptr(L::VCPU + v::HOST_DS_SEL), i32::from(crate::loader::elf::DATA_SEL))?;
        a.jne(reload_ds)?;
        a.cmp(qword_ptr(L::VCPU + v::HOST_ES_SEL), i32::from(crate::loader::elf::DATA_SEL))?;
        a.je(no_ds)?;
        a.set_label(&mut reload_ds)?;
        a.mov(rax, vc(v::HOST_DS_SEL))?;
        a.mov(ds, ax)?;
        a.mov(rax, vc(v::HOST_ES_SEL))?;
        a.mov(es, ax)?;
        a.set_label(&mut no_ds)?;
        // invalidate_tss_limit: no I/O bitmap in this thread, so only the per-CPU flag.
        let mut no_io = a.create_label();
        a.test(qword_ptr(L::VCPU + v::THREAD_FLAGS), 1 << 22)?;
        a.jnz(no_io)?;
        a.mov(qword_ptr(L::VCPU + v::TSS_LIMIT_INVALID), 1)?;
        a.set_label(&mut no_io)?;
        a.mov(ecx, m::IA32_KERNEL_GS_BASE)?;
        a.mov(rax, vc(v::HOST_KERNEL_GS_BASE))?;
        a.mov(rdx, rax)?;
        a.shr(rdx, 32)?;
        a.wrmsr()?;
        // load_fixmap_gdt(cpu).
        a.lgdt(ptr(gdt_desc))?;
        a.set_label(&mut out)?;
        a.ret()
    })?;

    // vmx_vcpu_load: VMPTRLD the loaded VMCS unless it is current on this CPU; after a
    // VMCLEAR (first load on this CPU) the per-CPU host state and a TLB flush request.
    b.func("vmx_vcpu_load", |b| {
        let tss = b.label("tss");
        let gdt = b.label("gdt");
        let a = &mut b.asm;
        a.mov(rdi, vc(v::LOADED_VMCS))?;
        a.mov(r8, L::VCPU + v::VMCS01_CPU)?;
        a.mov(rcx, L::VCPU + v::VMCS02_CPU)?;
        a.mov(rdx, L::VMCS02)?;
        a.cmp(rdi, rdx)?;
        a.cmove(r8, rcx)?;
        a.xor(r9d, r9d)?;
        a.cmp(qword_ptr(r8), 0)?;
        a.sete(r9b)?; // already_loaded
        let mut loaded = a.create_label();
        a.test(r9d, r9d)?;
        a.jnz(loaded)?;
        // loaded_vmcs_clear (not loaded elsewhere), list_add to this CPU's loaded VMCSs with
        // interrupts off and the crash-time VMCLEAR bitmap cleared around it.
        a.pushfq()?;
        a.cli()?;
        a.lock().btr(qword_ptr(L::VCPU + v::CRASH_VMCLEAR_MASK), 0)?;
        a.mov(qword_ptr(L::VCPU + v::LOADED_VMCSS_LIST), rdi)?;
        a.lock().bts(qword_ptr(L::VCPU + v::CRASH_VMCLEAR_MASK), 0)?;
        a.popfq()?;
        a.set_label(&mut loaded)?;
        let mut current = a.create_label();
        a.cmp(rdi, vc(v::CPU_CURRENT_VMCS))?;
        a.je(current)?;
        a.mov(vc(v::CPU_CURRENT_VMCS), rdi)?;
        a.mov(qword_ptr(L::VCPU + 0x1E8), rdi)?;
        a.vmptrld(qword_ptr(L::VCPU + 0x1E8))?;
        a.set_label(&mut current)?;
        let mut done = a.create_label();
        a.test(r9d, r9d)?;
        a.jnz(done)?;
        a.lock().bts(qword_ptr(L::VCPU + v::REQUESTS), req::TLB_FLUSH as i32)?;
        a.lea(rax, ptr(tss))?;
        vmwrite(a, f::HOST_TR_BASE, rax)?;
        a.lea(rax, ptr(gdt))?;
        vmwrite(a, f::HOST_GDTR_BASE, rax)?;
        a.mov(ecx, m::IA32_SYSENTER_ESP)?;
        a.rdmsr()?;
        a.shl(rdx, 32)?;
        a.or(rax, rdx)?;
        vmwrite(a, f::HOST_IA32_SYSENTER_ESP, rax)?;
        a.mov(qword_ptr(r8), 0)?;
        a.set_label(&mut done)?;
        // TSC scaling (none), vmx_vcpu_pi_load (no assigned device), read_pkru (no OSPKE).
        a.cmp(qword_ptr(L::VCPU + v::HAS_TSC_CONTROL), 0)?;
        a.cmp(qword_ptr(L::VCPU + v::ASSIGNED_DEVICES), 0)?;
        a.ret()
    })?;

    // vmx_save_host_state (kvm_x86_ops->prepare_guest_switch, before every entry): after a
    // vcpu_put, the host's selectors and FS/GS bases into the VMCS and the guest's
    // KERNEL_GS_BASE into the MSR; the shared MSRs are already the guest's.
    b.func("vmx_save_host_state", |b| {
        let a = &mut b.asm;
        let mut out = a.create_label();
        a.cmp(qword_ptr(L::VCPU + v::HOST_STATE_LOADED), 0)?;
        a.jne(out)?;
        a.mov(qword_ptr(L::VCPU + v::HOST_STATE_LOADED), 1)?;
        a.sldt(ax)?;
        a.movzx(eax, ax)?;
        a.mov(vc(v::HOST_LDT_SEL), rax)?;
        a.mov(vc(v::GS_LDT_RELOAD_NEEDED), rax)?;
        for (sreg, slot, field, reload) in [
            (fs, v::HOST_FS_SEL, f::HOST_FS_SELECTOR, v::FS_RELOAD_NEEDED),
            (gs, v::HOST_GS_SEL, f::HOST_GS_SELECTOR, v::GS_LDT_RELOAD_NEEDED),
        ] {
            a.mov(ax, sreg)?;
            a.movzx(eax, ax)?;
            a.mov(vc(slot), rax)?;
            let mut rpl = a.create_label();
            let mut next = a.create_label();
            a.test(al, 7)?;
            a.jnz(rpl)?;
            vmwrite(a, field, rax)?;
            if reload == v::FS_RELOAD_NEEDED {
                a.mov(qword_ptr(L::VCPU + reload), 0)?;
            }
            a.jmp(next)?;
            a.set_label(&mut rpl)?;
            vmwrite_imm(a, field, 0)?;
            a.mov(qword_ptr(L::VCPU + reload), 1)?;
            a.set_label(&mut next)?;
        }
        a.mov(ax, ds)?;
        a.movzx(eax, ax)?;
        a.mov(vc(v::HOST_DS_SEL), rax)?;
        a.mov(ax, es)?;
        a.movzx(eax, ax)?;
        a.mov(vc(v::HOST_ES_SEL), rax)?;
        for (msr, field) in [(m::IA32_FS_BASE, f::HOST_FS_BASE), (m::IA32_GS_BASE, f::HOST_GS_BASE)] {
            a.mov(ecx, msr)?;
            a.rdmsr()?;
            a.shl(rdx, 32)?;
            a.or(rax, rdx)?;
            vmwrite(a, field, rax)?;
        }
        a.mov(ecx, m::IA32_KERNEL_GS_BASE)?;
        a.rdmsr()?;
        a.shl(rdx, 32)?;
        a.or(rax, rdx)?;
        a.mov(vc(v::HOST_KERNEL_GS_BASE), rax)?;
        let mut not_long = a.create_label();
        a.test(qword_ptr(L::VCPU + v::ARCH_EFER), EFER_LMA as i32)?;
        a.jz(not_long)?;
        a.mov(ecx, m::IA32_KERNEL_GS_BASE)?;
        a.mov(rax, vc(v::GUEST_KERNEL_GS_BASE))?;
        a.mov(rdx, rax)?;
        a.shr(rdx, 32)?;
        a.wrmsr()?;
        a.set_label(&mut not_long)?;
        // kvm_set_shared_msr for each of save_nmsrs: the value is already current.
        let mut top = a.create_label();
        let mut next = a.create_label();
        let mut done = a.create_label();
        a.xor(ecx, ecx)?;
        a.set_label(&mut top)?;
        a.cmp(rcx, vc(v::SAVE_NMSRS))?;
        a.jae(done)?;
        a.imul_3(rdx, rcx, 24)?;
        a.mov(rax, qword_ptr(rdx + (L::VCPU + v::GUEST_MSRS + 8)))?;
        a.mov(esi, dword_ptr(rdx + (L::VCPU + v::GUEST_MSRS)))?;
        a.xor(rax, qword_ptr(rsi * 8 + (L::VCPU + v::SHARED_MSR_CURR)))?;
        a.and(rax, qword_ptr(rdx + (L::VCPU + v::GUEST_MSRS + 16)))?;
        a.jz(next)?;
        // A changed value would be written and the user-return notifier registered.
        a.mov(rax, qword_ptr(rdx + (L::VCPU + v::GUEST_MSRS + 8)))?;
        a.mov(qword_ptr(rsi * 8 + (L::VCPU + v::SHARED_MSR_CURR)), rax)?;
        a.set_label(&mut next)?;
        a.inc(ecx)?;
        a.jmp(top)?;
        a.set_label(&mut done)?;
        a.zero_bytes()?;
        a.set_label(&mut out)?;
        a.ret()
    })?;

    // vmx_set_constant_host_state: host state that does not change per CPU (4.14: CR0/CR3/CR4,
    // selectors, IDT base, HOST_RIP, SYSENTER_CS/EIP and PAT read from their MSRs).
    b.func("vmx_set_constant_host_state", |b| {
        let ret = b.label("vmx_return");
        let a = &mut b.asm;
        a.mov(rax, cr0)?;
        vmwrite(a, f::HOST_CR0, rax)?;
        a.mov(rax, cr3)?;
        vmwrite(a, f::HOST_CR3, rax)?;
        a.mov(vc(v::VMCS_HOST_CR3), rax)?;
        // cr4_read_shadow(): the per-CPU copy, not the register.
        a.mov(rax, vc(v::CR4_SHADOW))?;
        vmwrite(a, f::HOST_CR4, rax)?;
        a.mov(vc(v::VMCS_HOST_CR4), rax)?;
        vmwrite_imm(a, f::HOST_CS_SELECTOR, u64::from(crate::loader::elf::CODE64_SEL))?;
        for e in [f::HOST_DS_SELECTOR, f::HOST_ES_SELECTOR, f::HOST_SS_SELECTOR] {
            vmwrite_imm(a, e, u64::from(crate::loader::elf::DATA_SEL))?;
        }
        vmwrite_imm(a, f::HOST_TR_SELECTOR, 0x18)?;
        a.sidt(ptr(L::VCPU + v::SIDT_SCRATCH))?;
        a.mov(rax, qword_ptr(L::VCPU + v::SIDT_SCRATCH + 2))?;
        vmwrite(a, f::HOST_IDTR_BASE, rax)?;
        a.mov(vc(v::HOST_IDT_BASE), rax)?;
        a.lea(rax, ptr(ret))?;
        vmwrite(a, f::HOST_RIP, rax)?;
        for (msr, field) in [
            (m::IA32_SYSENTER_CS, f::HOST_IA32_SYSENTER_CS),
            (m::IA32_SYSENTER_EIP, f::HOST_IA32_SYSENTER_EIP),
            (m::IA32_PAT, f::HOST_IA32_PAT),
        ] {
            a.mov(ecx, msr)?;
            a.rdmsr()?;
            a.shl(rdx, 32)?;
            a.or(rax, rdx)?;
            vmwrite(a, field, rax)?;
        }
        a.ret()
    })?;

    // ---- register setters -------------------------------------------------------------------

    // vmx_set_cr0(rdi = cr0): read shadow and hardware CR0 (with the always-on bits), the
    // guest's CR3 decached first when it is not (ept_update_paging_mode_cr0).
    b.func("vmx_set_cr0", |b| {
        let a = &mut b.asm;
        a.mov(r8, rdi)?;
        a.mov(eax, 0x6000_0000u32)?; // NW | CD
        a.not(rax)?;
        a.and(r8, rax)?;
        a.or(r8d, 0x20)?;
        // Long-mode entry/exit by a CR0.PG change (enter_lmode/exit_lmode) is not modeled:
        // nested guests here keep paging on.
        let mut cr3_ok = a.create_label();
        a.test(qword_ptr(L::VCPU + v::REGS_STATE), regs::CR3_AVAIL)?;
        a.jnz(cr3_ok)?;
        // vmx_decache_cr3.
        a.mov(rax, vc(v::CR0))?;
        a.bt(rax, 31)?;
        let mut no_paging = a.create_label();
        a.jnc(no_paging)?;
        vmread(a, rax, f::GUEST_CR3)?;
        a.mov(vc(v::ARCH_CR3), rax)?;
        a.set_label(&mut no_paging)?;
        a.or(qword_ptr(L::VCPU + v::REGS_STATE), regs::CR3_AVAIL)?;
        a.set_label(&mut cr3_ok)?;
        let mut wp = a.create_label();
        a.bt(edi, 16)?;
        a.jc(wp)?;
        a.btr(r8, 16)?;
        a.set_label(&mut wp)?;
        vmwrite(a, f::CR0_READ_SHADOW, rdi)?;
        vmwrite(a, f::GUEST_CR0, r8)?;
        a.mov(vc(v::CR0), rdi)?;
        // emulation_required: with unrestricted guest the state is always valid.
        a.mov(qword_ptr(L::VCPU + v::EMULATION_REQUIRED), 0)?;
        a.ret()
    })?;

    // vmx_set_cr4(rdi = cr4) -> eax = 0, or 1 when the value is not allowed: VMXE needs
    // nested VMX in the guest's CPUID (nested_vmx_allowed), and in VMX operation the value
    // must respect the fixed bits (nested_cr4_valid).
    b.func("vmx_set_cr4", |b| {
        let find = b.label("kvm_find_cpuid_entry");
        let a = &mut b.asm;
        let mut fail = a.create_label();
        a.push(rbx)?;
        a.mov(rbx, rdi)?;
        let mut no_vmxe = a.create_label();
        a.bt(ebx, 13)?;
        a.jnc(no_vmxe)?;
        a.mov(esi, 1u32)?;
        a.xor(edx, edx)?;
        a.call(find)?;
        a.test(rax, rax)?;
        a.jz(fail)?;
        a.test(dword_ptr(rax + 24), 1 << 5)?;
        a.jz(fail)?;
        a.set_label(&mut no_vmxe)?;
        let mut no_vmxon = a.create_label();
        a.cmp(qword_ptr(L::VCPU + v::N_VMXON), 0)?;
        a.je(no_vmxon)?;
        let caps = L::VCPU + v::NESTED_CAPS;
        let fixed0 = caps + 8 * u64::from(vm::IA32_VMX_CR4_FIXED0 - vm::IA32_VMX_BASIC);
        let fixed1 = caps + 8 * u64::from(vm::IA32_VMX_CR4_FIXED1 - vm::IA32_VMX_BASIC);
        a.mov(rax, rbx)?;
        a.and(rax, qword_ptr(fixed1))?;
        a.or(rax, qword_ptr(fixed0))?;
        a.cmp(rax, rbx)?;
        a.jne(fail)?;
        a.set_label(&mut no_vmxon)?;
        a.mov(vc(v::CR4), rbx)?;
        a.mov(rax, vc(v::CR4_SHADOW))?;
        a.and(eax, CR4_MCE as i32)?;
        a.mov(rcx, rbx)?;
        a.and(rcx, !(CR4_MCE as i32))?;
        a.or(rax, rcx)?;
        a.or(eax, (CR4_PAE | CR4_VMXE) as i32)?;
        let mut pae = a.create_label();
        a.bt(ebx, 5)?;
        a.jc(pae)?;
        a.and(rax, !(CR4_PAE as i32))?;
        a.set_label(&mut pae)?;
        a.mov(r8, rax)?;
        vmwrite(a, f::CR4_READ_SHADOW, rbx)?;
        vmwrite(a, f::GUEST_CR4, r8)?;
        a.xor(eax, eax)?;
        a.pop(rbx)?;
        a.ret()?;
        a.set_label(&mut fail)?;
        a.mov(eax, 1u32)?;
        a.pop(rbx)?;
        a.ret()
    })?;

    // kvm_set_cr4(rdi = cr4) (x86.c): the current CR4 with its guest-owned bits decached,
    // kvm_valid_cr4 (one guest CPUID lookup per feature-gated bit), vmx_set_cr4, and an MMU
    // reset only when paging-relevant bits change.
    b.func("kvm_set_cr4", |b| {
        let find = b.label("kvm_find_cpuid_entry");
        let set = b.label("vmx_set_cr4");
        let reset = b.label("kvm_mmu_reset_context");
        let a = &mut b.asm;
        let mut fail = a.create_label();
        a.push(rbx)?;
        a.push(r12)?;
        a.mov(rbx, rdi)?;
        // kvm_read_cr4 -> vmx_decache_cr4_guest_bits.
        vmread(a, rax, f::GUEST_CR4)?;
        a.mov(rcx, vc(v::CR4_GUEST_OWNED))?;
        a.and(rax, rcx)?;
        a.not(rcx)?;
        a.and(rcx, vc(v::CR4))?;
        a.or(rax, rcx)?;
        a.mov(vc(v::CR4), rax)?;
        a.mov(r12, rax)?; // old_cr4
                          // kvm_valid_cr4: (leaf, register offset in the entry, feature bit, CR4 bit).
        for (leaf, reg, bit, crbit) in [
            (1u32, 24u64, 26u32, 18u32), // XSAVE / OSXSAVE
            (7, 20, 7, 20),              // SMEP
            (7, 20, 20, 21),             // SMAP
            (7, 20, 0, 16),              // FSGSBASE
            (7, 24, 3, 22),              // PKU / PKE
            (7, 24, 16, 12),             // LA57
        ] {
            let mut ok = a.create_label();
            a.mov(esi, leaf)?;
            a.xor(edx, edx)?;
            a.call(find)?;
            a.test(rax, rax)?;
            let mut absent = a.create_label();
            a.jz(absent)?;
            a.bt(dword_ptr(rax + reg), bit as i32)?;
            a.jc(ok)?;
            a.set_label(&mut absent)?;
            a.bt(ebx, crbit)?;
            a.jc(fail)?;
            a.set_label(&mut ok)?;
        }
        // Long mode needs PAE.
        a.test(qword_ptr(L::VCPU + v::ARCH_EFER), EFER_LMA as i32)?;
        let mut pae_ok = a.create_label();
        a.jz(pae_ok)?;
        a.bt(ebx, 5)?;
        a.jnc(fail)?;
        a.set_label(&mut pae_ok)?;
        a.mov(rdi, rbx)?;
        a.call(set)?;
        a.test(eax, eax)?;
        a.jnz(fail)?;
        // PGE | PSE | PAE | SMEP | SMAP | PKE changed: the MMU's paging mode changed.
        let mut same = a.create_label();
        a.mov(rax, rbx)?;
        a.xor(rax, r12)?;
        a.test(eax, (1 << 7) | (1 << 4) | (1 << 5) | (1 << 20) | (1 << 21) | (1 << 22))?;
        a.jz(same)?;
        a.call(reset)?;
        a.set_label(&mut same)?;
        a.xor(eax, eax)?;
        a.pop(r12)?;
        a.pop(rbx)?;
        a.ret()?;
        a.set_label(&mut fail)?;
        a.mov(eax, 1u32)?;
        a.pop(r12)?;
        a.pop(rbx)?;
        a.ret()
    })?;

    // vmx_flush_tlb: with EPT, INVEPT single-context for the current root (nothing while the
    // MMU has no root: it is flushed when it gets one).
    b.func("vmx_flush_tlb", |b| {
        let a = &mut b.asm;
        let mut out = a.create_label();
        a.mov(rax, vc(v::MMU_ROOT_HPA))?;
        a.cmp(rax, -1)?;
        a.je(out)?;
        construct_eptp(a)?;
        a.mov(vc(N_DESC), rax)?;
        a.mov(qword_ptr(L::VCPU + N_DESC + 8), 0)?;
        a.mov(eax, 1u32)?;
        a.invept(rax, xmmword_ptr(L::VCPU + N_DESC))?;
        a.set_label(&mut out)?;
        a.ret()
    })?;

    // vmx_set_cr3(rdi = root): kvm_mmu_load's set_cr3 with EPT: EPT_POINTER from the root,
    // a TLB flush for it, GUEST_CR3 = the guest's own CR3.
    b.func("vmx_set_cr3", |b| {
        let flush = b.label("vmx_flush_tlb");
        let a = &mut b.asm;
        a.mov(rax, rdi)?;
        construct_eptp(a)?;
        vmwrite(a, f::EPT_POINTER, rax)?;
        // kvm_read_cr3.
        let mut cached = a.create_label();
        a.test(qword_ptr(L::VCPU + v::REGS_STATE), regs::CR3_AVAIL)?;
        a.jnz(cached)?;
        vmread(a, rax, f::GUEST_CR3)?;
        a.mov(vc(v::ARCH_CR3), rax)?;
        a.or(qword_ptr(L::VCPU + v::REGS_STATE), regs::CR3_AVAIL)?;
        a.set_label(&mut cached)?;
        a.call(flush)?;
        a.mov(rax, vc(v::ARCH_CR3))?;
        vmwrite(a, f::GUEST_CR3, rax)?;
        a.ret()
    })?;

    // __find_msr_index(esi = msr) -> eax = index in guest_msrs, or -1.
    b.func("__find_msr_index", |b| {
        let table = b.label("vmx_msr_index");
        let a = &mut b.asm;
        a.lea(r10, ptr(table))?;
        a.xor(eax, eax)?;
        let mut top = a.create_label();
        let mut none = a.create_label();
        let mut found = a.create_label();
        a.set_label(&mut top)?;
        a.cmp(rax, vc(v::NMSRS))?;
        a.jae(none)?;
        a.imul_3(rcx, rax, 24)?;
        a.mov(ecx, dword_ptr(rcx + (L::VCPU + v::GUEST_MSRS)))?;
        a.cmp(esi, dword_ptr(r10 + rcx * 4))?;
        a.je(found)?;
        a.inc(eax)?;
        a.jmp(top)?;
        a.set_label(&mut none)?;
        a.mov(eax, -1i32)?;
        a.set_label(&mut found)?;
        a.ret()
    })?;

    // setup_msrs: the MSRs switched lazily in long mode moved to the front of guest_msrs
    // (move_msr_up), EFER handled atomically through the VMCS (update_transition_efer), then
    // the MSR bitmap.
    b.func("setup_msrs", |b| {
        let find_index = b.label("__find_msr_index");
        let find = b.label("kvm_find_cpuid_entry");
        let bitmap = b.label("vmx_set_msr_bitmap");
        let a = &mut b.asm;
        a.push(rbx)?;
        a.xor(ebx, ebx)?; // save_nmsrs
        let move_up = |a: &mut CodeAssembler| -> R {
            // move_msr_up(vmx, eax, ebx++): swap two 24-byte entries.
            a.imul_3(rcx, rax, 24)?;
            a.imul_3(rdx, rbx, 24)?;
            for o in [0u64, 8, 16] {
                a.mov(rsi, qword_ptr(rcx + (L::VCPU + v::GUEST_MSRS + o)))?;
                a.mov(rdi, qword_ptr(rdx + (L::VCPU + v::GUEST_MSRS + o)))?;
                a.mov(qword_ptr(rcx + (L::VCPU + v::GUEST_MSRS + o)), rdi)?;
                a.mov(qword_ptr(rdx + (L::VCPU + v::GUEST_MSRS + o)), rsi)?;
            }
            a.inc(ebx)
        };
        let mut not_long = a.create_label();
        a.test(qword_ptr(L::VCPU + v::ARCH_EFER), EFER_LMA as i32)?;
        a.jz(not_long)?;
        for msr in [m::IA32_FMASK, m::IA32_LSTAR, m::IA32_CSTAR] {
            let mut absent = a.create_label();
            a.mov(esi, msr)?;
            a.call(find_index)?;
            a.test(eax, eax)?;
            a.js(absent)?;
            move_up(a)?;
            a.set_label(&mut absent)?;
        }
        // TSC_AUX only for a guest with RDTSCP.
        let mut no_aux = a.create_label();
        a.mov(esi, m::IA32_TSC_AUX)?;
        a.call(find_index)?;
        a.test(eax, eax)?;
        a.js(no_aux)?;
        a.push(rax)?;
        a.mov(esi, 0x8000_0001u32)?;
        a.xor(edx, edx)?;
        a.call(find)?;
        a.mov(rcx, rax)?;
        a.pop(rax)?;
        a.test(rcx, rcx)?;
        a.jz(no_aux)?;
        a.bt(dword_ptr(rcx + 28), 27)?;
        a.jnc(no_aux)?;
        move_up(a)?;
        a.set_label(&mut no_aux)?;
        // STAR only with EFER.SCE.
        let mut no_star = a.create_label();
        a.mov(esi, m::IA32_STAR)?;
        a.call(find_index)?;
        a.test(eax, eax)?;
        a.js(no_star)?;
        a.test(qword_ptr(L::VCPU + v::ARCH_EFER), EFER_SCE as i32)?;
        a.jz(no_star)?;
        move_up(a)?;
        a.set_label(&mut no_star)?;
        a.zero_bytes()?;
        a.set_label(&mut not_long)?;
        // update_transition_efer: clear_atomic_switch_msr(EFER), then, because the guest's
        // EFER differs from the host's, add_atomic_switch_msr: both values into the VMCS
        // and the load-EFER controls back on (with VMWRITEs wherever the shadows differ).
        a.mov(esi, m::IA32_EFER)?;
        a.call(find_index)?;
        // ignore_bits: SCE, LMA and LME, SCE significant in long mode (used only when EFER is
        // switched through the MSR lists instead).
        a.mov(ecx, (EFER_SCE | EFER_LME | EFER_LMA) as u32)?;
        let mut ign = a.create_label();
        a.test(qword_ptr(L::VCPU + v::ARCH_EFER), EFER_LMA as i32)?;
        a.jz(ign)?;
        a.and(ecx, !(EFER_SCE as i32))?;
        a.set_label(&mut ign)?;
        controls_bit(a, v::VM_ENTRY_CTLS_SHADOW, f::VM_ENTRY_CONTROLS, en::VM_ENTRY_LOAD_IA32_EFER, false)?;
        controls_bit(a, v::VM_EXIT_CTLS_SHADOW, f::VM_EXIT_CONTROLS, ex::VM_EXIT_LOAD_IA32_EFER, false)?;
        // Linux compares guest_efer with host_efer here and, when equal, leaves EFER alone;
        // the model always switches EFER through the VMCS, so both values are written and
        // the controls set back on in either case (they differ in the KVM Forum setting:
        // the host kernel has EFER.SCE, the CPUID guest does not).
        a.cmp(rax, vc(v::HOST_EFER))?;
        a.mov(rax, vc(v::ARCH_EFER))?;
        vmwrite(a, f::GUEST_IA32_EFER, rax)?;
        a.mov(rax, vc(v::HOST_EFER))?;
        vmwrite(a, f::HOST_IA32_EFER, rax)?;
        controls_bit(a, v::VM_ENTRY_CTLS_SHADOW, f::VM_ENTRY_CONTROLS, en::VM_ENTRY_LOAD_IA32_EFER, true)?;
        controls_bit(a, v::VM_EXIT_CTLS_SHADOW, f::VM_EXIT_CONTROLS, ex::VM_EXIT_LOAD_IA32_EFER, true)?;
        a.mov(vc(v::SAVE_NMSRS), rbx)?;
        let mut no_bitmap = a.create_label();
        a.test(dword_ptr(L::VCPU + v::VMCS_CONFIG_CPU_BASED), p1::CPU_BASED_USE_MSR_BITMAPS as i32)?;
        a.jz(no_bitmap)?;
        a.call(bitmap)?;
        a.set_label(&mut no_bitmap)?;
        a.pop(rbx)?;
        a.ret()
    })?;

    // vmx_set_efer(rdi = efer): vmx_load_host_state, the IA-32e-mode entry control, the
    // EFER entry in guest_msrs, setup_msrs.
    b.func("vmx_set_efer", |b| {
        let find_index = b.label("__find_msr_index");
        let load_host = b.label("__vmx_load_host_state");
        let setup = b.label("setup_msrs");
        let a = &mut b.asm;
        let mut out = a.create_label();
        a.push(rbx)?;
        a.push(r12)?;
        a.mov(rbx, rdi)?;
        a.mov(esi, m::IA32_EFER)?;
        a.call(find_index)?;
        a.test(eax, eax)?;
        a.js(out)?;
        a.imul_3(r12, rax, 24)?;
        // vmx_load_host_state: preempt_disable; __vmx_load_host_state; preempt_enable.
        a.inc(qword_ptr(L::VCPU + v::PREEMPT_COUNT))?;
        a.call(load_host)?;
        a.dec(qword_ptr(L::VCPU + v::PREEMPT_COUNT))?;
        a.mov(vc(v::ARCH_EFER), rbx)?;
        let mut no_lma = a.create_label();
        let mut data = a.create_label();
        a.test(ebx, EFER_LMA as i32)?;
        a.jz(no_lma)?;
        controls_bit(a, v::VM_ENTRY_CTLS_SHADOW, f::VM_ENTRY_CONTROLS, en::VM_ENTRY_IA32E_MODE, true)?;
        a.mov(rax, rbx)?;
        a.jmp(data)?;
        a.set_label(&mut no_lma)?;
        controls_bit(a, v::VM_ENTRY_CTLS_SHADOW, f::VM_ENTRY_CONTROLS, en::VM_ENTRY_IA32E_MODE, false)?;
        a.mov(rax, rbx)?;
        a.btr(rax, 8)?;
        a.set_label(&mut data)?;
        a.mov(qword_ptr(r12 + (L::VCPU + v::GUEST_MSRS + 8)), rax)?;
        a.call(setup)?;
        a.set_label(&mut out)?;
        a.pop(r12)?;
        a.pop(rbx)?;
        a.ret()
    })?;

    // vmx_set_msr_bitmap: vmcs02's merged bitmap in guest mode, else vmcs01's for the
    // guest's APIC mode (the x2APIC one once "virtualize x2APIC mode" is on).
    b.func("vmx_set_msr_bitmap", |b| {
        let a = &mut b.asm;
        let mut write = a.create_label();
        let mut legacy = a.create_label();
        a.mov(rax, L::MSR_BITMAP_NESTED)?;
        a.cmp(qword_ptr(L::VCPU + v::N_GUEST_MODE), 0)?;
        a.jne(write)?;
        a.test(dword_ptr(L::VCPU + v::VMCS_CONFIG_CPU_BASED), p1::CPU_BASED_ACTIVATE_SECONDARY_CONTROLS as i32)?;
        a.jz(legacy)?;
        vmread(a, rax, f::SECONDARY_VM_EXEC_CONTROL)?;
        a.test(eax, p2::SECONDARY_EXEC_VIRTUALIZE_X2APIC_MODE as i32)?;
        a.jz(legacy)?;
        a.test(qword_ptr(L::VCPU + v::FEAT), feat::APICV as i32)?;
        a.jz(legacy)?;
        a.mov(rax, L::MSR_BITMAP_X2APIC)?;
        a.jmp(write)?;
        a.set_label(&mut legacy)?;
        a.mov(rax, L::MSR_BITMAP_LEGACY)?;
        a.set_label(&mut write)?;
        vmwrite(a, f::MSR_BITMAP, rax)?;
        a.ret()
    })?;

    // vmx_set_rflags(rdi = rflags): vmx_get_rflags first (a VMREAD unless cached).
    b.func("vmx_set_rflags", |b| {
        let a = &mut b.asm;
        let mut cached = a.create_label();
        a.test(qword_ptr(L::VCPU + v::REGS_STATE), regs::RFLAGS_AVAIL)?;
        a.jnz(cached)?;
        a.or(qword_ptr(L::VCPU + v::REGS_STATE), regs::RFLAGS_AVAIL)?;
        vmread(a, rax, f::GUEST_RFLAGS)?;
        a.mov(vc(v::RFLAGS_CACHE), rax)?;
        a.set_label(&mut cached)?;
        a.mov(rax, vc(v::RFLAGS_CACHE))?;
        a.mov(vc(v::RFLAGS_CACHE), rdi)?;
        vmwrite(a, f::GUEST_RFLAGS, rdi)?;
        let mut same = a.create_label();
        a.xor(rax, rdi)?;
        a.bt(eax, 17)?; // EFLAGS.VM changed: emulation_required again
        a.jnc(same)?;
        a.mov(qword_ptr(L::VCPU + v::EMULATION_REQUIRED), 0)?;
        a.set_label(&mut same)?;
        a.ret()
    })?;

    // update_exception_bitmap: this level's exceptions, plus the guest hypervisor's in
    // guest mode.
    b.func("update_exception_bitmap", |b| {
        let a = &mut b.asm;
        let mut write = a.create_label();
        a.mov(eax, EXCEPTION_BITMAP_BASE)?;
        a.cmp(qword_ptr(L::VCPU + v::N_GUEST_MODE), 0)?;
        a.je(write)?;
        a.mov(rcx, vc(v::N_VMCS12))?;
        a.or(eax, dword_ptr(rcx + off12(f::EXCEPTION_BITMAP)))?;
        a.set_label(&mut write)?;
        vmwrite(a, f::EXCEPTION_BITMAP, rax)?;
        a.ret()
    })?;

    // set_cr4_guest_host_mask: the CR4 bits the guest owns, less those L1 intercepts.
    b.func("set_cr4_guest_host_mask", |b| {
        let a = &mut b.asm;
        let mut write = a.create_label();
        a.mov(eax, CR4_GUEST_OWNED_BITS as u32)?;
        a.cmp(qword_ptr(L::VCPU + v::N_GUEST_MODE), 0)?;
        a.je(write)?;
        a.mov(rcx, vc(v::N_VMCS12))?;
        a.mov(rcx, qword_ptr(rcx + off12(f::CR4_GUEST_HOST_MASK)))?;
        a.not(rcx)?;
        a.and(rax, rcx)?;
        a.set_label(&mut write)?;
        a.mov(vc(v::CR4_GUEST_OWNED), rax)?;
        a.not(rax)?;
        vmwrite(a, f::CR4_GUEST_HOST_MASK, rax)?;
        a.ret()
    })?;

    // kvm_set_dr(esi = dr, rdi = value) (x86.c): DR7 kept in vcpu->arch and handed to
    // kvm_x86_ops->set_dr7 (kvm_update_dr7); breakpoint-enable tracking.
    b.func("kvm_set_dr", |b| {
        let set7 = b.label("vmx_set_dr7");
        let a = &mut b.asm;
        let mut out = a.create_label();
        a.cmp(esi, 7)?;
        a.jne(out)?;
        a.mov(rax, rdi)?;
        a.shr(rax, 32)?;
        a.jnz(out)?;
        a.mov(eax, 0xFFFF_2BFFu32)?; // DR7_VOLATILE
        a.and(rax, rdi)?;
        a.or(eax, 0x400)?; // DR7_FIXED_1
        a.mov(vc(v::ARCH_DR7), rax)?;
        a.mov(rdi, rax)?;
        a.push(rdi)?;
        a.call(set7)?;
        a.pop(rdi)?;
        a.and(qword_ptr(L::VCPU + v::SWITCH_DB_REGS), !2)?;
        a.test(edi, 0xFF)?;
        a.jz(out)?;
        a.or(qword_ptr(L::VCPU + v::SWITCH_DB_REGS), 2)?;
        a.set_label(&mut out)?;
        a.xor(eax, eax)?;
        a.ret()
    })?;
    b.func("vmx_set_dr7", |b| {
        let a = &mut b.asm;
        vmwrite(a, f::GUEST_DR7, rdi)?;
        a.ret()
    })?;

    // vmx_set_segment(rdi = kvm_segment, esi = VCPU_SREG_*): base, limit, selector and access
    // rights (vmx_segment_access_rights) through kvm_vmx_segment_fields[].
    b.func("vmx_set_segment", |b| {
        let table = b.label("kvm_vmx_segment_fields");
        let a = &mut b.asm;
        a.mov(qword_ptr(L::VCPU + v::SEGMENT_CACHE), 0)?;
        a.lea(r8, ptr(table))?;
        a.mov(eax, esi)?;
        a.shl(eax, 4)?;
        a.add(r8, rax)?;
        a.mov(rax, qword_ptr(rdi + seg::BASE))?;
        a.mov(r11d, dword_ptr(r8 + 4))?;
        a.vmwrite(r11, rax)?;
        a.mov(eax, dword_ptr(rdi + seg::LIMIT))?;
        a.mov(r11d, dword_ptr(r8 + 8))?;
        a.vmwrite(r11, rax)?;
        a.movzx(eax, word_ptr(rdi + seg::SELECTOR))?;
        a.mov(r11d, dword_ptr(r8))?;
        a.vmwrite(r11, rax)?;
        // Unrestricted guest: the accessed bit set in the type (not for the LDT).
        let mut ldt = a.create_label();
        a.cmp(esi, sreg::LDTR as i32)?;
        a.je(ldt)?;
        a.or(byte_ptr(rdi + seg::TYPE), 1)?;
        a.set_label(&mut ldt)?;
        let mut unusable = a.create_label();
        let mut write = a.create_label();
        a.cmp(byte_ptr(rdi + seg::UNUSABLE), 0)?;
        a.jne(unusable)?;
        a.cmp(byte_ptr(rdi + seg::PRESENT), 0)?;
        a.je(unusable)?;
        a.movzx(eax, byte_ptr(rdi + seg::TYPE))?;
        a.and(eax, 15)?;
        for (field, mask, shift) in [
            (seg::S, 1u32, 4u32),
            (seg::DPL, 3, 5),
            (seg::PRESENT, 1, 7),
            (seg::AVL, 1, 12),
            (seg::L, 1, 13),
            (seg::DB, 1, 14),
            (seg::G, 1, 15),
        ] {
            a.movzx(ecx, byte_ptr(rdi + field))?;
            a.and(ecx, mask as i32)?;
            a.shl(ecx, shift)?;
            a.or(eax, ecx)?;
        }
        a.jmp(write)?;
        a.set_label(&mut unusable)?;
        a.mov(eax, 0x1_0000u32)?;
        a.set_label(&mut write)?;
        a.mov(r11d, dword_ptr(r8 + 12))?;
        a.vmwrite(r11, rax)?;
        a.mov(qword_ptr(L::VCPU + v::EMULATION_REQUIRED), 0)?;
        a.ret()
    })?;
    Ok(())
}

/// Data the helpers use: kvm_vmx_segment_fields[] (selector, base, limit, access-rights
/// encodings per VCPU_SREG_*) and vmx_msr_index[].
pub(super) fn emit_data(b: &mut ProgramBuilder) -> R {
    let segs: [[u32; 4]; 8] = [
        [f::GUEST_ES_SELECTOR, f::GUEST_ES_BASE, f::GUEST_ES_LIMIT, f::GUEST_ES_AR_BYTES],
        [f::GUEST_CS_SELECTOR, f::GUEST_CS_BASE, f::GUEST_CS_LIMIT, f::GUEST_CS_AR_BYTES],
        [f::GUEST_SS_SELECTOR, f::GUEST_SS_BASE, f::GUEST_SS_LIMIT, f::GUEST_SS_AR_BYTES],
        [f::GUEST_DS_SELECTOR, f::GUEST_DS_BASE, f::GUEST_DS_LIMIT, f::GUEST_DS_AR_BYTES],
        [f::GUEST_FS_SELECTOR, f::GUEST_FS_BASE, f::GUEST_FS_LIMIT, f::GUEST_FS_AR_BYTES],
        [f::GUEST_GS_SELECTOR, f::GUEST_GS_BASE, f::GUEST_GS_LIMIT, f::GUEST_GS_AR_BYTES],
        [f::GUEST_TR_SELECTOR, f::GUEST_TR_BASE, f::GUEST_TR_LIMIT, f::GUEST_TR_AR_BYTES],
        [f::GUEST_LDTR_SELECTOR, f::GUEST_LDTR_BASE, f::GUEST_LDTR_LIMIT, f::GUEST_LDTR_AR_BYTES],
    ];
    let bytes: Vec<u8> = segs.iter().flatten().flat_map(|e| e.to_le_bytes()).collect();
    b.data("kvm_vmx_segment_fields", &bytes)?;
    let idx: Vec<u8> = VMX_MSR_INDEX.iter().flat_map(|e| e.to_le_bytes()).collect();
    b.data("vmx_msr_index", &idx)
}

/// Fills the kvm_segment at `v::SEG_SCRATCH` for a flat segment and calls vmx_set_segment
/// (load_vmcs12_host_state's per-segment set-up): `sel_base` gives vmcs12 offsets of the
/// selector and (optionally) base.
pub(super) fn set_host_segment(
    a: &mut CodeAssembler,
    set: CodeLabel,
    sreg_no: u32,
    sel12: u32,
    base12: Option<u32>,
    kind: SegKind,
) -> R {
    let s = L::VCPU + v::SEG_SCRATCH;
    match base12 {
        Some(e) => {
            a.mov(rax, qword_ptr(rbx + off12(e)))?;
            a.mov(qword_ptr(s + seg::BASE), rax)?;
        }
        None => a.mov(qword_ptr(s + seg::BASE), 0)?,
    }
    let (limit, ty, s_bit, l, db, g) = match kind {
        SegKind::Code64 => (0xFFFF_FFFFu32, 11u8, 1u8, 1u8, 0u8, 1u8),
        SegKind::Data => (0xFFFF_FFFF, 3, 1, 0, 1, 1),
        SegKind::Tss => (0x67, 11, 0, 0, 0, 0),
    };
    a.mov(dword_ptr(s + seg::LIMIT), limit)?;
    a.mov(ax, word_ptr(rbx + off12(sel12)))?;
    a.mov(word_ptr(s + seg::SELECTOR), ax)?;
    for (o, val) in [
        (seg::TYPE, ty),
        (seg::PRESENT, 1),
        (seg::DPL, 0),
        (seg::DB, db),
        (seg::S, s_bit),
        (seg::L, l),
        (seg::G, g),
        (seg::AVL, 0),
        (seg::UNUSABLE, 0),
    ] {
        a.mov(byte_ptr(s + o), u32::from(val))?;
    }
    a.mov(rdi, s)?;
    a.mov(esi, sreg_no)?;
    a.call(set)
}

/// The flat segments of SDM 27.5.2 ("Loading Host Segment and Descriptor-Table Registers").
#[derive(Clone, Copy)]
pub(super) enum SegKind {
    Code64,
    Data,
    Tss,
}
