//! `permissions_policy`: feature -> allowlist, written as in the seed
//! (`'none'`, `'self'`, `*`, origins) and serialized later as an RFC 8941 dictionary.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;

use super::values::{check_origin, OneOrMany};

pub const HEADER: &str = "Permissions-Policy";

/// One member of a feature's allowlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allow {
    SelfOrigin,
    Src,
    All,
    Origin(String),
}

/// A feature's allowlist; empty means `'none'` (serialized as `()`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(try_from = "OneOrMany<String>")]
#[schemars(with = "OneOrMany<String>")]
pub struct Allowlist(pub Vec<Allow>);

impl TryFrom<OneOrMany<String>> for Allowlist {
    type Error = String;
    fn try_from(items: OneOrMany<String>) -> Result<Self, String> {
        let items = items.0;
        if items.iter().any(|s| s == "'none'") {
            if items.len() > 1 {
                return Err("'none' must be the only entry".into());
            }
            return Ok(Allowlist(Vec::new()));
        }
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            out.push(match item.as_str() {
                "'self'" => Allow::SelfOrigin,
                "'src'" => Allow::Src,
                "*" => Allow::All,
                "self" | "none" | "src" => {
                    return Err(format!("`{item}` must be quoted: write \"'{item}'\""))
                }
                _ if item.contains('*') => {
                    return Err(format!("`{item}`: only a lone `*` is a wildcard here"))
                }
                _ => {
                    check_origin(&item)?;
                    Allow::Origin(item)
                }
            });
        }
        Ok(Allowlist(out))
    }
}

/// Feature -> allowlist in the order written; `null` removes a weaker layer's entry.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, JsonSchema)]
#[serde(try_from = "IndexMap<String, Option<Allowlist>>")]
#[schemars(with = "IndexMap<String, Option<Allowlist>>")]
pub struct PermissionsPolicy(pub IndexMap<String, Option<Allowlist>>);

impl TryFrom<IndexMap<String, Option<Allowlist>>> for PermissionsPolicy {
    type Error = String;
    fn try_from(map: IndexMap<String, Option<Allowlist>>) -> Result<Self, String> {
        for feature in map.keys() {
            sfv::KeyRef::from_str(feature).map_err(|_| {
                format!("`{feature}` is not a feature name (lower-case letters, digits, `-`)")
            })?;
        }
        Ok(PermissionsPolicy(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Result<Allowlist, String> {
        Allowlist::try_from(OneOrMany(items.iter().map(|s| s.to_string()).collect()))
    }

    #[test]
    fn allowlists() {
        assert_eq!(list(&["'none'"]).unwrap().0, vec![]);
        assert_eq!(
            list(&["'self'", "https://maps.example.com"]).unwrap().0,
            vec![
                Allow::SelfOrigin,
                Allow::Origin("https://maps.example.com".into())
            ]
        );
        assert_eq!(list(&["*"]).unwrap().0, vec![Allow::All]);
        assert!(list(&["self"]).unwrap_err().contains("must be quoted"));
        assert!(list(&["'none'", "'self'"]).is_err());
        assert!(list(&["https://*.example.com"]).is_err());
        assert!(list(&["maps.example.com"]).is_err());
    }

    #[test]
    fn feature_names_are_structured_field_keys() {
        let mut map = IndexMap::new();
        map.insert("Camera".to_string(), None);
        assert!(PermissionsPolicy::try_from(map).is_err());
    }
}
