//! A flat 64-bit machine with VMX enabled, and helpers that run single VMX instructions
//! through the interpreter, for the VMX unit and property tests.

#![allow(dead_code)]

use std::rc::Rc;

use iced_x86::code_asm::CodeAssembler;
use vmxsim::arch::vmcs_fields::field as f;
use vmxsim::arch::vmx_ctrl::{entry as en, exit as ex, msr as vmsr};
use vmxsim::arch::x86::{cr4, rflags};
use vmxsim::cpu_model::CpuModel;
use vmxsim::loader::elf::{enter_long_mode, GDT_ADDR};
use vmxsim::machine::{Machine, Segment, StopReason};

pub const TSS_ADDR: u64 = 0x5_0000;
pub const VMXON_REGION: u64 = 0x10_0000;
/// VMCS regions A, B, C.
pub const VMCS: [u64; 3] = [0x10_1000, 0x10_2000, 0x10_3000];
pub const BITMAPS: u64 = 0x10_8000;
pub const GUEST_CODE: u64 = 0x20_0000;
pub const HOST_CODE: u64 = 0x21_0000;
pub const GUEST_STACK: u64 = 0x30_0000;
pub const HOST_STACK: u64 = 0x31_0000;
/// Snippets are assembled here, each at a fresh address.
pub const SNIPPETS: u64 = 0x40_0000;

pub const CF: u64 = rflags::CF;
pub const ZF: u64 = rflags::ZF;

pub struct Vm {
    pub m: Machine,
    next: u64,
}

/// Result of one VMX instruction: succeed, fail-invalid or fail-valid(error).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Succeed,
    FailInvalid,
    FailValid(u32),
    Fault(u8),
}

impl Vm {
    pub fn new(model: &str) -> Vm {
        Vm::with_mem(model, 8 << 20)
    }

    /// A machine with `mem` bytes of physical memory.
    pub fn with_mem(model: &str, mem: usize) -> Vm {
        let model = Rc::new(CpuModel::load(model).expect("model"));
        let mut m = Machine::new(mem, model);
        enter_long_mode(&mut m, SNIPPETS);
        // A 64-bit TSS at selector 0x18.
        let base = TSS_ADDR;
        let lim = 0x67u64;
        let lo = (lim & 0xFFFF) | ((base & 0xFF_FFFF) << 16) | (0x8B << 40) | (((base >> 24) & 0xFF) << 56);
        m.mem.write::<8>(GDT_ADDR + 0x18, lo);
        m.mem.write::<8>(GDT_ADDR + 0x20, base >> 32);
        m.cpu.gdtr.limit = 0x27;
        m.cpu.tr = Segment { selector: 0x18, base, limit: 0x67, attr: 0x8B };
        m.cpu.cr4 |= cr4::VMXE;
        m.cpu.msr.feature_control = 5;
        let basic = m.read_msr(vmsr::IA32_VMX_BASIC).expect("basic");
        let rev = (basic & 0x7FFF_FFFF) as u32;
        m.mem.write::<4>(VMXON_REGION, u64::from(rev));
        for v in VMCS {
            m.mem.write::<4>(v, u64::from(rev));
        }
        Vm { m, next: SNIPPETS }
    }

    pub fn revision(&self) -> u32 {
        (self.m.read_msr(vmsr::IA32_VMX_BASIC).unwrap() & 0x7FFF_FFFF) as u32
    }

    /// Assembles `body` followed by HLT at a fresh address and runs it to the HLT.
    pub fn run(&mut self, body: impl FnOnce(&mut CodeAssembler)) -> StopReason {
        let mut a = CodeAssembler::new(64).unwrap();
        body(&mut a);
        a.hlt().unwrap();
        let bytes = a.assemble(self.next).unwrap();
        self.m.mem.write_bytes(self.next, &bytes);
        self.m.cpu.rip = self.next;
        self.m.cpu.halted = false;
        self.next += (bytes.len() as u64 + 0x3F) & !0x3F;
        let budget = self.m.stats.instructions + 1_000_000;
        self.m.run(budget)
    }

    /// Runs one snippet and classifies the flags as a VMX instruction outcome.
    pub fn vmx(&mut self, body: impl FnOnce(&mut CodeAssembler)) -> Outcome {
        let before = self.m.stats.exceptions.clone();
        self.m.cpu.flags.set_explicit(rflags::STATUS);
        let stop = self.run(body);
        if let Some((v, _)) = self.m.stats.exceptions.iter().find(|(v, n)| before.get(v) != Some(n)) {
            // The snippet's IDT is empty, so a fault ends in a triple fault; report it.
            return Outcome::Fault(*v);
        }
        assert_eq!(stop, StopReason::Halted, "snippet did not reach its HLT");
        let fl = self.m.cpu.rflags() & rflags::STATUS;
        if fl == 0 {
            Outcome::Succeed
        } else if fl == CF {
            Outcome::FailInvalid
        } else if fl == ZF {
            Outcome::FailValid(self.m.vmx.get(f::VM_INSTRUCTION_ERROR) as u32)
        } else {
            panic!("flags {fl:#x} are no VMX outcome")
        }
    }

    pub fn vmxon(&mut self, addr: u64) -> Outcome {
        self.m.cpu.gpr[0] = addr;
        self.m.mem.write::<8>(0x8_0000, addr);
        self.vmx(|a| a.vmxon(iced_x86::code_asm::qword_ptr(0x8_0000u64)).unwrap())
    }

    pub fn vmptrld(&mut self, addr: u64) -> Outcome {
        self.m.mem.write::<8>(0x8_0000, addr);
        self.vmx(|a| a.vmptrld(iced_x86::code_asm::qword_ptr(0x8_0000u64)).unwrap())
    }

    pub fn vmclear(&mut self, addr: u64) -> Outcome {
        self.m.mem.write::<8>(0x8_0000, addr);
        self.vmx(|a| a.vmclear(iced_x86::code_asm::qword_ptr(0x8_0000u64)).unwrap())
    }

    pub fn vmptrst(&mut self) -> (Outcome, u64) {
        let o = self.vmx(|a| a.vmptrst(iced_x86::code_asm::qword_ptr(0x8_0008u64)).unwrap());
        (o, self.m.mem.read::<8>(0x8_0008))
    }

    pub fn vmwrite(&mut self, enc: u64, val: u64) -> Outcome {
        use iced_x86::code_asm::*;
        self.m.cpu.gpr[0] = enc;
        self.m.cpu.gpr[3] = val;
        self.vmx(|a| a.vmwrite(rax, rbx).unwrap())
    }

    /// VMWRITE with a memory source operand.
    pub fn vmwrite_mem(&mut self, enc: u64, val: u64) -> Outcome {
        use iced_x86::code_asm::*;
        self.m.cpu.gpr[0] = enc;
        self.m.mem.write::<8>(0x8_0010, val);
        self.vmx(|a| a.vmwrite(rax, qword_ptr(0x8_0010u64)).unwrap())
    }

    pub fn vmread(&mut self, enc: u64) -> (Outcome, u64) {
        use iced_x86::code_asm::*;
        self.m.cpu.gpr[0] = enc;
        self.m.cpu.gpr[3] = 0xDEAD_BEEF_DEAD_BEEF;
        let o = self.vmx(|a| a.vmread(rbx, rax).unwrap());
        (o, self.m.cpu.gpr[3])
    }

    /// VMREAD into memory.
    pub fn vmread_mem(&mut self, enc: u64) -> (Outcome, u64) {
        use iced_x86::code_asm::*;
        self.m.cpu.gpr[0] = enc;
        self.m.mem.write::<8>(0x8_0018, 0xDEAD_BEEF_DEAD_BEEF);
        let o = self.vmx(|a| a.vmread(qword_ptr(0x8_0018u64), rax).unwrap());
        (o, self.m.mem.read::<8>(0x8_0018))
    }

    /// VMLAUNCH (or VMRESUME); the guest and host code decide where execution ends.
    pub fn enter(&mut self, launch: bool) -> Outcome {
        self.vmx(|a| if launch { a.vmlaunch().unwrap() } else { a.vmresume().unwrap() })
    }

    fn cap(&self, msr: u32) -> u64 {
        self.m.read_msr(msr).unwrap()
    }

    /// Writes a complete, valid 64-bit guest and host state and minimal controls into the
    /// current VMCS: the guest starts at `guest_rip`, exits go to `host_rip`.
    pub fn setup_vmcs(&mut self, guest_rip: u64, host_rip: u64) {
        let c = self.m.cpu.clone();
        let pin = self.cap(vmsr::IA32_VMX_TRUE_PINBASED_CTLS) as u32;
        let proc1 = self.cap(vmsr::IA32_VMX_TRUE_PROCBASED_CTLS) as u32;
        let exitc = self.cap(vmsr::IA32_VMX_TRUE_EXIT_CTLS) as u32 | ex::VM_EXIT_HOST_ADDR_SPACE_SIZE;
        let entryc = self.cap(vmsr::IA32_VMX_TRUE_ENTRY_CTLS) as u32 | en::VM_ENTRY_IA32E_MODE;
        let w: Vec<(u32, u64)> = vec![
            (f::PIN_BASED_VM_EXEC_CONTROL, u64::from(pin)),
            (f::CPU_BASED_VM_EXEC_CONTROL, u64::from(proc1)),
            (f::VM_EXIT_CONTROLS, u64::from(exitc)),
            (f::VM_ENTRY_CONTROLS, u64::from(entryc)),
            (f::HOST_CR0, c.cr0),
            (f::HOST_CR3, c.cr3),
            (f::HOST_CR4, c.cr4),
            (f::HOST_CS_SELECTOR, 0x08),
            (f::HOST_SS_SELECTOR, 0x10),
            (f::HOST_DS_SELECTOR, 0x10),
            (f::HOST_ES_SELECTOR, 0x10),
            (f::HOST_FS_SELECTOR, 0x10),
            (f::HOST_GS_SELECTOR, 0x10),
            (f::HOST_TR_SELECTOR, 0x18),
            (f::HOST_TR_BASE, TSS_ADDR),
            (f::HOST_GDTR_BASE, c.gdtr.base),
            (f::HOST_IDTR_BASE, c.idtr.base),
            (f::HOST_RSP, HOST_STACK),
            (f::HOST_RIP, host_rip),
            (f::GUEST_CR0, c.cr0),
            (f::GUEST_CR3, c.cr3),
            (f::GUEST_CR4, c.cr4),
            (f::GUEST_DR7, 0x400),
            (f::GUEST_CS_SELECTOR, 0x08),
            (f::GUEST_CS_LIMIT, 0xFFFF_FFFF),
            (f::GUEST_CS_AR_BYTES, 0xA09B),
            (f::GUEST_TR_SELECTOR, 0x18),
            (f::GUEST_TR_BASE, TSS_ADDR),
            (f::GUEST_TR_LIMIT, 0x67),
            (f::GUEST_TR_AR_BYTES, 0x8B),
            (f::GUEST_LDTR_AR_BYTES, 0x1_0000),
            (f::GUEST_GDTR_BASE, c.gdtr.base),
            (f::GUEST_GDTR_LIMIT, u64::from(c.gdtr.limit)),
            (f::GUEST_IDTR_BASE, c.idtr.base),
            (f::GUEST_IDTR_LIMIT, u64::from(c.idtr.limit)),
            (f::GUEST_RSP, GUEST_STACK),
            (f::GUEST_RIP, guest_rip),
            (f::GUEST_RFLAGS, 2),
            (f::VMCS_LINK_POINTER, u64::MAX),
        ];
        for (enc, v) in w {
            assert_eq!(self.vmwrite(u64::from(enc), v), Outcome::Succeed, "VMWRITE {enc:#x}");
        }
        for (sel, lim, ar) in [
            (f::GUEST_SS_SELECTOR, f::GUEST_SS_LIMIT, f::GUEST_SS_AR_BYTES),
            (f::GUEST_DS_SELECTOR, f::GUEST_DS_LIMIT, f::GUEST_DS_AR_BYTES),
            (f::GUEST_ES_SELECTOR, f::GUEST_ES_LIMIT, f::GUEST_ES_AR_BYTES),
            (f::GUEST_FS_SELECTOR, f::GUEST_FS_LIMIT, f::GUEST_FS_AR_BYTES),
            (f::GUEST_GS_SELECTOR, f::GUEST_GS_LIMIT, f::GUEST_GS_AR_BYTES),
        ] {
            assert_eq!(self.vmwrite(u64::from(sel), 0x10), Outcome::Succeed);
            assert_eq!(self.vmwrite(u64::from(lim), 0xFFFF_FFFF), Outcome::Succeed);
            assert_eq!(self.vmwrite(u64::from(ar), 0xC093), Outcome::Succeed);
        }
    }

    /// Places code at a fixed address.
    pub fn place(&mut self, addr: u64, body: impl FnOnce(&mut CodeAssembler)) {
        let mut a = CodeAssembler::new(64).unwrap();
        body(&mut a);
        let bytes = a.assemble(addr).unwrap();
        self.m.mem.write_bytes(addr, &bytes);
    }
}
