//! The Observatory's result identifiers and the score modifier of each
//! (`src/types.js` and `src/grader/charts.js` of `@mdn/mdn-http-observatory` 1.4.8).

use strum::IntoStaticStr;

/// One test's result. The kebab-case names are the Observatory's own identifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, IntoStaticStr)]
#[strum(serialize_all = "kebab-case")]
pub enum Expectation {
    CspImplementedWithNoUnsafe,
    CspImplementedWithNoUnsafeDefaultSrcNone,
    CspImplementedWithUnsafeInlineInStyleSrcOnly,
    CspImplementedWithInsecureSchemeInPassiveContentOnly,
    CspImplementedWithUnsafeInline,
    CspImplementedWithUnsafeEval,
    CspImplementedWithInsecureScheme,
    CspHeaderInvalid,
    CspNotImplemented,
    CspNotImplementedButReportingEnabled,
    CspImplementedButDuplicateDirectives,

    SriImplementedAndAllScriptsLoadedSecurely,
    SriImplementedAndExternalScriptsLoadedSecurely,
    SriImplementedButExternalScriptsNotLoadedSecurely,
    SriNotImplementedAndExternalScriptsNotLoadedSecurely,
    SriNotImplementedButAllScriptsLoadedFromSecureOrigin,
    SriNotImplementedButExternalScriptsLoadedSecurely,
    SriNotImplementedButNoScriptsLoaded,
    SriNotImplementedResponseNotHtml,
    HtmlNotParseable,

    HstsHeaderInvalid,
    HstsImplementedMaxAgeAtLeastSixMonths,
    HstsImplementedMaxAgeLessThanSixMonths,
    HstsInvalidCert,
    HstsNotImplementedNoHttps,
    HstsNotImplemented,
    HstsPreloaded,

    CookiesAnticsrfWithoutSamesiteFlag,
    CookiesNotFound,
    CookiesSamesiteFlagInvalid,
    CookiesSecureWithHttponlySessionsAndSamesite,
    CookiesSecureWithHttponlySessions,
    CookiesSessionWithoutHttponlyFlag,
    CookiesSessionWithoutSecureFlagButProtectedByHsts,
    CookiesSessionWithoutSecureFlag,
    CookiesWithoutSecureFlagButProtectedByHsts,
    CookiesWithoutSecureFlag,

    XFrameOptionsAllowFromOrigin,
    XFrameOptionsHeaderInvalid,
    XFrameOptionsImplementedViaCsp,
    XFrameOptionsNotImplemented,
    XFrameOptionsSameoriginOrDeny,

    RedirectionToHttps,
    RedirectionNotToHttps,
    RedirectionNotToHttpsOnInitialRedirection,
    RedirectionMissing,
    RedirectionNotNeededNoHttp,
    RedirectionOffHostFromHttp,
    RedirectionInvalidCert,
    RedirectionAllRedirectsPreloaded,

    ReferrerPolicyPrivate,
    ReferrerPolicyUnsafe,
    ReferrerPolicyNotImplemented,
    ReferrerPolicyHeaderInvalid,

    XContentTypeOptionsNosniff,
    XContentTypeOptionsNotImplemented,
    XContentTypeOptionsHeaderInvalid,

    CrossOriginResourceSharingNotImplemented,
    CrossOriginResourceSharingImplementedWithPublicAccess,
    CrossOriginResourceSharingImplementedWithRestrictedAccess,
    CrossOriginResourceSharingImplementedWithUniversalAccess,

    CorpNotImplemented,
    CorpImplementedWithSameOrigin,
    CorpImplementedWithSameSite,
    CorpImplementedWithCrossOrigin,
    CorpHeaderInvalid,

    // Scored by the Observatory's later versions, not by 1.4.8: reported as extras.
    CoopNotImplemented,
    CoopImplementedWithSameOrigin,
    CoopImplementedWithSameOriginAllowPopups,
    CoopImplementedWithNoopenerAllowPopups,
    CoopImplementedWithUnsafeNone,
    CoopHeaderInvalid,
    CoepNotImplemented,
    CoepImplementedWithRequireCorp,
    CoepImplementedWithCredentialless,
    CoepImplementedWithUnsafeNone,
    CoepHeaderInvalid,
}

impl Expectation {
    pub fn name(self) -> &'static str {
        self.into()
    }

    /// The score table's modifier.
    pub fn modifier(self) -> i32 {
        use Expectation::*;
        match self {
            CspImplementedWithNoUnsafeDefaultSrcNone
            | CorpImplementedWithSameOrigin
            | CorpImplementedWithSameSite
            | CoopImplementedWithSameOrigin
            | CoopImplementedWithSameOriginAllowPopups
            | CoopImplementedWithNoopenerAllowPopups
            | CoepImplementedWithRequireCorp
            | CoepImplementedWithCredentialless => 10,
            CspImplementedWithNoUnsafe
            | CookiesSecureWithHttponlySessionsAndSamesite
            | ReferrerPolicyPrivate
            | HstsPreloaded
            | SriImplementedAndAllScriptsLoadedSecurely
            | SriImplementedAndExternalScriptsLoadedSecurely
            | XFrameOptionsImplementedViaCsp => 5,
            CookiesWithoutSecureFlagButProtectedByHsts
            | RedirectionOffHostFromHttp
            | ReferrerPolicyUnsafe
            | ReferrerPolicyHeaderInvalid
            | SriNotImplementedButExternalScriptsLoadedSecurely
            | XContentTypeOptionsNotImplemented
            | XContentTypeOptionsHeaderInvalid
            | CorpHeaderInvalid
            | CoopHeaderInvalid
            | CoepHeaderInvalid => -5,
            CspImplementedWithInsecureSchemeInPassiveContentOnly
            | CspImplementedWithUnsafeEval
            | CookiesSessionWithoutSecureFlagButProtectedByHsts
            | RedirectionNotToHttpsOnInitialRedirection
            | HstsImplementedMaxAgeLessThanSixMonths => -10,
            CspImplementedWithUnsafeInline
            | CspImplementedWithInsecureScheme
            | CookiesWithoutSecureFlag
            | CookiesSamesiteFlagInvalid
            | CookiesAnticsrfWithoutSamesiteFlag
            | RedirectionNotToHttps
            | RedirectionMissing
            | RedirectionInvalidCert
            | HstsNotImplemented
            | HstsHeaderInvalid
            | HstsNotImplementedNoHttps
            | HstsInvalidCert
            | SriImplementedButExternalScriptsNotLoadedSecurely
            | XFrameOptionsNotImplemented
            | XFrameOptionsHeaderInvalid
            | HtmlNotParseable => -20,
            CspHeaderInvalid | CspNotImplemented | CspNotImplementedButReportingEnabled => -25,
            CookiesSessionWithoutHttponlyFlag => -30,
            CookiesSessionWithoutSecureFlag => -40,
            CrossOriginResourceSharingImplementedWithUniversalAccess
            | SriNotImplementedAndExternalScriptsNotLoadedSecurely => -50,
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Expectation::*;

    #[test]
    fn names_are_the_observatorys_identifiers() {
        let names: Vec<&str> = [
            CspImplementedWithNoUnsafeDefaultSrcNone,
            CspImplementedWithUnsafeInlineInStyleSrcOnly,
            SriNotImplementedButAllScriptsLoadedFromSecureOrigin,
            HstsImplementedMaxAgeAtLeastSixMonths,
            CookiesAnticsrfWithoutSamesiteFlag,
            CookiesSecureWithHttponlySessionsAndSamesite,
            XFrameOptionsSameoriginOrDeny,
            XContentTypeOptionsNosniff,
            CrossOriginResourceSharingImplementedWithRestrictedAccess,
            CorpNotImplemented,
            CoopImplementedWithSameOriginAllowPopups,
            HtmlNotParseable,
        ]
        .iter()
        .map(|e| e.name())
        .collect();
        assert_eq!(
            names,
            [
                "csp-implemented-with-no-unsafe-default-src-none",
                "csp-implemented-with-unsafe-inline-in-style-src-only",
                "sri-not-implemented-but-all-scripts-loaded-from-secure-origin",
                "hsts-implemented-max-age-at-least-six-months",
                "cookies-anticsrf-without-samesite-flag",
                "cookies-secure-with-httponly-sessions-and-samesite",
                "x-frame-options-sameorigin-or-deny",
                "x-content-type-options-nosniff",
                "cross-origin-resource-sharing-implemented-with-restricted-access",
                "corp-not-implemented",
                "coop-implemented-with-same-origin-allow-popups",
                "html-not-parseable",
            ]
        );
    }

    #[test]
    fn modifiers_follow_the_score_table() {
        assert_eq!(CspNotImplementedButReportingEnabled.modifier(), -25);
        assert_eq!(CspImplementedWithUnsafeInlineInStyleSrcOnly.modifier(), 0);
        assert_eq!(CookiesSessionWithoutSecureFlag.modifier(), -40);
        assert_eq!(HstsImplementedMaxAgeLessThanSixMonths.modifier(), -10);
        assert_eq!(CorpImplementedWithSameOrigin.modifier(), 10);
        assert_eq!(CorpImplementedWithCrossOrigin.modifier(), 0);
        assert_eq!(RedirectionToHttps.modifier(), 0);
        assert_eq!(ReferrerPolicyNotImplemented.modifier(), 0);
        assert_eq!(XFrameOptionsAllowFromOrigin.modifier(), 0);
    }
}
