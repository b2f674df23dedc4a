//! Process replacement under load, counted: N graceful upgrades (`-u` + SIGQUIT)
//! of one gateway, then N rolling-update steps (SIGTERM, exit, fresh start) of
//! two gateways behind a TCP load balancer that follows `/readyz`. The load is
//! HTTP/1.1 and HTTP/2, plain and TLS, kept-alive and new connections
//! (tests/common/lifecycle.rs). Run with `benches/lifecycle.sh [N]`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Duration;

use common::lifecycle::{gateway, replace, upgrade, Balancer, Load, Report, Target};
use common::tls::TestPki;
use common::Upstream;

/// Kept-alive and new-connection workers of each kind.
const PER_KIND: usize = 2;

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(5);
    let upgrades = handovers(n);
    let rolling = rolling_update(n);
    println!("== {n} graceful upgrades under load\n{}", upgrades.table());
    println!(
        "== {n} rolling-update steps behind a balancer following /readyz\n{}",
        rolling.table()
    );
    for (what, report) in [("upgrades", &upgrades), ("rolling update", &rolling)] {
        let t = report.totals();
        println!(
            "{what}: {} requests sent, {} answered, {} failed, {} refused, {} unsent (sent again)",
            t.sent, t.ok, t.failed, t.refused, t.unsent
        );
    }
}

fn handovers(n: usize) -> Report {
    let upstream = Upstream::start("u1");
    let pki = TestPki::new();
    let mut gw = gateway(&upstream, &pki, 2);
    let mut load = Load::start(Target::of(&gw, &upstream, &pki), PER_KIND, "before");
    std::thread::sleep(Duration::from_secs(1));
    load.phase("handovers");
    for _ in 0..n {
        let status = upgrade(&mut gw);
        assert_eq!(status.code(), Some(0), "the old process failed");
    }
    load.phase("after");
    std::thread::sleep(Duration::from_secs(1));
    load.stop()
}

fn rolling_update(n: usize) -> Report {
    let upstream = Upstream::start("u1");
    let pki = TestPki::new();
    let mut pods = [gateway(&upstream, &pki, 2), gateway(&upstream, &pki, 2)];
    let lb = Balancer::in_front_of(&pods);
    let target = Target::through(&lb, &pods[0], &upstream, &pki);
    let mut load = Load::start(target, PER_KIND, "before");
    std::thread::sleep(Duration::from_secs(1));
    load.phase("replacements");
    for step in 0..n {
        let i = step % pods.len();
        let status = replace(&mut pods[i], || {});
        assert_eq!(status.code(), Some(0), "the old process failed");
        common::eventually("the balancer sees the new pod", || lb.is_ready(i));
    }
    load.phase("after");
    std::thread::sleep(Duration::from_secs(1));
    let report = load.stop();
    let unrouted = lb.unrouted.load(std::sync::atomic::Ordering::SeqCst);
    let unreachable = lb.unreachable.load(std::sync::atomic::Ordering::SeqCst);
    println!(
        "balancer: {unrouted} connections found no ready backend, {unreachable} found theirs unreachable"
    );
    report
}
