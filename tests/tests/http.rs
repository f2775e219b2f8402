//! The daemon's HTTP listener, the real `leakguard run` in a network namespace: the
//! endpoints (/metrics, /healthz, /readyz, the landing page, 404, 405, HEAD), readiness
//! following an interface that appears late, TLS and basic authentication from a
//! Prometheus web-config file (certificates made by the `openssl` CLI, requests by curl),
//! `check-config` refusing what the listener cannot honour, and the listener holding
//! under 343 idle connections with 256 file descriptors.

use std::{
    io::{Read as _, Write as _},
    net::TcpStream,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    path::Path,
    process::{Command, Output},
    time::{Duration, Instant},
};

use leakguard_tests::{
    cmd::{checked, printed},
    daemon::{leakguard_bin, wait_for, Daemon},
    http::{MSISDN, VALUES},
    netns::{veth, Netns},
    topo::{topo, CLI_IF},
};

/// `metrics.listen` of every test, in the daemon's own network namespace.
const ADDR: &str = "127.0.0.1:9717";

fn attach(iface: &str) -> String {
    format!("[[attach]]\ninterface = \"{iface}\"\nhook = \"tc-egress\"\n\n")
}

/// A whole exchange over a plain TCP connection from `ns`: the response as received, to
/// the connection's end.
fn raw(ns: &Netns, request: &str) -> String {
    let request = request.to_owned();
    ns.enter(move || {
        let mut s = TcpStream::connect(ADDR).expect("connect to the metrics listener");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).expect("the response, then the end");
        String::from_utf8_lossy(&out).into_owned()
    })
    .unwrap()
}

/// `METHOD PATH` (HTTP/1.1, extra header lines): (status code, head, body).
fn request(ns: &Netns, method: &str, path: &str, extra: &str) -> (u16, String, String) {
    let r = raw(
        ns,
        &format!("{method} {path} HTTP/1.1\r\nHost: {ADDR}\r\n{extra}\r\n"),
    );
    let (head, body) = r.split_once("\r\n\r\n").unwrap_or((&r, ""));
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {r:?}"));
    (code, head.to_owned(), body.to_owned())
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// curl in `ns` with `args`, bounded to 10 s.
fn curl(ns: &Netns, args: &[&str]) -> Output {
    ns.command("curl")
        .args(["-sS", "-m", "10"])
        .args(args)
        .output()
        .expect("curl (installed by `cargo xtask setup`)")
}

/// curl's `%{http_code}` for `args` (000 when no HTTP response came).
fn code(ns: &Netns, args: &[&str]) -> String {
    let mut all = vec!["-o", "/dev/null", "-w", "%{http_code}"];
    all.extend_from_slice(args);
    String::from_utf8_lossy(&curl(ns, &all).stdout).into_owned()
}

#[test]
fn endpoints_and_readiness_as_an_interface_appears() {
    let t = topo();
    let body = format!("{}{}", attach(CLI_IF), attach("late0"));
    let mut d = Daemon::new(&t.cli, &body)
        .unwrap()
        .with_metrics(ADDR)
        .unwrap();
    d.start().unwrap();

    let (c, _, b) = request(&t.cli, "GET", "/healthz", "");
    assert_eq!((c, b.as_str()), (200, "ok\n"));
    // late0 does not exist yet: not ready, saying why in one line.
    let (c, _, b) = request(&t.cli, "GET", "/readyz", "");
    assert_eq!(c, 503, "{b}");
    assert_eq!(b, "not ready: late0@tc-egress not attached\n");

    let (c, head, metrics) = request(&t.cli, "GET", "/metrics", "");
    assert_eq!(c, 200);
    assert!(
        header(&head, "content-type").is_some_and(|v| v.starts_with("text/plain; version=0.0.4")),
        "{head}"
    );
    assert!(metrics.contains(&format!(
        "leakguard_attached{{interface=\"{CLI_IF}\",hook=\"tc-egress\"}} 1"
    )));
    assert!(metrics.contains("leakguard_attached{interface=\"late0\",hook=\"tc-egress\"} 0"));
    // HEAD: the GET's headers, its length included, and nothing after them.
    let (c, head, rest) = request(&t.cli, "HEAD", "/healthz", "");
    assert_eq!((c, rest.as_str()), (200, ""), "{head}");
    assert_eq!(header(&head, "content-length"), Some("3"));
    let (c, head, rest) = request(&t.cli, "HEAD", "/metrics", "");
    assert_eq!((c, rest.as_str()), (200, ""));
    let len: usize = header(&head, "content-length").unwrap().parse().unwrap();
    // The snapshot may move between the two requests, its length by a few digits only.
    assert!(
        len.abs_diff(metrics.len()) < 64,
        "{len} vs {}",
        metrics.len()
    );

    // The landing page links the three.
    let (c, head, page) = request(&t.cli, "GET", "/", "");
    assert_eq!(c, 200);
    assert!(header(&head, "content-type").is_some_and(|v| v.starts_with("text/html")));
    for link in ["href=\"metrics\"", "href=\"healthz\"", "href=\"readyz\""] {
        assert!(page.contains(link), "{link} in {page}");
    }

    // Other paths, other methods. Nothing the client sent comes back or reaches the log.
    let (c, _, b) = request(
        &t.cli,
        "GET",
        &format!("/subscriber/{MSISDN}?msisdn={MSISDN}"),
        &format!("X-MSISDN: {MSISDN}\r\n"),
    );
    assert_eq!(c, 404);
    assert!(!b.contains(MSISDN));
    for method in ["POST", "PUT", "DELETE"] {
        let (c, head, _) = request(&t.cli, method, "/metrics", "");
        assert_eq!(c, 405, "{method}");
        assert_eq!(header(&head, "allow"), Some("GET, HEAD"), "{method}");
    }
    let (c, _, _) = request(&t.cli, "POST", "/nothing-here", "");
    assert_eq!(c, 404);
    let garbage = raw(&t.cli, &format!("\x01\x02 {MSISDN}\r\n\r\n"));
    assert!(garbage.starts_with("HTTP/1.1 400 "), "{garbage}");
    assert!(!garbage.contains(MSISDN));

    // The interface appears: ready, within a tick or two.
    veth(
        &t.cli,
        "late0",
        "198.51.100.1/24",
        &t.srv,
        "late1",
        "198.51.100.2/24",
    )
    .unwrap();
    wait_for("/readyz to say ready", Duration::from_secs(10), || {
        request(&t.cli, "GET", "/readyz", "").0 == 200
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}", request(&t.cli, "GET", "/readyz", "")));
    assert_eq!(request(&t.cli, "GET", "/readyz", "").2, "ready\n");
    for v in VALUES {
        assert!(!d.logs().contains(v), "an identity value in the log");
    }
}

/// The `openssl` CLI in `dir`, which must succeed.
fn openssl(dir: &Path, args: &str) {
    checked(
        Command::new("openssl")
            .current_dir(dir)
            .args(args.split_whitespace()),
    )
    .expect("openssl (installed by `cargo xtask setup`)");
}

/// A self-signed server certificate for 127.0.0.1 (cert.pem, key.pem), and a CA
/// (ca.pem) with a client certificate it signed (client.pem, client.key).
fn certificates(dir: &Path) {
    let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    openssl(dir, &format!("req -x509 {ec} -days 2 -subj /CN=leakguard-test -addext subjectAltName=IP:127.0.0.1 -keyout key.pem -out cert.pem"));
    openssl(
        dir,
        &format!("req -x509 {ec} -days 2 -subj /CN=leakguard-test-ca -keyout ca.key -out ca.pem"),
    );
    openssl(
        dir,
        &format!("req {ec} -subj /CN=prometheus -keyout client.key -out client.csr"),
    );
    std::fs::write(
        dir.join("client.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    openssl(dir, "x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile client.ext -out client.pem");
}

/// utime + stime of process `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).unwrap()
}

#[test]
fn tls_and_basic_auth_from_a_web_config_file() {
    let t = topo();
    let d = Daemon::new(&t.cli, &attach(CLI_IF))
        .unwrap()
        .with_metrics(ADDR)
        .unwrap();
    let dir = d.dir.clone();
    certificates(&dir);
    // Cost 12: slow enough that a verification shows in the daemon's CPU time.
    let hash = bcrypt::hash("scrape-pw", 12).unwrap();
    let web = dir.join("web-config.yml");
    // A relative path (to the file's directory) and an absolute one.
    let key = dir.join("key.pem");
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: cert.pem\n  key_file: {}\nbasic_auth_users:\n  prometheus: {hash}\n",
            key.display()
        ),
    )
    .unwrap();
    let mut d = d.with_web_config(&web).unwrap();
    let described = check_config(&d);
    assert!(described.status.success(), "{}", printed(&described));
    let want = format!(
        "metrics.web_config = {}: TLS on (1.2-1.3, no client certificates), basic auth on (1 user(s))",
        web.display()
    );
    assert!(
        String::from_utf8_lossy(&described.stdout).contains(&want),
        "{}",
        printed(&described)
    );
    d.start().unwrap();

    // curl trusting the test's certificate: the status code (000: no HTTP answer).
    let ca = dir.join("cert.pem").display().to_string();
    let https = |args: &[&str], path: &str| {
        let url = format!("https://{ADDR}{path}");
        let mut all = vec!["--cacert", &ca];
        all.extend_from_slice(args);
        all.push(&url);
        code(&t.cli, &all)
    };
    let right = ["-u", "prometheus:scrape-pw"];
    let ok = curl(
        &t.cli,
        &[
            "--cacert",
            &ca,
            "-u",
            right[1],
            &format!("https://{ADDR}/metrics"),
        ],
    );
    assert!(ok.status.success(), "{}", printed(&ok));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("leakguard_build_info"));

    // Wrong or no credentials: 401 with the challenge, on every path but /healthz,
    // which stays open for liveness probes.
    for creds in [
        &["-u", "prometheus:wrong"][..],
        &["-u", "nobody:scrape-pw"],
        &[],
    ] {
        let mut args = vec!["--cacert", &ca, "-D", "-", "-o", "/dev/null"];
        args.extend_from_slice(creds);
        let url = format!("https://{ADDR}/metrics");
        args.push(&url);
        let out = String::from_utf8_lossy(&curl(&t.cli, &args).stdout).into_owned();
        assert!(out.starts_with("HTTP/1.1 401"), "{creds:?}: {out}");
        assert!(
            out.contains("WWW-Authenticate: Basic realm=\"leakguard\""),
            "{out}"
        );
    }
    assert_eq!(https(&[], "/readyz"), "401");
    assert_eq!(https(&[], "/nothing"), "401");
    assert_eq!(https(&[], "/healthz"), "200");
    assert_eq!(https(&right, "/readyz"), "200");
    // Plain HTTP to the TLS port gets no HTTP answer; nor does a client that does not
    // trust the certificate.
    let plain = curl(
        &t.cli,
        &[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("http://{ADDR}/healthz"),
        ],
    );
    assert!(!plain.status.success(), "{}", printed(&plain));
    assert_eq!(String::from_utf8_lossy(&plain.stdout), "000");
    assert_eq!(code(&t.cli, &[&format!("https://{ADDR}/healthz")]), "000");

    // A verified password is remembered: ten more scrapes cost less CPU than the one
    // bcrypt run of a wrong password.
    let pid = d.pid().unwrap();
    let before = cpu_ticks(pid);
    assert_eq!(https(&["-u", "prometheus:wrong2"], "/metrics"), "401");
    let wrong = cpu_ticks(pid) - before;
    let before = cpu_ticks(pid);
    for _ in 0..10 {
        assert_eq!(https(&right, "/metrics"), "200");
    }
    let ten = cpu_ticks(pid) - before;
    eprintln!("CPU: one refused password {wrong} ticks, ten remembered scrapes {ten} ticks");
    assert!(
        ten < wrong,
        "ten remembered scrapes took {ten} ticks, one bcrypt run {wrong}"
    );

    // SIGHUP applies a new web config: client certificates required, TLS 1.3 only.
    std::fs::write(
        &web,
        format!("tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n  min_version: TLS13\nbasic_auth_users:\n  prometheus: {hash}\n"),
    )
    .unwrap();
    d.signal(libc::SIGHUP);
    wait_for(
        "client certificates to be required",
        Duration::from_secs(10),
        || https(&[], "/healthz") == "000",
    )
    .unwrap();
    let (cert, key) = (dir.join("client.pem"), dir.join("client.key"));
    let client = [
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ];
    assert_eq!(https(&[&client[..], &right].concat(), "/metrics"), "200");
    assert_eq!(
        https(&client, "/metrics"),
        "401",
        "the password is still needed"
    );
    assert_eq!(
        https(&[&client[..], &["--tls-max", "1.2"]].concat(), "/healthz"),
        "000",
        "TLS 1.2 refused"
    );
    let logs = d.logs();
    assert!(
        !logs.contains("scrape-pw") && !logs.contains("wrong2") && !logs.contains(&hash),
        "credentials in the log"
    );
}

/// `leakguard check-config` of the daemon's policy file.
fn check_config(d: &Daemon) -> Output {
    Command::new(leakguard_bin().unwrap())
        .arg("check-config")
        .arg(&d.config)
        .output()
        .unwrap()
}

/// `check-config` on a policy whose web config has `yaml`: exit 1 and the one line.
fn refused(d: &Daemon, web: &Path, yaml: &str) -> String {
    std::fs::write(web, yaml).unwrap();
    let out = check_config(d);
    assert_eq!(out.status.code(), Some(1), "{yaml}: {}", printed(&out));
    let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("metrics.web_config"), "{err}");
    err
}

#[test]
fn check_config_and_run_refuse_what_the_listener_cannot_honour() {
    let t = topo();
    let d = Daemon::new(&t.cli, &attach(CLI_IF))
        .unwrap()
        .with_metrics(ADDR)
        .unwrap();
    let dir = d.dir.clone();
    let web = dir.join("web-config.yml");
    let mut d = d.with_web_config(&web).unwrap();
    openssl(&dir, "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=t -keyout key.pem -out cert.pem");
    std::fs::write(dir.join("junk.pem"), "not a certificate\n").unwrap();

    let tls =
        |cert: &str| format!("tls_server_config:\n  cert_file: {cert}\n  key_file: key.pem\n");
    let e = refused(
        &d,
        &web,
        &format!("{}  client_auth: yes\n", tls("cert.pem")),
    );
    assert!(e.contains("unknown field `client_auth`"), "{e}");
    let e = refused(&d, &web, &tls("missing.pem"));
    assert!(
        e.contains("cert_file") && e.contains("cannot read it"),
        "{e}"
    );
    let e = refused(&d, &web, &tls("junk.pem"));
    assert!(
        e.contains("cert_file") && e.contains("no PEM certificate"),
        "{e}"
    );
    let e = refused(
        &d,
        &web,
        &format!(
            "{}  cipher_suites: [TLS_AES_128_GCM_SHA256]\n",
            tls("cert.pem")
        ),
    );
    assert!(e.contains("cipher_suites is not supported"), "{e}");
    let e = refused(
        &d,
        &web,
        "basic_auth_users:\n  prometheus: plain-Secret-1\n",
    );
    assert!(
        e.contains("basic_auth_users.prometheus: not a bcrypt hash"),
        "{e}"
    );
    assert!(!e.contains("plain-Secret-1"), "the password is quoted: {e}");

    // The daemon refuses to start on such a file: nothing served, nothing attached.
    let st = d.run_to_exit(Duration::from_secs(20)).unwrap();
    assert_eq!(st.code(), Some(1), "{}", d.logs());
    let logs = d.logs();
    assert!(
        logs.contains("not a bcrypt hash") && !logs.contains("plain-Secret-1"),
        "{logs}"
    );
    assert!(!d.pin_path.exists(), "nothing pinned");

    // A good file passes.
    std::fs::write(&web, tls("cert.pem")).unwrap();
    let out = check_config(&d);
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("TLS on (1.2-1.3, no client certificates), basic auth off"),
        "{}",
        printed(&out)
    );
}

/// A connection to [`ADDR`] that sends nothing, held until dropped. Opened without
/// waiting for the handshake: past its cap and backlog, the listener leaves new
/// connections waiting, and a blocking connect would wait with them.
fn open() -> OwnedFd {
    let addr: std::net::SocketAddrV4 = ADDR.parse().unwrap();
    // SAFETY: socket(2) with constant arguments; the result is checked.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: a descriptor socket(2) just returned, owned here alone.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let sa = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*addr.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: a sockaddr_in of its own size.
    let r = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            std::ptr::from_ref(&sa).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    let e = std::io::Error::last_os_error();
    assert!(
        r == 0 || e.raw_os_error() == Some(libc::EINPROGRESS),
        "connect: {e}"
    );
    fd
}

/// The abuse case: with RLIMIT_NOFILE 256, 343 idle connections held for 10 s cost the
/// daemon next to no CPU and never make it think its interface is gone; descriptors
/// taken away outright (a limit of 16) make accepts and interface lookups fail: the
/// listener backs off, the lookup failure is one error line, the interface stays
/// attached; afterwards /metrics answers again.
#[test]
fn idle_connections_and_no_descriptors_cost_neither_cpu_nor_the_interface() {
    let t = topo();
    let mut d = Daemon::new(&t.cli, &attach(CLI_IF))
        .unwrap()
        .with_metrics(ADDR)
        .unwrap();
    d.wrapper = ["prlimit", "--nofile=256:256", "--"]
        .map(String::from)
        .to_vec();
    d.start().unwrap();
    let pid = d.pid().unwrap();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    assert!(
        limits
            .lines()
            .any(|l| l.starts_with("Max open files") && l.split_whitespace().nth(3) == Some("256")),
        "{limits}"
    );
    let attached = format!("leakguard_attached{{interface=\"{CLI_IF}\",hook=\"tc-egress\"}} 1");
    wait_for("the first snapshot", Duration::from_secs(10), || {
        d.scrape().unwrap().contains(&attached)
    })
    .unwrap();

    let hz = clock_ticks_per_second();
    let idle = |n: usize| {
        t.cli
            .enter(move || (0..n).map(|_| open()).collect::<Vec<_>>())
            .unwrap()
    };
    let held = idle(343);
    let (start, ticks) = (Instant::now(), cpu_ticks(pid));
    std::thread::sleep(Duration::from_secs(10));
    let used = (cpu_ticks(pid) - ticks) as f64 / hz as f64 / start.elapsed().as_secs_f64();
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    eprintln!(
        "343 idle connections, 10 s: {:.1}% of a core, {fds} descriptors open",
        used * 100.0
    );
    assert!(used < 0.2, "the daemon used {:.0}% of a core", used * 100.0);
    assert!(fds < 256, "{fds} descriptors open");

    // No descriptor left at all (every new one fails with EMFILE): accepts and the
    // interface lookups fail.
    checked(
        Command::new("prlimit")
            .arg(format!("--pid={pid}"))
            .arg("--nofile=1:256"),
    )
    .unwrap();
    let (start, ticks) = (Instant::now(), cpu_ticks(pid));
    for what in [
        "looking the interface up failed",
        "cannot accept connections",
    ] {
        // The listener tries to accept once the connections it holds pass their deadline.
        wait_for(what, Duration::from_secs(10), || d.logs().contains(what))
            .unwrap_or_else(|e| panic!("{e}:\n{}", d.logs()));
    }
    // A window of backing off (10 ms doubling to 1 s) to measure.
    std::thread::sleep(Duration::from_secs(2));
    let used = (cpu_ticks(pid) - ticks) as f64 / hz as f64 / start.elapsed().as_secs_f64();
    eprintln!("without descriptors: {:.1}% of a core", used * 100.0);
    assert!(
        used < 0.2,
        "without descriptors the daemon used {:.0}% of a core",
        used * 100.0
    );
    checked(
        Command::new("prlimit")
            .arg(format!("--pid={pid}"))
            .arg("--nofile=256:256"),
    )
    .unwrap();
    drop(held);

    wait_for("/metrics to answer again", Duration::from_secs(20), || {
        d.scrape().unwrap().contains(&attached)
    })
    .unwrap_or_else(|e| panic!("{e}:\n{}", d.logs()));
    let logs = d.logs();
    let lines = |what: &str| logs.lines().filter(|l| l.contains(what)).count();
    assert_eq!(lines("looking the interface up failed"), 1, "{logs}");
    assert!(
        logs.contains("Too many open files"),
        "the error says why: {logs}"
    );
    assert_eq!(
        lines("cannot accept connections"),
        1,
        "one line per burst:\n{logs}"
    );
    assert_eq!(lines("interface disappeared"), 0, "{logs}");
    assert_eq!(
        lines("\"attached\""),
        1,
        "attached once, at the start:\n{logs}"
    );
    assert_eq!(lines("interface appeared"), 0, "{logs}");
}
