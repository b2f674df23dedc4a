//! `access_log:` (top level, a vhost, a route; policies may not): whether and
//! how each request gets its line. A key a vhost or route leaves out comes from
//! the level above; the defaults are off, JSON, stderr, every field, no query.

use schemars::JsonSchema;
use serde::Deserialize;

/// The JSON fields, in their documented order; `fields` in gw.yaml picks
/// among these names.
pub const FIELDS: &[&str] = &[
    "time",
    "vhost",
    "route",
    "method",
    "path",
    "protocol",
    "status",
    "bytes_sent",
    "duration_ms",
    "upstream_addr",
    "upstream_duration_ms",
    "tls_version",
    "client",
    "user_agent",
    "referer",
    "request_id",
    "reason",
];

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessLogConfig {
    pub enabled: Option<bool>,
    pub format: Option<LogFormat>,
    pub path: Option<LogPath>,
    /// JSON only: exactly these fields, in the documented order; empty: all.
    pub fields: Option<Vec<LogField>>,
    /// Keep the query string in the logged path.
    pub log_query: Option<bool>,
}

impl AccessLogConfig {
    /// This level's keys over the level above's.
    pub fn over(&self, above: &AccessLogConfig) -> AccessLogConfig {
        AccessLogConfig {
            enabled: self.enabled.or(above.enabled),
            format: self.format.or(above.format),
            path: self.path.clone().or_else(|| above.path.clone()),
            fields: self.fields.clone().or_else(|| above.fields.clone()),
            log_query: self.log_query.or(above.log_query),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Json,
    /// nginx's and Apache's `combined`, byte for byte.
    Combined,
}

/// `stderr`, `stdout`, or a file (relative to gw.yaml); whether the file can
/// be opened (not a FIFO, its directory there) is checked at load.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(try_from = "String")]
#[schemars(with = "String")]
pub enum LogPath {
    Stderr,
    Stdout,
    File(String),
}

impl TryFrom<String> for LogPath {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        match text.as_str() {
            "stderr" => Ok(LogPath::Stderr),
            "stdout" => Ok(LogPath::Stdout),
            "" => Err("an empty path; `stderr`, `stdout` or a file".into()),
            t if t.contains('\0') => Err("a path with a NUL byte".into()),
            _ => Ok(LogPath::File(text)),
        }
    }
}

/// One of the documented JSON fields, by its place in the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(try_from = "String")]
#[schemars(with = "String")]
pub struct LogField(usize);

impl LogField {
    pub fn name(self) -> &'static str {
        FIELDS[self.0]
    }
}

impl TryFrom<String> for LogField {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        FIELDS
            .iter()
            .position(|f| *f == text)
            .map(LogField)
            .ok_or_else(|| format!("unknown field `{text}`; known: {}", FIELDS.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_and_layer_and_unknown_fields_are_named() {
        let top: AccessLogConfig =
            serde_yaml::from_str("{enabled: true, format: combined, path: /var/log/gw.log}")
                .unwrap();
        let route: AccessLogConfig = serde_yaml::from_str("{enabled: false}").unwrap();
        let merged = route.over(&top);
        assert_eq!(merged.enabled, Some(false));
        assert_eq!(merged.format, Some(LogFormat::Combined));
        assert_eq!(merged.path, Some(LogPath::File("/var/log/gw.log".into())));
        let e = serde_yaml::from_str::<AccessLogConfig>("{fields: [status, colour]}").unwrap_err();
        assert!(e.to_string().contains("unknown field `colour`"), "{e}");
        assert!(serde_yaml::from_str::<AccessLogConfig>("{format: xml}").is_err());
        assert!(serde_yaml::from_str::<AccessLogConfig>("{path: \"\"}").is_err());
        assert!(serde_yaml::from_str::<AccessLogConfig>("{buffer: 3}").is_err());
    }
}
