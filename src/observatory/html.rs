//! What the Observatory reads from the page itself: `<meta>` policies and the
//! scripts, for the Subresource Integrity test.

use html5ever::tendril::TendrilSink;
use html5ever::tree_builder::TreeBuilderOpts;
use html5ever::{ns, ParseOpts};
use markup5ever_rcdom::{Handle, NodeData, RcDom};
use url::Url;

use super::{only_if_worse, Expectation, Retrieval, TestResult};

/// The MIME types the Observatory treats as HTML.
pub const HTML_TYPES: [&str; 2] = ["text/html", "application/xhtml+xml"];

/// One HTML `<script>` element's attributes, entity-decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    pub src: Option<String>,
    pub integrity: Option<String>,
}

/// The parts of an HTML page the tests read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageFacts {
    /// Every `<meta http-equiv="content-security-policy" content>`.
    pub meta_csp: Vec<String>,
    /// The last `<meta name="referrer" content>`.
    pub meta_referrer: Option<String>,
    pub scripts: Vec<Script>,
    /// Only the start of the body was read (`audit`'s size limit or timeout):
    /// scripts further on are unknown.
    pub truncated: bool,
}

/// Reads a page (decoded as UTF-8, as the Observatory's client does) the way
/// the Observatory's jsdom does: a WHATWG tree with scripting off, so a
/// `<noscript>`'s content is markup and its scripts count, a `<template>`'s are
/// not in the document, and only HTML `<script>` elements have a `src`.
pub fn page_facts(body: &[u8]) -> PageFacts {
    let opts = ParseOpts {
        tree_builder: TreeBuilderOpts {
            scripting_enabled: false,
            ..TreeBuilderOpts::default()
        },
        ..ParseOpts::default()
    };
    let text = String::from_utf8_lossy(body);
    let dom = html5ever::parse_document(RcDom::default(), opts).one(text.as_ref());
    let mut facts = PageFacts::default();
    collect(&dom.document, &mut facts);
    facts
}

/// The facts of `node` and its children, in document order. A `<template>`'s
/// content hangs off the element, not among its children, so it is skipped.
fn collect(node: &Handle, facts: &mut PageFacts) {
    if let NodeData::Element { name, attrs, .. } = &node.data {
        if name.ns == ns!(html) {
            let attrs = attrs.borrow();
            let attr = |n: &str| {
                attrs
                    .iter()
                    .find(|a| a.name.ns == ns!() && &*a.name.local == n)
                    .map(|a| a.value.to_string())
            };
            match &*name.local {
                "meta" => match (attr("http-equiv"), attr("content")) {
                    (Some(equiv), Some(content)) => {
                        if !content.is_empty()
                            && equiv.trim().eq_ignore_ascii_case("content-security-policy")
                        {
                            facts.meta_csp.push(content);
                        }
                    }
                    (_, content) => {
                        let name = attr("name");
                        if name.is_some_and(|n| n.trim().eq_ignore_ascii_case("referrer")) {
                            if let Some(c) = content.filter(|c| !c.is_empty()) {
                                facts.meta_referrer = Some(c);
                            }
                        }
                    }
                },
                "script" => facts.scripts.push(Script {
                    src: attr("src"),
                    integrity: attr("integrity"),
                }),
                _ => {}
            }
        }
    }
    for child in node.children.borrow().iter() {
        collect(child, facts);
    }
}

/// The registrable domain as `tldts` gives it (ICANN suffixes only, unknown TLDs
/// are suffixes, IP addresses have none).
pub(super) fn registrable_domain(host: &str) -> Option<String> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || bare.parse::<std::net::IpAddr>().is_ok() {
        return None;
    }
    let labels: Vec<&str> = host.split('.').collect();
    let suffix_at = (0..labels.len())
        .find(|&i| {
            let candidate = labels[i..].join(".");
            match psl::suffix(candidate.as_bytes()) {
                Some(s) if s.as_bytes() == candidate.as_bytes() => {
                    (s.is_known() && s.typ() == Some(psl::Type::Icann)) || i == labels.len() - 1
                }
                _ => false,
            }
        })
        .unwrap_or(labels.len() - 1);
    (suffix_at > 0).then(|| labels[suffix_at - 1..].join("."))
}

/// The script element's `src` IDL value: the attribute parsed as an absolute URL
/// (the document is `about:blank`, so relative ones stay as written).
fn reflected_src(attr: &str) -> String {
    Url::parse(attr).map_or_else(|_| attr.to_string(), String::from)
}

/// `subresourceIntegrityTest`.
pub fn sri(r: &Retrieval) -> TestResult {
    use Expectation::*;
    const NAME: &str = "subresource-integrity";
    const GOODNESS: [Expectation; 6] = [
        SriImplementedAndAllScriptsLoadedSecurely,
        SriImplementedAndExternalScriptsLoadedSecurely,
        SriImplementedButExternalScriptsNotLoadedSecurely,
        SriNotImplementedButExternalScriptsLoadedSecurely,
        SriNotImplementedAndExternalScriptsNotLoadedSecurely,
        SriNotImplementedResponseNotHtml,
    ];
    if r.auto().is_none() {
        return TestResult::new(NAME, SriNotImplementedButNoScriptsLoaded, false);
    }
    let result = if !r.content_type_is_html() {
        SriNotImplementedResponseNotHtml
    } else {
        let empty = PageFacts::default();
        let page = r.page.as_ref().unwrap_or(&empty);
        let site_domain = registrable_domain(&r.hostname);
        let https = r.auto_is_https();
        let mut result: Option<Expectation> = None;
        let mut foreign = false;
        for script in &page.scripts {
            let Some(src) = script.src.as_deref().map(reflected_src) else {
                continue;
            };
            if src.is_empty() {
                continue;
            }
            let integrity = script.integrity.as_deref().is_some_and(|i| !i.is_empty());
            let relative_protocol = src.starts_with("//") && !src[2..].starts_with('/');
            let full_url = src.starts_with("http://") || src.starts_with("https://");
            let relative_origin = !relative_protocol && !full_url;
            let same_domain = relative_protocol
                || relative_origin
                || Url::parse(&src)
                    .ok()
                    .and_then(|u| u.host_str().map(registrable_domain))
                    .unwrap_or(None)
                    == site_domain;
            let secure_origin = relative_origin || (same_domain && !relative_protocol);
            let secure_scheme =
                (full_url && src.starts_with("https:")) || (relative_origin && https);
            if secure_origin {
                if integrity && secure_scheme && result.is_none() {
                    result = Some(SriImplementedAndAllScriptsLoadedSecurely);
                }
                continue;
            }
            foreign = true;
            let e = match (integrity, secure_scheme) {
                (true, false) => Some(SriImplementedButExternalScriptsNotLoadedSecurely),
                (false, true) => Some(SriNotImplementedButExternalScriptsLoadedSecurely),
                (false, false) => Some(SriNotImplementedAndExternalScriptsNotLoadedSecurely),
                (true, true) => None,
            };
            if let Some(e) = e {
                result = Some(only_if_worse(e, result, &GOODNESS));
            }
        }
        if page.scripts.is_empty() {
            SriNotImplementedButNoScriptsLoaded
        } else {
            result.unwrap_or(if foreign {
                SriImplementedAndExternalScriptsLoadedSecurely
            } else {
                SriNotImplementedButAllScriptsLoadedFromSecureOrigin
            })
        }
    };
    let pass = matches!(
        result,
        SriImplementedAndAllScriptsLoadedSecurely
            | SriImplementedAndExternalScriptsLoadedSecurely
            | SriNotImplementedResponseNotHtml
            | SriNotImplementedButAllScriptsLoadedFromSecureOrigin
            | SriNotImplementedButNoScriptsLoaded
    );
    TestResult::new(NAME, result, pass)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::site;
    use super::*;

    #[test]
    fn meta_policies_and_scripts_are_read() {
        let f = page_facts(
            br#"<html><head><meta http-equiv="Content-Security-Policy" content="default-src &#39;none&#39;">
            <meta name="referrer" content="unsafe-url"><meta name=referrer content="no-referrer">
            <meta http-equiv="content-security-policy" name="referrer" content="img-src *">
            <script src="/a.js" integrity="sha384-x"></script><script>inline()</script></head></html>"#,
        );
        assert_eq!(f.meta_csp, ["default-src 'none'", "img-src *"]);
        assert_eq!(f.meta_referrer.as_deref(), Some("no-referrer"));
        assert_eq!(f.scripts.len(), 2);
        assert_eq!(f.scripts[0].src.as_deref(), Some("/a.js"));
        assert_eq!(f.scripts[1].src, None);
    }

    #[test]
    fn scripts_are_read_as_jsdom_reads_them_with_scripting_off() {
        let srcs = |html: &str| -> Vec<Option<String>> {
            page_facts(html.as_bytes())
                .scripts
                .into_iter()
                .map(|s| s.src)
                .collect()
        };
        let one = |src: &str| vec![Some(src.to_string())];
        assert_eq!(
            srcs("<noscript><script src=http://a.example/n.js></script></noscript>"),
            one("http://a.example/n.js")
        );
        assert_eq!(
            srcs("<template><script src=http://a.example/t.js></script></template>"),
            Vec::<Option<String>>::new()
        );
        assert_eq!(
            srcs("<math><script src=http://a.example/m.js></script></math><svg><script href=/s.js></script></svg>"),
            Vec::<Option<String>>::new()
        );
        // Character references are decoded once.
        assert_eq!(
            srcs("<script src=\"/a.js?x=1&amp;y=2\"></script>"),
            one("/a.js?x=1&y=2")
        );
    }

    #[test]
    fn registrable_domains_like_tldts() {
        assert_eq!(
            registrable_domain("a.b.example.com").as_deref(),
            Some("example.com")
        );
        assert_eq!(
            registrable_domain("example.co.uk").as_deref(),
            Some("example.co.uk")
        );
        assert_eq!(
            registrable_domain("foo.github.io").as_deref(),
            Some("github.io")
        );
        assert_eq!(registrable_domain("app.test").as_deref(), Some("app.test"));
        assert_eq!(registrable_domain("localhost"), None);
        assert_eq!(registrable_domain("127.0.0.1"), None);
        assert_eq!(registrable_domain("[::1]"), None);
    }

    fn sri_of(html: &str) -> Expectation {
        let mut r = site(&[("content-type", "text/html; charset=utf-8")]);
        r.page = Some(page_facts(html.as_bytes()));
        sri(&r).result
    }

    #[test]
    fn sri_results() {
        use Expectation::*;
        assert_eq!(
            sri_of("<p>no scripts</p>"),
            SriNotImplementedButNoScriptsLoaded
        );
        assert_eq!(
            sri_of("<script src=/a.js></script>"),
            SriNotImplementedButAllScriptsLoadedFromSecureOrigin
        );
        assert_eq!(
            sri_of("<script src=/a.js integrity=sha384-x></script>"),
            SriImplementedAndAllScriptsLoadedSecurely
        );
        assert_eq!(
            sri_of("<script src=https://cdn.other.net/a.js></script>"),
            SriNotImplementedButExternalScriptsLoadedSecurely
        );
        assert_eq!(
            sri_of("<script src=https://cdn.other.net/a.js integrity=sha384-x></script>"),
            SriImplementedAndExternalScriptsLoadedSecurely
        );
        assert_eq!(
            sri_of("<script src=//cdn.other.net/a.js></script>"),
            SriNotImplementedAndExternalScriptsNotLoadedSecurely
        );
        assert_eq!(
            sri_of("<script src=http://cdn.other.net/a.js integrity=sha384-x></script>"),
            SriImplementedButExternalScriptsNotLoadedSecurely
        );
        assert_eq!(
            sri_of("<script src=https://static.example.com/a.js></script>"),
            SriNotImplementedButAllScriptsLoadedFromSecureOrigin
        );
        let mut plain = site(&[("content-type", "application/json")]);
        plain.page = None;
        assert_eq!(sri(&plain).result, SriNotImplementedResponseNotHtml);
    }
}
