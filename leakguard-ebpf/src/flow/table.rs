//! The flow table (`FLOWS`) behind its hints (`FLOW_HINTS`): every insertion and removal
//! of an entry goes through here, so the hint counters never fall below the entries.

use leakguard_common::{flow::hint_slot, FlowKey, FlowState};

use crate::maps::{FLOWS, FLOW_HINTS};

/// The flow key of a segment. Its ports and its hook/family/padding word are stored
/// as whole `u32`s, the width `hint_slot` reads them at: a struct literal stores them
/// as `u16`s and bytes, and a load over narrower stores cannot take its value from them
/// (the CPU waits until they are written out; 2-7 ns a TC segment in A/B runs).
#[inline(always)]
pub fn key(
    saddr: [u8; 16],
    daddr: [u8; 16],
    sport: u16,
    dport: u16,
    ifindex: u32,
    hook: u8,
    family: u8,
) -> FlowKey {
    let mut k = FlowKey {
        saddr,
        daddr,
        sport,
        dport,
        ifindex,
        hook,
        family,
        _pad: [0; 2],
    };
    let w = core::ptr::from_mut(&mut k).cast::<u32>();
    // SAFETY: words 8 and 10 of the 4-aligned, 44-byte key; the same bytes as the
    // fields' (little endian). Volatile: else LLVM splits them back into the fields.
    unsafe {
        core::ptr::write_volatile(w.add(8), u32::from(sport) | u32::from(dport) << 16);
        core::ptr::write_volatile(w.add(10), u32::from(hook) | u32::from(family) << 8);
    }
    k
}

/// The hint counter of `key`'s slot: a `u64` shared by all CPUs, changed only by
/// [`atomic_add`].
#[inline(always)]
fn counter(key: &FlowKey) -> Option<*mut u64> {
    FLOW_HINTS.get_ptr_mut(hint_slot(key))
}

/// `*c += v`, atomically (BPF's `lock` add; Rust's atomics on the BPF target have loads
/// and stores only). Its result unused, so it needs no newer BPF instruction set.
#[inline(always)]
fn atomic_add(c: *mut u64, v: u64) {
    // SAFETY: `c` points to an aligned `u64` of a map value.
    unsafe {
        core::arch::asm!("lock *(u64 *)({0} + 0) += {1}", in(reg) c, in(reg) v, options(nostack))
    };
}

/// False when `FLOWS` surely holds no entry for `key`: no lookup is needed.
#[inline(always)]
pub fn may_have(key: &FlowKey) -> bool {
    // SAFETY: an aligned `u64` of a map value; a word load is atomic.
    counter(key).is_none_or(|c| unsafe { core::ptr::read_volatile(c) } != 0)
}

/// The entry of `key`, where its hint says there may be one.
#[inline(always)]
pub fn get(key: &FlowKey) -> Option<*mut FlowState> {
    if may_have(key) {
        FLOWS.get_ptr_mut(key)
    } else {
        None
    }
}

/// Removes `key`'s entry; its counter goes down only when there was one, after it went.
#[inline(always)]
pub fn remove(key: &FlowKey) {
    if FLOWS.remove(key).is_ok() {
        if let Some(c) = counter(key) {
            atomic_add(c, u64::MAX); // minus one
        }
    }
}

/// Inserts (or replaces) `key`'s entry. The counter goes up first: no CPU may find a
/// zero counter for an entry that exists. A replaced entry leaves it one too high (safe).
#[inline(always)]
pub fn insert(key: &FlowKey, f: &FlowState) {
    let c = counter(key);
    if let Some(c) = c {
        atomic_add(c, 1);
    }
    if FLOWS.insert(key, f, 0).is_err() {
        if let Some(c) = c {
            atomic_add(c, u64::MAX);
        }
    }
}
