//! The HTTPS redirect's keys (`ssl_redirect`, `ssl_host`, `ssl_port`,
//! `ssl_permanent`, `ssl_redirect_exempt`): the exempt rule and its validation.
//! Compiled by `policy/redirect.rs`, linted by `check/redirect.rs`.

use schemars::JsonSchema;
use serde::Deserialize;

/// A path the HTTPS redirect leaves alone: a prefix starting with `/`, or a regex
/// starting with `^`.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(try_from = "String")]
#[schemars(with = "String")]
pub enum ExemptRule {
    Prefix(String),
    Regex(String),
}

impl TryFrom<String> for ExemptRule {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        if text.starts_with('^') {
            regex::Regex::new(&text).map_err(|e| format!("`{text}` is not a valid regex: {e}"))?;
            Ok(ExemptRule::Regex(text))
        } else if text.starts_with('/') {
            Ok(ExemptRule::Prefix(text))
        } else {
            Err(format!(
                "`{text}`: an exempt rule is a path prefix starting with `/` or a regex starting with `^`"
            ))
        }
    }
}
