//! The `ProxyHttp` implementation: route by Host and path, then apply the route's plan.
//!
//! Each phase does one visible thing. The plan is taken once per request (`new_ctx`),
//! so a request sees one whole configuration even if another is swapped in meanwhile.
//!
//! The files: this one holds [`Gateway`] and its hooks; `request.rs` the request's
//! state and the early answers, `answer.rs` the answers the gateway writes itself,
//! `errors.rs` the status and the metric of each failure, `access.rs` the access line.

mod access;
mod answer;
mod errors;
mod request;

pub use answer::Answer;
use answer::Finish;
pub use request::RequestCtx;

use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use http::StatusCode;
use log::{debug, error, warn};
use pingora_core::modules::http::HttpModules;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorSource, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{FailToProxy, ProxyHttp, Session};

use crate::access_log::request_id;
use crate::edge;
use crate::forwarded;
use crate::metrics::{metrics, Rejection};
use crate::policy::{Plan, Target};
use crate::rewrite;
use crate::rewrite::cache::{NonceCache, Scope};
use crate::rewrite::{Cache, Upstream};
use crate::routing::HostMatch;

use errors::{error_status, failure_reason, is_send_timeout, upstream_error_kind};
use request::{refuse_bad_framing, refuse_method};

pub struct Gateway {
    plan: Arc<ArcSwap<Plan>>,
    /// Nonce templates, for whichever plan serves.
    nonce_cache: Arc<NonceCache>,
}

impl Gateway {
    pub fn new(plan: Arc<ArcSwap<Plan>>, nonce_cache: Arc<NonceCache>) -> Gateway {
        Gateway { plan, nonce_cache }
    }
}

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
            backend: 0,
            https: false,
            local_port: 0,
            trusted_peer: false,
            client_ip: None,
            nonce_stream: None,
            request_id: http::HeaderValue::from_static(""),
            upstream_start: None,
            upstream_end: None,
            upstream_addr: None,
            reason: None,
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
            .or_else(|| ctx.route_redirect(req))
            .or_else(|| ctx.answer_preflight(req))
            .or_else(|| ctx.respond_directly())
            .or_else(|| ctx.choose_backend());
        match answer {
            Some(answer) => {
                ctx.reason = Some(answer.reason);
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
        // A retry's time counts too: the upstream time is what the client waited for.
        ctx.upstream_start.get_or_insert_with(Instant::now);
        let pool = match ctx.route().map(|r| &r.target) {
            Some(Target::Proxy {
                upstreams,
                timeouts,
            }) => Some((upstreams.as_ref(), timeouts)),
            Some(Target::Split { split, timeouts }) => {
                split.backend(ctx.backend).map(|pool| (pool, timeouts))
            }
            _ => None,
        };
        match pool {
            Some((upstreams, timeouts)) => upstreams
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
        upstream_request.insert_header(request_id::HEADER, ctx.request_id.clone())?;
        if let Some(r) = ctx.route() {
            if let Some(host) = &r.upstream_host {
                upstream_request.insert_header(http::header::HOST, host.clone())?;
            }
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

    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        _reused: bool,
        peer: &HttpPeer,
        _fd: std::os::unix::io::RawFd,
        _digest: Option<&pingora_core::protocols::Digest>,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.upstream_addr = peer._address.as_inet().copied();
        Ok(())
    }

    /// The upstream's time ends with its head for a response without a body,
    /// else with the body's last byte (or its trailers) below.
    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        _upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.upstream_end = Some(Instant::now());
        Ok(())
    }

    fn upstream_response_trailer_filter(
        &self,
        _session: &mut Session,
        _upstream_trailers: &mut http::HeaderMap,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.upstream_end = Some(Instant::now());
        Ok(())
    }

    fn upstream_response_body_filter(
        &self,
        _session: &mut Session,
        _body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<std::time::Duration>> {
        if end_of_stream {
            ctx.upstream_end = Some(Instant::now());
        }
        Ok(None)
    }

    /// The route's response plan and CORS headers on whatever the upstream sent;
    /// HTML on a `csp_nonce` route gets its nonce here and its body rewritten below.
    async fn response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        // What the upstream said about sharing its page, read before the policy
        // rewrites Cache-Control or strips Set-Cookie.
        let nonce = ctx.route().and_then(|r| r.nonce.as_ref());
        let upstream = nonce
            .filter(|p| p.cache)
            .map(|_| Upstream::of(upstream_response));
        ctx.finish_response(upstream_response);
        let stream = nonce.and_then(|plan| {
            let cache = upstream.map(|upstream| Cache {
                cache: &self.nonce_cache,
                scope: Scope {
                    generation: ctx.plan.generation,
                    bounds: ctx.plan.nonce_cache,
                },
                upstream,
            });
            rewrite::begin(
                plan,
                cache,
                upstream_response,
                session.req_header(),
                ctx.https,
            )
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
        let id = ctx.request_id.to_str().unwrap_or_default();
        // The one log line per failure (Pingora's own is suppressed below).
        match code {
            0 => debug!("vhost={vhost} route={route} path={path} request_id={id} client gone: {e}"),
            400..=499 => warn!(
                "vhost={vhost} route={route} path={path} request_id={id} status={code} reason={e}"
            ),
            _ => error!(
                "vhost={vhost} route={route} path={path} request_id={id} status={code} reason={e}"
            ),
        }
        let reason = if *e.esource() == ErrorSource::Upstream {
            let kind = upstream_error_kind(e);
            ctx.metrics().upstream_error(kind);
            kind.into()
        } else {
            failure_reason(code)
        };
        ctx.reason = Some(reason);
        let already_sent = session
            .as_downstream()
            .response_written()
            .is_some_and(|r| !r.status.is_informational());
        if code > 0 && !already_sent {
            session.set_keepalive(None);
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY);
            if let Err(err) = Answer::text(status, reason).send(session, ctx).await {
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

    /// Counts every request once, whichever way it ended, and logs it.
    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        // A 1xx alone (the client left after `100 Continue`) is no response.
        let status = session
            .as_downstream()
            .response_written()
            .filter(|r| !r.status.is_informational())
            .map_or(0, |r| r.status.as_u16());
        let elapsed = ctx.start.elapsed();
        ctx.metrics().request_done(status, elapsed);
        access::request_done(session, ctx, status, elapsed);
    }
}
