//! The fleet deployment (deploy/kubernetes) as the tests see it: rendered by kustomize,
//! read as JSON, and the DaemonSet's container turned into the `podman run` that runs the
//! image the way a kubelet would, so that the podman test runs what the manifest says
//! and the two cannot drift. The Kubernetes tools come from `cargo xtask setup`
//! (target/tools/k8s, pinned).

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
};

use anyhow::{bail, Context as _, Result};
use serde_json::Value;

use crate::cmd::checked;

/// The image `cargo xtask image` builds, at this version.
#[must_use]
pub fn image() -> String {
    format!("localhost/leakguard:{}", env!("CARGO_PKG_VERSION"))
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// deploy/kubernetes (`sub` under it).
#[must_use]
pub fn deploy_dir(sub: &str) -> PathBuf {
    root().join("deploy/kubernetes").join(sub)
}

/// A program of the Kubernetes tools' venv.
pub fn tool(name: &str) -> Result<PathBuf> {
    let p = root().join("target/tools/k8s/bin").join(name);
    if !p.exists() {
        bail!(
            "{} is missing: run `cargo xtask setup` (it installs the Kubernetes tools)",
            p.display()
        );
    }
    Ok(p)
}

/// `kubectl kustomize DIR`: the YAML stream `kubectl apply -k DIR` applies.
pub fn render(dir: &Path) -> Result<String> {
    let out = checked(Command::new(tool("kubectl")?).arg("kustomize").arg(dir))?;
    Ok(String::from_utf8(out.stdout)?)
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// The documents of a YAML stream, as JSON (PyYAML from the tools' venv).
pub fn documents(yaml: &str) -> Result<Vec<Value>> {
    let file = std::env::temp_dir().join(format!(
        "leakguard-yaml-{}-{}.yaml",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&file, yaml)?;
    let out = checked(Command::new(tool("python")?).arg("-c").arg(
        "import json, sys, yaml\nprint(json.dumps([d for d in yaml.safe_load_all(open(sys.argv[1])) if d]))",
    ).arg(&file))?;
    let _ = std::fs::remove_file(&file);
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// The one object of `kind` among `docs`.
pub fn object<'a>(docs: &'a [Value], kind: &str) -> Result<&'a Value> {
    let mut it = docs.iter().filter(|d| d["kind"] == kind);
    let first = it.next().with_context(|| format!("no {kind} rendered"))?;
    if it.next().is_some() {
        bail!("more than one {kind} rendered");
    }
    Ok(first)
}

/// What the kubelet's probes ask: paths on the named port.
#[derive(Debug)]
pub struct Probes {
    pub port: u16,
    pub startup: String,
    pub readiness: String,
    pub liveness: String,
}

/// The DaemonSet's container as a `podman run`.
#[derive(Debug)]
pub struct PodmanRun {
    /// Options of `podman run` (before the image).
    pub options: Vec<String>,
    pub image: String,
    /// The container's arguments (after the image).
    pub args: Vec<String>,
    pub probes: Probes,
}

/// The DaemonSet's (only) container, as `podman run` options that give it what the
/// kubelet would on a node: the node's network is the network namespace `netns`
/// (hostNetwork), the ConfigMap volume is the directory `policy` (read-only). Every field
/// of the security context, every volume and mount is mapped; one this does not know is
/// an error, so a manifest change cannot silently leave the podman test behind.
pub fn podman_run(ds: &Value, netns: &str, policy: &Path) -> Result<PodmanRun> {
    let pod = &ds["spec"]["template"]["spec"];
    let containers = pod["containers"].as_array().context("containers")?;
    let [c] = containers.as_slice() else {
        bail!(
            "the DaemonSet has {} containers; one expected",
            containers.len()
        );
    };
    let mut o: Vec<String> = Vec::new();
    if pod["hostNetwork"] != true {
        bail!("the DaemonSet must run in the node's network namespace (hostNetwork)");
    }
    o.push(format!("--network=ns:/run/netns/{netns}"));
    if let Some(t) = pod["terminationGracePeriodSeconds"].as_u64() {
        o.push(format!("--stop-timeout={t}"));
    }
    security(&c["securityContext"], &mut o)?;
    mounts(pod, c, policy, &mut o)?;
    if let Some(mem) = c["resources"]["limits"]["memory"].as_str() {
        o.push(format!("--memory={}", quantity_mib(mem)?.to_string() + "m"));
    }
    if c["resources"]["limits"].get("cpu").is_some() {
        bail!("resources.limits.cpu is not mapped to podman: add it here");
    }
    let args = c["args"]
        .as_array()
        .context("the container's args")?
        .iter()
        .map(|a| a.as_str().map(str::to_owned).context("an arg"))
        .collect::<Result<_>>()?;
    Ok(PodmanRun {
        options: o,
        image: c["image"].as_str().context("image")?.to_owned(),
        args,
        probes: probes(c)?,
    })
}

fn security(sc: &Value, o: &mut Vec<String>) -> Result<()> {
    for (k, v) in sc.as_object().context("securityContext")? {
        match k.as_str() {
            "privileged" if v == false => {}
            "allowPrivilegeEscalation" if v == false => {
                o.push("--security-opt=no-new-privileges".into());
            }
            "readOnlyRootFilesystem" if v == true => {
                // Kubernetes gives a read-only root no tmpfs of its own; podman would.
                o.extend(["--read-only".into(), "--read-only-tmpfs=false".into()]);
            }
            "runAsUser" | "runAsGroup" | "runAsNonRoot" => {}
            "capabilities" => {
                let list = |key: &str| -> Vec<String> {
                    v[key]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .map(str::to_ascii_lowercase)
                        .collect()
                };
                let (drop, add) = (list("drop"), list("add"));
                if !drop.is_empty() {
                    o.push(format!("--cap-drop={}", drop.join(",")));
                }
                if !add.is_empty() {
                    o.push(format!("--cap-add={}", add.join(",")));
                }
            }
            "seccompProfile" => match v["type"].as_str() {
                Some("Unconfined") => o.push("--security-opt=seccomp=unconfined".into()),
                Some("RuntimeDefault") => {}
                other => bail!("seccompProfile {other:?} is not mapped to podman"),
            },
            _ => bail!("securityContext.{k} = {v} is not mapped to podman: add it here"),
        }
    }
    let user = sc["runAsUser"].as_u64().context("runAsUser")?;
    let group = sc["runAsGroup"].as_u64().unwrap_or(user);
    o.push(format!("--user={user}:{group}"));
    Ok(())
}

fn mounts(pod: &Value, c: &Value, policy: &Path, o: &mut Vec<String>) -> Result<()> {
    let volumes = pod["volumes"].as_array().context("volumes")?;
    for m in c["volumeMounts"].as_array().context("volumeMounts")? {
        let name = m["name"].as_str().context("a mount's name")?;
        let path = m["mountPath"].as_str().context("mountPath")?;
        let ro = m["readOnly"] == true;
        let v = volumes
            .iter()
            .find(|v| v["name"] == name)
            .with_context(|| format!("no volume {name}"))?;
        let propagation = match m["mountPropagation"].as_str() {
            None | Some("None") => "rprivate",
            Some("HostToContainer") => "rslave",
            Some("Bidirectional") => "rshared",
            Some(p) => bail!("mountPropagation {p}"),
        };
        let ro_opt = if ro { ",ro" } else { "" };
        if let Some(host) = v["hostPath"]["path"].as_str() {
            o.push(format!("--volume={host}:{path}:{propagation}{ro_opt}"));
        } else if v.get("configMap").is_some() {
            if !ro {
                bail!("the ConfigMap volume {name} must be mounted read-only");
            }
            o.push(format!("--volume={}:{path}:ro", policy.display()));
        } else if let Some(e) = v.get("emptyDir") {
            let size = match e["sizeLimit"].as_str() {
                Some(s) => format!(",size={}m", quantity_mib(s)?),
                None => String::new(),
            };
            o.push(format!("--tmpfs={path}:rw{size}"));
        } else {
            bail!("volume {name} is of a kind not mapped to podman: {v}");
        }
    }
    Ok(())
}

/// A Kubernetes memory quantity in MiB ("256Mi", "1Gi").
fn quantity_mib(q: &str) -> Result<u64> {
    if let Some(n) = q.strip_suffix("Mi") {
        return Ok(n.parse()?);
    }
    if let Some(n) = q.strip_suffix("Gi") {
        return Ok(n.parse::<u64>()? * 1024);
    }
    bail!("memory quantity {q}: only Mi and Gi are mapped")
}

fn probes(c: &Value) -> Result<Probes> {
    let port_of = |name: &Value| -> Result<u16> {
        let ports = c["ports"].as_array().context("ports")?;
        let p = ports
            .iter()
            .find(|p| p["name"] == *name || p["containerPort"] == *name)
            .with_context(|| format!("no container port {name}"))?;
        Ok(u16::try_from(
            p["containerPort"].as_u64().context("containerPort")?,
        )?)
    };
    let get = |probe: &str| -> Result<(String, u16)> {
        let h = &c[probe]["httpGet"];
        Ok((
            h["path"]
                .as_str()
                .with_context(|| format!("{probe} httpGet path"))?
                .to_owned(),
            port_of(&h["port"])?,
        ))
    };
    let (startup, p1) = get("startupProbe")?;
    let (readiness, p2) = get("readinessProbe")?;
    let (liveness, p3) = get("livenessProbe")?;
    if p1 != p2 || p2 != p3 {
        bail!("the probes ask different ports: {p1}, {p2}, {p3}");
    }
    Ok(Probes {
        port: p1,
        startup,
        readiness,
        liveness,
    })
}

/// `podman` as these machines need it, whatever the manifest says: with runc, as crun 1.8
/// refuses a cgroup v1/v2 hybrid whose v2 hierarchy has a controller (hugetlb, here).
#[must_use]
pub fn podman() -> Command {
    let mut c = Command::new("podman");
    c.arg("--runtime=runc");
    c
}

/// `podman run` options that are the tests', not the manifest's:
/// - RLIMIT_NOFILE and RLIMIT_NPROC no higher than this process has: podman's defaults
///   (1048576 and more) need CAP_SYS_RESOURCE, which these machines' root lacks, and
///   podman lowers its own RLIMIT_NPROC to kernel.pid_max;
/// - RLIMIT_MEMLOCK 0: BPF memory is charged to the memory cgroup since Linux 5.11, so
///   the guard needs no locked memory (and no CAP_IPC_LOCK); a daemon that did would fail
///   here.
#[must_use]
pub fn machine_options() -> Vec<String> {
    let hard = |r| {
        let mut l = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit with a valid out-pointer.
        unsafe { libc::getrlimit(r, &mut l) };
        l.rlim_max
    };
    let pid_max: u64 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(32_768);
    let nofile = hard(libc::RLIMIT_NOFILE).min(1 << 20);
    let nproc = hard(libc::RLIMIT_NPROC).min(pid_max);
    vec![
        format!("--ulimit=nofile={nofile}:{nofile}"),
        format!("--ulimit=nproc={nproc}:{nproc}"),
        "--ulimit=memlock=0:0".into(),
    ]
}
