//! The HSTS family's keys: `hsts_enabled`, `hsts_max_age`,
//! `hsts_include_subdomains` and `hsts_preload` (plain booleans and seconds, so no
//! types of their own), and the header they write. Rendered by
//! `policy/hsts.rs`, linted by `check/hsts.rs`.

pub const HEADER: &str = "Strict-Transport-Security";
