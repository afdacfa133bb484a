//! `env_files` on a real systemd 252 (booted by `scripts/harness/systemd.sh`): the unit's
//! `EnvironmentFile=` lines reach the service's environment with systemd's syntax, a `-` path may
//! be missing, and a missing file without it fails the start.

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use adapters_linux::{ServiceAccount, SystemdProcessManager};
use process_manager::{ProcessManagerPort, ServiceConfig, ServiceLabel};

const SETTLE: Duration = Duration::from_secs(20);

struct Container {
    pid: String,
}

impl Container {
    fn get() -> Option<Self> {
        let pid = support::daemon_env("JOELCLAW_TEST_SYSTEMD_PID", "real systemd")?;
        Some(Container { pid })
    }

    /// A path inside the container, as seen from here.
    fn host_path(&self, inside: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root{inside}", self.pid))
    }

    fn manager(&self) -> SystemdProcessManager {
        SystemdProcessManager::system()
            .with_command_prefix(
                ["nsenter", "-t", &self.pid, "-a"]
                    .map(String::from)
                    .to_vec(),
            )
            .with_unit_dir(self.host_path("/etc/systemd/system"))
            .with_service_account(ServiceAccount::new("joelclaw"))
    }

    fn run(&self, argv: &[&str]) -> std::process::Output {
        Command::new("nsenter")
            .args(["-t", &self.pid, "-a"])
            .args(argv)
            .output()
            .expect("nsenter")
    }
}

fn environ(c: &Container, pid: u32) -> BTreeMap<String, String> {
    c.run(&["cat", &format!("/proc/{pid}/environ")])
        .stdout
        .split(|b| *b == 0)
        .filter_map(|kv| {
            let kv = String::from_utf8(kv.to_vec()).ok()?;
            let (k, v) = kv.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect()
}

async fn cleanup(pm: &SystemdProcessManager, c: &Container, l: &ServiceLabel) {
    let _ = pm.disable(l).await;
    let _ = std::fs::remove_file(pm.unit_path(l));
    c.run(&["systemctl", "daemon-reload"]);
    c.run(&["systemctl", "reset-failed", &format!("{l}.service")]);
}

#[tokio::test]
async fn env_file_values_reach_the_service_with_systemd_syntax() {
    let Some(c) = Container::get() else { return };
    let pm = c.manager();
    let dir = "/etc/joelclaw-test-env";
    std::fs::create_dir_all(c.host_path(dir)).unwrap();
    let file = format!("{dir}/worker.env");
    // Root-only, as the audit wants it: systemd reads it before dropping to the account.
    std::fs::write(
        c.host_path(&file),
        "# worker settings\nGREETING = \"hello \\\"world\\\"\"\nLITERAL='$HOME stays'\nAPI_TOKEN=s3cr3t-from-file\nPLAIN=inline-loses\n",
    )
    .unwrap();
    std::fs::set_permissions(c.host_path(&file), std::fs::Permissions::from_mode(0o600)).unwrap();

    let l = ServiceLabel::new("jc-envfile").unwrap();
    let mut cfg = ServiceConfig::new(l.clone(), "/bin/sh")
        .with_args(["-c", "while :; do sleep 1; done"])
        .with_env("PLAIN", "from-config");
    cfg.env_files = vec![file.clone().into(), format!("-{dir}/absent.env").into()];
    pm.enable(&cfg).await.unwrap();
    let st = sysutil::poll::until("jc-envfile running", SETTLE, || async {
        pm.inspect(&l).await.ok().filter(|s| s.is_running())
    })
    .await;
    let env = environ(&c, st.pid.expect("a running service has a pid"));
    assert_eq!(
        env.get("GREETING").map(String::as_str),
        Some("hello \"world\"")
    );
    assert_eq!(env.get("LITERAL").map(String::as_str), Some("$HOME stays"));
    assert_eq!(
        env.get("API_TOKEN").map(String::as_str),
        Some("s3cr3t-from-file")
    );
    // The file overrides the config's own `env`, as EnvironmentFile= overrides Environment=.
    assert_eq!(env.get("PLAIN").map(String::as_str), Some("inline-loses"));
    cleanup(&pm, &c, &l).await;

    // The same parser, used by the embedded supervisor, reads the file the same way.
    let ours: BTreeMap<String, String> = process_manager::env_file::load(&[c.host_path(&file)])
        .unwrap()
        .into_iter()
        .collect();
    for key in ["GREETING", "LITERAL", "API_TOKEN", "PLAIN"] {
        assert_eq!(ours.get(key), env.get(key), "{key}");
    }

    // A missing file without the `-` fails the start.
    let l = ServiceLabel::new("jc-envfile-missing").unwrap();
    let mut cfg = ServiceConfig::new(l.clone(), "/bin/sh").with_args(["-c", "sleep 100000"]);
    cfg.env_files = vec![format!("{dir}/absent.env").into()];
    let outcome = pm.enable(&cfg).await;
    let running = pm
        .inspect(&l)
        .await
        .map(|s| s.is_running())
        .unwrap_or(false);
    assert!(
        outcome.is_err() || !running,
        "a missing env file must fail the start: {outcome:?}"
    );
    cleanup(&pm, &c, &l).await;
    let _ = std::fs::remove_dir_all(c.host_path(dir));
}
