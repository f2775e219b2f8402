//! The metrics snapshot: the kernel's counters labelled with the daemon's names
//! (interfaces by slot, headers by rule id) and its own state, rendered once a tick for
//! the HTTP listener (`http`), with the readiness `/readyz` reports.

use std::{collections::HashMap, time::Duration};

use anyhow::{Context as _, Result};
use aya::maps::Map;
use leakguard_common::MatchKey;

use super::Daemon;
use crate::{
    kernel::{
        compile, counters, features,
        maps::{MAP_FLOWS, MAP_MATCHES, MAP_MATCH_COUNTS, MAP_STATS},
    },
    metrics,
};

/// How often the tracked-flows gauge is recounted.
const FLOW_COUNT_EVERY: Duration = Duration::from_secs(10);

impl Daemon {
    pub(super) fn render_metrics(&self) -> Result<String> {
        let by_slot: HashMap<u32, &str> =
            self.slots.iter().map(|(n, s)| (*s, n.as_str())).collect();
        let packets = counters::stats_by_slot(self.stats_map()?)?
            .into_iter()
            .map(|(slot, h, s)| (by_slot.get(&slot).map_or("other", |n| n).to_owned(), h, s))
            .collect();
        let mut matches: Vec<(String, MatchKey, u64)> =
            counters::matches_of(self.ebpf.map(MAP_MATCHES).context("MATCHES map")?)?
                .into_iter()
                .map(|(k, n)| (self.iface_label(k.ifindex), k, n))
                .collect();
        let counts = self
            .ebpf
            .map(MAP_MATCH_COUNTS)
            .context("MATCH_COUNTS map")?;
        for (iface, &slot) in &self.slots {
            for (hook, rule_id, outcome, n) in counters::match_counts_of(counts, slot)? {
                let key = MatchKey {
                    ifindex: 0,
                    rule_id,
                    hook,
                    outcome,
                    // The arrays hold rules' counters only: numbers (`MSISDN_RULE_ID`, past
                    // `MATCH_ARRAY_RULES`) are in the MATCHES hash, with their place.
                    place: 0,
                    _pad: [0; 5],
                };
                matches.push((iface.clone(), key, n));
            }
        }
        let header = |id: u32| {
            self.names
                .get(&id)
                .cloned()
                .unwrap_or_else(|| format!("rule-{id}"))
        };
        let attached = self
            .config
            .attach
            .iter()
            .map(|a| (a.label(), a.hook.name(), !self.missing.contains(a)))
            .collect();
        let fleet = metrics::Fleet {
            program: self.program.clone(),
            policy_digest: compile::digest(&self.config.kernel),
            last_reload_ok: self
                .last_applied
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            last_reload_successful: self.last_reload_successful,
            kernel: (
                features::release(),
                match features::tc_mode() {
                    features::TcMode::Tcx => "tcx",
                    features::TcMode::Netlink => "cls_bpf",
                },
            ),
        };
        metrics::render(&metrics::Inputs {
            packets,
            matches,
            header: &header,
            attached,
            // Every attachment from the start (at 0), so a first increase is a rate.
            unguarded: self
                .config
                .attach
                .iter()
                .map(|a| {
                    let n = self.unguarded.get(a).copied().unwrap_or(0);
                    (a.label(), a.hook.name(), n)
                })
                .collect(),
            reloads_ok: self.reloads_ok,
            reloads_rejected: self.reloads_rejected,
            selftest_ok: self.selftest_ok == Some(true),
            tracked_flows: self.tracked_flows()?,
            fleet: &fleet,
        })
    }

    /// Entries in the flow table, recounted at most every `FLOW_COUNT_EVERY`.
    pub(super) fn tracked_flows(&self) -> Result<u64> {
        let (n, at) = self.flows.get();
        if at.is_some_and(|t| t.elapsed() < FLOW_COUNT_EVERY) {
            return Ok(n);
        }
        let n = counters::flow_count(self.ebpf.map(MAP_FLOWS).context("FLOWS map")?)?;
        self.flows.set((n, Some(std::time::Instant::now())));
        Ok(n)
    }

    pub(super) fn stats_map(&self) -> Result<&Map> {
        self.ebpf.map(MAP_STATS).context("STATS map")
    }

    pub(super) fn refresh_metrics(&self) {
        self.http.set_ready(self.readiness());
        match self.render_metrics() {
            Ok(text) => self.http.set_metrics(text),
            Err(e) => tracing::error!(error = %format!("{e:#}"), "rendering metrics failed"),
        }
    }

    /// `/readyz`: every `[[attach]]` entry attached and the last self-test passed; else
    /// the first reason why not.
    fn readiness(&self) -> Result<(), String> {
        if let Some(a) = self.missing.first() {
            let more = match self.missing.len() {
                1 => String::new(),
                n => format!(" (and {} more)", n - 1),
            };
            return Err(format!(
                "{}@{} not attached{more}",
                a.label(),
                a.hook.name()
            ));
        }
        match self.selftest_ok {
            Some(true) => Ok(()),
            Some(false) => Err("self-test failing".into()),
            None => Err("self-test pending".into()),
        }
    }
}
