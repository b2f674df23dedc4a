//! The YAML schema of gw.yaml and of policy files.
//!
//! Every struct denies unknown keys, and every leaf is a validated type, so what
//! deserializes is well-formed. Cross-key rules are checked when the plan is compiled.

use std::net::SocketAddr;
use std::sync::Arc;

use indexmap::IndexMap;
use rustls::sign::CertifiedKey;
use schemars::JsonSchema;
use serde::Deserialize;

use super::cors::CorsOrigin;
use super::cross_origin::{self, EmbedderPolicy, OpenerPolicy, ResourcePolicy};
use super::csp::{self, CspPolicy, ReportPath, ReportUri};
use super::framing::{self, FrameOptions};
use super::hsts;
pub use super::kubernetes::KubernetesConfig;
use super::merge::{replaced, Layered};
use super::permissions::{self, PermissionsPolicy};
use super::plain::{self, ClearSiteDataType, XssMode};
use super::redirect::ExemptRule;
use super::referrer::{self, ReferrerPolicy};
use super::values::{
    DrainSeconds, HeaderNameText, HeaderValueText, HostPattern, OneOrMany, Origin, Positive,
    RemovePattern, RouteName, Toggle, Token, TrustedProxy, VhostName,
};

/// The gateway's part of gw.yaml (Pingora's own keys are split off before this).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    pub listeners: Vec<ListenerConfig>,
    /// The admin listener for /metrics, /healthz and /readyz; off when absent.
    pub admin: Option<AdminConfig>,
    #[serde(default)]
    pub trusted_proxies: Vec<TrustedProxy>,
    /// Directories, files or `dir/*.yaml` globs, relative to gw.yaml.
    pub policy_files: Option<OneOrMany<String>>,
    pub vhosts: Vec<VhostConfig>,
    /// Connection limits of the public listeners.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Keep request headers whose names contain `_` (nginx's option of the same
    /// name); by default they are dropped before the upstream sees them.
    #[serde(default)]
    pub underscores_in_headers: bool,
    /// After SIGTERM, how long the listeners keep serving (with `/readyz` at 503
    /// and connections drained) before they close: time for the endpoint removal
    /// to reach every load balancer.
    #[serde(default)]
    pub shutdown_drain_seconds: DrainSeconds,
    /// Hosts and routes from the cluster's Ingress objects, beside `vhosts`.
    #[serde(default)]
    pub kubernetes: KubernetesConfig,
    /// A line per request; a vhost or a route may override each key.
    #[serde(default)]
    pub access_log: super::access_log::AccessLogConfig,
    /// The process's cache of nonce rewrite templates (`csp_nonce_cache`).
    #[serde(default)]
    pub nonce_cache: NonceCacheConfig,
}

/// `nonce_cache:` in gw.yaml; defaults in [`super::defaults::NONCE_CACHE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NonceCacheConfig {
    /// The templates' bytes held at most, all routes together; 0 turns the cache off.
    pub max_bytes: u64,
    /// A page larger than this is never recorded.
    pub max_page_bytes: u64,
}

/// `limits:` in gw.yaml; defaults in [`super::defaults::LIMITS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// The whole request head must arrive within this, from its first byte (from
    /// the accept, for a connection's first request). nginx: `client_header_timeout`.
    pub client_header_timeout_ms: Positive,
    /// The longest wait between two reads of a request body. nginx:
    /// `client_body_timeout`.
    pub client_body_timeout_ms: Positive,
    /// An idle keep-alive connection is closed after this. nginx: `keepalive_timeout`.
    pub keepalive_timeout_ms: Positive,
    /// Open client connections per process; more are closed at once and counted.
    /// nginx: `worker_connections` (per worker).
    pub max_connections: Positive,
    /// Open client connections per peer address (the socket's, never a forwarded
    /// header); 0 turns the limit off. `trusted_proxies` are exempt. nginx:
    /// `limit_conn` on `$binary_remote_addr`.
    pub max_connections_per_ip: u64,
    /// Upstream requests one client connection may have open at once (HTTP/2
    /// streams past it wait their turn; HTTP/1 has one at a time anyway).
    pub max_upstream_per_connection: Positive,
    /// A write to a client that stopped reading fails after this, and the
    /// connection is closed. nginx: `send_timeout`.
    pub send_timeout_ms: Positive,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    pub address: SocketAddr,
    /// Terminate TLS here; this pair is the default certificate (no or unknown SNI).
    pub tls: Option<TlsFiles>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    pub address: SocketAddr,
}

/// PEM files, relative to gw.yaml; the certificate file may hold a chain.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    pub cert: String,
    pub key: String,
}

/// How the gateway talks TLS to `tls://` upstreams.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTlsConfig {
    /// The name sent as SNI and verified in the certificate; defaults to the
    /// upstream's host name. Required for IP upstreams unless `verify` is false.
    pub sni: Option<String>,
    /// PEM CA certificates to trust instead of the system's roots.
    pub ca_file: Option<String>,
    /// Verify the upstream's certificate and name (default true).
    pub verify: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VhostConfig {
    pub name: VhostName,
    /// Over the top level's `access_log`, key by key.
    #[serde(default)]
    pub access_log: super::access_log::AccessLogConfig,
    pub hosts: Vec<HostPattern>,
    /// `host:port` or `tls://host:port` upstreams, balanced round-robin.
    #[serde(default)]
    pub upstreams: Vec<String>,
    pub upstream_tls: Option<UpstreamTlsConfig>,
    /// This vhost's certificate, chosen when the SNI matches its hosts.
    pub tls: Option<TlsFiles>,
    /// Answer directly instead of proxying.
    pub respond: Option<RespondConfig>,
    /// A named policy from the policy files.
    pub policy: Option<String>,
    #[serde(default)]
    pub security: SecurityOptions,
    #[serde(default)]
    pub headers: HeaderActions,
    #[serde(default)]
    pub request_headers: HeaderActions,
    pub connect_timeout_ms: Option<Positive>,
    pub read_timeout_ms: Option<Positive>,
    pub write_timeout_ms: Option<Positive>,
    /// Path rules; the vhost's own settings serve what none of them matches.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// What a path with an encoded `/` or `\` gets.
    #[serde(default)]
    pub escaped_slashes: EscapedSlashes,
    /// Codes `pingora-secgw check` does not report for this vhost and its routes.
    #[serde(default)]
    pub check_ignore: Vec<CheckCode>,
    /// A certificate already read, from a Kubernetes Secret (never from YAML:
    /// gw.yaml vhosts name their files in `tls`).
    #[serde(skip)]
    pub certificate: Option<Arc<CertifiedKey>>,
    /// From the cluster only: by local port, the vhost (by name) whose routes a
    /// request none of this vhost's routes takes tries next (a Gateway API
    /// name's wider name on the same listener).
    #[serde(skip)]
    pub fallback: Vec<(u16, String)>,
}

impl VhostConfig {
    /// A vhost translated from the cluster's objects: one name, the named policy,
    /// nothing else set yet.
    pub fn from_cluster(name: VhostName, host: HostPattern, policy: Option<String>) -> VhostConfig {
        VhostConfig {
            name,
            access_log: Default::default(),
            hosts: vec![host],
            upstreams: Vec::new(),
            upstream_tls: None,
            tls: None,
            respond: None,
            policy,
            security: Default::default(),
            headers: Default::default(),
            request_headers: Default::default(),
            connect_timeout_ms: None,
            read_timeout_ms: None,
            write_timeout_ms: None,
            routes: Vec::new(),
            escaped_slashes: Default::default(),
            check_ignore: Vec::new(),
            certificate: None,
            fallback: Vec::new(),
        }
    }
}

/// A code of `pingora-secgw check`; a mistyped one would silence nothing.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct CheckCode(pub String);

impl TryFrom<String> for CheckCode {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let codes = crate::codes::CODES;
        if codes.iter().any(|c| c.0 == text) {
            return Ok(CheckCode(text));
        }
        let known: Vec<&str> = codes.iter().map(|c| c.0).collect();
        Err(format!(
            "`{text}` is not a check code; known: {}",
            known.join(", ")
        ))
    }
}

impl VhostConfig {
    /// The vhost's inline settings, the strongest layer of the vhost's own policy
    /// (its routes layer theirs on top).
    pub fn inline_layer(&self) -> PolicyLayer {
        PolicyLayer::of(&self.security, &self.headers, &self.request_headers)
    }
}

/// `%2F` and `%5C` in a request path. Envoy: `path_with_escaped_slashes_action`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EscapedSlashes {
    /// `400`: an encoded separator could reach a different resource upstream
    /// than the one the route matched.
    #[default]
    Reject,
    /// Passed on as sent, and not a separator for matching.
    Keep,
}

/// One path rule of a vhost (Kubernetes Ingress semantics).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// In logs and metrics labels; default: the match text.
    pub name: Option<RouteName>,
    /// Whole path segments: `/api` matches `/api`, `/api/` and `/api/x`.
    pub prefix: Option<String>,
    /// The whole path.
    pub exact: Option<String>,
    /// A regex over the path (anchor it yourself).
    pub regex: Option<String>,
    /// `prefix`, `exact` or `regex` matches ASCII letters in either case, for
    /// upstreams that route that way (IIS, Spring with case-insensitive paths).
    #[serde(default)]
    pub case_insensitive: bool,
    /// Absent (and no `respond`): the vhost's upstreams or direct answer.
    #[serde(default)]
    pub upstreams: Vec<String>,
    pub upstream_tls: Option<UpstreamTlsConfig>,
    pub respond: Option<RespondConfig>,
    /// With `prefix`: the upstream sees the path without it.
    #[serde(default)]
    pub strip_prefix: bool,
    /// A named policy, layered over the vhost's.
    pub policy: Option<String>,
    #[serde(default)]
    pub security: SecurityOptions,
    #[serde(default)]
    pub headers: HeaderActions,
    #[serde(default)]
    pub request_headers: HeaderActions,
    pub connect_timeout_ms: Option<Positive>,
    pub read_timeout_ms: Option<Positive>,
    pub write_timeout_ms: Option<Positive>,
    /// Over its vhost's `access_log`, key by key.
    #[serde(default)]
    pub access_log: super::access_log::AccessLogConfig,
    /// `namespace/name` of the Ingress this route was translated from (never from
    /// YAML): its label, shared by the Ingress's other paths.
    #[serde(skip)]
    pub object: Option<String>,
    /// Matches, filters and weighted backends of an HTTPRoute rule (never from YAML).
    #[serde(skip)]
    pub rules: Option<Box<super::route_rules::RouteRules>>,
    /// SecurityPolicies attached from the cluster, weakest first (a Gateway's,
    /// then the HTTPRoute's or Ingress's, then the rule's), layered between
    /// `policy` and the inline keys (never from YAML).
    #[serde(skip)]
    pub attached: Vec<std::sync::Arc<AttachedPolicy>>,
}

/// A policy attached from the cluster: its keys, as a policy file holds them.
#[derive(Debug)]
pub struct AttachedPolicy {
    /// `securitypolicy:namespace/name`, the key its errors are under.
    pub source: String,
    pub def: PolicyDef,
}

impl RouteConfig {
    /// A route translated from the cluster's object `object` (its label), with
    /// no match, target or policy set yet.
    pub fn from_cluster(object: &str) -> RouteConfig {
        RouteConfig {
            object: Some(object.to_string()),
            ..RouteConfig::default()
        }
    }

    /// The route's inline settings, the strongest layer of its policy.
    pub fn inline_layer(&self) -> PolicyLayer {
        PolicyLayer::of(&self.security, &self.headers, &self.request_headers)
    }
}

/// A direct answer; what it leaves out comes from [`super::defaults`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RespondConfig {
    pub status: u16,
    pub body: String,
    pub content_type: HeaderValueText,
}

/// A policy file: `policies: {NAME: {extends, security, headers, request_headers}}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    pub policies: IndexMap<String, PolicyDef>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyDef {
    pub extends: Option<String>,
    #[serde(default)]
    pub security: SecurityOptions,
    #[serde(default)]
    pub headers: HeaderActions,
    #[serde(default)]
    pub request_headers: HeaderActions,
}

impl PolicyDef {
    pub fn layer(&self) -> PolicyLayer {
        PolicyLayer::of(&self.security, &self.headers, &self.request_headers)
    }
}

/// One layer of settings; layers merge from weakest (built-in defaults) to strongest
/// (the vhost's inline keys).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyLayer {
    #[serde(default)]
    pub security: SecurityOptions,
    #[serde(default)]
    pub headers: HeaderActions,
    #[serde(default)]
    pub request_headers: HeaderActions,
}

/// Defines the security keys once, each with the response headers it decides: the
/// struct, its merge key by key (see [`Layered`]), and which headers a layer takes
/// over from weaker layers' `headers` actions.
macro_rules! security_options {
    ($(#[$meta:meta])* pub struct $name:ident {
        $($(#[$field_meta:meta])* pub $field:ident: $ty:ty => [$($header:expr),* $(,)?],)*
    }) => {
        $(#[$meta])*
        pub struct $name {
            $($(#[$field_meta])* pub $field: $ty,)*
        }

        impl $name {
            /// Key by key: the stronger layer's value wins where it has one.
            pub fn merge_over(self, weaker: $name) -> $name {
                $name {
                    $($field: self.$field.over(weaker.$field),)*
                }
            }

            /// The response headers this layer's keys decide, in key order, so that
            /// a weaker layer's `headers` actions on them give way.
            pub fn header_names(&self) -> Vec<&'static str> {
                let mut names: Vec<&'static str> = Vec::new();
                $(if self.$field.is_some() {
                    for name in [$($header),*] {
                        if !names.contains(&name) {
                            names.push(name);
                        }
                    }
                })*
                names
            }
        }
    };
}

security_options! {
/// The SecurityMiddleware keyword arguments (seed 000), every one optional so that
/// layers can leave a key to the weaker layer.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecurityOptions {
    pub csp_enabled: Option<bool> => [csp::CSP, csp::CSP_REPORT_ONLY],
    pub csp_policy: Option<CspPolicy> => [csp::CSP, csp::CSP_REPORT_ONLY],
    /// `false`: `csp_policy` is the user's layers only, without the built-in
    /// defaults' directives (helmet's `useDefaults: false`).
    pub csp_use_defaults: Option<bool> => [],
    /// The built-in defaults' `csp_policy` and `permissions_policy`, kept apart
    /// from the user's layers until `resolved`. Only `builtin_layer` sets them, so
    /// no two layers' values of these ever meet in a merge.
    #[serde(skip)]
    pub builtin_csp_policy: Option<CspPolicy> => [],
    #[serde(skip)]
    pub builtin_permissions_policy: Option<Toggle<PermissionsPolicy>> => [],
    pub csp_report_only: Option<bool> => [csp::CSP, csp::CSP_REPORT_ONLY],
    /// A fresh nonce per response, written into HTML and the CSP.
    pub csp_nonce: Option<bool> => [csp::CSP, csp::CSP_REPORT_ONLY],
    /// Public static pages seen before are nonced from a template of their
    /// first rewrite (`nonce_cache`); on by default.
    pub csp_nonce_cache: Option<bool> => [],
    /// Nonces on `<style>` and stylesheets too, and in `style-src`.
    pub csp_nonce_styles: Option<bool> => [csp::CSP, csp::CSP_REPORT_ONLY],
    /// `'strict-dynamic'` beside the nonce in `script-src`.
    pub csp_strict_dynamic: Option<bool> => [csp::CSP, csp::CSP_REPORT_ONLY],
    /// The gateway answers CSP violation reports at `csp_report_path`.
    pub csp_report_collect: Option<bool> => [csp::CSP, csp::CSP_REPORT_ONLY, csp::REPORTING_ENDPOINTS],
    pub csp_report_path: Option<ReportPath> => [],
    /// An external collector instead; `false` turns off an inherited one.
    pub csp_report_uri: Option<Toggle<ReportUri>> => [csp::CSP, csp::CSP_REPORT_ONLY, csp::REPORTING_ENDPOINTS],
    /// A second policy, sent as Content-Security-Policy-Report-Only.
    pub csp_report_only_policy: Option<CspPolicy> => [csp::CSP, csp::CSP_REPORT_ONLY],
    pub hsts_enabled: Option<bool> => [hsts::HEADER],
    pub hsts_max_age: Option<u64> => [hsts::HEADER],
    pub hsts_include_subdomains: Option<bool> => [hsts::HEADER],
    pub hsts_preload: Option<bool> => [hsts::HEADER],
    pub xss_protection: Option<bool> => [plain::XSS],
    /// `false` sends no X-XSS-Protection at all.
    pub xss_mode: Option<Toggle<XssMode>> => [plain::XSS],
    pub frame_options: Option<Toggle<FrameOptions>> => [framing::HEADER],
    pub frame_options_allow_from: Option<Toggle<Origin>> => [framing::HEADER, csp::CSP, csp::CSP_REPORT_ONLY],
    pub content_type_options: Option<bool> => [plain::NOSNIFF],
    pub referrer_policy: Option<Toggle<ReferrerPolicy>> => [referrer::HEADER],
    pub ssl_redirect: Option<bool> => [],
    pub ssl_host: Option<Toggle<HostPattern>> => [],
    /// The port in redirect Locations; none by default (the public port is 443).
    pub ssl_port: Option<Toggle<u16>> => [],
    pub ssl_permanent: Option<bool> => [],
    pub ssl_redirect_exempt: Option<Vec<ExemptRule>> => [],
    pub cache_control: Option<Toggle<HeaderValueText>> => [plain::CACHE_CONTROL],
    pub clear_site_data: Option<Toggle<Vec<ClearSiteDataType>>> => [plain::CLEAR_SITE_DATA],
    pub cross_origin_opener_policy: Option<Toggle<OpenerPolicy>> => [cross_origin::COOP],
    pub cross_origin_embedder_policy: Option<Toggle<EmbedderPolicy>> => [cross_origin::COEP],
    pub cross_origin_resource_policy: Option<Toggle<ResourcePolicy>> => [cross_origin::CORP],
    pub permissions_policy: Option<Toggle<PermissionsPolicy>> => [permissions::HEADER],
    /// `false`: `permissions_policy` without the built-in defaults' features.
    pub permissions_policy_use_defaults: Option<bool> => [],
    pub expect_ct: Option<bool> => [plain::EXPECT_CT],
    pub expect_ct_max_age: Option<u64> => [plain::EXPECT_CT],
    pub expect_ct_enforce: Option<bool> => [plain::EXPECT_CT],
    pub expect_ct_report_uri: Option<Toggle<Origin>> => [plain::EXPECT_CT],
    pub trusted_types: Option<bool> => [csp::CSP, csp::CSP_REPORT_ONLY],
    pub trusted_types_policies: Option<Vec<Token>> => [csp::CSP, csp::CSP_REPORT_ONLY],
    pub hide_server: Option<bool> => [],
    pub cors_enabled: Option<bool> => [],
    pub allowed_origins: Option<Vec<CorsOrigin>> => [],
    pub allowed_methods: Option<Vec<Token>> => [],
    pub allowed_headers: Option<Vec<Token>> => [],
    pub expose_headers: Option<Vec<Token>> => [],
    pub max_age: Option<u64> => [],
    pub allow_credentials: Option<bool> => [],
}}

// The values with no parts to merge: the stronger layer's replaces the weaker's.
replaced!(
    XssMode,
    FrameOptions,
    Origin,
    ReferrerPolicy,
    HostPattern,
    HeaderValueText,
    OpenerPolicy,
    EmbedderPolicy,
    ResourcePolicy,
    ReportUri,
    ReportPath,
);

/// What the gateway does when the upstream already sent a header the policy manages.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, strum::IntoStaticStr, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum ConflictMode {
    /// Replace the upstream's value(s) with the policy's.
    #[default]
    Override,
    /// Keep the upstream's first value, drop any further copies.
    Keep,
    /// Keep the upstream's values and add the policy's beside them.
    Append,
}

/// Key of the `conflict` map: a header name, or `*` for every managed header.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, JsonSchema)]
#[serde(try_from = "String")]
#[schemars(with = "String")]
pub enum ConflictKey {
    All,
    Header(http::HeaderName),
}

impl TryFrom<String> for ConflictKey {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        if text == "*" {
            return Ok(ConflictKey::All);
        }
        HeaderNameText::try_from(text).map(|h| ConflictKey::Header(h.name))
    }
}

/// Generic header actions, for responses (`headers`) and for requests sent upstream
/// (`request_headers`, where `conflict` does not apply).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HeaderActions {
    /// Managed headers: written on every response, upstream copies handled per `conflict`.
    #[serde(default)]
    pub set: IndexMap<HeaderNameText, HeaderValueText>,
    /// Appended beside whatever the upstream sent.
    #[serde(default)]
    pub add: IndexMap<HeaderNameText, OneOrMany<HeaderValueText>>,
    /// Written only when the upstream sent none.
    #[serde(default)]
    pub default: IndexMap<HeaderNameText, HeaderValueText>,
    /// Stripped from upstream responses: names or `Prefix-*`.
    #[serde(default)]
    pub remove: Vec<RemovePattern>,
    /// Per managed header (or `*`): override, keep or append.
    #[serde(default)]
    pub conflict: IndexMap<ConflictKey, ConflictMode>,
}

impl HeaderActions {
    /// What `conflict` says for `name`: its own entry, else `*`, else override.
    pub fn conflict_mode(&self, name: &http::HeaderName) -> ConflictMode {
        self.conflict
            .get(&ConflictKey::Header(name.clone()))
            .or_else(|| self.conflict.get(&ConflictKey::All))
            .copied()
            .unwrap_or_default()
    }
}
