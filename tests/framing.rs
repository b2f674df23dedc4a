//! A response must never reach the wrong client: request and response framing
//! across the gateway, checked by a strict upstream that parses every byte.
//!
//! - the HTTP/2 empty-final-DATA desync (issue #28), on the real binary;
//! - a property test: clients of every framing the gateway accepts (HTTP/1.1 with
//!   Content-Length or chunked with extensions and trailers, HTTP/1.0, HTTP/2 with
//!   and without content-length, END_STREAM on data, on an empty DATA frame or on
//!   trailers), concurrently on one upstream pool, against upstream answers of
//!   every framing (Content-Length, chunked, close-delimited, HEAD, 204, 304, 103);
//! - the framing the gateway refuses or repairs: repeated Content-Length, chunk
//!   lines peers refuse, TRACE.
//!
//! `PROPTEST_CASES` sets how many generated scenarios run (default 40; see
//! docs/framing.md for a longer run).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};

use common::framings::*;
use common::strict::{echo, parse_request, Strict};
use common::tls::{gateway_with_tls, TestPki};
use common::*;

const HOST: &str = "framing.test";

fn gateway(up: &Strict, extra: &str) -> (Gateway, TestPki) {
    let rest = format!(
        "vhosts:\n  - name: framing\n    hosts: [{HOST}]\n    upstreams: [\"{}\"]\n{extra}",
        up.addr
    );
    gateway_with_tls(HOST, &rest)
}

static TAGS: AtomicUsize = AtomicUsize::new(0);

fn tag(prefix: &str) -> String {
    format!("{prefix}{}", TAGS.fetch_add(1, Ordering::SeqCst))
}

fn tagged(tag: &str, answer: &str) -> Vec<(String, String)> {
    vec![
        ("x-tag".into(), tag.into()),
        ("x-answer".into(), answer.into()),
        ("content-type".into(), "text/plain".into()),
    ]
}

#[test]
fn the_strict_upstream_takes_exactly_one_request() {
    let chunked = b"POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n\
                    5;a=b;c=\"d e\"\r\nhello\r\n0\r\nx-t: 1\r\n\r\n";
    let (req, used) = parse_request(chunked).unwrap().unwrap();
    assert_eq!((req.body.as_slice(), used), (&b"hello"[..], chunked.len()));
    assert_eq!(req.trailers, vec![("x-t".to_string(), "1".to_string())]);
    assert!(parse_request(&chunked[..chunked.len() - 1])
        .unwrap()
        .is_none());
    let doubled = [&chunked[..], b"0\r\n\r\n"].concat();
    let (_, used) = parse_request(&doubled).unwrap().unwrap();
    assert_eq!(
        parse_request(&doubled[used..]).unwrap_err(),
        "request line \"0\""
    );
    for bad in [
        &b"GET / HTTP/1.1\nHost: h\r\n\r\n"[..],
        b"POST / HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\nx",
        b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;a\nb\r\nhello\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloX\r\n0\r\n\r\n",
    ] {
        assert!(
            parse_request(bad).is_err(),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

/// The outside pass's attack: an HTTP/2 POST without content-length whose body
/// ends in an empty DATA frame with END_STREAM. Before the fix the upstream got
/// the last-chunk twice, read the second as a request, and its (late) answer went
/// to the next client on the pooled connection.
#[test]
fn an_empty_final_data_frame_never_desyncs_the_upstream_connection() {
    let up = Strict::start(Duration::from_millis(200));
    let (gw, pki) = gateway(&up, "");
    let rt = runtime();
    rt.block_on(async {
        let mut h2 = h2_connect(gw.tls_addr, HOST, &pki.ca_pem()).await;
        for round in 0..3 {
            let first = tag("a");
            let req = H2Request {
                method: "POST".into(),
                path: format!("/a/{round}"),
                headers: tagged(&first, "length"),
                pieces: vec![b"hello".to_vec()],
                content_length: false,
                end: H2End::EmptyData,
            };
            let got = h2_exchange(&mut h2, HOST, &req).await.unwrap();
            assert_eq!(got.status, 200);
            assert_eq!(got.tag(), first);
            assert_eq!(got.body, echo(&first, "POST", b"hello").as_bytes());
            // The connection is back in the pool before the next client comes.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let second = tag("b");
            let next = tokio::task::spawn_blocking({
                let second = second.clone();
                let addr = gw.addr;
                move || {
                    let req = H1Request {
                        method: "GET".into(),
                        path: "/b".into(),
                        version: "HTTP/1.1",
                        headers: tagged(&second, "length"),
                        body: H1Body::None,
                    };
                    h1_exchange(&mut h1_connect(addr), HOST, &req).unwrap()
                }
            })
            .await
            .unwrap();
            assert_eq!(
                next.tag(),
                second,
                "round {round}: another request's answer"
            );
            assert_eq!(next.body, echo(&second, "GET", b"").as_bytes());
        }
    });
    // A second last-chunk would arrive right after the first request.
    std::thread::sleep(Duration::from_millis(300));
    let log = up.take();
    assert_eq!(log.violations, Vec::<String>::new());
    assert_eq!(log.truncated, Vec::<String>::new());
    assert_eq!(log.requests.len(), 6);
    for pair in log.requests.chunks(2) {
        assert_eq!(pair[0].framing, common::strict::BodyFraming::Chunked);
        assert_eq!(pair[0].body, b"hello");
        assert!(pair[1].body.is_empty());
    }
}

/// What one generated request is: its framing on the client side, and the
/// framing the upstream answers it with.
#[derive(Debug, Clone)]
enum Framing {
    H1 { body: H1Body, method: String },
    H10 { body: Vec<Vec<u8>>, method: String },
    H2(H2Request),
}

#[derive(Debug, Clone)]
struct Exchange {
    framing: Framing,
    answer: &'static str,
}

#[derive(Debug, Clone, Copy)]
enum Protocol {
    Http1,
    Http10,
    Http2,
}

fn bytes_piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..64),
        2 => proptest::collection::vec(any::<u8>(), 64..2048),
        1 => Just(vec![b'x'; 70_000]),
    ]
}

fn pieces() -> impl Strategy<Value = Vec<Vec<u8>>> {
    proptest::collection::vec(bytes_piece(), 0..4)
}

fn extension() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just(";a".to_string()),
        Just(";name=value".to_string()),
        Just(";q=\"quoted \\\" text\"".to_string()),
        Just(" ;a=b;c".to_string()),
    ]
}

fn h1_body() -> impl Strategy<Value = H1Body> {
    prop_oneof![
        pieces().prop_map(H1Body::Length),
        (
            proptest::collection::vec((bytes_piece(), extension()), 0..4),
            proptest::collection::vec(
                prop_oneof![Just(("x-trailer", "1")), Just(("x-sum", "abc def"))],
                0..3
            ),
        )
            .prop_map(|(chunks, trailers)| H1Body::Chunked {
                chunks,
                trailers: trailers
                    .into_iter()
                    .map(|(n, v)| (n.to_string(), v.to_string()))
                    .collect(),
            }),
    ]
}

fn answer() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("length"),
        Just("chunked"),
        Just("close"),
        Just("204"),
        Just("304"),
        Just("early-hints"),
    ]
}

fn exchange(protocol: Protocol) -> BoxedStrategy<Exchange> {
    let with_body = prop_oneof![Just("POST"), Just("PUT"), Just("PATCH")];
    let without_body = prop_oneof![Just("GET"), Just("HEAD"), Just("DELETE")];
    let framing: BoxedStrategy<Framing> = match protocol {
        Protocol::Http1 => prop_oneof![
            (with_body, h1_body()).prop_map(|(m, body)| Framing::H1 {
                body,
                method: m.into()
            }),
            without_body.prop_map(|m| Framing::H1 {
                body: H1Body::None,
                method: m.into()
            }),
        ]
        .boxed(),
        Protocol::Http10 => prop_oneof![
            (with_body, pieces()).prop_map(|(m, body)| Framing::H10 {
                body,
                method: m.into()
            }),
            without_body.prop_map(|m| Framing::H10 {
                body: Vec::new(),
                method: m.into()
            }),
        ]
        .boxed(),
        Protocol::Http2 => (
            prop_oneof![
                3 => with_body.prop_map(|m| (m, true)),
                1 => without_body.prop_map(|m| (m, false)),
            ],
            pieces(),
            any::<bool>(),
            prop_oneof![
                Just(H2End::OnData),
                Just(H2End::EmptyData),
                Just(H2End::Trailers)
            ],
        )
            .prop_map(|((method, has_body), pieces, content_length, end)| {
                Framing::H2(H2Request {
                    method: method.into(),
                    path: String::new(),
                    headers: Vec::new(),
                    pieces: if has_body { pieces } else { Vec::new() },
                    content_length,
                    end,
                })
            })
            .boxed(),
    };
    (framing, answer())
        .prop_map(|(framing, answer)| Exchange { framing, answer })
        .boxed()
}

/// A client: one connection's worth of exchanges (HTTP/1.0 opens one per request).
fn client() -> impl Strategy<Value = (Protocol, Vec<Exchange>)> {
    prop_oneof![
        Just(Protocol::Http1),
        Just(Protocol::Http10),
        Just(Protocol::Http2)
    ]
    .prop_flat_map(|p| (Just(p), proptest::collection::vec(exchange(p), 1..5)))
}

/// What a client sent and what came back.
struct Outcome {
    tag: String,
    method: String,
    content: Vec<u8>,
    answer: &'static str,
    got: Result<Answer, String>,
}

fn run_h1(addr: std::net::SocketAddr, exchanges: Vec<Exchange>) -> Vec<Outcome> {
    let mut conn: Option<std::io::BufReader<std::net::TcpStream>> = None;
    let mut out = Vec::new();
    for ex in exchanges {
        let t = tag("h");
        let (method, body, version) = match ex.framing {
            Framing::H1 { body, method } => (method, body, "HTTP/1.1"),
            Framing::H10 { body, method } => (method, H1Body::Length(body), "HTTP/1.0"),
            Framing::H2(_) => unreachable!(),
        };
        let req = H1Request {
            method: method.clone(),
            path: format!("/p/{t}"),
            version,
            headers: tagged(&t, ex.answer),
            body,
        };
        let stream = conn.get_or_insert_with(|| h1_connect(addr));
        let got = h1_exchange(stream, HOST, &req).map_err(|e| e.to_string());
        // The answer says whether the connection goes on.
        let keep = got.as_ref().is_ok_and(|a| {
            version == "HTTP/1.1"
                && !a
                    .header("connection")
                    .iter()
                    .any(|v| v.eq_ignore_ascii_case("close"))
        });
        if !keep {
            conn = None;
        }
        out.push(Outcome {
            tag: t,
            content: req.body.content(),
            method,
            answer: ex.answer,
            got,
        });
    }
    out
}

async fn run_h2(addr: std::net::SocketAddr, ca: String, exchanges: Vec<Exchange>) -> Vec<Outcome> {
    let mut send = h2_connect(addr, HOST, &ca).await;
    let mut out = Vec::new();
    for ex in exchanges {
        let Framing::H2(mut req) = ex.framing else {
            unreachable!()
        };
        let t = tag("s");
        req.path = format!("/p/{t}");
        req.headers = tagged(&t, ex.answer);
        // Bounded, so a lost answer fails the case instead of hanging it.
        let got = tokio::time::timeout(Duration::from_secs(10), h2_exchange(&mut send, HOST, &req))
            .await
            .map_err(|_| "no answer within 10 s".to_string())
            .and_then(|got| got.map_err(|e| e.to_string()));
        out.push(Outcome {
            tag: t,
            content: req.content(),
            method: req.method.clone(),
            answer: ex.answer,
            got,
        });
    }
    out
}

/// Each client got the answer to its own request, whole, in its framing.
fn check_outcome(o: &Outcome) -> Result<(), TestCaseError> {
    let got = o
        .got
        .as_ref()
        .map_err(|e| TestCaseError::fail(format!("{}: {e}", o.tag)))?;
    let status = match o.answer {
        "204" => 204,
        "304" => 304,
        _ => 200,
    };
    prop_assert_eq!(got.status, status, "{}", o.tag);
    prop_assert_eq!(got.tag(), o.tag.as_str(), "another request's answer");
    let want = if status != 200 || o.method == "HEAD" {
        String::new()
    } else {
        echo(&o.tag, &o.method, &o.content)
    };
    prop_assert_eq!(String::from_utf8_lossy(&got.body), want, "{}", o.tag);
    Ok(())
}

#[test]
fn every_client_gets_its_own_answer_whatever_the_framing() {
    let up = Strict::start(Duration::from_millis(100));
    let (gw, pki) = gateway(&up, "");
    let rt = runtime();
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(40);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/framing.proptest-regressions",
        ))),
        ..Config::default()
    });
    let scenario = proptest::collection::vec(client(), 1..5);
    let sent = std::cell::Cell::new(0);
    runner
        .run(&scenario, |clients| {
            let ca = pki.ca_pem();
            let outcomes: Vec<Outcome> = rt.block_on(async {
                let tasks: Vec<_> = clients
                    .into_iter()
                    .map(|(protocol, exchanges)| match protocol {
                        Protocol::Http2 => tokio::spawn(run_h2(gw.tls_addr, ca.clone(), exchanges)),
                        _ => {
                            let addr = gw.addr;
                            tokio::task::spawn_blocking(move || run_h1(addr, exchanges))
                        }
                    })
                    .collect();
                let mut all = Vec::new();
                for t in tasks {
                    all.extend(t.await.unwrap());
                }
                all
            });
            for o in &outcomes {
                check_outcome(o)?;
            }
            // Bytes written after a request arrive right behind it.
            std::thread::sleep(Duration::from_millis(20));
            let log = up.take();
            prop_assert_eq!(log.violations, Vec::<String>::new());
            prop_assert_eq!(log.truncated, Vec::<String>::new());
            prop_assert_eq!(log.requests.len(), outcomes.len());
            for o in &outcomes {
                let seen: Vec<_> = log.requests.iter().filter(|r| r.tag() == o.tag).collect();
                prop_assert_eq!(seen.len(), 1, "{} reached the upstream once", o.tag);
                prop_assert_eq!(&seen[0].method, &o.method);
                prop_assert_eq!(&seen[0].body, &o.content);
            }
            sent.set(sent.get() + outcomes.len());
            Ok(())
        })
        .unwrap();
    // A stray byte written after a request would show up as a violation late.
    std::thread::sleep(Duration::from_millis(300));
    let log = up.take();
    assert_eq!(log.violations, Vec::<String>::new());
    let sent = sent.get();
    eprintln!("{cases} generated cases, {sent} requests");
    assert!(sent >= cases as usize, "{sent} requests in {cases} cases");
}

/// Sends `parts` on a fresh connection, a pause between them, and reads until
/// the gateway closes it.
fn raw_in_parts(addr: std::net::SocketAddr, parts: &[&[u8]]) -> String {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            std::thread::sleep(Duration::from_millis(100));
        }
        // The gateway may have answered and closed before the last parts.
        if s.write_all(part).is_err() {
            break;
        }
    }
    read_until_closed(&mut s)
}

#[test]
fn a_repeated_content_length_reaches_the_upstream_as_one_value() {
    let up = Strict::start(Duration::from_millis(10));
    let (gw, _pki) = gateway(&up, "");
    for (i, lengths) in [
        "Content-Length: 3, 3",
        "Content-Length: 3\r\nContent-Length: 3",
    ]
    .iter()
    .enumerate()
    {
        let raw = raw_exchange(
            gw.addr,
            format!(
                "POST /cl HTTP/1.1\r\nHost: {HOST}\r\nx-tag: cl{i}\r\n{lengths}\r\n\
                 Connection: close\r\n\r\nabc"
            )
            .as_bytes(),
        );
        assert!(raw.starts_with("HTTP/1.1 200 "), "{raw}");
        assert!(
            raw.ends_with(&echo(&format!("cl{i}"), "POST", b"abc")),
            "{raw}"
        );
    }
    let log = up.take();
    assert_eq!(log.violations, Vec::<String>::new());
    let lengths: Vec<Vec<&str>> = log
        .requests
        .iter()
        .map(|r| r.header("content-length"))
        .collect();
    assert_eq!(lengths, vec![vec!["3"], vec!["3"]]);
    // Differing values frame nothing: refused, with the policy.
    let raw = raw_exchange(
        gw.addr,
        format!("POST /cl HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 3, 4\r\n\r\nabcd").as_bytes(),
    );
    assert!(raw.starts_with("HTTP/1.1 400 "), "{raw}");
    assert_raw_default_headers(head_of(&raw));
    assert_eq!(up.take().requests.len(), 0);
}

/// A bare LF in a chunk extension and whitespace after a chunk size, which
/// Pingora's parser (httparse) takes and nginx and HAProxy refuse: the policy
/// `400`, whether the bad line came with the head or later in the body.
#[test]
fn chunk_lines_peers_refuse_get_the_policy_400() {
    let up = Strict::start(Duration::from_millis(10));
    let (gw, _pki) = gateway(&up, "");
    let head = format!(
        "POST /chunks HTTP/1.1\r\nHost: {HOST}\r\nx-tag: bad\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    let malformed = "secgw_requests_rejected_total{reason=\"malformed\"}";
    let refused_before = gw.metric(malformed).unwrap();
    let mut refused = 0;
    for bad in [
        &b"5;a\nb\r\nhello\r\n0\r\n\r\n"[..],
        b"5 \r\nhello\r\n0\r\n\r\n",
        b"5\t\r\nhello\r\n0\r\n\r\n",
        b"5;a=\"b\nc\"\r\nhello\r\n0\r\n\r\n",
        b"5\r\nhello\r\n0\r\nx-t: 1\n\r\n",
    ] {
        let good = b"3;ok=1\r\nabc\r\n";
        for parts in [
            vec![head.as_bytes(), bad],
            vec![head.as_bytes(), good, bad],
            vec![&[head.as_bytes(), good].concat()[..], bad],
        ] {
            let raw = raw_in_parts(gw.addr, &parts);
            let what = format!("{:?}", String::from_utf8_lossy(&parts.concat()));
            assert!(raw.starts_with("HTTP/1.1 400 "), "{what}: {raw}");
            assert_raw_default_headers(head_of(&raw));
            refused += 1;
        }
    }
    let log = up.take();
    assert_eq!(log.violations, Vec::<String>::new());
    assert_eq!(log.requests.len(), 0, "{:?}", log.requests);
    assert_eq!(gw.metric(malformed), Some(refused_before + refused as f64));
    // The same grammar, well formed, passes in any split.
    let body = b"3;ok=1;q=\"a b\"\r\nabc\r\n2 ;x\r\nde\r\n0\r\nx-t: 1\r\n\r\n";
    for split in [0, 5, 20, 30, body.len()] {
        let raw = raw_in_parts(
            gw.addr,
            &[
                head.replace("bad", "good")
                    .replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
                &body[..split],
                &body[split..],
            ],
        );
        assert!(raw.starts_with("HTTP/1.1 200 "), "split {split}: {raw}");
        assert!(raw.ends_with(&echo("good", "POST", b"abcde")), "{raw}");
    }
    assert_eq!(up.take().violations, Vec::<String>::new());
    // A head that takes two reads, the bad line in the second; then a good
    // chunked request and a bad one on one kept-alive connection, and a good one
    // with the next request right behind it in the same write.
    let bad = b"5 \r\nhello\r\n0\r\n\r\n";
    let raw = raw_in_parts(
        gw.addr,
        &[
            &head.as_bytes()[..30],
            &[&head.as_bytes()[30..], bad].concat(),
        ],
    );
    assert!(raw.starts_with("HTTP/1.1 400 "), "{raw}");
    let good = head.replace("bad", "kept");
    let raw = raw_in_parts(
        gw.addr,
        &[
            &[good.as_bytes(), b"3\r\nabc\r\n0\r\n\r\n"].concat(),
            &[head.as_bytes(), bad].concat(),
        ],
    );
    assert!(raw.starts_with("HTTP/1.1 200 "), "{raw}");
    assert_eq!(raw.matches("HTTP/1.1 400 ").count(), 1, "{raw}");
    let raw = raw_exchange(
        gw.addr,
        &[
            good.as_bytes(),
            b"3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
        ]
        .concat(),
    );
    assert!(raw.starts_with("HTTP/1.1 200 "), "{raw}");
    assert!(!raw.contains(" 400 "), "{raw}");
    let log = up.take();
    assert_eq!(log.violations, Vec::<String>::new());
    let tags: Vec<&str> = log.requests.iter().map(|r| r.tag()).collect();
    assert_eq!(tags, ["kept", "kept"]);
    // Pingora re-escapes a target with a space, which moves the body away from
    // where the head says it starts: it cannot be judged, so it is refused.
    let raw = raw_exchange(
        gw.addr,
        format!(
            "POST /a b HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n\
             3\r\nabc\r\n0\r\n\r\n"
        )
        .as_bytes(),
    );
    assert!(raw.starts_with("HTTP/1.1 400 "), "{raw}");
    // The same with the head's last CRLF in a later read, where the moved bytes
    // could line up with the body ("\r\n" + "4\r"... against "\r\n\r\n").
    let raw = raw_in_parts(
        gw.addr,
        &[
            format!("POST /a b HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n")
                .as_bytes(),
            b"\r\n4\r\n\r\n\r\n\r\n0\r\n\r\n",
        ],
    );
    assert!(raw.starts_with("HTTP/1.1 400 "), "{raw}");
    // A Host no vhost serves is still judged: its `421` would leave the body to
    // be drained by Pingora's lenient parser on a kept-alive connection.
    let raw = raw_exchange(
        gw.addr,
        b"POST / HTTP/1.1\r\nHost: nobody.test\r\nTransfer-Encoding: chunked\r\n\r\n\
          5;a\nb\r\nhello\r\n0\r\n\r\n",
    );
    assert!(raw.starts_with("HTTP/1.1 400 "), "{raw}");
    assert_eq!(up.take().requests.len(), 0);
}

#[test]
fn trace_is_answered_405_at_the_edge() {
    let up = Strict::start(Duration::from_millis(10));
    let (gw, pki) = gateway(&up, "");
    let raw = raw_exchange(
        gw.addr,
        format!("TRACE /x HTTP/1.1\r\nHost: {HOST}\r\nCookie: secret=1\r\n\r\n").as_bytes(),
    );
    assert!(raw.starts_with("HTTP/1.1 405 "), "{raw}");
    let head = head_of(&raw);
    assert_raw_default_headers(head);
    assert!(head.contains("\r\nAllow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS\r\n"));
    assert!(!raw.contains("secret"), "{raw}");
    let answer = runtime().block_on(async {
        let mut h2 = h2_connect(gw.tls_addr, HOST, &pki.ca_pem()).await;
        let req = H2Request {
            method: "TRACE".into(),
            path: "/x".into(),
            headers: tagged("trace", "length"),
            pieces: Vec::new(),
            content_length: false,
            end: H2End::OnData,
        };
        h2_exchange(&mut h2, HOST, &req).await.unwrap()
    });
    assert_eq!(answer.status, 405);
    assert_eq!(answer.header("x-frame-options"), vec!["DENY"]);
    assert_eq!(up.take().requests.len(), 0);
}
