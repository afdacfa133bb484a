//! The running agent's local API over its Unix socket, with curl as a caller would use it: health,
//! the live status, one service, events since a sequence number and as a live stream while a heal
//! happens, Prometheus metrics that parse, every JSON answer a valid envelope, and the socket's
//! permission as the authorization (a process outside its group is refused).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

mod common;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_joelclaw-node");

struct Agent {
    dir: tempfile::TempDir,
    child: Child,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(pid) = self.service_pid() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
    }
}

impl Agent {
    fn start() -> Agent {
        Agent::start_with("")
    }

    /// An agent whose inventory has `extra` (sections) after its `[heal]`.
    fn start_with(extra: &str) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        // Anyone may pass through the test's folder; the state folder inside decides.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
        let port = common::free_port();
        let health_port = common::free_port();
        std::fs::write(dir.path().join("health.port"), health_port.to_string()).unwrap();
        std::fs::write(
            dir.path().join("node.toml"),
            format!(
                r#"[node]
id = "api-node"

[api]
health_listen = "127.0.0.1:{health_port}"

[loop]
interval = "1s"

[heal]
failures_to_down = 1
passes_to_up = 1
grace = "1s"

{extra}

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
        let child = Agent::spawn(dir.path());
        Agent { dir, child }
    }

    /// The agent again, on the same inventory and state folder.
    fn restart(&mut self) {
        self.child = Agent::spawn(self.dir.path());
    }

    fn spawn(dir: &Path) -> Child {
        Command::new(BIN)
            .arg("run")
            .arg("--inventory")
            .arg(dir.join("node.toml"))
            .arg("--state-dir")
            .arg(dir.join("state"))
            .arg("--events")
            .arg(dir.join("events.jsonl"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("state/agent.sock")
    }

    fn service_pid(&self) -> Option<u32> {
        common::published_pid(&self.dir.path().join("state"), "web")
    }
}

/// `curl --unix-socket SOCKET http://agent/PATH` (with `extra` before the URL): status, body.
fn curl(socket: &Path, extra: &[&str], path: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "-w",
            "\n%{http_code}",
            "--unix-socket",
        ])
        .arg(socket)
        .args(extra)
        .arg(format!("http://agent{path}"))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn json_of(socket: &Path, extra: &[&str], path: &str) -> (u16, Value) {
    let (code, body) = curl(socket, extra, path);
    let v: Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body}"));
    common::assert_schema("envelope", &v, path);
    (code, v)
}

/// `GET /metrics`, parsed as the Prometheus text format.
fn scrape(socket: &Path) -> (prometheus_parse::Scrape, String) {
    let (code, text) = curl(socket, &[], "/metrics");
    assert_eq!(code, 200, "{text}");
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text format");
    (scrape, text)
}

/// The value of the sample `metric` whose label `key` is `value` (none when absent).
fn sample(scrape: &prometheus_parse::Scrape, metric: &str, key: &str, value: &str) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == metric && s.labels.get(key) == Some(value))
        .map(|s| match &s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            prometheus_parse::Value::Histogram(b) => b.last().map_or(f64::NAN, |b| b.count),
            prometheus_parse::Value::Summary(_) => f64::NAN,
        })
}

#[test]
fn the_local_api_serves_status_events_and_metrics_to_the_socket_group_only() {
    let agent = Agent::start();
    let sock = agent.socket();
    let healthy = sysutil::poll::until_blocking(
        "web healthy through /v1/status",
        Duration::from_secs(60),
        || {
            if !sock.exists() {
                return None;
            }
            let (_, v) = json_of(&sock, &[], "/v1/status");
            let svc = v["result"]["services"].as_array()?.first()?.clone();
            (svc["health"] == "healthy").then_some(v)
        },
    );
    assert_eq!(healthy["result"]["node_id"], "api-node");
    common::assert_schema("status", &healthy["result"], "/v1/status");
    let (code, h) = json_of(&sock, &[], "/v1/health");
    assert_eq!((code, &h["ok"]), (200, &Value::Bool(true)));
    assert_eq!(h["result"]["node_id"], "api-node");
    let (code, one) = json_of(&sock, &[], "/v1/services/web");
    assert_eq!(code, 200);
    assert_eq!(one["result"]["label"], "web");
    let (code, none) = json_of(&sock, &[], "/v1/services/nope");
    assert_eq!(
        (code, &none["error"]["kind"]),
        (404, &Value::from("not-found"))
    );

    // The socket's mode is the authorization: 0660, its group only.
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::metadata(&sock).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    if nix::unistd::getuid().is_root() {
        let as_user = |gid: u32| {
            Command::new("setpriv")
                .args(["--reuid=65534", &format!("--regid={gid}"), "--clear-groups"])
                .args(["curl", "-sS", "--max-time", "5", "--unix-socket"])
                .arg(&sock)
                .arg("http://agent/v1/health")
                .output()
                .unwrap()
        };
        // The same user, once outside the group and once in it: refused (curl's "couldn't
        // connect", exit 7, is how it reports EACCES on a socket path), then served.
        let outsider = as_user(65534);
        assert_eq!(
            outsider.status.code(),
            Some(7),
            "{}",
            String::from_utf8_lossy(&outsider.stderr)
        );
        let member = as_user(meta.gid());
        assert!(
            member.status.success(),
            "{}",
            String::from_utf8_lossy(&member.stderr)
        );
        // The CLI's verbs, as the outsider: refused by the socket, said as such (never taken
        // for "no agent running", which would act through the adapter instead).
        let verb = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN])
            .args(["stop", "web", "--json", "--inventory"])
            .arg(agent.dir.path().join("node.toml"))
            .arg("--state-dir")
            .arg(agent.dir.path().join("state"))
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&verb.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&verb.stderr)));
        assert_eq!(verb.status.code(), Some(1), "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("permission denied"),
            "{v}"
        );
        assert!(agent.service_pid().is_some(), "the outsider stopped it");
    }

    // A live stream of events, then a heal happening while it is open.
    let mut stream = Command::new("curl")
        .args(["-sSN", "--max-time", "60", "--unix-socket"])
        .arg(&sock)
        .arg("http://agent/v1/events/stream")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let out = stream.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    let victim = agent.service_pid().expect("web running");
    kill(Pid::from_raw(victim as i32), Signal::SIGKILL).unwrap();
    let mut lines = Vec::new();
    let healed = loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => {
                let done = line.starts_with("data:") && line.contains("\"heal.succeeded\"");
                lines.push(line);
                if done {
                    break true;
                }
            }
            Err(_) => break false,
        }
    };
    let _ = stream.kill();
    let _ = stream.wait();
    assert!(healed, "no heal.succeeded on the stream: {lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("id: ")), "{lines:?}");

    // The same events by sequence number: seq increasing, ids unique.
    let (_, all) = json_of(&sock, &[], "/v1/events?since=0");
    let events = all["result"]["events"].as_array().unwrap();
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    for e in events {
        common::assert_schema("event", e, "a kept event");
    }
    let streamed = lines
        .iter()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| serde_json::from_str::<Value>(d.trim()).unwrap())
        .collect::<Vec<_>>();
    assert!(!streamed.is_empty());
    for e in &streamed {
        common::assert_schema("event", e, "a streamed event");
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert!(events.iter().any(|e| e["event"]["event"] == "heal.started"));
    let last = all["result"]["last_seq"].as_u64().unwrap();
    let (_, after) = json_of(&sock, &[], &format!("/v1/events?since={last}"));
    assert_eq!(after["result"]["events"].as_array().unwrap().len(), 0);

    // Metrics parse as Prometheus text and count the heal.
    let (scrape, text) = scrape(&sock);
    let heals: f64 = scrape
        .samples
        .iter()
        .filter(|s| {
            s.metric == "joelclaw_heal_events_total"
                && s.labels.get("event") == Some("heal.succeeded")
        })
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum();
    assert!(heals >= 1.0, "{text}");
    assert!(
        scrape
            .samples
            .iter()
            .any(|s| s.metric == "joelclaw_services"),
        "{text}"
    );
    // Every health value has its gauge, and web is counted once, as healthy.
    for health in [
        "unknown",
        "healthy",
        "failing",
        "unhealthy",
        "stopped",
        "disabled",
    ] {
        let n = sample(&scrape, "joelclaw_services", "health", health);
        let want = if health == "healthy" { 1.0 } else { 0.0 };
        assert_eq!(n, Some(want), "{health}: {text}");
    }
    // Each probe round of web is in the histogram: counted, and counted again several rounds
    // (1 s apart) later, the +Inf bucket agreeing with the count.
    let rounds = |scrape: &prometheus_parse::Scrape| {
        sample(
            scrape,
            "joelclaw_probe_duration_seconds_count",
            "service",
            "web",
        )
    };
    let first = rounds(&scrape).unwrap_or_else(|| panic!("no probe histogram for web: {text}"));
    assert!(first > 0.0, "{text}");
    assert_eq!(
        sample(&scrape, "joelclaw_probe_duration_seconds", "service", "web"),
        Some(first),
        "{text}"
    );
    let later = sysutil::poll::until_blocking(
        "three more probe rounds of web in /metrics",
        Duration::from_secs(30),
        || {
            let (s, _) = self::scrape(&sock);
            rounds(&s).filter(|n| *n >= first + 3.0)
        },
    );
    assert!(later > first);

    // The loopback TCP listener serves health and metrics, and nothing else.
    let health_port = std::fs::read_to_string(agent.dir.path().join("health.port")).unwrap();
    let tcp = |extra: &[&str], path: &str| {
        let out = Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "10",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
            ])
            .args(extra)
            .arg(format!("http://127.0.0.1:{health_port}{path}"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(tcp(&[], "/v1/health"), "200");
    assert_eq!(tcp(&[], "/metrics"), "200");
    assert_eq!(tcp(&[], "/v1/status"), "404");
    assert_eq!(tcp(&["-X", "POST"], "/v1/services/web/stop"), "404");
    assert!(agent.service_pid().is_some());

    // No [fleet] section: the fleet route is not found here, said as such.
    let (code, v) = json_of(&sock, &[], "/v1/fleet");
    assert_eq!(
        (code, &v["error"]["kind"]),
        (404, &Value::from("not-found")),
        "{v}"
    );
    assert!(v["error"]["message"].to_string().contains("[fleet]"), "{v}");
    // An unknown route names the routes there are, the fleet's among them.
    let (code, v) = json_of(&sock, &[], "/v2/nothing");
    assert_eq!(code, 404, "{v}");
    assert!(
        v["error"]["message"].to_string().contains("/v1/fleet"),
        "{v}"
    );

    // An unknown action is a 404 naming the verbs.
    let (code, v) = json_of(&sock, &["-X", "POST"], "/v1/services/web/pause");
    assert_eq!(
        (code, &v["error"]["kind"]),
        (404, &Value::from("not-found"))
    );
}

/// `joelclaw-node VERB LABEL --json`, validated against the published envelope schema and its
/// result against the verb's result schema.
fn verb(agent: &Agent, args: &[&str]) -> (i32, Value) {
    let out = Command::new(BIN)
        .args(args)
        .arg("--inventory")
        .arg(agent.dir.path().join("node.toml"))
        .arg("--state-dir")
        .arg(agent.dir.path().join("state"))
        .arg("--json")
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: not JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    common::assert_output(args, &v);
    (out.status.code().unwrap_or(-1), v)
}

fn health_of(sock: &Path) -> Option<String> {
    let (_, v) = json_of(sock, &[], "/v1/services/web");
    v["result"]["health"].as_str().map(str::to_string)
}

fn wait_health(sock: &Path, want: &str) {
    sysutil::poll::until_blocking(
        &format!("web {want} through /v1/services/web"),
        Duration::from_secs(60),
        || (sock.exists() && health_of(sock).as_deref() == Some(want)).then_some(()),
    );
}

/// The acceptance of the service verbs: `stop` through the running agent → stopped and not
/// restarted by the loop several intervals later, with a `service.stopped` event; `start` →
/// healthy; the same through `curl --unix-socket`; the stop is kept across an agent restart;
/// inspect, logs, disable and enable through the agent; with no agent running the verb records
/// the request and says it acted without one.
#[test]
fn a_service_stopped_through_the_agent_stays_stopped_until_started() {
    let mut agent = Agent::start();
    let sock = agent.socket();
    wait_health(&sock, "healthy");
    let pid = agent.service_pid().expect("web running");

    let (code, v) = verb(&agent, &["stop", "web"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["result"]["did"], "stopped");
    assert_eq!(v["result"]["desired"], "stopped");
    assert_eq!(v["result"]["through"], "agent");
    common::assert_schema("verb-outcome", &v["result"], "stop web");
    assert!(v["next_actions"].to_string().contains("\"start\""), "{v}");
    // Several 1 s intervals later: still stopped, never healed.
    std::thread::sleep(Duration::from_secs(4));
    assert!(!common::alive(pid));
    assert_eq!(agent.service_pid(), None);
    assert_eq!(health_of(&sock).as_deref(), Some("stopped"));
    let (metrics, text) = scrape(&sock);
    let services = |health| sample(&metrics, "joelclaw_services", "health", health);
    assert_eq!(services("stopped"), Some(1.0), "{text}");
    assert_eq!(services("healthy"), Some(0.0), "{text}");
    let (_, all) = json_of(&sock, &[], "/v1/events?since=0");
    let events = all["result"]["events"].as_array().unwrap();
    let stopped_at = events
        .iter()
        .position(|e| e["event"]["event"] == "service.stopped")
        .unwrap_or_else(|| panic!("no service.stopped: {all}"));
    assert!(events[stopped_at]["event"]["detail"]
        .as_str()
        .unwrap()
        .contains("by request"));
    assert!(
        !events[stopped_at..]
            .iter()
            .any(|e| e["event"]["event"] == "heal.started"),
        "healed after a stop by request: {all}"
    );

    // The same through the socket, as the gateway would call it.
    let (code, v) = json_of(&sock, &["-X", "POST"], "/v1/services/web/start");
    assert_eq!(
        (code, &v["result"]["did"]),
        (200, &Value::from("started")),
        "{v}"
    );
    wait_health(&sock, "healthy");
    let (code, v) = json_of(&sock, &["-X", "POST"], "/v1/services/nope/stop");
    assert_eq!(
        (code, &v["error"]["kind"]),
        (404, &Value::from("not-found"))
    );

    // `status` reads the running agent (no probe round of its own), with the pid from the
    // manager although web declares only an HTTP probe.
    let (code, v) = verb(&agent, &["status"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["result"]["source"], "agent");
    common::assert_schema("status", &v["result"]["status"], "status");
    assert_eq!(
        v["result"]["processes"][0]["state"]["pid"].as_u64(),
        agent.service_pid().map(u64::from),
        "{v}"
    );
    assert_eq!(
        v["result"]["identity"]["node_id"]["value"],
        v["result"]["status"]["node_id"]
    );

    // `restart` gives a new process.
    let before = agent.service_pid().expect("web running");
    let (code, v) = verb(&agent, &["restart", "web"]);
    assert_eq!(
        (code, &v["result"]["did"]),
        (0, &Value::from("restarted")),
        "{v}"
    );
    let after = sysutil::poll::until_blocking("a new web", Duration::from_secs(30), || {
        agent.service_pid().filter(|p| *p != before)
    });
    assert_ne!(before, after);

    // Stopped through the agent, then the agent goes away: the next agent does not start it
    // (what it kept is the only record of the stop: no verb runs between the two agents).
    let (code, v) = verb(&agent, &["stop", "web"]);
    assert_eq!((code, &v["result"]["through"]), (0, &Value::from("agent")));
    kill(Pid::from_raw(agent.child.id() as i32), Signal::SIGTERM).unwrap();
    let _ = agent.child.wait();
    agent.restart();
    let sock = agent.socket();
    sysutil::poll::until_blocking("the API back", Duration::from_secs(60), || {
        (sock.exists() && health_of(&sock).is_some()).then_some(())
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        agent.service_pid(),
        None,
        "started although stopped by request"
    );
    assert_eq!(health_of(&sock).as_deref(), Some("stopped"));
    let (code, v) = verb(&agent, &["start", "web"]);
    assert_eq!(
        (code, &v["result"]["through"]),
        (0, &Value::from("agent")),
        "{v}"
    );
    wait_health(&sock, "healthy");
    let (code, v) = verb(&agent, &["list"]);
    assert_eq!(code, 0);
    assert_eq!(v["result"]["source"], "agent");
    assert_eq!(v["result"]["services"][0]["desired"], "running");

    // The read verbs on a live service, each result checked against its schema by `verb`:
    // the manager's view (the agent's published state), its logs.
    let (code, v) = verb(&agent, &["inspect", "web"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        v["result"]["pid"].as_u64(),
        agent.service_pid().map(u64::from),
        "{v}"
    );
    let (code, v) = verb(&agent, &["logs", "web"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["result"]["label"], "web", "{v}");
    // disable, then enable, through the agent.
    let (code, v) = verb(&agent, &["disable", "web"]);
    assert_eq!(
        (code, &v["result"]["desired"]),
        (0, &Value::from("disabled")),
        "{v}"
    );
    wait_health(&sock, "disabled");
    assert_eq!(agent.service_pid(), None);
    let (code, v) = verb(&agent, &["enable", "web"]);
    assert_eq!(
        (code, &v["result"]["desired"]),
        (0, &Value::from("running")),
        "{v}"
    );
    wait_health(&sock, "healthy");

    // No agent: a verb is done through the adapter, says so, and records the request.
    kill(Pid::from_raw(agent.child.id() as i32), Signal::SIGTERM).unwrap();
    let _ = agent.child.wait();
    assert!(!sock.exists(), "the socket outlived its agent");
    let (code, v) = verb(&agent, &["stop", "web"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["result"]["through"], "adapter", "{v}");
    assert_eq!(v["result"]["desired"], "stopped", "{v}");
    let (code, v) = verb(&agent, &["list"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["result"]["source"], "probe", "{v}");
    assert_eq!(v["result"]["services"][0]["desired"], "stopped", "{v}");
}

/// `/v1/fleet` on an agent whose `[fleet]` Redis cannot be reached (no socket there, then a
/// socket that takes the connection and never answers): a 503 naming Redis within the fleet's
/// call deadline (2 s), not a hang, while the agent itself keeps healing.
#[test]
fn the_fleet_route_answers_503_when_its_redis_is_unreachable() {
    let silent_dir = tempfile::tempdir().unwrap();
    let silent = silent_dir.path().join("silent.sock");
    // Bound and listening, never accepting: the kernel completes the connection, nobody reads.
    let _listener = std::os::unix::net::UnixListener::bind(&silent).unwrap();
    for redis in [
        "redis+unix:///nonexistent/joelclaw-test.sock".to_string(),
        format!("redis+unix://{}", silent.display()),
    ] {
        let agent = Agent::start_with(&format!(
            "[fleet]\nredis = \"{redis}\"\nheartbeat = \"1s\"\n"
        ));
        let sock = agent.socket();
        wait_health(&sock, "healthy");
        let asked = std::time::Instant::now();
        let (code, v) = json_of(&sock, &[], "/v1/fleet");
        let took = asked.elapsed();
        let message = v["error"]["message"].as_str().unwrap_or_default();
        eprintln!("/v1/fleet, {redis}: {code} after {took:?}: {message}");
        assert_eq!(code, 503, "{redis}: {v}");
        assert_eq!(v["error"]["kind"], "failed", "{v}");
        assert!(message.to_lowercase().contains("redis"), "{v}");
        // curl gives up at 10 s: an answer well before that is the agent's own deadline.
        assert!(took < Duration::from_secs(8), "{redis}: {took:?}: {v}");
    }
}
