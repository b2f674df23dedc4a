//! The nonce template cache against the rewriter alone. The differential part
//! records a template of a page, then sends pages that leave it at every
//! position (a byte replaced, markup inserted, the page cut short or carried
//! on), in every chunking: the cached path's output must equal the uncached
//! rewriter's, byte for byte, with the same nonce. The attack part does the
//! same through the real binary, with interleaved clients, two origins, two
//! policies and credentials.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::html;
use common::pages::{Page, PageServer};
use common::*;
use pingora_secgw::policy::csp_sources::{DocumentOrigin, SourceList};
use pingora_secgw::policy::nonce::NonceFilter;
use pingora_secgw::rewrite::html::{Document, HtmlNoncer, Record};
use pingora_secgw::rewrite::template::{Ended, Outcome, PageNoncer, Template};
use proptest::prelude::*;

const NONCE: &str = "dGVtcGxhdGVkaWZmZXJlbnQ=";

fn document() -> Document {
    let origin = DocumentOrigin::new(true, "app.example").unwrap();
    Document {
        nonce: NONCE.to_string(),
        filter: Arc::new(NonceFilter {
            scripts: SourceList::parse(&["'self'", "cdn.example"]),
            styles: Some(SourceList::parse(&["'self'"])),
        }),
        url: origin.url("/dir/page.html").unwrap(),
        origin,
    }
}

/// The chunk sizes a page is cut into, in turn (`usize::MAX`: whole).
const CHUNKINGS: &[&[usize]] = &[
    &[1],
    &[2],
    &[3],
    &[7],
    &[64],
    &[5, 1, 300],
    &[16 << 10],
    &[usize::MAX],
];

/// `page` cut into chunks of `sizes`, in turn.
fn chunks<'p>(page: &'p [u8], sizes: &[usize]) -> Vec<&'p [u8]> {
    let mut out = Vec::new();
    let mut rest = page;
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at(size.max(1).min(rest.len()));
        out.push(chunk);
        rest = tail;
    }
    out
}

fn run(mut noncer: PageNoncer, page: &[u8], sizes: &[usize]) -> (Vec<u8>, Ended) {
    let mut out = Vec::new();
    for chunk in chunks(page, sizes) {
        out.extend(noncer.write(chunk));
    }
    let ended = noncer.end();
    out.extend_from_slice(&ended.last);
    (out, ended)
}

/// The rewriter alone: the oracle.
fn uncached(page: &[u8], sizes: &[usize]) -> Vec<u8> {
    let mut html = HtmlNoncer::new(document(), None);
    let mut out = Vec::new();
    for chunk in chunks(page, sizes) {
        out.extend(html.write(chunk));
    }
    out.extend(html.end().0);
    out
}

/// The template of `page`, recorded in chunks of `sizes`; `None` for a page
/// the rewriter does not read whole (it stopped early).
fn record(page: &[u8], sizes: &[usize]) -> Option<Arc<Template>> {
    let record = Record::new(4 << 20, &Arc::default(), usize::MAX);
    let noncer = PageNoncer::new(document(), None, None, Some(record));
    let (out, ended) = run(noncer, page, sizes);
    assert_eq!(
        out,
        uncached(page, sizes),
        "a recording run is the rewriter"
    );
    Template::new(ended.recording?, 0).map(Arc::new)
}

/// `page` through the cache following `template` (recorded from `recorded`)
/// equals the rewriter alone, and is a hit exactly when the page is the same.
fn check(
    template: &Arc<Template>,
    recorded: &[u8],
    page: &[u8],
    sizes: &[usize],
) -> Result<(), String> {
    let noncer = PageNoncer::new(document(), None, Some(template.clone()), None);
    let (out, ended) = run(noncer, page, sizes);
    let want = uncached(page, sizes);
    let hit = page == recorded;
    let outcome = if hit { Outcome::Hit } else { Outcome::Diverged };
    if out == want && ended.outcome == outcome {
        return Ok(());
    }
    Err(format!(
        "chunks {sizes:?}, outcome {:?} (want {outcome:?})\ntemplate: {}\npage:     {}\ncached:   {}\nuncached: {}",
        ended.outcome,
        String::from_utf8_lossy(recorded),
        String::from_utf8_lossy(page),
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(&want),
    ))
}

/// Bytes a diverging page puts at a position: the characters that end or
/// open tags, attributes and comments, and whole tags a template must not
/// carry its decision over to.
const INSERTS: &[&[u8]] = &[
    b"x",
    b">",
    b"\"",
    b"'",
    b"<",
    b" ",
    b"/",
    b"=",
    b"<script src=//evil.example/x.js>",
    b" src=//evil.example/y.js ",
    b"-->",
    b"<!--",
    b"<svg/>",
    b"</script>",
    b"<base href=//evil.example/>",
    b"<![CDATA[",
    b"\x1b$B",
];

/// The pages that leave `page` at `at`: a byte replaced, markup inserted, the
/// page cut there. Which replacement and insertion depends on `at`, so that
/// over a page every one meets every kind of position.
fn mutations(page: &[u8], at: usize) -> Vec<Vec<u8>> {
    let insert = INSERTS[at % INSERTS.len()];
    let mut out = Vec::new();
    if at < page.len() {
        let mut replaced = page.to_vec();
        let by = INSERTS[(at / INSERTS.len() + at) % 8][0];
        replaced[at] = if replaced[at] == by { b'#' } else { by };
        out.push(replaced);
    }
    let mut inserted = page[..at].to_vec();
    inserted.extend_from_slice(insert);
    inserted.extend_from_slice(&page[at..]);
    out.push(inserted);
    out.push(page[..at].to_vec());
    out
}

/// Every page, diverging at every position, in a chunking that changes with
/// the position; the page itself, in every chunking; and the page carried on
/// past a template of its first bytes, cut at every position (inside tags,
/// attributes and comments that the template saw unfinished).
fn check_page(name: &str, page: &[u8], failures: &mut Vec<String>) -> bool {
    for at in 0..page.len() {
        let sizes = CHUNKINGS[at % CHUNKINGS.len()];
        let Some(template) = record(&page[..at], sizes) else {
            continue;
        };
        if let Err(e) = check(
            &template,
            &page[..at],
            page,
            CHUNKINGS[(at + 3) % CHUNKINGS.len()],
        ) {
            failures.push(format!("{name}, carried on from {at}: {e}"));
        }
    }
    let Some(template) = record(page, CHUNKINGS[page.len() % CHUNKINGS.len()]) else {
        return false;
    };
    for sizes in CHUNKINGS {
        if let Err(e) = check(&template, page, page, sizes) {
            failures.push(format!("{name}, the same page: {e}"));
        }
    }
    for at in 0..=page.len() {
        for (i, mutated) in mutations(page, at).into_iter().enumerate() {
            let sizes = CHUNKINGS[(at + i) % CHUNKINGS.len()];
            if let Err(e) = check(&template, page, &mutated, sizes) {
                failures.push(format!("{name}, at {at}: {e}"));
            }
        }
    }
    true
}

#[test]
fn the_hostile_corpus_cached_is_the_rewriter_at_every_divergence() {
    let mut failures = Vec::new();
    let mut recorded = 0;
    let corpus = html::hostile_corpus();
    for (i, page) in corpus.iter().enumerate() {
        recorded += usize::from(check_page(
            &format!("corpus line {i}"),
            page.as_bytes(),
            &mut failures,
        ));
    }
    assert!(
        failures.is_empty(),
        "{}",
        failures[..failures.len().min(5)].join("\n\n")
    );
    // Pages a browser may read apart from lol_html make no template; the rest do.
    assert_eq!((recorded, corpus.len()), (37, 58));
}

#[test]
fn real_pages_cached_are_the_rewriter_at_every_divergence() {
    let mut failures = Vec::new();
    for (name, page) in html::real_pages() {
        let recorded = check_page(name, &page, &mut failures);
        // The documentation page has MathML, after which nothing is nonced.
        assert_eq!(recorded, name != "docs", "{name}");
    }
    assert!(
        failures.is_empty(),
        "{}",
        failures[..failures.len().min(5)].join("\n\n")
    );
}

/// The oracle is not the cached path under another name: a template that
/// claims a nonce the page never had is caught.
#[test]
fn a_template_of_another_page_is_never_followed_past_the_difference() {
    let page = b"<p>x</p><script src=/a.js></script><script src=//evil.example/b.js></script>";
    let template = record(page, &[usize::MAX]).unwrap();
    let evil = b"<p>x</p><script src=/a.js></script><script src=//evil.example/c.js></script>";
    check(&template, page, evil, &[1]).unwrap();
    let (out, ended) = run(
        PageNoncer::new(document(), None, Some(template), None),
        evil,
        &[usize::MAX],
    );
    assert_eq!(ended.outcome, Outcome::Diverged);
    assert_eq!(String::from_utf8_lossy(&out).matches(NONCE).count(), 1);
}

proptest! {
    #![proptest_config(html::proptest_config())]

    /// A generated page, and another that shares its first `shared` pieces and
    /// goes on with pieces of its own, each in its own random chunking.
    #[test]
    fn generated_pages_that_share_a_prefix_cached_are_the_rewriter(
        first in proptest::collection::vec(proptest::sample::select(html::PIECES), 1..20),
        then in proptest::collection::vec(proptest::sample::select(html::PIECES), 0..8),
        shared in 0usize..20,
        cut in 0usize..8,
        record_sizes in proptest::collection::vec(1usize..40, 1..4),
        sizes in proptest::collection::vec(1usize..40, 1..4),
    ) {
        let recorded = first.concat().into_bytes();
        let Some(template) = record(&recorded, &record_sizes) else {
            return Ok(());
        };
        let prefix = first[..shared.min(first.len())].concat();
        // Cut inside the last shared piece too, where tags are half written.
        let prefix = &prefix[..prefix.len().saturating_sub(cut)];
        let page = [prefix.as_bytes(), then.concat().as_bytes()].concat();
        if let Err(e) = check(&template, &recorded, &page, &sizes) {
            prop_assert!(false, "{}", e);
        }
    }
}

// The attack part: the real binary, in front of an upstream that answers a
// path with different pages in turn.

const POLICY: &str = r#"{default-src: ["'self'"], script-src: ["'self'", "https://cdn.test"], style-src: ["'self'"]}"#;

fn gw_yaml(upstream: SocketAddr, policy: &str) -> String {
    format!(
        r#"
listeners: [{{address: "{{listen}}"}}]
admin: {{address: "{{admin}}"}}
vhosts:
  - name: shop
    hosts: [shop.test, other.test]
    upstreams: ["{upstream}"]
    security:
      csp_enabled: true
      csp_policy: {policy}
      csp_nonce: true
      csp_nonce_styles: true
"#
    )
}

/// What the rewriter alone makes of `page` for a response with nonce `nonce`
/// to `host` and `path`, under script sources `scripts`.
fn oracle(page: &[u8], nonce: &str, host: &str, path: &str, scripts: &[&str]) -> String {
    let origin = DocumentOrigin::new(false, host).unwrap();
    let doc = Document {
        nonce: nonce.to_string(),
        filter: Arc::new(NonceFilter {
            scripts: SourceList::parse(scripts),
            styles: Some(SourceList::parse(&["'self'"])),
        }),
        url: origin.url(path).unwrap(),
        origin,
    };
    let mut html = HtmlNoncer::new(doc, None);
    let mut out = html.write(page);
    out.extend(html.end().0);
    String::from_utf8(out).unwrap()
}

fn nonce_of(r: &Reply) -> String {
    let csp = r.one("content-security-policy");
    csp.split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .unwrap_or_else(|| panic!("no nonce in {csp}"))
        .to_string()
}

/// Cache results of the vhost's responses so far: (hits, misses, divergences).
fn results(gw: &Gateway) -> (f64, f64, f64) {
    let one = |result: &str| {
        let sample = format!(
            "secgw_csp_nonce_cache_total{{result=\"{result}\",route=\"_vhost\",vhost=\"shop\"}}"
        );
        gw.metric(&sample).unwrap_or(0.0)
    };
    (one("hit"), one("miss"), one("divergence"))
}

/// A page in two pieces, the upstream holding the second until released.
fn held(prefix: &str, tail: &str) -> Page {
    let mut page = Page::html(Vec::new());
    page.pieces = vec![prefix.into(), tail.into()];
    page.chunked = true;
    page.hold_before = Some(1);
    page
}

/// Two pages with one long prefix, leaving each other inside a script tag
/// (a second `src`), inside an attribute, inside a comment, and inside a
/// script's text: (name, one tail, the other tail).
const FAMILIES: &[(&str, &str, &str)] = &[
    (
        "script tag",
        r#"<script src="/a.js"></script><p>end</p>"#,
        r#"<script src="/a.js" src="//evil.example/x.js"></script><p>end</p>"#,
    ),
    (
        "attribute",
        r#"<p title="x"><script src="/a.js"></script></p>"#,
        r#"<p title="x><script src="/a.js"></script></p>"#,
    ),
    (
        "comment",
        r#"<!-- c --><script src="/a.js"></script>"#,
        r#"<!-- c <script src="/a.js"></script> -->"#,
    ),
    (
        "script text",
        r#"<script>var s = "</scr" + "ipt>";</script><script src="/b.js"></script>"#,
        r#"<script>var s = "</script><script src=//evil.example/x.js></script><script src="/b.js">";</script>"#,
    ),
];

/// `count` GETs of `path` at once, the upstream holding each after its first
/// piece until all arrived: each reply, checked against the rewriter alone.
fn interleaved(gw: &Gateway, server: &PageServer, path: &str, count: usize, pages: &[String]) {
    let before = server.seen.lock().unwrap().len();
    let replies: Vec<_> = (0..count)
        .map(|_| {
            let (url, path) = (gw.url(path), path.to_string());
            std::thread::spawn(move || {
                let r = reply(
                    client()
                        .get(url)
                        .header("Host", "shop.test")
                        .send()
                        .unwrap(),
                );
                (r, path)
            })
        })
        .collect();
    eventually("every request reached the upstream", || {
        server.seen.lock().unwrap().len() == before + count
    });
    std::thread::sleep(Duration::from_millis(100));
    for _ in 0..count {
        server.release();
    }
    for handle in replies {
        let (r, path) = handle.join().unwrap();
        let nonce = nonce_of(&r);
        let matches: Vec<&String> = pages
            .iter()
            .filter(|p| {
                r.body
                    == oracle(
                        p.as_bytes(),
                        &nonce,
                        "shop.test",
                        &path,
                        &["'self'", "https://cdn.test"],
                    )
            })
            .collect();
        assert_eq!(matches.len(), 1, "{path}: {}", r.body);
    }
}

#[test]
fn interleaved_clients_on_pages_that_part_late_get_what_the_rewriter_gives() {
    let prefix = String::from_utf8(html::catalogue(20)).unwrap();
    let prefix = prefix.trim_end_matches("</body></html>\n");
    let mut rotations = Vec::new();
    let mut pages = Vec::new();
    for (i, (_, one, other)) in FAMILIES.iter().enumerate() {
        // The upstream holds each page where the two part, so the gateway
        // has the shared bytes (half a tag, say) before it knows which it is.
        let common = one
            .bytes()
            .zip(other.bytes())
            .take_while(|(a, b)| a == b)
            .count();
        let shared = format!("{prefix}{}", &one[..common]);
        let piece = |t: &str| held(&shared, &t[common..]);
        // In turn: the first, the first, then two at once, three times over.
        let order = [one, one, other, one, one, other, other, one];
        rotations.push((format!("/f{i}"), order.map(|t| piece(t)).to_vec()));
        pages.push([one, other].map(|t| format!("{prefix}{t}")).to_vec());
    }
    let rotations: Vec<(&str, Vec<Page>)> = rotations
        .iter()
        .map(|(p, r)| (p.as_str(), r.clone()))
        .collect();
    let server = PageServer::start_rotating(rotations, "127.0.0.1");
    let gw = Gateway::start(&gw_yaml(server.addr, POLICY));
    for (i, (name, _, _)) in FAMILIES.iter().enumerate() {
        let path = format!("/f{i}");
        let (hits, misses, divergences) = results(&gw);
        interleaved(&gw, &server, &path, 1, &pages[i]);
        interleaved(&gw, &server, &path, 1, &pages[i]);
        assert_eq!(
            results(&gw),
            (hits + 1.0, misses + 1.0, divergences),
            "{name}"
        );
        for _ in 0..3 {
            interleaved(&gw, &server, &path, 2, &pages[i]);
        }
        let (h, m, d) = results(&gw);
        assert_eq!(h + m + d, hits + misses + divergences + 8.0, "{name}");
        assert!(d > divergences, "{name}: no divergence");
    }
}

#[test]
fn a_template_serves_neither_another_origin_nor_another_policy() {
    let page = r#"<p>x</p><script src="http://shop.test/a.js"></script><script src="https://cdn.test/b.js"></script><script src="/c.js"></script>"#;
    let server = PageServer::start(vec![
        ("/", Page::html(page)),
        ("/text", Page::new("text/plain", "t")),
    ]);
    let gw = Gateway::start(&gw_yaml(server.addr, POLICY));
    let check = |host: &str, scripts: &[&str]| {
        let r = get(&gw, host, "/", &[]);
        assert_eq!(
            r.body,
            oracle(page.as_bytes(), &nonce_of(&r), host, "/", scripts),
            "{host}"
        );
        r.body.matches("nonce=").count()
    };
    let scripts = ["'self'", "https://cdn.test"];
    assert_eq!(check("shop.test", &scripts), 3);
    assert_eq!(check("shop.test", &scripts), 3);
    assert_eq!(results(&gw), (1.0, 1.0, 0.0));
    // `'self'` is other.test there: the first script is not its own.
    assert_eq!(check("other.test", &scripts), 2);
    assert_eq!(results(&gw), (1.0, 2.0, 0.0));
    assert_eq!(gw.metric("secgw_nonce_cache_templates"), Some(2.0));

    // A reload that drops the CDN empties the cache.
    let conf = gw.dir.path().join("gw.yaml");
    let text = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(&conf, text.replace(r#", "https://cdn.test"]"#, "]")).unwrap();
    eventually("the new policy serves", || {
        !get(&gw, "shop.test", "/text", &[])
            .one("content-security-policy")
            .contains("cdn.test")
    });
    assert_eq!(check("shop.test", &["'self'"]), 2);
    assert_eq!(results(&gw), (1.0, 3.0, 0.0));
    assert_eq!(gw.metric("secgw_nonce_cache_templates"), Some(1.0));
}

#[test]
fn credentials_and_private_pages_never_make_a_template() {
    let page = "<script>1</script>";
    let server = PageServer::start(vec![
        ("/", Page::html(page)),
        ("/set", Page::html(page).header("Set-Cookie", "s=1")),
        (
            "/private",
            Page::html(page).header("Cache-Control", "max-age=60, private"),
        ),
        (
            "/no-store",
            Page::html(page).header("Cache-Control", "no-store"),
        ),
    ]);
    let gw = Gateway::start(&gw_yaml(server.addr, POLICY));
    let get_with = |path: &str, header: &[(&str, &str)]| {
        let r = get(&gw, "shop.test", path, header);
        assert_eq!(
            r.body,
            format!("<script nonce=\"{}\">1</script>", nonce_of(&r))
        );
    };
    for creds in [
        &[("Cookie", "session=alice")][..],
        &[("Authorization", "Bearer alice")][..],
        &[("Proxy-Authorization", "Basic YTpi")][..],
    ] {
        get_with("/", creds);
        get_with("/", creds);
    }
    for path in ["/set", "/private", "/no-store"] {
        get_with(path, &[]);
        get_with(path, &[]);
    }
    assert_eq!(results(&gw), (0.0, 12.0, 0.0));
    assert_eq!(gw.metric("secgw_nonce_cache_templates"), Some(0.0));
    assert_eq!(gw.metric("secgw_nonce_cache_bytes"), Some(0.0));
    // A public request makes one, which a request with a cookie may use.
    get_with("/", &[]);
    get_with("/", &[("Cookie", "session=alice")]);
    assert_eq!(results(&gw), (1.0, 13.0, 0.0));
    assert_eq!(gw.metric("secgw_nonce_cache_templates"), Some(1.0));
}

#[test]
fn validators_are_part_of_the_key_and_a_changing_page_is_retired() {
    let v1 = Page::html("<script>1</script>").header("ETag", "\"1\"");
    let v2 = Page::html("<script>2</script>").header("ETag", "\"2\"");
    let pages: Vec<Page> = (0..6)
        .map(|i| Page::html(format!("<p>{i}</p><script>x</script>")))
        .collect();
    let server = PageServer::start_rotating(
        vec![("/etag", vec![v1.clone(), v1, v2]), ("/changing", pages)],
        "127.0.0.1",
    );
    let gw = Gateway::start(&gw_yaml(server.addr, POLICY));
    for _ in 0..3 {
        get(&gw, "shop.test", "/etag", &[]);
    }
    // A new ETag is a new key: a miss, not a divergence.
    assert_eq!(results(&gw), (1.0, 2.0, 0.0));
    for _ in 0..6 {
        let r = get(&gw, "shop.test", "/changing", &[]);
        assert!(r
            .body
            .ends_with(&format!("<script nonce=\"{}\">x</script>", nonce_of(&r))));
    }
    // Three divergences in a row retire the key: the rest are misses.
    assert_eq!(results(&gw), (1.0, 5.0, 3.0));
}

/// The upstream's own head says whether a page is shared, not the head the
/// policy makes of it: a policy's `no-store` does not stop templates, and a
/// `Set-Cookie` the policy strips still does.
#[test]
fn the_upstreams_head_decides_what_is_shared_not_the_policys() {
    let page = "<script>1</script>";
    let server = PageServer::start(vec![
        ("/", Page::html(page)),
        ("/set", Page::html(page).header("Set-Cookie", "s=1")),
    ]);
    let yaml = gw_yaml(server.addr, POLICY).replace(
        "      csp_nonce_styles: true\n",
        "      csp_nonce_styles: true\n      cache_control: no-store\n    headers: {remove: [Set-Cookie]}\n",
    );
    let gw = Gateway::start(&yaml);
    for path in ["/", "/", "/set", "/set"] {
        let r = get(&gw, "shop.test", path, &[]);
        assert_eq!(
            r.body,
            format!("<script nonce=\"{}\">1</script>", nonce_of(&r))
        );
        assert_eq!(r.one("cache-control"), "no-store");
        assert!(!r.has("set-cookie"));
    }
    assert_eq!(results(&gw), (1.0, 3.0, 0.0));
}

/// Signed-in users get another page at the URL an anonymous visitor's
/// template came from: their responses cannot make templates, and still
/// retire the key after three divergences.
#[test]
fn divergences_that_cannot_be_recorded_still_retire_the_key() {
    let anonymous = Page::html("<p>Sign in</p><script>1</script>");
    // The same length: Content-Length is part of the key.
    let personal = Page::html("<p>Hi, Bob</p><script>1</script>");
    let server = PageServer::start_rotating(
        vec![(
            "/",
            vec![
                anonymous,
                personal.clone(),
                personal.clone(),
                personal.clone(),
                personal,
            ],
        )],
        "127.0.0.1",
    );
    let gw = Gateway::start(&gw_yaml(server.addr, POLICY));
    get(&gw, "shop.test", "/", &[]);
    for _ in 0..4 {
        let r = get(&gw, "shop.test", "/", &[("Cookie", "session=alice")]);
        assert_eq!(
            r.body,
            format!(
                "<p>Hi, Bob</p><script nonce=\"{}\">1</script>",
                nonce_of(&r)
            )
        );
    }
    assert_eq!(results(&gw), (0.0, 2.0, 3.0));
    assert_eq!(gw.metric("secgw_nonce_cache_templates"), Some(0.0));
}
