//! Identity numbers in base64 form (`form::BASE64`, see `leakguard_common::b64`): where
//! runs of digits are read (the request target, cookies, values read inside), the word
//! loops also flag a *trigger*, a byte `L`-`O` with `L`-`O` 4 and 8 bytes back
//! (`swar::number_flags`' bit-6 lanes). Here a trigger's characters are staged and
//! `b64::decide` reads the stretch of digits they encode; a stretch of at most 15 digits,
//! known whole, is handed to `leakguard_number_decide` like a run of digits.
//!
//! A stretch cut by a window or segment end is not carried: each piece is read alone
//! (`docs/threat-model.md`).

use leakguard_common::{
    b64::{self, outcome},
    form, swar,
};

use crate::{
    maps::SCRATCH,
    state::Scratch,
    verifier::{opaque, written},
};

/// The run loops' starting `keep`: digit lanes from `pos` on, lead lanes everywhere when
/// the base64 form is on (`form::B64_ON`), none when it is off. No branch: a word's leads
/// then never flag.
#[inline(always)]
pub(super) fn lanes_from(s: &Scratch, pos: u32) -> u64 {
    let on = u64::from((s.st.pkt.msisdn_on & form::B64_ON) >> 5);
    (swar::bytes_from(pos & 7) & swar::HIGHS) | (on * swar::LEADS)
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
    let Some(s) = SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: per-CPU value, ours for the program run (see `machine::advance`).
    let s = unsafe { &mut *s };
    let t = s.st.pos;
    let (lo, n) = (s.st.old_n, s.st.n);
    let base = t.wrapping_sub(b64::BACK);
    let mut k = 0;
    while k < b64::STAGED {
        let i = base.wrapping_add(opaque(k));
        // A sign bit, not a comparison (which BPF would branch on): `i` is within 20 bytes
        // of `t`, and `lo <= t`, so the difference fits an i32.
        let before = 0u8.wrapping_sub((i.wrapping_sub(lo) >> 31) as u8);
        let v = b64::VALUE[usize::from(s.at(i))];
        s.st.b64_buf[k as usize & 63] = v | before;
        k += 1;
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
    let f = &mut s.st.f;
    f.num_bcd = r.bcd;
    f.num_len = r.digits;
    f.num_start = at.wrapping_add(r.first);
    f.num_end = at.wrapping_add(r.end);
    let end = base.wrapping_add(r.end);
    // The decision resumes at the span's last character (see `leakguard_number_decide`).
    f.tok += end - 1 - t;
    s.st.b64 = u32::from(form::BASE64);
    s.st.pos = end;
    1
}
