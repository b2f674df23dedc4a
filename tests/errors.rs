//! Responses the gateway makes itself when proxying fails carry the vhost's policy.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::*;

fn gateway_to(upstream: &str, timeouts: &str) -> Gateway {
    let extra = format!("{timeouts}\n    headers: {{set: {{X-Vhost: app}}}}");
    Gateway::start(&one_vhost(
        "[app.test]",
        upstream,
        "[\"127.0.0.1\"]",
        &extra,
    ))
}

#[test]
fn a_dead_upstream_gives_502_with_the_policy() {
    // A port that was free a moment ago and that nothing listens on.
    let gw = gateway_to(&format!("127.0.0.1:{}", free_port()), "");
    let r = get(&gw, "app.test", "/", &[("X-Forwarded-Proto", "https")]);
    assert_eq!(r.status, 502);
    assert_eq!(r.body, "502 Bad Gateway\n");
    assert_eq!(r.one("content-type"), "text/plain; charset=utf-8");
    assert_eq!(r.one("x-vhost"), "app");
    assert_default_headers(&r, true);
    let line = format!(
        "vhost=app route=_vhost path=/ request_id={} status=502",
        r.one("x-request-id")
    );
    assert!(gw.log().contains(&line), "{}", gw.log());
}

#[test]
fn an_upstream_timeout_gives_504_with_the_policy() {
    let up = Upstream::start("slow");
    let gw = gateway_to(&up.addr.to_string(), "    read_timeout_ms: 300");
    let r = get(&gw, "app.test", "/slow", &[]);
    assert_eq!(r.status, 504);
    assert_eq!(r.body, "504 Gateway Timeout\n");
    assert_eq!(r.one("x-vhost"), "app");
    assert_default_headers(&r, false);
}

#[test]
fn upstream_error_statuses_pass_through_with_the_policy() {
    let up = Upstream::start("a");
    let gw = gateway_to(&up.addr.to_string(), "");
    for status in [404, 500, 503] {
        let r = get(&gw, "app.test", &format!("/status/{status}"), &[]);
        assert_eq!(r.status, status);
        assert_eq!(r.body, "hello from upstream a\n");
        assert_default_headers(&r, false);
    }
}

#[test]
fn connect_is_refused_by_the_gateway_with_the_policy() {
    let up = Upstream::start("a");
    let gw = gateway_to(&up.addr.to_string(), "");
    let mut s = TcpStream::connect(gw.addr).unwrap();
    s.write_all(b"CONNECT app.test:443 HTTP/1.1\r\nHost: app.test:443\r\n\r\n")
        .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let head = raw.split("\r\n\r\n").next().unwrap();
    assert!(
        head.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\nAllow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS\r\n"));
    assert!(head.contains("\r\nX-Frame-Options: DENY\r\n"));
    assert!(head.contains("\r\nX-Vhost: app\r\n"));
    assert_eq!(head.matches("X-Content-Type-Options: nosniff").count(), 1);
    assert_eq!(up.hits(), 0);
}
