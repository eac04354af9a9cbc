//! VM-instruction error numbers (Intel SDM Vol. 3C, section 31.4 "VM Instruction Error
//! Numbers"; 30.4 in older editions) as data.
//!
//! When a VMX instruction fails with VMfailValid (RFLAGS.ZF = 1, a current VMCS exists),
//! the processor stores one of these numbers in the `VM_INSTRUCTION_ERROR` VMCS field.
//! Numbers 14, 21 and 27 are not assigned by the SDM and have no variant.

use core::fmt;

/// A VM-instruction error number.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VmInstructionError {
    /// VMCALL executed in VMX root operation.
    VmcallInVmxRoot = 1,
    /// VMCLEAR with an invalid physical address.
    VmclearInvalidAddress = 2,
    /// VMCLEAR with the VMXON pointer.
    VmclearVmxonPointer = 3,
    /// VMLAUNCH with a VMCS whose launch state is not clear.
    VmlaunchNonClearVmcs = 4,
    /// VMRESUME with a VMCS whose launch state is not launched.
    VmresumeNonLaunchedVmcs = 5,
    /// VMRESUME after VMXOFF (VMXOFF and VMXON between VMLAUNCH and VMRESUME).
    VmresumeAfterVmxoff = 6,
    /// VM entry with invalid control field(s).
    EntryInvalidControlFields = 7,
    /// VM entry with invalid host-state field(s).
    EntryInvalidHostStateFields = 8,
    /// VMPTRLD with an invalid physical address.
    VmptrldInvalidAddress = 9,
    /// VMPTRLD with the VMXON pointer.
    VmptrldVmxonPointer = 10,
    /// VMPTRLD with an incorrect VMCS revision identifier.
    VmptrldIncorrectRevisionId = 11,
    /// VMREAD/VMWRITE naming an unsupported VMCS component.
    UnsupportedVmcsComponent = 12,
    /// VMWRITE to a read-only VMCS component.
    VmwriteReadOnlyComponent = 13,
    /// VMXON executed in VMX root operation.
    VmxonInVmxRoot = 15,
    /// VM entry with an invalid executive-VMCS pointer.
    EntryInvalidExecutiveVmcsPointer = 16,
    /// VM entry with a non-launched executive VMCS.
    EntryNonLaunchedExecutiveVmcs = 17,
    /// VM entry with an executive-VMCS pointer that is not the VMXON pointer (when
    /// attempting to deactivate the dual-monitor treatment of SMIs and SMM).
    EntryExecutiveVmcsPointerNotVmxon = 18,
    /// VMCALL with a non-clear VMCS (when attempting to activate the dual-monitor
    /// treatment of SMIs and SMM).
    VmcallNonClearVmcs = 19,
    /// VMCALL with invalid VM-exit control fields.
    VmcallInvalidVmExitControlFields = 20,
    /// VMCALL with an incorrect MSEG revision identifier.
    VmcallIncorrectMsegRevisionId = 22,
    /// VMXOFF under the dual-monitor treatment of SMIs and SMM.
    VmxoffUnderDualMonitor = 23,
    /// VMCALL with invalid SMM-monitor features.
    VmcallInvalidSmmMonitorFeatures = 24,
    /// VM entry with invalid VM-execution control fields in the executive VMCS.
    EntryInvalidVmExecControlFieldsInExecutiveVmcs = 25,
    /// VM entry with events blocked by MOV SS.
    EntryEventsBlockedByMovSs = 26,
    /// Invalid operand to INVEPT/INVVPID.
    InvalidOperandToInveptInvvpid = 28,
}

impl VmInstructionError {
    /// Every error, in numeric order.
    pub const ALL: [Self; 25] = [
        Self::VmcallInVmxRoot,
        Self::VmclearInvalidAddress,
        Self::VmclearVmxonPointer,
        Self::VmlaunchNonClearVmcs,
        Self::VmresumeNonLaunchedVmcs,
        Self::VmresumeAfterVmxoff,
        Self::EntryInvalidControlFields,
        Self::EntryInvalidHostStateFields,
        Self::VmptrldInvalidAddress,
        Self::VmptrldVmxonPointer,
        Self::VmptrldIncorrectRevisionId,
        Self::UnsupportedVmcsComponent,
        Self::VmwriteReadOnlyComponent,
        Self::VmxonInVmxRoot,
        Self::EntryInvalidExecutiveVmcsPointer,
        Self::EntryNonLaunchedExecutiveVmcs,
        Self::EntryExecutiveVmcsPointerNotVmxon,
        Self::VmcallNonClearVmcs,
        Self::VmcallInvalidVmExitControlFields,
        Self::VmcallIncorrectMsegRevisionId,
        Self::VmxoffUnderDualMonitor,
        Self::VmcallInvalidSmmMonitorFeatures,
        Self::EntryInvalidVmExecControlFieldsInExecutiveVmcs,
        Self::EntryEventsBlockedByMovSs,
        Self::InvalidOperandToInveptInvvpid,
    ];

    /// The number stored in `VM_INSTRUCTION_ERROR`.
    pub const fn number(self) -> u32 {
        self as u32
    }

    /// The error with number `n`, or `None` for 0 (no error) and unassigned numbers.
    pub const fn from_number(n: u32) -> Option<Self> {
        Some(match n {
            1 => Self::VmcallInVmxRoot,
            2 => Self::VmclearInvalidAddress,
            3 => Self::VmclearVmxonPointer,
            4 => Self::VmlaunchNonClearVmcs,
            5 => Self::VmresumeNonLaunchedVmcs,
            6 => Self::VmresumeAfterVmxoff,
            7 => Self::EntryInvalidControlFields,
            8 => Self::EntryInvalidHostStateFields,
            9 => Self::VmptrldInvalidAddress,
            10 => Self::VmptrldVmxonPointer,
            11 => Self::VmptrldIncorrectRevisionId,
            12 => Self::UnsupportedVmcsComponent,
            13 => Self::VmwriteReadOnlyComponent,
            15 => Self::VmxonInVmxRoot,
            16 => Self::EntryInvalidExecutiveVmcsPointer,
            17 => Self::EntryNonLaunchedExecutiveVmcs,
            18 => Self::EntryExecutiveVmcsPointerNotVmxon,
            19 => Self::VmcallNonClearVmcs,
            20 => Self::VmcallInvalidVmExitControlFields,
            22 => Self::VmcallIncorrectMsegRevisionId,
            23 => Self::VmxoffUnderDualMonitor,
            24 => Self::VmcallInvalidSmmMonitorFeatures,
            25 => Self::EntryInvalidVmExecControlFieldsInExecutiveVmcs,
            26 => Self::EntryEventsBlockedByMovSs,
            28 => Self::InvalidOperandToInveptInvvpid,
            _ => return None,
        })
    }

    /// A one-line description, paraphrasing the SDM's table.
    pub const fn description(self) -> &'static str {
        match self {
            Self::VmcallInVmxRoot => "VMCALL executed in VMX root operation",
            Self::VmclearInvalidAddress => "VMCLEAR with invalid physical address",
            Self::VmclearVmxonPointer => "VMCLEAR with VMXON pointer",
            Self::VmlaunchNonClearVmcs => "VMLAUNCH with non-clear VMCS",
            Self::VmresumeNonLaunchedVmcs => "VMRESUME with non-launched VMCS",
            Self::VmresumeAfterVmxoff => "VMRESUME after VMXOFF (VMXOFF and VMXON between VMLAUNCH and VMRESUME)",
            Self::EntryInvalidControlFields => "VM entry with invalid control field(s)",
            Self::EntryInvalidHostStateFields => "VM entry with invalid host-state field(s)",
            Self::VmptrldInvalidAddress => "VMPTRLD with invalid physical address",
            Self::VmptrldVmxonPointer => "VMPTRLD with VMXON pointer",
            Self::VmptrldIncorrectRevisionId => "VMPTRLD with incorrect VMCS revision identifier",
            Self::UnsupportedVmcsComponent => "VMREAD/VMWRITE from/to unsupported VMCS component",
            Self::VmwriteReadOnlyComponent => "VMWRITE to read-only VMCS component",
            Self::VmxonInVmxRoot => "VMXON executed in VMX root operation",
            Self::EntryInvalidExecutiveVmcsPointer => "VM entry with invalid executive-VMCS pointer",
            Self::EntryNonLaunchedExecutiveVmcs => "VM entry with non-launched executive VMCS",
            Self::EntryExecutiveVmcsPointerNotVmxon => {
                "VM entry with executive-VMCS pointer not VMXON pointer (when deactivating \
                 the dual-monitor treatment of SMIs and SMM)"
            }
            Self::VmcallNonClearVmcs => {
                "VMCALL with non-clear VMCS (when activating the dual-monitor treatment of \
                 SMIs and SMM)"
            }
            Self::VmcallInvalidVmExitControlFields => "VMCALL with invalid VM-exit control fields",
            Self::VmcallIncorrectMsegRevisionId => "VMCALL with incorrect MSEG revision identifier",
            Self::VmxoffUnderDualMonitor => "VMXOFF under dual-monitor treatment of SMIs and SMM",
            Self::VmcallInvalidSmmMonitorFeatures => "VMCALL with invalid SMM-monitor features",
            Self::EntryInvalidVmExecControlFieldsInExecutiveVmcs => {
                "VM entry with invalid VM-execution control fields in executive VMCS"
            }
            Self::EntryEventsBlockedByMovSs => "VM entry with events blocked by MOV SS",
            Self::InvalidOperandToInveptInvvpid => "invalid operand to INVEPT/INVVPID",
        }
    }

    /// Whether the error can be reported by VMLAUNCH/VMRESUME (a failed VM entry), as
    /// opposed to the other VMX instructions.
    pub const fn is_vm_entry_error(self) -> bool {
        matches!(
            self,
            Self::VmlaunchNonClearVmcs
                | Self::VmresumeNonLaunchedVmcs
                | Self::VmresumeAfterVmxoff
                | Self::EntryInvalidControlFields
                | Self::EntryInvalidHostStateFields
                | Self::EntryInvalidExecutiveVmcsPointer
                | Self::EntryNonLaunchedExecutiveVmcs
                | Self::EntryExecutiveVmcsPointerNotVmxon
                | Self::EntryInvalidVmExecControlFieldsInExecutiveVmcs
                | Self::EntryEventsBlockedByMovSs
        )
    }
}

impl From<VmInstructionError> for u32 {
    fn from(e: VmInstructionError) -> Self {
        e.number()
    }
}

impl TryFrom<u32> for VmInstructionError {
    /// The rejected number.
    type Error = u32;

    fn try_from(n: u32) -> Result<Self, u32> {
        Self::from_number(n).ok_or(n)
    }
}

impl fmt::Display for VmInstructionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VM-instruction error {}: {}", self.number(), self.description())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbering_matches_sdm() {
        assert_eq!(VmInstructionError::VmcallInVmxRoot.number(), 1);
        assert_eq!(VmInstructionError::EntryInvalidControlFields.number(), 7);
        assert_eq!(VmInstructionError::EntryInvalidHostStateFields.number(), 8);
        assert_eq!(VmInstructionError::UnsupportedVmcsComponent.number(), 12);
        assert_eq!(VmInstructionError::VmwriteReadOnlyComponent.number(), 13);
        assert_eq!(VmInstructionError::VmxonInVmxRoot.number(), 15);
        assert_eq!(VmInstructionError::EntryEventsBlockedByMovSs.number(), 26);
        assert_eq!(VmInstructionError::InvalidOperandToInveptInvvpid.number(), 28);
    }

    #[test]
    fn round_trip_and_gaps() {
        let mut seen = 0;
        for n in 0..64u32 {
            match VmInstructionError::from_number(n) {
                Some(e) => {
                    assert_eq!(e.number(), n);
                    assert_eq!(VmInstructionError::try_from(n), Ok(e));
                    assert_eq!(u32::from(e), n);
                    seen += 1;
                }
                None => assert!(matches!(n, 0 | 14 | 21 | 27) || n > 28, "{n}"),
            }
        }
        assert_eq!(seen, VmInstructionError::ALL.len());
        assert_eq!(VmInstructionError::try_from(14), Err(14));
    }

    #[test]
    fn all_is_sorted_and_described() {
        assert!(VmInstructionError::ALL.windows(2).all(|w| w[0] < w[1]));
        for e in VmInstructionError::ALL {
            assert!(!e.description().is_empty());
            assert!(e.to_string().starts_with(&format!("VM-instruction error {}:", e.number())));
        }
        let entry = VmInstructionError::ALL.iter().filter(|e| e.is_vm_entry_error()).count();
        assert_eq!(entry, 10);
    }
}
