//! VMX control bits, capability MSRs and the layouts of VMX information fields (Intel SDM
//! Vol. 3C: the VMCS chapter, the VM-exit chapter, the EPT sections and appendix A) as data.
//!
//! What is here:
//! - the bits of every VM-execution, VM-exit and VM-entry control word, one module per
//!   word ([`pin`], [`proc1`], [`proc2`], [`proc3`], [`exit`], [`exit2`], [`entry`]) under
//!   the names Linux/KVM uses (`arch/x86/include/asm/vmx.h`), each module with the word's
//!   "default1" class ([`pin::DEFAULT1`] ...) and a [`pin::BITS`]-style name table for
//!   decoding values in traces;
//! - the VMX capability MSR indices ([`msr`]) and the layouts of IA32_FEATURE_CONTROL,
//!   IA32_VMX_BASIC, IA32_VMX_MISC and IA32_VMX_EPT_VPID_CAP;
//! - the interruption-information format, exit-qualification layouts (I/O, control- and
//!   debug-register accesses, EPT violations, VM-entry failures), the VMX-instruction
//!   information layout, EPT entry and EPTP bits, memory types, activity states, guest
//!   interruptibility bits and INVEPT/INVVPID types.
//!
//! Bit names Linux never defined are written in the same style and say so in their doc
//! comment. Nothing here decides what a CPU model supports; it only says where bits are.

/// Declares the named bits of one control word (`NAME = bit number`) and generates the
/// `BITS` name table and the `DEFINED` union from the same list.
macro_rules! control_bits {
    ($ty:ty; $( $(#[$meta:meta])* $name:ident = $bit:expr, )*) => {
        $(
            $(#[$meta])*
            pub const $name: $ty = 1 << $bit;
        )*

        /// Every named bit of this control word with its name, in bit order.
        pub static BITS: &[(&str, $ty)] = &[ $( (stringify!($name), $name), )* ];

        /// Union of every named bit of this control word.
        pub const DEFINED: $ty = 0 $( | $name )*;
    };
}

/// Pin-based VM-execution controls (`PIN_BASED_VM_EXEC_CONTROL`, SDM table "Definitions of
/// Pin-Based VM-Execution Controls").
pub mod pin {
    control_bits! { u32;
        /// Bit 0: external interrupts cause VM exits.
        PIN_BASED_EXT_INTR_MASK = 0,
        /// Bit 3: NMIs cause VM exits.
        PIN_BASED_NMI_EXITING = 3,
        /// Bit 5: virtual NMIs.
        PIN_BASED_VIRTUAL_NMIS = 5,
        /// Bit 6: activate the VMX-preemption timer.
        PIN_BASED_VMX_PREEMPTION_TIMER = 6,
        /// Bit 7: process posted interrupts.
        PIN_BASED_POSTED_INTR = 7,
    }

    /// Default1 class (SDM A.3.1): bits 1, 2 and 4 are reserved and must be 1 unless
    /// IA32_VMX_TRUE_PINBASED_CTLS says otherwise. Linux: `PIN_BASED_ALWAYSON_WITHOUT_TRUE_MSR`.
    pub const DEFAULT1: u32 = 0x0000_0016;
}

/// Primary processor-based VM-execution controls (`CPU_BASED_VM_EXEC_CONTROL`).
pub mod proc1 {
    control_bits! { u32;
        /// Bit 2: interrupt-window exiting.
        CPU_BASED_INTR_WINDOW_EXITING = 2,
        /// Bit 3: use TSC offsetting.
        CPU_BASED_USE_TSC_OFFSETTING = 3,
        /// Bit 7: HLT exiting.
        CPU_BASED_HLT_EXITING = 7,
        /// Bit 9: INVLPG exiting.
        CPU_BASED_INVLPG_EXITING = 9,
        /// Bit 10: MWAIT exiting.
        CPU_BASED_MWAIT_EXITING = 10,
        /// Bit 11: RDPMC exiting.
        CPU_BASED_RDPMC_EXITING = 11,
        /// Bit 12: RDTSC exiting.
        CPU_BASED_RDTSC_EXITING = 12,
        /// Bit 15: CR3-load exiting (default1).
        CPU_BASED_CR3_LOAD_EXITING = 15,
        /// Bit 16: CR3-store exiting (default1).
        CPU_BASED_CR3_STORE_EXITING = 16,
        /// Bit 17: activate tertiary controls.
        CPU_BASED_ACTIVATE_TERTIARY_CONTROLS = 17,
        /// Bit 19: CR8-load exiting.
        CPU_BASED_CR8_LOAD_EXITING = 19,
        /// Bit 20: CR8-store exiting.
        CPU_BASED_CR8_STORE_EXITING = 20,
        /// Bit 21: use TPR shadow.
        CPU_BASED_TPR_SHADOW = 21,
        /// Bit 22: NMI-window exiting.
        CPU_BASED_NMI_WINDOW_EXITING = 22,
        /// Bit 23: MOV-DR exiting.
        CPU_BASED_MOV_DR_EXITING = 23,
        /// Bit 24: unconditional I/O exiting.
        CPU_BASED_UNCOND_IO_EXITING = 24,
        /// Bit 25: use I/O bitmaps.
        CPU_BASED_USE_IO_BITMAPS = 25,
        /// Bit 27: monitor trap flag.
        CPU_BASED_MONITOR_TRAP_FLAG = 27,
        /// Bit 28: use MSR bitmaps.
        CPU_BASED_USE_MSR_BITMAPS = 28,
        /// Bit 29: MONITOR exiting.
        CPU_BASED_MONITOR_EXITING = 29,
        /// Bit 30: PAUSE exiting.
        CPU_BASED_PAUSE_EXITING = 30,
        /// Bit 31: activate secondary controls.
        CPU_BASED_ACTIVATE_SECONDARY_CONTROLS = 31,
    }

    /// Default1 class (SDM A.3.2): bits 1, 4-6, 8, 13-16 and 26 must be 1 unless
    /// IA32_VMX_TRUE_PROCBASED_CTLS says otherwise. Note that bits 15 and 16 (CR3-load and
    /// CR3-store exiting) are named controls in this class: only with the TRUE MSR can
    /// they be cleared. Linux: `CPU_BASED_ALWAYSON_WITHOUT_TRUE_MSR`.
    pub const DEFAULT1: u32 = 0x0401_E172;
}

/// Secondary processor-based VM-execution controls (`SECONDARY_VM_EXEC_CONTROL`). Every
/// bit is in the default0 class; there is no TRUE MSR for this word.
pub mod proc2 {
    control_bits! { u32;
        /// Bit 0: virtualize APIC accesses.
        SECONDARY_EXEC_VIRTUALIZE_APIC_ACCESSES = 0,
        /// Bit 1: enable EPT.
        SECONDARY_EXEC_ENABLE_EPT = 1,
        /// Bit 2: descriptor-table exiting.
        SECONDARY_EXEC_DESC = 2,
        /// Bit 3: enable RDTSCP.
        SECONDARY_EXEC_ENABLE_RDTSCP = 3,
        /// Bit 4: virtualize x2APIC mode.
        SECONDARY_EXEC_VIRTUALIZE_X2APIC_MODE = 4,
        /// Bit 5: enable VPID.
        SECONDARY_EXEC_ENABLE_VPID = 5,
        /// Bit 6: WBINVD exiting.
        SECONDARY_EXEC_WBINVD_EXITING = 6,
        /// Bit 7: unrestricted guest.
        SECONDARY_EXEC_UNRESTRICTED_GUEST = 7,
        /// Bit 8: APIC-register virtualization.
        SECONDARY_EXEC_APIC_REGISTER_VIRT = 8,
        /// Bit 9: virtual-interrupt delivery.
        SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY = 9,
        /// Bit 10: PAUSE-loop exiting.
        SECONDARY_EXEC_PAUSE_LOOP_EXITING = 10,
        /// Bit 11: RDRAND exiting.
        SECONDARY_EXEC_RDRAND_EXITING = 11,
        /// Bit 12: enable INVPCID.
        SECONDARY_EXEC_ENABLE_INVPCID = 12,
        /// Bit 13: enable VM functions.
        SECONDARY_EXEC_ENABLE_VMFUNC = 13,
        /// Bit 14: VMCS shadowing.
        SECONDARY_EXEC_SHADOW_VMCS = 14,
        /// Bit 15: enable ENCLS exiting.
        SECONDARY_EXEC_ENCLS_EXITING = 15,
        /// Bit 16: RDSEED exiting.
        SECONDARY_EXEC_RDSEED_EXITING = 16,
        /// Bit 17: enable PML.
        SECONDARY_EXEC_ENABLE_PML = 17,
        /// Bit 18: EPT-violation #VE.
        SECONDARY_EXEC_EPT_VIOLATION_VE = 18,
        /// Bit 19: conceal VMX from Intel PT.
        SECONDARY_EXEC_PT_CONCEAL_VMX = 19,
        /// Bit 20: enable XSAVES/XRSTORS.
        SECONDARY_EXEC_ENABLE_XSAVES = 20,
        /// Bit 21: PASID translation (name not in Linux).
        SECONDARY_EXEC_PASID_TRANSLATION = 21,
        /// Bit 22: mode-based execute control for EPT.
        SECONDARY_EXEC_MODE_BASED_EPT_EXEC = 22,
        /// Bit 23: sub-page write permissions for EPT (name not in Linux).
        SECONDARY_EXEC_ENABLE_SPP = 23,
        /// Bit 24: Intel PT uses guest-physical addresses.
        SECONDARY_EXEC_PT_USE_GPA = 24,
        /// Bit 25: use TSC scaling.
        SECONDARY_EXEC_TSC_SCALING = 25,
        /// Bit 26: enable user wait and pause.
        SECONDARY_EXEC_ENABLE_USR_WAIT_PAUSE = 26,
        /// Bit 27: enable PCONFIG (name not in Linux).
        SECONDARY_EXEC_ENABLE_PCONFIG = 27,
        /// Bit 28: enable ENCLV exiting (name not in Linux).
        SECONDARY_EXEC_ENCLV_EXITING = 28,
        /// Bit 30: VMM bus-lock detection.
        SECONDARY_EXEC_BUS_LOCK_DETECTION = 30,
        /// Bit 31: instruction timeout ("notify VM exiting").
        SECONDARY_EXEC_NOTIFY_VM_EXITING = 31,
    }

    /// No default1 bits: the whole word is default0 (SDM A.3.3).
    pub const DEFAULT1: u32 = 0;
}

/// Tertiary processor-based VM-execution controls (`TERTIARY_VM_EXEC_CONTROL`, 64 bits,
/// present when `CPU_BASED_ACTIVATE_TERTIARY_CONTROLS` is allowed). All default0.
pub mod proc3 {
    control_bits! { u64;
        /// Bit 0: LOADIWKEY exiting (name not in Linux).
        TERTIARY_EXEC_LOADIWKEY_EXITING = 0,
        /// Bit 1: enable HLAT (name not in Linux).
        TERTIARY_EXEC_ENABLE_HLAT = 1,
        /// Bit 2: EPT paging-write control (name not in Linux).
        TERTIARY_EXEC_EPT_PAGING_WRITE_CONTROL = 2,
        /// Bit 3: guest-paging verification (name not in Linux).
        TERTIARY_EXEC_GUEST_PAGING_VERIFICATION = 3,
        /// Bit 4: IPI virtualization.
        TERTIARY_EXEC_IPI_VIRT = 4,
        /// Bit 7: virtualize IA32_SPEC_CTRL (name not in mainline Linux).
        TERTIARY_EXEC_VIRT_SPEC_CTRL = 7,
    }

    /// No default1 bits.
    pub const DEFAULT1: u64 = 0;
}

/// Primary VM-exit controls (`VM_EXIT_CONTROLS`).
pub mod exit {
    control_bits! { u32;
        /// Bit 2: save debug controls (default1).
        VM_EXIT_SAVE_DEBUG_CONTROLS = 2,
        /// Bit 9: host address-space size (host is in 64-bit mode after the exit).
        VM_EXIT_HOST_ADDR_SPACE_SIZE = 9,
        /// Bit 12: load IA32_PERF_GLOBAL_CTRL.
        VM_EXIT_LOAD_IA32_PERF_GLOBAL_CTRL = 12,
        /// Bit 15: acknowledge interrupt on exit.
        VM_EXIT_ACK_INTR_ON_EXIT = 15,
        /// Bit 18: save IA32_PAT.
        VM_EXIT_SAVE_IA32_PAT = 18,
        /// Bit 19: load IA32_PAT.
        VM_EXIT_LOAD_IA32_PAT = 19,
        /// Bit 20: save IA32_EFER.
        VM_EXIT_SAVE_IA32_EFER = 20,
        /// Bit 21: load IA32_EFER.
        VM_EXIT_LOAD_IA32_EFER = 21,
        /// Bit 22: save VMX-preemption timer value.
        VM_EXIT_SAVE_VMX_PREEMPTION_TIMER = 22,
        /// Bit 23: clear IA32_BNDCFGS.
        VM_EXIT_CLEAR_BNDCFGS = 23,
        /// Bit 24: conceal VMX from Intel PT.
        VM_EXIT_PT_CONCEAL_PIP = 24,
        /// Bit 25: clear IA32_RTIT_CTL.
        VM_EXIT_CLEAR_IA32_RTIT_CTL = 25,
        /// Bit 26: clear IA32_LBR_CTL.
        VM_EXIT_CLEAR_IA32_LBR_CTL = 26,
        /// Bit 27: clear UINV (name not in Linux).
        VM_EXIT_CLEAR_UINV = 27,
        /// Bit 28: load CET state.
        VM_EXIT_LOAD_CET_STATE = 28,
        /// Bit 29: load PKRS.
        VM_EXIT_LOAD_IA32_PKRS = 29,
        /// Bit 30: save IA32_PERF_GLOBAL_CTRL.
        VM_EXIT_SAVE_IA32_PERF_GLOBAL_CTRL = 30,
        /// Bit 31: activate secondary VM-exit controls.
        VM_EXIT_ACTIVATE_SECONDARY_CONTROLS = 31,
    }

    /// Default1 class (SDM A.4): bits 0-8, 10, 11, 13, 14, 16 and 17 must be 1 unless
    /// IA32_VMX_TRUE_EXIT_CTLS says otherwise; bit 2 (save debug controls) is a named
    /// control in this class. Linux: `VM_EXIT_ALWAYSON_WITHOUT_TRUE_MSR`.
    pub const DEFAULT1: u32 = 0x0003_6DFF;
}

/// Secondary VM-exit controls (`SECONDARY_VM_EXIT_CONTROLS`, 64 bits, present when
/// `VM_EXIT_ACTIVATE_SECONDARY_CONTROLS` is allowed). All default0.
pub mod exit2 {
    control_bits! { u64;
        /// Bit 0: save FRED state.
        SECONDARY_VM_EXIT_SAVE_IA32_FRED = 0,
        /// Bit 1: load FRED state.
        SECONDARY_VM_EXIT_LOAD_IA32_FRED = 1,
    }

    /// No default1 bits.
    pub const DEFAULT1: u64 = 0;
}

/// VM-entry controls (`VM_ENTRY_CONTROLS`).
pub mod entry {
    control_bits! { u32;
        /// Bit 2: load debug controls (default1).
        VM_ENTRY_LOAD_DEBUG_CONTROLS = 2,
        /// Bit 9: IA-32e mode guest.
        VM_ENTRY_IA32E_MODE = 9,
        /// Bit 10: entry to SMM.
        VM_ENTRY_SMM = 10,
        /// Bit 11: deactivate dual-monitor treatment.
        VM_ENTRY_DEACT_DUAL_MONITOR = 11,
        /// Bit 13: load IA32_PERF_GLOBAL_CTRL.
        VM_ENTRY_LOAD_IA32_PERF_GLOBAL_CTRL = 13,
        /// Bit 14: load IA32_PAT.
        VM_ENTRY_LOAD_IA32_PAT = 14,
        /// Bit 15: load IA32_EFER.
        VM_ENTRY_LOAD_IA32_EFER = 15,
        /// Bit 16: load IA32_BNDCFGS.
        VM_ENTRY_LOAD_BNDCFGS = 16,
        /// Bit 17: conceal VMX from Intel PT.
        VM_ENTRY_PT_CONCEAL_PIP = 17,
        /// Bit 18: load IA32_RTIT_CTL.
        VM_ENTRY_LOAD_IA32_RTIT_CTL = 18,
        /// Bit 19: load UINV (name not in Linux).
        VM_ENTRY_LOAD_UINV = 19,
        /// Bit 20: load CET state.
        VM_ENTRY_LOAD_CET_STATE = 20,
        /// Bit 21: load guest IA32_LBR_CTL.
        VM_ENTRY_LOAD_IA32_LBR_CTL = 21,
        /// Bit 22: load PKRS.
        VM_ENTRY_LOAD_IA32_PKRS = 22,
        /// Bit 23: load FRED state.
        VM_ENTRY_LOAD_IA32_FRED = 23,
    }

    /// Default1 class (SDM A.5): bits 0-8 and 12 must be 1 unless
    /// IA32_VMX_TRUE_ENTRY_CTLS says otherwise; bit 2 (load debug controls) is a named
    /// control in this class. Linux: `VM_ENTRY_ALWAYSON_WITHOUT_TRUE_MSR`.
    pub const DEFAULT1: u32 = 0x0000_11FF;
}

/// VM-function controls (`VM_FUNCTION_CONTROL`): bit n enables VM function n.
pub mod vmfunc {
    /// VM function 0: EPTP switching.
    pub const VMX_VMFUNC_EPTP_SWITCHING: u64 = 1 << 0;
    /// Number of entries in the EPTP list (one 4-KiB page of 8-byte EPTPs).
    pub const EPTP_LIST_ENTRIES: usize = 512;
}

/// VMX-related MSR indices (SDM Vol. 4 and appendix A).
pub mod msr {
    /// IA32_FEATURE_CONTROL (see [`super::feature_control`]).
    pub const IA32_FEATURE_CONTROL: u32 = 0x3A;
    /// IA32_VMX_BASIC (see [`super::vmx_basic`]).
    pub const IA32_VMX_BASIC: u32 = 0x480;
    /// IA32_VMX_PINBASED_CTLS: allowed 0-settings (low half) and 1-settings (high half).
    pub const IA32_VMX_PINBASED_CTLS: u32 = 0x481;
    /// IA32_VMX_PROCBASED_CTLS.
    pub const IA32_VMX_PROCBASED_CTLS: u32 = 0x482;
    /// IA32_VMX_EXIT_CTLS.
    pub const IA32_VMX_EXIT_CTLS: u32 = 0x483;
    /// IA32_VMX_ENTRY_CTLS.
    pub const IA32_VMX_ENTRY_CTLS: u32 = 0x484;
    /// IA32_VMX_MISC (see [`super::vmx_misc`]).
    pub const IA32_VMX_MISC: u32 = 0x485;
    /// IA32_VMX_CR0_FIXED0: CR0 bits that must be 1 in VMX operation.
    pub const IA32_VMX_CR0_FIXED0: u32 = 0x486;
    /// IA32_VMX_CR0_FIXED1: CR0 bits that may be 1 in VMX operation.
    pub const IA32_VMX_CR0_FIXED1: u32 = 0x487;
    /// IA32_VMX_CR4_FIXED0: CR4 bits that must be 1 in VMX operation.
    pub const IA32_VMX_CR4_FIXED0: u32 = 0x488;
    /// IA32_VMX_CR4_FIXED1: CR4 bits that may be 1 in VMX operation.
    pub const IA32_VMX_CR4_FIXED1: u32 = 0x489;
    /// IA32_VMX_VMCS_ENUM: highest index value used in any VMCS encoding (bits 9:1).
    pub const IA32_VMX_VMCS_ENUM: u32 = 0x48A;
    /// IA32_VMX_PROCBASED_CTLS2.
    pub const IA32_VMX_PROCBASED_CTLS2: u32 = 0x48B;
    /// IA32_VMX_EPT_VPID_CAP (see [`super::ept_vpid_cap`]).
    pub const IA32_VMX_EPT_VPID_CAP: u32 = 0x48C;
    /// IA32_VMX_TRUE_PINBASED_CTLS.
    pub const IA32_VMX_TRUE_PINBASED_CTLS: u32 = 0x48D;
    /// IA32_VMX_TRUE_PROCBASED_CTLS.
    pub const IA32_VMX_TRUE_PROCBASED_CTLS: u32 = 0x48E;
    /// IA32_VMX_TRUE_EXIT_CTLS.
    pub const IA32_VMX_TRUE_EXIT_CTLS: u32 = 0x48F;
    /// IA32_VMX_TRUE_ENTRY_CTLS.
    pub const IA32_VMX_TRUE_ENTRY_CTLS: u32 = 0x490;
    /// IA32_VMX_VMFUNC: allowed 1-settings of the VM-function controls.
    pub const IA32_VMX_VMFUNC: u32 = 0x491;
    /// IA32_VMX_PROCBASED_CTLS3: allowed 1-settings of the tertiary controls (64 bits).
    pub const IA32_VMX_PROCBASED_CTLS3: u32 = 0x492;
    /// IA32_VMX_EXIT_CTLS2: allowed 1-settings of the secondary VM-exit controls.
    pub const IA32_VMX_EXIT_CTLS2: u32 = 0x493;
}

/// IA32_FEATURE_CONTROL bits.
pub mod feature_control {
    /// Bit 0: lock; once set, writes #GP until reset.
    pub const LOCK: u64 = 1 << 0;
    /// Bit 1: enable VMXON inside SMX operation.
    pub const VMXON_INSIDE_SMX: u64 = 1 << 1;
    /// Bit 2: enable VMXON outside SMX operation.
    pub const VMXON_OUTSIDE_SMX: u64 = 1 << 2;
    /// Bits 14:8: SENTER local function enables.
    pub const SENTER_LOCAL_ENABLES: u64 = 0x7F << 8;
    /// Bit 15: SENTER global enable.
    pub const SENTER_GLOBAL_ENABLE: u64 = 1 << 15;
    /// Bit 17: SGX launch control enable.
    pub const SGX_LAUNCH_CONTROL_ENABLE: u64 = 1 << 17;
    /// Bit 18: SGX global enable.
    pub const SGX_GLOBAL_ENABLE: u64 = 1 << 18;
    /// Bit 20: LMCE on.
    pub const LMCE_ON: u64 = 1 << 20;
}

/// IA32_VMX_BASIC layout (SDM A.1).
pub mod vmx_basic {
    /// Bits 30:0: VMCS revision identifier (bit 31 is always 0).
    pub const REVISION_ID_MASK: u64 = 0x7FFF_FFFF;
    /// Shift of the VMCS/VMXON region size (bits 44:32, in bytes, at most 4096).
    pub const VMCS_SIZE_SHIFT: u32 = 32;
    /// Mask of the region size after shifting.
    pub const VMCS_SIZE_MASK: u64 = 0x1FFF;
    /// Bit 48: VMXON/VMCS/bitmap addresses are limited to 32 bits.
    pub const PHYS_ADDR_32BIT_ONLY: u64 = 1 << 48;
    /// Bit 49: dual-monitor treatment of SMIs and SMM supported.
    pub const DUAL_MONITOR: u64 = 1 << 49;
    /// Shift of the memory type for VMCS accesses (bits 53:50).
    pub const MEM_TYPE_SHIFT: u32 = 50;
    /// Mask of the memory type after shifting (see [`super::mem_type`]).
    pub const MEM_TYPE_MASK: u64 = 0xF;
    /// Bit 54: INS/OUTS exits report VM-exit instruction information.
    pub const INOUT: u64 = 1 << 54;
    /// Bit 55: the TRUE_* control MSRs exist (default1 bits may be cleared).
    pub const TRUE_CTLS: u64 = 1 << 55;
    /// Bit 56: VM entry may inject a hardware exception with or without an error code
    /// regardless of vector.
    pub const NO_HW_ERROR_CODE_CC: u64 = 1 << 56;

    /// The VMCS revision identifier of an IA32_VMX_BASIC value.
    pub const fn revision_id(basic: u64) -> u32 {
        (basic & REVISION_ID_MASK) as u32
    }

    /// The VMCS/VMXON region size in bytes of an IA32_VMX_BASIC value.
    pub const fn vmcs_size(basic: u64) -> u32 {
        ((basic >> VMCS_SIZE_SHIFT) & VMCS_SIZE_MASK) as u32
    }

    /// The memory type for VMCS accesses of an IA32_VMX_BASIC value.
    pub const fn mem_type(basic: u64) -> u8 {
        ((basic >> MEM_TYPE_SHIFT) & MEM_TYPE_MASK) as u8
    }
}

/// Layout of the first 8 bytes of a VMCS (or VMXON) region in memory.
pub mod vmcs_region {
    /// Bits 30:0 of the first dword: VMCS revision identifier.
    pub const REVISION_ID_MASK: u32 = 0x7FFF_FFFF;
    /// Bit 31 of the first dword: shadow-VMCS indicator.
    pub const SHADOW_VMCS_INDICATOR: u32 = 1 << 31;
    /// Byte offset of the VMX-abort indicator (second dword).
    pub const ABORT_INDICATOR_OFFSET: usize = 4;
}

/// IA32_VMX_MISC layout (SDM A.6).
pub mod vmx_misc {
    /// Bits 4:0: the VMX-preemption timer counts down once every 2^N TSC ticks.
    pub const PREEMPTION_TIMER_RATE_MASK: u64 = 0x1F;
    /// Bit 5: VM exits store EFER.LMA into the "IA-32e mode guest" entry control.
    pub const SAVE_EFER_LMA: u64 = 1 << 5;
    /// Bit 6: activity state HLT supported.
    pub const ACTIVITY_HLT: u64 = 1 << 6;
    /// Bit 7: activity state shutdown supported.
    pub const ACTIVITY_SHUTDOWN: u64 = 1 << 7;
    /// Bit 8: activity state wait-for-SIPI supported.
    pub const ACTIVITY_WAIT_SIPI: u64 = 1 << 8;
    /// Bit 14: Intel PT may be used in VMX operation.
    pub const INTEL_PT: u64 = 1 << 14;
    /// Bit 15: RDMSR can read IA32_SMBASE in SMM.
    pub const RDMSR_IN_SMM: u64 = 1 << 15;
    /// Shift of the number of CR3-target values (bits 24:16).
    pub const CR3_TARGET_COUNT_SHIFT: u32 = 16;
    /// Mask of the CR3-target count after shifting.
    pub const CR3_TARGET_COUNT_MASK: u64 = 0x1FF;
    /// Shift of N in "MSR lists hold at most 512 * (N + 1) entries" (bits 27:25).
    pub const MAX_MSR_LIST_SHIFT: u32 = 25;
    /// Mask of N after shifting.
    pub const MAX_MSR_LIST_MASK: u64 = 0x7;
    /// Multiplier of the MSR-list limit.
    pub const MSR_LIST_MULTIPLIER: u32 = 512;
    /// Bit 28: bit 2 of IA32_SMM_MONITOR_CTL can be set (VMXOFF unblocks SMIs).
    pub const VMXOFF_BLOCK_SMI: u64 = 1 << 28;
    /// Bit 29: VMWRITE may write any field, including VM-exit information.
    pub const VMWRITE_ANY_FIELD: u64 = 1 << 29;
    /// Bit 30: VM entry may inject software interrupts/exceptions with length 0.
    pub const ZERO_LEN_INJECTION: u64 = 1 << 30;
    /// Shift of the MSEG revision identifier (bits 63:32).
    pub const MSEG_REVISION_SHIFT: u32 = 32;

    /// The preemption-timer rate N (timer ticks every 2^N TSC cycles).
    pub const fn preemption_timer_rate(misc: u64) -> u32 {
        (misc & PREEMPTION_TIMER_RATE_MASK) as u32
    }

    /// The number of CR3-target values supported.
    pub const fn cr3_target_count(misc: u64) -> u32 {
        ((misc >> CR3_TARGET_COUNT_SHIFT) & CR3_TARGET_COUNT_MASK) as u32
    }

    /// The recommended maximum number of entries in each MSR list.
    pub const fn max_msr_list_entries(misc: u64) -> u32 {
        MSR_LIST_MULTIPLIER * (((misc >> MAX_MSR_LIST_SHIFT) & MAX_MSR_LIST_MASK) as u32 + 1)
    }

    /// The MSEG revision identifier.
    pub const fn mseg_revision(misc: u64) -> u32 {
        (misc >> MSEG_REVISION_SHIFT) as u32
    }
}

/// IA32_VMX_EPT_VPID_CAP bits (SDM A.10).
pub mod ept_vpid_cap {
    /// Bit 0: execute-only EPT translations.
    pub const EXECUTE_ONLY: u64 = 1 << 0;
    /// Bit 6: page-walk length 4.
    pub const PAGE_WALK_4: u64 = 1 << 6;
    /// Bit 7: page-walk length 5.
    pub const PAGE_WALK_5: u64 = 1 << 7;
    /// Bit 8: EPT paging structures may be uncacheable.
    pub const MEM_TYPE_UC: u64 = 1 << 8;
    /// Bit 14: EPT paging structures may be write-back.
    pub const MEM_TYPE_WB: u64 = 1 << 14;
    /// Bit 16: 2-MiB EPT pages.
    pub const PAGE_2M: u64 = 1 << 16;
    /// Bit 17: 1-GiB EPT pages.
    pub const PAGE_1G: u64 = 1 << 17;
    /// Bit 20: INVEPT supported.
    pub const INVEPT: u64 = 1 << 20;
    /// Bit 21: EPT accessed and dirty flags.
    pub const AD: u64 = 1 << 21;
    /// Bit 22: advanced VM-exit information for EPT violations.
    pub const ADVANCED_EXIT_INFO: u64 = 1 << 22;
    /// Bit 25: single-context INVEPT.
    pub const INVEPT_SINGLE_CONTEXT: u64 = 1 << 25;
    /// Bit 26: all-context INVEPT.
    pub const INVEPT_ALL_CONTEXT: u64 = 1 << 26;
    /// Bit 32: INVVPID supported.
    pub const INVVPID: u64 = 1 << 32;
    /// Bit 40: individual-address INVVPID.
    pub const INVVPID_INDIVIDUAL_ADDR: u64 = 1 << 40;
    /// Bit 41: single-context INVVPID.
    pub const INVVPID_SINGLE_CONTEXT: u64 = 1 << 41;
    /// Bit 42: all-context INVVPID.
    pub const INVVPID_ALL_CONTEXT: u64 = 1 << 42;
    /// Bit 43: single-context-retaining-globals INVVPID.
    pub const INVVPID_SINGLE_CONTEXT_RETAIN_GLOBALS: u64 = 1 << 43;
}

/// Interruption-information format: `VM_ENTRY_INTR_INFO_FIELD`, `VM_EXIT_INTR_INFO` and
/// `IDT_VECTORING_INFO_FIELD` (SDM "VM-Entry Controls for Event Injection" and "Information
/// for VM Exits Due to Vectored Events / During Event Delivery").
pub mod intr_info {
    /// Bits 7:0: vector.
    pub const VECTOR_MASK: u32 = 0xFF;
    /// Shift of the interruption type (bits 10:8).
    pub const TYPE_SHIFT: u32 = 8;
    /// Mask of the interruption type in place.
    pub const TYPE_MASK: u32 = 0x700;
    /// Bit 11: deliver (on entry) / valid (on exit) error code.
    pub const DELIVER_CODE: u32 = 1 << 11;
    /// Bit 12 of VM-exit interruption information: NMI unblocking due to IRET.
    pub const NMI_UNBLOCKING: u32 = 1 << 12;
    /// Bit 31: valid.
    pub const VALID: u32 = 1 << 31;
    /// Bits 30:12: reserved in the VM-entry interruption-information field.
    pub const ENTRY_RESERVED_MASK: u32 = 0x7FFF_F000;

    /// Type 0: external interrupt.
    pub const TYPE_EXT_INTR: u32 = 0;
    /// Type 1: reserved.
    pub const TYPE_RESERVED: u32 = 1;
    /// Type 2: non-maskable interrupt.
    pub const TYPE_NMI: u32 = 2;
    /// Type 3: hardware exception.
    pub const TYPE_HARD_EXCEPTION: u32 = 3;
    /// Type 4: software interrupt (INT n).
    pub const TYPE_SOFT_INTR: u32 = 4;
    /// Type 5: privileged software exception (INT1).
    pub const TYPE_PRIV_SW_EXCEPTION: u32 = 5;
    /// Type 6: software exception (INT3, INTO).
    pub const TYPE_SOFT_EXCEPTION: u32 = 6;
    /// Type 7: other event (MTF on VM entry).
    pub const TYPE_OTHER_EVENT: u32 = 7;

    /// The vector of an interruption-information value.
    pub const fn vector(info: u32) -> u8 {
        (info & VECTOR_MASK) as u8
    }

    /// The interruption type (0-7) of an interruption-information value.
    pub const fn interruption_type(info: u32) -> u32 {
        (info & TYPE_MASK) >> TYPE_SHIFT
    }
}

/// Exit-qualification layouts (SDM "Basic VM-Exit Information").
pub mod exit_qual {
    /// Exit qualification for I/O instructions.
    pub mod io {
        /// Bits 2:0: size of access minus one (0 = 1 byte, 1 = 2 bytes, 3 = 4 bytes).
        pub const SIZE_MASK: u64 = 0x7;
        /// Bit 3: direction, 1 = IN, 0 = OUT.
        pub const DIRECTION_IN: u64 = 1 << 3;
        /// Bit 4: string instruction (INS/OUTS).
        pub const STRING: u64 = 1 << 4;
        /// Bit 5: REP prefixed.
        pub const REP: u64 = 1 << 5;
        /// Bit 6: operand encoding, 1 = immediate port, 0 = port in DX.
        pub const OPERAND_IMMEDIATE: u64 = 1 << 6;
        /// Shift of the port number (bits 31:16).
        pub const PORT_SHIFT: u32 = 16;
        /// Mask of the port number after shifting.
        pub const PORT_MASK: u64 = 0xFFFF;
    }

    /// Exit qualification for control-register accesses.
    pub mod cr {
        /// Bits 3:0: control-register number (0 for CLTS and LMSW).
        pub const NUM_MASK: u64 = 0xF;
        /// Shift of the access type (bits 5:4).
        pub const ACCESS_TYPE_SHIFT: u32 = 4;
        /// Mask of the access type after shifting.
        pub const ACCESS_TYPE_MASK: u64 = 0x3;
        /// Access type 0: MOV to CR.
        pub const TYPE_MOV_TO_CR: u64 = 0;
        /// Access type 1: MOV from CR.
        pub const TYPE_MOV_FROM_CR: u64 = 1;
        /// Access type 2: CLTS.
        pub const TYPE_CLTS: u64 = 2;
        /// Access type 3: LMSW.
        pub const TYPE_LMSW: u64 = 3;
        /// Bit 6: LMSW operand type, 1 = memory, 0 = register.
        pub const LMSW_MEMORY_OPERAND: u64 = 1 << 6;
        /// Shift of the general-purpose register of MOV CR (bits 11:8; 0 = RAX ... 15 = R15).
        pub const GPR_SHIFT: u32 = 8;
        /// Mask of the register number after shifting.
        pub const GPR_MASK: u64 = 0xF;
        /// Shift of the LMSW source data (bits 31:16).
        pub const LMSW_SOURCE_SHIFT: u32 = 16;
        /// Mask of the LMSW source data after shifting.
        pub const LMSW_SOURCE_MASK: u64 = 0xFFFF;
    }

    /// Exit qualification for MOV DR.
    pub mod dr {
        /// Bits 2:0: debug-register number.
        pub const NUM_MASK: u64 = 0x7;
        /// Bit 4: direction, 1 = MOV from DR, 0 = MOV to DR.
        pub const DIRECTION_FROM_DR: u64 = 1 << 4;
        /// Shift of the general-purpose register (bits 11:8).
        pub const GPR_SHIFT: u32 = 8;
        /// Mask of the register number after shifting.
        pub const GPR_MASK: u64 = 0xF;
    }

    /// Exit qualification for EPT violations.
    pub mod ept {
        /// Bit 0: the access was a data read.
        pub const ACC_READ: u64 = 1 << 0;
        /// Bit 1: the access was a data write.
        pub const ACC_WRITE: u64 = 1 << 1;
        /// Bit 2: the access was an instruction fetch.
        pub const ACC_INSTR: u64 = 1 << 2;
        /// Bit 3: the guest-physical address was readable (AND of the walk's R bits).
        pub const PROT_READ: u64 = 1 << 3;
        /// Bit 4: the guest-physical address was writable.
        pub const PROT_WRITE: u64 = 1 << 4;
        /// Bit 5: the guest-physical address was executable (supervisor-executable under
        /// mode-based execute control).
        pub const PROT_EXEC: u64 = 1 << 5;
        /// Bit 6: user-mode executable (mode-based execute control only).
        pub const PROT_USER_EXEC: u64 = 1 << 6;
        /// Bit 7: the guest-linear-address field is valid.
        pub const GVA_IS_VALID: u64 = 1 << 7;
        /// Bit 8 (when bit 7 is set): 1 = the access was to the translated linear address,
        /// 0 = to a guest paging-structure entry.
        pub const GVA_TRANSLATED: u64 = 1 << 8;
        /// Bit 9 (advanced information): the linear address was user-mode.
        pub const GVA_USER: u64 = 1 << 9;
        /// Bit 10 (advanced information): the linear address was read/write.
        pub const GVA_WRITABLE: u64 = 1 << 10;
        /// Bit 11 (advanced information): the linear address was execute-disable.
        pub const GVA_NX: u64 = 1 << 11;
        /// Bit 12: NMI unblocking due to IRET.
        pub const NMI_UNBLOCKING: u64 = 1 << 12;
        /// Bits 5:3 (the R/W/X permissions) as one mask.
        pub const PROT_MASK: u64 = PROT_READ | PROT_WRITE | PROT_EXEC;
    }

    /// Exit qualification of a VM exit for a failed VM entry (basic reason 33 or 34).
    pub mod entry_failure {
        /// Default: no further information.
        pub const DEFAULT: u64 = 0;
        /// Failure loading a PDPTE.
        pub const PDPTE: u64 = 2;
        /// Injection of an NMI while blocking by NMI was in effect.
        pub const NMI: u64 = 3;
        /// Invalid VMCS link pointer.
        pub const VMCS_LINK_PTR: u64 = 4;
    }
}

/// VMX-instruction-information field (`VMX_INSTRUCTION_INFO`) layout for VMX instructions
/// (VMCLEAR, VMPTRLD, VMPTRST, VMREAD, VMWRITE, VMXON, INVEPT, INVVPID, INVPCID) (SDM
/// "Information for VM Exits Due to Instruction Execution").
pub mod instr_info {
    /// Bits 1:0: scaling of the index register (0 = none, 1 = x2, 2 = x4, 3 = x8).
    pub const SCALING_MASK: u32 = 0x3;
    /// Shift of reg1 (bits 6:3): the register operand of VMREAD/VMWRITE when the other
    /// operand is a register too.
    pub const REG1_SHIFT: u32 = 3;
    /// Shift of the address size (bits 9:7: 0 = 16-bit, 1 = 32-bit, 2 = 64-bit).
    pub const ADDR_SIZE_SHIFT: u32 = 7;
    /// Mask of the address size after shifting.
    pub const ADDR_SIZE_MASK: u32 = 0x7;
    /// Bit 10: 1 = register operand, 0 = memory operand (VMREAD/VMWRITE only).
    pub const MEM_REG: u32 = 1 << 10;
    /// Shift of the segment register (bits 17:15: 0 ES, 1 CS, 2 SS, 3 DS, 4 FS, 5 GS).
    pub const SEGMENT_SHIFT: u32 = 15;
    /// Mask of the segment register after shifting.
    pub const SEGMENT_MASK: u32 = 0x7;
    /// Shift of the index register (bits 21:18).
    pub const INDEX_SHIFT: u32 = 18;
    /// Bit 22: the index register is invalid (not used).
    pub const INDEX_INVALID: u32 = 1 << 22;
    /// Shift of the base register (bits 26:23).
    pub const BASE_SHIFT: u32 = 23;
    /// Bit 27: the base register is invalid (not used).
    pub const BASE_INVALID: u32 = 1 << 27;
    /// Shift of reg2 (bits 31:28): the field-encoding register of VMREAD/VMWRITE, the
    /// type register of INVEPT/INVVPID/INVPCID.
    pub const REG2_SHIFT: u32 = 28;
    /// Mask of a 4-bit register number (reg1, index, base, reg2) after shifting.
    pub const REG_MASK: u32 = 0xF;
}

/// Bits of an EPT paging-structure entry (SDM "EPT Translation Mechanism").
pub mod ept {
    /// Bit 0: read access.
    pub const READ: u64 = 1 << 0;
    /// Bit 1: write access.
    pub const WRITE: u64 = 1 << 1;
    /// Bit 2: execute access (supervisor-mode execute under mode-based execute control).
    pub const EXEC: u64 = 1 << 2;
    /// Bits 2:0 as one mask.
    pub const RWX_MASK: u64 = READ | WRITE | EXEC;
    /// Shift of the memory type of a leaf entry (bits 5:3, see [`super::mem_type`]).
    pub const MEM_TYPE_SHIFT: u32 = 3;
    /// Mask of the memory type in place.
    pub const MEM_TYPE_MASK: u64 = 0x7 << MEM_TYPE_SHIFT;
    /// Bit 6 of a leaf entry: ignore PAT memory type.
    pub const IGNORE_PAT: u64 = 1 << 6;
    /// Bit 7 of a PDPTE/PDE: the entry maps a 1-GiB/2-MiB page.
    pub const LARGE_PAGE: u64 = 1 << 7;
    /// Bit 8: accessed (when EPTP enables A/D flags).
    pub const ACCESSED: u64 = 1 << 8;
    /// Bit 9 of a leaf entry: dirty (when EPTP enables A/D flags).
    pub const DIRTY: u64 = 1 << 9;
    /// Bit 10: user-mode execute access (mode-based execute control).
    pub const USER_EXEC: u64 = 1 << 10;
    /// Bit 63: suppress #VE.
    pub const SUPPRESS_VE: u64 = 1 << 63;
    /// Bits 51:12: physical address of the next structure or the page.
    pub const ADDR_MASK: u64 = 0x000F_FFFF_FFFF_F000;
}

/// Bits of the EPT pointer (`EPT_POINTER`, SDM "Extended-Page-Table Pointer (EPTP)").
pub mod eptp {
    /// Bits 2:0: memory type of the paging structures (UC or WB, see [`super::mem_type`]).
    pub const MEM_TYPE_MASK: u64 = 0x7;
    /// Shift of the page-walk length minus one (bits 5:3).
    pub const PWL_SHIFT: u32 = 3;
    /// Mask of the page-walk-length field in place.
    pub const PWL_MASK: u64 = 0x7 << PWL_SHIFT;
    /// Page-walk-length field for 4-level EPT.
    pub const PWL_4: u64 = 3 << PWL_SHIFT;
    /// Page-walk-length field for 5-level EPT.
    pub const PWL_5: u64 = 4 << PWL_SHIFT;
    /// Bit 6: enable accessed and dirty flags.
    pub const AD_ENABLE: u64 = 1 << 6;
    /// Bit 7: enforce access rights for supervisor shadow-stack pages.
    pub const SSS_ENABLE: u64 = 1 << 7;
    /// Bits 51:12: physical address of the EPT PML4 (or PML5) table.
    pub const ADDR_MASK: u64 = 0x000F_FFFF_FFFF_F000;
}

/// Memory-type encodings used by EPT entries, the EPTP and IA32_VMX_BASIC.
pub mod mem_type {
    /// Uncacheable.
    pub const UC: u8 = 0;
    /// Write combining.
    pub const WC: u8 = 1;
    /// Write through.
    pub const WT: u8 = 4;
    /// Write protected.
    pub const WP: u8 = 5;
    /// Write back.
    pub const WB: u8 = 6;
}

/// Guest activity states (`GUEST_ACTIVITY_STATE`, SDM "Guest Non-Register State").
pub mod activity {
    /// Active.
    pub const GUEST_ACTIVITY_ACTIVE: u32 = 0;
    /// HLT.
    pub const GUEST_ACTIVITY_HLT: u32 = 1;
    /// Shutdown (after a triple fault).
    pub const GUEST_ACTIVITY_SHUTDOWN: u32 = 2;
    /// Wait-for-SIPI.
    pub const GUEST_ACTIVITY_WAIT_SIPI: u32 = 3;
}

/// Guest interruptibility-state bits (`GUEST_INTERRUPTIBILITY_INFO`, SDM "Guest
/// Non-Register State").
pub mod interruptibility {
    /// Bit 0: blocking by STI.
    pub const GUEST_INTR_STATE_STI: u32 = 1 << 0;
    /// Bit 1: blocking by MOV SS / POP SS.
    pub const GUEST_INTR_STATE_MOV_SS: u32 = 1 << 1;
    /// Bit 2: blocking by SMI.
    pub const GUEST_INTR_STATE_SMI: u32 = 1 << 2;
    /// Bit 3: blocking by NMI.
    pub const GUEST_INTR_STATE_NMI: u32 = 1 << 3;
    /// Bit 4: enclave interruption.
    pub const GUEST_INTR_STATE_ENCLAVE_INTR: u32 = 1 << 4;
    /// Bits 31:5: reserved.
    pub const RESERVED_MASK: u32 = !0x1F;
}

/// INVEPT types (register operand of INVEPT).
pub mod invept {
    /// Single-context invalidation.
    pub const SINGLE_CONTEXT: u64 = 1;
    /// Global invalidation.
    pub const GLOBAL: u64 = 2;
}

/// INVVPID types (register operand of INVVPID).
pub mod invvpid {
    /// Individual-address invalidation.
    pub const INDIVIDUAL_ADDR: u64 = 0;
    /// Single-context invalidation.
    pub const SINGLE_CONTEXT: u64 = 1;
    /// All-contexts invalidation.
    pub const ALL_CONTEXT: u64 = 2;
    /// Single-context invalidation, retaining global translations.
    pub const SINGLE_CONTEXT_RETAIN_GLOBALS: u64 = 3;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn check_table<T: Copy + Into<u64>>(bits: &[(&str, T)], defined: T) {
        let mut union = 0u64;
        let mut names = HashSet::new();
        let mut last = 0u64;
        for &(name, v) in bits {
            let v: u64 = v.into();
            assert_eq!(v.count_ones(), 1, "{name}");
            assert!(v > last, "{name} out of order");
            assert_eq!(union & v, 0, "{name} overlaps");
            assert!(names.insert(name), "{name} twice");
            union |= v;
            last = v;
        }
        assert_eq!(union, defined.into());
    }

    #[test]
    fn tables_are_consistent() {
        check_table(pin::BITS, pin::DEFINED);
        check_table(proc1::BITS, proc1::DEFINED);
        check_table(proc2::BITS, proc2::DEFINED);
        check_table(proc3::BITS, proc3::DEFINED);
        check_table(exit::BITS, exit::DEFINED);
        check_table(exit2::BITS, exit2::DEFINED);
        check_table(entry::BITS, entry::DEFINED);
    }

    #[test]
    fn known_linux_values() {
        assert_eq!(pin::PIN_BASED_EXT_INTR_MASK, 0x1);
        assert_eq!(pin::PIN_BASED_NMI_EXITING, 0x8);
        assert_eq!(pin::PIN_BASED_POSTED_INTR, 0x80);
        assert_eq!(proc1::CPU_BASED_HLT_EXITING, 0x80);
        assert_eq!(proc1::CPU_BASED_USE_MSR_BITMAPS, 0x1000_0000);
        assert_eq!(proc1::CPU_BASED_ACTIVATE_SECONDARY_CONTROLS, 0x8000_0000);
        assert_eq!(proc2::SECONDARY_EXEC_ENABLE_EPT, 0x2);
        assert_eq!(proc2::SECONDARY_EXEC_SHADOW_VMCS, 0x4000);
        assert_eq!(proc2::SECONDARY_EXEC_ENABLE_PML, 0x2_0000);
        assert_eq!(proc2::SECONDARY_EXEC_TSC_SCALING, 0x200_0000);
        assert_eq!(proc3::TERTIARY_EXEC_IPI_VIRT, 0x10);
        assert_eq!(exit::VM_EXIT_HOST_ADDR_SPACE_SIZE, 0x200);
        assert_eq!(exit::VM_EXIT_ACK_INTR_ON_EXIT, 0x8000);
        assert_eq!(exit::VM_EXIT_LOAD_IA32_EFER, 0x20_0000);
        assert_eq!(exit::VM_EXIT_LOAD_CET_STATE, 0x1000_0000);
        assert_eq!(entry::VM_ENTRY_IA32E_MODE, 0x200);
        assert_eq!(entry::VM_ENTRY_LOAD_IA32_EFER, 0x8000);
        assert_eq!(entry::VM_ENTRY_LOAD_CET_STATE, 0x10_0000);
    }

    #[test]
    fn default1_classes() {
        assert_eq!(pin::DEFAULT1, 0x16);
        assert_eq!(proc1::DEFAULT1, 0x0401_E172);
        assert_eq!(exit::DEFAULT1, 0x0003_6DFF);
        assert_eq!(entry::DEFAULT1, 0x0000_11FF);
        // Named controls that sit in the default1 class.
        assert_eq!(pin::DEFAULT1 & pin::DEFINED, 0);
        assert_eq!(
            proc1::DEFAULT1 & proc1::DEFINED,
            proc1::CPU_BASED_CR3_LOAD_EXITING | proc1::CPU_BASED_CR3_STORE_EXITING
        );
        assert_eq!(exit::DEFAULT1 & exit::DEFINED, exit::VM_EXIT_SAVE_DEBUG_CONTROLS);
        assert_eq!(entry::DEFAULT1 & entry::DEFINED, entry::VM_ENTRY_LOAD_DEBUG_CONTROLS);
    }

    #[test]
    fn msr_indices() {
        assert_eq!(msr::IA32_FEATURE_CONTROL, 0x3A);
        assert_eq!(msr::IA32_VMX_BASIC, 0x480);
        assert_eq!(msr::IA32_VMX_TRUE_PINBASED_CTLS, 0x48D);
        assert_eq!(msr::IA32_VMX_VMFUNC, 0x491);
        let all = [
            msr::IA32_VMX_BASIC,
            msr::IA32_VMX_PINBASED_CTLS,
            msr::IA32_VMX_PROCBASED_CTLS,
            msr::IA32_VMX_EXIT_CTLS,
            msr::IA32_VMX_ENTRY_CTLS,
            msr::IA32_VMX_MISC,
            msr::IA32_VMX_CR0_FIXED0,
            msr::IA32_VMX_CR0_FIXED1,
            msr::IA32_VMX_CR4_FIXED0,
            msr::IA32_VMX_CR4_FIXED1,
            msr::IA32_VMX_VMCS_ENUM,
            msr::IA32_VMX_PROCBASED_CTLS2,
            msr::IA32_VMX_EPT_VPID_CAP,
            msr::IA32_VMX_TRUE_PINBASED_CTLS,
            msr::IA32_VMX_TRUE_PROCBASED_CTLS,
            msr::IA32_VMX_TRUE_EXIT_CTLS,
            msr::IA32_VMX_TRUE_ENTRY_CTLS,
            msr::IA32_VMX_VMFUNC,
            msr::IA32_VMX_PROCBASED_CTLS3,
            msr::IA32_VMX_EXIT_CTLS2,
        ];
        for (i, m) in all.iter().enumerate() {
            assert_eq!(*m, 0x480 + u32::try_from(i).expect("small"));
        }
        assert_eq!(feature_control::LOCK | feature_control::VMXON_OUTSIDE_SMX, 0x5);
    }

    #[test]
    fn basic_and_misc_layouts() {
        // Revision 4, 4 KiB region, write-back, TRUE controls, INS/OUTS info.
        let basic = 4
            | (4096u64 << vmx_basic::VMCS_SIZE_SHIFT)
            | (u64::from(mem_type::WB) << vmx_basic::MEM_TYPE_SHIFT)
            | vmx_basic::INOUT
            | vmx_basic::TRUE_CTLS;
        assert_eq!(vmx_basic::revision_id(basic), 4);
        assert_eq!(vmx_basic::vmcs_size(basic), 4096);
        assert_eq!(vmx_basic::mem_type(basic), mem_type::WB);
        assert_eq!(basic, 0x00D8_1000_0000_0004);

        // Rate 5, HLT/shutdown/SIPI, 4 CR3 targets, N = 0, VMWRITE-any.
        let misc = 5
            | vmx_misc::ACTIVITY_HLT
            | vmx_misc::ACTIVITY_SHUTDOWN
            | vmx_misc::ACTIVITY_WAIT_SIPI
            | (4 << vmx_misc::CR3_TARGET_COUNT_SHIFT)
            | vmx_misc::VMWRITE_ANY_FIELD;
        assert_eq!(vmx_misc::preemption_timer_rate(misc), 5);
        assert_eq!(vmx_misc::cr3_target_count(misc), 4);
        assert_eq!(vmx_misc::max_msr_list_entries(misc), 512);
        assert_eq!(vmx_misc::max_msr_list_entries(misc | (7 << 25)), 4096);
        assert_eq!(vmx_misc::mseg_revision(misc | (9 << 32)), 9);
    }

    #[test]
    fn information_field_layouts() {
        // #PF with error code, as VM-exit interruption information.
        let info =
            intr_info::VALID | intr_info::DELIVER_CODE | (intr_info::TYPE_HARD_EXCEPTION << intr_info::TYPE_SHIFT) | 14;
        assert_eq!(info, 0x8000_0B0E);
        assert_eq!(intr_info::vector(info), 14);
        assert_eq!(intr_info::interruption_type(info), intr_info::TYPE_HARD_EXCEPTION);

        // IN AL, DX from port 0x3F8: size 0, direction in, DX operand.
        let io = exit_qual::io::DIRECTION_IN | (0x3F8 << exit_qual::io::PORT_SHIFT);
        assert_eq!(io, 0x03F8_0008);

        // MOV CR3, RBX (move to CR3 from register 3).
        let cr = 3 | (3 << exit_qual::cr::GPR_SHIFT);
        assert_eq!(cr & exit_qual::cr::NUM_MASK, 3);
        assert_eq!(
            (cr >> exit_qual::cr::ACCESS_TYPE_SHIFT) & exit_qual::cr::ACCESS_TYPE_MASK,
            exit_qual::cr::TYPE_MOV_TO_CR
        );
        assert_eq!(exit_qual::ept::PROT_MASK, 0x38);
        assert_eq!(exit_qual::ept::PROT_MASK >> 3, ept::RWX_MASK);

        // VMREAD/VMWRITE register form: reg2 = RCX (1), mem/reg set.
        let ii = instr_info::MEM_REG | (1 << instr_info::REG2_SHIFT);
        assert_eq!((ii >> instr_info::REG2_SHIFT) & instr_info::REG_MASK, 1);
    }

    #[test]
    fn ept_bits() {
        assert_eq!(eptp::PWL_4, 0x18);
        assert_eq!(eptp::PWL_5, 0x20);
        assert_eq!(eptp::AD_ENABLE, 0x40);
        assert_eq!(u64::from(mem_type::WB) << ept::MEM_TYPE_SHIFT, 0x30);
        assert_eq!(ept::ACCESSED, 0x100);
        assert_eq!(ept::DIRTY, 0x200);
        assert_eq!(ept::USER_EXEC, 0x400);
        assert_eq!(ept::ADDR_MASK & 0xFFF, 0);
        assert_eq!(activity::GUEST_ACTIVITY_WAIT_SIPI, 3);
        assert_eq!(interruptibility::GUEST_INTR_STATE_NMI, 0x8);
        assert_eq!(interruptibility::RESERVED_MASK, 0xFFFF_FFE0);
    }
}
