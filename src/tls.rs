//! TLS termination: certificates from PEM files, chosen per handshake by SNI.
//!
//! The resolver reads the current [`Plan`] at every handshake, so certificates are
//! swapped together with the rest of the configuration.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::policy::Plan;
use crate::routing::{normalize_host, HostMatch};

/// Reads a certificate chain and its private key, and checks that they belong
/// together. Errors name the file at fault.
pub fn load_certified_key(
    cert_path: &Path,
    key_path: &Path,
) -> Result<Arc<CertifiedKey>, (bool, String)> {
    let certs = read_certs(cert_path).map_err(|e| (true, e))?;
    let key = read_key(key_path).map_err(|e| (false, e))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| {
        (
            false,
            format!("{}: unsupported private key: {e}", key_path.display()),
        )
    })?;
    let certified = CertifiedKey::new(certs, signing);
    certified.keys_match().map_err(|_| {
        (
            false,
            format!(
                "{}: this private key does not match the certificate in {}",
                key_path.display(),
                cert_path.display()
            ),
        )
    })?;
    Ok(Arc::new(certified))
}

/// PEM certificates (a chain: leaf first).
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem =
        crate::config::files::read_regular(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: invalid PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate found", path.display()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let pem =
        crate::config::files::read_regular(path).map_err(|e| format!("{}: {e}", path.display()))?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| format!("{}: invalid PEM: {e}", path.display()))?
        .ok_or_else(|| format!("{}: no PEM private key found", path.display()))
}

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
