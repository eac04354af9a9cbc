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
    pub const N_DIRTY_VMCS12: u64 = 0x250;
    /// Emulated VMX capability MSRs for the guest, 0x480..=0x491.
    pub const NESTED_CAPS: u64 = 0x300;
    /// CPUID table for the guest: count, then 32-byte entries.
    pub const CPUID_COUNT: u64 = 0x3F8;
    pub const CPUID: u64 = 0x400;

    // ---- host-state switching (vmx_save_host_state / __vmx_load_host_state) ----
    /// vmx->host_state.loaded: the host's segment and KERNEL_GS_BASE state is the guest's.
    pub const HOST_STATE_LOADED: u64 = 0x700;
    pub const HOST_KERNEL_GS_BASE: u64 = 0x708;
    pub const GUEST_KERNEL_GS_BASE: u64 = 0x710;
    pub const HOST_LDT_SEL: u64 = 0x718;
    pub const HOST_FS_SEL: u64 = 0x720;
    pub const HOST_GS_SEL: u64 = 0x728;
    pub const HOST_DS_SEL: u64 = 0x730;
    pub const HOST_ES_SEL: u64 = 0x738;
    pub const FS_RELOAD_NEEDED: u64 = 0x740;
    pub const GS_LDT_RELOAD_NEEDED: u64 = 0x748;
    pub const STAT_HOST_STATE_RELOAD: u64 = 0x750;
    /// The per-CPU __tss_limit_invalid flag and the thread's TIF flags.
    pub const TSS_LIMIT_INVALID: u64 = 0x758;
    pub const THREAD_FLAGS: u64 = 0x760;
    /// per_cpu(current_vmcs): vmcs_load skips the VMPTRLD of the current VMCS.
    pub const CPU_CURRENT_VMCS: u64 = 0x768;
    /// vmx->loaded_vmcs (the VMCS region address) and loaded_vmcs->cpu of vmcs01 / vmcs02
    /// (-1: not loaded on this CPU since its last VMCLEAR).
    pub const LOADED_VMCS: u64 = 0x770;
    pub const VMCS01_CPU: u64 = 0x778;
    pub const VMCS02_CPU: u64 = 0x780;
    pub const PREEMPT_COUNT: u64 = 0x788;
    /// vmx->save_nmsrs, then the guest_msrs array (index into VMX_MSR_INDEX, data, mask: 24
    /// bytes each), then the shared (user-return) MSRs' current values.
    pub const SAVE_NMSRS: u64 = 0x790;
    pub const GUEST_MSRS: u64 = 0x798;
    pub const NMSRS: u64 = 0x828;
    pub const SHARED_MSR_CURR: u64 = 0x830;
    /// host_efer, read once at hardware set-up.
    pub const HOST_EFER: u64 = 0x860;
    /// vmcs_config.cpu_based_exec_ctrl (what cpu_has_vmx_msr_bitmap() tests).
    pub const VMCS_CONFIG_CPU_BASED: u64 = 0x868;
    pub const ASSIGNED_DEVICES: u64 = 0x870;
    pub const HAS_TSC_CONTROL: u64 = 0x878;
    /// vcpu->requests (bit numbers in `req`).
    pub const REQUESTS: u64 = 0x880;

    // ---- vcpu->arch state the register helpers keep ----
    pub const ARCH_CR3: u64 = 0x888;
    pub const ARCH_EFER: u64 = 0x890;
    pub const CR0_GUEST_OWNED: u64 = 0x898;
    pub const CR4_GUEST_OWNED: u64 = 0x8A0;
    pub const RFLAGS_CACHE: u64 = 0x8A8;
    pub const EMULATION_REQUIRED: u64 = 0x8B0;
    pub const VM_ENTRY_CTLS_SHADOW: u64 = 0x8B8;
    pub const VM_EXIT_CTLS_SHADOW: u64 = 0x8C0;
    pub const ARCH_DR7: u64 = 0x8C8;
    pub const SWITCH_DB_REGS: u64 = 0x8D0;
    pub const SEGMENT_CACHE: u64 = 0x8D8;
    pub const NMI_KNOWN_UNMASKED: u64 = 0x8E0;
    /// The per-CPU cr4 shadow (cr4_read_shadow()).
    pub const CR4_SHADOW: u64 = 0x8E8;
    /// loaded_vmcs->vmcs_host_cr3 / vmcs_host_cr4.
    pub const VMCS_HOST_CR3: u64 = 0x8F0;
    pub const VMCS_HOST_CR4: u64 = 0x8F8;
    /// A scratch kvm_segment for vmx_set_segment (struct layout in `vcpu.rs`).
    pub const SEG_SCRATCH: u64 = 0x900;
    pub const HOST_IDT_BASE: u64 = 0x920;
    pub const SIDT_SCRATCH: u64 = 0x928;

    // ---- MMU (mmu.c) ----
    /// vcpu->arch.mmu.root_hpa (-1: INVALID_PAGE).
    pub const MMU_ROOT_HPA: u64 = 0x940;
    /// vcpu->arch.walk_mmu == &nested_mmu (the nested guest's EPT is being shadowed).
    pub const WALK_MMU_NESTED: u64 = 0x948;
    pub const MMU_LOCK: u64 = 0x950;
    pub const MMU_PAGES_USED: u64 = 0x958;
    pub const MMU_PAGES_MAX: u64 = 0x960;
    /// The three mmu_memory_caches' object counts.
    pub const MMU_CACHE_NOBJS: u64 = 0x968;
    /// Shadow-page headers of the roots: sp->root_count of EPT01's root, then of each EPT02
    /// root; sp->unsync / unsync_children words follow each.
    pub const SP_EPT01: u64 = 0x980;
    pub const SP_EPT02: u64 = 0x9A0;
    /// struct kvm_mmu vcpu->arch.mmu and vcpu->arch.nested_mmu (layout in `kernel.rs`).
    pub const KVM_MMU: u64 = 0xA00;
    pub const NESTED_MMU: u64 = 0xB80;

    // ---- pages pinned for vmcs02 (kvm_main.c) ----
    pub const N_VIRTUAL_APIC_PAGE: u64 = 0xD00;
    pub const N_PI_DESC_PAGE: u64 = 0xD08;
    /// The memslot array (kvm->memslots): lru index, count, then slots (layout in `kernel.rs`).
    pub const MEMSLOT_LRU: u64 = 0xD10;
    pub const MEMSLOT_COUNT: u64 = 0xD18;
    pub const MEMSLOTS: u64 = 0xD20;
    /// current->mm->pgd, the page tables get_user_pages walks.
    pub const MM_PGD: u64 = 0xD80;
    pub const MAX_PFN: u64 = 0xD88;
    pub const VIRTUAL_TSC_KHZ: u64 = 0xD90;

    // ---- hrtimer (kernel/time) ----
    pub const HRTIMER_CPU_BASE: u64 = 0xE00;
    pub const TICK_TIMER: u64 = 0xE80;
    /// vmx->nested.preemption_timer.
    pub const PREEMPTION_TIMER: u64 = 0xEC0;
    pub const TIMEKEEPER: u64 = 0xF00;
    /// crash_vmclear_enabled_bitmap and this CPU's loaded_vmcss_on_cpu list head.
    pub const CRASH_VMCLEAR_MASK: u64 = 0xF40;
    pub const LOADED_VMCSS_LIST: u64 = 0xF48;
}

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

/// Bits of `v::REQUESTS` (KVM_REQ_*).
mod req {
    pub const TLB_FLUSH: u32 = 0;
}

/// Bits of `v::REGS_STATE` beyond RIP/RSP: vcpu->arch.regs_avail for RFLAGS and CR3.
mod regs {
    pub const RFLAGS_AVAIL: i32 = 1 << 4;
    pub const CR3_AVAIL: i32 = 1 << 5;
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
    vcpu::emit(&mut b, p)?;
    kernel::emit(&mut b, p)?;
    data::emit(&mut b, p)?;
    let mut prog = b.assemble(&p.name)?;
    data::patch_descriptors(&mut prog);
    Ok(prog)
}

mod data;
mod handlers;
mod init;
mod kernel;
mod nested;
mod run;
mod vcpu;
