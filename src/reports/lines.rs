//! One JSON line per report on the log target `secgw::csp`, at most
//! [`LINES_PER_SECOND`] per vhost; the lines a flood would add are counted and
//! the count is logged with the next line that gets through.

use std::borrow::Cow;
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use log::info;
use serde::Serialize;

use super::body::Violation;

/// The log target of report lines.
pub const TARGET: &str = "secgw::csp";

/// Report lines per vhost and second; counting goes on past it.
pub const LINES_PER_SECOND: u32 = 10;

/// How much of a URL or sample a line keeps (browsers send at most 40
/// characters of sample; URLs are cut, not dropped).
const URL_CHARS: usize = 512;
const SAMPLE_CHARS: usize = 40;

/// One vhost's budget of report lines.
#[derive(Debug)]
pub struct LogBudget {
    start: Instant,
    window: Mutex<Window>,
}

#[derive(Debug, Default)]
struct Window {
    second: u64,
    logged: u32,
    suppressed: u64,
}

impl Default for LogBudget {
    fn default() -> LogBudget {
        LogBudget {
            start: Instant::now(),
            window: Mutex::new(Window::default()),
        }
    }
}

impl LogBudget {
    /// Whether a line may be written now, and how many were suppressed since
    /// the last one that was.
    fn admit(&self) -> Option<u64> {
        self.admit_at(self.start.elapsed().as_secs())
    }

    fn admit_at(&self, second: u64) -> Option<u64> {
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        if w.second != second {
            w.second = second;
            w.logged = 0;
        }
        if w.logged >= LINES_PER_SECOND {
            w.suppressed += 1;
            return None;
        }
        w.logged += 1;
        Some(std::mem::take(&mut w.suppressed))
    }
}

#[derive(Serialize)]
struct Line<'a> {
    time: f64,
    vhost: &'a str,
    route: &'a str,
    format: &'static str,
    directive: &'static str,
    disposition: &'static str,
    blocked_url: Option<Cow<'a, str>>,
    document_url: Option<Cow<'a, str>>,
    source_file: Option<Cow<'a, str>>,
    line: Option<u64>,
    column: Option<u64>,
    sample: Option<&'a str>,
    /// Lines left out by the rate limit since the previous one.
    #[serde(skip_serializing_if = "is_zero")]
    suppressed: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Logs `v` within `budget`.
pub fn violation(budget: &LogBudget, vhost: &str, route: &str, v: &Violation) {
    if !log::log_enabled!(target: TARGET, log::Level::Info) {
        return;
    }
    let Some(suppressed) = budget.admit() else {
        return;
    };
    info!(target: TARGET, "{}", render(vhost, route, v, suppressed));
}

/// The JSON line for `v`.
fn render(vhost: &str, route: &str, v: &Violation, suppressed: u64) -> String {
    let time = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| (d.as_millis() as f64) / 1000.0);
    let line = Line {
        time,
        vhost,
        route,
        format: v.format.into(),
        directive: v.directive.into(),
        disposition: v.disposition.into(),
        blocked_url: v.blocked_url.as_deref().map(private_url),
        document_url: v.document_url.as_deref().map(private_url),
        source_file: v.source_file.as_deref().map(private_url),
        line: v.line,
        column: v.column,
        sample: v.sample.as_deref().map(|s| cut(s, SAMPLE_CHARS)),
        suppressed,
    };
    // Cannot fail: every field is a string, a number or absent.
    serde_json::to_string(&line).unwrap_or_default()
}

/// A URL without what tends to carry secrets (query, fragment, user info, path
/// parameters), cut to [`URL_CHARS`]. Keywords browsers send instead (`inline`,
/// `eval`) pass.
pub fn private_url(url: &str) -> Cow<'_, str> {
    let url = url.split(['?', '#']).next().unwrap_or_default();
    let mut clean = Cow::Borrowed(url);
    if let Some((scheme, rest)) = url.split_once("://") {
        let authority_end = rest.find('/').unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            clean = Cow::Owned(format!("{scheme}://{}", &rest[at + 1..]));
        }
    }
    if clean.split('/').any(|s| parameter_start(s).is_some()) {
        clean = Cow::Owned(
            clean
                .split('/')
                .map(|s| &s[..parameter_start(s).unwrap_or(s.len())])
                .collect::<Vec<_>>()
                .join("/"),
        );
    }
    match clean {
        Cow::Borrowed(u) => Cow::Borrowed(cut(u, URL_CHARS)),
        Cow::Owned(u) => Cow::Owned(cut(&u, URL_CHARS).to_string()),
    }
}

/// Where a path segment's parameters start: `;jsessionid=…` (servlet
/// containers), `;phpsessid=…` and the like carry session ids, raw or with the
/// `;` encoded as `%3B`.
fn parameter_start(segment: &str) -> Option<usize> {
    let encoded = segment
        .as_bytes()
        .windows(3)
        .position(|w| w.eq_ignore_ascii_case(b"%3b"));
    segment.find(';').into_iter().chain(encoded).min()
}

/// At most `chars` characters of `text`.
fn cut(text: &str, chars: usize) -> &str {
    match text.char_indices().nth(chars) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Disposition, ReportDirective};
    use crate::reports::body::Format;

    #[test]
    fn urls_lose_queries_fragments_credentials_and_path_parameters() {
        for (url, want) in [
            ("https://a.test/p?token=s3cret#frag", "https://a.test/p"),
            ("https://user:pw@a.test/p?x", "https://a.test/p"),
            ("https://a.test/p@x?y", "https://a.test/p@x"),
            ("inline", "inline"),
            ("", ""),
            ("https://a.test#x", "https://a.test"),
            (
                "https://a.test/app;jsessionid=1A2B/cart;v=2?x",
                "https://a.test/app/cart",
            ),
            ("https://a.test/app%3Bjsessionid=1A2B", "https://a.test/app"),
            ("https://u@a.test/;sid=1", "https://a.test/"),
        ] {
            assert_eq!(private_url(url), want, "{url}");
        }
        let long = format!("https://a.test/{}", "é".repeat(1000));
        assert_eq!(private_url(&long).chars().count(), URL_CHARS);
    }

    #[test]
    fn a_line_is_one_json_object_with_the_private_fields() {
        let v = Violation {
            format: Format::Legacy,
            directive: ReportDirective::ScriptSrcElem,
            disposition: Disposition::Report,
            blocked_url: Some("inline".into()),
            document_url: Some("https://a.test/cart?session=1\n".into()),
            source_file: None,
            line: Some(3),
            column: None,
            sample: Some("x".repeat(100).into()),
        };
        let line = render("shop", "_vhost", &v, 7);
        assert!(!line.contains('\n'));
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["vhost"], "shop");
        assert_eq!(parsed["format"], "legacy");
        assert_eq!(parsed["directive"], "script-src-elem");
        assert_eq!(parsed["disposition"], "report");
        assert_eq!(parsed["document_url"], "https://a.test/cart");
        assert_eq!(parsed["blocked_url"], "inline");
        assert_eq!(parsed["line"], 3);
        assert_eq!(parsed["sample"].as_str().unwrap().len(), SAMPLE_CHARS);
        assert_eq!(parsed["suppressed"], 7);
        assert!(parsed["time"].as_f64().unwrap() > 1.7e9);
        assert!(!render("shop", "_vhost", &v, 0).contains("suppressed"));
    }

    #[test]
    fn the_budget_admits_ten_a_second_and_counts_the_rest() {
        let budget = LogBudget::default();
        let admitted: Vec<Option<u64>> = (0..13).map(|_| budget.admit_at(5)).collect();
        assert_eq!(admitted[..10], [Some(0); 10]);
        assert_eq!(admitted[10..], [None, None, None]);
        // The next second's first line carries what the last one suppressed.
        assert_eq!(budget.admit_at(6), Some(3));
        assert_eq!(budget.admit_at(6), Some(0));
        assert_eq!(budget.admit_at(9), Some(0));
    }
}
