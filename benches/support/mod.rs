//! Shared set-up of the policy benchmarks.
#![allow(dead_code)] // each bench uses part of it

use http::HeaderValue;
use pingora_http::ResponseHeader;
use pingora_secgw::config::values::HostPattern;
use pingora_secgw::policy::{Plan, VhostPlan};
use pingora_secgw::routing::Router;

/// A plan with one vhost using the named policy of benches/policies (or, with
/// `None`, the built-in defaults).
pub fn plan(policy: Option<&str>) -> Plan {
    let dir = tempfile::tempdir().unwrap();
    let policies = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/policies");
    let policy_key = policy.map_or(String::new(), |p| format!(", policy: {p}"));
    let gw = format!(
        "listeners: [{{address: \"127.0.0.1:1\"}}]\npolicy_files: {policies}\nvhosts: [{{name: bench, hosts: [\"*\"], respond: {{}}{policy_key}}}]\n"
    );
    let path = dir.path().join("gw.yaml");
    std::fs::write(&path, gw).unwrap();
    let loaded = pingora_secgw::config::load(&path).unwrap();
    Plan::compile(&loaded).unwrap()
}

pub fn vhost(plan: &Plan) -> &VhostPlan {
    &plan.vhosts[0]
}

/// What a typical upstream sends: 15 ordinary headers and 3 that the policy
/// manages (HSTS, X-Frame-Options, CSP), as an HTTP/1 response with its case map.
pub fn upstream_response() -> ResponseHeader {
    let mut r = ResponseHeader::build(200, Some(18)).unwrap();
    for (n, v) in [
        ("Content-Type", "text/html; charset=utf-8"),
        ("Content-Length", "5120"),
        ("Date", "Sun, 22 Nov 2026 12:00:00 GMT"),
        ("Cache-Control", "private, max-age=0"),
        ("ETag", "\"5d8c72a5edda8\""),
        ("Last-Modified", "Sat, 21 Nov 2026 10:00:00 GMT"),
        ("Vary", "Accept-Encoding"),
        ("Set-Cookie", "session=abc123; Path=/; HttpOnly; Secure"),
        ("X-Request-ID", "4b1c6a5e-8f1e-4c1a-9b8e-2f7d3c9a1b0e"),
        ("Content-Language", "en"),
        ("Accept-Ranges", "bytes"),
        ("Age", "0"),
        ("Link", "</style.css>; rel=preload; as=style"),
        ("Server", "nginx/1.22.1"),
        ("X-Powered-By", "PHP/8.3"),
        ("Strict-Transport-Security", "max-age=300"),
        ("X-Frame-Options", "SAMEORIGIN"),
        ("Content-Security-Policy", "default-src *"),
    ] {
        r.append_header(n.to_string(), v).unwrap();
    }
    r
}

pub fn cors_origin() -> HeaderValue {
    HeaderValue::from_static("https://app.example.com")
}

/// A router with `n` vhosts, half exact names and half wildcards. The hosts to look
/// up: an exact match, and a name under the first wildcard (with `n == 1` there is
/// none, so that lookup walks every label and misses: the worst case).
pub fn router(n: usize) -> (Router, [&'static str; 2]) {
    let mut router = Router::default();
    for i in 0..n {
        let pattern = if i % 2 == 0 {
            format!("site{i}.example.com")
        } else {
            format!("*.site{i}.example.com")
        };
        router
            .insert(&HostPattern::try_from(pattern).unwrap(), i)
            .unwrap();
    }
    (router, ["site0.example.com", "www.site1.example.com"])
}
