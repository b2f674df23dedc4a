//! Access logs: one line per request, JSON or nginx's `combined`
//! ([`line`]), handed to a writer thread through a bounded buffer ([`sink`]),
//! with the request's id ([`request_id`]); SIGUSR1 reopens the files ([`reopen`]).

pub mod line;
pub mod reopen;
pub mod request_id;
pub mod sink;
