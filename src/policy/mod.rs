//! The compiled plan: everything the request path needs, built once per configuration.
//!
//! Compiling turns the effective settings of every vhost and route, merged once by
//! [`crate::config::resolve`], into ready values; it merges nothing itself, and
//! registers its counters in the [`Metrics`] it is given. The plan reads
//! `vhost -> route -> policy`.

pub mod access_log;
pub mod canned;
pub mod cors;
pub mod cross_origin;
pub mod csp;
pub mod csp_sources;
pub mod framing;
pub mod headers;
pub mod hsts;
pub mod nonce;
pub mod permissions;
pub mod plain;
pub mod redirect;
pub mod referrer;
pub mod rendered;
pub mod route;
pub mod rules;
pub mod security;
pub mod target;
pub mod upstream;
pub mod vhost;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use rustls::sign::CertifiedKey;

use crate::config::defaults::MAX_RECORDED_PAGE;
use crate::config::resolve::{resolve, Effective};
use crate::config::schema::{LimitsConfig, NonceCacheConfig};
use crate::config::{ConfigError, KeyError, LoadedConfig};
use crate::metrics::{Metrics, RouteLabels, RouteMetrics, UNMATCHED, VHOST_ROUTE};
use crate::routing::Router;
use access_log::{ConfigFiles, LogPlan};
pub use canned::{Canned, CannedAnswers};
use headers::ResponsePlan;
pub use route::RoutePlan;
use rules::Asked;
pub use target::Target;
pub use vhost::VhostPlan;

#[derive(Debug)]
pub struct Plan {
    pub router: Router,
    pub vhosts: Vec<VhostPlan>,
    /// The built-in defaults, for responses to requests no vhost takes.
    pub baseline: ResponsePlan,
    /// Counters for requests no vhost takes.
    pub unmatched: RouteMetrics,
    /// The top level's access log, for requests no vhost takes.
    pub unmatched_log: Option<Arc<LogPlan>>,
    pub trusted_proxies: Vec<IpNet>,
    /// Keep request headers with `_` in their names (`underscores_in_headers`).
    pub underscores_in_headers: bool,
    pub limits: ConnectionLimits,
    /// How long to keep serving after SIGTERM (`shutdown_drain_seconds`).
    pub shutdown_drain: Duration,
    /// The connection layer's own `400` and `408`, with the built-in policy.
    pub canned: CannedAnswers,
    /// The default certificate of each TLS listener.
    pub listener_certs: HashMap<SocketAddr, Arc<CertifiedKey>>,
    /// Tells this plan from every other compiled in the process: the nonce
    /// template cache empties when a newer one serves.
    pub generation: u64,
    /// The bounds of the nonce template cache.
    pub nonce_cache: NonceCacheConfig,
}

/// The next [`Plan::generation`].
static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

/// `limits:` of gw.yaml, ready for the connection layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub keepalive_timeout: Duration,
    pub max_connections: usize,
    /// 0: no limit.
    pub max_connections_per_ip: usize,
    pub max_upstream_per_connection: usize,
    pub send_timeout: Duration,
}

impl From<&LimitsConfig> for ConnectionLimits {
    fn from(l: &LimitsConfig) -> Self {
        ConnectionLimits {
            header_timeout: Duration::from_millis(l.client_header_timeout_ms.0),
            body_timeout: Duration::from_millis(l.client_body_timeout_ms.0),
            keepalive_timeout: Duration::from_millis(l.keepalive_timeout_ms.0),
            max_connections: usize::try_from(l.max_connections.0).unwrap_or(usize::MAX),
            max_connections_per_ip: usize::try_from(l.max_connections_per_ip).unwrap_or(usize::MAX),
            max_upstream_per_connection: usize::try_from(l.max_upstream_per_connection.0)
                .unwrap_or(usize::MAX),
            send_timeout: Duration::from_millis(l.send_timeout_ms.0),
        }
    }
}

/// Reads and compiles a configuration: what starting, reloading and `check` do.
/// The plan's counters are registered in `metrics`.
pub fn load(path: &Path, metrics: &Metrics) -> Result<(LoadedConfig, Plan), ConfigError> {
    let loaded = crate::config::load(path)?;
    let plan = Plan::compile(&loaded, metrics)?;
    Ok((loaded, plan))
}

impl Plan {
    /// Turns the effective settings of every vhost and route (`config::resolve`)
    /// into ready values; counters are registered in `metrics`.
    pub fn compile(loaded: &LoadedConfig, metrics: &Metrics) -> Result<Plan, ConfigError> {
        Plan::compile_effective(loaded, &resolve(loaded)?, metrics)
    }

    /// The vhost and route for a normalized path on vhost `vhost`: its route,
    /// else its fallbacks' for the request's port, in turn; a request none takes
    /// stays on `vhost`, with its own settings (route 0).
    pub fn route(&self, vhost: usize, path: &str, asked: Asked) -> (usize, usize) {
        let mut at = vhost;
        // Fallbacks go to strictly wider names: bounded by the vhosts, a guard
        // against a cycle all the same.
        for _ in 0..=self.vhosts.len() {
            let v = &self.vhosts[at];
            let route = v.route_index(path, Some(asked));
            if route != 0 {
                return (at, route);
            }
            match v.fallback.iter().find(|(port, _)| *port == asked.port) {
                Some((_, next)) => at = *next,
                None => break,
            }
        }
        (vhost, 0)
    }

    /// [`Plan::compile`] from settings already resolved (`check` lints the same ones).
    pub fn compile_effective(
        loaded: &LoadedConfig,
        effective: &Effective,
        metrics: &Metrics,
    ) -> Result<Plan, ConfigError> {
        let file = loaded.path.as_path();
        let base_dir = file.parent().unwrap_or(Path::new("."));
        check_nonce_cache(&loaded.gateway.nonce_cache).map_err(|e| e.in_file(file))?;

        let mut listener_certs = HashMap::new();
        for (i, l) in loaded.gateway.listeners.iter().enumerate() {
            if let Some(tls) = &l.tls {
                let cert = crate::pem::certified_key(tls, base_dir)
                    .map_err(|e| e.under(&format!("listeners[{i}].tls")).in_file(file))?;
                listener_certs.insert(l.address, cert);
            }
        }

        // Log files are resolved against gw.yaml's folder, and may not be its own files.
        let log_files = ConfigFiles::new(base_dir, &loaded.sources().files(|_| {}));
        let mut router = Router::default();
        let mut vhosts = Vec::with_capacity(loaded.gateway.vhosts.len());
        let mut names: HashMap<&str, usize> = HashMap::new();
        let configs = &loaded.gateway.vhosts;
        for (i, ev) in effective.vhosts.iter().enumerate() {
            let v = ev.config;
            let compiled = (|| {
                if let Some(prev) = names.insert(v.name.0.as_str(), i) {
                    return Err(KeyError::new(
                        "name",
                        format!(
                            "vhost name `{}` is already used by vhosts[{prev}]",
                            v.name.0
                        ),
                    ));
                }
                if v.hosts.is_empty() {
                    return Err(KeyError::new(
                        "hosts",
                        "a vhost needs at least one host (`*` for the default vhost)",
                    ));
                }
                for (j, pattern) in v.hosts.iter().enumerate() {
                    router.insert(pattern, i).map_err(|other| {
                        KeyError::new(
                            format!("hosts[{j}]"),
                            format!(
                                "host `{}` is already served by vhosts[{other}] ({})",
                                pattern, configs[other].name.0
                            ),
                        )
                    })?;
                }
                VhostPlan::compile(ev, &log_files, metrics)
            })()
            .map_err(|e| e.under(&ev.key).in_file(file))?;
            vhosts.push(compiled);
        }

        // Fallbacks name vhosts of the same translation, compiled by now.
        for (plan, ev) in vhosts.iter_mut().zip(&effective.vhosts) {
            plan.fallback = ev
                .config
                .fallback
                .iter()
                .filter_map(|(port, name)| Some((*port, *names.get(name.as_str())?)))
                .collect();
        }

        let unmatched = RouteLabels {
            vhost: UNMATCHED,
            route: VHOST_ROUTE,
        };
        let baseline = ResponsePlan::compile(&effective.builtin.resolved(), unmatched, metrics)
            .map_err(|e| e.in_file(Path::new("<built-in defaults>")))?;
        let canned = CannedAnswers::new(&baseline);
        Ok(Plan {
            canned,
            router,
            vhosts,
            baseline,
            unmatched: metrics.route(unmatched),
            unmatched_log: LogPlan::compile(&effective.access_log, &log_files)
                .map_err(|e| e.in_file(file))?,
            trusted_proxies: loaded.gateway.trusted_proxies.iter().map(|t| t.0).collect(),
            underscores_in_headers: loaded.gateway.underscores_in_headers,
            shutdown_drain: Duration::from_secs(loaded.gateway.shutdown_drain_seconds.0),
            limits: ConnectionLimits::from(&loaded.gateway.limits),
            listener_certs,
            generation: NEXT_GENERATION.fetch_add(1, Ordering::Relaxed),
            nonce_cache: loaded.gateway.nonce_cache,
        })
    }
}

/// A page larger than the whole cache could be recorded and never kept; one
/// over [`MAX_RECORDED_PAGE`] could reach the HTML parser's memory limit.
fn check_nonce_cache(bounds: &NonceCacheConfig) -> Result<(), KeyError> {
    if bounds.max_page_bytes > MAX_RECORDED_PAGE {
        return Err(KeyError::new(
            "nonce_cache.max_page_bytes",
            format!(
                "{} is over {MAX_RECORDED_PAGE}, half the HTML parser's 4 MiB memory limit",
                bounds.max_page_bytes
            ),
        ));
    }
    if bounds.max_bytes != 0 && bounds.max_page_bytes > bounds.max_bytes {
        return Err(KeyError::new(
            "nonce_cache.max_page_bytes",
            format!(
                "{} is larger than max_bytes ({}): a page that large could never be kept",
                bounds.max_page_bytes, bounds.max_bytes
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::defaults::builtin_layer;
    use crate::config::schema::PolicyLayer;

    #[test]
    fn builtin_defaults_parse_and_compile() {
        let at = RouteLabels {
            vhost: "unit-defaults",
            route: VHOST_ROUTE,
        };
        let plan = ResponsePlan::compile(&builtin_layer().resolved(), at, &Metrics::new()).unwrap();
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
        assert!(plan.managed()[1].over_http.is_none());
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
        let csp = merged.security.resolved().csp_policy.unwrap();
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

    #[test]
    fn use_defaults_false_drops_only_the_builtin_directives_and_layers() {
        let layer = |yaml: &str| -> PolicyLayer { serde_yaml::from_str(yaml).unwrap() };
        let vhost = layer(
            "security: {csp_use_defaults: false, permissions_policy_use_defaults: false, \
             csp_policy: {default-src: [\"'self'\"]}, permissions_policy: {usb: \"'self'\"}}",
        )
        .merge_over(builtin_layer());
        let policy = layer("security: {csp_policy: {img-src: [\"'self'\"]}}");
        let served = policy.clone().merge_over(vhost.clone()).resolved().security;
        let directives: Vec<&str> = served
            .csp_policy
            .as_ref()
            .unwrap()
            .0
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(directives, ["default-src", "img-src"]);
        let features = |s: &crate::config::schema::SecurityOptions| -> Vec<String> {
            match &s.permissions_policy {
                Some(crate::config::values::Toggle::On(p)) => p.0.keys().cloned().collect(),
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(features(&served), ["usb"]);
        // A stronger layer turns the defaults back on.
        let route = layer("security: {csp_use_defaults: true}");
        let served = route
            .merge_over(policy.merge_over(vhost))
            .resolved()
            .security;
        let csp = served.csp_policy.as_ref().unwrap();
        assert_eq!(csp.0.len(), 11, "{csp:?}");
        assert_eq!(csp.0["img-src"], Some(vec!["'self'".to_string()]));
        assert_eq!(features(&served), ["usb"]);
    }
}
