//! VM-exit reasons (Intel SDM Vol. 3C, appendix C) as data.
//!
//! The exit-reason VMCS field (`VM_EXIT_REASON`) holds the basic exit reason in bits 15:0
//! and a few flags above it; [`reason`] names every basic reason the SDM defines, and
//! [`name`]/[`from_name`] translate between numbers and the names Linux's trace events
//! print (`arch/x86/include/uapi/asm/vmx.h`, `VMX_EXIT_REASONS`), so simulator traces read
//! like `trace-cmd` output from a real KVM host.
//!
//! Reasons the uapi header does not name (SIPI, SMIs, GETSEC, RSM, PCONFIG, SPP, LOADIWKEY,
//! ENCLV, the PASID-translation failures, SEAMCALL, the MSR-list and user-MSR instructions)
//! carry the SDM's description written in the same upper-case style; they are marked
//! "not in uapi" below. Numbers the SDM leaves unassigned (35, 38, 42, 71, 82, 83) have
//! no name.

/// Basic exit reasons (bits 15:0 of the exit-reason field).
pub mod reason {
    /// Exception or non-maskable interrupt.
    pub const EXCEPTION_NMI: u32 = 0;
    /// External interrupt.
    pub const EXTERNAL_INTERRUPT: u32 = 1;
    /// Triple fault.
    pub const TRIPLE_FAULT: u32 = 2;
    /// INIT signal.
    pub const INIT_SIGNAL: u32 = 3;
    /// Start-up IPI (not in uapi).
    pub const SIPI: u32 = 4;
    /// I/O system-management interrupt (not in uapi).
    pub const IO_SMI: u32 = 5;
    /// Other SMI (not in uapi).
    pub const OTHER_SMI: u32 = 6;
    /// Interrupt window ("interrupt-window exiting").
    pub const PENDING_INTERRUPT: u32 = 7;
    /// NMI window.
    pub const NMI_WINDOW: u32 = 8;
    /// Task switch.
    pub const TASK_SWITCH: u32 = 9;
    /// CPUID.
    pub const CPUID: u32 = 10;
    /// GETSEC (not in uapi).
    pub const GETSEC: u32 = 11;
    /// HLT.
    pub const HLT: u32 = 12;
    /// INVD.
    pub const INVD: u32 = 13;
    /// INVLPG.
    pub const INVLPG: u32 = 14;
    /// RDPMC.
    pub const RDPMC: u32 = 15;
    /// RDTSC.
    pub const RDTSC: u32 = 16;
    /// RSM in SMM (not in uapi).
    pub const RSM: u32 = 17;
    /// VMCALL.
    pub const VMCALL: u32 = 18;
    /// VMCLEAR.
    pub const VMCLEAR: u32 = 19;
    /// VMLAUNCH.
    pub const VMLAUNCH: u32 = 20;
    /// VMPTRLD.
    pub const VMPTRLD: u32 = 21;
    /// VMPTRST.
    pub const VMPTRST: u32 = 22;
    /// VMREAD.
    pub const VMREAD: u32 = 23;
    /// VMRESUME.
    pub const VMRESUME: u32 = 24;
    /// VMWRITE.
    pub const VMWRITE: u32 = 25;
    /// VMXOFF.
    pub const VMOFF: u32 = 26;
    /// VMXON.
    pub const VMON: u32 = 27;
    /// Control-register access.
    pub const CR_ACCESS: u32 = 28;
    /// MOV DR.
    pub const DR_ACCESS: u32 = 29;
    /// I/O instruction.
    pub const IO_INSTRUCTION: u32 = 30;
    /// RDMSR.
    pub const MSR_READ: u32 = 31;
    /// WRMSR.
    pub const MSR_WRITE: u32 = 32;
    /// VM-entry failure due to invalid guest state.
    pub const INVALID_STATE: u32 = 33;
    /// VM-entry failure due to MSR loading.
    pub const MSR_LOAD_FAIL: u32 = 34;
    /// MWAIT.
    pub const MWAIT_INSTRUCTION: u32 = 36;
    /// Monitor trap flag.
    pub const MONITOR_TRAP_FLAG: u32 = 37;
    /// MONITOR.
    pub const MONITOR_INSTRUCTION: u32 = 39;
    /// PAUSE.
    pub const PAUSE_INSTRUCTION: u32 = 40;
    /// VM-entry failure due to machine-check event.
    pub const MCE_DURING_VMENTRY: u32 = 41;
    /// TPR below threshold.
    pub const TPR_BELOW_THRESHOLD: u32 = 43;
    /// APIC access.
    pub const APIC_ACCESS: u32 = 44;
    /// Virtualized EOI.
    pub const EOI_INDUCED: u32 = 45;
    /// Access to GDTR or IDTR.
    pub const GDTR_IDTR: u32 = 46;
    /// Access to LDTR or TR.
    pub const LDTR_TR: u32 = 47;
    /// EPT violation.
    pub const EPT_VIOLATION: u32 = 48;
    /// EPT misconfiguration.
    pub const EPT_MISCONFIG: u32 = 49;
    /// INVEPT.
    pub const INVEPT: u32 = 50;
    /// RDTSCP.
    pub const RDTSCP: u32 = 51;
    /// VMX-preemption timer expired.
    pub const PREEMPTION_TIMER: u32 = 52;
    /// INVVPID.
    pub const INVVPID: u32 = 53;
    /// WBINVD or WBNOINVD.
    pub const WBINVD: u32 = 54;
    /// XSETBV.
    pub const XSETBV: u32 = 55;
    /// APIC write.
    pub const APIC_WRITE: u32 = 56;
    /// RDRAND.
    pub const RDRAND: u32 = 57;
    /// INVPCID.
    pub const INVPCID: u32 = 58;
    /// VMFUNC.
    pub const VMFUNC: u32 = 59;
    /// ENCLS.
    pub const ENCLS: u32 = 60;
    /// RDSEED.
    pub const RDSEED: u32 = 61;
    /// Page-modification log full.
    pub const PML_FULL: u32 = 62;
    /// XSAVES.
    pub const XSAVES: u32 = 63;
    /// XRSTORS.
    pub const XRSTORS: u32 = 64;
    /// PCONFIG (not in uapi).
    pub const PCONFIG: u32 = 65;
    /// SPP-related event (not in uapi).
    pub const SPP_EVENT: u32 = 66;
    /// UMWAIT.
    pub const UMWAIT: u32 = 67;
    /// TPAUSE.
    pub const TPAUSE: u32 = 68;
    /// LOADIWKEY (not in uapi).
    pub const LOADIWKEY: u32 = 69;
    /// ENCLV (not in uapi).
    pub const ENCLV: u32 = 70;
    /// ENQCMD PASID translation failure (not in uapi).
    pub const ENQCMD_PASID_FAIL: u32 = 72;
    /// ENQCMDS PASID translation failure (not in uapi).
    pub const ENQCMDS_PASID_FAIL: u32 = 73;
    /// Bus lock.
    pub const BUS_LOCK: u32 = 74;
    /// Instruction timeout ("notify VM exit").
    pub const NOTIFY: u32 = 75;
    /// SEAMCALL (not in uapi).
    pub const SEAMCALL: u32 = 76;
    /// TDCALL.
    pub const TDCALL: u32 = 77;
    /// RDMSRLIST (not in uapi).
    pub const RDMSRLIST: u32 = 78;
    /// WRMSRLIST (not in uapi).
    pub const WRMSRLIST: u32 = 79;
    /// URDMSR (not in uapi).
    pub const URDMSR: u32 = 80;
    /// UWRMSR (not in uapi).
    pub const UWRMSR: u32 = 81;
    /// RDMSR with an immediate operand.
    pub const MSR_READ_IMM: u32 = 84;
    /// WRMSRNS with an immediate operand.
    pub const MSR_WRITE_IMM: u32 = 85;
}

/// Bit 31 of the exit-reason field: VM-entry failure (the basic reason is then 33, 34
/// or 41).
pub const ENTRY_FAILURE: u32 = 1 << 31;
/// Bit 29: the exit (an SMM VM exit) came from VMX root operation.
pub const FROM_VMX_ROOT: u32 = 1 << 29;
/// Bit 28: an MTF VM exit was pending when an SMM VM exit occurred.
pub const PENDING_MTF: u32 = 1 << 28;
/// Bit 27: the exit occurred from enclave mode.
pub const ENCLAVE_MODE: u32 = 1 << 27;
/// Bit 26: a bus lock was asserted while executing the instruction that caused the exit
/// (VMM bus-lock detection).
pub const BUS_LOCK_DETECTED: u32 = 1 << 26;
/// Bits 15:0: the basic exit reason.
pub const BASIC_MASK: u32 = 0xFFFF;

/// The basic exit reason (bits 15:0) of an exit-reason field value.
pub const fn basic(exit_reason: u32) -> u16 {
    (exit_reason & BASIC_MASK) as u16
}

/// Whether an exit-reason field value reports a VM-entry failure (bit 31).
pub const fn is_entry_failure(exit_reason: u32) -> bool {
    exit_reason & ENTRY_FAILURE != 0
}

/// Every defined basic exit reason with its trace name, in numeric order.
pub static EXIT_REASONS: &[(u32, &str)] = &[
    (reason::EXCEPTION_NMI, "EXCEPTION_NMI"),
    (reason::EXTERNAL_INTERRUPT, "EXTERNAL_INTERRUPT"),
    (reason::TRIPLE_FAULT, "TRIPLE_FAULT"),
    (reason::INIT_SIGNAL, "INIT_SIGNAL"),
    (reason::SIPI, "SIPI"),
    (reason::IO_SMI, "IO_SMI"),
    (reason::OTHER_SMI, "OTHER_SMI"),
    (reason::PENDING_INTERRUPT, "PENDING_INTERRUPT"),
    (reason::NMI_WINDOW, "NMI_WINDOW"),
    (reason::TASK_SWITCH, "TASK_SWITCH"),
    (reason::CPUID, "CPUID"),
    (reason::GETSEC, "GETSEC"),
    (reason::HLT, "HLT"),
    (reason::INVD, "INVD"),
    (reason::INVLPG, "INVLPG"),
    (reason::RDPMC, "RDPMC"),
    (reason::RDTSC, "RDTSC"),
    (reason::RSM, "RSM"),
    (reason::VMCALL, "VMCALL"),
    (reason::VMCLEAR, "VMCLEAR"),
    (reason::VMLAUNCH, "VMLAUNCH"),
    (reason::VMPTRLD, "VMPTRLD"),
    (reason::VMPTRST, "VMPTRST"),
    (reason::VMREAD, "VMREAD"),
    (reason::VMRESUME, "VMRESUME"),
    (reason::VMWRITE, "VMWRITE"),
    (reason::VMOFF, "VMOFF"),
    (reason::VMON, "VMON"),
    (reason::CR_ACCESS, "CR_ACCESS"),
    (reason::DR_ACCESS, "DR_ACCESS"),
    (reason::IO_INSTRUCTION, "IO_INSTRUCTION"),
    (reason::MSR_READ, "MSR_READ"),
    (reason::MSR_WRITE, "MSR_WRITE"),
    (reason::INVALID_STATE, "INVALID_STATE"),
    (reason::MSR_LOAD_FAIL, "MSR_LOAD_FAIL"),
    (reason::MWAIT_INSTRUCTION, "MWAIT_INSTRUCTION"),
    (reason::MONITOR_TRAP_FLAG, "MONITOR_TRAP_FLAG"),
    (reason::MONITOR_INSTRUCTION, "MONITOR_INSTRUCTION"),
    (reason::PAUSE_INSTRUCTION, "PAUSE_INSTRUCTION"),
    (reason::MCE_DURING_VMENTRY, "MCE_DURING_VMENTRY"),
    (reason::TPR_BELOW_THRESHOLD, "TPR_BELOW_THRESHOLD"),
    (reason::APIC_ACCESS, "APIC_ACCESS"),
    (reason::EOI_INDUCED, "EOI_INDUCED"),
    (reason::GDTR_IDTR, "GDTR_IDTR"),
    (reason::LDTR_TR, "LDTR_TR"),
    (reason::EPT_VIOLATION, "EPT_VIOLATION"),
    (reason::EPT_MISCONFIG, "EPT_MISCONFIG"),
    (reason::INVEPT, "INVEPT"),
    (reason::RDTSCP, "RDTSCP"),
    (reason::PREEMPTION_TIMER, "PREEMPTION_TIMER"),
    (reason::INVVPID, "INVVPID"),
    (reason::WBINVD, "WBINVD"),
    (reason::XSETBV, "XSETBV"),
    (reason::APIC_WRITE, "APIC_WRITE"),
    (reason::RDRAND, "RDRAND"),
    (reason::INVPCID, "INVPCID"),
    (reason::VMFUNC, "VMFUNC"),
    (reason::ENCLS, "ENCLS"),
    (reason::RDSEED, "RDSEED"),
    (reason::PML_FULL, "PML_FULL"),
    (reason::XSAVES, "XSAVES"),
    (reason::XRSTORS, "XRSTORS"),
    (reason::PCONFIG, "PCONFIG"),
    (reason::SPP_EVENT, "SPP_EVENT"),
    (reason::UMWAIT, "UMWAIT"),
    (reason::TPAUSE, "TPAUSE"),
    (reason::LOADIWKEY, "LOADIWKEY"),
    (reason::ENCLV, "ENCLV"),
    (reason::ENQCMD_PASID_FAIL, "ENQCMD_PASID_FAIL"),
    (reason::ENQCMDS_PASID_FAIL, "ENQCMDS_PASID_FAIL"),
    (reason::BUS_LOCK, "BUS_LOCK"),
    (reason::NOTIFY, "NOTIFY"),
    (reason::SEAMCALL, "SEAMCALL"),
    (reason::TDCALL, "TDCALL"),
    (reason::RDMSRLIST, "RDMSRLIST"),
    (reason::WRMSRLIST, "WRMSRLIST"),
    (reason::URDMSR, "URDMSR"),
    (reason::UWRMSR, "UWRMSR"),
    (reason::MSR_READ_IMM, "MSR_READ_IMM"),
    (reason::MSR_WRITE_IMM, "MSR_WRITE_IMM"),
];

/// Prefix Linux uses for its exit-reason macros; [`from_name`] accepts names with it.
const MACRO_PREFIX: &str = "EXIT_REASON_";

/// Trace name of a basic exit reason, e.g. `name(10) == Some("CPUID")`; `None` for numbers
/// the SDM does not assign.
pub fn name(basic: u16) -> Option<&'static str> {
    let basic = u32::from(basic);
    EXIT_REASONS.binary_search_by_key(&basic, |&(n, _)| n).ok().and_then(|i| EXIT_REASONS.get(i)).map(|&(_, s)| s)
}

/// Basic exit reason for a trace name, e.g. `from_name("CPUID") == Some(10)`. The match is
/// exact (case-sensitive); Linux's `EXIT_REASON_` macro prefix is also accepted.
pub fn from_name(name: &str) -> Option<u16> {
    let name = name.strip_prefix(MACRO_PREFIX).unwrap_or(name);
    EXIT_REASONS.iter().find(|&&(_, s)| s == name).and_then(|&(n, _)| u16::try_from(n).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn reference_numbers() {
        let expect = [
            ("CPUID", 10),
            ("HLT", 12),
            ("VMCALL", 18),
            ("VMREAD", 23),
            ("VMRESUME", 24),
            ("VMWRITE", 25),
            ("IO_INSTRUCTION", 30),
            ("MSR_READ", 31),
            ("MSR_WRITE", 32),
            ("EPT_VIOLATION", 48),
            ("PREEMPTION_TIMER", 52),
            ("XSETBV", 55),
        ];
        for (n, v) in expect {
            assert_eq!(from_name(n), Some(v), "{n}");
            assert_eq!(name(v), Some(n));
        }
        assert_eq!(reason::CPUID, 10);
        assert_eq!(reason::EPT_MISCONFIG, 49);
        assert_eq!(reason::PML_FULL, 62);
        assert_eq!(reason::INVALID_STATE, 33);
        assert_eq!(reason::MSR_LOAD_FAIL, 34);
        assert_eq!(reason::MCE_DURING_VMENTRY, 41);
    }

    #[test]
    fn round_trip_all() {
        for &(n, s) in EXIT_REASONS {
            let n16 = u16::try_from(n).expect("basic reasons fit in 16 bits");
            assert_eq!(name(n16), Some(s));
            assert_eq!(from_name(s), Some(n16));
            assert_eq!(from_name(&format!("EXIT_REASON_{s}")), Some(n16));
        }
    }

    #[test]
    fn table_sorted_unique() {
        assert!(EXIT_REASONS.windows(2).all(|w| w[0].0 < w[1].0));
        let names: HashSet<_> = EXIT_REASONS.iter().map(|e| e.1).collect();
        assert_eq!(names.len(), EXIT_REASONS.len());
    }

    #[test]
    fn unassigned_numbers_have_no_name() {
        for n in [35u16, 38, 42, 71, 82, 83, 86, 0xFFFF] {
            assert_eq!(name(n), None, "{n}");
        }
        assert_eq!(from_name("cpuid"), None);
        assert_eq!(from_name(""), None);
        assert_eq!(from_name("EXIT_REASON_"), None);
    }

    #[test]
    fn exit_reason_field_helpers() {
        let v = ENTRY_FAILURE | reason::INVALID_STATE;
        assert!(is_entry_failure(v));
        assert_eq!(basic(v), 33);
        assert!(!is_entry_failure(reason::HLT));
        assert_eq!(ENTRY_FAILURE, 0x8000_0000);
    }
}
