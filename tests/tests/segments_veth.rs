//! Requests cut into real TCP segments on a veth path: a client in its own namespace
//! writes a request in pieces (TCP_NODELAY, autocorking off, each piece acknowledged
//! before the next is written, so each is one segment), through the guard on the
//! client's TCX egress or on the server's XDP, to a recording server. What the server
//! receives must equal the reference model's output for the same segments; with
//! segments lost after the guard (nftables), the kernel's own retransmissions must come
//! through redacted again.

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    os::fd::AsRawFd as _,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};
use leakguard::policy::Action;
use leakguard_common::model::{self, ModelFlow};
use leakguard_tests::{
    cmd::checked,
    corpus::{model_policy, policy},
    guard::Guard,
    http::MSISDN,
    netns::Netns,
    server::HttpServer,
    topo::{attach_tc_egress, attach_xdp, topo, CLI_IF, SRV_IF, SRV_V4},
};

/// Bytes the socket sent that the peer has not acknowledged (TCP_INFO).
fn unacked(s: &TcpStream) -> Result<u32> {
    // SAFETY: tcp_info is plain data; getsockopt fills at most `len` bytes of it.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: valid fd, pointer and length.
    let rc = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&raw mut info).cast(),
            &raw mut len,
        )
    };
    if rc != 0 {
        bail!("TCP_INFO: {}", std::io::Error::last_os_error());
    }
    Ok(info.tcpi_unacked)
}

/// Connects from `ns`, writes `payload` cut at `cuts` (each piece acknowledged before the
/// next), and reads the response to its end. Bounded by `timeout`.
fn send_in_segments(
    ns: &Netns,
    to: SocketAddr,
    payload: &[u8],
    cuts: &[usize],
    timeout: Duration,
) -> Result<()> {
    let payload = payload.to_vec();
    let cuts = cuts.to_vec();
    ns.enter(move || -> Result<()> {
        let end = Instant::now() + timeout;
        let mut s = TcpStream::connect_timeout(&to, timeout).context("connect")?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(timeout))?;
        let mut bounds = vec![0];
        bounds.extend(cuts.iter().copied().filter(|&c| c > 0 && c < payload.len()));
        bounds.push(payload.len());
        for w in bounds.windows(2) {
            s.write_all(&payload[w[0]..w[1]])?;
            // Polled, bounded: the piece is one segment once it is acknowledged alone.
            while unacked(&s)? != 0 {
                if Instant::now() > end {
                    bail!("a segment was not acknowledged in {timeout:?}");
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).context("reading the response")?;
        if !resp.starts_with(b"HTTP/1.1 200") {
            bail!("no response: {:?}", String::from_utf8_lossy(&resp));
        }
        Ok(())
    })?
}

/// The model's output for `payload` in the segments between `cuts`, concatenated, and
/// how many segments it counts as continuations.
fn model_bytes(payload: &[u8], cuts: &[usize], pol: &model::ModelPolicy) -> (Vec<u8>, u64) {
    let mut bounds = vec![0];
    bounds.extend(cuts.iter().copied().filter(|&c| c > 0 && c < payload.len()));
    bounds.push(payload.len());
    let mut flow: Option<ModelFlow> = None;
    let mut out = Vec::new();
    let mut continuations = 0;
    for w in bounds.windows(2) {
        let o = model::segment(&mut flow, 50_000 + w[0] as u32, &payload[w[0]..w[1]], pol);
        assert!(!o.drop, "these requests are never dropped");
        continuations += u64::from(o.continuation);
        out.extend_from_slice(&o.payload);
    }
    (out, continuations)
}

const REQUESTS: &[&str] = &[
    "GET /a HTTP/1.1\r\nHost: 192.0.2.2\r\nCookie: c=aaaaaaaaaaaaaaaaaaaaaaaa\r\nX-MSISDN: 447700900123\r\n\
     X-Phone: +447700900123\r\nX-ACR: acr-1\r\nAccept: */*\r\n\r\n",
    "POST /b HTTP/1.1\r\nHost: 192.0.2.2\r\nX_Up_Calling_Line_ID:  447700900123  \r\nContent-Length: 0\r\n\
     X-Sub: 4412345678901234\r\nX-Tel: 447700900123 \r\n\r\n",
];

/// Cut sets for a request: one cut at each line start, in each name and in each value,
/// and one request cut everywhere at once.
fn cut_sets(req: &str) -> Vec<Vec<usize>> {
    let mut sets = Vec::new();
    let mut all = Vec::new();
    let mut at = 0;
    for line in req.split_inclusive('\n') {
        let colon = line.find(':').unwrap_or(line.len() / 2);
        for c in [at, at + colon / 2, at + colon + 3, at + line.len() - 3] {
            if c > 0 && c < req.len() {
                sets.push(vec![c]);
                all.push(c);
            }
        }
        at += line.len();
    }
    all.sort_unstable();
    all.dedup();
    sets.push(all);
    sets
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Where {
    ClientTcEgress,
    ServerXdp,
}

#[test]
fn real_segments_through_tc_egress_and_xdp_match_the_model() {
    for place in [Where::ClientTcEgress, Where::ServerXdp] {
        let t = topo();
        // Each write goes out at once, alone.
        t.cli.sysctl("net.ipv4.tcp_autocorking=0").unwrap();
        let server =
            HttpServer::start(&t.srv, SocketAddr::new(SRV_V4.parse().unwrap(), 80)).unwrap();
        let p = policy(Some(Action::Redact));
        let mut g = Guard::load(&p).unwrap();
        match place {
            Where::ClientTcEgress => attach_tc_egress(&mut g, &t.cli, CLI_IF),
            Where::ServerXdp => {
                // Full checksums on the wire for XDP's incremental update (see e2e.rs).
                t.cli.ethtool(CLI_IF, &["tx", "off"]).unwrap();
                t.srv.ethtool(SRV_IF, &["rx", "off"]).unwrap();
                attach_xdp(&mut g, &t.srv, SRV_IF);
            }
        }
        let pol = model_policy(&p, SRV_V4.parse().unwrap());
        let to = SocketAddr::new(SRV_V4.parse().unwrap(), 80);
        let mut want_continuations = 0;
        let mut sent = 0;
        for req in REQUESTS {
            for cuts in cut_sets(req) {
                send_in_segments(&t.cli, to, req.as_bytes(), &cuts, Duration::from_secs(10))
                    .unwrap_or_else(|e| panic!("{place:?}, cuts {cuts:?}: {e:#}"));
                sent += 1;
                let heads = server.heads();
                assert_eq!(heads.len(), sent, "{place:?}: one head per request");
                let (want, conts) = model_bytes(req.as_bytes(), &cuts, &pol);
                want_continuations += conts;
                assert_eq!(
                    String::from_utf8_lossy(heads.last().unwrap()),
                    String::from_utf8_lossy(&want),
                    "{place:?}, cuts {cuts:?}: the server got other bytes than the model's"
                );
            }
        }
        let s = g.stats().unwrap();
        // Every continuation the model saw was one here too (a probe retransmission may
        // add one: that is also a continuation).
        assert!(
            s.continuations >= want_continuations && want_continuations > 0,
            "{place:?}: {} continuations, the model {want_continuations}",
            s.continuations
        );
        println!(
            "{place:?}: {sent} requests, {} segments continued a head (model: {want_continuations})",
            s.continuations
        );
    }
}

/// nftables in the server's namespace loses every fourth data segment of the client (IP
/// length over 56: more than a bare ACK) after the guard: the client's kernel resends it,
/// from its own unredacted buffer, through the guard again. None may reach the server
/// unredacted. (Every fourth, not a random 25%: a segment is then lost at most once, so
/// the test never waits out a chain of backed-off timeouts.)
#[test]
fn retransmissions_are_redacted_again() {
    let t = topo();
    t.cli.sysctl("net.ipv4.tcp_autocorking=0").unwrap();
    let nft = |args: &str| {
        checked(t.srv.command("sh").args(["-c", &format!("nft {args}")]))
            .expect("nft (Debian's nftables, installed by `cargo xtask setup`)")
    };
    nft("add table inet lg");
    nft("'add chain inet lg pre { type filter hook prerouting priority -300; }'");
    nft("add rule inet lg pre tcp dport 80 meta length gt 56 numgen inc mod 4 eq 0 counter drop");
    let server = HttpServer::start(&t.srv, SocketAddr::new(SRV_V4.parse().unwrap(), 80)).unwrap();
    let p = policy(Some(Action::Redact));
    let mut g = Guard::load(&p).unwrap();
    attach_tc_egress(&mut g, &t.cli, CLI_IF);
    let to = SocketAddr::new(SRV_V4.parse().unwrap(), 80);
    let mut sent = 0;
    for _round in 0..4 {
        for req in REQUESTS {
            let len = req.len();
            let cuts = [len / 4, len / 2, 3 * len / 4];
            send_in_segments(&t.cli, to, req.as_bytes(), &cuts, Duration::from_secs(20))
                .unwrap_or_else(|e| panic!("cuts {cuts:?}: {e:#}"));
            sent += 1;
        }
    }
    let heads = server.heads();
    assert_eq!(heads.len(), sent);
    for h in &heads {
        let text = String::from_utf8_lossy(h);
        assert!(
            !text.contains(&MSISDN[2..]),
            "an identity number reached the server: {text:?}"
        );
    }
    let s = g.stats().unwrap();
    assert!(
        s.retransmissions > 0,
        "no segment was resent (nothing tested)"
    );
    println!(
        "{sent} requests; {} retransmissions through the guard, {} continuations, {} dropped for a gap",
        s.retransmissions, s.continuations, s.unordered_drops
    );
}

/// A head redacted whole in one GSO packet on TC egress, then its last wire segment lost
/// after the guard (nftables drops it once): the client's kernel resends that segment
/// alone, from its own unredacted buffer, starting inside the head. It must reach the
/// server redacted. (The device's segmentation offloads are off, so the stack cuts the
/// packet after the hook, as a NIC with TSO does.)
#[test]
fn a_lost_wire_segment_of_a_gso_packet_is_redacted_again() {
    let t = topo();
    t.cli
        .ethtool(CLI_IF, &["tso", "off", "gso", "off"])
        .unwrap();
    let head = format!(
        "GET /gso HTTP/1.1\r\nHost: www.example.com\r\nCookie: c={}\r\nX-MSISDN: {MSISDN}\r\nAccept: */*\r\n\r\n",
        "a".repeat(2_600)
    );
    // The last wire segment: what follows the first 1,448 bytes (the MSS at MTU 1500 with
    // timestamps), behind 20 bytes of IP and 32 of TCP header.
    let tail_ip_len = head.len() - 1_448 + 52;
    let nft = |args: &str| {
        checked(t.srv.command("sh").args(["-c", &format!("nft {args}")]))
            .expect("nft (Debian's nftables, installed by `cargo xtask setup`)")
    };
    nft("add table inet lg");
    nft("'add chain inet lg pre { type filter hook prerouting priority -300; }'");
    nft(&format!(
        "add rule inet lg pre tcp dport 80 ip length {tail_ip_len} quota until {tail_ip_len} bytes counter drop"
    ));
    let server = HttpServer::start(&t.srv, SocketAddr::new(SRV_V4.parse().unwrap(), 80)).unwrap();
    let mut g = Guard::load(&policy(None)).unwrap();
    attach_tc_egress(&mut g, &t.cli, CLI_IF);
    let to = SocketAddr::new(SRV_V4.parse().unwrap(), 80);
    send_in_segments(&t.cli, to, head.as_bytes(), &[], Duration::from_secs(20)).unwrap();
    let listing = nft("list table inet lg");
    assert!(
        String::from_utf8_lossy(&listing.stdout).contains("counter packets 1 "),
        "the tail segment was not lost once (nothing tested): {}",
        String::from_utf8_lossy(&listing.stdout)
    );
    let heads = server.heads();
    assert_eq!(heads.len(), 1);
    assert!(
        free_of_the_number(&heads[0]),
        "the identity number reached the server"
    );
    let s = g.stats().unwrap();
    assert!(
        s.retransmissions >= 1,
        "the resend did not meet the flow's state"
    );
}

/// True when `head` holds no run of the test number's digits.
fn free_of_the_number(head: &[u8]) -> bool {
    !String::from_utf8_lossy(head).contains(&MSISDN[2..])
}
