//! CSP violation reports through the real binary: the report directives in
//! every CSP for the response's scheme, the collector's answers to the formats
//! browsers send and to hostile requests, the counts by label, the JSON log
//! lines, and that nothing of it reaches the upstream.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::pages::{Page, PageServer};
use common::tls::{gateway_with_tls, https_client, TestPki};
use common::*;

const PATH: &str = "/.well-known/csp-reports";
/// The built-in enforced policy, as every vhost here sends it.
const CSP: &str = DEFAULT_HEADERS_HTTP[0].1;

struct Setup {
    upstream: Upstream,
    gw: Gateway,
    pki: TestPki,
}

fn setup() -> Setup {
    let upstream = Upstream::start("app");
    let rest = format!(
        r#"trusted_proxies: ["127.0.0.1"]
vhosts:
  - name: shop
    hosts: [shop.test]
    upstreams: ["{up}"]
    security:
      csp_report_collect: true
      csp_report_only_policy: {{script-src: ["'self'"]}}
    routes:
      - {{name: app, prefix: /app}}
      - {{name: quiet, prefix: /quiet, security: {{csp_report_collect: false}}}}
      - name: ext
        prefix: /ext
        security: {{csp_report_collect: false, csp_report_uri: "https://collector.example/csp"}}
  - name: plain
    hosts: [plain.test]
    upstreams: ["{up}"]
"#,
        up = upstream.addr
    );
    let (gw, pki) = gateway_with_tls("shop.test", &rest);
    Setup { upstream, gw, pki }
}

/// POSTs `body` as `content_type` to the collector of `shop.test`.
fn post(gw: &Gateway, content_type: &str, body: &str) -> Reply {
    reply(
        client()
            .post(gw.url(PATH))
            .header("Host", "shop.test")
            .header("Content-Type", content_type)
            .body(body.to_string())
            .send()
            .unwrap(),
    )
}

fn reports(gw: &Gateway, route: &str, directive: &str, disposition: &str) -> f64 {
    gw.metric(&format!(
        "secgw_csp_reports_total{{directive=\"{directive}\",disposition=\"{disposition}\",route=\"{route}\",vhost=\"shop\"}}"
    ))
    .unwrap_or(0.0)
}

fn rejected(gw: &Gateway, reason: &str) -> f64 {
    gw.metric(&format!(
        "secgw_csp_reports_rejected_total{{reason=\"{reason}\",vhost=\"shop\"}}"
    ))
    .unwrap()
}

/// Chromium's legacy report (`report-uri`), for a report-only policy.
fn chromium_legacy(document: &str) -> String {
    format!(
        r#"{{"csp-report":{{"document-uri":"{document}","referrer":"","violated-directive":"script-src-elem","effective-directive":"script-src-elem","original-policy":"script-src 'self'; report-uri {PATH}","disposition":"report","blocked-uri":"inline","line-number":4,"column-number":9,"source-file":"{document}","status-code":200,"script-sample":"document.title = 1"}}}}"#
    )
}

/// Firefox's legacy report: its own key order, no status code.
const FIREFOX_LEGACY: &str = r#"{"csp-report":{"blocked-uri":"https://evil.test/pixel.gif","column-number":1,"disposition":"enforce","document-uri":"https://shop.test/app/cart","effective-directive":"img-src","line-number":1,"original-policy":"default-src 'self'; report-uri /.well-known/csp-reports","referrer":"","source-file":"https://shop.test/app/cart","violated-directive":"img-src"}}"#;

/// A Reporting API batch: two violations and a report of another type.
const REPORTING_API_BATCH: &str = r#"[
 {"age":12,"type":"csp-violation","url":"https://shop.test/app/a","user_agent":"Mozilla/5.0",
  "body":{"blockedURL":"inline","columnNumber":3,"disposition":"report","documentURL":"https://shop.test/app/a",
          "effectiveDirective":"script-src-elem","lineNumber":7,"originalPolicy":"script-src 'self'",
          "referrer":"","sample":"","sourceFile":"https://shop.test/app/a","statusCode":200}},
 {"age":30,"type":"deprecation","url":"https://shop.test/","user_agent":"Mozilla/5.0",
  "body":{"id":"Something","message":"old","lineNumber":1}},
 {"age":40,"type":"csp-violation","url":"https://shop.test/","user_agent":"Mozilla/5.0",
  "body":{"blockedURL":"https://cdn.example/x.js","disposition":"enforce","documentURL":"https://shop.test/",
          "effectiveDirective":"script-src-elem","originalPolicy":"default-src 'self'","referrer":"",
          "statusCode":200}}
]"#;

#[test]
fn every_csp_carries_the_report_endpoint_for_its_scheme() {
    let s = setup();
    let report_uri = format!("; report-uri {PATH}");
    let report_to = format!("; report-uri {PATH}; report-to secgw-csp");
    let endpoint = format!("secgw-csp=\"{PATH}\"");

    // Plain HTTP: report-uri only, which browsers then use; no endpoint header.
    let r = get(&s.gw, "shop.test", "/app/x", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.all("content-security-policy"),
        [format!("{CSP}{report_uri}")]
    );
    assert_eq!(
        r.all("content-security-policy-report-only"),
        [format!("script-src 'self'{report_uri}")]
    );
    assert!(!r.has("reporting-endpoints"));

    // HTTPS: report-to beside it, and the endpoint it names.
    let https = https_client(&s.pki.ca_pem(), true, &[("shop.test", s.gw.tls_addr)]);
    let r = reply(https.get("https://shop.test/app/x").send().unwrap());
    assert_eq!(
        r.all("content-security-policy"),
        [format!("{CSP}{report_to}")]
    );
    assert_eq!(
        r.all("content-security-policy-report-only"),
        [format!("script-src 'self'{report_to}")]
    );
    assert_eq!(r.all("reporting-endpoints"), [endpoint.as_str()]);

    // HTTPS per a trusted proxy counts as HTTPS.
    let r = get(&s.gw, "shop.test", "/", &[("X-Forwarded-Proto", "https")]);
    assert_eq!(
        r.all("content-security-policy"),
        [format!("{CSP}{report_to}")]
    );
    assert_eq!(r.all("reporting-endpoints"), [endpoint.as_str()]);

    // A route that turns collection off reports nowhere; one with an external
    // collector reports there.
    let r = get(&s.gw, "shop.test", "/quiet", &[]);
    assert_eq!(r.all("content-security-policy"), [CSP]);
    assert_eq!(
        r.all("content-security-policy-report-only"),
        ["script-src 'self'"]
    );
    let r = reply(https.get("https://shop.test/ext").send().unwrap());
    assert_eq!(
        r.all("content-security-policy"),
        [format!(
            "{CSP}; report-uri https://collector.example/csp; report-to secgw-csp"
        )]
    );
    assert_eq!(
        r.all("reporting-endpoints"),
        ["secgw-csp=\"https://collector.example/csp\""]
    );
    // A vhost without report settings is unchanged.
    let r = get(&s.gw, "plain.test", "/", &[]);
    assert_default_headers(&r, false);
    assert!(!r.has("content-security-policy-report-only"));

    // The gateway's own answers carry the same policy: here a 405 from the collector.
    let r = get(&s.gw, "shop.test", PATH, &[]);
    assert_eq!(r.status, 405);
    assert_eq!(
        r.all("content-security-policy"),
        [format!("{CSP}{report_uri}")]
    );
    assert_eq!(s.upstream.hits(), 6);
}

#[test]
fn reports_in_every_browser_format_are_counted_and_never_reach_the_upstream() {
    let s = setup();
    let gw = &s.gw;
    for (content_type, body) in [
        (
            "application/csp-report",
            chromium_legacy("https://shop.test/app/page;jsessionid=5EC2E7?session=abc"),
        ),
        ("application/csp-report", FIREFOX_LEGACY.to_string()),
        ("application/reports+json", REPORTING_API_BATCH.to_string()),
        (
            "application/json; charset=utf-8",
            chromium_legacy("https://shop.test/quiet/x"),
        ),
    ] {
        let r = post(gw, content_type, &body);
        assert_eq!(r.status, 204, "{content_type}: {}", r.body);
        assert_eq!(r.body, "");
        assert!(!r.has("content-length"));
        assert_eq!(r.one("x-content-type-options"), "nosniff");
        assert_eq!(r.one("x-frame-options"), "DENY");
        assert_eq!(
            r.all("content-security-policy"),
            [format!("{CSP}; report-uri {PATH}")]
        );
    }
    assert_eq!(reports(gw, "app", "script-src-elem", "report"), 2.0);
    assert_eq!(reports(gw, "app", "img-src", "enforce"), 1.0);
    assert_eq!(reports(gw, "_vhost", "script-src-elem", "enforce"), 1.0);
    // `/quiet` does not collect: its document's report is counted as unmatched.
    assert_eq!(reports(gw, "_unmatched", "script-src-elem", "report"), 1.0);
    assert_eq!(reports(gw, "app", "script-src-elem", "enforce"), 0.0);
    assert_eq!(s.upstream.hits(), 0);

    // HTTP/2 over TLS takes the same path.
    let https = https_client(&s.pki.ca_pem(), true, &[("shop.test", gw.tls_addr)]);
    let r = https
        .post(format!("https://shop.test{PATH}"))
        .header("Content-Type", "application/reports+json")
        .body(REPORTING_API_BATCH)
        .send()
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 204);
    assert_eq!(reports(gw, "app", "script-src-elem", "report"), 3.0);
    assert_eq!(s.upstream.hits(), 0);

    // The log: one bare JSON line per report, without the query string and the
    // session id in a path parameter.
    let log = gw.log();
    let lines: Vec<&str> = log.lines().filter(|l| l.starts_with("{\"time\"")).collect();
    assert_eq!(lines.len(), 7, "{log}");
    assert!(!log.contains("session=abc"), "{log}");
    assert!(!log.contains("5EC2E7"), "{log}");
    assert!(lines[0].contains(
        "\"vhost\":\"shop\",\"route\":\"app\",\"format\":\"legacy\",\"directive\":\"script-src-elem\",\
         \"disposition\":\"report\",\"blocked_url\":\"inline\",\
         \"document_url\":\"https://shop.test/app/page\",\
         \"source_file\":\"https://shop.test/app/page\",\"line\":4,\"column\":9,\
         \"sample\":\"document.title = 1\"}"
    ), "{}", lines[0]);
}

#[test]
fn bad_report_requests_get_their_status_and_are_counted() {
    let s = setup();
    let gw = &s.gw;
    let check = |r: &Reply, status: u16| {
        assert_eq!(r.status, status, "{}", r.body);
        assert_eq!(r.one("x-content-type-options"), "nosniff");
        assert_eq!(r.one("x-frame-options"), "DENY");
    };
    let r = get(gw, "shop.test", PATH, &[]);
    check(&r, 405);
    assert_eq!(r.one("allow"), "POST");
    check(&request(gw, "PUT", "shop.test", PATH, &[]), 405);
    check(&post(gw, "text/plain", FIREFOX_LEGACY), 415);
    check(&post(gw, "application/x-www-form-urlencoded", "a=b"), 415);
    check(
        &post(gw, "application/csp-report", "{\"csp-report\": "),
        400,
    );
    check(&post(gw, "application/json", "not json"), 400);
    check(&post(gw, "application/reports+json", "[]"), 400);
    check(
        &post(
            gw,
            "application/reports+json",
            r#"[{"type":"deprecation","body":{}}]"#,
        ),
        400,
    );
    // Over 64 KB: refused by its declared length, or by what arrives.
    let big = format!(
        "{{\"csp-report\": {{\"effective-directive\": \"img-src\", \"x\": \"{}\"}}}}",
        "a".repeat(64 * 1024)
    );
    check(&post(gw, "application/csp-report", &big), 413);
    let chunked = client()
        .post(gw.url(PATH))
        .header("Host", "shop.test")
        .header("Content-Type", "application/csp-report")
        .body(reqwest::blocking::Body::new(std::io::Cursor::new(
            big.clone().into_bytes(),
        )))
        .send()
        .unwrap();
    check(&reply(chunked), 413);
    // Exactly 64 KB of valid report is taken.
    let report = |x: &str| {
        format!("{{\"csp-report\": {{\"effective-directive\": \"img-src\", \"x\": \"{x}\"}}}}")
    };
    let padded = report(&"a".repeat(64 * 1024 - report("").len()));
    assert_eq!(padded.len(), 64 * 1024);
    check(&post(gw, "application/csp-report", &padded), 204);

    assert_eq!(rejected(gw, "method"), 2.0);
    assert_eq!(rejected(gw, "content_type"), 2.0);
    assert_eq!(rejected(gw, "malformed"), 2.0);
    assert_eq!(rejected(gw, "empty"), 2.0);
    assert_eq!(rejected(gw, "too_large"), 2.0);
    assert_eq!(rejected(gw, "timeout"), 0.0);
    assert_eq!(reports(gw, "_unmatched", "img-src", "enforce"), 1.0);
    assert_eq!(s.upstream.hits(), 0);
}

#[test]
fn a_report_body_that_never_arrives_gets_408_and_the_connection_closes() {
    let upstream = Upstream::start("app");
    let yaml = format!(
        "{}admin: {{address: \"{{admin}}\"}}\nlimits: {{client_header_timeout_ms: 300}}\n",
        one_vhost(
            "[shop.test]",
            &upstream.addr.to_string(),
            "[]",
            "    security: {csp_report_collect: true}"
        )
    );
    let gw = Gateway::start(&yaml);
    let mut s = TcpStream::connect(gw.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    write!(
        s,
        "POST {PATH} HTTP/1.1\r\nHost: shop.test\r\nContent-Type: application/csp-report\r\n\
         Content-Length: 100\r\n\r\n{{\"csp-report\": "
    )
    .unwrap();
    let raw = read_until_closed(&mut s);
    assert!(raw.starts_with("HTTP/1.1 408 "), "{raw}");
    assert_eq!(
        head_of(&raw)
            .matches("\r\nX-Frame-Options: DENY\r\n")
            .count(),
        1
    );
    assert_eq!(upstream.hits(), 0);
    eventually("the timeout is counted", || {
        gw.admin_get("/metrics")
            .1
            .contains("secgw_csp_reports_rejected_total{reason=\"timeout\",vhost=\"app\"} 1")
    });
}

#[test]
fn a_flood_is_counted_whole_and_logged_within_the_budget() {
    let s = setup();
    let gw = &s.gw;
    let body = chromium_legacy("https://shop.test/app/flood");
    let started = Instant::now();
    for _ in 0..40 {
        assert_eq!(post(gw, "application/csp-report", &body).status, 204);
    }
    let seconds = started.elapsed().as_secs() + 1;
    // Into a later second, whose first line carries the count of suppressed ones.
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(post(gw, "application/csp-report", &body).status, 204);
    assert_eq!(reports(gw, "app", "script-src-elem", "report"), 41.0);

    let lines = gw.report_lines();
    let suppressed: u64 = lines
        .iter()
        .filter_map(|l| l.get("suppressed")?.as_u64())
        .sum();
    assert!(lines.len() as u64 <= 10 * (seconds + 1), "{}", lines.len());
    assert!(suppressed > 0);
    assert_eq!(lines.len() as u64 + suppressed, 41);
}

#[test]
fn both_policies_carry_the_nonce_of_the_page() {
    let page = "<!doctype html><script>1</script>";
    let server = PageServer::start(vec![("/", Page::html(page))]);
    let yaml = one_vhost(
        "[shop.test]",
        &server.addr.to_string(),
        "[]",
        "    security:\n      csp_nonce: true\n      csp_report_collect: true\n      \
         csp_report_only_policy: {script-src: [\"'self'\"], style-src: [\"'none'\"]}",
    );
    let gw = Gateway::start(&yaml);
    let r = get(&gw, "shop.test", "/", &[]);
    let nonce = r
        .body
        .split("nonce=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_string();
    assert_eq!(nonce.len(), 24);
    assert_eq!(
        r.all("content-security-policy-report-only"),
        [format!(
            "script-src 'self' 'nonce-{nonce}'; style-src 'none'; report-uri {PATH}"
        )]
    );
    assert_eq!(
        r.one("content-security-policy")
            .matches(&format!("'nonce-{nonce}'"))
            .count(),
        1
    );
}

#[test]
fn report_settings_that_contradict_each_other_are_refused() {
    for (security, key, reason) in [
        (
            "{csp_report_collect: true, csp_report_uri: \"https://c.test/r\"}",
            "vhosts[0].security.csp_report_uri",
            "both on",
        ),
        (
            "{csp_report_only: true, csp_report_only_policy: {default-src: [\"'self'\"]}}",
            "vhosts[0].security.csp_report_only_policy",
            "csp_report_only already sends csp_policy",
        ),
        (
            "{csp_report_collect: true, csp_policy: {report-uri: [\"/x\"]}}",
            "vhosts[0].security.csp_policy.report-uri",
            "remove this directive",
        ),
        (
            "{csp_report_path: /reports/}",
            "vhosts[0].security.csp_report_path",
            "a report path is an absolute path",
        ),
        (
            "{csp_report_uri: \"javascript:alert(1)\"}",
            "vhosts[0].security.csp_report_uri",
            "http:// or https://",
        ),
        (
            "{csp_report_uri: \"https://c.test/a;b\"}",
            "vhosts[0].security.csp_report_uri",
            "percent-encode",
        ),
        (
            "{csp_report_only_policy: {script-src: [self]}}",
            "vhosts[0].security.csp_report_only_policy",
            "must be quoted",
        ),
    ] {
        let yaml = one_vhost(
            "[shop.test]",
            "127.0.0.1:9",
            "[]",
            &format!("    security: {security}"),
        );
        let (code, text, _dir) = check_config(&yaml, &[]);
        assert_eq!(code, 1, "{security}: {text}");
        assert!(text.contains("gw.yaml"), "{text}");
        assert!(text.contains(key), "{security}: {text}");
        assert!(text.contains(reason), "{security}: {text}");
    }
}

/// Raw requests an HTTP client would not send.
#[test]
fn hostile_raw_requests_to_the_collector() {
    let s = setup();
    let gw = &s.gw;
    let exchange = |bytes: &str| raw_exchange(gw.addr, bytes.as_bytes());
    // A declared length far over the limit is refused before any body is read.
    let raw = exchange(&format!(
        "POST {PATH} HTTP/1.1\r\nHost: shop.test\r\nContent-Type: application/csp-report\r\n\
         Content-Length: 99999999999\r\n\r\n"
    ));
    assert!(raw.starts_with("HTTP/1.1 413 "), "{raw}");
    // The path is compared after normalization, so dot-segments reach it too,
    // and an encoded variant is the same path.
    for path in [
        "/x/../.well-known/csp-reports",
        "/.well-known/%63sp-reports",
    ] {
        let raw = exchange(&format!(
            "GET {path} HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n"
        ));
        assert!(raw.starts_with("HTTP/1.1 405 "), "{path}: {raw}");
    }
    // Another vhost's host does not reach this collector.
    let raw = exchange(&format!(
        "GET {PATH} HTTP/1.1\r\nHost: plain.test\r\nConnection: close\r\n\r\n"
    ));
    assert!(raw.starts_with("HTTP/1.1 200 "), "{raw}");
    // A body that is not UTF-8 and a JSON bomb of nesting get 400, on a
    // connection that stays usable.
    let mut c = TcpStream::connect(gw.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let nested = format!("{{\"csp-report\": {}", "[".repeat(60_000));
    for body in [&b"\xff\xfe{}"[..], nested.as_bytes()] {
        let head = format!(
            "POST {PATH} HTTP/1.1\r\nHost: shop.test\r\nContent-Type: application/csp-report\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        );
        c.write_all(head.as_bytes()).unwrap();
        c.write_all(body).unwrap();
        let mut buf = [0u8; 4096];
        let n = c.read(&mut buf).unwrap();
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(text.starts_with("HTTP/1.1 400 "), "{text}");
    }
    assert_eq!(rejected(gw, "malformed"), 2.0);
    assert_eq!(s.upstream.hits(), 1);
}

/// An HTTP/2 report over the size limit gets its `413` like HTTP/1 does, whether
/// its body is declared too large or only turns out so. A declared size over the
/// limit is answered before the body is done, so that stream is left open: ending
/// it short of its `content-length` would race the answer against the h2 layer's
/// PROTOCOL_ERROR reset (RFC 9113 8.1.1), and either could reach the client first.
#[test]
fn an_oversized_http2_report_gets_413() {
    use common::framings::{h2_connect, h2_exchange, H2End, H2Request};
    let s = setup();
    let ca = s.pki.ca_pem();
    let report =
        |pieces: Vec<Vec<u8>>, content_length: bool, extra: &[(&str, &str)], end: H2End| {
            let mut headers = vec![(
                "content-type".to_string(),
                "application/csp-report".to_string(),
            )];
            headers.extend(extra.iter().map(|(n, v)| (n.to_string(), v.to_string())));
            H2Request {
                method: "POST".into(),
                path: PATH.into(),
                headers,
                pieces,
                content_length,
                end,
            }
        };
    let rt = runtime();
    let statuses = rt.block_on(async {
        let mut h2 = h2_connect(s.gw.tls_addr, "shop.test", &ca).await;
        let mut out = Vec::new();
        let big = vec![vec![b' '; 50_000], vec![b' '; 50_000]];
        for req in [
            report(big.clone(), true, &[], H2End::OnData),
            report(big, false, &[], H2End::OnData),
            report(
                vec![b"{}".to_vec()],
                false,
                &[("content-length", "100000")],
                H2End::Open,
            ),
            report(vec![b"{}".to_vec()], true, &[], H2End::OnData),
        ] {
            out.push(
                h2_exchange(&mut h2, "shop.test", &req)
                    .await
                    .map(|a| a.status)
                    .map_err(|e| e.reason()),
            );
        }
        out
    });
    assert_eq!(statuses, vec![Ok(413), Ok(413), Ok(413), Ok(400)]);
    assert_eq!(rejected(&s.gw, "too_large"), 3.0);
}
