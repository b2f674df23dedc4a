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
/// Headers through which a client names its address, scheme, host, URL or
/// identity to the upstream; only a trusted proxy may send them. Lower case, with
/// `-`: a name matches with `_` read as `-` (CGI and WSGI read both as
/// `HTTP_X_FORWARDED_FOR`).
const FORWARDING: [&str; 17] = [
    "forwarded",
    "forwarded-for",
    "x-forwarded",
    "x-url-scheme",
    "front-end-https",
    "x-real-ip",
    "client-ip",
    "x-client-ip",
    "true-client-ip",
    "x-cluster-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "x-originating-ip",
    "x-remote-ip",
    "x-remote-addr",
    "x-host",
    "x-rewrite-url",
];

/// Whole families: `X-Forwarded-For`, `-Proto`, `-Host`, `-Uri`, `-Email` (set by
/// authenticating proxies) ...; `X-Original-URL`, `-URI`, `-Host` ...
const FORWARDING_PREFIXES: [&str; 2] = ["x-forwarded-", "x-original-"];

/// `a` equals `b`, reading `_` in `b` as `-`.
fn same_name(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .all(|(x, y)| x == y || (x == b'-' && y == b'_'))
}

/// Whether `name` (lower case, as `HeaderMap` keeps it) is a forwarding header,
/// reading `_` as `-`.
fn is_forwarding(name: &str) -> bool {
    FORWARDING.iter().any(|f| same_name(f, name))
        || FORWARDING_PREFIXES
            .iter()
            .any(|p| name.len() > p.len() && same_name(p, &name[..p.len()]))
}

/// Request headers the upstream must not see: forwarding headers from an
/// untrusted peer (in any spelling), and names with `_` unless `keep_underscores`
/// (nginx's `underscores_in_headers`).
pub fn strip_untrusted(req: &mut RequestHeader, trusted: bool, keep_underscores: bool) {
    let doomed: SmallVec<[HeaderName; 4]> = req
        .headers
        .keys()
        .filter(|name| {
            let text = name.as_str();
            let underscore = text.as_bytes().contains(&b'_');
            (underscore && !keep_underscores) || (!trusted && is_forwarding(text))
        })
        .cloned()
        .collect();
    for name in &doomed {
        req.remove_header(name);
    }
}

pub fn is_trusted(trusted: &[IpNet], ip: Option<IpAddr>) -> bool {
    ip.is_some_and(|ip| trusted.iter().any(|net| net.contains(&ip)))
}

/// The client as the gateway trusts it: the peer itself, unless it is a
/// trusted proxy; then the nearest address of its `X-Forwarded-For` chain
/// that is not a trusted proxy (nginx's `real_ip_recursive on`), read from the
/// right and stopping at the first entry that is no address.
pub fn client_address(
    req: &RequestHeader,
    peer: Option<IpAddr>,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    if !is_trusted(trusted, peer) {
        return peer;
    }
    let mut client = peer;
    let values: SmallVec<[&HeaderValue; 2]> =
        req.headers.get_all(&X_FORWARDED_FOR).iter().collect();
    for value in values.into_iter().rev() {
        let Ok(text) = value.to_str() else {
            return client;
        };
        for hop in text.rsplit(',') {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) => {
                    client = Some(ip);
                    if !is_trusted(trusted, client) {
                        return client;
                    }
                }
                Err(_) => return client,
            }
        }
    }
    client
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

/// Sets the forwarding headers of the request sent upstream; call
/// [`strip_untrusted`] first.
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

/// The separator before another hop, when the chain has one already.
fn next_hop(chain: &mut Value) {
    if !chain.is_empty() {
        chain.extend_from_slice(b", ");
    }
}

fn append_hop(chain: &mut Value, hop: &[u8]) {
    next_hop(chain);
    chain.extend_from_slice(hop);
}

fn append_ip(chain: &mut Value, ip: IpAddr) {
    next_hop(chain);
    match ip {
        // Dotted decimal by hand: `fmt` cost about 1,000 instructions per request.
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    chain.push(b'.');
                }
                if octet >= 100 {
                    chain.push(b'0' + octet / 100);
                }
                if octet >= 10 {
                    chain.push(b'0' + octet / 10 % 10);
                }
                chain.push(b'0' + octet % 10);
            }
        }
        // An address is at most 45 bytes of text: formats without a heap String.
        IpAddr::V6(v6) => {
            let mut text = [0u8; 48];
            let mut cursor = std::io::Cursor::new(&mut text[..]);
            if write!(cursor, "{v6}").is_ok() {
                let len = cursor.position() as usize;
                chain.extend_from_slice(&text[..len]);
            }
        }
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
    fn the_client_is_the_nearest_untrusted_hop() {
        let nets: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let client = |peer: &str, xff: &[&str]| {
            let headers: Vec<_> = xff.iter().map(|v| ("X-Forwarded-For", *v)).collect();
            client_address(&request(&headers), Some(peer.parse().unwrap()), &nets)
                .map(|ip| ip.to_string())
        };
        let some = |s: &str| Some(s.to_string());
        // An untrusted peer's claims are ignored.
        assert_eq!(client("192.0.2.1", &["203.0.113.9"]), some("192.0.2.1"));
        assert_eq!(
            client("10.0.0.1", &["203.0.113.9, 10.0.0.2"]),
            some("203.0.113.9")
        );
        assert_eq!(
            client("10.0.0.1", &["198.51.100.1", "203.0.113.9 , 10.0.0.2"]),
            some("203.0.113.9")
        );
        assert_eq!(
            client("10.0.0.1", &["10.0.0.3", "10.0.0.2"]),
            some("10.0.0.3")
        );
        // A forged entry ends the walk at the last address read.
        assert_eq!(
            client("10.0.0.1", &["203.0.113.9, x\"y, 10.0.0.2"]),
            some("10.0.0.2")
        );
        assert_eq!(client("10.0.0.1", &[]), some("10.0.0.1"));
        assert_eq!(client("::1", &["2001:db8::1"]), some("::1"));
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
    fn forwarding_names_match_with_underscores() {
        assert!(is_forwarding("x-forwarded-for"));
        assert!(is_forwarding("x_forwarded_for"));
        assert!(is_forwarding("true_client-ip"));
        assert!(is_forwarding("x-forwarded-email"));
        assert!(is_forwarding("x_original_uri"));
        assert!(is_forwarding("client-ip"));
        assert!(!is_forwarding("x-forwarded-"));
        assert!(!is_forwarding("x-forwardedfor"));
        assert!(!is_forwarding("x-client-ips"));
    }

    #[test]
    fn underscores_are_dropped_unless_kept_and_spoofing_always() {
        let headers = [
            ("X_Forwarded_For", "1.2.3.4"),
            ("X-Client-IP", "1.2.3.4"),
            ("X_Custom", "a"),
            ("X-Custom", "b"),
        ];
        let names = |r: &RequestHeader| -> Vec<String> {
            let mut v: Vec<String> = r.headers.keys().map(|k| k.to_string()).collect();
            v.sort();
            v
        };
        let mut r = request(&headers);
        strip_untrusted(&mut r, false, false);
        assert_eq!(names(&r), ["x-custom"]);
        let mut r = request(&headers);
        strip_untrusted(&mut r, false, true);
        assert_eq!(names(&r), ["x-custom", "x_custom"]);
        let mut r = request(&headers);
        strip_untrusted(&mut r, true, false);
        assert_eq!(names(&r), ["x-client-ip", "x-custom"]);
    }

    #[test]
    fn untrusted_clients_cannot_forge() {
        let mut r = request(&[
            ("X-Forwarded-For", "1.2.3.4"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "evil.test"),
            ("Forwarded", "for=1.2.3.4"),
        ]);
        strip_untrusted(&mut r, false, false);
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

    #[test]
    fn addresses_are_written_as_std_writes_them() {
        for text in [
            "0.0.0.0",
            "9.10.99.100",
            "255.255.255.255",
            "192.0.2.7",
            "2001:db8::1",
            "::ffff:10.0.0.1",
        ] {
            let ip: IpAddr = text.parse().unwrap();
            let mut chain = Value::new();
            append_ip(&mut chain, ip);
            assert_eq!(chain.as_slice(), ip.to_string().as_bytes(), "{text}");
            append_ip(&mut chain, ip);
            assert_eq!(chain.as_slice(), format!("{ip}, {ip}").as_bytes());
        }
    }
}
