//! A Docker daemon that systemd runs, on the harness's real systemd: a unit standing in for
//! `docker.service` (the host's dockerd, its socket in the scratch folder shared with the host)
//! has its daemon killed, and the agent's own loop brings the substrate back through the
//! systemd adapter (the unit is `failed`: reset, then started) and sees its engine answer again.

use std::process::Command;
use std::time::{Duration, Instant};

use adapters_linux::SystemdProcessManager;
use central_core::EventKind::*;
use central_core::{HealLoop, Inventory, LoopOptions, NodeTags, Step};
use joelclaw_node::compose::{compose, Mode};
use process_manager::{ProcessManagerPort, RunState, ServiceLabel};

fn daemon_env(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{var} is not set: this test needs real systemd, and CI=true never skips it; run it through scripts/test");
            }
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                format!("SKIPPED (needs real systemd: run scripts/test): {var} is not set\n")
                    .as_bytes(),
            );
            None
        }
    }
}

/// The unit inside the systemd container, driven through the systemd adapter (its file is
/// written by hand, as a distribution's docker.service is); stopped and removed when dropped.
struct DockerUnit {
    pid: String,
    name: String,
    socket_dir: std::path::PathBuf,
    systemd: SystemdProcessManager,
}

impl DockerUnit {
    fn nsenter(&self, args: &[&str]) -> std::process::Output {
        Command::new("nsenter")
            .args(["-t", &self.pid, "-a"])
            .args(args)
            .output()
            .expect("nsenter")
    }

    fn label(&self) -> ServiceLabel {
        ServiceLabel::new(self.name.as_str()).unwrap()
    }

    async fn install(pid: &str, scratch: &str) -> Self {
        let name = format!("jc-dockerd-{}", std::process::id());
        let socket_dir = std::path::Path::new(scratch).join(&name);
        std::fs::create_dir_all(&socket_dir).unwrap();
        let unit = format!(
            "[Unit]\nDescription=a Docker daemon standing in for docker.service\n\n[Service]\n\
             ExecStart=/usr/sbin/dockerd --data-root /var/lib/{name} --exec-root /run/{name} \
             --pidfile /run/{name}.pid --host unix://{}/docker.sock --iptables=false \
             --ip6tables=false --bridge=none --ip-masq=false --userland-proxy=false --log-level=warn\n",
            socket_dir.display()
        );
        // A name systemd has never seen is loaded from disk when first referenced.
        std::fs::write(
            format!("/proc/{pid}/root/etc/systemd/system/{name}.service"),
            unit,
        )
        .unwrap();
        let systemd = SystemdProcessManager::system()
            .with_command_prefix(["nsenter", "-t", pid, "-a"].map(String::from).to_vec());
        let u = DockerUnit {
            pid: pid.to_string(),
            name,
            socket_dir,
            systemd,
        };
        u.systemd.restart(&u.label()).await.expect("start the unit");
        u
    }

    fn socket(&self) -> String {
        format!("unix://{}/docker.sock", self.socket_dir.display())
    }
}

impl Drop for DockerUnit {
    fn drop(&mut self) {
        let (systemd, label) = (self.systemd.clone(), self.label());
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async { systemd.stop(&label).await })
        })
        .join();
        let _ = std::fs::remove_file(format!(
            "/proc/{}/root/etc/systemd/system/{}.service",
            self.pid, self.name
        ));
        let (data, exec) = (
            format!("/var/lib/{}", self.name),
            format!("/run/{}", self.name),
        );
        self.nsenter(&["rm", "-rf", &data, &exec]);
        let _ = std::fs::remove_dir_all(&self.socket_dir);
    }
}

async fn tick_until(
    heal: &mut HealLoop,
    what: &str,
    done: impl Fn(&[central_core::HealEvent]) -> bool,
) -> Vec<central_core::HealEvent> {
    let limit = Instant::now() + Duration::from_secs(120);
    let mut seen = Vec::new();
    loop {
        seen.extend(heal.tick().await.events);
        if done(&seen) {
            return seen;
        }
        assert!(
            Instant::now() < limit,
            "{what}: not within 120 s: {seen:#?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_docker_daemon_unit_is_brought_back_through_systemd() {
    let Some(pid) = daemon_env("JOELCLAW_TEST_SYSTEMD_PID") else {
        return;
    };
    let Some(scratch) = daemon_env("JOELCLAW_TEST_SCRATCH") else {
        return;
    };
    let unit = DockerUnit::install(&pid, &scratch).await;
    let text = format!(
        r#"[node]
id = "fleet-test"

[loop]
interval = "1s"
heal_timeout = "30s"

[heal]
failures_to_down = 1
passes_to_up = 1
grace = "2s"
jitter = 0.0
backoff_initial = "1s"

[managers.systemd]
command_prefix = ["nsenter", "-t", "{pid}", "-a"]

[substrate]
name = "docker"
kind = "docker"
endpoint = "{}"
unit = "{}"
timeout = "2s"
start_timeout = "60s"
"#,
        unit.socket(),
        unit.name
    );
    let inv = Inventory::parse("fleet.toml", &text).unwrap_or_else(|e| panic!("{e}"));
    let state = tempfile::tempdir().unwrap();
    let comp = compose(&inv, state.path(), Mode::Own).unwrap();
    let mut heal = HealLoop::new(
        &inv,
        comp.ports(),
        LoopOptions::new(NodeTags::new("fleet-test", "linux")),
    )
    .unwrap();
    // The daemon has just been started: wait for its engine, then one quiet round.
    let limit = Instant::now() + Duration::from_secs(60);
    while !Command::new("docker")
        .args(["-H", &unit.socket(), "version"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        assert!(Instant::now() < limit, "the unit's dockerd never answered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let quiet = heal.tick().await;
    assert!(quiet.events.is_empty(), "{:#?}", quiet.events);

    // Killed under systemd's feet: without Restart= the unit is left `failed`.
    let main_pid = unit
        .systemd
        .inspect(&unit.label())
        .await
        .unwrap()
        .pid
        .expect("the daemon's pid");
    let out = unit.nsenter(&["kill", "-KILL", &main_pid.to_string()]);
    assert!(out.status.success(), "{out:?}");
    let started = Instant::now();
    let events = tick_until(&mut heal, "the daemon back", |e| {
        e.iter()
            .any(|e| e.service == "docker" && e.event == HealSucceeded)
    })
    .await;
    let took = started.elapsed();
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!(
            "TIMING loop: substrate (dockerd unit killed -> engine answers): {} ms\n",
            took.as_millis()
        )
        .as_bytes(),
    );
    let heal_started: Vec<_> = events
        .iter()
        .filter(|e| e.service == "docker" && e.event == HealStarted)
        .collect();
    assert_eq!(heal_started.len(), 1, "{events:#?}");
    assert_eq!(heal_started[0].step, Some(Step::HealSubstrate));
    assert_eq!(heal_started[0].adapter_type, "docker-systemd");
    let after = unit.systemd.inspect(&unit.label()).await.unwrap();
    assert_eq!(after.state, RunState::Running, "{after:?}");
}
