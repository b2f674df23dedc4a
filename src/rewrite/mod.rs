//! Rewriting response bodies as they stream: today, the CSP nonce in HTML.
//!
//! `begin` looks at a response's headers and, when the route's nonce plan applies
//! to it, sets the nonced CSP and the framing a rewritten body needs; the stream
//! it returns then decodes (gzip, deflate, br) and rewrites each chunk as it
//! comes, from the page's template when the cache has one.

pub mod cache;
pub mod decode;
pub mod html;
pub mod template;

use std::sync::{Arc, Mutex};

use base64::Engine;
use bytes::Bytes;
use http::{header, HeaderValue, Method, StatusCode, Version};
use lol_html::AsciiCompatibleEncoding;
use pingora_http::{RequestHeader, ResponseHeader};

use self::cache::{Lookup, NonceCache, Scope, TemplateKey};
use self::decode::{Coding, Decoder};
use self::html::Document;
use self::template::{Outcome, PageNoncer, Template};
use crate::metrics::{CacheResult, NonceSkip};
use crate::policy::csp_sources::DocumentOrigin;
use crate::policy::nonce::{NonceCounters, NoncePlan};
use crate::routing::request_host;

/// 128 bits, the CSP3 minimum.
const NONCE_BYTES: usize = 16;

/// A fresh nonce from the operating system's CSPRNG, base64-encoded.
pub fn fresh_nonce() -> Option<String> {
    let mut bytes = [0u8; NONCE_BYTES];
    getrandom::fill(&mut bytes).ok()?;
    Some(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// One response's body on its way through the rewriter.
pub struct NonceStream(Mutex<Option<Stages>>);

struct Stages {
    decoder: Option<Decoder>,
    html: PageNoncer,
    /// The route's counts, for a page whose nonces stopped early.
    counters: NonceCounters,
    /// On a route with `csp_nonce_cache`: where the page's template goes.
    cached: Option<Cached>,
}

/// A response the template cache was asked about.
struct Cached {
    cache: Arc<NonceCache>,
    scope: Scope,
    key: TemplateKey,
    /// The template it follows, if the cache had one.
    followed: Option<Arc<Template>>,
}

/// Why a body could not be rewritten.
#[derive(Debug)]
pub enum RewriteError {
    Decode(std::io::Error),
    /// A chunk after the end.
    Ended,
}

impl std::fmt::Display for RewriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RewriteError::Decode(e) => write!(f, "decoding the upstream body: {e}"),
            RewriteError::Ended => write!(f, "body after its end"),
        }
    }
}

impl std::error::Error for RewriteError {}

impl NonceStream {
    /// Replaces `body` with its rewritten form; at the end, flushes what was held back.
    pub fn filter(&self, body: &mut Option<Bytes>, end: bool) -> Result<(), RewriteError> {
        let mut guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let stages = guard.as_mut().ok_or(RewriteError::Ended)?;
        let input = body.take().unwrap_or_default();
        let mut out = match &mut stages.decoder {
            Some(d) => {
                let decoded = d.decode(&input).map_err(RewriteError::Decode)?;
                stages.html.write(&decoded)
            }
            None => stages.html.write(&input),
        };
        if end {
            let Stages {
                decoder,
                mut html,
                counters,
                cached,
            } = guard.take().ok_or(RewriteError::Ended)?;
            if let Some(d) = decoder {
                let rest = d.finish().map_err(RewriteError::Decode)?;
                out.extend(html.write(&rest));
            }
            let ended = html.end();
            if let Some(reason) = ended.stop {
                counters.skipped(reason);
            }
            out.extend(ended.last);
            if let Some(c) = cached {
                let result = match (ended.outcome, &c.followed) {
                    (Outcome::Hit, _) => CacheResult::Hit,
                    (Outcome::Diverged, Some(left)) => {
                        c.cache.diverged(c.scope, c.key, left, ended.recording);
                        CacheResult::Divergence
                    }
                    _ => {
                        if let Some(recording) = ended.recording {
                            c.cache.insert(c.scope, c.key, recording);
                        }
                        CacheResult::Miss
                    }
                };
                counters.cache(result);
            }
        }
        *body = (!out.is_empty()).then(|| Bytes::from(out));
        Ok(())
    }
}

/// Decides whether `resp` gets a nonce and, if so, prepares its headers and
/// returns the stream its body goes through. Responses without a body to rewrite
/// (HEAD, 1xx, 204, 206, 304) and non-HTML are left alone; HTML that cannot be
/// rewritten is counted and passes unmodified, with the CSP the plan already set.
/// `cache` is given on a route with `csp_nonce_cache`.
pub fn begin(
    plan: &NoncePlan,
    cache: Option<Cache<'_>>,
    resp: &mut ResponseHeader,
    req: &RequestHeader,
    https: bool,
) -> Option<NonceStream> {
    let status = resp.status;
    if req.method == Method::HEAD
        || status.is_informational()
        || matches!(
            status,
            StatusCode::NO_CONTENT | StatusCode::PARTIAL_CONTENT | StatusCode::NOT_MODIFIED
        )
    {
        return None;
    }
    let charset = html_charset(resp)?;
    let skip = |reason| {
        plan.counters.skipped(reason);
        None
    };
    if has_directive(resp, "no-transform") {
        return skip(NonceSkip::NoTransform);
    }
    let coding = match single_value(resp, header::CONTENT_ENCODING) {
        Err(()) => return skip(NonceSkip::Encoding),
        Ok(None) => None,
        Ok(Some(v)) if v.as_bytes().eq_ignore_ascii_case(b"identity") => None,
        Ok(Some(v)) => match Coding::from_header(v.as_bytes()) {
            Some(c) => Some(c),
            None => return skip(NonceSkip::Encoding),
        },
    };
    let encoding = match charset {
        Charset::Unnamed => None,
        Charset::Ascii(e) => Some(e),
        Charset::Other => return skip(NonceSkip::Charset),
    };
    let host = request_host(req)?;
    let origin = DocumentOrigin::new(https, &host)?;
    let url = origin.url(req.uri.path_and_query().map_or("/", |pq| pq.as_str()))?;
    let nonce = fresh_nonce()?;
    let cached = cache.and_then(|c| ask_cache(plan, c, &url, resp, req));
    for (name, value) in plan.csp_headers(&nonce, https) {
        let _ = resp.insert_header(name, value);
    }
    prepare_headers(resp, req, coding.is_some());
    plan.counters.nonced.inc();
    let doc = Document {
        nonce,
        filter: plan.filter.clone(),
        origin,
        url,
    };
    let (followed, record) = match &cached {
        Some((c, record)) => (c.followed.clone(), record.then(|| c.cache.record(c.scope))),
        None => (None, None),
    };
    Some(NonceStream(Mutex::new(Some(Stages {
        decoder: coding.map(Decoder::new),
        html: PageNoncer::new(doc, encoding, followed, record),
        counters: plan.counters.clone(),
        cached: cached.map(|(c, _)| c),
    }))))
}

/// What a response needs to ask the template cache: the cache, the plan's
/// scope, and the upstream's own head.
pub struct Cache<'a> {
    pub cache: &'a Arc<NonceCache>,
    pub scope: Scope,
    pub upstream: Upstream,
}

/// What the upstream's head says about its page, read before the route's
/// policy changes it (a policy may strip `Set-Cookie` or set `Cache-Control`).
pub struct Upstream {
    /// No `Set-Cookie`, and no `private` or `no-store`: a page any client may get.
    shared: bool,
    /// ETag, Last-Modified and Content-Length; `None` when one is repeated.
    validators: Option<[Option<HeaderValue>; 3]>,
}

impl Upstream {
    pub fn of(resp: &ResponseHeader) -> Upstream {
        let one = |name| single_value(resp, name).ok().map(|v| v.cloned());
        let shared = !resp.headers.contains_key(header::SET_COOKIE)
            && !directives(resp).map(directive_name).any(|name| {
                name.eq_ignore_ascii_case("private") || name.eq_ignore_ascii_case("no-store")
            });
        Upstream {
            shared,
            validators: (|| {
                Some([
                    one(header::ETAG)?,
                    one(header::LAST_MODIFIED)?,
                    one(header::CONTENT_LENGTH)?,
                ])
            })(),
        }
    }
}

/// The cache's answer for a `GET` whose `200` is HTML on a route with
/// `csp_nonce_cache`, and whether the page may make a template: only a shared
/// one, asked for without credentials, may.
fn ask_cache(
    plan: &NoncePlan,
    Cache {
        cache,
        scope,
        upstream,
    }: Cache<'_>,
    url: &url::Url,
    resp: &ResponseHeader,
    req: &RequestHeader,
) -> Option<(Cached, bool)> {
    if scope.max_page_bytes() == 0 || req.method != Method::GET || resp.status != StatusCode::OK {
        return None;
    }
    let key = TemplateKey {
        route: plan.id,
        url: url.as_str().to_string(),
        content_type: single_value(resp, header::CONTENT_TYPE).ok()??.clone(),
        validators: upstream.validators?,
    };
    let (followed, recordable) = match cache.get(scope, &key) {
        Lookup::Template(t) => (Some(t), true),
        Lookup::Miss => (None, true),
        Lookup::Skip => (None, false),
    };
    let credentials = [
        header::COOKIE,
        header::AUTHORIZATION,
        header::PROXY_AUTHORIZATION,
    ];
    let anonymous = !credentials.iter().any(|h| req.headers.contains_key(h));
    let cached = Cached {
        cache: cache.clone(),
        scope,
        key,
        followed,
    };
    Some((cached, recordable && anonymous && upstream.shared))
}

/// The framing and caching a rewritten, per-response body needs.
fn prepare_headers(resp: &mut ResponseHeader, req: &RequestHeader, decoded: bool) {
    // The length changes, and HTTP/1.1 clients get chunks (HTTP/2 has frames,
    // HTTP/1.0 reads to the close).
    resp.remove_header(&header::CONTENT_LENGTH);
    if req.version == Version::HTTP_11 && !resp.headers.contains_key(header::TRANSFER_ENCODING) {
        let _ = resp.insert_header("Transfer-Encoding", "chunked");
    }
    if decoded {
        resp.remove_header(&header::CONTENT_ENCODING);
    }
    // The bytes differ on every response: validators would let a browser turn a
    // later request into a 304 whose CSP no longer matches the page it stored,
    // and a range of one response is not a range of the next.
    resp.remove_header(&header::ETAG);
    resp.remove_header(&header::LAST_MODIFIED);
    resp.remove_header(&header::ACCEPT_RANGES);
    // CDNs that obey these over Cache-Control would share one nonce.
    resp.remove_header("CDN-Cache-Control");
    resp.remove_header("Surrogate-Control");
    make_private(resp);
}

/// A nonce reused from a shared cache is a bypass: the response becomes `private`
/// unless it is already `private` or `no-store`.
fn make_private(resp: &mut ResponseHeader) {
    if has_directive(resp, "private") || has_directive(resp, "no-store") {
        return;
    }
    let mut directives: Vec<String> = directives(resp)
        .filter(|d| {
            let name = directive_name(d);
            !name.eq_ignore_ascii_case("public") && !name.eq_ignore_ascii_case("s-maxage")
        })
        .map(str::to_string)
        .collect();
    directives.push("private".to_string());
    if let Ok(v) = HeaderValue::try_from(directives.join(", ")) {
        let _ = resp.insert_header("Cache-Control", v);
    }
}

/// The Cache-Control directives, across every line of the header.
fn directives(resp: &ResponseHeader) -> impl Iterator<Item = &str> {
    resp.headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|d| !d.is_empty())
}

/// A directive's name, without its value (`private` of `private="x"`).
fn directive_name(directive: &str) -> &str {
    directive.split('=').next().unwrap_or("").trim()
}

/// A bare directive (`private="x"` is not `private`).
fn has_directive(resp: &ResponseHeader, name: &str) -> bool {
    directives(resp).any(|d| d.eq_ignore_ascii_case(name))
}

/// The one value of `name`; an error when the header is repeated.
fn single_value(
    resp: &ResponseHeader,
    name: header::HeaderName,
) -> Result<Option<&HeaderValue>, ()> {
    let mut all = resp.headers.get_all(name).iter();
    match (all.next(), all.next()) {
        (first, None) => Ok(first),
        _ => Err(()),
    }
}

enum Charset {
    /// No charset parameter (or an unknown label): the document may name one.
    Unnamed,
    Ascii(AsciiCompatibleEncoding),
    /// UTF-16 and the like, which the streaming parser cannot read.
    Other,
}

/// The charset of an HTML response; `None` when it is not HTML.
fn html_charset(resp: &ResponseHeader) -> Option<Charset> {
    let value = single_value(resp, header::CONTENT_TYPE)
        .ok()??
        .to_str()
        .ok()?;
    let mut parts = value.split(';');
    let essence = parts.next()?.trim();
    if !essence.eq_ignore_ascii_case("text/html") {
        return None;
    }
    let label = parts.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| v.trim().trim_matches('"'))
    });
    let Some(encoding) = label.and_then(|l| encoding_rs::Encoding::for_label(l.as_bytes())) else {
        return Some(Charset::Unnamed);
    };
    Some(match AsciiCompatibleEncoding::new(encoding) {
        Some(e) => Charset::Ascii(e),
        None => Charset::Other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(headers: &[(&str, &str)]) -> ResponseHeader {
        let mut r = ResponseHeader::build(200, None).unwrap();
        for (n, v) in headers {
            r.append_header(n.to_string(), *v).unwrap();
        }
        r
    }

    fn cache_control(headers: &[(&str, &str)]) -> String {
        let mut r = response(headers);
        make_private(&mut r);
        let all: Vec<&str> = r
            .headers
            .get_all("cache-control")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        all.join(" | ")
    }

    #[test]
    fn nonced_responses_become_private() {
        assert_eq!(cache_control(&[]), "private");
        assert_eq!(
            cache_control(&[("Cache-Control", "public, max-age=60, s-maxage=600")]),
            "max-age=60, private"
        );
        assert_eq!(
            cache_control(&[("Cache-Control", "max-age=60"), ("Cache-Control", "PUBLIC")]),
            "max-age=60, private"
        );
        assert_eq!(cache_control(&[("Cache-Control", "no-store")]), "no-store");
        assert_eq!(
            cache_control(&[("Cache-Control", "private, max-age=5")]),
            "private, max-age=5"
        );
        assert_eq!(
            cache_control(&[("Cache-Control", "private=\"set-cookie\"")]),
            "private=\"set-cookie\", private"
        );
    }

    #[test]
    fn charsets() {
        let kind = |ct: &str| match html_charset(&response(&[("Content-Type", ct)])) {
            None => "not html",
            Some(Charset::Unnamed) => "unnamed",
            Some(Charset::Ascii(_)) => "ascii",
            Some(Charset::Other) => "other",
        };
        assert_eq!(kind("text/html"), "unnamed");
        assert_eq!(kind("TEXT/HTML; charset=\"utf-8\""), "ascii");
        assert_eq!(kind("text/html;charset=windows-1252"), "ascii");
        assert_eq!(kind("text/html; charset=UTF-16LE"), "other");
        assert_eq!(kind("text/html; charset=no-such-thing"), "unnamed");
        assert_eq!(kind("text/htmlx"), "not html");
        assert_eq!(kind("application/xhtml+xml"), "not html");
        assert_eq!(kind("text/plain"), "not html");
    }

    #[test]
    fn nonces_are_fresh_and_128_bits() {
        let a = fresh_nonce().unwrap();
        let b = fresh_nonce().unwrap();
        assert_ne!(a, b);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&a)
            .unwrap();
        assert_eq!(bytes.len(), 16);
    }
}
