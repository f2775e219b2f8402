//! Byte tests on eight bytes at once (SIMD within a register), for the kernel's runs.
//!
//! Each function returns a mask with bit 7 of byte `j` set where byte `j` of the
//! little-endian word `x` is a stop byte. Only the *lowest* set bit is exact: a borrow
//! out of a true stop byte may flag bytes above it. That is all a run needs: it stops at
//! the first one (`first`).
//!
//! Why the lowest bit is exact: for `(x - n·ONES) & !x & HIGHS` (n ≤ 128), no byte below
//! the first byte under `n` borrows, and a byte `b ≥ n` that receives no borrow yields
//! `b - n`, whose bit 7 is set only when `b ≥ 128 + n`, where `!b` clears it.

/// One in every byte.
pub const ONES: u64 = 0x0101_0101_0101_0101;
/// Bit 7 of every byte.
pub const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Bytes below `n` (`n ≤ 128`).
#[inline(always)]
#[must_use]
pub const fn below(x: u64, n: u8) -> u64 {
    x.wrapping_sub(ONES * n as u64) & !x & HIGHS
}

/// Bytes equal to `b`.
#[inline(always)]
#[must_use]
pub const fn equal(x: u64, b: u8) -> u64 {
    below(x ^ (ONES * b as u64), 1)
}

/// Line feeds: where a skipped line ends.
#[inline(always)]
#[must_use]
pub const fn lf(x: u64) -> u64 {
    equal(x, b'\n')
}

/// Bytes that end a request target: SP, a control byte (below 0x20) or DEL. The same set
/// as `b == b' ' || CLASS[b] & C_CTL != 0` (tested below).
#[inline(always)]
#[must_use]
pub const fn target_end(x: u64) -> u64 {
    below(x, b' ' + 1) | equal(x, 0x7f)
}

/// CR or LF: where a value ends.
#[inline(always)]
#[must_use]
pub const fn line_end(x: u64) -> u64 {
    equal(x, b'\r') | equal(x, b'\n')
}

/// ASCII digits, exactly: every flagged byte is a digit and every digit is flagged (not
/// only the lowest, as for the stop tests above: `triples` needs every lane). `t` is 0-9
/// for a digit; adding 0x76 to its low 7 bits sets bit 7 from 10 up, and no byte carries.
#[inline(always)]
#[must_use]
pub const fn digits(x: u64) -> u64 {
    let t = x ^ (ONES * 0x30);
    let y = (t & (ONES * 0x7f)) + ONES * 0x76;
    !(y | t) & HIGHS
}

/// Bytes `j` of the word whose digit mask is `m` that are digits 2, 4, 6 and 8 bytes back
/// as well (`p`: the previous word's mask). Nine digits in a row always hold such a byte
/// (the ninth), so a target that flags none holds no identity number: the request
/// target's cheap test before any byte is read one at a time. Every other byte is not
/// enough (`/2026/11/25/` would flag); it still flags `1.2.3.4.5`, and the slow path
/// reads the run to be sure.
#[inline(always)]
#[must_use]
pub const fn runs_of_nine(p: u64, m: u64) -> u64 {
    // The byte `k` bytes back from byte j of `m` is byte j - k of `m`, or byte 8 + j - k
    // of `p` when j < k: the 16-byte window `p`, `m` shifted by k bytes.
    let back2 = (m << 16) | (p >> 48);
    let back4 = (m << 32) | (p >> 32);
    let back6 = (m << 48) | (p >> 16);
    m & back2 & back4 & back6 & p
}

/// Bytes 0x4C-0x4F (`L`-`O`, the first character of a base64 group whose first byte is a
/// digit), exactly, at bit 7 of each byte: after the mask every byte of `v` is a multiple
/// of 4, so a borrow out of a zero byte never reaches the next one as a zero.
#[inline(always)]
#[must_use]
pub const fn b64_lead(x: u64) -> u64 {
    let v = (x ^ (ONES * 0x4C)) & (ONES * 0xFC);
    v.wrapping_sub(ONES) & !v & HIGHS
}

/// Base64 triggers (`b64`): bytes `j` of the word whose `b64_lead` mask is `m` with a
/// lead 4 and 8 bytes back as well (`p`: the previous word's mask). Nine digits in base64
/// always raise one (`b64::decide` reads them).
#[inline(always)]
#[must_use]
pub const fn b64_triggers(p: u64, m: u64) -> u64 {
    m & ((m << 32) | (p >> 32)) & p
}

/// Bit 6 of each byte: the lanes that carry `b64_lead` beside the digits' bit 7 in the
/// run loops' masks.
pub const LEADS: u64 = HIGHS >> 1;

/// `lanes`' `lead_add` with the base64 form on; 0 with it off.
pub const LEAD_ADD: u64 = ONES * 0x04;

/// A word's lanes for the run loops: its digits (`digits`) at bit 7 and its base64 leads
/// (`b64_lead`) at bit 6, from one classification. With `t = x ^ 0x30`, a digit is a byte
/// whose `t` is 0-9 and a lead (`0x4C`-`0x4F`) one whose `t` is `0x7C`-`0x7F`: both
/// have bit 7 of `t` clear, and of its low seven bits, adding `0x76` sets bit 7 from 10
/// up, adding 4 (`lead_add` = `LEAD_ADD`) from `0x7C` up (neither carries out of the
/// byte). With `lead_add` 0 no byte is a lead (the base64 form off): the switch costs no
/// operation. Eleven operations for both tests, where two separate ones take fourteen.
#[inline(always)]
#[must_use]
pub const fn lanes(x: u64, lead_add: u64) -> u64 {
    let t = x ^ (ONES * 0x30);
    let low = t & (ONES * 0x7f);
    let small = !t & HIGHS;
    let digit = !(low + ONES * 0x76) & small;
    let lead = (low + lead_add) & small;
    digit | (lead >> 1)
}

/// The run loops' flags from two words' `lanes` (`p` the previous): bit 7,
/// `runs_of_nine`; bit 6, `b64_triggers`. Every lane keeps to its bit: the shifts move
/// whole bytes, and a lead lane is flagged by leads 4 and 8 bytes back whatever the
/// bit-6 lanes 2 and 6 back hold.
#[inline(always)]
#[must_use]
pub fn number_flags(p: u64, m: u64) -> u64 {
    flags(|| p, m, !0, LEADS)
}

/// `number_flags` for a loop's first word, whose lanes before the loop's start are
/// masked off but for leads (`m`), with triggers only at bytes from the start on (`from`,
/// bit 6 of those bytes) and digits' flags only from digits (no bit-6 lanes 2 and 6
/// back standing in for them). `p` gives the word before at each use: the kernel reads
/// it from map memory there, to keep it out of a register.
#[inline(always)]
pub fn first_flags(p: impl Fn() -> u64, m: u64, from: u64) -> u64 {
    flags(p, m, HIGHS, from)
}

/// Both of the above: lanes 4 bytes back and here, with lanes 2 and 6 back (kept where
/// `runs` has them) or the trigger lanes `leads`.
#[inline(always)]
fn flags(p: impl Fn() -> u64, m: u64, runs: u64, leads: u64) -> u64 {
    let back2 = (m << 16) | (p() >> 48);
    let back4 = (m << 32) | (p() >> 32);
    let back6 = (m << 48) | (p() >> 16);
    m & back4 & p() & ((back2 & back6 & runs) | leads)
}

/// A flag mask with its bit-6 lanes moved to bit 7 of the same byte, for `first`.
#[inline(always)]
#[must_use]
pub const fn flags_to_highs(f: u64) -> u64 {
    (f | (f << 1)) & HIGHS
}

/// All ones from byte `j` up (`j < 8`): a word's bytes at and after position `j`.
#[inline(always)]
#[must_use]
pub const fn bytes_from(j: u32) -> u64 {
    !0 << (8 * j)
}

/// All ones in the low `j` bytes (`j <= 8`).
#[inline(always)]
#[must_use]
pub const fn low_bytes(j: u32) -> u64 {
    if j >= 8 {
        !0
    } else {
        (1u64 << (8 * j)) - 1
    }
}

/// The bytes of a word at an even offset, summed as the Internet checksum weighs them:
/// even bytes (the first of each 16-bit word, big endian) times 256, odd bytes once.
/// Four 16-bit lanes of at most 255 each are summed by one multiply (no lane carries).
#[inline(always)]
#[must_use]
pub const fn checksum_weight(x: u64) -> u64 {
    const LANES: u64 = 0x00ff_00ff_00ff_00ff;
    const SUM: u64 = 0x0001_0001_0001_0001;
    let even = (x & LANES).wrapping_mul(SUM) >> 48;
    let odd = ((x >> 8) & LANES).wrapping_mul(SUM) >> 48;
    (even << 8) + odd
}

/// Index of the first flagged byte of a non-zero mask (flags are bit 7 of a byte, as
/// every function here returns them).
///
/// No `trailing_zeros`: BPF has no such instruction, and LLVM lowers it to a de Bruijn
/// multiply and a table load. Here the lowest flag alone, shifted to bit 0 of its byte
/// `j`, is `1 << 8j`; multiplying `0x0001_0203_0405_0607` by it brings the constant's
/// byte `7 - j`, which holds `j`, to the top.
#[inline(always)]
#[must_use]
pub const fn first(mask: u64) -> u32 {
    let low = (mask & mask.wrapping_neg()) >> 7;
    (low.wrapping_mul(0x0001_0203_0405_0607) >> 56) as u32
}

#[cfg(test)]
mod tests {
    /// `number_flags` is `runs_of_nine` on digits and `b64_triggers` on leads at and
    /// after the loop's start, over random words of digits, leads and other bytes.
    #[test]
    fn number_flags_join_both_flags() {
        let mut r = 0x9e37_79b9_7f4a_7c15u64;
        let alphabet = b"0123456789LMNOKPx";
        for case in 0..20_000 {
            let mut word = || {
                let mut b = [0u8; 8];
                for c in &mut b {
                    r ^= r << 13;
                    r ^= r >> 7;
                    r ^= r << 17;
                    *c = alphabet[(r % alphabet.len() as u64) as usize];
                }
                u64::from_le_bytes(b)
            };
            let (x0, x1) = (word(), word());
            let pos = (case % 8) as u32;
            let gate = if case % 3 == 0 { 0 } else { LEADS };
            // The loop's first word: digits from its start, leads from anywhere.
            let add = if gate == 0 { 0 } else { LEAD_ADD };
            let start = bytes_from(pos);
            let p = lanes(x0, add);
            let m = lanes(x1, add) & ((start & HIGHS) | LEADS);
            let got = first_flags(|| p, m, (start & HIGHS) >> 1);
            let want_digits = runs_of_nine(digits(x0), digits(x1) & bytes_from(pos));
            let want_leads = b64_triggers(b64_lead(x0), b64_lead(x1)) & bytes_from(pos);
            assert_eq!(got & HIGHS, want_digits, "{x0:x} {x1:x} {pos}");
            let want = if gate == 0 { 0 } else { want_leads };
            assert_eq!((got << 1) & HIGHS, want, "{x0:x} {x1:x} {pos}");
            assert_eq!(flags_to_highs(got), (got & HIGHS) | ((got << 1) & HIGHS));
            // The loop's later words: every lane; with the form off, no lead lanes.
            let later = number_flags(p, lanes(x1, add));
            let want = runs_of_nine(digits(x0), digits(x1))
                | (b64_triggers(b64_lead(x0), b64_lead(x1)) >> 1 & gate);
            assert_eq!(later, want, "{x0:x} {x1:x}");
        }
    }

    /// `lanes` is `digits` at bit 7 and `b64_lead` at bit 6, for every byte in every lane.
    #[test]
    fn lanes_are_digits_and_leads() {
        for b in 0..=255u8 {
            for j in 0..8 {
                for fill in [0u8, b'0', b'9', b'L', b'O', 0x7F, 0x80, 0xFF, 0xCC] {
                    let mut w = [fill; 8];
                    w[j] = b;
                    let x = u64::from_le_bytes(w);
                    assert_eq!(lanes(x, LEAD_ADD), digits(x) | (b64_lead(x) >> 1), "{w:?}");
                    assert_eq!(lanes(x, 0), digits(x), "{w:?}");
                }
            }
        }
    }

    #[test]
    fn b64_lead_is_exact() {
        for b in 0..=255u8 {
            for j in 0..8 {
                for fill in [0u8, b'L', b'O', b'K', b'P', 0xFF, b'M'] {
                    let mut w = [fill; 8];
                    w[j] = b;
                    let m = b64_lead(u64::from_le_bytes(w));
                    for (k, &c) in w.iter().enumerate() {
                        let want = (b'L'..=b'O').contains(&c);
                        assert_eq!(m >> (8 * k + 7) & 1 == 1, want, "{w:?}");
                    }
                    assert_eq!(m & !HIGHS, 0);
                }
            }
        }
    }

    #[test]
    fn b64_triggers_flag_leads_four_and_eight_back() {
        let text = b"xxMxxxNxxxOxxxyyyyyyyyyy";
        let words: std::vec::Vec<u64> = text
            .chunks(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let mut flagged = std::vec::Vec::new();
        let mut p = 0;
        for (k, &x) in words.iter().enumerate() {
            let m = b64_lead(x);
            let f = b64_triggers(p, m);
            for j in 0..8 {
                if f >> (8 * j + 7) & 1 != 0 {
                    flagged.push(8 * k + j);
                }
            }
            p = m;
        }
        assert_eq!(flagged, [10]);
    }

    extern crate std;
    use std::vec::Vec;

    use super::*;
    use crate::name::{CLASS, C_CTL};

    /// The first flagged byte of `f(word)`, or 8.
    fn first_of(f: fn(u64) -> u64, bytes: [u8; 8]) -> u32 {
        let m = f(u64::from_le_bytes(bytes));
        if m == 0 {
            8
        } else {
            first(m)
        }
    }

    fn check(f: fn(u64) -> u64, stop: fn(u8) -> bool) {
        // Every byte value at every position, behind a run of every other value (borrows
        // and false positives come from the neighbours), and a stop byte after it.
        for at in 0..8 {
            for b in 0..=255u8 {
                for fill in [0u8, b' ', b'a', 0x7f, 0x80, 0xa0, 0xff, b'\n', 0x21] {
                    let mut w = [fill; 8];
                    w[at] = b;
                    let want = w.iter().position(|&c| stop(c)).map_or(8, |i| i as u32);
                    assert_eq!(first_of(f, w), want, "{w:02x?}");
                }
            }
        }
        // Pseudo-random words (a fixed xorshift, so the test is repeatable).
        let mut r = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..200_000 {
            r ^= r << 13;
            r ^= r >> 7;
            r ^= r << 17;
            let w = r.to_le_bytes();
            let want = w.iter().position(|&c| stop(c)).map_or(8, |i| i as u32);
            assert_eq!(first_of(f, w), want, "{w:02x?}");
        }
    }

    #[test]
    fn lf_finds_the_first_line_feed() {
        check(lf, |c| c == b'\n');
    }

    #[test]
    fn target_end_is_sp_or_a_control_byte() {
        check(target_end, |c| {
            c == b' ' || CLASS[usize::from(c)] & C_CTL != 0
        });
    }

    #[test]
    fn first_is_the_lowest_flagged_byte() {
        let mut r = 0x2545_f491_4f6c_dd1du64;
        for j in 0..8 {
            assert_eq!(first(0x80 << (8 * j)), j);
        }
        for _ in 0..100_000 {
            r ^= r << 13;
            r ^= r >> 7;
            r ^= r << 17;
            let m = r & HIGHS;
            if m != 0 {
                assert_eq!(first(m), m.trailing_zeros() / 8, "{m:#x}");
            }
        }
    }

    #[test]
    fn digits_flags_every_digit_and_nothing_else() {
        let mut r = 0x0bad_5eed_dead_beefu64;
        for i in 0..300_000u32 {
            r ^= r << 13;
            r ^= r >> 7;
            r ^= r << 17;
            // Every byte value in every lane, then random words.
            let x = if i < 2048 {
                (r & !(0xff << (8 * (i % 8)))) | (u64::from(i as u8) << (8 * (i % 8)))
            } else {
                r
            };
            let want = x.to_le_bytes().iter().enumerate().fold(0u64, |m, (j, b)| {
                if b.is_ascii_digit() {
                    m | 0x80 << (8 * j)
                } else {
                    m
                }
            });
            assert_eq!(digits(x), want, "{x:#x}");
        }
    }

    #[test]
    fn triples_flag_the_ninth_digit_of_every_run() {
        // Words of a 24-byte buffer with a run of `len` digits at `at`: a run of 9 or more
        // is flagged where its ninth digit lies, never before its first digit + 8.
        for len in 1..=16usize {
            for at in 0..(24 - len) {
                let mut b = [b'x'; 24];
                b[at..at + len].fill(b'7');
                let w: Vec<u64> = b
                    .chunks(8)
                    .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
                    .collect();
                let mut flagged = Vec::new();
                let mut p = 0;
                for (k, &x) in w.iter().enumerate() {
                    let m = digits(x);
                    let c = runs_of_nine(p, m);
                    for j in 0..8 {
                        if c >> (8 * j + 7) & 1 != 0 {
                            flagged.push(8 * k + j);
                        }
                    }
                    p = m;
                }
                let want: Vec<usize> = (at + 8..at + len).collect();
                assert_eq!(flagged, want, "run of {len} at {at}");
            }
        }
        // Dates in paths flag nothing, at any alignment.
        for pad in 0..8 {
            let s = std::format!("{}/2026/11/25/2026-11-25/", "x".repeat(pad));
            let mut b = [b'x'; 40];
            b[..s.len()].copy_from_slice(s.as_bytes());
            let mut p = 0;
            for c in b.chunks(8) {
                let m = digits(u64::from_le_bytes(c.try_into().unwrap()));
                assert_eq!(runs_of_nine(p, m), 0, "{s}");
                p = m;
            }
        }
    }

    #[test]
    fn line_end_is_cr_or_lf() {
        check(line_end, |c| c == b'\r' || c == b'\n');
    }

    #[test]
    fn byte_masks_and_checksum_weight() {
        for j in 0..=8u32 {
            let m = low_bytes(j);
            assert_eq!(m.count_ones(), 8 * j);
            assert_eq!(m.trailing_ones(), 8 * j);
            if j < 8 {
                assert_eq!(bytes_from(j), !m);
            }
        }
        let mut r = 0x1234_5678_9abc_def1u64;
        for i in 0..100_000 {
            r ^= r << 13;
            r ^= r >> 7;
            r ^= r << 17;
            let x = if i == 0 { !0 } else { r };
            let want: u64 = x
                .to_le_bytes()
                .iter()
                .enumerate()
                .map(|(j, &b)| u64::from(b) << if j % 2 == 0 { 8 } else { 0 })
                .sum();
            assert_eq!(checksum_weight(x), want, "{x:#x}");
        }
    }

    #[test]
    fn below_is_exact_at_the_first_byte() {
        for n in [1u8, 0x21, 0x41, 0x80] {
            for b in 0..=255u8 {
                let w = u64::from_le_bytes([b, 0xff, 0, 0x80, n, 0x7f, 1, b]);
                let m = below(w, n);
                assert_eq!(m & 0x80 != 0, b < n, "n {n:#x} b {b:#x}");
            }
        }
    }
}
