//! Timing by `BPF_PROG_TEST_RUN`, which the kernel, rules, length and segments parts
//! share.

use anyhow::Result;
use leakguard::kernel::object::{PROG_TC_EGRESS, PROG_XDP};
use leakguard_tests::guard::{
    Guard, PROG_BASELINE_TC, PROG_BASELINE_XDP, PROG_FLOOR_TC, PROG_FLOOR_XDP,
};

use crate::Cfg;

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// First quartile, median and third quartile of `v` (not empty).
pub fn quartiles(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    (v[n / 4], v[n / 2], v[(3 * n) / 4])
}

/// The hooks the kernel parts time: (name, its empty program, leakguard's, a TC program).
pub const HOOKS: [(&str, &str, &str, bool); 2] = [
    ("xdp", PROG_BASELINE_XDP, PROG_XDP, false),
    ("tc", PROG_BASELINE_TC, PROG_TC_EGRESS, true),
];

/// The floor programs beside the same empty programs.
pub const FLOORS: [(&str, &str, &str, bool); 2] = [
    ("xdp", PROG_BASELINE_XDP, PROG_FLOOR_XDP, false),
    ("tc", PROG_BASELINE_TC, PROG_FLOOR_TC, true),
];

/// Median ns per run of the empty program and of leakguard on `frame`, alternating, as
/// the kernel times them (whole ns per run; its XDP test loop also does per-run work it
/// leaves out of the timing, about 300 ns here, so a wall clock would mislead).
pub fn pair(
    g: &mut Guard,
    cfg: &Cfg,
    base: &str,
    prog: &str,
    tc: bool,
    frame: &[u8],
) -> Result<(f64, f64)> {
    let (mut b, mut p) = (Vec::new(), Vec::new());
    for _ in 0..cfg.rounds {
        b.push(g.time_program(base, tc, frame, cfg.repeat)?.2.as_nanos() as f64);
        p.push(g.time_program(prog, tc, frame, cfg.repeat)?.2.as_nanos() as f64);
    }
    Ok((median(b), median(p)))
}
