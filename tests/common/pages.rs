//! An upstream that answers each path with a scripted raw HTTP/1.1 response:
//! exact headers, a body in chosen pieces, and optional holds between pieces,
//! so tests control encodings, framing and streaming byte for byte.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One scripted response.
#[derive(Clone, Default)]
pub struct Page {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// Sent as a `Content-Length` body when `chunked` is off, else as chunks.
    pub pieces: Vec<Vec<u8>>,
    pub chunked: bool,
    /// Before this piece, wait until the test calls `release`.
    pub hold_before: Option<usize>,
    /// Between pieces, wait this long (a site dripping its body).
    pub drip: Option<Duration>,
}

impl Page {
    /// A 200 with `Content-Type` and the body in one piece.
    pub fn new(content_type: &str, body: impl Into<Vec<u8>>) -> Page {
        Page {
            status: 200,
            headers: vec![("Content-Type".into(), content_type.into())],
            pieces: vec![body.into()],
            ..Page::default()
        }
    }

    pub fn html(body: impl Into<Vec<u8>>) -> Page {
        Page::new("text/html; charset=utf-8", body)
    }

    pub fn header(mut self, name: &str, value: &str) -> Page {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn status(mut self, status: u16) -> Page {
        self.status = status;
        self
    }

    /// The body re-cut into pieces of `size` bytes, sent as HTTP chunks.
    pub fn in_chunks(mut self, size: usize) -> Page {
        let body: Vec<u8> = self.pieces.concat();
        self.pieces = body.chunks(size).map(<[u8]>::to_vec).collect();
        self.chunked = true;
        self
    }
}

pub struct PageServer {
    pub addr: SocketAddr,
    release: Mutex<Sender<()>>,
    /// Request heads, in arrival order.
    pub seen: Arc<Mutex<Vec<String>>>,
}

impl PageServer {
    pub fn start(pages: Vec<(&str, Page)>) -> PageServer {
        PageServer::start_on(pages, "127.0.0.1")
    }

    /// A page server listening on `ip` (such as `cluster::TEST_HOST`).
    pub fn start_on(pages: Vec<(&str, Page)>, ip: &str) -> PageServer {
        let pages = pages.into_iter().map(|(p, page)| (p, vec![page])).collect();
        PageServer::start_rotating(pages, ip)
    }

    /// Each path answers its pages in turn, request after request, and then
    /// from the first again.
    pub fn start_rotating(pages: Vec<(&str, Vec<Page>)>, ip: &str) -> PageServer {
        let listener = TcpListener::bind((ip, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let pages: Arc<HashMap<String, Rotation>> = Arc::new(
            pages
                .into_iter()
                .map(|(p, pages)| (p.to_string(), (pages, AtomicUsize::new(0))))
                .collect(),
        );
        let (tx, rx) = channel::<()>();
        let rx = Arc::new(Mutex::new(rx));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (pages, rx, seen) = (pages.clone(), rx.clone(), seen2.clone());
                std::thread::spawn(move || serve(stream, &pages, &rx, &seen));
            }
        });
        PageServer {
            addr,
            release: Mutex::new(tx),
            seen,
        }
    }

    /// Lets a held response go on.
    pub fn release(&self) {
        let _ = self.release.lock().unwrap().send(());
    }
}

/// A path's pages, and how many requests it answered.
type Rotation = (Vec<Page>, AtomicUsize);

fn serve(
    mut stream: TcpStream,
    pages: &HashMap<String, Rotation>,
    rx: &Mutex<Receiver<()>>,
    seen: &Mutex<Vec<String>>,
) {
    loop {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match stream.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                _ => return,
            }
        }
        let head = String::from_utf8_lossy(&head).to_string();
        seen.lock().unwrap().push(head.clone());
        let mut words = head.split_whitespace();
        let method = words.next().unwrap_or("").to_string();
        let path = words.next().unwrap_or("/").to_string();
        let page = pages
            .get(&path)
            .map(|(pages, next)| pages[next.fetch_add(1, Ordering::SeqCst) % pages.len()].clone())
            .unwrap_or_else(|| Page::new("text/plain", "no such page\n").status(404));
        if write_page(&mut stream, &page, method == "HEAD", rx).is_err() {
            return;
        }
    }
}

fn write_page(
    stream: &mut TcpStream,
    page: &Page,
    head_only: bool,
    rx: &Mutex<Receiver<()>>,
) -> std::io::Result<()> {
    let mut out = format!("HTTP/1.1 {} X\r\n", page.status);
    for (n, v) in &page.headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    let bodyless = matches!(page.status, 204 | 304);
    if page.chunked {
        out.push_str("Transfer-Encoding: chunked\r\n");
    } else if !bodyless {
        let len: usize = page.pieces.iter().map(Vec::len).sum();
        out.push_str(&format!("Content-Length: {len}\r\n"));
    }
    out.push_str("\r\n");
    stream.write_all(out.as_bytes())?;
    if head_only || bodyless {
        return stream.flush();
    }
    for (i, piece) in page.pieces.iter().enumerate() {
        if let Some(pause) = page.drip.filter(|_| i > 0) {
            std::thread::sleep(pause);
        }
        if page.hold_before == Some(i) {
            stream.flush()?;
            let _ = rx.lock().unwrap().recv_timeout(Duration::from_secs(20));
        }
        if page.chunked {
            stream.write_all(format!("{:X}\r\n", piece.len()).as_bytes())?;
            stream.write_all(piece)?;
            stream.write_all(b"\r\n")?;
        } else {
            stream.write_all(piece)?;
        }
        stream.flush()?;
    }
    if page.chunked {
        stream.write_all(b"0\r\n\r\n")?;
    }
    stream.flush()
}
