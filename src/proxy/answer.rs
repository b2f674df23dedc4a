//! The answers the gateway writes itself instead of proxying ([`Answer`]), with
//! the same policy as proxied responses.

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode};
use pingora_error::Result;
use pingora_http::ResponseHeader;
use pingora_proxy::Session;

use crate::policy::canned::{status_body, TEXT_PLAIN};

/// What every answer gets from the request it answers: the policy's headers.
/// `RequestCtx` implements it, so this file does not depend on the request state.
pub(super) trait Finish {
    fn finish_response(&self, resp: &mut ResponseHeader);
}

/// A response the gateway makes itself instead of proxying.
pub struct Answer {
    pub(super) head: ResponseHeader,
    pub(super) body: Bytes,
    /// Close the connection after it (the request may not have been read whole).
    pub(super) close: bool,
    /// Why the gateway answers, for the access line (`redirect`, `unknown_host` ...).
    pub(super) reason: &'static str,
}

impl Answer {
    pub(super) fn empty(status: StatusCode, reason: &'static str) -> Answer {
        Answer {
            // Cannot fail: a StatusCode is already a valid status.
            head: ResponseHeader::build(status, Some(4)).unwrap_or_else(|_| unreachable!()),
            body: Bytes::new(),
            close: false,
            reason,
        }
    }

    /// `404 Not Found\n` as text/plain.
    pub(super) fn text(status: StatusCode, reason: &'static str) -> Answer {
        let mut answer = Answer::empty(status, reason);
        answer.header("Content-Type", TEXT_PLAIN);
        answer.body = status_body(status);
        answer
    }

    pub(super) fn closing(mut self) -> Answer {
        self.close = true;
        self
    }

    pub(super) fn header(&mut self, name: &'static str, value: HeaderValue) {
        // Cannot fail: the names are static and valid.
        let _ = self.head.insert_header(name, value);
    }

    pub(super) async fn send(self, session: &mut Session, ctx: &impl Finish) -> Result<()> {
        if self.close {
            session.set_keepalive(None);
        }
        send(session, ctx, self.head, self.body).await
    }
}

/// Writes a response the gateway makes itself, with the same plan as proxied ones.
async fn send(
    session: &mut Session,
    ctx: &impl Finish,
    mut resp: ResponseHeader,
    body: Bytes,
) -> Result<()> {
    // RFC 9110 8.6: no Content-Length on 1xx, 204 and 304.
    let status = resp.status;
    if !(status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED)
    {
        resp.insert_header("Content-Length", body.len())?;
    }
    ctx.finish_response(&mut resp);
    let bodyless = body.is_empty() || session.req_header().method == Method::HEAD;
    session
        .write_response_header(Box::new(resp), bodyless)
        .await?;
    if !bodyless {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(())
}
