//! CPU capability models: the CPUID leaves and fixed-value MSRs (such as the VMX capability
//! MSRs) of a microarchitecture, read from `models/cpu/<name>.toml`.
//!
//! The shipped models are compiled into the binary so `vmxsim` works from any
//! directory; `--cpu PATH` loads any other file in the same format. Every value in a model
//! file carries a `source` (its provenance), and the loader rejects entries without one.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::config::{self, ConfigError};

/// Built-in models by name.
pub const BUILTIN: &[(&str, &str)] = &[
    ("broadwell", include_str!("../models/cpu/broadwell.toml")),
    ("broadwell-ep", include_str!("../models/cpu/broadwell-ep.toml")),
    ("haswell", include_str!("../models/cpu/haswell.toml")),
    ("skylake", include_str!("../models/cpu/skylake.toml")),
];

/// The model `vmxsim` uses when none is named.
pub const DEFAULT: &str = "broadwell";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CpuidEntry {
    leaf: u32,
    subleaf: Option<u32>,
    eax: u32,
    ebx: u32,
    ecx: u32,
    edx: u32,
    source: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MsrEntry {
    index: u32,
    name: String,
    value: U64,
    source: String,
}

/// A 64-bit value written as a TOML integer or, for values above `i64::MAX` (which TOML
/// integers cannot hold), as a string such as "0xFFF9FFFE0401E172".
#[derive(Deserialize, Clone, Copy)]
#[serde(try_from = "toml::Value")]
pub struct U64(pub u64);

impl TryFrom<toml::Value> for U64 {
    type Error = String;
    fn try_from(v: toml::Value) -> Result<Self, String> {
        match v {
            toml::Value::Integer(i) => u64::try_from(i).map(U64).map_err(|_| format!("negative value {i}")),
            toml::Value::String(s) => {
                let t = s.trim().replace('_', "");
                let r = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
                    Some(h) => u64::from_str_radix(h, 16),
                    None => t.parse(),
                };
                r.map(U64).map_err(|_| format!("`{s}` is not a 64-bit number"))
            }
            other => Err(format!("expected a number, found {}", other.type_str())),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelFile {
    name: String,
    description: String,
    provenance: String,
    xcr0_supported: u64,
    xcr0_supported_source: String,
    cr4_valid: u64,
    cr4_valid_source: String,
    #[serde(default)]
    cpuid: Vec<CpuidEntry>,
    #[serde(default)]
    msr: Vec<MsrEntry>,
}

/// A loaded CPU model.
#[derive(Clone, Debug)]
pub struct CpuModel {
    pub name: String,
    pub description: String,
    /// CPUID values by (leaf, subleaf); subleaf `u32::MAX` matches any subleaf.
    cpuid: BTreeMap<(u32, u32), [u32; 4]>,
    msrs: BTreeMap<u32, (String, u64)>,
    xcr0: u64,
    cr4: u64,
}

impl CpuModel {
    /// A built-in model by name, or a model file by path.
    pub fn load(name_or_path: &str) -> Result<CpuModel, ConfigError> {
        let (text, file) = config::builtin_or_file(BUILTIN, "models/cpu", "CPU model", name_or_path)?;
        Self::parse(&text, &file)
    }

    /// Parses a model file's text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<CpuModel, ConfigError> {
        let f: ModelFile = config::from_toml(text, file)?;
        let missing = |what: &str| ConfigError::Invalid {
            file: file.to_string(),
            message: format!("{what} has no provenance (`source`)"),
        };
        if f.provenance.trim().is_empty()
            || f.xcr0_supported_source.trim().is_empty()
            || f.cr4_valid_source.trim().is_empty()
        {
            return Err(missing("the model"));
        }
        let mut cpuid = BTreeMap::new();
        for e in &f.cpuid {
            if e.source.trim().is_empty() {
                return Err(missing(&format!("CPUID leaf {:#x}", e.leaf)));
            }
            cpuid.insert((e.leaf, e.subleaf.unwrap_or(u32::MAX)), [e.eax, e.ebx, e.ecx, e.edx]);
        }
        let mut msrs = BTreeMap::new();
        for e in &f.msr {
            if e.source.trim().is_empty() {
                return Err(missing(&format!("MSR {}", e.name)));
            }
            msrs.insert(e.index, (e.name.clone(), e.value.0));
        }
        Ok(CpuModel { name: f.name, description: f.description, cpuid, msrs, xcr0: f.xcr0_supported, cr4: f.cr4_valid })
    }

    /// CPUID for (leaf, subleaf). Leaves above the maximum basic or extended leaf return
    /// the highest basic leaf's data, as Intel processors do.
    pub fn cpuid(&self, leaf: u32, sub: u32) -> [u32; 4] {
        let max_basic = self.cpuid.get(&(0, u32::MAX)).map_or(0, |r| r[0]);
        let max_ext = self.cpuid.get(&(0x8000_0000, u32::MAX)).map_or(0x8000_0000, |r| r[0]);
        let leaf = if (leaf < 0x8000_0000 && leaf > max_basic) || (leaf >= 0x8000_0000 && leaf > max_ext) {
            max_basic
        } else {
            leaf
        };
        self.cpuid.get(&(leaf, sub)).or_else(|| self.cpuid.get(&(leaf, u32::MAX))).copied().unwrap_or([0; 4])
    }

    /// A fixed-value MSR of the model.
    pub fn msr(&self, index: u32) -> Option<u64> {
        self.msrs.get(&index).map(|(_, v)| *v)
    }

    pub fn xcr0_supported(&self) -> u64 {
        self.xcr0
    }

    pub fn cr4_valid(&self) -> u64 {
        self.cr4
    }

    /// Whether CPUID.(EAX=leaf, ECX=sub).reg has `bit` set (reg 0..3 = EAX..EDX).
    pub fn has_feature(&self, leaf: u32, sub: u32, reg: usize, bit: u32) -> bool {
        self.cpuid(leaf, sub)[reg] >> bit & 1 != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_models_load_and_advertise_vmx() {
        for (name, _) in BUILTIN {
            let m = CpuModel::load(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(m.has_feature(1, 0, 2, 5), "{name} lacks CPUID.1:ECX.VMX");
            assert!(!m.has_feature(1, 0, 2, 27), "{name}: OSXSAVE must come from CR4, not the file");
        }
    }

    #[test]
    fn unknown_name_suggests() {
        let e = CpuModel::load("brodwell").unwrap_err().to_string();
        assert!(e.contains("broadwell"), "{e}");
    }

    #[test]
    fn missing_source_is_rejected() {
        let text = "name='x'\ndescription='x'\nprovenance='p'\nxcr0_supported=7\nxcr0_supported_source='s'\ncr4_valid=0\ncr4_valid_source='s'\n[[cpuid]]\nleaf=0\neax=1\nebx=0\necx=0\nedx=0\nsource=''\n";
        let e = CpuModel::parse(text, "t.toml").unwrap_err().to_string();
        assert!(e.contains("provenance"), "{e}");
    }
}
