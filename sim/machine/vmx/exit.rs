//! VM exits: saving guest state into the current VMCS, loading host state (SDM "VM Exits"),
//! the MSR-store and MSR-load lists, VMX aborts, and the intercept decisions the
//! interpreter's handlers ask for in VMX non-root operation.

use super::super::cpu::{seg_attr as sa, DtReg, Segment, CS, DS, ES, FS, GS, SS};
use super::super::decode::{DInsn, OpK, NO_REG};
use super::super::{Fault, Machine, StopReason};
use super::VmxEvent;
use crate::arch::exit_reason::reason as r;
use crate::arch::msr::{self, efer};
use crate::arch::vmcs_fields::field as f;
use crate::arch::vmx_ctrl::{activity, entry as en, exit as ex, exit_qual, instr_info as ii, interruptibility as ib};
use crate::arch::vmx_ctrl::{intr_info, pin, proc1 as p1, proc2 as p2, vmx_misc};
use crate::arch::x86::{cr0, rflags, vector};

/// Guest segment fields (selector, base, limit, access rights) in the SDM's order ES..GS.
pub(super) const SEG_FIELDS: [(u32, u32, u32, u32); 6] = [
    (f::GUEST_ES_SELECTOR, f::GUEST_ES_BASE, f::GUEST_ES_LIMIT, f::GUEST_ES_AR_BYTES),
    (f::GUEST_CS_SELECTOR, f::GUEST_CS_BASE, f::GUEST_CS_LIMIT, f::GUEST_CS_AR_BYTES),
    (f::GUEST_SS_SELECTOR, f::GUEST_SS_BASE, f::GUEST_SS_LIMIT, f::GUEST_SS_AR_BYTES),
    (f::GUEST_DS_SELECTOR, f::GUEST_DS_BASE, f::GUEST_DS_LIMIT, f::GUEST_DS_AR_BYTES),
    (f::GUEST_FS_SELECTOR, f::GUEST_FS_BASE, f::GUEST_FS_LIMIT, f::GUEST_FS_AR_BYTES),
    (f::GUEST_GS_SELECTOR, f::GUEST_GS_BASE, f::GUEST_GS_LIMIT, f::GUEST_GS_AR_BYTES),
];
pub(super) const LDTR_FIELDS: (u32, u32, u32, u32) =
    (f::GUEST_LDTR_SELECTOR, f::GUEST_LDTR_BASE, f::GUEST_LDTR_LIMIT, f::GUEST_LDTR_AR_BYTES);
pub(super) const TR_FIELDS: (u32, u32, u32, u32) =
    (f::GUEST_TR_SELECTOR, f::GUEST_TR_BASE, f::GUEST_TR_LIMIT, f::GUEST_TR_AR_BYTES);

impl Machine {
    #[inline]
    pub(crate) fn vmcs(&self, enc: u32) -> u64 {
        self.vmx.get(enc)
    }

    /// The primary processor-based controls of the current VMCS.
    #[inline]
    pub(crate) fn proc1(&self) -> u32 {
        self.vmcs(f::CPU_BASED_VM_EXEC_CONTROL) as u32
    }

    /// The secondary controls in effect (0 unless activated).
    pub(crate) fn proc2(&self) -> u32 {
        if self.proc1() & p1::CPU_BASED_ACTIVATE_SECONDARY_CONTROLS != 0 {
            self.vmcs(f::SECONDARY_VM_EXEC_CONTROL) as u32
        } else {
            0
        }
    }

    /// A VM exit. Callers have already written the exit-information fields specific to the
    /// cause (instruction length and information, interruption information, guest linear
    /// address) and put the guest RIP to save in `self.cpu.rip`. Bit 31 of `reason` marks a
    /// VM-entry failure: guest state is not saved then.
    #[cold]
    #[inline(never)]
    pub fn vm_exit(&mut self, reason: u32, qualification: u64) {
        let vmcs = self.vmx.current;
        let started = self.mcycles;
        self.charge_vm_exit(reason & 0xFFFF, vmcs);
        self.stats.open_exit = Some((reason & 0xFFFF, started));
        self.vmx.set(f::VM_EXIT_REASON, u64::from(reason));
        self.vmx.set(f::EXIT_QUALIFICATION, qualification);
        *self.stats.vm_exits.entry(reason & 0xFFFF).or_insert(0) += 1;
        if reason & 0x8000_0000 == 0 {
            self.save_guest_state();
        }
        self.vmx_event(VmxEvent::Exit { vmcs, reason, qualification });
        self.left_block = true;
        self.vmx.non_root = false;
        self.vmx.ept = false;
        self.vmx.deadline = u64::MAX;
        self.load_host_state();
        if self.stop.is_none() {
            self.exit_msr_lists();
        }
        self.update_events();
    }

    /// A VM exit caused by the instruction `d`, which is the last of its block (so
    /// `self.cpu.rip` is the next instruction's address and the instruction was counted).
    #[cold]
    pub(crate) fn exit_insn(&mut self, d: &DInsn, reason: u32, qualification: u64) {
        self.exit_insn_info(d, reason, qualification, 0);
    }

    #[cold]
    pub(crate) fn exit_insn_info(&mut self, d: &DInsn, reason: u32, qualification: u64, info: u32) {
        let rip = self.cpu.rip.wrapping_sub(u64::from(d.len)) & self.cpu.ip_mask();
        self.cpu.rip = rip;
        self.retire_undo(1, u64::from(d.cost));
        self.vmx.set(f::VM_EXIT_INSTRUCTION_LEN, u64::from(d.len));
        self.vmx.set(f::VMX_INSTRUCTION_INFO, u64::from(info));
        self.vmx.set(f::VM_EXIT_INTR_INFO, 0);
        self.vmx.set(f::IDT_VECTORING_INFO_FIELD, 0);
        self.vm_exit(reason, qualification);
    }

    /// VMX-instruction information and qualification (the displacement) for an exit caused
    /// by a VMX instruction, INVEPT/INVVPID/INVPCID or a descriptor-table instruction.
    pub(crate) fn exit_vmx_insn(&mut self, d: &DInsn, reason: u32) {
        let mut info = 0u32;
        let mut qual = 0u64;
        let mem = d.k.contains(&OpK::Mem);
        let (rm_i, reg_i) = match reason {
            r::VMREAD => (0, 1),
            _ => (1, 0),
        };
        if mem {
            let m = &d.m;
            info |= u32::from(m.scale) & ii::SCALING_MASK;
            let asz = match m.amask {
                0xFFFF => 0,
                0xFFFF_FFFF => 1,
                _ => 2,
            };
            info |= asz << ii::ADDR_SIZE_SHIFT;
            info |= u32::from(m.seg) << ii::SEGMENT_SHIFT;
            info |= if m.index == NO_REG { ii::INDEX_INVALID } else { u32::from(m.index) << ii::INDEX_SHIFT };
            info |= if m.base == NO_REG { ii::BASE_INVALID } else { u32::from(m.base) << ii::BASE_SHIFT };
            qual = if d.ins.is_ip_rel_memory_operand() {
                d.ins.ip_rel_memory_address().wrapping_sub(d.ins.next_ip())
            } else {
                d.ins.memory_displacement64()
            };
            if self.cpu.mode.bitness() != 64 {
                qual = u64::from(qual as u32);
            }
        } else if matches!(reason, r::VMREAD | r::VMWRITE) {
            info |= ii::MEM_REG | (u32::from(d.r[rm_i] & 15) << ii::REG1_SHIFT);
        }
        if matches!(reason, r::VMREAD | r::VMWRITE | r::INVEPT | r::INVVPID | r::INVPCID) {
            info |= u32::from(d.r[reg_i] & 15) << ii::REG2_SHIFT;
        }
        self.exit_insn_info(d, reason, qual, info);
    }

    fn save_guest_state(&mut self) {
        let nmi = self.nmi_blocking_to_save();
        let c = self.cpu.clone();
        let v = &mut self.vmx;
        v.set(f::GUEST_CR0, c.cr0);
        v.set(f::GUEST_CR3, c.cr3);
        v.set(f::GUEST_CR4, c.cr4);
        let exitc = v.get(f::VM_EXIT_CONTROLS) as u32;
        if exitc & ex::VM_EXIT_SAVE_DEBUG_CONTROLS != 0 {
            v.set(f::GUEST_DR7, c.dr[7]);
            v.set(f::GUEST_IA32_DEBUGCTL, c.msr.debugctl);
        }
        v.set(f::GUEST_RSP, c.gpr[4]);
        v.set(f::GUEST_RIP, c.rip);
        v.set(f::GUEST_RFLAGS, c.rflags());
        for (i, s) in c.seg.iter().enumerate() {
            let (sel, base, lim, ar) = SEG_FIELDS[i];
            save_seg(v, s, sel, base, lim, ar);
        }
        let (sel, base, lim, ar) = LDTR_FIELDS;
        save_seg(v, &c.ldtr, sel, base, lim, ar);
        let (sel, base, lim, ar) = TR_FIELDS;
        save_seg(v, &c.tr, sel, base, lim, ar);
        v.set(f::GUEST_GDTR_BASE, c.gdtr.base);
        v.set(f::GUEST_GDTR_LIMIT, u64::from(c.gdtr.limit));
        v.set(f::GUEST_IDTR_BASE, c.idtr.base);
        v.set(f::GUEST_IDTR_LIMIT, u64::from(c.idtr.limit));
        v.set(f::GUEST_SYSENTER_CS, c.msr.sysenter_cs);
        v.set(f::GUEST_SYSENTER_ESP, c.msr.sysenter_esp);
        v.set(f::GUEST_SYSENTER_EIP, c.msr.sysenter_eip);
        // Blocking by STI / MOV SS: the shadow lasts for the one instruction after them.
        let mut intr = nmi;
        if c.movss_shadow {
            intr |= ib::GUEST_INTR_STATE_MOV_SS;
        } else if c.interrupt_shadow {
            intr |= ib::GUEST_INTR_STATE_STI;
        }
        v.set(f::GUEST_INTERRUPTIBILITY_INFO, u64::from(intr));
        let act = if c.halted { activity::GUEST_ACTIVITY_HLT } else { activity::GUEST_ACTIVITY_ACTIVE };
        v.set(f::GUEST_ACTIVITY_STATE, u64::from(act));
        v.set(f::GUEST_PENDING_DBG_EXCEPTIONS, 0);
        if exitc & ex::VM_EXIT_SAVE_IA32_PAT != 0 {
            v.set(f::GUEST_IA32_PAT, c.msr.pat);
        }
        if exitc & ex::VM_EXIT_SAVE_IA32_EFER != 0 {
            v.set(f::GUEST_IA32_EFER, c.efer);
        }
        // The "IA-32e mode guest" entry control reflects EFER.LMA (IA32_VMX_MISC bit 5).
        let entryc = v.get(f::VM_ENTRY_CONTROLS);
        let lma = if c.efer & efer::LMA != 0 { u64::from(en::VM_ENTRY_IA32E_MODE) } else { 0 };
        v.set(f::VM_ENTRY_CONTROLS, (entryc & !u64::from(en::VM_ENTRY_IA32E_MODE)) | lma);
        if exitc & ex::VM_EXIT_SAVE_VMX_PREEMPTION_TIMER != 0 {
            let rate = vmx_misc::preemption_timer_rate(v.caps.misc());
            let left = if v.get(f::PIN_BASED_VM_EXEC_CONTROL) as u32 & pin::PIN_BASED_VMX_PREEMPTION_TIMER != 0 {
                (v.deadline.saturating_sub(self.mcycles) / 1000) >> rate
            } else {
                0
            };
            v.set(f::VMX_PREEMPTION_TIMER_VALUE, left.min(0xFFFF_FFFF));
        }
        // Entry-injected events are consumed.
        let ii = v.get(f::VM_ENTRY_INTR_INFO_FIELD);
        v.set(f::VM_ENTRY_INTR_INFO_FIELD, ii & !u64::from(intr_info::VALID));
    }

    fn load_host_state(&mut self) {
        let vm = &self.vmx;
        let g = |e: u32| vm.get(e);
        let exitc = g(f::VM_EXIT_CONTROLS) as u32;
        let long = exitc & ex::VM_EXIT_HOST_ADDR_SPACE_SIZE != 0;
        let host_cr0 = g(f::HOST_CR0);
        let host_cr3 = g(f::HOST_CR3);
        let host_cr4 = g(f::HOST_CR4);
        let c = &mut self.cpu;
        c.cr0 = host_cr0 | cr0::ET;
        c.cr3 = host_cr3;
        c.cr4 = host_cr4;
        c.dr[7] = 0x400;
        c.msr.debugctl = 0;
        c.msr.sysenter_cs = g(f::HOST_IA32_SYSENTER_CS);
        c.msr.sysenter_esp = g(f::HOST_IA32_SYSENTER_ESP);
        c.msr.sysenter_eip = g(f::HOST_IA32_SYSENTER_EIP);
        if exitc & ex::VM_EXIT_LOAD_IA32_EFER != 0 {
            c.efer = g(f::HOST_IA32_EFER);
        }
        if long {
            c.efer |= efer::LMA | efer::LME;
        } else {
            c.efer &= !(efer::LMA | efer::LME);
        }
        if exitc & ex::VM_EXIT_LOAD_IA32_PAT != 0 {
            c.msr.pat = g(f::HOST_IA32_PAT);
        }
        let cs_sel = g(f::HOST_CS_SELECTOR) as u16;
        let cs_attr = 0xB | sa::S | sa::P | sa::G | if long { sa::L } else { sa::DB };
        c.seg[CS] = Segment { selector: cs_sel, base: 0, limit: 0xFFFF_FFFF, attr: cs_attr };
        for (s, fsel) in [
            (ES, f::HOST_ES_SELECTOR),
            (SS, f::HOST_SS_SELECTOR),
            (DS, f::HOST_DS_SELECTOR),
            (FS, f::HOST_FS_SELECTOR),
            (GS, f::HOST_GS_SELECTOR),
        ] {
            let sel = g(fsel) as u16;
            let attr = if sel == 0 {
                sa::UNUSABLE | 0x3 | sa::S | sa::DB | sa::G
            } else {
                0x3 | sa::S | sa::P | sa::DB | sa::G
            };
            c.seg[s] = Segment { selector: sel, base: 0, limit: 0xFFFF_FFFF, attr };
        }
        // SS keeps DPL 0 even when unusable; FS/GS bases come from the base fields.
        c.seg[FS].base = g(f::HOST_FS_BASE);
        c.seg[GS].base = g(f::HOST_GS_BASE);
        c.tr = Segment {
            selector: g(f::HOST_TR_SELECTOR) as u16,
            base: g(f::HOST_TR_BASE),
            limit: 0x67,
            attr: 0xB | sa::P,
        };
        c.ldtr = Segment { selector: 0, base: 0, limit: 0, attr: sa::UNUSABLE };
        c.gdtr = DtReg { base: g(f::HOST_GDTR_BASE), limit: 0xFFFF };
        c.idtr = DtReg { base: g(f::HOST_IDTR_BASE), limit: 0xFFFF };
        c.gpr[4] = g(f::HOST_RSP);
        c.rip = g(f::HOST_RIP);
        c.set_rflags(rflags::FIXED1);
        c.cpl = 0;
        c.interrupt_shadow = false;
        c.movss_shadow = false;
        c.halted = false;
        c.update_mode();
        self.tlb_vm_exit();
    }

    fn exit_msr_lists(&mut self) {
        let n = self.vmcs(f::VM_EXIT_MSR_STORE_COUNT);
        let base = self.vmcs(f::VM_EXIT_MSR_STORE_ADDR);
        for i in 0..n {
            let e = base + 16 * i;
            let idx = self.mem.read::<4>(e) as u32;
            match self.read_msr(idx) {
                Ok(v) if idx >> 8 != 0x8 && idx != 0x9E => self.mem.write::<8>(e + 8, v),
                _ => return self.vmx_abort(2, &format!("VM-exit MSR-store entry {i} (MSR {idx:#x})")),
            }
        }
        let n = self.vmcs(f::VM_EXIT_MSR_LOAD_COUNT);
        let base = self.vmcs(f::VM_EXIT_MSR_LOAD_ADDR);
        for i in 0..n {
            let e = base + 16 * i;
            let idx = self.mem.read::<4>(e) as u32;
            let rsvd = self.mem.read::<4>(e + 4);
            let v = self.mem.read::<8>(e + 8);
            let bad = rsvd != 0 || matches!(idx, msr::IA32_FS_BASE | msr::IA32_GS_BASE) || idx >> 8 == 0x8;
            if bad || self.write_msr(idx, v).is_err() {
                return self.vmx_abort(4, &format!("VM-exit MSR-load entry {i} (MSR {idx:#x})"));
            }
        }
    }

    /// A VMX abort: the indicator is written to the VMCS region and the logical processor
    /// shuts down, which stops the run.
    #[cold]
    pub(crate) fn vmx_abort(&mut self, indicator: u32, why: &str) {
        let vmcs = self.vmx.current;
        if vmcs != u64::MAX {
            self.mem.write::<4>(vmcs + 4, u64::from(indicator));
        }
        self.stop = Some(StopReason::VmxAbort(format!(
            "VMX abort {indicator} with VMCS {vmcs:#x}: {why} failed while loading host state"
        )));
    }

    // ---- intercept decisions (non-root operation only) ----------------------------

    /// Exits for the exception `f` if the exception bitmap (and, for #PF, the error-code
    /// mask and match) says so. Returns whether it exited. `self.cpu.rip` is the faulting
    /// instruction; `chain` is the IDT-vectoring information (and error code) of the event
    /// being delivered when `f` occurred, if any; `iret_unblocked` says the fault is an
    /// IRET's that unblocked NMIs (bit 12).
    #[cold]
    pub(crate) fn vmx_exception_exit(
        &mut self,
        fault: Fault,
        chain: Option<(u32, Option<u32>)>,
        iret_unblocked: bool,
    ) -> bool {
        let v = fault.vector;
        let bitmap = self.vmcs(f::EXCEPTION_BITMAP) as u32;
        let mut hit = bitmap >> v & 1 != 0;
        if v == vector::PF {
            let mask = self.vmcs(f::PAGE_FAULT_ERROR_CODE_MASK) as u32;
            let matchv = self.vmcs(f::PAGE_FAULT_ERROR_CODE_MATCH) as u32;
            let m = fault.error().unwrap_or(0) & mask == matchv;
            hit = hit == m;
        }
        if v >= 32 || !hit {
            return false;
        }
        let qual = if v == vector::PF {
            let addr = self.cpu.cr2;
            self.cpu.cr2 = self.vmx.pf_old_cr2;
            addr
        } else {
            0
        };
        let mut info = u32::from(v) | (intr_info::TYPE_HARD_EXCEPTION << intr_info::TYPE_SHIFT) | intr_info::VALID;
        // Bit 12 is undefined with IDT-vectoring information and for #DF; 0 there.
        if iret_unblocked && chain.is_none() && v != vector::DF {
            info |= intr_info::NMI_UNBLOCKING;
        }
        if let Some(e) = fault.error() {
            info |= intr_info::DELIVER_CODE;
            self.vmx.set(f::VM_EXIT_INTR_ERROR_CODE, u64::from(e));
        }
        self.vmx.set(f::VM_EXIT_INTR_INFO, u64::from(info));
        let idt = chain.map_or(0, |(i, err)| {
            if let Some(e) = err {
                self.vmx.set(f::IDT_VECTORING_ERROR_CODE, u64::from(e));
            }
            i
        });
        self.vmx.set(f::IDT_VECTORING_INFO_FIELD, u64::from(idt));
        self.vmx.set(f::VM_EXIT_INSTRUCTION_LEN, 0);
        self.vm_exit(r::EXCEPTION_NMI, qual);
        true
    }

    /// INT3 / INTO / INT1 in non-root operation: the exception bitmap decides (software
    /// exceptions are type 6, INT1 is a privileged software exception, type 5).
    #[cold]
    pub(crate) fn vmx_soft_exception_exit(&mut self, d: &DInsn, vec: u8, privileged: bool) -> bool {
        let bitmap = self.vmcs(f::EXCEPTION_BITMAP) as u32;
        if bitmap >> vec & 1 == 0 {
            return false;
        }
        let ty = if privileged { intr_info::TYPE_PRIV_SW_EXCEPTION } else { intr_info::TYPE_SOFT_EXCEPTION };
        let info = u32::from(vec) | (ty << intr_info::TYPE_SHIFT) | intr_info::VALID;
        let rip = self.cpu.rip.wrapping_sub(u64::from(d.len)) & self.cpu.ip_mask();
        self.cpu.rip = rip;
        self.retire_undo(1, u64::from(d.cost));
        self.vmx.set(f::VM_EXIT_INSTRUCTION_LEN, u64::from(d.len));
        self.vmx.set(f::VM_EXIT_INTR_INFO, u64::from(info));
        self.vmx.set(f::IDT_VECTORING_INFO_FIELD, 0);
        self.vm_exit(r::EXCEPTION_NMI, 0);
        true
    }

    /// A triple fault in the guest exits (reason 2) instead of shutting down.
    #[cold]
    pub(crate) fn vmx_triple_fault_exit(&mut self) {
        self.vmx.set(f::VM_EXIT_INTR_INFO, 0);
        self.vmx.set(f::IDT_VECTORING_INFO_FIELD, 0);
        self.vm_exit(r::TRIPLE_FAULT, 0);
    }

    /// The VMX-preemption timer expired: exit before the next instruction.
    #[cold]
    pub(crate) fn vmx_timer_exit(&mut self) {
        self.vmx.set(f::VM_EXIT_INTR_INFO, 0);
        self.vmx.set(f::IDT_VECTORING_INFO_FIELD, 0);
        self.vmx.set(f::VMX_PREEMPTION_TIMER_VALUE, 0);
        self.vm_exit(r::PREEMPTION_TIMER, 0);
    }

    /// Whether the port range `port..port+size` is intercepted.
    fn io_intercepted(&self, port: u16, size: u8) -> bool {
        let p = self.proc1();
        if p & p1::CPU_BASED_USE_IO_BITMAPS == 0 {
            return p & p1::CPU_BASED_UNCOND_IO_EXITING != 0;
        }
        (0..u32::from(size)).any(|i| {
            let port = u32::from(port) + i;
            if port > 0xFFFF {
                return true; // wraps around the I/O space
            }
            let (bm, bit) = if port < 0x8000 { (f::IO_BITMAP_A, port) } else { (f::IO_BITMAP_B, port - 0x8000) };
            let pa = self.vmcs(bm) + u64::from(bit / 8);
            self.mem.read_u8(pa) >> (bit % 8) & 1 != 0
        })
    }

    /// I/O instruction exit decision; returns whether the instruction exited.
    #[cold]
    pub(crate) fn vmx_io(&mut self, d: &DInsn, port: u16, size: u8, input: bool, string: bool) -> bool {
        if !self.io_intercepted(port, size) {
            return false;
        }
        use exit_qual::io;
        let mut q = u64::from(size - 1) | (u64::from(port) << io::PORT_SHIFT);
        if input {
            q |= io::DIRECTION_IN;
        }
        if string {
            q |= io::STRING;
            if d.ins.has_rep_prefix() {
                q |= io::REP;
            }
        }
        if d.k.contains(&OpK::Imm) {
            q |= io::OPERAND_IMMEDIATE;
        }
        let mut info = 0;
        if string {
            // INS/OUTS information (IA32_VMX_BASIC bit 54): address size and, for OUTS,
            // the source segment; the guest-linear address of the memory operand.
            let asz = match d.m.amask {
                0xFFFF => 0,
                0xFFFF_FFFF => 1,
                _ => 2,
            };
            let (seg, off) =
                if input { (super::super::cpu::ES, self.cpu.gpr[7]) } else { (d.m.seg as usize, self.cpu.gpr[6]) };
            info = (asz << ii::ADDR_SIZE_SHIFT) | ((seg as u32) << ii::SEGMENT_SHIFT);
            let off = off & d.m.amask;
            let lin = self.lin_addr(seg, off, size, input).unwrap_or(self.cpu.seg[seg].base.wrapping_add(off));
            self.vmx.set(f::GUEST_LINEAR_ADDRESS, lin);
        }
        self.exit_insn_info(d, r::IO_INSTRUCTION, q, info);
        true
    }

    /// RDMSR/WRMSR exit decision through the MSR bitmaps.
    #[cold]
    pub(crate) fn vmx_msr(&mut self, d: &DInsn, index: u32, write: bool) -> bool {
        let exits = if self.proc1() & p1::CPU_BASED_USE_MSR_BITMAPS == 0 {
            true
        } else {
            let off = match index {
                0..=0x1FFF => Some(index),
                0xC000_0000..=0xC000_1FFF => Some(index - 0xC000_0000 + 0x2000 * 4),
                _ => None,
            };
            match off {
                None => true,
                Some(o) => {
                    // Read-low 0, read-high 1024, write-low 2048, write-high 3072 bytes.
                    let (byte, bit) = if o >= 0x8000 { (1024 + (o - 0x8000) / 8, o % 8) } else { (o / 8, o % 8) };
                    let byte = byte + if write { 2048 } else { 0 };
                    let pa = self.vmcs(f::MSR_BITMAP) + u64::from(byte);
                    self.mem.read_u8(pa) >> bit & 1 != 0
                }
            }
        };
        if exits {
            self.exit_insn(d, if write { r::MSR_WRITE } else { r::MSR_READ }, 0);
        }
        exits
    }

    /// Exits with `reason` if the primary control `ctl` is set.
    #[cold]
    pub(crate) fn vmx_ctl_exit(&mut self, d: &DInsn, ctl: u32, reason: u32, qual: u64) -> bool {
        if self.proc1() & ctl != 0 {
            self.exit_insn(d, reason, qual);
            true
        } else {
            false
        }
    }

    /// Exits with `reason` if the secondary control `ctl` is set.
    #[cold]
    pub(crate) fn vmx_ctl2_exit(&mut self, d: &DInsn, ctl: u32, reason: u32) -> bool {
        if self.proc2() & ctl != 0 {
            self.exit_insn(d, reason, 0);
            true
        } else {
            false
        }
    }

    /// Whether a secondary "enable" control is clear (the instruction then raises #UD).
    pub(crate) fn vmx_disabled2(&self, ctl: u32) -> bool {
        self.proc2() & ctl == 0
    }

    /// RDTSC/RDTSCP in non-root operation: exit, or the TSC with the offset applied.
    #[cold]
    pub(crate) fn vmx_rdtsc(&mut self, d: &DInsn, reason: u32) -> Option<u64> {
        let p = self.proc1();
        if p & p1::CPU_BASED_RDTSC_EXITING != 0 {
            self.exit_insn(d, reason, 0);
            return None;
        }
        let t = self.tsc();
        Some(if p & p1::CPU_BASED_USE_TSC_OFFSETTING != 0 { t.wrapping_add(self.vmcs(f::TSC_OFFSET)) } else { t })
    }

    /// MOV to CR0/CR4 in non-root operation: exits when a bit owned by the host (set in the
    /// guest/host mask) would differ from the read shadow; otherwise the value to write, with
    /// host-owned bits kept.
    #[cold]
    pub(crate) fn vmx_cr_write(&mut self, d: &DInsn, cr: u8, gpr: u8, v: u64) -> Option<u64> {
        let (mask, shadow, cur) = match cr {
            0 => (self.vmcs(f::CR0_GUEST_HOST_MASK), self.vmcs(f::CR0_READ_SHADOW), self.cpu.cr0),
            _ => (self.vmcs(f::CR4_GUEST_HOST_MASK), self.vmcs(f::CR4_READ_SHADOW), self.cpu.cr4),
        };
        if (v ^ shadow) & mask != 0 {
            let q = u64::from(cr) | (u64::from(gpr & 15) << exit_qual::cr::GPR_SHIFT);
            self.exit_insn(d, r::CR_ACCESS, q);
            return None;
        }
        Some((v & !mask) | (cur & mask))
    }

    /// MOV from CR0/CR4 in non-root operation: host-owned bits read from the shadow.
    pub(crate) fn vmx_cr_read(&self, cr: u8, v: u64) -> u64 {
        let (mask, shadow) = match cr {
            0 => (self.vmcs(f::CR0_GUEST_HOST_MASK), self.vmcs(f::CR0_READ_SHADOW)),
            _ => (self.vmcs(f::CR4_GUEST_HOST_MASK), self.vmcs(f::CR4_READ_SHADOW)),
        };
        (v & !mask) | (shadow & mask)
    }

    /// MOV to/from CR3 and CR8 in non-root operation.
    #[cold]
    pub(crate) fn vmx_cr38(&mut self, d: &DInsn, cr: u8, gpr: u8, to_cr: bool, v: u64) -> bool {
        let p = self.proc1();
        let exits = match (cr, to_cr) {
            (3, true) => {
                p & p1::CPU_BASED_CR3_LOAD_EXITING != 0 && {
                    let n = self.vmcs(f::CR3_TARGET_COUNT).min(4) as u32;
                    !(0..n).any(|i| self.vmcs(f::CR3_TARGET_VALUE0 + 2 * i) == v)
                }
            }
            (3, false) => p & p1::CPU_BASED_CR3_STORE_EXITING != 0,
            (8, true) => p & p1::CPU_BASED_CR8_LOAD_EXITING != 0,
            (8, false) => p & p1::CPU_BASED_CR8_STORE_EXITING != 0,
            _ => false,
        };
        if exits {
            let ty = if to_cr { exit_qual::cr::TYPE_MOV_TO_CR } else { exit_qual::cr::TYPE_MOV_FROM_CR };
            let q = u64::from(cr)
                | (ty << exit_qual::cr::ACCESS_TYPE_SHIFT)
                | (u64::from(gpr & 15) << exit_qual::cr::GPR_SHIFT);
            self.exit_insn(d, r::CR_ACCESS, q);
        }
        exits
    }

    /// CLTS in non-root operation: exits when CR0.TS is host-owned and set in the shadow.
    #[cold]
    pub(crate) fn vmx_clts(&mut self, d: &DInsn) -> Option<bool> {
        let mask = self.vmcs(f::CR0_GUEST_HOST_MASK);
        let shadow = self.vmcs(f::CR0_READ_SHADOW);
        if mask & cr0::TS != 0 && shadow & cr0::TS != 0 {
            self.exit_insn(d, r::CR_ACCESS, exit_qual::cr::TYPE_CLTS << exit_qual::cr::ACCESS_TYPE_SHIFT);
            return None;
        }
        // A host-owned TS is left alone.
        Some(mask & cr0::TS == 0)
    }

    /// LMSW in non-root operation; returns the new CR0 or `None` after an exit.
    #[cold]
    pub(crate) fn vmx_lmsw(&mut self, d: &DInsn, src: u64, new: u64) -> Option<u64> {
        let mask = self.vmcs(f::CR0_GUEST_HOST_MASK);
        let shadow = self.vmcs(f::CR0_READ_SHADOW);
        let low = 0xF & mask;
        // Only bits 3:0 of the source matter; the qualification reports all 16.
        let pe_set = mask & cr0::PE != 0 && shadow & cr0::PE == 0 && src & cr0::PE != 0;
        if pe_set || (src ^ shadow) & low & !cr0::PE & 0xF != 0 {
            use exit_qual::cr as q;
            let mut qual = (q::TYPE_LMSW << q::ACCESS_TYPE_SHIFT) | ((src & 0xFFFF) << q::LMSW_SOURCE_SHIFT);
            if d.k[0] == OpK::Mem {
                qual |= q::LMSW_MEMORY_OPERAND;
            }
            self.exit_insn(d, r::CR_ACCESS, qual);
            return None;
        }
        Some((new & !low) | (self.cpu.cr0 & low))
    }

    /// MOV DR in non-root operation.
    #[cold]
    pub(crate) fn vmx_mov_dr(&mut self, d: &DInsn, dr: u8, gpr: u8, from_dr: bool) -> bool {
        if self.proc1() & p1::CPU_BASED_MOV_DR_EXITING == 0 {
            return false;
        }
        use exit_qual::dr as q;
        let mut qual = u64::from(dr & 7) | (u64::from(gpr & 15) << q::GPR_SHIFT);
        if from_dr {
            qual |= q::DIRECTION_FROM_DR;
        }
        self.exit_insn(d, r::DR_ACCESS, qual);
        true
    }

    /// INVLPG in non-root operation (qualification: the linear address).
    #[cold]
    pub(crate) fn vmx_invlpg(&mut self, d: &DInsn, lin: u64) -> bool {
        if self.proc1() & p1::CPU_BASED_INVLPG_EXITING == 0 {
            return false;
        }
        self.exit_insn(d, r::INVLPG, lin);
        true
    }

    /// INVPCID in non-root operation: #UD unless enabled; exits with INVLPG exiting.
    #[cold]
    pub(crate) fn vmx_invpcid(&mut self, d: &DInsn) -> Result<bool, Fault> {
        if self.vmx_disabled2(p2::SECONDARY_EXEC_ENABLE_INVPCID) {
            return Err(Fault::ud());
        }
        if self.proc1() & p1::CPU_BASED_INVLPG_EXITING != 0 {
            self.exit_vmx_insn(d, r::INVPCID);
            return Ok(true);
        }
        Ok(false)
    }
}

/// The IDT-vectoring information (and error code) of an exception being delivered.
pub(crate) fn exception_vectoring(c: Fault) -> (u32, Option<u32>) {
    let mut i = u32::from(c.vector) | (intr_info::TYPE_HARD_EXCEPTION << intr_info::TYPE_SHIFT) | intr_info::VALID;
    if c.error().is_some() {
        i |= intr_info::DELIVER_CODE;
    }
    (i, c.error())
}

fn save_seg(v: &mut super::Vmx, s: &Segment, sel: u32, base: u32, lim: u32, ar: u32) {
    v.set(sel, u64::from(s.selector));
    v.set(base, s.base);
    v.set(lim, u64::from(s.limit));
    let a = if s.attr & sa::UNUSABLE != 0 { sa::UNUSABLE | (s.attr & 0xFF) } else { s.attr & 0xF0FF };
    v.set(ar, u64::from(a));
}
