use leakguard::{object::{PROG_BASELINE_XDP, PROG_XDP}, policy::{Action, KernelPolicy, Rule}};
use leakguard_tests::{guard::Guard, http::browser_get, packet::Frame};
fn main() -> anyhow::Result<()> {
    let p = KernelPolicy { rules: vec![Rule { header: "X-MSISDN".into(), action: Action::Redact, allow: vec![] }], ..KernelPolicy::default() };
    let mut g = Guard::load(&p)?;
    let mut lines24 = String::from("GET / HTTP/1.1\r\n");
    while lines24.len() < 580 { lines24.push_str("Abc: defghijklmnopq\r\n"); }
    lines24.push_str("\r\n");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("minimal", b"GET / HTTP/1.1\r\n\r\n".to_vec()),
        ("1 line 600", format!("GET / HTTP/1.1\r\nCookie: {}\r\n\r\n", "q".repeat(560)).into_bytes()),
        ("12 lines 600", browser_get(600)),
        ("~27 lines 600", lines24.into_bytes()),
        ("body", vec![0x1f; 600]),
    ];
    for (n, pl) in cases {
        let f = Frame::http_v4(&pl).build();
        let mut v = vec![]; let mut b = vec![];
        for _ in 0..7 { b.push(g.time_program(PROG_BASELINE_XDP, false, &f, 200000)?.2.as_nanos()); v.push(g.time_program(PROG_XDP, false, &f, 200000)?.2.as_nanos()); }
        v.sort(); b.sort();
        println!("{n:>14} {} B: {} ns (empty {})", pl.len(), v[3], b[3]);
    }
    Ok(())
}
