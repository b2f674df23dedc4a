//! Gateway API hostnames: a listener's and a route's, and what they have in common.
//!
//! A wildcard (`*.example.com`) matches any name below it, however deep, but not
//! `example.com` itself, as the router does for gw.yaml's wildcards.

use crate::config::values::HostPattern;

/// The names both a listener's hostname and a route's hostname take: the more
/// specific of the two when one contains the other, else none. No listener
/// hostname takes every name.
pub fn intersect(listener: &HostPattern, route: &HostPattern) -> Option<HostPattern> {
    match (listener, route) {
        (HostPattern::Any, r) => Some(r.clone()),
        (l, HostPattern::Any) => Some(l.clone()),
        (HostPattern::Exact(l), HostPattern::Exact(r)) => (l == r).then(|| listener.clone()),
        (HostPattern::Suffix(s), HostPattern::Exact(name))
        | (HostPattern::Exact(name), HostPattern::Suffix(s)) => {
            below(name, s).then(|| HostPattern::Exact(name.clone()))
        }
        (HostPattern::Suffix(a), HostPattern::Suffix(b)) => {
            if a == b || below(a, b) {
                Some(listener.clone())
            } else if below(b, a) {
                Some(route.clone())
            } else {
                None
            }
        }
    }
}

/// Whether `pattern` takes every name `inner` takes.
pub fn covers(pattern: &HostPattern, inner: &HostPattern) -> bool {
    match (pattern, inner) {
        (HostPattern::Any, _) => true,
        (_, HostPattern::Any) => false,
        (HostPattern::Exact(a), HostPattern::Exact(b)) => a == b,
        (HostPattern::Exact(_), HostPattern::Suffix(_)) => false,
        (HostPattern::Suffix(s), HostPattern::Exact(name)) => below(name, s),
        (HostPattern::Suffix(a), HostPattern::Suffix(b)) => a == b || below(b, a),
    }
}

/// `name` is at least one label below `suffix`.
fn below(name: &str, suffix: &str) -> bool {
    name.strip_suffix(suffix)
        .and_then(|rest| rest.strip_suffix('.'))
        .is_some_and(|label| !label.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> HostPattern {
        HostPattern::try_from(text.to_string()).unwrap()
    }

    fn i(l: &str, r: &str) -> Option<String> {
        intersect(&p(l), &p(r)).map(|h| h.to_string())
    }

    /// The examples of the Gateway API's HTTPRoute `hostnames` documentation and
    /// of HTTPRouteHostnameIntersection.
    #[test]
    fn intersections_follow_the_gateway_api() {
        assert_eq!(i("*", "a.test").as_deref(), Some("a.test"));
        assert_eq!(
            i("test.example.com", "*").as_deref(),
            Some("test.example.com")
        );
        assert_eq!(
            i("test.example.com", "test.example.com").as_deref(),
            Some("test.example.com")
        );
        assert_eq!(
            i("test.example.com", "*.example.com").as_deref(),
            Some("test.example.com")
        );
        assert_eq!(
            i("*.example.com", "test.example.com").as_deref(),
            Some("test.example.com")
        );
        assert_eq!(
            i("*.example.com", "foo.test.example.com").as_deref(),
            Some("foo.test.example.com")
        );
        assert_eq!(
            i("*.example.com", "*.example.com").as_deref(),
            Some("*.example.com")
        );
        assert_eq!(
            i("*.foo.example.com", "*.example.com").as_deref(),
            Some("*.foo.example.com")
        );
        assert_eq!(
            i("*.example.com", "*.foo.example.com").as_deref(),
            Some("*.foo.example.com")
        );
        assert_eq!(i("*.example.com", "example.com"), None);
        assert_eq!(i("*.example.com", "test.example.net"), None);
        assert_eq!(
            i("very.specific.com", "*.specific.com").as_deref(),
            Some("very.specific.com")
        );
        assert_eq!(i("*.wildcard.io", "wildcard.io"), None);
        assert_eq!(i("*.wildcard.io", "*.anotherwildcard.io"), None);
        assert_eq!(i("a.test", "b.test"), None);
        assert_eq!(i("*.evilexample.com", "*.example.com"), None);
    }

    #[test]
    fn coverage() {
        assert!(covers(&p("*"), &p("a.test")));
        assert!(covers(&p("*.test"), &p("a.b.test")));
        assert!(covers(&p("*.test"), &p("*.b.test")));
        assert!(!covers(&p("*.b.test"), &p("*.test")));
        assert!(!covers(&p("*.test"), &p("test")));
        assert!(!covers(&p("a.test"), &p("*")));
        assert!(!covers(&p("*.test"), &p("a.eviltest")));
    }
}
