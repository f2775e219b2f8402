//! The compiled kernel programs, embedded in the binary, and their names.

/// The BPF ELF object built by `build.rs`.
pub static EBPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/leakguard-ebpf"));

/// TC classifier for egress (attached through TCX).
pub const PROG_TC_EGRESS: &str = "leakguard_tc_egress";
/// The same pipeline, reporting itself as the ingress hook.
pub const PROG_TC_INGRESS: &str = "leakguard_tc_ingress";
/// XDP program for the subscriber-facing interface.
pub const PROG_XDP: &str = "leakguard_xdp";

/// A digest of a kernel object's bytes (FNV-1a, 64 bits, in hex): which programs a
/// gateway runs, for `leakguard_build_info`. Not a security check.
#[must_use]
pub fn digest(object: &[u8]) -> String {
    let h = object.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{h:016x}")
}
