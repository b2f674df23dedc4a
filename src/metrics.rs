//! Prometheus metrics.
//!
//! Label values come only from the configuration (vhost and route names, header
//! names, remove rules) plus the fixed [`UNMATCHED`] and [`VHOST_ROUTE`] labels,
//! never from a request. Labelled
//! counters are resolved when a plan is compiled, so the request path only bumps
//! atomics: no label lookup, no allocation.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus::core::Collector;
use prometheus::{
    Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry,
};

use strum::{EnumCount, IntoStaticStr, VariantArray};

use crate::config::schema::ConflictMode;

/// The vhost label of requests no vhost took (unknown Host, failures before routing).
pub const UNMATCHED: &str = "_unmatched";
/// The route label of a vhost's own settings, which serve paths no route matches.
pub const VHOST_ROUTE: &str = "_vhost";

/// The labels that say whose policy handled a request.
#[derive(Debug, Clone, Copy)]
pub struct RouteLabels<'a> {
    pub vhost: &'a str,
    pub route: &'a str,
}

pub struct Metrics {
    registry: Registry,
    injected: IntCounterVec,
    duplicated: IntCounterVec,
    stripped: IntCounterVec,
    redirects: IntCounterVec,
    cors_preflights: IntCounterVec,
    requests: IntCounterVec,
    duration: HistogramVec,
    upstream_duration: HistogramVec,
    upstream_errors: IntCounterVec,
    access_log_dropped: IntCounter,
    config_reloads: IntCounterVec,
    config_last_reload_successful: IntGauge,
    config_last_reload_timestamp: Gauge,
    config_info: IntGaugeVec,
    connections_open: IntGauge,
    connections_refused: [IntCounter; Refusal::COUNT],
    connections_cut: [IntCounter; Closure::COUNT],
    tls_handshake_failures: [IntCounter; HandshakeFailure::COUNT],
    requests_rejected: [IntCounter; Rejection::COUNT],
    csp_nonced: IntCounterVec,
    csp_nonce_skipped: IntCounterVec,
    csp_nonce_failed: IntCounterVec,
    csp_nonce_cache: IntCounterVec,
    nonce_cache_bytes: IntGauge,
    nonce_cache_templates: IntGauge,
    csp_reports: IntCounterVec,
    csp_reports_rejected: IntCounterVec,
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
    /// A registry of its own. The serving process has one, [`metrics`], which its
    /// plans count into; `check` compiles against a fresh one.
    pub fn new() -> Metrics {
        let r = Registry::new();
        let seconds = |name: &str, help: &str| {
            let buckets = vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0,
            ];
            let opts = HistogramOpts::new(name, help).buckets(buckets);
            register(
                &r,
                HistogramVec::new(opts, &["vhost", "route"]).expect("valid metric"),
            )
        };
        let duration = seconds(
            "secgw_request_duration_seconds",
            "Time from the request's arrival to the end of its response, by vhost and route.",
        );
        let upstream_duration = seconds(
            "secgw_upstream_duration_seconds",
            "Time from choosing the upstream (before connecting) to the last byte of its \
             response, by vhost and route.",
        );
        let access_log_dropped = register(
            &r,
            IntCounter::new(
                "secgw_access_log_dropped_total",
                "Access-log lines dropped because their writer's buffer was full (or the file \
                 could not be written).",
            )
            .expect("valid metric"),
        );
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
        let connections_refused = counter_vec(
            &r,
            "secgw_connections_refused_total",
            "Client connections closed at accept, by the limit they were over: \
             max_connections, max_connections_per_ip.",
            &["reason"],
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
            "Requests refused by the connection layer, by reason: malformed (400: a head, or a chunked body, \
             outside HTTP/1.1's grammar), header_timeout (408), body_timeout (408 on HTTP/1, a reset \
             HTTP/2 stream), send_timeout (a response the client stopped reading: the connection \
             closed, or the HTTP/2 stream reset).",
            &["reason"],
        );
        Metrics {
            connections_open,
            connections_refused: labelled::<Refusal, _>(&connections_refused, &[]),
            connections_cut: labelled::<Closure, _>(
                &counter_vec(
                    &r,
                    "secgw_connections_closed_total",
                    "Client connections the gateway closed for abuse, by reason: \
                     h2_control_flood (more HTTP/2 control frames than the budget).",
                    &["reason"],
                ),
                &[],
            ),
            tls_handshake_failures: labelled::<HandshakeFailure, _>(&handshakes, &[]),
            requests_rejected: labelled::<Rejection, _>(&rejected, &[]),
            injected: counter_vec(
                &r,
                "secgw_headers_injected_total",
                "Managed headers written by the gateway.",
                &["vhost", "route", "header"],
            ),
            duplicated: counter_vec(
                &r,
                "secgw_headers_duplicated_total",
                "Managed headers the upstream had already sent, by what the gateway did.",
                &["vhost", "route", "header", "action"],
            ),
            stripped: counter_vec(
                &r,
                "secgw_headers_stripped_total",
                "Upstream response headers removed, by remove rule.",
                &["vhost", "route", "header"],
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
                "Requests, by vhost, route and response status class.",
                &["vhost", "route", "status_class"],
            ),
            duration,
            upstream_duration,
            access_log_dropped,
            upstream_errors: counter_vec(
                &r,
                "secgw_upstream_errors_total",
                "Requests that failed because of the upstream, by kind.",
                &["vhost", "route", "kind"],
            ),
            config_reloads: counter_vec(
                &r,
                "secgw_config_reloads_total",
                "Configuration reloads, by result.",
                &["result"],
            ),
            csp_nonced: counter_vec(
                &r,
                "secgw_csp_nonce_responses_total",
                "HTML responses given a fresh CSP nonce.",
                &["vhost", "route"],
            ),
            csp_nonce_skipped: counter_vec(
                &r,
                "secgw_csp_nonce_skipped_total",
                "HTML responses passed through without a nonce (ambiguous_markup, parser_limit: without nonces from that point on), by reason.",
                &["vhost", "route", "reason"],
            ),
            csp_nonce_failed: counter_vec(
                &r,
                "secgw_csp_nonce_failures_total",
                "Nonced responses cut short because their body could not be rewritten.",
                &["vhost", "route"],
            ),
            csp_nonce_cache: counter_vec(
                &r,
                "secgw_csp_nonce_cache_total",
                "Nonced responses on routes with csp_nonce_cache, by what the template cache \
                 did: hit (sent from a template), miss (no template), divergence (the body \
                 left its template and was rewritten).",
                &["vhost", "route", "result"],
            ),
            nonce_cache_bytes: register(
                &r,
                IntGauge::new(
                    "secgw_nonce_cache_bytes",
                    "Bytes held by the nonce template cache (pages, offsets and keys).",
                )
                .expect("valid metric"),
            ),
            nonce_cache_templates: register(
                &r,
                IntGauge::new(
                    "secgw_nonce_cache_templates",
                    "Pages held by the nonce template cache.",
                )
                .expect("valid metric"),
            ),
            csp_reports: counter_vec(
                &r,
                "secgw_csp_reports_total",
                "CSP violation reports received by the gateway's collector, by the route that \
                 served the document, effective directive and disposition.",
                &["vhost", "route", "directive", "disposition"],
            ),
            csp_reports_rejected: counter_vec(
                &r,
                "secgw_csp_reports_rejected_total",
                "Requests to the CSP report collector refused, by reason.",
                &["vhost", "reason"],
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
    pub fn config_loaded(&self, hash: u64) {
        for result in ["success", "failure"] {
            self.config_reloads.with_label_values(&[result]);
        }
        self.config_last_reload_successful.set(1);
        self.config_last_reload_timestamp.set(unix_now());
        self.config_info.reset();
        self.config_info
            .with_label_values(&[&format!("{hash:016x}")])
            .set(1);
    }

    /// Records a configuration swapped in by a reload.
    pub fn config_reloaded(&self, hash: u64) {
        self.config_loaded(hash);
        self.config_reloads.with_label_values(&["success"]).inc();
    }

    /// Records a reload that was rejected (the previous configuration still serves).
    pub fn config_reload_failed(&self) {
        self.config_reloads.with_label_values(&["failure"]).inc();
        self.config_last_reload_successful.set(0);
        self.config_last_reload_timestamp.set(unix_now());
    }

    pub fn connection_opened(&self) {
        self.connections_open.inc();
    }

    pub fn connection_closed(&self) {
        self.connections_open.dec();
    }

    pub fn connection_cut(&self, reason: Closure) {
        self.connections_cut[reason as usize].inc();
    }

    pub fn connection_refused(&self, reason: Refusal) {
        self.connections_refused[reason as usize].inc();
    }

    pub fn tls_handshake_failed(&self, reason: HandshakeFailure) {
        self.tls_handshake_failures[reason as usize].inc();
    }

    pub fn access_log_dropped(&self) {
        self.access_log_dropped.inc();
    }

    pub fn request_rejected(&self, reason: Rejection) {
        self.requests_rejected[reason as usize].inc();
    }

    /// Counters of one managed header of one route.
    pub fn header(&self, at: RouteLabels, header: &str, mode: ConflictMode) -> HeaderCounters {
        let action: &'static str = mode.into();
        HeaderCounters {
            injected: self
                .injected
                .with_label_values(&[at.vhost, at.route, header]),
            duplicated: self
                .duplicated
                .with_label_values(&[at.vhost, at.route, header, action]),
        }
    }

    /// The counter of one remove rule (its configured text) of one route.
    pub fn stripped(&self, at: RouteLabels, rule: &str) -> IntCounter {
        self.stripped.with_label_values(&[at.vhost, at.route, rule])
    }

    /// The (allowed, denied) preflight counters of one vhost.
    pub fn cors_preflights(&self, vhost: &str) -> (IntCounter, IntCounter) {
        (
            self.cors_preflights.with_label_values(&[vhost, "allowed"]),
            self.cors_preflights.with_label_values(&[vhost, "denied"]),
        )
    }

    /// The redirect counters of one vhost.
    pub fn redirects(&self, vhost: &str) -> RedirectCounters {
        RedirectCounters(
            REDIRECT_STATUSES.map(|s| self.redirects.with_label_values(&[vhost, &s.to_string()])),
        )
    }

    pub fn csp_nonced(&self, at: RouteLabels) -> IntCounter {
        self.csp_nonced.with_label_values(&[at.vhost, at.route])
    }

    pub fn csp_nonce_failed(&self, at: RouteLabels) -> IntCounter {
        self.csp_nonce_failed
            .with_label_values(&[at.vhost, at.route])
    }

    pub fn csp_nonce_skipped(&self, at: RouteLabels) -> [IntCounter; NonceSkip::COUNT] {
        labelled::<NonceSkip, _>(&self.csp_nonce_skipped, &[at.vhost, at.route])
    }

    pub fn csp_nonce_cache(&self, at: RouteLabels) -> [IntCounter; CacheResult::COUNT] {
        labelled::<CacheResult, _>(&self.csp_nonce_cache, &[at.vhost, at.route])
    }

    /// The nonce template cache's (bytes, templates) gauges.
    pub fn nonce_cache(&self) -> (IntGauge, IntGauge) {
        (
            self.nonce_cache_bytes.clone(),
            self.nonce_cache_templates.clone(),
        )
    }

    /// The counter of one kind of report; created on first use, so the
    /// exposition lists only the directives that were reported.
    /// `secgw_csp_reports_total`, whose cells the report collector resolves on
    /// first use (most routes never receive a report).
    pub fn csp_reports(&self) -> CspReportCounters {
        CspReportCounters(self.csp_reports.clone())
    }

    pub fn csp_reports_rejected(&self, vhost: &str) -> [IntCounter; ReportRejection::COUNT] {
        labelled::<ReportRejection, _>(&self.csp_reports_rejected, &[vhost])
    }

    /// Everything counted per request for one route.
    pub fn route(&self, at: RouteLabels) -> RouteMetrics {
        let labels = [at.vhost, at.route];
        RouteMetrics {
            requests: STATUS_CLASSES
                .map(|c| self.requests.with_label_values(&[at.vhost, at.route, c])),
            duration: self.duration.with_label_values(&labels),
            upstream_duration: self.upstream_duration.with_label_values(&labels),
            upstream_errors: labelled::<UpstreamErrorKind, _>(&self.upstream_errors, &labels),
        }
    }
}

/// One counter per variant of `E`, whose labels follow `fixed`.
fn labelled<E, const N: usize>(vec: &IntCounterVec, fixed: &[&str]) -> [IntCounter; N]
where
    E: VariantArray + Into<&'static str> + Copy,
{
    std::array::from_fn(|i| {
        let mut labels = fixed.to_vec();
        labels.push(E::VARIANTS[i].into());
        vec.with_label_values(&labels)
    })
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

/// `secgw_csp_reports_total` of one registry.
#[derive(Debug, Clone)]
pub struct CspReportCounters(IntCounterVec);

impl CspReportCounters {
    pub fn get(
        &self,
        at: RouteLabels,
        directive: ReportDirective,
        disposition: Disposition,
    ) -> IntCounter {
        self.0
            .with_label_values(&[at.vhost, at.route, directive.into(), disposition.into()])
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

/// The redirects of one vhost, by status.
#[derive(Debug, Clone)]
pub struct RedirectCounters([IntCounter; 4]);

impl RedirectCounters {
    pub fn inc(&self, status: u16) {
        if let Some(i) = REDIRECT_STATUSES.iter().position(|s| *s == status) {
            self.0[i].inc();
        }
    }
}

/// Why a request to the upstream failed; a fixed set, so labels stay bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumCount, VariantArray, IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
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

/// Why a client's TLS handshake failed; a fixed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumCount, VariantArray, IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
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

/// Why the gateway closed a client connection it had accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumCount, VariantArray, IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum Closure {
    H2ControlFlood,
}

/// Which limit a connection refused at accept was over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumCount, VariantArray, IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum Refusal {
    MaxConnections,
    MaxConnectionsPerIp,
}

/// Why a request head was refused below the proxy, or by the proxy before routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumCount, VariantArray, IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum Rejection {
    Malformed,
    HeaderTimeout,
    /// A request body that stalled for `client_body_timeout_ms`.
    BodyTimeout,
    /// A response the client stopped reading (or, on HTTP/2, gave no window for)
    /// for `send_timeout_ms`.
    SendTimeout,
}

/// Why an HTML response on a `csp_nonce` route kept its body and got no nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumCount, VariantArray, IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum NonceSkip {
    /// A Content-Encoding the gateway cannot decode.
    Encoding,
    /// `Cache-Control: no-transform`.
    NoTransform,
    /// A charset that is not ASCII-compatible (UTF-16 ..., or a UTF-16 byte order
    /// mark at the start of the body), which the rewriter cannot parse.
    Charset,
    /// Markup after which the rewriter and a browser may read tags differently
    /// (`<svg/>`, `<math>`, CDATA, an ESC byte, `<select><xmp>` ...): nothing
    /// after it got a nonce, and the rest of the page passed as it came.
    AmbiguousMarkup,
    /// A tag larger than the parser's memory limit: the rest of the page passed
    /// as it came, without nonces.
    ParserLimit,
}

/// What the nonce template cache did for one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumCount, VariantArray, IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum CacheResult {
    /// The body was its template's page, byte for byte.
    Hit,
    /// No template for its key.
    Miss,
    /// The body left its template's page, and the rest went through the rewriter.
    Divergence,
}

/// The effective directive of a CSP violation report: the CSP3 directives that
/// can be violated, and `other` for anything else a report claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumCount, VariantArray, IntoStaticStr)]
#[strum(serialize_all = "kebab-case")]
pub enum ReportDirective {
    ChildSrc,
    ConnectSrc,
    DefaultSrc,
    FencedFrameSrc,
    FontSrc,
    FrameSrc,
    ImgSrc,
    ManifestSrc,
    MediaSrc,
    ObjectSrc,
    PrefetchSrc,
    ScriptSrc,
    ScriptSrcElem,
    ScriptSrcAttr,
    StyleSrc,
    StyleSrcElem,
    StyleSrcAttr,
    WorkerSrc,
    BaseUri,
    FormAction,
    FrameAncestors,
    NavigateTo,
    Sandbox,
    TrustedTypes,
    RequireTrustedTypesFor,
    Webrtc,
    Other,
}

impl ReportDirective {
    /// The directive a report names, compared without case and without allocating.
    pub fn named(text: &str) -> ReportDirective {
        ReportDirective::VARIANTS
            .iter()
            .copied()
            .find(|d| <&str>::from(*d).eq_ignore_ascii_case(text))
            .unwrap_or(ReportDirective::Other)
    }
}

/// Whether the violated policy was enforced or report-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumCount, VariantArray, IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum Disposition {
    Enforce,
    Report,
}

/// Why the collector refused a request; each has its own status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumCount, VariantArray, IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum ReportRejection {
    /// Not a POST: `405`.
    Method,
    /// Over the body limit: `413`.
    TooLarge,
    /// Not a report content type: `415`.
    ContentType,
    /// Not JSON, or not a report's shape: `400`.
    Malformed,
    /// A valid shape without a CSP report in it: `400`.
    Empty,
    /// The body did not arrive within `client_header_timeout_ms`: `408`.
    Timeout,
}

impl ReportRejection {
    pub fn status(self) -> u16 {
        match self {
            ReportRejection::Method => 405,
            ReportRejection::TooLarge => 413,
            ReportRejection::ContentType => 415,
            ReportRejection::Malformed | ReportRejection::Empty => 400,
            ReportRejection::Timeout => 408,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RouteMetrics {
    requests: [IntCounter; 6],
    duration: Histogram,
    upstream_duration: Histogram,
    upstream_errors: [IntCounter; UpstreamErrorKind::COUNT],
}

impl RouteMetrics {
    /// `status` 0 means no response was sent (the client went away first).
    pub fn request_done(&self, status: u16, elapsed: Duration) {
        let class = match status {
            100..=599 => usize::from(status / 100 - 1),
            _ => 5,
        };
        self.requests[class].inc();
        self.duration.observe(elapsed.as_secs_f64());
    }

    /// From choosing the upstream to the last byte of its response.
    pub fn upstream_done(&self, elapsed: Duration) {
        self.upstream_duration.observe(elapsed.as_secs_f64());
    }

    pub fn upstream_error(&self, kind: UpstreamErrorKind) {
        self.upstream_errors[kind as usize].inc();
    }
}

/// Seconds since the Unix epoch, for the reload timestamp.
fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pre_resolved_counters_show_in_the_exposition() {
        let m = metrics();
        let v = m.route(RouteLabels {
            vhost: "unit-metrics",
            route: "api",
        });
        v.request_done(204, Duration::from_millis(3));
        v.request_done(0, Duration::from_millis(1));
        m.redirects("unit-metrics").inc(308);
        v.upstream_error(UpstreamErrorKind::ReadTimeout);
        m.tls_handshake_failed(HandshakeFailure::NotTls);
        let text = m.render();
        for line in [
            "secgw_requests_total{route=\"api\",status_class=\"2xx\",vhost=\"unit-metrics\"} 1",
            "secgw_requests_total{route=\"api\",status_class=\"none\",vhost=\"unit-metrics\"} 1",
            "secgw_requests_total{route=\"api\",status_class=\"5xx\",vhost=\"unit-metrics\"} 0",
            "secgw_redirects_total{status=\"308\",vhost=\"unit-metrics\"} 1",
            "secgw_upstream_errors_total{kind=\"read_timeout\",route=\"api\",vhost=\"unit-metrics\"} 1",
            "secgw_upstream_errors_total{kind=\"connect_refused\",route=\"api\",vhost=\"unit-metrics\"} 0",
            "secgw_request_duration_seconds_count{route=\"api\",vhost=\"unit-metrics\"} 2",
            "secgw_tls_handshake_failures_total{reason=\"not_tls\"} 1",
            "secgw_tls_handshake_failures_total{reason=\"alert_received\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}");
        }
    }
}
