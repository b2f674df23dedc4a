//! Certificates and private keys from PEM files, for the listeners, the vhosts and
//! the CAs trusted for upstreams.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use crate::config::files::read_regular;
use crate::config::schema::TlsFiles;
use crate::config::KeyError;

/// The `cert`/`key` pair of `tls:`, paths relative to `base_dir`, checked to belong
/// together. Errors name `cert` or `key`.
pub fn certified_key(tls: &TlsFiles, base_dir: &Path) -> Result<Arc<CertifiedKey>, KeyError> {
    let (cert_path, key_path) = (base_dir.join(&tls.cert), base_dir.join(&tls.key));
    let certs = read_certs(&cert_path).map_err(|e| KeyError::new("cert", e))?;
    let key = read_key(&key_path).map_err(|e| KeyError::new("key", e))?;
    pair(certs, &key).map_err(|e| {
        let reason = match e {
            Mismatch::Unsupported(e) => format!("unsupported private key: {e}"),
            Mismatch::NotItsKey => format!(
                "this private key does not match the certificate in {}",
                cert_path.display()
            ),
        };
        KeyError::new("key", format!("{}: {reason}", key_path.display()))
    })
}

/// A certificate chain and its key from PEM text, as a `kubernetes.io/tls` Secret
/// holds them (`tls.crt`, `tls.key`); errors name the data key.
pub fn certified_key_from_pem(cert: &[u8], key: &[u8]) -> Result<Arc<CertifiedKey>, String> {
    let certs = rustls_pemfile::certs(&mut &cert[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("tls.crt: invalid PEM: {e}"))?;
    if certs.is_empty() {
        return Err("tls.crt: no PEM certificate found".into());
    }
    let key = rustls_pemfile::private_key(&mut &key[..])
        .map_err(|e| format!("tls.key: invalid PEM: {e}"))?
        .ok_or("tls.key: no PEM private key found")?;
    pair(certs, &key).map_err(|e| match e {
        Mismatch::Unsupported(e) => format!("tls.key: unsupported private key: {e}"),
        Mismatch::NotItsKey => "tls.key does not match the certificate in tls.crt".into(),
    })
}

enum Mismatch {
    Unsupported(rustls::Error),
    NotItsKey,
}

fn pair(
    certs: Vec<CertificateDer<'static>>,
    key: &PrivateKeyDer<'static>,
) -> Result<Arc<CertifiedKey>, Mismatch> {
    let signing =
        rustls::crypto::ring::sign::any_supported_type(key).map_err(Mismatch::Unsupported)?;
    let certified = CertifiedKey::new(certs, signing);
    certified.keys_match().map_err(|_| Mismatch::NotItsKey)?;
    Ok(Arc::new(certified))
}

/// PEM certificates (a chain: leaf first).
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = read_regular(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: invalid PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate found", path.display()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let pem = read_regular(path).map_err(|e| format!("{}: {e}", path.display()))?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| format!("{}: invalid PEM: {e}", path.display()))?
        .ok_or_else(|| format!("{}: no PEM private key found", path.display()))
}
