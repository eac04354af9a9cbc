//! VMCS field encodings (Intel SDM Vol. 3C, appendix B) as data.
//!
//! Every VMCS component has a 32-bit encoding that VMREAD and VMWRITE take as their field
//! operand. The encoding is self-describing:
//!
//! | bits  | meaning                                                              |
//! |-------|----------------------------------------------------------------------|
//! | 0     | access type: 0 = full, 1 = high 32 bits of a 64-bit field            |
//! | 9:1   | index within the (width, type) group                                 |
//! | 11:10 | type: 0 control, 1 VM-exit information (read-only), 2 guest, 3 host  |
//! | 12    | reserved, must be 0                                                  |
//! | 14:13 | width: 0 16-bit, 1 64-bit, 2 32-bit, 3 natural width                 |
//! | 31:15 | reserved, must be 0                                                  |
//!
//! This module lists every field a current Intel CPU defines, under the names Linux/KVM
//! uses (`arch/x86/include/asm/vmx.h`); fields Linux never named get a name in the same
//! style. [`field`] holds one constant per field (the full encoding; the high half of a
//! 64-bit field is `encoding | 1`), [`VMCS_FIELDS`] is the single table in encoding order,
//! and the functions decode width and type from any encoding and look fields up by name or
//! encoding. There is no behaviour here: which fields a given CPU model supports, and what
//! VMREAD/VMWRITE do with them, live in the layers above.

/// Generates the per-field constants in [`field`] and the [`VMCS_FIELDS`] table from one
/// list, so the two can never disagree.
macro_rules! vmcs_fields {
    ($( $(#[$meta:meta])* $name:ident = $enc:expr, )*) => {
        /// One constant per VMCS field: its full encoding.
        ///
        /// For 64-bit fields the constant is the FULL encoding (access type 0); the HIGH
        /// encoding, which reads or writes bits 63:32 only, is the constant `| 1`.
        pub mod field {
            $(
                $(#[$meta])*
                pub const $name: u32 = $enc;
            )*
        }

        /// Every VMCS field, sorted by encoding (FULL encodings only).
        pub static VMCS_FIELDS: &[FieldInfo] = &[
            $( FieldInfo { name: stringify!($name), encoding: field::$name }, )*
        ];
    };
}

vmcs_fields! {
    // ---- 16-bit control fields ------------------------------------------------------
    /// Virtual-processor identifier (VPID).
    VIRTUAL_PROCESSOR_ID = 0x0000,
    /// Posted-interrupt notification vector.
    POSTED_INTR_NV = 0x0002,
    /// EPTP index (for EPTP switching and #VE).
    EPTP_INDEX = 0x0004,
    /// HLAT prefix size.
    HLAT_PREFIX_SIZE = 0x0006,
    /// Last PID-pointer index (IPI virtualization).
    LAST_PID_POINTER_INDEX = 0x0008,

    // ---- 16-bit guest-state fields --------------------------------------------------
    /// Guest ES selector.
    GUEST_ES_SELECTOR = 0x0800,
    /// Guest CS selector.
    GUEST_CS_SELECTOR = 0x0802,
    /// Guest SS selector.
    GUEST_SS_SELECTOR = 0x0804,
    /// Guest DS selector.
    GUEST_DS_SELECTOR = 0x0806,
    /// Guest FS selector.
    GUEST_FS_SELECTOR = 0x0808,
    /// Guest GS selector.
    GUEST_GS_SELECTOR = 0x080A,
    /// Guest LDTR selector.
    GUEST_LDTR_SELECTOR = 0x080C,
    /// Guest TR selector.
    GUEST_TR_SELECTOR = 0x080E,
    /// Guest interrupt status (RVI in bits 7:0, SVI in bits 15:8).
    GUEST_INTR_STATUS = 0x0810,
    /// PML index.
    GUEST_PML_INDEX = 0x0812,
    /// Guest user-interrupt notification vector (UINV).
    GUEST_UINV = 0x0814,

    // ---- 16-bit host-state fields ---------------------------------------------------
    /// Host ES selector.
    HOST_ES_SELECTOR = 0x0C00,
    /// Host CS selector.
    HOST_CS_SELECTOR = 0x0C02,
    /// Host SS selector.
    HOST_SS_SELECTOR = 0x0C04,
    /// Host DS selector.
    HOST_DS_SELECTOR = 0x0C06,
    /// Host FS selector.
    HOST_FS_SELECTOR = 0x0C08,
    /// Host GS selector.
    HOST_GS_SELECTOR = 0x0C0A,
    /// Host TR selector.
    HOST_TR_SELECTOR = 0x0C0C,

    // ---- 64-bit control fields ------------------------------------------------------
    /// Physical address of I/O bitmap A (ports 0x0000-0x7FFF).
    IO_BITMAP_A = 0x2000,
    /// Physical address of I/O bitmap B (ports 0x8000-0xFFFF).
    IO_BITMAP_B = 0x2002,
    /// Physical address of the MSR bitmaps.
    MSR_BITMAP = 0x2004,
    /// VM-exit MSR-store list address.
    VM_EXIT_MSR_STORE_ADDR = 0x2006,
    /// VM-exit MSR-load list address.
    VM_EXIT_MSR_LOAD_ADDR = 0x2008,
    /// VM-entry MSR-load list address.
    VM_ENTRY_MSR_LOAD_ADDR = 0x200A,
    /// Executive-VMCS pointer (dual-monitor treatment of SMIs and SMM).
    EXECUTIVE_VMCS_POINTER = 0x200C,
    /// Page-modification-log address.
    PML_ADDRESS = 0x200E,
    /// TSC offset.
    TSC_OFFSET = 0x2010,
    /// Virtual-APIC page address.
    VIRTUAL_APIC_PAGE_ADDR = 0x2012,
    /// APIC-access page address.
    APIC_ACCESS_ADDR = 0x2014,
    /// Posted-interrupt descriptor address.
    POSTED_INTR_DESC_ADDR = 0x2016,
    /// VM-function controls.
    VM_FUNCTION_CONTROL = 0x2018,
    /// EPT pointer (EPTP).
    EPT_POINTER = 0x201A,
    /// EOI-exit bitmap 0 (vectors 0-63).
    EOI_EXIT_BITMAP0 = 0x201C,
    /// EOI-exit bitmap 1 (vectors 64-127).
    EOI_EXIT_BITMAP1 = 0x201E,
    /// EOI-exit bitmap 2 (vectors 128-191).
    EOI_EXIT_BITMAP2 = 0x2020,
    /// EOI-exit bitmap 3 (vectors 192-255).
    EOI_EXIT_BITMAP3 = 0x2022,
    /// EPTP-list address (EPTP switching).
    EPTP_LIST_ADDRESS = 0x2024,
    /// VMREAD-bitmap address (VMCS shadowing).
    VMREAD_BITMAP = 0x2026,
    /// VMWRITE-bitmap address (VMCS shadowing).
    VMWRITE_BITMAP = 0x2028,
    /// Virtualization-exception (#VE) information address.
    VE_INFORMATION_ADDRESS = 0x202A,
    /// XSS-exiting bitmap.
    XSS_EXIT_BITMAP = 0x202C,
    /// ENCLS-exiting bitmap.
    ENCLS_EXITING_BITMAP = 0x202E,
    /// Sub-page-permission-table pointer.
    SPPT_POINTER = 0x2030,
    /// TSC multiplier.
    TSC_MULTIPLIER = 0x2032,
    /// Tertiary processor-based VM-execution controls.
    TERTIARY_VM_EXEC_CONTROL = 0x2034,
    /// ENCLV-exiting bitmap.
    ENCLV_EXITING_BITMAP = 0x2036,
    /// Low PASID directory address.
    LOW_PASID_DIRECTORY_ADDR = 0x2038,
    /// High PASID directory address.
    HIGH_PASID_DIRECTORY_ADDR = 0x203A,
    /// Shared EPT pointer (TDX).
    SHARED_EPT_POINTER = 0x203C,
    /// PCONFIG-exiting bitmap.
    PCONFIG_EXITING_BITMAP = 0x203E,
    /// Hypervisor-managed linear-address translation pointer (HLATP).
    HLAT_POINTER = 0x2040,
    /// PID-pointer table address (IPI virtualization).
    PID_POINTER_TABLE = 0x2042,
    /// Secondary VM-exit controls.
    SECONDARY_VM_EXIT_CONTROLS = 0x2044,
    /// IA32_SPEC_CTRL mask (virtualization of IA32_SPEC_CTRL).
    IA32_SPEC_CTRL_MASK = 0x204A,
    /// IA32_SPEC_CTRL shadow (virtualization of IA32_SPEC_CTRL).
    IA32_SPEC_CTRL_SHADOW = 0x204C,
    /// Injected-event data (FRED).
    INJECTED_EVENT_DATA = 0x2052,

    // ---- 64-bit read-only data fields -----------------------------------------------
    /// Guest-physical address of an EPT violation or misconfiguration.
    GUEST_PHYSICAL_ADDRESS = 0x2400,
    /// Original-event data (FRED).
    ORIGINAL_EVENT_DATA = 0x2404,

    // ---- 64-bit guest-state fields --------------------------------------------------
    /// VMCS link pointer (shadow VMCS; all ones when unused).
    VMCS_LINK_POINTER = 0x2800,
    /// Guest IA32_DEBUGCTL.
    GUEST_IA32_DEBUGCTL = 0x2802,
    /// Guest IA32_PAT.
    GUEST_IA32_PAT = 0x2804,
    /// Guest IA32_EFER.
    GUEST_IA32_EFER = 0x2806,
    /// Guest IA32_PERF_GLOBAL_CTRL.
    GUEST_IA32_PERF_GLOBAL_CTRL = 0x2808,
    /// Guest PDPTE0 (PAE paging with EPT).
    GUEST_PDPTR0 = 0x280A,
    /// Guest PDPTE1.
    GUEST_PDPTR1 = 0x280C,
    /// Guest PDPTE2.
    GUEST_PDPTR2 = 0x280E,
    /// Guest PDPTE3.
    GUEST_PDPTR3 = 0x2810,
    /// Guest IA32_BNDCFGS.
    GUEST_BNDCFGS = 0x2812,
    /// Guest IA32_RTIT_CTL.
    GUEST_IA32_RTIT_CTL = 0x2814,
    /// Guest IA32_LBR_CTL.
    GUEST_IA32_LBR_CTL = 0x2816,
    /// Guest IA32_PKRS.
    GUEST_IA32_PKRS = 0x2818,
    /// Guest IA32_FRED_CONFIG.
    GUEST_IA32_FRED_CONFIG = 0x281A,
    /// Guest IA32_FRED_RSP1.
    GUEST_IA32_FRED_RSP1 = 0x281C,
    /// Guest IA32_FRED_RSP2.
    GUEST_IA32_FRED_RSP2 = 0x281E,
    /// Guest IA32_FRED_RSP3.
    GUEST_IA32_FRED_RSP3 = 0x2820,
    /// Guest IA32_FRED_STKLVLS.
    GUEST_IA32_FRED_STKLVLS = 0x2822,
    /// Guest IA32_FRED_SSP1.
    GUEST_IA32_FRED_SSP1 = 0x2824,
    /// Guest IA32_FRED_SSP2.
    GUEST_IA32_FRED_SSP2 = 0x2826,
    /// Guest IA32_FRED_SSP3.
    GUEST_IA32_FRED_SSP3 = 0x2828,

    // ---- 64-bit host-state fields ---------------------------------------------------
    /// Host IA32_PAT.
    HOST_IA32_PAT = 0x2C00,
    /// Host IA32_EFER.
    HOST_IA32_EFER = 0x2C02,
    /// Host IA32_PERF_GLOBAL_CTRL.
    HOST_IA32_PERF_GLOBAL_CTRL = 0x2C04,
    /// Host IA32_PKRS.
    HOST_IA32_PKRS = 0x2C06,
    /// Host IA32_FRED_CONFIG.
    HOST_IA32_FRED_CONFIG = 0x2C08,
    /// Host IA32_FRED_RSP1.
    HOST_IA32_FRED_RSP1 = 0x2C0A,
    /// Host IA32_FRED_RSP2.
    HOST_IA32_FRED_RSP2 = 0x2C0C,
    /// Host IA32_FRED_RSP3.
    HOST_IA32_FRED_RSP3 = 0x2C0E,
    /// Host IA32_FRED_STKLVLS.
    HOST_IA32_FRED_STKLVLS = 0x2C10,
    /// Host IA32_FRED_SSP1.
    HOST_IA32_FRED_SSP1 = 0x2C12,
    /// Host IA32_FRED_SSP2.
    HOST_IA32_FRED_SSP2 = 0x2C14,
    /// Host IA32_FRED_SSP3.
    HOST_IA32_FRED_SSP3 = 0x2C16,

    // ---- 32-bit control fields ------------------------------------------------------
    /// Pin-based VM-execution controls.
    PIN_BASED_VM_EXEC_CONTROL = 0x4000,
    /// Primary processor-based VM-execution controls.
    CPU_BASED_VM_EXEC_CONTROL = 0x4002,
    /// Exception bitmap.
    EXCEPTION_BITMAP = 0x4004,
    /// Page-fault error-code mask.
    PAGE_FAULT_ERROR_CODE_MASK = 0x4006,
    /// Page-fault error-code match.
    PAGE_FAULT_ERROR_CODE_MATCH = 0x4008,
    /// CR3-target count.
    CR3_TARGET_COUNT = 0x400A,
    /// Primary VM-exit controls.
    VM_EXIT_CONTROLS = 0x400C,
    /// VM-exit MSR-store count.
    VM_EXIT_MSR_STORE_COUNT = 0x400E,
    /// VM-exit MSR-load count.
    VM_EXIT_MSR_LOAD_COUNT = 0x4010,
    /// VM-entry controls.
    VM_ENTRY_CONTROLS = 0x4012,
    /// VM-entry MSR-load count.
    VM_ENTRY_MSR_LOAD_COUNT = 0x4014,
    /// VM-entry interruption-information field.
    VM_ENTRY_INTR_INFO_FIELD = 0x4016,
    /// VM-entry exception error code.
    VM_ENTRY_EXCEPTION_ERROR_CODE = 0x4018,
    /// VM-entry instruction length.
    VM_ENTRY_INSTRUCTION_LEN = 0x401A,
    /// TPR threshold.
    TPR_THRESHOLD = 0x401C,
    /// Secondary processor-based VM-execution controls.
    SECONDARY_VM_EXEC_CONTROL = 0x401E,
    /// PAUSE-loop-exiting gap.
    PLE_GAP = 0x4020,
    /// PAUSE-loop-exiting window.
    PLE_WINDOW = 0x4022,
    /// Instruction-timeout control (notify window).
    NOTIFY_WINDOW = 0x4024,

    // ---- 32-bit read-only data fields -----------------------------------------------
    /// VM-instruction error.
    VM_INSTRUCTION_ERROR = 0x4400,
    /// Exit reason.
    VM_EXIT_REASON = 0x4402,
    /// VM-exit interruption information.
    VM_EXIT_INTR_INFO = 0x4404,
    /// VM-exit interruption error code.
    VM_EXIT_INTR_ERROR_CODE = 0x4406,
    /// IDT-vectoring information field.
    IDT_VECTORING_INFO_FIELD = 0x4408,
    /// IDT-vectoring error code.
    IDT_VECTORING_ERROR_CODE = 0x440A,
    /// VM-exit instruction length.
    VM_EXIT_INSTRUCTION_LEN = 0x440C,
    /// VM-exit instruction information.
    VMX_INSTRUCTION_INFO = 0x440E,

    // ---- 32-bit guest-state fields --------------------------------------------------
    /// Guest ES limit.
    GUEST_ES_LIMIT = 0x4800,
    /// Guest CS limit.
    GUEST_CS_LIMIT = 0x4802,
    /// Guest SS limit.
    GUEST_SS_LIMIT = 0x4804,
    /// Guest DS limit.
    GUEST_DS_LIMIT = 0x4806,
    /// Guest FS limit.
    GUEST_FS_LIMIT = 0x4808,
    /// Guest GS limit.
    GUEST_GS_LIMIT = 0x480A,
    /// Guest LDTR limit.
    GUEST_LDTR_LIMIT = 0x480C,
    /// Guest TR limit.
    GUEST_TR_LIMIT = 0x480E,
    /// Guest GDTR limit.
    GUEST_GDTR_LIMIT = 0x4810,
    /// Guest IDTR limit.
    GUEST_IDTR_LIMIT = 0x4812,
    /// Guest ES access rights.
    GUEST_ES_AR_BYTES = 0x4814,
    /// Guest CS access rights.
    GUEST_CS_AR_BYTES = 0x4816,
    /// Guest SS access rights.
    GUEST_SS_AR_BYTES = 0x4818,
    /// Guest DS access rights.
    GUEST_DS_AR_BYTES = 0x481A,
    /// Guest FS access rights.
    GUEST_FS_AR_BYTES = 0x481C,
    /// Guest GS access rights.
    GUEST_GS_AR_BYTES = 0x481E,
    /// Guest LDTR access rights.
    GUEST_LDTR_AR_BYTES = 0x4820,
    /// Guest TR access rights.
    GUEST_TR_AR_BYTES = 0x4822,
    /// Guest interruptibility state.
    GUEST_INTERRUPTIBILITY_INFO = 0x4824,
    /// Guest activity state.
    GUEST_ACTIVITY_STATE = 0x4826,
    /// Guest SMBASE.
    GUEST_SMBASE = 0x4828,
    /// Guest IA32_SYSENTER_CS.
    GUEST_SYSENTER_CS = 0x482A,
    /// VMX-preemption timer value.
    VMX_PREEMPTION_TIMER_VALUE = 0x482E,

    // ---- 32-bit host-state field ----------------------------------------------------
    /// Host IA32_SYSENTER_CS.
    HOST_IA32_SYSENTER_CS = 0x4C00,

    // ---- natural-width control fields -----------------------------------------------
    /// CR0 guest/host mask.
    CR0_GUEST_HOST_MASK = 0x6000,
    /// CR4 guest/host mask.
    CR4_GUEST_HOST_MASK = 0x6002,
    /// CR0 read shadow.
    CR0_READ_SHADOW = 0x6004,
    /// CR4 read shadow.
    CR4_READ_SHADOW = 0x6006,
    /// CR3-target value 0.
    CR3_TARGET_VALUE0 = 0x6008,
    /// CR3-target value 1.
    CR3_TARGET_VALUE1 = 0x600A,
    /// CR3-target value 2.
    CR3_TARGET_VALUE2 = 0x600C,
    /// CR3-target value 3.
    CR3_TARGET_VALUE3 = 0x600E,

    // ---- natural-width read-only data fields ----------------------------------------
    /// Exit qualification.
    EXIT_QUALIFICATION = 0x6400,
    /// I/O RCX (SMIs after I/O instructions).
    IO_RCX = 0x6402,
    /// I/O RSI.
    IO_RSI = 0x6404,
    /// I/O RDI.
    IO_RDI = 0x6406,
    /// I/O RIP.
    IO_RIP = 0x6408,
    /// Guest-linear address.
    GUEST_LINEAR_ADDRESS = 0x640A,

    // ---- natural-width guest-state fields -------------------------------------------
    /// Guest CR0.
    GUEST_CR0 = 0x6800,
    /// Guest CR3.
    GUEST_CR3 = 0x6802,
    /// Guest CR4.
    GUEST_CR4 = 0x6804,
    /// Guest ES base.
    GUEST_ES_BASE = 0x6806,
    /// Guest CS base.
    GUEST_CS_BASE = 0x6808,
    /// Guest SS base.
    GUEST_SS_BASE = 0x680A,
    /// Guest DS base.
    GUEST_DS_BASE = 0x680C,
    /// Guest FS base.
    GUEST_FS_BASE = 0x680E,
    /// Guest GS base.
    GUEST_GS_BASE = 0x6810,
    /// Guest LDTR base.
    GUEST_LDTR_BASE = 0x6812,
    /// Guest TR base.
    GUEST_TR_BASE = 0x6814,
    /// Guest GDTR base.
    GUEST_GDTR_BASE = 0x6816,
    /// Guest IDTR base.
    GUEST_IDTR_BASE = 0x6818,
    /// Guest DR7.
    GUEST_DR7 = 0x681A,
    /// Guest RSP.
    GUEST_RSP = 0x681C,
    /// Guest RIP.
    GUEST_RIP = 0x681E,
    /// Guest RFLAGS.
    GUEST_RFLAGS = 0x6820,
    /// Guest pending debug exceptions.
    GUEST_PENDING_DBG_EXCEPTIONS = 0x6822,
    /// Guest IA32_SYSENTER_ESP.
    GUEST_SYSENTER_ESP = 0x6824,
    /// Guest IA32_SYSENTER_EIP.
    GUEST_SYSENTER_EIP = 0x6826,
    /// Guest IA32_S_CET.
    GUEST_S_CET = 0x6828,
    /// Guest SSP.
    GUEST_SSP = 0x682A,
    /// Guest IA32_INTERRUPT_SSP_TABLE_ADDR.
    GUEST_INTR_SSP_TABLE = 0x682C,

    // ---- natural-width host-state fields --------------------------------------------
    /// Host CR0.
    HOST_CR0 = 0x6C00,
    /// Host CR3.
    HOST_CR3 = 0x6C02,
    /// Host CR4.
    HOST_CR4 = 0x6C04,
    /// Host FS base.
    HOST_FS_BASE = 0x6C06,
    /// Host GS base.
    HOST_GS_BASE = 0x6C08,
    /// Host TR base.
    HOST_TR_BASE = 0x6C0A,
    /// Host GDTR base.
    HOST_GDTR_BASE = 0x6C0C,
    /// Host IDTR base.
    HOST_IDTR_BASE = 0x6C0E,
    /// Host IA32_SYSENTER_ESP.
    HOST_IA32_SYSENTER_ESP = 0x6C10,
    /// Host IA32_SYSENTER_EIP.
    HOST_IA32_SYSENTER_EIP = 0x6C12,
    /// Host RSP.
    HOST_RSP = 0x6C14,
    /// Host RIP.
    HOST_RIP = 0x6C16,
    /// Host IA32_S_CET.
    HOST_S_CET = 0x6C18,
    /// Host SSP.
    HOST_SSP = 0x6C1A,
    /// Host IA32_INTERRUPT_SSP_TABLE_ADDR.
    HOST_INTR_SSP_TABLE = 0x6C1C,
}

/// Width of a VMCS field (encoding bits 14:13).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldWidth {
    /// 16-bit field (width 0).
    W16,
    /// 64-bit field (width 1); accessible as FULL or, with access type 1, HIGH.
    W64,
    /// 32-bit field (width 2).
    W32,
    /// Natural-width field (width 3): 64 bits on processors supporting Intel 64.
    Natural,
}

/// Type of a VMCS field (encoding bits 11:10).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldType {
    /// Control field (type 0).
    Control,
    /// VM-exit information field (type 1); read-only unless IA32_VMX_MISC bit 29 is set.
    ExitInfo,
    /// Guest-state field (type 2).
    Guest,
    /// Host-state field (type 3).
    Host,
}

/// Bit 0 of an encoding: the access type (1 = HIGH half of a 64-bit field).
pub const ACCESS_HIGH: u32 = 1 << 0;
/// Shift of the index (bits 9:1).
pub const INDEX_SHIFT: u32 = 1;
/// Mask of the index after shifting.
pub const INDEX_MASK: u32 = 0x1FF;
/// Shift of the type (bits 11:10).
pub const TYPE_SHIFT: u32 = 10;
/// Shift of the width (bits 14:13).
pub const WIDTH_SHIFT: u32 = 13;
/// Bits that must be zero in every encoding: bit 12 and bits 31:15.
pub const RESERVED_MASK: u32 = 0xFFFF_8000 | (1 << 12);

/// Width encoded in `enc` (bits 14:13); other bits are ignored.
pub const fn width_of(enc: u32) -> FieldWidth {
    match (enc >> WIDTH_SHIFT) & 3 {
        0 => FieldWidth::W16,
        1 => FieldWidth::W64,
        2 => FieldWidth::W32,
        _ => FieldWidth::Natural,
    }
}

/// Type encoded in `enc` (bits 11:10); other bits are ignored.
pub const fn type_of(enc: u32) -> FieldType {
    match (enc >> TYPE_SHIFT) & 3 {
        0 => FieldType::Control,
        1 => FieldType::ExitInfo,
        2 => FieldType::Guest,
        _ => FieldType::Host,
    }
}

/// Index encoded in `enc` (bits 9:1).
pub const fn index_of(enc: u32) -> u32 {
    (enc >> INDEX_SHIFT) & INDEX_MASK
}

/// Whether `enc` has access type HIGH (bit 0). Only meaningful for 64-bit fields; for any
/// other width the bit makes the encoding invalid (see [`is_valid_encoding_shape`]).
pub const fn is_high(enc: u32) -> bool {
    enc & ACCESS_HIGH != 0
}

/// Whether `enc` is well formed: bit 12 and bits 31:15 are zero, and the HIGH access type
/// is used only with a 64-bit width. A well-formed encoding need not name a field that
/// exists; use [`by_encoding`] for that.
pub const fn is_valid_encoding_shape(enc: u32) -> bool {
    if enc & RESERVED_MASK != 0 {
        return false;
    }
    !is_high(enc) || matches!(width_of(enc), FieldWidth::W64)
}

/// Mask of the bits a field of width `w` holds (natural width is 64 bits, as on every
/// processor that supports Intel 64).
pub const fn width_mask(w: FieldWidth) -> u64 {
    match w {
        FieldWidth::W16 => 0xFFFF,
        FieldWidth::W32 => 0xFFFF_FFFF,
        FieldWidth::W64 | FieldWidth::Natural => u64::MAX,
    }
}

/// One VMCS field: its Linux-style name and FULL encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FieldInfo {
    /// Name, e.g. `"GUEST_RIP"`.
    pub name: &'static str,
    /// FULL encoding, e.g. `0x681E`.
    pub encoding: u32,
}

impl FieldInfo {
    /// Width of the field, decoded from its encoding.
    pub const fn width(&self) -> FieldWidth {
        width_of(self.encoding)
    }

    /// Type of the field, decoded from its encoding.
    pub const fn ty(&self) -> FieldType {
        type_of(self.encoding)
    }

    /// Whether software can VMWRITE the field on a CPU without the "VMWRITE to any
    /// field" capability (IA32_VMX_MISC bit 29): everything except VM-exit information.
    pub const fn is_writable(&self) -> bool {
        !matches!(self.ty(), FieldType::ExitInfo)
    }
}

/// The field named exactly `name` (case-sensitive, e.g. `"GUEST_RIP"`).
pub fn by_name(name: &str) -> Option<&'static FieldInfo> {
    VMCS_FIELDS.iter().find(|f| f.name == name)
}

/// The field an encoding refers to.
///
/// A HIGH encoding (`full | 1`) of a 64-bit field maps to that 64-bit field's entry, whose
/// `encoding` is the FULL one; callers that care which half was named check
/// [`is_high`] on their own encoding. Malformed encodings (see
/// [`is_valid_encoding_shape`]) and encodings no field uses give `None`.
pub fn by_encoding(enc: u32) -> Option<&'static FieldInfo> {
    if !is_valid_encoding_shape(enc) {
        return None;
    }
    // A direct table over the 15 encoding bits (entry + 1, 0 for none): VMREAD and VMWRITE
    // look their field up on every execution.
    static TABLE: std::sync::OnceLock<Box<[u16]>> = std::sync::OnceLock::new();
    let t = TABLE.get_or_init(|| {
        let mut t = vec![0u16; 1 << 15].into_boxed_slice();
        for (i, f) in VMCS_FIELDS.iter().enumerate() {
            if let Some(slot) = t.get_mut(f.encoding as usize) {
                *slot = (i + 1) as u16;
            }
        }
        t
    });
    let full = enc & !ACCESS_HIGH;
    match t.get(full as usize) {
        Some(&i) if i > 0 => VMCS_FIELDS.get(usize::from(i) - 1),
        _ => None,
    }
}

/// Name of the field an encoding refers to (HIGH encodings give the 64-bit field's name).
pub fn name_of(enc: u32) -> Option<&'static str> {
    by_encoding(enc).map(|f| f.name)
}

/// Longest input [`suggest`] considers; longer strings are not mistyped field names.
const SUGGEST_MAX_LEN: usize = 64;

/// The field name closest to `name` by edit distance, for messages such as "unknown field
/// GUEST_RIPP, did you mean GUEST_RIP?".
///
/// The comparison ignores ASCII case. A candidate is offered only when its distance is at
/// most a quarter of the input's length (but at least 2) and smaller than the input's
/// length; otherwise, or for inputs longer than 64 bytes, the answer is `None`. Ties go to
/// the field with the lower encoding.
pub fn suggest(name: &str) -> Option<&'static str> {
    if name.is_empty() || name.len() > SUGGEST_MAX_LEN {
        return None;
    }
    let wanted = name.to_ascii_uppercase();
    let limit = (wanted.len() / 4).max(2).min(wanted.len() - 1);
    let mut best: Option<(usize, &'static str)> = None;
    for f in VMCS_FIELDS {
        let d = edit_distance(wanted.as_bytes(), f.name.as_bytes());
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, f.name));
        }
    }
    best.map(|(_, n)| n)
}

/// Levenshtein distance between two byte strings (insertions, deletions, substitutions).
fn edit_distance(a: &[u8], b: &[u8]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, &ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let subst = prev[j] + usize::from(ca != cb);
            cur[j + 1] = subst.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// Fields whose names start with GUEST_ but are VM-exit information.
    const GUEST_NAMED_EXIT_INFO: &[&str] = &["GUEST_PHYSICAL_ADDRESS", "GUEST_LINEAR_ADDRESS"];

    /// Every read-only (VM-exit information) field.
    const EXIT_INFO: &[&str] = &[
        "GUEST_PHYSICAL_ADDRESS",
        "ORIGINAL_EVENT_DATA",
        "VM_INSTRUCTION_ERROR",
        "VM_EXIT_REASON",
        "VM_EXIT_INTR_INFO",
        "VM_EXIT_INTR_ERROR_CODE",
        "IDT_VECTORING_INFO_FIELD",
        "IDT_VECTORING_ERROR_CODE",
        "VM_EXIT_INSTRUCTION_LEN",
        "VMX_INSTRUCTION_INFO",
        "EXIT_QUALIFICATION",
        "IO_RCX",
        "IO_RSI",
        "IO_RDI",
        "IO_RIP",
        "GUEST_LINEAR_ADDRESS",
    ];

    /// Guest-state fields whose names lack the GUEST_ prefix.
    const UNPREFIXED_GUEST: &[&str] = &["VMCS_LINK_POINTER", "VMX_PREEMPTION_TIMER_VALUE"];

    fn expected_type(name: &str) -> FieldType {
        if EXIT_INFO.contains(&name) {
            FieldType::ExitInfo
        } else if name.starts_with("HOST_") {
            FieldType::Host
        } else if name.starts_with("GUEST_") || UNPREFIXED_GUEST.contains(&name) {
            FieldType::Guest
        } else {
            FieldType::Control
        }
    }

    /// Width implied by the name's family, where the name makes it unambiguous.
    fn expected_width(name: &str) -> Option<FieldWidth> {
        let w = if name.ends_with("_SELECTOR") {
            FieldWidth::W16
        } else if name.ends_with("_LIMIT") || name.ends_with("_AR_BYTES") || name.ends_with("_COUNT") {
            FieldWidth::W32
        } else if name.ends_with("_BASE")
            || name.starts_with("CR0_")
            || name.starts_with("CR4_")
            || name.starts_with("CR3_TARGET_VALUE")
            || name.starts_with("IO_R")
            || ["GUEST_CR0", "GUEST_CR3", "GUEST_CR4", "HOST_CR0", "HOST_CR3", "HOST_CR4"].contains(&name)
            || ["_RIP", "_RSP", "_RFLAGS", "_SSP", "_S_CET", "_SSP_TABLE"]
                .iter()
                .any(|s| name.ends_with(s) && !name.contains("FRED"))
        {
            FieldWidth::Natural
        } else if name.starts_with("GUEST_PDPTR")
            || name.starts_with("EOI_EXIT_BITMAP")
            || name.contains("FRED")
            || ["TERTIARY_VM_EXEC_CONTROL", "VM_FUNCTION_CONTROL", "SECONDARY_VM_EXIT_CONTROLS"].contains(&name)
            || name.ends_with("_ADDR")
            || (name.ends_with("_ADDRESS") && name != "GUEST_LINEAR_ADDRESS")
            || name.ends_with("_POINTER")
            || (name.contains("IA32_") && !name.contains("SYSENTER") && !name.ends_with("S_CET"))
            || (name.contains("BITMAP") && name != "EXCEPTION_BITMAP")
        {
            FieldWidth::W64
        } else if name.ends_with("_SYSENTER_CS")
            || name == "EXCEPTION_BITMAP"
            || name.ends_with("_LEN")
            || name.ends_with("_INFO")
            || name.ends_with("_INFO_FIELD")
            || name.ends_with("_ERROR_CODE")
            || (name.ends_with("_VM_EXEC_CONTROL") && !name.starts_with("TERTIARY"))
            || name.starts_with("PAGE_FAULT_ERROR_CODE_")
            || name.starts_with("PLE_")
        {
            FieldWidth::W32
        } else if name.ends_with("_SYSENTER_ESP") || name.ends_with("_SYSENTER_EIP") || name == "GUEST_LINEAR_ADDRESS" {
            FieldWidth::Natural
        } else {
            return None;
        };
        Some(w)
    }

    #[test]
    fn table_shapes_are_valid_and_full() {
        for f in VMCS_FIELDS {
            assert!(is_valid_encoding_shape(f.encoding), "{} {:#x}", f.name, f.encoding);
            assert!(!is_high(f.encoding), "{} uses a HIGH encoding", f.name);
        }
    }

    #[test]
    fn types_agree_with_name_families() {
        for f in VMCS_FIELDS {
            assert_eq!(f.ty(), expected_type(f.name), "{}", f.name);
            if f.name.starts_with("HOST_") {
                assert_eq!(f.ty(), FieldType::Host, "{}", f.name);
            }
            if f.name.starts_with("GUEST_") && !GUEST_NAMED_EXIT_INFO.contains(&f.name) {
                assert_eq!(f.ty(), FieldType::Guest, "{}", f.name);
            }
        }
    }

    #[test]
    fn widths_agree_with_name_families() {
        let mut checked = 0;
        for f in VMCS_FIELDS {
            if let Some(w) = expected_width(f.name) {
                assert_eq!(f.width(), w, "{}", f.name);
                checked += 1;
            }
        }
        // The name heuristics must cover most of the table to mean anything.
        assert!(checked * 4 >= VMCS_FIELDS.len() * 3, "{checked} of {}", VMCS_FIELDS.len());
    }

    #[test]
    fn names_and_encodings_unique_and_sorted() {
        let names: HashSet<_> = VMCS_FIELDS.iter().map(|f| f.name).collect();
        assert_eq!(names.len(), VMCS_FIELDS.len());
        let encs: HashSet<_> = VMCS_FIELDS.iter().map(|f| f.encoding).collect();
        assert_eq!(encs.len(), VMCS_FIELDS.len());
        assert!(VMCS_FIELDS.windows(2).all(|w| w[0].encoding < w[1].encoding));
    }

    #[test]
    fn spot_checks_from_reference() {
        let expect = [
            ("GUEST_ES_SELECTOR", 0x800),
            ("GUEST_INTR_STATUS", 0x810),
            ("GUEST_PML_INDEX", 0x812),
            ("HOST_ES_SELECTOR", 0xC00),
            ("IO_BITMAP_A", 0x2000),
            ("TSC_OFFSET", 0x2010),
            ("GUEST_IA32_DEBUGCTL", 0x2802),
            ("PIN_BASED_VM_EXEC_CONTROL", 0x4000),
            ("TPR_THRESHOLD", 0x401C),
            ("VM_INSTRUCTION_ERROR", 0x4400),
            ("VM_EXIT_REASON", 0x4402),
            ("VM_EXIT_INSTRUCTION_LEN", 0x440C),
            ("VMX_INSTRUCTION_INFO", 0x440E),
            ("GUEST_INTERRUPTIBILITY_INFO", 0x4824),
            ("VMX_PREEMPTION_TIMER_VALUE", 0x482E),
            ("EXIT_QUALIFICATION", 0x6400),
            ("GUEST_CR0", 0x6800),
            ("GUEST_RIP", 0x681E),
            ("HOST_RIP", 0x6C16),
        ];
        for (name, enc) in expect {
            assert_eq!(by_name(name).map(|f| f.encoding), Some(enc), "{name}");
            assert_eq!(name_of(enc), Some(name));
        }
        assert_eq!(field::GUEST_RIP, 0x681E);
        assert_eq!(field::CPU_BASED_VM_EXEC_CONTROL, 0x4002);
        assert_eq!(field::SECONDARY_VM_EXEC_CONTROL, 0x401E);
        assert_eq!(field::EPT_POINTER, 0x201A);
        assert_eq!(field::VMCS_LINK_POINTER, 0x2800);
    }

    #[test]
    fn decode_helpers() {
        assert_eq!(width_of(field::GUEST_RIP), FieldWidth::Natural);
        assert_eq!(type_of(field::GUEST_RIP), FieldType::Guest);
        assert_eq!(width_of(field::TSC_OFFSET), FieldWidth::W64);
        assert_eq!(type_of(field::VM_EXIT_REASON), FieldType::ExitInfo);
        assert_eq!(type_of(field::HOST_RIP), FieldType::Host);
        assert_eq!(type_of(field::EXCEPTION_BITMAP), FieldType::Control);
        assert_eq!(width_of(field::GUEST_CS_SELECTOR), FieldWidth::W16);
        assert_eq!(width_of(field::GUEST_CS_LIMIT), FieldWidth::W32);
        assert_eq!(index_of(field::GUEST_RIP), 0xF);
        assert!(is_high(field::TSC_OFFSET | 1));
        assert!(is_valid_encoding_shape(field::TSC_OFFSET | 1));
        assert!(!is_valid_encoding_shape(field::GUEST_RIP | 1));
        assert!(!is_valid_encoding_shape(0x1000));
        assert!(!is_valid_encoding_shape(0x8000));
        assert!(!is_valid_encoding_shape(0xFFFF_FFFF));
        assert_eq!(width_mask(FieldWidth::W16), 0xFFFF);
        assert_eq!(width_mask(FieldWidth::W32), 0xFFFF_FFFF);
        assert_eq!(width_mask(FieldWidth::W64), u64::MAX);
        assert_eq!(width_mask(FieldWidth::Natural), u64::MAX);
        assert!(!by_name("VM_EXIT_REASON").is_some_and(FieldInfo::is_writable));
        assert!(by_name("GUEST_RIP").is_some_and(FieldInfo::is_writable));
    }

    #[test]
    fn high_encodings_map_to_their_64bit_field() {
        for f in VMCS_FIELDS.iter().filter(|f| f.width() == FieldWidth::W64) {
            assert_eq!(by_encoding(f.encoding | 1), Some(f), "{}", f.name);
        }
        for f in VMCS_FIELDS.iter().filter(|f| f.width() != FieldWidth::W64) {
            assert_eq!(by_encoding(f.encoding | 1), None, "{}", f.name);
        }
        assert_eq!(name_of(field::EPT_POINTER | 1), Some("EPT_POINTER"));
        assert_eq!(by_encoding(0x482C), None); // unused 32-bit guest index
        assert_eq!(by_encoding(0x1000 | field::GUEST_RIP), None);
    }

    #[test]
    fn lookup_round_trips() {
        for f in VMCS_FIELDS {
            assert_eq!(by_name(f.name), Some(f));
            assert_eq!(by_encoding(f.encoding), Some(f));
        }
        assert_eq!(by_name("guest_rip"), None);
        assert_eq!(by_name("NOPE"), None);
    }

    #[test]
    fn suggest_finds_near_misses() {
        assert_eq!(suggest("GUEST_RIPP"), Some("GUEST_RIP"));
        assert_eq!(suggest("guest_rip"), Some("GUEST_RIP"));
        assert_eq!(suggest("GUEST_RFLAG"), Some("GUEST_RFLAGS"));
        assert_eq!(suggest("VM_EXIT_REASONS"), Some("VM_EXIT_REASON"));
        assert_eq!(suggest("GUEST_INTERRUPTIBILITY_INF"), Some("GUEST_INTERRUPTIBILITY_INFO"));
        assert_eq!(suggest("EPT_POINTR"), Some("EPT_POINTER"));
        assert_eq!(suggest("CPU_BASED_VM_EXEC_CONTROLS"), Some("CPU_BASED_VM_EXEC_CONTROL"));
        assert_eq!(suggest("HOST_RIP"), Some("HOST_RIP"));
        assert_eq!(suggest(""), None);
        assert_eq!(suggest("X"), None);
        assert_eq!(suggest("FOO"), None);
        assert_eq!(suggest("XYZZY_PLUGH"), None);
        assert_eq!(suggest("COMPLETELY_UNRELATED_THING"), None);
        assert_eq!(suggest(&"A".repeat(1000)), None);
    }

    #[test]
    fn edit_distance_basics() {
        assert_eq!(edit_distance(b"", b""), 0);
        assert_eq!(edit_distance(b"abc", b""), 3);
        assert_eq!(edit_distance(b"kitten", b"sitting"), 3);
        assert_eq!(edit_distance(b"GUEST_RIP", b"GUEST_RIPP"), 1);
    }
}
