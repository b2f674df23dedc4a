//! Clients that frame requests byte for byte: HTTP/1.x on a raw socket (Content-Length
//! bodies written in pieces, chunked bodies with extensions and trailers, HTTP/1.0),
//! and HTTP/2 with the `h2` crate (with or without `content-length`, DATA in many
//! frames, END_STREAM on the last DATA frame, on an empty one, or on trailers).
//! Both read the answer strictly, by its own framing.

use std::io::{self, BufRead, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;

use bytes::Bytes;

/// An answer as a client read it.
#[derive(Debug, Clone, Default)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The informational (1xx) statuses that came first.
    pub interim: Vec<u16>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Vec<&str> {
        super::values(&self.headers, name)
    }

    /// The `x-tag` it carries.
    pub fn tag(&self) -> &str {
        self.header("x-tag").first().copied().unwrap_or("")
    }
}

/// How an HTTP/1.x request carries its body.
#[derive(Debug, Clone)]
pub enum H1Body {
    None,
    /// `Content-Length`, the body written in these pieces.
    Length(Vec<Vec<u8>>),
    /// `Transfer-Encoding: chunked`: (data, extensions such as `;a=b`) per chunk,
    /// then the trailers.
    Chunked {
        chunks: Vec<(Vec<u8>, String)>,
        trailers: Vec<(String, String)>,
    },
}

impl H1Body {
    /// The body as the upstream should receive it.
    pub fn content(&self) -> Vec<u8> {
        match self {
            H1Body::None => Vec::new(),
            H1Body::Length(pieces) => pieces.concat(),
            H1Body::Chunked { chunks, .. } => chunks.iter().flat_map(|(d, _)| d.clone()).collect(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct H1Request {
    pub method: String,
    pub path: String,
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: &'static str,
    pub headers: Vec<(String, String)>,
    pub body: H1Body,
}

impl H1Request {
    /// The writes that send it: the head, then each piece of the body.
    pub fn writes(&self, host: &str) -> Vec<Vec<u8>> {
        let mut head = format!(
            "{} {} {}\r\nHost: {host}\r\n",
            self.method, self.path, self.version
        );
        for (n, v) in &self.headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        let mut out = Vec::new();
        match &self.body {
            H1Body::None => {
                head.push_str("\r\n");
                out.push(head.into_bytes());
            }
            H1Body::Length(pieces) => {
                let len: usize = pieces.iter().map(Vec::len).sum();
                head.push_str(&format!("Content-Length: {len}\r\n\r\n"));
                out.push(head.into_bytes());
                out.extend(pieces.iter().filter(|p| !p.is_empty()).cloned());
            }
            H1Body::Chunked { chunks, trailers } => {
                head.push_str("Transfer-Encoding: chunked\r\n\r\n");
                out.push(head.into_bytes());
                for (data, ext) in chunks.iter().filter(|(d, _)| !d.is_empty()) {
                    let mut chunk = format!("{:x}{ext}\r\n", data.len()).into_bytes();
                    chunk.extend_from_slice(data);
                    chunk.extend_from_slice(b"\r\n");
                    out.push(chunk);
                }
                let mut last = b"0\r\n".to_vec();
                for (n, v) in trailers {
                    last.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
                }
                last.extend_from_slice(b"\r\n");
                out.push(last);
            }
        }
        out
    }
}

/// Sends `req` on `stream` and reads its answer.
pub fn h1_exchange(
    stream: &mut io::BufReader<TcpStream>,
    host: &str,
    req: &H1Request,
) -> io::Result<Answer> {
    for piece in req.writes(host) {
        stream.get_mut().write_all(&piece)?;
    }
    read_answer(stream, req.method == "HEAD")
}

/// A new HTTP/1.x connection with a read deadline.
pub fn h1_connect(addr: SocketAddr) -> io::BufReader<TcpStream> {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    io::BufReader::new(s)
}

fn crlf_line(r: &mut impl BufRead) -> io::Result<String> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    line.strip_suffix("\r\n")
        .map(str::to_string)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("line {line:?}")))
}

/// Reads one answer, skipping interim ones, by its framing (RFC 9112 6.3).
pub fn read_answer(r: &mut impl BufRead, head_request: bool) -> io::Result<Answer> {
    let mut answer = Answer::default();
    loop {
        let status_line = crlf_line(r)?;
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, status_line.clone()))?;
        let mut headers = Vec::new();
        loop {
            let line = crlf_line(r)?;
            if line.is_empty() {
                break;
            }
            let (n, v) = line
                .split_once(':')
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, line.clone()))?;
            headers.push((n.to_string(), v.trim().to_string()));
        }
        if (100..200).contains(&status) && status != 101 {
            answer.interim.push(status);
            continue;
        }
        answer.status = status;
        answer.headers = headers;
        break;
    }
    let bodyless = head_request || matches!(answer.status, 204 | 304);
    let chunked = answer
        .header("transfer-encoding")
        .iter()
        .any(|v| v.eq_ignore_ascii_case("chunked"));
    if bodyless {
        return Ok(answer);
    }
    if chunked {
        loop {
            let size_line = crlf_line(r)?;
            let size = usize::from_str_radix(size_line.split(';').next().unwrap_or(""), 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, size_line.clone()))?;
            if size == 0 {
                while !crlf_line(r)?.is_empty() {}
                return Ok(answer);
            }
            let mut data = vec![0; size];
            r.read_exact(&mut data)?;
            answer.body.extend_from_slice(&data);
            if !crlf_line(r)?.is_empty() {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "chunk end"));
            }
        }
    }
    match answer.header("content-length").first() {
        Some(n) => {
            let n: usize = n
                .parse()
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, n.to_string()))?;
            answer.body = vec![0; n];
            r.read_exact(&mut answer.body)?;
        }
        None => {
            r.read_to_end(&mut answer.body)?;
        }
    }
    Ok(answer)
}

/// How an HTTP/2 request ends its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum H2End {
    /// END_STREAM on the last DATA frame with data (on HEADERS when there is none).
    OnData,
    /// An empty DATA frame with END_STREAM after the data.
    EmptyData,
    /// A trailers HEADERS frame with END_STREAM.
    Trailers,
    /// No END_STREAM: the body stays open while the answer is read.
    Open,
}

#[derive(Debug, Clone)]
pub struct H2Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    /// Each piece is one DATA frame.
    pub pieces: Vec<Vec<u8>>,
    /// Send `content-length`.
    pub content_length: bool,
    pub end: H2End,
}

impl H2Request {
    pub fn content(&self) -> Vec<u8> {
        self.pieces.concat()
    }
}

/// An HTTP/2 connection over TLS to `addr`, trusting `ca_pem`.
pub async fn h2_connect(
    addr: SocketAddr,
    host: &str,
    ca_pem: &str,
) -> h2::client::SendRequest<Bytes> {
    h2_connect_with(addr, host, ca_pem, h2::client::Builder::new()).await
}

/// [`h2_connect`] with the client's settings in `builder`.
pub async fn h2_connect_with(
    addr: SocketAddr,
    host: &str,
    ca_pem: &str,
    builder: h2::client::Builder,
) -> h2::client::SendRequest<Bytes> {
    super::tls::install_provider();
    let config = super::tls::client_config(ca_pem, &[b"h2"]);
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from(host.to_string()).unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    let (send, connection) = builder.handshake(tls).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    send.ready().await.unwrap()
}

/// Sends `req` as one stream and reads its answer.
pub async fn h2_exchange(
    send: &mut h2::client::SendRequest<Bytes>,
    host: &str,
    req: &H2Request,
) -> Result<Answer, h2::Error> {
    let mut builder = http::Request::builder()
        .method(req.method.as_str())
        .uri(format!("https://{host}{}", req.path));
    for (n, v) in &req.headers {
        builder = builder.header(n, v);
    }
    if req.content_length {
        builder = builder.header("content-length", req.content().len());
    }
    let pieces: Vec<&Vec<u8>> = req.pieces.iter().filter(|p| !p.is_empty()).collect();
    let headers_end = pieces.is_empty() && req.end == H2End::OnData;
    *send = send.clone().ready().await?;
    let (response, mut stream) = send.send_request(builder.body(()).unwrap(), headers_end)?;
    for (i, piece) in pieces.iter().enumerate() {
        let last = i + 1 == pieces.len() && req.end == H2End::OnData;
        stream.send_data(Bytes::copy_from_slice(piece), last)?;
    }
    match req.end {
        H2End::OnData => {}
        H2End::EmptyData => stream.send_data(Bytes::new(), true)?,
        H2End::Trailers => {
            let mut trailers = http::HeaderMap::new();
            trailers.insert("x-trailer", http::HeaderValue::from_static("t"));
            stream.send_trailers(trailers)?;
        }
        H2End::Open => {}
    }
    let response = response.await?;
    let mut answer = Answer {
        status: response.status().as_u16(),
        headers: response
            .headers()
            .iter()
            .map(|(n, v)| (n.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
            .collect(),
        ..Answer::default()
    };
    let mut body = response.into_body();
    while let Some(data) = body.data().await {
        let data = data?;
        let _ = body.flow_control().release_capacity(data.len());
        answer.body.extend_from_slice(&data);
    }
    Ok(answer)
}
