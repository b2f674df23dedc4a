//! Which replica writes the Gateway API's status: the holder of a
//! `coordination.k8s.io` Lease (kube 4.2 has no leader election of its own).
//!
//! Every replica watches and serves; only the holder writes, so that replicas
//! never write conditions back and forth. The holder renews every
//! [`RETRY`]; it stops writing once it has not renewed for [`RENEW_DEADLINE`],
//! before the others may take over ([`LEASE`] after they last saw the Lease
//! change), so two replicas never believe they hold it at once. Times are each
//! replica's own observations, never another's clock.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};
use log::{info, warn};
use tokio::sync::watch;
use tokio::time::{sleep, timeout, Instant};

/// How long a Lease stays held without renewal.
pub const LEASE: Duration = Duration::from_secs(15);
/// How long the holder goes on writing without a renewal.
const RENEW_DEADLINE: Duration = Duration::from_secs(10);
/// How often each replica tries to take or renew the Lease.
const RETRY: Duration = Duration::from_secs(2);

/// Tries to take and keep the Lease `name` in `namespace`; whether this
/// replica holds it is published on the returned channel.
pub fn elect(client: Client, namespace: &str, name: &str) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    let api: Api<Lease> = Api::namespaced(client, namespace);
    let name = name.to_string();
    let identity = identity();
    info!("status writer election: Lease {namespace}/{name} as {identity}");
    tokio::spawn(async move {
        let mut seen: Option<(String, Instant)> = None;
        let mut renewed: Option<Instant> = None;
        loop {
            match timeout(RETRY, try_hold(&api, &name, &identity, &mut seen)).await {
                Ok(Ok(true)) => renewed = Some(Instant::now()),
                Ok(Ok(false)) => renewed = None,
                Ok(Err(e)) => warn!("Lease {name}: {e}"),
                Err(_) => warn!("Lease {name}: no answer in {RETRY:?}"),
            }
            let holds = renewed.is_some_and(|at| at.elapsed() < RENEW_DEADLINE);
            if *tx.borrow() != holds {
                info!(
                    "status writer: {}",
                    if holds {
                        "this replica"
                    } else {
                        "another replica"
                    }
                );
                tx.send_replace(holds);
            }
            if tx.is_closed() {
                return;
            }
            sleep(RETRY).await;
        }
    });
    rx
}

/// This replica's name in the Lease: the pod's, else the host's and the process's.
fn identity() -> String {
    std::env::var("POD_NAME").unwrap_or_else(|_| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        format!("{}-{}", host.trim(), std::process::id())
    })
}

/// One round: creates, renews or takes over the Lease; `true` when this replica
/// holds it afterwards. `seen`: the other holder's last renewal as this replica
/// first saw it, and when.
async fn try_hold(
    api: &Api<Lease>,
    name: &str,
    identity: &str,
    seen: &mut Option<(String, Instant)>,
) -> Result<bool, kube::Error> {
    let now = MicroTime(Timestamp::now());
    let Some(mut lease) = api.get_opt(name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(identity.to_string()),
                lease_duration_seconds: Some(LEASE.as_secs() as i32),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            // Another replica created it first.
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    let holder = spec.holder_identity.clone().unwrap_or_default();
    if holder != identity && !holder.is_empty() {
        // The record as it stands: a renewal changes it.
        let record = format!("{holder}/{:?}", spec.renew_time.as_ref().map(|t| t.0));
        let changed = seen.as_ref().is_none_or(|(r, _)| *r != record);
        if changed {
            *seen = Some((record, Instant::now()));
        }
        let duration = spec.lease_duration_seconds.map_or(LEASE, |s| {
            Duration::from_secs(u64::try_from(s).unwrap_or(0))
        });
        let expired = seen.as_ref().is_some_and(|(_, at)| at.elapsed() > duration);
        if !expired {
            return Ok(false);
        }
        info!("Lease {name}: {holder} stopped renewing; taking it over");
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        spec.acquire_time = Some(now.clone());
    }
    spec.holder_identity = Some(identity.to_string());
    spec.lease_duration_seconds = Some(LEASE.as_secs() as i32);
    spec.renew_time = Some(now);
    // The resource version makes this a compare-and-swap: of two replicas
    // taking over at once, one gets a conflict.
    match api.replace(name, &PostParams::default(), &lease).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}
