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
        bcd_digit, hex_tail,
        parser::{F_COOKIE, F_NUM_VAL, F_VALUE_RUNS},
        RAW_DIGITS,
    },
    form,
    name::{LABEL, TARGET_PART_END},
    MAX_NAME_LEN, MSISDN_MAX_DIGITS, MSISDN_MIN_DIGITS,
};

use crate::{
    maps::scratch,
    state::{ScanState, Scratch},
    verifier::{forget, written, zero_words},
};

use super::{
    base64::{leakguard_b64_number, prev_lanes},
    decide::{act_on_number, is_number_of, HEX_BYTES},
};

/// Digits looked at before a flagged one to find where its run began: a run of more is
/// too long to be a number (15 digits and a two-digit escape at most).
const RUN_BACK: u32 = 24;

/// Digits a run reads per call; a longer run goes on in the next call.
const RUN_BYTES: u32 = 32;

/// Bytes looked at, back from a number, for the query parameter's name and its start.
const NAME_BACK: u32 = 64;

/// `num_len` of a run whose start is not known (more than `RUN_BACK` digits before the
/// flag): too long to be a decimal number, and its pairs for the hex form are not known.
/// It stays at least this however many digits follow.
const LOST: u32 = 1 << 20;

/// Runs `leakguard_target_number` from window position `at`; returns where the scan goes
/// on (past `at` when the segment is dropped, so that the scan ends there).
#[inline(always)]
pub(super) fn number_call(s: &mut Scratch, at: u32) -> u32 {
    s.st.pos = at;
    // A flagged byte that is not a digit, outside a run, is a base64 trigger.
    if s.st.f.flags & F_NUM_VAL == 0 && !s.at(at).is_ascii_digit() {
        if leakguard_b64_number() != 0 {
            written(s);
            leakguard_number_decide();
        }
        written(s);
        leakguard_resume();
    } else if leakguard_target_number() != 0 {
        written(s);
        leakguard_number_decide();
    }
    written(s);
    // SAFETY: a field of the per-CPU value; read back as the global left it.
    let next = unsafe { core::ptr::read_volatile(&s.st.pos) };
    if s.st.stop != 0 && next <= at {
        return at + 1;
    }
    next
}

/// The run loop goes on at `st.pos` after a base64 trigger (past it, or at the last
/// character of the span it read): the word before counts there (a later trigger's
/// leads), so its lanes are left for the loop (`ScanState::prev`). Not after a run of
/// digits: it ends on a byte that is no digit, and a base64 number after it has all its
/// leads from that byte on. A global function: inline, its values took one more slot
/// of the scan callback's frame, which 6.1's 512 bytes of call-chain stack do not have.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn leakguard_resume() -> i64 {
    let Some(s) = scratch() else {
        return 0;
    };
    s.st.prev = prev_lanes(s, s.st.pos & !7);
    0
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
    let Some(s) = scratch() else {
        return 0;
    };
    let n = s.st.n;
    let mut from = s.st.pos;
    if s.st.f.flags & F_NUM_VAL == 0 {
        from = open_run(s, from);
    }
    let (end, stretch_ends) = digit_run(s, from, n);
    s.st.pos = end;
    let run_ends = end < n && !s.at(end).is_ascii_digit();
    if run_ends {
        s.st.f.flags &= !F_NUM_VAL;
    }
    i64::from(run_ends || stretch_ends)
}

/// The run, or a hex stretch inside it, ends at `st.pos` (`leakguard_target_number`
/// said so), or a base64 stretch's span does (`leakguard_b64_number`): decides it, and
/// past a hex stretch's end (a digit, the first of a pair that is not `3d`) starts the
/// next stretch. A global function of its own, called right after
/// the one that read the run: together in one they took a frame of 96 bytes, which 6.1's
/// 512 bytes of call-chain stack do not have.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn leakguard_number_decide() -> i64 {
    let Some(s) = scratch() else {
        return 0;
    };
    let end = s.st.pos;
    if is_number_of(&s.st, run_digits(&s.st)) {
        let start = clamp_pos(s, s.st.f.num_start, end);
        if s.st.f.flags & F_VALUE_RUNS == 0 {
            // In a header value the event names the header (`f.name` holds it).
            name_part(s, start);
        }
        if !act_on_number::<HEX_BYTES>(s, end) {
            s.st.stop = 1;
        }
    }
    if s.st.b64 != 0 {
        // The scan goes on at the span's last character: it is never a trigger again
        // (no group starts there that the stretch did not end), and a run of digits that
        // begins on it (`0`-`5`) is still read from its start.
        s.st.b64 = 0;
        s.st.pos = end - 1;
        return 0;
    }
    if end < s.st.n && s.at(end).is_ascii_digit() {
        // A stretch ended: the next starts after this byte's pair.
        let f = &mut s.st.f;
        f.num_start = s.st.seq.wrapping_add(s.st.win_off + end + 2);
        f.num_end = f.num_start;
        f.num_bcd = 0;
        f.num_len += 1;
        f.tok += 1;
        s.st.pos = end + 1;
    }
    0
}

/// Digits of the number an open run's `num_*` hold: its digits up to `RAW_DIGITS`, past
/// them its hex stretch's (none with the hex form off, or when the run's start was lost).
#[inline(always)]
pub(super) fn run_digits(st: &ScanState) -> u32 {
    let f = &st.f;
    if f.num_len <= RAW_DIGITS {
        f.num_len
    } else if st.pkt.msisdn_on & form::HEX_ON != 0 && f.num_len < LOST {
        f.num_end.wrapping_sub(f.num_start) / 2
    } else {
        0
    }
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
    // A hex stretch cannot end here: its pair's first byte is the byte at `n`, unread.
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
        f.num_len = LOST;
        return j;
    }
    f.num_len = 0;
    r
}

/// Reads the open run's digits from `pos`: first what remains of a `%` escape, then up to
/// `RUN_BYTES` digits into `num_*`: one per nibble up to `RAW_DIGITS`, then (with the hex
/// form on) the run's current hex stretch (`hex_run`). Returns the first position not
/// read, and whether a hex stretch that may be a number ends there (at the first byte of
/// a pair that is not `3d`, still to be read).
#[inline(always)]
fn digit_run(s: &mut Scratch, pos: u32, n: u32) -> (u32, bool) {
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
    s.st.f.tok += e;
    let len = s.st.f.num_len;
    if len == 0 {
        // No number digit yet: the number starts here (after the escape).
        let at = s.st.seq.wrapping_add(s.st.win_off + p);
        s.st.f.num_start = at;
        s.st.f.num_end = at;
    }
    let mut k = 0;
    if len < RAW_DIGITS {
        let mut bcd = 0u64;
        while k < RAW_DIGITS {
            let i = p + k;
            if i >= n || len + k >= RAW_DIGITS {
                break;
            }
            let b = s.at(i);
            if !b.is_ascii_digit() {
                break;
            }
            bcd |= bcd_digit(b - b'0', len + k);
            k += 1;
        }
        let f = &mut s.st.f;
        f.num_bcd |= bcd;
        f.num_len = len + k;
        f.num_end = f.num_end.wrapping_add(k);
        f.tok += k;
    }
    let p = forget(&mut s.st.rpos, p + k);
    if p < n && s.at(p).is_ascii_digit() && s.st.f.num_len >= RAW_DIGITS {
        // Too long for a decimal number.
        return if s.st.pkt.msisdn_on & form::HEX_ON != 0 && s.st.f.num_len < LOST {
            hex_run(s, p, n)
        } else {
            (skip_digits(s, p, n), false)
        };
    }
    (p, false)
}

/// Reads on over a run too long to be a number in any form that is on.
#[inline(always)]
fn skip_digits(s: &mut Scratch, pos: u32, n: u32) -> u32 {
    let mut k = 0;
    while k < RUN_BYTES {
        let i = pos + k;
        if i >= n || !s.at(i).is_ascii_digit() {
            break;
        }
        k += 1;
    }
    let f = &mut s.st.f;
    f.num_len = (f.num_len + k).min(LOST);
    f.tok += k;
    forget(&mut s.st.rpos, pos + k)
}

/// Reads a run's digits from `pos` on, past its first `RAW_DIGITS`, for the hex form:
/// `num_bcd` holds the digits of its current stretch (pairs `3d`, see `hex_tail`) and
/// `num_start`/`num_end` its bytes; `num_len` counts the run's digits, so its parity says
/// where a pair starts. Stops before the first byte of a pair that ends a stretch of
/// `MSISDN_MIN_DIGITS..=MSISDN_MAX_DIGITS` pairs, which is then decided; a shorter or
/// longer stretch just ends there.
///
/// At a pair's first byte `num_end` is that byte's sequence number: the stretch ends
/// where the pair starts, or was started after the last pair. So the loop needs no
/// sequence numbers, and keeps few values live: on Linux 6.1 this function's frame must
/// stay at 64 bytes (see `leakguard_target_number`).
#[inline(always)]
fn hex_run(s: &mut Scratch, pos: u32, n: u32) -> (u32, bool) {
    let f = &mut s.st.f;
    if f.num_len == RAW_DIGITS {
        // The 17th digit: from here on `num_*` hold the stretch.
        let (bcd, first, pairs) = hex_tail(f.num_bcd, RAW_DIGITS);
        f.num_bcd = bcd;
        f.num_start = f.num_start.wrapping_add(2 * first);
        f.num_end = f.num_start.wrapping_add(2 * pairs);
    }
    let odd = f.num_len & 1;
    // Within a pair cut by the last call: whether its first byte was a 3 of the stretch.
    let mut good =
        s.st.seq
            .wrapping_add(s.st.win_off + pos)
            .wrapping_sub(1)
            .wrapping_sub(f.num_start) as i32
            >= 0;
    let mut stretch_ends = false;
    let mut k = 0;
    while k < RUN_BYTES {
        let i = pos + k;
        if i >= n {
            break;
        }
        let b = s.at(i);
        if !b.is_ascii_digit() {
            break;
        }
        // The stretch is read from the flow's fields and written back each byte: kept in
        // registers across the loop, LLVM spilled them past the frame 6.1 allows.
        written(s);
        let f = &mut s.st.f;
        let pairs = f.num_end.wrapping_sub(f.num_start) / 2;
        if (odd + k) & 1 == 0 {
            good = b == b'3';
            if !good {
                if (MSISDN_MIN_DIGITS..=MSISDN_MAX_DIGITS).contains(&pairs) {
                    stretch_ends = true;
                    break;
                }
                f.num_start = f.num_end.wrapping_add(2);
                f.num_end = f.num_start;
                f.num_bcd = 0;
            }
        } else if good {
            f.num_bcd |= bcd_digit(b - b'0', pairs.min(RAW_DIGITS - 1));
            f.num_end = f.num_end.wrapping_add(2);
        }
        k += 1;
    }
    let f = &mut s.st.f;
    f.num_len += k;
    f.tok += k;
    (forget(&mut s.st.rpos, pos + k), stretch_ends)
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
