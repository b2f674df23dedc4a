//! HTTP/2 connections handed to Pingora: [`Rounds`], the proxy as their streams
//! see it, with each connection's turns at the upstreams
//! (`max_upstream_per_connection`) and each stream's body stall deadline.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use log::debug;
use pingora_core::apps::{HttpServerApp, HttpServerOptions, ReusedHttpStream};
use pingora_core::protocols::http::v2::server::H2Options;
use pingora_core::protocols::http::ServerSession;
use pingora_core::protocols::SocketDigest;
use pingora_core::server::ShutdownWatch;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::metrics::{metrics, Rejection};
use crate::policy::Plan;

use super::deadline::{BodyClock, BODY};

/// The proxy as HTTP/2 connections see it: each call is one stream.
pub struct Rounds<P> {
    pub(super) proxy: Arc<P>,
    pub(super) plan: Arc<ArcSwap<Plan>>,
    /// Each open HTTP/2 connection's turns at the upstreams
    /// (`max_upstream_per_connection`), by the address of its socket digest,
    /// which all its streams share.
    pub(super) turns: Mutex<HashMap<usize, Arc<Semaphore>>>,
}

impl<P> Rounds<P> {
    /// The turns of the connection a stream belongs to.
    fn turns_of(&self, session: &ServerSession) -> Option<Arc<Semaphore>> {
        let key = connection_key(session.digest()?.socket_digest.as_ref()?);
        let turns = self.turns.lock().unwrap_or_else(PoisonError::into_inner);
        turns.get(&key).cloned()
    }
}

pub(super) fn connection_key(digest: &Arc<SocketDigest>) -> usize {
    Arc::as_ptr(digest) as usize
}

/// An HTTP/2 connection's entry in [`Rounds::turns`], removed when the connection
/// ends however it ends, and only if it is still this connection's (a later
/// connection may have the same key once this one's digest is freed).
pub(super) struct Turns<'a, P> {
    rounds: &'a Rounds<P>,
    key: usize,
    turns: Arc<Semaphore>,
}

impl<'a, P> Turns<'a, P> {
    pub(super) fn open(rounds: &'a Rounds<P>, key: usize, permits: usize) -> Turns<'a, P> {
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
