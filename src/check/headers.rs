//! The lints of the generic header actions: security headers written by hand with
//! values browsers ignore, and `conflict: append` on managed headers.

use http::HeaderName;

use super::finding::{hit, Hit, Sent};
use crate::codes::{CONFLICT_APPEND, FILTER_OVERRIDES_POLICY, INVALID_MANAGED_VALUE};
use crate::config::schema::{ConflictKey, ConflictMode, PolicyLayer};
use crate::config::{framing, hsts, plain, referrer};

/// `headers.set` values that browsers ignore for the security header they name.
pub(super) fn set_by_hand(layer: &PolicyLayer, out: &mut Vec<Hit>) {
    for (name, value) in &layer.headers.set {
        let v = value.0.trim();
        let lower = v.to_ascii_lowercase();
        let is = |family: &str| name.name.as_str().eq_ignore_ascii_case(family);
        let valid = if is(framing::HEADER) {
            super::framing::acted_on(&lower)
        } else if is(plain::NOSNIFF) {
            super::plain::nosniff_acted_on(&lower)
        } else if is(hsts::HEADER) {
            super::hsts::acted_on(&lower)
        } else if is(referrer::HEADER) {
            super::referrer::acted_on(&lower)
        } else {
            true
        };
        if !valid {
            out.push(hit(
                &INVALID_MANAGED_VALUE,
                format!("headers.set.{}", name.text),
                format!(
                    "{}: `{v}` is not a value browsers act on: the header is as good as absent",
                    name.text
                ),
                "use the security key for this header, or a valid value",
            ));
        }
    }
}

/// An HTTPRoute's `ResponseHeaderModifier` (`filter`: the route's own header
/// actions) setting a header the route's security options write too: the
/// filter's value is sent, as the more specific layer, and the policy's is not.
pub(super) fn overridden_by_filter(
    layer: &PolicyLayer,
    filter: &crate::config::schema::HeaderActions,
    out: &mut Vec<Hit>,
) {
    let policy = crate::policy::security::security_headers(&layer.security);
    for name in filter.set.keys() {
        if let Some(s) = policy
            .iter()
            .find(|s| name.name.as_str().eq_ignore_ascii_case(s.name))
        {
            out.push(hit(
                &FILTER_OVERRIDES_POLICY,
                format!("headers.set.{}", name.text),
                format!(
                    "a ResponseHeaderModifier sets {}, which the security policy sets to `{}`: \
                     the filter's value is sent on this route",
                    name.text, s.value
                ),
                "remove the header from the filter to keep the policy's, or attach a policy \
                 that says what the route needs",
            ));
        }
    }
}

/// `conflict: append` on the headers the security options write: the browser
/// then sees the upstream's copy too, and most honour only the first.
pub(super) fn conflicts(sent: &Sent, out: &mut Vec<Hit>) {
    let h = sent.headers;
    let mut by_key: Vec<(String, Vec<&str>)> = Vec::new();
    for s in &sent.security {
        let Ok(name) = HeaderName::from_bytes(s.name.as_bytes()) else {
            continue;
        };
        if h.conflict_mode(&name) != ConflictMode::Append {
            continue;
        }
        let key = if h.conflict.contains_key(&ConflictKey::Header(name)) {
            format!("headers.conflict.{}", s.name)
        } else {
            "headers.conflict.*".to_string()
        };
        match by_key.iter_mut().find(|(k, _)| *k == key) {
            Some((_, names)) => names.push(s.name),
            None => by_key.push((key, vec![s.name])),
        }
    }
    for (key, names) in by_key {
        out.push(hit(
            &CONFLICT_APPEND,
            key,
            format!(
                "conflict append sends the upstream's {} beside the gateway's: browsers \
                 use only the first copy or reject both, so the policy may not apply",
                names.join(", ")
            ),
            "use override (the default), or keep where the upstream's value must win",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::super::lints::testing::*;

    #[test]
    fn appended_security_headers() {
        let one = format!(
            "{LISTENERS}{}",
            app(
                &[],
                "    headers: {conflict: {strict-transport-security: append, X-Other: append}}\n"
            )
        );
        assert_eq!(
            found(&one),
            [at(
                "SECGW-W108",
                "headers.conflict.Strict-Transport-Security"
            )]
        );
        let all = format!(
            "{LISTENERS}{}",
            app(&[], "    headers: {conflict: {\"*\": append}}\n")
        );
        let all = findings(&load(&all));
        assert_eq!(all.len(), 1, "{all:?}");
        assert_eq!(all[0].key, "vhosts[0].headers.conflict.*");
        assert!(all[0]
            .message
            .contains("Content-Security-Policy, Strict-Transport-Security"));
    }
}
