//! The CSP lints: nothing enforced, scripts from anywhere or unsafe keywords,
//! objects allowed, plain-HTTP sources, and built-in directives looser than the
//! policy's own default-src.

use super::finding::{hit, Hit, Sent};
use crate::codes::{
    CSP_REPORT_ONLY, HTTP_SOURCES, LOOSE_DEFAULTS, NO_CSP, OBJECTS_ALLOWED, SCRIPTS_FROM_ANYWHERE,
    UNSAFE_SCRIPTS,
};
use crate::config::csp::{CSP, CSP_REPORT_ONLY as REPORT_ONLY_HEADER};
use crate::config::schema::SecurityOptions;
use crate::config::values::on;
use crate::policy::csp::Csp;

/// A policy that writes its own `default-src` and inherits, from the built-in
/// defaults, a fetch directive allowing a source that default-src does not
/// (`style-src 'unsafe-inline'`, `img-src data:`): the strict default-src does
/// not apply to that directive.
pub(super) fn loose_defaults(s: &SecurityOptions, out: &mut Vec<Hit>) {
    let (Some(own), Some(builtin)) = (&s.csp_policy, &s.builtin_csp_policy) else {
        return;
    };
    let Some(Some(default_src)) = own.0.get("default-src") else {
        return;
    };
    if s.csp_enabled != Some(true) || s.csp_use_defaults == Some(false) {
        return;
    }
    for (directive, sources) in &builtin.0 {
        // `'none'` allows nothing, whatever default-src allows.
        let Some(sources) = sources.as_ref().filter(|s| *s != &["'none'"]) else {
            continue;
        };
        if !FETCH_DIRECTIVES.contains(&directive.as_str()) || own.0.contains_key(directive) {
            continue;
        }
        let wider: Vec<&str> = sources
            .iter()
            .filter(|src| !default_src.contains(src))
            .map(String::as_str)
            .collect();
        if wider.is_empty() {
            continue;
        }
        out.push(hit(
            &LOOSE_DEFAULTS,
            "security.csp_use_defaults",
            format!(
                "{directive} `{}` comes from the built-in defaults and allows {}, which the \
                 policy's default-src `{}` does not",
                sources.join(" "),
                wider.join(" "),
                default_src.join(" ")
            ),
            format!(
                "set {directive} in csp_policy, or csp_use_defaults: false to send only the \
                 policy's own directives"
            ),
        ));
    }
}

/// The directives that fall back to default-src.
const FETCH_DIRECTIVES: &[&str] = &[
    "child-src",
    "connect-src",
    "font-src",
    "frame-src",
    "img-src",
    "manifest-src",
    "media-src",
    "object-src",
    "script-src",
    "script-src-elem",
    "script-src-attr",
    "style-src",
    "style-src-elem",
    "style-src-attr",
    "worker-src",
];

/// Whether anything is enforced, and what the enforced policy lets scripts and
/// plugins do.
pub(super) fn lint(s: &SecurityOptions, sent: &Sent, out: &mut Vec<Hit>) {
    if sent.by_hand(CSP) {
        return;
    }
    let enforced = Csp::from_options(s).filter(|c| c.name == CSP && s.csp_enabled == Some(true));
    let Some(csp) = enforced else {
        out.push(nothing_enforced(s));
        return;
    };
    script_src(s, &csp, out);
    let object = ["object-src", "default-src"]
        .into_iter()
        .find_map(|d| csp.sources(d).map(|src| (d, src)));
    let message = match object {
        Some((_, src)) if src == ["'none'"] => return,
        Some((d, src)) => format!(
            "{d} `{}` applies to object-src, not 'none': plugin content (<object>, <embed>) \
             can run scripts",
            src.join(" ")
        ),
        None => "the enforced CSP has neither object-src nor default-src: plugin content \
                 (<object>, <embed>) is not restricted"
            .to_string(),
    };
    out.push(hit(
        &OBJECTS_ALLOWED,
        "security.csp_policy.object-src",
        message,
        "set csp_policy object-src: [\"'none'\"]",
    ));
}

/// No CSP is enforced: either one is only reported on, or there is none.
fn nothing_enforced(s: &SecurityOptions) -> Hit {
    let reported = Csp::all(s).iter().any(|c| c.name != CSP);
    match (reported, s.csp_report_only == Some(true)) {
        (true, true) => hit(
            &CSP_REPORT_ONLY,
            "security.csp_report_only",
            "the CSP is report-only (csp_report_only: true): violations are reported, none \
             is blocked",
            "once the reports are clean, set csp_report_only: false",
        ),
        (true, false) => hit(
            &CSP_REPORT_ONLY,
            "security.csp_report_only_policy",
            "only csp_report_only_policy is sent (csp_enabled is off): violations are \
             reported, none is blocked",
            "once the reports are clean, enforce the policy as csp_policy with csp_enabled: true",
        ),
        (false, _) if s.csp_enabled == Some(true) => hit(
            &NO_CSP,
            "security.csp_policy",
            "csp_policy has no directives: no Content-Security-Policy is sent",
            "give csp_policy directives, starting with default-src: [\"'self'\"]",
        ),
        (false, _) => hit(
            &NO_CSP,
            "security.csp_enabled",
            "no Content-Security-Policy is enforced (csp_enabled is off): nothing limits \
             where scripts come from",
            "set csp_enabled: true with a csp_policy (the built-in one is strict), trying it \
             with csp_report_only first",
        ),
    }
}

/// The sources governing scripts: `script-src`, else `default-src`.
fn script_src(s: &SecurityOptions, csp: &Csp, out: &mut Vec<Hit>) {
    let governing = ["script-src", "default-src"]
        .into_iter()
        .find_map(|d| csp.sources(d).map(|src| (d, src)));
    let Some((dir, sources)) = governing else {
        out.push(hit(
            &SCRIPTS_FROM_ANYWHERE,
            "security.csp_policy.script-src",
            "the enforced CSP has neither script-src nor default-src: scripts from any host run",
            "set csp_policy script-src, for example [\"'self'\"]",
        ));
        return;
    };
    let key = format!("security.csp_policy.{dir}");
    let list = sources.join(" ");
    let has = |keyword: &str| sources.iter().any(|x| x == keyword);
    if has("*") {
        out.push(hit(
            &SCRIPTS_FROM_ANYWHERE,
            key.clone(),
            format!("{dir} `{list}` allows scripts from any host (`*`)"),
            format!("list the hosts scripts come from in {dir}, or use csp_nonce"),
        ));
    }
    // Browsers ignore 'unsafe-inline' beside a nonce or a hash; csp_nonce adds
    // the nonce to script-src, or to default-src when no script-src(-elem) exists.
    let hashed = sources.iter().any(|x| {
        ["'nonce-", "'sha256-", "'sha384-", "'sha512-"]
            .iter()
            .any(|p| x.starts_with(p))
    });
    let nonced = s.csp_nonce == Some(true)
        && (dir == "script-src" || csp.sources("script-src-elem").is_none());
    let mut unsafe_keywords = Vec::new();
    let mut fixes = Vec::new();
    if has("'unsafe-inline'") && !hashed && !nonced {
        unsafe_keywords.push("'unsafe-inline'");
        fixes.push("move inline scripts into files or turn on csp_nonce");
    }
    if has("'unsafe-eval'") {
        unsafe_keywords.push("'unsafe-eval'");
        fixes.push("replace eval() and new Function()");
    }
    if !unsafe_keywords.is_empty() {
        let keywords = unsafe_keywords.join(" and ");
        out.push(hit(
            &UNSAFE_SCRIPTS,
            key,
            format!("{dir} `{list}` allows {keywords}: injected markup can run scripts"),
            format!("remove {keywords} from {dir}: {}", fixes.join(", and ")),
        ));
    }
}

/// `http:` and `http://...` in the source directives of every CSP sent.
pub(super) fn http_sources(s: &SecurityOptions, sent: &Sent, out: &mut Vec<Hit>) {
    let allow_from = on(&s.frame_options_allow_from).is_some();
    let main = Csp::from_options(s).filter(|c| !sent.by_hand(c.name));
    let main = main.iter().flat_map(|c| &c.directives).map(|(d, src)| {
        let key = match d.as_str() {
            "frame-ancestors" if allow_from => "security.frame_options_allow_from".to_string(),
            _ => format!("security.csp_policy.{d}"),
        };
        (d, src, key)
    });
    let second = s
        .csp_report_only_policy
        .iter()
        .filter(|_| !sent.by_hand(REPORT_ONLY_HEADER))
        .flat_map(|p| &p.0)
        .filter_map(|(d, src)| {
            let key = format!("security.csp_report_only_policy.{d}");
            src.as_ref().map(|src| (d, src, key))
        });
    for (d, sources, key) in main.chain(second) {
        let fetches = d.ends_with("-src")
            || matches!(d.as_str(), "base-uri" | "form-action" | "frame-ancestors");
        let plain: Vec<&str> = sources
            .iter()
            .map(String::as_str)
            .filter(|x| {
                let x = x.to_ascii_lowercase();
                x == "http:" || x.starts_with("http://")
            })
            .collect();
        if fetches && !plain.is_empty() {
            out.push(hit(
                &HTTP_SOURCES,
                key,
                format!(
                    "{d} trusts plain-HTTP sources ({}): a network attacker can stand in for them",
                    plain.join(" ")
                ),
                "use https: sources instead",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::lints::testing::*;

    #[test]
    fn csp_missing_or_report_only() {
        assert_eq!(
            strict(&[("csp_enabled", "false")]),
            [at("SECGW-W101", "security.csp_enabled")]
        );
        assert_eq!(
            strict(&[("csp_report_only", "true")]),
            [at("SECGW-W102", "security.csp_report_only")]
        );
        assert_eq!(
            strict(&[
                ("csp_enabled", "false"),
                ("csp_report_only_policy", "{default-src: [\"'self'\"]}")
            ]),
            [at("SECGW-W102", "security.csp_report_only_policy")]
        );
    }

    #[test]
    fn builtin_directives_looser_than_the_policys_default_src() {
        let own = "{default-src: [\"'self'\"], script-src: [\"'self'\"], style-src: [\"'self'\"]}";
        let hits = findings(&load(&format!(
            "{LISTENERS}{}",
            app(&[("csp_policy", own)], "")
        )));
        let got: Vec<(&str, &str)> = hits
            .iter()
            .map(|f| (f.code, f.message.split(' ').next().unwrap()))
            .collect();
        // style-src is the policy's own; img-src has data:, font-src https: data:.
        assert_eq!(got, [("SECGW-W111", "font-src"), ("SECGW-W111", "img-src")]);
        assert_eq!(hits[1].key, "vhosts[0].security.csp_use_defaults");
        assert_eq!(
            hits[1].message,
            "img-src `'self' data:` comes from the built-in defaults and allows data:, which \
             the policy's default-src `'self'` does not"
        );
        // Without the defaults, object-src 'none' goes too, and the lint for
        // it speaks.
        assert_eq!(
            strict(&[("csp_policy", own), ("csp_use_defaults", "false")]),
            [at("SECGW-W104", "security.csp_policy.object-src")]
        );
    }

    #[test]
    fn unsafe_script_sources() {
        let inline = (
            "csp_policy",
            "{script-src: [\"'self'\", \"'unsafe-inline'\"]}",
        );
        assert_eq!(
            strict(&[inline]),
            [at("SECGW-W103", "security.csp_policy.script-src")]
        );
        assert_eq!(strict(&[inline, ("csp_nonce", "true")]), []);
        let hashed = (
            "csp_policy",
            "{script-src: [\"'unsafe-inline'\", \"'sha256-abc='\"]}",
        );
        assert_eq!(strict(&[hashed]), []);
        let eval = (
            "csp_policy",
            "{script-src: [\"'self'\", \"'unsafe-eval'\"]}",
        );
        assert_eq!(
            strict(&[eval, ("csp_nonce", "true")]),
            [at("SECGW-W103", "security.csp_policy.script-src")]
        );
        let by_default = (
            "csp_policy",
            "{script-src: null, default-src: [\"'self'\", \"'unsafe-inline'\"]}",
        );
        // The built-in defaults' font-src, img-src and style-src allow more than
        // this default-src (SECGW-W111, tested on its own).
        let found: Vec<_> = strict(&[by_default])
            .into_iter()
            .filter(|f| f.0 != "SECGW-W111")
            .collect();
        assert_eq!(found, [at("SECGW-W103", "security.csp_policy.default-src")]);
        assert_eq!(
            strict(&[("csp_policy", "{script-src: [\"*\"]}")]),
            [at("SECGW-E101", "security.csp_policy.script-src")]
        );
        assert_eq!(
            strict(&[("csp_policy", "{script-src: null, default-src: null}")]),
            [at("SECGW-E101", "security.csp_policy.script-src")]
        );
    }

    #[test]
    fn objects_and_plain_http_sources() {
        assert_eq!(
            strict(&[("csp_policy", "{object-src: null}")]),
            [at("SECGW-W104", "security.csp_policy.object-src")]
        );
        assert_eq!(
            strict(&[("csp_policy", "{object-src: [\"'self'\"]}")]),
            [at("SECGW-W104", "security.csp_policy.object-src")]
        );
        assert_eq!(
            strict(&[("csp_policy", "{img-src: [\"'self'\", \"http://cdn.test\"]}")]),
            [at("SECGW-W106", "security.csp_policy.img-src")]
        );
        assert_eq!(
            strict(&[("csp_report_only_policy", "{connect-src: [\"HTTP:\"]}")]),
            [at(
                "SECGW-W106",
                "security.csp_report_only_policy.connect-src"
            )]
        );
        assert_eq!(
            strict(&[("frame_options_allow_from", "http://portal.test")]),
            [
                at("SECGW-W019", "security.frame_options_allow_from"),
                at("SECGW-W106", "security.frame_options_allow_from")
            ]
        );
    }
}
