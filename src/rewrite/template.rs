//! Rewrite templates: a page the rewriter read whole, and where its nonces went,
//! so that the same bytes again are nonced by a splice instead of a parse.
//!
//! A response follows its template byte for byte as it streams. Bytes leave only
//! up to a point where the rewriter's decisions cannot depend on what comes
//! next: never inside a start tag it judged (its attributes decide), never past
//! what lol_html itself had settled. At the first byte that differs, a fresh
//! rewriter reads the page from its start, and its output is sent from where the
//! template's stopped: the client gets exactly what the rewriter alone produces.

use std::ops::Range;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use lol_html::AsciiCompatibleEncoding;

use super::html::{nonce_attribute, splice, Document, HtmlNoncer, Record, Recording};
use crate::metrics::NonceSkip;

/// One page as the rewriter read it.
#[derive(Debug)]
pub struct Template {
    /// The identity-encoded body, exactly.
    page: Box<[u8]>,
    /// Input offsets where a nonce goes, in order (32 bits: half the memory,
    /// and `max_page_bytes` is at most 4 GiB).
    nonces: Box<[u32]>,
    /// The start tags the rewriter judged, as input ranges, in order.
    tags: Box<[Range<u32>]>,
    /// Input lol_html had passed on before the page's end.
    settled: u32,
    /// Responses that left this template (or the ones it replaced) in a row,
    /// with no whole match between: a page that changes per response.
    divergences: AtomicU8,
}

impl Template {
    /// `divergences`: how many responses of its key left their templates in a
    /// row before it. `None` for a page of 4 GiB or more.
    pub fn new(recording: Recording, divergences: u8) -> Option<Template> {
        u32::try_from(recording.page.len()).ok()?;
        // Every offset is within the page.
        let at = |n: usize| n as u32;
        Some(Template {
            nonces: recording.nonces.iter().map(|&n| at(n)).collect(),
            tags: recording
                .tags
                .iter()
                .map(|t| at(t.start)..at(t.end))
                .collect(),
            settled: at(recording.settled),
            page: recording.page.into_boxed_slice(),
            divergences: AtomicU8::new(divergences),
        })
    }

    /// The memory it holds (its own struct and its three arrays).
    pub fn size(&self) -> usize {
        std::mem::size_of::<Template>()
            + self.page.len()
            + std::mem::size_of_val(&*self.nonces)
            + std::mem::size_of_val(&*self.tags)
    }

    /// One more response left it: the divergences in a row, this one included.
    pub fn diverged(&self) -> u8 {
        let before = self.divergences.fetch_add(1, Ordering::Relaxed);
        before.saturating_add(1)
    }

    /// How far a response whose first `matched` bytes equal the page may be
    /// sent: not into a start tag the rewriter judged (the rest of the tag may
    /// differ, and with it the decision) and not past what lol_html had settled.
    fn sendable(&self, matched: usize) -> usize {
        let end = matched.min(self.settled as usize) as u32;
        let before = self.tags.partition_point(|t| t.start < end);
        let end = match before.checked_sub(1).map(|i| &self.tags[i]) {
            Some(tag) if tag.end > end => tag.start,
            _ => end,
        };
        end as usize
    }
}

/// A response on its way through the rewriter, with a template or without.
pub struct PageNoncer(Stage);

enum Stage {
    /// No template: the rewriter reads the page.
    Fresh(HtmlNoncer),
    /// The body equals its template so far.
    Following(Box<Following>),
    /// The body left its template: a rewriter read the page again from its
    /// start, and the first `discard` bytes of its output were already sent.
    Diverged { html: HtmlNoncer, discard: usize },
}

struct Following {
    template: Arc<Template>,
    /// What a rewriter needs if the body leaves the template.
    doc: Document,
    encoding: Option<AsciiCompatibleEncoding>,
    /// Record the diverging page, within these bounds.
    record: Option<Record>,
    attribute: Vec<u8>,
    /// Input bytes equal to the page so far.
    matched: usize,
    /// Input bytes sent.
    sent: usize,
    /// Output bytes sent.
    out: usize,
}

/// What a page's end tells: its last bytes, why nonces stopped early, what the
/// template did, and a recording of it when one was asked for and is whole.
pub struct Ended {
    pub last: Vec<u8>,
    pub stop: Option<NonceSkip>,
    pub outcome: Outcome,
    pub recording: Option<Recording>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Rewritten without a template.
    Fresh,
    /// Sent from its template.
    Hit,
    /// Left its template (and was rewritten from its start).
    Diverged,
}

impl PageNoncer {
    /// `template`: the page this response is expected to be. `record`: keep a
    /// recording of the page within these bounds (when it may make a template).
    pub fn new(
        doc: Document,
        encoding: Option<AsciiCompatibleEncoding>,
        template: Option<Arc<Template>>,
        record: Option<Record>,
    ) -> PageNoncer {
        PageNoncer(match template {
            Some(template) => Stage::Following(Box::new(Following {
                attribute: nonce_attribute(&doc.nonce),
                template,
                doc,
                encoding,
                record,
                matched: 0,
                sent: 0,
                out: 0,
            })),
            None => Stage::Fresh(fresh(doc, encoding, record)),
        })
    }

    /// Takes one chunk; returns the bytes ready to send.
    pub fn write(&mut self, chunk: &[u8]) -> Vec<u8> {
        match &mut self.0 {
            Stage::Fresh(html) => html.write(chunk),
            Stage::Diverged { html, discard } => skip(html.write(chunk), discard),
            Stage::Following(f) => {
                let page = &f.template.page[f.matched..];
                if page.len() < chunk.len() || page[..chunk.len()] != *chunk {
                    let (html, discard, sent) = f.diverge(chunk);
                    self.0 = Stage::Diverged { html, discard };
                    return sent;
                }
                f.matched += chunk.len();
                let until = f.template.sendable(f.matched);
                f.send_until(until)
            }
        }
    }

    /// The last bytes and what happened.
    pub fn end(self) -> Ended {
        let (outcome, html, mut discard, mut last) = match self.0 {
            Stage::Fresh(html) => (Outcome::Fresh, html, 0, Vec::new()),
            Stage::Diverged { html, discard } => (Outcome::Diverged, html, discard, Vec::new()),
            Stage::Following(mut f) if f.matched == f.template.page.len() => {
                f.template.divergences.store(0, Ordering::Relaxed);
                return Ended {
                    last: f.send_until(f.matched),
                    stop: None,
                    outcome: Outcome::Hit,
                    recording: None,
                };
            }
            // The body ended before the page did.
            Stage::Following(mut f) => {
                let (html, discard, sent) = f.diverge(&[]);
                (Outcome::Diverged, html, discard, sent)
            }
        };
        let (rest, stop, recording) = html.end_recorded();
        last.extend(skip(rest, &mut discard));
        Ended {
            last,
            stop,
            outcome,
            recording,
        }
    }
}

impl Following {
    /// The body left the template within `chunk`: a rewriter reads the page
    /// from its start (the matched bytes, then `chunk`), and what it would have
    /// sent before the last byte the template sent is dropped. Returns that
    /// rewriter, the bytes it still has to drop, and what it sends now.
    fn diverge(&mut self, chunk: &[u8]) -> (HtmlNoncer, usize, Vec<u8>) {
        let mut html = fresh(self.doc.clone(), self.encoding, self.record.take());
        let mut discard = self.out;
        let mut sent = skip(
            html.write(&self.template.page[..self.matched]),
            &mut discard,
        );
        sent.extend(skip(html.write(chunk), &mut discard));
        (html, discard, sent)
    }

    /// Sends the page up to input offset `until`, this response's nonce at
    /// each of the template's offsets in between.
    fn send_until(&mut self, until: usize) -> Vec<u8> {
        if until <= self.sent {
            return Vec::new();
        }
        let t = &self.template;
        // Offsets within the page, which is under 4 GiB.
        let from = t.nonces.partition_point(|&at| (at as usize) < self.sent);
        let to = t.nonces.partition_point(|&at| (at as usize) < until);
        let at = t.nonces[from..to].iter().map(|&at| at as usize);
        let input = &t.page[self.sent..until];
        let out = splice(input, self.sent, at, to - from, &self.attribute);
        self.sent = until;
        self.out += out.len();
        out
    }
}

fn fresh(
    doc: Document,
    encoding: Option<AsciiCompatibleEncoding>,
    record: Option<Record>,
) -> HtmlNoncer {
    let mut html = HtmlNoncer::new(doc, encoding);
    if let Some(record) = record {
        html.record(record);
    }
    html
}

/// `out` without its first `discard` bytes (which the template already sent).
fn skip(mut out: Vec<u8>, discard: &mut usize) -> Vec<u8> {
    let n = out.len().min(*discard);
    *discard -= n;
    out.drain(..n);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::csp_sources::{DocumentOrigin, SourceList};
    use crate::policy::nonce::NonceFilter;

    fn doc(nonce: &str) -> Document {
        let origin = DocumentOrigin::new(true, "app.example").unwrap();
        Document {
            nonce: nonce.to_string(),
            filter: Arc::new(NonceFilter {
                scripts: SourceList::parse(&["'self'"]),
                styles: None,
            }),
            url: origin.url("/").unwrap(),
            origin,
        }
    }

    /// The page through a noncer, in chunks of `chunk` bytes: (output, end).
    fn run(mut noncer: PageNoncer, page: &[u8], chunk: usize) -> (Vec<u8>, Ended) {
        let mut out = Vec::new();
        for piece in page.chunks(chunk) {
            out.extend(noncer.write(piece));
        }
        let ended = noncer.end();
        out.extend_from_slice(&ended.last);
        (out, ended)
    }

    fn template(page: &[u8]) -> Arc<Template> {
        let (_, ended) = run(
            PageNoncer::new(doc("a"), None, None, Some(record(1 << 20, usize::MAX))),
            page,
            7,
        );
        Arc::new(Template::new(ended.recording.unwrap(), 0).unwrap())
    }

    fn record(limit: usize, budget: usize) -> Record {
        Record::new(limit, &Arc::default(), budget)
    }

    const PAGE: &[u8] = b"<p>x</p><script src=/a.js>1</script><!-- c --><script>2</script>";

    #[test]
    fn the_same_page_is_spliced_and_a_different_one_rewritten() {
        let t = template(PAGE);
        let other: &[u8] = b"<p>x</p><script src=//evil.example/a.js>1</script>";
        for (page, outcome) in [(PAGE, Outcome::Hit), (other, Outcome::Diverged)] {
            let fresh = run(PageNoncer::new(doc("b"), None, None, None), page, 64).0;
            for chunk in [1, 2, 5, 64] {
                let noncer = PageNoncer::new(doc("b"), None, Some(t.clone()), None);
                let (out, ended) = run(noncer, page, chunk);
                assert_eq!((out.as_slice(), ended.outcome), (fresh.as_slice(), outcome));
            }
        }
        // Divergences in a row, counted by the cache; a whole match resets them.
        assert_eq!((t.diverged(), t.diverged()), (1, 2));
        run(
            PageNoncer::new(doc("b"), None, Some(t.clone()), None),
            PAGE,
            64,
        );
        assert_eq!(t.diverged(), 1);
    }

    #[test]
    fn nothing_inside_a_judged_tag_leaves_before_the_tag_ends() {
        let t = template(PAGE);
        let mut noncer = PageNoncer::new(doc("b"), None, Some(t), None);
        assert_eq!(noncer.write(b"<p>x</p><script src=/a"), b"<p>x</p>");
        assert_eq!(noncer.write(b".js>"), b"<script nonce=\"b\" src=/a.js>");
    }

    #[test]
    fn a_recording_needs_the_whole_page_within_its_limit() {
        let (_, ended) = run(
            PageNoncer::new(doc("a"), None, None, Some(record(10, usize::MAX))),
            PAGE,
            7,
        );
        assert!(ended.recording.is_none());
        // The page fits, its memory does not.
        let (_, ended) = run(
            PageNoncer::new(doc("a"), None, None, Some(record(1 << 20, 32))),
            PAGE,
            7,
        );
        assert!(ended.recording.is_none());
        let ambiguous = b"<svg/><script>1</script>";
        let (_, ended) = run(
            PageNoncer::new(doc("a"), None, None, Some(record(1 << 20, usize::MAX))),
            ambiguous,
            7,
        );
        assert!(ended.recording.is_none());
    }
}
