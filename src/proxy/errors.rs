//! The error tables: the status a failure is answered with, whether it was the
//! client not reading, and the kind an upstream failure is counted as.

use pingora_error::{Error, ErrorSource, ErrorType};

use crate::edge;
use crate::metrics::UpstreamErrorKind;

pub(super) fn upstream_error_kind(e: &Error) -> UpstreamErrorKind {
    match e.etype() {
        ErrorType::ConnectRefused => UpstreamErrorKind::ConnectRefused,
        ErrorType::ConnectTimedout => UpstreamErrorKind::ConnectTimeout,
        ErrorType::ConnectError | ErrorType::ConnectNoRoute | ErrorType::BindError => {
            UpstreamErrorKind::ConnectError
        }
        ErrorType::ReadTimedout => UpstreamErrorKind::ReadTimeout,
        ErrorType::WriteTimedout => UpstreamErrorKind::WriteTimeout,
        ErrorType::ReadError => UpstreamErrorKind::ReadError,
        ErrorType::WriteError => UpstreamErrorKind::WriteError,
        ErrorType::ConnectionClosed => UpstreamErrorKind::Closed,
        ErrorType::InvalidHTTPHeader | ErrorType::H1Error | ErrorType::H2Error => {
            UpstreamErrorKind::InvalidResponse
        }
        _ => UpstreamErrorKind::Other,
    }
}

/// A response the client stopped reading for `send_timeout_ms`: on HTTP/1 the
/// connection closes, on HTTP/2 the stream is reset.
pub(super) fn is_send_timeout(e: &Error) -> bool {
    e.etype() == &ErrorType::WriteTimedout && e.esource() == &ErrorSource::Downstream
}

/// The access line's `reason` for a failure of the client or the gateway
/// (an upstream's is its [`UpstreamErrorKind`]).
pub(super) fn failure_reason(status: u16) -> &'static str {
    match status {
        0 => "client_gone",
        400 => "bad_request_body",
        408 => "body_timeout",
        _ => "internal_error",
    }
}

/// 504 for upstream timeouts, 502 for other upstream failures, 0 when the client is
/// gone or stopped reading (nothing more can reach it); the client's faults while
/// its body is read: 400 for a chunked body that broke the grammar, 408 for one
/// that stalled.
pub(super) fn error_status(e: &Error) -> u16 {
    if edge::is_bad_chunk(e) {
        return 400;
    }
    match (e.etype(), e.esource()) {
        (ErrorType::HTTPStatus(code), _) => *code,
        (
            ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout,
            ErrorSource::Upstream,
        ) => 504,
        (_, ErrorSource::Upstream) => 502,
        (ErrorType::ReadTimedout, ErrorSource::Downstream) => 408,
        (
            ErrorType::WriteError
            | ErrorType::WriteTimedout
            | ErrorType::ReadError
            | ErrorType::ConnectionClosed,
            ErrorSource::Downstream,
        ) => 0,
        (_, ErrorSource::Downstream) => 400,
        _ => 500,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_faults_while_the_body_is_read_have_their_own_status() {
        let failed = |etype, source, cause: Option<std::io::Error>| {
            let e = match cause {
                Some(c) => Error::because(etype, "reading the body", c),
                None => Error::explain(etype, "reading the body"),
            };
            let e = match source {
                ErrorSource::Upstream => e.into_up(),
                _ => e.into_down(),
            };
            error_status(&e)
        };
        let bad_chunk = || {
            let why = crate::framing::BadChunk::REWRITTEN_HEAD;
            Some(std::io::Error::new(std::io::ErrorKind::InvalidData, why))
        };
        let read_error = ErrorType::ReadError;
        assert_eq!(
            failed(read_error.clone(), ErrorSource::Downstream, bad_chunk()),
            400
        );
        assert_eq!(failed(read_error.clone(), ErrorSource::Downstream, None), 0);
        assert_eq!(
            failed(ErrorType::ReadTimedout, ErrorSource::Downstream, None),
            408
        );
        assert_eq!(
            failed(ErrorType::ReadTimedout, ErrorSource::Upstream, None),
            504
        );
        assert_eq!(
            failed(ErrorType::WriteTimedout, ErrorSource::Downstream, None),
            0
        );
    }
}
