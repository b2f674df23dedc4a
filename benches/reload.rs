//! How long a policy change takes to reach responses: from the moment the write
//! returns to the first response that carries the new header, through the real
//! binary. Run with `cargo bench --bench reload`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;

const ROUNDS: usize = 50;

fn main() {
    let policy =
        |v: usize| format!("policies:\n  p:\n    headers:\n      set: {{X-Version: \"{v}\"}}\n");
    let gw = Gateway::start_with_files(
        "listeners: [{address: \"{listen}\"}]\npolicy_files: policies\nvhosts: [{name: app, hosts: [\"*\"], respond: {}, policy: p}]\n",
        &[("policies/p.yaml", &policy(0))],
    );
    let client = client();
    let file = gw.dir.path().join("policies/p.yaml");
    let mut samples = Vec::with_capacity(ROUNDS);
    for v in 1..=ROUNDS {
        std::fs::write(&file, policy(v)).unwrap();
        let written = Instant::now();
        let want = v.to_string();
        loop {
            let r = reply(
                client
                    .get(gw.url("/"))
                    .header("Host", "app.test")
                    .send()
                    .unwrap(),
            );
            if r.all("x-version") == [want.as_str()] {
                samples.push(written.elapsed());
                break;
            }
            assert!(
                written.elapsed() < Duration::from_secs(10),
                "reload never landed"
            );
            std::thread::sleep(Duration::from_micros(500));
        }
        // Let the watcher settle so each round measures one change.
        std::thread::sleep(Duration::from_millis(50));
    }
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let pick = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    println!(
        "reload latency over {ROUNDS} policy edits: min {:.1} ms, p50 {:.1} ms, p90 {:.1} ms, max {:.1} ms (debounce 25 ms)",
        ms(samples[0]),
        ms(pick(0.5)),
        ms(pick(0.9)),
        ms(samples[samples.len() - 1])
    );
}
