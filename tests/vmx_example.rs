//! The shipped VMX example (`images/vmx-cpuid.img`): VMX on, a 64-bit guest running CPUID in
//! a loop, every exit handled and resumed by the host. The image is rebuilt from its source
//! (so the binary never drifts), run in vmxsim, and its output compared with the golden
//! recorded from Bochs 2.7; `--json` reports the exits the machine counted.

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn between_markers(out: &str) -> &str {
    let begin = "=== BEGIN vmx_cpuid ===\n";
    let s = out.find(begin).map(|i| i + begin.len()).expect("begin marker");
    let e = out[s..].find("=== END vmx_cpuid ===").expect("end marker");
    &out[s..s + e]
}

#[test]
fn shipped_image_matches_its_source() {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("vmx-cpuid.img");
    let st = Command::new("nasm")
        .current_dir(root())
        .args(["-f", "bin", "-o"])
        .arg(&out)
        .arg("images/vmx-cpuid.asm")
        .status()
        .expect("nasm is needed (apt-get install nasm)");
    assert!(st.success());
    assert_eq!(
        std::fs::read(out).expect("built"),
        std::fs::read(root().join("images/vmx-cpuid.img")).expect("shipped")
    );
}

#[test]
fn cpuid_loop_runs_and_matches_the_bochs_golden() {
    let out = Command::new(env!("CARGO_BIN_EXE_vmxsim"))
        .current_dir(root())
        .args(["exec", "--json", "images/vmx-cpuid.img"])
        .output()
        .expect("runs");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["reason"], "shutdown", "{v}");
    let golden = std::fs::read_to_string(root().join("images/vmx-cpuid.expected")).expect("golden");
    assert_eq!(between_markers(v["output"].as_str().expect("output")), golden);
    // The guest loop runs 1,000,000 times (the image's ITER); each CPUID exits once and the
    // final VMCALL once.
    assert_eq!(v["vm_exits"]["CPUID"], 1_000_000);
    assert_eq!(v["vm_exits"]["VMCALL"], 1);
}

/// Runs the example built with `iter` iterations under a cost model file.
fn run_priced(iter: u32, model: &std::path::Path) -> vmxsim::exec::ExecReport {
    let img = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("vmx-cpuid-{iter}.img"));
    let st = Command::new("nasm")
        .current_dir(root())
        .args(["-f", "bin", &format!("-DITER={iter}"), "-o"])
        .arg(&img)
        .arg("images/vmx-cpuid.asm")
        .status()
        .expect("nasm is needed (apt-get install nasm)");
    assert!(st.success());
    let bytes = std::fs::read(&img).expect("image");
    let opts = vmxsim::exec::ExecOptions {
        cost_model: Some(model.display().to_string()),
        ..vmxsim::exec::ExecOptions::default()
    };
    let r = vmxsim::exec::run_image(&bytes, &opts).expect("runs");
    assert_eq!(r.reason, "shutdown");
    r
}

/// The test cost model with one class repriced.
fn repriced(class: &str, cycles: u32) -> PathBuf {
    let text = std::fs::read_to_string(root().join("tests/fixtures/test-cost.toml")).expect("model");
    let old = format!("{class} = {{ cycles = 3,");
    assert!(text.contains(&old), "{class} has the default test price");
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cost-{class}-{cycles}.toml"));
    std::fs::write(&path, text.replace(&old, &format!("{class} = {{ cycles = {cycles},"))).expect("write");
    path
}

#[test]
fn exit_handling_cycles_move_with_the_transition_prices() {
    let base = run_priced(10, &root().join("tests/fixtures/test-cost.toml"));
    let cpuid = |r: &vmxsim::exec::ExecReport| r.vm_exit_cycles["CPUID"];
    assert_eq!(base.vm_exits["CPUID"], 10);
    // Each of the 10 CPUID exits is followed by one VM entry, and the handler's VMWRITE of
    // GUEST_RIP makes every one of those entries run the full consistency checks.
    let entry = run_priced(10, &repriced("vm_entry", 103));
    assert_eq!(cpuid(&entry) - cpuid(&base), 10 * 100);
    let checks = run_priced(10, &repriced("vm_entry_checks", 53));
    assert_eq!(cpuid(&checks) - cpuid(&base), 10 * 50);
    let exit = run_priced(10, &repriced("vm_exit", 13));
    assert_eq!(cpuid(&exit) - cpuid(&base), 10 * 10);
    // The CPUID handler VMREADs the exit reason, GUEST_RIP and the instruction length; the
    // final VMCALL exit's handler reads the exit reason and, in guest_done, GUEST_RSP
    // (outside any bucket, as no entry follows them).
    let vmread = run_priced(10, &repriced("vmread", 4));
    assert_eq!(cpuid(&vmread) - cpuid(&base), 10 * 3);
    assert_eq!(vmread.cycles - base.cycles, 10 * 3 + 2);
}
