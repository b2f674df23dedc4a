//! What the gateway tells the cluster: an Event on each object it refuses (in part),
//! naming the field, and `status.loadBalancer` of each Ingress it serves.
//!
//! An Event is published once per distinct problem, not at every recompile; a
//! status is written only when it differs, so that writing it (which the Ingress
//! watch sees) does not loop. With `status_address` every replica writes the same
//! one address; without it each replica only adds its pod's IP to the list, so
//! that replicas never overwrite each other back and forth.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use k8s_openapi::api::networking::v1::{
    Ingress, IngressLoadBalancerIngress, IngressLoadBalancerStatus,
};
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Client, Resource, ResourceExt};
use log::{info, warn};
use tokio::time::timeout;

use crate::cluster::{object_name, Translation};
use crate::config::kubernetes::{StatusAddress, INGRESS_CONTROLLER};

/// New Events per Ingress per plan.
const EVENTS_PER_ROUND: usize = 5;
/// One API call (an Event, a status): a hung one must not stop the reports.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Reports {
    client: Client,
    recorder: Recorder,
    /// (object uid, reason, message) already published.
    published: HashSet<(String, &'static str, String)>,
    address: Option<IngressLoadBalancerIngress>,
    /// `status_address` given: the status is exactly it; else the pod's IP is added.
    exact: bool,
}

impl Reports {
    pub fn new(client: Client, address: Option<&StatusAddress>) -> Reports {
        let configured_exact = address.is_some();
        let reporter = Reporter {
            controller: INGRESS_CONTROLLER.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        let address = match address {
            Some(StatusAddress::Ip(ip)) => Some(ip_entry(ip.to_string())),
            Some(StatusAddress::Hostname(name)) => Some(IngressLoadBalancerIngress {
                hostname: Some(name.clone()),
                ..Default::default()
            }),
            None => std::env::var("POD_IP").ok().map(ip_entry),
        };
        if address.is_none() {
            info!("no kubernetes.status_address and no $POD_IP: Ingress status is not written");
        }
        Reports {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            published: HashSet::new(),
            exact: configured_exact,
            address,
        }
    }

    /// Writes the served Ingresses' status, then publishes the new problems.
    pub async fn report(&mut self, translation: &Translation) {
        self.write_status(translation).await;
        self.publish(translation).await;
    }

    /// At most [`EVENTS_PER_ROUND`] new Events per Ingress per plan: one object
    /// with thousands of problems cannot hold back everyone else's.
    async fn publish(&mut self, translation: &Translation) {
        let mut current = HashSet::new();
        let mut sent: HashMap<String, usize> = HashMap::new();
        let problems = translation.problems.iter().map(|p| (p, "not served"));
        let notices = translation.notices.iter().map(|p| (p, "served, changed"));
        for (p, what) in problems.chain(notices) {
            let key = (
                p.object.uid().unwrap_or_default(),
                p.reason,
                p.message.clone(),
            );
            current.insert(key.clone());
            if self.published.contains(&key) {
                continue;
            }
            let count = sent.entry(key.0.clone()).or_default();
            if *count == EVENTS_PER_ROUND {
                continue;
            }
            *count += 1;
            // A path can hold a newline: the log line stays one line.
            warn!(
                "Ingress {}: {what}: {}",
                p.object_name(),
                truncate(&p.message, 1000).escape_debug()
            );
            let event = Event {
                type_: EventType::Warning,
                reason: p.reason.into(),
                note: Some(truncate(&p.message, 1000)),
                action: "Serve".into(),
                secondary: None,
            };
            let reference = p.object.object_ref(&());
            match timeout(CALL_TIMEOUT, self.recorder.publish(&event, &reference)).await {
                Ok(Ok(())) => {
                    self.published.insert(key);
                }
                Ok(Err(e)) => warn!("Event on Ingress {}: {e}", p.object_name()),
                Err(_) => warn!(
                    "Event on Ingress {}: no answer in {CALL_TIMEOUT:?}",
                    p.object_name()
                ),
            }
        }
        // A problem fixed and back later is published again.
        self.published.retain(|k| current.contains(k));
    }

    async fn write_status(&self, translation: &Translation) {
        let Some(address) = &self.address else { return };
        for ingress in &translation.served {
            let current = ingress
                .status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.clone())
                .unwrap_or_default();
            let Some(wanted) = wanted_status(current, address, self.exact) else {
                continue;
            };
            let api: Api<Ingress> = Api::namespaced(
                self.client.clone(),
                &ingress.namespace().unwrap_or_default(),
            );
            let patch = serde_json::json!({"status": {"loadBalancer": wanted}});
            let name = ingress.name_any();
            let (params, patch) = (PatchParams::default(), Patch::Merge(&patch));
            let written = api.patch_status(&name, &params, &patch);
            match timeout(CALL_TIMEOUT, written).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => warn!("status of Ingress {}: {e}", object_name(ingress.as_ref())),
                Err(_) => warn!(
                    "status of Ingress {}: no answer in {CALL_TIMEOUT:?}",
                    object_name(ingress.as_ref())
                ),
            }
        }
    }
}

/// The status to write, or `None` when the current one is right already.
fn wanted_status(
    current: Vec<IngressLoadBalancerIngress>,
    address: &IngressLoadBalancerIngress,
    exact: bool,
) -> Option<IngressLoadBalancerStatus> {
    let wanted = if exact {
        vec![address.clone()]
    } else if current.contains(address) {
        current.clone()
    } else {
        let mut all = current.clone();
        all.push(address.clone());
        all.sort_by(|a, b| (&a.ip, &a.hostname).cmp(&(&b.ip, &b.hostname)));
        all
    };
    (wanted != current).then_some(IngressLoadBalancerStatus {
        ingress: Some(wanted),
    })
}

fn ip_entry(ip: String) -> IngressLoadBalancerIngress {
    IngressLoadBalancerIngress {
        ip: Some(ip),
        ..Default::default()
    }
}

/// At most `max` bytes, cut at a character boundary (an Event's note is 1 kB).
fn truncate(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_without_a_status_address_add_their_ip_and_never_flap() {
        let (a, b) = (ip_entry("10.0.0.2".into()), ip_entry("10.0.0.1".into()));
        let first = wanted_status(vec![], &a, false).unwrap();
        assert_eq!(first.ingress.as_deref(), Some(&[a.clone()][..]));
        let both = wanted_status(vec![a.clone()], &b, false).unwrap();
        assert_eq!(both.ingress.as_deref(), Some(&[b.clone(), a.clone()][..]));
        // Each replica then finds its address there and writes nothing.
        assert!(wanted_status(vec![b.clone(), a.clone()], &a, false).is_none());
        assert!(wanted_status(vec![b.clone(), a.clone()], &b, false).is_none());
        // A configured address is the whole status.
        let exact = wanted_status(vec![b.clone(), a.clone()], &a, true).unwrap();
        assert_eq!(exact.ingress.as_deref(), Some(&[a.clone()][..]));
        assert!(wanted_status(vec![a.clone()], &a, true).is_none());
    }

    #[test]
    fn notes_are_cut_at_a_character_boundary() {
        assert_eq!(truncate("aé", 2), "a");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
