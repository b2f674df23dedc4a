//! The HSTS lints: Strict-Transport-Security off, short, without subdomains or
//! preload, and preload without what hstspreload.org requires.

use super::finding::{hit, Hit, Scope, Sent};
use crate::codes::{HSTS_NO_PRELOAD, HSTS_NO_SUBDOMAINS, HSTS_OFF, HSTS_SHORT, PRELOAD_UNMET};
use crate::config::hsts::HEADER;
use crate::config::schema::SecurityOptions;
use crate::config::values::{HostPattern, Toggle};

/// The MDN HTTP Observatory's minimum `max-age`.
const SIX_MONTHS: u64 = 15_552_000;
/// hstspreload.org's minimum `max-age`.
const ONE_YEAR: u64 = 31_536_000;

pub(super) fn lint(s: &SecurityOptions, sent: &Sent, at: &Scope, out: &mut Vec<Hit>) {
    let name = HEADER;
    if sent.by_hand(name) {
        return;
    }
    if sent.security(name).is_none() {
        out.push(hit(
            &HSTS_OFF,
            "security.hsts_enabled",
            "no Strict-Transport-Security: browsers keep trying plain HTTP first, where a \
             network attacker can intercept them",
            "set hsts_enabled: true once every host of the vhost works over HTTPS",
        ));
        return;
    }
    let max_age = s.hsts_max_age.unwrap_or_default();
    if max_age < SIX_MONTHS {
        out.push(hit(
            &HSTS_SHORT,
            "security.hsts_max_age",
            format!(
                "hsts_max_age is {max_age} s, under 6 months ({SIX_MONTHS} s): browsers \
                 soon forget that the site is HTTPS-only"
            ),
            "raise hsts_max_age to 31536000 (1 year) or 63072000 (2 years)",
        ));
    }
    if s.hsts_include_subdomains != Some(true) {
        out.push(hit(
            &HSTS_NO_SUBDOMAINS,
            "security.hsts_include_subdomains",
            "HSTS leaves subdomains out (no includeSubDomains): a plain-HTTP subdomain can \
             be spoofed to set cookies for the site",
            "set hsts_include_subdomains: true once every subdomain serves HTTPS",
        ));
    }
    if s.hsts_preload != Some(true) {
        out.push(hit(
            &HSTS_NO_PRELOAD,
            "security.hsts_preload",
            "HSTS is not marked preload: a browser's first visit may still go over plain HTTP",
            "if every subdomain will stay on HTTPS for good, set hsts_preload: true and \
             submit the domain at hstspreload.org",
        ));
        return;
    }
    let unmet = preload_unmet(s, max_age, at);
    if !unmet.is_empty() {
        out.push(hit(
            &PRELOAD_UNMET,
            "security.hsts_preload",
            format!(
                "hsts_preload is on, but hstspreload.org also requires {}",
                unmet.join(", ")
            ),
            "meet those requirements before submitting the domain, or set hsts_preload: false",
        ));
    }
}

/// Whether browsers act on a hand-written value (lowercase): it has a `max-age`.
pub(super) fn acted_on(value: &str) -> bool {
    value.split(';').any(|d| {
        d.trim().strip_prefix("max-age=").is_some_and(|n| {
            !n.is_empty() && n.trim_matches('"').bytes().all(|b| b.is_ascii_digit())
        })
    })
}

/// hstspreload.org's requirements that the options miss; the redirect only
/// counts when plain HTTP is served at all.
fn preload_unmet(s: &SecurityOptions, max_age: u64, at: &Scope) -> Vec<String> {
    let mut unmet = Vec::new();
    if max_age < ONE_YEAR {
        unmet.push(format!(
            "hsts_max_age of at least {ONE_YEAR} (it is {max_age})"
        ));
    }
    if s.hsts_include_subdomains != Some(true) {
        unmet.push("hsts_include_subdomains: true".to_string());
    }
    if at.reach.plain {
        match &s.ssl_host {
            _ if s.ssl_redirect != Some(true) => {
                unmet.push("ssl_redirect: true, since plain HTTP is served".to_string());
            }
            Some(Toggle::On(HostPattern::Exact(to)))
                if at
                    .hosts
                    .iter()
                    .any(|h| !matches!(h, HostPattern::Exact(x) if x == to)) =>
            {
                unmet.push(format!(
                    "the redirect to stay on the same host (ssl_host sends every host to {to})"
                ));
            }
            _ => {}
        }
    }
    unmet
}

#[cfg(test)]
mod tests {
    use super::super::lints::testing::*;

    #[test]
    fn hsts_off_short_without_subdomains_or_preload() {
        assert_eq!(
            strict(&[("hsts_enabled", "false")]),
            [at("SECGW-W004", "security.hsts_enabled")]
        );
        assert_eq!(
            strict(&[("hsts_max_age", "86400"), ("hsts_preload", "false")]),
            [
                at("SECGW-W107", "security.hsts_max_age"),
                at("SECGW-W021", "security.hsts_preload")
            ]
        );
        assert_eq!(
            strict(&[
                ("hsts_include_subdomains", "false"),
                ("hsts_preload", "false")
            ]),
            [
                at("SECGW-W005", "security.hsts_include_subdomains"),
                at("SECGW-W021", "security.hsts_preload")
            ]
        );
        assert_eq!(
            strict(&[("hsts_preload", "false")]),
            [at("SECGW-W021", "security.hsts_preload")]
        );
        // A hand-written header is sent, and not judged.
        let by_hand = format!(
            "{LISTENERS}{}",
            app(
                &[("hsts_enabled", "false")],
                "    headers: {set: {Strict-Transport-Security: max-age=60}}\n"
            )
        );
        assert_eq!(found(&by_hand), []);
    }

    #[test]
    fn preload_needs_a_year_subdomains_and_a_same_host_redirect() {
        let all = findings(&load(&format!(
            "{LISTENERS}{}",
            app(
                &[("hsts_max_age", "31535999"), ("ssl_redirect", "false")],
                ""
            )
        )));
        let preload = all.iter().find(|f| f.code == "SECGW-E102").unwrap();
        assert_eq!(preload.severity, Severity::Error);
        assert_eq!(preload.key, "vhosts[0].security.hsts_preload");
        assert!(
            preload
                .message
                .contains("at least 31536000 (it is 31535999)"),
            "{preload:?}"
        );
        assert!(
            preload.message.contains("ssl_redirect: true"),
            "{preload:?}"
        );
        assert_eq!(
            strict(&[("ssl_host", "www.app.test")]),
            [at("SECGW-E102", "security.hsts_preload")]
        );
        assert_eq!(strict(&[("ssl_host", "app.test")]), []);
        assert_eq!(
            strict(&[("hsts_include_subdomains", "false")]),
            [
                at("SECGW-W005", "security.hsts_include_subdomains"),
                at("SECGW-E102", "security.hsts_preload")
            ]
        );
        // Without plain HTTP there is nothing to redirect.
        let tls_only =
            "listeners: [{address: \"127.0.0.1:443\", tls: {cert: c.pem, key: k.pem}}]\n";
        let yaml = format!("{tls_only}{}", app(&[("ssl_redirect", "false")], ""));
        assert_eq!(found(&yaml), []);
    }
}
