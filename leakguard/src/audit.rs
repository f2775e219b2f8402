//! `leakguard audit`: replays a capture (pcap or pcapng) through the real kernel program
//! (XDP, by `BPF_PROG_TEST_RUN`, in a private copy of the maps: nothing attached or pinned
//! is touched) under a policy, and reports every identity header or number it finds:
//! time, source, destination, header name (for a number, where it was: the header it came
//! under, the request target's path or query parameter, or the cookie) and what the
//! policy does — never a value.
//!
//! The program's own flow table follows heads across segments, exactly as on a gateway.

use std::{
    collections::{BTreeMap, HashMap},
    fs::File,
    io::{BufReader, Read, Write},
    net::{IpAddr, SocketAddr},
    path::Path,
    time::{Duration, Instant, UNIX_EPOCH},
};

use anyhow::{bail, Context as _, Result};
use aya::{
    maps::{MapData, RingBuf},
    programs::{TestRun, TestRunOptions, Xdp},
    Ebpf,
};
use leakguard_common::{
    action, form, place, Event, FAMILY_IPV4, INCOMPLETE_RULE_ID, MSISDN_RULE_ID,
};
use pcap_file::{
    pcap::PcapReader,
    pcapng::{blocks::interface_description::InterfaceDescriptionOption, Block, PcapNgReader},
    DataLink,
};
use serde_json::json;

use crate::{
    config,
    event_text::{form_of, NumberAt},
    kernel::{
        apply, counters, maps,
        object::{EBPF_OBJECT, PROG_XDP},
    },
};

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A table for people, then a summary per header.
    Table,
    /// One JSON document: findings, summary, packets, skipped, request_heads,
    /// continuations, packets_per_second.
    Json,
}

/// One identity header or number seen in the capture.
#[derive(Clone, Debug)]
pub struct Finding {
    pub time: Duration,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    /// The rule's header; for a number, where it was: `NAME (number)` for a header
    /// value, `request target (PART) (number)` for the target (`path`, `query:NAME`),
    /// `cookie:NAME (number)` for a cookie (`cookie (number)` when it had no name);
    /// `(number, hex)` or `(number, base64)` instead of `(number)` for one in that form.
    pub header: String,
    /// Where in the head: `header` (rules and numbers in header values), `target`
    /// (numbers in the request target) or `cookie` (numbers in a `Cookie` value); `None`
    /// for a head not seen whole.
    pub place: Option<&'static str>,
    /// How a number was written: `decimal`, `hex` or `base64` (`form::name`); `None` for
    /// a rule's header and a head not seen whole.
    pub form: Option<&'static str>,
    pub action: &'static str,
}

/// What a replay found.
#[derive(Debug, Default)]
pub struct Report {
    pub findings: Vec<Finding>,
    pub packets: u64,
    /// Packets of a link type the replay does not read, or too large for a test run.
    pub skipped: u64,
    pub heads: u64,
    pub continuations: u64,
    pub seconds: f64,
}

/// The largest frame a test run of the XDP program takes.
const MAX_FRAME: usize = 65_000;

/// Replays `capture` under the policy in `config`; writes the report to `out`.
pub fn run(config: &Path, capture: &Path, format: Format, out: &mut impl Write) -> Result<()> {
    // Audit attaches nothing: a policy without [[attach]] is fine here.
    let cfg = config::load_policy(config).map_err(anyhow::Error::from)?;
    let report = replay(&cfg.kernel, capture)?;
    match format {
        Format::Table => write_table(&report, out)?,
        Format::Json => write_json(&report, out)?,
    }
    Ok(())
}

/// Replays a capture through the XDP program loaded with `policy`.
pub fn replay(policy: &crate::policy::KernelPolicy, capture: &Path) -> Result<Report> {
    let mut ebpf = load(policy)?;
    let ids = apply::apply(&mut ebpf, policy)?;
    let names: HashMap<u32, String> = ids
        .by_rule
        .iter()
        .zip(&policy.rules)
        .map(|(&id, r)| (id, r.header.clone()))
        .collect();
    let mut ring: RingBuf<MapData> = RingBuf::try_from(
        ebpf.take_map(maps::MAP_EVENTS)
            .context("the EVENTS map is missing")?,
    )?;
    let mut report = Report::default();
    let started = Instant::now();
    let mut buf = vec![0u8; MAX_FRAME + 256];
    let file = File::open(capture).with_context(|| format!("opening {}", capture.display()))?;
    packets(file, |time, link, data| {
        report.packets += 1;
        let Some(frame) = to_ethernet(link, data) else {
            report.skipped += 1;
            return Ok(());
        };
        if frame.len() > MAX_FRAME || frame.len() < 14 {
            report.skipped += 1;
            return Ok(());
        }
        let prog: &mut Xdp = ebpf
            .program_mut(PROG_XDP)
            .context("the XDP program is missing")?
            .try_into()?;
        prog.test_run(TestRunOptions {
            data_in: Some(&frame),
            data_out: Some(&mut buf),
            repeat: 1,
            ..TestRunOptions::default()
        })
        .context("BPF_PROG_TEST_RUN of the XDP program")?;
        while let Some(item) = ring.next() {
            let Some(e) = Event::from_record(&item) else {
                continue;
            };
            report.findings.push(finding(&e, time, &names));
        }
        Ok(())
    })?;
    let stats = counters::stats(&ebpf)?;
    report.heads = stats.heads;
    report.continuations = stats.continuations;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

fn load(policy: &crate::policy::KernelPolicy) -> Result<Ebpf> {
    let _ = policy;
    if !crate::privileges::may_load_bpf() {
        return Err(privileges("EPERM"));
    }
    crate::kernel::features::check()?;
    let mut ebpf = Ebpf::load(EBPF_OBJECT).map_err(|e| privileges(&chain(&e)))?;
    let prog: &mut Xdp = ebpf
        .program_mut(PROG_XDP)
        .context("the XDP program is missing")?
        .try_into()?;
    prog.load().map_err(|e| {
        let text = chain(&e);
        if text.contains("Operation not permitted") {
            privileges(&text)
        } else {
            crate::kernel::verifier::refused(PROG_XDP, e)
        }
    })?;
    Ok(ebpf)
}

/// The error and its sources, one string.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// A load failure, explained when it is one of privileges.
fn privileges(e: &str) -> anyhow::Error {
    if e.contains("Operation not permitted") || e.contains("EPERM") {
        anyhow::anyhow!(
            "audit runs the guard's BPF program on the capture and needs the privileges to \
             load it: run it as root (or with CAP_BPF and CAP_PERFMON)"
        )
    } else {
        anyhow::anyhow!("loading the BPF program: {e}")
    }
}

fn finding(e: &Event, time: Duration, names: &HashMap<u32, String>) -> Finding {
    let ip = |a: &[u8; 16]| -> IpAddr {
        if e.family == FAMILY_IPV4 {
            IpAddr::from([a[0], a[1], a[2], a[3]])
        } else {
            IpAddr::from(*a)
        }
    };
    let (header, place, form) = if e.rule_id == INCOMPLETE_RULE_ID {
        (
            "(head not seen whole: longer than scan.max_head_bytes)".into(),
            None,
            None,
        )
    } else if e.rule_id == MSISDN_RULE_ID {
        let at = NumberAt::of(e);
        let place = Some(at.place());
        let f = form_of(e);
        // A decimal number is just a number; another form says itself.
        let number = if f == form::DECIMAL {
            "(number)".to_owned()
        } else {
            format!("(number, {})", form::name(f))
        };
        let header = match at {
            NumberAt::Header(name) if name != "(unprintable)" => format!("{name} {number}"),
            NumberAt::Header(_) => number,
            NumberAt::Target(part) => format!("request target ({part}) {number}"),
            // `cookie:NAME`, or `cookie` when the number had no pair name.
            NumberAt::Cookie(part) if part.starts_with("cookie") => format!("{part} {number}"),
            NumberAt::Cookie(_) => format!("cookie {number}"),
            NumberAt::Unknown(_) => format!("(unknown place) {number}"),
        };
        (header, place, Some(form::name(f)))
    } else {
        let header = names
            .get(&e.rule_id)
            .cloned()
            .unwrap_or_else(|| format!("rule-{}", e.rule_id));
        (header, Some(place::name(place::HEADER)), None)
    };
    Finding {
        time,
        src: SocketAddr::new(ip(&e.saddr), e.sport),
        dst: SocketAddr::new(ip(&e.daddr), e.dport),
        header,
        place,
        form,
        action: action::name(e.action),
    }
}

/// pcapng's timestamp unit when an interface has no `if_tsresol` option: microseconds.
const DEFAULT_TSRESOL: u8 = 6;

/// A pcapng timestamp in its interface's units. pcap-file 2.0 hands back the raw 64-bit
/// count as if it were nanoseconds; `if_tsresol` says what a unit is: 10^-n s, or 2^-n s
/// when its high bit is set.
fn timestamp(raw_as_nanos: Duration, tsresol: u8) -> Duration {
    let raw = raw_as_nanos.as_nanos();
    let n = u32::from(tsresol & 0x7f);
    let nanos = if tsresol & 0x80 == 0 {
        if n <= 9 {
            raw.saturating_mul(10u128.pow(9 - n))
        } else {
            raw / 10u128.pow((n - 9).min(38))
        }
    } else {
        raw.saturating_mul(1_000_000_000) >> n.min(127)
    };
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// Calls `f(time, link type, bytes)` for every packet of a pcap or pcapng capture (a
/// fuzz target: `tests/fuzz`).
pub fn packets(
    input: impl std::io::Read,
    mut f: impl FnMut(Duration, DataLink, &[u8]) -> Result<()>,
) -> Result<()> {
    let mut r = BufReader::with_capacity(1 << 20, input);
    let mut magic = [0u8; 4];
    r.read_exact(&mut magic)
        .context("reading the capture's magic number")?;
    // Put the magic back in front.
    let r = std::io::Read::chain(&magic[..], r);
    match u32::from_le_bytes(magic) {
        0x0a0d_0d0a => {
            let mut ng = PcapNgReader::new(r).context("reading the pcapng header")?;
            // Each interface's link type and timestamp resolution (`if_tsresol`).
            let mut links: Vec<(DataLink, u8)> = Vec::new();
            while let Some(block) = ng.next_block() {
                match block.context("reading a pcapng block")? {
                    Block::SectionHeader(_) => links.clear(),
                    Block::InterfaceDescription(i) => {
                        let resol = i
                            .options
                            .iter()
                            .find_map(|o| match o {
                                InterfaceDescriptionOption::IfTsResol(r) => Some(*r),
                                _ => None,
                            })
                            .unwrap_or(DEFAULT_TSRESOL);
                        links.push((i.linktype, resol));
                    }
                    Block::EnhancedPacket(p) => {
                        let (link, resol) = links
                            .get(p.interface_id as usize)
                            .copied()
                            .unwrap_or((DataLink::ETHERNET, DEFAULT_TSRESOL));
                        f(timestamp(p.timestamp, resol), link, &p.data)?;
                    }
                    Block::SimplePacket(p) => {
                        let link = links.first().map_or(DataLink::ETHERNET, |l| l.0);
                        f(Duration::ZERO, link, &p.data)?;
                    }
                    _ => {}
                }
            }
        }
        0xa1b2_c3d4 | 0xd4c3_b2a1 | 0xa1b2_3c4d | 0x4d3c_b2a1 => {
            let mut pcap = PcapReader::new(r).context("reading the pcap header")?;
            let link = pcap.header().datalink;
            while let Some(p) = pcap.next_packet() {
                let p = p.context("reading a pcap packet")?;
                f(p.timestamp, link, &p.data)?;
            }
        }
        m => bail!("not a pcap or pcapng capture (magic number {m:#010x})"),
    }
    Ok(())
}

/// The packet as an Ethernet frame (what the XDP program reads), or `None` for a link
/// type the replay does not read.
#[must_use]
pub fn to_ethernet(link: DataLink, data: &[u8]) -> Option<Vec<u8>> {
    let eth = |ethertype: u16, ip: &[u8]| {
        let mut f = Vec::with_capacity(14 + ip.len());
        f.extend_from_slice(&[0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1]);
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(ip);
        f
    };
    let by_version = |ip: &[u8]| match ip.first()? >> 4 {
        4 => Some(eth(0x0800, ip)),
        6 => Some(eth(0x86dd, ip)),
        _ => None,
    };
    match link {
        DataLink::ETHERNET => Some(data.to_vec()),
        DataLink::RAW | DataLink::IPV4 | DataLink::IPV6 => by_version(data),
        // Linux cooked capture: 16-byte header, protocol in its last two bytes.
        DataLink::LINUX_SLL if data.len() >= 16 => {
            Some(eth(u16::from_be_bytes([data[14], data[15]]), &data[16..]))
        }
        // Version 2: 20-byte header, protocol first.
        DataLink::LINUX_SLL2 if data.len() >= 20 => {
            Some(eth(u16::from_be_bytes([data[0], data[1]]), &data[20..]))
        }
        // BSD loopback: a 4-byte address family in host order.
        DataLink::NULL | DataLink::LOOP if data.len() >= 4 => by_version(&data[4..]),
        _ => None,
    }
}

fn rfc3339(t: Duration) -> String {
    humantime::format_rfc3339_micros(UNIX_EPOCH + t).to_string()
}

/// Findings per header (or where a number was), place, form and action.
type SummaryKey = (
    String,
    Option<&'static str>,
    Option<&'static str>,
    &'static str,
);

fn summary(r: &Report) -> BTreeMap<SummaryKey, u64> {
    let mut s = BTreeMap::new();
    for f in &r.findings {
        *s.entry((f.header.clone(), f.place, f.form, f.action))
            .or_insert(0) += 1;
    }
    s
}

fn write_table(r: &Report, out: &mut impl Write) -> Result<()> {
    writeln!(
        out,
        "{:<27} {:<41} {:<41} {:<32} action",
        "time", "source", "destination", "header"
    )?;
    for f in &r.findings {
        writeln!(
            out,
            "{:<27} {:<41} {:<41} {:<32} {}",
            rfc3339(f.time),
            f.src,
            f.dst,
            f.header,
            f.action
        )?;
    }
    writeln!(out)?;
    writeln!(out, "{:<40} {:<7} {:>10}", "header", "action", "requests")?;
    for ((h, _, _, a), n) in summary(r) {
        writeln!(out, "{h:<40} {a:<7} {n:>10}")?;
    }
    writeln!(
        out,
        "\n{} packets ({} skipped: link type or size), {} request heads, {} continuation segments, {} findings; {:.0} packets/s",
        r.packets,
        r.skipped,
        r.heads,
        r.continuations,
        r.findings.len(),
        r.packets as f64 / r.seconds.max(1e-9)
    )?;
    Ok(())
}

fn write_json(r: &Report, out: &mut impl Write) -> Result<()> {
    let findings: Vec<_> = r
        .findings
        .iter()
        .map(|f| {
            json!({"time": rfc3339(f.time), "source": f.src.to_string(),
                   "destination": f.dst.to_string(), "header": f.header, "place": f.place,
                   "form": f.form, "action": f.action})
        })
        .collect();
    let summary: Vec<_> = summary(r)
        .into_iter()
        .map(|((h, p, f, a), n)| {
            json!({"header": h, "place": p, "form": f, "action": a, "requests": n})
        })
        .collect();
    let doc = json!({"findings": findings, "summary": summary, "packets": r.packets,
        "skipped": r.skipped, "request_heads": r.heads, "continuations": r.continuations,
        "packets_per_second": r.packets as f64 / r.seconds.max(1e-9)});
    serde_json::to_writer_pretty(&mut *out, &doc)?;
    writeln!(out)?;
    Ok(())
}

#[cfg(test)]
mod timestamp_tests {
    use super::*;

    #[test]
    fn pcapng_timestamps_follow_if_tsresol() {
        let raw = |n: u64| Duration::from_nanos(n);
        // Microseconds, the default.
        assert_eq!(timestamp(raw(1_500_000), 6), Duration::from_millis(1500));
        assert_eq!(timestamp(raw(7), 9), Duration::from_nanos(7));
        assert_eq!(timestamp(raw(3), 0), Duration::from_secs(3));
        // 2^-10 s units.
        assert_eq!(timestamp(raw(1024), 0x80 | 10), Duration::from_secs(1));
        // Finer than a nanosecond: truncated.
        assert_eq!(timestamp(raw(5_000), 12), Duration::from_nanos(5));
    }
}

#[cfg(test)]
mod finding_tests {
    use super::*;
    use leakguard_common::{NameKey, MAX_NAME_LEN};

    fn number(place: u8, name: &[u8]) -> Event {
        let mut e = Event::from_record(&[0; core::mem::size_of::<Event>()]).unwrap();
        e.rule_id = MSISDN_RULE_ID;
        e.action = action::REDACT;
        e.family = FAMILY_IPV4;
        e.place = place;
        e.name_len = name.len() as u32;
        e.name = NameKey {
            name: [0; MAX_NAME_LEN],
        };
        e.name.name[..name.len()].copy_from_slice(name);
        e
    }

    /// A number says where it was: the header it came under, the request target's part,
    /// or the cookie, and its form; the JSON carries the place and the form, for
    /// findings and the summary alike.
    #[test]
    fn numbers_name_their_place() {
        let names = HashMap::new();
        let header = finding(&number(place::HEADER, b"x-phone"), Duration::ZERO, &names);
        assert_eq!(
            (header.header.as_str(), header.place),
            ("x-phone (number)", Some("header"))
        );
        let query = finding(
            &number(place::TARGET, b"query:msisdn"),
            Duration::ZERO,
            &names,
        );
        assert_eq!(
            (query.header.as_str(), query.place),
            ("request target (query:msisdn) (number)", Some("target"))
        );
        let path = finding(&number(place::TARGET, b"path"), Duration::ZERO, &names);
        assert_eq!(path.header, "request target (path) (number)");
        let cookie = finding(
            &number(place::COOKIE, b"cookie:msisdn"),
            Duration::ZERO,
            &names,
        );
        assert_eq!(
            (cookie.header.as_str(), cookie.place),
            ("cookie:msisdn (number)", Some("cookie"))
        );
        let unnamed = finding(&number(place::COOKIE, b"cookie"), Duration::ZERO, &names);
        assert_eq!(unnamed.header, "cookie (number)");
        let digits = finding(&number(place::COOKIE, b"cookie:u1"), Duration::ZERO, &names);
        assert_eq!(digits.header, "cookie:u# (number)");
        // The same cookie in hex form: its own finding, place and form apart.
        let hex = finding(
            &number(place::with_form(place::COOKIE, form::HEX), b"cookie:msisdn"),
            Duration::ZERO,
            &names,
        );
        assert_eq!(
            (hex.header.as_str(), hex.place, hex.form),
            ("cookie:msisdn (number, hex)", Some("cookie"), Some("hex"))
        );
        // A query value in base64 form: its form says itself too.
        let b64 = finding(
            &number(place::with_form(place::TARGET, form::BASE64), b"query:uid"),
            Duration::ZERO,
            &names,
        );
        assert_eq!(
            (b64.header.as_str(), b64.place, b64.form),
            (
                "request target (query:uid) (number, base64)",
                Some("target"),
                Some("base64")
            )
        );
        let report = Report {
            findings: vec![header, query, path, cookie, unnamed, hex, b64],
            ..Report::default()
        };
        let mut out = Vec::new();
        write_json(&report, &mut out).unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(doc["findings"][1]["place"], "target", "{doc}");
        assert_eq!(doc["findings"][0]["place"], "header", "{doc}");
        assert_eq!(doc["findings"][3]["place"], "cookie", "{doc}");
        assert_eq!(doc["findings"][3]["form"], "decimal", "{doc}");
        assert_eq!(doc["findings"][5]["form"], "hex", "{doc}");
        assert_eq!(doc["findings"][5]["place"], "cookie", "{doc}");
        assert_eq!(doc["findings"][6]["form"], "base64", "{doc}");
        assert_eq!(doc["findings"][6]["place"], "target", "{doc}");
        let places: Vec<&str> = doc["summary"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["place"].as_str().unwrap())
            .collect();
        assert_eq!(
            places,
            ["cookie", "cookie", "cookie", "target", "target", "target", "header"],
            "{doc}"
        );
        let forms: Vec<&str> = doc["summary"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["form"].as_str().unwrap())
            .collect();
        assert_eq!(
            forms,
            ["decimal", "decimal", "hex", "decimal", "decimal", "base64", "decimal"],
            "{doc}"
        );
    }
}
