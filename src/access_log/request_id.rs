//! The request id: the one a trusted proxy sent in `X-Request-Id` when it is a
//! short token of safe characters, else a fresh UUIDv7 (time-ordered, so ids
//! sort like the log). It is forwarded upstream, returned to the client, and
//! written in the access line and the error lines about the request.

use http::HeaderValue;
use pingora_http::RequestHeader;

pub const HEADER: &str = "X-Request-Id";

/// Longer ids are replaced: an id is a key to search logs by, not a payload.
const MAX_LEN: usize = 64;

/// The request's id: the trusted peer's when there is exactly one acceptable
/// `X-Request-Id`, else a new one.
pub fn request_id(req: &RequestHeader, trusted_peer: bool) -> HeaderValue {
    if trusted_peer {
        let mut given = req.headers.get_all(HEADER).iter();
        if let (Some(id), None) = (given.next(), given.next()) {
            if is_token(id.as_bytes()) {
                return id.clone();
            }
        }
    }
    generate()
}

/// Letters, digits and `-_.:+/=` (UUIDs, hex and base64 trace ids), 1 to 64
/// of them: nothing a log line, a header or a shell would treat specially.
fn is_token(id: &[u8]) -> bool {
    (1..=MAX_LEN).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:+/=".contains(b))
}

/// A UUIDv7: milliseconds since the epoch, then 74 random bits from a
/// per-thread generator (ids need to be unique, not secret).
fn generate() -> HeaderValue {
    let ms = super::unix_now().as_millis() as u64;
    let random = fastrand::u128(..).to_le_bytes();
    let mut bytes = [0u8; 10];
    bytes.copy_from_slice(&random[..10]);
    let id = uuid::Builder::from_unix_timestamp_millis(ms, &bytes).into_uuid();
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let text = id.hyphenated().encode_lower(&mut text);
    // Cannot fail: a UUID's text is hex digits and hyphens.
    HeaderValue::from_str(text).unwrap_or_else(|_| unreachable!())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(ids: &[&[u8]]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        for id in ids {
            r.append_header(HEADER, HeaderValue::from_bytes(id).unwrap())
                .unwrap();
        }
        r
    }

    fn is_generated(id: &HeaderValue) -> bool {
        uuid::Uuid::parse_str(id.to_str().unwrap()).is_ok_and(|u| u.get_version_num() == 7)
    }

    #[test]
    fn a_trusted_peers_token_is_kept_and_anything_else_replaced() {
        let trace = b"Root=1-67891233-abcdef012345678912345678";
        assert_eq!(request_id(&req(&[trace]), true).as_bytes(), trace);
        assert!(is_generated(&request_id(&req(&[trace]), false)));
        for bad in [
            &b""[..],
            b"a b",
            b"a\"b",
            b"a\\b",
            b"\xc3\xa9",
            b"{x}",
            &[b'a'; 65],
        ] {
            assert!(is_generated(&request_id(&req(&[bad]), true)), "{bad:?}");
        }
        assert!(is_generated(&request_id(&req(&[b"a", b"b"]), true)));
        assert_eq!(request_id(&req(&[&[b'a'; 64]]), true).len(), 64);
    }

    #[test]
    fn generated_ids_are_uuid_v7_distinct_and_time_ordered() {
        let a = generate();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = generate();
        assert!(is_generated(&a) && is_generated(&b));
        assert_ne!(a, b);
        assert!(a.as_bytes() < b.as_bytes(), "{a:?} {b:?}");
    }
}
