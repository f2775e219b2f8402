//! The window loop: the payload copied into the scratch window a window at a time,
//! scanned (and remembered redactions repeated), and written back where redacted. The
//! scan and refill loops sit behind global functions the verifier checks once.

use core::ffi::c_void;

use aya_ebpf::helpers::generated::bpf_loop;
use leakguard_common::{flow::parser::F_B64_CUT, MAX_SPANS, SCAN_CHUNK, SCAN_WINDOW};

use crate::{
    maps::{scratch, SCRATCH},
    packet::Packet,
    state::Scratch,
    verifier::{helper_len, written},
};

use super::{
    base64::{lead_add, leakguard_b64_carry},
    machine::advance,
    number::number_pending,
    redact::refill,
};

/// Inputs of the window loop, on the program's stack, read by `window`. The callback
/// writes its results to the per-CPU `ScanState`, never here: the verifier re-checks a
/// callback until the caller's state stops changing, and every constant written to the
/// stack would be a new state.
#[repr(C)]
pub struct Windows {
    pub pkt: *mut c_void,
    pub payload_off: u32,
    /// Payload bytes the loop visits (scanned, or with redactions to repeat).
    pub end: u32,
}

/// `at - off` clamped to `[0, n]`: a payload offset as a position in the window.
#[inline(always)]
pub(super) fn clamp_to(at: u32, off: u32, n: u32) -> u32 {
    if at > off {
        (at - off).min(n)
    } else {
        0
    }
}

/// `bpf_loop` callback: copies window `idx` of the payload into the scratch buffer, scans
/// it, and writes it back if a value in it was redacted. Returns 1 to end the loop.
#[inline(never)]
pub extern "C" fn window<P: Packet>(idx: u32, ctx: *mut c_void) -> i64 {
    // SAFETY: `ctx` is the `Windows` on the caller's stack (see `scan`).
    let w = unsafe { &*ctx.cast::<Windows>() };
    // SAFETY: the pointer came from `P::raw` in this program run.
    let p = unsafe { P::from_raw(w.pkt) };
    let Some(s) = scratch() else {
        return 1;
    };
    let off = idx * SCAN_WINDOW as u32;
    if off >= w.end {
        return 1;
    }
    let Some(n) = helper_len(
        u64::from((w.end - off).min(SCAN_WINDOW as u32)),
        SCAN_WINDOW as u64,
    ) else {
        return 1;
    };
    let n = n as u32;
    if p.load(w.payload_off + off, s.buf.as_mut_ptr(), n) != 0 {
        s.st.load_failed = 1;
        return 1;
    }
    s.st.n = n;
    s.st.win_off = off;
    s.st.dirty = 0;
    // Bytes before `refill_end` were sent before: their remembered redactions are
    // repeated. Scanning runs from `start` to `limit`.
    let old = clamp_to(s.st.refill_end, off, n);
    if old != 0 && s.st.f.nspans != 0 {
        refill_window(s, old);
    }
    // Written to map memory and read back: every path above reaches the scan with one
    // verifier state.
    // SAFETY: fields of the per-CPU value.
    let (from, scan_end) = unsafe {
        core::ptr::write_volatile(&mut s.st.n, clamp_to(s.st.limit, off, n));
        core::ptr::write_volatile(&mut s.st.old_n, clamp_to(s.st.start, off, n));
        (
            core::ptr::read_volatile(&s.st.old_n),
            core::ptr::read_volatile(&s.st.n),
        )
    };
    if from < scan_end {
        if s.st.f.flags & F_B64_CUT != 0 {
            // The last window ended inside a base64 stretch (`scan::base64`).
            s.st.pos = from;
            leakguard_b64_carry();
            written(s);
        }
        scan_window(s, from);
        if s.st.drop != 0 {
            return 1;
        }
        number_pending(s);
        let end = if s.st.stop != 0 {
            s.st.stopped_at
        } else {
            scan_end
        };
        s.st.scanned += end.saturating_sub(from);
    }
    if s.st.dirty != 0 && store_dirty(&p, s, w.payload_off + off, n) != 0 {
        s.st.store_failed = 1;
        return 1;
    }
    i64::from(s.st.stop != 0)
}

/// Writes the redacted bytes of the window back to the packet: the 128 bytes from the
/// 64-byte boundary below them when they span at most 64 (one value: the common case),
/// the 512 from the 256-byte boundary when they span at most 256, else the whole window.
/// Less copied is less time, and on TC less of the checksum re-summed.
#[inline(always)]
pub(super) fn store_dirty<P: Packet>(p: &P, s: &Scratch, at: u32, n: u32) -> i64 {
    let (lo, hi) = (s.st.dirty_lo, s.st.dirty_hi);
    if hi > lo && lo < n {
        if hi - lo <= 64 {
            return store_chunk::<P, 64>(p, s, at, n, lo);
        }
        if hi - lo <= 256 {
            return store_chunk::<P, 256>(p, s, at, n, lo);
        }
    }
    p.store(at, s.buf.as_ptr(), n)
}

/// Stores the `2 × ALIGN` bytes of the window from the `ALIGN` boundary below `lo` (fewer
/// at the window's end): they hold every byte from `lo` to `lo + ALIGN`.
#[inline(always)]
pub(super) fn store_chunk<P: Packet, const ALIGN: u32>(
    p: &P,
    s: &Scratch,
    at: u32,
    n: u32,
    lo: u32,
) -> i64 {
    const { assert!(SCAN_WINDOW as u32 % ALIGN == 0 && ALIGN.is_power_of_two()) };
    // An aligned start below SCAN_WINDOW and a length of at most 2 × ALIGN (and at most
    // `n - c`): the verifier sees the copy stays inside the scratch value.
    let c = lo & (SCAN_WINDOW as u32 - ALIGN);
    let len = u64::from((n - c.min(n)).min(2 * ALIGN));
    if len == 0 {
        return 0;
    }
    let Some(len) = helper_len(len, u64::from(2 * ALIGN)) else {
        return -1;
    };
    // SAFETY: `c + len <= n <= SCAN_WINDOW`: the bytes lie inside `buf`.
    let src = unsafe { s.buf.as_ptr().add(c as usize) };
    p.store(at + c, src, len as u32)
}

/// Scans the `st.n` bytes of the window, from byte `from`.
#[inline(always)]
pub fn scan_window(s: &mut Scratch, from: u32) {
    s.st.pos = from;
    leakguard_scan_window();
}

/// The scan loop of a window, a global function. The verifier checks a global function
/// once, on its own, where it follows a static one (and the `bpf_loop` callbacks inside
/// it) again for every distinct caller state that reaches the call. Linux 6.1's verifier
/// marks every scalar of every frame precise once it tracks a value across a call, so
/// few caller states look alike there: the scan callback, followed per caller state, took
/// it past its 1,000,000-instruction limit. Behind this one call per window it is
/// checked once. (A global body per callback instead cost 2-6 ns per callback.)
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn leakguard_scan_window() -> i64 {
    let Some(s) = scratch() else {
        return 0;
    };
    let n = s.st.n;
    // The run loops' base64 switch, once per window here (checked once; in the per-packet
    // setup it cost 6.1's verifier 7,000 instructions, in each loop a few operations).
    s.st.lead_add = lead_add(s.st.pkt.msisdn_on);
    // Every callback consumes at least one byte, so `n` callbacks always suffice; the
    // loop normally ends far sooner (the callback returns 1 at the window's end).
    // SAFETY: `advance` has the callback signature bpf_loop expects; it finds its state
    // through the per-CPU map, so no context pointer is passed.
    unsafe {
        bpf_loop(
            n,
            advance as *const () as *mut c_void,
            core::ptr::null_mut(),
            0,
        );
    }
    0
}

/// Repeats the flow's remembered redactions on the first `old` bytes of the window.
#[inline(always)]
pub fn refill_window(s: &mut Scratch, old: u32) {
    s.st.old_n = old;
    s.st.rj = 0;
    s.st.rpos = 0;
    leakguard_refill_window();
}

/// The refill loop of a window, a global function checked once (see
/// `leakguard_scan_window`).
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn leakguard_refill_window() -> i64 {
    let Some(s) = SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: per-CPU value, ours for the program run (see `advance`).
    let old = unsafe { (*s).st.old_n };
    // Each call fills up to SCAN_CHUNK bytes or moves to the next span.
    // SAFETY: `refill` has the callback signature; its state is in the per-CPU map.
    unsafe {
        bpf_loop(
            old / SCAN_CHUNK + 2 * MAX_SPANS as u32 + 1,
            refill as *const () as *mut c_void,
            core::ptr::null_mut(),
            0,
        );
    }
    0
}
