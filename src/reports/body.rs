//! The two report formats browsers send, read in place: strings borrow from the
//! body unless they hold JSON escapes.
//!
//! - CSP2's legacy `{"csp-report": {...}}` (`report-uri`), with kebab-case keys;
//! - the Reporting API's batch `[{"type": "csp-violation", "body": {...}}, ...]`
//!   (`report-to`), with camelCase keys, where entries of other types are skipped.

use std::borrow::Cow;

use serde::de::{IgnoredAny, Visitor};
use serde::{Deserialize, Deserializer};

use crate::metrics::{Disposition, ReportDirective};

/// One violation, as the collector counts and logs it.
#[derive(Debug, PartialEq, Eq)]
pub struct Violation<'a> {
    pub format: Format,
    pub directive: ReportDirective,
    pub disposition: Disposition,
    pub blocked_url: Option<Cow<'a, str>>,
    pub document_url: Option<Cow<'a, str>>,
    pub source_file: Option<Cow<'a, str>>,
    pub line: Option<u64>,
    pub column: Option<u64>,
    pub sample: Option<Cow<'a, str>>,
}

/// Which of the two formats a report came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum Format {
    /// `report-uri`: `{"csp-report": {...}}`.
    Legacy,
    /// `report-to`: a Reporting API batch.
    ReportingApi,
}

/// Why a body holds no report to count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// Not JSON, or not one of the two shapes.
    Malformed,
    /// One of the shapes, with no CSP violation in it.
    Empty,
}

/// The violations in a report body.
pub fn violations(body: &[u8]) -> Result<Vec<Violation<'_>>, BodyError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    let found: Vec<Violation> = match first {
        Some(b'{') => {
            let legacy: Legacy = serde_json::from_slice(body).map_err(|_| BodyError::Malformed)?;
            legacy
                .report
                .and_then(|r| Violation::from_report(Format::Legacy, r))
                .into_iter()
                .collect()
        }
        Some(b'[') => {
            let batch: Vec<Entry> =
                serde_json::from_slice(body).map_err(|_| BodyError::Malformed)?;
            batch
                .into_iter()
                .filter(|e| e.kind == "csp-violation")
                .filter_map(|e| Violation::from_report(Format::ReportingApi, e.body?))
                .collect()
        }
        _ => return Err(BodyError::Malformed),
    };
    if found.is_empty() {
        return Err(BodyError::Empty);
    }
    Ok(found)
}

#[derive(Deserialize)]
struct Legacy<'a> {
    #[serde(rename = "csp-report", borrow)]
    report: Option<Report<'a>>,
}

/// A report's fields: legacy names (kebab-case) with the Reporting API's
/// (camelCase) as aliases; only the directive is required.
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Report<'a> {
    #[serde(
        alias = "effectiveDirective",
        default,
        borrow,
        deserialize_with = "text"
    )]
    effective_directive: Option<Cow<'a, str>>,
    /// CSP2 browsers name only this, with its sources (`script-src 'self'`).
    #[serde(default, borrow, deserialize_with = "text")]
    violated_directive: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "text")]
    disposition: Option<Cow<'a, str>>,
    #[serde(alias = "blockedURL", default, borrow, deserialize_with = "text")]
    blocked_uri: Option<Cow<'a, str>>,
    #[serde(alias = "documentURL", default, borrow, deserialize_with = "text")]
    document_uri: Option<Cow<'a, str>>,
    #[serde(alias = "sourceFile", default, borrow, deserialize_with = "text")]
    source_file: Option<Cow<'a, str>>,
    #[serde(alias = "lineNumber", default, deserialize_with = "number")]
    line_number: Option<u64>,
    #[serde(alias = "columnNumber", default, deserialize_with = "number")]
    column_number: Option<u64>,
    #[serde(alias = "sample", default, borrow, deserialize_with = "text")]
    script_sample: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Entry<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    body: Option<Report<'a>>,
}

/// A string, borrowed from the body unless it holds escapes (serde's own
/// `Option<Cow<str>>` always copies), or `null`.
fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    struct Text;
    impl<'de> Visitor<'de> for Text {
        type Value = Option<Cow<'de, str>>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a string or null")
        }
        fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Borrowed(v)))
        }
        fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v.to_string())))
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(Text)
}

/// A line or column: a number, or (some browsers) a string of digits; anything
/// else counts as absent rather than spoil the report.
fn number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Lenient {
        Number(u64),
        Text(String),
        Other(IgnoredAny),
    }
    Ok(match Lenient::deserialize(d)? {
        Lenient::Number(n) => Some(n),
        Lenient::Text(t) => t.parse().ok(),
        Lenient::Other(_) => None,
    })
}

fn disposition(text: Option<&str>) -> Disposition {
    // CSP2 reports carry no disposition: they come from enforced policies or
    // from browsers that cannot tell; `enforce` is the conservative reading.
    match text {
        Some(t) if t.eq_ignore_ascii_case("report") => Disposition::Report,
        _ => Disposition::Enforce,
    }
}

/// A report names the directive it violated; an object without one is no report.
impl<'a> Violation<'a> {
    fn from_report(format: Format, r: Report<'a>) -> Option<Violation<'a>> {
        let named = r.effective_directive.as_deref().or_else(|| {
            r.violated_directive
                .as_deref()
                .and_then(|v| v.split_ascii_whitespace().next())
        })?;
        Some(Violation {
            format,
            directive: ReportDirective::named(named),
            disposition: disposition(r.disposition.as_deref()),
            blocked_url: r.blocked_uri,
            document_url: r.document_uri,
            source_file: r.source_file,
            line: r.line_number,
            column: r.column_number,
            sample: r.script_sample,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_reports_of_chromium_and_csp2_browsers() {
        let chromium = br#"{"csp-report":{"document-uri":"https://shop.test/cart?id=7",
            "referrer":"","violated-directive":"script-src-elem","effective-directive":"script-src-elem",
            "original-policy":"script-src 'self'; report-uri /r","disposition":"report",
            "blocked-uri":"inline","line-number":12,"column-number":5,
            "source-file":"https://shop.test/cart","status-code":200,"script-sample":"alert(1)"}}"#;
        let v = violations(chromium).unwrap();
        assert_eq!(
            v,
            [Violation {
                format: Format::Legacy,
                directive: ReportDirective::ScriptSrcElem,
                disposition: Disposition::Report,
                blocked_url: Some("inline".into()),
                document_url: Some("https://shop.test/cart?id=7".into()),
                source_file: Some("https://shop.test/cart".into()),
                line: Some(12),
                column: Some(5),
                sample: Some("alert(1)".into()),
            }]
        );
        // Borrowed from the body, not copied.
        assert!(matches!(v[0].document_url, Some(Cow::Borrowed(_))));

        let csp2 = br#"{"csp-report":{"document-uri":"http://a.test/","violated-directive":"img-src 'self'",
            "blocked-uri":"http://evil.test","line-number":"3"}}"#;
        let v = violations(csp2).unwrap();
        assert_eq!(v[0].directive, ReportDirective::ImgSrc);
        assert_eq!(v[0].disposition, Disposition::Enforce);
        assert_eq!(v[0].line, Some(3));
    }

    #[test]
    fn reporting_api_batches_count_only_csp_violations() {
        let batch = br#"[
          {"age":10,"type":"deprecation","url":"https://a.test/","user_agent":"x","body":{"id":"old"}},
          {"age":20,"type":"csp-violation","url":"https://a.test/p","user_agent":"x",
           "body":{"blockedURL":"https://cdn.test/x.js","disposition":"enforce",
                   "documentURL":"https://a.test/p","effectiveDirective":"script-src-elem",
                   "lineNumber":1,"columnNumber":2,"originalPolicy":"...","referrer":"",
                   "sample":"","sourceFile":"https://a.test/p","statusCode":200}},
          {"type":"csp-violation","body":{"effectiveDirective":"STYLE-SRC-ATTR","disposition":"report"}}
        ]"#;
        let v = violations(batch).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].format, Format::ReportingApi);
        assert_eq!(v[0].directive, ReportDirective::ScriptSrcElem);
        assert_eq!(v[0].disposition, Disposition::Enforce);
        assert_eq!(v[0].blocked_url.as_deref(), Some("https://cdn.test/x.js"));
        assert_eq!(v[1].directive, ReportDirective::StyleSrcAttr);
        assert_eq!(v[1].disposition, Disposition::Report);
    }

    #[test]
    fn hostile_and_empty_bodies() {
        for malformed in [
            &b""[..],
            b"   ",
            b"null",
            b"\"csp-report\"",
            b"{\"csp-report\": ",
            b"[{\"body\": {}}]",
            b"{\"csp-report\": {\"blocked-uri\": \"a\", \"blocked-uri\": \"b\"}}",
            b"{\"csp-report\": {\"effective-directive\": 7}}",
            b"[{\"type\": \"csp-violation\", \"body\": \"x\"}]",
        ] {
            assert_eq!(
                violations(malformed),
                Err(BodyError::Malformed),
                "{}",
                String::from_utf8_lossy(malformed)
            );
        }
        for empty in [
            &b"{}"[..],
            b"{\"other\": 1}",
            b"[]",
            b"[{\"type\": \"deprecation\", \"body\": {}}]",
            b"[{\"type\": \"csp-violation\"}]",
            b"{\"csp-report\": {}}",
            b"{\"csp-report\": []}",
            b"[{\"type\": \"csp-violation\", \"body\": {\"blockedURL\": \"x\"}}]",
        ] {
            assert_eq!(violations(empty), Err(BodyError::Empty));
        }
        // Unknown directives are `other`: nothing from a body becomes a label.
        let v = violations(br#"{"csp-report": {"effective-directive": "x\"} evil"}}"#).unwrap();
        assert_eq!(v[0].directive, ReportDirective::Other);
        // Deep nesting in an ignored field is skipped without recursion, and a
        // report without a directive is none.
        let deep = format!(
            "{{\"csp-report\": {{\"x\": {}{}}}}}",
            "[".repeat(30_000),
            "]".repeat(30_000)
        );
        assert_eq!(violations(deep.as_bytes()), Err(BodyError::Empty));
        // Escaped strings are decoded (and then owned).
        let v = violations(
            br#"{"csp-report": {"effective-directive": "img-src", "blocked-uri": "aA"}}"#,
        )
        .unwrap();
        assert_eq!(v[0].blocked_url, Some(Cow::Owned("aA".into())));
    }
}
