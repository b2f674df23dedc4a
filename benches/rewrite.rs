//! The CSP nonce rewriter on the page `benches/nonce.py` serves (about 55 KB, 222
//! elements to nonce), without the network: what the HTML stage costs per page,
//! next to lol_html's own floors on the same page: no handler at all, an empty
//! handler on the elements the nonce goes on, and a nonce set on every one;
//! and the template cache: the same page from its template, and a page that
//! leaves its template at a random place (the prefix read again).
//! `cargo bench --bench rewrite`.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::borrow::Cow;

use lol_html::{element, ElementContentHandlers, HtmlRewriter, Selector, Settings};
use pingora_secgw::policy::csp_sources::{DocumentOrigin, SourceList};
use pingora_secgw::policy::nonce::NonceFilter;
use pingora_secgw::rewrite::html::{Document, HtmlNoncer, Record};
use pingora_secgw::rewrite::template::{PageNoncer, Template};

// The gateway's allocator: the rewriter allocates per element and per chunk.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The same page as `benches/nonce.py`.
fn page() -> Vec<u8> {
    let mut out = String::from(
        "<!doctype html><html><head><title>Catalogue</title>\n\
         <link rel=\"stylesheet\" href=\"/site.css\"><style>body { margin: 0 }</style>\n",
    );
    for i in 0..110 {
        out.push_str(&format!(
            "<script>var item{i} = {{ id: {i}, name: \"item {i}\" }};</script>\n\
             <div class=\"card\" data-id=\"{i}\"><h2>Item {i}</h2><p>{}</p>\
             <script src=\"/js/card-{i}.js\" async></script></div>\n",
            "Lorem ipsum dolor sit amet, consectetur adipiscing elit. ".repeat(6)
        ));
    }
    out.push_str("</body></html>\n");
    out.into_bytes()
}

fn document() -> Document {
    let origin = DocumentOrigin::new(true, "bench.test").expect("a valid host");
    Document {
        nonce: "bm9uY2Vub25jZW5vbmNlMQ==".to_string(),
        filter: Arc::new(NonceFilter {
            scripts: SourceList::parse(&["'self'"]),
            styles: Some(SourceList::parse(&["'self'", "https:"])),
        }),
        url: origin.url("/").expect("a valid path"),
        origin,
    }
}

/// Pingora hands the body over in reads of up to 64 KB; loopback delivers the
/// page in pieces of about 16 KB.
const CHUNK: usize = 16 << 10;

/// lol_html alone over the page with `handlers`: the parser's floors.
fn lol_html(
    page: &[u8],
    handlers: Vec<(Cow<'static, Selector>, ElementContentHandlers<'static>)>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(page.len() + (8 << 10));
    let settings = Settings {
        element_content_handlers: handlers,
        ..Settings::new()
    };
    let mut r = HtmlRewriter::new(settings, |c: &[u8]| out.extend_from_slice(c));
    for piece in page.chunks(CHUNK) {
        r.write(black_box(piece)).expect("valid html");
    }
    r.end().expect("valid html");
    out
}

const ELEMENTS: &str = "script, link, style, base";

/// The page through the gateway's rewriter alone.
fn uncached(page: &[u8]) -> Vec<u8> {
    let mut r = HtmlNoncer::new(document(), None);
    let mut out = Vec::with_capacity(page.len() + (8 << 10));
    for piece in page.chunks(CHUNK) {
        out.extend(r.write(black_box(piece)));
    }
    out.extend(r.end().0);
    out
}

/// The page with its byte at `at` changed.
fn changed(page: &[u8], at: usize) -> Vec<u8> {
    let mut changed = page.to_vec();
    changed[at] = if changed[at] == b'#' { b'%' } else { b'#' };
    changed
}

fn rewrite(c: &mut Criterion) {
    let page = page();
    let mut group = c.benchmark_group("rewrite");
    group.throughput(Throughput::Bytes(page.len() as u64));
    group.bench_function("lol_html, no handlers", |b| {
        b.iter(|| lol_html(&page, vec![]))
    });
    group.bench_function("lol_html, an empty handler on the same elements", |b| {
        b.iter(|| lol_html(&page, vec![element!(ELEMENTS, |_el| Ok(()))]))
    });
    group.bench_function("lol_html, a nonce on every such element", |b| {
        b.iter(|| {
            lol_html(
                &page,
                vec![element!(ELEMENTS, |el| Ok(el.set_attribute("nonce", "x")?))],
            )
        })
    });
    group.bench_function("gateway nonce rewriter", |b| b.iter(|| uncached(&page)));
    let recorded = {
        let record = Record::new(page.len(), &Arc::default(), usize::MAX);
        let mut r = PageNoncer::new(document(), None, None, Some(record));
        for piece in page.chunks(CHUNK) {
            r.write(piece);
        }
        let recording = r.end().recording.expect("the page is recorded");
        Arc::new(Template::new(recording, 0).expect("a page under 4 GiB"))
    };
    // Through the template: the whole page (a hit), or the page with one byte
    // changed at a different place each time (the rest read again by lol_html).
    let through = |page: &[u8]| {
        let mut r = PageNoncer::new(document(), None, Some(recorded.clone()), None);
        let mut out = Vec::with_capacity(page.len() + (8 << 10));
        for piece in page.chunks(CHUNK) {
            out.extend(r.write(black_box(piece)));
        }
        out.extend(r.end().last);
        out
    };
    group.bench_function("template, the same page", |b| b.iter(|| through(&page)));
    let mut at = 0;
    group.bench_function("template, the page changed at a varying place", |b| {
        b.iter(|| {
            // A prime stride: every place of the page, in turn.
            at = (at + 7919) % page.len();
            through(&changed(&page, at))
        })
    });
    group.bench_function(
        "gateway nonce rewriter, the page changed the same way",
        |b| {
            b.iter(|| {
                at = (at + 7919) % page.len();
                uncached(&changed(&page, at))
            })
        },
    );
    group.finish();
}

criterion_group!(benches, rewrite);
criterion_main!(benches);
