//! The framing family's keys: `frame_options` and `frame_options_allow_from` (which
//! becomes CSP `frame-ancestors`), and the header they write. Rendered by
//! `policy/framing.rs`, linted by `check/framing.rs`.

use schemars::JsonSchema;
use serde::Deserialize;

pub const HEADER: &str = "X-Frame-Options";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum FrameOptions {
    #[serde(rename = "DENY", alias = "deny")]
    Deny,
    #[serde(rename = "SAMEORIGIN", alias = "sameorigin")]
    SameOrigin,
}
