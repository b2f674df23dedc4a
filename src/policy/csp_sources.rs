//! Whether a CSP source list allows a URL, the way a browser decides it
//! (CSP Level 3, "Does url match source list"), without nonces or hashes.
//!
//! The nonce filter uses this to give a nonce only to the scripts and styles the
//! configured sources already allow: an injected `<script src=//evil>` stays
//! blocked even though the page now carries a nonce.

use url::Url;

/// One source expression that can match a URL. Keywords that match no URL
/// (`'unsafe-inline'`, nonces, hashes, `'strict-dynamic'` ...) are left out.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    SelfOrigin,
    /// `*`
    Any,
    /// `https:`, `data:` ... (lower case, without the colon)
    Scheme(String),
    Host(HostSource),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct HostSource {
    scheme: Option<String>,
    host: HostPattern,
    port: PortPattern,
    /// Percent-decoded; a trailing `/` makes it a prefix.
    path: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    /// `*` alone.
    Any,
    /// `*.example.com`: the suffix `.example.com`, lower case.
    Subdomains(String),
    Exact(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortPattern {
    /// No port: the URL's scheme's default port.
    Default,
    Any,
    Number(u16),
}

/// A directive's sources, ready to match URLs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceList(Vec<Source>);

/// The document's origin: `'self'`, scheme-less host sources and relative URLs
/// are judged against it.
#[derive(Debug, Clone)]
pub struct DocumentOrigin {
    scheme: &'static str,
    host: String,
    port: Option<u16>,
}

impl DocumentOrigin {
    /// `host` is the request's Host (a validated host name or IP, maybe with a port).
    pub fn new(https: bool, host: &str) -> Option<DocumentOrigin> {
        let scheme = if https { "https" } else { "http" };
        let url = Url::parse(&format!("{scheme}://{host}/")).ok()?;
        Some(DocumentOrigin {
            scheme,
            host: url.host_str()?.to_string(),
            port: url.port(),
        })
    }

    /// The document's URL, to resolve relative references against: this origin
    /// and the request's path, never a reference resolved (`//other/x` is a path).
    pub fn url(&self, path_and_query: &str) -> Option<Url> {
        let mut base = format!("{}://{}", self.scheme, self.host);
        if let Some(port) = self.port {
            base.push_str(&format!(":{port}"));
        }
        let root = Url::parse(&base).ok()?;
        if !path_and_query.starts_with('/') {
            return Some(root);
        }
        match Url::parse(&format!("{base}{path_and_query}")) {
            Ok(url) if url.origin() == root.origin() => Some(url),
            _ => Some(root),
        }
    }
}

impl SourceList {
    /// Reads the sources of one directive; expressions that match no URL are dropped.
    pub fn parse<S: AsRef<str>>(sources: &[S]) -> SourceList {
        SourceList(
            sources
                .iter()
                .filter_map(|s| parse_source(s.as_ref()))
                .collect(),
        )
    }

    /// Would a browser load `url` for a document at `origin` under these sources alone?
    pub fn allows(&self, url: &Url, origin: &DocumentOrigin) -> bool {
        self.0.iter().any(|s| source_matches(s, url, origin))
    }

    /// Whether these sources allow every URL on the origin of `doc` (the
    /// document's URL), whatever its path: a source with no path of its own
    /// matches it.
    pub fn allows_every_path_of(&self, doc: &Url, origin: &DocumentOrigin) -> bool {
        self.0.iter().any(|s| {
            let pathless = match s {
                Source::Host(h) => h.path.as_deref().is_none_or(|p| p == "/"),
                _ => true,
            };
            pathless && source_matches(s, doc, origin)
        })
    }
}

fn parse_source(s: &str) -> Option<Source> {
    let lower = s.to_ascii_lowercase();
    if lower == "'self'" {
        return Some(Source::SelfOrigin);
    }
    if lower.starts_with('\'') {
        return None;
    }
    if lower == "*" {
        return Some(Source::Any);
    }
    if let Some(scheme) = lower.strip_suffix(':') {
        return is_scheme(scheme).then(|| Source::Scheme(scheme.to_string()));
    }
    let (scheme, rest) = match lower.split_once("://") {
        Some((scheme, rest)) if is_scheme(scheme) => (Some(scheme.to_string()), rest),
        Some(_) => return None,
        None => (None, lower.as_str()),
    };
    let host_end = rest.find([':', '/']).unwrap_or(rest.len());
    let (host, rest) = rest.split_at(host_end);
    let host_chars = |h: &str| {
        h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.'))
    };
    let host = match host {
        "" => return None,
        "*" => HostPattern::Any,
        h => match h.strip_prefix('*') {
            Some(suffix) if suffix.starts_with('.') && suffix.len() > 1 && host_chars(suffix) => {
                HostPattern::Subdomains(suffix.to_string())
            }
            Some(_) => return None,
            None if host_chars(h) => HostPattern::Exact(h.to_string()),
            None => return None,
        },
    };
    let (port, path) = match rest.strip_prefix(':') {
        Some(rest) => {
            let end = rest.find('/').unwrap_or(rest.len());
            let port = match &rest[..end] {
                "*" => PortPattern::Any,
                p => PortPattern::Number(p.parse().ok()?),
            };
            (port, &rest[end..])
        }
        None => (PortPattern::Default, rest),
    };
    let path = (!path.is_empty()).then(|| percent_decode(path));
    Some(Source::Host(HostSource {
        scheme,
        host,
        port,
        path,
    }))
}

fn is_scheme(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

fn source_matches(source: &Source, url: &Url, origin: &DocumentOrigin) -> bool {
    match source {
        Source::SelfOrigin => self_matches(url, origin),
        Source::Any => matches!(url.scheme(), "http" | "https") || url.scheme() == origin.scheme,
        Source::Scheme(scheme) => scheme_part_matches(scheme, url.scheme()),
        Source::Host(h) => host_source_matches(h, url, origin),
    }
}

/// CSP3 'self': the same origin, or the same host and port reached over a secure scheme.
fn self_matches(url: &Url, origin: &DocumentOrigin) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    if !host.eq_ignore_ascii_case(&origin.host) {
        return false;
    }
    let same_port = url.port() == origin.port;
    match (origin.scheme, url.scheme()) {
        (a, b) if a == b => same_port,
        // Upgrades: the port must be the one each scheme uses by default.
        (_, "https" | "wss") => url.port().is_none() && origin.port.is_none(),
        ("http", "ws") => same_port,
        _ => false,
    }
}

/// CSP3 "scheme-part match": equal, or the URL's scheme is the secure upgrade.
fn scheme_part_matches(expression: &str, url_scheme: &str) -> bool {
    expression == url_scheme
        || matches!(
            (expression, url_scheme),
            ("http", "https") | ("ws", "wss" | "http" | "https") | ("wss", "https")
        )
}

fn host_source_matches(h: &HostSource, url: &Url, origin: &DocumentOrigin) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let scheme_ok = match &h.scheme {
        Some(scheme) => scheme_part_matches(scheme, url.scheme()),
        None => scheme_part_matches(origin.scheme, url.scheme()),
    };
    if !scheme_ok {
        return false;
    }
    let host = host.to_ascii_lowercase();
    let host_ok = match &h.host {
        HostPattern::Any => true,
        // Only names have subdomains; `*.1` matches no IP address.
        HostPattern::Subdomains(suffix) => {
            matches!(url.host(), Some(url::Host::Domain(_))) && host.ends_with(suffix.as_str())
        }
        HostPattern::Exact(name) => host == *name,
    };
    if !host_ok {
        return false;
    }
    let port_ok = match h.port {
        PortPattern::Any => true,
        PortPattern::Default => url.port().is_none(),
        PortPattern::Number(n) => url.port_or_known_default() == Some(n),
    };
    if !port_ok {
        return false;
    }
    match &h.path {
        None => true,
        Some(path) if path == "/" => true,
        Some(path) => {
            let url_path = percent_decode(url.path());
            if path.ends_with('/') {
                url_path.starts_with(path.as_str())
            } else {
                url_path == *path
            }
        }
    }
}

/// Percent-decoding as CSP path matching does; bytes that are not UTF-8 stay escaped.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(https: bool, host: &str) -> DocumentOrigin {
        DocumentOrigin::new(https, host).unwrap()
    }

    fn allows(sources: &[&str], url: &str, doc: &DocumentOrigin) -> bool {
        let base = doc.url("/page/index.html").unwrap();
        let url = base.join(url).unwrap();
        SourceList::parse(sources).allows(&url, doc)
    }

    #[test]
    fn self_is_the_document_origin_and_its_secure_upgrade() {
        let http = origin(false, "app.example");
        let https = origin(true, "app.example");
        assert!(allows(&["'self'"], "/a.js", &https));
        assert!(allows(&["'self'"], "a.js", &https));
        assert!(allows(&["'self'"], "https://APP.example/a.js", &https));
        assert!(allows(&["'self'"], "https://app.example/a.js", &http));
        assert!(!allows(&["'self'"], "http://app.example/a.js", &https));
        assert!(!allows(
            &["'self'"],
            "https://app.example:8443/a.js",
            &https
        ));
        assert!(!allows(&["'self'"], "//evil.example/a.js", &https));
        assert!(!allows(&["'self'"], "https://sub.app.example/a.js", &https));
        assert!(!allows(&["'self'"], "data:text/javascript,1", &https));
        let ported = origin(false, "127.0.0.1:8080");
        assert!(allows(&["'self'"], "/a.js", &ported));
        assert!(!allows(&["'self'"], "http://127.0.0.1:8081/a.js", &ported));
    }

    #[test]
    fn every_path_of_the_origin_only_from_a_pathless_matching_source() {
        let https = origin(true, "app.example");
        let http = origin(false, "app.example");
        for (sources, doc, every) in [
            (&["'self'"][..], &https, true),
            (&["*"], &https, true),
            (&["https:"], &https, true),
            (&["https:"], &http, false),
            (&["https://app.example"], &https, true),
            (&["https://app.example/"], &https, true),
            (&["https://app.example/js/"], &https, false),
            (&["*.example"], &https, true),
            (&["*.app.example"], &https, false),
            (&["cdn.example"], &https, false),
            (&["'unsafe-inline'"], &https, false),
        ] {
            let url = doc.url("/js/app.js").unwrap();
            assert_eq!(
                SourceList::parse(sources).allows_every_path_of(&url, doc),
                every,
                "{sources:?}"
            );
        }
    }

    #[test]
    fn hosts_wildcards_ports_and_paths() {
        let doc = origin(true, "app.example");
        let list = [
            "cdn.example",
            "*.static.example",
            "https://api.example:8443/js/",
        ];
        assert!(allows(&list, "https://cdn.example/x.js", &doc));
        assert!(!allows(&list, "http://cdn.example/x.js", &doc));
        assert!(!allows(&list, "https://cdn.example:444/x.js", &doc));
        assert!(allows(&list, "https://a.b.static.example/x.js", &doc));
        assert!(!allows(&list, "https://static.example/x.js", &doc));
        assert!(!allows(&list, "https://evilstatic.example/x.js", &doc));
        assert!(allows(&list, "https://api.example:8443/js/x.js", &doc));
        assert!(!allows(&list, "https://api.example:8443/other/x.js", &doc));
        assert!(!allows(&list, "https://api.example/js/x.js", &doc));
        assert!(allows(
            &["https://a.example/exact.js"],
            "https://a.example/exact.js",
            &doc
        ));
        assert!(!allows(
            &["https://a.example/exact.js"],
            "https://a.example/exact.jsx",
            &doc
        ));
        assert!(allows(&["a.example:*"], "https://a.example:9/x.js", &doc));
        assert!(allows(
            &["http://a.example"],
            "https://a.example/x.js",
            &doc
        ));
        assert!(!allows(&["*.1"], "https://127.0.0.1/x.js", &doc));
    }

    #[test]
    fn schemes_star_and_keywords() {
        let doc = origin(true, "app.example");
        assert!(allows(&["https:"], "https://anything.example/x.js", &doc));
        assert!(!allows(&["https:"], "http://anything.example/x.js", &doc));
        assert!(allows(&["http:"], "https://anything.example/x.js", &doc));
        assert!(allows(&["data:"], "data:text/javascript,1", &doc));
        assert!(allows(&["*"], "https://anything.example/x.js", &doc));
        assert!(!allows(&["*"], "data:text/javascript,1", &doc));
        assert!(!allows(&["*"], "blob:https://app.example/uuid", &doc));
        for keyword in [
            "'none'",
            "'unsafe-inline'",
            "'strict-dynamic'",
            "'nonce-abc'",
            "'sha256-abc='",
        ] {
            assert!(!allows(&[keyword], "/a.js", &doc), "{keyword}");
        }
    }

    #[test]
    fn urls_are_read_as_a_browser_reads_them() {
        let doc = origin(true, "app.example");
        // Tabs and newlines vanish and backslashes are slashes: these are all evil.example.
        for url in [
            "/\t/evil.example/x.js",
            "/\\evil.example/x.js",
            "\\\\evil.example/x.js",
            " //evil.example/x.js",
            "/\n/evil.example/x.js",
            "http:evil.example/x.js",
        ] {
            assert!(!allows(&["'self'"], url, &doc), "{url:?}");
        }
        assert!(allows(&["'self'"], "/a/../b.js", &doc));
        // Same special scheme without slashes: a relative path on this origin.
        assert!(allows(&["'self'"], "https:evil.example/x.js", &doc));
    }

    #[test]
    fn the_document_url_keeps_the_documents_origin() {
        let doc = origin(true, "app.example");
        for target in ["//cdn.example/x", "/\\cdn.example/x", "/a/b?c"] {
            let url = doc.url(target).unwrap();
            assert_eq!(url.host_str(), Some("app.example"), "{target}");
        }
    }

    #[test]
    fn unparsable_sources_match_nothing() {
        assert_eq!(
            SourceList::parse(&["ex ample", "*evil.example", "a.example:port", "1bad://x"]),
            SourceList::default()
        );
    }

    #[test]
    fn percent_decoding_keeps_bad_escapes() {
        assert_eq!(percent_decode("/a%20b/%zz/%4"), "/a b/%zz/%4");
        assert_eq!(percent_decode("/%ff"), "/%ff");
    }
}
