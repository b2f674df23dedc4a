//! Each SecurityPolicy's status, as the attachment found it: GEP-713's
//! `status.ancestors`, one entry per target (the Gateway, HTTPRoute, rule or
//! Ingress it names), with `Accepted` or why not. Entries of other controllers
//! are kept; like the Gateway API's status, only the Lease holder writes, and
//! only what differs.

use kube::{Api, Client, Resource, ResourceExt};
use serde_json::{json, Value};

use super::gateway_status::{conditions, patch};
use crate::cluster::attachments::Attachments;
use crate::cluster::security_policy::SecurityPolicy;
use crate::config::kubernetes::GATEWAY_CONTROLLER;

/// Writes what differs, while `holds` says this replica holds the Lease.
pub async fn write(
    client: &Client,
    attachments: &Attachments,
    holds: &tokio::sync::watch::Receiver<bool>,
) {
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    for report in &attachments.reports {
        let o = &report.object;
        let namespace = o.namespace().unwrap_or_default();
        let generation = o.meta().generation;
        let current = o.status.as_ref().map(|s| json!(s)).unwrap_or(Value::Null);
        let had = current["ancestors"].as_array().cloned().unwrap_or_default();
        let mut ancestors: Vec<Value> = had
            .iter()
            .filter(|a| a["controllerName"] != GATEWAY_CONTROLLER)
            .cloned()
            .collect();
        for (target, cond) in &report.targets {
            let mut ancestor = json!({
                "group": target.group,
                "kind": target.kind,
                "name": target.name,
                "namespace": namespace,
            });
            if let Some(section) = &target.section_name {
                ancestor["sectionName"] = json!(section);
            }
            let before = had
                .iter()
                .find(|a| a["controllerName"] == GATEWAY_CONTROLLER && a["ancestorRef"] == ancestor)
                .map(|a| a["conditions"].clone());
            ancestors.push(json!({
                "ancestorRef": ancestor,
                "controllerName": GATEWAY_CONTROLLER,
                "conditions": conditions(std::slice::from_ref(cond), generation, before.as_ref(), &now),
            }));
        }
        let policies: Api<SecurityPolicy> = Api::namespaced(client.clone(), &namespace);
        if *holds.borrow() {
            let status = json!({"ancestors": ancestors});
            patch(&policies, &o.name_any(), "SecurityPolicy", &current, status).await;
        }
    }
}
