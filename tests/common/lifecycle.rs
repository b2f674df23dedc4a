//! Process replacement under load: steady load from real HTTP clients, and a tiny
//! TCP load balancer that stops sending new connections to a backend whose
//! `/readyz` fails, like an endpoints controller. Shared by tests/lifecycle.rs
//! and benches/lifecycle.rs.
//!
//! The clients are hyper's connection-level clients, which never retry on their
//! own, so every request is counted once. A request is `ok` with status 200, one
//! `X-Content-Type-Options: nosniff` and the upstream's whole body; any other
//! answer, a reset, a close or a timeout after it was sent makes it `failed`. A
//! connection that cannot be opened (refused, reset, TLS or HTTP/2 handshake
//! failed) counts one `refused` request.
//!
//! A request is `unsent` when the protocol guarantees the gateway never processed
//! it, and the client sends it again on a new connection, as pooled clients and
//! browsers do: hyper handed it back before writing a byte of it (its HTTP/2
//! connection closed as it was queued), or HTTP/2 refused it with a GOAWAY
//! (RFC 9113 6.8: streams above the GOAWAY's last stream were not processed,
//! and the h2 client refuses new streams once a GOAWAY arrived). The tests check
//! that the upstream saw exactly the `ok` requests.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::{http1, http2};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::tls::TestPki;
use super::{eventually, send_signal, wait_exit, Gateway, Upstream};

/// The Host every request here is for.
pub const HOST: &str = "app.test";

/// How long an old process may take to exit; only a bound against hanging.
const EXIT_BOUND: Duration = Duration::from_secs(60);

/// A gateway with a plain and a TLS listener (h2 and HTTP/1.1) for [`HOST`] in
/// front of `upstream`, with short Pingora grace settings and a
/// `shutdown_drain_seconds` of `drain`.
pub fn gateway(upstream: &Upstream, pki: &TestPki, drain: u64) -> Gateway {
    let leaf = pki.leaf(&[HOST]);
    let yaml = format!(
        "grace_period_seconds: 3\ngraceful_shutdown_timeout_seconds: 1\n\
         shutdown_drain_seconds: {drain}\n\
         listeners:\n  - address: \"{{listen}}\"\n  - address: \"{{tls}}\"\n    \
         tls: {{cert: certs/site.pem, key: certs/site.key}}\n\
         admin: {{address: \"{{admin}}\"}}\n\
         vhosts:\n  - name: app\n    hosts: [{HOST}]\n    upstreams: [\"{}\"]\n",
        upstream.addr
    );
    let files = [
        ("certs/site.pem", leaf.cert_pem.as_str()),
        ("certs/site.key", leaf.key_pem.as_str()),
    ];
    let mut gw = Gateway::launch(&yaml, &files, super::free_port());
    gw.wait_for(gw.tls_addr);
    gw.wait_for(gw.addr);
    gw
}

impl Target {
    /// Load on the gateway's own listeners.
    pub fn of(gw: &Gateway, upstream: &Upstream, pki: &TestPki) -> Target {
        Target {
            plain: gw.addr,
            tls: gw.tls_addr,
            host: HOST.into(),
            body: format!("hello from upstream {}\n", upstream.name),
            ca_pem: pki.ca_pem(),
        }
    }

    /// Load through the balancer in front of gateways like `gw`.
    pub fn through(lb: &Balancer, gw: &Gateway, upstream: &Upstream, pki: &TestPki) -> Target {
        Target {
            plain: lb.frontends[0],
            tls: lb.frontends[1],
            ..Target::of(gw, upstream, pki)
        }
    }
}

/// A graceful upgrade: a new process started with `-u` takes the listeners over
/// when the running one gets SIGQUIT. Returns the old process's exit status.
pub fn upgrade(gw: &mut Gateway) -> ExitStatus {
    let sock = gw.dir.path().join("upgrade.sock");
    let _ = std::fs::remove_file(&sock);
    let mut old = gw.start_successor(true);
    eventually("the new process waits on the upgrade socket", || {
        sock.exists()
    });
    send_signal(&old, libc::SIGQUIT);
    wait_exit(&mut old, EXIT_BOUND)
}

/// A rolling update's step for one pod: SIGTERM, wait for the exit (then call
/// `exited`), start a fresh process on the same configuration and wait until it
/// is ready. Returns the old process's exit status.
pub fn replace(gw: &mut Gateway, exited: impl FnOnce()) -> ExitStatus {
    gw.signal(libc::SIGTERM);
    let status = gw.wait_exit(EXIT_BOUND);
    exited();
    gw.restart();
    eventually("the new process is ready", || {
        gw.admin_get("/readyz").0 == 200
    });
    status
}

/// How one load worker talks to the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// HTTP/1.1 on a kept-alive plain connection.
    H1,
    /// HTTP/1.1, a new plain connection per request (`Connection: close`).
    H1New,
    /// HTTP/1.1 on a kept-alive TLS connection.
    H1Tls,
    /// HTTP/2 over TLS, one connection for as long as the gateway keeps it.
    H2Tls,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::H1, Kind::H1New, Kind::H1Tls, Kind::H2Tls];

    fn name(self) -> &'static str {
        match self {
            Kind::H1 => "http/1.1 keep-alive",
            Kind::H1New => "http/1.1 new connections",
            Kind::H1Tls => "http/1.1 TLS keep-alive",
            Kind::H2Tls => "h2 TLS",
        }
    }
}

/// Where the load goes and what it must get back.
#[derive(Clone)]
pub struct Target {
    pub plain: SocketAddr,
    pub tls: SocketAddr,
    /// Host header and TLS server name.
    pub host: String,
    /// The body every answer must carry.
    pub body: String,
    pub ca_pem: String,
}

const PHASES: usize = 32;
const FAILURE_SAMPLES: usize = 20;

#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    ok: AtomicU64,
    failed: AtomicU64,
    refused: AtomicU64,
    unsent: AtomicU64,
}

/// Counts by kind and phase, and the first failures' descriptions.
struct Shared {
    stop: AtomicBool,
    phase: AtomicUsize,
    tallies: Vec<[Tally; PHASES]>,
    failures: Mutex<Vec<String>>,
}

impl Shared {
    fn tally(&self, kind: Kind) -> &Tally {
        let k = Kind::ALL.iter().position(|&x| x == kind).unwrap();
        &self.tallies[k][self.phase.load(Ordering::SeqCst)]
    }

    fn failure(&self, kind: Kind, what: String) {
        let mut f = self.failures.lock().unwrap();
        if f.len() < FAILURE_SAMPLES {
            f.push(format!(
                "{} (phase {}): {what}",
                kind.name(),
                self.phase.load(Ordering::SeqCst)
            ));
        }
    }
}

/// Workers of every kind, on their own runtime, until [`Load::stop`].
pub struct Load {
    shared: Arc<Shared>,
    phases: Vec<String>,
    runtime: tokio::runtime::Runtime,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// Starts `per_kind` workers of each [`Kind`]; counting starts in phase `first`.
    pub fn start(target: Target, per_kind: usize, first: &str) -> Load {
        super::tls::install_provider();
        let runtime = super::runtime();
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            phase: AtomicUsize::new(0),
            tallies: Kind::ALL.iter().map(|_| Default::default()).collect(),
            failures: Mutex::new(Vec::new()),
        });
        let tls = Arc::new(Tls::new(&target.ca_pem));
        let mut workers = Vec::new();
        for kind in Kind::ALL {
            for _ in 0..per_kind {
                let (target, shared, tls) = (target.clone(), shared.clone(), tls.clone());
                workers.push(runtime.spawn(worker(kind, target, tls, shared)));
            }
        }
        Load {
            shared,
            phases: vec![first.to_string()],
            runtime,
            workers,
        }
    }

    /// Counts from now on go to a new phase named `name`.
    pub fn phase(&mut self, name: &str) {
        assert!(self.phases.len() < PHASES, "too many phases");
        self.phases.push(name.to_string());
        self.shared
            .phase
            .store(self.phases.len() - 1, Ordering::SeqCst);
    }

    /// Lets every worker finish its request in flight, and returns the counts.
    pub fn stop(self) -> Report {
        self.shared.stop.store(true, Ordering::SeqCst);
        for w in self.workers {
            self.runtime.block_on(w).unwrap();
        }
        let mut rows = Vec::new();
        for (p, phase) in self.phases.iter().enumerate() {
            for (k, kind) in Kind::ALL.iter().enumerate() {
                let t = &self.shared.tallies[k][p];
                rows.push(Row {
                    phase: phase.clone(),
                    kind: *kind,
                    sent: t.sent.load(Ordering::SeqCst),
                    ok: t.ok.load(Ordering::SeqCst),
                    failed: t.failed.load(Ordering::SeqCst),
                    refused: t.refused.load(Ordering::SeqCst),
                    unsent: t.unsent.load(Ordering::SeqCst),
                });
            }
        }
        Report {
            rows,
            failures: self.shared.failures.lock().unwrap().clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Row {
    pub phase: String,
    pub kind: Kind,
    pub sent: u64,
    pub ok: u64,
    pub failed: u64,
    pub refused: u64,
    /// Handed back by the client before a byte was written, and sent again.
    pub unsent: u64,
}

pub struct Report {
    pub rows: Vec<Row>,
    /// The first failures, described.
    pub failures: Vec<String>,
}

impl Report {
    /// Every row summed.
    pub fn totals(&self) -> Row {
        let mut t = Row {
            phase: "total".into(),
            kind: Kind::H1,
            sent: 0,
            ok: 0,
            failed: 0,
            refused: 0,
            unsent: 0,
        };
        for r in &self.rows {
            t.sent += r.sent;
            t.ok += r.ok;
            t.failed += r.failed;
            t.refused += r.refused;
            t.unsent += r.unsent;
        }
        t
    }

    pub fn table(&self) -> String {
        let line = |phase: &str, client: &str, r: &Row| {
            format!(
                "{phase:<22} {client:<26} {:>7} {:>7} {:>7} {:>8} {:>7}\n",
                r.sent, r.ok, r.failed, r.refused, r.unsent
            )
        };
        let mut out = format!(
            "{:<22} {:<26} {:>7} {:>7} {:>7} {:>8} {:>7}\n",
            "phase", "client", "sent", "ok", "failed", "refused", "unsent"
        );
        for r in &self.rows {
            out += &line(&r.phase, r.kind.name(), r);
        }
        out += &line("total", "", &self.totals());
        for f in &self.failures {
            let _ = writeln!(out, "  {f}");
        }
        out
    }
}

struct Tls {
    h1: tokio_rustls::TlsConnector,
    h2: tokio_rustls::TlsConnector,
}

impl Tls {
    fn new(ca_pem: &str) -> Tls {
        let connector = |alpn: &[&[u8]]| {
            tokio_rustls::TlsConnector::from(Arc::new(super::tls::client_config(ca_pem, alpn)))
        };
        Tls {
            h1: connector(&[b"http/1.1"]),
            h2: connector(&[b"h2"]),
        }
    }
}

enum Sender {
    H1(http1::SendRequest<Empty<Bytes>>),
    H2(http2::SendRequest<Empty<Bytes>>),
}

async fn connect(kind: Kind, target: &Target, tls: &Tls) -> Result<Sender, String> {
    let addr = match kind {
        Kind::H1 | Kind::H1New => target.plain,
        Kind::H1Tls | Kind::H2Tls => target.tls,
    };
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let name = ServerName::try_from(target.host.clone()).unwrap();
    let sender = match kind {
        Kind::H1 | Kind::H1New => h1(TokioIo::new(tcp)).await?,
        Kind::H1Tls => {
            let tls = tls.h1.connect(name, tcp).await;
            h1(TokioIo::new(tls.map_err(|e| format!("TLS: {e}"))?)).await?
        }
        Kind::H2Tls => {
            let tls = tls.h2.connect(name, tcp).await;
            let io = TokioIo::new(tls.map_err(|e| format!("TLS: {e}"))?);
            let (sender, conn) = http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(|e| format!("h2 handshake: {e}"))?;
            tokio::spawn(conn);
            Sender::H2(sender)
        }
    };
    Ok(sender)
}

async fn h1<IO>(io: IO) -> Result<Sender, String>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, conn) = http1::handshake(io)
        .await
        .map_err(|e| format!("h1 handshake: {e}"))?;
    tokio::spawn(conn);
    Ok(Sender::H1(sender))
}

/// How one exchange went.
enum Outcome {
    /// A valid answer; `close`: the gateway asked to close the connection.
    Ok { close: bool },
    /// The client handed the request back before writing any of it.
    Unsent,
}

async fn exchange(sender: &mut Sender, kind: Kind, target: &Target) -> Result<Outcome, String> {
    let builder = match kind {
        Kind::H2Tls => Request::get(format!("https://{}/", target.host)),
        Kind::H1New => Request::get("/")
            .header("Host", &target.host)
            .header("Connection", "close"),
        Kind::H1 | Kind::H1Tls => Request::get("/").header("Host", &target.host),
    };
    let req = builder.body(Empty::new()).unwrap();
    let resp = match sender {
        Sender::H1(s) => s.try_send_request(req).await,
        Sender::H2(s) => s.try_send_request(req).await,
    };
    let resp = match resp {
        Ok(resp) => resp,
        Err(e) if e.message().is_some() || refused_by_goaway(e.error()) => {
            return Ok(Outcome::Unsent)
        }
        Err(e) => return Err(format!("request: {:?}", e.into_error())),
    };
    let status = resp.status();
    let nosniff: Vec<String> = resp
        .headers()
        .get_all("x-content-type-options")
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    let close = resp
        .headers()
        .get("connection")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e:?}"))?
        .to_bytes();
    if status != 200 || nosniff != ["nosniff"] || body != target.body.as_bytes() {
        return Err(format!(
            "status {status}, nosniff {nosniff:?}, body {:?}",
            String::from_utf8_lossy(&body)
        ));
    }
    Ok(Outcome::Ok { close })
}

/// A GOAWAY from the gateway with NO_ERROR: the stream was not processed.
fn refused_by_goaway(e: &hyper::Error) -> bool {
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<h2::Error>())
        .is_some_and(|h2| {
            h2.is_go_away() && h2.is_remote() && h2.reason() == Some(h2::Reason::NO_ERROR)
        })
}

/// Longer than any answer here takes; a request still unanswered then failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

async fn worker(kind: Kind, target: Target, tls: Arc<Tls>, shared: Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        let mut sender = match connect(kind, &target, &tls).await {
            Ok(s) => s,
            Err(e) => {
                shared.tally(kind).refused.fetch_add(1, Ordering::SeqCst);
                shared.failure(kind, e);
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        while !shared.stop.load(Ordering::SeqCst) {
            // Closed by the gateway between requests (after a drained answer, or
            // a GOAWAY): nothing was sent, so open another connection.
            let ready = match &mut sender {
                Sender::H1(s) => s.ready().await.is_ok(),
                Sender::H2(s) => s.ready().await.is_ok(),
            };
            if !ready {
                break;
            }
            // Counted in the phase it was sent in.
            let tally = shared.tally(kind);
            tally.sent.fetch_add(1, Ordering::SeqCst);
            match tokio::time::timeout(REQUEST_TIMEOUT, exchange(&mut sender, kind, &target)).await
            {
                Ok(Ok(Outcome::Ok { close })) => {
                    tally.ok.fetch_add(1, Ordering::SeqCst);
                    if close || kind == Kind::H1New {
                        break;
                    }
                }
                Ok(Ok(Outcome::Unsent)) => {
                    tally.sent.fetch_sub(1, Ordering::SeqCst);
                    tally.unsent.fetch_add(1, Ordering::SeqCst);
                    break;
                }
                Ok(Err(e)) => {
                    tally.failed.fetch_add(1, Ordering::SeqCst);
                    shared.failure(kind, e);
                    break;
                }
                Err(_) => {
                    tally.failed.fetch_add(1, Ordering::SeqCst);
                    shared.failure(kind, "no answer in 15 s".into());
                    break;
                }
            }
        }
    }
}

/// One backend of the [`Balancer`]: its listeners (in the balancer's frontend
/// order) and the admin address whose `/readyz` decides whether it gets new
/// connections.
pub struct Backend {
    pub listeners: Vec<SocketAddr>,
    pub admin: SocketAddr,
}

/// A TCP load balancer: each frontend port spreads new connections round-robin
/// over the ready backends' listener of the same index, and a health check reads
/// every backend's `/readyz` every 100 ms. It never retries a failed connect,
/// so a backend that stopped accepting shows up as a failed client connection.
pub struct Balancer {
    pub frontends: Vec<SocketAddr>,
    /// New connections that found no ready backend.
    pub unrouted: Arc<AtomicU64>,
    /// New connections whose backend could not be reached.
    pub unreachable: Arc<AtomicU64>,
    /// Connections sent to each backend.
    routed: Arc<Vec<AtomicU64>>,
    ready: Arc<Vec<AtomicBool>>,
    _runtime: tokio::runtime::Runtime,
}

const HEALTH_INTERVAL: Duration = Duration::from_millis(100);

impl Balancer {
    pub fn start(backends: Vec<Backend>) -> Balancer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let frontends_n = backends[0].listeners.len();
        let ready: Arc<Vec<AtomicBool>> =
            Arc::new(backends.iter().map(|_| AtomicBool::new(false)).collect());
        let routed: Arc<Vec<AtomicU64>> =
            Arc::new(backends.iter().map(|_| AtomicU64::new(0)).collect());
        let unrouted = Arc::new(AtomicU64::new(0));
        let unreachable = Arc::new(AtomicU64::new(0));
        let backends = Arc::new(backends);
        for (i, b) in backends.iter().enumerate() {
            let (ready, admin) = (ready.clone(), b.admin);
            runtime.spawn(async move {
                loop {
                    ready[i].store(readyz(admin).await, Ordering::SeqCst);
                    tokio::time::sleep(HEALTH_INTERVAL).await;
                }
            });
        }
        let mut frontends = Vec::new();
        for f in 0..frontends_n {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.set_nonblocking(true).unwrap();
            frontends.push(listener.local_addr().unwrap());
            let (backends, ready, routed, unrouted, unreachable) = (
                backends.clone(),
                ready.clone(),
                routed.clone(),
                unrouted.clone(),
                unreachable.clone(),
            );
            runtime.spawn(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let mut next = 0usize;
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        continue;
                    };
                    let n = backends.len();
                    let pick = (0..n)
                        .map(|k| (next + k) % n)
                        .find(|&b| ready[b].load(Ordering::SeqCst));
                    next = next.wrapping_add(1);
                    let Some(b) = pick else {
                        unrouted.fetch_add(1, Ordering::SeqCst);
                        continue;
                    };
                    routed[b].fetch_add(1, Ordering::SeqCst);
                    let to = backends[b].listeners[f];
                    let unreachable = unreachable.clone();
                    tokio::spawn(async move {
                        let mut client = client;
                        match TcpStream::connect(to).await {
                            Ok(mut server) => {
                                let _ = client.set_nodelay(true);
                                let _ = server.set_nodelay(true);
                                let _ =
                                    tokio::io::copy_bidirectional(&mut client, &mut server).await;
                            }
                            Err(_) => {
                                unreachable.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                    });
                }
            });
        }
        Balancer {
            frontends,
            unrouted,
            unreachable,
            routed,
            ready,
            _runtime: runtime,
        }
    }

    /// A balancer with a plain and a TLS frontend for `pods`, once it found them
    /// all ready.
    pub fn in_front_of(pods: &[Gateway]) -> Balancer {
        let lb = Balancer::start(
            pods.iter()
                .map(|gw| Backend {
                    listeners: vec![gw.addr, gw.tls_addr],
                    admin: gw.admin,
                })
                .collect(),
        );
        eventually("every pod is in the balancer", || {
            (0..pods.len()).all(|i| lb.is_ready(i))
        });
        lb
    }

    pub fn routed(&self, backend: usize) -> u64 {
        self.routed[backend].load(Ordering::SeqCst)
    }

    /// Whether the last health check found `backend` ready.
    pub fn is_ready(&self, backend: usize) -> bool {
        self.ready[backend].load(Ordering::SeqCst)
    }
}

/// Whether `GET /readyz` on `admin` answers 200 within a second.
async fn readyz(admin: SocketAddr) -> bool {
    let check = async {
        let mut s = TcpStream::connect(admin).await.ok()?;
        s.write_all(b"GET /readyz HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut head = [0u8; 12];
        s.read_exact(&mut head).await.ok()?;
        Some(&head == b"HTTP/1.1 200")
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), check).await,
        Ok(Some(true))
    )
}
