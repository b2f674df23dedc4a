//! Loading gw.yaml and the policy files it names.
//!
//! gw.yaml holds Pingora's own server settings and the gateway's settings side by
//! side at the top level. The keys Pingora knows are split off for `ServerConf`; the
//! rest must be the gateway's, and an unknown key is an error.

pub mod access_log;
pub mod cors;
pub mod cross_origin;
pub mod csp;
pub mod defaults;
mod error;
pub mod files;
pub mod framing;
pub mod hsts;
pub mod kubernetes;
mod layer;
pub mod merge;
mod nesting;
pub mod permissions;
pub mod plain;
pub mod policies;
pub mod redirect;
pub mod referrer;
pub mod resolve;
pub mod route_rules;
pub mod schema;
pub mod values;

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use pingora_core::server::configuration::ServerConf;
use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};

pub use error::{ConfigError, KeyError};
use schema::{GatewayConfig, PolicyDef, PolicyFile};

/// A named policy and where it was defined.
#[derive(Debug, Clone)]
pub struct NamedPolicy {
    pub def: PolicyDef,
    pub file: PathBuf,
}

/// Everything read from disk, parsed and checked key by key.
#[derive(Debug)]
pub struct LoadedConfig {
    pub path: PathBuf,
    /// Hash of gw.yaml and every policy file read, to tell configurations apart.
    pub hash: u64,
    pub server: ServerConf,
    /// Pingora's settings as read, to tell whether a reload changed them.
    pub server_settings: String,
    pub gateway: GatewayConfig,
    pub policies: IndexMap<String, NamedPolicy>,
}

/// Reads gw.yaml and every policy file it names.
pub fn load(path: &Path) -> Result<LoadedConfig, ConfigError> {
    let text = read_yaml_text(path)?;
    let root: Value = serde_yaml::from_str(&text)
        .map_err(|e| ConfigError::new(path, "", format!("invalid YAML: {e}")))?;
    let Value::Mapping(root) = root else {
        return Err(ConfigError::new(
            path,
            "",
            "the top level must be a mapping of keys",
        ));
    };

    let (pingora_part, gateway_part) = split_pingora_keys(root);
    let server: ServerConf = deserialize_value(path, Value::Mapping(pingora_part))?;
    check_server_settings(&server).map_err(|e| e.in_file(path))?;
    let server = server
        .validate()
        .map_err(|e| ConfigError::new(path, "", format!("Pingora server settings: {e}")))?;
    let server_settings = server.to_yaml();
    let gateway: GatewayConfig = deserialize_value(path, Value::Mapping(gateway_part))?;

    let base_dir = path.parent().unwrap_or(Path::new("."));
    let mut hasher = DefaultHasher::new();
    text.hash(&mut hasher);
    let policies = load_policies(path, base_dir, &gateway, &mut hasher)?;
    if let Some(name) = &gateway.kubernetes.default_policy {
        if !policies.contains_key(name) {
            return Err(ConfigError::new(
                path,
                "kubernetes.default_policy",
                format!("no policy named `{name}` in policy_files"),
            ));
        }
    }
    Ok(LoadedConfig {
        path: path.to_path_buf(),
        hash: hasher.finish(),
        server,
        server_settings,
        gateway,
        policies,
    })
}

/// The files a configuration is read from, for reloads: gw.yaml, what its policy
/// specs match (re-listed each time, so new files count), and TLS/CA files.
#[derive(Debug, Clone, PartialEq)]
pub struct Sources {
    path: PathBuf,
    base_dir: PathBuf,
    policy_specs: Vec<String>,
    tls_files: Vec<PathBuf>,
}

impl LoadedConfig {
    pub fn sources(&self) -> Sources {
        let base_dir = self.path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let g = &self.gateway;
        let tls_files = g
            .listeners
            .iter()
            .filter_map(|l| l.tls.as_ref())
            .chain(g.vhosts.iter().filter_map(|v| v.tls.as_ref()))
            .flat_map(|t| [&t.cert, &t.key])
            .chain(g.vhosts.iter().flat_map(|v| {
                let routes = v.routes.iter().map(|r| r.upstream_tls.as_ref());
                std::iter::once(v.upstream_tls.as_ref())
                    .chain(routes)
                    .filter_map(|t| t?.ca_file.as_ref())
            }))
            .map(|f| base_dir.join(f))
            .collect();
        Sources {
            path: self.path.clone(),
            policy_specs: g.policy_files.iter().flat_map(|s| s.0.clone()).collect(),
            tls_files,
            base_dir,
        }
    }
}

impl Sources {
    /// The directories holding those files. Watching directories rather than
    /// files follows Kubernetes' `..data` symlink swaps and new policy files.
    pub fn watch_dirs(&self) -> Vec<PathBuf> {
        let mut dirs = vec![self.base_dir.clone()];
        let spec_dirs = self.policy_specs.iter().map(|spec| {
            let full = self.base_dir.join(spec);
            if full.is_dir() {
                full
            } else {
                full.parent().unwrap_or(&self.base_dir).to_path_buf()
            }
        });
        let file_dirs = self
            .tls_files
            .iter()
            .filter_map(|f| f.parent().map(Path::to_path_buf));
        for dir in spec_dirs.chain(file_dirs) {
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
        dirs
    }

    /// A hash of the contents of every source file, to tell whether anything the
    /// configuration reads has changed, whatever the file system reported.
    pub fn fingerprint(&self) -> u64 {
        let mut hasher = DefaultHasher::new();
        let files = self.files(|e| e.hash(&mut hasher));
        for f in &files {
            f.hash(&mut hasher);
            files::read_regular(f).hash(&mut hasher);
        }
        hasher.finish()
    }
}

impl Sources {
    /// gw.yaml, the policy files and the TLS files; a policy path that cannot
    /// be listed goes to `failed`.
    pub fn files(&self, mut failed: impl FnMut(&str)) -> Vec<PathBuf> {
        let mut files = vec![self.path.clone()];
        for spec in &self.policy_specs {
            match files::policy_paths(&self.base_dir, spec) {
                Ok(paths) => files.extend(paths),
                Err(e) => failed(&e),
            }
        }
        files.extend(self.tls_files.iter().cloned());
        files
    }
}

/// A configuration file's text, refused when it is not a regular file, too large,
/// or nested too deeply to parse quickly.
fn read_yaml_text(path: &Path) -> Result<String, ConfigError> {
    let text = files::read_text(path).map_err(|reason| ConfigError::new(path, "", reason))?;
    nesting::check_depth(&text).map_err(|reason| ConfigError::new(path, "", reason))?;
    Ok(text)
}

/// Pingora's settings that it accepts but cannot run with (it panics on start).
fn check_server_settings(conf: &ServerConf) -> Result<(), KeyError> {
    let positive = [
        ("threads", Some(conf.threads)),
        ("listener_tasks_per_fd", Some(conf.listener_tasks_per_fd)),
        (
            "upstream_connect_offload_threadpools",
            conf.upstream_connect_offload_threadpools,
        ),
        (
            "upstream_connect_offload_thread_per_pool",
            conf.upstream_connect_offload_thread_per_pool,
        ),
        (
            "downstream_tls_offload_threadpools",
            conf.downstream_tls_offload_threadpools,
        ),
        (
            "downstream_tls_offload_thread_per_pool",
            conf.downstream_tls_offload_thread_per_pool,
        ),
    ];
    for (key, value) in positive {
        if value == Some(0) {
            return Err(KeyError::new(key, "must be at least 1"));
        }
    }
    // More worker threads than this is a typo, not a machine.
    if conf.threads > 1024 {
        return Err(KeyError::new(
            "threads",
            format!("{} is more than 1024", conf.threads),
        ));
    }
    if let Some(ca) = &conf.ca_file {
        // Pingora loads it for upstream TLS at start and panics when it cannot.
        let path = Path::new(ca);
        let pem = files::read_regular(path)
            .map_err(|e| KeyError::new("ca_file", format!("{ca}: {e}")))?;
        let certs = rustls_pemfile::certs(&mut pem.as_slice())
            .filter(Result::is_ok)
            .count();
        if certs == 0 {
            return Err(KeyError::new(
                "ca_file",
                format!("{ca}: no PEM certificate in the file"),
            ));
        }
    }
    if conf.daemon {
        // A daemon opens these itself and panics when it cannot.
        let files = [
            ("error_log", conf.error_log.as_deref()),
            ("pid_file", Some(conf.pid_file.as_str())),
        ];
        for (key, file) in files {
            let Some(file) = file else { continue };
            let dir = Path::new(file)
                .parent()
                .filter(|d| !d.as_os_str().is_empty());
            if dir.is_some_and(|d| !d.is_dir()) || Path::new(file).is_dir() {
                return Err(KeyError::new(
                    key,
                    format!("{file}: its directory does not exist, or it is a directory"),
                ));
            }
        }
    }
    Ok(())
}

/// Splits the top-level mapping into Pingora's `ServerConf` keys and the rest.
fn split_pingora_keys(root: Mapping) -> (Mapping, Mapping) {
    let known = match serde_yaml::to_value(ServerConf::default()) {
        Ok(Value::Mapping(m)) => m,
        _ => Mapping::new(),
    };
    root.into_iter().partition(|(k, _)| known.contains_key(k))
}

fn deserialize_value<T: DeserializeOwned>(file: &Path, value: Value) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(value).map_err(|e| path_error(file, e))
}

fn path_error(file: &Path, e: serde_path_to_error::Error<serde_yaml::Error>) -> ConfigError {
    key_error(e).in_file(file)
}

/// One policy's keys (`extends`, `security`, `headers`, `request_headers`) from
/// outside a policy file: a SecurityPolicy's spec. The same types and checks as
/// `policy_files`, the error at the key path under the policy.
pub fn parse_policy(value: Value) -> Result<PolicyDef, KeyError> {
    serde_path_to_error::deserialize(value).map_err(key_error)
}

fn key_error(e: serde_path_to_error::Error<serde_yaml::Error>) -> KeyError {
    let key = e.path().to_string();
    let key = if key == "." { String::new() } else { key };
    // serde_yaml starts its own message with its view of the path (the same one,
    // or a shorter one inside maps); the full path is already in `key`.
    let reason = e.into_inner().to_string();
    let reason = match reason.split_once(": ") {
        Some((head, rest)) if !head.is_empty() && key.starts_with(head) => rest.to_string(),
        _ => reason,
    };
    KeyError::new(key, reason)
}

fn load_policies(
    config_path: &Path,
    base_dir: &Path,
    gateway: &GatewayConfig,
    hasher: &mut DefaultHasher,
) -> Result<IndexMap<String, NamedPolicy>, ConfigError> {
    let mut policies: IndexMap<String, NamedPolicy> = IndexMap::new();
    let Some(specs) = &gateway.policy_files else {
        return Ok(policies);
    };
    let mut seen_files: HashMap<PathBuf, ()> = HashMap::new();
    for spec in &specs.0 {
        let paths = files::policy_paths(base_dir, spec)
            .map_err(|reason| ConfigError::new(config_path, "policy_files", reason))?;
        for file in paths {
            if seen_files.insert(file.clone(), ()).is_some() {
                continue;
            }
            let text = read_yaml_text(&file)?;
            file.hash(hasher);
            text.hash(hasher);
            for (name, def) in parse_policy_file(&file, &text)?.policies {
                if let Some(existing) = policies.get(&name) {
                    return Err(ConfigError::new(
                        &file,
                        format!("policies.{name}"),
                        format!(
                            "policy `{name}` is already defined in {}",
                            existing.file.display()
                        ),
                    ));
                }
                let named = NamedPolicy {
                    def,
                    file: file.clone(),
                };
                policies.insert(name, named);
            }
        }
    }
    Ok(policies)
}

fn parse_policy_file(file: &Path, text: &str) -> Result<PolicyFile, ConfigError> {
    if text.trim().is_empty() {
        return Err(ConfigError::new(
            file,
            "",
            "the file is empty; a policy file holds `policies: {NAME: {...}}`",
        ));
    }
    let de = serde_yaml::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| path_error(file, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    const MINIMAL: &str = "listeners: [{address: \"127.0.0.1:8080\"}]\nvhosts: []\n";

    #[test]
    fn a_reload_watches_the_ca_files_of_vhosts_and_routes() {
        let dir = tempfile::tempdir().unwrap();
        let gw = write(
            dir.path(),
            "gw.yaml",
            "listeners: [{address: \"127.0.0.1:8080\"}]\nvhosts:\n  - name: a\n    hosts: [a.test]\n    upstreams: [\"tls://a.test:443\"]\n    upstream_tls: {ca_file: vhost-ca.pem}\n    routes:\n      - prefix: /api\n        upstreams: [\"tls://b.test:443\"]\n        upstream_tls: {ca_file: cas/route-ca.pem}\n",
        );
        let sources = load(&gw).unwrap().sources();
        assert_eq!(
            sources.tls_files,
            [
                dir.path().join("vhost-ca.pem"),
                dir.path().join("cas/route-ca.pem")
            ]
        );
        assert!(sources.watch_dirs().contains(&dir.path().join("cas")));
    }

    #[test]
    fn pingora_keys_go_to_server_conf() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "gw.yaml",
            &format!("version: 1\nthreads: 3\npid_file: /tmp/x.pid\n{MINIMAL}"),
        );
        let loaded = load(&p).unwrap();
        assert_eq!(loaded.server.threads, 3);
        assert_eq!(loaded.server.pid_file, "/tmp/x.pid");
        assert_eq!(loaded.gateway.listeners.len(), 1);
    }

    #[test]
    fn unknown_keys_name_file_and_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "gw.yaml", &format!("{MINIMAL}listnrs: []\n"));
        let err = load(&p).unwrap_err();
        assert_eq!(err.file, p);
        assert!(err.reason.starts_with("unknown field `listnrs`"), "{err}");

        let p = write(
            dir.path(),
            "gw2.yaml",
            "listeners: [{address: \"127.0.0.1:8080\"}]\nvhosts:\n  - name: a\n    hosts: [a.test]\n    security: {frame_options: ALLOWALL}\n",
        );
        let err = load(&p).unwrap_err();
        assert_eq!(err.key, "vhosts[0].security.frame_options");
        assert!(err.reason.contains("unknown variant `ALLOWALL`"), "{err}");
    }

    #[test]
    fn the_default_policy_of_the_cluster_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "gw.yaml",
            &format!("{MINIMAL}kubernetes: {{enabled: true, default_policy: edge}}\n"),
        );
        let err = load(&p).unwrap_err();
        assert_eq!(err.key, "kubernetes.default_policy");
        assert_eq!(err.reason, "no policy named `edge` in policy_files");
        write(dir.path(), "p.yaml", "policies:\n  edge: {}\n");
        let p = write(
            dir.path(),
            "gw.yaml",
            &format!("policy_files: p.yaml\n{MINIMAL}kubernetes: {{enabled: true, default_policy: edge}}\n"),
        );
        assert!(load(&p).unwrap().gateway.kubernetes.enabled);
    }

    #[test]
    fn pingora_settings_are_type_checked() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "gw.yaml", &format!("threads: many\n{MINIMAL}"));
        let err = load(&p).unwrap_err();
        assert_eq!(err.key, "threads");
    }

    #[test]
    fn policy_files_are_read_and_duplicates_rejected() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("policies")).unwrap();
        write(
            &dir.path().join("policies"),
            "a.yaml",
            "policies:\n  base: {security: {hsts_max_age: 60}}\n",
        );
        let p = write(
            dir.path(),
            "gw.yaml",
            &format!("policy_files: policies\n{MINIMAL}"),
        );
        let loaded = load(&p).unwrap();
        assert_eq!(loaded.policies["base"].def.security.hsts_max_age, Some(60));

        let b = write(
            &dir.path().join("policies"),
            "b.yaml",
            "policies:\n  base: {}\n",
        );
        let err = load(&p).unwrap_err();
        assert_eq!(err.file, b);
        assert_eq!(err.key, "policies.base");
        assert!(err.reason.contains("already defined in"), "{err}");
    }

    #[test]
    fn bad_policy_value_names_policy_file() {
        let dir = tempfile::tempdir().unwrap();
        let pol = write(
            dir.path(),
            "pol.yaml",
            "policies:\n  strict:\n    headers:\n      set: {X-Test: \"a\\r\\nb\"}\n",
        );
        let p = write(
            dir.path(),
            "gw.yaml",
            &format!("policy_files: pol.yaml\n{MINIMAL}"),
        );
        let err = load(&p).unwrap_err();
        assert_eq!(err.file, pol);
        assert_eq!(err.key, "policies.strict.headers.set.X-Test");
        assert!(
            err.reason
                .starts_with("header value contains a carriage return (CR) at byte 1"),
            "{err}"
        );
    }
}
