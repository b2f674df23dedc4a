//! Hot reload of gw.yaml, the policy files and certificates.
//!
//! Triggers: file-system events on the watched directories (debounced), SIGHUP, and
//! a periodic content check as a safety net for file systems that miss events. Each
//! trigger compares a fingerprint of the files with the last one tried, so an
//! unchanged configuration (good or bad) is not loaded again. A new configuration
//! is loaded and compiled off the request path and swapped in whole; an invalid one
//! is rejected and the last good one keeps serving.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use log::{error, info, warn};
use notify::{EventKind, RecursiveMode, Watcher};
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::access_log::sink::is_log_file;
use crate::compose::Composer;
use crate::config::kubernetes::ObjectName;
use crate::config::{LoadedConfig, Sources};
use crate::metrics::metrics;

/// How long the files must stay quiet after an event before reloading; editors and
/// `kubectl` write in several steps.
const DEBOUNCE: Duration = Duration::from_millis(25);
const DEBOUNCE_MAX: Duration = Duration::from_millis(250);
/// The safety-net content check.
const CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// What cannot change without restarting: listeners, Pingora's own settings, and
/// what the cluster's watches were started with.
#[derive(Debug, Clone, PartialEq)]
struct Fixed {
    listeners: Vec<(SocketAddr, bool)>,
    admin: Option<SocketAddr>,
    server_settings: String,
    watches: (bool, Option<String>, Vec<ObjectName>),
}

impl Fixed {
    fn of(loaded: &LoadedConfig) -> Fixed {
        Fixed {
            listeners: loaded
                .gateway
                .listeners
                .iter()
                .map(|l| (l.address, l.tls.is_some()))
                .collect(),
            admin: loaded.gateway.admin.as_ref().map(|a| a.address),
            server_settings: loaded.server_settings.clone(),
            watches: {
                let k = &loaded.gateway.kubernetes;
                (k.enabled, k.kubeconfig.clone(), k.namespaces.clone())
            },
        }
    }
}

struct State {
    /// As started: a reload cannot change it, only report that it would.
    fixed: Fixed,
    /// Of the configuration being served.
    sources: Sources,
    last_attempt: u64,
}

pub struct Reloader {
    path: PathBuf,
    composer: Arc<Composer>,
    state: Mutex<State>,
}

impl Reloader {
    pub fn new(composer: Arc<Composer>) -> Reloader {
        let (path, fixed, sources) =
            composer.with_file(|loaded| (loaded.path.clone(), Fixed::of(loaded), loaded.sources()));
        Reloader {
            path,
            composer,
            state: Mutex::new(State {
                fixed,
                last_attempt: sources.fingerprint(),
                sources,
            }),
        }
    }

    fn watch_dirs(&self) -> Vec<PathBuf> {
        self.lock().sources.watch_dirs()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reloads when the files changed since the last attempt (or always, if
    /// `force`). Returns the directories to watch from now on.
    fn reload(&self, force: bool) -> Vec<PathBuf> {
        let mut state = self.lock();
        let print = state.sources.fingerprint();
        if !force && print == state.last_attempt {
            return state.sources.watch_dirs();
        }
        state.last_attempt = print;
        let swapped = self.composer.reload_files(&self.path, |loaded, composed| {
            let vhosts = composed.plan.vhosts.len();
            (Fixed::of(loaded), loaded.sources(), vhosts, composed.hash)
        });
        match swapped {
            Ok((fixed, sources, vhosts, hash)) => {
                let server = Fixed {
                    watches: state.fixed.watches.clone(),
                    ..fixed.clone()
                };
                let changed: Vec<&str> = [
                    (
                        server != state.fixed,
                        "listeners or Pingora server settings",
                    ),
                    (
                        fixed.watches != state.fixed.watches,
                        "kubernetes.enabled, kubeconfig or namespaces",
                    ),
                ]
                .into_iter()
                .filter_map(|(changed, what)| changed.then_some(what))
                .collect();
                if !changed.is_empty() {
                    let what = changed.join(" and ");
                    warn!(
                        "{}: {what} changed; they take effect after a graceful upgrade \
                         (pingora-secgw -u) or a restart, the rest of the change is applied",
                        self.path.display()
                    );
                }
                // The new configuration may read other files.
                state.sources = sources;
                state.last_attempt = state.sources.fingerprint();
                info!(
                    "reloaded {} ({vhosts} vhosts, hash {hash:016x})",
                    self.path.display()
                );
            }
            Err(e) => {
                metrics().config_reload_failed();
                error!("reload rejected, still serving the last good configuration: {e}");
            }
        }
        state.sources.watch_dirs()
    }
}

/// Keeps the watcher on exactly `dirs`.
fn rewatch(
    watcher: &mut Option<notify::RecommendedWatcher>,
    watched: &mut Vec<PathBuf>,
    dirs: Vec<PathBuf>,
) {
    let Some(w) = watcher.as_mut() else { return };
    if *watched == dirs {
        return;
    }
    for old in watched.iter().filter(|d| !dirs.contains(d)) {
        let _ = w.unwatch(old);
    }
    for dir in dirs.iter().filter(|d| !watched.contains(d)) {
        if let Err(e) = w.watch(dir, RecursiveMode::NonRecursive) {
            warn!(
                "cannot watch {}: {e}; the periodic check still covers it",
                dir.display()
            );
        }
    }
    *watched = dirs;
}

#[async_trait]
impl BackgroundService for Reloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let (tx, mut events) = mpsc::unbounded_channel::<()>();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            // Reads (including the gateway's own) are not changes, nor are the
            // access log's writes.
            let change = |e: &notify::Event| {
                !matches!(e.kind, EventKind::Access(_))
                    && (e.paths.is_empty() || !e.paths.iter().all(|p| is_log_file(p)))
            };
            if event.is_ok_and(|e| change(&e)) {
                let _ = tx.send(());
            }
        });
        let mut watcher = match watcher {
            Ok(w) => Some(w),
            Err(e) => {
                warn!("file watching unavailable ({e}); reloading on SIGHUP and every {CHECK_INTERVAL:?}");
                None
            }
        };
        let mut watched = Vec::new();
        rewatch(&mut watcher, &mut watched, self.watch_dirs());

        let mut hangup = match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                warn!("cannot handle SIGHUP: {e}");
                None
            }
        };
        let mut check = tokio::time::interval(CHECK_INTERVAL);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let force = tokio::select! {
                _ = shutdown.changed() => return,
                Some(()) = events.recv() => {
                    // Quiet for DEBOUNCE, or DEBOUNCE_MAX at most: a file written
                    // without pause beside gw.yaml must not hold reloads back.
                    // (The deadline is checked here: a timeout polls the
                    // channel first, and a steady writer keeps it ready.)
                    let until = tokio::time::Instant::now() + DEBOUNCE_MAX;
                    loop {
                        let now = tokio::time::Instant::now();
                        if now >= until {
                            break;
                        }
                        let quiet = tokio::time::timeout_at(until.min(now + DEBOUNCE), events.recv());
                        if !matches!(quiet.await, Ok(Some(()))) {
                            break;
                        }
                    }
                    false
                }
                Some(()) = async { hangup.as_mut()?.recv().await } => {
                    info!("SIGHUP: reloading the configuration");
                    true
                }
                _ = check.tick() => false,
            };
            let dirs = self.reload(force);
            rewatch(&mut watcher, &mut watched, dirs);
        }
    }
}
