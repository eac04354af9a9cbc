//! Kernel services outside vmx.c that KVM 4.13/4.14 runs on every nested entry and exit,
//! modeled modestly: each is real code over real data structures in this program's memory,
//! sized from the source, but the data is kept to what the CPUID loop touches.
//!
//! - **Guest pages** (kvm_main.c, mm/gup.c): `kvm_vcpu_gpa_to_page` = memslot lookup (LRU
//!   slot first), `__get_user_pages_fast` (interrupts off, a walk of the process's page
//!   tables — this level's own boot tables, whose 2-MiB leaves make it `gup_huge_pmd` — and a
//!   speculative reference on the compound head by LOCK CMPXCHG), then the reserved-page
//!   check; `kvm_release_page_clean`/`_dirty` drop the reference (LOCK XADD), the dirty one
//!   after a locked set of PG_dirty. About 60 instructions and one locked operation per
//!   lookup, as the fast path of the real functions (the slow path, `get_user_pages_unlocked`,
//!   is not taken for resident guest memory and is not modeled). struct pages live in
//!   `VMEMMAP`, 32 bytes per frame, only `flags`, `_refcount` and `private` being used.
//! - **hrtimer** (kernel/time): `hrtimer_start_range_ns` / `hrtimer_cancel` on a per-CPU base
//!   whose timerqueue (a red-black tree) holds the scheduler tick and the emulated
//!   preemption timer; `ktime_get` reads the clocksource (LFENCE; RDTSC, scaled). The timer
//!   is always later than the tick, so it is inserted as a red leaf under the black tick and
//!   removed as one: the rotations the kernel would need for other shapes never arise and are
//!   not modeled (reaching one stops the run). The timer's expiry is not delivered.
//! - **MMU context** (mmu.c): `kvm_mmu_unload` (drop the root's reference under mmu_lock),
//!   `kvm_init_shadow_ept_mmu` / `init_kvm_mmu` (the struct kvm_mmu callbacks, role,
//!   `update_permission_bitmask`'s 16 permission bytes, the reserved-bit masks, with guest
//!   CPUID lookups), `kvm_mmu_load` (`kvm_mmu_get_page` finds the root by its gfn and role,
//!   `kvm_mmu_sync_roots`, then `vmx_set_cr3`). Shadow pages are never unsync here, so the
//!   sync walk ends at the root.

use super::*;

/// struct page (at `L::VMEMMAP` + 32 * pfn).
mod page {
    pub const SIZE: u64 = 32;
    pub const FLAGS: u64 = 0;
    pub const REFCOUNT: u64 = 8;
    pub const PRIVATE: u64 = 0x18;
    /// PG_reserved and PG_dirty bit numbers in flags.
    pub const PG_RESERVED: u32 = 10;
    pub const PG_DIRTY: u32 = 4;
}
/// struct kvm_memory_slot.
mod slot {
    pub const SIZE: u64 = 0x28;
    pub const BASE_GFN: u64 = 0;
    pub const NPAGES: u64 = 8;
    pub const USERSPACE_ADDR: u64 = 0x10;
    pub const FLAGS: u64 = 0x18;
    pub const DIRTY_BITMAP: u64 = 0x20;
    /// KVM_MEMSLOT_INVALID | KVM_MEM_READONLY.
    pub const BAD_FLAGS: i32 = (1 << 16) | (1 << 1);
}
/// struct kvm_mmu (at `v::KVM_MMU` and `v::NESTED_MMU`).
pub(super) mod mmu {
    pub const ROOT_LEVEL: u64 = 0x00;
    pub const SHADOW_ROOT_LEVEL: u64 = 0x08;
    pub const DIRECT_MAP: u64 = 0x10;
    pub const NX: u64 = 0x18;
    pub const EPT_AD: u64 = 0x20;
    pub const BASE_ROLE: u64 = 0x28;
    /// page_fault, gva_to_gpa, sync_page, invlpg, update_pte, set_cr3, get_cr3, get_pdptr,
    /// inject_page_fault.
    pub const CALLBACKS: u64 = 0x30;
    pub const PKRU_MASK: u64 = 0x78;
    pub const LAST_NONLEAF: u64 = 0x80;
    pub const PERMISSIONS: u64 = 0x88;
    /// struct rsvd_bits_validate: rsvd_bits_mask[2][5], bad_mt_xwr.
    pub const GUEST_RSVD: u64 = 0xA0;
    pub const SHADOW_ZERO: u64 = 0x100;
    /// kvm_mmu_page_role bits used here.
    pub const ROLE_DIRECT: i32 = 1 << 10;
    pub const ROLE_GUEST_MODE: i32 = 1 << 19;
    pub const ROLE_AD_DISABLED: i32 = 1 << 20;
}
/// Shadow-page header: root_count, unsync, unsync_children.
mod sp {
    pub const SIZE: u64 = 0x18;
    pub const ROOT_COUNT: u64 = 0;
    pub const UNSYNC: u64 = 8;
    pub const UNSYNC_CHILDREN: u64 = 0x10;
}
/// struct hrtimer_cpu_base (at `v::HRTIMER_CPU_BASE`) with its one clock base, and struct
/// hrtimer.
pub(super) mod hrt {
    pub const LOCK: u64 = 0x00;
    pub const ACTIVE_BASES: u64 = 0x08;
    pub const EXPIRES_NEXT: u64 = 0x10;
    pub const NEXT_TIMER: u64 = 0x18;
    pub const RUNNING: u64 = 0x20;
    pub const SEQ: u64 = 0x28;
    /// The clock base: cpu_base pointer, index, timerqueue root and leftmost node.
    pub const CLOCK_BASE: u64 = 0x40;
    pub const CB_CPU_BASE: u64 = 0x00;
    pub const CB_INDEX: u64 = 0x08;
    pub const CB_ROOT: u64 = 0x10;
    pub const CB_NEXT: u64 = 0x18;
    // struct hrtimer: rb_node (parent|color, right, left), expires, _softexpires, base, state.
    pub const PARENT_COLOR: u64 = 0x00;
    pub const RIGHT: u64 = 0x08;
    pub const LEFT: u64 = 0x10;
    pub const EXPIRES: u64 = 0x18;
    pub const SOFTEXPIRES: u64 = 0x20;
    pub const BASE: u64 = 0x28;
    pub const STATE: u64 = 0x30;
}
/// The timekeeper ktime_get reads.
pub(super) mod tk {
    pub const SEQ: u64 = 0x00;
    pub const BASE: u64 = 0x08;
    pub const CYCLE_LAST: u64 = 0x10;
    pub const MASK: u64 = 0x18;
    pub const MULT: u64 = 0x20;
    pub const SHIFT: u64 = 0x28;
    pub const XTIME_NSEC: u64 = 0x30;
}
/// Physical-address width the MMU masks are computed for (vcpu->arch.maxphyaddr and
/// boot_cpu_data.x86_phys_bits: 46 on Broadwell-EP).
pub(super) const MAXPHYADDR: u32 = 46;

/// The struct page of the frame at physical `rax` -> rax (pfn_to_page).
fn pfn_to_page(a: &mut CodeAssembler) -> R {
    const _: () = assert!(page::SIZE == 1 << 5);
    a.shr(rax, 12)?;
    a.shl(rax, 5)?;
    a.add(rax, L::VMEMMAP as i32)
}
/// The shadow-page header of the root at `rax` -> rcx (page_header: struct page's private).
fn page_header(a: &mut CodeAssembler) -> R {
    a.mov(rcx, rax)?;
    a.shr(rcx, 12)?;
    a.shl(rcx, 5)?;
    a.mov(rcx, qword_ptr(rcx + (L::VMEMMAP + page::PRIVATE)))
}
/// spin_lock(&kvm->mmu_lock) / spin_unlock (queued spinlock fast path; clobbers eax, edx).
fn spin_lock(a: &mut CodeAssembler, lock: u64) -> R {
    a.xor(eax, eax)?;
    a.mov(edx, 1u32)?;
    a.lock().cmpxchg(dword_ptr(lock), edx)
}
fn spin_unlock(a: &mut CodeAssembler, lock: u64) -> R {
    a.mov(dword_ptr(lock), 0)
}
/// guest_cpuid_has(leaf, register offset, bit) -> CF (kvm_find_cpuid_entry + bit test).
fn guest_cpuid_has(a: &mut CodeAssembler, find: CodeLabel, leaf: u32, reg: u64, bit: u32) -> R {
    let mut none = a.create_label();
    let mut out = a.create_label();
    a.mov(esi, leaf)?;
    a.xor(edx, edx)?;
    a.call(find)?;
    a.test(rax, rax)?;
    a.jz(none)?;
    a.bt(dword_ptr(rax + reg), bit as i32)?;
    a.jmp(out)?;
    a.set_label(&mut none)?;
    a.clc()?;
    a.set_label(&mut out)
}

pub(super) fn emit(b: &mut ProgramBuilder, p: &HvParams) -> R {
    let _ = p;
    // memset (arch/x86/lib/memset_64.S, memset_erms on a CPU with ERMS): rdi, sil, rdx.
    b.func("memset", |b| {
        let a = &mut b.asm;
        a.mov(r9, rdi)?;
        a.mov(al, sil)?;
        a.mov(rcx, rdx)?;
        a.rep().stosb()?;
        a.mov(rax, r9)?;
        a.ret()
    })?;

    // kvm_find_cpuid_entry(esi = function, edx = index) -> rax = entry or 0: the linear
    // search of vcpu->arch.cpuid_entries (significant-index entries must match the index).
    b.func("kvm_find_cpuid_entry", |b| {
        let a = &mut b.asm;
        let mut top = a.create_label();
        let mut next = a.create_label();
        let mut found = a.create_label();
        let mut none = a.create_label();
        a.mov(rax, L::VCPU + v::CPUID)?;
        a.mov(rcx, vc(v::CPUID_COUNT))?;
        a.set_label(&mut top)?;
        a.test(rcx, rcx)?;
        a.jz(none)?;
        a.cmp(dword_ptr(rax), esi)?;
        a.jne(next)?;
        a.test(dword_ptr(rax + 8), 1)?;
        a.jz(found)?;
        a.cmp(dword_ptr(rax + 4), edx)?;
        a.je(found)?;
        a.set_label(&mut next)?;
        a.add(rax, 32)?;
        a.dec(rcx)?;
        a.jmp(top)?;
        a.set_label(&mut none)?;
        a.xor(eax, eax)?;
        a.set_label(&mut found)?;
        a.ret()
    })?;

    // ---- guest pages ------------------------------------------------------------------------

    // kvm_vcpu_gfn_to_memslot(rdi = gfn) -> rax = slot or 0 (search_memslots: the LRU slot,
    // then the others).
    b.func("kvm_vcpu_gfn_to_memslot", |b| {
        let a = &mut b.asm;
        let mut hit = a.create_label();
        let mut miss = a.create_label();
        let mut none = a.create_label();
        a.imul_3(rax, qword_ptr(L::VCPU + v::MEMSLOT_LRU), slot::SIZE as i32)?;
        a.add(rax, (L::VCPU + v::MEMSLOTS) as i32)?;
        let check = |a: &mut CodeAssembler, hit: CodeLabel, miss: CodeLabel| -> R {
            a.mov(rcx, qword_ptr(rax + slot::BASE_GFN))?;
            a.cmp(rdi, rcx)?;
            a.jb(miss)?;
            a.add(rcx, qword_ptr(rax + slot::NPAGES))?;
            a.cmp(rdi, rcx)?;
            a.jb(hit)
        };
        check(a, hit, miss)?;
        a.set_label(&mut miss)?;
        let mut top = a.create_label();
        let mut next = a.create_label();
        a.xor(r8d, r8d)?;
        a.set_label(&mut top)?;
        a.cmp(r8, vc(v::MEMSLOT_COUNT))?;
        a.jae(none)?;
        a.imul_3(rax, r8, slot::SIZE as i32)?;
        a.add(rax, (L::VCPU + v::MEMSLOTS) as i32)?;
        check(a, hit, next)?;
        a.set_label(&mut next)?;
        a.inc(r8)?;
        a.jmp(top)?;
        a.set_label(&mut none)?;
        a.xor(eax, eax)?;
        a.ret()?;
        a.set_label(&mut hit)?;
        a.ret()
    })?;

    // __get_user_pages_fast(rdi = hva) -> rax = struct page of the 4-KiB frame, or 0: a
    // lockless walk of current->mm's page tables with interrupts off; a 2-MiB leaf takes a
    // reference on the compound head (page_cache_add_speculative) and re-checks the PMD.
    b.func("__get_user_pages_fast", |b| {
        let a = &mut b.asm;
        let mut fail = a.create_label();
        let mut done = a.create_label();
        let pfn_mask = 0x000F_FFFF_FFFF_F000u64;
        a.pushfq()?;
        a.cli()?;
        a.mov(r10, pfn_mask)?;
        a.mov(rax, vc(v::MM_PGD))?;
        for (shift, last) in [(39u32, false), (30, false), (21, true)] {
            a.mov(rcx, rdi)?;
            a.shr(rcx, shift)?;
            a.and(ecx, 0x1FF)?;
            a.lea(r9, qword_ptr(rax + rcx * 8))?;
            a.mov(rdx, qword_ptr(r9))?;
            a.test(dl, 1)?; // present
            a.jz(fail)?;
            if last {
                // pmd_large -> gup_huge_pmd; a 4-KiB PTE level is not modeled (the tables
                // mapping guest memory use 2-MiB pages).
                a.test(dl, 0x80)?;
                a.jz(fail)?;
                a.test(dl, 2)?; // write access
                a.jz(fail)?;
            } else {
                a.test(dl, 0x80)?;
                a.jnz(fail)?;
                a.mov(rax, rdx)?;
                a.and(rax, r10)?;
            }
        }
        // head = pmd_page(pmd); page = head + the 4-KiB index within it.
        a.mov(rax, rdx)?;
        a.and(rax, r10)?;
        a.mov(r11, rax)?;
        pfn_to_page(a)?;
        a.mov(r8, rax)?; // head
        a.mov(rax, rdi)?;
        a.and(eax, 0x1F_F000)?;
        a.shr(eax, 12 - 5)?;
        a.add(rax, r8)?; // page
                         // page_cache_add_speculative(head, 1): atomic_add_unless(&head->_refcount, 1, 0).
        let mut retry = a.create_label();
        a.push(rax)?;
        a.mov(rax, qword_ptr(r8 + page::REFCOUNT))?;
        a.set_label(&mut retry)?;
        a.test(rax, rax)?;
        let mut zero = a.create_label();
        a.jz(zero)?;
        a.lea(rcx, qword_ptr(rax + 1))?;
        a.lock().cmpxchg(qword_ptr(r8 + page::REFCOUNT), rcx)?;
        a.jne(retry)?;
        a.pop(rax)?;
        // The PMD must not have changed under us.
        a.cmp(rdx, qword_ptr(r9))?;
        a.je(done)?;
        a.lock().dec(qword_ptr(r8 + page::REFCOUNT))?;
        a.jmp(fail)?;
        a.set_label(&mut zero)?;
        a.pop(rax)?;
        a.set_label(&mut fail)?;
        a.xor(eax, eax)?;
        a.set_label(&mut done)?;
        a.popfq()?;
        a.ret()
    })?;

    // kvm_vcpu_gpa_to_page(rdi = gpa) -> rax = struct page, or 0 for the error page:
    // kvm_vcpu_gfn_to_memslot, __gfn_to_hva_many, hva_to_pfn_fast, kvm_pfn_to_page.
    b.func("kvm_vcpu_gpa_to_page", |b| {
        let memslot = b.label("kvm_vcpu_gfn_to_memslot");
        let gup = b.label("__get_user_pages_fast");
        let a = &mut b.asm;
        let mut err = a.create_label();
        a.push(rbx)?;
        a.mov(rbx, rdi)?;
        a.shr(rbx, 12)?;
        a.mov(rdi, rbx)?;
        a.call(memslot)?;
        a.test(rax, rax)?;
        a.jz(err)?;
        a.test(dword_ptr(rax + slot::FLAGS), slot::BAD_FLAGS)?;
        a.jnz(err)?;
        a.mov(rdi, rbx)?;
        a.sub(rdi, qword_ptr(rax + slot::BASE_GFN))?;
        a.shl(rdi, 12)?;
        a.add(rdi, qword_ptr(rax + slot::USERSPACE_ADDR))?;
        a.call(gup)?;
        a.test(rax, rax)?;
        a.jz(err)?;
        // kvm_is_reserved_pfn: pfn_valid and PageReserved.
        a.mov(rcx, rax)?;
        a.sub(rcx, L::VMEMMAP as i32)?;
        a.shr(rcx, 5)?;
        a.cmp(rcx, vc(v::MAX_PFN))?;
        a.jae(err)?;
        a.bt(qword_ptr(rax + page::FLAGS), page::PG_RESERVED as i32)?;
        a.jc(err)?;
        a.pop(rbx)?;
        a.ret()?;
        a.set_label(&mut err)?;
        a.xor(eax, eax)?;
        a.pop(rbx)?;
        a.ret()
    })?;

    // kvm_release_page_clean(rdi = page): kvm_release_pfn_clean -> put_page on the compound
    // head (page_ref_dec_and_test).
    b.func("kvm_release_page_clean", |b| {
        let a = &mut b.asm;
        let mut out = a.create_label();
        a.test(rdi, rdi)?;
        a.jz(out)?;
        // page_to_pfn, then !kvm_is_reserved_pfn.
        a.mov(rax, rdi)?;
        a.sub(rax, L::VMEMMAP as i32)?;
        a.shr(rax, 5)?;
        a.cmp(rax, vc(v::MAX_PFN))?;
        a.jae(out)?;
        a.bt(qword_ptr(rdi + page::FLAGS), page::PG_RESERVED as i32)?;
        a.jc(out)?;
        // compound_head: the 2-MiB head of the frame.
        a.and(rax, !511)?;
        a.shl(rax, 5)?;
        a.add(rax, L::VMEMMAP as i32)?;
        a.mov(rcx, -1i64)?;
        a.lock().xadd(qword_ptr(rax + page::REFCOUNT), rcx)?;
        // The last reference would free the page (__put_page): never here.
        a.set_label(&mut out)?;
        a.ret()
    })?;

    // kvm_release_page_dirty(rdi = page): kvm_set_pfn_dirty (SetPageDirty, a locked bit set)
    // then the clean release.
    b.func("kvm_release_page_dirty", |b| {
        let clean = b.label("kvm_release_page_clean");
        let a = &mut b.asm;
        let mut out = a.create_label();
        a.test(rdi, rdi)?;
        a.jz(out)?;
        a.bt(qword_ptr(rdi + page::FLAGS), page::PG_RESERVED as i32)?;
        a.jc(out)?;
        a.lock().bts(qword_ptr(rdi + page::FLAGS), page::PG_DIRTY as i32)?;
        a.set_label(&mut out)?;
        a.jmp(clean)
    })?;

    // kvm_vcpu_mark_page_dirty(rdi = gfn): the memslot, and its dirty bitmap when dirty
    // logging is on (it is not: no bit is set).
    b.func("kvm_vcpu_mark_page_dirty", |b| {
        let memslot = b.label("kvm_vcpu_gfn_to_memslot");
        let a = &mut b.asm;
        let mut out = a.create_label();
        a.push(rdi)?;
        a.call(memslot)?;
        a.pop(rdi)?;
        a.test(rax, rax)?;
        a.jz(out)?;
        a.mov(rcx, qword_ptr(rax + slot::DIRTY_BITMAP))?;
        a.test(rcx, rcx)?;
        a.jz(out)?;
        a.sub(rdi, qword_ptr(rax + slot::BASE_GFN))?;
        a.bts(qword_ptr(rcx), rdi)?;
        a.set_label(&mut out)?;
        a.ret()
    })?;

    // ---- time -------------------------------------------------------------------------------

    // ktime_get -> rax = ns: the timekeeper's seqcount, the TSC clocksource (rdtsc_ordered),
    // (cycles - cycle_last) * mult >> shift on top of the base.
    b.func("ktime_get", |b| {
        let a = &mut b.asm;
        let t = L::VCPU + v::TIMEKEEPER;
        let mut top = a.create_label();
        a.set_label(&mut top)?;
        a.mov(r11d, dword_ptr(t + tk::SEQ))?;
        a.test(r11d, 1)?;
        let mut even = a.create_label();
        a.jz(even)?;
        a.pause()?;
        a.jmp(top)?;
        a.set_label(&mut even)?;
        a.mov(r10, qword_ptr(t + tk::BASE))?;
        a.lfence()?;
        a.rdtsc()?;
        a.shl(rdx, 32)?;
        a.or(rax, rdx)?;
        a.sub(rax, qword_ptr(t + tk::CYCLE_LAST))?;
        a.and(rax, qword_ptr(t + tk::MASK))?;
        a.imul_2(rax, qword_ptr(t + tk::MULT))?;
        a.add(rax, qword_ptr(t + tk::XTIME_NSEC))?;
        a.mov(rcx, qword_ptr(t + tk::SHIFT))?;
        a.shr(rax, cl)?;
        a.add(rax, r10)?;
        a.cmp(r11d, dword_ptr(t + tk::SEQ))?;
        a.jne(top)?;
        a.ret()
    })?;

    // timerqueue_add(rdi = clock base's queue head, rsi = timer) -> eax = leftmost.
    b.func("timerqueue_add", |b| {
        let fatal = b.label("kvm_fatal");
        let a = &mut b.asm;
        let mut top = a.create_label();
        let mut right = a.create_label();
        let mut link = a.create_label();
        let mut done = a.create_label();
        a.mov(rdx, rdi)?; // &root.rb_node
        a.xor(r8d, r8d)?; // parent
        a.mov(eax, 1u32)?;
        a.mov(r9, qword_ptr(rsi + hrt::EXPIRES))?;
        a.set_label(&mut top)?;
        a.mov(rcx, qword_ptr(rdx))?;
        a.test(rcx, rcx)?;
        a.jz(link)?;
        a.mov(r8, rcx)?;
        a.cmp(r9, qword_ptr(rcx + hrt::EXPIRES))?;
        a.jge(right)?;
        a.lea(rdx, qword_ptr(rcx + hrt::LEFT))?;
        a.jmp(top)?;
        a.set_label(&mut right)?;
        a.lea(rdx, qword_ptr(rcx + hrt::RIGHT))?;
        a.xor(eax, eax)?;
        a.jmp(top)?;
        // rb_link_node (red), then rb_insert_color: a red node under a black parent (or as
        // the root, made black) needs nothing more.
        a.set_label(&mut link)?;
        a.mov(qword_ptr(rsi + hrt::PARENT_COLOR), r8)?;
        a.mov(qword_ptr(rsi + hrt::LEFT), 0)?;
        a.mov(qword_ptr(rsi + hrt::RIGHT), 0)?;
        a.mov(qword_ptr(rdx), rsi)?;
        let mut has_parent = a.create_label();
        a.test(r8, r8)?;
        a.jnz(has_parent)?;
        a.or(qword_ptr(rsi + hrt::PARENT_COLOR), 1)?;
        a.jmp(done)?;
        a.set_label(&mut has_parent)?;
        a.test(byte_ptr(r8 + hrt::PARENT_COLOR), 1)?;
        a.jnz(done)?;
        a.mov(edi, 0xEAu32)?; // rebalancing under a red parent: not modeled
        a.jmp(fatal)?;
        a.set_label(&mut done)?;
        let mut not_left = a.create_label();
        a.test(eax, eax)?;
        a.jz(not_left)?;
        a.mov(qword_ptr(rdi + 8), rsi)?;
        a.set_label(&mut not_left)?;
        a.ret()
    })?;

    // timerqueue_del(rdi = head, rsi = timer) -> eax = the queue is not empty: rb_erase of a
    // red leaf (other shapes are not modeled).
    b.func("timerqueue_del", |b| {
        let fatal = b.label("kvm_fatal");
        let a = &mut b.asm;
        let mut erase = a.create_label();
        a.cmp(qword_ptr(rdi + 8), rsi)?;
        a.jne(erase)?;
        // The leftmost node leaves: rb_next of a leaf is its parent.
        a.mov(rax, qword_ptr(rsi + hrt::PARENT_COLOR))?;
        a.and(rax, !3)?;
        a.mov(qword_ptr(rdi + 8), rax)?;
        a.set_label(&mut erase)?;
        let mut bad = a.create_label();
        a.cmp(qword_ptr(rsi + hrt::LEFT), 0)?;
        a.jne(bad)?;
        a.cmp(qword_ptr(rsi + hrt::RIGHT), 0)?;
        a.jne(bad)?;
        a.mov(rax, qword_ptr(rsi + hrt::PARENT_COLOR))?;
        a.test(al, 1)?;
        let mut red = a.create_label();
        let mut root = a.create_label();
        let mut unlinked = a.create_label();
        a.and(rax, !3)?;
        a.jz(root)?;
        a.set_label(&mut red)?;
        let mut is_right = a.create_label();
        a.cmp(qword_ptr(rax + hrt::LEFT), rsi)?;
        a.jne(is_right)?;
        a.mov(qword_ptr(rax + hrt::LEFT), 0)?;
        a.jmp(unlinked)?;
        a.set_label(&mut is_right)?;
        a.mov(qword_ptr(rax + hrt::RIGHT), 0)?;
        a.jmp(unlinked)?;
        a.set_label(&mut root)?;
        a.mov(qword_ptr(rdi), 0)?;
        a.set_label(&mut unlinked)?;
        a.mov(qword_ptr(rsi + hrt::PARENT_COLOR), rsi)?; // RB_CLEAR_NODE
        a.xor(eax, eax)?;
        a.cmp(qword_ptr(rdi), 0)?;
        a.setne(al)?;
        a.ret()?;
        a.set_label(&mut bad)?;
        a.mov(edi, 0xEBu32)?;
        a.jmp(fatal)
    })?;

    // hrtimer_start_range_ns(rdi = timer, rsi = ns, rdx = slack ns), relative mode: the base
    // locked with interrupts off, the expiry from ktime_get, enqueue_hrtimer.
    b.func("hrtimer_start_range_ns", |b| {
        let now = b.label("ktime_get");
        let add = b.label("timerqueue_add");
        let del = b.label("timerqueue_del");
        let a = &mut b.asm;
        a.push(rbx)?;
        a.push(r12)?;
        a.push(r13)?;
        a.push(r14)?;
        a.mov(rbx, rdi)?;
        a.mov(r12, rsi)?;
        a.mov(r13, rdx)?;
        // lock_hrtimer_base: base = timer->base; raw_spin_lock_irqsave(&base->cpu_base->lock).
        a.mov(r14, qword_ptr(rbx + hrt::BASE))?;
        a.pushfq()?;
        a.cli()?;
        a.mov(rcx, qword_ptr(r14 + hrt::CB_CPU_BASE))?;
        a.xor(eax, eax)?;
        a.mov(edx, 1u32)?;
        a.lock().cmpxchg(dword_ptr(rcx + hrt::LOCK), edx)?;
        // remove_hrtimer(timer, base, restart = true) when it is still queued.
        let mut not_queued = a.create_label();
        a.test(byte_ptr(rbx + hrt::STATE), 1)?;
        a.jz(not_queued)?;
        a.lea(rdi, qword_ptr(r14 + hrt::CB_ROOT))?;
        a.mov(rsi, rbx)?;
        a.call(del)?;
        a.set_label(&mut not_queued)?;
        // tim = ktime_add_safe(tim, base->get_time()); expires = tim + slack.
        a.call(now)?;
        a.add(r12, rax)?;
        let mut ok = a.create_label();
        a.jno(ok)?;
        a.mov(r12, i64::MAX)?;
        a.set_label(&mut ok)?;
        a.mov(qword_ptr(rbx + hrt::SOFTEXPIRES), r12)?;
        a.lea(rax, qword_ptr(r12 + r13))?;
        a.mov(qword_ptr(rbx + hrt::EXPIRES), rax)?;
        // switch_hrtimer_base: already this CPU's base.
        a.mov(rcx, qword_ptr(r14 + hrt::CB_CPU_BASE))?;
        a.cmp(rcx, (L::VCPU + v::HRTIMER_CPU_BASE) as i32)?;
        // enqueue_hrtimer.
        a.mov(rcx, qword_ptr(r14 + hrt::CB_INDEX))?;
        a.mov(eax, 1u32)?;
        a.shl(eax, cl)?;
        a.mov(rcx, qword_ptr(r14 + hrt::CB_CPU_BASE))?;
        a.or(qword_ptr(rcx + hrt::ACTIVE_BASES), rax)?;
        a.mov(qword_ptr(rbx + hrt::STATE), 1)?;
        a.lea(rdi, qword_ptr(r14 + hrt::CB_ROOT))?;
        a.mov(rsi, rbx)?;
        a.call(add)?;
        // The new first timer would reprogram the clock event device (hrtimer_reprogram);
        // later than the tick, it never is.
        let mut unlock = a.create_label();
        a.mov(rcx, qword_ptr(r14 + hrt::CB_CPU_BASE))?;
        a.test(eax, eax)?;
        a.jz(unlock)?;
        a.mov(rax, qword_ptr(rbx + hrt::EXPIRES))?;
        a.cmp(rax, qword_ptr(rcx + hrt::EXPIRES_NEXT))?;
        a.jge(unlock)?;
        a.mov(qword_ptr(rcx + hrt::EXPIRES_NEXT), rax)?;
        a.mov(qword_ptr(rcx + hrt::NEXT_TIMER), rbx)?;
        a.set_label(&mut unlock)?;
        a.mov(dword_ptr(rcx + hrt::LOCK), 0)?;
        a.popfq()?;
        a.pop(r14)?;
        a.pop(r13)?;
        a.pop(r12)?;
        a.pop(rbx)?;
        a.ret()
    })?;

    // hrtimer_try_to_cancel(rdi = timer) -> eax (0: was not active, 1: removed).
    b.func("hrtimer_try_to_cancel", |b| {
        let del = b.label("timerqueue_del");
        let a = &mut b.asm;
        let mut inactive = a.create_label();
        let mut active = a.create_label();
        // hrtimer_active: state or running, read under the base's seqcount.
        a.mov(r8, qword_ptr(rdi + hrt::BASE))?;
        a.mov(r9, qword_ptr(r8 + hrt::CB_CPU_BASE))?;
        a.mov(eax, dword_ptr(r9 + hrt::SEQ))?;
        a.cmp(qword_ptr(rdi + hrt::STATE), 0)?;
        a.jne(active)?;
        a.cmp(qword_ptr(r9 + hrt::RUNNING), rdi)?;
        a.jne(inactive)?;
        a.set_label(&mut active)?;
        a.push(rbx)?;
        a.push(r12)?;
        a.mov(rbx, rdi)?;
        a.mov(r12, r8)?;
        a.pushfq()?;
        a.cli()?;
        a.xor(eax, eax)?;
        a.mov(edx, 1u32)?;
        a.lock().cmpxchg(dword_ptr(r9 + hrt::LOCK), edx)?;
        // remove_hrtimer -> __remove_hrtimer.
        let mut not_queued = a.create_label();
        a.test(byte_ptr(rbx + hrt::STATE), 1)?;
        a.jz(not_queued)?;
        a.mov(qword_ptr(rbx + hrt::STATE), 0)?;
        a.lea(rdi, qword_ptr(r12 + hrt::CB_ROOT))?;
        a.mov(rsi, rbx)?;
        a.call(del)?;
        a.mov(r9, qword_ptr(r12 + hrt::CB_CPU_BASE))?;
        let mut nonempty = a.create_label();
        a.test(eax, eax)?;
        a.jnz(nonempty)?;
        a.mov(rcx, qword_ptr(r12 + hrt::CB_INDEX))?;
        a.mov(eax, 1u32)?;
        a.shl(eax, cl)?;
        a.not(rax)?;
        a.and(qword_ptr(r9 + hrt::ACTIVE_BASES), rax)?;
        a.set_label(&mut nonempty)?;
        // Reprogramming is needed only when it was the next timer to fire.
        a.cmp(rbx, qword_ptr(r9 + hrt::NEXT_TIMER))?;
        a.set_label(&mut not_queued)?;
        a.mov(r9, qword_ptr(r12 + hrt::CB_CPU_BASE))?;
        a.mov(dword_ptr(r9 + hrt::LOCK), 0)?;
        a.popfq()?;
        a.mov(eax, 1u32)?;
        a.pop(r12)?;
        a.pop(rbx)?;
        a.ret()?;
        a.set_label(&mut inactive)?;
        a.xor(eax, eax)?;
        a.ret()
    })?;

    // hrtimer_cancel(rdi = timer): try until the callback is not running.
    b.func("hrtimer_cancel", |b| {
        let try_cancel = b.label("hrtimer_try_to_cancel");
        let a = &mut b.asm;
        let mut top = a.create_label();
        let mut done = a.create_label();
        a.push(rbx)?;
        a.mov(rbx, rdi)?;
        a.set_label(&mut top)?;
        a.mov(rdi, rbx)?;
        a.call(try_cancel)?;
        a.test(eax, eax)?;
        a.jns(done)?;
        a.pause()?;
        a.jmp(top)?;
        a.set_label(&mut done)?;
        a.pop(rbx)?;
        a.ret()
    })?;

    // __hrtimer_get_remaining(rdi = timer) -> rax = expires - now, under the base lock.
    b.func("__hrtimer_get_remaining", |b| {
        let now = b.label("ktime_get");
        let a = &mut b.asm;
        a.push(rbx)?;
        a.push(r12)?;
        a.mov(rbx, rdi)?;
        a.mov(r12, qword_ptr(rbx + hrt::BASE))?;
        a.mov(r12, qword_ptr(r12 + hrt::CB_CPU_BASE))?;
        a.pushfq()?;
        a.cli()?;
        a.xor(eax, eax)?;
        a.mov(edx, 1u32)?;
        a.lock().cmpxchg(dword_ptr(r12 + hrt::LOCK), edx)?;
        a.call(now)?;
        a.mov(rcx, qword_ptr(rbx + hrt::EXPIRES))?;
        a.sub(rcx, rax)?;
        a.mov(rax, rcx)?;
        a.mov(dword_ptr(r12 + hrt::LOCK), 0)?;
        a.popfq()?;
        a.pop(r12)?;
        a.pop(rbx)?;
        a.ret()
    })?;

    // ---- MMU --------------------------------------------------------------------------------

    // kvm_mmu_unload: mmu_free_roots: the root's reference dropped under mmu_lock, the MMU
    // left without a root (a zapped, invalid root would be freed here; roots stay valid).
    b.func("kvm_mmu_unload", |b| {
        let a = &mut b.asm;
        let mut out = a.create_label();
        a.mov(rax, vc(v::MMU_ROOT_HPA))?;
        a.cmp(rax, -1)?;
        a.je(out)?;
        a.cmp(qword_ptr(L::VCPU + v::KVM_MMU + mmu::SHADOW_ROOT_LEVEL), 4)?;
        a.jb(out)?;
        spin_lock(a, L::VCPU + v::MMU_LOCK)?;
        a.mov(rax, vc(v::MMU_ROOT_HPA))?;
        page_header(a)?;
        a.dec(qword_ptr(rcx + sp::ROOT_COUNT))?;
        // kvm_mmu_commit_zap_page(&invalid_list): the list is empty.
        spin_unlock(a, L::VCPU + v::MMU_LOCK)?;
        a.mov(qword_ptr(L::VCPU + v::MMU_ROOT_HPA), -1)?;
        a.set_label(&mut out)?;
        a.ret()
    })?;

    // update_permission_bitmask(rdi = mmu, esi = ept): mmu->permissions[16], one byte of
    // fault bits per page-fault error code, from CR0.WP, CR4.SMEP and CR4.SMAP (4.14's
    // byte-mask form: x = 0xAA, w = 0xCC, u = 0xF0 over the 8 access combinations).
    b.func("update_permission_bitmask", |b| {
        let a = &mut b.asm;
        a.push(rbx)?;
        a.push(r12)?;
        a.mov(rbx, rdi)?;
        a.mov(r12d, esi)?;
        a.xor(r8d, r8d)?;
        a.xor(r9d, r9d)?;
        a.xor(r10d, r10d)?;
        a.mov(rax, vc(v::CR4))?;
        a.bt(eax, 20)?;
        a.setc(r9b)?; // smep
        a.bt(eax, 21)?;
        a.setc(r10b)?; // smap
        a.mov(rax, vc(v::CR0))?;
        a.bt(eax, 16)?;
        a.setc(r8b)?; // wp
        a.xor(ecx, ecx)?;
        let mut top = a.create_label();
        a.set_label(&mut top)?;
        a.mov(edx, ecx)?;
        a.shl(edx, 1)?; // pfec
        let skip = |a: &mut CodeAssembler, test_bits: i32, op: &dyn Fn(&mut CodeAssembler) -> R| -> R {
            let mut l = a.create_label();
            a.test(dl, test_bits)?;
            a.jz(l)?;
            op(a)?;
            a.set_label(&mut l)
        };
        a.xor(r11d, r11d)?;
        skip(a, 2, &|a| a.mov(r11d, 0x33u32))?; // wf = ~w
        a.xor(eax, eax)?;
        skip(a, 4, &|a| a.mov(eax, 0x0Fu32))?; // uf = ~u
        skip(a, 16, &|a| a.or(eax, 0x55))?; // ff = ~x
        let mut fin = a.create_label();
        a.test(r12d, r12d)?;
        a.jnz(fin)?;
        // Not EPT: kf = user pages seen by supervisor accesses; WP, SMEP, SMAP.
        a.mov(edi, 0xF0u32)?;
        skip(a, 4, &|a| a.xor(edi, edi))?;
        let mut wp = a.create_label();
        a.test(r8d, r8d)?;
        a.jnz(wp)?;
        a.test(dl, 4)?;
        a.jnz(wp)?;
        a.xor(r11d, r11d)?;
        a.set_label(&mut wp)?;
        let mut no_smep = a.create_label();
        a.test(r9d, r9d)?;
        a.jz(no_smep)?;
        skip(a, 16, &|a| a.or(eax, edi))?;
        a.zero_bytes()?;
        a.set_label(&mut no_smep)?;
        let mut no_smap = a.create_label();
        a.test(r10d, r10d)?;
        a.jz(no_smap)?;
        a.test(dl, 12)?;
        a.jnz(no_smap)?;
        a.or(eax, edi)?;
        a.set_label(&mut no_smap)?;
        a.zero_bytes()?;
        a.set_label(&mut fin)?;
        a.or(eax, r11d)?;
        a.mov(byte_ptr(rbx + rcx + mmu::PERMISSIONS), al)?;
        a.inc(ecx)?;
        a.cmp(ecx, 16)?;
        a.jb(top)?;
        a.pop(r12)?;
        a.pop(rbx)?;
        a.ret()
    })?;

    // __reset_rsvds_bits_mask_ept(rdi = rsvd_bits_validate, esi = maxphyaddr, edx =
    // execonly): the reserved bits of EPT entries per level, large pages, bad memory types.
    b.func("__reset_rsvds_bits_mask_ept", |b| {
        let a = &mut b.asm;
        rsvd_bits_hi(a)?; // r8 = rsvd_bits(maxphyaddr, 51)
        let store = |a: &mut CodeAssembler, i: u64, j: u64, extra: u64| -> R {
            a.mov(rax, r8)?;
            if extra != 0 {
                a.mov(rcx, extra)?;
                a.or(rax, rcx)?;
            }
            a.mov(qword_ptr(rdi + (i * 5 + j) * 8), rax)
        };
        store(a, 0, 4, 0xF8)?;
        store(a, 0, 3, 0xF8)?;
        store(a, 0, 2, 0x78)?;
        store(a, 0, 1, 0x78)?;
        store(a, 0, 0, 0)?;
        store(a, 1, 4, 0xF8)?;
        store(a, 1, 3, 0xF8)?;
        store(a, 1, 2, 0x3FFF_F000)?;
        store(a, 1, 1, 0x1F_F000)?;
        store(a, 1, 0, 0)?;
        let bad = (0xFFu64 << 16) | (0xFF << 24) | (0xFF << 56) | 0x0404_0404_0404_0404 | 0x4040_4040_4040_4040;
        a.mov(rax, bad)?;
        let mut exec = a.create_label();
        a.test(edx, edx)?;
        a.jnz(exec)?;
        a.mov(rcx, 0x1010_1010_1010_1010u64)?;
        a.or(rax, rcx)?;
        a.set_label(&mut exec)?;
        a.mov(qword_ptr(rdi + 80), rax)?;
        a.ret()
    })?;

    // __reset_rsvds_bits_mask(rdi = rsvd_bits_validate, esi = maxphyaddr, edx = nx, ecx =
    // gbpages), 4-level paging: the reserved bits of guest page-table entries.
    b.func("__reset_rsvds_bits_mask", |b| {
        let a = &mut b.asm;
        a.xor(r9d, r9d)?; // exb_bit_rsvd
        let mut nx = a.create_label();
        a.test(edx, edx)?;
        a.jnz(nx)?;
        a.bts(r9, 63)?;
        a.set_label(&mut nx)?;
        a.xor(r10d, r10d)?; // gbpages_bit_rsvd
        let mut gb = a.create_label();
        a.test(ecx, ecx)?;
        a.jnz(gb)?;
        a.bts(r10, 7)?;
        a.set_label(&mut gb)?;
        rsvd_bits_hi(a)?;
        a.or(r8, r9)?; // exb | rsvd_bits(maxphyaddr, 51)
        a.mov(qword_ptr(rdi + 80), 0)?; // bad_mt_xwr
        let entries: [(u64, u64, bool, u64); 8] = [
            (0, 3, false, 0x80),
            (0, 2, true, 0),
            (0, 1, false, 0),
            (0, 0, false, 0),
            (1, 3, false, 0x80),
            (1, 2, true, 0x3FFF_E000),
            (1, 1, false, 0x1F_E000),
            (1, 0, false, 0),
        ];
        for (i, j, gbp, extra) in entries {
            a.mov(rax, r8)?;
            if gbp {
                a.or(rax, r10)?;
            }
            if extra != 0 {
                a.or(rax, extra as i32)?;
            }
            a.mov(qword_ptr(rdi + (i * 5 + j) * 8), rax)?;
        }
        a.ret()
    })?;

    // kvm_init_shadow_ept_mmu(edi = execonly, esi = accessed_dirty): vcpu->arch.mmu set up
    // to shadow the nested guest's EPT.
    b.func("kvm_init_shadow_ept_mmu", |b| {
        let perm = b.label("update_permission_bitmask");
        let rsvd = b.label("__reset_rsvds_bits_mask_ept");
        let a = &mut b.asm;
        let c = L::VCPU + v::KVM_MMU;
        a.push(rbx)?;
        a.push(r12)?;
        a.mov(ebx, edi)?;
        a.mov(r12d, esi)?;
        a.mov(qword_ptr(c + mmu::SHADOW_ROOT_LEVEL), 4)?;
        a.mov(qword_ptr(c + mmu::NX), 1)?;
        a.mov(qword_ptr(c + mmu::EPT_AD), r12)?;
        // page_fault, gva_to_gpa, sync_page, invlpg, update_pte: the ept_* callbacks.
        for i in 0..5u64 {
            a.mov(qword_ptr(c + mmu::CALLBACKS + 8 * i), 0x1000 + i as i32)?;
        }
        a.mov(qword_ptr(c + mmu::ROOT_LEVEL), 4)?;
        a.mov(qword_ptr(c + mmu::DIRECT_MAP), 0)?;
        a.mov(rax, qword_ptr(c + mmu::BASE_ROLE))?;
        a.and(eax, !(mmu::ROLE_AD_DISABLED | mmu::ROLE_DIRECT))?;
        a.or(eax, mmu::ROLE_GUEST_MODE)?;
        let mut ad = a.create_label();
        a.test(r12d, r12d)?;
        a.jnz(ad)?;
        a.or(eax, mmu::ROLE_AD_DISABLED)?;
        a.set_label(&mut ad)?;
        a.mov(qword_ptr(c + mmu::BASE_ROLE), rax)?;
        a.mov(rdi, c)?;
        a.mov(esi, 1u32)?;
        a.call(perm)?;
        a.mov(qword_ptr(c + mmu::PKRU_MASK), 0)?; // update_pkru_bitmask: none with EPT
        a.mov(qword_ptr(c + mmu::LAST_NONLEAF), 4)?; // update_last_nonleaf_level
        a.mov(rdi, c + mmu::GUEST_RSVD)?;
        a.mov(esi, MAXPHYADDR)?;
        a.mov(edx, ebx)?;
        a.call(rsvd)?;
        a.mov(rdi, c + mmu::SHADOW_ZERO)?;
        a.mov(esi, MAXPHYADDR)?;
        a.mov(edx, ebx)?;
        a.call(rsvd)?;
        a.pop(r12)?;
        a.pop(rbx)?;
        a.ret()
    })?;

    // init_kvm_mmu: the nested guest's walk MMU (init_kvm_nested_mmu) while its EPT is
    // shadowed, else the TDP MMU (init_kvm_tdp_mmu), each for 64-bit paging.
    b.func("init_kvm_mmu", |b| {
        let perm = b.label("update_permission_bitmask");
        let rsvd = b.label("__reset_rsvds_bits_mask");
        let rsvd_ept = b.label("__reset_rsvds_bits_mask_ept");
        let find = b.label("kvm_find_cpuid_entry");
        let a = &mut b.asm;
        a.push(rbx)?;
        // reset_rsvds_bits_mask(vcpu, context at rbx): GBPAGES and the vendor from the
        // guest's CPUID, NX from its EFER.
        let reset_rsvds = |a: &mut CodeAssembler| -> R {
            guest_cpuid_has(a, find, 0x8000_0001, 28, 26)?;
            a.setc(al)?;
            a.movzx(ecx, al)?;
            a.push(rcx)?;
            // guest_cpuid_is_amd: leaf 0's vendor (only AMD sets nonleaf bit 8 reserved).
            a.mov(esi, 0u32)?;
            a.xor(edx, edx)?;
            a.call(find)?;
            a.pop(rcx)?;
            let mut intel = a.create_label();
            a.test(rax, rax)?;
            a.jz(intel)?;
            a.cmp(dword_ptr(rax + 20), 0x6874_7541)?; // "Auth"
            a.set_label(&mut intel)?;
            a.mov(rdx, qword_ptr(rbx + mmu::NX))?;
            a.lea(rdi, qword_ptr(rbx + mmu::GUEST_RSVD))?;
            a.mov(esi, MAXPHYADDR)?;
            a.call(rsvd)
        };
        let mut nested = a.create_label();
        let mut common = a.create_label();
        a.cmp(qword_ptr(L::VCPU + v::WALK_MMU_NESTED), 0)?;
        a.jne(nested)?;
        // init_kvm_tdp_mmu.
        a.mov(rbx, L::VCPU + v::KVM_MMU)?;
        a.xor(eax, eax)?;
        let mut not_guest = a.create_label();
        a.cmp(qword_ptr(L::VCPU + v::N_GUEST_MODE), 0)?;
        a.je(not_guest)?;
        a.or(eax, mmu::ROLE_GUEST_MODE)?;
        a.set_label(&mut not_guest)?;
        a.or(eax, mmu::ROLE_DIRECT)?;
        a.mov(qword_ptr(rbx + mmu::BASE_ROLE), rax)?;
        for i in 0..9u64 {
            a.mov(qword_ptr(rbx + mmu::CALLBACKS + 8 * i), 0x2000 + i as i32)?;
        }
        a.mov(qword_ptr(rbx + mmu::SHADOW_ROOT_LEVEL), 4)?; // get_tdp_level: 4-level EPT
        a.mov(qword_ptr(rbx + mmu::DIRECT_MAP), 1)?;
        a.jmp(common)?;
        // init_kvm_nested_mmu.
        a.set_label(&mut nested)?;
        a.mov(rbx, L::VCPU + v::NESTED_MMU)?;
        for i in [6u64, 7, 8] {
            a.mov(qword_ptr(rbx + mmu::CALLBACKS + 8 * i), 0x3000 + i as i32)?;
        }
        a.set_label(&mut common)?;
        // 64-bit paging: NX from EFER, 4 levels, the guest's reserved bits, gva_to_gpa.
        a.mov(rax, vc(v::ARCH_EFER))?;
        a.shr(eax, 11)?;
        a.and(eax, 1)?;
        a.mov(qword_ptr(rbx + mmu::NX), rax)?;
        a.mov(qword_ptr(rbx + mmu::ROOT_LEVEL), 4)?;
        reset_rsvds(a)?;
        a.mov(qword_ptr(rbx + mmu::CALLBACKS + 8), 0x4000)?;
        a.mov(rdi, rbx)?;
        a.xor(esi, esi)?;
        a.call(perm)?;
        // update_pkru_bitmask: CR4.PKE is off.
        let mut no_pke = a.create_label();
        a.test(dword_ptr(L::VCPU + v::CR4), 1 << 22)?;
        a.jz(no_pke)?;
        a.set_label(&mut no_pke)?;
        a.mov(qword_ptr(rbx + mmu::PKRU_MASK), 0)?;
        a.mov(qword_ptr(rbx + mmu::LAST_NONLEAF), 4)?;
        // reset_tdp_shadow_zero_bits_mask (the TDP MMU only).
        let mut done = a.create_label();
        a.cmp(qword_ptr(L::VCPU + v::WALK_MMU_NESTED), 0)?;
        a.jne(done)?;
        a.lea(rdi, qword_ptr(rbx + mmu::SHADOW_ZERO))?;
        a.mov(esi, MAXPHYADDR)?;
        a.xor(edx, edx)?;
        a.call(rsvd_ept)?;
        a.set_label(&mut done)?;
        a.pop(rbx)?;
        a.ret()
    })?;

    // kvm_mmu_reset_context: unload the root, set the MMU up again for the current mode.
    b.func("kvm_mmu_reset_context", |b| {
        let unload = b.label("kvm_mmu_unload");
        let init = b.label("init_kvm_mmu");
        let a = &mut b.asm;
        a.call(unload)?;
        a.jmp(init)
    })?;

    // kvm_mmu_get_page(rdi = root gfn key, esi = direct) -> rax = the root's table, rcx = its
    // shadow-page header, rdx = the EPT02 slot (shadow roots): the role, the hash bucket of
    // the gfn, the walk of its pages for one with that gfn and role. A shadowed EPT root not
    // found reuses the oldest of EPT02_ROOTS slots (emptied; INVEPT of every context, as its
    // table address now maps another EPTP).
    b.func("kvm_mmu_get_page", |b| {
        let a = &mut b.asm;
        a.mov(rax, qword_ptr(L::VCPU + v::KVM_MMU + mmu::BASE_ROLE))?;
        a.and(eax, !0xF)?;
        a.or(eax, 4)?;
        a.mov(r10, rax)?; // role
                          // kvm_page_table_hashfn(gfn) = hash_64(gfn, 12).
        a.mov(rax, rdi)?;
        a.shr(rax, 12)?;
        a.mov(rcx, 0x61C8_8646_80B5_83EBu64)?;
        a.imul_2(rax, rcx)?;
        a.shr(rax, 52)?;
        let mut shadow = a.create_label();
        let mut hit = a.create_label();
        a.test(esi, esi)?;
        a.jz(shadow)?;
        a.mov(rax, L::EPT01)?;
        a.mov(rcx, L::VCPU + v::SP_EPT01)?;
        a.mov(edx, -1i32)?;
        a.jmp(hit)?;
        a.set_label(&mut shadow)?;
        let mut found = a.create_label();
        for i in 0..EPT02_ROOTS {
            let mut next = a.create_label();
            a.cmp(rdi, qword_ptr(L::VCPU + N_EPT02_TAGS + 8 * i))?;
            a.jne(next)?;
            a.mov(edx, i as u32)?;
            a.jmp(found)?;
            a.set_label(&mut next)?;
        }
        // A new root: the oldest slot, emptied.
        a.mov(rdx, vc(N_EPT02_VICTIM))?;
        a.lea(ecx, dword_ptr(rdx + 1))?;
        a.and(ecx, (EPT02_ROOTS - 1) as i32)?;
        a.mov(vc(N_EPT02_VICTIM), rcx)?;
        a.mov(qword_ptr(rdx * 8 + (L::VCPU + N_EPT02_TAGS)), rdi)?;
        a.imul_3(rax, rdx, EPT02_SLICE as i32)?;
        a.mov(rcx, L::EPT02_POOL)?;
        a.add(rax, rcx)?;
        a.lea(rcx, qword_ptr(rax + 0x1000))?;
        a.mov(qword_ptr(rdx * 8 + (L::VCPU + N_EPT02_NEXTS)), rcx)?;
        a.push(rdx)?;
        a.push(rdi)?;
        a.mov(rdi, rax)?;
        a.mov(ecx, 512u32)?;
        a.xor(eax, eax)?;
        a.rep().stosq()?;
        a.mov(qword_ptr(L::VCPU + N_DESC), 0)?;
        a.mov(qword_ptr(L::VCPU + N_DESC + 8), 0)?;
        a.mov(eax, 2u32)?;
        a.invept(rax, xmmword_ptr(L::VCPU + N_DESC))?;
        a.pop(rdi)?;
        a.pop(rdx)?;
        a.set_label(&mut found)?;
        a.imul_3(rax, rdx, EPT02_SLICE as i32)?;
        a.mov(rcx, L::EPT02_POOL)?;
        a.add(rax, rcx)?;
        a.imul_3(rcx, rdx, sp::SIZE as i32)?;
        a.add(rcx, (L::VCPU + v::SP_EPT02) as i32)?;
        a.set_label(&mut hit)?;
        // sp->unsync, sp->unsync_children (KVM_REQ_MMU_SYNC): never set here;
        // __clear_sp_write_flooding_count.
        a.cmp(qword_ptr(rcx + sp::UNSYNC), 0)?;
        a.cmp(qword_ptr(rcx + sp::UNSYNC_CHILDREN), 0)?;
        a.ret()
    })?;

    // kvm_mmu_sync_roots: shadow roots only; mmu_sync_children stops at a root without
    // unsync children.
    b.func("kvm_mmu_sync_roots", |b| {
        let a = &mut b.asm;
        let mut out = a.create_label();
        a.mov(rax, vc(v::MMU_ROOT_HPA))?;
        a.cmp(rax, -1)?;
        a.je(out)?;
        a.cmp(qword_ptr(L::VCPU + v::KVM_MMU + mmu::DIRECT_MAP), 0)?;
        a.jne(out)?;
        spin_lock(a, L::VCPU + v::MMU_LOCK)?;
        a.mov(rax, vc(v::MMU_ROOT_HPA))?;
        page_header(a)?;
        a.cmp(qword_ptr(rcx + sp::UNSYNC_CHILDREN), 0)?;
        spin_unlock(a, L::VCPU + v::MMU_LOCK)?;
        a.set_label(&mut out)?;
        a.ret()
    })?;

    // kvm_mmu_load: the memory caches topped up (they are full), a root for the current MMU
    // (mmu_alloc_direct_roots / mmu_alloc_shadow_roots), kvm_mmu_sync_roots, set_cr3.
    b.func("kvm_mmu_load", |b| {
        let get_page = b.label("kvm_mmu_get_page");
        let sync = b.label("kvm_mmu_sync_roots");
        let memslot = b.label("kvm_vcpu_gfn_to_memslot");
        let set_cr3 = b.label("vmx_set_cr3");
        let a = &mut b.asm;
        a.push(rbx)?;
        for (i, min) in [(0u64, 12i32), (1, 8), (2, 4)] {
            let mut full = a.create_label();
            a.cmp(qword_ptr(L::VCPU + v::MMU_CACHE_NOBJS + 8 * i), min)?;
            a.jge(full)?;
            a.set_label(&mut full)?;
        }
        let mut shadow = a.create_label();
        let mut sync_l = a.create_label();
        a.cmp(qword_ptr(L::VCPU + v::KVM_MMU + mmu::DIRECT_MAP), 0)?;
        a.je(shadow)?;
        // mmu_alloc_direct_roots.
        spin_lock(a, L::VCPU + v::MMU_LOCK)?;
        a.mov(rax, vc(v::MMU_PAGES_MAX))?;
        a.sub(rax, vc(v::MMU_PAGES_USED))?; // make_mmu_pages_available
        a.xor(edi, edi)?;
        a.mov(esi, 1u32)?;
        a.call(get_page)?;
        a.inc(qword_ptr(rcx + sp::ROOT_COUNT))?;
        spin_unlock(a, L::VCPU + v::MMU_LOCK)?;
        a.mov(vc(v::MMU_ROOT_HPA), rax)?;
        a.jmp(sync_l)?;
        // mmu_alloc_shadow_roots: root_gfn from the nested guest's EPTP (nested_ept_get_cr3),
        // mmu_check_root (kvm_is_visible_gfn).
        a.set_label(&mut shadow)?;
        a.mov(rax, vc(v::N_VMCS12))?;
        a.mov(rbx, qword_ptr(rax + off12(f::EPT_POINTER)))?;
        a.mov(rdi, rbx)?;
        a.shr(rdi, 12)?;
        a.call(memslot)?;
        spin_lock(a, L::VCPU + v::MMU_LOCK)?;
        a.mov(rax, vc(v::MMU_PAGES_MAX))?;
        a.sub(rax, vc(v::MMU_PAGES_USED))?;
        a.mov(rdi, rbx)?;
        a.xor(esi, esi)?;
        a.call(get_page)?;
        a.inc(qword_ptr(rcx + sp::ROOT_COUNT))?;
        spin_unlock(a, L::VCPU + v::MMU_LOCK)?;
        a.mov(vc(v::MMU_ROOT_HPA), rax)?;
        // The model's bookkeeping for nested_ept_fault: the slice this root allocates from.
        a.mov(vc(N_EPT02_CUR), rdx)?;
        a.mov(vc(v::N_EPT02_FOR), rax)?;
        a.lea(rcx, qword_ptr(rax + EPT02_SLICE))?;
        a.mov(vc(N_EPT02_END), rcx)?;
        a.set_label(&mut sync_l)?;
        a.call(sync)?;
        a.mov(rdi, vc(v::MMU_ROOT_HPA))?;
        a.call(set_cr3)?;
        a.pop(rbx)?;
        a.xor(eax, eax)?;
        a.ret()
    })?;
    Ok(())
}

/// r8 = rsvd_bits(esi = maxphyaddr, 51) = ((1 << (52 - maxphyaddr)) - 1) << maxphyaddr.
fn rsvd_bits_hi(a: &mut CodeAssembler) -> R {
    a.mov(ecx, 52u32)?;
    a.sub(ecx, esi)?;
    a.mov(r8d, 1u32)?;
    a.shl(r8, cl)?;
    a.dec(r8)?;
    a.mov(ecx, esi)?;
    a.shl(r8, cl)
}
