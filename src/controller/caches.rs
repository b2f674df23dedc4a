//! The watch caches: one reflector per kind (and per namespace when the gateway
//! reads only some), kept by kube-runtime across reconnects and `410 Gone`
//! relists, so that a snapshot is never empty because a watch restarted.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use gateway_api::gatewayclasses::GatewayClass;
use gateway_api::gateways::Gateway;
use gateway_api::httproutes::HttpRoute;
use gateway_api::referencegrants::ReferenceGrant;
use k8s_openapi::api::core::v1::{Namespace, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use k8s_openapi::NamespaceResourceScope;
use kube::api::ListParams;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource, ResourceExt};
use log::warn;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

use crate::cluster::security_policy::SecurityPolicy;
use crate::cluster::ClusterObjects;
use crate::config::kubernetes::ObjectName;

/// Retries of a failed watch start at 250 ms and double up to 2 s, each with up
/// to as much again of jitter, so a restarted API server is caught up with in
/// at most about 4 s (kube-runtime's default reaches 30 s, so an edge would
/// keep an old plan for half a minute); a dozen watches per replica retrying at
/// most every 2 s is no load for an API server.
fn retries() -> watcher::ExponentialBackoff {
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(250))
        .with_max_delay(Duration::from_secs(2))
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .into()
}

/// Only TLS Secrets: the cache never holds the cluster's other Secrets.
const TLS_SECRETS: &str = "type=kubernetes.io/tls";
/// Only the slices that belong to a Service.
const SERVICE_SLICES: &str = "kubernetes.io/service-name";

pub struct Caches {
    classes: Store<IngressClass>,
    ingresses: Vec<Store<Ingress>>,
    services: Vec<Store<Service>>,
    slices: Vec<Store<EndpointSlice>>,
    secrets: Vec<Store<Secret>>,
    /// Without the Gateway API's CRDs in the cluster, none of these is watched.
    gateway_api: Option<GatewayApiStores>,
    /// Without the SecurityPolicy CRD, not watched.
    security_policies: Option<Vec<Store<SecurityPolicy>>>,
    tasks: Vec<JoinHandle<()>>,
}

/// Which optional kinds the cluster serves (their CRDs are installed).
#[derive(Debug, Clone, Copy)]
pub struct Kinds {
    pub gateway_api: bool,
    pub security_policies: bool,
}

impl Kinds {
    /// Asks the API server once; a kind it does not serve is not watched, and
    /// the log says so, until the next start.
    pub async fn served(client: &Client) -> Kinds {
        Kinds {
            gateway_api: serves::<GatewayClass>(Api::all(client.clone())).await,
            security_policies: serves::<SecurityPolicy>(Api::all(client.clone())).await,
        }
    }
}

struct GatewayApiStores {
    classes: Store<GatewayClass>,
    gateways: Vec<Store<Gateway>>,
    routes: Vec<Store<HttpRoute>>,
    grants: Vec<Store<ReferenceGrant>>,
    namespaces: Store<Namespace>,
}

impl Drop for Caches {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Where namespaced objects are read: each listed namespace, or all of them.
fn apis<K>(client: &Client, namespaces: &[ObjectName]) -> Vec<Api<K>>
where
    K: Resource<Scope = NamespaceResourceScope>,
    K::DynamicType: Default,
{
    if namespaces.is_empty() {
        vec![Api::all(client.clone())]
    } else {
        namespaces
            .iter()
            .map(|ns| Api::namespaced(client.clone(), &ns.0))
            .collect()
    }
}

impl Caches {
    /// Starts every watch (the optional kinds the cluster serves); each change
    /// (after the first complete list) is signalled on `changed`.
    pub fn start(
        client: &Client,
        namespaces: &[ObjectName],
        kinds: Kinds,
        changed: UnboundedSender<()>,
    ) -> Caches {
        let mut tasks = Vec::new();
        let all = watcher::Config::default();
        let ingresses = watch_each(apis(client, namespaces), &all, &changed, &mut tasks);
        let services = watch_each(apis(client, namespaces), &all, &changed, &mut tasks);
        let slices_config = all.clone().labels(SERVICE_SLICES);
        let slices = watch_each(
            apis(client, namespaces),
            &slices_config,
            &changed,
            &mut tasks,
        );
        let secrets_config = all.clone().fields(TLS_SECRETS);
        let secrets = watch_each(
            apis(client, namespaces),
            &secrets_config,
            &changed,
            &mut tasks,
        );
        let security_policies = kinds
            .security_policies
            .then(|| watch_each(apis(client, namespaces), &all, &changed, &mut tasks));
        let gateway_api = kinds.gateway_api.then(|| GatewayApiStores {
            classes: watch(
                Api::all(client.clone()),
                all.clone(),
                changed.clone(),
                &mut tasks,
            ),
            gateways: watch_each(apis(client, namespaces), &all, &changed, &mut tasks),
            routes: watch_each(apis(client, namespaces), &all, &changed, &mut tasks),
            grants: watch_each(apis(client, namespaces), &all, &changed, &mut tasks),
            namespaces: watch(
                Api::all(client.clone()),
                all.clone(),
                changed.clone(),
                &mut tasks,
            ),
        });
        let classes = watch(Api::all(client.clone()), all, changed, &mut tasks);
        Caches {
            classes,
            ingresses,
            services,
            slices,
            secrets,
            gateway_api,
            security_policies,
            tasks,
        }
    }

    /// Until every cache holds its first complete list.
    pub async fn ready(&self) {
        async fn all<K: Resource + Clone>(stores: &[Store<K>])
        where
            K::DynamicType: Eq + std::hash::Hash + Clone,
        {
            for s in stores {
                let _ = s.wait_until_ready().await;
            }
        }
        let _ = self.classes.wait_until_ready().await;
        all(&self.ingresses).await;
        all(&self.services).await;
        all(&self.slices).await;
        all(&self.secrets).await;
        if let Some(g) = &self.gateway_api {
            let _ = g.classes.wait_until_ready().await;
            let _ = g.namespaces.wait_until_ready().await;
            all(&g.gateways).await;
            all(&g.routes).await;
            all(&g.grants).await;
        }
        if let Some(p) = &self.security_policies {
            all(p).await;
        }
    }

    pub fn snapshot(&self) -> ClusterObjects {
        fn all<K: Resource + Clone>(stores: &[Store<K>]) -> Vec<Arc<K>>
        where
            K::DynamicType: Eq + std::hash::Hash + Clone,
        {
            stores.iter().flat_map(Store::state).collect()
        }
        let mut objects = ClusterObjects {
            classes: self.classes.state(),
            ingresses: all(&self.ingresses),
            services: all(&self.services),
            slices: all(&self.slices),
            secrets: all(&self.secrets),
            ..ClusterObjects::default()
        };
        if let Some(g) = &self.gateway_api {
            objects.gateway_classes = g.classes.state();
            objects.gateways = all(&g.gateways);
            objects.http_routes = all(&g.routes);
            objects.grants = all(&g.grants);
            objects.namespaces = g.namespaces.state();
        }
        if let Some(p) = &self.security_policies {
            objects.security_policies = all(p);
        }
        objects
    }
}

fn watch_each<K>(
    apis: Vec<Api<K>>,
    config: &watcher::Config,
    changed: &UnboundedSender<()>,
    tasks: &mut Vec<JoinHandle<()>>,
) -> Vec<Store<K>>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Default,
{
    apis.into_iter()
        .map(|api| watch(api, config.clone(), changed.clone(), tasks))
        .collect()
}

/// One reflector; its task signals each event on `changed`.
fn watch<K>(
    api: Api<K>,
    config: watcher::Config,
    changed: UnboundedSender<()>,
    tasks: &mut Vec<JoinHandle<()>>,
) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Default,
{
    let (store, writer) = reflector::store();
    let stream = watcher(api, config)
        .backoff(retries())
        .modify(slim)
        .reflect(writer);
    tasks.push(tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(_) => {
                    let _ = changed.send(());
                }
                // The watcher reconnects with backoff; the cache keeps serving.
                Err(e) => warn!(
                    "watching {}: {e}; retrying",
                    K::kind(&K::DynamicType::default())
                ),
            }
        }
    }));
    store
}

/// What the gateway never reads, left out of the caches: the managed-field
/// history and `kubectl apply`'s copy of the whole object.
fn slim<K: ResourceExt>(object: &mut K) {
    object.managed_fields_mut().clear();
    object
        .annotations_mut()
        .remove("kubectl.kubernetes.io/last-applied-configuration");
}

/// Every object once, for `-t` and `check`.
pub async fn list_once(
    client: &Client,
    namespaces: &[ObjectName],
) -> Result<ClusterObjects, String> {
    async fn list<K>(apis: Vec<Api<K>>, params: &ListParams) -> Result<Vec<Arc<K>>, String>
    where
        K: Resource + Clone + DeserializeOwned + Debug,
        K::DynamicType: Default,
    {
        let mut out = Vec::new();
        for api in apis {
            let listed = api
                .list(params)
                .await
                .map_err(|e| format!("listing {}: {e}", K::plural(&K::DynamicType::default())))?;
            out.extend(listed.items.into_iter().map(Arc::new));
        }
        Ok(out)
    }
    let all = ListParams::default();
    let kinds = Kinds::served(client).await;
    let mut objects = ClusterObjects {
        classes: list(vec![Api::all(client.clone())], &all).await?,
        ingresses: list(apis(client, namespaces), &all).await?,
        services: list(apis(client, namespaces), &all).await?,
        slices: list(
            apis(client, namespaces),
            &all.clone().labels(SERVICE_SLICES),
        )
        .await?,
        secrets: list(apis(client, namespaces), &all.clone().fields(TLS_SECRETS)).await?,
        ..ClusterObjects::default()
    };
    if kinds.security_policies {
        objects.security_policies = list(apis(client, namespaces), &all).await?;
    }
    if kinds.gateway_api {
        objects.gateway_classes = list(vec![Api::all(client.clone())], &all).await?;
        objects.gateways = list(apis(client, namespaces), &all).await?;
        objects.http_routes = list(apis(client, namespaces), &all).await?;
        objects.grants = list(apis(client, namespaces), &all).await?;
        objects.namespaces = list(vec![Api::all(client.clone())], &all).await?;
    }
    Ok(objects)
}

/// Whether the cluster serves a kind (its CRD is installed).
async fn serves<K>(api: Api<K>) -> bool
where
    K: Resource + Clone + DeserializeOwned + Debug,
    K::DynamicType: Default,
{
    match api.list_metadata(&ListParams::default().limit(1)).await {
        Ok(_) => true,
        Err(e) => {
            let kind = K::DynamicType::default();
            let plural = K::plural(&kind);
            warn!("this cluster does not serve {plural} ({e}): they are not read until the next start");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_watch_is_retried_within_a_quarter_second_then_at_most_every_four() {
        let delays: Vec<Duration> = retries().take(50).collect();
        assert_eq!(delays.len(), 50);
        assert!(delays[0] >= Duration::from_millis(250), "{delays:?}");
        assert!(delays[0] <= Duration::from_millis(500), "{delays:?}");
        assert!(
            delays.iter().all(|d| *d <= Duration::from_secs(4)),
            "{delays:?}"
        );
        assert!(
            delays[10..].iter().all(|d| *d >= Duration::from_secs(2)),
            "{delays:?}"
        );
    }
}
