// The one recipe for building the kernel programs, shared by `build.rs` (the object the
// binary embeds) and xtask (a second build with another build id, for the upgrade test).
// Included with `include!`, so it has no imports of its own beyond `std`.

/// The `cargo build` of `leakguard-ebpf` for the BPF target, into `target_dir`, with the
/// host's toolchain: `RUSTC_BOOTSTRAP=1` unlocks `-Z build-std=core`, so no nightly is
/// needed, only `rust-src` and bpf-linker (`cargo xtask setup`).
///
/// Code generation targets BPF CPU v2, whose `<` and `<=` jumps compare a register with
/// an immediate. With v1 (the target's default) LLVM writes a loop bound `k < 24` as
/// `24 > k` with 24 in a register, and Linux 6.1's verifier learns nothing from a compare
/// of two registers: it walks such a loop until it gives up. v2 is in every kernel since
/// 4.14. (v3's 32-bit ALU makes LLVM spill a register no path wrote, which the verifier
/// refuses.)
fn ebpf_cargo(
    cargo: &std::path::Path,
    workspace: &std::path::Path,
    target_dir: &std::path::Path,
    arch: &str,
) -> std::process::Command {
    let mut cmd = std::process::Command::new(cargo);
    cmd.current_dir(workspace)
        .args(["build", "--quiet", "--package", "leakguard-ebpf", "--bins", "--release"])
        .args(["--target", "bpfel-unknown-none", "-Z", "build-std=core"])
        .arg("--target-dir")
        .arg(target_dir)
        .env("RUSTC_BOOTSTRAP", "1")
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            [
                format!("--cfg=bpf_target_arch=\"{arch}\""),
                "-Cdebuginfo=2".to_owned(),
                "-Clink-arg=--btf".to_owned(),
                "-Ctarget-cpu=v2".to_owned(),
            ]
            .join("\x1f"),
        )
        // The host build's wrappers and compiler are not for the BPF target.
        .env_remove("RUSTC")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTFLAGS");
    cmd
}

/// Where `ebpf_cargo` leaves the object.
fn ebpf_object(target_dir: &std::path::Path) -> std::path::PathBuf {
    target_dir.join("bpfel-unknown-none/release/leakguard-ebpf")
}
