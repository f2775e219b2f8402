//! A Kubernetes ConfigMap volume, written as the kubelet's atomic writer writes it.

use std::{
    os::unix::fs::symlink,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};

/// Writes `text` as `leakguard.toml` into the ConfigMap mount at `dir`: a new timestamped
/// directory (`n` < 100 makes it unique), a `..data_tmp` link to it renamed over `..data`,
/// the old directory removed; `leakguard.toml` links through `..data`. Returns that path.
pub fn write(dir: &Path, n: u32, text: &str) -> Result<PathBuf> {
    let stamp = format!("..2026_12_01_00_00_{n:02}.{n}");
    std::fs::create_dir_all(dir.join(&stamp))?;
    std::fs::write(dir.join(&stamp).join("leakguard.toml"), text)?;
    let old = std::fs::read_link(dir.join("..data")).ok();
    symlink(&stamp, dir.join("..data_tmp"))?;
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).context("the ..data swap")?;
    if let Some(old) = old {
        std::fs::remove_dir_all(dir.join(old))?;
    }
    let file = dir.join("leakguard.toml");
    if std::fs::symlink_metadata(&file).is_err() {
        symlink("..data/leakguard.toml", &file)?;
    }
    Ok(file)
}
