//! The Referrer-Policy lints: none sent, or one that leaks full URLs.

use super::finding::{hit, Hit, Sent};
use crate::codes::{LEAKY_REFERRER, NO_REFERRER_POLICY};
use crate::config::referrer::{HEADER, REFERRER_POLICIES};

/// No Referrer-Policy sent, by the options or by hand.
pub(super) fn missing(sent: &Sent, out: &mut Vec<Hit>) {
    if sent.missing(HEADER) {
        out.push(hit(
            &NO_REFERRER_POLICY,
            "security.referrer_policy",
            "no Referrer-Policy: the browser's default decides what URLs other sites see",
            "set referrer_policy: strict-origin-when-cross-origin (or same-origin)",
        ));
    }
}

/// The Referrer-Policy a browser applies: the last token it knows.
pub(super) fn leaky(sent: &Sent, out: &mut Vec<Hit>) {
    let name = HEADER;
    let (value, key) = match sent.by_hand_value(name) {
        Some(v) => (v, format!("headers.set.{name}")),
        None => match sent.security(name) {
            Some(v) => (v, "security.referrer_policy".to_string()),
            None => return,
        },
    };
    let applied = value
        .split(',')
        .map(|t| t.trim().to_ascii_lowercase())
        .rfind(|t| REFERRER_POLICIES.contains(&t.as_str()));
    if let Some(leaky @ ("unsafe-url" | "no-referrer-when-downgrade")) = applied.as_deref() {
        out.push(hit(
            &LEAKY_REFERRER,
            key,
            format!(
                "Referrer-Policy `{leaky}` sends the full URL (path and query) to other \
                 origins{}",
                if leaky == "unsafe-url" {
                    ", even over plain HTTP"
                } else {
                    ""
                }
            ),
            "use strict-origin-when-cross-origin (the browsers' default) or stricter",
        ));
    }
}

/// Whether browsers act on a hand-written value (lowercase): a token they know.
pub(super) fn acted_on(value: &str) -> bool {
    value
        .split(',')
        .any(|t| REFERRER_POLICIES.contains(&t.trim()))
}
