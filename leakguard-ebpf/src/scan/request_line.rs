//! The request line: method, target and version runs, and the line's end.

use leakguard_common::{
    name::{CLASS, C_TCHAR},
    place, swar, MAX_METHOD_LEN, SCAN_CHUNK,
};

use leakguard_common::flow::parser::{S_LINE_START, S_METHOD, S_TARGET, S_VERSION};

use crate::{state::Scratch, verifier::forget};

use super::{
    line::{after_lf, end_token, ends_on},
    target::{target_scan, TARGET_WORDS},
};

pub(super) const VERSION_PREFIX: &[u8; 7] = b"HTTP/1.";

/// Where in `VERSION_PREFIX` the major version is: any digit is taken there (`step`).
pub(super) const MAJOR: u32 = 5;

/// `tok` value once the version digit was read: the line ends at the next LF.
pub(super) const VERSION_DONE: u32 = 8;

/// The request line in one call where it fits: method, target and version runs in
/// sequence (each hands over to the next at its SP), then the line end. Each run is a
/// single-path loop whose exit position goes through map memory, so the sequence adds to
/// the verifier's work rather than multiplying it.
#[inline(always)]
pub(super) fn request_line_run(s: &mut Scratch, pos: u32, n: u32) -> u32 {
    let mut p = pos;
    if s.st.f.state == S_METHOD {
        p = method_run(s, p, n);
    }
    if s.st.f.state == S_TARGET {
        p = if s.st.pkt.msisdn_on & place::bit(place::TARGET) != 0 {
            target_scan(s, p, n)
        } else {
            target_run(s, p, n)
        };
    }
    if s.st.f.state == S_VERSION && s.st.f.tok != VERSION_DONE {
        p = version_run(s, p, n);
    }
    if s.st.f.state == S_VERSION && s.st.f.tok == VERSION_DONE {
        // [CR] LF ends the request line (anything else is left to `step`).
        let at = if ends_on(s, p, n, b'\r') { p + 1 } else { p };
        if ends_on(s, at, n, b'\n') {
            s.st.heads += 1;
            s.st.f.state = S_LINE_START;
            s.st.f.flags = 0;
            return after_lf(s, at + 1, n);
        }
    }
    p
}

/// Reads `HTTP/1.` and the minor version digit; any other byte is left to `step`, which
/// ends the scan on it.
#[inline(always)]
pub(super) fn version_run(s: &mut Scratch, pos: u32, n: u32) -> u32 {
    let tok = s.st.f.tok;
    let mut k = 0;
    while k < VERSION_PREFIX.len() as u32 {
        let i = pos + k;
        let t = tok + k;
        if i >= n || t >= VERSION_PREFIX.len() as u32 {
            break;
        }
        if s.at(i) != VERSION_PREFIX[t as usize & 7] {
            break;
        }
        k += 1;
    }
    s.st.f.tok = tok + k;
    let end = forget(&mut s.st.pos, pos + k);
    if s.st.f.tok == VERSION_PREFIX.len() as u32 && end < n && s.at(end).is_ascii_digit() {
        s.st.f.tok = VERSION_DONE;
        return end + 1;
    }
    end
}

/// Reads method bytes (tchars, up to `MAX_METHOD_LEN`), and the SP after them.
#[inline(always)]
pub(super) fn method_run(s: &mut Scratch, pos: u32, n: u32) -> u32 {
    let tok = s.st.f.tok;
    // Where this head began (for `scan.max_head_bytes`): the method's first byte, `tok`
    // bytes back (in an earlier call or segment when it spans them). Stored on every call
    // rather than under `tok == 0`: a branch here costs the verifier a third more work.
    s.st.f.head_seq = s.st.seq.wrapping_add(s.st.win_off + pos).wrapping_sub(tok);
    let mut k = 0;
    while k < SCAN_CHUNK {
        let i = pos + k;
        if i >= n || tok + k >= MAX_METHOD_LEN {
            break;
        }
        if CLASS[usize::from(s.at(i))] & C_TCHAR == 0 {
            break;
        }
        k += 1;
    }
    s.st.f.tok = tok + k;
    let end = forget(&mut s.st.pos, pos + k);
    end_token(s, end, n, S_TARGET)
}

/// Reads request-target bytes (anything but SP and controls) eight at a time, and the SP
/// after them: a target is the longest token of most requests (paths with query strings
/// run to hundreds of bytes), and a byte at a time it cost a tenth of a 600 B request.
///
/// Aligned words of the window, bytes before `pos` masked off; `swar::target_end` finds
/// the first byte that ends the target. Bytes past `n` in the last word are stale: a stop
/// found there only means every byte up to `n` was taken.
#[inline(always)]
pub(super) fn target_run(s: &mut Scratch, pos: u32, n: u32) -> u32 {
    let mut w = pos & !7;
    let mut keep = swar::bytes_from(pos & 7);
    let mut hit = 0u64;
    let mut k = 0;
    while k < TARGET_WORDS {
        if w >= n {
            break;
        }
        hit = swar::target_end(s.word(w)) & keep;
        if hit != 0 {
            break;
        }
        keep = !0;
        w += 8;
        k += 1;
    }
    let w = forget(&mut s.st.pos, w);
    let end = if hit != 0 {
        (w + swar::first(hit)).min(n)
    } else {
        w.min(n)
    };
    // `end >= pos`: bytes below `pos` are masked off, `w > pos` once the loop has passed
    // the first word, and `pos < n`.
    s.st.f.tok += end - pos;
    end_token(s, end, n, S_VERSION)
}
