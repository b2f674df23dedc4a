//! `csp_nonce`: what a route needs to give each HTML response its own nonce,
//! compiled once: each CSP the route sends, with holes for the nonce, and the
//! source lists that decide which scripts and styles get it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use http::{HeaderName, HeaderValue};
use prometheus::IntCounter;
use strum::EnumCount;

use super::csp::{report_url, Csp};
use super::csp_sources::SourceList;
use crate::config::schema::{ConflictMode, PolicyLayer, SecurityOptions};
use crate::config::KeyError;
use crate::metrics::{CacheResult, Metrics, NonceSkip, RouteLabels};

/// Everything a route does to give its HTML responses a nonce.
#[derive(Debug)]
pub struct NoncePlan {
    /// The CSPs the nonce goes into: the enforced (or report-only) policy and
    /// the `csp_report_only_policy` beside it.
    csps: Vec<NoncedCsp>,
    pub filter: Arc<NonceFilter>,
    pub counters: NonceCounters,
    /// `csp_nonce_cache`: its public static pages are nonced from templates.
    pub cache: bool,
    /// Tells this route's templates from every other's, across reloads too.
    pub id: u64,
}

/// The next [`NoncePlan::id`].
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// One CSP header, its value in pieces: the nonce goes between each two.
#[derive(Debug)]
struct NoncedCsp {
    /// In its wire case: Pingora writes a `HeaderName` in lower case on HTTP/1.
    header: &'static str,
    https: Vec<String>,
    /// Over plain HTTP, without `report-to` (see `OverHttp::Other`).
    http: Vec<String>,
}

/// Which elements get the nonce: those whose URLs the policy's own sources allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonceFilter {
    /// The sources that govern `<script>` (script-src-elem, script-src or default-src).
    pub scripts: SourceList,
    /// With `csp_nonce_styles`: the sources that govern `<style>` and stylesheets.
    pub styles: Option<SourceList>,
}

#[derive(Debug, Clone)]
pub struct NonceCounters {
    pub nonced: IntCounter,
    pub failed: IntCounter,
    skipped: [IntCounter; NonceSkip::COUNT],
    cache: [IntCounter; CacheResult::COUNT],
}

impl NonceCounters {
    pub fn skipped(&self, reason: NonceSkip) {
        self.skipped[reason as usize].inc();
    }

    pub fn cache(&self, result: CacheResult) {
        self.cache[result as usize].inc();
    }
}

/// The directives a nonce goes into: the named ones the policy has, else `default-src`.
fn nonce_directives<'a>(csp: &Csp, named: [&'a str; 2]) -> Vec<&'a str> {
    let present: Vec<&str> = named
        .into_iter()
        .filter(|d| csp.sources(d).is_some())
        .collect();
    if present.is_empty() && csp.sources("default-src").is_some() {
        return vec!["default-src"];
    }
    present
}

/// The sources a browser applies to an element: the first directive the policy has.
fn governing<'c>(csp: &'c Csp, chain: [&str; 3]) -> Option<&'c [String]> {
    chain.iter().find_map(|d| csp.sources(d))
}

impl NoncePlan {
    /// `None` unless the merged layer turns `csp_nonce` on.
    pub fn compile(
        layer: &PolicyLayer,
        at: RouteLabels,
        metrics: &Metrics,
    ) -> Result<Option<NoncePlan>, KeyError> {
        let sec = &layer.security;
        check_flags(sec)?;
        if sec.csp_nonce != Some(true) {
            return Ok(None);
        }
        let err = |reason: &str| Err(KeyError::new("security.csp_nonce", reason));
        if sec.csp_enabled != Some(true) {
            return err("csp_nonce needs csp_enabled: true (the nonce goes into the CSP)");
        }
        let Some(csp) = Csp::from_options(sec) else {
            return err("csp_nonce needs a csp_policy");
        };

        let scripts = governing(&csp, ["script-src-elem", "script-src", "default-src"]);
        let Some(script_sources) = scripts else {
            return err(
                "csp_nonce needs script-src or default-src in csp_policy: without one, \
                        scripts are not restricted and a nonce changes nothing",
            );
        };
        let script_targets = nonce_directives(&csp, ["script-src", "script-src-elem"]);
        let mut targets = script_targets.clone();
        let styles = if sec.csp_nonce_styles == Some(true) {
            let Some(style_sources) =
                governing(&csp, ["style-src-elem", "style-src", "default-src"])
            else {
                return Err(KeyError::new(
                    "security.csp_nonce_styles",
                    "csp_nonce_styles needs style-src or default-src in csp_policy",
                ));
            };
            for d in nonce_directives(&csp, ["style-src", "style-src-elem"]) {
                if !targets.contains(&d) {
                    targets.push(d);
                }
            }
            Some(SourceList::parse(style_sources))
        } else {
            None
        };
        for d in &targets {
            if csp.sources(d) == Some(&["'none'".to_string()][..]) {
                return err(&format!(
                    "`{d}` is 'none': a nonce beside it would let nonced elements run; \
                     list the sources to allow (for example 'self') or turn csp_nonce off"
                ));
            }
        }
        let strict = sec.csp_strict_dynamic.unwrap_or(false);
        let mut csps = Vec::new();
        for policy in Csp::all(sec) {
            let header = policy.name;
            check_header_actions(layer, policy.name)?;
            // The report-only policy gets the nonce where it has the same
            // directives, except beside 'none', which it is there to report on.
            let targets: Vec<&str> = if policy == csp {
                targets.clone()
            } else {
                let styles = sec.csp_nonce_styles.unwrap_or(false);
                let mut t = nonce_directives(&policy, ["script-src", "script-src-elem"]);
                if styles {
                    for d in nonce_directives(&policy, ["style-src", "style-src-elem"]) {
                        if !t.contains(&d) {
                            t.push(d);
                        }
                    }
                }
                t.retain(|d| policy.sources(d) != Some(&["'none'".to_string()][..]));
                t
            };
            let [https, http] = [true, false].map(|https| {
                let sent = match report_url(sec) {
                    Some(url) => policy.with_reports(url, https),
                    None => policy.clone(),
                };
                let script_targets = nonce_directives(&sent, ["script-src", "script-src-elem"]);
                template(&sent, &targets, strict.then_some(&script_targets[..]))
            });
            csps.push(NoncedCsp {
                header,
                https,
                http,
            });
        }
        Ok(Some(NoncePlan {
            csps,
            filter: Arc::new(NonceFilter {
                scripts: SourceList::parse(script_sources),
                styles,
            }),
            counters: NonceCounters {
                nonced: metrics.csp_nonced(at),
                failed: metrics.csp_nonce_failed(at),
                skipped: metrics.csp_nonce_skipped(at),
                cache: metrics.csp_nonce_cache(at),
            },
            cache: sec.csp_nonce_cache != Some(false),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        }))
    }

    /// Each CSP header with `nonce` in it, for the response's scheme (a value is
    /// left out if it were no valid header value, which the compiled parts and a
    /// base64 nonce never make).
    pub fn csp_headers<'a>(
        &'a self,
        nonce: &'a str,
        https: bool,
    ) -> impl Iterator<Item = (&'static str, HeaderValue)> + 'a {
        self.csps.iter().filter_map(move |c| {
            let parts = if https { &c.https } else { &c.http };
            Some((c.header, fill(parts, nonce)?))
        })
    }
}

/// The pieces of a CSP joined by the nonce.
fn fill(parts: &[String], nonce: &str) -> Option<HeaderValue> {
    let len = parts.iter().map(String::len).sum::<usize>() + nonce.len() * (parts.len() - 1);
    let mut value = String::with_capacity(len);
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            value.push_str(nonce);
        }
        value.push_str(part);
    }
    HeaderValue::try_from(value).ok()
}

/// The CSP text split where the nonce goes; `strict` names the directives that
/// also get `'strict-dynamic'`.
fn template(csp: &Csp, targets: &[&str], strict: Option<&[&str]>) -> Vec<String> {
    let mut parts = vec![String::new()];
    for (i, (d, sources)) in csp.directives.iter().enumerate() {
        let text = parts.last_mut().expect("never empty");
        if i > 0 {
            text.push_str("; ");
        }
        text.push_str(d);
        for s in sources {
            text.push(' ');
            text.push_str(s);
        }
        if targets.contains(&d.as_str()) {
            text.push_str(" 'nonce-");
            let mut next = String::from("'");
            let strict_here = strict.is_some_and(|s| s.contains(&d.as_str()));
            if strict_here && !sources.iter().any(|s| s == "'strict-dynamic'") {
                next.push_str(" 'strict-dynamic'");
            }
            parts.push(next);
        }
    }
    parts
}

/// The two companions of `csp_nonce` mean nothing without it.
fn check_flags(sec: &SecurityOptions) -> Result<(), KeyError> {
    for (key, set) in [
        ("csp_nonce_styles", sec.csp_nonce_styles),
        ("csp_strict_dynamic", sec.csp_strict_dynamic),
    ] {
        if set == Some(true) && sec.csp_nonce != Some(true) {
            return Err(KeyError::new(
                format!("security.{key}"),
                format!("{key} needs csp_nonce: true"),
            ));
        }
    }
    Ok(())
}

/// The nonce replaces the CSP on each response: nothing else may decide that header.
fn check_header_actions(layer: &PolicyLayer, csp_name: &str) -> Result<(), KeyError> {
    let h = &layer.headers;
    let name = HeaderName::from_bytes(csp_name.as_bytes()).expect("a valid name");
    if h.set.keys().any(|k| k.name == name) {
        return Err(KeyError::new(
            format!("headers.set.{csp_name}"),
            "csp_nonce writes this header on every response; set the policy with csp_policy",
        ));
    }
    let mode = h.conflict_mode(&name);
    if mode != ConflictMode::Override {
        let mode: &str = mode.into();
        return Err(KeyError::new(
            format!("headers.conflict.{csp_name}"),
            format!(
                "csp_nonce needs the gateway's CSP to replace the upstream's (override), not \
                 `{mode}`: a CSP the gateway did not write has no nonce"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::schema::HeaderActions;

    fn layer(yaml: &str) -> PolicyLayer {
        let security: SecurityOptions = serde_yaml::from_str(yaml).unwrap();
        PolicyLayer::of(
            &security,
            &HeaderActions::default(),
            &HeaderActions::default(),
        )
    }

    fn at() -> RouteLabels<'static> {
        RouteLabels {
            vhost: "unit-nonce",
            route: "_vhost",
        }
    }

    fn plan(yaml: &str) -> NoncePlan {
        NoncePlan::compile(&layer(yaml), at(), &Metrics::new())
            .unwrap()
            .unwrap()
    }

    /// The CSP headers of a response over HTTPS, with nonce `x`.
    fn sent(p: &NoncePlan, nonce: &str, https: bool) -> Vec<(String, String)> {
        p.csp_headers(nonce, https)
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
            .collect()
    }

    fn one(p: &NoncePlan, nonce: &str) -> String {
        let mut all = sent(p, nonce, true);
        assert_eq!(all.len(), 1);
        all.remove(0).1
    }

    fn error(yaml: &str) -> String {
        let e = NoncePlan::compile(&layer(yaml), at(), &Metrics::new()).unwrap_err();
        format!("{}: {}", e.key, e.reason)
    }

    #[test]
    fn the_nonce_goes_into_script_src_and_style_src() {
        let p = plan(
            "csp_enabled: true\ncsp_nonce: true\ncsp_nonce_styles: true\ncsp_strict_dynamic: true\n\
             csp_policy: {default-src: [\"'self'\"], script-src: [\"'self'\", cdn.example], \
             style-src: [\"'self'\"], img-src: [\"*\"]}\n",
        );
        assert_eq!(sent(&p, "N0NCE", true)[0].0, "Content-Security-Policy");
        assert_eq!(
            one(&p, "N0NCE"),
            "default-src 'self'; script-src 'self' cdn.example 'nonce-N0NCE' 'strict-dynamic'; \
             style-src 'self' 'nonce-N0NCE'; img-src *"
        );
        assert_eq!(
            p.filter.scripts,
            SourceList::parse(&["'self'", "cdn.example"])
        );
        assert_eq!(p.filter.styles, Some(SourceList::parse(&["'self'"])));
    }

    #[test]
    fn default_src_takes_the_nonce_when_nothing_more_specific_exists() {
        let p = plan(
            "csp_enabled: true\ncsp_nonce: true\ncsp_nonce_styles: true\n\
             csp_report_only: true\ncsp_policy: {default-src: [\"'self'\"]}\n",
        );
        assert_eq!(
            sent(&p, "x", false),
            [(
                "Content-Security-Policy-Report-Only".to_string(),
                "default-src 'self' 'nonce-x'".to_string()
            )]
        );
        let elem = plan(
            "csp_enabled: true\ncsp_nonce: true\ncsp_strict_dynamic: true\n\
             csp_policy: {default-src: [\"'self'\"], script-src-elem: [\"'self'\"]}\n",
        );
        assert_eq!(
            one(&elem, "x"),
            "default-src 'self'; script-src-elem 'self' 'nonce-x' 'strict-dynamic'"
        );
    }

    #[test]
    fn both_policies_get_the_nonce_and_their_scheme_s_report_directives() {
        let p = plan(
            "csp_enabled: true\ncsp_nonce: true\ncsp_strict_dynamic: true\n\
             csp_policy: {default-src: [\"'self'\"]}\n\
             csp_report_collect: true\ncsp_report_path: /.well-known/csp-reports\n\
             csp_report_only_policy: {script-src: [\"'self'\"], object-src: [\"'none'\"]}\n",
        );
        let https = sent(&p, "x", true);
        assert_eq!(
            https,
            [
                (
                    "Content-Security-Policy".to_string(),
                    "default-src 'self' 'nonce-x' 'strict-dynamic'; \
                     report-uri /.well-known/csp-reports; report-to secgw-csp"
                        .to_string()
                ),
                (
                    "Content-Security-Policy-Report-Only".to_string(),
                    "script-src 'self' 'nonce-x' 'strict-dynamic'; object-src 'none'; \
                     report-uri /.well-known/csp-reports; report-to secgw-csp"
                        .to_string()
                )
            ]
        );
        let http = sent(&p, "x", false);
        assert_eq!(
            http[1].1,
            "script-src 'self' 'nonce-x' 'strict-dynamic'; object-src 'none'; \
             report-uri /.well-known/csp-reports"
        );
        // A report-only `'none'` stays alone: it is there to report every script.
        let none = plan(
            "csp_enabled: true\ncsp_nonce: true\ncsp_policy: {default-src: [\"'self'\"]}\n\
             csp_report_only_policy: {script-src: [\"'none'\"]}\n",
        );
        assert_eq!(sent(&none, "x", true)[1].1, "script-src 'none'");
    }

    #[test]
    fn nonsense_combinations_are_errors() {
        assert_eq!(
            error("csp_nonce_styles: true\n"),
            "security.csp_nonce_styles: csp_nonce_styles needs csp_nonce: true"
        );
        assert_eq!(
            error("csp_nonce: false\ncsp_strict_dynamic: true\n"),
            "security.csp_strict_dynamic: csp_strict_dynamic needs csp_nonce: true"
        );
        assert!(error("csp_nonce: true\n").contains("needs csp_enabled"));
        assert!(
            error("csp_enabled: true\ncsp_nonce: true\ncsp_policy: {img-src: [\"*\"]}\n")
                .contains("needs script-src or default-src")
        );
        assert!(error(
            "csp_enabled: true\ncsp_nonce: true\ncsp_policy: {script-src: [\"'none'\"]}\n"
        )
        .contains("`script-src` is 'none'"));
        assert!(error(
            "csp_enabled: true\ncsp_nonce: true\ncsp_nonce_styles: true\n\
             csp_policy: {script-src: [\"'self'\"]}\n"
        )
        .contains("needs style-src or default-src"));
    }

    #[test]
    fn header_actions_cannot_take_the_csp_over() {
        let security: SecurityOptions = serde_yaml::from_str(
            "csp_enabled: true\ncsp_nonce: true\ncsp_policy: {script-src: [\"'self'\"]}\n",
        )
        .unwrap();
        for (headers, key) in [
            (
                "conflict: {Content-Security-Policy: keep}",
                "headers.conflict.Content-Security-Policy",
            ),
            (
                "conflict: {\"*\": append}",
                "headers.conflict.Content-Security-Policy",
            ),
            (
                "set: {Content-Security-Policy: \"default-src 'none'\"}",
                "headers.set.Content-Security-Policy",
            ),
        ] {
            let headers: HeaderActions = serde_yaml::from_str(headers).unwrap();
            let layer = PolicyLayer::of(&security, &headers, &HeaderActions::default());
            let e = NoncePlan::compile(&layer, at(), &Metrics::new()).unwrap_err();
            assert_eq!(e.key, key, "{}", e.reason);
        }
    }

    #[test]
    fn off_compiles_to_nothing() {
        assert!(
            NoncePlan::compile(&layer("csp_enabled: true\n"), at(), &Metrics::new())
                .unwrap()
                .is_none()
        );
    }
}
