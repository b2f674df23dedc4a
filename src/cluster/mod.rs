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

mod backends;
pub mod gateway;
mod hostnames;
mod ingress;

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
use backends::Index;
pub use ingress::Owners;

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
}

/// Translates the Ingresses, then the Gateway API's objects (which cannot take
/// a name gw.yaml or an Ingress serves); `previous`: the owners of the
/// previous plan's hosts.
pub fn translate(
    objects: &ClusterObjects,
    loaded: &LoadedConfig,
    previous: &Owners,
) -> Translation {
    let index = Index::new(objects, ingress::own_addresses(loaded));
    let mut out = ingress::translate(objects, loaded, &index, previous);
    let mut taken: Vec<HostPattern> = file_hosts(loaded).into_iter().map(|(p, _)| p).collect();
    taken.extend(out.vhosts.iter().flat_map(|v| v.hosts.iter().cloned()));
    let (vhosts, gateway_api) = gateway::translate(objects, loaded, &index, &taken);
    out.vhosts.extend(vhosts);
    out.gateway_api = gateway_api;
    out
}

impl ClusterObjects {
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
    /// The Ingresses with at least one path (or default backend) served, for their
    /// `status.loadBalancer`.
    pub served: Vec<Arc<Ingress>>,
    /// Which namespace owns each host, for the next translation.
    pub owners: ingress::Owners,
    /// The status of the Gateway API's objects.
    pub gateway_api: gateway::GatewayApi,
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
    use std::sync::Arc;

    use super::{ClusterObjects, Owners, Translation};
    use crate::config::LoadedConfig;

    /// The objects of a multi-document YAML text, by kind.
    pub fn objects(yaml: &str) -> ClusterObjects {
        let mut out = ClusterObjects::default();
        for doc in serde_yaml::Deserializer::from_str(yaml) {
            let value: serde_json::Value = serde::Deserialize::deserialize(doc).unwrap();
            let kind = value["kind"].as_str().unwrap().to_string();
            fn parse<K: serde::de::DeserializeOwned>(v: serde_json::Value) -> Arc<K> {
                Arc::new(serde_json::from_value(v).unwrap())
            }
            match kind.as_str() {
                "IngressClass" => out.classes.push(parse(value)),
                "Ingress" => out.ingresses.push(parse(value)),
                "Service" => out.services.push(parse(value)),
                "EndpointSlice" => out.slices.push(parse(value)),
                "Secret" => out.secrets.push(parse(value)),
                "GatewayClass" => out.gateway_classes.push(parse(value)),
                "Gateway" => out.gateways.push(parse(value)),
                "HTTPRoute" => out.http_routes.push(parse(value)),
                "ReferenceGrant" => out.grants.push(parse(value)),
                "Namespace" => out.namespaces.push(parse(value)),
                other => panic!("{other}"),
            }
        }
        out
    }

    /// The objects of `yaml` as a gateway with gw.yaml's `vhosts` would serve them.
    pub fn translated(yaml: &str, vhosts: &str) -> Translation {
        let (_dir, loaded) = gateway(vhosts);
        super::translate(&objects(yaml), &loaded, &Owners::new())
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
