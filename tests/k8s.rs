//! The Kubernetes ConfigMap carries a gw.yaml and policy files: laid out as the
//! kubelet mounts them, they must pass `pingora-secgw -t`.

mod common;

use common::test_flag;

/// The ConfigMap's files as the kubelet mounts them: each manifest's `data` in
/// turn, a later one's keys over an earlier one's (as kustomize merges a patch).
fn mounted(manifests: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for rel in manifests {
        let path = format!("{}/k8s/{rel}", env!("CARGO_MANIFEST_DIR"));
        let configmap: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let data = configmap["data"]
            .as_mapping()
            .expect("the ConfigMap has data");
        for (name, text) in data {
            std::fs::write(
                dir.path().join(name.as_str().unwrap()),
                text.as_str().unwrap(),
            )
            .unwrap();
        }
    }
    dir
}

#[test]
fn the_configmap_is_a_valid_configuration() {
    let dir = mounted(&["base/configmap.yaml"]);
    assert!(
        std::fs::read_dir(dir.path()).unwrap().count() >= 2,
        "gw.yaml and at least one policy file"
    );
    let (code, text) = test_flag(&dir.path().join("gw.yaml"));
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("is valid (1 vhosts)"), "{text}");
}

/// The Kubernetes-mode overlay's gw.yaml, over the base's policy files, loads too
/// (`-t` without `--kubeconfig` does not reach for the cluster).
#[test]
fn the_kubernetes_mode_configmap_is_a_valid_configuration() {
    let dir = mounted(&["base/configmap.yaml", "kubernetes-mode/configmap.yaml"]);
    let gw = std::fs::read_to_string(dir.path().join("gw.yaml")).unwrap();
    let gw: serde_yaml::Value = serde_yaml::from_str(&gw).unwrap();
    assert_eq!(gw["kubernetes"]["enabled"], serde_yaml::Value::Bool(true));
    let (code, text) = test_flag(&dir.path().join("gw.yaml"));
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("is valid (1 vhosts)"), "{text}");
}

fn manifest(name: &str) -> serde_yaml::Value {
    let path = format!("{}/k8s/base/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// SIGTERM's drain, Pingora's grace and its runtime timeout, in the ConfigMap's
/// gw.yaml, fit in the pod's termination grace period, and the readiness probe
/// notices the 503 while the listeners still serve.
#[test]
fn the_pod_lifecycle_fits_the_gateways_shutdown_sequence() {
    let configmap = manifest("configmap.yaml");
    let gw: serde_yaml::Value =
        serde_yaml::from_str(configmap["data"]["gw.yaml"].as_str().unwrap()).unwrap();
    let seconds = |key: &str| {
        gw[key]
            .as_u64()
            .unwrap_or_else(|| panic!("gw.yaml sets {key}"))
    };
    let drain = seconds("shutdown_drain_seconds");
    let shutdown =
        drain + seconds("grace_period_seconds") + seconds("graceful_shutdown_timeout_seconds");
    assert_eq!((drain, shutdown), (5, 20));

    let deployment = manifest("deployment.yaml");
    let pod = &deployment["spec"]["template"]["spec"];
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(
        grace >= shutdown + 5,
        "{grace} s for a {shutdown} s shutdown"
    );
    let container = &pod["containers"][0];
    assert!(
        container["lifecycle"]["preStop"].is_null(),
        "a preStop hook would delay SIGTERM and lengthen the drain"
    );
    let readiness = &container["readinessProbe"];
    assert_eq!(readiness["httpGet"]["path"].as_str(), Some("/readyz"));
    assert_eq!(readiness["httpGet"]["port"].as_str(), Some("admin"));
    // The probes' worst case, plus a second for the change to propagate.
    let noticed = readiness["periodSeconds"].as_u64().unwrap()
        * readiness["failureThreshold"].as_u64().unwrap()
        + readiness["timeoutSeconds"].as_u64().unwrap();
    assert!(
        noticed + 1 < drain,
        "readiness fails after {noticed} s, drain is {drain} s"
    );
    assert_eq!(
        container["livenessProbe"]["httpGet"]["path"].as_str(),
        Some("/healthz")
    );
}
