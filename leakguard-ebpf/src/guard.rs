//! The pipeline both hooks share: count → parse → port filter → scan → act.

use core::ffi::c_void;

use aya_ebpf::helpers::generated::bpf_loop;
use leakguard_common::{
    action,
    flow::seq_lt,
    name::{CLASS, C_TCHAR},
    stats_index, FlowKey, FlowState, Stats, CANARY_SLOT, IFSLOT_ENTRIES, INCOMPLETE_RULE_ID,
    MAX_SCAN_BYTES, MAX_WINDOWS, SCAN_WINDOW,
};

use crate::{
    act::csum_diff,
    bound::{forget, helper_len},
    flows,
    http::{number_pending, open_head, refill_window, scan_window, Scratch},
    maps::{ACTIVE, CONFIG, FLOWS, IFSLOT, PORTS, SCRATCH, STATS},
    parse::{parse, Addr, Flow, Parsed},
    pkt::{ptr_at, Packet},
    policy,
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
    /// Payload bytes the loop visits (scanned, or with redactions to repeat).
    end: u32,
}

/// `at - off` clamped to `[0, n]`: a payload offset as a position in the window.
#[inline(always)]
fn clamp_to(at: u32, off: u32, n: u32) -> u32 {
    if at > off {
        (at - off).min(n)
    } else {
        0
    }
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
fn store_dirty<P: Packet>(p: &P, s: &Scratch, at: u32, n: u32) -> i64 {
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
fn store_chunk<P: Packet, const ALIGN: u32>(p: &P, s: &Scratch, at: u32, n: u32, lo: u32) -> i64 {
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

pub enum Verdict {
    Pass,
    Drop,
}

#[inline(always)]
pub fn guard<P: Packet>(p: &P, hook: u8) -> Verdict {
    let ifindex = p.ifindex();
    let parsed = parse(p);
    // Self-test canaries are TCP segments: other packets skip the marker check.
    let canary = matches!(parsed, Parsed::Tcp(_)) && p.is_canary();
    // The counters of this interface and hook: one array load finds the slot.
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
    let mut flow = match parsed {
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
    let Some((saddr, daddr)) = flow.complete(p) else {
        return Verdict::Pass;
    };
    let payload_len = flow.payload_len(p);
    // Canaries never touch the flow table: they are complete heads by construction.
    let key = flows::key(
        saddr.0,
        daddr.0,
        flow.sport,
        flow.dport,
        ifindex,
        hook,
        flow.family,
    );
    if flow.tcp_flags & (TCP_SYN | TCP_RST) != 0 && !canary {
        // A new or reset connection: whatever was saved for this 4-tuple is stale.
        if flows::may_have(&key) {
            flows::remove(&key);
        }
    }
    if payload_len == 0 {
        return Verdict::Pass;
    }
    // Most segments' flows have no entry, and their hint says so without a lookup.
    let entry = if canary { None } else { flows::get(&key) };
    if entry.is_none() {
        // Without saved state a segment starts a request or is not scanned: a request
        // line starts with a method token, so a segment whose first byte cannot (a body,
        // TLS on the wrong port) passes before any scan setup. Two bytes, not one: LLVM
        // turns a one-byte check `p + 1 > end` into `p >= end`, from which the verifier
        // learns no readable range.
        let first = if let Some(b) = ptr_at::<[u8; 2], P>(p, flow.payload_off as usize) {
            // SAFETY: bounds checked by `ptr_at`.
            Some(unsafe { (*b)[0] })
        } else {
            // The payload is paged (TC): copy its first bytes out.
            let mut b = [0u8; 2];
            (p.load(flow.payload_off, b.as_mut_ptr(), 2) == 0).then_some(b[0])
        };
        if first.is_some_and(|b| CLASS[usize::from(b)] & C_TCHAR == 0) {
            stats.bodies += 1;
            return Verdict::Pass;
        }
    }
    scan(
        p,
        &flow,
        payload_len,
        hook,
        slot,
        canary,
        gen,
        stats,
        &key,
        entry,
    )
}

/// `ScanState::kind`: what the segment is to its flow.
pub const KIND_NEW: u32 = 0;
/// The flow has an entry: the segment comes next in sequence, outside a head.
const KIND_NEXT: u32 = 1;
/// The flow has an entry: the segment continues its open head.
const KIND_CONT: u32 = 2;
/// The flow has an entry, its head is open, and the segment resends bytes before it.
const KIND_RESENT: u32 = 3;
/// The flow has an entry, no head is open, and the segment resends bytes: scanned
/// afresh, the entry left unchanged.
const KIND_RESCAN: u32 = 4;

/// Places the segment in its flow from the flow's saved state: the scanner state to
/// resume, and where scanning starts. Returns false when the segment must be dropped.
#[inline(always)]
fn resume(
    s: &mut Scratch,
    e: *mut FlowState,
    seq: u32,
    payload_len: u32,
    stats: &mut Stats,
) -> bool {
    copy_flow(&mut s.st.f, e.cast_const());
    s.st.kind = KIND_NEXT;
    let open = open_head(&s.st.f);
    let delta = s.st.f.next_seq.wrapping_sub(seq) as i32;
    if delta < 0 {
        if open {
            // Bytes of the head are missing (lost or reordered before this hook): what
            // this segment continues is unknown. Fail closed; TCP resends.
            stats.unordered_drops += 1;
            return false;
        }
        s.st.f.next_seq = seq;
        return true;
    }
    if delta > 0 {
        stats.retransmissions += 1;
        if s.st.f.forgot != 0 && seq_lt(seq, s.st.f.forgot_end) {
            // Redactions of these bytes are no longer remembered: never resend them
            // unredacted.
            stats.unordered_drops += 1;
            return false;
        }
        // Resent bytes get the redactions they got when first sent...
        s.st.refill_end = (delta as u32).min(payload_len);
        if open {
            // ...and the head goes on after them.
            s.st.kind = KIND_RESENT;
            s.st.start = s.st.refill_end;
        } else {
            // ...and, outside a head, the segment is scanned afresh like one of a flow
            // without state (it may fill a gap, or hold a request start); the flow's
            // state is left as it is.
            s.st.kind = KIND_RESCAN;
            s.st.f.state = 0;
            s.st.f.tok = 0;
            return true;
        }
    }
    if open && s.st.start < payload_len {
        stats.continuations += 1;
        if delta == 0 {
            s.st.kind = KIND_CONT;
        }
    }
    true
}

const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;

/// Copies a flow state word by word (volatile: a plain copy of this size becomes a call
/// to BPF's byte-at-a-time memcpy).
#[inline(always)]
fn copy_flow(dst: *mut FlowState, src: *const FlowState) {
    const WORDS: usize = core::mem::size_of::<FlowState>() / 8;
    let (d, s) = (dst.cast::<u64>(), src.cast::<u64>());
    let mut i = 0;
    while i < WORDS {
        // SAFETY: both point to 8-aligned `FlowState`s of WORDS words.
        unsafe { core::ptr::write_volatile(d.add(i), core::ptr::read_volatile(s.add(i))) };
        i += 1;
    }
}

#[inline(always)]
fn scan<P: Packet>(
    p: &P,
    flow: &Flow,
    payload_len: u32,
    hook: u8,
    slot: u32,
    canary: bool,
    gen: u32,
    stats: &mut Stats,
    key: &FlowKey,
    entry: Option<*mut FlowState>,
) -> Verdict {
    // Nothing that differs between kinds of segment may stay live across the window
    // loop: the verifier explores the loop's callbacks once per distinct caller state.
    // So the flow entry's pointer is dropped here (looked up again to save), and the
    // segment's kind lives in `ScanState`.
    let Some(cfg) = CONFIG.get(gen) else {
        return Verdict::Pass;
    };
    let max_head = cfg.max_head_bytes.min(MAX_SCAN_BYTES);
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
        msisdn_on: cfg.msisdn_on,
        msisdn_action: cfg.msisdn_action,
        msisdn_allow_group: cfg.msisdn_allow_group,
        incomplete_action: cfg.incomplete_action,
        slot,
        allow_mask: 0,
        saddr: Addr(key.saddr),
        daddr: Addr(key.daddr),
    };

    s.st.seq = flow.seq;
    s.st.f.next_seq = flow.seq;
    if let Some(e) = entry {
        if !resume(s, e, flow.seq, payload_len, stats) {
            stats.dropped_packets += 1;
            return Verdict::Drop;
        }
    }
    // A head is scanned to its end, up to `max_head_bytes` in all: a head continued from
    // earlier segments has used some of that. Old bytes before `start` are all visited
    // (their redactions repeated) whatever the limit. No segment is scanned past
    // MAX_SCAN_BYTES (the window loop's reach).
    let room = if open_head(&s.st.f) {
        let used = flow
            .seq
            .wrapping_add(s.st.start)
            .wrapping_sub(s.st.f.head_seq);
        max_head.saturating_sub(used)
    } else {
        max_head
    };
    let limit = payload_len
        .min(s.st.start.saturating_add(room))
        .min(MAX_SCAN_BYTES);
    s.st.limit = limit;
    let end = limit.max(s.st.refill_end);
    // `limit` is read back from the map after the loop, not kept in a register.
    // Through map memory: the window loop then starts from one verifier state, whatever
    // path (new head, continuation, retransmission) led here.
    let end = forget(&mut s.st.loop_end, end);

    let mut w = Windows {
        pkt: p.raw(),
        payload_off: flow.payload_off,
        end,
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
    stats.msisdn_values += u64::from(st.msisdn);
    let open = st.in_head();
    // SAFETY: a field of the per-CPU value.
    let limit = unsafe { core::ptr::read_volatile(&st.limit) };
    // SAFETY: as above.
    let loop_end = unsafe { core::ptr::read_volatile(&st.loop_end) };
    // Not seen whole: a head open where the scan had to stop (the head's cap, the window
    // loop's reach, a failed read), or resent bytes with redactions past that reach.
    let truncated = (open && (limit < payload_len || st.load_failed != 0))
        || (loop_end > MAX_SCAN_BYTES && st.f.nspans != 0);
    if truncated {
        stats.truncated += 1;
        let outcome = st.pkt.incomplete_action;
        if st.pkt.canary == 0 && !policy::emit(st, INCOMPLETE_RULE_ID, outcome) {
            stats.events_lost += 1;
        }
        if outcome == action::DROP && st.drop == 0 {
            // Fail closed: no byte of a head the guard did not read leaves. The flow's
            // state stays as it was: its retransmission meets the same end.
            stats.dropped_packets += 1;
            return Verdict::Drop;
        }
    }
    // SAFETY: a field of the per-CPU value (volatile: re-read after the loop).
    let kind = unsafe { core::ptr::read_volatile(&st.kind) };
    if (kind == KIND_NEW || kind == KIND_NEXT) && st.heads == 0 && !open {
        stats.bodies += 1;
    }
    if st.drop != 0 {
        // The flow's state stays as it was before this segment: its retransmission is
        // scanned (and dropped) again.
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
    // A segment not read to its end (scan limit, load failure) cannot be continued.
    let lost = truncated || st.load_failed != 0;
    save_flow(s, key, flow.seq.wrapping_add(payload_len), open, lost);
    Verdict::Pass
}

/// Keeps the flow's state for its next segment when it needs one: a head still open, or
/// redactions a retransmission must repeat. Otherwise the entry (if any) goes.
#[inline(always)]
fn save_flow(s: &mut Scratch, key: &FlowKey, end_seq: u32, open: bool, truncated: bool) {
    // SAFETY: a field of the per-CPU value.
    let kind = unsafe { core::ptr::read_volatile(&s.st.kind) };
    let had_entry = kind != KIND_NEW;
    if s.st.pkt.canary != 0 || (!had_entry && !open) || kind == KIND_RESCAN {
        // The common case: a head within one segment, no entry before or after.
        return;
    }
    let entry = if had_entry {
        FLOWS.get_ptr_mut(key)
    } else {
        None
    };
    let f = &mut s.st.f;
    if !open {
        // Back to "expecting a request line". Volatile: five adjacent zero stores would
        // be merged into a call to BPF's byte-at-a-time memset.
        // SAFETY: fields of the per-CPU value.
        unsafe {
            core::ptr::write_volatile(&mut f.state, 0);
            core::ptr::write_volatile(&mut f.tok, 0);
            core::ptr::write_volatile(&mut f.flags, 0);
            core::ptr::write_volatile(&mut f.name_len, 0);
            core::ptr::write_volatile(&mut f.num_len, 0);
        }
    }
    if seq_lt(f.next_seq, end_seq) {
        f.next_seq = end_seq;
    }
    // A head passed unseen past its cap (`incomplete_heads = "pass"`) cannot be
    // continued: the rest of this segment was not read.
    let keep = !truncated && (open || (had_entry && f.nspans != 0));
    match entry {
        Some(e) if keep => copy_flow(e, f),
        Some(_) => flows::remove(key),
        None if keep => flows::insert(key, f),
        None => {}
    }
}
