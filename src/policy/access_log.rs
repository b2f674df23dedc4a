//! A route's access-log settings, compiled: whether it logs, how, and the
//! [`Sink`] its lines go to. A file is checked here, at load, without being
//! created: its folder must exist and, if the file is there, it must be a
//! regular file (a FIFO would block the writer, a device is no log, a link
//! could be swapped) and none of the configuration's own files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::access_log::line::{combined, field_mask, json, Entry};
use crate::access_log::sink::{canonical, sink, Sink, Target};
use crate::config::access_log::{AccessLogConfig, LogFormat, LogPath};
use crate::config::KeyError;

#[derive(Debug)]
pub struct LogPlan {
    pub format: LogFormat,
    /// JSON: the fields to write ([`field_mask`]); 0: all of them.
    pub fields: u32,
    pub log_query: bool,
    pub sink: Arc<Sink>,
}

impl LogPlan {
    /// `None` when the effective settings leave logging off.
    pub fn compile(
        cfg: &AccessLogConfig,
        files: &ConfigFiles,
    ) -> Result<Option<Arc<LogPlan>>, KeyError> {
        if cfg.enabled != Some(true) {
            return Ok(None);
        }
        let target = match cfg.path.as_ref().unwrap_or(&LogPath::Stderr) {
            LogPath::Stderr => Target::Stderr,
            LogPath::Stdout => Target::Stdout,
            LogPath::File(path) => {
                let path = files.base_dir.join(path);
                let refuse = |why| KeyError::new("access_log.path", why);
                check_file(&path).map_err(refuse)?;
                let path = canonical(&path).ok_or_else(|| refuse("its folder is gone".into()))?;
                if files.config.contains(&path) {
                    let why = format!("{} is one of the configuration's own files", path.display());
                    return Err(refuse(why));
                }
                Target::File(path)
            }
        };
        Ok(Some(Arc::new(LogPlan {
            format: cfg.format.unwrap_or_default(),
            fields: field_mask(cfg.fields.iter().flatten().map(|f| f.name())),
            log_query: cfg.log_query.unwrap_or(false),
            sink: sink(target),
        })))
    }
}

impl LogPlan {
    /// Formats `entry` and hands the line to the sink's writer.
    pub fn write(&self, entry: &Entry) {
        self.sink.send(match self.format {
            LogFormat::Json => json(entry, self.fields),
            LogFormat::Combined => combined(entry),
        });
    }
}

/// What log paths are resolved against and may not be: gw.yaml's folder, and
/// the configuration's own files (gw.yaml, policy files, certificates), with
/// their folders resolved.
#[derive(Debug, Default)]
pub struct ConfigFiles {
    pub base_dir: PathBuf,
    pub config: Vec<PathBuf>,
}

impl ConfigFiles {
    pub fn new(base_dir: &Path, config: &[PathBuf]) -> ConfigFiles {
        ConfigFiles {
            base_dir: base_dir.to_path_buf(),
            config: config.iter().filter_map(|f| canonical(f)).collect(),
        }
    }
}

fn check_file(path: &Path) -> Result<(), String> {
    let shown = path.display();
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let dir = dir.unwrap_or(Path::new("."));
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Err(format!("{shown}: {} is not a folder", dir.display())),
        Err(e) => return Err(format!("{shown}: its folder {}: {e}", dir.display())),
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(meta) if meta.is_symlink() => Err(format!(
            "{shown} is a link; name the file itself (the gateway does not follow links to its logs)"
        )),
        Ok(_) => Err(format!(
            "{shown} is not a regular file (a FIFO, a folder or a device)"
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("{shown}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compiled(yaml: &str, dir: &Path) -> Result<Option<Arc<LogPlan>>, KeyError> {
        let files = ConfigFiles::new(dir, &[dir.join("gw.yaml")]);
        LogPlan::compile(&serde_yaml::from_str(yaml).unwrap(), &files)
    }

    #[test]
    fn files_are_checked_at_load_without_being_created() {
        let dir = tempfile::tempdir().unwrap();
        let on = |path: &str| compiled(&format!("{{enabled: true, path: {path}}}"), dir.path());
        assert!(on("gw.log").unwrap().is_some());
        assert!(!dir.path().join("gw.log").exists());
        let e = on("missing/gw.log").unwrap_err();
        assert_eq!(e.key, "access_log.path");
        assert!(e.reason.contains("its folder"), "{}", e.reason);
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid C string; mkfifo only creates the node.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = on("fifo").unwrap_err();
        assert!(e.reason.contains("not a regular file"), "{}", e.reason);
        assert!(on("/dev/null").is_err());
        // The configuration's own file, however spelled; a link.
        std::fs::write(dir.path().join("gw.yaml"), "").unwrap();
        let name = dir.path().file_name().unwrap().to_str().unwrap();
        let e = on(&format!("../{name}/./gw.yaml")).unwrap_err();
        assert!(
            e.reason.contains("configuration's own files"),
            "{}",
            e.reason
        );
        std::os::unix::fs::symlink("gw.log", dir.path().join("link.log")).unwrap();
        let e = on("link.log").unwrap_err();
        assert!(e.reason.contains("is a link"), "{}", e.reason);
        assert!(compiled("{path: missing/x.log}", dir.path())
            .unwrap()
            .is_none());
    }

    #[test]
    fn fields_keep_the_documented_order_once_each() {
        let dir = Path::new(".");
        let plan = compiled("{enabled: true, fields: [status, time, status]}", dir)
            .unwrap()
            .unwrap();
        assert_eq!(plan.fields, 0b1000001);
        assert_eq!(plan.format, LogFormat::Json);
        assert!(!plan.log_query);
    }
}
