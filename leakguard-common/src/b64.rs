//! The base64 form of an identity number (`form::BASE64`): the base64 of its ASCII digits,
//! in the standard or the URL-safe alphabet, at any alignment (`447700900123` →
//! `NDQ3NzAwOTAwMTIz`, or inside `dWlkNDQ3…`, the base64 of `uid447…`).
//!
//! Shared by the kernel and the model. The scan finds a *trigger*: a character `t` with
//! `L`-`O` at `t - 8`, `t - 4` and `t` (`swar::number_flags`). Three digits always encode
//! as `[MNO][DTjz][AEIMQUYcgk][w-z0-5]`, so nine digits or more, at any alignment, put
//! such a character at three group starts in a row. The kernel then stages the
//! characters around `t` (`STAGED`, their `VALUE`s) and `decide` reads the *stretch*:
//! the maximal run of digit bytes, decoded in groups of four characters starting at `t`,
//! that holds the two groups before `t` and the first byte of `t`'s group.
//!
//! Decoding is by pairs: byte `j` of a group (`j` < 3) is read from its characters `j`
//! and `j + 1` when both are in the alphabet, so `=` padding, a `%` escape or a
//! delimiter ends a stretch, and an unpadded tail counts. A character carrying bits of
//! a digit is the same in both alphabets (all `A`-`z`, `0`-`9`), so one table serves both.
//!
//! `decide` is straight-line: no branch depends on the characters, so the verifier
//! walks it once.

/// `VALUE[b]`: the 6-bit value of base64 character `b` in either alphabet (`+` and `-`
/// are 62, `/` and `_` are 63), `NONE` for any other byte (`=` included).
pub static VALUE: [u8; 256] = {
    let mut v = [NONE; 256];
    let mut i = 0;
    while i < 26 {
        v[b'A' as usize + i] = i as u8;
        v[b'a' as usize + i] = 26 + i as u8;
        i += 1;
    }
    let mut d = 0;
    while d < 10 {
        v[b'0' as usize + d] = 52 + d as u8;
        d += 1;
    }
    v[b'+' as usize] = 62;
    v[b'-' as usize] = 62;
    v[b'/' as usize] = 63;
    v[b'_' as usize] = 63;
    v
};

/// A staged value for a byte outside the alphabet, or before the window's scanned bytes
/// (a stretch cannot be read back past them).
pub const NONE: u8 = 0xFF;

/// Characters staged before the trigger: five groups. With the trigger's own group and
/// the two before it (seven digits), three more groups back hold the ninth digit before
/// them, so a stretch reaching `BACK`'s first byte has more than 15 digits.
pub const BACK: u32 = 20;

/// Characters staged from `t - BACK` on: nine groups, and the first characters of a
/// tenth are never needed (`BYTES` bytes use characters up to `4·8 + 3`).
pub const STAGED: u32 = 36;

/// Spare bytes of the staging array `decide` uses: the digit mask, and `known`.
const DIGITS: usize = 40;
const KNOWN: usize = 63;

/// Bytes the staged groups decode to (nine groups of three).
pub const BYTES: u32 = 27;

/// The byte of the trigger's group, and the first of the two groups before it.
const TRIGGER_BYTE: u32 = 15;
const FIRST_FULL: u32 = 9;

/// Outcome of `decide`.
pub mod outcome {
    /// Not a trigger after all: the two groups before `t` and `t`'s first byte are not
    /// all digits.
    pub const NONE: u8 = 0;
    /// The stretch's end is not known yet: its last byte runs into the window's end.
    pub const CUT: u8 = 1;
    /// More than `MSISDN_MAX_DIGITS` digits: not a number.
    pub const LONG: u8 = 2;
    /// A stretch of at most `MSISDN_MAX_DIGITS` digits, known whole: the caller decides.
    pub const TAKEN: u8 = 3;
}

/// A stretch read around a trigger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stretch {
    /// `outcome::*`.
    pub outcome: u8,
    /// Digits in the stretch (for `TAKEN`; less than `MSISDN_MIN_DIGITS` is possible).
    pub digits: u32,
    /// Its digits as `flow::bcd_digit` nibbles, first in the high nibble (for `TAKEN`).
    pub bcd: u64,
    /// The characters carrying its bits, as staged indexes `[first, end)`: the trigger is
    /// `BACK`. At most 21 characters.
    pub first: u32,
    pub end: u32,
}

/// The byte decoded from characters of values `a` and `b` at position `j` of their
/// group (`j` < 3): `a` gives its high bits and `b` its low ones.
#[inline(always)]
#[must_use]
pub const fn byte(a: u8, b: u8, j: u32) -> u8 {
    let a = a as u32;
    let b = b as u32;
    (((a << (2 + 2 * j)) | (b >> (4 - 2 * j))) & 0xff) as u8
}

/// Staged index of the first character of byte `q` (group `q / 3`, position `q % 3`).
#[inline(always)]
#[must_use]
pub const fn char_of(q: u32) -> u32 {
    4 * (q / 3) + q % 3
}

/// Reads the stretch around a trigger from `c`, the `VALUE`s of the `STAGED` characters
/// from `t - BACK` (`NONE` before the window's scanned bytes; the array is larger so that
/// indexes are masked, not checked). `known`: staged index of the window's end (the first
/// character not known yet; `STAGED` or more when all are). `hide` returns its argument:
/// the kernel passes one LLVM cannot see through, so that it keeps the loops (unrolled,
/// their values spilled past the stack 6.1 allows) and the index masks (which a verifier
/// needs) rather than proving them away.
#[inline(always)]
#[must_use]
pub fn decide(c: &mut [u8; 64], known: u32, hide: impl Fn(u32) -> u32) -> Stretch {
    // Kept in the array's spare bytes rather than in registers across the loops (see
    // `hide`).
    c[KNOWN] = known.min(63) as u8;
    // The decoded bytes, eight to a word, a byte that is not decoded (a character outside
    // the alphabet) as 0xFF; then their digit lanes gathered one bit per byte. SWAR, not
    // per-byte tests: LLVM turns those into branches, and a verifier then follows every
    // combination of digits.
    let mut w = 0;
    while w < 4 {
        let w8 = hide(8 * w);
        let mut word = 0u64;
        let mut j = 0;
        while j < 8 {
            let q = w8 + hide(j);
            let i = hide(char_of(q));
            let (a, b) = (c[i as usize & 63], c[(i + 1) as usize & 63]);
            // 1-3 when either is outside the alphabet (values 64 and up).
            let out = u64::from((a | b) >> 6);
            let v = u64::from(byte(a & 63, b & 63, q % 3)) | (out * 0xFF);
            word |= (v & 0xFF) << (8 * j);
            j += 1;
        }
        let lanes = crate::swar::digits(word) >> 7;
        c[(DIGITS as u32 + hide(w)) as usize & 63] =
            (lanes.wrapping_mul(0x0102_0408_1020_4080) >> 56) as u8;
        w += 1;
    }
    let digit = u32::from_le_bytes([c[DIGITS], c[DIGITS + 1], c[DIGITS + 2], c[DIGITS + 3]])
        & ((1u32 << BYTES) - 1);
    let known = u32::from(c[KNOWN]);
    let none = Stretch {
        outcome: outcome::NONE,
        digits: 0,
        bcd: 0,
        first: 0,
        end: 0,
    };
    let need = ((1u32 << (TRIGGER_BYTE + 1)) - 1) & !((1u32 << FIRST_FULL) - 1);
    if digit & need != need {
        return none;
    }
    // The first non-digit before the two full groups, and the first after the trigger's
    // first byte (an unknown byte is not a digit).
    let back = !digit & ((1u32 << FIRST_FULL) - 1);
    let fwd = !digit & ((1u32 << BYTES) - 1) & !((1u32 << (TRIGGER_BYTE + 1)) - 1);
    if back == 0 || fwd == 0 {
        return Stretch {
            outcome: outcome::LONG,
            ..none
        };
    }
    let start = 32 - back.leading_zeros();
    let end = fwd.trailing_zeros();
    let digits = end - start;
    if digits > crate::MSISDN_MAX_DIGITS {
        return Stretch {
            outcome: outcome::LONG,
            ..none
        };
    }
    // The byte that ends the stretch is not known yet when a character of it lies past
    // the window's end, unless its first one is known and outside the alphabet (`…MTIz&`
    // cut after the `&` ends there).
    let e = char_of(end);
    let first_out = u32::from(c[hide(e) as usize & 63] >> 6 != 0) & u32::from(e < known);
    if e + 1 >= known && first_out == 0 {
        return Stretch {
            outcome: outcome::CUT,
            ..none
        };
    }
    let bcd = digits_of(c, 0, start, digits, &hide);
    Stretch {
        outcome: outcome::TAKEN,
        digits,
        bcd,
        first: char_of(start),
        end: char_of(end - 1) + 2,
    }
}

/// The `digits` (at most 15) digit bytes from byte `start` of the groups staged from
/// index `s0`, as `flow::bcd_digit` nibbles.
#[inline(always)]
fn digits_of(c: &[u8; 64], s0: u32, start: u32, digits: u32, hide: &impl Fn(u32) -> u32) -> u64 {
    let mut bcd = 0u64;
    let mut k = 0;
    while k < crate::MSISDN_MAX_DIGITS {
        let q = start + k;
        let i = hide(s0 + char_of(q));
        let d = byte(
            c[i as usize & 63] & 63,
            c[(i + 1) as usize & 63] & 63,
            q % 3,
        );
        // 1 while `k < digits`, with no branch.
        let inside = u64::from(k.wrapping_sub(digits) >> 31);
        bcd |= crate::flow::bcd_digit(d.wrapping_sub(b'0'), k) * inside;
        k += 1;
    }
    bcd
}

/// Characters staged before a cut (a window's or segment's end) for `tail`.
pub const TAIL: u32 = 24;

/// A stretch open at a cut: its digits so far, and where its characters start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tail {
    /// Digit bytes known before the cut (0: none open; more than 15: too long).
    pub digits: u32,
    pub bcd: u64,
    /// Staged index of its first character.
    pub first: u32,
}

/// The stretch open at a cut in the phase whose last group has `k` (< 4) characters
/// before it, from `c`: the `VALUE`s of the `TAIL` characters before the cut (`NONE`
/// before the window's scanned bytes). Open when the last character is in the
/// alphabet (the stream goes on past the cut) and the bytes known before it end in
/// digits; a byte with a character past the cut is not known. `hide` as for `decide`.
#[inline(always)]
#[must_use]
pub fn tail(c: &[u8; 64], k: u32, hide: impl Fn(u32) -> u32) -> Tail {
    // Five full groups, then the bytes of the partial one that are known (k - 1 of them).
    let s0 = 4 - k;
    let nbytes = 15 + k - u32::from(k != 0);
    let mut digit = 0u32;
    let mut w = 0;
    while w < 3 {
        let w8 = hide(8 * w);
        let mut word = 0u64;
        let mut j = 0;
        while j < 8 {
            let q = w8 + hide(j);
            let i = hide(s0 + char_of(q));
            let (a, b) = (c[i as usize & 63], c[(i + 1) as usize & 63]);
            // Outside the alphabet or past the cut (a byte `nbytes` or later).
            let past = u64::from(nbytes.wrapping_sub(1).wrapping_sub(q) >> 31);
            let out = u64::from((a | b) >> 6) | past;
            let v = u64::from(byte(a & 63, b & 63, q % 3)) | (out * 0xFF);
            word |= (v & 0xFF) << (8 * j);
            j += 1;
        }
        let lanes = crate::swar::digits(word) >> 7;
        digit |= ((lanes.wrapping_mul(0x0102_0408_1020_4080) >> 56) as u32) << (w8 & 31);
        w += 1;
    }
    // 1 when the last character is in the alphabet: the stream goes on past the cut.
    let open = 1 - u32::from(c[(TAIL - 1) as usize] >> 6).min(1);
    let inv = !digit & ((1u32 << nbytes) - 1);
    // Trailing digit bytes: those after the last that is not one (a sentinel below bit 0
    // counts them all when every byte is one). No branch, as in `decide`.
    let digits = open * (nbytes - (31 - ((inv << 1) | 1).leading_zeros()));
    let start = nbytes - digits;
    Tail {
        digits,
        bcd: digits_of(c, s0, start, digits.min(crate::MSISDN_MAX_DIGITS), &hide),
        first: s0 + char_of(start),
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::{string::String, vec::Vec};

    use base64::{
        engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
        Engine,
    };

    use super::*;

    fn stage(text: &[u8], t: usize, lo: usize, n: usize) -> ([u8; 64], u32) {
        let mut c = [NONE; 64];
        for (k, v) in c.iter_mut().enumerate().take(STAGED as usize) {
            let Some(i) = (t + k).checked_sub(BACK as usize) else {
                continue;
            };
            *v = if i < lo || i >= n {
                NONE
            } else {
                VALUE[usize::from(text[i])]
            };
        }
        // The window's end as a staged index.
        (c, (n + BACK as usize - t) as u32)
    }

    fn bcd_of(digits: &str) -> u64 {
        digits.bytes().enumerate().fold(0, |a, (k, d)| {
            a | crate::flow::bcd_digit(d - b'0', k as u32)
        })
    }

    #[test]
    fn value_matches_both_alphabets() {
        let std_alpha = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        for (v, &b) in std_alpha.iter().enumerate() {
            assert_eq!(VALUE[usize::from(b)], v as u8);
        }
        assert_eq!(VALUE[usize::from(b'-')], 62);
        assert_eq!(VALUE[usize::from(b'_')], 63);
        let count = VALUE.iter().filter(|&&v| v != NONE).count();
        assert_eq!(count, 66);
        for b in [b'=', b'%', b'*', b' ', b';', b'&', b'.', b'\n'] {
            assert_eq!(VALUE[usize::from(b)], NONE);
        }
    }

    #[test]
    fn three_digits_encode_to_the_stated_classes() {
        for n in 0..1000 {
            let s = std::format!("{n:03}");
            let e = STANDARD.encode(s.as_bytes());
            let e = e.as_bytes();
            assert!(b"MNO".contains(&e[0]), "{s}");
            assert!(b"DTjz".contains(&e[1]), "{s}");
            assert!(b"AEIMQUYcgk".contains(&e[2]), "{s}");
            assert!(b"wxyz012345".contains(&e[3]), "{s}");
        }
    }

    /// Every number of 9-15 digits after 0-5 bytes of lead-in, in both alphabets, padded
    /// or not, is found whole from every trigger `swar::number_flags` would raise, with
    /// exactly the characters that carry its bits.
    #[test]
    fn decide_reads_every_number_from_its_triggers() {
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for case in 0..3000 {
            let len = 9 + (case % 7);
            let lead = (case / 7) % 6;
            let digits: String = (0..len)
                .map(|_| char::from(b'0' + (next() % 10) as u8))
                .collect();
            let mut raw: Vec<u8> = (0..lead).map(|_| b"uid:x"[next() as usize % 5]).collect();
            raw.extend_from_slice(digits.as_bytes());
            // Not a digit after the number, so the stretch ends with it.
            raw.push(b"@;x"[next() as usize % 3]);
            let enc = if case % 2 == 0 {
                STANDARD.encode(&raw)
            } else {
                URL_SAFE_NO_PAD.encode(&raw)
            };
            let text = std::format!("?q={enc}&");
            let text = text.as_bytes();
            let base = 3;
            // The characters carrying the number's bits.
            let (d0, d1) = (lead, lead + len);
            let want_first = base + 4 * (d0 / 3) + d0 % 3;
            let l = d1 - 1;
            let want_end = base + 4 * (l / 3) + l % 3 + 2;
            let mut found = 0;
            for t in 0..text.len() {
                let (mut c, known) = stage(text, t, 0, text.len());
                let r = decide(&mut c, known, |x| x);
                if r.outcome == outcome::NONE {
                    continue;
                }
                found += 1;
                assert_eq!(r.outcome, outcome::TAKEN, "{case} {t}");
                assert_eq!(r.digits as usize, len);
                assert_eq!(r.bcd, bcd_of(&digits));
                assert_eq!((t + r.first as usize) - BACK as usize, want_first);
                assert_eq!((t + r.end as usize) - BACK as usize, want_end);
                assert!(r.end - r.first <= 21);
                // A trigger has `L`-`O` where `number_flags` looks.
                for back in [0, 4, 8] {
                    assert!((b'L'..=b'O').contains(&text[t - back]));
                }
            }
            assert!(found >= 1, "case {case}: {digits} in {enc}");
        }
    }

    /// A number cut at every character of its span: the phase of the cut reports the
    /// digits known before it, and where they start.
    #[test]
    fn tail_reports_the_digits_before_every_cut() {
        for lead in ["", "x", "id", "uid"] {
            let raw = std::format!("{lead}447700900123;");
            let enc = STANDARD.encode(&raw);
            let text = std::format!("?u={enc}");
            let base = 3;
            let d0 = lead.len();
            for cut in base + 1..base + enc.len() {
                let mut c = [NONE; 64];
                for (k, v) in c.iter_mut().enumerate().take(TAIL as usize) {
                    let Some(i) = (cut + k).checked_sub(TAIL as usize) else {
                        continue;
                    };
                    *v = VALUE[usize::from(text.as_bytes()[i])];
                }
                let k = ((cut - base) % 4) as u32;
                let r = tail(&c, k, |x| x);
                // Number bytes whose two characters lie before the cut.
                let before = |q: usize| base + 4 * (q / 3) + q % 3 + 1 < cut;
                let mut known = (d0..d0 + 12).filter(|&q| before(q)).count() as u32;
                if before(d0 + 12) {
                    // The `;` after the number is known: no stretch is open.
                    known = 0;
                }
                assert_eq!(r.digits, known, "{text} cut at {cut}");
                if known > 0 {
                    let first = base + 4 * (d0 / 3) + d0 % 3;
                    assert_eq!(cut + r.first as usize - TAIL as usize, first);
                    let digits = &"447700900123"[..known as usize];
                    assert_eq!(r.bcd, bcd_of(digits), "{text} cut at {cut}");
                }
            }
        }
    }

    #[test]
    fn long_cut_and_other_forms() {
        let take = |text: &[u8], lo: usize, n: usize| -> Vec<u8> {
            (0..n)
                .map(|t| {
                    let (mut c, known) = stage(text, t, lo, n);
                    decide(&mut c, known, |x| x).outcome
                })
                .filter(|&o| o != outcome::NONE)
                .collect()
        };
        // 16 digits: too long from every trigger.
        let e = STANDARD.encode(b"4477009001234567");
        assert!(take(e.as_bytes(), 0, e.len())
            .iter()
            .all(|&o| o == outcome::LONG));
        // 12 digits cut after 14 characters: not known yet (the 13th character's byte
        // could still be a digit).
        let e = STANDARD.encode(b"447700900123x");
        let got = take(e.as_bytes(), 0, 14);
        assert!(got.contains(&outcome::CUT), "{got:?}");
        assert!(!got.contains(&outcome::TAKEN));
        // Cut at the window's start: the stretch begins there, and the nine digits after
        // the first group are read alone.
        let e = STANDARD.encode(b"447700900123x");
        let (mut c, known) = stage(e.as_bytes(), 12, 4, e.len());
        let r = decide(&mut c, known, |x| x);
        assert_eq!((r.outcome, r.digits), (outcome::TAKEN, 9));
        assert_eq!(r.bcd, bcd_of("700900123"));
        // A number that ends one character before the window's end, on a character
        // outside the alphabet, is known whole.
        let e = std::format!("{}&", STANDARD.encode(b"447700900123x"));
        let got = take(e.as_bytes(), 0, e.len());
        assert!(got.contains(&outcome::TAKEN), "{got:?}");
        // Decimal, hex and text never trigger.
        for text in [
            &b"447700900123447700900123"[..],
            b"343437373030393030313233",
            b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36",
            b"MxxxNxxxOxxxMxxxNxxx",
        ] {
            assert_eq!(take(text, 0, text.len()), Vec::<u8>::new(), "{text:?}");
        }
    }
}
