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
//!
//! The files: `slots.rs` (the connection limits), `http1.rs` (an HTTP/1
//! connection's requests), `h2.rs` (HTTP/2 connections handed to Pingora),
//! `guarded.rs` (the byte stream with the deadlines and the own answers),
//! `chunked.rs` (the chunked-body judge's entry points), `deadline.rs` (what the
//! proxy's hooks tell this layer), `transport.rs` (the stream Pingora's TLS
//! acceptor takes).

mod chunked;
mod deadline;
mod guarded;
mod h2;
mod http1;
mod slots;
mod transport;

pub use chunked::{check_chunked, is_bad_chunk};
pub use deadline::{body_expected, body_read, head_complete};
pub use h2::Rounds;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, AtomicUsize};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use log::debug;
use pingora_core::apps::{HttpServerApp, ServerApp};
use pingora_core::listeners::tls::Acceptor;
use pingora_core::protocols::{GetSocketDigest, Stream, ALPN};
use pingora_core::server::ShutdownWatch;
use pingora_error::Error;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::forwarded;
use crate::lifecycle::Lifecycle;
use crate::metrics::{metrics, HandshakeFailure, Refusal};
use crate::policy::Plan;

use deadline::{Connection, HEAD};
use guarded::{Guarded, Protocol};
use h2::{connection_key, Turns};
use slots::{IpSlot, PerIp, Slot};
use transport::Transport;

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

#[async_trait]
impl<P: HttpServerApp + Send + Sync + 'static> ServerApp for EdgeApp<P> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let acceptor = self.acceptor(&stream);
        let https = acceptor.is_some();
        let (limits, answers, counted_ip) = {
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
            let answers = (plan.canned.pick(https), plan.unmatched_log.clone());
            (plan.limits, answers, counted_ip)
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
                answers,
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
            answers,
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
