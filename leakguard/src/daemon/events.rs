//! Match events → log lines: drained once a tick, aggregated, one line per interface,
//! hook, destination, header and outcome with a count; never a value.

use std::{collections::BTreeMap, net::IpAddr};

use aya::maps::{MapData, RingBuf};
use leakguard_common::{action, hook, Event, FAMILY_IPV4, INCOMPLETE_RULE_ID, MSISDN_RULE_ID};

use super::Daemon;

impl Daemon {
    /// Logs the events of the last tick, one line per (interface, hook, destination,
    /// header, outcome) with a count: repeats are aggregated, never a value.
    pub(super) fn log_events(&self, ring: &mut RingBuf<MapData>) {
        let mut agg: BTreeMap<EventKey, u64> = BTreeMap::new();
        while let Some(item) = ring.next() {
            let Some(e) = Event::from_record(&item) else {
                continue;
            };
            let dst = if e.family == FAMILY_IPV4 {
                IpAddr::from([e.daddr[0], e.daddr[1], e.daddr[2], e.daddr[3]])
            } else {
                IpAddr::from(e.daddr)
            };
            let header = if e.rule_id == INCOMPLETE_RULE_ID {
                "(a whole head)".to_owned()
            } else if e.rule_id == MSISDN_RULE_ID {
                // The name the number came under, as the kernel folded it (token bytes
                // only: lowercase, `_` as `-`). The value is never in an event.
                event_name(&e)
            } else {
                self.names
                    .get(&e.rule_id)
                    .cloned()
                    .unwrap_or_else(|| "(unknown rule)".into())
            };
            *agg.entry((e.ifindex, e.hook, dst, e.rule_id, e.action, header, e.build))
                .or_default() += 1;
        }
        for ((ifindex, h, dst, rule, outcome, header, build), n) in agg {
            if rule == INCOMPLETE_RULE_ID {
                tracing::warn!(
                    interface = %self.iface_label(ifindex),
                    hook = hook::name(h),
                    destination = %dst,
                    action = if outcome == action::DROP { "drop" } else { "pass" },
                    count = n,
                    program_build = build,
                    "request head not seen whole (longer than scan.max_head_bytes, or open where a segment's scan ended)"
                );
                continue;
            }
            let what = if rule == MSISDN_RULE_ID {
                "identity number"
            } else {
                "identity header"
            };
            tracing::info!(
                interface = %self.iface_label(ifindex),
                hook = hook::name(h),
                destination = %dst,
                header = %header,
                action = action::name(outcome),
                count = n,
                program_build = build,
                "{what}"
            );
        }
    }
}

/// What one log line aggregates: interface index, hook, destination, rule id, outcome,
/// header name, program build.
type EventKey = (u32, u8, IpAddr, u32, u8, String, u32);

/// The header name carried by an event, printable by construction (token bytes).
fn event_name(e: &Event) -> String {
    let len = (e.name_len as usize).min(e.name.name.len());
    let name = &e.name.name[..len];
    if name.is_empty() || !name.iter().all(|&b| leakguard_common::name::is_tchar(b)) {
        return "(unprintable)".into();
    }
    String::from_utf8_lossy(name).into_owned()
}
