//! The lints of `pingora-secgw check`, after Django's `check --deploy`: each
//! vhost's and each route's merged security options, read the way the policy
//! compiler turns them into headers.
//!
//! A header the operator writes through `headers` (`set`, `add` or `default`)
//! counts as sent, and its value is not judged: the gateway did not write it.

pub use super::finding::Finding;
use super::finding::{Hit, Reach, Scope, Sent};
use super::{cors, csp, framing, headers, hsts, plain, redirect, referrer};
use crate::codes::TRUST_EVERYONE;
pub use crate::codes::{Code, Severity, CODES};
use crate::config::resolve::resolve;
use crate::config::schema::{GatewayConfig, PolicyLayer};
use crate::config::LoadedConfig;
use crate::policy::security::security_headers;

/// Every finding of a configuration: gateway-wide ones first (vhost `""`,
/// which no `check_ignore` silences: they concern every vhost alike), then each
/// vhost's, then its routes'. A route repeats no finding its vhost has. The layers
/// are the ones `Plan::compile` serves ([`crate::config::resolve`]).
pub fn findings(loaded: &LoadedConfig) -> Vec<Finding> {
    let Ok(effective) = resolve(loaded) else {
        return Vec::new();
    };
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
            for h in lint(route_layer, &scope) {
                if !own.contains(&h) && !ignored(&h) {
                    placed.push(h.place(&v.name.0, Some(er.label.clone()), &route_under));
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

#[cfg(test)]
mod tests {
    use super::*;

    const LISTENERS: &str = "listeners:\n  - {address: \"127.0.0.1:80\"}\n  - {address: \"127.0.0.1:443\", tls: {cert: c.pem, key: k.pem}}\n";

    /// The strict options every test starts from: clean on their own.
    const STRICT: [(&str, &str); 3] = [
        ("hsts_max_age", "63072000"),
        ("hsts_preload", "true"),
        ("ssl_redirect", "true"),
    ];

    fn load(yaml: &str) -> LoadedConfig {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gw.yaml");
        std::fs::write(&path, yaml).unwrap();
        crate::config::load(&path).unwrap()
    }

    /// Vhost `app` with the strict options, `security` replacing or adding
    /// keys (flow YAML values), and `extra` more vhost keys.
    fn app(security: &[(&str, &str)], extra: &str) -> String {
        let mut keys: indexmap::IndexMap<&str, &str> = STRICT.into_iter().collect();
        keys.extend(security.iter().copied());
        let keys: Vec<String> = keys.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        format!(
            "vhosts:\n  - name: app\n    hosts: [app.test]\n    upstreams: [\"127.0.0.1:9\"]\n    security: {{{}}}\n{extra}",
            keys.join(", ")
        )
    }

    /// (code, key, route) of each finding.
    fn found(yaml: &str) -> Vec<(&'static str, String, Option<String>)> {
        findings(&load(yaml))
            .into_iter()
            .map(|f| (f.code, f.key, f.route))
            .collect()
    }

    fn at(code: &'static str, key: &str) -> (&'static str, String, Option<String>) {
        (code, format!("vhosts[0].{key}"), None)
    }

    fn strict(security: &[(&str, &str)]) -> Vec<(&'static str, String, Option<String>)> {
        found(&format!("{LISTENERS}{}", app(security, "")))
    }

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
    fn hsts_off_short_without_subdomains_or_preload() {
        assert_eq!(
            strict(&[("hsts_enabled", "false")]),
            [at("SECGW-W004", "security.hsts_enabled")]
        );
        assert_eq!(
            strict(&[("hsts_max_age", "86400"), ("hsts_preload", "false")]),
            [
                at("SECGW-W107", "security.hsts_max_age"),
                at("SECGW-W021", "security.hsts_preload")
            ]
        );
        assert_eq!(
            strict(&[
                ("hsts_include_subdomains", "false"),
                ("hsts_preload", "false")
            ]),
            [
                at("SECGW-W005", "security.hsts_include_subdomains"),
                at("SECGW-W021", "security.hsts_preload")
            ]
        );
        assert_eq!(
            strict(&[("hsts_preload", "false")]),
            [at("SECGW-W021", "security.hsts_preload")]
        );
        // A hand-written header is sent, and not judged.
        let by_hand = format!(
            "{LISTENERS}{}",
            app(
                &[("hsts_enabled", "false")],
                "    headers: {set: {Strict-Transport-Security: max-age=60}}\n"
            )
        );
        assert_eq!(found(&by_hand), []);
    }

    #[test]
    fn preload_needs_a_year_subdomains_and_a_same_host_redirect() {
        let all = findings(&load(&format!(
            "{LISTENERS}{}",
            app(
                &[("hsts_max_age", "31535999"), ("ssl_redirect", "false")],
                ""
            )
        )));
        let preload = all.iter().find(|f| f.code == "SECGW-E102").unwrap();
        assert_eq!(preload.severity, Severity::Error);
        assert_eq!(preload.key, "vhosts[0].security.hsts_preload");
        assert!(
            preload
                .message
                .contains("at least 31536000 (it is 31535999)"),
            "{preload:?}"
        );
        assert!(
            preload.message.contains("ssl_redirect: true"),
            "{preload:?}"
        );
        assert_eq!(
            strict(&[("ssl_host", "www.app.test")]),
            [at("SECGW-E102", "security.hsts_preload")]
        );
        assert_eq!(strict(&[("ssl_host", "app.test")]), []);
        assert_eq!(
            strict(&[("hsts_include_subdomains", "false")]),
            [
                at("SECGW-W005", "security.hsts_include_subdomains"),
                at("SECGW-E102", "security.hsts_preload")
            ]
        );
        // Without plain HTTP there is nothing to redirect.
        let tls_only =
            "listeners: [{address: \"127.0.0.1:443\", tls: {cert: c.pem, key: k.pem}}]\n";
        let yaml = format!("{tls_only}{}", app(&[("ssl_redirect", "false")], ""));
        assert_eq!(found(&yaml), []);
    }

    #[test]
    fn redirects_that_loop_or_are_missing() {
        assert_eq!(
            strict(&[("ssl_redirect", "false"), ("hsts_preload", "false")]),
            [
                at("SECGW-W021", "security.hsts_preload"),
                at("SECGW-W008", "security.ssl_redirect")
            ]
        );
        let plain = "listeners: [{address: \"127.0.0.1:80\"}]\n";
        let all = findings(&load(&format!("{plain}{}", app(&[], ""))));
        assert_eq!(all.len(), 1, "{all:?}");
        assert_eq!(
            (all[0].code, all[0].severity, all[0].key.as_str()),
            (
                "SECGW-E105",
                Severity::Error,
                "vhosts[0].security.ssl_redirect"
            )
        );
        let proxied = format!("{plain}trusted_proxies: [10.0.0.1]\n{}", app(&[], ""));
        assert_eq!(found(&proxied), []);
        let elsewhere = format!("{plain}{}", app(&[("ssl_host", "secure.other.test")], ""));
        assert_eq!(
            found(&elsewhere),
            [at("SECGW-E102", "security.hsts_preload")]
        );
    }

    #[test]
    fn framing_that_is_allowed_or_unguarded() {
        assert_eq!(
            strict(&[("frame_options", "SAMEORIGIN")]),
            [at("SECGW-W019", "security.frame_options")]
        );
        assert_eq!(
            strict(&[("frame_options_allow_from", "https://portal.test")]),
            [at("SECGW-W019", "security.frame_options_allow_from")]
        );
        assert_eq!(
            strict(&[
                ("frame_options", "false"),
                ("csp_policy", "{frame-ancestors: null}")
            ]),
            [at("SECGW-W105", "security.csp_policy.frame-ancestors")]
        );
        assert_eq!(strict(&[("frame_options", "false")]), []);
        assert_eq!(strict(&[("csp_policy", "{frame-ancestors: null}")]), []);
    }

    #[test]
    fn csp_missing_or_report_only() {
        assert_eq!(
            strict(&[("csp_enabled", "false")]),
            [at("SECGW-W101", "security.csp_enabled")]
        );
        assert_eq!(
            strict(&[("csp_report_only", "true")]),
            [at("SECGW-W102", "security.csp_report_only")]
        );
        assert_eq!(
            strict(&[
                ("csp_enabled", "false"),
                ("csp_report_only_policy", "{default-src: [\"'self'\"]}")
            ]),
            [at("SECGW-W102", "security.csp_report_only_policy")]
        );
    }

    #[test]
    fn builtin_directives_looser_than_the_policys_default_src() {
        let own = "{default-src: [\"'self'\"], script-src: [\"'self'\"], style-src: [\"'self'\"]}";
        let hits = findings(&load(&format!(
            "{LISTENERS}{}",
            app(&[("csp_policy", own)], "")
        )));
        let got: Vec<(&str, &str)> = hits
            .iter()
            .map(|f| (f.code, f.message.split(' ').next().unwrap()))
            .collect();
        // style-src is the policy's own; img-src has data:, font-src https: data:.
        assert_eq!(got, [("SECGW-W111", "font-src"), ("SECGW-W111", "img-src")]);
        assert_eq!(hits[1].key, "vhosts[0].security.csp_use_defaults");
        assert_eq!(
            hits[1].message,
            "img-src `'self' data:` comes from the built-in defaults and allows data:, which \
             the policy's default-src `'self'` does not"
        );
        // Without the defaults, object-src 'none' goes too, and the lint for
        // it speaks.
        assert_eq!(
            strict(&[("csp_policy", own), ("csp_use_defaults", "false")]),
            [at("SECGW-W104", "security.csp_policy.object-src")]
        );
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
    fn unsafe_script_sources() {
        let inline = (
            "csp_policy",
            "{script-src: [\"'self'\", \"'unsafe-inline'\"]}",
        );
        assert_eq!(
            strict(&[inline]),
            [at("SECGW-W103", "security.csp_policy.script-src")]
        );
        assert_eq!(strict(&[inline, ("csp_nonce", "true")]), []);
        let hashed = (
            "csp_policy",
            "{script-src: [\"'unsafe-inline'\", \"'sha256-abc='\"]}",
        );
        assert_eq!(strict(&[hashed]), []);
        let eval = (
            "csp_policy",
            "{script-src: [\"'self'\", \"'unsafe-eval'\"]}",
        );
        assert_eq!(
            strict(&[eval, ("csp_nonce", "true")]),
            [at("SECGW-W103", "security.csp_policy.script-src")]
        );
        let by_default = (
            "csp_policy",
            "{script-src: null, default-src: [\"'self'\", \"'unsafe-inline'\"]}",
        );
        // The built-in defaults' font-src, img-src and style-src allow more than
        // this default-src (SECGW-W111, tested on its own).
        let found: Vec<_> = strict(&[by_default])
            .into_iter()
            .filter(|f| f.0 != "SECGW-W111")
            .collect();
        assert_eq!(found, [at("SECGW-W103", "security.csp_policy.default-src")]);
        assert_eq!(
            strict(&[("csp_policy", "{script-src: [\"*\"]}")]),
            [at("SECGW-E101", "security.csp_policy.script-src")]
        );
        assert_eq!(
            strict(&[("csp_policy", "{script-src: null, default-src: null}")]),
            [at("SECGW-E101", "security.csp_policy.script-src")]
        );
    }

    #[test]
    fn objects_and_plain_http_sources() {
        assert_eq!(
            strict(&[("csp_policy", "{object-src: null}")]),
            [at("SECGW-W104", "security.csp_policy.object-src")]
        );
        assert_eq!(
            strict(&[("csp_policy", "{object-src: [\"'self'\"]}")]),
            [at("SECGW-W104", "security.csp_policy.object-src")]
        );
        assert_eq!(
            strict(&[("csp_policy", "{img-src: [\"'self'\", \"http://cdn.test\"]}")]),
            [at("SECGW-W106", "security.csp_policy.img-src")]
        );
        assert_eq!(
            strict(&[("csp_report_only_policy", "{connect-src: [\"HTTP:\"]}")]),
            [at(
                "SECGW-W106",
                "security.csp_report_only_policy.connect-src"
            )]
        );
        assert_eq!(
            strict(&[("frame_options_allow_from", "http://portal.test")]),
            [
                at("SECGW-W019", "security.frame_options_allow_from"),
                at("SECGW-W106", "security.frame_options_allow_from")
            ]
        );
    }

    #[test]
    fn plain_headers_missing_or_obsolete() {
        assert_eq!(
            strict(&[("content_type_options", "false")]),
            [at("SECGW-W006", "security.content_type_options")]
        );
        assert_eq!(
            strict(&[("referrer_policy", "false")]),
            [at("SECGW-W022", "security.referrer_policy")]
        );
        assert_eq!(
            strict(&[("xss_protection", "true")]),
            [at("SECGW-W109", "security.xss_protection")]
        );
        assert_eq!(
            strict(&[("xss_protection", "true"), ("xss_mode", "false")]),
            []
        );
        let all = findings(&load(&format!(
            "{LISTENERS}{}",
            app(&[("expect_ct", "true")], "")
        )));
        assert_eq!(
            all.iter().map(|f| (f.code, f.severity)).collect::<Vec<_>>(),
            [("SECGW-W110", Severity::Info)]
        );
    }

    #[test]
    fn appended_security_headers() {
        let one = format!(
            "{LISTENERS}{}",
            app(
                &[],
                "    headers: {conflict: {strict-transport-security: append, X-Other: append}}\n"
            )
        );
        assert_eq!(
            found(&one),
            [at(
                "SECGW-W108",
                "headers.conflict.Strict-Transport-Security"
            )]
        );
        let all = format!(
            "{LISTENERS}{}",
            app(&[], "    headers: {conflict: {\"*\": append}}\n")
        );
        let all = findings(&load(&all));
        assert_eq!(all.len(), 1, "{all:?}");
        assert_eq!(all[0].key, "vhosts[0].headers.conflict.*");
        assert!(all[0]
            .message
            .contains("Content-Security-Policy, Strict-Transport-Security"));
    }

    #[test]
    fn any_origin_where_cookies_are_set() {
        let cors = [("cors_enabled", "true"), ("allowed_origins", "[\"*\"]")];
        let cookies = "    headers: {default: {Set-Cookie: \"seen=1\"}}\n";
        assert_eq!(
            found(&format!("{LISTENERS}{}", app(&cors, cookies))),
            [at("SECGW-E104", "security.allowed_origins")]
        );
        assert_eq!(strict(&cors), []);
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
