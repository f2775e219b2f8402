//! The `leakguard` binary's offline commands: exit codes and output.

use std::process::Command;

fn leakguard(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_leakguard"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn write(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("leakguard-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn check_config_valid_prints_the_effective_policy() {
    let p = write(
        "good.toml",
        "[[attach]]\ninterface = \"eth1\"\nhook = \"tc-egress\"\n\n[[rule]]\nheader = \"X-MSISDN\"\naction = \"redact\"\nallow = [\"198.51.100.0/24\"]\n",
    );
    let (code, out, err) = leakguard(&["check-config", p.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("attach eth1 tc-egress"));
    assert!(out.contains("X-MSISDN") && out.contains("redact (rule) allow 198.51.100.0/24"));
    assert!(out.contains("X-UIDH") && out.contains("(catalog)"));
    assert!(out.trim_end().ends_with("valid"));
}

#[test]
fn check_config_invalid_exits_1_with_one_line_naming_the_place() {
    let p = write(
        "bad.toml",
        "[[attach]]\ninterface = \"eth1\"\nhook = \"egress\"\n",
    );
    let (code, out, err) = leakguard(&["check-config", p.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("bad.toml:3:8") && err.contains("attach.hook") && err.contains("egress"),
        "{err}"
    );

    let (code, _, err) = leakguard(&["check-config", "/nonexistent/leakguard.toml"]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot read"), "{err}");
}

#[test]
fn headers_lists_the_catalog() {
    let (code, out, _) = leakguard(&["headers"]);
    assert_eq!(code, 0);
    assert!(out.lines().count() > 25);
    for h in [
        "X-MSISDN",
        "X-UIDH",
        "X-ACR",
        "X-Up-Calling-Line-ID",
        "X-IMSI",
    ] {
        assert!(out.lines().any(|l| l.starts_with(h)), "{h} missing");
    }
}

#[test]
fn usage_errors_exit_2_and_help_teaches() {
    assert_eq!(leakguard(&["frobnicate"]).0, 2);
    assert_eq!(leakguard(&["check-config"]).0, 2);
    let (code, out, _) = leakguard(&["--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("Exit codes") && out.contains("check-config") && out.contains("headers"));
    let (code, out, _) = leakguard(&["--version"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("leakguard "));
}

/// A table of broken policy files through the real binary: each gives exit code 1, one line
/// on stderr that names the file (and says why), nothing on stdout, and no panic.
#[test]
fn check_config_refuses_every_broken_file_with_one_line() {
    use std::os::unix::fs::PermissionsExt as _;
    let attach = "[[attach]]\ninterface = \"eth0\"\nhook = \"tc-egress\"\n";
    let rule = |i: usize| format!("[[rule]]\nheader = \"X-Id-{i}\"\naction = \"count\"\n");
    let many = |n: usize| {
        format!(
            "{attach}[scan]\nbuiltin_catalog = \"off\"\n{}",
            (0..n).map(rule).collect::<String>()
        )
    };
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("only a comment", b"# nothing\n".to_vec()),
        ("not TOML", b"this is not toml\n".to_vec()),
        ("non-UTF-8", [attach.as_bytes(), b"# \xff\xfe\n"].concat()),
        ("NUL byte", [attach.as_bytes(), b"\0"].concat()),
        ("unclosed table", b"[[attach]\n".to_vec()),
        ("duplicate key", format!("{attach}[scan]\nports = [80]\nports = [81]\n").into_bytes()),
        ("duplicate table", format!("{attach}[scan]\n[scan]\n").into_bytes()),
        ("unknown table", format!("{attach}[bogus]\n").into_bytes()),
        ("unknown key", format!("{attach}[scan]\nportz = [80]\n").into_bytes()),
        ("no attach", b"[scan]\nports = [80]\n".to_vec()),
        ("attach not a table", b"attach = 1\n".to_vec()),
        ("interface wrong type", b"[[attach]]\ninterface = 7\nhook = \"xdp\"\n".to_vec()),
        ("interface empty", b"[[attach]]\ninterface = \"\"\nhook = \"xdp\"\n".to_vec()),
        ("interface too long", b"[[attach]]\ninterface = \"abcdefghijklmnop\"\nhook = \"xdp\"\n".to_vec()),
        ("interface with slash", b"[[attach]]\ninterface = \"a/b\"\nhook = \"xdp\"\n".to_vec()),
        ("hook unknown", b"[[attach]]\ninterface = \"eth0\"\nhook = \"tc\"\n".to_vec()),
        ("attach twice", format!("{attach}{attach}").into_bytes()),
        ("ports wrong type", format!("{attach}[scan]\nports = \"80\"\n").into_bytes()),
        ("ports empty", format!("{attach}[scan]\nports = []\n").into_bytes()),
        ("port zero", format!("{attach}[scan]\nports = [0]\n").into_bytes()),
        ("port too big", format!("{attach}[scan]\nports = [65536]\n").into_bytes()),
        ("port negative", format!("{attach}[scan]\nports = [-80]\n").into_bytes()),
        ("port twice", format!("{attach}[scan]\nports = [80, 80]\n").into_bytes()),
        ("head cap too small", format!("{attach}[scan]\nmax_head_bytes = 63\n").into_bytes()),
        ("head cap too big", format!("{attach}[scan]\nmax_head_bytes = 65537\n").into_bytes()),
        ("head cap huge", format!("{attach}[scan]\nmax_head_bytes = 99999999999999999999\n").into_bytes()),
        ("head cap float", format!("{attach}[scan]\nmax_head_bytes = 4096.5\n").into_bytes()),
        ("incomplete heads unknown", format!("{attach}[scan]\nincomplete_heads = \"ignore\"\n").into_bytes()),
        ("old scan limit not an integer", format!("{attach}[scan]\nmax_payload_bytes = \"big\"\n").into_bytes()),
        ("catalog action", format!("{attach}[scan]\nbuiltin_catalog = \"block\"\n").into_bytes()),
        ("rule without action", format!("{attach}[[rule]]\nheader = \"X-A\"\n").into_bytes()),
        ("rule action unknown", format!("{attach}[[rule]]\nheader = \"X-A\"\naction = \"mask\"\n").into_bytes()),
        ("rule header with space", format!("{attach}[[rule]]\nheader = \"X A\"\naction = \"count\"\n").into_bytes()),
        ("rule header empty", format!("{attach}[[rule]]\nheader = \"\"\naction = \"count\"\n").into_bytes()),
        ("rule header too long", format!("{attach}[[rule]]\nheader = \"{}\"\naction = \"count\"\n", "x".repeat(65)).into_bytes()),
        ("rule twice by folding", format!("{attach}[[rule]]\nheader = \"X-A\"\naction = \"count\"\n[[rule]]\nheader = \"x_a\"\naction = \"drop\"\n").into_bytes()),
        ("allow not an address", format!("{attach}[[rule]]\nheader = \"X-A\"\naction = \"count\"\nallow = [\"gateway\"]\n").into_bytes()),
        ("allow host bits", format!("{attach}[[rule]]\nheader = \"X-A\"\naction = \"count\"\nallow = [\"10.0.0.1/8\"]\n").into_bytes()),
        ("allow bad prefix", format!("{attach}[[rule]]\nheader = \"X-A\"\naction = \"count\"\nallow = [\"2001:db8::/129\"]\n").into_bytes()),
        ("pin path relative", format!("[daemon]\npin_path = \"bpf\"\n{attach}").into_bytes()),
        ("pin path with ..", format!("[daemon]\npin_path = \"/sys/fs/bpf/../x\"\n{attach}").into_bytes()),
        ("selftest interval words", format!("[daemon]\nselftest_interval = \"often\"\n{attach}").into_bytes()),
        ("selftest interval zero", format!("[daemon]\nselftest_interval = \"0s\"\n{attach}").into_bytes()),
        ("selftest interval too long", format!("[daemon]\nselftest_interval = \"30d\"\n{attach}").into_bytes()),
        ("metrics address", format!("[metrics]\nlisten = \"localhost\"\n{attach}").into_bytes()),
        ("msisdn without prefixes", format!("{attach}[msisdn]\naction = \"redact\"\n").into_bytes()),
        ("msisdn prefix with plus", format!("{attach}[msisdn]\naction = \"count\"\nprefixes = [\"+44\"]\n").into_bytes()),
        ("4,096 rules", many(4096).into_bytes()),
        ("100,000 rules", many(100_000).into_bytes()),
    ];
    assert!(cases.len() >= 40);
    let dir = std::env::temp_dir().join(format!("leakguard-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut paths: Vec<(String, std::path::PathBuf)> = Vec::new();
    for (i, (what, bytes)) in cases.drain(..).enumerate() {
        let p = dir.join(format!("bad{i}.toml"));
        std::fs::write(&p, bytes).unwrap();
        paths.push((what.to_owned(), p));
    }
    // Files that are fine but unsafe to trust.
    let good = dir.join("good.toml");
    std::fs::write(&good, attach).unwrap();
    let open = dir.join("world-writable.toml");
    std::fs::write(&open, attach).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o666)).unwrap();
    paths.push(("world-writable".into(), open));
    let theirs = dir.join("theirs.toml");
    std::fs::write(&theirs, attach).unwrap();
    std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
    paths.push(("another user's".into(), theirs));
    let link = dir.join("link.toml");
    std::os::unix::fs::symlink(&good, &link).unwrap();
    paths.push(("symlink to elsewhere".into(), link));
    paths.push(("a directory".into(), dir.clone()));
    for (what, p) in &paths {
        let (code, out, err) = leakguard(&["check-config", p.to_str().unwrap()]);
        assert_eq!(code, 1, "{what}: exit {code}, stderr {err:?}");
        assert!(out.is_empty(), "{what}: stdout {out:?}");
        assert_eq!(err.lines().count(), 1, "{what}: {err:?}");
        assert!(!err.contains("panicked"), "{what}: {err}");
        assert!(
            err.contains(&p.display().to_string()),
            "{what}: the message names the file: {err}"
        );
    }
    // The largest policy the kernel takes is accepted.
    let p = dir.join("max.toml");
    std::fs::write(&p, many(4095)).unwrap();
    let (code, _, err) = leakguard(&["check-config", p.to_str().unwrap()]);
    assert_eq!(code, 0, "4,095 rules: {err}");
    let _ = std::fs::remove_dir_all(&dir);
}
