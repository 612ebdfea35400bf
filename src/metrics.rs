//! Broker metrics in Prometheus' text exposition format, served at
//! `/metrics` by the HTTP listener ([`crate::http`], `http-listen`).
//!
//! What changes per request is counted here in atomics, with no lock on the
//! request path: requests and failed requests per API key and version, the
//! error codes in answered responses per API key, request latency
//! histograms per API key, connections, bytes in and out
//! per topic (on each [`crate::log::manager::Topic`]). Everything else is
//! read from the broker's state when scraped: partitions' offsets and
//! sizes, consumer groups' committed offsets and lag, share groups'
//! records, the request memory in use.
//!
//! Names follow Prometheus' conventions: the `weir_` prefix, `_total` for
//! counters, base units (`_seconds`, `_bytes`).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use kafka_protocol::messages::ApiKey;

use crate::protocol::response_errors::ResponseErrors;
use crate::Broker;

/// API keys and versions counted (Kafka's keys are below 100, versions
/// below 20; anything beyond is not a request that reaches a handler).
const KEYS: usize = 128;
const VERSIONS: usize = 32;
/// Kafka's error codes are -1 (UNKNOWN_SERVER_ERROR) to about 130;
/// counted at `code + 1`.
const ERRORS: usize = 192;
/// Histogram bucket bounds in seconds (100 us to 10 s).
const BUCKETS: [f64; 15] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    10.0,
];

fn counters(n: usize) -> Box<[AtomicU64]> {
    (0..n).map(|_| AtomicU64::new(0)).collect()
}

/// The per-request counters (see the module docs).
pub struct Metrics {
    /// `[key * VERSIONS + version]`.
    requests: Box<[AtomicU64]>,
    /// Requests that could not be answered (malformed, unsupported version,
    /// a handler failure): the connection was closed.
    failed: Box<[AtomicU64]>,
    /// `[key * ERRORS + code + 1]`: the non-zero error codes in answered
    /// responses (every topic's, partition's, member's... error counts,
    /// as in Kafka's ErrorsPerSec).
    errors: Box<[AtomicU64]>,
    /// `[key * (BUCKETS + 1) + bucket]`, the last bucket is +Inf.
    latency: Box<[AtomicU64]>,
    latency_sum_us: Box<[AtomicU64]>,
    connections_open: AtomicU64,
    connections_total: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: counters(KEYS * VERSIONS),
            failed: counters(KEYS * VERSIONS),
            errors: counters(KEYS * ERRORS),
            latency: counters(KEYS * (BUCKETS.len() + 1)),
            latency_sum_us: counters(KEYS),
            connections_open: AtomicU64::new(0),
            connections_total: AtomicU64::new(0),
        }
    }
}

/// A request's slot, or `None` for keys and versions out of range.
fn slot(key: i16, version: i16) -> Option<usize> {
    let (k, v) = (usize::try_from(key).ok()?, usize::try_from(version).ok()?);
    (k < KEYS && v < VERSIONS).then_some(k * VERSIONS + v)
}

impl Metrics {
    /// One request handled (answered, deferred and answered, or failed),
    /// from its frame being read to its response being ready.
    pub fn record(&self, key: i16, version: i16, elapsed: Duration, ok: bool) {
        let Some(i) = slot(key, version) else {
            return;
        };
        self.requests[i].fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.failed[i].fetch_add(1, Ordering::Relaxed);
        }
        let k = key as usize;
        let secs = elapsed.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        self.latency[k * (BUCKETS.len() + 1) + bucket].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us[k].fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }
}

impl Metrics {
    /// The error codes of a response about to be sent.
    pub fn response_errors(&self, key: ApiKey, response: &dyn ResponseErrors) {
        response.each_error(&mut |code| self.response_error(key, code));
    }

    /// One error code answered (NONE is not counted).
    pub fn response_error(&self, key: ApiKey, code: i16) {
        let k = key as usize;
        match usize::try_from(i32::from(code) + 1) {
            Ok(c) if code != 0 && c < ERRORS && k < KEYS => {
                self.errors[k * ERRORS + c].fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }

    /// Client connections open now.
    pub fn connections(&self) -> u64 {
        self.connections_open.load(Ordering::Relaxed)
    }
}

/// A client connection counted as open while this lives.
pub struct OpenConnection(std::sync::Arc<Broker>);

impl OpenConnection {
    pub fn new(broker: std::sync::Arc<Broker>) -> OpenConnection {
        let m = &broker.metrics;
        m.connections_open.fetch_add(1, Ordering::Relaxed);
        m.connections_total.fetch_add(1, Ordering::Relaxed);
        OpenConnection(broker)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0
            .metrics
            .connections_open
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// Label value escaping of the text format: backslash, quote, newline.
fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn api_name(key: usize) -> String {
    i16::try_from(key)
        .ok()
        .and_then(|k| ApiKey::try_from(k).ok())
        .map(|k| format!("{k:?}"))
        .unwrap_or_else(|| key.to_string())
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A counter family by API and version (only the non-zero series).
fn per_api_version(out: &mut String, name: &str, help: &str, counters: &[AtomicU64]) {
    header(out, name, "counter", help);
    for (i, c) in counters.iter().enumerate() {
        let n = c.load(Ordering::Relaxed);
        if n > 0 {
            let _ = writeln!(
                out,
                "{name}{{api=\"{}\",version=\"{}\"}} {n}",
                api_name(i / VERSIONS),
                i % VERSIONS
            );
        }
    }
}

/// The whole exposition, as of now.
pub async fn render(broker: &Broker) -> String {
    let m = &broker.metrics;
    let mut out = String::with_capacity(16 << 10);
    per_api_version(
        &mut out,
        "weir_requests_total",
        "Requests handled, by API and version.",
        &m.requests,
    );
    per_api_version(
        &mut out,
        "weir_request_failures_total",
        "Requests that could not be answered (malformed, unsupported version, handler failure): the connection was closed.",
        &m.failed,
    );
    header(
        &mut out,
        "weir_response_errors_total",
        "counter",
        "Error codes in answered responses, by API and Kafka error (each topic's, partition's or member's error counts once; NONE is not counted).",
    );
    for (i, c) in m.errors.iter().enumerate() {
        let n = c.load(Ordering::Relaxed);
        if n > 0 {
            let code = (i % ERRORS) as i16 - 1;
            let _ = writeln!(
                out,
                "weir_response_errors_total{{api=\"{}\",error=\"{}\"}} {n}",
                api_name(i / ERRORS),
                crate::client::error_name(code)
            );
        }
    }
    header(
        &mut out,
        "weir_request_duration_seconds",
        "histogram",
        "Time from a request's frame being read to its response being ready, by API.",
    );
    let width = BUCKETS.len() + 1;
    for key in 0..KEYS {
        let row = &m.latency[key * width..(key + 1) * width];
        let count: u64 = row.iter().map(|c| c.load(Ordering::Relaxed)).sum();
        if count == 0 {
            continue;
        }
        let api = api_name(key);
        let mut cumulative = 0;
        for (b, c) in row.iter().enumerate() {
            cumulative += c.load(Ordering::Relaxed);
            let le = BUCKETS
                .get(b)
                .map(|v| v.to_string())
                .unwrap_or_else(|| "+Inf".into());
            let _ = writeln!(
                out,
                "weir_request_duration_seconds_bucket{{api=\"{api}\",le=\"{le}\"}} {cumulative}"
            );
        }
        let sum = m.latency_sum_us[key].load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "weir_request_duration_seconds_sum{{api=\"{api}\"}} {sum}\nweir_request_duration_seconds_count{{api=\"{api}\"}} {count}"
        );
    }
    header(
        &mut out,
        "weir_connections",
        "gauge",
        "Client connections open.",
    );
    let _ = writeln!(
        out,
        "weir_connections {}",
        m.connections_open.load(Ordering::Relaxed)
    );
    header(
        &mut out,
        "weir_connections_total",
        "counter",
        "Client connections accepted.",
    );
    let _ = writeln!(
        out,
        "weir_connections_total {}",
        m.connections_total.load(Ordering::Relaxed)
    );
    header(
        &mut out,
        "weir_request_memory_bytes",
        "gauge",
        "Bytes of requests being read or handled (queued-max-request-bytes bounds it).",
    );
    let _ = writeln!(
        out,
        "weir_request_memory_bytes {}",
        broker.request_budget.in_use()
    );
    render_topics(broker, &mut out);
    render_groups(broker, &mut out).await;
    render_share_groups(broker, &mut out).await;
    out
}

/// Share groups' in-flight windows: records by state, per share-partition.
async fn render_share_groups(broker: &Broker, out: &mut String) {
    header(
        out,
        "weir_share_partition_records",
        "gauge",
        "Records in a share group's in-flight window, by share-partition and state (acquired: delivered and locked; available: to be delivered; acknowledged and archived: done, until the window's start passes them).",
    );
    for (group, topic_id, partition, counts) in broker.share.window_counts().await {
        let topic = broker
            .logs
            .topic_by_id(topic_id)
            .map(|t| t.name.clone())
            .unwrap_or_else(|| topic_id.to_string());
        for (state, n) in ["acquired", "available", "acknowledged", "archived"]
            .iter()
            .zip(counts)
        {
            let _ = writeln!(
                out,
                "weir_share_partition_records{{group=\"{}\",topic=\"{}\",partition=\"{partition}\",state=\"{state}\"}} {n}",
                esc(&group),
                esc(&topic)
            );
        }
    }
}

/// Bytes in and out per topic; offsets and size per partition.
fn render_topics(broker: &Broker, out: &mut String) {
    let topics = broker.logs.topics();
    let families: [(&str, &str, &str); 5] = [
        (
            "weir_topic_bytes_in_total",
            "counter",
            "Record batch bytes appended by produces, by topic.",
        ),
        (
            "weir_topic_bytes_out_total",
            "counter",
            "Record batch bytes returned by fetches, by topic.",
        ),
        (
            "weir_partition_log_start_offset",
            "gauge",
            "The partition's log start offset.",
        ),
        (
            "weir_partition_log_end_offset",
            "gauge",
            "The partition's log end offset.",
        ),
        (
            "weir_partition_size_bytes",
            "gauge",
            "Bytes of the partition's segments.",
        ),
    ];
    for (f, (name, kind, help)) in families.iter().enumerate() {
        header(out, name, kind, help);
        for t in &topics {
            let topic = esc(&t.name);
            match f {
                0 => {
                    let _ = writeln!(out, "{name}{{topic=\"{topic}\"}} {}", t.bytes_in());
                }
                1 => {
                    let _ = writeln!(out, "{name}{{topic=\"{topic}\"}} {}", t.bytes_out());
                }
                _ => {
                    for p in t.partitions() {
                        let o = p.offsets();
                        let v = match f {
                            2 => o.log_start as u64,
                            3 => o.log_end as u64,
                            _ => p.size_bytes(),
                        };
                        let _ = writeln!(
                            out,
                            "{name}{{topic=\"{topic}\",partition=\"{}\"}} {v}",
                            p.index
                        );
                    }
                }
            }
        }
    }
}

/// Committed offsets and lag per consumer group and partition.
async fn render_groups(broker: &Broker, out: &mut String) {
    let mut rows = Vec::new();
    for (group, ..) in broker.groups.list().await {
        for (topic, partition, offset) in broker.groups.committed(&group).await {
            let Some(p) = broker.logs.partition(&topic, partition) else {
                continue;
            };
            let end = p.offsets().high_watermark;
            rows.push((
                group.clone(),
                topic,
                partition,
                offset,
                (end - offset).max(0),
            ));
        }
    }
    let families = [
        (
            "weir_group_committed_offset",
            "A consumer group's committed offset, by partition.",
            false,
        ),
        (
            "weir_group_lag",
            "Records between a consumer group's committed offset and the high watermark, by partition.",
            true,
        ),
    ];
    for (name, help, lag) in families {
        header(out, name, "gauge", help);
        for r in &rows {
            let _ = writeln!(
                out,
                "{name}{{group=\"{}\",topic=\"{}\",partition=\"{}\"}} {}",
                esc(&r.0),
                esc(&r.1),
                r.2,
                if lag { r.4 } else { r.3 }
            );
        }
    }
}
