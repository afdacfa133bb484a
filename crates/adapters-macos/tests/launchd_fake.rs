//! `LaunchdProcessManager` against the fake `launchctl` (tests/fake/launchctl), which answers
//! with launchctl's real formats and exit codes.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use adapters_macos::launchd::plist_read::{read_plist, PlistDefinition};
use adapters_macos::{LaunchdConfig, LaunchdProcessManager};
use common::FakeTool;
use process_manager::testkit::{self, Fixture};
use process_manager::{
    CalendarInterval, DisableOutcome, EnableOutcome, ExitStatus, LabelPattern, Operation,
    ProcessError, ProcessManagerPort, RestartOutcome, RestartPolicy, RunState, ServiceConfig,
    ServiceLabel, ServiceScope, StopOutcome, Triggers,
};

const UID: u32 = 501;

struct Launchd {
    fake: FakeTool,
    pm: LaunchdProcessManager,
}

impl Launchd {
    fn new() -> Self {
        Self::with(|c| c)
    }

    fn with(adjust: impl FnOnce(LaunchdConfig) -> LaunchdConfig) -> Self {
        Self::with_fake(|c, _| adjust(c))
    }

    /// Like `with`, where the adjustment needs the fake's paths.
    fn with_fake(adjust: impl FnOnce(LaunchdConfig, &FakeTool) -> LaunchdConfig) -> Self {
        let fake = FakeTool::new("launchctl", "FAKE_LAUNCHCTL_STATE");
        let config = LaunchdConfig::default()
            .with_launchctl(&fake.wrapper)
            .with_system_plist_dir(fake.path("Library/LaunchDaemons"))
            .with_user(UID, fake.path("home/Library/LaunchAgents"))
            .with_service_account("_joelclaw", Some("_joelclaw".into()))
            .with_deadline(Duration::from_secs(20));
        let pm = LaunchdProcessManager::new(adjust(config, &fake));
        Launchd { fake, pm }
    }

    fn system_plist(&self, label: &str) -> PathBuf {
        self.fake
            .path("Library/LaunchDaemons")
            .join(format!("{label}.plist"))
    }

    /// The argv log, asserting that no legacy verb was ever used.
    fn argv(&self) -> Vec<String> {
        modern_argv(&self.fake)
    }
}

/// The fake's argv log, asserting that no legacy verb was ever used.
fn modern_argv(fake: &FakeTool) -> Vec<String> {
    let log = fake.argv_log();
    for line in &log {
        let verb = line.split(' ').next().unwrap_or_default();
        assert!(
            [
                "print",
                "print-disabled",
                "bootstrap",
                "bootout",
                "kickstart",
                "enable",
                "disable",
                "list",
                "x-fake-crash",
                "x-fake-fire",
                "x-fake-reboot"
            ]
            .contains(&verb),
            "launchctl {line}: not one of the modern verbs"
        );
    }
    log
}

/// Keeps a scenario's fake alive, and checks when the scenario is over that it only ever
/// heard modern verbs.
struct ModernVerbsOnly(FakeTool);

impl Drop for ModernVerbsOnly {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            modern_argv(&self.0);
        }
    }
}

fn label(s: &str) -> ServiceLabel {
    ServiceLabel::new(s).unwrap()
}

fn sleeper(l: &str) -> ServiceConfig {
    ServiceConfig::new(label(l), "/bin/sleep").with_args(["3600"])
}

fn fixture(prefix: &str, scope: ServiceScope) -> Fixture {
    let mut fx = Fixture::new(prefix, "/bin/sleep", &["3600"]);
    let make = fx.make_config;
    fx.make_config = Box::new(move |l, v| make(l, v).with_scope(scope));
    fx.settle = Duration::from_secs(5);
    fx
}

/// A fake launchd of its own per scenario: the port, and the fake kept alive with the fixture.
fn own_launchd(prefix: &str, scope: ServiceScope) -> Option<(LaunchdProcessManager, Fixture)> {
    let Launchd { fake, pm } = Launchd::new();
    Some((pm, fixture(prefix, scope).keeping(ModernVerbsOnly(fake))))
}

process_manager::conformance_tests!(conformance_in_the_system_domain, |_| async {
    own_launchd("conf-sys-", ServiceScope::System)
});

process_manager::conformance_tests!(conformance_in_the_gui_domain, |_| async {
    own_launchd("conf-gui-", ServiceScope::Gui { uid: UID })
});

process_manager::conformance_tests!(conformance_in_the_user_domain, |_| async {
    own_launchd("conf-user-", ServiceScope::User { uid: UID })
});

/// What the conformance suite cannot see: only modern verbs, and a gui agent bootstrapped from
/// the user's LaunchAgents.
#[tokio::test]
async fn the_suite_in_the_gui_domain_uses_modern_verbs_and_launch_agents() {
    let t = Launchd::new();
    let fx = fixture("conf-gui-", ServiceScope::Gui { uid: UID });
    testkit::enable_is_idempotent(&t.pm, &fx).await;
    testkit::disable_is_idempotent(&t.pm, &fx).await;
    let log = t.argv();
    assert!(
        log.iter()
            .any(|l| l.starts_with("bootstrap gui/501 ") && l.contains("LaunchAgents")),
        "{log:#?}"
    );
}

#[tokio::test]
async fn a_system_service_is_restarted_in_the_system_domain() {
    let t = Launchd::new();
    let l = "com.joelclaw.system-bus-worker";
    assert_eq!(
        t.pm.enable(&sleeper(l)).await.unwrap(),
        EnableOutcome::Installed
    );
    t.fake.clear_log();
    assert_eq!(
        t.pm.restart(&label(l)).await.unwrap(),
        RestartOutcome::Restarted
    );
    let log = t.argv();
    let kicks: Vec<_> = log.iter().filter(|l| l.starts_with("kickstart")).collect();
    assert_eq!(kicks, [&format!("kickstart -k system/{l}")], "{log:#?}");
    assert!(
        !log.iter()
            .any(|line| line.contains(&format!("gui/{UID}/{l}"))),
        "found in system/, so gui/ is never asked: {log:#?}"
    );
    assert_eq!(log[0], format!("print system/{l}"), "system is asked first");
}

#[tokio::test]
async fn a_gui_agent_is_found_after_asking_system_first() {
    let t = Launchd::new();
    let l = "com.joelclaw.relay";
    let cfg = sleeper(l).with_scope(ServiceScope::Gui { uid: UID });
    t.pm.enable(&cfg).await.unwrap();
    t.fake.clear_log();
    let st = t.pm.inspect(&label(l)).await.unwrap();
    assert_eq!(st.scope, Some(ServiceScope::Gui { uid: UID }));
    assert_eq!(st.state, RunState::Running);
    let log = t.argv();
    assert_eq!(log[0], format!("print system/{l}"));
    assert_eq!(log[1], format!("print gui/{UID}/{l}"));
    t.pm.restart(&label(l)).await.unwrap();
    assert!(t.argv().contains(&format!("kickstart -k gui/{UID}/{l}")));
}

#[tokio::test]
async fn inspect_reports_what_launchd_says() {
    let t = Launchd::new();
    let l = "com.joelclaw.gateway";
    t.pm.enable(&sleeper(l)).await.unwrap();
    let st = t.pm.inspect(&label(l)).await.unwrap();
    assert!(st.loaded);
    assert_eq!(st.state, RunState::Running);
    assert!(st.pid.is_some());
    assert_eq!(st.last_exit, None, "(never exited)");
    assert_eq!(st.restart_count, Some(0));
    assert_eq!(st.enabled, Some(true));
    assert_eq!(st.scope, Some(ServiceScope::System));

    // The process exits 78; KeepAlive brings it back with a new pid.
    t.fake.run(&["x-fake-crash", &format!("system/{l}"), "78"]);
    let after = t.pm.inspect(&label(l)).await.unwrap();
    assert_eq!(after.state, RunState::Running);
    assert_ne!(after.pid, st.pid);
    assert_eq!(after.last_exit, Some(ExitStatus::Code(78)));
    assert_eq!(after.restart_count, Some(1));

    // Throttled: launchd holds the respawn; the heal loop must see the supervisor at work.
    t.fake.set("throttle", "");
    t.fake
        .run(&["x-fake-crash", &format!("system/{l}"), "sig:9"]);
    let throttled = t.pm.inspect(&label(l)).await.unwrap();
    assert_eq!(throttled.state, RunState::SupervisorRestarting);
    assert_eq!(throttled.pid, None);
    assert_eq!(throttled.last_exit, Some(ExitStatus::Signal(9)));
}

#[tokio::test]
async fn stop_boots_out_a_keepalive_job_so_it_stays_stopped() {
    let t = Launchd::new();
    let l = "com.joelclaw.keepalive";
    t.pm.enable(&sleeper(l)).await.unwrap();
    t.fake.clear_log();
    assert_eq!(t.pm.stop(&label(l)).await.unwrap(), StopOutcome::Stopped);
    assert!(t.argv().contains(&format!("bootout system/{l}")));
    // Nothing for KeepAlive to respawn: the job is unloaded, its plist stays installed.
    let st = t.pm.inspect(&label(l)).await.unwrap();
    assert!(!st.loaded);
    assert_eq!(st.state, RunState::Stopped);
    assert!(t.system_plist(l).is_file());
    assert_eq!(
        t.pm.stop(&label(l)).await.unwrap(),
        StopOutcome::AlreadyStopped
    );
}

#[tokio::test]
async fn disable_survives_a_reboot() {
    let t = Launchd::new();
    let off = "com.joelclaw.off";
    let on = "com.joelclaw.on";
    t.pm.enable(&sleeper(off)).await.unwrap();
    t.pm.enable(&sleeper(on)).await.unwrap();
    assert_eq!(
        t.pm.disable(&label(off)).await.unwrap(),
        DisableOutcome::Disabled
    );
    t.fake.run(&["x-fake-reboot"]);
    let st = t.pm.inspect(&label(off)).await.unwrap();
    assert_eq!(st.state, RunState::Stopped);
    assert_eq!(st.enabled, Some(false));
    assert!(!st.loaded);
    // The control case: the enabled one is loaded again at boot.
    let st = t.pm.inspect(&label(on)).await.unwrap();
    assert!(st.loaded && st.is_running(), "{st:?}");
    // Restarting a disabled service is refused rather than quietly undoing the disable.
    assert!(matches!(
        t.pm.restart(&label(off)).await,
        Err(ProcessError::InvalidInput { .. })
    ));
    assert_eq!(
        t.pm.enable(&sleeper(off)).await.unwrap(),
        EnableOutcome::Started
    );
    assert!(t.pm.inspect(&label(off)).await.unwrap().is_running());
}

#[tokio::test]
async fn the_generated_plist_is_what_launchd_gets() {
    use std::os::unix::fs::PermissionsExt;
    let t = Launchd::new();
    let l = "com.joelclaw.plist";
    let cfg = sleeper(l).with_env("PATH", "/opt/homebrew/bin:/usr/bin:/bin");
    t.pm.enable(&cfg).await.unwrap();
    let path = t.system_plist(l);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644);
    let v = plist::Value::from_file(&path).unwrap();
    let d = v.as_dictionary().unwrap();
    assert_eq!(d.get("Label").and_then(|v| v.as_string()), Some(l));
    assert_eq!(
        d.get("UserName").and_then(|v| v.as_string()),
        Some("_joelclaw"),
        "a system daemon runs as the service account"
    );
    assert!(t
        .argv()
        .contains(&format!("bootstrap system {}", path.display())));
    // `render` shows the same bytes without touching launchd or the folder: a dry run.
    t.fake.clear_log();
    let (rendered_path, bytes) = t.pm.render(&cfg).unwrap();
    assert_eq!(rendered_path, path);
    assert_eq!(bytes, std::fs::read(&path).unwrap());
    assert!(t.fake.argv_log().is_empty());
}

#[tokio::test]
async fn a_service_moving_from_agent_to_daemon_leaves_the_gui_domain() {
    let t = Launchd::new();
    let l = "com.joelclaw.moved";
    t.pm.enable(&sleeper(l).with_scope(ServiceScope::Gui { uid: UID }))
        .await
        .unwrap();
    t.pm.enable(&sleeper(l)).await.unwrap();
    let log = t.argv();
    assert!(log.contains(&format!("bootout gui/{UID}/{l}")), "{log:#?}");
    assert!(log.contains(&format!("disable gui/{UID}/{l}")), "{log:#?}");
    let st = t.pm.inspect(&label(l)).await.unwrap();
    assert_eq!(st.scope, Some(ServiceScope::System));
    assert!(st.is_running());
}

#[tokio::test]
async fn a_move_whose_plist_cannot_be_written_leaves_the_old_domain_running() {
    use std::os::unix::fs::PermissionsExt;
    let t = Launchd::new();
    let l = "com.joelclaw.stays";
    t.pm.enable(&sleeper(l).with_scope(ServiceScope::Gui { uid: UID }))
        .await
        .unwrap();
    // A world-writable LaunchDaemons folder is refused: the daemon's plist cannot land.
    let daemons = t.fake.path("Library/LaunchDaemons");
    std::fs::create_dir_all(&daemons).unwrap();
    std::fs::set_permissions(&daemons, std::fs::Permissions::from_mode(0o777)).unwrap();
    t.fake.clear_log();
    let err = t.pm.enable(&sleeper(l)).await.unwrap_err();
    assert!(matches!(err, ProcessError::InvalidInput { .. }), "{err:?}");
    let log = t.argv();
    assert!(
        !log.iter()
            .any(|a| a.starts_with("bootout") || a.starts_with("disable")),
        "half-applied: {log:#?}"
    );
    let st = t.pm.inspect(&label(l)).await.unwrap();
    assert_eq!(st.scope, Some(ServiceScope::Gui { uid: UID }));
    assert!(st.is_running(), "{st:?}");
}

#[tokio::test]
async fn bootstrap_retries_launchd_transient_answers() {
    let t = Launchd::new();
    // 37 EALREADY twice: the previous instance is still being torn down.
    t.fake.set("ealready", "2");
    assert_eq!(
        t.pm.enable(&sleeper("com.joelclaw.busy")).await.unwrap(),
        EnableOutcome::Installed
    );
    let bootstraps = t
        .argv()
        .iter()
        .filter(|l| l.starts_with("bootstrap "))
        .count();
    assert_eq!(bootstraps, 3);

    // One EIO: answered with a bootout and a second bootstrap.
    t.fake.clear_log();
    t.fake.set("eio", "1");
    t.pm.enable(&sleeper("com.joelclaw.eio")).await.unwrap();
    let log = t.argv();
    assert!(
        log.contains(&"bootout system/com.joelclaw.eio".to_string()),
        "{log:#?}"
    );
    assert!(t
        .pm
        .inspect(&label("com.joelclaw.eio"))
        .await
        .unwrap()
        .is_running());

    // EIO that does not go away: a clear error, with launchd's words and a hint.
    t.fake.set("eio", "5");
    let err =
        t.pm.enable(&sleeper("com.joelclaw.eio-forever"))
            .await
            .unwrap_err();
    let msg = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(matches!(err, ProcessError::Backend { .. }), "{err:?}");
    assert!(msg.contains("5: Input/output error"), "{msg}");
    assert!(msg.contains("already loaded"), "{msg}");
}

#[tokio::test]
async fn no_gui_session_is_a_clear_error() {
    let t = Launchd::new();
    t.fake.set("nogui", "");
    let err =
        t.pm.enable(&sleeper("com.joelclaw.agent").with_scope(ServiceScope::Gui { uid: UID }))
            .await
            .unwrap_err();
    match &err {
        ProcessError::Unavailable { detail, .. } => {
            assert!(detail.contains("GUI login session"), "{detail}")
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn the_system_domain_without_root_is_permission_denied_with_a_hint() {
    let t = Launchd::new();
    t.fake.set("nonroot", "");
    let err =
        t.pm.enable(&sleeper("com.joelclaw.daemon"))
            .await
            .unwrap_err();
    match &err {
        ProcessError::PermissionDenied {
            operation,
            target,
            detail,
        } => {
            assert_eq!(*operation, Operation::Enable);
            assert_eq!(target, "system/com.joelclaw.daemon");
            assert!(detail.contains("Operation not permitted"), "{detail}");
            assert!(detail.contains("root"), "{detail}");
        }
        other => panic!("expected PermissionDenied, got {other:?}"),
    }
}

#[tokio::test]
async fn bad_input_never_reaches_a_file_or_argv() {
    let t = Launchd::new();
    for bad in ["../../etc/evil", "-rf", "a b", "x/y", "a\nb", ""] {
        assert!(ServiceLabel::new(bad).is_err(), "{bad:?}");
        let json = serde_json::json!({ "label": bad, "program": "/bin/sleep" });
        assert!(
            serde_json::from_value::<ServiceConfig>(json).is_err(),
            "{bad:?}"
        );
    }
    // A valid label with a bad config is refused before launchctl or the folder is touched.
    let mut relative = sleeper("com.joelclaw.bad");
    relative.program = "bin/worker".into();
    let secret = sleeper("com.joelclaw.bad").with_env("OPENAI_API_KEY", "sk-x");
    for cfg in [relative, secret] {
        assert!(matches!(
            t.pm.enable(&cfg).await,
            Err(ProcessError::InvalidInput { .. })
        ));
    }
    assert!(t.fake.argv_log().is_empty(), "{:?}", t.fake.argv_log());
    assert!(!t.fake.path("Library/LaunchDaemons").exists());
    // A gui service for another user is refused too.
    let other = sleeper("com.joelclaw.other").with_scope(ServiceScope::Gui { uid: 502 });
    assert!(matches!(
        t.pm.enable(&other).await,
        Err(ProcessError::InvalidInput { .. })
    ));
    assert!(t.fake.argv_log().is_empty());
}

#[tokio::test]
async fn a_missing_launchctl_is_unavailable_naming_what_was_looked_for() {
    let empty = tempfile::tempdir().unwrap();
    let pm = LaunchdProcessManager::new(
        LaunchdConfig::default().with_search_path(empty.path().as_os_str()),
    );
    match pm.inspect(&label("x")).await {
        Err(ProcessError::Unavailable { detail, .. }) => {
            assert!(detail.contains("launchctl"), "{detail}");
            assert!(
                detail.contains(&empty.path().display().to_string()),
                "{detail}"
            );
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    let pm = LaunchdProcessManager::new(
        LaunchdConfig::default().with_launchctl("/nonexistent/bin/launchctl"),
    );
    match pm.restart(&label("x")).await {
        Err(e @ ProcessError::Unavailable { .. }) => {
            assert!(e.to_string().contains("/nonexistent/bin/launchctl"), "{e}");
            assert!(e.is_retryable());
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn launchctl_is_found_first_on_the_search_path() {
    let fake = FakeTool::new("launchctl", "FAKE_LAUNCHCTL_STATE");
    let pm = LaunchdProcessManager::new(
        LaunchdConfig::default()
            .with_search_path(fake.bin_dir.as_os_str())
            .with_system_plist_dir(fake.path("daemons")),
    );
    assert!(matches!(
        pm.inspect(&label("com.joelclaw.none")).await,
        Err(ProcessError::NotFound { .. })
    ));
    assert_eq!(fake.argv_log(), ["print system/com.joelclaw.none"]);
}

#[tokio::test]
async fn a_hanging_launchctl_is_a_timeout() {
    let t = Launchd::with(|c| c.with_deadline(Duration::from_millis(300)));
    t.fake.set("hang", "*");
    // The outer bound only keeps a broken adapter from hanging the test run.
    let r = tokio::time::timeout(Duration::from_secs(60), t.pm.inspect(&label("x"))).await;
    match r.expect("the adapter's own deadline fired") {
        Err(e @ ProcessError::Timeout { .. }) => {
            assert!(matches!(
                e,
                ProcessError::Timeout {
                    operation: Operation::Inspect,
                    after
                } if after == Duration::from_millis(300)
            ));
            assert!(e.is_retryable());
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
}

#[tokio::test]
async fn a_timed_out_launchctl_leaves_no_process_of_its_group() {
    let t = Launchd::with(|c| c.with_deadline(Duration::from_secs(2)));
    t.fake.set("hang-with-child", "*");
    match t.pm.inspect(&label("x")).await {
        Err(ProcessError::Timeout { .. }) => {}
        other => panic!("expected Timeout, got {other:?}"),
    }
    t.fake.assert_hung_group_gone().await;
}

#[tokio::test]
async fn list_finds_installed_and_loaded_services_by_pattern() {
    let t = Launchd::new();
    t.pm.enable(&sleeper("com.joelclaw.a")).await.unwrap();
    t.pm.enable(&sleeper("com.joelclaw.b").with_scope(ServiceScope::Gui { uid: UID }))
        .await
        .unwrap();
    t.pm.enable(&sleeper("org.other.c")).await.unwrap();
    t.pm.stop(&label("com.joelclaw.a")).await.unwrap();
    let found =
        t.pm.list(&LabelPattern::new("com.joelclaw.*"))
            .await
            .unwrap();
    let labels: Vec<_> = found.iter().map(|s| s.label.as_str()).collect();
    assert_eq!(labels, ["com.joelclaw.a", "com.joelclaw.b"]);
    assert!(!found[0].loaded);
    assert_eq!(found[1].scope, Some(ServiceScope::Gui { uid: UID }));
}

#[test]
fn capabilities_tell_the_heal_loop_about_launchd() {
    let caps = LaunchdProcessManager::new(LaunchdConfig::default()).capabilities();
    assert_eq!(caps.adapter, "launchd");
    assert_eq!(caps.respawn_throttle, Some(Duration::from_secs(10)));
    assert!(!caps.pushes_events);
}

#[tokio::test]
async fn the_fake_speaks_the_formats_the_parsers_were_tested_on() {
    use adapters_macos::launchd::parse;
    let t = Launchd::new();
    let l = "com.joelclaw.formats";
    t.pm.enable(&sleeper(l)).await.unwrap();
    t.fake.run(&["x-fake-crash", &format!("system/{l}"), "78"]);
    let table = parse::parse_list_table(&t.fake.run(&["list"])).unwrap();
    assert_eq!(table.len(), 1);
    assert_eq!(table[0].label, l);
    assert!(table[0].pid.is_some());
    assert_eq!(table[0].status, Some(78));
    let dict = parse::parse_list_dict(&t.fake.run(&["list", l])).unwrap();
    assert_eq!(dict.label, l);
    assert_eq!(dict.pid, table[0].pid);
    assert_eq!(dict.last_exit(), Some(ExitStatus::Code(78)));
    let print = parse::parse_print(&t.fake.run(&["print", &format!("system/{l}")])).unwrap();
    assert_eq!(print.state.as_deref(), Some("running"));
    assert_eq!(print.last_exit_code, Some(parse::LastExitCode::Code(78)));
    assert_eq!(print.runs, Some(2));
    t.pm.disable(&label(l)).await.unwrap();
    let disabled = parse::parse_print_disabled(&t.fake.run(&["print-disabled", "system"])).unwrap();
    assert_eq!(disabled.get(l), Some(&true));
}

/// Writes the plist the adapter would generate for `l` into `dir` (a folder the adapter does not
/// manage) and loads it there the way a person would, with `launchctl bootstrap system`.
fn load_from_elsewhere(t: &Launchd, l: &str, dir: &std::path::Path) -> PathBuf {
    let (_, bytes) = t.pm.render(&sleeper(l)).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(format!("{l}.plist"));
    std::fs::write(&path, bytes).unwrap();
    t.fake.run(&["bootstrap", "system", path.to_str().unwrap()]);
    path
}

#[tokio::test]
async fn a_job_loaded_from_another_folder_can_be_started_after_stop() {
    let t = Launchd::new();
    let l = "com.example.loaded-by-hand";
    let plist = load_from_elsewhere(&t, l, &t.fake.path("opt/example"));
    assert!(t.pm.inspect(&label(l)).await.unwrap().is_running());
    assert_eq!(t.pm.stop(&label(l)).await.unwrap(), StopOutcome::Stopped);
    // Booted out, but `print` said where its plist is: it is still there to be started.
    let st = t.pm.inspect(&label(l)).await.unwrap();
    assert!(!st.loaded);
    assert_eq!(st.state, RunState::Stopped);
    assert_eq!(st.scope, Some(ServiceScope::System));
    t.fake.clear_log();
    assert_eq!(
        t.pm.restart(&label(l)).await.unwrap(),
        RestartOutcome::Started
    );
    assert!(
        t.argv()
            .contains(&format!("bootstrap system {}", plist.display())),
        "{:#?}",
        t.argv()
    );
    assert!(t.pm.inspect(&label(l)).await.unwrap().is_running());
    // A copy of the manager shares what was learnt.
    t.pm.stop(&label(l)).await.unwrap();
    assert!(!t.pm.clone().inspect(&label(l)).await.unwrap().loaded);
}

#[tokio::test]
async fn a_job_in_a_launchd_folder_is_found_again_by_a_new_manager_after_stop() {
    // launchd loads /System/Library/LaunchDaemons (and the other standard folders) at boot,
    // so a job booted out of one is still installed, even for a manager started afterwards.
    let t = Launchd::with_fake(|c, fake| {
        c.with_launchd_folders(
            [fake.path("System/Library/LaunchDaemons")],
            [fake.path("System/Library/LaunchAgents")],
        )
    });
    let l = "com.apple.example-daemon";
    let plist = load_from_elsewhere(&t, l, &t.fake.path("System/Library/LaunchDaemons"));
    assert_eq!(t.pm.stop(&label(l)).await.unwrap(), StopOutcome::Stopped);
    let fresh = LaunchdProcessManager::new(t.pm.config().clone());
    let st = fresh.inspect(&label(l)).await.unwrap();
    assert!(!st.loaded);
    assert_eq!(st.scope, Some(ServiceScope::System));
    t.fake.clear_log();
    assert_eq!(
        fresh.restart(&label(l)).await.unwrap(),
        RestartOutcome::Started
    );
    assert!(t
        .argv()
        .contains(&format!("bootstrap system {}", plist.display())));
    assert!(fresh.inspect(&label(l)).await.unwrap().is_running());
    // A label in none of the folders is still not found.
    assert!(matches!(
        fresh.inspect(&label("com.example.nowhere")).await,
        Err(ProcessError::NotFound { .. })
    ));
}

#[tokio::test]
async fn restart_of_a_loaded_but_disabled_job_is_refused() {
    let t = Launchd::new();
    let l = "com.joelclaw.loaded-disabled";
    t.pm.enable(&sleeper(l)).await.unwrap();
    // `launchctl disable` leaves a loaded job loaded.
    t.fake.run(&["disable", &format!("system/{l}")]);
    t.fake.clear_log();
    match t.pm.restart(&label(l)).await {
        Err(ProcessError::InvalidInput { detail, .. }) => {
            assert!(detail.contains("is disabled in system"), "{detail}")
        }
        other => panic!("expected InvalidInput, got {other:?}"),
    }
    assert!(
        !t.argv().iter().any(|l| l.starts_with("kickstart")),
        "{:#?}",
        t.argv()
    );
}

#[tokio::test]
async fn a_failed_bootout_says_what_bootout_means() {
    let t = Launchd::new();
    let l = "com.joelclaw.stuck";
    t.pm.enable(&sleeper(l)).await.unwrap();
    t.fake.set("bootout-fail", "5: Input/output error");
    let err = t.pm.stop(&label(l)).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ProcessError::Backend { .. }), "{err:?}");
    assert!(text.contains("Boot-out failed: 5"), "{text}");
    assert!(text.contains("unload"), "{text}");
    assert!(!text.contains("plutil"), "the bootstrap hint: {text}");

    // A job under System Integrity Protection: root does not help, so no root hint.
    t.fake.set(
        "bootout-fail",
        "150: Operation not permitted while System Integrity Protection is engaged",
    );
    match t.pm.stop(&label(l)).await {
        Err(ProcessError::PermissionDenied { detail, .. }) => {
            assert!(detail.contains("System Integrity Protection"), "{detail}");
            assert!(!detail.contains("needs root"), "{detail}");
        }
        other => panic!("expected PermissionDenied, got {other:?}"),
    }
}

#[tokio::test]
async fn a_job_loaded_from_another_folder_stays_known_after_disable() {
    let t = Launchd::new();
    let l = "com.example.disabled-by-hand";
    load_from_elsewhere(&t, l, &t.fake.path("opt/example"));
    assert_eq!(
        t.pm.disable(&label(l)).await.unwrap(),
        DisableOutcome::Disabled
    );
    let st = t.pm.inspect(&label(l)).await.unwrap();
    assert!(!st.loaded);
    assert_eq!(st.enabled, Some(false));
    assert!(matches!(
        t.pm.restart(&label(l)).await,
        Err(ProcessError::InvalidInput { .. })
    ));
}

#[tokio::test]
async fn a_signal_on_the_exit_code_line_reaches_the_status_as_a_signal() {
    let t = Launchd::new();
    let l = "com.joelclaw.killed";
    t.pm.enable(&sleeper(l)).await.unwrap();
    t.fake.set("signal-as-code", "");
    t.fake.set("throttle", "");
    t.fake
        .run(&["x-fake-crash", &format!("system/{l}"), "sig:9"]);
    let printed = t.fake.run(&["print", &format!("system/{l}")]);
    assert!(
        printed.contains("last exit code = 9: Killed: 9"),
        "{printed}"
    );
    let st = t.pm.inspect(&label(l)).await.unwrap();
    assert_eq!(st.last_exit, Some(ExitStatus::Signal(9)), "not exit code 9");
    assert_eq!(st.state, RunState::SupervisorRestarting);
}

/// A job: no KeepAlive, not run at load, started by `triggers`.
fn job(l: &str, triggers: Triggers) -> ServiceConfig {
    let mut c = ServiceConfig::new(label(l), "/usr/local/bin/janitor");
    c.restart = RestartPolicy::Never;
    c.run_at_load = false;
    c.triggers = triggers;
    c
}

/// Enables `config` (a job in the system domain), checks its plist (read with the plist
/// crate) with `check_plist`, and that launchd has it loaded but idle, which `inspect` reports as
/// launchd's to start; then fires its trigger, lets the run end, and checks the same again.
async fn a_job_is_loaded_and_left_to_launchd(
    config: ServiceConfig,
    check_plist: impl Fn(&PlistDefinition),
) {
    let t = Launchd::with(|c| c.with_log_dir("/var/log/joelclaw"));
    let l = config.label.clone();
    assert_eq!(
        t.pm.enable(&config).await.unwrap(),
        EnableOutcome::Installed
    );
    let plist = read_plist(&t.system_plist(l.as_str())).unwrap();
    assert_eq!(plist.keep_alive, None, "a job has no KeepAlive");
    assert_eq!(plist.run_at_load, Some(false));
    assert_eq!(plist.process_type.as_deref(), Some("Background"));
    assert_eq!(plist.umask, Some(0o077));
    assert_eq!(plist.throttle_interval, Some(10));
    assert_eq!(plist.group.as_deref(), Some("_joelclaw"));
    assert_eq!(
        plist.stdout_path,
        Some(format!("/var/log/joelclaw/{l}.out.log"))
    );
    check_plist(&plist);
    assert_eq!(
        plist.to_config(ServiceScope::System).unwrap().triggers,
        config.triggers,
        "the plist reads back as the triggers it was written from"
    );

    let idle = t.pm.inspect(&l).await.unwrap();
    assert!(idle.loaded);
    assert_eq!(idle.pid, None);
    assert_eq!(
        idle.state,
        RunState::SupervisorRestarting,
        "an idle, armed job is launchd's to start, not a stopped service"
    );
    assert_eq!(idle.enabled, Some(true));
    // Enabling it again neither reloads nor starts it.
    t.fake.clear_log();
    assert_eq!(
        t.pm.enable(&config).await.unwrap(),
        EnableOutcome::Unchanged
    );
    assert!(
        !t.argv()
            .iter()
            .any(|c| c.starts_with("kickstart") || c.starts_with("bootstrap")),
        "{:#?}",
        t.argv()
    );

    t.fake.run(&["x-fake-fire", &format!("system/{l}")]);
    let running = t.pm.inspect(&l).await.unwrap();
    assert_eq!(running.state, RunState::Running);
    assert!(running.pid.is_some());
    // The run ends, badly: launchd has no failed state and runs it at the next trigger.
    t.fake.run(&["x-fake-crash", &format!("system/{l}"), "1"]);
    let after = t.pm.inspect(&l).await.unwrap();
    assert_eq!(after.state, RunState::SupervisorRestarting);
    assert_eq!(after.last_exit, Some(ExitStatus::Code(1)));
    assert_eq!(after.pid, None, "not respawned: no KeepAlive");
    // Restart means "run it now", in its own domain.
    t.fake.clear_log();
    assert_eq!(t.pm.restart(&l).await.unwrap(), RestartOutcome::Started);
    assert!(t.argv().contains(&format!("kickstart -k system/{l}")));
    // Stop disarms it: booted out, nothing will start it.
    assert_eq!(t.pm.stop(&l).await.unwrap(), StopOutcome::Stopped);
    let stopped = t.pm.inspect(&l).await.unwrap();
    assert_eq!((stopped.loaded, stopped.state), (false, RunState::Stopped));
}

#[tokio::test]
async fn an_interval_job() {
    let triggers = Triggers {
        interval: Some(Duration::from_secs(900)),
        ..Triggers::default()
    };
    a_job_is_loaded_and_left_to_launchd(job("com.joelclaw.sync", triggers), |p| {
        assert_eq!(p.start_interval, Some(900));
    })
    .await;
}

#[tokio::test]
async fn a_calendar_job() {
    let nightly = CalendarInterval {
        hour: Some(3),
        minute: Some(30),
        ..CalendarInterval::default()
    };
    let mondays = CalendarInterval {
        weekday: Some(1),
        hour: Some(9),
        minute: Some(0),
        ..CalendarInterval::default()
    };
    let triggers = Triggers {
        calendar: vec![nightly, mondays],
        ..Triggers::default()
    };
    a_job_is_loaded_and_left_to_launchd(job("com.joelclaw.janitor", triggers), |p| {
        assert_eq!(p.calendar, [nightly, mondays]);
    })
    .await;
}

#[tokio::test]
async fn a_watch_paths_job() {
    let triggers = Triggers {
        watch_paths: vec!["/var/lib/joelclaw/inbox".into()],
        ..Triggers::default()
    };
    a_job_is_loaded_and_left_to_launchd(job("com.joelclaw.inbox", triggers), |p| {
        assert_eq!(p.watch_paths, ["/var/lib/joelclaw/inbox"]);
    })
    .await;
}

#[tokio::test]
async fn a_daemon_that_is_not_running_still_reads_as_stopped() {
    // Only a trigger makes an idle job launchd's business; a daemon with RunAtLoad false is
    // simply stopped.
    let t = Launchd::new();
    let l = "com.joelclaw.idle-daemon";
    let mut c = sleeper(l);
    c.restart = RestartPolicy::Never;
    c.run_at_load = false;
    t.pm.enable(&c).await.unwrap();
    let st = t.pm.inspect(&label(l)).await.unwrap();
    assert!(st.loaded);
    assert_eq!(st.state, RunState::Stopped);
}

const OTHER_UID: u32 = 502;

#[tokio::test]
async fn services_in_two_user_domains_are_found_and_restarted_in_their_own() {
    let t = Launchd::with_fake(|c, fake| {
        c.with_user(OTHER_UID, fake.path("relay2/Library/LaunchAgents"))
    });
    assert_eq!(
        t.pm.search_order(),
        [
            ServiceScope::System,
            ServiceScope::Gui { uid: UID },
            ServiceScope::User { uid: UID },
            ServiceScope::Gui { uid: OTHER_UID },
            ServiceScope::User { uid: OTHER_UID },
        ]
    );
    let first = "com.joelclaw.relay-1";
    let second = "com.joelclaw.relay-2";
    let in_first = ServiceScope::Gui { uid: UID };
    let in_second = ServiceScope::User { uid: OTHER_UID };
    t.pm.enable(&sleeper(first).with_scope(in_first))
        .await
        .unwrap();
    t.pm.enable(&sleeper(second).with_scope(in_second))
        .await
        .unwrap();
    // Each plist is in its own user's folder.
    assert!(t
        .fake
        .path("home/Library/LaunchAgents")
        .join(format!("{first}.plist"))
        .is_file());
    assert!(t
        .fake
        .path("relay2/Library/LaunchAgents")
        .join(format!("{second}.plist"))
        .is_file());
    for (l, scope) in [(first, in_first), (second, in_second)] {
        let st = t.pm.inspect(&label(l)).await.unwrap();
        assert_eq!(st.scope, Some(scope), "{l}");
        assert!(st.is_running(), "{l}");
        t.fake.clear_log();
        assert_eq!(
            t.pm.restart(&label(l)).await.unwrap(),
            RestartOutcome::Restarted
        );
        let kicks: Vec<String> = t
            .argv()
            .into_iter()
            .filter(|c| c.starts_with("kickstart"))
            .collect();
        assert_eq!(kicks, [format!("kickstart -k {scope}/{l}")]);
    }
    // Booted out, each is still found installed in its own domain.
    t.pm.stop(&label(second)).await.unwrap();
    let st = t.pm.inspect(&label(second)).await.unwrap();
    assert_eq!((st.loaded, st.scope), (false, Some(in_second)));
    t.pm.restart(&label(second)).await.unwrap();
    assert!(t
        .argv()
        .iter()
        .any(|c| c.starts_with(&format!("bootstrap user/{OTHER_UID} ")) && c.contains("relay2")));
    // Both are listed.
    let listed: Vec<_> =
        t.pm.list(&LabelPattern::new("com.joelclaw.relay-*"))
            .await
            .unwrap()
            .into_iter()
            .map(|s| (s.label.to_string(), s.scope))
            .collect();
    assert_eq!(
        listed,
        [
            (first.to_string(), Some(in_first)),
            (second.to_string(), Some(in_second))
        ]
    );
    // A uid the adapter does not manage is refused, naming the ones it does.
    let e =
        t.pm.enable(&sleeper("com.joelclaw.stray").with_scope(ServiceScope::Gui { uid: 503 }))
            .await
            .unwrap_err()
            .to_string();
    assert!(e.contains("501, 502"), "{e}");
}
