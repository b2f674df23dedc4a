//! ingress-nginx's security annotations on an Ingress of the gateway's class,
//! for teams migrating: the redirects, CORS, and the header lines of
//! `configuration-snippet` and `server-snippet`, translated into the keys
//! gw.yaml has. A snippet line that is not one of three header directives
//! refuses the whole Ingress: nothing of a snippet is ever run, nor silently
//! dropped.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::{frames, removes_framing};
use crate::config::cors::CorsOrigin;
use crate::config::route_rules::{PathRewrite, RouteRedirect};
use crate::config::schema::{HeaderActions, SecurityOptions};
use crate::config::values::{HeaderNameText, HeaderValueText, HostPattern, RemovePattern, Token};

const PREFIX: &str = "nginx.ingress.kubernetes.io/";

/// ingress-nginx's defaults for what `enable-cors` leaves out.
const CORS_METHODS: &str = "GET, PUT, POST, DELETE, PATCH, OPTIONS";
const CORS_HEADERS: &str = "DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,Authorization";
const CORS_MAX_AGE: u64 = 1_728_000;

/// The last annotations accepted of each Ingress, by uid: what its paths keep
/// while newer ones are refused.
pub type LastGood = HashMap<String, Arc<Nginx>>;

/// What an Ingress's annotations ask of its paths: the route's own keys (the
/// strongest layer, as an HTTPRoute's filters), a redirect, and what was
/// changed on the way, for a warning Event.
#[derive(Debug, Default)]
pub struct Nginx {
    pub security: SecurityOptions,
    pub headers: HeaderActions,
    pub redirect: Option<RouteRedirect>,
    /// `from-to-www-redirect`: the other name of each host redirects to it.
    pub www_redirect: bool,
    pub warnings: Vec<String>,
}

/// Reads the annotations; `tls`: whether the Ingress has a TLS section (where
/// ingress-nginx redirects to HTTPS by default). An error names the annotation
/// (and the snippet's line) and why.
pub fn read(annotations: &BTreeMap<String, String>, tls: bool) -> Result<Nginx, String> {
    let a = Annotations(annotations);
    let (get, flag) = (|name: &str| a.get(name), |name: &str| a.flag(name));
    let mut out = Nginx::default();
    for name in annotations.keys().filter_map(|k| k.strip_prefix(PREFIX)) {
        let guards = name.starts_with("auth-")
            || name.ends_with("-source-range")
            || name == "satisfy"
            || name.contains("modsecurity");
        if guards {
            return Err(format!(
                "{PREFIX}{name}: not supported, and the Ingress would be served without what it \
                 guards; put that protection in front of or behind the gateway, then remove it"
            ));
        }
        if name.starts_with("limit-") {
            out.warnings.push(format!(
                "{PREFIX}{name}: rate and connection limits per Ingress are not translated; \
                 gw.yaml's `limits` apply"
            ));
        }
    }
    // Only what the annotations say: without them the gateway's policy decides
    // (ingress-nginx's own default, a redirect wherever TLS is configured, is
    // not assumed for Ingresses that never ran on it).
    // An annotation that would not redirect in ingress-nginx (`ssl-redirect:
    // "true"` without a certificate) leaves the policy's choice alone.
    let on = match (flag("force-ssl-redirect")?, flag("ssl-redirect")?) {
        (Some(true), _) => Some(true),
        (_, Some(true)) if tls => Some(true),
        (_, Some(false)) => Some(false),
        _ => None,
    };
    if on == Some(true) {
        // ingress-nginx answers 308: permanent, and it keeps the method.
        out.security.ssl_permanent = Some(true);
    }
    out.security.ssl_redirect = on;
    out.redirect = match (get("temporal-redirect"), get("permanent-redirect")) {
        (Some(url), _) => Some(to_url(
            "temporal-redirect",
            url,
            code(get("temporal-redirect-code"), 302, 307)?,
        )?),
        (None, Some(url)) => Some(to_url(
            "permanent-redirect",
            url,
            code(get("permanent-redirect-code"), 301, 308)?,
        )?),
        (None, None) => None,
    };
    out.www_redirect = flag("from-to-www-redirect")?.unwrap_or(false);
    if flag("enable-cors")? == Some(true) {
        cors(&a, &mut out)?;
    }
    for name in ["configuration-snippet", "server-snippet"] {
        if let Some(text) = get(name) {
            snippet(name, text, &mut out.headers)?;
        }
    }
    Ok(out)
}

/// The annotations of an Ingress, by their name after ingress-nginx's prefix.
struct Annotations<'a>(&'a BTreeMap<String, String>);

impl<'a> Annotations<'a> {
    fn get(&self, name: &str) -> Option<&'a str> {
        self.0.get(&format!("{PREFIX}{name}")).map(|v| v.trim())
    }

    /// A boolean as ingress-nginx parses it.
    fn flag(&self, name: &str) -> Result<Option<bool>, String> {
        self.get(name)
            .map(|v| match v.to_ascii_lowercase().as_str() {
                "true" | "1" | "t" => Ok(true),
                "false" | "0" | "f" => Ok(false),
                _ => Err(format!("{PREFIX}{name}: `{v}` is not true or false")),
            })
            .transpose()
    }
}

/// `*-redirect-code`: ingress-nginx takes 300 to `max`, else the default.
fn code(text: Option<&str>, default: u16, max: u16) -> Result<u16, String> {
    Ok(text
        .and_then(|t| t.parse::<u16>().ok())
        .filter(|c| (300..=max).contains(c) && *c != 304 && *c != 305 && *c != 306)
        .unwrap_or(default))
}

/// A fixed URL, as ingress-nginx's `return CODE URL;` sends it.
fn to_url(name: &str, url: &str, status: u16) -> Result<RouteRedirect, String> {
    let at = |why: &str| format!("{PREFIX}{name}: `{url}` {why}");
    if url.contains('$') {
        return Err(at(
            "holds an nginx variable, which the gateway does not expand",
        ));
    }
    let uri: http::Uri = url.parse().map_err(|_| at("is not a URL"))?;
    let scheme = match uri.scheme_str() {
        Some(s @ ("http" | "https")) => s.to_string(),
        _ => return Err(at("is not an http or https URL")),
    };
    let host = uri.host().unwrap_or_default();
    let named = matches!(
        HostPattern::try_from(host.to_string()),
        Ok(HostPattern::Exact(_))
    );
    if !named || uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(at("does not name a host"));
    }
    if url.contains('#') {
        return Err(at("has a fragment"));
    }
    // As nginx's `return CODE URL;`: the URL as written, its query included,
    // never the request's.
    let path = match uri.path_and_query().map(|p| p.as_str()) {
        None | Some("") => "/".to_string(),
        Some(p) => p.to_string(),
    };
    Ok(RouteRedirect {
        scheme: Some(scheme),
        hostname: Some(host.to_ascii_lowercase()),
        port: uri.port_u16(),
        path: Some(PathRewrite::Full(path)),
        status,
        listener_port: 0,
        keep_query: false,
    })
}

fn cors(a: &Annotations, out: &mut Nginx) -> Result<(), String> {
    let get = |name: &str| a.get(name);
    let list = |name: &str, default: &str| -> Vec<String> {
        get(name)
            .unwrap_or(default)
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect()
    };
    let tokens = |name: &str, default: &str| -> Result<Vec<Token>, String> {
        list(name, default)
            .into_iter()
            .map(|t| Token::try_from(t).map_err(|e| format!("{PREFIX}{name}: {e}")))
            .collect()
    };
    let origins = list("cors-allow-origin", "*")
        .into_iter()
        .map(|o| CorsOrigin::try_from(o).map_err(|e| format!("{PREFIX}cors-allow-origin: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let origins = match origins.contains(&CorsOrigin::Any) {
        true => vec![CorsOrigin::Any],
        false => origins,
    };
    let mut credentials = a.flag("cors-allow-credentials")?.unwrap_or(true);
    if credentials && origins == [CorsOrigin::Any] {
        // ingress-nginx sends `*` with `Allow-Credentials: true`, which
        // browsers refuse for credentialed requests: what they allowed is `*`
        // without credentials.
        credentials = false;
        out.warnings.push(format!(
            "{PREFIX}enable-cors: `*` with credentials, which browsers refuse for credentialed \
             requests, is served as `*` without credentials; list the origins in \
             cors-allow-origin to allow credentials"
        ));
    }
    let max_age = match get("cors-max-age") {
        None => CORS_MAX_AGE,
        Some(v) => v
            .parse()
            .map_err(|_| format!("{PREFIX}cors-max-age: `{v}` is not a number of seconds"))?,
    };
    let s = &mut out.security;
    s.cors_enabled = Some(true);
    s.allowed_origins = Some(origins);
    s.allowed_methods = Some(tokens("cors-allow-methods", CORS_METHODS)?);
    s.allowed_headers = Some(tokens("cors-allow-headers", CORS_HEADERS)?);
    s.expose_headers = Some(tokens("cors-expose-headers", "")?);
    s.max_age = Some(max_age);
    s.allow_credentials = Some(credentials);
    Ok(())
}

/// The header directives of a snippet: `more_set_headers "Name: value";`,
/// `more_clear_headers "Name";` and `add_header Name "value" always;`.
fn snippet(name: &str, text: &str, headers: &mut HeaderActions) -> Result<(), String> {
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let refuse = |why: &str| {
            format!(
                "{PREFIX}{name}, line {}: `{line}`: {why}; the Ingress is not served (only \
                 more_set_headers, more_clear_headers and add_header ... always are translated)",
                i + 1
            )
        };
        let body = line
            .strip_suffix(';')
            .ok_or_else(|| refuse("not one directive ending in `;`"))?;
        let words = words(body).map_err(refuse)?;
        let (directive, args) = words.split_first().ok_or_else(|| refuse("empty"))?;
        match (directive.as_str(), args) {
            ("more_set_headers", args) if !args.is_empty() => {
                for arg in args {
                    if arg.starts_with('-') {
                        return Err(refuse(
                            "options (-s, -t) of more_set_headers are not translated",
                        ));
                    }
                    let (name, value) = arg
                        .split_once(':')
                        .ok_or_else(|| refuse("not `Name: value`"))?;
                    // headers-more clears a header given no value.
                    match value.trim() {
                        "" => clear(headers, name.trim()).map_err(|e| refuse(&e))?,
                        value => set(headers, name.trim(), value).map_err(|e| refuse(&e))?,
                    }
                }
            }
            ("more_clear_headers", args) if !args.is_empty() => {
                for arg in args {
                    if arg.starts_with('-') {
                        return Err(refuse(
                            "options (-s, -t) of more_clear_headers are not translated",
                        ));
                    }
                    clear(headers, arg).map_err(|e| refuse(&e))?;
                }
            }
            ("add_header", [name, value, always]) if always == "always" => {
                set(headers, name, value).map_err(|e| refuse(&e))?;
            }
            ("add_header", [_, _]) => {
                return Err(refuse(
                    "add_header without `always` applies to some statuses only (2xx and 3xx); \
                     add `always` or use more_set_headers",
                ))
            }
            _ => return Err(refuse("not a header directive the gateway translates")),
        }
    }
    Ok(())
}

fn set(headers: &mut HeaderActions, name: &str, value: &str) -> Result<(), String> {
    let name = HeaderNameText::try_from(name.to_string())?;
    if frames(&name.name) {
        return Err(format!("`{name}` frames the message or the connection"));
    }
    if value.contains('$') {
        return Err("an nginx variable, which the gateway does not expand".into());
    }
    let value = HeaderValueText::try_from(value.to_string())?;
    headers.set.insert(name, value);
    Ok(())
}

fn clear(headers: &mut HeaderActions, pattern: &str) -> Result<(), String> {
    let pattern = RemovePattern::try_from(pattern.to_string())?;
    if removes_framing(&pattern) {
        return Err(format!(
            "`{pattern}` would remove a header that frames the message"
        ));
    }
    headers.remove.push(pattern);
    Ok(())
}

/// nginx's words: bare, or in double or single quotes (with `\` escapes).
fn words(text: &str) -> Result<Vec<String>, &'static str> {
    const UNBALANCED: &str = "unbalanced quotes";
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut word = String::new();
        if c == '"' || c == '\'' {
            chars.next();
            loop {
                match chars.next().ok_or(UNBALANCED)? {
                    '\\' => word.push(chars.next().ok_or(UNBALANCED)?),
                    q if q == c => break,
                    other => word.push(other),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                if c == '"' || c == '\'' {
                    return Err(UNBALANCED);
                }
                if c == ';' || c == '{' || c == '}' {
                    return Err("a `;`, `{` or `}` outside quotes: one directive per line");
                }
                word.push(c);
                chars.next();
            }
        }
        out.push(word);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(pairs: &[(&str, &str)], tls: bool) -> Result<Nginx, String> {
        let map = pairs
            .iter()
            .map(|(k, v)| (format!("{PREFIX}{k}"), v.to_string()))
            .collect();
        read(&map, tls)
    }

    #[test]
    fn redirects_follow_ingress_nginx() {
        let n = read_all(&[], true).unwrap();
        assert_eq!(n.security.ssl_redirect, None);
        let n = read_all(&[("ssl-redirect", "true")], true).unwrap();
        assert_eq!(
            (n.security.ssl_redirect, n.security.ssl_permanent),
            (Some(true), Some(true))
        );
        // Not a redirect in ingress-nginx without a certificate: the policy decides.
        let n = read_all(&[("ssl-redirect", "true")], false).unwrap();
        assert_eq!(n.security.ssl_redirect, None);
        let n = read_all(&[("force-ssl-redirect", "false")], true).unwrap();
        assert_eq!(n.security.ssl_redirect, None);
        let n = read_all(&[("ssl-redirect", "false")], true).unwrap();
        assert_eq!(n.security.ssl_redirect, Some(false));
        let n = read_all(&[("force-ssl-redirect", "true")], false).unwrap();
        assert_eq!(n.security.ssl_redirect, Some(true));
        let n = read_all(&[("permanent-redirect", "https://new.example/docs")], false).unwrap();
        let r = n.redirect.unwrap();
        assert_eq!(
            (
                r.scheme.as_deref(),
                r.hostname.as_deref(),
                r.port,
                r.path,
                r.status
            ),
            (
                Some("https"),
                Some("new.example"),
                None,
                Some(PathRewrite::Full("/docs".into())),
                301
            )
        );
        let n = read_all(
            &[
                ("permanent-redirect", "https://a.example"),
                ("permanent-redirect-code", "308"),
                ("temporal-redirect", "http://b.example:8080/x"),
                ("temporal-redirect-code", "399"),
            ],
            false,
        )
        .unwrap();
        let r = n.redirect.unwrap();
        assert_eq!(
            (r.hostname.as_deref(), r.port, r.status),
            (Some("b.example"), Some(8080), 302)
        );
        let n = read_all(
            &[("permanent-redirect", "https://a.example/?next=1")],
            false,
        )
        .unwrap();
        let r = n.redirect.unwrap();
        assert_eq!(
            (r.path, r.keep_query),
            (Some(PathRewrite::Full("/?next=1".into())), false)
        );
        for (url, why) in [
            ("https://www.example.com$request_uri", "nginx variable"),
            ("https://user@evil.example/", "does not name a host"),
            ("https://a.example/#top", "fragment"),
            ("//evil.example/", "not an http or https URL"),
        ] {
            let e = read_all(&[("permanent-redirect", url)], false).unwrap_err();
            assert!(e.contains(why), "{url}: {e}");
        }
        let e = read_all(&[("permanent-redirect", "javascript:alert(1)")], false).unwrap_err();
        assert!(
            e.contains("not an http or https URL") || e.contains("not a URL"),
            "{e}"
        );
        let e = read_all(&[("ssl-redirect", "yes")], false).unwrap_err();
        assert_eq!(
            e,
            "nginx.ingress.kubernetes.io/ssl-redirect: `yes` is not true or false"
        );
    }

    #[test]
    fn what_guards_an_ingress_in_ingress_nginx_refuses_it_and_limits_are_noticed() {
        for name in [
            "auth-url",
            "auth-type",
            "whitelist-source-range",
            "denylist-source-range",
            "enable-modsecurity",
            "satisfy",
        ] {
            let e = read_all(&[(name, "x")], false).unwrap_err();
            assert!(
                e.starts_with(&format!("{PREFIX}{name}: not supported")),
                "{e}"
            );
        }
        let n = read_all(&[("limit-rps", "10")], false).unwrap();
        assert_eq!(n.warnings.len(), 1);
        assert!(n.warnings[0].starts_with("nginx.ingress.kubernetes.io/limit-rps: "));
    }

    #[test]
    fn a_bare_enable_cors_is_what_browsers_allowed_of_it() {
        let n = read_all(&[("enable-cors", "true")], false).unwrap();
        let s = &n.security;
        assert_eq!(s.allowed_origins.as_deref(), Some(&[CorsOrigin::Any][..]));
        assert_eq!(s.allow_credentials, Some(false));
        assert_eq!(s.max_age, Some(1_728_000));
        let methods: Vec<&str> = s
            .allowed_methods
            .iter()
            .flatten()
            .map(|t| t.0.as_str())
            .collect();
        assert_eq!(
            methods,
            ["GET", "PUT", "POST", "DELETE", "PATCH", "OPTIONS"]
        );
        assert_eq!(n.warnings.len(), 1);
        let n = read_all(
            &[
                ("enable-cors", "true"),
                (
                    "cors-allow-origin",
                    "https://a.example, https://*.b.example",
                ),
                ("cors-expose-headers", "X-Request-Id"),
                ("cors-max-age", "600"),
            ],
            false,
        )
        .unwrap();
        assert_eq!(n.security.allow_credentials, Some(true));
        assert_eq!(n.security.allowed_origins.as_ref().unwrap().len(), 2);
        assert!(n.warnings.is_empty());
        let e = read_all(
            &[
                ("enable-cors", "true"),
                ("cors-allow-origin", "https://a.*.example"),
            ],
            false,
        )
        .unwrap_err();
        assert!(
            e.starts_with("nginx.ingress.kubernetes.io/cors-allow-origin: "),
            "{e}"
        );
    }

    #[test]
    fn snippets_translate_three_header_directives_and_refuse_the_rest() {
        let n = read_all(
            &[(
                "configuration-snippet",
                "# headers\nmore_set_headers \"X-Frame-Options: SAMEORIGIN\" 'X-Team: shop';\n\
                 more_clear_headers \"X-Powered-By\" X-Debug-*;\nadd_header Cache-Control \"no-store\" always;\n",
            )],
            false,
        )
        .unwrap();
        let set: Vec<(String, String)> = n
            .headers
            .set
            .iter()
            .map(|(k, v)| (k.to_string(), v.0.clone()))
            .collect();
        assert_eq!(
            set,
            [
                ("X-Frame-Options".into(), "SAMEORIGIN".into()),
                ("X-Team".into(), "shop".into()),
                ("Cache-Control".into(), "no-store".into())
            ]
        );
        assert_eq!(n.headers.remove.len(), 2);
        // headers-more clears a header set to nothing.
        let n = read_all(
            &[("server-snippet", "more_set_headers \"Server:\";")],
            false,
        )
        .unwrap();
        assert_eq!((n.headers.set.len(), n.headers.remove.len()), (0, 1));
        for (line, why) in [
            ("proxy_pass http://evil;", "not a header directive"),
            ("add_header X-A \"b\";", "without `always`"),
            ("more_set_headers -s 404 \"X-A: b\";", "options"),
            ("more_set_headers \"X-A: b\"", "ending in `;`"),
            (
                "more_set_headers \"X-A: b\"; proxy_pass http://evil;",
                "one directive per line",
            ),
            ("more_set_headers \"X-A: b\r\nSet-Cookie: x\";", "X-A"),
            ("more_set_headers \"X-A: b;", "unbalanced"),
            ("location / { return 200; }", "ending in `;`"),
            ("more_set_headers \"X-A: b\" {;", "one directive per line"),
            ("more_set_headers \"Transfer-Encoding: chunked\";", "frames"),
            ("more_clear_headers \"Content-*\";", "frames"),
            ("add_header X-Id \"$request_id\" always;", "nginx variable"),
        ] {
            let e = read_all(&[("server-snippet", line)], false).unwrap_err();
            assert!(
                e.starts_with("nginx.ingress.kubernetes.io/server-snippet, line 1: "),
                "{e}"
            );
            assert!(e.contains(why), "{line}: {e}");
        }
    }
}
