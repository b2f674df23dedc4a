//! Finding and reading configuration files: gw.yaml, policy files, certificates.
//!
//! Every read goes through [`read_regular`], so a FIFO, a device or a huge file in
//! the configuration is refused with a reason instead of blocking or exhausting the
//! process that reads it.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use globset::Glob;

/// The largest configuration file read (gw.yaml, a policy file, a PEM file).
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Reads a regular file (after following symlinks) of at most [`MAX_FILE_BYTES`].
///
/// The type is checked before opening, and the file is opened non-blocking and
/// checked again, so a FIFO swapped in between never blocks the reader.
pub fn read_regular(path: &Path) -> Result<Vec<u8>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read the file: {e}"))?;
    check_type(&meta)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| format!("cannot read the file: {e}"))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read the file: {e}"))?;
    check_type(&meta)?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read the file: {e}"))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large());
    }
    Ok(bytes)
}

/// Like [`read_regular`], for text files.
pub fn read_text(path: &Path) -> Result<String, String> {
    String::from_utf8(read_regular(path)?).map_err(|e| {
        format!(
            "the file is not UTF-8 text (byte {})",
            e.utf8_error().valid_up_to()
        )
    })
}

fn check_type(meta: &std::fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    let kind = if t.is_file() {
        if meta.len() > MAX_FILE_BYTES {
            return Err(too_large());
        }
        return Ok(());
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else {
        "not a regular file"
    };
    Err(format!(
        "is {kind}; only regular files (or symlinks to them) are read"
    ))
}

fn too_large() -> String {
    format!("the file is larger than {MAX_FILE_BYTES} bytes")
}

/// The policy files one `policy_files` entry names, sorted: a file, every `*.yaml`
/// and `*.yml` in a directory, or the files matching a glob in its last component
/// (`policies/*.yaml`).
///
/// Names starting with `.` are never read, so the `..data` and `..2026_…` entries
/// of a Kubernetes ConfigMap volume are not taken for extra policies.
pub fn policy_paths(base_dir: &Path, spec: &str) -> Result<Vec<PathBuf>, String> {
    let full = base_dir.join(spec);
    let has_glob = |s: &str| s.contains(['*', '?', '[', '{']);
    if has_glob(spec) {
        let pattern = full
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| format!("`{spec}` has no file-name pattern"))?;
        let dir = full.parent().unwrap_or(base_dir);
        if has_glob(&dir.to_string_lossy()) {
            return Err(format!(
                "`{spec}`: a glob may only stand in the last path component, like `policies/*.yaml`"
            ));
        }
        let matcher = Glob::new(pattern)
            .map_err(|e| format!("`{spec}` is not a valid glob: {e}"))?
            .compile_matcher();
        return list_dir(dir, spec, |name| matcher.is_match(name));
    }
    if full.is_dir() {
        return list_dir(&full, spec, |name| {
            name.ends_with(".yaml") || name.ends_with(".yml")
        });
    }
    if full.exists() {
        // Not a directory: read as a file, which names a FIFO or device as such.
        return Ok(vec![full]);
    }
    Err(format!(
        "`{spec}` ({}) is neither a file nor a directory",
        full.display()
    ))
}

fn list_dir(dir: &Path, spec: &str, wanted: impl Fn(&str) -> bool) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("`{spec}`: cannot read directory {}: {e}", dir.display()))?;
    let mut paths = Vec::new();
    for entry in entries {
        let entry =
            entry.map_err(|e| format!("`{spec}`: cannot read directory {}: {e}", dir.display()))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let path = entry.path();
        // Anything but a directory is taken, so a FIFO is refused by name
        // rather than silently skipped.
        if name.starts_with('.') || !wanted(name) || path.is_dir() {
            continue;
        }
        paths.push(path);
    }
    paths.sort();
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_globs_and_configmap_layout() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("..2026_11_22")).unwrap();
        std::fs::write(d.join("..2026_11_22/a.yaml"), "").unwrap();
        std::os::unix::fs::symlink("..2026_11_22", d.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/a.yaml", d.join("a.yaml")).unwrap();
        std::fs::write(d.join("b.yml"), "").unwrap();
        std::fs::write(d.join("notes.txt"), "").unwrap();
        std::fs::write(d.join(".hidden.yaml"), "").unwrap();

        let names = |v: Vec<PathBuf>| -> Vec<String> {
            v.iter()
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(names(policy_paths(d, ".").unwrap()), ["a.yaml", "b.yml"]);
        assert_eq!(names(policy_paths(d, "*.yaml").unwrap()), ["a.yaml"]);
        assert_eq!(names(policy_paths(d, "b.yml").unwrap()), ["b.yml"]);
        assert!(policy_paths(d, "missing").unwrap_err().contains("neither"));
        assert!(policy_paths(d, "*/x.yaml")
            .unwrap_err()
            .contains("last path component"));
    }
}
