//! Request framing the gateway holds to RFC 9112 where Pingora is lenient: one
//! `Content-Length` value upstream, and the chunked coding checked byte for byte.
//!
//! Pingora reads chunk-size lines with `httparse`, which takes a bare LF inside a
//! chunk extension and whitespace after the size; nginx and HAProxy refuse both.
//! [`ChunkCheck`] only judges: it is fed the same bytes Pingora decodes (by the
//! connection layer, `edge/guarded.rs`) and says when they leave the grammar. It accepts a
//! subset of what `httparse` accepts, so where it accepts, both read the same chunks.

use http::header::CONTENT_LENGTH;
use http::HeaderValue;
use pingora_http::RequestHeader;

/// Where the checker is in `chunked-body` (RFC 9112 7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The first digit of a chunk size.
    SizeStart,
    /// More size digits, so many so far.
    Size(u8),
    /// Whitespace after the size: only a `;` may follow (BWS before an extension).
    SizeSpace,
    /// After `;`: whitespace, then an extension name.
    ExtStart,
    ExtName,
    /// Whitespace after a name: `=` or `;` may follow.
    ExtNameSpace,
    /// After `=`: whitespace, then a token or a quoted string.
    ExtValueStart,
    ExtToken,
    ExtQuoted,
    ExtQuotedEscape,
    /// After a value: whitespace, then `;` (or CRLF right after the value).
    ExtValueEnd,
    ExtValueSpace,
    /// The LF of a chunk-size line.
    SizeLf,
    /// Chunk data, this much left.
    Data(u64),
    DataCr,
    DataLf,
    /// A trailer field line's first byte (or the CR of the final empty line).
    TrailerStart,
    TrailerName,
    TrailerValue,
    TrailerLf,
    FinalLf,
    /// The body ended; what follows belongs to the next request.
    Done,
}

/// Why a chunked body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadChunk(&'static str);

impl BadChunk {
    /// The body cannot be found on the wire: the head Pingora parsed is not the
    /// head received (it re-escaped the request target), so every offset moved.
    pub const REWRITTEN_HEAD: BadChunk = BadChunk("a request target that had to be re-escaped");
}

impl std::fmt::Display for BadChunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed chunked body: {}", self.0)
    }
}

impl std::error::Error for BadChunk {}

/// A strict judge of a chunked request body, fed its bytes as they arrive.
#[derive(Debug, Clone)]
pub struct ChunkCheck {
    state: State,
    size: u64,
}

impl Default for ChunkCheck {
    fn default() -> Self {
        ChunkCheck {
            state: State::SizeStart,
            size: 0,
        }
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_space(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// `qdtext` and `obs-text` (RFC 9110 5.6.4).
fn is_qdtext(b: u8) -> bool {
    matches!(b, b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff)
}

/// Field value bytes: VCHAR, obs-text, SP and HTAB (RFC 9110 5.5).
fn is_field_byte(b: u8) -> bool {
    matches!(b, b'\t' | b' '..=0x7e | 0x80..=0xff)
}

impl ChunkCheck {
    /// Has the body ended (the last chunk and the trailer section are in)?
    pub fn done(&self) -> bool {
        self.state == State::Done
    }

    /// Judges the next bytes of the body. Bytes after its end are not looked at.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), BadChunk> {
        use State::*;
        while let Some((&b, rest)) = bytes.split_first() {
            self.state = match self.state {
                Done => return Ok(()),
                Data(left) => {
                    // Chunk data is skipped whole, not byte by byte.
                    let take = left.min(bytes.len() as u64);
                    bytes = &bytes[take as usize..];
                    self.state = if take == left {
                        DataCr
                    } else {
                        Data(left - take)
                    };
                    continue;
                }
                SizeStart | Size(_) if b.is_ascii_hexdigit() => {
                    let digits = match self.state {
                        Size(n) => n,
                        _ => 0,
                    };
                    if digits == 16 {
                        return Err(BadChunk("chunk size over 16 digits"));
                    }
                    // Cannot fail: a hex digit.
                    let digit = (b as char).to_digit(16).unwrap_or(0);
                    self.size = (self.size << 4) | u64::from(digit);
                    Size(digits + 1)
                }
                SizeStart => return Err(BadChunk("chunk size expected")),
                Size(_) | ExtName | ExtToken | ExtValueEnd if b == b'\r' => SizeLf,
                Size(_) | SizeSpace | ExtName | ExtNameSpace | ExtToken | ExtValueEnd
                | ExtValueSpace
                    if b == b';' =>
                {
                    ExtStart
                }
                Size(_) | SizeSpace if is_space(b) => SizeSpace,
                Size(_) => return Err(BadChunk("invalid byte in chunk size")),
                SizeSpace => return Err(BadChunk("whitespace after the chunk size")),
                ExtStart if is_space(b) => ExtStart,
                ExtStart | ExtName if is_tchar(b) => ExtName,
                ExtName | ExtNameSpace if is_space(b) => ExtNameSpace,
                ExtName | ExtNameSpace if b == b'=' => ExtValueStart,
                ExtValueStart if is_space(b) => ExtValueStart,
                ExtValueStart if b == b'"' => ExtQuoted,
                ExtValueStart | ExtToken if is_tchar(b) => ExtToken,
                ExtQuoted if b == b'"' => ExtValueEnd,
                ExtQuoted if b == b'\\' => ExtQuotedEscape,
                ExtQuoted if is_qdtext(b) => ExtQuoted,
                ExtQuotedEscape if is_field_byte(b) => ExtQuoted,
                ExtToken | ExtValueEnd | ExtValueSpace if is_space(b) => ExtValueSpace,
                ExtStart | ExtName | ExtNameSpace | ExtValueStart | ExtToken | ExtQuoted
                | ExtQuotedEscape | ExtValueEnd | ExtValueSpace => {
                    return Err(BadChunk("invalid chunk extension"))
                }
                SizeLf if b == b'\n' && self.size == 0 => TrailerStart,
                SizeLf if b == b'\n' => {
                    let size = std::mem::take(&mut self.size);
                    Data(size)
                }
                SizeLf => return Err(BadChunk("chunk-size line not ended by CRLF")),
                DataCr if b == b'\r' => DataLf,
                DataLf if b == b'\n' => SizeStart,
                DataCr | DataLf => return Err(BadChunk("chunk data not followed by CRLF")),
                TrailerStart if b == b'\r' => FinalLf,
                TrailerStart | TrailerName if is_tchar(b) => TrailerName,
                TrailerName if b == b':' => TrailerValue,
                TrailerValue if b == b'\r' => TrailerLf,
                TrailerValue if is_field_byte(b) => TrailerValue,
                TrailerStart | TrailerName | TrailerValue => {
                    return Err(BadChunk("invalid trailer field"))
                }
                TrailerLf if b == b'\n' => TrailerStart,
                TrailerLf => return Err(BadChunk("trailer line not ended by CRLF")),
                FinalLf if b == b'\n' => Done,
                FinalLf => return Err(BadChunk("chunked body not ended by CRLF")),
            };
            bytes = rest;
        }
        Ok(())
    }
}

const NOT_ONE_LENGTH: &str = "Content-Length is not one number";

/// RFC 9112 6.3: a `Content-Length` that repeats one value (`3, 3`, or two lines
/// of `3`) reaches the upstream as that one value; anything else that is not one
/// number is refused (`Err`). Pingora frames the body by the same value.
pub fn one_content_length(req: &mut RequestHeader) -> Result<(), &'static str> {
    let mut values = req.headers.get_all(CONTENT_LENGTH).iter();
    let Some(first) = values.next() else {
        return Ok(());
    };
    if values.next().is_none() && !first.as_bytes().contains(&b',') {
        return Ok(());
    }
    let mut numbers = req
        .headers
        .get_all(CONTENT_LENGTH)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(<[u8]>::trim_ascii);
    let one = numbers.next().unwrap_or_default();
    if one.is_empty() || !one.iter().all(u8::is_ascii_digit) || numbers.any(|n| n != one) {
        return Err(NOT_ONE_LENGTH);
    }
    let value = HeaderValue::from_bytes(one).map_err(|_| NOT_ONE_LENGTH)?;
    let _ = req.insert_header("Content-Length", value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(body: &[u8]) -> Result<bool, BadChunk> {
        let mut c = ChunkCheck::default();
        c.feed(body)?;
        Ok(c.done())
    }

    #[test]
    fn the_grammar_is_accepted_in_any_split() {
        let body: &[u8] = b"5;a=b;c=\"d \\\" e\" ; f\r\nhello\r\nA\r\n0123456789\r\n\
                            0;last\r\nx-t: 1\r\ny:\r\n\r\nGET /next";
        assert_eq!(check(body), Ok(true));
        for split in 0..body.len() {
            let mut c = ChunkCheck::default();
            c.feed(&body[..split]).unwrap();
            c.feed(&body[split..]).unwrap();
            assert!(c.done(), "split at {split}");
        }
        assert_eq!(check(b"5\r\nhel"), Ok(false));
        assert_eq!(check(b"5 ;x\r\nhello\r\n0\r\n\r\n"), Ok(true));
        assert_eq!(check(b"ffffffffffffffff\r\n"), Ok(false));
    }

    #[test]
    fn what_peers_refuse_is_refused() {
        for bad in [
            &b"5 \r\nhello\r\n0\r\n\r\n"[..],
            b"5\t\r\nhello\r\n0\r\n\r\n",
            b"5;a\nb\r\nhello\r\n0\r\n\r\n",
            b"5;a=b \r\nhello\r\n0\r\n\r\n",
            b"5;\r\nhello\r\n0\r\n\r\n",
            b"5;a=\"b\r\nhello\r\n0\r\n\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"5\r\nhelloX\r\n0\r\n\r\n",
            b"5\r\nhello\n0\r\n\r\n",
            b"0x5\r\nhello\r\n0\r\n\r\n",
            b"+5\r\nhello\r\n0\r\n\r\n",
            b"\r\n5\r\nhello\r\n0\r\n\r\n",
            b"10000000000000000\r\n",
            b"0\r\nx-t: 1\n\r\n",
            b"0\r\nx t: 1\r\n\r\n",
            b"0\r\nx-t: \x01\r\n\r\n",
            b"0\r\n\n",
        ] {
            assert!(check(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    fn with_lengths(values: &[&str]) -> RequestHeader {
        let mut r = RequestHeader::build("POST", b"/", None).unwrap();
        for v in values {
            r.append_header("Content-Length", *v).unwrap();
        }
        r
    }

    #[test]
    fn one_content_length_goes_upstream() {
        for (values, want) in [
            (&["3"][..], Ok(vec!["3"])),
            (&["3, 3"], Ok(vec!["3"])),
            (&["3", "3"], Ok(vec!["3"])),
            (&["3,3", " 3 "], Ok(vec!["3"])),
            (&["3", "4"], Err(NOT_ONE_LENGTH)),
            (&["3, "], Err(NOT_ONE_LENGTH)),
            (&["-3, -3"], Err(NOT_ONE_LENGTH)),
        ] {
            let mut r = with_lengths(values);
            let got = one_content_length(&mut r).map(|()| {
                r.headers
                    .get_all(CONTENT_LENGTH)
                    .iter()
                    .map(|v| v.to_str().unwrap().to_string())
                    .collect::<Vec<_>>()
            });
            assert_eq!(got, want.map(|v| v.iter().map(|s| s.to_string()).collect()));
        }
    }
}
