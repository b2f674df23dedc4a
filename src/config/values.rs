//! Validated configuration values.
//!
//! Each type here checks its input while the YAML is deserialized, so a bad value is
//! reported with the file and the exact key path, and everything after parsing can
//! rely on it being well-formed.

use std::fmt;
use std::net::IpAddr;

use http::HeaderName;
use ipnet::IpNet;
use schemars::JsonSchema;
use serde::de::{DeserializeOwned, Deserializer, Error as _};
use serde::Deserialize;

/// A value that may also be `false`, which turns the header it controls off.
///
/// An absent key inherits from the weaker layer; `false` is an explicit "off".
#[derive(Debug, Clone, PartialEq)]
pub enum Toggle<T> {
    Off,
    On(T),
}

impl<T> Toggle<T> {
    pub fn as_ref(&self) -> Option<&T> {
        match self {
            Toggle::Off => None,
            Toggle::On(v) => Some(v),
        }
    }
}

/// The value of a key that is set and not `false`.
pub fn on<T>(v: &Option<Toggle<T>>) -> Option<&T> {
    v.as_ref().and_then(Toggle::as_ref)
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Toggle<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_yaml::Value::deserialize(d)?;
        if value == serde_yaml::Value::Bool(false) {
            return Ok(Toggle::Off);
        }
        T::deserialize(value)
            .map(Toggle::On)
            .map_err(|e| D::Error::custom(strip_location(&e.to_string())))
    }
}

/// A Kubernetes structural schema cannot say "`false` or a value", so the
/// SecurityPolicy resource's schema holds the value alone and turns keys off with
/// `security.disable` (cluster/security_policy.rs).
impl<T: JsonSchema> JsonSchema for Toggle<T> {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        T::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }
}

/// One value or a list of them, for keys where both read naturally.
#[derive(Debug, Clone, PartialEq)]
pub struct OneOrMany<T>(pub Vec<T>);

impl<'de, T: DeserializeOwned> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_yaml::Value::deserialize(d)?;
        let items = match value {
            serde_yaml::Value::Sequence(_) => Vec::<T>::deserialize(value),
            other => T::deserialize(other).map(|one| vec![one]),
        };
        items
            .map(OneOrMany)
            .map_err(|e| D::Error::custom(strip_location(&e.to_string())))
    }
}

/// A list only in the SecurityPolicy resource's schema: a structural schema has
/// no "one item or a list".
impl<T: JsonSchema> JsonSchema for OneOrMany<T> {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        Vec::<T>::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        Vec::<T>::json_schema(generator)
    }
}

/// serde_yaml appends " at line L column C" to errors from re-deserialized values,
/// where the position is relative to a fragment and therefore misleading.
fn strip_location(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// A response or request header name, kept with the case the user wrote it in
/// (HTTP/1 responses show that case). Equality ignores case, as header names do.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(try_from = "String")]
#[schemars(with = "String")]
pub struct HeaderNameText {
    pub name: HeaderName,
    pub text: String,
}

impl PartialEq for HeaderNameText {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for HeaderNameText {}

impl std::hash::Hash for HeaderNameText {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state)
    }
}

impl TryFrom<String> for HeaderNameText {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let name = HeaderName::from_bytes(text.as_bytes())
            .map_err(|_| format!("`{text}` is not a valid header name"))?;
        Ok(HeaderNameText { name, text })
    }
}

impl fmt::Display for HeaderNameText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A header value: visible ASCII, spaces and tabs only. CR, LF, NUL and other control
/// or non-ASCII bytes are rejected, so no configuration can split a response.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(try_from = "String")]
#[schemars(with = "String")]
pub struct HeaderValueText(pub String);

impl TryFrom<String> for HeaderValueText {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        check_header_value(&text)?;
        Ok(HeaderValueText(text.trim().to_string()))
    }
}

/// Rejects bytes that must never appear in a header value.
pub fn check_header_value(text: &str) -> Result<(), String> {
    for (i, b) in text.bytes().enumerate() {
        let ok = b == b'\t' || (0x20..0x7f).contains(&b);
        if !ok {
            let what = match b {
                b'\r' => "a carriage return (CR)".to_string(),
                b'\n' => "a line feed (LF)".to_string(),
                0 => "a NUL byte".to_string(),
                _ => format!("the byte 0x{b:02x}"),
            };
            return Err(format!(
                "header value contains {what} at byte {i}; only visible ASCII, spaces and tabs are allowed"
            ));
        }
    }
    Ok(())
}

/// A header removal rule: an exact name, or a prefix written as `X-Prefix-*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, JsonSchema)]
#[serde(try_from = "String")]
#[schemars(with = "String")]
pub enum RemovePattern {
    Exact(HeaderName),
    /// Lower-cased prefix, matched against lower-case header names.
    Prefix(String),
}

impl TryFrom<String> for RemovePattern {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        if let Some(prefix) = text.strip_suffix('*') {
            if prefix.is_empty() || prefix.contains('*') {
                return Err(format!(
                    "`{text}`: a remove pattern is a header name or a prefix ending in a single `*`, like `X-AspNet-*`"
                ));
            }
            HeaderName::from_bytes(prefix.as_bytes())
                .map_err(|_| format!("`{text}`: `{prefix}` is not a valid header name prefix"))?;
            return Ok(RemovePattern::Prefix(prefix.to_ascii_lowercase()));
        }
        HeaderNameText::try_from(text).map(|h| RemovePattern::Exact(h.name))
    }
}

impl fmt::Display for RemovePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RemovePattern::Exact(n) => f.write_str(n.as_str()),
            RemovePattern::Prefix(p) => write!(f, "{p}*"),
        }
    }
}

/// A host name pattern of a virtual host: `example.com`, `*.example.com` or `*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, JsonSchema)]
#[serde(try_from = "String")]
#[schemars(with = "String")]
pub enum HostPattern {
    /// `*`: the default virtual host.
    Any,
    Exact(String),
    /// `*.example.com`, stored as `example.com`: matches any name below it.
    Suffix(String),
}

/// The pattern as written in gw.yaml (`*`, `a.example`, `*.example`).
impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Any => f.write_str("*"),
            HostPattern::Exact(h) => f.write_str(h),
            HostPattern::Suffix(s) => write!(f, "*.{s}"),
        }
    }
}

impl TryFrom<String> for HostPattern {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        if text == "*" {
            return Ok(HostPattern::Any);
        }
        let lower = text.to_ascii_lowercase();
        let lower = lower.strip_suffix('.').unwrap_or(&lower);
        if let Some(suffix) = lower.strip_prefix("*.") {
            check_dns_name(suffix).map_err(|e| format!("`{text}`: {e}"))?;
            return Ok(HostPattern::Suffix(suffix.to_string()));
        }
        if lower.parse::<IpAddr>().is_ok() {
            return Ok(HostPattern::Exact(lower.to_string()));
        }
        if let Some(v6) = lower.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            if v6.parse::<std::net::Ipv6Addr>().is_ok() {
                return Ok(HostPattern::Exact(lower.to_string()));
            }
        }
        check_dns_name(lower).map_err(|e| format!("`{text}`: {e}"))?;
        Ok(HostPattern::Exact(lower.to_string()))
    }
}

fn check_dns_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 253 {
        return Err("a host name has 1 to 253 characters".into());
    }
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(format!(
                "`{label}` is not a valid DNS label (letters, digits and inner hyphens; wildcards only as a leading `*.`)"
            ));
        }
    }
    Ok(())
}

/// An integer of at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u64")]
pub struct Positive(pub u64);

impl TryFrom<u64> for Positive {
    type Error = String;
    fn try_from(n: u64) -> Result<Self, String> {
        if n == 0 {
            return Err("must be at least 1".into());
        }
        Ok(Positive(n))
    }
}

/// `shutdown_drain_seconds`: whole seconds, at most an hour (a drain is minutes at
/// the very most; a bigger number is a unit mistake).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u64")]
pub struct DrainSeconds(pub u64);

impl TryFrom<u64> for DrainSeconds {
    type Error = String;
    fn try_from(n: u64) -> Result<Self, String> {
        if n > 3600 {
            return Err(format!("{n} is more than 3600 (an hour)"));
        }
        Ok(DrainSeconds(n))
    }
}

/// A trusted proxy: a CIDR (`10.0.0.0/8`) or a single address (`10.0.0.1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct TrustedProxy(pub IpNet);

impl TryFrom<String> for TrustedProxy {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        if let Ok(net) = text.parse::<IpNet>() {
            return Ok(TrustedProxy(net.trunc()));
        }
        text.parse::<IpAddr>()
            .map(|ip| TrustedProxy(IpNet::from(ip)))
            .map_err(|_| format!("`{text}` is neither a CIDR like 10.0.0.0/8 nor an IP address"))
    }
}

/// `host[:port]` or `[ipv6][:port]` as (host, port), the host keeping its
/// brackets; `None` when anything but `:port` follows a bracketed host. Neither
/// part is checked further.
pub fn split_host_port(text: &str) -> Option<(&str, Option<&str>)> {
    // Byte searches: this runs on every request's Host, and `str` patterns cost
    // several times more.
    let bytes = text.as_bytes();
    if bytes.first() == Some(&b'[') {
        let close = bytes.iter().position(|&b| b == b']')?;
        let (host, rest) = text.split_at(close + 1);
        return match rest {
            "" => Some((host, None)),
            rest => rest.strip_prefix(':').map(|port| (host, Some(port))),
        };
    }
    Some(match bytes.iter().rposition(|&b| b == b':') {
        Some(colon) => (&text[..colon], Some(&text[colon + 1..])),
        None => (text, None),
    })
}

/// A web origin: `scheme://host[:port]` with no path, query or fragment.
pub fn check_origin(text: &str) -> Result<(), String> {
    let (scheme, rest) = text
        .split_once("://")
        .ok_or_else(|| format!("`{text}` is not an origin like https://example.com"))?;
    let scheme_ok = !scheme.is_empty()
        && scheme.as_bytes()[0].is_ascii_alphabetic()
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if !scheme_ok {
        return Err(format!("`{text}`: `{scheme}` is not a URL scheme"));
    }
    let (host, port) = split_host_port(rest)
        .ok_or_else(|| format!("`{text}`: an IPv6 host is [address] with an optional :port"))?;
    if let Some(port) = port {
        if port.parse::<u16>().is_err() {
            return Err(format!(
                "`{text}`: an origin has no path, and `{port}` is not a port"
            ));
        }
    }
    if host.contains(['/', '?', '#', '@', ' ']) {
        return Err(format!(
            "`{text}`: an origin is scheme://host[:port], without path, query or user"
        ));
    }
    let bare = host.strip_prefix("*.").unwrap_or(host);
    let is_ip = bare.parse::<IpAddr>().is_ok()
        || bare
            .strip_prefix('[')
            .and_then(|s| s.strip_suffix(']'))
            .is_some_and(|s| s.parse::<std::net::Ipv6Addr>().is_ok());
    if !is_ip {
        check_dns_name(&bare.to_ascii_lowercase()).map_err(|e| format!("`{text}`: {e}"))?;
    }
    Ok(())
}

/// An exact origin, as used by `frame_options_allow_from` and Permissions-Policy.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(try_from = "String")]
#[schemars(with = "String")]
pub struct Origin(pub String);

impl TryFrom<String> for Origin {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        if text.contains('*') {
            return Err(format!("`{text}`: wildcards are not allowed here"));
        }
        check_origin(&text)?;
        Ok(Origin(text))
    }
}

/// An HTTP token (RFC 9110 `tchar`s): methods and header names in CORS lists.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(try_from = "String")]
#[schemars(with = "String")]
pub struct Token(pub String);

impl TryFrom<String> for Token {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if text.is_empty() || !text.bytes().all(tchar) {
            return Err(format!("`{text}` is not an HTTP token"));
        }
        Ok(Token(text))
    }
}

/// A virtual host name, used in logs and as a metrics label: short and plain.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct VhostName(pub String);

impl TryFrom<String> for VhostName {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        check_label(&text, "a vhost name", "_unmatched")?;
        Ok(VhostName(text))
    }
}

/// A name that becomes a metrics label: 1 to 64 of `[A-Za-z0-9_.-]`, not starting
/// with `_`, which the gateway's own labels (such as `reserved`) start with.
fn check_label(text: &str, what: &str, reserved: &str) -> Result<(), String> {
    let ok = !text.is_empty()
        && text.len() <= 64
        && !text.starts_with('_')
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{text}`: {what} has 1 to 64 letters, digits, `-`, `_` or `.`, and does not \
             start with `_` (reserved for labels such as `{reserved}`)"
        ))
    }
}

/// A route's name, used in logs and as a metrics label.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct RouteName(pub String);

impl TryFrom<String> for RouteName {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        check_label(&text, "a route name", "_vhost")?;
        Ok(RouteName(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::cors::CorsOrigin;

    #[test]
    fn host_and_port_split_once_for_every_caller() {
        assert_eq!(split_host_port("a.test"), Some(("a.test", None)));
        assert_eq!(split_host_port("a.test:80"), Some(("a.test", Some("80"))));
        assert_eq!(split_host_port("a.test:"), Some(("a.test", Some(""))));
        assert_eq!(split_host_port("[::1]"), Some(("[::1]", None)));
        assert_eq!(split_host_port("[::1]:8443"), Some(("[::1]", Some("8443"))));
        assert_eq!(split_host_port("[::1]x"), None);
        assert_eq!(split_host_port("[::1"), None);
        assert!(CorsOrigin::try_from("https://[::1]".to_string()).is_ok());
        assert!(CorsOrigin::try_from("https://[::1]:8443".to_string()).is_ok());
        assert!(CorsOrigin::try_from("https://[::1]x".to_string()).is_err());
    }

    #[test]
    fn header_values_reject_control_bytes() {
        assert!(HeaderValueText::try_from("max-age=1".to_string()).is_ok());
        let err = HeaderValueText::try_from("a\r\nSet-Cookie: x".to_string()).unwrap_err();
        assert_eq!(
            err,
            "header value contains a carriage return (CR) at byte 1; only visible ASCII, spaces and tabs are allowed"
        );
        assert!(HeaderValueText::try_from("a\nb".to_string())
            .unwrap_err()
            .contains("line feed (LF) at byte 1"));
        assert!(HeaderValueText::try_from("a\0".to_string())
            .unwrap_err()
            .contains("NUL byte at byte 1"));
        assert!(HeaderValueText::try_from("caf\u{e9}".to_string())
            .unwrap_err()
            .contains("byte 0xc3 at byte 3"));
    }

    #[test]
    fn host_patterns_are_normalized() {
        let p = |s: &str| HostPattern::try_from(s.to_string());
        assert_eq!(p("*").unwrap(), HostPattern::Any);
        assert_eq!(
            p("Example.COM.").unwrap(),
            HostPattern::Exact("example.com".into())
        );
        assert_eq!(
            p("*.Example.com").unwrap(),
            HostPattern::Suffix("example.com".into())
        );
        assert_eq!(
            p("127.0.0.1").unwrap(),
            HostPattern::Exact("127.0.0.1".into())
        );
        assert!(p("a.*.com").is_err());
        assert!(p("exa mple.com").is_err());
        assert!(p("-bad.com").is_err());
    }

    #[test]
    fn remove_patterns() {
        let r = |s: &str| RemovePattern::try_from(s.to_string());
        assert_eq!(
            r("X-Powered-By").unwrap(),
            RemovePattern::Exact(HeaderName::from_static("x-powered-by"))
        );
        assert_eq!(
            r("X-AspNet-*").unwrap(),
            RemovePattern::Prefix("x-aspnet-".into())
        );
        assert!(r("*").is_err());
        assert!(r("X-*-Y*").is_err());
    }

    #[test]
    fn trusted_proxies_accept_cidrs_and_addresses() {
        let t = |s: &str| TrustedProxy::try_from(s.to_string()).map(|t| t.0.to_string());
        assert_eq!(t("10.1.2.3/8").unwrap(), "10.0.0.0/8");
        assert_eq!(t("10.1.2.3").unwrap(), "10.1.2.3/32");
        assert_eq!(t("::1").unwrap(), "::1/128");
        assert!(t("10.0.0.0/33").is_err());
    }
}
