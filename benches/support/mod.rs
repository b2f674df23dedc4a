//! Shared set-up of the policy benchmarks.
#![allow(dead_code)] // each bench uses part of it

use http::HeaderValue;
use pingora_http::ResponseHeader;
use pingora_secgw::config::values::HostPattern;
use pingora_secgw::policy::{Plan, RoutePlan};
use pingora_secgw::routing::Router;

/// A plan with one vhost using the named policy of benches/policies (or, with
/// `None`, the built-in defaults).
pub fn plan(policy: Option<&str>) -> Plan {
    let policy_key = policy.map_or(String::new(), |p| format!(", policy: {p}"));
    compile(&format!(
        "vhosts: [{{name: bench, hosts: [\"*\"], respond: {{}}{policy_key}}}]\n"
    ))
}

/// A plan of gw.yaml's `vhosts` text, with benches/policies.
fn compile(vhosts: &str) -> Plan {
    let dir = tempfile::tempdir().unwrap();
    let policies = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/policies");
    let gw =
        format!("listeners: [{{address: \"127.0.0.1:1\"}}]\npolicy_files: {policies}\n{vhosts}");
    let path = dir.path().join("gw.yaml");
    std::fs::write(&path, gw).unwrap();
    pingora_secgw::policy::load(&path, pingora_secgw::metrics::metrics())
        .unwrap()
        .1
}

/// The vhost's own route, which serves every path of these plans.
pub fn route(plan: &Plan) -> &RoutePlan {
    &plan.vhosts[0].routes[0]
}

/// One vhost with `n` routes: half `prefix: /svcI`, half `exact: /pageI`, and
/// three regexes after them. The paths to look up: an exact match, a prefix
/// match three segments deep, and a path no route takes (every regex runs).
pub fn routes_plan(n: usize) -> (Plan, [&'static str; 3]) {
    let mut vhosts = String::from(
        "vhosts:\n  - name: bench\n    hosts: [\"*\"]\n    respond: {}\n    routes:\n",
    );
    for i in 0..n {
        if i % 2 == 0 {
            vhosts.push_str(&format!("      - prefix: /svc{i}\n"));
        } else {
            vhosts.push_str(&format!("      - exact: /page{i}\n"));
        }
    }
    for r in [r"^/img/.+\.png$", r"^/v[0-9]+/", r"\.php$"] {
        vhosts.push_str(&format!("      - regex: '{r}'\n"));
    }
    let exact = if n > 1 { "/page1" } else { "/page-none" };
    (
        compile(&vhosts),
        [exact, "/svc0/a/b/c", "/docs/guide/intro"],
    )
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
