//! The CSP report collector's own work per request body, without the network:
//! parse, count against the route, and the log line's rate limit, for each
//! format browsers send and for a malformed body. The inverse of a figure is
//! the reports one core takes per second. `cargo bench --bench reports`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use log::{LevelFilter, Log, Metadata, Record};
use pingora_secgw::reports::Collector;

// The gateway's allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Takes report lines and drops them: the budget, not the sink, is measured.
struct Discard;

impl Log for Discard {
    fn enabled(&self, _: &Metadata) -> bool {
        true
    }
    fn log(&self, record: &Record) {
        black_box(record.args());
    }
    fn flush(&self) {}
}

static DISCARD: Discard = Discard;

const CHROMIUM_LEGACY: &str = r#"{"csp-report":{"document-uri":"https://shop.test/app/page?session=abc","referrer":"https://shop.test/","violated-directive":"script-src-elem","effective-directive":"script-src-elem","original-policy":"default-src 'self'; script-src 'self'; object-src 'none'; base-uri 'self'; report-uri /.well-known/csp-reports","disposition":"report","blocked-uri":"inline","line-number":42,"column-number":17,"source-file":"https://shop.test/app/page","status-code":200,"script-sample":"window.analytics = window.analytics || []"}}"#;

const REPORTING_API_BATCH: &str = r#"[{"age":12,"type":"csp-violation","url":"https://shop.test/app/a","user_agent":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36","body":{"blockedURL":"inline","columnNumber":3,"disposition":"report","documentURL":"https://shop.test/app/a","effectiveDirective":"script-src-elem","lineNumber":7,"originalPolicy":"script-src 'self'; report-uri /.well-known/csp-reports; report-to secgw-csp","referrer":"","sample":"","sourceFile":"https://shop.test/app/a","statusCode":200}},{"age":40,"type":"csp-violation","url":"https://shop.test/","user_agent":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36","body":{"blockedURL":"https://cdn.example/x.js","disposition":"enforce","documentURL":"https://shop.test/","effectiveDirective":"script-src-elem","originalPolicy":"default-src 'self'; report-uri /.well-known/csp-reports; report-to secgw-csp","referrer":"","statusCode":200}}]"#;

fn collector() -> Collector {
    Collector::new(
        "bench",
        &[
            ("_vhost", Some("/.well-known/csp-reports")),
            ("app", Some("/.well-known/csp-reports")),
        ],
        pingora_secgw::metrics::metrics(),
    )
    .expect("routes collect")
}

/// Route 1 serves `/app...`.
fn route_of(path: &str) -> Option<usize> {
    Some(usize::from(path.starts_with("/app")))
}

fn bench(c: &mut Criterion) {
    let _ = log::set_logger(&DISCARD);
    log::set_max_level(LevelFilter::Info);
    let collector = collector();
    let path = "/.well-known/csp-reports";
    let mut g = c.benchmark_group("report");
    for (name, body, reports) in [
        ("chromium legacy", CHROMIUM_LEGACY, 1),
        ("reporting api batch of 2", REPORTING_API_BATCH, 2),
    ] {
        g.throughput(Throughput::Elements(reports));
        g.bench_function(name, |b| {
            b.iter(|| {
                let n = collector.receive(path, black_box(body.as_bytes()), route_of);
                assert_eq!(n, Ok(reports as usize));
            })
        });
    }
    g.throughput(Throughput::Elements(1));
    let malformed = &CHROMIUM_LEGACY[..CHROMIUM_LEGACY.len() - 1];
    g.bench_function("malformed", |b| {
        b.iter(|| collector.receive(path, black_box(malformed.as_bytes()), route_of))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
