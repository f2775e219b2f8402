//! The kernel programs under `BPF_PROG_TEST_RUN` (see `leakguard_tests::kernel`): what
//! they report. The global counters; match counters in an interface's slot or in the
//! hash; events, which name the match and never carry a value, and a full event ring.

use leakguard::policy::Action;
use leakguard_common::{action, hook, Event, FAMILY_IPV4, FAMILY_IPV6};
use leakguard_tests::{
    guard::{Guard, Hook, Verdict, TEST_RUN_IFINDEX},
    http::{find, get, ACR, MSISDN, VALUES},
    kernel::{count_rules, load, policy, R_ACR, R_MSISDN},
    packet::{arp, Frame, CLIENT_V4, SERVER_V4, TRUSTED_V6},
};

/// Global counters: packets, TCP to an HTTP port, heads, lines, bytes.
#[test]
fn global_counters() {
    let req = get(&[&format!("X-ACR: {ACR}"), "X-Other: 1"]);
    let mut g = load();
    g.run(Hook::Xdp, &Frame::http_v4(&req).build()).unwrap();
    g.run(Hook::TcEgress, &arp()).unwrap();
    let s = g.stats().unwrap();
    assert_eq!(s.packets, 2);
    assert_eq!(s.tcp_http, 1);
    assert_eq!(s.heads, 1);
    // Host, User-Agent, X-ACR, X-Other, Accept.
    assert_eq!(s.lines, 5);
    // The scan stops at the first byte after the head (here: the segment's end).
    assert_eq!(s.bytes, req.len() as u64);
    assert_eq!(s.errors, 0);
}

/// Events name where and what matched, and never carry a byte of the value.
#[test]
fn events_describe_the_match_without_the_value() {
    let mut g = load();
    let req = get(&[&format!("X-MSISDN: {MSISDN}"), &format!("X-ACR: {ACR}")]);
    g.run(Hook::Xdp, &Frame::http_v4(&req).sport(40000).build())
        .unwrap();
    g.run(
        Hook::TcEgress,
        &Frame::http_v6(&req).dst_v6(TRUSTED_V6).build(),
    )
    .unwrap();
    let events = g.events().unwrap();
    assert_eq!(events.len(), 4);
    let e: &Event = &events[0];
    assert_eq!(
        (e.rule_id, e.action, e.hook, e.family),
        (R_MSISDN, action::REDACT, hook::XDP, FAMILY_IPV4)
    );
    assert_eq!(&e.saddr[..4], &CLIENT_V4);
    assert_eq!(&e.daddr[..4], &SERVER_V4);
    assert_eq!((e.sport, e.dport), (40000, 80));
    assert_eq!(
        e.name_len, 0,
        "a rule's event names its header by the rule id only"
    );
    assert_eq!(
        (events[1].rule_id, events[1].action),
        (R_ACR, action::COUNT)
    );
    let v6 = &events[2];
    assert_eq!(
        (v6.rule_id, v6.action, v6.hook, v6.family),
        (R_MSISDN, action::ALLOW, hook::TC_EGRESS, FAMILY_IPV6)
    );
    assert_eq!(v6.daddr, TRUSTED_V6);
    for ev in &events {
        // SAFETY: Event is plain old data.
        let bytes = unsafe {
            std::slice::from_raw_parts(std::ptr::from_ref(ev).cast::<u8>(), size_of::<Event>())
        };
        for v in VALUES {
            assert!(
                find(bytes, v.as_bytes()).is_none(),
                "an event carries a value"
            );
            assert!(
                find(bytes, &v.as_bytes()[..6]).is_none(),
                "an event carries part of a value"
            );
        }
    }
}

/// Match counters: in the interface's `MATCH_COUNTS` slot for rule ids below
/// `MATCH_ARRAY_RULES` once the interface has a slot; in the `MATCHES` hash otherwise.
#[test]
fn match_counters_by_slot_and_in_the_hash() {
    let high = leakguard_common::MATCH_ARRAY_RULES as usize;
    let names: Vec<String> = (0..=high).map(|i| format!("X-Rule-{i}")).collect();
    let mut g = Guard::pooled(&count_rules(&names)).unwrap();
    let frame = Frame::http_v4(&get(&["X-Rule-0: 1", &format!("X-Rule-{high}: 1")])).build();
    let run_all = |g: &mut Guard| {
        for hook in Hook::ALL {
            assert_eq!(g.run(hook, &frame).unwrap().verdict, Verdict::Pass);
        }
    };
    const SLOT: u32 = 5;
    let count = action::COUNT;
    run_all(&mut g);
    let events = g.events().unwrap();
    assert_eq!(events.len(), 6);
    assert!(events.iter().all(|e| e.ifindex == TEST_RUN_IFINDEX));
    let mut want_hash: Vec<_> = Hook::ALL
        .iter()
        .flat_map(|h| {
            [
                ((TEST_RUN_IFINDEX, h.id(), 0, count), 1),
                ((TEST_RUN_IFINDEX, h.id(), high as u32, count), 1),
            ]
        })
        .collect();
    want_hash.sort();
    let mut hash = g.match_hash().unwrap();
    hash.sort();
    assert_eq!(hash, want_hash, "no slot: every match in the hash");
    assert_eq!(g.match_array(SLOT).unwrap(), vec![]);

    g.give_slot(TEST_RUN_IFINDEX, SLOT).unwrap();
    run_all(&mut g);
    let mut array = g.match_array(SLOT).unwrap();
    array.sort();
    let mut want_array: Vec<_> = Hook::ALL.iter().map(|h| ((h.id(), 0, count), 1)).collect();
    want_array.sort();
    assert_eq!(array, want_array, "with a slot: rule 0 in the array");
    let mut hash = g.match_hash().unwrap();
    hash.sort();
    for ((k, n), (wk, wn)) in hash.iter().zip(&want_hash) {
        assert_eq!(k, wk);
        let moved = k.2 == high as u32;
        assert_eq!(
            *n,
            wn + u64::from(moved),
            "{k:?}: only the high rule id still in the hash"
        );
    }
    assert_eq!(
        g.match_array(SLOT + 1).unwrap(),
        vec![],
        "other slots untouched"
    );
}

/// A full event ring drops events, counts each dropped one, and never a counter: every
/// match is counted whether or not its event fit. Draining makes room again.
#[test]
fn a_full_event_ring_loses_events_not_counts() {
    let mut g = load();
    let frame = Frame::http_v4(&get(&[&format!("X-ACR: {ACR}")])).build();
    // Record size: an 8-byte header and a rule's event (the head), 8-aligned.
    let record = (8 + leakguard_common::EVENT_HEAD_BYTES).next_multiple_of(8);
    let capacity = leakguard_common::EVENT_RING_BYTES as usize / record;
    let runs = capacity + 100;
    for _ in 0..runs {
        assert_eq!(g.run(Hook::Xdp, &frame).unwrap().verdict, Verdict::Pass);
    }
    assert_eq!(g.count(R_ACR, action::COUNT).unwrap(), runs as u64);
    let s = g.stats().unwrap();
    let delivered = g.events().unwrap().len();
    assert_eq!(delivered as u64 + s.events_lost, runs as u64);
    assert!(
        (capacity - 1..=capacity).contains(&delivered),
        "the ring holds {capacity} events; {delivered} delivered"
    );
    // Drained: the next event fits.
    g.run(Hook::Xdp, &frame).unwrap();
    assert_eq!(g.events().unwrap().len(), 1);
    assert_eq!(g.stats().unwrap().events_lost, s.events_lost);
}

/// A rule's match sends the event head (the rule id names the header); a match of the
/// identity-number check sends the header name the number came under. Neither carries
/// any of the value.
#[test]
fn number_events_carry_the_header_name_rule_events_do_not() {
    let mut p = policy();
    p.msisdn = Some(leakguard_tests::corpus::number_check(Action::Redact));
    let mut g = Guard::pooled(&p).unwrap();
    let req = get(&[
        &format!("X-ACR: {ACR}"),
        &format!("X_Subscriber_No: {MSISDN}"),
    ]);
    g.run(Hook::TcEgress, &Frame::http_v4(&req).build())
        .unwrap();
    let events = g.events().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!((events[0].rule_id, events[0].name_len), (R_ACR, 0));
    assert_eq!(events[0].name.name, [0; leakguard_common::MAX_NAME_LEN]);
    let n = &events[1];
    assert_eq!(n.rule_id, leakguard_common::MSISDN_RULE_ID);
    assert_eq!(n.action, action::REDACT);
    assert_eq!(&n.name.name[..n.name_len as usize], b"x-subscriber-no");
    assert!(n.name.name[n.name_len as usize..].iter().all(|&b| b == 0));
}
