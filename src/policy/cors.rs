//! CORS at the edge: preflights answered by the gateway, actual responses given the
//! CORS headers of the policy (never the upstream's), and never a reflected wildcard.

use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};

// Names as written on HTTP/1 (Pingora title-cases only a few names it knows).
const ALLOW_ORIGIN: &str = "Access-Control-Allow-Origin";
const ALLOW_CREDENTIALS: &str = "Access-Control-Allow-Credentials";
const ALLOW_METHODS: &str = "Access-Control-Allow-Methods";
const ALLOW_HEADERS: &str = "Access-Control-Allow-Headers";
const EXPOSE_HEADERS: &str = "Access-Control-Expose-Headers";
const MAX_AGE: &str = "Access-Control-Max-Age";
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use pingora_http::ResponseHeader;
use prometheus::IntCounter;

use crate::config::cors::CorsOrigin;
use crate::config::schema::SecurityOptions;
use crate::config::values::split_host_port;
use crate::config::KeyError;
use crate::metrics::Metrics;

/// The CORS response headers, stripped from upstream responses when the gateway
/// handles CORS so that two policies never mix.
const CORS_HEADERS: [HeaderName; 6] = [
    ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_ALLOW_CREDENTIALS,
    ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_HEADERS,
    ACCESS_CONTROL_EXPOSE_HEADERS,
    ACCESS_CONTROL_MAX_AGE,
];

const STAR: HeaderValue = HeaderValue::from_static("*");
const TRUE: HeaderValue = HeaderValue::from_static("true");
/// Methods browsers never preflight.
const SAFELISTED: [Method; 3] = [Method::GET, Method::HEAD, Method::POST];

/// A list that may be the wildcard `*`.
#[derive(Debug, Clone)]
enum Listed {
    Any,
    /// Lower-cased tokens, and the header value to send.
    Some(Vec<String>, HeaderValue),
}

impl Listed {
    fn new(tokens: &[String]) -> Result<Listed, String> {
        if tokens.iter().any(|t| t == "*") {
            return Ok(Listed::Any);
        }
        let value = HeaderValue::from_str(&tokens.join(", ")).map_err(|e| e.to_string())?;
        Ok(Listed::Some(
            tokens.iter().map(|t| t.to_ascii_lowercase()).collect(),
            value,
        ))
    }

    fn allows(&self, token: &str) -> bool {
        match self {
            Listed::Any => true,
            Listed::Some(list, _) => list.iter().any(|t| t.eq_ignore_ascii_case(token)),
        }
    }
}

#[derive(Debug, Clone)]
pub struct CorsPlan {
    any_origin: bool,
    exact: Vec<String>,
    subdomains: Vec<(String, String, Option<u16>)>,
    credentials: bool,
    methods: Listed,
    headers: Listed,
    expose: Option<HeaderValue>,
    max_age: HeaderValue,
    preflights_allowed: IntCounter,
    preflights_denied: IntCounter,
}

/// What a preflight gets.
pub enum Preflight {
    Allowed(Box<ResponseHeader>),
    Denied,
}

impl CorsPlan {
    /// The CORS plan of merged options, when `cors_enabled`; counted for `vhost`.
    pub fn from_options(
        o: &SecurityOptions,
        vhost: &str,
        metrics: &Metrics,
    ) -> Result<Option<CorsPlan>, KeyError> {
        if o.cors_enabled != Some(true) {
            return Ok(None);
        }
        let (allowed, denied) = metrics.cors_preflights(vhost);
        CorsPlan::new(o, allowed, denied).map(Some)
    }

    fn new(
        o: &SecurityOptions,
        allowed: IntCounter,
        denied: IntCounter,
    ) -> Result<CorsPlan, KeyError> {
        let origins = o.allowed_origins.clone().unwrap_or_default();
        if origins.is_empty() {
            return Err(KeyError::new(
                "security.allowed_origins",
                "cors_enabled needs at least one allowed origin",
            ));
        }
        // `*` with credentials never gets here: check_security refuses it for every route.
        let credentials = o.allow_credentials == Some(true);
        let mut plan = CorsPlan {
            any_origin: false,
            exact: Vec::new(),
            subdomains: Vec::new(),
            credentials,
            methods: Listed::new(&tokens(&o.allowed_methods))
                .map_err(|e| KeyError::new("security.allowed_methods", e))?,
            headers: Listed::new(&tokens(&o.allowed_headers))
                .map_err(|e| KeyError::new("security.allowed_headers", e))?,
            expose: None,
            // Always set: the built-in defaults are the weakest layer (config/defaults.yaml).
            max_age: HeaderValue::from(o.max_age.unwrap_or_default()),
            preflights_allowed: allowed,
            preflights_denied: denied,
        };
        for origin in origins {
            match origin {
                CorsOrigin::Any => plan.any_origin = true,
                CorsOrigin::Exact(o) => plan.exact.push(o),
                CorsOrigin::Subdomains {
                    scheme,
                    suffix,
                    port,
                } => plan.subdomains.push((scheme, suffix, port)),
            }
        }
        let expose = tokens(&o.expose_headers);
        if !expose.is_empty() {
            if credentials && expose.iter().any(|t| t == "*") {
                return Err(KeyError::new(
                    "security.expose_headers",
                    "with allow_credentials, browsers read `*` as a header named `*`: list the headers to expose",
                ));
            }
            plan.expose = Some(
                HeaderValue::from_str(&expose.join(", "))
                    .map_err(|e| KeyError::new("security.expose_headers", e.to_string()))?,
            );
        }
        Ok(plan)
    }

    /// Whether the answer depends on the request's Origin, so caches must key on it.
    /// With `*` (never combined with credentials) every response says `*`.
    fn varies_by_origin(&self) -> bool {
        !self.any_origin
    }

    /// The request's Origin if the policy allows it.
    pub fn allowed_origin(&self, req: &HeaderMap) -> Option<HeaderValue> {
        let value = req.get(ORIGIN)?;
        let origin = value.to_str().ok()?;
        let allowed = self.any_origin
            || self.exact.iter().any(|o| o.eq_ignore_ascii_case(origin))
            || self
                .subdomains
                .iter()
                .any(|(scheme, suffix, port)| matches_subdomain(origin, scheme, suffix, *port));
        allowed.then(|| value.clone())
    }

    /// Answers an OPTIONS request that carries Origin and
    /// Access-Control-Request-Method; `None` when it is not a preflight.
    pub fn preflight(&self, method: &Method, req: &HeaderMap) -> Option<Preflight> {
        if method != Method::OPTIONS || !req.contains_key(ORIGIN) {
            return None;
        }
        let requested_method = req.get(ACCESS_CONTROL_REQUEST_METHOD)?;
        let decision = self.preflight_headers(req, requested_method);
        match decision {
            Some(resp) => {
                self.preflights_allowed.inc();
                Some(Preflight::Allowed(Box::new(resp)))
            }
            None => {
                self.preflights_denied.inc();
                Some(Preflight::Denied)
            }
        }
    }

    fn preflight_headers(
        &self,
        req: &HeaderMap,
        requested_method: &HeaderValue,
    ) -> Option<ResponseHeader> {
        let origin = self.allowed_origin(req)?;
        let method = requested_method.to_str().ok()?;
        let safelisted = SAFELISTED.iter().any(|m| m.as_str() == method);
        if !safelisted && !self.methods.allows(method) {
            return None;
        }
        let requested_headers: Vec<&str> = req
            .get_all(ACCESS_CONTROL_REQUEST_HEADERS)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .collect();
        if !requested_headers.iter().all(|h| self.headers.allows(h)) {
            return None;
        }

        let mut resp = ResponseHeader::build(204, Some(8)).ok()?;
        self.allow_origin(&mut resp, origin);
        let methods = match (&self.methods, self.credentials) {
            (Listed::Some(_, value), _) => value.clone(),
            (Listed::Any, false) => STAR,
            // With credentials `*` is a literal method name to browsers: echo instead.
            (Listed::Any, true) => requested_method.clone(),
        };
        resp.insert_header(ALLOW_METHODS, methods).ok()?;
        if !requested_headers.is_empty() {
            let headers = match (&self.headers, self.credentials) {
                (Listed::Some(_, value), _) => value.clone(),
                (Listed::Any, false) => STAR,
                // With credentials `*` is a literal header name to browsers: echo the
                // requested headers instead.
                (Listed::Any, true) => HeaderValue::from_str(&requested_headers.join(", ")).ok()?,
            };
            resp.insert_header(ALLOW_HEADERS, headers).ok()?;
        }
        resp.insert_header(MAX_AGE, self.max_age.clone()).ok()?;
        // Browsers read it on the actual response only; the Gateway API's
        // conformance (HTTPRouteCORS) asks for it on the preflight too.
        if let Some(expose) = &self.expose {
            resp.insert_header(EXPOSE_HEADERS, expose.clone()).ok()?;
        }
        if self.varies_by_origin() {
            merge_vary(&mut resp, "Origin");
        }
        // Echoed values make the answer depend on those request headers too.
        if self.credentials && matches!(self.methods, Listed::Any) {
            merge_vary(&mut resp, "Access-Control-Request-Method");
        }
        if self.credentials && matches!(self.headers, Listed::Any) {
            merge_vary(&mut resp, "Access-Control-Request-Headers");
        }
        Some(resp)
    }

    fn allow_origin(&self, resp: &mut ResponseHeader, origin: HeaderValue) {
        let value = if self.any_origin { STAR } else { origin };
        let _ = resp.insert_header(ALLOW_ORIGIN, value);
        if self.credentials {
            let _ = resp.insert_header(ALLOW_CREDENTIALS, TRUE);
        }
    }

    /// The CORS headers of an actual (non-preflight) response: the upstream's are
    /// replaced; an allowed origin (or anyone, with `*`) gets the policy's; `Vary:
    /// Origin` is merged in whenever the answer depends on the origin.
    pub fn apply(&self, resp: &mut ResponseHeader, origin: Option<&HeaderValue>) {
        // Upstreams rarely send CORS headers: look before paying for six removals.
        if resp.headers.keys().any(|k| CORS_HEADERS.contains(k)) {
            for name in &CORS_HEADERS {
                resp.remove_header(name);
            }
        }
        let origin = if self.any_origin { Some(&STAR) } else { origin };
        if let Some(origin) = origin {
            self.allow_origin(resp, origin.clone());
            if let Some(expose) = &self.expose {
                let _ = resp.insert_header(EXPOSE_HEADERS, expose.clone());
            }
        }
        if self.varies_by_origin() {
            merge_vary(resp, "Origin");
        }
    }
}

fn tokens(list: &Option<Vec<crate::config::values::Token>>) -> Vec<String> {
    list.iter().flatten().map(|t| t.0.clone()).collect()
}

/// `scheme://label.….suffix[:port]`, whole labels only: `https://evil-example.com`
/// and `https://example.com.evil.net` do not match `https://*.example.com`.
fn matches_subdomain(origin: &str, scheme: &str, suffix: &str, port: Option<u16>) -> bool {
    let Some((s, rest)) = origin.split_once("://") else {
        return false;
    };
    if !s.eq_ignore_ascii_case(scheme) {
        return false;
    }
    let Some((host, origin_port)) = split_host_port(rest) else {
        return false;
    };
    let origin_port = match origin_port.map(str::parse::<u16>) {
        Some(Ok(p)) => Some(p),
        Some(Err(_)) => return false,
        None => None,
    };
    if origin_port != port || host.len() <= suffix.len() + 1 {
        return false;
    }
    let (label_part, tail) = host.split_at(host.len() - suffix.len());
    tail.eq_ignore_ascii_case(suffix)
        && label_part.ends_with('.')
        && label_part[..label_part.len() - 1]
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

/// Adds `token` to the response's Vary as one line, keeping every token the
/// upstream sent (across all its Vary lines) and never repeating one.
pub fn merge_vary(resp: &mut ResponseHeader, token: &'static str) {
    let mut lines = resp.headers.get_all(VARY).iter();
    let (first, more) = (lines.next(), lines.next().is_some());
    let has = |v: &HeaderValue| {
        v.to_str()
            .unwrap_or("")
            .split(',')
            .any(|t| t.trim() == "*" || t.trim().eq_ignore_ascii_case(token))
    };
    // The common cases allocate nothing beyond the new value itself.
    match (first, more) {
        (None, _) => {
            let _ = resp.insert_header("Vary", HeaderValue::from_static(token));
            return;
        }
        (Some(v), false) if has(v) => return,
        (Some(v), false) => {
            let joined = format!("{}, {token}", v.to_str().unwrap_or("").trim());
            let _ = resp.insert_header("Vary", joined);
            return;
        }
        (Some(_), true) => {}
    }
    let mut tokens: Vec<&str> = Vec::new();
    for value in resp.headers.get_all(VARY) {
        for t in value.to_str().unwrap_or("").split(',') {
            let t = t.trim();
            if !t.is_empty() && !tokens.iter().any(|x| x.eq_ignore_ascii_case(t)) {
                tokens.push(t);
            }
        }
    }
    if !tokens
        .iter()
        .any(|t| *t == "*" || t.eq_ignore_ascii_case(token))
    {
        tokens.push(token);
    }
    let joined = tokens.join(", ");
    let _ = resp.insert_header("Vary", joined);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subdomain_wildcards_match_whole_labels_only() {
        let m = |o| matches_subdomain(o, "https", "example.com", None);
        assert!(m("https://a.example.com"));
        assert!(m("https://a.b.example.com"));
        assert!(m("HTTPS://A.Example.COM"));
        assert!(!m("https://example.com"));
        assert!(!m("https://evil-example.com"));
        assert!(!m("https://example.com.evil.net"));
        assert!(!m("http://a.example.com"));
        assert!(!m("https://a.example.com:8443"));
        assert!(!m("https://.example.com"));
        assert!(!m("https://a..example.com"));
        assert!(matches_subdomain(
            "https://a.example.com:8443",
            "https",
            "example.com",
            Some(8443)
        ));
    }

    fn vary(values: &[&str], token: &'static str) -> Vec<String> {
        let mut r = ResponseHeader::build(200, None).unwrap();
        for v in values {
            r.append_header("Vary", *v).unwrap();
        }
        merge_vary(&mut r, token);
        r.headers
            .get_all(VARY)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn vary_is_merged_into_one_line_without_duplicates() {
        assert_eq!(vary(&[], "Origin"), ["Origin"]);
        assert_eq!(
            vary(&["Accept-Encoding"], "Origin"),
            ["Accept-Encoding, Origin"]
        );
        assert_eq!(
            vary(&["accept-encoding, origin"], "Origin"),
            ["accept-encoding, origin"]
        );
        assert_eq!(
            vary(&["Accept-Encoding", "Cookie, Accept-Encoding"], "Origin"),
            ["Accept-Encoding, Cookie, Origin"]
        );
        assert_eq!(vary(&["Origin", "Cookie"], "Origin"), ["Origin, Cookie"]);
        assert_eq!(vary(&["*"], "Origin"), ["*"]);
    }
}
