//! The pipeline both hooks share: count → parse → port filter → flow → scan → verdict.

use core::ffi::c_void;

use aya_ebpf::helpers::generated::bpf_loop;
use leakguard_common::{
    action, csum,
    name::{CLASS, C_TCHAR},
    stats_index, FlowKey, FlowState, Stats, CANARY_SLOT, IFSLOT_ENTRIES, INCOMPLETE_RULE_ID,
    MAX_SCAN_BYTES, MAX_WINDOWS,
};

use crate::{
    flow::{self, resume, save_flow, KIND_NEW, KIND_NEXT},
    maps::{ACTIVE, CONFIG, IFSLOT, PORTS, SCRATCH, STATS},
    packet::{
        parse::{parse, Flow, Parsed},
        ptr_at, Packet,
    },
    policy,
    proto::{Addr, TCP_RST, TCP_SYN},
    scan::window::{window, Windows},
    state::{open_head, PacketMeta},
    verifier::forget,
};

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
    let key = flow::key(
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
        if flow::may_have(&key) {
            flow::remove(&key);
        }
    }
    if payload_len == 0 {
        return Verdict::Pass;
    }
    // Most segments' flows have no entry, and their hint says so without a lookup.
    let entry = if canary { None } else { flow::get(&key) };
    if entry.is_none() {
        // Without saved state a segment starts a request or is not scanned: a request
        // line starts with a method token (after empty lines, which servers skip), so a
        // segment whose first byte cannot (a body,
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
        // During a handover such a segment is scanned instead, to be judged as a head
        // not seen whole (`in_handover`).
        if first.is_some_and(|b| CLASS[usize::from(b)] & C_TCHAR == 0 && b != b'\r' && b != b'\n')
            && !in_handover(gen)
        {
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
    s.st.payload_len = payload_len;
    s.st.csum_off = flow.csum_off;
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
    // body (and the scan callback inside it) once, not once per possible window. Here,
    // not behind a function of `scan::window`: an inlined wrapper around this call cost
    // the XDP program's verification a third more (141K instead of 106K instructions).
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
    // What the tail needs of the segment, read back from map memory: held across the
    // loop in registers or on the stack, these values (each parse path's own offsets and
    // lengths) kept the paths apart after it on 6.1, whose verifier marks every scalar
    // precise across the loop's callbacks.
    // SAFETY: fields of the per-CPU value.
    let (payload_len, csum_off) = unsafe {
        (
            core::ptr::read_volatile(&st.payload_len),
            core::ptr::read_volatile(&st.csum_off),
        )
    };
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
    // SAFETY: a field of the per-CPU value (volatile: re-read after the loop).
    let kind = unsafe { core::ptr::read_volatile(&st.kind) };
    // A segment of a flow without state that starts no request, while the daemon hands
    // over from maps of another layout: it may continue a head the old programs saw
    // begin and whose state is not carried over yet.
    let unknown = kind == KIND_NEW && st.heads == 0 && !open && in_handover(st.pkt.gen);
    let truncated = (open && (limit < payload_len || st.load_failed != 0))
        || (loop_end > MAX_SCAN_BYTES && st.f.nspans != 0)
        || unknown;
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
    if (kind == KIND_NEW || kind == KIND_NEXT) && st.heads == 0 && !open {
        stats.bodies += 1;
    }
    if st.drop != 0 {
        // The flow's state stays as it was before this segment: its retransmission is
        // scanned (and dropped) again.
        stats.dropped_packets += 1;
        return Verdict::Drop;
    }
    // A segment not read to its end (scan limit, load failure) cannot be continued.
    let lost = truncated || st.load_failed != 0;
    if st.redacted != 0 {
        let diff = csum::diff(st.sum_old, st.sum_new);
        // Fail closed: a value that could not be fully overwritten must not leave.
        if store_failed || p.update_l4_csum(csum_off, diff, &mut s.st.csum_field) != 0 {
            stats.errors += 1;
            stats.dropped_packets += 1;
            return Verdict::Drop;
        }
        stats.redacted_packets += 1;
    }
    save_flow(s, key, flow.seq.wrapping_add(payload_len), open, lost);
    Verdict::Pass
}

/// True while the daemon hands the guard over from maps of another layout
/// (`ScanConfig::handover`): read only for segments that start no request and have no
/// flow entry.
#[inline(always)]
fn in_handover(gen: u32) -> bool {
    CONFIG.get(gen).is_some_and(|c| c.handover != 0)
}
