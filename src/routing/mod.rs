//! Host -> virtual host lookup; [`paths`] then picks the route inside the vhost.
//!
//! Exact names and wildcard suffixes live in hash maps; a lookup costs one probe for
//! the exact name plus one per label of the request's host, whatever the number of
//! vhosts. The most specific match wins: exact, then the longest wildcard suffix,
//! then the default vhost (`*`).

pub mod paths;

use std::borrow::Cow;
use std::collections::HashMap;

use pingora_http::RequestHeader;

use crate::config::values::{split_host_port, HostPattern};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostMatch {
    Exact,
    Wildcard,
    /// Only the catch-all `*` matched: the Host is not one the vhost names.
    Default,
}

#[derive(Debug, Clone, Default)]
pub struct Router {
    exact: HashMap<Box<str>, usize>,
    suffix: HashMap<Box<str>, usize>,
    /// The lengths of the wildcard suffixes, as bits: only suffixes of the request's
    /// host that have one of them are looked up, so a lookup hashes at most one
    /// suffix per configured length, however many labels the host has.
    suffix_lengths: [u64; 4],
    default: Option<usize>,
}

impl Router {
    /// Registers a vhost's pattern; returns the index of the vhost that already has it.
    pub fn insert(&mut self, pattern: &HostPattern, vhost: usize) -> Result<(), usize> {
        let slot = match pattern {
            HostPattern::Any => {
                return match self.default.replace(vhost) {
                    Some(prev) if prev != vhost => Err(prev),
                    _ => Ok(()),
                }
            }
            HostPattern::Exact(h) => self.exact.entry(h.as_str().into()),
            HostPattern::Suffix(s) => {
                if let Some(bits) = self.suffix_lengths.get_mut(s.len() / 64) {
                    *bits |= 1 << (s.len() % 64);
                }
                self.suffix.entry(s.as_str().into())
            }
        };
        match slot {
            std::collections::hash_map::Entry::Occupied(o) if *o.get() != vhost => Err(*o.get()),
            std::collections::hash_map::Entry::Occupied(_) => Ok(()),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(vhost);
                Ok(())
            }
        }
    }

    fn has_suffix_length(&self, len: usize) -> bool {
        self.suffix_lengths
            .get(len / 64)
            .is_some_and(|bits| bits & (1 << (len % 64)) != 0)
    }

    /// `host` must already be normalized with [`normalize_host`].
    pub fn route(&self, host: &str) -> Option<(usize, HostMatch)> {
        if let Some(&i) = self.exact.get(host) {
            return Some((i, HostMatch::Exact));
        }
        if !self.suffix.is_empty() {
            let mut rest = host;
            while let Some(dot) = rest.find('.') {
                rest = &rest[dot + 1..];
                if !self.has_suffix_length(rest.len()) {
                    continue;
                }
                if let Some(&i) = self.suffix.get(rest) {
                    return Some((i, HostMatch::Wildcard));
                }
            }
        }
        self.default.map(|i| (i, HostMatch::Default))
    }
}

/// The request's host, checked and normalized: the Host header, or the URI's
/// authority (HTTP/2, absolute-form). `None` when it is not a host name or IP
/// literal with an optional port, or when an HTTP/1.1 request has none at all;
/// an HTTP/1.0 request without one gets the empty name (only `*` takes it).
pub fn request_host(req: &RequestHeader) -> Option<Cow<'_, str>> {
    let raw = match req.headers.get(http::header::HOST) {
        Some(h) => h.to_str().ok()?,
        None => match req.uri.authority() {
            Some(a) => a.as_str(),
            None if req.version == http::Version::HTTP_10 => return Some(Cow::Borrowed("")),
            None => return None,
        },
    };
    normalize_host(raw)
}

/// Checks a Host value (RFC 3986 reg-name or IP-literal, optional port; letters,
/// digits, `-`, `.`, `_`; at most 253 characters and labels of at most 63), and
/// lower-cases it without its port and trailing dot. Allocates only when the
/// host has upper-case letters.
pub fn normalize_host(raw: &str) -> Option<Cow<'_, str>> {
    let (host, port) = split_host_port(raw)?;
    if let Some(port) = port {
        port_number(port)?;
    }
    let host = if let Some(literal) = host.strip_prefix('[') {
        literal
            .strip_suffix(']')?
            .parse::<std::net::Ipv6Addr>()
            .ok()?;
        host
    } else {
        let name = host.strip_suffix('.').unwrap_or(host);
        check_host_name(name)?;
        name
    };
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Some(Cow::Owned(host.to_ascii_lowercase()))
    } else {
        Some(Cow::Borrowed(host))
    }
}

/// A port of one to five digits below 65536.
fn port_number(port: &str) -> Option<u16> {
    if port.is_empty() || port.len() > 5 {
        return None;
    }
    let value = port.bytes().try_fold(0u32, |n, b| {
        b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0'))
    })?;
    u16::try_from(value).ok()
}

/// Labels of 1 to 63 letters, digits, `-` or `_`, at most 253 bytes in all; one
/// pass over the bytes, since every request's Host goes through it.
fn check_host_name(name: &str) -> Option<()> {
    if name.is_empty() || name.len() > MAX_HOST_LEN {
        return None;
    }
    let mut label = 0usize;
    for &b in name.as_bytes() {
        match b {
            b'.' if label > 0 => label = 0,
            b if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' => {
                label += 1;
                if label > 63 {
                    return None;
                }
            }
            _ => return None,
        }
    }
    (label > 0).then_some(())
}

/// The longest host name (RFC 1035), so the router never sees a longer one.
const MAX_HOST_LEN: usize = 253;

#[cfg(test)]
mod tests {
    use super::*;

    fn router(entries: &[(&str, usize)]) -> Router {
        let mut r = Router::default();
        for (p, i) in entries {
            r.insert(&HostPattern::try_from(p.to_string()).unwrap(), *i)
                .unwrap();
        }
        r
    }

    #[test]
    fn most_specific_match_wins() {
        let r = router(&[
            ("example.com", 0),
            ("*.example.com", 1),
            ("*.api.example.com", 2),
            ("*", 3),
        ]);
        assert_eq!(r.route("example.com"), Some((0, HostMatch::Exact)));
        assert_eq!(r.route("www.example.com"), Some((1, HostMatch::Wildcard)));
        assert_eq!(r.route("a.b.example.com"), Some((1, HostMatch::Wildcard)));
        assert_eq!(
            r.route("v1.api.example.com"),
            Some((2, HostMatch::Wildcard))
        );
        assert_eq!(r.route("evil-example.com"), Some((3, HostMatch::Default)));
        assert_eq!(
            r.route("example.com.evil.net"),
            Some((3, HostMatch::Default))
        );
    }

    #[test]
    fn no_default_means_no_match() {
        let r = router(&[("example.com", 0)]);
        assert_eq!(r.route("other.com"), None);
    }

    #[test]
    fn duplicates_are_reported() {
        let mut r = router(&[("example.com", 0), ("*", 0)]);
        let p = |s: &str| HostPattern::try_from(s.to_string()).unwrap();
        assert_eq!(r.insert(&p("EXAMPLE.com"), 1), Err(0));
        assert_eq!(r.insert(&p("*"), 2), Err(0));
        assert_eq!(r.insert(&p("example.com"), 0), Ok(()));
    }

    #[test]
    fn normalization() {
        let n = |s| normalize_host(s).map(|h| h.into_owned());
        assert_eq!(n("Example.COM:8080").as_deref(), Some("example.com"));
        assert_eq!(n("example.com.").as_deref(), Some("example.com"));
        assert_eq!(n("[::1]:443").as_deref(), Some("[::1]"));
        assert_eq!(n("[::1]").as_deref(), Some("[::1]"));
        assert_eq!(n("127.0.0.1:80").as_deref(), Some("127.0.0.1"));
        assert_eq!(n("under_score.test").as_deref(), Some("under_score.test"));
        assert_eq!(n("a.test:65535").as_deref(), Some("a.test"));
        assert_eq!(n("a.test:00080").as_deref(), Some("a.test"));
        let longest_label = format!("{}.test", "a".repeat(63));
        assert_eq!(n(&longest_label), Some(longest_label.clone()));
        let longest_name = format!("{}a.test", "abcdefgh.".repeat(27));
        assert_eq!(longest_name.len(), 249);
        assert_eq!(n(&format!("{longest_name}:1")), Some(longest_name));
        assert!(matches!(
            normalize_host("plain.test"),
            Some(Cow::Borrowed(_))
        ));
    }

    #[test]
    fn forged_hosts_are_refused() {
        let long_label = format!("{}.test", "a".repeat(64));
        let long_name = format!("{}test", "abcdefgh.".repeat(28));
        for bad in [
            "evil.com/.secure.test",
            "evil.com?.secure.test",
            "evil.com#.secure.test",
            "evil.com\\.secure.test",
            "user@evil.com",
            "evil.com:80/x",
            "a b.test",
            "a%2eb.test",
            "a..b.test",
            "a.test..",
            "a.test:65536",
            "a.test:-1",
            "a.test:+80",
            ".",
            "a:b:c",
            ".a.test",
            "",
            ":80",
            "a.test:",
            "a.test:99999",
            "a.test:8o",
            "[::1",
            "[::1]x",
            "[::1]:",
            "[v1.x]",
            "[1.2.3.4]",
            &long_label,
            &long_name,
        ] {
            assert_eq!(normalize_host(bad), None, "{bad:?}");
        }
        assert_eq!(long_name.len(), 256);
    }

    #[test]
    fn wildcard_lookup_probes_only_configured_suffix_lengths() {
        let r = router(&[("*.secure.test", 0)]);
        assert!(r.has_suffix_length("secure.test".len()));
        assert!(!r.has_suffix_length("x.secure.test".len()));
        let host = format!("{}secure.test", "a.".repeat(120));
        assert_eq!(r.route(&host), Some((0, HostMatch::Wildcard)));
        assert_eq!(r.route("secure.test"), None);
    }
}
