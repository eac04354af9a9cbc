//! The KVM model end to end: scenarios run the generated hypervisor program at every level,
//! and the exits and cycles that come out move when the model's parameters move. Nothing
//! here feeds an expected count into the machine; each test changes one parameter (a
//! shadow-field list, a pass-through MSR, a KVM-version knob, a price) and checks the
//! difference it makes, the way a user's what-if experiment would.

use std::collections::BTreeMap;
use std::path::Path;

use vmxsim::run::{run_scenario, RunOptions, RunReport};

fn run(scenario: &str, sets: &[&str]) -> RunReport {
    let mut all: Vec<String> = vec!["iterations=200".into(), "warmup=20".into()];
    all.extend(sets.iter().map(|s| s.to_string()));
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios").join(format!("{scenario}.toml"));
    let s = vmxsim::scenario::load(&path, &all).unwrap_or_else(|e| panic!("{scenario}: {e}"));
    run_scenario(&s, &RunOptions { json: true, profile: true }).unwrap_or_else(|e| panic!("{scenario}: {e}"))
}

fn ancillary(r: &RunReport) -> BTreeMap<String, f64> {
    r.ancillary_exits_per_l2_exit.clone().expect("a nested stack reports ancillary exits")
}

/// The 4.13 read-write shadow list plus `extra`, as a --set value for level `lvl`.
fn shadow_rw_plus(lvl: u32, extra: &str) -> String {
    let m = vmxsim::scenario::load_hv_model("kvm-4.13").expect("kvm-4.13");
    let mut names: Vec<String> = m
        .shadow_read_write
        .iter()
        .map(|e| vmxsim::arch::vmcs_fields::name_of(*e).expect("named field").to_string())
        .collect();
    names.push(extra.into());
    let list: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    format!("hv.L{lvl}.shadow_read_write_fields=[{}]", list.join(","))
}

#[test]
fn l1_cpuid_is_one_exit_per_iteration_and_no_ancillary_exits() {
    let r = run("cpuid-l1", &[]);
    assert!(r.ancillary_exits_per_l2_exit.is_none());
    let cpuid = r.exits.iter().find(|e| e.level == 1 && e.reason == "CPUID").expect("L1 CPUID exits");
    assert!(cpuid.count >= 200, "{cpuid:?}");
    assert!(r.cycles_per_iteration > 300.0 && r.cycles_per_iteration < 5000.0, "{}", r.cycles_per_iteration);
}

#[test]
fn every_l2_cpuid_makes_l1_exit_for_the_fields_l0_does_not_shadow() {
    let r = run("cpuid-l2", &[]);
    let a = ancillary(&r);
    // Each ancillary exit is a whole number per L2 exit: the loop is deterministic.
    for (reason, n) in &a {
        assert_eq!(n.fract(), 0.0, "{reason}: {n}");
    }
    for reason in ["VMREAD", "VMWRITE", "MSR_READ", "XSETBV", "VMRESUME"] {
        assert!(a.get(reason).copied().unwrap_or(0.0) >= 1.0, "{reason} missing from {a:?}");
    }
    assert!(!a.contains_key("CPUID"), "L1 answers CPUID from its table: {a:?}");
}

#[test]
fn shadowing_guest_pml_index_at_l0_removes_exactly_one_vmread_exit() {
    let before = ancillary(&run("cpuid-l2", &[]));
    let after = ancillary(&run("cpuid-l2", &[&shadow_rw_plus(0, "GUEST_PML_INDEX")]));
    assert_eq!(after.get("VMREAD").copied().unwrap_or(0.0), before["VMREAD"] - 1.0, "{before:?} -> {after:?}");
    for reason in ["VMWRITE", "MSR_READ", "XSETBV", "VMRESUME"] {
        assert_eq!(after.get(reason), before.get(reason), "{reason}");
    }
}

#[test]
fn shadowing_the_preemption_timer_value_removes_the_vmwrite_exit() {
    let before = ancillary(&run("cpuid-l2", &[]));
    let after = ancillary(&run("cpuid-l2", &[&shadow_rw_plus(0, "VMX_PREEMPTION_TIMER_VALUE")]));
    assert_eq!(after.get("VMWRITE").copied().unwrap_or(0.0), before["VMWRITE"] - 1.0, "{before:?} -> {after:?}");
}

#[test]
fn passing_debugctl_through_removes_the_msr_read_exit() {
    let m = vmxsim::scenario::load_hv_model("kvm-4.13").expect("kvm-4.13");
    let mut names: Vec<String> =
        m.passthrough_msrs.iter().map(|i| vmxsim::arch::msr::name_of(*i).expect("named").to_string()).collect();
    names.push("IA32_DEBUGCTL".into());
    let list: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    let before = ancillary(&run("cpuid-l2", &[]));
    let after = ancillary(&run("cpuid-l2", &[&format!("hv.L0.passthrough_msrs=[{}]", list.join(","))]));
    assert_eq!(before.get("MSR_READ"), Some(&1.0));
    assert_eq!(after.get("MSR_READ"), None, "{after:?}");
}

#[test]
fn later_kvm_knobs_at_l1_remove_their_exits() {
    let base = ancillary(&run("cpuid-l2", &[]));
    let cached = ancillary(&run("cpuid-l2", &["hv.L1.debugctl_per_entry=false"]));
    assert_eq!(cached.get("MSR_READ"), None, "{cached:?}");
    let xcr0 = ancillary(&run("cpuid-l2", &["hv.L1.xcr0_load=\"if-different\""]));
    assert_eq!(xcr0.get("XSETBV"), None, "{xcr0:?}");
    assert_eq!(xcr0.get("VMREAD"), base.get("VMREAD"));
}

#[test]
fn the_profile_sums_to_the_total_and_l0_time_is_in_the_nested_paths() {
    let r = run("cpuid-l2", &[]);
    assert_eq!(r.profile.iter().map(|p| p.cycles).sum::<u64>(), r.total_cycles);
    let l0: Vec<&str> = {
        let mut rows: Vec<_> = r.profile.iter().filter(|p| p.level == 0).collect();
        rows.sort_by_key(|p| std::cmp::Reverse(p.cycles));
        rows.iter().take(8).map(|p| p.symbol.as_str()).collect()
    };
    for f in ["nested_vmx_run", "vmx_vcpu_run"] {
        assert!(l0.iter().any(|s| s.contains(f) || *s == "prepare_vmcs02"), "{f} not among L0's hottest: {l0:?}");
    }
}

#[test]
fn a_dearer_vm_exit_costs_more_cycles_per_nested_cpuid_but_not_more_exits() {
    let dir = std::env::temp_dir().join(format!("vmxsim-kvm-model-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let src = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("models/cost/broadwell.toml"))
        .expect("broadwell cost model");
    let line = src.lines().find(|l| l.starts_with("vm_exit ")).expect("vm_exit price");
    let dearer = src.replace(line, "vm_exit = { cycles = 2000, source = \"estimate: test\" }");
    let path = dir.join("dear-exit.toml");
    std::fs::write(&path, dearer).expect("write");
    let base = run("cpuid-l2", &[]);
    let dear = run("cpuid-l2", &[&format!("cost_model=\"{}\"", path.display())]);
    assert!(
        dear.cycles_per_iteration > base.cycles_per_iteration + 6.0 * 1000.0,
        "{} vs {}",
        dear.cycles_per_iteration,
        base.cycles_per_iteration
    );
    assert_eq!(ancillary(&dear), ancillary(&base));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn three_kvms_multiply_the_exits_of_every_level() {
    let r = run("cpuid-l3", &["iterations=20", "warmup=5"]);
    let at = |lvl: u32| r.exits.iter().filter(|e| e.level == lvl).map(|e| e.count).sum::<u64>();
    assert!(at(3) >= 25, "L3 exits {}", at(3));
    assert!(at(2) > 5 * at(3), "each L3 exit makes L2 exit several times: L2 {} vs L3 {}", at(2), at(3));
    assert!(at(1) > 5 * at(2), "and each of those makes L1 exit several times: L1 {} vs L2 {}", at(1), at(2));
}

/// The KVM Forum 2017 setting (calibration C1, C3): the exits emerge exactly; the ratio is
/// what the broadwell model was calibrated to (its vmread/vmwrite prices, fitted to C1), so
/// this guards the fit (C1's 25x within 15%).
#[test]
fn headline_kvm_on_kvm_cpuid() {
    let l1 = run("cpuid-l1", &[]);
    let l2 = run("cpuid-l2", &[]);
    let a = ancillary(&l2);
    let want: BTreeMap<String, f64> =
        [("VMREAD", 2.0), ("VMWRITE", 1.0), ("MSR_READ", 1.0), ("XSETBV", 1.0), ("VMRESUME", 1.0)]
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
    assert_eq!(a, want);
    let ratio = l2.cycles_per_iteration / l1.cycles_per_iteration;
    assert!((21.25..=28.75).contains(&ratio), "L2/L1 = {ratio:.1}");
}

/// L0's cycles per L2 CPUID by symbol: the difference between two runs that differ only in
/// the number of measured iterations, so boot and warm-up cancel out (what `perf` on the
/// running loop sees).
fn l0_profile_per_iteration(scenario: &str, sets: &[&str]) -> Vec<(String, f64)> {
    let (few, many) = (100u64, 300u64);
    let profile = |n: u64| -> BTreeMap<String, u64> {
        let it = format!("iterations={n}");
        let mut all = vec![it.as_str()];
        all.extend_from_slice(sets);
        run(scenario, &all).profile.into_iter().filter(|p| p.level == 0).map(|p| (p.symbol, p.cycles)).collect()
    };
    let (a, b) = (profile(few), profile(many));
    let mut rows: Vec<(String, f64)> = b
        .iter()
        .map(|(s, c)| (s.clone(), (*c as f64 - *a.get(s).unwrap_or(&0) as f64) / (many - few) as f64))
        .collect();
    rows.sort_by(|x, y| y.1.total_cmp(&x.1));
    rows
}

/// Calibration C4: perf on L0 during the L2 CPUID loop shows
/// nested_vmx_disable_intercept_for_msr first, then nested_vmx_run, then vmx_vcpu_run. Not
/// fitted: the broadwell prices were fitted to C1 only, so this fails if the order flips.
#[test]
fn l0_profile_of_the_nested_cpuid_loop_is_in_c4_order() {
    let rows = l0_profile_per_iteration("cpuid-l2", &[]);
    let top: Vec<&str> = rows[..3].iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(top, ["nested_vmx_disable_intercept_for_msr", "nested_vmx_run", "vmx_vcpu_run"], "{:?}", &rows[..6]);
}

fn per_iteration(r: &RunReport, level: u32, reason: &str) -> f64 {
    r.exits_per_iteration.iter().find(|e| e.level == level && e.reason == reason).map_or(0.0, |e| e.per_iteration)
}

#[test]
fn hlt_wakes_on_the_timer_and_apic_virtualization_saves_the_eoi_exit() {
    let apicv = run("hlt-l1", &["iterations=50", "warmup=5"]);
    assert!(apicv.cycles_per_iteration >= vmxsim::hv::workload::HLT_DELAY as f64, "{}", apicv.cycles_per_iteration);
    assert_eq!(per_iteration(&apicv, 1, "HLT"), 1.0);
    // The TSC-deadline write exits; the interrupt arrives by virtual-interrupt delivery and
    // its EOI is virtualized.
    assert_eq!(per_iteration(&apicv, 1, "MSR_WRITE"), 1.0);
    // The Broadwell client part has no APICv: KVM injects the interrupt at VM entry and the
    // guest's EOI write exits too.
    let client = run("hlt-l1", &["iterations=50", "warmup=5", "cpu=\"broadwell\""]);
    assert_eq!(per_iteration(&client, 1, "MSR_WRITE"), 2.0);
    // Nested: L1 handles its guest's HLT and timer the same way.
    let nested = run("hlt-l2", &["iterations=20", "warmup=5"]);
    assert_eq!(per_iteration(&nested, 2, "HLT"), 1.0);
    assert!(nested.cycles_per_iteration > apicv.cycles_per_iteration);
}
