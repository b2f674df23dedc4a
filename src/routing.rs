//! Host -> virtual host lookup.
//!
//! Exact names and wildcard suffixes live in hash maps; a lookup costs one probe for
//! the exact name plus one per label of the request's host, whatever the number of
//! vhosts. The most specific match wins: exact, then the longest wildcard suffix,
//! then the default vhost (`*`).

use std::borrow::Cow;
use std::collections::HashMap;

use crate::config::values::HostPattern;

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
            HostPattern::Suffix(s) => self.suffix.entry(s.as_str().into()),
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

    /// `host` must already be normalized with [`normalize_host`].
    pub fn route(&self, host: &str) -> Option<(usize, HostMatch)> {
        if let Some(&i) = self.exact.get(host) {
            return Some((i, HostMatch::Exact));
        }
        if !self.suffix.is_empty() {
            let mut rest = host;
            while let Some(dot) = rest.find('.') {
                rest = &rest[dot + 1..];
                if let Some(&i) = self.suffix.get(rest) {
                    return Some((i, HostMatch::Wildcard));
                }
            }
        }
        self.default.map(|i| (i, HostMatch::Default))
    }
}

/// Lower-cases a Host value and strips its port and trailing dot. Allocates only
/// when the host has upper-case letters.
pub fn normalize_host(raw: &str) -> Cow<'_, str> {
    let raw = raw.trim();
    let host = if raw.starts_with('[') {
        match raw.find(']') {
            Some(end) => &raw[..=end],
            None => raw,
        }
    } else {
        match raw.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => raw,
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

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
        assert_eq!(normalize_host("Example.COM:8080"), "example.com");
        assert_eq!(normalize_host("example.com."), "example.com");
        assert_eq!(normalize_host("[::1]:443"), "[::1]");
        assert_eq!(normalize_host("127.0.0.1:80"), "127.0.0.1");
        assert!(matches!(normalize_host("plain.test"), Cow::Borrowed(_)));
    }
}
