//! Access: the pinned state is root's alone; the daemon refuses a policy file others may
//! write; metrics stay on loopback unless configured; without the privileges it needs it
//! says which are missing in one line; in a private mount namespace without the host's BPF
//! filesystem it refuses to start.

use std::{
    os::unix::fs::{MetadataExt as _, PermissionsExt as _},
    path::Path,
    process::Command,
};

use leakguard_tests::{
    cmd::run,
    daemon::{leakguard_bin, Daemon},
    topo::{topo, CLI_IF},
};

fn policy() -> String {
    format!("[[attach]]\ninterface = \"{CLI_IF}\"\nhook = \"tc-egress\"\n\n[[rule]]\nheader = \"X-MSISDN\"\naction = \"redact\"\n")
}

/// Every directory and file under `root`, with its mode.
fn walk(root: &Path, out: &mut Vec<(String, u32)>) {
    let md = std::fs::symlink_metadata(root).unwrap();
    out.push((root.display().to_string(), md.mode()));
    if md.is_dir() {
        for e in std::fs::read_dir(root).unwrap() {
            walk(&e.unwrap().path(), out);
        }
    }
}

/// `leakguard run` through `wrapper`, expected to fail at once: (exit code, stderr).
fn run_fails(wrapper: &[&str], config: &Path) -> (Option<i32>, String) {
    let out = Command::new(wrapper[0])
        .args(&wrapper[1..])
        .arg(leakguard_bin().unwrap())
        .args(["run", "--config"])
        .arg(config)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn pins_are_private_and_unsafe_policy_files_are_refused() {
    let t = topo();
    let mut d = Daemon::new(&t.cli, &policy()).unwrap();
    d.start().unwrap();
    let mut all = Vec::new();
    walk(&d.pin_path, &mut all);
    assert!(all.len() > 10, "{all:?}");
    for (path, mode) in &all {
        assert_eq!(
            mode & 0o077,
            0,
            "{path} is open to others: {:o}",
            mode & 0o7777
        );
    }
    d.stop().unwrap();

    // A policy file others may write is refused by the daemon itself, in one line.
    std::fs::set_permissions(&d.config, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (code, err) = run_fails(&["env"], &d.config);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("writable"), "{err}");
}

#[test]
fn metrics_listen_on_loopback_unless_configured() {
    let dir = std::env::temp_dir().join(format!("leakguard-access-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("p.toml");
    std::fs::write(&p, policy()).unwrap();
    let text = run(Command::new(leakguard_bin().unwrap())
        .arg("check-config")
        .arg(&p));
    assert!(text.contains("metrics.listen = 127.0.0.1:9717"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn without_privileges_run_names_what_is_missing() {
    let dir = std::env::temp_dir().join(format!("leakguard-privs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let p = dir.join("p.toml");
    std::fs::write(&p, policy()).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    let cases: [(&str, &[&str], &str); 3] = [
        (
            "not root",
            &[
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
                "--bounding-set=-all",
            ],
            "not root, and without CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN",
        ),
        (
            "root without CAP_BPF",
            &[
                "setpriv",
                "--inh-caps=-bpf,-sys_admin",
                "--bounding-set=-bpf,-sys_admin",
            ],
            "root, but without CAP_BPF",
        ),
        (
            "root without CAP_NET_ADMIN",
            &[
                "setpriv",
                "--inh-caps=-net_admin",
                "--bounding-set=-net_admin",
            ],
            "root, but without CAP_NET_ADMIN",
        ),
    ];
    for (what, wrapper, says) in cases {
        let (code, err) = run_fails(wrapper, &p);
        assert_eq!(code, Some(1), "{what}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{what}: {err}");
        assert!(err.contains(says), "{what}: {err}");
        assert!(err.contains("run it as root"), "{what}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// In a mount namespace of its own with /sys/fs/bpf unmounted (as `ip netns exec` leaves
/// one), a BPF filesystem the daemon mounted would be its own, gone with it and the guard
/// with it: the daemon refuses to start, in one line, and nothing is attached or pinned.
#[test]
fn with_no_bpf_filesystem_of_the_hosts_it_refuses_to_start() {
    let t = topo();
    let mut d = Daemon::new(&t.cli, &policy()).unwrap();
    d.wrapper = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        "while mountpoint -q /sys/fs/bpf; do umount /sys/fs/bpf || exit 9; done; exec \"$@\"",
        "sh",
    ]
    .map(String::from)
    .to_vec();
    let st = d.run_to_exit(std::time::Duration::from_secs(20)).unwrap();
    assert_eq!(st.code(), Some(1), "{}", d.logs());
    let logs = d.logs();
    assert_eq!(
        logs.lines().filter(|l| l.contains("\"ERROR\"")).count(),
        1,
        "{logs}"
    );
    assert!(logs.contains("private mount namespace"), "{logs}");
    assert!(!logs.contains("mounted one"), "{logs}");
    assert!(!d.pin_path.exists(), "nothing pinned");
    let link = t.cli.ip(&["-d", "link", "show", CLI_IF]).unwrap();
    assert!(!String::from_utf8_lossy(&link.stdout).contains("xdp"));
}
