//! Guest-physical memory: a flat byte array plus a per-page "holds decoded code" mark so
//! writes into code pages invalidate the decoded-block cache (self-modifying code stays
//! correct at the cost of one byte load per store).

/// Page size used for code tracking and paging.
pub const PAGE_SHIFT: u64 = 12;
pub const PAGE_SIZE: u64 = 1 << PAGE_SHIFT;

pub struct PhysMem {
    ram: Vec<u8>,
    /// Nonzero for pages that some cached decoded block was decoded from.
    code_page: Vec<u8>,
    /// Pages written while marked as code; drained by the block cache.
    pub dirty_code: Vec<u64>,
}

impl PhysMem {
    pub fn new(size: usize) -> Self {
        let size = size.next_multiple_of(PAGE_SIZE as usize);
        PhysMem { ram: vec![0; size], code_page: vec![0; size >> PAGE_SHIFT], dirty_code: Vec::new() }
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
            if self.code_page[pg] != 0 {
                self.note_code_write(pg);
            }
            if N > 1 && (p + N - 1) >> PAGE_SHIFT != pg && self.code_page[pg + 1] != 0 {
                self.note_code_write(pg + 1);
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
            if self.code_page[p >> PAGE_SHIFT] != 0 {
                self.note_code_write(p >> PAGE_SHIFT);
            }
        }
    }

    #[cold]
    fn note_code_write(&mut self, pg: usize) {
        self.code_page[pg] = 0;
        self.dirty_code.push(pg as u64);
    }

    pub fn mark_code(&mut self, pa: u64) {
        if let Some(c) = self.code_page.get_mut((pa >> PAGE_SHIFT) as usize) {
            *c = 1;
        }
    }

    /// A byte slice of RAM, for loaders, decoding and bulk copies.
    pub fn slice(&self, pa: u64, len: usize) -> Option<&[u8]> {
        self.ram.get(pa as usize..(pa as usize).checked_add(len)?)
    }

    /// Copies bytes into RAM (loaders, DMA-like firmware services), honouring code tracking.
    pub fn write_bytes(&mut self, pa: u64, bytes: &[u8]) -> bool {
        if !self.in_ram(pa, bytes.len() as u64) {
            return false;
        }
        let p = pa as usize;
        self.ram[p..p + bytes.len()].copy_from_slice(bytes);
        let first = p >> PAGE_SHIFT;
        let last = (p + bytes.len().max(1) - 1) >> PAGE_SHIFT;
        for pg in first..=last {
            if self.code_page[pg] != 0 {
                self.note_code_write(pg);
            }
        }
        true
    }
}
