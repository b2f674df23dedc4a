//! One access-log line per request, as JSON or in nginx's `combined` format,
//! from an [`Entry`]. Whatever the client sent (path, user agent, referer) is
//! escaped so that no request can end a line early, forge a field, or put raw
//! control or non-UTF-8 bytes in the log.
//!
//! Lines are written straight into one buffer, without `fmt` or intermediate
//! strings: the formatting runs on the request's thread, for every request.

use std::cell::Cell;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};

use crate::config::access_log::FIELDS;

/// What one line says of one request; absent values are left out of JSON and
/// are `-` in `combined`.
#[derive(Debug, Clone, Default)]
pub struct Entry<'a> {
    /// Milliseconds since the Unix epoch when the request's head arrived.
    pub time_ms: i64,
    pub vhost: &'a str,
    pub route: &'a str,
    /// Empty for a head the connection layer refused (no request line).
    pub method: &'a str,
    /// The path as normalized; raw bytes, as the request carried them.
    pub path: &'a [u8],
    /// `?` and the query when `log_query` is on, else empty.
    pub query: &'a [u8],
    /// `HTTP/1.1`, `HTTP/2.0`, as in a request line.
    pub version: &'a str,
    pub status: u16,
    pub bytes_sent: u64,
    pub duration_ms: f64,
    pub upstream_addr: Option<SocketAddr>,
    pub upstream_duration_ms: Option<f64>,
    /// `h1` or `h2`.
    pub protocol: &'a str,
    pub tls_version: Option<&'a str>,
    /// The client address as the gateway trusts it.
    pub client: Option<IpAddr>,
    pub user_agent: Option<&'a [u8]>,
    pub referer: Option<&'a [u8]>,
    /// Empty when the request has none (a refused head).
    pub request_id: &'a str,
    /// Why the gateway answered itself (`redirect`, `preflight`, `unknown_host` ...).
    pub reason: Option<&'a str>,
}

/// A set of [`FIELDS`], bit `i` for `FIELDS[i]`; 0 means all of them.
pub fn field_mask<'n>(names: impl IntoIterator<Item = &'n str>) -> u32 {
    names
        .into_iter()
        .filter_map(|n| FIELDS.iter().position(|f| *f == n))
        .fold(0, |mask, i| mask | 1 << i)
}

/// The JSON line with its newline, with the fields of `mask`.
pub fn json(e: &Entry, mask: u32) -> Vec<u8> {
    let client_bytes = e.path.len() + e.query.len() + text_len(e.user_agent) + text_len(e.referer);
    let mut out = Vec::with_capacity(384 + client_bytes + client_bytes / 2);
    for (i, key) in KEYS.iter().enumerate() {
        if mask != 0 && mask & (1 << i) == 0 {
            continue;
        }
        let at = out.len();
        // `,"name":`, or `{"name":` for the first field written.
        if at == 0 {
            out.push(b'{');
            out.extend_from_slice(&key[1..]);
        } else {
            out.extend_from_slice(key);
        }
        // By index: comparing names would cost more than the line.
        let written = match i {
            // time
            0 => {
                out.push(b'"');
                push_rfc3339(&mut out, e.time_ms);
                out.push(b'"');
                true
            }
            // vhost
            1 => push_json_text(&mut out, e.vhost.as_bytes()),
            // route
            2 => push_json_text(&mut out, e.route.as_bytes()),
            // method: a token (RFC 9110), nothing to escape
            3 if e.method.is_empty() => false,
            3 => push_quoted(&mut out, e.method.as_bytes()),
            // path
            4 if e.method.is_empty() => false,
            4 => push_json_parts(&mut out, [e.path, e.query]),
            // protocol
            5 => push_quoted(&mut out, e.protocol.as_bytes()),
            // status
            6 => push_int(&mut out, u64::from(e.status)),
            // bytes_sent
            7 => push_int(&mut out, e.bytes_sent),
            // duration_ms
            8 => push_ms(&mut out, e.duration_ms),
            // upstream_addr
            9 => e
                .upstream_addr
                .is_some_and(|a| push_in_quotes(&mut out, |out| push_socket_addr(out, a))),
            // upstream_duration_ms
            10 => e.upstream_duration_ms.is_some_and(|d| push_ms(&mut out, d)),
            // tls_version
            11 => e
                .tls_version
                .is_some_and(|t| push_quoted(&mut out, t.as_bytes())),
            // client
            12 => e
                .client
                .is_some_and(|ip| push_in_quotes(&mut out, |out| push_ip(out, ip))),
            // user_agent
            13 => e.user_agent.is_some_and(|v| push_json_text(&mut out, v)),
            // referer
            14 => e.referer.is_some_and(|v| push_json_text(&mut out, v)),
            // request_id
            // (a token of safe characters, or a UUID: request_id.rs)
            15 => !e.request_id.is_empty() && push_quoted(&mut out, e.request_id.as_bytes()),
            // reason
            _ => e
                .reason
                .is_some_and(|r| push_quoted(&mut out, r.as_bytes())),
        };
        if !written {
            out.truncate(at);
        }
    }
    if out.is_empty() {
        out.push(b'{');
    }
    out.extend_from_slice(b"}\n");
    out
}

/// nginx's `combined` line with its newline, escaped as nginx's
/// `escape=default` does (`"`, `\`, control and non-ASCII bytes as `\xHH`):
/// `$remote_addr - - [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"`.
pub fn combined(e: &Entry) -> Vec<u8> {
    let client_bytes = e.path.len() + e.query.len() + text_len(e.user_agent) + text_len(e.referer);
    let mut out = Vec::with_capacity(160 + client_bytes);
    match e.client {
        Some(ip) => push_ip(&mut out, ip),
        None => out.push(b'-'),
    }
    out.extend_from_slice(b" - - [");
    push_time_local(&mut out, e.time_ms);
    out.extend_from_slice(b"] \"");
    if e.method.is_empty() {
        // No request line was parsed: nginx writes `"-"` too.
        out.push(b'-');
    } else {
        push_nginx(&mut out, e.method.as_bytes());
        out.push(b' ');
        push_nginx(&mut out, e.path);
        push_nginx(&mut out, e.query);
        out.push(b' ');
        push_nginx(&mut out, e.version.as_bytes());
    }
    out.extend_from_slice(b"\" ");
    push_int(&mut out, u64::from(e.status));
    out.push(b' ');
    push_int(&mut out, e.bytes_sent);
    for value in [e.referer, e.user_agent] {
        out.extend_from_slice(b" \"");
        match value {
            Some(v) => push_nginx(&mut out, v),
            None => out.push(b'-'),
        }
        out.push(b'"');
    }
    out.push(b'\n');
    out
}

/// `,"name":` for each of [`FIELDS`], in order.
const KEYS: [&[u8]; 17] = [
    b",\"time\":",
    b",\"vhost\":",
    b",\"route\":",
    b",\"method\":",
    b",\"path\":",
    b",\"protocol\":",
    b",\"status\":",
    b",\"bytes_sent\":",
    b",\"duration_ms\":",
    b",\"upstream_addr\":",
    b",\"upstream_duration_ms\":",
    b",\"tls_version\":",
    b",\"client\":",
    b",\"user_agent\":",
    b",\"referer\":",
    b",\"request_id\":",
    b",\"reason\":",
];

/// A value that holds nothing to escape (a method, an id, a fixed word), quoted.
fn push_quoted(out: &mut Vec<u8>, text: &[u8]) -> bool {
    debug_assert!(text.iter().all(|&b| is_plain(b)), "{text:?}");
    push_in_quotes(out, |out| out.extend_from_slice(text))
}

/// A JSON string of what `write` puts out, which needs no escaping (digits, dots,
/// colons, hex: addresses, or plain text checked by the caller).
fn push_in_quotes(out: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) -> bool {
    out.push(b'"');
    write(out);
    out.push(b'"');
    true
}

fn text_len(value: Option<&[u8]>) -> usize {
    value.map_or(0, <[u8]>::len)
}

/// A JSON string of the bytes, lossless: valid UTF-8 as is, any other byte
/// as the text `\xHH` (and a backslash as `\\`, so that nothing is
/// ambiguous). Characters that split or disguise a line in the tools that
/// read logs (DEL, C1 controls, NEL, the Unicode line and paragraph
/// separators, bidi controls) are written as the `\xHH` of their bytes too;
/// the other controls take JSON's escapes.
fn push_json_text(out: &mut Vec<u8>, bytes: &[u8]) -> bool {
    push_json_parts(out, [bytes])
}

/// One JSON string of the parts, one after the other (a path and its query).
fn push_json_parts<const N: usize>(out: &mut Vec<u8>, parts: [&[u8]; N]) -> bool {
    out.push(b'"');
    for part in parts {
        let mut rest = part;
        while !rest.is_empty() {
            // Most bytes need nothing: copied a run at a time.
            let plain = rest
                .iter()
                .position(|&b| !is_plain(b))
                .unwrap_or(rest.len());
            out.extend_from_slice(&rest[..plain]);
            rest = &rest[plain..];
            if let Some(&b) = rest.first() {
                rest = &rest[push_special(out, rest, b)..];
            }
        }
    }
    out.push(b'"');
    true
}

/// Printable ASCII but `"` and `\`: the same in the log as in the request.
fn is_plain(b: u8) -> bool {
    (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\'
}

/// Writes the character or byte `rest` starts with (its first byte `b`, not
/// plain); returns how many bytes it took.
fn push_special(out: &mut Vec<u8>, rest: &[u8], b: u8) -> usize {
    match b {
        b'"' => out.extend_from_slice(b"\\\""),
        // The text `\\`, as a JSON string.
        b'\\' => out.extend_from_slice(b"\\\\\\\\"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        0x08 => out.extend_from_slice(b"\\b"),
        0x0c => out.extend_from_slice(b"\\f"),
        0..0x20 => {
            out.extend_from_slice(b"\\u00");
            push_hex(out, b, HEX_LOWER);
        }
        0x7f => push_escaped_byte(out, b),
        _ => {
            // A character of 2 to 4 bytes, or a byte that starts none.
            let len = match b {
                0xc2..=0xdf => 2,
                0xe0..=0xef => 3,
                0xf0..=0xf4 => 4,
                _ => 1,
            };
            let c = rest
                .get(..len)
                .and_then(|bytes| std::str::from_utf8(bytes).ok())
                .and_then(|text| text.chars().next());
            match c {
                Some(c) if !disguises(c) => out.extend_from_slice(&rest[..len]),
                Some(_) => rest[..len].iter().for_each(|&b| push_escaped_byte(out, b)),
                None => {
                    push_escaped_byte(out, b);
                    return 1;
                }
            }
            return len;
        }
    }
    1
}

/// The text `\xHH` inside a JSON string: its backslash escaped.
fn push_escaped_byte(out: &mut Vec<u8>, b: u8) {
    out.extend_from_slice(b"\\\\x");
    push_hex(out, b, HEX_UPPER);
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";
const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";

fn push_hex(out: &mut Vec<u8>, b: u8, digits: &[u8; 16]) {
    out.push(digits[usize::from(b >> 4)]);
    out.push(digits[usize::from(b & 15)]);
}

/// DEL and the C1 controls (NEL among them), the line and paragraph
/// separators, and the bidirectional formatting characters.
fn disguises(c: char) -> bool {
    matches!(c,
        '\u{7f}'..='\u{9f}'
        | '\u{200e}' | '\u{200f}'
        | '\u{2028}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}'
        | '\u{061c}')
}

/// nginx's `escape=default`: `"`, `\`, bytes below 0x20 and from 0x7F as `\xHH`.
fn push_nginx(out: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        if b == b'"' || b == b'\\' || !(0x20..0x7F).contains(&b) {
            out.extend_from_slice(b"\\x");
            push_hex(out, b, HEX_UPPER);
        } else {
            out.push(b);
        }
    }
}

fn push_int(out: &mut Vec<u8>, n: u64) -> bool {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    true
}

/// Milliseconds with three decimals (microseconds), as a JSON number.
fn push_ms(out: &mut Vec<u8>, ms: f64) -> bool {
    let us = (ms * 1000.0).round().max(0.0) as u64;
    push_int(out, us / 1000);
    out.push(b'.');
    let frac = us % 1000;
    out.extend_from_slice(&[
        b'0' + (frac / 100) as u8,
        b'0' + (frac / 10 % 10) as u8,
        b'0' + (frac % 10) as u8,
    ]);
    true
}

/// Dotted decimal by hand (`fmt` costs about 1,000 instructions an address);
/// IPv6 through `fmt`, into the buffer.
fn push_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                push_int(out, u64::from(octet));
            }
        }
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

fn push_socket_addr(out: &mut Vec<u8>, addr: SocketAddr) {
    match addr.ip() {
        IpAddr::V6(_) => {
            out.push(b'[');
            push_ip(out, addr.ip());
            out.push(b']');
        }
        ip => push_ip(out, ip),
    }
    out.push(b':');
    push_int(out, u64::from(addr.port()));
}

/// The second's text of both formats, formatted once per second per thread.
#[derive(Clone, Copy)]
struct Second {
    at: i64,
    /// `2026-12-07T16:16:49`
    rfc3339: [u8; 19],
    /// `07/Dec/2026:16:16:49 +0000`
    local: [u8; 26],
}

thread_local! {
    static SECOND: Cell<Option<Second>> = const { Cell::new(None) };
}

fn second(ms: i64) -> Second {
    let at = ms.div_euclid(1000);
    SECOND.with(|cell| match cell.get() {
        Some(s) if s.at == at => s,
        _ => {
            let t = jiff::Timestamp::from_second(at).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
            let mut s = Second {
                at,
                rfc3339: [b'0'; 19],
                local: [b'0'; 26],
            };
            let rfc = t.strftime("%Y-%m-%dT%H:%M:%S").to_string();
            let local = t.strftime("%d/%b/%Y:%H:%M:%S +0000").to_string();
            // Fixed widths for years 1000 to 9999; other years are not logged times.
            if rfc.len() == 19 && local.len() == 26 {
                s.rfc3339.copy_from_slice(rfc.as_bytes());
                s.local.copy_from_slice(local.as_bytes());
            }
            cell.set(Some(s));
            s
        }
    })
}

/// RFC 3339 in UTC, with milliseconds.
fn push_rfc3339(out: &mut Vec<u8>, ms: i64) {
    out.extend_from_slice(&second(ms).rfc3339);
    let milli = ms.rem_euclid(1000) as u16;
    out.extend_from_slice(&[
        b'.',
        b'0' + (milli / 100) as u8,
        b'0' + (milli / 10 % 10) as u8,
        b'0' + (milli % 10) as u8,
        b'Z',
    ]);
}

/// nginx's `$time_local`, in UTC (the gateway's processes run in UTC).
fn push_time_local(out: &mut Vec<u8>, ms: i64) {
    out.extend_from_slice(&second(ms).local);
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use serde_json::Value;

    use super::*;

    fn text(line: Vec<u8>) -> String {
        String::from_utf8(line).unwrap()
    }

    fn json_text(e: &Entry, names: &[&str]) -> String {
        text(json(e, field_mask(names.iter().copied())))
    }

    fn entry<'a>(path: &'a [u8], ua: &'a [u8]) -> Entry<'a> {
        Entry {
            time_ms: 1_796_655_600_123,
            vhost: "shop",
            route: "api",
            method: "GET",
            path,
            query: b"",
            version: "HTTP/1.1",
            status: 200,
            bytes_sent: 612,
            duration_ms: 1.2345,
            upstream_addr: Some("10.0.0.1:8080".parse().unwrap()),
            upstream_duration_ms: Some(0.9876),
            protocol: "h1",
            tls_version: Some("TLSv1.3"),
            client: Some("203.0.113.7".parse().unwrap()),
            user_agent: Some(ua),
            referer: None,
            request_id: "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
            reason: None,
        }
    }

    #[test]
    fn a_combined_line_is_nginxs_byte_for_byte() {
        let e = entry(b"/a?b=1", b"curl/8.5.0");
        assert_eq!(
            text(combined(&e)),
            "203.0.113.7 - - [07/Dec/2026:15:00:00 +0000] \"GET /a?b=1 HTTP/1.1\" 200 612 \"-\" \"curl/8.5.0\"\n"
        );
        let e = entry(b"/\"x\\y\n", b"ua\x1b[31m\xff");
        assert_eq!(
            text(combined(&e)),
            "203.0.113.7 - - [07/Dec/2026:15:00:00 +0000] \"GET /\\x22x\\x5Cy\\x0A HTTP/1.1\" 200 612 \"-\" \"ua\\x1B[31m\\xFF\"\n"
        );
    }

    #[test]
    fn each_key_is_its_fields_name() {
        let keys: Vec<String> = KEYS.iter().map(|k| text(k.to_vec())).collect();
        let names: Vec<String> = FIELDS.iter().map(|f| format!(",\"{f}\":")).collect();
        assert_eq!(keys, names);
    }

    #[test]
    fn a_refused_head_has_no_request_line_nor_id() {
        let e = Entry {
            method: "",
            path: b"",
            version: "",
            request_id: "",
            reason: Some("malformed_head"),
            ..entry(b"", b"")
        };
        assert!(
            text(combined(&e)).contains("] \"-\" 200 612 "),
            "{}",
            text(combined(&e))
        );
        let line = json_text(&e, &["method", "path", "request_id", "reason"]);
        assert_eq!(line, "{\"reason\":\"malformed_head\"}\n");
    }

    #[test]
    fn a_json_line_has_the_fields_asked_for_in_their_order() {
        let e = entry(b"/a", b"curl/8.5.0");
        assert_eq!(
            json_text(&e, &[]),
            "{\"time\":\"2026-12-07T15:00:00.123Z\",\"vhost\":\"shop\",\"route\":\"api\",\"method\":\"GET\",\
             \"path\":\"/a\",\"protocol\":\"h1\",\"status\":200,\"bytes_sent\":612,\"duration_ms\":1.235,\
             \"upstream_addr\":\"10.0.0.1:8080\",\"upstream_duration_ms\":0.988,\"tls_version\":\"TLSv1.3\",\
             \"client\":\"203.0.113.7\",\"user_agent\":\"curl/8.5.0\",\
             \"request_id\":\"0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b\"}\n"
        );
        assert_eq!(
            json_text(&e, &["status", "path"]),
            "{\"path\":\"/a\",\"status\":200}\n"
        );
    }

    proptest! {
        /// Whatever bytes a client sends, each format stays one line, and the
        /// JSON line gives back exactly what was sent.
        #[test]
        fn no_request_forges_or_splits_a_line(
            path in proptest::collection::vec(any::<u8>(), 0..64),
            ua in proptest::collection::vec(any::<u8>(), 0..64),
            referer in proptest::collection::vec(
                prop_oneof![
                    any::<char>(),
                    proptest::sample::select(vec!['\u{85}', '\u{9b}', '\u{2028}', '\u{2029}', '\u{202e}', '"', '\\']),
                ],
                0..32,
            ).prop_map(String::from_iter),
        ) {
            let e = Entry { referer: Some(referer.as_bytes()), ..entry(&path, &ua) };
            for line in [json_text(&e, &[]), text(combined(&e))] {
                let line = line.strip_suffix('\n').unwrap();
                // No control character, no line or paragraph separator, no
                // bidi control: one line, read as it is written.
                prop_assert!(line.chars().all(|c| c >= ' ' && !disguises(c)), "{line:?}");
            }
            let parsed: Value = serde_json::from_str(&json_text(&e, &[])).unwrap();
            prop_assert_eq!(unescape(parsed["path"].as_str().unwrap()), path.clone());
            prop_assert_eq!(unescape(parsed["user_agent"].as_str().unwrap()), ua.clone());
            prop_assert_eq!(unescape(parsed["referer"].as_str().unwrap()), referer.as_bytes());
            // combined: exactly two quoted fields after the request, none forged.
            let line = text(combined(&e));
            prop_assert_eq!(line.matches('"').count(), 6, "{}", line);
        }
    }

    /// The inverse of the JSON strings' escaping (after JSON's own).
    fn unescape(text: &str) -> Vec<u8> {
        let mut out = Vec::new();
        let mut rest = text;
        while let Some(i) = rest.find('\\') {
            out.extend_from_slice(&rest.as_bytes()[..i]);
            let after = &rest[i + 1..];
            if let Some(tail) = after.strip_prefix('\\') {
                out.push(b'\\');
                rest = tail;
            } else {
                out.push(u8::from_str_radix(&after[1..3], 16).unwrap());
                rest = &after[3..];
            }
        }
        out.extend_from_slice(rest.as_bytes());
        out
    }
}
