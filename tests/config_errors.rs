//! Bad configuration is refused at load with the file, the key path and the reason;
//! `-t` checks a configuration without serving.

mod common;

use common::*;

const HEAD: &str = "listeners: [{address: \"127.0.0.1:1\"}]\n";

fn vhost(body: &str) -> String {
    format!("{HEAD}vhosts:\n  - name: app\n    hosts: [app.test]\n    upstreams: [\"127.0.0.1:9\"]\n{body}")
}

/// Expects `-t` to fail with `FILE: KEY: REASON...` where FILE is gw.yaml or
/// the named policy file.
fn refused(yaml: &str, files: &[(&str, &str)], file: &str, key: &str, reason: &str) {
    let (code, out, dir) = check_config(yaml, files);
    assert_eq!(code, 1, "expected exit 1, got {code}: {out}");
    let path = dir.path().join(file);
    let prefix = if key.is_empty() {
        format!("pingora-secgw: invalid configuration: {}: ", path.display())
    } else {
        format!(
            "pingora-secgw: invalid configuration: {}: {key}: ",
            path.display()
        )
    };
    let line = out
        .lines()
        .find(|l| l.starts_with("pingora-secgw: invalid configuration"))
        .unwrap_or_else(|| panic!("no error line in: {out}"));
    assert!(
        line.starts_with(&prefix),
        "\nexpected prefix: {prefix}\n got: {line}"
    );
    assert!(
        line.contains(reason),
        "\nexpected reason: {reason}\n got: {line}"
    );
}

#[test]
fn a_valid_configuration_passes_the_test_flag() {
    let (code, out, _dir) = check_config(&vhost(""), &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("is valid (1 vhosts)"), "{out}");
}

#[test]
fn the_shipped_configuration_passes_the_test_flag() {
    let out = std::process::Command::new(BIN)
        .args([
            "-t",
            "-c",
            concat!(env!("CARGO_MANIFEST_DIR"), "/conf/gw.yaml"),
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn syntax_and_unknown_keys() {
    refused("listeners: [\n", &[], "gw.yaml", "", "invalid YAML");
    refused(&format!("{HEAD}vhosts: []\nlistners: []\n"), &[], "gw.yaml", "listners", "unknown field `listners`, expected one of `listeners`, `admin`, `trusted_proxies`, `policy_files`, `vhosts`");
    refused(
        &vhost("    security: {csp_enable: true}\n"),
        &[],
        "gw.yaml",
        "vhosts[0].security.csp_enable",
        "unknown field `csp_enable`, expected one of `csp_enabled`,",
    );
    refused(
        "listeners: [{address: \"localhost\"}]\nvhosts: []\n",
        &[],
        "gw.yaml",
        "listeners[0].address",
        "invalid socket address",
    );
}

#[test]
fn header_values_with_control_bytes_are_refused() {
    refused(
        &vhost("    headers: {set: {X-Test: \"a\\r\\nSet-Cookie: evil=1\"}}\n"),
        &[],
        "gw.yaml",
        "vhosts[0].headers.set.X-Test",
        "carriage return (CR)",
    );
    refused(
        &vhost("    headers: {add: {X-Test: \"a\\nb\"}}\n"),
        &[],
        "gw.yaml",
        "vhosts[0].headers.add.X-Test",
        "line feed (LF)",
    );
    refused(
        &vhost("    request_headers: {set: {X-Test: \"a\\0b\"}}\n"),
        &[],
        "gw.yaml",
        "vhosts[0].request_headers.set.X-Test",
        "NUL byte",
    );
    refused(
        &vhost("    security: {cache_control: \"no-store\\u0007\"}\n"),
        &[],
        "gw.yaml",
        "vhosts[0].security.cache_control",
        "byte 0x07",
    );
    refused(
        &vhost("    headers: {set: {\"Bad Name\": x}}\n"),
        &[],
        "gw.yaml",
        "vhosts[0].headers.set.Bad Name",
        "`Bad Name` is not a valid header name",
    );
}

#[test]
fn bad_option_values_are_refused() {
    refused(
        &format!("shutdown_drain_seconds: 86400\n{}", vhost("")),
        &[],
        "gw.yaml",
        "shutdown_drain_seconds",
        "86400 is more than 3600 (an hour)",
    );
    refused(
        &format!("shutdown_drain_seconds: -1\n{}", vhost("")),
        &[],
        "gw.yaml",
        "shutdown_drain_seconds",
        "invalid value: integer `-1`, expected u64",
    );
    refused(
        &format!("shutdown_drain_seconds: 5s\n{}", vhost("")),
        &[],
        "gw.yaml",
        "shutdown_drain_seconds",
        "invalid type: string \"5s\", expected u64",
    );
    refused(
        &vhost("    security: {referrer_policy: always}\n"),
        &[],
        "gw.yaml",
        "vhosts[0].security.referrer_policy",
        "`always` is not a referrer policy",
    );
    refused(
        &vhost("    security: {frame_options: ALLOW-FROM}\n"),
        &[],
        "gw.yaml",
        "vhosts[0].security.frame_options",
        "unknown variant `ALLOW-FROM`, expected one of `DENY`, `deny`, `SAMEORIGIN`, `sameorigin`",
    );
    refused(
        &vhost("    security: {csp_policy: {script-src: [self]}}\n"),
        &[],
        "gw.yaml",
        "vhosts[0].security.csp_policy",
        "directive `script-src`: `self` must be quoted",
    );
    refused(
        &vhost("    security: {csp_policy: {scripts-src: [\"'self'\"]}}\n"),
        &[],
        "gw.yaml",
        "vhosts[0].security.csp_policy",
        "`scripts-src` is not a CSP directive",
    );
    refused(
        &vhost("    security: {permissions_policy: {camera: self}}\n"),
        &[],
        "gw.yaml",
        "vhosts[0].security.permissions_policy",
        "must be quoted",
    );
    refused(
        &vhost("    security: {cross_origin_opener_policy: same-site}\n"),
        &[],
        "gw.yaml",
        "vhosts[0].security.cross_origin_opener_policy",
        "unknown variant `same-site`",
    );
    refused(
        &vhost("    security: {allowed_origins: [\"https://*.example.com/path\"]}\n"),
        &[],
        "gw.yaml",
        "vhosts[0].security.allowed_origins[0]",
        "without path",
    );
    refused(
        &format!("{HEAD}trusted_proxies: [10.0.0.0/33]\nvhosts: []\n"),
        &[],
        "gw.yaml",
        "trusted_proxies[0]",
        "neither a CIDR",
    );
}

#[test]
fn cross_key_rules_are_refused() {
    refused(
        &format!("{HEAD}nonce_cache: {{max_bytes: 1000, max_page_bytes: 2000}}\nvhosts: []\n"),
        &[],
        "gw.yaml",
        "nonce_cache.max_page_bytes",
        "2000 is larger than max_bytes (1000)",
    );
    refused(
        &format!("{HEAD}nonce_cache: {{max_page_bytes: 2097153}}\nvhosts: []\n"),
        &[],
        "gw.yaml",
        "nonce_cache.max_page_bytes",
        "2097153 is over 2097152, half the HTML parser's 4 MiB memory limit",
    );
    refused(
        &format!("{HEAD}nonce_cache: {{max_bytes: -1}}\nvhosts: []\n"),
        &[],
        "gw.yaml",
        "nonce_cache.max_bytes",
        "invalid value",
    );
    refused(
        &vhost("    security: {csp_nonce_cache: maybe}\n"),
        &[],
        "gw.yaml",
        "vhosts[0].security.csp_nonce_cache",
        "invalid type",
    );
    refused(
        &vhost("    security: {cors_enabled: true, allowed_origins: [\"*\"], allow_credentials: true}\n"),
        &[],
        "gw.yaml",
        "vhosts[0].security.allow_credentials",
        "allowed_origins contains \"*\"",
    );
    refused(
        &format!("{HEAD}vhosts:\n  - name: any\n    hosts: [\"*\"]\n    upstreams: [\"127.0.0.1:9\"]\n    security: {{ssl_redirect: true}}\n"),
        &[],
        "gw.yaml",
        "vhosts[0].security.ssl_redirect",
        "needs `ssl_host`",
    );
    refused(
        &vhost("    respond: {status: 200}\n"),
        &[],
        "gw.yaml",
        "vhosts[0]",
        "either `upstreams` or `respond`, not both",
    );
    refused(
        &format!("{HEAD}vhosts:\n  - name: a\n    hosts: [a.test]\n"),
        &[],
        "gw.yaml",
        "vhosts[0]",
        "needs `upstreams`",
    );
    refused(
        &format!("{HEAD}vhosts:\n  - {{name: a, hosts: [A.test], respond: {{}}}}\n  - {{name: b, hosts: [a.test.], respond: {{}}}}\n"),
        &[],
        "gw.yaml",
        "vhosts[1].hosts[0]",
        "host `a.test` is already served by vhosts[0] (a)",
    );
    refused(
        &format!("{HEAD}vhosts:\n  - {{name: a, hosts: [a.test], respond: {{status: 99}}}}\n"),
        &[],
        "gw.yaml",
        "vhosts[0].respond.status",
        "not a final HTTP status",
    );
    refused(
        &vhost("    security: {cors_enabled: true}\n"),
        &[],
        "gw.yaml",
        "vhosts[0].security.allowed_origins",
        "cors_enabled needs at least one allowed origin",
    );
    refused(
        &vhost("    security: {cors_enabled: true, allowed_origins: [\"https://a.test\"], allow_credentials: true, expose_headers: [\"*\"]}\n"),
        &[],
        "gw.yaml",
        "vhosts[0].security.expose_headers",
        "list the headers to expose",
    );
    refused(
        &vhost("    request_headers: {conflict: {X-A: keep}}\n"),
        &[],
        "gw.yaml",
        "vhosts[0].request_headers.conflict",
        "applies to response headers",
    );
    refused(
        &vhost("    headers: {add: {X-Frame-Options: SAMEORIGIN}}\n"),
        &[],
        "gw.yaml",
        "vhosts[0].headers.add.X-Frame-Options",
        "managed by this policy",
    );
}

#[test]
fn policy_problems_name_the_policy_file() {
    refused(
        &vhost("    policy: nope\n"),
        &[],
        "gw.yaml",
        "vhosts[0].policy",
        "unknown policy `nope`",
    );
    let cycle = [(
        "policies/loop.yaml",
        "policies:\n  a: {extends: b}\n  b: {extends: c}\n  c: {extends: a}\n",
    )];
    refused(
        &format!("policy_files: policies\n{}", vhost("    policy: a\n")),
        &cycle,
        "policies/loop.yaml",
        "policies.c.extends",
        "`extends` makes a cycle: a -> b -> c -> a",
    );
    let dangling = [("policies/p.yaml", "policies:\n  a: {extends: ghost}\n")];
    refused(
        &format!("policy_files: policies\n{}", vhost("")),
        &dangling,
        "policies/p.yaml",
        "policies.a.extends",
        "`a` extends unknown policy `ghost`",
    );
    let bad_value = [(
        "policies/p.yaml",
        "policies:\n  a:\n    security:\n      hsts_max_age: -1\n",
    )];
    refused(
        &format!("policy_files: policies\n{}", vhost("")),
        &bad_value,
        "policies/p.yaml",
        "policies.a.security.hsts_max_age",
        "invalid type: integer `-1`, expected u64 at line 4 column 21",
    );
    refused(
        &format!("policy_files: missing-dir\n{}", vhost("")),
        &[],
        "gw.yaml",
        "policy_files",
        "is neither a file nor a directory",
    );
    let half_written = [("policies/p.yaml", "")];
    refused(
        &format!("policy_files: policies\n{}", vhost("")),
        &half_written,
        "policies/p.yaml",
        "",
        "the file is empty",
    );
}

#[test]
fn a_refused_configuration_never_starts_serving() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("gw.yaml");
    std::fs::write(
        &conf,
        format!("listeners: [{{address: \"127.0.0.1:{port}\"}}]\nvhosts: [{{name: a, hosts: [a.test], respond: {{}}, security: {{frame_options: maybe}}}}]\n"),
    )
    .unwrap();
    let out = std::process::Command::new(BIN)
        .arg("-c")
        .arg(&conf)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("vhosts[0].security.frame_options"));
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}
