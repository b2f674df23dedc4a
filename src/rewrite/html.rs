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

static SELECTOR: LazyLock<Selector> = LazyLock::new(|| {
    "script, link, style, base"
        .parse()
        .expect("a valid selector")
});

/// The document the elements belong to: where their URLs resolve, and the nonce.
pub struct Document {
    pub nonce: String,
    pub filter: Arc<NonceFilter>,
    pub origin: DocumentOrigin,
    pub url: Url,
}

/// What the element handler decides; it owns the `<base>` it has seen.
struct Noncer {
    doc: Document,
    /// Every `<base href>` seen, in any namespace: URLs after one must be allowed
    /// resolved against each, since which one the browser uses (if `base-uri`
    /// lets it use any) is not for a streaming parser to decide.
    bases: Vec<Url>,
    /// A base the URL parser rejected: nothing after it gets a nonce by URL.
    unknown_base: bool,
}

impl Noncer {
    fn element(&mut self, el: &mut Element<'_, '_>) -> HandlerResult {
        let tag = el.tag_name();
        // A `<` inside a tag means the streaming parser and a browser may not
        // agree on where tags are (foreign content, raw text): an attacker's tag
        // hidden in an attribute would receive the nonce meant for this one.
        let wraps_markup = el
            .attributes()
            .iter()
            .any(|a| a.name_preserve_case().contains('<') || a.value().contains('<'));
        let give = match tag.as_str() {
            "base" => {
                for href in url_attributes(el, &["href"]) {
                    match self.doc.url.join(&href) {
                        Ok(url) => self.bases.push(url),
                        Err(_) => self.unknown_base = true,
                    }
                }
                false
            }
            // SVG scripts name their URL in `href` or `xlink:href`.
            "script" => {
                let urls = url_attributes(el, &["src", "href", "xlink:href"]);
                self.all_allowed(&urls, &self.doc.filter.scripts)
            }
            "style" => self.doc.filter.styles.is_some(),
            "link" => self.link_allowed(el),
            _ => false,
        };
        if give && !wraps_markup {
            el.set_attribute("nonce", &self.doc.nonce)?;
        }
        Ok(())
    }

    /// Script preloads against the script sources; stylesheets against the style ones.
    fn link_allowed(&self, el: &Element<'_, '_>) -> bool {
        let rel = el
            .get_attribute("rel")
            .unwrap_or_default()
            .to_ascii_lowercase();
        let as_ = el
            .get_attribute("as")
            .map(|a| a.trim().to_ascii_lowercase());
        let has = |token: &str| rel.split_ascii_whitespace().any(|t| t == token);
        let list = if (has("preload") && as_.as_deref() == Some("script"))
            || (has("modulepreload") && matches!(as_.as_deref(), None | Some("script")))
        {
            &self.doc.filter.scripts
        } else {
            match &self.doc.filter.styles {
                Some(styles)
                    if has("stylesheet") || (has("preload") && as_.as_deref() == Some("style")) =>
                {
                    styles
                }
                _ => return false,
            }
        };
        let hrefs = url_attributes(el, &["href"]);
        !hrefs.is_empty() && self.all_allowed(&hrefs, list)
    }

    /// Every URL, resolved against the document and against any `<base>`, is allowed.
    fn all_allowed(&self, urls: &[String], list: &SourceList) -> bool {
        let allowed_from = |base: &Url, raw: &str| {
            base.join(raw)
                .is_ok_and(|url| list.allows(&url, &self.doc.origin))
        };
        // No URL (an inline script): nothing for a base to move.
        urls.is_empty()
            || !self.unknown_base
                && urls.iter().all(|raw| {
                    allowed_from(&self.doc.url, raw)
                        && self.bases.iter().all(|b| allowed_from(b, raw))
                })
    }
}

/// The values of every attribute named in `names` (duplicates too: a browser
/// reads the first, so all must pass), with character references decoded as a
/// browser decodes them in attributes (`&#47;&#47;evil` is `//evil`).
fn url_attributes(el: &Element<'_, '_>, names: &[&str]) -> Vec<String> {
    el.attributes()
        .iter()
        .filter(|a| names.contains(&a.name().as_str()))
        .map(|a| htmlize::unescape_attribute(a.value()).into_owned())
        .collect()
}

/// The rewritten bytes so far, shared with the rewriter's output sink.
#[derive(Clone, Default)]
struct Output(Arc<Mutex<Vec<u8>>>);

impl Output {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl OutputSink for Output {
    fn handle_chunk(&mut self, chunk: &[u8]) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(chunk);
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
        let mut noncer = Noncer {
            doc,
            bases: Vec::new(),
            unknown_base: false,
        };
        let handler: ElementHandler<'static> = Box::new(move |el| noncer.element(el));
        let output = Output::default();
        let settings = Settings {
            element_content_handlers: vec![(
                Cow::Borrowed(&*SELECTOR),
                ElementContentHandlers::default().element(handler),
            )],
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
