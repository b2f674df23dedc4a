//! Where a route's requests go: an upstream pool, or a response the gateway makes.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, StatusCode};

use super::upstream::{Timeouts, Upstreams};
use crate::config::defaults;
use crate::config::schema::{RespondConfig, UpstreamTlsConfig};
use crate::config::values::Positive;
use crate::config::KeyError;

/// Shared between a vhost and the routes that inherit it, so they balance over
/// one round-robin.
#[derive(Debug, Clone)]
pub enum Target {
    Proxy(Arc<Upstreams>),
    Respond(Arc<DirectResponse>),
}

#[derive(Debug)]
pub struct DirectResponse {
    pub status: u16,
    pub body: Bytes,
    pub content_type: HeaderValue,
}

impl TryFrom<&RespondConfig> for DirectResponse {
    type Error = KeyError;
    fn try_from(r: &RespondConfig) -> Result<Self, KeyError> {
        StatusCode::from_u16(r.status)
            .ok()
            .filter(|s| !s.is_informational())
            .ok_or_else(|| {
                KeyError::new(
                    "respond.status",
                    format!("{} is not a final HTTP status (200-599)", r.status),
                )
            })?;
        let content_type = HeaderValue::from_str(&r.content_type.0)
            .map_err(|_| KeyError::new("respond.content_type", "invalid value"))?;
        Ok(DirectResponse {
            status: r.status,
            body: Bytes::from(r.body.clone()),
            content_type,
        })
    }
}

/// The target keys of a vhost or a route, as configured.
pub struct TargetKeys<'a> {
    pub upstreams: &'a [String],
    pub upstream_tls: Option<&'a UpstreamTlsConfig>,
    pub respond: Option<&'a RespondConfig>,
    /// connect, read, write.
    pub timeouts: [Option<Positive>; 3],
}

impl TargetKeys<'_> {
    fn has_timeouts(&self) -> bool {
        self.timeouts.iter().any(Option::is_some)
    }

    /// The configured timeouts, each falling back to `weaker`'s, then to the default.
    fn timeouts(&self, weaker: [Option<Positive>; 3]) -> Timeouts {
        let ms = |i: usize, default: u64| {
            let chosen = self.timeouts[i].or(weaker[i]).map_or(default, |p| p.0);
            Duration::from_millis(chosen)
        };
        Timeouts {
            connect: ms(0, defaults::CONNECT_TIMEOUT_MS),
            read: ms(1, defaults::READ_TIMEOUT_MS),
            write: ms(2, defaults::WRITE_TIMEOUT_MS),
        }
    }
}

/// A vhost's target: it needs exactly one of `upstreams` and `respond`.
pub fn vhost_target(keys: &TargetKeys, base_dir: &Path) -> Result<Target, KeyError> {
    match (keys.respond, keys.upstreams.is_empty()) {
        (Some(_), false) => Err(KeyError::here(
            "a vhost has either `upstreams` or `respond`, not both",
        )),
        (None, true) => Err(KeyError::here(
            "a vhost needs `upstreams` (to proxy) or `respond` (to answer directly)",
        )),
        (Some(r), true) => {
            check_no_timeouts(keys, "this vhost answers with `respond`")?;
            Ok(Target::Respond(Arc::new(DirectResponse::try_from(r)?)))
        }
        (None, false) => proxy(keys, keys.timeouts(keys.timeouts), base_dir),
    }
}

/// A route's target: its own `upstreams` or `respond`, else the vhost's (with the
/// route's timeouts, if it sets any).
pub fn route_target(
    keys: &TargetKeys,
    vhost: &TargetKeys,
    vhost_target: &Target,
    base_dir: &Path,
) -> Result<Target, KeyError> {
    match (keys.respond, keys.upstreams.is_empty()) {
        (Some(_), false) => Err(KeyError::here(
            "a route has `upstreams` or `respond`, not both",
        )),
        (Some(r), true) => {
            check_no_timeouts(keys, "this route answers with `respond`")?;
            if keys.upstream_tls.is_some() {
                return Err(KeyError::new(
                    "upstream_tls",
                    "upstream_tls needs the route's own tls:// upstreams",
                ));
            }
            Ok(Target::Respond(Arc::new(DirectResponse::try_from(r)?)))
        }
        (None, false) => proxy(keys, keys.timeouts(vhost.timeouts), base_dir),
        (None, true) => {
            if keys.upstream_tls.is_some() {
                return Err(KeyError::new(
                    "upstream_tls",
                    "upstream_tls needs the route's own tls:// upstreams",
                ));
            }
            match vhost_target {
                Target::Respond(_) => {
                    check_no_timeouts(keys, "this route answers with the vhost's `respond`")?;
                    Ok(vhost_target.clone())
                }
                Target::Proxy(_) if !keys.has_timeouts() => Ok(vhost_target.clone()),
                Target::Proxy(_) => {
                    let inherited = TargetKeys {
                        upstreams: vhost.upstreams,
                        upstream_tls: vhost.upstream_tls,
                        respond: None,
                        timeouts: keys.timeouts,
                    };
                    proxy(&inherited, keys.timeouts(vhost.timeouts), base_dir)
                }
            }
        }
    }
}

fn proxy(keys: &TargetKeys, timeouts: Timeouts, base_dir: &Path) -> Result<Target, KeyError> {
    let upstreams = Upstreams::new(keys.upstreams, keys.upstream_tls, base_dir, timeouts)?;
    Ok(Target::Proxy(Arc::new(upstreams)))
}

fn check_no_timeouts(keys: &TargetKeys, why: &str) -> Result<(), KeyError> {
    let names = ["connect_timeout_ms", "read_timeout_ms", "write_timeout_ms"];
    match keys.timeouts.iter().position(Option::is_some) {
        Some(i) => Err(KeyError::new(
            names[i],
            format!("upstream timeouts need upstreams; {why}"),
        )),
        None => Ok(()),
    }
}
