//! Who the client is, and whether the request counts as HTTPS.
//!
//! `X-Forwarded-*` is believed only from `trusted_proxies`. From anyone else those
//! headers are dropped and rewritten, so a client cannot claim HTTPS (skipping the
//! redirect) or forge its address for the upstream.

use std::io::Write;
use std::net::IpAddr;

use http::{HeaderName, HeaderValue};
use ipnet::IpNet;
use pingora_http::RequestHeader;
use smallvec::SmallVec;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
// Names as written on HTTP/1.
const XFF_CASE: &str = "X-Forwarded-For";
const XFP_CASE: &str = "X-Forwarded-Proto";
/// A header value built on the stack: an address chain rarely exceeds 64 bytes.
type Value = SmallVec<[u8; 64]>;
/// Forwarding headers that only a trusted proxy may set.
const UNTRUSTED_DROP: [HeaderName; 4] = [
    http::header::FORWARDED,
    HeaderName::from_static("x-forwarded-host"),
    HeaderName::from_static("x-forwarded-port"),
    HeaderName::from_static("x-real-ip"),
];

pub fn is_trusted(trusted: &[IpNet], ip: Option<IpAddr>) -> bool {
    ip.is_some_and(|ip| trusted.iter().any(|net| net.contains(&ip)))
}

/// The first value of `X-Forwarded-Proto` is `https` (as Django's
/// SECURE_PROXY_SSL_HEADER compares it). Call only for trusted peers.
pub fn forwarded_https(req: &RequestHeader) -> bool {
    req.headers
        .get(&X_FORWARDED_PROTO)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|first| first.trim().eq_ignore_ascii_case("https"))
}

/// Sets the forwarding headers of the request sent upstream.
pub fn rewrite(req: &mut RequestHeader, client: Option<IpAddr>, trusted: bool, https: bool) {
    let scheme = HeaderValue::from_static(if https { "https" } else { "http" });
    if trusted {
        // The prior chain, then the client: built on the stack, copied once into the value.
        let mut chain = Value::new();
        for v in req.headers.get_all(&X_FORWARDED_FOR) {
            if v.to_str().is_ok() {
                append_hop(&mut chain, v.as_bytes());
            }
        }
        if let Some(ip) = client {
            append_ip(&mut chain, ip);
        }
        if !chain.is_empty() {
            set_forwarded_for(req, &chain);
        }
        if !req.headers.contains_key(&X_FORWARDED_PROTO) {
            let _ = req.insert_header(XFP_CASE, scheme);
        }
    } else {
        for name in &UNTRUSTED_DROP {
            req.remove_header(name);
        }
        match client {
            Some(ip) => {
                let mut value = Value::new();
                append_ip(&mut value, ip);
                set_forwarded_for(req, &value);
            }
            None => {
                req.remove_header(&X_FORWARDED_FOR);
            }
        }
        let _ = req.insert_header(XFP_CASE, scheme);
    }
}

fn append_hop(chain: &mut Value, hop: &[u8]) {
    if !chain.is_empty() {
        chain.extend_from_slice(b", ");
    }
    chain.extend_from_slice(hop);
}

fn append_ip(chain: &mut Value, ip: IpAddr) {
    // An address is at most 45 bytes of text: formats without a heap String.
    let mut text = [0u8; 48];
    let mut cursor = std::io::Cursor::new(&mut text[..]);
    if write!(cursor, "{ip}").is_ok() {
        let len = cursor.position() as usize;
        append_hop(chain, &text[..len]);
    }
}

fn set_forwarded_for(req: &mut RequestHeader, value: &[u8]) {
    if let Ok(v) = HeaderValue::from_bytes(value) {
        let _ = req.insert_header(XFF_CASE, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        for (n, v) in headers {
            r.append_header(n.to_string(), *v).unwrap();
        }
        r
    }

    fn get(r: &RequestHeader, name: &str) -> Option<String> {
        r.headers.get(name).map(|v| v.to_str().unwrap().to_string())
    }

    #[test]
    fn trust_and_https() {
        let nets: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        assert!(is_trusted(&nets, Some("10.1.2.3".parse().unwrap())));
        assert!(!is_trusted(&nets, Some("192.0.2.1".parse().unwrap())));
        assert!(!is_trusted(&nets, None));
        assert!(forwarded_https(&request(&[(
            "X-Forwarded-Proto",
            "HTTPS, http"
        )])));
        assert!(!forwarded_https(&request(&[(
            "X-Forwarded-Proto",
            "http, https"
        )])));
        assert!(!forwarded_https(&request(&[])));
    }

    #[test]
    fn untrusted_clients_cannot_forge() {
        let mut r = request(&[
            ("X-Forwarded-For", "1.2.3.4"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "evil.test"),
            ("Forwarded", "for=1.2.3.4"),
        ]);
        rewrite(&mut r, Some("192.0.2.7".parse().unwrap()), false, false);
        assert_eq!(get(&r, "x-forwarded-for").unwrap(), "192.0.2.7");
        assert_eq!(get(&r, "x-forwarded-proto").unwrap(), "http");
        assert_eq!(get(&r, "x-forwarded-host"), None);
        assert_eq!(get(&r, "forwarded"), None);
    }

    #[test]
    fn the_longest_addresses_are_written_whole() {
        let v6 = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
        let mut r = request(&[("X-Forwarded-For", "203.0.113.9")]);
        rewrite(&mut r, Some(v6.parse().unwrap()), true, false);
        assert_eq!(
            get(&r, "x-forwarded-for").unwrap(),
            format!("203.0.113.9, {v6}")
        );
        let mut r = request(&[]);
        rewrite(
            &mut r,
            Some("::ffff:255.255.255.255".parse().unwrap()),
            false,
            false,
        );
        assert_eq!(
            get(&r, "x-forwarded-for").unwrap(),
            "::ffff:255.255.255.255"
        );
    }

    #[test]
    fn trusted_proxies_extend_the_chain() {
        let mut r = request(&[
            ("X-Forwarded-For", "203.0.113.9"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "app.test"),
        ]);
        rewrite(&mut r, Some("10.0.0.2".parse().unwrap()), true, true);
        assert_eq!(get(&r, "x-forwarded-for").unwrap(), "203.0.113.9, 10.0.0.2");
        assert_eq!(get(&r, "x-forwarded-proto").unwrap(), "https");
        assert_eq!(get(&r, "x-forwarded-host").unwrap(), "app.test");
    }
}
