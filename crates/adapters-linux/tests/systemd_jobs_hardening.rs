//! Hardened units and jobs against a real systemd 252 (the harness's nspawn container, reached
//! through `nsenter`): a hardened network service still starts and answers, passes
//! `systemd-analyze verify` and scores ≤ 2.5 in `systemd-analyze security`; a timer job runs
//! when due and a path job when its path changes.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use adapters_linux::{ServiceAccount, SystemdProcessManager};
use process_manager::{
    CalendarInterval, EnableOutcome, ProcessManagerPort, RestartOutcome, RestartPolicy, RunState,
    ServiceConfig, ServiceLabel, Triggers,
};

/// How long a state change systemd makes on its own may take before a test gives up.
const SETTLE: Duration = Duration::from_secs(30);

/// The highest `systemd-analyze security` exposure a hardened network service may have.
const MAX_EXPOSURE: f64 = 2.5;

struct Container {
    pid: String,
    scratch: PathBuf,
}

impl Container {
    fn get() -> Option<Self> {
        let pid = support::daemon_env("JOELCLAW_TEST_SYSTEMD_PID", "real systemd")?;
        let scratch = support::daemon_env("JOELCLAW_TEST_SCRATCH", "real systemd")?;
        Some(Container {
            pid,
            scratch: scratch.into(),
        })
    }

    fn unit_dir(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root/etc/systemd/system", self.pid))
    }

    fn manager(&self) -> SystemdProcessManager {
        SystemdProcessManager::system()
            .with_command_prefix(["nsenter", "-t", &self.pid, "-a"])
            .with_unit_dir(self.unit_dir())
            .with_service_account(ServiceAccount::new("joelclaw"))
    }

    /// Runs a command inside the container, with a deadline.
    fn run(&self, argv: &[&str]) -> std::process::Output {
        Command::new("timeout")
            .args(["60", "nsenter", "-t", &self.pid, "-a"])
            .args(argv)
            .output()
            .expect("nsenter")
    }

    /// A fresh folder in the scratch directory (the same path inside the container and out)
    /// that the service account can write.
    fn fresh_dir(&self, name: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = self.scratch.join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        dir
    }
}

fn label(s: &str) -> ServiceLabel {
    ServiceLabel::new(s).unwrap()
}

/// Disables and removes a unit and its timer and path units, whatever an earlier run left.
async fn cleanup(pm: &SystemdProcessManager, c: &Container, l: &ServiceLabel) {
    let _ = pm.disable(l).await;
    for ext in ["service", "timer", "path"] {
        let _ = std::fs::remove_file(c.unit_dir().join(format!("{l}.{ext}")));
    }
    c.run(&["systemctl", "daemon-reload"]);
    c.run(&["systemctl", "reset-failed", &format!("{l}.service")]);
}

/// The number in `systemd-analyze security`'s "→ Overall exposure level for X: 1.3 OK" line.
fn overall_exposure(report: &str) -> Option<f64> {
    let line = report
        .lines()
        .find(|l| l.contains("Overall exposure level for"))?;
    let (_, rest) = line.rsplit_once(": ")?;
    rest.split_whitespace().next()?.parse().ok()
}

/// Lines `systemd-analyze verify` printed about `name` (it also warns about other units).
fn verify_complaints(c: &Container, paths: &[&str], name: &str) -> Vec<String> {
    let mut argv = vec!["systemd-analyze", "verify"];
    argv.extend(paths);
    let out = c.run(&argv);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "verify failed:\n{stderr}");
    stderr
        .lines()
        .filter(|l| l.contains(name))
        .map(str::to_string)
        .collect()
}

fn read_lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

#[test]
fn the_exposure_line_is_read() {
    let report = "  NAME  DESCRIPTION  EXPOSURE\n✗ PrivateNetwork=  x  0.5\n\n→ Overall exposure level for jc-x.service: 1.3 OK 🙂\n";
    assert_eq!(overall_exposure(report), Some(1.3));
    assert_eq!(overall_exposure("no such line"), None);
}

#[tokio::test]
async fn a_hardened_network_service_answers_verifies_and_scores_at_most_2_5() {
    let Some(c) = Container::get() else { return };
    let pm = c.manager();
    let l = label("jc-hardened-httpd");
    cleanup(&pm, &c, &l).await;
    let www = c.fresh_dir("jc-hardened-www");
    std::fs::write(www.join("index.html"), "hardened and answering\n").unwrap();
    let logs = c.fresh_dir("jc-hardened-logs");
    let port = "127.0.0.1:18181";
    let mut cfg = ServiceConfig::new(l.clone(), "/bin/busybox").with_args([
        "httpd",
        "-f",
        "-v",
        "-p",
        port,
        "-h",
        www.to_str().unwrap(),
    ]);
    cfg.working_dir = Some(www.clone());
    cfg.stdout_path = Some(logs.join("out.log"));
    cfg.stderr_path = Some(logs.join("err.log"));
    assert_eq!(pm.enable(&cfg).await.unwrap(), EnableOutcome::Installed);
    sysutil::poll::until("jc-hardened-httpd running", SETTLE, || async {
        pm.inspect(&l).await.ok().filter(|s| s.is_running())
    })
    .await;
    let url = format!("http://{port}/index.html");
    let page = sysutil::poll::until("an answer from the hardened httpd", SETTLE, || async {
        // No `-T`: busybox 1.35's wget crashes on it; `run` has its own deadline.
        let out = c.run(&["busybox", "wget", "-q", "-O", "-", &url]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    })
    .await;
    assert_eq!(page, "hardened and answering\n");

    let unit_file = format!("/etc/systemd/system/{l}.service");
    let complaints = verify_complaints(&c, &[&unit_file], l.as_str());
    assert!(complaints.is_empty(), "verify warned: {complaints:?}");

    let out = c.run(&["systemd-analyze", "security", &format!("{l}.service")]);
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    let score = overall_exposure(&report)
        .unwrap_or_else(|| panic!("no exposure line in:\n{report}\n{out:?}"));
    // Printed for the record (the closing note lists each unit's score).
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!("systemd-analyze security {l}.service: {score}\n").as_bytes(),
    );
    assert!(
        score <= MAX_EXPOSURE,
        "{l} scores {score} > {MAX_EXPOSURE}:\n{report}"
    );
    cleanup(&pm, &c, &l).await;
}

#[tokio::test]
async fn a_timer_job_runs_when_due_and_disable_disarms_it() {
    let Some(c) = Container::get() else { return };
    let pm = c.manager();
    let l = label("jc-job-timer");
    cleanup(&pm, &c, &l).await;
    let state = c.fresh_dir("jc-job-timer");
    let mut cfg = ServiceConfig::new(l.clone(), "/bin/sh").with_args(["-c", "date >> runs"]);
    cfg.working_dir = Some(state.clone());
    cfg.restart = RestartPolicy::Never;
    // Only the trigger runs it, so each line is a run the timer started.
    cfg.run_at_load = false;
    cfg.triggers = Triggers {
        interval: Some(Duration::from_secs(2)),
        // Never due during the test; checked by `verify` below.
        calendar: vec![CalendarInterval {
            month: Some(2),
            day: Some(30),
            ..CalendarInterval::default()
        }],
        watch_paths: Vec::new(),
    };
    assert_eq!(pm.enable(&cfg).await.unwrap(), EnableOutcome::Installed);
    let link = c.unit_dir().join(format!("timers.target.wants/{l}.timer"));
    assert!(
        link.symlink_metadata().is_ok(),
        "no boot link for the timer"
    );
    let runs = state.join("runs");
    sysutil::poll::until("two runs of the timer job", SETTLE, || async {
        (read_lines(&runs) >= 2).then_some(())
    })
    .await;
    let st = pm.inspect(&l).await.unwrap();
    assert_eq!(st.enabled, Some(true), "{st:?}");
    assert!(
        matches!(
            st.state,
            RunState::SupervisorRestarting | RunState::Starting | RunState::Running
        ),
        "an armed job is left to systemd: {st:?}"
    );
    let complaints = verify_complaints(
        &c,
        &[
            &format!("/etc/systemd/system/{l}.service"),
            &format!("/etc/systemd/system/{l}.timer"),
        ],
        l.as_str(),
    );
    assert!(complaints.is_empty(), "verify warned: {complaints:?}");
    // Enabling the same job again neither reruns nor rearms anything.
    assert_eq!(pm.enable(&cfg).await.unwrap(), EnableOutcome::Unchanged);

    pm.disable(&l).await.unwrap();
    assert!(link.symlink_metadata().is_err(), "timer link left");
    let st = pm.inspect(&l).await.unwrap();
    assert_eq!((st.enabled, st.state), (Some(false), RunState::Stopped));
    cleanup(&pm, &c, &l).await;
}

#[tokio::test]
async fn a_path_job_runs_when_its_path_changes() {
    let Some(c) = Container::get() else { return };
    let pm = c.manager();
    let l = label("jc-job-path");
    cleanup(&pm, &c, &l).await;
    let inbox = c.fresh_dir("jc-job-path-inbox");
    let state = c.fresh_dir("jc-job-path");
    let watched = inbox.join("incoming");
    let mut cfg = ServiceConfig::new(l.clone(), "/bin/sh").with_args(["-c", "date >> runs"]);
    cfg.working_dir = Some(state.clone());
    cfg.restart = RestartPolicy::Never;
    cfg.run_at_load = false;
    cfg.triggers.watch_paths = vec![watched.clone()];
    assert_eq!(pm.enable(&cfg).await.unwrap(), EnableOutcome::Installed);
    let st = sysutil::poll::until("the path unit armed", SETTLE, || async {
        pm.inspect(&l)
            .await
            .ok()
            .filter(|s| s.state == RunState::SupervisorRestarting)
    })
    .await;
    assert_eq!(st.enabled, Some(true));
    let runs = state.join("runs");
    assert_eq!(read_lines(&runs), 0, "ran before its path changed");
    // Touched again while waiting: a daemon-reload (other tests on this systemd reload it)
    // re-arms path units, and a change made in that instant is not seen; each touch is a
    // change, and the job runs only on one.
    let mut touched = std::time::Instant::now() - Duration::from_secs(2);
    sysutil::poll::until("the path job's run", SETTLE, || {
        if touched.elapsed() >= Duration::from_secs(2) {
            c.run(&["touch", watched.to_str().unwrap()]);
            touched = std::time::Instant::now();
        }
        let ran = read_lines(&runs) >= 1;
        async move { ran.then_some(()) }
    })
    .await;
    let complaints = verify_complaints(
        &c,
        &[
            &format!("/etc/systemd/system/{l}.service"),
            &format!("/etc/systemd/system/{l}.path"),
        ],
        l.as_str(),
    );
    assert!(complaints.is_empty(), "verify warned: {complaints:?}");
    // Stop disarms the trigger too; the job is then stopped, not waiting.
    pm.stop(&l).await.unwrap();
    let st = pm.inspect(&l).await.unwrap();
    assert_eq!(st.state, RunState::Stopped, "{st:?}");
    cleanup(&pm, &c, &l).await;
}

#[tokio::test]
async fn a_daemon_that_becomes_a_job_and_back_leaves_no_stale_unit() {
    let Some(c) = Container::get() else { return };
    let pm = c.manager();
    let l = label("jc-job-switch");
    cleanup(&pm, &c, &l).await;
    let daemon =
        ServiceConfig::new(l.clone(), "/bin/sh").with_args(["-c", "while :; do sleep 1; done"]);
    pm.enable(&daemon).await.unwrap();
    let before = sysutil::poll::until("jc-job-switch running", SETTLE, || async {
        pm.inspect(&l).await.ok().filter(|s| s.is_running())
    })
    .await;

    let boot_link = c
        .unit_dir()
        .join(format!("multi-user.target.wants/{l}.service"));
    assert!(
        boot_link.symlink_metadata().is_ok(),
        "the daemon has no boot link"
    );

    let mut job = daemon.clone();
    job.args = vec!["-c".into(), "true".into()];
    job.restart = RestartPolicy::Never;
    job.run_at_load = false;
    job.triggers.interval = Some(Duration::from_secs(3600));
    assert_eq!(pm.enable(&job).await.unwrap(), EnableOutcome::Updated);
    let timer = c.unit_dir().join(format!("{l}.timer"));
    assert!(timer.is_file(), "no timer written");
    // Only its trigger starts a job that does not run at load: not also every boot.
    assert!(
        boot_link.symlink_metadata().is_err(),
        "the daemon's boot link outlived it"
    );
    // The daemon's process does not outlive its definition.
    let st = sysutil::poll::until("the old daemon gone", SETTLE, || async {
        pm.inspect(&l)
            .await
            .ok()
            .filter(|s| s.pid != before.pid && s.state == RunState::SupervisorRestarting)
    })
    .await;
    assert_eq!(st.enabled, Some(true), "{st:?}");

    assert_eq!(pm.enable(&daemon).await.unwrap(), EnableOutcome::Updated);
    assert!(!timer.exists(), "timer left after the job became a daemon");
    let link = c.unit_dir().join(format!("timers.target.wants/{l}.timer"));
    assert!(link.symlink_metadata().is_err(), "timer link left");
    sysutil::poll::until("jc-job-switch a daemon again", SETTLE, || async {
        pm.inspect(&l).await.ok().filter(|s| s.is_running())
    })
    .await;
    cleanup(&pm, &c, &l).await;
}

#[tokio::test]
async fn a_hand_written_timer_of_the_same_name_is_never_removed() {
    let Some(c) = Container::get() else { return };
    let pm = c.manager();
    let l = label("jc-own-timer");
    cleanup(&pm, &c, &l).await;
    // A person's own timer for the service, not written by the adapter.
    let timer = c.unit_dir().join(format!("{l}.timer"));
    std::fs::write(
        &timer,
        format!("[Unit]\nDescription=by hand\n[Timer]\nOnCalendar=yearly\nUnit={l}.service\n"),
    )
    .unwrap();
    let daemon =
        ServiceConfig::new(l.clone(), "/bin/sh").with_args(["-c", "while :; do sleep 1; done"]);
    pm.enable(&daemon).await.unwrap();
    assert!(timer.is_file(), "a hand-written timer was removed");
    std::fs::remove_file(&timer).unwrap();
    cleanup(&pm, &c, &l).await;
}

#[tokio::test]
async fn restarting_a_long_job_does_not_wait_for_its_run() {
    let Some(c) = Container::get() else { return };
    let pm = c.manager();
    let l = label("jc-long-job");
    cleanup(&pm, &c, &l).await;
    let mut job = ServiceConfig::new(l.clone(), "/bin/sh").with_args(["-c", "sleep 600"]);
    job.restart = RestartPolicy::Never;
    job.run_at_load = false;
    job.triggers.interval = Some(Duration::from_secs(3600));
    pm.enable(&job).await.unwrap();
    // The heal deadline (the adapter's own call deadline is 30 s) would cut a start that
    // waited for this run; a queued start returns at once, and the run goes on.
    let outcome = tokio::time::timeout(Duration::from_secs(20), pm.restart(&l))
        .await
        .expect("restart of a job waited for its run")
        .unwrap();
    assert_eq!(outcome, RestartOutcome::Started);
    // A oneshot is `activating` for as long as its run lasts.
    sysutil::poll::until("the long job running", SETTLE, || async {
        pm.inspect(&l).await.ok().filter(|s| {
            s.pid.is_some() && matches!(s.state, RunState::Starting | RunState::Running)
        })
    })
    .await;
    cleanup(&pm, &c, &l).await;
}
