//! Scenario and hypervisor-model loading (`sim/scenario.rs`): the shipped files load with the
//! facts the KVM model depends on, every error names its origin, line and key with a
//! suggestion, overrides and `--set` land on the right level, and the run report renders.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use vmxsim::arch::msr;
use vmxsim::arch::vmcs_fields::field as f;
use vmxsim::hv::config::{MsrBitmapMerge, Vmcs02Rebuild, VmxFeatures, Xcr0Load};
use vmxsim::run::{render_table, ExitCount, ProfileRow, RunReport};
use vmxsim::scenario::{self, load, load_hv_model, parse_hv_model, Scenario, HV_MODELS, WORKLOADS};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `broadwell-ep` (the scenarios' CPU) arrives on another branch; "broadwell" loads here.
fn loadable_cpu() -> Vec<String> {
    vec![r#"cpu="broadwell""#.to_string()]
}

fn load_shipped(name: &str, extra: &[&str]) -> Result<Scenario, String> {
    let mut sets = loadable_cpu();
    sets.extend(extra.iter().map(|s| s.to_string()));
    load(&root().join("scenarios").join(name), &sets).map_err(|e| e.to_string())
}

/// A scenario file in a fresh temporary directory; the directory is removed on drop.
struct TempScenario {
    dir: PathBuf,
    path: PathBuf,
}

impl TempScenario {
    fn new(tag: &str, text: &str) -> TempScenario {
        let dir = std::env::temp_dir().join(format!("vmxsim-scenario-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.toml");
        std::fs::write(&path, text).unwrap();
        TempScenario { dir, path }
    }

    fn load(&self, sets: &[&str]) -> Result<Scenario, String> {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        load(&self.path, &sets).map_err(|e| e.to_string())
    }

    /// The error's expected prefix for line `line`.
    fn at(&self, line: usize) -> String {
        format!("{}:{line}:", self.path.display())
    }
}

impl Drop for TempScenario {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const MINIMAL: &str = r#"name = "t"
description = "test"
cpu = "broadwell"
stack = ["kvm-4.13", "kvm-4.13"]
workload = "cpuid"
iterations = 10
warmup = 1
"#;

fn model_text(name: &str) -> &'static str {
    HV_MODELS.iter().find(|(n, _)| *n == name).unwrap().1
}

/// 1-based line of the first line of `text` starting with `prefix`.
fn line_of(text: &str, prefix: &str) -> usize {
    text.lines().position(|l| l.starts_with(prefix)).unwrap() + 1
}

// ---- shipped files --------------------------------------------------------------------------

#[test]
fn every_shipped_scenario_loads() {
    let mut names: Vec<String> = std::fs::read_dir(root().join("scenarios"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    names.sort();
    assert_eq!(names.len(), WORKLOADS.len() * 3, "{names:?}");
    for w in WORKLOADS {
        for depth in 1..=3 {
            let file = format!("{w}-l{depth}.toml");
            let s = load_shipped(&file, &[]).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(s.name, format!("{w}-l{depth}"));
            assert_eq!(s.workload, *w);
            assert_eq!(s.stack, vec!["kvm-4.13"; depth]);
            assert_eq!(s.levels.len(), depth);
            assert!(s.levels.iter().all(|l| *l == s.levels[0] && l.name == "kvm-4.13"));
            assert_eq!(s.cost_model, "broadwell");
            assert!(s.iterations >= 1 && !s.description.is_empty());
        }
    }
}

#[test]
fn shipped_scenarios_name_the_default_cpu() {
    let text = std::fs::read_to_string(root().join("scenarios/cpuid-l2.toml")).unwrap();
    assert!(text.contains(&format!("cpu = \"{}\"", scenario::DEFAULT_CPU)));
}

#[test]
fn every_hv_model_loads_from_the_binary_and_the_file() {
    let dir = root().join("models/hv");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|n| n.strip_suffix(".toml").map(str::to_string))
        .collect();
    on_disk.sort();
    let builtin: Vec<String> = HV_MODELS.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(on_disk, builtin, "every models/hv file is compiled in");
    for (name, _) in HV_MODELS {
        let p = load_hv_model(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(p.name, *name);
        let from_file = load_hv_model(dir.join(format!("{name}.toml")).to_str().unwrap()).unwrap();
        assert_eq!(p, from_file);
    }
}

#[test]
fn kvm_4_13_has_the_reference_lists() {
    let p = load_hv_model("kvm-4.13").unwrap();
    assert_eq!(p.shadow_read_only.len(), 9);
    // 27 distinct in vmx.c; GUEST_BNDCFGS is dropped without MPX (models/hv/README.md).
    assert_eq!(p.shadow_read_write.len(), 26);
    assert!(!p.shadow_read_write.contains(&f::GUEST_BNDCFGS));
    // The fields whose VMREADs/VMWRITEs are the ancillary exits of the headline result.
    for missing in [f::GUEST_PML_INDEX, f::GUEST_INTR_STATUS, f::VMX_PREEMPTION_TIMER_VALUE] {
        assert!(!p.shadow_read_write.contains(&missing) && !p.shadow_read_only.contains(&missing));
    }
    for shadowed in [f::VM_EXIT_REASON, f::VM_EXIT_INSTRUCTION_LEN, f::EXIT_QUALIFICATION] {
        assert!(p.shadow_read_only.contains(&shadowed));
    }
    for shadowed in [f::GUEST_RIP, f::GUEST_RFLAGS, f::GUEST_INTERRUPTIBILITY_INFO, f::TSC_OFFSET] {
        assert!(p.shadow_read_write.contains(&shadowed));
    }
    let msrs = [
        msr::IA32_FS_BASE,
        msr::IA32_GS_BASE,
        msr::IA32_KERNEL_GS_BASE,
        msr::IA32_SYSENTER_CS,
        msr::IA32_SYSENTER_ESP,
        msr::IA32_SYSENTER_EIP,
    ];
    assert_eq!(p.passthrough_msrs, msrs);
    assert!(!p.passthrough_msrs.contains(&msr::IA32_DEBUGCTL));
    let all = VmxFeatures {
        ept: true,
        ept_ad: true,
        vpid: true,
        pml: true,
        preemption_timer: true,
        vmcs_shadowing: true,
        apicv: true,
    };
    assert_eq!(p.uses, all);
    assert_eq!(p.exposes, VmxFeatures { vmcs_shadowing: false, ..all });
    assert_eq!(p.xcr0_load, Xcr0Load::Always);
    assert!(p.debugctl_per_entry);
    assert_eq!(p.msr_bitmap_merge, MsrBitmapMerge::PerMsr);
    assert_eq!(p.vmcs02_rebuild, Vmcs02Rebuild::Full);
}

#[test]
fn kvm_4_16_differs_where_the_reference_says() {
    let old = load_hv_model("kvm-4.13").unwrap();
    let p = load_hv_model("kvm-4.16").unwrap();
    assert_eq!(p.shadow_read_only.len(), 9);
    assert_eq!(p.shadow_read_write.len(), 25);
    let added = [f::GUEST_INTR_STATUS, f::GUEST_PML_INDEX, f::VMX_PREEMPTION_TIMER_VALUE, f::GUEST_SS_AR_BYTES];
    let dropped = [f::GUEST_CS_SELECTOR, f::GUEST_CS_LIMIT, f::GUEST_CS_BASE, f::GUEST_ES_BASE, f::TSC_OFFSET];
    let mut expected: Vec<u32> = old.shadow_read_write.iter().copied().filter(|e| !dropped.contains(e)).collect();
    expected.extend(added);
    let mut got = p.shadow_read_write.clone();
    expected.sort_unstable();
    got.sort_unstable();
    assert_eq!(got, expected);
    assert_eq!(p.passthrough_msrs, old.passthrough_msrs);
    assert_eq!((p.uses, p.exposes), (old.uses, old.exposes));
    assert_eq!(p.xcr0_load, Xcr0Load::Always, "if-different arrives only in 5.3");
    assert!(!p.debugctl_per_entry);
    assert_eq!(p.msr_bitmap_merge, MsrBitmapMerge::WordCopy);
    assert_eq!(p.vmcs02_rebuild, Vmcs02Rebuild::DirtyTracking);
}

#[test]
fn shadow_fields_follow_the_processor() {
    let p = load_hv_model("kvm-4.16").unwrap();
    let all = VmxFeatures { pml: true, preemption_timer: true, apicv: true, ..VmxFeatures::default() };
    assert_eq!(p.shadow_fields_on(&all), (p.shadow_read_only.clone(), p.shadow_read_write.clone()));
    let (ro, rw) = p.shadow_fields_on(&VmxFeatures { pml: false, ..all });
    assert_eq!(ro, p.shadow_read_only);
    assert_eq!(rw.len(), 24);
    assert!(!rw.contains(&f::GUEST_PML_INDEX));
    let (_, rw) = p.shadow_fields_on(&VmxFeatures::default());
    assert_eq!(rw.len(), 22);
}

// ---- errors ---------------------------------------------------------------------------------

#[test]
fn unknown_scenario_key_names_line_and_suggests() {
    let t = TempScenario::new("key", &format!("{MINIMAL}warmpu = 3\n"));
    let e = t.load(&[]).unwrap_err();
    assert!(e.starts_with(&t.at(8)), "{e}");
    assert!(e.contains("did you mean `warmup`"), "{e}");
}

#[test]
fn unknown_override_key_names_line_and_suggests() {
    let t = TempScenario::new("hvkey", &format!("{MINIMAL}\n[hv.L1]\nshadow_rw_fields = []\n"));
    let e = t.load(&[]).unwrap_err();
    assert!(e.starts_with(&t.at(10)), "{e}");
    assert!(e.contains("did you mean `shadow_read_write_fields`"), "{e}");
    let t = TempScenario::new("featkey", &format!("{MINIMAL}\n[hv.L0.uses]\napic_v = false\n"));
    let e = t.load(&[]).unwrap_err();
    assert!(e.starts_with(&t.at(10)) && e.contains("did you mean `apicv`"), "{e}");
}

#[test]
fn missing_provenance_is_an_error_at_the_key() {
    let text = model_text("kvm-4.13");
    let cut = |prefix: &str| -> String {
        text.lines().filter(|l| !l.starts_with(prefix)).map(|l| format!("{l}\n")).collect()
    };
    for (key, source) in [
        ("debugctl_per_entry =", "debugctl_per_entry_source"),
        ("shadow_read_write_fields =", "shadow_read_write_fields_source"),
        ("apicv =", "apicv_source"),
    ] {
        let t = cut(source);
        let e = parse_hv_model(&t, "x.toml").unwrap_err().to_string();
        // `apicv` appears in [uses] first; that is the one reported.
        assert!(e.starts_with(&format!("x.toml:{}:", line_of(&t, key))), "{e}");
        assert!(e.contains("has no provenance") && e.contains(&format!("`{source}")), "{e}");
    }
    let blank = text.replace("xcr0_load_source = \"", "xcr0_load_source = \" \" # \"");
    let e = parse_hv_model(&blank, "x.toml").unwrap_err().to_string();
    assert!(e.starts_with(&format!("x.toml:{}:", line_of(&blank, "xcr0_load_source"))), "{e}");
    assert!(e.contains("`xcr0_load_source` is empty"), "{e}");
    let e = parse_hv_model(&cut("provenance ="), "x.toml").unwrap_err().to_string();
    assert!(e.contains("missing key `provenance`"), "{e}");
    let e = parse_hv_model(&cut("vmcs02_rebuild"), "x.toml").unwrap_err().to_string();
    assert!(e.contains("missing key `vmcs02_rebuild`"), "{e}");
}

#[test]
fn unknown_names_in_lists_are_suggested() {
    let t = TempScenario::new(
        "field",
        &format!("{MINIMAL}\n[hv.L0]\nshadow_read_write_fields = [\n  \"GUEST_RIP\",\n  \"GUEST_PML_INDX\",\n]\n"),
    );
    let e = t.load(&[]).unwrap_err();
    assert!(e.starts_with(&t.at(12)), "{e}");
    assert!(e.contains("unknown VMCS field `GUEST_PML_INDX`") && e.contains("did you mean `GUEST_PML_INDEX`"), "{e}");
    assert!(e.contains("shadow_read_write_fields"), "{e}");

    let t = TempScenario::new("msr", &format!("{MINIMAL}\n[hv.L1]\npassthrough_msrs = [\"IA32_DEBUGCTRL\"]\n"));
    let e = t.load(&[]).unwrap_err();
    assert!(e.starts_with(&t.at(10)) && e.contains("did you mean `IA32_DEBUGCTL`"), "{e}");

    let t = TempScenario::new("dup", &format!("{MINIMAL}\n[hv.L0]\nshadow_read_write_fields = [\"VM_EXIT_REASON\"]\n"));
    let e = t.load(&[]).unwrap_err();
    assert!(e.contains("both shadow_read_only_fields and shadow_read_write_fields"), "{e}");
}

#[test]
fn unknown_workload_model_and_value_are_suggested() {
    let t = TempScenario::new("workload", &MINIMAL.replace("\"cpuid\"", "\"cpuidd\""));
    let e = t.load(&[]).unwrap_err();
    assert!(e.starts_with(&t.at(5)) && e.contains("did you mean `cpuid`"), "{e}");
    let t =
        TempScenario::new("model", &MINIMAL.replace("[\"kvm-4.13\", \"kvm-4.13\"]", "[\"kvm-4.13\", \"kvm-4.31\"]"));
    let e = t.load(&[]).unwrap_err();
    assert!(e.starts_with(&t.at(4)) && e.contains("did you mean `kvm-4.13`"), "{e}");
    let t = TempScenario::new("enum", &format!("{MINIMAL}\n[hv.L0]\nxcr0_load = \"sometimes\"\n"));
    let e = t.load(&[]).unwrap_err();
    assert!(e.starts_with(&t.at(10)) && e.contains("if-different"), "{e}");
    let t = TempScenario::new("iter", &MINIMAL.replace("iterations = 10", "iterations = 0"));
    assert!(t.load(&[]).unwrap_err().starts_with(&t.at(6)));
    let t = TempScenario::new("missing", &MINIMAL.replace("warmup = 1\n", ""));
    assert!(t.load(&[]).unwrap_err().contains("missing key `warmup`"));
}

#[test]
fn a_level_beyond_the_stack_is_an_error() {
    let t = TempScenario::new("level", &format!("{MINIMAL}\n[hv.L2]\ndebugctl_per_entry = false\n"));
    let e = t.load(&[]).unwrap_err();
    assert!(e.starts_with(&t.at(9)), "{e}");
    assert!(e.contains("L2") && e.contains("2 levels"), "{e}");
    let e = load_shipped("cpuid-l1.toml", &["hv.L1.debugctl_per_entry=false"]).unwrap_err();
    assert!(e.starts_with("--set hv.L1.debugctl_per_entry:") && e.contains("1 level "), "{e}");
    // Growing the stack with --set makes the same override valid.
    let s =
        load_shipped("cpuid-l1.toml", &[r#"stack=["kvm-4.13","kvm-4.16"]"#, "hv.L1.debugctl_per_entry=true"]).unwrap();
    assert_eq!(s.levels[1].name, "kvm-4.16");
    assert!(s.levels[1].debugctl_per_entry);
    let t = TempScenario::new("notlevel", &format!("{MINIMAL}\n[hv.l0]\ndebugctl_per_entry = false\n"));
    assert!(t.load(&[]).unwrap_err().contains("not a level"));
}

// ---- overrides ------------------------------------------------------------------------------

#[test]
fn file_overrides_apply_to_their_level_only() {
    let t = TempScenario::new(
        "over",
        &format!("{MINIMAL}\n[hv.L0]\nshadow_read_write_fields = [\"GUEST_RIP\"]\nmsr_bitmap_merge = \"word-copy\"\n[hv.L1.exposes]\npml = false\n"),
    );
    let s = t.load(&[]).unwrap();
    let model = load_hv_model("kvm-4.13").unwrap();
    assert_eq!(s.levels[0].shadow_read_write, [f::GUEST_RIP]);
    assert_eq!(s.levels[0].msr_bitmap_merge, MsrBitmapMerge::WordCopy);
    assert_eq!(s.levels[0].exposes, model.exposes);
    assert_eq!(s.levels[1].shadow_read_write, model.shadow_read_write);
    assert_eq!(s.levels[1].exposes, VmxFeatures { pml: false, ..model.exposes });
    assert_eq!(s.levels[1].uses, model.uses);
}

#[test]
fn set_overrides_a_list_and_scalars() {
    let s = load_shipped(
        "cpuid-l2.toml",
        &[
            r#"hv.L0.shadow_read_write_fields=["GUEST_RIP","GUEST_PML_INDEX"]"#,
            "iterations=1000",
            r#"cost_model="skylake""#,
            "hv.L1.uses.pml=false",
            "max_instructions=5000000",
        ],
    )
    .unwrap();
    let model = load_hv_model("kvm-4.13").unwrap();
    assert_eq!(s.levels[0].shadow_read_write, [f::GUEST_RIP, f::GUEST_PML_INDEX]);
    assert_eq!(s.levels[1].shadow_read_write, model.shadow_read_write);
    assert_eq!(s.levels[1].uses, VmxFeatures { pml: false, ..model.uses });
    assert_eq!(s.iterations, 1000);
    assert_eq!(s.warmup, 100);
    assert_eq!(s.cost_model, "skylake");
    assert_eq!(s.max_instructions, Some(5_000_000));
    // Later --set wins; a bare word is a string.
    let s = load_shipped("cpuid-l2.toml", &["iterations=5", "iterations=7", "cost_model=haswell"]).unwrap();
    assert_eq!((s.iterations, s.cost_model.as_str()), (7, "haswell"));
}

#[test]
fn set_errors_name_the_set() {
    let e = load_shipped("cpuid-l2.toml", &["hv.L0.shadow_rw_fields=[]"]).unwrap_err();
    assert!(e.starts_with("--set hv.L0.shadow_rw_fields:"), "{e}");
    assert!(e.contains("did you mean `shadow_read_write_fields`"), "{e}");
    let e = load_shipped("cpuid-l2.toml", &[r#"hv.L0.passthrough_msrs=["IA32_FS_BASS"]"#]).unwrap_err();
    assert!(e.starts_with("--set hv.L0.passthrough_msrs:") && e.contains("did you mean `IA32_FS_BASE`"), "{e}");
    let e = load_shipped("cpuid-l2.toml", &["iterations=many"]).unwrap_err();
    assert!(e.starts_with("--set iterations:"), "{e}");
    let e = load_shipped("cpuid-l2.toml", &["cost_model=skylak"]).unwrap_err();
    assert!(e.starts_with("--set cost_model:") && e.contains("did you mean `skylake`"), "{e}");
    let e = load_shipped("cpuid-l2.toml", &["iterations"]).unwrap_err();
    assert!(e.contains("KEY=VALUE"), "{e}");
}

#[test]
fn hv_model_paths_resolve_next_to_the_scenario() {
    let t = TempScenario::new("path", &MINIMAL.replace("[\"kvm-4.13\", \"kvm-4.13\"]", "[\"kvm-4.13\", \"my.toml\"]"));
    let mine = model_text("kvm-4.16").replace("name = \"kvm-4.16\"", "name = \"mine\"");
    std::fs::write(t.dir.join("my.toml"), mine).unwrap();
    let s = t.load(&[]).unwrap();
    assert_eq!(s.levels[1].name, "mine");
    assert_eq!(s.levels[1], {
        load_hv_model("kvm-4.16").map(|p| vmxsim::hv::config::HvParams { name: "mine".into(), ..p }).unwrap()
    });
    assert_eq!(s.file, t.path.display().to_string());
    assert!(Path::new(&s.file).exists());
}

// ---- report ---------------------------------------------------------------------------------

#[test]
fn render_table_golden() {
    let exit = |level, reason: &str, count| ExitCount { level, reason: reason.into(), count };
    let row = |level, symbol: &str, cycles| ProfileRow { level, symbol: symbol.into(), cycles };
    let mut anc = BTreeMap::new();
    anc.insert("VMREAD".to_string(), 2.0);
    anc.insert("MSR_READ".to_string(), 1.0);
    anc.insert("VMRESUME".to_string(), 1.0);
    let r = RunReport {
        scenario: "cpuid-l2".into(),
        cost_model: "broadwell".into(),
        cpu: "broadwell-ep".into(),
        stack: vec!["kvm-4.13".into(), "kvm-4.13".into()],
        workload: "cpuid".into(),
        iterations: 1000,
        warmup: 10,
        cycles_per_iteration: 61234.56,
        exits: vec![
            exit(1, "VMREAD", 2020),
            exit(2, "CPUID", 1010),
            exit(1, "VMRESUME", 1011),
            exit(1, "MSR_READ", 1010),
        ],
        ancillary_exits_per_l2_exit: Some(anc),
        exits_per_iteration: vec![],
        total_cycles: 100_000_000,
        instructions: 4_000_000,
        profile: vec![
            row(0, "vmx_vcpu_run", 20_000_000),
            row(0, "nested_vmx_disable_intercept_for_msr", 30_000_000),
            row(0, "[vm-exit]", 5_000_000),
            row(0, "nested_vmx_run", 25_000_000),
            row(0, "copy_shadow_to_vmcs12", 4_000_000),
            row(0, "handle_vmread", 3_000_000),
            row(0, "handle_vmwrite", 2_000_000),
            row(1, "vmx_vcpu_run", 6_000_000),
            row(1, "handle_cpuid", 3_000_000),
            row(2, "workload", 2_000_000),
        ],
        wall_seconds: 0.5,
    };
    let expected = "\
scenario   cpuid-l2 (kvm-4.13 > kvm-4.13 > cpuid)
models     cost broadwell, cpu broadwell-ep
iterations 1000 measured, 10 warm-up
cycles per iteration         61234.6
total cycles               100000000
instructions                 4000000
wall time                      0.50s (200.0 M simulated cycles/s)

exits      level  reason                      count
           L1     VMREAD                       2020
           L1     VMRESUME                     1011
           L1     MSR_READ                     1010
           L2     CPUID                        1010

ancillary exits of L1 per L2 exit
           VMREAD                             2.00
           MSR_READ                           1.00
           VMRESUME                           1.00

profile    level  symbol                                     cycles   share
           L0     nested_vmx_disable_intercept_for_msr     30000000   30.0%
           L0     nested_vmx_run                           25000000   25.0%
           L0     vmx_vcpu_run                             20000000   20.0%
           L0     [vm-exit]                                 5000000    5.0%
           L0     copy_shadow_to_vmcs12                     4000000    4.0%
           L0     (2 more)                                  5000000    5.0%
           L1     vmx_vcpu_run                              6000000    6.0%
           L1     handle_cpuid                              3000000    3.0%
           L2     workload                                  2000000    2.0%
";
    assert_eq!(render_table(&r), expected);
    let json = serde_json::to_value(&r).unwrap();
    for key in ["scenario", "cost_model", "stack", "workload", "iterations", "cycles_per_iteration", "exits"] {
        assert!(json.get(key).is_some(), "{key}");
    }
    assert_eq!(json["ancillary_exits_per_l2_exit"]["VMREAD"], 2.0);
    assert_eq!(json["exits"][0]["reason"], "VMREAD");
    let back: RunReport = serde_json::from_value(json).unwrap();
    assert_eq!(back, r);
    let one_level = RunReport { ancillary_exits_per_l2_exit: None, profile: vec![], exits: vec![], ..r };
    assert!(serde_json::to_value(&one_level).unwrap().get("ancillary_exits_per_l2_exit").is_none());
    assert!(render_table(&one_level).contains("(none)"));
}
