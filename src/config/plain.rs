//! The one-value headers' keys: `xss_protection` and `xss_mode`,
//! `content_type_options`, `cache_control`, `clear_site_data` and the `expect_ct`
//! keys, their values and headers. Rendered by `policy/plain.rs`, linted by
//! `check/plain.rs`.

use schemars::JsonSchema;
use serde::Deserialize;

pub const XSS: &str = "X-XSS-Protection";
pub const NOSNIFF: &str = "X-Content-Type-Options";
pub const CACHE_CONTROL: &str = "Cache-Control";
pub const CLEAR_SITE_DATA: &str = "Clear-Site-Data";
pub const EXPECT_CT: &str = "Expect-CT";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum XssMode {
    Block,
    Filter,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum ClearSiteDataType {
    #[serde(rename = "cache")]
    Cache,
    #[serde(rename = "cookies")]
    Cookies,
    #[serde(rename = "storage")]
    Storage,
    #[serde(rename = "executionContexts")]
    ExecutionContexts,
    #[serde(rename = "clientHints")]
    ClientHints,
    #[serde(rename = "prefetchCache")]
    PrefetchCache,
    #[serde(rename = "prerenderCache")]
    PrerenderCache,
    #[serde(rename = "*")]
    All,
}
