//! pingora-secgw: an edge gateway on Pingora that puts the right security headers on
//! every response.
//!
//! The flow: [`config`] reads and checks YAML -> [`policy`] compiles it into an
//! immutable [`policy::Plan`] (vhost -> route -> policy) -> [`proxy`] applies the plan
//! in Pingora's hooks, with [`routing`] picking the vhost and the route and
//! [`forwarded`] deciding what a client may claim.

pub mod access_log;
pub mod admin;
pub mod audit;
pub mod check;
pub mod cluster;
pub mod codes;
pub mod compose;
pub mod config;
pub mod controller;
pub mod edge;
pub mod flood;
pub mod forwarded;
pub mod framing;
pub mod lifecycle;
pub mod logging;
pub mod metrics;
pub mod observatory;
pub mod pem;
pub mod policy;
pub mod proxy;
pub mod reload;
pub mod reports;
pub mod rewrite;
pub mod routing;
pub mod server;
pub mod tls;
