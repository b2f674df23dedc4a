//! The requests the Observatory makes, made the same way: HTTP/1.1 with its
//! headers, redirects followed one by one and recorded, a cookie jar per chain, a
//! retry without certificate verification when verification fails, and the CORS
//! probe.

use std::collections::HashMap;
use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use reqwest::header::{HeaderMap, HeaderValue};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use url::Url;

use crate::observatory::cookies::Jar;
use crate::observatory::{page_facts, Hop, PageFacts, Response, Retrieval};
use crate::rewrite::decode::{Coding, Decoder};

/// What the Observatory's client sends with every request.
const ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
const ACCEPT_ENCODING: &str = "gzip, compress, deflate, br";
const USER_AGENT: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:129.0) Gecko/20100101 Firefox/129.0 Observatory/129.0";
/// The CORS probe's foreign Origin.
pub const PROBE_ORIGIN: &str = "https://http-observatory.security.mozilla.org";
const REDIRECT_STATUSES: [u16; 5] = [301, 302, 303, 307, 308];

/// How to reach the site and how far to go.
#[derive(Debug, Clone)]
pub struct Target {
    pub host: String,
    pub http_port: u16,
    pub https_port: u16,
    /// `--resolve host:port:addr` entries.
    pub resolve: Vec<(String, u16, IpAddr)>,
    /// Extra trusted CA certificates (`--cacert`).
    pub ca_certs: Vec<CertificateDer<'static>>,
    pub timeout: Duration,
    pub max_redirects: usize,
    /// The most of an HTML body read for the page tests.
    pub max_body: usize,
}

/// One chain of requests from a start URL, as the Observatory's `Session`.
struct Chain {
    response: Option<Response>,
    body: Option<Vec<u8>>,
    /// The body did not end within the limit or before the deadline.
    truncated: bool,
    hops: Vec<Hop>,
    jar: Jar,
    /// The URL of the last request, for the CORS probe.
    last_url: Url,
    /// Whether certificates were verified (false after a retry without).
    verified: bool,
}

/// Clients by verification and address override (with the host it is for: a
/// client pins only that host), built on first use.
struct Clients<'t> {
    target: &'t Target,
    built: HashMap<(bool, Option<(String, SocketAddr)>), Client>,
}

impl<'t> Clients<'t> {
    /// `Err(false)`: no client could be built (reported like a failed request).
    fn for_url(&mut self, url: &Url, verify: bool) -> Result<Client, bool> {
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let port = url.port_or_known_default().unwrap_or(0);
        let over = self
            .target
            .resolve
            .iter()
            .find(|(h, p, _)| h.eq_ignore_ascii_case(&host) && *p == port)
            .map(|(_, p, addr)| SocketAddr::new(*addr, *p));
        let key = (verify, over.map(|a| (host.clone(), a)));
        if let Some(c) = self.built.get(&key) {
            return Ok(c.clone());
        }
        let mut b = Client::builder()
            .use_preconfigured_tls(tls_config(&self.target.ca_certs, verify))
            .redirect(reqwest::redirect::Policy::none())
            .http1_only()
            .no_proxy()
            .timeout(self.target.timeout);
        if let Some(addr) = over {
            b = b.resolve(&host, addr);
        }
        let client = b.build().map_err(|_| false)?;
        self.built.insert(key, client.clone());
        Ok(client)
    }
}

/// Trusts the system's roots plus `extra`; `verify: false` trusts anything.
fn tls_config(extra: &[CertificateDer<'static>], verify: bool) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions");
    let mut config = if verify {
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
        roots.add_parsable_certificates(extra.iter().cloned());
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth()
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

/// The Observatory's second try after a certificate error: no verification, and
/// the results then say the chain is invalid.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Whether a request failed on the server's certificate (the TLS error sits in
/// `io::Error`s nested in the connector's error).
fn is_certificate_error(e: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        let mut inner = err;
        loop {
            if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
                return matches!(
                    tls,
                    rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
                );
            }
            match inner
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
            {
                Some(next) => inner = next,
                None => break,
            }
        }
        source = err.source();
    }
    false
}

fn html_type(headers: &[(String, String)]) -> bool {
    headers
        .iter()
        .find(|(n, _)| n == "content-type")
        .is_some_and(|(_, v)| {
            crate::observatory::HTML_TYPES.contains(&v.split(';').next().unwrap_or(""))
        })
}

/// Reads at most `limit` bytes of a body, decoding its content coding, and stops
/// at `deadline`: the client's timeout bounds each read, not the whole body, so a
/// site dripping a byte at a time could otherwise hold the scan for ever. Also
/// says whether that was the whole body.
fn read_body(
    mut resp: reqwest::blocking::Response,
    limit: usize,
    deadline: Instant,
) -> (Vec<u8>, bool) {
    let coding = resp
        .headers()
        .get("content-encoding")
        .and_then(|v| Coding::from_header(v.as_bytes()));
    let mut raw = Vec::new();
    // Compressed bodies are read a little further: the limit is on decoded bytes.
    let read_limit = if coding.is_some() {
        limit.saturating_mul(4)
    } else {
        limit
    };
    let mut buf = [0u8; 16 * 1024];
    let mut ended = false;
    while Instant::now() < deadline {
        // One byte past the limit tells a body that ends there from a longer one.
        let want = buf.len().min(read_limit + 1 - raw.len());
        match resp.read(&mut buf[..want]) {
            // A body cut by the peer counts as ended, as the Observatory reads it.
            Ok(0) | Err(_) => {
                ended = true;
                break;
            }
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
        if raw.len() > read_limit {
            break;
        }
    }
    let mut whole = ended;
    let mut body = match coding {
        None => raw,
        Some(c) => {
            // Small input pieces bound what each step may expand to; decoding stops
            // at the limit, so a decompression bomb costs at most the limit.
            let mut d = Decoder::new(c);
            let mut out = Vec::new();
            for piece in raw.chunks(4096) {
                match d.decode(piece) {
                    Ok(more) => out.extend(more),
                    Err(_) => break,
                }
                if out.len() >= limit {
                    whole = false;
                    break;
                }
            }
            if out.len() < limit {
                if let Ok(rest) = d.finish() {
                    out.extend(rest);
                }
            }
            out
        }
    };
    whole &= body.len() <= limit;
    body.truncate(limit);
    (body, whole)
}

fn headers_of(resp: &reqwest::blocking::Response) -> Vec<(String, String)> {
    resp.headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_string(), latin1(v.as_bytes())))
        .collect()
}

/// A header value as Node's HTTP parser gives it: each byte one character.
fn latin1(bytes: &[u8]) -> String {
    bytes.iter().copied().map(char::from).collect()
}

fn base_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("accept", HeaderValue::from_static(ACCEPT));
    h.insert("user-agent", HeaderValue::from_static(USER_AGENT));
    h.insert("accept-encoding", HeaderValue::from_static(ACCEPT_ENCODING));
    h
}

/// Follows one chain from `start`; on a certificate error, starts over without
/// verification, as the Observatory does.
fn chain(clients: &mut Clients, start: &Url, verify: bool) -> Chain {
    let mut c = Chain {
        response: None,
        body: None,
        truncated: false,
        hops: Vec::new(),
        jar: Jar::default(),
        last_url: start.clone(),
        verified: verify,
    };
    let mut url = start.clone();
    loop {
        let sent = clients.for_url(&url, verify).and_then(|client| {
            let mut req = client.get(url.clone()).headers(base_headers());
            if let Some(cookies) = c.jar.header_for(&url) {
                req = req.header("cookie", cookies);
            }
            req.send().map_err(|e| verify && is_certificate_error(&e))
        });
        let resp = match sent {
            Ok(resp) => resp,
            Err(true) => return chain(clients, start, false),
            Err(false) => return c,
        };
        let status = resp.status().as_u16();
        let headers = headers_of(&resp);
        for (_, line) in headers.iter().filter(|(n, _)| n == "set-cookie") {
            c.jar.store(line, &url);
        }
        c.hops.push(Hop {
            url: url.clone(),
            status,
        });
        c.last_url = url.clone();
        if c.hops.len() <= clients.target.max_redirects && REDIRECT_STATUSES.contains(&status) {
            // A redirect without Location: axios resolves `undefined` as a path.
            let location = resp
                .headers()
                .get("location")
                .map_or("undefined".into(), |v| latin1(v.as_bytes()));
            match url.join(&location) {
                Ok(next) => {
                    url = next;
                    continue;
                }
                Err(_) => return c,
            }
        }
        if html_type(&headers) {
            let deadline = Instant::now() + clients.target.timeout;
            let (body, whole) = read_body(resp, clients.target.max_body, deadline);
            c.body = Some(body);
            c.truncated = !whole;
        }
        c.response = Some(Response {
            url: url.clone(),
            status,
            headers,
            verified: c.verified,
        });
        return c;
    }
}

/// The CORS probe: OPTIONS with a foreign Origin to the scored chain's last URL.
/// Only a 2xx answer counts (axios rejects the others).
fn cors_probe(clients: &mut Clients, url: &Url, verify: bool) -> Option<Response> {
    let mut url = url.clone();
    let mut method = reqwest::Method::OPTIONS;
    for _ in 0..=clients.target.max_redirects {
        let client = clients.for_url(&url, verify).ok()?;
        let resp = client
            .request(method.clone(), url.clone())
            .headers(base_headers())
            .header("access-control-request-method", "GET")
            .header("origin", PROBE_ORIGIN)
            .send()
            .ok()?;
        let status = resp.status().as_u16();
        if REDIRECT_STATUSES.contains(&status) {
            let location = resp.headers().get("location")?.to_str().ok()?.to_string();
            url = url.join(&location).ok()?;
            if status == 303 {
                method = reqwest::Method::GET;
            }
            continue;
        }
        if !(200..300).contains(&status) {
            return None;
        }
        return Some(Response {
            url,
            status,
            headers: headers_of(&resp),
            verified: verify,
        });
    }
    None
}

/// Everything a scan needs, fetched from `target`.
pub fn retrieve(target: &Target) -> Result<Retrieval, String> {
    let mut clients = Clients {
        target,
        built: HashMap::new(),
    };
    let start = |scheme: &str, port: u16| {
        Url::parse(&format!("{scheme}://{}:{port}/", target.host))
            .map_err(|e| format!("`{}` is not a host name: {e}", target.host))
    };
    let http = chain(&mut clients, &start("http", target.http_port)?, true);
    let https = chain(&mut clients, &start("https", target.https_port)?, true);
    let auto = if https.response.is_some() {
        &https
    } else {
        &http
    };
    let page = auto
        .body
        .as_deref()
        .filter(|_| auto.response.is_some())
        .map(|body| PageFacts {
            truncated: auto.truncated,
            ..page_facts(body)
        });
    let cors = match auto.response {
        Some(_) => cors_probe(&mut clients, &auto.last_url, auto.verified),
        None => None,
    };
    let cookies = auto.jar.clone().into_cookies();
    Ok(Retrieval {
        hostname: target.host.clone(),
        http_redirects: http.hops,
        http: http.response,
        https: https.response,
        page,
        cookies,
        cors,
    })
}
