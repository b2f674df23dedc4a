//! The HSTS family's keys: `hsts_enabled`, `hsts_max_age`,
//! `hsts_include_subdomains` and `hsts_preload` (plain booleans and seconds, so no
//! types of their own), and the header they write. Rendered by
//! `policy/hsts.rs`, linted by `check/hsts.rs`.

pub const HEADER: &str = "Strict-Transport-Security";

/// The MDN HTTP Observatory's minimum `max-age` (6 months).
pub const OBSERVATORY_MIN_MAX_AGE: u64 = 15_552_000;
/// hstspreload.org's minimum `max-age` (1 year).
pub const PRELOAD_MIN_MAX_AGE: u64 = 31_536_000;
