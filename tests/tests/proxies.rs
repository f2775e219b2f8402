//! The field case: real enrichment proxies from Debian (HAProxy, Squid, nginx) on a
//! gateway add the subscriber's number (X-MSISDN) and a tracking ID (X-UIDH) to the
//! requests of real clients (curl, wget, Python) carrying browser-sized cookies (0, 6 and
//! 12 KB), over keep-alive connections, with a POST body, and to a trusted partner. The
//! guard is the real daemon under the shipped default policy file (its interface set)
//! plus two rules, on the gateway uplink's TC egress (the proxies' own TCP hands it GSO
//! super-packets: a 12 KB head in one skb) and, on a second topology with a router after
//! the gateway, as XDP on that router's ingress (MTU-sized frames). What reaches the
//! server: no value, ever, but the number to the partner its rule trusts.
//!
//! And `[msisdn]` as the shipped file's example turns it on: HAProxy and nginx put the
//! number in the request target, the client's 6 or 12 KB cookie and a SIP `Contact`,
//! decimal and in base64; the origin receives those values with the characters carrying
//! the number's digits starred, nothing else changed.

use std::time::Duration;

use leakguard_tests::{
    cmd::checked,
    corpus::b64_of,
    daemon::{wait_for, Daemon},
    gateway::{Gateway, GW_UP_IF, PARTNER, RTR_IN_IF, SRV},
    http::{find, MSISDN, UIDH},
    netns::Netns,
    proxies::{Kind, Proxy},
    server::{KeepAliveServer, Recorded},
};

/// Cookie sizes of the requests: none, and what browsers carry for big sites.
const COOKIES: [usize; 3] = [0, 6 * 1024, 12 * 1024];

/// The shipped default policy file, as an operator installs it: its interface set to
/// `iface` and `hook`, pins and metrics kept to the test.
fn shipped_file(pin: &std::path::Path, iface: &str, hook: &str) -> String {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../packaging/leakguard.toml"
    ))
    .unwrap();
    let text = set(
        text,
        "pin_path = \"/sys/fs/bpf/leakguard\"",
        &format!("pin_path = \"{}\"", pin.display()),
    );
    let text = set(
        text,
        "interface = \"eth1\"",
        &format!("interface = \"{iface}\""),
    );
    set(
        text,
        "hook = \"tc-egress\"  ",
        &format!("hook = \"{hook}\"  "),
    )
}

/// `text` with the first `from` replaced by `to`, which must be there.
fn set(text: String, from: &str, to: &str) -> String {
    assert!(text.contains(from), "the shipped file has {from:?}");
    text.replacen(from, to, 1)
}

/// The shipped file with the operator's two rules.
fn shipped_policy(pin: &std::path::Path, iface: &str, hook: &str) -> String {
    format!(
        "{}\n[[rule]]\nheader = \"X-MSISDN\"\naction = \"redact\"\nallow = [\"{PARTNER}/32\"]\n\n\
         [[rule]]\nheader = \"X-UIDH\"\naction = \"redact\"\n",
        shipped_file(pin, iface, hook)
    )
}

/// The shipped file with its `[msisdn]` example uncommented, as an operator turns the
/// number check on: `redact`, prefixes 44 and 447, every place at its default (on).
fn shipped_number_policy(pin: &std::path::Path, iface: &str, hook: &str) -> String {
    set(
        shipped_file(pin, iface, hook),
        "# [msisdn]\n# action = \"redact\"\n# prefixes = [\"44\", \"447\"]",
        "[msisdn]\naction = \"redact\"\nprefixes = [\"44\", \"447\"]",
    )
}

fn cookie(len: usize) -> Option<String> {
    (len > 0).then(|| format!("Cookie: session={}", "c".repeat(len)))
}

/// Runs a client command in the client namespace; returns its stdout, asserting success.
fn client(ns: &Netns, what: &str, program: &str, args: &[String]) -> String {
    let out = checked(ns.command(program).args(args)).unwrap_or_else(|e| panic!("{what}: {e:#}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every client's requests through `kind`: returns how many went to the origin server
/// and how many to the partner.
fn clients(g: &Gateway, kind: Kind) -> (usize, usize) {
    let p = kind.listen();
    // URLs as each client addresses them: absolute through the forward proxy (Squid),
    // the proxy's own address (with a Host) through reverse proxies.
    let (origin, partner, via): (String, String, Vec<String>) = if kind.forward() {
        (
            format!("http://{SRV}/"),
            format!("http://{PARTNER}/"),
            vec!["-x".into(), format!("http://{p}")],
        )
    } else {
        (format!("http://{p}/"), format!("http://{p}/"), Vec::new())
    };
    let partner_host = if kind.forward() {
        PARTNER.to_owned()
    } else {
        "partner.example".to_owned()
    };
    // Python addresses the proxy itself: absolute URIs for the forward proxy, paths for
    // reverse ones.
    let (py_origin, py_partner) = if kind.forward() {
        (origin.clone(), partner.clone())
    } else {
        ("/".to_owned(), "/".to_owned())
    };
    let what = kind.name();

    // curl: three requests on one connection, one per cookie size.
    let mut args: Vec<String> = vec!["-sS".into(), "-m".into(), "20".into()];
    args.extend(via.iter().cloned());
    for (i, &c) in COOKIES.iter().enumerate() {
        if i > 0 {
            args.push("--next".into());
            args.extend(via.iter().cloned());
        }
        args.extend([
            "-o".into(),
            "/dev/null".into(),
            "-w".into(),
            "%{http_code}\n".into(),
        ]);
        if let Some(c) = cookie(c) {
            args.extend(["-H".into(), c]);
        }
        args.push(format!("{origin}curl/{i}"));
    }
    let codes = client(&g.cli, what, "curl", &args);
    assert_eq!(
        codes.lines().filter(|l| *l == "200").count(),
        3,
        "{what}: curl {codes}"
    );

    // wget: the biggest cookie.
    let mut args: Vec<String> = vec![
        "-q".into(),
        "-O".into(),
        "/dev/null".into(),
        "-T".into(),
        "20".into(),
        "-t".into(),
        "1".into(),
    ];
    if kind.forward() {
        args.extend([
            "-e".into(),
            "use_proxy=yes".into(),
            "-e".into(),
            format!("http_proxy=http://{p}"),
        ]);
    }
    args.extend(["--header".into(), cookie(COOKIES[2]).unwrap()]);
    args.push(format!("{origin}wget"));
    client(&g.cli, what, "wget", &args);

    // Python's http.client: one keep-alive connection, a GET, a POST with a body and
    // the biggest cookie, a GET with 6 KB, then a request to the trusted partner.
    let script = format!(
        r#"
import http.client, sys
c = http.client.HTTPConnection("{host}", {port}, timeout=20)
def req(method, url, host, cookie, body=None):
    h = {{"Host": host}}
    if cookie: h["Cookie"] = "session=" + "c" * cookie
    if body is not None: h["Content-Type"] = "application/x-www-form-urlencoded"
    c.request(method, url, body=body, headers=h)
    r = c.getresponse(); r.read()
    if r.status != 200: sys.exit("status %d for %s" % (r.status, url))
req("GET", "{py_origin}py/0", "{srv}", 0)
req("POST", "{py_origin}py/form", "{srv}", {big}, body="name=value&" + "x" * 3000)
req("GET", "{py_origin}py/1", "{srv}", {mid})
req("GET", "{py_partner}py/partner", "{partner_host}", {mid})
"#,
        host = p.ip(),
        port = p.port(),
        srv = SRV,
        big = COOKIES[2],
        mid = COOKIES[1],
    );
    client(&g.cli, what, "python3", &["-c".into(), script]);
    (3 + 1 + 3, 1)
}

/// Checks what the servers received through one proxy: every head carries both headers
/// (the proxy enriched it), no value reached the origin, the partner got the number
/// (trusted) but not the tracking ID. Returns the largest number of requests one
/// server-side connection carried.
fn check(what: &str, got: &[Recorded], origin: usize, partner: usize) -> usize {
    assert_eq!(
        got.len(),
        origin + partner,
        "{what}: every request arrived once"
    );
    let mut to_partner = 0;
    for r in got {
        let head = String::from_utf8_lossy(&r.head).to_ascii_lowercase();
        let host = head
            .lines()
            .find_map(|l| l.strip_prefix("host: "))
            .unwrap_or("")
            .to_owned();
        assert!(
            head.contains("x-msisdn:"),
            "{what}: the proxy added X-MSISDN"
        );
        assert!(head.contains("x-uidh:"), "{what}: the proxy added X-UIDH");
        assert!(
            find(&r.head, UIDH.as_bytes()).is_none(),
            "{what}: the tracking ID left"
        );
        assert!(find(&r.body, MSISDN.as_bytes()).is_none());
        if host.contains("partner") || host.contains(PARTNER) {
            to_partner += 1;
            assert!(
                find(&r.head, MSISDN.as_bytes()).is_some(),
                "{what}: the trusted partner gets the number"
            );
        } else {
            assert!(
                find(&r.head, MSISDN.as_bytes()).is_none(),
                "{what}: the number reached the server ({} byte head)",
                r.head.len()
            );
        }
    }
    assert_eq!(to_partner, partner, "{what}: requests to the partner");
    let mut per_conn = std::collections::HashMap::<u64, usize>::new();
    for r in got {
        *per_conn.entry(r.conn).or_default() += 1;
    }
    per_conn.into_values().max().unwrap_or(0)
}

/// Every proxy and client through a gateway guarded at `iface`/`hook` in `ns`.
fn run(g: &Gateway, ns: &Netns, iface: &str, hook: &str) {
    let server = KeepAliveServer::start(&g.srv, "0.0.0.0:80".parse().unwrap()).unwrap();
    let mut d = Daemon::with_file(ns, |pin| shipped_policy(pin, iface, hook)).unwrap();
    d.start().unwrap();
    let dir = std::env::temp_dir().join(format!("leakguard-proxies-{}-{hook}", std::process::id()));
    let mut seen = 0;
    let mut reuse = Vec::new();
    for kind in Kind::ALL {
        let _proxy =
            Proxy::start(kind, &g.gw, &dir, &[("X-MSISDN", MSISDN), ("X-UIDH", UIDH)]).unwrap();
        let (origin, partner) = clients(g, kind);
        let all = server.requests();
        let what = format!("{} via {hook}", kind.name());
        reuse.push((kind, check(&what, &all[seen..], origin, partner)));
        seen = all.len();
    }
    // The proxies' server side: connections were reused (keep-alive), so heads began
    // mid-connection, after earlier requests and a POST body.
    for (kind, most) in &reuse {
        assert!(*most >= 2, "{} reused no server connection", kind.name());
    }
    // Not seen whole: none (the biggest head is about 12.5 KB, under the cap).
    let st = d.cli_in_netns("status").unwrap();
    let report = String::from_utf8_lossy(&st.stdout);
    assert!(report.contains("not seen whole 0,"), "{report}");
    assert!(report.contains("dropped 0,"), "{report}");
    wait_for(
        "the redactions to be logged",
        Duration::from_secs(5),
        || d.logs().contains("\"identity header\""),
    )
    .unwrap();
    let logs = d.logs();
    for v in [MSISDN, UIDH] {
        assert!(!logs.contains(v), "an identity value in the daemon's log");
        assert!(!report.contains(v), "an identity value in status");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn no_value_leaves_through_real_proxies_on_tc_egress() {
    let g = Gateway::new().unwrap();
    run(&g, &g.gw, GW_UP_IF, "tc-egress");
}

/// XDP on the router after the gateway: the gateway's frames as they come off a wire.
#[test]
fn no_value_leaves_through_real_proxies_on_xdp() {
    let g = Gateway::with_router().unwrap();
    g.wire_like_uplink().unwrap();
    run(&g, g.rtr.as_ref().unwrap(), RTR_IN_IF, "xdp");
}

/// Cookie sizes of the requests whose number the proxy places: what browsers carry for
/// big sites.
const PLACED_COOKIES: [usize; 2] = [6 * 1024, 12 * 1024];

/// The proxies that put the number in the request target, the client's cookie and a SIP
/// `Contact` ([`Proxy::start_placing_number`]) in front of curl's two requests (6 and 12
/// KB cookies, one connection), the guard being the daemon under the shipped file with
/// its `[msisdn]` example uncommented: the origin receives each of the three values as
/// the proxy wrote it, with exactly the number's digits starred. Then the same with the
/// proxies putting the number's base64 (`NDQ3…`, on by default): its 16 characters
/// starred, logged as `base64`.
fn run_placed(g: &Gateway, ns: &Netns, iface: &str, hook: &str) {
    let server = KeepAliveServer::start(&g.srv, "0.0.0.0:80".parse().unwrap()).unwrap();
    let mut d = Daemon::with_file(ns, |pin| shipped_number_policy(pin, iface, hook)).unwrap();
    d.start().unwrap();
    let dir = std::env::temp_dir().join(format!(
        "leakguard-proxies-placed-{}-{hook}",
        std::process::id()
    ));
    let b64 = b64_of(MSISDN, false);
    let mut seen = 0;
    for (value, form) in [(MSISDN, "decimal"), (b64.as_str(), "base64")] {
        let stars = "*".repeat(value.len());
        for kind in [Kind::Haproxy, Kind::Nginx] {
            let _proxy = Proxy::start_placing_number(kind, &g.gw, &dir, value).unwrap();
            let what = format!("{} via {hook}, {form}", kind.name());
            let mut args: Vec<String> = vec!["-sS".into(), "-m".into(), "20".into()];
            for (i, &c) in PLACED_COOKIES.iter().enumerate() {
                if i > 0 {
                    args.push("--next".into());
                }
                args.extend([
                    "-o".into(),
                    "/dev/null".into(),
                    "-w".into(),
                    "%{http_code}\n".into(),
                    "-H".into(),
                    cookie(c).unwrap(),
                    format!("http://{}/page/{i}?q=1", kind.listen()),
                ]);
            }
            let codes = client(&g.cli, &what, "curl", &args);
            assert_eq!(
                codes.lines().filter(|l| *l == "200").count(),
                PLACED_COOKIES.len(),
                "{what}: curl {codes}"
            );
            let all = server.requests();
            let got = &all[seen..];
            seen = all.len();
            assert_eq!(
                got.len(),
                PLACED_COOKIES.len(),
                "{what}: every request arrived once"
            );
            for (r, &c) in got.iter().zip(&PLACED_COOKIES) {
                assert!(
                    find(&r.head, value.as_bytes()).is_none(),
                    "{what}: the number reached the server ({} byte head)",
                    r.head.len()
                );
                // HAProxy sends header names in lower case.
                let head = String::from_utf8_lossy(&r.head).to_ascii_lowercase();
                let target = head.lines().next().unwrap_or("");
                assert!(
                    target.starts_with("get /page/") && target.contains(&format!("msisdn={stars}")),
                    "{what}: the request line {target:?}"
                );
                for line in [
                    format!("\r\ncookie: session={}; msisdn={stars}\r\n", "c".repeat(c)),
                    format!("\r\ncontact: <sip:+{stars}@ims.example;user=phone>\r\n"),
                ] {
                    assert!(
                        head.contains(&line),
                        "{what}: the server did not receive {:?}",
                        &line[..line.len().min(60)]
                    );
                }
            }
        }
        let logged = [
            "\"identity number in the request target\"",
            "\"identity number in a cookie\"",
            "\"identity number\"",
        ];
        let form_field = format!("\"form\":\"{form}\"");
        wait_for(
            &format!("the {form} redactions in all three places to be logged"),
            Duration::from_secs(5),
            || {
                let logs = d.logs();
                logged.iter().all(|m| {
                    logs.lines()
                        .any(|l| l.contains(m) && l.contains(&form_field))
                })
            },
        )
        .unwrap_or_else(|e| panic!("{e}:\n{}", d.logs()));
    }
    let st = d.cli_in_netns("status").unwrap();
    let report = String::from_utf8_lossy(&st.stdout);
    assert!(report.contains("not seen whole 0,"), "{report}");
    assert!(report.contains("dropped 0,"), "{report}");
    let logs = d.logs();
    for value in [MSISDN, &b64] {
        assert!(!logs.contains(value), "the number in the daemon's log");
        assert!(!report.contains(value), "the number in status");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn numbers_placed_by_real_proxies_leave_as_stars_on_tc_egress() {
    let g = Gateway::new().unwrap();
    run_placed(&g, &g.gw, GW_UP_IF, "tc-egress");
}

/// XDP on the router after the gateway: the gateway's frames as they come off a wire.
#[test]
fn numbers_placed_by_real_proxies_leave_as_stars_on_xdp() {
    let g = Gateway::with_router().unwrap();
    g.wire_like_uplink().unwrap();
    run_placed(&g, g.rtr.as_ref().unwrap(), RTR_IN_IF, "xdp");
}
