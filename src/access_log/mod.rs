//! Access logs: one line per request, JSON or nginx's `combined`
//! ([`line`]), handed to a writer thread through a bounded buffer ([`sink`]),
//! with the request's id ([`request_id`]); SIGUSR1 reopens the files ([`reopen`]).

pub mod line;
pub mod reopen;
pub mod request_id;
pub mod sink;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The wall clock as time since the Unix epoch (zero for a clock set before it): the
/// time of an access line, and the first bits of a request id.
pub fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}
