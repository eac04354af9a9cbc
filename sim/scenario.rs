//! Scenarios (`scenarios/*.toml`): an experiment as data. A scenario names a cost model, a CPU
//! model, a stack of hypervisor models from L0 inward (`models/hv/*.toml`), the workload the
//! innermost guest runs and its iteration counts, and may override any key of any level's
//! hypervisor model in `[hv.L0]`, `[hv.L1]`, ... tables. `vmxsim run --set KEY=VALUE` adds one
//! more layer of the same shape.
//!
//! Design. Every document (the hypervisor model file, the scenario file, each `--set`) is
//! deserialised on its own into a sparse, span-carrying form, so an error names the document,
//! line and key it came from. A value is then taken from the last layer that has it: for a
//! level, the model file, then the scenario's `[hv.Ln]`, then each `--set hv.Ln....`; for the
//! scenario's own keys, the file, then each `--set`. Lists are replaced whole, tables merge
//! key by key. Only the model file must carry provenance (`K_source` next to every parameter
//! `K`, see models/hv/README.md); an override needs none. The result is plain data:
//! [`Scenario`] with one resolved [`HvParams`] per level.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::arch::{msr, vmcs_fields};
use crate::config::{self, ConfigError};
use crate::hv::config::{HvParams, MsrBitmapMerge, Vmcs02Rebuild, VmxFeatures, Xcr0Load};

/// The innermost-guest workloads a scenario may name.
pub const WORKLOADS: &[&str] = crate::hv::workload::WORKLOADS;

/// Cost model of a scenario that names none.
pub const DEFAULT_COST_MODEL: &str = "broadwell";

/// CPU model of a scenario that names none.
pub const DEFAULT_CPU: &str = "broadwell-ep";

/// Built-in hypervisor models by name (compiled in, so `vmxsim` works from any directory).
pub const HV_MODELS: &[(&str, &str)] = &[
    ("kvm-4.13", include_str!("../models/hv/kvm-4.13.toml")),
    ("kvm-4.16", include_str!("../models/hv/kvm-4.16.toml")),
];

/// A loaded scenario, every name checked and every level resolved.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Scenario {
    pub name: String,
    /// The scenario file, as given.
    pub file: String,
    pub description: String,
    /// Cost model name or path ("unit": one cycle per instruction).
    pub cost_model: String,
    /// CPU model name or path.
    pub cpu: String,
    /// Hypervisor model names (or paths) from L0 inward.
    pub stack: Vec<String>,
    /// The resolved parameters of each level, `levels[n]` for `stack[n]`.
    pub levels: Vec<HvParams>,
    /// One of [`WORKLOADS`].
    pub workload: String,
    /// Measured iterations.
    pub iterations: u64,
    /// Iterations run before measuring.
    pub warmup: u64,
    /// Instruction budget of the whole run, if bounded.
    pub max_instructions: Option<u64>,
}

/// Loads the scenario at `path` with `sets` (each `KEY=VALUE`, a dotted key and a TOML value)
/// applied on top, in order.
pub fn load(path: &Path, sets: &[String]) -> Result<Scenario, ConfigError> {
    let label = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Io(label.clone(), e.to_string()))?;
    let mut sources = vec![Source { label: label.clone(), text, cli: false }];
    for s in sets {
        sources.push(set_source(s)?);
    }
    let mut docs = Vec::with_capacity(sources.len());
    for src in &sources {
        docs.push(src.parse::<ScenarioDoc>()?);
    }
    let layers: Vec<(&Source, &ScenarioDoc)> = sources.iter().zip(docs.iter()).collect();
    let base = &sources[0];
    let dir = path.parent().unwrap_or(Path::new(""));

    let text_key = |key: &'static str, get: fn(&ScenarioDoc) -> Option<&Spanned<String>>| {
        pick(&layers, get).map(|(_, v)| v.get_ref().clone()).ok_or_else(|| base.missing(key))
    };
    let name = text_key("name", |d| d.name.as_ref())?;
    let description = text_key("description", |d| d.description.as_ref())?;

    let workload = pick(&layers, |d| d.workload.as_ref()).ok_or_else(|| base.missing("workload"))?;
    if !WORKLOADS.contains(&workload.1.get_ref().as_str()) {
        let w = workload.1.get_ref();
        return Err(workload.0.err(
            &workload.1.span(),
            unknown("workload", w, None, crate::util::suggest(w, WORKLOADS.iter().copied()), WORKLOADS.join(", ")),
        ));
    }

    let iterations = pick(&layers, |d| d.iterations.as_ref()).ok_or_else(|| base.missing("iterations"))?;
    if *iterations.1.get_ref() == 0 {
        return Err(iterations.0.err(&iterations.1.span(), "`iterations` must be at least 1".into()));
    }
    let warmup = pick(&layers, |d| d.warmup.as_ref()).ok_or_else(|| base.missing("warmup"))?;
    let max_instructions = pick(&layers, |d| d.max_instructions.as_ref()).map(|(_, v)| *v.get_ref());

    let cost_model = match pick(&layers, |d| d.cost_model.as_ref()) {
        Some((src, v)) => {
            if v.get_ref() != "unit" {
                crate::timing::CostModel::load(v.get_ref()).map_err(|e| src.wrap(&v.span(), e))?;
            }
            v.get_ref().clone()
        }
        None => DEFAULT_COST_MODEL.to_string(),
    };
    let cpu = match pick(&layers, |d| d.cpu.as_ref()) {
        Some((src, v)) => {
            crate::cpu_model::CpuModel::load(v.get_ref()).map_err(|e| src.wrap(&v.span(), e))?;
            v.get_ref().clone()
        }
        None => {
            crate::cpu_model::CpuModel::load(DEFAULT_CPU).map_err(|e| base.invalid(format!("default `cpu`: {e}")))?;
            DEFAULT_CPU.to_string()
        }
    };

    let (stack_src, stack) = pick(&layers, |d| d.stack.as_ref()).ok_or_else(|| base.missing("stack"))?;
    if stack.get_ref().is_empty() {
        return Err(stack_src.err(&stack.span(), "`stack` must name at least one hypervisor model (L0)".into()));
    }

    // Every `[hv.Ln]` of every layer must name a level of the final stack.
    for (src, doc) in &layers {
        for key in doc.hv.keys() {
            let n = level_index(key.get_ref()).ok_or_else(|| {
                src.err(&key.span(), format!("`hv.{}` is not a level: write `hv.L0`, `hv.L1`, ...", key.get_ref()))
            })?;
            if n >= stack.get_ref().len() {
                let depth = stack.get_ref().len();
                return Err(src.err(
                    &key.span(),
                    format!(
                        "`hv.{}` overrides level L{n}, but the stack has {depth} level{} (L0..L{})",
                        key.get_ref(),
                        if depth == 1 { "" } else { "s" },
                        depth - 1
                    ),
                ));
            }
        }
    }

    let mut levels = Vec::with_capacity(stack.get_ref().len());
    for (n, entry) in stack.get_ref().iter().enumerate() {
        let model = load_hv_source(entry.get_ref(), dir).map_err(|e| stack_src.wrap(&entry.span(), e))?;
        let model_doc: HvDoc = model.parse()?;
        check_provenance(&model, &model_doc)?;
        let level_key = format!("L{n}");
        let mut hv_layers: Vec<(&Source, &HvDoc)> = vec![(&model, &model_doc)];
        for (src, doc) in &layers {
            if let Some((_, o)) = doc.hv.iter().find(|(k, _)| *k.get_ref() == level_key) {
                hv_layers.push((src, o));
            }
        }
        levels.push(resolve(&hv_layers)?);
    }

    Ok(Scenario {
        name,
        file: label,
        description,
        cost_model,
        cpu,
        stack: stack.get_ref().iter().map(|s| s.get_ref().clone()).collect(),
        levels,
        workload: workload.1.get_ref().clone(),
        iterations: *iterations.1.get_ref(),
        warmup: *warmup.1.get_ref(),
        max_instructions,
    })
}

/// Loads one hypervisor model (a built-in name or a path) on its own, provenance checked.
pub fn load_hv_model(name_or_path: &str) -> Result<HvParams, ConfigError> {
    let src = load_hv_source(name_or_path, Path::new(""))?;
    parse_hv_model(&src.text, &src.label)
}

/// Parses a hypervisor model file's text; `file` names it in errors.
pub fn parse_hv_model(text: &str, file: &str) -> Result<HvParams, ConfigError> {
    let src = Source { label: file.to_string(), text: text.to_string(), cli: false };
    let doc: HvDoc = src.parse()?;
    check_provenance(&src, &doc)?;
    resolve(&[(&src, &doc)])
}

// ---- documents ------------------------------------------------------------------------------

type S<T> = Spanned<T>;
type Names = S<Vec<S<String>>>;

/// One scenario document (the file or one `--set`); every key optional, checked after merging.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ScenarioDoc {
    name: Option<S<String>>,
    description: Option<S<String>>,
    cost_model: Option<S<String>>,
    cpu: Option<S<String>>,
    stack: Option<Names>,
    workload: Option<S<String>>,
    iterations: Option<S<u64>>,
    warmup: Option<S<u64>>,
    max_instructions: Option<S<u64>>,
    #[serde(default)]
    hv: BTreeMap<S<String>, HvDoc>,
}

/// One hypervisor-model document: a model file, or an `[hv.Ln]` override.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct HvDoc {
    name: Option<S<String>>,
    description: Option<S<String>>,
    provenance: Option<S<String>>,
    shadow_read_only_fields: Option<Names>,
    shadow_read_only_fields_source: Option<S<String>>,
    shadow_read_write_fields: Option<Names>,
    shadow_read_write_fields_source: Option<S<String>>,
    passthrough_msrs: Option<Names>,
    passthrough_msrs_source: Option<S<String>>,
    uses: Option<FeaturesDoc>,
    exposes: Option<FeaturesDoc>,
    xcr0_load: Option<S<Xcr0Load>>,
    xcr0_load_source: Option<S<String>>,
    debugctl_per_entry: Option<S<bool>>,
    debugctl_per_entry_source: Option<S<String>>,
    msr_bitmap_merge: Option<S<MsrBitmapMerge>>,
    msr_bitmap_merge_source: Option<S<String>>,
    vmcs02_rebuild: Option<S<Vmcs02Rebuild>>,
    vmcs02_rebuild_source: Option<S<String>>,
}

/// A `[uses]` or `[exposes]` table.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FeaturesDoc {
    ept: Option<S<bool>>,
    ept_source: Option<S<String>>,
    ept_ad: Option<S<bool>>,
    ept_ad_source: Option<S<String>>,
    vpid: Option<S<bool>>,
    vpid_source: Option<S<String>>,
    pml: Option<S<bool>>,
    pml_source: Option<S<String>>,
    preemption_timer: Option<S<bool>>,
    preemption_timer_source: Option<S<String>>,
    vmcs_shadowing: Option<S<bool>>,
    vmcs_shadowing_source: Option<S<String>>,
    apicv: Option<S<bool>>,
    apicv_source: Option<S<String>>,
}

type FeatureGet = fn(&FeaturesDoc) -> (Option<&S<bool>>, Option<&S<String>>);

/// The feature keys of [`VmxFeatures`], with their value and provenance accessors.
const FEATURES: &[(&str, FeatureGet)] = &[
    ("ept", |f| (f.ept.as_ref(), f.ept_source.as_ref())),
    ("ept_ad", |f| (f.ept_ad.as_ref(), f.ept_ad_source.as_ref())),
    ("vpid", |f| (f.vpid.as_ref(), f.vpid_source.as_ref())),
    ("pml", |f| (f.pml.as_ref(), f.pml_source.as_ref())),
    ("preemption_timer", |f| (f.preemption_timer.as_ref(), f.preemption_timer_source.as_ref())),
    ("vmcs_shadowing", |f| (f.vmcs_shadowing.as_ref(), f.vmcs_shadowing_source.as_ref())),
    ("apicv", |f| (f.apicv.as_ref(), f.apicv_source.as_ref())),
];

fn set_feature(f: &mut VmxFeatures, key: &str, v: bool) {
    match key {
        "ept" => f.ept = v,
        "ept_ad" => f.ept_ad = v,
        "vpid" => f.vpid = v,
        "pml" => f.pml = v,
        "preemption_timer" => f.preemption_timer = v,
        "vmcs_shadowing" => f.vmcs_shadowing = v,
        _ => f.apicv = v,
    }
}

// ---- sources and errors ---------------------------------------------------------------------

/// The text of one document and how to name it in errors.
struct Source {
    label: String,
    text: String,
    /// A `--set` argument: errors name it without line and column.
    cli: bool,
}

impl Source {
    fn parse<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        config::from_toml(&self.text, &self.label).map_err(|e| match e {
            ConfigError::Syntax { file, message, .. } if self.cli => ConfigError::Invalid { file, message },
            e => e,
        })
    }

    /// An error located at `span` of this document.
    fn err(&self, span: &Range<usize>, message: String) -> ConfigError {
        if self.cli {
            return self.invalid(message);
        }
        let (line, column) = config::line_col(&self.text, span.start);
        ConfigError::Syntax { file: self.label.clone(), line, column, message }
    }

    /// An error about this document as a whole.
    fn invalid(&self, message: String) -> ConfigError {
        ConfigError::Invalid { file: self.label.clone(), message }
    }

    fn missing(&self, key: &str) -> ConfigError {
        self.invalid(format!("missing key `{key}`"))
    }

    /// Locates an error from another loader (e.g. an unknown model name) at `span`.
    fn wrap(&self, span: &Range<usize>, e: ConfigError) -> ConfigError {
        self.err(span, e.to_string())
    }
}

/// The one-line document of `--set KEY=VALUE`. A bare word that is not a TOML value is taken as
/// a string, so `--set cost_model=skylake` works like `--set cost_model="skylake"`.
fn set_source(arg: &str) -> Result<Source, ConfigError> {
    let Some((key, value)) = arg.split_once('=') else {
        return Err(ConfigError::Invalid {
            file: format!("--set {arg}"),
            message: "expected KEY=VALUE, e.g. --set iterations=1000".into(),
        });
    };
    let (key, value) = (key.trim(), value.trim());
    let label = format!("--set {key}");
    let mut text = format!("{key} = {value}\n");
    let bare = !value.is_empty() && value.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if bare && toml::from_str::<toml::Table>(&text).is_err() {
        text = format!("{key} = \"{value}\"\n");
    }
    Ok(Source { label, text, cli: true })
}

/// "unknown WHAT `NAME` in `KEY` (did you mean `S`?)", or the known names when there is no
/// close one (`known` empty: too many to list).
fn unknown(what: &str, name: &str, key: Option<&str>, suggestion: Option<&str>, known: String) -> String {
    let place = key.map(|k| format!(" in `{k}`")).unwrap_or_default();
    match suggestion {
        Some(s) => format!("unknown {what} `{name}`{place} (did you mean `{s}`?)"),
        None if known.is_empty() => format!("unknown {what} `{name}`{place}"),
        None => format!("unknown {what} `{name}`{place}; known: {known}"),
    }
}

/// The value of the last layer that has one, with that layer's source.
fn pick<'a, D, T>(
    layers: &[(&'a Source, &'a D)],
    get: impl Fn(&'a D) -> Option<&'a S<T>>,
) -> Option<(&'a Source, &'a S<T>)> {
    layers.iter().rev().find_map(|(src, d)| get(d).map(|v| (*src, v)))
}

fn level_index(key: &str) -> Option<usize> {
    let digits = key.strip_prefix('L')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

// ---- hypervisor models ----------------------------------------------------------------------

/// A built-in model by name, else a file: `name_or_path` as given, or relative to `dir` (the
/// scenario's directory).
fn load_hv_source(name_or_path: &str, dir: &Path) -> Result<Source, ConfigError> {
    let rel = dir.join(name_or_path);
    let arg = if HV_MODELS.iter().all(|(n, _)| *n != name_or_path) && !Path::new(name_or_path).exists() && rel.exists()
    {
        rel.display().to_string()
    } else {
        name_or_path.to_string()
    };
    let (text, label) = config::builtin_or_file(HV_MODELS, "models/hv", "hypervisor model", &arg)?;
    Ok(Source { label, text: text.into_owned(), cli: false })
}

/// A parameter key, the span of its value (if present) and its `_source`.
type Param<'a> = (&'static str, Option<Range<usize>>, Option<&'a S<String>>);

/// A model file must have every key, and every parameter a non-empty `K_source`.
fn check_provenance(src: &Source, d: &HvDoc) -> Result<(), ConfigError> {
    for (key, v) in [("name", &d.name), ("description", &d.description), ("provenance", &d.provenance)] {
        match v {
            None => return Err(src.missing(key)),
            Some(v) if v.get_ref().trim().is_empty() => return Err(src.err(&v.span(), format!("`{key}` is empty"))),
            Some(_) => {}
        }
    }
    let params: [Param; 7] = [
        (
            "shadow_read_only_fields",
            d.shadow_read_only_fields.as_ref().map(S::span),
            d.shadow_read_only_fields_source.as_ref(),
        ),
        (
            "shadow_read_write_fields",
            d.shadow_read_write_fields.as_ref().map(S::span),
            d.shadow_read_write_fields_source.as_ref(),
        ),
        ("passthrough_msrs", d.passthrough_msrs.as_ref().map(S::span), d.passthrough_msrs_source.as_ref()),
        ("xcr0_load", d.xcr0_load.as_ref().map(S::span), d.xcr0_load_source.as_ref()),
        ("debugctl_per_entry", d.debugctl_per_entry.as_ref().map(S::span), d.debugctl_per_entry_source.as_ref()),
        ("msr_bitmap_merge", d.msr_bitmap_merge.as_ref().map(S::span), d.msr_bitmap_merge_source.as_ref()),
        ("vmcs02_rebuild", d.vmcs02_rebuild.as_ref().map(S::span), d.vmcs02_rebuild_source.as_ref()),
    ];
    for (key, value, source) in params {
        let value = value.ok_or_else(|| src.missing(key))?;
        check_source(src, key, &value, source)?;
    }
    for (table, f) in [("uses", &d.uses), ("exposes", &d.exposes)] {
        let f = f.as_ref().ok_or_else(|| src.missing(table))?;
        for (key, get) in FEATURES {
            let (value, source) = get(f);
            let value = value.ok_or_else(|| src.missing(&format!("{table}.{key}")))?;
            check_source(src, &format!("{table}.{key}"), &value.span(), source)?;
        }
    }
    Ok(())
}

fn check_source(src: &Source, key: &str, value: &Range<usize>, source: Option<&S<String>>) -> Result<(), ConfigError> {
    let short = key.rsplit('.').next().unwrap_or(key);
    match source {
        None => Err(src.err(
            value,
            format!("`{key}` has no provenance: add `{short}_source = \"...\"` (see models/hv/README.md)"),
        )),
        Some(s) if s.get_ref().trim().is_empty() => Err(src.err(&s.span(), format!("`{key}_source` is empty"))),
        Some(_) => Ok(()),
    }
}

/// Resolves one level from its layers (the model file first). Every key is present in the
/// first layer once [`check_provenance`] passed; a missing one is still an error, not a panic.
fn resolve(layers: &[(&Source, &HvDoc)]) -> Result<HvParams, ConfigError> {
    let first = layers[0].0;
    let need = |key: &'static str| first.missing(key);
    let (_, name) = pick(layers, |d| d.name.as_ref()).ok_or_else(|| need("name"))?;
    let ro = pick(layers, |d| d.shadow_read_only_fields.as_ref()).ok_or_else(|| need("shadow_read_only_fields"))?;
    let rw = pick(layers, |d| d.shadow_read_write_fields.as_ref()).ok_or_else(|| need("shadow_read_write_fields"))?;
    let msrs = pick(layers, |d| d.passthrough_msrs.as_ref()).ok_or_else(|| need("passthrough_msrs"))?;
    let shadow_read_only = vmcs_list(ro, "shadow_read_only_fields")?;
    let shadow_read_write = vmcs_list(rw, "shadow_read_write_fields")?;
    for (item, enc) in rw.1.get_ref().iter().zip(&shadow_read_write) {
        if shadow_read_only.contains(enc) {
            return Err(rw.0.err(
                &item.span(),
                format!("`{}` is in both shadow_read_only_fields and shadow_read_write_fields", item.get_ref()),
            ));
        }
    }
    let passthrough_msrs = msr_list(msrs, "passthrough_msrs")?;
    let scalar =
        |v: Option<(&Source, &S<bool>)>, key: &'static str| v.map(|(_, v)| *v.get_ref()).ok_or_else(|| need(key));
    let debugctl_per_entry = scalar(pick(layers, |d| d.debugctl_per_entry.as_ref()), "debugctl_per_entry")?;
    let (_, xcr0_load) = pick(layers, |d| d.xcr0_load.as_ref()).ok_or_else(|| need("xcr0_load"))?;
    let (_, merge) = pick(layers, |d| d.msr_bitmap_merge.as_ref()).ok_or_else(|| need("msr_bitmap_merge"))?;
    let (_, rebuild) = pick(layers, |d| d.vmcs02_rebuild.as_ref()).ok_or_else(|| need("vmcs02_rebuild"))?;
    let features = |table: &'static str, get: fn(&HvDoc) -> Option<&FeaturesDoc>| {
        let mut out = VmxFeatures::default();
        for (key, fget) in FEATURES {
            let v = layers.iter().rev().find_map(|(_, d)| get(d).and_then(|f| fget(f).0));
            let v = v.ok_or_else(|| first.missing(&format!("{table}.{key}")))?;
            set_feature(&mut out, key, *v.get_ref());
        }
        Ok::<_, ConfigError>(out)
    };
    Ok(HvParams {
        name: name.get_ref().clone(),
        shadow_read_only,
        shadow_read_write,
        passthrough_msrs,
        uses: features("uses", |d| d.uses.as_ref())?,
        exposes: features("exposes", |d| d.exposes.as_ref())?,
        xcr0_load: *xcr0_load.get_ref(),
        debugctl_per_entry,
        msr_bitmap_merge: *merge.get_ref(),
        vmcs02_rebuild: *rebuild.get_ref(),
    })
}

/// VMCS field names to encodings; unknown and repeated names are errors at the element.
fn vmcs_list((src, list): (&Source, &Names), key: &str) -> Result<Vec<u32>, ConfigError> {
    let mut out = Vec::with_capacity(list.get_ref().len());
    for item in list.get_ref() {
        let name = item.get_ref();
        let Some(f) = vmcs_fields::by_name(name) else {
            let message = unknown("VMCS field", name, Some(key), vmcs_fields::suggest(name), String::new());
            return Err(src.err(&item.span(), message));
        };
        if out.contains(&f.encoding) {
            return Err(src.err(&item.span(), format!("`{name}` is listed twice in `{key}`")));
        }
        out.push(f.encoding);
    }
    Ok(out)
}

/// MSR names to indices; unknown and repeated names are errors at the element.
fn msr_list((src, list): (&Source, &Names), key: &str) -> Result<Vec<u32>, ConfigError> {
    let mut out = Vec::with_capacity(list.get_ref().len());
    for item in list.get_ref() {
        let name = item.get_ref();
        let Some(index) = msr::by_name(name) else {
            let known = msr::NAMES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ");
            let message = unknown("MSR", name, Some(key), msr::suggest(name), known);
            return Err(src.err(&item.span(), message));
        };
        if out.contains(&index) {
            return Err(src.err(&item.span(), format!("`{name}` is listed twice in `{key}`")));
        }
        out.push(index);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_keys() {
        assert_eq!(level_index("L0"), Some(0));
        assert_eq!(level_index("L12"), Some(12));
        assert_eq!(level_index("L"), None);
        assert_eq!(level_index("l1"), None);
        assert_eq!(level_index("L1a"), None);
    }

    #[test]
    fn set_documents() {
        assert_eq!(set_source("iterations=1000").unwrap().text, "iterations = 1000\n");
        assert_eq!(set_source("cost_model=skylake").unwrap().text, "cost_model = \"skylake\"\n");
        assert_eq!(set_source("cost_model=\"skylake\"").unwrap().text, "cost_model = \"skylake\"\n");
        assert_eq!(set_source("hv.L0.uses.pml=false").unwrap().text, "hv.L0.uses.pml = false\n");
        assert!(set_source("iterations").is_err());
    }
}
