//! Heal hooks (`before_restart`, `after_heal`) on the in-memory manager, in real time (they run
//! real commands and make real HTTP requests): what runs when, its events, that a failing hook
//! never changes the heal's outcome, and that no hook runs twice for one attempt or one heal,
//! across a loop dropped mid-heal and built again from its state.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use central_core::{
    Clock, EventKind, FailureKind, HealEvent, HealLoop, Inventory, LoopOptions, NodeTags, Ports,
    Step, TickReport,
};
use process_manager::testkit::{instrumented, Faulty, Recording};
use process_manager::{
    ExitStatus, MemoryProcessManager, Operation, ProcessManagerPort, ServiceConfig, ServiceLabel,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use EventKind::*;

type TestManager = Recording<Faulty<MemoryProcessManager>>;

fn worker() -> ServiceLabel {
    ServiceLabel::new("worker").unwrap()
}

async fn manager() -> Arc<TestManager> {
    let pm = Arc::new(instrumented(MemoryProcessManager::new()));
    pm.enable(&ServiceConfig::new(worker(), "/opt/bin/worker"))
        .await
        .unwrap();
    pm.clear_calls();
    pm
}

fn heal_loop(inv: &Inventory, pm: &Arc<TestManager>, state: &std::path::Path) -> HealLoop {
    HealLoop::new(
        inv,
        Ports::new().with_manager("null", pm.clone()),
        LoopOptions::new(NodeTags::new("hooks", "linux"))
            .with_clock(Clock::system())
            .with_seed(7)
            .with_state_dir(state),
    )
    .unwrap()
}

fn inventory(hooks: &str) -> Inventory {
    let text = format!(
        "[loop]\nheal_timeout = \"5s\"\n\n[heal]\nfailures_to_down = 1\npasses_to_up = 1\ngrace = \"0s\"\njitter = 0.0\nbackoff_initial = \"1ms\"\nbackoff_max = \"1ms\"\nstart_grace = \"0s\"\n\n\
         [[service]]\nlabel = \"worker\"\nmanager = \"null\"\n\n{hooks}"
    );
    Inventory::parse("hooks.toml", &text).unwrap_or_else(|e| panic!("{e}"))
}

fn kinds(report: &TickReport) -> Vec<EventKind> {
    report.events.iter().map(|e| e.event).collect()
}

fn hook_events(report: &TickReport) -> Vec<&HealEvent> {
    report
        .events
        .iter()
        .filter(|e| matches!(e.event, HookSucceeded | HookFailed))
        .collect()
}

/// An HTTP server that answers `status` to every request and keeps each request's first line.
struct CountingServer {
    url: String,
    requests: Arc<Mutex<Vec<String>>>,
    connections: Arc<AtomicUsize>,
}

impl CountingServer {
    async fn start(status: u16) -> CountingServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/api/inngest", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (seen, count) = (requests.clone(), connections.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else {
                    return;
                };
                count.fetch_add(1, Ordering::SeqCst);
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&head);
                    seen.lock()
                        .unwrap()
                        .push(text.lines().next().unwrap_or("").to_string());
                    let answer = format!(
                        "HTTP/1.1 {status} Whatever\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                    let _ = conn.write_all(answer.as_bytes()).await;
                });
            }
        });
        CountingServer {
            url,
            requests,
            connections,
        }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn before_restart_runs_before_each_restart_with_the_attempt_and_never_hides_it() {
    let dir = tempfile::tempdir().unwrap();
    let marks = dir.path().join("marks");
    let pm = manager().await;
    let inv = inventory(&format!(
        "[[service.before_restart]]\nkind = \"command\"\nargv = [\"/bin/sh\", \"-c\", \"echo \\\"$JOELCLAW_SERVICE $JOELCLAW_HOOK $JOELCLAW_STEP $JOELCLAW_ATTEMPT\\\" >> {m}\"]\n\n\
         [[service.before_restart]]\nkind = \"command\"\nargv = [\"/bin/sh\", \"-c\", \"exit 3\"]\ntimeout = \"5s\"\n",
        m = marks.display()
    ));
    let mut heal = heal_loop(&inv, &pm, &dir.path().join("state"));
    pm.crash(&worker(), ExitStatus::Signal(9));
    let r = heal.tick().await;
    assert_eq!(
        kinds(&r),
        vec![ProbeFailed, HealStarted, HookSucceeded, HookFailed]
    );
    let hooks = hook_events(&r);
    assert_eq!(hooks[0].cause.as_deref(), Some("before_restart"));
    assert_eq!(hooks[0].step, Some(Step::Restart));
    assert_eq!(hooks[0].attempt, Some(1));
    assert_eq!(
        hooks[1].error_kind.map(FailureKind::as_str),
        Some("hook-failed")
    );
    assert!(
        hooks[1].detail.contains("exited 3") && hooks[1].detail.contains("restart goes on"),
        "{}",
        hooks[1].detail
    );
    // The failing hook did not stop the restart, and the restart's own outcome is its own.
    assert_eq!(pm.count_for(Operation::Restart, &worker()), 1);
    assert_eq!(
        std::fs::read_to_string(&marks).unwrap(),
        "worker before_restart restart 1\n"
    );
    let r = heal.tick().await;
    assert_eq!(kinds(&r), vec![ProbeRecovered, HealSucceeded]);
    assert_eq!(
        std::fs::read_to_string(&marks).unwrap().lines().count(),
        1,
        "no hook without a restart"
    );
}

#[tokio::test]
async fn after_heal_is_called_once_per_successful_heal_across_a_loop_dropped_mid_heal() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let marks = dir.path().join("marks");
    let server = CountingServer::start(204).await;
    let pm = manager().await;
    let inv = inventory(&format!(
        "[[service.before_restart]]\nkind = \"command\"\nargv = [\"/bin/sh\", \"-c\", \"echo $JOELCLAW_ATTEMPT >> {m}\"]\n\n\
         [[service.after_heal]]\nkind = \"http\"\nmethod = \"put\"\nurl = \"{url}\"\ntimeout = \"5s\"\n",
        m = marks.display(),
        url = server.url
    ));

    // The agent restarts the worker, then dies before it saw whether the restart worked.
    let mut first = heal_loop(&inv, &pm, &state);
    pm.crash(&worker(), ExitStatus::Signal(9));
    let r = first.tick().await;
    assert_eq!(kinds(&r), vec![ProbeFailed, HealStarted, HookSucceeded]);
    drop(first);
    assert!(
        server.requests().is_empty(),
        "not before the heal is verified"
    );

    // The next agent verifies the remembered attempt: one heal.succeeded, one call.
    let mut second = heal_loop(&inv, &pm, &state);
    let r = second.tick().await;
    assert_eq!(kinds(&r), vec![HealSucceeded, HookSucceeded]);
    let done = hook_events(&r)[0];
    assert_eq!(done.cause.as_deref(), Some("after_heal"));
    assert_eq!(done.attempt, Some(1));
    assert!(done.detail.contains("answered 204"), "{}", done.detail);
    assert_eq!(server.requests(), vec!["PUT /api/inngest HTTP/1.1"]);
    for _ in 0..2 {
        assert_eq!(kinds(&second.tick().await), Vec::<EventKind>::new());
    }
    drop(second);

    // A third agent on the same state: the heal is over, nothing is called again.
    let mut third = heal_loop(&inv, &pm, &state);
    assert_eq!(kinds(&third.tick().await), Vec::<EventKind>::new());
    assert_eq!(server.requests().len(), 1);
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
    // The before_restart hook ran once, for attempt 1, though two agents saw the attempt.
    assert_eq!(std::fs::read_to_string(&marks).unwrap(), "1\n");

    // A second heal is a second call.
    pm.crash(&worker(), ExitStatus::Signal(9));
    third.tick().await;
    let r = third.tick().await;
    assert_eq!(
        kinds(&r),
        vec![ProbeRecovered, HealSucceeded, HookSucceeded]
    );
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn a_failing_after_heal_hook_is_reported_and_the_heal_still_succeeded() {
    let dir = tempfile::tempdir().unwrap();
    let server = CountingServer::start(500).await;
    let pm = manager().await;
    let inv = inventory(&format!(
        "[[service.after_heal]]\nkind = \"http\"\nmethod = \"POST\"\nurl = \"{}\"\n\n\
         [[service.after_heal]]\nkind = \"command\"\nargv = [\"/bin/sleep\", \"30\"]\ntimeout = \"300ms\"\n",
        server.url
    ));
    let mut heal = heal_loop(&inv, &pm, &dir.path().join("state"));
    pm.crash(&worker(), ExitStatus::Signal(9));
    heal.tick().await;
    let r = heal.tick().await;
    assert_eq!(
        kinds(&r),
        vec![ProbeRecovered, HealSucceeded, HookFailed, HookFailed]
    );
    let hooks = hook_events(&r);
    assert!(
        hooks[0].detail.contains("answered 500, not 2xx")
            && hooks[0].detail.contains("the heal itself succeeded"),
        "{}",
        hooks[0].detail
    );
    assert_eq!(hooks[1].error_kind, Some(FailureKind::Timeout));
    assert_eq!(server.requests(), vec!["POST /api/inngest HTTP/1.1"]);
    let status = heal.status();
    assert_eq!(status.services[0].health, central_core::Health::Healthy);
}
