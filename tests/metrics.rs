//! The admin listener: exact counter values after known traffic, an exposition that
//! promtool accepts, and health/readiness probes.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::prometheus::promtool;
use common::*;

fn promtool_check(exposition: &str) -> (bool, String) {
    let mut child = Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is needed: run scripts/deps.sh test (or set PROMTOOL)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Samples keyed by `name{label="value",...}` with labels sorted, as the
/// Prometheus text format writes them.
fn samples(exposition: &str) -> HashMap<String, f64> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (key, value) = l.rsplit_once(' ').unwrap();
            (key.to_string(), value.parse().unwrap())
        })
        .collect()
}

fn value(s: &HashMap<String, f64>, key: &str) -> f64 {
    *s.get(key).unwrap_or_else(|| panic!("no sample {key}"))
}

#[test]
fn counters_match_the_traffic_and_promtool_accepts_the_exposition() {
    let up = Upstream::start("a");
    let port = free_port();
    let dead = format!("127.0.0.1:{port}");
    let gw = Gateway::start(&format!(
        r#"
listeners: [{{address: "{{listen}}"}}]
admin: {{address: "{{admin}}"}}
trusted_proxies: ["127.0.0.1"]
vhosts:
  - name: app
    hosts: [app.test]
    upstreams: ["{up}"]
  - name: keeper
    hosts: [keeper.test]
    upstreams: ["{up}"]
    headers: {{conflict: {{X-Frame-Options: keep}}, remove: ["X-Upstr*"]}}
  - name: secure
    hosts: [secure.test]
    upstreams: ["{up}"]
    security: {{ssl_redirect: true}}
  - name: down
    hosts: [down.test]
    upstreams: ["{dead}"]
  - name: api
    hosts: [api.test]
    respond: {{status: 204}}
    security: {{cors_enabled: true, allowed_origins: ["https://app.test"]}}
"#,
        up = up.addr
    ));
    let https = [("X-Forwarded-Proto", "https")];
    assert_eq!(get(&gw, "app.test", "/conflict", &https).status, 200);
    assert_eq!(get(&gw, "app.test", "/conflict", &https).status, 200);
    assert_eq!(get(&gw, "app.test", "/", &[]).status, 200);
    assert_eq!(get(&gw, "keeper.test", "/conflict", &[]).status, 200);
    assert_eq!(get(&gw, "evil.test", "/secret-path", &[]).status, 421);
    assert_eq!(get(&gw, "secure.test", "/", &[]).status, 301);
    assert_eq!(get(&gw, "down.test", "/", &[]).status, 502);

    let (status, text) = gw.admin_get("/metrics");
    assert_eq!(status, 200);
    let (ok, report) = promtool_check(&text);
    assert!(ok, "promtool rejected the exposition: {report}\n{text}");
    let s = samples(&text);

    // app: two HTTPS responses from an upstream that sends HSTS, X-Frame-Options
    // (twice), CSP and Referrer-Policy itself, then one plain response.
    for (header, injected) in [
        ("content-security-policy", 3.0),
        ("strict-transport-security", 2.0),
        ("x-frame-options", 3.0),
        ("x-content-type-options", 3.0),
        ("permissions-policy", 3.0),
    ] {
        let key = format!(
            "secgw_headers_injected_total{{header=\"{header}\",route=\"_vhost\",vhost=\"app\"}}"
        );
        assert_eq!(value(&s, &key), injected, "{key}");
    }
    for header in [
        "strict-transport-security",
        "x-frame-options",
        "content-security-policy",
        "referrer-policy",
    ] {
        let key = format!(
            "secgw_headers_duplicated_total{{action=\"override\",header=\"{header}\",route=\"_vhost\",vhost=\"app\"}}"
        );
        assert_eq!(value(&s, &key), 2.0, "{key}");
    }
    let key = "secgw_headers_duplicated_total{action=\"override\",header=\"x-content-type-options\",route=\"_vhost\",vhost=\"app\"}";
    assert_eq!(value(&s, key), 0.0);
    for rule in ["server", "x-powered-by", "x-aspnet-version"] {
        let key = format!(
            "secgw_headers_stripped_total{{header=\"{rule}\",route=\"_vhost\",vhost=\"app\"}}"
        );
        assert_eq!(value(&s, &key), 2.0, "{key}");
    }
    assert_eq!(
        value(
            &s,
            "secgw_requests_total{route=\"_vhost\",status_class=\"2xx\",vhost=\"app\"}"
        ),
        3.0
    );
    assert_eq!(
        value(
            &s,
            "secgw_request_duration_seconds_count{route=\"_vhost\",vhost=\"app\"}"
        ),
        3.0
    );

    // keeper: the upstream's X-Frame-Options is kept, not injected; the prefix rule
    // is labelled by its configured text. Then: unknown host, redirect, dead
    // upstream, and a CORS vhost whose preflight series exist at 0.
    for (key, expected) in [
        (
            r#"secgw_headers_duplicated_total{action="keep",header="x-frame-options",route="_vhost",vhost="keeper"}"#,
            1.0,
        ),
        (
            r#"secgw_headers_injected_total{header="x-frame-options",route="_vhost",vhost="keeper"}"#,
            0.0,
        ),
        (
            r#"secgw_headers_stripped_total{header="x-upstr*",route="_vhost",vhost="keeper"}"#,
            1.0,
        ),
        (
            r#"secgw_requests_total{route="_vhost",status_class="4xx",vhost="_unmatched"}"#,
            1.0,
        ),
        (
            r#"secgw_headers_injected_total{header="x-frame-options",route="_vhost",vhost="_unmatched"}"#,
            1.0,
        ),
        (r#"secgw_redirects_total{status="301",vhost="secure"}"#, 1.0),
        (
            r#"secgw_requests_total{route="_vhost",status_class="3xx",vhost="secure"}"#,
            1.0,
        ),
        (
            r#"secgw_upstream_errors_total{kind="connect_refused",route="_vhost",vhost="down"}"#,
            1.0,
        ),
        (
            r#"secgw_requests_total{route="_vhost",status_class="5xx",vhost="down"}"#,
            1.0,
        ),
        (
            r#"secgw_cors_preflights_total{result="allowed",vhost="api"}"#,
            0.0,
        ),
        (
            r#"secgw_cors_preflights_total{result="denied",vhost="api"}"#,
            0.0,
        ),
        (r#"secgw_config_reloads_total{result="success"}"#, 0.0),
        (r#"secgw_config_reloads_total{result="failure"}"#, 0.0),
        ("secgw_config_last_reload_successful", 1.0),
    ] {
        assert_eq!(value(&s, key), expected, "{key}");
    }

    // Configuration metrics exist from start-up.
    assert!(value(&s, "secgw_config_last_reload_timestamp_seconds") > 1.7e9);
    let info: Vec<&String> = s
        .keys()
        .filter(|k| k.starts_with("secgw_config_info{"))
        .collect();
    assert_eq!(info.len(), 1, "{info:?}");
    assert_eq!(s[info[0]], 1.0);

    // Nothing from a request becomes a label.
    assert!(!text.contains("evil.test"));
    assert!(!text.contains("secret-path"));
    // And the one failure was logged once, with vhost, route, path and reason.
    let log = gw.log();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("status=502")).collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(
        lines[0].contains("vhost=down route=_vhost path=/ request_id=")
            && lines[0].contains(" status=502 reason="),
        "{}",
        lines[0]
    );
}

#[test]
fn promtool_really_rejects_a_malformed_exposition() {
    let (ok, _) = promtool_check("secgw_requests_total{vhost=\"app} 1\n");
    assert!(!ok);
}

#[test]
fn health_and_readiness() {
    let gw = Gateway::start(
        "listeners: [{address: \"{listen}\"}]\nadmin: {address: \"{admin}\"}\nvhosts: [{name: a, hosts: [\"*\"], respond: {}}]\n",
    );
    assert_eq!(gw.admin_get("/healthz"), (200, "ok\n".to_string()));
    assert_eq!(gw.admin_get("/readyz"), (200, "ready\n".to_string()));
    assert_eq!(gw.admin_get("/nope").0, 404);
}

#[test]
fn not_ready_until_the_public_listener_is_bound() {
    // Another socket holds the public port: Pingora retries the bind every second,
    // and the process must not report ready meanwhile, although a connection to
    // the port would succeed.
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = squatter.local_addr().unwrap().port();
    let mut gw = Gateway::launch(
        "listeners: [{address: \"{listen}\"}]\nadmin: {address: \"{admin}\"}\nvhosts: [{name: a, hosts: [\"*\"], respond: {}}]\n",
        &[],
        port,
    );
    gw.wait_for(gw.admin);
    assert_eq!(gw.admin_get("/healthz").0, 200);
    assert_eq!(
        gw.admin_get("/readyz"),
        (
            503,
            format!("not ready: not listening on 127.0.0.1:{port}\n")
        )
    );

    drop(squatter);
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = gw.admin_get("/readyz");
    while last.0 != 200 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        last = gw.admin_get("/readyz");
    }
    assert_eq!(last, (200, "ready\n".to_string()));
    assert_eq!(get(&gw, "x.test", "/", &[]).status, 200);
}
