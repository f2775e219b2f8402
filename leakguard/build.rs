//! Builds `leakguard-ebpf` for the BPF target (`ebpf_build.rs`, shared with xtask) and
//! leaves the object in OUT_DIR, where `src/kernel/object.rs` embeds it.
use std::{env, path::PathBuf};

use anyhow::{bail, Context as _};

include!("ebpf_build.rs");

fn main() -> anyhow::Result<()> {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let workspace = manifest
        .parent()
        .context("the crate lives in the workspace")?;
    for dir in ["leakguard-ebpf", "leakguard-common"] {
        println!("cargo:rerun-if-changed={}", workspace.join(dir).display());
    }
    println!("cargo:rerun-if-changed=ebpf_build.rs");
    // The build id compiled into the programs (see `leakguard_common::build_id`).
    println!("cargo:rerun-if-env-changed=LEAKGUARD_EBPF_BUILD");
    let out = PathBuf::from(env::var("OUT_DIR")?);
    // A target directory of its own: the outer cargo holds the workspace's lock.
    let target_dir = out.join("ebpf-target");
    let cargo = PathBuf::from(env::var("CARGO")?);
    let arch = env::var("CARGO_CFG_TARGET_ARCH")?;
    let status = ebpf_cargo(&cargo, workspace, &target_dir, &arch)
        .status()
        .context("spawning cargo for the eBPF programs")?;
    if !status.success() {
        bail!(
            "building the eBPF programs failed ({status}); is bpf-linker installed? run `cargo xtask setup`"
        );
    }
    std::fs::copy(ebpf_object(&target_dir), out.join("leakguard-ebpf"))
        .context("copying the eBPF object")?;
    revision(workspace);
    Ok(())
}

/// `LEAKGUARD_REVISION` for `leakguard_build_info`: the environment's (a package build
/// from a tarball sets it), else the checkout's commit, else "unknown".
fn revision(workspace: &std::path::Path) {
    println!("cargo:rerun-if-env-changed=LEAKGUARD_REVISION");
    if let Ok(r) = env::var("LEAKGUARD_REVISION") {
        println!("cargo:rustc-env=LEAKGUARD_REVISION={r}");
        return;
    }
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(workspace)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let rev = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    // A new commit changes HEAD's ref (or HEAD itself, detached).
    for p in ["HEAD", "packed-refs"] {
        if let Some(path) = git(&["rev-parse", "--git-path", p]) {
            println!("cargo:rerun-if-changed={}", workspace.join(path).display());
        }
    }
    if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"]) {
        if let Some(path) = git(&["rev-parse", "--git-path", &r]) {
            println!("cargo:rerun-if-changed={}", workspace.join(path).display());
        }
    }
    println!("cargo:rustc-env=LEAKGUARD_REVISION={rev}");
}
