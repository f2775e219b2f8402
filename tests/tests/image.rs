//! The OCI image (`cargo xtask image`, which `cargo xtask test` runs first) under podman,
//! run as the Kubernetes DaemonSet says (deploy/kubernetes: the `podman run` options are
//! derived from the rendered manifest, see `leakguard_tests::fleet`): in a gateway's
//! network namespace (the node's network), the host's bpffs mounted HostToContainer, the
//! ConfigMap's policy read-only, a read-only root, only CAP_BPF, CAP_PERFMON and
//! CAP_NET_ADMIN, not privileged. Requests through the gateway reach the server with the
//! identity header redacted; after `podman kill` the guard still redacts; a new container
//! adopts the pins and redacts; `/readyz` answers ready only once the interface is
//! attached and the self-test passed; a ConfigMap-style `..data` swap of the policy
//! reaches the daemon without a signal; `leakguard detach` from the image removes the guard.

use std::{path::PathBuf, process::Command, time::Duration};

use leakguard_tests::{
    cmd::{printed, run},
    configmap,
    daemon::{leakguard_bin, wait_for},
    fleet::{self, deploy_dir, documents, machine_options, object, podman, podman_run, render},
    gateway::{Gateway, GW_UP_IF, SRV},
    http::{find, MSISDN},
    server::HttpServer,
    topo::curl,
};

/// The image must exist: this test runs what `cargo xtask image` built.
fn require_image() -> String {
    let image = fleet::image();
    let st = Command::new("podman")
        .args(["image", "exists", &image])
        .status()
        .expect("podman runs (installed by `cargo xtask setup`)");
    assert!(
        st.success(),
        "no image {image}: build it with `cargo xtask image` (cargo xtask test does)"
    );
    image
}

/// A container, removed on drop whatever the test did.
struct Container {
    name: String,
}

impl Container {
    /// `podman run -d` with `options`, the image and `args`.
    fn start(name: &str, options: &[String], image: &str, args: &[String]) -> Self {
        let _ = podman().args(["rm", "-f", "-t", "0", name]).output();
        run(podman()
            .args(["run", "-d", "--name", name])
            .args(options)
            .arg(image)
            .args(args));
        Self {
            name: name.to_owned(),
        }
    }

    fn logs(&self) -> String {
        let out = Command::new("podman")
            .args(["logs", &self.name])
            .output()
            .unwrap();
        printed(&out)
    }

    fn state(&self) -> String {
        let out = Command::new("podman")
            .args([
                "inspect",
                "--format",
                "{{.State.Status}} {{.State.ExitCode}}",
                &self.name,
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Waits for the daemon's "running" line; its log.
    fn wait_running(&self) -> String {
        wait_for(
            "the daemon in the container to run",
            Duration::from_secs(30),
            || self.logs().contains("leakguard running") || self.state().starts_with("exited"),
        )
        .unwrap_or_else(|e| panic!("{e:#}\n{}", self.logs()));
        let logs = self.logs();
        assert!(
            logs.contains("leakguard running"),
            "{}:\n{logs}",
            self.state()
        );
        logs
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman().args(["rm", "-f", "-t", "0", &self.name]).output();
    }
}

/// The guard's pins, detached on drop (from the host, in the gateway's network namespace).
struct Pins {
    path: PathBuf,
    netns: String,
}

impl Drop for Pins {
    fn drop(&mut self) {
        if let Ok(bin) = leakguard_bin() {
            let _ = Command::new("nsenter")
                .arg(format!("--net=/run/netns/{}", self.netns))
                .arg(bin)
                .arg("detach")
                .arg("--pin-path")
                .arg(&self.path)
                .output();
        }
    }
}

/// The ConfigMap's policy as an operator sets it for this gateway: the uplink for the
/// placeholder, the operator's rule, and pins of the test's own.
fn policy(docs: &[serde_json::Value], pins: &std::path::Path) -> String {
    policy_with(docs, pins, "")
}

/// [`policy`] with `extra` lines in the operator's rule.
fn policy_with(docs: &[serde_json::Value], pins: &std::path::Path, extra: &str) -> String {
    let text = object(docs, "ConfigMap").unwrap()["data"]["leakguard.toml"]
        .as_str()
        .unwrap()
        .to_owned();
    let set = |text: String, from: &str, to: &str| {
        assert!(text.contains(from), "the ConfigMap's policy has {from:?}");
        text.replacen(from, to, 1)
    };
    let text = set(
        text,
        "interface = \"CHANGE-uplink\"",
        &format!("interface = \"{GW_UP_IF}\""),
    );
    let text = set(
        text,
        "pin_path = \"/sys/fs/bpf/leakguard\"",
        &format!("pin_path = \"{}\"", pins.display()),
    );
    format!("{text}\n[[rule]]\nheader = \"X-MSISDN\"\naction = \"redact\"\n{extra}")
}

/// A request from the subscriber through the gateway: what the server received.
fn request(g: &Gateway, server: &HttpServer) -> Vec<u8> {
    let before = server.heads().len();
    let st = curl(
        &g.cli,
        &format!("http://{SRV}/"),
        &[format!("X-MSISDN: {MSISDN}")],
        10,
    );
    assert!(st.success(), "curl through the gateway: {st}");
    let heads = server.heads();
    assert_eq!(heads.len(), before + 1);
    heads[before].clone()
}

fn assert_redacted(head: &[u8], when: &str) {
    assert!(
        find(head, b"X-MSISDN: ").is_some(),
        "{when}: the header line reaches the server"
    );
    assert!(
        find(head, MSISDN.as_bytes()).is_none(),
        "{when}: the number reached the server"
    );
}

#[test]
fn the_image_guards_a_gateway_through_a_kill_and_a_new_container_adopts() {
    let image = require_image();
    let docs = documents(&render(&deploy_dir("")).unwrap()).unwrap();
    let ds = object(&docs, "DaemonSet").unwrap();
    let g = Gateway::new().unwrap();
    let server = HttpServer::start(&g.srv, format!("{SRV}:80").parse().unwrap()).unwrap();
    let tag = std::process::id();
    let pins = Pins {
        path: PathBuf::from(format!("/sys/fs/bpf/leakguard-image-test-{tag}")),
        netns: g.gw.name.clone(),
    };
    // The ConfigMap's directory as the kubelet writes it (`..data` links, root's).
    let dir = std::env::temp_dir().join(format!("leakguard-image-{tag}"));
    std::fs::create_dir_all(&dir).unwrap();
    configmap::write(&dir, 1, &policy(&docs, &pins.path)).unwrap();

    let run_spec = podman_run(ds, &g.gw.name, &dir).unwrap();
    assert_eq!(run_spec.image, image);
    let options: Vec<String> = run_spec
        .options
        .iter()
        .cloned()
        .chain(machine_options())
        .collect();

    let first = Container::start(
        &format!("lg-test-{tag}-1"),
        &options,
        &image,
        &run_spec.args,
    );
    // Where the probes and Prometheus look: the policy's port, in the node's (the
    // gateway's) network namespace. Ready only once attached and self-tested: at the
    // first 200 the link is pinned and the metrics say the self-test passed.
    let port = run_spec.probes.port;
    let get = |path: &str| {
        run(g.gw.command("curl").args([
            "-sS",
            "-m",
            "10",
            &format!("http://127.0.0.1:{port}{path}"),
        ]))
    };
    let link = pins
        .path
        .join("links")
        .join(format!("{GW_UP_IF}@tc-egress"));
    let mut not_ready = 0u32;
    wait_for("/readyz to say ready", Duration::from_secs(30), || {
        let out =
            g.gw.command("curl")
                .args(["-s", "-m", "2", "-o", "/dev/null", "-w", "%{http_code}"])
                .arg(format!("http://127.0.0.1:{port}/readyz"))
                .output()
                .unwrap();
        let code = String::from_utf8_lossy(&out.stdout).into_owned();
        if code == "200" {
            return true;
        }
        // Nothing listening yet (000), or the listener up before the self-test (503).
        assert!(code == "000" || code == "503", "/readyz said {code}");
        not_ready += 1;
        false
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", first.logs()));
    assert!(link.exists(), "ready before the interface was attached");
    let metrics = get("/metrics");
    assert!(metrics.contains("leakguard_selftest_ok 1"), "{metrics}");
    let attached = format!("leakguard_attached{{interface=\"{GW_UP_IF}\",hook=\"tc-egress\"}} 1");
    assert!(metrics.contains(&attached), "{metrics}");
    println!("/readyz: {not_ready} answers not ready before ready");
    let logs = first.wait_running();
    assert!(logs.contains("adopted=false"), "{logs}");
    assert_redacted(&request(&g, &server), "container running");

    // The policy changed the way Kubernetes changes a ConfigMap: the daemon in the
    // container sees the `..data` swap through its read-only mount and reloads. The new
    // policy trusts the server, so the number reaches it; the old one back redacts again.
    let reloads = |c: &Container| c.logs().matches("policy reloaded").count();
    let trusted = format!("allow = [\"{SRV}/32\"]\n");
    configmap::write(&dir, 2, &policy_with(&docs, &pins.path, &trusted)).unwrap();
    wait_for("the reload after the swap", Duration::from_secs(20), || {
        reloads(&first) == 1
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", first.logs()));
    assert!(
        find(&request(&g, &server), MSISDN.as_bytes()).is_some(),
        "the swapped-in policy trusts the server"
    );
    configmap::write(&dir, 3, &policy(&docs, &pins.path)).unwrap();
    wait_for(
        "the reload of the first policy",
        Duration::from_secs(20),
        || reloads(&first) == 2,
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", first.logs()));
    assert_redacted(&request(&g, &server), "the first policy back");

    // Killed: no daemon, no container; the guard is pinned on the host's bpffs.
    run(podman().args(["kill", &first.name]));
    wait_for("the container to exit", Duration::from_secs(20), || {
        first.state().starts_with("exited")
    })
    .unwrap();
    assert!(pins
        .path
        .join("links")
        .join(format!("{GW_UP_IF}@tc-egress"))
        .exists());
    assert_redacted(&request(&g, &server), "after podman kill");

    // A new container adopts the pinned guard.
    let second = Container::start(
        &format!("lg-test-{tag}-2"),
        &options,
        &image,
        &run_spec.args,
    );
    let logs = second.wait_running();
    assert!(logs.contains("adopted=true"), "{logs}");
    assert_redacted(&request(&g, &server), "second container");
    for l in [first.logs(), second.logs()] {
        assert!(!l.contains(MSISDN), "an identity value in the log:\n{l}");
        assert!(!l.contains("ERROR"), "{l}");
    }

    // Removal as docs/fleet.md has it: the daemon gone, `leakguard detach` from the image
    // (with the DaemonSet's settings) removes the guard; the number passes again.
    drop(second);
    let detach = run(podman()
        .args(["run", "--rm"])
        .args(&options)
        .arg(&image)
        .arg("detach")
        .arg("--pin-path")
        .arg(&pins.path));
    assert!(
        detach.contains(&format!("detached tc-egress from {GW_UP_IF}")),
        "{detach}"
    );
    assert!(!pins.path.exists());
    let head = request(&g, &server);
    assert!(
        find(&head, MSISDN.as_bytes()).is_some(),
        "the guard is gone"
    );
    drop(first);
    drop(pins);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The entrypoint is the binary: `podman run IMAGE --version`; the labels name this
/// version and a git revision, the metrics port is exposed, the image is small.
#[test]
fn the_image_runs_its_binary_and_says_what_it_is() {
    let image = require_image();
    let version = run(podman()
        .args(["run", "--rm", "--network=none"])
        .args(machine_options())
        .arg(&image)
        .arg("--version"));
    assert_eq!(
        version.trim(),
        format!("leakguard {}", env!("CARGO_PKG_VERSION"))
    );
    let inspect = run(Command::new("podman").args(["image", "inspect", &image]));
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    let cfg = &v[0]["Config"];
    assert_eq!(cfg["Entrypoint"], serde_json::json!(["/usr/bin/leakguard"]));
    assert_eq!(
        cfg["Cmd"],
        serde_json::json!(["run", "--config", "/etc/leakguard/leakguard.toml"])
    );
    assert!(cfg["ExposedPorts"].get("9717/tcp").is_some(), "{cfg}");
    let labels = &cfg["Labels"];
    assert_eq!(
        labels["org.opencontainers.image.version"],
        env!("CARGO_PKG_VERSION")
    );
    let rev = labels["org.opencontainers.image.revision"]
        .as_str()
        .unwrap();
    assert!(
        rev.len() >= 40 && rev[..40].chars().all(|c| c.is_ascii_hexdigit()),
        "{rev}"
    );
    let size = v[0]["Size"].as_u64().unwrap();
    println!("image {image}: {size} bytes");
    assert!(size < 16 << 20, "the image grew to {size} bytes");
    // The OCI archive beside it.
    let archive = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!(
        "../target/image/leakguard-{}.oci.tar",
        env!("CARGO_PKG_VERSION")
    ));
    let listing = run(Command::new("tar").arg("-tf").arg(&archive));
    assert!(
        listing
            .lines()
            .any(|l| l.trim_start_matches("./") == "index.json"),
        "{listing}"
    );
}

/// Under the container runtime's default seccomp profile (which allows bpf(2) only with
/// CAP_SYS_ADMIN), the daemon refuses to start in one line that names the cause, and
/// attaches nothing: why the DaemonSet asks for another profile.
#[test]
fn under_the_runtimes_default_seccomp_profile_the_daemon_says_why_it_cannot_start() {
    let image = require_image();
    let docs = documents(&render(&deploy_dir("")).unwrap()).unwrap();
    let g = Gateway::new().unwrap();
    let tag = std::process::id();
    let pins = PathBuf::from(format!("/sys/fs/bpf/leakguard-image-seccomp-{tag}"));
    let dir = std::env::temp_dir().join(format!("leakguard-image-seccomp-{tag}"));
    std::fs::create_dir_all(&dir).unwrap();
    configmap::write(&dir, 1, &policy(&docs, &pins)).unwrap();
    let spec = podman_run(object(&docs, "DaemonSet").unwrap(), &g.gw.name, &dir).unwrap();
    let options: Vec<String> = spec
        .options
        .iter()
        .filter(|o| *o != "--security-opt=seccomp=unconfined")
        .cloned()
        .chain(machine_options())
        .collect();
    assert_eq!(
        options.len() + 1,
        spec.options.len() + machine_options().len()
    );
    let out = podman()
        .args(["run", "--rm"])
        .args(&options)
        .arg(&image)
        .args(&spec.args)
        .output()
        .unwrap();
    let text = printed(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let errors: Vec<&str> = text.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "one line:\n{text}");
    assert!(
        errors[0].contains("Operation not permitted") && errors[0].contains("seccomp filter"),
        "{text}"
    );
    assert!(!pins.exists(), "nothing pinned");
    let _ = std::fs::remove_dir_all(&dir);
}
