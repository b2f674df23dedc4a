//! The byte stream under every public connection ([`Guarded`]): the head
//! deadline, the idle limit, the gateway's own `400` and `408` in place of
//! Pingora's, the chunked body judged as it is read, and an HTTP/2 client's
//! frames counted for floods.

use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use log::debug;
use pingora_core::protocols::raw_connect::ProxyDigest;
use pingora_core::protocols::tls::{SslDigest, TlsRef};
use pingora_core::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::access_log::line::Entry;
use crate::flood::FrameCounter;
use crate::framing::ChunkCheck;
use crate::metrics::{metrics, Closure, Rejection, UNMATCHED, VHOST_ROUTE};
use crate::policy::access_log::LogPlan;
use crate::policy::{Canned, ConnectionLimits};

use super::deadline::{Connection, BUSY, HEAD};
use super::transport::pass_through;

/// What the guarded stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Protocol {
    /// Request heads, with the deadline, the idle limit and the own `400`.
    Http1,
    /// HTTP/2: the deadline covers the client's connection preface only.
    Http2 { preface_left: usize },
}

impl Protocol {
    /// RFC 9113 3.4: `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`.
    pub(super) fn h2() -> Protocol {
        Protocol::Http2 { preface_left: 24 }
    }
}

/// A connection's byte stream, with the head deadline, the idle limit and the
/// substitution of Pingora's bare `400` (HTTP/1).
#[derive(Debug)]
pub(super) struct Guarded {
    inner: Stream,
    protocol: Protocol,
    connection: Arc<Connection>,
    limits: ConnectionLimits,
    canned: Canned,
    /// The top level's access log: the connection layer's own answers are logged
    /// under `_unmatched`, as no vhost took them.
    log: Option<Arc<LogPlan>>,
    /// The head deadline (from the accept, then from each head's first byte), or
    /// the idle limit while waiting for the next request, or the answer's.
    deadline: Instant,
    /// Fires at or before `deadline`. Moved only when it fires early or the
    /// deadline comes sooner: moving it for every request cost a timer-wheel
    /// update each time.
    timer: Pin<Box<Sleep>>,
    /// A request's first bytes, read while waiting for it, handed to Pingora first
    /// (from `stash_at` on), and kept until the request ends: they hold the start
    /// of its body, which Pingora read with the head.
    stash: Bytes,
    stash_at: usize,
    /// What Pingora read of the current head past the stash (heads that take
    /// more than one read): with the stash, every byte received up to the end of
    /// the head and the start of the body Pingora read with it.
    beyond_stash: Vec<u8>,
    /// The judge of a chunked body still arriving; the proxy starts it through
    /// a shared reference, the reads feed it through `get_mut`, which takes no lock.
    pub(super) chunks: Mutex<Option<ChunkCheck>>,
    /// A gateway answer still to write, and how much of it is written.
    answer: Option<(Bytes, usize)>,
    /// Everything after the gateway's own answer is discarded.
    answered: bool,
    /// HTTP/2: the client's frames, counted for floods (boxed: HTTP/1 has none).
    frames: Option<Box<FrameCounter>>,
}

/// How much of a request is read at once while waiting for it; most heads fit.
const FIRST_READ: usize = 4096;

impl Guarded {
    pub(super) fn new(
        inner: Stream,
        connection: Arc<Connection>,
        limits: ConnectionLimits,
        (canned, log): (Canned, Option<Arc<LogPlan>>),
        protocol: Protocol,
        deadline: Instant,
    ) -> Guarded {
        Guarded {
            inner,
            protocol,
            connection,
            deadline,
            timer: Box::pin(tokio::time::sleep_until(deadline)),
            limits,
            canned,
            log,
            stash: Bytes::new(),
            stash_at: 0,
            beyond_stash: Vec::new(),
            chunks: Mutex::new(None),
            answer: None,
            answered: false,
            frames: matches!(protocol, Protocol::Http2 { .. })
                .then(|| Box::new(FrameCounter::new(std::time::Instant::now()))),
        }
    }

    fn phase(&self) -> u8 {
        self.connection.phase.load(Ordering::Relaxed)
    }

    fn set_deadline(&mut self, at: Instant) {
        self.deadline = at;
        if at < self.timer.deadline() {
            self.timer.as_mut().reset(at);
        }
    }

    /// Ready once the deadline has passed.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            std::task::ready!(self.timer.as_mut().poll(cx));
            if self.timer.deadline() >= self.deadline {
                return Poll::Ready(());
            }
            let at = self.deadline;
            self.timer.as_mut().reset(at);
        }
    }

    /// Waits for a request's first bytes (`false`: the client left, or the
    /// deadline passed without a byte: close without an answer). The read buffer
    /// lives on the stack only while polled, so waiting costs no memory.
    pub(super) fn poll_input(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        if self.stash_at < self.stash.len() {
            return Poll::Ready(Ok(true));
        }
        // Uninitialized: zeroing 4 KiB for every request showed up in the profile.
        let mut space = [std::mem::MaybeUninit::<u8>::uninit(); FIRST_READ];
        let mut buf = ReadBuf::uninit(&mut space);
        match Pin::new(&mut self.inner).poll_read(cx, &mut buf) {
            Poll::Ready(Ok(())) if buf.filled().is_empty() => Poll::Ready(Ok(false)),
            Poll::Ready(Ok(())) => {
                self.stash = Bytes::copy_from_slice(buf.filled());
                self.stash_at = 0;
                Poll::Ready(Ok(true))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match self.poll_deadline(cx) {
                Poll::Ready(()) => Poll::Ready(Ok(false)),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    /// A head has begun. The first one's deadline runs from the accept; later
    /// ones' from their first byte.
    pub(super) fn start_head(&mut self, restart_clock: bool) {
        self.connection.phase.store(HEAD, Ordering::Relaxed);
        self.beyond_stash = Vec::new();
        if restart_clock {
            self.set_deadline(Instant::now() + self.limits.header_timeout);
        }
    }

    /// The request is done; the connection may idle until the next one.
    pub(super) fn start_idle(&mut self) {
        self.set_deadline(Instant::now() + self.limits.keepalive_timeout);
        // An idle connection holds none of the last request's bytes.
        self.stash = Bytes::new();
        self.stash_at = 0;
        self.beyond_stash = Vec::new();
        *self
            .chunks
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// What was read of the current request past `head`, the head as Pingora
    /// parsed it; `None` when that is not the head as received (Pingora re-escapes
    /// a request target it cannot parse, which moves every later byte).
    /// The whole head is compared: a re-escaped target that happens to line up
    /// with later bytes must not pass.
    pub(super) fn past_head(&self, head: &[u8]) -> Option<&[u8]> {
        let stash = &self.stash[..self.stash_at];
        if self.beyond_stash.is_empty() {
            return stash.starts_with(head).then(|| &stash[head.len()..]);
        }
        // Pingora read past the stash only because the head had not ended in it.
        let (in_stash, rest) = head.split_at_checked(stash.len())?;
        let beyond = &self.beyond_stash;
        (in_stash == stash && beyond.starts_with(rest)).then(|| &beyond[rest.len()..])
    }

    /// Bytes Pingora just read (`read_bytes`, or this range of the stash): kept
    /// while they are a head's, judged while they are a chunked body's.
    fn note_read(
        &mut self,
        from_stash: Option<(usize, usize)>,
        read_bytes: &[u8],
    ) -> io::Result<()> {
        if self.phase() == HEAD {
            if from_stash.is_none() {
                self.beyond_stash.extend_from_slice(read_bytes);
            }
            return Ok(());
        }
        let chunks = self
            .chunks
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(check) = chunks else {
            return Ok(());
        };
        let bytes = match from_stash {
            Some((from, to)) => &self.stash[from..to],
            None => read_bytes,
        };
        if let Err(why) = check.feed(bytes) {
            *chunks = None;
            debug!("{why}: the request is refused");
            metrics().request_rejected(Rejection::Malformed);
            return Err(io::Error::new(io::ErrorKind::InvalidData, why));
        }
        if check.done() {
            *chunks = None;
        }
        Ok(())
    }

    /// Bytes written to an HTTP/2 client earn its flood budget.
    fn note_written(&mut self, written: &Poll<io::Result<usize>>) {
        if let (Some(frames), Poll::Ready(Ok(n))) = (self.frames.as_mut(), written) {
            frames.wrote(*n, std::time::Instant::now());
        }
    }

    /// Writes what is left of the gateway's answer, within `send_timeout_ms`: a
    /// client that does not read it cannot hold the connection.
    fn poll_answer(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let written = self.poll_answer_bytes(cx);
        if written.is_pending() && self.poll_deadline(cx).is_ready() {
            self.answer = None;
            return Poll::Ready(Err(io::ErrorKind::TimedOut.into()));
        }
        written
    }

    fn poll_answer_bytes(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, written)) = self.answer.as_mut() {
            if *written == bytes.len() {
                self.answer = None;
                break;
            }
            let n =
                std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    /// The head missed its deadline: `408`, then the read fails.
    fn time_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        debug!(
            "request head not complete within {:?}: 408",
            self.limits.header_timeout
        );
        self.answer_with(self.canned.timeout.clone(), Rejection::HeaderTimeout);
        std::task::ready!(self.poll_answer(cx))?;
        Poll::Ready(Err(io::ErrorKind::TimedOut.into()))
    }

    fn answer_with(&mut self, bytes: Bytes, rejection: Rejection) {
        if !self.answered {
            if let Some(log) = &self.log {
                let peer = self
                    .inner
                    .get_socket_digest()
                    .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip()));
                log_rejection(log, &bytes, rejection, peer);
            }
            self.answered = true;
            self.answer = Some((bytes, 0));
            self.set_deadline(Instant::now() + self.limits.send_timeout);
            metrics().request_rejected(rejection);
        }
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.answered {
            std::task::ready!(this.poll_answer(cx))?;
            return Poll::Ready(Err(io::ErrorKind::TimedOut.into()));
        }
        if this.stash_at < this.stash.len() {
            let from = this.stash_at;
            let to = this.stash.len().min(from + buf.remaining());
            buf.put_slice(&this.stash[from..to]);
            this.stash_at = to;
            return Poll::Ready(this.note_read(Some((from, to)), &[]));
        }
        let head = this.phase() == HEAD;
        match this.protocol {
            Protocol::Http1 => {
                // A client that keeps trickling bytes is always ready to read: the
                // deadline is checked before reading, not only while waiting.
                if head && Instant::now() >= this.deadline {
                    return this.time_out(cx);
                }
            }
            Protocol::Http2 { .. } => {}
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let read = &buf.filled()[before..];
                match &mut this.protocol {
                    Protocol::Http2 { preface_left } => {
                        let preface = (*preface_left).min(read.len());
                        *preface_left -= preface;
                        if *preface_left == 0 {
                            this.connection.phase.store(BUSY, Ordering::Relaxed);
                        }
                        if let Some(frames) = this.frames.as_mut() {
                            let now = std::time::Instant::now();
                            if let Err(flood) = frames.feed(&read[preface..], now) {
                                debug!("{flood}: connection closed");
                                metrics().connection_cut(Closure::H2ControlFlood);
                                return Poll::Ready(Err(io::Error::new(
                                    io::ErrorKind::ConnectionAborted,
                                    flood,
                                )));
                            }
                        }
                    }
                    Protocol::Http1 => return Poll::Ready(this.note_read(None, read)),
                }
                return Poll::Ready(Ok(()));
            }
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => {}
        }
        if !head || this.poll_deadline(cx).is_pending() {
            return Poll::Pending;
        }
        match this.protocol {
            Protocol::Http1 => this.time_out(cx),
            // An HTTP/2 client that never finished its preface: end of stream.
            Protocol::Http2 { .. } => Poll::Ready(Ok(())),
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if !this.answered && this.phase() != BUSY && this.protocol == Protocol::Http1 {
            // Before a head was accepted, the only writer is Pingora refusing it.
            debug!("request head refused by the HTTP parser: 400 with the policy");
            this.answer_with(this.canned.bad_request.clone(), Rejection::Malformed);
        }
        if this.answered {
            std::task::ready!(this.poll_answer(cx))?;
            return Poll::Ready(Ok(buf.len()));
        }
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.note_written(&written);
        written
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.answered || (this.phase() != BUSY && this.protocol == Protocol::Http1) {
            let first = bufs
                .iter()
                .find(|b| !b.is_empty())
                .map_or(&[][..], |b| &**b);
            return Pin::new(this).poll_write(cx, first);
        }
        let written = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.note_written(&written);
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.answer.is_some() {
            return this.poll_answer(cx);
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_answer(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for Guarded {
    async fn shutdown(&mut self) {
        if self.answer.is_some() {
            let _ = std::future::poll_fn(|cx| self.poll_answer(cx)).await;
        }
        self.inner.shutdown().await;
    }
}

pass_through!(Guarded, inner);

/// The access line of a head the connection layer refused (`answer`: the
/// canned response, head and body): no request was parsed, so no method, path
/// or id; the status and the reason say what happened.
fn log_rejection(log: &LogPlan, answer: &[u8], rejection: Rejection, client: Option<IpAddr>) {
    let (status, reason) = match rejection {
        Rejection::HeaderTimeout => (408, "header_timeout"),
        _ => (400, "malformed_head"),
    };
    let body_at = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(answer.len(), |at| at + 4);
    log.write(&Entry {
        time_ms: i64::try_from(crate::access_log::unix_now().as_millis()).unwrap_or(0),
        vhost: UNMATCHED,
        route: VHOST_ROUTE,
        status,
        bytes_sent: (answer.len() - body_at) as u64,
        protocol: "h1",
        client,
        reason: Some(reason),
        ..Entry::default()
    });
}
