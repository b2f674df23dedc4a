//! The Gateway API's status, as the translation found it: GatewayClass
//! `Accepted`; each Gateway's addresses, conditions and listeners; each
//! HTTPRoute's `status.parents` entries for the gateway's Gateways (other
//! controllers' entries are kept).
//!
//! A status is written only when it differs from the object's, times aside,
//! and a condition keeps its `lastTransitionTime` while its status stays: the
//! writes come back through the watches, and must not loop.

use std::time::Duration;

use gateway_api::gatewayclasses::GatewayClass;
use gateway_api::gateways::Gateway;
use gateway_api::httproutes::HttpRoute;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use log::warn;
use serde_json::{json, Value};
use tokio::time::timeout;

use crate::cluster::gateway::{serves, Cond, GatewayApi, GROUP};
use crate::config::kubernetes::GATEWAY_CONTROLLER;

const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A Gateway's `status.addresses` entry: `IPAddress` or `Hostname`, and the value.
pub type Address = (&'static str, String);

/// Writes what differs, while `holds` says this replica holds the Lease (asked
/// before each write: one can take seconds, and the Lease can be lost meanwhile).
pub async fn write(
    client: &Client,
    api: &GatewayApi,
    addresses: &[Address],
    holds: &tokio::sync::watch::Receiver<bool>,
) {
    let holds = || *holds.borrow();
    let now = Timestamp::now().to_string();
    if let Some(class) = &api.class {
        let current = class.status.as_ref().map(|s| json!(s.conditions));
        let generation = class.meta().generation;
        let accepted = Cond {
            kind: "Accepted",
            ok: true,
            reason: "Accepted",
            message: String::new(),
        };
        let conditions = conditions(&[accepted], generation, current.as_ref(), &now);
        let status = json!({"conditions": conditions});
        let had = json!({"conditions": current});
        let classes: Api<GatewayClass> = Api::all(client.clone());
        if holds() {
            patch(&classes, &class.name_any(), "GatewayClass", &had, status).await;
        }
    }
    for g in &api.gateways {
        let o = &g.object;
        let generation = o.meta().generation;
        let current = o.status.as_ref().map(|s| json!(s)).unwrap_or(Value::Null);
        let listeners: Vec<Value> = g
            .listeners
            .iter()
            .map(|l| {
                let had = current["listeners"]
                    .as_array()
                    .and_then(|all| all.iter().find(|x| x["name"] == l.name.as_str()))
                    .map(|x| x["conditions"].clone());
                let kinds: Vec<Value> = match l.http_routes {
                    true => vec![json!({"group": GROUP, "kind": "HTTPRoute"})],
                    false => Vec::new(),
                };
                json!({
                    "name": l.name,
                    "supportedKinds": kinds,
                    "attachedRoutes": l.attached,
                    "conditions": conditions(&l.conditions, generation, had.as_ref(), &now),
                })
            })
            .collect();
        let addresses: Vec<Value> = addresses
            .iter()
            .map(|(kind, value)| json!({"type": kind, "value": value}))
            .collect();
        let status = json!({
            "addresses": addresses,
            "conditions": conditions(&g.conditions, generation, Some(&current["conditions"]), &now),
            "listeners": listeners,
        });
        let gateways: Api<Gateway> =
            Api::namespaced(client.clone(), &o.namespace().unwrap_or_default());
        if holds() {
            patch(&gateways, &o.name_any(), "Gateway", &current, status).await;
        }
    }
    let gateways: Vec<&std::sync::Arc<Gateway>> = api.gateways.iter().map(|g| &g.object).collect();
    for r in &api.routes {
        let o = &r.object;
        let generation = o.meta().generation;
        let current = o.status.as_ref().map(|s| json!(s)).unwrap_or(Value::Null);
        let theirs = current["parents"].as_array().cloned().unwrap_or_default();
        // Ours: of this controller and naming a Gateway this gateway serves;
        // another installation of the controller (another class) keeps its own.
        let namespace = o.namespace().unwrap_or_default();
        let ours = |p: &Value| {
            let gateway = &p["parentRef"];
            let ns = gateway["namespace"].as_str().unwrap_or(&namespace);
            let name = gateway["name"].as_str().unwrap_or_default();
            p["controllerName"] == GATEWAY_CONTROLLER && serves(&gateways, ns, name)
        };
        let mut parents: Vec<Value> = theirs.iter().filter(|p| !ours(p)).cloned().collect();
        for p in &r.parents {
            let mut parent_ref = json!({
                "group": GROUP,
                "kind": "Gateway",
                "namespace": p.namespace,
                "name": p.name,
            });
            if let Some(section) = &p.section_name {
                parent_ref["sectionName"] = json!(section);
            }
            if let Some(port) = p.port {
                parent_ref["port"] = json!(port);
            }
            let had = theirs
                .iter()
                .find(|x| x["controllerName"] == GATEWAY_CONTROLLER && x["parentRef"] == parent_ref)
                .map(|x| x["conditions"].clone());
            parents.push(json!({
                "parentRef": parent_ref,
                "controllerName": GATEWAY_CONTROLLER,
                "conditions": conditions(&p.conditions, generation, had.as_ref(), &now),
            }));
        }
        let status = json!({"parents": parents});
        let routes: Api<HttpRoute> =
            Api::namespaced(client.clone(), &o.namespace().unwrap_or_default());
        if holds() {
            patch(&routes, &o.name_any(), "HTTPRoute", &current, status).await;
        }
    }
}

/// The conditions as the API has them; one whose status is unchanged keeps its
/// `lastTransitionTime` from `had`.
pub(super) fn conditions(
    wanted: &[Cond],
    generation: Option<i64>,
    had: Option<&Value>,
    now: &str,
) -> Vec<Value> {
    wanted
        .iter()
        .map(|c| {
            let status = if c.ok { "True" } else { "False" };
            let since = had
                .and_then(Value::as_array)
                .and_then(|all| {
                    all.iter()
                        .find(|x| x["type"] == c.kind && x["status"] == status)
                })
                .and_then(|x| x["lastTransitionTime"].as_str())
                .unwrap_or(now);
            json!({
                "type": c.kind,
                "status": status,
                "reason": c.reason,
                "message": truncate(&c.message),
                "observedGeneration": generation.unwrap_or(0),
                "lastTransitionTime": since,
            })
        })
        .collect()
}

/// A condition's message has at most 32768 bytes.
fn truncate(text: &str) -> String {
    let mut end = text.len().min(32_768);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// Writes `status` unless `had` (the object's status) says the same already.
pub(super) async fn patch<K>(api: &Api<K>, name: &str, kind: &str, had: &Value, status: Value)
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    if same(had, &status) {
        return;
    }
    let body = json!({"status": status});
    let (params, body) = (PatchParams::default(), Patch::Merge(&body));
    let write = api.patch_status(name, &params, &body);
    match timeout(CALL_TIMEOUT, write).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => warn!("status of {kind} {name}: {e}"),
        Err(_) => warn!("status of {kind} {name}: no answer in {CALL_TIMEOUT:?}"),
    }
}

/// Whether every field of `wanted` is in `had` with the same value (times
/// included: they were copied from `had` where nothing changed).
fn same(had: &Value, wanted: &Value) -> bool {
    match (had, wanted) {
        (Value::Object(h), Value::Object(w)) => w
            .iter()
            .all(|(k, v)| same(h.get(k).unwrap_or(&Value::Null), v)),
        (Value::Array(h), Value::Array(w)) => {
            h.len() == w.len() && h.iter().zip(w).all(|(a, b)| same(a, b))
        }
        (Value::Null, Value::Array(w)) => w.is_empty(),
        (Value::Null, Value::String(s)) => s.is_empty(),
        (h, w) => h == w,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unchanged_condition_keeps_its_time_and_is_not_rewritten() {
        let c = [Cond {
            kind: "Accepted",
            ok: true,
            reason: "Accepted",
            message: String::new(),
        }];
        let first = conditions(&c, Some(3), None, "2026-01-01T00:00:00Z");
        let had = json!(first);
        let again = conditions(&c, Some(3), Some(&had), "2026-02-02T00:00:00Z");
        assert_eq!(again[0]["lastTransitionTime"], "2026-01-01T00:00:00Z");
        assert!(same(
            &json!({"conditions": had}),
            &json!({"conditions": again})
        ));
        // A new generation is a change; so is a new status, with a new time.
        let newer = conditions(&c, Some(4), Some(&had), "2026-02-02T00:00:00Z");
        assert!(!same(
            &json!({"conditions": had}),
            &json!({"conditions": newer})
        ));
        let refused = [Cond {
            ok: false,
            reason: "NotAllowedByListeners",
            message: "spec.parentRefs[0]: no".into(),
            ..c[0].clone()
        }];
        let flipped = conditions(&refused, Some(3), Some(&had), "2026-02-02T00:00:00Z");
        assert_eq!(flipped[0]["lastTransitionTime"], "2026-02-02T00:00:00Z");
        assert_eq!(flipped[0]["status"], "False");
        // Fields the API server adds (omitted empties) are no difference.
        assert!(same(
            &json!({"a": 1, "extra": 2}),
            &json!({"a": 1, "m": ""})
        ));
    }
}
