//! The cluster's objects as gw.yaml vhosts: Ingresses (with their Services,
//! EndpointSlices and TLS Secrets) translated into the same `VhostConfig`s a
//! gw.yaml vhost deserializes into, so that they go through the one resolution
//! of layers and the one compiler.
//!
//! Translation is pure: it reads a snapshot of objects (taken from the watch
//! caches, or listed once by `check`) and never talks to the API. Whatever it
//! cannot honour becomes a [`Problem`] on the object, naming the field, and the
//! rest is served.

mod backends;
mod ingress;

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::{Resource, ResourceExt};

use crate::config::schema::VhostConfig;
use crate::config::LoadedConfig;
pub use ingress::{translate, Owners};

/// A consistent view of the objects the gateway reads.
#[derive(Debug, Clone, Default)]
pub struct ClusterObjects {
    pub classes: Vec<Arc<IngressClass>>,
    pub ingresses: Vec<Arc<Ingress>>,
    pub services: Vec<Arc<Service>>,
    pub slices: Vec<Arc<EndpointSlice>>,
    pub secrets: Vec<Arc<Secret>>,
}

impl ClusterObjects {
    /// Tells snapshots apart by what the gateway reads, whatever order the caches
    /// list them in: every object's kind, namespace, name and resource version,
    /// except that an Ingress counts by its generation and annotations, so that
    /// the status the gateway itself writes does not make a different plan (nor a
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
        all.extend(self.ingresses.iter().map(|i| {
            let meta = i.meta();
            format!(
                "Ingress/{}/{:?}/{:?}/{:?}",
                object_name(i.as_ref()),
                meta.uid,
                meta.generation,
                meta.annotations
            )
        }));
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
