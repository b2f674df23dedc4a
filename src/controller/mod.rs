//! Kubernetes mode: watches the cluster's Ingresses (and what they name) and serves
//! them through the [`Composer`], off the request path.
//!
//! A burst of changes (a rollout touches many EndpointSlices) is compiled once:
//! after the first change the controller waits until the caches have been quiet
//! for [`QUIET`], at most [`MAX_DELAY`]. Until the first complete list the
//! gateway is not ready (`/readyz`), so a pod never takes traffic for hosts it
//! does not know yet.

mod caches;
mod client;
mod gateway_status;
mod lease;
mod policy_status;
mod report;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use log::{error, info};
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

pub use caches::list_once;
use caches::Caches;
pub use client::connect;
use report::Reports;

use crate::cluster::{ClusterObjects, Translation};
use crate::compose::Composer;
use crate::config::kubernetes::{KubernetesConfig, StatusAddress};
use crate::lifecycle::Lifecycle;

/// How long the caches must be quiet before compiling.
const QUIET: Duration = Duration::from_millis(30);
/// The longest a change waits for quiet.
const MAX_DELAY: Duration = Duration::from_millis(200);

pub struct Controller {
    composer: Arc<Composer>,
    lifecycle: Arc<Lifecycle>,
    settings: KubernetesConfig,
    kubeconfig: Option<PathBuf>,
}

impl Controller {
    pub fn new(
        composer: Arc<Composer>,
        lifecycle: Arc<Lifecycle>,
        settings: KubernetesConfig,
        base_dir: &Path,
    ) -> Controller {
        let kubeconfig = settings.kubeconfig.as_ref().map(|k| base_dir.join(k));
        Controller {
            composer,
            lifecycle,
            settings,
            kubeconfig,
        }
    }

    /// What each Gateway's `status.addresses` says: `status_address`, else the
    /// pod's IP, else the specific addresses of gw.yaml's listeners.
    fn gateway_addresses(&self) -> Vec<gateway_status::Address> {
        let entry = |ip: std::net::IpAddr| ("IPAddress", ip.to_string());
        match &self.settings.status_address {
            Some(StatusAddress::Ip(ip)) => return vec![entry(*ip)],
            Some(StatusAddress::Hostname(name)) => return vec![("Hostname", name.clone())],
            None => {}
        }
        if let Some(ip) = std::env::var("POD_IP").ok().and_then(|ip| ip.parse().ok()) {
            return vec![entry(ip)];
        }
        let mut ips: Vec<std::net::IpAddr> = self.composer.with_file(|loaded| {
            loaded
                .gateway
                .listeners
                .iter()
                .map(|l| l.address.ip())
                .filter(|ip| !ip.is_unspecified())
                .collect()
        });
        ips.sort();
        ips.dedup();
        ips.into_iter().map(entry).collect()
    }

    /// Compiles the current objects, on a blocking thread so that the watches
    /// keep being read meanwhile; returns what they became.
    async fn compile(&self, objects: Arc<ClusterObjects>) -> Option<Translation> {
        let started = Instant::now();
        let counts = (objects.ingresses.len(), objects.services.len());
        let composer = self.composer.clone();
        let compiled = tokio::task::spawn_blocking(move || composer.update_cluster(objects)).await;
        let compiled = compiled.unwrap_or_else(|e| {
            std::panic::resume_unwind(e.try_into_panic().unwrap_or_else(|_| Box::new("cancelled")))
        });
        match compiled {
            Ok(translation) => {
                info!(
                    "serving the cluster's objects: {} Ingresses ({} served, as {} hosts), \
                     {} Services, {} problems; compiled in {:.1} ms",
                    counts.0,
                    translation.served.len(),
                    translation.vhosts.len(),
                    counts.1,
                    translation.problems.len(),
                    started.elapsed().as_secs_f64() * 1000.0
                );
                Some(translation)
            }
            Err(e) => {
                error!("the cluster's objects were not applied, the last plan keeps serving: {e}");
                None
            }
        }
    }
}

#[async_trait]
impl BackgroundService for Controller {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let client = match connect(self.kubeconfig.as_deref()).await {
            Ok(c) => c,
            Err(e) => {
                error!("Kubernetes mode: {e}; serving gw.yaml alone, not ready");
                return;
            }
        };
        let (changed, mut changes) = mpsc::unbounded_channel();
        let kinds = caches::Kinds::served(&client).await;
        let gateway_api = kinds.gateway_api;
        let caches = Caches::start(&client, &self.settings.namespaces, kinds, changed);
        tokio::select! {
            _ = caches.ready() => {}
            _ = shutdown.changed() => return,
        }
        // Events and status go out on their own task: a slow API server never
        // delays the next plan.
        let (translations, mut latest) = watch::channel(Arc::new(Translation::default()));
        let mut reports = Reports::new(client.clone(), self.settings.status_address.as_ref());
        // Without the Gateway API and SecurityPolicies no Lease is taken: the
        // receiver stays false.
        let mut leader = match gateway_api || kinds.security_policies {
            true => {
                let namespace = std::env::var("POD_NAMESPACE")
                    .unwrap_or_else(|_| client.default_namespace().to_string());
                let lease = format!("secgw-status-{}", self.settings.gateway_class.0);
                lease::elect(client.clone(), &namespace, &lease)
            }
            false => watch::channel(false).1,
        };
        let addresses = self.gateway_addresses();
        let reporter = tokio::spawn(async move {
            loop {
                tokio::select! {
                    changed = latest.changed() => if changed.is_err() { break },
                    // A replica that takes the Lease over writes what it has.
                    Ok(()) = leader.changed() => {}
                }
                let translation = latest.borrow_and_update().clone();
                reports.report(&translation).await;
                if *leader.borrow_and_update() {
                    let api = &translation.gateway_api;
                    gateway_status::write(&client, api, &addresses, &leader).await;
                    policy_status::write(&client, &translation.policies, &leader).await;
                }
            }
        });
        let mut compiled = None;
        loop {
            while changes.try_recv().is_ok() {}
            let objects = Arc::new(caches.snapshot());
            // The status writes come back through the watch; they change nothing
            // the plan reads.
            let print = objects.fingerprint();
            if compiled != Some(print) {
                if let Some(t) = self.compile(objects).await {
                    compiled = Some(print);
                    self.lifecycle.cluster_synced();
                    translations.send_replace(Arc::new(t));
                }
            }
            tokio::select! {
                _ = shutdown.changed() => break,
                Some(()) = changes.recv() => {}
            }
            let deadline = Instant::now() + MAX_DELAY;
            while let Ok(Some(())) =
                tokio::time::timeout_at(deadline.min(Instant::now() + QUIET), changes.recv()).await
            {
            }
        }
        reporter.abort();
    }
}

/// The plan the cluster would give now, listed once: what `-t --kubeconfig` and
/// `check --kubeconfig` read. Errors name what could not be listed or compiled.
pub fn compose_once(
    loaded: &mut crate::config::LoadedConfig,
    kubeconfig: &Path,
    metrics: &crate::metrics::Metrics,
) -> Result<crate::compose::Composed, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("a runtime to read the cluster: {e}"))?;
    let namespaces = loaded.gateway.kubernetes.namespaces.clone();
    let objects = runtime.block_on(async {
        let client = connect(Some(kubeconfig)).await?;
        list_once(&client, &namespaces).await
    })?;
    let previous = crate::cluster::Previous::default();
    crate::compose::compose(loaded, Some(&objects), &previous, metrics).map_err(|e| e.to_string())
}
