//! Prometheus metrics: rendered from the kernel maps and the daemon's state once a tick,
//! in the Prometheus text format (0.0.4), which every scraper and `promtool check
//! metrics` read; `http` serves the latest rendering on `GET /metrics`.
//! Labels are interface, hook, header name, action, class, place, form — never a value.

use anyhow::Result;
use prometheus_client::{
    encoding::{prometheus_text::encode, EncodeLabelSet},
    metrics::{counter::Counter, family::Family, gauge::Gauge, info::Info},
    registry::Registry,
};

use leakguard_common::{action, form, hook, place, MatchKey, Stats, MSISDN_RULE_ID};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MatchLabels {
    interface: String,
    hook: String,
    header: String,
    action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PacketLabels {
    interface: String,
    hook: String,
    class: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AttachLabels {
    interface: String,
    hook: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    revision: String,
    /// Digest of the kernel object the daemon loaded (the embedded one, or
    /// `--ebpf-object`'s): two gateways with the same version run the same programs.
    program: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DigestLabels {
    digest: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KernelLabels {
    release: String,
    tc_attach: String,
}

/// What the daemon runs, for a fleet view (constant between reloads).
pub struct Fleet {
    /// `program` of `leakguard_build_info`.
    pub program: String,
    /// Digest of the policy in the kernel (as `leakguard status` shows it).
    pub policy_digest: u64,
    /// When a policy was last applied (the start, or a reload), in seconds since the
    /// epoch, and whether the last reload attempt succeeded.
    pub last_reload_ok: f64,
    pub last_reload_successful: bool,
    /// The kernel release and how TC programs are attached ("tcx" or "cls_bpf").
    pub kernel: (String, &'static str),
}

/// What one rendering needs, gathered by the daemon.
pub struct Inputs<'a> {
    /// (interface, hook, stats) per counter slot; "other" for slot 0.
    pub packets: Vec<(String, u8, Stats)>,
    /// (interface, match key, count).
    pub matches: Vec<(String, MatchKey, u64)>,
    /// Header name of a rule id.
    pub header: &'a dyn Fn(u32) -> String,
    /// (interface, hook name, attached now).
    pub attached: Vec<(String, &'static str, bool)>,
    /// (interface, hook name, packets an interface that appeared while the daemon ran
    /// had passed before the guard was attached to it).
    pub unguarded: Vec<(String, &'static str, u64)>,
    pub reloads_ok: u64,
    pub reloads_rejected: u64,
    /// The last self-test passed.
    pub selftest_ok: bool,
    /// Entries in the kernel's flow table (heads open across segments, redactions kept
    /// for retransmissions).
    pub tracked_flows: u64,
    pub fleet: &'a Fleet,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NumberLabels {
    interface: String,
    hook: String,
    action: String,
    /// Where in the head the number was (`place::name`: "header", "target" or
    /// "cookie"): three values, never the number or the name it came under.
    place: String,
    /// How it was written (`form::name`: "decimal", "hex" or "base64"): three values.
    form: String,
}

/// The exposition text.
pub fn render(i: &Inputs<'_>) -> Result<String> {
    let mut reg = Registry::default();

    let matches = Family::<MatchLabels, Counter>::default();
    reg.register(
        "leakguard_header_matches",
        "Requests whose head carried an identity header, by interface, hook, header and what the policy did (count, redact, drop, allow)",
        matches.clone(),
    );
    let numbers = Family::<NumberLabels, Counter>::default();
    reg.register(
        "leakguard_msisdn_values",
        "Identity numbers ([msisdn]: 9-15 digits with a configured prefix) in header values under any header name, in the request target or in cookies, by interface, hook, what the policy did, place (header, target or cookie) and form (decimal, or hex or base64 of the digits); where each was (the header name, path or query parameter, or cookie name) is in the log, never the value",
        numbers.clone(),
    );
    for (iface, k, n) in &i.matches {
        if k.rule_id == MSISDN_RULE_ID {
            numbers
                .get_or_create(&NumberLabels {
                    interface: iface.clone(),
                    hook: hook::name(k.hook).into(),
                    action: action::name(k.outcome).into(),
                    // The place byte carries the form in its high nibble.
                    place: place::name(place::of(k.place)).into(),
                    form: form::name(form::of(k.place)).into(),
                })
                .inc_by(*n);
            continue;
        }
        matches
            .get_or_create(&MatchLabels {
                interface: iface.clone(),
                hook: hook::name(k.hook).into(),
                header: (i.header)(k.rule_id),
                action: action::name(k.outcome).into(),
            })
            .inc_by(*n);
    }

    let packets = Family::<PacketLabels, Counter>::default();
    reg.register(
        "leakguard_packets",
        "Packets the guard ran on, by interface, hook and class",
        packets.clone(),
    );
    let truncated = Counter::<u64>::default();
    reg.register(
        "leakguard_scan_truncated",
        "Request heads not seen whole (longer than scan.max_head_bytes, or open where a segment's scan ended): dropped, unless scan.incomplete_heads = \"pass\"",
        truncated.clone(),
    );
    let malformed = Counter::<u64>::default();
    reg.register(
        "leakguard_malformed_lines",
        "Header lines that violate RFC 9112 (never matched); with [msisdn] off, only lines whose first two bytes begin some rule's name are read closely enough to tell",
        malformed.clone(),
    );
    let scanned = Counter::<u64>::default();
    reg.register(
        "leakguard_scanned_bytes",
        "Payload bytes scanned",
        scanned.clone(),
    );
    let lost = Counter::<u64>::default();
    reg.register(
        "leakguard_events_lost",
        "Match events that did not fit the ring buffer (counters still moved)",
        lost.clone(),
    );
    let errors = Counter::<u64>::default();
    reg.register(
        "leakguard_kernel_errors",
        "Helper failures in the kernel programs (a redaction that could not be written drops the packet)",
        errors.clone(),
    );
    for (iface, h, s) in &i.packets {
        let classes = [
            ("seen", s.packets),
            ("tcp_http_port", s.tcp_http),
            ("request_head", s.heads),
            ("continuation", s.continuations),
            ("body", s.bodies),
            ("retransmission", s.retransmissions),
            ("unordered_drop", s.unordered_drops),
            ("fragment", s.fragments),
            ("redacted", s.redacted_packets),
            ("dropped", s.dropped_packets),
        ];
        for (class, n) in classes {
            packets
                .get_or_create(&PacketLabels {
                    interface: iface.clone(),
                    hook: hook::name(*h).into(),
                    class: class.into(),
                })
                .inc_by(n);
        }
        truncated.inc_by(s.truncated);
        malformed.inc_by(s.malformed);
        scanned.inc_by(s.bytes);
        lost.inc_by(s.events_lost);
        errors.inc_by(s.errors);
    }

    let attached = Family::<AttachLabels, Gauge>::default();
    reg.register(
        "leakguard_attached",
        "1 when the guard is attached to the interface and hook, 0 while the interface is missing",
        attached.clone(),
    );
    for (iface, h, up) in &i.attached {
        attached
            .get_or_create(&AttachLabels {
                interface: iface.clone(),
                hook: (*h).into(),
            })
            .set(i64::from(*up));
    }

    let unguarded = Family::<AttachLabels, Counter>::default();
    reg.register(
        "leakguard_unguarded_packets",
        "Packets a guarded interface passed, after it appeared, before the guard was attached to it (not scanned)",
        unguarded.clone(),
    );
    for (iface, h, n) in &i.unguarded {
        unguarded
            .get_or_create(&AttachLabels {
                interface: iface.clone(),
                hook: (*h).into(),
            })
            .inc_by(*n);
    }

    let reloads = Family::<ResultLabels, Counter>::default();
    reg.register(
        "leakguard_policy_reloads",
        "Policy reloads (SIGHUP or a changed file) by result",
        reloads.clone(),
    );
    for (result, n) in [("ok", i.reloads_ok), ("rejected", i.reloads_rejected)] {
        reloads
            .get_or_create(&ResultLabels {
                result: result.into(),
            })
            .inc_by(n);
    }

    let flows = Gauge::<i64>::default();
    reg.register(
        "leakguard_tracked_flows",
        "Flows in the kernel's flow table: request heads open across segments, and redactions kept for retransmissions",
        flows.clone(),
    );
    flows.set(i64::try_from(i.tracked_flows).unwrap_or(i64::MAX));

    let selftest = Gauge::<i64>::default();
    reg.register(
        "leakguard_selftest_ok",
        "1 when the last self-test (canary requests through the attached programs) passed",
        selftest.clone(),
    );
    selftest.set(i64::from(i.selftest_ok));

    // Exported as leakguard_build_info: the encoder appends an info metric's suffix.
    reg.register(
        "leakguard_build",
        "Build information: version, source revision, digest of the kernel programs loaded",
        Info::new(BuildLabels {
            version: env!("CARGO_PKG_VERSION").into(),
            revision: crate::REVISION.into(),
            program: i.fleet.program.clone(),
        }),
    );
    reg.register(
        "leakguard_policy",
        "Digest of the policy in the kernel (as `leakguard status` shows it): gateways that should agree have the same",
        Info::new(DigestLabels {
            digest: format!("{:016x}", i.fleet.policy_digest),
        }),
    );
    reg.register(
        "leakguard_kernel",
        "The kernel release and how TC programs are attached (tcx, or cls_bpf on kernels without TCX)",
        Info::new(KernelLabels {
            release: i.fleet.kernel.0.clone(),
            tc_attach: i.fleet.kernel.1.into(),
        }),
    );
    let last_ok = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
    reg.register(
        "leakguard_policy_last_reload_success_timestamp_seconds",
        "When a policy was last applied (the start, or a reload), in seconds since the epoch",
        last_ok.clone(),
    );
    last_ok.set(i.fleet.last_reload_ok);
    let last_good = Gauge::<i64>::default();
    reg.register(
        "leakguard_policy_last_reload_successful",
        "1 when the last reload (SIGHUP or a changed file) applied its policy, 0 when it was rejected",
        last_good.clone(),
    );
    last_good.set(i64::from(i.fleet.last_reload_successful));

    let mut out = String::new();
    encode(&mut out, &reg)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::{render, Inputs};
    use leakguard_common::{action, form, hook, place, MatchKey, Stats, MSISDN_RULE_ID};

    /// Prometheus text, not OpenMetrics: a counter family is named with its `_total`
    /// suffix, there is no `# EOF`, and the build is an info gauge.
    #[test]
    fn renders_prometheus_text() {
        let header = |_: u32| "X-MSISDN".to_owned();
        let key = MatchKey {
            ifindex: 1,
            rule_id: 0,
            hook: hook::TC_EGRESS,
            outcome: 0,
            place: 0,
            _pad: [0; 5],
        };
        // Number matches: the same interface, hook and outcome in every place, counted
        // apart (and the header's twice, summed).
        let number = |place, n| {
            let k = MatchKey {
                rule_id: MSISDN_RULE_ID,
                outcome: action::REDACT,
                place,
                ..key
            };
            ("eth1".to_owned(), k, n)
        };
        let text = render(&Inputs {
            packets: vec![("eth1".into(), hook::TC_EGRESS, Stats::default())],
            matches: vec![
                ("eth1".into(), key, 2),
                number(place::HEADER, 1),
                number(place::TARGET, 5),
                number(place::HEADER, 2),
                number(place::COOKIE, 7),
                // Hex: the form in the place byte's high nibble, counted apart.
                number(place::with_form(place::COOKIE, form::HEX), 11),
                number(place::with_form(place::TARGET, form::HEX), 13),
                // Base64 likewise, apart from hex and decimal in the same place.
                number(place::with_form(place::TARGET, form::BASE64), 17),
                number(place::with_form(place::COOKIE, form::BASE64), 19),
                number(place::with_form(place::HEADER, form::BASE64), 23),
            ],
            header: &header,
            attached: vec![("eth1".into(), "tc-egress", true)],
            unguarded: Vec::new(),
            reloads_ok: 1,
            reloads_rejected: 0,
            selftest_ok: true,
            tracked_flows: 3,
            fleet: &super::Fleet {
                program: "0123456789abcdef".into(),
                policy_digest: 0xfeed,
                last_reload_ok: 1_700_000_000.5,
                last_reload_successful: true,
                kernel: ("6.1.0-57-amd64".into(), "cls_bpf"),
            },
        })
        .unwrap();
        for line in [
            "# TYPE leakguard_header_matches_total counter",
            "leakguard_header_matches_total{interface=\"eth1\",hook=\"tc-egress\",header=\"X-MSISDN\",action=\"count\"} 2",
            "# TYPE leakguard_msisdn_values_total counter",
            "leakguard_msisdn_values_total{interface=\"eth1\",hook=\"tc-egress\",action=\"redact\",place=\"header\",form=\"decimal\"} 3",
            "leakguard_msisdn_values_total{interface=\"eth1\",hook=\"tc-egress\",action=\"redact\",place=\"target\",form=\"decimal\"} 5",
            "leakguard_msisdn_values_total{interface=\"eth1\",hook=\"tc-egress\",action=\"redact\",place=\"cookie\",form=\"decimal\"} 7",
            "leakguard_msisdn_values_total{interface=\"eth1\",hook=\"tc-egress\",action=\"redact\",place=\"cookie\",form=\"hex\"} 11",
            "leakguard_msisdn_values_total{interface=\"eth1\",hook=\"tc-egress\",action=\"redact\",place=\"target\",form=\"hex\"} 13",
            "leakguard_msisdn_values_total{interface=\"eth1\",hook=\"tc-egress\",action=\"redact\",place=\"target\",form=\"base64\"} 17",
            "leakguard_msisdn_values_total{interface=\"eth1\",hook=\"tc-egress\",action=\"redact\",place=\"cookie\",form=\"base64\"} 19",
            "leakguard_msisdn_values_total{interface=\"eth1\",hook=\"tc-egress\",action=\"redact\",place=\"header\",form=\"base64\"} 23",
            "# TYPE leakguard_policy_reloads_total counter",
            "# TYPE leakguard_tracked_flows gauge",
            "leakguard_tracked_flows 3",
            "# HELP leakguard_build_info Build information: version, source revision, digest of the kernel programs loaded.",
            "# TYPE leakguard_build_info gauge",
            &format!(
                "leakguard_build_info{{version=\"{}\",revision=\"{}\",program=\"0123456789abcdef\"}} 1",
                env!("CARGO_PKG_VERSION"),
                crate::REVISION
            ),
            "leakguard_policy_info{digest=\"000000000000feed\"} 1",
            "leakguard_kernel_info{release=\"6.1.0-57-amd64\",tc_attach=\"cls_bpf\"} 1",
            "leakguard_policy_last_reload_success_timestamp_seconds 1700000000.5",
            "leakguard_policy_last_reload_successful 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} in:\n{text}");
        }
        assert!(!text.contains("# EOF"));
        // No label value but the five places and forms known.
        assert!(!text.contains("unknown"), "{text}");
    }
}
