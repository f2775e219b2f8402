//! `leakguard audit`: a capture written here (pcap and pcapng) replayed through the real
//! program by the real binary; the findings are what the policy says, a head split across
//! segments is followed, no value is ever printed, and without privileges it says so.

use std::{borrow::Cow, path::Path, process::Command, time::Duration};

use base64::{engine::general_purpose::STANDARD, Engine as _};
use leakguard_tests::{
    corpus::hex_of,
    daemon::leakguard_bin,
    http::{MSISDN, UIDH, VALUES},
    packet::{arp, Frame, TRUSTED_V4},
};
use pcap_file::{
    pcap::{PcapPacket, PcapWriter},
    pcapng::{
        blocks::interface_description::InterfaceDescriptionOption,
        blocks::{
            enhanced_packet::EnhancedPacketBlock, interface_description::InterfaceDescriptionBlock,
        },
        PcapNgWriter,
    },
    DataLink,
};

/// A policy for an audit: rules, no `[[attach]]` (an audit attaches nothing).
const POLICY: &str = r#"[scan]
builtin_catalog = "off"

[[rule]]
header = "X-MSISDN"
action = "redact"
allow = ["198.51.100.0/24"]

[[rule]]
header = "X-UIDH"
action = "drop"

[msisdn]
action = "redact"
prefixes = ["44"]
"#;

/// What the audit must report for a frame: header, action.
type Expect = Option<(&'static str, &'static str)>;

/// The capture: each frame and what the audit must report for it.
fn capture() -> Vec<(Vec<u8>, Expect)> {
    let split = Frame::http_v4(b"");
    let head = format!("GET /b HTTP/1.1\r\nHost: h\r\nCookie: c=1\r\nX-UIDH: {UIDH}\r\n\r\n");
    let cut = head.find("X-UI").unwrap() + 4;
    let mut a = split.clone().seq(5_000);
    a.payload = head.as_bytes()[..cut].to_vec();
    let mut b = split.seq(5_000 + cut as u32);
    b.payload = head.as_bytes()[cut..].to_vec();
    vec![
        (
            Frame::http_v4(
                format!("GET /a HTTP/1.1\r\nHost: h\r\nX-MSISDN: {MSISDN}\r\n\r\n").as_bytes(),
            )
            .build(),
            Some(("X-MSISDN", "redact")),
        ),
        (arp(), None),
        (Frame::http_v4(&[7; 40]).udp().build(), None),
        (a.build(), None),
        (b.build(), Some(("X-UIDH", "drop"))),
        (
            Frame::http_v4(
                format!("GET /n HTTP/1.1\r\nHost: h\r\nX-Phone: +{MSISDN}\r\n\r\n").as_bytes(),
            )
            .build(),
            Some(("x-phone (number)", "redact")),
        ),
        (
            Frame::http_v4(format!("GET /t HTTP/1.1\r\nX-MSISDN: {MSISDN}\r\n\r\n").as_bytes())
                .dst_v4(TRUSTED_V4)
                .build(),
            Some(("X-MSISDN", "allow")),
        ),
        (
            Frame::http_v4(format!("GET /q?uid={} HTTP/1.1\r\n\r\n", hex_of(MSISDN)).as_bytes())
                .build(),
            Some(("request target (query:uid) (number, hex)", "redact")),
        ),
        (
            Frame::http_v4(
                format!("GET /q?uid={} HTTP/1.1\r\n\r\n", STANDARD.encode(MSISDN)).as_bytes(),
            )
            .build(),
            Some(("request target (query:uid) (number, base64)", "redact")),
        ),
    ]
}

/// Identity values the audit must never print: the test's, the hex number's first nine
/// digits' worth, and the base64 number's first nine digits' worth (twelve characters).
fn never_printed() -> Vec<String> {
    let hex = hex_of(MSISDN);
    let b64 = STANDARD.encode(MSISDN);
    VALUES
        .iter()
        .map(|&v| v.to_owned())
        .chain([hex[..18].to_owned(), b64[..12].to_owned()])
        .collect()
}

fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let mut w = PcapWriter::new(std::fs::File::create(path).unwrap()).unwrap();
    for (i, f) in frames.iter().enumerate() {
        let t = Duration::from_secs(1_764_000_000) + Duration::from_millis(i as u64);
        w.write_packet(&PcapPacket::new(t, f.len() as u32, f))
            .unwrap();
    }
}

/// A pcapng capture whose interface has timestamps in units of 10^-`tsresol` s, stated
/// in an `if_tsresol` option, or (None) in the format's default, microseconds.
fn write_pcapng(path: &Path, frames: &[Vec<u8>], tsresol: Option<u8>) {
    let mut w = PcapNgWriter::new(std::fs::File::create(path).unwrap()).unwrap();
    w.write_pcapng_block(InterfaceDescriptionBlock {
        linktype: DataLink::ETHERNET,
        snaplen: 0,
        options: tsresol
            .map(InterfaceDescriptionOption::IfTsResol)
            .into_iter()
            .collect(),
    })
    .unwrap();
    let per_second = 10u128.pow(u32::from(tsresol.unwrap_or(6)));
    for (i, f) in frames.iter().enumerate() {
        let t = Duration::from_secs(1_764_000_000) + Duration::from_millis(i as u64);
        // pcap-file writes the duration's nanoseconds as the raw count: give it the count
        // in the interface's units.
        let raw = t.as_nanos() * per_second / 1_000_000_000;
        w.write_pcapng_block(EnhancedPacketBlock {
            interface_id: 0,
            timestamp: Duration::from_nanos(raw as u64),
            original_len: f.len() as u32,
            data: Cow::Borrowed(f),
            options: vec![],
        })
        .unwrap();
    }
}

fn audit(args: &[&str], policy: &Path, capture: &Path) -> std::process::Output {
    Command::new(leakguard_bin().unwrap())
        .arg("audit")
        .args(args)
        .arg("--config")
        .arg(policy)
        .arg(capture)
        .output()
        .unwrap()
}

#[test]
fn audit_reports_what_the_policy_does_and_never_a_value() {
    let dir = std::env::temp_dir().join(format!("leakguard-audit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let cap = capture();
    let frames: Vec<Vec<u8>> = cap.iter().map(|(f, _)| f.clone()).collect();
    let want: Vec<(&str, &str)> = cap.iter().filter_map(|(_, w)| *w).collect();
    let pcap = dir.join("c.pcap");
    let pcapng = dir.join("c.pcapng");
    let pcapng_us = dir.join("c-default-resolution.pcapng");
    write_pcap(&pcap, &frames);
    write_pcapng(&pcapng, &frames, Some(9));
    // No if_tsresol: microseconds, as tcpdump and tshark write and read it.
    write_pcapng(&pcapng_us, &frames, None);
    for file in [&pcap, &pcapng, &pcapng_us] {
        let out = audit(&["--format", "json"], &policy, file);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        let got: Vec<(String, String)> = doc["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["header"].as_str().unwrap().to_owned(),
                    f["action"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(h, a)| ((*h).to_owned(), (*a).to_owned()))
            .collect();
        assert_eq!(got, want, "{}", file.display());
        assert_eq!(doc["packets"], frames.len());
        assert_eq!(doc["skipped"], 0);
        assert_eq!(doc["continuations"], 1, "the split head was followed");
        let first = &doc["findings"][0];
        assert!(
            first["source"].as_str().unwrap().starts_with("192.0.2.10:"),
            "{first}"
        );
        assert_eq!(first["destination"], "203.0.113.80:80");
        let time = doc["findings"][0]["time"].as_str().unwrap();
        assert!(
            time.starts_with("2025-11-24T"),
            "{}: {time}",
            file.display()
        );
        // The form: a number's, not a rule's.
        let forms: Vec<&serde_json::Value> = doc["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| &f["form"])
            .collect();
        assert_eq!(
            forms,
            [
                &serde_json::Value::Null,
                &serde_json::Value::Null,
                &serde_json::json!("decimal"),
                &serde_json::Value::Null,
                &serde_json::json!("hex"),
                &serde_json::json!("base64"),
            ],
            "{text}"
        );
        for v in never_printed() {
            assert!(!text.contains(&v), "the audit printed an identity value");
        }
        let table = audit(&[], &policy, file);
        let t = String::from_utf8_lossy(&table.stdout);
        assert!(table.status.success());
        assert!(
            t.contains("X-UIDH") && t.contains("x-phone (number)") && t.contains("9 packets"),
            "{t}"
        );
        for v in never_printed() {
            assert!(!t.contains(&v), "the audit table printed an identity value");
        }
    }
    // Without privileges: a clear message, exit 1.
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    for f in [&policy, &pcap] {
        std::fs::set_permissions(f, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    }
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ])
        .arg(leakguard_bin().unwrap())
        .args(["audit", "--config"])
        .arg(&policy)
        .arg(&pcap)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("run it as root"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
