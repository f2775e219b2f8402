//! Checksum arithmetic for in-place redaction (RFC 1071 sums, RFC 1624 update).

/// Folds a 64-bit sum of 16-bit words into 16 bits, one's complement.
#[inline(always)]
pub fn fold(mut s: u64) -> u16 {
    s = (s & 0xffff_ffff) + (s >> 32);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    s as u16
}

/// The one's-complement difference `new - old` of two sums, as the 32-bit "diff" that
/// `bpf_l4_csum_replace` and [`csum_apply`] take.
#[inline(always)]
pub fn csum_diff(sum_old: u64, sum_new: u64) -> u32 {
    let old = fold(sum_old);
    let new = fold(sum_new);
    u32::from(fold(u64::from(new) + u64::from(!old)))
}

/// Applies a diff to a checksum field: HC' = ~(~HC + diff).
#[inline(always)]
pub fn csum_apply(check: u16, diff: u32) -> u16 {
    !fold(u64::from(!check) + u64::from(diff))
}
