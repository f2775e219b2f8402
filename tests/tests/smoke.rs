//! The daemon on the running kernel, end to end, as an operator runs it: this file is
//! part of every test run, and the kernel matrix (`cargo xtask test`) runs it again on
//! Debian 12's 6.1 and 6.12 kernels, where TC attaches through cls_bpf instead of TCX.
//!
//! Attach TC egress and XDP, self-test passing; SIGKILL, and a request is still redacted;
//! a restart adopts what is attached (the same TCX link or cls_bpf filter, a new program
//! in it, no second copy); `detach` removes everything it added, and the next request
//! arrives as sent.

use std::{net::SocketAddr, time::Duration};

use aya::programs::{SchedClassifier, TcAttachType};
use leakguard::kernel::{
    features::{tc_mode, TcMode},
    object::PROG_TC_EGRESS,
    tc_filter,
};
use leakguard_tests::{
    daemon::{wait_for, Daemon},
    http::{find, MSISDN},
    server::HttpServer,
    topo::{curl, topo, Topo, CLI_IF, SRV_V4},
};

const METRICS: &str = "127.0.0.1:9719";

fn policy() -> String {
    format!(
        "[[attach]]\ninterface = \"{CLI_IF}\"\nhook = \"tc-egress\"\n\n\
         [[attach]]\ninterface = \"{CLI_IF}\"\nhook = \"xdp\"\n\n\
         [[rule]]\nheader = \"X-MSISDN\"\naction = \"redact\"\n"
    )
}

/// Sends request `n` with the number; true when the server received it in clear.
fn leaks(t: &Topo, server: &HttpServer, n: usize) -> bool {
    let before = server.heads().len();
    let st = curl(
        &t.cli,
        &format!("http://{SRV_V4}/{n}"),
        &[format!("X-MSISDN: {MSISDN}")],
        20,
    );
    assert!(st.success(), "request {n}: curl {st}");
    let heads = server.heads();
    assert_eq!(
        heads.len(),
        before + 1,
        "request {n} reached the server once"
    );
    find(heads.last().unwrap(), MSISDN.as_bytes()).is_some()
}

/// The guard's TC attachment on the client interface as the kernel lists it: an identity
/// that a restart must keep (TCX: the only program in the chain; cls_bpf: priority and
/// handle) and the id of the program it runs. Panics unless there is exactly one.
fn tc_attachment(t: &Topo) -> (String, u32) {
    t.cli
        .enter(|| match tc_mode() {
            TcMode::Tcx => {
                let (_, progs) =
                    SchedClassifier::query_tcx(CLI_IF, TcAttachType::Egress).expect("query TCX");
                assert_eq!(progs.len(), 1, "one TCX program on {CLI_IF}");
                let p = &progs[0];
                assert_eq!(
                    p.name_as_str(),
                    Some(&PROG_TC_EGRESS[..15]),
                    "the guard's program (names are cut at 15 bytes)"
                );
                ("tcx".to_owned(), p.id())
            }
            TcMode::Netlink => {
                let ifindex = leakguard::kernel::attach::interface_index(CLI_IF)
                    .unwrap()
                    .unwrap();
                let all =
                    tc_filter::filters(ifindex, tc_filter::parent(TcAttachType::Egress)).unwrap();
                let ours: Vec<_> = all.iter().filter(|f| f.is_ours()).collect();
                assert_eq!(ours.len(), 1, "one leakguard filter: {all:?}");
                let (name, id) = ours[0].program.clone().expect("a bpf filter's program");
                assert_eq!(name, PROG_TC_EGRESS);
                (
                    format!(
                        "cls_bpf prio {} handle {:#x}",
                        ours[0].priority, ours[0].handle
                    ),
                    id,
                )
            }
        })
        .unwrap()
}

#[test]
fn daemon_attaches_survives_sigkill_adopts_and_detaches() {
    let t = topo();
    let server = HttpServer::start(&t.srv, SocketAddr::new(SRV_V4.parse().unwrap(), 80)).unwrap();
    let mut d = Daemon::new(&t.cli, &policy())
        .unwrap()
        .with_metrics(METRICS)
        .unwrap();
    d.start().unwrap();
    let logs = d.logs();
    for hook in ["tc-egress", "xdp"] {
        assert!(
            logs.contains(&format!("\"hook\":\"{hook}\"")) && logs.contains("\"attached\""),
            "{hook} attached:\n{logs}"
        );
    }
    wait_for("the first self-test", Duration::from_secs(10), || {
        d.scrape().unwrap().contains("leakguard_selftest_ok 1")
    })
    .unwrap();
    assert!(!leaks(&t, &server, 1), "redacted with the daemon running");
    let (kind, first) = tc_attachment(&t);

    // The daemon dies: the guard stays.
    d.kill();
    assert!(!leaks(&t, &server, 2), "redacted with the daemon killed");
    let report = d.cli_ok("status").unwrap();
    assert!(
        report.contains(&format!("{CLI_IF:<16} tc-egress")),
        "{report}"
    );
    assert!(report.contains(&format!("{CLI_IF:<16} xdp")), "{report}");

    // A restart adopts: the same attachment, this run's program in it, no second one.
    d.start().unwrap();
    let logs = d.logs();
    assert!(logs.contains("adopted the"), "{logs}");
    let (kind_after, second) = tc_attachment(&t);
    assert_eq!(kind_after, kind, "the same attachment after the restart");
    assert_ne!(second, first, "the restarted daemon's program runs in it");
    assert!(!leaks(&t, &server, 3), "redacted after the restart");
    assert!(
        !logs.contains("\"level\":\"ERROR\""),
        "no error logged:\n{logs}"
    );

    // detach removes what leakguard added, and only the guard kept the number out. Run
    // where the interface lives, as for the daemon: a cls_bpf filter is reached through
    // its interface's network namespace.
    d.kill();
    let out = d.cli_in_netns("detach").unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        leaks(&t, &server, 4),
        "after detach the request arrives as sent"
    );
    assert!(!d.pin_path.exists(), "no pins left");
    let qdiscs = t.cli.ip(&["-j", "link", "show", CLI_IF]).unwrap();
    let qdiscs = String::from_utf8_lossy(&qdiscs.stdout);
    assert!(!qdiscs.contains("\"xdp\""), "no XDP program left: {qdiscs}");
    let tc_out = t
        .cli
        .command("tc")
        .args(["qdisc", "show", "dev", CLI_IF])
        .output()
        .unwrap();
    let tc_out = String::from_utf8_lossy(&tc_out.stdout);
    assert!(!tc_out.contains("clsact"), "no clsact qdisc left: {tc_out}");
}

/// The embedded object with the first instruction of `leakguard_tc_egress` replaced by
/// one no kernel knows (opcode 0xff): a program every verifier refuses.
fn refused_object() -> Vec<u8> {
    use object::{Object as _, ObjectSection as _, ObjectSymbol as _};
    let mut obj = leakguard::kernel::object::EBPF_OBJECT.to_vec();
    let file = object::File::parse(leakguard::kernel::object::EBPF_OBJECT).unwrap();
    let sym = file
        .symbols()
        .find(|s| s.name() == Ok(PROG_TC_EGRESS))
        .expect("the program's symbol");
    let section = file.section_by_index(sym.section_index().unwrap()).unwrap();
    let (start, _) = section.file_range().unwrap();
    let at = (start + sym.address()) as usize;
    obj[at..at + 8].copy_from_slice(&[0xff, 0, 0, 0, 0, 0, 0, 0]);
    obj
}

#[test]
fn a_verifier_refusal_is_one_line_and_the_log_a_file() {
    let t = topo();
    let mut d = Daemon::new(&t.cli, &policy()).unwrap();
    let bad = d.dir.join("refused.o");
    std::fs::write(&bad, refused_object()).unwrap();
    d.args = vec!["--ebpf-object".into(), bad.display().to_string()];
    let st = d.run_to_exit(Duration::from_secs(30)).unwrap();
    assert_eq!(st.code(), Some(1), "exit 1:\n{}", d.logs());
    let logs = d.logs();
    let errors: Vec<&str> = logs.lines().filter(|l| l.contains("\"ERROR\"")).collect();
    assert_eq!(errors.len(), 1, "one error line:\n{logs}");
    let line = errors[0];
    assert!(line.len() < 1000, "a line, not a log: {} bytes", line.len());
    for want in [
        "refused program leakguard_tc_egress",
        "instructions processed",
        "the verifier's log: ",
    ] {
        assert!(line.contains(want), "{want:?} in {line}");
    }
    println!("{line}");
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    let msg = v["fields"]["message"].as_str().unwrap();
    let path = msg.rsplit("the verifier's log: ").next().unwrap().trim();
    let log = std::fs::read_to_string(path).unwrap();
    assert!(
        log.contains("processed"),
        "the file holds the verifier's log"
    );
    let _ = std::fs::remove_file(path);
    // Nothing was attached.
    assert!(
        !d.pin_path.join("links").exists()
            || std::fs::read_dir(d.pin_path.join("links"))
                .unwrap()
                .next()
                .is_none()
    );
}
