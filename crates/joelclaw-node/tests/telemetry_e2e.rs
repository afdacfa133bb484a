//! OTLP end to end: a `joelclaw-node run` agent with `[telemetry] otlp` pointing at a real
//! OTLP/HTTP receiver (protobuf decoded with the `opentelemetry-proto` types). A service killed
//! and healed reaches the receiver as log records carrying every attribute the joelclaw system
//! filters on.

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
mod common;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as ProtoValue;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::metrics::v1::{metric::Data, HistogramDataPoint};
use prost::Message;

type Records = Arc<Mutex<Vec<LogRecord>>>;
/// The probe-duration histogram's points, as exported.
type Rounds = Arc<Mutex<Vec<HistogramDataPoint>>>;

fn attr(r: &LogRecord, key: &str) -> Option<String> {
    r.attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref()?.value.as_ref())
        .and_then(|v| match v {
            ProtoValue::StringValue(s) => Some(s.clone()),
            _ => None,
        })
}

/// An agent with one embedded service, exporting to the collector at `url`: its folder (with
/// `events.jsonl`, its own event output), its process and the service's port.
fn agent_exporting_to(url: &str) -> (tempfile::TempDir, std::process::Child, u16) {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    std::fs::write(
        dir.path().join("node.toml"),
        format!(
            r#"[node]
id = "otel-node"

[loop]
interval = "1s"

[heal]
failures_to_down = 1
passes_to_up = 1
grace = "1s"

[telemetry]
otlp = "{url}"
export_every = "1s"

[[service]]
label = "web"
manager = "embedded"

[[service.probe]]
kind = "http"
endpoints = [{{ class = "localhost", url = "http://127.0.0.1:{port}/" }}]

[service.config]
program = "${{JOELCLAW_NODE_BIN}}"
args = ["demo-service", "--port", "{port}"]
"#
        ),
    )
    .unwrap();
    let agent = Command::new(env!("CARGO_BIN_EXE_joelclaw-node"))
        .arg("run")
        .arg("--inventory")
        .arg(dir.path().join("node.toml"))
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .arg("--events")
        .arg(dir.path().join("events.jsonl"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (dir, agent, port)
}

#[test]
fn a_kill_and_heal_reaches_the_collector_with_every_attribute() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let records = Records::default();
    let rounds = Rounds::default();
    let url = rt.block_on(async {
        let app = axum::Router::new()
            .route(
                "/v1/logs",
                post(|State(r): State<Records>, body: Bytes| async move {
                    let req = ExportLogsServiceRequest::decode(body).expect("protobuf logs");
                    let mut all = r.lock().unwrap();
                    for rl in req.resource_logs {
                        for sl in rl.scope_logs {
                            all.extend(sl.log_records);
                        }
                    }
                    ""
                }),
            )
            .with_state(records.clone())
            .route(
                "/v1/metrics",
                post(|State(m): State<Rounds>, body: Bytes| async move {
                    let req = ExportMetricsServiceRequest::decode(body).expect("protobuf metrics");
                    let mut all = m.lock().unwrap();
                    for metric in req
                        .resource_metrics
                        .into_iter()
                        .flat_map(|rm| rm.scope_metrics)
                        .flat_map(|sm| sm.metrics)
                        .filter(|m| m.name == "joelclaw.probe.duration")
                    {
                        if let Some(Data::Histogram(h)) = metric.data {
                            all.extend(h.data_points);
                        }
                    }
                    ""
                }),
            )
            .with_state(rounds.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    });

    let (dir, mut agent, port) = agent_exporting_to(&url);
    let state = dir.path().join("state");
    let service_pid = || common::published_pid(&state, "web");
    let victim = sysutil::poll::until_blocking("web running", Duration::from_secs(30), service_pid);
    // Answering first, so the kill is a heal and not a slow start.
    sysutil::poll::until_blocking("web answering", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    kill(Pid::from_raw(victim as i32), Signal::SIGKILL).unwrap();
    let healed = sysutil::poll::until_blocking(
        "heal.succeeded at the collector",
        Duration::from_secs(60),
        || {
            records
                .lock()
                .unwrap()
                .iter()
                .find(|r| r.event_name == "heal.succeeded")
                .cloned()
        },
    );
    // And its probe rounds, as the histogram of /metrics: web's, one count per round.
    let is_web = |p: &HistogramDataPoint| {
        p.attributes.iter().any(|kv| {
            kv.key == "service"
                && matches!(
                    kv.value.as_ref().and_then(|v| v.value.as_ref()),
                    Some(ProtoValue::StringValue(s)) if s == "web"
                )
        })
    };
    let web = sysutil::poll::until_blocking(
        "web's probe rounds at the collector",
        Duration::from_secs(30),
        || {
            rounds
                .lock()
                .unwrap()
                .iter()
                .find(|p| is_web(p) && p.count >= 2)
                .cloned()
        },
    );
    assert!(web.sum.is_some_and(|s| s > 0.0), "{web:?}");
    let _ = agent.kill();
    let _ = agent.wait();
    if let Some(pid) = service_pid() {
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
    }
    for (key, want) in [
        ("node_id", Some("otel-node")),
        ("platform", Some("linux")),
        ("adapter_type", Some("embedded")),
        ("endpoint_class", Some("localhost")),
        ("service", Some("web")),
    ] {
        assert_eq!(attr(&healed, key).as_deref(), want, "{key}: {healed:?}");
    }
    assert!(attr(&healed, "step").is_some(), "{healed:?}");
    let all = records.lock().unwrap();
    let started = all
        .iter()
        .find(|r| r.event_name == "heal.started")
        .expect("heal.started exported too");
    assert_eq!(attr(started, "step").as_deref(), Some("restart"));
    assert!(
        all.iter().any(|r| attr(r, "outcome").is_some()),
        "some record carries an outcome"
    );
}

#[test]
fn a_collector_that_never_answers_costs_the_loop_nothing() {
    // Accepts connections, never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let (dir, mut agent, port) = agent_exporting_to(&url);
    let state = dir.path().join("state");
    let service_pid = || common::published_pid(&state, "web");
    let heals = || {
        std::fs::read_to_string(dir.path().join("events.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\"heal.succeeded\""))
            .count()
    };
    // Three kills in a row, each healed as usual while every export hangs until its deadline.
    let mut last = 0;
    for kill_no in 1..=3 {
        let victim =
            sysutil::poll::until_blocking("web running again", Duration::from_secs(30), || {
                service_pid().filter(|p| *p != last)
            });
        sysutil::poll::until_blocking("web answering", Duration::from_secs(30), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        kill(Pid::from_raw(victim as i32), Signal::SIGKILL).unwrap();
        last = victim;
        sysutil::poll::until_blocking("the kill healed", Duration::from_secs(30), || {
            (heals() >= kill_no).then_some(())
        });
    }
    // And it stops on SIGTERM, its export's flush bounded, not waiting on the collector.
    kill(Pid::from_raw(agent.id() as i32), Signal::SIGTERM).unwrap();
    let status = sysutil::poll::until_blocking(
        "the agent gone after SIGTERM",
        Duration::from_secs(30),
        || agent.try_wait().unwrap(),
    );
    assert!(status.success(), "{status}");
    if let Some(pid) = service_pid() {
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
    }
    drop(silent);
}
