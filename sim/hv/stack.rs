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
pub(crate) mod tests {
    use super::*;
    use crate::hv::config::*;

    /// KVM 4.13's parameters as the reference states them (the shipped models/hv file is
    /// the source of truth; this copy lets unit tests run without the loader).
    pub(crate) fn kvm413() -> HvParams {
        let enc = |names: &[&str]| -> Vec<u32> {
            names.iter().map(|n| crate::arch::vmcs_fields::by_name(n).expect(n).encoding).collect()
        };
        let all = VmxFeatures {
            ept: true,
            ept_ad: true,
            vpid: true,
            pml: true,
            preemption_timer: true,
            vmcs_shadowing: true,
            apicv: true,
        };
        HvParams {
            name: "kvm-4.13".into(),
            shadow_read_only: enc(&[
                "VM_EXIT_REASON",
                "VM_EXIT_INTR_INFO",
                "VM_EXIT_INSTRUCTION_LEN",
                "IDT_VECTORING_INFO_FIELD",
                "IDT_VECTORING_ERROR_CODE",
                "VM_EXIT_INTR_ERROR_CODE",
                "EXIT_QUALIFICATION",
                "GUEST_LINEAR_ADDRESS",
                "GUEST_PHYSICAL_ADDRESS",
            ]),
            shadow_read_write: enc(&[
                "TPR_THRESHOLD",
                "GUEST_RIP",
                "GUEST_RSP",
                "GUEST_CR0",
                "GUEST_CR3",
                "GUEST_CR4",
                "GUEST_INTERRUPTIBILITY_INFO",
                "GUEST_RFLAGS",
                "GUEST_CS_SELECTOR",
                "GUEST_CS_AR_BYTES",
                "GUEST_CS_LIMIT",
                "GUEST_CS_BASE",
                "GUEST_ES_BASE",
                "CR0_GUEST_HOST_MASK",
                "CR0_READ_SHADOW",
                "CR4_READ_SHADOW",
                "TSC_OFFSET",
                "EXCEPTION_BITMAP",
                "CPU_BASED_VM_EXEC_CONTROL",
                "VM_ENTRY_EXCEPTION_ERROR_CODE",
                "VM_ENTRY_INTR_INFO_FIELD",
                "VM_ENTRY_INSTRUCTION_LEN",
                "VM_ENTRY_EXCEPTION_ERROR_CODE",
                "HOST_FS_BASE",
                "HOST_GS_BASE",
                "HOST_FS_SELECTOR",
                "HOST_GS_SELECTOR",
            ]),
            passthrough_msrs: vec![
                crate::arch::msr::IA32_FS_BASE,
                crate::arch::msr::IA32_GS_BASE,
                crate::arch::msr::IA32_KERNEL_GS_BASE,
                crate::arch::msr::IA32_SYSENTER_CS,
                crate::arch::msr::IA32_SYSENTER_ESP,
                crate::arch::msr::IA32_SYSENTER_EIP,
            ],
            uses: all,
            exposes: VmxFeatures { vmcs_shadowing: false, ..all },
            xcr0_load: Xcr0Load::Always,
            debugctl_per_entry: true,
            msr_bitmap_merge: MsrBitmapMerge::PerMsr,
            vmcs02_rebuild: Vmcs02Rebuild::Full,
        }
    }

    pub(crate) fn run(depth: usize, workload: &str, iters: u64, cpu: &str) -> Machine {
        let levels = vec![kvm413(); depth];
        let progs = programs(&levels, workload, iters, 10).expect("programs");
        let mut m = machine(Rc::new(CpuModel::load(cpu).expect("cpu")), &progs);
        m.set_prices(crate::timing::CostModel::load("broadwell").expect("cost").prices());
        m.enable_profile();
        let stop = m.run(2_000_000_000);
        eprintln!("stop: {stop:?} rip={:#x} out={}", m.cpu.rip, String::from_utf8_lossy(&m.devices.output));
        m
    }

    #[test]
    #[ignore]
    fn dev_cpuid_l1() {
        let m = run(1, "cpuid", 1000, &std::env::var("CPU").unwrap_or("broadwell".into()));
        eprintln!("exits {:?}", m.stats.vm_exits);
    }
    #[test]
    #[ignore]
    fn dev_cpuid_l2() {
        let m = run(2, "cpuid", 1000, &std::env::var("CPU").unwrap_or("broadwell".into()));
        eprintln!("exits {:?}", m.stats.vm_exits);
    }
}
#[cfg(test)]
mod dev {
    #[test]
    #[ignore]
    fn dev_disasm() {
        use iced_x86::{Decoder, DecoderOptions, FastFormatter};
        let addr =
            u64::from_str_radix(std::env::var("ADDR").unwrap_or("100000".into()).trim_start_matches("0x"), 16).unwrap();
        let p = crate::hv::kvm::build(&super::tests::kvm413(), 16 << 20).unwrap();
        let sym = p.symbols.iter().find(|s| s.start <= addr && addr < s.end).unwrap();
        eprintln!("{} {:#x}..{:#x}", sym.name, sym.start, sym.end);
        let off = (sym.start - p.base) as usize;
        let mut d =
            Decoder::with_ip(64, &p.bytes[off..off + (sym.end - sym.start) as usize], sym.start, DecoderOptions::NONE);
        let mut f = FastFormatter::new();
        for i in d.iter() {
            let mut s = String::new();
            f.format(&i, &mut s);
            eprintln!("{:#x} {s}{}", i.ip(), if i.ip() == addr { "   <====" } else { "" });
        }
    }
}
#[cfg(test)]
mod dev2 {
    #[test]
    #[ignore]
    fn dev_dump_vmcs() {
        let m = super::tests::run(2, "cpuid", 100, "broadwell");
        for fi in crate::arch::vmcs_fields::VMCS_FIELDS.iter() {
            if fi.name.starts_with("GUEST") || fi.name.contains("CONTROL") || fi.name.contains("CR") {
                eprintln!("{:40} {:#x}", fi.name, m.vmcs(fi.encoding));
            }
        }
    }
}
#[cfg(test)]
mod dev3 {
    #[test]
    #[ignore]
    fn dev_vmcs12() {
        let m = super::tests::run(2, "cpuid", 100, "broadwell");
        let base = 0x100_0000u64 + 0x30_1000;
        for name in ["GUEST_IA32_EFER", "GUEST_CR4", "GUEST_RIP", "VM_ENTRY_CONTROLS", "GUEST_CS_AR_BYTES", "HOST_RIP"]
        {
            let e = crate::arch::vmcs_fields::by_name(name).unwrap().encoding;
            let off = crate::hv::kvm::vmcs12_offset(e).unwrap();
            eprintln!("{name} off {off:#x} = {:#x}", m.mem.read::<8>(base + off));
        }
        eprintln!("rev {:#x}", m.mem.read::<4>(base));
    }
}
#[cfg(test)]
mod dev4 {
    #[test]
    #[ignore]
    fn dev_cpuid_l3() {
        let m = super::tests::run(3, "cpuid", 100, &std::env::var("CPU").unwrap_or("broadwell".into()));
        eprintln!("exits {:?} cycles {}", m.stats.vm_exits, m.cycles());
    }
}
