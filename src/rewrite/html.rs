//! The nonce, written into HTML as it streams by: on inline scripts, on scripts
//! and script preloads whose URLs the policy allows, and (with styles) on
//! `<style>` and allowed stylesheets. Nothing else in the document changes.
//!
//! lol_html only reads the page: its handlers note where each nonce goes (just
//! after the tag's name), and the bytes it has passed are sent on with the
//! nonces spliced in. Where its reading of the page may part from a browser's,
//! no element gets a nonce from that point on, and where it cannot go on at all,
//! the rest of the page is sent as the upstream sent it.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use lol_html::errors::RewritingError;
use lol_html::send::{Element, ElementHandler, HtmlRewriter, Settings};
use lol_html::{AsciiCompatibleEncoding, ElementContentHandlers, HandlerResult, MemorySettings};
use lol_html::{OutputSink, Selector};
use url::Url;

use crate::metrics::NonceSkip;
use crate::policy::csp_sources::{DocumentOrigin, SourceList};
use crate::policy::nonce::NonceFilter;

/// Far above any real start tag; a body that makes the parser buffer more is
/// passed on without nonces instead of growing memory.
const PARSER_MEMORY_LIMIT: usize = 4 << 20;

/// A CDATA section is read as one only in foreign content, and a browser and
/// lol_html may disagree on whether that is where they are.
const CDATA: &[u8] = b"<![CDATA[";

/// ISO-2022-JP, which a `<meta>` can switch a browser to, hides tags behind
/// escape sequences from a parser that reads ASCII.
const ESC: u8 = 0x1b;

/// One selector per element kind, so a handler knows its tag without asking
/// lol_html for the name (an allocation per element).
static SELECTORS: LazyLock<[Selector; 7]> = LazyLock::new(|| {
    [
        "script",
        "link",
        "style",
        "base",
        "svg",
        "math",
        // SVG's HTML integration points.
        "svg desc, svg title, svg foreignobject",
    ]
    .map(|s| s.parse().expect("a valid selector"))
});

const HTML_NS: &str = "http://www.w3.org/1999/xhtml";

/// The document the elements belong to: where their URLs resolve, and the nonce.
#[derive(Clone)]
pub struct Document {
    pub nonce: String,
    pub filter: Arc<NonceFilter>,
    pub origin: DocumentOrigin,
    pub url: Url,
}

/// What the element handlers decide; it owns the `<base>`s seen so far.
struct Noncer {
    doc: Document,
    /// Where the nonce goes: input offsets just after a tag's name, in order.
    at: Vec<usize>,
    /// Every `<base href>` seen, in any namespace: URLs after one must be allowed
    /// resolved against each, since which one the browser uses (if `base-uri`
    /// lets it use any) is not for a streaming parser to decide.
    bases: Vec<Url>,
    /// A base the URL parser rejected: nothing after it gets a nonce by URL.
    unknown_base: bool,
    /// Markup was seen after which lol_html and a browser may read tags
    /// differently: nothing after it gets a nonce. Shared with end-tag handlers.
    ambiguous: Arc<AtomicBool>,
    /// `<svg>` elements open, as lol_html's element stack has them. Nothing
    /// inside one gets a nonce: lol_html can miss an element there (an
    /// integration point right after some end tags, `<svg></title><desc>`), and
    /// then read HTML where a browser reads SVG.
    svg_open: Arc<AtomicUsize>,
    /// The script and style sources allow every path of the document's origin
    /// (`'self'` does): a path-absolute URL needs no parsing until a `<base>`.
    scripts_allow_origin: bool,
    styles_allow_origin: bool,
    /// When recording a template: the input range of every start tag a handler
    /// saw, in order.
    tags: Option<Vec<Range<usize>>>,
}

/// The attributes of one element that the decision needs, read in one pass.
#[derive(Default)]
struct Attributes {
    /// The values of every attribute named in the handler's URL names
    /// (duplicates too: a browser reads the first, so all must pass), with
    /// character references decoded as a browser decodes them in attributes
    /// (`&#47;&#47;evil` is `//evil`).
    urls: Vec<String>,
    /// A `<` inside a tag means the streaming parser and a browser may not
    /// agree on where tags are (foreign content, raw text): an attacker's tag
    /// hidden in an attribute would receive the nonce meant for this one.
    wraps_markup: bool,
    /// The first `rel` and `as`, as `get_attribute` would give them.
    rel: Option<String>,
    as_: Option<String>,
    /// An `href` or `xlink:href`: what an SVG `<script>` loads, so a script
    /// that lol_html reads as HTML but has one is left alone.
    href: bool,
}

impl Attributes {
    fn read(el: &Element<'_, '_>, url_names: &[&str]) -> Attributes {
        let mut out = Attributes::default();
        for a in el.attributes() {
            let (name, value) = (a.name(), a.value());
            out.wraps_markup |= name.contains('<') || value.contains('<');
            out.href |= matches!(name.as_str(), "href" | "xlink:href");
            if url_names.contains(&name.as_str()) {
                out.urls.push(match htmlize::unescape_attribute(&value) {
                    Cow::Borrowed(_) => value,
                    Cow::Owned(decoded) => decoded,
                });
            } else if name == "rel" && out.rel.is_none() {
                out.rel = Some(value);
            } else if name == "as" && out.as_.is_none() {
                out.as_ = Some(value);
            }
        }
        out
    }
}

impl Noncer {
    fn new(doc: Document) -> Noncer {
        let every_path = |list: &SourceList| list.allows_every_path_of(&doc.url, &doc.origin);
        let scripts_allow_origin = every_path(&doc.filter.scripts);
        let styles_allow_origin = doc.filter.styles.as_ref().is_some_and(every_path);
        Noncer {
            doc,
            at: Vec::new(),
            bases: Vec::new(),
            unknown_base: false,
            ambiguous: Arc::default(),
            svg_open: Arc::default(),
            scripts_allow_origin,
            styles_allow_origin,
            tags: None,
        }
    }

    fn base(&mut self, el: &mut Element<'_, '_>) -> HandlerResult {
        for href in Attributes::read(el, &["href"]).urls {
            match self.doc.url.join(&href) {
                Ok(url) => self.bases.push(url),
                Err(_) => self.unknown_base = true,
            }
        }
        Ok(())
    }

    /// An `<svg>` whose reading may part from a browser's (lol_html 2.9):
    /// - self-closing, `<svg/>`: a browser inserts the element and stays in
    ///   HTML; lol_html enters foreign content and reads what follows there (a
    ///   CDATA section, which a browser reads as a bogus comment);
    /// - closed by an end tag other than its own (`<div><svg></div>`, which
    ///   ends both for a browser): lol_html stays in SVG (`</p>` is the one
    ///   other end tag after which it leaves, as a browser does).
    fn svg(&mut self, el: &mut Element<'_, '_>) -> HandlerResult {
        if el.is_self_closing() {
            self.ambiguous.store(true, Ordering::Relaxed);
        }
        self.svg_open.fetch_add(1, Ordering::Relaxed);
        let open = self.svg_open.clone();
        let own = |end: &str| end.eq_ignore_ascii_case("svg") || end.eq_ignore_ascii_case("p");
        self.closed_by(el, own, move || {
            open.fetch_sub(1, Ordering::Relaxed);
        });
        Ok(())
    }

    /// Any `<math>`: inside MathML, lol_html's namespaces part from a browser's
    /// in too many ways to follow (`<math><mi><mglyph><style>` is raw text to
    /// lol_html, markup to a browser; an `<svg>` in `<math>` is MathML to a
    /// browser, SVG to lol_html), and MathML is rare on pages that need nonces.
    fn math(&mut self, _: &mut Element<'_, '_>) -> HandlerResult {
        self.ambiguous.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// An SVG integration point (`<desc>`, `<title>`, `<foreignObject>`), inside
    /// which lol_html reads HTML. Closed by an end tag other than its own, it
    /// may close a foreign ancestor for a browser and not for lol_html:
    /// `<svg><script><desc></script><style>` is an SVG `<style>` to a browser,
    /// raw text to lol_html.
    fn integration_point(&mut self, el: &mut Element<'_, '_>) -> HandlerResult {
        let name = el.tag_name();
        self.closed_by(el, move |end| end.eq_ignore_ascii_case(&name), || ());
        Ok(())
    }

    /// Marks the page ambiguous when `el` ends by an end tag that `own` does
    /// not accept (lol_html calls the handler of each element an end tag
    /// closes), and calls `then` when it ends. An element without an end tag
    /// (`<svg/>`) ends at once.
    fn closed_by(
        &self,
        el: &mut Element<'_, '_>,
        own: impl Fn(&str) -> bool + Send + 'static,
        then: impl FnOnce() + Send + 'static,
    ) {
        let Some(handlers) = el.end_tag_handlers() else {
            then();
            return;
        };
        let ambiguous = self.ambiguous.clone();
        handlers.push(Box::new(move |end| {
            if !own(&end.name()) {
                ambiguous.store(true, Ordering::Relaxed);
            }
            then();
            Ok(())
        }));
    }

    /// An SVG `<script>` (which lol_html reads as markup) gets no nonce: its URL
    /// (`href`, `xlink:href`) is resolved at its end tag, after markup inside it
    /// may have added a `<base>`, and pages do not need it.
    fn script(&mut self, el: &mut Element<'_, '_>) -> HandlerResult {
        let attrs = Attributes::read(el, &["src"]);
        let give = !attrs.wraps_markup
            && !attrs.href
            && self.all_allowed(
                &attrs.urls,
                &self.doc.filter.scripts,
                self.scripts_allow_origin,
            );
        self.give_if(give, el, "script")
    }

    fn style(&mut self, el: &mut Element<'_, '_>) -> HandlerResult {
        let give = self.doc.filter.styles.is_some() && !Attributes::read(el, &[]).wraps_markup;
        self.give_if(give, el, "style")
    }

    /// Script preloads against the script sources; stylesheets against the style ones.
    fn link(&mut self, el: &mut Element<'_, '_>) -> HandlerResult {
        let attrs = Attributes::read(el, &["href"]);
        let rel = attrs.rel.unwrap_or_default().to_ascii_lowercase();
        let as_ = attrs.as_.map(|a| a.trim().to_ascii_lowercase());
        let has = |token: &str| rel.split_ascii_whitespace().any(|t| t == token);
        let (list, allow_origin) = if (has("preload") && as_.as_deref() == Some("script"))
            || (has("modulepreload") && matches!(as_.as_deref(), None | Some("script")))
        {
            (&self.doc.filter.scripts, self.scripts_allow_origin)
        } else {
            match &self.doc.filter.styles {
                Some(styles)
                    if has("stylesheet") || (has("preload") && as_.as_deref() == Some("style")) =>
                {
                    (styles, self.styles_allow_origin)
                }
                _ => return Ok(()),
            }
        };
        let give = !attrs.wraps_markup
            && !attrs.urls.is_empty()
            && self.all_allowed(&attrs.urls, list, allow_origin);
        self.give_if(give, el, "link")
    }

    /// Notes where the nonce goes: only on an HTML element (as lol_html reads
    /// it), and only while lol_html and a browser read the page alike.
    fn give_if(&mut self, give: bool, el: &Element<'_, '_>, name: &str) -> HandlerResult {
        if give
            && !self.ambiguous.load(Ordering::Relaxed)
            && el.namespace_uri() == HTML_NS
            && self.svg_open.load(Ordering::Relaxed) == 0
        {
            // `<` and the name: the selector matched, so the name is `name` in
            // some case, one byte per letter.
            self.at
                .push(el.source_location().bytes().start + 1 + name.len());
        }
        Ok(())
    }

    /// Every URL, resolved against the document and against any `<base>`, is allowed.
    fn all_allowed(&self, urls: &[String], list: &SourceList, allow_origin: bool) -> bool {
        let no_base = self.bases.is_empty() && !self.unknown_base;
        let allowed_from = |base: &Url, raw: &str| {
            base.join(raw)
                .is_ok_and(|url| list.allows(&url, &self.doc.origin))
        };
        // No URL (an inline script): nothing for a base to move.
        urls.is_empty()
            || !self.unknown_base
                && urls.iter().all(|raw| {
                    (no_base && allow_origin && is_path_absolute(raw))
                        || allowed_from(&self.doc.url, raw)
                            && self.bases.iter().all(|b| allowed_from(b, raw))
                })
    }
}

/// Whether the URL parser resolves `raw` against an http(s) URL to that URL's
/// origin: a path (`/x`), but not `//host` or `/\host`, which name a host, and
/// without the tabs and newlines the parser drops (`/\t/host` is `//host`).
fn is_path_absolute(raw: &str) -> bool {
    let b = raw.as_bytes();
    b.first() == Some(&b'/')
        && !matches!(b.get(1), Some(b'/' | b'\\'))
        && !b.iter().any(|c| matches!(c, b'\t' | b'\n' | b'\r'))
}

/// How many input bytes lol_html has passed on: it only reads, so its output is
/// its input, and everything before this count is parsed to the end of its tag.
#[derive(Clone, Default)]
struct Passed(Arc<AtomicUsize>);

impl OutputSink for Passed {
    fn handle_chunk(&mut self, chunk: &[u8]) {
        self.0.fetch_add(chunk.len(), Ordering::Relaxed);
    }
}

/// A streaming rewriter for one response.
pub struct HtmlNoncer {
    /// `None` once it stopped: the rest of the page passes as it came.
    rewriter: Option<HtmlRewriter<'static, Passed>>,
    passed: Passed,
    noncer: Arc<Mutex<Noncer>>,
    /// ` nonce="…"`, as spliced in.
    attribute: Vec<u8>,
    /// Input not sent yet, which starts at input offset `sent`.
    held: Vec<u8>,
    sent: usize,
    /// Input offset of a CDATA section or an ESC byte: no nonce from there on.
    limit: usize,
    /// The last bytes of the input, for a CDATA opener cut by a chunk's end.
    tail: Vec<u8>,
    /// Why nonces stopped before the end of the page.
    stop: Option<NonceSkip>,
    /// When recording a template: the page so far and where its nonces went;
    /// `None` once the page outgrew the limit.
    recording: Option<Recording>,
}

/// What a recording noncer saw of a page: everything a template needs.
#[derive(Debug)]
pub struct Recording {
    /// The input, whole.
    pub page: Vec<u8>,
    /// Where a nonce went, as input offsets, in order.
    pub nonces: Vec<usize>,
    /// The start tags the handlers saw (each a decision, or markup that shapes
    /// later ones), as input ranges, in order.
    pub tags: Vec<Range<usize>>,
    /// How far lol_html had passed the page on before its end: the bytes after
    /// this were an unfinished token it held.
    pub settled: usize,
    /// The largest page it records, and the memory it holds meanwhile.
    record: Record,
}

/// What a recording may hold: a page of at most `limit` bytes, and its
/// memory within a budget shared by every recording of the process.
#[derive(Debug)]
pub struct Record {
    limit: usize,
    budget: Arc<RecordingBudget>,
    /// The budget's bound.
    max: usize,
    /// What this recording holds of it, given back when it ends.
    held: usize,
}

/// The bytes that pages being recorded hold, across the process.
#[derive(Debug, Default)]
pub struct RecordingBudget(AtomicUsize);

impl Record {
    pub fn new(limit: usize, budget: &Arc<RecordingBudget>, max: usize) -> Record {
        Record {
            limit,
            budget: budget.clone(),
            max,
            held: 0,
        }
    }

    /// Holds `bytes` in all; `false` when the budget has no room for them.
    fn hold(&mut self, bytes: usize) -> bool {
        let Some(more) = bytes.checked_sub(self.held).filter(|&m| m > 0) else {
            return true;
        };
        let before = self.budget.0.fetch_add(more, Ordering::Relaxed);
        if before.saturating_add(more) > self.max {
            self.budget.0.fetch_sub(more, Ordering::Relaxed);
            return false;
        }
        self.held = bytes;
        true
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        self.budget.0.fetch_sub(self.held, Ordering::Relaxed);
    }
}

impl HtmlNoncer {
    /// `encoding` from the response's charset; `None` lets a `<meta charset>` decide.
    pub fn new(doc: Document, encoding: Option<AsciiCompatibleEncoding>) -> HtmlNoncer {
        let attribute = nonce_attribute(&doc.nonce);
        let noncer = Arc::new(Mutex::new(Noncer::new(doc)));
        let handler = |on: fn(&mut Noncer, &mut Element<'_, '_>) -> HandlerResult| {
            let noncer = noncer.clone();
            let handler: ElementHandler<'static> = Box::new(move |el| {
                let mut noncer = noncer.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some(tags) = &mut noncer.tags {
                    tags.push(el.source_location().bytes());
                }
                on(&mut noncer, el)
            });
            ElementContentHandlers::default().element(handler)
        };
        let element_content_handlers = SELECTORS
            .iter()
            .map(Cow::Borrowed)
            .zip([
                handler(Noncer::script),
                handler(Noncer::link),
                handler(Noncer::style),
                handler(Noncer::base),
                handler(Noncer::svg),
                handler(Noncer::math),
                handler(Noncer::integration_point),
            ])
            .collect();
        let passed = Passed::default();
        let settings = Settings {
            element_content_handlers,
            encoding: encoding.unwrap_or_else(AsciiCompatibleEncoding::utf_8),
            adjust_charset_on_meta_tag: encoding.is_none(),
            memory_settings: MemorySettings {
                max_allowed_memory_usage: PARSER_MEMORY_LIMIT,
                ..MemorySettings::new()
            },
            // Markup whose parse depends on context the streaming parser does not
            // keep (`<select><xmp><script>`) stops it rather than make it guess.
            strict: true,
            ..Settings::new_send()
        };
        HtmlNoncer {
            rewriter: Some(HtmlRewriter::new(settings, passed.clone())),
            passed,
            noncer,
            attribute,
            held: Vec::new(),
            sent: 0,
            limit: usize::MAX,
            tail: Vec::new(),
            stop: None,
            recording: None,
        }
    }

    /// Keeps what a template of this page needs, within `record`'s bounds;
    /// call before the first `write`.
    pub fn record(&mut self, record: Record) {
        self.recording = Some(Recording {
            page: Vec::new(),
            nonces: Vec::new(),
            tags: Vec::new(),
            settled: 0,
            record,
        });
        self.noncer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .tags = Some(Vec::new());
    }

    /// Adds `chunk` to the recording, if there is one and the page still
    /// makes a template: not past a point where nonces stopped, and within
    /// its size and the process's budget. Otherwise the recording ends.
    fn keep_recording(&mut self, chunk: &[u8]) {
        let Some(r) = &mut self.recording else {
            return;
        };
        let mut noncer = self.noncer.lock().unwrap_or_else(PoisonError::into_inner);
        let stopped = self.stop.is_some()
            || self.limit != usize::MAX
            || noncer.ambiguous.load(Ordering::Relaxed);
        let fits = !stopped && r.page.len() + chunk.len() <= r.record.limit;
        if fits {
            r.page.extend_from_slice(chunk);
        }
        let tags = noncer.tags.as_ref().map_or(0, Vec::capacity);
        let bytes = r.page.capacity()
            + tags * std::mem::size_of::<Range<usize>>()
            + r.nonces.capacity() * std::mem::size_of::<usize>();
        if !fits || !r.record.hold(bytes) {
            self.recording = None;
            noncer.tags = None;
        }
    }

    /// Takes one chunk; returns the bytes ready to send (a tag cut by the
    /// chunk's end waits for the next one).
    pub fn write(&mut self, chunk: &[u8]) -> Vec<u8> {
        let start = self.sent + self.held.len();
        self.held.extend_from_slice(chunk);
        self.keep_recording(chunk);
        // A UTF-16 byte order mark makes a browser read the page as UTF-16,
        // whatever the headers say: tags an ASCII parser finds mean nothing there.
        // One byte of it fed to lol_html is text, and nothing was sent yet.
        if start < 2 {
            // `tail` still holds every byte before this chunk.
            let mut opening = self.tail.clone();
            opening.extend(chunk.iter().take(2 - start));
            if matches!(opening.as_slice(), [0xFE, 0xFF] | [0xFF, 0xFE]) {
                self.stop_at(NonceSkip::Charset);
            }
        }
        if self.rewriter.is_none() {
            return self.send_held();
        }
        self.limit = self.limit.min(self.find_cdata(chunk, start));
        let Some(rewriter) = &mut self.rewriter else {
            return self.send_held();
        };
        let esc = chunk.iter().position(|&b| b == ESC);
        let parsed = rewriter.write(&chunk[..esc.unwrap_or(chunk.len())]);
        if let Err(e) = parsed {
            self.stop_at(stop_reason(&e));
        } else if let Some(i) = esc {
            self.limit = self.limit.min(start + i);
            self.stop_at(NonceSkip::AmbiguousMarkup);
        }
        if self.rewriter.is_none() {
            return self.send_held();
        }
        self.send_until(self.passed.0.load(Ordering::Relaxed))
    }

    /// The last bytes, and why nonces stopped early, if they did.
    pub fn end(self) -> (Vec<u8>, Option<NonceSkip>) {
        let (last, stop, _) = self.end_recorded();
        (last, stop)
    }

    /// [`HtmlNoncer::end`], and the recording of a page that was read whole,
    /// every nonce decided (none stopped early), within the recording's limit.
    pub fn end_recorded(mut self) -> (Vec<u8>, Option<NonceSkip>, Option<Recording>) {
        let settled = self.passed.0.load(Ordering::Relaxed);
        if let Some(rewriter) = self.rewriter.take() {
            if let Err(e) = rewriter.end() {
                self.stop = Some(stop_reason(&e));
            }
        }
        let last = self.send_held();
        let mut noncer = self.noncer.lock().unwrap_or_else(PoisonError::into_inner);
        let early = noncer.ambiguous.load(Ordering::Relaxed) || self.limit != usize::MAX;
        let stop = self.stop.or(early.then_some(NonceSkip::AmbiguousMarkup));
        let recording = self
            .recording
            .take()
            .filter(|_| stop.is_none())
            .map(|r| Recording {
                tags: noncer.tags.take().unwrap_or_default(),
                settled,
                ..r
            });
        (last, stop, recording)
    }

    /// From here on, the page passes as it came, with the nonces noted so far.
    fn stop_at(&mut self, reason: NonceSkip) {
        self.rewriter = None;
        self.stop.get_or_insert(reason);
    }

    /// The input offset of the first CDATA opener that starts in or just before
    /// `chunk` (which starts at offset `start`), or `usize::MAX`.
    fn find_cdata(&mut self, chunk: &[u8], start: usize) -> usize {
        let mut window = std::mem::take(&mut self.tail);
        let window_start = start - window.len();
        window.extend_from_slice(chunk);
        let found = memchr::memmem::find(&window, CDATA).map_or(usize::MAX, |i| window_start + i);
        let keep = window.len().min(CDATA.len() - 1);
        window.drain(..window.len() - keep);
        self.tail = window;
        found
    }

    fn send_held(&mut self) -> Vec<u8> {
        self.send_until(self.sent + self.held.len())
    }

    /// Sends the input up to offset `end`, each noted nonce spliced in.
    fn send_until(&mut self, end: usize) -> Vec<u8> {
        let n = end - self.sent;
        let mut noncer = self.noncer.lock().unwrap_or_else(PoisonError::into_inner);
        let due = noncer.at.partition_point(|&at| at <= end);
        let (limit, recording) = (self.limit, &mut self.recording);
        let at = noncer
            .at
            .drain(..due)
            .filter(|&at| at < limit)
            .inspect(|&at| {
                if let Some(r) = recording {
                    r.nonces.push(at);
                }
            });
        let out = splice(&self.held[..n], self.sent, at, due, &self.attribute);
        self.held.drain(..n);
        self.sent = end;
        out
    }
}

/// `input` (which starts at input offset `start`) with `attribute` before each
/// offset of `at`, in order and within the input; `nonces`: how many at most.
pub(super) fn splice(
    input: &[u8],
    start: usize,
    at: impl Iterator<Item = usize>,
    nonces: usize,
    attribute: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() + nonces * attribute.len());
    let mut from = 0;
    for at in at {
        out.extend_from_slice(&input[from..at - start]);
        out.extend_from_slice(attribute);
        from = at - start;
    }
    out.extend_from_slice(&input[from..]);
    out
}

/// ` nonce="…"`, as spliced in just after a tag's name.
pub fn nonce_attribute(nonce: &str) -> Vec<u8> {
    format!(" nonce=\"{nonce}\"").into_bytes()
}

/// Why lol_html stopped: it could not tell how a browser reads the markup, or
/// the page needed more memory than the limit.
fn stop_reason(e: &RewritingError) -> NonceSkip {
    match e {
        RewritingError::MemoryLimitExceeded(_) => NonceSkip::ParserLimit,
        _ => NonceSkip::AmbiguousMarkup,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONCE: &str = "bm9uY2Vub25jZW5vbmNlMQ==";

    fn doc(scripts: &[&str], styles: Option<&[&str]>) -> Document {
        let origin = DocumentOrigin::new(true, "app.example").unwrap();
        Document {
            nonce: NONCE.to_string(),
            filter: Arc::new(NonceFilter {
                scripts: SourceList::parse(scripts),
                styles: styles.map(SourceList::parse),
            }),
            url: origin.url("/dir/page.html").unwrap(),
            origin,
        }
    }

    /// The rewritten page, and why nonces stopped early.
    fn rewrite_in(html: &str, doc: Document, chunk: usize) -> (String, Option<NonceSkip>) {
        let mut r = HtmlNoncer::new(doc, None);
        let mut out = Vec::new();
        for piece in html.as_bytes().chunks(chunk) {
            out.extend(r.write(piece));
        }
        let (last, stop) = r.end();
        out.extend(last);
        (String::from_utf8(out).unwrap(), stop)
    }

    fn rewrite(html: &str) -> String {
        rewrite_in(html, doc(&["'self'", "cdn.example"], None), 5).0
    }

    const N: &str = " nonce=\"bm9uY2Vub25jZW5vbmNlMQ==\"";

    #[test]
    fn scripts_the_policy_allows_get_the_nonce() {
        for (input, nonced) in [
            ("<script>run()</script>", true),
            ("<script src=\"/app.js\"></script>", true),
            ("<script src=\"app.js\" type=\"module\"></script>", true),
            ("<script src=\"https://cdn.example/lib.js\"></script>", true),
            ("<script src=\"//evil.example/x.js\"></script>", false),
            (
                "<script src=\"https://cdn.example.evil/x.js\"></script>",
                false,
            ),
            ("<script src=\"http://cdn.example/lib.js\"></script>", false),
            ("<script src=\"data:text/javascript,1\"></script>", false),
            ("<link rel=\"preload\" as=\"script\" href=\"/a.js\">", true),
            ("<link rel=\"modulepreload\" href=\"/m.js\">", true),
            (
                "<link rel=\"modulepreload\" href=\"//evil.example/m.js\">",
                false,
            ),
            ("<link rel=\"preload\" as=\"image\" href=\"/a.png\">", false),
            ("<link rel=\"stylesheet\" href=\"/a.css\">", false),
            ("<style>p{}</style>", false),
        ] {
            let (open, rest) = input.split_at(input.find([' ', '>']).unwrap());
            let expected = if nonced {
                format!("{open}{N}{rest}")
            } else {
                input.to_string()
            };
            assert_eq!(rewrite(input), expected, "{input}");
        }
    }

    #[test]
    fn urls_are_read_as_the_browser_reads_them() {
        for hostile in [
            "<script src=\"&#47;&#47;evil.example/x.js\"></script>",
            "<script src=\"&sol;&sol;evil.example/x.js\"></script>",
            "<script src=\"/&Tab;/evil.example/x.js\"></script>",
            "<script src=\"/\t/evil.example/x.js\"></script>",
            "<script src=\"/\\evil.example/x.js\"></script>",
            "<script src=\"/ok.js\" src=\"//evil.example/x.js\"></script>",
            "<script src=\"//evil.example/x.js\" src=\"/ok.js\"></script>",
            "<SCRIPT SRC=\"//evil.example/x.js\"></SCRIPT>",
            "<svg><script href=\"//evil.example/x.js\"></script></svg>",
            "<svg><script xlink:href=\"//evil.example/x.js\"></script></svg>",
        ] {
            assert_eq!(rewrite(hostile), hostile, "{hostile}");
        }
        // Entities that keep the URL on the document's origin are still decoded.
        assert_eq!(
            rewrite("<script src=\"/a.js?x=1&amp;y=2\"></script>"),
            format!("<script{N} src=\"/a.js?x=1&amp;y=2\"></script>")
        );
    }

    #[test]
    fn svg_scripts_get_no_nonce() {
        for page in [
            "<svg><script href=\"/ok.js\"></script></svg>",
            "<svg><script xlink:href=\"/ok.js\"></script></svg>",
            "<svg><script href=\"/x.js\"><desc><base href=\"https://evil.example/\"></desc></script></svg>",
            "<script src=\"/ok.js\" href=\"/ok.js\"></script>",
        ] {
            assert_eq!(rewrite(page), page);
        }
        let page = "<svg><script>1</script></svg><script>2</script>";
        assert_eq!(
            rewrite(page),
            page.replace("<script>2", &format!("<script{N}>2"))
        );
    }

    #[test]
    fn a_base_element_moves_relative_urls_and_both_readings_must_pass() {
        let page = "<base href=\"https://evil.example/\"><script src=\"x.js\"></script>";
        assert_eq!(rewrite(page), page);
        let page = "<script src=\"/before.js\"></script><base href=\"https://cdn.example/\">\
                    <script src=\"/after.js\"></script>";
        assert_eq!(
            rewrite(page),
            format!(
                "<script{N} src=\"/before.js\"></script><base href=\"https://cdn.example/\">\
                 <script{N} src=\"/after.js\"></script>"
            )
        );
    }

    #[test]
    fn a_tag_hiding_markup_in_its_attributes_gets_no_nonce() {
        // lol_html reads <style> after <svg/> as markup; a browser reads raw text,
        // then a script from evil.example that would carry this tag's nonce.
        let page = "<svg/><style><script src=/ok.js a='</style><script src=//evil.example/x.js '></script>";
        assert_eq!(rewrite(page), page);
        let page = "<script a=\"<\">1</script>";
        assert_eq!(rewrite(page), page);
    }

    #[test]
    fn every_base_counts_and_an_unparsable_one_denies_relative_urls() {
        let decoy = "<svg><base href=/></svg><base href=\"https://evil.example/\"><script src=\"x.js\"></script>";
        assert_eq!(rewrite(decoy), decoy);
        let unparsable =
            "<base href=\"http://xn--a.evil.example/\"><script src=\"/x.js\"></script>";
        assert_eq!(rewrite(unparsable), unparsable);
        assert_eq!(
            rewrite("<base href=\"http://xn--a.evil.example/\"><script>1</script>"),
            format!("<base href=\"http://xn--a.evil.example/\"><script{N}>1</script>")
        );
    }

    #[test]
    fn the_same_origin_shortcut_agrees_with_the_url_parser() {
        let urls = [
            "/a.js",
            "/js/card-1.js",
            "//evil.example/x.js",
            "/\\evil.example/x.js",
            "/\t/evil.example/x.js",
            "/\n/evil.example/x.js",
            "/..//evil.example/x.js",
            "/%2F/evil.example/x.js",
            " //evil.example/x.js",
            "\\/evil.example/x.js",
            "\u{1}/\\evil.example/x.js",
            "/js/../x.js?q=1#f",
            "https://evil.example/x.js",
            "x.js",
            "",
        ];
        let lists: [&[&str]; 6] = [
            &["'self'"],
            &["https://app.example/js/"],
            &["https:"],
            &["http:"],
            &["*.example"],
            &["'none'"],
        ];
        for list in lists {
            let fast = Noncer::new(doc(list, None));
            let mut slow = Noncer::new(doc(list, None));
            slow.scripts_allow_origin = false;
            for url in urls {
                let urls = [url.to_string()];
                assert_eq!(
                    fast.all_allowed(&urls, &fast.doc.filter.scripts, fast.scripts_allow_origin),
                    slow.all_allowed(&urls, &slow.doc.filter.scripts, false),
                    "{list:?} {url:?}"
                );
                let same_origin = slow
                    .doc
                    .url
                    .join(url)
                    .is_ok_and(|u| u.origin() == slow.doc.url.origin());
                assert!(!is_path_absolute(url) || same_origin, "{url:?}");
            }
        }
    }

    #[test]
    fn the_gateways_nonce_comes_before_an_upstream_one() {
        // A browser keeps the first of two attributes of one name.
        assert_eq!(
            rewrite("<script nonce=\"old\">x()</script>"),
            format!("<script{N} nonce=\"old\">x()</script>")
        );
    }

    #[test]
    fn styles_only_with_csp_nonce_styles() {
        let d = doc(&["'self'"], Some(&["'self'"]));
        let page = "<style>p{}</style><link rel=\"stylesheet\" href=\"/a.css\">\
                    <link rel=\"alternate stylesheet\" href=\"https://evil.example/b.css\">\
                    <link rel=\"preload\" as=\"style\" href=\"/c.css\">";
        assert_eq!(
            rewrite_in(page, d, 3).0,
            format!(
                "<style{N}>p{{}}</style><link{N} rel=\"stylesheet\" href=\"/a.css\">\
                 <link rel=\"alternate stylesheet\" href=\"https://evil.example/b.css\">\
                 <link{N} rel=\"preload\" as=\"style\" href=\"/c.css\">"
            )
        );
    }

    #[test]
    fn any_chunking_gives_the_same_bytes() {
        let page = "<!doctype html><html><head><title>t</title>\
                    <script>var a = '</scr' + 'ipt>';</script></head>\
                    <body><p>caf\u{e9}</p><script src=\"/b.js\"></script><!-- <script> --></body></html>";
        let whole = rewrite_in(page, doc(&["'self'"], None), page.len()).0;
        for size in [1, 2, 3, 7, 64] {
            assert_eq!(rewrite_in(page, doc(&["'self'"], None), size).0, whole);
        }
        assert_eq!(whole.matches(N).count(), 2);
        assert_eq!(whole.replace(N, ""), page);
    }

    /// The page, whole, with `expected` nonced elements, and why nonces stopped.
    fn nonces_and_stop(page: &str, chunk: usize) -> (usize, Option<NonceSkip>) {
        let (out, stop) = rewrite_in(page, doc(&["'self'"], None), chunk);
        assert_eq!(out.replace(N, ""), page, "{page}");
        (out.matches(N).count(), stop)
    }

    #[test]
    fn nonces_stop_where_lol_html_and_a_browser_part_ways() {
        const BEFORE: &str = "<script src=/a.js></script>";
        const AFTER: &str = "<script>2</script><link rel=modulepreload href=/b.js>";
        for (markup, stop) in [
            ("<svg/>", Some(NonceSkip::AmbiguousMarkup)),
            ("<math><mi>x</mi></math>", Some(NonceSkip::AmbiguousMarkup)),
            ("<p><![CDATA[x]]>", Some(NonceSkip::AmbiguousMarkup)),
            ("<p>\u{1b}$B", Some(NonceSkip::AmbiguousMarkup)),
            ("<select><xmp>", Some(NonceSkip::AmbiguousMarkup)),
            // An integration point closed by its ancestor's end tag.
            ("<svg><script><desc></script>", Some(NonceSkip::AmbiguousMarkup)),
            ("<svg><desc></svg>", Some(NonceSkip::AmbiguousMarkup)),
            // Foreign content that both read alike.
            ("<svg><title>t</title><path d=M0/></svg>", None),
            // lol_html misses the `<foreignObject>` and reads HTML inside
            // the SVG `<script>`; the `<link>` is SVG to a browser.
            (
                "<svg><script></iframe><foreignObject></script><link rel=modulepreload href=/c.js></svg>",
                None,
            ),
            ("<svg><desc><b>x</b></desc><svg></svg></svg>", None),
        ] {
            let page = format!("{BEFORE}{markup}{AFTER}");
            for chunk in [1, 2, 3, 7, 64, 4096] {
                let want = if stop.is_some() { 1 } else { 3 };
                assert_eq!(nonces_and_stop(&page, chunk), (want, stop), "{page} / {chunk}");
            }
        }
    }

    #[test]
    fn a_utf16_byte_order_mark_passes_the_page_unread() {
        let mut page = vec![0xFF, 0xFE];
        for b in "<script>1</script>".bytes() {
            page.extend([b, 0]);
        }
        for chunk in [1, 2, 3, 64] {
            let mut r = HtmlNoncer::new(doc(&["'self'"], None), None);
            let mut out = Vec::new();
            for piece in page.chunks(chunk) {
                out.extend(r.write(piece));
            }
            let (last, stop) = r.end();
            out.extend(last);
            assert_eq!(
                (out.as_slice(), stop),
                (page.as_slice(), Some(NonceSkip::Charset))
            );
        }
    }

    #[test]
    fn a_recording_that_ends_early_keeps_nothing_and_gives_its_budget_back() {
        let budget = Arc::new(RecordingBudget::default());
        let mut r = HtmlNoncer::new(doc(&["'self'"], None), None);
        r.record(Record::new(64, &budget, usize::MAX));
        r.write(b"<script>1</script><link rel=x>");
        assert!(budget.0.load(Ordering::Relaxed) >= 30);
        // Past its size: the page, the tags and the budget go.
        r.write(&b"<link rel=x>".repeat(10));
        assert!(r.recording.is_none());
        assert!(r.noncer.lock().unwrap().tags.is_none());
        assert_eq!(budget.0.load(Ordering::Relaxed), 0);
        // Nonces that stopped early: no template either.
        let mut r = HtmlNoncer::new(doc(&["'self'"], None), None);
        r.record(Record::new(1 << 20, &budget, usize::MAX));
        r.write(b"<svg/><script>1</script>");
        r.write(b"<p>");
        assert!(r.recording.is_none());
        assert!(r.end_recorded().2.is_none());
        assert_eq!(budget.0.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_recorded_page_cannot_reach_the_parsers_limit() {
        let most = usize::try_from(crate::config::defaults::MAX_RECORDED_PAGE).unwrap();
        assert!(2 * most <= PARSER_MEMORY_LIMIT);
    }

    #[test]
    fn a_page_the_parser_cannot_finish_passes_whole() {
        let huge = format!(
            "<script>1</script><link rel=stylesheet title=\"{}\">",
            "x".repeat(5 << 20)
        );
        let page = format!("{huge}<script>2</script>");
        assert_eq!(
            nonces_and_stop(&page, 64 << 10),
            (1, Some(NonceSkip::ParserLimit))
        );
    }
}
