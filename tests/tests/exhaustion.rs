//! Flow-table exhaustion: a million distinct flows each leave a head open (the only
//! thing that takes an entry in `FLOWS`), many times what the table holds. Throughout, a
//! head in one segment — the common case, which needs no entry — is still handled exactly
//! as the model says; when the flood is over, the table is full, not overflowing, and the
//! heads opened last are still followed into their next segment. (The oldest are not:
//! their entries were evicted. docs/testing.md, Reliability, states the limit.)

use leakguard::kernel::{counters::flow_count, maps::MAP_FLOWS};
use leakguard_common::FLOW_ENTRIES;
use leakguard_tests::{
    corpus::{model_policy, policy, request, Rng},
    diff::Differ,
    guard::{Hook, Verdict},
    http::{find, MSISDN},
    packet::{subscriber_endpoint, tcp_payload, Frame, SEQ, SERVER_V4},
};

/// Flows opened by the flood.
const FLOWS: u32 = 1_000_000;
/// A one-segment head is checked against the model every this many flows.
const CHECK_EVERY: u32 = 1_000;
/// The open head every flood flow leaves: cut inside the identity header's value.
const OPEN: &[u8] = b"GET / HTTP/1.1\r\nHost: www.example.com\r\nX-MSISDN: 4477";
const REST: &[u8] = b"00900123\r\n\r\n";

/// The flood's frames are one template with the address and port patched in (building
/// a million frames from scratch would dominate the run). XDP does not check the IPv4
/// header checksum, and the guard adjusts the TCP checksum incrementally either way.
fn patch(template: &mut [u8], n: u32) {
    let (src, sport) = subscriber_endpoint(u64::from(n));
    template[26..30].copy_from_slice(&src);
    template[34..36].copy_from_slice(&sport.to_be_bytes());
}

#[test]
fn a_million_flows_leave_one_segment_heads_exact_and_recent_heads_followed() {
    let (mut rng, seed) = Rng::from_env();
    let p = policy(Some(leakguard::policy::Action::Redact));
    let pol = model_policy(&p, SERVER_V4.into());
    let mut d = Differ::new(&p);
    let mut template = Frame::http_v4(OPEN).build();
    let mut checked = 0u32;
    for n in 0..FLOWS {
        patch(&mut template, n);
        let r = d.g.run(Hook::Xdp, &template).unwrap();
        assert_eq!(r.verdict, Verdict::Pass, "flood flow {n}");
        if n % CHECK_EVERY == CHECK_EVERY - 1 {
            // A head in one segment on a flow of its own (outside the flood's range).
            let payload = request(&mut rng);
            let (src, sport) = subscriber_endpoint(u64::from(FLOWS + n / CHECK_EVERY));
            let frame = Frame::http_v4(payload.as_bytes())
                .src_v4(src)
                .sport(sport)
                .build();
            let ctx = format!("after {n} flood flows, seed {seed}: {payload:?}");
            d.single(Hook::Xdp, &frame, payload.as_bytes(), &pol, &ctx);
            checked += 1;
            // The match log is drained as the daemon would.
            let _ = d.g.events();
        }
    }
    let tracked = flow_count(d.g.ebpf.map(MAP_FLOWS).unwrap()).unwrap();
    println!(
        "{FLOWS} flows opened, {checked} one-segment heads matched the model, {tracked} \
         flows tracked (table of {FLOW_ENTRIES})"
    );
    assert_eq!(checked, FLOWS / CHECK_EVERY);
    // Full (per-CPU LRU lists may hold back a few entries), never more.
    assert!(tracked <= u64::from(FLOW_ENTRIES), "{tracked} entries");
    assert!(
        tracked >= u64::from(FLOW_ENTRIES) * 9 / 10,
        "the flood should fill the table: {tracked}"
    );

    // The most recent heads are still followed: their rest is redacted.
    let mut rest = Frame::http_v4(REST).seq(SEQ + OPEN.len() as u32).build();
    for n in FLOWS - 1_000..FLOWS {
        patch(&mut rest, n);
        let r = d.g.run(Hook::Xdp, &rest).unwrap();
        assert_eq!(r.verdict, Verdict::Pass);
        let out = tcp_payload(&r.out).unwrap();
        assert!(
            find(&out, &MSISDN.as_bytes()[4..]).is_none(),
            "flow {n}: the rest of an open head passed unredacted"
        );
    }
    // The limit, measured for docs/testing.md: the rest of a head whose entry the flood
    // evicted has no state to be read by, and passes as a body.
    let evicted_followed = (0..1_000)
        .filter(|&n| {
            patch(&mut rest, n);
            let out = tcp_payload(&d.g.run(Hook::Xdp, &rest).unwrap().out).unwrap();
            find(&out, &MSISDN.as_bytes()[4..]).is_none()
        })
        .count();
    println!("of the 1,000 oldest open heads, {evicted_followed} were still followed");
}
