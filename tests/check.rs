//! `pingora-secgw check`: the real binary on real configurations, its JSON and
//! text reports, and its exit status.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use common::tls::TestPki;
use common::BIN;
use serde_json::Value;

/// A plain and a TLS listener; `check` binds neither.
const LISTENERS: &str = "listeners:\n  - {address: \"127.0.0.1:8080\"}\n  - {address: \"127.0.0.1:8443\", tls: {cert: cert.pem, key: key.pem}}\n";
const PLAIN_ONLY: &str = "listeners: [{address: \"127.0.0.1:8080\"}]\n";

/// The options that make a vhost clean: HSTS 2 years with includeSubDomains
/// and preload, and the redirect; the built-in CSP is strict already.
const STRICT: [(&str, &str); 3] = [
    ("hsts_max_age", "63072000"),
    ("hsts_preload", "true"),
    ("ssl_redirect", "true"),
];

/// One certificate for every test's TLS listener: (cert, key) PEM.
fn pem() -> &'static (String, String) {
    static PEM: OnceLock<(String, String)> = OnceLock::new();
    PEM.get_or_init(|| {
        let leaf = TestPki::new().leaf(&["app.test"]);
        (leaf.cert_pem, leaf.key_pem)
    })
}

/// A vhost with the strict options, `security` replacing or adding keys (flow
/// YAML values), and `extra` more keys of the vhost, indented by four spaces.
fn vhost(name: &str, security: &[(&str, &str)], extra: &str) -> String {
    let mut keys: Vec<(&str, &str)> = STRICT.to_vec();
    for (k, v) in security {
        match keys.iter_mut().find(|(key, _)| key == k) {
            Some(entry) => entry.1 = v,
            None => keys.push((k, v)),
        }
    }
    let keys: Vec<String> = keys.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    format!(
        "  - name: {name}\n    hosts: [{name}.test]\n    upstreams: [\"127.0.0.1:9\"]\n    security: {{{}}}\n{extra}",
        keys.join(", ")
    )
}

/// gw.yaml with both listeners and vhost `app`.
fn app(security: &[(&str, &str)], extra: &str) -> String {
    format!("{LISTENERS}vhosts:\n{}", vhost("app", security, extra))
}

struct Checked {
    code: i32,
    stdout: String,
    stderr: String,
    conf: PathBuf,
    _dir: tempfile::TempDir,
}

/// Writes gw.yaml beside the listener's certificate and runs `check -c gw.yaml ARGS`.
fn check(yaml: &str, args: &[&str]) -> Checked {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = pem();
    std::fs::write(dir.path().join("cert.pem"), cert).unwrap();
    std::fs::write(dir.path().join("key.pem"), key).unwrap();
    let conf = dir.path().join("gw.yaml");
    std::fs::write(&conf, yaml).unwrap();
    let out = Command::new(BIN)
        .arg("check")
        .arg("-c")
        .arg(&conf)
        .args(args)
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    Checked {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        conf,
        _dir: dir,
    }
}

/// The `--format json` report of a configuration that loads.
fn report(yaml: &str) -> Value {
    let c = check(yaml, &["--format", "json"]);
    assert!(matches!(c.code, 0 | 1), "exit {}: {}", c.code, c.stderr);
    serde_json::from_str(&c.stdout).unwrap_or_else(|e| panic!("{e}: {}", c.stdout))
}

/// (code, severity, vhost, route, key) of one finding.
type Row = (
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    String,
);

fn rows(report: &Value) -> Vec<(String, String, String, Option<String>, String)> {
    let text = |v: &Value| v.as_str().unwrap().to_string();
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                text(&f["code"]),
                text(&f["severity"]),
                text(&f["vhost"]),
                f["route"].as_str().map(str::to_string),
                text(&f["key"]),
            )
        })
        .collect()
}

fn assert_found(yaml: &str, expected: &[Row]) {
    let expected: Vec<(String, String, String, Option<String>, String)> = expected
        .iter()
        .map(|(c, s, v, r, k)| {
            (
                c.to_string(),
                s.to_string(),
                v.to_string(),
                r.map(str::to_string),
                k.clone(),
            )
        })
        .collect();
    assert_eq!(rows(&report(yaml)), expected);
}

/// A finding of vhost `app` (vhosts[0]) itself.
fn at(code: &'static str, severity: &'static str, key: &str) -> Row {
    (code, severity, "app", None, format!("vhosts[0].{key}"))
}

/// A finding of route `j` of vhost `app`, labelled `route`.
fn on_route(
    code: &'static str,
    severity: &'static str,
    j: usize,
    route: &'static str,
    key: &str,
) -> Row {
    (
        code,
        severity,
        "app",
        Some(route),
        format!("vhosts[0].routes[{j}].{key}"),
    )
}

#[test]
fn a_strict_configuration_has_no_findings() {
    let c = check(&app(&[], ""), &["--format", "json", "--fail-on", "info"]);
    assert_eq!(c.code, 0, "{}{}", c.stdout, c.stderr);
    let report: Value = serde_json::from_str(&c.stdout).unwrap();
    assert_eq!(report["findings"], Value::Array(Vec::new()));
    let app = &report["predicted"]["app"];
    assert!(app["grade"].is_string() && app["score"].is_i64() && app["deductions"].is_array());
}

#[test]
fn the_json_report_has_exactly_findings_and_predicted() {
    let yaml = format!(
        "{LISTENERS}vhosts:\n{}{}",
        vhost("app", &[("referrer_policy", "false")], ""),
        vhost(
            "shop",
            &[],
            "    routes:\n      - {prefix: /legacy, security: {referrer_policy: false}}\n"
        )
    );
    let report = report(&yaml);
    let top: Vec<&str> = report
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(top, ["findings", "predicted"]);
    let findings = report["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 2, "{findings:?}");
    // serde_json's Value keeps keys sorted.
    let keys: Vec<&str> = findings[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["code", "fix", "key", "message", "route", "severity", "vhost"]
    );
    assert_eq!(findings[0]["route"], Value::Null);
    assert_eq!(findings[1]["route"], "/legacy");
    assert_eq!(
        findings[1]["key"],
        "vhosts[1].routes[0].security.referrer_policy"
    );
    assert!(!findings[0]["message"].as_str().unwrap().is_empty());
    assert!(!findings[0]["fix"].as_str().unwrap().is_empty());
    let predicted: Vec<&str> = report["predicted"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(predicted, ["app", "shop"]);
}

/// The Observatory fetches `/` through whatever route serves it: a route
/// `exact: /` that turns off CSP, HSTS and the redirect is what it grades.
#[test]
fn the_grade_is_predicted_from_the_route_that_serves_the_root() {
    let routes = "    routes:\n      - {exact: /, security: {csp_enabled: false, hsts_enabled: false, ssl_redirect: false}}\n";
    let report = report(&format!(
        "{LISTENERS}vhosts:\n{}{}",
        vhost("app", &[], ""),
        vhost("shop", &[], routes)
    ));
    let grade = |v: &str| {
        let p = &report["predicted"][v];
        (
            p["grade"].as_str().unwrap().to_string(),
            p["score"].as_i64().unwrap(),
        )
    };
    assert_eq!(grade("app"), ("A+".to_string(), 120));
    assert_eq!(grade("shop"), ("D".to_string(), 35));
    let failed: Vec<(&str, i64)> = report["predicted"]["shop"]["deductions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["test"].as_str().unwrap(), d["modifier"].as_i64().unwrap()))
        .filter(|(_, m)| *m < 0)
        .collect();
    assert_eq!(
        failed,
        [
            ("content-security-policy", -25),
            ("redirection", -20),
            ("strict-transport-security", -20)
        ]
    );
}

#[test]
fn the_text_report() {
    let c = check(&app(&[("referrer_policy", "false")], ""), &[]);
    assert_eq!(c.code, 1, "{}", c.stderr);
    let mut lines = c.stdout.lines();
    let first = lines.next().unwrap();
    assert!(
        first.starts_with(
            "vhosts[0].security.referrer_policy: SECGW-W022 warning [vhost app]: no Referrer-Policy"
        ),
        "{}",
        c.stdout
    );
    assert!(lines
        .next()
        .unwrap()
        .starts_with("    fix: set referrer_policy"));
    assert!(c
        .stdout
        .contains("\nPredicted MDN HTTP Observatory grades\n  app: "));
    assert!(
        c.stdout.ends_with("\n0 errors, 1 warnings, 0 infos\n"),
        "{}",
        c.stdout
    );
}

#[test]
fn w004_hsts_off() {
    assert_found(
        &app(&[("hsts_enabled", "false")], ""),
        &[at("SECGW-W004", "warning", "security.hsts_enabled")],
    );
}

#[test]
fn w005_hsts_without_subdomains() {
    assert_found(
        &app(
            &[
                ("hsts_include_subdomains", "false"),
                ("hsts_preload", "false"),
            ],
            "",
        ),
        &[
            at("SECGW-W005", "warning", "security.hsts_include_subdomains"),
            at("SECGW-W021", "info", "security.hsts_preload"),
        ],
    );
}

#[test]
fn w006_no_nosniff() {
    assert_found(
        &app(&[("content_type_options", "false")], ""),
        &[at("SECGW-W006", "warning", "security.content_type_options")],
    );
}

#[test]
fn w008_no_redirect() {
    assert_found(
        &app(&[("ssl_redirect", "false"), ("hsts_preload", "false")], ""),
        &[
            at("SECGW-W021", "info", "security.hsts_preload"),
            at("SECGW-W008", "warning", "security.ssl_redirect"),
        ],
    );
}

#[test]
fn w019_framing_not_denied() {
    let yaml = format!(
        "{LISTENERS}vhosts:\n{}{}",
        vhost("app", &[], ""),
        vhost("portal", &[("frame_options", "SAMEORIGIN")], "")
    );
    assert_found(
        &yaml,
        &[(
            "SECGW-W019",
            "warning",
            "portal",
            None,
            "vhosts[1].security.frame_options".into(),
        )],
    );
    assert_found(
        &app(&[("frame_options_allow_from", "https://portal.test")], ""),
        &[at(
            "SECGW-W019",
            "warning",
            "security.frame_options_allow_from",
        )],
    );
}

#[test]
fn w021_hsts_without_preload() {
    assert_found(
        &app(&[("hsts_preload", "false")], ""),
        &[at("SECGW-W021", "info", "security.hsts_preload")],
    );
}

#[test]
fn w022_no_referrer_policy() {
    assert_found(
        &app(&[("referrer_policy", "false")], ""),
        &[at("SECGW-W022", "warning", "security.referrer_policy")],
    );
}

#[test]
fn w101_no_csp() {
    assert_found(
        &app(&[("csp_enabled", "false")], ""),
        &[at("SECGW-W101", "warning", "security.csp_enabled")],
    );
}

#[test]
fn w102_report_only_csp() {
    assert_found(
        &app(&[("csp_report_only", "true")], ""),
        &[at("SECGW-W102", "warning", "security.csp_report_only")],
    );
}

#[test]
fn w103_unsafe_inline_on_a_named_route() {
    let routes = "    routes:\n      - name: widgets\n        prefix: /widgets\n        security: {csp_policy: {script-src: [\"'self'\", \"'unsafe-inline'\"]}}\n      - prefix: /nonced\n        security: {csp_nonce: true, csp_policy: {script-src: [\"'self'\", \"'unsafe-inline'\"]}}\n";
    assert_found(
        &app(&[], routes),
        &[on_route(
            "SECGW-W103",
            "warning",
            0,
            "widgets",
            "security.csp_policy.script-src",
        )],
    );
}

#[test]
fn w104_objects_allowed() {
    assert_found(
        &app(&[("csp_policy", "{object-src: [\"'self'\"]}")], ""),
        &[at(
            "SECGW-W104",
            "warning",
            "security.csp_policy.object-src",
        )],
    );
}

#[test]
fn w105_no_framing_rule() {
    assert_found(
        &app(
            &[
                ("frame_options", "false"),
                ("csp_policy", "{frame-ancestors: null}"),
            ],
            "",
        ),
        &[at(
            "SECGW-W105",
            "warning",
            "security.csp_policy.frame-ancestors",
        )],
    );
}

#[test]
fn w106_plain_http_sources() {
    assert_found(
        &app(
            &[("csp_policy", "{img-src: [\"'self'\", \"http://cdn.test\"]}")],
            "",
        ),
        &[at("SECGW-W106", "warning", "security.csp_policy.img-src")],
    );
}

#[test]
fn w107_short_hsts_on_a_route_only() {
    let routes = "    routes:\n      - {exact: /status, security: {hsts_max_age: 3600}}\n      - {prefix: /same, security: {hsts_max_age: 63072000}}\n";
    assert_found(
        &app(&[], routes),
        &[
            on_route(
                "SECGW-W107",
                "warning",
                0,
                "/status",
                "security.hsts_max_age",
            ),
            on_route("SECGW-E102", "error", 0, "/status", "security.hsts_preload"),
        ],
    );
}

#[test]
fn w108_conflict_append() {
    assert_found(
        &app(&[], "    headers: {conflict: {X-Frame-Options: append}}\n"),
        &[at(
            "SECGW-W108",
            "warning",
            "headers.conflict.X-Frame-Options",
        )],
    );
}

#[test]
fn w109_xss_auditor() {
    assert_found(
        &app(&[("xss_protection", "true")], ""),
        &[at("SECGW-W109", "warning", "security.xss_protection")],
    );
}

#[test]
fn w110_expect_ct() {
    assert_found(
        &app(&[("expect_ct", "true")], ""),
        &[at("SECGW-W110", "info", "security.expect_ct")],
    );
}

#[test]
fn w111_builtin_directives_looser_than_default_src() {
    let own = (
        "csp_policy",
        "{default-src: [\"'self'\"], style-src: [\"'self'\"]}",
    );
    assert_found(
        &app(&[own], ""),
        &[
            at("SECGW-W111", "warning", "security.csp_use_defaults"),
            at("SECGW-W111", "warning", "security.csp_use_defaults"),
        ],
    );
    let without = [
        ("csp_use_defaults", "false"),
        (
            "csp_policy",
            "{default-src: [\"'self'\"], object-src: [\"'none'\"]}",
        ),
    ];
    assert_found(&app(&without, ""), &[]);
}

#[test]
fn e101_scripts_from_any_host_on_a_regex_route() {
    let routes = "    routes:\n      - regex: \"^/embed/[0-9]+$\"\n        security: {csp_policy: {script-src: [\"*\"]}}\n";
    assert_found(
        &app(&[], routes),
        &[on_route(
            "SECGW-E101",
            "error",
            0,
            "^/embed/[0-9]+$",
            "security.csp_policy.script-src",
        )],
    );
}

#[test]
fn e102_preload_without_its_requirements() {
    assert_found(
        &app(&[("ssl_host", "www.app.test")], ""),
        &[at("SECGW-E102", "error", "security.hsts_preload")],
    );
}

#[test]
fn e103_trusting_every_address() {
    let yaml = app(&[], "").replace(
        "vhosts:\n",
        "trusted_proxies: [10.0.0.0/8, 0.0.0.0/0]\nvhosts:\n",
    );
    assert_found(
        &yaml,
        &[("SECGW-E103", "error", "", None, "trusted_proxies[1]".into())],
    );
}

#[test]
fn e104_any_origin_on_a_route_that_sets_cookies() {
    let routes = "    routes:\n      - prefix: /login\n        security: {cors_enabled: true, allowed_origins: [\"*\"]}\n        headers: {set: {Set-Cookie: \"session=1; Secure; HttpOnly\"}}\n";
    assert_found(
        &app(&[], routes),
        &[on_route(
            "SECGW-E104",
            "error",
            0,
            "/login",
            "security.allowed_origins",
        )],
    );
}

#[test]
fn e105_redirect_without_any_https() {
    let yaml = format!("{PLAIN_ONLY}vhosts:\n{}", vhost("app", &[], ""));
    assert_found(&yaml, &[at("SECGW-E105", "error", "security.ssl_redirect")]);
    let proxied = format!(
        "{PLAIN_ONLY}trusted_proxies: [10.0.0.1]\nvhosts:\n{}",
        vhost("app", &[], "")
    );
    assert_found(&proxied, &[]);
}

#[test]
fn fail_on_picks_the_lowest_failing_severity() {
    let info_only = app(&[("hsts_preload", "false")], "");
    assert_eq!(check(&info_only, &[]).code, 0);
    assert_eq!(check(&info_only, &["--fail-on", "warning"]).code, 0);
    assert_eq!(check(&info_only, &["--fail-on", "info"]).code, 1);

    let warning = app(&[("referrer_policy", "false")], "");
    assert_eq!(check(&warning, &[]).code, 1);
    assert_eq!(check(&warning, &["--fail-on", "error"]).code, 0);

    let error = app(&[("csp_policy", "{script-src: [\"*\"]}")], "");
    assert_eq!(check(&error, &["--fail-on", "error"]).code, 1);
    assert_eq!(
        check(&error, &["--format", "json", "--fail-on", "error"]).code,
        1
    );
}

#[test]
fn check_ignore_silences_the_vhost_and_its_routes() {
    let extra = "    check_ignore: [SECGW-W021, SECGW-W022]\n    routes:\n      - {prefix: /old, security: {referrer_policy: false}}\n";
    let yaml = app(
        &[("hsts_preload", "false"), ("referrer_policy", "false")],
        extra,
    );
    assert_found(&yaml, &[]);
    assert_eq!(check(&yaml, &["--fail-on", "info"]).code, 0);
}

#[test]
fn an_invalid_configuration_exits_2_naming_file_key_and_reason() {
    let c = check(
        &app(&[], "    check_ignore: [SECGW-W021, SECGW-X000]\n"),
        &[],
    );
    assert_eq!(c.code, 2, "{}{}", c.stdout, c.stderr);
    let expected = format!(
        "pingora-secgw: invalid configuration: {}: vhosts[0].check_ignore[1]: `SECGW-X000` is not a check code; known: SECGW-W004,",
        c.conf.display()
    );
    assert!(c.stderr.starts_with(&expected), "{}", c.stderr);
    assert_eq!(c.stdout, "");

    // Compile-time rules are part of loading too.
    let c = check(&app(&[], "    policy: missing\n"), &["--format", "json"]);
    assert_eq!(c.code, 2, "{}", c.stderr);
    assert!(
        c.stderr
            .contains(": vhosts[0].policy: unknown policy `missing`"),
        "{}",
        c.stderr
    );
}
