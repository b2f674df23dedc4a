//! Assembling the Pingora server from a loaded configuration.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use log::{error, info};
use pingora_core::apps::HttpServerOptions;
use pingora_core::listeners::tls::TlsSettings;
use pingora_core::listeners::ListenerConfig;
use pingora_core::protocols::l4::stream::L4BufferSettings;
use pingora_core::server::configuration::Opt;
use pingora_core::server::ShutdownWatch;
use pingora_core::server::{RunArgs, Server};
use pingora_core::services::background::{background_service, BackgroundService};
use pingora_core::services::listening::Service;
use pingora_proxy::http_proxy;

use crate::access_log::reopen::Reopener;
use crate::admin::AdminApp;
use crate::compose::Composer;
use crate::config::LoadedConfig;
use crate::controller::Controller;
use crate::edge::EdgeApp;
use crate::lifecycle::Lifecycle;
use crate::metrics::metrics;
use crate::policy::Plan;
use crate::proxy::Gateway;
use crate::reload::Reloader;
use crate::rewrite::cache::NonceCache;
use crate::tls::SniResolver;

/// Pingora reads ahead into a 64 KiB buffer per connection by default: most of
/// an idle connection's memory. Request heads go to the HTTP parser's own buffer,
/// so the gateway reads without one (`benches/idle-memory.py`).
const READ_BUFFER: usize = 0;
const WRITE_BUFFER: usize = 1460;

/// Builds the server and the arguments to run it with (the signal handling of
/// [`crate::lifecycle`]); with `-t` Pingora's bootstrap exits here after its own checks.
pub fn build(mut opt: Opt, mut loaded: LoadedConfig, plan: Plan) -> (Server, RunArgs) {
    // The configuration is already loaded; Pingora would warn that it ignores `-c`.
    opt.conf = None;
    let vhost_count = plan.vhosts.len();
    let keepalive = plan.limits.keepalive_timeout;
    let plan = Arc::new(ArcSwap::from_pointee(plan));
    let kubernetes = loaded.gateway.kubernetes.clone();
    let lifecycle = Lifecycle::new(plan.clone(), kubernetes.enabled);
    let server_conf = std::mem::take(&mut loaded.server);
    let (listeners, admin) = (
        loaded.gateway.listeners.clone(),
        loaded.gateway.admin.clone(),
    );
    let (path, policies) = (loaded.path.clone(), loaded.policies.len());
    let composer = Composer::new(loaded, plan.clone());
    let reloader = Reloader::new(composer.clone());
    let mut server = Server::new_with_opt_and_conf(opt, server_conf);
    server.bootstrap();
    exit_when_a_listener_cannot_bind();

    let nonce_cache = Arc::new(NonceCache::new(metrics()));
    let gateway = Gateway::new(plan.clone(), nonce_cache);
    let mut proxy = http_proxy(&server.configuration, gateway);
    // CONNECT is refused by the gateway itself, so the 405 carries the policy;
    // Pingora's built-in refusal would bypass every filter.
    let mut options = HttpServerOptions::default();
    options.allow_connect_method_proxying = true;
    options.h2_idle_timeout = Some(keepalive);
    proxy.server_options = Some(options);
    let proxy = Arc::new(proxy);

    let mut acceptors = HashMap::new();
    let mut service_listeners = Vec::new();
    for listener in &listeners {
        let addr = listener.address;
        if listener.tls.is_some() {
            // rustls offers TLS 1.2 and 1.3 with AEAD suites only; ALPN prefers h2.
            let mut tls =
                TlsSettings::intermediate("", "").expect("TLS settings without files cannot fail");
            tls.set_cert_resolver(Arc::new(SniResolver::new(addr, plan.clone())));
            tls.enable_h2();
            acceptors.insert(addr, tls.build());
            info!("listening on https://{addr} (h2, http/1.1)");
        } else {
            info!("listening on http://{addr}");
        }
        service_listeners.push(
            ListenerConfig::tcp(addr.to_string())
                .l4_buffer(L4BufferSettings::new(READ_BUFFER, WRITE_BUFFER)),
        );
    }
    let app = EdgeApp::new(proxy, acceptors, plan.clone(), lifecycle.clone());
    let mut service = Service::new("pingora-secgw".to_string(), app);
    for l in service_listeners {
        service.add_listener(l);
    }
    info!(
        "loaded {} with {vhost_count} vhost(s) and {policies} named policies",
        path.display(),
    );
    server.add_service(service);
    server.add_service(background_service("config reload", reloader));
    if kubernetes.enabled {
        let base_dir = path.parent().unwrap_or(std::path::Path::new("."));
        let controller = Controller::new(composer, lifecycle.clone(), kubernetes, base_dir);
        server.add_service(background_service("kubernetes", controller));
    }
    server.add_service(background_service("allocator purge", AllocatorPurge));
    server.add_service(background_service("access log reopen", Reopener));

    if let Some(admin) = &admin {
        let public = listeners.iter().map(|l| l.address).collect();
        let mut service = Service::new(
            "pingora-secgw admin".to_string(),
            AdminApp::new(public, lifecycle.clone()),
        );
        service.add_tcp(&admin.address.to_string());
        info!(
            "admin (/metrics, /healthz, /readyz) on http://{}",
            admin.address
        );
        server.add_service(service);
    }
    let run_args = lifecycle.run_args();
    (server, run_args)
}

/// mimalloc returns freed memory to the OS only when a thread allocates or
/// collects; an idle gateway kept a burst's memory for good. Collecting once a
/// second purges what has been free for longer than mimalloc's delay, without
/// purging (and faulting back) pages that busy workers free and reuse at once,
/// which purging them immediately cost: about one madvise per eight proxied
/// requests (benches/idle-memory.py, docs/benchmarks.md).
struct AllocatorPurge;

#[async_trait]
impl BackgroundService for AllocatorPurge {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tick.tick() => {
                    // SAFETY: mi_collect takes no pointers; any thread may call it.
                    unsafe { libmimalloc_sys::mi_collect(false) };
                }
            }
        }
    }
}

/// Pingora retries a busy port for 30 s (a previous instance may still be letting
/// go of it), then panics in its service thread, which leaves the process running
/// and never ready. That one panic ends the process instead, with exit status 1.
fn exit_when_a_listener_cannot_bind() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if let Some(reason) = message.strip_prefix("Failed to build listeners: ") {
            error!("cannot listen, exiting: {reason}");
            eprintln!("pingora-secgw: cannot listen: {reason}");
            std::process::exit(1);
        }
        default_hook(info);
    }));
}
