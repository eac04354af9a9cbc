//! Timing: cost models that price the machine's cost classes, read from
//! `models/cost/<uarch>.toml`.
//!
//! A cost model is policy behind one small interface — a price per [`CostClass`] — chosen by
//! configuration (wasmi's fuel costs and gem5's operation-class latencies work the same way).
//! Every price carries its provenance: a source, `estimate` with a line of reasoning, or
//! `calibrated to Cn` (the calibration set is `shared/reference/calibration.md`). Prices are
//! in cycles and may be fractional (a simple ALU operation on a 4-wide core costs about a
//! quarter cycle of throughput); the machine accumulates them in millicycles.

pub mod accounting;

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use crate::config::{self, ConfigError};
use crate::machine::cost::{CostClass, Prices, N_CLASSES};

/// Built-in cost models by name.
pub const BUILTIN: &[(&str, &str)] = &[
    ("broadwell", include_str!("../../models/cost/broadwell.toml")),
    ("haswell", include_str!("../../models/cost/haswell.toml")),
    ("skylake", include_str!("../../models/cost/skylake.toml")),
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    cycles: Spanned<f64>,
    source: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CostFile {
    name: String,
    description: String,
    costs: BTreeMap<Spanned<String>, Entry>,
}

/// A loaded cost model.
#[derive(Clone, Debug)]
pub struct CostModel {
    pub name: String,
    pub description: String,
    /// Cycles per class, in `CostClass::ALL` order.
    pub cycles: Vec<f64>,
    /// Provenance per class.
    pub sources: Vec<String>,
}

impl CostModel {
    /// A built-in model by name, or a model file by path.
    pub fn load(name_or_path: &str) -> Result<CostModel, ConfigError> {
        let (text, file) = config::builtin_or_file(BUILTIN, "models/cost", "cost model", name_or_path)?;
        Self::parse(&text, &file)
    }

    /// Parses a cost model; `file` names it in errors, which give line and key.
    pub fn parse(text: &str, file: &str) -> Result<CostModel, ConfigError> {
        let f: CostFile = config::from_toml(text, file)?;
        let at = |span: std::ops::Range<usize>, message: String| {
            let (line, column) = config::line_col(text, span.start);
            ConfigError::Syntax { file: file.to_string(), line, column, message }
        };
        let mut cycles = vec![f64::NAN; N_CLASSES];
        let mut sources = vec![String::new(); N_CLASSES];
        for (key, e) in &f.costs {
            let Some(class) = CostClass::from_name(key.get_ref()) else {
                let names = CostClass::ALL.iter().map(|c| c.name());
                let hint = crate::util::suggest(key.get_ref(), names)
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                return Err(at(key.span(), format!("unknown cost class `costs.{}`{hint}", key.get_ref())));
            };
            let c = *e.cycles.get_ref();
            if !c.is_finite() || c < 0.0 {
                return Err(at(
                    e.cycles.span(),
                    format!("`costs.{}.cycles` must be a non-negative number, not {c}", key.get_ref()),
                ));
            }
            let src = e.source.get_ref().trim();
            if src.is_empty() {
                return Err(at(e.source.span(), format!("`costs.{}.source` is empty: say where the number comes from (a source, `estimate: why`, or `calibrated to Cn`)", key.get_ref())));
            }
            cycles[class as usize] = c;
            sources[class as usize] = src.to_string();
        }
        let missing: Vec<&str> =
            CostClass::ALL.iter().filter(|c| cycles[**c as usize].is_nan()).map(|c| c.name()).collect();
        if !missing.is_empty() {
            return Err(ConfigError::Invalid {
                file: file.to_string(),
                message: format!("no price for cost class(es): {}", missing.join(", ")),
            });
        }
        Ok(CostModel { name: f.name, description: f.description, cycles, sources })
    }

    /// The machine's price vector (millicycles, rounded to the nearest).
    pub fn prices(&self) -> Prices {
        let mut p = [0u32; N_CLASSES];
        for (i, c) in self.cycles.iter().enumerate() {
            p[i] = (c * 1000.0).round() as u32;
        }
        Prices(p)
    }

    /// Cycles of one class.
    pub fn cycles_of(&self, c: CostClass) -> f64 {
        self.cycles[c as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(extra: &str) -> String {
        let mut s = String::from("name = 't'\ndescription = 't'\n[costs]\n");
        for c in CostClass::ALL {
            s.push_str(&format!("{} = {{ cycles = 1, source = 'estimate: test' }}\n", c.name()));
        }
        s.push_str(extra);
        s
    }

    #[test]
    fn builtin_models_load_with_provenance() {
        for (name, _) in BUILTIN {
            let m = CostModel::load(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(m.sources.iter().all(|s| !s.is_empty()));
        }
    }

    #[test]
    fn unknown_class_names_file_line_and_suggests() {
        let e = CostModel::parse(&file_with("int_alux = { cycles = 1, source = 's' }\n"), "m.toml")
            .unwrap_err()
            .to_string();
        let line = CostClass::ALL.len() + 4;
        assert!(e.starts_with(&format!("m.toml:{line}:")), "{e}");
        assert!(e.contains("int_alux") && e.contains("did you mean `int_alu`"), "{e}");
    }

    #[test]
    fn missing_provenance_is_rejected_with_line() {
        let text =
            file_with("").replacen("move = { cycles = 1, source = 'estimate: test' }", "move = { cycles = 1 }", 1);
        let e = CostModel::parse(&text, "m.toml").unwrap_err().to_string();
        assert!(e.starts_with("m.toml:4:") && e.contains("source"), "{e}");
        let text = file_with("").replacen(
            "move = { cycles = 1, source = 'estimate: test' }",
            "move = { cycles = 1, source = ' ' }",
            1,
        );
        let e = CostModel::parse(&text, "m.toml").unwrap_err().to_string();
        assert!(e.starts_with("m.toml:4:") && e.contains("costs.move.source"), "{e}");
    }

    #[test]
    fn negative_cost_is_rejected_with_line() {
        let text = file_with("").replacen("shift = { cycles = 1,", "shift = { cycles = -2,", 1);
        let e = CostModel::parse(&text, "m.toml").unwrap_err().to_string();
        let line = CostClass::Shift as usize + 4;
        assert!(e.starts_with(&format!("m.toml:{line}:")) && e.contains("costs.shift.cycles"), "{e}");
    }

    #[test]
    fn unknown_top_level_key_is_rejected() {
        let e = CostModel::parse(&file_with("").replacen("description", "descripton", 1), "m.toml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("m.toml:2:") && e.contains("did you mean `description`"), "{e}");
    }

    #[test]
    fn a_missing_class_is_named() {
        let text = file_with("").replacen("hlt = { cycles = 1, source = 'estimate: test' }\n", "", 1);
        let e = CostModel::parse(&text, "m.toml").unwrap_err().to_string();
        assert!(e.contains("hlt"), "{e}");
    }
}
