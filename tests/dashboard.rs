//! The Grafana dashboard (deploy/grafana/pingora-secgw.json) against a real
//! Prometheus: it scrapes a real gateway under a short, bounded load that moves every
//! metric family, and every query of every panel must return at least one series
//! whose value is above 0 (the counters exist at 0 from start-up, so a series alone
//! proves nothing), every variable's query at least one value. No query may hide an
//! empty result behind `or vector(0)`, `absent()` and the like, so a panel whose
//! metric is renamed, dropped or no longer moved by what it shows fails here. The
//! same Prometheus loads the alert rules: each evaluates without error, and each of
//! their series selectors finds the gateway's series.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::pages::{Page, PageServer};
use common::prometheus::Prometheus;
use common::tls::{client_config, tls_stream, TestPki};
use common::*;

const DASHBOARD: &str = "deploy/grafana/pingora-secgw.json";

fn dashboard() -> serde_json::Value {
    let path = format!("{}/{DASHBOARD}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Every panel (rows' nested panels too) with its title and queries.
fn panels(dashboard: &serde_json::Value) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        let nested = panel["panels"].as_array().cloned().unwrap_or_default();
        for p in std::iter::once(panel).chain(nested.iter()) {
            if p["type"] == "row" {
                continue;
            }
            let exprs = p["targets"]
                .as_array()
                .unwrap_or_else(|| panic!("panel {} has no targets", p["title"]))
                .iter()
                .map(|t| t["expr"].as_str().unwrap().to_string())
                .collect();
            out.push((p["title"].as_str().unwrap().to_string(), exprs));
        }
    }
    out
}

/// What Grafana would send for an expression: the variables at "All" (their
/// `allValue`), `$__rate_interval` at two minutes (Grafana's value for a 30 s scrape
/// interval; the reloads and the load below lie within it). Panics on a variable
/// left over.
fn substitute(expr: &str) -> String {
    let text = expr
        .replace("$__rate_interval", "2m")
        .replace("${vhost}", ".*")
        .replace("$vhost", ".*")
        .replace("${route}", ".*")
        .replace("$route", ".*");
    assert!(
        !text.contains('$'),
        "a variable this test does not know: {expr}"
    );
    text
}

/// The constructs that turn an empty result into a series, refused in any query.
fn hides_an_empty_result(expr: &str) -> Option<&'static str> {
    let words: Vec<&str> = expr
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .collect();
    if words.contains(&"or") {
        return Some("`or`");
    }
    ["vector", "absent", "absent_over_time", "scalar"]
        .into_iter()
        .find(|function| words.contains(function))
}

#[test]
fn the_hiding_constructs_are_recognised() {
    for expr in [
        "sum(rate(x[1m])) or vector(0)",
        "sum(rate(x[1m]))or on() vector(0)",
        "absent(x)",
        "absent_over_time(x[5m])",
        "scalar(x) * 2",
    ] {
        assert!(hides_an_empty_result(expr).is_some(), "{expr}");
    }
    for expr in [
        "sum by (vector_kind) (rate(secgw_or_total[1m]))",
        "histogram_quantile(0.99, sum by (le) (rate(x_bucket[1m])))",
    ] {
        assert_eq!(hides_an_empty_result(expr), None, "{expr}");
    }
}

/// Every metric family the monitoring page lists is on the dashboard.
#[test]
fn the_dashboard_shows_every_documented_metric_family() {
    let page = common::docs::page("docs/operations/monitoring.md");
    let table = page.split("## Metrics").nth(1).unwrap();
    let table = table.trim_start().split("\n\n").next().unwrap();
    let documented: BTreeSet<&str> = table
        .lines()
        .filter_map(|l| l.strip_prefix("| `secgw_"))
        .map(|l| &l[..l.find('`').unwrap()])
        .collect();
    assert!(documented.len() >= 20, "{documented:?}");
    let queries: String = panels(&dashboard())
        .into_iter()
        .flat_map(|(_, exprs)| exprs)
        .collect::<Vec<_>>()
        .join("\n");
    let missing: Vec<&&str> = documented
        .iter()
        .filter(|m| !queries.contains(&format!("secgw_{m}")))
        .collect();
    assert!(missing.is_empty(), "not on the dashboard: {missing:?}");
}

#[test]
fn the_dashboards_structure_is_what_grafana_imports() {
    let d = dashboard();
    assert_eq!(d["uid"], "pingora-secgw");
    let mut ids = BTreeSet::new();
    let all: Vec<&serde_json::Value> = d["panels"].as_array().unwrap().iter().collect();
    for p in &all {
        assert!(
            ids.insert(p["id"].as_u64().unwrap()),
            "duplicate id {}",
            p["id"]
        );
        let grid = &p["gridPos"];
        assert!(
            grid["x"].as_u64().unwrap() + grid["w"].as_u64().unwrap() <= 24,
            "{}",
            p["title"]
        );
        if p["type"] != "row" {
            assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
            for t in p["targets"].as_array().unwrap() {
                assert_eq!(t["datasource"]["uid"], "${datasource}", "{}", p["title"]);
            }
        }
    }
    let variables: Vec<&str> = d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(variables, ["datasource", "vhost", "route"]);
}

/// A gateway whose traffic below moves every family: proxied and failing routes,
/// headers injected, duplicated and stripped, a redirect, CORS preflights, CSP
/// reports (accepted and refused), nonced, skipped and failed pages (from the
/// template cache too, and a page that leaves its template), a refused TLS
/// handshake, a connection over the per-address limit, an HTTP/2 control-frame
/// flood, a malformed head, reloads (good and bad), and access-log lines that cannot
/// be written.
fn busy_gateway(up: &Upstream, pages: &PageServer, dead: &str) -> (Gateway, TestPki) {
    common::tls::gateway_with_tls(
        "app.test",
        &format!(
            r#"trusted_proxies: ["127.0.0.1"]
limits: {{max_connections_per_ip: 1}}
access_log: {{enabled: true, path: access.log}}
vhosts:
  - name: app
    hosts: [app.test]
    upstreams: ["{up}"]
    security:
      csp_report_collect: true
    routes:
      - name: pages
        prefix: /pages/
        upstreams: ["{pages}"]
        security: {{csp_nonce: true}}
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
            up = up.addr,
            pages = pages.addr
        ),
    )
}

/// One round of that traffic.
fn traffic(gw: &Gateway, pki: &TestPki) {
    let https = [("X-Forwarded-Proto", "https")];
    assert_eq!(get(gw, "app.test", "/conflict", &https).status, 200);
    assert_eq!(get(gw, "app.test", "/pages/index.html", &[]).status, 200);
    assert_eq!(get(gw, "app.test", "/pages/changing.html", &[]).status, 200);
    assert_eq!(get(gw, "app.test", "/pages/raw.html", &[]).status, 200);
    // gzip that is not: the nonced response is cut short, and counted.
    let _ = client()
        .get(gw.url("/pages/broken.html"))
        .header("Host", "app.test")
        .send()
        .and_then(|r| r.bytes());
    assert_eq!(get(gw, "secure.test", "/", &[]).status, 301);
    assert_eq!(get(gw, "down.test", "/", &[]).status, 502);
    let preflight = [
        ("Origin", "https://app.test"),
        ("Access-Control-Request-Method", "POST"),
    ];
    assert_eq!(
        request(gw, "OPTIONS", "api.test", "/", &preflight).status,
        204
    );
    // One violation of the enforced policy, one of a report-only one.
    for disposition in ["enforce", "report"] {
        let report = format!(
            r#"{{"csp-report":{{"document-uri":"http://app.test/","violated-directive":"img-src","effective-directive":"img-src","original-policy":"img-src 'self'","disposition":"{disposition}","blocked-uri":"https://evil.test/x.gif"}}}}"#
        );
        let posted = client()
            .post(gw.url("/.well-known/csp-reports"))
            .header("Host", "app.test")
            .header("Content-Type", "application/csp-report")
            .body(report)
            .send()
            .unwrap();
        assert_eq!(posted.status(), 204);
    }
    assert_eq!(
        get(gw, "app.test", "/.well-known/csp-reports", &[]).status,
        405
    );
    // A malformed head, and plain HTTP on the TLS port.
    assert!(raw_exchange(
        gw.addr,
        b"GET / HTTP/1.1\r\nHost: app.test\r\nBad Header\r\n\r\n"
    )
    .starts_with("HTTP/1.1 400 "));
    let mut plain = TcpStream::connect(gw.tls_addr).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = plain.write_all(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n");
    let _ = read_until_closed(&mut plain);
    // 127.0.0.2 holds its one connection; a second from it is refused at accept.
    let held = connect_from("127.0.0.2", gw.addr);
    eventually("the held connection counted", || {
        gw.metric("secgw_connections_open").unwrap_or(0.0) >= 1.0
    });
    let mut refused = connect_from("127.0.0.2", gw.addr);
    refused
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = refused.write_all(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n");
    assert_eq!(read_until_closed(&mut refused), "");
    drop(held);
    // 5,000 WINDOW_UPDATE frames on one HTTP/2 connection: closed for abuse.
    let mut tls = tls_stream(
        gw.tls_addr,
        "app.test",
        client_config(&pki.ca_pem(), &[b"h2"]),
    );
    let mut flood = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    flood.extend_from_slice(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0]);
    flood.extend([0, 0, 4, 0x8, 0, 0, 0, 0, 0, 0, 0, 0, 1].repeat(5_000));
    let _ = tls.write_all(&flood);
    let _ = tls.flush();
    let _ = std::io::Read::read_to_end(&mut tls, &mut Vec::new());
}

#[test]
fn every_panel_variable_and_alert_selector_finds_the_gateways_series() {
    let up = Upstream::start("a");
    let html = "<!doctype html><html><head><script>start()</script></head><body>hi</body></html>";
    // A page that changes on every response: its templates diverge.
    let changing = ["<script>1</script>", "<p>2</p><script>2</script>"].map(Page::html);
    let pages = PageServer::start_rotating(
        vec![
            ("/pages/index.html", vec![Page::html(html)]),
            ("/pages/changing.html", changing.to_vec()),
            (
                "/pages/raw.html",
                vec![Page::html(html).header("Cache-Control", "no-transform")],
            ),
            (
                "/pages/broken.html",
                vec![Page::html("this is not gzip").header("Content-Encoding", "gzip")],
            ),
        ],
        "127.0.0.1",
    );
    let port = free_port();
    let (gw, pki) = busy_gateway(&up, &pages, &format!("127.0.0.1:{port}"));
    let rules =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus/rules.yaml");
    let prometheus = Prometheus::scraping(gw.admin, &[&rules]);
    eventually("Prometheus scraping the gateway", || {
        prometheus.query(r#"up{job="pingora-secgw"} == 1"#).len() == 1
    });

    // A good reload (the same file, SIGHUP), then a bad one, then a good one.
    let conf = gw.dir.path().join("gw.yaml");
    let good = std::fs::read_to_string(&conf).unwrap();
    gw.signal(libc::SIGHUP);
    eventually("a successful reload", || {
        gw.metric(r#"secgw_config_reloads_total{result="success"}"#) >= Some(1.0)
    });
    std::fs::write(&conf, good.replace("vhosts:", "vhosts: 7\nnot_a_key:")).unwrap();
    eventually("a failed reload", || {
        gw.metric(r#"secgw_config_reloads_total{result="failure"}"#) >= Some(1.0)
    });
    std::fs::write(&conf, &good).unwrap();
    eventually("the good file back", || {
        gw.metric("secgw_config_last_reload_successful") == Some(1.0)
    });

    // A folder where the access log's file would be created (after the reloads,
    // which would refuse it): its lines cannot be written.
    std::fs::create_dir(gw.dir.path().join("access.log")).unwrap();
    // A bounded load: a round of traffic a second for 6 seconds, so that every
    // counter moves across several scrapes.
    let started = Instant::now();
    for _ in 0..6 {
        traffic(&gw, &pki);
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(started.elapsed() < Duration::from_secs(60));
    // Two more scrapes after the last round.
    let scrapes = |p: &Prometheus| {
        p.query(r#"count_over_time(up{job="pingora-secgw"}[1h])"#)[0]["value"][1]
            .as_str()
            .unwrap()
            .parse::<f64>()
            .unwrap()
    };
    // A connection held open while Prometheus scrapes and the panels are read.
    let _open = TcpStream::connect(gw.addr).unwrap();
    eventually("the held connection counted", || {
        gw.metric("secgw_connections_open") == Some(1.0)
    });
    let seen = scrapes(&prometheus);
    eventually("two more scrapes", || scrapes(&prometheus) >= seen + 2.0);
    assert!(gw.metric("secgw_access_log_dropped_total") > Some(0.0));

    let d = dashboard();
    let mut checked = 0;
    for variable in d["templating"]["list"].as_array().unwrap() {
        let Some(definition) = variable["definition"].as_str() else {
            continue;
        };
        let (metric, label) = definition
            .strip_prefix("label_values(")
            .and_then(|r| r.strip_suffix(')'))
            .and_then(|r| r.rsplit_once(", "))
            .unwrap_or_else(|| panic!("a label_values() query: {definition}"));
        let values = prometheus.api(
            &format!("label/{label}/values"),
            &[("match[]", &substitute(metric))],
        );
        let values = values.as_array().unwrap();
        assert!(
            !values.is_empty(),
            "variable {}: {definition}",
            variable["name"]
        );
        checked += 1;
    }
    for (title, exprs) in panels(&d) {
        for expr in exprs {
            if let Some(construct) = hides_an_empty_result(&expr) {
                panic!("panel {title:?} hides an empty result with {construct}: {expr}");
            }
            // Series of zeros (counters exist from start-up) or NaN (0/0) would pass
            // on an idle gateway: some series must show the traffic.
            let result = prometheus.query(&substitute(&expr));
            let values: Vec<f64> = result
                .iter()
                .map(|r| r["value"][1].as_str().unwrap().parse().unwrap())
                .collect();
            assert!(
                values.iter().any(|v| v.is_finite() && *v > 0.0),
                "panel {title:?}: no series above 0 for {expr}: {values:?}\nexposition:\n{}",
                gw.admin_get("/metrics").1
            );
            checked += 1;
        }
    }
    assert!(checked >= 30, "{checked} queries");

    // The alert rules, loaded into the same Prometheus: every rule evaluates without
    // error, and every series selector in them finds the gateway's series (a misspelt
    // metric or label value evaluates fine, and never fires).
    eventually("every rule evaluated", || {
        let groups = prometheus.api("rules", &[]);
        let rules: Vec<serde_json::Value> = groups["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["rules"].as_array().unwrap().clone())
            .collect();
        rules.len() == 12 && rules.iter().all(|r| r["health"] == "ok")
    });
    let text = std::fs::read_to_string(&rules).unwrap();
    let mut selectors = BTreeSet::new();
    for (at, _) in text.match_indices("secgw_") {
        let rest = &text[at..];
        let name_end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let end = if rest[name_end..].starts_with('{') {
            name_end + rest[name_end..].find('}').unwrap() + 1
        } else {
            name_end
        };
        selectors.insert(&rest[..end]);
    }
    assert!(selectors.len() >= 12, "{selectors:?}");
    for selector in selectors {
        let series = prometheus.api("series", &[("match[]", selector)]);
        assert!(
            !series.as_array().unwrap().is_empty(),
            "the rules' selector {selector} finds no series of the gateway"
        );
    }
}
