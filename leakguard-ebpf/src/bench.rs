//! Programs for the benchmark only (the `bench` feature; not in the shipped object): the
//! empty programs of each hook, and the floor of a scan.
//!
//! The floor (`cargo xtask bench`): the part of
//! the scanner's work no design of it can skip, and nothing else. The frame is copied
//! into the scratch window, as the scanner copies a payload, and every 8-byte word of it
//! is tested for an LF (`swar::lf`, two words per iteration, as the line skip does). No
//! parsing, no state, no lookups: a request scanned for its line starts costs at least
//! this, so the bench can say how much of a target the bare reading already takes.

use leakguard_common::swar;

use aya_ebpf::{
    bindings::{xdp_action, TC_ACT_UNSPEC},
    macros::{classifier, xdp},
    programs::{TcContext, XdpContext},
};

use crate::{
    maps::scratch,
    packet::{Packet, Tc, Xdp},
    verifier::helper_len,
};

/// Baselines for the benchmarks: the cheapest programs of each hook.
#[xdp]
pub fn baseline_xdp_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

#[classifier]
pub fn baseline_tc_pass(_ctx: TcContext) -> i32 {
    TC_ACT_UNSPEC
}

/// The floor of a scan (`floor`): copy the frame, test every word for an LF.
#[xdp]
pub fn baseline_xdp_lf(ctx: XdpContext) -> u32 {
    floor(&Xdp(ctx.ctx));
    xdp_action::XDP_PASS
}

#[classifier]
pub fn baseline_tc_lf(ctx: TcContext) -> i32 {
    floor(&Tc(ctx.skb.skb));
    TC_ACT_UNSPEC
}

/// Bytes the floor reads at most: the bench times it on frames of up to 4 KiB.
const FLOOR_BYTES: u64 = 4096;

#[inline(always)]
fn floor<P: Packet>(p: &P) {
    let Some(s) = scratch() else {
        return;
    };
    let Some(n) = helper_len(u64::from(p.len()).min(FLOOR_BYTES), FLOOR_BYTES) else {
        return;
    };
    if p.load(0, s.buf.as_mut_ptr(), n as u32) != 0 {
        return;
    }
    let n = n as u32;
    let mut lines = 0u32;
    let mut w = 0u32;
    while w < FLOOR_BYTES as u32 {
        if w >= n {
            break;
        }
        let (lo, hi) = (swar::lf(s.word(w)), swar::lf(s.word(w + 8)));
        lines += u32::from(lo != 0) + u32::from(hi != 0);
        w += 16;
    }
    // Kept, so that the loop is not optimized away (the scanner resets it every run).
    s.st.lines = lines;
}
