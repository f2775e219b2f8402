//! `cargo xtask image`: the OCI image, offline, from what `cargo xtask package` built.
//!
//! No base image is pulled (`buildah from scratch`): the image holds the .deb's binary
//! and default policy, and the shared libraries the binary loads (as `ldd` lists them on
//! this machine, the same Debian the .deb is built for), nothing else: no shell, no
//! package manager. The entrypoint is the binary and the default command `run --config
//! /etc/leakguard/leakguard.toml`, so `podman run IMAGE --version` runs `leakguard
//! --version`. Stored in the local containers storage as localhost/leakguard:VERSION and
//! :latest, and as target/image/leakguard-VERSION.oci.tar to push to a registry.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context as _, Result};

use crate::{output, run};

/// The image's name in the local containers storage.
pub const NAME: &str = "localhost/leakguard";
/// The metrics listener's port (packaging/leakguard.toml and the Kubernetes policy).
const METRICS_PORT: &str = "9717/tcp";
/// The working container's name: a leftover of an interrupted build is removed first.
const WORKING: &str = "leakguard-image-build";

pub struct Built {
    /// NAME:VERSION
    pub name: String,
    pub archive: PathBuf,
    /// The image's size in the containers storage (uncompressed), in bytes.
    pub size: u64,
}

pub fn build(root: &Path, deb: &Path) -> Result<Built> {
    if !crate::is_root() {
        bail!("buildah writes the system's containers storage: run `cargo xtask image` as root");
    }
    let version = env!("CARGO_PKG_VERSION");
    let tagged = format!("{NAME}:{version}");
    let rootfs = root.join("target/image/rootfs");
    assemble(deb, &rootfs)?;

    let _ = Command::new("buildah").args(["rm", WORKING]).output();
    let previous = image_id(&tagged);
    run(Command::new("buildah").args(["from", "--quiet", "--name", WORKING, "scratch"]))?;
    let result = commit(root, &rootfs, &tagged, version);
    let _ = Command::new("buildah").args(["rm", WORKING]).output();
    result?;
    // The image this one replaced under the same tag, if nothing else uses it.
    if let Some(old) = previous.filter(|old| Some(old) != image_id(&tagged).as_ref()) {
        let _ = Command::new("buildah").args(["rmi", &old]).output();
    }

    let archive = root.join(format!("target/image/leakguard-{version}.oci.tar"));
    let _ = std::fs::remove_file(&archive);
    run(Command::new("buildah").args([
        "push",
        "--quiet",
        &tagged,
        &format!("oci-archive:{}:{tagged}", archive.display()),
    ]))?;
    let size =
        output(Command::new("podman").args(["image", "inspect", "--format", "{{.Size}}", &tagged]))
            .and_then(|s| s.trim().parse().ok())
            .context("podman image inspect gave no size")?;
    Ok(Built {
        name: tagged,
        archive,
        size,
    })
}

/// The image's files under `rootfs`: the .deb's binary and default policy, the binary's
/// shared libraries (and its ELF interpreter) at the paths it loads them from.
fn assemble(deb: &Path, rootfs: &Path) -> Result<()> {
    let _ = std::fs::remove_dir_all(rootfs);
    let unpacked = rootfs.with_file_name("deb");
    let _ = std::fs::remove_dir_all(&unpacked);
    std::fs::create_dir_all(&unpacked)?;
    run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&unpacked))?;
    let bin = Path::new("usr/bin/leakguard");
    let policy = Path::new("etc/leakguard/leakguard.toml");
    for f in [bin, policy] {
        copy(&unpacked.join(f), &rootfs.join(f))?;
    }
    let libs = output(Command::new("ldd").arg(unpacked.join(bin))).context("ldd failed")?;
    for lib in shared_libraries(&libs)? {
        // fs::copy follows symbolic links: the library's content at the path it is
        // loaded by (/lib is a link to usr/lib on Debian; in the image it is a directory).
        copy(&lib, &rootfs.join(lib.strip_prefix("/").unwrap_or(&lib)))?;
    }
    // The verifier logs' directory (a volume in Kubernetes: the root is read-only), and
    // the temporary directory they fall back to.
    for d in ["var/log/leakguard", "tmp"] {
        std::fs::create_dir_all(rootfs.join(d))?;
    }
    std::fs::remove_dir_all(&unpacked)?;
    Ok(())
}

/// The libraries in `ldd`'s output: `name => /path (addr)` lines and the interpreter's
/// `/path (addr)` line; the vDSO has no file. A library ldd could not find is an error.
fn shared_libraries(ldd: &str) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for line in ldd.lines().map(str::trim) {
        if line.contains("not found") {
            bail!("ldd: {line}");
        }
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.trim(),
            None => line,
        };
        if let Some(p) = path
            .split_whitespace()
            .next()
            .filter(|p| p.starts_with('/'))
        {
            out.push(PathBuf::from(p));
        }
    }
    if !out.iter().any(|p| p.to_string_lossy().contains("libc.so")) {
        bail!("ldd listed no libc: is the binary dynamically linked?\n{ldd}");
    }
    Ok(out)
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to.parent().context("no parent")?)?;
    std::fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    Ok(())
}

fn commit(root: &Path, rootfs: &Path, tagged: &str, version: &str) -> Result<()> {
    run(Command::new("buildah")
        .args(["copy", "--quiet", "--chown", "0:0", WORKING])
        .arg(format!("{}/", rootfs.display()))
        .arg("/"))?;
    let revision = revision(root);
    run(Command::new("buildah").args([
        "config",
        "--entrypoint",
        r#"["/usr/bin/leakguard"]"#,
        "--cmd",
        "run --config /etc/leakguard/leakguard.toml",
        "--user",
        "0:0",
        "--port",
        METRICS_PORT,
        "--stop-signal",
        "SIGTERM",
        "--label",
        "org.opencontainers.image.title=leakguard",
        "--label",
        &format!("org.opencontainers.image.version={version}"),
        "--label",
        &format!("org.opencontainers.image.revision={revision}"),
        "--label",
        "org.opencontainers.image.licenses=MIT OR Apache-2.0",
        "--label",
        "org.opencontainers.image.description=leakguard: stops subscriber identity headers \
         leaking to websites (eBPF guard and daemon)",
        WORKING,
    ]))?;
    // Created at the commit's time, not now: the same tree gives the same image config.
    let mut commit = Command::new("buildah");
    commit.args([
        "commit",
        "--quiet",
        "--identity-label=false",
        "--omit-history",
    ]);
    if let Some(t) =
        output(
            Command::new("git")
                .current_dir(root)
                .args(["log", "-1", "--format=%ct"]),
        )
    {
        commit.args(["--timestamp", t.trim()]);
    }
    run(commit.args([WORKING, tagged]))?;
    run(Command::new("buildah").args(["tag", tagged, &format!("{NAME}:latest")]))
}

/// The git commit the image is built from, `-dirty` when the tree has changes.
fn revision(root: &Path) -> String {
    let head = output(
        Command::new("git")
            .current_dir(root)
            .args(["rev-parse", "HEAD"]),
    )
    .map_or_else(|| "unknown".to_owned(), |s| s.trim().to_owned());
    let dirty = output(
        Command::new("git")
            .current_dir(root)
            .args(["status", "--porcelain"]),
    )
    .is_some_and(|s| !s.trim().is_empty());
    if dirty {
        format!("{head}-dirty")
    } else {
        head
    }
}

fn image_id(name: &str) -> Option<String> {
    output(Command::new("podman").args(["image", "inspect", "--format", "{{.Id}}", name]))
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}
