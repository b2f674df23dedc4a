//! The connection layer under the proxy: what happens between accept and the
//! first hook, and between two requests on a kept-alive connection.
//!
//! - `max_connections`: a connection over the limit is closed at once and counted.
//! - TLS handshakes are done here, bounded by `client_header_timeout_ms`, so a
//!   failing client is counted by reason and logged at debug, not as a gateway error.
//! - HTTP/1 request heads must arrive whole within `client_header_timeout_ms`
//!   (a partial head then gets `408`), and an idle kept-alive connection is closed
//!   after `keepalive_timeout_ms`. The wait for a request's first bytes happens
//!   here, outside the proxy's per-request state (about 14 KB), so an idle
//!   connection holds little more than its socket.
//! - Pingora answers a request it cannot parse with its own bare `400` before any
//!   hook runs; this layer writes the gateway's `400`, with the policy, instead.
//!
//! - A chunked HTTP/1 request body is judged byte for byte as it is read
//!   ([`check_chunked`], `framing.rs`): one outside RFC 9112's grammar is refused.
//!
//! The proxy's `early_request_filter` says when a head was read whole
//! ([`head_complete`]), through a task-local: this layer serves an HTTP/1
//! connection's requests on the task that accepted it.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use log::debug;
use pingora_core::apps::{
    HttpPersistentSettings, HttpServerApp, HttpServerOptions, ReusedHttpStream, ServerApp,
};
use pingora_core::listeners::tls::Acceptor;
use pingora_core::protocols::http::v2::server::H2Options;
use pingora_core::protocols::http::ServerSession;
use pingora_core::protocols::raw_connect::ProxyDigest;
use pingora_core::protocols::tls::{SslDigest, TlsRef};
use pingora_core::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use pingora_core::server::ShutdownWatch;
use pingora_error::Error;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};

use crate::flood::FrameCounter;
use crate::forwarded;
use crate::framing::{BadChunk, ChunkCheck};
use crate::lifecycle::Lifecycle;
use crate::metrics::{metrics, Closure, HandshakeFailure, Refusal, Rejection};
use crate::policy::{Canned, ConnectionLimits, Plan};

tokio::task_local! {
    static CONNECTION: Arc<Connection>;
    static BODY: Arc<BodyClock>;
}

/// An HTTP/2 stream's request body: when it was last read from, and whether more
/// is expected. Pingora has no read timeout for HTTP/2 bodies, so the stream's own
/// task watches this ([`Rounds`]).
struct BodyClock {
    start: Instant,
    /// Milliseconds from `start` to the latest read.
    last_read: AtomicU64,
    waiting: AtomicBool,
}

impl BodyClock {
    fn last_read(&self) -> Instant {
        self.start + Duration::from_millis(self.last_read.load(Ordering::Relaxed))
    }

    /// Ready when the body has waited `timeout` for its next read. While no body
    /// is pending it looks again a whole `timeout` later, never at a past instant
    /// (which would wake it at once, over and over).
    async fn stalled(&self, timeout: Duration) {
        loop {
            let due = if self.waiting.load(Ordering::Relaxed) {
                self.last_read() + timeout
            } else {
                Instant::now() + timeout
            };
            tokio::time::sleep_until(due).await;
            if self.waiting.load(Ordering::Relaxed) && self.last_read() + timeout <= Instant::now()
            {
                return;
            }
        }
    }
}

/// Tells an HTTP/2 stream's body watch whether a request body is still to come
/// (HTTP/1 bodies have Pingora's read timeout). A no-op outside a stream.
pub fn body_expected(expected: bool) {
    let _ = BODY.try_with(|c| c.waiting.store(expected, Ordering::Relaxed));
}

/// A piece of an HTTP/2 request body was read (the last one, with `done`).
pub fn body_read(done: bool) {
    let _ = BODY.try_with(|c| {
        let since = c.start.elapsed().as_millis();
        c.last_read
            .store(u64::try_from(since).unwrap_or(u64::MAX), Ordering::Relaxed);
        if done {
            c.waiting.store(false, Ordering::Relaxed);
        }
    });
}

/// Tells the connection serving this task that a request head was read whole.
/// A no-op outside an HTTP/1 connection of [`EdgeApp`] (HTTP/2 streams).
pub fn head_complete() {
    let _ = CONNECTION.try_with(|c| c.phase.store(BUSY, Ordering::Relaxed));
}

/// Where a connection is: reading a head (or, for HTTP/2, its preface), or
/// serving a request.
const HEAD: u8 = 1;
const BUSY: u8 = 2;

struct Connection {
    phase: AtomicU8,
}

/// The app every public listener runs, in front of the proxy.
pub struct EdgeApp<P> {
    rounds: Arc<Rounds<P>>,
    /// The TLS listeners' acceptors, by configured address.
    tls: HashMap<std::net::SocketAddr, Acceptor>,
    plan: Arc<ArcSwap<Plan>>,
    open: Arc<AtomicUsize>,
    /// Open connections by peer address, while `max_connections_per_ip` is on.
    per_ip: PerIp,
    /// Given to Pingora as its shutdown watch for requests and HTTP/2 connections:
    /// it turns true when draining starts, before the listeners stop accepting
    /// ([`crate::lifecycle`]).
    drain: ShutdownWatch,
    /// Keeps the drain watch's sender, so the watch never closes.
    _lifecycle: Arc<Lifecycle>,
}

impl<P> EdgeApp<P> {
    pub fn new(
        proxy: Arc<P>,
        tls: HashMap<std::net::SocketAddr, Acceptor>,
        plan: Arc<ArcSwap<Plan>>,
        lifecycle: Arc<Lifecycle>,
    ) -> EdgeApp<P> {
        EdgeApp {
            rounds: Arc::new(Rounds {
                proxy,
                plan: plan.clone(),
                turns: Mutex::default(),
            }),
            tls,
            plan,
            open: Arc::new(AtomicUsize::new(0)),
            per_ip: PerIp::default(),
            drain: lifecycle.drain_watch(),
            _lifecycle: lifecycle,
        }
    }

    /// The acceptor of the listener a connection came in on: its local address,
    /// or the same port for a listener on `0.0.0.0` / `[::]`.
    fn acceptor(&self, stream: &Stream) -> Option<&Acceptor> {
        if self.tls.is_empty() {
            return None;
        }
        let digest = stream.get_socket_digest()?;
        let local = *digest.local_addr()?.as_inet()?;
        self.tls.get(&local).or_else(|| {
            self.tls
                .iter()
                .find(|(a, _)| a.ip().is_unspecified() && a.port() == local.port())
                .map(|(_, acceptor)| acceptor)
        })
    }
}

impl<P: HttpServerApp + Send + Sync + 'static> EdgeApp<P> {
    /// The requests of one HTTP/1 connection, one round each, until it closes.
    /// Pipelined requests are not kept: Pingora answers the first and closes.
    async fn serve_http1(
        &self,
        mut guarded: Box<Guarded>,
        connection: Arc<Connection>,
        limits: ConnectionLimits,
        shutdown: &ShutdownWatch,
    ) {
        let mut reused = false;
        let mut settings: Option<HttpPersistentSettings> = None;
        // A kept-alive connection waiting for its next request closes when the
        // listeners do, not when draining starts: a load balancer may still send it
        // a request until then. One wait for the whole connection: a wait per
        // request registered and removed a waiter each time.
        let mut closing = shutdown.clone();
        let closed = closing.wait_for(|down| *down);
        tokio::pin!(closed);
        loop {
            // The next request's first bytes, awaited with no request state held.
            let arrived = tokio::select! {
                biased;
                arrived = std::future::poll_fn(|cx| guarded.poll_input(cx)) => arrived.unwrap_or(false),
                _ = &mut closed, if reused => false,
            };
            if !arrived {
                return;
            }
            guarded.start_head(reused);
            let mut session = ServerSession::new_http1(guarded);
            match settings.take() {
                Some(kept) => kept.apply_to_session(&mut session),
                None if reused || *self.drain.borrow() => session.set_keepalive(None),
                None => {
                    let limit = self
                        .rounds
                        .server_options()
                        .and_then(|o| o.keepalive_request_limit);
                    session.set_keepalive_reuses_remaining(limit);
                    // Pingora's own per-read limit (whole seconds) must not cut
                    // before the gateway's deadlines.
                    let longest = limits.keepalive_timeout.max(limits.header_timeout);
                    let secs = longest.as_millis().div_ceil(1000) as u64;
                    session.set_keepalive(Some(secs.max(1)));
                }
            }
            // A client that stops reading cannot hold the connection.
            session.set_write_timeout(Some(limits.send_timeout));
            // Draining, Pingora answers with `Connection: close`.
            let round = self.rounds.proxy.process_new_http(session, &self.drain);
            let Some(reusable) = CONNECTION.scope(connection.clone(), round).await else {
                return;
            };
            let (stream, kept) = reusable.consume();
            let Ok(back) = stream.into_any().downcast::<Guarded>() else {
                return;
            };
            guarded = back;
            guarded.start_idle();
            settings = kept;
            reused = true;
        }
    }
}

/// One open connection, counted until dropped.
struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(open: &Arc<AtomicUsize>, max: usize) -> Option<Slot> {
        if open.fetch_add(1, Ordering::AcqRel) >= max {
            open.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        metrics().connection_opened();
        Some(Slot(open.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
        metrics().connection_closed();
    }
}

/// Open connections by peer address.
type PerIp = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// One connection counted against its peer address until dropped; an address
/// with none left open leaves the table.
struct IpSlot {
    table: PerIp,
    ip: IpAddr,
}

impl IpSlot {
    fn take(table: &PerIp, ip: IpAddr, max: usize) -> Option<IpSlot> {
        let mut open = table.lock().unwrap_or_else(PoisonError::into_inner);
        let n = open.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            table: table.clone(),
            ip,
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if let std::collections::hash_map::Entry::Occupied(mut n) = open.entry(self.ip) {
            *n.get_mut() -= 1;
            if *n.get() == 0 {
                n.remove();
            }
        }
    }
}

#[async_trait]
impl<P: HttpServerApp + Send + Sync + 'static> ServerApp for EdgeApp<P> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let acceptor = self.acceptor(&stream);
        let https = acceptor.is_some();
        let (limits, canned, counted_ip) = {
            let plan = self.plan.load();
            // The socket's peer, never a forwarded header; trusted proxies are exempt.
            let counted_ip = (plan.limits.max_connections_per_ip > 0)
                .then(|| {
                    stream
                        .get_socket_digest()?
                        .peer_addr()?
                        .as_inet()
                        .map(|a| a.ip())
                })
                .flatten()
                .filter(|ip| !forwarded::is_trusted(&plan.trusted_proxies, Some(*ip)));
            (plan.limits, plan.canned.pick(https), counted_ip)
        };
        let per_ip = limits.max_connections_per_ip;
        let _ip_slot = match counted_ip {
            None => None,
            Some(ip) => match IpSlot::take(&self.per_ip, ip, per_ip) {
                Some(slot) => Some(slot),
                None => {
                    metrics().connection_refused(Refusal::MaxConnectionsPerIp);
                    debug!("{ip} holds {per_ip} connections: refused");
                    return None;
                }
            },
        };
        let Some(_slot) = Slot::take(&self.open, limits.max_connections) else {
            metrics().connection_refused(Refusal::MaxConnections);
            return None;
        };
        // One deadline from the accept covers the TLS handshake and the first head
        // (or HTTP/2 preface): a slow handshake leaves less time for the head.
        let first_head_by = Instant::now() + limits.header_timeout;
        let stream: Stream = match acceptor {
            None => stream,
            Some(acceptor) => {
                // Boxed: inline, its state would enlarge every connection's future.
                let handshake = Box::pin(acceptor.tls_handshake(Transport(stream)));
                match tokio::time::timeout_at(first_head_by, handshake).await {
                    Ok(Ok(tls)) => Box::new(tls),
                    Ok(Err(e)) => {
                        let reason = classify_handshake_error(&e);
                        metrics().tls_handshake_failed(reason);
                        debug!("TLS handshake failed ({}): {e}", <&str>::from(reason));
                        return None;
                    }
                    Err(_) => {
                        metrics().tls_handshake_failed(HandshakeFailure::Timeout);
                        debug!("TLS handshake timed out after {:?}", limits.header_timeout);
                        return None;
                    }
                }
            }
        };
        let connection = Arc::new(Connection {
            phase: AtomicU8::new(HEAD),
        });
        if stream.selected_alpn_proto() == Some(ALPN::H2) {
            // HTTP/2 multiplexes: only its preface has the head deadline; after it,
            // Pingora's `h2_idle_timeout` is the idle limit.
            // Pingora sends a GOAWAY when the watch turns true, then finishes the
            // open streams: when draining starts, or, for a connection accepted
            // while draining, when the listeners close. A GOAWAY right after the
            // handshake would race the client's first streams (tests/lifecycle.rs).
            let guarded = Guarded::new(
                stream,
                connection,
                limits,
                canned,
                Protocol::h2(),
                first_head_by,
            );
            let goaway = if *self.drain.borrow() {
                shutdown
            } else {
                &self.drain
            };
            let permits = limits
                .max_upstream_per_connection
                .min(Semaphore::MAX_PERMITS);
            let _turns = guarded
                .get_socket_digest()
                .map(|d| Turns::open(&self.rounds, connection_key(&d), permits));
            return self.rounds.process_new(Box::new(guarded), goaway).await;
        }
        let guarded = Box::new(Guarded::new(
            stream,
            connection.clone(),
            limits,
            canned,
            Protocol::Http1,
            first_head_by,
        ));
        self.serve_http1(guarded, connection, limits, shutdown)
            .await;
        None
    }

    /// Not forwarded to the proxy: its cleanup drops every connection whose request
    /// head is still arriving when the listeners close. This layer already closes
    /// kept-alive connections that wait for a request then, and a head that began
    /// arriving is read to its end within `client_header_timeout_ms`.
    async fn cleanup(&self) {}
}

/// The proxy as HTTP/2 connections see it: each call is one stream.
pub struct Rounds<P> {
    proxy: Arc<P>,
    plan: Arc<ArcSwap<Plan>>,
    /// Each open HTTP/2 connection's turns at the upstreams
    /// (`max_upstream_per_connection`), by the address of its socket digest,
    /// which all its streams share.
    turns: Mutex<HashMap<usize, Arc<Semaphore>>>,
}

impl<P> Rounds<P> {
    /// The turns of the connection a stream belongs to.
    fn turns_of(&self, session: &ServerSession) -> Option<Arc<Semaphore>> {
        let key = connection_key(session.digest()?.socket_digest.as_ref()?);
        let turns = self.turns.lock().unwrap_or_else(PoisonError::into_inner);
        turns.get(&key).cloned()
    }
}

fn connection_key(digest: &Arc<SocketDigest>) -> usize {
    Arc::as_ptr(digest) as usize
}

/// An HTTP/2 connection's entry in [`Rounds::turns`], removed when the connection
/// ends however it ends, and only if it is still this connection's (a later
/// connection may have the same key once this one's digest is freed).
struct Turns<'a, P> {
    rounds: &'a Rounds<P>,
    key: usize,
    turns: Arc<Semaphore>,
}

impl<'a, P> Turns<'a, P> {
    fn open(rounds: &'a Rounds<P>, key: usize, permits: usize) -> Turns<'a, P> {
        let turns = Arc::new(Semaphore::new(permits));
        let mut all = rounds.turns.lock().unwrap_or_else(PoisonError::into_inner);
        all.insert(key, turns.clone());
        Turns { rounds, key, turns }
    }
}

impl<P> Drop for Turns<'_, P> {
    fn drop(&mut self) {
        let mut all = self
            .rounds
            .turns
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if all
            .get(&self.key)
            .is_some_and(|t| Arc::ptr_eq(t, &self.turns))
        {
            all.remove(&self.key);
        }
    }
}

#[async_trait]
impl<P: HttpServerApp + Send + Sync + 'static> HttpServerApp for Rounds<P> {
    async fn process_new_http(
        self: &Arc<Self>,
        mut session: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        let limits = self.plan.load().limits;
        // A client that stops reading cannot hold the connection.
        session.set_write_timeout(Some(limits.send_timeout));
        // A stream past the connection's `max_upstream_per_connection` waits for
        // an earlier one to end before it is proxied.
        let _turn = match self.turns_of(&session) {
            Some(turns) => Some(turns.acquire_owned().await.ok()?),
            None => None,
        };
        // Nor can one that stops sending its body: the stream is cut (its upstream
        // connection closed) once the body waited `client_body_timeout_ms`.
        let clock = Arc::new(BodyClock {
            start: Instant::now(),
            last_read: AtomicU64::new(0),
            waiting: AtomicBool::new(false),
        });
        let round = BODY.scope(
            clock.clone(),
            self.proxy.process_new_http(session, shutdown),
        );
        tokio::select! {
            done = round => done,
            () = clock.stalled(limits.body_timeout) => {
                metrics().request_rejected(Rejection::BodyTimeout);
                debug!("HTTP/2 request body stalled for {:?}: stream reset", limits.body_timeout);
                None
            }
        }
    }

    fn h2_options(&self) -> Option<H2Options> {
        self.proxy.h2_options()
    }

    fn server_options(&self) -> Option<&HttpServerOptions> {
        self.proxy.server_options()
    }
}

/// Pingora's TLS acceptor flattens the rustls error into its message, so the
/// reason is read from rustls' wording; anything unrecognized is `other`.
fn classify_handshake_error(e: &Error) -> HandshakeFailure {
    let text = e.to_string();
    let has = |needle: &str| text.contains(needle);
    if has("handshake eof") || has("reset by peer") || has("Broken pipe") {
        HandshakeFailure::Closed
    } else if has("corrupt message") || has("InvalidContentType") {
        HandshakeFailure::NotTls
    } else if has("peer is incompatible") {
        HandshakeFailure::Incompatible
    } else if has("received fatal alert") {
        HandshakeFailure::AlertReceived
    } else {
        HandshakeFailure::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingora_error::ErrorType;

    #[test]
    fn handshake_errors_are_classified_by_rustls_wording() {
        let err = |text: &str| {
            classify_handshake_error(&Error::explain(
                ErrorType::TLSHandshakeFailure,
                format!(
                    "TLS accept() failed:  TLSHandshakeFailure context: tls connect error: {text}"
                ),
            ))
        };
        assert_eq!(err("tls handshake eof"), HandshakeFailure::Closed);
        assert_eq!(
            err("received corrupt message of type InvalidContentType"),
            HandshakeFailure::NotTls
        );
        assert_eq!(
            err("peer is incompatible: NoKxGroupsInCommon"),
            HandshakeFailure::Incompatible
        );
        assert_eq!(
            err("received fatal alert: UnknownCA"),
            HandshakeFailure::AlertReceived
        );
        assert_eq!(err("something new"), HandshakeFailure::Other);
    }
}

/// What the guarded stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// Request heads, with the deadline, the idle limit and the own `400`.
    Http1,
    /// HTTP/2: the deadline covers the client's connection preface only.
    Http2 { preface_left: usize },
}

impl Protocol {
    /// RFC 9113 3.4: `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`.
    fn h2() -> Protocol {
        Protocol::Http2 { preface_left: 24 }
    }
}

/// A connection's byte stream, with the head deadline, the idle limit and the
/// substitution of Pingora's bare `400` (HTTP/1).
#[derive(Debug)]
struct Guarded {
    inner: Stream,
    protocol: Protocol,
    connection: Arc<Connection>,
    limits: ConnectionLimits,
    canned: Canned,
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
    chunks: Mutex<Option<ChunkCheck>>,
    /// A gateway answer still to write, and how much of it is written.
    answer: Option<(Bytes, usize)>,
    /// Everything after the gateway's own answer is discarded.
    answered: bool,
    /// HTTP/2: the client's frames, counted for floods (boxed: HTTP/1 has none).
    frames: Option<Box<FrameCounter>>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Connection({})", self.phase.load(Ordering::Relaxed))
    }
}

/// How much of a request is read at once while waiting for it; most heads fit.
const FIRST_READ: usize = 4096;

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

impl Guarded {
    fn new(
        inner: Stream,
        connection: Arc<Connection>,
        limits: ConnectionLimits,
        canned: Canned,
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
    fn poll_input(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
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
    fn start_head(&mut self, restart_clock: bool) {
        self.connection.phase.store(HEAD, Ordering::Relaxed);
        self.beyond_stash = Vec::new();
        if restart_clock {
            self.set_deadline(Instant::now() + self.limits.header_timeout);
        }
    }

    /// The request is done; the connection may idle until the next one.
    fn start_idle(&mut self) {
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
    fn past_head(&self, head: &[u8]) -> Option<&[u8]> {
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

/// Pingora's `Stream` is a boxed trait object, which its TLS acceptor cannot take:
/// this hands the same stream over as a concrete type.
#[derive(Debug)]
struct Transport(Stream);

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for Transport {
    async fn shutdown(&mut self) {
        self.0.shutdown().await;
    }
}

/// The stream traits other than reading and writing pass straight through.
macro_rules! pass_through {
    ($t:ty, $inner:tt) => {
        impl UniqueID for $t {
            fn id(&self) -> UniqueIDType {
                self.$inner.id()
            }
        }
        impl Ssl for $t {
            fn get_ssl(&self) -> Option<&TlsRef> {
                self.$inner.get_ssl()
            }
            fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
                self.$inner.get_ssl_digest()
            }
            fn selected_alpn_proto(&self) -> Option<ALPN> {
                self.$inner.selected_alpn_proto()
            }
        }
        impl GetTimingDigest for $t {
            fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
                self.$inner.get_timing_digest()
            }
            fn get_read_pending_time(&self) -> Duration {
                self.$inner.get_read_pending_time()
            }
            fn get_write_pending_time(&self) -> Duration {
                self.$inner.get_write_pending_time()
            }
        }
        impl GetProxyDigest for $t {
            fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
                self.$inner.get_proxy_digest()
            }
            fn set_proxy_digest(&mut self, digest: ProxyDigest) {
                self.$inner.set_proxy_digest(digest)
            }
        }
        impl GetSocketDigest for $t {
            fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
                self.$inner.get_socket_digest()
            }
            fn set_socket_digest(&mut self, digest: SocketDigest) {
                self.$inner.set_socket_digest(digest)
            }
        }
        #[async_trait]
        impl Peek for $t {
            async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
                self.$inner.try_peek(buf).await
            }
        }
    };
}

pass_through!(Transport, 0);
pass_through!(Guarded, inner);
