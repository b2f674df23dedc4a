//! Named policies: each `extends` chain merged into one layer, root first.

use std::collections::HashMap;

use indexmap::IndexMap;

use super::schema::PolicyLayer;
use super::{ConfigError, KeyError, NamedPolicy};

/// Every named policy, its `extends` chain merged (the built-in defaults not included).
#[derive(Debug, Default)]
pub struct ResolvedPolicies {
    merged: HashMap<String, PolicyLayer>,
    /// The names, in definition order, for error messages.
    names: Vec<String>,
}

impl ResolvedPolicies {
    /// Checks that each `extends` names a policy and that no chain loops.
    pub fn resolve(
        policies: &IndexMap<String, NamedPolicy>,
    ) -> Result<ResolvedPolicies, ConfigError> {
        let mut merged = HashMap::with_capacity(policies.len());
        for name in policies.keys() {
            let mut chain: Vec<&str> = vec![name.as_str()];
            let mut current = &policies[name];
            while let Some(parent) = &current.def.extends {
                let here = chain[chain.len() - 1];
                let key = format!("policies.{here}.extends");
                let Some(next) = policies.get(parent) else {
                    return Err(ConfigError::new(
                        &current.file,
                        key,
                        format!("`{here}` extends unknown policy `{parent}`"),
                    ));
                };
                if chain.contains(&parent.as_str()) {
                    chain.push(parent);
                    return Err(ConfigError::new(
                        &current.file,
                        key,
                        format!("`extends` makes a cycle: {}", chain.join(" -> ")),
                    ));
                }
                chain.push(parent);
                current = next;
            }
            let layer = chain.iter().rev().fold(PolicyLayer::default(), |acc, n| {
                policies[*n].def.layer().merge_over(acc)
            });
            merged.insert(name.clone(), layer);
        }
        Ok(ResolvedPolicies {
            merged,
            names: policies.keys().cloned().collect(),
        })
    }

    /// One level of layering: the inline keys over the named policy (if any) over
    /// `weaker`. An unknown policy is an error at the `policy` key.
    pub fn layer(
        &self,
        weaker: PolicyLayer,
        policy: Option<&str>,
        inline: PolicyLayer,
    ) -> Result<PolicyLayer, KeyError> {
        let base = match policy {
            Some(name) => self.layer_over(name, weaker)?,
            None => weaker,
        };
        Ok(inline.merge_over(base))
    }

    fn layer_over(&self, name: &str, weaker: PolicyLayer) -> Result<PolicyLayer, KeyError> {
        let chain = self.merged.get(name).ok_or_else(|| {
            let known = if self.names.is_empty() {
                "no policies are defined (see `policy_files`)".to_string()
            } else {
                format!("known: {}", self.names.join(", "))
            };
            KeyError::new("policy", format!("unknown policy `{name}`; {known}"))
        })?;
        Ok(chain.clone().merge_over(weaker))
    }
}
