//! A small layer over iced-x86's `CodeAssembler` for writing programs as named functions.
//!
//! Functions are emitted in order; each one's name becomes a symbol covering its bytes, so a
//! vmxsim profile of the program reads like `perf` on the real thing. Functions can call
//! each other by name before they are defined ([`ProgramBuilder::label`] returns the same
//! label for the same name). [`Program::load`] copies the assembled bytes into guest-physical
//! memory and registers the image, at a virtualization level, with its symbols.

use std::collections::BTreeMap;

use iced_x86::code_asm::{CodeAssembler, CodeLabel};
use iced_x86::{BlockEncoderOptions, IcedError};

use crate::machine::images::{Image, Symbol};
use crate::machine::Machine;

/// Builds a program out of named functions and data.
pub struct ProgramBuilder {
    pub asm: CodeAssembler,
    base: u64,
    labels: BTreeMap<String, CodeLabel>,
    /// (name, label) of each function and data item, in emission order.
    order: Vec<(String, CodeLabel)>,
}

/// An assembled program.
#[derive(Clone, Debug)]
pub struct Program {
    pub name: String,
    /// Address the code was assembled for (identity-mapped: physical = linear).
    pub base: u64,
    pub bytes: Vec<u8>,
    pub symbols: Vec<Symbol>,
    /// Addresses of every named label.
    pub labels: BTreeMap<String, u64>,
}

impl ProgramBuilder {
    /// A 64-bit program to be placed at `base`.
    pub fn new(base: u64) -> Result<Self, IcedError> {
        Ok(ProgramBuilder { asm: CodeAssembler::new(64)?, base, labels: BTreeMap::new(), order: Vec::new() })
    }

    /// The label of `name` (created on first use, so calls can precede definitions).
    pub fn label(&mut self, name: &str) -> CodeLabel {
        if let Some(l) = self.labels.get(name) {
            return *l;
        }
        let l = self.asm.create_label();
        self.labels.insert(name.to_string(), l);
        l
    }

    /// Emits a function: its label is bound here and `body` emits its instructions through
    /// `b.asm`, naming other functions with `b.label(name)`.
    pub fn func(
        &mut self,
        name: &str,
        body: impl FnOnce(&mut ProgramBuilder) -> Result<(), IcedError>,
    ) -> Result<(), IcedError> {
        let mut l = self.label(name);
        self.asm.set_label(&mut l)?;
        // A zero-byte anchor holds the function's label, so the body may bind its own label
        // to its first instruction (iced allows one label per instruction).
        self.asm.zero_bytes()?;
        // `set_label` recorded the instruction index in our copy: keep that one.
        self.labels.insert(name.to_string(), l);
        self.order.push((name.to_string(), l));
        body(self)
    }

    /// Emits a function that the compiler of the modeled code inlined into its caller: its
    /// label is bound (so it can be called by name) but it gets no symbol of its own, so its
    /// cycles count towards the symbol emitted before it, as `perf` would show them. Emit it
    /// right after its caller.
    pub fn inline_func(
        &mut self,
        name: &str,
        body: impl FnOnce(&mut ProgramBuilder) -> Result<(), IcedError>,
    ) -> Result<(), IcedError> {
        let mut l = self.label(name);
        self.asm.set_label(&mut l)?;
        self.asm.zero_bytes()?;
        self.labels.insert(name.to_string(), l);
        body(self)
    }

    /// Emits named data (a table, a buffer) as its own symbol.
    pub fn data(&mut self, name: &str, bytes: &[u8]) -> Result<(), IcedError> {
        let mut l = self.label(name);
        self.asm.set_label(&mut l)?;
        self.asm.zero_bytes()?;
        self.labels.insert(name.to_string(), l);
        self.order.push((name.to_string(), l));
        self.asm.db(bytes)
    }

    /// Assembles the program.
    pub fn assemble(mut self, name: &str) -> Result<Program, IcedError> {
        let r = self.asm.assemble_options(self.base, BlockEncoderOptions::RETURN_NEW_INSTRUCTION_OFFSETS)?;
        let bytes = r.inner.code_buffer.clone();
        let end = self.base + bytes.len() as u64;
        let mut labels = BTreeMap::new();
        for (n, l) in &self.labels {
            if let Ok(ip) = r.label_ip(l) {
                labels.insert(n.clone(), ip);
            }
        }
        let starts: Vec<(String, u64)> =
            self.order.iter().filter_map(|(n, l)| r.label_ip(l).ok().map(|ip| (n.clone(), ip))).collect();
        let symbols = starts
            .iter()
            .enumerate()
            .map(|(i, (n, s))| Symbol { start: *s, end: starts.get(i + 1).map_or(end, |x| x.1), name: n.clone() })
            .collect();
        Ok(Program { name: name.to_string(), base: self.base, bytes, symbols, labels })
    }
}

impl Program {
    /// Copies the program into guest-physical memory at `base` (identity-mapped code) and
    /// registers it as an image of `level`. Returns false if it does not fit.
    pub fn load(&self, m: &mut Machine, level: u32) -> bool {
        if !m.mem.write_bytes(self.base, &self.bytes) {
            return false;
        }
        m.images.add(Image {
            name: self.name.clone(),
            level,
            ranges: vec![(self.base, self.base + self.bytes.len() as u64)],
            symbols: self.symbols.clone(),
        });
        true
    }

    /// The address of a named label.
    pub fn addr(&self, name: &str) -> Option<u64> {
        self.labels.get(name).copied()
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use iced_x86::code_asm::*;

    use super::*;
    use crate::cpu_model::CpuModel;
    use crate::machine::StopReason;

    #[test]
    fn functions_become_symbols_that_profiles_see() {
        let mut b = ProgramBuilder::new(0x10000).expect("builder");
        b.func("main", |b| {
            let work = b.label("work");
            b.asm.mov(ecx, 100u32)?;
            b.asm.call(work)?;
            b.asm.hlt()
        })
        .expect("main");
        b.func("work", |b| {
            let mut top = b.asm.create_label();
            b.asm.set_label(&mut top)?;
            b.asm.add(eax, ecx)?;
            b.asm.dec(ecx)?;
            b.asm.jnz(top)?;
            b.asm.ret()
        })
        .expect("work");
        b.data("table", &[1, 2, 3, 4]).expect("data");
        let p = b.assemble("demo").expect("assembles");
        assert_eq!(p.addr("main"), Some(0x10000));
        assert_eq!(p.symbols.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["main", "work", "table"]);
        assert_eq!(p.symbols[2].end, 0x10000 + p.bytes.len() as u64);

        let mut m = Machine::new(4 << 20, Rc::new(CpuModel::load("broadwell").expect("model")));
        crate::loader::elf::enter_long_mode(&mut m, 0x10000);
        assert!(p.load(&mut m, 1));
        m.enable_profile();
        assert_eq!(m.run(10_000), StopReason::Halted);
        assert_eq!(m.cpu.gpr[0], 5050);
        let rows = crate::exec::profile_rows(&m).expect("profile");
        let work = rows.iter().find(|r| r.symbol == "work").expect("work row");
        assert_eq!(work.level, Some(1));
        // 100 iterations of 3 instructions plus the ret, at one cycle each (unit prices).
        assert_eq!(work.cycles, 301);
        assert_eq!(rows.iter().map(|r| r.cycles).sum::<u64>(), m.cycles());
    }
}
