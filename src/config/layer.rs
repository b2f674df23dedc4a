//! Layering: how a stronger layer of settings merges over a weaker one, from the
//! built-in defaults up to a route's inline keys (`resolve.rs` stacks a vhost's and
//! a route's layers, `policies.rs` an `extends` chain).
//! Each value merges by [`Layered`]; a header that the stronger layer decides (by a
//! header action or by a security key) drops the weaker layer's actions on it.

use super::merge::Layered;
use super::schema::{HeaderActions, PolicyLayer, SecurityOptions};
use super::values::HeaderNameText;

impl PolicyLayer {
    /// The layer as served (see `SecurityOptions::resolved`).
    pub fn resolved(&self) -> PolicyLayer {
        PolicyLayer {
            security: self.security.clone().resolved(),
            headers: self.headers.clone(),
            request_headers: self.request_headers.clone(),
        }
    }

    pub fn of(
        security: &SecurityOptions,
        headers: &HeaderActions,
        request_headers: &HeaderActions,
    ) -> PolicyLayer {
        PolicyLayer {
            security: security.clone(),
            headers: headers.clone(),
            request_headers: request_headers.clone(),
        }
    }

    /// The stronger layer decides each header it names, by a header action or by
    /// a security key: the weaker layer's actions on that header are dropped.
    pub fn merge_over(self, weaker: PolicyLayer) -> PolicyLayer {
        let mut weaker_headers = weaker.headers;
        weaker_headers.drop_actions(self.security.header_names());
        PolicyLayer {
            security: self.security.merge_over(weaker.security),
            headers: self.headers.merge_over(weaker_headers),
            request_headers: self.request_headers.merge_over(weaker.request_headers),
        }
    }
}

impl SecurityOptions {
    /// The options as served: `csp_policy` and `permissions_policy` over the
    /// built-in defaults', unless a layer turned those off with
    /// `csp_use_defaults` or `permissions_policy_use_defaults`.
    pub fn resolved(mut self) -> SecurityOptions {
        let builtin_csp = self.builtin_csp_policy.take();
        if self.csp_use_defaults != Some(false) {
            self.csp_policy = self.csp_policy.over(builtin_csp);
        }
        let builtin_pp = self.builtin_permissions_policy.take();
        if self.permissions_policy_use_defaults != Some(false) {
            self.permissions_policy = self.permissions_policy.over(builtin_pp);
        }
        self
    }
}

impl HeaderActions {
    /// Header by header: a header this layer sets, adds or defaults is no longer
    /// touched by the weaker layer's `set`, `add` or `default`.
    pub fn merge_over(self, mut weaker: HeaderActions) -> HeaderActions {
        let named = self
            .set
            .keys()
            .chain(self.add.keys())
            .chain(self.default.keys());
        let named: Vec<String> = named.map(|n| n.name.as_str().to_string()).collect();
        weaker.drop_actions(named.iter().map(String::as_str));
        HeaderActions {
            set: self.set.over(weaker.set),
            add: self.add.over(weaker.add),
            default: self.default.over(weaker.default),
            remove: union(self.remove, weaker.remove),
            conflict: self.conflict.over(weaker.conflict),
        }
    }

    /// Forgets the `set`, `add` and `default` actions on these headers (any case).
    fn drop_actions<'a>(&mut self, names: impl IntoIterator<Item = &'a str>) {
        for name in names {
            let kept = |n: &HeaderNameText| !n.name.as_str().eq_ignore_ascii_case(name);
            self.set.retain(|n, _| kept(n));
            self.add.retain(|n, _| kept(n));
            self.default.retain(|n, _| kept(n));
        }
    }
}

fn union<T: PartialEq>(strong: Vec<T>, weak: Vec<T>) -> Vec<T> {
    let mut merged = weak;
    for item in strong {
        if !merged.contains(&item) {
            merged.push(item);
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::values::Toggle;
    use indexmap::IndexMap;

    fn layer(yaml: &str) -> PolicyLayer {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn names<V>(map: &IndexMap<HeaderNameText, V>) -> Vec<&str> {
        map.keys().map(|k| k.text.as_str()).collect()
    }

    #[test]
    fn the_stronger_layer_decides_each_header_it_names() {
        let weak = layer(
            "headers: {set: {Cache-Control: public, X-A: a}, add: {X-B: b, X-Frame-Options: x}, default: {X-C: c}}",
        );
        let strong =
            layer("security: {cache_control: no-store, frame_options: DENY}\nheaders: {set: {x-b: B}, default: {X-A: A}}");
        let merged = strong.merge_over(weak);
        assert_eq!(names(&merged.headers.set), ["x-b"]);
        assert_eq!(names(&merged.headers.add), Vec::<&str>::new());
        assert_eq!(names(&merged.headers.default), ["X-C", "X-A"]);
        assert!(merged.security.cache_control.is_some());
    }

    #[test]
    fn report_settings_merge_like_the_csp_they_belong_to() {
        let weak = layer(
            "security: {csp_report_uri: \"https://c.example/csp\", \
             csp_report_only_policy: {default-src: [\"'self'\"], img-src: [\"*\"]}}",
        );
        let strong = layer(
            "security: {csp_report_uri: false, csp_report_collect: true, \
             csp_report_only_policy: {img-src: [\"'self'\"], script-src: null}}",
        );
        let merged = strong.merge_over(weak).security;
        assert_eq!(merged.csp_report_uri, Some(Toggle::Off));
        assert_eq!(merged.csp_report_collect, Some(true));
        let policy = merged.csp_report_only_policy.unwrap().0;
        assert_eq!(
            policy.keys().collect::<Vec<_>>(),
            ["default-src", "img-src", "script-src"]
        );
        assert_eq!(policy["img-src"], Some(vec!["'self'".to_string()]));
        assert_eq!(policy["script-src"], None);
        assert_eq!(
            layer("security: {csp_report_collect: true}")
                .security
                .header_names(),
            [
                "Content-Security-Policy",
                "Content-Security-Policy-Report-Only",
                "Reporting-Endpoints"
            ]
        );
    }
}
