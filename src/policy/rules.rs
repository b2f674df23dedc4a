//! The parts of a route an HTTPRoute rule adds, compiled: the conditions that
//! pick it among the routes of one path, the path rewrite, and the redirect it
//! answers with.

use std::borrow::Cow;

use http::{HeaderName, HeaderValue, Method, StatusCode};
use pingora_http::RequestHeader;

use crate::config::route_rules::{PathRewrite, RouteRedirect, RouteRules};
use crate::config::KeyError;

/// What a request brings to route matching besides its path: its head, and the
/// local port it arrived on (its listener's).
#[derive(Clone, Copy)]
pub struct Asked<'a> {
    pub req: &'a RequestHeader,
    pub port: u16,
}

/// A route's matches beyond its path: all must hold.
#[derive(Debug)]
pub struct Conditions {
    port: Option<u16>,
    method: Option<Method>,
    headers: Box<[(HeaderName, HeaderValue)]>,
}

impl Conditions {
    pub fn of(rules: &RouteRules) -> Option<Box<Conditions>> {
        rules.has_conditions().then(|| {
            Box::new(Conditions {
                port: rules.port,
                method: rules.method.clone(),
                headers: rules.headers.clone().into(),
            })
        })
    }

    /// Header names match in any case (`HeaderName` is lower case); a value
    /// matches exactly, on any of the header's lines.
    pub fn matches(&self, asked: Asked) -> bool {
        let req = asked.req;
        self.port.is_none_or(|p| p == asked.port)
            && self.method.as_ref().is_none_or(|m| *m == req.method)
            && self.headers.iter().all(|(name, value)| {
                req.headers
                    .get_all(name)
                    .iter()
                    .any(|v| v.as_bytes() == value.as_bytes())
            })
    }
}

/// The path the upstream sees instead of the request's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rewrite {
    /// The first `len` bytes (the matched prefix, without its trailing `/`)
    /// become `with` (without its trailing `/`): `strip_prefix` is `with` empty.
    Prefix {
        len: usize,
        with: Box<str>,
    },
    Full(Box<str>),
}

impl Rewrite {
    /// `prefix_len`: the length of the route's prefix key, when it has one.
    pub fn of(rewrite: &PathRewrite, prefix_len: Option<usize>) -> Result<Rewrite, KeyError> {
        match (rewrite, prefix_len) {
            (PathRewrite::Full(p), _) => Ok(Rewrite::Full(p.as_str().into())),
            (PathRewrite::Prefix(with), Some(len)) => Ok(Rewrite::Prefix {
                len,
                with: with.trim_end_matches('/').into(),
            }),
            (PathRewrite::Prefix(_), None) => {
                Err(KeyError::here("a prefix replacement needs a prefix match"))
            }
        }
    }

    /// Applied to a normalized path that the route matched.
    pub fn apply<'p>(&self, path: &'p str) -> Cow<'p, str> {
        match self {
            Rewrite::Full(p) => Cow::Owned(p.to_string()),
            Rewrite::Prefix { len, with } => match (path.get(*len..), with.is_empty()) {
                (Some(""), true) => Cow::Borrowed("/"),
                (Some(rest), true) => Cow::Borrowed(rest),
                (Some(rest), false) => Cow::Owned(format!("{with}{rest}")),
                (None, _) => Cow::Borrowed(path),
            },
        }
    }
}

/// A redirect a route answers with (an HTTPRoute's `RequestRedirect`).
#[derive(Debug)]
pub struct RedirectTo {
    scheme: Option<Box<str>>,
    hostname: Option<Box<str>>,
    port: Option<u16>,
    path: Option<Rewrite>,
    pub status: StatusCode,
    listener_port: u16,
    keep_query: bool,
}

impl RedirectTo {
    pub fn compile(r: &RouteRedirect, prefix_len: Option<usize>) -> Result<RedirectTo, KeyError> {
        let status = StatusCode::from_u16(r.status)
            .ok()
            .filter(StatusCode::is_redirection)
            .ok_or_else(|| KeyError::new("status", format!("{} is no redirect", r.status)))?;
        Ok(RedirectTo {
            scheme: r.scheme.as_deref().map(Into::into),
            hostname: r.hostname.as_deref().map(Into::into),
            port: r.port,
            path: r
                .path
                .as_ref()
                .map(|p| Rewrite::of(p, prefix_len))
                .transpose()?,
            status,
            listener_port: r.listener_port,
            keep_query: r.keep_query,
        })
    }

    /// The `Location`: what the redirect sets, the rest from the request (its
    /// host without the port, its normalized path, its query). Without a scheme
    /// nor a port the listener's port is kept; the scheme's default port is
    /// left out.
    pub fn location(&self, https: bool, host: &str, path: &str, query: Option<&str>) -> String {
        let scheme = self
            .scheme
            .as_deref()
            .unwrap_or(if https { "https" } else { "http" });
        let port = match (self.port, &self.scheme) {
            (Some(p), _) => p,
            (None, Some(_)) if scheme == "https" => 443,
            (None, Some(_)) => 80,
            (None, None) => self.listener_port,
        };
        let host = self.hostname.as_deref().unwrap_or(host);
        let path = self
            .path
            .as_ref()
            .map_or(Cow::Borrowed(path), |r| r.apply(path));
        let mut out = format!("{scheme}://{host}");
        if !matches!((scheme, port), ("http", 80) | ("https", 443)) {
            out.push_str(&format!(":{port}"));
        }
        out.push_str(&path);
        if let Some(q) = query.filter(|_| self.keep_query) {
            out.push('?');
            out.push_str(q);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Gateway API's table for `ReplacePrefixMatch` (HTTPPathModifier).
    #[test]
    fn prefix_replacement_follows_the_gateway_api_table() {
        for (path, prefix, with, want) in [
            ("/foo/bar", "/foo", "/xyz", "/xyz/bar"),
            ("/foo/bar", "/foo", "/xyz/", "/xyz/bar"),
            ("/foo/bar", "/foo/", "/xyz", "/xyz/bar"),
            ("/foo/bar", "/foo/", "/xyz/", "/xyz/bar"),
            ("/foo", "/foo", "/xyz", "/xyz"),
            ("/foo/", "/foo", "/xyz", "/xyz/"),
            ("/foo/bar", "/foo", "", "/bar"),
            ("/foo/", "/foo", "", "/"),
            ("/foo", "/foo", "", "/"),
            ("/foo/", "/foo", "/", "/"),
            ("/foo", "/foo", "/", "/"),
        ] {
            let len = crate::routing::paths::prefix_key(prefix).len();
            let r = Rewrite::of(&PathRewrite::Prefix(with.into()), Some(len)).unwrap();
            assert_eq!(r.apply(path), want, "{path} {prefix} {with}");
        }
        assert!(Rewrite::of(&PathRewrite::Prefix("/x".into()), None).is_err());
    }

    fn redirect(scheme: Option<&str>, port: Option<u16>, listener_port: u16) -> RedirectTo {
        let r = RouteRedirect {
            scheme: scheme.map(Into::into),
            hostname: None,
            port,
            path: None,
            status: 302,
            listener_port,
            keep_query: true,
        };
        RedirectTo::compile(&r, None).unwrap()
    }

    #[test]
    fn the_port_follows_the_scheme_and_default_ports_are_left_out() {
        let at = |r: &RedirectTo, https| r.location(https, "a.test", "/p", Some("q=1"));
        assert_eq!(at(&redirect(None, None, 80), false), "http://a.test/p?q=1");
        assert_eq!(
            at(&redirect(None, None, 8080), false),
            "http://a.test:8080/p?q=1"
        );
        assert_eq!(
            at(&redirect(Some("https"), None, 80), false),
            "https://a.test/p?q=1"
        );
        assert_eq!(
            at(&redirect(Some("http"), None, 443), true),
            "http://a.test/p?q=1"
        );
        assert_eq!(
            at(&redirect(None, Some(8443), 80), true),
            "https://a.test:8443/p?q=1"
        );
        assert_eq!(
            at(&redirect(Some("https"), Some(443), 80), false),
            "https://a.test/p?q=1"
        );
        let bad = RouteRedirect {
            status: 200,
            ..RouteRedirect {
                scheme: None,
                hostname: None,
                port: None,
                path: None,
                status: 0,
                listener_port: 80,
                keep_query: true,
            }
        };
        assert!(RedirectTo::compile(&bad, None).is_err());
        // nginx's `return CODE URL`: the URL as written, not the request's query.
        let fixed = RouteRedirect {
            path: Some(PathRewrite::Full("/docs?v=2".into())),
            keep_query: false,
            ..RouteRedirect::clone(&bad)
        };
        let fixed = RedirectTo::compile(
            &RouteRedirect {
                status: 301,
                ..fixed
            },
            None,
        )
        .unwrap();
        assert_eq!(
            fixed.location(true, "a.test", "/x", Some("token=secret")),
            "https://a.test:80/docs?v=2"
        );
    }
}
