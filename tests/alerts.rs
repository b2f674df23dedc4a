//! The alert rules (deploy/prometheus/rules.yaml): promtool checks them and runs
//! their unit tests (deploy/prometheus/rules.test.yaml), in which every alert fires on
//! the series meant to fire it and on no other; a rule changed under the tests makes
//! them fail; the monitoring page shows the file itself.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use common::prometheus::promtool;
use common::run;

fn deploy(name: &str) -> String {
    format!("{}/deploy/prometheus/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn yaml(path: &str) -> serde_yaml::Value {
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `promtool test rules` on the unit tests, with the rules found beside them in `dir`.
fn test_rules(dir: &Path) -> (i32, String) {
    run(Command::new(promtool())
        .current_dir(dir)
        .args(["test", "rules", "rules.test.yaml"]))
}

#[test]
fn promtool_accepts_the_rules_and_their_unit_tests_pass() {
    let (code, text) = run(Command::new(promtool())
        .args(["check", "rules"])
        .arg(deploy("rules.yaml")));
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("SUCCESS: 12 rules found"), "{text}");
    let (code, text) = test_rules(Path::new(&deploy("")));
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("SUCCESS"), "{text}");
}

/// Every alert has a check where it fires and one where it stays silent (before its
/// `for` has run out; the firing checks list exactly what fires, so the other series
/// of each case, the ones meant not to fire, are checked there); the issue's
/// families (reloads, upstream errors, CSP reports, handshakes, connection limits,
/// access-log drops) each have an alert.
#[test]
fn every_alert_is_tested_firing_and_silent() {
    let rules = yaml(&deploy("rules.yaml"));
    let mut alerts = BTreeSet::new();
    let mut exprs = String::new();
    for group in rules["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            alerts.insert(rule["alert"].as_str().unwrap().to_string());
            exprs.push_str(rule["expr"].as_str().unwrap());
        }
    }
    for family in [
        "secgw_config_last_reload_successful",
        "secgw_upstream_errors_total",
        "secgw_csp_reports_total",
        "secgw_tls_handshake_failures_total",
        "secgw_connections_refused_total",
        "secgw_access_log_dropped_total",
    ] {
        assert!(exprs.contains(family), "no alert on {family}");
    }
    let (mut firing, mut silent) = (BTreeSet::new(), BTreeSet::new());
    let tests = yaml(&deploy("rules.test.yaml"));
    for case in tests["tests"].as_sequence().unwrap() {
        for check in case["alert_rule_test"].as_sequence().unwrap() {
            let name = check["alertname"].as_str().unwrap().to_string();
            if check["exp_alerts"].as_sequence().unwrap().is_empty() {
                silent.insert(name);
            } else {
                firing.insert(name);
            }
        }
    }
    assert_eq!(firing, alerts, "alerts without a firing case");
    assert_eq!(silent, alerts, "alerts without a silent case");
}

/// The unit tests can fail: each of these edits to the rules breaks at least one.
#[test]
fn a_rule_changed_under_the_tests_fails_them() {
    let rules = std::fs::read_to_string(deploy("rules.yaml")).unwrap();
    for (from, to) in [
        (") > 0.05", ") > 0.5"),
        ("> 1 / 60", "> 2"),
        (
            "<= 5 * avg_over_time((sum by (job, reason)",
            "<= 50 * avg_over_time((sum by (job, reason)",
        ),
        // A baseline that takes in the spike itself resolves it within the hour.
        ("[1d:5m] offset 1h", "[1h:5m] offset 10m"),
        // A day's rate divides a young series by a day of zeros: it fires on a steady rate.
        (
            "5 * avg_over_time((sum by (job, reason) (rate(secgw_tls_handshake_failures_total[5m])))[1d:5m] offset 1h)",
            "5 * sum by (job, reason) (rate(secgw_tls_handshake_failures_total[1d] offset 1h))",
        ),
        (
            "{reason=\"max_connections\"}",
            "{reason=~\"max_connections.*\"}",
        ),
        ("== 0\n        for: 5m", "== 0\n        for: 1m"),
        (
            "secgw_access_log_dropped_total[5m])) > 0",
            "secgw_access_log_dropped_total[5m])) > 2",
        ),
        (", action=\"override\"}", "}"),
        (
            "count by (job, namespace) (count by (job, namespace, hash)",
            "count by (job) (count by (job, hash)",
        ),
    ] {
        assert!(rules.contains(from), "{from}");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("rules.yaml"), rules.replacen(from, to, 1)).unwrap();
        std::fs::copy(
            deploy("rules.test.yaml"),
            dir.path().join("rules.test.yaml"),
        )
        .unwrap();
        let (code, text) = test_rules(dir.path());
        assert_ne!(code, 0, "{from} -> {to} passed the tests: {text}");
    }
}

#[test]
fn the_monitoring_page_shows_the_rules_file() {
    let page = common::docs::page("docs/operations/monitoring.md");
    assert!(
        page.contains("```yaml\n# deploy/prometheus/rules.yaml\n"),
        "the page shows deploy/prometheus/rules.yaml (tests/docs.rs compares the two)"
    );
}
