//! `pingora-secgw check`: lints a configuration for every vhost and route, like
//! Django's `manage.py check --deploy`, and predicts each vhost's MDN HTTP
//! Observatory grade.

mod cors;
mod csp;
mod finding;
mod framing;
mod headers;
mod hsts;
pub mod lints;
mod plain;
pub mod predict;
mod redirect;
mod referrer;

use std::io::{ErrorKind, Write};
use std::path::Path;
use std::process::ExitCode;

use indexmap::IndexMap;
use serde::Serialize;

use crate::config::resolve::resolve;
use crate::policy::Plan;
pub use lints::{Finding, Severity};
use predict::Prediction;

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// gw.yaml
    #[arg(short = 'c', long = "conf")]
    pub conf: String,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// The lowest severity that makes the exit status 1.
    #[arg(long = "fail-on", value_enum, default_value = "warning")]
    pub fail_on: Severity,
    /// Also list the cluster's objects with this kubeconfig and lint the hosts
    /// they would give, as Kubernetes mode would serve them.
    #[arg(long)]
    pub kubeconfig: Option<std::path::PathBuf>,
    /// Or read the cluster's objects from a file of manifests (SecurityPolicies
    /// with the Gateways, HTTPRoutes, Ingresses and Services they attach to) and
    /// lint the hosts they would give.
    #[arg(long, conflicts_with = "kubeconfig")]
    pub manifests: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// The `--format json` document.
#[derive(Serialize)]
struct Report<'a> {
    findings: &'a [Finding],
    predicted: &'a IndexMap<String, Prediction>,
}

/// Exit status 2 for a configuration that does not load, else 1 when a finding
/// is at or above `--fail-on`, else 0.
pub fn run(args: &CheckArgs) -> ExitCode {
    // Counters of its own: checking registers nothing in the process's metrics.
    let metrics = crate::metrics::Metrics::new();
    let mut loaded = crate::config::load(Path::new(&args.conf));
    let mut translation = crate::cluster::Translation::default();
    if let Ok(loaded) = &mut loaded {
        let composed = match (&args.kubeconfig, &args.manifests) {
            (Some(kubeconfig), _) => Some(crate::controller::compose_once(
                loaded, kubeconfig, &metrics,
            )),
            (None, Some(file)) => Some(compose_manifests(loaded, file, &metrics)),
            (None, None) => None,
        };
        match composed {
            Some(Ok(composed)) => {
                translation = composed.translation;
                loaded.gateway.vhosts.append(&mut translation.vhosts);
            }
            Some(Err(e)) => {
                eprintln!("pingora-secgw: {e}");
                return ExitCode::from(2);
            }
            None => {}
        }
    }
    // One resolution of layers, which the plan is compiled from and the lints read.
    let checked = loaded.as_ref().map_err(Clone::clone).and_then(|loaded| {
        let effective = resolve(loaded)?;
        let plan = Plan::compile_effective(loaded, &effective, &metrics)?;
        Ok((loaded, effective, plan))
    });
    let (loaded, effective, plan) = match checked {
        Ok(all) => all,
        Err(e) => {
            eprintln!("pingora-secgw: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    let mut findings = lints::findings(loaded, &effective);
    findings.extend(translation.problems.iter().map(lints::cluster_problem));
    findings.extend(lints::gateway_problems(&translation.gateway_api));
    findings.extend(lints::policy_problems(&translation.policies));
    let predicted = predict::predict(loaded, &plan);
    let out = match args.format {
        Format::Json => {
            let report = Report {
                findings: &findings,
                predicted: &predicted,
            };
            match serde_json::to_string_pretty(&report) {
                Ok(json) => json + "\n",
                Err(e) => {
                    eprintln!("pingora-secgw: {e}");
                    return ExitCode::from(2);
                }
            }
        }
        Format::Text => text(&findings, &predicted),
    };
    // A reader that stops early (`| head`) does not change the verdict.
    match std::io::stdout().lock().write_all(out.as_bytes()) {
        Err(e) if e.kind() != ErrorKind::BrokenPipe => {
            eprintln!("pingora-secgw: writing the report: {e}");
            return ExitCode::from(2);
        }
        _ => {}
    }
    if findings.iter().any(|f| f.severity.reaches(args.fail_on)) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// The objects of a file of manifests, composed with gw.yaml as the cluster
/// would give them.
fn compose_manifests(
    loaded: &mut crate::config::LoadedConfig,
    file: &Path,
    metrics: &crate::metrics::Metrics,
) -> Result<crate::compose::Composed, String> {
    let at = |why: String| format!("{}: {why}", file.display());
    let text = std::fs::read_to_string(file).map_err(|e| at(e.to_string()))?;
    let objects = crate::cluster::ClusterObjects::from_yaml(&text).map_err(at)?;
    crate::compose::compose(loaded, Some(&objects), &Default::default(), metrics)
        .map_err(|e| e.to_string())
}

/// The human-readable report: findings, predicted grades, then the counts.
fn text(findings: &[Finding], predicted: &IndexMap<String, Prediction>) -> String {
    let mut out = String::new();
    for f in findings {
        let severity: &str = f.severity.into();
        let scope = match (f.vhost.as_str(), &f.route) {
            ("", _) => String::new(),
            (vhost, None) => format!(" [vhost {vhost}]"),
            (vhost, Some(route)) => format!(" [vhost {vhost}, route {route}]"),
        };
        out.push_str(&format!(
            "{}: {} {severity}{scope}: {}\n    fix: {}\n",
            f.key, f.code, f.message, f.fix
        ));
    }
    if !findings.is_empty() {
        out.push('\n');
    }
    out.push_str("Predicted MDN HTTP Observatory grades\n");
    for (vhost, p) in predicted {
        out.push_str(&format!("  {vhost}: {} (score {})\n", p.grade, p.score));
        for d in &p.deductions {
            out.push_str(&format!("    {:+} {} ({})\n", d.modifier, d.test, d.result));
        }
    }
    let count = |s: Severity| findings.iter().filter(|f| f.severity == s).count();
    out.push_str(&format!(
        "\n{} errors, {} warnings, {} infos\n",
        count(Severity::Error),
        count(Severity::Warning),
        count(Severity::Info)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use predict::Deduction;

    #[test]
    fn the_text_report_reads_key_code_severity_scope_then_grades() {
        let finding = |route: Option<&str>, severity| Finding {
            code: "SECGW-W004",
            severity,
            vhost: "app".into(),
            route: route.map(str::to_string),
            key: "vhosts[0].security.hsts_enabled".into(),
            message: "no HSTS".into(),
            fix: "turn it on".into(),
        };
        let mut gateway = finding(None, Severity::Error);
        gateway.vhost.clear();
        let findings = [
            finding(None, Severity::Warning),
            finding(Some("/api"), Severity::Info),
            gateway,
        ];
        let predicted = IndexMap::from([(
            "app".to_string(),
            Prediction {
                grade: "B+",
                score: 80,
                deductions: vec![Deduction {
                    test: "redirection",
                    result: "redirection-missing",
                    modifier: -20,
                }],
            },
        )]);
        assert_eq!(
            text(&findings, &predicted),
            "vhosts[0].security.hsts_enabled: SECGW-W004 warning [vhost app]: no HSTS\n    fix: turn it on\n\
             vhosts[0].security.hsts_enabled: SECGW-W004 info [vhost app, route /api]: no HSTS\n    fix: turn it on\n\
             vhosts[0].security.hsts_enabled: SECGW-W004 error: no HSTS\n    fix: turn it on\n\
             \n\
             Predicted MDN HTTP Observatory grades\n  app: B+ (score 80)\n    -20 redirection (redirection-missing)\n\
             \n\
             1 errors, 1 warnings, 1 infos\n"
        );
    }
}
