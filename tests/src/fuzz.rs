//! Packet fuzzing of the kernel programs against the reference model (`cargo xtask fuzz`,
//! and a CI-sized run in `tests/tests/fuzz.rs`): generated request heads, mutated byte by
//! byte, sent in one segment or cut into several, through the real programs
//! (`BPF_PROG_TEST_RUN`, XDP and TC egress) and through the model; verdicts, bytes,
//! checksums and every counter must agree ([`Differ`]). Frames whose Ethernet, IP or TCP
//! header was mutated are checked against what any packet must satisfy: one that is not a
//! TCP segment to an HTTP port passes untouched, and no mutant has a byte
//! outside its TCP payload and checksum changed.
//!
//! Seeded (printed; `LEAKGUARD_SEED=N` replays) and bounded by a packet count and a time.

use std::time::{Duration, Instant};

use etherparse::{LaxNetSlice, LaxSlicedPacket, TransportSlice};
use leakguard::policy::KernelPolicy;
use leakguard_common::model::{Kind, ModelFlow};

use crate::{
    corpus::{destination, model_policy, policy, request, requests, vary_cap, Rng, MSISDN_ACTIONS},
    diff::Differ,
    guard::{Hook, Verdict},
    packet::{subscriber_endpoint, Frame, SEQ, SERVER_V4},
};

/// What a run did.
#[derive(Debug, Default)]
pub struct Report {
    pub seed: u64,
    /// Packets run through a kernel program.
    pub packets: u64,
    /// Payload cases (each on both hooks): in one segment, and cut into segments.
    pub single: u64,
    pub segmented: u64,
    /// Of the payloads, how many were mutated after generation.
    pub mutated: u64,
    /// Header-mutated frames: not TCP to an HTTP port (passed untouched), and still so.
    pub frames_untouched: u64,
    pub frames_still_tcp: u64,
    pub elapsed: Duration,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} packets in {:.1} s ({:.0}/s), seed {}: {} payloads in one segment and {} cut \
             into segments ({} mutated), compared with the model on XDP and TC; {} \
             header-mutated frames passed untouched, {} still TCP to port 80 changed only in \
             payload and checksum",
            self.packets,
            self.elapsed.as_secs_f64(),
            self.packets as f64 / self.elapsed.as_secs_f64().max(1e-9),
            self.seed,
            self.single,
            self.segmented,
            self.mutated,
            self.frames_untouched,
            self.frames_still_tcp
        )
    }
}

/// Bytes a mutation likes to write: the ones the scanner's states turn on.
const INTERESTING: &[u8] = b"\r\n\t :_-+0123456789\0\x7f\xffXxMm";

/// One to four random edits of `p`: flips, interesting bytes, insertions, deletions,
/// duplications, truncation, a splice of another request.
fn mutate(rng: &mut Rng, p: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(4) {
        if p.is_empty() {
            p.push(*rng.pick(INTERESTING));
            continue;
        }
        let at = rng.below(p.len());
        match rng.below(8) {
            0 => p[at] ^= 1 << rng.below(8),
            1 => p[at] = *rng.pick(INTERESTING),
            2 => p.insert(at, *rng.pick(INTERESTING)),
            3 => {
                let end = (at + 1 + rng.below(16)).min(p.len());
                p.drain(at..end);
            }
            4 => {
                let end = (at + 1 + rng.below(32)).min(p.len());
                let piece = p[at..end].to_vec();
                p.splice(at..at, piece);
            }
            5 => p.truncate(at),
            6 => {
                let other = request(rng).into_bytes();
                let from = rng.below(other.len());
                p.splice(at..at, other[from..].iter().copied().take(40));
            }
            _ => p[at] = p[at].to_ascii_uppercase() ^ (rng.below(2) as u8 * 0x20),
        }
    }
}

/// A distinct flow for every payload case ([`subscriber_endpoint`]), so no case meets
/// another's per-flow state, however many run.
fn flow_frame(n: u64, dst: [u8; 4]) -> Frame {
    let (src, sport) = subscriber_endpoint(n);
    Frame::http_v4(b"").src_v4(src).sport(sport).dst_v4(dst)
}

/// Runs until `max_packets` packets or `max_time`, whichever comes first.
///
/// # Panics
/// On any difference between kernel and model (with the seed and the case).
#[must_use]
pub fn run(rng: &mut Rng, seed: u64, max_packets: u64, max_time: Duration) -> Report {
    let start = Instant::now();
    let mut r = Report {
        seed,
        ..Report::default()
    };
    let actions = MSISDN_ACTIONS;
    let mut policies: Vec<KernelPolicy> = actions.iter().map(|a| policy(*a)).collect();
    let mut differs: Vec<Differ> = policies.iter().map(Differ::new).collect();
    // Header-mutated frames get programs of their own: a mutated address or port may land
    // on another case's flow, and must not leave state there.
    let mut frames = Differ::new(&policies[0]);
    let mut case = 0u64;
    while r.packets < max_packets && start.elapsed() < max_time {
        case += 1;
        let k = (case % 4) as usize;
        if rng.below(100) < 8 {
            frame_case(rng, &mut frames, &mut r, case, seed);
            continue;
        }
        let (p, d) = (&mut policies[k], &mut differs[k]);
        let runs_before = d.runs;
        // Now and then a run of cases under a small scan limit, to exercise truncation
        // (a policy change waits out a grace period: not every case).
        if case % 512 < 4 {
            vary_cap(rng, p, &mut d.g, 20, 300);
        }
        let mut payload = requests(rng).into_bytes();
        if rng.chance(70) {
            mutate(rng, &mut payload);
            r.mutated += 1;
        }
        if payload.is_empty() {
            continue;
        }
        let dst = destination(rng, 10);
        let pol = model_policy(p, dst.into());
        let flow = flow_frame(case, dst);
        let ctx = format!(
            "case {case}, policy {:?}, seed {seed}: {:?}",
            actions[k],
            String::from_utf8_lossy(&payload)
        );
        // TC test runs take at most ~3.7 KB of packet: longer payloads go by XDP only.
        let hooks: &[Hook] = if payload.len() > 3_000 {
            &[Hook::Xdp]
        } else {
            &[Hook::Xdp, Hook::TcEgress]
        };
        if rng.chance(75) {
            for &hook in hooks {
                let mut f = flow.clone().seq(SEQ);
                f.payload.clone_from(&payload);
                d.single(hook, &f.build(), &payload, &pol, &ctx);
            }
            r.single += 1;
        } else {
            let mut cuts: Vec<usize> = (0..1 + rng.below(3))
                .map(|_| 1 + rng.below(payload.len()))
                .collect();
            cuts.push(payload.len());
            cuts.sort_unstable();
            cuts.dedup();
            // Sequence numbers near the wrap now and then.
            let seq0 = if rng.chance(10) {
                u32::MAX - rng.below(2_000) as u32
            } else {
                SEQ
            };
            for &hook in hooks {
                let mut model: Option<ModelFlow> = None;
                let mut a = 0;
                for &b in &cuts {
                    let seq = seq0.wrapping_add(a as u32);
                    let mut f = flow.clone().seq(seq);
                    f.payload = payload[a..b].to_vec();
                    let c = format!("{ctx}, bytes {a}..{b} of cuts {cuts:?}");
                    let out =
                        d.segment(hook, &f.build(), seq, &payload[a..b], &mut model, &pol, &c);
                    // A dropped segment ends the flow, as the client would see it.
                    if out.drop && out.kind != Kind::Unordered {
                        break;
                    }
                    a = b;
                }
            }
            r.segmented += 1;
        }
        r.packets += d.runs - runs_before;
        // Events are the match log; drain them so the ring never fills.
        let _ = d.g.events();
    }
    r.elapsed = start.elapsed();
    r
}

/// A request frame with one to three bytes of its Ethernet, IP or TCP header changed
/// (always IPv4: the frame is built so).
fn frame_case(rng: &mut Rng, d: &mut Differ, r: &mut Report, case: u64, seed: u64) {
    let payload = b"GET / HTTP/1.1\r\nHost: a\r\nX-MSISDN: 447700900123\r\n\r\n";
    let mut f = flow_frame(case, SERVER_V4);
    f.payload = payload.to_vec();
    let mut bytes = f.build();
    // Every byte before the payload: Ethernet, IPv4 and TCP headers.
    let header_len = bytes.len() - payload.len();
    for _ in 0..1 + rng.below(3) {
        let at = rng.below(header_len);
        bytes[at] = if rng.chance(50) {
            bytes[at] ^ (1 << rng.below(8))
        } else {
            rng.next_u64() as u8
        };
    }
    let hook = if rng.chance(50) {
        Hook::Xdp
    } else {
        Hook::TcEgress
    };
    let ctx = format!("frame case {case}, seed {seed}, {hook:?}: {bytes:02x?}");
    let out = d.g.run(hook, &bytes).unwrap();
    r.packets += 1;
    if let Some((tcp_at, payload_at)) = well_formed_http(&bytes) {
        // Only the payload and the TCP checksum may change (or the packet is dropped).
        if out.verdict == Verdict::Pass {
            assert_eq!(out.out.len(), bytes.len(), "length changed, {ctx}");
            for (i, (a, b)) in bytes.iter().zip(&out.out).enumerate() {
                let checksum = (tcp_at + 16..tcp_at + 18).contains(&i);
                assert!(
                    a == b || i >= payload_at || checksum,
                    "header byte {i} changed, {ctx}"
                );
            }
        }
        r.frames_still_tcp += 1;
    } else {
        assert_eq!(
            out.verdict,
            Verdict::Pass,
            "a non-HTTP frame dropped, {ctx}"
        );
        assert_eq!(out.out, bytes, "a non-HTTP frame changed, {ctx}");
        r.frames_untouched += 1;
    }
}

/// For an unfragmented IPv4 or IPv6 TCP segment to port 80 with a payload, as etherparse
/// reads it (VLAN tags included) when lax about an IP length that disagrees with the
/// frame (the guard then scans what is there: a receiver would drop such a packet, so
/// redacting it costs nothing): the offsets of its TCP header and payload.
///
/// A first fragment (offset 0, more to come) counts: it carries the TCP header and the
/// start of the head, and the guard scans it.
fn well_formed_http(frame: &[u8]) -> Option<(usize, usize)> {
    let mut copy = frame.to_vec();
    if copy.len() > 21 && copy[12..14] == [0x08, 0x00] && copy[14] >> 4 == 4 {
        // IPv4 straight after Ethernet: read a first fragment as the whole datagram.
        let offset = u16::from_be_bytes([copy[20], copy[21]]) & 0x1fff;
        if offset == 0 {
            copy[20] &= !0x20;
        }
    }
    let frame = &copy[..];
    let p = LaxSlicedPacket::from_ethernet(frame).ok()?;
    let unfragmented = match &p.net {
        Some(LaxNetSlice::Ipv4(v4)) => !v4.is_payload_fragmented(),
        Some(LaxNetSlice::Ipv6(v6)) => !v6.is_payload_fragmented(),
        _ => false,
    };
    match &p.transport {
        Some(TransportSlice::Tcp(t))
            if unfragmented && t.destination_port() == 80 && !t.payload().is_empty() =>
        {
            let at = t.slice().as_ptr() as usize - frame.as_ptr() as usize;
            Some((at, at + t.header_len()))
        }
        _ => None,
    }
}
