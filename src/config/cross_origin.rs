//! The cross-origin trio's keys: `cross_origin_opener_policy`,
//! `cross_origin_embedder_policy` and `cross_origin_resource_policy`, their values
//! and headers. Rendered by `policy/cross_origin.rs`.

use schemars::JsonSchema;
use serde::Deserialize;

pub const COOP: &str = "Cross-Origin-Opener-Policy";
pub const COEP: &str = "Cross-Origin-Embedder-Policy";
pub const CORP: &str = "Cross-Origin-Resource-Policy";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OpenerPolicy {
    SameOrigin,
    SameOriginAllowPopups,
    NoopenerAllowPopups,
    UnsafeNone,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum EmbedderPolicy {
    RequireCorp,
    Credentialless,
    UnsafeNone,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ResourcePolicy {
    SameOrigin,
    SameSite,
    CrossOrigin,
}
