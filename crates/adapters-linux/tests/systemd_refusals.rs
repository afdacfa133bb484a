//! What `SystemdProcessManager` refuses or reports before systemd is involved: bad input is
//! refused before any file is written or any process spawned, a missing `systemctl` is
//! `Unavailable`, a hung one a `Timeout`. No daemon needed.

use std::path::Path;
use std::time::Duration;

use adapters_linux::{ServiceAccount, SystemdProcessManager};
use process_manager::{ProcessError, ProcessManagerPort, ServiceConfig, ServiceLabel};

/// A manager whose `systemctl` does not exist, so any spawn would show up as `Unavailable`
/// rather than the refusal the test expects.
fn manager(unit_dir: &Path) -> SystemdProcessManager {
    SystemdProcessManager::system()
        .with_systemctl("/nonexistent/joelclaw-test/systemctl")
        .with_unit_dir(unit_dir)
        .with_service_account(ServiceAccount::new("joelclaw"))
}

fn config() -> ServiceConfig {
    ServiceConfig::new(ServiceLabel::new("refused").unwrap(), "/usr/bin/sleep").with_args(["1"])
}

/// An executable `/bin/sh` script `dir/name` running `body`.
fn script(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[tokio::test]
async fn bad_input_is_refused_before_any_file_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let pm = manager(dir.path());
    let mut relative = config();
    relative.program = "bin/worker".into();
    let mut newline_path = config();
    newline_path.stdout_path = Some("/var/log/a\nb".into());
    let mut dollar_program = config();
    dollar_program.program = "/opt/$X/run".into();
    let cases = [
        ("relative program", relative),
        ("user 0day", config().with_user("0day", None)),
        ("user 0x0", config().with_user("0x0", None)),
        (
            "group 0x0",
            config().with_user("joelclaw", Some("0x0".into())),
        ),
        ("root without allow_root", config().with_user("root", None)),
        ("secret env", config().with_env("GITHUB_TOKEN", "ghp_x")),
        ("bad env name", config().with_env("A-B", "x")),
        ("newline in a path", newline_path),
        ("$ in the program path", dollar_program),
        (
            "user scope on the system manager",
            config().with_scope(process_manager::ServiceScope::User { uid: 1000 }),
        ),
    ];
    for (what, cfg) in cases {
        match pm.enable(&cfg).await {
            Err(ProcessError::InvalidInput { label, .. }) => {
                assert_eq!(label.as_deref(), Some("refused"), "{what}")
            }
            other => panic!("{what}: expected InvalidInput, got {other:?}"),
        }
        assert!(pm.render_unit(&cfg).is_err(), "{what}");
        assert_eq!(entries(dir.path()), Vec::<String>::new(), "{what}");
    }
}

#[tokio::test]
async fn a_bad_label_never_becomes_a_config() {
    // Labels are a validated type: a config carrying one cannot even be built or read.
    for bad in ["../etc/passwd", "-rf", "a b", "x\ny", ""] {
        assert!(ServiceLabel::new(bad).is_err(), "{bad:?}");
        let json = serde_json::json!({ "label": bad, "program": "/usr/bin/sleep" });
        assert!(
            serde_json::from_value::<ServiceConfig>(json).is_err(),
            "{bad:?}"
        );
    }
}

#[tokio::test]
async fn no_account_means_no_unit() {
    let dir = tempfile::tempdir().unwrap();
    let pm = SystemdProcessManager::system()
        .with_systemctl("/nonexistent/joelclaw-test/systemctl")
        .with_unit_dir(dir.path());
    let e = pm.enable(&config()).await.unwrap_err();
    assert!(e.to_string().contains("service account"), "{e}");
    assert_eq!(entries(dir.path()), Vec::<String>::new());
}

#[tokio::test]
async fn a_missing_systemctl_is_unavailable_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let pm = manager(dir.path());
    let label = ServiceLabel::new("anything").unwrap();
    match pm.inspect(&label).await {
        Err(ProcessError::Unavailable { adapter, detail }) => {
            assert_eq!(adapter, "systemd");
            assert!(
                detail.contains("/nonexistent/joelclaw-test/systemctl"),
                "{detail}"
            );
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    let pm = SystemdProcessManager::system()
        .with_command_prefix(["joelclaw-no-such-prefix-binary", "-x"])
        .with_unit_dir(dir.path());
    match pm.inspect(&label).await {
        Err(ProcessError::Unavailable { detail, .. }) => {
            assert!(
                detail.contains("joelclaw-no-such-prefix-binary"),
                "{detail}"
            )
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn a_hung_systemctl_is_a_timeout_and_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let fake = script(
        dir.path(),
        "systemctl",
        &format!("echo $$ > {}\nexec sleep 60", pid_file.display()),
    );
    let pm = SystemdProcessManager::system()
        .with_systemctl(&fake)
        .with_unit_dir(dir.path())
        .with_query_deadline(Duration::from_millis(300));
    let label = ServiceLabel::new("hung").unwrap();
    let r = tokio::time::timeout(Duration::from_secs(20), pm.inspect(&label))
        .await
        .expect("the adapter's own deadline must end the call");
    match r {
        Err(ProcessError::Timeout { after, .. }) => {
            assert_eq!(after, Duration::from_millis(300))
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    // The hung process was killed, not left behind (a zombie until reaped at most).
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    sysutil::poll::until_true(
        "the hung systemctl to be killed",
        Duration::from_secs(10),
        || match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat
                .rsplit_once(") ")
                .is_some_and(|(_, r)| r.starts_with('Z')),
        },
    )
    .await;
}

#[tokio::test]
async fn a_timed_out_call_leaves_no_process_of_its_group() {
    let dir = tempfile::tempdir().unwrap();
    // A command prefix (as nsenter or ssh would be) that starts a grandchild and hangs.
    let pid_file = dir.path().join("pid");
    let prefix = script(
        dir.path(),
        "prefix",
        &format!("sleep 60 &\necho $$ > {}\nwait", pid_file.display()),
    );
    let pm = SystemdProcessManager::system()
        .with_command_prefix([&prefix])
        .with_unit_dir(dir.path())
        .with_query_deadline(Duration::from_secs(2));
    let label = ServiceLabel::new("hung").unwrap();
    match pm.inspect(&label).await {
        Err(ProcessError::Timeout { .. }) => {}
        other => panic!("expected Timeout, got {other:?}"),
    }
    let pgid: u32 = std::fs::read_to_string(&pid_file)
        .expect("the prefix started within the deadline")
        .trim()
        .parse()
        .unwrap();
    sysutil::command::group::wait_until_empty(pgid, Duration::from_secs(10)).await;
}

#[test]
fn capabilities_say_what_systemd_does() {
    let caps = SystemdProcessManager::system().capabilities();
    assert_eq!(caps.adapter, "systemd");
    assert_eq!(caps.respawn_throttle, None);
    // The local manager is watched over its bus; without a bus nothing is pushed.
    assert!(caps.pushes_events);
    let by_systemctl = SystemdProcessManager::system().with_bus(adapters_linux::BusAddress::Off);
    assert!(!by_systemctl.capabilities().pushes_events);
    // Behind a prefix (another machine's manager) the local bus is not that manager's.
    let remote = SystemdProcessManager::system().with_command_prefix(["ssh", "node-1"]);
    assert!(!remote.capabilities().pushes_events);
    assert_eq!(remote.bus_address(), None);
}
