//! Hot reload through the real binary: edits, invalid files, Kubernetes ConfigMap
//! symlink swaps, SIGHUP, certificates, and a load test across 100 rewrites.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::tls::{client_config, handshake, TestPki};
use common::*;

const GW: &str = r#"
listeners: [{address: "{listen}"}]
admin: {address: "{admin}"}
policy_files: policies
vhosts: [{name: app, hosts: ["*"], respond: {status: 200, body: "ok\n"}, policy: p}]
"#;

fn policy(version: &str) -> String {
    format!("policies:\n  p:\n    headers:\n      set: {{X-Version: {version}}}\n")
}

fn version(gw: &Gateway) -> String {
    get(gw, "app.test", "/", &[]).one("x-version").to_string()
}

fn write(gw: &Gateway, rel: &str, text: &str) {
    std::fs::write(gw.dir.path().join(rel), text).unwrap();
}

#[test]
fn an_edited_policy_file_is_served_without_a_restart() {
    let gw = Gateway::start_with_files(GW, &[("policies/p.yaml", &policy("v1"))]);
    assert_eq!(version(&gw), "v1");
    write(&gw, "policies/p.yaml", &policy("v2"));
    eventually("v2 served", || version(&gw) == "v2");
    assert_eq!(
        gw.metric("secgw_config_reloads_total{result=\"success\"}"),
        Some(1.0)
    );
    assert_eq!(gw.metric("secgw_config_last_reload_successful"), Some(1.0));
    // A new file in the policy directory is picked up too.
    write(
        &gw,
        "policies/q.yaml",
        "policies:\n  q:\n    headers:\n      set: {X-Extra: q}\n",
    );
    write(
        &gw,
        "gw.yaml",
        &std::fs::read_to_string(gw.dir.path().join("gw.yaml"))
            .unwrap()
            .replace("policy: p}", "policy: q}"),
    );
    eventually("policy q served", || {
        get(&gw, "app.test", "/", &[]).all("x-extra") == ["q"]
    });
}

#[test]
fn an_invalid_file_keeps_the_last_good_configuration_until_it_is_fixed() {
    let gw = Gateway::start_with_files(GW, &[("policies/p.yaml", &policy("v1"))]);
    let failures = || gw.metric("secgw_config_reloads_total{result=\"failure\"}");
    for (n, bad) in [
        "policies:\n  p:\n    headers:\n      set: {X-Version: \"a\\r\\nb\"}\n",
        "policies:\n  p: [unclosed\n",
        "policies:\n  p:\n    extends: missing\n",
        "",
    ]
    .iter()
    .enumerate()
    {
        write(&gw, "policies/p.yaml", bad);
        eventually("the failure is counted", || {
            failures() == Some(n as f64 + 1.0)
        });
        assert_eq!(version(&gw), "v1");
        assert_eq!(gw.metric("secgw_config_last_reload_successful"), Some(0.0));
    }
    // The periodic content check does not reject the same bad file again.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(failures(), Some(4.0));
    assert!(gw
        .log()
        .contains("reload rejected, still serving the last good configuration:"));

    write(&gw, "policies/p.yaml", &policy("v3"));
    eventually("recovered", || version(&gw) == "v3");
    assert_eq!(gw.metric("secgw_config_last_reload_successful"), Some(1.0));
    assert_eq!(
        gw.metric("secgw_config_reloads_total{result=\"success\"}"),
        Some(1.0)
    );
}

/// A Kubernetes ConfigMap volume: files are symlinks through `..data`, which is
/// swapped atomically to a new timestamped directory on every update.
#[test]
fn a_configmap_symlink_swap_is_followed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (listen, admin) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let gw_yaml = format!(
        "{}listeners: [{{address: \"{listen}\"}}]\nadmin: {{address: \"{admin}\"}}\npolicy_files: \"policy-*.yaml\"\nvhosts: [{{name: app, hosts: [\"*\"], respond: {{}}, policy: p}}]\n",
        pingora_settings(root)
    );
    publish(root, "..2026_11_22_01", &gw_yaml, "v1");
    for name in ["gw.yaml", "policy-p.yaml"] {
        std::os::unix::fs::symlink(format!("..data/{name}"), root.join(name)).unwrap();
    }
    let conf = root.join("gw.yaml");
    let mut gw = Gateway::spawn(dir, &conf, &listen, &admin, "127.0.0.1:1");
    gw.wait_for(gw.addr);
    assert_eq!(version(&gw), "v1");

    let root = gw.dir.path().to_path_buf();
    publish(&root, "..2026_11_22_02", &gw_yaml, "v2");
    std::fs::remove_dir_all(root.join("..2026_11_22_01")).unwrap();
    eventually("v2 after the ..data swap", || version(&gw) == "v2");
    // The timestamped directories are never read as extra policy files.
    assert_eq!(
        gw.metric("secgw_config_reloads_total{result=\"failure\"}"),
        Some(0.0)
    );
}

/// Writes a new timestamped directory and swaps `..data` to it atomically, the
/// way the kubelet updates a ConfigMap volume.
fn publish(root: &Path, stamp: &str, gw_yaml: &str, version: &str) {
    let data = root.join(stamp);
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("gw.yaml"), gw_yaml).unwrap();
    std::fs::write(data.join("policy-p.yaml"), policy(version)).unwrap();
    std::os::unix::fs::symlink(stamp, root.join("..data_tmp")).unwrap();
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
}

#[test]
fn sighup_reloads_and_keeps_the_process() {
    let mut gw = Gateway::start_with_files(GW, &[("policies/p.yaml", &policy("v1"))]);
    let successes = |gw: &Gateway| gw.metric("secgw_config_reloads_total{result=\"success\"}");
    assert_eq!(successes(&gw), Some(0.0));
    for n in 1..=2 {
        let status = Command::new("kill")
            .args(["-HUP", &gw.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        eventually("SIGHUP reload", || successes(&gw) == Some(n as f64));
    }
    assert!(gw.alive());
    assert_eq!(version(&gw), "v1");
    assert!(gw.log().contains("SIGHUP: reloading the configuration"));
}

#[test]
fn listener_changes_are_reported_and_the_rest_applies() {
    let gw = Gateway::start_with_files(GW, &[("policies/p.yaml", &policy("v1"))]);
    let conf = gw.dir.path().join("gw.yaml");
    let text = std::fs::read_to_string(&conf).unwrap();
    let moved = format!("127.0.0.1:{}", free_port());
    std::fs::write(&conf, text.replace(&gw.addr.to_string(), &moved)).unwrap();
    write(&gw, "policies/p.yaml", &policy("v2"));
    eventually("v2 on the old listener", || version(&gw) == "v2");
    assert!(gw.log().contains(
        "listeners or Pingora server settings changed; they take effect after a graceful upgrade"
    ));
    assert!(std::net::TcpStream::connect(&moved).is_err());
}

#[test]
fn certificates_reload_with_the_configuration() {
    let pki = TestPki::new();
    let first = pki.leaf(&["a.test"]);
    let second = pki.leaf(&["a.test"]);
    let yaml = "listeners: [{address: \"{listen}\"}, {address: \"{tls}\", tls: {cert: certs/a.pem, key: certs/a.key}}]\nvhosts: [{name: a, hosts: [a.test], respond: {}, tls: {cert: certs/a.pem, key: certs/a.key}}]\n";
    let mut gw = Gateway::launch(
        yaml,
        &[
            ("certs/a.pem", &first.cert_pem),
            ("certs/a.key", &first.key_pem),
        ],
        free_port(),
    );
    gw.wait_for(gw.tls_addr);
    let ca = pki.ca_pem();
    let served = |gw: &Gateway| handshake(gw.tls_addr, "a.test", client_config(&ca, &[])).leaf;
    assert_eq!(served(&gw), first.der);
    // Key first, then certificate: in between the pair does not match and is
    // rejected, so the old pair keeps serving.
    write(&gw, "certs/a.key", &second.key_pem);
    write(&gw, "certs/a.pem", &second.cert_pem);
    eventually("the new certificate is served", || {
        served(&gw) == second.der
    });
}

/// Requests keep flowing while the configuration is rewritten 100 times,
/// alternating valid and invalid versions: none fails, and every response carries
/// exactly one complete header set of one version.
#[test]
fn no_request_fails_across_100_rewrites() {
    let versions = ["A", "B"];
    let valid = |v: &str| {
        let referrer = if v == "A" {
            "no-referrer"
        } else {
            "same-origin"
        };
        format!(
            "policies:\n  p:\n    security:\n      referrer_policy: {referrer}\n      csp_policy: {{default-src: [\"'self'\", \"https://{v}.example\"]}}\n    headers:\n      set: {{X-Version: {v}}}\n"
        )
    };
    let expected = |v: &str| -> (String, String, String) {
        let referrer = if v == "A" {
            "no-referrer"
        } else {
            "same-origin"
        };
        let csp = DEFAULT_HEADERS_HTTP[0].1.replace(
            "default-src 'self';",
            &format!("default-src 'self' https://{v}.example;"),
        );
        (v.to_string(), referrer.to_string(), csp)
    };
    let invalid = [
        "policies:\n  p:\n    headers:\n      set: {X-Version: \"bad\\r\\nvalue\"}\n".to_string(),
        "policies:\n  p: {security: {referrer_policy: sometimes}}\n".to_string(),
        "policies:\n  p:\n    security:\n      csp_policy: {default-src: [self]}\n".to_string(),
        valid("A")[..40].to_string(), // half-written
    ];
    let gw = Gateway::start_with_files(GW, &[("policies/p.yaml", &valid("A"))]);
    let done = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let count = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let (done, seen, count) = (done.clone(), seen.clone(), count.clone());
            let url = gw.url("/");
            std::thread::spawn(move || {
                let client = client();
                let started = Instant::now();
                let mut failures = Vec::new();
                // Bounded in count and time whatever happens.
                while !done.load(Ordering::SeqCst)
                    && count.load(Ordering::SeqCst) < 50_000
                    && started.elapsed() < Duration::from_secs(60)
                {
                    count.fetch_add(1, Ordering::SeqCst);
                    match client.get(&url).header("Host", "app.test").send() {
                        Ok(r) => {
                            let r = reply(r);
                            let got = (
                                r.all("x-version").join("|"),
                                r.all("referrer-policy").join("|"),
                                r.all("content-security-policy").join("|"),
                            );
                            if r.status != 200 || !versions.iter().any(|v| expected(v) == got) {
                                failures.push(format!("{} {got:?}", r.status));
                            } else {
                                seen.lock().unwrap().push(got.0);
                            }
                        }
                        Err(e) => failures.push(e.to_string()),
                    }
                }
                failures
            })
        })
        .collect();

    for i in 0..100 {
        let text = if i % 2 == 0 {
            valid(versions[(i / 2) % 2])
        } else {
            invalid[(i / 2) % invalid.len()].clone()
        };
        write(&gw, "policies/p.yaml", &text);
        std::thread::sleep(Duration::from_millis(30));
    }
    write(&gw, "policies/p.yaml", &valid("B"));
    eventually("the final version", || version(&gw) == "B");
    done.store(true, Ordering::SeqCst);
    let failures: Vec<String> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    assert_eq!(failures, Vec::<String>::new());
    let seen = seen.lock().unwrap();
    assert!(seen.len() > 100, "only {} requests", seen.len());
    assert!(seen.iter().any(|v| v == "A") && seen.iter().any(|v| v == "B"));
    assert!(
        gw.metric("secgw_config_reloads_total{result=\"success\"}")
            .unwrap()
            >= 2.0
    );
    assert!(
        gw.metric("secgw_config_reloads_total{result=\"failure\"}")
            .unwrap()
            >= 1.0
    );
    assert_eq!(gw.metric("secgw_config_last_reload_successful"), Some(1.0));
}
