//! `pingora-secgw audit URL`: grades a live site the way the MDN HTTP Observatory
//! does, plus the seeds' own checks (one copy of each security header, HSTS
//! preload readiness) and the tests the Observatory added after 1.4.8.

pub mod fetch;

use std::net::IpAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::ValueEnum;
use serde_json::{json, Map, Value};
use url::Url;

use crate::observatory::{self, grade_at_least, Retrieval, Scan, TestResult, GRADES};
use fetch::{Target, PROBE_ORIGIN};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// Grade a live site as the MDN HTTP Observatory would.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// The site: `https://host[:port]/` (the path is not scanned: the Observatory
    /// scans `/` of the host over HTTP and HTTPS).
    pub url: String,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Exit 1 when the grade is below this one.
    #[arg(long = "min-grade", value_parser = parse_grade)]
    pub min_grade: Option<String>,
    /// PEM file of CA certificates to trust besides the system's.
    #[arg(long)]
    pub cacert: Option<String>,
    /// `host:port:addr`: connect to `addr` for `host:port` (like curl).
    #[arg(long, value_parser = parse_resolve)]
    pub resolve: Vec<(String, u16, IpAddr)>,
    /// The plain-HTTP port (default 80, or the URL's port for an http:// URL).
    #[arg(long = "http-port")]
    pub http_port: Option<u16>,
    /// The HTTPS port (default 443, or the URL's port for an https:// URL).
    #[arg(long = "https-port")]
    pub https_port: Option<u16>,
    /// Seconds each request may take (the Observatory's client waits 10).
    #[arg(long, default_value_t = 10)]
    pub timeout: u64,
}

fn parse_grade(s: &str) -> Result<String, String> {
    let g = s.to_ascii_uppercase();
    if GRADES.contains(&g.as_str()) {
        Ok(g)
    } else {
        Err(format!("one of {}", GRADES.join(", ")))
    }
}

fn parse_resolve(s: &str) -> Result<(String, u16, IpAddr), String> {
    let mut parts = s.splitn(3, ':');
    let (Some(host), Some(port), Some(addr)) = (parts.next(), parts.next(), parts.next()) else {
        return Err("expected host:port:addr".into());
    };
    let port = port
        .parse()
        .map_err(|_| format!("`{port}` is not a port"))?;
    let addr = addr
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| format!("`{addr}` is not an IP address"))?;
    Ok((host.to_ascii_lowercase(), port, addr))
}

/// The redirect limit and the HTML read for the page tests.
const MAX_REDIRECTS: usize = 10;
const MAX_BODY: usize = 32 << 20;

/// The subresource-integrity result that no script further down a page can
/// make worse: the only one a truncated read may report.
const WORST_SRI: &str = "sri-not-implemented-and-external-scripts-not-loaded-securely";

/// Why a scan's grade cannot stand: the page was read only in part, and what
/// the rest holds could lower the subresource-integrity result.
fn ungraded(scan: &Scan, r: &Retrieval) -> Option<String> {
    if !r.page.as_ref().is_some_and(|p| p.truncated) {
        return None;
    }
    let sri = scan
        .tests
        .iter()
        .find(|t| t.name == "subresource-integrity")?;
    (sri.result.name() != WORST_SRI).then(|| {
        format!(
            "the page did not end within {} MiB or the --timeout: its scripts further on are \
             unknown, so subresource-integrity (and the grade) cannot be given",
            MAX_BODY >> 20
        )
    })
}

fn target_of(args: &AuditArgs) -> Result<Target, String> {
    let text = if args.url.contains("://") {
        args.url.clone()
    } else {
        format!("https://{}", args.url)
    };
    let url = Url::parse(&text).map_err(|e| format!("`{}` is not a URL: {e}", args.url))?;
    let host = match url.host() {
        Some(url::Host::Domain(d)) => d.to_string(),
        Some(url::Host::Ipv4(a)) => a.to_string(),
        Some(url::Host::Ipv6(a)) => format!("[{a}]"),
        None => return Err(format!("`{}` has no host", args.url)),
    };
    let (mut http_port, mut https_port) = (80, 443);
    match (url.scheme(), url.port()) {
        ("http", Some(p)) => http_port = p,
        ("https", Some(p)) => https_port = p,
        ("http" | "https", None) => {}
        (other, _) => {
            return Err(format!(
                "`{other}` URLs cannot be audited; use http or https"
            ))
        }
    }
    let mut ca_certs = Vec::new();
    if let Some(file) = &args.cacert {
        let pem = std::fs::read(file).map_err(|e| format!("--cacert {file}: {e}"))?;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            ca_certs.push(cert.map_err(|e| format!("--cacert {file}: {e}"))?);
        }
        if ca_certs.is_empty() {
            return Err(format!("--cacert {file}: no PEM certificate in it"));
        }
    }
    Ok(Target {
        host,
        http_port: args.http_port.unwrap_or(http_port),
        https_port: args.https_port.unwrap_or(https_port),
        resolve: args.resolve.clone(),
        ca_certs,
        timeout: Duration::from_secs(args.timeout.max(1)),
        max_redirects: MAX_REDIRECTS,
        max_body: MAX_BODY,
    })
}

/// A check beyond the 1.4.8 score.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extra {
    pub name: &'static str,
    pub pass: bool,
    pub result: &'static str,
    pub details: Vec<String>,
}

impl Extra {
    fn from_test(t: TestResult) -> Extra {
        Extra {
            name: t.name,
            pass: t.pass,
            result: t.result.name(),
            details: vec![format!(
                "modifier {:+} in later Observatory versions",
                t.modifier
            )],
        }
    }
}

/// The headers the seeds count (`grep -c ... == 1`).
const SECURITY_HEADERS: [&str; 11] = [
    "content-security-policy",
    "content-security-policy-report-only",
    "strict-transport-security",
    "x-frame-options",
    "x-content-type-options",
    "referrer-policy",
    "permissions-policy",
    "cross-origin-opener-policy",
    "cross-origin-embedder-policy",
    "cross-origin-resource-policy",
    "x-xss-protection",
];

fn duplicates(r: &Retrieval) -> Extra {
    let details: Vec<String> = r
        .auto()
        .map(|a| {
            SECURITY_HEADERS
                .iter()
                .map(|h| (h, a.lines(h).count()))
                .filter(|(_, n)| *n > 1)
                .map(|(h, n)| format!("{h} sent {n} times"))
                .collect()
        })
        .unwrap_or_default();
    Extra {
        name: "duplicate-security-headers",
        pass: details.is_empty(),
        result: if details.is_empty() {
            "each-security-header-once"
        } else {
            "security-header-repeated"
        },
        details,
    }
}

/// hstspreload.org's requirements, on the HTTPS answer and the HTTP chain.
fn preload_ready(r: &Retrieval) -> Extra {
    let mut missing = Vec::new();
    let hsts = r
        .https
        .as_ref()
        .and_then(|h| h.header("strict-transport-security"));
    match hsts.as_deref().map(observatory::parse_hsts) {
        None => missing.push("no Strict-Transport-Security over HTTPS".to_string()),
        Some(None) => missing.push("Strict-Transport-Security cannot be parsed".to_string()),
        Some(Some(v)) => {
            if !matches!(v.max_age, Some(Some(a)) if a >= 31_536_000.0) {
                missing.push("max-age below 31536000".into());
            }
            if !v.include_subdomains {
                missing.push("no includeSubDomains".into());
            }
            if !v.preload {
                missing.push("no preload".into());
            }
        }
    }
    let route = &r.http_redirects;
    if r.http.is_some() {
        let same_host_https = route.len() > 1
            && route[1].url.scheme() == "https"
            && route[1].url.host_str() == route[0].url.host_str();
        if !same_host_https {
            missing.push("http:// does not redirect to https:// on the same host first".into());
        }
    }
    Extra {
        name: "hsts-preload-ready",
        pass: missing.is_empty(),
        result: if missing.is_empty() {
            "preload-ready"
        } else {
            "preload-missing"
        },
        details: missing,
    }
}

/// What 1.4.8 cannot see (it never reads the probe's Origin back): an answer that
/// echoes a foreign Origin with credentials.
fn credentialed_echo(r: &Retrieval) -> Extra {
    let echoed = r.cors.as_ref().is_some_and(|c| {
        c.header("access-control-allow-origin").as_deref() == Some(PROBE_ORIGIN)
            && c.header("access-control-allow-credentials")
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    });
    Extra {
        name: "cors-credentialed-origin-echo",
        pass: !echoed,
        result: if echoed {
            "foreign-origin-allowed-with-credentials"
        } else {
            "no-foreign-origin-with-credentials"
        },
        details: if echoed {
            vec![format!(
                "{PROBE_ORIGIN} may read responses with the user's cookies"
            )]
        } else {
            Vec::new()
        },
    }
}

/// The checks outside the 1.4.8 score.
pub fn extras(r: &Retrieval) -> Vec<Extra> {
    vec![
        duplicates(r),
        preload_ready(r),
        credentialed_echo(r),
        Extra::from_test(observatory::coop(r)),
        Extra::from_test(observatory::coep(r)),
    ]
}

fn json_report(scan: &Scan, extras: &[Extra], r: &Retrieval) -> Value {
    let tests: Map<String, Value> = scan
        .tests
        .iter()
        .map(|t| {
            (
                t.name.to_string(),
                json!({"pass": t.pass, "scoreModifier": t.modifier, "result": t.result.name()}),
            )
        })
        .collect();
    let extra: Map<String, Value> = extras
        .iter()
        .map(|e| {
            (
                e.name.to_string(),
                json!({"pass": e.pass, "result": e.result, "details": e.details}),
            )
        })
        .collect();
    let redirects: Vec<Value> = r
        .http_redirects
        .iter()
        .map(|h| json!({"url": h.url.as_str(), "status": h.status}))
        .collect();
    json!({
        "grade": scan.grade,
        "score": scan.score,
        "tests": tests,
        "extra": extra,
        "redirects": redirects,
    })
}

fn text_report(scan: &Scan, extras: &[Extra], r: &Retrieval) -> String {
    let mut out = String::new();
    let verdict = |pass: bool| if pass { "pass" } else { "FAIL" };
    out.push_str("http:// chain:");
    for h in &r.http_redirects {
        out.push_str(&format!(" {} {} ->", h.status, h.url));
    }
    out.push_str(if r.http.is_some() {
        " done\n"
    } else {
        " no answer\n"
    });
    for t in &scan.tests {
        out.push_str(&format!(
            "{:>4}  {}  {:<30} {}\n",
            format!("{:+}", t.modifier),
            verdict(t.pass),
            t.name,
            t.result.name()
        ));
    }
    out.push_str(&format!("score {}, grade {}\n", scan.score, scan.grade));
    out.push_str("extra checks:\n");
    for e in extras {
        out.push_str(&format!(
            "      {}  {:<30} {}\n",
            verdict(e.pass),
            e.name,
            e.result
        ));
        for d in &e.details {
            out.push_str(&format!("            {d}\n"));
        }
    }
    out
}

/// Runs `audit`: 0 when graded (at or above `--min-grade`), 1 below it, 2 when
/// the site cannot be graded.
pub fn run(args: &AuditArgs) -> ExitCode {
    let result = target_of(args)
        .and_then(|t| fetch::retrieve(&t))
        .and_then(|r| Ok((observatory::scan(&r).map_err(|e| e.to_string())?, r)));
    let (scan, r) = match result {
        Ok(both) => both,
        Err(e) => {
            eprintln!("pingora-secgw audit: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(why) = ungraded(&scan, &r) {
        eprintln!("pingora-secgw audit: {why}");
        return ExitCode::from(2);
    }
    let extras = extras(&r);
    match args.format {
        Format::Json => println!("{}", json_report(&scan, &extras, &r)),
        Format::Text => print!("{}", text_report(&scan, &extras, &r)),
    }
    match &args.min_grade {
        Some(min) if !grade_at_least(scan.grade, min) => {
            eprintln!(
                "pingora-secgw audit: grade {} is below --min-grade {min}",
                scan.grade
            );
            ExitCode::from(1)
        }
        _ => ExitCode::SUCCESS,
    }
}
