//! The KVM model: one hypervisor program, generated as x86-64 code, that runs at any level.
//!
//! It follows KVM 4.13/4.14's VMX code (arch/x86/kvm/vmx.c and x86.c at the commit named in
//! ../shared/reference/kvm-nested-paths.md): the vCPU run loop in KVM's order of work, the exit
//! handlers, and nested VMX for its own guest (VMREAD/VMWRITE emulation against vmcs12 in
//! guest memory, the shadow VMCS and its two syncs, `nested_vmx_run` building vmcs02,
//! `nested_vmx_vmexit` reflecting exits back). Functions are named after the KVM functions
//! they model, so a profile reads like `perf` on a real host.
//!
//! Nothing in here knows what level it runs at: the program discovers its processor through
//! CPUID and the VMX capability MSRs (at L1 and deeper those are its hypervisor's emulation)
//! and decides what to use the way KVM's `setup_vmcs_config` does. Its parameters
//! ([`HvParams`]) are data baked into the image: the shadow-field lists, the pass-through
//! MSRs, the features it uses and exposes, and the knobs for later KVM versions.
//!
//! Simplifications against the real code are listed in ARCHITECTURE.md ("The KVM model").

use iced_x86::code_asm::*;
use iced_x86::IcedError;

use super::builder::{Program, ProgramBuilder};
use super::config::{HvParams, MsrBitmapMerge, Vmcs02Rebuild, Xcr0Load};
use super::layout::{hv as L, CODE_BASE, GUEST_BASE};
use crate::arch::msr as m;
use crate::arch::vmcs_fields::{field as f, VMCS_FIELDS};
use crate::arch::vmx_ctrl::{entry as en, exit as ex, msr as vm, pin, proc1 as p1, proc2 as p2};

type R = Result<(), IcedError>;

/// The revision identifier this hypervisor reports to its guest (KVM's VMCS12_REVISION).
pub const VMCS12_REVISION: u32 = 0x11e5_7ed0;
/// Size of the vmcs12 layout header; fields follow at 8 bytes each.
const VMCS12_HEADER: u64 = 16;

/// Offsets in the vCPU structure at [`L::VCPU`].
mod v {
    /// Guest general-purpose registers, by x86 register number (RSP's slot is unused).
    pub const REGS: u64 = 0x000;
    pub const RIP: u64 = 0x080;
    /// Bit 0: RIP cached, bit 1: RIP dirty, bit 2: RSP cached, bit 3: RSP dirty.
    pub const REGS_STATE: u64 = 0x088;
    pub const RSP: u64 = 0x090;
    /// The guest's CR0 and CR4 as it sees them.
    pub const CR0: u64 = 0x098;
    pub const CR4: u64 = 0x0A0;
    pub const XCR0: u64 = 0x0A8;
    pub const HOST_XCR0: u64 = 0x0B0;
    pub const XCR0_LOADED: u64 = 0x0B8;
    pub const DEBUGCTL: u64 = 0x0C0;
    pub const HOST_DEBUGCTL: u64 = 0x0C8;
    /// Host TSC at which the guest's LAPIC timer fires (-1: not armed).
    pub const HV_DEADLINE: u64 = 0x0D0;
    pub const LVTT: u64 = 0x0D8;
    pub const TSC_DEADLINE: u64 = 0x0E0;
    pub const APIC_BASE: u64 = 0x0E8;
    pub const TSC_OFFSET: u64 = 0x0F0;
    pub const PAT: u64 = 0x0F8;
    /// What this level uses (bits of `feat`).
    pub const FEAT: u64 = 0x100;
    /// Pointer to the launch flag of the loaded VMCS.
    pub const LAUNCHED_PTR: u64 = 0x108;
    pub const LAUNCHED01: u64 = 0x110;
    pub const LAUNCHED02: u64 = 0x118;
    pub const EXIT_REASON: u64 = 0x120;
    pub const IDT_VECTORING: u64 = 0x128;
    pub const HOST_RSP: u64 = 0x130;
    pub const HOST_RSP_VMCS: u64 = 0x138;
    pub const TIMER_RATE: u64 = 0x140;
    pub const PENDING_IRQ: u64 = 0x148;
    pub const ELCR: u64 = 0x150;
    pub const FEATURE_CONTROL: u64 = 0x158;
    pub const PROC2_CAP: u64 = 0x160;
    /// Nested state (this level as the hypervisor of a hypervisor).
    pub const N_VMXON: u64 = 0x200;
    pub const N_VMXON_PTR: u64 = 0x208;
    /// Guest-physical address of the current vmcs12 (-1: none).
    pub const N_CURRENT_PTR: u64 = 0x210;
    /// Its address in this level's physical space.
    pub const N_VMCS12: u64 = 0x218;
    pub const N_GUEST_MODE: u64 = 0x220;
    pub const N_SYNC_SHADOW: u64 = 0x228;
    pub const N_RUN_PENDING: u64 = 0x230;
    /// Root of the shadow EPT02 in use.
    pub const N_EPT02_FOR: u64 = 0x240;
    pub const N_L2_TIMER_DEADLINE: u64 = 0x248;
    pub const N_DIRTY_VMCS12: u64 = 0x250;
    /// Emulated VMX capability MSRs for the guest, 0x480..=0x491.
    pub const NESTED_CAPS: u64 = 0x300;
    /// CPUID table for the guest: count, then 32-byte entries.
    pub const CPUID_COUNT: u64 = 0x3F8;
    pub const CPUID: u64 = 0x400;
}

/// Bits of `v::FEAT`.
mod feat {
    pub const EPT_AD: u64 = 1 << 0;
    pub const PML: u64 = 1 << 1;
    pub const SHADOW: u64 = 1 << 2;
    pub const APICV: u64 = 1 << 3;
    pub const VPID: u64 = 1 << 4;
    pub const HV_TIMER: u64 = 1 << 5;
}

/// Guest-visible APIC MSRs emulated here.
const X2APIC_LVTT: u32 = 0x832;
const X2APIC_VERSION: u32 = 0x803;
/// LVT timer mode bits (17-18) for TSC-deadline mode.
const LVTT_TSC_DEADLINE: u64 = 2 << 17;
/// A port KVM handles in the kernel (the PIC's ELCR, as kvm-unit-tests' vmexit `inl_from_kernel`).
pub const KERNEL_PORT: u16 = 0x4D0;
const PML_ENTITY_NUM: u64 = 512;

fn vc(off: u64) -> AsmMemoryOperand {
    qword_ptr(L::VCPU + off)
}
fn vc32(off: u64) -> AsmMemoryOperand {
    dword_ptr(L::VCPU + off)
}
fn reg_slot(r: u64) -> u64 {
    v::REGS + r * 8
}

/// VMREAD of a constant field into `dst` (r11 holds the encoding).
fn vmread(a: &mut CodeAssembler, dst: AsmRegister64, enc: u32) -> R {
    a.mov(r11d, enc)?;
    a.vmread(dst, r11)
}
/// VMWRITE of `src` into a constant field (r11 holds the encoding).
fn vmwrite(a: &mut CodeAssembler, enc: u32, src: AsmRegister64) -> R {
    a.mov(r11d, enc)?;
    a.vmwrite(r11, src)
}
/// VMWRITE of a constant.
fn vmwrite_imm(a: &mut CodeAssembler, enc: u32, val: u64) -> R {
    a.mov(rax, val)?;
    vmwrite(a, enc, rax)
}

/// Byte offset of a field in vmcs12 (this program's own layout: position in the field table).
pub fn vmcs12_offset(enc: u32) -> Option<u64> {
    VMCS_FIELDS.iter().position(|x| x.encoding == enc).map(|i| VMCS12_HEADER + 8 * i as u64)
}
fn off12(enc: u32) -> u64 {
    vmcs12_offset(enc).unwrap_or_else(|| panic!("field {enc:#x} is in the table"))
}
/// Slot of an encoding in the vmcs12 lookup table: (width, type, index) packed into 13 bits.
fn lookup_slot(enc: u32) -> u32 {
    (((enc >> 13) & 3) << 11) | (((enc >> 10) & 3) << 9) | ((enc >> 1) & 0x1FF)
}

/// The VMX capability masks this hypervisor applies to its hardware's MSRs to get what it
/// reports to its guest (KVM's `nested_vmx_setup_ctls_msrs`): (msr, and, or) triples.
fn nested_cap_masks(p: &HvParams) -> Vec<(u32, u64, u64)> {
    let e = &p.exposes;
    let hi = |x: u32| u64::from(x) << 32;
    let pin_ok = pin::PIN_BASED_EXT_INTR_MASK
        | pin::PIN_BASED_NMI_EXITING
        | pin::PIN_BASED_VIRTUAL_NMIS
        | if e.preemption_timer { pin::PIN_BASED_VMX_PREEMPTION_TIMER } else { 0 }
        | pin::DEFAULT1;
    let proc_ok = p1::CPU_BASED_INTR_WINDOW_EXITING
        | p1::CPU_BASED_USE_TSC_OFFSETTING
        | p1::CPU_BASED_HLT_EXITING
        | p1::CPU_BASED_INVLPG_EXITING
        | p1::CPU_BASED_MWAIT_EXITING
        | p1::CPU_BASED_RDPMC_EXITING
        | p1::CPU_BASED_RDTSC_EXITING
        | p1::CPU_BASED_CR3_LOAD_EXITING
        | p1::CPU_BASED_CR3_STORE_EXITING
        | p1::CPU_BASED_CR8_LOAD_EXITING
        | p1::CPU_BASED_CR8_STORE_EXITING
        | p1::CPU_BASED_TPR_SHADOW
        | p1::CPU_BASED_NMI_WINDOW_EXITING
        | p1::CPU_BASED_MOV_DR_EXITING
        | p1::CPU_BASED_UNCOND_IO_EXITING
        | p1::CPU_BASED_USE_IO_BITMAPS
        | p1::CPU_BASED_MONITOR_TRAP_FLAG
        | p1::CPU_BASED_USE_MSR_BITMAPS
        | p1::CPU_BASED_MONITOR_EXITING
        | p1::CPU_BASED_PAUSE_EXITING
        | p1::CPU_BASED_ACTIVATE_SECONDARY_CONTROLS
        | p1::DEFAULT1;
    let mut p2_ok = p2::SECONDARY_EXEC_ENABLE_RDTSCP | p2::SECONDARY_EXEC_DESC | p2::SECONDARY_EXEC_WBINVD_EXITING;
    if e.ept {
        p2_ok |= p2::SECONDARY_EXEC_ENABLE_EPT | p2::SECONDARY_EXEC_UNRESTRICTED_GUEST;
    }
    if e.vpid {
        p2_ok |= p2::SECONDARY_EXEC_ENABLE_VPID;
    }
    if e.apicv {
        p2_ok |= p2::SECONDARY_EXEC_VIRTUALIZE_X2APIC_MODE
            | p2::SECONDARY_EXEC_APIC_REGISTER_VIRT
            | p2::SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY;
    }
    if e.vmcs_shadowing {
        p2_ok |= p2::SECONDARY_EXEC_SHADOW_VMCS;
    }
    let exit_ok = ex::VM_EXIT_HOST_ADDR_SPACE_SIZE
        | ex::VM_EXIT_ACK_INTR_ON_EXIT
        | ex::VM_EXIT_SAVE_IA32_PAT
        | ex::VM_EXIT_LOAD_IA32_PAT
        | ex::VM_EXIT_SAVE_IA32_EFER
        | ex::VM_EXIT_LOAD_IA32_EFER
        | if e.preemption_timer { ex::VM_EXIT_SAVE_VMX_PREEMPTION_TIMER } else { 0 }
        | ex::DEFAULT1;
    let entry_ok = en::VM_ENTRY_IA32E_MODE | en::VM_ENTRY_LOAD_IA32_PAT | en::VM_ENTRY_LOAD_IA32_EFER | en::DEFAULT1;
    use crate::arch::vmx_ctrl::ept_vpid_cap as c;
    let mut ept_ok = 0;
    if e.ept {
        ept_ok |= c::EXECUTE_ONLY
            | c::PAGE_WALK_4
            | c::MEM_TYPE_WB
            | c::PAGE_2M
            | c::INVEPT
            | c::INVEPT_SINGLE_CONTEXT
            | c::INVEPT_ALL_CONTEXT;
    }
    if e.vpid {
        ept_ok |= c::INVVPID | c::INVVPID_SINGLE_CONTEXT | c::INVVPID_ALL_CONTEXT;
    }
    use crate::arch::vmx_ctrl::{vmx_basic as b, vmx_misc as mi};
    let keep_lo = 0xFFFF_FFFFu64;
    vec![
        (
            vm::IA32_VMX_BASIC,
            !(b::REVISION_ID_MASK | (b::VMCS_SIZE_MASK << b::VMCS_SIZE_SHIFT) | b::DUAL_MONITOR),
            u64::from(VMCS12_REVISION) | (0x1000 << b::VMCS_SIZE_SHIFT),
        ),
        (vm::IA32_VMX_PINBASED_CTLS, hi(pin_ok) | keep_lo, 0),
        (vm::IA32_VMX_PROCBASED_CTLS, hi(proc_ok) | keep_lo, 0),
        (vm::IA32_VMX_EXIT_CTLS, hi(exit_ok) | keep_lo, 0),
        (vm::IA32_VMX_ENTRY_CTLS, hi(entry_ok) | keep_lo, 0),
        (vm::IA32_VMX_MISC, mi::SAVE_EFER_LMA, 5 | mi::ACTIVITY_HLT),
        (vm::IA32_VMX_CR0_FIXED0, u64::MAX, 0),
        (vm::IA32_VMX_CR0_FIXED1, u64::MAX, 0),
        (vm::IA32_VMX_CR4_FIXED0, u64::MAX, 0),
        (vm::IA32_VMX_CR4_FIXED1, u64::MAX, 0),
        (vm::IA32_VMX_VMCS_ENUM, u64::MAX, 0),
        (vm::IA32_VMX_PROCBASED_CTLS2, hi(p2_ok), 0),
        (vm::IA32_VMX_EPT_VPID_CAP, ept_ok, 0),
        (vm::IA32_VMX_TRUE_PINBASED_CTLS, hi(pin_ok) | keep_lo, 0),
        (vm::IA32_VMX_TRUE_PROCBASED_CTLS, hi(proc_ok) | keep_lo, 0),
        (vm::IA32_VMX_TRUE_EXIT_CTLS, hi(exit_ok) | keep_lo, 0),
        (vm::IA32_VMX_TRUE_ENTRY_CTLS, hi(entry_ok) | keep_lo, 0),
        (vm::IA32_VMX_VMFUNC, 0, 0),
    ]
}

/// Generates the KVM program with parameters `p`, for a guest of `guest_size` bytes.
pub fn build(p: &HvParams, guest_size: u64) -> Result<Program, IcedError> {
    let mut b = ProgramBuilder::new(CODE_BASE)?;
    init::emit(&mut b, p, guest_size)?;
    run::emit(&mut b, p)?;
    handlers::emit(&mut b, p, guest_size)?;
    nested::emit(&mut b, p, guest_size)?;
    data::emit(&mut b, p)?;
    let mut prog = b.assemble(&p.name)?;
    data::patch_descriptors(&mut prog);
    Ok(prog)
}

mod data;
mod handlers;
mod init;
mod nested;
mod run;
