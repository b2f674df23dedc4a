//! Host routing: exact, wildcard and default vhosts, unknown hosts, load balancing.

mod common;

use common::*;

fn two_vhosts(a: &Upstream, b: &Upstream, default_vhost: &str) -> String {
    format!(
        r#"
listeners: [{{address: "{{listen}}"}}]
vhosts:
  - name: exact
    hosts: [example.com, www.example.com]
    upstreams: ["{}"]
    headers: {{set: {{X-Vhost: exact}}}}
  - name: wild
    hosts: ["*.example.com"]
    upstreams: ["{}"]
    headers: {{set: {{X-Vhost: wild}}}}
{default_vhost}
"#,
        a.addr, b.addr
    )
}

#[test]
fn exact_beats_wildcard_and_matching_ignores_case_port_and_trailing_dot() {
    let (a, b) = (Upstream::start("a"), Upstream::start("b"));
    let gw = Gateway::start(&two_vhosts(&a, &b, ""));
    for host in [
        "example.com",
        "EXAMPLE.com:8443",
        "www.example.com.",
        "WWW.Example.COM.:80",
    ] {
        let r = get(&gw, host, "/", &[]);
        assert_eq!(
            (r.status, r.one("x-vhost"), r.one("x-upstream")),
            (200, "exact", "a"),
            "{host}"
        );
    }
    for host in [
        "api.example.com",
        "a.b.example.com",
        "Deep.API.example.com:1",
    ] {
        let r = get(&gw, host, "/", &[]);
        assert_eq!(
            (r.status, r.one("x-vhost"), r.one("x-upstream")),
            (200, "wild", "b"),
            "{host}"
        );
    }
}

#[test]
fn unknown_hosts_get_421_with_the_baseline_headers_and_never_reach_an_upstream() {
    let (a, b) = (Upstream::start("a"), Upstream::start("b"));
    let gw = Gateway::start(&two_vhosts(&a, &b, ""));
    for host in [
        "evil-example.com",
        "example.com.evil.net",
        "example.org",
        "com",
    ] {
        let r = get(&gw, host, "/", &[]);
        assert_eq!(r.status, 421, "{host}");
        assert_eq!(r.body, "421 Misdirected Request\n");
        assert_default_headers(&r, false);
        assert!(!r.has("x-vhost"));
    }
    // An empty Host names no host at all (tests/hardening.rs has the forged ones).
    let r = get(&gw, "", "/", &[]);
    assert_eq!((r.status, r.body.as_str()), (400, "400 Bad Request\n"));
    assert_default_headers(&r, false);
    assert_eq!(a.hits() + b.hits(), 0);
}

#[test]
fn the_default_vhost_takes_what_nothing_else_matches() {
    let (a, b) = (Upstream::start("a"), Upstream::start("b"));
    let default = r#"  - name: fallback
    hosts: ["*"]
    respond: {status: 404, body: "no such site\n"}
    headers: {set: {X-Vhost: fallback}}
"#;
    let gw = Gateway::start(&two_vhosts(&a, &b, default));
    let r = get(&gw, "unknown.test", "/", &[]);
    assert_eq!(
        (r.status, r.one("x-vhost"), r.body.as_str()),
        (404, "fallback", "no such site\n")
    );
    assert_default_headers(&r, false);
    let r = get(&gw, "x.example.com", "/", &[]);
    assert_eq!(r.one("x-vhost"), "wild");
}

#[test]
fn upstreams_are_balanced_round_robin() {
    let (a, b) = (Upstream::start("a"), Upstream::start("b"));
    let gw = Gateway::start(&format!(
        "listeners: [{{address: \"{{listen}}\"}}]\nvhosts:\n  - name: pool\n    hosts: [pool.test]\n    upstreams: [\"{}\", \"{}\"]\n",
        a.addr, b.addr
    ));
    let mut seen = Vec::new();
    for _ in 0..6 {
        seen.push(
            get(&gw, "pool.test", "/", &[])
                .one("x-upstream")
                .to_string(),
        );
    }
    assert_eq!((a.hits(), b.hits()), (3, 3), "{seen:?}");
    assert!(
        seen.windows(2).all(|w| w[0] != w[1]),
        "alternates: {seen:?}"
    );
}
