//! A Central node on a real dockerd (the harness's, Compose through Debian's docker-compose):
//! the agent's own composition and heal loop restart a killed container, recreate a removed
//! one with the same Compose labels, escalate a crash loop under `restart: always` (also one
//! whose looks land between crashes), and hold a dependent until its dependency is healthy.
//! Prints how long each heal took (`TIMING`).

mod compose_support;

use std::time::{Duration, Instant};

use central_core::EventKind::*;
use central_core::Step;
use compose_support::*;

fn image() -> Option<String> {
    daemon_env("JOELCLAW_TEST_DOCKER_IMAGE")
}

fn docker_substrate(p: &Project) -> String {
    format!(
        "[substrate]\nname = \"engine\"\nkind = \"docker\"\nendpoint = \"{}\"\ncompose_command = [\"docker-compose\"]",
        p.host
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_container_is_restarted_and_a_removed_one_recreated() {
    let Some(image) = image() else { return };
    let Some(p) = Project::up("heal", &two_services(&image, "no")) else {
        return;
    };
    let inv = p.inventory(&docker_substrate(&p), "");
    let state = tempfile::tempdir().unwrap();
    let mut heal = heal_loop(&inv, state.path());
    run_until(&mut heal, "all healthy", |_| true).await;
    // `status` on native Docker: the same columns as through Colima's VM.
    status_lists_both_containers(&p, &image, None);

    // Killed: the engine restarts the same container.
    let db = p.container_of("db");
    p.docker(&["kill", "-s", "KILL", &db]);
    let started = Instant::now();
    let events = run_until(&mut heal, "db healed", |e| {
        had(e, "db", HealSucceeded, None)
    })
    .await;
    report(
        "loop: container restart (kill -> healed)",
        started.elapsed(),
    );
    assert_eq!(steps(&events, "db"), [Step::Restart]);
    assert_eq!(p.container_of("db"), db, "restarted, not replaced");

    // Removed: recreated from the Compose file, found again by its labels.
    let app = p.container_of("app");
    p.docker(&["rm", "-f", &app]);
    let started = Instant::now();
    let events = run_until(&mut heal, "app recreated", |e| {
        had(e, "app", HealSucceeded, None)
    })
    .await;
    report(
        "loop: container recreate (rm -f -> healed)",
        started.elapsed(),
    );
    assert_eq!(steps(&events, "app"), [Step::Repair]);
    let again = p.container_of("app");
    assert!(
        !again.is_empty() && again != app,
        "a new container: {again}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_loop_under_restart_always_is_escalated() {
    let Some(image) = image() else { return };
    let yaml = format!(
        r#"version: "2.4"
services:
  db:
    image: {image}
    network_mode: none
    restart: always
    command: ["sh", "-c", "exit 3"]
  app:
    image: {image}
    network_mode: none
    command: ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]
"#
    );
    let Some(p) = Project::up("crash", &yaml) else {
        return;
    };
    let inv = p.inventory(
        &docker_substrate(&p),
        "observe_max = \"2s\"\nbreaker_threshold = 3",
    );
    let state = tempfile::tempdir().unwrap();
    let mut heal = heal_loop(&inv, state.path());
    let events = run_until(&mut heal, "db escalated", |e| {
        had(e, "db", HealEscalated, None)
    })
    .await;
    assert!(
        events.iter().any(|e| e.service == "db"
            && e.event == ProbeFailed
            && e.detail.contains("restart policy")),
        "the crash loop was seen: {events:#?}"
    );
    assert!(
        had(&events, "db", HealSuppressed, Some(Step::Observe)),
        "observed first"
    );
    // Every rung once, each failing (the container crashes again), and at the third failed
    // heal (`breaker_threshold`) the breaker opens: escalated, per policy.
    let climbed = steps(&events, "db");
    assert_eq!(
        climbed,
        [Step::Restart, Step::Repair, Step::HealSubstrate],
        "{events:#?}"
    );
    assert_eq!(count(&events, "db", HealFailed), 3, "{events:#?}");
    assert!(
        had(&events, "db", BreakerOpened, None),
        "the breaker opened: {events:#?}"
    );
    // Then nothing more is tried (a person was called) while the crash loop goes on.
    let mut after = Vec::new();
    for _ in 0..5 {
        after.extend(heal.tick().await.events);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(
        !had(&after, "db", HealStarted, None),
        "healed again after escalating: {after:#?}"
    );
    let db = heal
        .status()
        .services
        .into_iter()
        .find(|s| s.label == "db")
        .unwrap();
    assert_ne!(db.health, central_core::Health::Healthy, "{db:?}");
    assert_eq!(db.breaker, central_core::BreakerState::Open, "{db:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_loop_is_not_healed_by_a_look_between_two_crashes() {
    let Some(image) = image() else { return };
    // Up for about a second, then a crash, under `restart: always`; its own probe (a command
    // asking the engine whether it runs) passes whenever a look lands while it is up.
    let yaml = format!(
        r#"version: "2.4"
services:
  db:
    image: {image}
    network_mode: none
    restart: always
    command: ["sh", "-c", "sleep 1; exit 3"]
  app:
    image: {image}
    network_mode: none
    command: ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]
"#
    );
    let Some(p) = Project::up("between", &yaml) else {
        return;
    };
    let running = format!(
        "docker -H {} ps -q --filter label=com.docker.compose.project={} \
         --filter label=com.docker.compose.service=db --filter status=running | grep -q .",
        p.host, p.name
    );
    let probe = format!(
        "[[service.probe]]\nkind = \"command\"\nargv = [\"sh\", \"-c\", \"{running}\"]\ntimeout = \"5s\""
    );
    let inv = p.inventory_with(
        &docker_substrate(&p),
        "observe_max = \"2s\"\nbreaker_threshold = 3",
        &probe,
    );
    let state = tempfile::tempdir().unwrap();
    let mut heal = heal_loop(&inv, state.path());
    let started = Instant::now();
    let events = run_until(&mut heal, "db escalated", |e| {
        had(e, "db", HealEscalated, None)
    })
    .await;
    report(
        "loop: crash loop (1 s runs, restart: always) -> escalated",
        started.elapsed(),
    );
    assert!(
        events.iter().any(|e| e.service == "db"
            && e.event == ProbeFailed
            && e.detail.contains("crash loop")),
        "the crash loop was seen while the container ran: {events:#?}"
    );
    // No look between two crashes reads as healthy, so no heal reads as a success.
    assert!(
        !had(&events, "db", HealSucceeded, None),
        "a crash loop read as healed: {events:#?}"
    );
    assert_eq!(
        steps(&events, "db"),
        [Step::Restart, Step::Repair, Step::HealSubstrate],
        "each rung once, then the breaker called a person: {events:#?}"
    );
    assert_eq!(count(&events, "db", HealFailed), 3, "{events:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependent_is_held_until_its_dependency_is_healthy() {
    let Some(image) = image() else { return };
    // db is healthy only 3 s after each start (its health check waits for /ready): an agent
    // that started app when db merely ran, not when it was healthy, is caught by the engine's
    // own clocks below.
    let yaml = two_services(&image, "no").replace(
        "touch /ready; while",
        "rm -f /ready; sleep 3; touch /ready; while",
    );
    assert!(yaml.contains("sleep 3"), "{yaml}");
    let Some(p) = Project::up("gate", &yaml) else {
        return;
    };
    let inv = p.inventory(&docker_substrate(&p), "");
    let state = tempfile::tempdir().unwrap();
    let mut heal = heal_loop(&inv, state.path());
    run_until(&mut heal, "all healthy", |_| true).await;
    // Both stopped: db must be healthy again before app is started.
    p.docker(&["stop", "-t", "1", &p.container_of("app")]);
    p.docker(&["stop", "-t", "1", &p.container_of("db")]);
    let events = run_until(&mut heal, "both healed", |e| {
        had(e, "db", HealSucceeded, None) && had(e, "app", HealSucceeded, None)
    })
    .await;
    let at = |service: &str, kind| {
        events
            .iter()
            .position(|e| e.service == service && e.event == kind)
            .unwrap()
    };
    assert!(
        events.iter().any(|e| e.service == "app"
            && e.event == HealSuppressed
            && e.cause
                .as_deref()
                .is_some_and(|c| c.starts_with("dependency db "))),
        "app held: {events:#?}"
    );
    assert!(
        at("db", HealSucceeded) < at("app", HealStarted),
        "app started only after db was healthy: {events:#?}"
    );
    // The engine agrees: db cannot pass its health check before /ready exists, 3 s after its
    // process started, so app's process must have started after that.
    let started_at = |service: &str| {
        let out = p.docker(&[
            "inspect",
            "--format",
            "{{.State.StartedAt}}",
            &p.container_of(service),
        ]);
        let t = String::from_utf8_lossy(&out.stdout).trim().to_string();
        humantime::parse_rfc3339_weak(t.trim_end_matches('Z'))
            .unwrap_or_else(|e| panic!("{service} StartedAt {t}: {e}"))
    };
    let (db_started, app_started) = (started_at("db"), started_at("app"));
    let gap = app_started.duration_since(db_started).unwrap_or_default();
    assert!(
        gap >= Duration::from_secs(3),
        "app started {gap:?} after db, before db could be healthy"
    );
}

/// A person's `stop` of a container under `restart: always`: it stays stopped, and the loop
/// does not heal it back; `start` brings the same container back, healed from then on. Its
/// output is read from the engine (`logs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_stopped_by_request_stays_stopped_and_its_output_is_read() {
    use central_core::Verb;
    let Some(image) = image() else { return };
    let yaml = two_services(&image, "always").replace(
        r#"command: ["sh", "-c", "trap 'exit 0' TERM; while"#,
        r#"command: ["sh", "-c", "echo jc-app-marker; trap 'exit 0' TERM; while"#,
    );
    assert!(yaml.contains("jc-app-marker"));
    let Some(p) = Project::up("verbs", &yaml) else {
        return;
    };
    let inv = p.inventory(&docker_substrate(&p), "");
    let state = tempfile::tempdir().unwrap();
    let mut heal = heal_loop(&inv, state.path());
    run_until(&mut heal, "all healthy", |_| true).await;
    let app = p.container_of("app");

    let stopped = heal.request("app", Verb::Stop).await.unwrap();
    assert_eq!(stopped.did, "stopped");
    let running = |id: &str| {
        let out = p.docker(&["inspect", "-f", "{{.State.Running}}", id]);
        String::from_utf8_lossy(&out.stdout).trim() == "true"
    };
    assert!(!running(&app));
    let mut events = Vec::new();
    for _ in 0..4 {
        events.extend(heal.tick().await.events);
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    assert!(!had(&events, "app", HealStarted, None), "{events:#?}");
    assert!(!running(&app), "the engine or the loop brought it back");

    let started = heal.request("app", Verb::Start).await.unwrap();
    assert_eq!(started.did, "started");
    assert!(running(&app));
    assert_eq!(p.container_of("app"), app, "the same container");

    // Its output, from the engine, through the CLI.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_joelclaw-node"))
        .args(["logs", "app", "--json", "--inventory"])
        .arg(p.dir.path().join("central.toml"))
        .arg("--state-dir")
        .arg(state.path())
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    assert!(v.to_string().contains("jc-app-marker"), "{v}");

    // `-f`: the last line, then what the container writes next, one JSON line each, until the
    // container stops.
    let mut follow = std::process::Command::new(env!("CARGO_BIN_EXE_joelclaw-node"))
        .args(["logs", "app", "-f", "--lines", "1", "--json", "--inventory"])
        .arg(p.dir.path().join("central.toml"))
        .arg("--state-dir")
        .arg(state.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, lines) = std::sync::mpsc::channel::<serde_json::Value>();
    let stdout = follow.stdout.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(serde_json::from_str(&line).unwrap_or(serde_json::Value::Null));
        }
    });
    let next = || {
        lines
            .recv_timeout(Duration::from_secs(30))
            .expect("a followed line")
    };
    assert_eq!(next()["line"], "jc-app-marker");
    // Written by the container's main process's output, as the service itself would.
    p.docker(&["exec", &app, "sh", "-c", "echo jc-followed > /proc/1/fd/1"]);
    let followed = next();
    assert_eq!(followed["line"], "jc-followed", "{followed}");
    assert_eq!(followed["source"], "container app");
    p.docker(&["stop", "-t", "1", &app]);
    let limit = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = follow.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < limit,
            "logs -f still running after the container stopped"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status:?}");
}
