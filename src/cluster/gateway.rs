//! Gateway API objects as vhosts and routes: the Gateways of the configured
//! GatewayClass, the HTTPRoutes attached to their listeners, and the
//! ReferenceGrants that let a reference cross namespaces; with the status each
//! object gets, in the Gateway API's own condition types and reasons.
//!
//! A listener is served on the gw.yaml listener of the same port (and TLS or
//! not): Pingora's listeners are fixed at start. Each name a listener and a
//! route have in common becomes a vhost, so a request matches the most specific
//! name first, as the Gateway API's listener and hostname precedence say. The
//! rules of one name are ordered by the Gateway API's precedence; the path
//! table then tries exact paths, longer prefixes, then regexes, and among
//! routes of one path the first whose method and headers match.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use gateway_api::gateways::{Gateway, GatewayListeners};
use gateway_api::httproutes::{
    HttpRoute, HttpRouteParentRefs, HttpRouteRules, HttpRouteRulesFilters,
    HttpRouteRulesFiltersCors, HttpRouteRulesFiltersType, HttpRouteRulesMatches,
    HttpRouteRulesMatchesHeadersType, HttpRouteRulesMatchesPathType,
};
use gateway_api::referencegrants::ReferenceGrant;
use http::{HeaderName, HeaderValue, Method};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::{IngressServiceBackend, ServiceBackendPort};
use kube::ResourceExt;
use rustls::sign::CertifiedKey;

use super::attachments::{Attachments, Kind};
use super::backends::Index;
pub use super::condition::Cond;
use super::hostnames::{covers, intersect};
use super::ingress::{normalized, HostKey, MAX_ADDRESSES, MAX_PATHS};
use super::{age, frames, object_name, ClusterObjects};
use crate::config::cors::CorsOrigin;
use crate::config::kubernetes::GATEWAY_CONTROLLER;
use crate::config::route_rules::{PathRewrite, RouteRedirect, RouteRules, WeightedBackend};
use crate::config::schema::{
    HeaderActions, RespondConfig, RouteConfig, SecurityOptions, VhostConfig,
};
use crate::config::values::{
    HeaderNameText, HeaderValueText, HostPattern, OneOrMany, Token, VhostName,
};
use crate::config::LoadedConfig;

pub use super::GATEWAY_API_GROUP as GROUP;

/// Routes one HTTPRoute may become: its matches times the names it is served on.
const MAX_ROUTES: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerReport {
    pub name: String,
    pub attached: i32,
    /// Whether HTTPRoute is among the listener's kinds.
    pub http_routes: bool,
    pub conditions: Vec<Cond>,
}

#[derive(Debug, Clone)]
pub struct GatewayReport {
    pub object: Arc<Gateway>,
    pub conditions: Vec<Cond>,
    pub listeners: Vec<ListenerReport>,
}

/// One `status.parents` entry of an HTTPRoute: its parentRef as written, with
/// the defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentReport {
    pub namespace: String,
    pub name: String,
    pub section_name: Option<String>,
    pub port: Option<i32>,
    pub conditions: Vec<Cond>,
}

#[derive(Debug, Clone)]
pub struct RouteReport {
    pub object: Arc<HttpRoute>,
    pub parents: Vec<ParentReport>,
}

/// What the Gateway API objects get in their status.
#[derive(Debug, Default)]
pub struct GatewayApi {
    /// The GatewayClass served, for its `Accepted`.
    pub class: Option<Arc<gateway_api::gatewayclasses::GatewayClass>>,
    pub gateways: Vec<GatewayReport>,
    pub routes: Vec<RouteReport>,
}

/// One listener of a served Gateway, checked.
struct Listener<'a> {
    gateway: &'a Arc<Gateway>,
    spec: &'a GatewayListeners,
    hostname: HostPattern,
    port: u16,
    usable: bool,
    certificate: Option<Arc<CertifiedKey>>,
    report: ListenerReport,
}

/// Where a match stands in the Gateway API's precedence, smallest first: the
/// longer declared prefix (`/a/` before `/a`, which share a path key), a method,
/// more headers, the older route, its `namespace/name`, the rule, the match.
/// (Exact before prefix and the longest prefix are the path table's.)
type Order = (
    Reverse<usize>,
    bool,
    Reverse<usize>,
    Option<String>,
    String,
    usize,
    usize,
);

/// A rule's match as a route, with where it stands in precedence.
struct Entry {
    order: Order,
    /// `gateway/listener` and its port: a name takes only the routes of the
    /// listeners that take its requests.
    listener: String,
    port: u16,
    route: RouteConfig,
}

/// One name's routes, from all the listeners that serve it.
#[derive(Default)]
struct Name {
    entries: Vec<Entry>,
    certificate: Option<Arc<CertifiedKey>>,
}

/// Translates the Gateway API objects; `taken`: the names gw.yaml and the
/// Ingresses already serve, which win.
pub fn translate(
    objects: &ClusterObjects,
    loaded: &LoadedConfig,
    index: &Index,
    taken: &[HostPattern],
    policies: &Attachments,
) -> (Vec<VhostConfig>, GatewayApi) {
    let settings = &loaded.gateway.kubernetes;
    let mut out = GatewayApi::default();
    let Some(class) = objects.gateway_classes.iter().find(|c| {
        c.name_any() == settings.gateway_class.0 && c.spec.controller_name == GATEWAY_CONTROLLER
    }) else {
        return (Vec::new(), out);
    };
    out.class = Some(class.clone());
    let mut gateways: Vec<&Arc<Gateway>> = objects
        .gateways
        .iter()
        .filter(|g| g.spec.gateway_class_name == class.name_any())
        .collect();
    gateways.sort_by_key(|g| age(g.as_ref()));
    let grants = Grants(&objects.grants);
    let mut listeners: Vec<Listener> = gateways
        .iter()
        .flat_map(|g| g.spec.listeners.iter().map(move |l| (*g, l)))
        .map(|(g, l)| listener(g, l, loaded, index, &grants))
        .collect();

    let mut routes: Vec<&Arc<HttpRoute>> = objects.http_routes.iter().collect();
    routes.sort_by_key(|r| age(r.as_ref()));
    let labels: HashMap<&str, &Namespace> = objects
        .namespaces
        .iter()
        .map(|n| (n.metadata.name.as_deref().unwrap_or_default(), n.as_ref()))
        .collect();
    let mut names: BTreeMap<HostKey, Name> = BTreeMap::new();
    for route in routes {
        let report = attach(
            route,
            &mut listeners,
            &labels,
            Context {
                index,
                grants: &grants,
                policies,
            },
            &mut names,
        );
        // A route that no longer names a served Gateway still gets a report
        // while its status holds an entry of ours, so that the entry goes.
        if !report.parents.is_empty() || written_by_us(route, &gateways) {
            out.routes.push(report);
        }
    }
    // A listener's own name is served even without routes, so that its
    // requests never fall to a wider listener's routes.
    for l in listeners.iter().filter(|l| l.usable) {
        let name = names.entry(HostKey(l.hostname.clone())).or_default();
        if name.certificate.is_none() {
            name.certificate = l.certificate.clone();
        }
    }
    for g in gateways {
        let own: Vec<ListenerReport> = listeners
            .iter()
            .filter(|l| Arc::ptr_eq(l.gateway, g))
            .map(|l| l.report.clone())
            .collect();
        let usable = listeners
            .iter()
            .any(|l| Arc::ptr_eq(l.gateway, g) && l.usable);
        let accepted = own
            .iter()
            .any(|l| l.conditions.iter().any(|c| c.kind == "Accepted" && c.ok));
        out.gateways.push(GatewayReport {
            object: g.clone(),
            conditions: vec![
                match accepted || own.is_empty() {
                    true => Cond::yes("Accepted", "Accepted"),
                    false => Cond::no(
                        "Accepted",
                        "ListenersNotValid",
                        "spec.listeners: no listener is valid; see status.listeners".into(),
                    ),
                },
                match usable {
                    true => Cond::yes("Programmed", "Programmed"),
                    false => Cond::no(
                        "Programmed",
                        "Invalid",
                        "spec.listeners: no listener is served; see status.listeners".into(),
                    ),
                },
            ],
            listeners: own,
        });
    }
    let policy = settings.default_policy.clone();
    let served: Vec<Served> = listeners
        .iter()
        .filter(|l| l.usable)
        .map(|l| Served {
            key: listener_key(l),
            port: l.port,
            hostname: l.hostname.clone(),
        })
        .collect();
    let vhosts = vhosts(names, &served, taken, policy, !out.gateways.is_empty());
    (vhosts, out)
}

/// Whether the route's status has a parent entry of this gateway: of its
/// controller, naming one of the Gateways it serves (another installation of
/// the same controller serves another class, and keeps its own entries).
fn written_by_us(route: &HttpRoute, gateways: &[&Arc<Gateway>]) -> bool {
    let namespace = route.namespace().unwrap_or_default();
    route.status.as_ref().is_some_and(|s| {
        s.parents.iter().any(|p| {
            let ns = p.parent_ref.namespace.as_deref().unwrap_or(&namespace);
            p.controller_name == GATEWAY_CONTROLLER && serves(gateways, ns, &p.parent_ref.name)
        })
    })
}

/// Whether `namespace/name` is one of the Gateways served.
pub fn serves(gateways: &[&Arc<Gateway>], namespace: &str, name: &str) -> bool {
    gateways
        .iter()
        .any(|g| g.name_any() == name && g.namespace().as_deref() == Some(namespace))
}

/// An enum value of the generated types as the API writes it (`GET`,
/// `https`, `URLRewrite`, `Passthrough`, `Selector`).
fn wire_name<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Oldest first, then by `namespace/name`: the Gateway API's tie-breakers.
fn listener_key(l: &Listener) -> String {
    format!("{}/{}", object_name(l.gateway.as_ref()), l.spec.name)
}

/// The ReferenceGrants, asked whether a reference may cross namespaces.
struct Grants<'a>(&'a [Arc<ReferenceGrant>]);

impl Grants<'_> {
    /// Whether a grant in `to_namespace` lets a `from_kind` of `from_namespace`
    /// refer to the core `to_kind` named `to_name` there.
    fn allow(&self, from_kind: &str, from_namespace: &str, to: (&str, &str, &str)) -> bool {
        let (to_kind, to_namespace, to_name) = to;
        if from_namespace == to_namespace {
            return true;
        }
        self.0
            .iter()
            .filter(|g| g.namespace().as_deref() == Some(to_namespace))
            .any(|g| {
                let from = g.spec.from.iter().any(|f| {
                    f.group == GROUP && f.kind == from_kind && f.namespace == from_namespace
                });
                let to = g.spec.to.iter().any(|t| {
                    t.group.is_empty()
                        && t.kind == to_kind
                        && t.name.as_deref().is_none_or(|n| n == to_name)
                });
                from && to
            })
    }
}

/// A listener checked: its protocol, port, name, kinds and certificate.
fn listener<'a>(
    gateway: &'a Arc<Gateway>,
    spec: &'a GatewayListeners,
    loaded: &LoadedConfig,
    index: &Index,
    grants: &Grants,
) -> Listener<'a> {
    let mut accepted = Cond::yes("Accepted", "Accepted");
    let mut resolved = Cond::yes("ResolvedRefs", "ResolvedRefs");
    let mut programmed = Cond::yes("Programmed", "Programmed");
    let field = |rest: &str| format!("spec.listeners[{}]{rest}", spec.name);
    let https = match spec.protocol.as_str() {
        "HTTP" => Some(false),
        "HTTPS" => Some(true),
        other => {
            accepted = Cond::no(
                "Accepted",
                "UnsupportedProtocol",
                format!("{}: `{other}` is not HTTP or HTTPS", field(".protocol")),
            );
            None
        }
    };
    let hostname = match spec.hostname.as_deref() {
        None | Some("") => Ok(HostPattern::Any),
        Some(h) => HostPattern::try_from(h.to_string()),
    };
    let hostname = hostname.unwrap_or_else(|e| {
        accepted = Cond::no(
            "Accepted",
            "UnsupportedValue",
            format!("{}: {e}", field(".hostname")),
        );
        HostPattern::Any
    });
    let port = u16::try_from(spec.port).unwrap_or(0);
    if let Some(https) = https {
        let served = loaded
            .gateway
            .listeners
            .iter()
            .any(|l| l.address.port() == port && l.tls.is_some() == https);
        if !served {
            let tls = if https { "with" } else { "without" };
            accepted = Cond::no(
                "Accepted",
                "PortUnavailable",
                format!(
                    "{}: gw.yaml has no listener on port {port} {tls} tls, and the gateway's \
                     listeners are fixed at start",
                    field(".port")
                ),
            );
        }
    }
    let kinds = spec.allowed_routes.as_ref().and_then(|a| a.kinds.as_ref());
    let http_routes = kinds.is_none_or(|kinds| {
        kinds
            .iter()
            .any(|k| k.kind == "HTTPRoute" && k.group.as_deref().unwrap_or(GROUP) == GROUP)
    });
    if let Some(other) = kinds
        .into_iter()
        .flatten()
        .find(|k| k.kind != "HTTPRoute" || k.group.as_deref().unwrap_or(GROUP) != GROUP)
    {
        resolved = Cond::no(
            "ResolvedRefs",
            "InvalidRouteKinds",
            format!(
                "{}: kind `{}` is not served; only HTTPRoute is",
                field(".allowedRoutes.kinds"),
                other.kind
            ),
        );
    }
    let mut certificate = None;
    if https == Some(true) {
        match listener_certificate(gateway, spec, index, grants) {
            Ok(c) => certificate = Some(c),
            Err((reason, message)) => resolved = Cond::no("ResolvedRefs", reason, message),
        }
    }
    let usable = accepted.ok && resolved.ok && http_routes;
    if !usable {
        let why = [&accepted, &resolved]
            .into_iter()
            .find(|c| !c.ok)
            .map_or_else(
                || {
                    format!(
                        "{}: no kind of route is served",
                        field(".allowedRoutes.kinds")
                    )
                },
                |c| c.message.clone(),
            );
        programmed = Cond::no("Programmed", "Invalid", why);
    }
    Listener {
        gateway,
        spec,
        hostname,
        port,
        usable,
        certificate,
        report: ListenerReport {
            name: spec.name.clone(),
            attached: 0,
            http_routes,
            conditions: vec![accepted, resolved, programmed],
        },
    }
}

/// The certificate of an HTTPS listener: its first `certificateRefs` entry, a
/// `kubernetes.io/tls` Secret, in another namespace only with a grant.
fn listener_certificate(
    gateway: &Gateway,
    spec: &GatewayListeners,
    index: &Index,
    grants: &Grants,
) -> Result<Arc<CertifiedKey>, (&'static str, String)> {
    let field = format!("spec.listeners[{}].tls", spec.name);
    let tls = spec.tls.as_ref();
    if tls
        .and_then(|t| t.mode.as_ref())
        .is_some_and(|m| wire_name(m) == "Passthrough")
    {
        return Err((
            "InvalidCertificateRef",
            format!("{field}.mode: Passthrough is not served on an HTTPS listener"),
        ));
    }
    let Some(cert) = tls
        .and_then(|t| t.certificate_refs.as_ref())
        .and_then(|r| r.first())
    else {
        return Err((
            "InvalidCertificateRef",
            format!("{field}.certificateRefs: an HTTPS listener needs a certificate"),
        ));
    };
    let field = format!("{field}.certificateRefs[0]");
    let group = cert.group.as_deref().unwrap_or_default();
    let kind = cert.kind.as_deref().unwrap_or("Secret");
    if !group.is_empty() || kind != "Secret" {
        return Err((
            "InvalidCertificateRef",
            format!("{field}: `{group}/{kind}` is not a core Secret"),
        ));
    }
    let own = gateway.namespace().unwrap_or_default();
    let namespace = cert.namespace.clone().unwrap_or_else(|| own.clone());
    if !grants.allow("Gateway", &own, ("Secret", &namespace, &cert.name)) {
        return Err((
            "RefNotPermitted",
            format!(
                "{field}: no ReferenceGrant in namespace {namespace} lets Gateways of {own} \
                 use Secret {}",
                cert.name
            ),
        ));
    }
    index
        .certificate(&namespace, &cert.name)
        .map_err(|e| ("InvalidCertificateRef", format!("{field}: {e}")))
}

/// Whether a listener takes routes from `namespace`.
fn allows(l: &Listener, namespace: &str, labels: &HashMap<&str, &Namespace>) -> bool {
    let own = l.gateway.namespace().unwrap_or_default();
    let from = l
        .spec
        .allowed_routes
        .as_ref()
        .and_then(|a| a.namespaces.as_ref());
    let kind = from.and_then(|f| f.from.as_ref()).map(wire_name);
    match kind.as_deref() {
        None | Some("Same") => namespace == own,
        Some("All") => true,
        Some("Selector") => {
            let Some(selector) = from.and_then(|f| f.selector.as_ref()) else {
                return false;
            };
            let empty = Default::default();
            let have = labels
                .get(namespace)
                .and_then(|n| n.metadata.labels.as_ref())
                .unwrap_or(&empty);
            let labels_match = selector
                .match_labels
                .iter()
                .flatten()
                .all(|(k, v)| have.get(k) == Some(v));
            let expressions_match = selector.match_expressions.iter().flatten().all(|e| {
                let values = e.values.as_deref().unwrap_or_default();
                match e.operator.as_str() {
                    "In" => have.get(&e.key).is_some_and(|v| values.contains(v)),
                    "NotIn" => have.get(&e.key).is_none_or(|v| !values.contains(v)),
                    "Exists" => have.contains_key(&e.key),
                    "DoesNotExist" => !have.contains_key(&e.key),
                    _ => false,
                }
            });
            labels_match && expressions_match
        }
        Some(_) => false,
    }
}

/// A rule translated, once per route, before it is attached anywhere.
struct Rule {
    matches: Vec<RouteConfig>,
    /// Per match: (characters of its prefix, has a method, header matches).
    weights: Vec<(usize, bool, usize)>,
}

/// Attaches a route to the listeners its parentRefs select, and says how.
/// What a route's translation reads besides the route and its listeners.
#[derive(Clone, Copy)]
struct Context<'a> {
    index: &'a Index<'a>,
    grants: &'a Grants<'a>,
    policies: &'a Attachments,
}

fn attach(
    route: &Arc<HttpRoute>,
    listeners: &mut [Listener],
    labels: &HashMap<&str, &Namespace>,
    cx: Context,
    names: &mut BTreeMap<HostKey, Name>,
) -> RouteReport {
    let namespace = route.namespace().unwrap_or_default();
    let label = format!("httproute:{}", object_name(route.as_ref()));
    let mut report = RouteReport {
        object: route.clone(),
        parents: Vec::new(),
    };
    let mut budget = MAX_ROUTES;
    let ours: Vec<(usize, &HttpRouteParentRefs)> = route
        .spec
        .parent_refs
        .iter()
        .flatten()
        .enumerate()
        .filter(|(_, p)| {
            p.group.as_deref().unwrap_or(GROUP) == GROUP
                && p.kind.as_deref().unwrap_or("Gateway") == "Gateway"
        })
        .filter(|(_, p)| {
            let ns = p.namespace.as_deref().unwrap_or(&namespace);
            listeners.iter().any(|l| {
                l.gateway.name_any() == p.name && l.gateway.namespace().as_deref() == Some(ns)
            })
        })
        .collect();
    if ours.is_empty() {
        return report;
    }
    let translated = rules(route, &namespace, &label, cx);
    let hostnames: Result<Vec<HostPattern>, String> = match route.spec.hostnames.as_deref() {
        None | Some([]) => Ok(vec![HostPattern::Any]),
        Some(h) => h
            .iter()
            .enumerate()
            .map(|(i, h)| {
                HostPattern::try_from(h.clone()).map_err(|e| format!("spec.hostnames[{i}]: {e}"))
            })
            .collect(),
    };
    for (k, parent) in ours {
        let gw_namespace = parent
            .namespace
            .clone()
            .unwrap_or_else(|| namespace.clone());
        let mut entry = ParentReport {
            namespace: gw_namespace.clone(),
            name: parent.name.clone(),
            section_name: parent.section_name.clone(),
            port: parent.port,
            conditions: Vec::new(),
        };
        let field = format!("spec.parentRefs[{k}]");
        let accepted = (|| {
            let (rules, resolved) = match &translated {
                Ok(t) => t,
                Err(message) => return Err(("UnsupportedValue", message.clone())),
            };
            let hostnames = hostnames
                .as_ref()
                .map_err(|m| ("UnsupportedValue", m.clone()))?;
            let selected: Vec<usize> = (0..listeners.len())
                .filter(|&i| {
                    let l = &listeners[i];
                    l.gateway.name_any() == parent.name
                        && l.gateway.namespace().as_deref() == Some(gw_namespace.as_str())
                        && parent
                            .section_name
                            .as_ref()
                            .is_none_or(|s| *s == l.spec.name)
                        && parent.port.is_none_or(|p| p == l.spec.port)
                })
                .collect();
            if selected.is_empty() {
                return Err((
                    "NoMatchingParent",
                    format!("{field}: the Gateway has no such listener (sectionName, port)"),
                ));
            }
            let allowed: Vec<usize> = selected
                .into_iter()
                .filter(|&i| {
                    listeners[i].report.http_routes && allows(&listeners[i], &namespace, labels)
                })
                .collect();
            if allowed.is_empty() {
                return Err((
                    "NotAllowedByListeners",
                    format!(
                        "{field}: no listener of Gateway {gw_namespace}/{} allows HTTPRoutes \
                         from namespace {namespace} (allowedRoutes)",
                        parent.name
                    ),
                ));
            }
            let mut attached = 0;
            let matches: usize = rules.iter().map(|r| r.matches.len()).sum();
            for i in allowed {
                let l = &listeners[i];
                let common: Vec<HostPattern> = hostnames
                    .iter()
                    .filter_map(|h| intersect(&l.hostname, h))
                    .collect();
                if common.is_empty() || !l.usable {
                    continue;
                }
                // Every name of every listener gets the route's matches: bounded,
                // so one route on a Gateway of many listeners cannot make every
                // recompile cost gigabytes.
                let wanted = matches * common.len();
                if wanted > budget {
                    return Err((
                        "UnsupportedValue",
                        format!(
                            "{field}: the route's matches on the names it shares with the \
                             listeners come to more than {MAX_ROUTES} routes"
                        ),
                    ));
                }
                budget -= wanted;
                attached += 1;
                let key = listener_key(l);
                let gateway_policy = cx.policies.get(
                    &l.gateway.namespace().unwrap_or_default(),
                    Kind::Gateway,
                    &l.gateway.name_any(),
                    None,
                );
                for host in common {
                    let name = names.entry(HostKey(host)).or_default();
                    if name.certificate.is_none() {
                        name.certificate = l.certificate.clone();
                    }
                    for (ri, rule) in rules.iter().enumerate() {
                        for (mi, (route_config, weight)) in
                            rule.matches.iter().zip(&rule.weights).enumerate()
                        {
                            let mut config = route_config.clone();
                            // The weakest of the route's attached policies.
                            if let Some(p) = &gateway_policy {
                                config.attached.insert(0, p.clone());
                            }
                            if let Some(r) = config.rules.as_mut() {
                                r.port = Some(l.port);
                                if let Some(redirect) = r.redirect.as_mut() {
                                    redirect.listener_port = l.port;
                                }
                            }
                            name.entries.push(Entry {
                                order: (
                                    Reverse(weight.0),
                                    !weight.1,
                                    Reverse(weight.2),
                                    route.creation_timestamp().map(|t| t.0.to_string()),
                                    object_name(route.as_ref()),
                                    ri,
                                    mi,
                                ),
                                listener: key.clone(),
                                port: l.port,
                                route: config,
                            });
                        }
                    }
                }
                listeners[i].report.attached += 1;
            }
            if attached == 0 {
                return Err((
                    "NoMatchingListenerHostname",
                    format!(
                        "spec.hostnames: no hostname is one the selected listeners of Gateway \
                         {gw_namespace}/{} serve (or they are not programmed)",
                        parent.name
                    ),
                ));
            }
            Ok(resolved.clone())
        })();
        entry.conditions = match accepted {
            Ok(resolved) => vec![Cond::yes("Accepted", "Accepted"), resolved],
            Err((reason, message)) => vec![
                Cond::no("Accepted", reason, message),
                match &translated {
                    Ok((_, resolved)) => resolved.clone(),
                    Err(_) => Cond::yes("ResolvedRefs", "ResolvedRefs"),
                },
            ],
        };
        report.parents.push(entry);
    }
    report
}

type Refusal = (&'static str, String);

/// A route's rules as routes (one per match), and its `ResolvedRefs`; an
/// unsupported value anywhere refuses the whole route, naming the field.
fn rules(
    route: &HttpRoute,
    namespace: &str,
    label: &str,
    cx: Context,
) -> Result<(Vec<Rule>, Cond), String> {
    let Context { index, grants, .. } = cx;
    let policy = |rule: Option<&String>| {
        cx.policies.get(
            namespace,
            Kind::HttpRoute,
            &route.name_any(),
            rule.map(String::as_str),
        )
    };
    let default_rule = [HttpRouteRules::default()];
    let spec_rules = route.spec.rules.as_deref().unwrap_or(&default_rule);
    let count: usize = spec_rules
        .iter()
        .map(|r| r.matches.as_ref().map_or(1, Vec::len))
        .sum();
    if count > MAX_PATHS {
        return Err(format!(
            "spec.rules: {count} matches; an HTTPRoute has at most {MAX_PATHS}"
        ));
    }
    let mut resolved = Cond::yes("ResolvedRefs", "ResolvedRefs");
    let mut budget = MAX_ADDRESSES;
    let mut out = Vec::new();
    for (ri, rule) in spec_rules.iter().enumerate() {
        let field = format!("spec.rules[{ri}]");
        let mut base = RouteConfig::from_cluster(label);
        // The route's policy, then its rule's, stronger.
        base.attached = policy(None)
            .into_iter()
            .chain(rule.name.as_ref().and_then(|n| policy(Some(n))))
            .collect();
        let mut rules = RouteRules::default();
        for (fi, filter) in rule.filters.iter().flatten().enumerate() {
            apply_filter(
                filter,
                &format!("{field}.filters[{fi}]"),
                &mut base,
                &mut rules,
            )?;
        }
        if rules.redirect.is_none() {
            let mut backends = Vec::new();
            for (bi, b) in rule.backend_refs.iter().flatten().enumerate() {
                let bfield = format!("{field}.backendRefs[{bi}]");
                if b.filters.as_ref().is_some_and(|f| !f.is_empty()) {
                    return Err(format!(
                        "{bfield}.filters: filters on a backendRef are not supported"
                    ));
                }
                let weight = u32::try_from(b.weight.unwrap_or(1)).unwrap_or(0);
                let upstreams = match backend(b, namespace, index, grants, &bfield) {
                    Ok(u) if u.len() > budget => {
                        return Err(format!(
                            "{bfield}: the route's backends have more than {MAX_ADDRESSES} endpoint addresses together"
                        ))
                    }
                    Ok(u) => {
                        budget -= u.len();
                        Some(u)
                    }
                    Err((reason, message)) => {
                        if resolved.ok {
                            resolved = Cond::no("ResolvedRefs", reason, message);
                        }
                        None
                    }
                };
                backends.push(WeightedBackend { weight, upstreams });
            }
            if backends.is_empty() {
                // No backend and no filter that answers: every request gets 500.
                backends.push(WeightedBackend {
                    weight: 1,
                    upstreams: None,
                });
            }
            rules.backends = backends;
        }
        let default_match = [HttpRouteRulesMatches::default()];
        let matches = rule
            .matches
            .as_deref()
            .filter(|m| !m.is_empty())
            .unwrap_or(&default_match);
        let mut translated = Rule {
            matches: Vec::new(),
            weights: Vec::new(),
        };
        for (mi, m) in matches.iter().enumerate() {
            let mfield = format!("{field}.matches[{mi}]");
            let mut config = base.clone();
            let mut own = rules.clone();
            path_match(m, &mfield, &mut config)?;
            if config.prefix.is_none() && matches!(own.rewrite_path, Some(PathRewrite::Prefix(_))) {
                return Err(format!(
                    "{field}.filters: ReplacePrefixMatch needs PathPrefix matches ({mfield}.path)"
                ));
            }
            if config.prefix.is_none()
                && matches!(
                    own.redirect.as_ref().and_then(|r| r.path.as_ref()),
                    Some(PathRewrite::Prefix(_))
                )
            {
                return Err(format!(
                    "{field}.filters: ReplacePrefixMatch needs PathPrefix matches ({mfield}.path)"
                ));
            }
            if m.query_params.as_ref().is_some_and(|q| !q.is_empty()) {
                return Err(format!(
                    "{mfield}.queryParams: query parameter matches are not supported"
                ));
            }
            own.method = m
                .method
                .as_ref()
                .map(|method| {
                    let text = wire_name(method);
                    Method::from_bytes(text.as_bytes())
                        .map_err(|_| format!("{mfield}.method: `{text}` is not a method"))
                })
                .transpose()?;
            let mut seen = std::collections::HashSet::new();
            for (hi, h) in m.headers.iter().flatten().enumerate() {
                let hfield = format!("{mfield}.headers[{hi}]");
                if matches!(
                    h.r#type,
                    Some(HttpRouteRulesMatchesHeadersType::RegularExpression)
                ) {
                    return Err(format!(
                        "{hfield}.type: RegularExpression header matches are not supported"
                    ));
                }
                let name = HeaderName::from_bytes(h.name.as_bytes())
                    .map_err(|_| format!("{hfield}.name: `{}` is not a header name", h.name))?;
                let value = HeaderValue::from_str(&h.value)
                    .map_err(|_| format!("{hfield}.value: not a header value"))?;
                // A name matched twice: only the first counts.
                if seen.insert(name.clone()) {
                    own.headers.push((name, value));
                }
            }
            let prefix_chars = config.prefix.as_ref().map_or(0, String::len);
            // Regexes (whose precedence the Gateway API leaves to implementations)
            // go oldest route first whatever their conditions: the last one of a
            // name is then the newest route's, the one left out when a name's
            // regexes together are too large to compile.
            let weight = match config.regex {
                Some(_) => (0, false, 0),
                None => (prefix_chars, own.method.is_some(), own.headers.len()),
            };
            translated.weights.push(weight);
            config.rules = Some(Box::new(own));
            translated.matches.push(config);
        }
        out.push(translated);
    }
    Ok((out, resolved))
}

/// A match's path as the route's `exact`, `prefix` or `regex` (matched against
/// the whole normalized path).
fn path_match(
    m: &HttpRouteRulesMatches,
    field: &str,
    config: &mut RouteConfig,
) -> Result<(), String> {
    let path = m.path.as_ref();
    let value = path
        .and_then(|p| p.value.clone())
        .unwrap_or_else(|| "/".into());
    let kind = path
        .and_then(|p| p.r#type.clone())
        .unwrap_or(HttpRouteRulesMatchesPathType::PathPrefix);
    match kind {
        HttpRouteRulesMatchesPathType::RegularExpression => {
            let anchored = format!("^(?:{value})$");
            regex::RegexBuilder::new(&anchored)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| format!("{field}.path.value: `{value}` is not a regex: {e}"))?;
            config.regex = Some(anchored);
        }
        exact_or_prefix => {
            normalized(&value).map_err(|e| format!("{field}.path.value: `{value}`: {e}"))?;
            if exact_or_prefix == HttpRouteRulesMatchesPathType::Exact {
                config.exact = Some(value);
            } else {
                config.prefix = Some(value);
            }
        }
    }
    Ok(())
}

/// A header modifier's lists as header actions: the request's and the
/// response's modifiers are two generated types of one shape.
macro_rules! modifier_actions {
    ($m:expr, $field:expr) => {{
        let m = $m;
        let set = m
            .set
            .iter()
            .flatten()
            .map(|h| (h.name.as_str(), h.value.as_str()));
        let add = m
            .add
            .iter()
            .flatten()
            .map(|h| (h.name.as_str(), h.value.as_str()));
        actions(set, add, m.remove.as_deref().unwrap_or_default(), $field)
    }};
}

/// The `path` of a redirect or a rewrite, at `field.path`.
macro_rules! path_modifier {
    ($path:expr, $field:expr) => {
        $path
            .as_ref()
            .map(|p| {
                modifier(
                    p.replace_full_path.as_deref(),
                    p.replace_prefix_match.as_deref(),
                    &format!("{}.path", $field),
                )
            })
            .transpose()
    };
}

fn apply_filter(
    filter: &HttpRouteRulesFilters,
    field: &str,
    config: &mut RouteConfig,
    rules: &mut RouteRules,
) -> Result<(), String> {
    match filter.r#type {
        HttpRouteRulesFiltersType::RequestHeaderModifier => {
            let m = filter.request_header_modifier.as_ref();
            let m = m.ok_or_else(|| format!("{field}.requestHeaderModifier: missing"))?;
            config.request_headers =
                modifier_actions!(m, &format!("{field}.requestHeaderModifier"))?;
        }
        HttpRouteRulesFiltersType::ResponseHeaderModifier => {
            let m = filter.response_header_modifier.as_ref();
            let m = m.ok_or_else(|| format!("{field}.responseHeaderModifier: missing"))?;
            config.headers = modifier_actions!(m, &format!("{field}.responseHeaderModifier"))?;
        }
        HttpRouteRulesFiltersType::RequestRedirect => {
            let r = filter.request_redirect.as_ref();
            let r = r.ok_or_else(|| format!("{field}.requestRedirect: missing"))?;
            let field = format!("{field}.requestRedirect");
            let status = r.status_code.unwrap_or(302);
            let status = match status {
                301 | 302 | 303 | 307 | 308 => status as u16,
                other => return Err(format!("{field}.statusCode: {other} is not a redirect")),
            };
            let hostname = r
                .hostname
                .as_ref()
                .map(|h| match HostPattern::try_from(h.clone()) {
                    Ok(HostPattern::Exact(name)) => Ok(name),
                    _ => Err(format!("{field}.hostname: `{h}` is not a host name")),
                })
                .transpose()?;
            let port = r
                .port
                .map(|p| {
                    u16::try_from(p)
                        .ok()
                        .filter(|p| *p > 0)
                        .ok_or_else(|| format!("{field}.port: {p}"))
                })
                .transpose()?;
            let scheme = r.scheme.as_ref().map(wire_name);
            if scheme
                .as_deref()
                .is_some_and(|s| s != "http" && s != "https")
            {
                return Err(format!("{field}.scheme: only http and https"));
            }
            let path = path_modifier!(r.path, field)?;
            rules.redirect = Some(RouteRedirect {
                scheme,
                hostname,
                port,
                path,
                status,
                listener_port: 0,
                keep_query: true,
            });
        }
        HttpRouteRulesFiltersType::UrlRewrite => {
            let r = filter.url_rewrite.as_ref();
            let r = r.ok_or_else(|| format!("{field}.urlRewrite: missing"))?;
            let field = format!("{field}.urlRewrite");
            if let Some(h) = &r.hostname {
                match HostPattern::try_from(h.clone()) {
                    Ok(HostPattern::Exact(name)) => {
                        rules.rewrite_host = HeaderValue::from_str(&name).ok();
                    }
                    _ => return Err(format!("{field}.hostname: `{h}` is not a host name")),
                }
            }
            rules.rewrite_path = path_modifier!(r.path, field)?;
        }
        HttpRouteRulesFiltersType::Cors => {
            let c = filter.cors.as_ref();
            let c = c.ok_or_else(|| format!("{field}.cors: missing"))?;
            cors(c, &format!("{field}.cors"), &mut config.security)?;
        }
        ref other => {
            let name = wire_name(other);
            return Err(format!(
                "{field}.type: the `{name}` filter is not supported"
            ));
        }
    }
    Ok(())
}

/// The `CORS` filter as the route's own CORS keys: preflights answered at the
/// edge, the origin echoed with `Vary: Origin` (`*` stays `*`).
fn cors(
    c: &HttpRouteRulesFiltersCors,
    field: &str,
    security: &mut SecurityOptions,
) -> Result<(), String> {
    let origins = c.allow_origins.as_deref().unwrap_or_default();
    if origins.is_empty() {
        return Err(format!(
            "{field}.allowOrigins: empty; no origin could be allowed"
        ));
    }
    let origins = origins
        .iter()
        .enumerate()
        .map(|(i, o)| {
            CorsOrigin::try_from(o.clone()).map_err(|e| format!("{field}.allowOrigins[{i}]: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let credentials = c.allow_credentials == Some(true);
    if credentials && origins.contains(&CorsOrigin::Any) {
        return Err(format!(
            "{field}: allowCredentials with `*` in allowOrigins would send any site's \
             credentialed requests their answers (the origin echoed back); the gateway refuses \
             that credentialed reflection, as gw.yaml does: list the allowed origins"
        ));
    }
    let tokens = |list: &Option<Vec<String>>, key: &str| {
        list.iter()
            .flatten()
            .enumerate()
            .map(|(i, t)| {
                Token::try_from(t.clone()).map_err(|e| format!("{field}.{key}[{i}]: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()
    };
    security.cors_enabled = Some(true);
    security.allowed_origins = Some(origins);
    security.allowed_methods = Some(tokens(&c.allow_methods, "allowMethods")?);
    security.allowed_headers = Some(tokens(&c.allow_headers, "allowHeaders")?);
    security.expose_headers = Some(tokens(&c.expose_headers, "exposeHeaders")?);
    // The API's default when the field is left out.
    let max_age = c.max_age.unwrap_or(5);
    security.max_age =
        Some(u64::try_from(max_age).map_err(|_| format!("{field}.maxAge: {max_age}"))?);
    security.allow_credentials = Some(credentials);
    Ok(())
}

/// A path modifier: a full path or a prefix replacement, normalized.
/// (Redirects and rewrites have two generated types of one shape.)
fn modifier(full: Option<&str>, prefix: Option<&str>, field: &str) -> Result<PathRewrite, String> {
    let (text, rewrite) = match (full, prefix) {
        (Some(f), None) => (f, PathRewrite::Full(f.to_string())),
        (None, Some(p)) => (p, PathRewrite::Prefix(p.to_string())),
        _ => {
            return Err(format!(
                "{field}: exactly one of replaceFullPath and replacePrefixMatch"
            ))
        }
    };
    // An empty prefix replacement strips the prefix; a full path is a path.
    let check = match (&rewrite, text.is_empty()) {
        (PathRewrite::Prefix(_), true) => "/",
        _ => text,
    };
    normalized(check).map_err(|e| format!("{field}: `{text}`: {e}"))?;
    Ok(rewrite)
}

fn header_name(name: &str, field: &str) -> Result<HeaderNameText, String> {
    let parsed = HeaderNameText::try_from(name.to_string()).map_err(|e| format!("{field}: {e}"))?;
    if frames(&parsed.name) {
        return Err(format!(
            "{field}: `{name}` frames the message or the connection; no filter may change it"
        ));
    }
    Ok(parsed)
}

fn header_value(value: &str, field: &str) -> Result<HeaderValueText, String> {
    HeaderValueText::try_from(value.to_string()).map_err(|e| format!("{field}: {e}"))
}

/// The three lists of a header modifier as gw.yaml's header actions.
fn actions<'a>(
    set: impl Iterator<Item = (&'a str, &'a str)>,
    add: impl Iterator<Item = (&'a str, &'a str)>,
    remove: &[String],
    field: &str,
) -> Result<HeaderActions, String> {
    let mut out = HeaderActions::default();
    for (i, (name, value)) in set.enumerate() {
        let f = format!("{field}.set[{i}]");
        out.set
            .insert(header_name(name, &f)?, header_value(value, &f)?);
    }
    for (i, (name, value)) in add.enumerate() {
        let f = format!("{field}.add[{i}]");
        let name = header_name(name, &f)?;
        let value = header_value(value, &f)?;
        out.add
            .entry(name)
            .or_insert_with(|| OneOrMany(Vec::new()))
            .0
            .push(value);
    }
    for (i, name) in remove.iter().enumerate() {
        let f = format!("{field}.remove[{i}]");
        let name = header_name(name, &f)?;
        out.remove
            .push(crate::config::values::RemovePattern::Exact(name.name));
    }
    Ok(out)
}

/// A backendRef's addresses, or why its share answers 500 (a `ResolvedRefs`
/// reason and message).
fn backend(
    b: &gateway_api::httproutes::HttpRouteRulesBackendRefs,
    namespace: &str,
    index: &Index,
    grants: &Grants,
    field: &str,
) -> Result<Arc<[String]>, Refusal> {
    let group = b.group.as_deref().unwrap_or_default();
    let kind = b.kind.as_deref().unwrap_or("Service");
    if !group.is_empty() || kind != "Service" {
        return Err((
            "InvalidKind",
            format!("{field}: `{group}/{kind}` is not a core Service"),
        ));
    }
    let target = b.namespace.as_deref().unwrap_or(namespace);
    if !grants.allow("HTTPRoute", namespace, ("Service", target, &b.name)) {
        return Err((
            "RefNotPermitted",
            format!(
                "{field}: no ReferenceGrant in namespace {target} lets HTTPRoutes of {namespace} \
                 use Service {}",
                b.name
            ),
        ));
    }
    let Some(port) = b.port else {
        return Err((
            "BackendNotFound",
            format!("{field}.port: a Service backend needs a port"),
        ));
    };
    let service = IngressServiceBackend {
        name: b.name.clone(),
        port: Some(ServiceBackendPort {
            name: None,
            number: Some(port),
        }),
    };
    index.upstreams(target, &service).map_err(|r| {
        (
            "BackendNotFound",
            format!("{field}.{}: {}", r.field, r.reason),
        )
    })
}

/// A usable listener, as the names see it: its key, port and hostname.
struct Served {
    key: String,
    port: u16,
    hostname: HostPattern,
}

/// The keys of some listeners, to compare sets of them.
fn keys(listeners: Vec<&Served>) -> BTreeSet<&str> {
    listeners.into_iter().map(|l| l.key.as_str()).collect()
}

/// How specific a name is: exact, then the longer wildcard, then `*`.
fn specificity(p: &HostPattern) -> (u8, usize) {
    match p {
        HostPattern::Exact(s) => (2, s.len()),
        HostPattern::Suffix(s) => (1, s.len()),
        HostPattern::Any => (0, 0),
    }
}

/// The listeners on `port` that take requests for `name`: the most specific
/// of those whose hostname covers it (listener isolation), several when tied.
fn best<'a>(served: &'a [Served], port: u16, name: &HostPattern) -> Vec<&'a Served> {
    let covering: Vec<&Served> = served
        .iter()
        .filter(|l| l.port == port && covers(&l.hostname, name))
        .collect();
    let top = covering.iter().map(|l| specificity(&l.hostname)).max();
    covering
        .into_iter()
        .filter(|l| Some(specificity(&l.hostname)) == top)
        .collect()
}

/// The names as vhosts: each name's routes from the listeners that take its
/// requests, in precedence order; on a port where that listener is wider than
/// the name, a request none of them takes goes on to the next wider name of
/// the same listener (a fallback, not a copy of its routes, so no name costs
/// more than its own routes). A catch-all answering 404 when Gateways are
/// served and nothing else takes every name.
fn vhosts(
    names: BTreeMap<HostKey, Name>,
    served: &[Served],
    taken: &[HostPattern],
    policy: Option<String>,
    any_gateway: bool,
) -> Vec<VhostConfig> {
    let names: Vec<(HostKey, Name)> = names
        .into_iter()
        .filter(|(key, _)| {
            let free = !taken.contains(&key.0);
            if !free {
                log::warn!(
                    "Gateway API: the name `{}` is served by gw.yaml or an Ingress, which win",
                    key.text()
                );
            }
            free
        })
        .collect();
    let ports: BTreeSet<u16> = served.iter().map(|l| l.port).collect();
    // Only a wildcard or `*` is wider than another name: the few a fallback
    // is looked for among, however many exact names there are.
    let wildcards: Vec<&(HostKey, Name)> = names
        .iter()
        .filter(|(k, _)| !matches!(k.0, HostPattern::Exact(_)))
        .collect();
    let mut out = Vec::with_capacity(names.len() + 1);
    for (key, name) in &names {
        let mut own: Vec<&Entry> = name
            .entries
            .iter()
            .filter(|e| {
                best(served, e.port, &key.0)
                    .iter()
                    .any(|l| l.key == e.listener)
            })
            .collect();
        own.sort_by(|a, b| a.order.cmp(&b.order));
        let routes: Vec<RouteConfig> = own.into_iter().map(|e| e.route.clone()).collect();
        let mut v = vhost(key, routes, name.certificate.clone(), policy.clone());
        for &port in &ports {
            let takers = best(served, port, &key.0);
            // A listener's own name never falls to a wider one.
            if takers.is_empty() || takers.iter().any(|l| l.hostname == key.0) {
                continue;
            }
            let takers = keys(takers);
            let wider = wildcards
                .iter()
                .copied()
                .filter(|(k, _)| k.0 != key.0 && covers(&k.0, &key.0))
                .filter(|(k, _)| keys(best(served, port, &k.0)) == takers)
                .max_by_key(|(k, _)| specificity(&k.0));
            if let Some((k, _)) = wider {
                v.fallback.push((port, k.text()));
            }
        }
        out.push(v);
    }
    let catch_all = HostKey(HostPattern::Any);
    if any_gateway
        && !taken.contains(&HostPattern::Any)
        && !names.iter().any(|(k, _)| *k == catch_all)
    {
        out.push(vhost(&catch_all, Vec::new(), None, policy));
    }
    out
}

fn vhost(
    key: &HostKey,
    routes: Vec<RouteConfig>,
    certificate: Option<Arc<CertifiedKey>>,
    policy: Option<String>,
) -> VhostConfig {
    let mut v = VhostConfig::from_cluster(VhostName(key.text()), key.0.clone(), policy);
    v.respond = Some(RespondConfig {
        status: 404,
        body: "no route for this request\n".into(),
        ..RespondConfig::default()
    });
    v.routes = routes;
    v.certificate = certificate;
    v
}

#[cfg(test)]
mod tests {
    use super::super::testing::translated;
    use super::*;

    const CLASS: &str = "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: secgw}\nspec: {controllerName: secgw.io/gateway-controller}\n";

    fn gateway(listeners: &str) -> String {
        format!(
            "---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw, namespace: a}}\n\
             spec:\n  gatewayClassName: secgw\n  listeners:\n{listeners}"
        )
    }

    fn listener_conditions(
        api: &GatewayApi,
        name: &str,
    ) -> Vec<(&'static str, bool, &'static str)> {
        let l = api.gateways[0]
            .listeners
            .iter()
            .find(|l| l.name == name)
            .unwrap();
        l.conditions
            .iter()
            .map(|c| (c.kind, c.ok, c.reason))
            .collect()
    }

    #[test]
    fn a_listener_is_programmed_only_on_a_gw_yaml_listener_of_its_port_and_protocol() {
        let yaml = format!(
            "{CLASS}{}",
            gateway(
                "  - {name: ok, port: 8080, protocol: HTTP}\n  - {name: other-port, port: 9090, protocol: HTTP}\n  \
                 - {name: no-tls-there, port: 8080, protocol: HTTPS, tls: {certificateRefs: [{name: c}]}}\n  - {name: tcp, port: 8080, protocol: TCP}\n"
            )
        );
        let t = translated(&yaml, "vhosts: []\n");
        let api = &t.gateway_api;
        assert_eq!(
            listener_conditions(api, "ok"),
            [
                ("Accepted", true, "Accepted"),
                ("ResolvedRefs", true, "ResolvedRefs"),
                ("Programmed", true, "Programmed")
            ]
        );
        assert_eq!(
            listener_conditions(api, "other-port")[0],
            ("Accepted", false, "PortUnavailable")
        );
        assert_eq!(
            listener_conditions(api, "other-port")[2],
            ("Programmed", false, "Invalid")
        );
        let no_tls = listener_conditions(api, "no-tls-there");
        assert_eq!(no_tls[0], ("Accepted", false, "PortUnavailable"));
        assert_eq!(no_tls[1], ("ResolvedRefs", false, "InvalidCertificateRef"));
        assert_eq!(
            listener_conditions(api, "tcp")[0],
            ("Accepted", false, "UnsupportedProtocol")
        );
        let g = &api.gateways[0].conditions;
        assert_eq!((g[0].ok, g[1].ok), (true, true), "one listener serves");
        let message = &api.gateways[0].listeners[1].conditions[0].message;
        assert!(
            message.starts_with(
                "spec.listeners[other-port].port: gw.yaml has no listener on port 9090"
            ),
            "{message}"
        );
    }

    #[test]
    fn a_route_over_too_many_names_is_refused_at_that_parent() {
        let listeners: String = (0..20)
            .map(|i| {
                format!("  - {{name: l{i}, port: 8080, protocol: HTTP, hostname: h{i}.test}}\n")
            })
            .collect();
        let matches: Vec<String> = (0..600)
            .map(|i| format!("{{path: {{type: Exact, value: /p{i}}}}}"))
            .collect();
        let route = format!(
            "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: big, namespace: a}}\n\
             spec:\n  parentRefs: [{{name: gw}}]\n  rules:\n  - matches: [{}]\n",
            matches.join(", ")
        );
        let t = translated(
            &format!("{CLASS}{}{route}", gateway(&listeners)),
            "vhosts: []\n",
        );
        let parent = &t.gateway_api.routes[0].parents[0];
        assert_eq!(
            (parent.conditions[0].ok, parent.conditions[0].reason),
            (false, "UnsupportedValue")
        );
        assert!(
            parent.conditions[0]
                .message
                .contains("more than 10000 routes"),
            "{}",
            parent.conditions[0].message
        );
        let routes: usize = t.vhosts.iter().map(|v| v.routes.len()).sum();
        assert!(routes <= MAX_ROUTES, "{routes}");
    }

    /// Found by an adversarial review: two installations of the controller
    /// serving two classes removed each other's entries from every route's
    /// status, in a loop. An entry is ours only when it names a Gateway this
    /// gateway serves; a route that no longer names one still gets a report
    /// while an entry of ours is left, so that it goes.
    #[test]
    fn only_entries_naming_our_gateways_are_ours() {
        let route = |name: &str, parent: &str, written_for: &str| {
            format!(
                "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}, namespace: a}}\n\
                 spec: {{parentRefs: [{{name: {parent}}}]}}\n\
                 status: {{parents: [{{controllerName: secgw.io/gateway-controller, parentRef: {{name: {written_for}}}, \
                 conditions: [{{type: Accepted, status: 'True', reason: Accepted, message: '', lastTransitionTime: '2026-01-01T00:00:00Z'}}]}}]}}\n"
            )
        };
        let other_class = "---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: theirs, namespace: a}\n\
                           spec: {gatewayClassName: other, listeners: [{name: http, port: 8080, protocol: HTTP}]}\n";
        let yaml = format!(
            "{CLASS}{}{other_class}{}{}",
            gateway("  - {name: http, port: 8080, protocol: HTTP}\n"),
            route("theirs", "theirs", "theirs"),
            route("moved", "theirs", "gw"),
        );
        let t = translated(&yaml, "vhosts: []\n");
        let reported: Vec<(&str, usize)> = t
            .gateway_api
            .routes
            .iter()
            .map(|r| (r.object.metadata.name.as_deref().unwrap(), r.parents.len()))
            .collect();
        assert_eq!(reported, [("moved", 0)]);
    }

    #[test]
    fn the_cors_filter_becomes_the_routes_cors_and_refuses_credentialed_reflection() {
        let route = |name: &str, cors: &str| {
            format!(
                "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}, namespace: a}}\n\
                 spec:\n  parentRefs: [{{name: gw}}]\n  hostnames: [{name}.test]\n  rules:\n  \
                 - filters: [{{type: CORS, cors: {cors}}}]\n"
            )
        };
        let yaml = format!(
            "{CLASS}{}{}{}{}",
            gateway("  - {name: http, port: 8080, protocol: HTTP}\n"),
            route(
                "listed",
                "{allowOrigins: [\"https://www.foo.com\", \"https://*.bar.com\"], allowMethods: [GET, OPTIONS], \
                 allowHeaders: [x-header-1], exposeHeaders: [x-header-3], allowCredentials: true, maxAge: 3600}"
            ),
            route("defaults", "{allowOrigins: [\"*\"]}"),
            route("reflect", "{allowOrigins: [\"*\"], allowCredentials: true}"),
        );
        let t = translated(&yaml, "vhosts: []\n");
        let security = |host: &str| {
            let v = t.vhosts.iter().find(|v| v.name.0 == host).unwrap();
            v.routes[0].security.clone()
        };
        let listed = security("listed.test");
        assert_eq!(listed.cors_enabled, Some(true));
        assert_eq!(
            listed.allowed_origins.unwrap(),
            [
                CorsOrigin::Exact("https://www.foo.com".into()),
                CorsOrigin::Subdomains {
                    scheme: "https".into(),
                    suffix: "bar.com".into(),
                    port: None
                }
            ]
        );
        let names = |t: Option<Vec<Token>>| t.unwrap().into_iter().map(|t| t.0).collect::<Vec<_>>();
        assert_eq!(names(listed.allowed_methods), ["GET", "OPTIONS"]);
        assert_eq!(names(listed.expose_headers), ["x-header-3"]);
        assert_eq!(
            (listed.max_age, listed.allow_credentials),
            (Some(3600), Some(true))
        );
        let defaults = security("defaults.test");
        assert_eq!(defaults.allowed_origins.unwrap(), [CorsOrigin::Any]);
        assert_eq!(
            (defaults.max_age, defaults.allow_credentials),
            (Some(5), Some(false))
        );
        let reflect = t
            .gateway_api
            .routes
            .iter()
            .find(|r| r.object.metadata.name.as_deref() == Some("reflect"))
            .unwrap();
        let accepted = &reflect.parents[0].conditions[0];
        assert_eq!((accepted.ok, accepted.reason), (false, "UnsupportedValue"));
        assert!(
            accepted
                .message
                .starts_with("spec.rules[0].filters[0].cors: allowCredentials with `*`"),
            "{}",
            accepted.message
        );
        assert!(t.vhosts.iter().all(|v| v.name.0 != "reflect.test"));
    }

    #[test]
    fn references_across_namespaces_need_a_grant_in_the_target_namespace() {
        let grants = [Arc::new(
            serde_json::from_value::<ReferenceGrant>(serde_json::json!({
                "metadata": {"namespace": "b", "name": "g"},
                "spec": {"from": [{"group": GROUP, "kind": "HTTPRoute", "namespace": "a"}],
                         "to": [{"group": "", "kind": "Service", "name": "web"}]},
            }))
            .unwrap(),
        )];
        let g = Grants(&grants);
        assert!(g.allow("HTTPRoute", "a", ("Service", "b", "web")));
        assert!(
            g.allow("HTTPRoute", "b", ("Service", "b", "anything")),
            "same namespace"
        );
        assert!(!g.allow("HTTPRoute", "a", ("Service", "b", "other")));
        assert!(!g.allow("Gateway", "a", ("Service", "b", "web")));
        assert!(!g.allow("HTTPRoute", "c", ("Service", "b", "web")));
        assert!(!g.allow("HTTPRoute", "a", ("Secret", "b", "web")));
        assert!(
            !g.allow("HTTPRoute", "a", ("Service", "c", "web")),
            "the grant is b's"
        );
    }
}
