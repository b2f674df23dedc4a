//! The shipped conf/gw.yaml: `curl -i http://127.0.0.1:8080/` shows the full default
//! header set exactly once each. The test runs the shipped files with only the
//! listener port and Pingora's socket paths moved, so it cannot collide with a
//! gateway already on 8080.

mod common;

use common::*;

fn shipped_demo() -> Gateway {
    let root = env!("CARGO_MANIFEST_DIR");
    let gw_yaml = std::fs::read_to_string(format!("{root}/conf/gw.yaml")).unwrap();
    assert!(gw_yaml.contains("address: \"127.0.0.1:8080\""));
    assert!(gw_yaml.contains("address: \"127.0.0.1:9100\""));
    let gw_yaml: String = gw_yaml
        .replace("127.0.0.1:8080", "{listen}")
        .replace("127.0.0.1:9100", "{admin}")
        .lines()
        .filter(|l| {
            !["pid_file:", "upgrade_sock:", "threads:"]
                .iter()
                .any(|k| l.starts_with(k))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let mut policies = Vec::new();
    for entry in std::fs::read_dir(format!("{root}/conf/policies")).unwrap() {
        let path = entry.unwrap().path();
        let name = format!("policies/{}", path.file_name().unwrap().to_string_lossy());
        policies.push((name, std::fs::read_to_string(&path).unwrap()));
    }
    let files: Vec<(&str, &str)> = policies
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    Gateway::start_with_files(&gw_yaml, &files)
}

#[test]
fn the_demo_answers_with_the_full_default_header_set_exactly_once() {
    let gw = shipped_demo();
    let r = get(&gw, &gw.addr.to_string(), "/", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body,
        "pingora-secgw is running. Every response from here carries the security policy.\n"
    );
    assert_eq!(r.one("content-type"), "text/plain; charset=utf-8");
    assert_default_headers(&r, false);

    // Any path and any Host: the demo vhost is the catch-all.
    let r = get(&gw, "whatever.example", "/nonexistent", &[]);
    assert_eq!(r.status, 200);
    assert_default_headers(&r, false);

    assert_eq!(gw.admin_get("/readyz"), (200, "ready\n".to_string()));
    let (status, metrics) = gw.admin_get("/metrics");
    assert_eq!(status, 200);
    assert!(metrics.lines().any(
        |l| l == "secgw_requests_total{route=\"_vhost\",status_class=\"2xx\",vhost=\"demo\"} 2"
    ));
}
