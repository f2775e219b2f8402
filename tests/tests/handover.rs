//! An upgrade to a release whose maps have another layout, with traffic: the real daemon
//! (TCX egress, `redact`) is stopped, its pinned maps marked as another layout's (what
//! pins of an older release look like to this one), a half-made handover left behind as a
//! killed daemon would, and the daemon started again. It must hand the guard over without
//! a gap: continuous requests carry identity headers all along, and a head left open
//! across the switch must not get its rest out.

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{Arc, Mutex},
    time::Duration,
};

use aya::maps::{Array, Map, MapData};
use leakguard::kernel::maps::MAP_LAYOUT;
use leakguard_common::MAP_LAYOUT_VERSION;
use leakguard_tests::{
    daemon::{wait_for, Daemon, Launch},
    http::{every_third_cut, find, MSISDN, UIDH, VALUES},
    load::Load,
    server::HttpServer,
    topo::{topo, CLI_IF, SRV_V4},
};

/// How long any one step may take.
const STEP: Duration = Duration::from_secs(60);

fn policy(netns: &str) -> String {
    format!(
        "[[attach]]\ninterface = \"{CLI_IF}\"\nhook = \"tc-egress\"\nnetns = \"{netns}\"\n\n\
         [[rule]]\nheader = \"X-MSISDN\"\naction = \"redact\"\n\n\
         [[rule]]\nheader = \"X-UIDH\"\naction = \"redact\"\n"
    )
}

/// Request `n`, its head cut every third time (`every_third_cut`): heads open across
/// segments meet the switch too.
fn request(n: u64) -> Vec<Vec<u8>> {
    let head = format!(
        "GET /r/{n} HTTP/1.1\r\nHost: www.example.com\r\nX-MSISDN: {MSISDN}\r\nX-UIDH: {UIDH}\r\n\r\n"
    )
    .into_bytes();
    every_third_cut(n, head)
}

fn pinned_layout(d: &Daemon) -> u64 {
    let data = MapData::from_pin(d.pin_path.join("maps").join(MAP_LAYOUT)).unwrap();
    let layout: Array<MapData, u64> = Array::try_from(Map::Array(data)).unwrap();
    layout.get(&0, 0).unwrap()
}

fn set_pinned_layout(d: &Daemon, v: u64) {
    let data = MapData::from_pin(d.pin_path.join("maps").join(MAP_LAYOUT)).unwrap();
    let mut layout: Array<MapData, u64> = Array::try_from(Map::Array(data)).unwrap();
    layout.set(0, v, 0).unwrap();
}

/// A listener in the server's namespace that keeps every byte of one connection, however
/// long it takes (the recording server gives up on a head after 5 s).
fn raw_listener(t: &leakguard_tests::topo::Topo, addr: SocketAddr) -> Arc<Mutex<Vec<u8>>> {
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    let listener = t.srv.enter(|| TcpListener::bind(addr)).unwrap().unwrap();
    std::thread::spawn(move || {
        let Ok((mut s, _)) = listener.accept() else {
            return;
        };
        let _ = s.set_read_timeout(Some(STEP * 3));
        let mut buf = [0u8; 4096];
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            g.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    got
}

/// "not seen whole N" of `leakguard status`.
fn not_seen_whole(d: &Daemon) -> u64 {
    let report = d.cli_ok("status").unwrap();
    let at = report.find("not seen whole ").unwrap() + "not seen whole ".len();
    report[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn an_upgrade_to_another_map_layout_hands_over_without_a_gap() {
    let t = topo();
    let srv = SocketAddr::new(SRV_V4.parse().unwrap(), 80);
    let server = HttpServer::start(&t.srv, srv).unwrap();
    let ns = t.cli.name.clone();
    let mut d = Daemon::new(&t.cli, &policy(&ns)).unwrap();
    d.launch = Launch::Host;
    d.start().unwrap();
    assert_eq!(pinned_layout(&d), MAP_LAYOUT_VERSION);
    let mut load = Load::start(
        &t.cli,
        srv,
        4,
        200_000,
        Duration::from_secs(300),
        Arc::new(request),
    )
    .unwrap();
    load.wait_more(500, STEP).unwrap();

    // A head left open: its first part through the old programs, the identity header
    // after the switch.
    let open_addr = SocketAddr::new(SRV_V4.parse().unwrap(), 8080);
    let got = raw_listener(&t, open_addr);
    let mut open = t
        .cli
        .enter(|| TcpStream::connect(open_addr))
        .unwrap()
        .unwrap();
    open.set_nodelay(true).unwrap();
    let first = b"GET /open HTTP/1.1\r\nHost: www.example.com\r\n";
    open.write_all(first).unwrap();
    wait_for("the head's first part at the server", STEP, || {
        got.lock().unwrap().len() == first.len()
    })
    .unwrap();

    // The upgrade: pins that look like another release's, and what a daemon killed half
    // way through a handover leaves.
    d.stop().unwrap();
    set_pinned_layout(&d, MAP_LAYOUT_VERSION - 1);
    std::fs::create_dir(d.pin_path.join("maps-next")).unwrap();
    load.wait_more(200, STEP).unwrap();
    d.start().unwrap();
    let logs = d.logs();
    assert!(logs.contains("starting it again"), "{logs}");
    assert!(logs.contains("handed the guard over"), "{logs}");
    assert!(logs.contains("\"open_heads\":"), "{logs}");
    assert_eq!(
        pinned_layout(&d),
        MAP_LAYOUT_VERSION,
        "the new maps are pinned"
    );
    for gone in ["maps-next", "maps-old"] {
        assert!(!d.pin_path.join(gone).exists(), "{gone} left behind");
    }

    // The open head's rest meets `incomplete_heads = "drop"`: its segment, and every
    // resend of it, is dropped.
    let before = not_seen_whole(&d);
    open.write_all(format!("X-MSISDN: {MSISDN}\r\n\r\n").as_bytes())
        .unwrap();
    wait_for(
        "the open head's rest dropped as not seen whole",
        STEP,
        || not_seen_whole(&d) > before,
    )
    .unwrap();
    load.wait_more(1_000, STEP).unwrap();
    let raw = got.lock().unwrap().clone();
    assert_eq!(raw, first, "only the part before the switch arrived");
    drop(open);

    load.stop().unwrap();
    let heads = server.heads();
    let leaked = heads
        .iter()
        .filter(|h| VALUES.iter().any(|v| find(h, v.as_bytes()).is_some()))
        .count();
    println!(
        "{} requests answered, {} heads at the server, {leaked} with a value",
        load.ok(),
        heads.len()
    );
    assert_eq!(
        leaked, 0,
        "requests reached the server with an identity value"
    );
    let logs = d.logs();
    assert!(!logs.contains("self-test failed"), "{logs}");
    for v in VALUES {
        assert!(
            !logs.contains(v),
            "the daemon's logs carry an identity value"
        );
    }
    // The guard enforces with the new maps: the daemon's counters (from them) moved.
    let report = d.cli_ok("status").unwrap();
    assert!(report.contains("policy digest"), "{report}");
    assert!(d.stop().unwrap().success());
}
