//! The lints of the one-value headers: nosniff missing, the XSS auditor turned on,
//! and the obsolete Expect-CT.

use super::finding::{hit, Hit, Sent};
use crate::codes::{EXPECT_CT, NO_NOSNIFF, XSS_AUDITOR};
use crate::config::plain::{EXPECT_CT as EXPECT_CT_HEADER, NOSNIFF, XSS};

/// X-Content-Type-Options, judged by whether it is sent.
pub(super) fn nosniff(sent: &Sent, out: &mut Vec<Hit>) {
    if sent.missing(NOSNIFF) {
        out.push(hit(
            &NO_NOSNIFF,
            "security.content_type_options",
            "no X-Content-Type-Options: nosniff: browsers may run a response as a script or \
             stylesheet whatever its Content-Type",
            "set content_type_options: true",
        ));
    }
}

/// The obsolete headers, judged by what the options send.
pub(super) fn obsolete(sent: &Sent, out: &mut Vec<Hit>) {
    if let Some(value) = sent.security(XSS).filter(|v| *v != "0") {
        out.push(hit(
            &XSS_AUDITOR,
            "security.xss_protection",
            format!(
                "X-XSS-Protection is `{value}`: the XSS auditor it turns on is gone from \
                 browsers, and in those that had it, it let attackers disable page scripts"
            ),
            "set xss_protection: false (sends 0), or xss_mode: false to send none",
        ));
    }
    if let Some(value) = sent.security(EXPECT_CT_HEADER) {
        out.push(hit(
            &EXPECT_CT,
            "security.expect_ct",
            format!(
                "Expect-CT `{value}` is sent: browsers dropped it, and enforce Certificate \
                 Transparency without it"
            ),
            "set expect_ct: false",
        ));
    }
}

/// Whether browsers act on a hand-written X-Content-Type-Options (lowercase).
pub(super) fn nosniff_acted_on(value: &str) -> bool {
    value == "nosniff"
}

#[cfg(test)]
mod tests {
    use super::super::lints::testing::*;

    #[test]
    fn plain_headers_missing_or_obsolete() {
        assert_eq!(
            strict(&[("content_type_options", "false")]),
            [at("SECGW-W006", "security.content_type_options")]
        );
        assert_eq!(
            strict(&[("referrer_policy", "false")]),
            [at("SECGW-W022", "security.referrer_policy")]
        );
        assert_eq!(
            strict(&[("xss_protection", "true")]),
            [at("SECGW-W109", "security.xss_protection")]
        );
        assert_eq!(
            strict(&[("xss_protection", "true"), ("xss_mode", "false")]),
            []
        );
        let all = findings(&load(&format!(
            "{LISTENERS}{}",
            app(&[("expect_ct", "true")], "")
        )));
        assert_eq!(
            all.iter().map(|f| (f.code, f.severity)).collect::<Vec<_>>(),
            [("SECGW-W110", Severity::Info)]
        );
    }
}
