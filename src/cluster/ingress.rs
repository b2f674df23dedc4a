//! Ingress objects as vhosts and routes (Kubernetes' `networking.k8s.io/v1`).
//!
//! Which Ingresses: those of the configured IngressClass (by `ingressClassName`,
//! by the legacy `kubernetes.io/ingress.class` annotation, or by carrying neither
//! while the class is the default one). Older Ingresses win every conflict. A host
//! belongs to one namespace, so another team cannot take over paths of it: the one
//! that owned it in the previous plan while an Ingress there still names it, else
//! the namespace of the oldest Ingress naming it. gw.yaml's vhosts win over every
//! Ingress. An Ingress larger than [`MAX_PATHS`] paths, or whose paths together
//! name more than [`MAX_ADDRESSES`] endpoint addresses, is refused (in part), so
//! one object cannot make every recompile cost gigabytes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::networking::v1::{Ingress, IngressBackend, IngressClass};
use kube::ResourceExt;
use rustls::sign::CertifiedKey;

use super::attachments::{Attachments, Kind};
use super::backends::Index;
use super::nginx;
use super::{
    file_hosts, object_name, ClusterObjects, Previous, Problem, Translation, CLASS_ANNOTATION,
};
use crate::config::kubernetes::INGRESS_CONTROLLER;
use crate::config::route_rules::{RouteRedirect, RouteRules};
use crate::config::schema::{RespondConfig, RouteConfig, VhostConfig};
use crate::config::values::{HostPattern, VhostName};
use crate::config::LoadedConfig;
use crate::routing::paths::{normalize_path, prefix_key};

/// Paths of one Ingress (over all its rules).
pub const MAX_PATHS: usize = 1000;
/// Upstream addresses of one Ingress, summed over its paths.
pub const MAX_ADDRESSES: usize = 100_000;

/// Which namespace owns each host (by its text, `*` for the catch-all).
pub type Owners = HashMap<String, String>;

/// A named policy of `policy_files` for the Ingress's paths, over
/// `kubernetes.default_policy` and under the SecurityPolicies attached to it.
pub const POLICY_ANNOTATION: &str = "secgw.io/policy";
const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";

/// One host's routes, as the Ingresses that own it give them.
struct Host {
    routes: Vec<RouteConfig>,
    /// (kind, path) taken, and by which Ingress.
    taken: HashMap<(bool, String), String>,
    certificate: Option<Arc<CertifiedKey>>,
    default_backend: Option<Arc<[String]>>,
}

/// The Ingresses of the configured class, as vhosts after gw.yaml's own;
/// `previous`: the owners of the previous plan's hosts and the annotations
/// last accepted; `policies`: the SecurityPolicies attached to Ingresses.
pub fn translate(
    objects: &ClusterObjects,
    loaded: &LoadedConfig,
    index: &Index,
    previous: &Previous,
    policies: &Attachments,
) -> Translation {
    let settings = &loaded.gateway.kubernetes;
    let mut out = Translation::default();
    let Some(class) = objects
        .classes
        .iter()
        .find(|c| c.name_any() == settings.ingress_class.0)
        .filter(|c| controller(c) == Some(INGRESS_CONTROLLER))
    else {
        // Said at every compile only while there are Ingresses it concerns: a
        // cluster served through the Gateway API alone has none.
        if !objects.ingresses.is_empty() {
            log::warn!(
                "no IngressClass `{}` with controller {INGRESS_CONTROLLER}: no Ingress is served",
                settings.ingress_class.0
            );
        }
        return out;
    };
    let is_default = class
        .annotations()
        .get(DEFAULT_CLASS_ANNOTATION)
        .map(String::as_str)
        == Some("true");
    let mut ingresses: Vec<&Arc<Ingress>> = objects
        .ingresses
        .iter()
        .filter(|i| of_class(i, &class.name_any(), is_default))
        .collect();
    ingresses.sort_by(|a, b| {
        (a.creation_timestamp(), object_name(a.as_ref()))
            .cmp(&(b.creation_timestamp(), object_name(b.as_ref())))
    });

    let taken_by_file = file_hosts(loaded);
    out.owners = owners(&ingresses, &previous.owners);
    let mut hosts: BTreeMap<HostKey, Host> = BTreeMap::new();
    // `from-to-www-redirect`: (Ingress, its name, whether it has TLS there).
    let mut www: Vec<(Arc<Ingress>, String, bool)> = Vec::new();
    for ingress in ingresses {
        let mut served = false;
        let mut problem = |reason, message: String| {
            out.problems.push(Problem {
                object: ingress.clone(),
                reason,
                message,
            })
        };
        let namespace = ingress.namespace().unwrap_or_default();
        let name = object_name(ingress.as_ref());
        let Some(spec) = ingress.spec.as_ref() else {
            continue;
        };
        let named = ingress.annotations().get(POLICY_ANNOTATION).cloned();
        if let Some(policy) = named.as_ref().filter(|p| !loaded.policies.contains_key(*p)) {
            problem(
                "UnsupportedValue",
                format!(
                    "metadata.annotations[{POLICY_ANNOTATION}]: no policy `{policy}` in the \
                     gateway's policy_files; the Ingress is not served until there is"
                ),
            );
            continue;
        }
        let attached: Vec<_> = policies
            .get(&namespace, Kind::Ingress, &ingress.name_any(), None)
            .into_iter()
            .collect();
        let has_tls = spec.tls.as_ref().is_some_and(|t| !t.is_empty());
        let uid = ingress.uid().unwrap_or_default();
        let nginx = match nginx::read(ingress.annotations(), has_tls) {
            Ok(n) => Arc::new(n),
            // Served before: its last accepted annotations stay, and the
            // Event says why the new ones are not.
            Err(message) => match previous.annotations.get(&uid).filter(|_| !uid.is_empty()) {
                Some(kept) => {
                    problem(
                        "UnsupportedValue",
                        format!(
                            "metadata.annotations: {message}; its last accepted annotations \
                             stay in force"
                        ),
                    );
                    kept.clone()
                }
                None => {
                    problem(
                        "UnsupportedValue",
                        format!("metadata.annotations: {message}"),
                    );
                    continue;
                }
            },
        };
        if !uid.is_empty() {
            out.annotations.insert(uid, nginx.clone());
        }
        out.notices.extend(nginx.warnings.iter().map(|w| Problem {
            object: ingress.clone(),
            reason: "Translated",
            message: format!("metadata.annotations: {w}"),
        }));
        let paths: usize = spec
            .rules
            .iter()
            .flatten()
            .filter_map(|r| r.http.as_ref())
            .map(|h| h.paths.len())
            .sum();
        if paths > MAX_PATHS {
            problem(
                "TooLarge",
                format!("spec.rules: {paths} paths; an Ingress has at most {MAX_PATHS}"),
            );
            continue;
        }
        let mut budget = MAX_ADDRESSES;
        let tls = tls_hosts(ingress);
        let default_backend = match &spec.default_backend {
            None => None,
            Some(b) => match backend(index, &namespace, b, "spec.defaultBackend") {
                Ok(upstreams) => Some(upstreams),
                Err((reason, message)) => {
                    problem(reason, message);
                    None
                }
            },
        };
        let mut rules: Vec<(usize, Option<&str>)> = spec
            .rules
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, r)| (i, r.host.as_deref()))
            .collect();
        if default_backend.is_some() {
            // The default backend answers on every host without a rule too.
            rules.push((usize::MAX, None));
        }
        for (i, host_text) in rules {
            let field = match i {
                usize::MAX => "spec.defaultBackend".to_string(),
                i => format!("spec.rules[{i}].host"),
            };
            let pattern = match rule_host(host_text) {
                Ok(p) => p,
                Err(e) => {
                    problem("InvalidHost", format!("{field}: {e}"));
                    continue;
                }
            };
            let key = HostKey(pattern.clone());
            if let Some((_, vhost)) = taken_by_file.iter().find(|(p, _)| *p == pattern) {
                problem(
                    "HostConflict",
                    format!(
                        "{field}: host `{}` is served by the gw.yaml vhost `{vhost}`, which wins",
                        key.text()
                    ),
                );
                continue;
            }
            // Vhost names are metric labels and must stay unique.
            if let Some(vhost) = taken_by_file.iter().find(|(_, name)| *name == key.text()) {
                problem(
                    "HostConflict",
                    format!(
                        "{field}: host `{}` is the name of the gw.yaml vhost `{}`, which a host \
                         from the cluster cannot share",
                        key.text(),
                        vhost.1
                    ),
                );
                continue;
            }
            if out.owners.get(&key.text()) != Some(&namespace) {
                problem(
                    "HostConflict",
                    // Which namespace, and which Ingress, is not this team's business.
                    format!(
                        "{field}: host `{}` is served from another namespace (a host belongs \
                         to the namespace that has served it, else to the oldest Ingress's)",
                        key.text()
                    ),
                );
                continue;
            }
            // Claimed before its certificate is read: a host whose Secret is
            // broken answers 503 rather than falling to another team's wildcard.
            let host = hosts.entry(key.clone()).or_insert_with(|| Host {
                routes: Vec::new(),
                taken: HashMap::new(),
                certificate: None,
                default_backend: None,
            });
            let certificate = match certificate(index, &tls, &namespace, &pattern) {
                Ok(c) => c,
                Err(message) => {
                    problem("InvalidCertificate", message);
                    continue;
                }
            };
            host.certificate = host.certificate.take().or(certificate);
            if let (true, HostPattern::Exact(name)) = (nginx.www_redirect, &pattern) {
                www.push((ingress.clone(), name.clone(), host.certificate.is_some()));
            }
            if i == usize::MAX {
                if host.default_backend.is_none() {
                    host.default_backend = default_backend.clone();
                    served = true;
                }
                continue;
            }
            if host.default_backend.is_none() {
                host.default_backend = default_backend.clone();
            }
            let paths = spec.rules.as_ref().and_then(|r| r[i].http.as_ref());
            for (j, path) in paths.iter().flat_map(|h| h.paths.iter()).enumerate() {
                let field = format!("spec.rules[{i}].http.paths[{j}]");
                let text = path.path.clone().unwrap_or_else(|| "/".into());
                let exact = match path.path_type.as_str() {
                    "Exact" => true,
                    "Prefix" | "ImplementationSpecific" => false,
                    other => {
                        problem(
                            "UnsupportedValue",
                            format!("{field}.pathType: `{other}` is not Exact, Prefix or ImplementationSpecific"),
                        );
                        continue;
                    }
                };
                if let Err(reason) = normalized(&text) {
                    problem("InvalidPath", format!("{field}.path: `{text}`: {reason}"));
                    continue;
                }
                let backend_field = format!("{field}.backend");
                let upstreams = match backend(index, &namespace, &path.backend, &backend_field) {
                    Ok(u) if u.len() > budget => {
                        problem(
                            "TooLarge",
                            format!(
                                "{backend_field}: the Ingress's paths name more than \
                                 {MAX_ADDRESSES} endpoint addresses together"
                            ),
                        );
                        continue;
                    }
                    Ok(u) => u,
                    Err((reason, message)) => {
                        problem(reason, message);
                        continue;
                    }
                };
                budget -= upstreams.len();
                // `/a` and `/a/` are one prefix, two exact paths.
                let match_key = match exact {
                    true => (true, text.clone()),
                    false => (false, prefix_key(&text).to_string()),
                };
                if let Some(other) = host.taken.get(&match_key) {
                    problem(
                        "PathConflict",
                        format!(
                            "{field}.path: `{text}` on `{}` is already Ingress {other}'s",
                            key.text()
                        ),
                    );
                    continue;
                }
                host.taken.insert(match_key, name.clone());
                let mut route = route(exact, text, &upstreams, &name);
                route.policy.clone_from(&named);
                route.attached.clone_from(&attached);
                // The annotations are the Ingress's own keys: its strongest layer.
                route.security = nginx.security.clone();
                route.headers = nginx.headers.clone();
                route.rules = nginx.redirect.clone().map(|redirect| {
                    Box::new(RouteRules {
                        redirect: Some(redirect),
                        ..RouteRules::default()
                    })
                });
                host.routes.push(route);
                served = true;
            }
        }
        if served {
            out.served.push(ingress.clone());
        }
    }
    let mut redirected = std::collections::HashSet::new();
    for (ingress, name, https) in www {
        if !redirected.insert(name.clone()) {
            continue;
        }
        let other = match name.strip_prefix("www.") {
            Some(bare) => bare.to_string(),
            None => format!("www.{name}"),
        };
        let key = HostKey(HostPattern::Exact(other.clone()));
        let namespace = ingress.namespace().unwrap_or_default();
        // As ingress-nginx: skipped when the other name is served already.
        let elsewhere = hosts.contains_key(&key)
            || taken_by_file
                .iter()
                .any(|(p, n)| *p == key.0 || *n == other)
            || out
                .owners
                .get(&other)
                .is_some_and(|owner| *owner != namespace);
        if elsewhere {
            out.notices.push(Problem {
                object: ingress.clone(),
                reason: "NotTranslated",
                message: format!(
                    "metadata.annotations: nginx.ingress.kubernetes.io/from-to-www-redirect: \
                     `{other}` is served already, so it does not redirect to `{name}`"
                ),
            });
            continue;
        }
        let mut redirect = RouteConfig::from_cluster(&object_name(ingress.as_ref()));
        redirect.prefix = Some("/".into());
        redirect.rules = Some(Box::new(RouteRules {
            redirect: Some(RouteRedirect {
                scheme: Some(if https { "https" } else { "http" }.into()),
                hostname: Some(name.clone()),
                port: None,
                path: None,
                status: 308,
                listener_port: 0,
                keep_query: true,
            }),
            ..RouteRules::default()
        }));
        out.owners.insert(other, namespace);
        hosts.insert(
            key,
            Host {
                routes: vec![redirect],
                taken: HashMap::new(),
                certificate: None,
                default_backend: None,
            },
        );
    }
    out.vhosts = hosts
        .into_iter()
        .map(|(key, host)| vhost(key, host, settings.default_policy.clone()))
        .collect();
    out
}

/// Which namespace owns each host: the previous owner while one of its
/// Ingresses still names the host, else the namespace of the oldest Ingress that
/// does (`ingresses` are oldest first).
fn owners(ingresses: &[&Arc<Ingress>], previous: &Owners) -> Owners {
    let mut naming: HashMap<String, Vec<String>> = HashMap::new();
    for ingress in ingresses {
        let Some(spec) = ingress.spec.as_ref() else {
            continue;
        };
        let namespace = ingress.namespace().unwrap_or_default();
        let rules = spec.rules.iter().flatten().map(|r| r.host.as_deref());
        let catch_all = spec.default_backend.as_ref().map(|_| None);
        for host in rules.chain(catch_all) {
            let Ok(pattern) = rule_host(host) else {
                continue;
            };
            let namespaces = naming.entry(pattern.to_string()).or_default();
            if !namespaces.contains(&namespace) {
                namespaces.push(namespace.clone());
            }
        }
    }
    naming
        .into_iter()
        .map(|(host, namespaces)| {
            let owner = previous
                .get(&host)
                .filter(|p| namespaces.contains(p))
                .unwrap_or(&namespaces[0])
                .clone();
            (host, owner)
        })
        .collect()
}

/// The gateway's own addresses, which no endpoint may name: the pod's IP
/// (`$POD_IP`, from the downward API) and the listeners' specific addresses.
pub(super) fn own_addresses(loaded: &LoadedConfig) -> Vec<std::net::IpAddr> {
    let g = &loaded.gateway;
    let listeners = g.listeners.iter().map(|l| l.address.ip());
    let admin = g.admin.iter().map(|a| a.address.ip());
    let pod = std::env::var("POD_IP").ok().and_then(|ip| ip.parse().ok());
    listeners
        .chain(admin)
        .chain(pod)
        .filter(|ip| !ip.is_unspecified())
        .map(|ip| ip.to_canonical())
        .collect()
}

/// A host in the order vhosts are listed: `*` last, else by name.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct HostKey(pub HostPattern);

impl HostKey {
    pub(super) fn text(&self) -> String {
        self.0.to_string()
    }
}

/// A rule's host as a pattern: none (or empty) is the catch-all `*`.
fn rule_host(host: Option<&str>) -> Result<HostPattern, String> {
    match host {
        None | Some("") => Ok(HostPattern::Any),
        Some(h) => HostPattern::try_from(h.to_string()),
    }
}

impl Ord for HostKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let any = |k: &HostKey| k.0 == HostPattern::Any;
        (any(self), self.text()).cmp(&(any(other), other.text()))
    }
}

impl PartialOrd for HostKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

fn controller(class: &IngressClass) -> Option<&str> {
    class.spec.as_ref()?.controller.as_deref()
}

fn of_class(ingress: &Ingress, class: &str, is_default: bool) -> bool {
    let named = ingress
        .spec
        .as_ref()
        .and_then(|s| s.ingress_class_name.as_deref());
    let legacy = ingress
        .annotations()
        .get(CLASS_ANNOTATION)
        .map(String::as_str);
    match (named, legacy) {
        (Some(n), _) => n == class,
        (None, Some(l)) => l == class,
        (None, None) => is_default,
    }
}

/// The upstreams of a backend (at `field`); an error is an Event reason and
/// message.
fn backend(
    index: &Index,
    namespace: &str,
    backend: &IngressBackend,
    field: &str,
) -> Result<Arc<[String]>, (&'static str, String)> {
    let Some(service) = &backend.service else {
        return Err((
            "UnsupportedValue",
            format!("{field}.resource: only Service backends are served"),
        ));
    };
    index.upstreams(namespace, service).map_err(|r| {
        let message = format!("{field}.service.{}: {}", r.field, r.reason);
        ("BackendNotFound", message)
    })
}

/// A `tls` entry's hosts: (host, entry index, `secretName`), read once per Ingress.
type TlsHosts<'a> = Vec<(HostPattern, usize, Option<&'a str>)>;

fn tls_hosts(ingress: &Ingress) -> TlsHosts<'_> {
    let entries = ingress.spec.iter().flat_map(|s| s.tls.iter().flatten());
    entries
        .enumerate()
        .flat_map(|(k, entry)| {
            let secret = entry.secret_name.as_deref();
            entry
                .hosts
                .iter()
                .flatten()
                .filter_map(move |h| Some((HostPattern::try_from(h.clone()).ok()?, k, secret)))
        })
        .collect()
}

/// Whether a `tls` host covers a rule's host: the same name, or a wildcard one
/// label above it (as a wildcard certificate covers names).
fn covers(tls: &HostPattern, host: &HostPattern) -> bool {
    match (tls, host) {
        (HostPattern::Suffix(suffix), HostPattern::Exact(name)) => name
            .strip_suffix(suffix.as_str())
            .and_then(|label| label.strip_suffix('.'))
            .is_some_and(|label| !label.is_empty() && !label.contains('.')),
        (a, b) => a == b,
    }
}

/// The certificate of the first `tls` entry that covers the host, if any.
fn certificate(
    index: &Index,
    tls: &TlsHosts,
    namespace: &str,
    host: &HostPattern,
) -> Result<Option<Arc<CertifiedKey>>, String> {
    let Some((_, k, secret)) = tls.iter().find(|(p, _, _)| covers(p, host)) else {
        return Ok(None);
    };
    let Some(secret) = secret else {
        return Err(format!("spec.tls[{k}].secretName: missing"));
    };
    index
        .certificate(namespace, secret)
        .map(Some)
        .map_err(|e| format!("spec.tls[{k}].secretName: {e}"))
}

/// Refuses a path the gateway would not route by as written: it must already be
/// in the form requests are normalized to.
pub(super) fn normalized(path: &str) -> Result<(), String> {
    match normalize_path(path, false) {
        Ok(n) if n == path => Ok(()),
        Ok(n) => Err(format!("not normalized (requests are matched as `{n}`)")),
        Err(e) => Err(format!("{e}")),
    }
}

fn route(exact: bool, path: String, upstreams: &[String], object: &str) -> RouteConfig {
    let mut route = RouteConfig::from_cluster(object);
    if exact {
        route.exact = Some(path);
    } else {
        route.prefix = Some(path);
    }
    route.upstreams = upstreams.to_vec();
    route.respond = upstreams.is_empty().then(no_endpoints);
    route
}

/// A Service with no ready endpoint, as ingress-nginx answers it.
fn no_endpoints() -> RespondConfig {
    RespondConfig {
        status: 503,
        body: "no ready endpoint for this route\n".into(),
        ..RespondConfig::default()
    }
}

fn vhost(key: HostKey, host: Host, policy: Option<String>) -> VhostConfig {
    let (upstreams, respond) = match host.default_backend {
        Some(u) if !u.is_empty() => (u.to_vec(), None),
        Some(_) => (Vec::new(), Some(no_endpoints())),
        // Owned, but nothing of it could be served: not another host's answer.
        None if host.routes.is_empty() => (
            Vec::new(),
            Some(RespondConfig {
                status: 503,
                body: "no route of this host is served; see the Ingress's Events\n".into(),
                ..RespondConfig::default()
            }),
        ),
        None => (
            Vec::new(),
            Some(RespondConfig {
                status: 404,
                body: "no route for this path\n".into(),
                ..RespondConfig::default()
            }),
        ),
    };
    let mut v = VhostConfig::from_cluster(VhostName(key.text()), key.0, policy);
    v.upstreams = upstreams;
    v.respond = respond;
    v.routes = host.routes;
    v.certificate = host.certificate;
    v
}

#[cfg(test)]
mod tests {
    use super::super::testing::{gateway, objects, translated};
    use super::*;

    const CLASS: &str = "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: secgw}\nspec: {controller: secgw.io/ingress-controller}\n";

    fn service(ns: &str, name: &str, endpoints: &str) -> String {
        format!(
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {{ports: [{{name: http, port: 80}}]}}\n\
             ---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {name}-1, namespace: {ns}, labels: {{kubernetes.io/service-name: {name}}}}}\n\
             addressType: IPv4\nports: [{{name: http, port: 8080}}]\nendpoints: {endpoints}\n"
        )
    }

    fn ingress(ns: &str, name: &str, created: &str, spec: &str) -> String {
        format!(
            "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}, namespace: {ns}, creationTimestamp: \"{created}\"}}\nspec:\n  ingressClassName: secgw\n{spec}"
        )
    }

    fn rule(host: &str, path: &str, service: &str) -> String {
        format!("  rules:\n  - host: {host}\n    http: {{paths: [{{path: {path}, pathType: Prefix, backend: {{service: {{name: {service}, port: {{number: 80}}}}}}}}]}}\n")
    }

    fn problems(t: &Translation) -> Vec<(String, &'static str, String)> {
        t.problems
            .iter()
            .map(|p| (p.object_name(), p.reason, p.message.clone()))
            .collect()
    }

    #[test]
    fn only_ready_routable_endpoints_of_the_named_port_are_upstreams() {
        let endpoints =
            "[{addresses: [10.0.0.1]}, {addresses: [10.0.0.2], conditions: {ready: false}}, \
             {addresses: [10.0.0.3], conditions: {ready: true, terminating: true}}, \
             {addresses: [127.0.0.1]}, {addresses: [169.254.169.254]}, {addresses: [0.0.0.0]}]";
        let yaml = format!(
            "{CLASS}{}\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: web-fqdn, namespace: a, labels: {{kubernetes.io/service-name: web}}}}\n\
             addressType: FQDN\nports: [{{name: http, port: 8080}}]\nendpoints: [{{addresses: [localhost.localdomain]}}]\n{}",
            service("a", "web", endpoints),
            ingress("a", "web", "2026-01-01T00:00:00Z", &rule("web.test", "/", "web"))
        );
        let t = translated(&yaml, "vhosts: []\n");
        assert_eq!(problems(&t), []);
        assert_eq!(t.vhosts.len(), 1);
        let route = &t.vhosts[0].routes[0];
        assert_eq!(route.upstreams, ["10.0.0.1:8080"]);
        assert_eq!(route.object.as_deref(), Some("a/web"));
        assert_eq!(route.prefix.as_deref(), Some("/"));
    }

    #[test]
    fn the_older_ingress_keeps_a_path_and_its_host_against_other_namespaces() {
        let yaml = format!(
            "{CLASS}{}{}{}{}{}",
            service("a", "web", "[{addresses: [10.0.0.1]}]"),
            service("b", "web", "[{addresses: [10.0.0.2]}]"),
            ingress(
                "a",
                "new",
                "2026-01-02T00:00:00Z",
                &rule("shop.test", "/", "web")
            ),
            ingress(
                "a",
                "old",
                "2026-01-01T00:00:00Z",
                &rule("shop.test", "/", "web")
            ),
            ingress(
                "b",
                "late",
                "2026-01-03T00:00:00Z",
                &rule("shop.test", "/admin", "web")
            ),
        );
        let t = translated(&yaml, "vhosts: []\n");
        assert_eq!(
            problems(&t),
            [
                ("a/new".into(), "PathConflict", "spec.rules[0].http.paths[0].path: `/` on `shop.test` is already Ingress a/old's".into()),
                ("b/late".into(), "HostConflict", "spec.rules[0].host: host `shop.test` is served from another namespace (a host belongs to the namespace that has served it, else to the oldest Ingress's)".into()),
            ]
        );
        let served: Vec<String> = t.served.iter().map(|i| object_name(i.as_ref())).collect();
        assert_eq!(served, ["a/old"]);
    }

    #[test]
    fn refused_backends_and_certificates_name_their_field() {
        let external = "---\napiVersion: v1\nkind: Service\nmetadata: {name: ext, namespace: a}\nspec: {type: ExternalName, externalName: metadata.internal, ports: [{port: 80}]}\n";
        let bad_secret = "---\napiVersion: v1\nkind: Secret\nmetadata: {name: bad, namespace: a}\ntype: kubernetes.io/tls\ndata: {tls.crt: bm90IGEgY2VydA==, tls.key: bm90IGEga2V5}\n";
        let tls = "  tls: [{hosts: [secure.test], secretName: bad}]\n";
        let yaml = format!(
            "{CLASS}{}{external}{bad_secret}{}{}{}",
            service("a", "web", "[{addresses: [10.0.0.1]}]"),
            ingress(
                "a",
                "ext",
                "2026-01-01T00:00:00Z",
                &rule("ext.test", "/", "ext")
            ),
            ingress(
                "a",
                "port",
                "2026-01-01T00:00:01Z",
                &rule("port.test", "/", "web").replace("number: 80", "number: 81")
            ),
            ingress(
                "a",
                "secure",
                "2026-01-01T00:00:02Z",
                &format!("{tls}{}", rule("secure.test", "/", "web"))
            ),
        );
        let t = translated(&yaml, "vhosts: []\n");
        assert_eq!(
            problems(&t),
            [
                ("a/ext".into(), "BackendNotFound", "spec.rules[0].http.paths[0].backend.service.name: Service a/ext is of type ExternalName, which the gateway does not follow".into()),
                ("a/port".into(), "BackendNotFound", "spec.rules[0].http.paths[0].backend.service.port: Service a/web has no port 81".into()),
                ("a/secure".into(), "InvalidCertificate", "spec.tls[0].secretName: Secret a/bad: tls.crt: no PEM certificate found".into()),
            ]
        );
        // Each host stays its namespace's, answering 503 without a certificate of
        // its own, rather than falling to another host's answer or certificate.
        let hosts: Vec<(&str, Option<u16>, bool)> = t
            .vhosts
            .iter()
            .map(|v| {
                (
                    v.name.0.as_str(),
                    v.respond.as_ref().map(|r| r.status),
                    v.certificate.is_some(),
                )
            })
            .collect();
        assert_eq!(
            hosts,
            [
                ("ext.test", Some(503), false),
                ("port.test", Some(503), false),
                ("secure.test", Some(503), false)
            ]
        );
    }

    #[test]
    fn a_host_stays_with_the_namespace_that_served_it() {
        // b's Ingress is older, but names the host only after a has been serving it.
        let yaml = format!(
            "{CLASS}{}{}{}{}",
            service("a", "web", "[{addresses: [10.0.0.1]}]"),
            service("b", "web", "[{addresses: [10.0.0.2]}]"),
            ingress(
                "a",
                "shop",
                "2026-01-02T00:00:00Z",
                &rule("shop.test", "/", "web")
            ),
            ingress(
                "b",
                "old",
                "2026-01-01T00:00:00Z",
                &rule("shop.test", "/login", "web")
            ),
        );
        let (_dir, loaded) = gateway("vhosts: []\n");
        let served_by_a = Owners::from([("shop.test".to_string(), "a".to_string())]);
        let previous = crate::cluster::Previous {
            owners: served_by_a,
            ..Default::default()
        };
        let t = crate::cluster::translate(&objects(&yaml), &loaded, &previous);
        assert_eq!(problems(&t)[0].0, "b/old");
        assert_eq!(t.vhosts[0].routes[0].upstreams, ["10.0.0.1:8080"]);
        assert_eq!(t.owners["shop.test"], "a");
        // Without that history (a restart), the oldest Ingress's namespace has it.
        let t = crate::cluster::translate(&objects(&yaml), &loaded, &Default::default());
        assert_eq!(problems(&t)[0].0, "a/shop");
        assert_eq!(t.owners["shop.test"], "b");
    }

    #[test]
    fn from_to_www_redirect_serves_the_other_name_unless_it_is_taken() {
        let annotated = |ns: &str, name: &str, host: &str| {
            ingress(ns, name, "2026-01-01T00:00:00Z", &rule(host, "/", "web")).replace(
                "creationTimestamp",
                "annotations: {nginx.ingress.kubernetes.io/from-to-www-redirect: \"true\"}, creationTimestamp",
            )
        };
        let yaml = format!(
            "{CLASS}{}{}{}{}",
            service("a", "web", "[{addresses: [10.0.0.1]}]"),
            annotated("a", "shop", "shop.test"),
            annotated("a", "blog", "www.blog.test"),
            annotated("a", "docs", "docs.test")
                + &ingress(
                    "a",
                    "www-docs",
                    "2026-01-01T00:00:00Z",
                    &rule("www.docs.test", "/", "web")
                ),
        );
        let t = translated(&yaml, "vhosts: []\n");
        let redirect = |host: &str| {
            let v = t.vhosts.iter().find(|v| v.name.0 == host)?;
            let r = v.routes[0].rules.as_ref()?.redirect.as_ref()?;
            Some((r.scheme.clone()?, r.hostname.clone()?, r.status))
        };
        assert_eq!(
            redirect("www.shop.test"),
            Some(("http".into(), "shop.test".into(), 308))
        );
        assert_eq!(
            redirect("blog.test"),
            Some(("http".into(), "www.blog.test".into(), 308))
        );
        assert_eq!(redirect("www.docs.test"), None);
        let notes: Vec<&str> = t.notices.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(
            notes,
            ["metadata.annotations: nginx.ingress.kubernetes.io/from-to-www-redirect: `www.docs.test` \
              is served already, so it does not redirect to `docs.test`"]
        );
    }

    #[test]
    fn tls_wildcards_cover_one_label_and_sizes_are_bounded() {
        use base64::Engine;
        use rcgen::{CertificateParams, KeyPair};
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["*.shop.test".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let b64 = |s: String| base64::engine::general_purpose::STANDARD.encode(s);
        let secret = format!(
            "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: wild, namespace: a}}\ntype: kubernetes.io/tls\ndata: {{tls.crt: {}, tls.key: {}}}\n",
            b64(cert.pem()),
            b64(key.serialize_pem())
        );
        let tls = "  tls: [{hosts: [\"*.shop.test\"], secretName: wild}]\n";
        let many: String = (0..=MAX_PATHS)
            .map(|i| format!("{{path: /p{i}, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}"))
            .collect::<Vec<_>>()
            .join(", ");
        let yaml = format!(
            "{CLASS}{}{secret}{}{}{}",
            service(
                "a",
                "web",
                "[{addresses: [10.0.0.1]}, {addresses: [10.0.0.9]}]"
            ),
            ingress(
                "a",
                "one",
                "2026-01-01T00:00:00Z",
                &format!("{tls}{}", rule("api.shop.test", "/", "web"))
            ),
            ingress(
                "a",
                "two",
                "2026-01-01T00:00:01Z",
                &format!("{tls}{}", rule("a.b.shop.test", "/", "web"))
            ),
            ingress(
                "a",
                "huge",
                "2026-01-01T00:00:02Z",
                &format!("  rules:\n  - host: huge.test\n    http: {{paths: [{many}]}}\n")
            ),
        );
        // 10.0.0.9 is the gateway's own listener address: never an upstream.
        let t = translated(&yaml, "vhosts: []\nadmin: {address: \"10.0.0.9:9100\"}\n");
        assert_eq!(
            problems(&t),
            [(
                "a/huge".into(),
                "TooLarge",
                format!(
                    "spec.rules: {} paths; an Ingress has at most {MAX_PATHS}",
                    MAX_PATHS + 1
                )
            )]
        );
        let hosts: Vec<(&str, bool, &[String])> = t
            .vhosts
            .iter()
            .map(|v| {
                (
                    v.name.0.as_str(),
                    v.certificate.is_some(),
                    &v.routes[0].upstreams[..],
                )
            })
            .collect();
        let upstream = ["10.0.0.1:8080".to_string()];
        assert_eq!(
            hosts,
            [
                ("a.b.shop.test", false, &upstream[..]),
                ("api.shop.test", true, &upstream[..])
            ]
        );
    }

    #[test]
    fn a_refused_backend_names_its_own_field() {
        let resource = "{resource: {kind: Bucket, name: b}}";
        let yaml = format!(
            "{CLASS}{}",
            ingress(
                "a",
                "res",
                "2026-01-01T00:00:00Z",
                &format!(
                    "  defaultBackend: {resource}\n  rules:\n  - host: r.test\n    http: \
                     {{paths: [{{path: /, pathType: Prefix, backend: {resource}}}]}}\n"
                )
            ),
        );
        let t = translated(&yaml, "vhosts: []\n");
        let only = "only Service backends are served";
        assert_eq!(
            problems(&t),
            [
                (
                    "a/res".into(),
                    "UnsupportedValue",
                    format!("spec.defaultBackend.resource: {only}")
                ),
                (
                    "a/res".into(),
                    "UnsupportedValue",
                    format!("spec.rules[0].http.paths[0].backend.resource: {only}")
                ),
            ]
        );
    }

    #[test]
    fn a_class_of_another_controller_serves_nothing() {
        let yaml = format!(
            "{}{}{}",
            CLASS.replace("secgw.io/ingress-controller", "k8s.io/ingress-nginx"),
            service("a", "web", "[{addresses: [10.0.0.1]}]"),
            ingress(
                "a",
                "web",
                "2026-01-01T00:00:00Z",
                &rule("web.test", "/", "web")
            ),
        );
        let t = translated(&yaml, "vhosts: []\n");
        assert!(t.vhosts.is_empty() && t.served.is_empty() && t.problems.is_empty());
    }

    #[test]
    fn a_default_backend_answers_every_host_and_unmatched_paths() {
        let yaml = format!(
            "{CLASS}{}{}",
            service("a", "web", "[{addresses: [10.0.0.1]}]"),
            ingress(
                "a",
                "web",
                "2026-01-01T00:00:00Z",
                &format!(
                    "  defaultBackend: {{service: {{name: web, port: {{name: http}}}}}}\n{}",
                    rule("web.test", "/api", "web")
                )
            ),
        );
        let t = translated(&yaml, "vhosts: []\n");
        let hosts: Vec<(&str, &[String])> = t
            .vhosts
            .iter()
            .map(|v| (v.name.0.as_str(), &v.upstreams[..]))
            .collect();
        let upstream = ["10.0.0.1:8080".to_string()];
        assert_eq!(hosts, [("web.test", &upstream[..]), ("*", &upstream[..])]);
        // A gw.yaml catch-all keeps `*`.
        let (_dir, loaded) =
            gateway("vhosts:\n  - {name: all, hosts: [\"*\"], respond: {status: 200}}\n");
        let t = crate::cluster::translate(&objects(&yaml), &loaded, &Default::default());
        assert_eq!(t.vhosts.len(), 1);
        assert_eq!(
            problems(&t),
            [(
                "a/web".into(),
                "HostConflict",
                "spec.defaultBackend: host `*` is served by the gw.yaml vhost `all`, which wins"
                    .into()
            )]
        );
    }

    #[test]
    fn exact_paths_differ_by_a_slash_prefixes_do_not_and_vhost_names_stay_unique() {
        let path = |p: &str, kind: &str| {
            format!("{{path: {p}, pathType: {kind}, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}")
        };
        let paths = [
            path("/a", "Exact"),
            path("/a/", "Exact"),
            path("/b", "Prefix"),
            path("/b/", "Prefix"),
        ];
        let yaml = format!(
            "{CLASS}{}{}{}",
            service("a", "web", "[{addresses: [10.0.0.1]}]"),
            ingress(
                "a",
                "web",
                "2026-01-01T00:00:00Z",
                &format!(
                    "  rules:\n  - host: web.test\n    http: {{paths: [{}]}}\n",
                    paths.join(", ")
                )
            ),
            ingress(
                "a",
                "named",
                "2026-01-01T00:00:01Z",
                &rule("api", "/", "web")
            ),
        );
        let t = translated(
            &yaml,
            "vhosts:\n  - {name: api, hosts: [api.example.com], respond: {status: 200}}\n",
        );
        assert_eq!(
            problems(&t),
            [
                ("a/web".into(), "PathConflict", "spec.rules[0].http.paths[3].path: `/b/` on `web.test` is already Ingress a/web's".into()),
                ("a/named".into(), "HostConflict", "spec.rules[0].host: host `api` is the name of the gw.yaml vhost `api`, which a host from the cluster cannot share".into()),
            ]
        );
        let routes: Vec<(Option<&str>, Option<&str>)> = t.vhosts[0]
            .routes
            .iter()
            .map(|r| (r.exact.as_deref(), r.prefix.as_deref()))
            .collect();
        assert_eq!(
            routes,
            [(Some("/a"), None), (Some("/a/"), None), (None, Some("/b"))]
        );
    }
}
