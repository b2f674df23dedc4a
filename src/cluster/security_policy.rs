//! The SecurityPolicy resource (`secgw.io/v1alpha1`): the keys of a policy of
//! `policy_files`, attached with `targetRefs` (the Gateway API's direct policy
//! attachment, GEP-713) to Gateways, HTTPRoutes (or one of their rules) and
//! Ingresses of its own namespace.
//!
//! Its OpenAPI schema is derived from the policy keys' own types, so the API
//! server refuses a misspelled key or a wrong type before the gateway sees it;
//! `k8s/crds/securitypolicy.yaml` is `pingora-secgw crd`'s output, and a test
//! fails when it is stale.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, CustomResourceExt};
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::schema::PolicyDef;
use crate::config::{parse_policy, KeyError};

/// A policy of `policy_files`, attached to objects of its namespace.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "secgw.io",
    version = "v1alpha1",
    kind = "SecurityPolicy",
    namespaced,
    status = "SecurityPolicyStatus",
    shortname = "secpol",
    category = "gateway-api",
    label("gateway.networking.k8s.io/policy", "Direct"),
    printcolumn(
        name = "Targets",
        type_ = "string",
        json_path = ".spec.targetRefs[*].name"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
pub struct SecurityPolicySpec {
    /// What the policy applies to, in its own namespace: a Gateway (every route
    /// attached to it), an HTTPRoute (with `sectionName`, only its rule of that
    /// name) or an Ingress.
    #[serde(rename = "targetRefs")]
    #[schemars(length(min = 1, max = 16))]
    pub target_refs: Vec<TargetRef>,
    /// The keys of a policy in `policy_files` (`extends`, `security`, `headers`,
    /// `request_headers`), with their names, defaults and checks. Kept as JSON
    /// until the gateway reads them, so that a value only the gateway can refuse
    /// is this policy's problem, reported in its status, never the watch's.
    #[serde(flatten)]
    #[schemars(schema_with = "policy_keys")]
    pub policy: Map<String, Value>,
}

/// One target, as GEP-713's `LocalPolicyTargetReferenceWithSectionName`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct TargetRef {
    /// `gateway.networking.k8s.io` (Gateway, HTTPRoute) or `networking.k8s.io` (Ingress).
    #[schemars(extend("enum" = ["gateway.networking.k8s.io", "networking.k8s.io"]))]
    pub group: String,
    #[schemars(extend("enum" = ["Gateway", "HTTPRoute", "Ingress"]))]
    pub kind: String,
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// An HTTPRoute's rule, by its `name`.
    #[serde(
        rename = "sectionName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(length(min = 1, max = 253))]
    pub section_name: Option<String>,
}

/// Per target, whether the policy applies, in GEP-713's `PolicyStatus` shape.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct SecurityPolicyStatus {
    #[serde(default)]
    pub ancestors: Vec<PolicyAncestorStatus>,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct PolicyAncestorStatus {
    /// The target this entry is about.
    #[serde(rename = "ancestorRef")]
    pub ancestor_ref: AncestorRef,
    #[serde(rename = "controllerName")]
    pub controller_name: String,
    /// `Accepted`: `True`, or `False` with `Invalid`, `Conflicted` or `TargetNotFound`.
    pub conditions: Vec<Condition>,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct AncestorRef {
    pub group: String,
    pub kind: String,
    pub name: String,
    pub namespace: String,
    #[serde(
        rename = "sectionName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub section_name: Option<String>,
}

/// The security keys whose gw.yaml value may be `false` (off, rather than left
/// to the weaker layer). A structural schema cannot say "`false` or a value", so
/// in a SecurityPolicy these take their value only, and `security.disable`
/// lists the ones turned off.
pub const DISABLE: &[&str] = &[
    "csp_report_uri",
    "xss_mode",
    "frame_options",
    "frame_options_allow_from",
    "referrer_policy",
    "ssl_host",
    "ssl_port",
    "cache_control",
    "clear_site_data",
    "cross_origin_opener_policy",
    "cross_origin_embedder_policy",
    "cross_origin_resource_policy",
    "permissions_policy",
    "expect_ct_report_uri",
];

/// The spec's policy keys: those of a policy file, plus `security.disable`.
fn policy_keys(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = PolicyDef::json_schema(generator);
    let security = schema
        .get_mut("properties")
        .and_then(|p| p.get_mut("security"))
        .and_then(|s| s.get_mut("properties"))
        .and_then(Value::as_object_mut)
        .expect("the policy's schema has security.properties");
    let disable = json_schema!({
        "description": "Keys turned off (gw.yaml's `KEY: false`), which a weaker layer \
                        would otherwise set.",
        "type": "array",
        "items": {"type": "string", "enum": DISABLE},
        "x-kubernetes-list-type": "set",
    });
    security.insert("disable".into(), disable.to_value());
    schema
}

/// The CRD as YAML, as committed under `k8s/crds/`.
pub fn crd_yaml() -> String {
    let yaml = serde_yaml::to_string(&SecurityPolicy::crd()).expect("the CRD serializes");
    format!(
        "# Generated by `pingora-secgw crd` from src/cluster/security_policy.rs: do not edit.\n\
         ---\n{yaml}"
    )
}

/// The policy a SecurityPolicy holds, read with the checks of a policy file;
/// an error names its key under `spec`.
pub fn read(policy: &SecurityPolicy) -> Result<PolicyDef, KeyError> {
    let refs = &policy.spec.target_refs;
    for (i, r) in refs.iter().enumerate() {
        if let Some(j) = refs[..i].iter().position(|earlier| earlier == r) {
            return Err(KeyError::new(
                format!("spec.targetRefs[{i}]"),
                format!("the same target as targetRefs[{j}]"),
            ));
        }
    }
    let mut keys = policy.spec.policy.clone();
    if let Some(Value::Object(security)) = keys.get_mut("security") {
        if let Some(off) = security.remove("disable") {
            let Value::Array(off) = off else {
                return Err(KeyError::new("security.disable", "a list of keys").under("spec"));
            };
            for (i, key) in off.iter().enumerate() {
                let at = || format!("security.disable[{i}]");
                let Some(key) = key.as_str().filter(|k| DISABLE.contains(k)) else {
                    return Err(KeyError::new(
                        at(),
                        format!("not a key that can be turned off: {key}"),
                    )
                    .under("spec"));
                };
                if security.contains_key(key) {
                    return Err(KeyError::new(
                        at(),
                        format!("`security.{key}` is both set and turned off"),
                    )
                    .under("spec"));
                }
                security.insert(key.to_string(), Value::Bool(false));
            }
        }
    }
    let value = serde_yaml::to_value(Value::Object(keys))
        .map_err(|e| KeyError::here(e.to_string()).under("spec"))?;
    parse_policy(value).map_err(|e| e.under("spec"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::schema::SecurityOptions;
    use crate::config::values::on;

    fn policy(spec: &str) -> SecurityPolicy {
        let spec: SecurityPolicySpec = serde_yaml::from_str(spec).unwrap();
        SecurityPolicy::new("strict", spec)
    }

    #[test]
    fn the_committed_crd_is_the_one_the_types_give() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/k8s/crds/securitypolicy.yaml");
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == crd_yaml(),
            "k8s/crds/securitypolicy.yaml is stale: \
             cargo run -- crd > k8s/crds/securitypolicy.yaml"
        );
    }

    #[test]
    fn exactly_the_keys_that_take_false_can_be_disabled() {
        let schema = serde_json::to_value(schemars::schema_for!(SecurityOptions)).unwrap();
        let mut takes_false: Vec<String> = Vec::new();
        for (key, property) in schema["properties"].as_object().unwrap() {
            let boolean = property["type"] == "boolean"
                || property["type"] == serde_json::json!(["boolean", "null"]);
            let off = serde_yaml::from_str::<SecurityOptions>(&format!("{key}: false")).is_ok();
            if off && !boolean {
                takes_false.push(key.clone());
            }
        }
        takes_false.sort();
        let mut disable: Vec<&str> = DISABLE.to_vec();
        disable.sort_unstable();
        assert_eq!(takes_false, disable);
    }

    #[test]
    fn disable_turns_a_key_off_and_the_rest_reads_as_a_policy_file() {
        let p = policy(
            "targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: shop}]\n\
             extends: strict\n\
             security: {hsts_max_age: 63072000, disable: [frame_options, referrer_policy]}\n\
             headers: {set: {X-Team: shop}}\n",
        );
        let def = read(&p).unwrap();
        assert_eq!(def.extends.as_deref(), Some("strict"));
        assert_eq!(def.security.hsts_max_age, Some(63072000));
        assert!(matches!(
            def.security.frame_options,
            Some(crate::config::values::Toggle::Off)
        ));
        assert!(on(&def.security.referrer_policy).is_none());
        assert!(def.security.referrer_policy.is_some());
        assert_eq!(def.headers.set.len(), 1);
    }

    #[test]
    fn what_only_the_gateway_can_refuse_names_its_key_under_spec() {
        let refused = |spec: &str| read(&policy(spec)).unwrap_err();
        let refs = "targetRefs: [{group: networking.k8s.io, kind: Ingress, name: shop}]\n";
        let e = refused(&format!(
            "{refs}security: {{csp_policy: {{script-src: [\"'unsafe-inlin'\"]}}}}"
        ));
        assert_eq!(e.key, "spec.security.csp_policy");
        let e = refused(&format!("{refs}security: {{frame_options: SOMETIMES}}"));
        assert_eq!(e.key, "spec.security.frame_options");
        let e = refused(&format!("{refs}security: {{colour: red}}"));
        assert_eq!(e.key, "spec.security.colour");
        assert!(e.reason.contains("colour"), "{}", e.reason);
        let e = refused(&format!(
            "{refs}security: {{frame_options: DENY, disable: [frame_options]}}"
        ));
        assert_eq!(e.key, "spec.security.disable[0]");
        assert_eq!(
            e.reason,
            "`security.frame_options` is both set and turned off"
        );
        let e = refused(&format!("{refs}security: {{disable: [hsts_max_age]}}"));
        assert_eq!(e.key, "spec.security.disable[0]");
        let e = refused(&format!("{refs}headers: {{set: {{\"Bad Name\": x}}}}"));
        assert_eq!(e.key, "spec.headers.set.Bad Name");
    }

    #[test]
    fn the_schema_is_structural_where_gw_yaml_has_unions() {
        let crd = serde_json::to_value(SecurityPolicy::crd()).unwrap();
        let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
        let security = &spec["properties"]["security"]["properties"];
        assert_eq!(security["frame_options"]["type"], "string");
        assert_eq!(security["ssl_port"]["type"], "integer");
        assert_eq!(
            security["disable"]["items"]["enum"]
                .as_array()
                .unwrap()
                .len(),
            DISABLE.len()
        );
        let permissions = &security["permissions_policy"]["additionalProperties"];
        assert_eq!(permissions["type"], "array");
        assert_eq!(
            spec["properties"]["headers"]["properties"]["add"]["additionalProperties"]["type"],
            "array"
        );
        assert_eq!(spec["required"], serde_json::json!(["targetRefs"]));
    }
}
