//! A real control plane for the Kubernetes tests: etcd and kube-apiserver started by
//! `scripts/control-plane.sh` under the test's own directory, stopped on drop, and
//! the objects the tests write into it (server-side apply, as `kubectl apply`).
//!
//! No controller-manager runs, so the tests write EndpointSlices themselves. The
//! API refuses loopback addresses in them (and FQDN endpoints need a dotted
//! name), so each test runs in a network namespace of its own: its thread
//! leaves the host's, and everything it starts (the control plane, the
//! gateway, the upstreams on [`TEST_HOST`]) lives in the new one, where
//! [`TEST_HOST`] is an address of the namespace's own loopback interface.

use std::path::PathBuf;
use std::process::Command;

use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::Client;
use serde_json::Value;

/// The upstreams' address in EndpointSlices: on the test namespace's `lo`.
pub const TEST_HOST: &str = "10.244.0.1";

/// Moves the calling thread (and whatever it starts from now on) into a new
/// network namespace with `lo` up and [`TEST_HOST`] on it. Needs CAP_NET_ADMIN.
fn private_network() {
    // SAFETY: unshare(2) takes no pointers; it changes only this thread.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(
        rc,
        0,
        "unshare(CLONE_NEWNET): {}",
        std::io::Error::last_os_error()
    );
    for args in [
        &["link", "set", "lo", "up"][..],
        &["addr", "add", &format!("{TEST_HOST}/32"), "dev", "lo"],
    ] {
        let status = Command::new("ip").args(args).status().unwrap();
        assert!(status.success(), "ip {args:?}");
    }
}

pub struct ControlPlane {
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
    pub client: Client,
    rt: tokio::runtime::Runtime,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/control-plane.sh")
}

impl ControlPlane {
    /// In a network namespace of the calling thread's own (see the module's doc).
    pub fn start() -> ControlPlane {
        private_network();
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = start_in(&dir);
        let rt = super::runtime();
        let client = rt.block_on(async {
            let file = kube::config::Kubeconfig::read_from(&kubeconfig).unwrap();
            let config = kube::Config::from_custom_kubeconfig(file, &Default::default())
                .await
                .unwrap();
            Client::try_from(config).unwrap()
        });
        ControlPlane {
            dir,
            kubeconfig,
            client,
            rt,
        }
    }

    /// Stops kube-apiserver alone (etcd keeps the objects) and starts it again on
    /// the same port; `between` runs while it is down.
    pub fn restart_apiserver(&self, between: impl FnOnce()) {
        let pid: i32 = std::fs::read_to_string(self.dir.path().join("kube-apiserver.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // SAFETY: kill(2) takes no pointers.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        between();
        assert_eq!(start_in(&self.dir), self.kubeconfig);
    }

    /// A kubeconfig for the gateway's own ServiceAccount, bound to the shipped
    /// ClusterRole (k8s/kubernetes-mode/rbac.yaml), so the gateway runs with exactly the
    /// permissions the manifests grant, not as an admin.
    pub fn gateway_kubeconfig(&self) -> PathBuf {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let read = |rel: &str| std::fs::read_to_string(root.join(rel)).unwrap();
        self.apply(&namespace("pingora-secgw"));
        self.apply(&read("k8s/base/serviceaccount.yaml"));
        // The ClusterRole, the Role and their bindings (the Helm chart's rendering).
        self.apply(&read("k8s/kubernetes-mode/rbac.yaml"));
        let api: Api<k8s_openapi::api::core::v1::ServiceAccount> =
            Api::namespaced(self.client.clone(), "pingora-secgw");
        let request = serde_json::json!({
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"expirationSeconds": 3600},
        });
        let answer: Value = self
            .rt
            .block_on(api.create_subresource(
                "token",
                "pingora-secgw",
                &Default::default(),
                &request,
            ))
            .unwrap();
        let token = answer["status"]["token"].as_str().unwrap();
        let mut config: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(&self.kubeconfig).unwrap()).unwrap();
        config["users"][0]["user"] = serde_yaml::from_str(&format!("{{token: {token}}}")).unwrap();
        // The namespace of the gateway's own objects (its status Lease), as a
        // pod's service account has it.
        config["contexts"][0]["context"]["namespace"] = "pingora-secgw".into();
        let path = self.dir.path().join("gateway.kubeconfig");
        std::fs::write(&path, serde_yaml::to_string(&config).unwrap()).unwrap();
        path
    }

    /// Creates or updates every object of a multi-document YAML text.
    pub fn apply(&self, yaml: &str) {
        for doc in serde_yaml::Deserializer::from_str(yaml) {
            let value: Value = serde::Deserialize::deserialize(doc).unwrap();
            if value.is_null() {
                continue;
            }
            let (api, name) = self.api_for(&value);
            let params = PatchParams::apply("secgw-tests").force();
            self.rt
                .block_on(api.patch(&name, &params, &Patch::Apply(&value)))
                .unwrap_or_else(|e| panic!("applying {name}: {e}"));
        }
    }

    /// Applies one object with strict field validation, as `kubectl apply`
    /// does by default: an unknown or duplicated field is an error, not pruned.
    pub fn try_apply_strict(&self, yaml: &str) -> Result<(), String> {
        let value: Value = serde_yaml::from_str(yaml).unwrap();
        let (api, name) = self.api_for(&value);
        let params = PatchParams::apply("secgw-tests")
            .force()
            .validation_strict();
        self.rt
            .block_on(api.patch(&name, &params, &Patch::Apply(&value)))
            .map(drop)
            .map_err(|e| e.to_string())
    }

    pub fn delete(&self, yaml: &str) {
        let value: Value = serde_yaml::from_str(yaml).unwrap();
        let (api, name) = self.api_for(&value);
        self.rt
            .block_on(api.delete(&name, &DeleteParams::default()))
            .unwrap_or_else(|e| panic!("deleting {name}: {e}"));
    }

    /// An object as the API server holds it now.
    pub fn get(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> Value {
        let value = serde_json::json!({
            "apiVersion": api_version, "kind": kind,
            "metadata": {"namespace": namespace, "name": name},
        });
        let (api, name) = self.api_for(&value);
        serde_json::to_value(self.rt.block_on(api.get(&name)).unwrap()).unwrap()
    }

    /// (reason, note) of every Event about the named object.
    pub fn events(&self, namespace: &str, name: &str) -> Vec<(String, String)> {
        let api: Api<k8s_openapi::api::events::v1::Event> =
            Api::namespaced(self.client.clone(), namespace);
        let list = self.rt.block_on(api.list(&Default::default())).unwrap();
        list.items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
            .collect()
    }

    fn api_for(&self, value: &Value) -> (Api<DynamicObject>, String) {
        let api_version = value["apiVersion"].as_str().unwrap();
        let kind = value["kind"].as_str().unwrap();
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
        let name = value["metadata"]["name"].as_str().unwrap().to_string();
        let api = match value["metadata"]["namespace"].as_str() {
            Some(ns) if !ns.is_empty() && kind != "Namespace" && kind != "IngressClass" => {
                Api::namespaced_with(self.client.clone(), ns, &resource)
            }
            _ => Api::all_with(self.client.clone(), &resource),
        };
        (api, name)
    }
}

fn start_in(dir: &tempfile::TempDir) -> PathBuf {
    let out = Command::new(script())
        .arg("start")
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "control-plane.sh start failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout.lines().find_map(|l| l.strip_prefix("KUBECONFIG="));
    PathBuf::from(line.unwrap_or_else(|| panic!("no KUBECONFIG line in {stdout:?}")))
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}

/// A Service `name` with one TCP port named `http`, and an EndpointSlice per
/// upstream port on [`TEST_HOST`], each with its endpoint's conditions: `(port,
/// ready, terminating)`.
pub fn service(namespace: &str, name: &str, endpoints: &[(u16, bool, bool)]) -> String {
    let mut yaml = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {namespace}}}\n\
         spec:\n  ports: [{{name: http, port: 80, protocol: TCP}}]\n"
    );
    for (port, ready, terminating) in endpoints {
        yaml.push_str(&slice(namespace, name, *port, *ready, *terminating));
    }
    yaml
}

/// One EndpointSlice of Service `service`: [`TEST_HOST`] on `port`.
pub fn slice(namespace: &str, service: &str, port: u16, ready: bool, terminating: bool) -> String {
    format!(
        "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata:\n  name: {service}-{port}\n  namespace: {namespace}\n  \
         labels: {{kubernetes.io/service-name: {service}}}\naddressType: IPv4\n\
         ports: [{{name: http, port: {port}, protocol: TCP}}]\n\
         endpoints:\n  - addresses: [\"{TEST_HOST}\"]\n    \
         conditions: {{ready: {ready}, serving: true, terminating: {terminating}}}\n"
    )
}

/// The IngressClass `name` of the gateway's controller (`default`: the
/// cluster's default class).
pub fn ingress_class(name: &str, default: bool) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: {name}\n  \
         annotations: {{ingressclass.kubernetes.io/is-default-class: \"{default}\"}}\n\
         spec: {{controller: secgw.io/ingress-controller}}\n"
    )
}

pub fn namespace(name: &str) -> String {
    format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}}}\n")
}

/// A `kubernetes.io/tls` Secret.
pub fn tls_secret(namespace: &str, name: &str, leaf: &super::tls::Leaf) -> String {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {namespace}}}\n\
         type: kubernetes.io/tls\ndata:\n  tls.crt: {}\n  tls.key: {}\n",
        b64(&leaf.cert_pem),
        b64(&leaf.key_pem)
    )
}

/// gw.yaml for Kubernetes mode: a plain and a TLS listener (its default
/// certificate in `certs/`), the admin listener, and `kubernetes:` with the
/// given class and namespace; `rest` follows (`vhosts:` ...).
pub fn gw_yaml(kubeconfig: &std::path::Path, class: &str, namespace: &str, rest: &str) -> String {
    format!(
        "listeners:\n  - address: \"{{listen}}\"\n  - address: \"{{tls}}\"\n    \
         tls: {{cert: certs/default.pem, key: certs/default.key}}\n\
         admin: {{address: \"{{admin}}\"}}\n\
         kubernetes:\n  enabled: true\n  kubeconfig: {}\n  ingress_class: {class}\n  \
         namespaces: [{namespace}]\n  status_address: 192.0.2.10\n{rest}",
        kubeconfig.display()
    )
}
