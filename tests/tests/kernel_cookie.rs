//! The kernel programs under `BPF_PROG_TEST_RUN`: identity numbers in `Cookie` values
//! (`[msisdn]` with `cookies` on).

use leakguard::policy::{Action, KernelPolicy};
use leakguard_tests::{
    corpus::number_check,
    guard::{Guard, Hook},
    http::find,
    packet::Frame,
};

fn guard(action: Action, cookies: bool) -> Guard {
    let mut m = number_check(action);
    m.prefixes = vec!["44".into(), "447".into()];
    m.cookies = cookies;
    m.allow = vec!["198.51.100.0/24".parse().unwrap()];
    let p = KernelPolicy {
        msisdn: Some(m),
        ..KernelPolicy::default()
    };
    Guard::load(&p).unwrap()
}

#[test]
fn dbg() {
    let mut g = guard(Action::Redact, true);
    for lead in [0usize, 10, 300] {
        let req = format!("GET / HTTP/1.1\r\nCookie: sid={}; 447700900123\r\n\r\n", "z".repeat(lead));
        let r = g.run(Hook::Xdp, &Frame::http_v4(req.as_bytes()).build()).unwrap();
        let at = find(&r.out, b"GET").unwrap();
        println!("{lead}: {:?}", String::from_utf8_lossy(&r.out[at + 16..at + 40]));
        println!("   tail {:?}", String::from_utf8_lossy(&r.out[r.out.len() - 20..]));
    }
}
