//! The export against a real OTLP/HTTP receiver (protobuf bodies decoded with the
//! `opentelemetry-proto` types), and against a collector that is down or never answers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use central_core::events::{Step, StepOutcome};
use central_core::model::{EndpointClass, ServiceClass};
use central_core::{EventKind, EventSink, HealEvent};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as ProtoValue;
use opentelemetry_proto::tonic::common::v1::KeyValue as ProtoKeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, number_data_point, Metric, NumberDataPoint,
};
use prost::Message;
use telemetry::{HealthCounts, NodeAttributes, OtlpExport, TelemetryConfig};

#[derive(Default)]
struct Received {
    logs: Vec<ExportLogsServiceRequest>,
    metrics: Vec<ExportMetricsServiceRequest>,
}

type Shared = Arc<Mutex<Received>>;

/// Every exported metric called `name`, oldest export first.
fn metrics_named(received: &Shared, name: &str) -> Vec<Metric> {
    let r = received.lock().unwrap();
    r.metrics
        .iter()
        .flat_map(|req| &req.resource_metrics)
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|sm| &sm.metrics)
        .filter(|m| m.name == name)
        .cloned()
        .collect()
}

/// An OTLP/HTTP receiver on a loopback port: it decodes what it gets.
async fn receiver() -> (String, Shared) {
    let received = Shared::default();
    let app = axum::Router::new()
        .route(
            "/v1/logs",
            post(|State(r): State<Shared>, body: Bytes| async move {
                let req = ExportLogsServiceRequest::decode(body).expect("a protobuf logs request");
                r.lock().unwrap().logs.push(req);
                ""
            }),
        )
        .route(
            "/v1/metrics",
            post(|State(r): State<Shared>, body: Bytes| async move {
                let req =
                    ExportMetricsServiceRequest::decode(body).expect("a protobuf metrics request");
                r.lock().unwrap().metrics.push(req);
                ""
            }),
        )
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), received)
}

fn node() -> NodeAttributes {
    NodeAttributes {
        node_id: "node-a".into(),
        platform: "linux".into(),
        role: "fleet".into(),
        version: "test".into(),
    }
}

fn config(url: &str) -> TelemetryConfig {
    TelemetryConfig {
        export_every: Duration::from_millis(200),
        timeout: Duration::from_millis(500),
        ..TelemetryConfig::new(url)
    }
}

fn heal_event(kind: EventKind, outcome: Option<StepOutcome>) -> HealEvent {
    HealEvent {
        event: kind,
        at_ms: 1_700_000_000_000,
        node_id: "node-a".into(),
        platform: "linux".into(),
        adapter_type: "systemd".into(),
        endpoint_class: Some(EndpointClass::Localhost),
        service: "web".into(),
        class: ServiceClass::ServiceCritical,
        step: Some(Step::Restart),
        attempt: Some(1),
        error_kind: None,
        cause: None,
        outcome,
        detail: "web was restarted".into(),
    }
}

fn text(kv: &[ProtoKeyValue], key: &str) -> Option<String> {
    kv.iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref()?.value.as_ref())
        .and_then(|v| match v {
            ProtoValue::StringValue(s) => Some(s.clone()),
            ProtoValue::IntValue(i) => Some(i.to_string()),
            _ => None,
        })
}

async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    for _ in 0..1000 {
        if let Some(v) = check() {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out after 20 s waiting for: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heal_events_arrive_as_log_records_with_every_attribute_and_are_counted() {
    let (url, received) = receiver().await;
    let export = OtlpExport::start(&config(&url), &node()).unwrap();
    export.emit(&heal_event(EventKind::HealStarted, None));
    export.emit(&heal_event(
        EventKind::HealSucceeded,
        Some(StepOutcome::Observed),
    ));
    export.set_health(HealthCounts {
        healthy: 4,
        unhealthy: 1,
        stopped: 2,
        open_breakers: 1,
        ..HealthCounts::default()
    });
    export.record_probe_round("web", 0.004);
    export.record_probe_round("web", 0.3);

    let records = eventually("both log records", || {
        let r = received.lock().unwrap();
        let records: Vec<_> = r
            .logs
            .iter()
            .flat_map(|req| &req.resource_logs)
            .flat_map(|rl| &rl.scope_logs)
            .flat_map(|sl| sl.log_records.clone())
            .collect();
        (records.len() == 2).then_some(records)
    })
    .await;
    let done = records
        .iter()
        .find(|r| r.event_name == "heal.succeeded")
        .expect("the heal.succeeded record");
    for (key, want) in [
        ("node_id", "node-a"),
        ("platform", "linux"),
        ("adapter_type", "systemd"),
        ("endpoint_class", "localhost"),
        ("service", "web"),
        ("step", "restart"),
        ("outcome", "observed"),
        ("attempt", "1"),
    ] {
        assert_eq!(text(&done.attributes, key).as_deref(), Some(want), "{key}");
    }
    let resource = received.lock().unwrap().logs[0].resource_logs[0]
        .resource
        .clone()
        .unwrap();
    assert_eq!(
        text(&resource.attributes, "node_id").as_deref(),
        Some("node-a")
    );

    // The counter and the gauges arrive as OTLP metrics, with their values and attributes.
    let points = |name: &str| -> Vec<NumberDataPoint> {
        // The newest export of `name` (the SDK sends cumulative values each interval).
        metrics_named(&received, name)
            .iter()
            .filter_map(|m| match &m.data {
                Some(Data::Sum(sum)) => Some(sum.data_points.clone()),
                Some(Data::Gauge(g)) => Some(g.data_points.clone()),
                _ => None,
            })
            .next_back()
            .unwrap_or_default()
    };
    let value = |p: &NumberDataPoint| match p.value {
        Some(number_data_point::Value::AsInt(i)) => i,
        Some(number_data_point::Value::AsDouble(d)) => d as i64,
        None => -1,
    };
    let heals = eventually("the heal counter", || {
        let p = points("joelclaw.heal.events");
        (p.len() == 2).then_some(p)
    })
    .await;
    let succeeded = heals
        .iter()
        .find(|p| text(&p.attributes, "event").as_deref() == Some("heal.succeeded"))
        .expect("a heal.succeeded point");
    assert_eq!(value(succeeded), 1);
    for (key, want) in [
        ("node_id", "node-a"),
        ("platform", "linux"),
        ("adapter_type", "systemd"),
        ("endpoint_class", "localhost"),
        ("service", "web"),
        ("step", "restart"),
        ("outcome", "observed"),
    ] {
        assert_eq!(
            text(&succeeded.attributes, key).as_deref(),
            Some(want),
            "{key}"
        );
    }
    let services = eventually("the services gauge", || {
        let p = points("joelclaw.services");
        (p.len() == 4).then_some(p)
    })
    .await;
    let by_health: std::collections::BTreeMap<String, i64> = services
        .iter()
        .map(|p| (text(&p.attributes, "health").unwrap(), value(p)))
        .collect();
    assert_eq!(
        by_health,
        [
            ("healthy", 4),
            ("stopped", 2),
            ("unhealthy", 1),
            ("unknown", 0)
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    );
    let breakers = eventually("the breakers gauge", || {
        let p = points("joelclaw.breakers.open");
        (p.len() == 1).then_some(p)
    })
    .await;
    assert_eq!(value(&breakers[0]), 1);
    // The probe rounds, as a histogram with /metrics' bounds, by service.
    let rounds = eventually("the probe-duration histogram", || {
        metrics_named(&received, "joelclaw.probe.duration")
            .iter()
            .filter_map(|m| match &m.data {
                Some(Data::Histogram(h)) => Some((m.unit.clone(), h.data_points.clone())),
                _ => None,
            })
            .next_back()
    })
    .await;
    let (unit, points) = rounds;
    assert_eq!(unit, "s");
    assert_eq!(points.len(), 1, "{points:?}");
    let web = &points[0];
    assert_eq!(text(&web.attributes, "service").as_deref(), Some("web"));
    assert_eq!(web.count, 2);
    assert!(
        (web.sum.unwrap_or_default() - 0.304).abs() < 1e-9,
        "{web:?}"
    );
    assert_eq!(
        web.explicit_bounds,
        telemetry::PROBE_DURATION_BOUNDS.to_vec()
    );
    // 4 ms in (2.5 ms, 5 ms], 300 ms in (250 ms, 500 ms].
    let filled: Vec<usize> = web
        .bucket_counts
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(filled, [2, 8], "{:?}", web.bucket_counts);
    export.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_never_answers_or_is_gone_only_costs_dropped_records() {
    // Accepts connections and never answers: the worst collector there is. And a port nobody
    // listens on: a collector that is down.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gone_url = format!("http://{}", gone.local_addr().unwrap());
    drop(gone);
    for url in [format!("http://{}", silent.local_addr().unwrap()), gone_url] {
        let export = OtlpExport::start(
            &TelemetryConfig {
                queue: 64,
                ..config(&url)
            },
            &node(),
        )
        .unwrap();
        // Far more than the queue holds: each emit only enqueues (or drops), never waits, so
        // this loop ends; a blocking emit would hang it on the silent collector.
        for _ in 0..20_000 {
            export.emit(&heal_event(EventKind::ProbeFailed, None));
        }
        // Shutting down is bounded by the export deadline (500 ms a request here), not by the
        // collector: 30 s is a hang detector, not a speed claim.
        tokio::time::timeout(
            Duration::from_secs(30),
            tokio::task::spawn_blocking(move || export.shutdown()),
        )
        .await
        .unwrap_or_else(|_| panic!("shutdown waited on the collector at {url}"))
        .unwrap();
    }
    drop(silent);
}

#[test]
fn bad_addresses_are_named() {
    for bad in ["collector:4318", "https://collector:4318", "grpc://x"] {
        let err = TelemetryConfig::new(bad)
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains("telemetry.otlp") && err.contains(bad), "{err}");
    }
    assert!(TelemetryConfig::new("http://127.0.0.1:4318")
        .validate()
        .is_ok());
}
