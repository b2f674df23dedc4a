//! A strict HTTP/1.1 upstream on raw sockets: it parses every request byte for byte
//! (RFC 9112, with none of the leniencies parsers allow), records each one, and
//! flags anything that is not exactly one well-framed request per request sent.
//!
//! Each request chooses its answer's framing with `x-answer` (and a delay before
//! it with `x-delay-ms`), and every answer
//! names the request it answers: `x-tag` carries the request's `x-tag`, and the
//! body (when the answer has one) is [`echo`] of what the upstream received. A
//! client that gets another request's answer sees another tag.
//!
//! Bytes that do not parse as a request (a second last-chunk, say) are answered
//! after `phantom_delay` with a `phantom` answer, as a lenient server would,
//! so a desync shows up on the client side too.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How a request's body was framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    None,
    Length,
    Chunked,
}

/// One request as the upstream parsed it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub target: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
    pub framing: BodyFraming,
    pub body: Vec<u8>,
    pub trailers: Vec<(String, String)>,
    /// Which upstream connection it came on, and its place there (0, 1, ...).
    pub connection: usize,
    pub index: usize,
}

impl Received {
    pub fn header(&self, name: &str) -> Vec<&str> {
        super::values(&self.headers, name)
    }

    /// The `x-tag` it carries.
    pub fn tag(&self) -> &str {
        self.header("x-tag").first().copied().unwrap_or("")
    }
}

/// Everything the upstream saw.
#[derive(Debug, Default)]
pub struct Log {
    pub requests: Vec<Received>,
    /// Bytes that were not a well-framed request, with where they came.
    pub violations: Vec<String>,
    /// Connections that closed in the middle of a request.
    pub truncated: Vec<String>,
}

pub struct Strict {
    pub addr: SocketAddr,
    log: Arc<Mutex<Log>>,
    /// Requests received and not yet answered: now, and the most at once.
    busy: Arc<(AtomicUsize, AtomicUsize)>,
}

/// The body of the answer to a request: its tag, method, body length and an
/// FNV-1a hash of the body.
pub fn echo(tag: &str, method: &str, body: &[u8]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in body {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{tag} {method} {} {hash:016x}\n", body.len())
}

impl Strict {
    /// `phantom_delay`: how long the upstream waits before answering bytes that
    /// are no request.
    pub fn start(phantom_delay: Duration) -> Strict {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Log::default()));
        let shared = log.clone();
        let connections = Arc::new(AtomicUsize::new(0));
        let busy = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
        let counting = busy.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let id = connections.fetch_add(1, Ordering::SeqCst);
                let (log, busy) = (shared.clone(), counting.clone());
                std::thread::spawn(move || serve(stream, id, &log, &busy, phantom_delay));
            }
        });
        Strict { addr, log, busy }
    }

    /// The most requests it held unanswered at once.
    pub fn most_at_once(&self) -> usize {
        self.busy.1.load(Ordering::SeqCst)
    }

    /// Takes what was logged so far, leaving the log empty.
    pub fn take(&self) -> Log {
        std::mem::take(&mut *self.log.lock().unwrap())
    }

    pub fn with_log<T>(&self, f: impl FnOnce(&Log) -> T) -> T {
        f(&self.log.lock().unwrap())
    }
}

fn serve(
    mut stream: TcpStream,
    id: usize,
    log: &Mutex<Log>,
    busy: &(AtomicUsize, AtomicUsize),
    phantom_delay: Duration,
) {
    let mut buf: Vec<u8> = Vec::new();
    let mut index = 0;
    // The tag of the request before, to tell which exchange a violation followed.
    let mut last_tag = String::new();
    loop {
        match parse_request(&buf) {
            Ok(Some((mut req, used))) => {
                buf.drain(..used);
                if !buf.is_empty() {
                    let rest = String::from_utf8_lossy(&buf).into_owned();
                    log.lock().unwrap().violations.push(format!(
                        "connection {id}: bytes after request {index} ({}) before its answer: \
                         {rest:?}",
                        req.tag()
                    ));
                }
                req.connection = id;
                req.index = index;
                index += 1;
                last_tag = req.tag().to_string();
                // `x-delay-ms`: a slow upstream, answering only after the whole request.
                let delay = req
                    .header("x-delay-ms")
                    .first()
                    .and_then(|d| d.parse().ok());
                let now = busy.0.fetch_add(1, Ordering::SeqCst) + 1;
                busy.1.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(delay.unwrap_or(0)));
                busy.0.fetch_sub(1, Ordering::SeqCst);
                let (answer, close) = answer(&req);
                log.lock().unwrap().requests.push(req);
                if stream.write_all(&answer).is_err() {
                    return;
                }
                if close {
                    let _ = stream.shutdown(Shutdown::Both);
                    return;
                }
                continue;
            }
            Ok(None) => {}
            Err(why) => {
                let bytes = String::from_utf8_lossy(&buf).into_owned();
                log.lock().unwrap().violations.push(format!(
                    "connection {id}, after request {index} ({last_tag}): {why}: {bytes:?}"
                ));
                std::thread::sleep(phantom_delay);
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nx-tag: phantom\r\n\
                      Content-Length: 8\r\n\r\nphantom\n",
                );
                let _ = stream.shutdown(Shutdown::Both);
                return;
            }
        }
        let mut chunk = [0u8; 8192];
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => {
                if !buf.is_empty() {
                    let bytes = String::from_utf8_lossy(&buf).into_owned();
                    log.lock()
                        .unwrap()
                        .truncated
                        .push(format!("connection {id}, request {index}: {bytes:?}"));
                }
                return;
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The answer `x-answer` asks for, and whether the connection closes after it.
fn answer(req: &Received) -> (Vec<u8>, bool) {
    let tag = req.tag().to_string();
    let body = echo(&tag, &req.method, &req.body);
    let kind = req.header("x-answer").first().copied().unwrap_or("length");
    let head = |status: &str, framing: &str| {
        format!("HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nx-tag: {tag}\r\n{framing}\r\n")
    };
    let length = format!("Content-Length: {}\r\n", body.len());
    let head_only = req.method == "HEAD";
    let with_body = |head: String| {
        let mut out = head.into_bytes();
        if !head_only {
            out.extend_from_slice(body.as_bytes());
        }
        out
    };
    match kind {
        "chunked" => {
            let mut out = head("200 OK", "Transfer-Encoding: chunked\r\n").into_bytes();
            if !head_only {
                for piece in body.as_bytes().chunks(7) {
                    out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                    out.extend_from_slice(piece);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n\r\n");
            }
            (out, false)
        }
        "close" => (with_body(head("200 OK", "Connection: close\r\n")), true),
        "204" => (head("204 No Content", "").into_bytes(), false),
        "304" => (
            head("304 Not Modified", "ETag: \"v1\"\r\n").into_bytes(),
            false,
        ),
        "early-hints" => {
            let mut out =
                b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n".to_vec();
            out.extend(with_body(head("200 OK", &length)));
            (out, false)
        }
        _ => (with_body(head("200 OK", &length)), false),
    }
}

const TOKEN_EXTRA: &[u8] = b"!#$%&'*+-.^_`|~";

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || TOKEN_EXTRA.contains(&b)
}

/// The next line ending in CRLF, without it: `None` when it has not all arrived;
/// a bare CR or LF inside is a violation.
fn line(buf: &[u8], from: usize) -> Result<Option<(&[u8], usize)>, String> {
    let rest = &buf[from..];
    for (i, b) in rest.iter().enumerate() {
        match b {
            b'\r' => match rest.get(i + 1) {
                None => return Ok(None),
                Some(b'\n') => return Ok(Some((&rest[..i], from + i + 2))),
                Some(_) => return Err("bare CR".into()),
            },
            b'\n' => return Err("bare LF".into()),
            _ => {}
        }
    }
    Ok(None)
}

/// One whole request at the start of `buf`, and its length; `None` while part of
/// it has yet to arrive.
pub fn parse_request(buf: &[u8]) -> Result<Option<(Received, usize)>, String> {
    if buf.is_empty() {
        return Ok(None);
    }
    let Some((request_line, mut at)) = line(buf, 0)? else {
        return Ok(None);
    };
    let text = std::str::from_utf8(request_line).map_err(|_| "request line not UTF-8")?;
    let parts: Vec<&str> = text.split(' ').collect();
    let [method, target, version] = parts[..] else {
        return Err(format!("request line {text:?}"));
    };
    if method.is_empty() || !method.bytes().all(is_tchar) {
        return Err(format!("method {method:?}"));
    }
    if !target.starts_with('/') || target.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(format!("target {target:?}"));
    }
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(format!("version {version:?}"));
    }
    let (headers, after_head) = match fields(buf, at)? {
        Some(found) => found,
        None => return Ok(None),
    };
    at = after_head;
    let te = super::values(&headers, "transfer-encoding");
    let cl = super::values(&headers, "content-length");
    let mut req = Received {
        method: method.into(),
        target: target.into(),
        version: version.into(),
        headers: headers.clone(),
        framing: BodyFraming::None,
        body: Vec::new(),
        trailers: Vec::new(),
        connection: 0,
        index: 0,
    };
    match (te.as_slice(), cl.as_slice()) {
        ([], []) => Ok(Some((req, at))),
        ([], [n]) => {
            if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("Content-Length {n:?}"));
            }
            let n: usize = n.parse().map_err(|_| format!("Content-Length {n:?}"))?;
            if buf.len() < at + n {
                return Ok(None);
            }
            req.framing = BodyFraming::Length;
            req.body = buf[at..at + n].to_vec();
            Ok(Some((req, at + n)))
        }
        (["chunked"], []) if version == "HTTP/1.1" => {
            req.framing = BodyFraming::Chunked;
            loop {
                let Some((size_line, next)) = line(buf, at)? else {
                    return Ok(None);
                };
                let size_text = size_line.split(|b| *b == b';').next().unwrap_or_default();
                if size_text.is_empty()
                    || size_text.len() > 15
                    || !size_text.iter().all(u8::is_ascii_hexdigit)
                {
                    return Err(format!("chunk size line {size_line:?}"));
                }
                chunk_extensions(&size_line[size_text.len()..])?;
                let size = usize::from_str_radix(std::str::from_utf8(size_text).unwrap(), 16)
                    .map_err(|e| e.to_string())?;
                at = next;
                if size == 0 {
                    let Some((trailers, end)) = fields(buf, at)? else {
                        return Ok(None);
                    };
                    req.trailers = trailers;
                    return Ok(Some((req, end)));
                }
                if buf.len() < at + size + 2 {
                    return Ok(None);
                }
                req.body.extend_from_slice(&buf[at..at + size]);
                if &buf[at + size..at + size + 2] != b"\r\n" {
                    return Err("chunk data not followed by CRLF".into());
                }
                at += size + 2;
            }
        }
        _ => Err(format!(
            "framing: Transfer-Encoding {te:?}, Content-Length {cl:?}"
        )),
    }
}

/// `*( ";" token [ "=" ( token / quoted-string ) ] )`, with no whitespace.
fn chunk_extensions(mut ext: &[u8]) -> Result<(), String> {
    let bad = || format!("chunk extension {:?}", String::from_utf8_lossy(ext));
    while let Some(rest) = ext.strip_prefix(b";") {
        let name = rest.iter().take_while(|b| is_tchar(**b)).count();
        if name == 0 {
            return Err(bad());
        }
        let mut rest = &rest[name..];
        if let Some(value) = rest.strip_prefix(b"=") {
            let len = if value.first() == Some(&b'"') {
                let close = value[1..].iter().position(|b| *b == b'"').ok_or_else(bad)?;
                close + 2
            } else {
                value.iter().take_while(|b| is_tchar(**b)).count()
            };
            if len == 0 {
                return Err(bad());
            }
            rest = &value[len..];
        }
        ext = rest;
    }
    if ext.is_empty() {
        Ok(())
    } else {
        Err(bad())
    }
}

type Fields = Vec<(String, String)>;

/// Field lines up to the empty line, and where they end.
fn fields(buf: &[u8], mut at: usize) -> Result<Option<(Fields, usize)>, String> {
    let mut out = Vec::new();
    loop {
        let Some((field, next)) = line(buf, at)? else {
            return Ok(None);
        };
        at = next;
        if field.is_empty() {
            return Ok(Some((out, at)));
        }
        let colon = field
            .iter()
            .position(|b| *b == b':')
            .ok_or_else(|| format!("field line {:?}", String::from_utf8_lossy(field)))?;
        let (name, value) = (&field[..colon], &field[colon + 1..]);
        if name.is_empty() || !name.iter().all(|b| is_tchar(*b)) {
            return Err(format!("field name {:?}", String::from_utf8_lossy(name)));
        }
        if value.iter().any(|b| *b == 0 || *b == b'\r' || *b == b'\n') {
            return Err("field value with NUL, CR or LF".into());
        }
        let value = String::from_utf8_lossy(value)
            .trim_matches([' ', '\t'])
            .to_string();
        out.push((String::from_utf8_lossy(name).into_owned(), value));
    }
}
