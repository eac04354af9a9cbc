//! The VMX unit: VMX operation (off, root, non-root), the capabilities the CPU model
//! advertises, the processor-side cache of VMCSes, and the VMX instructions, VM entries and
//! VM exits built on them (Intel SDM Vol. 3C, chapters 24-31).
//!
//! Design. [`Vmx`] holds the state the SDM gives a logical processor: whether it is in VMX
//! operation, the VMXON pointer, the current-VMCS pointer and a small cache of loaded
//! VMCSes. A cached VMCS is authoritative: its field values live in a `Box<[u64]>` indexed by
//! the field's position in [`VMCS_FIELDS`], and guest writes to the region in memory are not
//! seen until the VMCS is loaded again after VMCLEAR. VMCLEAR (and eviction from the cache)
//! writes the data back into the region in this unit's own layout: the 4-byte revision id
//! (bit 31 the shadow-VMCS indicator), the 4-byte VMX-abort indicator, one launch-state byte
//! at offset 8, then the supported fields packed by width from offset 16.
//!
//! `instr.rs` has the VMX instructions, `entry.rs` VM entry (checks in the SDM's order, then
//! guest-state loading and event injection), `exit.rs` VM exits (saving guest state, loading
//! host state) and every intercept decision the interpreter's handlers ask for; `apicv.rs`
//! interrupts in non-root operation (external-interrupt and interrupt-window exits, the
//! TPR shadow, APIC virtualization and virtual-interrupt delivery); `nmi.rs` NMIs in
//! non-root operation (NMI exiting, virtual NMIs, NMI-window exiting); `vmfunc.rs` VMFUNC
//! with EPTP switching (`ept.rs` EPT, `vpid.rs` VPIDs and the TLB contexts). A handler in
//! VMX non-root operation that must exit calls [`Machine::vm_exit`] (which leaves RIP at the
//! host RIP) and returns `Ok(())`; every instruction that can exit ends its decoded block,
//! so the run loop picks up the new RIP. The fast path of an intercepted handler is one
//! predictable branch on `self.vmx.non_root`.
//!
//! # Capabilities not offered
//!
//! Software never sees a half-implemented control: RDMSR of the capability MSRs returns the
//! model's value with the allowed-1 bits of unimplemented features cleared (and VMCS fields
//! that exist only for those features give VM-instruction error 12). Cleared:
//!
//! - pin-based: process posted interrupts (7): posted-interrupt processing is not
//!   implemented (`apicv.rs`). NMI exiting (3) and virtual NMIs (5) are offered (`nmi.rs`);
//! - primary processor-based: monitor trap flag (27) and activate tertiary controls (17).
//!   Interrupt-window exiting (2) and use TPR shadow (21) are offered (`apicv.rs`), and
//!   NMI-window exiting (22) (`nmi.rs`);
//! - secondary: everything except enable EPT (1, see `ept.rs`), enable RDTSCP (3), enable
//!   VPID (5, see `vpid.rs`), WBINVD exiting (6), enable INVPCID (12), and where the model
//!   has them, VMCS shadowing (14), enable PML (17, see `ept.rs`), enable VM functions (13,
//!   see `vmfunc.rs`; only together with EPT and EPTP switching), virtualize x2APIC mode
//!   (4), APIC-register virtualization (8) and virtual-interrupt delivery (9) (`apicv.rs`).
//!   Cleared: unrestricted guest (7: real-mode and paging-off guests under EPT are not
//!   modeled) and virtualize APIC accesses (0: there is no APIC-access page, as the APIC's
//!   xAPIC MMIO page is not modeled);
//! - VM-exit: load IA32_PERF_GLOBAL_CTRL (12), clear IA32_BNDCFGS (23) and everything from
//!   bit 24 up (PT, LBR, CET, PKRS, secondary controls): none of that state is modeled;
//! - VM-entry: load IA32_PERF_GLOBAL_CTRL (13) and everything from bit 16 up;
//! - IA32_VMX_BASIC: dual-monitor treatment of SMIs (49, no SMM);
//! - IA32_VMX_MISC: activity states shutdown (7) and wait-for-SIPI (8), Intel PT in VMX (14)
//!   and RDMSR of IA32_SMBASE in SMM (15);
//! - IA32_VMX_EPT_VPID_CAP keeps only what `ept.rs` and `vpid.rs` implement: execute-only,
//!   4-level walks, UC/WB paging structures, 2-MiB and 1-GiB pages, INVEPT single- and
//!   all-context, accessed/dirty flags (21); INVVPID (32) with its four types (40-43).
//!   Cleared: 5-level walks and advanced EPT-violation information;
//! - IA32_VMX_VMFUNC keeps only EPTP switching (bit 0, `vmfunc.rs`). Where the model lacks
//!   it, or EPT, the MSR reads 0 and "enable VM functions" is cleared as well. The
//!   VM-function controls and EPTP-list address exist exactly when offered; the EPTP index
//!   (a #VE field) never does.
//!
//! EPT deviations: the guest PDPTE fields (GUEST_PDPTR0-3) exist but a PAE-paging guest under
//! EPT reads its PDPTEs through the EPT at each page walk instead of from the fields loaded at
//! VM entry (and they are not saved at VM exit); INVEPT of either type flushes the whole TLB
//! (every VPID). The TLB does not track PCIDs: INVPCID and MOV CR3 invalidate for the whole
//! current VPID, more than required.

mod apicv;
mod entry;
pub use entry::NOT_CHECK_INPUTS;
pub(crate) mod ept;
mod exit;
pub(crate) use exit::exception_vectoring;
pub(crate) mod instr;
mod nmi;
pub(crate) mod vmfunc;
pub(crate) mod vpid;

use crate::arch::vmcs_fields::{self, field as f, FieldWidth, VMCS_FIELDS};
use crate::arch::vmx_ctrl::{self, msr as vmsr, proc2};
use crate::cpu_model::CpuModel;

use super::Machine;

/// The VMX events an observer sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmxEvent {
    /// A successful VM entry (VMLAUNCH when `launch`, else VMRESUME).
    Entry { vmcs: u64, launch: bool },
    /// A VM exit, including VM-entry failures (exit reason with bit 31 set).
    Exit { vmcs: u64, reason: u32, qualification: u64 },
    /// A VMX instruction that failed with VMfailValid(error) or VMfailInvalid (error 0).
    Fail { vmcs: u64, error: u32 },
}

/// An observer of VMX events (for tracing layers above the machine).
pub type VmxObserver = Box<dyn FnMut(&VmxEvent)>;

/// One VMCS held in the processor's cache.
#[derive(Clone, Debug)]
pub struct Vmcs {
    /// Physical address of the region.
    pub addr: u64,
    /// Field values by position in [`VMCS_FIELDS`].
    pub vals: Box<[u64]>,
    /// Launch state: `true` after VMLAUNCH, `false` after VMCLEAR.
    pub launched: bool,
    /// The shadow-VMCS indicator of the region.
    pub shadow: bool,
    /// Passed the VM-entry consistency checks and not written by VMWRITE since: like
    /// VMCS-caching processors (Westmere and later), the next entry skips the checks.
    pub checked: bool,
    /// The simulator's own memo (it changes no outcome and no price): the full checks passed
    /// and no field they read has changed value since, except GUEST_RIP and GUEST_RFLAGS,
    /// so an entry that must check again (`checked` false) need only re-run the checks on
    /// those and on the link pointer (`entry.rs`, `check_guest_volatile`).
    pub valid: bool,
}

/// VMCSes kept in the cache before the least recently loaded is written back.
const CACHE_SIZE: usize = 16;
/// Offset of the launch-state byte in a region (this unit's layout).
const LAUNCH_OFFSET: u64 = 8;
/// Offset of the first field in a region.
const DATA_OFFSET: u64 = 16;

/// Capabilities derived once from the CPU model (already masked).
#[derive(Clone, Debug)]
pub struct Caps {
    /// IA32_VMX_BASIC .. IA32_VMX_VMFUNC (0x480..=0x491) as software reads them.
    pub msrs: [u64; 18],
    /// Whether each field of [`VMCS_FIELDS`] exists on this processor.
    pub supported: Box<[bool]>,
    /// Byte offset of each supported field in a region, `u16::MAX` for unsupported fields.
    pub layout: Box<[u16]>,
}

impl Caps {
    pub fn msr(&self, index: u32) -> u64 {
        self.msrs[(index - vmsr::IA32_VMX_BASIC) as usize]
    }
    pub fn basic(&self) -> u64 {
        self.msr(vmsr::IA32_VMX_BASIC)
    }
    pub fn revision(&self) -> u32 {
        vmx_ctrl::vmx_basic::revision_id(self.basic())
    }
    pub fn misc(&self) -> u64 {
        self.msr(vmsr::IA32_VMX_MISC)
    }
    /// Allowed-1 settings of a control word's capability MSR.
    pub fn allowed1(&self, index: u32) -> u32 {
        (self.msr(index) >> 32) as u32
    }
    /// Allowed-0 settings (bits that must be 1).
    pub fn allowed0(&self, index: u32) -> u32 {
        self.msr(index) as u32
    }
    pub fn proc2_allowed(&self, bit: u32) -> bool {
        let p1 = self.allowed1(vmsr::IA32_VMX_PROCBASED_CTLS);
        p1 & vmx_ctrl::proc1::CPU_BASED_ACTIVATE_SECONDARY_CONTROLS != 0
            && self.allowed1(vmsr::IA32_VMX_PROCBASED_CTLS2) & bit != 0
    }

    fn new(model: &CpuModel) -> Caps {
        let mut msrs = [0u64; 18];
        for (i, v) in msrs.iter_mut().enumerate() {
            *v = model.msr(vmsr::IA32_VMX_BASIC + i as u32).unwrap_or(0);
        }
        let keep_hi = |v: u64, mask: u32| v & (0xFFFF_FFFF | (u64::from(mask) << 32));
        let idx = |m: u32| (m - vmsr::IA32_VMX_BASIC) as usize;
        use vmx_ctrl::{entry as en, exit as ex, pin, proc1 as p1};
        let pin_ok = pin::DEFAULT1
            | pin::PIN_BASED_EXT_INTR_MASK
            | pin::PIN_BASED_NMI_EXITING
            | pin::PIN_BASED_VMX_PREEMPTION_TIMER
            // nmi.rs
            | pin::PIN_BASED_VIRTUAL_NMIS;
        let p1_ok = p1::DEFAULT1
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
            | p1::CPU_BASED_MOV_DR_EXITING
            | p1::CPU_BASED_UNCOND_IO_EXITING
            | p1::CPU_BASED_USE_IO_BITMAPS
            | p1::CPU_BASED_USE_MSR_BITMAPS
            | p1::CPU_BASED_MONITOR_EXITING
            | p1::CPU_BASED_PAUSE_EXITING
            | p1::CPU_BASED_ACTIVATE_SECONDARY_CONTROLS
            // apicv.rs
            | p1::CPU_BASED_INTR_WINDOW_EXITING
            | p1::CPU_BASED_TPR_SHADOW
            // nmi.rs
            | p1::CPU_BASED_NMI_WINDOW_EXITING;
        let p2_ok = proc2::SECONDARY_EXEC_ENABLE_RDTSCP
            | proc2::SECONDARY_EXEC_WBINVD_EXITING
            | proc2::SECONDARY_EXEC_ENABLE_INVPCID
            | proc2::SECONDARY_EXEC_SHADOW_VMCS
            | proc2::SECONDARY_EXEC_ENABLE_EPT
            | proc2::SECONDARY_EXEC_ENABLE_VPID
            | proc2::SECONDARY_EXEC_ENABLE_PML
            // vmfunc.rs (kept only with EPT and EPTP switching, below)
            | proc2::SECONDARY_EXEC_ENABLE_VMFUNC
            // apicv.rs
            | proc2::SECONDARY_EXEC_VIRTUALIZE_X2APIC_MODE
            | proc2::SECONDARY_EXEC_APIC_REGISTER_VIRT
            | proc2::SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY;
        let exit_ok = ex::DEFAULT1
            | ex::VM_EXIT_SAVE_DEBUG_CONTROLS
            | ex::VM_EXIT_HOST_ADDR_SPACE_SIZE
            | ex::VM_EXIT_ACK_INTR_ON_EXIT
            | ex::VM_EXIT_SAVE_IA32_PAT
            | ex::VM_EXIT_LOAD_IA32_PAT
            | ex::VM_EXIT_SAVE_IA32_EFER
            | ex::VM_EXIT_LOAD_IA32_EFER
            | ex::VM_EXIT_SAVE_VMX_PREEMPTION_TIMER;
        let entry_ok = en::DEFAULT1
            | en::VM_ENTRY_LOAD_DEBUG_CONTROLS
            | en::VM_ENTRY_IA32E_MODE
            | en::VM_ENTRY_SMM
            | en::VM_ENTRY_DEACT_DUAL_MONITOR
            | en::VM_ENTRY_LOAD_IA32_PAT
            | en::VM_ENTRY_LOAD_IA32_EFER;
        for (m, ok) in [
            (vmsr::IA32_VMX_PINBASED_CTLS, pin_ok),
            (vmsr::IA32_VMX_TRUE_PINBASED_CTLS, pin_ok),
            (vmsr::IA32_VMX_PROCBASED_CTLS, p1_ok),
            (vmsr::IA32_VMX_TRUE_PROCBASED_CTLS, p1_ok),
            (vmsr::IA32_VMX_PROCBASED_CTLS2, p2_ok),
            (vmsr::IA32_VMX_EXIT_CTLS, exit_ok),
            (vmsr::IA32_VMX_TRUE_EXIT_CTLS, exit_ok),
            (vmsr::IA32_VMX_ENTRY_CTLS, entry_ok),
            (vmsr::IA32_VMX_TRUE_ENTRY_CTLS, entry_ok),
        ] {
            msrs[idx(m)] = keep_hi(msrs[idx(m)], ok);
        }
        use vmx_ctrl::{vmx_basic as vb, vmx_misc as vm};
        msrs[idx(vmsr::IA32_VMX_BASIC)] &= !vb::DUAL_MONITOR;
        msrs[idx(vmsr::IA32_VMX_MISC)] &=
            !(vm::ACTIVITY_SHUTDOWN | vm::ACTIVITY_WAIT_SIPI | vm::INTEL_PT | vm::RDMSR_IN_SMM);
        // EPT as implemented (ept.rs), VPIDs and INVVPID as implemented (vpid.rs).
        let p2_allowed1 = (msrs[idx(vmsr::IA32_VMX_PROCBASED_CTLS2)] >> 32) as u32;
        let mut cap_ok = 0;
        if p2_allowed1 & proc2::SECONDARY_EXEC_ENABLE_EPT != 0 {
            cap_ok |= ept::IMPLEMENTED_CAPS;
        }
        if p2_allowed1 & proc2::SECONDARY_EXEC_ENABLE_VPID != 0 {
            cap_ok |= vpid::IMPLEMENTED_CAPS;
        }
        msrs[idx(vmsr::IA32_VMX_EPT_VPID_CAP)] &= cap_ok;
        // VM functions (vmfunc.rs): EPTP switching only, and only with EPT. Without both
        // "enable VM functions" is cleared, as a control with no function behind it.
        let vmfunc = msrs[idx(vmsr::IA32_VMX_VMFUNC)] & vmfunc::IMPLEMENTED_FUNCTIONS;
        let ept_ok = p2_allowed1 & proc2::SECONDARY_EXEC_ENABLE_EPT != 0;
        if p2_allowed1 & proc2::SECONDARY_EXEC_ENABLE_VMFUNC != 0 && ept_ok && vmfunc != 0 {
            msrs[idx(vmsr::IA32_VMX_VMFUNC)] = vmfunc;
        } else {
            msrs[idx(vmsr::IA32_VMX_VMFUNC)] = 0;
            msrs[idx(vmsr::IA32_VMX_PROCBASED_CTLS2)] &= !(u64::from(proc2::SECONDARY_EXEC_ENABLE_VMFUNC) << 32);
        }
        let mut caps = Caps { msrs, supported: Box::new([]), layout: Box::new([]) };
        let supported: Box<[bool]> = VMCS_FIELDS.iter().map(|fi| caps.field_exists(fi.encoding)).collect();
        // Pack the supported fields by width, widest first, so every field is aligned.
        let mut layout = vec![u16::MAX; VMCS_FIELDS.len()];
        let mut off = DATA_OFFSET;
        for w in [FieldWidth::W64, FieldWidth::Natural, FieldWidth::W32, FieldWidth::W16] {
            for (i, fi) in VMCS_FIELDS.iter().enumerate() {
                if supported[i] && fi.width() == w {
                    layout[i] = off as u16;
                    off += width_bytes(w);
                }
            }
        }
        caps.supported = supported;
        caps.layout = layout.into_boxed_slice();
        caps
    }

    /// Whether a field exists on this (masked) processor.
    fn field_exists(&self, enc: u32) -> bool {
        let shadow = self.proc2_allowed(proc2::SECONDARY_EXEC_SHADOW_VMCS);
        let ept = self.proc2_allowed(proc2::SECONDARY_EXEC_ENABLE_EPT);
        match enc {
            f::VIRTUAL_PROCESSOR_ID => self.proc2_allowed(proc2::SECONDARY_EXEC_ENABLE_VPID),
            f::PML_ADDRESS | f::GUEST_PML_INDEX => self.proc2_allowed(proc2::SECONDARY_EXEC_ENABLE_PML),
            f::EPT_POINTER
            | f::GUEST_PHYSICAL_ADDRESS
            | f::GUEST_PDPTR0
            | f::GUEST_PDPTR1
            | f::GUEST_PDPTR2
            | f::GUEST_PDPTR3 => ept,
            f::VMREAD_BITMAP | f::VMWRITE_BITMAP => shadow,
            // SDM Appendix B: the VM-function controls exist with "enable VM functions",
            // the EPTP-list address with the EPTP-switching VM function.
            f::VM_FUNCTION_CONTROL => self.proc2_allowed(proc2::SECONDARY_EXEC_ENABLE_VMFUNC),
            f::EPTP_LIST_ADDRESS => {
                self.proc2_allowed(proc2::SECONDARY_EXEC_ENABLE_VMFUNC)
                    && self.msr(vmsr::IA32_VMX_VMFUNC) & vmx_ctrl::vmfunc::VMX_VMFUNC_EPTP_SWITCHING != 0
            }
            f::GUEST_INTR_STATUS
            | f::EOI_EXIT_BITMAP0
            | f::EOI_EXIT_BITMAP1
            | f::EOI_EXIT_BITMAP2
            | f::EOI_EXIT_BITMAP3 => self.proc2_allowed(proc2::SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY),
            f::VIRTUAL_APIC_PAGE_ADDR | f::TPR_THRESHOLD => {
                self.allowed1(vmsr::IA32_VMX_PROCBASED_CTLS) & vmx_ctrl::proc1::CPU_BASED_TPR_SHADOW != 0
            }
            f::IO_BITMAP_A
            | f::IO_BITMAP_B
            | f::MSR_BITMAP
            | f::VM_EXIT_MSR_STORE_ADDR
            | f::VM_EXIT_MSR_LOAD_ADDR
            | f::VM_ENTRY_MSR_LOAD_ADDR
            | f::TSC_OFFSET
            | f::VMCS_LINK_POINTER
            | f::GUEST_IA32_DEBUGCTL
            | f::GUEST_IA32_PAT
            | f::GUEST_IA32_EFER
            | f::HOST_IA32_PAT
            | f::HOST_IA32_EFER => true,
            // 16-bit fields: only the selectors.
            0x0800..=0x080E | 0x0C00..=0x0C0C => true,
            // 32-bit controls up to the secondary controls, except the TPR threshold.
            0x4000..=0x401A | f::SECONDARY_VM_EXEC_CONTROL => true,
            // Read-only data, guest limits/ARs/interruptibility/activity/SMBASE/SYSENTER_CS
            // and the preemption timer, host SYSENTER_CS.
            0x4400..=0x440E | 0x4800..=0x482A | f::VMX_PREEMPTION_TIMER_VALUE | f::HOST_IA32_SYSENTER_CS => true,
            // Natural-width: masks, shadows, CR3 targets, exit data, guest state up to
            // SYSENTER_EIP, host state up to RIP.
            0x6000..=0x600E | 0x6400..=0x640A | 0x6800..=0x6826 | 0x6C00..=0x6C16 => true,
            _ => false,
        }
    }
}

fn width_bytes(w: FieldWidth) -> u64 {
    match w {
        FieldWidth::W16 => 2,
        FieldWidth::W32 => 4,
        FieldWidth::W64 | FieldWidth::Natural => 8,
    }
}

/// Position of a FULL encoding in [`VMCS_FIELDS`] (callers pass known constants).
#[inline]
pub(crate) fn fi(enc: u32) -> usize {
    // A direct table over the 15 meaningful encoding bits (VMREAD/VMWRITE and every VM
    // entry and exit look fields up, so this is hot); unknown encodings map to entry 0 as
    // the binary search this replaces did.
    static TABLE: std::sync::OnceLock<Box<[u16]>> = std::sync::OnceLock::new();
    let t = TABLE.get_or_init(|| {
        let mut t = vec![0u16; 1 << 15].into_boxed_slice();
        for (i, f) in VMCS_FIELDS.iter().enumerate() {
            if let Some(slot) = t.get_mut(f.encoding as usize) {
                *slot = i as u16;
            }
        }
        t
    });
    if enc >> 15 != 0 {
        return 0;
    }
    usize::from(t[enc as usize])
}

/// The VMX state of the logical processor.
pub struct Vmx {
    /// In VMX non-root operation (the one flag the interpreter's fast paths test).
    pub non_root: bool,
    /// In VMX operation (root or non-root).
    pub on: bool,
    pub vmxon_ptr: u64,
    /// The current-VMCS pointer; `u64::MAX` when there is none.
    pub current: u64,
    cache: Vec<Vmcs>,
    /// Index in `cache` where the current VMCS was last found.
    cur_hint: std::cell::Cell<usize>,
    pub caps: Caps,
    /// Millicycle count at which the VMX-preemption timer expires (`u64::MAX`: not armed).
    pub deadline: u64,
    /// CR2 before a #PF raised in VMX non-root operation (a #PF that exits leaves CR2).
    pub(crate) pf_old_cr2: u64,
    /// The current guest runs with "enable EPT" (set by VM entry, cleared by VM exit).
    pub ept: bool,
    /// The EPTP of the current guest (valid while `ept`).
    pub eptp: u64,
    /// An EPT violation or misconfiguration waiting for its fault to unwind (ept.rs).
    pub(crate) ept_pending: Option<ept::PendingExit>,
    /// A pending virtual interrupt is recognized (apicv.rs).
    pub(crate) vintr: bool,
    /// Virtual-NMI blocking of the current guest (nmi.rs; meaningful with "virtual NMIs").
    pub(crate) vnmi_blocked: bool,
    /// The instruction that just faulted was an IRET that unblocked NMIs (or virtual NMIs):
    /// bit 12 of the exit information if the fault exits (nmi.rs). Set by IRET, taken by
    /// `raise`.
    pub(crate) iret_unblocked: bool,
    observer: Option<VmxObserver>,
}

impl std::fmt::Debug for Vmx {
    fn fmt(&self, fmt: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        fmt.debug_struct("Vmx")
            .field("non_root", &self.non_root)
            .field("on", &self.on)
            .field("vmxon_ptr", &self.vmxon_ptr)
            .field("current", &self.current)
            .finish()
    }
}

impl Vmx {
    pub fn new(model: &CpuModel) -> Vmx {
        Vmx {
            non_root: false,
            on: false,
            vmxon_ptr: u64::MAX,
            current: u64::MAX,
            cache: Vec::new(),
            cur_hint: std::cell::Cell::new(0),
            caps: Caps::new(model),
            deadline: u64::MAX,
            pf_old_cr2: 0,
            ept: false,
            eptp: 0,
            ept_pending: None,
            vintr: false,
            vnmi_blocked: false,
            iret_unblocked: false,
            observer: None,
        }
    }

    fn slot(&self, addr: u64) -> Option<usize> {
        self.cache.iter().position(|v| v.addr == addr)
    }

    /// The current VMCS (callers have checked that there is one).
    #[inline]
    pub(crate) fn cur(&self) -> Option<&Vmcs> {
        if self.current == u64::MAX {
            return None;
        }
        // The slot found last time is almost always still the one.
        let hint = self.cur_hint.get();
        if let Some(v) = self.cache.get(hint) {
            if v.addr == self.current {
                return Some(v);
            }
        }
        let i = self.cache.iter().position(|v| v.addr == self.current)?;
        self.cur_hint.set(i);
        self.cache.get(i)
    }

    fn cur_mut(&mut self) -> Option<&mut Vmcs> {
        let c = self.current;
        let hint = self.cur_hint.get();
        let i = if self.cache.get(hint).is_some_and(|v| v.addr == c) {
            hint
        } else {
            let i = self.cache.iter().position(|v| v.addr == c)?;
            self.cur_hint.set(i);
            i
        };
        self.cache.get_mut(i)
    }

    /// Reads a field of the current VMCS by FULL encoding (0 without a current VMCS).
    #[inline]
    pub fn get(&self, enc: u32) -> u64 {
        self.cur().map_or(0, |v| v.vals[fi(enc)])
    }

    /// Marks the current VMCS as having passed the VM-entry checks.
    pub(crate) fn set_checked(&mut self) {
        if let Some(v) = self.cur_mut() {
            v.checked = true;
            v.valid = true;
        }
    }

    /// Writes a field of the current VMCS, truncated to its width.
    #[inline]
    pub fn set(&mut self, enc: u32, val: u64) {
        let mask = vmcs_fields::width_mask(vmcs_fields::width_of(enc));
        if let Some(v) = self.cur_mut() {
            let i = fi(enc);
            if v.vals[i] != val & mask && entry::is_check_input(i) {
                v.valid = false;
            }
            v.vals[i] = val & mask;
        }
    }

    /// Whether the VMCS at `addr` is in the cache.
    pub fn is_cached(&self, addr: u64) -> bool {
        self.slot(addr).is_some()
    }

    /// Launch state of a cached VMCS.
    pub fn launched(&self, addr: u64) -> Option<bool> {
        self.slot(addr).map(|i| self.cache[i].launched)
    }
}

impl Machine {
    /// Installs (or removes) the observer of VMX events.
    pub fn set_vmx_observer(&mut self, obs: Option<VmxObserver>) {
        self.vmx.observer = obs;
    }

    #[inline]
    pub(crate) fn vmx_event(&mut self, e: VmxEvent) {
        if let Some(o) = self.vmx.observer.as_mut() {
            o(&e);
        }
    }

    /// RDMSR of a VMX capability MSR (0x480..=0x491), as masked by the unit.
    pub(crate) fn vmx_cap_msr(&self, index: u32) -> Option<u64> {
        if (vmsr::IA32_VMX_BASIC..=vmsr::IA32_VMX_VMFUNC).contains(&index) {
            self.model.msr(index)?;
            Some(self.vmx.caps.msr(index))
        } else {
            None
        }
    }

    /// Writes a cached VMCS back into its region in memory.
    fn vmcs_writeback(&mut self, v: &Vmcs) {
        let rev = self.vmx.caps.revision() | if v.shadow { 1 << 31 } else { 0 };
        self.mem.write::<4>(v.addr, u64::from(rev));
        self.mem.write::<1>(v.addr + LAUNCH_OFFSET, u64::from(v.launched));
        for (i, fi) in VMCS_FIELDS.iter().enumerate() {
            let off = self.vmx.caps.layout[i];
            if off == u16::MAX {
                continue;
            }
            let pa = v.addr + u64::from(off);
            match fi.width() {
                FieldWidth::W16 => self.mem.write::<2>(pa, v.vals[i]),
                FieldWidth::W32 => self.mem.write::<4>(pa, v.vals[i]),
                _ => self.mem.write::<8>(pa, v.vals[i]),
            }
        }
    }

    /// Loads a VMCS region into the cache (if not there yet) and returns its slot.
    pub(crate) fn vmcs_load(&mut self, addr: u64) -> usize {
        if let Some(i) = self.vmx.slot(addr) {
            return i;
        }
        if self.vmx.cache.len() >= CACHE_SIZE {
            // Evict the oldest VMCS that is neither current nor the current one's shadow.
            let link = self.vmx.get(f::VMCS_LINK_POINTER);
            if let Some(i) = self.vmx.cache.iter().position(|v| v.addr != self.vmx.current && v.addr != link) {
                let v = self.vmx.cache.remove(i);
                self.vmcs_writeback(&v);
            }
        }
        let rev = self.mem.read::<4>(addr) as u32;
        let mut vals = vec![0u64; VMCS_FIELDS.len()].into_boxed_slice();
        for (i, fi) in VMCS_FIELDS.iter().enumerate() {
            let off = self.vmx.caps.layout[i];
            if off == u16::MAX {
                continue;
            }
            let pa = addr + u64::from(off);
            vals[i] = match fi.width() {
                FieldWidth::W16 => self.mem.read::<2>(pa),
                FieldWidth::W32 => self.mem.read::<4>(pa),
                _ => self.mem.read::<8>(pa),
            };
        }
        let launched = self.mem.read::<1>(addr + LAUNCH_OFFSET) & 1 != 0;
        self.vmx.cache.push(Vmcs { addr, vals, launched, shadow: rev >> 31 != 0, checked: false, valid: false });
        self.vmx.cache.len() - 1
    }

    /// VMCLEAR's effect on the cache: data written back, launch state clear, uncached.
    pub(crate) fn vmcs_clear(&mut self, addr: u64) {
        let v = match self.vmx.slot(addr) {
            Some(i) => {
                let mut v = self.vmx.cache.remove(i);
                v.launched = false;
                v
            }
            None => {
                // Not cached: only the launch state in memory changes.
                self.mem.write::<1>(addr + LAUNCH_OFFSET, 0);
                return;
            }
        };
        self.vmcs_writeback(&v);
    }

    /// Reads a field of the VMCS at `addr` (which must be cached) by any valid encoding.
    pub(crate) fn vmcs_read_at(&self, slot: usize, enc: u32) -> u64 {
        let v = self.vmx.cache[slot].vals[fi(enc & !1)];
        if vmcs_fields::is_high(enc) {
            v >> 32
        } else {
            v
        }
    }

    pub(crate) fn vmcs_write_at(&mut self, slot: usize, enc: u32, val: u64) {
        let full = enc & !1;
        let i = fi(full);
        let old = self.vmx.cache[slot].vals[i];
        let new = if vmcs_fields::is_high(enc) {
            (old & 0xFFFF_FFFF) | (val << 32)
        } else {
            val & vmcs_fields::width_mask(vmcs_fields::width_of(full))
        };
        let v = &mut self.vmx.cache[slot];
        if v.vals[i] != new && entry::is_check_input(i) {
            v.valid = false;
        }
        v.vals[i] = new;
        v.checked = false;
    }

    pub(crate) fn vmcs_slot(&self, addr: u64) -> Option<usize> {
        self.vmx.slot(addr)
    }

    pub(crate) fn vmcs_set_launched(&mut self, addr: u64, l: bool) {
        if let Some(i) = self.vmx.slot(addr) {
            self.vmx.cache[i].launched = l;
        }
    }

    pub(crate) fn vmcs_is_shadow(&self, slot: usize) -> bool {
        self.vmx.cache[slot].shadow
    }

    /// Leaves VMX operation (VMXOFF): cached VMCSes stay in the cache, as on hardware the
    /// data may stay on the processor; software must VMCLEAR them first.
    pub(crate) fn vmx_off(&mut self) {
        self.vmx.on = false;
        self.vmx.vmxon_ptr = u64::MAX;
        self.vmx.current = u64::MAX;
    }

    /// Whether a field encoding names a field this processor supports.
    pub(crate) fn vmcs_supported(&self, enc: u32) -> bool {
        vmcs_fields::by_encoding(enc).is_some_and(|x| self.vmx.caps.supported[fi(x.encoding)])
    }
}

#[cfg(test)]
mod tests;
