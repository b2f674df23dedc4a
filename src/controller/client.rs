//! The client of the cluster's API: from a kubeconfig file when one is named,
//! else the pod's service account, else `$KUBECONFIG` (or `~/.kube/config`).

use std::path::Path;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// `kubeconfig` is `--kubeconfig`, else `kubernetes.kubeconfig` (relative to gw.yaml).
pub async fn connect(kubeconfig: Option<&Path>) -> Result<Client, String> {
    let config = match kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path)
                .map_err(|e| format!("kubeconfig {}: {e}", path.display()))?;
            Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                .await
                .map_err(|e| format!("kubeconfig {}: {e}", path.display()))?
        }
        None => match Config::incluster() {
            Ok(config) => config,
            Err(in_cluster) => Config::from_kubeconfig(&KubeConfigOptions::default())
                .await
                .map_err(|e| {
                    format!("no service account ({in_cluster}) and no kubeconfig ({e})")
                })?,
        },
    };
    Client::try_from(config).map_err(|e| format!("the API client: {e}"))
}
