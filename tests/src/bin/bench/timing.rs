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

/// The median of `v` (not empty) with a distribution-free confidence interval: order
/// statistics `k` and `n + 1 - k` (1-based), `k` from [`median_confidence`]. Returns (low,
/// median, high).
pub fn median_ci(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let (k, _) = median_confidence(n);
    (v[k - 1], v[n / 2], v[n - k])
}

/// For `n` values: the largest `k` whose interval [x_k, x_{n+1-k}] still holds the true
/// median with at least 95% probability (the number of values below it is
/// Binomial(n, 1/2), and the interval misses with probability 2·P(X < k)), or 1, the
/// whole range, when even that holds less (n < 6); and that interval's confidence.
pub fn median_confidence(n: usize) -> (usize, f64) {
    let mut below = 0.0; // P(X < k)
    let mut choose = 1.0; // C(n, k-1)
    let half_n = 0.5f64.powi(n as i32);
    let mut k = 1;
    let mut conf = 1.0 - 2.0 * half_n;
    loop {
        below += choose * half_n;
        choose = choose * (n - (k - 1)) as f64 / k as f64;
        let next = 1.0 - 2.0 * (below + choose * half_n);
        if k + 1 > n.div_ceil(2) || next < 0.95 {
            break;
        }
        k += 1;
        conf = next;
    }
    (k, conf.max(0.0))
}

#[cfg(test)]
mod tests {
    use super::{median_ci, median_confidence};

    #[test]
    fn median_ci_picks_the_widest_order_statistics_under_95_percent() {
        // n = 9: [x2, x8] holds the median with 1 - 2·10/512 = 96.1%.
        let (lo, m, hi) = median_ci((1..=9).map(f64::from).collect());
        let (_, c) = median_confidence(9);
        assert_eq!((lo, m, hi), (2.0, 5.0, 8.0));
        assert!((c - 0.9609).abs() < 1e-3, "{c}");
        // n = 5: only [min, max], 1 - 2/32 = 93.75%.
        let (lo, _, hi) = median_ci(vec![5.0, 1.0, 3.0, 2.0, 4.0]);
        let (_, c) = median_confidence(5);
        assert_eq!((lo, hi), (1.0, 5.0));
        assert!((c - 0.9375).abs() < 1e-9, "{c}");
    }
}
