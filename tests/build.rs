//! Builds the benchmark's object: the kernel programs with the `bench` feature (the empty
//! programs and the floor of a scan beside the guard's), by the recipe that builds the
//! shipped one (`leakguard/ebpf_build.rs`), into OUT_DIR, where `src/guard.rs` embeds it.
use std::{env, path::PathBuf};

use anyhow::{bail, Context as _};

include!("../leakguard/ebpf_build.rs");

fn main() -> anyhow::Result<()> {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let workspace = manifest
        .parent()
        .context("the crate lives in the workspace")?;
    for dir in [
        "leakguard-ebpf",
        "leakguard-common",
        "leakguard/ebpf_build.rs",
    ] {
        println!("cargo:rerun-if-changed={}", workspace.join(dir).display());
    }
    let out = PathBuf::from(env::var("OUT_DIR")?);
    let target_dir = out.join("ebpf-target");
    let cargo = PathBuf::from(env::var("CARGO")?);
    let arch = env::var("CARGO_CFG_TARGET_ARCH")?;
    let status = ebpf_cargo(&cargo, workspace, &target_dir, &arch)
        .args(["--features", "bench"])
        .status()
        .context("spawning cargo for the benchmark's eBPF object")?;
    if !status.success() {
        bail!("building the benchmark's eBPF object failed ({status})");
    }
    std::fs::copy(ebpf_object(&target_dir), out.join("leakguard-ebpf-bench"))
        .context("copying the benchmark's eBPF object")?;
    Ok(())
}
