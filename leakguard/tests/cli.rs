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
