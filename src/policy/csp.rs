//! The CSP family's headers: Content-Security-Policy (or its report-only form),
//! the second report-only policy, and Reporting-Endpoints; report targets and the
//! directives other keys imply. Nonces are in [`super::nonce`], source lists in
//! [`super::csp_sources`].

use super::rendered::{OverHttp, SecurityHeader};
use crate::config::csp::{CSP, CSP_REPORT_ONLY, REPORTING_ENDPOINTS};
use crate::config::schema::SecurityOptions;
use crate::config::values::on;

/// The Reporting API endpoint name the gateway's CSPs report to.
pub const REPORT_ENDPOINT: &str = "secgw-csp";

/// Every CSP the options send, with their report targets, then the endpoint.
pub fn headers(o: &SecurityOptions, out: &mut Vec<SecurityHeader>) {
    let report_url = report_url(o);
    let csps = Csp::all(o);
    for csp in &csps {
        out.push(match report_url {
            None => SecurityHeader::same(csp.name, csp.value()),
            Some(url) => SecurityHeader {
                name: csp.name,
                value: csp.with_reports(url, true).value(),
                over_http: OverHttp::Other(csp.with_reports(url, false).value()),
            },
        });
    }
    if let (Some(url), false) = (report_url, csps.is_empty()) {
        out.push(SecurityHeader {
            name: REPORTING_ENDPOINTS,
            value: format!("{REPORT_ENDPOINT}=\"{url}\""),
            over_http: OverHttp::Never,
        });
    }
}

/// Where the options' CSPs send violation reports: the gateway's own collector
/// (a path on the vhost itself, so no CORS), or an external collector.
pub fn report_url(o: &SecurityOptions) -> Option<&str> {
    collect_path(o).or_else(|| on(&o.csp_report_uri).map(|u| u.0.as_str()))
}

/// Where the gateway itself collects the options' reports, if it does.
pub fn collect_path(o: &SecurityOptions) -> Option<&str> {
    match (o.csp_report_collect, &o.csp_report_path) {
        (Some(true), Some(path)) => Some(path.0.as_str()),
        _ => None,
    }
}

/// The CSP a set of options sends: its header name and its directives, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Csp {
    pub name: &'static str,
    pub directives: Vec<(String, Vec<String>)>,
}

impl Csp {
    /// The configured policy when enabled, plus the directives other options
    /// imply (`frame_options_allow_from` -> `frame-ancestors`, Trusted Types).
    pub fn from_options(o: &SecurityOptions) -> Option<Csp> {
        let mut directives: Vec<(String, Vec<String>)> = Vec::new();
        if o.csp_enabled == Some(true) {
            let policy = o.csp_policy.clone().unwrap_or_default();
            directives.extend(
                policy
                    .0
                    .into_iter()
                    .filter_map(|(d, sources)| sources.map(|s| (d, s))),
            );
        }
        let mut set = |name: &str, values: Vec<String>| match directives
            .iter_mut()
            .find(|(d, _)| d == name)
        {
            Some(entry) => entry.1 = values,
            None => directives.push((name.to_string(), values)),
        };
        if let Some(origin) = on(&o.frame_options_allow_from) {
            set("frame-ancestors", vec![origin.0.clone()]);
        }
        if o.trusted_types == Some(true) {
            set("require-trusted-types-for", vec!["'script'".to_string()]);
            let names: Vec<String> = o
                .trusted_types_policies
                .iter()
                .flatten()
                .map(|t| t.0.clone())
                .collect();
            if !names.is_empty() {
                set("trusted-types", names);
            }
        }
        if directives.is_empty() {
            return None;
        }
        let name = if o.csp_report_only == Some(true) {
            CSP_REPORT_ONLY
        } else {
            CSP
        };
        Some(Csp { name, directives })
    }

    /// The enforced (or, with `csp_report_only`, report-only) policy, then the
    /// `csp_report_only_policy` beside it: every CSP the options send.
    pub fn all(o: &SecurityOptions) -> Vec<Csp> {
        let second = o.csp_report_only_policy.as_ref().map(|p| Csp {
            name: CSP_REPORT_ONLY,
            directives: p
                .0
                .iter()
                .filter_map(|(d, sources)| sources.clone().map(|s| (d.clone(), s)))
                .collect(),
        });
        Csp::from_options(o)
            .into_iter()
            .chain(second.filter(|c| !c.directives.is_empty()))
            .collect()
    }

    /// The policy reporting to `url`: over HTTPS through the Reporting API as well.
    pub fn with_reports(&self, url: &str, https: bool) -> Csp {
        let mut csp = self.clone();
        csp.directives
            .push(("report-uri".to_string(), vec![url.to_string()]));
        if https {
            csp.directives
                .push(("report-to".to_string(), vec![REPORT_ENDPOINT.to_string()]));
        }
        csp
    }

    /// The sources of `directive`, if the policy has it.
    pub fn sources(&self, directive: &str) -> Option<&[String]> {
        self.directives
            .iter()
            .find(|(d, _)| d == directive)
            .map(|(_, s)| s.as_slice())
    }

    /// The header value.
    pub fn value(&self) -> String {
        self.directives
            .iter()
            .map(|(d, s)| {
                if s.is_empty() {
                    d.clone()
                } else {
                    format!("{d} {}", s.join(" "))
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}
