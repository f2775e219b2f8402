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
