//! The Debian package (`cargo xtask package`, which `cargo xtask test` runs first):
//! installs on this machine, the installed binary runs and validates the default policy
//! it ships as a conffile, every asset is in place, and it removes and purges cleanly.

use std::{path::PathBuf, process::Command};

use leakguard_tests::cmd::run;

fn newest_deb() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debian");
    std::fs::read_dir(&dir)
        .ok()
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())
        .unwrap_or_else(|| panic!("no .deb in {}: run `cargo xtask package`", dir.display()))
}

fn dpkg(args: &[&str]) -> String {
    run(Command::new("dpkg")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

#[test]
fn the_debian_package_installs_runs_and_removes() {
    let deb = newest_deb();
    let info = dpkg(&["--info", deb.to_str().unwrap()]);
    assert!(
        info.contains("Package: leakguard") && info.contains("conffiles"),
        "{info}"
    );
    dpkg(&["-i", deb.to_str().unwrap()]);
    let version = run(Command::new("/usr/bin/leakguard").arg("--version"));
    assert!(version.contains(env!("CARGO_PKG_VERSION")), "{version}");
    let check =
        run(Command::new("/usr/bin/leakguard")
            .args(["check-config", "/etc/leakguard/leakguard.toml"]));
    assert!(check.contains("valid"), "{check}");
    for path in [
        "/lib/systemd/system/leakguard.service",
        "/usr/share/man/man8/leakguard.8.gz",
        "/usr/share/man/man8/leakguard-run.8.gz",
        "/usr/share/bash-completion/completions/leakguard",
        "/usr/share/zsh/vendor-completions/_leakguard",
        "/usr/share/fish/vendor_completions.d/leakguard.fish",
        "/usr/share/leakguard/leakguard-dashboard.json",
        "/usr/share/leakguard/leakguard-alerts.yml",
        "/usr/share/doc/leakguard/operations.md",
        "/usr/share/doc/leakguard/examples/leakguard-netns.conf",
    ] {
        assert!(
            std::path::Path::new(path).exists(),
            "{path} is not installed"
        );
    }
    let conffiles = dpkg(&["-s", "leakguard"]);
    assert!(
        conffiles.contains("/etc/leakguard/leakguard.toml"),
        "{conffiles}"
    );
    // Remove keeps the conffile; purge takes it.
    dpkg(&["-r", "leakguard"]);
    assert!(!std::path::Path::new("/usr/bin/leakguard").exists());
    assert!(std::path::Path::new("/etc/leakguard/leakguard.toml").exists());
    dpkg(&["-P", "leakguard"]);
    assert!(!std::path::Path::new("/etc/leakguard/leakguard.toml").exists());
}
