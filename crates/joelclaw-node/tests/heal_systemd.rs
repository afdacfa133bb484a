//! The heal loop over a real systemd 252 (booted by `scripts/harness/systemd.sh`, reached
//! through `nsenter`), for the rows of the heal-loop table that only a real manager shows:
//! systemd frozen (SIGSTOP of its PID 1) while every service is healthy.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use adapters_linux::{ServiceAccount, SystemdProcessManager};
use central_core::{EventKind, HealLoop, Inventory, LoopOptions, MemorySink, NodeTags, Ports};
use process_manager::{ProcessManagerPort, RunState, ServiceConfig, ServiceLabel};

mod common;
use common::systemd_pid;

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

/// One scenario at a time: one of them freezes the systemd the other needs.
static SYSTEMD: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const LABELS: [&str; 3] = ["jc-heal-frozen-a", "jc-heal-frozen-b", "jc-heal-frozen-c"];

/// Rows "systemd frozen (all services healthy)": no restart or repair of a healthy service, no
/// breaker, no person called; one `manager.unreachable`, and `manager.recovered` after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_systemd_restarts_nothing_and_is_reported_once() {
    let Some(pid) = systemd_pid() else { return };
    let _one = SYSTEMD.lock().await;
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

/// Row "a unit's `User=` changed to root, hardening removed": `run` notices the unit file is
/// not the desired one within a few rounds, says so with its own event, and writes it back,
/// though the service keeps answering.
#[test]
fn run_repairs_a_unit_flipped_to_root() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let Some(pid) = systemd_pid() else { return };
    let _one = SYSTEMD.blocking_lock();
    let label = "jc-heal-drift";
    let unit_dir = PathBuf::from(format!("/proc/{pid}/root/etc/systemd/system"));
    let unit = unit_dir.join(format!("{label}.service"));
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("drift.toml");
    std::fs::write(
        &inv,
        format!(
            "[node]\nid = \"drift\"\nrole = \"fleet\"\n\n\
             [managers.systemd]\ndefinition_dir = \"{}\"\ncommand_prefix = [\"nsenter\", \"-t\", \"{pid}\", \"-a\"]\nservice_account = \"joelclaw\"\n\n\
             [loop]\ninterval = \"1s\"\ndrift_every = 2\n\n\
             [[service]]\nlabel = \"{label}\"\nmanager = \"systemd\"\n\n[service.config]\nprogram = \"/usr/bin/sleep\"\nargs = [\"100000\"]\n",
            unit_dir.display()
        ),
    )
    .unwrap();
    let agent = Command::new(env!("CARGO_BIN_EXE_joelclaw-node"))
        .args(["run", "--inventory"])
        .arg(&inv)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the agent");
    struct Stop(
        std::process::Child,
        SystemdProcessManager,
        ServiceLabel,
        PathBuf,
    );
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.0.id() as i32),
                nix::sys::signal::SIGTERM,
            );
            let _ = self.0.wait();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let _ = rt.block_on(self.1.disable(&self.2));
            let _ = std::fs::remove_file(&self.3);
        }
    }
    let mut agent = Stop(
        agent,
        manager(&pid),
        ServiceLabel::new(label).unwrap(),
        unit.clone(),
    );
    let (tx, rx) = std::sync::mpsc::channel::<serde_json::Value>();
    let stdout = agent.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str(&line) {
                let _ = tx.send(v);
            }
        }
    });
    // Installed by `run` itself (not installed -> repaired), then running.
    let desired =
        sysutil::poll::until_blocking("the unit written", Duration::from_secs(30), || {
            std::fs::read_to_string(&unit).ok()
        });
    assert!(desired.contains("User=joelclaw"), "{desired}");
    std::thread::sleep(Duration::from_secs(3));
    while rx.try_recv().is_ok() {}

    let rooted = desired
        .replace("User=joelclaw", "User=root")
        .lines()
        .filter(|l| !l.starts_with("NoNewPrivileges") && !l.starts_with("ProtectSystem"))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&unit, format!("{rooted}\n")).unwrap();
    let drifted = loop {
        let ev = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("a definition.drifted event");
        if ev["event"] == "definition.drifted" {
            break ev;
        }
    };
    assert_eq!(drifted["service"], label);
    assert!(
        drifted["detail"].as_str().unwrap_or("").contains("root"),
        "{drifted}"
    );
    sysutil::poll::until_blocking("the unit written back", Duration::from_secs(30), || {
        (std::fs::read_to_string(&unit).ok()? == desired).then_some(())
    });
}

/// Row "one heal takes 12 s": a unit whose stop takes 12 s is restarted through the real
/// systemd while another service keeps its 1 s rounds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_twelve_second_restart_delays_only_its_own_service() {
    use process_manager::testkit::instrumented;
    use process_manager::Operation;

    let Some(pid) = systemd_pid() else { return };
    let _one = SYSTEMD.lock().await;
    let systemd = Arc::new(instrumented(manager(&pid)));
    let slow = ServiceLabel::new("jc-heal-slow-stop").unwrap();
    let fine = ServiceLabel::new("jc-heal-fine").unwrap();
    // On SIGTERM it sleeps 12 s before it exits, so a restart takes 12 s.
    let slow_config = ServiceConfig::new(slow.clone(), "/bin/sh").with_args([
        "-c",
        "trap 'sleep 12; exit 0' TERM; while :; do sleep 1; done",
    ]);
    let fine_config = ServiceConfig::new(fine.clone(), "/usr/bin/sleep").with_args(["100000"]);
    for config in [&slow_config, &fine_config] {
        systemd.enable(config).await.expect("enable");
    }
    let inv = Inventory::parse(
        "slow.toml",
        &format!(
            "[loop]\ninterval = \"1s\"\nheal_timeout = \"30s\"\n\n[heal]\nfailures_to_down = 1\ngrace = \"0s\"\nstart_grace = \"0s\"\n\n\
             [[service]]\nlabel = \"{slow}\"\nmanager = \"systemd\"\n\n[[service]]\nlabel = \"{fine}\"\nmanager = \"systemd\"\n"
        ),
    )
    .unwrap();
    let mut heal = HealLoop::new(
        &inv,
        Ports::new().with_manager("systemd", systemd.clone()),
        LoopOptions::new(NodeTags::new("slow", "linux")),
    )
    .unwrap();
    // `slow` answers badly (its own health probe), so it is restarted.
    let sick = central_core::ScriptedProbe::passing();
    sick.set_passing(false);
    heal.set_probes(slow.as_str(), vec![Arc::new(sick.clone())]);
    let sink = Arc::new(MemorySink::new());
    heal.add_sink(sink.clone());
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        heal.run(async move {
            let _ = stopped.wait_for(|s| *s).await;
        })
        .await;
    });
    let started = sysutil::poll::until(
        "the restart of the slow unit",
        Duration::from_secs(20),
        || {
            let events = sink.events();
            std::future::ready(
                events
                    .iter()
                    .any(|e| e.event == EventKind::HealStarted && e.service == slow.as_str())
                    .then_some(()),
            )
        },
    );
    started.await;
    sick.set_passing(true);
    let before = systemd.count_for(Operation::Inspect, &fine);
    // While the restart call is in flight (about 12 s), `fine` keeps being probed.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let during = systemd.count_for(Operation::Inspect, &fine) - before;
    let restart_done = systemd
        .calls()
        .iter()
        .any(|c| c.operation == Operation::Restart && c.target.as_deref() == Some(slow.as_str()));
    stop.send(true).unwrap();
    task.await.unwrap();
    for l in [&slow, &fine] {
        let _ = systemd.disable(l).await;
    }
    assert!(restart_done, "the restart was asked for");
    // 1 s rounds for 8 s: at least 3 even on a loaded machine (the old loop: none at all).
    assert!(
        during >= 3,
        "only {during} rounds of the other service in 8 s while the restart ran"
    );
    assert!(
        sink.events()
            .iter()
            .all(|e| e.event != EventKind::HealFailed),
        "{:?}",
        sink.events()
    );
}

/// A monitor-only unit that stops is reported and a person is called, and no start, restart
/// or repair reaches systemd (the adapter's call log), the unit staying down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitor_only_unit_is_escalated_and_never_acted_on() {
    use process_manager::testkit::instrumented;
    use process_manager::Operation;
    let Some(pid) = systemd_pid() else { return };
    let _one = SYSTEMD.lock().await;
    let label = ServiceLabel::new("jc-heal-monitor-only").unwrap();
    let plain = manager(&pid);
    plain
        .enable(&ServiceConfig::new(label.clone(), "/usr/bin/sleep").with_args(["100000"]))
        .await
        .expect("enable");
    let systemd = Arc::new(instrumented(plain.clone()));
    let inv = Inventory::parse(
        "monitor.toml",
        "[loop]\ninterval = \"1s\"\n\n[heal]\nfailures_to_down = 1\ngrace = \"0s\"\n\n\
         [[service]]\nlabel = \"jc-heal-monitor-only\"\nmanager = \"systemd\"\nmonitor_only = true\n",
    )
    .unwrap();
    let mut heal = HealLoop::new(
        &inv,
        Ports::new().with_manager("systemd", systemd.clone()),
        LoopOptions::new(NodeTags::new("monitor", "linux")),
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
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Stopped behind the agent's back (another supervisor's doing).
    plain.stop(&label).await.expect("stop");
    sysutil::poll::until_true("escalated", Duration::from_secs(20), || {
        sink.events()
            .iter()
            .any(|e| e.event == EventKind::HealEscalated)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.send(true).unwrap();
    task.await.unwrap();
    let state = plain.inspect(&label).await.map(|s| s.state);
    let _ = plain.disable(&label).await;
    let events = sink.events();
    let escalated: Vec<_> = events
        .iter()
        .filter(|e| e.event == EventKind::HealEscalated)
        .collect();
    assert_eq!(escalated.len(), 1, "{events:#?}");
    assert_eq!(escalated[0].cause.as_deref(), Some("monitor-only"));
    for op in [
        Operation::Restart,
        Operation::Enable,
        Operation::Stop,
        Operation::Disable,
    ] {
        assert_eq!(systemd.count_for(op, &label), 0, "{op:?} reached systemd");
    }
    assert!(
        systemd.count_for(Operation::Inspect, &label) > 0,
        "it was watched"
    );
    assert_ne!(state.ok(), Some(RunState::Running), "it stayed down");
}
