//! The CORS family's keys (`cors_enabled`, `allowed_origins`, `allowed_methods`,
//! `allowed_headers`, `expose_headers`, `max_age`, `allow_credentials`): the origin
//! type and its validation. Compiled by `policy/cors.rs`, linted by `check/cors.rs`.

use schemars::JsonSchema;
use serde::Deserialize;

use super::values::{check_origin, split_host_port};

/// A CORS allowed origin: `*`, an exact origin, or `scheme://*.suffix` for subdomains.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(try_from = "String")]
#[schemars(with = "String")]
pub enum CorsOrigin {
    Any,
    Exact(String),
    /// scheme, suffix (without `*.`) and optional port of `scheme://*.suffix[:port]`.
    Subdomains {
        scheme: String,
        suffix: String,
        port: Option<u16>,
    },
}

impl TryFrom<String> for CorsOrigin {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        if text == "*" {
            return Ok(CorsOrigin::Any);
        }
        check_origin(&text)?;
        let (scheme, rest) = text.split_once("://").unwrap_or_default();
        match rest.strip_prefix("*.") {
            Some(after) => {
                // check_origin has checked both parts.
                let (suffix, port) = split_host_port(after).unwrap_or((after, None));
                let port = port.and_then(|p| p.parse().ok());
                Ok(CorsOrigin::Subdomains {
                    scheme: scheme.to_ascii_lowercase(),
                    suffix: suffix.to_ascii_lowercase(),
                    port,
                })
            }
            None if rest.contains('*') => Err(format!(
                "`{text}`: a wildcard origin is written scheme://*.example.com"
            )),
            None => Ok(CorsOrigin::Exact(text.to_ascii_lowercase())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cors_origins() {
        let o = |s: &str| CorsOrigin::try_from(s.to_string());
        assert_eq!(o("*").unwrap(), CorsOrigin::Any);
        assert_eq!(
            o("https://*.example.com").unwrap(),
            CorsOrigin::Subdomains {
                scheme: "https".into(),
                suffix: "example.com".into(),
                port: None
            }
        );
        assert_eq!(
            o("https://App.example.com:8443").unwrap(),
            CorsOrigin::Exact("https://app.example.com:8443".into())
        );
        assert!(o("https://example.com/path").is_err());
        assert!(o("example.com").is_err());
        assert!(o("https://ex*ample.com").is_err());
    }
}
