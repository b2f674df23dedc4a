//! The cluster's objects as gw.yaml vhosts: Ingresses and the Gateway API's
//! Gateways and HTTPRoutes (with their Services, EndpointSlices, TLS Secrets and
//! ReferenceGrants) translated into the same `VhostConfig`s a gw.yaml vhost
//! deserializes into, so that they go through the one resolution of layers and
//! the one compiler.
//!
//! Translation is pure: it reads a snapshot of objects (taken from the watch
//! caches, or listed once by `check`) and never talks to the API. Whatever it
//! cannot honour becomes a [`Problem`] on the object, naming the field, and the
//! rest is served.

pub mod attachments;
mod backends;
pub mod condition;
pub mod gateway;
mod hostnames;
mod ingress;
mod nginx;
pub mod security_policy;

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use gateway_api::gatewayclasses::GatewayClass;
use gateway_api::gateways::Gateway;
use gateway_api::httproutes::HttpRoute;
use gateway_api::referencegrants::ReferenceGrant;
use k8s_openapi::api::core::v1::{Namespace, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::ResourceExt;

use crate::config::schema::VhostConfig;
use crate::config::values::HostPattern;
use crate::config::LoadedConfig;
use attachments::{Attachments, LastGood};
use backends::Index;
pub use ingress::Owners;

/// Header names nothing from the cluster may set, add or remove (filters,
/// SecurityPolicies, snippets): they frame the message or the connection, and
/// Host has its own rewrite.
const FRAMING_HEADERS: [&str; 9] = [
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "content-length",
    "te",
    "trailer",
    "upgrade",
];

/// Whether a header frames the message or the connection.
pub(crate) fn frames(name: &http::HeaderName) -> bool {
    FRAMING_HEADERS.contains(&name.as_str())
}

/// Whether a remove pattern would take a framing header.
pub(crate) fn removes_framing(pattern: &crate::config::values::RemovePattern) -> bool {
    use crate::config::values::RemovePattern;
    match pattern {
        RemovePattern::Exact(name) => frames(name),
        RemovePattern::Prefix(prefix) => FRAMING_HEADERS
            .iter()
            .any(|h| h.starts_with(prefix.as_str())),
    }
}

/// The legacy annotation naming an Ingress's class.
const CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

/// The Gateway API's group, of its Gateways and HTTPRoutes.
pub const GATEWAY_API_GROUP: &str = "gateway.networking.k8s.io";

/// A consistent view of the objects the gateway reads.
#[derive(Debug, Clone, Default)]
pub struct ClusterObjects {
    pub classes: Vec<Arc<IngressClass>>,
    pub ingresses: Vec<Arc<Ingress>>,
    pub services: Vec<Arc<Service>>,
    pub slices: Vec<Arc<EndpointSlice>>,
    pub secrets: Vec<Arc<Secret>>,
    pub gateway_classes: Vec<Arc<GatewayClass>>,
    pub gateways: Vec<Arc<Gateway>>,
    pub http_routes: Vec<Arc<HttpRoute>>,
    pub grants: Vec<Arc<ReferenceGrant>>,
    /// For the labels `allowedRoutes` selectors match.
    pub namespaces: Vec<Arc<Namespace>>,
    pub security_policies: Vec<Arc<security_policy::SecurityPolicy>>,
}

/// What a translation hands the next one.
#[derive(Debug, Clone, Default)]
pub struct Previous {
    /// The owners of the previous plan's hosts.
    pub owners: Owners,
    /// The last accepted keys of each SecurityPolicy.
    pub policies: LastGood,
    /// The last accepted ingress-nginx annotations of each Ingress, by uid.
    pub annotations: nginx::LastGood,
}

/// Translates the SecurityPolicies, the Ingresses, then the Gateway API's
/// objects (which cannot take a name gw.yaml or an Ingress serves).
pub fn translate(
    objects: &ClusterObjects,
    loaded: &LoadedConfig,
    previous: &Previous,
) -> Translation {
    let index = Index::new(objects, ingress::own_addresses(loaded));
    let policies = Attachments::new(objects, loaded, &previous.policies);
    let mut out = ingress::translate(objects, loaded, &index, previous, &policies);
    let mut taken: Vec<HostPattern> = file_hosts(loaded).into_iter().map(|(p, _)| p).collect();
    taken.extend(out.vhosts.iter().flat_map(|v| v.hosts.iter().cloned()));
    let (vhosts, gateway_api) = gateway::translate(objects, loaded, &index, &taken, &policies);
    out.vhosts.extend(vhosts);
    out.gateway_api = gateway_api;
    out.policies = policies;
    out
}

impl ClusterObjects {
    /// The objects of a file of manifests (multi-document YAML), as `check
    /// --manifests` reads them: the kinds the gateway reads (others, such as
    /// Deployments or another project's `Gateway`, are passed over); an object
    /// without a namespace is in `default`, as `kubectl apply` puts it. An error
    /// names the document and why.
    pub fn from_yaml(yaml: &str) -> Result<ClusterObjects, String> {
        fn parse<K: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<Arc<K>, String> {
            serde_json::from_value(v)
                .map(Arc::new)
                .map_err(|e| e.to_string())
        }
        let mut out = ClusterObjects::default();
        for (i, doc) in serde_yaml::Deserializer::from_str(yaml).enumerate() {
            let at = |why: String| format!("document {}: {why}", i + 1);
            let mut value: serde_json::Value =
                serde::Deserialize::deserialize(doc).map_err(|e| at(e.to_string()))?;
            if value.is_null() {
                continue;
            }
            let Some(object) = value.as_object_mut() else {
                return Err(at("not an object".into()));
            };
            let text = |k: &str| {
                object
                    .get(k)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_string()
            };
            let (kind, api_version) = (text("kind"), text("apiVersion"));
            let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
            let read = match kind.as_str() {
                "Service" | "Secret" | "Namespace" => api_version == "v1",
                "IngressClass" | "Ingress" => group == "networking.k8s.io",
                "EndpointSlice" => group == "discovery.k8s.io",
                "GatewayClass" | "Gateway" | "HTTPRoute" | "ReferenceGrant" => {
                    group == GATEWAY_API_GROUP
                }
                "SecurityPolicy" => group == "secgw.io",
                _ => false,
            };
            if !read {
                continue;
            }
            let metadata = object
                .entry("metadata")
                .or_insert_with(|| serde_json::json!({}));
            let Some(metadata) = metadata.as_object_mut() else {
                return Err(at(format!("{kind}: metadata is not an object")));
            };
            let cluster_scoped =
                matches!(kind.as_str(), "IngressClass" | "GatewayClass" | "Namespace");
            if !cluster_scoped && metadata.get("namespace").is_none_or(|n| n.is_null()) {
                metadata.insert("namespace".into(), "default".into());
            }
            let result = match kind.as_str() {
                "IngressClass" => parse(value).map(|o| out.classes.push(o)),
                "Ingress" => parse(value).map(|o| out.ingresses.push(o)),
                "Service" => parse(value).map(|o| out.services.push(o)),
                "EndpointSlice" => parse(value).map(|o| out.slices.push(o)),
                "Secret" => parse(value).map(|o| out.secrets.push(o)),
                "GatewayClass" => parse(value).map(|o| out.gateway_classes.push(o)),
                "Gateway" => parse(value).map(|o| out.gateways.push(o)),
                "HTTPRoute" => parse(value).map(|o| out.http_routes.push(o)),
                "ReferenceGrant" => parse(value).map(|o| out.grants.push(o)),
                "Namespace" => parse(value).map(|o| out.namespaces.push(o)),
                _ => parse(value).map(|o| out.security_policies.push(o)),
            };
            result.map_err(|e| at(format!("{kind}: {e}")))?;
        }
        Ok(out)
    }

    /// Tells snapshots apart by what the gateway reads, whatever order the caches
    /// list them in: every object's kind, namespace, name and resource version,
    /// except that an Ingress, a Gateway, an HTTPRoute and a GatewayClass count by
    /// their generation and annotations (a Namespace by its labels), so that the
    /// status the gateway itself writes does not make a different plan (nor a
    /// recompile).
    pub fn fingerprint(&self) -> u64 {
        fn keys<K: ResourceExt>(kind: &str, objects: &[Arc<K>], out: &mut Vec<String>) {
            out.extend(objects.iter().map(|o| {
                format!(
                    "{kind}/{}/{}/{}",
                    o.namespace().unwrap_or_default(),
                    o.name_any(),
                    o.resource_version().unwrap_or_default()
                )
            }));
        }
        let mut all = Vec::new();
        keys("IngressClass", &self.classes, &mut all);
        fn specs<K: ResourceExt>(kind: &str, objects: &[Arc<K>], out: &mut Vec<String>) {
            out.extend(objects.iter().map(|o| {
                let meta = o.meta();
                format!(
                    "{kind}/{}/{:?}/{:?}/{:?}",
                    object_name(o.as_ref()),
                    meta.uid,
                    meta.generation,
                    meta.annotations
                )
            }));
        }
        specs("Ingress", &self.ingresses, &mut all);
        specs("GatewayClass", &self.gateway_classes, &mut all);
        specs("Gateway", &self.gateways, &mut all);
        specs("HTTPRoute", &self.http_routes, &mut all);
        specs("SecurityPolicy", &self.security_policies, &mut all);
        keys("ReferenceGrant", &self.grants, &mut all);
        all.extend(
            self.namespaces
                .iter()
                .map(|n| format!("Namespace/{}/{:?}", n.name_any(), n.metadata.labels)),
        );
        keys("Service", &self.services, &mut all);
        keys("EndpointSlice", &self.slices, &mut all);
        keys("Secret", &self.secrets, &mut all);
        all.sort_unstable();
        let mut hasher = DefaultHasher::new();
        all.hash(&mut hasher);
        hasher.finish()
    }
}

/// What the objects become.
#[derive(Debug, Default)]
pub struct Translation {
    /// One vhost per host, after gw.yaml's vhosts.
    pub vhosts: Vec<VhostConfig>,
    pub problems: Vec<Problem>,
    /// What was served with a change (an ingress-nginx annotation translated
    /// into what browsers did with it), for a Warning Event.
    pub notices: Vec<Problem>,
    /// The Ingresses with at least one path (or default backend) served, for their
    /// `status.loadBalancer`.
    pub served: Vec<Arc<Ingress>>,
    /// Which namespace owns each host, for the next translation.
    pub owners: ingress::Owners,
    /// The status of the Gateway API's objects.
    pub gateway_api: gateway::GatewayApi,
    /// Which SecurityPolicy applies where, and their status.
    pub policies: Attachments,
    /// The ingress-nginx annotations in force, for the next translation.
    pub annotations: nginx::LastGood,
}

impl Translation {
    /// What the next translation needs from this one.
    pub fn previous(&self) -> Previous {
        Previous {
            owners: self.owners.clone(),
            policies: self.policies.last_good.clone(),
            annotations: self.annotations.clone(),
        }
    }
}

/// Something on an object the gateway does not honour, for an Event on it.
#[derive(Debug, Clone)]
pub struct Problem {
    pub object: Arc<Ingress>,
    /// The Event's reason, CamelCase as Kubernetes' own.
    pub reason: &'static str,
    /// Starts with the field, the way gw.yaml errors start with the key path.
    pub message: String,
}

impl Problem {
    /// `namespace/name` of the object.
    pub fn object_name(&self) -> String {
        object_name(self.object.as_ref())
    }
}

/// Oldest first, then by `namespace/name`: the Gateway API's tie-breaker.
pub(crate) fn age<K: ResourceExt>(o: &K) -> (Option<String>, String) {
    (
        o.creation_timestamp().map(|t| t.0.to_string()),
        object_name(o),
    )
}

/// `namespace/name`, the route label of an Ingress's paths.
pub fn object_name<K: ResourceExt>(o: &K) -> String {
    format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any())
}

/// The hosts gw.yaml serves itself, which an Ingress cannot take.
fn file_hosts(loaded: &LoadedConfig) -> Vec<(crate::config::values::HostPattern, String)> {
    loaded
        .gateway
        .vhosts
        .iter()
        .flat_map(|v| v.hosts.iter().map(|h| (h.clone(), v.name.0.clone())))
        .collect()
}

/// What the translation tests share: objects written as YAML, and a gw.yaml.
#[cfg(test)]
pub(crate) mod testing {
    use super::{ClusterObjects, Translation};
    use crate::config::LoadedConfig;

    /// The objects of a multi-document YAML text, by kind.
    pub fn objects(yaml: &str) -> ClusterObjects {
        ClusterObjects::from_yaml(yaml).unwrap()
    }

    /// The objects of `yaml` as a gateway with gw.yaml's `vhosts` would serve them.
    pub fn translated(yaml: &str, vhosts: &str) -> Translation {
        let (_dir, loaded) = gateway(vhosts);
        super::translate(&objects(yaml), &loaded, &super::Previous::default())
    }

    /// A gw.yaml with a plain listener on 8080, Kubernetes mode, and `vhosts`.
    pub fn gateway(vhosts: &str) -> (tempfile::TempDir, LoadedConfig) {
        let dir = tempfile::tempdir().unwrap();
        let gw = dir.path().join("gw.yaml");
        std::fs::write(
            &gw,
            format!("listeners: [{{address: \"127.0.0.1:8080\"}}]\nkubernetes: {{enabled: true}}\n{vhosts}"),
        )
        .unwrap();
        let loaded = crate::config::load(&gw).unwrap();
        (dir, loaded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_are_read_by_kind_and_group_and_the_rest_passed_over() {
        let yaml = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n---\n\
                    apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: istio}\n---\n\
                    apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: web}\n---\n\
                    apiVersion: secgw.io/v1alpha1\nkind: SecurityPolicy\nmetadata: {name: p, namespace: shop}\n\
                    spec: {targetRefs: [{group: networking.k8s.io, kind: Ingress, name: web}]}\n";
        let o = ClusterObjects::from_yaml(yaml).unwrap();
        assert_eq!(
            (
                o.ingresses.len(),
                o.gateways.len(),
                o.security_policies.len()
            ),
            (1, 0, 1)
        );
        assert_eq!(
            o.ingresses[0].metadata.namespace.as_deref(),
            Some("default")
        );
        assert_eq!(
            o.security_policies[0].metadata.namespace.as_deref(),
            Some("shop")
        );
        for (bad, why) in [
            ("[1, 2]", "document 1: not an object"),
            (
                "apiVersion: v1\nkind: Service\nmetadata: x\n",
                "document 1: Service: metadata is not an object",
            ),
            (
                "---\napiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: 7}\n",
                "document 1: Service: ",
            ),
        ] {
            let e = ClusterObjects::from_yaml(bad).unwrap_err();
            assert!(e.starts_with(why), "{e}");
        }
    }
}
