//! One route's compiled policy: where its requests go and what its responses get.
//! A vhost's own settings are its `_vhost` route.

use std::borrow::Cow;
use std::sync::Arc;

use http::HeaderValue;
use pingora_http::ResponseHeader;

use super::access_log::LogPlan;
use super::cors::CorsPlan;
use super::headers::{RequestPlan, ResponsePlan};
use super::nonce::NoncePlan;
use super::redirect::RedirectPlan;
use super::rules::{Conditions, RedirectTo, Rewrite};
use super::target::Target;
use crate::config::cors::CorsOrigin;
use crate::config::schema::{PolicyLayer, SecurityOptions};
use crate::config::values::Toggle;
use crate::config::KeyError;
use crate::metrics::{Metrics, RouteLabels, RouteMetrics};

#[derive(Debug)]
pub struct RoutePlan {
    /// The metrics label: the configured name, the match text, or `_vhost`.
    pub name: String,
    pub target: Target,
    /// The path the upstream sees (`strip_prefix`, an HTTPRoute's URLRewrite).
    pub rewrite: Option<Rewrite>,
    /// The Host the upstream sees instead of the request's.
    pub upstream_host: Option<HeaderValue>,
    /// What a request must have besides its path to take this route; else the
    /// next route of the same path does (`next`).
    pub when: Option<Box<Conditions>>,
    /// An HTTPRoute's RequestRedirect: answered instead of proxying.
    pub redirect_to: Option<Box<RedirectTo>>,
    pub response: ResponsePlan,
    pub request: RequestPlan,
    pub redirect: Option<RedirectPlan>,
    /// CORS handled at the edge, when `cors_enabled`.
    pub cors: Option<CorsPlan>,
    /// With `csp_nonce`: a fresh nonce per HTML response.
    pub nonce: Option<NoncePlan>,
    pub metrics: RouteMetrics,
    /// Where and how its requests are logged; `None`: not at all.
    pub access_log: Option<Arc<LogPlan>>,
}

/// What a route is compiled from, besides its merged policy layer.
pub struct RouteParts<'a> {
    pub labels: RouteLabels<'a>,
    pub target: Target,
    pub rewrite: Option<Rewrite>,
    pub upstream_host: Option<HeaderValue>,
    pub when: Option<Box<Conditions>>,
    pub redirect_to: Option<Box<RedirectTo>>,
    /// The vhost takes any Host (`*`): redirects need `ssl_host`.
    pub catch_all: bool,
    pub access_log: Option<Arc<LogPlan>>,
}

impl RoutePlan {
    pub fn compile(
        layer: &PolicyLayer,
        parts: RouteParts,
        metrics: &Metrics,
    ) -> Result<RoutePlan, KeyError> {
        let layer = &layer.resolved();
        let sec = &layer.security;
        check_security(sec, parts.catch_all)?;
        let at = parts.labels;
        Ok(RoutePlan {
            name: at.route.to_string(),
            target: parts.target,
            rewrite: parts.rewrite,
            upstream_host: parts.upstream_host,
            when: parts.when,
            redirect_to: parts.redirect_to,
            response: ResponsePlan::compile(layer, at, metrics)?,
            request: RequestPlan::compile(layer)?,
            redirect: RedirectPlan::from_options(sec, at.vhost, metrics)?,
            cors: CorsPlan::from_options(sec, at.vhost, metrics)?,
            nonce: NoncePlan::compile(layer, at, metrics)?,
            metrics: metrics.route(at),
            access_log: parts.access_log,
        })
    }

    /// Everything the route's policy does to a response: the security headers, then
    /// the CORS headers for `cors_origin` (the request's Origin, if allowed).
    pub fn apply_response(
        &self,
        resp: &mut ResponseHeader,
        https: bool,
        cors_origin: Option<&HeaderValue>,
    ) {
        self.response.apply(resp, https);
        if let Some(cors) = &self.cors {
            cors.apply(resp, cors_origin);
        }
    }

    /// The path the upstream sees, given the normalized request path.
    pub fn upstream_path<'p>(&self, path: &'p str) -> Cow<'p, str> {
        match &self.rewrite {
            Some(r) => r.apply(path),
            None => Cow::Borrowed(path),
        }
    }
}

/// Whether a layer would compile as a route's, without serving it: a
/// SecurityPolicy is checked this way on its own, so that its problem is its
/// status, never the routes' it attaches to. Its metrics go to a registry of
/// its own, thrown away.
pub fn validate(layer: &PolicyLayer) -> Result<(), KeyError> {
    let metrics = Metrics::new();
    let at = RouteLabels {
        vhost: "-",
        route: "-",
    };
    let layer = &layer.resolved();
    let sec = &layer.security;
    check_security(sec, false)?;
    ResponsePlan::compile(layer, at, &metrics)?;
    RequestPlan::compile(layer)?;
    RedirectPlan::from_options(sec, at.vhost, &metrics)?;
    CorsPlan::from_options(sec, at.vhost, &metrics)?;
    NoncePlan::compile(layer, at, &metrics)?;
    Ok(())
}

/// Rules that span several keys, checked on the merged options.
fn check_security(sec: &SecurityOptions, catch_all: bool) -> Result<(), KeyError> {
    let wildcard_origin = sec
        .allowed_origins
        .iter()
        .flatten()
        .any(|o| *o == CorsOrigin::Any);
    if sec.allow_credentials == Some(true) && wildcard_origin {
        return Err(KeyError::new(
            "security.allow_credentials",
            "allow_credentials is true while allowed_origins contains \"*\"; browsers refuse \
             credentials with a wildcard origin, and reflecting any origin instead would let \
             every site read authenticated responses. List the allowed origins.",
        ));
    }
    let has_ssl_host = matches!(sec.ssl_host, Some(Toggle::On(_)));
    if sec.ssl_redirect == Some(true) && catch_all && !has_ssl_host {
        return Err(KeyError::new(
            "security.ssl_redirect",
            "ssl_redirect on a vhost with host `*` needs `ssl_host`: the request's Host is not \
             a configured name there, and redirecting to it would be an open redirect",
        ));
    }
    if sec.csp_report_only == Some(true)
        && matches!(sec.frame_options_allow_from, Some(Toggle::On(_)))
    {
        return Err(KeyError::new(
            "security.frame_options_allow_from",
            "frame_options_allow_from becomes CSP frame-ancestors, which browsers ignore in a \
             report-only policy; with csp_report_only, use frame_options instead",
        ));
    }
    check_reports(sec)
}

/// Where reports go is decided once, by the report keys, for every CSP sent.
fn check_reports(sec: &SecurityOptions) -> Result<(), KeyError> {
    let uri = matches!(sec.csp_report_uri, Some(Toggle::On(_)));
    if sec.csp_report_collect == Some(true) && uri {
        return Err(KeyError::new(
            "security.csp_report_uri",
            "csp_report_collect and csp_report_uri are both on: reports go either to the \
             gateway or to an external collector; turn one off (`false`)",
        ));
    }
    if sec.csp_report_only == Some(true) && sec.csp_report_only_policy.is_some() {
        return Err(KeyError::new(
            "security.csp_report_only_policy",
            "csp_report_only already sends csp_policy as the report-only policy; to trial \
             csp_report_only_policy beside an enforced csp_policy, set csp_report_only: false",
        ));
    }
    if sec.csp_report_collect != Some(true) && !uri {
        return Ok(());
    }
    let policies = [
        ("csp_policy", &sec.csp_policy),
        ("csp_report_only_policy", &sec.csp_report_only_policy),
    ];
    for (key, policy) in policies {
        let Some(policy) = policy else { continue };
        for directive in ["report-uri", "report-to"] {
            if policy.0.get(directive).is_some_and(Option::is_some) {
                return Err(KeyError::new(
                    format!("security.{key}.{directive}"),
                    "the gateway writes report-uri and report-to from csp_report_collect or \
                     csp_report_uri; remove this directive",
                ));
            }
        }
    }
    Ok(())
}
