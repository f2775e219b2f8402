//! `leakguard status`: what is guarded, from the pinned objects alone (the daemon may be
//! stopped): interfaces and hooks, the policy digest, counters per header and outcome.

use std::fmt::Write as _;

use anyhow::{bail, Context as _, Result};
use aya::maps::{Map, MapData};
use leakguard_common::{action, IGNORE_ACTION, MSISDN_RULE_ID};

use crate::{
    config::{Attach, Hook},
    kernel::{
        apply,
        attach::{entry_index, interface_index},
        compile::key_name,
        counters,
        maps::{MAP_ACTIVE, MAP_CONFIG, MAP_FLOWS, MAP_RULES, MAP_RULE_COUNTERS, MAP_STATS},
        netns,
        pins::Pins,
        tc_filter,
    },
};

fn open(pins: &Pins, name: &str) -> Result<Map> {
    let path = pins.map(name);
    let data = MapData::from_pin(&path).with_context(|| format!("opening {}", path.display()))?;
    Ok(Map::from_map_data(data)?)
}

/// The status report; an error when nothing is pinned.
pub fn report(pins: &Pins) -> Result<String> {
    if !pins.exists() {
        bail!(
            "no guard state at {} (never started, or removed by `leakguard detach`)",
            pins.root.display()
        );
    }
    let mut s = String::new();
    let links = pins.links()?;
    let filters = pins.filters()?;
    if links.is_empty() && filters.is_empty() {
        writeln!(s, "guarded: nothing (no pinned links or filters)")?;
    }
    for (a, _) in &links {
        // The link is pinned, so the guard is attached wherever that interface lives;
        // whether it is there now is asked in its network namespace (this one's, for an
        // entry without one).
        let seen = match entry_index(a) {
            Ok(Some(_)) => String::new(),
            Ok(None) if a.netns.is_some() => " (interface or namespace not there now)".into(),
            Ok(None) => " (interface not visible from this network namespace)".into(),
            Err(e) => format!(" ({e})"),
        };
        writeln!(
            s,
            "{:<16} {:<10} pinned link{seen}",
            a.label(),
            a.hook.name()
        )?;
    }
    for (a, _) in &filters {
        let state = netns::run_in(a.netns.as_ref(), || filter_state(a))
            .unwrap_or_else(|e| format!("cls_bpf filter: {e}"));
        writeln!(s, "{:<16} {:<10} {state}", a.label(), a.hook.name())?;
    }
    let gen = apply::active_gen_of(&open(pins, MAP_ACTIVE)?)?;
    let config = apply::config_of(&open(pins, MAP_CONFIG)?, gen)?;
    writeln!(
        s,
        "policy digest {:016x}; request heads scanned whole up to {} bytes, longer ones {}",
        config.digest,
        config.max_head_bytes,
        if config.incomplete_action == action::DROP {
            "dropped"
        } else {
            "passed (scan.incomplete_heads = \"pass\")"
        }
    )?;
    let st = counters::stats_of(&open(pins, MAP_STATS)?)?;
    writeln!(
        s,
        "packets {} (to an HTTP port {}), request heads {}, header lines {}, not seen whole {}, malformed {}, fragments {}, redacted {}, dropped {}, errors {}",
        st.packets, st.tcp_http, st.heads, st.lines, st.truncated, st.malformed, st.fragments,
        st.redacted_packets, st.dropped_packets, st.errors
    )?;
    writeln!(
        s,
        "segments: continuations {}, bodies {}, retransmissions {}, dropped for a gap {}; flows tracked {}",
        st.continuations,
        st.bodies,
        st.retransmissions,
        st.unordered_drops,
        counters::flow_count(&open(pins, MAP_FLOWS)?)?
    )?;
    let counters = open(pins, MAP_RULE_COUNTERS)?;
    let rules = apply::rules_of(&open(pins, MAP_RULES[gen as usize])?)?;
    writeln!(
        s,
        "{:<32} {:<7} {:>10} {:>10} {:>10} {:>10}",
        "header", "action", "count", "redact", "drop", "allow"
    )?;
    let mut rows: Vec<(String, u8, u32)> = rules
        .iter()
        // Names the number check ignores are entries of the map, not rules.
        .filter(|(_, r)| r.action != IGNORE_ACTION)
        .map(|(k, r)| (key_name(k), r.action, r.id))
        .collect();
    if config.msisdn_on != 0 {
        rows.push((
            "(identity numbers, [msisdn])".into(),
            config.msisdn_action,
            MSISDN_RULE_ID,
        ));
    }
    for (name, act, id) in rows {
        let c = counters::rule_counters_of(&counters, id)?.outcomes;
        writeln!(
            s,
            "{name:<32} {:<7} {:>10} {:>10} {:>10} {:>10}",
            action::name(act),
            c[usize::from(action::COUNT)],
            c[usize::from(action::REDACT)],
            c[usize::from(action::DROP)],
            c[usize::from(action::ALLOW)],
        )?;
    }
    Ok(s)
}

/// What the kernel says of leakguard's cls_bpf filter of `a` (kernels without TCX); run
/// in `a`'s network namespace.
fn filter_state(a: &Attach) -> String {
    let what = format!(
        "cls_bpf filter (priority {}, handle {:#x})",
        tc_filter::PRIORITY,
        u32::from(tc_filter::HANDLE)
    );
    let ifindex = match interface_index(&a.interface) {
        Ok(Some(i)) => i,
        Ok(None) => return format!("{what}: interface not visible from this network namespace"),
        Err(e) => return format!("{what}: cannot look the interface up: {e}"),
    };
    let parent = if a.hook == Hook::TcIngress {
        tc_filter::parent(aya::programs::TcAttachType::Ingress)
    } else {
        tc_filter::parent(aya::programs::TcAttachType::Egress)
    };
    match tc_filter::ours(ifindex, parent) {
        Ok(Some(f)) => match f.program {
            Some((name, id)) => format!("{what}, program {name} (id {id})"),
            None => what,
        },
        Ok(None) => format!("{what}: MISSING from the interface (start the daemon to re-attach)"),
        Err(e) => format!("{what}: cannot read the interface's filters: {e}"),
    }
}
