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
/// Empty programs (return pass) used as the baseline of cost measurements.
pub const PROG_BASELINE_XDP: &str = "baseline_xdp_pass";
pub const PROG_BASELINE_TC: &str = "baseline_tc_pass";
/// The floor of a scan: the frame copied into the scratch window and every 8-byte word
/// tested for an LF, nothing else (what the bench compares a request's cost with).
pub const PROG_FLOOR_XDP: &str = "baseline_xdp_lf";
pub const PROG_FLOOR_TC: &str = "baseline_tc_lf";
