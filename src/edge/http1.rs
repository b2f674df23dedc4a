//! An HTTP/1 connection's requests, served one round each on the task that
//! accepted it; the wait for the next request holds no request state.

use std::sync::Arc;

use pingora_core::apps::{HttpPersistentSettings, HttpServerApp};
use pingora_core::protocols::http::ServerSession;
use pingora_core::server::ShutdownWatch;

use crate::policy::ConnectionLimits;

use super::deadline::{Connection, CONNECTION};
use super::guarded::Guarded;
use super::EdgeApp;

impl<P: HttpServerApp + Send + Sync + 'static> EdgeApp<P> {
    /// The requests of one HTTP/1 connection, one round each, until it closes.
    /// Pipelined requests are not kept: Pingora answers the first and closes.
    pub(super) async fn serve_http1(
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
