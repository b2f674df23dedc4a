//! The compiled plan: everything the request path needs, built once per configuration.
//!
//! Layers merge from weakest to strongest: built-in defaults (`defaults.yaml`), then
//! the named policy's `extends` chain from its root down, then the vhost's inline keys.

pub mod canned;
pub mod cors;
pub mod headers;
pub mod redirect;
pub mod security;
pub mod upstream;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use ipnet::IpNet;
use rustls::sign::CertifiedKey;

use crate::config::schema::{
    ConflictKey, ConflictMode, LimitsConfig, PolicyLayer, RespondConfig, SecurityOptions, TlsFiles,
    VhostConfig,
};
use crate::config::values::{CorsOrigin, HostPattern, RemovePattern, Toggle};
use crate::config::{ConfigError, LoadedConfig, NamedPolicy};
use crate::metrics::{metrics, VhostMetrics, UNMATCHED};
use crate::routing::Router;
pub use canned::{Canned, CannedAnswers};
use cors::CorsPlan;
use headers::{HeaderEntry, ManagedHeader, RemoveRules, RequestPlan, ResponsePlan};
use redirect::RedirectPlan;
use security::security_headers;
use upstream::{Timeouts, Upstreams};

const DEFAULTS_YAML: &str = include_str!("defaults.yaml");

/// The built-in defaults, the weakest layer of every policy.
pub fn builtin_layer() -> PolicyLayer {
    serde_yaml::from_str(DEFAULTS_YAML).expect("built-in defaults.yaml is valid")
}

#[derive(Debug)]
pub struct Plan {
    pub router: Router,
    pub vhosts: Vec<VhostPlan>,
    /// The built-in defaults, for responses to requests no vhost takes.
    pub baseline: ResponsePlan,
    /// Counters for requests no vhost takes.
    pub unmatched: VhostMetrics,
    pub trusted_proxies: Vec<IpNet>,
    /// Keep request headers with `_` in their names (`underscores_in_headers`).
    pub underscores_in_headers: bool,
    pub limits: ConnectionLimits,
    /// The connection layer's own `400` and `408`, with the built-in policy.
    pub canned: CannedAnswers,
    /// The default certificate of each TLS listener.
    pub listener_certs: HashMap<SocketAddr, Arc<CertifiedKey>>,
}

/// `limits:` of gw.yaml, ready for the connection layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub header_timeout: Duration,
    pub keepalive_timeout: Duration,
    pub max_connections: usize,
    pub send_timeout: Duration,
}

impl From<&LimitsConfig> for ConnectionLimits {
    fn from(l: &LimitsConfig) -> Self {
        ConnectionLimits {
            header_timeout: Duration::from_millis(l.client_header_timeout_ms.0),
            keepalive_timeout: Duration::from_millis(l.keepalive_timeout_ms.0),
            max_connections: usize::try_from(l.max_connections.0).unwrap_or(usize::MAX),
            send_timeout: Duration::from_millis(l.send_timeout_ms.0),
        }
    }
}

#[derive(Debug)]
pub struct VhostPlan {
    pub name: String,
    pub route: Route,
    pub response: ResponsePlan,
    pub request: RequestPlan,
    pub redirect: Option<RedirectPlan>,
    pub metrics: VhostMetrics,
    /// The vhost's own certificate, for SNI matching its hosts.
    pub cert: Option<Arc<CertifiedKey>>,
    /// CORS handled at the edge, when `cors_enabled`.
    pub cors: Option<CorsPlan>,
}

impl VhostPlan {
    /// Everything the vhost's policy does to a response: the security headers, then
    /// the CORS headers for `cors_origin` (the request's Origin, if allowed).
    pub fn apply_response(
        &self,
        resp: &mut pingora_http::ResponseHeader,
        https: bool,
        cors_origin: Option<&HeaderValue>,
    ) {
        self.response.apply(resp, https);
        if let Some(cors) = &self.cors {
            cors.apply(resp, cors_origin);
        }
    }
}

#[derive(Debug)]
pub enum Route {
    Proxy(Upstreams),
    Respond(DirectResponse),
}

#[derive(Debug)]
pub struct DirectResponse {
    pub status: u16,
    pub body: Bytes,
    pub content_type: HeaderValue,
}

impl Plan {
    pub fn compile(loaded: &LoadedConfig) -> Result<Plan, ConfigError> {
        let builtin = builtin_layer();
        let policies = resolve_policies(&loaded.policies)?;
        let file = loaded.path.as_path();
        let base_dir = file.parent().unwrap_or(Path::new("."));

        let mut listener_certs = HashMap::new();
        for (i, l) in loaded.gateway.listeners.iter().enumerate() {
            if let Some(tls) = &l.tls {
                let cert = certified_key(tls, base_dir).map_err(|(k, reason)| {
                    ConfigError::new(file, format!("listeners[{i}]{k}"), reason)
                })?;
                listener_certs.insert(l.address, cert);
            }
        }

        let mut router = Router::default();
        let mut vhosts = Vec::with_capacity(loaded.gateway.vhosts.len());
        let mut names: HashMap<&str, usize> = HashMap::new();
        for (i, v) in loaded.gateway.vhosts.iter().enumerate() {
            let key = format!("vhosts[{i}]");
            if let Some(prev) = names.insert(v.name.0.as_str(), i) {
                return Err(ConfigError::new(
                    file,
                    format!("{key}.name"),
                    format!(
                        "vhost name `{}` is already used by vhosts[{prev}]",
                        v.name.0
                    ),
                ));
            }
            if v.hosts.is_empty() {
                return Err(ConfigError::new(
                    file,
                    format!("{key}.hosts"),
                    "a vhost needs at least one host (`*` for the default vhost)",
                ));
            }
            for (j, pattern) in v.hosts.iter().enumerate() {
                router.insert(pattern, i).map_err(|other| {
                    ConfigError::new(
                        file,
                        format!("{key}.hosts[{j}]"),
                        format!(
                            "host `{}` is already served by vhosts[{other}] ({})",
                            pattern_text(pattern),
                            loaded.gateway.vhosts[other].name.0
                        ),
                    )
                })?;
            }
            let mut layer = builtin.clone();
            if let Some(name) = &v.policy {
                let chain = policies.get(name).ok_or_else(|| {
                    ConfigError::new(
                        file,
                        format!("{key}.policy"),
                        format!("unknown policy `{name}`; {}", known_policies(loaded)),
                    )
                })?;
                layer = chain.clone().merge_over(layer);
            }
            let layer = v.inline_layer().merge_over(layer);
            vhosts.push(
                compile_vhost(v, &layer, base_dir)
                    .map_err(|(k, reason)| ConfigError::new(file, format!("{key}{k}"), reason))?,
            );
        }

        let baseline = response_plan(&builtin, UNMATCHED)
            .map_err(|(k, reason)| ConfigError::new(Path::new("<built-in defaults>"), k, reason))?;
        let canned = CannedAnswers::new(&baseline);
        Ok(Plan {
            canned,
            router,
            vhosts,
            baseline,
            unmatched: metrics().vhost(UNMATCHED),
            trusted_proxies: loaded.gateway.trusted_proxies.iter().map(|t| t.0).collect(),
            underscores_in_headers: loaded.gateway.underscores_in_headers,
            limits: ConnectionLimits::from(&loaded.gateway.limits),
            listener_certs,
        })
    }
}

fn pattern_text(p: &HostPattern) -> String {
    match p {
        HostPattern::Any => "*".into(),
        HostPattern::Exact(h) => h.clone(),
        HostPattern::Suffix(s) => format!("*.{s}"),
    }
}

fn known_policies(loaded: &LoadedConfig) -> String {
    if loaded.policies.is_empty() {
        "no policies are defined (see `policy_files`)".into()
    } else {
        let names: Vec<&str> = loaded.policies.keys().map(String::as_str).collect();
        format!("known: {}", names.join(", "))
    }
}

/// Merges every named policy's `extends` chain, root first; checks that each
/// `extends` names a policy and that no chain loops.
fn resolve_policies(
    policies: &indexmap::IndexMap<String, NamedPolicy>,
) -> Result<HashMap<String, PolicyLayer>, ConfigError> {
    let mut resolved = HashMap::with_capacity(policies.len());
    for name in policies.keys() {
        let mut chain: Vec<&str> = vec![name.as_str()];
        let mut current = &policies[name];
        while let Some(parent) = &current.def.extends {
            let here = chain[chain.len() - 1];
            let key = format!("policies.{here}.extends");
            let Some(next) = policies.get(parent) else {
                return Err(ConfigError::new(
                    &current.file,
                    key,
                    format!("`{here}` extends unknown policy `{parent}`"),
                ));
            };
            if chain.contains(&parent.as_str()) {
                chain.push(parent);
                return Err(ConfigError::new(
                    &current.file,
                    key,
                    format!("`extends` makes a cycle: {}", chain.join(" -> ")),
                ));
            }
            chain.push(parent);
            current = next;
        }
        let merged = chain.iter().rev().fold(PolicyLayer::default(), |acc, n| {
            policies[*n].def.layer().merge_over(acc)
        });
        resolved.insert(name.clone(), merged);
    }
    Ok(resolved)
}

/// Errors are (key path below the vhost, reason).
type VhostError = (String, String);

fn certified_key(tls: &TlsFiles, base_dir: &Path) -> Result<Arc<CertifiedKey>, VhostError> {
    crate::tls::load_certified_key(&base_dir.join(&tls.cert), &base_dir.join(&tls.key)).map_err(
        |(cert_at_fault, reason)| {
            let key = if cert_at_fault {
                ".tls.cert"
            } else {
                ".tls.key"
            };
            (key.to_string(), reason)
        },
    )
}

fn compile_vhost(
    v: &VhostConfig,
    layer: &PolicyLayer,
    base_dir: &Path,
) -> Result<VhostPlan, VhostError> {
    let sec = &layer.security;
    check_security(v, sec)?;
    let route = match (&v.respond, v.upstreams.is_empty()) {
        (Some(_), false) => {
            return Err((
                String::new(),
                "a vhost has either `upstreams` or `respond`, not both".into(),
            ))
        }
        (None, true) => {
            return Err((
                String::new(),
                "a vhost needs `upstreams` (to proxy) or `respond` (to answer directly)".into(),
            ))
        }
        (Some(r), true) => Route::Respond(direct_response(r)?),
        (None, false) => Route::Proxy(
            Upstreams::new(
                &v.upstreams,
                v.upstream_tls.as_ref(),
                base_dir,
                Timeouts {
                    connect: Duration::from_millis(v.connect_timeout_ms.unwrap_or(5_000)),
                    read: Duration::from_millis(v.read_timeout_ms.unwrap_or(60_000)),
                    write: Duration::from_millis(v.write_timeout_ms.unwrap_or(60_000)),
                },
            )
            .map_err(|(k, e)| (k.to_string(), e))?,
        ),
    };
    let redirect = if sec.ssl_redirect == Some(true) {
        let ssl_host = match &sec.ssl_host {
            Some(Toggle::On(HostPattern::Exact(h))) => Some(h.clone()),
            Some(Toggle::On(_)) => {
                return Err((
                    ".security.ssl_host".into(),
                    "ssl_host is one host name, without wildcards".into(),
                ))
            }
            _ => None,
        };
        let exempt = sec.ssl_redirect_exempt.as_deref().unwrap_or_default();
        let port = match sec.ssl_port {
            Some(Toggle::On(p)) => Some(p),
            _ => None,
        };
        Some(
            RedirectPlan::new(ssl_host, port, sec.ssl_permanent != Some(false), exempt)
                .map_err(|e| (".security.ssl_redirect_exempt".to_string(), e))?,
        )
    } else {
        None
    };
    let name = v.name.0.as_str();
    let cors = if sec.cors_enabled == Some(true) {
        let (allowed, denied) = metrics().cors_preflights(name);
        Some(CorsPlan::new(sec, allowed, denied).map_err(|(k, e)| (k.to_string(), e))?)
    } else {
        None
    };
    Ok(VhostPlan {
        name: name.to_string(),
        route,
        response: response_plan(layer, name)?,
        request: request_plan(layer)?,
        redirect,
        metrics: metrics().vhost(name),
        cert: v
            .tls
            .as_ref()
            .map(|t| certified_key(t, base_dir))
            .transpose()?,
        cors,
    })
}

/// Rules that span several keys, checked on the merged options.
fn check_security(v: &VhostConfig, sec: &SecurityOptions) -> Result<(), VhostError> {
    let wildcard_origin = sec
        .allowed_origins
        .iter()
        .flatten()
        .any(|o| *o == CorsOrigin::Any);
    if sec.allow_credentials == Some(true) && wildcard_origin {
        return Err((
            ".security.allow_credentials".into(),
            "allow_credentials is true while allowed_origins contains \"*\"; browsers refuse \
             credentials with a wildcard origin, and reflecting any origin instead would let \
             every site read authenticated responses. List the allowed origins."
                .into(),
        ));
    }
    let catch_all = v.hosts.contains(&HostPattern::Any);
    let has_ssl_host = matches!(sec.ssl_host, Some(Toggle::On(_)));
    if sec.ssl_redirect == Some(true) && catch_all && !has_ssl_host {
        return Err((
            ".security.ssl_redirect".into(),
            "ssl_redirect on a vhost with host `*` needs `ssl_host`: the request's Host is not \
             a configured name there, and redirecting to it would be an open redirect"
                .into(),
        ));
    }
    if sec.csp_report_only == Some(true)
        && matches!(sec.frame_options_allow_from, Some(Toggle::On(_)))
    {
        return Err((
            ".security.frame_options_allow_from".into(),
            "frame_options_allow_from becomes CSP frame-ancestors, which browsers ignore in a \
             report-only policy; with csp_report_only, use frame_options instead"
                .into(),
        ));
    }
    Ok(())
}

fn direct_response(r: &RespondConfig) -> Result<DirectResponse, VhostError> {
    StatusCode::from_u16(r.status)
        .ok()
        .filter(|s| !s.is_informational())
        .ok_or_else(|| {
            (
                ".respond.status".to_string(),
                format!("{} is not a final HTTP status (200-599)", r.status),
            )
        })?;
    let content_type = HeaderValue::from_str(&r.content_type.0).map_err(|_| {
        (
            ".respond.content_type".to_string(),
            "invalid value".to_string(),
        )
    })?;
    Ok(DirectResponse {
        status: r.status,
        body: Bytes::from(r.body.clone()),
        content_type,
    })
}

fn entry(key: &str, name: &str, value: &str) -> Result<HeaderEntry, VhostError> {
    HeaderEntry::new(name, value).map_err(|e| (key.to_string(), e))
}

/// `vhost` is the metrics label of the plan's counters.
pub(crate) fn response_plan(layer: &PolicyLayer, vhost: &str) -> Result<ResponsePlan, VhostError> {
    let h = &layer.headers;
    let conflict = |name: &http::HeaderName| -> ConflictMode {
        h.conflict
            .get(&ConflictKey::Header(name.clone()))
            .or_else(|| h.conflict.get(&ConflictKey::All))
            .copied()
            .unwrap_or_default()
    };
    let mut managed: Vec<ManagedHeader> = Vec::new();
    for s in security_headers(&layer.security) {
        let e = HeaderEntry::with_static_name(s.name, &s.value)
            .map_err(|e| (".security".to_string(), e))?;
        // An explicit `headers.set` of the same header takes precedence.
        if h.set.keys().any(|k| k.name == e.name) {
            continue;
        }
        let mode = conflict(&e.name);
        managed.push(managed_header(e, mode, vhost));
    }
    for (name, value) in &h.set {
        let e = entry(&format!(".headers.set.{name}"), &name.text, &value.0)?;
        let mode = conflict(&e.name);
        managed.push(managed_header(e, mode, vhost));
    }
    let is_managed = |n: &http::HeaderName| managed.iter().any(|m| m.entry.name == *n);

    let mut add = Vec::new();
    for (name, values) in &h.add {
        let key = format!(".headers.add.{name}");
        if is_managed(&name.name) {
            return Err((key, format!(
                "`{name}` is managed by this policy; to keep the upstream's copy beside it, use `conflict: {{{name}: append}}`"
            )));
        }
        for v in &values.0 {
            add.push(entry(&key, &name.text, &v.0)?);
        }
    }
    let mut default = Vec::new();
    for (name, value) in &h.default {
        let key = format!(".headers.default.{name}");
        if is_managed(&name.name) {
            return Err((key, format!(
                "`{name}` is managed by this policy; to prefer the upstream's value, use `conflict: {{{name}: keep}}`"
            )));
        }
        default.push(entry(&key, &name.text, &value.0)?);
    }

    let mut remove = RemoveRules::new(&h.remove, |rule| {
        Some(metrics().stripped(vhost, &rule.to_string()))
    });
    if layer.security.hide_server == Some(true) {
        remove.push(
            RemovePattern::Exact(http::header::SERVER),
            Some(metrics().stripped(vhost, "server")),
        );
    }
    Ok(ResponsePlan::new(remove, managed, add, default))
}

fn managed_header(entry: HeaderEntry, mode: ConflictMode, vhost: &str) -> ManagedHeader {
    ManagedHeader {
        https_only: entry.name == http::header::STRICT_TRANSPORT_SECURITY,
        counters: metrics().header(vhost, entry.name.as_str(), mode),
        mode,
        entry,
    }
}

fn request_plan(layer: &PolicyLayer) -> Result<RequestPlan, VhostError> {
    let r = &layer.request_headers;
    if !r.conflict.is_empty() {
        return Err((
            ".request_headers.conflict".into(),
            "`conflict` applies to response headers (`headers`) only".into(),
        ));
    }
    let mut plan = RequestPlan {
        remove: RemoveRules::new(&r.remove, |_| None),
        ..Default::default()
    };
    for (name, value) in &r.set {
        plan.set.push(entry(
            &format!(".request_headers.set.{name}"),
            &name.text,
            &value.0,
        )?);
    }
    for (name, values) in &r.add {
        for v in &values.0 {
            plan.add.push(entry(
                &format!(".request_headers.add.{name}"),
                &name.text,
                &v.0,
            )?);
        }
    }
    for (name, value) in &r.default {
        plan.default.push(entry(
            &format!(".request_headers.default.{name}"),
            &name.text,
            &value.0,
        )?);
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_defaults_parse_and_compile() {
        let plan = response_plan(&builtin_layer(), "unit-defaults").unwrap();
        let names: Vec<&str> = plan
            .managed()
            .iter()
            .map(|m| m.entry.name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "content-security-policy",
                "strict-transport-security",
                "x-xss-protection",
                "x-frame-options",
                "x-content-type-options",
                "referrer-policy",
                "cross-origin-opener-policy",
                "cross-origin-resource-policy",
                "permissions-policy",
            ]
        );
        assert!(plan.managed()[1].https_only);
    }

    #[test]
    fn layers_merge_weakest_to_strongest() {
        let base: PolicyLayer = serde_yaml::from_str(
            "security: {hsts_max_age: 60, csp_policy: {img-src: [\"'self'\"]}}\nheaders: {remove: [X-A]}\n",
        )
        .unwrap();
        let inline: PolicyLayer = serde_yaml::from_str(
            "security: {hsts_max_age: 120, csp_policy: {default-src: null}}\nheaders: {remove: [X-B]}\n",
        )
        .unwrap();
        let merged = inline.merge_over(base.merge_over(builtin_layer()));
        assert_eq!(merged.security.hsts_max_age, Some(120));
        let csp = merged.security.csp_policy.unwrap();
        assert_eq!(
            csp.0.get("img-src"),
            Some(&Some(vec!["'self'".to_string()]))
        );
        assert_eq!(csp.0.get("default-src"), Some(&None));
        assert_eq!(
            csp.0.get("object-src"),
            Some(&Some(vec!["'none'".to_string()]))
        );
        let removed: Vec<String> = merged
            .headers
            .remove
            .iter()
            .map(|r| r.to_string())
            .collect();
        assert_eq!(
            removed,
            [
                "x-powered-by",
                "x-aspnet-version",
                "x-aspnetmvc-version",
                "x-a",
                "x-b"
            ]
        );
    }
}
