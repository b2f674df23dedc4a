//! Hostile configuration input: FIFOs where files belong, pathological YAML, huge
//! files, settings Pingora would panic on, a busy port. Each is refused at once with
//! the file, the key and the reason, at start, by `-t`, and on reload.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

const APP: &str = "listeners: [{address: \"{listen}\"}]\nadmin: {address: \"{admin}\"}\nvhosts:\n  - name: app\n    hosts: [\"*\"]\n    respond: {status: 200, body: \"ok\\n\"}\n";

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success());
}

/// Runs the binary with `args`, killed after 60 s so that a hang fails the test
/// instead of blocking the suite.
fn run_bounded(args: &[&std::ffi::OsStr]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("pingora-secgw {args:?} still running after 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn check(conf: &Path) -> (i32, String) {
    let out = run_bounded(&["-t".as_ref(), "-c".as_ref(), conf.as_os_str()]);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write_conf(dir: &Path, text: &str) -> std::path::PathBuf {
    let conf = dir.join("gw.yaml");
    std::fs::write(
        &conf,
        format!(
            "{}{}",
            pingora_settings(dir),
            text.replace("{listen}", "127.0.0.1:1")
                .replace("{admin}", "127.0.0.1:2")
        ),
    )
    .unwrap();
    conf
}

#[test]
fn fifos_in_the_configuration_are_refused_not_waited_on() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // gw.yaml itself.
    mkfifo(&d.join("fifo.yaml"));
    let (code, err) = check(&d.join("fifo.yaml"));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "{}: is a FIFO (named pipe); only regular files",
            d.join("fifo.yaml").display()
        )),
        "{err}"
    );
    // A policy file named directly, and certificates.
    mkfifo(&d.join("p.yaml"));
    let conf = write_conf(d, &format!("policy_files: p.yaml\n{APP}"));
    let (code, err) = check(&conf);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("is a FIFO"), "{err}");
    mkfifo(&d.join("cert.pem"));
    let conf = write_conf(
        d,
        &APP.replace(
            "{address: \"{listen}\"}",
            "{address: \"{listen}\", tls: {cert: cert.pem, key: cert.pem}}",
        ),
    );
    let (code, err) = check(&conf);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("listeners[0].tls.cert"), "{err}");
    assert!(err.contains("cert.pem: is a FIFO"), "{err}");
}

#[test]
fn a_fifo_swapped_in_is_rejected_on_reload_and_reloads_go_on() {
    let policy =
        |v: &str| format!("policies:\n  p:\n    headers:\n      set: {{X-Version: {v}}}\n");
    let gw = Gateway::start_with_files(
        &format!(
            "policy_files: policies\n{}",
            APP.replace("respond:", "policy: p\n    respond:")
        ),
        &[("policies/p.yaml", &policy("v1"))],
    );
    let file = gw.dir.path().join("policies/p.yaml");
    std::fs::remove_file(&file).unwrap();
    mkfifo(&file);
    let reloaded = |result: &str| {
        gw.metric(&format!(
            "secgw_config_reloads_total{{result=\"{result}\"}}"
        ))
        .unwrap()
    };
    eventually("the FIFO rejected", || reloaded("failure") >= 1.0);
    assert_eq!(gw.metric("secgw_config_last_reload_successful"), Some(0.0));
    assert_eq!(get(&gw, "x.test", "/", &[]).one("x-version"), "v1");
    assert!(gw.log().contains("p.yaml: is a FIFO"), "{}", gw.log());
    // The reloader is not stuck: a fixed file and SIGHUP are taken.
    std::fs::remove_file(&file).unwrap();
    std::fs::write(&file, policy("v2")).unwrap();
    Command::new("kill")
        .args(["-HUP", &gw.pid().to_string()])
        .status()
        .unwrap();
    eventually("v2 served", || {
        get(&gw, "x.test", "/", &[]).one("x-version") == "v2"
    });
    assert_eq!(gw.metric("secgw_config_last_reload_successful"), Some(1.0));
}

#[test]
fn pathological_yaml_and_huge_files_are_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let conf = write_conf(d, &format!("{APP}x: {}\n", "[".repeat(100_000)));
    let (code, err) = check(&conf);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("nesting deeper than 64 levels at line"),
        "{err}"
    );
    std::fs::write(
        d.join("big.yaml"),
        format!("policies: {{}}\n#{}\n", "x".repeat(5 * 1024 * 1024)),
    )
    .unwrap();
    let conf = write_conf(d, &format!("policy_files: big.yaml\n{APP}"));
    let (code, err) = check(&conf);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "{}: the file is larger than 4194304 bytes",
            d.join("big.yaml").display()
        )),
        "{err}"
    );
}

#[test]
fn settings_pingora_cannot_run_with_are_refused_by_key() {
    let dir = tempfile::tempdir().unwrap();
    for (extra, key) in [
        ("threads: 0\n", "threads: must be at least 1"),
        (
            "listener_tasks_per_fd: 0\n",
            "listener_tasks_per_fd: must be at least 1",
        ),
        ("threads: 100000\n", "threads: 100000 is more than 1024"),
        (
            "limits: {max_connections: 0}\n",
            "limits.max_connections: must be at least 1",
        ),
        (
            "limits: {client_header_timeout_ms: 0}\n",
            "limits.client_header_timeout_ms: must be at least 1",
        ),
        (
            "limits: {keepalive: 5}\n",
            "limits.keepalive: unknown field `keepalive`",
        ),
        (
            "ca_file: /nonexistent/ca.pem\n",
            "ca_file: /nonexistent/ca.pem: cannot read the file",
        ),
        ("ca_file: /dev/null\n", "ca_file: /dev/null: is a device"),
        (
            "daemon: true\nerror_log: /nonexistent/dir/err.log\n",
            "error_log: /nonexistent/dir/err.log: its directory does not exist",
        ),
    ] {
        // `threads` is already in the shared settings: replace it.
        let text = format!("{extra}{APP}");
        let conf = write_conf(dir.path(), &text);
        let conf_text = std::fs::read_to_string(&conf).unwrap().replacen(
            "threads: 1\n",
            "",
            usize::from(extra.starts_with("threads")),
        );
        std::fs::write(&conf, conf_text).unwrap();
        let (code, err) = check(&conf);
        assert_eq!(code, 1, "{extra}: {err}");
        assert!(
            err.contains(&format!("{}: {key}", conf.display())),
            "{extra}: {err}"
        );
    }
}

/// Pingora retries a busy port for 30 s (`tests/metrics.rs` checks that the gateway
/// is not ready meanwhile); a port that stays busy ends the process.
#[test]
fn a_port_that_stays_busy_ends_the_process_with_a_clear_error() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let conf = write_conf(dir.path(), &APP.replace("{listen}", &addr.to_string()));
    let out = run_bounded(&["-c".as_ref(), conf.as_os_str()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let last = err.lines().last().unwrap_or("");
    assert!(
        last.starts_with("pingora-secgw: cannot listen: ")
            && last.contains(&format!("{addr} still in use")),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}
