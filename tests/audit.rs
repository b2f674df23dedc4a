//! `pingora-secgw audit` on five fixture sites served through the real gateway
//! (plain and TLS listeners on loopback, real upstreams), each graded as the MDN
//! HTTP Observatory 1.4.8 grades it. The expected results are worked out from the
//! Observatory's published rules (`src/analyzer/tests`, `src/grader/charts.js`)
//! and were confirmed by running `@mdn/mdn-http-observatory` 1.4.8 against the
//! same configuration (docs/check-and-audit.md).

mod common;

use std::process::Command;
use std::time::Duration;

use common::pages::{Page, PageServer};
use common::tls::TestPki;
use common::*;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_pingora-secgw");
const HOSTS: [&str; 5] = [
    "default.test",
    "strict.test",
    "weak.test",
    "inline.test",
    "reportonly.test",
];

struct Sites {
    gw: Gateway,
    ca_file: tempfile::NamedTempFile,
    _upstreams: Vec<PageServer>,
}

fn html(scripts: &str) -> String {
    format!("<!doctype html><html><head><title>t</title>{scripts}</head><body>hi</body></html>")
}

/// The five fixtures: the default policy; a strict one; everything off; inline
/// scripts with a one-day HSTS and credentialed CORS; a report-only CSP.
fn sites() -> Sites {
    let default = PageServer::start(vec![(
        "/",
        Page::html(html("<script src=\"/app.js\"></script>")),
    )]);
    let strict = PageServer::start(vec![(
        "/",
        Page::html(html(
            "<script src=\"https://cdn.example.net/lib.js\" integrity=\"sha384-abc\" crossorigin=\"anonymous\"></script>",
        ))
        .header("Set-Cookie", "sessionid=abc; Path=/; Secure; HttpOnly; SameSite=Strict"),
    )]);
    let weak = PageServer::start(vec![(
        "/",
        Page::html(html(
            "<script src=\"http://cdn.example.net/x.js\"></script>",
        ))
        .header("Set-Cookie", "login=1; Path=/"),
    )]);
    let inline = PageServer::start(vec![("/", Page::html(html("")))]);
    let report_only = PageServer::start(vec![(
        "/",
        Page::html(html("<script src=\"/app.js\"></script>")),
    )]);
    let vhost = |name: &str, upstream: &PageServer, security: &str| {
        format!(
            "  - name: {name}\n    hosts: [{name}.test]\n    upstreams: [\"{}\"]\n    security: {security}\n",
            upstream.addr
        )
    };
    let mut yaml = String::from(
        "listeners:\n  - address: \"{listen}\"\n  - address: \"{tls}\"\n    \
         tls: {cert: certs/site.pem, key: certs/site.key}\nadmin: {address: \"{admin}\"}\nvhosts:\n",
    );
    yaml += &vhost("default", &default, "{}");
    yaml += &vhost(
        "strict",
        &strict,
        "{ssl_redirect: true, ssl_port: {tls_port}, hsts_max_age: 63072000, hsts_preload: true, \
         referrer_policy: no-referrer, csp_policy: {default-src: [\"'none'\"], script-src: [\"https://cdn.example.net\"], \
         style-src: [\"'self'\"], img-src: [\"'self'\"], font-src: null, upgrade-insecure-requests: null}}",
    );
    yaml += &vhost(
        "weak",
        &weak,
        "{csp_enabled: false, hsts_enabled: false, frame_options: false, content_type_options: false, \
         referrer_policy: unsafe-url, cross_origin_resource_policy: false, cross_origin_opener_policy: false, \
         permissions_policy: false}",
    );
    yaml += &vhost(
        "inline",
        &inline,
        "{ssl_redirect: true, ssl_port: {tls_port}, hsts_max_age: 86400, \
         csp_policy: {script-src: [\"'self'\", \"'unsafe-inline'\"]}, cors_enabled: true, \
         allowed_origins: [\"https://http-observatory.security.mozilla.org\"], allow_credentials: true}",
    );
    yaml += &vhost(
        "reportonly",
        &report_only,
        "{ssl_redirect: true, ssl_port: {tls_port}, csp_report_only: true}",
    );
    let pki = TestPki::new();
    let leaf = pki.leaf(&HOSTS);
    let files = [
        ("certs/site.pem", leaf.cert_pem.as_str()),
        ("certs/site.key", leaf.key_pem.as_str()),
    ];
    let mut gw = Gateway::launch(&yaml, &files, free_port());
    gw.wait_for(gw.tls_addr);
    gw.wait_for(gw.addr);
    let ca_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca_file.path(), pki.ca_pem()).unwrap();
    Sites {
        gw,
        ca_file,
        _upstreams: vec![default, strict, weak, inline, report_only],
    }
}

/// Runs `audit` on `host` through the gateway: its exit code and its output.
fn audit(s: &Sites, host: &str, extra: &[&str]) -> (i32, String, String) {
    let (hp, tp) = (s.gw.addr.port(), s.gw.tls_addr.port());
    let out = audit_through(host, hp, tp)
        .args(["--cacert", s.ca_file.path().to_str().unwrap()])
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn audit_json(s: &Sites, host: &str) -> Value {
    let (code, out, err) = audit(s, host, &["--format", "json"]);
    assert_eq!(code, 0, "audit {host}: {err}");
    serde_json::from_str(&out).unwrap()
}

/// The ten tests in the Observatory's order: (name, pass, modifier, result).
type Expected<'a> = [(&'a str, bool, i64, &'a str); 10];

fn assert_scan(v: &Value, grade: &str, score: i64, expected: &Expected) {
    let tests = v["tests"].as_object().unwrap();
    assert_eq!(tests.len(), 10, "{v}");
    for (name, pass, modifier, result) in expected {
        let t = &tests[*name];
        assert_eq!(
            (
                t["pass"].as_bool().unwrap(),
                t["scoreModifier"].as_i64().unwrap(),
                t["result"].as_str().unwrap()
            ),
            (*pass, *modifier, *result),
            "test {name}"
        );
    }
    assert_eq!(
        (v["grade"].as_str().unwrap(), v["score"].as_i64().unwrap()),
        (grade, score)
    );
}

#[test]
fn five_fixture_sites_get_the_observatorys_results() {
    let s = sites();

    // Default policy, no redirect: 100 - 20 (no redirect) = 80, so no bonus.
    let v = audit_json(&s, "default.test");
    assert_scan(
        &v,
        "B+",
        80,
        &[
            (
                "content-security-policy",
                true,
                0,
                "csp-implemented-with-unsafe-inline-in-style-src-only",
            ),
            ("cookies", true, 0, "cookies-not-found"),
            (
                "cross-origin-resource-sharing",
                true,
                0,
                "cross-origin-resource-sharing-not-implemented",
            ),
            ("redirection", false, -20, "redirection-missing"),
            ("referrer-policy", true, 5, "referrer-policy-private"),
            (
                "strict-transport-security",
                true,
                0,
                "hsts-implemented-max-age-at-least-six-months",
            ),
            (
                "subresource-integrity",
                true,
                0,
                "sri-not-implemented-but-all-scripts-loaded-from-secure-origin",
            ),
            (
                "x-content-type-options",
                true,
                0,
                "x-content-type-options-nosniff",
            ),
            (
                "x-frame-options",
                true,
                5,
                "x-frame-options-implemented-via-csp",
            ),
            (
                "cross-origin-resource-policy",
                true,
                10,
                "corp-implemented-with-same-origin",
            ),
        ],
    );
    let hops: Vec<(&str, i64)> = v["redirects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["url"].as_str().unwrap(), h["status"].as_i64().unwrap()))
        .collect();
    let plain = format!("http://default.test:{}/", s.gw.addr.port());
    assert_eq!(hops, [(plain.as_str(), 200)]);

    // Strict: 100 + 10 + 5 + 5 + 5 + 5 + 10 = 140.
    let v = audit_json(&s, "strict.test");
    assert_scan(
        &v,
        "A+",
        140,
        &[
            (
                "content-security-policy",
                true,
                10,
                "csp-implemented-with-no-unsafe-default-src-none",
            ),
            (
                "cookies",
                true,
                5,
                "cookies-secure-with-httponly-sessions-and-samesite",
            ),
            (
                "cross-origin-resource-sharing",
                true,
                0,
                "cross-origin-resource-sharing-not-implemented",
            ),
            ("redirection", true, 0, "redirection-to-https"),
            ("referrer-policy", true, 5, "referrer-policy-private"),
            (
                "strict-transport-security",
                true,
                0,
                "hsts-implemented-max-age-at-least-six-months",
            ),
            (
                "subresource-integrity",
                true,
                5,
                "sri-implemented-and-external-scripts-loaded-securely",
            ),
            (
                "x-content-type-options",
                true,
                0,
                "x-content-type-options-nosniff",
            ),
            (
                "x-frame-options",
                true,
                5,
                "x-frame-options-implemented-via-csp",
            ),
            (
                "cross-origin-resource-policy",
                true,
                10,
                "corp-implemented-with-same-origin",
            ),
        ],
    );
    let tp = s.gw.tls_addr.port();
    let hops: Vec<(String, i64)> = v["redirects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["url"].as_str().unwrap().to_string(),
                h["status"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        hops,
        [
            (format!("http://strict.test:{}/", s.gw.addr.port()), 301),
            (format!("https://strict.test:{tp}/"), 200)
        ]
    );
    assert_eq!(v["extra"]["hsts-preload-ready"]["pass"], true, "{v}");
    assert_eq!(v["extra"]["duplicate-security-headers"]["pass"], true);

    // Weak: every negative counts, 100 - 185 floors at 0.
    let v = audit_json(&s, "weak.test");
    assert_scan(
        &v,
        "F",
        0,
        &[
            ("content-security-policy", false, -25, "csp-not-implemented"),
            ("cookies", false, -40, "cookies-session-without-secure-flag"),
            (
                "cross-origin-resource-sharing",
                true,
                0,
                "cross-origin-resource-sharing-not-implemented",
            ),
            ("redirection", false, -20, "redirection-missing"),
            ("referrer-policy", false, -5, "referrer-policy-unsafe"),
            (
                "strict-transport-security",
                false,
                -20,
                "hsts-not-implemented",
            ),
            (
                "subresource-integrity",
                false,
                -50,
                "sri-not-implemented-and-external-scripts-not-loaded-securely",
            ),
            (
                "x-content-type-options",
                false,
                -5,
                "x-content-type-options-not-implemented",
            ),
            (
                "x-frame-options",
                false,
                -20,
                "x-frame-options-not-implemented",
            ),
            (
                "cross-origin-resource-policy",
                true,
                0,
                "corp-not-implemented",
            ),
        ],
    );
    assert_eq!(
        v["extra"]["hsts-preload-ready"]["result"],
        "preload-missing"
    );

    // 'unsafe-inline' scripts (-20) and a one-day HSTS (-10): 70, no bonus. The
    // credentialed echo of the probe's Origin scores "restricted" in 1.4.8; the
    // extra check flags it.
    let v = audit_json(&s, "inline.test");
    assert_scan(
        &v,
        "B",
        70,
        &[
            (
                "content-security-policy",
                false,
                -20,
                "csp-implemented-with-unsafe-inline",
            ),
            ("cookies", true, 0, "cookies-not-found"),
            (
                "cross-origin-resource-sharing",
                true,
                0,
                "cross-origin-resource-sharing-implemented-with-restricted-access",
            ),
            ("redirection", true, 0, "redirection-to-https"),
            ("referrer-policy", true, 5, "referrer-policy-private"),
            (
                "strict-transport-security",
                false,
                -10,
                "hsts-implemented-max-age-less-than-six-months",
            ),
            (
                "subresource-integrity",
                true,
                0,
                "sri-not-implemented-but-no-scripts-loaded",
            ),
            (
                "x-content-type-options",
                true,
                0,
                "x-content-type-options-nosniff",
            ),
            (
                "x-frame-options",
                true,
                5,
                "x-frame-options-implemented-via-csp",
            ),
            (
                "cross-origin-resource-policy",
                true,
                10,
                "corp-implemented-with-same-origin",
            ),
        ],
    );
    assert_eq!(v["extra"]["cors-credentialed-origin-echo"]["pass"], false);
    assert_eq!(
        v["extra"]["cors-credentialed-origin-echo"]["result"],
        "foreign-origin-allowed-with-credentials"
    );

    // Report-only CSP: -25, and X-Frame-Options is read from its own header.
    let v = audit_json(&s, "reportonly.test");
    assert_scan(
        &v,
        "B",
        75,
        &[
            (
                "content-security-policy",
                false,
                -25,
                "csp-not-implemented-but-reporting-enabled",
            ),
            ("cookies", true, 0, "cookies-not-found"),
            (
                "cross-origin-resource-sharing",
                true,
                0,
                "cross-origin-resource-sharing-not-implemented",
            ),
            ("redirection", true, 0, "redirection-to-https"),
            ("referrer-policy", true, 5, "referrer-policy-private"),
            (
                "strict-transport-security",
                true,
                0,
                "hsts-implemented-max-age-at-least-six-months",
            ),
            (
                "subresource-integrity",
                true,
                0,
                "sri-not-implemented-but-all-scripts-loaded-from-secure-origin",
            ),
            (
                "x-content-type-options",
                true,
                0,
                "x-content-type-options-nosniff",
            ),
            (
                "x-frame-options",
                true,
                0,
                "x-frame-options-sameorigin-or-deny",
            ),
            (
                "cross-origin-resource-policy",
                true,
                10,
                "corp-implemented-with-same-origin",
            ),
        ],
    );
}

#[test]
fn min_grade_exit_codes_text_output_and_errors() {
    let s = sites();
    let (code, out, _) = audit(&s, "strict.test", &["--min-grade", "A+"]);
    assert_eq!(code, 0);
    assert!(out.contains("score 140, grade A+\n"), "{out}");
    assert!(
        out.contains(" +10  pass  content-security-policy        csp-implemented-with-no-unsafe-default-src-none\n"),
        "{out}"
    );
    let (code, out, err) = audit(&s, "default.test", &["--min-grade", "a"]);
    assert_eq!(code, 1, "{out}");
    assert!(err.contains("grade B+ is below --min-grade A"), "{err}");
    let (code, _, err) = audit(&s, "default.test", &["--min-grade", "Z"]);
    assert_eq!(code, 2);
    assert!(err.contains("one of A+, A"), "{err}");

    // Without the CA the chain does not verify: the Observatory goes on unverified
    // and scores HSTS and the redirect chain as invalid.
    let (hp, tp) = (s.gw.addr.port(), s.gw.tls_addr.port());
    let out = audit_through("strict.test", hp, tp)
        .args(["--format", "json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(
        v["tests"]["strict-transport-security"]["result"],
        "hsts-invalid-cert"
    );
    assert_eq!(
        v["tests"]["redirection"]["result"],
        "redirection-invalid-cert"
    );

    // Nothing listening: the site is down, exit 2.
    let dead = free_port();
    let out = Command::new(BIN)
        .args([
            "audit",
            "http://127.0.0.1/",
            "--http-port",
            &dead.to_string(),
        ])
        .args(["--https-port", &dead.to_string(), "--timeout", "2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("The site seems to be down."));
}

/// `check` predicts from the configuration what `audit` measures: the same scores
/// wherever the page's own cookies and scripts do not count (strict's cookie and
/// SRI bonuses, weak's cookie and script penalties come from its upstream).
#[test]
fn check_predicts_the_grades_audit_measures() {
    let s = sites();
    let out = Command::new(BIN)
        .args(["check", "--format", "json", "--fail-on", "error", "-c"])
        .arg(s.gw.dir.path().join("gw.yaml"))
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let predicted: Vec<(&str, &str, i64)> = HOSTS
        .iter()
        .map(|h| {
            let p = &v["predicted"][h.trim_end_matches(".test")];
            (
                *h,
                p["grade"].as_str().unwrap(),
                p["score"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        predicted,
        [
            ("default.test", "B+", 80),
            ("strict.test", "A+", 130),
            ("weak.test", "F", 5),
            ("inline.test", "B", 70),
            ("reportonly.test", "B", 75),
        ]
    );
    for (host, grade, score) in [
        ("default.test", "B+", 80),
        ("inline.test", "B", 70),
        ("reportonly.test", "B", 75),
    ] {
        let audited = audit_json(&s, host);
        assert_eq!(
            (
                audited["grade"].as_str().unwrap(),
                audited["score"].as_i64().unwrap()
            ),
            (grade, score)
        );
    }
    let strict = &v["predicted"]["strict"]["deductions"];
    assert_eq!(
        strict[0],
        serde_json::json!({"test": "content-security-policy", "result": "csp-implemented-with-no-unsafe-default-src-none", "modifier": 10})
    );
}

/// `audit` of `http://127.0.0.1:PORT/` with HTTPS closed and `--timeout SECS`:
/// exit code and JSON. The process must end within a minute; the bound only keeps
/// a hostile site from hanging the test.
fn audit_plain(port: u16, timeout_secs: u32) -> (i32, Value) {
    let mut child = Command::new(BIN)
        .args(["audit", "http://127.0.0.1/", "--format", "json"])
        .args(["--timeout", &timeout_secs.to_string()])
        .args(["--http-port", &port.to_string()])
        .args(["--https-port", &free_port().to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut out).unwrap();
        out
    });
    let status = wait_exit(&mut child, Duration::from_secs(60));
    let v = serde_json::from_slice(&reader.join().unwrap()).unwrap_or(Value::Null);
    (status.code().unwrap_or(-1), v)
}

/// A hostile site cannot keep `audit` going: a redirect loop stops after 10
/// redirects, a decompression bomb is read only up to the HTML limit, a body
/// dripped a few bytes at a time is read only until the timeout, and a redirect
/// to a local file is never followed.
#[test]
fn hostile_sites_are_bounded() {
    let lp = PageServer::start(vec![(
        "/",
        Page::new("text/plain", "")
            .status(302)
            .header("Location", "/"),
    )]);
    let (code, v) = audit_plain(lp.addr.port(), 5);
    assert_eq!(code, 0, "{v}");
    let hops = v["redirects"].as_array().unwrap();
    assert_eq!(hops.len(), 11);
    assert!(hops.iter().all(|h| h["status"] == 302));
    assert_eq!(
        v["tests"]["redirection"]["result"],
        "redirection-not-to-https"
    );

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(
        &mut gz,
        b"<!doctype html><script src=http://x.example/a.js></script>",
    )
    .unwrap();
    std::io::Write::write_all(&mut gz, &vec![b' '; 64 << 20]).unwrap();
    let bomb = gz.finish().unwrap();
    assert!(bomb.len() < 1 << 20);
    let bs = PageServer::start(vec![(
        "/",
        Page::html(bomb).header("Content-Encoding", "gzip"),
    )]);
    let (code, v) = audit_plain(bs.addr.port(), 5);
    assert_eq!(code, 0, "{v}");
    // The script at the start of the page was still read.
    assert_eq!(
        v["tests"]["subresource-integrity"]["result"],
        "sri-not-implemented-and-external-scripts-not-loaded-securely"
    );

    // About 1,250 chunks of 64 bytes, 100 ms apart: two minutes, if nothing cut
    // it short.
    let mut drip = Page::html("<!doctype html><script src=http://x.example/a.js></script>");
    drip.pieces
        .extend(std::iter::repeat_n(b"<p>.</p>".to_vec(), 10_000));
    drip.drip = Some(Duration::from_millis(100));
    let ds = PageServer::start(vec![("/", drip.in_chunks(64))]);
    let (code, v) = audit_plain(ds.addr.port(), 2);
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        v["tests"]["subresource-integrity"]["result"],
        "sri-not-implemented-and-external-scripts-not-loaded-securely"
    );

    let fs = PageServer::start(vec![(
        "/",
        Page::new("text/plain", "")
            .status(301)
            .header("Location", "file:///etc/passwd"),
    )]);
    let dead = free_port();
    let out = Command::new(BIN)
        .args(["audit", "http://127.0.0.1/", "--timeout", "5"])
        .args([
            "--http-port",
            &fs.addr.port().to_string(),
            "--https-port",
            &dead.to_string(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("root:"));
}

/// A page read only in part never gets a better grade than the whole page: an
/// insecure script at the end of a 2.3 MB page counts, and past the 32 MiB read
/// limit, subresource-integrity (and so the grade) is not given: exit 2. A part
/// that already has the worst result is graded (the bomb above).
#[test]
fn a_page_read_in_part_is_not_graded_better_than_the_whole() {
    let filler = "<p>filler</p>\n".repeat(2_300_000 / 14);
    let late = format!(
        "<!doctype html><script src=/app.js></script>{filler}\
         <script src=http://cdn.example/late.js></script>"
    );
    let ls = PageServer::start(vec![("/", Page::html(late).in_chunks(64 << 10))]);
    let (code, v) = audit_plain(ls.addr.port(), 10);
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        v["tests"]["subresource-integrity"]["result"],
        "sri-not-implemented-and-external-scripts-not-loaded-securely"
    );

    let huge = format!(
        "<!doctype html><script src=/app.js></script>{}",
        "<p>filler</p>\n".repeat((33 << 20) / 14)
    );
    let hs = PageServer::start(vec![("/", Page::html(huge).in_chunks(256 << 10))]);
    let (code, v) = audit_plain(hs.addr.port(), 20);
    assert_eq!(code, 2, "{v}");
    assert_eq!(v, Value::Null);
}

/// The page as the Observatory's jsdom reads it, scripting off: a script in
/// `<noscript>` counts, one in `<template>` or in MathML does not.
#[test]
fn scripts_count_as_the_observatory_reads_the_page() {
    let sri = |page: &str| {
        let s = PageServer::start(vec![("/", Page::html(page.to_string()))]);
        let (code, v) = audit_plain(s.addr.port(), 10);
        assert_eq!(code, 0, "{v}");
        v["tests"]["subresource-integrity"]["result"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        sri("<script src=/app.js></script><noscript><script src=http://cdn.example/n.js></script></noscript>"),
        "sri-not-implemented-and-external-scripts-not-loaded-securely"
    );
    assert_eq!(
        sri("<script src=/app.js></script><template><script src=http://cdn.example/t.js></script></template>\
             <math><script src=http://cdn.example/m.js></script></math>"),
        "sri-not-implemented-but-all-scripts-loaded-from-secure-origin"
    );
}
