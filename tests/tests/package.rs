//! The Debian package (`cargo xtask package`, which `cargo xtask test` runs first): lintian
//! finds no error; installed, the binary runs and validates the default policy it ships as
//! a conffile, every asset is in place; the maintainer scripts neither enable nor start
//! the service on installation, restart it after an upgrade, stop it on removal; purge
//! leaves nothing behind.
//!
//! systemd is not PID 1 on the machines the tests run on, so the maintainer scripts'
//! systemd parts (which run only where /run/systemd/system exists) are exercised by real
//! `dpkg` runs in a mount namespace of their own where that directory exists (a tmpfs over
//! /run/systemd), with a stub `systemctl` first on PATH that records its arguments. The
//! real `deb-systemd-invoke` and `deb-systemd-helper` run: what is recorded is what
//! systemd would have been asked to do. These machines also have Docker's
//! /usr/sbin/policy-rc.d, which forbids every service action (exit 101) and would hide
//! the scripts' requests; a gateway has none, so in that namespace a stub that allows
//! them (exit 0) is mounted over it. The unit files, links and state files are the
//! machine's own.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use leakguard_tests::cmd::{printed, run};

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

/// lintian reports no error (E:). Its overrides (usr/share/lintian/overrides/leakguard,
/// each with its reason) are shown as O: lines: seeing them proves lintian checked this
/// package rather than printing nothing.
#[test]
fn lintian_finds_no_error() {
    let deb = newest_deb();
    let out = Command::new("lintian")
        .args(["--show-overrides", "--display-info"])
        .arg(&deb)
        .output()
        .expect("lintian runs (installed by `cargo xtask setup`)");
    let text = printed(&out);
    // 0: nothing at the fail-on level; 2: tags at it (the lines below say which).
    assert!(
        matches!(out.status.code(), Some(0 | 2)),
        "lintian failed to run ({}):\n{text}",
        out.status
    );
    let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("E:")).collect();
    assert!(errors.is_empty(), "lintian errors:\n{}", errors.join("\n"));
    assert!(
        text.contains("O: leakguard: non-standard-file-perm"),
        "lintian did not show the package's overrides:\n{text}"
    );
    for l in text.lines().filter(|l| l.starts_with("W:")) {
        println!("lintian: {l}");
    }
    // The changelog's version is the package's (a version bump needs an entry).
    let changelog = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../packaging/debian/changelog");
    let logged = run(Command::new("dpkg-parsechangelog")
        .arg("-l")
        .arg(&changelog)
        .args(["-S", "Version"]));
    let packaged = dpkg(&["-f", deb.to_str().unwrap(), "Version"]);
    assert_eq!(logged.trim(), packaged.trim(), "packaging/debian/changelog");
}

/// `dpkg ARGS` as on a machine running systemd: in a private mount namespace with
/// /run/systemd/system present and the stub systemctl first on PATH. Returns the
/// systemctl calls the maintainer scripts made, one per line.
fn dpkg_under_systemd(stubs: &Path, args: &[&str]) -> Vec<String> {
    let log = stubs.join("calls");
    let _ = std::fs::remove_file(&log);
    let script = r#"set -e
mount -t tmpfs leakguard-test /run/systemd
mkdir /run/systemd/system
if [ -e /usr/sbin/policy-rc.d ]; then mount --bind "$STUBS/policy-rc.d" /usr/sbin/policy-rc.d; fi
PATH="$STUBS:$PATH" dpkg "$@""#;
    run(Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
        ])
        .args(args)
        .env("STUBS", stubs)
        .env("DEBIAN_FRONTEND", "noninteractive"));
    std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The package at another version: the same contents, `Version: OLD+upgrade`.
fn bumped(deb: &Path, dir: &Path) -> PathBuf {
    let tree = dir.join("tree");
    run(Command::new("dpkg-deb").arg("-R").arg(deb).arg(&tree));
    let control = tree.join("DEBIAN/control");
    let text = std::fs::read_to_string(&control).unwrap();
    let version = text
        .lines()
        .find_map(|l| l.strip_prefix("Version: "))
        .unwrap()
        .to_owned();
    std::fs::write(
        &control,
        text.replace(
            &format!("Version: {version}\n"),
            &format!("Version: {version}+upgrade\n"),
        ),
    )
    .unwrap();
    let out = dir.join("leakguard-upgrade.deb");
    run(Command::new("dpkg-deb")
        .args(["--root-owner-group", "-b"])
        .arg(&tree)
        .arg(&out));
    out
}

/// Purges the package on drop, whatever the test did: the machine's packages as before.
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        let _ = Command::new("systemctl").args(["disable", UNIT]).output();
        let _ = Command::new("dpkg").args(["-P", "leakguard"]).output();
    }
}

const UNIT: &str = "leakguard.service";
const WANTS: &str = "/etc/systemd/system/multi-user.target.wants/leakguard.service";

fn enabled() -> bool {
    Path::new(WANTS).symlink_metadata().is_ok()
}

fn exists(p: &str) -> bool {
    Path::new(p).symlink_metadata().is_ok()
}

#[test]
fn the_debian_package_installs_upgrades_restarts_removes_and_purges() {
    let deb = newest_deb();
    let info = dpkg(&["--info", deb.to_str().unwrap()]);
    assert!(
        info.contains("Package: leakguard") && info.contains("conffiles"),
        "{info}"
    );
    let dir = std::env::temp_dir().join(format!("leakguard-package-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let stubs = dir.join("stubs");
    std::fs::create_dir_all(&stubs).unwrap();
    let calls = stubs.join("calls").display().to_string();
    for (name, body) in [
        (
            "systemctl",
            format!("# What the maintainer scripts ask of systemd.\necho \"$*\" >> {calls}"),
        ),
        (
            "policy-rc.d",
            "# Every action allowed, as on a gateway.\nexit 0".to_owned(),
        ),
    ] {
        let path = stubs.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let upgrade = bumped(&deb, &dir);
    let _purge = Purge;

    // Install: nothing enabled, nothing started (the policy must name the uplink first).
    let calls = dpkg_under_systemd(&stubs, &["-i", deb.to_str().unwrap()]);
    assert_eq!(
        calls,
        ["--system daemon-reload"],
        "installation asked systemd"
    );
    assert!(!enabled(), "installation enabled the unit");
    let version = run(Command::new("/usr/bin/leakguard").arg("--version"));
    assert!(version.contains(env!("CARGO_PKG_VERSION")), "{version}");
    let check =
        run(Command::new("/usr/bin/leakguard")
            .args(["check-config", "/etc/leakguard/leakguard.toml"]));
    assert!(check.contains("valid"), "{check}");
    for path in [
        "/usr/lib/systemd/system/leakguard.service",
        "/usr/share/man/man8/leakguard.8.gz",
        "/usr/share/man/man8/leakguard-run.8.gz",
        "/usr/share/bash-completion/completions/leakguard",
        "/usr/share/zsh/vendor-completions/_leakguard",
        "/usr/share/fish/vendor_completions.d/leakguard.fish",
        "/usr/share/leakguard/leakguard-dashboard.json",
        "/usr/share/leakguard/leakguard-alerts.yml",
        "/usr/share/doc/leakguard/operations.md",
        "/usr/share/doc/leakguard/examples/leakguard-netns.conf",
        "/usr/share/doc/leakguard/copyright",
        "/usr/share/doc/leakguard/changelog.Debian.gz",
    ] {
        assert!(exists(path), "{path} is not installed");
    }
    // Every document the installed guides point to is installed beside them.
    for guide in ["operations.md", "README.md"] {
        let text = std::fs::read_to_string(format!("/usr/share/doc/leakguard/{guide}")).unwrap();
        for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '.')) {
            if let Some(stem) = word.strip_suffix(".md").filter(|s| !s.is_empty()) {
                let path = format!("/usr/share/doc/leakguard/{stem}.md");
                assert!(
                    exists(&path),
                    "{guide} names {stem}.md, which is not installed"
                );
            }
        }
    }
    let status = dpkg(&["-s", "leakguard"]);
    assert!(
        status.contains("/etc/leakguard/leakguard.toml"),
        "the policy is a conffile: {status}"
    );

    // The operator enables it (systemctl works on the files without a running systemd).
    run(Command::new("systemctl").args(["enable", UNIT]));
    assert!(enabled());

    // Upgrade: not stopped before (the old prerm), the old postrm reloads systemd, the new
    // postinst reloads it and restarts the service if it runs (try-restart); still
    // enabled.
    let calls = dpkg_under_systemd(&stubs, &["-i", upgrade.to_str().unwrap()]);
    assert_eq!(
        calls,
        [
            "--system daemon-reload",
            "--system daemon-reload",
            &format!("try-restart {UNIT}")
        ],
        "the upgrade asked systemd"
    );
    assert!(enabled(), "the upgrade disabled the unit");

    // Removal: stopped; the conffile stays; the unit is masked until purge (the mask
    // reloads systemd itself).
    std::fs::create_dir_all("/var/log/leakguard").unwrap();
    std::fs::write("/var/log/leakguard/verifier-test.log", "a refusal's log").unwrap();
    let calls = dpkg_under_systemd(&stubs, &["-r", "leakguard"]);
    assert_eq!(
        calls,
        [
            &format!("stop {UNIT}"),
            "--system daemon-reload",
            "daemon-reload"
        ],
        "the removal asked systemd"
    );
    assert!(!exists("/usr/bin/leakguard"));
    assert!(exists("/etc/leakguard/leakguard.toml"));

    // Purge: nothing left: the policy and its directory, the logs, the enablement, the
    // mask and deb-systemd-helper's state.
    dpkg_under_systemd(&stubs, &["-P", "leakguard"]);
    for path in [
        "/etc/leakguard",
        "/var/log/leakguard",
        WANTS,
        "/etc/systemd/system/leakguard.service",
        "/var/lib/systemd/deb-systemd-helper-enabled/leakguard.service.dsh-also",
        "/var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants/leakguard.service",
        "/var/lib/systemd/deb-systemd-helper-masked/leakguard.service",
    ] {
        assert!(!exists(path), "{path} is left after purge");
    }
    let st = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", "leakguard"])
        .output()
        .unwrap();
    let st = String::from_utf8_lossy(&st.stdout);
    assert!(
        st.is_empty() || st.contains("not-installed"),
        "dpkg still knows the package: {st}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
