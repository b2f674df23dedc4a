//! The CSP family's keys (`csp_*`, `trusted_types*`): `csp_policy`, a map of CSP
//! directive to source list checked against CSP Level 3, and the headers the family
//! writes. Rendered by `policy/csp.rs` (nonces in `policy/nonce.rs`), linted by
//! `check/csp.rs`.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;

pub const CSP: &str = "Content-Security-Policy";
pub const CSP_REPORT_ONLY: &str = "Content-Security-Policy-Report-Only";
/// Where browsers send Reporting API reports, beside a CSP that reports.
pub const REPORTING_ENDPOINTS: &str = "Reporting-Endpoints";

/// Directives of CSP Level 3 and Trusted Types that a policy may name.
const DIRECTIVES: &[&str] = &[
    "base-uri",
    "block-all-mixed-content",
    "child-src",
    "connect-src",
    "default-src",
    "fenced-frame-src",
    "font-src",
    "form-action",
    "frame-ancestors",
    "frame-src",
    "img-src",
    "manifest-src",
    "media-src",
    "object-src",
    "report-to",
    "report-uri",
    "require-trusted-types-for",
    "sandbox",
    "script-src",
    "script-src-attr",
    "script-src-elem",
    "style-src",
    "style-src-attr",
    "style-src-elem",
    "trusted-types",
    "upgrade-insecure-requests",
    "worker-src",
];

/// Directives that take no value.
const VALUELESS: &[&str] = &["upgrade-insecure-requests", "block-all-mixed-content"];

/// Directives whose values are not source expressions.
const NON_SOURCE: &[&str] = &[
    "report-to",
    "report-uri",
    "sandbox",
    "require-trusted-types-for",
    "trusted-types",
];

const KEYWORDS: &[&str] = &[
    "'self'",
    "'none'",
    "'unsafe-inline'",
    "'unsafe-eval'",
    "'strict-dynamic'",
    "'unsafe-hashes'",
    "'report-sample'",
    "'wasm-unsafe-eval'",
    "'inline-speculation-rules'",
    "'unsafe-allow-redirects'",
];

/// A CSP: directive -> sources, in the order written. A directive mapped to `null`
/// removes the one a weaker layer set.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, JsonSchema)]
#[serde(try_from = "IndexMap<String, Option<Vec<String>>>")]
#[schemars(with = "IndexMap<String, Option<Vec<String>>>")]
pub struct CspPolicy(pub IndexMap<String, Option<Vec<String>>>);

impl TryFrom<IndexMap<String, Option<Vec<String>>>> for CspPolicy {
    type Error = String;
    fn try_from(map: IndexMap<String, Option<Vec<String>>>) -> Result<Self, String> {
        let mut out = IndexMap::with_capacity(map.len());
        for (directive, sources) in map {
            let directive_lc = directive.to_ascii_lowercase();
            if !DIRECTIVES.contains(&directive_lc.as_str()) {
                return Err(format!(
                    "`{directive}` is not a CSP directive; known: {}",
                    DIRECTIVES.join(", ")
                ));
            }
            if let Some(sources) = &sources {
                check_sources(&directive_lc, sources)
                    .map_err(|e| format!("directive `{directive_lc}`: {e}"))?;
            }
            out.insert(directive_lc, sources);
        }
        Ok(CspPolicy(out))
    }
}

fn check_sources(directive: &str, sources: &[String]) -> Result<(), String> {
    if VALUELESS.contains(&directive) {
        if !sources.is_empty() {
            return Err("takes no value; write it with an empty list: []".into());
        }
        return Ok(());
    }
    if sources.is_empty() && directive != "sandbox" {
        return Err("needs at least one source (use ['none'] to allow nothing)".into());
    }
    for s in sources {
        check_token_chars(s)?;
    }
    if NON_SOURCE.contains(&directive) {
        if directive == "require-trusted-types-for" && sources.iter().any(|s| s != "'script'") {
            return Err("the only value is 'script'".into());
        }
        return Ok(());
    }
    for s in sources {
        check_source(s)?;
    }
    if sources.len() > 1 && sources.iter().any(|s| s == "'none'") {
        return Err("'none' must be the only source in its directive".into());
    }
    Ok(())
}

fn check_token_chars(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("empty source".into());
    }
    if let Some(c) = s
        .chars()
        .find(|c| !c.is_ascii_graphic() || matches!(c, ';' | ','))
    {
        return Err(format!(
            "source `{}` contains {:?}; sources are single tokens without `;`, `,` or whitespace",
            s.escape_default(),
            c
        ));
    }
    Ok(())
}

fn check_source(s: &str) -> Result<(), String> {
    if s.starts_with('\'') {
        if KEYWORDS.contains(&s) {
            return Ok(());
        }
        let inner = s
            .strip_suffix('\'')
            .and_then(|s| s.strip_prefix('\''))
            .unwrap_or("");
        let is_hash_or_nonce = ["nonce-", "sha256-", "sha384-", "sha512-"].iter().any(|p| {
            inner.strip_prefix(p).is_some_and(|b64| {
                !b64.is_empty()
                    && b64.bytes().all(|b| {
                        b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_')
                    })
            })
        });
        if is_hash_or_nonce {
            return Ok(());
        }
        return Err(format!("`{s}` is not a CSP keyword, nonce or hash"));
    }
    let bare = s.to_ascii_lowercase();
    let quoted = format!("'{bare}'");
    if KEYWORDS.contains(&quoted.as_str())
        || ["nonce-", "sha256-", "sha384-", "sha512-"]
            .iter()
            .any(|p| bare.starts_with(p))
    {
        return Err(format!(
            "`{s}` must be quoted: write \"'{s}'\" (without quotes it is a host name)"
        ));
    }
    Ok(())
}

/// `csp_report_uri`: an external collector's absolute http(s) URL, written into
/// the CSP and `Reporting-Endpoints` as the URL parser serializes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(try_from = "String")]
#[schemars(with = "String")]
pub struct ReportUri(pub String);

impl TryFrom<String> for ReportUri {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let url =
            url::Url::parse(&text).map_err(|e| format!("`{text}` is not an absolute URL ({e})"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(format!(
                "`{text}`: a report URL is http:// or https:// with a host"
            ));
        }
        // The URL goes into a CSP directive and a structured-field string as is.
        if url.as_str().contains([';', ',', '"', '\'']) {
            return Err(format!(
                "`{text}`: a report URL cannot contain `;`, `,`, `\"` or `'` (they end a CSP \
                 directive or a header field); percent-encode them"
            ));
        }
        Ok(ReportUri(url.as_str().to_string()))
    }
}

/// `csp_report_path`: where the gateway answers reports on the vhost itself. A
/// normalized absolute path (the form requests are routed by), in plain characters.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(try_from = "String")]
#[schemars(with = "String")]
pub struct ReportPath(pub String);

impl TryFrom<String> for ReportPath {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let plain = text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/'));
        let normalized = text.len() > 1
            && text
                .strip_prefix('/')
                .is_some_and(|rest| rest.split('/').all(|seg| !matches!(seg, "" | "." | "..")));
        if plain && normalized {
            Ok(ReportPath(text))
        } else {
            Err(format!(
                "`{text}`: a report path is an absolute path like /.well-known/csp-reports, \
                 of letters, digits and `-._~`, without empty, `.` or `..` segments"
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(pairs: &[(&str, Option<&[&str]>)]) -> Result<CspPolicy, String> {
        let map: IndexMap<String, Option<Vec<String>>> = pairs
            .iter()
            .map(|(d, s)| {
                (
                    d.to_string(),
                    s.map(|s| s.iter().map(|x| x.to_string()).collect()),
                )
            })
            .collect();
        CspPolicy::try_from(map)
    }

    #[test]
    fn accepts_the_seed_policy() {
        let p = policy(&[
            ("default-src", Some(&["'self'"])),
            ("script-src", Some(&["'self'", "'unsafe-inline'"])),
            ("img-src", Some(&["'self'", "data:", "https:"])),
            ("connect-src", Some(&["'self'", "wss://ws.example.com"])),
            ("upgrade-insecure-requests", Some(&[])),
            (
                "script-src-elem",
                Some(&["'nonce-abc123=='", "'sha256-AbC+/='"]),
            ),
        ]);
        assert!(p.is_ok(), "{p:?}");
    }

    #[test]
    fn rejects_bad_directives_and_sources() {
        assert_eq!(
            policy(&[("script-source", Some(&["'self'"]))])
                .unwrap_err()
                .split(';')
                .next()
                .unwrap(),
            "`script-source` is not a CSP directive"
        );
        assert_eq!(
            policy(&[("script-src", Some(&["self"]))]).unwrap_err(),
            "directive `script-src`: `self` must be quoted: write \"'self'\" (without quotes it is a host name)"
        );
        assert!(policy(&[("script-src", Some(&["'self'; object-src *"]))]).is_err());
        assert!(policy(&[("script-src", Some(&["a b"]))]).is_err());
        assert!(policy(&[("script-src", Some(&["'none'", "'self'"]))]).is_err());
        assert!(policy(&[("upgrade-insecure-requests", Some(&["x"]))]).is_err());
        assert!(policy(&[("script-src", Some(&["'unsafe-everything'"]))]).is_err());
        assert!(policy(&[("script-src", Some(&[]))]).is_err());
    }

    #[test]
    fn report_urls_are_absolute_http_and_safe_in_a_csp() {
        let ok = |t: &str| ReportUri::try_from(t.to_string()).map(|u| u.0);
        assert_eq!(
            ok("https://c.example/csp"),
            Ok("https://c.example/csp".into())
        );
        assert_eq!(ok("HTTPS://C.example"), Ok("https://c.example/".into()));
        assert_eq!(
            ok("https://c.example/a b"),
            Ok("https://c.example/a%20b".into())
        );
        for bad in [
            "/csp",
            "ftp://c.example/",
            "data:,x",
            "https://c.example/a;b",
            "https://c.example/?a,b",
        ] {
            assert!(ok(bad).is_err(), "{bad}");
        }
        assert!(ok("https://c.example/a;b")
            .unwrap_err()
            .contains("percent-encode"));
    }

    #[test]
    fn report_paths_are_normalized_absolute_paths() {
        let ok = |t: &str| ReportPath::try_from(t.to_string()).is_ok();
        assert!(ok("/.well-known/csp-reports"));
        assert!(ok("/csp"));
        for bad in [
            "", "/", "csp", "//csp", "/a//b", "/a/./b", "/a/../b", "/csp/", "/csp?x", "/a;b",
            "/a%2F",
        ] {
            assert!(!ok(bad), "{bad}");
        }
    }
}
