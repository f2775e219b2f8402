//! One's-complement checksum arithmetic (RFC 1071 sums, RFC 1624 updates), shared by the
//! kernel programs (redaction), the daemon (self-test canaries) and the tests (frames).

/// Folds a 64-bit sum of 16-bit words into 16 bits, one's complement. Four fixed steps
/// (a loop would be a bounded loop for the verifier to walk).
#[inline(always)]
#[must_use]
pub fn fold(mut s: u64) -> u16 {
    s = (s & 0xffff_ffff) + (s >> 32);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    s as u16
}

/// The RFC 1071 sum of `data` as 16-bit big-endian words (an odd last byte padded with
/// zero) added to `acc`; fold it for the checksum's complement.
#[must_use]
pub fn sum(data: &[u8], mut acc: u64) -> u64 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

/// The one's-complement difference `new - old` of two sums, as the 32-bit "diff" that
/// `bpf_l4_csum_replace` and [`apply`] take.
#[inline(always)]
#[must_use]
pub fn diff(sum_old: u64, sum_new: u64) -> u32 {
    let old = fold(sum_old);
    let new = fold(sum_new);
    u32::from(fold(u64::from(new) + u64::from(!old)))
}

/// Applies a diff to a checksum field: HC' = ~(~HC + diff).
#[inline(always)]
#[must_use]
pub fn apply(check: u16, diff: u32) -> u16 {
    !fold(u64::from(!check) + u64::from(diff))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_carries_of_any_size() {
        assert_eq!(fold(0xffff), 0xffff);
        assert_eq!(fold(0x1_0000), 1);
        assert_eq!(fold(0xffff_ffff_ffff_ffff), 0xffff);
        assert_eq!(fold(0x0001_0002_0003_0004), 10);
        assert_eq!(sum(&[0x12, 0x34, 0x56], 1), 0x1234 + 0x5600 + 1);
        // A checksum updated by a diff equals one computed afresh.
        let (old, new) = (0x1234_u64 + 0xabcd, 0x2a2a_u64 + 0xabcd);
        let check = !fold(old);
        assert_eq!(apply(check, diff(old, new)), !fold(new));
    }
}
