//! Putting a stack of hypervisors and a workload into one machine, as firmware and boot
//! loaders would before L0 starts: L0's program at host-physical `CODE_BASE` with flat
//! 64-bit paging, and every deeper level's program (and its boot tables) already in the
//! memory its hypervisor will give it, at host-physical `level * GUEST_BASE`.

use std::rc::Rc;

use super::builder::Program;
use super::config::HvParams;
use super::layout::{level_base, level_size, CODE_BASE, CODE_LIMIT};
use crate::cpu_model::CpuModel;
use crate::machine::images::{Image, Symbol};
use crate::machine::Machine;

/// Errors building a stack.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error("the stack needs at least one hypervisor")]
    Empty,
    #[error("assembling {0}: {1}")]
    Assemble(String, String),
    #[error("program {0} is {1} bytes, more than the {2} its layout allows")]
    TooBig(String, usize, u64),
    #[error("unknown workload `{0}`")]
    Workload(String),
}

/// The images of a stack: one per hypervisor level, then the workload.
pub fn programs(levels: &[HvParams], workload: &str, iterations: u64, warmup: u64) -> Result<Vec<Program>, StackError> {
    if levels.is_empty() {
        return Err(StackError::Empty);
    }
    if !super::workload::WORKLOADS.contains(&workload) {
        return Err(StackError::Workload(workload.into()));
    }
    let depth = levels.len() as u32;
    let mut out = Vec::new();
    for (i, p) in levels.iter().enumerate() {
        let guest = level_size(i as u32 + 1, depth);
        let prog = super::kvm::build(p, guest).map_err(|e| StackError::Assemble(p.name.clone(), e.to_string()))?;
        out.push(prog);
    }
    out.push(
        super::workload::build(workload, iterations, warmup)
            .map_err(|e| StackError::Assemble(workload.into(), e.to_string()))?,
    );
    for p in &out {
        if p.bytes.len() as u64 > CODE_LIMIT - CODE_BASE {
            return Err(StackError::TooBig(p.name.clone(), p.bytes.len(), CODE_LIMIT - CODE_BASE));
        }
    }
    Ok(out)
}

/// A machine with the stack loaded, L0 about to run its first instruction.
pub fn machine(model: Rc<CpuModel>, programs: &[Program]) -> Machine {
    let depth = programs.len() as u32 - 1;
    let mut m = Machine::new(level_size(0, depth) as usize, model);
    crate::loader::firmware_msrs(&mut m);
    crate::loader::elf::enter_long_mode(&mut m, CODE_BASE);
    // The same boot tables in every deeper level's memory (identity paging of its space).
    let tables = m.mem.slice(0x1000, 0x8000).map(<[u8]>::to_vec).unwrap_or_default();
    for (level, prog) in programs.iter().enumerate() {
        let base = level_base(level as u32);
        if level > 0 {
            m.mem.write_bytes(base + 0x1000, &tables);
        }
        load_at(&mut m, prog, base, level as u32);
    }
    m
}

/// Copies `prog` to host-physical `base + prog.base` and registers it at `level`.
fn load_at(m: &mut Machine, prog: &Program, base: u64, level: u32) {
    let start = base + prog.base;
    m.mem.write_bytes(start, &prog.bytes);
    m.images.add(Image {
        name: prog.name.clone(),
        level,
        ranges: vec![(start, start + prog.bytes.len() as u64)],
        symbols: prog
            .symbols
            .iter()
            .map(|s| Symbol { start: s.start + base, end: s.end + base, name: s.name.clone() })
            .collect(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stack_is_one_image_per_level_at_its_host_physical_place() {
        let kvm = crate::scenario::load_hv_model("kvm-4.13").expect("kvm-4.13");
        let progs = programs(&[kvm.clone(), kvm], "cpuid", 10, 1).expect("programs");
        assert_eq!(progs.len(), 3);
        let m = machine(Rc::new(CpuModel::load("broadwell-ep").expect("cpu")), &progs);
        for (level, p) in progs.iter().enumerate() {
            let at = level_base(level as u32) + p.base;
            assert_eq!(m.mem.slice(at, p.bytes.len()), Some(&p.bytes[..]), "level {level}");
        }
        // Every deeper level gets the same boot tables as L0.
        assert_eq!(m.mem.slice(level_base(2) + 0x2000, 0x100), m.mem.slice(0x2000, 0x100));
        assert!(matches!(programs(&[], "cpuid", 1, 1), Err(StackError::Empty)));
        assert!(matches!(programs(&progs_params(), "nope", 1, 1), Err(StackError::Workload(_))));
    }

    fn progs_params() -> Vec<HvParams> {
        vec![crate::scenario::load_hv_model("kvm-4.13").expect("kvm-4.13")]
    }
}
