//! A vhost's upstream pool: round-robin over its addresses, with its timeouts.

use std::time::Duration;

use pingora_core::upstreams::peer::HttpPeer;
use pingora_load_balancing::selection::RoundRobin;
use pingora_load_balancing::LoadBalancer;

pub struct Upstreams {
    lb: LoadBalancer<RoundRobin>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
}

impl std::fmt::Debug for Upstreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstreams")
            .field("connect_timeout", &self.connect_timeout)
            .field("read_timeout", &self.read_timeout)
            .finish_non_exhaustive()
    }
}

impl Upstreams {
    /// `addrs` are `host:port`; names are resolved once, here.
    pub fn new(
        addrs: &[String],
        connect_timeout: Duration,
        read_timeout: Duration,
        write_timeout: Duration,
    ) -> Result<Upstreams, String> {
        for a in addrs {
            if a.contains("://") {
                return Err(format!(
                    "`{a}`: upstreams are host:port (TLS upstreams are not supported yet)"
                ));
            }
        }
        let lb = LoadBalancer::try_from_iter(addrs.iter().map(String::as_str))
            .map_err(|e| format!("cannot resolve upstreams {addrs:?}: {e}"))?;
        Ok(Upstreams {
            lb,
            connect_timeout,
            read_timeout,
            write_timeout,
        })
    }

    /// The next upstream in round-robin order.
    pub fn next_peer(&self) -> Option<Box<HttpPeer>> {
        let backend = self.lb.select(b"", 256)?;
        let mut peer = Box::new(HttpPeer::new(backend, false, String::new()));
        peer.options.connection_timeout = Some(self.connect_timeout);
        peer.options.read_timeout = Some(self.read_timeout);
        peer.options.write_timeout = Some(self.write_timeout);
        Some(peer)
    }
}
