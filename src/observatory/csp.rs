//! The Content Security Policy test: the Observatory's CSP parser (`cspParser.js`)
//! and analysis (`tests/csp.js`), including their quirks, since the point is the
//! same result on the same header.

use std::cmp::Ordering;
use std::collections::HashMap;

use super::{Expectation, Retrieval, TestResult};

/// The shortest policy accepted, in UTF-16 units (`"img-src".length - 1`).
const SHORTEST_POLICY: usize = 6;
const DISALLOWED_IN_META: [&str; 3] = ["frame-ancestors", "report-uri", "sandbox"];
const ALLOWED_DUPLICATES: [&str; 2] = ["report-uri", "report-to"];

const DANGEROUSLY_BROAD: [&str; 8] = [
    "ftp:",
    "http:",
    "https:",
    "*",
    "http://*",
    "http://*.*",
    "https://*",
    "https://*.*",
];
const UNSAFE_INLINE: [&str; 2] = ["'unsafe-inline'", "data:"];
const NONCES_HASHES: [&str; 4] = ["'sha256-", "'sha384-", "'sha512-", "'nonce-"];
const PASSIVE_DIRECTIVES: [&str; 2] = ["img-src", "media-src"];

fn broad(s: &str) -> bool {
    DANGEROUSLY_BROAD.contains(&s)
}

fn broad_or_inline(s: &str) -> bool {
    broad(s) || UNSAFE_INLINE.contains(&s)
}

/// A parsed policy: each directive and its sources (a set, in insertion order).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    pub directives: HashMap<String, Vec<String>>,
    /// `report-uri`/`report-to` given twice in one policy (allowed, but noted).
    pub duplicate_warnings: bool,
}

impl Policy {
    /// The number of entries of the parser's map (the warnings key counts).
    fn size(&self) -> usize {
        self.directives.len() + usize::from(self.duplicate_warnings)
    }
}

#[derive(Debug, Clone)]
struct Source {
    source: String,
    index: usize,
    keep: bool,
}

/// Where ICU's English collation (`Intl.Collator("en")`) puts an ASCII character:
/// whitespace, then punctuation and symbols in this order, digits, letters.
const ICU_ASCII_ORDER: &str =
    " _-,;:!?.'\"()[]{}@*/\\&#%`^+<=>|~$0123456789abcdefghijklmnopqrstuvwxyz";

fn collation_rank(c: char) -> u32 {
    let c = c.to_ascii_lowercase();
    match ICU_ASCII_ORDER.find(c) {
        Some(i) => i as u32,
        None => 0x100 + c as u32,
    }
}

/// The order the parser sorts sources in (lower-case text, so primary weights
/// decide; a prefix sorts first).
fn collate(a: &str, b: &str) -> Ordering {
    a.chars()
        .map(collation_rank)
        .cmp(b.chars().map(collation_rank))
}

/// `decodeURIComponent`: fails on a broken escape or invalid UTF-8.
fn decode_uri_component(s: &str) -> Result<String, ()> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or(())?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(());
            }
            out.push(u8::from_str_radix(hex, 16).map_err(|_| ())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ())
}

/// `pathPartMatch`: whether a source of one policy also stands in the next one.
fn path_part_match(a: &str, b: &str) -> Result<bool, ()> {
    if a.is_empty() || (a == "/" && b.is_empty()) {
        return Ok(true);
    }
    let exact = !a.ends_with('/');
    let mut pa: Vec<&str> = a.split('/').collect();
    let pb: Vec<&str> = b.split('/').collect();
    if pa.len() > pb.len() || (exact && pa.len() != pb.len()) {
        return Ok(false);
    }
    if !exact {
        pa.pop();
    }
    for (x, y) in pa.iter().zip(&pb) {
        if decode_uri_component(x)? != decode_uri_component(y)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `parseCsp`: one or more policies (header values, meta contents) into one.
pub fn parse(list: &[String]) -> Result<Policy, String> {
    let clean: Vec<String> = list
        .iter()
        .map(|p| p.replace(['\r', '\n'], "").trim().to_string())
        .collect();
    let mut parsed = Policy::default();
    if clean.is_empty() {
        return Ok(parsed);
    }
    if let Some(short) = clean
        .iter()
        .find(|p| p.is_empty() || p.encode_utf16().count() < SHORTEST_POLICY)
    {
        return Err(format!("Invalid policy: {short}"));
    }
    let mut csp: HashMap<String, Vec<Source>> = HashMap::new();
    // Insertion order of directives, so that results never depend on hashing.
    let mut order: Vec<String> = Vec::new();
    for (index, policy) in clean.iter().enumerate() {
        let mut seen: Vec<String> = Vec::new();
        for entry in policy.split(';') {
            let mut tokens = entry.split_whitespace();
            let Some(name) = tokens.next() else { continue };
            let directive = name.to_lowercase();
            if seen.contains(&directive) {
                if ALLOWED_DUPLICATES.contains(&directive.as_str()) {
                    parsed.duplicate_warnings = true;
                } else {
                    return Err(format!("Duplicate directive {directive} in policy {index}"));
                }
            } else {
                seen.push(directive.clone());
            }
            let keep = index == 0;
            let mut values: Vec<Source> = tokens
                .map(|t| Source {
                    source: t.trim().to_lowercase(),
                    index,
                    keep,
                })
                .collect();
            if values.is_empty() && directive.ends_with("-src") {
                values.push(Source {
                    source: "'none'".into(),
                    index,
                    keep,
                });
            }
            let mut combined = if index == 0 {
                values
            } else {
                let mut c = csp.get(&directive).cloned().unwrap_or_default();
                c.extend(values);
                c
            };
            combined.sort_by(|a, b| collate(&a.source, &b.source));
            for i in 1..combined.len() {
                let (prev_index, prev_source) =
                    (combined[i - 1].index, combined[i - 1].source.clone());
                let source = &mut combined[i];
                if source.index == prev_index && source.source.starts_with(&prev_source) {
                    source.keep = false;
                }
                if source.index != prev_index
                    && path_part_match(&prev_source, &source.source)
                        .map_err(|_| "URI malformed".to_string())?
                {
                    source.keep = true;
                }
            }
            let mut kept: Vec<Source> = combined.into_iter().filter(|s| s.keep).collect();
            if index == 0 && list.len() > 1 {
                for s in &mut kept {
                    s.keep = false;
                }
            }
            if !csp.contains_key(&directive) {
                order.push(directive.clone());
            }
            csp.insert(directive, kept);
        }
    }
    for directive in order {
        let sources = &csp[&directive];
        let mut set: Vec<String> = Vec::new();
        for s in sources {
            if !set.contains(&s.source) {
                set.push(s.source.clone());
            }
        }
        if set.is_empty() {
            set.push("'none'".into());
        }
        parsed.directives.insert(directive, set);
    }
    Ok(parsed)
}

/// `parseCspMeta`: a meta tag cannot carry these directives.
fn parse_meta(list: &[String]) -> Result<Policy, String> {
    let mut p = parse(list)?;
    for d in DISALLOWED_IN_META {
        p.directives.remove(d);
    }
    Ok(p)
}

/// The CSP test's outcome and the parsed policy it reports (`data`), which the
/// X-Frame-Options test reads.
#[derive(Debug, Clone)]
pub struct CspOutcome {
    pub result: TestResult,
    pub data: Option<HashMap<String, Vec<String>>>,
}

const NAME: &str = "content-security-policy";

fn outcome(result: Expectation, pass: bool, data: Option<Policy>) -> CspOutcome {
    CspOutcome {
        result: TestResult::new(NAME, result, pass),
        data: data.map(|p| p.directives),
    }
}

/// A source list the analysis reads and may change: one of the policy's
/// directives (shared, as the JavaScript shares its `Set`s) or a fallback `*`.
#[derive(Clone, Copy)]
enum Slot<'a> {
    Directive(&'a str),
    Fallback(usize),
}

struct Lists<'a> {
    csp: &'a mut Policy,
    fallbacks: Vec<Vec<String>>,
}

impl<'a> Lists<'a> {
    fn slot(&mut self, keys: &[&'a str]) -> Slot<'a> {
        match keys.iter().find(|k| self.csp.directives.contains_key(**k)) {
            Some(k) => Slot::Directive(k),
            None => {
                self.fallbacks.push(vec!["*".into()]);
                Slot::Fallback(self.fallbacks.len() - 1)
            }
        }
    }

    fn get(&self, s: Slot) -> &Vec<String> {
        match s {
            Slot::Directive(d) => &self.csp.directives[d],
            Slot::Fallback(i) => &self.fallbacks[i],
        }
    }

    fn get_mut(&mut self, s: Slot) -> &mut Vec<String> {
        match s {
            Slot::Directive(d) => self.csp.directives.get_mut(d).expect("slot exists"),
            Slot::Fallback(i) => &mut self.fallbacks[i],
        }
    }
}

fn has_nonce_or_hash(sources: &[String]) -> bool {
    sources
        .iter()
        .any(|s| NONCES_HASHES.iter().any(|n| s.starts_with(n)))
}

fn insecure(s: &str) -> bool {
    s.starts_with("http:") || s.starts_with("ftp:")
}

/// `contentSecurityPolicyTest`.
pub fn test(r: &Retrieval) -> CspOutcome {
    let Some(response) = r.auto() else {
        return outcome(Expectation::CspNotImplemented, false, None);
    };
    let http: Vec<String> = response
        .header("content-security-policy")
        .into_iter()
        .collect();
    let meta: Vec<String> = r
        .page
        .as_ref()
        .map(|p| p.meta_csp.clone())
        .unwrap_or_default();
    let all: Vec<String> = http.iter().chain(&meta).cloned().collect();
    let Ok(mut csp) = parse(&all) else {
        return outcome(Expectation::CspHeaderInvalid, false, None);
    };
    let header_only = parse(&http).unwrap_or_default();
    let meta_only = parse_meta(&meta).unwrap_or_default();
    if header_only.size() + meta_only.size() == 0 {
        let result = if response
            .header("content-security-policy-report-only")
            .is_some_and(|v| !v.is_empty())
        {
            Expectation::CspNotImplementedButReportingEnabled
        } else {
            Expectation::CspNotImplemented
        };
        return outcome(result, false, None);
    }

    let https = r.auto_is_https();
    let mut result: Option<Expectation> = None;
    let mut set = |e: Expectation| {
        result.get_or_insert(e);
    };

    let mut lists = Lists {
        csp: &mut csp,
        fallbacks: Vec::new(),
    };
    let object_src = lists.slot(&["object-src", "default-src"]);
    let script_src = lists.slot(&["script-src", "default-src"]);
    let style_src = lists.slot(&["style-src", "default-src"]);

    // A nonce or hash makes 'unsafe-inline' inert.
    for slot in [script_src, style_src] {
        let list = lists.get_mut(slot);
        if has_nonce_or_hash(list) {
            list.retain(|s| s != "'unsafe-inline'");
        }
    }
    let script = lists.get_mut(script_src);
    if script.iter().any(|s| s == "'strict-dynamic'") {
        if has_nonce_or_hash(script) {
            script.retain(|s| {
                !(DANGEROUSLY_BROAD.iter().any(|b| s.starts_with(b))
                    || s == "'self'"
                    || s == "'unsafe-inline'")
            });
        } else {
            set(Expectation::CspHeaderInvalid);
        }
    }

    let script = lists.get(script_src).clone();
    let style = lists.get(style_src).clone();
    let object = lists.get(object_src).clone();
    let directives = &lists.csp.directives;
    let mut active: Vec<&String> = directives
        .iter()
        .filter(|(d, _)| !PASSIVE_DIRECTIVES.contains(&d.as_str()) && *d != "script-src")
        .flat_map(|(_, s)| s)
        .collect();
    active.extend(&script);
    let passive: Vec<&String> = PASSIVE_DIRECTIVES
        .iter()
        .flat_map(|d| directives.get(*d).or(directives.get("default-src")))
        .flatten()
        .collect();
    let default_none = directives
        .get("default-src")
        .is_some_and(|d| d.len() == 1 && d[0] == "'none'");

    if script.iter().any(|s| broad_or_inline(s)) || object.iter().any(|s| broad(s)) {
        set(Expectation::CspImplementedWithUnsafeInline);
    }
    if https && active.iter().any(|s| insecure(s)) {
        set(Expectation::CspImplementedWithInsecureScheme);
    }
    if script.iter().chain(&style).any(|s| s == "'unsafe-eval'") {
        set(Expectation::CspImplementedWithUnsafeEval);
    }
    if https && passive.iter().any(|s| insecure(s)) {
        set(Expectation::CspImplementedWithInsecureSchemeInPassiveContentOnly);
    }
    if style.iter().any(|s| broad_or_inline(s)) {
        set(Expectation::CspImplementedWithUnsafeInlineInStyleSrcOnly);
    }
    if default_none {
        set(Expectation::CspImplementedWithNoUnsafeDefaultSrcNone);
    } else {
        set(Expectation::CspImplementedWithNoUnsafe);
    }
    let mut result = result.expect("a result is always set");
    let pass = matches!(
        result,
        Expectation::CspImplementedWithNoUnsafe
            | Expectation::CspImplementedWithNoUnsafeDefaultSrcNone
            | Expectation::CspImplementedWithUnsafeInlineInStyleSrcOnly
            | Expectation::CspImplementedWithInsecureSchemeInPassiveContentOnly
    );
    if pass && csp.duplicate_warnings {
        result = Expectation::CspImplementedButDuplicateDirectives;
    }
    outcome(result, pass, Some(csp))
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::site;
    use super::*;
    use Expectation::*;

    /// Each policy with the result and pass that `@mdn/mdn-http-observatory` 1.4.8's
    /// `contentSecurityPolicyTest` gave for it over HTTPS.
    #[test]
    fn results_agree_with_the_observatorys_own_run() {
        let cases: [(&str, Expectation, bool); 10] = [
            ("default-src https:; object-src none", CspImplementedWithUnsafeInline, false),
            ("script-src https://a.com; script-src https://b.com", CspHeaderInvalid, false),
            ("default-src self; report-uri /a; report-uri /b", CspImplementedButDuplicateDirectives, true),
            ("script-src 'strict-dynamic' 'self'; object-src 'none'", CspHeaderInvalid, false),
            (
                "script-src 'nonce-abc' 'strict-dynamic' https: 'unsafe-inline'; object-src 'none'; default-src 'none'",
                CspImplementedWithNoUnsafeDefaultSrcNone,
                true,
            ),
            ("default-src 'self' http://cdn.example.com; object-src 'none'", CspImplementedWithInsecureScheme, false),
            ("default-src 'none'; img-src http://x.com", CspImplementedWithInsecureSchemeInPassiveContentOnly, true),
            (
                "default-src 'self'; style-src 'self' 'unsafe-eval'; object-src 'none'",
                CspImplementedWithUnsafeEval,
                false,
            ),
            ("img-s", CspHeaderInvalid, false),
            (
                "default-src 'self'; script-src 'self' 'unsafe-inline' 'sha256-abc'; object-src 'none'",
                CspImplementedWithNoUnsafe,
                true,
            ),
        ];
        for (policy, result, pass) in cases {
            let o = test(&site(&[("content-security-policy", policy)]));
            assert_eq!((o.result.result, o.result.pass), (result, pass), "{policy}");
        }
    }

    #[test]
    fn parser_quirks() {
        let p = parse(&["Default-Src 'SELF'; upgrade-insecure-requests; img-src".into()]).unwrap();
        assert_eq!(p.directives["default-src"], ["'self'"]);
        assert_eq!(p.directives["upgrade-insecure-requests"], ["'none'"]);
        assert_eq!(p.directives["img-src"], ["'none'"]);
        // A longer source after its own prefix is dropped.
        let p = parse(&["script-src https://a.com https://a.com/x".into()]).unwrap();
        assert_eq!(p.directives["script-src"], ["https://a.com"]);
        // Two policies: a source counts only when both allow it.
        let p = parse(&[
            "script-src 'self' https://a.com; object-src 'none'".into(),
            "script-src 'self'".into(),
        ])
        .unwrap();
        assert_eq!(p.directives["script-src"], ["'self'"]);
        assert_eq!(p.directives["object-src"], ["'none'"]);
        assert!(parse(&[
            "script-src https://a.com/%E0%A4%A".into(),
            "script-src https://a.com/%E0%A4%A".into()
        ])
        .is_err());
        assert_eq!(decode_uri_component("%41%c3%a9"), Ok("Aé".into()));
        assert_eq!(decode_uri_component("%+1"), Err(()));
        assert_eq!(collate("a-b", "a:"), Ordering::Less);
        assert_eq!(collate("a/b", "ab"), Ordering::Less);
    }

    #[test]
    fn two_csp_headers_are_one_value_with_a_comma() {
        // "default-src 'none', default-src 'none'": one directive with three
        // sources, so no longer default-src 'none' alone (as the Observatory says).
        let r = site(&[
            ("content-security-policy", "default-src 'none'"),
            ("content-security-policy", "default-src 'none'"),
        ]);
        assert_eq!(test(&r).result.result, CspImplementedWithNoUnsafe);
        let only_report = site(&[("content-security-policy-report-only", "default-src 'none'")]);
        assert_eq!(
            test(&only_report).result.result,
            CspNotImplementedButReportingEnabled
        );
    }
}
