//! Kubernetes mode against a real kube-apiserver and etcd (scripts/control-plane.sh):
//! Ingresses, Services, EndpointSlices and TLS Secrets written through the API,
//! served by the real binary in front of real upstreams.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::cluster::{
    gw_yaml, ingress_class, namespace, service, slice, tls_secret, ControlPlane, TEST_HOST,
};
use common::pages::{Page, PageServer};
use common::tls::{client_config, handshake, https_client, TestPki};
use common::{eventually, get, Gateway, Upstream};

/// The gateway in Kubernetes mode, with the shipped RBAC (as its ServiceAccount),
/// ready: it has served the cluster's objects once.
fn gateway(
    cp: &ControlPlane,
    class: &str,
    namespaces: &str,
    rest: &str,
    files: &[(&str, &str)],
) -> (Gateway, TestPki) {
    let pki = TestPki::new();
    let leaf = pki.leaf(&["default.example"]);
    let mut all = vec![
        ("certs/default.pem", leaf.cert_pem.as_str()),
        ("certs/default.key", leaf.key_pem.as_str()),
    ];
    all.extend_from_slice(files);
    let yaml = gw_yaml(&cp.gateway_kubeconfig(), class, namespaces, rest);
    let mut gw = Gateway::launch(&yaml, &all, common::free_port());
    gw.wait_for(gw.addr);
    gw.wait_for(gw.tls_addr);
    eventually("the gateway is ready with the cluster's objects", || {
        gw.admin_get("/readyz").0 == 200
    });
    (gw, pki)
}

fn ingress(namespace: &str, name: &str, spec: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec:\n{spec}"
    )
}

fn body_of(gw: &Gateway, host: &str, path: &str) -> String {
    let r = get(gw, host, path, &[]);
    format!("{} {}", r.status, r.body)
}

#[test]
fn an_ingress_with_two_paths_and_tls_then_its_certificate_renewed() {
    let cp = ControlPlane::start();
    let (a, b) = (
        Upstream::start_on("a", TEST_HOST),
        Upstream::start_on("b", TEST_HOST),
    );
    let pki = TestPki::new();
    let first = pki.leaf(&["shop.example"]);
    cp.apply(&namespace("shop"));
    cp.apply(&ingress_class("secgw", false));
    cp.apply(&service("shop", "web-a", &[(a.addr.port(), true, false)]));
    cp.apply(&service("shop", "web-b", &[(b.addr.port(), true, false)]));
    cp.apply(&tls_secret("shop", "shop-tls", &first));
    cp.apply(&ingress(
        "shop",
        "shop",
        "  ingressClassName: secgw\n  tls: [{hosts: [shop.example], secretName: shop-tls}]\n  rules:\n  - host: shop.example\n    http:\n      paths:\n      - {path: /api, pathType: Prefix, backend: {service: {name: web-b, port: {number: 80}}}}\n      - {path: /exact, pathType: Exact, backend: {service: {name: web-b, port: {name: http}}}}\n      - {path: /, pathType: Prefix, backend: {service: {name: web-a, port: {name: http}}}}\n",
    ));
    let (gw, _) = gateway(&cp, "secgw", "shop", "vhosts: []\n", &[]);

    // Kubernetes' path semantics: whole segments for Prefix, the whole path for Exact.
    let client = https_client(&pki.ca_pem(), false, &[("shop.example", gw.tls_addr)]);
    let url = |path: &str| format!("https://shop.example:{}{path}", gw.tls_addr.port());
    for (path, upstream) in [
        ("/api", "b"),
        ("/api/orders", "b"),
        ("/apix", "a"),
        ("/exact", "b"),
        ("/exact/more", "a"),
        ("/", "a"),
    ] {
        let r = common::reply(client.get(url(path)).send().unwrap());
        assert_eq!(
            (r.status, r.body.as_str()),
            (200, format!("hello from upstream {upstream}\n").as_str()),
            "{path}"
        );
        common::assert_default_headers(&r, true);
    }
    // The route label is the Ingress, as namespace/name.
    assert_eq!(
        gw.metric(
            r#"secgw_requests_total{route="shop/shop",status_class="2xx",vhost="shop.example"}"#
        ),
        Some(6.0)
    );

    let config = || client_config(&pki.ca_pem(), &[b"http/1.1"]);
    assert_eq!(
        handshake(gw.tls_addr, "shop.example", config()).leaf,
        first.der
    );
    eventually("the Ingress status carries the gateway's address", || {
        let s = cp.get("networking.k8s.io/v1", "Ingress", "shop", "shop");
        s["status"]["loadBalancer"]["ingress"] == serde_json::json!([{"ip": "192.0.2.10"}])
    });

    // cert-manager renews the Secret in place: the new certificate is served
    // without a restart.
    let renewed = pki.leaf(&["shop.example"]);
    let (info, before) = (config_info(&gw), reloads(&gw));
    cp.apply(&tls_secret("shop", "shop-tls", &renewed));
    eventually("the renewed certificate is served", || {
        handshake(gw.tls_addr, "shop.example", config()).leaf == renewed.der
    });
    // A plan compiled from the cluster is a reload like any other.
    assert_ne!(config_info(&gw), info);
    assert!(reloads(&gw) > before, "{before}");
    assert_eq!(gw.metric("secgw_config_last_reload_successful"), Some(1.0));
}

/// The `hash` label of `secgw_config_info`.
fn config_info(gw: &Gateway) -> String {
    let (_, text) = gw.admin_get("/metrics");
    let line = text.lines().find(|l| l.starts_with("secgw_config_info{"));
    line.unwrap_or_else(|| panic!("no secgw_config_info in {text}"))
        .to_string()
}

fn reloads(gw: &Gateway) -> f64 {
    gw.metric(r#"secgw_config_reloads_total{result="success"}"#)
        .unwrap()
}

#[test]
fn the_default_class_and_the_legacy_annotation_select_ingresses_another_class_does_not() {
    let cp = ControlPlane::start();
    let up = Upstream::start_on("web", TEST_HOST);
    cp.apply(&namespace("apps"));
    cp.apply(&ingress_class("edge", false));
    cp.apply(&ingress_class("other", false));
    cp.apply(&service("apps", "web", &[(up.addr.port(), true, false)]));
    let rule = |host: &str| {
        format!("  rules:\n  - host: {host}\n    http:\n      paths:\n      - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}\n")
    };
    // Created while no class is the default: it stays without a class, ...
    cp.apply(&ingress("apps", "unclassed", &rule("unclassed.example")));
    // ... and is served once its class becomes the default one.
    cp.apply(&ingress_class("edge", true));
    // Created while `edge` is the default: the API server's DefaultIngressClass
    // admission names it.
    cp.apply(&ingress("apps", "admitted", &rule("admitted.example")));
    let admitted = cp.get("networking.k8s.io/v1", "Ingress", "apps", "admitted");
    assert_eq!(admitted["spec"]["ingressClassName"], "edge");
    cp.apply(&format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: legacy\n  namespace: apps\n  annotations: {{kubernetes.io/ingress.class: edge}}\nspec:\n{}",
        rule("legacy.example")
    ));
    cp.apply(&ingress(
        "apps",
        "named",
        &format!("  ingressClassName: edge\n{}", rule("named.example")),
    ));
    cp.apply(&ingress(
        "apps",
        "foreign",
        &format!("  ingressClassName: other\n{}", rule("foreign.example")),
    ));
    cp.apply(&format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: legacy-foreign\n  namespace: apps\n  annotations: {{kubernetes.io/ingress.class: other}}\nspec:\n{}",
        rule("legacy-foreign.example")
    ));
    let (gw, _) = gateway(&cp, "edge", "apps", "vhosts: []\n", &[]);

    for host in [
        "unclassed.example",
        "admitted.example",
        "legacy.example",
        "named.example",
    ] {
        assert_eq!(
            body_of(&gw, host, "/"),
            "200 hello from upstream web\n",
            "{host}"
        );
    }
    for host in ["foreign.example", "legacy-foreign.example"] {
        assert_eq!(get(&gw, host, "/", &[]).status, 421, "{host}");
    }
    // No longer the default class: the Ingress without a class is dropped.
    cp.apply(&ingress_class("edge", false));
    eventually("the unclassed Ingress is no longer served", || {
        get(&gw, "unclassed.example", "/", &[]).status == 421
    });
    assert_eq!(
        body_of(&gw, "named.example", "/"),
        "200 hello from upstream web\n"
    );
    assert_eq!(
        body_of(&gw, "admitted.example", "/"),
        "200 hello from upstream web\n"
    );
}

#[test]
fn what_cannot_be_served_gets_an_event_and_the_rest_is_served() {
    let cp = ControlPlane::start();
    let up = Upstream::start_on("team", TEST_HOST);
    for ns in ["team-a", "team-b"] {
        cp.apply(&namespace(ns));
        cp.apply(&service(ns, "web", &[(up.addr.port(), true, false)]));
    }
    cp.apply(&ingress_class("secgw", false));
    let path = |p: &str, svc: &str| {
        format!("      - {{path: {p}, pathType: Prefix, backend: {{service: {{name: {svc}, port: {{number: 80}}}}}}}}\n")
    };
    // One missing Service beside a valid path.
    cp.apply(&ingress(
        "team-a",
        "shop",
        &format!("  ingressClassName: secgw\n  rules:\n  - host: shop.example\n    http:\n      paths:\n{}{}",
            path("/", "web"), path("/admin", "missing")),
    ));
    // A host gw.yaml serves.
    cp.apply(&ingress(
        "team-a",
        "static",
        &format!("  ingressClassName: secgw\n  rules:\n  - host: static.example\n    http:\n      paths:\n{}", path("/", "web")),
    ));
    // Another team reaching into team-a's host, with a more specific path.
    cp.apply(&ingress(
        "team-b",
        "takeover",
        &format!("  ingressClassName: secgw\n  rules:\n  - host: shop.example\n    http:\n      paths:\n{}", path("/login", "web")),
    ));
    // A path requests are never matched by as written.
    cp.apply(&ingress(
        "team-b",
        "dots",
        &format!("  ingressClassName: secgw\n  rules:\n  - host: dots.example\n    http:\n      paths:\n{}{}",
            path("/%61dmin", "web"), path("/ok", "web")),
    ));
    let rest = "vhosts:\n  - name: static\n    hosts: [static.example]\n    respond: {status: 200, body: \"from gw.yaml\\n\"}\n";
    let (gw, _) = gateway(&cp, "secgw", "team-a, team-b", rest, &[]);

    assert_eq!(
        body_of(&gw, "shop.example", "/"),
        "200 hello from upstream team\n"
    );
    // The refused path falls to `/` of the same Ingress, never to another team.
    assert_eq!(
        body_of(&gw, "shop.example", "/login"),
        "200 hello from upstream team\n"
    );
    assert_eq!(body_of(&gw, "static.example", "/"), "200 from gw.yaml\n");
    assert_eq!(
        body_of(&gw, "dots.example", "/ok"),
        "200 hello from upstream team\n"
    );
    assert_eq!(get(&gw, "dots.example", "/admin", &[]).status, 404);

    let expect = [
        ("team-a", "shop", "BackendNotFound", "spec.rules[0].http.paths[1].backend.service.name: Service team-a/missing not found"),
        ("team-a", "static", "HostConflict", "spec.rules[0].host: host `static.example` is served by the gw.yaml vhost `static`, which wins"),
        ("team-b", "takeover", "HostConflict", "spec.rules[0].host: host `shop.example` is served from another namespace (a host belongs to the namespace that has served it, else to the oldest Ingress's)"),
        ("team-b", "dots", "InvalidPath", "spec.rules[0].http.paths[0].path: `/%61dmin`: not normalized (requests are matched as `/admin`)"),
    ];
    for (ns, name, reason, note) in expect {
        eventually(&format!("an Event on {ns}/{name}"), || {
            cp.events(ns, name) == [(reason.to_string(), note.to_string())]
        });
    }

    // `-t` and `check` read the same from the cluster.
    let conf = gw.dir.path().join("gw.yaml");
    let bin = env!("CARGO_BIN_EXE_pingora-secgw");
    let (code, out) = common::run(
        std::process::Command::new(bin)
            .arg("-t")
            .arg("-c")
            .arg(&conf)
            .arg("--kubeconfig")
            .arg(&cp.kubeconfig),
    );
    assert_eq!(code, 1, "{out}");
    for (ns, name, reason, note) in expect {
        assert!(
            out.contains(&format!("Ingress {ns}/{name}: {note} ({reason})")),
            "{out}"
        );
    }
    assert!(
        out.contains(
            "is valid (3 vhosts, 2 from the cluster; 4 Ingress problems, 0 Gateway API problems, 0 SecurityPolicy problems)"
        ),
        "{out}"
    );
    let (code, out) = common::run(
        std::process::Command::new(bin)
            .args(["check", "--format", "json", "-c"])
            .arg(&conf)
            .arg("--kubeconfig")
            .arg(&cp.kubeconfig),
    );
    assert_eq!(code, 1, "{out}");
    let report: serde_json::Value =
        serde_json::from_str(&out[..out.rfind('}').unwrap() + 1]).unwrap();
    let mut refused: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "SECGW-E106")
        .map(|f| f["key"].as_str().unwrap())
        .collect();
    refused.sort_unstable();
    assert_eq!(
        refused,
        [
            "Ingress team-a/shop",
            "Ingress team-a/static",
            "Ingress team-b/dots",
            "Ingress team-b/takeover"
        ]
    );
    assert!(
        report["predicted"]["shop.example"]["grade"].is_string(),
        "{report}"
    );
}

#[test]
fn endpoints_scaled_down_and_up_under_load_lose_no_request() {
    let cp = ControlPlane::start();
    let ups: Vec<Upstream> = ["a", "b", "c"]
        .iter()
        .map(|n| Upstream::start_on(n, TEST_HOST))
        .collect();
    cp.apply(&namespace("scale"));
    cp.apply(&ingress_class("secgw", false));
    cp.apply(&service(
        "scale",
        "web",
        &[
            (ups[0].addr.port(), true, false),
            (ups[1].addr.port(), true, false),
        ],
    ));
    cp.apply(&ingress(
        "scale",
        "web",
        "  ingressClassName: secgw\n  defaultBackend: {service: {name: web, port: {number: 80}}}\n",
    ));
    let (gw, _) = gateway(&cp, "secgw", "scale", "vhosts: []\n", &[]);

    // A steady, bounded load: one request at a time, every failure counted.
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load = {
        let (stop, sent, failed) = (stop.clone(), sent.clone(), failed.clone());
        let url = gw.url("/slow/5");
        std::thread::spawn(move || {
            let client = common::client();
            while !stop.load(Ordering::Relaxed) {
                let ok = client
                    .get(&url)
                    .header("Host", "any.example")
                    .send()
                    .is_ok_and(|r| r.status() == 200);
                sent.fetch_add(1, Ordering::Relaxed);
                if !ok {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    eventually("both endpoints take requests", || {
        ups[0].hits() > 5 && ups[1].hits() > 5
    });

    // Scale up: c joins.
    cp.apply(&slice("scale", "web", ups[2].addr.port(), true, false));
    eventually("the new endpoint takes requests", || ups[2].hits() > 5);

    // Scale down: b turns terminating first, then leaves its slice, then stops.
    cp.apply(&slice("scale", "web", ups[1].addr.port(), false, true));
    let mut last = ups[1].hits();
    eventually("the terminating endpoint gets no new request", || {
        let (before, others) = (last, ups[0].hits() + ups[2].hits());
        std::thread::sleep(Duration::from_millis(200));
        last = ups[1].hits();
        last == before && ups[0].hits() + ups[2].hits() > others
    });
    cp.delete(&slice("scale", "web", ups[1].addr.port(), false, true));
    let ups: Vec<Upstream> = ups.into_iter().filter(|u| u.name != "b").collect();
    let sent_before = sent.load(Ordering::Relaxed);
    eventually("the load goes on", || {
        sent.load(Ordering::Relaxed) > sent_before + 20
    });
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "of {}",
        sent.load(Ordering::Relaxed)
    );
    assert!(ups.iter().all(|u| u.hits() > 5));
}

#[test]
fn the_api_server_restarted_under_load_serving_goes_on_and_catches_up() {
    let cp = ControlPlane::start();
    let up = Upstream::start_on("web", TEST_HOST);
    cp.apply(&namespace("ops"));
    cp.apply(&ingress_class("secgw", false));
    cp.apply(&service("ops", "web", &[(up.addr.port(), true, false)]));
    let rule = |host: &str| {
        format!("  ingressClassName: secgw\n  rules:\n  - host: {host}\n    http:\n      paths:\n      - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}\n")
    };
    cp.apply(&ingress("ops", "first", &rule("first.example")));
    let (gw, _) = gateway(&cp, "secgw", "ops", "vhosts: []\n", &[]);
    assert_eq!(
        body_of(&gw, "first.example", "/"),
        "200 hello from upstream web\n"
    );

    let mut served_while_down = 0;
    cp.restart_apiserver(|| {
        for _ in 0..50 {
            assert_eq!(
                body_of(&gw, "first.example", "/"),
                "200 hello from upstream web\n"
            );
            served_while_down += 1;
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    assert_eq!(served_while_down, 50);
    // The watches reconnect on their own and pick up what changed since.
    cp.apply(&ingress("ops", "second", &rule("second.example")));
    eventually("an Ingress created after the restart is served", || {
        body_of(&gw, "second.example", "/") == "200 hello from upstream web\n"
    });
    assert_eq!(
        body_of(&gw, "first.example", "/"),
        "200 hello from upstream web\n"
    );
}

#[test]
fn every_gw_yaml_policy_applies_to_hosts_from_the_cluster() {
    let cp = ControlPlane::start();
    let page = PageServer::start_on(
        vec![(
            "/",
            Page::html("<!doctype html><title>t</title><script>go()</script>"),
        )],
        TEST_HOST,
    );
    cp.apply(&namespace("web"));
    cp.apply(&ingress_class("secgw", false));
    cp.apply(&service("web", "app", &[(page.addr.port(), true, false)]));
    let site = TestPki::new();
    cp.apply(&tls_secret("web", "app-tls", &site.leaf(&["app.example"])));
    cp.apply(&ingress(
        "web",
        "app",
        "  ingressClassName: secgw\n  tls: [{hosts: [app.example], secretName: app-tls}]\n  rules:\n  - host: app.example\n    http:\n      paths:\n      - {path: /, pathType: Prefix, backend: {service: {name: app, port: {number: 80}}}}\n",
    ));
    let policy = "policies:\n  edge:\n    security:\n      ssl_redirect: true\n      csp_nonce: true\n      csp_report_collect: true\n      cors_enabled: true\n      allowed_origins: [\"https://ui.example\"]\n      allowed_methods: [GET, PUT]\n";
    let rest = "policy_files: policies.yaml\nvhosts: []\n";
    let yaml_rest = format!("  default_policy: edge\n{rest}");
    let (gw, _) = gateway(
        &cp,
        "secgw",
        "web",
        &yaml_rest,
        &[("policies.yaml", policy)],
    );

    // HTTPS redirect on the plain listener.
    let r = get(&gw, "app.example", "/page?x=1", &[]);
    assert_eq!(r.status, 301);
    assert_eq!(r.one("location"), format!("https://app.example/page?x=1"));

    let client = https_client(&site.ca_pem(), true, &[("app.example", gw.tls_addr)]);
    let url = |path: &str| format!("https://app.example:{}{path}", gw.tls_addr.port());
    // A nonce in the CSP and on the page's script, the report endpoint in the CSP.
    let r = common::reply(client.get(url("/")).send().unwrap());
    assert_eq!(r.status, 200);
    let csp = r.one("content-security-policy");
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .unwrap()
        .split('\'')
        .next()
        .unwrap();
    assert!(
        r.body
            .contains(&format!("<script nonce=\"{nonce}\">go()</script>")),
        "{}",
        r.body
    );
    assert!(csp.contains("report-uri /.well-known/csp-reports"), "{csp}");
    // CORS preflight answered at the edge.
    let r = common::reply(
        client
            .request(reqwest::Method::OPTIONS, url("/api"))
            .header("Origin", "https://ui.example")
            .header("Access-Control-Request-Method", "PUT")
            .send()
            .unwrap(),
    );
    assert_eq!(r.status, 204);
    assert_eq!(r.one("access-control-allow-origin"), "https://ui.example");
    // A CSP report collected.
    let report = r#"{"csp-report":{"document-uri":"https://app.example/","violated-directive":"script-src","effective-directive":"script-src","blocked-uri":"inline","original-policy":"x"}}"#;
    let r = client
        .post(url("/.well-known/csp-reports"))
        .header("Content-Type", "application/csp-report")
        .body(report)
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        gw.metric(
            r#"secgw_requests_total{route="web/app",status_class="3xx",vhost="app.example"}"#
        ),
        Some(1.0)
    );
}
