//! SIGUSR1 reopens every access-log file, after logrotate has moved it away.

use async_trait::async_trait;
use log::{info, warn};
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use tokio::signal::unix::{signal, SignalKind};

use super::sink::reopen_all;

pub struct Reopener;

#[async_trait]
impl BackgroundService for Reopener {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut usr1 = match signal(SignalKind::user_defined1()) {
            Ok(s) => s,
            Err(e) => {
                warn!("cannot handle SIGUSR1 (access logs are not reopened): {e}");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                Some(()) = usr1.recv() => {
                    info!("SIGUSR1: reopening the access log files");
                    reopen_all();
                }
            }
        }
    }
}
