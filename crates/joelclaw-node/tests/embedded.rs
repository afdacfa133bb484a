//! The embedded supervisor against real child processes: the conformance suite, exit detection,
//! SIGTERM-then-SIGKILL stop, no orphans, and the persisted disabled set.

mod common;
use common::alive;

use std::path::Path;
use std::time::Duration;

use joelclaw_node::embedded::{EmbeddedOptions, EmbeddedSupervisor, EmbeddedView};
use process_manager::testkit::Fixture;
use process_manager::{
    DisableOutcome, ExitStatus, ProcessError, ProcessManagerPort, RunState, ServiceConfig,
    ServiceEvent, ServiceLabel, StopOutcome,
};

fn supervisor(dir: &Path) -> EmbeddedSupervisor {
    let mut opts = EmbeddedOptions::under(dir);
    opts.stop_grace = Duration::from_secs(2);
    EmbeddedSupervisor::new(opts).unwrap()
}

/// How long a test waits for the supervisor to act: a bound, not a timing assertion.
const SETTLE: Duration = Duration::from_secs(10);

// A supervisor of its own per scenario; its folder lives as long as the scenario, and a crash
// is a SIGKILL of the child. (Dropping the supervisor kills any child left.)
process_manager::conformance_tests!(
    conformance,
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)],
    |_| async {
        let dir = tempfile::tempdir().unwrap();
        let sup = supervisor(dir.path());
        let fx = Fixture::new("conf-emb-", "/bin/sleep", &["1000"])
            .with_kill(|_label, pid| {
                let pid = pid.expect("a running service has a pid");
                nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::SIGKILL,
                )
                .unwrap();
            })
            .keeping(dir);
        Some((sup, fx))
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_is_detected_at_once_and_pushed() {
    let dir = tempfile::tempdir().unwrap();
    let sup = supervisor(dir.path());
    let label = ServiceLabel::new("crasher").unwrap();
    let mut events = sup.events().unwrap();
    sup.enable(&ServiceConfig::new(label.clone(), "/bin/sleep").with_args(["1000"]))
        .await
        .unwrap();
    let pid = sup.inspect(&label).await.unwrap().pid.unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::SIGKILL,
    )
    .unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .expect("an exit event")
        .unwrap();
    assert_eq!(
        ev,
        ServiceEvent::Exited {
            label: label.clone(),
            status: ExitStatus::Signal(9)
        }
    );
    let st = sup.inspect(&label).await.unwrap();
    assert_eq!(st.state, RunState::Stopped);
    assert_eq!(st.last_exit, Some(ExitStatus::Signal(9)));
    assert_eq!(st.pid, None);
    assert!(!alive(pid), "the killed child was reaped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_escalates_to_sigkill_and_takes_the_whole_group() {
    let dir = tempfile::tempdir().unwrap();
    let sup = supervisor(dir.path());
    let label = ServiceLabel::new("stubborn").unwrap();
    let pidfile = dir.path().join("grandchild.pid");
    // A shell that ignores SIGTERM and leaves a grandchild behind.
    let script = format!(
        "trap '' TERM; sleep 1000 & echo $! > {}; wait",
        pidfile.display()
    );
    sup.enable(&ServiceConfig::new(label.clone(), "/bin/sh").with_args(["-c", &script]))
        .await
        .unwrap();
    sysutil::poll::until_true("the grandchild pid file", SETTLE, || {
        std::fs::read_to_string(&pidfile).is_ok_and(|s| !s.trim().is_empty())
    })
    .await;
    let leader = sup.inspect(&label).await.unwrap().pid.unwrap();
    let grandchild: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(sup.stop(&label).await.unwrap(), StopOutcome::Stopped);
    let st = sup.inspect(&label).await.unwrap();
    assert_eq!(
        st.last_exit,
        Some(ExitStatus::Signal(9)),
        "it needed SIGKILL"
    );
    sysutil::poll::until_true("leader and grandchild gone", SETTLE, || {
        !alive(leader) && !alive(grandchild)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_survives_an_agent_restart() {
    let dir = tempfile::tempdir().unwrap();
    let label = ServiceLabel::new("off").unwrap();
    let cfg = ServiceConfig::new(label.clone(), "/bin/sleep").with_args(["1000"]);
    {
        let sup = supervisor(dir.path());
        sup.enable(&cfg).await.unwrap();
        assert_eq!(sup.disable(&label).await.unwrap(), DisableOutcome::Disabled);
        assert_eq!(
            sup.disable(&label).await.unwrap(),
            DisableOutcome::AlreadyDisabled
        );
    }
    // A new agent over the same state folder knows it is disabled (and so does not start it).
    let sup = supervisor(dir.path());
    assert!(sup.is_disabled(&label));
    // An explicit enable lifts the disable, also for the next agent.
    sup.enable(&cfg).await.unwrap();
    assert!(sup.inspect(&label).await.unwrap().is_running());
    assert!(!supervisor(dir.path()).is_disabled(&label));
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_program_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let sup = supervisor(dir.path());
    let cfg = ServiceConfig::new(
        ServiceLabel::new("ghost").unwrap(),
        "/nonexistent/bin/worker",
    );
    match sup.enable(&cfg).await {
        Err(ProcessError::InvalidInput { detail, .. }) => {
            assert!(detail.contains("/nonexistent/bin/worker"), "{detail}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_go_to_files() {
    let dir = tempfile::tempdir().unwrap();
    let sup = supervisor(dir.path());
    let label = ServiceLabel::new("talker").unwrap();
    let mut cfg =
        ServiceConfig::new(label.clone(), "/bin/sh").with_args(["-c", "echo out; echo err >&2"]);
    cfg.env.insert("PATH".into(), "/usr/bin:/bin".into());
    sup.enable(&cfg).await.unwrap();
    let out = dir.path().join("logs/talker.out.log");
    let err = dir.path().join("logs/talker.err.log");
    sysutil::poll::until_true("both logs written", SETTLE, || {
        std::fs::read_to_string(&out).is_ok_and(|s| s == "out\n")
            && std::fs::read_to_string(&err).is_ok_and(|s| s == "err\n")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_process_sees_the_children_through_the_published_view() {
    let dir = tempfile::tempdir().unwrap();
    let sup = supervisor(dir.path());
    let view = EmbeddedView::new(dir.path());
    let label = ServiceLabel::new("watched").unwrap();
    assert!(matches!(
        view.inspect(&label).await,
        Err(ProcessError::NotFound { .. })
    ));
    sup.enable(&ServiceConfig::new(label.clone(), "/bin/sleep").with_args(["1000"]))
        .await
        .unwrap();
    let pid = sup.inspect(&label).await.unwrap().pid.unwrap();
    let seen = view.inspect(&label).await.unwrap();
    assert_eq!((seen.state, seen.pid), (RunState::Running, Some(pid)));
    assert!(matches!(
        view.restart(&label).await,
        Err(ProcessError::NotSupported { .. })
    ));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::SIGKILL,
    )
    .unwrap();
    sysutil::poll::until_true("the exit published", SETTLE, || {
        std::fs::read_to_string(dir.path().join("services.json"))
            .is_ok_and(|s| s.contains("\"signal\": 9"))
    })
    .await;
    let seen = view.inspect(&label).await.unwrap();
    assert_eq!(seen.state, RunState::Stopped);
    assert_eq!(seen.last_exit, Some(ExitStatus::Signal(9)));
}

/// Row "a hang": a stopped (SIGSTOP) child gets its SIGTERM at once (SIGCONT goes with it), not
/// SIGKILL after the grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_child_gets_its_sigterm_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let sup = supervisor(dir.path());
    let label = ServiceLabel::new("hung").unwrap();
    // A grace far past the bound below: only SIGTERM can end it in time.
    sup.set_stop_grace(&label, Duration::from_secs(600));
    sup.enable(&ServiceConfig::new(label.clone(), "/bin/sleep").with_args(["1000"]))
        .await
        .unwrap();
    let pid = sup.inspect(&label).await.unwrap().pid.unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::SIGSTOP,
    )
    .unwrap();
    let stopped = tokio::time::timeout(SETTLE, sup.stop(&label))
        .await
        .expect("stopped well within the grace");
    assert_eq!(stopped.unwrap(), StopOutcome::Stopped);
    let st = sup.inspect(&label).await.unwrap();
    assert_eq!(
        st.last_exit,
        Some(ExitStatus::Signal(15)),
        "ended by its SIGTERM"
    );
    assert!(!alive(pid));
}

/// Each service has its own stop grace: one that ignores SIGTERM is killed after its own short
/// grace, not the supervisor's long default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_s_own_stop_grace_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = EmbeddedOptions::under(dir.path());
    opts.stop_grace = Duration::from_secs(600);
    let sup = EmbeddedSupervisor::new(opts).unwrap();
    let label = ServiceLabel::new("stubborn").unwrap();
    sup.set_stop_grace(&label, Duration::from_millis(200));
    sup.enable(
        &ServiceConfig::new(label.clone(), "/bin/sh").with_args(["-c", "trap '' TERM; sleep 1000"]),
    )
    .await
    .unwrap();
    // Let the shell set its trap before it is asked to stop.
    let pid = sup.inspect(&label).await.unwrap().pid.unwrap();
    let status_file = format!("/proc/{pid}/status");
    sysutil::poll::until_true("the shell's TERM trap", SETTLE, || {
        std::fs::read_to_string(&status_file).is_ok_and(|s| {
            // SIGTERM (15) is bit 14 of the ignored-signals mask.
            s.lines()
                .filter_map(|l| l.strip_prefix("SigIgn:"))
                .any(|mask| u64::from_str_radix(mask.trim(), 16).is_ok_and(|m| m & (1 << 14) != 0))
        })
    })
    .await;
    let stopped = tokio::time::timeout(SETTLE, sup.stop(&label))
        .await
        .expect("killed after its own 200 ms grace, not the 600 s default");
    assert_eq!(stopped.unwrap(), StopOutcome::Stopped);
    let st = sup.inspect(&label).await.unwrap();
    assert_eq!(st.last_exit, Some(ExitStatus::Signal(9)));
}
