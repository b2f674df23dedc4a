//! HTML for the nonce rewriter's differential tests: the hostile corpus kept
//! in the tree, pages shaped like real ones, the pieces generated pages are
//! made of, and the property tests' settings.

use proptest::prelude::ProptestConfig;
use proptest::test_runner::FileFailurePersistence;

/// 2,000 cases (`PROPTEST_CASES` to change), failures kept beside the test.
pub fn proptest_config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(2000),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

/// The hostile corpus: one page per line.
pub fn hostile_corpus() -> Vec<&'static str> {
    include_str!("../corpus/nonce-hostile.html.lines")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect()
}

/// Pages shaped like the ones an edge nonce is for: a single-page app's shell,
/// a generated documentation page, a blog's static export, an appliance's
/// login page; and a long catalogue with hundreds of nonced elements.
pub fn real_pages() -> Vec<(&'static str, Vec<u8>)> {
    let mut pages: Vec<(&str, Vec<u8>)> = [
        ("spa", &include_bytes!("../corpus/nonce-pages/spa.html")[..]),
        (
            "docs",
            &include_bytes!("../corpus/nonce-pages/docs.html")[..],
        ),
        (
            "blog",
            &include_bytes!("../corpus/nonce-pages/blog.html")[..],
        ),
        (
            "appliance",
            &include_bytes!("../corpus/nonce-pages/appliance.html")[..],
        ),
    ]
    .into_iter()
    .map(|(name, page)| (name, page.to_vec()))
    .collect();
    pages.push(("catalogue", catalogue(6)));
    pages
}

/// `items` product cards, each with an inline script, a script from the
/// origin and one from elsewhere, and a comment that names a script.
pub fn catalogue(items: usize) -> Vec<u8> {
    let mut page = String::from("<!doctype html><html><head><title>Shop</title></head><body>\n");
    for i in 0..items {
        page.push_str(&format!(
            "<section id=\"p{i}\"><h3>Product {i}</h3><p>{}</p>\
             <script>cart.register({i});</script><script src=\"/p/{i}.js\" defer></script>\
             <!-- <script src=\"/old/{i}.js\"> --><script src=\"https://ads.example/{i}.js\"></script></section>\n",
            "A sturdy thing for every day. ".repeat(4)
        ));
    }
    page.push_str("</body></html>\n");
    page.into_bytes()
}

/// Pieces whose order decides which parser state the next tag is read in. No
/// `<base>`: a browser resolves a script's URL when the script is inserted, and
/// a tree does not keep insertion order (a `<base>` foster-parented out of a
/// table lands before a script inserted earlier); the corpus has its cases.
pub const PIECES: &[&str] = &[
    "<svg>",
    "<svg/>",
    "</svg>",
    "<math>",
    "<math/>",
    "</math>",
    "<mi>",
    "<mtext>",
    "<annotation-xml encoding=\"text/html\">",
    "<foreignObject>",
    "</foreignObject>",
    "<desc>",
    "</desc>",
    "<g>",
    "</g>",
    "<![CDATA[",
    "]]>",
    "<!--",
    "-->",
    "--!>",
    "<!-->",
    "<!",
    "<?x ",
    "<template>",
    "</template>",
    "<noscript>",
    "</noscript>",
    "<select>",
    "</select>",
    "<option>",
    "<textarea>",
    "</textarea>",
    "<title>",
    "</title>",
    "<xmp>",
    "</xmp>",
    "<iframe>",
    "</iframe>",
    "<noembed>",
    "</noembed>",
    "<noframes>",
    "</noframes>",
    "<style>",
    "</style>",
    "<script>",
    "</script>",
    "<table>",
    "<tr>",
    "<p>",
    "</p>",
    "<div>",
    "</div>",
    "<b>",
    "<br>",
    "</br>",
    "<font color=red>",
    "<mglyph>",
    "<image>",
    "<body>",
    "</body>",
    "<frameset>",
    "<plaintext>",
    "\u{1b}$B",
    "<a title='",
    "<x q=\"",
    "'",
    "\"",
    ">",
    "/>",
    "<script src=/ok.js>",
    "<script src=//evil.example/x.js>",
    "<script src=//evil.example/y.js q='",
    "<link rel=modulepreload href=//evil.example/a.js>",
    "<link rel=modulepreload href=//evil.example/b.js q=\"",
    "<link rel=stylesheet href=//evil.example/s.css>",
    "<link rel=modulepreload href=/a.js>",
    "<script src=rel.js>",
];
