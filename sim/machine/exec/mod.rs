//! Instruction semantics, one file per family (as wasmi and Bochs arrange theirs), and
//! [`select`], which picks each decoded instruction's handler once at decode time.

mod alu;
mod bits;
mod ctrl;
mod data;
mod string;
mod system;

use iced_x86::{Code, FlowControl, Mnemonic as M};

use super::decode::{DInsn, OpK};
use super::mmu::Access;
use super::{Fault, Machine};

/// The handler of instructions vmxsim does not implement: #UD, counted and reported.
pub fn unimpl(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    Err(m.unimplemented(d))
}

/// Raises #UD without counting (UD0/UD1/UD2 and invalid encodings are architectural #UD).
fn ud(_m: &mut Machine, _d: &DInsn) -> Result<(), Fault> {
    Err(Fault::ud())
}

fn nop(_m: &mut Machine, _d: &DInsn) -> Result<(), Fault> {
    Ok(())
}

enum FpuKind {
    None,
    X87,
    Simd,
}

/// Whether an (unimplemented) instruction is x87 or SSE/AVX, whose availability checks
/// (CR0.EM/TS/MP, CR4.OSFXSR) come before anything else.
fn fpu_kind(ins: &iced_x86::Instruction) -> FpuKind {
    use iced_x86::CpuidFeature as F;
    let f = ins.cpuid_features();
    if f.iter().any(|c| matches!(c, F::FPU | F::FPU287 | F::FPU387 | F::FPU287XL_ONLY)) {
        FpuKind::X87
    } else if f.iter().any(|c| {
        matches!(
            c,
            F::MMX
                | F::SSE
                | F::SSE2
                | F::SSE3
                | F::SSSE3
                | F::SSE4_1
                | F::SSE4_2
                | F::AVX
                | F::AVX2
                | F::FMA
                | F::F16C
                | F::AES
                | F::PCLMULQDQ
                | F::FXSR
                | F::XSAVE
        )
    }) {
        FpuKind::Simd
    } else {
        FpuKind::None
    }
}

/// x87 instructions: #NM when CR0.EM or CR0.TS is set (SDM 2.5); otherwise not modeled.
fn x87(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    use crate::arch::x86::cr0;
    if m.cpu.cr0 & (cr0::EM | cr0::TS) != 0 {
        return Err(Fault::new(crate::arch::x86::vector::NM));
    }
    Err(m.unimplemented(d))
}

/// SSE/AVX/MMX/FXSAVE/XSAVE: #UD with CR0.EM, #NM with CR0.TS; otherwise not modeled.
fn simd(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    use crate::arch::x86::cr0;
    if m.cpu.cr0 & cr0::EM != 0 {
        return Err(Fault::ud());
    }
    if m.cpu.cr0 & cr0::TS != 0 {
        return Err(Fault::new(crate::arch::x86::vector::NM));
    }
    Err(m.unimplemented(d))
}

/// WAIT/FWAIT: #NM when CR0.TS and CR0.MP are both set; no x87 exceptions are pending.
fn wait(m: &mut Machine, _d: &DInsn) -> Result<(), Fault> {
    use crate::arch::x86::cr0;
    if m.cpu.cr0 & (cr0::TS | cr0::MP) == cr0::TS | cr0::MP {
        return Err(Fault::new(crate::arch::x86::vector::NM));
    }
    Ok(())
}

impl Machine {
    /// The effective address (offset within the segment) of the memory operand.
    #[inline(always)]
    pub(crate) fn ea(&self, d: &DInsn) -> u64 {
        let m = &d.m;
        let mut a = m.disp;
        if m.base != super::decode::NO_REG {
            a = a.wrapping_add(self.cpu.gpr[m.base as usize]);
        }
        if m.index != super::decode::NO_REG {
            a = a.wrapping_add(self.cpu.gpr[m.index as usize] << m.scale);
        }
        a & m.amask
    }

    #[inline(always)]
    pub(crate) fn mem_lin(&self, d: &DInsn, off: u64, size: u8, write: bool) -> Result<u64, Fault> {
        self.lin_addr(d.m.seg as usize, off & d.m.amask, size, write)
    }

    #[inline(always)]
    pub(crate) fn rd_mem(&mut self, d: &DInsn, size: u8) -> Result<u64, Fault> {
        let lin = self.mem_lin(d, self.ea(d), size, false)?;
        self.read_lin(lin, size)
    }

    #[inline(always)]
    pub(crate) fn wr_mem(&mut self, d: &DInsn, size: u8, v: u64) -> Result<(), Fault> {
        let lin = self.mem_lin(d, self.ea(d), size, true)?;
        self.write_lin(lin, size, v)
    }

    /// Reads operand `i` (register, memory or immediate) at `size` bytes.
    #[inline(always)]
    pub(crate) fn rd_op(&mut self, d: &DInsn, i: usize, size: u8) -> Result<u64, Fault> {
        match d.k[i] {
            OpK::Reg => Ok(self.rd_reg(d.r[i])),
            OpK::Mem => self.rd_mem(d, size),
            _ => Ok(d.imm),
        }
    }

    /// Writes operand `i` (register or memory).
    #[inline(always)]
    pub(crate) fn wr_op(&mut self, d: &DInsn, i: usize, size: u8, v: u64) -> Result<(), Fault> {
        match d.k[i] {
            OpK::Mem => self.wr_mem(d, size, v),
            _ => {
                self.wr_reg(d.r[i], v);
                Ok(())
            }
        }
    }

    /// Starts a read-modify-write of operand 0: checks write access first (an RMW faults
    /// as a write) and returns the linear address (for memory) and the current value.
    #[inline(always)]
    pub(crate) fn rmw_read(&mut self, d: &DInsn, size: u8) -> Result<(u64, u64), Fault> {
        if d.k[0] == OpK::Mem {
            let lin = self.mem_lin(d, self.ea(d), size, true)?;
            if (lin & 0xFFF) + u64::from(size) <= 0x1000 {
                let pa = self.translate(lin, Access::Write)?;
                return Ok((lin, self.read_phys(pa, size)));
            }
            self.translate(lin, Access::Write)?;
            self.translate((lin | 0xFFF).wrapping_add(1), Access::Write)?;
            Ok((lin, self.read_lin(lin, size)?))
        } else {
            Ok((0, self.rd_reg(d.r[0])))
        }
    }

    #[inline(always)]
    pub(crate) fn rmw_write(&mut self, d: &DInsn, lin: u64, size: u8, v: u64) -> Result<(), Fault> {
        if d.k[0] == OpK::Mem {
            self.write_lin(lin, size, v)
        } else {
            self.wr_reg(d.r[0], v);
            Ok(())
        }
    }

    /// Stack-pointer width mask.
    #[inline(always)]
    pub(crate) fn sp_mask(&self) -> u64 {
        match self.cpu.stack_size() {
            8 => u64::MAX,
            4 => 0xFFFF_FFFF,
            _ => 0xFFFF,
        }
    }

    #[inline(always)]
    fn set_sp(&mut self, v: u64) {
        let mask = self.sp_mask();
        let sp = &mut self.cpu.gpr[super::cpu::RSP];
        *sp = (*sp & !mask) | (v & mask);
    }

    /// Pushes `size` bytes.
    #[inline(always)]
    pub(crate) fn push(&mut self, size: u8, v: u64) -> Result<(), Fault> {
        let sp = self.cpu.gpr[super::cpu::RSP].wrapping_sub(u64::from(size)) & self.sp_mask();
        let lin = self.lin_addr(super::cpu::SS, sp, size, true)?;
        self.write_lin(lin, size, v)?;
        self.set_sp(sp);
        Ok(())
    }

    /// Pops `size` bytes.
    #[inline(always)]
    pub(crate) fn pop(&mut self, size: u8) -> Result<u64, Fault> {
        let v = self.peek(size, 0)?;
        let sp = self.cpu.gpr[super::cpu::RSP].wrapping_add(u64::from(size));
        self.set_sp(sp);
        Ok(v)
    }

    /// Reads `size` bytes at stack offset `off` from the stack pointer without popping.
    #[inline(always)]
    pub(crate) fn peek(&mut self, size: u8, off: u64) -> Result<u64, Fault> {
        let sp = self.cpu.gpr[super::cpu::RSP].wrapping_add(off) & self.sp_mask();
        let lin = self.lin_addr(super::cpu::SS, sp, size, false)?;
        self.read_lin(lin, size)
    }

    /// Requires CPL 0 for a privileged instruction.
    #[inline]
    pub(crate) fn require_cpl0(&self) -> Result<(), Fault> {
        if self.cpu.cpl != 0 {
            Err(Fault::gp(0))
        } else {
            Ok(())
        }
    }
}

/// Chooses the handler for a decoded instruction and whether it ends its block.
pub fn select(d: &mut DInsn, bitness: u32) {
    let ins = d.ins;
    d.term = !matches!(ins.flow_control(), FlowControl::Next | FlowControl::ConditionalBranch);
    d.side = ins.flow_control() == FlowControl::ConditionalBranch;
    let h: super::decode::Handler = match ins.mnemonic() {
        M::Add => alu::pick::<{ alu::ADD }>(d),
        M::Or => alu::pick::<{ alu::OR }>(d),
        M::Adc => alu::pick::<{ alu::ADC }>(d),
        M::Sbb => alu::pick::<{ alu::SBB }>(d),
        M::And => alu::pick::<{ alu::AND }>(d),
        M::Sub => alu::pick::<{ alu::SUB }>(d),
        M::Xor => alu::pick::<{ alu::XOR }>(d),
        M::Cmp => alu::pick::<{ alu::CMP }>(d),
        M::Test => alu::pick::<{ alu::TEST }>(d),
        M::Inc if d.k[0] == OpK::Reg && d.r[0] >> 4 == 0 => alu::incdec_w::<true, 8>,
        M::Dec if d.k[0] == OpK::Reg && d.r[0] >> 4 == 0 => alu::incdec_w::<false, 8>,
        M::Inc if d.k[0] == OpK::Reg && d.r[0] >> 4 == 1 => alu::incdec_w::<true, 4>,
        M::Dec if d.k[0] == OpK::Reg && d.r[0] >> 4 == 1 => alu::incdec_w::<false, 4>,
        M::Inc if d.k[0] == OpK::Reg => alu::incdec_r::<true>,
        M::Dec if d.k[0] == OpK::Reg => alu::incdec_r::<false>,
        M::Inc => alu::incdec::<true>,
        M::Dec => alu::incdec::<false>,
        M::Neg => alu::neg,
        M::Not => alu::not,
        M::Mul => alu::mul,
        M::Imul => match ins.op_count() {
            1 => alu::imul1,
            _ => alu::imul_n,
        },
        M::Div => alu::div::<false>,
        M::Idiv => alu::div::<true>,
        M::Shl | M::Sal => bits::pick_shift::<{ bits::SHL }>(d),
        M::Shr => bits::pick_shift::<{ bits::SHR }>(d),
        M::Sar => bits::pick_shift::<{ bits::SAR }>(d),
        M::Rol => bits::shift::<{ bits::ROL }>,
        M::Ror => bits::shift::<{ bits::ROR }>,
        M::Rcl => bits::shift::<{ bits::RCL }>,
        M::Rcr => bits::shift::<{ bits::RCR }>,
        M::Shld => bits::shld::<true>,
        M::Shrd => bits::shld::<false>,
        M::Bt => bits::bt::<0>,
        M::Bts => bits::bt::<1>,
        M::Btr => bits::bt::<2>,
        M::Btc => bits::bt::<3>,
        M::Bsf => bits::bsf::<false>,
        M::Bsr => bits::bsf::<true>,
        M::Popcnt => bits::popcnt,
        M::Lzcnt => bits::lzcnt::<true>,
        M::Tzcnt => bits::lzcnt::<false>,
        M::Andn => bits::andn,
        M::Bextr => bits::bextr,
        M::Blsi => bits::blsx::<0>,
        M::Blsr => bits::blsx::<1>,
        M::Blsmsk => bits::blsx::<2>,
        M::Bzhi => bits::bzhi,
        M::Shlx => bits::shiftx::<0>,
        M::Shrx => bits::shiftx::<1>,
        M::Sarx => bits::shiftx::<2>,
        M::Rorx => bits::rorx,
        M::Pdep => bits::pdep::<true>,
        M::Pext => bits::pdep::<false>,
        M::Mulx => alu::mulx,
        M::Adcx => alu::adcx::<false>,
        M::Adox => alu::adcx::<true>,
        M::Bswap => bits::bswap,
        M::Xadd => alu::xadd,
        M::Cmpxchg => alu::cmpxchg,
        M::Cmpxchg8b | M::Cmpxchg16b => alu::cmpxchg_double,
        M::Xchg => data::xchg,
        M::Bound => data::bound,
        M::Mov => data::select_mov(d),
        M::Movzx => data::movzx::<false>,
        M::Movsx | M::Movsxd => data::movzx::<true>,
        M::Movbe => data::movbe,
        M::Lea => data::lea,
        M::Cbw | M::Cwde | M::Cdqe => data::cbw,
        M::Cwd | M::Cdq | M::Cqo => data::cwd,
        M::Cmovo
        | M::Cmovno
        | M::Cmovb
        | M::Cmovae
        | M::Cmove
        | M::Cmovne
        | M::Cmovbe
        | M::Cmova
        | M::Cmovs
        | M::Cmovns
        | M::Cmovp
        | M::Cmovnp
        | M::Cmovl
        | M::Cmovge
        | M::Cmovle
        | M::Cmovg => {
            d.aux = ins.condition_code() as u32 - 1;
            data::cmov
        }
        M::Seto
        | M::Setno
        | M::Setb
        | M::Setae
        | M::Sete
        | M::Setne
        | M::Setbe
        | M::Seta
        | M::Sets
        | M::Setns
        | M::Setp
        | M::Setnp
        | M::Setl
        | M::Setge
        | M::Setle
        | M::Setg => {
            d.aux = ins.condition_code() as u32 - 1;
            data::setcc
        }
        M::Lahf => data::lahf,
        M::Sahf => data::sahf,
        M::Push => {
            d.aux = (-ins.stack_pointer_increment()) as u32;
            data::push
        }
        M::Pop => {
            d.aux = ins.stack_pointer_increment() as u32;
            // POP SS starts an interrupt shadow, which the run loop handles between blocks.
            d.term |= d.k[0] == OpK::Other;
            data::pop
        }
        M::Pushf | M::Pushfd | M::Pushfq => {
            d.aux = (-ins.stack_pointer_increment()) as u32;
            data::pushf
        }
        M::Popf | M::Popfd | M::Popfq => {
            d.aux = ins.stack_pointer_increment() as u32;
            d.term = true;
            data::popf
        }
        M::Pusha | M::Pushad => data::pusha,
        M::Popa | M::Popad => data::popa,
        M::Enter => data::enter,
        M::Leave => data::leave,
        M::Xlatb => data::xlat,
        M::Clc | M::Stc | M::Cmc | M::Cld | M::Std => data::flagop,
        M::Nop
        | M::Lfence
        | M::Mfence
        | M::Sfence
        | M::Prefetchnta
        | M::Prefetcht0
        | M::Prefetcht1
        | M::Prefetcht2
        | M::Prefetchw
        | M::Clflush
        | M::Clflushopt
        | M::Endbr32
        | M::Endbr64 => nop,
        M::Ud0 | M::Ud1 | M::Ud2 | M::INVALID => ud,
        M::Jmp => ctrl::select_jmp(d),
        M::Call => ctrl::select_call(d),
        M::Ret => {
            d.aux = (ins.stack_pointer_increment() as u64).wrapping_sub(d.imm) as u32;
            if ins.op_count() == 0 {
                d.aux = ins.stack_pointer_increment() as u32;
                d.imm = 0;
            } else {
                d.aux = (i64::from(ins.stack_pointer_increment()) - ins.immediate16() as i64) as u32;
                d.imm = u64::from(ins.immediate16());
            }
            ctrl::ret
        }
        M::Retf => {
            d.imm = if ins.op_count() == 0 { 0 } else { u64::from(ins.immediate16()) };
            ctrl::retf
        }
        M::Jo
        | M::Jno
        | M::Jb
        | M::Jae
        | M::Je
        | M::Jne
        | M::Jbe
        | M::Ja
        | M::Js
        | M::Jns
        | M::Jp
        | M::Jnp
        | M::Jl
        | M::Jge
        | M::Jle
        | M::Jg => {
            d.aux = ins.condition_code() as u32 - 1;
            ctrl::jcc
        }
        M::Jcxz | M::Jecxz | M::Jrcxz | M::Loop | M::Loope | M::Loopne => {
            let name = format!("{:?}", ins.code());
            d.aux = if name.ends_with("_RCX") {
                8
            } else if name.ends_with("_ECX") {
                4
            } else {
                2
            };
            ctrl::jcxz_loop
        }
        M::Int | M::Int3 | M::Into | M::Int1 => ctrl::int,
        M::Iret | M::Iretd | M::Iretq => ctrl::iret,
        M::Hlt => system::hlt,
        M::Cli => system::cli,
        M::Sti => {
            d.term = true;
            system::sti
        }
        M::Cpuid => system::cpuid,
        // Instructions that may cause a VM exit in VMX non-root operation end their block, so
        // the exit can leave RIP at the host's entry point.
        M::Pause => system::pause,
        M::Rdpmc | M::Monitor | M::Mwait | M::Getsec => system::vmx_only,
        M::Vmxon => super::vmx::instr::vmxon,
        M::Vmxoff => super::vmx::instr::vmxoff,
        M::Vmclear => super::vmx::instr::vmclear,
        M::Vmptrld => super::vmx::instr::vmptrld,
        M::Vmptrst => super::vmx::instr::vmptrst,
        M::Vmread => super::vmx::instr::vmread,
        M::Vmwrite => super::vmx::instr::vmwrite,
        M::Vmlaunch | M::Vmresume => super::vmx::instr::vmlaunch,
        M::Vmcall => super::vmx::instr::vmcall,
        M::Invept => super::vmx::instr::invept,
        M::Vmfunc => super::vmx::vmfunc::vmfunc,
        M::Invvpid => super::vmx::vpid::invvpid,
        // Instructions that read the cycle count end their block so the count is exact.
        M::Rdtsc => {
            d.term = true;
            system::rdtsc
        }
        M::Rdtscp => {
            d.term = true;
            system::rdtscp
        }
        M::Rdmsr => {
            d.term = true;
            system::rdmsr
        }
        M::Wrmsr => {
            d.term = true;
            system::wrmsr
        }
        M::Xgetbv => system::xgetbv,
        M::Xsetbv => system::xsetbv,
        M::Lgdt | M::Lidt => system::lgdt,
        M::Sgdt | M::Sidt => system::sgdt,
        M::Lldt | M::Ltr => system::lldt_ltr,
        M::Sldt | M::Str => system::sldt_str,
        M::Smsw => system::smsw,
        M::Lmsw => {
            d.term = true;
            system::lmsw
        }
        M::Clts => system::clts,
        M::Invlpg => {
            d.term = true;
            system::invlpg
        }
        M::Invpcid => {
            d.term = true;
            system::invpcid
        }
        M::Wbinvd | M::Invd => system::wbinvd,
        M::In => system::in_,
        M::Out => {
            d.term = true;
            system::out
        }
        M::Swapgs => system::swapgs,
        M::Syscall => system::syscall,
        M::Sysret | M::Sysretq => system::sysret,
        M::Rdpid => system::rdpid,
        M::Lar | M::Lsl => system::lar_lsl,
        M::Verr | M::Verw => system::verr,
        M::Movsb | M::Movsw | M::Movsd | M::Movsq
            if ins.op_count() == 2 && ins.op_kind(0) != iced_x86::OpKind::Register =>
        {
            string::select(d)
        }
        M::Stosb
        | M::Stosw
        | M::Stosd
        | M::Stosq
        | M::Lodsb
        | M::Lodsw
        | M::Lodsd
        | M::Lodsq
        | M::Cmpsb
        | M::Cmpsw
        | M::Cmpsd
        | M::Cmpsq
        | M::Scasb
        | M::Scasw
        | M::Scasd
        | M::Scasq => string::select(d),
        M::Insb | M::Insw | M::Insd | M::Outsb | M::Outsw | M::Outsd => {
            d.term = true;
            string::select(d)
        }
        M::Wait => wait,
        _ => {
            // Ends its block so `cpu.rip` is exact when the #UD is counted and reported.
            d.term = true;
            match fpu_kind(&ins) {
                FpuKind::X87 => x87,
                FpuKind::Simd => simd,
                FpuKind::None => unimpl,
            }
        }
    };
    d.h = h;
    let _ = bitness;
    // Instructions that can change the mode, paging or CS end their block.
    if matches!(ins.code(), Code::Mov_cr_r32 | Code::Mov_cr_r64 | Code::Mov_dr_r32 | Code::Mov_dr_r64)
        || matches!(ins.mnemonic(), M::Xsetbv | M::Lgdt | M::Lidt | M::Ltr | M::Lldt | M::Clts | M::Hlt)
        || is_vmx_exiting(&ins)
    {
        d.term = true;
    }
    // VMREAD and VMWRITE exit only in non-root operation when the shadow VMCS does not serve
    // them: a hypervisor's long runs of them stay in one block.
    if matches!(ins.mnemonic(), M::Vmread | M::Vmwrite) {
        d.term = false;
        d.side = true;
    }
    if d.term {
        d.side = false;
    }
}

/// Instructions that can cause a VM exit (and are not block-ending already): they end
/// their block so an exit can redirect RIP.
fn is_vmx_exiting(ins: &iced_x86::Instruction) -> bool {
    matches!(ins.code(), Code::Mov_r32_cr | Code::Mov_r64_cr | Code::Mov_r32_dr | Code::Mov_r64_dr)
        || matches!(
            ins.mnemonic(),
            M::Cpuid
                | M::Pause
                | M::Rdpmc
                | M::Monitor
                | M::Mwait
                | M::Getsec
                | M::Wbinvd
                | M::Invd
                | M::In
                | M::Vmxon
                | M::Vmxoff
                | M::Vmclear
                | M::Vmptrld
                | M::Vmptrst
                | M::Vmread
                | M::Vmwrite
                | M::Vmlaunch
                | M::Vmresume
                | M::Vmcall
                | M::Invept
                | M::Invvpid
                | M::Vmfunc
        )
}
