//! CORS at the edge: preflights answered by the gateway, wildcard subdomains by whole
//! labels, credentials never with a reflected wildcard, Vary merged.

mod common;

use std::process::Command;

use common::*;

const CORS_RESPONSE_HEADERS: [&str; 6] = [
    "access-control-allow-origin",
    "access-control-allow-credentials",
    "access-control-allow-methods",
    "access-control-allow-headers",
    "access-control-expose-headers",
    "access-control-max-age",
];

fn gateway(up: &Upstream) -> Gateway {
    Gateway::start(&format!(
        r#"
listeners: [{{address: "{{listen}}"}}]
admin: {{address: "{{admin}}"}}
vhosts:
  # The seed's "API Server" scenario.
  - name: api
    hosts: [api.test]
    upstreams: ["{up}"]
    security:
      cors_enabled: true
      allowed_origins: ["https://api.example.com"]
      allowed_methods: [GET, POST, PUT, DELETE]
      allowed_headers: [Authorization, Content-Type]
      expose_headers: [X-Request-ID]
      allow_credentials: true
  # The seed's "WebSocket Server" scenario, with subdomains.
  - name: ws
    hosts: [ws.test]
    upstreams: ["{up}"]
    security:
      cors_enabled: true
      allowed_origins: ["https://example.com", "https://*.example.com"]
      csp_policy: {{default-src: ["'self'"], connect-src: ["'self'", "wss://ws.example.com"]}}
  # Credentials with `*` headers and methods: echoed, never wildcards.
  - name: echo
    hosts: [echo.test]
    upstreams: ["{up}"]
    security:
      cors_enabled: true
      allowed_origins: ["https://app.example.com"]
      allowed_methods: ["*"]
      allowed_headers: ["*"]
      allow_credentials: true
  - name: public
    hosts: [public.test]
    upstreams: ["{up}"]
    security:
      cors_enabled: true
      allowed_origins: ["*"]
      expose_headers: [X-Request-ID]
  # The seed's complete configuration.
  - name: seed
    hosts: [seed.test]
    upstreams: ["{up}"]
    security:
      cors_enabled: true
      allowed_origins: ["https://example.com"]
      allowed_methods: [GET, POST, PUT, DELETE]
      allowed_headers: ["*"]
      expose_headers: [X-Custom-Header]
      max_age: 3600
      allow_credentials: true
  - name: direct
    hosts: [direct.test]
    respond: {{status: 200, body: "ok\n"}}
    security: {{cors_enabled: true, allowed_origins: ["https://app.example.com"]}}
  - name: off
    hosts: [off.test]
    upstreams: ["{up}"]
"#,
        up = up.addr
    ))
}

fn preflight(gw: &Gateway, host: &str, origin: &str, method: &str, headers: Option<&str>) -> Reply {
    let mut extra = vec![
        ("Origin", origin),
        ("Access-Control-Request-Method", method),
    ];
    if let Some(h) = headers {
        extra.push(("Access-Control-Request-Headers", h));
    }
    request(gw, "OPTIONS", host, "/api/v1/resource", &extra)
}

fn assert_no_cors(r: &Reply) {
    for h in CORS_RESPONSE_HEADERS {
        assert!(!r.has(h), "{h} must be absent: {:?}", r.all(h));
    }
}

#[test]
fn an_allowed_preflight_is_answered_by_the_gateway() {
    let up = Upstream::start("a");
    let gw = gateway(&up);
    let r = preflight(
        &gw,
        "api.test",
        "https://api.example.com",
        "PUT",
        Some("authorization, content-type"),
    );
    assert_eq!(r.status, 204);
    assert_eq!(r.body, "");
    assert_eq!(
        r.one("access-control-allow-origin"),
        "https://api.example.com"
    );
    assert_eq!(r.one("access-control-allow-credentials"), "true");
    assert_eq!(
        r.one("access-control-allow-methods"),
        "GET, POST, PUT, DELETE"
    );
    assert_eq!(
        r.one("access-control-allow-headers"),
        "Authorization, Content-Type"
    );
    assert_eq!(r.one("access-control-max-age"), "600");
    assert_eq!(r.one("vary"), "Origin");
    // Meaningless to browsers on a preflight, asked for by the Gateway API's
    // conformance suite (HTTPRouteCORS).
    assert_eq!(r.one("access-control-expose-headers"), "X-Request-ID");
    assert_default_headers(&r, false);
    assert_eq!(up.hits(), 0, "a preflight never reaches the upstream");
}

#[test]
fn disallowed_preflights_get_403_with_the_policy_and_no_cors_headers() {
    let up = Upstream::start("a");
    let gw = gateway(&up);
    for (origin, method, headers) in [
        ("https://evil.test", "POST", None),
        ("https://api.example.com", "PATCH", None),
        (
            "https://api.example.com",
            "POST",
            Some("authorization, x-evil"),
        ),
        ("null", "GET", None),
    ] {
        let r = preflight(&gw, "api.test", origin, method, headers);
        assert_eq!(r.status, 403, "{origin} {method} {headers:?}");
        assert_eq!(r.body, "403 Forbidden\n");
        assert_no_cors(&r);
        assert_eq!(r.one("vary"), "Origin");
        assert_default_headers(&r, false);
    }
    assert_eq!(up.hits(), 0);
    let (_, metrics) = gw.admin_get("/metrics");
    assert!(metrics.contains("secgw_cors_preflights_total{result=\"denied\",vhost=\"api\"} 4\n"));
    assert!(metrics.contains("secgw_cors_preflights_total{result=\"allowed\",vhost=\"api\"} 0\n"));
}

#[test]
fn options_that_are_not_preflights_are_proxied() {
    let up = Upstream::start("a");
    let gw = gateway(&up);
    let r = request(&gw, "OPTIONS", "api.test", "/", &[]);
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "hello from upstream a\n")
    );
    let r = request(
        &gw,
        "OPTIONS",
        "api.test",
        "/",
        &[("Access-Control-Request-Method", "POST")],
    );
    assert_eq!(r.status, 200);
    let r = request(
        &gw,
        "OPTIONS",
        "api.test",
        "/",
        &[("Origin", "https://api.example.com")],
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.one("access-control-allow-origin"),
        "https://api.example.com"
    );
    assert_eq!(up.hits(), 3);
}

#[test]
fn subdomain_wildcards_match_whole_labels_only() {
    let up = Upstream::start("a");
    let gw = gateway(&up);
    for origin in [
        "https://example.com",
        "https://a.example.com",
        "https://a.b.example.com",
    ] {
        let r = preflight(&gw, "ws.test", origin, "GET", None);
        assert_eq!(r.status, 204, "{origin}");
        assert_eq!(r.one("access-control-allow-origin"), origin);
        let r = get(&gw, "ws.test", "/", &[("Origin", origin)]);
        assert_eq!(r.one("access-control-allow-origin"), origin);
    }
    for origin in [
        "https://evil-example.com",
        "https://example.com.evil.net",
        "http://a.example.com",
        "https://a.example.com:8443",
        "https://examplexcom",
    ] {
        let r = preflight(&gw, "ws.test", origin, "GET", None);
        assert_eq!(r.status, 403, "{origin}");
        assert_no_cors(&r);
        let r = get(&gw, "ws.test", "/", &[("Origin", origin)]);
        assert_eq!(r.status, 200);
        assert_no_cors(&r);
        assert_eq!(r.one("vary"), "Origin");
    }
    let r = get(&gw, "ws.test", "/", &[("Origin", "https://a.example.com")]);
    assert_eq!(
        r.one("content-security-policy")
            .split("; ")
            .find(|d| d.starts_with("connect-src")),
        Some("connect-src 'self' wss://ws.example.com")
    );
}

#[test]
fn with_credentials_wildcard_headers_and_methods_are_echoed() {
    let up = Upstream::start("a");
    let gw = gateway(&up);
    let r = preflight(
        &gw,
        "echo.test",
        "https://app.example.com",
        "PATCH",
        Some("X-Foo, X-Bar"),
    );
    assert_eq!(r.status, 204);
    assert_eq!(
        r.one("access-control-allow-origin"),
        "https://app.example.com"
    );
    assert_eq!(r.one("access-control-allow-credentials"), "true");
    assert_eq!(r.one("access-control-allow-methods"), "PATCH");
    assert_eq!(r.one("access-control-allow-headers"), "X-Foo, X-Bar");
    assert_eq!(
        r.one("vary"),
        "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
    );
    // The api vhost lists its methods and headers: nothing is echoed there.
    let r = preflight(
        &gw,
        "api.test",
        "https://api.example.com",
        "POST",
        Some("content-type"),
    );
    assert_eq!(r.one("vary"), "Origin");
}

#[test]
fn actual_responses_get_the_gateways_cors_headers_instead_of_the_upstreams() {
    let up = Upstream::start("a");
    let gw = gateway(&up);
    let r = get(
        &gw,
        "api.test",
        "/cors",
        &[("Origin", "https://api.example.com")],
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.all("access-control-allow-origin"),
        ["https://api.example.com"]
    );
    assert_eq!(r.all("access-control-allow-credentials"), ["true"]);
    assert_eq!(r.all("access-control-expose-headers"), ["X-Request-ID"]);
    assert_eq!(r.all("vary"), ["Accept-Encoding, Origin"]);
    assert_default_headers(&r, false);

    for extra in [&[("Origin", "https://evil.test")][..], &[]] {
        let r = get(&gw, "api.test", "/cors", extra);
        assert_no_cors(&r);
        assert_eq!(r.all("vary"), ["Accept-Encoding, Origin"]);
    }

    // `*` without credentials: everyone gets `*`, so nothing varies by Origin.
    let r = get(
        &gw,
        "public.test",
        "/cors",
        &[("Origin", "https://anyone.test")],
    );
    assert_eq!(r.all("access-control-allow-origin"), ["*"]);
    assert!(!r.has("access-control-allow-credentials"));
    assert_eq!(r.all("access-control-expose-headers"), ["X-Request-ID"]);
    assert_eq!(r.all("vary"), ["Accept-Encoding"]);

    // Without gateway CORS the upstream's own headers are left alone.
    let r = get(&gw, "off.test", "/cors", &[("Origin", "https://evil.test")]);
    assert_eq!(
        r.all("access-control-allow-origin"),
        ["https://upstream-choice.test"]
    );
    assert_eq!(r.all("access-control-allow-credentials"), ["true"]);
    assert_eq!(r.all("vary"), ["Accept-Encoding"]);

    // The gateway's own responses carry CORS too, so browsers can read them.
    let r = get(
        &gw,
        "direct.test",
        "/",
        &[("Origin", "https://app.example.com")],
    );
    assert_eq!(
        r.all("access-control-allow-origin"),
        ["https://app.example.com"]
    );
    assert_eq!(r.all("vary"), ["Origin"]);
}

/// The Observatory's "universal access" probe: an OPTIONS from a foreign origin must
/// never get that origin echoed, least of all with credentials.
#[test]
fn a_foreign_origin_is_never_echoed() {
    let up = Upstream::start("a");
    let gw = gateway(&up);
    for host in [
        "api.test",
        "ws.test",
        "echo.test",
        "public.test",
        "seed.test",
        "direct.test",
    ] {
        for method in ["OPTIONS", "GET"] {
            let r = request(
                &gw,
                method,
                host,
                "/",
                &[
                    ("Origin", "https://evil.test"),
                    ("Access-Control-Request-Method", "GET"),
                ],
            );
            assert!(
                !r.all("access-control-allow-origin")
                    .contains(&"https://evil.test"),
                "{host} {method} echoed the foreign origin"
            );
            if r.has("access-control-allow-credentials") {
                panic!("{host} {method}: credentials allowed for a foreign origin");
            }
        }
    }
}

/// The seed's preflight curl, run for real against the seed's configuration: the
/// answer must be the one the CORS page documents.
#[test]
fn the_seed_preflight_curl_gives_the_documented_answer() {
    let up = Upstream::start("a");
    let gw = gateway(&up);
    let out = Command::new("curl")
        .args(["-sI", "-X", "OPTIONS", &gw.url("/api/v1/resource")])
        .args(["-H", "Host: seed.test"])
        .args(["-H", "Origin: https://example.com"])
        .args(["-H", "Access-Control-Request-Method: POST"])
        .output()
        .expect("curl is needed: run scripts/deps.sh test");
    let shown: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim_end().to_string())
        .filter(|l| !l.is_empty() && !l.starts_with("Date:"))
        .map(|l| common::docs::any_request_id(&l).to_string())
        .collect();
    let documented: Vec<String> = common::docs::shown(
        "docs/configuration/cors.md",
        "<!-- seed-preflight-answer -->\n```\n",
        "```",
    )
    .lines()
    .map(|l| common::docs::any_request_id(l).to_string())
    .collect();
    assert_eq!(shown, documented);
    assert_eq!(up.hits(), 0);
}
