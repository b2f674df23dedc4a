//! How the process stops serving without losing a request.
//!
//! - **SIGTERM** (Kubernetes deletes the pod): `/readyz` turns `503` at once, and
//!   the listeners keep accepting for `shutdown_drain_seconds` while the endpoint
//!   removal reaches every load balancer. Meanwhile each HTTP/1 request gets
//!   `Connection: close` and each HTTP/2 connection a GOAWAY, so clients leave on
//!   their own. Then Pingora's graceful shutdown runs: the listeners stop
//!   accepting, in-flight requests get `grace_period_seconds`, and the process
//!   exits 0.
//! - **SIGQUIT** (graceful upgrade, a new process started with `-u`): Pingora hands
//!   the listening sockets over and keeps accepting on them beside the new process
//!   for 5 s. Kept-alive connections are drained the same way, so their clients
//!   reconnect, soon only to the new process. `/readyz` stays `200`: the service
//!   goes on.
//! - **SIGINT**: a fast shutdown, also during the SIGTERM drain. Signals after the
//!   first are otherwise ignored: the handlers stay installed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use log::info;
use pingora_core::server::{RunArgs, ShutdownSignal, ShutdownSignalWatch, ShutdownWatch};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

use crate::policy::Plan;

pub struct Lifecycle {
    /// Turns true when connections should stop being kept alive.
    drain: watch::Sender<bool>,
    /// SIGTERM arrived: this process is going away, so it is no longer ready.
    terminating: AtomicBool,
    /// `shutdown_drain_seconds` is read when SIGTERM arrives, so a reload changes it.
    plan: Arc<ArcSwap<Plan>>,
    /// Kubernetes mode, before the first complete list of the cluster's objects.
    awaiting_cluster: AtomicBool,
}

impl Lifecycle {
    /// `awaiting_cluster`: not ready until [`Lifecycle::cluster_synced`].
    pub fn new(plan: Arc<ArcSwap<Plan>>, awaiting_cluster: bool) -> Arc<Lifecycle> {
        Arc::new(Lifecycle {
            drain: watch::channel(false).0,
            terminating: AtomicBool::new(false),
            plan,
            awaiting_cluster: AtomicBool::new(awaiting_cluster),
        })
    }

    /// The cluster's objects are served.
    pub fn cluster_synced(&self) {
        self.awaiting_cluster.store(false, Ordering::Relaxed);
    }

    pub fn is_awaiting_cluster(&self) -> bool {
        self.awaiting_cluster.load(Ordering::Relaxed)
    }

    /// What the connection layer passes to Pingora in place of its shutdown watch:
    /// once true, Pingora answers HTTP/1 requests with `Connection: close` and sends
    /// HTTP/2 connections a GOAWAY, then finishes their open streams.
    pub fn drain_watch(&self) -> ShutdownWatch {
        self.drain.subscribe()
    }

    pub fn is_terminating(&self) -> bool {
        self.terminating.load(Ordering::Relaxed)
    }

    /// Pingora's run arguments, with this lifecycle's signal handling.
    pub fn run_args(self: &Arc<Self>) -> RunArgs {
        RunArgs {
            shutdown_signal: Box::new(Signals(self.clone())),
        }
    }

    fn start_draining(&self) {
        self.drain.send_replace(true);
    }
}

struct Signals(Arc<Lifecycle>);

#[async_trait]
impl ShutdownSignalWatch for Signals {
    async fn recv(&self) -> ShutdownSignal {
        let lifecycle = &self.0;
        let (Ok(mut quit), Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::quit()),
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            // Only fails without a signal driver, which Pingora's runtime has.
            log::error!("cannot install signal handlers; shutting down");
            return ShutdownSignal::FastShutdown;
        };
        tokio::select! {
            _ = int.recv() => ShutdownSignal::FastShutdown,
            _ = quit.recv() => {
                info!("SIGQUIT: handing the listeners to the new process; kept-alive connections are drained");
                lifecycle.start_draining();
                ShutdownSignal::GracefulUpgrade
            }
            _ = term.recv() => {
                lifecycle.terminating.store(true, Ordering::Relaxed);
                lifecycle.start_draining();
                let drain = lifecycle.plan.load().shutdown_drain;
                info!(
                    "SIGTERM: /readyz is 503; serving {}s more with connections drained, then stopping",
                    drain.as_secs()
                );
                tokio::select! {
                    _ = tokio::time::sleep(drain) => ShutdownSignal::GracefulTerminate,
                    _ = int.recv() => ShutdownSignal::FastShutdown,
                }
            }
        }
    }
}
