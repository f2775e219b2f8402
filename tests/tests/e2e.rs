//! End to end: curl in a client namespace, a recording HTTP server in a server namespace,
//! a veth pair between them, and the real programs attached to it (TCX egress on the
//! client side, XDP on the server side). What the server receives is what left the guard.

use std::net::SocketAddr;

use leakguard::policy::{Action, KernelPolicy};
use leakguard_common::{action, form, place};
use leakguard_tests::{
    corpus::{b64_of, hex_of},
    guard::Guard,
    http::{find, ACR, MSISDN, UIDH},
    kernel::rule,
    server::HttpServer,
    topo::{attach_tc_egress, attach_xdp, curl, topo, Topo, CLI_IF, SRV_IF, SRV_V4, SRV_V6},
};

const R_MSISDN: u32 = 0;
const R_UIDH: u32 = 1;
const R_ACR: u32 = 2;

fn policy() -> KernelPolicy {
    KernelPolicy {
        rules: vec![
            rule("X-MSISDN", Action::Redact, &[]),
            rule("X-UIDH", Action::Drop, &[]),
            rule("X-ACR", Action::Count, &[]),
        ],
        ..KernelPolicy::default()
    }
}

/// The topology, a recording server on `addr:port` and the guard attached on the client's
/// TCX egress.
fn tc_egress_guard(addr: &str, port: u16) -> (Topo, HttpServer, Guard) {
    let t = topo();
    let server = HttpServer::start(&t.srv, SocketAddr::new(addr.parse().unwrap(), port)).unwrap();
    let mut g = Guard::load(&policy()).unwrap();
    attach_tc_egress(&mut g, &t.cli, CLI_IF);
    (t, server, g)
}

#[track_caller]
fn assert_received_redacted(head: &[u8], name: &str) {
    assert!(
        find(head, MSISDN.as_bytes()).is_none(),
        "the number reached the server"
    );
    let want = format!("{name}: {}\r\n", "*".repeat(MSISDN.len()));
    assert!(
        find(head, want.as_bytes()).is_some(),
        "the server did not see the redacted line {want:?}"
    );
}

#[test]
fn tc_egress_redacts_and_counts_on_the_wire() {
    let (t, server, g) = tc_egress_guard(SRV_V4, 80);
    let st = curl(
        &t.cli,
        &format!("http://{SRV_V4}/"),
        &[format!("X-MSISDN: {MSISDN}"), format!("X-ACR: {ACR}")],
        10,
    );
    assert!(st.success(), "curl: {st}");
    let heads = server.heads();
    assert_eq!(heads.len(), 1);
    assert_received_redacted(&heads[0], "X-MSISDN");
    assert!(
        find(&heads[0], ACR.as_bytes()).is_some(),
        "count must not change the request"
    );
    assert_eq!(g.count(R_MSISDN, action::REDACT).unwrap(), 1);
    assert_eq!(g.count(R_ACR, action::COUNT).unwrap(), 1);
}

#[test]
fn tc_egress_redacts_over_ipv6() {
    let (t, server, _g) = tc_egress_guard(SRV_V6, 8080);
    let st = curl(
        &t.cli,
        &format!("http://[{SRV_V6}]:8080/"),
        &[format!("x_msisdn: {MSISDN}")],
        10,
    );
    assert!(st.success(), "curl: {st}");
    let heads = server.heads();
    assert_eq!(heads.len(), 1);
    assert_received_redacted(&heads[0], "x_msisdn");
}

/// With segmentation offload on (the veth default), the stack hands TC egress one GSO
/// super-packet for the whole request: the header at byte ~6,000 is in it, far past the
/// first MTU's worth, and must be found there.
#[test]
fn tc_egress_finds_a_header_deep_in_a_gso_packet() {
    let (t, server, g) = tc_egress_guard(SRV_V4, 80);
    let cookie = format!("Cookie: session={}", "c".repeat(6000));
    let st = curl(
        &t.cli,
        &format!("http://{SRV_V4}/"),
        &[cookie, format!("X-MSISDN: {MSISDN}")],
        10,
    );
    assert!(st.success(), "curl: {st}");
    let heads = server.heads();
    assert_eq!(heads.len(), 1);
    assert!(heads[0].len() > 6000);
    assert_received_redacted(&heads[0], "X-MSISDN");
    let s = g.stats().unwrap();
    assert_eq!(s.heads, 1);
    assert!(
        s.bytes > 6000,
        "one segment carried the whole head: {} bytes scanned",
        s.bytes
    );
}

#[test]
fn tc_egress_drop_stops_the_request() {
    let (t, server, g) = tc_egress_guard(SRV_V4, 80);
    let st = curl(
        &t.cli,
        &format!("http://{SRV_V4}/"),
        &[format!("X-UIDH: {UIDH}")],
        2,
    );
    assert!(
        !st.success(),
        "a request with a drop header must not complete"
    );
    assert!(
        server
            .heads()
            .iter()
            .all(|h| find(h, UIDH.as_bytes()).is_none()),
        "the tracking ID reached the server"
    );
    // The first transmission and any retransmissions are dropped and counted.
    assert!(g.count(R_UIDH, action::DROP).unwrap() >= 1);
    // A clean request on the same path still goes through.
    assert!(curl(&t.cli, &format!("http://{SRV_V4}/"), &[], 10).success());
    assert_eq!(server.heads().len(), 1);
}

/// XDP on the server-facing side's receive path, with full checksums on the wire (no
/// checksum offload at the sender) and software verification at the receiver: the
/// request completes only if the rewritten checksum is right.
#[test]
fn xdp_redacts_and_the_receiver_accepts_the_checksum() {
    let t = topo();
    t.cli.ethtool(CLI_IF, &["tx", "off"]).unwrap();
    t.srv.ethtool(SRV_IF, &["rx", "off"]).unwrap();
    let server = HttpServer::start(&t.srv, SocketAddr::new(SRV_V4.parse().unwrap(), 80)).unwrap();
    let mut g = Guard::load(&policy()).unwrap();
    attach_xdp(&mut g, &t.srv, SRV_IF);
    for i in 0..3 {
        let st = curl(
            &t.cli,
            &format!("http://{SRV_V4}/{i}"),
            &[format!("X-Msisdn: {MSISDN}")],
            10,
        );
        assert!(
            st.success(),
            "request {i}: curl: {st} (a bad checksum stalls TCP)"
        );
    }
    let heads = server.heads();
    assert_eq!(heads.len(), 3);
    for h in &heads {
        assert_received_redacted(h, "X-Msisdn");
    }
    assert_eq!(g.count(R_MSISDN, action::REDACT).unwrap(), 3);
    assert_eq!(g.stats().unwrap().errors, 0);
}

/// The topology, a recording server on `SRV_V4:80`, and the guard with `[msisdn]`
/// (prefixes 44 and 447, `redact`, every place read) besides the rules of [`policy`]:
/// on the client's TCX egress (GSO super-packets), or with `xdp` on the server's XDP
/// with full checksums on the wire, verified by the receiver (MTU frames).
fn number_guard(xdp: bool) -> (Topo, HttpServer, Guard) {
    let t = topo();
    if xdp {
        t.cli.ethtool(CLI_IF, &["tx", "off"]).unwrap();
        t.srv.ethtool(SRV_IF, &["rx", "off"]).unwrap();
    }
    let server = HttpServer::start(&t.srv, SocketAddr::new(SRV_V4.parse().unwrap(), 80)).unwrap();
    let mut p = policy();
    let mut m = leakguard_tests::corpus::number_check(Action::Redact);
    m.prefixes = vec!["44".into(), "447".into()];
    p.msisdn = Some(m);
    let mut g = Guard::load(&p).unwrap();
    if xdp {
        attach_xdp(&mut g, &t.srv, SRV_IF);
    } else {
        attach_tc_egress(&mut g, &t.cli, CLI_IF);
    }
    (t, server, g)
}

/// What went through a [`number_guard`].
struct Received {
    /// The one head the server received.
    head: Vec<u8>,
    /// Numbers `[msisdn]` redacted.
    redacted: u64,
    /// The place byte (place and form) of each `[msisdn]` event.
    places: Vec<u8>,
}

/// curl's request for `target` with `headers` through a [`number_guard`]: asserts it
/// completed (on XDP, only if every rewritten checksum was right) and that the server
/// received one head.
fn through_number_guard(xdp: bool, target: &str, headers: &[String]) -> Received {
    let (t, server, mut g) = number_guard(xdp);
    let st = curl(&t.cli, &format!("http://{SRV_V4}{target}"), headers, 10);
    assert!(st.success(), "curl (xdp {xdp}): {st}");
    let mut heads = server.heads();
    assert_eq!(heads.len(), 1, "xdp {xdp}");
    Received {
        head: heads.remove(0),
        redacted: g
            .count(leakguard_common::MSISDN_RULE_ID, action::REDACT)
            .unwrap(),
        places: g
            .events()
            .unwrap()
            .iter()
            .filter(|e| e.rule_id == leakguard_common::MSISDN_RULE_ID)
            .map(|e| e.place)
            .collect(),
    }
}

/// `[msisdn]` with the request target: curl's URL carries the number in a path segment,
/// a query value and after `%2B`, with a 6 KB cookie behind it (one GSO skb on TC
/// egress, MTU frames on XDP ingress with checksums verified by the receiver). The
/// server receives the URL with every digit of the number starred, nothing else changed.
#[test]
fn a_number_in_the_url_reaches_the_server_starred() {
    let path = |n: &str| format!("/u/{n}/landing?msisdn={n}&tel=%2B{n}&ts=1700000000");
    let stars = "*".repeat(MSISDN.len());
    let want = format!("GET {} HTTP/1.1\r\n", path(&stars));
    for xdp in [false, true] {
        let Received {
            head,
            redacted,
            places,
        } = through_number_guard(
            xdp,
            &path(MSISDN),
            &[format!("Cookie: sid={}", "c".repeat(6_000))],
        );
        assert!(
            find(&head, MSISDN.as_bytes()).is_none(),
            "the number reached the server (xdp {xdp})"
        );
        assert!(
            head.starts_with(want.as_bytes()),
            "xdp {xdp}: the server saw {:?}",
            String::from_utf8_lossy(&head[..want.len().min(head.len())])
        );
        assert_eq!(redacted, 3, "xdp {xdp}");
        assert_eq!(
            places,
            [place::TARGET; 3],
            "xdp {xdp}: decimal, in the target"
        );
    }
}

/// `[msisdn]` with cookies: curl sends the number in a cookie pair behind a 6 KB cookie
/// (one GSO skb on TC egress, MTU frames on XDP): the server receives it starred.
#[test]
fn a_number_in_a_cookie_reaches_the_server_starred() {
    let cookie = |n: &str| format!("Cookie: sid={}; msisdn={n}; lang=en", "c".repeat(6_000));
    let want = cookie(&"*".repeat(MSISDN.len()));
    for xdp in [false, true] {
        let Received {
            head,
            redacted,
            places,
        } = through_number_guard(xdp, "/", &[cookie(MSISDN)]);
        assert!(
            find(&head, MSISDN.as_bytes()).is_none(),
            "the number reached the server (xdp {xdp})"
        );
        assert!(find(&head, want.as_bytes()).is_some(), "xdp {xdp}");
        assert_eq!(redacted, 1, "xdp {xdp}");
        assert_eq!(places, [place::COOKIE], "xdp {xdp}: decimal, in a cookie");
    }
}

/// `[msisdn]` inside other header values: a SIP URI in a `Contact` and a URL in a
/// `Referer`, behind a 6 KB cookie. The server receives those lines with exactly the 12
/// digits starred and every other byte intact; look-alikes in other values (an order
/// number without a configured prefix, a 16-digit number starting 44) arrive untouched.
#[test]
fn a_number_inside_another_header_value_reaches_the_server_starred() {
    let lines = |n: &str| {
        [
            format!("Contact: <sip:+{n}@ims.example;user=phone>"),
            format!("Referer: http://portal.example/?u={n}"),
        ]
    };
    let alike = [
        "X-Order: order 770090012345 of 2026-11-25".to_owned(),
        "X-Card: 4477009009876543".to_owned(),
    ];
    let stars = "*".repeat(MSISDN.len());
    for xdp in [false, true] {
        // curl's own `Accept: */*` replaced, so that every star the server sees is the
        // guard's.
        let mut headers = vec![
            "Accept: text/html".to_owned(),
            format!("Cookie: sid={}", "c".repeat(6_000)),
        ];
        headers.extend(lines(MSISDN));
        headers.extend(alike.iter().cloned());
        let Received {
            head,
            redacted,
            places,
        } = through_number_guard(xdp, "/", &headers);
        assert!(
            find(&head, MSISDN.as_bytes()).is_none(),
            "the number reached the server (xdp {xdp})"
        );
        for l in lines(&stars).iter().chain(&alike) {
            let l = format!("\r\n{l}\r\n");
            assert!(
                find(&head, l.as_bytes()).is_some(),
                "xdp {xdp}: the server did not receive {l:?}"
            );
        }
        assert_eq!(
            head.iter().filter(|&&b| b == b'*').count(),
            2 * MSISDN.len(),
            "xdp {xdp}: only the numbers' digits are starred"
        );
        assert_eq!(redacted, 2, "xdp {xdp}");
        assert_eq!(
            places,
            [place::HEADER; 2],
            "xdp {xdp}: decimal, in a header"
        );
    }
}

/// The hex form in the URL: curl's query carries the number's hex form, and the hex form
/// of a number with another prefix (33, a look-alike), behind a 6 KB cookie. The server
/// receives the first as 24 stars and the look-alike untouched; the event says hex.
#[test]
fn a_hex_number_in_the_url_reaches_the_server_starred() {
    let number = hex_of(MSISDN);
    assert_eq!(number, "343437373030393030313233");
    let alike = hex_of("337700900123");
    let path = |n: &str| format!("/p?uid={n}&ref={alike}&ts=1700000000");
    let want = format!("GET {} HTTP/1.1\r\n", path(&"*".repeat(number.len())));
    for xdp in [false, true] {
        let Received {
            head,
            redacted,
            places,
        } = through_number_guard(
            xdp,
            &path(&number),
            &[format!("Cookie: sid={}", "c".repeat(6_000))],
        );
        assert!(
            find(&head, number.as_bytes()).is_none(),
            "the hex form reached the server (xdp {xdp})"
        );
        assert!(
            head.starts_with(want.as_bytes()),
            "xdp {xdp}: the server saw {:?}",
            String::from_utf8_lossy(&head[..want.len().min(head.len())])
        );
        assert_eq!(redacted, 1, "xdp {xdp}");
        assert_eq!(
            places,
            [place::with_form(place::TARGET, form::HEX)],
            "xdp {xdp}: hex, in the target"
        );
    }
}

/// The hex form in a cookie pair behind a 6 KB cookie, and the look-alike of another
/// prefix in the next pair: the server receives 24 stars and the look-alike untouched.
#[test]
fn a_hex_number_in_a_cookie_reaches_the_server_starred() {
    let number = hex_of(MSISDN);
    let alike = hex_of("337700900123");
    let cookie = |n: &str| {
        format!(
            "Cookie: sid={}; uid={n}; ref={alike}; lang=en",
            "c".repeat(6_000)
        )
    };
    let want = cookie(&"*".repeat(number.len()));
    for xdp in [false, true] {
        let Received {
            head,
            redacted,
            places,
        } = through_number_guard(xdp, "/", &[cookie(&number)]);
        assert!(
            find(&head, number.as_bytes()).is_none(),
            "the hex form reached the server (xdp {xdp})"
        );
        assert!(
            find(&head, format!("{want}\r\n").as_bytes()).is_some(),
            "xdp {xdp}"
        );
        assert_eq!(redacted, 1, "xdp {xdp}");
        assert_eq!(
            places,
            [place::with_form(place::COOKIE, form::HEX)],
            "xdp {xdp}: hex, in a cookie"
        );
    }
}

/// The hex form inside another header value (a URL in a `Referer`), and a 16-pair hex
/// look-alike (a 16-digit number's hex) in another value: the server receives 24 stars
/// in the `Referer` and the look-alike untouched.
#[test]
fn a_hex_number_inside_a_header_value_reaches_the_server_starred() {
    let number = hex_of(MSISDN);
    let referer = |n: &str| format!("Referer: http://portal.example/?uid={n}&v=2");
    let alike = format!("X-Ref: {}", hex_of("4477009009876543"));
    for xdp in [false, true] {
        let Received {
            head,
            redacted,
            places,
        } = through_number_guard(xdp, "/", &[referer(&number), alike.clone()]);
        assert!(
            find(&head, number.as_bytes()).is_none(),
            "the hex form reached the server (xdp {xdp})"
        );
        for l in [referer(&"*".repeat(number.len())), alike.clone()] {
            let l = format!("\r\n{l}\r\n");
            assert!(
                find(&head, l.as_bytes()).is_some(),
                "xdp {xdp}: the server did not receive {l:?}"
            );
        }
        assert_eq!(redacted, 1, "xdp {xdp}");
        assert_eq!(
            places,
            [place::with_form(place::HEADER, form::HEX)],
            "xdp {xdp}: hex, in a header"
        );
    }
}

/// The hex form cut by a segment end on XDP (MTU frames): curl's cookie padding moves the
/// stretch across the end of the third frame (MSS 1448 on this veth), one byte a request.
/// Every request reaches the server with every digit starred; the guard rewrote two
/// packets for at least one of them, so the cut was met (the stretch carried to the next
/// segment).
#[test]
fn a_hex_number_cut_by_a_segment_end_reaches_the_server_starred() {
    let number = hex_of(MSISDN);
    let cookie = |pad: usize, n: &str| format!("Cookie: sid={}; uid={n}", "c".repeat(pad));
    let (t, server, g) = number_guard(true);
    // The stretch starts about 90 bytes after the padding's start: these put it from 30
    // bytes before the end of the third frame (byte 4,344) to 6 bytes after.
    let pads = 4_220..4_264;
    let mut rewrites = Vec::new();
    for pad in pads.clone() {
        let before = g.stats().unwrap().redacted_packets;
        let st = curl(
            &t.cli,
            &format!("http://{SRV_V4}/p"),
            &[cookie(pad, &number)],
            10,
        );
        assert!(st.success(), "pad {pad}: curl: {st}");
        rewrites.push(g.stats().unwrap().redacted_packets - before);
    }
    assert!(
        rewrites.contains(&2),
        "no request had its stretch cut by a segment end: packets rewritten {rewrites:?}"
    );
    assert_eq!(
        g.count(leakguard_common::MSISDN_RULE_ID, action::REDACT)
            .unwrap(),
        rewrites.len() as u64
    );
    let heads = server.heads();
    assert_eq!(heads.len(), pads.len());
    // Every digit of the number is starred. A cut between a pair's 3 and its digit may let
    // that 3 through: it is hex's constant half and says nothing of the number (the kernel
    // stars the stretch read so far, which ends at the last whole pair). Every request is
    // checked before failing, so that a failure lists each cut it fails at.
    let mut wrong = Vec::new();
    let mut threes = 0;
    for (head, pad) in heads.iter().zip(pads) {
        assert!(
            find(head, number.as_bytes()).is_none(),
            "pad {pad}: the hex form reached the server"
        );
        let line = format!("{}\r\n", cookie(pad, ""));
        let at = find(head, line.trim_end().as_bytes()).map(|a| a + line.len() - 2);
        let got = at.and_then(|a| head.get(a..a + number.len()));
        let ok = got.is_some_and(|v| {
            let kept: Vec<usize> = (0..v.len()).filter(|&i| v[i] != b'*').collect();
            kept.len() <= 1 && kept.iter().all(|&i| i % 2 == 0 && v[i] == b'3')
        }) && at.is_some_and(|a| head[a + number.len()..].starts_with(b"\r\n"));
        if !ok {
            let at = find(head, b"uid=").unwrap_or(0);
            let got = String::from_utf8_lossy(&head[at..]);
            wrong.push(format!("pad {pad}: {}", got.lines().next().unwrap_or("")));
        } else if got.is_some_and(|v| v.contains(&b'3')) {
            threes += 1;
        }
    }
    assert!(
        wrong.is_empty(),
        "a digit of the number was not starred (packets rewritten {rewrites:?}):\n{}",
        wrong.join("\n")
    );
    println!(
        "{threes} of {} cuts let a pair's leading 3 through",
        heads.len()
    );
    assert_eq!(g.stats().unwrap().errors, 0);
}

/// The base64 form of the number after `lead` (`url`: the URL-safe alphabet unpadded,
/// else the standard one padded), and its *span*: the characters carrying the number's
/// digits, from its first digit's first character to its last digit's second
/// (`b64::decide`'s `first..end`), which `redact` stars and nothing else.
struct B64 {
    enc: String,
    span: std::ops::Range<usize>,
}

impl B64 {
    fn new(lead: &str, url: bool) -> Self {
        let enc = b64_of(&format!("{lead}{MSISDN}"), url);
        let (d0, last) = (lead.len(), lead.len() + MSISDN.len() - 1);
        let span = 4 * (d0 / 3) + d0 % 3..4 * (last / 3) + last % 3 + 2;
        Self { enc, span }
    }

    /// The span's characters: what must never reach the server.
    fn digits(&self) -> &str {
        &self.enc[self.span.clone()]
    }

    /// The encoding as the server must receive it: the span starred.
    fn starred(&self) -> String {
        let mut s = self.enc.clone().into_bytes();
        s[self.span.clone()].fill(b'*');
        String::from_utf8(s).unwrap()
    }
}

/// The base64 form in the URL: curl's query carries the number's base64 (standard
/// alphabet, 16 characters, all of them its span), the URL-safe base64 of `+` and the
/// number (its span all but the first character), and the base64 of a number with
/// another prefix (33, a look-alike), behind a 6 KB cookie. The server receives exactly
/// the spans starred and the look-alike untouched; the events say base64.
#[test]
fn a_base64_number_in_the_url_reaches_the_server_starred() {
    let plain = B64::new("", false);
    assert_eq!(
        (plain.enc.as_str(), plain.span.clone()),
        ("NDQ3NzAwOTAwMTIz", 0..16)
    );
    let led = B64::new("+", true);
    assert_eq!(
        (led.enc.as_str(), led.span.clone()),
        ("KzQ0NzcwMDkwMDEyMw", 1..18)
    );
    let alike = b64_of("337700900123", false);
    let path = |a: &str, b: &str| format!("/p?uid={a}&tel={b}&ref={alike}&ts=1700000000");
    let want = format!(
        "GET {} HTTP/1.1\r\n",
        path(&plain.starred(), &led.starred())
    );
    for xdp in [false, true] {
        let Received {
            head,
            redacted,
            places,
        } = through_number_guard(
            xdp,
            &path(&plain.enc, &led.enc),
            &[format!("Cookie: sid={}", "c".repeat(6_000))],
        );
        for b in [&plain, &led] {
            assert!(
                find(&head, b.digits().as_bytes()).is_none(),
                "the base64 form reached the server (xdp {xdp})"
            );
        }
        assert!(
            head.starts_with(want.as_bytes()),
            "xdp {xdp}: the server saw {:?}",
            String::from_utf8_lossy(&head[..want.len().min(head.len())])
        );
        assert_eq!(redacted, 2, "xdp {xdp}");
        assert_eq!(
            places,
            [place::with_form(place::TARGET, form::BASE64); 2],
            "xdp {xdp}: base64, in the target"
        );
    }
}

/// The base64 form in cookie pairs behind a 6 KB cookie: the number's standard base64,
/// the URL-safe base64 of `uid` and the number (its span the last 16 of 20 characters),
/// and the look-alike of another prefix in the next pair: the server receives the spans
/// starred and the look-alike untouched.
#[test]
fn a_base64_number_in_a_cookie_reaches_the_server_starred() {
    let plain = B64::new("", false);
    let led = B64::new("uid", true);
    assert_eq!(
        (led.enc.as_str(), led.span.clone()),
        ("dWlkNDQ3NzAwOTAwMTIz", 4..20)
    );
    let alike = b64_of("337700900123", false);
    let cookie = |a: &str, b: &str| {
        format!(
            "Cookie: sid={}; uid={a}; s={b}; ref={alike}; lang=en",
            "c".repeat(6_000)
        )
    };
    let want = cookie(&plain.starred(), &led.starred());
    for xdp in [false, true] {
        let Received {
            head,
            redacted,
            places,
        } = through_number_guard(xdp, "/", &[cookie(&plain.enc, &led.enc)]);
        assert!(
            find(&head, plain.digits().as_bytes()).is_none(),
            "the base64 form reached the server (xdp {xdp})"
        );
        assert!(
            find(&head, format!("{want}\r\n").as_bytes()).is_some(),
            "xdp {xdp}"
        );
        assert_eq!(redacted, 2, "xdp {xdp}");
        assert_eq!(
            places,
            [place::with_form(place::COOKIE, form::BASE64); 2],
            "xdp {xdp}: base64, in a cookie"
        );
    }
}

/// The base64 form inside other header values: the number's standard base64 in a URL in
/// a `Referer`, the padded standard base64 of `tel:` and the number (its span from the
/// sixth character, before `==`) in a token, and a look-alike (a 16-digit number's
/// base64) in another value: the server receives the spans starred and the look-alike
/// untouched.
#[test]
fn a_base64_number_inside_a_header_value_reaches_the_server_starred() {
    let plain = B64::new("", false);
    let led = B64::new("tel:", false);
    assert_eq!(
        (led.enc.as_str(), led.span.clone()),
        ("dGVsOjQ0NzcwMDkwMDEyMw==", 5..22)
    );
    let lines = |a: &str, b: &str| {
        [
            format!("Referer: http://portal.example/?uid={a}&v=2"),
            format!("X-Session: v1.{b}.sig"),
        ]
    };
    let alike = format!("X-Ref: {}", b64_of("4477009009876543", false));
    for xdp in [false, true] {
        let mut headers = lines(&plain.enc, &led.enc).to_vec();
        headers.push(alike.clone());
        let Received {
            head,
            redacted,
            places,
        } = through_number_guard(xdp, "/", &headers);
        for b in [&plain, &led] {
            assert!(
                find(&head, b.digits().as_bytes()).is_none(),
                "the base64 form reached the server (xdp {xdp})"
            );
        }
        for l in lines(&plain.starred(), &led.starred())
            .iter()
            .chain([&alike])
        {
            let l = format!("\r\n{l}\r\n");
            assert!(
                find(&head, l.as_bytes()).is_some(),
                "xdp {xdp}: the server did not receive {l:?}"
            );
        }
        assert_eq!(redacted, 2, "xdp {xdp}");
        assert_eq!(
            places,
            [place::with_form(place::HEADER, form::BASE64); 2],
            "xdp {xdp}: base64, in a header"
        );
    }
}

/// The base64 form cut by a segment end on XDP (MTU frames): curl's cookie padding moves
/// the number across the end of the third frame (stream byte 4,344: MSS 1448 on this
/// veth), one byte a request, from past its span to before it, for the standard form
/// and the URL-safe one after `+`: the cut falls before, after and at every character of
/// the span.
///
/// What the rule guarantees at a cut (`leakguard_b64_cut`, `leakguard_b64_carry`,
/// `F_B64_LAST`, `b64::tail`), asserted request by request: a span the cut leaves whole
/// on one side is read whole, starred and counted as any. A cut after 2 or more of its
/// characters and up to its end: the stretch open at the cut (its digits so far may
/// begin a number) is starred up to it, and the next frame stars the alphabet
/// characters that continue it; the number is known whole on neither side (at its end,
/// the byte after it is not known yet), so it is not counted. A cut after its first
/// character (no digit decoded yet) leaves that character, the frame's last,
/// unstarred: the next frame reads the number whole from it, stars the rest and counts
/// it. That character carries 2 bits of the first digit at most (`0011` and the top two
/// of the digit's nibble; after a lead-in, none). So every character of the span but
/// that one is starred, whatever the cut.
#[test]
fn a_base64_number_cut_by_a_segment_end_reaches_the_server_starred() {
    const CUT: usize = 3 * 1448;
    let cookie = |pad: usize, n: &str| format!("Cookie: sid={}; uid={n}", "c".repeat(pad));
    let (t, server, mut g) = number_guard(true);
    let mut seen = 0;
    let mut wrong = Vec::new();
    for b in [B64::new("", false), B64::new("+", true)] {
        let len = b.span.len();
        // The value starts 90 bytes after the padding's start: these put the cut from 4
        // characters after the span to 5 before it.
        let pads = 4_250 - len - b.span.start..4_260 - b.span.start;
        let mut requests = Vec::new();
        for pad in pads.clone() {
            let before = g.stats().unwrap().redacted_packets;
            let st = curl(
                &t.cli,
                &format!("http://{SRV_V4}/p"),
                &[cookie(pad, &b.enc)],
                10,
            );
            assert!(st.success(), "{} pad {pad}: curl: {st}", b.enc);
            let rewrites = g.stats().unwrap().redacted_packets - before;
            let places: Vec<u8> = g
                .events()
                .unwrap()
                .iter()
                .filter(|e| e.rule_id == leakguard_common::MSISDN_RULE_ID)
                .map(|e| e.place)
                .collect();
            requests.push((pad, rewrites, places));
        }
        let heads = server.heads();
        assert_eq!(heads.len(), seen + pads.len());
        let mut cuts = Vec::new();
        for (head, (pad, rewrites, places)) in heads[seen..].iter().zip(requests) {
            let at = find(head, b"; uid=").expect("the cookie") + 6;
            // Characters of the span before the cut.
            let m = CUT as isize - (at + b.span.start) as isize;
            let split = (2..=len as isize).contains(&m);
            let mut want = b.starred().into_bytes();
            if m == 1 {
                want[b.span.start] = b.enc.as_bytes()[b.span.start];
            }
            want.extend_from_slice(b"\r\n");
            let want_rewrites = if split && m < len as isize { 2 } else { 1 };
            let want_places = if split {
                vec![]
            } else {
                vec![place::with_form(place::COOKIE, form::BASE64)]
            };
            let got = &head[at..];
            if !got.starts_with(&want) || rewrites != want_rewrites || places != want_places {
                wrong.push(format!(
                    "{} pad {pad}, cut after {m} of {len}: got {:?}, packets rewritten {rewrites}, \
                     places {places:?}; want {:?}, {want_rewrites}, {want_places:?}",
                    b.enc,
                    String::from_utf8_lossy(&got[..got.len().min(want.len())]),
                    String::from_utf8_lossy(&want),
                ));
            }
            cuts.push(m);
        }
        seen = heads.len();
        // The padding put the cut before the span, at every character of it and after it.
        for m in -1..=len as isize + 1 {
            assert!(cuts.contains(&m), "{}: no cut after {m}: {cuts:?}", b.enc);
        }
        println!(
            "{}: {} requests, cuts after {}..={} of its {len}-character span",
            b.enc,
            cuts.len(),
            cuts.iter().min().unwrap(),
            cuts.iter().max().unwrap()
        );
    }
    assert!(
        wrong.is_empty(),
        "not as the rule says:\n{}",
        wrong.join("\n")
    );
    assert_eq!(g.stats().unwrap().errors, 0);
}
