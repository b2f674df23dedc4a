//! Answers the connection layer writes itself, below the proxy's hooks: `400` for
//! a request head Pingora cannot parse and `408` for one that is too slow. No vhost
//! is known then, so they carry the built-in policy, like `421`. Rendered once per
//! configuration, as the bytes of an HTTP/1.1 response.

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderValue, StatusCode};
use pingora_http::ResponseHeader;

use super::headers::ResponsePlan;

pub const TEXT_PLAIN: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");

/// The body of the gateway's own error responses: `404 Not Found\n`.
pub fn status_body(status: StatusCode) -> Bytes {
    Bytes::from(format!(
        "{} {}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    ))
}

/// The canned answers for one scheme.
#[derive(Debug, Clone)]
pub struct Canned {
    pub bad_request: Bytes,
    pub timeout: Bytes,
}

#[derive(Debug, Clone)]
pub struct CannedAnswers {
    http: Canned,
    https: Canned,
}

impl CannedAnswers {
    pub fn new(baseline: &ResponsePlan) -> CannedAnswers {
        let canned = |https| Canned {
            bad_request: render(baseline, StatusCode::BAD_REQUEST, https),
            timeout: render(baseline, StatusCode::REQUEST_TIMEOUT, https),
        };
        CannedAnswers {
            http: canned(false),
            https: canned(true),
        }
    }

    /// The answers for a connection; HSTS only on HTTPS ones.
    pub fn pick(&self, https: bool) -> Canned {
        if https {
            self.https.clone()
        } else {
            self.http.clone()
        }
    }
}

fn render(plan: &ResponsePlan, status: StatusCode, https: bool) -> Bytes {
    let body = status_body(status);
    let mut resp = ResponseHeader::build(status, Some(16)).expect("a valid status");
    let fixed = [
        ("Content-Type", TEXT_PLAIN),
        ("Content-Length", HeaderValue::from(body.len())),
        ("Connection", HeaderValue::from_static("close")),
    ];
    for (name, value) in fixed {
        resp.insert_header(name, value).expect("valid header");
    }
    plan.apply_uncounted(&mut resp, https);
    let mut out = BytesMut::with_capacity(1024);
    out.put_slice(
        format!(
            "HTTP/1.1 {} {}\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        )
        .as_bytes(),
    );
    resp.header_to_h1_wire(&mut out);
    out.put_slice(b"\r\n");
    out.put_slice(&body);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::defaults::builtin_layer;
    use crate::metrics::{Metrics, RouteLabels};

    #[test]
    fn canned_answers_are_whole_http1_responses_with_the_policy() {
        let at = RouteLabels {
            vhost: "unit-canned",
            route: "_vhost",
        };
        let plan = ResponsePlan::compile(&builtin_layer().resolved(), at, &Metrics::new()).unwrap();
        let answers = CannedAnswers::new(&plan);
        let text = String::from_utf8(answers.pick(false).bad_request.to_vec()).unwrap();
        assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 16\r\nConnection: close\r\n"), "{text}");
        assert!(text.contains("\r\nX-Frame-Options: DENY\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n400 Bad Request\n"), "{text}");
        assert!(!text.contains("Strict-Transport-Security"));
        let text = String::from_utf8(answers.pick(true).timeout.to_vec()).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
            "{text}"
        );
        assert!(
            text.contains("\r\nStrict-Transport-Security: max-age=31536000; includeSubDomains\r\n")
        );
    }
}
