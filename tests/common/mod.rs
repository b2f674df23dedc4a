//! Shared test parts: a real HTTP upstream, the real gateway binary on ephemeral
//! loopback ports, and a real HTTP client.
#![allow(dead_code)] // each test crate uses a different subset of these helpers

pub mod cluster;
pub mod docs;
pub mod framings;
pub mod html;
pub mod lifecycle;
pub mod pages;
pub mod prometheus;
pub mod strict;
pub mod tls;

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

pub const BIN: &str = env!("CARGO_BIN_EXE_pingora-secgw");

/// A two-thread runtime for a test's async clients and servers.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Ports handed out by [`free_port`], each held for the life of the test
/// process by a socket bound with SO_REUSEADDR that never listens.
static HELD_PORTS: Mutex<Vec<tokio::net::TcpSocket>> = Mutex::new(Vec::new());

/// A loopback port no other test can take, for a gateway (or nginx, Prometheus)
/// to listen on. A port merely found free and given up could be handed out again
/// by the kernel to another test's `bind` to port 0 before the gateway binds it,
/// and the test would talk to the wrong server. Held as above, the kernel never
/// picks it for a `bind` to port 0, any listener that sets SO_REUSEADDR (Pingora,
/// std, Go and nginx all do) still binds and listens on it, and while nothing
/// listens on it, it refuses connections.
pub fn free_port() -> u16 {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_reuseaddr(true).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = socket.local_addr().unwrap().port();
    HELD_PORTS.lock().unwrap().push(socket);
    port
}

/// What the upstream saw of one request.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub method: String,
    pub path: String,
    /// The path and query, as the upstream received them.
    pub target: String,
    pub headers: Vec<(String, String)>,
}

impl SeenRequest {
    pub fn header(&self, name: &str) -> Vec<&str> {
        values(&self.headers, name)
    }
}

/// Every value of header `name` (any case) in a list of fields.
pub fn values<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// A real HTTP/1.1 upstream (hyper) on its own runtime thread.
///
/// Paths:
/// - `/conflict`: sends its own HSTS, X-Frame-Options twice, CSP, Server, X-Powered-By, ...
/// - `/status/N`: answers with status N
/// - `/cors`: sends its own CORS headers and `Vary: Accept-Encoding`
/// - `/slow`: answers after 3 s; `/slow/MS` after MS milliseconds
/// - `/big`: a 16 MiB body
/// - anything else: 200 `hello from upstream NAME`
///
/// On any path, `X-Echo-Set-Header: name:value,name:value` makes it send those
/// response headers, names as written (the Gateway API conformance echo server's
/// convention).
pub struct Upstream {
    pub addr: SocketAddr,
    pub name: String,
    hits: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<SeenRequest>>>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl Upstream {
    pub fn start(name: &str) -> Upstream {
        Upstream::start_with(name, None, "127.0.0.1")
    }

    /// An upstream listening on `ip` (such as [`cluster::TEST_HOST`]).
    pub fn start_on(name: &str, ip: &str) -> Upstream {
        Upstream::start_with(name, None, ip)
    }

    /// An upstream that speaks HTTPS with the given server configuration.
    pub fn start_tls(name: &str, tls: Arc<rustls::ServerConfig>) -> Upstream {
        Upstream::start_with(
            name,
            Some(tokio_rustls::TlsAcceptor::from(tls)),
            "127.0.0.1",
        )
    }

    fn start_with(name: &str, tls: Option<tokio_rustls::TlsAcceptor>, ip: &str) -> Upstream {
        let listener = TcpListener::bind((ip, 0)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (hits2, seen2, name2) = (hits.clone(), seen.clone(), name.to_string());
        std::thread::spawn(move || {
            runtime().block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let serve = async {
                    loop {
                        let Ok((stream, _)) = listener.accept().await else {
                            continue;
                        };
                        let (hits, seen, name) = (hits2.clone(), seen2.clone(), name2.clone());
                        let tls = tls.clone();
                        tokio::spawn(async move {
                            let svc = service_fn(move |req| {
                                let (hits, seen, name) = (hits.clone(), seen.clone(), name.clone());
                                async move {
                                    Ok::<_, Infallible>(handle(req, &hits, &seen, &name).await)
                                }
                            });
                            let http = hyper::server::conn::http1::Builder::new();
                            match tls {
                                None => {
                                    let _ = http.serve_connection(TokioIo::new(stream), svc).await;
                                }
                                Some(acceptor) => {
                                    if let Ok(stream) = acceptor.accept(stream).await {
                                        let _ =
                                            http.serve_connection(TokioIo::new(stream), svc).await;
                                    }
                                }
                            }
                        });
                    }
                };
                tokio::select! {
                    _ = serve => {}
                    _ = rx => {}
                }
            });
        });
        Upstream {
            addr,
            name: name.to_string(),
            hits,
            seen,
            _shutdown: tx,
        }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    pub fn last_request(&self) -> SeenRequest {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("upstream saw no request")
    }
}

async fn handle(
    req: Request<hyper::body::Incoming>,
    hits: &AtomicUsize,
    seen: &Mutex<Vec<SeenRequest>>,
    name: &str,
) -> Response<Full<Bytes>> {
    hits.fetch_add(1, Ordering::SeqCst);
    let path = req.uri().path().to_string();
    seen.lock().unwrap().push(SeenRequest {
        method: req.method().to_string(),
        path: path.clone(),
        target: req
            .uri()
            .path_and_query()
            .map_or(path.clone(), |pq| pq.to_string()),
        headers: req
            .headers()
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect(),
    });
    let mut resp = Response::builder()
        .header("Content-Type", "text/plain")
        .header("X-Upstream", name);
    let echo = req
        .headers()
        .get("x-echo-set-header")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    for item in echo.split(',').filter(|i| !i.trim().is_empty()) {
        if let Some((n, v)) = item.split_once(':') {
            resp = resp.header(n.trim(), v.trim());
        }
    }
    let mut status = 200;
    match path.as_str() {
        "/conflict" => {
            resp = resp
                .header("Strict-Transport-Security", "max-age=1")
                .header("X-Frame-Options", "SAMEORIGIN")
                .header("X-Frame-Options", "ALLOWALL")
                .header("Content-Security-Policy", "img-src *")
                .header("Referrer-Policy", "unsafe-url")
                .header("Server", "upstream/1.0")
                .header("X-Powered-By", "PHP/8.3")
                .header("X-AspNet-Version", "4.0")
                .header("Cache-Control", "public, max-age=60")
                .header("Vary", "Accept-Encoding");
        }
        "/cors" => {
            resp = resp
                .header(
                    "Access-Control-Allow-Origin",
                    "https://upstream-choice.test",
                )
                .header("Access-Control-Allow-Credentials", "true")
                .header("Access-Control-Expose-Headers", "X-Upstream")
                .header("Vary", "Accept-Encoding");
        }
        "/slow" => tokio::time::sleep(Duration::from_secs(3)).await,
        p if p.starts_with("/slow/") => {
            let ms = p[6..].parse().unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        p if p.starts_with("/status/") => status = p[8..].parse().unwrap_or(500),
        _ => {}
    }
    let body = if path == "/big" {
        Bytes::from(vec![b'x'; 16 * 1024 * 1024])
    } else {
        Bytes::from(format!("hello from upstream {name}\n"))
    };
    resp.status(status).body(Full::new(body)).unwrap()
}

/// The real gateway binary, killed on drop.
pub struct Gateway {
    pub addr: SocketAddr,
    /// Where `{admin}` in gw.yaml pointed.
    pub admin: SocketAddr,
    /// Where `{tls}` in gw.yaml pointed.
    pub tls_addr: SocketAddr,
    pub dir: tempfile::TempDir,
    conf: PathBuf,
    child: Child,
}

/// Pingora's pid file and upgrade socket go into the test's own directory, so
/// gateways started in parallel never share them.
pub fn pingora_settings(dir: &Path) -> String {
    format!(
        "pid_file: {}\nupgrade_sock: {}\nthreads: 1\n",
        dir.join("gw.pid").display(),
        dir.join("upgrade.sock").display()
    )
}

/// Writes `files` (relative path -> contents) and gw.yaml into a fresh directory.
/// `{listen}`, `{admin}` and `{tls}` in gw.yaml become the given addresses.
fn write_config(
    gw_yaml: &str,
    files: &[(&str, &str)],
    listen: &str,
    admin: &str,
    tls: &str,
) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    for (rel, text) in files {
        let p = dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let conf = dir.path().join("gw.yaml");
    let text = format!(
        "{}{}",
        pingora_settings(dir.path()),
        gw_yaml
            .replace("{listen}", listen)
            .replace("{admin}", admin)
            .replace("{tls}", tls)
            .replace("{tls_port}", tls.rsplit_once(':').map_or("", |(_, p)| p))
    );
    std::fs::write(&conf, text).unwrap();
    (dir, conf)
}

impl Gateway {
    pub fn start(gw_yaml: &str) -> Gateway {
        Gateway::start_with_files(gw_yaml, &[])
    }

    pub fn start_with_files(gw_yaml: &str, files: &[(&str, &str)]) -> Gateway {
        let mut gw = Gateway::launch(gw_yaml, files, free_port());
        gw.wait_for(gw.addr);
        gw
    }

    /// Starts the binary with the public listener on `port`, without waiting.
    pub fn launch(gw_yaml: &str, files: &[(&str, &str)], port: u16) -> Gateway {
        Gateway::launch_on(gw_yaml, files, "127.0.0.1", port)
    }

    /// Starts the binary with the public and TLS listeners on `ip` (the public
    /// one on `port`), without waiting.
    pub fn launch_on(gw_yaml: &str, files: &[(&str, &str)], ip: &str, port: u16) -> Gateway {
        let listen = format!("{ip}:{port}");
        let admin = format!("127.0.0.1:{}", free_port());
        let tls = format!("{ip}:{}", free_port());
        let (dir, conf) = write_config(gw_yaml, files, &listen, &admin, &tls);
        Gateway::spawn(dir, &conf, &listen, &admin, &tls)
    }

    /// Starts the binary with its stdout on a pipe the caller holds (and may
    /// leave unread), and waits for it to listen.
    pub fn start_piped(gw_yaml: &str) -> (Gateway, std::process::ChildStdout) {
        let listen = format!("127.0.0.1:{}", free_port());
        let admin = format!("127.0.0.1:{}", free_port());
        let tls = format!("127.0.0.1:{}", free_port());
        let (dir, conf) = write_config(gw_yaml, &[], &listen, &admin, &tls);
        let mut child = binary(dir.path(), &conf, false)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut gw = Gateway {
            addr: listen.parse().unwrap(),
            admin: admin.parse().unwrap(),
            tls_addr: tls.parse().unwrap(),
            dir,
            conf,
            child,
        };
        gw.wait_for(gw.addr);
        (gw, stdout)
    }

    /// Starts the binary on a configuration the caller laid out in `dir`, whose
    /// listener and admin addresses are `listen` and `admin`.
    pub fn spawn(
        dir: tempfile::TempDir,
        conf: &Path,
        listen: &str,
        admin: &str,
        tls: &str,
    ) -> Gateway {
        let child = run_binary(dir.path(), conf, false);
        Gateway {
            addr: listen.parse().unwrap(),
            admin: admin.parse().unwrap(),
            tls_addr: tls.parse().unwrap(),
            dir,
            conf: conf.to_path_buf(),
            child,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts another process on the same configuration, which becomes this
    /// gateway's process, and returns the previous one, still running. With
    /// `upgrade` it is started with `-u`, to take the listeners over.
    pub fn start_successor(&mut self, upgrade: bool) -> Child {
        let next = run_binary(self.dir.path(), &self.conf, upgrade);
        std::mem::replace(&mut self.child, next)
    }

    /// Waits for the current process to exit.
    pub fn wait_exit(&mut self, bound: Duration) -> std::process::ExitStatus {
        wait_exit(&mut self.child, bound)
    }

    /// Starts a fresh process on the same configuration, once the current one
    /// has exited.
    pub fn restart(&mut self) {
        assert!(!self.alive(), "the gateway process is still running");
        self.child = run_binary(self.dir.path(), &self.conf, false);
        self.wait_for(self.addr);
    }

    /// Sends `signal` (`libc::SIGTERM`, ...) to the current process.
    pub fn signal(&self, signal: i32) {
        send_signal(&self.child, signal);
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The value of one sample on /metrics, e.g. `secgw_config_last_reload_successful`.
    pub fn metric(&self, sample: &str) -> Option<f64> {
        let (_, text) = self.admin_get("/metrics");
        text.lines()
            .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
    }

    /// Waits until `addr` accepts connections (or the gateway dies).
    pub fn wait_for(&mut self, addr: SocketAddr) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("gateway exited with {status}:\n{}", self.log());
            }
            if TcpStream::connect(addr).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("gateway did not listen on {addr}:\n{}", self.log());
    }

    /// GET on the admin listener: (status, body).
    pub fn admin_get(&self, path: &str) -> (u16, String) {
        let r = reply(
            client()
                .get(format!("http://{}{path}", self.admin))
                .send()
                .unwrap(),
        );
        (r.status, r.body)
    }

    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.path().join("gateway.log")) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// The CSP report lines in the log (bare JSON objects), parsed.
    pub fn report_lines(&self) -> Vec<serde_json::Value> {
        self.log()
            .lines()
            .filter(|l| l.starts_with("{\"time\""))
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The binary on `conf`, its stderr appended to `dir/gateway.log`.
fn run_binary(dir: &Path, conf: &Path, upgrade: bool) -> Child {
    binary(dir, conf, upgrade).spawn().unwrap()
}

/// The command [`run_binary`] runs, stdout discarded.
fn binary(dir: &Path, conf: &Path, upgrade: bool) -> Command {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("gateway.log"))
        .unwrap();
    let mut command = Command::new(BIN);
    if upgrade {
        command.arg("-u");
    }
    command
        .arg("-c")
        .arg(conf)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log);
    command
}

pub fn send_signal(child: &Child, signal: i32) {
    // SAFETY: kill(2) takes no pointers; the pid is our own child's.
    let rc = unsafe { libc::kill(child.id() as i32, signal) };
    assert_eq!(rc, 0, "kill({}, {signal})", child.id());
}

/// Waits for `child` to exit; the bound only keeps a broken build from hanging.
pub fn wait_exit(child: &mut Child, bound: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + bound;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "process {} did not exit",
            child.id()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Writes gw.yaml and `files`, runs `pingora-secgw -t` on them and returns (exit
/// code, stdout + stderr, the directory holding gw.yaml).
pub fn check_config(gw_yaml: &str, files: &[(&str, &str)]) -> (i32, String, tempfile::TempDir) {
    let (dir, conf) = write_config(gw_yaml, files, "127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3");
    let (code, text) = test_flag(&conf);
    (code, text, dir)
}

/// Runs `pingora-secgw -t -c CONF`: (exit code, stdout + stderr).
pub fn test_flag(conf: &Path) -> (i32, String) {
    run(Command::new(BIN)
        .arg("-t")
        .arg("-c")
        .arg(conf)
        .env("RUST_LOG", "error"))
}

/// Runs a command to its end: (exit code, or -1 for a signal; stdout + stderr).
pub fn run(command: &mut Command) -> (i32, String) {
    let out = command.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// gw.yaml with one proxied vhost `app`. `hosts` and `trusted` are YAML flow lists
/// (`[app.test]`, `["127.0.0.1"]`); `vhost_extra` is more keys of the vhost, indented
/// by four spaces.
pub fn one_vhost(hosts: &str, upstream: &str, trusted: &str, vhost_extra: &str) -> String {
    format!(
        "listeners: [{{address: \"{{listen}}\"}}]\ntrusted_proxies: {trusted}\nvhosts:\n  - name: app\n    hosts: {hosts}\n    upstreams: [\"{upstream}\"]\n{vhost_extra}\n"
    )
}

/// A real HTTP client that follows no redirects and uses no proxy.
pub fn client() -> reqwest::blocking::Client {
    tls::install_provider();
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap()
}

/// A response reduced to what tests compare: status, headers (all values, lower-case
/// names) and body.
pub struct Reply {
    pub status: u16,
    pub headers: HashMap<String, Vec<String>>,
    pub body: String,
}

impl Reply {
    /// All values of a header.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(|v| v.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// The one value of a header; fails if it is missing or sent more than once.
    pub fn one(&self, name: &str) -> &str {
        let all = self.all(name);
        assert_eq!(all.len(), 1, "expected exactly one {name}, got {all:?}");
        all[0]
    }

    pub fn has(&self, name: &str) -> bool {
        !self.all(name).is_empty()
    }
}

pub fn reply(resp: reqwest::blocking::Response) -> Reply {
    let status = resp.status().as_u16();
    let mut headers: HashMap<String, Vec<String>> = HashMap::new();
    for (n, v) in resp.headers() {
        headers
            .entry(n.as_str().to_string())
            .or_default()
            .push(v.to_str().unwrap().to_string());
    }
    let body = resp.text().unwrap();
    Reply {
        status,
        headers,
        body,
    }
}

/// A TCP connection to `to` from the loopback address `source` (127.0.0.2 ...), as a
/// client of its own would come.
pub fn connect_from(source: &str, to: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let stream = runtime()
        .block_on(socket.connect(to))
        .unwrap()
        .into_std()
        .unwrap();
    stream.set_nonblocking(false).unwrap();
    stream
}

/// GET `path` on the gateway with the given Host and extra headers.
pub fn get(gw: &Gateway, host: &str, path: &str, extra: &[(&str, &str)]) -> Reply {
    request(gw, "GET", host, path, extra)
}

pub fn request(
    gw: &Gateway,
    method: &str,
    host: &str,
    path: &str,
    extra: &[(&str, &str)],
) -> Reply {
    let mut req = client()
        .request(method.parse().unwrap(), gw.url(path))
        .header("Host", host);
    for (n, v) in extra {
        req = req.header(*n, *v);
    }
    reply(req.send().unwrap())
}

/// The built-in default headers on plain HTTP (HSTS is HTTPS-only), exactly.
pub const DEFAULT_HEADERS_HTTP: &[(&str, &str)] = &[
    (
        "content-security-policy",
        "default-src 'self'; base-uri 'self'; font-src 'self' https: data:; form-action 'self'; frame-ancestors 'none'; img-src 'self' data:; object-src 'none'; script-src 'self'; script-src-attr 'none'; style-src 'self' https: 'unsafe-inline'; upgrade-insecure-requests",
    ),
    ("x-xss-protection", "0"),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "strict-origin-when-cross-origin"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    (
        "permissions-policy",
        "camera=(), geolocation=(), microphone=(), payment=(), usb=()",
    ),
];

pub const DEFAULT_HSTS: &str = "max-age=31536000; includeSubDomains";

/// Asserts the full default set, each exactly once, and HSTS only when `https`.
pub fn assert_default_headers(r: &Reply, https: bool) {
    for (name, value) in DEFAULT_HEADERS_HTTP {
        assert_eq!(r.all(name), [*value], "header {name}");
    }
    if https {
        assert_eq!(r.all("strict-transport-security"), [DEFAULT_HSTS]);
    } else {
        assert_eq!(r.all("strict-transport-security"), Vec::<&str>::new());
    }
    assert!(
        !r.has("server"),
        "Server must be hidden: {:?}",
        r.all("server")
    );
}

/// Sends `bytes` on a fresh connection and reads until the gateway closes it (or
/// 15 s pass): the raw response text, for requests no HTTP client would send.
pub fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> String {
    use std::io::Write;
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s.write_all(bytes).unwrap();
    read_until_closed(&mut s)
}

/// Everything the peer sends until it closes the connection (or 15 s pass).
pub fn read_until_closed(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The head of a raw response (before the blank line).
pub fn head_of(raw: &str) -> &str {
    raw.split("\r\n\r\n").next().unwrap_or("")
}

/// Asserts the built-in policy headers on a raw HTTP/1.1 head, each exactly once,
/// written in canonical case, without HSTS (plain HTTP).
pub fn assert_raw_default_headers(head: &str) {
    for (name, value) in [
        ("X-Frame-Options", "DENY"),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "strict-origin-when-cross-origin"),
        ("Cross-Origin-Opener-Policy", "same-origin"),
    ] {
        let line = format!("\r\n{name}: {value}\r\n");
        assert_eq!(head.matches(&line).count(), 1, "{name} in:\n{head}");
    }
    assert_eq!(
        head.matches("\r\nContent-Security-Policy: ").count(),
        1,
        "{head}"
    );
    assert!(!head.contains("Strict-Transport-Security"), "{head}");
    assert!(!head.to_ascii_lowercase().contains("\r\nserver:"), "{head}");
}

/// Polls `check` for up to 10 s until it holds; the bound only keeps a broken
/// build from hanging, it is no speed claim (speed is measured by benchmarks).
pub fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The shipped conf/gw.yaml and its policies, with only the listener and admin ports
/// and Pingora's socket paths moved, so it cannot collide with a gateway on 8080.
pub fn shipped_demo() -> Gateway {
    let root = env!("CARGO_MANIFEST_DIR");
    let gw_yaml = std::fs::read_to_string(format!("{root}/conf/gw.yaml")).unwrap();
    assert!(gw_yaml.contains("address: \"127.0.0.1:8080\""));
    assert!(gw_yaml.contains("address: \"127.0.0.1:9100\""));
    let gw_yaml: String = gw_yaml
        .replace("127.0.0.1:8080", "{listen}")
        .replace("127.0.0.1:9100", "{admin}")
        .lines()
        .filter(|l| {
            !["pid_file:", "upgrade_sock:", "threads:"]
                .iter()
                .any(|k| l.starts_with(k))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let mut policies = Vec::new();
    for entry in std::fs::read_dir(format!("{root}/conf/policies")).unwrap() {
        let path = entry.unwrap().path();
        let name = format!("policies/{}", path.file_name().unwrap().to_string_lossy());
        policies.push((name, std::fs::read_to_string(&path).unwrap()));
    }
    let files: Vec<(&str, &str)> = policies
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    Gateway::start_with_files(&gw_yaml, &files)
}

/// `pingora-secgw audit https://HOST/` through a gateway on loopback: both
/// ports resolved to it and given as the site's HTTP and HTTPS ports.
pub fn audit_through(host: &str, http: u16, https: u16) -> std::process::Command {
    let mut command = std::process::Command::new(BIN);
    command
        .arg("audit")
        .arg(format!("https://{host}/"))
        .args(["--resolve", &format!("{host}:{http}:127.0.0.1")])
        .args(["--resolve", &format!("{host}:{https}:127.0.0.1")])
        .args([
            "--http-port",
            &http.to_string(),
            "--https-port",
            &https.to_string(),
        ]);
    command
}
