//! `telemetry`: the agent's heal events and service health, exported to an OpenTelemetry
//! collector (`[telemetry] otlp = "http://collector:4318"`), as the joelclaw system's rule wants
//! every supervisor's events in its OTEL pipeline.
//!
//! - Each heal event becomes an OTLP log record (event name = the event kind, body = its
//!   sentence) carrying `node_id`, `platform`, `adapter_type`, `endpoint_class`, `service`,
//!   `step`, `outcome` as attributes, and is counted in the `joelclaw.heal.events` counter.
//! - The node's services by health are the `joelclaw.services` gauge (`health` = healthy,
//!   unhealthy, unknown, stopped), and its open breakers the `joelclaw.breakers.open` gauge, as
//!   the local API's `/metrics` has them.
//!
//! Transport: the `opentelemetry` SDK with the OTLP exporter over HTTP/protobuf. The SDK's batch
//! processor and periodic reader run on their own threads with a bounded queue and an export
//! deadline, so [`OtlpExport::emit`] only enqueues: a slow or absent collector costs the heal loop
//! nothing but dropped records.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use central_core::{EventSink, HealEvent};
use opentelemetry::logs::{AnyValue, LogRecord, Logger, LoggerProvider, Severity};
use opentelemetry::metrics::{Counter, Histogram, MeterProvider};
use opentelemetry::KeyValue;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::logs::{
    BatchConfigBuilder, BatchLogProcessor, SdkLogger, SdkLoggerProvider,
};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::Resource;

/// What went wrong setting the export up (never raised by exporting itself).
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The configuration is wrong (names the key).
    #[error("telemetry: {0}")]
    Config(String),
}

/// Where and how to export (`[telemetry]` in the inventory).
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryConfig {
    /// The collector's OTLP/HTTP base address (`http://host:4318`); `/v1/logs` and `/v1/metrics`
    /// are appended.
    pub otlp: String,
    /// How often metrics are exported, and the longest a log record waits in the batch.
    pub export_every: Duration,
    /// The deadline of one export request.
    pub timeout: Duration,
    /// Log records waiting for the collector before new ones are dropped.
    pub queue: usize,
}

impl TelemetryConfig {
    /// Defaults for `otlp`: export every 10 s, 5 s per request, 2,048 records queued.
    pub fn new(otlp: impl Into<String>) -> Self {
        TelemetryConfig {
            otlp: otlp.into(),
            export_every: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
            queue: 2048,
        }
    }

    /// The configuration an inventory's `[telemetry]` section asks for.
    pub fn from_spec(spec: &central_core::model::TelemetrySpec) -> Self {
        let mut config = TelemetryConfig::new(spec.otlp.clone());
        if let Some(every) = spec.export_every {
            config.export_every = every;
        }
        config
    }

    /// Checks the address and limits before anything starts.
    pub fn validate(&self) -> Result<(), TelemetryError> {
        let base = self.otlp.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) || base.len() < 8 {
            return Err(TelemetryError::Config(format!(
                "telemetry.otlp {:?}: an OTLP/HTTP address is http://host:port (usually port 4318)",
                self.otlp
            )));
        }
        if base.starts_with("https://") {
            return Err(TelemetryError::Config(format!(
                "telemetry.otlp {:?}: https is not built into this agent; use a local collector over http",
                self.otlp
            )));
        }
        if self.export_every.is_zero() || self.timeout.is_zero() || self.queue == 0 {
            return Err(TelemetryError::Config(
                "telemetry: export_every, timeout and queue must be above zero".into(),
            ));
        }
        Ok(())
    }
}

/// Who is exporting: the resource every record and metric carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAttributes {
    /// The node id.
    pub node_id: String,
    /// `macos`, `linux`, `other`.
    pub platform: String,
    /// The node's role.
    pub role: String,
    /// The agent's version.
    pub version: String,
}

/// The node's services at its last probe round, in counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HealthCounts {
    /// Passing their probes.
    pub healthy: u64,
    /// Failing or down.
    pub unhealthy: u64,
    /// Not yet known (not probed, or their manager did not answer).
    pub unknown: u64,
    /// Stopped or disabled by request.
    pub stopped: u64,
    /// Whose breaker is open.
    pub open_breakers: u64,
}

/// Services by health, for the `joelclaw.services` and `joelclaw.breakers.open` gauges.
#[derive(Debug, Default)]
struct HealthGauge {
    healthy: AtomicU64,
    unhealthy: AtomicU64,
    unknown: AtomicU64,
    stopped: AtomicU64,
    open_breakers: AtomicU64,
}

/// The export. Hand it to the heal loop as an [`EventSink`]; update health after each round.
pub struct OtlpExport {
    logs: SdkLoggerProvider,
    logger: SdkLogger,
    metrics: SdkMeterProvider,
    heal_events: Counter<u64>,
    probe_duration: Histogram<f64>,
    health: Arc<HealthGauge>,
}

/// The probe-duration histogram's bucket bounds, in seconds, here and in `/metrics`
/// (`joelclaw_probe_duration_seconds`): 1 ms to 10 s (a probe's deadline is seconds; a local
/// process probe takes about a millisecond).
pub const PROBE_DURATION_BOUNDS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

impl std::fmt::Debug for OtlpExport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpExport").finish_non_exhaustive()
    }
}

impl OtlpExport {
    /// Validates `config` and starts the exporters (their threads; nothing is sent until there
    /// is something to send).
    pub fn start(config: &TelemetryConfig, node: &NodeAttributes) -> Result<Self, TelemetryError> {
        config.validate()?;
        let base = config.otlp.trim_end_matches('/');
        let resource = Resource::builder()
            .with_service_name("joelclaw-node")
            .with_attributes([
                KeyValue::new("node_id", node.node_id.clone()),
                KeyValue::new("platform", node.platform.clone()),
                KeyValue::new("role", node.role.clone()),
                KeyValue::new("service.version", node.version.clone()),
            ])
            .build();
        let build_err = |what: &str, e: opentelemetry_otlp::ExporterBuildError| {
            TelemetryError::Config(format!("telemetry.otlp {base:?}: {what}: {e}"))
        };
        let log_exporter = opentelemetry_otlp::LogExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(format!("{base}/v1/logs"))
            .with_timeout(config.timeout)
            .build()
            .map_err(|e| build_err("log exporter", e))?;
        let batch = BatchConfigBuilder::default()
            .with_max_queue_size(config.queue)
            .with_scheduled_delay(config.export_every.min(Duration::from_secs(1)))
            .build();
        let logs = SdkLoggerProvider::builder()
            .with_resource(resource.clone())
            .with_log_processor(
                BatchLogProcessor::builder(log_exporter)
                    .with_batch_config(batch)
                    .build(),
            )
            .build();
        let metric_exporter = opentelemetry_otlp::MetricExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(format!("{base}/v1/metrics"))
            .with_timeout(config.timeout)
            .build()
            .map_err(|e| build_err("metric exporter", e))?;
        let metrics = SdkMeterProvider::builder()
            .with_resource(resource)
            .with_reader(
                PeriodicReader::builder(metric_exporter)
                    .with_interval(config.export_every)
                    .build(),
            )
            .build();
        let meter = metrics.meter("joelclaw-node");
        let heal_events = meter
            .u64_counter("joelclaw.heal.events")
            .with_description("Heal-loop events by kind, service, step and outcome")
            .build();
        let probe_duration = meter
            .f64_histogram("joelclaw.probe.duration")
            .with_unit("s")
            .with_description("How long each service's probe round took")
            .with_boundaries(PROBE_DURATION_BOUNDS.to_vec())
            .build();
        let health = Arc::new(HealthGauge::default());
        let gauge = health.clone();
        let _services = meter
            .u64_observable_gauge("joelclaw.services")
            .with_description("The node's services by health at the last probe round")
            .with_callback(move |observer| {
                for (health, value) in [
                    ("healthy", &gauge.healthy),
                    ("unhealthy", &gauge.unhealthy),
                    ("unknown", &gauge.unknown),
                    ("stopped", &gauge.stopped),
                ] {
                    observer.observe(
                        value.load(Ordering::Relaxed),
                        &[KeyValue::new("health", health)],
                    );
                }
            })
            .build();
        let gauge = health.clone();
        let _breakers = meter
            .u64_observable_gauge("joelclaw.breakers.open")
            .with_description("Services whose breaker is open (a person was called)")
            .with_callback(move |observer| {
                observer.observe(gauge.open_breakers.load(Ordering::Relaxed), &[]);
            })
            .build();
        let logger = logs.logger("joelclaw-node");
        Ok(OtlpExport {
            logs,
            logger,
            metrics,
            heal_events,
            probe_duration,
            health,
        })
    }

    /// One probe round of `service` took `seconds` (each round once).
    pub fn record_probe_round(&self, service: &str, seconds: f64) {
        self.probe_duration
            .record(seconds, &[KeyValue::new("service", service.to_string())]);
    }

    /// The node's services by health (after each probe round).
    pub fn set_health(&self, counts: HealthCounts) {
        let g = &self.health;
        g.healthy.store(counts.healthy, Ordering::Relaxed);
        g.unhealthy.store(counts.unhealthy, Ordering::Relaxed);
        g.unknown.store(counts.unknown, Ordering::Relaxed);
        g.stopped.store(counts.stopped, Ordering::Relaxed);
        g.open_breakers
            .store(counts.open_breakers, Ordering::Relaxed);
    }

    /// Sends what is pending and stops the exporters, each within its export deadline. Call it
    /// off the loop (it blocks).
    pub fn shutdown(&self) {
        let _ = self.logs.force_flush();
        let _ = self.metrics.force_flush();
        let _ = self.logs.shutdown();
        let _ = self.metrics.shutdown();
    }
}

/// The attributes of one heal event, as both the log record and the counter carry them.
fn attributes(event: &HealEvent) -> Vec<(&'static str, String)> {
    let mut attrs = vec![
        ("event", event.event.as_str().to_string()),
        ("node_id", event.node_id.clone()),
        ("platform", event.platform.clone()),
        ("adapter_type", event.adapter_type.clone()),
        ("service", event.service.clone()),
    ];
    if let Some(class) = event.endpoint_class {
        attrs.push(("endpoint_class", class.to_string()));
    }
    if let Some(step) = event.step {
        attrs.push(("step", step.to_string()));
    }
    if let Some(outcome) = &event.outcome {
        attrs.push(("outcome", outcome.kind().to_string()));
    }
    attrs
}

impl EventSink for OtlpExport {
    fn emit(&self, event: &HealEvent) {
        let attrs = attributes(event);
        let counted: Vec<KeyValue> = attrs
            .iter()
            .map(|(k, v)| KeyValue::new(*k, v.clone()))
            .collect();
        self.heal_events.add(1, &counted);
        let mut record = self.logger.create_log_record();
        record.set_event_name(event.event.as_str());
        record.set_timestamp(UNIX_EPOCH + Duration::from_millis(event.at_ms));
        record.set_observed_timestamp(SystemTime::now());
        let (number, text) = if event.event.is_warning() {
            (Severity::Warn, "WARN")
        } else {
            (Severity::Info, "INFO")
        };
        record.set_severity_number(number);
        record.set_severity_text(text);
        record.set_body(AnyValue::from(event.detail.clone()));
        if let Some(attempt) = event.attempt {
            record.add_attribute("attempt", i64::from(attempt));
        }
        if let Some(kind) = event.error_kind {
            record.add_attribute("error_kind", kind.as_str());
        }
        if let Some(cause) = &event.cause {
            record.add_attribute("cause", cause.clone());
        }
        record.add_attributes(attrs);
        // Enqueues only: the batch processor's thread exports, or drops when its queue is full.
        self.logger.emit(record);
    }
}
