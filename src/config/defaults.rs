//! Every default of the gateway, in one place: the built-in policy layer
//! (`defaults.yaml`, the weakest layer of every policy) and the defaults of the
//! keys outside policies. The schema's structs take their defaults from here
//! through `Default` impls, so this module uses `schema.rs` and not the other way
//! round (its doc comments only link here).

use super::schema::{LimitsConfig, NonceCacheConfig, PolicyLayer, RespondConfig};
use super::values::{DrainSeconds, HeaderValueText, Positive};

const DEFAULTS_YAML: &str = include_str!("defaults.yaml");

/// The built-in defaults, the weakest layer of every policy. Its `csp_policy`
/// and `permissions_policy` stay apart from the user's layers until
/// `SecurityOptions::resolved`, which `*_use_defaults: false` lets drop them.
pub fn builtin_layer() -> PolicyLayer {
    let mut layer: PolicyLayer =
        serde_yaml::from_str(DEFAULTS_YAML).expect("built-in defaults.yaml is valid");
    let s = &mut layer.security;
    s.builtin_csp_policy = s.csp_policy.take();
    s.builtin_permissions_policy = s.permissions_policy.take();
    layer
}

/// Upstream timeouts, when neither the route nor the vhost sets them.
pub const CONNECT_TIMEOUT_MS: u64 = 5_000;
pub const READ_TIMEOUT_MS: u64 = 60_000;
pub const WRITE_TIMEOUT_MS: u64 = 60_000;

/// `limits:`. nginx's defaults, except the header deadline (nginx: 60 s), which is
/// shorter so that slow clients cannot hold connections.
pub const LIMITS: LimitsConfig = LimitsConfig {
    client_header_timeout_ms: Positive(10_000),
    client_body_timeout_ms: Positive(60_000),
    keepalive_timeout_ms: Positive(60_000),
    max_connections: Positive(10_000),
    // Off: behind a load balancer that NATs, every client shares one address.
    max_connections_per_ip: 0,
    // h2's default limit of concurrent streams per connection.
    max_upstream_per_connection: Positive(100),
    send_timeout_ms: Positive(60_000),
};

impl Default for LimitsConfig {
    fn default() -> Self {
        LIMITS
    }
}

/// `nonce_cache:`: 64 MiB in all, enough for a thousand 60 KB pages, and pages
/// up to 2 MiB (far above an application shell or a documentation page).
pub const NONCE_CACHE: NonceCacheConfig = NonceCacheConfig {
    max_bytes: 64 << 20,
    max_page_bytes: 2 << 20,
};

/// The largest `nonce_cache.max_page_bytes`: half the HTML parser's memory
/// limit (`rewrite/html.rs`), so that no way of cutting a recorded page into
/// chunks can take the parser to its limit, and a template's decisions are the
/// rewriter's in every chunking.
pub const MAX_RECORDED_PAGE: u64 = 2 << 20;

impl Default for NonceCacheConfig {
    fn default() -> Self {
        NONCE_CACHE
    }
}

/// `shutdown_drain_seconds`: long enough for Kubernetes to take a terminating
/// pod out of its Services' endpoints everywhere.
impl Default for DrainSeconds {
    fn default() -> Self {
        DrainSeconds(5)
    }
}

/// `respond:` without a status or content type.
pub const RESPOND_STATUS: u16 = 200;
pub const RESPOND_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

impl Default for RespondConfig {
    fn default() -> Self {
        RespondConfig {
            status: RESPOND_STATUS,
            body: String::new(),
            content_type: HeaderValueText(RESPOND_CONTENT_TYPE.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_security_key_with_a_numeric_default_has_one() {
        let s = builtin_layer().security;
        assert_eq!(s.hsts_max_age, Some(31_536_000));
        assert_eq!(s.expect_ct_max_age, Some(86_400));
        assert_eq!(s.max_age, Some(600));
    }
}
