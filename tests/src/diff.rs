//! One segment through the kernel program (`BPF_PROG_TEST_RUN`) and through the reference
//! model, and every observable compared: verdict, output bytes and checksum, rule
//! counters, and the packet-class and scanner counters.

use leakguard::policy::KernelPolicy;
use leakguard_common::{
    model::{self, Kind, ModelFlow, ModelOutput, ModelPolicy},
    Stats, MSISDN_RULE_ID,
};

use crate::{
    guard::{Guard, Hook, Pooled, Verdict},
    packet::{tcp_checksum_ok, tcp_payload, SEQ},
};

pub struct Differ {
    pub g: Pooled,
    /// Counter ids to compare: every rule's, and the number check's.
    ids: Vec<u32>,
    pub runs: u64,
}

impl Differ {
    #[must_use]
    pub fn new(policy: &KernelPolicy) -> Self {
        let mut ids: Vec<u32> = (0..policy.rules.len() as u32).collect();
        ids.push(MSISDN_RULE_ID);
        Self {
            g: Guard::pooled(policy).expect("load leakguard"),
            ids,
            runs: 0,
        }
    }

    fn counters(&self) -> Vec<[u64; 4]> {
        self.ids
            .iter()
            .map(|&id| self.g.counters(id).unwrap().outcomes)
            .collect()
    }

    /// Runs `frame` (whose TCP payload is `payload`, sequence number `seq`) on `hook`
    /// and the model on the same bytes with `flow`; panics with `ctx` on any difference.
    // The two sides' inputs, side by side: bundling them would only rename them.
    #[allow(clippy::too_many_arguments)]
    pub fn segment(
        &mut self,
        hook: Hook,
        frame: &[u8],
        seq: u32,
        payload: &[u8],
        flow: &mut Option<ModelFlow>,
        pol: &ModelPolicy,
        ctx: &str,
    ) -> ModelOutput {
        let want = model::segment(flow, seq, payload, pol);
        let before = self.counters();
        let s0 = self.g.stats().unwrap();
        let r = self.g.run(hook, frame).unwrap();
        let ctx = format!("{ctx} on {hook:?}");
        assert_eq!(r.verdict == Verdict::Drop, want.drop, "verdict, {ctx}");
        if !want.drop {
            assert_eq!(
                String::from_utf8_lossy(&tcp_payload(&r.out).unwrap()),
                String::from_utf8_lossy(&want.payload),
                "bytes, {ctx}"
            );
            assert!(tcp_checksum_ok(&r.out), "checksum, {ctx}");
        }
        let mut want_counts = before;
        for (id, outcome) in &want.matches {
            let k = self.ids.iter().position(|i| i == id).expect("known id");
            want_counts[k][usize::from(*outcome)] += 1;
        }
        assert_eq!(self.counters(), want_counts, "rule counters, {ctx}");
        let s = self.g.stats().unwrap();
        let d = |f: fn(&Stats) -> u64| f(&s) - f(&s0);
        let got = [
            d(|s| s.heads),
            d(|s| s.lines),
            d(|s| s.malformed),
            d(|s| s.truncated),
            d(|s| s.continuations),
            d(|s| s.bodies),
            d(|s| s.retransmissions),
            d(|s| s.unordered_drops),
            d(|s| s.msisdn_values),
        ];
        let expected = [
            want.heads,
            want.lines,
            want.malformed,
            u64::from(want.truncated),
            u64::from(want.continuation),
            u64::from(want.kind == Kind::Body),
            u64::from(want.retransmission),
            u64::from(want.kind == Kind::Unordered),
            want.msisdn_values,
        ];
        assert_eq!(
            got, expected,
            "heads, lines, malformed, truncated, continuations, bodies, retransmissions, \
             unordered drops, msisdn values: {ctx}"
        );
        self.runs += 1;
        want
    }

    /// [`Differ::segment`] for `frame`, a whole head alone on its flow at a [`Frame`]'s
    /// own sequence number ([`SEQ`]).
    ///
    /// [`Frame`]: crate::packet::Frame
    pub fn single(
        &mut self,
        hook: Hook,
        frame: &[u8],
        payload: &[u8],
        pol: &ModelPolicy,
        ctx: &str,
    ) -> ModelOutput {
        self.segment(hook, frame, SEQ, payload, &mut None, pol, ctx)
    }
}
