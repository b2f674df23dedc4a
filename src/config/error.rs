//! The one shape of configuration errors: which file, which key path, and why.
//!
//! Compiling works below the file level, so it reports a [`KeyError`] whose key is
//! relative to what it compiled; each caller puts it `under` its own key, and the
//! top level names the file.

use std::fmt;
use std::path::{Path, PathBuf};

/// A configuration problem: which file, which key, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// Dotted key path such as `vhosts[0].security.frame_options`; empty for the whole file.
    pub key: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(file: &Path, key: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_path_buf(),
            key: key.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.reason)
        } else {
            write!(f, "{}: {}: {}", self.file.display(), self.key, self.reason)
        }
    }
}

impl std::error::Error for ConfigError {}

/// A problem at a key path relative to the part being compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError {
    /// `security.ssl_host`, `[2]`, or empty for the part itself.
    pub key: String,
    pub reason: String,
}

impl KeyError {
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> KeyError {
        KeyError {
            key: key.into(),
            reason: reason.into(),
        }
    }

    /// An error about the part itself rather than one of its keys.
    pub fn here(reason: impl Into<String>) -> KeyError {
        KeyError::new("", reason)
    }

    /// The same error seen from the part that holds this one at `prefix`.
    pub fn under(mut self, prefix: &str) -> KeyError {
        self.key = match (prefix.is_empty(), self.key.is_empty()) {
            (true, _) => self.key,
            (false, true) => prefix.to_string(),
            (false, false) if self.key.starts_with('[') => format!("{prefix}{}", self.key),
            (false, false) => format!("{prefix}.{}", self.key),
        };
        self
    }

    pub fn in_file(self, file: &Path) -> ConfigError {
        ConfigError::new(file, self.key, self.reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_nest_with_dots_and_indices() {
        let e = KeyError::new("security.ssl_host", "bad")
            .under("routes[2]")
            .under("vhosts[0]");
        assert_eq!(e.key, "vhosts[0].routes[2].security.ssl_host");
        assert_eq!(KeyError::here("x").under("vhosts[1]").key, "vhosts[1]");
        assert_eq!(KeyError::new("[3]", "x").under("hosts").key, "hosts[3]");
        assert_eq!(KeyError::new("a", "x").under("").key, "a");
        assert_eq!(
            KeyError::new("a", "why")
                .in_file(Path::new("gw.yaml"))
                .to_string(),
            "gw.yaml: a: why"
        );
    }
}
