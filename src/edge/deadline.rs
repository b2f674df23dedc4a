//! What the proxy's hooks tell the connection layer, through task-locals: that a
//! request head was read whole (the connection's phase, which ends the head
//! deadline), and when an HTTP/2 request body was read from (the clock of its
//! stall deadline).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

tokio::task_local! {
    pub(super) static CONNECTION: Arc<Connection>;
    pub(super) static BODY: Arc<BodyClock>;
}

/// An HTTP/2 stream's request body: when it was last read from, and whether more
/// is expected. Pingora has no read timeout for HTTP/2 bodies, so the stream's own
/// task watches this ([`Rounds`](super::Rounds)).
pub(super) struct BodyClock {
    pub(super) start: Instant,
    /// Milliseconds from `start` to the latest read.
    pub(super) last_read: AtomicU64,
    pub(super) waiting: AtomicBool,
}

impl BodyClock {
    fn last_read(&self) -> Instant {
        self.start + Duration::from_millis(self.last_read.load(Ordering::Relaxed))
    }

    /// Ready when the body has waited `timeout` for its next read. While no body
    /// is pending it looks again a whole `timeout` later, never at a past instant
    /// (which would wake it at once, over and over).
    pub(super) async fn stalled(&self, timeout: Duration) {
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
/// A no-op outside an HTTP/1 connection of [`EdgeApp`](super::EdgeApp) (HTTP/2 streams).
pub fn head_complete() {
    let _ = CONNECTION.try_with(|c| c.phase.store(BUSY, Ordering::Relaxed));
}

/// Where a connection is: reading a head (or, for HTTP/2, its preface), or
/// serving a request.
pub(super) const HEAD: u8 = 1;
pub(super) const BUSY: u8 = 2;

pub(super) struct Connection {
    pub(super) phase: AtomicU8,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Connection({})", self.phase.load(Ordering::Relaxed))
    }
}
