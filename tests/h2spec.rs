//! HTTP/2 conformance: h2spec (built by `scripts/h2spec.sh`) against the gateway over
//! TLS, and against nginx with the same certificate in the same run, for the docs'
//! side-by-side table (docs/http2.md). The gateway must pass every case, strict
//! ones included; nginx's result is printed, not judged.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::tls::{gateway_with_tls, TestPki};
use common::*;

fn h2spec() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools/h2spec");
    assert!(
        path.exists(),
        "run scripts/h2spec.sh first (scripts/test.sh does)"
    );
    path
}

/// What one h2spec run found: its summary line and the cases that failed.
struct Run {
    summary: String,
    failed: Vec<String>,
}

/// Runs h2spec against `port`; when it stops without a summary (it aborts on a
/// connection closed during a handshake), the panic carries `log()`, the server's
/// own account of that moment.
fn run_h2spec(port: u16, log: impl Fn() -> String) -> Run {
    let out = Command::new(h2spec())
        .args(["--strict", "--tls", "--insecure", "--timeout", "2"])
        .args(["--port", &port.to_string()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let summary = text
        .lines()
        .find(|l| l.contains(" tests, "))
        .unwrap_or_else(|| panic!("no summary from h2spec:\n{text}\nserver log:\n{}", log()))
        .trim()
        .to_string();
    let failures = text.split("Failures:").nth(1).unwrap_or("");
    let failed = failures
        .lines()
        .filter(|l| l.trim_start().starts_with('×'))
        .map(|l| l.trim().to_string())
        .collect();
    Run { summary, failed }
}

/// nginx serving `200` over TLS with HTTP/2, on `port`, in `dir`.
fn start_nginx(dir: &Path, port: u16, cert: &Path, key: &Path) -> KilledOnDrop {
    let d = dir.display();
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "worker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/nginx.err warn;\n\
             events {{ worker_connections 1024; }}\nhttp {{\n  access_log off;\n\
             client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n\
             server {{\n    listen 127.0.0.1:{port} ssl http2;\n\
             ssl_certificate {}; ssl_certificate_key {};\n\
             location / {{ return 200 \"hello\\n\"; }}\n  }}\n}}\n",
            cert.display(),
            key.display()
        ),
    )
    .unwrap();
    let nginx = ["/usr/sbin/nginx", "nginx"]
        .into_iter()
        .find(|n| Command::new(n).arg("-v").output().is_ok())
        .expect("nginx (scripts/deps.sh test installs it)");
    let child = Command::new(nginx)
        .arg("-c")
        .arg(&conf)
        .arg("-p")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    KilledOnDrop(child)
}

struct KilledOnDrop(std::process::Child);

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn h2spec_passes_every_case_against_the_gateway() {
    let up = Upstream::start("app");
    let rest = format!(
        "vhosts:\n  - name: any\n    hosts: [\"*\"]\n    upstreams: [\"{}\"]\n",
        up.addr
    );
    let (gw, pki): (Gateway, TestPki) = gateway_with_tls("127.0.0.1", &rest);
    let gateway = run_h2spec(gw.tls_addr.port(), || gw.log());

    let leaf = pki.leaf(&["127.0.0.1"]);
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, &leaf.cert_pem).unwrap();
    std::fs::write(&key, &leaf.key_pem).unwrap();
    let port = free_port();
    let _nginx = start_nginx(dir.path(), port, &cert, &key);
    eventually("nginx listens", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let nginx = run_h2spec(port, || {
        std::fs::read_to_string(dir.path().join("nginx.err")).unwrap_or_default()
    });

    println!("h2spec --strict, gateway: {}", gateway.summary);
    println!("h2spec --strict, nginx:   {}", nginx.summary);
    for f in &nginx.failed {
        println!("  nginx {f}");
    }
    assert_eq!(gateway.failed, Vec::<String>::new(), "{}", gateway.summary);
    assert!(
        gateway.summary.ends_with(" 0 failed"),
        "{}",
        gateway.summary
    );
}
