//! The lints of `pingora-secgw check`, after Django's `check --deploy`: each
//! vhost's and each route's merged security options, read the way the policy
//! compiler turns them into headers.
//!
//! A header the operator writes through `headers` (`set`, `add` or `default`)
//! counts as sent, and its value is not judged: the gateway did not write it.

pub use super::finding::Finding;
use super::finding::{Hit, Reach, Scope, Sent};
use super::{cors, csp, framing, headers, hsts, plain, redirect, referrer};
pub use crate::codes::Severity;
use crate::codes::TRUST_EVERYONE;
use crate::config::resolve::Effective;
use crate::config::schema::{GatewayConfig, PolicyLayer};
use crate::config::LoadedConfig;
use crate::policy::security::security_headers;

/// Every finding of a configuration: gateway-wide ones first (vhost `""`,
/// which no `check_ignore` silences: they concern every vhost alike), then each
/// vhost's, then its routes'. A route repeats no finding its vhost has. The layers
/// are the ones the plan was compiled from ([`crate::config::resolve`]).
pub fn findings(loaded: &LoadedConfig, effective: &Effective) -> Vec<Finding> {
    let g = &loaded.gateway;
    let reach = Reach::of(g);
    let mut out = trusted_proxies(g);
    for ev in &effective.vhosts {
        let v = ev.config;
        let Ok(layer) = &ev.layer else {
            continue;
        };
        let scope = Scope {
            reach: &reach,
            hosts: &v.hosts,
        };
        let ignored = |h: &Hit| v.check_ignore.iter().any(|c| c.0 == h.code.0);
        let own = lint(layer, &scope);
        let mut placed = Vec::new();
        for er in &ev.routes {
            let Ok(route_layer) = &er.layer else {
                continue;
            };
            let route_under = format!("{}.{}", ev.key, er.key);
            let mut hits = lint(route_layer, &scope);
            if er.config.rules.is_some() {
                headers::overridden_by_filter(
                    &route_layer.resolved(),
                    &er.config.headers,
                    &mut hits,
                );
            }
            for h in hits {
                if !own.contains(&h) && !ignored(&h) {
                    placed.push(h.place(
                        &v.name.0,
                        Some(er.config.label().to_string()),
                        &route_under,
                    ));
                }
            }
        }
        out.extend(
            own.into_iter()
                .filter(|h| !ignored(h))
                .map(|h| h.place(&v.name.0, None, &ev.key)),
        );
        out.extend(placed);
    }
    out
}

/// `0.0.0.0/0` or `::/0`: any client may claim HTTPS and any address.
fn trusted_proxies(g: &GatewayConfig) -> Vec<Finding> {
    g.trusted_proxies
        .iter()
        .enumerate()
        .filter(|(_, t)| t.0.prefix_len() == 0)
        .map(|(i, t)| Finding {
            code: TRUST_EVERYONE.0,
            severity: TRUST_EVERYONE.1,
            vhost: String::new(),
            route: None,
            key: format!("trusted_proxies[{i}]"),
            message: format!(
                "`{}` trusts every address: any client may send X-Forwarded-Proto: https \
                 (skipping ssl_redirect) and forge X-Forwarded-For",
                t.0
            ),
            fix: "list only the addresses of the proxies in front of the gateway".into(),
        })
        .collect()
}

/// Every lint of one merged layer, in a stable order. The layer comes before
/// `resolved`, so the built-in defaults' directives are told apart from the user's.
fn lint(layer: &PolicyLayer, at: &Scope) -> Vec<Hit> {
    let mut out = Vec::new();
    csp::loose_defaults(&layer.security, &mut out);
    let layer = &layer.resolved();
    let s = &layer.security;
    let sent = Sent {
        security: security_headers(s),
        headers: &layer.headers,
    };
    hsts::lint(s, &sent, at, &mut out);
    redirect::lint(s, at, &mut out);
    framing::lint(s, &sent, &mut out);
    csp::lint(s, &sent, &mut out);
    csp::http_sources(s, &sent, &mut out);
    plain::nosniff(&sent, &mut out);
    referrer::missing(&sent, &mut out);
    plain::obsolete(&sent, &mut out);
    referrer::leaky(&sent, &mut out);
    headers::set_by_hand(layer, &mut out);
    headers::conflicts(&sent, &mut out);
    cors::lint(s, &sent, &mut out);
    out
}

/// An Ingress the gateway would refuse (in part), as `check --kubeconfig` reports it.
pub fn cluster_problem(p: &crate::cluster::Problem) -> Finding {
    let code = &crate::codes::INGRESS_REFUSED;
    Finding {
        code: code.0,
        severity: code.1,
        vhost: String::new(),
        route: None,
        key: format!("Ingress {}", p.object_name()),
        message: format!("{} ({})", p.message, p.reason),
        fix: "change the field the message names; the gateway also reports it as an Event on the Ingress".into(),
    }
}

/// Each SecurityPolicy not accepted on a target, as its status says
/// (SECGW-E108).
pub fn policy_problems(a: &crate::cluster::attachments::Attachments) -> Vec<Finding> {
    let code = &crate::codes::POLICY_REFUSED;
    let mut out = Vec::new();
    for r in &a.reports {
        let name = crate::cluster::object_name(r.object.as_ref());
        for (target, c) in r.targets.iter().filter(|(_, c)| !c.ok) {
            let section = target
                .section_name
                .as_ref()
                .map_or(String::new(), |s| format!(" rule {s}"));
            out.push(Finding {
                code: code.0,
                severity: code.1,
                vhost: String::new(),
                route: None,
                key: format!(
                    "SecurityPolicy {name} on {} {}{section}",
                    target.kind, target.name
                ),
                message: format!("{} ({})", c.message, c.reason),
                fix: "change the field the message names; the gateway writes the same condition \
                      in the policy's status"
                    .into(),
            });
        }
    }
    out
}

/// What the Gateway API's objects get in their status that says they are not
/// served as written, as `check --kubeconfig` reports it (SECGW-E107).
pub fn gateway_problems(api: &crate::cluster::gateway::GatewayApi) -> Vec<Finding> {
    let code = &crate::codes::GATEWAY_REFUSED;
    let finding = |key: String, c: &crate::cluster::gateway::Cond| Finding {
        code: code.0,
        severity: code.1,
        vhost: String::new(),
        route: None,
        key,
        message: format!("{}: {} ({})", c.kind, c.message, c.reason),
        fix: "change the field the message names; the gateway writes the same condition in the \
              object's status"
            .into(),
    };
    let mut out = Vec::new();
    for g in &api.gateways {
        let name = crate::cluster::object_name(g.object.as_ref());
        for l in &g.listeners {
            let key = format!("Gateway {name} listener {}", l.name);
            out.extend(
                l.conditions
                    .iter()
                    .filter(|c| !c.ok)
                    .map(|c| finding(key.clone(), c)),
            );
        }
    }
    for r in &api.routes {
        let name = crate::cluster::object_name(r.object.as_ref());
        for p in &r.parents {
            let key = format!("HTTPRoute {name} on Gateway {}/{}", p.namespace, p.name);
            out.extend(
                p.conditions
                    .iter()
                    .filter(|c| !c.ok)
                    .map(|c| finding(key.clone(), c)),
            );
        }
    }
    out
}

/// What the lint tests of every family file share: a configuration written and
/// loaded, and its findings as (code, key, route).
#[cfg(test)]
pub(super) mod testing {
    use crate::check::finding::Finding;
    pub(crate) use crate::codes::Severity;
    use crate::config::resolve::resolve;
    use crate::config::LoadedConfig;

    /// The findings of a configuration that loads and resolves.
    pub(crate) fn findings(loaded: &LoadedConfig) -> Vec<Finding> {
        super::findings(loaded, &resolve(loaded).unwrap())
    }

    pub(crate) const LISTENERS: &str = "listeners:\n  - {address: \"127.0.0.1:80\"}\n  - {address: \"127.0.0.1:443\", tls: {cert: c.pem, key: k.pem}}\n";

    /// The strict options every test starts from: clean on their own.
    pub(crate) const STRICT: [(&str, &str); 3] = [
        ("hsts_max_age", "63072000"),
        ("hsts_preload", "true"),
        ("ssl_redirect", "true"),
    ];

    pub(crate) fn load(yaml: &str) -> LoadedConfig {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gw.yaml");
        std::fs::write(&path, yaml).unwrap();
        crate::config::load(&path).unwrap()
    }

    /// Vhost `app` with the strict options, `security` replacing or adding
    /// keys (flow YAML values), and `extra` more vhost keys.
    pub(crate) fn app(security: &[(&str, &str)], extra: &str) -> String {
        let mut keys: indexmap::IndexMap<&str, &str> = STRICT.into_iter().collect();
        keys.extend(security.iter().copied());
        let keys: Vec<String> = keys.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        format!(
            "vhosts:\n  - name: app\n    hosts: [app.test]\n    upstreams: [\"127.0.0.1:9\"]\n    security: {{{}}}\n{extra}",
            keys.join(", ")
        )
    }

    /// (code, key, route) of each finding.
    pub(crate) fn found(yaml: &str) -> Vec<(&'static str, String, Option<String>)> {
        findings(&load(yaml))
            .into_iter()
            .map(|f| (f.code, f.key, f.route))
            .collect()
    }

    pub(crate) fn at(code: &'static str, key: &str) -> (&'static str, String, Option<String>) {
        (code, format!("vhosts[0].{key}"), None)
    }

    pub(crate) fn strict(security: &[(&str, &str)]) -> Vec<(&'static str, String, Option<String>)> {
        found(&format!("{LISTENERS}{}", app(security, "")))
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;

    #[test]
    fn a_strict_vhost_is_clean() {
        assert_eq!(strict(&[]), []);
    }

    #[test]
    fn the_builtin_defaults_lack_the_redirect_and_preload() {
        let yaml = format!(
            "{LISTENERS}vhosts:\n  - name: app\n    hosts: [app.test]\n    upstreams: [\"127.0.0.1:9\"]\n"
        );
        let all = findings(&load(&yaml));
        let got: Vec<(&str, Severity)> = all.iter().map(|f| (f.code, f.severity)).collect();
        assert_eq!(
            got,
            [
                ("SECGW-W021", Severity::Info),
                ("SECGW-W008", Severity::Warning)
            ]
        );
        assert_eq!(all[0].vhost, "app");
        assert_eq!(all[1].key, "vhosts[0].security.ssl_redirect");
    }

    #[test]
    fn leaky_referrers_invalid_hand_values_and_off_host_redirects() {
        assert_eq!(
            strict(&[("referrer_policy", "unsafe-url")]),
            [at("SECGW-W112", "security.referrer_policy")]
        );
        assert_eq!(
            strict(&[("referrer_policy", "no-referrer-when-downgrade")]),
            [at("SECGW-W112", "security.referrer_policy")]
        );
        // The last token a browser knows applies.
        let by_hand = |value: &str| {
            found(&format!(
                "{LISTENERS}{}",
                app(
                    &[],
                    &format!("    headers: {{set: {{Referrer-Policy: \"{value}\"}}}}\n")
                )
            ))
        };
        assert_eq!(
            by_hand("no-referrer, unsafe-url"),
            [at("SECGW-W112", "headers.set.Referrer-Policy")]
        );
        assert_eq!(by_hand("unsafe-url, strict-origin, x-new"), []);
        assert_eq!(
            by_hand("bogus"),
            [at("SECGW-W113", "headers.set.Referrer-Policy")]
        );
        let set = |name: &str, value: &str| {
            found(&format!(
                "{LISTENERS}{}",
                app(
                    &[],
                    &format!("    headers: {{set: {{{name}: \"{value}\"}}}}\n")
                )
            ))
        };
        for (name, bad, good) in [
            ("X-Frame-Options", "ALLOWALL", "sameorigin"),
            ("X-Content-Type-Options", "nosnif", "nosniff"),
            (
                "Strict-Transport-Security",
                "includeSubDomains",
                "max-age=63072000; includeSubDomains; preload",
            ),
        ] {
            let key = format!("headers.set.{name}");
            let got = set(name, bad);
            assert!(got.contains(&at("SECGW-W113", &key)), "{name}: {got:?}");
            let got = set(name, good);
            assert!(!got.iter().any(|f| f.0 == "SECGW-W113"), "{name}: {got:?}");
        }
        let no_preload = ("hsts_preload", "false");
        assert_eq!(
            strict(&[("ssl_host", "www.app.test"), no_preload]),
            [
                at("SECGW-W021", "security.hsts_preload"),
                at("SECGW-W114", "security.ssl_host")
            ]
        );
        assert_eq!(
            strict(&[("ssl_host", "APP.test"), no_preload]),
            [at("SECGW-W021", "security.hsts_preload")]
        );
    }

    #[test]
    fn trusting_every_address_is_one_gateway_finding() {
        let yaml = format!(
            "{LISTENERS}trusted_proxies: [10.0.0.0/8, \"::/0\"]\n{}",
            app(&[], "")
        );
        let all = findings(&load(&yaml));
        assert_eq!(all.len(), 1, "{all:?}");
        let f = &all[0];
        assert_eq!(
            (
                f.code,
                f.severity,
                f.vhost.as_str(),
                f.key.as_str(),
                &f.route
            ),
            (
                "SECGW-E103",
                Severity::Error,
                "",
                "trusted_proxies[1]",
                &None
            )
        );
    }

    #[test]
    fn routes_report_only_what_differs_from_their_vhost() {
        let routes = "    routes:\n      - {prefix: /same, security: {hsts_max_age: 63072000}}\n      - {prefix: /short, security: {hsts_max_age: 60}}\n      - {name: legacy, exact: /old, security: {frame_options: SAMEORIGIN}}\n";
        let yaml = format!(
            "{LISTENERS}{}",
            app(
                &[("referrer_policy", "false"), ("hsts_preload", "false")],
                routes
            )
        );
        let route = |code, j: usize, key: &str, name: &str| {
            (
                code,
                format!("vhosts[0].routes[{j}].{key}"),
                Some(name.to_string()),
            )
        };
        assert_eq!(
            found(&yaml),
            [
                at("SECGW-W021", "security.hsts_preload"),
                at("SECGW-W022", "security.referrer_policy"),
                route("SECGW-W107", 1, "security.hsts_max_age", "/short"),
                route("SECGW-W019", 2, "security.frame_options", "legacy"),
            ]
        );
    }

    #[test]
    fn check_ignore_silences_a_vhost_and_its_routes() {
        let extra = "    check_ignore: [SECGW-W021, SECGW-W107]\n    routes:\n      - {prefix: /short, security: {hsts_max_age: 60}}\n";
        let yaml = format!("{LISTENERS}{}", app(&[("hsts_preload", "false")], extra));
        assert_eq!(found(&yaml), []);
    }

    #[test]
    fn check_ignore_names_only_known_codes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gw.yaml");
        let yaml = format!(
            "{LISTENERS}{}",
            app(&[], "    check_ignore: [SECGW-W021, SECGW-W999]\n")
        );
        std::fs::write(&path, yaml).unwrap();
        let err = crate::config::load(&path).unwrap_err();
        assert_eq!(err.key, "vhosts[0].check_ignore[1]");
        assert!(
            err.reason.starts_with("`SECGW-W999` is not a check code"),
            "{err}"
        );
    }
}
