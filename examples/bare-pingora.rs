//! The benchmarks' control: bare Pingora, a `ProxyHttp` that only returns the
//! upstream peer, built with this project's Pingora version, features, allocator
//! and release profile (`cargo build --release --example bare-pingora`). What the
//! gateway costs is its CPU per request over this one's (benches/load.py).
//!
//! `bare-pingora LISTEN UPSTREAM`, e.g. `bare-pingora 127.0.0.1:8081 127.0.0.1:9000`.

use async_trait::async_trait;
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::Server;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_proxy::{http_proxy_service, ProxyHttp, Session};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Bare {
    upstream: String,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut (),
    ) -> pingora_error::Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(
            self.upstream.as_str(),
            false,
            String::new(),
        )))
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(upstream)) = (args.next(), args.next()) else {
        eprintln!("usage: bare-pingora LISTEN UPSTREAM");
        std::process::exit(2);
    };
    // The settings benches/load.py gives the gateway: one worker on a runtime
    // without work stealing, and a pool of kept-alive upstream connections.
    let conf = ServerConf {
        threads: 1,
        work_stealing: false,
        upstream_keepalive_pool_size: 128,
        ..ServerConf::default()
    };
    let mut server =
        Server::new_with_opt_and_conf(None::<pingora_core::server::configuration::Opt>, conf);
    server.bootstrap();
    let mut proxy = http_proxy_service(&server.configuration, Bare { upstream });
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    server.run_forever();
}
