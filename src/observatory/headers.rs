//! The single-header tests: CORS, Referrer-Policy, HSTS, X-Content-Type-Options,
//! X-Frame-Options, CORP, and (reported, not scored by 1.4.8) COOP and COEP.

use super::csp::CspOutcome;
use super::{Expectation, Response, Retrieval, TestResult};

/// `value.slice(0, n)` (UTF-16 units in JavaScript; characters here).
fn head(value: &str, n: usize) -> &str {
    value
        .char_indices()
        .nth(n)
        .map_or(value, |(i, _)| &value[..i])
}

/// `getFirstHttpHeader` with JavaScript's truthiness: an empty value is absent.
fn first(r: Option<&Response>, name: &str) -> Option<String> {
    r?.header(name).filter(|v| !v.is_empty())
}

/// `crossOriginResourceSharingTest`, on the answer to the CORS probe.
pub fn cors(r: &Retrieval) -> TestResult {
    use Expectation::*;
    let result = match first(r.cors.as_ref(), "access-control-allow-origin") {
        None => CrossOriginResourceSharingNotImplemented,
        Some(acao) if head(&acao, 256).trim().to_lowercase() == "*" => {
            CrossOriginResourceSharingImplementedWithPublicAccess
        }
        // 1.4.8 compares with the probe's Origin read from a property Node's request
        // does not have, so the credentialed-echo result (-50) never fires; `audit`
        // reports that case among its extra checks instead.
        Some(_) => CrossOriginResourceSharingImplementedWithRestrictedAccess,
    };
    TestResult::new("cross-origin-resource-sharing", result, true)
}

const PRIVATE_REFERRERS: [&str; 4] = [
    "no-referrer",
    "same-origin",
    "strict-origin",
    "strict-origin-when-cross-origin",
];
const UNSAFE_REFERRERS: [&str; 4] = [
    "origin",
    "origin-when-cross-origin",
    "unsafe-url",
    "no-referrer-when-downgrade",
];

/// `referrerPolicyTest`: the header, then a `<meta name="referrer">`; the last
/// valid token decides.
pub fn referrer_policy(r: &Retrieval) -> TestResult {
    use Expectation::*;
    const NAME: &str = "referrer-policy";
    let Some(auto) = r.auto() else {
        return TestResult::new(NAME, ReferrerPolicyNotImplemented, false);
    };
    let mut values: Vec<String> = auto.header("referrer-policy").into_iter().collect();
    if r.content_type_is_html() {
        if let Some(meta) = r.page.as_ref().and_then(|p| p.meta_referrer.clone()) {
            values.push(meta);
        }
    }
    if values.is_empty() {
        return TestResult::new(NAME, ReferrerPolicyNotImplemented, true);
    }
    let data = values.join(", ");
    let policy = data
        .split(',')
        .map(|t| t.trim().to_lowercase())
        .rfind(|t| {
            PRIVATE_REFERRERS.contains(&t.as_str()) || UNSAFE_REFERRERS.contains(&t.as_str())
        })
        .unwrap_or_default();
    let result = if PRIVATE_REFERRERS.contains(&policy.as_str()) {
        ReferrerPolicyPrivate
    } else if UNSAFE_REFERRERS.contains(&policy.as_str()) {
        ReferrerPolicyUnsafe
    } else {
        ReferrerPolicyHeaderInvalid
    };
    TestResult::new(NAME, result, result == ReferrerPolicyPrivate)
}

/// 15768000 is six months; the Observatory accepts 15552000 (180 days).
const SIX_MONTHS: f64 = 15_552_000.0;

/// `parseInt(text, 10)`: leading whitespace, a sign and the digits that follow;
/// `None` is `NaN`.
fn parse_int(text: &str) -> Option<f64> {
    let t = text.trim_start();
    let (sign, digits) = match t.as_bytes().first() {
        Some(b'-') => (-1.0, &t[1..]),
        Some(b'+') => (1.0, &t[1..]),
        _ => (1.0, t),
    };
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    let n: f64 = digits[..end].parse().ok()?;
    Some(sign * n)
}

/// What the HSTS header says, as the Observatory reads it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HstsValue {
    /// `NaN` (a `max-age=` without digits) is `None` inside `Some`.
    pub max_age: Option<Option<f64>>,
    pub include_subdomains: bool,
    pub preload: bool,
}

/// Parses an HSTS value; `None` when the Observatory calls it invalid (repeated,
/// or no `max-age`).
pub fn parse_hsts(value: &str) -> Option<HstsValue> {
    let data = head(value, 1024);
    if data.contains(',') {
        return None;
    }
    let mut v = HstsValue {
        max_age: None,
        include_subdomains: false,
        preload: false,
    };
    for p in data.split(';').map(|p| p.trim().to_lowercase()) {
        if let Some(age) = p.strip_prefix("max-age=") {
            v.max_age = Some(parse_int(head(age, 120)));
        } else if p == "includesubdomains" {
            v.include_subdomains = true;
        } else if p == "preload" {
            v.preload = true;
        }
    }
    v.max_age.is_some().then_some(v)
}

/// `strictTransportSecurityTest`, on the HTTPS chain's last response. The preload
/// list is not consulted (the npm package ships it empty).
pub fn hsts(r: &Retrieval) -> TestResult {
    use Expectation::*;
    let result = match &r.https {
        None => HstsNotImplementedNoHttps,
        Some(resp) if !resp.verified => HstsInvalidCert,
        Some(resp) => match resp.header("strict-transport-security") {
            None => HstsNotImplemented,
            Some(value) => match parse_hsts(&value) {
                None => HstsHeaderInvalid,
                // NaN is never less than six months.
                Some(HstsValue {
                    max_age: Some(Some(age)),
                    ..
                }) if age < SIX_MONTHS => HstsImplementedMaxAgeLessThanSixMonths,
                Some(_) => HstsImplementedMaxAgeAtLeastSixMonths,
            },
        },
    };
    TestResult::new(
        "strict-transport-security",
        result,
        result == HstsImplementedMaxAgeAtLeastSixMonths,
    )
}

/// `xContentTypeOptionsTest`.
pub fn x_content_type_options(r: &Retrieval) -> TestResult {
    use Expectation::*;
    let result = match first(r.auto(), "x-content-type-options") {
        None => XContentTypeOptionsNotImplemented,
        Some(v) if head(&v, 256).trim().eq_ignore_ascii_case("nosniff") => {
            XContentTypeOptionsNosniff
        }
        Some(_) => XContentTypeOptionsHeaderInvalid,
    };
    TestResult::new(
        "x-content-type-options",
        result,
        result == XContentTypeOptionsNosniff,
    )
}

/// `xFrameOptionsTest`: a CSP `frame-ancestors` (any value) wins over the header.
pub fn x_frame_options(r: &Retrieval, csp: &CspOutcome) -> TestResult {
    use Expectation::*;
    let mut result = match first(r.auto(), "x-frame-options") {
        None => XFrameOptionsNotImplemented,
        Some(v) => {
            let xfo = head(&v, 1024).trim().to_lowercase();
            if xfo == "deny" || xfo == "sameorigin" {
                XFrameOptionsSameoriginOrDeny
            } else if xfo.starts_with("allow-from") {
                XFrameOptionsAllowFromOrigin
            } else {
                XFrameOptionsHeaderInvalid
            }
        }
    };
    if r.auto().is_some()
        && csp
            .data
            .as_ref()
            .is_some_and(|d| d.contains_key("frame-ancestors"))
    {
        result = XFrameOptionsImplementedViaCsp;
    }
    let pass = matches!(
        result,
        XFrameOptionsAllowFromOrigin
            | XFrameOptionsSameoriginOrDeny
            | XFrameOptionsImplementedViaCsp
    );
    TestResult::new("x-frame-options", result, pass)
}

/// `crossOriginResourcePolicyTest`.
pub fn corp(r: &Retrieval) -> TestResult {
    use Expectation::*;
    let result = match first(r.auto(), "cross-origin-resource-policy")
        .map(|v| head(&v, 256).trim().to_lowercase())
    {
        None => CorpNotImplemented,
        Some(v) if v.is_empty() => CorpNotImplemented,
        Some(v) => match v.as_str() {
            "same-site" => CorpImplementedWithSameSite,
            "same-origin" => CorpImplementedWithSameOrigin,
            "cross-origin" => CorpImplementedWithCrossOrigin,
            _ => CorpHeaderInvalid,
        },
    };
    TestResult::new(
        "cross-origin-resource-policy",
        result,
        result != CorpHeaderInvalid,
    )
}

/// A structured-field token, as the later Observatory reads COOP and COEP.
fn sf_token(value: &str) -> Option<String> {
    let item: sfv::Item = sfv::Parser::new(value).parse().ok()?;
    match item.bare_item {
        sfv::BareItem::Token(t) => Some(t.as_str().to_string()),
        _ => None,
    }
}

/// A header the later Observatory reads as one structured-field token:
/// `Ok(None)` when absent, `Err(())` when sent twice or not a token.
fn single_token(r: &Retrieval, name: &str) -> Result<Option<String>, ()> {
    let lines: Vec<&str> = r
        .auto()
        .map(|a| a.lines(name).collect())
        .unwrap_or_default();
    match lines.as_slice() {
        [] => Ok(None),
        [one] => sf_token(head(one, 1024).trim()).map(Some).ok_or(()),
        _ => Err(()),
    }
}

/// COOP as the Observatory's later versions test it (not part of the 1.4.8 score).
pub fn coop(r: &Retrieval) -> TestResult {
    use Expectation::*;
    let result = match single_token(r, "cross-origin-opener-policy")
        .as_ref()
        .map(|t| t.as_deref())
    {
        Ok(None) => CoopNotImplemented,
        Ok(Some("same-origin")) => CoopImplementedWithSameOrigin,
        Ok(Some("same-origin-allow-popups")) => CoopImplementedWithSameOriginAllowPopups,
        Ok(Some("noopener-allow-popups")) => CoopImplementedWithNoopenerAllowPopups,
        Ok(Some("unsafe-none")) => CoopImplementedWithUnsafeNone,
        _ => CoopHeaderInvalid,
    };
    TestResult::new(
        "cross-origin-opener-policy",
        result,
        result != CoopHeaderInvalid,
    )
}

/// COEP as the Observatory's later versions test it (not part of the 1.4.8 score).
pub fn coep(r: &Retrieval) -> TestResult {
    use Expectation::*;
    let result = match single_token(r, "cross-origin-embedder-policy")
        .as_ref()
        .map(|t| t.as_deref())
    {
        Ok(None) => CoepNotImplemented,
        Ok(Some("require-corp")) => CoepImplementedWithRequireCorp,
        Ok(Some("credentialless")) => CoepImplementedWithCredentialless,
        Ok(Some("unsafe-none")) => CoepImplementedWithUnsafeNone,
        _ => CoepHeaderInvalid,
    };
    TestResult::new(
        "cross-origin-embedder-policy",
        result,
        result != CoepHeaderInvalid,
    )
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::site;
    use super::*;

    #[test]
    fn hsts_reads_max_age_like_parse_int() {
        let age = |v: &str| parse_hsts(v).map(|h| h.max_age);
        assert_eq!(age("max-age=31536000"), Some(Some(Some(31_536_000.0))));
        assert_eq!(age("max-age=12abc; preload"), Some(Some(Some(12.0))));
        assert_eq!(age("max-age=\"300\""), Some(Some(None)));
        assert_eq!(age("max-age=1, max-age=2"), None);
        assert_eq!(age("includeSubDomains"), None);
        let h = parse_hsts("Max-Age=5; INCLUDESUBDOMAINS; preload").unwrap();
        assert!(h.include_subdomains && h.preload);
    }

    #[test]
    fn hsts_results() {
        let result = |v: &str| hsts(&site(&[("strict-transport-security", v)])).result;
        assert_eq!(
            result("max-age=15552000"),
            Expectation::HstsImplementedMaxAgeAtLeastSixMonths
        );
        assert_eq!(
            result("max-age=15551999"),
            Expectation::HstsImplementedMaxAgeLessThanSixMonths
        );
        assert_eq!(
            result("max-age=x"),
            Expectation::HstsImplementedMaxAgeAtLeastSixMonths
        );
        assert_eq!(result(""), Expectation::HstsHeaderInvalid);
        let twice = site(&[
            ("strict-transport-security", "max-age=31536000"),
            ("strict-transport-security", "max-age=31536000"),
        ]);
        assert_eq!(hsts(&twice).result, Expectation::HstsHeaderInvalid);
        let mut unverified = site(&[("strict-transport-security", "max-age=31536000")]);
        unverified.https.as_mut().unwrap().verified = false;
        assert_eq!(hsts(&unverified).result, Expectation::HstsInvalidCert);
    }

    #[test]
    fn referrer_takes_the_last_valid_token() {
        let result = |v: &str| referrer_policy(&site(&[("referrer-policy", v)])).result;
        assert_eq!(
            result("unsafe-url, bogus, no-referrer"),
            Expectation::ReferrerPolicyPrivate
        );
        assert_eq!(
            result("no-referrer, Unsafe-URL ,bogus"),
            Expectation::ReferrerPolicyUnsafe
        );
        assert_eq!(result("bogus"), Expectation::ReferrerPolicyHeaderInvalid);
        let none = referrer_policy(&site(&[]));
        assert_eq!(
            (none.result, none.pass),
            (Expectation::ReferrerPolicyNotImplemented, true)
        );
    }

    #[test]
    fn nosniff_frame_options_and_corp() {
        let r = site(&[
            ("x-content-type-options", " NoSniff "),
            ("x-frame-options", "ALLOW-FROM https://a.example"),
            ("cross-origin-resource-policy", "same-site"),
        ]);
        assert_eq!(
            x_content_type_options(&r).result,
            Expectation::XContentTypeOptionsNosniff
        );
        let no_csp = super::super::csp::test(&r);
        assert_eq!(
            x_frame_options(&r, &no_csp).result,
            Expectation::XFrameOptionsAllowFromOrigin
        );
        assert_eq!(corp(&r).result, Expectation::CorpImplementedWithSameSite);
        let twice = site(&[
            ("x-content-type-options", "nosniff"),
            ("x-content-type-options", "nosniff"),
        ]);
        assert_eq!(
            x_content_type_options(&twice).result,
            Expectation::XContentTypeOptionsHeaderInvalid
        );
        let empty = site(&[("x-frame-options", "")]);
        let csp = super::super::csp::test(&empty);
        assert_eq!(
            x_frame_options(&empty, &csp).result,
            Expectation::XFrameOptionsNotImplemented
        );
    }

    #[test]
    fn coop_and_coep_read_tokens() {
        let r = site(&[
            ("cross-origin-opener-policy", "same-origin; report-to=\"x\""),
            ("cross-origin-embedder-policy", "\"require-corp\""),
        ]);
        assert_eq!(coop(&r).result, Expectation::CoopImplementedWithSameOrigin);
        assert_eq!(coep(&r).result, Expectation::CoepHeaderInvalid);
    }
}
