//! The nonce, written into HTML as it streams by: on inline scripts, on scripts
//! and script preloads whose URLs the policy allows, and (with styles) on
//! `<style>` and allowed stylesheets. Nothing else in the document changes.

use std::borrow::Cow;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use lol_html::errors::RewritingError;
use lol_html::send::{Element, ElementHandler, HtmlRewriter, Settings};
use lol_html::{AsciiCompatibleEncoding, ElementContentHandlers, HandlerResult, MemorySettings};
use lol_html::{OutputSink, Selector};
use url::Url;

use crate::policy::csp_sources::{DocumentOrigin, SourceList};
use crate::policy::nonce::NonceFilter;

/// Far above any real start tag; a body that makes the parser buffer more is
/// refused instead of growing memory.
const PARSER_MEMORY_LIMIT: usize = 4 << 20;

/// One selector per element kind, so a handler knows its tag without asking
/// lol_html for the name (an allocation per element).
static SELECTORS: LazyLock<[Selector; 4]> = LazyLock::new(|| {
    ["script", "link", "style", "base"].map(|s| s.parse().expect("a valid selector"))
});

/// The document the elements belong to: where their URLs resolve, and the nonce.
pub struct Document {
    pub nonce: String,
    pub filter: Arc<NonceFilter>,
    pub origin: DocumentOrigin,
    pub url: Url,
}

/// What the element handlers decide; it owns the `<base>`s seen so far.
struct Noncer {
    doc: Document,
    /// Every `<base href>` seen, in any namespace: URLs after one must be allowed
    /// resolved against each, since which one the browser uses (if `base-uri`
    /// lets it use any) is not for a streaming parser to decide.
    bases: Vec<Url>,
    /// A base the URL parser rejected: nothing after it gets a nonce by URL.
    unknown_base: bool,
    /// The script and style sources allow every path of the document's origin
    /// (`'self'` does): a path-absolute URL needs no parsing until a `<base>`.
    scripts_allow_origin: bool,
    styles_allow_origin: bool,
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
    /// An `href` or `xlink:href`: on a `<script>`, the URL of an SVG script.
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
            bases: Vec::new(),
            unknown_base: false,
            scripts_allow_origin,
            styles_allow_origin,
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

    fn script(&self, el: &mut Element<'_, '_>) -> HandlerResult {
        // An SVG script (`href`, `xlink:href`) resolves its URL at its end tag,
        // after markup inside it may have added a `<base>` (through `<desc>`):
        // what it loads is not known here, so it gets no nonce.
        let attrs = Attributes::read(el, &["src"]);
        let give = !attrs.wraps_markup
            && !attrs.href
            && self.all_allowed(
                &attrs.urls,
                &self.doc.filter.scripts,
                self.scripts_allow_origin,
            );
        self.give_if(give, el)
    }

    fn style(&self, el: &mut Element<'_, '_>) -> HandlerResult {
        let give = self.doc.filter.styles.is_some() && !Attributes::read(el, &[]).wraps_markup;
        self.give_if(give, el)
    }

    /// Script preloads against the script sources; stylesheets against the style ones.
    fn link(&self, el: &mut Element<'_, '_>) -> HandlerResult {
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
        self.give_if(give, el)
    }

    fn give_if(&self, give: bool, el: &mut Element<'_, '_>) -> HandlerResult {
        if give {
            el.set_attribute("nonce", &self.doc.nonce)?;
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

/// The rewritten bytes so far, shared with the rewriter's output sink.
#[derive(Clone, Default)]
struct Output(Arc<Mutex<Vec<u8>>>);

impl Output {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.lock())
    }

    /// Room for a rewritten chunk up front: it grows by a nonce per element, not
    /// by doubling through every token the rewriter hands over.
    fn reserve_for(&self, input: usize) {
        self.lock().reserve(input + input / 8);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl OutputSink for Output {
    fn handle_chunk(&mut self, chunk: &[u8]) {
        self.lock().extend_from_slice(chunk);
    }
}

/// A streaming rewriter for one response.
pub struct HtmlNoncer {
    rewriter: HtmlRewriter<'static, Output>,
    output: Output,
}

impl HtmlNoncer {
    /// `encoding` from the response's charset; `None` lets a `<meta charset>` decide.
    pub fn new(doc: Document, encoding: Option<AsciiCompatibleEncoding>) -> HtmlNoncer {
        let noncer = Arc::new(Mutex::new(Noncer::new(doc)));
        let handler = |on: fn(&mut Noncer, &mut Element<'_, '_>) -> HandlerResult| {
            let noncer = noncer.clone();
            let handler: ElementHandler<'static> = Box::new(move |el| {
                on(
                    &mut noncer.lock().unwrap_or_else(PoisonError::into_inner),
                    el,
                )
            });
            ElementContentHandlers::default().element(handler)
        };
        let element_content_handlers = SELECTORS
            .iter()
            .map(Cow::Borrowed)
            .zip([
                handler(|n, el| n.script(el)),
                handler(|n, el| n.link(el)),
                handler(|n, el| n.style(el)),
                handler(Noncer::base),
            ])
            .collect();
        let output = Output::default();
        let settings = Settings {
            element_content_handlers,
            encoding: encoding.unwrap_or_else(AsciiCompatibleEncoding::utf_8),
            adjust_charset_on_meta_tag: encoding.is_none(),
            memory_settings: MemorySettings {
                max_allowed_memory_usage: PARSER_MEMORY_LIMIT,
                ..MemorySettings::new()
            },
            // Markup whose parse depends on context the streaming parser does not
            // keep (`<select><xmp><script>`) is an error rather than a guess.
            strict: true,
            ..Settings::new_send()
        };
        HtmlNoncer {
            rewriter: HtmlRewriter::new(settings, output.clone()),
            output,
        }
    }

    /// Rewrites one chunk; returns the bytes ready to send (a tag cut by the
    /// chunk's end waits for the next one).
    pub fn write(&mut self, chunk: &[u8]) -> Result<Vec<u8>, RewritingError> {
        self.output.reserve_for(chunk.len());
        self.rewriter.write(chunk)?;
        Ok(self.output.take())
    }

    pub fn end(self) -> Result<Vec<u8>, RewritingError> {
        let output = self.output.clone();
        self.rewriter.end()?;
        Ok(output.take())
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

    fn rewrite_in(html: &str, doc: Document, chunk: usize) -> Result<String, RewritingError> {
        let mut r = HtmlNoncer::new(doc, None);
        let mut out = Vec::new();
        for piece in html.as_bytes().chunks(chunk) {
            out.extend(r.write(piece)?);
        }
        out.extend(r.end()?);
        Ok(String::from_utf8(out).unwrap())
    }

    fn rewrite(html: &str) -> String {
        rewrite_in(html, doc(&["'self'", "cdn.example"], None), 5).unwrap()
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
            let (open, rest) = input.split_at(input.find('>').unwrap());
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
            format!("<script src=\"/a.js?x=1&amp;y=2\"{N}></script>")
        );
    }

    #[test]
    fn svg_scripts_with_a_url_get_no_nonce() {
        for page in [
            "<svg><script href=\"/ok.js\"></script></svg>",
            "<svg><script xlink:href=\"/ok.js\"></script></svg>",
            "<svg><script href=\"/x.js\"><desc><base href=\"https://evil.example/\"></desc></script></svg>",
            "<script src=\"/ok.js\" href=\"/ok.js\"></script>",
        ] {
            assert_eq!(rewrite(page), page);
        }
        assert_eq!(
            rewrite("<svg><script>1</script></svg>"),
            format!("<svg><script{N}>1</script></svg>")
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
                "<script src=\"/before.js\"{N}></script><base href=\"https://cdn.example/\">\
                 <script src=\"/after.js\"{N}></script>"
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
    fn an_upstream_nonce_is_replaced() {
        assert_eq!(
            rewrite("<script nonce=\"old\">x()</script>"),
            format!("<script{N}>x()</script>")
        );
    }

    #[test]
    fn styles_only_with_csp_nonce_styles() {
        let d = doc(&["'self'"], Some(&["'self'"]));
        let page = "<style>p{}</style><link rel=\"stylesheet\" href=\"/a.css\">\
                    <link rel=\"alternate stylesheet\" href=\"https://evil.example/b.css\">\
                    <link rel=\"preload\" as=\"style\" href=\"/c.css\">";
        assert_eq!(
            rewrite_in(page, d, 3).unwrap(),
            format!(
                "<style{N}>p{{}}</style><link rel=\"stylesheet\" href=\"/a.css\"{N}>\
                 <link rel=\"alternate stylesheet\" href=\"https://evil.example/b.css\">\
                 <link rel=\"preload\" as=\"style\" href=\"/c.css\"{N}>"
            )
        );
    }

    #[test]
    fn any_chunking_gives_the_same_bytes() {
        let page = "<!doctype html><html><head><title>t</title>\
                    <script>var a = '</scr' + 'ipt>';</script></head>\
                    <body><p>caf\u{e9}</p><script src=\"/b.js\"></script><!-- <script> --></body></html>";
        let whole = rewrite_in(page, doc(&["'self'"], None), page.len()).unwrap();
        for size in [1, 2, 3, 7, 64] {
            assert_eq!(
                rewrite_in(page, doc(&["'self'"], None), size).unwrap(),
                whole
            );
        }
        assert_eq!(whole.matches(N).count(), 2);
        assert_eq!(whole.replace(N, ""), page);
    }

    #[test]
    fn ambiguous_markup_is_an_error_not_a_guess() {
        let page = "<select><xmp><script>alert(1)</script></xmp></select>";
        assert!(rewrite_in(page, doc(&["'self'"], None), 4).is_err());
    }
}
