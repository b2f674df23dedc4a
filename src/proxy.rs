//! The `ProxyHttp` implementation: route by Host, then apply the vhost's plan.
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
use crate::metrics::{UpstreamErrorKind, VhostMetrics};
use crate::policy::canned::{status_body, TEXT_PLAIN};
use crate::policy::cors::Preflight;
use crate::policy::{Plan, Route, VhostPlan};
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
    /// The request's Origin, when the vhost's CORS policy allows it.
    cors_origin: Option<HeaderValue>,
    /// The response is a preflight answer that already carries its CORS headers.
    preflight_answered: bool,
    vhost: Option<usize>,
    https: bool,
    trusted_peer: bool,
    client_ip: Option<IpAddr>,
}

impl RequestCtx {
    fn vhost(&self) -> Option<&VhostPlan> {
        self.vhost.and_then(|i| self.plan.vhosts.get(i))
    }

    /// Everything the policy does to a response header: the vhost's plan (or the
    /// built-in baseline before routing succeeds), then its CORS headers.
    fn finish_response(&self, resp: &mut ResponseHeader) {
        match self.vhost() {
            None => self.plan.baseline.apply(resp, self.https),
            // A preflight answer already carries its CORS headers.
            Some(v) if self.preflight_answered => v.response.apply(resp, self.https),
            Some(v) => v.apply_response(resp, self.https, self.cors_origin.as_ref()),
        }
    }

    fn metrics(&self) -> &VhostMetrics {
        self.vhost().map_or(&self.plan.unmatched, |v| &v.metrics)
    }

    fn vhost_name(&self) -> &str {
        self.vhost()
            .map_or(crate::metrics::UNMATCHED, |v| v.name.as_str())
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
            vhost: None,
            https: false,
            trusted_peer: false,
            client_ip: None,
        }
    }

    /// The head was read whole: its deadline no longer runs.
    async fn early_request_filter(
        &self,
        _session: &mut Session,
        _ctx: &mut RequestCtx,
    ) -> Result<()> {
        edge::head_complete();
        Ok(())
    }

    /// Classify the client, route by Host, then answer here when the vhost says so
    /// (redirect, direct response) or when nothing may be proxied.
    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        ctx.client_ip = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        ctx.trusted_peer = forwarded::is_trusted(&ctx.plan.trusted_proxies, ctx.client_ip);
        let over_tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
        ctx.https =
            over_tls || (ctx.trusted_peer && forwarded::forwarded_https(session.req_header()));

        // A Host that is no host name (`evil.com/.x`, `a?b`) is never routed,
        // redirected to, or forwarded.
        let Some(host) = request_host(session.req_header()) else {
            session.set_keepalive(None);
            let status = StatusCode::BAD_REQUEST;
            send_text(session, ctx, status, status_body(status)).await?;
            return Ok(true);
        };
        let routed = ctx.plan.router.route(&host);
        let Some((index, matched)) = routed else {
            let body = status_body(StatusCode::MISDIRECTED_REQUEST);
            send_text(session, ctx, StatusCode::MISDIRECTED_REQUEST, body).await?;
            return Ok(true);
        };
        ctx.vhost = Some(index);

        if session.req_header().method == Method::CONNECT {
            let mut resp = ResponseHeader::build(StatusCode::METHOD_NOT_ALLOWED, Some(4))?;
            resp.insert_header("Allow", ALLOW_METHODS)?;
            resp.insert_header("Content-Type", TEXT_PLAIN)?;
            session.set_keepalive(None);
            send(
                session,
                ctx,
                resp,
                status_body(StatusCode::METHOD_NOT_ALLOWED),
            )
            .await?;
            return Ok(true);
        }

        let vhost = &ctx.plan.vhosts[index];
        if let Some(cors) = &vhost.cors {
            ctx.cors_origin = cors.allowed_origin(&session.req_header().headers);
        }
        if let Some(redirect) = vhost.redirect.as_ref().filter(|_| !ctx.https) {
            let uri = &session.req_header().uri;
            if redirect.applies_to(uri.path()) {
                // A Host that only matched `*` is not a configured name: never
                // redirect to it (compile requires ssl_host on such vhosts).
                let host = request_host(session.req_header()).unwrap_or_default();
                let own_host = (matched != HostMatch::Default).then_some(host.as_ref());
                let target = uri.path_and_query().map_or("/", |pq| pq.as_str());
                let Some(location) = redirect.location(own_host, target) else {
                    let status = StatusCode::MISDIRECTED_REQUEST;
                    send_text(session, ctx, status, status_body(status)).await?;
                    return Ok(true);
                };
                let status = redirect.status(&session.req_header().method);
                let mut resp = ResponseHeader::build(status, Some(4))?;
                resp.insert_header("Location", location)?;
                vhost.metrics.redirect(status);
                send(session, ctx, resp, Bytes::new()).await?;
                return Ok(true);
            }
        }

        let req = session.req_header();
        match vhost
            .cors
            .as_ref()
            .and_then(|c| c.preflight(&req.method, &req.headers))
        {
            Some(Preflight::Allowed(resp)) => {
                ctx.preflight_answered = true;
                send(session, ctx, *resp, Bytes::new()).await?;
                return Ok(true);
            }
            Some(Preflight::Denied) => {
                // The origin may be allowed while the method or headers are not.
                ctx.cors_origin = None;
                let status = StatusCode::FORBIDDEN;
                send_text(session, ctx, status, status_body(status)).await?;
                return Ok(true);
            }
            None => {}
        }

        if let Route::Respond(direct) = &vhost.route {
            let mut resp = ResponseHeader::build(direct.status, Some(4))?;
            resp.insert_header("Content-Type", direct.content_type.clone())?;
            send(session, ctx, resp, direct.body.clone()).await?;
            return Ok(true);
        }
        Ok(false)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        match ctx.vhost().map(|v| &v.route) {
            Some(Route::Proxy(upstreams)) => upstreams
                .next_peer()
                .ok_or_else(|| Error::explain(ErrorType::ConnectNoRoute, "no upstream available")),
            _ => Err(Error::explain(
                ErrorType::InternalError,
                "request reached upstream_peer without a proxied vhost",
            )),
        }
    }

    /// Forwarding headers, then the vhost's request-header actions.
    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        forwarded::strip_untrusted(
            upstream_request,
            ctx.trusted_peer,
            ctx.plan.underscores_in_headers,
        );
        forwarded::rewrite(upstream_request, ctx.client_ip, ctx.trusted_peer, ctx.https);
        if let Some(v) = ctx.vhost() {
            v.request.apply(upstream_request);
        }
        Ok(())
    }

    /// The vhost's response plan and CORS headers on whatever the upstream sent.
    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.finish_response(upstream_response);
        Ok(())
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
        let vhost = ctx.vhost_name();
        let path = session.req_header().uri.path();
        // The one log line per failure (Pingora's own is suppressed below).
        match code {
            0 => debug!("vhost={vhost} path={path} client gone: {e}"),
            400..=499 => warn!("vhost={vhost} path={path} status={code} reason={e}"),
            _ => error!("vhost={vhost} path={path} status={code} reason={e}"),
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
            if let Err(err) = send_text(session, ctx, status, status_body(status)).await {
                debug!(
                    "vhost={} could not send the error response: {err}",
                    ctx.vhost_name()
                );
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

/// 504 for upstream timeouts, 502 for other upstream failures, 0 when the client is gone.
fn error_status(e: &Error) -> u16 {
    match (e.etype(), e.esource()) {
        (ErrorType::HTTPStatus(code), _) => *code,
        (
            ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout,
            ErrorSource::Upstream,
        ) => 504,
        (_, ErrorSource::Upstream) => 502,
        (
            ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed,
            ErrorSource::Downstream,
        ) => 0,
        (_, ErrorSource::Downstream) => 400,
        _ => 500,
    }
}

async fn send_text(
    session: &mut Session,
    ctx: &RequestCtx,
    status: StatusCode,
    body: Bytes,
) -> Result<()> {
    let mut resp = ResponseHeader::build(status, Some(4))?;
    resp.insert_header("Content-Type", TEXT_PLAIN)?;
    send(session, ctx, resp, body).await
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
