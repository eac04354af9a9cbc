//! Linear-to-physical translation: the 32-bit, PAE and 4-level page walks with accessed and
//! dirty bits, and a direct-mapped software TLB whose entries carry precomputed permissions,
//! so the common access is one compare and one AND.

use super::{Fault, Machine};
use crate::arch::msr::efer;
use crate::arch::x86::{cr0, cr4, pfec, pte, vector};

/// The kind of memory access, as the permission checks see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Access {
    Read = 0,
    Write = 1,
    Exec = 2,
}

const TLB_SIZE: usize = 1024;

/// The slot of linear page `vpn` under a context's salt. The generation is mixed into the
/// index so that contexts caching the same linear pages (every level of a nested stack runs
/// its code at the same addresses) do not evict each other, as the ways of a real
/// set-associative TLB would keep them apart.
#[inline(always)]
fn slot(vpn: u64, salt: u64) -> usize {
    ((vpn ^ (salt >> 52).wrapping_mul(0x2F5)) as usize) & (TLB_SIZE - 1)
}
/// MAXPHYADDR of the modeled CPUs (bits of physical address).
pub const MAXPHYADDR: u32 = 39;
const PHYS_MASK: u64 = ((1u64 << MAXPHYADDR) - 1) & !0xFFF;

#[derive(Clone, Copy, Default, PartialEq, Eq)]
struct TlbEntry {
    /// Linear page number + 1; 0 is an empty entry.
    tag: u64,
    pbase: u64,
    /// Allowed accesses: bit (access + 3 * user).
    ok: u8,
    global: bool,
}

/// What the TLB tags a translation with (SDM 28.3.1): the VPID, and for combined mappings
/// (guest-physical addresses translated by EPT) the EPT PML4 table address. PCIDs are not
/// tracked (a flush that would target one PCID drops the whole VPID's entries instead).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlbCtx {
    pub vpid: u16,
    /// EP4TA of combined mappings; [`TlbCtx::LINEAR`] for linear mappings.
    pub ep4ta: u64,
}

impl TlbCtx {
    /// The `ep4ta` of linear mappings (no EPT).
    pub const LINEAR: u64 = u64::MAX;
    /// VMX root operation and software outside VMX: VPID 0, linear mappings.
    pub const HOST: TlbCtx = TlbCtx { vpid: 0, ep4ta: TlbCtx::LINEAR };
}

/// The top 12 bits of a tag: the generation of the context the entry was cached under.
const GEN_MASK: u64 = 0xFFF << 52;

/// The software TLB. Each context ([`TlbCtx`]) that has entries owns a generation number
/// folded into the tags' top 12 bits, so a lookup is still one compare; switching context
/// (VM entry or exit with VPID on) only selects another generation, and invalidating a
/// context gives it a fresh one instead of clearing 1024 entries. The array is really
/// cleared only when the 4096 generations run out.
pub struct Tlb {
    e: Box<[TlbEntry]>,
    /// The current context's generation `<< 52`, or-ed into every tag (linear page numbers
    /// + 1 fit in 52 bits).
    salt: u64,
    cur: TlbCtx,
    /// Contexts with live entries and their salts (a handful: the host and a few guests).
    ctxs: Vec<(TlbCtx, u64)>,
    /// The last salt handed out.
    last: u64,
}

impl Default for Tlb {
    fn default() -> Self {
        Tlb {
            e: vec![TlbEntry::default(); TLB_SIZE].into_boxed_slice(),
            salt: 0,
            cur: TlbCtx::HOST,
            ctxs: vec![(TlbCtx::HOST, 0)],
            last: 0,
        }
    }
}

impl Tlb {
    #[inline(always)]
    fn tag(&self, vpn: u64) -> u64 {
        (vpn.wrapping_add(1) & !GEN_MASK) | self.salt
    }

    /// A generation no live entry carries.
    fn fresh(&mut self) -> u64 {
        self.last = self.last.wrapping_add(1 << 52);
        if self.last == 0 {
            // Every generation is taken: clear the array and start over.
            self.e.fill(TlbEntry::default());
            self.ctxs.clear();
            self.last = 1 << 52;
        }
        self.last
    }

    /// The context translations are cached under now.
    pub fn ctx(&self) -> TlbCtx {
        self.cur
    }

    /// Makes `ctx` current; its cached entries (if any) become visible again.
    pub fn switch(&mut self, ctx: TlbCtx) {
        if ctx == self.cur {
            return;
        }
        self.cur = ctx;
        self.salt = match self.ctxs.iter().find(|(c, _)| *c == ctx) {
            Some(&(_, s)) => s,
            None => self.new_salt(ctx),
        };
    }

    fn new_salt(&mut self, ctx: TlbCtx) -> u64 {
        let s = self.fresh();
        self.ctxs.push((ctx, s));
        s
    }

    /// Drops every entry of the contexts whose VPID satisfies `pred`.
    fn drop_vpids(&mut self, pred: impl Fn(u16) -> bool) {
        self.ctxs.retain(|(c, _)| !pred(c.vpid));
        if pred(self.cur.vpid) {
            self.salt = self.new_salt(self.cur);
        }
    }

    /// Drops the entries for which `pred(entry)` holds among those cached under VPID `vpid`
    /// (any EP4TA).
    fn drop_entries(&mut self, vpid: u16, pred: impl Fn(&TlbEntry) -> bool) {
        let salts: Vec<u64> = self.ctxs.iter().filter(|(c, _)| c.vpid == vpid).map(|&(_, s)| s).collect();
        for e in self.e.iter_mut() {
            if e.tag != 0 && salts.contains(&(e.tag & GEN_MASK)) && pred(e) {
                *e = TlbEntry::default();
            }
        }
    }

    /// Drops every entry of every context (INVEPT, loaders, a changed memory map).
    pub fn flush_all(&mut self) {
        self.ctxs.clear();
        self.salt = self.new_salt(self.cur);
    }
    /// Drops every entry of the current VPID (MOV CR3 without CR4.PGE, paging-mode
    /// changes; with EPT, the combined mappings of every EP4TA, SDM 28.3.3.1).
    pub fn flush_current(&mut self) {
        let v = self.cur.vpid;
        self.drop_vpids(|x| x == v);
    }
    /// Drops the current VPID's non-global entries (MOV CR3 with CR4.PGE).
    pub fn flush_nonglobal(&mut self) {
        self.drop_entries(self.cur.vpid, |e| !e.global);
    }
    /// Drops the current VPID's entries for one linear address (INVLPG).
    pub fn flush_page(&mut self, lin: u64) {
        self.flush_page_vpid(self.cur.vpid, lin);
    }
    /// Drops VPID `vpid`'s entries for one linear address (INVVPID type 0).
    pub fn flush_page_vpid(&mut self, vpid: u16, lin: u64) {
        let vpn = lin >> 12;
        let low = vpn.wrapping_add(1) & !GEN_MASK;
        let salts: Vec<u64> = self.ctxs.iter().filter(|(c, _)| c.vpid == vpid).map(|&(_, s)| s).collect();
        for s in salts {
            let i = slot(vpn, s);
            if self.e[i].tag == low | s {
                self.e[i] = TlbEntry::default();
            }
        }
    }
    /// Drops every entry cached under VPID `vpid` (INVVPID type 1).
    pub fn flush_vpid(&mut self, vpid: u16) {
        self.drop_vpids(|x| x == vpid);
    }
    /// Drops VPID `vpid`'s non-global entries (INVVPID type 3).
    pub fn flush_vpid_nonglobal(&mut self, vpid: u16) {
        self.drop_entries(vpid, |e| !e.global);
    }
    /// Drops the entries of every VPID except 0 (INVVPID type 2).
    pub fn flush_all_guests(&mut self) {
        self.drop_vpids(|x| x != 0);
    }
}

/// Result of a page walk.
struct Walk {
    pbase: u64,
    writable: bool,
    user: bool,
    nx: bool,
    dirty: bool,
    global: bool,
}

impl Machine {
    /// Translates a linear address for an access at the current privilege level.
    #[inline(always)]
    pub fn translate(&mut self, lin: u64, acc: Access) -> Result<u64, Fault> {
        let user = self.cpu.cpl == 3;
        self.translate_as(lin, acc, user)
    }

    /// Translates with an explicit user/supervisor view (descriptor-table accesses are
    /// supervisor accesses even at CPL 3).
    #[inline(always)]
    pub fn translate_as(&mut self, lin: u64, acc: Access, user: bool) -> Result<u64, Fault> {
        let vpn = lin >> 12;
        let e = &self.tlb.e[slot(vpn, self.tlb.salt)];
        let bit = 1u8 << (acc as u8 + 3 * u8::from(user));
        if e.tag == self.tlb.tag(vpn) && e.ok & bit != 0 {
            return Ok(e.pbase | (lin & 0xFFF));
        }
        self.translate_slow(lin, acc, user)
    }

    #[cold]
    #[inline(never)]
    fn translate_slow(&mut self, lin: u64, acc: Access, user: bool) -> Result<u64, Fault> {
        let walk = if self.cpu.cr0 & cr0::PG == 0 {
            Walk { pbase: lin & 0xFFFF_F000, writable: true, user: true, nx: false, dirty: true, global: false }
        } else {
            self.walk(lin, acc, user)?
        };
        let wp = self.cpu.cr0 & cr0::WP != 0;
        // Permission checks (SDM 4.6).
        let allowed = |a: Access, u: bool| -> bool {
            match a {
                Access::Read => !u || walk.user,
                Access::Write => {
                    if u {
                        walk.user && walk.writable
                    } else {
                        walk.writable || !wp
                    }
                }
                Access::Exec => !walk.nx && (!u || walk.user),
            }
        };
        if !allowed(acc, user) {
            let mut code = pfec::P;
            if acc == Access::Write {
                code |= pfec::W;
            }
            if user {
                code |= pfec::U;
            }
            if acc == Access::Exec && self.cpu.efer & efer::NXE != 0 {
                code |= pfec::I;
            }
            return Err(self.page_fault(lin, code));
        }
        // Under EPT the page found is guest-physical: translate it, and keep in the TLB only
        // the accesses both the guest's paging and the EPT allow (SDM 29.4.2).
        let (pbase, ept_perms) = if self.vmx.ept {
            let (hpa, perms) = self.ept_translate(walk.pbase | (lin & 0xFFF), acc, lin, true)?;
            (hpa & !0xFFF, perms)
        } else {
            (walk.pbase, 7)
        };
        let mut ok = 0u8;
        for (i, a) in [Access::Read, Access::Write, Access::Exec].into_iter().enumerate() {
            for u in [false, true] {
                // A write through a clean entry must walk again to set the dirty bit.
                if allowed(a, u) && (a != Access::Write || walk.dirty) && ept_perms >> i & 1 != 0 {
                    ok |= 1 << (i as u8 + 3 * u8::from(u));
                }
            }
        }
        let vpn = lin >> 12;
        let tag = self.tlb.tag(vpn);
        self.tlb.e[slot(vpn, self.tlb.salt)] = TlbEntry { tag, pbase, ok, global: walk.global };
        Ok(pbase | (lin & 0xFFF))
    }

    /// The host-physical address of a guest paging-structure entry at `gpa` read while
    /// translating `lin`, and the EPT permissions for it (all without EPT).
    #[inline]
    fn pse(&mut self, gpa: u64, lin: u64) -> Result<(u64, u8), Fault> {
        if !self.vmx.ept {
            return Ok((gpa, 7));
        }
        self.ept_translate(gpa, Access::Read, lin, false)
    }

    /// Writes a guest paging-structure entry (accessed/dirty update) found by [`Self::pse`]:
    /// under EPT the update is a write and needs write permission.
    #[inline]
    fn pse_write<const N: usize>(&mut self, (hpa, perms): (u64, u8), gpa: u64, lin: u64, v: u64) -> Result<(), Fault> {
        if perms & 2 == 0 {
            return Err(self.ept_violation(gpa, Access::Write, perms, lin, false));
        }
        self.mem.write::<N>(hpa, v);
        Ok(())
    }

    fn page_fault(&mut self, lin: u64, code: u32) -> Fault {
        if self.vmx.non_root {
            // A #PF that causes a VM exit leaves CR2 unchanged.
            self.vmx.pf_old_cr2 = self.cpu.cr2;
        }
        self.cpu.cr2 = lin;
        Fault::with_code(vector::PF, code)
    }

    /// Walks the paging structures of the current mode, setting accessed/dirty bits.
    fn walk(&mut self, lin: u64, acc: Access, user: bool) -> Result<Walk, Fault> {
        let mut base_code = 0u32;
        if acc == Access::Write {
            base_code |= pfec::W;
        }
        if user {
            base_code |= pfec::U;
        }
        let nxe = self.cpu.efer & efer::NXE != 0;
        if acc == Access::Exec && nxe {
            base_code |= pfec::I;
        }
        let write = acc == Access::Write;
        let pae = self.cpu.cr4 & cr4::PAE != 0;
        if !pae {
            // 32-bit paging.
            let lin = lin & 0xFFFF_FFFF;
            let pde_pa = (self.cpu.cr3 & 0xFFFF_F000) | ((lin >> 22) << 2);
            let pde_h = self.pse(pde_pa, lin)?;
            let pde = self.mem.read::<4>(pde_h.0);
            if pde & pte::P == 0 {
                return Err(self.page_fault(lin, base_code));
            }
            if pde & pte::PS != 0 && self.cpu.cr4 & cr4::PSE != 0 {
                let new = pde | pte::A | if write { pte::D } else { 0 };
                if new != pde {
                    self.pse_write::<4>(pde_h, pde_pa, lin, new)?;
                }
                let hi = ((pde >> 13) & 0xFF) << 32;
                let pbase = (pde & 0xFFC0_0000) | hi | (lin & 0x003F_F000);
                return Ok(Walk {
                    pbase,
                    writable: pde & pte::RW != 0,
                    user: pde & pte::US != 0,
                    nx: false,
                    dirty: new & pte::D != 0,
                    global: pde & pte::G != 0 && self.cpu.cr4 & cr4::PGE != 0,
                });
            }
            if pde & pte::A == 0 {
                self.pse_write::<4>(pde_h, pde_pa, lin, pde | pte::A)?;
            }
            let pte_pa = (pde & 0xFFFF_F000) | (((lin >> 12) & 0x3FF) << 2);
            let pte_h = self.pse(pte_pa, lin)?;
            let e = self.mem.read::<4>(pte_h.0);
            if e & pte::P == 0 {
                return Err(self.page_fault(lin, base_code));
            }
            let writable = pde & e & pte::RW != 0;
            let usr = pde & e & pte::US != 0;
            let new = e | pte::A | if write && self.write_permitted(writable, usr, user) { pte::D } else { 0 };
            if new != e {
                self.pse_write::<4>(pte_h, pte_pa, lin, new)?;
            }
            return Ok(Walk {
                pbase: e & 0xFFFF_F000,
                writable,
                user: usr,
                nx: false,
                dirty: new & pte::D != 0,
                global: e & pte::G != 0 && self.cpu.cr4 & cr4::PGE != 0,
            });
        }
        let long = self.cpu.long_mode_active();
        let rsvd_hi = !PHYS_MASK & 0x000F_FFFF_FFFF_F000;
        let nx_rsvd = if nxe { 0 } else { pte::NX };
        let (mut table, levels) = if long {
            (self.cpu.cr3 & PHYS_MASK, 4)
        } else {
            // PAE: the PDPTE selected by bits 31:30.
            let lin32 = lin & 0xFFFF_FFFF;
            let pdpte_pa = (self.cpu.cr3 & 0xFFFF_FFE0) | ((lin32 >> 30) << 3);
            let pdpte_h = self.pse(pdpte_pa, lin32)?;
            let pdpte = self.mem.read::<8>(pdpte_h.0);
            if pdpte & pte::P == 0 {
                return Err(self.page_fault(lin32, base_code));
            }
            if pdpte & (rsvd_hi | 0x1E6 | pte::NX) != 0 {
                return Err(self.page_fault(lin32, base_code | pfec::P | pfec::RSVD));
            }
            (pdpte & PHYS_MASK, 2)
        };
        let lin = if long { lin } else { lin & 0xFFFF_FFFF };
        let mut writable = true;
        let mut usr = true;
        let mut nx = false;
        let mut level = levels;
        loop {
            let shift = 12 + 9 * (level - 1);
            let idx = (lin >> shift) & 0x1FF;
            let ea = table | (idx << 3);
            let h = self.pse(ea, lin)?;
            let e = self.mem.read::<8>(h.0);
            if e & pte::P == 0 {
                return Err(self.page_fault(lin, base_code));
            }
            let large = e & pte::PS != 0 && level > 1;
            let mut rsvd = e & (rsvd_hi | nx_rsvd);
            if large && (level == 4 || (level == 3 && !long)) {
                rsvd |= pte::PS;
            }
            if large {
                // Bits between 12 and the page size (except PAT at bit 12) must be zero.
                let low = ((1u64 << shift) - 1) & !0x1FFF;
                rsvd |= e & low;
            }
            if rsvd != 0 {
                return Err(self.page_fault(lin, base_code | pfec::P | pfec::RSVD));
            }
            writable &= e & pte::RW != 0;
            usr &= e & pte::US != 0;
            nx |= e & pte::NX != 0 && nxe;
            if level == 1 || large {
                let set_d = write && self.write_permitted(writable, usr, user) && !(acc == Access::Exec);
                let new = e | pte::A | if set_d { pte::D } else { 0 };
                if new != e {
                    self.pse_write::<8>(h, ea, lin, new)?;
                }
                let page_mask = (1u64 << shift) - 1;
                let pbase = ((e & PHYS_MASK & !page_mask) | (lin & page_mask)) & !0xFFF;
                return Ok(Walk {
                    pbase,
                    writable,
                    user: usr,
                    nx,
                    dirty: new & pte::D != 0,
                    global: e & pte::G != 0 && self.cpu.cr4 & cr4::PGE != 0,
                });
            }
            if e & pte::A == 0 {
                self.pse_write::<8>(h, ea, lin, e | pte::A)?;
            }
            table = e & PHYS_MASK;
            level -= 1;
        }
    }

    /// Whether a write with these effective rights succeeds (so D may be set).
    fn write_permitted(&self, writable: bool, usr: bool, user: bool) -> bool {
        if user {
            writable && usr
        } else {
            writable || self.cpu.cr0 & cr0::WP == 0
        }
    }
}
