//! Builds `leakguard-ebpf` for the BPF target and leaves the object in OUT_DIR, where
//! `src/object.rs` embeds it.
//!
//! The object is built with the same toolchain as the host code and `RUSTC_BOOTSTRAP=1`
//! (for `-Z build-std=core`), so a machine needs no nightly: only `rust-src` and
//! bpf-linker, which `cargo xtask setup` installs.
use anyhow::Context as _;

fn main() -> anyhow::Result<()> {
    let toolchain = std::env::var("RUSTUP_TOOLCHAIN").unwrap_or_else(|_| "stable".to_owned());
    println!("cargo:rerun-if-env-changed=RUSTUP_TOOLCHAIN");
    // The build id compiled into the programs (see `leakguard_common::build_id`).
    println!("cargo:rerun-if-env-changed=LEAKGUARD_EBPF_BUILD");
    // Read by aya-build and inherited by the cargo it spawns.
    std::env::set_var("RUSTC_BOOTSTRAP", "1");
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../leakguard-ebpf");
    // aya-build watches the eBPF crate; the layouts and limits it shares live here.
    println!(
        "cargo:rerun-if-changed={}",
        concat!(env!("CARGO_MANIFEST_DIR"), "/../leakguard-common")
    );
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "leakguard-ebpf",
            root_dir: root,
            ..Default::default()
        }],
        aya_build::Toolchain::Custom(&toolchain),
    )
    .context("building the eBPF programs (is bpf-linker installed? run `cargo xtask setup`)")
}
