//! The `ProxyHttp` implementation: route by Host and path, then apply the route's plan.
//!
//! Each phase does one visible thing. The plan is taken once per request (`new_ctx`),
//! so a request sees one whole configuration even if another is swapped in meanwhile.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode};
use log::{debug, error, warn};
use pingora_core::modules::http::HttpModules;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorSource, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{FailToProxy, ProxyHttp, Session};

use crate::edge;
use crate::forwarded;
use crate::framing;
use crate::metrics::{metrics, Rejection, ReportRejection};
use crate::metrics::{RouteMetrics, UpstreamErrorKind, UNMATCHED, VHOST_ROUTE};
use crate::policy::canned::{status_body, TEXT_PLAIN};
use crate::policy::cors::Preflight;
use crate::policy::{Plan, RoutePlan, Target, VhostPlan};
use crate::reports::{self, Collector};
use crate::rewrite::{self, NonceStream};
use crate::routing::paths::normalize_path;
use crate::routing::{request_host, HostMatch};

pub struct Gateway {
    plan: Arc<ArcSwap<Plan>>,
}

impl Gateway {
    pub fn new(plan: Arc<ArcSwap<Plan>>) -> Gateway {
        Gateway { plan }
    }
}

pub struct RequestCtx {
    plan: Arc<Plan>,
    start: Instant,
    /// The request's Origin, when the route's CORS policy allows it.
    cors_origin: Option<HeaderValue>,
    /// The response is a preflight answer that already carries its CORS headers.
    preflight_answered: bool,
    /// The vhost, and the route inside it (0, the vhost's own, until the path is known).
    routed: Option<(usize, usize)>,
    /// How the Host matched the vhost.
    host_match: HostMatch,
    /// The normalized path, when it differs from the request's.
    normalized_path: Option<String>,
    https: bool,
    trusted_peer: bool,
    client_ip: Option<IpAddr>,
    /// The body rewriter of a response that gets a CSP nonce.
    nonce_stream: Option<Box<NonceStream>>,
}

impl RequestCtx {
    fn vhost(&self) -> Option<&VhostPlan> {
        self.routed.map(|(v, _)| &self.plan.vhosts[v])
    }

    fn route(&self) -> Option<&RoutePlan> {
        self.routed.map(|(v, r)| &self.plan.vhosts[v].routes[r])
    }

    /// Everything the policy does to a response header: the route's plan (or the
    /// built-in baseline before routing succeeds), then its CORS headers.
    fn finish_response(&self, resp: &mut ResponseHeader) {
        match self.route() {
            None => self.plan.baseline.apply(resp, self.https),
            // A preflight answer already carries its CORS headers.
            Some(r) if self.preflight_answered => r.response.apply(resp, self.https),
            Some(r) => r.apply_response(resp, self.https, self.cors_origin.as_ref()),
        }
    }

    fn metrics(&self) -> &RouteMetrics {
        self.route().map_or(&self.plan.unmatched, |r| &r.metrics)
    }

    /// `vhost/route`, for logs.
    fn labels(&self) -> (&str, &str) {
        match (self.vhost(), self.route()) {
            (Some(v), Some(r)) => (v.name.as_str(), r.name.as_str()),
            _ => (UNMATCHED, VHOST_ROUTE),
        }
    }

    /// The path as routed: normalized.
    fn path<'a>(&'a self, req: &'a RequestHeader) -> &'a str {
        self.normalized_path.as_deref().unwrap_or(req.uri.path())
    }

    /// Is the client's connection HTTPS (itself, or per a trusted proxy), and may
    /// it speak for others?
    fn classify_client(&mut self, session: &Session) {
        self.client_ip = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        self.trusted_peer = forwarded::is_trusted(&self.plan.trusted_proxies, self.client_ip);
        let over_tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
        self.https =
            over_tls || (self.trusted_peer && forwarded::forwarded_https(session.req_header()));
    }

    /// Host -> vhost. A Host that is no host name (`evil.com/.x`, `a?b`) is never
    /// routed, redirected to, or forwarded: `400`; an unknown one gets `421`.
    fn route_host(&mut self, req: &RequestHeader) -> Option<Answer> {
        let Some(host) = request_host(req) else {
            return Some(Answer::text(StatusCode::BAD_REQUEST).closing());
        };
        let Some((vhost, matched)) = self.plan.router.route(&host) else {
            return Some(Answer::text(StatusCode::MISDIRECTED_REQUEST));
        };
        self.routed = Some((vhost, 0));
        self.host_match = matched;
        None
    }

    /// Path -> route, on the normalized path; a target that could sidestep a route
    /// (not `/...` nor `http(s)://host/...`, `..` above the root, encoded slashes,
    /// control bytes) gets `400` with the vhost's own policy.
    fn route_path(&mut self, req: &RequestHeader) -> Option<Answer> {
        let (index, vhost) = self.routed.map(|(v, _)| (v, &self.plan.vhosts[v]))?;
        let refuse = |why: &dyn std::fmt::Display| {
            debug!("vhost={} path refused: {why}", vhost.name);
            Some(Answer::text(StatusCode::BAD_REQUEST).closing())
        };
        match request_target_form(req) {
            TargetForm::Path => {}
            // `OPTIONS *` names no resource: the vhost's own settings take it.
            TargetForm::Asterisk => return None,
            TargetForm::Other => return refuse(&"not a path nor an http(s) URL"),
        }
        let route = match normalize_path(req.uri.path(), vhost.keep_escaped_slashes) {
            Ok(std::borrow::Cow::Borrowed(path)) => vhost.route_index(path),
            Ok(std::borrow::Cow::Owned(path)) => {
                let route = vhost.route_index(&path);
                self.normalized_path = Some(path);
                route
            }
            Err(why) => return refuse(&why),
        };
        self.routed = Some((index, route));
        if let Some(cors) = &vhost.routes[route].cors {
            self.cors_origin = cors.allowed_origin(&req.headers);
        }
        None
    }

    /// HTTP -> HTTPS, when the route says so and the path is not exempt.
    fn redirect_to_https(&self, req: &RequestHeader) -> Option<Answer> {
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
            return Some(Answer::text(StatusCode::MISDIRECTED_REQUEST));
        };
        let status = redirect.status(&req.method);
        redirect.count(status);
        // The host was checked and the path came from a parsed URI: always valid.
        let location = HeaderValue::try_from(location).ok()?;
        let mut answer = Answer::empty(StatusCode::from_u16(status).unwrap_or(StatusCode::FOUND));
        answer.header("Location", location);
        Some(answer)
    }

    /// CORS preflights of a route that handles CORS are answered here.
    fn answer_preflight(&mut self, req: &RequestHeader) -> Option<Answer> {
        let cors = self.route()?.cors.as_ref()?;
        match cors.preflight(&req.method, &req.headers)? {
            Preflight::Allowed(resp) => {
                self.preflight_answered = true;
                Some(Answer {
                    head: *resp,
                    body: Bytes::new(),
                    close: false,
                })
            }
            Preflight::Denied => {
                // The origin may be allowed while the method or headers are not.
                self.cors_origin = None;
                Some(Answer::text(StatusCode::FORBIDDEN))
            }
        }
    }

    /// The vhost and its CSP report collector, when the request is for it.
    fn collector(&self, req: &RequestHeader) -> Option<(&VhostPlan, &Collector)> {
        let vhost = self.vhost()?;
        let collector = vhost.reports.as_ref()?;
        collector
            .collects_at(self.path(req))
            .then_some((vhost, collector))
    }

    /// A request to the vhost's CSP report collector: counted and logged here,
    /// never proxied; `204` when it held reports, else the rejection's status.
    async fn collect_report(
        &self,
        session: &mut Session,
        (vhost, collector): (&VhostPlan, &Collector),
    ) -> Result<Answer> {
        let taken = reports::take_body(session, self.plan.limits.header_timeout).await?;
        let path = self.path(session.req_header());
        let received = taken
            .and_then(|body| collector.receive(path, &body, |doc| vhost.route_of_reported(doc)));
        let Err(why) = received else {
            return Ok(Answer::empty(StatusCode::NO_CONTENT));
        };
        collector.reject(why);
        let status = StatusCode::from_u16(why.status()).unwrap_or(StatusCode::BAD_REQUEST);
        let mut answer = Answer::text(status);
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
    fn respond_directly(&self) -> Option<Answer> {
        let Target::Respond(direct) = &self.route()?.target else {
            return None;
        };
        let status = StatusCode::from_u16(direct.status).unwrap_or(StatusCode::OK);
        let mut answer = Answer::empty(status);
        answer.header("Content-Type", direct.content_type.clone());
        answer.body = direct.body.clone();
        Some(answer)
    }

    /// The target the upstream gets, when it is not the request's as received:
    /// the normalized path, without the route's prefix when it strips it, in
    /// origin-form (an absolute-form target is otherwise forwarded verbatim).
    fn upstream_path_and_query(&self, req: &RequestHeader) -> Option<String> {
        let route = self.route()?;
        let path = route.upstream_path(self.path(req));
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
fn refuse_method(req: &RequestHeader) -> Option<Answer> {
    if req.method != Method::CONNECT && req.method != Method::TRACE {
        return None;
    }
    let mut answer = Answer::text(StatusCode::METHOD_NOT_ALLOWED).closing();
    answer.header("Allow", ALLOW_METHODS);
    Some(answer)
}

/// Request framing the gateway holds to RFC 9112 where Pingora is lenient
/// (`framing.rs`): a repeated `Content-Length` is forwarded as one value, and a
/// chunked body is judged as far as it has arrived (the rest as it arrives).
fn refuse_bad_framing(session: &mut Session) -> Option<Answer> {
    let refused = framing::one_content_length(session.req_header_mut())
        .map_err(str::to_string)
        .and_then(|()| edge::check_chunked(session.as_downstream()).map_err(|e| e.to_string()));
    let why = refused.err()?;
    debug!("request framing refused: {why}");
    Some(Answer::text(StatusCode::BAD_REQUEST).closing())
}

/// A response the gateway makes itself instead of proxying.
pub struct Answer {
    head: ResponseHeader,
    body: Bytes,
    /// Close the connection after it (the request may not have been read whole).
    close: bool,
}

impl Answer {
    fn empty(status: StatusCode) -> Answer {
        Answer {
            // Cannot fail: a StatusCode is already a valid status.
            head: ResponseHeader::build(status, Some(4)).unwrap_or_else(|_| unreachable!()),
            body: Bytes::new(),
            close: false,
        }
    }

    /// `404 Not Found\n` as text/plain.
    fn text(status: StatusCode) -> Answer {
        let mut answer = Answer::empty(status);
        answer.header("Content-Type", TEXT_PLAIN);
        answer.body = status_body(status);
        answer
    }

    fn closing(mut self) -> Answer {
        self.close = true;
        self
    }

    fn header(&mut self, name: &'static str, value: HeaderValue) {
        // Cannot fail: the names are static and valid.
        let _ = self.head.insert_header(name, value);
    }

    async fn send(self, session: &mut Session, ctx: &RequestCtx) -> Result<()> {
        if self.close {
            session.set_keepalive(None);
        }
        send(session, ctx, self.head, self.body).await
    }
}

const ALLOW_METHODS: HeaderValue =
    HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    /// No downstream modules: Pingora's default adds a compression module that is
    /// disabled yet still runs on every request, and the gateway does not compress.
    fn init_downstream_modules(&self, _modules: &mut HttpModules) {}

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            plan: self.plan.load_full(),
            start: Instant::now(),
            cors_origin: None,
            preflight_answered: false,
            routed: None,
            host_match: HostMatch::Default,
            normalized_path: None,
            https: false,
            trusted_peer: false,
            client_ip: None,
            nonce_stream: None,
        }
    }

    /// The head was read whole: its deadline no longer runs, and the body's
    /// (`client_body_timeout_ms`, between two reads) begins.
    async fn early_request_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        edge::head_complete();
        let downstream = session.as_downstream_mut();
        if downstream.is_http2() {
            edge::body_expected(!downstream.is_body_done());
        } else {
            downstream.set_read_timeout(Some(ctx.plan.limits.body_timeout));
        }
        Ok(())
    }

    /// Route by Host, then by path; answer here when the route says so (CSP
    /// report, redirect, preflight, direct response) or when nothing may be proxied.
    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        ctx.classify_client(session);
        // Framing first: every other answer leaves the body to be drained, and
        // the chunk judge must be watching that too (it then carries the
        // built-in policy, as the connection layer's own 400 does).
        let answer = refuse_bad_framing(session);
        let req = session.req_header();
        let mut answer = answer
            .or_else(|| ctx.route_host(req))
            .or_else(|| refuse_method(req))
            .or_else(|| ctx.route_path(req));
        // Boxed, like the answer below: rare paths whose futures would otherwise
        // be copied into every request's `request_filter` future.
        let collector = answer.is_none().then(|| ctx.collector(req)).flatten();
        if let Some(collector) = collector {
            answer = Some(Box::pin(ctx.collect_report(session, collector)).await?);
        }
        let req = session.req_header();
        let answer = answer
            .or_else(|| ctx.redirect_to_https(req))
            .or_else(|| ctx.answer_preflight(req))
            .or_else(|| ctx.respond_directly());
        match answer {
            Some(answer) => {
                Box::pin(answer.send(session, ctx)).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        match ctx.route().map(|r| &r.target) {
            Some(Target::Proxy {
                upstreams,
                timeouts,
            }) => upstreams
                .next_peer(timeouts)
                .ok_or_else(|| Error::explain(ErrorType::ConnectNoRoute, "no upstream available")),
            _ => Err(Error::explain(
                ErrorType::InternalError,
                "request reached upstream_peer without a proxied route",
            )),
        }
    }

    /// The routed path, forwarding headers, then the route's request-header actions.
    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(pq) = ctx.upstream_path_and_query(upstream_request) {
            let uri = http::Uri::try_from(pq).map_err(|e| {
                Error::because(ErrorType::InternalError, "rewriting the upstream path", e)
            })?;
            upstream_request.set_uri(uri);
        }
        forwarded::strip_untrusted(
            upstream_request,
            ctx.trusted_peer,
            ctx.plan.underscores_in_headers,
        );
        forwarded::rewrite(upstream_request, ctx.client_ip, ctx.trusted_peer, ctx.https);
        if let Some(r) = ctx.route() {
            r.request.apply(upstream_request);
        }
        Ok(())
    }

    /// An empty last piece of a body (an HTTP/2 client's empty DATA frame with
    /// END_STREAM) becomes no piece: Pingora would write it to a chunked HTTP/1
    /// upstream as a last-chunk, then write the last-chunk again when it finishes
    /// the body, and the upstream would read the second as another request whose
    /// answer reaches whoever uses the pooled connection next (docs/framing.md).
    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        _ctx: &mut RequestCtx,
    ) -> Result<()> {
        if end_of_stream && body.as_ref().is_some_and(Bytes::is_empty) {
            *body = None;
        }
        edge::body_read(end_of_stream);
        Ok(())
    }

    /// The route's response plan and CORS headers on whatever the upstream sent;
    /// HTML on a `csp_nonce` route gets its nonce here and its body rewritten below.
    async fn response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.finish_response(upstream_response);
        let stream = ctx.route().and_then(|r| r.nonce.as_ref()).and_then(|plan| {
            rewrite::begin(plan, upstream_response, session.req_header(), ctx.https)
        });
        ctx.nonce_stream = stream.map(Box::new);
        Ok(())
    }

    /// A nonced body streams through the rewriter; one that cannot be rewritten
    /// ends the response rather than reach the client half-done.
    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<std::time::Duration>> {
        let Some(stream) = &ctx.nonce_stream else {
            return Ok(None);
        };
        if let Err(e) = stream.filter(body, end_of_stream) {
            ctx.nonce_stream = None;
            if let Some(plan) = ctx.route().and_then(|r| r.nonce.as_ref()) {
                plan.counters.failed.inc();
            }
            // fail_to_proxy writes the one log line.
            return Err(Error::because(
                ErrorType::InternalError,
                "nonce rewrite failed",
                e,
            ));
        }
        Ok(None)
    }

    /// Pingora's default error response skips `response_filter` (pingora #381), so
    /// the gateway writes its own, with the policy applied.
    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let code = error_status(e);
        // The only 408 it gives: a request body that stalled.
        if code == 408 {
            metrics().request_rejected(Rejection::BodyTimeout);
        }
        if is_send_timeout(e) {
            metrics().request_rejected(Rejection::SendTimeout);
        }
        let (vhost, route) = ctx.labels();
        let path = session.req_header().uri.path();
        // The one log line per failure (Pingora's own is suppressed below).
        match code {
            0 => debug!("vhost={vhost} route={route} path={path} client gone: {e}"),
            400..=499 => warn!("vhost={vhost} route={route} path={path} status={code} reason={e}"),
            _ => error!("vhost={vhost} route={route} path={path} status={code} reason={e}"),
        }
        if *e.esource() == ErrorSource::Upstream {
            ctx.metrics().upstream_error(upstream_error_kind(e));
        }
        let already_sent = session
            .as_downstream()
            .response_written()
            .is_some_and(|r| !r.status.is_informational());
        if code > 0 && !already_sent {
            session.set_keepalive(None);
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY);
            if let Err(err) = Answer::text(status).send(session, ctx).await {
                let (vhost, route) = ctx.labels();
                debug!("vhost={vhost} route={route} could not send the error response: {err}");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    fn suppress_error_log(&self, _session: &Session, _ctx: &RequestCtx, _e: &Error) -> bool {
        true
    }

    /// Counts every request once, whichever way it ended.
    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        let status = session
            .as_downstream()
            .response_written()
            .map_or(0, |r| r.status.as_u16());
        ctx.metrics().request_done(status, ctx.start.elapsed());
    }
}

fn upstream_error_kind(e: &Error) -> UpstreamErrorKind {
    match e.etype() {
        ErrorType::ConnectRefused => UpstreamErrorKind::ConnectRefused,
        ErrorType::ConnectTimedout => UpstreamErrorKind::ConnectTimeout,
        ErrorType::ConnectError | ErrorType::ConnectNoRoute | ErrorType::BindError => {
            UpstreamErrorKind::ConnectError
        }
        ErrorType::ReadTimedout => UpstreamErrorKind::ReadTimeout,
        ErrorType::WriteTimedout => UpstreamErrorKind::WriteTimeout,
        ErrorType::ReadError => UpstreamErrorKind::ReadError,
        ErrorType::WriteError => UpstreamErrorKind::WriteError,
        ErrorType::ConnectionClosed => UpstreamErrorKind::Closed,
        ErrorType::InvalidHTTPHeader | ErrorType::H1Error | ErrorType::H2Error => {
            UpstreamErrorKind::InvalidResponse
        }
        _ => UpstreamErrorKind::Other,
    }
}

/// A response the client stopped reading for `send_timeout_ms`: on HTTP/1 the
/// connection closes, on HTTP/2 the stream is reset.
fn is_send_timeout(e: &Error) -> bool {
    e.etype() == &ErrorType::WriteTimedout && e.esource() == &ErrorSource::Downstream
}

/// 504 for upstream timeouts, 502 for other upstream failures, 0 when the client is
/// gone or stopped reading (nothing more can reach it); the client's faults while
/// its body is read: 400 for a chunked body that broke the grammar, 408 for one
/// that stalled.
fn error_status(e: &Error) -> u16 {
    if edge::is_bad_chunk(e) {
        return 400;
    }
    match (e.etype(), e.esource()) {
        (ErrorType::HTTPStatus(code), _) => *code,
        (
            ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout,
            ErrorSource::Upstream,
        ) => 504,
        (_, ErrorSource::Upstream) => 502,
        (ErrorType::ReadTimedout, ErrorSource::Downstream) => 408,
        (
            ErrorType::WriteError
            | ErrorType::WriteTimedout
            | ErrorType::ReadError
            | ErrorType::ConnectionClosed,
            ErrorSource::Downstream,
        ) => 0,
        (_, ErrorSource::Downstream) => 400,
        _ => 500,
    }
}

/// Writes a response the gateway makes itself, with the same plan as proxied ones.
async fn send(
    session: &mut Session,
    ctx: &RequestCtx,
    mut resp: ResponseHeader,
    body: Bytes,
) -> Result<()> {
    // RFC 9110 8.6: no Content-Length on 1xx, 204 and 304.
    let status = resp.status;
    if !(status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED)
    {
        resp.insert_header("Content-Length", body.len())?;
    }
    ctx.finish_response(&mut resp);
    let bodyless = body.is_empty() || session.req_header().method == Method::HEAD;
    session
        .write_response_header(Box::new(resp), bodyless)
        .await?;
    if !bodyless {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A context on a plan compiled from `vhosts` (gw.yaml text), like `new_ctx`.
    fn ctx(vhosts: &str) -> RequestCtx {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gw.yaml");
        let gw = format!("listeners: [{{address: \"127.0.0.1:1\"}}]\n{vhosts}");
        std::fs::write(&path, gw).unwrap();
        let (_, plan) = crate::policy::load(&path, crate::metrics::metrics()).unwrap();
        Gateway::new(Arc::new(ArcSwap::from_pointee(plan))).new_ctx()
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
    fn client_faults_while_the_body_is_read_have_their_own_status() {
        let failed = |etype, source, cause: Option<std::io::Error>| {
            let e = match cause {
                Some(c) => Error::because(etype, "reading the body", c),
                None => Error::explain(etype, "reading the body"),
            };
            let e = match source {
                ErrorSource::Upstream => e.into_up(),
                _ => e.into_down(),
            };
            error_status(&e)
        };
        let bad_chunk = || {
            let why = crate::framing::BadChunk::REWRITTEN_HEAD;
            Some(std::io::Error::new(std::io::ErrorKind::InvalidData, why))
        };
        let read_error = ErrorType::ReadError;
        assert_eq!(
            failed(read_error.clone(), ErrorSource::Downstream, bad_chunk()),
            400
        );
        assert_eq!(failed(read_error.clone(), ErrorSource::Downstream, None), 0);
        assert_eq!(
            failed(ErrorType::ReadTimedout, ErrorSource::Downstream, None),
            408
        );
        assert_eq!(
            failed(ErrorType::ReadTimedout, ErrorSource::Upstream, None),
            504
        );
        assert_eq!(
            failed(ErrorType::WriteTimedout, ErrorSource::Downstream, None),
            0
        );
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
