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
use process_manager::{ProcessManagerPort, ServiceLabel, ServiceScope};

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

#[tokio::test]
async fn conformance_on_a_real_user_manager_through_machine() {
    let Some((pm, uid)) = user_manager() else {
        return;
    };
    for entry in std::fs::read_dir(pm.unit_dir()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.starts_with("conf-user-") {
            std::fs::remove_file(pm.unit_dir().join(name)).unwrap();
        }
    }
    let mut fx = Fixture::new("conf-user-", "/usr/bin/sleep", &["100000"]);
    let make = fx.make_config;
    fx.make_config =
        Box::new(move |label, variant| make(label, variant).with_scope(ServiceScope::User { uid }));
    fx.settle = SETTLE;
    testkit::run_all(&pm, &fx).await;
    let st = pm
        .inspect(&ServiceLabel::new("conf-user-enable").unwrap())
        .await
        .unwrap();
    assert_eq!(st.scope, Some(ServiceScope::User { uid }));
    assert!(
        !st.is_running(),
        "the suite disables what it enabled: {st:?}"
    );
}
