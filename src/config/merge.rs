//! The one merge of two layers' values of a key: the stronger layer's value wins,
//! except that maps (CSP directives, Permissions-Policy features, header actions)
//! merge entry by entry. (`headers.remove` lists are a union instead: see
//! `layer.rs`.)

use std::hash::Hash;

use indexmap::IndexMap;

use super::csp::CspPolicy;
use super::permissions::PermissionsPolicy;
use super::values::Toggle;

/// A value that layers: `self` is the stronger layer's, `weaker` the other's.
pub trait Layered {
    fn over(self, weaker: Self) -> Self;
}

/// Entry by entry: the stronger layer's entries replace the weaker's, and new
/// ones come after them.
impl<K: Hash + Eq, V> Layered for IndexMap<K, V> {
    fn over(self, weaker: Self) -> Self {
        let mut merged = weaker;
        merged.extend(self);
        merged
    }
}

/// A layer without the key leaves the other's value.
impl<T: Layered> Layered for Option<T> {
    fn over(self, weaker: Self) -> Self {
        match (self, weaker) {
            (Some(strong), Some(weak)) => Some(strong.over(weak)),
            (strong, weak) => strong.or(weak),
        }
    }
}

/// Merged while both layers turn the key on; else the stronger's (`false` wins).
impl<T: Layered> Layered for Toggle<T> {
    fn over(self, weaker: Self) -> Self {
        match (self, weaker) {
            (Toggle::On(strong), Toggle::On(weak)) => Toggle::On(strong.over(weak)),
            (strong, _) => strong,
        }
    }
}

impl Layered for CspPolicy {
    fn over(self, weaker: Self) -> Self {
        CspPolicy(self.0.over(weaker.0))
    }
}

impl Layered for PermissionsPolicy {
    fn over(self, weaker: Self) -> Self {
        PermissionsPolicy(self.0.over(weaker.0))
    }
}

/// Values with no parts to merge: the stronger layer's replaces the weaker's.
macro_rules! replaced {
    ($($t:ty),* $(,)?) => {
        $(impl Layered for $t {
            fn over(self, _weaker: Self) -> Self {
                self
            }
        })*
    };
}

replaced!(bool, u16, u64);

impl<T> Layered for Vec<T> {
    fn over(self, _weaker: Self) -> Self {
        self
    }
}

pub(crate) use replaced;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_replaces_by_directive_and_null_removes() {
        let policy = |entries: &[(&str, Option<&[&str]>)]| {
            CspPolicy(
                entries
                    .iter()
                    .map(|(d, s)| {
                        let sources = s.map(|s| s.iter().map(|x| x.to_string()).collect());
                        (d.to_string(), sources)
                    })
                    .collect(),
            )
        };
        let weak = policy(&[
            ("default-src", Some(&["'self'"])),
            ("img-src", Some(&["'self'"])),
        ]);
        let strong = policy(&[("img-src", Some(&["https:"])), ("default-src", None)]);
        let merged = strong.over(weak);
        assert_eq!(merged.0.get("img-src"), Some(&Some(vec!["https:".into()])));
        assert_eq!(merged.0.get("default-src"), Some(&None));
    }
}
