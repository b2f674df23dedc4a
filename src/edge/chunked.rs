//! The chunked-body judge's entry points for the proxy: [`check_chunked`] starts
//! it on a request, [`is_bad_chunk`] tells its refusal from other read errors.

use std::io;
use std::sync::PoisonError;

use pingora_core::protocols::http::ServerSession;
use pingora_error::Error;

use crate::framing::{BadChunk, ChunkCheck};
use crate::metrics::{metrics, Rejection};

use super::guarded::Guarded;

/// Starts judging the chunked body of the HTTP/1 request in `session`: the bytes
/// Pingora already read past the head now, the rest as the connection reads them
/// (a read that breaks the grammar then fails with [`BadChunk`] inside).
pub fn check_chunked(session: &ServerSession) -> Result<(), BadChunk> {
    let Some(h1) = session.as_http1() else {
        return Ok(());
    };
    // Pingora refused a Transfer-Encoding whose last coding is not `chunked`.
    if !h1
        .req_header()
        .headers
        .contains_key(http::header::TRANSFER_ENCODING)
    {
        return Ok(());
    }
    let Some(guarded) = h1.stream().as_ref().as_any().downcast_ref::<Guarded>() else {
        return Ok(());
    };
    let mut check = ChunkCheck::default();
    let head = h1.get_headers_raw_bytes();
    let judged = match guarded.past_head(&head) {
        Some(body) => check.feed(body),
        None => Err(BadChunk::REWRITTEN_HEAD),
    };
    if let Err(why) = judged {
        metrics().request_rejected(Rejection::Malformed);
        return Err(why);
    }
    if !check.done() {
        *guarded
            .chunks
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(check);
    }
    Ok(())
}

/// Did reading the request fail because its chunked body broke the grammar?
pub fn is_bad_chunk(e: &Error) -> bool {
    e.root_cause()
        .downcast_ref::<io::Error>()
        .and_then(io::Error::get_ref)
        .is_some_and(|inner| inner.is::<BadChunk>())
}
