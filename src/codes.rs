//! The codes of `pingora-secgw check`: each code's name, severity and meaning.
//!
//! A leaf: `config` validates `check_ignore` against [`CODES`] and `check` reports
//! them, so this module imports neither.

use serde::Serialize;

/// How serious a finding is; `--fail-on` picks the lowest that fails the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum, strum::IntoStaticStr)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Info,
}

impl Severity {
    /// Whether this is at or above `threshold` (info < warning < error).
    pub fn reaches(self, threshold: Severity) -> bool {
        self.rank() >= threshold.rank()
    }

    fn rank(self) -> u8 {
        match self {
            Severity::Info => 0,
            Severity::Warning => 1,
            Severity::Error => 2,
        }
    }
}

/// A check code: its name, its severity and what it finds.
pub type Code = (&'static str, Severity, &'static str);

pub const HSTS_OFF: Code = (
    "SECGW-W004",
    Severity::Warning,
    "HSTS is off (no Strict-Transport-Security)",
);
pub const HSTS_NO_SUBDOMAINS: Code = (
    "SECGW-W005",
    Severity::Warning,
    "HSTS without includeSubDomains",
);
pub const NO_NOSNIFF: Code = (
    "SECGW-W006",
    Severity::Warning,
    "no X-Content-Type-Options: nosniff",
);
pub const NO_REDIRECT: Code = (
    "SECGW-W008",
    Severity::Warning,
    "plain HTTP is served, not redirected to HTTPS (ssl_redirect off)",
);
pub const FRAMING_ALLOWED: Code = (
    "SECGW-W019",
    Severity::Warning,
    "X-Frame-Options is not DENY (SAMEORIGIN, or ALLOW-FROM through frame_options_allow_from)",
);
pub const HSTS_NO_PRELOAD: Code = ("SECGW-W021", Severity::Info, "HSTS without preload");
pub const NO_REFERRER_POLICY: Code = ("SECGW-W022", Severity::Warning, "no Referrer-Policy");
pub const NO_CSP: Code = (
    "SECGW-W101",
    Severity::Warning,
    "no Content-Security-Policy is enforced",
);
pub const CSP_REPORT_ONLY: Code = (
    "SECGW-W102",
    Severity::Warning,
    "the only CSP is report-only: nothing is enforced",
);
pub const UNSAFE_SCRIPTS: Code = (
    "SECGW-W103",
    Severity::Warning,
    "'unsafe-inline' without a nonce or hash, or 'unsafe-eval', in the enforced script-src",
);
pub const OBJECTS_ALLOWED: Code = (
    "SECGW-W104",
    Severity::Warning,
    "the enforced CSP's object-src (or default-src) is not 'none'",
);
pub const NO_FRAMING_RULE: Code = (
    "SECGW-W105",
    Severity::Warning,
    "neither CSP frame-ancestors (enforced) nor X-Frame-Options",
);
pub const HTTP_SOURCES: Code = (
    "SECGW-W106",
    Severity::Warning,
    "plain-HTTP sources (http: or http://...) in a CSP directive",
);
pub const HSTS_SHORT: Code = (
    "SECGW-W107",
    Severity::Warning,
    "HSTS max-age under 6 months (15552000 s)",
);
pub const CONFLICT_APPEND: Code = (
    "SECGW-W108",
    Severity::Warning,
    "conflict: append on a header the security options manage",
);
pub const XSS_AUDITOR: Code = (
    "SECGW-W109",
    Severity::Warning,
    "X-XSS-Protection turns the obsolete XSS auditor on (not 0)",
);
pub const EXPECT_CT: Code = (
    "SECGW-W110",
    Severity::Info,
    "the obsolete Expect-CT header is sent",
);
pub const LOOSE_DEFAULTS: Code = (
    "SECGW-W111",
    Severity::Warning,
    "a CSP directive from the built-in defaults allows more than the policy's own default-src",
);
pub const LEAKY_REFERRER: Code = (
    "SECGW-W112",
    Severity::Warning,
    "Referrer-Policy unsafe-url or no-referrer-when-downgrade: full URLs go to other origins",
);
pub const INVALID_MANAGED_VALUE: Code = (
    "SECGW-W113",
    Severity::Warning,
    "headers.set gives a security header a value browsers ignore",
);
pub const REDIRECT_OFF_HOST: Code = (
    "SECGW-W114",
    Severity::Warning,
    "ssl_host sends plain-HTTP requests to another host, so HSTS is never set for this one",
);
pub const FILTER_OVERRIDES_POLICY: Code = (
    "SECGW-W115",
    Severity::Warning,
    "an HTTPRoute filter sets a header the security policy sets too: the filter's value is sent",
);
pub const SCRIPTS_FROM_ANYWHERE: Code = (
    "SECGW-E101",
    Severity::Error,
    "the enforced script-src (or default-src) allows any host: `*`, or neither directive",
);
pub const PRELOAD_UNMET: Code = (
    "SECGW-E102",
    Severity::Error,
    "HSTS preload without a 1-year max-age, includeSubDomains and a same-host redirect",
);
pub const TRUST_EVERYONE: Code = (
    "SECGW-E103",
    Severity::Error,
    "trusted_proxies trusts every address (0.0.0.0/0 or ::/0)",
);
pub const CORS_ANY_WITH_COOKIES: Code = (
    "SECGW-E104",
    Severity::Error,
    "CORS allows any origin (`*`) where responses set cookies",
);
pub const REDIRECT_LOOP: Code = (
    "SECGW-E105",
    Severity::Error,
    "ssl_redirect with no TLS listener and no trusted proxy: every request is redirected again",
);
pub const INGRESS_REFUSED: Code = (
    "SECGW-E106",
    Severity::Error,
    "an Ingress, or part of it, is not served: a field the gateway cannot honour (`check --kubeconfig`)",
);

pub const GATEWAY_REFUSED: Code = (
    "SECGW-E107",
    Severity::Error,
    "a Gateway API object, or part of it, is not served as written (`check --kubeconfig`)",
);

pub const POLICY_REFUSED: Code = (
    "SECGW-E108",
    Severity::Error,
    "a SecurityPolicy is not accepted on one of its targets (`check --kubeconfig` or `--manifests`)",
);

/// Every code `check` reports, for the docs and for `check_ignore`.
pub const CODES: &[Code] = &[
    HSTS_OFF,
    HSTS_NO_SUBDOMAINS,
    NO_NOSNIFF,
    NO_REDIRECT,
    FRAMING_ALLOWED,
    HSTS_NO_PRELOAD,
    NO_REFERRER_POLICY,
    NO_CSP,
    CSP_REPORT_ONLY,
    UNSAFE_SCRIPTS,
    OBJECTS_ALLOWED,
    NO_FRAMING_RULE,
    HTTP_SOURCES,
    HSTS_SHORT,
    CONFLICT_APPEND,
    XSS_AUDITOR,
    EXPECT_CT,
    LOOSE_DEFAULTS,
    LEAKY_REFERRER,
    INVALID_MANAGED_VALUE,
    REDIRECT_OFF_HOST,
    FILTER_OVERRIDES_POLICY,
    SCRIPTS_FROM_ANYWHERE,
    PRELOAD_UNMET,
    TRUST_EVERYONE,
    CORS_ANY_WITH_COOKIES,
    REDIRECT_LOOP,
    INGRESS_REFUSED,
    GATEWAY_REFUSED,
    POLICY_REFUSED,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_well_formed() {
        for (i, (code, severity, about)) in CODES.iter().enumerate() {
            assert!(!CODES[..i].iter().any(|c| c.0 == *code), "{code} twice");
            let letter = if *severity == Severity::Error {
                'E'
            } else {
                'W'
            };
            assert!(
                code.starts_with(&format!("SECGW-{letter}")) && code.len() == 10,
                "{code}"
            );
            assert!(!about.is_empty());
        }
        assert!(Severity::Error.reaches(Severity::Warning));
        assert!(Severity::Info.reaches(Severity::Info));
        assert!(!Severity::Warning.reaches(Severity::Error));
    }
}
