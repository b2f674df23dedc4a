//! What the upstream sees: request-header actions and forwarding headers.

mod common;

use common::*;

fn gateway(up: &Upstream, trusted: &str, extra: &str) -> Gateway {
    Gateway::start(&one_vhost(
        "[app.test]",
        &up.addr.to_string(),
        trusted,
        extra,
    ))
}

#[test]
fn request_header_actions_are_applied_before_the_upstream() {
    let up = Upstream::start("a");
    let extra = r#"
    request_headers:
      set: {X-Env: production}
      add: {X-Tag: [one, two]}
      default: {X-Tenant: none, Accept-Language: en}
      remove: [X-Internal-Token, "X-Debug-*"]
"#;
    let gw = gateway(&up, "[]", extra);
    get(
        &gw,
        "app.test",
        "/echo",
        &[
            ("Proxy", "http://evil.test:3128"),
            ("X-Env", "dev"),
            ("X-Internal-Token", "secret"),
            ("X-Debug-Trace", "1"),
            ("X-Debug-Level", "9"),
            ("Accept-Language", "fr"),
        ],
    );
    let seen = up.last_request();
    assert_eq!(seen.path, "/echo");
    assert!(
        seen.header("proxy").is_empty(),
        "httpoxy: Proxy is stripped by default"
    );
    assert_eq!(seen.header("x-env"), ["production"]);
    assert_eq!(seen.header("x-tag"), ["one", "two"]);
    assert_eq!(seen.header("x-tenant"), ["none"]);
    assert_eq!(seen.header("accept-language"), ["fr"]);
    assert!(seen.header("x-internal-token").is_empty());
    assert!(seen.header("x-debug-trace").is_empty());
    assert!(seen.header("x-debug-level").is_empty());
    assert_eq!(seen.header("host"), ["app.test"]);
}

#[test]
fn untrusted_clients_cannot_forge_forwarding_headers() {
    let up = Upstream::start("a");
    let gw = gateway(&up, "[\"10.0.0.0/8\"]", "");
    get(
        &gw,
        "app.test",
        "/",
        &[
            ("X-Forwarded-For", "6.6.6.6"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "evil.test"),
            ("X-Real-IP", "6.6.6.6"),
            ("Forwarded", "for=6.6.6.6;proto=https"),
        ],
    );
    let seen = up.last_request();
    assert_eq!(seen.header("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(seen.header("x-forwarded-proto"), ["http"]);
    assert!(seen.header("x-forwarded-host").is_empty());
    assert!(seen.header("x-real-ip").is_empty());
    assert!(seen.header("forwarded").is_empty());
}

#[test]
fn trusted_proxies_extend_the_chain_and_keep_their_claims() {
    let up = Upstream::start("a");
    let gw = gateway(&up, "[\"127.0.0.1/32\"]", "");
    get(
        &gw,
        "app.test",
        "/",
        &[
            ("X-Forwarded-For", "203.0.113.7"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "app.test"),
        ],
    );
    let seen = up.last_request();
    assert_eq!(seen.header("x-forwarded-for"), ["203.0.113.7, 127.0.0.1"]);
    assert_eq!(seen.header("x-forwarded-proto"), ["https"]);
    assert_eq!(seen.header("x-forwarded-host"), ["app.test"]);
}
