//! SecurityPolicies (secgw.io/v1alpha1) against a real kube-apiserver with the
//! project's CRD installed (scripts/control-plane.sh installs k8s/crds/): the
//! API server refusing what the schema says, each attachment level layered
//! header by header on the real binary, and the status of what only the
//! gateway can refuse, with the last good policy kept.

mod common;

use common::cluster::{gw_yaml, ingress_class, namespace, service, ControlPlane, TEST_HOST};
use common::tls::TestPki;
use common::{eventually, get, Gateway, Upstream};
use serde_json::Value;

const GATEWAY_API: &str = "gateway.networking.k8s.io";

fn policy(name: &str, targets: &str, keys: &str) -> String {
    format!(
        "apiVersion: secgw.io/v1alpha1\nkind: SecurityPolicy\nmetadata: {{name: {name}, namespace: shop}}\n\
         spec:\n  targetRefs: {targets}\n{keys}"
    )
}

/// The gateway in Kubernetes mode for namespace `shop` (the shipped RBAC),
/// plain listener on `port`; ready.
fn gateway(cp: &ControlPlane, rest: &str, files: &[(&str, &str)], port: u16) -> Gateway {
    let pki = TestPki::new();
    let leaf = pki.leaf(&["default.example"]);
    let yaml = gw_yaml(&cp.gateway_kubeconfig(), "secgw", "shop", rest);
    let mut all = vec![
        ("certs/default.pem", leaf.cert_pem.as_str()),
        ("certs/default.key", leaf.key_pem.as_str()),
    ];
    all.extend_from_slice(files);
    let mut gw = Gateway::launch(&yaml, &all, port);
    gw.wait_for(gw.addr);
    gw.wait_for(gw.tls_addr);
    eventually("the gateway is ready", || gw.admin_get("/readyz").0 == 200);
    gw
}

/// The `Accepted` condition of a policy's entry for its first target:
/// (status, reason, message).
fn accepted(cp: &ControlPlane, name: &str) -> Option<(String, String, String)> {
    let o = cp.get("secgw.io/v1alpha1", "SecurityPolicy", "shop", name);
    let c: &Value = &o["status"]["ancestors"][0]["conditions"][0];
    let text = |k: &str| c[k].as_str().map(str::to_string);
    Some((text("status")?, text("reason")?, text("message")?))
}

#[test]
fn policies_attach_at_every_level_and_the_api_server_checks_their_schema() {
    let cp = ControlPlane::start();
    let app = Upstream::start_on("app", TEST_HOST);
    cp.apply(&namespace("shop"));
    cp.apply(&ingress_class("secgw", false));
    cp.apply(&service("shop", "app", &[(app.addr.port(), true, false)]));
    let port = common::free_port();
    cp.apply(&format!(
        "apiVersion: {GATEWAY_API}/v1\nkind: GatewayClass\nmetadata: {{name: secgw}}\n\
         spec: {{controllerName: secgw.io/gateway-controller}}\n---\n\
         apiVersion: {GATEWAY_API}/v1\nkind: Gateway\nmetadata: {{name: gw, namespace: shop}}\n\
         spec:\n  gatewayClassName: secgw\n  listeners: [{{name: http, port: {port}, protocol: HTTP}}]\n---\n\
         apiVersion: {GATEWAY_API}/v1\nkind: HTTPRoute\nmetadata: {{name: shop, namespace: shop}}\n\
         spec:\n  parentRefs: [{{name: gw}}]\n  hostnames: [shop.example]\n  rules:\n  \
         - name: checkout\n    matches: [{{path: {{type: PathPrefix, value: /checkout}}}}]\n    \
         backendRefs: [{{name: app, port: 80}}]\n  \
         - backendRefs: [{{name: app, port: 80}}]\n---\n\
         apiVersion: networking.k8s.io/v1\nkind: Ingress\n\
         metadata: {{name: blog, namespace: shop, annotations: {{secgw.io/policy: edge}}}}\n\
         spec:\n  ingressClassName: secgw\n  rules:\n  - host: blog.example\n    http:\n      paths:\n      \
         - {{path: /, pathType: Prefix, backend: {{service: {{name: app, port: {{number: 80}}}}}}}}\n"
    ));
    let route = format!("[{{group: {GATEWAY_API}, kind: HTTPRoute, name: shop}}]");
    cp.apply(&policy(
        "gateway",
        &format!("[{{group: {GATEWAY_API}, kind: Gateway, name: gw}}]"),
        "  headers: {set: {X-Layer: gateway, X-Gateway: \"yes\"}}\n  security: {frame_options: SAMEORIGIN}\n",
    ));
    cp.apply(&policy(
        "route",
        &route,
        "  headers: {set: {X-Layer: route}}\n",
    ));
    cp.apply(&policy(
        "rule",
        &format!("[{{group: {GATEWAY_API}, kind: HTTPRoute, name: shop, sectionName: checkout}}]"),
        "  headers: {set: {X-Layer: rule}}\n  security: {disable: [referrer_policy]}\n",
    ));
    cp.apply(&policy(
        "ingress",
        "[{group: networking.k8s.io, kind: Ingress, name: blog}]",
        "  extends: strict\n  headers: {set: {X-Layer: ingress}}\n",
    ));

    let policies = "policies:\n  base:\n    headers: {set: {X-Base: base, X-Layer: default}}\n  \
                    edge:\n    headers: {set: {X-Edge: edge}}\n  \
                    strict:\n    security: {referrer_policy: no-referrer}\n";
    let rest = "  default_policy: base\npolicy_files: policies.yaml\nvhosts: []\n";
    let gw = gateway(&cp, rest, &[("policies.yaml", policies)], port);

    // Header by header: each layer's own, the weaker ones' where it is silent.
    let headers = |host: &str, path: &str| {
        let r = get(&gw, host, path, &[]);
        let h = |n: &str| r.all(n).join(",");
        (
            r.status,
            h("x-layer"),
            h("x-base"),
            h("x-gateway"),
            h("x-edge"),
            h("referrer-policy"),
            h("x-frame-options"),
        )
    };
    eventually("every level's policy is served", || {
        headers("shop.example", "/checkout/pay").1 == "rule"
            && headers("blog.example", "/").1 == "ingress"
    });
    let d = |s: &str| s.to_string();
    assert_eq!(
        headers("shop.example", "/checkout/pay"),
        (
            200,
            d("rule"),
            d("base"),
            d("yes"),
            d(""),
            d(""),
            d("SAMEORIGIN")
        )
    );
    assert_eq!(
        headers("shop.example", "/"),
        (
            200,
            d("route"),
            d("base"),
            d("yes"),
            d(""),
            d("strict-origin-when-cross-origin"),
            d("SAMEORIGIN")
        )
    );
    // The annotation's policy under the attached one, which extends another.
    assert_eq!(
        headers("blog.example", "/"),
        (
            200,
            d("ingress"),
            d("base"),
            d(""),
            d("edge"),
            d("no-referrer"),
            d("DENY")
        )
    );
    for name in ["gateway", "route", "rule", "ingress"] {
        eventually(&format!("{name} is Accepted"), || {
            accepted(&cp, name)
                .is_some_and(|a| (a.0.as_str(), a.1.as_str()) == ("True", "Accepted"))
        });
    }

    // What the schema says, the API server refuses (kubectl's strict field
    // validation): the gateway never sees it.
    let e = cp
        .try_apply_strict(&policy(
            "typo",
            &route,
            "  security: {frame_option: DENY}\n",
        ))
        .unwrap_err();
    assert!(
        e.contains(".spec.security.frame_option: field not declared in schema"),
        "{e}"
    );
    let e = cp
        .try_apply_strict(&policy(
            "wrong-type",
            &route,
            "  security: {hsts_max_age: soon}\n",
        ))
        .unwrap_err();
    assert!(e.contains("spec.security.hsts_max_age"), "{e}");
    let e = cp
        .try_apply_strict(&policy(
            "off",
            &route,
            "  security: {frame_options: false}\n",
        ))
        .unwrap_err();
    assert!(e.contains("spec.security.frame_options"), "{e}");

    // What only the gateway can refuse: the status says where, and the route
    // keeps the policy's last good keys.
    cp.apply(&policy(
        "route",
        &route,
        "  headers: {set: {X-Layer: route-v2}}\n  security: {cors_enabled: true, allowed_origins: [\"*\"], allow_credentials: true}\n",
    ));
    eventually("the refusal is in the status", || {
        accepted(&cp, "route").is_some_and(|a| a.1 == "Invalid")
    });
    let (status, _, message) = accepted(&cp, "route").unwrap();
    assert_eq!(status, "False");
    assert!(
        message.starts_with("spec.security.allow_credentials: "),
        "{message}"
    );
    assert!(
        message.ends_with("; its last accepted keys stay in force"),
        "{message}"
    );
    assert_eq!(headers("shop.example", "/").1, "route");

    // A second policy on a target: the older wins, the newer is told.
    cp.apply(&policy(
        "second",
        &route,
        "  headers: {set: {X-Layer: second}}\n",
    ));
    eventually("the newer policy is Conflicted", || {
        accepted(&cp, "second").is_some_and(|a| a.1 == "Conflicted")
    });
    assert_eq!(
        accepted(&cp, "second").unwrap().2,
        "spec.targetRefs[0]: shop/route is already attached there, and the older policy wins"
    );
    assert_eq!(headers("shop.example", "/").1, "route");
}

/// A real ingress-nginx migration's annotations: CORS, a redirect, a snippet of
/// header lines, translated; a snippet with anything else refuses its Ingress
/// whole, with an Event naming the line.
#[test]
fn ingress_nginx_annotations_are_translated_or_refuse_the_ingress() {
    let cp = ControlPlane::start();
    let app = Upstream::start_on("app", TEST_HOST);
    cp.apply(&namespace("shop"));
    cp.apply(&ingress_class("secgw", false));
    cp.apply(&service("shop", "app", &[(app.addr.port(), true, false)]));
    let ingress = |name: &str, host: &str, annotations: &str| {
        format!(
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\n\
             metadata:\n  name: {name}\n  namespace: shop\n  annotations:\n{annotations}\
             spec:\n  ingressClassName: secgw\n  rules:\n  - host: {host}\n    http:\n      paths:\n      \
             - {{path: /, pathType: Prefix, backend: {{service: {{name: app, port: {{number: 80}}}}}}}}\n"
        )
    };
    let n = "nginx.ingress.kubernetes.io";
    cp.apply(&ingress(
        "api",
        "api.example",
        &format!(
            "    {n}/enable-cors: \"true\"\n    {n}/cors-allow-origin: \"https://app.example, https://*.app.example\"\n    \
             {n}/cors-allow-methods: \"GET, PUT\"\n    {n}/cors-allow-credentials: \"true\"\n    \
             {n}/configuration-snippet: |\n      more_set_headers \"X-Frame-Options: SAMEORIGIN\";\n      \
             more_clear_headers \"X-Powered-By\";\n      add_header X-Team \"api\" always;\n"
        ),
    ));
    cp.apply(&ingress(
        "old",
        "old.example",
        &format!("    {n}/permanent-redirect: https://new.example/docs\n    {n}/permanent-redirect-code: \"308\"\n"),
    ));
    cp.apply(&ingress(
        "bare",
        "bare.example",
        &format!("    {n}/enable-cors: \"true\"\n"),
    ));
    cp.apply(&ingress(
        "evil",
        "evil.example",
        &format!("    {n}/server-snippet: |\n      more_set_headers \"X-A: b\";\n      proxy_pass http://169.254.169.254;\n"),
    ));

    let gw = gateway(&cp, "vhosts: []\n", &[], common::free_port());

    // The snippet's headers, over the upstream's.
    let r = get(
        &gw,
        "api.example",
        "/",
        &[("Origin", "https://x.app.example")],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.all("x-frame-options"), ["SAMEORIGIN"]);
    assert_eq!(r.all("x-team"), ["api"]);
    assert_eq!(
        r.all("access-control-allow-origin"),
        ["https://x.app.example"]
    );
    assert_eq!(r.all("access-control-allow-credentials"), ["true"]);
    // A preflight answered at the edge; a method not listed refused.
    let preflight = |method: &str| {
        common::request(
            &gw,
            "OPTIONS",
            "api.example",
            "/",
            &[
                ("Origin", "https://app.example"),
                ("Access-Control-Request-Method", method),
            ],
        )
    };
    let r = preflight("PUT");
    assert_eq!(
        (r.status, r.all("access-control-allow-methods")),
        (204, vec!["GET, PUT"])
    );
    assert_eq!(preflight("DELETE").status, 403);
    // The redirect, with its code.
    let r = get(&gw, "old.example", "/anything", &[]);
    assert_eq!(
        (r.status, r.one("location")),
        (308, "https://new.example/docs")
    );
    // A bare enable-cors: `*` without credentials, and a Warning Event saying so.
    let r = get(
        &gw,
        "bare.example",
        "/",
        &[("Origin", "https://any.example")],
    );
    assert_eq!(r.all("access-control-allow-origin"), ["*"]);
    assert!(r.all("access-control-allow-credentials").is_empty());
    eventually("a Warning Event on the bare enable-cors", || {
        cp.events("shop", "bare").iter().any(|(reason, note)| {
            reason == "Translated" && note.contains("served as `*` without credentials")
        })
    });
    // A snippet with a forbidden line: the whole Ingress refused, named.
    let hits = app.hits();
    assert_eq!(get(&gw, "evil.example", "/", &[]).status, 421);
    assert_eq!(
        app.hits(),
        hits,
        "nothing of the refused Ingress reaches its upstream"
    );
    eventually("an Event naming the forbidden line", || {
        cp.events("shop", "evil")
            == [(
                "UnsupportedValue".to_string(),
                "metadata.annotations: nginx.ingress.kubernetes.io/server-snippet, line 2: \
             `proxy_pass http://169.254.169.254;`: not a header directive the gateway translates; \
             the Ingress is not served (only more_set_headers, more_clear_headers and add_header \
             ... always are translated)"
                    .to_string(),
            )]
    });

    // A served Ingress whose snippet turns forbidden keeps its last accepted
    // annotations, and its Event says so.
    cp.apply(&ingress(
        "api",
        "api.example",
        &format!("    {n}/configuration-snippet: |\n      more_set_headers \"X-Team: changed\";\n      lua_code_cache off;\n"),
    ));
    eventually("an Event on the change refused", || {
        cp.events("shop", "api").iter().any(|(reason, note)| {
            reason == "UnsupportedValue"
                && note.contains("line 2: `lua_code_cache off;`")
                && note.ends_with("; its last accepted annotations stay in force")
        })
    });
    let r = get(
        &gw,
        "api.example",
        "/",
        &[("Origin", "https://x.app.example")],
    );
    assert_eq!(r.all("x-team"), ["api"]);
    assert_eq!(
        r.all("access-control-allow-origin"),
        ["https://x.app.example"]
    );
}

/// A strict SecurityPolicy on an Ingress: `check --manifests` predicts the
/// host's grade from the manifests alone, and `audit` measures the same A+ on
/// the real gateway serving them from the cluster.
#[test]
fn a_strict_policy_gets_the_grade_check_predicts_from_the_manifests() {
    use common::pages::{Page, PageServer};
    let cp = ControlPlane::start();
    let page = PageServer::start_on(
        vec![(
            "/",
            Page::html("<!doctype html><title>shop</title><script src=\"/app.js\"></script>"),
        )],
        TEST_HOST,
    );
    let site = TestPki::new();
    let leaf = site.leaf(&["app.example", "default.example"]);
    let objects = format!(
        "{}---\n{}---\n{}---\n{}---\n\
         apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: app, namespace: shop}}\n\
         spec:\n  ingressClassName: secgw\n  tls: [{{hosts: [app.example], secretName: app-tls}}]\n  \
         rules:\n  - host: app.example\n    http:\n      paths:\n      \
         - {{path: /, pathType: Prefix, backend: {{service: {{name: app, port: {{number: 80}}}}}}}}\n",
        namespace("shop"),
        ingress_class("secgw", false),
        service("shop", "app", &[(page.addr.port(), true, false)]),
        common::cluster::tls_secret("shop", "app-tls", &leaf),
    );
    cp.apply(&objects);
    let yaml = gw_yaml(&cp.gateway_kubeconfig(), "secgw", "shop", "vhosts: []\n");
    let files = [
        ("certs/default.pem", leaf.cert_pem.as_str()),
        ("certs/default.key", leaf.key_pem.as_str()),
    ];
    let mut gw = Gateway::launch(&yaml, &files, common::free_port());
    gw.wait_for(gw.addr);
    gw.wait_for(gw.tls_addr);
    eventually("the gateway is ready", || gw.admin_get("/readyz").0 == 200);
    let strict = policy(
        "strict",
        "[{group: networking.k8s.io, kind: Ingress, name: app}]",
        &format!(
            "  security:\n    ssl_redirect: true\n    ssl_port: {}\n    hsts_max_age: 63072000\n    \
             hsts_preload: true\n    referrer_policy: no-referrer\n",
            gw.tls_addr.port()
        ),
    );
    cp.apply(&strict);
    eventually("the policy is Accepted", || {
        accepted(&cp, "strict").is_some_and(|a| a.1 == "Accepted")
    });

    // check, from the manifests and gw.yaml alone.
    let manifests = gw.dir.path().join("manifests.yaml");
    std::fs::write(&manifests, format!("{objects}---\n{strict}")).unwrap();
    let bin = env!("CARGO_BIN_EXE_pingora-secgw");
    let out = std::process::Command::new(bin)
        .args(["check", "--format", "json", "--fail-on", "error", "-c"])
        .arg(gw.dir.path().join("gw.yaml"))
        .arg("--manifests")
        .arg(&manifests)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let predicted = &v["predicted"]["app.example"];
    let predicted = (predicted["grade"].clone(), predicted["score"].clone());
    assert_eq!(predicted.0, "A+", "{v}");

    // audit, of the real gateway serving them from the cluster.
    let ca = gw.dir.path().join("ca.pem");
    std::fs::write(&ca, site.ca_pem()).unwrap();
    let (hp, tp) = (gw.addr.port(), gw.tls_addr.port());
    let out = common::audit_through("app.example", hp, tp)
        .args(["--format", "json", "--cacert"])
        .arg(&ca)
        .output()
        .unwrap();
    let audited: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(
        (audited["grade"].clone(), audited["score"].clone()),
        predicted,
        "{audited}"
    );

    // The same manifests with the policy misspelled for the gateway: check
    // names it, as the status does.
    let bad = strict.replace("hsts_max_age: 63072000", "hsts_max_age: 63072000\n    allow_credentials: true\n    cors_enabled: true\n    allowed_origins: [\"*\"]");
    std::fs::write(&manifests, format!("{objects}---\n{bad}")).unwrap();
    let out = std::process::Command::new(bin)
        .args(["check", "--fail-on", "error", "-c"])
        .arg(gw.dir.path().join("gw.yaml"))
        .arg("--manifests")
        .arg(&manifests)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("SecurityPolicy shop/strict on Ingress app: SECGW-E108 error: spec.security.allow_credentials: "),
        "{text}"
    );
}

/// A policy changed under a steady, bounded load, then a flood of 50 updates:
/// no request fails, every answer carries one version of the policy, and the
/// last one is served. How long the first change takes to be served is
/// printed (docs/kubernetes.md), not asserted.
#[test]
fn a_policy_changed_under_load_and_flooded_with_updates_fails_no_request() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    let cp = ControlPlane::start();
    let app = Upstream::start_on("app", TEST_HOST);
    cp.apply(&namespace("shop"));
    cp.apply(&ingress_class("secgw", false));
    cp.apply(&service("shop", "app", &[(app.addr.port(), true, false)]));
    cp.apply(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: app, namespace: shop}\n\
         spec:\n  ingressClassName: secgw\n  defaultBackend: {service: {name: app, port: {number: 80}}}\n  \
         rules:\n  - host: app.example\n    http:\n      paths:\n      \
         - {path: /, pathType: Prefix, backend: {service: {name: app, port: {number: 80}}}}\n",
    );
    let version = |v: &str| {
        policy(
            "p",
            "[{group: networking.k8s.io, kind: Ingress, name: app}]",
            &format!("  headers: {{set: {{X-Version: {v}}}}}\n"),
        )
    };
    cp.apply(&version("v1"));
    let gw = gateway(&cp, "vhosts: []\n", &[], common::free_port());
    eventually("v1 is served", || {
        get(&gw, "app.example", "/", &[]).all("x-version") == ["v1"]
    });

    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let load = {
        let (stop, sent, failed, seen) = (stop.clone(), sent.clone(), failed.clone(), seen.clone());
        let url = gw.url("/");
        std::thread::spawn(move || {
            let client = common::client();
            while !stop.load(Ordering::Relaxed) {
                let answer = client.get(&url).header("Host", "app.example").send();
                sent.fetch_add(1, Ordering::Relaxed);
                match answer {
                    Ok(r) if r.status() == 200 => {
                        let versions: Vec<String> = r
                            .headers()
                            .get_all("x-version")
                            .iter()
                            .map(|v| v.to_str().unwrap_or("?").to_string())
                            .collect();
                        if versions.len() != 1 {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                        let mut seen = seen.lock().unwrap();
                        if seen.last() != versions.first() {
                            seen.extend(versions.first().cloned());
                        }
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
    };
    let changed = std::time::Instant::now();
    cp.apply(&version("v2"));
    eventually("v2 is served", || {
        seen.lock().unwrap().last().map(String::as_str) == Some("v2")
    });
    println!(
        "a changed SecurityPolicy served after {} ms",
        changed.elapsed().as_millis()
    );

    for i in 0..50 {
        cp.apply(&version(&format!("f{i}")));
    }
    eventually("the last update is served", || {
        seen.lock().unwrap().last().map(String::as_str) == Some("f49")
    });
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();
    let seen = seen.lock().unwrap();
    println!(
        "{} requests during 51 updates, {} versions seen in order: {:?}",
        sent.load(Ordering::Relaxed),
        seen.len(),
        *seen
    );
    assert_eq!(failed.load(Ordering::Relaxed), 0);
    // Versions only go forward: no answer of an older plan after a newer one.
    let order = |v: &str| match v {
        "v1" => -2,
        "v2" => -1,
        f => f[1..].parse::<i32>().unwrap(),
    };
    assert!(
        seen.windows(2).all(|w| order(&w[0]) < order(&w[1])),
        "{seen:?}"
    );
}
