//! Identity numbers in base64 form (`form::BASE64`, see `leakguard_common::b64`): where
//! runs of digits are read (the request target, cookies, values read inside), the word
//! loops also flag a *trigger*, a byte `L`-`O` with `L`-`O` 4 and 8 bytes back
//! (`swar::number_flags`' bit-6 lanes). Here a trigger's characters are staged and
//! `b64::decide` reads the stretch of digits they encode; a stretch of at most 15 digits,
//! known whole, is handed to `leakguard_number_decide` like a run of digits.
//!
//! A stretch cut by a window or segment end is read in pieces, each alone. Under
//! `redact`, fail closed: a stretch open at the cut whose digits so far may begin a
//! number is overwritten up to the cut (`b64_cut`), and the next window overwrites the
//! characters that continue it (`leakguard_b64_carry`).

use core::ffi::c_void;

use aya_ebpf::helpers::generated::bpf_loop;
use leakguard_common::{
    action,
    b64::{self, outcome},
    flow::parser::{B64_LAST_SHIFT, F_B64_CUT, F_B64_LAST, F_RUNS, S_SKIP, S_TARGET},
    form, place, swar, MSISDN_MAX_DIGITS, NO_ALLOW_GROUP,
};

use crate::{
    maps::scratch,
    policy,
    state::Scratch,
    verifier::{forget, opaque, written},
};

use super::decide::{possible, redact_span, HEX_BYTES};

/// Characters the next window overwrites after a cut (`F_B64_CUT`): the rest of a
/// 15-digit stretch with at least one digit before the cut.
const CARRY_CHARS: u32 = 20;

/// At a window's end in a place read for runs: keeps its last character for the next
/// window (`F_B64_LAST`). Then, under `redact` and unless the destination is trusted:
/// stages the `TAIL` characters before the end as `b64::VALUE`s (`NONE` before its
/// scanned bytes) and, in each of the four phases (`b64_phase`), reads the stretch open
/// at the cut; one with 1-15 digits that may begin a number is overwritten from its
/// first character to the cut, and `F_B64_CUT` set. A global function: the verifier
/// checks it once.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn leakguard_b64_cut() -> i64 {
    let Some(s) = scratch() else {
        return 0;
    };
    let st = &mut s.st;
    let runs = (st.f.state == S_TARGET && st.pkt.msisdn_on & place::bit(place::TARGET) != 0)
        || (st.f.state == S_SKIP && st.f.flags & F_RUNS != 0);
    if st.stop != 0 || !runs || st.pkt.msisdn_on & form::B64_ON == 0 {
        return 0;
    }
    let (lo, n) = (st.old_n, st.n);
    st.f.flags &= !(F_B64_LAST | 63 << B64_LAST_SHIFT);
    if n <= lo {
        return 0;
    }
    let last = u32::from(b64::VALUE[usize::from(s.at(n - 1))]);
    if last >> 6 != 0 {
        // The stream ends before the cut: nothing is open.
        return 0;
    }
    let st = &mut s.st;
    st.f.flags |= F_B64_LAST | last << B64_LAST_SHIFT;
    if st.pkt.msisdn_action != action::REDACT {
        return 0;
    }
    let group = st.pkt.msisdn_allow_group;
    if group != NO_ALLOW_GROUP && policy::allowed(&mut st.pkt, group) {
        return 0;
    }
    stage(s, n.wrapping_sub(b64::TAIL), b64::TAIL, lo);
    // The phases in a `bpf_loop`: its callback is checked once, not once per phase.
    s.st.b64 = n;
    // SAFETY: `b64_phase` has the callback signature; its state is in the per-CPU map.
    unsafe {
        bpf_loop(
            4,
            b64_phase as *const () as *mut c_void,
            core::ptr::null_mut(),
            0,
        );
    }
    written(s);
    let from = forget(&mut s.st.rpos, s.st.b64);
    s.st.b64 = 0;
    if from < n {
        redact_span::<HEX_BYTES>(s, from, n);
        s.st.f.flags |= F_B64_CUT;
    }
    0
}

/// `bpf_loop` callback of `leakguard_b64_cut`: the stretch open at the cut in phase
/// `k`; where one that may be a number starts is kept in `st.b64` (the earliest).
#[inline(never)]
extern "C" fn b64_phase(k: u32, _ctx: *mut c_void) -> i64 {
    let Some(s) = scratch() else {
        return 1;
    };
    let r = b64::tail(&s.st.b64_buf, k & 3, opaque);
    if (1..=MSISDN_MAX_DIGITS).contains(&r.digits) && possible(&s.st, r.bcd, r.digits) {
        let at = s.st.n.wrapping_sub(b64::TAIL).wrapping_add(r.first);
        s.st.b64 = s.st.b64.min(at);
    }
    0
}

/// The window's first characters after a cut that left `F_B64_CUT`: up to
/// `CARRY_CHARS` of the alphabet from `st.pos` are overwritten (fail closed: the stretch
/// they continue was overwritten up to the cut). A global function, called once per
/// window that needs it, from the window loop.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn leakguard_b64_carry() -> i64 {
    let Some(s) = scratch() else {
        return 0;
    };
    let (pos, n) = (s.st.pos, s.st.n);
    let mut k = 0;
    while k < CARRY_CHARS {
        let i = pos + k;
        if i >= n || b64::VALUE[usize::from(s.at(i))] >> 6 != 0 {
            break;
        }
        k += 1;
    }
    let end = forget(&mut s.st.rpos, pos + k);
    redact_span::<HEX_BYTES>(s, pos, end);
    s.st.f.flags &= !F_B64_CUT;
    0
}

/// Stages `count` characters from window position `base` into `b64_buf`, as
/// `b64::VALUE`s, `NONE` before `lo`.
#[inline(always)]
fn stage(s: &mut Scratch, base: u32, count: u32, lo: u32) {
    let mut k = 0;
    while k < count {
        let i = base.wrapping_add(opaque(k));
        // A sign bit, not a comparison (which BPF would branch on): `i` is within 24
        // bytes of a position at or after `lo`, so the difference fits an i32.
        let before = 0u8.wrapping_sub((i.wrapping_sub(lo) >> 31) as u8);
        let v = b64::VALUE[usize::from(s.at(i))];
        s.st.b64_buf[k as usize & 63] = v | before;
        k += 1;
    }
}

/// The run loops' `swar::lanes` `lead_add` (kept in `ScanState::lead_add` for the
/// window): `swar::LEAD_ADD` when the base64 form is on (`form::B64_ON` in `msisdn_on`),
/// 0 when it is off. No branch: a word then has no lead lanes.
#[inline(always)]
pub(super) fn lead_add(msisdn_on: u8) -> u64 {
    u64::from((msisdn_on & form::B64_ON) >> 5) * swar::LEAD_ADD
}

/// The run loops' lanes of the word before `w` (none when `w` is the window's first), for
/// a loop going on inside a place after `digits::number_call`: a trigger's leads before
/// the loop's start count. Lanes of bytes before the window's scanned ones only raise
/// flags the slow paths reject (they read nothing before `old_n`). No branch: with one,
/// the verifier followed what comes after twice.
#[inline(always)]
pub(super) fn prev_lanes(s: &Scratch, w: u32) -> u64 {
    // All ones when `w >= 8`: `w` is below 2^31.
    let some = 0u64.wrapping_sub(u64::from((w.wrapping_sub(8) >> 31) ^ 1));
    swar::lanes(s.word(w.wrapping_sub(8)), s.st.lead_add) & some
}

/// A trigger at `st.pos` (a flagged byte that is not a digit): stages the characters
/// around it and reads the stretch. Returns 1 when a stretch of at most 15 digits was
/// read whole: `num_*` then hold it (its span as sequence numbers), `st.b64` its form and
/// `st.pos` the span's end, for `leakguard_number_decide`. Else 0, with `st.pos` past the
/// trigger.
///
/// A global function, at the call depth of `leakguard_target_number` (its frame counts
/// against 6.1's 512 bytes the same way). The staging and `b64::decide` are
/// straight-line: the verifier walks them once.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn leakguard_b64_number() -> i64 {
    let Some(s) = scratch() else {
        return 0;
    };
    let t = s.st.pos;
    let (lo, n) = (s.st.old_n, s.st.n);
    let base = t.wrapping_sub(b64::BACK);
    stage(s, base, b64::STAGED, lo);
    let flags = s.st.f.flags;
    if flags & F_B64_LAST != 0 {
        // The last window's last character, just before this one's first.
        let at = lo.wrapping_sub(1).wrapping_sub(base);
        if at < b64::STAGED {
            s.st.b64_buf[at as usize & 63] = (flags >> B64_LAST_SHIFT) as u8 & 63;
        }
    }
    // Characters from the window's end on are stale bytes: `decide` reads none of them
    // as known (`n - base`, the end as a staged index).
    let r = b64::decide(&mut s.st.b64_buf, n.wrapping_sub(base), opaque);
    // Positions are read again rather than kept across `decide`: held in registers, they
    // were spilled past the 64-byte frame 6.1 allows here.
    written(s);
    // SAFETY: a field of the per-CPU value.
    let t = unsafe { core::ptr::read_volatile(&s.st.pos) };
    let base = t.wrapping_sub(b64::BACK);
    if r.outcome != outcome::TAKEN {
        s.st.pos = t + 1;
        s.st.f.tok += 1;
        return 0;
    }
    let at = s.st.seq.wrapping_add(s.st.win_off).wrapping_add(base);
    // A span that starts on the last window's last character (`F_B64_LAST`) starts here
    // for the redaction: that character has left.
    let lo = s.st.old_n;
    let f = &mut s.st.f;
    f.num_bcd = r.bcd;
    f.num_len = r.digits;
    f.num_start = at.wrapping_add(r.first.max(b64::BACK.saturating_sub(t - lo)));
    f.num_end = at.wrapping_add(r.end);
    let end = base.wrapping_add(r.end);
    // The decision resumes at the span's last character (see `leakguard_number_decide`).
    f.tok += end - 1 - t;
    s.st.b64 = u32::from(form::BASE64);
    s.st.pos = end;
    1
}
