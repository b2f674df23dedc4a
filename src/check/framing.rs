//! The framing lints: X-Frame-Options not DENY, and pages nobody keeps from being
//! framed.

use super::finding::{hit, Hit, Sent};
use crate::codes::{FRAMING_ALLOWED, NO_FRAMING_RULE};
use crate::config::csp::CSP;
use crate::config::framing::HEADER;
use crate::config::schema::SecurityOptions;
use crate::config::values::on;
use crate::policy::csp::Csp;

pub(super) fn lint(s: &SecurityOptions, sent: &Sent, out: &mut Vec<Hit>) {
    let xfo = HEADER;
    if !sent.by_hand(xfo) {
        if let Some(origin) = on(&s.frame_options_allow_from) {
            out.push(hit(
                &FRAMING_ALLOWED,
                "security.frame_options_allow_from",
                format!(
                    "framing is allowed from {} (ALLOW-FROM, sent as CSP frame-ancestors), \
                     not denied",
                    origin.0
                ),
                "unless that origin must frame the pages, set frame_options_allow_from: false \
                 and frame_options: DENY",
            ));
        } else if sent.security(xfo) == Some("SAMEORIGIN") {
            out.push(hit(
                &FRAMING_ALLOWED,
                "security.frame_options",
                "X-Frame-Options is SAMEORIGIN, not DENY: any page of the site may frame another",
                "set frame_options: DENY unless the site frames its own pages",
            ));
        }
    }
    // Browsers ignore frame-ancestors in a report-only policy.
    let ancestors = Csp::from_options(s)
        .is_some_and(|c| c.name == CSP && c.sources("frame-ancestors").is_some());
    if !ancestors && sent.missing(xfo) && !sent.by_hand(CSP) {
        out.push(hit(
            &NO_FRAMING_RULE,
            "security.csp_policy.frame-ancestors",
            "neither CSP frame-ancestors nor X-Frame-Options is sent: any site may frame the \
             pages (clickjacking)",
            "set csp_policy frame-ancestors: [\"'none'\"] (or [\"'self'\"]), or \
             frame_options: DENY",
        ));
    }
}

/// Whether browsers act on a hand-written value (lowercase).
pub(super) fn acted_on(value: &str) -> bool {
    matches!(value, "deny" | "sameorigin")
}

#[cfg(test)]
mod tests {
    use super::super::lints::testing::*;

    #[test]
    fn framing_that_is_allowed_or_unguarded() {
        assert_eq!(
            strict(&[("frame_options", "SAMEORIGIN")]),
            [at("SECGW-W019", "security.frame_options")]
        );
        assert_eq!(
            strict(&[("frame_options_allow_from", "https://portal.test")]),
            [at("SECGW-W019", "security.frame_options_allow_from")]
        );
        assert_eq!(
            strict(&[
                ("frame_options", "false"),
                ("csp_policy", "{frame-ancestors: null}")
            ]),
            [at("SECGW-W105", "security.csp_policy.frame-ancestors")]
        );
        assert_eq!(strict(&[("frame_options", "false")]), []);
        assert_eq!(strict(&[("csp_policy", "{frame-ancestors: null}")]), []);
    }
}
