//! Finding and reading policy files.

use std::path::{Path, PathBuf};

use globset::Glob;

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
    if full.is_file() {
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
        if name.starts_with('.') || !wanted(name) || !path.is_file() {
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
