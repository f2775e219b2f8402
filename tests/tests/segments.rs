//! Requests cut into TCP segments: the kernel programs (per-flow state in `FLOWS`) against
//! the reference model, segment by segment. Every cut of a few hand-written requests, then
//! a bounded random sample (seeded; `LEAKGUARD_SEED=N` replays) with multiple cuts,
//! retransmissions (as sent and coalesced), lost segments and sequence-number wrap.

use leakguard::{
    kernel::{
        counters::flow_count,
        load::HINTS_COVER,
        maps::{MAP_FLOWS, MAP_FLOW_HINTS, MAP_LAYOUT},
        pins::Pins,
    },
    policy::{Action, KernelPolicy},
};
use leakguard_common::model::{Kind, ModelFlow, ModelPolicy};
use leakguard_tests::{
    corpus::{destination, model_policy, policy, request, requests, vary_cap, Rng},
    diff::Differ,
    guard::{Guard, Hook},
    http::MSISDN,
    packet::{Frame, SERVER_V4},
};

/// Sends `payload` as the segments between `cuts` (sorted offsets) of one new flow on
/// each hook. `resend` lists (segment index after which to resend, first segment, last
/// segment) for retransmissions; segment `lost` is delivered late, after the next one
/// (which the guard may drop, and TCP then resends). Returns the output per segment (XDP).
#[allow(clippy::too_many_arguments)]
fn send(
    d: &mut Differ,
    pol: &ModelPolicy,
    dst: [u8; 4],
    payload: &[u8],
    cuts: &[usize],
    seq0: u32,
    resend: &[(usize, usize, usize)],
    lost: Option<usize>,
    ctx: &str,
) -> Vec<Vec<u8>> {
    let mut bounds = vec![0];
    bounds.extend(cuts.iter().copied().filter(|&c| c > 0 && c < payload.len()));
    bounds.push(payload.len());
    bounds.dedup();
    let segments = bounds.len() - 1;
    let flow = Frame::http_v4(b"").dst_v4(dst);
    let mut outs = Vec::new();
    for hook in [Hook::Xdp, Hook::TcEgress] {
        let mut model: Option<ModelFlow> = None;
        let seg = |d: &mut Differ, a: usize, b: usize, model: &mut Option<ModelFlow>| {
            let seq = seq0.wrapping_add(a as u32);
            let mut f = flow.clone().seq(seq);
            f.payload = payload[a..b].to_vec();
            let ctx = format!("{ctx}, bytes {a}..{b}");
            d.segment(hook, &f.build(), seq, &payload[a..b], model, pol, &ctx)
        };
        let mut late = None;
        for k in 0..segments {
            if lost == Some(k) && k + 1 < segments {
                late = Some(k);
                continue;
            }
            let mut out = seg(d, bounds[k], bounds[k + 1], &mut model);
            if let Some(l) = late.take() {
                // The missing bytes arrive; a segment dropped for the gap comes again.
                let filled = seg(d, bounds[l], bounds[l + 1], &mut model);
                if filled.drop && filled.kind != Kind::Unordered {
                    break;
                }
                if out.drop && out.kind == Kind::Unordered {
                    out = seg(d, bounds[k], bounds[k + 1], &mut model);
                }
            }
            if hook == Hook::Xdp {
                outs.push(out.payload.clone());
            }
            for &(_, first, last) in resend.iter().filter(|r| r.0 == k) {
                let (a, b) = (bounds[first.min(k)], bounds[last.min(k) + 1]);
                seg(d, a, b, &mut model);
            }
            if out.drop {
                // TCP resends a dropped segment. One dropped by a rule is dropped again;
                // one dropped for a gap may pass once the gap is gone.
                let again = seg(d, bounds[k], bounds[k + 1], &mut model);
                if out.kind != Kind::Unordered {
                    assert!(again.drop, "a resent dropped segment passes: {ctx}");
                }
                break;
            }
        }
    }
    outs
}

/// Hand-written requests: every single cut, and with every cut, the first segment resent.
fn every_cut(msisdn: Action, requests: &[&str]) -> u64 {
    let p = policy(Some(msisdn));
    let mut d = Differ::new(&p);
    let pol = model_policy(&p, SERVER_V4.into());
    for (r, req) in requests.iter().enumerate() {
        for cut in 1..req.len() {
            let ctx = format!("request {r} cut at {cut} ({msisdn:?}): {req:?}");
            let outs = send(
                &mut d,
                &pol,
                SERVER_V4,
                req.as_bytes(),
                &[cut],
                7_000,
                &[(1, 0, 0)],
                None,
                &ctx,
            );
            if msisdn == Action::Redact {
                // Every identity number left (only the ignored header keeps its value).
                let sent = String::from_utf8_lossy(&outs.concat()).into_owned();
                let leaked = sent
                    .lines()
                    .filter(|l| !l.to_ascii_lowercase().starts_with("x-order-id"))
                    .any(|l| l.contains(&MSISDN[2..]) || B64_MIDDLES.iter().any(|m| l.contains(m)));
                assert!(!leaked, "an identity number left unredacted: {ctx}");
            }
        }
        let _ = d.g.events();
    }
    d.runs
}

const REQUESTS: &[&str] = &[
    "GET /a HTTP/1.1\r\nHost: example.com\r\nCookie: c=aaaaaaaaaaaaaaaa\r\nX-MSISDN: 447700900123\r\n\
     X-Phone: +447700900123\r\nX-ACR: acr-1\r\n \tfolded\r\nAccept: */*\r\n\r\n",
    "POST /b HTTP/1.0\nHost: h\nX_Up_Calling_Line_ID:  447700900123  \nContent-Length: 12\n\
     X-Sub:4412345678901234\nX-Tel: 447700900123 \r\n\n",
    "GET / HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nmsisdn: 447700900123\r\nX-Order-Id: 447700900123\r\n\r\n",
    // Numbers in the request target: a query value, a path segment, after an escape.
    "GET /landing?msisdn=447700900123&x=1 HTTP/1.1\r\nHost: h\r\n\r\n",
    "GET /u/%20447700900123/%2B447700900123 HTTP/1.1\r\n\r\n",
    // And in a cookie pair.
    "GET / HTTP/1.1\r\nCookie: sid=abc; msisdn=447700900123; t=%20447700900123\r\nHost: h\r\n\r\n",
    // The hex form: alone, after hex of `uid`, before hex of `@ims`, after hex of `+`.
    "GET /p?uid=343437373030393030313233&h=756964343437373030393030313233 HTTP/1.1\r\n\
     Cookie: s=34343737303039303031323340696d73; t=2b343437373030393030313233\r\n\
     X-Ref: id-343437373030393030313233\r\n\r\n",
    // The base64 form: alone, after `uid`, before `@ims`, after `+` and `x` (the other
    // alignment), in both alphabets.
    "GET /p?uid=NDQ3NzAwOTAwMTIz&h=dWlkNDQ3NzAwOTAwMTIz HTTP/1.1\r\n\
     Cookie: s=NDQ3NzAwOTAwMTIzQGltcw; t=KzQ0NzcwMDkwMDEyMw==\r\n\
     X-Ref: id-eDQ0NzcwMDkwMDEyMw\r\n\r\n",
];

/// Base64 of the number's middle digits (`700900`, `7700900`) at the two alignments of
/// `REQUESTS`' base64 form: never left whole.
const B64_MIDDLES: [&str; 2] = ["NzAwOTAw", "NzcwMDkw"];

#[test]
fn every_cut_of_requests_with_identity_headers_and_numbers() {
    let mut runs = every_cut(Action::Redact, REQUESTS);
    runs += every_cut(Action::Count, &REQUESTS[1..2]);
    runs += every_cut(Action::Count, &REQUESTS[3..]);
    // A drop rule deep in the head: the segment that completes it is dropped.
    runs += every_cut(
        Action::Drop,
        &[
            "GET / HTTP/1.1\r\nHost: h\r\nX-UIDH: OTgxNTk2\r\nX-Phone: 447700900123\r\n\r\n",
            "GET /x?tel=447700900123 HTTP/1.1\r\nHost: h\r\n\r\n",
            "GET / HTTP/1.1\r\nCookie: a=1; m=447700900123\r\n\r\n",
            "GET / HTTP/1.1\r\nCookie: a=1; m=343437373030393030313233\r\n\r\n",
        ],
    );
    println!("{runs} kernel runs matched the model");
}

#[test]
fn random_cuts_retransmissions_and_losses() {
    let (mut rng, seed) = Rng::from_env();
    const FLOWS: usize = 250;
    let mut numbers = 0;
    // Most flow entries tracked at a hint check (the checks saw some).
    let mut tracked = 0;
    for msisdn in [Some(Action::Redact), Some(Action::Drop), None] {
        let mut p: KernelPolicy = policy(msisdn);
        let mut d = Differ::new(&p);
        for case in 0..FLOWS {
            vary_cap(&mut rng, &mut p, &mut d.g, 10, 400);
            let payload = requests(&mut rng);
            let len = payload.len();
            let mut cuts: Vec<usize> = (0..1 + rng.below(6))
                .map(|_| rng.below(len.max(1)))
                .collect();
            cuts.sort_unstable();
            // Retransmissions: a segment resent later, sometimes two coalesced.
            let mut resend = Vec::new();
            for _ in 0..rng.below(3) {
                let after = rng.below(cuts.len() + 1);
                let first = rng.below(after + 1);
                let last = (first + rng.below(2)).min(after);
                resend.push((after, first, last));
            }
            // A lost segment: the next one arrives with a gap.
            let lost = rng.chance(15).then(|| rng.below(cuts.len() + 1));
            let seq0 = if rng.chance(20) {
                u32::MAX - rng.below(600) as u32
            } else {
                rng.next_u64() as u32
            };
            let dst = destination(&mut rng, 20);
            let pol = model_policy(&p, dst.into());
            let ctx = format!(
                "flow {case}, msisdn {msisdn:?}, cuts {cuts:?}, resend {resend:?}, lost {lost:?}, \
                 seq {seq0}, seed {seed}: {payload:?}"
            );
            let before = d.g.stats().unwrap().msisdn_values;
            send(
                &mut d,
                &pol,
                dst,
                payload.as_bytes(),
                &cuts,
                seq0,
                &resend,
                lost,
                &ctx,
            );
            numbers += d.g.stats().unwrap().msisdn_values - before;
            let _ = d.g.events();
            if case % 25 == 24 {
                // Nothing evicted here: every counter is exactly its entries.
                let h = d.g.flow_hints().unwrap();
                assert_eq!(
                    (h.uncovered(), h.inexact()),
                    (0, 0),
                    "flow hints off after {ctx}"
                );
                tracked = tracked.max(h.keys.len());
            }
        }
        println!(
            "{} kernel runs matched the model (msisdn {msisdn:?})",
            d.runs
        );
        let s = d.g.stats().unwrap();
        println!(
            "  continuations {}, retransmissions {}, unordered drops {}, bodies {}, numbers {}",
            s.continuations, s.retransmissions, s.unordered_drops, s.bodies, s.msisdn_values
        );
        assert!(
            s.continuations > 0 && s.retransmissions > 0 && s.unordered_drops > 0,
            "the corpus exercised continuations, retransmissions and gaps"
        );
    }
    assert!(numbers > 0, "the corpus exercised the number check");
    assert!(tracked > 0, "the hint checks saw flow entries");
}

/// A head redacted within one segment (a GSO skb on TC egress, segments GRO merged on
/// the way in), then a part of it resent alone, as TCP does when a wire segment is lost
/// past the hook: the part leaves exactly as it did the first time, its redaction
/// repeated. Resends of 1,448 bytes starting at every 7th offset, on both hooks, with and
/// without the number check, against the model.
#[test]
fn a_part_of_a_head_redacted_in_one_segment_is_redacted_again_when_resent() {
    let req = format!(
        "GET /p HTTP/1.1\r\nHost: a\r\nCookie: s={}\r\nX-MSISDN: {MSISDN}\r\nAccept: */*\r\n\r\n",
        "c".repeat(1_600)
    );
    let req = req.as_bytes();
    let value = req.len() - 30;
    for msisdn in [None, Some(Action::Redact)] {
        let p = policy(msisdn);
        let mut d = Differ::new(&p);
        let pol = model_policy(&p, SERVER_V4.into());
        for hook in [Hook::Xdp, Hook::TcEgress] {
            for start in (1..req.len()).step_by(7).chain(value - 3..value + 3) {
                let ctx = format!("msisdn {msisdn:?}, {hook:?}, resent from {start}");
                let flow = Frame::http_v4(b"");
                let mut model = None;
                let seq0 = 7_000u32;
                let mut whole = flow.clone().seq(seq0);
                whole.payload = req.to_vec();
                let first = d.segment(hook, &whole.build(), seq0, req, &mut model, &pol, &ctx);
                assert!(
                    !first.drop && first.payload != req,
                    "{ctx}: redacted the first time"
                );
                let end = (start + 1_448).min(req.len());
                let seq = seq0.wrapping_add(start as u32);
                let mut part = flow.clone().seq(seq);
                part.payload = req[start..end].to_vec();
                let again = d.segment(
                    hook,
                    &part.build(),
                    seq,
                    &req[start..end],
                    &mut model,
                    &pol,
                    &ctx,
                );
                assert!(!again.drop, "{ctx}: dropped");
                // Not printed: the part may hold the value's digits.
                assert!(
                    again.payload == first.payload[start..end],
                    "{ctx}: the resent part differs from what left the first time"
                );
            }
        }
    }
}

/// More redacted values in one head than a flow remembers (`MAX_SPANS`): resent whole,
/// from its request line, the head is scanned afresh and leaves as it did (a connection
/// whose head had six enrichment headers does not stall on its first retransmission);
/// resent from inside, it is dropped unless every redaction it needs is remembered.
#[test]
fn a_head_with_more_redactions_than_remembered_is_resent_whole_or_dropped() {
    let values: String = (0..leakguard_common::MAX_SPANS + 2)
        .map(|_| format!("X-MSISDN: {MSISDN}\r\n"))
        .collect();
    let req = format!("GET /p HTTP/1.1\r\nHost: a\r\n{values}Accept: */*\r\n\r\n");
    let req = req.as_bytes();
    let p = policy(None);
    let mut d = Differ::new(&p);
    let pol = model_policy(&p, SERVER_V4.into());
    let (mut whole_passed, mut dropped) = (0, 0);
    for hook in [Hook::Xdp, Hook::TcEgress] {
        for start in (0..req.len()).step_by(5) {
            let ctx = format!("{hook:?}, resent from {start}");
            let flow = Frame::http_v4(b"");
            let mut model = None;
            let seq0 = u32::MAX - 40;
            let mut whole = flow.clone().seq(seq0);
            whole.payload = req.to_vec();
            let first = d.segment(hook, &whole.build(), seq0, req, &mut model, &pol, &ctx);
            assert!(
                !first.drop && first.payload != req,
                "{ctx}: redacted the first time"
            );
            let seq = seq0.wrapping_add(start as u32);
            let mut part = flow.clone().seq(seq);
            part.payload = req[start..].to_vec();
            let again = d.segment(
                hook,
                &part.build(),
                seq,
                &req[start..],
                &mut model,
                &pol,
                &ctx,
            );
            if again.drop {
                dropped += 1;
                assert!(start > 0, "{ctx}: the whole head resent is dropped");
            } else {
                // Not printed: the part may hold the value's digits.
                assert!(
                    again.payload == first.payload[start..],
                    "{ctx}: the resent part differs from what left the first time"
                );
                whole_passed += usize::from(start == 0);
            }
        }
    }
    assert_eq!(
        whole_passed, 2,
        "the whole head resent passes on both hooks"
    );
    assert!(
        dropped > 0,
        "resends needing forgotten redactions are dropped"
    );
}

/// Regression (found by the random test): a segment that ends inside a skipped line, after
/// a longer packet left line feeds in the per-CPU scratch buffer past this one's end. The
/// word-at-a-time skip saw such a stale LF and moved the scan backwards.
#[test]
fn stale_scratch_bytes_past_a_segment_are_never_scanned() {
    let p = policy(None);
    let mut d = Differ::new(&p);
    let pol = model_policy(&p, SERVER_V4.into());
    let stale = format!("GET / HTTP/1.1\r\n{}\r\n", "\n \n".repeat(40));
    let req =
        "HEAD /a HTTP/1.1\r\nX-ACR:  OTgxNTk2NzE0ZmFrZXRva2Vu\r\n folded continuation\r\n\r\n";
    for hook in [Hook::Xdp, Hook::TcEgress] {
        let _ =
            d.g.run(hook, &Frame::http_v4(stale.as_bytes()).build())
                .unwrap();
        for cut in [51, 52, 53, 54, 55] {
            let mut model = None;
            let flow = Frame::http_v4(b"");
            for (a, b) in [(0, cut), (cut, req.len())] {
                let mut f = flow.clone().seq(9_000 + a as u32);
                f.payload = req.as_bytes()[a..b].to_vec();
                let ctx = format!("cut {cut}, bytes {a}..{b}");
                d.segment(
                    hook,
                    &f.build(),
                    9_000 + a as u32,
                    &req.as_bytes()[a..b],
                    &mut model,
                    &pol,
                    &ctx,
                );
            }
        }
    }
}

/// The flow table full (more open heads than it holds, so the LRU evicts): heads within
/// one segment still get exactly the model's verdicts and bytes, and a head across two
/// segments of a new flow is still followed.
#[test]
fn a_full_flow_table_keeps_single_segment_heads_exact() {
    let p = policy(Some(Action::Redact));
    let mut d = Differ::new(&p);
    // Open heads on more distinct flows than the table holds.
    let flows = leakguard_common::FLOW_ENTRIES as usize + 4096;
    let open = b"GET / HTTP/1.1\r\nHost: a\r\nCookie: c=1";
    // One template: `Frame::http_v4` draws a fresh source port from a per-process counter
    // that the tests running alongside rely on not to wrap.
    let template = Frame::http_v4(open);
    for i in 0..flows {
        let f = template
            .clone()
            .sport(1024 + (i % 60_000) as u16)
            .dst_v4([203, 0, 113, (i / 60_000) as u8 + 100])
            .build();
        d.g.run(Hook::Xdp, &f).unwrap();
    }
    let t0 = std::time::Instant::now();
    let tracked = flow_count(d.g.ebpf.map(MAP_FLOWS).unwrap()).unwrap();
    // Informational (not a timing assertion): what the metrics gauge costs per scrape tick.
    println!("{tracked} flows tracked, counted in {:?}", t0.elapsed());
    assert!(
        tracked as usize > leakguard_common::FLOW_ENTRIES as usize * 9 / 10,
        "the table is full: {tracked} entries"
    );
    // Evicted entries leave their counters high; no entry is left without one.
    assert_eq!(d.g.flow_hints().unwrap().uncovered(), 0);
    let (mut rng, seed) = Rng::from_env();
    let pol = model_policy(&p, SERVER_V4.into());
    for case in 0..300 {
        let payload = request(&mut rng);
        let bytes = Frame::http_v4(payload.as_bytes()).build();
        let ctx = format!("full table, case {case}, seed {seed}: {payload:?}");
        for hook in [Hook::Xdp, Hook::TcEgress] {
            d.single(hook, &bytes, payload.as_bytes(), &pol, &ctx);
        }
    }
    let req = REQUESTS[0];
    let cut = req.find("X-MSISDN").unwrap() + 4;
    let outs = send(
        &mut d,
        &pol,
        SERVER_V4,
        req.as_bytes(),
        &[cut],
        5_000,
        &[],
        None,
        "full table, two segments",
    );
    assert!(!String::from_utf8_lossy(&outs.concat()).contains(&MSISDN[2..]));
}

/// A head open across a daemon restart, and across a start over a flow table whose hint
/// counters were lost, is continued: the hints kept (restart) or raised over the reused
/// flow table, so the continuation finds its state and its identity values are
/// redacted. Pins of another map layout are refused.
#[test]
fn a_head_open_across_a_restart_is_continued_and_other_layouts_are_refused() {
    /// Removes the pins however the test ends.
    struct Cleanup(std::path::PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let root = format!("/sys/fs/bpf/leakguard-test-hints-{}", std::process::id());
    let pins = Pins::new(std::path::Path::new(&root));
    let _ = std::fs::remove_dir_all(&pins.root);
    let _cleanup = Cleanup(pins.root.clone());
    let p = policy(Some(Action::Redact));
    let req = REQUESTS[0].as_bytes();
    let cut = REQUESTS[0].find("X-MSISDN").unwrap() + 4;
    let digits = &MSISDN[2..];
    assert!(String::from_utf8_lossy(&req[cut..]).contains(digits));
    // Segments of one new flow each (its own source port).
    let open = |g: &mut Guard| {
        let flow = Frame::http_v4(b"").seq(40_000);
        let mut first = flow.clone();
        first.payload = req[..cut].to_vec();
        g.run(Hook::Xdp, &first.build()).unwrap();
        let mut rest = flow.seq(40_000 + cut as u32);
        rest.payload = req[cut..].to_vec();
        rest.build()
    };
    let continued = |g: &mut Guard, rest: &[u8], when: &str| {
        let out = g.run(Hook::Xdp, rest).unwrap().out;
        assert!(
            !String::from_utf8_lossy(&out).contains(digits),
            "the head's continuation was not followed {when}"
        );
    };

    let mut g = Guard::load_pinned(&pins, &p).unwrap();
    let h = g.flow_hints().unwrap();
    assert_eq!(h.mark, HINTS_COVER, "new pins are marked");
    assert!(h.counters.iter().all(|&c| c == 0), "new pins: no counts");
    let a = open(&mut g);
    assert_eq!(g.flow_hints().unwrap().keys.len(), 1);
    drop(g);

    // A restart: the pinned counters are kept as they are.
    let mut g = Guard::load_pinned(&pins, &p).unwrap();
    let h = g.flow_hints().unwrap();
    assert_eq!((h.keys.len(), h.uncovered(), h.inexact()), (1, 0, 0));
    continued(&mut g, &a, "after a restart");
    let b = open(&mut g);
    drop(g);

    // The counters' pin lost (a start that stopped before marking them looks the same):
    // a flow table with an entry, no counter for it.
    std::fs::remove_file(pins.map(MAP_FLOW_HINTS)).unwrap();
    let mut g = Guard::load_pinned(&pins, &p).unwrap();
    let h = g.flow_hints().unwrap();
    assert_eq!(h.mark, HINTS_COVER);
    assert!(h.counters.iter().all(|&c| c >= 1), "every counter raised");
    // The first flow's entry stays too: it remembers its redactions for retransmissions.
    assert_eq!((h.keys.len(), h.uncovered()), (2, 0));
    continued(&mut g, &b, "after a start over counters lost");
    drop(g);

    // Pins from before layout versions (no LAYOUT pin), or of another version.
    let refused = |why: &str| {
        let err = Guard::load_pinned(&pins, &p)
            .err()
            .map(|e| format!("{e:#}"));
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("leakguard detach")),
            "pins {why} are refused, naming the way out: {err:?}"
        );
        assert!(!pins.staging().maps_dir().exists(), "nothing staged");
    };
    let layout = pins.map(MAP_LAYOUT);
    std::fs::remove_file(&layout).unwrap();
    refused("without a layout version");
    std::fs::remove_dir_all(&pins.root).unwrap();
    let g = Guard::load_pinned(&pins, &p).unwrap();
    let m = g.ebpf.map(MAP_LAYOUT).unwrap();
    let v: aya::maps::Array<_, u64> = aya::maps::Array::try_from(m).unwrap();
    assert_eq!(v.get(&0, 0).unwrap(), leakguard_common::MAP_LAYOUT_VERSION);
    drop(g);
    let data = aya::maps::MapData::from_pin(&layout).unwrap();
    let mut v: aya::maps::Array<_, u64> =
        aya::maps::Array::try_from(aya::maps::Map::Array(data)).unwrap();
    v.set(0, leakguard_common::MAP_LAYOUT_VERSION + 1, 0)
        .unwrap();
    refused("of another layout version");
    std::fs::remove_dir_all(&pins.root).unwrap();
}

/// The kernel stores a flow's key a word at a time (`flows::key`), not field by field:
/// the entry of an open head is keyed by exactly the segment's addresses, ports,
/// interface, hook and family, on every hook and both families.
#[test]
fn flow_keys_are_the_segments_fields() {
    use leakguard_common::{FlowKey, FAMILY_IPV4, FAMILY_IPV6};
    use leakguard_tests::{
        guard::TEST_RUN_IFINDEX,
        packet::{Ip, L4},
    };
    let head = b"GET / HTTP/1.1\r\nHost: 203.0.113.80\r\nX-Open: not yet ended";
    for hook in Hook::ALL {
        for frame in [Frame::http_v4(head), Frame::http_v6(head)] {
            let mut g = Guard::pooled(&policy(Some(Action::Count))).unwrap();
            g.run(hook, &frame.build()).unwrap();
            let mut want = FlowKey {
                ifindex: TEST_RUN_IFINDEX,
                hook: hook.id(),
                ..FlowKey::default()
            };
            match frame.ip {
                Ip::V4 { src, dst, .. } => {
                    want.saddr[..4].copy_from_slice(&src);
                    want.daddr[..4].copy_from_slice(&dst);
                    want.family = FAMILY_IPV4;
                }
                Ip::V6 { src, dst, .. } => {
                    (want.saddr, want.daddr) = (src, dst);
                    want.family = FAMILY_IPV6;
                }
            }
            let L4::Tcp { sport, dport, .. } = frame.l4 else {
                unreachable!("a TCP frame")
            };
            (want.sport, want.dport) = (sport, dport);
            assert_eq!(g.flow_hints().unwrap().keys, [want], "{hook:?}");
        }
    }
}
