//! The request's state ([`RequestCtx`]): how the client is classified, the vhost
//! and route it is given, and the early answers that stop it before any upstream
//! (bad framing, a refused method or target, a redirect, a preflight, a CSP
//! report, a direct response).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode};
use log::debug;
use pingora_error::Result;
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::Session;

use crate::access_log::request_id;
use crate::edge;
use crate::forwarded;
use crate::framing;
use crate::metrics::{ReportRejection, RouteMetrics, UNMATCHED, VHOST_ROUTE};
use crate::policy::access_log::LogPlan;
use crate::policy::cors::Preflight;
use crate::policy::rules::Asked;
use crate::policy::{Plan, RoutePlan, Target, VhostPlan};
use crate::reports::{self, Collector};
use crate::rewrite::NonceStream;
use crate::routing::paths::normalize_path;
use crate::routing::{request_host, HostMatch};

use super::answer::{Answer, Finish};

impl Finish for RequestCtx {
    /// Everything the policy does to a response header: the route's plan (or the
    /// built-in baseline before routing succeeds), then its CORS headers.
    fn finish_response(&self, resp: &mut ResponseHeader) {
        match self.route() {
            None => self.plan.baseline.apply(resp, self.https),
            // A preflight answer already carries its CORS headers.
            Some(r) if self.preflight_answered => r.response.apply(resp, self.https),
            Some(r) => r.apply_response(resp, self.https, self.cors_origin.as_ref()),
        }
        if !self.request_id.is_empty() {
            // Replaces any the upstream sent: the client gets the id the logs have.
            let _ = resp.insert_header(request_id::HEADER, self.request_id.clone());
        }
    }
}

pub struct RequestCtx {
    pub(super) plan: Arc<Plan>,
    pub(super) start: Instant,
    /// The request's Origin, when the route's CORS policy allows it.
    pub(super) cors_origin: Option<HeaderValue>,
    /// The response is a preflight answer that already carries its CORS headers.
    pub(super) preflight_answered: bool,
    /// The vhost, and the route inside it (0, the vhost's own, until the path is known).
    pub(super) routed: Option<(usize, usize)>,
    /// How the Host matched the vhost.
    pub(super) host_match: HostMatch,
    /// The normalized path, when it differs from the request's.
    pub(super) normalized_path: Option<String>,
    pub(super) https: bool,
    /// The port the request arrived on: its listener's.
    pub(super) local_port: u16,
    pub(super) trusted_peer: bool,
    pub(super) client_ip: Option<IpAddr>,
    /// The backend of a split route ([`Self::choose_backend`]).
    pub(super) backend: usize,
    /// The body rewriter of a response that gets a CSP nonce.
    pub(super) nonce_stream: Option<Box<NonceStream>>,
    /// Empty until the request is classified ([`Self::classify_client`]).
    pub(super) request_id: HeaderValue,
    /// When the upstream was chosen (before connecting), and when its response ended.
    pub(super) upstream_start: Option<Instant>,
    pub(super) upstream_end: Option<Instant>,
    pub(super) upstream_addr: Option<std::net::SocketAddr>,
    /// Why the gateway answered itself, for the access line.
    pub(super) reason: Option<&'static str>,
}

impl RequestCtx {
    fn vhost(&self) -> Option<&VhostPlan> {
        self.routed.map(|(v, _)| &self.plan.vhosts[v])
    }

    pub(super) fn route(&self) -> Option<&RoutePlan> {
        self.routed.map(|(v, r)| &self.plan.vhosts[v].routes[r])
    }

    /// How this request is logged: its route's settings, else the top level's.
    pub(super) fn log_plan(&self) -> Option<&LogPlan> {
        match self.route() {
            Some(r) => r.access_log.as_deref(),
            None => self.plan.unmatched_log.as_deref(),
        }
    }

    pub(super) fn metrics(&self) -> &RouteMetrics {
        self.route().map_or(&self.plan.unmatched, |r| &r.metrics)
    }

    /// `vhost/route`, for logs.
    pub(super) fn labels(&self) -> (&str, &str) {
        match (self.vhost(), self.route()) {
            (Some(v), Some(r)) => (v.name.as_str(), r.name.as_str()),
            _ => (UNMATCHED, VHOST_ROUTE),
        }
    }

    /// The path as routed: normalized.
    pub(super) fn path<'a>(&'a self, req: &'a RequestHeader) -> &'a str {
        self.normalized_path.as_deref().unwrap_or(req.uri.path())
    }

    /// Is the client's connection HTTPS (itself, or per a trusted proxy), and may
    /// it speak for others?
    pub(super) fn classify_client(&mut self, session: &Session) {
        self.client_ip = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        self.local_port = session
            .server_addr()
            .and_then(|a| a.as_inet())
            .map_or(0, |a| a.port());
        self.trusted_peer = forwarded::is_trusted(&self.plan.trusted_proxies, self.client_ip);
        self.request_id = request_id::request_id(session.req_header(), self.trusted_peer);
        let over_tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
        self.https =
            over_tls || (self.trusted_peer && forwarded::forwarded_https(session.req_header()));
    }

    /// Host -> vhost. A Host that is no host name (`evil.com/.x`, `a?b`) is never
    /// routed, redirected to, or forwarded: `400`; an unknown one gets `421`.
    pub(super) fn route_host(&mut self, req: &RequestHeader) -> Option<Answer> {
        let Some(host) = request_host(req) else {
            return Some(Answer::text(StatusCode::BAD_REQUEST, "bad_host").closing());
        };
        let Some((vhost, matched)) = self.plan.router.route(&host) else {
            return Some(Answer::text(
                StatusCode::MISDIRECTED_REQUEST,
                "unknown_host",
            ));
        };
        self.routed = Some((vhost, 0));
        self.host_match = matched;
        None
    }

    /// Path -> route, on the normalized path; a target that could sidestep a route
    /// (not `/...` nor `http(s)://host/...`, `..` above the root, encoded slashes,
    /// control bytes) gets `400` with the vhost's own policy.
    pub(super) fn route_path(&mut self, req: &RequestHeader) -> Option<Answer> {
        let (index, vhost) = self.routed.map(|(v, _)| (v, &self.plan.vhosts[v]))?;
        let refuse = |why: &dyn std::fmt::Display| {
            debug!("vhost={} path refused: {why}", vhost.name);
            Some(Answer::text(StatusCode::BAD_REQUEST, "bad_path").closing())
        };
        match request_target_form(req) {
            TargetForm::Path => {}
            // `OPTIONS *` names no resource: the vhost's own settings take it.
            TargetForm::Asterisk => return None,
            TargetForm::Other => return refuse(&"not a path nor an http(s) URL"),
        }
        let asked = Asked {
            req,
            port: self.local_port,
        };
        let (index, route) = match normalize_path(req.uri.path(), vhost.keep_escaped_slashes) {
            Ok(std::borrow::Cow::Borrowed(path)) => self.plan.route(index, path, asked),
            Ok(std::borrow::Cow::Owned(path)) => {
                let routed = self.plan.route(index, &path, asked);
                self.normalized_path = Some(path);
                routed
            }
            Err(why) => return refuse(&why),
        };
        self.routed = Some((index, route));
        if let Some(cors) = &self.plan.vhosts[index].routes[route].cors {
            self.cors_origin = cors.allowed_origin(&req.headers);
        }
        None
    }

    /// HTTP -> HTTPS, when the route says so and the path is not exempt.
    pub(super) fn redirect_to_https(&self, req: &RequestHeader) -> Option<Answer> {
        let redirect = self.route()?.redirect.as_ref().filter(|_| !self.https)?;
        let path = self.path(req);
        if !redirect.applies_to(path) {
            return None;
        }
        // A Host that only matched `*` is not a configured name: never redirect
        // to it (compile requires ssl_host on such vhosts).
        let host = request_host(req).unwrap_or_default();
        let own_host = (self.host_match != HostMatch::Default).then_some(host.as_ref());
        let target = match &self.normalized_path {
            None => req
                .uri
                .path_and_query()
                .map_or("/", |pq| pq.as_str())
                .into(),
            Some(path) => std::borrow::Cow::Owned(path_and_query(path, req.uri.query())),
        };
        let Some(location) = redirect.location(own_host, &target) else {
            return Some(Answer::text(
                StatusCode::MISDIRECTED_REQUEST,
                "no_redirect_host",
            ));
        };
        let status = redirect.status(&req.method);
        redirect.count(status);
        // The host was checked and the path came from a parsed URI: always valid.
        let location = HeaderValue::try_from(location).ok()?;
        let mut answer = Answer::empty(
            StatusCode::from_u16(status).unwrap_or(StatusCode::FOUND),
            "https_redirect",
        );
        answer.header("Location", location);
        Some(answer)
    }

    /// An HTTPRoute's RequestRedirect.
    pub(super) fn route_redirect(&self, req: &RequestHeader) -> Option<Answer> {
        let redirect = self.route()?.redirect_to.as_deref()?;
        let host = request_host(req).unwrap_or_default();
        let location = redirect.location(self.https, &host, self.path(req), req.uri.query());
        // The host was checked, the path normalized, the query came from a
        // parsed URI, and the translation checked the redirect's own parts.
        let location = HeaderValue::try_from(location).ok()?;
        let mut answer = Answer::empty(redirect.status, "redirect");
        answer.header("Location", location);
        Some(answer)
    }

    /// A route split over backends by weight: the backend of this request, or
    /// the answer for a share that has none (500 for an invalid reference or
    /// when every weight is zero, 503 for a backend without a ready endpoint).
    pub(super) fn choose_backend(&mut self) -> Option<Answer> {
        let Target::Split { split, .. } = &self.route()?.target else {
            return None;
        };
        let Some(index) = split.pick() else {
            return Some(Answer::text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "no_backend",
            ));
        };
        let answer = match split.backend(index) {
            None => Some(Answer::text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "no_backend",
            )),
            Some(pool) if pool.is_empty() => {
                Some(Answer::text(StatusCode::SERVICE_UNAVAILABLE, "no_endpoint"))
            }
            Some(_) => None,
        };
        self.backend = index;
        answer
    }

    /// CORS preflights of a route that handles CORS are answered here.
    pub(super) fn answer_preflight(&mut self, req: &RequestHeader) -> Option<Answer> {
        let cors = self.route()?.cors.as_ref()?;
        match cors.preflight(&req.method, &req.headers)? {
            Preflight::Allowed(resp) => {
                self.preflight_answered = true;
                Some(Answer {
                    head: *resp,
                    body: Bytes::new(),
                    close: false,
                    reason: "preflight",
                })
            }
            Preflight::Denied => {
                // The origin may be allowed while the method or headers are not.
                self.cors_origin = None;
                Some(Answer::text(StatusCode::FORBIDDEN, "preflight_denied"))
            }
        }
    }

    /// The vhost and its CSP report collector, when the request is for it.
    pub(super) fn collector(&self, req: &RequestHeader) -> Option<(&VhostPlan, &Collector)> {
        let vhost = self.vhost()?;
        let collector = vhost.reports.as_ref()?;
        collector
            .collects_at(self.path(req))
            .then_some((vhost, collector))
    }

    /// A request to the vhost's CSP report collector: counted and logged here,
    /// never proxied; `204` when it held reports, else the rejection's status.
    pub(super) async fn collect_report(
        &self,
        session: &mut Session,
        (vhost, collector): (&VhostPlan, &Collector),
    ) -> Result<Answer> {
        let taken = reports::take_body(session, self.plan.limits.header_timeout).await?;
        let path = self.path(session.req_header());
        let received = taken
            .and_then(|body| collector.receive(path, &body, |doc| vhost.route_of_reported(doc)));
        let Err(why) = received else {
            return Ok(Answer::empty(StatusCode::NO_CONTENT, "csp_report"));
        };
        collector.reject(why);
        let status = StatusCode::from_u16(why.status()).unwrap_or(StatusCode::BAD_REQUEST);
        let mut answer = Answer::text(status, "csp_report_rejected");
        if why == ReportRejection::Method {
            answer.header("Allow", HeaderValue::from_static("POST"));
        }
        // Only a body read whole leaves the connection fit for another request.
        if !matches!(why, ReportRejection::Malformed | ReportRejection::Empty) {
            answer = answer.closing();
        }
        Ok(answer)
    }

    /// A route configured with `respond`.
    pub(super) fn respond_directly(&self) -> Option<Answer> {
        let Target::Respond(direct) = &self.route()?.target else {
            return None;
        };
        let status = StatusCode::from_u16(direct.status).unwrap_or(StatusCode::OK);
        let mut answer = Answer::empty(status, "direct_response");
        answer.header("Content-Type", direct.content_type.clone());
        answer.body = direct.body.clone();
        Some(answer)
    }

    /// The target the upstream gets, when it is not the request's as received:
    /// the normalized path, without the route's prefix when it strips it, in
    /// origin-form (an absolute-form target is otherwise forwarded verbatim).
    pub(super) fn upstream_path_and_query(&self, req: &RequestHeader) -> Option<String> {
        let route = self.route()?;
        let path = route.upstream_path(self.path(req));
        let path = path.as_ref();
        let raw = req.raw_path();
        let unchanged = match req.uri.query() {
            None => raw == path.as_bytes(),
            Some(q) => {
                raw.len() == path.len() + 1 + q.len()
                    && raw.starts_with(path.as_bytes())
                    && raw[path.len()] == b'?'
                    && raw.ends_with(q.as_bytes())
            }
        };
        if unchanged {
            return None;
        }
        Some(path_and_query(path, req.uri.query()))
    }
}

fn path_and_query(path: &str, query: Option<&str>) -> String {
    match query {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    }
}

/// The request-target forms the gateway serves (RFC 9112 3.2).
#[derive(Debug, PartialEq, Eq)]
enum TargetForm {
    /// Origin-form `/path?query`, or absolute-form `http(s)://authority/path`,
    /// whose path Pingora puts in the URI.
    Path,
    /// `*`, for `OPTIONS` only.
    Asterisk,
    /// Anything else, which Pingora would forward verbatim: refused.
    Other,
}

fn request_target_form(req: &RequestHeader) -> TargetForm {
    let raw = req.raw_path();
    let starts_with = |prefix: &[u8]| {
        raw.get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
    };
    if raw.first() == Some(&b'/') || starts_with(b"http://") || starts_with(b"https://") {
        TargetForm::Path
    } else if raw == b"*" && req.method == Method::OPTIONS {
        TargetForm::Asterisk
    } else {
        TargetForm::Other
    }
}

/// `CONNECT` (Pingora's own refusal would skip the policy) and `TRACE` (no use at
/// an edge; it echoes a request, credentials included, back to a script that
/// could not read them: cross-site tracing) are never proxied: `405`.
pub(super) fn refuse_method(req: &RequestHeader) -> Option<Answer> {
    if req.method != Method::CONNECT && req.method != Method::TRACE {
        return None;
    }
    let mut answer = Answer::text(StatusCode::METHOD_NOT_ALLOWED, "method_refused").closing();
    answer.header("Allow", ALLOW_METHODS);
    Some(answer)
}

const ALLOW_METHODS: HeaderValue =
    HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");

/// Request framing the gateway holds to RFC 9112 where Pingora is lenient
/// (`framing.rs`): a repeated `Content-Length` is forwarded as one value, and a
/// chunked body is judged as far as it has arrived (the rest as it arrives).
pub(super) fn refuse_bad_framing(session: &mut Session) -> Option<Answer> {
    let refused = framing::one_content_length(session.req_header_mut())
        .map_err(str::to_string)
        .and_then(|()| edge::check_chunked(session.as_downstream()).map_err(|e| e.to_string()));
    let why = refused.err()?;
    debug!("request framing refused: {why}");
    Some(Answer::text(StatusCode::BAD_REQUEST, "bad_framing").closing())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arc_swap::ArcSwap;
    use pingora_proxy::ProxyHttp;

    use crate::proxy::Gateway;

    /// A context on a plan compiled from `vhosts` (gw.yaml text), like `new_ctx`.
    fn ctx(vhosts: &str) -> RequestCtx {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gw.yaml");
        let gw = format!("listeners: [{{address: \"127.0.0.1:1\"}}]\n{vhosts}");
        std::fs::write(&path, gw).unwrap();
        let (_, plan) = crate::policy::load(&path, crate::metrics::metrics()).unwrap();
        let cache = Arc::new(crate::rewrite::cache::NonceCache::new(
            &crate::metrics::Metrics::new(),
        ));
        Gateway::new(Arc::new(ArcSwap::from_pointee(plan)), cache).new_ctx()
    }

    const SHOP: &str = r#"
vhosts:
  - name: shop
    hosts: [shop.test]
    upstreams: ["127.0.0.1:9"]
    routes:
      - {name: api, prefix: /api, strip_prefix: true}
      - {name: health, exact: /healthz, respond: {status: 204}}
      - {name: account, prefix: /account, security: {ssl_redirect: true}}
"#;

    fn req(method: &str, target: &str) -> RequestHeader {
        let mut r = RequestHeader::build(method, target.as_bytes(), None).unwrap();
        r.insert_header("Host", "shop.test").unwrap();
        r
    }

    /// The answer's status, or the route the request was given to.
    fn route(ctx: &mut RequestCtx, r: &RequestHeader) -> Result<String, u16> {
        if let Some(a) = ctx.route_host(r).or_else(|| ctx.route_path(r)) {
            return Err(a.head.status.as_u16());
        }
        Ok(ctx.route().unwrap().name.clone())
    }

    #[test]
    fn hosts_then_paths_pick_the_route() {
        for (target, want) in [
            ("/api/x", Ok("api")),
            ("/healthz", Ok("health")),
            ("/other", Ok("_vhost")),
            ("/x/../api/y", Ok("api")),
            ("http://shop.test/api", Ok("api")),
            ("/a/../../b", Err(400)),
            ("/a%2fb", Err(400)),
            ("admin/x", Err(400)),
        ] {
            let mut c = ctx(SHOP);
            assert_eq!(
                route(&mut c, &req("GET", target))
                    .as_deref()
                    .map_err(|s| *s),
                want,
                "{target}"
            );
        }
        let mut c = ctx(SHOP);
        let mut r = req("GET", "/");
        r.insert_header("Host", "other.test").unwrap();
        assert_eq!(route(&mut c, &r), Err(421));
        r.insert_header("Host", "evil.test/x").unwrap();
        assert_eq!(route(&mut c, &r), Err(400));
    }

    #[test]
    fn only_options_may_ask_for_asterisk() {
        assert_eq!(
            request_target_form(&req("OPTIONS", "*")),
            TargetForm::Asterisk
        );
        assert_eq!(request_target_form(&req("GET", "*")), TargetForm::Other);
        assert_eq!(request_target_form(&req("GET", "/x")), TargetForm::Path);
        assert_eq!(
            request_target_form(&req("GET", "HTTPS://a.test/x")),
            TargetForm::Path
        );
        assert_eq!(request_target_form(&req("GET", "?q")), TargetForm::Other);
    }

    #[test]
    fn each_early_answer_comes_from_the_route() {
        let mut c = ctx(SHOP);
        let r = req("GET", "/account/../account/orders?page=2");
        assert_eq!(route(&mut c, &r), Ok("account".into()));
        let answer = c.redirect_to_https(&r).unwrap();
        assert_eq!(answer.head.status, StatusCode::MOVED_PERMANENTLY);
        assert_eq!(
            answer.head.headers["location"],
            "https://shop.test/account/orders?page=2"
        );
        assert!(c.respond_directly().is_none());

        let mut c = ctx(SHOP);
        let r = req("GET", "/healthz");
        route(&mut c, &r).unwrap();
        assert!(c.redirect_to_https(&r).is_none());
        let answer = c.respond_directly().unwrap();
        assert_eq!(answer.head.status, StatusCode::NO_CONTENT);
        assert!(refuse_method(&r).is_none());
        let connect = refuse_method(&req("CONNECT", "shop.test:443")).unwrap();
        assert_eq!((connect.head.status.as_u16(), connect.close), (405, true));
    }

    #[test]
    fn the_upstream_target_changes_only_when_routing_changed_it() {
        for (target, want) in [
            ("/api/v1/x?q=1", Some("/v1/x?q=1")),
            ("/api", Some("/")),
            ("/other?q=1", None),
            ("/other/./x", Some("/other/x")),
            ("http://shop.test/other", Some("/other")),
        ] {
            let mut c = ctx(SHOP);
            let r = req("GET", target);
            route(&mut c, &r).unwrap();
            assert_eq!(c.upstream_path_and_query(&r).as_deref(), want, "{target}");
        }
    }
}
