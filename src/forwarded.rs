//! Who the client is, and whether the request counts as HTTPS.
//!
//! `X-Forwarded-*` is believed only from `trusted_proxies`. From anyone else those
//! headers are dropped and rewritten, so a client cannot claim HTTPS (skipping the
//! redirect) or forge its address for the upstream.

use std::net::IpAddr;

use http::HeaderValue;
use ipnet::IpNet;
use pingora_http::RequestHeader;

const X_FORWARDED_FOR: &str = "x-forwarded-for";
const X_FORWARDED_PROTO: &str = "x-forwarded-proto";
/// Forwarding headers that only a trusted proxy may set.
const UNTRUSTED_DROP: &[&str] = &[
    "forwarded",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-real-ip",
];

pub fn is_trusted(trusted: &[IpNet], ip: Option<IpAddr>) -> bool {
    ip.is_some_and(|ip| trusted.iter().any(|net| net.contains(&ip)))
}

/// The first value of `X-Forwarded-Proto` is `https` (as Django's
/// SECURE_PROXY_SSL_HEADER compares it). Call only for trusted peers.
pub fn forwarded_https(req: &RequestHeader) -> bool {
    req.headers
        .get(X_FORWARDED_PROTO)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|first| first.trim().eq_ignore_ascii_case("https"))
}

/// Sets the forwarding headers of the request sent upstream.
pub fn rewrite(req: &mut RequestHeader, client: Option<IpAddr>, trusted: bool, https: bool) {
    let scheme = if https { "https" } else { "http" };
    if trusted {
        let prior: Vec<&str> = req
            .headers
            .get_all(X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let mut chain = prior.join(", ");
        if let Some(ip) = client {
            if !chain.is_empty() {
                chain.push_str(", ");
            }
            chain.push_str(&ip.to_string());
        }
        if !chain.is_empty() {
            set(req, X_FORWARDED_FOR, &chain);
        }
        if !req.headers.contains_key(X_FORWARDED_PROTO) {
            set(req, X_FORWARDED_PROTO, scheme);
        }
    } else {
        for name in UNTRUSTED_DROP {
            req.remove_header(*name);
        }
        match client {
            Some(ip) => set(req, X_FORWARDED_FOR, &ip.to_string()),
            None => {
                req.remove_header(X_FORWARDED_FOR);
            }
        }
        set(req, X_FORWARDED_PROTO, scheme);
    }
}

fn set(req: &mut RequestHeader, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        let _ = req.insert_header(name, v);
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
