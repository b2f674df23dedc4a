//! Serializing the typed security options into response headers.

use crate::config::permissions::{Allow, PermissionsPolicy};
use crate::config::schema::{
    ClearSiteDataType, EmbedderPolicy, FrameOptions, OpenerPolicy, ResourcePolicy, SecurityOptions,
    XssMode,
};
use crate::config::values::Toggle;

/// One header the security options produce, in the canonical case it is sent in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityHeader {
    pub name: &'static str,
    /// The value over HTTPS.
    pub value: String,
    pub over_http: OverHttp,
}

/// What a header is over plain HTTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OverHttp {
    Same,
    /// Not sent: HSTS (RFC 6797 7.2), and `Reporting-Endpoints`, which browsers
    /// only take from secure contexts.
    Never,
    /// Another value: a CSP without `report-to`, since a browser that supports
    /// `report-to` then ignores `report-uri` and, on an insecure page, reports nothing.
    Other(String),
}

/// The Reporting API endpoint name the gateway's CSPs report to.
pub const REPORT_ENDPOINT: &str = "secgw-csp";

/// The headers a (fully merged) set of security options produces, in a stable order.
pub fn security_headers(o: &SecurityOptions) -> Vec<SecurityHeader> {
    let mut out = Vec::new();
    let mut push = |name: &'static str, value: String, over_http: OverHttp| {
        out.push(SecurityHeader {
            name,
            value,
            over_http,
        })
    };

    let report_url = report_url(o);
    let csps = Csp::all(o);
    for csp in &csps {
        match report_url {
            None => push(csp.name, csp.value(), OverHttp::Same),
            Some(url) => push(
                csp.name,
                csp.with_reports(url, true).value(),
                OverHttp::Other(csp.with_reports(url, false).value()),
            ),
        }
    }
    if let (Some(url), false) = (report_url, csps.is_empty()) {
        push(
            "Reporting-Endpoints",
            format!("{REPORT_ENDPOINT}=\"{url}\""),
            OverHttp::Never,
        );
    }
    if o.hsts_enabled == Some(true) {
        // The max-ages are always set: the built-in defaults are the weakest layer.
        let mut v = format!("max-age={}", o.hsts_max_age.unwrap_or_default());
        if o.hsts_include_subdomains == Some(true) {
            v.push_str("; includeSubDomains");
        }
        if o.hsts_preload == Some(true) {
            v.push_str("; preload");
        }
        push("Strict-Transport-Security", v, OverHttp::Never);
    }
    let xss = match (o.xss_protection, &o.xss_mode) {
        (_, Some(Toggle::Off)) => None,
        (Some(true), Some(Toggle::On(XssMode::Filter))) => Some("1"),
        (Some(true), _) => Some("1; mode=block"),
        _ => Some("0"),
    };
    if let Some(xss) = xss {
        push("X-XSS-Protection", xss.to_string(), OverHttp::Same);
    }
    let allow_from = on(&o.frame_options_allow_from);
    if allow_from.is_none() {
        if let Some(fo) = on(&o.frame_options) {
            let v = match fo {
                FrameOptions::Deny => "DENY",
                FrameOptions::SameOrigin => "SAMEORIGIN",
            };
            push("X-Frame-Options", v.to_string(), OverHttp::Same);
        }
    }
    if o.content_type_options == Some(true) {
        push(
            "X-Content-Type-Options",
            "nosniff".to_string(),
            OverHttp::Same,
        );
    }
    if let Some(rp) = on(&o.referrer_policy) {
        push("Referrer-Policy", rp.0.clone(), OverHttp::Same);
    }
    if let Some(cc) = on(&o.cache_control) {
        push("Cache-Control", cc.0.clone(), OverHttp::Same);
    }
    if let Some(types) = on(&o.clear_site_data).filter(|t| !t.is_empty()) {
        let quoted: Vec<String> = types
            .iter()
            .map(|t| format!("\"{}\"", clear_site_data_name(*t)))
            .collect();
        push("Clear-Site-Data", quoted.join(", "), OverHttp::Same);
    }
    if let Some(p) = on(&o.cross_origin_opener_policy) {
        push(
            "Cross-Origin-Opener-Policy",
            opener(*p).to_string(),
            OverHttp::Same,
        );
    }
    if let Some(p) = on(&o.cross_origin_embedder_policy) {
        push(
            "Cross-Origin-Embedder-Policy",
            embedder(*p).to_string(),
            OverHttp::Same,
        );
    }
    if let Some(p) = on(&o.cross_origin_resource_policy) {
        push(
            "Cross-Origin-Resource-Policy",
            resource(*p).to_string(),
            OverHttp::Same,
        );
    }
    if let Some(pp) = on(&o.permissions_policy) {
        if let Some(v) = permissions_policy(pp) {
            push("Permissions-Policy", v, OverHttp::Same);
        }
    }
    if o.expect_ct == Some(true) {
        let mut v = format!("max-age={}", o.expect_ct_max_age.unwrap_or_default());
        if o.expect_ct_enforce == Some(true) {
            v.push_str(", enforce");
        }
        if let Some(uri) = on(&o.expect_ct_report_uri) {
            v.push_str(&format!(", report-uri=\"{}\"", uri.0));
        }
        push("Expect-CT", v, OverHttp::Same);
    }
    out
}

/// Where the options' CSPs send violation reports: the gateway's own collector
/// (a path on the vhost itself, so no CORS), or an external collector.
pub fn report_url(o: &SecurityOptions) -> Option<&str> {
    match (o.csp_report_collect, &o.csp_report_path) {
        (Some(true), Some(path)) => Some(path.0.as_str()),
        _ => on(&o.csp_report_uri).map(|u| u.0.as_str()),
    }
}

fn on<T>(v: &Option<Toggle<T>>) -> Option<&T> {
    v.as_ref().and_then(Toggle::as_ref)
}

/// The CSP a set of options sends: its header name and its directives, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Csp {
    pub name: &'static str,
    pub directives: Vec<(String, Vec<String>)>,
}

impl Csp {
    /// The configured policy when enabled, plus the directives other options
    /// imply (`frame_options_allow_from` -> `frame-ancestors`, Trusted Types).
    pub fn from_options(o: &SecurityOptions) -> Option<Csp> {
        let mut directives: Vec<(String, Vec<String>)> = Vec::new();
        if o.csp_enabled == Some(true) {
            let policy = o.csp_policy.clone().unwrap_or_default();
            directives.extend(
                policy
                    .0
                    .into_iter()
                    .filter_map(|(d, sources)| sources.map(|s| (d, s))),
            );
        }
        let mut set = |name: &str, values: Vec<String>| match directives
            .iter_mut()
            .find(|(d, _)| d == name)
        {
            Some(entry) => entry.1 = values,
            None => directives.push((name.to_string(), values)),
        };
        if let Some(origin) = on(&o.frame_options_allow_from) {
            set("frame-ancestors", vec![origin.0.clone()]);
        }
        if o.trusted_types == Some(true) {
            set("require-trusted-types-for", vec!["'script'".to_string()]);
            let names: Vec<String> = o
                .trusted_types_policies
                .iter()
                .flatten()
                .map(|t| t.0.clone())
                .collect();
            if !names.is_empty() {
                set("trusted-types", names);
            }
        }
        if directives.is_empty() {
            return None;
        }
        let name = if o.csp_report_only == Some(true) {
            "Content-Security-Policy-Report-Only"
        } else {
            "Content-Security-Policy"
        };
        Some(Csp { name, directives })
    }

    /// The enforced (or, with `csp_report_only`, report-only) policy, then the
    /// `csp_report_only_policy` beside it: every CSP the options send.
    pub fn all(o: &SecurityOptions) -> Vec<Csp> {
        let second = o.csp_report_only_policy.as_ref().map(|p| Csp {
            name: "Content-Security-Policy-Report-Only",
            directives: p
                .0
                .iter()
                .filter_map(|(d, sources)| sources.clone().map(|s| (d.clone(), s)))
                .collect(),
        });
        Csp::from_options(o)
            .into_iter()
            .chain(second.filter(|c| !c.directives.is_empty()))
            .collect()
    }

    /// The policy reporting to `url`: over HTTPS through the Reporting API as well.
    pub fn with_reports(&self, url: &str, https: bool) -> Csp {
        let mut csp = self.clone();
        csp.directives
            .push(("report-uri".to_string(), vec![url.to_string()]));
        if https {
            csp.directives
                .push(("report-to".to_string(), vec![REPORT_ENDPOINT.to_string()]));
        }
        csp
    }

    /// The sources of `directive`, if the policy has it.
    pub fn sources(&self, directive: &str) -> Option<&[String]> {
        self.directives
            .iter()
            .find(|(d, _)| d == directive)
            .map(|(_, s)| s.as_slice())
    }

    /// The header value.
    pub fn value(&self) -> String {
        self.directives
            .iter()
            .map(|(d, s)| {
                if s.is_empty() {
                    d.clone()
                } else {
                    format!("{d} {}", s.join(" "))
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Permissions-Policy as an RFC 8941 dictionary: `camera=(), geolocation=(self "https://x")`.
fn permissions_policy(pp: &PermissionsPolicy) -> Option<String> {
    let mut ser = sfv::DictSerializer::new();
    for (feature, allowlist) in &pp.0 {
        let Some(allowlist) = allowlist else { continue };
        // Names and origins were checked at load, so these conversions cannot fail.
        let Ok(key) = sfv::KeyRef::from_str(feature) else {
            continue;
        };
        let mut inner = ser.inner_list(key);
        for allow in &allowlist.0 {
            match allow {
                Allow::SelfOrigin => inner.bare_item(sfv::token_ref("self")),
                Allow::Src => inner.bare_item(sfv::token_ref("src")),
                Allow::All => inner.bare_item(sfv::token_ref("*")),
                Allow::Origin(o) => match sfv::StringRef::from_str(o) {
                    Ok(s) => inner.bare_item(s),
                    Err(_) => continue,
                },
            };
        }
        let _ = inner.finish();
    }
    ser.finish()
}

fn clear_site_data_name(t: ClearSiteDataType) -> &'static str {
    match t {
        ClearSiteDataType::Cache => "cache",
        ClearSiteDataType::Cookies => "cookies",
        ClearSiteDataType::Storage => "storage",
        ClearSiteDataType::ExecutionContexts => "executionContexts",
        ClearSiteDataType::ClientHints => "clientHints",
        ClearSiteDataType::PrefetchCache => "prefetchCache",
        ClearSiteDataType::PrerenderCache => "prerenderCache",
        ClearSiteDataType::All => "*",
    }
}

fn opener(p: OpenerPolicy) -> &'static str {
    match p {
        OpenerPolicy::SameOrigin => "same-origin",
        OpenerPolicy::SameOriginAllowPopups => "same-origin-allow-popups",
        OpenerPolicy::NoopenerAllowPopups => "noopener-allow-popups",
        OpenerPolicy::UnsafeNone => "unsafe-none",
    }
}

fn embedder(p: EmbedderPolicy) -> &'static str {
    match p {
        EmbedderPolicy::RequireCorp => "require-corp",
        EmbedderPolicy::Credentialless => "credentialless",
        EmbedderPolicy::UnsafeNone => "unsafe-none",
    }
}

fn resource(p: ResourcePolicy) -> &'static str {
    match p {
        ResourcePolicy::SameOrigin => "same-origin",
        ResourcePolicy::SameSite => "same-site",
        ResourcePolicy::CrossOrigin => "cross-origin",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(yaml: &str) -> SecurityOptions {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn header(o: &SecurityOptions, name: &str) -> Option<String> {
        security_headers(o)
            .into_iter()
            .find(|h| h.name == name)
            .map(|h| h.value)
    }

    fn over_http(o: &SecurityOptions, name: &str) -> Option<OverHttp> {
        security_headers(o)
            .into_iter()
            .find(|h| h.name == name)
            .map(|h| h.over_http)
    }

    #[test]
    fn seed_permissions_policy_is_a_structured_dictionary() {
        let o = opts(
            r#"
permissions_policy:
  camera: "'none'"
  microphone: "'self'"
  geolocation: ["'self'", "https://maps.example.com"]
  payment: "'self'"
  fullscreen: "*"
"#,
        );
        assert_eq!(
            header(&o, "Permissions-Policy").unwrap(),
            r#"camera=(), microphone=(self), geolocation=(self "https://maps.example.com"), payment=(self), fullscreen=(*)"#
        );
    }

    #[test]
    fn csp_with_allow_from_and_trusted_types() {
        let o = opts(
            r#"
csp_enabled: true
csp_policy: {default-src: ["'self'"], frame-ancestors: ["'none'"], upgrade-insecure-requests: []}
frame_options: DENY
frame_options_allow_from: https://trusted.com
trusted_types: true
trusted_types_policies: [default, escape]
"#,
        );
        assert_eq!(
            header(&o, "Content-Security-Policy").unwrap(),
            "default-src 'self'; frame-ancestors https://trusted.com; upgrade-insecure-requests; require-trusted-types-for 'script'; trusted-types default escape"
        );
        assert_eq!(header(&o, "X-Frame-Options"), None);
    }

    #[test]
    fn csp_disabled_still_carries_implied_directives() {
        let o = opts("csp_enabled: false\nframe_options_allow_from: https://trusted.com\n");
        assert_eq!(
            header(&o, "Content-Security-Policy").unwrap(),
            "frame-ancestors https://trusted.com"
        );
        assert_eq!(
            header(&opts("csp_enabled: false\n"), "Content-Security-Policy"),
            None
        );
    }

    #[test]
    fn report_only_changes_the_header_name() {
        let o = opts(
            "csp_enabled: true\ncsp_report_only: true\ncsp_policy: {default-src: [\"'self'\"]}\n",
        );
        assert_eq!(
            header(&o, "Content-Security-Policy-Report-Only").unwrap(),
            "default-src 'self'"
        );
        assert_eq!(header(&o, "Content-Security-Policy"), None);
    }

    #[test]
    fn hsts_xss_expect_ct_and_clear_site_data() {
        let o = opts(
            r#"
hsts_enabled: true
hsts_max_age: 63072000
hsts_include_subdomains: true
hsts_preload: true
xss_protection: true
xss_mode: block
expect_ct: true
expect_ct_max_age: 86400
expect_ct_enforce: true
expect_ct_report_uri: https://example.com
clear_site_data: [cache, cookies]
"#,
        );
        assert_eq!(
            header(&o, "Strict-Transport-Security").unwrap(),
            "max-age=63072000; includeSubDomains; preload"
        );
        assert_eq!(header(&o, "X-XSS-Protection").unwrap(), "1; mode=block");
        assert_eq!(
            header(&o, "Expect-CT").unwrap(),
            "max-age=86400, enforce, report-uri=\"https://example.com\""
        );
        assert_eq!(
            header(&o, "Clear-Site-Data").unwrap(),
            "\"cache\", \"cookies\""
        );
        assert_eq!(
            header(
                &opts("xss_protection: true\nxss_mode: filter\n"),
                "X-XSS-Protection"
            )
            .unwrap(),
            "1"
        );
        assert_eq!(
            header(&opts("xss_protection: false\n"), "X-XSS-Protection").unwrap(),
            "0"
        );
    }

    #[test]
    fn false_turns_a_header_off() {
        let o = opts(
            "frame_options: false\nreferrer_policy: false\ncross_origin_opener_policy: false\n",
        );
        assert_eq!(header(&o, "X-Frame-Options"), None);
        assert_eq!(header(&o, "Referrer-Policy"), None);
        assert_eq!(header(&o, "Cross-Origin-Opener-Policy"), None);
    }

    #[test]
    fn reports_go_into_every_csp_and_report_to_only_over_https() {
        let o = opts(
            r#"
csp_enabled: true
csp_policy: {default-src: ["'self'"]}
csp_report_collect: true
csp_report_path: /csp-reports
csp_report_only_policy: {script-src: ["'self'"], img-src: null}
"#,
        );
        assert_eq!(
            header(&o, "Content-Security-Policy").unwrap(),
            "default-src 'self'; report-uri /csp-reports; report-to secgw-csp"
        );
        assert_eq!(
            over_http(&o, "Content-Security-Policy"),
            Some(OverHttp::Other(
                "default-src 'self'; report-uri /csp-reports".into()
            ))
        );
        assert_eq!(
            header(&o, "Content-Security-Policy-Report-Only").unwrap(),
            "script-src 'self'; report-uri /csp-reports; report-to secgw-csp"
        );
        assert_eq!(
            header(&o, "Reporting-Endpoints").unwrap(),
            "secgw-csp=\"/csp-reports\""
        );
        assert_eq!(over_http(&o, "Reporting-Endpoints"), Some(OverHttp::Never));

        let external = opts(
            "csp_enabled: true\ncsp_policy: {default-src: [\"'self'\"]}\n\
             csp_report_collect: false\ncsp_report_uri: https://c.example/r\n",
        );
        assert_eq!(
            header(&external, "Content-Security-Policy").unwrap(),
            "default-src 'self'; report-uri https://c.example/r; report-to secgw-csp"
        );
        // Nothing to report on: no endpoint either.
        let none = opts("csp_enabled: false\ncsp_report_uri: https://c.example/r\n");
        assert_eq!(header(&none, "Reporting-Endpoints"), None);
        // Without a report target the CSP is the same over both schemes.
        let plain = opts("csp_enabled: true\ncsp_policy: {default-src: [\"'self'\"]}\n");
        assert_eq!(
            over_http(&plain, "Content-Security-Policy"),
            Some(OverHttp::Same)
        );
    }
}
