//! Header-name rules, identical in kernel and user space.
//!
//! Names compare case-insensitively (RFC 9110 §5.1) *and* with `_` equal to `-`: CGI, PHP
//! and most frameworks expose both `X-MSISDN` and `X_MSISDN` as `HTTP_X_MSISDN`, so a guard
//! that told them apart would protect nothing. Both sides fold a name the same way and
//! compare folded bytes.

use crate::{NameKey, MAX_NAME_LEN};

/// Byte classes of the request scanner, as bits (see [`CLASS`]).
pub const C_TCHAR: u8 = 1; // RFC 9110 token character
pub const C_WS: u8 = 2; // SP or HTAB
pub const C_CTL: u8 = 4; // control or DEL (not allowed in a request target)

/// Class bits of every byte value: one table load per byte in the kernel.
pub static CLASS: [u8; 256] = build_class();

const fn build_class() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        let mut bits = 0;
        if is_tchar(c) {
            bits |= C_TCHAR;
        }
        if c == b' ' || c == b'\t' {
            bits |= C_WS;
        }
        if c < 0x20 || c == 0x7f {
            bits |= C_CTL;
        }
        t[b] = bits;
        b += 1;
    }
    t
}

/// Bytes that end a part of the request target or a cookie, looking back from a number in
/// it: `?`, `&` and `;` (a query, matrix or cookie parameter: the number is its value),
/// `/` and `:` (a path segment, a scheme or port), SP and controls (the target's or the
/// value's start). Nonzero: the byte itself.
pub static TARGET_PART_END: [u8; 256] = build_part_end();

const fn build_part_end() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if matches!(c, b'?' | b'&' | b';' | b'/' | b':') || c <= b' ' || c == 0x7f {
            // 0 would read as "not an end": a NUL ends a part as `\x01` does.
            t[b] = if c == 0 { 1 } else { c };
        }
        b += 1;
    }
    t
}

/// A byte of a query parameter's name as a log shows it: folded like a header name, a
/// digit as `#` (a name may carry a number too: `?u447700900123=1`), `?` for anything
/// else. What the kernel writes to an event, never a value's byte.
pub static LABEL: [u8; 256] = build_label();

const fn build_label() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = if c.is_ascii_digit() {
            b'#'
        } else if is_tchar(c) {
            fold(c)
        } else {
            b'?'
        };
        b += 1;
    }
    t
}

/// [`fold`] of every byte value: lets the kernel fold without a branch.
pub static FOLD: [u8; 256] = build_fold();

const fn build_fold() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = fold(b as u8);
        b += 1;
    }
    t
}

/// [`fold`] of every token byte, 0 for every other byte: one load per name byte both
/// tests and folds it in the kernel's name loop.
pub static TFOLD: [u8; 256] = build_tfold();

const fn build_tfold() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        if is_tchar(b as u8) {
            t[b] = fold(b as u8);
        }
        b += 1;
    }
    t
}

/// RFC 9110 `tchar`: `!#$%&'*+-.^_`|~`, digits and letters.
#[must_use]
pub const fn is_tchar(c: u8) -> bool {
    matches!(c,
        b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_'
        | b'`' | b'|' | b'~' | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z')
}

/// Folds one name byte: ASCII lowercase, and `_` to `-`.
#[must_use]
#[inline(always)]
pub const fn fold(c: u8) -> u8 {
    if c.is_ascii_uppercase() {
        c | 0x20
    } else if c == b'_' {
        b'-'
    } else {
        c
    }
}

/// The bit of [`crate::NameFilter`] for a folded name's first and last byte.
#[must_use]
#[inline(always)]
pub const fn filter_bit(first: u8, last: u8) -> u32 {
    ((first ^ last.rotate_left(3)) & 63) as u32
}

/// The word and bit of [`crate::NameFilter::starts`] for a name's first two folded bytes
/// (6 bits of each: a collision only costs a skipped skip).
#[must_use]
pub const fn start_bit(a: u8, b: u8) -> (usize, u64) {
    ((a & 63) as usize, 1 << (b & 63))
}

/// Why a configured header name cannot be a rule key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameError {
    Empty,
    TooLong,
    /// Byte at this index is not an RFC 9110 token character.
    NotToken(usize),
}

/// Hash of a folded, zero-padded name for the kernel's rule table (`RuleSlot`), under a
/// per-generation `seed`. Never 0 (0 marks an empty slot). The same arithmetic in kernel
/// and user space; words are read little endian on both.
///
/// Each of the eight words is mixed by its own multiply (distinct odd constants), and the
/// products summed: the multiplies are independent, so the CPU overlaps them, where a
/// chain (each word's mix waiting for the previous one's) cost 3-4 times the latency.
/// A difference in one word changes the sum (an odd multiplier is invertible); the
/// finish folds the high bits, where a word's upper bytes land, down into the slot bits.
#[inline(always)]
#[must_use]
pub fn hash(name: &NameKey, seed: u64) -> u64 {
    const K: [u64; MAX_NAME_LEN / 8] = [
        0x9e37_79b9_7f4a_7c15,
        0xc2b2_ae3d_27d4_eb4f,
        0x1656_67b1_9e37_79f9,
        0x85eb_ca77_c2b2_ae63,
        0xff51_afd7_ed55_8ccd,
        0xc4ce_b9fe_1a85_ec53,
        0x27d4_eb2f_1656_67c5,
        0xd6e8_feb8_6659_fd93,
    ];
    let words = name.name.as_ptr().cast::<u64>();
    let mut h = seed;
    let mut i = 0;
    while i < MAX_NAME_LEN / 8 {
        // SAFETY: `NameKey` is 8-byte aligned and MAX_NAME_LEN bytes long.
        let w = u64::from_le(unsafe { core::ptr::read(words.add(i)) });
        h = h.wrapping_add((w ^ seed).wrapping_mul(K[i]));
        i += 1;
    }
    h ^= h >> 32;
    h = h.wrapping_mul(K[0]);
    (h ^ (h >> 29)) | 1
}

/// The rule table slot of probe `k` for hash `h`.
#[inline(always)]
#[must_use]
pub const fn slot(h: u64, k: u32) -> u32 {
    (h as u32).wrapping_add(k) & (crate::RULE_SLOTS - 1)
}

/// The map key for a configured header name, or why it cannot be one.
pub fn key(name: &[u8]) -> Result<NameKey, NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong);
    }
    let mut key = NameKey {
        name: [0; MAX_NAME_LEN],
    };
    for (i, &c) in name.iter().enumerate() {
        if !is_tchar(c) {
            return Err(NameError::NotToken(i));
        }
        key.name[i] = fold(c);
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_case_and_underscore() {
        assert_eq!(key(b"X_MsIsDn").unwrap(), key(b"x-msisdn").unwrap());
        assert_ne!(key(b"X-MSISDN").unwrap(), key(b"X-MSISDN2").unwrap());
    }

    #[test]
    fn rejects_bad_names() {
        assert_eq!(key(b""), Err(NameError::Empty));
        assert_eq!(key(&[b'a'; 65]), Err(NameError::TooLong));
        assert!(key(&[b'a'; 64]).is_ok());
        assert_eq!(key(b"X MSISDN"), Err(NameError::NotToken(1)));
        assert_eq!(key(b"X-MSISDN:"), Err(NameError::NotToken(8)));
        // A dot is a token char: X-Jinny.CID is real.
        assert!(key(b"X-Jinny.CID").is_ok());
    }

    #[test]
    fn class_table_matches_predicates() {
        for b in 0..=255u8 {
            assert_eq!(CLASS[b as usize] & C_TCHAR != 0, is_tchar(b), "byte {b}");
        }
        assert_eq!(CLASS[b' ' as usize], C_WS);
        assert_eq!(CLASS[b'\t' as usize], C_WS | C_CTL);
        assert_eq!(CLASS[b'\r' as usize], C_CTL);
        for b in 0..=255u8 {
            assert_eq!(FOLD[b as usize], fold(b));
            assert_eq!(TFOLD[b as usize] != 0, is_tchar(b));
        }
    }
}
