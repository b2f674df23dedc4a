//! The HTTP -> HTTPS redirect (`ssl_redirect`, `ssl_host`, `ssl_permanent`,
//! `ssl_redirect_exempt`).

use http::Method;
use regex::RegexSet;

use crate::config::redirect::ExemptRule;
use crate::config::schema::SecurityOptions;
use crate::config::values::{HostPattern, Toggle};
use crate::config::KeyError;
use crate::metrics::{Metrics, RedirectCounters};

#[derive(Debug, Clone)]
pub struct RedirectPlan {
    /// `ssl_host`: the host every redirect goes to. Without it, the request's host,
    /// which routing has already matched against the vhost's configured names.
    ssl_host: Option<String>,
    /// `ssl_port`: named in the Location only when set (the public port is usually
    /// 443 even when the gateway listens elsewhere, behind a Service or LB).
    port: Option<u16>,
    permanent: bool,
    exempt_prefixes: Vec<String>,
    exempt_regexes: RegexSet,
    counters: Option<RedirectCounters>,
}

impl RedirectPlan {
    /// The redirect of merged options, when `ssl_redirect` is on; counted for `vhost`.
    pub fn from_options(
        sec: &SecurityOptions,
        vhost: &str,
        metrics: &Metrics,
    ) -> Result<Option<RedirectPlan>, KeyError> {
        if sec.ssl_redirect != Some(true) {
            return Ok(None);
        }
        let ssl_host = match &sec.ssl_host {
            Some(Toggle::On(HostPattern::Exact(h))) => Some(h.clone()),
            Some(Toggle::On(_)) => {
                return Err(KeyError::new(
                    "security.ssl_host",
                    "ssl_host is one host name, without wildcards",
                ))
            }
            _ => None,
        };
        let exempt = sec.ssl_redirect_exempt.as_deref().unwrap_or_default();
        let port = match sec.ssl_port {
            Some(Toggle::On(p)) => Some(p),
            _ => None,
        };
        let mut plan = RedirectPlan::new(ssl_host, port, sec.ssl_permanent != Some(false), exempt)
            .map_err(|e| KeyError::new("security.ssl_redirect_exempt", e))?;
        plan.counters = Some(metrics.redirects(vhost));
        Ok(Some(plan))
    }

    pub fn new(
        ssl_host: Option<String>,
        port: Option<u16>,
        permanent: bool,
        exempt: &[ExemptRule],
    ) -> Result<RedirectPlan, String> {
        let mut exempt_prefixes = Vec::new();
        let mut regexes = Vec::new();
        for rule in exempt {
            match rule {
                ExemptRule::Prefix(p) => exempt_prefixes.push(p.clone()),
                ExemptRule::Regex(r) => regexes.push(r.clone()),
            }
        }
        let exempt_regexes = RegexSet::new(&regexes).map_err(|e| e.to_string())?;
        Ok(RedirectPlan {
            ssl_host,
            port,
            permanent,
            exempt_prefixes,
            exempt_regexes,
            counters: None,
        })
    }

    /// Whether a request for `path` is redirected at all.
    pub fn applies_to(&self, path: &str) -> bool {
        !self
            .exempt_prefixes
            .iter()
            .any(|p| path.starts_with(p.as_str()))
            && !self.exempt_regexes.is_match(path)
    }

    /// Counts a redirect sent with `status`.
    pub fn count(&self, status: u16) {
        if let Some(c) = &self.counters {
            c.inc(status);
        }
    }

    /// 301/302 keep GET and HEAD; other methods get 308/307 so the body survives.
    pub fn status(&self, method: &Method) -> u16 {
        let safe = method == Method::GET || method == Method::HEAD;
        match (self.permanent, safe) {
            (true, true) => 301,
            (false, true) => 302,
            (true, false) => 308,
            (false, false) => 307,
        }
    }

    /// `https://host/path?query`. `matched_host` is the request's host only when the
    /// router matched it against one of this vhost's names, so a forged Host cannot
    /// pick the destination. `None` when there is no host to send the client to.
    pub fn location(&self, matched_host: Option<&str>, path_and_query: &str) -> Option<String> {
        let host = self.ssl_host.as_deref().or(matched_host)?;
        let path = if path_and_query.starts_with('/') {
            path_and_query
        } else {
            "/"
        };
        let mut loc = String::with_capacity(14 + host.len() + path.len());
        loc.push_str("https://");
        loc.push_str(host);
        if let Some(port) = self.port.filter(|p| *p != 443) {
            loc.push(':');
            loc.push_str(&port.to_string());
        }
        loc.push_str(path);
        Some(loc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(ssl_host: Option<&str>, permanent: bool) -> RedirectPlan {
        RedirectPlan::new(
            ssl_host.map(str::to_string),
            None,
            permanent,
            &[
                ExemptRule::Prefix("/.well-known/acme-challenge/".into()),
                ExemptRule::Regex("^/health(z)?$".into()),
            ],
        )
        .unwrap()
    }

    #[test]
    fn statuses() {
        assert_eq!(plan(None, true).status(&Method::GET), 301);
        assert_eq!(plan(None, true).status(&Method::HEAD), 301);
        assert_eq!(plan(None, true).status(&Method::POST), 308);
        assert_eq!(plan(None, false).status(&Method::GET), 302);
        assert_eq!(plan(None, false).status(&Method::PUT), 307);
    }

    #[test]
    fn exemptions() {
        let p = plan(None, true);
        assert!(!p.applies_to("/.well-known/acme-challenge/token"));
        assert!(!p.applies_to("/healthz"));
        assert!(p.applies_to("/healthz/deep"));
        assert!(p.applies_to("/"));
    }

    #[test]
    fn locations() {
        assert_eq!(
            plan(None, true).location(Some("app.example.com"), "/a?b=c"),
            Some("https://app.example.com/a?b=c".into())
        );
        assert_eq!(
            plan(Some("secure.example.com"), true).location(Some("app.example.com"), "/a"),
            Some("https://secure.example.com/a".into())
        );
        assert_eq!(
            plan(Some("secure.example.com"), true).location(None, "/a"),
            Some("https://secure.example.com/a".into())
        );
        assert_eq!(
            plan(None, true).location(Some("app.example.com"), "*"),
            Some("https://app.example.com/".into())
        );
        assert_eq!(plan(None, true).location(None, "/a"), None);
        let with_port = RedirectPlan::new(None, Some(8443), true, &[]).unwrap();
        assert_eq!(
            with_port.location(Some("a.test"), "/x"),
            Some("https://a.test:8443/x".into())
        );
        let default_port = RedirectPlan::new(None, Some(443), true, &[]).unwrap();
        assert_eq!(
            default_port.location(Some("a.test"), "/x"),
            Some("https://a.test/x".into())
        );
    }
}
