//! Extended page tables (SDM Vol. 3C chapter 29, "VMX Support for Address Translation").
//!
//! While a guest runs with "enable EPT", every guest-physical address is translated by a
//! 4-level EPT walk from the EPTP: the final address of each linear access (or the linear
//! address itself with guest paging off) and every guest paging-structure access of the
//! guest's own page walk (entry reads, and accessed/dirty updates, which need EPT write
//! permission). The walk lives in `mmu.rs`'s slow path only: the TLB caches the combined
//! linear → host-physical translation, with access bits that are the AND of the guest's
//! paging permissions and the EPT permissions, so a TLB hit costs what it costs without EPT.
//! Each EPT paging-structure entry read is charged [`CostClass::EptWalkLevel`].
//!
//! An EPT violation (exit 48) or misconfiguration (exit 49) happens in the middle of an
//! instruction (or of event delivery). The walk records the pending exit here and returns
//! [`Fault::VM_EXIT`], which every handler propagates like a fault; the run loop puts RIP
//! back at the instruction's start (the instruction does not complete) and `raise` then
//! performs the VM exit with that state, so GUEST_RIP names the faulting instruction. An
//! EPT violation while delivering an event (an exception, INT n, or an event injected by VM
//! entry) restores the state from before the delivery and reports the event in the
//! IDT-vectoring information.
//!
//! Accessed and dirty flags (EPTP bit 6, SDM 28.2.4): a successful translation sets the
//! accessed flag of every EPT entry it used, and a write sets the dirty flag of the leaf.
//! With the flags on, guest paging-structure accesses (reads included) are writes to EPT:
//! they need write permission and dirty the page holding the guest's tables. The TLB keeps
//! a write permission only once the leaf is dirty, so the first write after a read walks
//! again. Page-modification logging (secondary control 17, SDM 28.2.5) logs the 4-KiB
//! guest-physical page of each clean-to-dirty transition at PML_ADDRESS + 8 * index and
//! decrements GUEST_PML_INDEX; an A/D update needed while the index is outside 0..=511 is a
//! PML-full VM exit (reason 62) instead, before any flag changes, and the access does not
//! happen. The flags are set only when the access passes the EPT checks.
//!
//! Supported: execute-only translations, 2-MiB and 1-GiB pages, UC and WB paging-structure
//! memory types, accessed/dirty flags, PML, INVEPT single-context and all-context (both
//! flush the whole TLB). Not supported (capability bits clear): 5-level EPT, mode-based
//! execute control, #VE, supervisor shadow-stack control, advanced exit information
//! (qualification bits 9-11 are 0), sub-page permissions. Exit qualification bit 12 (NMI
//! unblocking by IRET) is always 0: virtual NMIs are not offered and IRET's NMI unblocking
//! is not tracked.

use super::super::cost::CostClass;
use super::super::mmu::{Access, MAXPHYADDR};
use super::super::{Fault, Machine};
use crate::arch::exit_reason::reason as r;
use crate::arch::vmcs_fields::field as f;
use crate::arch::vmx_ctrl::{ept, ept_vpid_cap as cap, eptp, exit_qual, intr_info, msr as vmsr, proc2 as p2};

/// Host-physical address bits an EPT entry may hold (bits MAXPHYADDR-1:12).
const PHYS_MASK: u64 = ((1u64 << MAXPHYADDR) - 1) & !0xFFF;

/// The IA32_VMX_EPT_VPID_CAP bits this unit implements (ANDed with the CPU model's value).
pub(crate) const IMPLEMENTED_CAPS: u64 = cap::EXECUTE_ONLY
    | cap::PAGE_WALK_4
    | cap::MEM_TYPE_UC
    | cap::MEM_TYPE_WB
    | cap::PAGE_2M
    | cap::PAGE_1G
    | cap::INVEPT
    | cap::INVEPT_SINGLE_CONTEXT
    | cap::INVEPT_ALL_CONTEXT
    | cap::AD;

/// PML index values that have a log slot (SDM 28.2.5).
const PML_ENTRIES: u64 = 512;

/// A VM exit decided in the middle of an access, performed when the fault unwinds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PendingExit {
    pub reason: u32,
    pub qualification: u64,
    pub gpa: u64,
    /// The guest linear address, when the exit qualification says it is valid.
    pub gla: Option<u64>,
    /// IDT-vectoring information (info, error code) when the exit interrupted the delivery
    /// of an event that `raise` does not see (INT n, VM-entry injection).
    pub vectoring: Option<(u32, Option<u32>)>,
}

/// Why an EPT walk stopped.
enum Stop {
    /// An entry with bits 2:0 clear.
    NotPresent,
    /// A present entry that is misconfigured.
    Misconfig,
}

/// A completed EPT walk.
struct EptWalk {
    /// The host-physical address.
    hpa: u64,
    /// The AND of the R/W/X bits of the entries used.
    perms: u8,
    /// The host-physical address and value of each entry used, root first; the last is the
    /// leaf.
    ents: [(u64, u64); 4],
    n: usize,
}

/// The EPT permission an access needs.
fn needs(acc: Access) -> u8 {
    match acc {
        Access::Read => ept::READ as u8,
        Access::Write => ept::WRITE as u8,
        Access::Exec => ept::EXEC as u8,
    }
}

impl Machine {
    /// Whether an EPTP value passes the VM-entry checks (SDM 26.2.1.1) for this unit's
    /// capabilities.
    pub(crate) fn eptp_ok(&self, p: u64) -> bool {
        let caps = self.vmx.caps.msr(vmsr::IA32_VMX_EPT_VPID_CAP);
        let mt_ok = match (p & eptp::MEM_TYPE_MASK) as u8 {
            0 => caps & cap::MEM_TYPE_UC != 0,
            6 => caps & cap::MEM_TYPE_WB != 0,
            _ => false,
        };
        let pwl_ok = p & eptp::PWL_MASK == eptp::PWL_4 && caps & cap::PAGE_WALK_4 != 0;
        let ad_ok = p & eptp::AD_ENABLE == 0 || caps & cap::AD != 0;
        // Bits 11:7 (no supervisor shadow-stack control) and 63:MAXPHYADDR are reserved.
        let rsvd = p & (0xF80 | !((1u64 << MAXPHYADDR) - 1));
        mt_ok && pwl_ok && ad_ok && rsvd == 0
    }

    /// Walks the EPT paging structures for `gpa`.
    fn ept_walk(&mut self, gpa: u64) -> Result<EptWalk, Stop> {
        let exec_only = self.vmx.caps.msr(vmsr::IA32_VMX_EPT_VPID_CAP) & cap::EXECUTE_ONLY != 0;
        let rsvd_hi = ept::ADDR_MASK & !PHYS_MASK;
        let mut table = self.vmx.eptp & PHYS_MASK;
        let mut w = EptWalk { hpa: 0, perms: ept::RWX_MASK as u8, ents: [(0, 0); 4], n: 0 };
        for level in (1..=4u32).rev() {
            let shift = 12 + 9 * (level - 1);
            let ea = table | (((gpa >> shift) & 0x1FF) << 3);
            self.charge_event(CostClass::EptWalkLevel, crate::machine::acct::Event::EptWalk);
            let e = self.mem.read::<8>(ea);
            let rwx = (e & ept::RWX_MASK) as u8;
            if rwx == 0 {
                return Err(Stop::NotPresent);
            }
            // Write without read; execute-only without the capability.
            if rwx & 3 == ept::WRITE as u8 || (rwx == ept::EXEC as u8 && !exec_only) {
                return Err(Stop::Misconfig);
            }
            let large = (level == 2 || level == 3) && e & ept::LARGE_PAGE != 0;
            let leaf = level == 1 || large;
            let mut rsvd = e & rsvd_hi;
            if level == 4 {
                rsvd |= e & 0xF8; // bits 7:3
            } else if !leaf {
                rsvd |= e & 0x78; // bits 6:3
            } else {
                if large {
                    rsvd |= e & ((1u64 << shift) - 1) & !0xFFF;
                }
                if matches!((e & ept::MEM_TYPE_MASK) >> ept::MEM_TYPE_SHIFT, 2 | 3 | 7) {
                    return Err(Stop::Misconfig);
                }
            }
            if rsvd != 0 {
                return Err(Stop::Misconfig);
            }
            w.perms &= rwx;
            w.ents[w.n] = (ea, e);
            w.n += 1;
            if leaf {
                let page = (1u64 << shift) - 1;
                w.hpa = (e & PHYS_MASK & !page) | (gpa & page);
                return Ok(w);
            }
            table = e & PHYS_MASK;
        }
        unreachable!("the last level is a leaf")
    }

    /// Whether the current guest's EPTP enables accessed and dirty flags.
    #[inline]
    fn ept_ad(&self) -> bool {
        self.vmx.eptp & eptp::AD_ENABLE != 0
    }

    /// Sets the accessed flags of a successful walk (and the leaf's dirty flag for a write),
    /// logging a newly dirty page when PML is on. Returns whether the leaf is now dirty, or
    /// the PML-full exit when the flags need an update and the log has no slot.
    fn ept_set_ad(&mut self, w: &EptWalk, gpa: u64, write: bool) -> Result<bool, Fault> {
        let last = w.n - 1;
        let want = |i: usize, e: u64| e | ept::ACCESSED | if write && i == last { ept::DIRTY } else { 0 };
        let dirty = w.ents[last].1 & ept::DIRTY != 0 || write;
        if !w.ents[..w.n].iter().enumerate().any(|(i, &(_, e))| want(i, e) != e) {
            return Ok(dirty);
        }
        let pml = self.proc2() & p2::SECONDARY_EXEC_ENABLE_PML != 0;
        let index = self.vmcs(f::GUEST_PML_INDEX);
        if pml && index >= PML_ENTRIES {
            self.vmx.ept_pending =
                Some(PendingExit { reason: r::PML_FULL, qualification: 0, gpa, gla: None, vectoring: None });
            return Err(Fault::VM_EXIT);
        }
        for (i, &(ea, e)) in w.ents[..w.n].iter().enumerate() {
            if want(i, e) != e {
                self.mem.write::<8>(ea, want(i, e));
            }
        }
        if pml && write && w.ents[last].1 & ept::DIRTY == 0 {
            let slot = self.vmcs(f::PML_ADDRESS) + 8 * index;
            self.mem.write::<8>(slot, gpa & !0xFFF);
            self.vmx.set(f::GUEST_PML_INDEX, index.wrapping_sub(1));
        }
        Ok(dirty)
    }

    /// Translates a guest-physical address for an access of kind `acc` made while
    /// translating (or, when `final_`, after translating) the linear address `lin`. Returns
    /// the host-physical address and the EPT permissions (R/W/X bits), or
    /// [`Fault::VM_EXIT`] with the EPT violation or misconfiguration pending.
    pub(crate) fn ept_translate(&mut self, gpa: u64, acc: Access, lin: u64, final_: bool) -> Result<(u64, u8), Fault> {
        let ad = self.ept_ad();
        // With A/D flags on, guest paging-structure accesses are writes (SDM 28.2.3.2).
        let write = acc == Access::Write || (ad && !final_);
        let need = if write { ept::WRITE as u8 } else { needs(acc) };
        match self.ept_walk(gpa) {
            Ok(w) if w.perms & need != 0 => {
                if !ad {
                    return Ok((w.hpa, w.perms));
                }
                let dirty = self.ept_set_ad(&w, gpa, write)?;
                // Until the leaf is dirty a write must walk again to set the flag.
                Ok((w.hpa, if dirty { w.perms } else { w.perms & !(ept::WRITE as u8) }))
            }
            Ok(w) => Err(self.ept_violation(gpa, acc, w.perms, lin, final_)),
            Err(Stop::NotPresent) => Err(self.ept_violation(gpa, acc, 0, lin, final_)),
            Err(Stop::Misconfig) => {
                self.vmx.ept_pending =
                    Some(PendingExit { reason: r::EPT_MISCONFIG, qualification: 0, gpa, gla: None, vectoring: None });
                Err(Fault::VM_EXIT)
            }
        }
    }

    /// Records a pending EPT violation (SDM 27.2.1, Table 28-7) and returns the marker.
    #[cold]
    pub(crate) fn ept_violation(&mut self, gpa: u64, acc: Access, perms: u8, lin: u64, final_: bool) -> Fault {
        use exit_qual::ept as q;
        let mut qual = match acc {
            // A guest paging-structure access with EPT A/D flags on is a write that sets
            // both access bits (SDM Table 27-7, note 1).
            _ if !final_ && self.ept_ad() => q::ACC_READ | q::ACC_WRITE,
            Access::Read => q::ACC_READ,
            Access::Write => q::ACC_WRITE,
            Access::Exec => q::ACC_INSTR,
        };
        qual |= u64::from(perms) << 3 & q::PROT_MASK;
        // Every access this unit translates is to a linear address (with paging off, the
        // linear address is the guest-physical one).
        qual |= q::GVA_IS_VALID;
        if final_ {
            qual |= q::GVA_TRANSLATED;
        }
        self.vmx.ept_pending =
            Some(PendingExit { reason: r::EPT_VIOLATION, qualification: qual, gpa, gla: Some(lin), vectoring: None });
        Fault::VM_EXIT
    }

    /// Performs the pending EPT VM exit. `self.cpu` holds the guest state to save (RIP at
    /// the interrupted instruction). `vectoring` is the exception whose delivery was
    /// interrupted, if any.
    #[cold]
    pub(crate) fn ept_exit(&mut self, vectoring: Option<Fault>, iret_unblocked: bool) {
        let Some(mut p) = self.vmx.ept_pending.take() else { return };
        if !self.vmx.non_root {
            return;
        }
        self.vmx.set(f::GUEST_PHYSICAL_ADDRESS, p.gpa);
        if let Some(l) = p.gla {
            self.vmx.set(f::GUEST_LINEAR_ADDRESS, l);
        }
        let vect = p.vectoring.or_else(|| {
            vectoring.map(|c| {
                let info = u32::from(c.vector)
                    | (intr_info::TYPE_HARD_EXCEPTION << intr_info::TYPE_SHIFT)
                    | intr_info::VALID
                    | if c.error().is_some() { intr_info::DELIVER_CODE } else { 0 };
                (info, c.error())
            })
        });
        // Bit 12 of an EPT-violation or PML-full qualification: IRET unblocked NMIs (or
        // virtual NMIs) before this access of its own; undefined (0 here) with
        // IDT-vectoring information.
        if iret_unblocked && vect.is_none() && matches!(p.reason, r::EPT_VIOLATION | r::PML_FULL) {
            p.qualification |= exit_qual::ept::NMI_UNBLOCKING;
        }
        let (info, err) = vect.unwrap_or((0, None));
        if let Some(e) = err {
            self.vmx.set(f::IDT_VECTORING_ERROR_CODE, u64::from(e));
        }
        self.vmx.set(f::IDT_VECTORING_INFO_FIELD, u64::from(info));
        self.vmx.set(f::VM_EXIT_INTR_INFO, 0);
        self.vm_exit(p.reason, p.qualification);
    }

    /// Marks the pending exit (if any) as interrupting the delivery of an event with this
    /// IDT-vectoring information.
    pub(crate) fn ept_pending_vectoring(&mut self, info: u32, err: Option<u32>) {
        if let Some(p) = self.vmx.ept_pending.as_mut() {
            p.vectoring = Some((info, err));
        }
    }
}
