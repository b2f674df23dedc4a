//! One access-log line per request, as JSON or in nginx's `combined` format,
//! from an [`Entry`]. Whatever the client sent (path, user agent, referer, a
//! forwarded address) is escaped so that no request can end a line early, forge
//! a field, or put raw control or non-UTF-8 bytes in the log.

use std::fmt::Write as _;

use serde_json::Value;

use crate::config::access_log::FIELDS;

/// What one line says of one request; absent values are left out of JSON and
/// are `-` in `combined`.
#[derive(Debug, Clone, Default)]
pub struct Entry<'a> {
    /// Milliseconds since the Unix epoch when the request's head arrived.
    pub time_ms: i64,
    pub vhost: &'a str,
    pub route: &'a str,
    pub method: &'a str,
    /// The path as normalized, with the query only when `log_query` is on; raw
    /// bytes, as the request carried them.
    pub path: &'a [u8],
    /// `HTTP/1.1`, `HTTP/2.0`, as in a request line.
    pub version: &'a str,
    pub status: u16,
    pub bytes_sent: u64,
    pub duration_ms: f64,
    pub upstream_addr: Option<&'a str>,
    pub upstream_duration_ms: Option<f64>,
    /// `h1` or `h2`.
    pub protocol: &'a str,
    pub tls_version: Option<&'a str>,
    /// The client address as the gateway trusts it.
    pub client: &'a str,
    pub user_agent: Option<&'a [u8]>,
    pub referer: Option<&'a [u8]>,
    pub request_id: &'a str,
    /// Why the gateway answered itself (`redirect`, `preflight`, `421` ...).
    pub reason: Option<&'a str>,
}

/// The JSON line (without its newline) with `fields` (empty: all of them).
pub fn json(e: &Entry, fields: &[&str]) -> String {
    let mut out = String::with_capacity(512);
    let wanted = |name: &str| fields.is_empty() || fields.contains(&name);
    let text = |bytes: &[u8]| Value::String(lossless(bytes));
    for name in FIELDS.iter().copied().filter(|n| wanted(n)) {
        let value = match name {
            "time" => Value::String(rfc3339(e.time_ms)),
            "vhost" => e.vhost.into(),
            "route" => e.route.into(),
            // Empty for a head the connection layer refused: left out.
            "method" if e.method.is_empty() => Value::Null,
            "method" => text(e.method.as_bytes()),
            "path" if e.method.is_empty() => Value::Null,
            "path" => text(e.path),
            "protocol" => e.protocol.into(),
            "status" => e.status.into(),
            "bytes_sent" => e.bytes_sent.into(),
            "duration_ms" => rounded(e.duration_ms),
            "upstream_addr" => e.upstream_addr.map_or(Value::Null, Into::into),
            "upstream_duration_ms" => e.upstream_duration_ms.map_or(Value::Null, rounded),
            "tls_version" => e.tls_version.map_or(Value::Null, Into::into),
            "client" => text(e.client.as_bytes()),
            "user_agent" => e.user_agent.map_or(Value::Null, text),
            "referer" => e.referer.map_or(Value::Null, text),
            "request_id" if e.request_id.is_empty() => Value::Null,
            "request_id" => e.request_id.into(),
            _ => e.reason.map_or(Value::Null, Into::into),
        };
        if !value.is_null() {
            // serde_json escapes `"`, `\` and every control character below
            // 0x20 (`lossless` took care of DEL): one line, always.
            out.push(if out.is_empty() { '{' } else { ',' });
            let _ = write!(out, "\"{name}\":{value}");
        }
    }
    if out.is_empty() {
        out.push('{');
    }
    out.push('}');
    out
}

/// nginx's `combined` line, byte for byte as nginx writes it (its default
/// escaping: `"`, `\`, control and non-ASCII bytes as `\xHH`):
/// `$remote_addr - - [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"`.
pub fn combined(e: &Entry) -> String {
    let mut request = Vec::with_capacity(e.method.len() + e.path.len() + e.version.len() + 2);
    if e.method.is_empty() {
        // No request line was parsed: nginx writes `"-"` too.
        request.push(b'-');
    } else {
        request.extend_from_slice(e.method.as_bytes());
        request.push(b' ');
        request.extend_from_slice(e.path);
        request.push(b' ');
        request.extend_from_slice(e.version.as_bytes());
    }
    format!(
        "{} - - [{}] \"{}\" {} {} \"{}\" \"{}\"",
        nginx_escaped(e.client.as_bytes()),
        time_local(e.time_ms),
        nginx_escaped(&request),
        e.status,
        e.bytes_sent,
        e.referer.map_or("-".into(), nginx_escaped),
        e.user_agent.map_or("-".into(), nginx_escaped),
    )
}

/// Bytes as text: valid UTF-8 as is, any other byte as `\xHH`, so that
/// nothing is lost and nothing is ambiguous (a literal `\x` is written `\\x`).
fn lossless(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' {
                out.push_str("\\\\");
            } else if c == '\x7f' {
                out.push_str("\\x7F");
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02X}");
        }
    }
    out
}

/// nginx's `escape=default`: `"`, `\`, bytes below 0x20 and from 0x7F as `\xHH`.
fn nginx_escaped(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b == b'"' || b == b'\\' || !(0x20..0x7F).contains(&b) {
            let _ = write!(out, "\\x{b:02X}");
        } else {
            out.push(char::from(b));
        }
    }
    out
}

fn rounded(ms: f64) -> Value {
    Value::from((ms * 1000.0).round() / 1000.0)
}

fn timestamp(ms: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_millisecond(ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

/// RFC 3339 in UTC, with milliseconds.
fn rfc3339(ms: i64) -> String {
    timestamp(ms).strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// nginx's `$time_local`, in UTC (the gateway's processes run in UTC).
fn time_local(ms: i64) -> String {
    timestamp(ms)
        .strftime("%d/%b/%Y:%H:%M:%S +0000")
        .to_string()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn entry<'a>(path: &'a [u8], ua: &'a [u8]) -> Entry<'a> {
        Entry {
            time_ms: 1_796_655_600_123,
            vhost: "shop",
            route: "api",
            method: "GET",
            path,
            version: "HTTP/1.1",
            status: 200,
            bytes_sent: 612,
            duration_ms: 1.2345,
            upstream_addr: Some("10.0.0.1:8080"),
            upstream_duration_ms: Some(0.9876),
            protocol: "h1",
            tls_version: Some("TLSv1.3"),
            client: "203.0.113.7",
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
            combined(&e),
            "203.0.113.7 - - [07/Dec/2026:15:00:00 +0000] \"GET /a?b=1 HTTP/1.1\" 200 612 \"-\" \"curl/8.5.0\""
        );
        let e = entry(b"/\"x\\y\n", b"ua\x1b[31m\xff");
        assert_eq!(
            combined(&e),
            "203.0.113.7 - - [07/Dec/2026:15:00:00 +0000] \"GET /\\x22x\\x5Cy\\x0A HTTP/1.1\" 200 612 \"-\" \"ua\\x1B[31m\\xFF\""
        );
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
            combined(&e).contains("] \"-\" 200 612 "),
            "{}",
            combined(&e)
        );
        let line = json(&e, &["method", "path", "request_id", "reason"]);
        assert_eq!(line, "{\"reason\":\"malformed_head\"}");
    }

    #[test]
    fn a_json_line_has_the_fields_asked_for_in_their_order() {
        let e = entry(b"/a", b"curl/8.5.0");
        assert_eq!(
            json(&e, &[]),
            "{\"time\":\"2026-12-07T15:00:00.123Z\",\"vhost\":\"shop\",\"route\":\"api\",\"method\":\"GET\",\
             \"path\":\"/a\",\"protocol\":\"h1\",\"status\":200,\"bytes_sent\":612,\"duration_ms\":1.235,\
             \"upstream_addr\":\"10.0.0.1:8080\",\"upstream_duration_ms\":0.988,\"tls_version\":\"TLSv1.3\",\
             \"client\":\"203.0.113.7\",\"user_agent\":\"curl/8.5.0\",\
             \"request_id\":\"0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b\"}"
        );
        assert_eq!(
            json(&e, &["status", "path"]),
            "{\"path\":\"/a\",\"status\":200}"
        );
    }

    proptest! {
        /// Whatever bytes a client sends, each format stays one line, and the
        /// JSON line gives back exactly what was sent.
        #[test]
        fn no_request_forges_or_splits_a_line(
            path in proptest::collection::vec(any::<u8>(), 0..64),
            ua in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let e = entry(&path, &ua);
            for line in [json(&e, &[]), combined(&e)] {
                prop_assert!(!line.bytes().any(|b| b < 0x20 || b == 0x7F), "{line:?}");
            }
            let parsed: Value = serde_json::from_str(&json(&e, &[])).unwrap();
            prop_assert_eq!(unescape(parsed["path"].as_str().unwrap()), path.clone());
            prop_assert_eq!(unescape(parsed["user_agent"].as_str().unwrap()), ua.clone());
            // combined: exactly two quoted fields after the request, none forged.
            let line = combined(&e);
            prop_assert_eq!(line.matches('"').count(), 6, "{}", line);
        }
    }

    /// The inverse of [`lossless`].
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
