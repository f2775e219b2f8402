//! A reload is atomic for every packet: while one thread runs requests through the
//! programs, another alternates two policies that treat two headers oppositely; every
//! request comes out exactly as one policy or the other says, never a mix.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use aya::programs::{TestRun, TestRunOptions, Xdp};
use leakguard::{
    kernel::{
        apply::apply,
        attach, load,
        object::{EBPF_OBJECT, PROG_XDP},
        pins::Pins,
    },
    policy::{Action, KernelPolicy},
};
use leakguard_tests::{
    http::{find, get, MSISDN, UIDH},
    kernel::rule,
    packet::Frame,
};

fn policy(msisdn: Action, uidh: Action) -> KernelPolicy {
    KernelPolicy {
        rules: vec![rule("X-MSISDN", msisdn, &[]), rule("X-UIDH", uidh, &[])],
        ..KernelPolicy::default()
    }
}

#[test]
fn no_packet_sees_a_half_applied_policy() {
    let pins = Pins::new(std::path::Path::new(&format!(
        "/sys/fs/bpf/leakguard-test-reload-{}",
        std::process::id()
    )));
    pins.prepare().unwrap();
    let a = policy(Action::Redact, Action::Count);
    let b = policy(Action::Count, Action::Redact);
    // Two instances of the object over the same pinned maps: one runs packets, the other
    // reloads, truly concurrently.
    let mut writer = load::load(&pins, EBPF_OBJECT).unwrap();
    apply(&mut writer, &a).unwrap();
    let runner = load::load(&pins, EBPF_OBJECT).unwrap();

    // Each run is the next request of one flow (its sequence number past the last one's
    // end): the same segment run again would be a resend, which gets the redactions it
    // got when first sent, whatever the policy is by then.
    let flow = Frame::http_v4(&get(&[
        &format!("X-MSISDN: {MSISDN}"),
        &format!("X-UIDH: {UIDH}"),
    ]));
    let done = Arc::new(AtomicBool::new(false));
    let stop = done.clone();
    let reader = std::thread::spawn(move || {
        let p: &Xdp = runner.program(PROG_XDP).unwrap().try_into().unwrap();
        let (mut as_a, mut as_b, mut mixed) = (0u64, 0u64, 0u64);
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut runs = 0u64;
        while !stop.load(Ordering::Relaxed) && runs < 2_000_000 && Instant::now() < deadline {
            let frame = flow.clone().seq((runs as u32).wrapping_mul(4096)).build();
            let mut out = vec![0u8; frame.len() + 64];
            let r = p
                .test_run(TestRunOptions {
                    data_in: Some(&frame),
                    data_out: Some(&mut out),
                    ..TestRunOptions::default()
                })
                .unwrap();
            out.truncate(r.data_size_out as usize);
            let msisdn = find(&out, MSISDN.as_bytes()).is_some();
            let uidh = find(&out, UIDH.as_bytes()).is_some();
            match (msisdn, uidh) {
                (false, true) => as_a += 1,
                (true, false) => as_b += 1,
                _ => mixed += 1,
            }
            runs += 1;
        }
        (as_a, as_b, mixed)
    });

    // 60 reloads, alternating (each waits out the grace period of the one before).
    for i in 0..60 {
        apply(&mut writer, if i % 2 == 0 { &b } else { &a }).unwrap();
    }
    done.store(true, Ordering::Relaxed);
    let (as_a, as_b, mixed) = reader.join().unwrap();
    drop(writer);
    attach::detach_all(&pins).unwrap();
    println!("{as_a} requests as policy A, {as_b} as policy B, {mixed} mixed");
    assert!(
        as_a > 0 && as_b > 0,
        "both policies were seen: {as_a} / {as_b}"
    );
    assert_eq!(mixed, 0, "a request saw a half-applied policy");
}
