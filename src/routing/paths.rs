//! Path -> route lookup inside a vhost, and the path normalization that runs first.
//!
//! Kubernetes Ingress semantics: an exact route first, then the longest prefix on
//! whole segments, then regexes in configuration order. Exact and prefix lookups are
//! hash probes, one per `/` of the path whose offset is a configured prefix length,
//! so their cost does not grow with the number of routes.

use std::borrow::Cow;
use std::collections::HashMap;

use regex::RegexSet;

/// Why a request path is refused (`400`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadPath {
    /// Not `/...`.
    NotAbsolute,
    /// A raw or percent-encoded NUL or control byte, or a raw `\`.
    ControlOrBackslash,
    /// `%2F` or `%5C` where `escaped_slashes` is `reject`.
    EscapedSlash,
    /// A `%` not followed by two hex digits.
    BadEscape,
    /// More `..` than segments before them.
    AboveRoot,
    /// `..;x` or `.;x`: servlet containers read these as dot-segments.
    DotSegmentParameters,
}

impl std::fmt::Display for BadPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BadPath::NotAbsolute => "it does not start with `/`",
            BadPath::ControlOrBackslash => "it has a control byte or `\\`",
            BadPath::EscapedSlash => "it has an encoded `/` or `\\` (%2F, %5C)",
            BadPath::BadEscape => "it has a `%` without two hex digits",
            BadPath::AboveRoot => "its `..` climb above the root",
            BadPath::DotSegmentParameters => "it has a dot-segment with parameters (`..;`)",
        })
    }
}

/// What normalization does with one raw byte of a path.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Byte {
    /// Unreserved, a sub-delimiter, `:`, `@` or `/`: kept as is.
    Keep,
    /// The start of a percent-escape.
    Escape,
    /// Not allowed raw in a path (space, `"`, `{`, non-ASCII ...): percent-encoded.
    Encode,
    Refuse,
}

/// `classify` of every byte, looked up once per byte of every request's path.
const CLASSES: [Byte; 256] = {
    let mut table = [Byte::Encode; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = classify_byte(b as u8);
        b += 1;
    }
    table
};

fn classify(b: u8) -> Byte {
    CLASSES[usize::from(b)]
}

const fn classify_byte(b: u8) -> Byte {
    match b {
        b'%' => Byte::Escape,
        0..=0x1f | 0x7f | b'\\' => Byte::Refuse,
        b if b.is_ascii_alphanumeric() => Byte::Keep,
        b'-' | b'.' | b'_' | b'~' | b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+'
        | b',' | b';' | b'=' | b':' | b'@' | b'/' => Byte::Keep,
        _ => Byte::Encode,
    }
}

/// The path as routed and forwarded (RFC 3986 6.2.2): unreserved characters
/// percent-decoded, other escapes in upper case, characters a path cannot hold
/// raw (non-ASCII, space, ...) percent-encoded, dot-segments removed, repeated
/// slashes merged. Borrows when the path is already normal. With
/// `keep_escaped_slashes`, `%2F` and `%5C` stay encoded and are no separators.
pub fn normalize_path(raw: &str, keep_escaped_slashes: bool) -> Result<Cow<'_, str>, BadPath> {
    let bytes = raw.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(BadPath::NotAbsolute);
    }
    // One pass decides whether the path is already normal: no escapes, bytes to
    // encode, repeated slashes or dot-segments.
    let mut needs_work = false;
    let mut prev = 0u8;
    for (i, &b) in bytes.iter().enumerate() {
        match classify(b) {
            Byte::Keep => {}
            Byte::Refuse => return Err(BadPath::ControlOrBackslash),
            Byte::Escape | Byte::Encode => needs_work = true,
        }
        if prev == b'/' && (b == b'/' || (b == b'.' && starts_dot_segment(&bytes[i..]))) {
            needs_work = true;
        }
        prev = b;
    }
    if !needs_work {
        return Ok(Cow::Borrowed(raw));
    }
    let decoded = decode_unreserved(bytes, keep_escaped_slashes)?;
    let mut segments: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for segment in decoded[1..].split('/') {
        trailing_slash = matches!(segment, "" | "." | "..");
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop().ok_or(BadPath::AboveRoot)?;
            }
            s if starts_dot_segment(s.as_bytes()) => return Err(BadPath::DotSegmentParameters),
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(decoded.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if trailing_slash || segments.is_empty() {
        out.push('/');
    }
    Ok(if out == raw {
        Cow::Borrowed(raw)
    } else {
        Cow::Owned(out)
    })
}

/// Whether the segment `rest` begins is `.` or `..`, with or without `;` parameters.
fn starts_dot_segment(rest: &[u8]) -> bool {
    let end = rest
        .iter()
        .position(|&b| b == b'/' || b == b';')
        .unwrap_or(rest.len());
    matches!(&rest[..end], b"." | b"..")
}

/// Percent-decodes unreserved characters and encodes what a path cannot hold raw;
/// the result is ASCII.
fn decode_unreserved(bytes: &[u8], keep_escaped_slashes: bool) -> Result<String, BadPath> {
    let mut out = String::with_capacity(bytes.len() + 8);
    let encode = |out: &mut String, b: u8| {
        out.push('%');
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    };
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match classify(b) {
            Byte::Keep => out.push(char::from(b)),
            Byte::Encode => encode(&mut out, b),
            Byte::Refuse => return Err(BadPath::ControlOrBackslash),
            Byte::Escape => {
                let hex = |b: Option<&u8>| b.and_then(|b| char::from(*b).to_digit(16));
                let (Some(hi), Some(lo)) = (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) else {
                    return Err(BadPath::BadEscape);
                };
                // Both digits are < 16.
                let byte = (hi * 16 + lo) as u8;
                match byte {
                    0..=0x1f | 0x7f => return Err(BadPath::ControlOrBackslash),
                    b'/' | b'\\' if !keep_escaped_slashes => return Err(BadPath::EscapedSlash),
                    b if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') => {
                        out.push(char::from(b));
                    }
                    b => encode(&mut out, b),
                }
                i += 2;
            }
        }
        i += 1;
    }
    Ok(out)
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// The compiled size of one vhost's regexes together (the regex crate's
/// default, written down: a vhost's regexes cannot cost more memory).
const REGEX_SET_LIMIT: usize = 10 << 20;

/// The routes of one vhost, by match kind; values are route indices.
#[derive(Debug, Clone, Default)]
pub struct PathTable {
    exact: HashMap<Box<str>, usize>,
    /// Keyed without the trailing `/` (`/` itself is the empty key).
    prefix: HashMap<Box<str>, usize>,
    /// The `case_insensitive` routes, keyed in ASCII lower case; looked up
    /// after the case-sensitive ones of the same length.
    exact_ci: HashMap<Box<str>, usize>,
    prefix_ci: HashMap<Box<str>, usize>,
    /// The key lengths of `prefix`, as bits: only those offsets are looked up.
    prefix_lengths: Vec<u64>,
    regex_patterns: Vec<String>,
    regex_routes: Vec<usize>,
    regexes: Option<RegexSet>,
}

/// The key of a prefix: without its trailing `/` (`/api/` and `/api` are one prefix).
pub fn prefix_key(prefix: &str) -> &str {
    prefix.strip_suffix('/').unwrap_or(prefix)
}

impl PathTable {
    /// Adds an exact route; returns the route already there.
    pub fn insert_exact(&mut self, path: &str, route: usize, ci: bool) -> Result<(), usize> {
        match ci {
            false => insert_new(&mut self.exact, path, route),
            true => insert_new(&mut self.exact_ci, &path.to_ascii_lowercase(), route),
        }
    }

    /// Adds a prefix route; returns the route already there.
    pub fn insert_prefix(&mut self, prefix: &str, route: usize, ci: bool) -> Result<(), usize> {
        let key = prefix_key(prefix);
        match ci {
            false => insert_new(&mut self.prefix, key, route)?,
            true => insert_new(&mut self.prefix_ci, &key.to_ascii_lowercase(), route)?,
        }
        let (word, bit) = (key.len() / 64, key.len() % 64);
        if self.prefix_lengths.len() <= word {
            self.prefix_lengths.resize(word + 1, 0);
        }
        self.prefix_lengths[word] |= 1 << bit;
        Ok(())
    }

    /// Adds a regex route (already known to compile); returns the route with the
    /// same pattern.
    pub fn push_regex(&mut self, pattern: &str, route: usize) -> Result<(), usize> {
        if let Some(i) = self.regex_patterns.iter().position(|p| p == pattern) {
            return Err(self.regex_routes[i]);
        }
        self.regex_patterns.push(pattern.to_string());
        self.regex_routes.push(route);
        Ok(())
    }

    /// Compiles the regexes into one set, matched in one pass; an error comes
    /// with the route of the last regex.
    pub fn build(mut self) -> Result<PathTable, (regex::Error, usize)> {
        if let Some(&last) = self.regex_routes.last() {
            let set = regex::RegexSetBuilder::new(&self.regex_patterns)
                .size_limit(REGEX_SET_LIMIT)
                .build()
                .map_err(|e| (e, last))?;
            self.regexes = Some(set);
        }
        Ok(self)
    }

    fn has_prefix_length(&self, len: usize) -> bool {
        self.prefix_lengths
            .get(len / 64)
            .is_some_and(|bits| bits & (1 << (len % 64)) != 0)
    }

    /// The route for a normalized path, if any matches: at each match, in order
    /// of precedence, `pick` is given the route there and may take it (or one
    /// that shares its match) or pass.
    pub fn lookup(&self, path: &str, pick: impl Fn(usize) -> Option<usize>) -> Option<usize> {
        // Only a vhost with `case_insensitive` routes pays for a lower-case copy,
        // and only for a path with upper case in it.
        let lower = match self.exact_ci.is_empty() && self.prefix_ci.is_empty() {
            true => None,
            false if path.bytes().any(|b| b.is_ascii_uppercase()) => {
                Some(Cow::Owned(path.to_ascii_lowercase()))
            }
            false => Some(Cow::Borrowed(path)),
        };
        let lower = lower.as_deref();
        if let Some(&route) = self.exact.get(path) {
            if let Some(taken) = pick(route) {
                return Some(taken);
            }
        }
        if let Some(&route) = lower.and_then(|l| self.exact_ci.get(l)) {
            if let Some(taken) = pick(route) {
                return Some(taken);
            }
        }
        if !self.prefix.is_empty() || !self.prefix_ci.is_empty() {
            // Candidate ends: the path's end, then each `/` from the right.
            let bytes = path.as_bytes();
            let mut end = Some(path.len());
            while let Some(e) = end {
                if self.has_prefix_length(e) {
                    let found = self
                        .prefix
                        .get(&path[..e])
                        .into_iter()
                        .chain(lower.and_then(|l| self.prefix_ci.get(&l[..e])));
                    for &route in found {
                        if let Some(taken) = pick(route) {
                            return Some(taken);
                        }
                    }
                }
                end = bytes[..e].iter().rposition(|&b| b == b'/');
            }
        }
        let set = self.regexes.as_ref()?;
        // `is_match` allocates nothing: most paths that get here match no regex.
        if !set.is_match(path) {
            return None;
        }
        let mut matched = set.matches(path).into_iter();
        matched.find_map(|i| pick(self.regex_routes[i]))
    }
}

fn insert_new(map: &mut HashMap<Box<str>, usize>, key: &str, route: usize) -> Result<(), usize> {
    match map.entry(key.into()) {
        std::collections::hash_map::Entry::Occupied(o) => Err(*o.get()),
        std::collections::hash_map::Entry::Vacant(v) => {
            v.insert(route);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(p: &str) -> Result<String, BadPath> {
        normalize_path(p, false).map(Cow::into_owned)
    }

    #[test]
    fn paths_are_normalized_per_rfc_3986() {
        for (raw, want) in [
            ("/", "/"),
            ("/a/b", "/a/b"),
            ("/static/../admin", "/admin"),
            ("/static/%2e%2e/admin", "/admin"),
            ("/static/%2E%2E/admin", "/admin"),
            ("//admin", "/admin"),
            ("/a//b///c", "/a/b/c"),
            ("/a/./b/.", "/a/b/"),
            ("/a/b/..", "/a/"),
            ("/a/", "/a/"),
            ("/%7Euser/%41", "/~user/A"),
            ("/a%20b%c3%a9", "/a%20b%C3%A9"),
            ("/.well-known/x", "/.well-known/x"),
            ("/a..b/...", "/a..b/..."),
            ("/caf\u{e9}/x", "/caf%C3%A9/x"),
            ("/x//caf\u{e9}", "/x/caf%C3%A9"),
            ("/a b/\"q\"/{x}", "/a%20b/%22q%22/%7Bx%7D"),
            ("/a;b=c/d", "/a;b=c/d"),
        ] {
            assert_eq!(norm(raw).as_deref(), Ok(want), "{raw}");
        }
        // Already normal: borrowed, however close to a dot-segment.
        for raw in [
            "/a/b",
            "/.well-known/x",
            "/a..b/...",
            "/a;b=c/d",
            "/a/.b",
            "/a/b.",
        ] {
            assert!(
                matches!(normalize_path(raw, false), Ok(Cow::Borrowed(p)) if p == raw),
                "{raw}"
            );
        }
        assert_eq!(norm("/a/b/.").as_deref(), Ok("/a/b/"));
        assert_eq!(norm("/.").as_deref(), Ok("/"));
        assert!(matches!(
            normalize_path("/a%2Fb", true),
            Ok(Cow::Borrowed("/a%2Fb"))
        ));
        assert_eq!(
            normalize_path("/a%2f..%5c/b", true).as_deref(),
            Ok("/a%2F..%5C/b")
        );
    }

    #[test]
    fn hostile_paths_are_refused() {
        for (raw, why) in [
            ("/..", BadPath::AboveRoot),
            ("/a/../..", BadPath::AboveRoot),
            ("/%2e%2e/etc/passwd", BadPath::AboveRoot),
            ("/static/..%2Fadmin", BadPath::EscapedSlash),
            ("/static/..%2fadmin", BadPath::EscapedSlash),
            ("/a%5Cb", BadPath::EscapedSlash),
            ("/static\\..\\admin", BadPath::ControlOrBackslash),
            ("/a\0b", BadPath::ControlOrBackslash),
            ("/a%00b", BadPath::ControlOrBackslash),
            ("/a%0d%0aSet-Cookie:x", BadPath::ControlOrBackslash),
            ("/a\x7f", BadPath::ControlOrBackslash),
            ("/a%7F", BadPath::ControlOrBackslash),
            ("/a%", BadPath::BadEscape),
            ("/a%4", BadPath::BadEscape),
            ("/a%zz", BadPath::BadEscape),
            ("/x/..;/admin", BadPath::DotSegmentParameters),
            ("/x/.;a/admin", BadPath::DotSegmentParameters),
            ("/x/%2e%2e;/admin", BadPath::DotSegmentParameters),
            ("a/b", BadPath::NotAbsolute),
            ("", BadPath::NotAbsolute),
        ] {
            assert_eq!(norm(raw), Err(why), "{raw:?}");
        }
    }

    #[test]
    fn case_insensitive_routes_match_ascii_letters_in_either_case() {
        let mut t = PathTable::default();
        t.insert_prefix("/Admin", 0, true).unwrap();
        t.insert_exact("/Login", 1, true).unwrap();
        t.insert_prefix("/api", 2, false).unwrap();
        assert_eq!(t.insert_prefix("/ADMIN/", 3, true), Err(0));
        let t = t.build().unwrap();
        for (path, want) in [
            ("/admin", Some(0)),
            ("/ADMIN/x", Some(0)),
            ("/aDmIn", Some(0)),
            ("/admins", None),
            ("/login", Some(1)),
            ("/LOGIN", Some(1)),
            ("/login/x", None),
            ("/API", None),
            ("/api/x", Some(2)),
        ] {
            assert_eq!(t.lookup(path, Some), want, "{path}");
        }
    }

    fn table() -> PathTable {
        let mut t = PathTable::default();
        t.insert_exact("/healthz", 1, false).unwrap();
        t.insert_prefix("/api", 2, false).unwrap();
        t.insert_prefix("/api/v2/", 3, false).unwrap();
        t.push_regex(r"^/img/.+\.(png|jpg)$", 4).unwrap();
        t.push_regex(r"^/img/", 5).unwrap();
        t.insert_exact("/api/exact", 6, false).unwrap();
        t.build().unwrap()
    }

    #[test]
    fn precedence_is_exact_then_longest_prefix_then_regex_in_order() {
        let t = table();
        for (path, want) in [
            ("/healthz", Some(1)),
            ("/healthz/", None),
            ("/api", Some(2)),
            ("/api/", Some(2)),
            ("/api/x/y", Some(2)),
            ("/apix", None),
            ("/api/v2", Some(3)),
            ("/api/v2/users", Some(3)),
            ("/api/v20", Some(2)),
            ("/api/exact", Some(6)),
            ("/api/exact/more", Some(2)),
            ("/img/a.png", Some(4)),
            ("/img/a.gif", Some(5)),
            ("/", None),
        ] {
            assert_eq!(t.lookup(path, Some), want, "{path}");
        }
    }

    #[test]
    fn the_root_prefix_takes_every_path_left() {
        let mut t = PathTable::default();
        t.insert_prefix("/", 7, false).unwrap();
        t.insert_prefix("/a", 8, false).unwrap();
        let t = t.build().unwrap();
        assert_eq!(t.lookup("/", Some), Some(7));
        assert_eq!(t.lookup("/b/c", Some), Some(7));
        assert_eq!(t.lookup("/a/c", Some), Some(8));
    }

    /// A match whose route passes leaves the request to the next match in
    /// precedence: the exact path, then shorter prefixes, then the regexes.
    #[test]
    fn a_route_that_passes_falls_through_to_the_next_match() {
        let mut t = PathTable::default();
        t.insert_exact("/a/b", 1, false).unwrap();
        t.insert_prefix("/a/b", 2, false).unwrap();
        t.insert_prefix("/a", 3, false).unwrap();
        t.insert_prefix("/", 4, false).unwrap();
        t.push_regex("^/a/.*$", 5).unwrap();
        t.push_regex("^/.*$", 6).unwrap();
        let t = t.build().unwrap();
        let refusing =
            |refused: &'static [usize]| move |r: usize| (!refused.contains(&r)).then_some(r);
        assert_eq!(t.lookup("/a/b", refusing(&[])), Some(1));
        assert_eq!(t.lookup("/a/b", refusing(&[1])), Some(2));
        assert_eq!(t.lookup("/a/b", refusing(&[1, 2])), Some(3));
        assert_eq!(t.lookup("/a/b", refusing(&[1, 2, 3])), Some(4));
        assert_eq!(t.lookup("/a/b", refusing(&[1, 2, 3, 4])), Some(5));
        assert_eq!(t.lookup("/a/b", refusing(&[1, 2, 3, 4, 5])), Some(6));
        assert_eq!(t.lookup("/a/b", refusing(&[1, 2, 3, 4, 5, 6])), None);
        assert_eq!(t.lookup("/a/b", |r| (r == 2).then_some(9)), Some(9));
    }

    #[test]
    fn duplicates_name_the_route_already_there() {
        let mut t = PathTable::default();
        t.insert_prefix("/api", 0, false).unwrap();
        assert_eq!(t.insert_prefix("/api/", 1, false), Err(0));
        t.insert_exact("/api", 2, false).unwrap();
        assert_eq!(t.insert_exact("/api", 3, false), Err(2));
        t.push_regex("^/x", 4).unwrap();
        assert_eq!(t.push_regex("^/x", 5), Err(4));
    }
}
