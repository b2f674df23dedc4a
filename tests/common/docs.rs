//! The project's Markdown pages as the doc tests read them: pages, fenced blocks with
//! their markers, headings as GitHub anchors, and relative links.

use std::path::{Path, PathBuf};

/// A Markdown page of the project: README.md or a page under docs/.
pub struct Page {
    /// Relative to the repository root, with `/` separators (`docs/configuration/tls.md`).
    pub path: String,
    pub text: String,
}

/// A fenced block: its language word, its first line (the marker of YAML blocks) and
/// its body without the fences.
pub struct Fence {
    pub lang: String,
    pub line: usize,
    pub body: String,
}

impl Fence {
    pub fn first_line(&self) -> &str {
        self.body.lines().next().unwrap_or("").trim()
    }

    pub fn is_yaml(&self) -> bool {
        self.lang == "yaml" || self.lang == "yml"
    }
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every `.md` under docs/, in a stable order.
pub fn pages() -> Vec<Page> {
    let mut paths = vec!["README.md".to_string()];
    let mut docs = Vec::new();
    collect(&root().join("docs"), &mut docs);
    docs.sort();
    paths.extend(docs);
    paths
        .into_iter()
        .map(|path| Page {
            text: std::fs::read_to_string(root().join(&path)).unwrap(),
            path,
        })
        .collect()
}

fn collect(dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "md") {
            let rel = path.strip_prefix(root()).unwrap();
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
}

/// One page's text, by its path from the repository root (for the tests that compare
/// a documented answer with the real one).
pub fn page(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap()
}

/// The text of `page` (a path from the repository root) between the first `after`
/// and the next `until`: a documented answer, to compare with the real one.
pub fn shown(page: &str, after: &str, until: &str) -> String {
    let text = self::page(page);
    let rest = text
        .split_once(after)
        .unwrap_or_else(|| panic!("{page} has no {after:?}"))
        .1;
    rest.split(until).next().unwrap().to_string()
}

/// A response line with the request id's value replaced: ids are new on
/// every request, so a documented answer and a real one differ only there.
pub fn any_request_id(line: &str) -> &str {
    if line.starts_with("X-Request-Id: ") {
        "X-Request-Id: (an id)"
    } else {
        line
    }
}

impl Page {
    /// The fenced blocks, in order. A fence opens with three or more backticks or tildes
    /// at the start of a line (indentation allowed) and closes with a run of the same
    /// character at least as long, alone on its line.
    pub fn fences(&self) -> Vec<Fence> {
        let mut fences = Vec::new();
        let mut open: Option<(String, String, usize, Vec<&str>)> = None;
        for (n, line) in self.text.lines().enumerate() {
            match open.as_mut() {
                None => {
                    if let Some((run, info)) = opening(line) {
                        let lang = info.split_whitespace().next().unwrap_or("");
                        open = Some((run, lang.to_lowercase(), n + 1, Vec::new()));
                    }
                }
                Some((run, _, _, body)) => {
                    if closes(line, run) {
                        let (_, lang, line, body) = open.take().unwrap();
                        fences.push(Fence {
                            lang,
                            line,
                            body: body.join("\n") + "\n",
                        });
                    } else {
                        body.push(line);
                    }
                }
            }
        }
        assert!(open.is_none(), "{}: a fence is never closed", self.path);
        fences
    }

    /// The lines outside fenced blocks, with their line numbers (from 1).
    pub fn prose(&self) -> Vec<(usize, &str)> {
        let mut inside: Option<String> = None;
        let mut out = Vec::new();
        for (n, line) in self.text.lines().enumerate() {
            match &inside {
                None => match opening(line) {
                    Some((run, _)) => inside = Some(run),
                    None => out.push((n + 1, line)),
                },
                Some(run) => {
                    if closes(line, run) {
                        inside = None;
                    }
                }
            }
        }
        out
    }

    /// The anchors GitHub gives the page's headings: lower case, punctuation dropped
    /// (letters, digits, `-` and `_` kept), spaces as `-`, a repeated one numbered
    /// `-1`, `-2` ...
    pub fn anchors(&self) -> Vec<String> {
        let mut counts: std::collections::HashMap<String, usize> = Default::default();
        let mut out = Vec::new();
        for (_, line) in self.prose() {
            let level = line.len() - line.trim_start_matches('#').len();
            if !(1..=6).contains(&level) || !line[level..].starts_with(' ') {
                continue;
            }
            let base: String = line[level..]
                .trim()
                .to_lowercase()
                .chars()
                .filter_map(|c| match c {
                    ' ' => Some('-'),
                    c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                    _ => None,
                })
                .collect();
            let seen = counts.entry(base.clone()).or_default();
            out.push(match *seen {
                0 => base,
                n => format!("{base}-{n}"),
            });
            *seen += 1;
        }
        out
    }

    /// Every inline link target `](target)` in the prose, with its line number.
    pub fn links(&self) -> Vec<(usize, String)> {
        let mut out = Vec::new();
        for (n, line) in self.prose() {
            let mut rest = line;
            while let Some(at) = rest.find("](") {
                let after = &rest[at + 2..];
                let Some(end) = after.find(')') else { break };
                out.push((n, after[..end].to_string()));
                rest = &after[end..];
            }
        }
        out
    }
}

/// A fence's opening line: its run of three or more backticks or tildes, and the info
/// string after it.
fn opening(line: &str) -> Option<(String, &str)> {
    let trimmed = line.trim_start();
    let mark = trimmed.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let len = trimmed.len() - trimmed.trim_start_matches(mark).len();
    (len >= 3).then(|| (trimmed[..len].to_string(), trimmed[len..].trim()))
}

/// Whether `line` closes a fence opened with `run`.
fn closes(line: &str, run: &str) -> bool {
    let trimmed = line.trim();
    let mark = run.chars().next().unwrap();
    trimmed.len() >= run.len() && trimmed.chars().all(|c| c == mark)
}
