//! Verifier-facing helpers: LLVM may prove a bound the verifier cannot follow (through
//! register copies, 32-bit sub-registers, merged compares) and then delete the very check
//! or mask the verifier needs. `opaque` hides a value from LLVM so the check stays.
//! `copy_words` and `zero_words` move memory a word at a time, where LLVM would call
//! BPF's byte-at-a-time memcpy or memset.

/// Returns `v` unchanged, through an asm move (one instruction) LLVM cannot see into.
#[inline(always)]
pub fn opaque(v: u32) -> u32 {
    opaque64(u64::from(v)) as u32
}

/// [`opaque`] for a 64-bit value. Bounds checks on a helper's length argument must be
/// made on the 64-bit register that is passed: a check on a zero-extended 32-bit copy
/// does not carry over to the original in the verifier's eyes.
#[inline(always)]
pub fn opaque64(mut v: u64) -> u64 {
    // SAFETY: a register-to-itself move that only "changes" the register.
    unsafe {
        core::arch::asm!("{0} = {0}", inout(reg) v, options(nomem, nostack, preserves_flags))
    };
    v
}

/// `v` when `0 < v <= max`: a length the verifier accepts for a helper that copies
/// into a buffer of `max` bytes. One unsigned compare of `v - 1` against `max` gives
/// both bounds, and the length passed on is computed from the compared register: 6.1's
/// verifier learns no lower bound from `v != 0`, and LLVM, left to itself, merges two
/// checks into this same compare on a copy and passes the unchecked original.
#[inline(always)]
pub fn helper_len(v: u64, max: u64) -> Option<u64> {
    let m = opaque64(v.wrapping_sub(1));
    if m >= max {
        return None;
    }
    Some(m + 1)
}

/// Tells LLVM that `*p` may have changed: a global function (which finds the per-CPU
/// scratch value through its own map lookup) wrote it while the caller held `p`. Without
/// this, LLVM may serve reads after the call from values loaded before it, since no
/// pointer it can see reached the callee. One register move.
#[inline(always)]
pub fn written<T>(p: &mut T) {
    let mut v = core::ptr::from_mut(p) as u64;
    // SAFETY: a register-to-itself move; the pointer is only shown to the compiler.
    unsafe { core::arch::asm!("{0} = {0}", inout(reg) v, options(nostack, preserves_flags)) };
    let _ = v;
}

/// Returns `v` as an unknown value to the verifier: a round trip through map memory,
/// whose contents the verifier does not track. Used where a loop's many exits (each
/// with its own precise counter) would otherwise each be explored through the code
/// after the loop.
#[inline(always)]
pub fn forget(slot: &mut u32, v: u32) -> u32 {
    // SAFETY: `slot` is a valid, exclusive reference.
    unsafe {
        core::ptr::write_volatile(slot, v);
        core::ptr::read_volatile(slot)
    }
}

/// Copies `N` 8-byte words, volatile so LLVM cannot turn it into a call to BPF's
/// byte-at-a-time memcpy/memmove (which the verifier then walks byte by byte).
///
/// # Safety
/// Both pointers must be valid and 8-byte aligned for `N` words.
#[inline(always)]
pub unsafe fn copy_words<const N: usize>(dst: *mut u8, src: *const u8) {
    let (d, s) = (dst.cast::<u64>(), src.cast::<u64>());
    let mut i = 0;
    while i < N {
        // SAFETY: per the contract.
        unsafe { core::ptr::write_volatile(d.add(i), core::ptr::read_volatile(s.add(i))) };
        i += 1;
    }
}

/// Zeroes `N` 8-byte words, volatile so LLVM cannot merge the stores back into a call to
/// BPF's byte-at-a-time memset.
///
/// # Safety
/// `dst` must be valid and 8-byte aligned for `N` words.
#[inline(always)]
pub unsafe fn zero_words<const N: usize>(dst: *mut u8) {
    let d = dst.cast::<u64>();
    let mut i = 0;
    while i < N {
        // SAFETY: per the contract.
        unsafe { core::ptr::write_volatile(d.add(i), 0) };
        i += 1;
    }
}
