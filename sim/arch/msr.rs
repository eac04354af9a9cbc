//! Model-specific register indices (SDM Vol. 4) used by the loaders, the interpreter and
//! later the hypervisor programs.

/// Generates one constant per MSR and the [`NAMES`] table from one list, so the two can never
/// disagree.
macro_rules! msrs {
    ($( $name:ident = $index:expr, )*) => {
        $( pub const $name: u32 = $index; )*

        /// Every MSR this module names, as (name, index), in index order.
        pub static NAMES: &[(&str, u32)] = &[ $( (stringify!($name), $name), )* ];
    };
}

msrs! {
    IA32_TIME_STAMP_COUNTER = 0x10,
    IA32_APIC_BASE = 0x1B,
    IA32_FEATURE_CONTROL = 0x3A,
    IA32_TSC_ADJUST = 0x3B,
    IA32_SPEC_CTRL = 0x48,
    IA32_BIOS_SIGN_ID = 0x8B,
    IA32_MTRRCAP = 0xFE,
    IA32_SYSENTER_CS = 0x174,
    IA32_SYSENTER_ESP = 0x175,
    IA32_SYSENTER_EIP = 0x176,
    IA32_MISC_ENABLE = 0x1A0,
    IA32_DEBUGCTL = 0x1D9,
    IA32_PAT = 0x277,
    IA32_MTRR_DEF_TYPE = 0x2FF,
    IA32_TSC_DEADLINE = 0x6E0,
    IA32_XSS = 0xDA0,
    IA32_EFER = 0xC000_0080,
    IA32_STAR = 0xC000_0081,
    IA32_LSTAR = 0xC000_0082,
    IA32_CSTAR = 0xC000_0083,
    IA32_FMASK = 0xC000_0084,
    IA32_FS_BASE = 0xC000_0100,
    IA32_GS_BASE = 0xC000_0101,
    IA32_KERNEL_GS_BASE = 0xC000_0102,
    IA32_TSC_AUX = 0xC000_0103,
}

/// IA32_EFER bits.
pub mod efer {
    pub const SCE: u64 = 1 << 0;
    pub const LME: u64 = 1 << 8;
    pub const LMA: u64 = 1 << 10;
    pub const NXE: u64 = 1 << 11;
    /// Bits software may set on the modeled CPUs.
    pub const WRITABLE: u64 = SCE | LME | NXE;
}

/// The index of the MSR named exactly `name` (e.g. `"IA32_FS_BASE"`).
pub fn by_name(name: &str) -> Option<u32> {
    NAMES.iter().find(|(n, _)| *n == name).map(|&(_, i)| i)
}

/// The name of MSR `index`, if this module names it.
pub fn name_of(index: u32) -> Option<&'static str> {
    NAMES.iter().find(|&&(_, i)| i == index).map(|&(n, _)| n)
}

/// The MSR name closest to `name`, for "did you mean" messages.
pub fn suggest(name: &str) -> Option<&'static str> {
    crate::util::suggest(name, NAMES.iter().map(|&(n, _)| n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_sorted() {
        for &(n, i) in NAMES {
            assert_eq!(by_name(n), Some(i));
            assert_eq!(name_of(i), Some(n));
        }
        assert!(NAMES.windows(2).all(|w| w[0].1 < w[1].1));
        assert_eq!(by_name("IA32_FS_BASE"), Some(0xC000_0100));
        assert_eq!(by_name("ia32_fs_base"), None);
    }

    #[test]
    fn suggests_misspelt_names() {
        assert_eq!(suggest("IA32_FS_BAS"), Some("IA32_FS_BASE"));
        assert_eq!(suggest("IA32_DEBUGCTRL"), Some("IA32_DEBUGCTL"));
        assert_eq!(suggest("NOTHING_LIKE_AN_MSR_AT_ALL"), None);
    }
}
