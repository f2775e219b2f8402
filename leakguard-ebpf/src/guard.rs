//! The pipeline both hooks share: count → parse → port filter → scan → act.

use leakguard_common::{Stats, MAX_SCAN_BYTES, MAX_WINDOWS, SCAN_WINDOW};

use crate::{
    act::csum_diff,
    bound::opaque64,
    http::scan_window,
    maps::{CONFIG, PORTS, SCRATCH, STATS},
    parse::{parse, Flow, Parsed},
    pkt::Packet,
    policy::PacketMeta,
};

pub enum Verdict {
    Pass,
    Drop,
}

#[inline(always)]
pub fn guard<P: Packet>(p: &P, hook: u8) -> Verdict {
    let Some(stats) = STATS.get_ptr_mut(0) else {
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
    match PORTS.get(0) {
        Some(ports) if ports.contains(flow.dport) => {}
        _ => return Verdict::Pass,
    }
    stats.tcp_http += 1;
    let payload_len = flow.payload_len(p);
    if payload_len == 0 {
        return Verdict::Pass;
    }
    scan(p, &flow, payload_len, hook, stats)
}

#[inline(always)]
fn scan<P: Packet>(p: &P, flow: &Flow, payload_len: u32, hook: u8, stats: &mut Stats) -> Verdict {
    let Some(cfg) = CONFIG.get(0) else {
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
        _pad: 0,
        sport: flow.sport,
        dport: flow.dport,
        _pad2: 0,
        allow_mask: 0,
        saddr: flow.saddr,
        daddr: flow.daddr,
    };

    let mut off = 0u32;
    let mut scanned = 0u32;
    let mut store_failed = false;
    let mut w = 0;
    while w < MAX_WINDOWS {
        if off >= limit || s.st.stop != 0 {
            break;
        }
        // Two checks with a barrier between them: merged into one range check by LLVM,
        // they would leave the verifier without a lower bound for the helper's length.
        let n = opaque64(u64::from((limit - off).min(SCAN_WINDOW as u32)));
        if n == 0 {
            break;
        }
        let n = opaque64(n);
        if n > SCAN_WINDOW as u64 {
            break;
        }
        let n = n as u32;
        if p.load(flow.payload_off + off, s.buf.as_mut_ptr(), n) != 0 {
            stats.errors += 1;
            break;
        }
        s.st.n = n;
        s.st.win_off = off;
        s.st.dirty = 0;
        scan_window(s);
        if s.st.drop != 0 {
            break;
        }
        if s.st.dirty != 0 && p.store(flow.payload_off + off, s.buf.as_ptr(), n) != 0 {
            store_failed = true;
            break;
        }
        scanned += if s.st.stop != 0 { s.st.stopped_at } else { n };
        off += n;
        w += 1;
    }

    let st = &s.st;
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
