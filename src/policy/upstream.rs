//! An upstream pool, shared by a vhost and the routes that inherit it: round-robin
//! over its addresses and, for `tls://` upstreams, SNI, verification and trusted CAs.
//!
//! Each address's peer is built once, here; a request clones it and sets its
//! route's timeouts. (Pingora's `LoadBalancer` hashed every selected backend to
//! look up its health, which the gateway does not check: about 2% of a proxied
//! request's instructions, benches/instructions.py.)

use std::collections::BTreeSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pingora_core::protocols::tls::CaType;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_core::utils::tls::{parse_x509, WrappedX509};

use crate::config::schema::UpstreamTlsConfig;
use crate::config::values::split_host_port;
use crate::config::KeyError;
use crate::pem::read_certs;

#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub read: Duration,
    pub write: Duration,
}

struct UpstreamTls {
    sni: String,
    verify: bool,
    ca: Option<Arc<CaType>>,
    /// Identifies the trusted CAs. Pingora's connection-reuse key covers address,
    /// SNI and the verify flags but not the CA list, so without this a connection
    /// verified against one vhost's CA would be reused by a vhost trusting others.
    trust_group: u64,
}

pub struct Upstreams {
    /// One per resolved address, in address order, with the TLS settings.
    peers: Box<[HttpPeer]>,
    /// The round-robin position.
    next: AtomicUsize,
}

impl std::fmt::Debug for Upstreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstreams")
            .field("peers", &self.peers.iter().map(|p| p._address.to_string()))
            .field("sni", &self.peers.first().map(|p| &p.sni))
            .finish_non_exhaustive()
    }
}

impl Upstreams {
    /// `addrs` are `host:port` or `tls://host:port`; names are resolved once, here.
    pub fn new(
        addrs: &[String],
        tls_config: Option<&UpstreamTlsConfig>,
        base_dir: &Path,
    ) -> Result<Upstreams, KeyError> {
        let mut tls_count = 0;
        let mut hosts = Vec::with_capacity(addrs.len());
        let mut plain = Vec::with_capacity(addrs.len());
        for a in addrs {
            let rest = if let Some(rest) = a.strip_prefix("tls://") {
                tls_count += 1;
                rest
            } else if let Some(rest) = a.strip_prefix("http://") {
                rest
            } else if a.contains("://") {
                return Err(KeyError::new(
                    "upstreams",
                    format!("`{a}`: upstreams are host:port, http://host:port or tls://host:port"),
                ));
            } else {
                a.as_str()
            };
            let host = split_host_port(rest).map_or(rest, |(host, _)| host);
            hosts.push(
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string(),
            );
            plain.push(rest.to_string());
        }
        if tls_count != 0 && tls_count != addrs.len() {
            return Err(KeyError::new(
                "upstreams",
                "all upstreams of a vhost or route use TLS (tls://) or none do",
            ));
        }
        let mut resolved = BTreeSet::new();
        for a in &plain {
            let found = a.to_socket_addrs().map_err(|e| {
                KeyError::new(
                    "upstreams",
                    format!("cannot resolve upstreams {addrs:?}: {e}"),
                )
            })?;
            resolved.extend(found);
        }
        let tls = if tls_count > 0 {
            Some(upstream_tls(
                &hosts,
                tls_config.cloned().unwrap_or_default(),
                base_dir,
            )?)
        } else {
            if tls_config.is_some() {
                return Err(KeyError::new(
                    "upstream_tls",
                    "upstream_tls needs tls:// upstreams",
                ));
            }
            None
        };
        let peers = resolved
            .into_iter()
            .map(|a| peer(a, tls.as_ref()))
            .collect();
        // A random first turn: plans are swapped often in Kubernetes mode (every
        // endpoint change), and starting each at 0 would send a quiet Service's
        // requests to its first endpoint nearly every time.
        let start = getrandom::u32().map_or(0, |r| r as usize);
        Ok(Upstreams {
            peers,
            next: AtomicUsize::new(start),
        })
    }

    /// No address: no endpoint of the backend is ready.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// The next upstream in round-robin order, with the route's timeouts.
    pub fn next_peer(&self, timeouts: &Timeouts) -> Option<Box<HttpPeer>> {
        let count = self.peers.len();
        let index = match count {
            0 => return None,
            1 => 0,
            _ => self.next.fetch_add(1, Ordering::Relaxed) % count,
        };
        let mut peer = Box::new(self.peers[index].clone());
        peer.options.connection_timeout = Some(timeouts.connect);
        peer.options.read_timeout = Some(timeouts.read);
        peer.options.write_timeout = Some(timeouts.write);
        Some(peer)
    }
}

fn peer(address: SocketAddr, tls: Option<&UpstreamTls>) -> HttpPeer {
    match tls {
        None => HttpPeer::new(address, false, String::new()),
        Some(tls) => {
            let mut peer = HttpPeer::new(address, true, tls.sni.clone());
            peer.options.verify_cert = tls.verify;
            peer.options.verify_hostname = tls.verify;
            peer.options.ca = tls.ca.clone();
            peer.group_key = tls.trust_group;
            peer
        }
    }
}

fn upstream_tls(
    hosts: &[String],
    config: UpstreamTlsConfig,
    base_dir: &Path,
) -> Result<UpstreamTls, KeyError> {
    let verify = config.verify != Some(false);
    let sni = match config.sni {
        Some(sni) => sni,
        None => {
            let first = &hosts[0];
            if hosts.iter().any(|h| h != first) {
                return Err(KeyError::new(
                    "upstream_tls.sni",
                    "tls:// upstreams with different host names need one `sni` to verify",
                ));
            }
            if first.parse::<IpAddr>().is_ok() {
                if verify {
                    // Pingora skips verification when the SNI is empty: refuse that silently
                    // unverified setup rather than pretend.
                    return Err(KeyError::new(
                        "upstream_tls.sni",
                        format!(
                            "upstream {first} is an IP address: set `sni` to the name in its \
                             certificate (or `verify: false` to skip verification)"
                        ),
                    ));
                }
                String::new()
            } else {
                first.clone()
            }
        }
    };
    let (ca, trust_group) = match &config.ca_file {
        None => (None, 0),
        Some(file) => {
            let (ca, group) = load_ca(&base_dir.join(file))
                .map_err(|e| KeyError::new("upstream_tls.ca_file", e))?;
            (Some(ca), group)
        }
    };
    Ok(UpstreamTls {
        sni,
        verify,
        ca,
        trust_group,
    })
}

/// The CA list and a hash of its certificates (non-zero), for connection grouping.
fn load_ca(path: &Path) -> Result<(Arc<CaType>, u64), String> {
    let mut wrapped = Vec::new();
    let mut hasher = DefaultHasher::new();
    for der in read_certs(path)? {
        der.as_ref().hash(&mut hasher);
        // Check the DER parses as a CA certificate before Pingora's parser (which
        // panics on bad input) sees it.
        rustls::RootCertStore::empty()
            .add(der.clone())
            .map_err(|e| format!("{}: not a usable CA certificate: {e}", path.display()))?;
        wrapped.push(WrappedX509::new(der.to_vec(), parse_x509));
    }
    Ok((Arc::from(wrapped.into_boxed_slice()), hasher.finish() | 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUTS: Timeouts = Timeouts {
        connect: Duration::from_secs(1),
        read: Duration::from_secs(2),
        write: Duration::from_secs(3),
    };

    fn pool(addrs: &[&str]) -> Upstreams {
        let addrs: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
        Upstreams::new(&addrs, None, Path::new(".")).unwrap()
    }

    fn picks(pool: &Upstreams, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| pool.next_peer(&TIMEOUTS).unwrap()._address.to_string())
            .collect()
    }

    #[test]
    fn each_address_once_in_turn_with_the_routes_timeouts() {
        // A repeated address is one backend, as with Pingora's LoadBalancer.
        let p = pool(&["127.0.0.2:81", "127.0.0.1:80", "http://127.0.0.1:80"]);
        let seen = picks(&p, 5);
        let (a, b) = ("127.0.0.1:80", "127.0.0.2:81");
        let expected = if seen[0] == a {
            [a, b, a, b, a]
        } else {
            [b, a, b, a, b]
        };
        assert_eq!(seen, expected);
        let peer = p.next_peer(&TIMEOUTS).unwrap();
        assert_eq!(peer.options.connection_timeout, Some(TIMEOUTS.connect));
        assert_eq!(peer.options.read_timeout, Some(TIMEOUTS.read));
        assert_eq!(peer.options.write_timeout, Some(TIMEOUTS.write));
        assert!(peer.sni.is_empty());
        assert_eq!(
            picks(&pool(&["[::1]:8080"]), 2),
            ["[::1]:8080", "[::1]:8080"]
        );
    }

    #[test]
    fn tls_peers_carry_sni_and_verification() {
        let addrs = vec!["tls://127.0.0.1:443".to_string()];
        let config = UpstreamTlsConfig {
            sni: Some("api.internal".into()),
            ..Default::default()
        };
        let p = Upstreams::new(&addrs, Some(&config), Path::new(".")).unwrap();
        let peer = p.next_peer(&TIMEOUTS).unwrap();
        assert_eq!(peer.sni, "api.internal");
        assert!(peer.options.verify_cert && peer.options.verify_hostname);
        assert_eq!(peer.options.read_timeout, Some(TIMEOUTS.read));
    }
}
