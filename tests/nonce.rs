//! CSP nonces through the real binary: the nonce in the header and on exactly the
//! elements the policy allows, fresh per response, byte-identical pages apart
//! from the attributes, encodings, streaming, HTTP/2, and what is left alone.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use base64::Engine;
use common::pages::{Page, PageServer};
use common::tls::{https_client, TestPki};
use common::*;

const POLICY: &str = r#"{default-src: ["'self'"], script-src: ["'self'", "https://cdn.test"], style-src: ["'self'"], img-src: ["'self'"]}"#;

/// The CSP the gateway sends with nonce `n` (`None`: the plain policy).
/// The vhost's directives merge over the built-in policy's.
fn csp(n: Option<&str>) -> String {
    let (script, style) = match n {
        Some(n) => (
            format!(" 'nonce-{n}' 'strict-dynamic'"),
            format!(" 'nonce-{n}'"),
        ),
        None => (String::new(), String::new()),
    };
    format!(
        "default-src 'self'; base-uri 'self'; font-src 'self' https: data:; form-action 'self'; \
         frame-ancestors 'none'; img-src 'self'; object-src 'none'; \
         script-src 'self' https://cdn.test{script}; script-src-attr 'none'; \
         style-src 'self'{style}; upgrade-insecure-requests"
    )
}

/// gw.yaml with the nonce template cache on or off.
fn gw_yaml(upstream: std::net::SocketAddr, listeners: &str, cache: bool) -> String {
    format!(
        r#"
listeners: {listeners}
admin: {{address: "{{admin}}"}}
vhosts:
  - name: shop
    hosts: [shop.test]
    upstreams: ["{upstream}"]
    security:
      csp_enabled: true
      csp_policy: {POLICY}
      csp_nonce: true
      csp_nonce_styles: true
      csp_strict_dynamic: true
      csp_nonce_cache: {cache}
"#
    )
}

fn start(pages: Vec<(&str, Page)>) -> (PageServer, Gateway) {
    start_with(pages, true)
}

fn start_with(pages: Vec<(&str, Page)>, cache: bool) -> (PageServer, Gateway) {
    let server = PageServer::start(pages);
    let gw = Gateway::start(&gw_yaml(server.addr, r#"[{address: "{listen}"}]"#, cache));
    (server, gw)
}

/// The nonce template cache off, then on; with it on, a page is fetched twice:
/// the second response comes from the template the first one made.
const CACHE_MODES: [(bool, usize); 2] = [(false, 1), (true, 2)];

/// The template cache's results on the vhost: (hits, misses).
fn cache_results(gw: &Gateway) -> (f64, f64) {
    let one = |result: &str| {
        gw.metric(&format!(
            "secgw_csp_nonce_cache_total{{result=\"{result}\",route=\"_vhost\",vhost=\"shop\"}}"
        ))
        .unwrap_or(0.0)
    };
    (one("hit"), one("miss"))
}

/// The nonce out of the CSP header, checked to be 16 random bytes in base64.
fn nonce_of(r: &Reply) -> String {
    let value = r.one("content-security-policy");
    let n = value
        .split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .unwrap_or_else(|| panic!("no nonce in {value}"));
    let bytes = base64::engine::general_purpose::STANDARD.decode(n).unwrap();
    assert_eq!(bytes.len(), 16, "{n}");
    assert_eq!(value, csp(Some(n)));
    n.to_string()
}

/// A page whose `{N}` marks where a nonce attribute belongs: what the upstream
/// sends (no marks) and what the client must get (each mark a ` nonce="…"`).
struct Template(String);

impl Template {
    fn upstream(&self) -> String {
        self.0.replace("{N}", "")
    }

    fn expected(&self, nonce: &str) -> String {
        self.0.replace("{N}", &format!(" nonce=\"{nonce}\""))
    }
}

fn kinds() -> Template {
    Template(
        r#"<!doctype html>
<html><head>
<script{N}>window.inline = 1;</script>
<script{N} src="/app.js"></script>
<script{N} src="https://cdn.test/lib.js" defer></script>
<script src="https://evil.test/x.js"></script>
<script src="//cdn.test.evil.test/x.js"></script>
<link{N} rel="preload" as="script" href="/early.js">
<link{N} rel="modulepreload" href="/mod.js">
<link rel="preload" as="script" href="https://evil.test/y.js">
<link{N} rel="stylesheet" href="/site.css">
<link rel="stylesheet" href="https://evil.test/z.css">
<link rel="icon" href="/favicon.ico">
<style{N}>body { color: #333 }</style>
<script{N} type="module">import "/m.js";</script>
<script{N} nonce="from-the-upstream">window.stale = 1;</script>
</head><body><p onclick="alert(1)">caf&eacute; <b>bold</b></p>
<svg><script href="https://evil.test/svg.js"></script></svg>
<svg><script href="/svg.js"><desc><base href="https://evil.test/"></desc></script></svg>
<img src="/x.png" onerror="alert(2)">
</body></html>
"#
        .to_string(),
    )
}

#[test]
fn every_kind_of_script_and_style_the_policy_allows_gets_the_headers_nonce() {
    let page = kinds();
    for (cache, times) in CACHE_MODES {
        let (_server, gw) = start_with(vec![("/", Page::html(page.upstream()))], cache);
        for _ in 0..times {
            let r = get(&gw, "shop.test", "/", &[]);
            assert_eq!(r.status, 200);
            let n = nonce_of(&r);
            // Only the marked places changed; the gateway's nonce comes first, and a
            // browser keeps the first of two attributes of one name.
            assert_eq!(r.body, page.expected(&n));
            assert_eq!(r.body.matches(&n).count(), 9);
            assert_eq!(r.one("transfer-encoding"), "chunked");
            assert!(!r.has("content-length"));
            assert_eq!(r.one("cache-control"), "private");
            assert_eq!(r.one("x-frame-options"), "DENY");
        }
        assert_eq!(
            gw.metric("secgw_csp_nonce_responses_total{route=\"_vhost\",vhost=\"shop\"}"),
            Some(times as f64)
        );
        let expected = if cache { (1.0, 1.0) } else { (0.0, 0.0) };
        assert_eq!(cache_results(&gw), expected);
    }
}

#[test]
fn each_response_gets_its_own_nonce() {
    for (cache, _) in CACHE_MODES {
        let (_server, gw) = start_with(vec![("/", Page::html("<script>1</script>"))], cache);
        let nonces: std::collections::HashSet<String> = (0..20)
            .map(|_| {
                let r = get(&gw, "shop.test", "/", &[]);
                let n = nonce_of(&r);
                assert_eq!(r.body, format!("<script nonce=\"{n}\">1</script>"));
                n
            })
            .collect();
        assert_eq!(nonces.len(), 20);
        let expected = if cache { (19.0, 1.0) } else { (0.0, 0.0) };
        assert_eq!(cache_results(&gw), expected);
    }
}

/// A 60 KB page of the kind a CMS serves, cut into 997-byte chunks so tags,
/// attributes and script bodies straddle chunk boundaries.
fn large_page() -> Template {
    let mut t = String::from("<!doctype html><html><head><title>Catalogue</title>\n");
    for i in 0..120 {
        t.push_str(&format!(
            "<script{{N}}>var item{i} = {{ id: {i}, name: \"item &amp; {i}\", tags: [\"a\", \"b\"] }};</script>\n\
             <div class=\"card\" data-id=\"{i}\"><h2>Item {i}</h2><p>{}</p>\
             <script{{N}} src=\"/js/card-{i}.js\" async></script></div>\n",
            "Lorem ipsum dolor sit amet, consectetur adipiscing elit. ".repeat(4)
        ));
        if i % 30 == 0 {
            t.push_str("<script src=\"https://evil.test/track.js\"></script>\n");
        }
    }
    t.push_str("</body></html>\n");
    Template(t)
}

#[test]
fn a_large_chunked_page_is_byte_identical_apart_from_the_nonces() {
    let page = large_page();
    assert!(page.upstream().len() > 50_000);
    for (cache, times) in CACHE_MODES {
        let (_server, gw) = start_with(
            vec![
                ("/chunked", Page::html(page.upstream()).in_chunks(997)),
                ("/length", Page::html(page.upstream())),
            ],
            cache,
        );
        for path in ["/chunked", "/length"].repeat(times) {
            let r = get(&gw, "shop.test", path, &[]);
            let n = nonce_of(&r);
            assert_eq!(r.body.len(), page.expected(&n).len(), "{path}");
            assert!(r.body == page.expected(&n), "{path}: bodies differ");
            assert_eq!(r.body.matches(&n).count(), 240);
        }
        let expected = if cache { (2.0, 2.0) } else { (0.0, 0.0) };
        assert_eq!(cache_results(&gw), expected);
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn brotli(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut e = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
    e.write_all(data).unwrap();
    drop(e);
    out
}

fn deflate(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn gzip_br_and_deflate_upstreams_are_decoded_then_nonced() {
    let page = large_page();
    let html = page.upstream().into_bytes();
    let encoded = |coding: &str, body: Vec<u8>| {
        Page::html(body)
            .header("Content-Encoding", coding)
            .header("Vary", "Accept-Encoding")
            .in_chunks(1500)
    };
    for (cache, times) in CACHE_MODES {
        let (_server, gw) = start_with(
            vec![
                ("/gzip", encoded("gzip", gzip(&html))),
                ("/br", encoded("br", brotli(&html))),
                ("/deflate", encoded("deflate", deflate(&html))),
            ],
            cache,
        );
        for path in ["/gzip", "/br", "/deflate"].repeat(times) {
            let r = get(
                &gw,
                "shop.test",
                path,
                &[("Accept-Encoding", "gzip, br, deflate")],
            );
            let n = nonce_of(&r);
            assert!(!r.has("content-encoding"), "{path}");
            assert_eq!(r.one("vary"), "Accept-Encoding");
            assert!(r.body == page.expected(&n), "{path}: bodies differ");
        }
        let expected = if cache { (3.0, 3.0) } else { (0.0, 0.0) };
        assert_eq!(cache_results(&gw), expected);
    }
}

#[test]
fn unknown_encodings_and_no_transform_pass_through_untouched_without_a_nonce() {
    let html = "<script>1</script>";
    let zstd_bytes: &[u8] = b"\x28\xb5\x2f\xfd not really zstd <script>";
    let (_server, gw) = start(vec![
        (
            "/zstd",
            Page::html(zstd_bytes).header("Content-Encoding", "zstd"),
        ),
        (
            "/twice",
            Page::html(gzip(html.as_bytes())).header("Content-Encoding", "gzip, gzip"),
        ),
        (
            "/no-transform",
            Page::html(html).header("Cache-Control", "public, max-age=60, no-transform"),
        ),
    ]);
    let raw = |path: &str| {
        let resp = client()
            .get(gw.url(path))
            .header("Host", "shop.test")
            .send()
            .unwrap();
        let headers = resp.headers().clone();
        (headers, resp.bytes().unwrap())
    };
    let (h, body) = raw("/zstd");
    assert_eq!(&body[..], zstd_bytes);
    assert_eq!(h["content-security-policy"], csp(None).as_str());
    assert_eq!(h["content-encoding"], "zstd");
    assert_eq!(h["content-length"], zstd_bytes.len().to_string().as_str());
    let (h, body) = raw("/twice");
    assert_eq!(&body[..], &gzip(html.as_bytes())[..]);
    assert_eq!(h["content-security-policy"], csp(None).as_str());
    let (h, body) = raw("/no-transform");
    assert_eq!(&body[..], html.as_bytes());
    assert_eq!(h["content-security-policy"], csp(None).as_str());
    assert_eq!(h["cache-control"], "public, max-age=60, no-transform");
    let skipped = |reason: &str| {
        gw.metric(&format!(
            "secgw_csp_nonce_skipped_total{{reason=\"{reason}\",route=\"_vhost\",vhost=\"shop\"}}"
        ))
    };
    assert_eq!(skipped("encoding"), Some(2.0));
    assert_eq!(skipped("no_transform"), Some(1.0));
    assert_eq!(skipped("charset"), Some(0.0));
}

#[test]
fn the_client_gets_the_first_half_before_the_upstream_sends_the_rest() {
    let first = "<!doctype html><html><head><script>var a = 1;</script></head><body>\
                 <p>first half</p><div id=\"end-of-first-half\"></div>";
    let second = "<script>var b = 2;</script><p>second half</p></body></html>";
    let mut page = Page::html(Vec::new());
    page.pieces = vec![first.into(), second.into()];
    page.chunked = true;
    page.hold_before = Some(1);
    for (cache, times) in CACHE_MODES {
        let (server, gw) = start_with(vec![("/stream", page.clone())], cache);
        for _ in 0..times {
            // The upstream holds the second half until the test releases it: the
            // first half must arrive on its own, rewritten, or this read times out.
            let (mut s, text) = get_raw_until(&gw, "/stream", "end-of-first-half\"></div>");
            let n = text
                .split("'nonce-")
                .nth(1)
                .and_then(|r| r.split('\'').next())
                .unwrap()
                .to_string();
            assert!(text.contains(&format!("<script nonce=\"{n}\">var a = 1;</script>")));
            assert!(!text.contains("second half"));
            server.release();
            let rest = read_until_closed_or(&mut s, "0\r\n\r\n");
            assert!(rest.contains(&format!(
                "<script nonce=\"{n}\">var b = 2;</script><p>second half</p>"
            )));
        }
        let expected = if cache { (1.0, 1.0) } else { (0.0, 0.0) };
        assert_eq!(cache_results(&gw), expected);
    }
}

/// Sends a raw GET for `path` on shop.test and reads until `marker` arrives
/// (10 s at most): the connection, and the text so far.
fn get_raw_until(gw: &Gateway, path: &str, marker: &str) -> (TcpStream, String) {
    let mut s = TcpStream::connect(gw.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: shop.test\r\n\r\n").as_bytes())
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains(marker) {
        let n = s
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("{marker} did not arrive: {e}"));
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    (s, String::from_utf8_lossy(&got).into_owned())
}

/// Reads until `end` shows up in the stream (the response's last bytes).
fn read_until_closed_or(s: &mut TcpStream, end: &str) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).ends_with(end) {
        let n = s.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).to_string()
}

#[test]
fn http2_clients_get_the_nonce_in_data_frames() {
    let pki = TestPki::new();
    let leaf = pki.leaf(&["shop.test"]);
    let page = large_page();
    let server = PageServer::start(vec![("/", Page::html(page.upstream()).in_chunks(4000))]);
    let files = [
        ("certs/shop.pem", leaf.cert_pem.as_str()),
        ("certs/shop.key", leaf.key_pem.as_str()),
    ];
    for (cache, times) in CACHE_MODES {
        let yaml = gw_yaml(
            server.addr,
            r#"[{address: "{tls}", tls: {cert: certs/shop.pem, key: certs/shop.key}}]"#,
            cache,
        );
        let mut gw = Gateway::launch(&yaml, &files, free_port());
        gw.wait_for(gw.tls_addr);
        let client = https_client(&pki.ca_pem(), true, &[("shop.test", gw.tls_addr)]);
        for _ in 0..times {
            let resp = client
                .get(format!("https://shop.test:{}/", gw.tls_addr.port()))
                .send()
                .unwrap();
            assert_eq!(resp.version(), reqwest::Version::HTTP_2);
            let r = reply(resp);
            let n = nonce_of(&r);
            assert!(r.body == page.expected(&n), "bodies differ");
            assert!(!r.has("transfer-encoding"));
            assert!(!r.has("content-length"));
        }
        let expected = if cache { (1.0, 1.0) } else { (0.0, 0.0) };
        assert_eq!(cache_results(&gw), expected);
    }
}

#[test]
fn head_204_304_and_non_html_are_left_alone() {
    let html = "<script>1</script>";
    let json = "{\"html\": \"<script>1</script>\"}";
    let (_server, gw) = start(vec![
        ("/page", Page::html(html).header("ETag", "\"v1\"")),
        ("/none", Page::html("").status(204)),
        ("/same", Page::html("").status(304).header("ETag", "\"v1\"")),
        ("/data.json", Page::new("application/json", json)),
        (
            "/app.js",
            Page::new("text/javascript", "document.write('<script>')"),
        ),
    ]);
    let head = request(&gw, "HEAD", "shop.test", "/page", &[]);
    assert_eq!(head.status, 200);
    assert_eq!(head.one("content-security-policy"), csp(None));
    assert_eq!(head.one("content-length"), html.len().to_string());
    assert_eq!(head.one("etag"), "\"v1\"");
    for (path, status) in [("/none", 204), ("/same", 304)] {
        let r = get(&gw, "shop.test", path, &[]);
        assert_eq!(r.status, status);
        assert_eq!(r.one("content-security-policy"), csp(None));
        assert_eq!(r.body, "");
    }
    for (path, body) in [
        ("/data.json", json),
        ("/app.js", "document.write('<script>')"),
    ] {
        let r = get(&gw, "shop.test", path, &[]);
        assert_eq!(r.body, body);
        assert_eq!(r.one("content-security-policy"), csp(None));
        assert_eq!(r.one("content-length"), body.len().to_string());
    }
    // The GET of the same page: nonced, and without the validators that would
    // let a 304 pair the stored page with a CSP of another nonce.
    let r = get(&gw, "shop.test", "/page", &[]);
    let n = nonce_of(&r);
    assert_eq!(r.body, format!("<script nonce=\"{n}\">1</script>"));
    assert!(!r.has("etag"));
}

#[test]
fn cacheable_responses_become_private() {
    let (_server, gw) = start(vec![
        (
            "/public",
            Page::html("<p>").header("Cache-Control", "public, max-age=600, s-maxage=3600"),
        ),
        (
            "/no-store",
            Page::html("<p>").header("Cache-Control", "no-store"),
        ),
    ]);
    let r = get(&gw, "shop.test", "/public", &[]);
    nonce_of(&r);
    assert_eq!(r.one("cache-control"), "max-age=600, private");
    let r = get(&gw, "shop.test", "/no-store", &[]);
    nonce_of(&r);
    assert_eq!(r.one("cache-control"), "no-store");
}

#[test]
fn a_body_that_cannot_be_decoded_ends_its_response_and_is_counted() {
    // Half a gzip stream, then garbage that the upstream holds back until the
    // client has the head: the failure comes after the head, on every run.
    let html = large_page().upstream();
    let mut valid = gzip(html.as_bytes());
    valid.truncate(valid.len() / 2);
    let mut broken = Page::html(valid)
        .header("Content-Encoding", "gzip")
        .in_chunks(512);
    broken
        .pieces
        .push(b"garbage that is not deflate data at all".to_vec());
    broken.hold_before = Some(broken.pieces.len() - 1);
    let (server, mut gw) = start(vec![
        ("/broken", broken),
        ("/ok", Page::html("<script>ok</script>")),
    ]);
    let resp = client()
        .get(gw.url("/broken"))
        .header("Host", "shop.test")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    server.release();
    assert!(
        resp.bytes().is_err(),
        "a cut response must not look complete"
    );
    assert_eq!(
        gw.metric("secgw_csp_nonce_failures_total{route=\"_vhost\",vhost=\"shop\"}"),
        Some(1.0)
    );
    let log = gw.log();
    assert_eq!(log.matches("nonce rewrite failed").count(), 1, "{log}");
    assert!(log.contains("decoding the upstream body"), "{log}");
    let r = get(&gw, "shop.test", "/ok", &[]);
    let n = nonce_of(&r);
    assert_eq!(r.body, format!("<script nonce=\"{n}\">ok</script>"));
    assert!(gw.alive());
}

/// Pages where the rewriter and a browser may part ways, or where the parser
/// cannot go on: each arrives whole, nonced only before that point, and counted.
#[test]
fn pages_the_rewriter_cannot_follow_arrive_whole_and_are_counted() {
    // ISO-2022-JP hides tags from an ASCII parser. The upstream holds the ESC
    // byte back until the client has the head and the text before it.
    let mut iso = Page::new("text/html", Vec::new());
    iso.pieces = vec![
        b"<meta charset=\"iso-2022-jp\"><script>1</script><p>before the escape</p>".to_vec(),
        b"\x1b$B<script src=/ok.js a='\x1b(B<script src=//evil.test/x.js '></script>".to_vec(),
    ];
    iso.chunked = true;
    iso.hold_before = Some(1);
    let attack = "<script>1</script><svg/><![CDATA[><script src=//evil.test/x.js z=']]>\
                  <script q=\"'\"></script>";
    let select =
        "<script>1</script><select><xmp><script>2</script></xmp></select><script>3</script>";
    // One start tag larger than the parser's 4 MiB.
    let huge = format!(
        "<script>1</script><link rel=stylesheet title=\"{}\"><script>2</script>",
        "x".repeat(5 << 20)
    );
    let (server, gw) = start(vec![
        ("/iso-2022-jp", iso),
        ("/attack", Page::html(attack)),
        ("/select", Page::html(select)),
        ("/huge", Page::html(huge.clone()).in_chunks(64 << 10)),
    ]);
    let skipped = |reason: &str| {
        gw.metric(&format!(
            "secgw_csp_nonce_skipped_total{{reason=\"{reason}\",route=\"_vhost\",vhost=\"shop\"}}"
        ))
    };
    let (mut s, first) = get_raw_until(&gw, "/iso-2022-jp", "before the escape</p>");
    server.release();
    let all = first + &read_until_closed_or(&mut s, "\r\n0\r\n\r\n");
    let (head, body) = all.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert!(head.contains("\r\nX-Frame-Options: DENY\r\n"), "{head}");
    let n = head
        .split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .unwrap();
    assert_eq!(
        unchunk(body),
        format!(
            "<meta charset=\"iso-2022-jp\"><script nonce=\"{n}\">1</script><p>before the escape</p>\
             \x1b$B<script src=/ok.js a='\x1b(B<script src=//evil.test/x.js '></script>"
        )
    );
    assert_eq!(skipped("ambiguous_markup"), Some(1.0));
    for (path, page, total) in [("/attack", attack, 2.0), ("/select", select, 3.0)] {
        let r = get(&gw, "shop.test", path, &[]);
        let n = nonce_of(&r);
        assert_eq!(
            r.body,
            page.replacen("<script>1", &format!("<script nonce=\"{n}\">1"), 1),
            "{path}"
        );
        assert_eq!(skipped("ambiguous_markup"), Some(total), "{path}");
    }
    let r = get(&gw, "shop.test", "/huge", &[]);
    let n = nonce_of(&r);
    assert!(
        r.body == huge.replacen("<script>1", &format!("<script nonce=\"{n}\">1"), 1),
        "the page over the parser's limit is not whole"
    );
    assert_eq!(skipped("parser_limit"), Some(1.0));
    assert_eq!(
        gw.metric("secgw_csp_nonce_failures_total{route=\"_vhost\",vhost=\"shop\"}"),
        Some(0.0)
    );
}

/// A chunked body, decoded.
fn unchunk(mut body: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").unwrap();
        let size = usize::from_str_radix(size, 16).unwrap();
        if size == 0 {
            return out;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
}

#[test]
fn invalid_nonce_settings_name_the_key() {
    for (security, key, reason) in [
        (
            "{csp_nonce: true, csp_enabled: false}",
            "vhosts[0].security.csp_nonce",
            "csp_nonce needs csp_enabled: true",
        ),
        (
            "{csp_nonce_styles: true}",
            "vhosts[0].security.csp_nonce_styles",
            "csp_nonce_styles needs csp_nonce: true",
        ),
        (
            "{csp_nonce: true, csp_policy: {script-src: [\"'none'\"]}}",
            "vhosts[0].security.csp_nonce",
            "`script-src` is 'none'",
        ),
    ] {
        let yaml = one_vhost(
            "[app.test]",
            "127.0.0.1:9",
            "[]",
            &format!("    security: {security}"),
        );
        let (code, out, _dir) = check_config(&yaml, &[]);
        assert_eq!(code, 1, "{out}");
        assert!(out.contains(&format!("{key}: {reason}")), "{out}");
    }
}

/// The seed's recipes `grep` the raw head case-sensitively: the headers a nonced
/// response gets from the rewriter are written in canonical case like the rest.
#[test]
fn a_nonced_response_writes_its_headers_in_canonical_case() {
    let page = Page::html("<script>var a = 1;</script>").header("Cache-Control", "max-age=60");
    let (_server, gw) = start(vec![("/", page)]);
    let raw = raw_exchange(
        gw.addr,
        b"GET / HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n",
    );
    let head = head_of(&raw);
    assert!(raw.contains("<script nonce=\""), "{raw}");
    for line in [
        "\r\nContent-Security-Policy: ",
        "\r\nTransfer-Encoding: chunked\r\n",
        "\r\nCache-Control: max-age=60, private\r\n",
    ] {
        assert_eq!(head.matches(line).count(), 1, "{line:?} in {head}");
    }
    for line in head.lines().skip(1) {
        assert!(
            line.starts_with(|c: char| c.is_ascii_uppercase()),
            "{line:?} in {head}"
        );
    }
}
