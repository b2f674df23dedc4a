//! The Gateway API against a real kube-apiserver with the Gateway API's CRDs
//! (scripts/control-plane.sh): the conformance cases of sigs.k8s.io/gateway-api
//! v1.5.1 ported case by case (their manifests, requests and expected answers
//! and conditions), with the tests' own upstreams in place of the suite's echo
//! pods, served by the real binary on port 80 of the test's network namespace.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::cluster::{slice, tls_secret, ControlPlane, TEST_HOST};
use common::tls::TestPki;
use common::{request, Gateway, Reply, Upstream};
use serde_json::Value;

const INFRA: &str = "gateway-conformance-infra";
const WEB: &str = "gateway-conformance-web-backend";
const APP: &str = "gateway-conformance-app-backend";
const V1: &str = "gateway.networking.k8s.io/v1";

/// A gateway on `ip`, port 80 (HTTP) and 443 (HTTPS), serving the cluster's
/// GatewayClass `secgw`; ready.
fn replica(cp: &ControlPlane, ip: &str) -> Gateway {
    let pki = TestPki::new();
    let leaf = pki.leaf(&["default.example"]);
    let yaml = format!(
        "listeners:\n  - address: \"{{listen}}\"\n  - address: \"{ip}:443\"\n    \
         tls: {{cert: certs/default.pem, key: certs/default.key}}\n\
         admin: {{address: \"{{admin}}\"}}\n\
         kubernetes:\n  enabled: true\n  kubeconfig: {}\n  gateway_class: secgw\n\
         vhosts: []\n",
        cp.gateway_kubeconfig().display()
    );
    let files = [
        ("certs/default.pem", leaf.cert_pem.as_str()),
        ("certs/default.key", leaf.key_pem.as_str()),
    ];
    let mut gw = Gateway::launch_on(&yaml, &files, ip, 80);
    gw.wait_for(gw.addr);
    common::eventually("the gateway is ready with the cluster's objects", || {
        gw.admin_get("/readyz").0 == 200
    });
    gw
}

/// The suite's base: its namespaces, GatewayClass, Gateways and backends.
struct Conformance {
    cp: ControlPlane,
    gw: Gateway,
    /// By name: `infra-backend-v1` ...
    backends: HashMap<&'static str, Upstream>,
}

/// A Service with port 8080 (named `http`) and its endpoint on `upstream`.
fn backend_service(namespace: &str, name: &str, upstream: &Upstream) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {namespace}}}\n\
         spec:\n  ports: [{{name: http, port: 8080, protocol: TCP}}]\n{}",
        slice(namespace, name, upstream.addr.port(), true, false)
    )
}

fn gateway_yaml(name: &str, listeners: &str) -> String {
    format!(
        "apiVersion: {V1}\nkind: Gateway\nmetadata: {{name: {name}, namespace: {INFRA}}}\n\
         spec:\n  gatewayClassName: secgw\n  listeners:\n{listeners}"
    )
}

impl Conformance {
    /// `base/manifests.yaml` of the suite (its HTTP Gateways and backends), and
    /// the gateway on port 80 (HTTP) and 443 (HTTPS) serving them.
    fn start() -> Conformance {
        let cp = ControlPlane::start();
        for (ns, label) in [(INFRA, "infra"), (WEB, "backend"), (APP, "backend")] {
            cp.apply(&format!(
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n  labels: {{gateway-conformance: {label}}}\n"
            ));
        }
        cp.apply(&format!(
            "apiVersion: {V1}\nkind: GatewayClass\nmetadata: {{name: secgw}}\n\
             spec: {{controllerName: secgw.io/gateway-controller}}\n"
        ));
        let http = |from: &str| {
            format!("  - name: http\n    port: 80\n    protocol: HTTP\n    allowedRoutes:\n      namespaces:\n        from: {from}\n")
        };
        cp.apply(&gateway_yaml("same-namespace", &http("Same")));
        cp.apply(&gateway_yaml("all-namespaces", &http("All")));
        cp.apply(&gateway_yaml(
            "backend-namespaces",
            &format!(
                "{}        selector:\n          matchLabels: {{gateway-conformance: backend}}\n",
                http("Selector")
            ),
        ));
        let mut backends = HashMap::new();
        for (ns, name) in [
            (INFRA, "infra-backend-v1"),
            (INFRA, "infra-backend-v2"),
            (INFRA, "infra-backend-v3"),
            (APP, "app-backend-v1"),
            (APP, "app-backend-v2"),
            (WEB, "web-backend"),
        ] {
            let upstream = Upstream::start_on(name, TEST_HOST);
            cp.apply(&backend_service(ns, name, &upstream));
            backends.insert(name, upstream);
        }
        let gw = replica(&cp, "127.0.0.1");
        let c = Conformance { cp, gw, backends };
        for name in ["same-namespace", "all-namespaces", "backend-namespaces"] {
            c.gateway_accepted(name);
        }
        c
    }

    /// The suite's `GatewayAndHTTPRoutesMustBeAccepted` for a Gateway: an
    /// address, every condition at the current generation, every listener
    /// Accepted, ResolvedRefs and Programmed.
    fn gateway_accepted(&self, name: &str) {
        until(
            &format!("Gateway {name} is accepted with its listeners"),
            || {
                let g = self.cp.get(V1, "Gateway", INFRA, name);
                let generation = &g["metadata"]["generation"];
                let status = &g["status"];
                let listeners = status["listeners"].as_array().cloned().unwrap_or_default();
                status["addresses"][0]["type"].is_string()
                    && all_conditions_at(&status["conditions"], generation)
                    && !listeners.is_empty()
                    && listeners.iter().all(|l| {
                        ["Accepted", "ResolvedRefs", "Programmed"]
                            .iter()
                            .all(|t| condition(&l["conditions"], t).0 == "True")
                    })
            },
        );
    }

    /// The conditions of an HTTPRoute's parent entry for the gateway's
    /// controller and Gateway `gateway` (of infra).
    fn route_parent(&self, namespace: &str, route: &str, gateway: &str) -> Option<Value> {
        let r = self.cp.get(V1, "HTTPRoute", namespace, route);
        let generation = r["metadata"]["generation"].clone();
        let parents = r["status"]["parents"].as_array()?.clone();
        parents.into_iter().find(|p| {
            p["controllerName"] == "secgw.io/gateway-controller"
                && p["parentRef"]["name"] == gateway
                && p["parentRef"]["group"] == "gateway.networking.k8s.io"
                && p["parentRef"]["kind"] == "Gateway"
                && p["parentRef"]["namespace"] == INFRA
                && all_conditions_at(&p["conditions"], &generation)
        })
    }

    /// Waits until the route's parent entry for `gateway` has `kind` with this
    /// status and reason.
    fn route_condition(
        &self,
        namespace: &str,
        route: &str,
        gateway: &str,
        want: (&str, &str, &str),
    ) {
        let (kind, status, reason) = want;
        until(
            &format!("HTTPRoute {namespace}/{route} has {kind}={status} ({reason}) for {gateway}"),
            || {
                self.route_parent(namespace, route, gateway)
                    .is_some_and(|p| {
                        condition(&p["conditions"], kind) == (status.into(), reason.into())
                    })
            },
        );
    }

    /// Waits until the route is refused on `same-namespace` (`UnsupportedValue`);
    /// the condition's message.
    fn refused(&self, route: &str) -> String {
        let gateway = "same-namespace";
        let refused = ("Accepted", "False", "UnsupportedValue");
        self.route_condition(INFRA, route, gateway, refused);
        let parent = self.route_parent(INFRA, route, gateway).unwrap();
        parent["conditions"][0]["message"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Accepted, but a reference not resolved, for `reason`.
    fn route_refs_refused(&self, route: &str, reason: &str) {
        let gateway = "same-namespace";
        self.route_condition(INFRA, route, gateway, ("Accepted", "True", "Accepted"));
        self.route_condition(INFRA, route, gateway, ("ResolvedRefs", "False", reason));
    }

    /// Accepted and ResolvedRefs, both True, as the suite's preamble asks.
    fn route_accepted(&self, namespace: &str, route: &str, gateway: &str) {
        self.route_condition(namespace, route, gateway, ("Accepted", "True", "Accepted"));
        self.route_condition(
            namespace,
            route,
            gateway,
            ("ResolvedRefs", "True", "ResolvedRefs"),
        );
    }

    fn send(&self, method: &str, host: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
        request(&self.gw, method, host, path, headers)
    }

    /// Sends until the answer passes `check` three times in a row (the suite's
    /// eventual consistency), then returns the last answer.
    fn expect(
        &self,
        what: &str,
        (method, host, path, headers): (&str, &str, &str, &[(&str, &str)]),
        check: impl Fn(&Reply, &Conformance) -> bool,
    ) -> Reply {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut streak = 0;
        loop {
            let r = self.send(method, host, path, headers);
            if check(&r, self) {
                streak += 1;
                if streak == 3 {
                    return r;
                }
                continue;
            }
            streak = 0;
            assert!(
                Instant::now() < deadline,
                "{what}: {method} {host}{path} {headers:?} got {} from {:?}: {:?}\n{:?}",
                r.status,
                r.headers.get("x-upstream"),
                r.body,
                r.headers
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The answer is 200 from `backend`, which saw the request's path.
    fn served_by(&self, host: &str, path: &str, headers: &[(&str, &str)], backend: &str) {
        self.served(("GET", host, path, headers), backend, path);
    }

    fn served(&self, req: (&str, &str, &str, &[(&str, &str)]), backend: &str, seen_path: &str) {
        let what = format!("{} {}{} -> {backend}{seen_path}", req.0, req.1, req.2);
        self.expect(&what, req, |r, _| {
            r.status == 200 && r.all("x-upstream") == [backend]
        });
        let seen = self.backends[backend].last_request();
        assert_eq!(
            (seen.method.as_str(), seen.target.as_str()),
            (req.0, seen_path),
            "{what}"
        );
    }

    fn status(&self, req: (&str, &str, &str, &[(&str, &str)]), status: u16) {
        let what = format!("{} {}{} -> {status}", req.0, req.1, req.2);
        self.expect(&what, req, |r, _| r.status == status);
    }

    fn apply(&self, yaml: &str) {
        self.cp.apply(yaml);
    }

    /// Deletes every object of a multi-document YAML text.
    fn delete(&self, yaml: &str) {
        for doc in yaml.split("\n---\n") {
            self.cp.delete(doc);
        }
    }
}

/// (status, reason) of the condition `kind`, empty strings when absent.
fn condition(conditions: &Value, kind: &str) -> (String, String) {
    let all = conditions.as_array().cloned().unwrap_or_default();
    let c = all.iter().find(|c| c["type"] == kind);
    let text = |c: Option<&Value>, k: &str| c.and_then(|c| c[k].as_str()).unwrap_or("").to_string();
    (text(c, "status"), text(c, "reason"))
}

fn all_conditions_at(conditions: &Value, generation: &Value) -> bool {
    conditions.as_array().is_some_and(|all| {
        !all.is_empty() && all.iter().all(|c| c["observedGeneration"] == *generation)
    })
}

/// Like `common::eventually`, with the suite's 30 s for status to settle.
fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn route(namespace: &str, name: &str, spec: &str) -> String {
    format!("apiVersion: {V1}\nkind: HTTPRoute\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec:\n{spec}")
}

/// A rule's backendRef to a backend of infra on 8080.
fn to(backend: &str) -> String {
    format!("    backendRefs:\n    - {{name: {backend}, port: 8080}}\n")
}

/// `X-Echo-Set-Header` asks the upstream for these response headers.
const NO_HEADERS: &[(&str, &str)] = &[];

/// HTTPRouteSimpleSameNamespace, HTTPRouteCrossNamespace, HTTPRouteMatching,
/// HTTPRouteHeaderMatching, HTTPRouteMethodMatching, HTTPRoutePathMatchOrder.
#[test]
fn conformance_routing_and_matching() {
    let c = Conformance::start();
    let gw_host = "10.244.0.1";

    // HTTPRouteSimpleSameNamespace
    let simple = route(
        INFRA,
        "gateway-conformance-infra-test",
        "  parentRefs:\n  - name: same-namespace\n  rules:\n  - backendRefs:\n    - {name: infra-backend-v1, port: 8080}\n",
    );
    c.apply(&simple);
    c.route_accepted(INFRA, "gateway-conformance-infra-test", "same-namespace");
    c.served_by(gw_host, "/", NO_HEADERS, "infra-backend-v1");
    c.delete(&simple);

    // HTTPRouteCrossNamespace: a Selector on the route's namespace's labels.
    let cross = route(
        WEB,
        "cross-namespace",
        &format!("  parentRefs:\n  - name: backend-namespaces\n    namespace: {INFRA}\n  rules:\n  - backendRefs:\n    - {{name: web-backend, port: 8080}}\n"),
    );
    c.apply(&cross);
    c.route_accepted(WEB, "cross-namespace", "backend-namespaces");
    c.served_by(gw_host, "/", NO_HEADERS, "web-backend");
    // The Selector no longer matching the namespace's labels detaches it.
    c.apply(&format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {WEB}\n  labels: {{gateway-conformance: other}}\n"
    ));
    c.route_condition(
        WEB,
        "cross-namespace",
        "backend-namespaces",
        ("Accepted", "False", "NotAllowedByListeners"),
    );
    c.status(("GET", gw_host, "/", NO_HEADERS), 404);
    c.apply(&format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {WEB}\n  labels: {{gateway-conformance: backend}}\n"
    ));
    c.served_by(gw_host, "/", NO_HEADERS, "web-backend");
    c.delete(&cross);

    // HTTPRouteMatching
    let matching = route(
        INFRA,
        "matching",
        &format!(
            "  parentRefs:\n  - name: same-namespace\n  rules:\n  - matches:\n    - path: {{type: PathPrefix, value: /}}\n    - headers:\n      - {{name: version, value: one}}\n{}  - matches:\n    - path: {{type: PathPrefix, value: /v2}}\n    - headers:\n      - {{name: version, value: two}}\n{}",
            to("infra-backend-v1"),
            to("infra-backend-v2")
        ),
    );
    c.apply(&matching);
    c.route_accepted(INFRA, "matching", "same-namespace");
    for (path, headers, backend) in [
        ("/", &[][..], "infra-backend-v1"),
        ("/example", &[], "infra-backend-v1"),
        ("/", &[("Version", "one")], "infra-backend-v1"),
        ("/v2", &[], "infra-backend-v2"),
        ("/v2/example", &[], "infra-backend-v2"),
        ("/", &[("Version", "two")], "infra-backend-v2"),
        ("/v2/", &[], "infra-backend-v2"),
        ("/v2example", &[], "infra-backend-v1"),
        ("/foo/v2/example", &[], "infra-backend-v1"),
    ] {
        c.served_by(gw_host, path, headers, backend);
    }
    c.delete(&matching);

    // HTTPRouteHeaderMatching
    let headers = route(
        INFRA,
        "header-matching",
        &format!(
            "  parentRefs:\n  - name: same-namespace\n  rules:\n\
             \x20 - matches:\n    - headers:\n      - {{name: version, value: one}}\n{}\
             \x20 - matches:\n    - headers:\n      - {{name: version, value: two}}\n{}\
             \x20 - matches:\n    - headers:\n      - {{name: version, value: two}}\n      - {{name: color, value: orange}}\n{}\
             \x20 - matches:\n    - headers:\n      - {{name: color, value: blue}}\n    - headers:\n      - {{name: color, value: green}}\n{}\
             \x20 - matches:\n    - headers:\n      - {{name: color, value: red}}\n    - headers:\n      - {{name: color, value: yellow}}\n{}",
            to("infra-backend-v1"),
            to("infra-backend-v2"),
            to("infra-backend-v1"),
            to("infra-backend-v1"),
            to("infra-backend-v2"),
        ),
    );
    c.apply(&headers);
    c.route_accepted(INFRA, "header-matching", "same-namespace");
    for (h, backend) in [
        (&[("Version", "one")][..], Some("infra-backend-v1")),
        (&[("Version", "two")], Some("infra-backend-v2")),
        (
            &[("Version", "two"), ("Color", "orange")],
            Some("infra-backend-v1"),
        ),
        (
            &[("Version", "two"), ("Color", "blue")],
            Some("infra-backend-v2"),
        ),
        (&[("Color", "orange")], None),
        (&[("Some-Other-Header", "one")], None),
        (&[("Color", "blue")], Some("infra-backend-v1")),
        (&[("Color", "green")], Some("infra-backend-v1")),
        (&[("Color", "red")], Some("infra-backend-v2")),
        (&[("Color", "yellow")], Some("infra-backend-v2")),
        (&[("Color", "purple")], None),
    ] {
        match backend {
            Some(b) => c.served_by(gw_host, "/", h, b),
            None => c.status(("GET", gw_host, "/", h), 404),
        }
    }
    c.delete(&headers);

    // HTTPRouteMethodMatching
    let methods = route(
        INFRA,
        "method-matching",
        &format!(
            "  parentRefs:\n  - name: same-namespace\n  rules:\n\
             \x20 - matches:\n    - method: POST\n{}\
             \x20 - matches:\n    - method: GET\n{}\
             \x20 - matches:\n    - path: {{type: PathPrefix, value: /path1}}\n      method: GET\n{}\
             \x20 - matches:\n    - headers:\n      - {{name: version, value: one}}\n      method: PUT\n{}\
             \x20 - matches:\n    - path: {{type: PathPrefix, value: /path2}}\n      headers:\n      - {{name: version, value: two}}\n      method: POST\n{}\
             \x20 - matches:\n    - path: {{type: PathPrefix, value: /path3}}\n      method: PATCH\n    - path: {{type: PathPrefix, value: /path4}}\n      headers:\n      - {{name: version, value: three}}\n      method: DELETE\n{}\
             \x20 - matches:\n    - path: {{type: PathPrefix, value: /path5}}\n{}\
             \x20 - matches:\n    - method: PATCH\n{}\
             \x20 - matches:\n    - headers:\n      - {{name: version, value: four}}\n{}",
            to("infra-backend-v1"),
            to("infra-backend-v2"),
            to("infra-backend-v1"),
            to("infra-backend-v2"),
            to("infra-backend-v3"),
            to("infra-backend-v1"),
            to("infra-backend-v1"),
            to("infra-backend-v2"),
            to("infra-backend-v3"),
        ),
    );
    c.apply(&methods);
    c.route_accepted(INFRA, "method-matching", "same-namespace");
    for (method, path, h, backend) in [
        ("POST", "/", &[][..], Some("infra-backend-v1")),
        ("GET", "/", &[], Some("infra-backend-v2")),
        ("HEAD", "/", &[], None),
        ("GET", "/path1", &[], Some("infra-backend-v1")),
        ("PUT", "/", &[("version", "one")], Some("infra-backend-v2")),
        (
            "POST",
            "/path2",
            &[("version", "two")],
            Some("infra-backend-v3"),
        ),
        ("PATCH", "/path3", &[], Some("infra-backend-v1")),
        (
            "DELETE",
            "/path4",
            &[("version", "three")],
            Some("infra-backend-v1"),
        ),
        ("PUT", "/", &[], None),
        ("DELETE", "/path4", &[], None),
        ("PATCH", "/path5", &[], Some("infra-backend-v1")),
        (
            "PATCH",
            "/",
            &[("version", "four")],
            Some("infra-backend-v2"),
        ),
    ] {
        match backend {
            Some(b) => c.served((method, gw_host, path, h), b, path),
            None => c.status((method, gw_host, path, h), 404),
        }
    }
    c.delete(&methods);

    // HTTPRoutePathMatchOrder
    let order = route(
        INFRA,
        "path-matching-order",
        &format!(
            "  parentRefs:\n  - name: same-namespace\n  rules:\n\
             \x20 - matches:\n    - path: {{type: Exact, value: /match}}\n{}\
             \x20 - matches:\n    - path: {{type: Exact, value: /match/exact}}\n{}\
             \x20 - matches:\n    - path: {{type: Exact, value: /match/exact/one}}\n{}\
             \x20 - matches:\n    - path: {{type: PathPrefix, value: /match/}}\n{}\
             \x20 - matches:\n    - path: {{type: PathPrefix, value: /match/prefix/}}\n{}\
             \x20 - matches:\n    - path: {{type: PathPrefix, value: /match/prefix/one}}\n{}",
            to("infra-backend-v1"),
            to("infra-backend-v2"),
            to("infra-backend-v3"),
            to("infra-backend-v3"),
            to("infra-backend-v1"),
            to("infra-backend-v2"),
        ),
    );
    c.apply(&order);
    c.route_accepted(INFRA, "path-matching-order", "same-namespace");
    for (path, backend) in [
        ("/match/exact/one", "infra-backend-v3"),
        ("/match/exact", "infra-backend-v2"),
        ("/match", "infra-backend-v1"),
        ("/match/prefix/one/any", "infra-backend-v2"),
        ("/match/prefix/any", "infra-backend-v1"),
        ("/match/any", "infra-backend-v3"),
    ] {
        c.served_by(gw_host, path, NO_HEADERS, backend);
    }
    // RegularExpression (implementation-specific; documented): the whole path.
    let regex = route(
        INFRA,
        "regex",
        &format!(
            "  parentRefs:\n  - name: same-namespace\n  rules:\n  - matches:\n    - path: {{type: RegularExpression, value: '/r/[0-9]+'}}\n{}",
            to("infra-backend-v2")
        ),
    );
    c.apply(&regex);
    c.route_accepted(INFRA, "regex", "same-namespace");
    c.served_by(gw_host, "/r/42", NO_HEADERS, "infra-backend-v2");
    c.status(("GET", gw_host, "/r/42/x", NO_HEADERS), 404);
    c.status(("GET", gw_host, "/x/r/42", NO_HEADERS), 404);
    c.delete(&regex);
    c.delete(&order);
}

/// Joins a response header's lines with `,`, as the suite compares them.
fn joined(r: &Reply, name: &str) -> String {
    r.all(name).join(",")
}

/// HTTPRouteRequestHeaderModifier, HTTPRouteResponseHeaderModifier, the
/// redirect cases (HostAndStatus, Path, Port, Scheme) and the rewrite cases
/// (RewriteHost, RewritePath).
#[test]
fn conformance_filters() {
    let c = Conformance::start();
    let gw_host = "10.244.0.1";
    let v1 = "infra-backend-v1";

    // HTTPRouteRequestHeaderModifier
    let req = filtered(
        "request-header-modifier",
        &modifiers(
            "RequestHeaderModifier",
            "        add: [{name: X-Header-Add, value: header-add}]\n",
        ),
    );
    c.apply(&req);
    c.route_accepted(INFRA, "request-header-modifier", "same-namespace");
    let seen_after = |path: &str, sent: &[(&str, &str)], want: &[(&str, &str)], absent: &[&str]| {
        c.served_by(gw_host, path, sent, v1);
        let seen = c.backends[v1].last_request();
        for (name, value) in want {
            assert_eq!(seen.header(name).join(","), *value, "{path}: {name}");
        }
        for name in absent {
            assert!(
                seen.header(name).is_empty(),
                "{path}: {name} reached the backend"
            );
        }
    };
    seen_after(
        "/set",
        &[("Some-Other-Header", "val")],
        &[
            ("Some-Other-Header", "val"),
            ("X-Header-Set", "set-overwrites-values"),
        ],
        &[],
    );
    seen_after(
        "/set",
        &[
            ("Some-Other-Header", "val"),
            ("X-Header-Set", "some-other-value"),
        ],
        &[
            ("Some-Other-Header", "val"),
            ("X-Header-Set", "set-overwrites-values"),
        ],
        &[],
    );
    seen_after(
        "/add",
        &[("Some-Other-Header", "val")],
        &[
            ("Some-Other-Header", "val"),
            ("X-Header-Add", "add-appends-values"),
        ],
        &[],
    );
    seen_after(
        "/add",
        &[
            ("Some-Other-Header", "val"),
            ("X-Header-Add", "some-other-value"),
        ],
        &[
            ("Some-Other-Header", "val"),
            ("X-Header-Add", "some-other-value,add-appends-values"),
        ],
        &[],
    );
    seen_after(
        "/remove",
        &[("X-Header-Remove", "val")],
        &[],
        &["X-Header-Remove"],
    );
    seen_after(
        "/multiple",
        &[
            ("X-Header-Set-2", "set-val-2"),
            ("X-Header-Add-2", "add-val-2"),
            ("X-Header-Remove-2", "remove-val-2"),
            ("Another-Header", "another-header-val"),
        ],
        &[
            ("X-Header-Set-1", "header-set-1"),
            ("X-Header-Set-2", "header-set-2"),
            ("X-Header-Add-1", "header-add-1"),
            ("X-Header-Add-2", "add-val-2,header-add-2"),
            ("X-Header-Add-3", "header-add-3"),
            ("Another-Header", "another-header-val"),
        ],
        &["X-Header-Remove-1", "X-Header-Remove-2"],
    );
    seen_after(
        "/case-insensitivity",
        &[
            ("x-header-set", "original-val-set"),
            ("x-header-add", "original-val-add"),
            ("x-header-remove", "original-val-remove"),
            ("Another-Header", "another-header-val"),
        ],
        &[
            ("X-Header-Set", "header-set"),
            ("X-Header-Add", "original-val-add,header-add"),
            ("Another-Header", "another-header-val"),
        ],
        &["x-header-remove"],
    );
    c.delete(&req);

    // HTTPRouteResponseHeaderModifier
    let resp = filtered(
        "response-header-modifier",
        &modifiers(
            "ResponseHeaderModifier",
            "        add: [{name: X-Header-Add, value: header-add}, {name: x-lowercase-add, value: lowercase-add}, {name: x-Mixedcase-ADD-1, value: mixedcase-add-1}, {name: X-mixeDcase-add-2, value: mixedcase-add-2}, {name: X-UPPERCASE-ADD, value: uppercase-add}]\n",
        ),
    );
    c.apply(&resp);
    c.route_accepted(INFRA, "response-header-modifier", "same-namespace");
    let answered = |path: &str, echo: &str, want: &[(&str, &str)], absent: &[&str]| {
        let sent = [("X-Echo-Set-Header", echo)];
        let r = c.expect(path, ("GET", gw_host, path, &sent), |r, _| {
            r.status == 200 && r.all("x-upstream") == [v1]
        });
        for (name, value) in want {
            assert_eq!(joined(&r, name), *value, "{path}: {name}");
        }
        for name in absent {
            assert!(!r.has(name), "{path}: {name} reached the client");
        }
    };
    answered(
        "/set",
        "Some-Other-Header:val",
        &[
            ("Some-Other-Header", "val"),
            ("X-Header-Set", "set-overwrites-values"),
        ],
        &[],
    );
    answered(
        "/set",
        "Some-Other-Header:val,X-Header-Set:some-other-value",
        &[
            ("Some-Other-Header", "val"),
            ("X-Header-Set", "set-overwrites-values"),
        ],
        &[],
    );
    answered(
        "/add",
        "Some-Other-Header:val",
        &[
            ("Some-Other-Header", "val"),
            ("X-Header-Add", "add-appends-values"),
        ],
        &[],
    );
    answered(
        "/add",
        "Some-Other-Header:val,X-Header-Add:some-other-value",
        &[
            ("Some-Other-Header", "val"),
            ("X-Header-Add", "some-other-value,add-appends-values"),
        ],
        &[],
    );
    answered("/remove", "X-Header-Remove:val", &[], &["X-Header-Remove"]);
    answered(
        "/multiple",
        "X-Header-Set-2:set-val-2,X-Header-Add-2:add-val-2,X-Header-Remove-2:remove-val-2,Another-Header:another-header-val,X-Header-Remove-1:val",
        &[
            ("X-Header-Set-1", "header-set-1"),
            ("X-Header-Set-2", "header-set-2"),
            ("X-Header-Add-1", "header-add-1"),
            ("X-Header-Add-2", "add-val-2,header-add-2"),
            ("X-Header-Add-3", "header-add-3"),
            ("Another-Header", "another-header-val"),
        ],
        &["X-Header-Remove-1", "X-Header-Remove-2"],
    );
    answered(
        "/case-insensitivity",
        "x-header-set:original-val-set,x-header-add:original-val-add,x-header-remove:original-val-remove,Another-Header:another-header-val",
        &[
            ("X-Header-Set", "header-set"),
            ("X-Header-Add", "original-val-add,header-add"),
            ("X-Lowercase-Add", "lowercase-add"),
            ("X-Mixedcase-Add-1", "mixedcase-add-1"),
            ("X-Mixedcase-Add-2", "mixedcase-add-2"),
            ("X-Uppercase-Add", "uppercase-add"),
            ("Another-Header", "another-header-val"),
        ],
        &["x-header-remove"],
    );
    // The security policy still applies, beside the route's headers.
    let r = c.send("GET", gw_host, "/set", NO_HEADERS);
    assert_eq!(r.one("x-content-type-options"), "nosniff");
    c.delete(&resp);

    // The redirect cases: HostAndStatus, Path, Port, Scheme.
    let redirect = |body: &str| filter("RequestRedirect", body);
    let redirects = route(
        INFRA,
        "redirects",
        &format!(
            "  parentRefs:\n  - name: same-namespace\n  rules:\n{}",
            [
                ("/hostname-redirect", "        hostname: example.org\n"),
                ("/host-and-status", "        statusCode: 301\n        hostname: example.org\n"),
                ("/original-prefix", "        path: {type: ReplacePrefixMatch, replacePrefixMatch: /replacement-prefix}\n"),
                ("/full", "        path: {type: ReplaceFullPath, replaceFullPath: /full-path-replacement}\n"),
                ("/path-and-host", "        hostname: example.org\n        path: {type: ReplacePrefixMatch, replacePrefixMatch: /replacement-prefix}\n"),
                ("/path-and-status", "        path: {type: ReplacePrefixMatch, replacePrefixMatch: /replacement-prefix}\n        statusCode: 301\n"),
                ("/full-path-and-host", "        hostname: example.org\n        path: {type: ReplaceFullPath, replaceFullPath: /replacement-full}\n"),
                ("/full-path-and-status", "        path: {type: ReplaceFullPath, replaceFullPath: /replacement-full}\n        statusCode: 301\n"),
                ("/port", "        port: 8083\n"),
                ("/port-and-host", "        hostname: example.org\n        port: 8083\n"),
                ("/port-and-status", "        port: 8083\n        statusCode: 301\n"),
                ("/port-and-host-and-status", "        port: 8083\n        hostname: example.org\n        statusCode: 302\n"),
                ("/scheme", "        scheme: https\n"),
                ("/scheme-and-host", "        hostname: example.org\n        scheme: https\n"),
                ("/scheme-and-status", "        scheme: https\n        statusCode: 301\n"),
                ("/scheme-and-host-and-status", "        scheme: https\n        statusCode: 302\n        hostname: example.org\n"),
            ]
            .iter()
            .map(|(path, r)| format!("  - matches:\n    - path: {{type: PathPrefix, value: {path}}}\n{}", redirect(r)))
            .collect::<String>()
        ),
    );
    c.apply(&redirects);
    c.route_accepted(INFRA, "redirects", "same-namespace");
    for (path, status, location) in [
        (
            "/hostname-redirect",
            302,
            "http://example.org/hostname-redirect",
        ),
        (
            "/host-and-status",
            301,
            "http://example.org/host-and-status",
        ),
        (
            "/original-prefix/lemon",
            302,
            "http://10.244.0.1/replacement-prefix/lemon",
        ),
        (
            "/full/path/original",
            302,
            "http://10.244.0.1/full-path-replacement",
        ),
        (
            "/path-and-host",
            302,
            "http://example.org/replacement-prefix",
        ),
        (
            "/path-and-status",
            301,
            "http://10.244.0.1/replacement-prefix",
        ),
        (
            "/full-path-and-host",
            302,
            "http://example.org/replacement-full",
        ),
        (
            "/full-path-and-status",
            301,
            "http://10.244.0.1/replacement-full",
        ),
        ("/port", 302, "http://10.244.0.1:8083/port"),
        (
            "/port-and-host",
            302,
            "http://example.org:8083/port-and-host",
        ),
        (
            "/port-and-status",
            301,
            "http://10.244.0.1:8083/port-and-status",
        ),
        (
            "/port-and-host-and-status",
            302,
            "http://example.org:8083/port-and-host-and-status",
        ),
        ("/scheme", 302, "https://10.244.0.1/scheme"),
        (
            "/scheme-and-host",
            302,
            "https://example.org/scheme-and-host",
        ),
        (
            "/scheme-and-status",
            301,
            "https://10.244.0.1/scheme-and-status",
        ),
        (
            "/scheme-and-host-and-status",
            302,
            "https://example.org/scheme-and-host-and-status",
        ),
    ] {
        let r = c.expect(path, ("GET", gw_host, path, NO_HEADERS), |r, _| {
            r.status == status
        });
        assert_eq!(r.one("location"), location, "{path}");
        // The gateway's own answer carries the policy too.
        assert_eq!(r.one("x-frame-options"), "DENY", "{path}");
    }
    c.delete(&redirects);

    // HTTPRouteRewriteHost
    let modify = "        set: [{name: X-Header-Set, value: set-overwrites-values}]\n        add: [{name: X-Header-Add, value: header-val-1}, {name: X-Header-Add-Append, value: header-val-2}]\n        remove: [X-Header-Remove]\n";
    let host = route(
        INFRA,
        "rewrite-host",
        &format!(
            "  parentRefs:\n  - name: same-namespace\n  hostnames: [rewrite.example]\n  rules:\n\
             \x20 - matches:\n    - path: {{type: PathPrefix, value: /one}}\n{}{}\
             \x20 - {}{}\
             \x20 - matches:\n    - path: {{type: PathPrefix, value: /rewrite-host-and-modify-headers}}\n{}    - type: RequestHeaderModifier\n      requestHeaderModifier:\n{modify}{}",
            filter("URLRewrite", "        hostname: one.example.org\n"),
            to(v1),
            filter("URLRewrite", "        hostname: example.org\n").trim_start(),
            to("infra-backend-v2"),
            filter("URLRewrite", "        hostname: test.example.org\n"),
            to("infra-backend-v2"),
        ),
    );
    c.apply(&host);
    c.route_accepted(INFRA, "rewrite-host", "same-namespace");
    for (path, sent, backend, seen_host) in [
        ("/one", &[][..], v1, "one.example.org"),
        ("/two", &[], "infra-backend-v2", "example.org"),
        (
            "/rewrite-host-and-modify-headers",
            &[
                ("X-Header-Remove", "remove-val"),
                ("X-Header-Add-Append", "append-val-1"),
            ],
            "infra-backend-v2",
            "test.example.org",
        ),
    ] {
        c.served_by("rewrite.example", path, sent, backend);
        let seen = c.backends[backend].last_request();
        assert_eq!(seen.header("host"), [seen_host], "{path}");
        if !sent.is_empty() {
            assert_eq!(seen.header("x-header-add"), ["header-val-1"]);
            assert_eq!(
                seen.header("x-header-add-append").join(","),
                "append-val-1,header-val-2"
            );
            assert_eq!(seen.header("x-header-set"), ["set-overwrites-values"]);
            assert!(seen.header("x-header-remove").is_empty());
        }
    }
    c.delete(&host);

    // HTTPRouteRewritePath
    let path = route(
        INFRA,
        "rewrite-path",
        &format!(
            "  parentRefs:\n  - name: same-namespace\n  rules:\n{}",
            [
                (
                    "/prefix/one",
                    "        path: {type: ReplacePrefixMatch, replacePrefixMatch: /one}\n",
                    false
                ),
                (
                    "/strip-prefix",
                    "        path: {type: ReplacePrefixMatch, replacePrefixMatch: /}\n",
                    false
                ),
                (
                    "/full/one",
                    "        path: {type: ReplaceFullPath, replaceFullPath: /one}\n",
                    false
                ),
                (
                    "/full/rewrite-path-and-modify-headers",
                    "        path: {type: ReplaceFullPath, replaceFullPath: /test}\n",
                    true
                ),
                (
                    "/prefix/rewrite-path-and-modify-headers",
                    "        path: {type: ReplacePrefixMatch, replacePrefixMatch: /prefix}\n",
                    true
                ),
            ]
            .iter()
            .map(|(p, rewrite, headers)| {
                let extra = match headers {
                    true => format!(
                        "    - type: RequestHeaderModifier\n      requestHeaderModifier:\n{modify}"
                    ),
                    false => String::new(),
                };
                format!(
                    "  - matches:\n    - path: {{type: PathPrefix, value: {p}}}\n{}{extra}{}",
                    filter("URLRewrite", rewrite),
                    to(v1)
                )
            })
            .collect::<String>()
        ),
    );
    c.apply(&path);
    c.route_accepted(INFRA, "rewrite-path", "same-namespace");
    let sent = [
        ("X-Header-Remove", "remove-val"),
        ("X-Header-Add-Append", "append-val-1"),
        ("X-Header-Set", "set-val"),
    ];
    for (p, h, seen_path) in [
        ("/prefix/one/two", &[][..], "/one/two"),
        ("/strip-prefix/three", &[], "/three"),
        ("/strip-prefix", &[], "/"),
        ("/full/one/two", &[], "/one"),
        ("/full/rewrite-path-and-modify-headers/test", &sent, "/test"),
        (
            "/prefix/rewrite-path-and-modify-headers/one",
            &sent,
            "/prefix/one",
        ),
    ] {
        c.served(("GET", gw_host, p, h), v1, seen_path);
        if !h.is_empty() {
            let seen = c.backends[v1].last_request();
            assert_eq!(seen.header("x-header-add"), ["header-val-1"]);
            assert_eq!(
                seen.header("x-header-add-append").join(","),
                "append-val-1,header-val-2"
            );
            assert_eq!(seen.header("x-header-set"), ["set-overwrites-values"]);
            assert!(seen.header("x-header-remove").is_empty());
        }
    }
    // The query stays with the rewritten path.
    c.served(
        ("GET", gw_host, "/prefix/one/two?x=1", NO_HEADERS),
        v1,
        "/one/two?x=1",
    );
    c.delete(&path);

    // A filter that could desynchronize the upstream connection is refused,
    // naming the field; the route is not served.
    let framing = route(
        INFRA,
        "framing",
        &format!(
            "  parentRefs:\n  - name: same-namespace\n  rules:\n  - {}{}",
            filter(
                "RequestHeaderModifier",
                "        set: [{name: Transfer-Encoding, value: chunked}]\n"
            )
            .trim_start(),
            to(v1)
        ),
    );
    c.apply(&framing);
    c.route_condition(
        INFRA,
        "framing",
        "same-namespace",
        ("Accepted", "False", "UnsupportedValue"),
    );
    let parent = c.route_parent(INFRA, "framing", "same-namespace").unwrap();
    let message = parent["conditions"][0]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.starts_with(
            "spec.rules[0].filters[0].requestHeaderModifier.set[0]: `Transfer-Encoding`"
        ),
        "{message}"
    );
    c.status(("GET", gw_host, "/", NO_HEADERS), 404);
    c.delete(&framing);

    // A filter and the security policy on one header: the filter, the more
    // specific layer, wins on its route, and `check` says so (SECGW-W115). A
    // filter adding a copy of a header the policy sets is refused, with the
    // compiler's reason on the route's status (SECGW-E107 in `check`).
    let framed = filtered(
        "filter-wins",
        &[(
            "/framed",
            "ResponseHeaderModifier",
            "        set: [{name: X-Frame-Options, value: SAMEORIGIN}]\n",
        )],
    );
    let added = filtered(
        "filter-adds",
        &[(
            "/added",
            "ResponseHeaderModifier",
            "        add: [{name: X-Frame-Options, value: SAMEORIGIN}]\n",
        )],
    );
    c.apply(&framed);
    c.apply(&added);
    c.route_accepted(INFRA, "filter-wins", "same-namespace");
    let r = c.expect(
        "/framed",
        ("GET", gw_host, "/framed", NO_HEADERS),
        |r, _| r.status == 200,
    );
    assert_eq!(r.all("x-frame-options"), ["SAMEORIGIN"]);
    assert_eq!(r.one("x-content-type-options"), "nosniff");
    let message = c.refused("filter-adds");
    assert!(
        message.contains("`X-Frame-Options` is managed by this policy"),
        "{message}"
    );
    c.status(("GET", gw_host, "/added", NO_HEADERS), 404);
    let bin = env!("CARGO_BIN_EXE_pingora-secgw");
    let (code, out) = common::run(
        std::process::Command::new(bin)
            .arg("-t")
            .arg("-c")
            .arg(c.gw.dir.path().join("gw.yaml"))
            .arg("--kubeconfig")
            .arg(&c.cp.kubeconfig),
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "HTTPRoute {INFRA}/filter-adds on Gateway {INFRA}/same-namespace: Accepted: vhosts["
        )),
        "{out}"
    );
    assert!(
        out.contains("0 Ingress problems, 1 Gateway API problems, 0 SecurityPolicy problems)"),
        "{out}"
    );
    let (code, out) = common::run(
        std::process::Command::new(bin)
            .args(["check", "--format", "json", "-c"])
            .arg(c.gw.dir.path().join("gw.yaml"))
            .arg("--kubeconfig")
            .arg(&c.cp.kubeconfig),
    );
    assert_eq!(code, 1, "{out}");
    let report: Value = serde_json::from_str(&out[..out.rfind('}').unwrap() + 1]).unwrap();
    let findings = report["findings"].as_array().unwrap();
    let found = |code: &str| -> Vec<(String, String)> {
        findings
            .iter()
            .filter(|f| f["code"] == code)
            .map(|f| {
                (
                    f["key"].as_str().unwrap().to_string(),
                    f["route"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    };
    assert_eq!(
        found("SECGW-W115"),
        [(
            "vhosts[0].routes[0].headers.set.X-Frame-Options".to_string(),
            format!("httproute:{INFRA}/filter-wins")
        )],
        "{out}"
    );
    assert_eq!(
        found("SECGW-E107"),
        [(
            format!("HTTPRoute {INFRA}/filter-adds on Gateway {INFRA}/same-namespace"),
            String::new()
        )],
        "{out}"
    );
    c.delete(&framed);
    c.delete(&added);
}

/// A rule's `filters` with one filter of `kind` (its field lines in `body`).
fn filter(kind: &str, body: &str) -> String {
    let field = match kind {
        "URLRewrite" => "urlRewrite".to_string(),
        "CORS" => "cors".to_string(),
        _ => kind[..1].to_ascii_lowercase() + &kind[1..],
    };
    format!("    filters:\n    - type: {kind}\n      {field}:\n{body}")
}

/// The rules both header modifier cases share (`kind` is the filter), with
/// the `add` line of their `/case-insensitivity` rule, which differs.
fn modifiers(
    kind: &'static str,
    case_insensitive_add: &str,
) -> Vec<(&'static str, &'static str, String)> {
    let rule = |prefix, body: &str| (prefix, kind, body.to_string());
    vec![
        rule("/set", "        set: [{name: X-Header-Set, value: set-overwrites-values}]\n"),
        rule("/add", "        add: [{name: X-Header-Add, value: add-appends-values}]\n"),
        rule("/remove", "        remove: [X-Header-Remove]\n"),
        rule("/multiple", "        set: [{name: X-Header-Set-1, value: header-set-1}, {name: X-Header-Set-2, value: header-set-2}]\n        add: [{name: X-Header-Add-1, value: header-add-1}, {name: X-Header-Add-2, value: header-add-2}, {name: X-Header-Add-3, value: header-add-3}]\n        remove: [X-Header-Remove-1, X-Header-Remove-2]\n"),
        rule(
            "/case-insensitivity",
            &format!("        set: [{{name: X-Header-Set, value: header-set}}]\n{case_insensitive_add}        remove: [X-Header-Remove]\n"),
        ),
    ]
}

/// An HTTPRoute of infra on `same-namespace` whose rules each match a prefix,
/// apply one filter, and go to infra-backend-v1: (prefix, filter kind, body).
fn filtered<B: AsRef<str>>(name: &str, rules: &[(&str, &str, B)]) -> String {
    let rules: String = rules
        .iter()
        .map(|(prefix, kind, body)| {
            format!(
                "  - matches:\n    - path: {{type: PathPrefix, value: {prefix}}}\n{}{}",
                filter(kind, body.as_ref()),
                to("infra-backend-v1")
            )
        })
        .collect();
    route(
        INFRA,
        name,
        &format!("  parentRefs:\n  - name: same-namespace\n  rules:\n{rules}"),
    )
}

/// HTTPRouteReferenceGrant (both ways), HTTPRouteInvalidReferenceGrant,
/// HTTPRouteInvalidCrossNamespaceBackendRef, HTTPRouteInvalidBackendRefUnknownKind,
/// HTTPRouteWeight, GatewayInvalidTLSConfiguration.
#[test]
fn conformance_references_weights_and_tls() {
    let c = Conformance::start();
    let gw_host = "10.244.0.1";
    let grant = |name: &str, namespace: &str, from: (&str, &str, &str), to: (&str, &str, &str)| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\nmetadata: {{name: {name}, namespace: {namespace}}}\n\
             spec:\n  from:\n  - {{group: '{}', kind: {}, namespace: {}}}\n  to:\n  - {{group: '{}', kind: {}, name: {}}}\n",
            from.0, from.1, from.2, to.0, to.1, to.2
        )
    };
    let allowed = grant(
        "reference-grant",
        WEB,
        ("gateway.networking.k8s.io", "HTTPRoute", INFRA),
        ("", "Service", "web-backend"),
    );
    let cross = route(
        INFRA,
        "reference-grant",
        &format!("  parentRefs:\n  - name: same-namespace\n  rules:\n  - backendRefs:\n    - {{name: web-backend, namespace: {WEB}, port: 8080}}\n"),
    );
    // HTTPRouteInvalidCrossNamespaceBackendRef: no grant, 500 and RefNotPermitted.
    c.apply(&cross);
    c.route_refs_refused("reference-grant", "RefNotPermitted");
    c.status(("GET", gw_host, "/", NO_HEADERS), 500);
    assert_eq!(c.backends["web-backend"].hits(), 0);
    // HTTPRouteReferenceGrant: the grant lets it through; deleting it revokes.
    c.apply(&allowed);
    c.route_accepted(INFRA, "reference-grant", "same-namespace");
    c.served_by(gw_host, "/", NO_HEADERS, "web-backend");
    c.delete(&allowed);
    c.status(("GET", gw_host, "/", NO_HEADERS), 500);
    c.route_refs_refused("reference-grant", "RefNotPermitted");
    let granted = c.backends["web-backend"].hits();
    // HTTPRouteInvalidReferenceGrant: seven grants, none of them this one.
    let (route_kind, service) = (
        ("gateway.networking.k8s.io", "HTTPRoute", INFRA),
        ("", "Service", "web-backend"),
    );
    let other = "not-the-group-youre-looking-for";
    let wrong: Vec<String> = [
        ("wrong-namespace", INFRA, route_kind, service),
        (
            "wrong-from-group",
            WEB,
            (other, "HTTPRoute", INFRA),
            service,
        ),
        (
            "wrong-from-kind",
            WEB,
            ("gateway.networking.k8s.io", "Gateway", INFRA),
            service,
        ),
        (
            "wrong-from-namespace",
            WEB,
            (
                "gateway.networking.k8s.io",
                "HTTPRoute",
                "not-the-namespace-youre-looking-for",
            ),
            service,
        ),
        (
            "wrong-to-group",
            WEB,
            route_kind,
            (other, "Service", "web-backend"),
        ),
        (
            "wrong-to-kind",
            WEB,
            route_kind,
            ("", "Secret", "web-backend"),
        ),
        (
            "wrong-to-name",
            WEB,
            route_kind,
            ("", "Service", "not-the-service-youre-looking-for"),
        ),
    ]
    .into_iter()
    .map(|(name, namespace, from, to)| grant(name, namespace, from, to))
    .collect();
    for g in &wrong {
        c.apply(g);
    }
    // Each grant is a change the gateway compiles: let them all land.
    std::thread::sleep(Duration::from_millis(500));
    c.route_refs_refused("reference-grant", "RefNotPermitted");
    c.status(("GET", gw_host, "/", NO_HEADERS), 500);
    assert_eq!(
        c.backends["web-backend"].hits(),
        granted,
        "only granted requests reach it"
    );
    c.delete(&cross);

    // HTTPRouteInvalidBackendRefUnknownKind
    let unknown = route(
        INFRA,
        "invalid-backend-ref-unknown-kind",
        "  parentRefs:\n  - name: same-namespace\n  rules:\n  - backendRefs:\n    - {group: unknownkind.example.com, kind: NonExistent, name: infra-backend-v1, port: 8080}\n",
    );
    c.apply(&unknown);
    c.route_refs_refused("invalid-backend-ref-unknown-kind", "InvalidKind");
    c.status(("GET", gw_host, "/v2", NO_HEADERS), 500);
    c.delete(&unknown);

    // HTTPRouteWeight: 500 requests, 10 at a time; each share within 0.05.
    let weighted = route(
        INFRA,
        "weighted-backends",
        "  parentRefs:\n  - name: same-namespace\n  rules:\n  - backendRefs:\n    - {name: infra-backend-v1, port: 8080, weight: 70}\n    - {name: infra-backend-v2, port: 8080, weight: 30}\n    - {name: infra-backend-v3, port: 8080, weight: 0}\n",
    );
    c.apply(&weighted);
    c.route_accepted(INFRA, "weighted-backends", "same-namespace");
    c.expect(
        "the weighted route serves",
        ("GET", gw_host, "/", NO_HEADERS),
        |r, _| r.status == 200,
    );
    let counts: HashMap<String, usize> = {
        let seen = std::sync::Mutex::new(HashMap::new());
        let next = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..10 {
                s.spawn(|| {
                    while next.fetch_add(1, Ordering::SeqCst) < 500 {
                        let r = c.send("GET", gw_host, "/", NO_HEADERS);
                        assert_eq!(r.status, 200);
                        *seen
                            .lock()
                            .unwrap()
                            .entry(r.one("x-upstream").to_string())
                            .or_default() += 1;
                    }
                });
            }
        });
        seen.into_inner().unwrap()
    };
    let share = |b: &str| counts.get(b).copied().unwrap_or(0);
    assert!(
        (325..=375).contains(&share("infra-backend-v1")),
        "{counts:?}"
    );
    assert!(
        (125..=175).contains(&share("infra-backend-v2")),
        "{counts:?}"
    );
    assert_eq!(share("infra-backend-v3"), 0, "{counts:?}");
    // One backend invalid of two equal: its half answers 500.
    let half = route(
        INFRA,
        "weighted-backends",
        "  parentRefs:\n  - name: same-namespace\n  rules:\n  - backendRefs:\n    - {name: infra-backend-v1, port: 8080}\n    - {name: missing, port: 8080}\n",
    );
    c.apply(&half);
    c.route_refs_refused("weighted-backends", "BackendNotFound");
    let statuses: Vec<u16> = (0..20)
        .map(|_| c.send("GET", gw_host, "/", NO_HEADERS).status)
        .collect();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 500).count(),
        10,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
        10,
        "{statuses:?}"
    );
    c.delete(&half);

    // GatewayInvalidTLSConfiguration
    let pki = TestPki::new();
    c.apply(&tls_secret(
        INFRA,
        "tls-validity-checks-certificate",
        &pki.leaf(&["*.wildcard.org"]),
    ));
    c.apply(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: malformed-certificate, namespace: {INFRA}}}\n\
         type: kubernetes.io/tls\ndata: {{tls.crt: SGVsbG8gd29ybGQK, tls.key: SGVsbG8gd29ybGQK}}\n"
    ));
    let https = |name: &str, reference: &str| {
        gateway_yaml(
            name,
            &format!("  - name: https\n    port: 443\n    protocol: HTTPS\n    allowedRoutes:\n      namespaces:\n        from: All\n    tls:\n      certificateRefs:\n      - {reference}\n"),
        )
    };
    let invalid = [
        https(
            "gateway-certificate-nonexistent-secret",
            "{group: '', kind: Secret, name: nonexistent-certificate}",
        ),
        https(
            "gateway-certificate-unsupported-group",
            "{group: wrong.group.company.io, kind: Secret, name: tls-validity-checks-certificate}",
        ),
        https(
            "gateway-certificate-unsupported-kind",
            "{group: '', kind: WrongKind, name: tls-validity-checks-certificate}",
        ),
        https(
            "gateway-certificate-malformed-secret",
            "{group: '', kind: Secret, name: malformed-certificate}",
        ),
    ];
    for g in &invalid {
        c.apply(g);
    }
    for name in [
        "gateway-certificate-nonexistent-secret",
        "gateway-certificate-unsupported-group",
        "gateway-certificate-unsupported-kind",
        "gateway-certificate-malformed-secret",
    ] {
        until(
            &format!("{name}: its listener has ResolvedRefs False (InvalidCertificateRef)"),
            || {
                let g = c.cp.get(V1, "Gateway", INFRA, name);
                let listeners = g["status"]["listeners"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                listeners.len() == 1
                    && listeners[0]["name"] == "https"
                    && listeners[0]["attachedRoutes"] == 0
                    && listeners[0]["supportedKinds"][0]["kind"] == "HTTPRoute"
                    && condition(&listeners[0]["conditions"], "ResolvedRefs")
                        == ("False".into(), "InvalidCertificateRef".into())
                    && all_conditions_at(&g["status"]["conditions"], &g["metadata"]["generation"])
            },
        );
    }
    // The valid certificate on the same port is served, by SNI, from the Secret.
    let valid = https(
        "valid-https",
        "{group: '', kind: Secret, name: tls-validity-checks-certificate}",
    );
    c.apply(&valid);
    c.gateway_accepted("valid-https");
}

/// HTTPRouteHostnameIntersection, HTTPRouteListenerHostnameMatching.
#[test]
fn conformance_hostnames() {
    let c = Conformance::start();
    let listener = |name: &str, hostname: Option<&str>| {
        let host = hostname.map_or(String::new(), |h| format!("    hostname: \"{h}\"\n"));
        format!("  - name: {name}\n    port: 80\n    protocol: HTTP\n    allowedRoutes:\n      namespaces:\n        from: Same\n{host}")
    };
    let intersection = gateway_yaml(
        "httproute-hostname-intersection",
        &[
            listener("listener-1", Some("very.specific.com")),
            listener("listener-2", Some("*.wildcard.io")),
            listener("listener-3", Some("*.anotherwildcard.io")),
        ]
        .concat(),
    );
    let all = gateway_yaml(
        "httproute-hostname-intersection-all",
        &listener("listener-1", None),
    );
    c.apply(&intersection);
    c.apply(&all);
    let attached = |name: &str, hostnames: &[&str], prefix: &str, backend: &str| {
        let hosts: Vec<String> = hostnames.iter().map(|h| format!("\"{h}\"")).collect();
        route(
            INFRA,
            name,
            &format!(
                "  parentRefs:\n  - {{name: httproute-hostname-intersection, namespace: {INFRA}}}\n  hostnames: [{}]\n  rules:\n  - matches:\n    - path: {{type: PathPrefix, value: {prefix}}}\n{}",
                hosts.join(", "),
                to(backend)
            ),
        )
    };
    let routes = [
        attached("specific-host-matches-listener-specific-host", &["non.matching.com", "*.nonmatchingwildcard.io", "very.specific.com"], "/s1", "infra-backend-v1"),
        attached("specific-host-matches-listener-wildcard-host", &["non.matching.com", "wildcard.io", "foo.wildcard.io", "bar.wildcard.io", "foo.bar.wildcard.io"], "/s2", "infra-backend-v2"),
        attached("wildcard-host-matches-listener-specific-host", &["non.matching.com", "*.specific.com"], "/s3", "infra-backend-v3"),
        attached("wildcard-host-matches-listener-wildcard-host", &["*.anotherwildcard.io"], "/s4", "infra-backend-v1"),
        attached("no-intersecting-hosts", &["specific.but.wrong.com", "wildcard.io"], "/s5", "infra-backend-v2"),
        route(
            INFRA,
            "httproute-hostname-intersection-all",
            &format!(
                "  parentRefs:\n  - {{name: httproute-hostname-intersection-all, namespace: {INFRA}}}\n  hostnames: [first.com, sub.first.com, second.com, sub.second.com]\n  rules:\n{}",
                to("infra-backend-v2").replacen("    backendRefs", "  - backendRefs", 1)
            ),
        ),
    ];
    for r in &routes {
        c.apply(r);
    }
    for name in [
        "specific-host-matches-listener-specific-host",
        "specific-host-matches-listener-wildcard-host",
        "wildcard-host-matches-listener-specific-host",
        "wildcard-host-matches-listener-wildcard-host",
    ] {
        c.route_accepted(INFRA, name, "httproute-hostname-intersection");
    }
    c.route_condition(
        INFRA,
        "no-intersecting-hosts",
        "httproute-hostname-intersection",
        ("Accepted", "False", "NoMatchingListenerHostname"),
    );
    c.route_accepted(
        INFRA,
        "httproute-hostname-intersection-all",
        "httproute-hostname-intersection-all",
    );
    c.gateway_accepted("httproute-hostname-intersection");
    let (v1, v2, v3) = ("infra-backend-v1", "infra-backend-v2", "infra-backend-v3");
    for (host, path, backend) in [
        ("very.specific.com", "/s1", Some(v1)),
        ("very.specific.com:1234", "/s1", Some(v1)),
        ("non.matching.com", "/s1", None),
        ("foo.nonmatchingwildcard.io", "/s1", None),
        ("foo.wildcard.io", "/s1", None),
        ("very.specific.com", "/non-matching-prefix", None),
        ("foo.wildcard.io", "/s2", Some(v2)),
        ("bar.wildcard.io", "/s2", Some(v2)),
        ("foo.bar.wildcard.io", "/s2", Some(v2)),
        ("non.matching.com", "/s2", None),
        ("wildcard.io", "/s2", None),
        ("very.specific.com", "/s2", None),
        ("foo.wildcard.io", "/non-matching-prefix", None),
        ("very.specific.com", "/s3", Some(v3)),
        ("non.matching.com", "/s3", None),
        ("foo.specific.com", "/s3", None),
        ("foo.wildcard.io", "/s3", None),
        ("foo.anotherwildcard.io", "/s4", Some(v1)),
        ("bar.anotherwildcard.io", "/s4", Some(v1)),
        ("foo.bar.anotherwildcard.io", "/s4", Some(v1)),
        ("anotherwildcard.io", "/s4", None),
        ("foo.wildcard.io", "/s4", None),
        ("very.specific.com", "/s4", None),
        ("foo.anotherwildcard.io", "/non-matching-prefix", None),
        ("specific.but.wrong.com", "/s5", None),
        ("wildcard.io", "/s5", None),
        ("first.com", "/", Some(v2)),
        ("sub.first.com", "/", Some(v2)),
        ("second.com", "/", Some(v2)),
        ("sub.second.com", "/", Some(v2)),
        ("third.com", "/", None),
        ("sub.third.com", "/", None),
    ] {
        match backend {
            Some(b) => {
                c.served_by(host, path, NO_HEADERS, b);
                // The Host goes to the backend as the client sent it, port included.
                assert_eq!(c.backends[b].last_request().header("host"), [host]);
            }
            None => c.status(("GET", host, path, NO_HEADERS), 404),
        }
    }
    // AttachedRoutes counts the Accepted routes of each listener.
    until("attachedRoutes are 2, 1 and 1", || {
        let g =
            c.cp.get(V1, "Gateway", INFRA, "httproute-hostname-intersection");
        let counts: Vec<Value> = g["status"]["listeners"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|l| l["attachedRoutes"].clone())
            .collect();
        counts == [2, 1, 1]
    });
    for r in &routes {
        c.delete(r);
    }
    c.delete(&intersection);
    c.delete(&all);

    // HTTPRouteListenerHostnameMatching
    let matching = gateway_yaml(
        "httproute-listener-hostname-matching",
        &[
            listener("listener-1", Some("bar.com")),
            listener("listener-2", Some("foo.bar.com")),
            listener("listener-3", Some("*.bar.com")),
            listener("listener-4", Some("*.foo.com")),
        ]
        .concat(),
    );
    c.apply(&matching);
    let section = |name: &str, sections: &[&str], backend: &str| {
        let parents: String = sections
            .iter()
            .map(|s| format!("  - {{name: httproute-listener-hostname-matching, namespace: {INFRA}, sectionName: {s}}}\n"))
            .collect();
        route(
            INFRA,
            name,
            &format!(
                "  parentRefs:\n{parents}  rules:\n{}",
                to(backend).replacen("    backendRefs", "  - backendRefs", 1)
            ),
        )
    };
    let routes = [
        section("backend-v1", &["listener-1"], v1),
        section("backend-v2", &["listener-2"], v2),
        section("backend-v3", &["listener-3", "listener-4"], v3),
    ];
    for r in &routes {
        c.apply(r);
    }
    for name in ["backend-v1", "backend-v2", "backend-v3"] {
        c.route_accepted(INFRA, name, "httproute-listener-hostname-matching");
    }
    for (host, backend) in [
        ("bar.com", Some(v1)),
        ("foo.bar.com", Some(v2)),
        ("baz.bar.com", Some(v3)),
        ("boo.bar.com", Some(v3)),
        ("multiple.prefixes.bar.com", Some(v3)),
        ("multiple.prefixes.foo.com", Some(v3)),
        ("foo.com", None),
        ("no.matching.host", None),
    ] {
        match backend {
            Some(b) => c.served_by(host, "/", NO_HEADERS, b),
            None => c.status(("GET", host, "/", NO_HEADERS), 404),
        }
    }
}

/// Two gateway processes on one control plane: both serve, only the Lease's
/// holder writes status; when it dies, the other takes over within the lease.
#[test]
fn two_replicas_one_status_writer_and_a_takeover() {
    let c = Conformance::start();
    let simple = |name: &str| {
        route(INFRA, name, &format!("  parentRefs:\n  - name: same-namespace\n  rules:\n  - matches:\n    - path: {{type: PathPrefix, value: /{name}}}\n{}", to("infra-backend-v1")))
    };
    c.apply(&simple("first"));
    c.route_accepted(INFRA, "first", "same-namespace");
    let lease = |cp: &ControlPlane| {
        cp.get(
            "coordination.k8s.io/v1",
            "Lease",
            "pingora-secgw",
            "secgw-status-secgw",
        )
    };
    let holder = lease(&c.cp)["spec"]["holderIdentity"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(holder.ends_with(&format!("-{}", c.gw.pid())), "{holder}");

    // A second replica on another address of the same port: both serve
    // every Gateway listener, as replicas of one Deployment do.
    let second = replica(&c.cp, "127.0.0.2");
    // Both serve; the second one does not take the Lease from a live holder.
    let served = |gw: &Gateway| request(gw, "GET", "10.244.0.1", "/first", NO_HEADERS).status;
    common::eventually("both replicas serve the route", || {
        served(&c.gw) == 200 && served(&second) == 200
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(lease(&c.cp)["spec"]["holderIdentity"], holder.as_str());

    // The holder dies without a word; a route added now gets its status from
    // the other replica, once the Lease has run out.
    let mut c = c;
    let dead = Instant::now();
    c.gw.signal(libc::SIGKILL);
    c.gw.wait_exit(Duration::from_secs(5));
    c.apply(&simple("second"));
    until("the second replica holds the Lease", || {
        lease(&c.cp)["spec"]["holderIdentity"]
            .as_str()
            .is_some_and(|h| h.ends_with(&format!("-{}", second.pid())))
    });
    c.route_accepted(INFRA, "second", "same-namespace");
    let took = dead.elapsed();
    eprintln!("the status of a new route was written {took:?} after the Lease holder died");
    // The lease is 15 s; the survivor retries every 2 s.
    assert!(took < Duration::from_secs(15 + 2 + 5), "{took:?}");
    assert_eq!(
        request(&second, "GET", "10.244.0.1", "/second", NO_HEADERS).status,
        200
    );
}

/// 100 updates of an HTTPRoute in a burst, under a steady bounded load on
/// another route of it: no request fails, and the burst is compiled in few
/// plans (one per debounce window), not one per update.
#[test]
fn a_burst_of_route_updates_under_load_fails_no_request() {
    let c = Conformance::start();
    let spec = |n: usize| {
        format!(
            "  parentRefs:\n  - name: same-namespace\n  rules:\n  - matches:\n    - path: {{type: PathPrefix, value: /steady}}\n{}  - matches:\n    - path: {{type: PathPrefix, value: /changing-{n}}}\n{}",
            to("infra-backend-v1"),
            to("infra-backend-v2")
        )
    };
    c.apply(&route(INFRA, "burst", &spec(0)));
    c.served_by("10.244.0.1", "/steady", NO_HEADERS, "infra-backend-v1");
    let reloads = || {
        c.gw.metric(r#"secgw_config_reloads_total{result="success"}"#)
            .unwrap()
    };
    let before = reloads();
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    std::thread::scope(|s| {
        for _ in 0..2 {
            let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
            let gw = &c.gw;
            s.spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let r = request(gw, "GET", "10.244.0.1", "/steady", NO_HEADERS);
                    let counter = if r.status == 200 { &ok } else { &failed };
                    counter.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(5));
                }
            });
        }
        let started = Instant::now();
        for n in 1..=100 {
            c.apply(&route(INFRA, "burst", &spec(n)));
        }
        let burst = started.elapsed();
        c.served_by(
            "10.244.0.1",
            "/changing-100",
            NO_HEADERS,
            "infra-backend-v2",
        );
        stop.store(true, Ordering::SeqCst);
        let plans = reloads() - before;
        // At most one plan per debounce window (200 ms at the longest) of the
        // burst, plus the one after it, and always far fewer than the updates.
        let windows = (burst.as_millis() / 30 + 2) as f64;
        assert!(
            plans >= 1.0 && plans <= windows.min(100.0),
            "{plans} plans for a burst of {burst:?}"
        );
        eprintln!("100 updates in {burst:?}: {plans} plans");
    });
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "{} requests served",
        ok.load(Ordering::SeqCst)
    );
    assert!(ok.load(Ordering::SeqCst) > 20);
    c.status(("GET", "10.244.0.1", "/changing-99", NO_HEADERS), 404);
}

/// Found by an adversarial review: routes of listeners on two ports with one
/// name stay on their own port (an HTTP listener's redirect to HTTPS does not
/// answer on HTTPS), and a name with a listener of its own takes no route of a
/// wider listener (another team's route on `*.example.com` naming
/// `a.example.com` cannot take `/login` of the team's listener).
#[test]
fn listeners_keep_their_own_routes_by_port_and_by_name() {
    let c = Conformance::start();
    let pki = TestPki::new();
    c.apply(&tls_secret(INFRA, "a-test", &pki.leaf(&["a.test"])));
    c.apply(&gateway_yaml(
        "ports",
        "  - {name: http, port: 80, protocol: HTTP, hostname: a.test}\n  \
         - {name: https, port: 443, protocol: HTTPS, hostname: a.test, tls: {certificateRefs: [{name: a-test}]}}\n",
    ));
    let redir = route(
        INFRA,
        "redir",
        &format!(
            "  parentRefs: [{{name: ports, sectionName: http}}]\n  rules:\n  - {}",
            filter(
                "RequestRedirect",
                "        scheme: https\n        statusCode: 301\n"
            )
            .trim_start()
        ),
    );
    c.apply(&redir);
    c.route_accepted(INFRA, "redir", "ports");
    // The older route on `/` of the other listener must not answer on HTTPS.
    std::thread::sleep(Duration::from_millis(1100));
    c.apply(&route(
        INFRA,
        "app",
        &format!(
            "  parentRefs: [{{name: ports, sectionName: https}}]\n  rules:\n{}",
            to("infra-backend-v1").replacen("    backendRefs", "  - backendRefs", 1)
        ),
    ));
    c.route_accepted(INFRA, "app", "ports");
    c.gateway_accepted("ports");
    let r = c.expect(
        "plain HTTP is redirected",
        ("GET", "a.test", "/x?q=1", NO_HEADERS),
        |r, _| r.status == 301,
    );
    assert_eq!(r.one("location"), "https://a.test/x?q=1");
    let tls = common::tls::https_client(
        &pki.ca_pem(),
        false,
        &[("a.test", "127.0.0.1:443".parse().unwrap())],
    );
    until("HTTPS is served by the app", || {
        let r = common::reply(tls.get("https://a.test/x").send().unwrap());
        r.status == 200 && r.all("x-upstream") == ["infra-backend-v1"]
    });

    // Listener isolation: the team's own listener, and a shared wider one.
    c.apply(&gateway_yaml(
        "iso",
        "  - {name: team, port: 80, protocol: HTTP, hostname: a.example.com}\n  \
         - {name: shared, port: 80, protocol: HTTP, hostname: \"*.example.com\", allowedRoutes: {namespaces: {from: All}}}\n",
    ));
    c.apply(&route(
        INFRA,
        "team",
        &format!(
            "  parentRefs: [{{name: iso, sectionName: team}}]\n  rules:\n{}",
            to("infra-backend-v1").replacen("    backendRefs", "  - backendRefs", 1)
        ),
    ));
    let intruder = route(
        WEB,
        "intruder",
        &format!(
            "  parentRefs: [{{name: iso, namespace: {INFRA}}}]\n  hostnames: [a.example.com, b.example.com]\n  rules:\n  - matches:\n    - path: {{type: PathPrefix, value: /login}}\n    backendRefs:\n    - {{name: web-backend, port: 8080}}\n"
        ),
    );
    c.apply(&intruder);
    c.route_condition(WEB, "intruder", "iso", ("Accepted", "True", "Accepted"));
    c.served_by("b.example.com", "/login", NO_HEADERS, "web-backend");
    c.served_by("a.example.com", "/login", NO_HEADERS, "infra-backend-v1");
    c.delete(&intruder);
}

/// HTTPRouteCORS, every case but those of its `cors-wildcard-methods-headers`
/// route, whose first rule asks for `*` with credentials: answering that by
/// echoing any Origin with `Access-Control-Allow-Credentials: true` is the
/// credentialed reflection the gateway refuses, so that route is not accepted
/// (`UnsupportedValue`) and its four cases (the suite's last four) fail here.
#[test]
fn conformance_cors() {
    let c = Conformance::start();
    let gw_host = "10.244.0.1";
    let cors_route = |name: &str, prefix: &str, cors: &str| {
        route(
            INFRA,
            name,
            &format!(
                "  parentRefs:\n  - name: same-namespace\n  rules:\n  - matches:\n    \
                 - path: {{type: PathPrefix, value: {prefix}}}\n{}{}",
                filter("CORS", cors),
                to("infra-backend-v1")
            ),
        )
    };
    c.apply(&cors_route(
        "cors-multiple-origins-methods-headers",
        "/cors-1",
        "        allowOrigins: [\"https://www.foo.com\", \"https://*.bar.com\"]\n        \
         allowMethods: [GET, OPTIONS]\n        allowHeaders: [x-header-1, x-header-2]\n        \
         exposeHeaders: [x-header-3, x-header-4]\n        allowCredentials: true\n        maxAge: 3600\n",
    ));
    c.apply(&cors_route(
        "cors-wildcard-methods",
        "/cors-2",
        "        allowOrigins: [\"https://www.foo.com\"]\n        allowMethods: [\"*\"]\n",
    ));
    c.apply(&cors_route(
        "cors-wildcard-origin",
        "/cors-wildcard-origin",
        "        allowOrigins: [\"*\"]\n        allowMethods: [PUT]\n        allowCredentials: false\n",
    ));
    let all_wildcards = "        allowOrigins: [\"*\"]\n        allowMethods: [\"*\"]\n        allowHeaders: [\"*\"]\n";
    c.apply(&route(
        INFRA,
        "cors-wildcard-methods-headers",
        &format!(
            "  parentRefs:\n  - name: same-namespace\n  rules:\n  - matches:\n    \
             - path: {{type: PathPrefix, value: /cors-wildcard-methods-headers}}\n{}{}  - matches:\n    \
             - path: {{type: PathPrefix, value: /cors-wildcard-methods-headers-unauth}}\n{}{}",
            filter("CORS", &format!("{all_wildcards}        allowCredentials: true\n")),
            to("infra-backend-v1"),
            filter("CORS", &format!("{all_wildcards}        allowCredentials: false\n")),
            to("infra-backend-v1"),
        ),
    ));
    for name in [
        "cors-multiple-origins-methods-headers",
        "cors-wildcard-methods",
        "cors-wildcard-origin",
    ] {
        c.route_accepted(INFRA, name, "same-namespace");
    }
    let message = c.refused("cors-wildcard-methods-headers");
    assert!(
        message.starts_with(
            "spec.rules[0].filters[0].cors: allowCredentials with `*` in allowOrigins"
        ),
        "{message}"
    );

    // The harness's comparison: names case-insensitive, several values joined
    // with ",", whitespace ignored; any of the listed values.
    type Want<'a> = &'a [(&'a str, &'a [&'a str])];
    let case = |what: &str,
                (method, path): (&str, &str),
                headers: &[(&str, &str)],
                statuses: &[u16],
                want: Want,
                absent: &[&str]| {
        let local = method == "OPTIONS";
        c.expect(what, (method, gw_host, path, headers), |r, _| {
            let value = |name: &str| r.all(name).join(",").replace([' ', '\t'], "");
            statuses.contains(&r.status)
                && want
                    .iter()
                    .all(|(name, ok)| ok.contains(&value(name).as_str()))
                && absent.iter().all(|name| r.all(name).is_empty())
                && r.all("x-upstream").is_empty() == local
        });
    };
    const OK: &[u16] = &[200, 204];
    let cors_1 = |origin: &'static str| -> Vec<(&'static str, &'static str)> {
        vec![
            ("Origin", origin),
            ("Access-Control-Request-Method", "GET"),
            ("Access-Control-Request-Headers", "x-header-1, x-header-2"),
        ]
    };
    for origin in [
        "https://www.foo.com",
        "https://www.bar.com",
        "https://xpto.www.bar.com",
    ] {
        case(
            &format!("1-3: preflight from {origin}"),
            ("OPTIONS", "/cors-1"),
            &cors_1(origin),
            OK,
            &[
                ("access-control-allow-origin", &[origin]),
                (
                    "access-control-allow-methods",
                    &["GET,OPTIONS", "OPTIONS,GET"],
                ),
                (
                    "access-control-allow-headers",
                    &["x-header-1,x-header-2", "x-header-2,x-header-1"],
                ),
                (
                    "access-control-expose-headers",
                    &["x-header-3,x-header-4", "x-header-4,x-header-3"],
                ),
                ("access-control-max-age", &["3600"]),
                ("access-control-allow-credentials", &["true"]),
            ],
            &[],
        );
    }
    case(
        "4: preflight from an origin not allowed",
        ("OPTIONS", "/cors-1"),
        &[
            ("Origin", "https://foobar.com"),
            ("Access-Control-Request-Method", "GET"),
        ],
        &[200, 204, 403],
        &[],
        &["access-control-allow-origin"],
    );
    for origin in ["https://www.foo.com", "https://www.bar.com"] {
        case(
            &format!("5-6: GET from {origin}"),
            ("GET", "/cors-1"),
            &cors_1(origin),
            &[200],
            &[("access-control-allow-origin", &[origin])],
            &[],
        );
    }
    case(
        "7: GET from an origin not allowed",
        ("GET", "/cors-1"),
        &cors_1("https://foobar.com"),
        &[200],
        &[],
        &["access-control-allow-origin"],
    );
    case(
        "8-9: preflight on wildcard methods",
        ("OPTIONS", "/cors-2"),
        &[
            ("Origin", "https://www.foo.com"),
            ("Access-Control-Request-Method", "POST"),
        ],
        OK,
        &[
            ("access-control-allow-methods", &["POST", "*"]),
            ("access-control-allow-origin", &["https://www.foo.com"]),
        ],
        &["access-control-allow-credentials"],
    );
    for origin in ["https://foobar.com", "https://foobar.com:12345"] {
        case(
            &format!("10-11: preflight on a wildcard origin from {origin}"),
            ("OPTIONS", "/cors-wildcard-origin"),
            &[("Origin", origin), ("Access-Control-Request-Method", "PUT")],
            OK,
            &[
                ("access-control-allow-origin", &[origin, "*"]),
                ("access-control-allow-methods", &["PUT"]),
            ],
            &["access-control-allow-credentials"],
        );
    }
    for origin in ["https://foobar.com:12345", "https://foobar.com"] {
        case(
            &format!("12-13: PUT on a wildcard origin from {origin}"),
            ("PUT", "/cors-wildcard-origin"),
            &[("Origin", origin)],
            &[200],
            &[("access-control-allow-origin", &[origin, "*"])],
            &["access-control-allow-credentials"],
        );
    }
    // 14-17: the refused route serves nothing.
    c.status(
        ("GET", gw_host, "/cors-wildcard-methods-headers", NO_HEADERS),
        404,
    );
}
