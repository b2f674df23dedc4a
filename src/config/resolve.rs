//! The one resolution of layers: every vhost's and every route's effective
//! settings, merged from weakest to strongest (built-in defaults < the vhost's
//! policy chain < the vhost's inline keys < the route's policy chain < the
//! SecurityPolicies attached to the route from the cluster < the route's inline
//! keys), with their labels and key paths. `Plan::compile`, the lints of
//! `check` and, through the plan, the predicted grade all read this one result.

use super::access_log::AccessLogConfig;
use super::defaults::builtin_layer;
use super::policies::ResolvedPolicies;
use super::schema::{PolicyLayer, RouteConfig, VhostConfig};
use super::{ConfigError, KeyError, LoadedConfig};

/// The effective settings of a whole configuration.
#[derive(Debug)]
pub struct Effective<'a> {
    /// The built-in defaults alone: what a request no vhost takes gets.
    pub builtin: PolicyLayer,
    /// In configuration order.
    pub vhosts: Vec<EffectiveVhost<'a>>,
    /// The top level's `access_log`, for requests no vhost takes.
    pub access_log: AccessLogConfig,
}

/// One vhost's merged settings, and its routes'.
#[derive(Debug)]
pub struct EffectiveVhost<'a> {
    pub config: &'a VhostConfig,
    /// `vhosts[i]`, the key path its errors and findings are under.
    pub key: String,
    /// The merged layer, not yet `resolved` (the lints tell the built-in defaults'
    /// directives apart); an unknown `policy` is an error at that key.
    pub layer: Result<PolicyLayer, KeyError>,
    /// One per configured route, in order; empty when `layer` is an error.
    pub routes: Vec<EffectiveRoute<'a>>,
    /// The vhost's `access_log` keys over the top level's.
    pub access_log: AccessLogConfig,
}

/// One route's merged settings: its vhost's, then its own policy and keys.
#[derive(Debug)]
pub struct EffectiveRoute<'a> {
    pub config: &'a RouteConfig,
    /// `routes[j]`, under its vhost's key.
    pub key: String,
    pub layer: Result<PolicyLayer, KeyError>,
    /// The route's `access_log` keys over its vhost's (policies have none).
    pub access_log: AccessLogConfig,
}

/// Merges every layer of a loaded configuration. An `extends` chain that names an
/// unknown policy or loops fails the whole configuration.
pub fn resolve(loaded: &LoadedConfig) -> Result<Effective<'_>, ConfigError> {
    let builtin = builtin_layer();
    let policies = ResolvedPolicies::resolve(&loaded.policies)?;
    let top_log = &loaded.gateway.access_log;
    let vhosts = loaded
        .gateway
        .vhosts
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let vhost_log = v.access_log.over(top_log);
            let layer = policies.layer(builtin.clone(), v.policy.as_deref(), v.inline_layer());
            let routes = match &layer {
                Ok(vhost_layer) => v
                    .routes
                    .iter()
                    .enumerate()
                    .map(|(j, r)| EffectiveRoute {
                        config: r,
                        key: format!("routes[{j}]"),
                        layer: route_layer(&policies, vhost_layer, r),
                        access_log: r.access_log.over(&vhost_log),
                    })
                    .collect(),
                Err(_) => Vec::new(),
            };
            EffectiveVhost {
                config: v,
                key: format!("vhosts[{i}]"),
                layer,
                routes,
                access_log: vhost_log,
            }
        })
        .collect();
    Ok(Effective {
        builtin,
        vhosts,
        access_log: top_log.clone(),
    })
}

/// A route's layer over its vhost's: its named policy, the policies attached from
/// the cluster (weakest first), its inline keys.
fn route_layer(
    policies: &ResolvedPolicies,
    vhost: &PolicyLayer,
    route: &RouteConfig,
) -> Result<PolicyLayer, KeyError> {
    let named = policies.layer(
        vhost.clone(),
        route.policy.as_deref(),
        PolicyLayer::default(),
    )?;
    let attached = route.attached.iter().try_fold(named, |weaker, a| {
        policies
            .layer(weaker, a.def.extends.as_deref(), a.def.layer())
            .map_err(|e| e.under(&a.source))
    })?;
    Ok(route.inline_layer().merge_over(attached))
}

impl RouteConfig {
    /// The route's label, as the gateway names it in logs and metrics: the Ingress
    /// it comes from, else its `name`, else its match text.
    pub fn label(&self) -> &str {
        let text = self
            .prefix
            .as_ref()
            .or(self.exact.as_ref())
            .or(self.regex.as_ref());
        self.object
            .as_ref()
            .or(self.name.as_ref().map(|n| &n.0))
            .or(text)
            .map_or("", String::as_str)
    }
}
