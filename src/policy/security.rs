//! The security headers a fully merged set of options produces, family by family
//! (`hsts.rs`, `csp.rs`, `framing.rs`, `referrer.rs`, `cross_origin.rs`,
//! `permissions.rs`, `plain.rs`), in a stable order.

use super::rendered::SecurityHeader;
use super::{cross_origin, csp, framing, hsts, permissions, plain, referrer};
use crate::config::schema::SecurityOptions;

/// The headers a (fully merged) set of security options produces, in a stable order.
pub fn security_headers(o: &SecurityOptions) -> Vec<SecurityHeader> {
    let mut out = Vec::new();
    csp::headers(o, &mut out);
    hsts::header(o, &mut out);
    plain::xss(o, &mut out);
    framing::header(o, &mut out);
    plain::nosniff(o, &mut out);
    referrer::header(o, &mut out);
    plain::caching(o, &mut out);
    cross_origin::headers(o, &mut out);
    permissions::header(o, &mut out);
    plain::expect_ct(o, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::rendered::OverHttp;

    fn opts(yaml: &str) -> SecurityOptions {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn header(o: &SecurityOptions, name: &str) -> Option<String> {
        security_headers(o)
            .into_iter()
            .find(|h| h.name == name)
            .map(|h| h.value)
    }

    fn over_http(o: &SecurityOptions, name: &str) -> Option<OverHttp> {
        security_headers(o)
            .into_iter()
            .find(|h| h.name == name)
            .map(|h| h.over_http)
    }

    #[test]
    fn seed_permissions_policy_is_a_structured_dictionary() {
        let o = opts(
            r#"
permissions_policy:
  camera: "'none'"
  microphone: "'self'"
  geolocation: ["'self'", "https://maps.example.com"]
  payment: "'self'"
  fullscreen: "*"
"#,
        );
        assert_eq!(
            header(&o, "Permissions-Policy").unwrap(),
            r#"camera=(), microphone=(self), geolocation=(self "https://maps.example.com"), payment=(self), fullscreen=(*)"#
        );
    }

    #[test]
    fn csp_with_allow_from_and_trusted_types() {
        let o = opts(
            r#"
csp_enabled: true
csp_policy: {default-src: ["'self'"], frame-ancestors: ["'none'"], upgrade-insecure-requests: []}
frame_options: DENY
frame_options_allow_from: https://trusted.com
trusted_types: true
trusted_types_policies: [default, escape]
"#,
        );
        assert_eq!(
            header(&o, "Content-Security-Policy").unwrap(),
            "default-src 'self'; frame-ancestors https://trusted.com; upgrade-insecure-requests; require-trusted-types-for 'script'; trusted-types default escape"
        );
        assert_eq!(header(&o, "X-Frame-Options"), None);
    }

    #[test]
    fn csp_disabled_still_carries_implied_directives() {
        let o = opts("csp_enabled: false\nframe_options_allow_from: https://trusted.com\n");
        assert_eq!(
            header(&o, "Content-Security-Policy").unwrap(),
            "frame-ancestors https://trusted.com"
        );
        assert_eq!(
            header(&opts("csp_enabled: false\n"), "Content-Security-Policy"),
            None
        );
    }

    #[test]
    fn report_only_changes_the_header_name() {
        let o = opts(
            "csp_enabled: true\ncsp_report_only: true\ncsp_policy: {default-src: [\"'self'\"]}\n",
        );
        assert_eq!(
            header(&o, "Content-Security-Policy-Report-Only").unwrap(),
            "default-src 'self'"
        );
        assert_eq!(header(&o, "Content-Security-Policy"), None);
    }

    #[test]
    fn hsts_xss_expect_ct_and_clear_site_data() {
        let o = opts(
            r#"
hsts_enabled: true
hsts_max_age: 63072000
hsts_include_subdomains: true
hsts_preload: true
xss_protection: true
xss_mode: block
expect_ct: true
expect_ct_max_age: 86400
expect_ct_enforce: true
expect_ct_report_uri: https://example.com
clear_site_data: [cache, cookies]
"#,
        );
        assert_eq!(
            header(&o, "Strict-Transport-Security").unwrap(),
            "max-age=63072000; includeSubDomains; preload"
        );
        assert_eq!(header(&o, "X-XSS-Protection").unwrap(), "1; mode=block");
        assert_eq!(
            header(&o, "Expect-CT").unwrap(),
            "max-age=86400, enforce, report-uri=\"https://example.com\""
        );
        assert_eq!(
            header(&o, "Clear-Site-Data").unwrap(),
            "\"cache\", \"cookies\""
        );
        assert_eq!(
            header(
                &opts("xss_protection: true\nxss_mode: filter\n"),
                "X-XSS-Protection"
            )
            .unwrap(),
            "1"
        );
        assert_eq!(
            header(&opts("xss_protection: false\n"), "X-XSS-Protection").unwrap(),
            "0"
        );
    }

    #[test]
    fn false_turns_a_header_off() {
        let o = opts(
            "frame_options: false\nreferrer_policy: false\ncross_origin_opener_policy: false\n",
        );
        assert_eq!(header(&o, "X-Frame-Options"), None);
        assert_eq!(header(&o, "Referrer-Policy"), None);
        assert_eq!(header(&o, "Cross-Origin-Opener-Policy"), None);
    }

    #[test]
    fn reports_go_into_every_csp_and_report_to_only_over_https() {
        let o = opts(
            r#"
csp_enabled: true
csp_policy: {default-src: ["'self'"]}
csp_report_collect: true
csp_report_path: /csp-reports
csp_report_only_policy: {script-src: ["'self'"], img-src: null}
"#,
        );
        assert_eq!(
            header(&o, "Content-Security-Policy").unwrap(),
            "default-src 'self'; report-uri /csp-reports; report-to secgw-csp"
        );
        assert_eq!(
            over_http(&o, "Content-Security-Policy"),
            Some(OverHttp::Other(
                "default-src 'self'; report-uri /csp-reports".into()
            ))
        );
        assert_eq!(
            header(&o, "Content-Security-Policy-Report-Only").unwrap(),
            "script-src 'self'; report-uri /csp-reports; report-to secgw-csp"
        );
        assert_eq!(
            header(&o, "Reporting-Endpoints").unwrap(),
            "secgw-csp=\"/csp-reports\""
        );
        assert_eq!(over_http(&o, "Reporting-Endpoints"), Some(OverHttp::Never));

        let external = opts(
            "csp_enabled: true\ncsp_policy: {default-src: [\"'self'\"]}\n\
             csp_report_collect: false\ncsp_report_uri: https://c.example/r\n",
        );
        assert_eq!(
            header(&external, "Content-Security-Policy").unwrap(),
            "default-src 'self'; report-uri https://c.example/r; report-to secgw-csp"
        );
        // Nothing to report on: no endpoint either.
        let none = opts("csp_enabled: false\ncsp_report_uri: https://c.example/r\n");
        assert_eq!(header(&none, "Reporting-Endpoints"), None);
        // Without a report target the CSP is the same over both schemes.
        let plain = opts("csp_enabled: true\ncsp_policy: {default-src: [\"'self'\"]}\n");
        assert_eq!(
            over_http(&plain, "Content-Security-Policy"),
            Some(OverHttp::Same)
        );
    }
}
