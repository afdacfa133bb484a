//! `SystemdProcessManager` against a real systemd 252, booted in a volatile nspawn container by
//! `scripts/harness/systemd.sh` and reached through `nsenter`.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use adapters_linux::{ServiceAccount, SystemdProcessManager};
use process_manager::testkit::Fixture;
use process_manager::{
    EnableOutcome, LabelPattern, ProcessError, ProcessManagerPort, RestartOutcome, RestartPolicy,
    RunState, ServiceConfig, ServiceLabel, StartLimit,
};

/// How long a state change systemd makes on its own may take before a test gives up.
const SETTLE: Duration = Duration::from_secs(20);

/// The container's systemd, as the harness exported it.
struct Container {
    pid: String,
}

impl Container {
    fn get() -> Option<Self> {
        let pid = support::daemon_env("JOELCLAW_TEST_SYSTEMD_PID", "real systemd")?;
        Some(Container { pid })
    }

    fn unit_dir(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root/etc/systemd/system", self.pid))
    }

    /// A manager for the container's system manager, with a command prefix of `prefix` words
    /// before `nsenter`.
    fn manager_with(&self, prefix: &[&str]) -> SystemdProcessManager {
        let mut words: Vec<String> = prefix.iter().map(|s| s.to_string()).collect();
        words.extend(["nsenter", "-t", &self.pid, "-a"].map(String::from));
        SystemdProcessManager::system()
            .with_command_prefix(words)
            .with_unit_dir(self.unit_dir())
            .with_service_account(ServiceAccount::new("joelclaw"))
    }

    fn manager(&self) -> SystemdProcessManager {
        self.manager_with(&[])
    }

    /// Runs a command inside the container.
    fn run(&self, argv: &[&str]) -> std::process::Output {
        Command::new("nsenter")
            .args(["-t", &self.pid, "-a"])
            .args(argv)
            .output()
            .expect("nsenter")
    }

    fn run_ok(&self, argv: &[&str]) -> String {
        let out = self.run(argv);
        assert!(out.status.success(), "{argv:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A file of a process inside the container (`/proc/<pid>/cmdline` there).
    fn proc_file(&self, pid: u32, name: &str) -> Vec<u8> {
        self.run(&["cat", &format!("/proc/{pid}/{name}")]).stdout
    }
}

/// Removes unit files named `<prefix>*` that an earlier run left.
fn remove_leftovers(c: &Container, prefix: &str) {
    let mut removed = false;
    for entry in std::fs::read_dir(c.unit_dir()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.starts_with(prefix) {
            c.run(&["systemctl", "disable", "--now", &name]);
            std::fs::remove_file(c.unit_dir().join(&name)).unwrap();
            removed = true;
        }
    }
    if removed {
        c.run_ok(&["systemctl", "daemon-reload"]);
    }
}

fn label(s: &str) -> ServiceLabel {
    ServiceLabel::new(s).unwrap()
}

/// A long-running service: `sh -c 'while :; do sleep 1; done' name ARGS...`, so the main
/// process keeps exactly the argv systemd gave it.
fn looping(label_text: &str, args: &[&str]) -> ServiceConfig {
    let mut argv = vec!["-c".to_string(), "while :; do sleep 1; done".into()];
    argv.push(label_text.to_string());
    argv.extend(args.iter().map(|s| s.to_string()));
    ServiceConfig::new(label(label_text), "/bin/sh").with_args(argv)
}

async fn cleanup(pm: &SystemdProcessManager, c: &Container, l: &ServiceLabel) {
    let _ = pm.disable(l).await;
    let _ = std::fs::remove_file(pm.unit_path(l));
    c.run(&["systemctl", "daemon-reload"]);
    c.run(&["systemctl", "reset-failed", &format!("{l}.service")]);
}

/// The container's manager for one scenario, with a label prefix of the scenario's own
/// (scenarios run at once), through `Arc<dyn>` as the heal loop holds it.
fn conformance_setup(scenario: &str) -> Option<(std::sync::Arc<dyn ProcessManagerPort>, Fixture)> {
    let c = Container::get()?;
    let prefix = format!("conf-systemd-{scenario}-");
    // The suite expects a clean slate (its first enable is `Installed`); a rerun against the
    // same container finds the previous run's disabled units.
    remove_leftovers(&c, &prefix);
    let mut fx = Fixture::new(&prefix, "/usr/bin/sleep", &["100000"]);
    fx.settle = SETTLE;
    Some((std::sync::Arc::new(c.manager()), fx))
}

process_manager::conformance_tests!(conformance_on_real_systemd, |scenario| async move {
    conformance_setup(scenario)
});

#[tokio::test]
async fn an_unknown_unit_is_not_found() {
    let Some(c) = Container::get() else { return };
    let pm = c.manager();
    match pm.inspect(&label("jc-no-such-unit")).await {
        Err(ProcessError::NotFound { label, .. }) => assert_eq!(label, "jc-no-such-unit"),
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[tokio::test]
async fn a_generated_unit_passes_systemd_analyze_verify() {
    let Some(c) = Container::get() else { return };
    let pm = c.manager();
    let mut cfg = looping("jc-verify", &["a b", "100%", "$HOME", "x\ny"])
        .with_env("PATH", "/usr/bin:/bin")
        .with_env("NOTE", "quoted \"value\" with 50% and $DOLLAR");
    cfg.working_dir = Some("/tmp".into());
    cfg.stdout_path = Some("/run/jc-verify.out".into());
    cfg.stderr_path = Some("/run/jc-verify.err".into());
    cfg.restart = RestartPolicy::OnFailure;
    cfg.restart_delay = Some(Duration::from_millis(250));
    cfg.start_limit = Some(StartLimit {
        interval: Duration::from_secs(30),
        burst: 4,
    });
    let text = pm.render_unit(&cfg).unwrap();
    // Verify the file in place of a unit, outside the unit path, so nothing is installed.
    let dir = format!("/proc/{}/root/run/jc-verify", c.pid);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(format!("{dir}/jc-verify.service"), &text).unwrap();
    let out = c.run(&[
        "systemd-analyze",
        "verify",
        "/run/jc-verify/jc-verify.service",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "verify failed:\n{stderr}\n{text}");
    let about_ours: Vec<&str> = stderr.lines().filter(|l| l.contains("jc-verify")).collect();
    assert!(about_ours.is_empty(), "verify warned:\n{stderr}\n{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn awkward_arguments_and_environment_round_trip_exactly() {
    let Some(c) = Container::get() else { return };
    let pm = c.manager();
    let awkward = [
        "has spaces",
        "double \"quotes\" and 'single'",
        "100% %n %%",
        "$HOME ${PATH} $$ $",
        "line one\nline two",
        "back\\slash \\n not a newline",
        "",
        ";",
        "tab\there",
        "ünïcödé",
    ];
    let l = label("jc-roundtrip");
    let cfg = looping(l.as_str(), &awkward)
        .with_env("NOTE", "a \"b\" 50% $HOME\nsecond line\\")
        .with_env("PLAIN", "x");
    assert_eq!(pm.enable(&cfg).await.unwrap(), EnableOutcome::Installed);
    let st = sysutil::poll::until("jc-roundtrip running", SETTLE, || async {
        pm.inspect(&l).await.ok().filter(|s| s.is_running())
    })
    .await;
    let pid = st.pid.expect("a running service has a pid");

    let cmdline = c.proc_file(pid, "cmdline");
    let argv: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|w| String::from_utf8(w.to_vec()).unwrap())
        .collect::<Vec<_>>();
    let mut want = vec!["/bin/sh".to_string()];
    want.extend(cfg.args.iter().cloned());
    want.push(String::new()); // cmdline ends with a NUL
    assert_eq!(argv, want);

    let environ = c.proc_file(pid, "environ");
    let env: BTreeMap<String, String> = environ
        .split(|b| *b == 0)
        .filter_map(|kv| {
            let kv = String::from_utf8(kv.to_vec()).ok()?;
            let (k, v) = kv.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect();
    assert_eq!(env.get("NOTE"), cfg.env.get("NOTE"));
    assert_eq!(env.get("PLAIN").map(String::as_str), Some("x"));
    // It runs as the service account, never root.
    let status = String::from_utf8_lossy(&c.proc_file(pid, "status")).into_owned();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    let uid = c.run_ok(&["id", "-u", "joelclaw"]);
    assert!(
        uid_line.split_whitespace().nth(1) == Some(uid.trim()),
        "{uid_line} vs joelclaw={uid}"
    );
    cleanup(&pm, &c, &l).await;
}

#[tokio::test]
async fn a_kill_9_is_seen_in_inspect() {
    let Some(c) = Container::get() else { return };
    let pm = c.manager();
    let l = label("jc-kill9");
    let mut cfg = looping(l.as_str(), &[]);
    cfg.restart_delay = Some(Duration::from_millis(100));
    pm.enable(&cfg).await.unwrap();
    let before = sysutil::poll::until("jc-kill9 running", SETTLE, || async {
        pm.inspect(&l).await.ok().filter(|s| s.is_running())
    })
    .await;
    let pid = before.pid.unwrap();
    c.run_ok(&["kill", "-9", &pid.to_string()]);
    let after = sysutil::poll::until("jc-kill9 restarted by systemd", SETTLE, || async {
        pm.inspect(&l)
            .await
            .ok()
            .filter(|s| s.restart_count > before.restart_count)
    })
    .await;
    // At least one more (the poll above waits for it). Not "exactly one": on a loaded machine
    // this read once saw two more, a cause not found; the count growing is what is asserted.
    // systemd describes the main process it has now: while it waits to respawn, the one that
    // died of SIGKILL; once respawned, the new one, which has not exited.
    assert!(
        matches!(
            after.last_exit,
            None | Some(process_manager::ExitStatus::Signal(9))
        ),
        "{after:?}"
    );
    let back = sysutil::poll::until("jc-kill9 running again", SETTLE, || async {
        pm.inspect(&l).await.ok().filter(|s| s.is_running())
    })
    .await;
    assert_ne!(back.pid, Some(pid));
    cleanup(&pm, &c, &l).await;
}

#[tokio::test]
async fn the_start_limit_leaves_it_failed_and_restart_brings_it_back() {
    let Some(c) = Container::get() else { return };
    let pm = c.manager();
    let l = label("jc-startlimit");
    let flag = "/run/jc-startlimit-ok";
    c.run(&["rm", "-f", flag]);
    // Exits at once until the flag exists: systemd restarts it until the start limit.
    let mut cfg = ServiceConfig::new(l.clone(), "/bin/sh").with_args([
        "-c",
        &format!("test -e {flag} || exit 3; while :; do sleep 1; done"),
    ]);
    cfg.restart_delay = Some(Duration::from_millis(50));
    cfg.start_limit = Some(StartLimit {
        interval: Duration::from_secs(60),
        burst: 3,
    });
    // The first start may already count as failed when the program exits before systemd
    // finishes the start job; the unit is installed either way.
    match pm.enable(&cfg).await {
        Ok(EnableOutcome::Installed) => {}
        Err(ProcessError::Backend { source, .. }) => {
            assert!(source.to_string().contains("jc-startlimit"), "{source}")
        }
        other => panic!("enable: {other:?}"),
    }
    let failed = sysutil::poll::until("jc-startlimit failed", SETTLE, || async {
        pm.inspect(&l)
            .await
            .ok()
            .filter(|s| s.state == RunState::Failed)
    })
    .await;
    assert_eq!(failed.pid, None);
    assert_eq!(failed.last_exit, Some(process_manager::ExitStatus::Code(3)));
    // With Restart=always, only the start limit ends in `failed`: systemd restarted it and then
    // gave up. (systemd 252 keeps Result=exit-code when the limit stops an automatic restart;
    // start-limit-hit is for a start someone asked for.)
    assert!(failed.restart_count >= Some(2), "{failed:?}");
    let again = c.manager().inspect(&l).await.unwrap();
    assert_eq!(
        again.state,
        RunState::Failed,
        "failed stays failed: {again:?}"
    );

    c.run_ok(&["touch", flag]);
    assert_eq!(
        pm.restart(&l).await.unwrap(),
        RestartOutcome::ResetAndStarted
    );
    sysutil::poll::until("jc-startlimit running after reset", SETTLE, || async {
        pm.inspect(&l).await.ok().filter(|s| s.is_running())
    })
    .await;
    cleanup(&pm, &c, &l).await;
    c.run(&["rm", "-f", flag]);
}

/// Installs `n` looping units named `<prefix>N` with one daemon-reload and one start (setup,
/// not the thing measured).
fn install_many(c: &Container, pm: &SystemdProcessManager, prefix: &str, n: usize) -> Vec<String> {
    let mut units = Vec::new();
    for i in 0..n {
        let name = format!("{prefix}{i}");
        let text = pm.render_unit(&looping(&name, &[])).unwrap();
        std::fs::write(c.unit_dir().join(format!("{name}.service")), text).unwrap();
        units.push(format!("{name}.service"));
    }
    c.run_ok(&["systemctl", "daemon-reload"]);
    let mut start = vec!["systemctl", "start"];
    start.extend(units.iter().map(String::as_str));
    c.run_ok(&start);
    units
}

fn remove_many(c: &Container, units: &[String]) {
    let mut stop = vec!["systemctl", "stop"];
    stop.extend(units.iter().map(String::as_str));
    c.run(&stop);
    for u in units {
        let _ = std::fs::remove_file(c.unit_dir().join(u));
    }
    c.run(&["systemctl", "daemon-reload"]);
}

/// A wrapper put first in the command prefix that logs each call, so spawns can be counted.
fn counting_prefix(dir: &std::path::Path) -> (PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt as _;
    let log = dir.join("calls.log");
    let wrapper = dir.join("count-calls");
    std::fs::write(
        &wrapper,
        format!("#!/bin/sh\necho \"$*\" >> {}\nexec \"$@\"\n", log.display()),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    (wrapper, log)
}

#[tokio::test]
async fn list_of_fifty_units_costs_a_few_spawns() {
    let Some(c) = Container::get() else { return };
    let setup = c.manager();
    let units = install_many(&c, &setup, "jc-count-", 50);
    let dir = tempfile::tempdir().unwrap();
    let (wrapper, log) = counting_prefix(dir.path());
    let pm = c.manager_with(&[wrapper.to_str().unwrap()]);
    let listed = pm.list(&LabelPattern::new("jc-count-*")).await.unwrap();
    let calls = std::fs::read_to_string(&log).unwrap();
    remove_many(&c, &units);
    assert_eq!(listed.len(), 50, "{listed:?}");
    assert!(
        listed.iter().all(|s| s.is_running() && s.pid.is_some()),
        "{listed:?}"
    );
    let spawns = calls.lines().count();
    // One `list-units`, one batched `show`.
    assert_eq!(
        spawns, 2,
        "list of 50 units spawned systemctl {spawns} times:\n{calls}"
    );
}

#[tokio::test]
async fn enable_of_an_identical_running_unit_is_one_show_and_no_reload() {
    let Some(c) = Container::get() else { return };
    let l = label("jc-unchanged");
    let cfg = looping(l.as_str(), &[]);
    let setup = c.manager();
    setup.enable(&cfg).await.unwrap();
    sysutil::poll::until("jc-unchanged running", SETTLE, || async {
        setup.inspect(&l).await.ok().filter(|s| s.is_running())
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (wrapper, log) = counting_prefix(dir.path());
    let pm = c.manager_with(&[wrapper.to_str().unwrap()]);
    assert_eq!(pm.enable(&cfg).await.unwrap(), EnableOutcome::Unchanged);
    let calls = std::fs::read_to_string(&log).unwrap();
    cleanup(&setup, &c, &l).await;
    assert_eq!(calls.lines().count(), 1, "{calls}");
    assert!(calls.contains(" show "), "{calls}");
    assert!(!calls.contains("daemon-reload"), "{calls}");
}

#[tokio::test]
async fn output_goes_to_the_configured_log_files() {
    let Some(c) = Container::get() else { return };
    let Some(scratch) = support::daemon_env("JOELCLAW_TEST_SCRATCH", "real systemd") else {
        return;
    };
    let pm = c.manager();
    let l = label("jc-logs");
    let out = PathBuf::from(&scratch).join("jc-logs.out");
    let err = PathBuf::from(&scratch).join("jc-logs.err");
    let _ = std::fs::remove_file(&out);
    let _ = std::fs::remove_file(&err);
    let mut cfg = ServiceConfig::new(l.clone(), "/bin/sh").with_args([
        "-c",
        "echo to-stdout; echo to-stderr >&2; while :; do sleep 1; done",
    ]);
    cfg.stdout_path = Some(out.clone());
    cfg.stderr_path = Some(err.clone());
    pm.enable(&cfg).await.unwrap();
    // The scratch directory is the same path inside the container and out.
    let read =
        |p: PathBuf| async move { std::fs::read_to_string(&p).ok().filter(|t| !t.is_empty()) };
    assert_eq!(
        sysutil::poll::until("stdout log", SETTLE, || read(out.clone())).await,
        "to-stdout\n"
    );
    assert_eq!(
        sysutil::poll::until("stderr log", SETTLE, || read(err.clone())).await,
        "to-stderr\n"
    );
    cleanup(&pm, &c, &l).await;
}

#[tokio::test]
async fn disable_removes_the_boot_time_link_and_enable_restores_it() {
    let Some(c) = Container::get() else { return };
    let pm = c.manager();
    let l = label("jc-boot");
    let link = c.unit_dir().join("multi-user.target.wants/jc-boot.service");
    pm.enable(&looping(l.as_str(), &[])).await.unwrap();
    assert!(link.symlink_metadata().is_ok(), "no boot link after enable");
    assert_eq!(pm.inspect(&l).await.unwrap().enabled, Some(true));
    pm.disable(&l).await.unwrap();
    // What survives a reboot is the absence of this link.
    assert!(
        link.symlink_metadata().is_err(),
        "boot link left after disable"
    );
    let st = pm.inspect(&l).await.unwrap();
    assert_eq!((st.enabled, st.state), (Some(false), RunState::Stopped));
    cleanup(&pm, &c, &l).await;
}

#[tokio::test]
async fn a_unit_dir_the_manager_does_not_read_is_reported() {
    let Some(c) = Container::get() else { return };
    let dir = tempfile::tempdir().unwrap();
    let pm = c.manager().with_unit_dir(dir.path());
    let e = pm.enable(&looping("jc-elsewhere", &[])).await.unwrap_err();
    assert!(
        matches!(&e, ProcessError::InvalidInput { detail, .. } if detail.contains("unit_dir")),
        "{e:?}"
    );
}

/// Wall time of `list` over 50 and 200 running units (run with
/// `cargo test -p adapters-linux --test systemd_real -- --ignored --nocapture list_timing`
/// under the harness). Prints numbers; asserts nothing about time.
#[tokio::test]
#[ignore = "a measurement, not a check; run by hand"]
async fn list_timing() {
    let Some(c) = Container::get() else { return };
    let pm = c.manager();
    for n in [50usize, 200] {
        let prefix = format!("jc-time{n}-");
        let units = install_many(&c, &pm, &prefix, n);
        let pattern = LabelPattern::new(format!("{prefix}*"));
        let mut samples = Vec::new();
        for _ in 0..5 {
            let t = std::time::Instant::now();
            let listed = pm.list(&pattern).await.unwrap();
            samples.push(t.elapsed());
            assert_eq!(listed.len(), n);
        }
        remove_many(&c, &units);
        samples.sort();
        println!(
            "list of {n} units: median {:?}, min {:?}, max {:?} (5 runs)",
            samples[2], samples[0], samples[4]
        );
    }
}
