//! The heal loop over a real systemd 252 (booted by `scripts/harness/systemd.sh`, reached
//! through `nsenter`), for the rows of the heal-loop table that only a real manager shows:
//! systemd frozen (SIGSTOP of its PID 1) while every service is healthy.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use adapters_linux::{ServiceAccount, SystemdProcessManager};
use central_core::{EventKind, HealLoop, Inventory, LoopOptions, MemorySink, NodeTags, Ports};
use process_manager::{ProcessManagerPort, RunState, ServiceConfig, ServiceLabel};

/// The harness's systemd PID, or `None` (SKIPPED) outside CI; under `CI=true` a missing harness
/// fails the test.
fn systemd_pid() -> Option<String> {
    match std::env::var("JOELCLAW_TEST_SYSTEMD_PID") {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("JOELCLAW_TEST_SYSTEMD_PID is not set: this test needs real systemd, and CI=true never skips it; run it through scripts/test");
            }
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                b"SKIPPED (needs real systemd: run scripts/test): JOELCLAW_TEST_SYSTEMD_PID is not set\n",
            );
            None
        }
    }
}

/// Freezes the shared systemd; the drop (panic included) thaws it, so no other test ever
/// finds it frozen for longer than this scenario's few seconds.
struct Frozen(i32);

impl Frozen {
    fn new(pid: &str) -> Frozen {
        let pid: i32 = pid.parse().expect("a pid");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGSTOP)
            .expect("SIGSTOP systemd");
        Frozen(pid)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0),
            nix::sys::signal::SIGCONT,
        );
    }
}

fn manager(pid: &str) -> SystemdProcessManager {
    SystemdProcessManager::system()
        .with_command_prefix(["nsenter", "-t", pid, "-a"].map(String::from).to_vec())
        .with_unit_dir(PathBuf::from(format!(
            "/proc/{pid}/root/etc/systemd/system"
        )))
        .with_service_account(ServiceAccount::new("joelclaw"))
}

const LABELS: [&str; 3] = ["jc-heal-frozen-a", "jc-heal-frozen-b", "jc-heal-frozen-c"];

/// Rows "systemd frozen (all services healthy)": no restart or repair of a healthy service, no
/// breaker, no person called; one `manager.unreachable`, and `manager.recovered` after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_systemd_restarts_nothing_and_is_reported_once() {
    let Some(pid) = systemd_pid() else { return };
    let systemd = Arc::new(manager(&pid));
    let mut pids = Vec::new();
    for l in LABELS {
        let label = ServiceLabel::new(l).unwrap();
        let config = ServiceConfig::new(label.clone(), "/usr/bin/sleep").with_args(["100000"]);
        systemd.enable(&config).await.expect("enable");
        let status = sysutil::poll::until("the unit running", Duration::from_secs(20), || {
            let systemd = systemd.clone();
            let label = label.clone();
            async move {
                let s = systemd.inspect(&label).await.ok()?;
                (s.state == RunState::Running).then_some(s.pid)
            }
        })
        .await;
        pids.push(status);
    }
    let services: String = LABELS
        .iter()
        .map(|l| format!("\n[[service]]\nlabel = \"{l}\"\nmanager = \"systemd\"\n"))
        .collect();
    let inv = Inventory::parse(
        "frozen.toml",
        &format!(
            "[loop]\ninterval = \"1s\"\nprobe_timeout = \"1s\"\nheal_timeout = \"2s\"\nmanager_unreachable_after = \"3s\"\n\n\
             [heal]\nfailures_to_down = 2\ngrace = \"0s\"\nbreaker_threshold = 1\n{services}"
        ),
    )
    .unwrap();
    let mut heal = HealLoop::new(
        &inv,
        Ports::new().with_manager("systemd", systemd.clone()),
        LoopOptions::new(NodeTags::new("frozen", "linux")),
    )
    .unwrap();
    let sink = Arc::new(MemorySink::new());
    heal.add_sink(sink.clone());
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        heal.run(async move {
            let _ = stopped.wait_for(|s| *s).await;
        })
        .await;
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    {
        let _frozen = Frozen::new(&pid);
        tokio::time::sleep(Duration::from_secs(8)).await;
    }
    // Thawed: wait (bounded) for the manager to be seen answering again.
    sysutil::poll::until_true("manager.recovered", Duration::from_secs(20), || {
        sink.events()
            .iter()
            .any(|e| e.event == EventKind::ManagerRecovered)
    })
    .await;
    stop.send(true).unwrap();
    task.await.unwrap();

    let events = sink.events();
    let count = |k: EventKind| events.iter().filter(|e| e.event == k).count();
    let cleanup = async {
        for l in LABELS {
            let _ = systemd.disable(&ServiceLabel::new(l).unwrap()).await;
        }
    };
    let verdict = (
        count(EventKind::ManagerUnreachable),
        count(EventKind::ManagerRecovered),
        count(EventKind::HealStarted),
        count(EventKind::HealFailed),
        count(EventKind::BreakerOpened),
        count(EventKind::HealEscalated),
        count(EventKind::ProbeFailed),
    );
    let mut after = Vec::new();
    for l in LABELS {
        after.push(
            systemd
                .inspect(&ServiceLabel::new(l).unwrap())
                .await
                .ok()
                .and_then(|s| s.pid),
        );
    }
    cleanup.await;
    assert_eq!(verdict, (1, 1, 0, 0, 0, 0, 0), "{events:#?}");
    assert_eq!(after, pids, "no healthy service was restarted");
    assert_eq!(events[0].service, "systemd");
}
