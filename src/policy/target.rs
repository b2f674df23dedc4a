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

/// Where a route's requests go. Routes that inherit their vhost's target share
/// its pool (one round-robin), each with its own timeouts.
#[derive(Debug, Clone)]
pub enum Target {
    Proxy {
        upstreams: Arc<Upstreams>,
        timeouts: Timeouts,
    },
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
        (Some(r), true) => respond(keys, r, "this vhost answers with `respond`"),
        (None, false) => proxy(keys, keys.timeouts([None; 3]), base_dir),
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
    if keys.upstreams.is_empty() && keys.upstream_tls.is_some() {
        return Err(KeyError::new(
            "upstream_tls",
            "upstream_tls needs the route's own tls:// upstreams",
        ));
    }
    match (keys.respond, keys.upstreams.is_empty(), vhost_target) {
        (Some(_), false, _) => Err(KeyError::here(
            "a route has `upstreams` or `respond`, not both",
        )),
        (Some(r), true, _) => respond(keys, r, "this route answers with `respond`"),
        (None, false, _) => proxy(keys, keys.timeouts(vhost.timeouts), base_dir),
        (None, true, Target::Respond(direct)) => {
            no_timeouts(keys, "this route answers with the vhost's `respond`")?;
            Ok(Target::Respond(direct.clone()))
        }
        (None, true, Target::Proxy { upstreams, .. }) => Ok(Target::Proxy {
            upstreams: upstreams.clone(),
            timeouts: keys.timeouts(vhost.timeouts),
        }),
    }
}

fn respond(keys: &TargetKeys, r: &RespondConfig, why: &str) -> Result<Target, KeyError> {
    no_timeouts(keys, why)?;
    Ok(Target::Respond(Arc::new(DirectResponse::try_from(r)?)))
}

fn proxy(keys: &TargetKeys, timeouts: Timeouts, base_dir: &Path) -> Result<Target, KeyError> {
    let upstreams = Upstreams::new(keys.upstreams, keys.upstream_tls, base_dir)?;
    Ok(Target::Proxy {
        upstreams: Arc::new(upstreams),
        timeouts,
    })
}

fn no_timeouts(keys: &TargetKeys, why: &str) -> Result<(), KeyError> {
    let names = ["connect_timeout_ms", "read_timeout_ms", "write_timeout_ms"];
    match keys.timeouts.iter().position(Option::is_some) {
        Some(i) => Err(KeyError::new(
            names[i],
            format!("upstream timeouts need upstreams; {why}"),
        )),
        None => Ok(()),
    }
}
