//! The pool the kernel tests share loaded guards through (`Guard::pooled`): a guard reset
//! after any use must be a freshly loaded one, map for map and verdict for verdict, or one
//! test's leftovers (a flow entry, a counter, a rule id) would decide the next test's
//! result by the order they ran in.

use std::collections::BTreeMap;

use aya::programs::Xdp;
use leakguard::{
    kernel::{
        maps::{
            MAP_ALLOW_V4, MAP_FLOWS, MAP_IFSLOT, MAP_MATCHES, MAP_MATCH_COUNTS, MAP_RULES,
            MAP_RULE_COUNTERS, MAP_STATS,
        },
        object::PROG_XDP,
    },
    policy::Action,
};
use leakguard_tests::{
    corpus::{self, Rng},
    cpu,
    guard::{Guard, Hook, TEST_RUN_IFINDEX},
    kernel,
    packet::Frame,
    rawmap::Dump,
};

/// Frames of `n` random request heads, each whole and cut in two segments of one flow
/// (the first half leaves an entry in the flow table).
fn frames(rng: &mut Rng, n: u16) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for i in 0..n {
        let head = corpus::requests(rng).into_bytes();
        let cut = head.len() / 2;
        let seq0 = 1000;
        out.push(Frame::http_v4(&head).build());
        out.push(
            Frame::http_v4(&head[..cut])
                .sport(42000 + i)
                .seq(seq0)
                .build(),
        );
        out.push(
            Frame::http_v4(&head[cut..])
                .sport(42000 + i)
                .seq(seq0 + cut as u32)
                .build(),
        );
    }
    out
}

/// Every frame on every hook: (hook, verdict, output) in order.
fn run_all(g: &mut Guard, frames: &[Vec<u8>]) -> Vec<(Hook, String, Vec<u8>)> {
    let mut out = Vec::new();
    for hook in Hook::ALL {
        for f in frames {
            let r = g.run(hook, f).unwrap();
            out.push((hook, format!("{:?}", r.verdict), r.out));
        }
    }
    out
}

/// The maps whose bytes differ between two dumps (names only: values may be identities).
fn differing(a: &BTreeMap<String, Dump>, b: &BTreeMap<String, Dump>) -> Vec<String> {
    let names: std::collections::BTreeSet<_> = a.keys().chain(b.keys()).collect();
    names
        .into_iter()
        .filter(|n| a.get(*n) != b.get(*n))
        .cloned()
        .collect()
}

/// Maps with a byte that is not zero, or a key.
fn written(d: &BTreeMap<String, Dump>) -> Vec<&str> {
    d.iter()
        .filter(|(_, e)| e.iter().any(|(_, v)| v.iter().any(|&b| b != 0)))
        .map(|(n, _)| n.as_str())
        .collect()
}

#[test]
fn a_reset_guard_is_a_freshly_loaded_one() {
    // Per-CPU maps are compared byte for byte, slot by slot.
    cpu::pin_here().unwrap();
    let mut rng = Rng(0x9e37_79b9);
    let traffic = frames(&mut rng, 24);

    // A guard used under two other policies, so that both policy generations hold rules,
    // allowlists and options, and the generation in use is 0 (where the next policy's
    // rule ids are read from); traffic with no counter slot (the hash counters) and with
    // one, flows left open.
    let mut used = Guard::load(&corpus::policy(Some(Action::Drop))).unwrap();
    run_all(&mut used, &traffic);
    used.set_policy(&corpus::policy(Some(Action::Count)))
        .unwrap();
    used.give_slot(TEST_RUN_IFINDEX, 3).unwrap();
    run_all(&mut used, &traffic);
    let dirty = used.dump().unwrap();
    let dirty_maps = written(&dirty);
    for m in [
        MAP_FLOWS,
        MAP_IFSLOT,
        MAP_MATCHES,
        MAP_MATCH_COUNTS,
        MAP_RULE_COUNTERS,
        MAP_STATS,
        MAP_RULES[0],
        MAP_RULES[1],
        MAP_ALLOW_V4[0],
        MAP_ALLOW_V4[1],
    ] {
        assert!(
            dirty_maps.contains(&m),
            "the traffic must write {m} for this test to mean anything (written: \
             {dirty_maps:?})"
        );
    }

    let p = kernel::policy();
    used.reset(&p).unwrap();
    assert!(
        used.events().unwrap().is_empty(),
        "the reset drains the events"
    );
    let mut fresh = Guard::load(&p).unwrap();
    let (a, b) = (used.dump().unwrap(), fresh.dump().unwrap());
    assert!(
        a.len() > 10,
        "every map but the event ring is compared ({})",
        a.len()
    );
    assert_eq!(
        differing(&a, &b),
        Vec::<String>::new(),
        "maps of the reset guard that differ from a fresh one's"
    );

    // And they stay the same through the same traffic: verdicts, bytes, maps, events.
    let (ra, rb) = (run_all(&mut used, &traffic), run_all(&mut fresh, &traffic));
    let first = ra.iter().zip(&rb).position(|(x, y)| x != y);
    assert_eq!(
        first, None,
        "the first frame the two guards treat differently"
    );
    assert_eq!(
        differing(&used.dump().unwrap(), &fresh.dump().unwrap()),
        Vec::<String>::new(),
        "maps that differ after the same traffic"
    );
    assert_eq!(used.events().unwrap(), fresh.events().unwrap());
}

/// The pool hands a returned guard out again (the same loaded programs), reset to the
/// policy asked for. Only this test takes from this file's pool.
#[test]
fn the_pool_reuses_a_returned_guard_reset() {
    let xdp_id = |g: &Guard| {
        let p: &Xdp = g.ebpf.program(PROG_XDP).unwrap().try_into().unwrap();
        p.info().unwrap().id()
    };
    let mut g = Guard::pooled(&corpus::policy(Some(Action::Count))).unwrap();
    let id = xdp_id(&g);
    g.give_slot(TEST_RUN_IFINDEX, 2).unwrap();
    drop(g);
    let g = Guard::pooled(&kernel::policy()).unwrap();
    assert_eq!(xdp_id(&g), id, "the returned guard, not a new load");
    let ifslot = g.dump().unwrap().remove(MAP_IFSLOT).unwrap();
    assert!(
        ifslot.iter().all(|(_, v)| v.iter().all(|&b| b == 0)),
        "the slot given before is gone"
    );
}
