//! Part `audit`: `leakguard audit` on a generated capture.

use std::{path::Path, time::Duration};

use anyhow::Result;
use leakguard::policy::Action;
use leakguard_tests::{
    cases::{policy, with_msisdn},
    http::browser_get,
    kernel::rule,
    packet::Frame,
};
use serde_json::{json, Value};

use crate::Cfg;

/// `leakguard audit` on a capture of `cfg.audit_packets` packets: a third requests (some
/// with identity headers, some heads split in two segments), the rest ACKs and body
/// segments, many flows.
pub fn audit(cfg: &Cfg) -> Result<Value> {
    use pcap_file::pcap::{PcapPacket, PcapWriter};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("audit.pcap");
    let req = with_msisdn(&browser_get(400));
    let clean = browser_get(420);
    let cut = req.len() / 2;
    let body = vec![0x1f; 1200];
    {
        let mut w = PcapWriter::new(std::io::BufWriter::new(std::fs::File::create(&path)?))?;
        let mut t = Duration::from_secs(1_764_000_000);
        let mut i = 0usize;
        while i < cfg.audit_packets {
            // Ports come round again after 60,000 flows: sequence numbers keep growing, as
            // a reused port's next connection's would (no false retransmissions).
            let g = (i / 6) as u32;
            let sport = 1024 + (g % 60_000) as u16;
            let base = 100u32.wrapping_add(g.wrapping_mul(20_000));
            let flow = Frame::http_v4(b"")
                .sport(sport)
                .dst_v4([203, 0, 113, (g % 200) as u8]);
            let mut frames = Vec::new();
            let mut f = flow.clone().seq(base);
            match g % 3 {
                0 => f.payload = clean.clone(),
                1 => f.payload = req.clone(),
                _ => {
                    f.payload = req[..cut].to_vec();
                    let mut second = flow.clone().seq(base + cut as u32);
                    second.payload = req[cut..].to_vec();
                    frames.push(f.build());
                    f = second;
                }
            }
            frames.push(f.build());
            let mut ack = flow.clone().seq(base + 5_000);
            ack.payload = Vec::new();
            let mut seg = flow.clone().seq(base + 6_000);
            seg.payload = body.clone();
            while frames.len() < 6 {
                frames.push(if frames.len() % 2 == 0 {
                    ack.build()
                } else {
                    seg.build()
                });
            }
            for fr in frames {
                t += Duration::from_micros(10);
                w.write_packet(&PcapPacket::new(t, fr.len() as u32, &fr))?;
                i += 1;
            }
        }
    }
    let policy = policy(vec![rule("X-MSISDN", Action::Redact, &[])]);
    let report = leakguard::audit::replay(&policy, &path)?;
    let pps = report.packets as f64 / report.seconds;
    println!(
        "\n## leakguard audit\n\n{} packets ({} MB capture) in {:.1} s: {:.0} packets/s, {} findings, {} continuations",
        report.packets,
        std::fs::metadata(&path)?.len() / 1_000_000,
        report.seconds,
        pps,
        report.findings.len(),
        report.continuations
    );
    let _ = std::fs::remove_file(&path);
    Ok(
        json!({"packets": report.packets, "seconds": report.seconds, "packets_per_second": pps,
        "findings": report.findings.len()}),
    )
}
