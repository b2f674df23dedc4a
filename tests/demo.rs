//! The shipped conf/gw.yaml: `curl -i http://127.0.0.1:8080/` shows the full default
//! header set exactly once each, as the README shows it. The test runs the shipped
//! files with only the listener port and Pingora's socket paths moved, so it cannot
//! collide with a gateway already on 8080.

mod common;

use common::*;

#[test]
fn the_demo_answers_with_the_full_default_header_set_exactly_once() {
    let gw = shipped_demo();
    let r = get(&gw, &gw.addr.to_string(), "/", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body,
        "pingora-secgw is running. Every response from here carries the security policy.\n"
    );
    assert_eq!(r.one("content-type"), "text/plain; charset=utf-8");
    assert_default_headers(&r, false);

    // Any path and any Host: the demo vhost is the catch-all.
    let r = get(&gw, "whatever.example", "/nonexistent", &[]);
    assert_eq!(r.status, 200);
    assert_default_headers(&r, false);

    assert_eq!(gw.admin_get("/readyz"), (200, "ready\n".to_string()));
    let (status, metrics) = gw.admin_get("/metrics");
    assert_eq!(status, 200);
    assert!(metrics.lines().any(
        |l| l == "secgw_requests_total{route=\"_vhost\",status_class=\"2xx\",vhost=\"demo\"} 2"
    ));
}

/// The answer the README's quick start shows is what `curl -i` gets from the demo,
/// header for header (`Date` aside, which changes every second, and the
/// request id's value, new on every request).
#[test]
fn the_readme_shows_the_demos_real_answer() {
    let gw = shipped_demo();
    let (code, text) = run(std::process::Command::new("curl")
        .arg("-si")
        .arg(format!("http://{}/", gw.addr)));
    assert_eq!(code, 0, "curl is needed: run scripts/deps.sh test");
    let head: Vec<&str> = text
        .split("\r\n\r\n")
        .next()
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("Date:"))
        .map(docs::any_request_id)
        .collect();
    let shown = docs::shown(
        "README.md",
        "the full default header set (`Date` left out; the request id is new on every request):\n\n```\n",
        "```",
    );
    let shown: Vec<&str> = shown.lines().map(docs::any_request_id).collect();
    assert_eq!(head, shown);
}
