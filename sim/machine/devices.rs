//! PC-compatible devices on the I/O port bus: the Bochs 0xE9 console, QEMU's isa-debug-exit,
//! the Bochs shutdown port, fast A20, a 16550 UART transmitter, and a PIC and PIT that accept
//! and ignore programming. Unknown ports read as all ones.

use super::{Machine, StopReason};

/// Device state.
#[derive(Default)]
pub struct Devices {
    /// Bytes the guest wrote to port 0xE9 or the UART, in order.
    pub output: Vec<u8>,
    /// Progress through the string "Shutdown" on port 0x8900.
    shutdown_match: usize,
    port92: u8,
    pic_mask: [u8; 2],
    uart_lcr: u8,
    uart_ier: u8,
    uart_mcr: u8,
    uart_scratch: u8,
    /// When set, output bytes are also copied to the host's stdout as they arrive.
    pub echo: bool,
}

const SHUTDOWN: &[u8] = b"Shutdown";

impl Devices {
    fn emit(&mut self, b: u8) {
        self.output.push(b);
        if self.echo {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(&[b]);
            if b == b'\n' {
                let _ = out.flush();
            }
        }
    }
}

impl Machine {
    /// An IN from `port` of `size` bytes.
    pub fn port_in(&mut self, port: u16, size: u8) -> u64 {
        let dv = &mut self.devices;
        let v: u64 = match port {
            0x92 => u64::from(dv.port92),
            0x21 => u64::from(dv.pic_mask[0]),
            0xA1 => u64::from(dv.pic_mask[1]),
            0xE9 => 0xE9, // Bochs returns 0xE9 to detect the port.
            0x3F8 => 0,
            0x3F9 => u64::from(dv.uart_ier),
            0x3FA => 0x01, // IIR: no interrupt pending.
            0x3FB => u64::from(dv.uart_lcr),
            0x3FC => u64::from(dv.uart_mcr),
            0x3FD => 0x60, // LSR: transmitter empty.
            0x3FE => 0xB0,
            0x3FF => u64::from(dv.uart_scratch),
            _ => u64::MAX,
        };
        v & super::flags::size_mask(size)
    }

    /// An OUT of `size` bytes to `port`.
    pub fn port_out(&mut self, port: u16, size: u8, v: u64) {
        let dv = &mut self.devices;
        match port {
            0xE9 => dv.emit(v as u8),
            0x3F8 if dv.uart_lcr & 0x80 == 0 => dv.emit(v as u8),
            0x3F9 if dv.uart_lcr & 0x80 == 0 => dv.uart_ier = v as u8,
            0x3FB => dv.uart_lcr = v as u8,
            0x3FC => dv.uart_mcr = v as u8,
            0x3FF => dv.uart_scratch = v as u8,
            0xF4 => {
                let code = match size {
                    1 => v & 0xFF,
                    2 => v & 0xFFFF,
                    _ => v & 0xFFFF_FFFF,
                };
                self.stop = Some(StopReason::DebugExit(code as u32));
            }
            0x8900 => {
                let b = v as u8;
                if b == SHUTDOWN[dv.shutdown_match] {
                    dv.shutdown_match += 1;
                    if dv.shutdown_match == SHUTDOWN.len() {
                        dv.shutdown_match = 0;
                        self.stop = Some(StopReason::Shutdown);
                    }
                } else {
                    dv.shutdown_match = usize::from(b == SHUTDOWN[0]);
                }
            }
            0x92 => dv.port92 = (v as u8) & 0x02,
            0x21 => dv.pic_mask[0] = v as u8,
            0xA1 => dv.pic_mask[1] = v as u8,
            // PIC commands, PIT channels and everything else: accepted and ignored.
            _ => {}
        }
    }

    /// The BIOS services vmxsim's boot-sector firmware provides (INT 13h AH=00h/02h only),
    /// taken when the guest executes INT n in real mode and the IVT entry still points at
    /// the firmware stub. Returns whether the interrupt was serviced.
    pub(crate) fn firmware_service(&mut self, vec: u8) -> bool {
        if self.cpu.mode != super::Mode::Real || vec != 0x13 || self.disk.is_none() {
            return false;
        }
        let ivt = self.mem.read::<4>(u64::from(vec) * 4) as u32;
        if ivt != crate::loader::boot::INT13_VECTOR {
            return false;
        }
        let g = &self.cpu.gpr;
        let ah = (g[0] >> 8) as u8;
        let al = g[0] as u8;
        let (ch, cl) = ((g[1] >> 8) as u8, g[1] as u8);
        let (dh, dl) = ((g[2] >> 8) as u8, g[2] as u8);
        let bx = g[3] & 0xFFFF;
        let status: u8 = match ah {
            0x00 => 0,
            0x02 if dl != 0 => 0x01,
            0x02 => {
                let cyl = u64::from(ch) | (u64::from(cl & 0xC0) << 2);
                let sector = u64::from(cl & 0x3F);
                let (heads, spt) = (2u64, 18u64);
                if sector == 0 || sector > spt || u64::from(dh) >= heads || cyl >= 80 {
                    0x04
                } else {
                    let lba = (cyl * heads + u64::from(dh)) * spt + sector - 1;
                    let n = u64::from(al);
                    if lba + n > 2880 || n == 0 {
                        0x04
                    } else {
                        let mut buf = vec![0u8; (n * 512) as usize];
                        if let Some(disk) = &self.disk {
                            let start = (lba * 512) as usize;
                            if start < disk.len() {
                                let end = (start + buf.len()).min(disk.len());
                                buf[..end - start].copy_from_slice(&disk[start..end]);
                            }
                        }
                        let dest = self.cpu.seg[super::cpu::ES].base + bx;
                        if self.mem.write_bytes(dest, &buf) {
                            0
                        } else {
                            0x04
                        }
                    }
                }
            }
            _ => 0x01,
        };
        let st = self.cpu.flags.status();
        let cf = crate::arch::x86::rflags::CF;
        self.cpu.flags.set_explicit(if status == 0 { st & !cf } else { st | cf });
        let ax = if status == 0 && ah == 0x02 { u64::from(al) } else { 0 } | (u64::from(status) << 8);
        self.wr_reg(0x20, ax);
        true
    }
}
