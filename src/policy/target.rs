//! Where a route's requests go: an upstream pool, several by weight, or a
//! response the gateway makes.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, StatusCode};

use super::upstream::{Timeouts, Upstreams};
use crate::config::defaults;
use crate::config::route_rules::WeightedBackend;
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
    /// An HTTPRoute rule's backends, each with its share of the requests.
    Split {
        split: Arc<Split>,
        timeouts: Timeouts,
    },
}

/// Backends by weight: a fixed schedule of turns, walked in round-robin, in
/// which each backend appears as often as its (reduced) weight, spread out
/// (smooth weighted round-robin), so that any window of requests is close to
/// the weights.
#[derive(Debug)]
pub struct Split {
    /// `None`: an invalid reference, whose share answers 500.
    backends: Box<[Option<Upstreams>]>,
    schedule: Box<[u16]>,
    next: AtomicUsize,
}

/// The longest schedule: weights summing to more are scaled down to it.
const MAX_TURNS: u64 = 1000;

impl Split {
    pub fn new(backends: &[WeightedBackend], base_dir: &Path) -> Result<Split, KeyError> {
        let pools = backends
            .iter()
            .map(|b| {
                b.upstreams
                    .as_ref()
                    .map(|u| Upstreams::new(u, None, base_dir))
                    .transpose()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let start = getrandom::u32().map_or(0, |r| r as usize);
        Ok(Split {
            backends: pools.into(),
            schedule: schedule(&backends.iter().map(|b| b.weight).collect::<Vec<_>>()).into(),
            next: AtomicUsize::new(start),
        })
    }

    /// The backend of the next turn: `None` when every weight is zero.
    pub fn pick(&self) -> Option<usize> {
        let turns = self.schedule.len();
        let turn = match turns {
            0 => return None,
            1 => 0,
            _ => self.next.fetch_add(1, Ordering::Relaxed) % turns,
        };
        Some(usize::from(self.schedule[turn]))
    }

    /// The pool of a backend `pick` gave; `None` for an invalid reference.
    pub fn backend(&self, index: usize) -> Option<&Upstreams> {
        self.backends.get(index)?.as_ref()
    }
}

/// Smooth weighted round-robin (nginx's) over weights reduced by their greatest
/// common divisor and, above [`MAX_TURNS`], scaled down (a non-zero weight stays
/// at least 1).
fn schedule(weights: &[u32]) -> Vec<u16> {
    fn gcd(a: u64, b: u64) -> u64 {
        if b == 0 {
            a
        } else {
            gcd(b, a % b)
        }
    }
    let weights: Vec<u64> = weights.iter().map(|&w| u64::from(w)).collect();
    let divisor = weights.iter().fold(0, |g, &w| gcd(g, w)).max(1);
    let mut reduced: Vec<u64> = weights.iter().map(|w| w / divisor).collect();
    let total: u64 = reduced.iter().sum();
    if total > MAX_TURNS {
        for w in reduced.iter_mut().filter(|w| **w > 0) {
            *w = (*w * MAX_TURNS / total).max(1);
        }
    }
    let total: u64 = reduced.iter().sum();
    let mut current = vec![0i64; reduced.len()];
    let mut out = Vec::with_capacity(total as usize);
    for _ in 0..total {
        for (c, w) in current.iter_mut().zip(&reduced) {
            *c += *w as i64;
        }
        let Some(best) = (0..reduced.len()).max_by_key(|&i| (current[i], std::cmp::Reverse(i)))
        else {
            break;
        };
        current[best] -= total as i64;
        out.push(best as u16);
    }
    out
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
        (None, true, Target::Split { split, .. }) => Ok(Target::Split {
            split: split.clone(),
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

/// An HTTPRoute rule's weighted backends, with the route's timeouts.
pub fn split_target(
    backends: &[WeightedBackend],
    keys: &TargetKeys,
    vhost: &TargetKeys,
    base_dir: &Path,
) -> Result<Target, KeyError> {
    Ok(Target::Split {
        split: Arc::new(Split::new(backends, base_dir)?),
        timeouts: keys.timeouts(vhost.timeouts),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(weights: &[u32], window: usize) -> Vec<usize> {
        let s = schedule(weights);
        let mut seen = vec![0; weights.len()];
        for i in s.iter().cycle().take(window) {
            seen[usize::from(*i)] += 1;
        }
        seen
    }

    #[test]
    fn turns_follow_the_weights_and_zero_gets_none() {
        assert_eq!(counts(&[70, 30, 0], 500), [350, 150, 0]);
        assert_eq!(schedule(&[70, 30, 0]).len(), 10);
        assert_eq!(schedule(&[2, 1]), [0, 1, 0]);
        assert_eq!(counts(&[1, 1, 1], 9), [3, 3, 3]);
        assert!(schedule(&[0, 0]).is_empty());
        assert!(schedule(&[]).is_empty());
        // Weights up to the API's 1,000,000 are scaled into at most 1000 turns.
        let big = schedule(&[1_000_000, 999_999, 1]);
        assert!(big.len() <= 1002, "{}", big.len());
        assert!(big.contains(&2));
        // Any ten consecutive turns of 70/30 are 7 and 3: spread, not in runs.
        let s = schedule(&[70, 30]);
        for start in 0..s.len() {
            let window: Vec<u16> = s.iter().cycle().skip(start).take(10).copied().collect();
            assert_eq!(window.iter().filter(|&&b| b == 1).count(), 3);
        }
    }

    #[test]
    fn an_invalid_reference_keeps_its_share() {
        let backends = [
            WeightedBackend {
                weight: 1,
                upstreams: Some(Arc::from(vec!["127.0.0.1:1".to_string()])),
            },
            WeightedBackend {
                weight: 1,
                upstreams: None,
            },
        ];
        let split = Split::new(&backends, Path::new(".")).unwrap();
        let picks: Vec<usize> = (0..4).map(|_| split.pick().unwrap()).collect();
        assert_eq!(picks.iter().filter(|&&i| i == 1).count(), 2);
        assert!(split.backend(0).is_some());
        assert!(split.backend(1).is_none());
    }
}
