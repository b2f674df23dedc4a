//! The Kubernetes ConfigMap carries a gw.yaml and policy files: laid out as the
//! kubelet mounts them, they must pass `pingora-secgw -t`.

mod common;

use common::test_flag;

#[test]
fn the_configmap_is_a_valid_configuration() {
    let manifest =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/k8s/configmap.yaml"))
            .unwrap();
    let configmap: serde_yaml::Value = serde_yaml::from_str(&manifest).unwrap();
    let data = configmap["data"]
        .as_mapping()
        .expect("the ConfigMap has data");
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in data {
        std::fs::write(
            dir.path().join(name.as_str().unwrap()),
            text.as_str().unwrap(),
        )
        .unwrap();
    }
    assert!(data.len() >= 2, "gw.yaml and at least one policy file");
    let (code, text) = test_flag(&dir.path().join("gw.yaml"));
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("is valid (1 vhosts)"), "{text}");
}
