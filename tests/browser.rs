//! A real browser (Debian's headless Chromium) loads pages through the gateway:
//! what the nonce lets run, and what the CSP still blocks (the page records what
//! ran as attributes on <html>, read back from the DOM Chromium dumps); and the
//! violation reports it sends to the gateway's collector.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::pages::{Page, PageServer};
use common::tls::gateway_with_tls;
use common::*;

fn chromium() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_string())
}

/// Headless Chromium with a fresh profile, `*.test` resolved to loopback.
fn headless(profile: &tempfile::TempDir) -> Command {
    let mut cmd = Command::new(chromium());
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--host-resolver-rules=MAP *.test 127.0.0.1",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()));
    cmd
}

/// The `data-*` attributes on <html> after the page loaded and ran.
fn ran(url: &str) -> Vec<String> {
    let profile = tempfile::tempdir().unwrap();
    let out = headless(&profile)
        .args(["--virtual-time-budget=5000", "--dump-dom"])
        .arg(url)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{} did not start ({e}): run scripts/deps.sh test",
                chromium()
            )
        });
    let dom = String::from_utf8_lossy(&out.stdout).to_string();
    let start = dom
        .find("<html")
        .unwrap_or_else(|| panic!("no page: {dom}\n{}", String::from_utf8_lossy(&out.stderr)));
    let tag = &dom[start..start + dom[start..].find('>').unwrap()];
    let mut attrs: Vec<String> = tag
        .split_whitespace()
        .filter_map(|a| a.strip_prefix("data-"))
        .map(|a| a.split('=').next().unwrap().to_string())
        .collect();
    attrs.sort();
    attrs
}

const MARK: &str = "document.documentElement.setAttribute";

#[test]
fn chromium_runs_nonced_scripts_and_blocks_handlers_and_foreign_scripts() {
    let other = PageServer::start(vec![
        (
            "/evil.js",
            Page::new("text/javascript", format!("{MARK}('data-evil', 'ran');")),
        ),
        (
            "/dynamic.js",
            Page::new("text/javascript", format!("{MARK}('data-dynamic', 'ran');")),
        ),
    ]);
    let elsewhere = format!("http://evil.test:{}", other.addr.port());
    let page = format!(
        r#"<!doctype html><html><head>
<script>{MARK}("data-inline", "ran");</script>
<script src="/app.js"></script>
<script src="{elsewhere}/evil.js"></script>
</head><body>
<img src="/missing.png" onerror="{MARK}('data-handler', 'ran')">
<script>var s = document.createElement("script"); s.src = "{elsewhere}/dynamic.js"; document.head.appendChild(s);</script>
</body></html>
"#
    );
    let site = PageServer::start(vec![
        ("/", Page::html(page)),
        (
            "/app.js",
            Page::new("text/javascript", format!("{MARK}('data-self', 'ran');")),
        ),
    ]);
    let vhost = |name: &str, security: &str| {
        format!(
            "  - name: {name}\n    hosts: [{name}.test]\n    upstreams: [\"{}\"]\n    security: {security}\n",
            site.addr
        )
    };
    // Served over plain HTTP: the built-in `upgrade-insecure-requests` would send
    // every script to https on the same port.
    let plain = "csp_policy: {upgrade-insecure-requests: null}";
    let yaml = format!(
        "listeners: [{{address: \"{{listen}}\"}}]\nadmin: {{address: \"{{admin}}\"}}\nvhosts:\n{}{}{}{}",
        vhost(
            "strict",
            &format!("{{csp_nonce: true, csp_strict_dynamic: true, {plain}}}")
        ),
        vhost(
            "nonce",
            &format!("{{csp_nonce: true, csp_nonce_cache: false, {plain}}}")
        ),
        vhost("cached", &format!("{{csp_nonce: true, {plain}}}")),
        vhost("open", "{csp_enabled: false}"),
    );
    let gw = Gateway::start(&yaml);
    let url = |host: &str| format!("http://{host}.test:{}/", gw.addr.port());
    let hits = |vhost: &str| {
        gw.metric(&format!(
            "secgw_csp_nonce_cache_total{{result=\"hit\",route=\"_vhost\",vhost=\"{vhost}\"}}"
        ))
    };

    // Without a CSP everything runs: the page and both servers work.
    assert_eq!(
        ran(&url("open")),
        ["dynamic", "evil", "handler", "inline", "self"]
    );
    // Nonces: the inline and same-origin scripts run; the handler and the script
    // from an origin the policy does not list do not, though both are in the HTML.
    assert_eq!(ran(&url("nonce")), ["inline", "self"]);
    assert_eq!(hits("nonce"), Some(0.0));
    // The same from the template cache: the second page is its template's.
    assert_eq!(ran(&url("cached")), ["inline", "self"]);
    assert_eq!(ran(&url("cached")), ["inline", "self"]);
    assert_eq!(hits("cached"), Some(1.0));
    // With 'strict-dynamic', what a nonced script adds runs too.
    assert_eq!(ran(&url("strict")), ["dynamic", "inline", "self"]);
}

/// Chromium showing a page until dropped.
struct Browser(Child);

impl Browser {
    fn open(profile: &tempfile::TempDir, url: &str) -> Browser {
        let child = headless(profile)
            .arg("--ignore-certificate-errors")
            .arg(url)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "{} did not start ({e}): run scripts/deps.sh test",
                    chromium()
                )
            });
        Browser(child)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits, within a bound, for `sample` on the gateway's /metrics to reach `want`.
fn wait_for_metric(gw: &Gateway, sample: &str, want: f64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while gw.metric(sample) != Some(want) {
        assert!(
            Instant::now() < deadline,
            "{sample} is {:?}, not {want}:\n{}",
            gw.metric(sample),
            gw.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn chromium_reports_a_report_only_violation_over_http_and_https() {
    let page = format!(
        "<!doctype html><html><head><script>{MARK}('data-inline', 'ran');</script></head>\
         <body>report me</body></html>"
    );
    let site = PageServer::start(vec![("/page", Page::html(page))]);
    let rest = format!(
        r#"vhosts:
  - name: shop
    hosts: [shop.test]
    upstreams: ["{}"]
    security:
      csp_enabled: false
      csp_report_collect: true
      csp_report_only_policy: {{script-src: ["'self'"]}}
"#,
        site.addr
    );
    let (gw, _pki) = gateway_with_tls("shop.test", &rest);
    let sample = "secgw_csp_reports_total{directive=\"script-src-elem\",disposition=\"report\",route=\"_vhost\",vhost=\"shop\"}";

    // Plain HTTP: the legacy report, to report-uri.
    let profile = tempfile::tempdir().unwrap();
    let browser = Browser::open(
        &profile,
        &format!("http://shop.test:{}/page", gw.addr.port()),
    );
    wait_for_metric(&gw, sample, 1.0);
    drop(browser);

    // HTTPS: the Reporting API batch, to the endpoint report-to names.
    let profile = tempfile::tempdir().unwrap();
    let browser = Browser::open(
        &profile,
        &format!("https://shop.test:{}/page", gw.tls_addr.port()),
    );
    wait_for_metric(&gw, sample, 2.0);
    drop(browser);

    let rejected = gw.admin_get("/metrics").1;
    assert!(
        !rejected
            .lines()
            .any(|l| l.starts_with("secgw_csp_reports_rejected_total") && !l.ends_with(" 0")),
        "{rejected}"
    );
    // One report in each format; neither reached the upstream.
    let lines = gw.report_lines();
    let http = format!("http://shop.test:{}/page", gw.addr.port());
    let https = format!("https://shop.test:{}/page", gw.tls_addr.port());
    let seen: Vec<(&str, &str, &str)> = lines
        .iter()
        .map(|l| {
            (
                l["format"].as_str().unwrap(),
                l["document_url"].as_str().unwrap(),
                l["blocked_url"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("legacy", http.as_str(), "inline"),
            ("reporting_api", https.as_str(), "inline")
        ]
    );
    let upstream = site.seen.lock().unwrap();
    assert!(
        upstream.iter().all(|head| !head.contains("csp-reports")),
        "{upstream:?}"
    );
}

/// The published nonce-placement attacks (#30), and markup where lol_html's
/// reading parts from a browser's, as Chromium parses them through the
/// gateway: a deferred, nonced probe lists every other element whose `nonce`
/// Chromium holds. Only the control page's own script may have one; the
/// attacker's elements never do, and nothing from evil.test runs.
#[test]
fn chromium_never_sees_the_nonce_on_an_attackers_element() {
    let evil = PageServer::start(vec![(
        "/x.js",
        Page::new("text/javascript", format!("{MARK}('data-evil', 'ran');")),
    )]);
    let e = format!("//evil.test:{}/x.js", evil.addr.port());
    let attacks = [
        format!("<svg/><![CDATA[><script src={e} z=']]><script q=\"'\"></script>"),
        format!("<math/><![CDATA[><script src={e} z=']]><script q=\"'\"></script>"),
        format!(
            "<svg/><![CDATA[><link rel=modulepreload href={e} q=\"'\">]]><link rel=modulepreload href=/a.js q=\"'\">"
        ),
        format!("<div><svg></div><![CDATA[><script src={e} z=']]></svg><script q=\"'\"></script>"),
        "<svg><script src=/a.js></iframe><foreignObject></script><link rel=modulepreload href=/a.js></svg>"
            .to_string(),
        format!("<svg><script><desc></script><style><a title=\"</style><script src={e} q='\"></style>'></svg>"),
        "<select><xmp><script>1</script></xmp></select><script>2</script>".to_string(),
        // Where html5ever parses <select> the classic way and Chromium does not.
        format!(
            "<select><svg><![CDATA[><script src={e} z=']]></svg><script q=\"'\"></script></select>"
        ),
        format!(
            "<select><svg><![CDATA[><link rel=modulepreload href={e} q=']]></svg></select>\
             <link rel=modulepreload href=/a.js q=\"'\">"
        ),
    ];
    let probe = format!(
        "var me = document.currentScript; {MARK}('data-probe', 'ran');\
         document.querySelectorAll('*').forEach(function (el) {{\
           if (el !== me && el.nonce) {MARK}('data-nonced-' + el.localName, '1'); }});"
    );
    let head = "<!doctype html><html><head><script src=\"/probe.js\" defer></script></head><body>";
    let mut pages: Vec<(String, Page)> = attacks
        .iter()
        .enumerate()
        .map(|(i, a)| {
            (
                format!("/attack{i}"),
                Page::html(format!("{head}{a}</body></html>")),
            )
        })
        .collect();
    pages.push((
        "/control".to_string(),
        Page::html(format!("{head}<script src=/a.js></script></body></html>")),
    ));
    pages.push(("/probe.js".to_string(), Page::new("text/javascript", probe)));
    pages.push(("/a.js".to_string(), Page::new("text/javascript", "")));
    let site = PageServer::start(
        pages
            .iter()
            .map(|(p, page)| (p.as_str(), page.clone()))
            .collect(),
    );
    let yaml = format!(
        "listeners: [{{address: \"{{listen}}\"}}]\nvhosts:\n  - name: nonce\n    hosts: [nonce.test]\n    \
         upstreams: [\"{}\"]\n    security: {{csp_nonce: true, csp_policy: {{upgrade-insecure-requests: null}}}}\n",
        site.addr
    );
    let gw = Gateway::start(&yaml);
    let url = |path: &str| format!("http://nonce.test:{}{path}", gw.addr.port());
    // The probe sees a nonce where the gateway put one, from the rewriter and
    // then from the template it recorded.
    assert_eq!(ran(&url("/control")), ["nonced-script", "probe"]);
    assert_eq!(ran(&url("/control")), ["nonced-script", "probe"]);
    for (i, attack) in attacks.iter().enumerate() {
        assert_eq!(ran(&url(&format!("/attack{i}"))), ["probe"], "{attack}");
    }
}
