//! TLS termination: certificates (read by [`crate::pem`]) chosen per handshake by SNI.
//!
//! The resolver reads the current [`Plan`] at every handshake, so certificates are
//! swapped together with the rest of the configuration.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::policy::Plan;
use crate::routing::{normalize_host, HostMatch};

/// Picks the certificate for one TLS listener: the vhost whose exact or wildcard
/// name matches the SNI, if it has a certificate, else the listener's default.
pub struct SniResolver {
    listener: SocketAddr,
    plan: Arc<ArcSwap<Plan>>,
}

impl SniResolver {
    pub fn new(listener: SocketAddr, plan: Arc<ArcSwap<Plan>>) -> SniResolver {
        SniResolver { listener, plan }
    }
}

impl fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SniResolver")
            .field("listener", &self.listener)
            .finish_non_exhaustive()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let plan = self.plan.load();
        let by_name = hello
            .server_name()
            .and_then(normalize_host)
            .and_then(|sni| match plan.router.route(&sni)? {
                (_, HostMatch::Default) => None,
                (i, _) => plan.vhosts[i].cert.clone(),
            });
        by_name.or_else(|| plan.listener_certs.get(&self.listener).cloned())
    }
}
