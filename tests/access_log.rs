//! Access logs and request ids on the real binary: both formats field by field,
//! lines no request can forge or split, ids taken, generated, forwarded and
//! returned, SIGUSR1 rotation, a full buffer that drops and counts without
//! holding requests, and the per-vhost and per-route overrides.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::tls::{gateway_with_tls, https_client};
use common::*;
use serde_json::Value;

/// The lines of a log file so far (none if it does not exist yet).
fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Waits until `path` holds `n` lines, and returns them.
fn wait_lines(path: &Path, n: usize) -> Vec<String> {
    eventually(&format!("{n} lines in {}", path.display()), || {
        lines(path).len() >= n
    });
    let all = lines(path);
    assert_eq!(all.len(), n, "{all:#?}");
    all
}

fn json_line(line: &str) -> serde_json::Map<String, Value> {
    match serde_json::from_str(line) {
        Ok(Value::Object(map)) => map,
        other => panic!("not a JSON object: {line:?} ({other:?})"),
    }
}

/// nginx's `combined`, as GoAccess's `COMBINED` and Logstash's
/// `COMBINEDAPACHELOG` read it.
fn combined_fields(line: &str) -> Vec<String> {
    let re = regex::Regex::new(
        r#"^(\S+) - - \[(\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000)\] "([^"]*)" (\d{3}) (\d+) "([^"]*)" "([^"]*)"$"#,
    )
    .unwrap();
    let caps = re
        .captures(line)
        .unwrap_or_else(|| panic!("not a combined line: {line:?}"));
    (1..=7).map(|i| caps[i].to_string()).collect()
}

/// gw.yaml with one vhost `app` for `app.test` in front of `up`, the top
/// level's `access_log: {ACCESS_LOG}` and `extra` top-level lines.
fn logging(up: &str, access_log: &str, extra: &str) -> String {
    format!(
        "listeners: [{{address: \"{{listen}}\"}}]\nadmin: {{address: \"{{admin}}\"}}\n{extra}\n\
         access_log: {{{access_log}}}\n\
         vhosts:\n  - name: app\n    hosts: [app.test]\n    upstreams: [\"{up}\"]\n"
    )
}

#[test]
fn json_lines_carry_each_field_over_http1_and_http2() {
    let up = Upstream::start("a");
    let rest = format!(
        "access_log: {{enabled: true, path: access.log}}\nvhosts:\n  - name: app\n    \
         hosts: [app.test]\n    upstreams: [\"{}\"]\n    routes:\n      - {{prefix: /api, name: api}}\n      \
         - {{prefix: /q, name: q, access_log: {{log_query: true}}}}\n",
        up.addr
    );
    let (gw, pki) = gateway_with_tls("app.test", &rest);
    let log = gw.dir.path().join("access.log");
    let before = jiff::Timestamp::now();

    let r = get(
        &gw,
        "app.test",
        "/api//x/../y?secret=1",
        &[
            ("User-Agent", "agent/1.0"),
            ("Referer", "https://ref.test/"),
        ],
    );
    assert_eq!(r.status, 200);
    let line = json_line(&wait_lines(&log, 1)[0]);
    let text = &lines(&log)[0];
    let at = |key: &str| text.find(&format!("\"{key}\":")).unwrap_or(usize::MAX);
    let mut keys: Vec<&str> = line.keys().map(String::as_str).collect();
    keys.sort_by_key(|k| at(k));
    // Every documented field but the two this request has no value for, in order.
    let documented = pingora_secgw::config::access_log::FIELDS;
    let absent = ["tls_version", "reason"];
    let expected: Vec<&str> = documented
        .iter()
        .copied()
        .filter(|f| !absent.contains(f))
        .collect();
    assert_eq!(keys, expected);
    let time: jiff::Timestamp = line["time"].as_str().unwrap().parse().unwrap();
    assert!(time.as_millisecond() >= before.as_millisecond());
    assert!(time <= jiff::Timestamp::now());
    assert_eq!(
        line["time"].as_str().unwrap().len(),
        "2026-12-07T16:00:00.123Z".len()
    );
    assert_eq!(line["vhost"], "app");
    assert_eq!(line["route"], "api");
    assert_eq!(line["method"], "GET");
    assert_eq!(line["path"], "/api/y", "normalized, query dropped");
    assert_eq!(line["protocol"], "h1");
    assert_eq!(line["status"], 200);
    assert_eq!(line["bytes_sent"], "hello from upstream a\n".len());
    assert_eq!(line["upstream_addr"], up.addr.to_string());
    let total = line["duration_ms"].as_f64().unwrap();
    let upstream = line["upstream_duration_ms"].as_f64().unwrap();
    assert!(0.0 < upstream && upstream <= total, "{upstream} {total}");
    assert_eq!(line["client"], "127.0.0.1");
    assert_eq!(line["user_agent"], "agent/1.0");
    assert_eq!(line["referer"], "https://ref.test/");
    assert_eq!(line["request_id"], r.one("x-request-id"));

    // HTTP/2 over TLS; the query kept where the route says so.
    let h2 = https_client(&pki.ca_pem(), true, &[("app.test", gw.tls_addr)]);
    let url = format!("https://app.test:{}/q/x?a=1&b=%22", gw.tls_addr.port());
    let r = reply(h2.get(url).send().unwrap());
    assert_eq!(r.status, 200);
    let line = json_line(&wait_lines(&log, 2)[1]);
    assert_eq!(line["route"], "q");
    assert_eq!(line["path"], "/q/x?a=1&b=%22");
    assert_eq!(line["protocol"], "h2");
    assert_eq!(line["tls_version"], "TLSv1.3");
    assert_eq!(line["request_id"], r.one("x-request-id"));

    // The gateway's own answers, with their reason: an unknown host, a refused method.
    let r = get(&gw, "other.test", "/", &[]);
    assert_eq!(r.status, 421);
    let line = json_line(&wait_lines(&log, 3)[2]);
    assert_eq!(line["vhost"], "_unmatched");
    assert_eq!(line["status"], 421);
    assert_eq!(line["reason"], "unknown_host");
    assert!(!line.contains_key("upstream_addr"));
    assert_eq!(line["request_id"], r.one("x-request-id"));
    let r = request(&gw, "TRACE", "app.test", "/api", &[]);
    assert_eq!(r.status, 405);
    let line = json_line(&wait_lines(&log, 4)[3]);
    assert_eq!(
        (&line["route"], &line["reason"]),
        (&"_vhost".into(), &"method_refused".into())
    );
}

#[test]
fn combined_lines_are_nginxs_format() {
    let up = Upstream::start("a");
    let gw = Gateway::start(&logging(
        &up.addr.to_string(),
        "enabled: true, format: combined, path: access.log",
        "",
    ));
    let log = gw.dir.path().join("access.log");
    let before = jiff::Timestamp::now();
    let r = get(
        &gw,
        "app.test",
        "/p?q=1",
        &[
            ("User-Agent", "agent/1.0 (x)"),
            ("Referer", "https://ref.test/a"),
        ],
    );
    let line = &wait_lines(&log, 1)[0];
    let f = combined_fields(line);
    assert_eq!(f[0], "127.0.0.1");
    assert_eq!(f[2], "GET /p HTTP/1.1");
    assert_eq!(f[3], r.status.to_string());
    assert_eq!(f[4], "22");
    assert_eq!(f[5], "https://ref.test/a");
    assert_eq!(f[6], "agent/1.0 (x)");
    let time = jiff::Timestamp::strptime("%d/%b/%Y:%H:%M:%S %z", &f[1]).unwrap();
    assert!(time.as_second() >= before.as_second() && time <= jiff::Timestamp::now());
    // Without a referer or user agent: `-`, as nginx writes them.
    raw_exchange(
        gw.addr,
        b"GET /n HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
    );
    let f = combined_fields(&wait_lines(&log, 2)[1]);
    assert_eq!((f[5].as_str(), f[6].as_str()), ("-", "-"));
}

/// Every byte in the path and in the user agent and referer, one request each,
/// and strings aimed at the formats, sent on raw sockets: every request has
/// exactly one line, and the line parses. For a request the gateway parsed (its
/// answer carries an id) the escaped text gives back exactly the bytes sent; a
/// request the connection layer refused as malformed has a line without them.
#[test]
fn no_request_can_forge_or_split_a_line() {
    let up = Upstream::start("a");
    let aimed: Vec<Vec<u8>> = vec![
        b"\" 200 0 \"-\" \"forged".to_vec(),
        b"a\\\"b\\\\".to_vec(),
        b"\t\x80\xff\xc3\xa9\xe2\x80\xa8".to_vec(),
        // NEL, PARAGRAPH SEPARATOR, RIGHT-TO-LEFT OVERRIDE, CSI: they split or
        // disguise lines in the tools that read logs.
        b"a\xc2\x85b\xe2\x80\xa9c\xe2\x80\xaed\xc2\x9b[2J".to_vec(),
        b"{\"time\":\"1970\"}".to_vec(),
        b"\\x22 \\n \\u0000 \\\\x41".to_vec(),
    ];
    // (path after `/x?`, user agent and referer)
    let mut cases: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for b in 0..=255u8 {
        cases.push((vec![b'a', b, b'z'], b"ua".to_vec()));
        cases.push((b"q".to_vec(), vec![b'a', b, b'z']));
    }
    for a in &aimed {
        cases.push((a.clone(), a.clone()));
    }
    for format in ["json", "combined"] {
        let gw = Gateway::start(&logging(
            &up.addr.to_string(),
            &format!("enabled: true, format: {format}, path: access.log, log_query: true"),
            "",
        ));
        let log = gw.dir.path().join("access.log");
        let mut answered = Vec::new();
        for (path, value) in &cases {
            let mut req = b"GET /x?".to_vec();
            req.extend_from_slice(path);
            req.extend_from_slice(b" HTTP/1.1\r\nHost: app.test\r\nUser-Agent: ");
            req.extend_from_slice(value);
            req.extend_from_slice(b"\r\nReferer: ");
            req.extend_from_slice(value);
            req.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
            let answer = raw_exchange(gw.addr, &req);
            let head = head_of(&answer).to_ascii_lowercase();
            let id = head
                .lines()
                .find_map(|l| l.strip_prefix("x-request-id: "))
                .map(str::to_string);
            if id.is_none() {
                assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
            }
            answered.push((id, path, value));
        }
        // The bytes most exposed get through to the log: quotes, backslashes,
        // obs-text, tabs.
        let parsed = answered.iter().filter(|(id, ..)| id.is_some()).count();
        assert!(parsed > 300, "{parsed}");
        let all = wait_lines(&log, answered.len());
        for (line, (id, path, value)) in all.iter().zip(&answered) {
            let disguising = |c: char| {
                c < ' '
                    || ('\u{7f}'..='\u{9f}').contains(&c)
                    || ('\u{2028}'..='\u{202e}').contains(&c)
            };
            assert!(!line.chars().any(disguising), "{line:?}");
            let Some(id) = id else {
                // Refused by the connection layer: a line without the request.
                if format == "json" {
                    let l = json_line(line);
                    assert_eq!(
                        (&l["status"], &l["reason"]),
                        (&400.into(), &"malformed_head".into())
                    );
                    assert!(
                        !l.contains_key("path") && !l.contains_key("user_agent"),
                        "{line}"
                    );
                } else {
                    assert_eq!(combined_fields(line)[2], "-", "{line}");
                }
                continue;
            };
            let (logged_id, logged_path, ua, referer) = if format == "json" {
                let l = json_line(line);
                let text = |k: &str| l[k].as_str().unwrap().to_string();
                (
                    text("request_id"),
                    text("path"),
                    text("user_agent"),
                    text("referer"),
                )
            } else {
                let f = combined_fields(line);
                let path = f[2]
                    .strip_prefix("GET ")
                    .and_then(|p| p.strip_suffix(" HTTP/1.1"))
                    .unwrap()
                    .to_string();
                (id.clone(), path, f[6].clone(), f[5].clone())
            };
            assert_eq!(&logged_id, id, "{line}");
            let unescape = if format == "json" {
                unescape_lossless
            } else {
                unescape_nginx
            };
            assert_eq!(unescape(&logged_path), as_parsed(path), "{line}");
            assert_eq!(unescape(&ua), **value, "{line}");
            assert_eq!(unescape(&referer), **value, "{line}");
        }
    }
}

/// `/x?` and the query as the gateway holds it: Pingora percent-encodes the
/// controls, space, `"` and DEL it accepts in a target, and drops a fragment.
fn as_parsed(query: &[u8]) -> Vec<u8> {
    let mut out = b"/x?".to_vec();
    for &b in query.iter().take_while(|b| **b != b'#') {
        if b <= 0x20 || b == b'"' || b == 0x7f {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        } else {
            out.push(b);
        }
    }
    out
}

/// The JSON fields' escaping: `\\` for a backslash, `\xHH` for a byte that is no UTF-8.
fn unescape_lossless(text: &str) -> Vec<u8> {
    unescape(text, true)
}

/// nginx's: `\xHH` for `"`, `\`, control and non-ASCII bytes.
fn unescape_nginx(text: &str) -> Vec<u8> {
    unescape(text, false)
}

fn unescape(text: &str, double_backslash: bool) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            if double_backslash && bytes[i + 1] == b'\\' {
                out.push(b'\\');
                i += 2;
                continue;
            }
            assert_eq!(bytes[i + 1], b'x', "{text}");
            let hex = std::str::from_utf8(&bytes[i + 2..i + 4]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

#[test]
fn request_ids_are_taken_from_trusted_peers_else_generated_and_travel_both_ways() {
    let up = Upstream::start("a");
    let dead = free_port();
    let yaml = |trusted: &str| {
        format!(
            "listeners: [{{address: \"{{listen}}\"}}]\ntrusted_proxies: {trusted}\n\
             access_log: {{enabled: true, path: access.log, fields: [status, request_id, reason]}}\n\
             vhosts:\n  - name: app\n    hosts: [app.test]\n    upstreams: [\"{}\"]\n    \
             routes: [{{prefix: /dead, name: dead, upstreams: [\"127.0.0.1:{}\"]}}]\n",
            up.addr, dead
        )
    };
    let is_v7 = |id: &str| uuid::Uuid::parse_str(id).is_ok_and(|u| u.get_version_num() == 7);

    let trusting = Gateway::start(&yaml("[\"127.0.0.1/32\"]"));
    let log = trusting.dir.path().join("access.log");
    let r = get(
        &trusting,
        "app.test",
        "/",
        &[("X-Request-Id", "edge-1:a.b_c")],
    );
    assert_eq!(r.all("x-request-id"), ["edge-1:a.b_c"]);
    assert_eq!(up.last_request().header("x-request-id"), ["edge-1:a.b_c"]);
    assert_eq!(
        json_line(&wait_lines(&log, 1)[0])["request_id"],
        "edge-1:a.b_c"
    );
    // Not a token, too long, or given twice: a new one.
    let long = "a".repeat(65);
    for given in [vec!["a b"], vec![long.as_str()], vec!["one", "two"]] {
        let headers: Vec<_> = given.iter().map(|g| ("X-Request-Id", *g)).collect();
        let r = get(&trusting, "app.test", "/", &headers);
        let id = r.one("x-request-id").to_string();
        assert!(is_v7(&id), "{given:?} -> {id}");
        assert_eq!(up.last_request().header("x-request-id"), [id.as_str()]);
    }
    // An upstream's own X-Request-Id does not reach the client.
    let r = get(
        &trusting,
        "app.test",
        "/",
        &[("X-Echo-Set-Header", "X-Request-Id: upstream-made")],
    );
    assert!(is_v7(r.one("x-request-id")));

    // From an untrusted peer, the header is replaced.
    let untrusting = Gateway::start(&yaml("[]"));
    let log = untrusting.dir.path().join("access.log");
    let r = get(&untrusting, "app.test", "/", &[("X-Request-Id", "forged")]);
    let id = r.one("x-request-id").to_string();
    assert!(is_v7(&id));
    assert_eq!(up.last_request().header("x-request-id"), [id.as_str()]);
    // A failed upstream: the id is in the error line and the access line.
    let r = get(&untrusting, "app.test", "/dead", &[]);
    assert_eq!(r.status, 502);
    let id = r.one("x-request-id").to_string();
    let lines = wait_lines(&log, 2);
    let line = json_line(&lines[1]);
    assert_eq!(line["request_id"], id.as_str());
    assert_eq!(line["reason"], "connect_refused");
    assert_eq!(line["status"], 502);
    let errors: Vec<String> = untrusting
        .log()
        .lines()
        .filter(|l| l.contains("ERROR") && l.contains("status=502"))
        .map(str::to_string)
        .collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].contains(&format!("request_id={id} ")),
        "{}",
        errors[0]
    );
}

#[test]
fn sigusr1_reopens_the_file_after_rotation() {
    let up = Upstream::start("a");
    let gw = Gateway::start_with_files(
        &logging(
            &up.addr.to_string(),
            "enabled: true, path: logs/access.log, fields: [request_id]",
            "",
        ),
        &[("logs/README", "rotated by logrotate\n")],
    );
    let log = gw.dir.path().join("logs/access.log");
    let rotated = gw.dir.path().join("logs/access.log.1");
    let id = |r: Reply| r.one("x-request-id").to_string();
    let first = id(get(&gw, "app.test", "/", &[]));
    wait_lines(&log, 1);
    std::fs::rename(&log, &rotated).unwrap();
    // Until the signal, lines follow the file to its new name.
    let second = id(get(&gw, "app.test", "/", &[]));
    wait_lines(&rotated, 2);
    gw.signal(libc::SIGUSR1);
    eventually("the reopen is logged", || {
        gw.log().contains("access.log: reopened")
    });
    let third = id(get(&gw, "app.test", "/", &[]));
    let ids = |path: &Path| -> Vec<String> {
        lines(path)
            .iter()
            .map(|l| json_line(l)["request_id"].as_str().unwrap().to_string())
            .collect()
    };
    wait_lines(&log, 1);
    assert_eq!(ids(&rotated), [first, second]);
    assert_eq!(ids(&log), [third]);
}

/// The writer stuck on a pipe nobody reads: requests keep being answered, the
/// lines beyond the buffer are dropped and counted, and once the pipe is read
/// every request is accounted for, written or dropped.
#[test]
fn a_full_buffer_drops_and_counts_lines_without_holding_requests() {
    let (written, dropped) = flood_a_stalled_log(4, 1500, "");
    assert!(dropped > 0, "the buffer never filled");
    assert!(
        written >= 4096,
        "{written} lines written: the buffer holds 4,096"
    );
}

/// Large lines: the buffer is bounded in bytes too (4 MiB), not only in lines.
#[test]
fn a_full_buffer_holds_a_bounded_number_of_bytes() {
    let ua = "u".repeat(32 * 1024);
    let (written, dropped) = flood_a_stalled_log(1, 400, &ua);
    // 4 MiB of 33 KiB lines, plus what the pipe and the writer hold.
    assert!(
        (100..=140).contains(&written),
        "{written} written, {dropped} dropped"
    );
}

/// `clients` connections each send `each` requests (with `user_agent`) to a
/// gateway logging to a stdout nobody reads; every answer must arrive. Then the
/// pipe is read: (lines written, lines dropped), which add up to the requests.
fn flood_a_stalled_log(clients: usize, each: usize, user_agent: &str) -> (usize, usize) {
    let up = Upstream::start("a");
    let (gw, stdout) = Gateway::start_piped(&logging(
        &up.addr.to_string(),
        "enabled: true, path: stdout",
        "",
    ));
    let addr = gw.addr;
    let request = format!("GET / HTTP/1.1\r\nHost: app.test\r\nUser-Agent: {user_agent}\r\n\r\n");
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let request = request.clone();
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let mut reader = BufReader::new(s.try_clone().unwrap());
                for _ in 0..each {
                    s.write_all(request.as_bytes()).unwrap();
                    // Each answer arrives, however full the log's buffer is.
                    let mut status = String::new();
                    reader.read_line(&mut status).unwrap();
                    assert_eq!(status, "HTTP/1.1 200 OK\r\n");
                    let mut length = 0;
                    loop {
                        let mut h = String::new();
                        reader.read_line(&mut h).unwrap();
                        if h == "\r\n" {
                            break;
                        }
                        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length: ") {
                            length = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; length];
                    std::io::Read::read_exact(&mut reader, &mut body).unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let total = clients * each;
    let written = Arc::new(AtomicUsize::new(0));
    let counter = written.clone();
    // Reads until the gateway is gone.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            assert_eq!(json_line(&line.unwrap())["status"], 200);
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    let dropped = || gw.metric("secgw_access_log_dropped_total").unwrap() as usize;
    let accounted = || written.load(Ordering::SeqCst) + dropped();
    eventually("every request written or dropped", || accounted() >= total);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(accounted(), total, "no line written twice");
    (written.load(Ordering::SeqCst), dropped())
}

#[test]
fn vhosts_and_routes_override_the_top_level_key_by_key() {
    let up = Upstream::start("a");
    let gw = Gateway::start(&format!(
        "listeners: [{{address: \"{{listen}}\"}}]\n\
         access_log: {{enabled: false, format: combined, path: top.log}}\n\
         vhosts:\n  - name: quiet\n    hosts: [quiet.test]\n    upstreams: [\"{up}\"]\n    \
         routes: [{{prefix: /loud, name: loud, access_log: {{enabled: true}}}}]\n  \
         - name: app\n    hosts: [app.test]\n    upstreams: [\"{up}\"]\n    \
         access_log: {{enabled: true, path: app.log}}\n    routes:\n      \
         - {{prefix: /json, name: json, access_log: {{format: json, fields: [route, status]}}}}\n      \
         - {{prefix: /off, name: silent, access_log: {{enabled: false}}}}\n",
        up = up.addr
    ));
    let dir = gw.dir.path();
    get(&gw, "quiet.test", "/", &[]);
    get(&gw, "quiet.test", "/loud", &[]);
    get(&gw, "app.test", "/off", &[]);
    get(&gw, "app.test", "/", &[]);
    get(&gw, "app.test", "/json", &[]);
    // The quiet vhost logs only its loud route, in the top level's file and format.
    let top = wait_lines(&dir.join("top.log"), 1);
    assert_eq!(combined_fields(&top[0])[2], "GET /loud HTTP/1.1");
    // The app vhost: its own file, combined by default, JSON on one route; the
    // `off` route, requested first, wrote nothing.
    let app = wait_lines(&dir.join("app.log"), 2);
    assert_eq!(combined_fields(&app[0])[2], "GET / HTTP/1.1");
    assert_eq!(app[1], r#"{"route":"json","status":200}"#);
}

#[test]
fn log_paths_are_checked_at_load_with_their_key() {
    let vhost = |route_log: &str| {
        format!(
            "listeners: [{{address: \"{{listen}}\"}}]\nvhosts:\n  - name: app\n    hosts: [app.test]\n    \
             upstreams: [\"127.0.0.1:1\"]\n    routes: [{{prefix: /, access_log: {route_log}}}]\n"
        )
    };
    let (code, out, _dir) = check_config(&vhost("{enabled: true, path: nowhere/a.log}"), &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("vhosts[0].routes[0].access_log.path"), "{out}");
    assert!(out.contains("its folder"), "{out}");
    let (code, out, _dir) = check_config(&vhost("{fields: [status, colour]}"), &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("unknown field `colour`"), "{out}");
    // Lines appended to gw.yaml would break the next reload.
    let (code, out, _dir) = check_config(&vhost("{enabled: true, path: ./gw.yaml}"), &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("vhosts[0].routes[0].access_log.path"), "{out}");
    assert!(
        out.contains("one of the configuration's own files"),
        "{out}"
    );
    // A FIFO where the file should be.
    let up = Upstream::start("a");
    let gw = Gateway::start(&format!(
        "listeners: [{{address: \"{{listen}}\"}}]\nvhosts:\n  - name: app\n    hosts: [app.test]\n    upstreams: [\"{}\"]\n",
        up.addr
    ));
    let fifo = gw.dir.path().join("fifo.log");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid C string; mkfifo only creates the node.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let conf = gw.dir.path().join("gw.yaml");
    let text = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(
        &conf,
        text.replace(
            "vhosts:",
            "access_log: {enabled: true, path: fifo.log}\nvhosts:",
        ),
    )
    .unwrap();
    let (code, out) = test_flag(&conf);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("access_log.path"), "{out}");
    assert!(out.contains("not a regular file"), "{out}");
}

/// Heads the connection layer refuses before a request exists (malformed, too
/// slow) are the gateway's own answers too: logged under `_unmatched`, with
/// their reason, and without method, path or id.
#[test]
fn refused_heads_are_logged_without_a_request() {
    for format in ["json", "combined"] {
        let gw = Gateway::start(&logging(
            "127.0.0.1:1",
            &format!("enabled: true, format: {format}, path: access.log"),
            "limits: {client_header_timeout_ms: 300}",
        ));
        let log = gw.dir.path().join("access.log");
        let bad = raw_exchange(
            gw.addr,
            b"GET / HTTP/1.1\r\nHost: app.test\r\nBad Header: x\r\n\r\n",
        );
        assert!(bad.starts_with("HTTP/1.1 400 "), "{bad}");
        let slow = raw_exchange(gw.addr, b"GET / HTTP/1.1\r\nHost: app.te");
        assert!(slow.starts_with("HTTP/1.1 408 "), "{slow}");
        let body_len = |answer: &str| answer.split_once("\r\n\r\n").unwrap().1.len();
        let all = wait_lines(&log, 2);
        for (line, (status, reason, answer)) in all.iter().zip([
            (400, "malformed_head", &bad),
            (408, "header_timeout", &slow),
        ]) {
            if format == "json" {
                let l = json_line(line);
                let mut keys: Vec<&str> = l.keys().map(String::as_str).collect();
                keys.sort_unstable();
                assert_eq!(
                    keys,
                    [
                        "bytes_sent",
                        "client",
                        "duration_ms",
                        "protocol",
                        "reason",
                        "route",
                        "status",
                        "time",
                        "vhost"
                    ],
                    "{line}"
                );
                assert_eq!(
                    (&l["vhost"], &l["route"]),
                    (&"_unmatched".into(), &"_vhost".into())
                );
                assert_eq!(
                    (&l["status"], &l["reason"]),
                    (&status.into(), &reason.into())
                );
                assert_eq!(l["bytes_sent"], body_len(answer));
                assert_eq!(l["client"], "127.0.0.1");
            } else {
                let f = combined_fields(line);
                assert_eq!(f[0], "127.0.0.1");
                assert_eq!(f[2], "-");
                assert_eq!(f[3], status.to_string());
                assert_eq!(f[4], body_len(answer).to_string());
            }
        }
    }
}

/// A log beside gw.yaml, written without pause: its writes do not wake the
/// configuration watcher, and an edit of gw.yaml is still served promptly
/// (a watcher that waited for quiet would wait for ever under load).
#[test]
fn a_log_beside_gw_yaml_does_not_hold_back_reloads() {
    let up = Upstream::start("a");
    let gw = Gateway::start(&logging(
        &up.addr.to_string(),
        "enabled: true, path: access.log",
        "",
    ));
    let conf = gw.dir.path().join("gw.yaml");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (stop, url) = (stop.clone(), gw.url("/"));
            std::thread::spawn(move || {
                let c = client();
                let mut sent = 0;
                while !stop.load(Ordering::SeqCst) {
                    let r = c.get(&url).header("Host", "app.test").send().unwrap();
                    assert_eq!(r.status(), 200);
                    sent += 1;
                }
                sent
            })
        })
        .collect();
    let successes = "secgw_config_reloads_total{result=\"success\"}";
    eventually("lines are being written", || {
        lines(&gw.dir.path().join("access.log")).len() > 50
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        gw.metric(successes).unwrap_or(0.0),
        0.0,
        "the log's writes reloaded"
    );
    let text = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(
        &conf,
        text.replace("hosts: [app.test]", "hosts: [app.test, new.test]"),
    )
    .unwrap();
    eventually("the edit is served under load", || {
        get(&gw, "new.test", "/", &[]).status == 200
    });
    stop.store(true, Ordering::SeqCst);
    let sent: usize = load.into_iter().map(|t| t.join().unwrap()).sum();
    assert!(sent > 50, "{sent}");
    assert_eq!(gw.metric(successes), Some(1.0));
}

/// Stopping under load: every request a client got its answer to has its line
/// in the file when the process has exited. (The writer flushes after each
/// batch, so the wait for the writers at exit rarely has lines left to save;
/// this holds the whole stop path to the promise either way.)
#[test]
fn lines_are_flushed_when_the_process_stops() {
    let up = Upstream::start("a");
    let mut gw = Gateway::start(&logging(
        &up.addr.to_string(),
        "enabled: true, path: access.log, fields: [request_id]",
        "shutdown_drain_seconds: 0\ngrace_period_seconds: 1\ngraceful_shutdown_timeout_seconds: 1",
    ));
    let answered = Arc::new(AtomicUsize::new(0));
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (answered, url) = (answered.clone(), gw.url("/"));
            std::thread::spawn(move || {
                let c = client();
                while let Ok(r) = c.get(&url).header("Host", "app.test").send() {
                    if r.status() == 200 {
                        answered.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    eventually("requests are answered", || {
        answered.load(Ordering::SeqCst) > 200
    });
    gw.signal(libc::SIGTERM);
    assert!(gw.wait_exit(Duration::from_secs(30)).success());
    for t in load {
        t.join().unwrap();
    }
    let written = lines(&gw.dir.path().join("access.log")).len();
    let answered = answered.load(Ordering::SeqCst);
    assert!(
        written >= answered,
        "{written} lines for {answered} answers"
    );
}
