//! `kubernetes:` in gw.yaml: serving the cluster's Ingress and Gateway API objects
//! beside `vhosts`.
//!
//! The keys only say where to look and what to apply; the objects themselves are
//! translated by [`crate::cluster`] and compiled with the rest of the plan.

use serde::Deserialize;

/// The `.spec.controller` of the IngressClass the gateway serves.
pub const INGRESS_CONTROLLER: &str = "secgw.io/ingress-controller";
/// The `.spec.controllerName` of the GatewayClass the gateway serves.
pub const GATEWAY_CONTROLLER: &str = "secgw.io/gateway-controller";

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KubernetesConfig {
    /// Off by default: gw.yaml alone, and the gateway never talks to the API.
    pub enabled: bool,
    /// A kubeconfig file, relative to gw.yaml; default: the pod's service account,
    /// else `$KUBECONFIG` (or `~/.kube/config`).
    pub kubeconfig: Option<String>,
    /// The IngressClass (whose `.spec.controller` is [`INGRESS_CONTROLLER`]).
    pub ingress_class: ObjectName,
    /// The GatewayClass (whose `.spec.controllerName` is [`GATEWAY_CONTROLLER`]).
    pub gateway_class: ObjectName,
    /// Where Ingresses are read; empty: every namespace.
    pub namespaces: Vec<ObjectName>,
    /// A policy from `policy_files` for every host from the cluster; absent: the
    /// built-in defaults.
    pub default_policy: Option<String>,
    /// Written into each served Ingress's `status.loadBalancer`: an IP address or
    /// a host name; default: the pod's IP (`$POD_IP`), else nothing is written.
    pub status_address: Option<StatusAddress>,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        KubernetesConfig {
            enabled: false,
            kubeconfig: None,
            ingress_class: ObjectName("secgw".into()),
            gateway_class: ObjectName("secgw".into()),
            namespaces: Vec::new(),
            default_policy: None,
            status_address: None,
        }
    }
}

/// A Kubernetes object name (an RFC 1123 label: namespaces, IngressClasses).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct ObjectName(pub String);

impl TryFrom<String> for ObjectName {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let ok = !text.is_empty()
            && text.len() <= 63
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !text.starts_with('-')
            && !text.ends_with('-');
        if ok {
            Ok(ObjectName(text))
        } else {
            Err(format!(
                "`{text}`: a Kubernetes name has 1 to 63 lowercase letters, digits or inner `-`"
            ))
        }
    }
}

/// What `status.loadBalancer.ingress` holds: an IP, or a host name.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum StatusAddress {
    Ip(std::net::IpAddr),
    Hostname(String),
}

impl TryFrom<String> for StatusAddress {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        if let Ok(ip) = text.parse() {
            return Ok(StatusAddress::Ip(ip));
        }
        match super::values::HostPattern::try_from(text.clone()) {
            Ok(super::values::HostPattern::Exact(name)) => Ok(StatusAddress::Hostname(name)),
            _ => Err(format!("`{text}`: an IP address or a host name")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<KubernetesConfig, String> {
        serde_yaml::from_str(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let k = parse("{}").unwrap();
        assert_eq!(k, KubernetesConfig::default());
        assert!(!k.enabled);
        assert_eq!(k.ingress_class.0, "secgw");
        assert_eq!(k.gateway_class.0, "secgw");
    }

    #[test]
    fn names_and_addresses_are_checked() {
        let k = parse("{enabled: true, namespaces: [team-a], status_address: 192.0.2.7}").unwrap();
        assert_eq!(k.namespaces, [ObjectName("team-a".into())]);
        assert_eq!(
            k.status_address,
            Some(StatusAddress::Ip("192.0.2.7".parse().unwrap()))
        );
        let k = parse("{status_address: LB.Example.com}").unwrap();
        assert_eq!(
            k.status_address,
            Some(StatusAddress::Hostname("lb.example.com".into()))
        );
        for bad in [
            "{namespaces: [Team]}",
            "{ingress_class: -x}",
            "{status_address: '*.example.com'}",
            "{ingress_class: ''}",
            "{gateway_class: Secgw}",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(parse("{enabled: yes-please}").is_err());
        assert!(parse("{ingress-class: secgw}")
            .unwrap_err()
            .contains("unknown field"));
    }
}
