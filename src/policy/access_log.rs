//! A route's access-log settings, compiled: whether it logs, how, and the
//! [`Sink`] its lines go to. A file is checked here, at load, without being
//! created: its folder must exist and, if the file is there, it must be a
//! regular file (a FIFO would block the writer, a device is no log).

use std::path::Path;
use std::sync::Arc;

use crate::access_log::line::{combined, json, Entry};
use crate::access_log::sink::{sink, Sink, Target};
use crate::config::access_log::{AccessLogConfig, LogFormat, LogPath};
use crate::config::KeyError;

#[derive(Debug)]
pub struct LogPlan {
    pub format: LogFormat,
    /// JSON: the fields to write, in the documented order; empty: all of them.
    pub fields: Vec<&'static str>,
    pub log_query: bool,
    pub sink: Arc<Sink>,
}

impl LogPlan {
    /// `None` when the effective settings leave logging off.
    pub fn compile(
        cfg: &AccessLogConfig,
        base_dir: &Path,
    ) -> Result<Option<Arc<LogPlan>>, KeyError> {
        if cfg.enabled != Some(true) {
            return Ok(None);
        }
        let target = match cfg.path.as_ref().unwrap_or(&LogPath::Stderr) {
            LogPath::Stderr => Target::Stderr,
            LogPath::Stdout => Target::Stdout,
            LogPath::File(path) => {
                let path = std::path::absolute(base_dir.join(path))
                    .map_err(|e| KeyError::new("access_log.path", e.to_string()))?;
                check_file(&path).map_err(|e| KeyError::new("access_log.path", e))?;
                Target::File(path)
            }
        };
        let mut fields: Vec<&'static str> = cfg.fields.iter().flatten().map(|f| f.name()).collect();
        fields.sort_by_key(|name| {
            crate::config::access_log::FIELDS
                .iter()
                .position(|f| f == name)
        });
        fields.dedup();
        Ok(Some(Arc::new(LogPlan {
            format: cfg.format.unwrap_or_default(),
            fields,
            log_query: cfg.log_query.unwrap_or(false),
            sink: sink(target),
        })))
    }
}

impl LogPlan {
    /// Formats `entry` and hands the line to the sink's writer.
    pub fn write(&self, entry: &Entry) {
        let mut line = match self.format {
            LogFormat::Json => json(entry, &self.fields),
            LogFormat::Combined => combined(entry),
        }
        .into_bytes();
        line.push(b'\n');
        self.sink.send(line);
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
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(()),
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
        LogPlan::compile(&serde_yaml::from_str(yaml).unwrap(), dir)
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
        assert_eq!(plan.fields, ["time", "status"]);
        assert_eq!(plan.format, LogFormat::Json);
        assert!(!plan.log_query);
    }
}
