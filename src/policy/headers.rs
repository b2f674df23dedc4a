//! Compiled header actions and the code that applies them on the request path.
//!
//! Everything here is built once per configuration: names and values are ready
//! `HeaderName`s, wire-case names and `HeaderValue`s, so applying a plan clones
//! reference-counted bytes and formats nothing.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use pingora_http::{RequestHeader, ResponseHeader};

use prometheus::IntCounter;
use smallvec::SmallVec;

use super::rendered::OverHttp;
use super::security::security_headers;
use crate::config::schema::{ConflictMode, PolicyLayer};
use crate::config::values::RemovePattern;
use crate::config::KeyError;
use crate::metrics::{HeaderCounters, Metrics, RouteLabels};

/// A header ready to write: lookup name, wire-case name and value.
#[derive(Debug, Clone)]
pub struct HeaderEntry {
    pub name: HeaderName,
    /// The name as written on HTTP/1 (Pingora's case-preserving name type is private;
    /// it converts from `Bytes` by reference count).
    case: Bytes,
    pub value: HeaderValue,
}

impl HeaderEntry {
    /// `text` is the name as it should appear on HTTP/1 (callers have validated both).
    pub fn new(text: &str, value: &str) -> Result<HeaderEntry, String> {
        let name = HeaderName::from_bytes(text.as_bytes())
            .map_err(|_| format!("`{text}` is not a valid header name"))?;
        let value = HeaderValue::from_maybe_shared(Bytes::copy_from_slice(value.as_bytes()))
            .map_err(|_| format!("invalid value for header `{text}`"))?;
        Ok(HeaderEntry {
            name,
            case: Bytes::copy_from_slice(text.as_bytes()),
            value,
        })
    }

    /// `new`, with an error at `key`.
    fn at(key: &str, text: &str, value: &str) -> Result<HeaderEntry, KeyError> {
        Self::new(text, value).map_err(|e| KeyError::new(key, e))
    }

    /// Like `new` for a name known at build time: its wire-case bytes are static,
    /// so applying the entry copies the name without touching a reference count.
    pub fn with_static_name(text: &'static str, value: &str) -> Result<HeaderEntry, String> {
        let mut e = HeaderEntry::new(text, value)?;
        e.case = Bytes::from_static(text.as_bytes());
        Ok(e)
    }
}

/// Pingora's request and response headers share these operations but no trait.
/// Going through Pingora's own methods keeps its case-preserving name map in step.
pub trait HeaderTarget {
    fn headers(&self) -> &HeaderMap;
    fn insert(&mut self, e: &HeaderEntry);
    fn insert_value(&mut self, e: &HeaderEntry, value: HeaderValue);
    fn append(&mut self, e: &HeaderEntry);
    fn append_value(&mut self, e: &HeaderEntry, value: HeaderValue);
    /// Whether anything was removed.
    fn remove(&mut self, name: &HeaderName) -> bool;
}

macro_rules! header_target {
    ($t:ty) => {
        impl HeaderTarget for $t {
            fn headers(&self) -> &HeaderMap {
                &self.headers
            }
            fn insert(&mut self, e: &HeaderEntry) {
                self.insert_value(e, e.value.clone());
            }
            fn insert_value(&mut self, e: &HeaderEntry, value: HeaderValue) {
                // Cannot fail: the name was parsed when the plan was compiled.
                let _ = self.insert_header(e.case.clone(), value);
            }
            fn append(&mut self, e: &HeaderEntry) {
                self.append_value(e, e.value.clone());
            }
            fn append_value(&mut self, e: &HeaderEntry, value: HeaderValue) {
                let _ = self.append_header(e.case.clone(), value);
            }
            fn remove(&mut self, name: &HeaderName) -> bool {
                self.remove_header(name).is_some()
            }
        }
    };
}

header_target!(ResponseHeader);
header_target!(RequestHeader);

/// One removal rule, with the counter of what it stripped (response rules only).
#[derive(Debug, Clone)]
struct RemoveRule {
    pattern: RemovePattern,
    stripped: Option<IntCounter>,
}

/// Removal rules: exact names and lower-case prefixes, matched in one pass over the
/// headers present (a response has fewer headers than a policy has rules).
#[derive(Debug, Clone, Default)]
pub struct RemoveRules {
    rules: Vec<RemoveRule>,
    /// Exact name -> index of the first rule naming it.
    exact: HeaderMap<usize>,
    exact_names: NameFilter,
    /// Indices of the prefix rules, in rule order.
    prefixes: Vec<usize>,
    /// First bytes of the prefixes, as bits (names are ASCII): most names start
    /// with none of them.
    prefix_starts: u128,
}

impl RemoveRules {
    /// `counter` gives the stripped-headers counter of a rule, if it is counted.
    pub fn new(
        patterns: &[RemovePattern],
        counter: impl Fn(&RemovePattern) -> Option<IntCounter>,
    ) -> RemoveRules {
        let mut rules = RemoveRules::default();
        for p in patterns {
            rules.push(p.clone(), counter(p));
        }
        rules
    }

    pub fn push(&mut self, pattern: RemovePattern, stripped: Option<IntCounter>) {
        if self.rules.iter().any(|r| r.pattern == pattern) {
            return;
        }
        let index = self.rules.len();
        match &pattern {
            RemovePattern::Exact(name) => {
                self.exact_names.insert(name);
                self.exact.entry(name).or_insert(index);
            }
            RemovePattern::Prefix(p) => {
                self.prefixes.push(index);
                // A prefix is never empty (checked when the configuration is read).
                self.prefix_starts |= 1 << (p.as_bytes()[0] & 0x7f);
            }
        }
        self.rules.push(RemoveRule { pattern, stripped });
    }

    fn exact_rule(&self, name: &HeaderName) -> Option<usize> {
        if !self.exact_names.may_contain(name) {
            return None;
        }
        self.exact.get(name).copied()
    }

    /// The first rule, in configured order, that removes `name`, given the index of
    /// the exact rule naming it (if any).
    #[inline]
    fn first_rule(&self, exact: Option<usize>, name: &HeaderName) -> Option<usize> {
        if self.prefixes.is_empty() {
            return exact;
        }
        let text = name.as_str();
        if self.prefix_starts & (1 << (text.as_bytes()[0] & 0x7f)) == 0 {
            return exact;
        }
        // HeaderMap names are lower case, like the stored prefixes.
        let prefix = self.prefixes.iter().copied().find(|&i| {
            matches!(&self.rules[i].pattern, RemovePattern::Prefix(p) if text.starts_with(p.as_str()))
        });
        match (exact, prefix) {
            (Some(e), Some(p)) => Some(e.min(p)),
            (e, p) => e.or(p),
        }
    }

    /// Removes every header a rule names and counts it once per name against
    /// the first rule that matched.
    pub fn apply(&self, target: &mut impl HeaderTarget) {
        if self.rules.is_empty() {
            return;
        }
        let doomed: Doomed = target
            .headers()
            .keys()
            .filter_map(|name| {
                let exact = self.exact_rule(name);
                self.first_rule(exact, name).map(|i| (name.clone(), i))
            })
            .collect();
        self.remove(target, doomed);
    }

    fn remove(&self, target: &mut impl HeaderTarget, doomed: Doomed) {
        for (name, i) in doomed {
            if target.remove(&name) {
                if let Some(c) = &self.rules[i].stripped {
                    c.inc();
                }
            }
        }
    }
}

/// A quick, inexact test of whether a name is among a few: by length and first
/// byte. Most headers a request or response carries are in no rule, and this
/// spares them a hash lookup.
#[derive(Debug, Clone, Copy, Default)]
struct NameFilter {
    /// Bit `n` for a name of `n` bytes, bit 63 for any of 63 or more.
    lengths: u64,
    /// Bit `b` for a name starting with ASCII byte `b`.
    firsts: u128,
}

impl NameFilter {
    fn bits(name: &HeaderName) -> (u64, u128) {
        let text = name.as_str().as_bytes();
        // Header names are never empty, and ASCII.
        let first = text.first().map_or(0, |b| b & 0x7f);
        (1 << text.len().min(63), 1 << first)
    }

    fn insert(&mut self, name: &HeaderName) {
        let (length, first) = Self::bits(name);
        self.lengths |= length;
        self.firsts |= first;
    }

    fn may_contain(&self, name: &HeaderName) -> bool {
        let (length, first) = Self::bits(name);
        self.lengths & length != 0 && self.firsts & first != 0
    }
}

/// Names to remove, with the rule that matched each.
type Doomed = SmallVec<[(HeaderName, usize); 8]>;

/// A header the policy manages, with what to do when the upstream sent it too.
#[derive(Debug, Clone)]
pub struct ManagedHeader {
    pub entry: HeaderEntry,
    pub mode: ConflictMode,
    /// The value over plain HTTP (`entry` has the one over HTTPS); `None` sends
    /// none and removes the upstream's (HSTS: RFC 6797 7.2).
    pub over_http: Option<HeaderValue>,
    pub counters: HeaderCounters,
}

/// Everything a route does to response headers, in order: remove, managed, add, default.
#[derive(Debug, Clone, Default)]
pub struct ResponsePlan {
    remove: RemoveRules,
    managed: Vec<ManagedHeader>,
    /// What the plan does with a name: one lookup per header the response carries
    /// that passes `role_names`.
    roles: HeaderMap<Role>,
    role_names: NameFilter,
    add: Vec<HeaderEntry>,
    default: Vec<HeaderEntry>,
}

/// The exact remove rule naming a header, and its index among the managed headers.
#[derive(Debug, Clone, Copy, Default)]
struct Role {
    remove: Option<usize>,
    managed: Option<usize>,
}

impl ResponsePlan {
    pub fn new(
        remove: RemoveRules,
        managed: Vec<ManagedHeader>,
        add: Vec<HeaderEntry>,
        default: Vec<HeaderEntry>,
    ) -> ResponsePlan {
        let mut roles: HeaderMap<Role> = HeaderMap::default();
        for (name, &rule) in &remove.exact {
            roles.entry(name).or_insert_with(Role::default).remove = Some(rule);
        }
        for (i, m) in managed.iter().enumerate() {
            roles
                .entry(&m.entry.name)
                .or_insert_with(Role::default)
                .managed = Some(i);
        }
        let mut role_names = NameFilter::default();
        for name in roles.keys() {
            role_names.insert(name);
        }
        ResponsePlan {
            remove,
            managed,
            roles,
            role_names,
            add,
            default,
        }
    }

    /// Compiles a merged policy layer's response side; counters carry `at`.
    pub fn compile(
        layer: &PolicyLayer,
        at: RouteLabels,
        metrics: &Metrics,
    ) -> Result<ResponsePlan, KeyError> {
        let h = &layer.headers;
        let managed_header = |entry: HeaderEntry, over_http: Option<HeaderValue>| {
            let mode = h.conflict_mode(&entry.name);
            ManagedHeader {
                over_http,
                counters: metrics.header(at, entry.name.as_str(), mode),
                mode,
                entry,
            }
        };
        let mut managed: Vec<ManagedHeader> = Vec::new();
        for s in security_headers(&layer.security) {
            let e = HeaderEntry::with_static_name(s.name, &s.value)
                .map_err(|e| KeyError::new("security", e))?;
            // An explicit `headers.set` of the same header takes precedence.
            if h.set.keys().any(|k| k.name == e.name) {
                continue;
            }
            let over_http = match s.over_http {
                OverHttp::Same => Some(e.value.clone()),
                OverHttp::Never => None,
                OverHttp::Other(v) => Some(
                    HeaderValue::try_from(v)
                        .map_err(|_| KeyError::new("security", "invalid header value"))?,
                ),
            };
            managed.push(managed_header(e, over_http));
        }
        for (name, value) in &h.set {
            let e = HeaderEntry::at(&format!("headers.set.{name}"), &name.text, &value.0)?;
            let same = Some(e.value.clone());
            managed.push(managed_header(e, same));
        }
        let is_managed = |n: &HeaderName| managed.iter().any(|m| m.entry.name == *n);

        let mut add = Vec::new();
        for (name, values) in &h.add {
            let key = format!("headers.add.{name}");
            if is_managed(&name.name) {
                return Err(KeyError::new(key, format!(
                    "`{name}` is managed by this policy; to keep the upstream's copy beside it, use `conflict: {{{name}: append}}`"
                )));
            }
            for v in &values.0 {
                add.push(HeaderEntry::at(&key, &name.text, &v.0)?);
            }
        }
        let mut default = Vec::new();
        for (name, value) in &h.default {
            let key = format!("headers.default.{name}");
            if is_managed(&name.name) {
                return Err(KeyError::new(key, format!(
                    "`{name}` is managed by this policy; to prefer the upstream's value, use `conflict: {{{name}: keep}}`"
                )));
            }
            default.push(HeaderEntry::at(&key, &name.text, &value.0)?);
        }

        let mut remove = RemoveRules::new(&h.remove, |rule| {
            Some(metrics.stripped(at, &rule.to_string()))
        });
        if layer.security.hide_server == Some(true) {
            remove.push(
                RemovePattern::Exact(http::header::SERVER),
                Some(metrics.stripped(at, "server")),
            );
        }
        Ok(ResponsePlan::new(remove, managed, add, default))
    }

    #[cfg(test)]
    pub(crate) fn managed(&self) -> &[ManagedHeader] {
        &self.managed
    }

    /// Applies the plan to a response from the upstream or made by the gateway.
    pub fn apply(&self, resp: &mut ResponseHeader, https: bool) {
        self.apply_counted(resp, https, true);
    }

    /// Applies the plan without counting, to render a response ahead of time.
    pub fn apply_uncounted(&self, resp: &mut ResponseHeader, https: bool) {
        self.apply_counted(resp, https, false);
    }

    fn apply_counted(&self, resp: &mut ResponseHeader, https: bool, count: bool) {
        // One pass over what the response carries: what to remove, and which
        // managed headers the upstream sent too (usually none).
        let mut doomed = Doomed::new();
        let mut sent: SmallVec<[usize; 4]> = SmallVec::new();
        if !self.roles.is_empty() || !self.remove.prefixes.is_empty() {
            for name in resp.headers.keys() {
                let role = if self.role_names.may_contain(name) {
                    self.roles.get(name).copied().unwrap_or_default()
                } else {
                    Role::default()
                };
                match self.remove.first_rule(role.remove, name) {
                    Some(rule) => doomed.push((name.clone(), rule)),
                    None => sent.extend(role.managed),
                }
            }
        }
        self.remove.remove(resp, doomed);
        for (i, m) in self.managed.iter().enumerate() {
            let value = match (https, &m.over_http) {
                (true, _) => &m.entry.value,
                (false, Some(v)) => v,
                (false, None) => {
                    // Not for plain HTTP, whoever wrote it (RFC 6797 7.2 for HSTS).
                    if sent.contains(&i) {
                        resp.remove(&m.entry.name);
                        m.counters.duplicated.inc();
                    }
                    continue;
                }
            };
            if sent.contains(&i) {
                resolve_conflict(resp, m, value);
            } else {
                resp.insert_value(&m.entry, value.clone());
                if count {
                    m.counters.injected.inc();
                }
            }
        }
        add_and_default(resp, &self.add, &self.default);
    }
}

/// A managed header the upstream sent too: what `mode` says wins. `value` is
/// the policy's, for the response's scheme.
fn resolve_conflict(resp: &mut ResponseHeader, m: &ManagedHeader, value: &HeaderValue) {
    let e = &m.entry;
    let mut existing = resp.headers().get_all(&e.name).iter();
    let Some(first) = existing.next().cloned() else {
        return;
    };
    let more = existing.next().is_some();
    m.counters.duplicated.inc();
    match m.mode {
        // The upstream's one copy already says exactly this: nothing to write.
        ConflictMode::Override if !more && first == value => {}
        ConflictMode::Override => {
            resp.insert_value(e, value.clone());
            m.counters.injected.inc();
        }
        ConflictMode::Keep => {
            if more {
                resp.insert_value(e, first);
            }
        }
        ConflictMode::Append => {
            if !resp.headers().get_all(&e.name).iter().any(|v| v == value) {
                resp.append_value(e, value.clone());
                m.counters.injected.inc();
            }
        }
    }
}

/// Request-header actions applied to the request sent upstream.
#[derive(Debug, Clone, Default)]
pub struct RequestPlan {
    pub remove: RemoveRules,
    pub set: Vec<HeaderEntry>,
    pub add: Vec<HeaderEntry>,
    pub default: Vec<HeaderEntry>,
}

impl RequestPlan {
    /// Compiles a merged policy layer's `request_headers`.
    pub fn compile(layer: &PolicyLayer) -> Result<RequestPlan, KeyError> {
        let r = &layer.request_headers;
        if !r.conflict.is_empty() {
            return Err(KeyError::new(
                "request_headers.conflict",
                "`conflict` applies to response headers (`headers`) only",
            ));
        }
        let mut plan = RequestPlan {
            remove: RemoveRules::new(&r.remove, |_| None),
            ..Default::default()
        };
        for (name, value) in &r.set {
            let key = format!("request_headers.set.{name}");
            plan.set.push(HeaderEntry::at(&key, &name.text, &value.0)?);
        }
        for (name, values) in &r.add {
            let key = format!("request_headers.add.{name}");
            for v in &values.0 {
                plan.add.push(HeaderEntry::at(&key, &name.text, &v.0)?);
            }
        }
        for (name, value) in &r.default {
            let key = format!("request_headers.default.{name}");
            plan.default
                .push(HeaderEntry::at(&key, &name.text, &value.0)?);
        }
        Ok(plan)
    }

    pub fn apply(&self, req: &mut RequestHeader) {
        self.remove.apply(req);
        for e in &self.set {
            req.insert(e);
        }
        add_and_default(req, &self.add, &self.default);
    }
}

/// `add` appends beside what is there; `default` fills in only what is missing.
fn add_and_default(target: &mut impl HeaderTarget, add: &[HeaderEntry], default: &[HeaderEntry]) {
    for e in add {
        target.append(e);
    }
    for e in default {
        if !target.headers().contains_key(&e.name) {
            target.insert(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn managed(name: &str, value: &str, mode: ConflictMode) -> ManagedHeader {
        let entry = HeaderEntry::new(name, value).unwrap();
        ManagedHeader {
            over_http: Some(entry.value.clone()),
            entry,
            mode,
            counters: Metrics::new().header(
                RouteLabels {
                    vhost: "unit-headers",
                    route: "_vhost",
                },
                name,
                mode,
            ),
        }
    }

    #[test]
    fn the_name_filter_passes_every_member_and_spares_most_others() {
        let long = "x-".repeat(40);
        let members = [
            "server",
            "x-powered-by",
            "content-security-policy",
            long.as_str(),
        ];
        let mut filter = NameFilter::default();
        for m in members {
            filter.insert(&HeaderName::from_bytes(m.as_bytes()).unwrap());
        }
        for m in members {
            assert!(
                filter.may_contain(&HeaderName::from_bytes(m.as_bytes()).unwrap()),
                "{m}"
            );
        }
        // Another name of 80 bytes starting with `x` shares the "63 or more" bit.
        let also_long = format!("x{}", "y".repeat(79));
        assert!(filter.may_contain(&HeaderName::from_bytes(also_long.as_bytes()).unwrap()));
        for other in [
            "date",
            "etag",
            "content-length",
            "connection",
            "sever",
            "cache-control",
        ] {
            assert!(
                !filter.may_contain(&HeaderName::from_bytes(other.as_bytes()).unwrap()),
                "{other}"
            );
        }
        // Same length and first byte as a member: passed on to the exact lookup.
        assert!(filter.may_contain(&HeaderName::from_static("sxxxxx")));
    }

    fn only_managed(managed: Vec<ManagedHeader>) -> ResponsePlan {
        ResponsePlan::new(RemoveRules::default(), managed, vec![], vec![])
    }

    fn upstream(headers: &[(&str, &str)]) -> ResponseHeader {
        let mut r = ResponseHeader::build(200, None).unwrap();
        for (n, v) in headers {
            r.append_header(n.to_string(), *v).unwrap();
        }
        r
    }

    fn values(r: &ResponseHeader, name: &str) -> Vec<String> {
        r.headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn conflict_modes() {
        let plan = only_managed(vec![
            managed("X-Frame-Options", "DENY", ConflictMode::Override),
            managed("Referrer-Policy", "no-referrer", ConflictMode::Keep),
            managed(
                "Content-Security-Policy",
                "default-src 'self'",
                ConflictMode::Append,
            ),
        ]);
        let mut r = upstream(&[
            ("X-Frame-Options", "SAMEORIGIN"),
            ("X-Frame-Options", "ALLOWALL"),
            ("Referrer-Policy", "origin"),
            ("Referrer-Policy", "unsafe-url"),
            ("Content-Security-Policy", "img-src *"),
        ]);
        plan.apply(&mut r, false);
        assert_eq!(values(&r, "x-frame-options"), ["DENY"]);
        assert_eq!(values(&r, "referrer-policy"), ["origin"]);
        assert_eq!(
            values(&r, "content-security-policy"),
            ["img-src *", "default-src 'self'"]
        );
        // Applying twice changes nothing: append does not repeat an identical value.
        plan.apply(&mut r, false);
        assert_eq!(values(&r, "content-security-policy").len(), 2);
        assert_eq!(values(&r, "x-frame-options"), ["DENY"]);
    }

    #[test]
    fn https_only_headers_wait_for_https() {
        let mut hsts = managed(
            "Strict-Transport-Security",
            "max-age=60",
            ConflictMode::Override,
        );
        hsts.over_http = None;
        let plan = only_managed(vec![hsts]);
        let mut r = upstream(&[]);
        plan.apply(&mut r, false);
        assert!(values(&r, "strict-transport-security").is_empty());
        plan.apply(&mut r, true);
        assert_eq!(values(&r, "strict-transport-security"), ["max-age=60"]);
    }

    #[test]
    fn each_scheme_gets_its_own_value() {
        let mut csp = managed(
            "Content-Security-Policy",
            "default-src 'self'; report-uri /r; report-to secgw-csp",
            ConflictMode::Override,
        );
        csp.over_http = Some(HeaderValue::from_static(
            "default-src 'self'; report-uri /r",
        ));
        let plan = only_managed(vec![csp]);
        let mut r = upstream(&[]);
        plan.apply(&mut r, false);
        assert_eq!(
            values(&r, "content-security-policy"),
            ["default-src 'self'; report-uri /r"]
        );
        // The upstream's copy is replaced with the value for the scheme.
        plan.apply(&mut r, true);
        assert_eq!(
            values(&r, "content-security-policy"),
            ["default-src 'self'; report-uri /r; report-to secgw-csp"]
        );
    }

    #[test]
    fn remove_add_default() {
        let plan = ResponsePlan::new(
            RemoveRules::new(
                &[
                    RemovePattern::Exact(HeaderName::from_static("server")),
                    RemovePattern::Prefix("x-aspnet".into()),
                ],
                |_| None,
            ),
            vec![],
            vec![HeaderEntry::new("Link", "</a.css>; rel=preload").unwrap()],
            vec![
                HeaderEntry::new("Cache-Control", "no-store").unwrap(),
                HeaderEntry::new("X-Robots-Tag", "noindex").unwrap(),
            ],
        );
        let mut r = upstream(&[
            ("Server", "nginx"),
            ("X-AspNet-Version", "4"),
            ("X-AspNetMvc-Version", "5"),
            ("Link", "</b.js>; rel=preload"),
            ("Cache-Control", "public"),
        ]);
        plan.apply(&mut r, false);
        assert!(values(&r, "server").is_empty());
        assert!(values(&r, "x-aspnet-version").is_empty());
        assert!(values(&r, "x-aspnetmvc-version").is_empty());
        assert_eq!(
            values(&r, "link"),
            ["</b.js>; rel=preload", "</a.css>; rel=preload"]
        );
        assert_eq!(values(&r, "cache-control"), ["public"]);
        assert_eq!(values(&r, "x-robots-tag"), ["noindex"]);
    }

    #[test]
    fn each_removed_name_counts_once_against_its_first_rule() {
        let counter = |name: &str| IntCounter::new(name, name).unwrap();
        let (debug, token, server) = (counter("debug"), counter("token"), counter("server"));
        let rules = RemoveRules::new(
            &[
                RemovePattern::Prefix("x-debug-".into()),
                RemovePattern::Exact(HeaderName::from_static("x-debug-token")),
                RemovePattern::Exact(HeaderName::from_static("server")),
            ],
            |p| match p.to_string().as_str() {
                "x-debug-*" => Some(debug.clone()),
                "x-debug-token" => Some(token.clone()),
                _ => Some(server.clone()),
            },
        );
        let mut r = upstream(&[
            ("X-Debug-Token", "a"),
            ("X-Debug-Token", "b"),
            ("X-Debug-Level", "3"),
            ("Server", "nginx"),
            ("X-Debugger", "kept"),
        ]);
        rules.apply(&mut r);
        let names: Vec<&str> = r.headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["x-debugger"]);
        assert_eq!((debug.get(), token.get(), server.get()), (2, 0, 1));
    }

    #[test]
    fn one_pass_removes_and_resolves_conflicts_together() {
        let at = RouteLabels {
            vhost: "unit-one-pass",
            route: "_vhost",
        };
        let counters = Metrics::new().header(at, "x-frame-options", ConflictMode::Override);
        let entry = HeaderEntry::with_static_name("X-Frame-Options", "DENY").unwrap();
        let xfo = ManagedHeader {
            over_http: Some(entry.value.clone()),
            entry,
            mode: ConflictMode::Override,
            counters: counters.clone(),
        };
        let remove = RemoveRules::new(
            &[
                RemovePattern::Exact(HeaderName::from_static("server")),
                RemovePattern::Prefix("x-debug-".into()),
            ],
            |_| None,
        );
        let plan = ResponsePlan::new(remove, vec![xfo], vec![], vec![]);
        let mut r = upstream(&[
            ("Server", "nginx"),
            ("X-Debug-A", "1"),
            ("X-Frame-Options", "SAMEORIGIN"),
            ("X-Other", "kept"),
        ]);
        plan.apply(&mut r, false);
        let mut wire = Vec::new();
        r.header_to_h1_wire(&mut wire);
        let wire = String::from_utf8(wire).unwrap();
        // Removal reorders the map; the lines are what matters.
        let mut lines: Vec<&str> = wire.split_terminator("\r\n").collect();
        lines.sort_unstable();
        assert_eq!(lines, ["X-Frame-Options: DENY", "X-Other: kept"]);
        assert_eq!((counters.duplicated.get(), counters.injected.get()), (1, 1));
    }

    #[test]
    fn wire_case_is_the_configured_case() {
        let plan = only_managed(vec![managed(
            "X-Frame-Options",
            "DENY",
            ConflictMode::Override,
        )]);
        let mut r = upstream(&[]);
        plan.apply(&mut r, false);
        let mut wire = Vec::new();
        r.header_to_h1_wire(&mut wire);
        assert_eq!(
            String::from_utf8(wire).unwrap(),
            "X-Frame-Options: DENY\r\n"
        );
    }
}
