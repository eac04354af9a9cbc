//! VM entry (VMLAUNCH/VMRESUME after their instruction checks): the checks on the VMX
//! controls and host-state area (VMfailValid 7 and 8), the guest-state checks (an
//! entry-failure VM exit, reason 33), guest-state loading, the VM-entry MSR-load list
//! (reason 34 on failure), and event injection (SDM "VM Entries").

use super::super::cpu::{seg_attr as sa, DtReg, Segment, CS, SS};
use super::super::interrupt::EventKind;
use super::super::mmu::MAXPHYADDR;
use super::super::Machine;
use super::exit::{LDTR_FIELDS, SEG_FIELDS, TR_FIELDS};
use super::VmxEvent;
use crate::arch::exit_reason::reason as r;
use crate::arch::msr::{self, efer};
use crate::arch::vmcs_fields::field as f;
use crate::arch::vmx_ctrl::{
    activity, entry as en, exit as ex, exit_qual, interruptibility as ib, intr_info as it, msr as vmsr, pin,
    proc1 as p1, proc2 as p2, vmfunc, vmx_basic, vmx_misc,
};
use crate::arch::x86::{cr0, cr4, rflags};

/// Why a VM entry did not happen.
enum EntryError {
    /// VMfailValid with this error number (7 controls, 8 host state).
    Fail(u32),
    /// A VM-entry failure exit with this reason and qualification.
    Exit(u32, u64),
}

/// Whether the entry checks other than `check_guest_volatile` may read field `i` (position
/// in `VMCS_FIELDS`): a change of value must then run them all again. Not inputs: the
/// exit-information fields, and guest-state and control fields no check looks at
/// (`tests/vmx_guest_rules.rs` gives those any value and still enters, and breaks every rule
/// after a passed entry to show the memo never hides a failure).
pub(super) fn is_check_input(i: usize) -> bool {
    static TABLE: std::sync::OnceLock<Box<[bool]>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        crate::arch::vmcs_fields::VMCS_FIELDS
            .iter()
            .map(|x| {
                let full = x.encoding & !1;
                crate::arch::vmcs_fields::type_of(full) != crate::arch::vmcs_fields::FieldType::ExitInfo
                    && !NOT_CHECK_INPUTS.contains(&full)
            })
            .collect()
    })[i]
}

/// Fields the entry checks never read (besides the exit-information fields), or read only
/// in `check_guest_volatile` (GUEST_RIP, GUEST_RFLAGS).
pub const NOT_CHECK_INPUTS: &[u32] = &[
    f::GUEST_RIP,
    f::GUEST_RFLAGS,
    f::GUEST_RSP,
    f::VMX_PREEMPTION_TIMER_VALUE,
    f::TSC_OFFSET,
    f::CR0_GUEST_HOST_MASK,
    f::CR4_GUEST_HOST_MASK,
    f::CR0_READ_SHADOW,
    f::CR4_READ_SHADOW,
    f::EXCEPTION_BITMAP,
    f::PAGE_FAULT_ERROR_CODE_MASK,
    f::PAGE_FAULT_ERROR_CODE_MATCH,
    f::CR3_TARGET_VALUE0,
    f::CR3_TARGET_VALUE1,
    f::CR3_TARGET_VALUE2,
    f::CR3_TARGET_VALUE3,
    f::GUEST_INTR_STATUS,
    f::GUEST_PML_INDEX,
    f::EOI_EXIT_BITMAP0,
    f::EOI_EXIT_BITMAP1,
    f::EOI_EXIT_BITMAP2,
    f::EOI_EXIT_BITMAP3,
];

fn canonical(v: u64) -> bool {
    ((v as i64) << 16 >> 16) as u64 == v
}

fn phys_ok(a: u64) -> bool {
    a >> MAXPHYADDR == 0
}

fn page_ok(a: u64) -> bool {
    a & 0xFFF == 0 && phys_ok(a)
}

fn pat_ok(v: u64) -> bool {
    (0..8).all(|i| matches!((v >> (8 * i)) & 0xFF, 0 | 1 | 4 | 5 | 6 | 7))
}

/// Whether `v` has every bit that must be 1 and none that must be 0.
fn ctl_ok(v: u32, cap: u64) -> bool {
    let must1 = cap as u32;
    let may1 = (cap >> 32) as u32;
    v & must1 == must1 && v & !may1 == 0
}

impl Machine {
    /// Performs VM entry with the current VMCS (VMLAUNCH if `launch`). The instruction
    /// checks (#UD, #GP, VMfailInvalid, errors 4/5) are done. `self.cpu.rip` is the
    /// instruction after VMLAUNCH/VMRESUME.
    pub(crate) fn vm_entry(&mut self, launch: bool) {
        let vmcs = self.vmx.current;
        self.acct_entry_begin(vmcs);
        self.charge_class(super::super::cost::CostClass::VmEntry);
        // A VMCS that passed the checks and was not written since skips them (the
        // processor's VMCS cache; calibration.md, Linux commit 3af80fec6e7f).
        let checked = self.vmx.cur().is_some_and(|v| v.checked);
        let result = if checked {
            self.check_vtpr_threshold().map_err(|_| EntryError::Fail(7))
        } else {
            self.charge_event(super::super::cost::CostClass::VmEntryChecks, super::super::acct::Event::VmEntryChecks);
            if self.vmx.cur().is_some_and(|v| v.valid) {
                // Only RIP/RFLAGS, the link pointer and memory-dependent checks can fail now
                // (`Vmcs::valid`): the outcome of the full checks, computed faster.
                self.check_vtpr_threshold().map_err(|_| EntryError::Fail(7)).and_then(|()| self.check_guest_volatile())
            } else {
                self.entry_checks()
            }
        };
        match result {
            Ok(()) => {}
            Err(EntryError::Fail(n)) => {
                self.vm_fail(n);
                return;
            }
            Err(EntryError::Exit(reason, q)) => {
                self.entry_failure(reason, q);
                return;
            }
        }
        self.load_guest_state();
        if let Err(q) = self.entry_msr_load() {
            self.entry_failure(r::MSR_LOAD_FAIL, q);
            return;
        }
        if launch {
            self.vmcs_set_launched(vmcs, true);
        }
        self.vmx.set_checked();
        if let Some((reason, started)) = self.stats.open_exit.take() {
            *self.stats.exit_mcycles.entry(reason).or_insert(0) += self.mcycles - started;
        }
        self.vmx.non_root = true;
        self.vmx.ept = self.proc2() & p2::SECONDARY_EXEC_ENABLE_EPT != 0;
        self.vmx.eptp = self.vmcs(f::EPT_POINTER);
        self.vmx.set(f::VM_INSTRUCTION_ERROR, 0);
        self.vmx_event(VmxEvent::Entry { vmcs, launch });
        self.acct_entry_done();
        self.arm_preemption_timer();
        self.vmx_apic_entry();
        self.inject_event();
    }

    #[cold]
    fn entry_failure(&mut self, reason: u32, q: u64) {
        self.vmx.set(f::VM_EXIT_INTR_INFO, 0);
        self.vmx.set(f::IDT_VECTORING_INFO_FIELD, 0);
        self.vm_exit(reason | 0x8000_0000, q);
    }

    fn arm_preemption_timer(&mut self) {
        if self.vmcs(f::PIN_BASED_VM_EXEC_CONTROL) as u32 & pin::PIN_BASED_VMX_PREEMPTION_TIMER != 0 {
            let rate = vmx_misc::preemption_timer_rate(self.vmx.caps.misc());
            let v = self.vmcs(f::VMX_PREEMPTION_TIMER_VALUE);
            self.vmx.deadline = self.mcycles.saturating_add((v << rate).saturating_mul(1000));
        } else {
            self.vmx.deadline = u64::MAX;
        }
    }

    fn entry_checks(&self) -> Result<(), EntryError> {
        self.check_controls().map_err(|_| EntryError::Fail(7))?;
        self.check_host().map_err(|_| EntryError::Fail(8))?;
        self.check_guest()
    }

    fn cap(&self, m: u32) -> u64 {
        let caps = &self.vmx.caps;
        let true_ctls = caps.basic() & vmx_basic::TRUE_CTLS != 0;
        let m = match m {
            vmsr::IA32_VMX_PINBASED_CTLS if true_ctls => vmsr::IA32_VMX_TRUE_PINBASED_CTLS,
            vmsr::IA32_VMX_PROCBASED_CTLS if true_ctls => vmsr::IA32_VMX_TRUE_PROCBASED_CTLS,
            vmsr::IA32_VMX_EXIT_CTLS if true_ctls => vmsr::IA32_VMX_TRUE_EXIT_CTLS,
            vmsr::IA32_VMX_ENTRY_CTLS if true_ctls => vmsr::IA32_VMX_TRUE_ENTRY_CTLS,
            m => m,
        };
        caps.msr(m)
    }

    /// SDM "Checks on VMX Controls".
    fn check_controls(&self) -> Result<(), ()> {
        let g = |e| self.vmcs(e);
        let ok = |b: bool| if b { Ok(()) } else { Err(()) };
        let pinc = g(f::PIN_BASED_VM_EXEC_CONTROL) as u32;
        let p1c = g(f::CPU_BASED_VM_EXEC_CONTROL) as u32;
        ok(ctl_ok(pinc, self.cap(vmsr::IA32_VMX_PINBASED_CTLS)))?;
        ok(ctl_ok(p1c, self.cap(vmsr::IA32_VMX_PROCBASED_CTLS)))?;
        let p2c = self.proc2();
        if p1c & p1::CPU_BASED_ACTIVATE_SECONDARY_CONTROLS != 0 {
            ok(ctl_ok(p2c, self.cap(vmsr::IA32_VMX_PROCBASED_CTLS2)))?;
        }
        ok(g(f::CR3_TARGET_COUNT) <= u64::from(vmx_misc::cr3_target_count(self.vmx.caps.misc())))?;
        if p1c & p1::CPU_BASED_USE_IO_BITMAPS != 0 {
            ok(page_ok(g(f::IO_BITMAP_A)) && page_ok(g(f::IO_BITMAP_B)))?;
        }
        if p1c & p1::CPU_BASED_USE_MSR_BITMAPS != 0 {
            ok(page_ok(g(f::MSR_BITMAP)))?;
        }
        if pinc & pin::PIN_BASED_NMI_EXITING == 0 {
            ok(pinc & pin::PIN_BASED_VIRTUAL_NMIS == 0)?;
        }
        if pinc & pin::PIN_BASED_VIRTUAL_NMIS == 0 {
            ok(p1c & p1::CPU_BASED_NMI_WINDOW_EXITING == 0)?;
        }
        if p2c & p2::SECONDARY_EXEC_SHADOW_VMCS != 0 {
            ok(page_ok(g(f::VMREAD_BITMAP)) && page_ok(g(f::VMWRITE_BITMAP)))?;
        }
        if p2c & p2::SECONDARY_EXEC_ENABLE_VPID != 0 {
            ok(g(f::VIRTUAL_PROCESSOR_ID) != 0)?;
        }
        if p2c & p2::SECONDARY_EXEC_ENABLE_EPT != 0 {
            ok(self.eptp_ok(g(f::EPT_POINTER)))?;
        }
        if p2c & p2::SECONDARY_EXEC_ENABLE_PML != 0 {
            ok(p2c & p2::SECONDARY_EXEC_ENABLE_EPT != 0 && page_ok(g(f::PML_ADDRESS)))?;
        }
        if p2c & p2::SECONDARY_EXEC_UNRESTRICTED_GUEST != 0 {
            ok(p2c & p2::SECONDARY_EXEC_ENABLE_EPT != 0)?;
        }
        if p2c & p2::SECONDARY_EXEC_ENABLE_VMFUNC != 0 {
            // Only functions IA32_VMX_VMFUNC allows; EPTP switching needs EPT and a page-
            // aligned EPTP list within the physical-address width.
            let funcs = g(f::VM_FUNCTION_CONTROL);
            ok(funcs & !self.vmx.caps.msr(vmsr::IA32_VMX_VMFUNC) == 0)?;
            if funcs & vmfunc::VMX_VMFUNC_EPTP_SWITCHING != 0 {
                ok(p2c & p2::SECONDARY_EXEC_ENABLE_EPT != 0 && page_ok(g(f::EPTP_LIST_ADDRESS)))?;
            }
        }
        self.check_apic_controls()?;
        // VM-exit controls.
        let exitc = g(f::VM_EXIT_CONTROLS) as u32;
        ok(ctl_ok(exitc, self.cap(vmsr::IA32_VMX_EXIT_CTLS)))?;
        if pinc & pin::PIN_BASED_VMX_PREEMPTION_TIMER == 0 {
            ok(exitc & ex::VM_EXIT_SAVE_VMX_PREEMPTION_TIMER == 0)?;
        }
        let max_list = u64::from(vmx_misc::max_msr_list_entries(self.vmx.caps.misc()));
        for (a, n) in [
            (f::VM_EXIT_MSR_STORE_ADDR, f::VM_EXIT_MSR_STORE_COUNT),
            (f::VM_EXIT_MSR_LOAD_ADDR, f::VM_EXIT_MSR_LOAD_COUNT),
            (f::VM_ENTRY_MSR_LOAD_ADDR, f::VM_ENTRY_MSR_LOAD_COUNT),
        ] {
            let (addr, cnt) = (g(a), g(n));
            if cnt > 0 {
                ok(addr & 0xF == 0 && phys_ok(addr) && phys_ok(addr + cnt * 16 - 1))?;
            }
            // More entries than recommended is allowed by the checks; the SDM leaves the
            // behaviour undefined, so this unit refuses it as a control error.
            ok(cnt <= max_list)?;
        }
        // VM-entry controls.
        let entryc = g(f::VM_ENTRY_CONTROLS) as u32;
        ok(ctl_ok(entryc, self.cap(vmsr::IA32_VMX_ENTRY_CTLS)))?;
        ok(entryc & (en::VM_ENTRY_SMM | en::VM_ENTRY_DEACT_DUAL_MONITOR) == 0)?;
        let info = g(f::VM_ENTRY_INTR_INFO_FIELD) as u32;
        if info & it::VALID != 0 {
            let ty = it::interruption_type(info);
            let vec = it::vector(info);
            ok(ty != it::TYPE_RESERVED && ty != it::TYPE_OTHER_EVENT)?;
            ok(ty != it::TYPE_NMI || vec == 2)?;
            ok(ty != it::TYPE_HARD_EXCEPTION || vec <= 31)?;
            let guest_pe = g(f::GUEST_CR0) & cr0::PE != 0;
            let wants_code = ty == it::TYPE_HARD_EXCEPTION && guest_pe && matches!(vec, 8 | 10..=14 | 17);
            ok((info & it::DELIVER_CODE != 0) == wants_code)?;
            ok(info & it::ENTRY_RESERVED_MASK == 0)?;
            if info & it::DELIVER_CODE != 0 {
                ok(g(f::VM_ENTRY_EXCEPTION_ERROR_CODE) >> 16 == 0)?;
            }
            if matches!(ty, it::TYPE_SOFT_INTR | it::TYPE_PRIV_SW_EXCEPTION | it::TYPE_SOFT_EXCEPTION) {
                let len = g(f::VM_ENTRY_INSTRUCTION_LEN);
                let zero_ok = self.vmx.caps.misc() & vmx_misc::ZERO_LEN_INJECTION != 0;
                ok(len <= 15 && (len > 0 || zero_ok))?;
            }
        }
        Ok(())
    }

    /// SDM "Checks on Host Control Registers, MSRs and Segment Registers".
    fn check_host(&self) -> Result<(), ()> {
        let g = |e| self.vmcs(e);
        let ok = |b: bool| if b { Ok(()) } else { Err(()) };
        let caps = &self.vmx.caps;
        let (c0f0, c0f1) = (caps.msr(vmsr::IA32_VMX_CR0_FIXED0), caps.msr(vmsr::IA32_VMX_CR0_FIXED1));
        let (c4f0, c4f1) = (caps.msr(vmsr::IA32_VMX_CR4_FIXED0), caps.msr(vmsr::IA32_VMX_CR4_FIXED1));
        let hcr0 = g(f::HOST_CR0);
        let hcr4 = g(f::HOST_CR4);
        ok(hcr0 & c0f0 == c0f0 && hcr0 & !c0f1 & 0xFFFF_FFFF == 0 && hcr0 >> 32 == 0)?;
        ok(hcr4 & c4f0 == c4f0 && hcr4 & !c4f1 == 0)?;
        ok(phys_ok(g(f::HOST_CR3)))?;
        ok(canonical(g(f::HOST_IA32_SYSENTER_ESP)) && canonical(g(f::HOST_IA32_SYSENTER_EIP)))?;
        let exitc = g(f::VM_EXIT_CONTROLS) as u32;
        let long = exitc & ex::VM_EXIT_HOST_ADDR_SPACE_SIZE != 0;
        if exitc & ex::VM_EXIT_LOAD_IA32_PAT != 0 {
            ok(pat_ok(g(f::HOST_IA32_PAT)))?;
        }
        if exitc & ex::VM_EXIT_LOAD_IA32_EFER != 0 {
            let e = g(f::HOST_IA32_EFER);
            ok(e & !(efer::WRITABLE | efer::LMA) == 0)?;
            ok((e & efer::LMA != 0) == long && (e & efer::LME != 0) == long)?;
        }
        for s in [
            f::HOST_ES_SELECTOR,
            f::HOST_CS_SELECTOR,
            f::HOST_SS_SELECTOR,
            f::HOST_DS_SELECTOR,
            f::HOST_FS_SELECTOR,
            f::HOST_GS_SELECTOR,
            f::HOST_TR_SELECTOR,
        ] {
            ok(g(s) & 7 == 0)?;
        }
        ok(g(f::HOST_CS_SELECTOR) != 0 && g(f::HOST_TR_SELECTOR) != 0)?;
        if !long {
            ok(g(f::HOST_SS_SELECTOR) != 0)?;
        }
        for b in [f::HOST_FS_BASE, f::HOST_GS_BASE, f::HOST_GDTR_BASE, f::HOST_IDTR_BASE, f::HOST_TR_BASE] {
            ok(canonical(g(b)))?;
        }
        let entryc = g(f::VM_ENTRY_CONTROLS) as u32;
        if self.cpu.long_mode_active() {
            ok(long)?;
        } else {
            ok(!long && entryc & en::VM_ENTRY_IA32E_MODE == 0)?;
        }
        if long {
            ok(hcr4 & cr4::PAE != 0 && canonical(g(f::HOST_RIP)))?;
        } else {
            ok(hcr4 & cr4::PCIDE == 0 && g(f::HOST_RIP) >> 32 == 0)?;
        }
        Ok(())
    }

    /// SDM "Checking and Loading Guest State" (the checks).
    fn check_guest(&self) -> Result<(), EntryError> {
        let g = |e| self.vmcs(e);
        #[track_caller]
        fn ok(b: bool) -> Result<(), EntryError> {
            if b {
                Ok(())
            } else {
                if std::env::var_os("VMXSIM_DEBUG_ENTRY").is_some() {
                    eprintln!("guest-state check failed at {}", std::panic::Location::caller());
                }
                Err(EntryError::Exit(r::INVALID_STATE, exit_qual::entry_failure::DEFAULT))
            }
        }
        let caps = &self.vmx.caps;
        let entryc = g(f::VM_ENTRY_CONTROLS) as u32;
        let ia32e = entryc & en::VM_ENTRY_IA32E_MODE != 0;
        // Control registers, debug registers and MSRs.
        let (c0f0, c0f1) = (caps.msr(vmsr::IA32_VMX_CR0_FIXED0), caps.msr(vmsr::IA32_VMX_CR0_FIXED1));
        let (c4f0, c4f1) = (caps.msr(vmsr::IA32_VMX_CR4_FIXED0), caps.msr(vmsr::IA32_VMX_CR4_FIXED1));
        let gcr0 = g(f::GUEST_CR0);
        let gcr4 = g(f::GUEST_CR4);
        ok(gcr0 & c0f0 == c0f0 && gcr0 & !c0f1 & 0xFFFF_FFFF == 0 && gcr0 >> 32 == 0)?;
        ok(gcr0 & cr0::PG == 0 || gcr0 & cr0::PE != 0)?;
        ok(gcr4 & c4f0 == c4f0 && gcr4 & !c4f1 == 0)?;
        if entryc & en::VM_ENTRY_LOAD_DEBUG_CONTROLS != 0 {
            ok(g(f::GUEST_IA32_DEBUGCTL) & !0xFFFF == 0 && g(f::GUEST_DR7) >> 32 == 0)?;
        }
        if ia32e {
            ok(gcr0 & cr0::PG != 0 && gcr4 & cr4::PAE != 0)?;
        } else {
            ok(gcr4 & cr4::PCIDE == 0)?;
        }
        ok(phys_ok(g(f::GUEST_CR3)))?;
        ok(canonical(g(f::GUEST_SYSENTER_ESP)) && canonical(g(f::GUEST_SYSENTER_EIP)))?;
        if entryc & en::VM_ENTRY_LOAD_IA32_PAT != 0 {
            ok(pat_ok(g(f::GUEST_IA32_PAT)))?;
        }
        if entryc & en::VM_ENTRY_LOAD_IA32_EFER != 0 {
            let e = g(f::GUEST_IA32_EFER);
            ok(e & !(efer::WRITABLE | efer::LMA) == 0)?;
            ok((e & efer::LMA != 0) == ia32e)?;
            ok(gcr0 & cr0::PG == 0 || (e & efer::LMA != 0) == (e & efer::LME != 0))?;
        }
        // Segment registers (no virtual-8086 or unrestricted guests).
        let seg = |i: usize| {
            let (s, b, l, a) = SEG_FIELDS[i];
            (g(s), g(b), g(l), g(a) as u32)
        };
        let (tr_sel, tr_base, tr_lim, tr_ar) = {
            let (s, b, l, a) = TR_FIELDS;
            (g(s), g(b), g(l), g(a) as u32)
        };
        let (ld_sel, ld_base, ld_lim, ld_ar) = {
            let (s, b, l, a) = LDTR_FIELDS;
            (g(s), g(b), g(l), g(a) as u32)
        };
        let usable = |ar: u32| ar & sa::UNUSABLE == 0;
        let (cs_sel, cs_base, cs_lim, cs_ar) = seg(CS);
        let (ss_sel, _, _, ss_ar) = seg(SS);
        ok(tr_sel & 4 == 0)?;
        ok(!usable(ld_ar) || ld_sel & 4 == 0)?;
        ok(ss_sel & 3 == cs_sel & 3)?;
        ok(canonical(tr_base) && canonical(seg(4).1) && canonical(seg(5).1))?;
        ok(!usable(ld_ar) || canonical(ld_base))?;
        ok(cs_base >> 32 == 0)?;
        for i in [0, 2, 3] {
            let (_, b, _, a) = seg(i);
            ok(!usable(a) || b >> 32 == 0)?;
        }
        let g_ok = |lim: u64, ar: u32| {
            (lim & 0xFFF == 0xFFF || ar & sa::G == 0) && (lim >> 20 == 0 || ar & sa::G != 0) && lim >> 32 == 0
        };
        // CS.
        let cs_ty = cs_ar & 0xF;
        ok(matches!(cs_ty, 9 | 11 | 13 | 15))?;
        ok(cs_ar & sa::S != 0 && cs_ar & sa::P != 0 && cs_ar & 0xFFFE_0F00 == 0)?;
        let cs_dpl = (cs_ar >> 5) & 3;
        let ss_dpl = (ss_ar >> 5) & 3;
        ok(if cs_ty <= 11 { cs_dpl == ss_dpl } else { cs_dpl <= ss_dpl })?;
        ok(!(ia32e && cs_ar & sa::L != 0 && cs_ar & sa::DB != 0))?;
        ok(g_ok(cs_lim, cs_ar))?;
        // SS.
        ok(ss_dpl as u64 == ss_sel & 3)?;
        if usable(ss_ar) {
            ok(matches!(ss_ar & 0xF, 3 | 7) && ss_ar & sa::S != 0 && ss_ar & sa::P != 0 && ss_ar & 0xFFFE_0F00 == 0)?;
            ok(g_ok(seg(SS).2, ss_ar))?;
        }
        if gcr0 & cr0::PE == 0 {
            ok(ss_dpl == 0)?;
        }
        // DS, ES, FS, GS.
        for i in [0, 3, 4, 5] {
            let (sel, _, lim, ar) = seg(i);
            if !usable(ar) {
                continue;
            }
            let ty = ar & 0xF;
            ok(ty & 1 != 0 && (ty & 8 == 0 || ty & 2 != 0))?;
            ok(ar & sa::S != 0 && ar & sa::P != 0 && ar & 0xFFFE_0F00 == 0)?;
            if ty <= 11 {
                ok(u64::from((ar >> 5) & 3) >= sel & 3)?;
            }
            ok(g_ok(lim, ar))?;
        }
        // TR.
        let tr_ty = tr_ar & 0xF;
        ok(tr_ty == 11 || (tr_ty == 3 && !ia32e))?;
        ok(tr_ar & sa::S == 0 && tr_ar & sa::P != 0 && tr_ar & 0xFFFE_0F00 == 0 && usable(tr_ar))?;
        ok(g_ok(tr_lim, tr_ar))?;
        // LDTR.
        if usable(ld_ar) {
            ok(ld_ar & 0xF == 2 && ld_ar & sa::S == 0 && ld_ar & sa::P != 0 && ld_ar & 0xFFFE_0F00 == 0)?;
            ok(g_ok(ld_lim, ld_ar))?;
        }
        // Descriptor-table registers.
        ok(canonical(g(f::GUEST_GDTR_BASE)) && canonical(g(f::GUEST_IDTR_BASE)))?;
        ok(g(f::GUEST_GDTR_LIMIT) >> 16 == 0 && g(f::GUEST_IDTR_LIMIT) >> 16 == 0)?;
        // RIP and RFLAGS: check_guest_volatile.
        let info = g(f::VM_ENTRY_INTR_INFO_FIELD) as u32;
        let inject = info & it::VALID != 0;
        let ty = it::interruption_type(info);
        // Activity and interruptibility state.
        let act = g(f::GUEST_ACTIVITY_STATE) as u32;
        ok(act == activity::GUEST_ACTIVITY_ACTIVE || act == activity::GUEST_ACTIVITY_HLT)?;
        if act == activity::GUEST_ACTIVITY_HLT {
            ok(ss_dpl == 0 && caps.misc() & vmx_misc::ACTIVITY_HLT != 0)?;
        }
        let intr = g(f::GUEST_INTERRUPTIBILITY_INFO) as u32;
        let sti = intr & ib::GUEST_INTR_STATE_STI != 0;
        let movss = intr & ib::GUEST_INTR_STATE_MOV_SS != 0;
        ok(intr & ib::RESERVED_MASK == 0 && !(sti && movss))?;
        if sti || movss {
            ok(act == activity::GUEST_ACTIVITY_ACTIVE)?;
        }
        if inject && ty == it::TYPE_EXT_INTR {
            ok(!sti && !movss)?;
        }
        if inject && ty == it::TYPE_NMI {
            ok(!movss)?;
            // With virtual NMIs, an NMI cannot be injected under virtual-NMI blocking.
            let vnmi = g(f::PIN_BASED_VM_EXEC_CONTROL) as u32 & pin::PIN_BASED_VIRTUAL_NMIS != 0;
            ok(!(vnmi && intr & ib::GUEST_INTR_STATE_NMI != 0))?;
        }
        ok(intr & ib::GUEST_INTR_STATE_SMI == 0)?;
        if inject && act == activity::GUEST_ACTIVITY_HLT {
            // Only external interrupts, NMIs and #DB/#MC exceptions may be injected into HLT.
            let vec = it::vector(info);
            ok(matches!(ty, it::TYPE_EXT_INTR | it::TYPE_NMI)
                || (ty == it::TYPE_HARD_EXCEPTION && matches!(vec, 1 | 18)))?;
        }
        let pend = g(f::GUEST_PENDING_DBG_EXCEPTIONS);
        ok(pend & !(0xF | (1 << 12) | (1 << 14) | (1 << 16)) == 0)?;
        self.check_guest_volatile()
    }

    /// The guest-state checks on what changes between most entries — RIP, RFLAGS — and on
    /// the VMCS link pointer (whose region is memory): run with the other checks, and alone
    /// when the rest of the checked state is unchanged since they last passed (`Vmcs::valid`).
    /// Every failure here, but the link pointer's, is the same "invalid guest state" exit as
    /// the other guest checks', and the link pointer comes last, as in the SDM.
    fn check_guest_volatile(&self) -> Result<(), EntryError> {
        let g = |e| self.vmcs(e);
        let ok = |b: bool| {
            if b {
                Ok(())
            } else {
                if std::env::var_os("VMXSIM_DEBUG_ENTRY").is_some() {
                    eprintln!("guest-state check failed: RIP/RFLAGS");
                }
                Err(EntryError::Exit(r::INVALID_STATE, exit_qual::entry_failure::DEFAULT))
            }
        };
        let ia32e = g(f::VM_ENTRY_CONTROLS) as u32 & en::VM_ENTRY_IA32E_MODE != 0;
        let cs_ar = g(f::GUEST_CS_AR_BYTES) as u32;
        let rip = g(f::GUEST_RIP);
        if ia32e && cs_ar & sa::L != 0 {
            ok(canonical(rip))?;
        } else {
            ok(rip >> 32 == 0)?;
        }
        let fl = g(f::GUEST_RFLAGS);
        let reserved = !0x3F_FFFFu64 | (1 << 15) | (1 << 5) | (1 << 3);
        ok(fl & reserved == 0 && fl & rflags::FIXED1 != 0)?;
        if ia32e || g(f::GUEST_CR0) & cr0::PE == 0 {
            ok(fl & rflags::VM == 0)?;
        }
        let info = g(f::VM_ENTRY_INTR_INFO_FIELD) as u32;
        if info & it::VALID != 0 && it::interruption_type(info) == it::TYPE_EXT_INTR {
            ok(fl & rflags::IF != 0)?;
        }
        let sti = g(f::GUEST_INTERRUPTIBILITY_INFO) as u32 & ib::GUEST_INTR_STATE_STI != 0;
        ok(fl & rflags::IF != 0 || !sti)?;
        // VMCS link pointer.
        let link = g(f::VMCS_LINK_POINTER);
        if link != u64::MAX {
            let lfail = Err(EntryError::Exit(r::INVALID_STATE, exit_qual::entry_failure::VMCS_LINK_PTR));
            if !page_ok(link) {
                return lfail;
            }
            let shadowing = self.proc2() & p2::SECONDARY_EXEC_SHADOW_VMCS != 0;
            let rev = match self.vmcs_slot(link) {
                Some(i) => self.vmx.caps.revision() | if self.vmcs_is_shadow(i) { 1 << 31 } else { 0 },
                None => self.mem.read::<4>(link) as u32,
            };
            if rev & 0x7FFF_FFFF != self.vmx.caps.revision() || (rev >> 31 != 0) != shadowing {
                return lfail;
            }
        }
        Ok(())
    }

    fn load_guest_state(&mut self) {
        let g = |m: &Machine, e: u32| m.vmcs(e);
        let entryc = g(self, f::VM_ENTRY_CONTROLS) as u32;
        let ia32e = entryc & en::VM_ENTRY_IA32E_MODE != 0;
        let mut segs = [Segment::default(); 6];
        for (i, s) in segs.iter_mut().enumerate() {
            *s = load_seg(self, SEG_FIELDS[i]);
        }
        let ldtr = load_seg(self, LDTR_FIELDS);
        let tr = load_seg(self, TR_FIELDS);
        let vals = [
            g(self, f::GUEST_CR0),
            g(self, f::GUEST_CR3),
            g(self, f::GUEST_CR4),
            g(self, f::GUEST_RSP),
            g(self, f::GUEST_RIP),
            g(self, f::GUEST_RFLAGS),
            g(self, f::GUEST_GDTR_BASE),
            g(self, f::GUEST_GDTR_LIMIT),
            g(self, f::GUEST_IDTR_BASE),
            g(self, f::GUEST_IDTR_LIMIT),
            g(self, f::GUEST_SYSENTER_CS),
            g(self, f::GUEST_SYSENTER_ESP),
            g(self, f::GUEST_SYSENTER_EIP),
            g(self, f::GUEST_DR7),
            g(self, f::GUEST_IA32_DEBUGCTL),
            g(self, f::GUEST_IA32_EFER),
            g(self, f::GUEST_IA32_PAT),
            g(self, f::GUEST_INTERRUPTIBILITY_INFO),
            g(self, f::GUEST_ACTIVITY_STATE),
        ];
        let c = &mut self.cpu;
        c.cr0 = vals[0] | cr0::ET;
        c.cr3 = vals[1];
        c.cr4 = vals[2];
        if entryc & en::VM_ENTRY_LOAD_DEBUG_CONTROLS != 0 {
            c.dr[7] = vals[13] | 0x400;
            c.msr.debugctl = vals[14];
        }
        if entryc & en::VM_ENTRY_LOAD_IA32_EFER != 0 {
            c.efer = vals[15];
        } else if ia32e {
            c.efer |= efer::LMA | efer::LME;
        } else {
            c.efer &= !(efer::LMA | efer::LME);
        }
        if entryc & en::VM_ENTRY_LOAD_IA32_PAT != 0 {
            c.msr.pat = vals[16];
        }
        c.msr.sysenter_cs = vals[10];
        c.msr.sysenter_esp = vals[11];
        c.msr.sysenter_eip = vals[12];
        c.seg = segs;
        c.ldtr = ldtr;
        c.tr = tr;
        c.gdtr = DtReg { base: vals[6], limit: vals[7] as u16 };
        c.idtr = DtReg { base: vals[8], limit: vals[9] as u16 };
        c.gpr[4] = vals[3];
        c.rip = vals[4];
        c.set_rflags(vals[5]);
        c.cpl = ((c.seg[SS].attr >> 5) & 3) as u8;
        c.interrupt_shadow = vals[17] & u64::from(ib::GUEST_INTR_STATE_STI | ib::GUEST_INTR_STATE_MOV_SS) != 0;
        c.movss_shadow = vals[17] & u64::from(ib::GUEST_INTR_STATE_MOV_SS) != 0;
        c.halted = vals[18] as u32 == activity::GUEST_ACTIVITY_HLT;
        c.update_mode();
        self.load_nmi_blocking(vals[17] as u32);
        self.tlb_vm_entry();
    }

    /// The VM-entry MSR-load list; `Err` carries the failing entry's number (from 1).
    fn entry_msr_load(&mut self) -> Result<(), u64> {
        let n = self.vmcs(f::VM_ENTRY_MSR_LOAD_COUNT);
        let base = self.vmcs(f::VM_ENTRY_MSR_LOAD_ADDR);
        for i in 0..n {
            let e = base + 16 * i;
            let idx = self.mem.read::<4>(e) as u32;
            let rsvd = self.mem.read::<4>(e + 4);
            let v = self.mem.read::<8>(e + 8);
            let bad = rsvd != 0 || matches!(idx, msr::IA32_FS_BASE | msr::IA32_GS_BASE | 0x9B) || idx >> 8 == 0x8;
            if bad || self.write_msr(idx, v).is_err() {
                return Err(i + 1);
            }
        }
        Ok(())
    }

    /// Delivers the event in the VM-entry interruption-information field, if valid.
    fn inject_event(&mut self) {
        let info = self.vmcs(f::VM_ENTRY_INTR_INFO_FIELD) as u32;
        if info & it::VALID == 0 {
            return;
        }
        let vec = it::vector(info);
        let err =
            if info & it::DELIVER_CODE != 0 { Some(self.vmcs(f::VM_ENTRY_EXCEPTION_ERROR_CODE) as u32) } else { None };
        let kind = match it::interruption_type(info) {
            it::TYPE_SOFT_INTR => EventKind::Software,
            it::TYPE_SOFT_EXCEPTION => EventKind::SoftwareException,
            it::TYPE_PRIV_SW_EXCEPTION => EventKind::PrivilegedSoftware,
            it::TYPE_HARD_EXCEPTION => EventKind::Exception,
            _ => EventKind::External,
        };
        if matches!(kind, EventKind::Software | EventKind::SoftwareException | EventKind::PrivilegedSoftware) {
            let len = self.vmcs(f::VM_ENTRY_INSTRUCTION_LEN);
            self.cpu.rip = self.cpu.rip.wrapping_add(len) & self.cpu.ip_mask();
        }
        self.cpu.halted = false;
        self.cpu.interrupt_shadow = false;
        if it::interruption_type(info) == it::TYPE_NMI {
            self.inject_nmi_blocking();
        }
        let saved = self.cpu.clone();
        if let Err(fault) = self.deliver(vec, err, kind) {
            // A fault while delivering the injected event is handled like one raised by
            // the guest (the exception bitmap and double-fault rules apply). An EPT
            // violation exits with the injected event as the IDT-vectoring information.
            self.cpu = saved;
            if fault.is_vm_exit() {
                let len = self.vmcs(f::VM_ENTRY_INSTRUCTION_LEN);
                if matches!(kind, EventKind::Software | EventKind::SoftwareException | EventKind::PrivilegedSoftware) {
                    self.cpu.rip = self.cpu.rip.wrapping_sub(len) & self.cpu.ip_mask();
                    self.vmx.set(f::VM_EXIT_INSTRUCTION_LEN, len);
                }
                self.ept_pending_vectoring(info & !it::ENTRY_RESERVED_MASK, err);
            }
            // An exception exit reports the injected event as IDT-vectoring information
            // (software events would need the instruction length: not reported here).
            let soft =
                matches!(kind, EventKind::Software | EventKind::SoftwareException | EventKind::PrivilegedSoftware);
            let during = if soft { None } else { Some((info & !it::ENTRY_RESERVED_MASK, err)) };
            self.raise_during(fault, during);
        }
    }
}

fn load_seg(m: &Machine, (s, b, l, a): (u32, u32, u32, u32)) -> Segment {
    let attr = m.vmcs(a) as u32;
    Segment { selector: m.vmcs(s) as u16, base: m.vmcs(b), limit: m.vmcs(l) as u32, attr }
}
