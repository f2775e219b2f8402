//! The Kubernetes deployment (deploy/kubernetes), offline: what kustomize renders
//! validates against the API schemas of Kubernetes 1.35, 1.36 and 1.37 (the supported
//! minor versions; kubernetes-validate ships their schemas and runs here in a network
//! namespace with no network at all); the ServiceMonitor, a CRD no Kubernetes schema
//! has, against the Prometheus Operator's CRD schema (the pydantic models PyPI's
//! cloudcoil-models-prometheus-operator generates from it), strictly; the policy in
//! the ConfigMap is the packaged default with the fleet's changes, and valid; the
//! DaemonSet gives the daemon what it needs and no more, and is what the podman test
//! (image.rs) runs.

use std::{path::Path, process::Command};

use leakguard_tests::{
    cmd::{printed, run},
    daemon::leakguard_bin,
    fleet::{self, deploy_dir, documents, object, podman_run, render, tool},
};
use serde_json::Value;

/// Supported Kubernetes minor versions (of the schemas kubernetes-validate 1.37.0 ships,
/// 1.25 to 1.37).
const VERSIONS: [&str; 3] = ["1.35.0", "1.36.0", "1.37.0"];

/// kubernetes-validate --strict on `file` for `version`, with no network: its output.
fn validate(file: &Path, version: &str) -> std::process::Output {
    Command::new("unshare")
        .arg("--net")
        .arg(tool("kubernetes-validate").unwrap())
        .args(["--strict", "-k", version])
        .arg(file)
        .output()
        .expect("unshare and kubernetes-validate run")
}

fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("leakguard-deploy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn the_manifests_validate_against_three_kubernetes_versions_offline() {
    for (sub, kinds) in [
        ("", &["Namespace", "ConfigMap", "Service", "DaemonSet"][..]),
        (
            "prometheus-operator",
            &[
                "Namespace",
                "ConfigMap",
                "Service",
                "DaemonSet",
                "ServiceMonitor",
            ][..],
        ),
    ] {
        let yaml = render(&deploy_dir(sub)).unwrap();
        let docs = documents(&yaml).unwrap();
        let rendered: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
        assert_eq!(rendered, kinds, "deploy/kubernetes/{sub}");
        let file = temp(&format!("rendered-{}.yaml", sub.replace('/', "-")));
        std::fs::write(&file, &yaml).unwrap();
        for v in VERSIONS {
            let out = validate(&file, v);
            let text = printed(&out);
            assert!(out.status.success(), "{sub} against {v}:\n{text}");
            let minor = v.trim_end_matches(".0");
            for k in kinds.iter().filter(|k| **k != "ServiceMonitor") {
                let line = format!("passed for resource {}/", k.to_ascii_lowercase());
                assert!(
                    text.lines()
                        .any(|l| l.contains(&line) && l.ends_with(&format!("version {minor}"))),
                    "{sub}: no pass for {k} against {v}:\n{text}"
                );
            }
            // The CRD is not in Kubernetes' schemas: the next test validates it.
            if kinds.contains(&"ServiceMonitor") {
                assert!(
                    text.contains("Couldn't find schema for kind ServiceMonitor"),
                    "{text}"
                );
            }
        }
    }
    // The validator can fail: a misspelt field (strict) and a wrong type.
    let yaml = render(&deploy_dir("")).unwrap();
    for (from, to) in [
        ("hostNetwork: true", "hostNetwrok: true"),
        ("containerPort: 9717", "containerPort: \"9717\""),
    ] {
        assert!(yaml.contains(from), "{from}");
        let file = temp("broken.yaml");
        std::fs::write(&file, yaml.replacen(from, to, 1)).unwrap();
        let out = validate(&file, VERSIONS[2]);
        assert!(!out.status.success(), "{to} passed:\n{}", printed(&out));
    }
}

/// The ServiceMonitor against the Prometheus Operator's ServiceMonitor schema (v0.80's
/// CRD, as cloudcoil-models-prometheus-operator's pydantic models have it): types,
/// required fields and enumerations; and strictly: a field the schema does not know is
/// an error (the models ignore unknown fields, so the document must equal its own
/// round trip through them).
#[test]
fn the_service_monitor_validates_against_the_prometheus_operator_crd() {
    let yaml = render(&deploy_dir("prometheus-operator")).unwrap();
    let docs = documents(&yaml).unwrap();
    let sm = object(&docs, "ServiceMonitor").unwrap();
    let n = std::cell::Cell::new(0);
    let check = |doc: &Value| -> std::process::Output {
        n.set(n.get() + 1);
        let file = temp(&format!("sm-{}.json", n.get()));
        std::fs::write(&file, doc.to_string()).unwrap();
        Command::new(tool("python").unwrap())
            .arg("-c")
            .arg(
                r#"
import json, sys
from cloudcoil.models.prometheus_operator.v1 import ServiceMonitor
doc = json.load(open(sys.argv[1]))
model = ServiceMonitor.model_validate(doc)
back = model.model_dump(mode="json", by_alias=True, exclude_unset=True)
if back != doc:
    sys.exit("fields the CRD does not know, or changed: %s != %s" % (json.dumps(doc), json.dumps(back)))
print("valid ServiceMonitor", model.metadata.name)
"#,
            )
            .arg(&file)
            .output()
            .unwrap()
    };
    let ok = check(sm);
    assert!(ok.status.success(), "{}", printed(&ok));
    assert!(printed(&ok).contains("valid ServiceMonitor leakguard"));
    // What the Service offers: the port name, the selector.
    let svc = object(&docs, "Service").unwrap();
    assert_eq!(
        sm["spec"]["endpoints"][0]["port"],
        svc["spec"]["ports"][0]["name"]
    );
    assert_eq!(
        sm["spec"]["selector"]["matchLabels"],
        svc["metadata"]["labels"]
    );
    assert_eq!(
        svc["metadata"]["name"], "leakguard",
        "the alert rules' job name"
    );
    assert_eq!(svc["spec"]["clusterIP"], "None", "headless");
    // The check can fail: an unknown field, a wrong enumeration value, a missing selector.
    let mut unknown = sm.clone();
    unknown["spec"]["endpoints"][0]["intervall"] = "30s".into();
    let mut scheme = sm.clone();
    scheme["spec"]["endpoints"][0]["scheme"] = "gopher".into();
    let mut selector = sm.clone();
    selector["spec"].as_object_mut().unwrap().remove("selector");
    for bad in [unknown, scheme, selector] {
        let out = check(&bad);
        assert!(!out.status.success(), "accepted: {bad}");
    }
}

/// The ConfigMap's policy is packaging/leakguard.toml with the fleet's three changes
/// (metrics on every address, the placeholder interface, comments), and valid.
#[test]
fn the_config_map_policy_is_the_packaged_one_with_the_fleets_changes() {
    let yaml = render(&deploy_dir("")).unwrap();
    let docs = documents(&yaml).unwrap();
    let cm = object(&docs, "ConfigMap").unwrap();
    assert_eq!(cm["metadata"]["name"], "leakguard-policy", "no hash suffix");
    let policy = cm["data"]["leakguard.toml"].as_str().unwrap();
    let file = temp("leakguard.toml");
    std::fs::write(&file, policy).unwrap();
    let check = run(Command::new(leakguard_bin().unwrap())
        .arg("check-config")
        .arg(&file));
    assert!(check.contains("metrics.listen = 0.0.0.0:9717"), "{check}");
    let settings = |text: &str| -> Vec<String> {
        text.lines()
            .map(|l| l.split('#').next().unwrap().trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect()
    };
    let packaged = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/leakguard.toml"),
    )
    .unwrap();
    let fleet: Vec<String> = settings(policy)
        .into_iter()
        .map(|l| match l.as_str() {
            "listen = \"0.0.0.0:9717\"" => "listen = \"127.0.0.1:9717\"".into(),
            "interface = \"CHANGE-uplink\"" => "interface = \"eth1\"".into(),
            _ => l,
        })
        .collect();
    assert_eq!(fleet, settings(&packaged));
    assert!(
        policy.contains("CHANGE THIS") && policy.contains("PLACEHOLDER"),
        "the placeholder interface is marked"
    );
}

/// The DaemonSet: the node's network, not privileged, exactly CAP_BPF, CAP_PERFMON and
/// CAP_NET_ADMIN (the systemd unit's set), a read-only root as root, the node's bpffs
/// with HostToContainer propagation (Bidirectional needs a privileged container), the
/// policy read-only, probes on the port the policy listens on, one node at a time, the
/// image `cargo xtask image` builds. And the `podman run` the podman test derives from
/// it says the same.
#[test]
fn the_daemonset_is_what_the_podman_test_runs() {
    let docs = documents(&render(&deploy_dir("")).unwrap()).unwrap();
    let ds = object(&docs, "DaemonSet").unwrap();
    let spec = &ds["spec"];
    assert_eq!(spec["updateStrategy"]["type"], "RollingUpdate");
    assert_eq!(spec["updateStrategy"]["rollingUpdate"]["maxUnavailable"], 1);
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["hostNetwork"], true);
    assert_eq!(pod["priorityClassName"], "system-node-critical");
    assert!(pod["terminationGracePeriodSeconds"].as_u64().is_some());
    let c = &pod["containers"][0];
    let sc = &c["securityContext"];
    assert_eq!(sc["privileged"], false);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["runAsUser"], 0);
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/leakguard.service"),
    )
    .unwrap();
    let unit_caps: Vec<String> = unit
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .unwrap()
        .split_whitespace()
        .map(|c| c.trim_start_matches("CAP_").to_owned())
        .collect();
    assert_eq!(sc["capabilities"]["add"], serde_json::json!(unit_caps));
    let bpffs = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == "/sys/fs/bpf")
        .expect("the node's bpffs is mounted");
    assert_eq!(bpffs["mountPropagation"], "HostToContainer");
    for r in ["requests", "limits"] {
        assert!(c["resources"][r]["memory"].is_string(), "memory {r}");
    }
    assert_eq!(c["image"], fleet::image());

    let run = podman_run(ds, "NETNS", Path::new("/POLICY")).unwrap();
    let listen = object(&docs, "ConfigMap").unwrap()["data"]["leakguard.toml"]
        .as_str()
        .unwrap()
        .lines()
        .find_map(|l| l.trim().strip_prefix("listen = "))
        .unwrap()
        .trim_matches('"')
        .to_owned();
    assert_eq!(listen, format!("0.0.0.0:{}", run.probes.port));
    assert_eq!(
        (run.probes.readiness.as_str(), run.probes.liveness.as_str()),
        ("/readyz", "/healthz")
    );
    assert_eq!(
        run.args,
        ["run", "--config", "/etc/leakguard/leakguard.toml"]
    );
    for want in [
        "--network=ns:/run/netns/NETNS",
        "--cap-drop=all",
        "--cap-add=bpf,perfmon,net_admin",
        "--volume=/sys/fs/bpf:/sys/fs/bpf:rslave",
        "--volume=/POLICY:/etc/leakguard:ro",
        "--read-only",
        "--read-only-tmpfs=false",
        "--user=0:0",
        "--security-opt=no-new-privileges",
        "--security-opt=seccomp=unconfined",
    ] {
        assert!(
            run.options.iter().any(|o| o == want),
            "{want} in {:?}",
            run.options
        );
    }
    assert!(!run.options.iter().any(|o| o.contains("privileged")));
    // A field the mapping does not know is an error, not ignored.
    let mut more = ds.clone();
    more["spec"]["template"]["spec"]["containers"][0]["securityContext"]["procMount"] =
        "Unmasked".into();
    assert!(podman_run(&more, "NETNS", Path::new("/POLICY")).is_err());
}

/// Everything lands in leakguard's namespace, labelled for what the pod needs (the
/// privileged Pod Security level: the node's network, a hostPath, added capabilities;
/// the container itself is not privileged).
#[test]
fn everything_lands_in_a_namespace_that_admits_the_pod() {
    let docs = documents(&render(&deploy_dir("")).unwrap()).unwrap();
    let ns = object(&docs, "Namespace").unwrap();
    assert_eq!(
        ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "privileged"
    );
    for d in docs.iter().filter(|d| d["kind"] != "Namespace") {
        assert_eq!(d["metadata"]["namespace"], ns["metadata"]["name"], "{d}");
    }
}
