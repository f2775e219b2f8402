//! The pipeline both hooks share: count → parse → port filter → scan → act.

use core::ffi::c_void;

use aya_ebpf::helpers::generated::bpf_loop;
use leakguard_common::{
    name::{CLASS, C_TCHAR},
    stats_index, Stats, CANARY_SLOT, IFSLOT_ENTRIES, MAX_SCAN_BYTES, MAX_WINDOWS, SCAN_WINDOW,
};

use crate::{
    act::csum_diff,
    bound::opaque64,
    http::scan_window,
    maps::{ACTIVE, CONFIG, IFSLOT, PORTS, SCRATCH, STATS},
    parse::{parse, Flow, Parsed},
    pkt::{ptr_at, Packet},
    policy::PacketMeta,
};

/// Inputs of the window loop, on the program's stack, read by `window`. The callback
/// writes its results to the per-CPU `ScanState`, never here: the verifier re-checks a
/// callback until the caller's state stops changing, and every constant written to the
/// stack would be a new state.
#[repr(C)]
struct Windows {
    pkt: *mut c_void,
    payload_off: u32,
    limit: u32,
}

/// `bpf_loop` callback: copies window `idx` of the payload into the scratch buffer, scans
/// it, and writes it back if a value in it was redacted. Returns 1 to end the loop.
#[inline(never)]
extern "C" fn window<P: Packet>(idx: u32, ctx: *mut c_void) -> i64 {
    // SAFETY: `ctx` is the `Windows` on the caller's stack (see `scan`).
    let w = unsafe { &*ctx.cast::<Windows>() };
    // SAFETY: the pointer came from `P::raw` in this program run.
    let p = unsafe { P::from_raw(w.pkt) };
    let Some(s) = SCRATCH.get_ptr_mut(0) else {
        return 1;
    };
    // SAFETY: per-CPU value, ours for the program run.
    let s = unsafe { &mut *s };
    let off = idx * SCAN_WINDOW as u32;
    if off >= w.limit || s.st.stop != 0 {
        return 1;
    }
    // Two checks with a barrier between them: merged into one range check by LLVM, they
    // would leave the verifier without a lower bound for the helper's length.
    let n = opaque64(u64::from((w.limit - off).min(SCAN_WINDOW as u32)));
    if n == 0 {
        return 1;
    }
    let n = opaque64(n);
    if n > SCAN_WINDOW as u64 {
        return 1;
    }
    let n = n as u32;
    if p.load(w.payload_off + off, s.buf.as_mut_ptr(), n) != 0 {
        s.st.load_failed = 1;
        return 1;
    }
    s.st.n = n;
    s.st.win_off = off;
    s.st.dirty = 0;
    scan_window(s);
    if s.st.drop != 0 {
        return 1;
    }
    if s.st.dirty != 0 && p.store(w.payload_off + off, s.buf.as_ptr(), n) != 0 {
        s.st.store_failed = 1;
        return 1;
    }
    s.st.scanned += if s.st.stop != 0 { s.st.stopped_at } else { n };
    0
}

pub enum Verdict {
    Pass,
    Drop,
}

#[inline(always)]
pub fn guard<P: Packet>(p: &P, hook: u8) -> Verdict {
    // The counters of this interface and hook: one array load finds the slot.
    let ifindex = p.ifindex();
    let canary = p.is_canary();
    let slot = if canary {
        CANARY_SLOT
    } else {
        match IFSLOT.get(ifindex % IFSLOT_ENTRIES) {
            Some(s) if s.ifindex == ifindex => s.slot,
            _ => 0,
        }
    };
    let Some(stats) = STATS.get_ptr_mut(stats_index(slot, hook)) else {
        return Verdict::Pass;
    };
    // SAFETY: per-CPU value, only this program run touches it.
    let stats = unsafe { &mut *stats };
    stats.packets += 1;
    let flow = match parse(p) {
        Parsed::Tcp(flow) => flow,
        Parsed::Fragment => {
            stats.fragments += 1;
            return Verdict::Pass;
        }
        Parsed::Other => return Verdict::Pass,
    };
    // One read of the generation: this packet sees one policy throughout.
    let gen = ACTIVE.get(0).map_or(0, |g| *g & 1);
    match PORTS.get(gen) {
        Some(ports) if ports.contains(flow.dport) => {}
        _ => return Verdict::Pass,
    }
    stats.tcp_http += 1;
    // A request line starts with a method token: a segment whose first byte cannot
    // (a body, TLS on the wrong port) passes before any scan setup.
    // Two bytes, not one: LLVM turns a one-byte check `p + 1 > end` into `p >= end`,
    // from which the verifier learns no readable range.
    if let Some(b) = ptr_at::<[u8; 2], P>(p, flow.payload_off as usize) {
        // SAFETY: bounds checked by `ptr_at`.
        if CLASS[usize::from(unsafe { (*b)[0] })] & C_TCHAR == 0 {
            return Verdict::Pass;
        }
    }
    let payload_len = flow.payload_len(p);
    if payload_len == 0 {
        return Verdict::Pass;
    }
    scan(p, &flow, payload_len, hook, canary, gen, stats)
}

#[inline(always)]
fn scan<P: Packet>(
    p: &P,
    flow: &Flow,
    payload_len: u32,
    hook: u8,
    canary: bool,
    gen: u32,
    stats: &mut Stats,
) -> Verdict {
    let Some(cfg) = CONFIG.get(gen) else {
        return Verdict::Pass;
    };
    let limit = cfg.max_payload_bytes.min(MAX_SCAN_BYTES).min(payload_len);
    let Some(s) = SCRATCH.get_ptr_mut(0) else {
        stats.errors += 1;
        return Verdict::Pass;
    };
    // SAFETY: per-CPU value; XDP and TC run with bottom halves disabled, so no other
    // program run on this CPU can interleave with ours.
    let s = unsafe { &mut *s };
    s.st.reset();
    s.st.pkt = PacketMeta {
        ifindex: p.ifindex(),
        hook,
        family: flow.family,
        allow_known: 0,
        canary: u8::from(canary),
        sport: flow.sport,
        dport: flow.dport,
        gen,
        allow_mask: 0,
        saddr: flow.saddr,
        daddr: flow.daddr,
    };

    let mut w = Windows {
        pkt: p.raw(),
        payload_off: flow.payload_off,
        limit,
    };
    // An outer bpf_loop rather than a counted loop: the verifier then checks the window
    // body (and the scan callback inside it) once, not once per possible window.
    // SAFETY: `window::<P>` has the callback signature; `w` outlives the call.
    unsafe {
        bpf_loop(
            MAX_WINDOWS,
            window::<P> as *const () as *mut c_void,
            core::ptr::from_mut(&mut w).cast(),
            0,
        );
    }
    let st = &s.st;
    let scanned = st.scanned;
    let store_failed = st.store_failed != 0;
    if st.load_failed != 0 {
        stats.errors += 1;
    }
    stats.bytes += u64::from(scanned);
    stats.heads += u64::from(st.heads);
    stats.lines += u64::from(st.lines);
    stats.malformed += u64::from(st.malformed);
    stats.events_lost += u64::from(st.events_lost);
    if st.in_head() && limit < payload_len {
        stats.truncated += 1;
    }
    if st.drop != 0 {
        stats.dropped_packets += 1;
        return Verdict::Drop;
    }
    if st.redacted != 0 {
        // Fail closed: a value that could not be fully overwritten must not leave.
        if store_failed || p.update_l4_csum(flow.csum_off, csum_diff(st.sum_old, st.sum_new)) != 0 {
            stats.errors += 1;
            stats.dropped_packets += 1;
            return Verdict::Drop;
        }
        stats.redacted_packets += 1;
    }
    Verdict::Pass
}
