//! The Referrer-Policy key: `referrer_policy`, a comma list of the tokens browsers
//! know, and the header it writes. Rendered by `policy/referrer.rs`, linted by
//! `check/referrer.rs`.

use schemars::JsonSchema;
use serde::Deserialize;

pub const HEADER: &str = "Referrer-Policy";

/// `Referrer-Policy`: one token or a comma-separated fallback list of known tokens.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(try_from = "String")]
#[schemars(with = "String")]
pub struct ReferrerPolicy(pub String);

pub const REFERRER_POLICIES: &[&str] = &[
    "no-referrer",
    "no-referrer-when-downgrade",
    "origin",
    "origin-when-cross-origin",
    "same-origin",
    "strict-origin",
    "strict-origin-when-cross-origin",
    "unsafe-url",
];

impl TryFrom<String> for ReferrerPolicy {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let tokens: Vec<&str> = text.split(',').map(str::trim).collect();
        for t in &tokens {
            if !REFERRER_POLICIES.contains(t) {
                return Err(format!(
                    "`{t}` is not a referrer policy; expected one of {}",
                    REFERRER_POLICIES.join(", ")
                ));
            }
        }
        Ok(ReferrerPolicy(tokens.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn referrer_policy_lists() {
        assert_eq!(
            ReferrerPolicy::try_from("no-referrer,strict-origin-when-cross-origin".to_string())
                .unwrap()
                .0,
            "no-referrer, strict-origin-when-cross-origin"
        );
        assert!(ReferrerPolicy::try_from("never".to_string()).is_err());
    }
}
