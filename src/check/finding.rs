//! What a lint reports and what it reads: a finding at a key, and the headers a
//! merged layer sends, shared by every family's lints.

use serde::Serialize;

use crate::codes::{Code, Severity};
use crate::config::schema::{GatewayConfig, HeaderActions};
use crate::config::values::HostPattern;
use crate::policy::rendered::SecurityHeader;

/// One problem, at the key the operator would change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub code: &'static str,
    pub severity: Severity,
    /// The vhost's name; empty for a gateway-wide finding.
    pub vhost: String,
    /// The route's label (its name, else its match text); `None` at the vhost.
    pub route: Option<String>,
    pub key: String,
    pub message: String,
    pub fix: String,
}

/// A finding before it is placed: its key is relative to the vhost or route.
/// The message quotes the values the lint read, so two equal hits mean the
/// same merged values.
#[derive(Debug, PartialEq)]
pub(super) struct Hit {
    pub(super) code: &'static Code,
    pub(super) key: String,
    pub(super) message: String,
    pub(super) fix: String,
}

pub(super) fn hit(
    code: &'static Code,
    key: impl Into<String>,
    message: impl Into<String>,
    fix: impl Into<String>,
) -> Hit {
    Hit {
        code,
        key: key.into(),
        message: message.into(),
        fix: fix.into(),
    }
}

impl Hit {
    pub(super) fn place(self, vhost: &str, route: Option<String>, under: &str) -> Finding {
        Finding {
            code: self.code.0,
            severity: self.code.1,
            vhost: vhost.to_string(),
            route,
            key: format!("{under}.{}", self.key),
            message: self.message,
            fix: self.fix,
        }
    }
}

/// How requests reach the gateway.
pub(super) struct Reach<'a> {
    /// A listener without `tls`: plain HTTP arrives.
    pub(super) plain: bool,
    /// A request can count as HTTPS: a TLS listener, or a trusted proxy's
    /// `X-Forwarded-Proto`.
    pub(super) https: bool,
    /// Every host pattern of every vhost.
    pub(super) served: Vec<&'a HostPattern>,
}

impl<'a> Reach<'a> {
    pub(super) fn of(g: &'a GatewayConfig) -> Reach<'a> {
        Reach {
            plain: g.listeners.iter().any(|l| l.tls.is_none()),
            https: g.listeners.iter().any(|l| l.tls.is_some()) || !g.trusted_proxies.is_empty(),
            served: g.vhosts.iter().flat_map(|v| &v.hosts).collect(),
        }
    }

    /// Whether a vhost of this configuration answers `host`.
    pub(super) fn serves(&self, host: &str) -> bool {
        self.served.iter().any(|p| match p {
            HostPattern::Any => true,
            HostPattern::Exact(h) => h == host,
            HostPattern::Suffix(s) => host
                .strip_suffix(s.as_str())
                .is_some_and(|head| head.ends_with('.')),
        })
    }
}

/// What a vhost or route is linted against besides its options.
pub(super) struct Scope<'a> {
    pub(super) reach: &'a Reach<'a>,
    /// The vhost's hosts, for the same-host redirect preload needs.
    pub(super) hosts: &'a [HostPattern],
}

/// The response headers a merged layer sends.
pub(super) struct Sent<'a> {
    pub(super) security: Vec<SecurityHeader>,
    pub(super) headers: &'a HeaderActions,
}

impl Sent<'_> {
    /// Written by a `headers` action (which takes precedence over the security keys).
    pub(super) fn by_hand(&self, name: &str) -> bool {
        let h = self.headers;
        h.set
            .keys()
            .chain(h.add.keys())
            .chain(h.default.keys())
            .any(|k| k.name.as_str().eq_ignore_ascii_case(name))
    }

    /// The value `headers.set` gives `name`.
    pub(super) fn by_hand_value(&self, name: &str) -> Option<&str> {
        self.headers
            .set
            .iter()
            .find(|(k, _)| k.name.as_str().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.0.as_str())
    }

    /// The value the security options give `name`, unless `headers` writes it.
    pub(super) fn security(&self, name: &str) -> Option<&str> {
        if self.by_hand(name) {
            return None;
        }
        self.security
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(name))
            .map(|s| s.value.as_str())
    }

    /// Neither the security options nor `headers` send `name`.
    pub(super) fn missing(&self, name: &str) -> bool {
        !self.by_hand(name) && self.security(name).is_none()
    }
}
