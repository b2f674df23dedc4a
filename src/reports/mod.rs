//! CSP violation reports collected at the edge (`csp_report_collect`).
//!
//! A vhost with a collecting route answers `POST <csp_report_path>` itself: the
//! body is bounded, parsed in place, each violation counted against the route
//! that served the violating document, and logged within a per-vhost budget.
//! Nothing from a body becomes a label except through [`ReportDirective`].

pub mod body;
pub mod lines;

use std::sync::OnceLock;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{header, Method};
use pingora_error::Result;
use pingora_proxy::Session;
use prometheus::IntCounter;
use strum::EnumCount;

use self::body::{violations, BodyError};
use self::lines::LogBudget;
use crate::metrics::{
    CspReportCounters, Disposition, Metrics, ReportDirective, ReportRejection, RouteLabels,
    UNMATCHED,
};

/// The largest report body taken; browsers send a few KB at most.
pub const MAX_BODY: usize = 64 * 1024;

/// The media types reports come as (`application/json`: either shape).
const CONTENT_TYPES: [&str; 3] = [
    "application/csp-report",
    "application/reports+json",
    "application/json",
];

/// One vhost's collector, built with its plan.
#[derive(Debug)]
pub struct Collector {
    vhost: String,
    /// The distinct report paths of its routes, sorted.
    paths: Vec<String>,
    /// By route index (`[0]` the vhost's own): where it collects, if it does.
    routes: Vec<Option<RouteReports>>,
    /// Reports whose document is served by no route collecting at their path.
    unmatched: ReportCounters,
    rejected: [IntCounter; ReportRejection::COUNT],
    log: LogBudget,
}

#[derive(Debug)]
struct RouteReports {
    path: String,
    counters: ReportCounters,
}

/// One route's report counters, each resolved on its first report and then
/// bumped without a label lookup.
#[derive(Debug)]
struct ReportCounters {
    route: String,
    all: CspReportCounters,
    cells: [[OnceLock<IntCounter>; Disposition::COUNT]; ReportDirective::COUNT],
}

impl ReportCounters {
    fn new(route: &str, all: &CspReportCounters) -> ReportCounters {
        ReportCounters {
            route: route.to_string(),
            all: all.clone(),
            cells: Default::default(),
        }
    }

    fn count(&self, vhost: &str, directive: ReportDirective, disposition: Disposition) {
        self.cells[directive as usize][disposition as usize]
            .get_or_init(|| {
                let at = RouteLabels {
                    vhost,
                    route: &self.route,
                };
                self.all.get(at, directive, disposition)
            })
            .inc();
    }
}

impl Collector {
    /// `routes`: each route's name and the path it collects at; `None` when no
    /// route of the vhost collects.
    pub fn new(
        vhost: &str,
        routes: &[(&str, Option<&str>)],
        metrics: &Metrics,
    ) -> Option<Collector> {
        let mut paths: Vec<String> = routes
            .iter()
            .filter_map(|(_, p)| p.map(str::to_string))
            .collect();
        if paths.is_empty() {
            return None;
        }
        paths.sort_unstable();
        paths.dedup();
        let all = metrics.csp_reports();
        Some(Collector {
            vhost: vhost.to_string(),
            paths,
            routes: routes
                .iter()
                .map(|(route, path)| {
                    path.map(|p| RouteReports {
                        path: p.to_string(),
                        counters: ReportCounters::new(route, &all),
                    })
                })
                .collect(),
            unmatched: ReportCounters::new(UNMATCHED, &all),
            rejected: metrics.csp_reports_rejected(vhost),
            log: LogBudget::default(),
        })
    }

    /// Whether `path` (normalized) is one of the vhost's report paths.
    pub fn collects_at(&self, path: &str) -> bool {
        self.paths
            .binary_search_by(|p| p.as_str().cmp(path))
            .is_ok()
    }

    pub fn reject(&self, why: ReportRejection) {
        self.rejected[why as usize].inc();
    }

    /// Counts and logs the violations in `body`, posted to `path`. `route_of`
    /// gives the route that serves a document path. Returns how many there were.
    pub fn receive(
        &self,
        path: &str,
        body: &[u8],
        route_of: impl Fn(&str) -> Option<usize>,
    ) -> Result<usize, ReportRejection> {
        let found = violations(body).map_err(|e| match e {
            BodyError::Malformed => ReportRejection::Malformed,
            BodyError::Empty => ReportRejection::Empty,
        })?;
        for v in &found {
            let counters = v
                .document_url
                .as_deref()
                .and_then(document_path)
                .and_then(&route_of)
                .and_then(|r| self.routes.get(r)?.as_ref())
                .filter(|r| r.path == path)
                .map_or(&self.unmatched, |r| &r.counters);
            counters.count(&self.vhost, v.directive, v.disposition);
            lines::violation(&self.log, &self.vhost, &counters.route, v);
        }
        Ok(found.len())
    }
}

/// The path of an http(s) document URL.
fn document_path(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let path = &rest[rest.find('/')?..];
    Some(path.split(['?', '#']).next().unwrap_or(path))
}

/// Is this a report's media type (parameters such as `charset` aside)?
fn is_report_type(value: &[u8]) -> bool {
    let essence = value.split(|b| *b == b';').next().unwrap_or_default();
    let essence = essence.trim_ascii();
    CONTENT_TYPES
        .iter()
        .any(|t| essence.eq_ignore_ascii_case(t.as_bytes()))
}

/// Takes the report posted in `session`: the method, media type and size are
/// checked before the body is read, and the body must arrive within `deadline`.
/// An error is the client's connection failing.
pub async fn take_body(
    session: &mut Session,
    deadline: Duration,
) -> Result<Result<Bytes, ReportRejection>> {
    let req = session.req_header();
    if req.method != Method::POST {
        return Ok(Err(ReportRejection::Method));
    }
    let content_type = req.headers.get(header::CONTENT_TYPE);
    if !content_type.is_some_and(|v| is_report_type(v.as_bytes())) {
        return Ok(Err(ReportRejection::ContentType));
    }
    let declared = req
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Ok(Err(ReportRejection::TooLarge));
    }
    match tokio::time::timeout(deadline, read_bounded(session)).await {
        Ok(read) => read,
        Err(_) => Ok(Err(ReportRejection::Timeout)),
    }
}

/// The body, up to [`MAX_BODY`]; one chunk (the usual case) is not copied.
async fn read_bounded(session: &mut Session) -> Result<Result<Bytes, ReportRejection>> {
    let mut first: Option<Bytes> = None;
    let mut joined = BytesMut::new();
    while let Some(chunk) = session.read_request_body().await? {
        let held = first.as_ref().map_or(0, Bytes::len) + joined.len();
        if held + chunk.len() > MAX_BODY {
            return Ok(Err(ReportRejection::TooLarge));
        }
        match first.take() {
            None if joined.is_empty() => first = Some(chunk),
            earlier => {
                if let Some(earlier) = earlier {
                    joined.extend_from_slice(&earlier);
                }
                joined.extend_from_slice(&chunk);
            }
        }
    }
    Ok(Ok(first.unwrap_or_else(|| joined.freeze())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::metrics;

    fn collector() -> Collector {
        Collector::new(
            "unit-reports",
            &[
                ("_vhost", Some("/r")),
                ("app", Some("/r")),
                ("admin", None),
                ("other", Some("/elsewhere")),
            ],
            metrics(),
        )
        .unwrap()
    }

    fn count(route: &str, directive: &str, disposition: &str) -> u64 {
        let line = format!(
            "secgw_csp_reports_total{{directive=\"{directive}\",disposition=\"{disposition}\",\
             route=\"{route}\",vhost=\"unit-reports\"}} "
        );
        metrics()
            .render()
            .lines()
            .find_map(|l| l.strip_prefix(&line)?.parse().ok())
            .unwrap_or(0)
    }

    /// Route 1 serves `/app...`, route 2 `/admin...`, route 3 `/other...`.
    fn route_of(path: &str) -> Option<usize> {
        ["/app", "/admin", "/other"]
            .iter()
            .position(|p| path.starts_with(p))
            .map_or(Some(0), |i| Some(i + 1))
    }

    fn report(document: &str) -> String {
        format!(
            r#"{{"csp-report": {{"document-uri": "{document}", "effective-directive": "img-src", "disposition": "report"}}}}"#
        )
    }

    #[test]
    fn each_report_counts_against_the_route_that_served_its_document() {
        let c = collector();
        assert!(c.collects_at("/r") && c.collects_at("/elsewhere"));
        assert!(!c.collects_at("/r/") && !c.collects_at("/"));
        for doc in [
            "https://a.test/app/x?q=1",
            "https://a.test/",
            "http://a.test/app",
            // Served by a route that does not collect, or collects elsewhere.
            "https://a.test/admin/",
            "https://a.test/other/",
            // Not a document URL at all.
            "about:blank",
            "https://a.test",
        ] {
            assert_eq!(c.receive("/r", report(doc).as_bytes(), route_of), Ok(1));
        }
        assert_eq!(count("app", "img-src", "report"), 2);
        assert_eq!(count("_vhost", "img-src", "report"), 1);
        assert_eq!(count("_unmatched", "img-src", "report"), 4);
        assert_eq!(count("admin", "img-src", "report"), 0);
        assert_eq!(
            c.receive("/r", b"{}", route_of),
            Err(ReportRejection::Empty)
        );
        assert_eq!(
            c.receive("/r", b"{", route_of),
            Err(ReportRejection::Malformed)
        );
    }

    #[test]
    fn media_types_are_compared_by_essence() {
        for ok in [
            "application/csp-report",
            "Application/CSP-Report; charset=utf-8",
            "application/reports+json",
            " application/json ;charset=UTF-8",
        ] {
            assert!(is_report_type(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "text/plain",
            "application/jsonx",
            "application/x-www-form-urlencoded",
            "",
        ] {
            assert!(!is_report_type(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn no_collecting_route_means_no_collector() {
        assert!(Collector::new("unit-none", &[("_vhost", None)], metrics()).is_none());
    }
}
