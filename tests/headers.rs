//! Security options, header actions and upstream conflicts, through the real gateway.

mod common;

use common::*;

fn proxied(upstream: &Upstream, vhost_extra: &str) -> String {
    one_vhost(
        "[app.test]",
        &upstream.addr.to_string(),
        "[\"127.0.0.1\"]",
        vhost_extra,
    )
}

const HTTPS: (&str, &str) = ("X-Forwarded-Proto", "https");

#[test]
fn default_policy_is_applied_exactly_once_to_proxied_responses() {
    let up = Upstream::start("a");
    let gw = Gateway::start(&proxied(&up, ""));
    let r = get(&gw, "app.test", "/", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "hello from upstream a\n");
    assert_default_headers(&r, false);

    let r = get(&gw, "app.test", "/", &[HTTPS]);
    assert_default_headers(&r, true);
}

#[test]
fn hsts_needs_https_from_a_trusted_proxy() {
    let up = Upstream::start("a");
    let untrusting = one_vhost("[app.test]", &up.addr.to_string(), "[]", "");
    let gw = Gateway::start(&untrusting);
    let r = get(&gw, "app.test", "/", &[HTTPS]);
    assert!(!r.has("strict-transport-security"), "{:?}", r.headers);
    // The untrusted claim is also not passed on to the upstream.
    assert_eq!(up.last_request().header("x-forwarded-proto"), ["http"]);
}

#[test]
fn every_security_option_has_its_exact_header_value() {
    let up = Upstream::start("a");
    let vhost = r#"
    security:
      csp_enabled: true
      csp_policy:
        default-src: ["'self'"]
        script-src: ["'self'", "'unsafe-inline'"]
        style-src: ["'self'", "https://fonts.googleapis.com"]
        img-src: ["'self'", "data:", "https:"]
        connect-src: ["'self'", "https://api.example.com"]
      hsts_enabled: true
      hsts_max_age: 31536000
      hsts_include_subdomains: true
      hsts_preload: true
      xss_protection: true
      xss_mode: block
      frame_options: DENY
      content_type_options: true
      referrer_policy: strict-origin-when-cross-origin
      cache_control: "no-store, no-cache"
      clear_site_data: [cache, cookies]
      cross_origin_opener_policy: same-origin
      cross_origin_embedder_policy: require-corp
      cross_origin_resource_policy: same-origin
      permissions_policy:
        camera: "'none'"
        microphone: "'self'"
        geolocation: ["'self'", "https://maps.example.com"]
        payment: "'self'"
      expect_ct: true
      expect_ct_max_age: 86400
      expect_ct_enforce: true
      expect_ct_report_uri: https://example.com
      trusted_types: true
      trusted_types_policies: [default, escape]
      hide_server: true
"#;
    let gw = Gateway::start(&proxied(&up, vhost));
    let r = get(&gw, "app.test", "/conflict", &[HTTPS]);
    assert_eq!(r.status, 200);
    // The seed's csp_policy replaces the default directives it names; the defaults it
    // does not name (base-uri, object-src, ...) stay, in their order.
    assert_eq!(
        r.one("content-security-policy"),
        "default-src 'self'; base-uri 'self'; font-src 'self' https: data:; form-action 'self'; \
         frame-ancestors 'none'; img-src 'self' data: https:; object-src 'none'; script-src 'self' 'unsafe-inline'; \
         script-src-attr 'none'; style-src 'self' https://fonts.googleapis.com; upgrade-insecure-requests; \
         connect-src 'self' https://api.example.com; require-trusted-types-for 'script'; trusted-types default escape"
    );
    assert_eq!(
        r.one("strict-transport-security"),
        "max-age=31536000; includeSubDomains; preload"
    );
    assert_eq!(r.one("x-xss-protection"), "1; mode=block");
    assert_eq!(r.one("x-frame-options"), "DENY");
    assert_eq!(r.one("x-content-type-options"), "nosniff");
    assert_eq!(r.one("referrer-policy"), "strict-origin-when-cross-origin");
    assert_eq!(r.one("cache-control"), "no-store, no-cache");
    assert_eq!(r.one("clear-site-data"), "\"cache\", \"cookies\"");
    assert_eq!(r.one("cross-origin-opener-policy"), "same-origin");
    assert_eq!(r.one("cross-origin-embedder-policy"), "require-corp");
    assert_eq!(r.one("cross-origin-resource-policy"), "same-origin");
    // Features merge over the defaults' list, keeping its order; usb=() is inherited.
    assert_eq!(
        r.one("permissions-policy"),
        r#"camera=(), geolocation=(self "https://maps.example.com"), microphone=(self), payment=(self), usb=()"#
    );
    assert_eq!(
        r.one("expect-ct"),
        "max-age=86400, enforce, report-uri=\"https://example.com\""
    );
    assert!(!r.has("server"));
}

#[test]
fn allow_from_report_only_filter_mode_and_switching_headers_off() {
    let up = Upstream::start("a");
    let vhost = r#"
    security:
      csp_report_only: true
      csp_policy: {default-src: ["'self'"], frame-ancestors: null, upgrade-insecure-requests: null,
                   base-uri: null, font-src: null, form-action: null, img-src: null, object-src: null,
                   script-src: null, script-src-attr: null, style-src: null}
      xss_protection: true
      xss_mode: filter
      frame_options: SAMEORIGIN
      referrer_policy: false
      cross_origin_opener_policy: false
      cross_origin_resource_policy: false
      permissions_policy: false
      content_type_options: false
      hsts_enabled: false
"#;
    let gw = Gateway::start(&proxied(&up, vhost));
    let r = get(&gw, "app.test", "/", &[HTTPS]);
    assert_eq!(
        r.one("content-security-policy-report-only"),
        "default-src 'self'"
    );
    assert!(!r.has("content-security-policy"));
    assert_eq!(r.one("x-xss-protection"), "1");
    assert_eq!(r.one("x-frame-options"), "SAMEORIGIN");
    for gone in [
        "referrer-policy",
        "cross-origin-opener-policy",
        "cross-origin-resource-policy",
        "permissions-policy",
        "x-content-type-options",
        "strict-transport-security",
    ] {
        assert!(!r.has(gone), "{gone} should be off: {:?}", r.all(gone));
    }

    let gw2 = Gateway::start(&proxied(
        &up,
        "    security:\n      frame_options_allow_from: https://trusted.com\n",
    ));
    let r = get(&gw2, "app.test", "/", &[]);
    assert!(
        !r.has("x-frame-options"),
        "ALLOW-FROM is dead; CSP replaces it"
    );
    assert!(r
        .one("content-security-policy")
        .contains("; frame-ancestors https://trusted.com;"));
}

#[test]
fn upstream_conflicts_override_by_default_and_strip_leaks() {
    let up = Upstream::start("a");
    let gw = Gateway::start(&proxied(&up, ""));
    let r = get(&gw, "app.test", "/conflict", &[HTTPS]);
    assert_eq!(r.all("strict-transport-security"), [DEFAULT_HSTS]);
    assert_eq!(r.all("x-frame-options"), ["DENY"]);
    assert_eq!(
        r.all("referrer-policy"),
        ["strict-origin-when-cross-origin"]
    );
    assert_eq!(r.all("content-security-policy").len(), 1);
    assert!(!r.has("server"));
    assert!(!r.has("x-powered-by"));
    assert!(!r.has("x-aspnet-version"));
    // Headers the policy does not manage pass through untouched.
    assert_eq!(r.all("cache-control"), ["public, max-age=60"]);
    assert_eq!(r.all("vary"), ["Accept-Encoding"]);
    assert_eq!(r.all("x-upstream"), ["a"]);
}

#[test]
fn conflict_modes_keep_and_append_are_per_header() {
    let up = Upstream::start("a");
    let vhost = r#"
    security:
      hide_server: false
    headers:
      conflict:
        Strict-Transport-Security: keep
        X-Frame-Options: keep
        Content-Security-Policy: append
"#;
    let gw = Gateway::start(&proxied(&up, vhost));
    let r = get(&gw, "app.test", "/conflict", &[HTTPS]);
    assert_eq!(r.all("strict-transport-security"), ["max-age=1"]);
    // Keep never passes on a duplicate: only the upstream's first copy survives.
    assert_eq!(r.all("x-frame-options"), ["SAMEORIGIN"]);
    assert_eq!(
        r.all("content-security-policy"),
        ["img-src *", common::DEFAULT_HEADERS_HTTP[0].1]
    );
    assert_eq!(
        r.all("referrer-policy"),
        ["strict-origin-when-cross-origin"]
    );
    assert_eq!(r.all("server"), ["upstream/1.0"]);

    // Without a conflict from the upstream, managed headers are injected as usual.
    let r = get(&gw, "app.test", "/", &[HTTPS]);
    assert_eq!(r.all("strict-transport-security"), [DEFAULT_HSTS]);
    assert_eq!(r.all("x-frame-options"), ["DENY"]);

    let gw = Gateway::start(&proxied(
        &up,
        "    headers:\n      conflict: {\"*\": keep}\n",
    ));
    let r = get(&gw, "app.test", "/conflict", &[HTTPS]);
    assert_eq!(r.all("strict-transport-security"), ["max-age=1"]);
    assert_eq!(r.all("referrer-policy"), ["unsafe-url"]);
    assert_eq!(r.all("content-security-policy"), ["img-src *"]);
}

#[test]
fn header_actions_set_add_default_remove() {
    let up = Upstream::start("a");
    let vhost = r#"
    headers:
      set: {X-Robots-Tag: noindex, Cache-Control: "no-store"}
      add: {Link: ["</a.css>; rel=preload", "</b.js>; rel=preload"]}
      default: {X-Default-Only: fallback, Vary: Origin}
      remove: [X-Upstream, "X-Asp*"]
"#;
    let gw = Gateway::start(&proxied(&up, vhost));
    let r = get(&gw, "app.test", "/conflict", &[]);
    assert_eq!(r.all("x-robots-tag"), ["noindex"]);
    // `set` manages the header: the upstream's copy is overridden.
    assert_eq!(r.all("cache-control"), ["no-store"]);
    assert_eq!(
        r.all("link"),
        ["</a.css>; rel=preload", "</b.js>; rel=preload"]
    );
    assert_eq!(r.all("x-default-only"), ["fallback"]);
    // The upstream sent a Vary, so the default stays out.
    assert_eq!(r.all("vary"), ["Accept-Encoding"]);
    assert!(!r.has("x-upstream"));
    assert!(!r.has("x-aspnet-version"));
}

#[test]
fn direct_responses_carry_the_policy() {
    let gw = Gateway::start(
        r#"
listeners: [{address: "{listen}"}]
vhosts:
  - name: teapot
    hosts: [tea.test]
    respond: {status: 418, body: "short and stout\n", content_type: "text/x-tea"}
    headers:
      set: {X-Teapot: "yes"}
"#,
    );
    let r = get(&gw, "tea.test", "/anything", &[]);
    assert_eq!(r.status, 418);
    assert_eq!(r.body, "short and stout\n");
    assert_eq!(r.one("content-type"), "text/x-tea");
    assert_eq!(r.one("content-length"), "16");
    assert_eq!(r.one("x-teapot"), "yes");
    assert_default_headers(&r, false);

    let r = request(&gw, "HEAD", "tea.test", "/", &[]);
    assert_eq!(r.status, 418);
    assert_eq!(r.body, "");
    assert_eq!(r.one("content-length"), "16");
    assert_eq!(r.one("x-frame-options"), "DENY");
}

#[test]
fn named_policies_extend_and_inline_keys_win() {
    let up = Upstream::start("a");
    let files = [
        (
            "policies/base.yaml",
            r#"
policies:
  base:
    security:
      hsts_max_age: 100
      referrer_policy: no-referrer
      frame_options: DENY
    headers:
      set: {X-Layer: base}
      remove: [X-Upstream]
"#,
        ),
        (
            "policies/child.yaml",
            r#"
policies:
  child:
    extends: base
    security:
      referrer_policy: same-origin
    headers:
      set: {X-Layer: child}
"#,
        ),
    ];
    let yaml = format!(
        r#"
listeners: [{{address: "{{listen}}"}}]
trusted_proxies: ["127.0.0.1"]
policy_files: "policies/*.yaml"
vhosts:
  - name: app
    hosts: [app.test]
    upstreams: ["{}"]
    policy: child
    security:
      frame_options: SAMEORIGIN
"#,
        up.addr
    );
    let gw = Gateway::start_with_files(&yaml, &files);
    let r = get(&gw, "app.test", "/", &[HTTPS]);
    assert_eq!(
        r.one("strict-transport-security"),
        "max-age=100; includeSubDomains"
    );
    assert_eq!(r.one("referrer-policy"), "same-origin");
    assert_eq!(r.one("x-frame-options"), "SAMEORIGIN");
    assert_eq!(r.one("x-layer"), "child");
    assert!(!r.has("x-upstream"));
    assert_eq!(r.one("x-content-type-options"), "nosniff");
}

/// `csp_use_defaults: false` and `permissions_policy_use_defaults: false` send
/// the policy's own directives and features only; a route turns them back on.
#[test]
fn use_defaults_false_sends_only_the_policys_own_directives() {
    let up = Upstream::start("a");
    let vhost = r#"
    security:
      csp_use_defaults: false
      permissions_policy_use_defaults: false
      csp_policy: {default-src: ["'self'"], object-src: ["'none'"]}
      permissions_policy: {usb: "'self'"}
    routes:
      - prefix: /legacy
        security: {csp_use_defaults: true}
"#;
    let gw = Gateway::start(&proxied(&up, vhost));
    let r = get(&gw, "app.test", "/", &[HTTPS]);
    assert_eq!(
        r.one("content-security-policy"),
        "default-src 'self'; object-src 'none'"
    );
    assert_eq!(r.one("permissions-policy"), "usb=(self)");
    let r = get(&gw, "app.test", "/legacy/x", &[HTTPS]);
    assert_eq!(
        r.one("content-security-policy"),
        "default-src 'self'; base-uri 'self'; font-src 'self' https: data:; \
         form-action 'self'; frame-ancestors 'none'; img-src 'self' data:; object-src 'none'; \
         script-src 'self'; script-src-attr 'none'; style-src 'self' https: 'unsafe-inline'; \
         upgrade-insecure-requests"
    );
    assert_eq!(r.one("permissions-policy"), "usb=(self)");
}
