//! The word loop of the places where runs of digits are read (`[msisdn]`): the request
//! target (`target.rs`) and lines read for runs (`cookie.rs`). One global function for
//! both: the verifier checks the loop once, not once per path of the scan callback that
//! reaches one of its copies.

use leakguard_common::swar;

use crate::{maps::SCRATCH, verifier::forget};

use super::{base64::lanes_from, target::TARGET_WORDS};

/// `leakguard_run_words`' result: the position is in the low bits; these say what is
/// there.
pub(super) const STOP: u32 = 1 << 30;
pub(super) const FLAG: u32 = 1 << 31;
pub(super) const AT: u32 = STOP - 1;

/// Reads the words from `st.pos` up to the first byte that ends the place (the SP or
/// control that ends the target when `target` is 1, else the LF that ends the line:
/// `STOP`) or a flagged byte (a digit closing nine, or a base64 trigger: `FLAG`), at most
/// `TARGET_WORDS` of them. Returns that byte's position with its bit, or where the words
/// ran out (at most `st.n`; stale bytes past it flag nothing).
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn leakguard_run_words(target: u32) -> i64 {
    let Some(s) = SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: per-CPU value, ours for the program run (see `machine::advance`).
    let s = unsafe { &mut *s };
    let (pos, n) = (s.st.pos, s.st.n);
    // The stop test of either place, chosen without a branch.
    let tmask = 0u64.wrapping_sub(u64::from(target & 1));
    let mut w = pos & !7;
    let mut keep = lanes_from(s, pos);
    // The previous word's lanes: a run or a base64 number cut by the last call's word
    // limit (which ends on a word boundary) is seen whole, and a trigger's leads before
    // `pos` count. Lanes of bytes before the window's scanned ones only raise flags the
    // slow paths reject (they read nothing before `old_n`).
    let mut prev = if w >= 8 {
        swar::number_lanes(s.word(w - 8), !0)
    } else {
        0
    };
    let (mut stop, mut flag) = (0u64, 0u64);
    let mut k = 0;
    while k < TARGET_WORDS {
        if w >= n {
            break;
        }
        let x = s.word(w);
        let m = swar::number_lanes(x, keep);
        flag = swar::number_flags(prev, m, keep);
        stop = ((swar::target_end(x) & tmask) | (swar::lf(x) & !tmask)) & keep;
        if stop | flag != 0 {
            break;
        }
        prev = m;
        keep |= swar::HIGHS;
        w += 8;
        k += 1;
    }
    let w = forget(&mut s.st.pos, w);
    let flag = swar::flags_to_highs(flag);
    let hit = stop | flag;
    if hit == 0 {
        return i64::from(w.min(n));
    }
    // The first hit: a stop's lowest flag is exact, and a digit's or a lead's flags all are.
    let at = w + swar::first(hit);
    if at >= n {
        // Past the window's end (stale bytes): every byte up to `n` was taken.
        return i64::from(n);
    }
    let kind = if flag & hit & hit.wrapping_neg() != 0 {
        FLAG
    } else {
        STOP
    };
    i64::from(at | kind)
}
