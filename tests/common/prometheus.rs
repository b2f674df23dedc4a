//! Prometheus from Debian's package (`scripts/prometheus.sh` puts it in target/tools):
//! promtool, and a real Prometheus server scraping a gateway's admin listener,
//! queried through its HTTP API.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One of Prometheus's tools: `$PROMTOOL` / `$PROMETHEUS` when set, else
/// target/tools, else the PATH.
fn tool(name: &str) -> String {
    if let Ok(path) = std::env::var(name.to_uppercase()) {
        return path;
    }
    let local = format!("{}/target/tools/{name}", env!("CARGO_MANIFEST_DIR"));
    if Path::new(&local).exists() {
        return local;
    }
    name.to_string()
}

pub fn promtool() -> String {
    tool("promtool")
}

/// A Prometheus server on a loopback port, scraping `target` (an admin listener)
/// every second and evaluating `rule_files` every second; killed on drop.
pub struct Prometheus {
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
    child: Child,
}

impl Prometheus {
    pub fn scraping(target: SocketAddr, rule_files: &[&Path]) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global: {{scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}}\n\
                 rule_files: {}\n\
                 scrape_configs:\n  - job_name: pingora-secgw\n    static_configs: [{{targets: [\"{target}\"]}}]\n",
                serde_json::to_string(&rule_files).unwrap()
            ),
        )
        .unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", super::free_port()).parse().unwrap();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(tool("prometheus"))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus is needed: run scripts/deps.sh test (or set PROMETHEUS)");
        let prometheus = Prometheus { addr, dir, child };
        let started = Instant::now();
        while super::client()
            .get(format!("http://{addr}/-/ready"))
            .send()
            .map_or(true, |r| r.status() != 200)
        {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "Prometheus not ready in 30 s: {}",
                prometheus.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        prometheus
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// `GET /api/v1/PATH?ARGS` (each argument percent-encoded) as JSON; panics
    /// unless Prometheus answers `"status": "success"`.
    pub fn api(&self, path: &str, args: &[(&str, &str)]) -> serde_json::Value {
        let query: Vec<String> = args
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        let url = format!("http://{}/api/v1/{path}?{}", self.addr, query.join("&"));
        let body = super::client().get(&url).send().unwrap().text().unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: {e}: {body}"));
        assert_eq!(json["status"], "success", "{args:?}: {body}");
        json["data"].clone()
    }

    /// An instant query's result vector (panics on any other result type).
    pub fn query(&self, expr: &str) -> Vec<serde_json::Value> {
        let data = self.api("query", &[("query", expr)]);
        assert_eq!(data["resultType"], "vector", "{expr}: {data}");
        data["result"].as_array().unwrap().clone()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// RFC 3986 percent-encoding of everything but the unreserved characters.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
