//! Throwaway certificates (rcgen) and real TLS clients for the tests.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};

/// A test CA, generated at run time; nothing secret is committed.
pub struct TestPki {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A leaf certificate and its key, in PEM, plus the leaf's DER to compare with
/// what a server presents.
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: Vec<u8>,
}

impl TestPki {
    pub fn new() -> TestPki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "pingora-secgw test CA");
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        TestPki { issuer }
    }

    pub fn ca_pem(&self) -> String {
        self.issuer.pem()
    }

    pub fn leaf(&self, names: &[&str]) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// reqwest is built without a bundled crypto provider; it uses the process default.
pub fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A rustls client trusting only `ca_pem`, offering `alpn`.
pub fn client_config(ca_pem: &str, alpn: &[&[u8]]) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for der in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots.add(der.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

/// What a TLS handshake showed.
pub struct Handshake {
    pub leaf: Vec<u8>,
    pub alpn: Option<Vec<u8>>,
    pub version: rustls::ProtocolVersion,
}

/// A TLS client connection to `addr` sending `server_name` as SNI (an IP address
/// sends none), reads bounded by 10 s; the handshake happens on first I/O.
pub fn tls_stream(
    addr: SocketAddr,
    server_name: &str,
    config: rustls::ClientConfig,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let name = ServerName::try_from(server_name.to_string()).unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    rustls::StreamOwned::new(conn, sock)
}

/// Completes a handshake with `addr`, sending `server_name` as SNI (an IP address
/// sends none), and sends one HTTP/1.1 request so the server sees a whole exchange.
pub fn handshake(addr: SocketAddr, server_name: &str, config: rustls::ClientConfig) -> Handshake {
    let mut tls = tls_stream(addr, server_name, config);
    tls.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut sink = Vec::new();
    let _ = tls.read_to_end(&mut sink);
    let peer: Vec<CertificateDer> = tls.conn.peer_certificates().unwrap().to_vec();
    Handshake {
        leaf: peer[0].to_vec(),
        alpn: tls.conn.alpn_protocol().map(|p| p.to_vec()),
        version: tls.conn.protocol_version().unwrap(),
    }
}

/// An HTTPS client trusting `ca_pem`, resolving each name to the given address.
/// `h2` offers HTTP/2 and HTTP/1.1 by ALPN; otherwise only HTTP/1.1.
pub fn https_client(
    ca_pem: &str,
    h2: bool,
    resolve: &[(&str, SocketAddr)],
) -> reqwest::blocking::Client {
    install_provider();
    let alpn: &[&[u8]] = if h2 {
        &[b"h2", b"http/1.1"]
    } else {
        &[b"http/1.1"]
    };
    let mut builder = reqwest::blocking::Client::builder()
        .use_preconfigured_tls(client_config(ca_pem, alpn))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy();
    if !h2 {
        builder = builder.http1_only();
    }
    for (name, addr) in resolve {
        builder = builder.resolve(name, *addr);
    }
    builder.build().unwrap()
}

/// A rustls server config for a TLS upstream.
pub fn server_config(leaf: &Leaf) -> Arc<rustls::ServerConfig> {
    let certs = rustls_pemfile::certs(&mut leaf.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls_pemfile::private_key(&mut leaf.key_pem.as_bytes())
        .unwrap()
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    Arc::new(config)
}

/// The gateway with a plain listener, a TLS listener serving a fresh
/// certificate for `host`, and the admin listener; `rest` is the remainder of
/// gw.yaml (`vhosts:` ...). Returns the test CA too, for clients to trust.
pub fn gateway_with_tls(host: &str, rest: &str) -> (super::Gateway, TestPki) {
    let pki = TestPki::new();
    let leaf = pki.leaf(&[host]);
    let yaml = format!(
        "listeners:\n  - address: \"{{listen}}\"\n  - address: \"{{tls}}\"\n    \
         tls: {{cert: certs/site.pem, key: certs/site.key}}\nadmin: {{address: \"{{admin}}\"}}\n{rest}"
    );
    let files = [
        ("certs/site.pem", leaf.cert_pem.as_str()),
        ("certs/site.key", leaf.key_pem.as_str()),
    ];
    let mut gw = super::Gateway::launch(&yaml, &files, super::free_port());
    gw.wait_for(gw.tls_addr);
    gw.wait_for(gw.addr);
    (gw, pki)
}
