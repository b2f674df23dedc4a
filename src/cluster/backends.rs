//! A Service port as upstream addresses: the ready endpoints of its EndpointSlices.
//!
//! Only endpoints that are ready and not terminating get new requests, which is
//! what lets a rolling update or a scale-down finish without a failed request:
//! the endpoint leaves the plan before its pod stops.
//!
//! Each Service port and each Secret is resolved once per snapshot, however many
//! paths or hosts name it: an Ingress with thousands of rules over one large
//! Secret costs one parse, not thousands.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Secret, Service, ServicePort};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::IngressServiceBackend;
use kube::{Resource, ResourceExt};
use rustls::sign::CertifiedKey;

use super::ClusterObjects;

/// The label EndpointSlices carry with the name of their Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The objects of a snapshot by namespace and name.
pub struct Index<'a> {
    services: HashMap<(&'a str, &'a str), &'a Service>,
    slices: HashMap<(&'a str, &'a str), Vec<&'a EndpointSlice>>,
    secrets: HashMap<(&'a str, &'a str), &'a Secret>,
    /// Addresses no endpoint may have: the gateway's own (see [`routable`]).
    own: Vec<IpAddr>,
    resolved: RefCell<HashMap<String, Resolved>>,
    certificates: RefCell<HashMap<(String, String), Certificate>>,
}

/// A Service port's addresses, or why it cannot be served.
type Resolved = Result<Arc<[String]>, Refused>;
/// A Secret's certificate, or why it cannot be used.
type Certificate = Result<Arc<CertifiedKey>, String>;

/// Why a backend cannot be served: the field under `backend.service` and a reason.
#[derive(Clone)]
pub struct Refused {
    pub field: &'static str,
    pub reason: String,
}

impl<'a> Index<'a> {
    /// `own`: the gateway's own addresses, which no endpoint may point at.
    pub fn new(objects: &'a ClusterObjects, own: Vec<IpAddr>) -> Index<'a> {
        fn key<K: ResourceExt>(o: &Arc<K>) -> (&str, &str) {
            let meta = o.meta();
            (
                meta.namespace.as_deref().unwrap_or_default(),
                meta.name.as_deref().unwrap_or_default(),
            )
        }
        let mut slices: HashMap<_, Vec<_>> = HashMap::new();
        for s in &objects.slices {
            let Some(service) = s
                .meta()
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL))
            else {
                continue;
            };
            slices
                .entry((key(s).0, service.as_str()))
                .or_default()
                .push(s.as_ref());
        }
        Index {
            services: objects
                .services
                .iter()
                .map(|s| (key(s), s.as_ref()))
                .collect(),
            secrets: objects
                .secrets
                .iter()
                .map(|s| (key(s), s.as_ref()))
                .collect(),
            slices,
            own,
            resolved: RefCell::default(),
            certificates: RefCell::default(),
        }
    }

    /// `host:port` of every ready endpoint of the backend's Service port, sorted;
    /// empty when none is ready.
    pub fn upstreams(
        &self,
        namespace: &str,
        backend: &IngressServiceBackend,
    ) -> Result<Arc<[String]>, Refused> {
        let port = backend.port.as_ref();
        let key = format!(
            "{namespace}/{}/{:?}/{:?}",
            backend.name,
            port.and_then(|p| p.number),
            port.and_then(|p| p.name.as_deref())
        );
        if let Some(done) = self.resolved.borrow().get(&key) {
            return done.clone();
        }
        let done = self.resolve(namespace, backend).map(Arc::from);
        self.resolved.borrow_mut().insert(key, done.clone());
        done
    }

    fn resolve(
        &self,
        namespace: &str,
        backend: &IngressServiceBackend,
    ) -> Result<Vec<String>, Refused> {
        let service = self
            .services
            .get(&(namespace, backend.name.as_str()))
            .ok_or_else(|| Refused {
                field: "name",
                reason: format!("Service {namespace}/{} not found", backend.name),
            })?;
        let spec = service.spec.as_ref();
        if spec.and_then(|s| s.type_.as_deref()) == Some("ExternalName") {
            // An ExternalName can point anywhere, including at other namespaces'
            // Services through the gateway's own network position.
            return Err(Refused {
                field: "name",
                reason: format!(
                    "Service {namespace}/{} is of type ExternalName, which the gateway does not follow",
                    backend.name
                ),
            });
        }
        let ports = spec.and_then(|s| s.ports.as_deref()).unwrap_or_default();
        let port = backend.port.as_ref();
        let wanted = |p: &&ServicePort| match port {
            Some(bp) if bp.number.is_some() => bp.number == Some(p.port),
            Some(bp) => bp.name.is_some() && bp.name == p.name,
            None => ports.len() == 1,
        };
        let service_port = ports.iter().find(wanted).ok_or_else(|| Refused {
            field: "port",
            reason: format!(
                "Service {namespace}/{} has no port {}",
                backend.name,
                match port {
                    Some(p) => p
                        .number
                        .map_or_else(|| p.name.clone().unwrap_or_default(), |n| n.to_string()),
                    None => "(none given, and it has several or none)".into(),
                }
            ),
        })?;
        if service_port.protocol.as_deref().is_some_and(|p| p != "TCP") {
            return Err(Refused {
                field: "port",
                reason: format!("Service port {} is not TCP", service_port.port),
            });
        }
        let mut addresses = BTreeSet::new();
        let slices = self.slices.get(&(namespace, backend.name.as_str()));
        for slice in slices.into_iter().flatten() {
            // FQDN slices (deprecated) are not followed: a name can resolve to the
            // gateway's own loopback, where its admin listener is.
            if !matches!(slice.address_type.as_str(), "IPv4" | "IPv6") {
                continue;
            }
            // A slice's port carries the Service port's name ("" when unnamed).
            let name = service_port.name.as_deref().unwrap_or_default();
            let Some(port) = slice
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref().unwrap_or_default() == name)
                .and_then(|p| u16::try_from(p.port?).ok())
            else {
                continue;
            };
            for endpoint in slice.endpoints.iter().flatten() {
                let conditions = endpoint.conditions.as_ref();
                let ready = conditions.and_then(|c| c.ready) != Some(false);
                let terminating = conditions.and_then(|c| c.terminating) == Some(true);
                // Every address of an endpoint is the same pod: the first is enough.
                let Some(address) = endpoint.addresses.first().filter(|_| ready && !terminating)
                else {
                    continue;
                };
                let Some(ip) = address
                    .parse::<IpAddr>()
                    .ok()
                    .map(|ip| ip.to_canonical())
                    .filter(|ip| routable(*ip, &self.own))
                else {
                    continue;
                };
                addresses.insert(SocketAddr::new(ip, port).to_string());
            }
        }
        Ok(addresses.into_iter().collect())
    }

    /// The certificate of a `kubernetes.io/tls` Secret.
    pub fn certificate(&self, namespace: &str, name: &str) -> Result<Arc<CertifiedKey>, String> {
        let key = (namespace.to_string(), name.to_string());
        if let Some(done) = self.certificates.borrow().get(&key) {
            return done.clone();
        }
        let done = self.read_certificate(namespace, name);
        self.certificates.borrow_mut().insert(key, done.clone());
        done
    }

    fn read_certificate(&self, namespace: &str, name: &str) -> Result<Arc<CertifiedKey>, String> {
        let secret = self.secrets.get(&(namespace, name)).ok_or_else(|| {
            format!("Secret {namespace}/{name} of type kubernetes.io/tls not found")
        })?;
        let data = secret.data.as_ref();
        let get = |key: &str| data.and_then(|d| d.get(key)).map(|b| b.0.as_slice());
        let (Some(cert), Some(key)) = (get("tls.crt"), get("tls.key")) else {
            return Err(format!(
                "Secret {namespace}/{name} lacks tls.crt or tls.key"
            ));
        };
        crate::pem::certified_key_from_pem(cert, key)
            .map_err(|e| format!("Secret {namespace}/{name}: {e}"))
    }
}

/// Cloud metadata services outside the link-local ranges: Alibaba's, AWS's IPv6.
const METADATA: [IpAddr; 2] = [
    IpAddr::V4(Ipv4Addr::new(100, 100, 100, 200)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)),
];

/// Not loopback, link-local (cloud metadata services live there), unspecified, a
/// metadata service elsewhere, or the gateway's own address (a slice pointing the
/// gateway at itself would loop, or reach its admin listener from outside). The
/// API refuses the first three too; a gateway does not rely on it.
fn routable(ip: IpAddr, own: &[IpAddr]) -> bool {
    let link_local = match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_unicast_link_local(),
    };
    !(ip.is_loopback()
        || ip.is_unspecified()
        || link_local
        || METADATA.contains(&ip)
        || own.contains(&ip))
}
