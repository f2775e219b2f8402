//! The kernel programs under `BPF_PROG_TEST_RUN` (see `leakguard_tests::kernel`): what
//! they parse. Every layer's variants reach the header (VLAN tags, IPv4 options, IPv6
//! extension chains, TCP options, first fragments); later fragments, other ports and
//! protocols, bodies and responses pass untouched; bytes past the IP datagram are never
//! scanned; the HTTP ports are the policy's.

use leakguard::policy::KernelPolicy;
use leakguard_common::action;
use leakguard_tests::{
    guard::{Guard, Hook, Verdict},
    http::{find, get, MSISDN, UIDH},
    kernel::{assert_passes_redacted, assert_redacted, counters_total, load, policy, R_MSISDN},
    packet::{arp, tcp_checksum_ok, Ext, Frame, TPID_8021AD, TPID_8021Q},
};

/// Every parser path: VLAN tags, IPv4 options, IPv6 extension chains, TCP options.
#[test]
fn parser_paths_reach_the_header_on_every_hook() {
    let req = get(&[&format!("X-MSISDN: {MSISDN}")]);
    // MSS, SACK permitted, timestamps, two NOPs: 20 bytes.
    let tcp_opts = [
        2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 1, 1,
    ];
    let cases: Vec<(&str, Frame)> = vec![
        ("ipv4", Frame::http_v4(&req)),
        (
            "ipv4, 802.1Q tag",
            Frame::http_v4(&req).vlan(TPID_8021Q, 10),
        ),
        (
            "ipv4, 802.1ad + 802.1Q tags",
            Frame::http_v4(&req)
                .vlan(TPID_8021AD, 100)
                .vlan(TPID_8021Q, 10),
        ),
        (
            "ipv4, 4 bytes of options",
            Frame::http_v4(&req).ipv4_options(&[1, 1, 1, 0]),
        ),
        (
            "ipv4, 40 bytes of options",
            Frame::http_v4(&req).ipv4_options(&[1; 40]),
        ),
        (
            "ipv4, first fragment",
            Frame::http_v4(&req).ipv4_fragment(0, true),
        ),
        ("ipv6", Frame::http_v6(&req)),
        (
            "ipv6, 802.1ad + 802.1Q tags",
            Frame::http_v6(&req)
                .vlan(TPID_8021AD, 100)
                .vlan(TPID_8021Q, 10),
        ),
        (
            "ipv6, hop-by-hop",
            Frame::http_v6(&req).ipv6_ext(&[Ext::HopByHop]),
        ),
        (
            "ipv6, routing",
            Frame::http_v6(&req).ipv6_ext(&[Ext::Routing]),
        ),
        (
            "ipv6, destination options",
            Frame::http_v6(&req).ipv6_ext(&[Ext::DestOpts]),
        ),
        (
            "ipv6, hop-by-hop + dest-opts + routing + first fragment",
            Frame::http_v6(&req).ipv6_ext(&[
                Ext::HopByHop,
                Ext::DestOpts,
                Ext::Routing,
                Ext::Fragment {
                    offset: 0,
                    more: true,
                },
            ]),
        ),
        (
            "tcp, 20 bytes of options",
            Frame::http_v4(&req).tcp_options(&tcp_opts),
        ),
        (
            "tcp, 40 bytes of options",
            Frame::http_v6(&req).tcp_options(&[1; 40]),
        ),
    ];
    let mut g = load();
    let mut expected = 0;
    for (case, frame) in &cases {
        let input = frame.build();
        assert!(tcp_checksum_ok(&input), "{case}: test frame is wrong");
        for hook in Hook::ALL {
            let r = g.run(hook, &input).unwrap();
            assert_eq!(r.verdict, Verdict::Pass, "{case} on {hook:?}");
            assert_redacted(case, hook, &input, &r.out, &[MSISDN]);
            expected += 1;
        }
    }
    assert_eq!(g.count(R_MSISDN, action::REDACT).unwrap(), expected);
    assert_eq!(g.stats().unwrap().redacted_packets, expected);
}

/// Request lines that servers read past (nginx 1.22 or Node 20 take each, and hand the
/// header on) are scanned: empty lines before the request line (RFC 9112 §2.2; old
/// clients sent one after a POST body, so the next request's segment starts with it),
/// more than one SP between its parts, another major version, bytes after the version.
#[test]
fn request_lines_servers_read_past_are_scanned() {
    let id = format!("X-MSISDN: {MSISDN}");
    let head = |line: &str| format!("{line}\r\nHost: a\r\n{id}\r\n\r\n");
    let cases = [
        ("CR LF first", format!("\r\n{}", head("GET / HTTP/1.1"))),
        ("LF LF first", format!("\n\n{}", head("GET / HTTP/1.1"))),
        (
            "an empty line between pipelined requests",
            format!(
                "GET /a HTTP/1.1\r\nHost: a\r\n\r\n\r\n{}",
                head("GET /b HTTP/1.1")
            ),
        ),
        ("two SPs before the target", head("GET  / HTTP/1.1")),
        ("two SPs before the version", head("GET /  HTTP/1.1")),
        ("SP after the version", head("GET / HTTP/1.1 ")),
        ("HTTP/1.10", head("GET / HTTP/1.10")),
        ("HTTP/2.0 in HTTP/1 syntax", head("GET / HTTP/2.0")),
    ];
    let mut g = load();
    for (case, req) in &cases {
        assert_passes_redacted(&mut g, case, req, &[MSISDN]);
    }
    assert_eq!(
        g.count(R_MSISDN, action::REDACT).unwrap(),
        (cases.len() * Hook::ALL.len()) as u64
    );
}

/// Non-first fragments carry no TCP header: they pass untouched and are counted.
#[test]
fn non_first_fragments_pass_untouched_and_are_counted() {
    let req = get(&[&format!("X-UIDH: {UIDH}")]);
    let cases = [
        (
            "ipv4, offset 185",
            Frame::http_v4(&req).ipv4_fragment(185, false),
        ),
        (
            "ipv4, offset 1, more",
            Frame::http_v4(&req).ipv4_fragment(1, true),
        ),
        (
            "ipv6, offset 100",
            Frame::http_v6(&req).ipv6_ext(&[Ext::Fragment {
                offset: 100,
                more: false,
            }]),
        ),
        (
            "ipv6, hop-by-hop then offset 7",
            Frame::http_v6(&req).ipv6_ext(&[
                Ext::HopByHop,
                Ext::Fragment {
                    offset: 7,
                    more: true,
                },
            ]),
        ),
    ];
    let mut g = load();
    for (case, frame) in &cases {
        let input = frame.build();
        for hook in Hook::ALL {
            let r = g.run(hook, &input).unwrap();
            assert_eq!(r.verdict, Verdict::Pass, "{case} on {hook:?}");
            assert_eq!(r.out, input, "{case} on {hook:?}: fragment modified");
        }
    }
    let s = g.stats().unwrap();
    assert_eq!(s.fragments, (cases.len() * Hook::ALL.len()) as u64);
    assert_eq!(s.tcp_http, 0);
    assert_eq!(counters_total(&g), 0);
}

/// What must pass untouched and uncounted.
#[test]
fn packets_that_must_pass_untouched() {
    let id = format!("X-MSISDN: {MSISDN}");
    let req = get(&[&id]);
    let body = format!("POST /form HTTP/1.1\r\nHost: a\r\nContent-Length: 26\r\n\r\n{id}\r\n");
    let response = format!("HTTP/1.1 200 OK\r\n{id}\r\n\r\n");
    let no_version = format!("GET /\r\n{id}\r\n\r\n");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("tcp to 443", Frame::http_v4(&req).dport(443).build()),
        ("tcp to 22, ipv6", Frame::http_v6(&req).dport(22).build()),
        ("udp to 80", Frame::http_v4(&req).udp().build()),
        ("arp", arp()),
        (
            "identity header in a body",
            Frame::http_v4(body.as_bytes()).build(),
        ),
        (
            "a response, not a request",
            Frame::http_v4(response.as_bytes()).build(),
        ),
        (
            "request line without version",
            Frame::http_v4(no_version.as_bytes()).build(),
        ),
        (
            "binary on port 80",
            Frame::http_v4(&[0u8, 1, 2, 3, 0xff, 0x16, 3, 1]).build(),
        ),
        ("pure ACK", Frame::http_v4(b"").build()),
    ];
    let mut g = load();
    for (case, input) in &cases {
        for hook in Hook::ALL {
            let r = g.run(hook, input).unwrap();
            assert_eq!(r.verdict, Verdict::Pass, "{case} on {hook:?}");
            assert_eq!(&r.out, input, "{case} on {hook:?}: modified");
        }
    }
    assert_eq!(counters_total(&g), 0);
    assert!(g.events().unwrap().is_empty());
    let s = g.stats().unwrap();
    assert_eq!(s.packets, (cases.len() * Hook::ALL.len()) as u64);
    // The body request is one head; the others never start one.
    assert_eq!(s.heads, Hook::ALL.len() as u64);
}

/// Bytes after the IP datagram (an Ethernet trailer, padding) are not the segment's: a
/// head left open at the datagram's end is not continued into them, whether the frame is
/// linear or (XDP, large) carries fragments, where the packet length takes a helper call.
#[test]
fn bytes_past_the_ip_datagram_are_never_scanned() {
    let trailer = format!("X-MSISDN: {MSISDN}\r\n\r\n");
    let short = "GET / HTTP/1.1\r\nHost: a\r\n".to_string();
    let long = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: {}\r\n",
        "p".repeat(5000)
    );
    for (head, hooks) in [(short, Hook::ALL.to_vec()), (long, vec![Hook::Xdp])] {
        let mut input = Frame::http_v4(head.as_bytes()).build();
        input.extend_from_slice(trailer.as_bytes());
        for hook in hooks {
            let mut g = Guard::pooled(&policy()).unwrap();
            let r = g.run(hook, &input).unwrap();
            let case = format!("{} B head on {hook:?}", head.len());
            assert_eq!(r.verdict, Verdict::Pass, "{case}");
            assert!(r.out == input, "{case}: the trailer was scanned");
            assert_eq!(counters_total(&g), 0, "{case}");
            assert_eq!(g.stats().unwrap().bytes, head.len() as u64, "{case}");
        }
    }
}

/// HTTP ports come from the map the daemon fills.
#[test]
fn http_ports_come_from_the_policy() {
    let req = get(&[&format!("X-MSISDN: {MSISDN}")]);
    let mut g = Guard::pooled(&KernelPolicy {
        ports: vec![8081],
        ..policy()
    })
    .unwrap();
    for hook in Hook::ALL {
        let on_80 = Frame::http_v4(&req).build();
        assert_eq!(
            g.run(hook, &on_80).unwrap().out,
            on_80,
            "{hook:?}: 80 is not configured"
        );
        let on_8081 = Frame::http_v4(&req).dport(8081).build();
        let r = g.run(hook, &on_8081).unwrap();
        assert_redacted("port 8081", hook, &on_8081, &r.out, &[MSISDN]);
    }
    assert_eq!(g.stats().unwrap().tcp_http, Hook::ALL.len() as u64);
    // Defaults: 80 and 8080.
    let mut g = load();
    let r = g
        .run(Hook::Xdp, &Frame::http_v4(&req).dport(8080).build())
        .unwrap();
    assert!(find(&r.out, MSISDN.as_bytes()).is_none());
}
