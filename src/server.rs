//! Assembling the Pingora server from a loaded configuration.

use std::sync::Arc;

use arc_swap::ArcSwap;
use log::info;
use pingora_core::apps::HttpServerOptions;
use pingora_core::listeners::tls::TlsSettings;
use pingora_core::server::configuration::Opt;
use pingora_core::server::Server;
use pingora_core::services::background::background_service;
use pingora_core::services::listening::Service;
use pingora_proxy::http_proxy_service_with_name;

use crate::admin::AdminApp;
use crate::config::LoadedConfig;
use crate::policy::Plan;
use crate::proxy::Gateway;
use crate::reload::Reloader;
use crate::tls::SniResolver;

/// Builds the server; with `-t` Pingora's bootstrap exits here after its own checks.
pub fn build(mut opt: Opt, loaded: LoadedConfig, plan: Plan) -> Server {
    // The configuration is already loaded; Pingora would warn that it ignores `-c`.
    opt.conf = None;
    let vhost_count = plan.vhosts.len();
    let plan = Arc::new(ArcSwap::from_pointee(plan));
    let reloader = Reloader::new(&loaded, plan.clone());
    let mut server = Server::new_with_opt_and_conf(opt, loaded.server);
    server.bootstrap();

    let mut service = http_proxy_service_with_name(
        &server.configuration,
        Gateway::new(plan.clone()),
        "pingora-secgw",
    );
    if let Some(app) = service.app_logic_mut() {
        // CONNECT is refused by the gateway itself, so the 405 carries the policy;
        // Pingora's built-in refusal would bypass every filter.
        let mut options = HttpServerOptions::default();
        options.allow_connect_method_proxying = true;
        app.server_options = Some(options);
    }
    for listener in &loaded.gateway.listeners {
        let addr = listener.address;
        if listener.tls.is_some() {
            // rustls offers TLS 1.2 and 1.3 with AEAD suites only; ALPN prefers h2.
            let mut tls =
                TlsSettings::intermediate("", "").expect("TLS settings without files cannot fail");
            tls.set_cert_resolver(Arc::new(SniResolver::new(addr, plan.clone())));
            tls.enable_h2();
            service.add_tls_with_settings(&addr.to_string(), None, tls);
            info!("listening on https://{addr} (h2, http/1.1)");
        } else {
            service.add_tcp(&addr.to_string());
            info!("listening on http://{addr}");
        }
    }
    info!(
        "loaded {} with {vhost_count} vhost(s) and {} named policies",
        loaded.path.display(),
        loaded.policies.len()
    );
    server.add_service(service);
    server.add_service(background_service("config reload", reloader));

    if let Some(admin) = &loaded.gateway.admin {
        let public = loaded.gateway.listeners.iter().map(|l| l.address).collect();
        let mut service = Service::new("pingora-secgw admin".to_string(), AdminApp::new(public));
        service.add_tcp(&admin.address.to_string());
        info!(
            "admin (/metrics, /healthz, /readyz) on http://{}",
            admin.address
        );
        server.add_service(service);
    }
    server
}
