//! `SystemdProcessManager` against a real systemd *user* manager (the container's `joelclaw`
//! account, lingering), reached the way an operator reaches another machine's manager:
//! `systemctl --user --machine=joelclaw@.host`.
//!
//! A test binary of its own on purpose: cargo runs test binaries one after another, and
//! `--machine=USER@.host` goes through a per-call stdio bridge that systemd 252 drops
//! ("Transport endpoint is not connected") when the system manager reloads at the same moment,
//! which the tests in `systemd_real.rs` do all the time.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use adapters_linux::{SystemdProcessManager, SystemdTarget};
use process_manager::testkit::{self, Fixture};
use process_manager::{ProcessManagerPort, ServiceScope};

const SETTLE: Duration = Duration::from_secs(20);

fn in_container(pid: &str, argv: &[&str]) -> String {
    let out = Command::new("nsenter")
        .args(["-t", pid, "-a"])
        .args(argv)
        .output()
        .expect("nsenter");
    assert!(out.status.success(), "{argv:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The user manager of the container's service account, its uid and its unit directory
/// (written from the host through /proc).
fn user_manager() -> Option<(SystemdProcessManager, u32)> {
    let pid = support::daemon_env("JOELCLAW_TEST_SYSTEMD_PID", "real systemd")?;
    let user = support::daemon_env("JOELCLAW_TEST_SYSTEMD_USER", "real systemd")?;
    let uid: u32 = in_container(&pid, &["id", "-u", &user])
        .trim()
        .parse()
        .unwrap();
    let home = in_container(
        &pid,
        &["sh", "-c", &format!("getent passwd {user} | cut -d: -f6")],
    );
    let unit_dir = PathBuf::from(format!(
        "/proc/{pid}/root{}/.config/systemd/user",
        home.trim()
    ));
    let pm = SystemdProcessManager::user(uid, unit_dir)
        .with_command_prefix(["nsenter", "-t", &pid, "-a"])
        .with_target(SystemdTarget::Machine(format!("{user}@.host")));
    Some((pm, uid))
}

/// One scenario at a time against the user manager: its `--machine` bridge is the fragile
/// part, and this binary exists to keep it away from concurrent reloads.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The user manager for one scenario, with a label prefix of the scenario's own; the fixture
/// holds the lock until the scenario ends.
async fn conformance_setup(scenario: &str) -> Option<(SystemdProcessManager, Fixture)> {
    let (pm, uid) = user_manager()?;
    let turn = ONE_AT_A_TIME.lock().await;
    let prefix = format!("conf-user-{scenario}-");
    for entry in std::fs::read_dir(pm.unit_dir()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.starts_with(&prefix) {
            std::fs::remove_file(pm.unit_dir().join(name)).unwrap();
        }
    }
    let mut fx = Fixture::new(&prefix, "/usr/bin/sleep", &["100000"]);
    let make = fx.make_config;
    fx.make_config =
        Box::new(move |label, variant| make(label, variant).with_scope(ServiceScope::User { uid }));
    fx.settle = SETTLE;
    Some((pm, fx.keeping(turn)))
}

process_manager::conformance_tests!(
    conformance_on_a_real_user_manager_through_machine,
    |scenario| async move { conformance_setup(scenario).await }
);

#[tokio::test]
async fn services_land_in_the_user_scope_and_the_suite_cleans_up() {
    let Some((pm, fx)) = conformance_setup("scope").await else {
        return;
    };
    let uid = match (fx.make_config)(fx.label("x"), 0).scope {
        ServiceScope::User { uid } => uid,
        other => panic!("the fixture's scope is {other:?}"),
    };
    testkit::enable_is_idempotent(&pm, &fx).await;
    let st = pm.inspect(&fx.label("enable")).await.unwrap();
    assert_eq!(st.scope, Some(ServiceScope::User { uid }));
    assert!(
        !st.is_running(),
        "the suite disables what it enabled: {st:?}"
    );
}
