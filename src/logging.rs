//! Logging: `env_logger`, with Pingora's reports of clients failing to send a
//! request head (or an HTTP/2 preface) lowered to debug. A client that stalls, disconnects or is cut off
//! by `client_header_timeout_ms` is not a gateway error; at `error` level a scanner
//! or a slow-header flood would fill the logs. Those failures are counted in
//! `secgw_requests_rejected_total` instead.
//!
//! CSP report lines (target `secgw::csp`) are JSON objects and are written bare,
//! one per line, for log shippers to parse.

use std::io::Write;

use log::{Level, Log, Metadata, Record};

use crate::reports::lines::TARGET as REPORTS;

struct Logger {
    inner: env_logger::Logger,
    /// The same filter, writing only the message.
    bare: env_logger::Logger,
}

/// Installs the logger; `RUST_LOG` filters as usual (`info` by default).
pub fn init() {
    let env = || env_logger::Env::default().default_filter_or("info");
    let inner = env_logger::Builder::from_env(env()).build();
    let bare = env_logger::Builder::from_env(env())
        .format(|buf, record| writeln!(buf, "{}", record.args()))
        .build();
    log::set_max_level(inner.filter());
    // Fails only when a logger is already installed (then that one stays).
    let _ = log::set_boxed_logger(Box::new(Logger { inner, bare }));
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.inner.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if record.target() == REPORTS {
            self.bare.log(record);
            return;
        }
        if record.level() == Level::Error && is_client_failure(record) {
            let demoted = Record::builder()
                .args(*record.args())
                .level(Level::Debug)
                .target(record.target())
                .module_path(record.module_path())
                .file(record.file())
                .line(record.line())
                .build();
            if self.inner.enabled(demoted.metadata()) {
                self.inner.log(&demoted);
            }
            return;
        }
        self.inner.log(record);
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

/// Pingora's proxy logs a downstream failure while reading a request head as
/// `Fail to proxy: Downstream <kind> context: while reading request headers ...`,
/// and its HTTP/2 server a client that never completed the preface as
/// `H2 handshake error ...`.
fn is_client_failure(record: &Record<'_>) -> bool {
    let target = record.target();
    if target.starts_with("pingora_proxy") {
        let text = record.args().to_string();
        text.starts_with("Fail to proxy: Downstream ")
            && text.contains("while reading request headers")
    } else if target.starts_with("pingora_core::apps") {
        record.args().to_string().starts_with("H2 handshake error")
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record_is_demoted(target: &str, text: &str) -> bool {
        is_client_failure(
            &Record::builder()
                .args(format_args!("{text}"))
                .level(Level::Error)
                .target(target)
                .build(),
        )
    }

    #[test]
    fn only_client_head_failures_are_demoted() {
        let head = "Fail to proxy: Downstream ReadError context: while reading request headers cause: timed out, downstream session type: h1";
        assert!(record_is_demoted("pingora_proxy", head));
        assert!(!record_is_demoted("pingora_secgw::proxy", head));
        assert!(!record_is_demoted(
            "pingora_proxy",
            "Fail to proxy: Upstream ConnectRefused context: ..."
        ));
        assert!(record_is_demoted(
            "pingora_core::apps",
            "H2 handshake error Downstream ReadError"
        ));
    }
}
