//! The docs cannot drift: every YAML example in README.md and docs/ carries a marker
//! and is loaded by the real binary (`-t`) as what the marker says it is, every
//! relative link and anchor resolves, and the README stays short and links every page.
//!
//! Markers, the first line of each ```` ```yaml ```` block:
//! - `# gw.yaml`: a complete gw.yaml, loaded as it is, and `check` finds no error in
//!   it. Policy files it reads come from the blocks marked `# policies/NAME.yaml`
//!   before it on the same page; the certificate, key and CA files it names are
//!   generated here.
//! - `# policies/NAME.yaml`: a complete policy file, loaded with a gw.yaml that reads it.
//! - `# fragment: gw.yaml | vhost | route | policy`: top-level keys, one vhost's keys,
//!   one route's keys, one named policy's keys; completed with the least around them
//!   (a listener, a vhost, a match) and loaded.
//! - `# deploy/...`: a file the project ships (the alert rules), shown whole: the rest
//!   of the block is that file, byte for byte (promtool checks the file in tests/alerts.rs).
//! - `# not gw.yaml: WHAT`: another program's YAML, which must parse.

mod common;

use std::path::Path;

use common::docs::{self, Fence};
use serde_yaml::{Mapping, Value};

/// What a marked block was loaded as.
#[derive(Debug, PartialEq)]
enum Kind {
    Complete,
    PolicyFile,
    Fragment,
    Shipped,
    Foreign,
}

#[test]
fn every_yaml_example_is_marked_and_loads() {
    let pki = common::tls::TestPki::new();
    let mut failures = Vec::new();
    let mut loaded = Vec::new();
    for page in docs::pages() {
        let mut policies: Vec<(String, String)> = Vec::new();
        for fence in page.fences() {
            let at = format!("{}:{}", page.path, fence.line);
            if !fence.is_yaml() {
                if looks_like_ours(&fence.body) {
                    failures.push(format!("{at}: gateway YAML in a `{}` block", fence.lang));
                }
                continue;
            }
            match load(&fence, &policies, &pki) {
                Ok(kind) => loaded.push((at, kind)),
                Err(why) => failures.push(format!("{at}: {why}")),
            }
            if let Some(path) = policy_path(&fence) {
                policies.push((path.to_string(), fence.body.clone()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    let count = |k: Kind| loaded.iter().filter(|(_, kind)| *kind == k).count();
    assert!(loaded
        .iter()
        .any(|(at, kind)| at.starts_with("README.md:") && *kind == Kind::Complete));
    assert!(count(Kind::Complete) >= 5, "{loaded:?}");
    assert!(count(Kind::PolicyFile) >= 1, "{loaded:?}");
    assert!(count(Kind::Fragment) >= 10, "{loaded:?}");
    assert!(count(Kind::Shipped) >= 1, "{loaded:?}");
}

/// The harness itself refuses what it must: an unmarked block, an unknown marker, and
/// an example of each kind with one bad key or value.
#[test]
fn a_broken_example_of_each_kind_fails() {
    let pki = common::tls::TestPki::new();
    let broken = [
        "listeners: [{address: \"127.0.0.1:8080\"}]\n",
        "# yaml\nsecurity: {}\n",
        "# gw.yaml\nlisteners: [{address: \"127.0.0.1:8080\"}]\nvhosts: [{name: a, hosts: [\"*\"], respond: {}, colour: red}]\n",
        "# gw.yaml\nlisteners: [{address: \"127.0.0.1:8443\", tls: {cert: c.pem, key: k.pem}}]\nvhosts: [{name: a, hosts: [\"*\"], respond: {}, tls: {cert: /nonexistent/c.pem, key: k.pem}}]\n",
        "# gw.yaml\nlisteners: [{address: \"127.0.0.1:8080\"}]\nvhosts: [{name: a, hosts: [a.test], respond: {}, security: {hsts_preload: true}}]\n",
        "# policies/a.yaml\npolicies: {a: {security: {hsts_max_age: soon}}}\n",
        "# fragment: vhost\nsecurity: {frame_options: ALLOWALL}\n",
        "# fragment: route\nexact: no-slash\n",
        "# fragment: policy\nextends: missing\n",
        "# fragment: gw.yaml\nlimits: {max_connections: many}\n",
        "# fragment: header\nset: {}\n",
        "# not gw.yaml: broken\nkey: [unclosed\n",
        "# not gw.yaml: disguised\nvhosts: [{name: a, hosts: [\"*\"], colour: red}]\n",
        "# deploy/prometheus/rules.yaml\ngroups: []\n",
        "# deploy/prometheus/missing.yaml\ngroups: []\n",
        "# prometheus rules\ngroups: []\n",
    ];
    for body in broken {
        let fence = Fence {
            lang: "yaml".into(),
            line: 1,
            body: body.into(),
        };
        assert!(load(&fence, &[], &pki).is_err(), "accepted:\n{body}");
    }
    let good = Fence {
        lang: "yaml".into(),
        line: 1,
        body: "# fragment: vhost\nsecurity: {frame_options: SAMEORIGIN}\n".into(),
    };
    assert_eq!(load(&good, &[], &pki), Ok(Kind::Fragment));
    assert!(looks_like_ours("security: {hsts_preload: true}\n"));
    assert!(!looks_like_ours("groups: []\n"));
    assert!(!looks_like_ours("HTTP/1.1 200 OK\nX-Frame-Options: DENY\n"));
}

/// The page reader finds every kind of fence a renderer shows as code, so no YAML
/// block can hide from the test: tildes, indentation, a longer closing run, upper case.
#[test]
fn the_page_reader_finds_every_fence() {
    let page = docs::Page {
        path: "x.md".into(),
        text: "# T\n\n~~~YAML\n# a\n```\n~~~\n\n- item\n  ```yml\n  # b\n  `````\n\n````text\n```yaml\n````\n[l](y.md#z)\n".into(),
    };
    let fences = page.fences();
    let seen: Vec<(&str, usize, &str)> = fences
        .iter()
        .map(|f| (f.lang.as_str(), f.line, f.body.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            ("yaml", 3, "# a\n```\n"),
            ("yml", 9, "  # b\n"),
            ("text", 13, "```yaml\n"),
        ]
    );
    assert_eq!(page.links(), [(16, "y.md#z".to_string())]);
    assert_eq!(page.anchors(), ["t"]);
}

#[test]
fn every_relative_link_and_anchor_resolves() {
    let pages = docs::pages();
    let mut broken = Vec::new();
    for page in &pages {
        for (line, target) in page.links() {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (file, anchor) = target.split_once('#').unwrap_or((&target, ""));
            let dir = Path::new(&page.path).parent().unwrap();
            let resolved = if file.is_empty() {
                page.path.clone()
            } else {
                normalize(&dir.join(file))
            };
            let at = format!("{}:{line}: {target}", page.path);
            if !docs::root().join(&resolved).exists() {
                broken.push(format!("{at}: no file {resolved}"));
                continue;
            }
            if anchor.is_empty() {
                continue;
            }
            match pages.iter().find(|p| p.path == resolved) {
                Some(target_page) if !target_page.anchors().iter().any(|a| a == anchor) => {
                    broken.push(format!("{at}: no heading #{anchor} in {resolved}"))
                }
                Some(_) => {}
                None => broken.push(format!("{at}: an anchor into a file that is no page")),
            }
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

#[test]
fn the_readme_is_short_and_maps_every_page() {
    let pages = docs::pages();
    let readme = &pages[0];
    assert_eq!(readme.path, "README.md");
    let lines = readme.text.lines().count();
    assert!(lines <= 200, "README.md has {lines} lines");
    let linked: Vec<String> = readme
        .links()
        .into_iter()
        .map(|(_, t)| t.split('#').next().unwrap().to_string())
        .collect();
    let unlinked: Vec<&str> = pages[1..]
        .iter()
        .map(|p| p.path.as_str())
        .filter(|p| !linked.iter().any(|l| l == p))
        .collect();
    assert!(unlinked.is_empty(), "README.md does not link {unlinked:?}");
    assert!(readme.text.contains("pingora-secgw -c conf/gw.yaml"));
    for command in ["./scripts/run.sh", "./scripts/test.sh"] {
        assert!(readme.text.contains(command), "{command}");
    }
}

/// The `check` codes table lists exactly the codes the binary knows, each with its
/// severity; the metrics table lists exactly the metrics `src/metrics.rs` registers.
#[test]
fn every_check_code_and_metric_is_documented() {
    let codes_page = docs::page("docs/check-and-audit.md");
    let rows: Vec<&str> = codes_page
        .lines()
        .filter(|l| l.starts_with("| `SECGW-"))
        .collect();
    for (name, severity, _) in pingora_secgw::codes::CODES {
        let severity: &str = (*severity).into();
        let row = format!("| `{name}` | {severity} |");
        assert!(rows.iter().any(|r| r.starts_with(&row)), "no row {row}");
    }
    assert_eq!(rows.len(), pingora_secgw::codes::CODES.len(), "{rows:#?}");

    let names = |text: &str, quote: char| -> std::collections::BTreeSet<String> {
        text.split(quote)
            .filter(|w| {
                w.starts_with("secgw_") && w.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
            })
            .map(str::to_string)
            .collect()
    };
    let source = std::fs::read_to_string(docs::root().join("src/metrics.rs")).unwrap();
    let monitoring = docs::page("docs/operations/monitoring.md");
    let table: String = monitoring
        .lines()
        .filter(|l| l.starts_with("| `secgw_"))
        .map(|l| l.split(" | ").next().unwrap())
        .collect();
    let registered = names(&source, '"');
    assert!(registered.len() >= 20, "{registered:?}");
    assert_eq!(names(&table, '`'), registered);
}

/// The `check` run shown on the check page is what the binary prints for the shipped
/// demo, exit code included.
#[test]
fn the_documented_check_run_is_the_real_one() {
    let page = "docs/check-and-audit.md";
    let shown = docs::shown(page, "$ pingora-secgw check -c conf/gw.yaml\n", "```");
    let (code, text) = common::run(
        std::process::Command::new(common::BIN)
            .args(["check", "-c"])
            .arg(docs::root().join("conf/gw.yaml")),
    );
    assert_eq!(format!("{text}$ echo $?\n{code}\n"), shown);
}

/// The `audit` run shown on the check page is what the binary prints for the shipped
/// demo, served on a free port (written back as 8080) with nothing on the HTTPS port.
#[test]
fn the_documented_audit_run_is_the_real_one() {
    let command = "$ pingora-secgw audit http://localhost:8080/ --https-port 8443\n";
    let shown = docs::shown("docs/check-and-audit.md", command, "```");
    let gw = common::shipped_demo();
    let https_port = common::free_port();
    let port = gw.addr.port();
    let (code, text) = common::run(std::process::Command::new(common::BIN).args([
        "audit",
        &format!("http://localhost:{port}/"),
        "--https-port",
        &https_port.to_string(),
    ]));
    assert_eq!(code, 0, "{text}");
    assert_eq!(
        text.replace(&format!("localhost:{port}"), "localhost:8080"),
        shown
    );
}

/// Every page opens with its title and then says what it covers, before any section.
#[test]
fn every_page_opens_with_what_it_covers() {
    for page in docs::pages().iter().skip(1) {
        let prose = page.prose();
        let mut lines = prose
            .iter()
            .map(|(_, l)| *l)
            .filter(|l| !l.trim().is_empty());
        let title = lines.next().unwrap_or("");
        assert!(title.starts_with("# "), "{}: no title", page.path);
        let first = lines.next().unwrap_or("");
        assert!(
            !first.starts_with('#') && !first.starts_with('|') && !first.starts_with('-'),
            "{}: a section or list before the page says what it covers",
            page.path
        );
    }
}

/// `a/b/../c` as `a/c`, with `/` separators.
fn normalize(path: &Path) -> String {
    let mut parts: Vec<String> = Vec::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                parts.pop();
            }
            std::path::Component::CurDir => {}
            other => parts.push(other.as_os_str().to_string_lossy().into_owned()),
        }
    }
    parts.join("/")
}

fn policy_path(fence: &Fence) -> Option<&str> {
    let path = fence.first_line().strip_prefix("# ")?;
    (path.starts_with("policies/") && path.ends_with(".yaml")).then_some(path)
}

/// Loads one marked block as its marker says, or says why it does not load.
fn load(
    fence: &Fence,
    policies: &[(String, String)],
    pki: &common::tls::TestPki,
) -> Result<Kind, String> {
    let marker = fence.first_line();
    let parsed = || -> Result<Value, String> {
        serde_yaml::from_str(&fence.body).map_err(|e| format!("not YAML: {e}"))
    };
    if marker == "# gw.yaml" {
        return load_gw(&parsed()?, policies, pki, true).map(|_| Kind::Complete);
    }
    if let Some(path) = policy_path(fence) {
        let mut files = policies.to_vec();
        files.push((path.to_string(), fence.body.clone()));
        let (gw, _) = complete("gw.yaml", yaml(&format!("policy_files: {path}")))?;
        return load_gw(&gw, &files, pki, false).map(|_| Kind::PolicyFile);
    }
    if let Some(kind) = marker.strip_prefix("# fragment: ") {
        let (gw, written) = complete(kind, parsed()?)?;
        let mut files = policies.to_vec();
        files.extend(written);
        return load_gw(&gw, &files, pki, false).map(|_| Kind::Fragment);
    }
    if let Some(path) = marker.strip_prefix("# deploy/") {
        let file = std::fs::read_to_string(docs::root().join("deploy").join(path))
            .map_err(|e| format!("deploy/{path}: {e}"))?;
        let shown = fence.body.split_once('\n').map_or("", |(_, rest)| rest);
        return if shown == file {
            Ok(Kind::Shipped)
        } else {
            Err(format!(
                "not deploy/{path} as it is: show the file, not a copy of it"
            ))
        };
    }
    if marker.starts_with("# not gw.yaml: ") {
        for document in serde_yaml::Deserializer::from_str(&fence.body) {
            serde::Deserialize::deserialize(document)
                .map(|_: Value| ())
                .map_err(|e| format!("not YAML: {e}"))?;
        }
        if looks_like_ours(&fence.body) {
            return Err("marked as another program's YAML, but it is the gateway's".into());
        }
        return Ok(Kind::Foreign);
    }
    Err(format!(
        "a yaml block opens with a marker (`# gw.yaml`, `# policies/NAME.yaml`, `# fragment: gw.yaml|vhost|route|policy`, `# deploy/FILE`, `# not gw.yaml: WHAT`), not {marker:?}"
    ))
}

/// Whether a block is the gateway's own YAML (it has keys only gw.yaml, a policy file
/// or a policy has at its top), so that it cannot skip the loader by its marker or its
/// fence's language.
fn looks_like_ours(body: &str) -> bool {
    const OURS: [&str; 7] = [
        "vhosts",
        "listeners",
        "policies",
        "policy_files",
        "security",
        "request_headers",
        "trusted_proxies",
    ];
    matches!(
        serde_yaml::from_str::<Value>(body),
        Ok(Value::Mapping(m)) if OURS.iter().any(|k| m.contains_key(*k))
    )
}

const LISTENER: &str = "listeners: [{address: \"127.0.0.1:8080\"}]\n";

/// A fragment with the least around it that makes a gw.yaml, and the files that
/// gw.yaml reads besides those of the page (a policy fragment's policy file).
fn complete(kind: &str, fragment: Value) -> Result<(Value, Vec<(String, String)>), String> {
    let Value::Mapping(fragment) = fragment else {
        return Err("a fragment is a mapping of keys".into());
    };
    let vhost = |extra: &str| {
        yaml(&format!("{{name: doc, hosts: [\"*\"]{extra}}}"))
            .as_mapping()
            .unwrap()
            .clone()
    };
    let gw = |vhost: Mapping| {
        let mut gw = yaml(LISTENER).as_mapping().unwrap().clone();
        gw.insert(
            "vhosts".into(),
            Value::Sequence(vec![Value::Mapping(vhost)]),
        );
        gw
    };
    let mut files = Vec::new();
    let gw = match kind {
        "gw.yaml" => {
            let mut top = gw(vhost(", respond: {}"));
            top.extend(fragment);
            top
        }
        "vhost" => {
            let target = fragment.contains_key("upstreams") || fragment.contains_key("respond");
            let mut v = vhost(if target { "" } else { ", respond: {}" });
            v.extend(fragment);
            gw(v)
        }
        "route" => {
            let mut route = Mapping::new();
            if !["prefix", "exact", "regex"]
                .iter()
                .any(|k| fragment.contains_key(*k))
            {
                route.insert("prefix".into(), "/doc".into());
            }
            route.extend(fragment);
            let mut v = vhost(", upstreams: [\"127.0.0.1:9\"]");
            v.insert(
                "routes".into(),
                Value::Sequence(vec![Value::Mapping(route)]),
            );
            gw(v)
        }
        "policy" => {
            let mut named = Mapping::new();
            named.insert("doc".into(), Value::Mapping(fragment));
            let mut file = Mapping::new();
            file.insert("policies".into(), Value::Mapping(named));
            files.push(("policies/doc.yaml".into(), to_text(&Value::Mapping(file))));
            let mut top = gw(vhost(", respond: {}, policy: doc"));
            top.insert("policy_files".into(), "policies/".into());
            top
        }
        other => {
            return Err(format!(
                "no fragment kind {other:?} (gw.yaml, vhost, route, policy)"
            ))
        }
    };
    Ok((Value::Mapping(gw), files))
}

/// Writes gw.yaml, the given policy files and the certificates it names into a fresh
/// directory and runs `pingora-secgw -t` on it; with `lint`, also `check --fail-on
/// error`, since a complete example is one a reader may deploy as it is.
fn load_gw(
    gw: &Value,
    files: &[(String, String)],
    pki: &common::tls::TestPki,
    lint: bool,
) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        write(dir.path(), path, text);
    }
    write_credentials(gw, dir.path(), pki);
    let conf = dir.path().join("gw.yaml");
    std::fs::write(&conf, to_text(gw)).unwrap();
    let (code, text) = common::test_flag(&conf);
    if code != 0 {
        return Err(format!(
            "`pingora-secgw -t` exits {code}:\n{text}\n{}",
            to_text(gw)
        ));
    }
    let mut check = std::process::Command::new(common::BIN);
    check
        .arg("check")
        .arg("-c")
        .arg(&conf)
        .args(["--fail-on", "error"]);
    match lint.then(|| common::run(&mut check)) {
        Some((code, text)) if code != 0 => Err(format!(
            "`pingora-secgw check --fail-on error` exits {code}:\n{text}"
        )),
        _ => Ok(()),
    }
}

/// Every `tls: {cert, key}` pair and `ca_file` under relative paths, generated.
fn write_credentials(value: &Value, dir: &Path, pki: &common::tls::TestPki) {
    match value {
        Value::Mapping(map) => {
            let text = |key: &str| {
                map.get(key)
                    .and_then(Value::as_str)
                    .filter(|p| !p.starts_with('/'))
            };
            if let (Some(cert), Some(key)) = (text("cert"), text("key")) {
                let leaf = pki.leaf(&["localhost"]);
                write(dir, cert, &leaf.cert_pem);
                write(dir, key, &leaf.key_pem);
            }
            if let Some(ca) = text("ca_file") {
                write(dir, ca, &pki.ca_pem());
            }
            map.values().for_each(|v| write_credentials(v, dir, pki));
        }
        Value::Sequence(items) => items.iter().for_each(|v| write_credentials(v, dir, pki)),
        _ => {}
    }
}

fn write(dir: &Path, path: &str, text: &str) {
    let path = dir.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn yaml(text: &str) -> Value {
    serde_yaml::from_str(text).unwrap()
}

fn to_text(value: &Value) -> String {
    serde_yaml::to_string(value).unwrap()
}
