//! Running instruction snippets in a fresh 64-bit machine, for differential tests against
//! the host CPU and for unit tests that assert registers after raw instruction bytes.

use std::rc::Rc;

use crate::cpu_model::CpuModel;
use crate::loader::elf::enter_long_mode;
use crate::machine::{Machine, StopReason};

/// Where snippets are placed.
pub const SNIPPET_CODE_ADDR: u64 = 0x10000;
/// 64 bytes of data memory live here.
pub const SNIPPET_DATA_ADDR: u64 = 0x20000;

/// Registers, flags and data memory of a snippet run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnippetState {
    /// In encoding order: RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8..R15.
    pub gpr: [u64; 16],
    pub rflags: u64,
    pub mem: [u8; 64],
}

impl Default for SnippetState {
    fn default() -> Self {
        SnippetState { gpr: [0; 16], rflags: 2, mem: [0; 64] }
    }
}

/// Runs `code` at CPL 0 in 64-bit mode (flat, identity-mapped) with the given registers,
/// status flags and DF, and data memory; returns the state when execution falls off the end.
/// RSP is owned by the harness. `Err` describes any fault or unimplemented instruction.
pub fn run_snippet_64(code: &[u8], init: &SnippetState) -> Result<SnippetState, String> {
    thread_local! {
        static MODEL: Rc<CpuModel> = Rc::new(CpuModel::load(crate::cpu_model::DEFAULT).expect("built-in model"));
    }
    let model = MODEL.with(Rc::clone);
    let mut m = Machine::new(4 << 20, model);
    enter_long_mode(&mut m, SNIPPET_CODE_ADDR);
    let mut bytes = code.to_vec();
    bytes.push(0xF4); // HLT marks the end.
    m.mem.write_bytes(SNIPPET_CODE_ADDR, &bytes);
    m.mem.write_bytes(SNIPPET_DATA_ADDR, &init.mem);
    m.cpu.gpr = init.gpr;
    m.cpu.gpr[4] = crate::loader::elf::STACK_TOP;
    let keep = crate::arch::x86::rflags::STATUS | crate::arch::x86::rflags::DF;
    m.cpu.set_rflags((init.rflags & keep) | 2);
    let stop = m.run(1_000_000);
    let end = SNIPPET_CODE_ADDR + bytes.len() as u64;
    if let Some((name, _)) = m.stats.unimplemented.iter().next() {
        return Err(format!("unimplemented instruction {name}"));
    }
    if let Some((v, _)) = m.stats.exceptions.iter().next() {
        return Err(format!("exception {} ({v})", crate::arch::x86::vector::name(*v)));
    }
    if stop != StopReason::Halted || m.cpu.rip != end {
        return Err(format!("snippet did not run to its end: {stop:?} at {:#x}", m.cpu.rip));
    }
    let mut mem = [0u8; 64];
    mem.copy_from_slice(m.mem.slice(SNIPPET_DATA_ADDR, 64).ok_or("data memory")?);
    Ok(SnippetState { gpr: m.cpu.gpr, rflags: m.cpu.rflags(), mem })
}
