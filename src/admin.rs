//! The admin listener: `/metrics` (Prometheus text format), `/healthz` and `/readyz`.
//!
//! It runs as its own Pingora service, off the public listeners.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use http::{header, Response, StatusCode};
use pingora_core::apps::http_app::ServeHttp;
use pingora_core::protocols::http::ServerSession;

use crate::lifecycle::Lifecycle;
use crate::metrics::metrics;

pub struct AdminApp {
    /// The public listeners `/readyz` waits for.
    listeners: Vec<SocketAddr>,
    /// `/readyz` fails from SIGTERM on, while the listeners still serve.
    lifecycle: Arc<Lifecycle>,
    /// Every listener was found bound once. Pingora keeps them until shutdown, so
    /// later probes need not read the kernel's socket tables, whose size grows with
    /// every open and TIME_WAIT connection on the host: under load, reading them
    /// took longer than a probe's timeout (benches/lifecycle.rs).
    bound: AtomicBool,
}

impl AdminApp {
    pub fn new(listeners: Vec<SocketAddr>, lifecycle: Arc<Lifecycle>) -> AdminApp {
        AdminApp {
            listeners,
            lifecycle,
            bound: AtomicBool::new(false),
        }
    }
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        match session.req_header().uri.path() {
            "/metrics" => reply(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                metrics().render(),
            ),
            "/healthz" => reply(StatusCode::OK, TEXT, "ok\n".into()),
            // The configuration is loaded before any listener exists, so readiness
            // is the public listeners being bound by this very process.
            "/readyz" if self.lifecycle.is_terminating() => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                TEXT,
                "not ready: shutting down\n".into(),
            ),
            "/readyz" if self.lifecycle.is_awaiting_cluster() => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                TEXT,
                "not ready: waiting for the cluster's objects\n".into(),
            ),
            "/readyz" if self.bound.load(Ordering::Relaxed) => {
                reply(StatusCode::OK, TEXT, "ready\n".into())
            }
            "/readyz" => match unbound(&self.listeners) {
                Ok(missing) if missing.is_empty() => {
                    self.bound.store(true, Ordering::Relaxed);
                    reply(StatusCode::OK, TEXT, "ready\n".into())
                }
                Ok(missing) => {
                    let list: Vec<String> = missing.iter().map(|a| a.to_string()).collect();
                    reply(
                        StatusCode::SERVICE_UNAVAILABLE,
                        TEXT,
                        format!("not ready: not listening on {}\n", list.join(", ")),
                    )
                }
                Err(e) => reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    TEXT,
                    format!("not ready: cannot inspect listeners: {e}\n"),
                ),
            },
            _ => reply(StatusCode::NOT_FOUND, TEXT, "not found\n".into()),
        }
    }
}

const TEXT: &str = "text/plain; charset=utf-8";

fn reply(status: StatusCode, content_type: &str, body: String) -> Response<Vec<u8>> {
    let body = body.into_bytes();
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CONTENT_LENGTH, body.len())
        .header(header::CACHE_CONTROL, "no-store")
        .body(body)
        .expect("static response parts are valid")
}

/// The listener addresses that no socket of this process listens on.
///
/// Connecting would not do: while Pingora retries a busy port, another process
/// holding that port would answer. So this matches the kernel's table of listening
/// TCP sockets against the sockets this process owns.
fn unbound(listeners: &[SocketAddr]) -> procfs::ProcResult<Vec<SocketAddr>> {
    let own: HashSet<u64> = procfs::process::Process::myself()?
        .fd()?
        .filter_map(|fd| match fd.ok()?.target {
            procfs::process::FDTarget::Socket(inode) => Some(inode),
            _ => None,
        })
        .collect();
    let mut listening = HashSet::new();
    for entry in procfs::net::tcp()?.into_iter().chain(procfs::net::tcp6()?) {
        if entry.state == procfs::net::TcpState::Listen && own.contains(&entry.inode) {
            listening.insert(entry.local_address);
        }
    }
    Ok(listeners
        .iter()
        .filter(|a| !listening.contains(a))
        .copied()
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_listening_sockets_are_found_and_others_are_not() {
        let ours = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = ours.local_addr().unwrap();
        assert_eq!(unbound(&[addr]).unwrap(), Vec::<SocketAddr>::new());
        drop(ours);
        assert_eq!(unbound(&[addr]).unwrap(), vec![addr]);
    }
}
