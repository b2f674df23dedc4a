//! The nonce rewriter against a browser-grade parser: every page of a hostile
//! corpus, and generated mixtures of the constructs where parsers disagree, is
//! rewritten in random chunks and parsed again with html5ever (the WHATWG tree
//! builder). In that tree, every element carrying the response's nonce must be a
//! script, style or script/style link whose URL the policy allows; nothing else.

mod common;

use std::sync::Arc;

use common::html;
use html5ever::tendril::TendrilSink;
use markup5ever_rcdom::{Handle, NodeData, RcDom};
use pingora_secgw::policy::csp_sources::{DocumentOrigin, SourceList};
use pingora_secgw::policy::nonce::NonceFilter;
use pingora_secgw::rewrite::html::{Document, HtmlNoncer};
use proptest::prelude::*;
use url::Url;

const NONCE: &str = "ZGlmZmVyZW50aWFsbm9uY2U=";
const SCRIPTS: &[&str] = &["'self'", "cdn.example"];
const STYLES: &[&str] = &["'self'"];

fn document() -> Document {
    let origin = DocumentOrigin::new(true, "app.example").unwrap();
    Document {
        nonce: NONCE.to_string(),
        filter: Arc::new(NonceFilter {
            scripts: SourceList::parse(SCRIPTS),
            styles: Some(SourceList::parse(STYLES)),
        }),
        url: origin.url("/dir/page.html").unwrap(),
        origin,
    }
}

/// The page rewritten in chunks of `chunk` bytes.
fn rewrite(page: &[u8], chunk: usize) -> Vec<u8> {
    let mut noncer = HtmlNoncer::new(document(), None);
    let mut out = Vec::new();
    for piece in page.chunks(chunk.max(1)) {
        out.extend(noncer.write(piece));
    }
    out.extend(noncer.end().0);
    out
}

/// `out` without the nonces spliced into it.
fn without_nonces(out: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(out)
        .replace(&format!(" nonce=\"{NONCE}\""), "")
        .into_bytes()
}

/// Where a URL may load from, as the test's policy says: the page's origin or
/// the CDN, over https.
fn allowed(url: &Url, styles: bool) -> bool {
    let hosts: &[&str] = if styles {
        &["app.example"]
    } else {
        &["app.example", "cdn.example"]
    };
    url.scheme() == "https" && url.host_str().is_some_and(|h| hosts.contains(&h))
}

/// Every nonced element of the tree under `node` that breaks the rule, described.
fn violations(node: &Handle, base: &mut Url, out: &mut Vec<String>) {
    if let NodeData::Element {
        name,
        attrs,
        template_contents,
        ..
    } = &node.data
    {
        let attrs = attrs.borrow();
        let attr = |n: &str| {
            attrs
                .iter()
                .find(|a| &*a.name.local == n)
                .map(|a| a.value.to_string())
        };
        let ns = &*name.ns;
        let local = &*name.local;
        if local == "base" && ns == "http://www.w3.org/1999/xhtml" {
            if let Some(href) = attr("href") {
                if let Ok(url) = base.join(&href) {
                    *base = url;
                }
            }
        }
        if attr("nonce").as_deref() == Some(NONCE) {
            let resolve = |u: &str| base.join(u).ok();
            let ok = match (ns, local) {
                ("http://www.w3.org/1999/xhtml", "script") => attr("src")
                    .map(|src| resolve(&src).is_some_and(|u| allowed(&u, false)))
                    .unwrap_or(true),
                ("http://www.w3.org/1999/xhtml", "style") => true,
                ("http://www.w3.org/1999/xhtml", "link") => {
                    let rel = attr("rel").unwrap_or_default().to_ascii_lowercase();
                    let styles = rel.split_ascii_whitespace().any(|t| t == "stylesheet")
                        || attr("as").is_some_and(|a| a.trim().eq_ignore_ascii_case("style"));
                    attr("href")
                        .and_then(|h| resolve(&h))
                        .is_some_and(|u| allowed(&u, styles))
                }
                _ => false,
            };
            if !ok {
                let shown: Vec<String> = attrs
                    .iter()
                    .map(|a| format!("{}={:?}", &*a.name.local, &*a.value))
                    .collect();
                out.push(format!("<{local}> ({ns}) {}", shown.join(" ")));
            }
        }
        if let Some(contents) = template_contents.borrow().as_ref() {
            violations(contents, base, out);
        }
    }
    for child in node.children.borrow().iter() {
        violations(child, base, out);
    }
}

/// The nonced elements in html5ever's tree of `html` that break the rule.
fn nonce_violations(html: &[u8]) -> Vec<String> {
    let dom = html5ever::parse_document(RcDom::default(), Default::default())
        .from_utf8()
        .one(html);
    let mut base = document().url;
    let mut out = Vec::new();
    violations(&dom.document, &mut base, &mut out);
    out
}

/// The rewritten page differs from the page only by nonces, and html5ever finds
/// each of them on an element the policy lets have one.
fn check(page: &[u8], chunk: usize) -> Result<(), String> {
    let out = rewrite(page, chunk);
    if without_nonces(&out) != String::from_utf8_lossy(page).as_bytes() {
        return Err(format!(
            "chunk {chunk}: bytes changed\nin:  {}\nout: {}",
            String::from_utf8_lossy(page),
            String::from_utf8_lossy(&out)
        ));
    }
    let found = nonce_violations(&out);
    if found.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "chunk {chunk}: {found:?}\nin:  {}\nout: {}",
            String::from_utf8_lossy(page),
            String::from_utf8_lossy(&out)
        ))
    }
}

#[test]
fn the_hostile_corpus_never_puts_the_nonce_on_a_foreign_element() {
    let mut failures = Vec::new();
    for page in html::hostile_corpus() {
        for chunk in [1, 2, 3, 7, 64, 4096] {
            if let Err(e) = check(page.as_bytes(), chunk) {
                failures.push(e);
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The oracle sees what it must: a nonce the rewriter would never give, on an
/// evil script, is caught (so a passing run means something).
#[test]
fn the_oracle_catches_a_nonce_on_an_evil_script() {
    let page = format!(
        "<p><script nonce={NONCE} src=//evil.example/x.js></script>\
         <script nonce={NONCE} src=/ok.js></script><img nonce={NONCE}>"
    );
    assert_eq!(
        nonce_violations(page.as_bytes()),
        vec![
            "<script> (http://www.w3.org/1999/xhtml) nonce=\"ZGlmZmVyZW50aWFsbm9uY2U=\" src=\"//evil.example/x.js\"",
            "<img> (http://www.w3.org/1999/xhtml) nonce=\"ZGlmZmVyZW50aWFsbm9uY2U=\"",
        ]
    );
}

proptest! {
    #![proptest_config(html::proptest_config())]

    #[test]
    fn generated_pages_never_put_the_nonce_on_a_foreign_element(
        pieces in proptest::collection::vec(proptest::sample::select(html::PIECES), 1..24),
        chunk in 1usize..40,
    ) {
        let page = pieces.concat();
        if let Err(e) = check(page.as_bytes(), chunk) {
            prop_assert!(false, "{}", e);
        }
    }
}
