//! `leakguard status`: what is guarded, from the pinned objects alone (the daemon may be
//! stopped): interfaces and hooks, the policy digest, counters per header and outcome.

use std::{collections::BTreeMap, fmt::Write as _};

use anyhow::{bail, Context as _, Result};
use aya::maps::{Map, MapData};
use leakguard_common::{action, form, is_rule_action, place, MSISDN_RULE_ID};
use serde::Serialize;

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
    policy::{forms_text, places_text, reads_form},
};

fn open(pins: &Pins, name: &str) -> Result<Map> {
    let path = pins.map(name);
    let data = MapData::from_pin(&path).with_context(|| format!("opening {}", path.display()))?;
    Ok(Map::from_map_data(data)?)
}

/// What is guarded and how, from the pinned objects: `leakguard status`, as text or JSON
/// (`--format json`, for config management and fleet tools).
#[derive(Debug, Serialize)]
pub struct Status {
    pub attachments: Vec<Attachment>,
    /// Digest of the policy in the kernel, as `leakguard_policy_info` labels it.
    pub policy_digest: String,
    pub max_head_bytes: u32,
    /// "drop" or "pass" (`scan.incomplete_heads`).
    pub incomplete_heads: &'static str,
    /// Counters since the pins were made, by name (as `leakguard_packets_total`'s
    /// classes and the global counters name them).
    pub counters: BTreeMap<&'static str, u64>,
    pub flows_tracked: u64,
    /// Where the identity-number check reads (`place::name`s: "header", "target",
    /// "cookie");
    /// empty when `[msisdn]` is off.
    pub msisdn_places: Vec<&'static str>,
    /// The forms of a number the check finds (`form::name`s: "decimal", "hex",
    /// "base64"); empty when `[msisdn]` is off.
    pub msisdn_forms: Vec<&'static str>,
    pub rules: Vec<RuleRow>,
}

#[derive(Debug, Serialize)]
pub struct Attachment {
    /// `IFACE`, or `NETNS:IFACE`.
    pub interface: String,
    pub hook: &'static str,
    /// "tcx-or-xdp link" or "cls_bpf filter".
    pub kind: &'static str,
    /// What is known of it now, empty when all is well.
    pub note: String,
}

#[derive(Debug, Serialize)]
pub struct RuleRow {
    /// The header name (folded), or "(identity numbers, [msisdn])".
    pub header: String,
    pub action: &'static str,
    pub count: u64,
    pub redact: u64,
    pub drop: u64,
    pub allow: u64,
}

/// The status report as text; an error when nothing is pinned.
pub fn report(pins: &Pins) -> Result<String> {
    Ok(gather(pins)?.text())
}

/// The status of the guard pinned under `pins`; an error when nothing is pinned.
pub fn gather(pins: &Pins) -> Result<Status> {
    if !pins.exists() {
        bail!(
            "no guard state at {} (never started, or removed by `leakguard detach`)",
            pins.root.display()
        );
    }
    let mut attachments = Vec::new();
    for (a, _) in pins.links()? {
        // The link is pinned, so the guard is attached wherever that interface lives;
        // whether it is there now is asked in its network namespace (this one's, for an
        // entry without one).
        let note = match entry_index(&a) {
            Ok(Some(_)) => String::new(),
            Ok(None) if a.netns.is_some() => "interface or namespace not there now".into(),
            Ok(None) => "interface not visible from this network namespace".into(),
            Err(e) => e.to_string(),
        };
        attachments.push(Attachment {
            interface: a.label(),
            hook: a.hook.name(),
            kind: "pinned link",
            note,
        });
    }
    for (a, _) in pins.filters()? {
        let note = netns::run_in(a.netns.as_ref(), || filter_state(&a))
            .unwrap_or_else(|e| format!("cls_bpf filter: {e}"));
        attachments.push(Attachment {
            interface: a.label(),
            hook: a.hook.name(),
            kind: "cls_bpf filter",
            note,
        });
    }
    let gen = apply::active_gen_of(&open(pins, MAP_ACTIVE)?)?;
    let config = apply::config_of(&open(pins, MAP_CONFIG)?, gen)?;
    let st = counters::stats_of(&open(pins, MAP_STATS)?)?;
    let counters = BTreeMap::from([
        ("packets", st.packets),
        ("tcp_http_port", st.tcp_http),
        ("request_heads", st.heads),
        ("header_lines", st.lines),
        ("not_seen_whole", st.truncated),
        ("malformed_lines", st.malformed),
        ("fragments", st.fragments),
        ("redacted_packets", st.redacted_packets),
        ("dropped_packets", st.dropped_packets),
        ("errors", st.errors),
        ("continuations", st.continuations),
        ("bodies", st.bodies),
        ("retransmissions", st.retransmissions),
        ("dropped_for_a_gap", st.unordered_drops),
    ]);
    let counter_map = open(pins, MAP_RULE_COUNTERS)?;
    let rules = apply::rules_of(&open(pins, MAP_RULES[gen as usize])?)?;
    let mut rows: Vec<(String, u8, u32)> = rules
        .iter()
        // Names the number check ignores are entries of the map, not rules.
        .filter(|(_, r)| is_rule_action(r.action))
        .map(|(k, r)| (key_name(k), r.action, r.id))
        .collect();
    if config.msisdn_on != 0 {
        rows.push((
            "(identity numbers, [msisdn])".into(),
            config.msisdn_action,
            MSISDN_RULE_ID,
        ));
    }
    let mut out_rows = Vec::new();
    for (header, act, id) in rows {
        let c = counters::rule_counters_of(&counter_map, id)?.outcomes;
        out_rows.push(RuleRow {
            header,
            action: action::name(act),
            count: c[usize::from(action::COUNT)],
            redact: c[usize::from(action::REDACT)],
            drop: c[usize::from(action::DROP)],
            allow: c[usize::from(action::ALLOW)],
        });
    }
    Ok(Status {
        attachments,
        policy_digest: format!("{:016x}", config.digest),
        max_head_bytes: config.max_head_bytes,
        incomplete_heads: if config.incomplete_action == action::DROP {
            "drop"
        } else {
            "pass"
        },
        counters,
        flows_tracked: counters::flow_count(&open(pins, MAP_FLOWS)?)?,
        msisdn_places: (0..place::COUNT)
            .filter(|&p| config.msisdn_on & place::bit(p) != 0)
            .map(place::name)
            .collect(),
        msisdn_forms: forms_of(config.msisdn_on),
        rules: out_rows,
    })
}

/// The forms of a number a `ScanConfig::msisdn_on` has looked for, by `form::name`.
fn forms_of(msisdn_on: u8) -> Vec<&'static str> {
    (0..form::COUNT)
        .filter(|&f| reads_form(msisdn_on, f))
        .map(form::name)
        .collect()
}

impl Status {
    /// As `leakguard status` prints it.
    #[must_use]
    pub fn text(&self) -> String {
        let mut s = String::new();
        if self.attachments.is_empty() {
            let _ = writeln!(s, "guarded: nothing (no pinned links or filters)");
        }
        for a in &self.attachments {
            let state = match (a.kind, a.note.is_empty()) {
                ("pinned link", true) => "pinned link".to_owned(),
                ("pinned link", false) => format!("pinned link ({})", a.note),
                (_, _) => a.note.clone(),
            };
            let _ = writeln!(s, "{:<16} {:<10} {state}", a.interface, a.hook);
        }
        let _ = writeln!(
            s,
            "policy digest {}; request heads scanned whole up to {} bytes, longer ones {}",
            self.policy_digest,
            self.max_head_bytes,
            if self.incomplete_heads == "drop" {
                "dropped"
            } else {
                "passed (scan.incomplete_heads = \"pass\")"
            }
        );
        let c = |k: &str| self.counters.get(k).copied().unwrap_or(0);
        let _ = writeln!(
            s,
            "packets {} (to an HTTP port {}), request heads {}, header lines {}, not seen whole {}, malformed {}, fragments {}, redacted {}, dropped {}, errors {}",
            c("packets"), c("tcp_http_port"), c("request_heads"), c("header_lines"),
            c("not_seen_whole"), c("malformed_lines"), c("fragments"), c("redacted_packets"),
            c("dropped_packets"), c("errors")
        );
        let _ = writeln!(
            s,
            "segments: continuations {}, bodies {}, retransmissions {}, dropped for a gap {}; flows tracked {}",
            c("continuations"),
            c("bodies"),
            c("retransmissions"),
            c("dropped_for_a_gap"),
            self.flows_tracked
        );
        if !self.msisdn_places.is_empty() {
            let bits = (0..place::COUNT)
                .filter(|&p| self.msisdn_places.contains(&place::name(p)))
                .fold(0, |b, p| b | place::bit(p));
            let _ = writeln!(
                s,
                "identity numbers ([msisdn]) read in: {}",
                places_text(bits)
            );
        }
        if !self.msisdn_forms.is_empty() {
            // Back to bits that read exactly the forms listed (hex and base64 need a
            // place read for runs; which one does not matter to the words).
            let bits = [(form::HEX, form::HEX_ON), (form::BASE64, form::B64_ON)]
                .into_iter()
                .filter(|&(f, _)| self.msisdn_forms.contains(&form::name(f)))
                .fold(
                    place::bit(place::HEADER) | place::INSIDE_VALUES,
                    |b, (_, on)| b | on,
                );
            let _ = writeln!(
                s,
                "identity numbers ([msisdn]) in the forms: {}",
                forms_text(bits)
            );
        }
        let _ = writeln!(
            s,
            "{:<32} {:<7} {:>10} {:>10} {:>10} {:>10}",
            "header", "action", "count", "redact", "drop", "allow"
        );
        for r in &self.rules {
            let _ = writeln!(
                s,
                "{:<32} {:<7} {:>10} {:>10} {:>10} {:>10}",
                r.header, r.action, r.count, r.redact, r.drop, r.allow
            );
        }
        s
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn status(places: Vec<&'static str>) -> Status {
        let forms = if places.is_empty() {
            Vec::new()
        } else {
            vec!["decimal", "hex", "base64"]
        };
        Status {
            attachments: Vec::new(),
            policy_digest: "0".repeat(16),
            max_head_bytes: 65536,
            incomplete_heads: "drop",
            counters: BTreeMap::new(),
            flows_tracked: 0,
            msisdn_places: places,
            msisdn_forms: forms,
            rules: Vec::new(),
        }
    }

    /// The places the number check reads, from the kernel's bits; nothing when it is off.
    #[test]
    fn the_number_check_places_are_shown() {
        let all = status(vec!["header", "target", "cookie"]).text();
        assert!(
            all.contains(
                "identity numbers ([msisdn]) read in: header values, request target (path and query), cookies\n"
            ),
            "{all}"
        );
        let both = status(vec!["header", "target"]).text();
        assert!(
            both.contains(
                "read in: header values, request target (path and query); off: cookies\n"
            ),
            "{both}"
        );
        let header = status(vec!["header"]).text();
        assert!(
            header.contains("read in: header values; off: request target, cookies\n"),
            "{header}"
        );
        assert!(!status(Vec::new()).text().contains("identity numbers"));
        let json = serde_json::to_value(status(vec!["header", "target", "cookie"])).unwrap();
        assert_eq!(
            json["msisdn_places"],
            serde_json::json!(["header", "target", "cookie"])
        );
    }

    /// The forms the number check finds, from the kernel's bits and back to words;
    /// nothing when it is off.
    #[test]
    fn the_number_check_forms_are_shown() {
        let all = status(vec!["header", "target", "cookie"]);
        let runs = place::bit(place::HEADER) | place::bit(place::COOKIE);
        assert_eq!(
            forms_of(runs | form::HEX_ON | form::B64_ON),
            ["decimal", "hex", "base64"]
        );
        assert_eq!(forms_of(runs | form::HEX_ON), ["decimal", "hex"]);
        assert_eq!(forms_of(runs | form::B64_ON), ["decimal", "base64"]);
        assert!(forms_of(0).is_empty());
        assert!(
            all.text()
                .contains("identity numbers ([msisdn]) in the forms: decimal, hex, base64\n"),
            "{}",
            all.text()
        );
        let json = serde_json::to_value(&all).unwrap();
        assert_eq!(
            json["msisdn_forms"],
            serde_json::json!(["decimal", "hex", "base64"])
        );
        // One of the two turned off: said off, the other still on.
        for (on, words) in [
            (form::HEX_ON, "in the forms: decimal, hex; off: base64\n"),
            (form::B64_ON, "in the forms: decimal, base64; off: hex\n"),
        ] {
            let mut one = status(vec!["header", "cookie"]);
            one.msisdn_forms = forms_of(runs | on);
            assert!(one.text().contains(words), "{}", one.text());
        }
        // Hex and base64 asked for, but no place read for runs of digits: decimal only.
        let mut decimal = status(vec!["header"]);
        decimal.msisdn_forms = forms_of(place::bit(place::HEADER) | form::HEX_ON | form::B64_ON);
        assert_eq!(decimal.msisdn_forms, ["decimal"]);
        assert!(
            decimal
                .text()
                .contains("in the forms: decimal; off: hex, base64\n"),
            "{}",
            decimal.text()
        );
        assert!(!status(Vec::new()).text().contains("forms"));
    }
}
