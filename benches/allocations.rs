//! Heap allocations per response when applying each policy, counted by a wrapping
//! global allocator (allocation counts, unlike times, are exact and repeatable).
//! `cargo bench --bench allocations`.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use pingora_http::ResponseHeader;
use pingora_secgw::policy::headers::ResponsePlan;
use pingora_secgw::routing::paths::normalize_path;

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const ROUNDS: u64 = 1_000;

/// Allocations per call of `f` on a fresh copy of the upstream response, the copy
/// itself not counted.
fn per_response(upstream: &ResponseHeader, f: impl Fn(&mut ResponseHeader)) -> f64 {
    // Warm up: first uses promote shared bytes and fill lazy statics.
    let mut r = upstream.clone();
    f(&mut r);
    let mut total = 0;
    for _ in 0..ROUNDS {
        let mut r = upstream.clone();
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        f(&mut r);
        total += ALLOCATIONS.load(Ordering::Relaxed) - before;
    }
    total as f64 / ROUNDS as f64
}

/// Allocations per call of `f`.
fn per_call(f: impl Fn()) -> f64 {
    f();
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..ROUNDS {
        f();
    }
    (ALLOCATIONS.load(Ordering::Relaxed) - before) as f64 / ROUNDS as f64
}

fn main() {
    let upstream = support::upstream_response();
    let default = support::plan(None);
    let production = support::plan(Some("production"));
    let origin = support::cors_origin();
    let empty = ResponsePlan::default();
    println!(
        "allocations per response: empty policy {:.1}, default policy {:.1}, production policy {:.1}",
        per_response(&upstream, |r| empty.apply(r, true)),
        per_response(&upstream, |r| support::route(&default).apply_response(r, true, None)),
        per_response(&upstream, |r| support::route(&production).apply_response(r, true, Some(&origin))),
    );
    let (routes, [exact, prefix, miss]) = support::routes_plan(1_000);
    let vhost = &routes.vhosts[0];
    let lookup = |path: &str| {
        let normal = normalize_path(std::hint::black_box(path), false).unwrap();
        std::hint::black_box(vhost.route_index(&normal, None));
    };
    println!(
        "allocations per route lookup (1,000 routes): exact {:.1}, prefix {:.1}, no match {:.1}, path to normalize {:.1}",
        per_call(|| lookup(exact)),
        per_call(|| lookup(prefix)),
        per_call(|| lookup(miss)),
        per_call(|| lookup("/svc0/./a/../b")),
    );
}
