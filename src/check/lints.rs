//! The lints of `pingora-secgw check`, after Django's `check --deploy`: each
//! vhost's and each route's merged security options, read the way the policy
//! compiler turns them into headers.
//!
//! A header the operator writes through `headers` (`set`, `add` or `default`)
//! counts as sent, and its value is not judged: the gateway did not write it.

use http::HeaderName;
use serde::Serialize;

use crate::config::defaults::builtin_layer;
use crate::config::policies::ResolvedPolicies;
use crate::config::schema::{
    ConflictKey, ConflictMode, GatewayConfig, HeaderActions, PolicyLayer, RouteConfig,
    SecurityOptions,
};
use crate::config::values::{CorsOrigin, HostPattern, Toggle, REFERRER_POLICIES};
use crate::config::LoadedConfig;
use crate::policy::security::{security_headers, Csp, SecurityHeader};

/// How serious a finding is; `--fail-on` picks the lowest that fails the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum, strum::IntoStaticStr)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Info,
}

impl Severity {
    /// Whether this is at or above `threshold` (info < warning < error).
    pub fn reaches(self, threshold: Severity) -> bool {
        self.rank() >= threshold.rank()
    }

    fn rank(self) -> u8 {
        match self {
            Severity::Info => 0,
            Severity::Warning => 1,
            Severity::Error => 2,
        }
    }
}

/// A check code: its name, its severity and what it finds.
pub type Code = (&'static str, Severity, &'static str);

const HSTS_OFF: Code = (
    "SECGW-W004",
    Severity::Warning,
    "HSTS is off (no Strict-Transport-Security)",
);
const HSTS_NO_SUBDOMAINS: Code = (
    "SECGW-W005",
    Severity::Warning,
    "HSTS without includeSubDomains",
);
const NO_NOSNIFF: Code = (
    "SECGW-W006",
    Severity::Warning,
    "no X-Content-Type-Options: nosniff",
);
const NO_REDIRECT: Code = (
    "SECGW-W008",
    Severity::Warning,
    "plain HTTP is served, not redirected to HTTPS (ssl_redirect off)",
);
const FRAMING_ALLOWED: Code = (
    "SECGW-W019",
    Severity::Warning,
    "X-Frame-Options is not DENY (SAMEORIGIN, or ALLOW-FROM through frame_options_allow_from)",
);
const HSTS_NO_PRELOAD: Code = ("SECGW-W021", Severity::Info, "HSTS without preload");
const NO_REFERRER_POLICY: Code = ("SECGW-W022", Severity::Warning, "no Referrer-Policy");
const NO_CSP: Code = (
    "SECGW-W101",
    Severity::Warning,
    "no Content-Security-Policy is enforced",
);
const CSP_REPORT_ONLY: Code = (
    "SECGW-W102",
    Severity::Warning,
    "the only CSP is report-only: nothing is enforced",
);
const UNSAFE_SCRIPTS: Code = (
    "SECGW-W103",
    Severity::Warning,
    "'unsafe-inline' without a nonce or hash, or 'unsafe-eval', in the enforced script-src",
);
const OBJECTS_ALLOWED: Code = (
    "SECGW-W104",
    Severity::Warning,
    "the enforced CSP's object-src (or default-src) is not 'none'",
);
const NO_FRAMING_RULE: Code = (
    "SECGW-W105",
    Severity::Warning,
    "neither CSP frame-ancestors (enforced) nor X-Frame-Options",
);
const HTTP_SOURCES: Code = (
    "SECGW-W106",
    Severity::Warning,
    "plain-HTTP sources (http: or http://...) in a CSP directive",
);
const HSTS_SHORT: Code = (
    "SECGW-W107",
    Severity::Warning,
    "HSTS max-age under 6 months (15552000 s)",
);
const CONFLICT_APPEND: Code = (
    "SECGW-W108",
    Severity::Warning,
    "conflict: append on a header the security options manage",
);
const XSS_AUDITOR: Code = (
    "SECGW-W109",
    Severity::Warning,
    "X-XSS-Protection turns the obsolete XSS auditor on (not 0)",
);
const EXPECT_CT: Code = (
    "SECGW-W110",
    Severity::Info,
    "the obsolete Expect-CT header is sent",
);
const LOOSE_DEFAULTS: Code = (
    "SECGW-W111",
    Severity::Warning,
    "a CSP directive from the built-in defaults allows more than the policy's own default-src",
);
const LEAKY_REFERRER: Code = (
    "SECGW-W112",
    Severity::Warning,
    "Referrer-Policy unsafe-url or no-referrer-when-downgrade: full URLs go to other origins",
);
const INVALID_MANAGED_VALUE: Code = (
    "SECGW-W113",
    Severity::Warning,
    "headers.set gives a security header a value browsers ignore",
);
const REDIRECT_OFF_HOST: Code = (
    "SECGW-W114",
    Severity::Warning,
    "ssl_host sends plain-HTTP requests to another host, so HSTS is never set for this one",
);
const SCRIPTS_FROM_ANYWHERE: Code = (
    "SECGW-E101",
    Severity::Error,
    "the enforced script-src (or default-src) allows any host: `*`, or neither directive",
);
const PRELOAD_UNMET: Code = (
    "SECGW-E102",
    Severity::Error,
    "HSTS preload without a 1-year max-age, includeSubDomains and a same-host redirect",
);
const TRUST_EVERYONE: Code = (
    "SECGW-E103",
    Severity::Error,
    "trusted_proxies trusts every address (0.0.0.0/0 or ::/0)",
);
const CORS_ANY_WITH_COOKIES: Code = (
    "SECGW-E104",
    Severity::Error,
    "CORS allows any origin (`*`) where responses set cookies",
);
const REDIRECT_LOOP: Code = (
    "SECGW-E105",
    Severity::Error,
    "ssl_redirect with no TLS listener and no trusted proxy: every request is redirected again",
);

/// Every code `check` reports, for the README and for `check_ignore`.
pub const CODES: &[Code] = &[
    HSTS_OFF,
    HSTS_NO_SUBDOMAINS,
    NO_NOSNIFF,
    NO_REDIRECT,
    FRAMING_ALLOWED,
    HSTS_NO_PRELOAD,
    NO_REFERRER_POLICY,
    NO_CSP,
    CSP_REPORT_ONLY,
    UNSAFE_SCRIPTS,
    OBJECTS_ALLOWED,
    NO_FRAMING_RULE,
    HTTP_SOURCES,
    HSTS_SHORT,
    CONFLICT_APPEND,
    XSS_AUDITOR,
    EXPECT_CT,
    LOOSE_DEFAULTS,
    LEAKY_REFERRER,
    INVALID_MANAGED_VALUE,
    REDIRECT_OFF_HOST,
    SCRIPTS_FROM_ANYWHERE,
    PRELOAD_UNMET,
    TRUST_EVERYONE,
    CORS_ANY_WITH_COOKIES,
    REDIRECT_LOOP,
];

/// The Observatory's minimum HSTS max-age.
const SIX_MONTHS: u64 = 15_552_000;
/// hstspreload.org's minimum max-age.
const ONE_YEAR: u64 = 31_536_000;
const ENFORCED_CSP: &str = "Content-Security-Policy";

/// One problem, at the key the operator would change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub code: &'static str,
    pub severity: Severity,
    /// The vhost's name; empty for a gateway-wide finding.
    pub vhost: String,
    /// The route's label (its name, else its match text); `None` at the vhost.
    pub route: Option<String>,
    pub key: String,
    pub message: String,
    pub fix: String,
}

/// A finding before it is placed: its key is relative to the vhost or route.
/// The message quotes the values the lint read, so two equal hits mean the
/// same merged values.
#[derive(Debug, PartialEq)]
struct Hit {
    code: &'static Code,
    key: String,
    message: String,
    fix: String,
}

fn hit(
    code: &'static Code,
    key: impl Into<String>,
    message: impl Into<String>,
    fix: impl Into<String>,
) -> Hit {
    Hit {
        code,
        key: key.into(),
        message: message.into(),
        fix: fix.into(),
    }
}

impl Hit {
    fn place(self, vhost: &str, route: Option<String>, under: &str) -> Finding {
        Finding {
            code: self.code.0,
            severity: self.code.1,
            vhost: vhost.to_string(),
            route,
            key: format!("{under}.{}", self.key),
            message: self.message,
            fix: self.fix,
        }
    }
}

/// Every finding of a configuration: gateway-wide ones first (vhost `""`,
/// which no `check_ignore` silences: they concern every vhost alike), then each
/// vhost's, then its routes'. A route repeats no finding its vhost has.
pub fn findings(loaded: &LoadedConfig) -> Vec<Finding> {
    let Ok(policies) = ResolvedPolicies::resolve(&loaded.policies) else {
        return Vec::new();
    };
    let builtin = builtin_layer();
    let g = &loaded.gateway;
    let reach = Reach::of(g);
    let mut out = trusted_proxies(g);
    for (i, v) in g.vhosts.iter().enumerate() {
        let Ok(layer) = policies.layer(builtin.clone(), v.policy.as_deref(), v.inline_layer())
        else {
            continue;
        };
        let scope = Scope {
            reach: &reach,
            hosts: &v.hosts,
        };
        let ignored = |h: &Hit| v.check_ignore.iter().any(|c| c.0 == h.code.0);
        let own = lint(&layer, &scope);
        let under = format!("vhosts[{i}]");
        let mut placed = Vec::new();
        for (j, r) in v.routes.iter().enumerate() {
            let Ok(route_layer) =
                policies.layer(layer.clone(), r.policy.as_deref(), r.inline_layer())
            else {
                continue;
            };
            let route_under = format!("{under}.routes[{j}]");
            for h in lint(&route_layer, &scope) {
                if !own.contains(&h) && !ignored(&h) {
                    placed.push(h.place(&v.name.0, Some(route_label(r)), &route_under));
                }
            }
        }
        out.extend(
            own.into_iter()
                .filter(|h| !ignored(h))
                .map(|h| h.place(&v.name.0, None, &under)),
        );
        out.extend(placed);
    }
    out
}

/// The route's label, as the gateway names it in logs and metrics.
fn route_label(r: &RouteConfig) -> String {
    let text = r.prefix.as_ref().or(r.exact.as_ref()).or(r.regex.as_ref());
    r.name
        .as_ref()
        .map(|n| &n.0)
        .or(text)
        .cloned()
        .unwrap_or_default()
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

/// How requests reach the gateway.
struct Reach<'a> {
    /// A listener without `tls`: plain HTTP arrives.
    plain: bool,
    /// A request can count as HTTPS: a TLS listener, or a trusted proxy's
    /// `X-Forwarded-Proto`.
    https: bool,
    /// Every host pattern of every vhost.
    served: Vec<&'a HostPattern>,
}

impl<'a> Reach<'a> {
    fn of(g: &'a GatewayConfig) -> Reach<'a> {
        Reach {
            plain: g.listeners.iter().any(|l| l.tls.is_none()),
            https: g.listeners.iter().any(|l| l.tls.is_some()) || !g.trusted_proxies.is_empty(),
            served: g.vhosts.iter().flat_map(|v| &v.hosts).collect(),
        }
    }

    /// Whether a vhost of this configuration answers `host`.
    fn serves(&self, host: &str) -> bool {
        self.served.iter().any(|p| match p {
            HostPattern::Any => true,
            HostPattern::Exact(h) => h == host,
            HostPattern::Suffix(s) => host
                .strip_suffix(s.as_str())
                .is_some_and(|head| head.ends_with('.')),
        })
    }
}

/// What a vhost or route is linted against besides its options.
struct Scope<'a> {
    reach: &'a Reach<'a>,
    /// The vhost's hosts, for the same-host redirect preload needs.
    hosts: &'a [HostPattern],
}

/// The response headers a merged layer sends.
struct Sent<'a> {
    security: Vec<SecurityHeader>,
    headers: &'a HeaderActions,
}

impl Sent<'_> {
    /// Written by a `headers` action (which takes precedence over the security keys).
    fn by_hand(&self, name: &str) -> bool {
        let h = self.headers;
        h.set
            .keys()
            .chain(h.add.keys())
            .chain(h.default.keys())
            .any(|k| k.name.as_str().eq_ignore_ascii_case(name))
    }

    /// The value `headers.set` gives `name`.
    fn by_hand_value(&self, name: &str) -> Option<&str> {
        self.headers
            .set
            .iter()
            .find(|(k, _)| k.name.as_str().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.0.as_str())
    }

    /// The value the security options give `name`, unless `headers` writes it.
    fn security(&self, name: &str) -> Option<&str> {
        if self.by_hand(name) {
            return None;
        }
        self.security
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(name))
            .map(|s| s.value.as_str())
    }

    /// Neither the security options nor `headers` send `name`.
    fn missing(&self, name: &str) -> bool {
        !self.by_hand(name) && self.security(name).is_none()
    }
}

fn on<T>(v: &Option<Toggle<T>>) -> Option<&T> {
    v.as_ref().and_then(Toggle::as_ref)
}

/// Every lint of one merged layer, in a stable order. The layer comes before
/// `resolved`, so the built-in defaults' directives are told apart from the user's.
fn lint(layer: &PolicyLayer, at: &Scope) -> Vec<Hit> {
    let mut out = Vec::new();
    loose_defaults(&layer.security, &mut out);
    let layer = &layer.resolved();
    let s = &layer.security;
    let sent = Sent {
        security: security_headers(s),
        headers: &layer.headers,
    };
    hsts(s, &sent, at, &mut out);
    redirect(s, at, &mut out);
    framing(s, &sent, &mut out);
    csp(s, &sent, &mut out);
    http_sources(s, &sent, &mut out);
    plain_headers(&sent, &mut out);
    referrer(&sent, &mut out);
    set_by_hand(layer, &mut out);
    conflicts(&sent, &mut out);
    cors(s, &sent, &mut out);
    out
}

fn hsts(s: &SecurityOptions, sent: &Sent, at: &Scope, out: &mut Vec<Hit>) {
    let name = "Strict-Transport-Security";
    if sent.by_hand(name) {
        return;
    }
    if sent.security(name).is_none() {
        out.push(hit(
            &HSTS_OFF,
            "security.hsts_enabled",
            "no Strict-Transport-Security: browsers keep trying plain HTTP first, where a \
             network attacker can intercept them",
            "set hsts_enabled: true once every host of the vhost works over HTTPS",
        ));
        return;
    }
    let max_age = s.hsts_max_age.unwrap_or_default();
    if max_age < SIX_MONTHS {
        out.push(hit(
            &HSTS_SHORT,
            "security.hsts_max_age",
            format!(
                "hsts_max_age is {max_age} s, under 6 months ({SIX_MONTHS} s): browsers \
                 soon forget that the site is HTTPS-only"
            ),
            "raise hsts_max_age to 31536000 (1 year) or 63072000 (2 years)",
        ));
    }
    if s.hsts_include_subdomains != Some(true) {
        out.push(hit(
            &HSTS_NO_SUBDOMAINS,
            "security.hsts_include_subdomains",
            "HSTS leaves subdomains out (no includeSubDomains): a plain-HTTP subdomain can \
             be spoofed to set cookies for the site",
            "set hsts_include_subdomains: true once every subdomain serves HTTPS",
        ));
    }
    if s.hsts_preload != Some(true) {
        out.push(hit(
            &HSTS_NO_PRELOAD,
            "security.hsts_preload",
            "HSTS is not marked preload: a browser's first visit may still go over plain HTTP",
            "if every subdomain will stay on HTTPS for good, set hsts_preload: true and \
             submit the domain at hstspreload.org",
        ));
        return;
    }
    let unmet = preload_unmet(s, max_age, at);
    if !unmet.is_empty() {
        out.push(hit(
            &PRELOAD_UNMET,
            "security.hsts_preload",
            format!(
                "hsts_preload is on, but hstspreload.org also requires {}",
                unmet.join(", ")
            ),
            "meet those requirements before submitting the domain, or set hsts_preload: false",
        ));
    }
}

/// hstspreload.org's requirements that the options miss; the redirect only
/// counts when plain HTTP is served at all.
fn preload_unmet(s: &SecurityOptions, max_age: u64, at: &Scope) -> Vec<String> {
    let mut unmet = Vec::new();
    if max_age < ONE_YEAR {
        unmet.push(format!(
            "hsts_max_age of at least {ONE_YEAR} (it is {max_age})"
        ));
    }
    if s.hsts_include_subdomains != Some(true) {
        unmet.push("hsts_include_subdomains: true".to_string());
    }
    if at.reach.plain {
        match &s.ssl_host {
            _ if s.ssl_redirect != Some(true) => {
                unmet.push("ssl_redirect: true, since plain HTTP is served".to_string());
            }
            Some(Toggle::On(HostPattern::Exact(to)))
                if at
                    .hosts
                    .iter()
                    .any(|h| !matches!(h, HostPattern::Exact(x) if x == to)) =>
            {
                unmet.push(format!(
                    "the redirect to stay on the same host (ssl_host sends every host to {to})"
                ));
            }
            _ => {}
        }
    }
    unmet
}

fn redirect(s: &SecurityOptions, at: &Scope, out: &mut Vec<Hit>) {
    let on_redirect = s.ssl_redirect == Some(true);
    if !on_redirect && at.reach.plain {
        out.push(hit(
            &NO_REDIRECT,
            "security.ssl_redirect",
            "plain-HTTP requests are served, not redirected to HTTPS (ssl_redirect is off)",
            "set ssl_redirect: true",
        ));
    }
    // With preload on, SECGW-E102 already says it.
    let preload = s.hsts_preload == Some(true);
    if let (true, false, Some(Toggle::On(HostPattern::Exact(to)))) =
        (on_redirect, preload, &s.ssl_host)
    {
        let own = at.hosts.iter().any(|h| match h {
            HostPattern::Exact(e) => e.eq_ignore_ascii_case(to),
            _ => false,
        });
        if !own {
            out.push(hit(
                &REDIRECT_OFF_HOST,
                "security.ssl_host",
                format!(
                    "plain-HTTP requests are redirected to {to}, another host: a browser never \
                     gets this host's HSTS over HTTPS before it leaves (the Observatory deducts \
                     for it)"
                ),
                "redirect to the same host first (no ssl_host), and from its HTTPS side to \
                 the other host",
            ));
        }
    }
    // A redirect to a host no vhost here serves leaves the gateway: no loop.
    let elsewhere =
        matches!(&s.ssl_host, Some(Toggle::On(HostPattern::Exact(h))) if !at.reach.serves(h));
    if on_redirect && !at.reach.https && !elsewhere {
        out.push(hit(
            &REDIRECT_LOOP,
            "security.ssl_redirect",
            "ssl_redirect is on, but no listener has `tls` and no trusted_proxies may report \
             HTTPS: every request counts as plain HTTP and is redirected again, forever",
            "add a listener with `tls`, or list the TLS-terminating proxy in trusted_proxies \
             (it must send X-Forwarded-Proto: https)",
        ));
    }
}

fn framing(s: &SecurityOptions, sent: &Sent, out: &mut Vec<Hit>) {
    let xfo = "X-Frame-Options";
    if !sent.by_hand(xfo) {
        if let Some(origin) = on(&s.frame_options_allow_from) {
            out.push(hit(
                &FRAMING_ALLOWED,
                "security.frame_options_allow_from",
                format!(
                    "framing is allowed from {} (ALLOW-FROM, sent as CSP frame-ancestors), \
                     not denied",
                    origin.0
                ),
                "unless that origin must frame the pages, set frame_options_allow_from: false \
                 and frame_options: DENY",
            ));
        } else if sent.security(xfo) == Some("SAMEORIGIN") {
            out.push(hit(
                &FRAMING_ALLOWED,
                "security.frame_options",
                "X-Frame-Options is SAMEORIGIN, not DENY: any page of the site may frame another",
                "set frame_options: DENY unless the site frames its own pages",
            ));
        }
    }
    // Browsers ignore frame-ancestors in a report-only policy.
    let ancestors = Csp::from_options(s)
        .is_some_and(|c| c.name == ENFORCED_CSP && c.sources("frame-ancestors").is_some());
    if !ancestors && sent.missing(xfo) && !sent.by_hand(ENFORCED_CSP) {
        out.push(hit(
            &NO_FRAMING_RULE,
            "security.csp_policy.frame-ancestors",
            "neither CSP frame-ancestors nor X-Frame-Options is sent: any site may frame the \
             pages (clickjacking)",
            "set csp_policy frame-ancestors: [\"'none'\"] (or [\"'self'\"]), or \
             frame_options: DENY",
        ));
    }
}

/// A policy that writes its own `default-src` and inherits, from the built-in
/// defaults, a fetch directive allowing a source that default-src does not
/// (`style-src 'unsafe-inline'`, `img-src data:`): the strict default-src does
/// not apply to that directive.
fn loose_defaults(s: &SecurityOptions, out: &mut Vec<Hit>) {
    let (Some(own), Some(builtin)) = (&s.csp_policy, &s.builtin_csp_policy) else {
        return;
    };
    let Some(Some(default_src)) = own.0.get("default-src") else {
        return;
    };
    if s.csp_enabled != Some(true) || s.csp_use_defaults == Some(false) {
        return;
    }
    for (directive, sources) in &builtin.0 {
        // `'none'` allows nothing, whatever default-src allows.
        let Some(sources) = sources.as_ref().filter(|s| *s != &["'none'"]) else {
            continue;
        };
        if !FETCH_DIRECTIVES.contains(&directive.as_str()) || own.0.contains_key(directive) {
            continue;
        }
        let wider: Vec<&str> = sources
            .iter()
            .filter(|src| !default_src.contains(src))
            .map(String::as_str)
            .collect();
        if wider.is_empty() {
            continue;
        }
        out.push(hit(
            &LOOSE_DEFAULTS,
            "security.csp_use_defaults",
            format!(
                "{directive} `{}` comes from the built-in defaults and allows {}, which the \
                 policy's default-src `{}` does not",
                sources.join(" "),
                wider.join(" "),
                default_src.join(" ")
            ),
            format!(
                "set {directive} in csp_policy, or csp_use_defaults: false to send only the \
                 policy's own directives"
            ),
        ));
    }
}

/// The directives that fall back to default-src.
const FETCH_DIRECTIVES: &[&str] = &[
    "child-src",
    "connect-src",
    "font-src",
    "frame-src",
    "img-src",
    "manifest-src",
    "media-src",
    "object-src",
    "script-src",
    "script-src-elem",
    "script-src-attr",
    "style-src",
    "style-src-elem",
    "style-src-attr",
    "worker-src",
];

/// Whether anything is enforced, and what the enforced policy lets scripts and
/// plugins do.
fn csp(s: &SecurityOptions, sent: &Sent, out: &mut Vec<Hit>) {
    if sent.by_hand(ENFORCED_CSP) {
        return;
    }
    let enforced =
        Csp::from_options(s).filter(|c| c.name == ENFORCED_CSP && s.csp_enabled == Some(true));
    let Some(csp) = enforced else {
        out.push(nothing_enforced(s));
        return;
    };
    script_src(s, &csp, out);
    let object = ["object-src", "default-src"]
        .into_iter()
        .find_map(|d| csp.sources(d).map(|src| (d, src)));
    let message = match object {
        Some((_, src)) if src == ["'none'"] => return,
        Some((d, src)) => format!(
            "{d} `{}` applies to object-src, not 'none': plugin content (<object>, <embed>) \
             can run scripts",
            src.join(" ")
        ),
        None => "the enforced CSP has neither object-src nor default-src: plugin content \
                 (<object>, <embed>) is not restricted"
            .to_string(),
    };
    out.push(hit(
        &OBJECTS_ALLOWED,
        "security.csp_policy.object-src",
        message,
        "set csp_policy object-src: [\"'none'\"]",
    ));
}

/// No CSP is enforced: either one is only reported on, or there is none.
fn nothing_enforced(s: &SecurityOptions) -> Hit {
    let reported = Csp::all(s).iter().any(|c| c.name != ENFORCED_CSP);
    match (reported, s.csp_report_only == Some(true)) {
        (true, true) => hit(
            &CSP_REPORT_ONLY,
            "security.csp_report_only",
            "the CSP is report-only (csp_report_only: true): violations are reported, none \
             is blocked",
            "once the reports are clean, set csp_report_only: false",
        ),
        (true, false) => hit(
            &CSP_REPORT_ONLY,
            "security.csp_report_only_policy",
            "only csp_report_only_policy is sent (csp_enabled is off): violations are \
             reported, none is blocked",
            "once the reports are clean, enforce the policy as csp_policy with csp_enabled: true",
        ),
        (false, _) if s.csp_enabled == Some(true) => hit(
            &NO_CSP,
            "security.csp_policy",
            "csp_policy has no directives: no Content-Security-Policy is sent",
            "give csp_policy directives, starting with default-src: [\"'self'\"]",
        ),
        (false, _) => hit(
            &NO_CSP,
            "security.csp_enabled",
            "no Content-Security-Policy is enforced (csp_enabled is off): nothing limits \
             where scripts come from",
            "set csp_enabled: true with a csp_policy (the built-in one is strict), trying it \
             with csp_report_only first",
        ),
    }
}

/// The sources governing scripts: `script-src`, else `default-src`.
fn script_src(s: &SecurityOptions, csp: &Csp, out: &mut Vec<Hit>) {
    let governing = ["script-src", "default-src"]
        .into_iter()
        .find_map(|d| csp.sources(d).map(|src| (d, src)));
    let Some((dir, sources)) = governing else {
        out.push(hit(
            &SCRIPTS_FROM_ANYWHERE,
            "security.csp_policy.script-src",
            "the enforced CSP has neither script-src nor default-src: scripts from any host run",
            "set csp_policy script-src, for example [\"'self'\"]",
        ));
        return;
    };
    let key = format!("security.csp_policy.{dir}");
    let list = sources.join(" ");
    let has = |keyword: &str| sources.iter().any(|x| x == keyword);
    if has("*") {
        out.push(hit(
            &SCRIPTS_FROM_ANYWHERE,
            key.clone(),
            format!("{dir} `{list}` allows scripts from any host (`*`)"),
            format!("list the hosts scripts come from in {dir}, or use csp_nonce"),
        ));
    }
    // Browsers ignore 'unsafe-inline' beside a nonce or a hash; csp_nonce adds
    // the nonce to script-src, or to default-src when no script-src(-elem) exists.
    let hashed = sources.iter().any(|x| {
        ["'nonce-", "'sha256-", "'sha384-", "'sha512-"]
            .iter()
            .any(|p| x.starts_with(p))
    });
    let nonced = s.csp_nonce == Some(true)
        && (dir == "script-src" || csp.sources("script-src-elem").is_none());
    let mut unsafe_keywords = Vec::new();
    let mut fixes = Vec::new();
    if has("'unsafe-inline'") && !hashed && !nonced {
        unsafe_keywords.push("'unsafe-inline'");
        fixes.push("move inline scripts into files or turn on csp_nonce");
    }
    if has("'unsafe-eval'") {
        unsafe_keywords.push("'unsafe-eval'");
        fixes.push("replace eval() and new Function()");
    }
    if !unsafe_keywords.is_empty() {
        let keywords = unsafe_keywords.join(" and ");
        out.push(hit(
            &UNSAFE_SCRIPTS,
            key,
            format!("{dir} `{list}` allows {keywords}: injected markup can run scripts"),
            format!("remove {keywords} from {dir}: {}", fixes.join(", and ")),
        ));
    }
}

/// `http:` and `http://...` in the source directives of every CSP sent.
fn http_sources(s: &SecurityOptions, sent: &Sent, out: &mut Vec<Hit>) {
    let allow_from = on(&s.frame_options_allow_from).is_some();
    let main = Csp::from_options(s).filter(|c| !sent.by_hand(c.name));
    let main = main.iter().flat_map(|c| &c.directives).map(|(d, src)| {
        let key = match d.as_str() {
            "frame-ancestors" if allow_from => "security.frame_options_allow_from".to_string(),
            _ => format!("security.csp_policy.{d}"),
        };
        (d, src, key)
    });
    let second = s
        .csp_report_only_policy
        .iter()
        .filter(|_| !sent.by_hand("Content-Security-Policy-Report-Only"))
        .flat_map(|p| &p.0)
        .filter_map(|(d, src)| {
            let key = format!("security.csp_report_only_policy.{d}");
            src.as_ref().map(|src| (d, src, key))
        });
    for (d, sources, key) in main.chain(second) {
        let fetches = d.ends_with("-src")
            || matches!(d.as_str(), "base-uri" | "form-action" | "frame-ancestors");
        let plain: Vec<&str> = sources
            .iter()
            .map(String::as_str)
            .filter(|x| {
                let x = x.to_ascii_lowercase();
                x == "http:" || x.starts_with("http://")
            })
            .collect();
        if fetches && !plain.is_empty() {
            out.push(hit(
                &HTTP_SOURCES,
                key,
                format!(
                    "{d} trusts plain-HTTP sources ({}): a network attacker can stand in for them",
                    plain.join(" ")
                ),
                "use https: sources instead",
            ));
        }
    }
}

/// The Referrer-Policy a browser applies: the last token it knows.
fn referrer(sent: &Sent, out: &mut Vec<Hit>) {
    let name = "Referrer-Policy";
    let (value, key) = match sent.by_hand_value(name) {
        Some(v) => (v, format!("headers.set.{name}")),
        None => match sent.security(name) {
            Some(v) => (v, "security.referrer_policy".to_string()),
            None => return,
        },
    };
    let applied = value
        .split(',')
        .map(|t| t.trim().to_ascii_lowercase())
        .rfind(|t| REFERRER_POLICIES.contains(&t.as_str()));
    if let Some(leaky @ ("unsafe-url" | "no-referrer-when-downgrade")) = applied.as_deref() {
        out.push(hit(
            &LEAKY_REFERRER,
            key,
            format!(
                "Referrer-Policy `{leaky}` sends the full URL (path and query) to other \
                 origins{}",
                if leaky == "unsafe-url" {
                    ", even over plain HTTP"
                } else {
                    ""
                }
            ),
            "use strict-origin-when-cross-origin (the browsers' default) or stricter",
        ));
    }
}

/// `headers.set` values that browsers ignore for the security header they name.
fn set_by_hand(layer: &PolicyLayer, out: &mut Vec<Hit>) {
    for (name, value) in &layer.headers.set {
        let v = value.0.trim();
        let lower = v.to_ascii_lowercase();
        let valid = match name.name.as_str() {
            "x-frame-options" => matches!(lower.as_str(), "deny" | "sameorigin"),
            "x-content-type-options" => lower == "nosniff",
            "strict-transport-security" => lower.split(';').any(|d| {
                d.trim().strip_prefix("max-age=").is_some_and(|n| {
                    !n.is_empty() && n.trim_matches('"').bytes().all(|b| b.is_ascii_digit())
                })
            }),
            "referrer-policy" => lower
                .split(',')
                .any(|t| REFERRER_POLICIES.contains(&t.trim())),
            _ => true,
        };
        if !valid {
            out.push(hit(
                &INVALID_MANAGED_VALUE,
                format!("headers.set.{}", name.text),
                format!(
                    "{}: `{v}` is not a value browsers act on: the header is as good as absent",
                    name.text
                ),
                "use the security key for this header, or a valid value",
            ));
        }
    }
}

/// Headers judged by whether (and what) the options send.
fn plain_headers(sent: &Sent, out: &mut Vec<Hit>) {
    if sent.missing("X-Content-Type-Options") {
        out.push(hit(
            &NO_NOSNIFF,
            "security.content_type_options",
            "no X-Content-Type-Options: nosniff: browsers may run a response as a script or \
             stylesheet whatever its Content-Type",
            "set content_type_options: true",
        ));
    }
    if sent.missing("Referrer-Policy") {
        out.push(hit(
            &NO_REFERRER_POLICY,
            "security.referrer_policy",
            "no Referrer-Policy: the browser's default decides what URLs other sites see",
            "set referrer_policy: strict-origin-when-cross-origin (or same-origin)",
        ));
    }
    if let Some(value) = sent.security("X-XSS-Protection").filter(|v| *v != "0") {
        out.push(hit(
            &XSS_AUDITOR,
            "security.xss_protection",
            format!(
                "X-XSS-Protection is `{value}`: the XSS auditor it turns on is gone from \
                 browsers, and in those that had it, it let attackers disable page scripts"
            ),
            "set xss_protection: false (sends 0), or xss_mode: false to send none",
        ));
    }
    if let Some(value) = sent.security("Expect-CT") {
        out.push(hit(
            &EXPECT_CT,
            "security.expect_ct",
            format!(
                "Expect-CT `{value}` is sent: browsers dropped it, and enforce Certificate \
                 Transparency without it"
            ),
            "set expect_ct: false",
        ));
    }
}

/// `conflict: append` on the headers the security options write: the browser
/// then sees the upstream's copy too, and most honour only the first.
fn conflicts(sent: &Sent, out: &mut Vec<Hit>) {
    let h = sent.headers;
    let mut by_key: Vec<(String, Vec<&str>)> = Vec::new();
    for s in &sent.security {
        let Ok(name) = HeaderName::from_bytes(s.name.as_bytes()) else {
            continue;
        };
        if h.conflict_mode(&name) != ConflictMode::Append {
            continue;
        }
        let key = if h.conflict.contains_key(&ConflictKey::Header(name)) {
            format!("headers.conflict.{}", s.name)
        } else {
            "headers.conflict.*".to_string()
        };
        match by_key.iter_mut().find(|(k, _)| *k == key) {
            Some((_, names)) => names.push(s.name),
            None => by_key.push((key, vec![s.name])),
        }
    }
    for (key, names) in by_key {
        out.push(hit(
            &CONFLICT_APPEND,
            key,
            format!(
                "conflict append sends the upstream's {} beside the gateway's: browsers \
                 use only the first copy or reject both, so the policy may not apply",
                names.join(", ")
            ),
            "use override (the default), or keep where the upstream's value must win",
        ));
    }
}

fn cors(s: &SecurityOptions, sent: &Sent, out: &mut Vec<Hit>) {
    let any = s
        .allowed_origins
        .iter()
        .flatten()
        .any(|o| *o == CorsOrigin::Any);
    if s.cors_enabled == Some(true) && any && sent.by_hand("Set-Cookie") {
        out.push(hit(
            &CORS_ANY_WITH_COOKIES,
            "security.allowed_origins",
            "allowed_origins has `*` while `headers` sets cookies: every site may read \
             responses of a vhost that keeps sessions",
            "list the origins that may read these responses in allowed_origins",
        ));
    }
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

    #[test]
    fn codes_are_unique_and_well_formed() {
        for (i, (code, severity, about)) in CODES.iter().enumerate() {
            assert!(!CODES[..i].iter().any(|c| c.0 == *code), "{code} twice");
            let letter = if *severity == Severity::Error {
                'E'
            } else {
                'W'
            };
            assert!(
                code.starts_with(&format!("SECGW-{letter}")) && code.len() == 10,
                "{code}"
            );
            assert!(!about.is_empty());
        }
        assert!(Severity::Error.reaches(Severity::Warning));
        assert!(Severity::Info.reaches(Severity::Info));
        assert!(!Severity::Warning.reaches(Severity::Error));
    }
}
