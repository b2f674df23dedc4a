//! Zero-drop lifecycle on the real binary: graceful upgrade (`-u` + SIGQUIT)
//! under load, the SIGTERM drain, and a rolling update behind a load balancer
//! that follows `/readyz`. The load is real HTTP/1.1 and HTTP/2, plain and TLS,
//! kept-alive and new connections (tests/common/lifecycle.rs).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::Bytes;
use common::lifecycle::{gateway, replace, upgrade, Balancer, Kind, Load, Target, HOST};
use common::tls::{https_client, TestPki};
use common::{assert_raw_default_headers, eventually, head_of, read_until_closed, Upstream};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};

const HANDOVERS: usize = 2;

/// One test at a time: each runs gateways under load, and on two cores they would
/// starve each other's health checks.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A GET of `url` on a new connection of `client`, in a thread: (status, body).
/// Plain URLs name the gateway by address, so they get `Host: app.test`.
fn slow_request(
    client: reqwest::blocking::Client,
    url: String,
) -> std::thread::JoinHandle<(u16, String)> {
    std::thread::spawn(move || {
        let mut req = client.get(&url);
        if url.starts_with("http:") {
            req = req.header("Host", HOST);
        }
        let r = req.send().unwrap();
        (r.status().as_u16(), r.text().unwrap())
    })
}

/// Every kind of client got answers in every phase, none failed or was refused,
/// and the upstream saw exactly the answered requests (plus `others`).
fn assert_nothing_lost(report: &common::lifecycle::Report, upstream: &Upstream, others: u64) {
    println!("{}", report.table());
    let total = report.totals();
    assert_eq!((total.failed, total.refused), (0, 0), "{}", report.table());
    assert_eq!(
        upstream.hits() as u64,
        total.ok + others,
        "{}",
        report.table()
    );
    for row in &report.rows {
        assert!(row.ok > 0, "no answer in a phase:\n{}", report.table());
    }
}

#[test]
fn a_graceful_upgrade_under_load_loses_no_request() {
    let _serial = serial();
    let upstream = Upstream::start("u1");
    let pki = TestPki::new();
    let mut gw = gateway(&upstream, &pki, 2);
    let mut load = Load::start(Target::of(&gw, &upstream, &pki), 2, "before");
    std::thread::sleep(Duration::from_millis(500));
    for n in 1..=HANDOVERS {
        // Slow answers on HTTP/1.1 and on HTTP/2, in flight when the old process
        // gets SIGQUIT and still running when it stops accepting.
        let h1 = slow_request(common::client(), format!("http://{}/slow/6500", gw.addr));
        let h2 = slow_request(
            https_client(&pki.ca_pem(), true, &[(HOST, gw.tls_addr)]),
            format!("https://{HOST}:{}/slow/6500", gw.tls_addr.port()),
        );
        std::thread::sleep(Duration::from_millis(300));
        load.phase(&format!("handover {n}"));
        let status = upgrade(&mut gw);
        assert_eq!(status.code(), Some(0), "{}", gw.log());
        load.phase(&format!("after handover {n}"));
        let body = format!("hello from upstream {}\n", upstream.name);
        assert_eq!(h1.join().unwrap(), (200, body.clone()));
        assert_eq!(h2.join().unwrap(), (200, body));
        std::thread::sleep(Duration::from_millis(500));
    }
    let report = load.stop();
    assert_nothing_lost(&report, &upstream, 2 * HANDOVERS as u64);
    // The last process serves: the listeners and the admin socket came with it.
    assert_eq!(gw.admin_get("/readyz"), (200, "ready\n".into()));
    let (_, metrics) = gw.admin_get("/metrics");
    let served: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("secgw_requests_total{") && l.contains("status_class=\"2xx\""))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum();
    assert!(served > 0.0, "the last process served nothing:\n{metrics}");
}

#[test]
fn sigterm_fails_readiness_drains_connections_then_exits() {
    let _serial = serial();
    let upstream = Upstream::start("u1");
    let pki = TestPki::new();
    let mut gw = gateway(&upstream, &pki, 4);
    let get = format!("GET / HTTP/1.1\r\nHost: {HOST}\r\n\r\n");
    let draining = |gw: &common::Gateway| TcpStream::connect(gw.addr).is_ok();

    // A kept-alive HTTP/1.1 connection, an HTTP/2 connection and a slow request,
    // all opened before SIGTERM.
    let mut kept = TcpStream::connect(gw.addr).unwrap();
    kept.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    kept.write_all(get.as_bytes()).unwrap();
    let first = read_response(&mut kept);
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    assert!(!first.contains("Connection: close"), "{first}");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (mut h2, h2_connection) = runtime.block_on(h2_connect(gw.tls_addr, &pki));
    assert_eq!(runtime.block_on(h2_get(&mut h2)), 200);
    let slow = slow_request(common::client(), format!("http://{}/slow/4000", gw.addr));
    std::thread::sleep(Duration::from_millis(300));

    gw.signal(libc::SIGTERM);
    eventually("/readyz fails", || gw.admin_get("/readyz").0 == 503);
    assert_eq!(
        gw.admin_get("/readyz"),
        (503, "not ready: shutting down\n".into())
    );
    assert_eq!(gw.admin_get("/healthz"), (200, "ok\n".into()));

    // The HTTP/2 connection got its GOAWAY when the drain began: it ends cleanly,
    // with no stream refused, while the listeners still accept.
    let closed = runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(10), h2_connection).await });
    assert!(
        matches!(closed, Ok(Ok(Ok(())))),
        "the HTTP/2 connection did not end cleanly: {closed:?}"
    );
    assert!(draining(&gw), "the drain was over before the GOAWAY");
    assert!(runtime.block_on(h2.ready()).is_err());

    // Still serving: the kept-alive connection's next answer closes it ...
    kept.write_all(get.as_bytes()).unwrap();
    let drained = read_until_closed(&mut kept);
    assert!(drained.starts_with("HTTP/1.1 200"), "{drained}");
    assert_eq!(
        head_of(&drained).matches("\r\nConnection: close").count(),
        1
    );
    assert_raw_default_headers(head_of(&drained));
    // ... a new connection is accepted and answered, once ...
    let fresh = common::raw_exchange(gw.addr, get.as_bytes());
    assert!(fresh.starts_with("HTTP/1.1 200"), "{fresh}");
    assert!(fresh.contains("\r\nConnection: close\r\n"), "{fresh}");
    assert!(fresh.ends_with("hello from upstream u1\n"), "{fresh}");
    // ... an HTTP/2 connection opened now is served, with no GOAWAY before the
    // listeners close (one right after its handshake would race its first
    // streams) ...
    let (mut late, late_connection) = runtime.block_on(h2_connect(gw.tls_addr, &pki));
    assert_eq!(runtime.block_on(h2_get(&mut late)), 200);
    assert!(runtime.block_on(late.ready()).is_ok());
    assert!(!late_connection.is_finished());
    // ... and a request head that is still arriving when they close is answered.
    let mut partial = TcpStream::connect(gw.addr).unwrap();
    partial
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    partial
        .write_all(format!("GET / HTTP/1.1\r\nHost: {HOST}\r\n").as_bytes())
        .unwrap();
    assert!(draining(&gw), "the drain was over before the checks");

    // The request in flight at SIGTERM completes.
    assert_eq!(
        slow.join().unwrap(),
        (200, "hello from upstream u1\n".into())
    );

    // After the drain the listeners close, so connections are refused (a load
    // balancer tries another backend), ...
    eventually("the listeners close", || {
        TcpStream::connect(gw.addr)
            .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused)
    });
    // ... the HTTP/2 connection accepted during the drain gets its GOAWAY and
    // ends cleanly, the arriving head is answered, and the process exits 0.
    let closed = runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(10), late_connection).await });
    assert!(matches!(closed, Ok(Ok(Ok(())))), "{closed:?}");
    partial.write_all(b"\r\n").unwrap();
    let answered = read_until_closed(&mut partial);
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
    assert!(answered.contains("\r\nConnection: close\r\n"), "{answered}");
    let status = gw.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{}", gw.log());
    let log = gw.log();
    assert!(
        log.contains(
            "SIGTERM: /readyz is 503; serving 4s more with connections drained, then stopping"
        ),
        "{log}"
    );
}

/// One HTTP response on a kept-alive connection (the upstream's answers carry a
/// Content-Length).
fn read_response(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&out));
        out.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&out).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .map_or(0, |v| v.trim().parse().unwrap());
            if body.len() >= length {
                return text;
            }
        }
    }
}

type H2Sender = hyper::client::conn::http2::SendRequest<Empty<Bytes>>;

async fn h2_connect(
    addr: std::net::SocketAddr,
    pki: &TestPki,
) -> (H2Sender, tokio::task::JoinHandle<Result<(), hyper::Error>>) {
    let config = common::tls::client_config(&pki.ca_pem(), &[b"h2"]);
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(HOST.try_into().unwrap(), tcp)
        .await
        .unwrap();
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    (sender, tokio::spawn(conn))
}

async fn h2_get(sender: &mut H2Sender) -> u16 {
    let req = hyper::Request::get(format!("https://{HOST}/"))
        .body(Empty::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    resp.into_body().collect().await.unwrap();
    status
}

#[test]
fn a_rolling_update_behind_a_readiness_following_balancer_loses_no_request() {
    let _serial = serial();
    let upstream = Upstream::start("u1");
    let pki = TestPki::new();
    let mut pods = [gateway(&upstream, &pki, 2), gateway(&upstream, &pki, 2)];
    let lb = Balancer::in_front_of(&pods);
    let target = Target::through(&lb, &pods[0], &upstream, &pki);
    let mut load = Load::start(target, 2, "both pods");
    std::thread::sleep(Duration::from_millis(500));
    for (i, pod) in pods.iter_mut().enumerate() {
        load.phase(&format!("pod {i} replaced"));
        let mut before = 0;
        let status = replace(pod, || before = lb.routed(i));
        assert_eq!(status.code(), Some(0), "{}", pod.log());
        eventually("the balancer sees the new pod", || lb.is_ready(i));
        load.phase(&format!("after pod {i}"));
        std::thread::sleep(Duration::from_millis(700));
        assert!(lb.routed(i) > before, "the new pod {i} got no connection");
    }
    let report = load.stop();
    assert_nothing_lost(&report, &upstream, 0);
    let unrouted = lb.unrouted.load(std::sync::atomic::Ordering::SeqCst);
    let unreachable = lb.unreachable.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!((unrouted, unreachable), (0, 0));
    // Every kind of client used the balancer throughout.
    for kind in Kind::ALL {
        assert!(report.rows.iter().any(|r| r.kind == kind && r.ok > 0));
    }
}
