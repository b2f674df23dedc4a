//! The end of a request: its upstream time in `secgw_upstream_duration_seconds`
//! and its access line, when its route logs. The line is formatted here, on
//! the request's thread, and handed to the sink's writer; nothing waits for it.

use std::time::Duration;

use http::Version;
use pingora_proxy::Session;

use crate::access_log::line::Entry;
use crate::forwarded;

use super::request::RequestCtx;

/// Counts the upstream's time and writes the access line; `status` 0 means
/// no response was sent.
pub(super) fn request_done(session: &Session, ctx: &RequestCtx, status: u16, elapsed: Duration) {
    let upstream = ctx
        .upstream_start
        .map(|start| ctx.upstream_end.unwrap_or_else(std::time::Instant::now) - start);
    if let Some(taken) = upstream {
        ctx.metrics().upstream_done(taken);
    }
    let Some(plan) = ctx.log_plan() else {
        return;
    };
    let req = session.req_header();
    let (path, query) = logged_path(ctx, req, plan.log_query);
    let (vhost, route) = ctx.labels();
    let client = forwarded::client_address(req, ctx.client_ip, &ctx.plan.trusted_proxies);
    let digest = session.digest();
    let tls = digest.and_then(|d| d.ssl_digest.as_ref());
    let header = |name| req.headers.get(name).map(|v| v.as_bytes());
    let now = crate::access_log::unix_now();
    let downstream = session.as_downstream();
    let entry = Entry {
        time_ms: i64::try_from(now.saturating_sub(elapsed).as_millis()).unwrap_or(0),
        vhost,
        route,
        method: req.method.as_str(),
        path,
        query,
        version: match req.version {
            Version::HTTP_10 => "HTTP/1.0",
            Version::HTTP_2 => "HTTP/2.0",
            _ => "HTTP/1.1",
        },
        status,
        bytes_sent: downstream.body_bytes_sent() as u64,
        duration_ms: elapsed.as_secs_f64() * 1000.0,
        upstream_addr: ctx.upstream_addr,
        upstream_duration_ms: upstream.map(|d| d.as_secs_f64() * 1000.0),
        protocol: if downstream.is_http2() { "h2" } else { "h1" },
        tls_version: tls.map(|t| tls_name(&t.version)),
        client,
        user_agent: header(http::header::USER_AGENT),
        referer: header(http::header::REFERER),
        request_id: ctx.request_id.to_str().unwrap_or_default(),
        reason: ctx.reason,
    };
    plan.write(&entry);
}

/// The path as routed (normalized; before routing normalized it, the
/// request's own bytes), and `?query` when `log_query`.
fn logged_path<'r>(
    ctx: &'r RequestCtx,
    req: &'r pingora_http::RequestHeader,
    log_query: bool,
) -> (&'r [u8], &'r [u8]) {
    let raw = req.raw_path();
    let query_at = raw.iter().position(|&b| b == b'?').unwrap_or(raw.len());
    let path = match &ctx.normalized_path {
        Some(p) => p.as_bytes(),
        None => &raw[..query_at],
    };
    (path, if log_query { &raw[query_at..] } else { b"" })
}

/// nginx's `$ssl_protocol` spelling (`TLSv1.3`) for rustls's (`TLSv1_3`).
fn tls_name(version: &str) -> &str {
    match version {
        "TLSv1_3" => "TLSv1.3",
        "TLSv1_2" => "TLSv1.2",
        other => other,
    }
}
