//! Routes inside a vhost, through the real binary: match kinds and precedence,
//! per-route upstreams and policy, the gateway's own answers, path normalization
//! attacks, validation and reload.

mod common;

use std::net::SocketAddr;

use common::*;

/// A vhost on upstream `web` with routes to `api`; every route names itself in
/// `X-Route`, so each response says which policy it got.
fn shop(web: &Upstream, api: &Upstream, vhost_extra: &str) -> String {
    format!(
        r#"
listeners: [{{address: "{{listen}}"}}]
admin: {{address: "{{admin}}"}}
vhosts:
  - name: shop
    hosts: [shop.test]
    upstreams: ["{web}"]
    headers: {{set: {{X-Route: vhost}}}}
{vhost_extra}
    routes:
      - name: api
        prefix: /api
        upstreams: ["{api}"]
        strip_prefix: true
        headers: {{set: {{X-Route: api}}}}
        request_headers: {{set: {{X-Api-Route: "yes"}}}}
        security: {{cors_enabled: true, allowed_origins: ["https://shop.test"], cache_control: no-store}}
      - prefix: /api/v2/
        upstreams: ["{api}"]
        headers: {{set: {{X-Route: v2}}}}
      - exact: /api/ping
        headers: {{set: {{X-Route: api-exact}}}}
      - exact: /healthz
        respond: {{status: 200, body: "ok\n"}}
        headers: {{set: {{X-Route: healthz}}}}
      - regex: '^/img/.+\.(png|jpg)$'
        headers: {{set: {{Cache-Control: "public, max-age=86400", X-Route: img}}}}
      - regex: '^/img/'
        headers: {{set: {{X-Route: img-other}}}}
      - name: admin
        prefix: /admin
        headers: {{set: {{X-Route: admin}}}}
      - name: secure
        prefix: /account
        security: {{ssl_redirect: true}}
        headers: {{set: {{X-Route: secure}}}}
"#,
        web = web.addr,
        api = api.addr,
    )
}

fn start() -> (Upstream, Upstream, Gateway) {
    let (web, api) = (Upstream::start("web"), Upstream::start("api"));
    let gw = Gateway::start(&shop(&web, &api, ""));
    (web, api, gw)
}

#[test]
fn each_match_kind_with_ingress_precedence() {
    let (_web, _api, gw) = start();
    for (path, route, upstream) in [
        ("/", "vhost", "web"),
        ("/apix", "vhost", "web"),
        ("/api", "api", "api"),
        ("/api/", "api", "api"),
        ("/api/users/7", "api", "api"),
        ("/api/users?sort=name", "api", "api"),
        ("/api/v2", "v2", "api"),
        ("/api/v2/x", "v2", "api"),
        ("/api/v20", "api", "api"),
        ("/api/ping", "api-exact", "web"),
        ("/api/ping/", "api", "api"),
        ("/img/logo.png", "img", "web"),
        ("/img/logo.png?v=3", "img", "web"),
        ("/img/logo.gif", "img-other", "web"),
        ("/images/logo.png", "vhost", "web"),
        ("/admin", "admin", "web"),
        ("/administrator", "vhost", "web"),
    ] {
        let r = get(&gw, "shop.test", path, &[]);
        assert_eq!(
            (r.status, r.one("x-route"), r.one("x-upstream")),
            (200, route, upstream),
            "{path}"
        );
    }
    // The query string is never part of the match.
    let r = get(&gw, "shop.test", "/healthz?probe=1", &[]);
    assert_eq!(
        (r.status, r.one("x-route"), r.body.as_str()),
        (200, "healthz", "ok\n")
    );
    let r = get(&gw, "shop.test", "/healthz/", &[]);
    assert_eq!((r.one("x-route"), r.one("x-upstream")), ("vhost", "web"));
    let r = get(&gw, "shop.test", "/img/a.png", &[]);
    assert_eq!(r.all("cache-control"), ["public, max-age=86400"]);
}

#[test]
fn routes_have_their_own_upstreams_and_strip_their_prefix() {
    let (web, api, gw) = start();
    for (path, seen) in [
        ("/api/v1/x?q=1&r=%20", "/v1/x?q=1&r=%20"),
        ("/api", "/"),
        ("/api/", "/"),
        ("/api/users/7", "/users/7"),
    ] {
        let r = get(&gw, "shop.test", path, &[]);
        assert_eq!(r.body, "hello from upstream api\n", "{path}");
        let req = api.last_request();
        assert_eq!(req.target, seen, "{path}");
        assert_eq!(req.header("x-api-route"), ["yes"], "{path}");
    }
    // No strip_prefix: the v2 route forwards its whole path.
    get(&gw, "shop.test", "/api/v2/users", &[]);
    assert_eq!(api.last_request().target, "/api/v2/users");
    assert_eq!(api.last_request().header("x-api-route"), Vec::<&str>::new());
    get(&gw, "shop.test", "/apix?a=b", &[]);
    let req = web.last_request();
    assert_eq!(req.target, "/apix?a=b");
    assert_eq!(req.header("x-api-route"), Vec::<&str>::new());
}

#[test]
fn each_route_gets_its_layer_of_the_policy() {
    let (_web, _api, gw) = start();
    let origin = [("Origin", "https://shop.test")];
    // CORS only on /api; the route's cache_control; the vhost's defaults elsewhere.
    let r = get(&gw, "shop.test", "/api/x", &origin);
    assert_eq!(r.all("access-control-allow-origin"), ["https://shop.test"]);
    assert_eq!(r.all("cache-control"), ["no-store"]);
    assert_eq!(r.all("x-frame-options"), ["DENY"]);
    let r = get(&gw, "shop.test", "/other", &origin);
    assert_eq!(r.all("access-control-allow-origin"), Vec::<&str>::new());
    assert_eq!(r.all("cache-control"), Vec::<&str>::new());
    assert_default_headers(&r, false);
    // A route-level ssl_redirect: only /account is sent to HTTPS.
    let r = get(&gw, "shop.test", "/account/orders?page=2", &[]);
    assert_eq!(
        (r.status, r.one("location"), r.one("x-route")),
        (301, "https://shop.test/account/orders?page=2", "secure")
    );
    let r = get(&gw, "shop.test", "/", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(
        gw.metric("secgw_redirects_total{status=\"301\",vhost=\"shop\"}"),
        Some(1.0)
    );
}

#[test]
fn route_policies_layer_over_the_vhost_policy() {
    let (web, api) = (Upstream::start("web"), Upstream::start("api"));
    let policies = r#"
policies:
  strict:
    security: {frame_options: SAMEORIGIN, csp_policy: {script-src: ["'self'"]}}
    headers: {remove: [X-Internal]}
  api:
    security: {csp_policy: {default-src: ["'none'"], script-src: null}, referrer_policy: no-referrer}
    headers: {remove: [X-Api-Debug]}
"#;
    let gw_yaml = format!(
        r#"
listeners: [{{address: "{{listen}}"}}]
policy_files: policies.yaml
vhosts:
  - name: shop
    hosts: ["*"]
    upstreams: ["{}"]
    policy: strict
    security: {{csp_policy: {{img-src: ["'self'", "https://img.test"]}}}}
    headers: {{set: {{Cache-Control: "public, max-age=60"}}, add: {{X-Note: vhost}}}}
    routes:
      - prefix: /api
        upstreams: ["{}"]
        policy: api
        security: {{csp_policy: {{connect-src: ["'self'"]}}, cache_control: no-store}}
        headers: {{set: {{X-Note: route}}}}
"#,
        web.addr, api.addr
    );
    let gw = Gateway::start_with_files(&gw_yaml, &[("policies.yaml", policies)]);
    let csp = |path: &str| {
        get(&gw, "shop.test", path, &[])
            .one("content-security-policy")
            .to_string()
    };
    let vhost_csp = csp("/");
    assert!(vhost_csp.contains("script-src 'self'"), "{vhost_csp}");
    assert!(
        vhost_csp.contains("img-src 'self' https://img.test"),
        "{vhost_csp}"
    );
    assert!(vhost_csp.starts_with("default-src 'self';"), "{vhost_csp}");
    let api_csp = csp("/api/x");
    // defaults < strict < vhost inline < api < route inline, directive by directive.
    assert!(api_csp.starts_with("default-src 'none';"), "{api_csp}");
    assert!(!api_csp.contains("script-src 'self'"), "{api_csp}");
    assert!(
        api_csp.contains("img-src 'self' https://img.test"),
        "{api_csp}"
    );
    assert!(api_csp.contains("connect-src 'self'"), "{api_csp}");
    let r = get(&gw, "shop.test", "/api/x", &[]);
    assert_eq!(r.all("x-frame-options"), ["SAMEORIGIN"]);
    assert_eq!(r.all("referrer-policy"), ["no-referrer"]);
    // The stronger layer decides each header it names, whether by a header action
    // or a security key: the vhost's `set` and `add` give way to the route's.
    assert_eq!(r.all("cache-control"), ["no-store"]);
    assert_eq!(r.all("x-note"), ["route"]);
    let r = get(&gw, "shop.test", "/", &[]);
    assert_eq!(
        r.all("referrer-policy"),
        ["strict-origin-when-cross-origin"]
    );
    assert_eq!(r.all("cache-control"), ["public, max-age=60"]);
    assert_eq!(r.all("x-note"), ["vhost"]);
}

#[test]
fn the_gateways_own_answers_carry_the_routes_policy() {
    let web = Upstream::start("web");
    let dead = free_port();
    let gw_yaml = format!(
        r#"
listeners: [{{address: "{{listen}}"}}]
admin: {{address: "{{admin}}"}}
vhosts:
  - name: shop
    hosts: [shop.test]
    upstreams: ["{}"]
    headers: {{set: {{X-Route: vhost}}}}
    routes:
      - name: api
        prefix: /api
        upstreams: ["127.0.0.1:{dead}"]
        connect_timeout_ms: 2000
        headers: {{set: {{X-Route: api}}}}
        security: {{cors_enabled: true, allowed_origins: ["https://shop.test"], allowed_methods: [GET, PUT]}}
      - name: old
        prefix: /old
        security: {{ssl_redirect: true}}
        headers: {{set: {{X-Route: old}}}}
      - exact: /healthz
        respond: {{status: 503, body: "down\n"}}
        headers: {{set: {{X-Route: healthz}}}}
"#,
        web.addr
    );
    let gw = Gateway::start(&gw_yaml);
    // The upstream is down: 502, written by the gateway, with the route's headers.
    let r = get(&gw, "shop.test", "/api/x", &[]);
    assert_eq!((r.status, r.one("x-route")), (502, "api"));
    assert_default_headers(&r, false);
    // A preflight answered at the edge, allowed and denied.
    let preflight = |method: &str| {
        request(
            &gw,
            "OPTIONS",
            "shop.test",
            "/api/x",
            &[
                ("Origin", "https://shop.test"),
                ("Access-Control-Request-Method", method),
            ],
        )
    };
    let r = preflight("PUT");
    assert_eq!((r.status, r.one("x-route")), (204, "api"));
    assert_eq!(r.all("access-control-allow-methods"), ["GET, PUT"]);
    let r = preflight("DELETE");
    assert_eq!((r.status, r.one("x-route")), (403, "api"));
    // A redirect and a direct answer.
    let r = get(&gw, "shop.test", "/old/page", &[]);
    assert_eq!((r.status, r.one("x-route")), (301, "old"));
    assert_default_headers(&r, false);
    let r = get(&gw, "shop.test", "/healthz", &[]);
    assert_eq!(
        (r.status, r.one("x-route"), r.body.as_str()),
        (503, "healthz", "down\n")
    );
    assert_default_headers(&r, false);
    assert_eq!(web.hits(), 0);
    // Counted under the route's label, a configuration value.
    assert_eq!(
        gw.metric(
            "secgw_upstream_errors_total{kind=\"connect_refused\",route=\"api\",vhost=\"shop\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        gw.metric("secgw_requests_total{route=\"api\",status_class=\"5xx\",vhost=\"shop\"}"),
        Some(1.0)
    );
    assert_eq!(
        gw.metric("secgw_requests_total{route=\"/healthz\",status_class=\"5xx\",vhost=\"shop\"}"),
        Some(1.0)
    );
    assert_eq!(
        gw.metric("secgw_headers_injected_total{header=\"x-route\",route=\"old\",vhost=\"shop\"}"),
        Some(1.0)
    );
}

/// Sends one raw GET and returns the response head and body.
fn raw_get(addr: SocketAddr, target: &str) -> (String, String) {
    let raw = raw_exchange(
        addr,
        format!("GET {target} HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    (head.to_string(), body.to_string())
}

fn header_line<'a>(head: &'a str, name: &str) -> Vec<&'a str> {
    head.lines()
        .filter_map(|l| l.split_once(": "))
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
        .collect()
}

#[test]
fn paths_are_normalized_before_routing_so_no_route_is_sidestepped() {
    let (web, _api, gw) = start();
    // Each reaches /admin: routed, secured and forwarded as /admin.
    for target in [
        "/static/../admin",
        "/static/%2e%2e/admin",
        "/static/%2E%2E/admin",
        "//admin",
        "/./admin",
        "/static/./../admin/",
    ] {
        let before = web.hits();
        let (head, _) = raw_get(gw.addr, target);
        assert!(head.starts_with("HTTP/1.1 200 "), "{target}: {head}");
        assert_eq!(header_line(&head, "x-route"), ["admin"], "{target}");
        assert_eq!(web.hits(), before + 1);
        let seen = web.last_request().target;
        assert!(seen == "/admin" || seen == "/admin/", "{target} -> {seen}");
    }
    // Unreserved characters are decoded, so they cannot dodge a prefix either.
    let (head, _) = raw_get(gw.addr, "/%61pi/users");
    assert_eq!(header_line(&head, "x-route"), ["api"]);
    // Climbing above the root, encoded slashes, backslashes, control bytes: 400
    // with the vhost's policy, and the upstream never sees them.
    let hits = web.hits();
    for target in [
        "/static/..%2Fadmin",
        "/static/..%2fadmin",
        "/static/..%5Cadmin",
        "/static\\..\\admin",
        "/../etc/passwd",
        "/%2e%2e/admin",
        "/a%00b",
        "/a%0d%0aSet-Cookie:%20x",
        "/a%zz",
    ] {
        let (head, body) = raw_get(gw.addr, target);
        assert!(head.starts_with("HTTP/1.1 400 "), "{target}: {head}");
        assert_raw_default_headers(&head);
        assert_eq!(header_line(&head, "x-route"), ["vhost"], "{target}");
        assert_eq!(body, "400 Bad Request\n", "{target}");
        assert!(!head.to_ascii_lowercase().contains("set-cookie"), "{head}");
    }
    assert_eq!(web.hits(), hits);
}

#[test]
fn only_paths_and_http_urls_are_routed_and_the_upstream_sees_what_was_routed() {
    let (web, api, gw) = start();
    // Targets Pingora would forward verbatim while routing them as `/`.
    let hits = (web.hits(), api.hits());
    for target in [
        "admin/x",
        "x/../admin",
        "*/../admin",
        "?q=1",
        "*",
        "x:/admin",
        "foo:bar://shop.test/admin",
        "/x/..;/admin",
        "/x/%2e%2e;jsessionid=1/admin",
    ] {
        let (head, body) = raw_get(gw.addr, target);
        assert!(head.starts_with("HTTP/1.1 400 "), "{target}: {head}");
        assert_raw_default_headers(&head);
        assert_eq!(body, "400 Bad Request\n", "{target}");
    }
    assert_eq!((web.hits(), api.hits()), hits);
    // `OPTIONS *` is the vhost's.
    let raw = raw_exchange(
        gw.addr,
        b"OPTIONS * HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n",
    );
    assert!(raw.starts_with("HTTP/1.1 200 "), "{raw}");
    assert_eq!(header_line(head_of(&raw), "x-route"), ["vhost"]);
    // Absolute-form: routed on its path, forwarded in origin-form.
    let (head, _) = raw_get(gw.addr, "http://shop.test/api/x?q=1");
    assert_eq!(header_line(&head, "x-route"), ["api"], "{head}");
    assert_eq!(api.last_request().target, "/x?q=1");
    let (head, _) = raw_get(gw.addr, "HTTP://shop.test/admin/../admin/");
    assert_eq!(header_line(&head, "x-route"), ["admin"], "{head}");
    assert_eq!(web.last_request().target, "/admin/");
    // Raw non-ASCII in the path is percent-encoded once, and routed and forwarded
    // that way; the query is never touched.
    let (head, _) = raw_get(gw.addr, "/api//caf\u{e9}?x=\u{e9}");
    assert_eq!(header_line(&head, "x-route"), ["api"], "{head}");
    assert_eq!(api.last_request().target, "/caf%C3%A9?x=\u{e9}");
}

#[test]
fn escaped_slashes_keep_passes_them_through_unrouted() {
    let (web, api) = (Upstream::start("web"), Upstream::start("api"));
    let gw = Gateway::start(&shop(&web, &api, "    escaped_slashes: keep"));
    let (head, _) = raw_get(gw.addr, "/files/a%2fb%2F..%2Fc");
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert_eq!(web.last_request().target, "/files/a%2Fb%2F..%2Fc");
    // An encoded slash is no separator: this is not under /api/v2/.
    let (head, _) = raw_get(gw.addr, "/api%2Fv2/x");
    assert_eq!(header_line(&head, "x-route"), ["vhost"], "{head}");
    // Backslashes and dot-segments are still refused or resolved.
    assert!(raw_get(gw.addr, "/a\\b").0.starts_with("HTTP/1.1 400 "));
    let (head, _) = raw_get(gw.addr, "/x/../api/v2/y");
    assert_eq!(header_line(&head, "x-route"), ["v2"]);
}

#[test]
fn every_bad_route_is_refused_with_its_key_path() {
    let cases: &[(&str, &str)] = &[
        (
            "{prefix: /a, exact: /a}",
            "vhosts[0].routes[0]: a route has exactly one of `prefix`, `exact` or `regex`",
        ),
        (
            "{respond: {}}",
            "vhosts[0].routes[0]: a route has exactly one of `prefix`, `exact` or `regex`",
        ),
        (
            "{prefix: api}",
            "vhosts[0].routes[0].prefix: `api` cannot match a request path: it does not start with `/`",
        ),
        (
            "{exact: /a/../b}",
            "vhosts[0].routes[0].exact: `/a/../b` is not a normalized path and would never match; write `/b`",
        ),
        (
            "{exact: \"/a?b=c\"}",
            "vhosts[0].routes[0].exact: `/a?b=c`: a path, without query or fragment",
        ),
        (
            "{regex: '^/(a'}",
            "vhosts[0].routes[0].regex: not a valid regex: regex parse error:",
        ),
        (
            "{prefix: /a}, {prefix: /a/}",
            "vhosts[0].routes[1].prefix: `/a/` is already matched by routes[0]",
        ),
        (
            "{exact: /a}, {regex: x}, {exact: /a}",
            "vhosts[0].routes[2].exact: `/a` is already matched by routes[0]",
        ),
        (
            "{name: x, prefix: /a}, {name: x, prefix: /b}",
            "vhosts[0].routes[1].name: route name `x` is already used by routes[0]\n",
        ),
        (
            "{exact: /a}, {prefix: /a}",
            "vhosts[0].routes[1].prefix: route name `/a` is already used by routes[0]; give the route a `name`",
        ),
        (
            "{regex: _vhost}",
            "vhosts[0].routes[0].regex: `_vhost` is the label of the vhost's own settings; give the route a `name`",
        ),
        (
            "{exact: /caf\u{e9}}",
            "vhosts[0].routes[0].exact: `/caf\u{e9}` is not a normalized path and would never match; write `/caf%C3%A9`",
        ),
        (
            "{prefix: /x/..;/y}",
            "vhosts[0].routes[0].prefix: `/x/..;/y` cannot match a request path: it has a dot-segment with parameters (`..;`)",
        ),
        (
            "{name: \"a b\", prefix: /a}",
            "vhosts[0].routes[0].name: `a b`: a route name has 1 to 64 letters, digits,",
        ),
        (
            "{name: _vhost, prefix: /a}",
            "(reserved for labels such as `_vhost`)",
        ),
        (
            "{exact: /a, strip_prefix: true}",
            "vhosts[0].routes[0].strip_prefix: strip_prefix needs a `prefix` route",
        ),
        (
            "{prefix: /a, strip_prefix: true, respond: {}}",
            "vhosts[0].routes[0].strip_prefix: strip_prefix changes the path sent upstream; this route answers itself",
        ),
        (
            "{prefix: /a, policy: nope}",
            "vhosts[0].routes[0].policy: unknown policy `nope`; no policies are defined",
        ),
        (
            "{prefix: /a, upstreams: [\"127.0.0.1:1\"], respond: {}}",
            "vhosts[0].routes[0]: a route has `upstreams` or `respond`, not both",
        ),
        (
            "{prefix: /a, respond: {}, read_timeout_ms: 5}",
            "vhosts[0].routes[0].read_timeout_ms: upstream timeouts need upstreams; this route answers with `respond`",
        ),
        (
            "{prefix: /a, connect_timeout_ms: 0}",
            "vhosts[0].routes[0].connect_timeout_ms: ",
        ),
        (
            "{prefix: /a, security: {ssl_redirect: true}}",
            "vhosts[0].routes[0].security.ssl_redirect: ssl_redirect on a vhost with host `*` needs `ssl_host`",
        ),
        (
            "{prefix: /a, security: {cors_enabled: true}}",
            "vhosts[0].routes[0].security.allowed_origins: cors_enabled needs at least one allowed origin",
        ),
        (
            "{prefix: /a, headers: {add: {X-Frame-Options: SAMEORIGIN}}}",
            "vhosts[0].routes[0].headers.add.X-Frame-Options: `X-Frame-Options` is managed by this policy",
        ),
        (
            "{prefix: /a, upstreams: [\"ftp://x:1\"]}",
            "vhosts[0].routes[0].upstreams: `ftp://x:1`: upstreams are host:port",
        ),
        (
            "{prefix: /a, matches: /b}",
            "vhosts[0].routes[0].matches: unknown field `matches`",
        ),
    ];
    for (routes, want) in cases {
        let gw_yaml = format!(
            "listeners: [{{address: \"{{listen}}\"}}]\nvhosts:\n  - name: app\n    hosts: [\"*\"]\n    upstreams: [\"127.0.0.1:9\"]\n    routes: [{routes}]\n"
        );
        let (code, text, _dir) = check_config(&gw_yaml, &[]);
        assert_eq!(code, 1, "{routes}: {text}");
        assert!(text.contains("gw.yaml: "), "{routes}: {text}");
        assert!(text.contains(want), "{routes}:\nwant {want}\ngot  {text}");
    }
}

#[test]
fn routes_are_reloaded_without_a_restart() {
    let (web, api) = (Upstream::start("web"), Upstream::start("api"));
    let gw = Gateway::start(&shop(&web, &api, ""));
    let r = get(&gw, "shop.test", "/beta/x", &[]);
    assert_eq!(r.one("x-route"), "vhost");
    let path = gw.dir.path().join("gw.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let added = text.replace(
        "    routes:\n",
        "    routes:\n      - name: beta\n        prefix: /beta\n        headers: {set: {X-Route: beta}}\n",
    );
    std::fs::write(&path, &added).unwrap();
    eventually("the new route serves /beta", || {
        get(&gw, "shop.test", "/beta/x", &[]).one("x-route") == "beta"
    });
    // A bad route is rejected whole; the routes that were serving still serve.
    std::fs::write(&path, added.replace("prefix: /beta", "prefix: beta")).unwrap();
    eventually("the failure is counted", || {
        gw.metric("secgw_config_reloads_total{result=\"failure\"}") == Some(1.0)
    });
    assert_eq!(get(&gw, "shop.test", "/beta/x", &[]).one("x-route"), "beta");
    assert_eq!(get(&gw, "shop.test", "/api/x", &[]).one("x-route"), "api");
    assert!(gw
        .log()
        .contains("vhosts[0].routes[0].prefix: `beta` cannot match a request path"));
}

#[test]
fn routes_that_inherit_the_vhosts_upstreams_share_its_round_robin() {
    let (a, b) = (Upstream::start("a"), Upstream::start("b"));
    let gw_yaml = format!(
        r#"
listeners: [{{address: "{{listen}}"}}]
vhosts:
  - name: shop
    hosts: ["*"]
    upstreams: ["{}", "{}"]
    routes:
      - {{prefix: /api, read_timeout_ms: 2000}}
      - {{prefix: /static}}
"#,
        a.addr, b.addr
    );
    let gw = Gateway::start(&gw_yaml);
    // One pool: each request, whichever route it takes, goes to the next upstream.
    let seen: Vec<String> = ["/", "/api/x", "/static/y", "/api/z"]
        .iter()
        .map(|p| get(&gw, "shop.test", p, &[]).one("x-upstream").to_string())
        .collect();
    assert!(
        seen == ["a", "b", "a", "b"] || seen == ["b", "a", "b", "a"],
        "{seen:?}"
    );
}

/// The path variants that reach the upstream outside a prefix route (the
/// routing docs list which upstreams read them as inside), and
/// `case_insensitive: true` for upstreams that match paths in either case.
#[test]
fn variants_outside_a_prefix_and_case_insensitive_routes() {
    let web = Upstream::start("web");
    let yaml = format!(
        r#"
listeners: [{{address: "{{listen}}"}}]
vhosts:
  - name: shop
    hosts: [shop.test]
    upstreams: ["{web}"]
    headers: {{set: {{X-Route: vhost}}}}
    routes:
      - prefix: /admin
        headers: {{set: {{X-Route: admin}}}}
      - prefix: /Manage
        case_insensitive: true
        headers: {{set: {{X-Route: manage}}}}
      - regex: '^/report/[a-z]+$'
        case_insensitive: true
        headers: {{set: {{X-Route: report}}}}
"#,
        web = web.addr
    );
    let gw = Gateway::start(&yaml);
    for (target, route, seen) in [
        ("/admin/x", "admin", "/admin/x"),
        // Outside the prefix for the gateway; inside for some upstreams.
        ("/admin.", "vhost", "/admin."),
        ("/admin%2e", "vhost", "/admin."),
        ("/admin%20", "vhost", "/admin%20"),
        ("/ADMIN", "vhost", "/ADMIN"),
        ("/admin;x", "vhost", "/admin;x"),
        ("/%252e%252e/admin", "vhost", "/%252e%252e/admin"),
        // Case-insensitive routes.
        ("/manage", "manage", "/manage"),
        ("/MANAGE/users", "manage", "/MANAGE/users"),
        ("/mAnAgE", "manage", "/mAnAgE"),
        ("/managers", "vhost", "/managers"),
        ("/REPORT/Daily", "report", "/REPORT/Daily"),
        ("/report/daily/x", "vhost", "/report/daily/x"),
    ] {
        let (head, _) = raw_get(gw.addr, target);
        assert!(head.starts_with("HTTP/1.1 200 "), "{target}: {head}");
        assert_eq!(header_line(&head, "x-route"), [route], "{target}");
        assert_eq!(web.last_request().target, seen, "{target}");
    }
}
