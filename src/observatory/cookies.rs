//! The cookies test, and the cookie jar a scan keeps (as the Observatory's
//! tough-cookie jar does: what it stores is what the test reads).

use url::Url;

use super::{headers, only_if_worse, Expectation, Retrieval, TestResult};

/// A stored cookie: the parts the test reads, and what the jar matches on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cookie {
    pub key: String,
    pub value: String,
    pub secure: bool,
    pub http_only: bool,
    /// `strict`, `lax` or `none`; any other value is as if absent (tough-cookie).
    pub same_site: Option<&'static str>,
    domain: String,
    /// Without a `Domain` attribute, only the host that set it gets it back.
    host_only: bool,
    path: String,
}

impl Cookie {
    /// Parses a `Set-Cookie` line received from `url`; `None` for what the jar
    /// refuses (no `name=`, a `Domain` that is not the host's, a prefix rule broken).
    pub fn parse(line: &str, url: &Url) -> Option<Cookie> {
        let host = url.host_str()?.to_ascii_lowercase();
        let ip_host = matches!(url.host(), Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)));
        let mut parts = line.split(';');
        let (key, value) = parts.next()?.split_once('=')?;
        let key = key.trim();
        if key.is_empty() || key.chars().any(|c| c.is_control()) {
            return None;
        }
        let mut c = Cookie {
            key: key.to_string(),
            value: value.trim().to_string(),
            secure: false,
            http_only: false,
            same_site: None,
            domain: host.clone(),
            host_only: true,
            path: default_path(url),
        };
        let mut domain_attr = false;
        for attr in parts {
            let (name, v) = attr.split_once('=').unwrap_or((attr, ""));
            let v = v.trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "secure" => c.secure = true,
                "httponly" => c.http_only = true,
                "samesite" => {
                    c.same_site = match v.to_ascii_lowercase().as_str() {
                        "strict" => Some("strict"),
                        "lax" => Some("lax"),
                        "none" => Some("none"),
                        _ => None,
                    }
                }
                "domain" if !v.is_empty() => {
                    let d = v.trim_start_matches('.').to_ascii_lowercase();
                    if !(host == d || host.ends_with(&format!(".{d}"))) {
                        return None;
                    }
                    // An address has no parent domains (`Domain=0.1` for 10.0.0.1), and
                    // a cookie for a public suffix, ICANN's (`com`) or a private one
                    // (`github.io`), would follow the scan to every site under it;
                    // tough-cookie refuses both.
                    if d != host && (ip_host || is_public_suffix(&d)) {
                        return None;
                    }
                    domain_attr = true;
                    c.domain = d;
                    c.host_only = false;
                }
                "path" if v.starts_with('/') => c.path = v.to_string(),
                _ => {}
            }
        }
        let https = url.scheme() == "https";
        let secure_prefix = c.key.starts_with("__Secure-") || c.key.starts_with("__Host-");
        if secure_prefix && !(c.secure && https) {
            return None;
        }
        if c.key.starts_with("__Host-") && (domain_attr || c.path != "/") {
            return None;
        }
        Some(c)
    }

    fn matches(&self, url: &Url) -> bool {
        let Some(host) = url.host_str() else {
            return false;
        };
        let host = host.to_ascii_lowercase();
        let domain_ok = if self.host_only {
            host == self.domain
        } else {
            host == self.domain || host.ends_with(&format!(".{}", self.domain))
        };
        let path = url.path();
        let path_ok = path == self.path
            || (path.starts_with(&self.path)
                && (self.path.ends_with('/') || path[self.path.len()..].starts_with('/')));
        domain_ok && path_ok && (!self.secure || url.scheme() == "https")
    }
}

/// RFC 6265 5.1.4: the directory of the request path.
fn default_path(url: &Url) -> String {
    let path = url.path();
    match path.rfind('/') {
        Some(0) | None => "/".into(),
        Some(i) => path[..i].to_string(),
    }
}

/// The cookies one scan chain stored, sent back along the chain.
#[derive(Debug, Clone, Default)]
pub struct Jar {
    cookies: Vec<Cookie>,
}

impl Jar {
    pub fn store(&mut self, line: &str, url: &Url) {
        if let Some(c) = Cookie::parse(line, url) {
            self.cookies
                .retain(|o| !(o.key == c.key && o.domain == c.domain && o.path == c.path));
            self.cookies.push(c);
        }
    }

    /// The `Cookie` header for a request to `url`.
    pub fn header_for(&self, url: &Url) -> Option<String> {
        let pairs: Vec<String> = self
            .cookies
            .iter()
            .filter(|c| c.matches(url))
            .map(|c| format!("{}={}", c.key, c.value))
            .collect();
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }

    pub fn into_cookies(self) -> Vec<Cookie> {
        self.cookies
    }
}

/// `containsInvalidSameSiteCookie`, on a raw `Set-Cookie` line.
fn invalid_same_site(line: &str) -> bool {
    line.trim().split(';').any(|p| {
        let mut kv = p.trim().split('=');
        let key = kv.next().unwrap_or("");
        let value = kv.next().unwrap_or("");
        key.trim().eq_ignore_ascii_case("samesite")
            && (value.is_empty()
                || !["lax", "strict", "none"].contains(&value.trim().to_ascii_lowercase().as_str()))
    })
}

/// Cookies the Observatory leaves out (mozilla/http-observatory#282).
const IGNORED: [&str; 1] = ["heroku-session-affinity"];

/// `cookiesTest`.
pub fn test(r: &Retrieval) -> TestResult {
    use Expectation::*;
    const GOODNESS: [Expectation; 7] = [
        CookiesWithoutSecureFlagButProtectedByHsts,
        CookiesWithoutSecureFlag,
        CookiesSessionWithoutSecureFlagButProtectedByHsts,
        CookiesSamesiteFlagInvalid,
        CookiesAnticsrfWithoutSamesiteFlag,
        CookiesSessionWithoutHttponlyFlag,
        CookiesSessionWithoutSecureFlag,
    ];
    let hsts = headers::hsts(r).pass;
    let mut result: Option<Expectation> = None;
    let worse = |e: Expectation, result: &mut Option<Expectation>| {
        *result = Some(only_if_worse(e, *result, &GOODNESS));
    };
    if let Some(auto) = r.auto() {
        if auto.lines("set-cookie").any(invalid_same_site) {
            worse(CookiesSamesiteFlagInvalid, &mut result);
        }
    }
    let cookies: Vec<&Cookie> = r
        .cookies
        .iter()
        .filter(|c| !IGNORED.contains(&c.key.as_str()))
        .collect();
    let result = if cookies.is_empty() {
        CookiesNotFound
    } else {
        let mut missing_same_site = false;
        for c in cookies {
            let key = c.key.to_lowercase();
            let session = key.contains("login") || key.contains("sess");
            let anticsrf = key.contains("csrf");
            if !c.secure && c.same_site == Some("none") {
                worse(CookiesSamesiteFlagInvalid, &mut result);
            }
            if !c.secure {
                let e = if hsts {
                    CookiesWithoutSecureFlagButProtectedByHsts
                } else {
                    CookiesWithoutSecureFlag
                };
                worse(e, &mut result);
            }
            if anticsrf && c.same_site.is_none() {
                worse(CookiesAnticsrfWithoutSamesiteFlag, &mut result);
            }
            if session && !c.secure {
                let e = if hsts {
                    CookiesSessionWithoutSecureFlagButProtectedByHsts
                } else {
                    CookiesSessionWithoutSecureFlag
                };
                worse(e, &mut result);
            }
            if session && !c.http_only {
                worse(CookiesSessionWithoutHttponlyFlag, &mut result);
            }
            missing_same_site |= c.same_site.is_none();
        }
        result.unwrap_or(if missing_same_site {
            CookiesSecureWithHttponlySessions
        } else {
            CookiesSecureWithHttponlySessionsAndSamesite
        })
    };
    let pass = matches!(
        result,
        CookiesNotFound
            | CookiesSecureWithHttponlySessionsAndSamesite
            | CookiesSecureWithHttponlySessions
    );
    TestResult::new("cookies", result, pass)
}

/// A name the public suffix list makes a suffix, in its ICANN or private part
/// (an unknown top-level name counts, by the list's `*` rule).
fn is_public_suffix(domain: &str) -> bool {
    psl::suffix(domain.as_bytes()).is_some_and(|s| s.as_bytes() == domain.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::site;
    use super::*;

    fn url(u: &str) -> Url {
        Url::parse(u).unwrap()
    }

    fn with_cookies(lines: &[&str], hsts: bool) -> Retrieval {
        let mut headers: Vec<(&str, &str)> = lines.iter().map(|l| ("set-cookie", *l)).collect();
        if hsts {
            headers.push(("strict-transport-security", "max-age=31536000"));
        }
        let mut r = site(&headers);
        let mut jar = Jar::default();
        for l in lines {
            jar.store(l, &url("https://example.com/"));
        }
        r.cookies = jar.into_cookies();
        r
    }

    #[test]
    fn results_by_flags() {
        let result = |lines: &[&str], hsts: bool| test(&with_cookies(lines, hsts)).result;
        use Expectation::*;
        assert_eq!(result(&[], true), CookiesNotFound);
        assert_eq!(
            result(&["sessionid=1; Secure; HttpOnly; SameSite=Lax"], false),
            CookiesSecureWithHttponlySessionsAndSamesite
        );
        assert_eq!(
            result(&["a=1; Secure"], false),
            CookiesSecureWithHttponlySessions
        );
        assert_eq!(
            result(&["a=1"], true),
            CookiesWithoutSecureFlagButProtectedByHsts
        );
        assert_eq!(result(&["a=1"], false), CookiesWithoutSecureFlag);
        assert_eq!(
            result(&["login=1; HttpOnly"], false),
            CookiesSessionWithoutSecureFlag
        );
        assert_eq!(
            result(&["SESS=1; Secure"], true),
            CookiesSessionWithoutHttponlyFlag
        );
        assert_eq!(
            result(&["csrftoken=1; Secure"], true),
            CookiesAnticsrfWithoutSamesiteFlag
        );
        assert_eq!(
            result(&["a=1; Secure; SameSite=Bogus"], true),
            CookiesSamesiteFlagInvalid
        );
        assert_eq!(
            result(&["a=1; SameSite=None"], true),
            CookiesSamesiteFlagInvalid
        );
        assert_eq!(
            result(&["heroku-session-affinity=1"], true),
            CookiesNotFound
        );
    }

    #[test]
    fn the_jar_refuses_what_tough_cookie_refuses_and_sends_back_what_matches() {
        let mut jar = Jar::default();
        let from = url("https://app.example.com/a/b");
        jar.store("novalue", &from);
        jar.store("=x", &from);
        jar.store("x=1; Domain=other.com", &from);
        jar.store("__Host-a=1; Secure; Domain=example.com", &from);
        jar.store("__Secure-b=1", &from);
        jar.store("c=1; Domain=.example.com; Path=/", &from);
        jar.store("super=1; Domain=com; Path=/", &from);
        jar.store("d=2", &from);
        jar.store("d=3", &from);
        jar.store("e=4; Secure; Path=/", &from);
        assert_eq!(
            jar.header_for(&url("http://www.example.com/")).as_deref(),
            Some("c=1")
        );
        assert_eq!(
            jar.header_for(&url("https://app.example.com/a/x"))
                .as_deref(),
            Some("c=1; d=3; e=4")
        );
        let keys: Vec<String> = jar.into_cookies().into_iter().map(|c| c.key).collect();
        assert_eq!(keys, ["c", "d", "e"]);
    }

    #[test]
    fn no_cookie_for_a_private_suffix_or_an_address_s_parents() {
        let mut jar = Jar::default();
        let pages = url("https://me.github.io/");
        jar.store("leak=1; Domain=github.io; Path=/", &pages);
        jar.store("own=1; Domain=me.github.io; Path=/", &pages);
        assert_eq!(
            jar.header_for(&url("https://you.github.io/")).as_deref(),
            None
        );
        assert_eq!(jar.header_for(&pages).as_deref(), Some("own=1"));

        let mut jar = Jar::default();
        let ip = url("http://10.0.0.1/");
        jar.store("up=1; Domain=0.0.1; Path=/", &ip);
        jar.store("same=1; Domain=10.0.0.1; Path=/", &ip);
        assert_eq!(jar.header_for(&url("http://0.0.1/")).as_deref(), None);
        assert_eq!(jar.header_for(&ip).as_deref(), Some("same=1"));
    }
}
