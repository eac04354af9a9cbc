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
