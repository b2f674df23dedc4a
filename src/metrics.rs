//! Prometheus metrics.
//!
//! Label values come only from the configuration (vhost names, header names, remove
//! rules) plus the fixed [`UNMATCHED`] vhost label, never from a request. Labelled
//! counters are resolved when a plan is compiled, so the request path only bumps
//! atomics: no label lookup, no allocation.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus::core::Collector;
use prometheus::{
    Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry,
};

use crate::config::schema::ConflictMode;

/// The vhost label of requests no vhost took (unknown Host, failures before routing).
pub const UNMATCHED: &str = "_unmatched";

pub struct Metrics {
    registry: Registry,
    injected: IntCounterVec,
    duplicated: IntCounterVec,
    stripped: IntCounterVec,
    redirects: IntCounterVec,
    cors_preflights: IntCounterVec,
    requests: IntCounterVec,
    duration: HistogramVec,
    upstream_errors: IntCounterVec,
    config_reloads: IntCounterVec,
    config_last_reload_successful: IntGauge,
    config_last_reload_timestamp: Gauge,
    config_info: IntGaugeVec,
    connections_open: IntGauge,
    connections_refused: IntCounter,
    tls_handshake_failures: [IntCounter; HandshakeFailure::ALL.len()],
    requests_rejected: [IntCounter; Rejection::ALL.len()],
}

/// Registers `metric` and hands it back (the registry keeps a shared clone).
fn register<M: Collector + Clone + 'static>(registry: &Registry, metric: M) -> M {
    registry
        .register(Box::new(metric.clone()))
        .expect("unique metric");
    metric
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(
        registry,
        IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"),
    )
}

impl Metrics {
    fn new() -> Metrics {
        let r = Registry::new();
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "secgw_request_duration_seconds",
                "Time from the request's arrival to the end of its response, by vhost.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0,
            ]),
            &["vhost"],
        )
        .expect("valid metric");
        let duration = register(&r, duration);
        let config_last_reload_successful = IntGauge::new(
            "secgw_config_last_reload_successful",
            "1 if the last configuration load or reload succeeded, else 0.",
        )
        .expect("valid metric");
        let config_last_reload_successful = register(&r, config_last_reload_successful);
        let config_last_reload_timestamp = Gauge::new(
            "secgw_config_last_reload_timestamp_seconds",
            "Unix time of the last configuration load or reload attempt.",
        )
        .expect("valid metric");
        let config_last_reload_timestamp = register(&r, config_last_reload_timestamp);
        let config_info = IntGaugeVec::new(
            Opts::new(
                "secgw_config_info",
                "1 for the hash of the configuration being served.",
            ),
            &["hash"],
        )
        .expect("valid metric");
        let config_info = register(&r, config_info);
        let connections_open = register(
            &r,
            IntGauge::new(
                "secgw_connections_open",
                "Client connections open on the public listeners.",
            )
            .expect("valid metric"),
        );
        let connections_refused = register(
            &r,
            IntCounter::new(
                "secgw_connections_refused_total",
                "Client connections closed at once because max_connections were open.",
            )
            .expect("valid metric"),
        );
        let handshakes = counter_vec(
            &r,
            "secgw_tls_handshake_failures_total",
            "Client TLS handshakes that failed, by reason.",
            &["reason"],
        );
        let rejected = counter_vec(
            &r,
            "secgw_requests_rejected_total",
            "Request heads refused before routing, by reason: malformed (400), header_timeout (408).",
            &["reason"],
        );
        Metrics {
            connections_open,
            connections_refused,
            tls_handshake_failures: HandshakeFailure::ALL
                .map(|f| handshakes.with_label_values(&[f.as_str()])),
            requests_rejected: Rejection::ALL.map(|r| rejected.with_label_values(&[r.as_str()])),
            injected: counter_vec(
                &r,
                "secgw_headers_injected_total",
                "Managed headers written by the gateway.",
                &["vhost", "header"],
            ),
            duplicated: counter_vec(
                &r,
                "secgw_headers_duplicated_total",
                "Managed headers the upstream had already sent, by what the gateway did.",
                &["vhost", "header", "action"],
            ),
            stripped: counter_vec(
                &r,
                "secgw_headers_stripped_total",
                "Upstream response headers removed, by remove rule.",
                &["vhost", "header"],
            ),
            redirects: counter_vec(
                &r,
                "secgw_redirects_total",
                "HTTP to HTTPS redirects sent.",
                &["vhost", "status"],
            ),
            cors_preflights: counter_vec(
                &r,
                "secgw_cors_preflights_total",
                "CORS preflights answered by the gateway.",
                &["vhost", "result"],
            ),
            requests: counter_vec(
                &r,
                "secgw_requests_total",
                "Requests, by vhost and response status class.",
                &["vhost", "status_class"],
            ),
            duration,
            upstream_errors: counter_vec(
                &r,
                "secgw_upstream_errors_total",
                "Requests that failed because of the upstream, by kind.",
                &["vhost", "kind"],
            ),
            config_reloads: counter_vec(
                &r,
                "secgw_config_reloads_total",
                "Configuration reloads, by result.",
                &["result"],
            ),
            config_last_reload_successful,
            config_last_reload_timestamp,
            config_info,
            registry: r,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus::TextEncoder::new()
            .encode_utf8(&self.registry.gather(), &mut out)
            .expect("text encoding cannot fail");
        out
    }

    /// Records the configuration the process started with.
    pub fn config_loaded(&self, hash: u64, unix_time: f64) {
        for result in ["success", "failure"] {
            self.config_reloads.with_label_values(&[result]);
        }
        self.config_last_reload_successful.set(1);
        self.config_last_reload_timestamp.set(unix_time);
        self.config_info.reset();
        self.config_info
            .with_label_values(&[&format!("{hash:016x}")])
            .set(1);
    }

    /// Records a configuration swapped in by a reload.
    pub fn config_reloaded(&self, hash: u64, unix_time: f64) {
        self.config_loaded(hash, unix_time);
        self.config_reloads.with_label_values(&["success"]).inc();
    }

    /// Records a reload that was rejected (the previous configuration still serves).
    pub fn config_reload_failed(&self, unix_time: f64) {
        self.config_reloads.with_label_values(&["failure"]).inc();
        self.config_last_reload_successful.set(0);
        self.config_last_reload_timestamp.set(unix_time);
    }

    pub fn connection_opened(&self) {
        self.connections_open.inc();
    }

    pub fn connection_closed(&self) {
        self.connections_open.dec();
    }

    pub fn connection_refused(&self) {
        self.connections_refused.inc();
    }

    pub fn tls_handshake_failed(&self, reason: HandshakeFailure) {
        self.tls_handshake_failures[reason as usize].inc();
    }

    pub fn request_rejected(&self, reason: Rejection) {
        self.requests_rejected[reason as usize].inc();
    }

    /// Counters of one managed header of one vhost.
    pub fn header(&self, vhost: &str, header: &str, mode: ConflictMode) -> HeaderCounters {
        let action = match mode {
            ConflictMode::Override => "override",
            ConflictMode::Keep => "keep",
            ConflictMode::Append => "append",
        };
        HeaderCounters {
            injected: self.injected.with_label_values(&[vhost, header]),
            duplicated: self.duplicated.with_label_values(&[vhost, header, action]),
        }
    }

    /// The counter of one remove rule (its configured text) of one vhost.
    pub fn stripped(&self, vhost: &str, rule: &str) -> IntCounter {
        self.stripped.with_label_values(&[vhost, rule])
    }

    /// The (allowed, denied) preflight counters of one vhost.
    pub fn cors_preflights(&self, vhost: &str) -> (IntCounter, IntCounter) {
        (
            self.cors_preflights.with_label_values(&[vhost, "allowed"]),
            self.cors_preflights.with_label_values(&[vhost, "denied"]),
        )
    }

    /// Everything counted per request for one vhost.
    pub fn vhost(&self, vhost: &str) -> VhostMetrics {
        VhostMetrics {
            requests: STATUS_CLASSES.map(|c| self.requests.with_label_values(&[vhost, c])),
            duration: self.duration.with_label_values(&[vhost]),
            upstream_errors: UpstreamErrorKind::ALL
                .map(|k| self.upstream_errors.with_label_values(&[vhost, k.label()])),
            redirects: REDIRECT_STATUSES
                .map(|s| self.redirects.with_label_values(&[vhost, &s.to_string()])),
        }
    }
}

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

#[derive(Debug, Clone)]
pub struct HeaderCounters {
    pub injected: IntCounter,
    pub duplicated: IntCounter,
}

const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "none"];
const REDIRECT_STATUSES: [u16; 4] = [301, 302, 307, 308];

/// Why a request to the upstream failed; a fixed set, so labels stay bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamErrorKind {
    ConnectRefused,
    ConnectTimeout,
    ConnectError,
    ReadTimeout,
    WriteTimeout,
    ReadError,
    WriteError,
    Closed,
    InvalidResponse,
    Other,
}

impl UpstreamErrorKind {
    const ALL: [UpstreamErrorKind; 10] = [
        UpstreamErrorKind::ConnectRefused,
        UpstreamErrorKind::ConnectTimeout,
        UpstreamErrorKind::ConnectError,
        UpstreamErrorKind::ReadTimeout,
        UpstreamErrorKind::WriteTimeout,
        UpstreamErrorKind::ReadError,
        UpstreamErrorKind::WriteError,
        UpstreamErrorKind::Closed,
        UpstreamErrorKind::InvalidResponse,
        UpstreamErrorKind::Other,
    ];

    pub fn label(self) -> &'static str {
        match self {
            UpstreamErrorKind::ConnectRefused => "connect_refused",
            UpstreamErrorKind::ConnectTimeout => "connect_timeout",
            UpstreamErrorKind::ConnectError => "connect_error",
            UpstreamErrorKind::ReadTimeout => "read_timeout",
            UpstreamErrorKind::WriteTimeout => "write_timeout",
            UpstreamErrorKind::ReadError => "read_error",
            UpstreamErrorKind::WriteError => "write_error",
            UpstreamErrorKind::Closed => "closed",
            UpstreamErrorKind::InvalidResponse => "invalid_response",
            UpstreamErrorKind::Other => "other",
        }
    }
}

/// Why a client's TLS handshake failed; a fixed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// Not finished within `client_header_timeout_ms`.
    Timeout,
    /// The client closed or reset the connection.
    Closed,
    /// The bytes were not TLS (plain HTTP to a TLS port, a scanner).
    NotTls,
    /// Nothing in common: only TLS older than 1.2, or no shared cipher suite,
    /// key-exchange group or signature scheme.
    Incompatible,
    /// The client aborted with an alert (it did not trust the certificate, ...).
    AlertReceived,
    Other,
}

impl HandshakeFailure {
    const ALL: [HandshakeFailure; 6] = [
        HandshakeFailure::Timeout,
        HandshakeFailure::Closed,
        HandshakeFailure::NotTls,
        HandshakeFailure::Incompatible,
        HandshakeFailure::AlertReceived,
        HandshakeFailure::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HandshakeFailure::Timeout => "timeout",
            HandshakeFailure::Closed => "closed",
            HandshakeFailure::NotTls => "not_tls",
            HandshakeFailure::Incompatible => "incompatible",
            HandshakeFailure::AlertReceived => "alert_received",
            HandshakeFailure::Other => "other",
        }
    }
}

/// Why a request head was refused below the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    Malformed,
    HeaderTimeout,
}

impl Rejection {
    const ALL: [Rejection; 2] = [Rejection::Malformed, Rejection::HeaderTimeout];

    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::Malformed => "malformed",
            Rejection::HeaderTimeout => "header_timeout",
        }
    }
}

#[derive(Debug, Clone)]
pub struct VhostMetrics {
    requests: [IntCounter; 6],
    duration: Histogram,
    upstream_errors: [IntCounter; 10],
    redirects: [IntCounter; 4],
}

impl VhostMetrics {
    /// `status` 0 means no response was sent (the client went away first).
    pub fn request_done(&self, status: u16, elapsed: Duration) {
        let class = match status {
            100..=599 => usize::from(status / 100 - 1),
            _ => 5,
        };
        self.requests[class].inc();
        self.duration.observe(elapsed.as_secs_f64());
    }

    pub fn upstream_error(&self, kind: UpstreamErrorKind) {
        if let Some(i) = UpstreamErrorKind::ALL.iter().position(|k| *k == kind) {
            self.upstream_errors[i].inc();
        }
    }

    pub fn redirect(&self, status: u16) {
        if let Some(i) = REDIRECT_STATUSES.iter().position(|s| *s == status) {
            self.redirects[i].inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pre_resolved_counters_show_in_the_exposition() {
        let m = metrics();
        let v = m.vhost("unit-metrics");
        v.request_done(204, Duration::from_millis(3));
        v.request_done(0, Duration::from_millis(1));
        v.redirect(308);
        v.upstream_error(UpstreamErrorKind::ReadTimeout);
        let text = m.render();
        for line in [
            "secgw_requests_total{status_class=\"2xx\",vhost=\"unit-metrics\"} 1",
            "secgw_requests_total{status_class=\"none\",vhost=\"unit-metrics\"} 1",
            "secgw_requests_total{status_class=\"5xx\",vhost=\"unit-metrics\"} 0",
            "secgw_redirects_total{status=\"308\",vhost=\"unit-metrics\"} 1",
            "secgw_upstream_errors_total{kind=\"read_timeout\",vhost=\"unit-metrics\"} 1",
            "secgw_request_duration_seconds_count{vhost=\"unit-metrics\"} 2",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}");
        }
    }
}
