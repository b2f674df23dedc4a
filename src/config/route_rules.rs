//! What a route translated from an HTTPRoute says beyond a gw.yaml route: matches
//! on the method and headers, a redirect, path and host rewrites, and weighted
//! backends. Part of the one internal model (`RouteConfig::rules`), never read
//! from YAML: the translation in `cluster/gateway.rs` has checked every value.

use std::sync::Arc;

use http::{HeaderName, HeaderValue, Method};

#[derive(Debug, Clone, Default)]
pub struct RouteRules {
    /// Only requests that arrived on this port (its listener's) take the route.
    pub port: Option<u16>,
    /// Only requests with this method take the route.
    pub method: Option<Method>,
    /// Only requests carrying each of these headers with exactly this value.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The route answers with a redirect instead of proxying.
    pub redirect: Option<RouteRedirect>,
    /// The path the upstream sees.
    pub rewrite_path: Option<PathRewrite>,
    /// The Host the upstream sees.
    pub rewrite_host: Option<HeaderValue>,
    /// Where requests go, by weight; empty: the route's `upstreams`.
    pub backends: Vec<WeightedBackend>,
}

impl RouteRules {
    /// Whether the route matches on more than its path.
    pub fn has_conditions(&self) -> bool {
        self.port.is_some() || self.method.is_some() || !self.headers.is_empty()
    }
}

/// A new path: the whole of it, or in place of the matched prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathRewrite {
    Full(String),
    Prefix(String),
}

/// A redirect answered at the edge; what it leaves out comes from the request.
#[derive(Debug, Clone)]
pub struct RouteRedirect {
    pub scheme: Option<String>,
    pub hostname: Option<String>,
    pub port: Option<u16>,
    pub path: Option<PathRewrite>,
    pub status: u16,
    /// The port of the listener the route is attached to: a redirect without
    /// scheme nor port keeps it.
    pub listener_port: u16,
    /// The request's query goes on the Location (the Gateway API's redirects);
    /// `false`: the path given is the whole of it (nginx's `return CODE URL`).
    pub keep_query: bool,
}

/// One backend of a route and its share of the requests.
#[derive(Debug, Clone)]
pub struct WeightedBackend {
    pub weight: u32,
    /// `None`: the reference is invalid and its share answers 500; empty: no
    /// ready endpoint, its share answers 503.
    pub upstreams: Option<Arc<[String]>>,
}
