//! The MDN HTTP Observatory's tests and scoring, on responses already fetched.
//!
//! A re-implementation of `@mdn/mdn-http-observatory` 1.4.8 (`src/analyzer`,
//! `src/grader`, `src/scanner`), written from its published rules so that the same
//! responses get the same results, score and grade. [`crate::audit`] fetches a live
//! site into a [`Retrieval`]; `check` builds one from a configuration.

pub mod cookies;
mod csp;
mod expectation;
mod headers;
mod html;
mod redirection;

use url::Url;

pub use cookies::Cookie;
pub use expectation::Expectation;
pub use headers::{coep, coop, parse_hsts, HstsValue};
pub use html::{page_facts, PageFacts, HTML_TYPES};

/// One HTTP response as the Observatory's client (Node's `http`) sees it.
#[derive(Debug, Clone)]
pub struct Response {
    pub url: Url,
    pub status: u16,
    /// Every header line in order, names in lower case.
    pub headers: Vec<(String, String)>,
    /// False when the certificate failed verification and the scan went on without it.
    pub verified: bool,
}

/// Headers Node keeps only the first of when a response repeats them.
const NODE_FIRST_ONLY: [&str; 17] = [
    "age",
    "authorization",
    "content-length",
    "content-type",
    "etag",
    "expires",
    "from",
    "host",
    "if-modified-since",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "proxy-authorization",
    "referer",
    "retry-after",
    "server",
];

impl Response {
    /// Every line of a header, as sent.
    pub fn lines<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A header the way Node reports it: repeated lines joined with `, ` (the
    /// Observatory reads a repeated HSTS as one value with a comma), or only the
    /// first for the headers Node de-duplicates. `set-cookie` is [`Response::lines`].
    pub fn header(&self, name: &str) -> Option<String> {
        let mut lines = self.lines(name);
        let first = lines.next()?;
        if NODE_FIRST_ONLY.contains(&name) {
            return Some(first.to_string());
        }
        let separator = if name == "cookie" { "; " } else { ", " };
        Some(lines.fold(first.to_string(), |mut acc, l| {
            acc.push_str(separator);
            acc.push_str(l);
            acc
        }))
    }
}

/// A redirect chain's entry: the URL requested and the status it answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    pub url: Url,
    pub status: u16,
}

/// Everything a scan looked at (the Observatory's `Requests`).
#[derive(Debug, Clone)]
pub struct Retrieval {
    pub hostname: String,
    /// The last response of the chain that started at `http://HOST/`.
    pub http: Option<Response>,
    /// The last response of the chain that started at `https://HOST/`.
    pub https: Option<Response>,
    /// The `http://` chain, one entry per request, the final one included.
    pub http_redirects: Vec<Hop>,
    /// The scored page's body, when its type is HTML.
    pub page: Option<PageFacts>,
    /// The cookies the scored chain stored.
    pub cookies: Vec<Cookie>,
    /// The answer to the CORS probe, when it was a 2xx.
    pub cors: Option<Response>,
}

impl Retrieval {
    /// The scored response: the HTTPS one whenever HTTPS answered at all.
    pub fn auto(&self) -> Option<&Response> {
        self.https.as_ref().or(self.http.as_ref())
    }

    /// Whether the scored chain is the HTTPS one (the scheme of the session's URL).
    pub fn auto_is_https(&self) -> bool {
        self.https.is_some()
    }

    fn content_type_is_html(&self) -> bool {
        let mime = self
            .auto()
            .and_then(|r| r.header("content-type"))
            .unwrap_or_default();
        // Exact and case-sensitive, as the Observatory compares it.
        html::HTML_TYPES.contains(&mime.split(';').next().unwrap_or(""))
    }
}

/// One test's outcome, in the Observatory's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestResult {
    pub name: &'static str,
    pub pass: bool,
    pub result: Expectation,
    pub modifier: i32,
}

impl TestResult {
    fn new(name: &'static str, result: Expectation, pass: bool) -> TestResult {
        TestResult {
            name,
            pass,
            result,
            modifier: result.modifier(),
        }
    }
}

/// A whole scan's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    pub grade: &'static str,
    pub score: i32,
    /// In the Observatory's order.
    pub tests: Vec<TestResult>,
}

/// Why the Observatory would refuse to grade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanError {
    Down,
    Status(u16),
}

impl std::fmt::Display for ScanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScanError::Down => write!(f, "The site seems to be down."),
            ScanError::Status(s) => write!(
                f,
                "Site did respond with an unexpected HTTP status code {s}."
            ),
        }
    }
}

/// Positive modifiers count only when the negative ones alone leave at least this.
const MINIMUM_SCORE_FOR_EXTRA_CREDIT: i32 = 90;

/// Runs every test and scores them, as the Observatory's `scan` does.
pub fn scan(r: &Retrieval) -> Result<Scan, ScanError> {
    let auto = r.auto().ok_or(ScanError::Down)?;
    if auto.status < 200 || (auto.status >= 400 && ![401, 403].contains(&auto.status)) {
        return Err(ScanError::Status(auto.status));
    }
    let csp = csp::test(r);
    let tests = vec![
        csp.result.clone(),
        cookies::test(r),
        headers::cors(r),
        redirection::test(r),
        headers::referrer_policy(r),
        headers::hsts(r),
        html::sri(r),
        headers::x_content_type_options(r),
        headers::x_frame_options(r, &csp),
        headers::corp(r),
    ];
    let with_credit: i32 = 100 + tests.iter().map(|t| t.modifier).sum::<i32>();
    let uncurved: i32 = 100 + tests.iter().map(|t| t.modifier.min(0)).sum::<i32>();
    let score = if uncurved >= MINIMUM_SCORE_FOR_EXTRA_CREDIT {
        with_credit
    } else {
        uncurved
    };
    let (score, grade) = grade_for_score(score);
    Ok(Scan {
        grade,
        score,
        tests,
    })
}

/// The grade chart: multiples of 5 from 0 to 100.
pub fn grade_for_score(score: i32) -> (i32, &'static str) {
    let score = score.max(0);
    let key = (score - score % 5).min(100);
    let grade = match key {
        100 => "A+",
        90 | 95 => "A",
        85 => "A-",
        80 => "B+",
        70 | 75 => "B",
        65 => "B-",
        60 => "C+",
        50 | 55 => "C",
        45 => "C-",
        40 => "D+",
        30 | 35 => "D",
        25 => "D-",
        _ => "F",
    };
    (score, grade)
}

/// The grades from best to worst, for `--min-grade`.
pub const GRADES: [&str; 13] = [
    "A+", "A", "A-", "B+", "B", "B-", "C+", "C", "C-", "D+", "D", "D-", "F",
];

/// Whether `grade` is at least `min` (both from [`GRADES`]).
pub fn grade_at_least(grade: &str, min: &str) -> bool {
    let rank = |g: &str| GRADES.iter().position(|x| *x == g).unwrap_or(GRADES.len());
    rank(grade) <= rank(min)
}

/// `onlyIfWorse`: the later entry of `order` wins.
fn only_if_worse(new: Expectation, old: Option<Expectation>, order: &[Expectation]) -> Expectation {
    let rank = |e: Expectation| order.iter().position(|x| *x == e);
    match old {
        None => new,
        Some(old) if rank(new) > rank(old) => new,
        Some(old) => old,
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    pub fn response(url: &str, status: u16, headers: &[(&str, &str)]) -> Response {
        Response {
            url: Url::parse(url).unwrap(),
            status,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_ascii_lowercase(), v.to_string()))
                .collect(),
            verified: true,
        }
    }

    /// An HTTPS site whose plain-HTTP URL redirects to it, serving `headers`.
    pub fn site(headers: &[(&str, &str)]) -> Retrieval {
        Retrieval {
            hostname: "example.com".into(),
            http: Some(response("https://example.com/", 200, headers)),
            https: Some(response("https://example.com/", 200, headers)),
            http_redirects: vec![
                Hop {
                    url: Url::parse("http://example.com/").unwrap(),
                    status: 301,
                },
                Hop {
                    url: Url::parse("https://example.com/").unwrap(),
                    status: 200,
                },
            ],
            page: None,
            cookies: Vec::new(),
            cors: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    #[test]
    fn grade_chart_and_extra_credit() {
        assert_eq!(grade_for_score(135), (135, "A+"));
        assert_eq!(grade_for_score(99), (99, "A"));
        assert_eq!(grade_for_score(84), (84, "B+"));
        assert_eq!(grade_for_score(24), (24, "F"));
        assert_eq!(grade_for_score(-40), (0, "F"));
        assert!(grade_at_least("A+", "B"));
        assert!(grade_at_least("B", "B"));
        assert!(!grade_at_least("B-", "B"));
    }

    #[test]
    fn node_joins_repeated_headers_but_not_content_type() {
        let r = response(
            "https://example.com/",
            200,
            &[
                ("strict-transport-security", "max-age=1"),
                ("content-type", "text/html"),
                ("strict-transport-security", "max-age=2"),
                ("content-type", "text/plain"),
            ],
        );
        assert_eq!(
            r.header("strict-transport-security").unwrap(),
            "max-age=1, max-age=2"
        );
        assert_eq!(r.header("content-type").unwrap(), "text/html");
        assert_eq!(r.header("x-missing"), None);
    }

    #[test]
    fn a_strict_site_scores_a_plus_and_a_bare_one_f() {
        let strict = site(&[
            ("content-type", "text/html"),
            (
                "content-security-policy",
                "default-src 'none'; form-action 'self'; frame-ancestors 'none'",
            ),
            ("strict-transport-security", "max-age=63072000"),
            ("x-content-type-options", "nosniff"),
            ("referrer-policy", "no-referrer"),
            ("cross-origin-resource-policy", "same-origin"),
        ]);
        let s = scan(&strict).unwrap();
        // 100 + 10 (CSP) + 5 (Referrer) + 5 (XFO via CSP) + 10 (CORP)
        assert_eq!((s.score, s.grade), (130, "A+"));
        let bare = site(&[("content-type", "text/plain")]);
        let s = scan(&bare).unwrap();
        // CSP -25, HSTS -20, XCTO -5, XFO -20
        assert_eq!((s.score, s.grade), (30, "D"));
        assert_eq!(s.tests.iter().filter(|t| t.pass).count(), 6);
    }

    #[test]
    fn unexpected_status_and_no_answer_are_errors() {
        let mut r = site(&[]);
        r.https.as_mut().unwrap().status = 404;
        assert_eq!(scan(&r), Err(ScanError::Status(404)));
        r.https.as_mut().unwrap().status = 403;
        assert!(scan(&r).is_ok());
        r.https = None;
        r.http = None;
        assert_eq!(scan(&r), Err(ScanError::Down));
    }
}
