//! Match events → log lines: drained once a tick, aggregated, one line per interface,
//! hook, destination, header (or, for a number, where it was and its form) and outcome
//! with a count; never a value.

use std::{collections::BTreeMap, net::IpAddr};

use aya::maps::{MapData, RingBuf};
use leakguard_common::{
    action, form, hook, Event, FAMILY_IPV4, INCOMPLETE_RULE_ID, MSISDN_RULE_ID,
};

use super::Daemon;
use crate::event_text::{form_of, NumberAt};

/// What a match was, as its log line names it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum What {
    /// A head not seen whole.
    Incomplete,
    /// A rule's header, by name.
    Header(String),
    /// An identity number, where it was (a header value under a name, a part of the
    /// request target, or a cookie) and its form (`form::DECIMAL`, `form::HEX`,
    /// `form::BASE64`): numbers in different places or forms are different lines.
    Number(NumberAt, u8),
}

/// What one log line aggregates: interface index, hook, destination, what matched,
/// outcome, program build.
type EventKey = (u32, u8, IpAddr, What, u8, u32);

impl Daemon {
    /// Logs the events of the last tick, one line per (interface, hook, destination,
    /// what matched, outcome) with a count: repeats are aggregated, never a value.
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
            let what = if e.rule_id == INCOMPLETE_RULE_ID {
                What::Incomplete
            } else if e.rule_id == MSISDN_RULE_ID {
                // Where the number was, as the kernel named it (a folded header name,
                // `path` / `query:NAME`, or `cookie:NAME` / `cookie`). The value is never in
                // an event.
                What::Number(NumberAt::of(&e), form_of(&e))
            } else {
                What::Header(
                    self.names
                        .get(&e.rule_id)
                        .cloned()
                        .unwrap_or_else(|| "(unknown rule)".into()),
                )
            };
            *agg.entry((e.ifindex, e.hook, dst, what, e.action, e.build))
                .or_default() += 1;
        }
        for ((ifindex, h, dst, what, outcome, build), n) in agg {
            let interface = self.iface_label(ifindex);
            let hook = hook::name(h);
            let action = action::name(outcome);
            match what {
                What::Incomplete => tracing::warn!(
                    interface = %interface,
                    hook,
                    destination = %dst,
                    action = if outcome == action::DROP { "drop" } else { "pass" },
                    count = n,
                    program_build = build,
                    "request head not seen whole (longer than scan.max_head_bytes, or open where a segment's scan ended)"
                ),
                What::Header(header) => tracing::info!(
                    interface = %interface,
                    hook,
                    destination = %dst,
                    header = %header,
                    action,
                    count = n,
                    program_build = build,
                    "identity header"
                ),
                What::Number(at, f) => {
                    let place = at.place();
                    // Every number line says its form, "decimal" included.
                    let form = form::name(f);
                    match at {
                        NumberAt::Header(header) => tracing::info!(
                            interface = %interface,
                            hook,
                            destination = %dst,
                            place,
                            form,
                            header = %header,
                            action,
                            count = n,
                            program_build = build,
                            "identity number"
                        ),
                        NumberAt::Target(part) => tracing::info!(
                            interface = %interface,
                            hook,
                            destination = %dst,
                            place,
                            form,
                            target = %part,
                            action,
                            count = n,
                            program_build = build,
                            "identity number in the request target"
                        ),
                        NumberAt::Cookie(name) => tracing::info!(
                            interface = %interface,
                            hook,
                            destination = %dst,
                            place,
                            form,
                            cookie = %name,
                            action,
                            count = n,
                            program_build = build,
                            "identity number in a cookie"
                        ),
                        NumberAt::Unknown(_) => tracing::info!(
                            interface = %interface,
                            hook,
                            destination = %dst,
                            place,
                            form,
                            action,
                            count = n,
                            program_build = build,
                            "identity number (in a place this build does not know)"
                        ),
                    }
                }
            }
        }
    }
}
