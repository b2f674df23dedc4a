//! ssl_redirect: statuses, exemptions, ssl_host, open-redirect attempts and loops.

mod common;

use common::*;

fn redirecting(up: &Upstream, trusted: &str, security: &str) -> Gateway {
    let extra = format!("    security:\n      ssl_redirect: true\n{security}");
    Gateway::start(&one_vhost(
        "[app.example.com, \"*.app.example.com\"]",
        &up.addr.to_string(),
        trusted,
        &extra,
    ))
}

#[test]
fn plain_requests_are_redirected_with_the_policy_and_never_proxied() {
    let up = Upstream::start("a");
    let gw = redirecting(&up, "[]", "");
    let r = get(&gw, "app.example.com:8080", "/a/b?c=1&d=%20", &[]);
    assert_eq!(r.status, 301);
    assert_eq!(r.one("location"), "https://app.example.com/a/b?c=1&d=%20");
    assert_eq!(r.one("content-length"), "0");
    assert_default_headers(&r, false);

    let r = get(&gw, "Deep.App.Example.com", "/", &[]);
    assert_eq!(r.one("location"), "https://deep.app.example.com/");
    for (method, status) in [("HEAD", 301), ("POST", 308), ("PUT", 308), ("DELETE", 308)] {
        assert_eq!(
            request(&gw, method, "app.example.com", "/x", &[]).status,
            status,
            "{method}"
        );
    }
    assert_eq!(up.hits(), 0);
}

#[test]
fn temporary_redirects_keep_the_method_for_unsafe_requests() {
    let up = Upstream::start("a");
    let gw = redirecting(&up, "[]", "      ssl_permanent: false");
    assert_eq!(get(&gw, "app.example.com", "/", &[]).status, 302);
    assert_eq!(
        request(&gw, "POST", "app.example.com", "/", &[]).status,
        307
    );
}

#[test]
fn exempt_paths_are_proxied() {
    let up = Upstream::start("a");
    let gw = redirecting(
        &up,
        "[]",
        "      ssl_redirect_exempt: [\"/.well-known/acme-challenge/\", \"^/health(z)?$\"]",
    );
    let r = get(
        &gw,
        "app.example.com",
        "/.well-known/acme-challenge/token123",
        &[],
    );
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "hello from upstream a\n")
    );
    assert_eq!(get(&gw, "app.example.com", "/healthz", &[]).status, 200);
    assert_eq!(
        get(&gw, "app.example.com", "/healthz/deep", &[]).status,
        301
    );
    assert_eq!(up.hits(), 2);
}

#[test]
fn the_acme_challenge_is_exempt_by_default() {
    let up = Upstream::start("a");
    let gw = redirecting(&up, "[]", "");
    assert_eq!(
        get(&gw, "app.example.com", "/.well-known/acme-challenge/t", &[]).status,
        200
    );
}

#[test]
fn ssl_host_fixes_the_destination() {
    let up = Upstream::start("a");
    let gw = redirecting(&up, "[]", "      ssl_host: secure.example.com");
    let r = get(&gw, "x.app.example.com", "/p?q", &[]);
    assert_eq!(r.one("location"), "https://secure.example.com/p?q");
}

#[test]
fn a_forged_host_cannot_choose_the_redirect_target() {
    let up = Upstream::start("a");
    let gw = redirecting(&up, "[]", "");
    for host in [
        "evil.com",
        "app.example.com.evil.com",
        "evilapp.example.com",
    ] {
        let r = get(&gw, host, "/", &[]);
        assert_eq!(r.status, 421, "{host}");
        assert!(!r.has("location"));
    }
    // A path that looks like a network-path reference does not change the
    // destination either: it is normalized like every path.
    let r = get(&gw, "app.example.com", "//evil.com/x", &[]);
    assert_eq!(r.one("location"), "https://app.example.com/evil.com/x");

    // A catch-all vhost redirects only to its ssl_host, whatever the Host says.
    let gw = Gateway::start(&format!(
        r#"
listeners: [{{address: "{{listen}}"}}]
vhosts:
  - name: any
    hosts: ["*"]
    upstreams: ["{}"]
    security: {{ssl_redirect: true, ssl_host: www.example.com}}
"#,
        up.addr
    ));
    let r = get(&gw, "evil.com", "/login", &[]);
    assert_eq!(r.one("location"), "https://www.example.com/login");
}

#[test]
fn https_from_a_trusted_proxy_is_not_redirected_so_there_is_no_loop() {
    let up = Upstream::start("a");
    let gw = redirecting(&up, "[\"127.0.0.0/8\"]", "");
    let r = get(
        &gw,
        "app.example.com",
        "/",
        &[("X-Forwarded-Proto", "https")],
    );
    assert_eq!(r.status, 200);
    assert_default_headers(&r, true);
    // Only the first value counts, as with Django's SECURE_PROXY_SSL_HEADER.
    let r = get(
        &gw,
        "app.example.com",
        "/",
        &[("X-Forwarded-Proto", "http, https")],
    );
    assert_eq!(r.status, 301);
    let r = get(&gw, "app.example.com", "/", &[]);
    assert_eq!(r.status, 301);
}

#[test]
fn https_claimed_by_an_untrusted_client_is_still_redirected() {
    let up = Upstream::start("a");
    let gw = redirecting(&up, "[\"10.0.0.0/8\"]", "");
    let r = get(
        &gw,
        "app.example.com",
        "/",
        &[("X-Forwarded-Proto", "https")],
    );
    assert_eq!(r.status, 301);
    assert!(!r.has("strict-transport-security"));
    assert_eq!(up.hits(), 0);
}
