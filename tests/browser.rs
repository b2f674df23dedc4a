//! A real browser (Debian's headless Chromium) loads pages through the gateway:
//! what the nonce lets run, and what the CSP still blocks. The page records what
//! ran as attributes on <html>, read back from the DOM Chromium dumps.

mod common;

use std::process::Command;

use common::pages::{Page, PageServer};
use common::*;

fn chromium() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_string())
}

/// The `data-*` attributes on <html> after the page loaded and ran.
fn ran(url: &str) -> Vec<String> {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--host-resolver-rules=MAP *.test 127.0.0.1",
            "--virtual-time-budget=5000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
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
        "listeners: [{{address: \"{{listen}}\"}}]\nvhosts:\n{}{}{}",
        vhost(
            "strict",
            &format!("{{csp_nonce: true, csp_strict_dynamic: true, {plain}}}")
        ),
        vhost("nonce", &format!("{{csp_nonce: true, {plain}}}")),
        vhost("open", "{csp_enabled: false}"),
    );
    let gw = Gateway::start(&yaml);
    let url = |host: &str| format!("http://{host}.test:{}/", gw.addr.port());

    // Without a CSP everything runs: the page and both servers work.
    assert_eq!(
        ran(&url("open")),
        ["dynamic", "evil", "handler", "inline", "self"]
    );
    // Nonces: the inline and same-origin scripts run; the handler and the script
    // from an origin the policy does not list do not, though both are in the HTML.
    assert_eq!(ran(&url("nonce")), ["inline", "self"]);
    // With 'strict-dynamic', what a nonced script adds runs too.
    assert_eq!(ran(&url("strict")), ["dynamic", "inline", "self"]);
}
