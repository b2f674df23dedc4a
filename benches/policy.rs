//! Micro-benchmarks of the request path: applying a compiled policy to an upstream
//! response, Host -> vhost lookup, and path -> route lookup. `cargo bench --bench policy`.

mod support;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use pingora_secgw::policy::headers::ResponsePlan;
use pingora_secgw::routing::normalize_host;
use pingora_secgw::routing::paths::normalize_path;

fn apply(c: &mut Criterion) {
    let upstream = support::upstream_response();
    let default = support::plan(None);
    let production = support::plan(Some("production"));
    let origin = support::cors_origin();
    let empty = ResponsePlan::default();

    // Each iteration copies the upstream response and applies the policy to the
    // copy while it is hot in cache, as the proxy does with a response it just
    // parsed. "copy only" is the copy and its drop: subtract it from the others.
    let mut group = c.benchmark_group("apply");
    group.bench_function("copy only", |b| b.iter(|| black_box(upstream.clone())));
    group.bench_function("empty policy", |b| {
        b.iter(|| {
            let mut r = upstream.clone();
            empty.apply(&mut r, true);
            r
        })
    });
    group.bench_function("default policy", |b| {
        let v = support::route(&default);
        b.iter(|| {
            let mut r = upstream.clone();
            v.apply_response(&mut r, true, None);
            r
        })
    });
    group.bench_function("production policy", |b| {
        let v = support::route(&production);
        b.iter(|| {
            let mut r = upstream.clone();
            v.apply_response(&mut r, true, Some(&origin));
            r
        })
    });
    group.finish();
}

fn route(c: &mut Criterion) {
    let mut group = c.benchmark_group("route");
    for n in [1, 1_000, 10_000] {
        let (router, [exact, wildcard]) = support::router(n);
        group.bench_function(format!("{n} vhosts, exact"), |b| {
            b.iter(|| normalize_host(black_box(exact)).map(|h| router.route(&h)))
        });
        group.bench_function(format!("{n} vhosts, wildcard"), |b| {
            b.iter(|| normalize_host(black_box(wildcard)).map(|h| router.route(&h)))
        });
    }
    group.finish();
}

/// Normalizing the path and picking the route, as `request_filter` does.
fn paths(c: &mut Criterion) {
    let mut group = c.benchmark_group("paths");
    for n in [1, 100, 1_000] {
        let (plan, [exact, prefix, miss]) = support::routes_plan(n);
        let vhost = &plan.vhosts[0];
        let lookup = |path: &str| {
            normalize_path(black_box(path), false).map(|p| vhost.route_index(&p, None))
        };
        group.bench_function(format!("{n} routes, exact"), |b| b.iter(|| lookup(exact)));
        group.bench_function(format!("{n} routes, prefix"), |b| b.iter(|| lookup(prefix)));
        group.bench_function(format!("{n} routes, no match"), |b| b.iter(|| lookup(miss)));
    }
    group.bench_function("normalize /a/./b/../c//d", |b| {
        b.iter(|| normalize_path(black_box("/a/./b/../c//d"), false))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = apply, route, paths
}
criterion_main!(benches);
