//! Which SecurityPolicy applies where: GEP-713's direct attachment to a Gateway,
//! an HTTPRoute (or one of its rules, by name) or an Ingress of the policy's own
//! namespace; of two policies on one target the older wins and the newer is
//! refused there; a policy the gateway refuses keeps serving its last good keys.

use std::collections::HashMap;
use std::sync::Arc;

use kube::ResourceExt;

use super::condition::Cond;
use super::security_policy::{read, SecurityPolicy, TargetRef};
use super::ClusterObjects;
use super::{
    age, frames, object_name, removes_framing, CLASS_ANNOTATION, GATEWAY_API_GROUP as GROUP,
};
use crate::config::defaults::builtin_layer;
use crate::config::kubernetes::KubernetesConfig;
use crate::config::policies::ResolvedPolicies;
use crate::config::schema::{AttachedPolicy, PolicyDef};
use crate::config::{KeyError, LoadedConfig};
use crate::policy::route::validate;

const INGRESS_GROUP: &str = "networking.k8s.io";

/// What a policy can be attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Gateway,
    HttpRoute,
    Ingress,
}

/// One target: its namespace (the policy's), kind, name and rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    pub namespace: String,
    pub kind: Kind,
    pub name: String,
    pub section: Option<String>,
}

/// What the previous translation found of each policy, by uid.
pub type LastGood = HashMap<String, Arc<Memory>>;

/// One policy as last checked: the keys its targets keep while a newer
/// generation is refused, and the check itself, reused while neither the
/// policy's generation nor the files change (a translation follows every
/// EndpointSlice change; checking compiles the policy).
#[derive(Debug)]
pub struct Memory {
    accepted: Option<Arc<PolicyDef>>,
    generation: Option<i64>,
    files: u64,
    checked: Result<Arc<PolicyDef>, KeyError>,
}

/// One policy's condition on each of its targets.
#[derive(Debug, Clone)]
pub struct PolicyReport {
    pub object: Arc<SecurityPolicy>,
    pub targets: Vec<(TargetRef, Cond)>,
}

/// The policies attached to each target, and what each policy gets in its status.
#[derive(Debug, Default)]
pub struct Attachments {
    by_target: HashMap<Target, Arc<AttachedPolicy>>,
    pub reports: Vec<PolicyReport>,
    pub last_good: LastGood,
}

impl Attachments {
    /// Reads every SecurityPolicy, oldest first, and attaches those that apply.
    pub fn new(objects: &ClusterObjects, loaded: &LoadedConfig, previous: &LastGood) -> Self {
        let mut out = Attachments::default();
        let mut policies: Vec<&Arc<SecurityPolicy>> = objects.security_policies.iter().collect();
        policies.sort_by_key(|p| age(p.as_ref()));
        // The files loaded, so their `extends` chains resolve.
        let Ok(named) = ResolvedPolicies::resolve(&loaded.policies) else {
            return out;
        };
        for policy in policies {
            let uid = policy.uid().unwrap_or_default();
            // Objects without a uid (a file of manifests) have no history.
            let before = previous.get(&uid).filter(|_| !uid.is_empty());
            let generation = policy.metadata.generation;
            let unchanged = |m: &&Arc<Memory>| m.generation == generation && m.files == loaded.hash;
            let result = match before.filter(unchanged) {
                Some(m) => m.checked.clone(),
                None => checked(policy, loaded, &named).map(Arc::new),
            };
            let (def, refused) = match &result {
                Ok(def) => (Some(def.clone()), None),
                // Kept keys stay only while the policy they extend is there.
                Err(e) => {
                    let kept = before.and_then(|m| m.accepted.clone()).filter(|d| {
                        d.extends
                            .as_ref()
                            .is_none_or(|p| loaded.policies.contains_key(p))
                    });
                    (kept, Some(e.clone()))
                }
            };
            if !uid.is_empty() {
                let memory = Memory {
                    accepted: def.clone(),
                    generation,
                    files: loaded.hash,
                    checked: result,
                };
                out.last_good.insert(uid, Arc::new(memory));
            }
            let attached = def.map(|def| {
                Arc::new(AttachedPolicy {
                    source: format!("securitypolicy:{}", object_name(policy.as_ref())),
                    def: Arc::unwrap_or_clone(def),
                })
            });
            let settings = &loaded.gateway.kubernetes;
            let namespace = policy.namespace().unwrap_or_default();
            let targets = policy
                .spec
                .target_refs
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let within = (objects, settings, namespace.as_str());
                    let cond = out.attach(within, r, i, attached.as_ref(), &refused);
                    (r.clone(), cond)
                })
                .collect();
            out.reports.push(PolicyReport {
                object: policy.clone(),
                targets,
            });
        }
        out
    }

    fn attach(
        &mut self,
        (objects, settings, namespace): (&ClusterObjects, &KubernetesConfig, &str),
        r: &TargetRef,
        i: usize,
        attached: Option<&Arc<AttachedPolicy>>,
        refused: &Option<KeyError>,
    ) -> Cond {
        let at = format!("spec.targetRefs[{i}]");
        let target = match target(objects, settings, namespace, r) {
            Ok(t) => t,
            Err(why) => return Cond::no("Accepted", "TargetNotFound", format!("{at}: {why}")),
        };
        if let Some(holder) = self.by_target.get(&target) {
            return Cond::no(
                "Accepted",
                "Conflicted",
                format!(
                    "{at}: {} is already attached there, and the older policy wins",
                    holder.source.trim_start_matches("securitypolicy:")
                ),
            );
        }
        if let Some(a) = attached {
            self.by_target.insert(target, a.clone());
        }
        match refused {
            None => Cond::yes("Accepted", "Accepted"),
            Some(e) => {
                let kept = match attached {
                    Some(_) => "; its last accepted keys stay in force",
                    None => "",
                };
                Cond::no(
                    "Accepted",
                    "Invalid",
                    format!("{}: {}{kept}", e.key, e.reason),
                )
            }
        }
    }

    /// The policy attached to a target, if any.
    pub fn get(
        &self,
        namespace: &str,
        kind: Kind,
        name: &str,
        section: Option<&str>,
    ) -> Option<Arc<AttachedPolicy>> {
        self.by_target
            .get(&Target {
                namespace: namespace.to_string(),
                kind,
                name: name.to_string(),
                section: section.map(str::to_string),
            })
            .cloned()
    }
}

/// The policy's keys, refused when a policy file would be: a key or value, an
/// `extends` naming no policy, or a combination no route could compile.
fn checked(
    policy: &SecurityPolicy,
    loaded: &LoadedConfig,
    named: &ResolvedPolicies,
) -> Result<PolicyDef, KeyError> {
    let def = read(policy)?;
    tenant_keys(&def)?;
    if let Some(parent) = &def.extends {
        if !loaded.policies.contains_key(parent) {
            return Err(KeyError::new(
                "spec.extends",
                format!("no policy `{parent}` in the gateway's policy_files"),
            ));
        }
    }
    let over_defaults = named.layer(
        builtin_layer(),
        loaded.gateway.kubernetes.default_policy.as_deref(),
        Default::default(),
    )?;
    let layer = named
        .layer(over_defaults, def.extends.as_deref(), def.layer())
        .map_err(|e| e.under("spec"))?;
    validate(&layer).map_err(|e| e.under("spec"))?;
    Ok(def)
}

/// What a policy from the cluster may not say, though a policy file may: the
/// headers that frame messages, and where the host's CSP reports are collected
/// (one path per host, taken from every route of it, other teams' too).
fn tenant_keys(def: &PolicyDef) -> Result<(), KeyError> {
    if def.security.csp_report_path.is_some() {
        return Err(KeyError::new(
            "spec.security.csp_report_path",
            "the report path is the operator's (policy files): on a shared host it would take \
             that path from every route, other teams' too",
        ));
    }
    for (key, actions) in [
        ("headers", &def.headers),
        ("request_headers", &def.request_headers),
    ] {
        let named = actions
            .set
            .keys()
            .chain(actions.add.keys())
            .chain(actions.default.keys())
            .map(|n| &n.name);
        if let Some(name) = named.into_iter().find(|n| frames(n)) {
            return Err(KeyError::new(
                format!("spec.{key}"),
                format!("`{name}` frames the message or the connection; no policy from the cluster may change it"),
            ));
        }
        if let Some(p) = actions.remove.iter().find(|p| removes_framing(p)) {
            return Err(KeyError::new(
                format!("spec.{key}.remove"),
                format!("`{p}` would remove a header that frames the message or the connection"),
            ));
        }
    }
    Ok(())
}

/// The object a target names, in the policy's namespace.
fn target(
    objects: &ClusterObjects,
    settings: &KubernetesConfig,
    namespace: &str,
    r: &TargetRef,
) -> Result<Target, String> {
    fn find<'a, K: ResourceExt>(list: &'a [Arc<K>], namespace: &str, name: &str) -> Option<&'a K> {
        list.iter()
            .map(Arc::as_ref)
            .find(|o| o.namespace().as_deref() == Some(namespace) && o.name_any() == name)
    }
    let missing = || format!("no {} `{}` in namespace {namespace}", r.kind, r.name);
    let kind = match (r.group.as_str(), r.kind.as_str()) {
        (GROUP, "Gateway") => {
            let g = find(&objects.gateways, namespace, &r.name).ok_or_else(missing)?;
            let class = &g.spec.gateway_class_name;
            if *class != settings.gateway_class.0 {
                return Err(format!(
                    "Gateway `{}` is of class `{class}`, which this gateway does not serve",
                    r.name
                ));
            }
            Kind::Gateway
        }
        (INGRESS_GROUP, "Ingress") => {
            let i = find(&objects.ingresses, namespace, &r.name).ok_or_else(missing)?;
            // The default class may take Ingresses without one: only a named
            // other class is surely not ours.
            let class = i.spec.as_ref().and_then(|s| s.ingress_class_name.as_ref());
            let class = class.or_else(|| i.annotations().get(CLASS_ANNOTATION));
            if let Some(class) = class.filter(|c| **c != settings.ingress_class.0) {
                return Err(format!(
                    "Ingress `{}` is of class `{class}`, which this gateway does not serve",
                    r.name
                ));
            }
            Kind::Ingress
        }
        (GROUP, "HTTPRoute") => {
            let route = find(&objects.http_routes, namespace, &r.name).ok_or_else(missing)?;
            if let Some(section) = &r.section_name {
                let rules = route.spec.rules.iter().flatten();
                if !rules
                    .clone()
                    .any(|rule| rule.name.as_ref() == Some(section))
                {
                    return Err(format!(
                        "sectionName: HTTPRoute `{}` has no rule named `{section}`",
                        r.name
                    ));
                }
            }
            Kind::HttpRoute
        }
        (g, k) => {
            return Err(format!(
                "a policy attaches to Gateways, HTTPRoutes and Ingresses, not {k} of {g}"
            ))
        }
    };
    if r.section_name.is_some() && kind != Kind::HttpRoute {
        return Err(format!(
            "sectionName: only an HTTPRoute's rules are sections here; the policy applies to \
             the whole {}",
            r.kind
        ));
    }
    Ok(Target {
        namespace: namespace.to_string(),
        kind,
        name: r.name.clone(),
        section: r.section_name.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::{gateway, objects};
    use super::*;

    const OBJECTS: &str = "\
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: secgw}
spec: {controllerName: secgw.io/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: a}
spec: {gatewayClassName: secgw, listeners: [{name: http, port: 8080, protocol: HTTP}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shop, namespace: a}
spec:
  parentRefs: [{name: gw}]
  hostnames: [shop.test]
  rules:
  - name: checkout
    matches: [{path: {type: PathPrefix, value: /checkout}}]
  - matches: [{path: {type: PathPrefix, value: /}}]
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: secgw}
spec: {controller: secgw.io/ingress-controller}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: blog, namespace: a}
spec:
  ingressClassName: secgw
  rules: [{host: blog.test, http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]}}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: a}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: a, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints: [{addresses: [10.0.0.1]}]
";

    fn policy(name: &str, uid: &str, created: &str, targets: &str, keys: &str) -> String {
        format!(
            "---\napiVersion: secgw.io/v1alpha1\nkind: SecurityPolicy\n\
             metadata: {{name: {name}, namespace: a, uid: {uid}, creationTimestamp: \"{created}\"}}\n\
             spec:\n  targetRefs: {targets}\n{keys}"
        )
    }

    const ROUTE: &str = "[{group: gateway.networking.k8s.io, kind: HTTPRoute, name: shop}]";

    fn conditions(a: &Attachments) -> Vec<(String, bool, &'static str, String)> {
        a.reports
            .iter()
            .flat_map(|r| {
                r.targets
                    .iter()
                    .map(|(_, c)| (r.object.name_any(), c.ok, c.reason, c.message.clone()))
            })
            .collect()
    }

    fn translated(yaml: &str, previous: &LastGood) -> super::super::Translation {
        let (_dir, loaded) = gateway("vhosts: []\n");
        let previous = super::super::Previous {
            policies: previous.clone(),
            ..Default::default()
        };
        super::super::translate(&objects(yaml), &loaded, &previous)
    }

    /// The sources of the policies attached to each route of a host, by match.
    fn attached(t: &super::super::Translation, host: &str) -> Vec<(String, Vec<String>)> {
        let vhost = t.vhosts.iter().find(|v| v.name.0 == host).unwrap();
        vhost
            .routes
            .iter()
            .map(|r| {
                let sources = r.attached.iter().map(|a| a.source.clone()).collect();
                (r.prefix.clone().unwrap_or_default(), sources)
            })
            .collect()
    }

    #[test]
    fn each_level_attaches_to_its_routes_weakest_first() {
        let yaml = [
            OBJECTS.to_string(),
            policy(
                "rule",
                "u1",
                "2026-01-01T00:00:00Z",
                "[{group: gateway.networking.k8s.io, kind: HTTPRoute, name: shop, sectionName: checkout}]",
                "  headers: {set: {X-Layer: rule}}\n",
            ),
            policy("route", "u2", "2026-01-01T00:00:01Z", ROUTE, "  headers: {set: {X-Layer: route}}\n"),
            policy(
                "gateway",
                "u3",
                "2026-01-01T00:00:02Z",
                "[{group: gateway.networking.k8s.io, kind: Gateway, name: gw}]",
                "  security: {frame_options: SAMEORIGIN}\n",
            ),
            policy(
                "ingress",
                "u4",
                "2026-01-01T00:00:03Z",
                "[{group: networking.k8s.io, kind: Ingress, name: blog}]",
                "  security: {hsts_preload: true}\n",
            ),
        ]
        .concat();
        let t = translated(&yaml, &LastGood::new());
        let accepted: Vec<_> = conditions(&t.policies)
            .into_iter()
            .map(|c| (c.0, c.1))
            .collect();
        assert_eq!(
            accepted,
            [
                ("rule".into(), true),
                ("route".into(), true),
                ("gateway".into(), true),
                ("ingress".into(), true)
            ]
        );
        let p = |name: &str| format!("securitypolicy:a/{name}");
        assert_eq!(
            attached(&t, "shop.test"),
            [
                (
                    "/checkout".into(),
                    vec![p("gateway"), p("route"), p("rule")]
                ),
                ("/".into(), vec![p("gateway"), p("route")]),
            ]
        );
        assert_eq!(
            attached(&t, "blog.test"),
            [("/".into(), vec![p("ingress")])]
        );
    }

    #[test]
    fn the_older_policy_on_a_target_wins_and_the_newer_is_told_why() {
        let yaml = [
            OBJECTS.to_string(),
            policy(
                "newer",
                "u1",
                "2026-02-01T00:00:00Z",
                ROUTE,
                "  headers: {set: {X-Layer: newer}}\n",
            ),
            policy(
                "older",
                "u2",
                "2026-01-01T00:00:00Z",
                ROUTE,
                "  headers: {set: {X-Layer: older}}\n",
            ),
        ]
        .concat();
        let t = translated(&yaml, &LastGood::new());
        assert_eq!(
            conditions(&t.policies),
            [
                ("older".into(), true, "Accepted", String::new()),
                (
                    "newer".into(),
                    false,
                    "Conflicted",
                    "spec.targetRefs[0]: a/older is already attached there, and the older policy wins".into()
                ),
            ]
        );
        assert_eq!(attached(&t, "shop.test")[1].1, ["securitypolicy:a/older"]);
    }

    #[test]
    fn targets_that_are_not_there_are_named() {
        let refs = "[{group: gateway.networking.k8s.io, kind: HTTPRoute, name: gone}, \
                    {group: gateway.networking.k8s.io, kind: HTTPRoute, name: shop, sectionName: nope}, \
                    {group: gateway.networking.k8s.io, kind: Gateway, name: gw, sectionName: http}, \
                    {group: networking.k8s.io, kind: Ingress, name: shop}]";
        let yaml = [
            OBJECTS.to_string(),
            policy("p", "u1", "2026-01-01T00:00:00Z", refs, ""),
        ]
        .concat();
        let t = translated(&yaml, &LastGood::new());
        let found: Vec<_> = conditions(&t.policies)
            .into_iter()
            .map(|c| (c.2, c.3))
            .collect();
        assert_eq!(
            found,
            [
                ("TargetNotFound", "spec.targetRefs[0]: no HTTPRoute `gone` in namespace a".to_string()),
                ("TargetNotFound", "spec.targetRefs[1]: sectionName: HTTPRoute `shop` has no rule named `nope`".into()),
                ("TargetNotFound", "spec.targetRefs[2]: sectionName: only an HTTPRoute's rules are sections here; the policy applies to the whole Gateway".into()),
                ("TargetNotFound", "spec.targetRefs[3]: no Ingress `shop` in namespace a".into()),
            ]
        );
        assert!(attached(&t, "shop.test").iter().all(|(_, s)| s.is_empty()));
    }

    #[test]
    fn a_refused_policy_keeps_its_last_good_keys_and_says_why() {
        let good = policy(
            "p",
            "u1",
            "2026-01-01T00:00:00Z",
            ROUTE,
            "  security: {frame_options: DENY}\n",
        );
        let t = translated(&[OBJECTS, &good].concat(), &LastGood::new());
        let previous = t.policies.last_good.clone();
        assert!(previous.contains_key("u1"));
        let bad = policy(
            "p",
            "u1",
            "2026-01-01T00:00:00Z",
            ROUTE,
            "  security: {cors_enabled: true, allowed_origins: [\"*\"], allow_credentials: true}\n",
        )
        // A new spec is a new generation; the same one is not checked again.
        .replace("uid: u1,", "uid: u1, generation: 2,");
        let t = translated(&[OBJECTS, &bad].concat(), &previous);
        let c = &conditions(&t.policies)[0];
        assert_eq!((c.1, c.2), (false, "Invalid"));
        assert!(
            c.3.starts_with("spec.security.allow_credentials: "),
            "{}",
            c.3
        );
        assert!(
            c.3.ends_with("; its last accepted keys stay in force"),
            "{}",
            c.3
        );
        let shop = t.vhosts.iter().find(|v| v.name.0 == "shop.test").unwrap();
        let kept = &shop.routes[0].attached[0];
        assert!(matches!(
            kept.def.security.frame_options,
            Some(crate::config::values::Toggle::On(_))
        ));
        // Never accepted: nothing attached, and the status says why.
        let t = translated(&[OBJECTS, &bad].concat(), &LastGood::new());
        assert!(!t.policies.reports[0].targets[0]
            .1
            .message
            .contains("last accepted"));
        assert!(attached(&t, "shop.test").iter().all(|(_, s)| s.is_empty()));
    }

    #[test]
    fn what_only_the_operator_may_say_is_refused_from_the_cluster() {
        let refused = |keys: &str, targets: &str| {
            let p = policy("p", "u1", "2026-01-01T00:00:00Z", targets, keys);
            let t = translated(&[OBJECTS, &p].concat(), &LastGood::new());
            conditions(&t.policies)[0].3.clone()
        };
        assert!(refused(
            "  security: {csp_report_collect: true, csp_report_path: /login}\n",
            ROUTE
        )
        .starts_with("spec.security.csp_report_path: the report path is the operator's"));
        assert!(refused(
            "  request_headers: {set: {Transfer-Encoding: chunked}}\n",
            ROUTE
        )
        .starts_with("spec.request_headers: `transfer-encoding` frames the message"));
        let e = refused("  headers: {remove: [Content-*]}\n", ROUTE);
        assert!(e.starts_with("spec.headers.remove: `"), "{e}");
        assert!(
            e.ends_with("` would remove a header that frames the message or the connection"),
            "{e}"
        );
        let twice = format!(
            "[{}, {}]",
            &ROUTE[1..ROUTE.len() - 1],
            &ROUTE[1..ROUTE.len() - 1]
        );
        assert_eq!(
            refused("", &twice),
            "spec.targetRefs[1]: the same target as targetRefs[0]"
        );
        let other = OBJECTS.replace("{gatewayClassName: secgw,", "{gatewayClassName: other,");
        let p = policy(
            "p",
            "u1",
            "2026-01-01T00:00:00Z",
            "[{group: gateway.networking.k8s.io, kind: Gateway, name: gw}]",
            "",
        );
        let t = translated(&[other.as_str(), &p].concat(), &LastGood::new());
        assert_eq!(
            conditions(&t.policies)[0].3,
            "spec.targetRefs[0]: Gateway `gw` is of class `other`, which this gateway does not serve"
        );
    }

    #[test]
    fn an_extends_of_no_policy_file_is_refused_at_its_key() {
        let p = policy(
            "p",
            "u1",
            "2026-01-01T00:00:00Z",
            ROUTE,
            "  extends: nowhere\n",
        );
        let t = translated(&[OBJECTS, &p].concat(), &LastGood::new());
        assert_eq!(
            conditions(&t.policies)[0].3,
            "spec.extends: no policy `nowhere` in the gateway's policy_files"
        );
    }
}
