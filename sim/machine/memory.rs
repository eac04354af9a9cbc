//! Guest-physical memory: a flat byte array plus, per page, a mask of the 64-byte lines that
//! hold decoded code, so a store into decoded code invalidates the decoded-block cache
//! (self-modifying code stays correct at the cost of one load and test per store) while
//! stores to data that shares a page with code — common in small images and hypervisor
//! stubs — cost nothing more.

/// Page size used for code tracking and paging.
pub const PAGE_SHIFT: u64 = 12;
pub const PAGE_SIZE: u64 = 1 << PAGE_SHIFT;

pub struct PhysMem {
    ram: Vec<u8>,
    /// Per page, bit i set when bytes [64i, 64i+64) hold code of a cached decoded block.
    code_lines: Vec<u64>,
    /// Pages written while marked as code; drained by the block cache.
    pub dirty_code: Vec<u64>,
}

impl PhysMem {
    pub fn new(size: usize) -> Self {
        let size = size.next_multiple_of(PAGE_SIZE as usize);
        PhysMem { ram: vec![0; size], code_lines: vec![0; size >> PAGE_SHIFT], dirty_code: Vec::new() }
    }

    pub fn size(&self) -> u64 {
        self.ram.len() as u64
    }

    /// Whether `[pa, pa+len)` lies in RAM.
    #[inline(always)]
    pub fn in_ram(&self, pa: u64, len: u64) -> bool {
        pa.checked_add(len).is_some_and(|end| end <= self.ram.len() as u64)
    }

    /// Reads `N` bytes little-endian; outside RAM reads as all ones (open bus).
    #[inline(always)]
    pub fn read<const N: usize>(&self, pa: u64) -> u64 {
        if let Some(b) = self.ram.get(pa as usize..pa as usize + N) {
            let mut buf = [0u8; 8];
            buf[..N].copy_from_slice(b);
            u64::from_le_bytes(buf)
        } else {
            let mut v = 0u64;
            for i in 0..N as u64 {
                v |= u64::from(self.read_u8(pa.wrapping_add(i))) << (8 * i);
            }
            v
        }
    }

    #[inline(always)]
    pub fn read_u8(&self, pa: u64) -> u8 {
        self.ram.get(pa as usize).copied().unwrap_or(0xFF)
    }

    /// Writes `N` bytes little-endian; writes outside RAM are dropped.
    #[inline(always)]
    pub fn write<const N: usize>(&mut self, pa: u64, v: u64) {
        let p = pa as usize;
        if let Some(b) = self.ram.get_mut(p..p + N) {
            b.copy_from_slice(&v.to_le_bytes()[..N]);
            let pg = p >> PAGE_SHIFT;
            let lines = self.code_lines[pg];
            if lines != 0 {
                self.check_code_write(p, N);
            }
            if N > 1 && (p + N - 1) >> PAGE_SHIFT != pg && self.code_lines[pg + 1] != 0 {
                self.check_code_write(p, N);
            }
        } else {
            for i in 0..N as u64 {
                self.write_u8(pa.wrapping_add(i), (v >> (8 * i)) as u8);
            }
        }
    }

    #[inline(always)]
    pub fn write_u8(&mut self, pa: u64, v: u8) {
        let p = pa as usize;
        if let Some(b) = self.ram.get_mut(p) {
            *b = v;
            if self.code_lines[p >> PAGE_SHIFT] != 0 {
                self.check_code_write(p, 1);
            }
        }
    }

    /// A store of `len` bytes at `p` touched a page with code: if it hit a code line, queue
    /// the page so its decoded blocks are dropped.
    #[inline(never)]
    fn check_code_write(&mut self, p: usize, len: usize) {
        let (first, last) = (p >> 6, (p + len - 1) >> 6);
        for line in first..=last {
            let pg = line >> 6;
            if pg < self.code_lines.len() && self.code_lines[pg] >> (line & 63) & 1 != 0 {
                self.code_lines[pg] = 0;
                self.dirty_code.push(pg as u64);
            }
        }
    }

    /// Marks `[pa, pa+len)` as holding decoded code (within one page).
    pub fn mark_code(&mut self, pa: u64, len: u64) {
        let pg = (pa >> PAGE_SHIFT) as usize;
        let Some(c) = self.code_lines.get_mut(pg) else { return };
        let first = (pa & 0xFFF) >> 6;
        let last = ((pa & 0xFFF) + len.max(1) - 1).min(0xFFF) >> 6;
        for line in first..=last {
            *c |= 1 << line;
        }
    }

    /// A byte slice of RAM, for loaders, decoding and bulk copies.
    pub fn slice(&self, pa: u64, len: usize) -> Option<&[u8]> {
        self.ram.get(pa as usize..(pa as usize).checked_add(len)?)
    }

    /// Fills `[pa, pa+len)` (in RAM) with repetitions of `pattern`, honouring code tracking
    /// (REP STOS).
    pub fn fill(&mut self, pa: u64, pattern: &[u8], len: usize) {
        let p = pa as usize;
        let dst = &mut self.ram[p..p + len];
        if pattern.iter().all(|b| *b == pattern[0]) {
            dst.fill(pattern[0]);
        } else {
            // `len` is a whole number of elements.
            for chunk in dst.chunks_exact_mut(pattern.len()) {
                chunk.copy_from_slice(pattern);
            }
        }
        if len != 0 {
            self.check_code_write(p, len);
        }
    }

    /// Copies `len` bytes between non-overlapping ranges in RAM, honouring code tracking
    /// (REP MOVS).
    pub fn copy_within(&mut self, src: u64, dst: u64, len: usize) {
        let (s, d) = (src as usize, dst as usize);
        self.ram.copy_within(s..s + len, d);
        if len != 0 {
            self.check_code_write(d, len);
        }
    }

    /// Copies bytes into RAM (loaders, DMA-like firmware services), honouring code tracking.
    pub fn write_bytes(&mut self, pa: u64, bytes: &[u8]) -> bool {
        if !self.in_ram(pa, bytes.len() as u64) {
            return false;
        }
        let p = pa as usize;
        self.ram[p..p + bytes.len()].copy_from_slice(bytes);
        if !bytes.is_empty() {
            self.check_code_write(p, bytes.len());
        }
        true
    }
}
