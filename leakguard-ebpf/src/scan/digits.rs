//! Runs of digits outside header values (`[msisdn]`): in the request target
//! (`target.rs`) and in a `Cookie` value (`cookie.rs`). Those runs read words and flag a
//! digit with digits 2, 4, 6 and 8 bytes back (`swar::runs_of_nine`: nine digits in a row
//! always hold one); here a flagged run is found, read a byte at a time and decided.
//!
//! The reading and the decision are a global function (`leakguard_target_number`), checked
//! once by the verifier. A run cut by a window or segment end is carried in the flow's
//! `num_*` fields (`F_NUM_VAL`), as a header value's digits are, and `number_pending`
//! overwrites its digits so far under `redact`. A run right after `%` starts with the
//! escape's two hex digits (`%20447700900123` is a space, then the number): they are read
//! but are not the number's.

use leakguard_common::{
    flow::{
        bcd_digit,
        parser::{F_COOKIE, F_NUM_VAL, F_VALUE_RUNS},
    },
    name::{LABEL, TARGET_PART_END},
    MAX_NAME_LEN, MSISDN_MAX_DIGITS,
};

use crate::{
    maps::SCRATCH,
    state::Scratch,
    verifier::{forget, written, zero_words},
};

use super::decide::{act_on_number, is_number};

/// Digits looked at before a flagged one to find where its run began: a run of more is
/// too long to be a number (15 digits and a two-digit escape at most).
const RUN_BACK: u32 = 24;

/// Digits a run reads per call; a longer run goes on in the next call.
const RUN_BYTES: u32 = 32;

/// Bytes looked at, back from a number, for the query parameter's name and its start.
const NAME_BACK: u32 = 64;

/// `num_len` of a run known to be too long (over `MSISDN_MAX_DIGITS` digits).
const TOO_LONG: u32 = MSISDN_MAX_DIGITS + 1;

/// Runs `leakguard_target_number` from window position `at`; returns where the scan goes
/// on (past `at` when the segment is dropped, so that the scan ends there).
#[inline(always)]
pub(super) fn number_call(s: &mut Scratch, at: u32) -> u32 {
    s.st.pos = at;
    leakguard_target_number();
    written(s);
    // SAFETY: a field of the per-CPU value; read back as the global left it.
    let next = unsafe { core::ptr::read_volatile(&s.st.pos) };
    if s.st.stop != 0 && next <= at {
        return at + 1;
    }
    next
}

/// A digit at `st.pos` in the target, flagged by `target_scan` or continuing an open run:
/// reads the run as far as this call goes and decides it where a non-digit ends it. A
/// global function: the verifier checks it once, not once per state of the scan callback
/// that calls it.
///
/// On Linux 6.1 the stack of every frame from the program to here counts against 512
/// bytes (each frame rounded up to 32): program 288, window callback 64, scan loop 32,
/// scan callback 64, this 64. Reading the run inline in the scan callback instead cost
/// newer verifiers 3.5 times their budget.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn leakguard_target_number() -> i64 {
    let Some(s) = SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: per-CPU value, ours for the program run (see `machine::advance`).
    let s = unsafe { &mut *s };
    let n = s.st.n;
    let mut from = s.st.pos;
    if s.st.f.flags & F_NUM_VAL == 0 {
        from = open_run(s, from);
    }
    let end = digit_run(s, from, n);
    if end < n && !s.at(end).is_ascii_digit() {
        // The run ends here: decide it.
        s.st.f.flags &= !F_NUM_VAL;
        if is_number(&s.st) {
            let start = clamp_pos(s, s.st.f.num_start, end);
            if s.st.f.flags & F_VALUE_RUNS == 0 {
                // In a header value the event names the header (`f.name` holds it).
                name_part(s, start);
            }
            if !act_on_number(s, end) {
                s.st.stop = 1;
            }
        }
    }
    s.st.pos = end;
    0
}

/// At a window's end in the target or a cookie: digits (or a `%`) there open a run,
/// carried to the next window or segment (`number_pending`).
#[inline(always)]
pub(super) fn run_pending(s: &mut Scratch) {
    let n = s.st.n;
    let lo = s.st.old_n;
    if s.st.f.flags & F_NUM_VAL != 0 || n <= lo {
        return;
    }
    let last = s.at(n - 1);
    if !last.is_ascii_digit() && last != b'%' {
        return;
    }
    let from = open_run(s, n);
    digit_run(s, from, n);
}

/// Opens a run of digits that reaches window position `j`: finds where it began (back
/// to `RUN_BACK` digits, not before the window's scanned bytes: a run that began earlier
/// was carried open) and whether a `%` escape precedes it. Returns where to read from.
#[inline(always)]
fn open_run(s: &mut Scratch, j: u32) -> u32 {
    let lo = s.st.old_n;
    let mut k = 0;
    while k < RUN_BACK {
        if j < lo + k + 1 || !s.at(j - k - 1).is_ascii_digit() {
            break;
        }
        k += 1;
    }
    let r = forget(&mut s.st.rpos, j - k);
    let escape = r > lo && s.at(r - 1) == b'%';
    let at = s.st.seq.wrapping_add(s.st.win_off + r);
    let f = &mut s.st.f;
    f.flags |= F_NUM_VAL;
    f.num_bcd = 0;
    f.num_start = at;
    f.num_end = at;
    f.num_skip = if escape { 2 } else { 0 };
    if k == RUN_BACK {
        // Too long to be a number, whatever follows: read on from `j`.
        f.num_len = TOO_LONG;
        return j;
    }
    f.num_len = 0;
    r
}

/// Reads the open run's digits from `pos`: first what remains of a `%` escape, then up to
/// `RUN_BYTES` digits into `num_*`. Returns the first position not read.
#[inline(always)]
fn digit_run(s: &mut Scratch, pos: u32, n: u32) -> u32 {
    let mut p = pos;
    let mut e = 0;
    while e < 2 {
        if s.st.f.num_skip == 0 || p >= n || !s.at(p).is_ascii_digit() {
            break;
        }
        s.st.f.num_skip -= 1;
        p += 1;
        e += 1;
    }
    let len = s.st.f.num_len;
    if len == 0 {
        // No number digit yet: the number starts here (after the escape).
        let at = s.st.seq.wrapping_add(s.st.win_off + p);
        s.st.f.num_start = at;
        s.st.f.num_end = at;
    }
    let mut bcd = 0u64;
    let mut k = 0;
    while k < RUN_BYTES {
        let i = p + k;
        if i >= n {
            break;
        }
        let b = s.at(i);
        if !b.is_ascii_digit() {
            break;
        }
        // Past the 16th digit the nibbles wrap: such a run is too long to be judged.
        bcd |= bcd_digit(b - b'0', len + k);
        k += 1;
    }
    let f = &mut s.st.f;
    f.num_bcd |= bcd;
    f.num_len = (len + k).min(TOO_LONG);
    f.num_end = f.num_end.wrapping_add(k);
    let end = forget(&mut s.st.rpos, p + k);
    s.st.f.tok += end - pos;
    end
}

/// Window position of sequence number `seq`, clamped to `[0, max]`.
#[inline(always)]
fn clamp_pos(s: &Scratch, seq: u32, max: u32) -> u32 {
    let d = seq.wrapping_sub(s.st.seq.wrapping_add(s.st.win_off)) as i32;
    if d < 0 {
        0
    } else {
        (d as u32).min(max)
    }
}

/// Names where the number starting at window position `at` lies, for the event: in the
/// target `path`, `query:NAME` (digits of NAME as `#`, see `name::LABEL`), `query` for a
/// parameter without `=`, or `target` when its start is not in this window; in a cookie
/// `cookie:NAME` or `cookie`. Written to the flow's name key, unused by then (the target
/// has none; a cookie line's name was looked up at its colon).
#[inline(always)]
fn name_part(s: &mut Scratch, at: u32) {
    let cookie = s.st.f.flags & F_COOKIE != 0;
    let lo = s.st.old_n;
    // Back to the byte that ends the part before the number.
    let mut k = 0;
    while k < NAME_BACK {
        if at < lo + k + 1 || TARGET_PART_END[usize::from(s.at(at - k - 1))] != 0 {
            break;
        }
        k += 1;
    }
    let start = forget(&mut s.st.rpos, at - k);
    let end_byte = if start > lo { s.at(start - 1) } else { 0 };
    // SAFETY: `NameKey` is MAX_NAME_LEN bytes, 8-byte aligned.
    unsafe { zero_words::<{ MAX_NAME_LEN / 8 }>(s.st.f.name.name.as_mut_ptr()) };
    let query = !cookie && matches!(end_byte, b'?' | b'&' | b';');
    let (head, head_len): (&[u8; 8], u32) = if cookie {
        (b"cookie\0\0", 6)
    } else if query {
        (b"query\0\0\0", 5)
    } else if end_byte == 0 {
        (b"target\0\0", 6)
    } else {
        (b"path\0\0\0\0", 4)
    };
    // SAFETY: the name key's first word, 8-byte aligned.
    unsafe {
        core::ptr::write(
            s.st.f.name.name.as_mut_ptr().cast::<u64>(),
            u64::from_le_bytes(*head),
        );
    }
    s.st.f.name_len = head_len;
    if !(query || cookie) {
        return;
    }
    // The parameter's (or the cookie pair's) name: from `start` to its `=`, before the
    // number.
    let mut j = 0;
    while j < NAME_BACK {
        let i = start + j;
        if i >= at || s.at(i) == b'=' {
            break;
        }
        j += 1;
    }
    let len = forget(&mut s.st.rpos, j);
    if len == 0 || start + len >= at {
        // No `=` before the number: the number is the parameter (`?447700900123`).
        return;
    }
    s.st.f.name.name[head_len as usize & (MAX_NAME_LEN - 1)] = b':';
    let mut c = 0;
    while c < (MAX_NAME_LEN - 7) as u32 {
        if c >= len {
            break;
        }
        let b = s.at(start + c);
        s.st.f.name.name[(head_len + 1 + c) as usize & (MAX_NAME_LEN - 1)] = LABEL[usize::from(b)];
        c += 1;
    }
    s.st.f.name_len = head_len + 1 + c;
}
