//! A Docker daemon that systemd runs, on the harness's real systemd: a unit standing in for
//! `docker.service` (the host's dockerd, its socket in the scratch folder shared with the host)
//! has its daemon killed, and the agent's own loop brings the substrate back through the
//! systemd adapter (the unit is `failed`: reset, then started) and sees its engine answer again.
//! With containers: a unit that is the engine's only door (a socket relay to the harness's real
//! dockerd) is killed and a container stopped meanwhile; the containers are unknown while the
//! engine cannot be reached, the unit is brought back through systemd, then the container.

mod compose_support;

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
        Self::install_as(pid, scratch, &format!("jc-dockerd-{}", std::process::id())).await
    }

    /// Under its own `name` (tests running at once each have theirs).
    async fn install_as(pid: &str, scratch: &str, name: &str) -> Self {
        let name = name.to_string();
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

/// Until the unit's engine answers (a daemon just started takes a moment), within 60 s.
async fn engine_answers(socket: &str) {
    let limit = Instant::now() + Duration::from_secs(60);
    while !Command::new("docker")
        .args(["-H", socket, "version"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        assert!(Instant::now() < limit, "the unit's dockerd never answered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// The substrate half's conformance suite on a dockerd that the real systemd runs, each scenario
// with its own unit; taken down as it fails for real: its daemon killed, the unit left `failed`
// (the substrate must reset it before starting it).
container_runtime::substrate_conformance_tests!(
    substrate_conformance_on_real_systemd,
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)],
    |scenario: &'static str| async move {
        let pid = daemon_env("JOELCLAW_TEST_SYSTEMD_PID")?;
        let scratch = daemon_env("JOELCLAW_TEST_SCRATCH")?;
        let name = format!("jc-dockerd-{}-{}", std::process::id(), scenario.replace('_', "-"));
        let unit = DockerUnit::install_as(&pid, &scratch, &name).await;
        engine_answers(&unit.socket()).await;
        let engine = adapters_linux::DockerRuntime::connect(&unit.socket())
            .unwrap()
            .with_deadline(Duration::from_secs(2));
        let substrate = adapters_linux::SystemdDockerSubstrate::new(
            std::sync::Arc::new(unit.systemd.clone()),
            unit.label(),
            std::sync::Arc::new(engine),
        )
        .with_start_wait(Duration::from_secs(60));
        let (systemd, label, ns) = (unit.systemd.clone(), unit.label(), unit.pid.clone());
        let fx = container_runtime::testkit::Fixture::new(false)
            .with_take_down(move || {
                let (systemd, label, ns) = (systemd.clone(), label.clone(), ns.clone());
                async move {
                    let pid = systemd.inspect(&label).await.unwrap().pid.expect("a daemon pid");
                    let out = Command::new("nsenter")
                        .args(["-t", &ns, "-a", "kill", "-KILL", &pid.to_string()])
                        .output()
                        .unwrap();
                    assert!(out.status.success(), "{out:?}");
                }
            })
            .keeping(unit);
        Some((substrate, fx))
    }
);

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
    engine_answers(&unit.socket()).await;
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

/// The engine's front door as a unit inside the systemd container, standing in for
/// `docker.service` where containers must run (a dockerd inside the container cannot run any:
/// its cgroup tree is read-only). systemd's own socket tools serve the engine's socket in the
/// shared scratch folder (`systemd-socket-activate` listens, then becomes
/// `systemd-socket-proxyd`) and relay every connection to the harness's real dockerd, whose
/// socket is hard-linked into the scratch folder (the container sees nothing else of the
/// host's `/run`; unix sockets ignore its private network). Killing the unit's process closes
/// the socket: to the agent the engine is gone as with a dead dockerd, and the unit is `failed`.
struct FrontDoorUnit {
    pid: String,
    name: String,
    dir: std::path::PathBuf,
    systemd: SystemdProcessManager,
}

impl FrontDoorUnit {
    fn label(&self) -> ServiceLabel {
        ServiceLabel::new(self.name.as_str()).unwrap()
    }

    async fn install(pid: &str, scratch: &str, engine_socket: &str) -> Self {
        let name = format!("jc-dockerfront-{}", std::process::id());
        let dir = std::path::Path::new(scratch).join(&name);
        std::fs::create_dir_all(&dir).unwrap();
        let backend = dir.join("engine.sock");
        std::fs::hard_link(engine_socket, &backend).unwrap_or_else(|e| {
            panic!(
                "hard-linking the harness's dockerd socket {engine_socket} into the scratch \
                 folder {}: {e} (both live under the harness's state folder, one filesystem)",
                dir.display()
            )
        });
        let unit = format!(
            "[Unit]\nDescription=the Docker engine's front door, standing in for docker.service\n\n\
             [Service]\nExecStart=/usr/bin/systemd-socket-activate -l {front} \
             /usr/lib/systemd/systemd-socket-proxyd {backend}\n",
            front = dir.join("docker.sock").display(),
            backend = backend.display(),
        );
        std::fs::write(
            format!("/proc/{pid}/root/etc/systemd/system/{name}.service"),
            unit,
        )
        .unwrap();
        let systemd = SystemdProcessManager::system()
            .with_command_prefix(["nsenter", "-t", pid, "-a"].map(String::from).to_vec());
        let u = FrontDoorUnit {
            pid: pid.to_string(),
            name,
            dir,
            systemd,
        };
        u.systemd.restart(&u.label()).await.expect("start the unit");
        u
    }

    fn socket(&self) -> String {
        format!("unix://{}/docker.sock", self.dir.display())
    }
}

impl Drop for FrontDoorUnit {
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
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_engine_unit_is_brought_back_through_systemd_and_the_containers_after_it() {
    use compose_support::{heal_loop, steps, two_services, Project};

    let Some(pid) = daemon_env("JOELCLAW_TEST_SYSTEMD_PID") else {
        return;
    };
    let Some(scratch) = daemon_env("JOELCLAW_TEST_SCRATCH") else {
        return;
    };
    let Some(image) = daemon_env("JOELCLAW_TEST_DOCKER_IMAGE") else {
        return;
    };
    let Some(p) = Project::up("frontdoor", &two_services(&image, "no")) else {
        return;
    };
    let engine_socket = p.host.strip_prefix("unix://").expect("a unix socket");
    let unit = FrontDoorUnit::install(&pid, &scratch, engine_socket).await;
    let limit = Instant::now() + Duration::from_secs(60);
    while !Command::new("docker")
        .args(["-H", &unit.socket(), "version"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        assert!(Instant::now() < limit, "the front door never answered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The agent reaches the engine only through the unit: its endpoint is the front door.
    let substrate = format!(
        "[substrate]\nname = \"docker\"\nkind = \"docker\"\nendpoint = \"{}\"\nunit = \"{}\"\n\
         compose_command = [\"docker-compose\"]\ntimeout = \"2s\"\nstart_timeout = \"60s\"\n\n\
         [managers.systemd]\ncommand_prefix = [\"nsenter\", \"-t\", \"{pid}\", \"-a\"]",
        unit.socket(),
        unit.name
    );
    let inv = p.inventory(&substrate, "");
    let state = tempfile::tempdir().unwrap();
    let mut heal = heal_loop(&inv, state.path());
    let quiet = heal.tick().await;
    assert!(quiet.events.is_empty(), "{:#?}", quiet.events);

    // The unit's process killed (no Restart=: it stays `failed`), and a container stopped while
    // the engine cannot be reached.
    let main_pid = unit
        .systemd
        .inspect(&unit.label())
        .await
        .unwrap()
        .pid
        .expect("the front door's pid");
    let out = Command::new("nsenter")
        .args(["-t", &pid, "-a", "kill", "-KILL", &main_pid.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let limit = Instant::now() + Duration::from_secs(60);
    while unit.systemd.inspect(&unit.label()).await.unwrap().state != RunState::Failed {
        assert!(Instant::now() < limit, "the killed unit never read failed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    p.docker(&["stop", "-t", "1", &p.container_of("app")]);

    // The first round: the engine does not answer, so the containers are unknown (not down:
    // no heal of theirs is tried); the substrate is brought back through systemd.
    let round = Instant::now();
    let first = heal.tick().await;
    let first_round = round.elapsed();
    let status = heal.status();
    for service in ["db", "app"] {
        let s = status.services.iter().find(|s| s.label == service).unwrap();
        assert_eq!(s.health, central_core::Health::Unknown, "{s:#?}");
    }
    let mut events = first.events;
    let limit = Instant::now() + Duration::from_secs(120);
    let mut substrate_back = None;
    let container_back = loop {
        if substrate_back.is_none()
            && events
                .iter()
                .any(|e| e.service == "docker" && e.event == HealSucceeded)
        {
            substrate_back = Some(Instant::now());
        }
        if events
            .iter()
            .any(|e| e.service == "app" && e.event == HealSucceeded)
        {
            break Instant::now();
        }
        assert!(
            Instant::now() < limit,
            "not healed within 120 s: {events:#?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        events.extend(heal.tick().await.events);
    };
    let substrate_back = substrate_back.expect("the substrate healed before the container");
    let at = |service: &str, kind| {
        events
            .iter()
            .find(|e| e.service == service && e.event == kind)
            .unwrap_or_else(|| panic!("no {kind:?} for {service}: {events:#?}"))
    };
    let sub_ok = at("docker", HealSucceeded).at_ms;
    let app_started = at("app", HealStarted).at_ms;
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!(
            "TIMING loop: substrate through systemd (the round that found the engine gone and \
             brought its unit back: reset-failed, start, engine answering): {} ms; verified \
             healthy {} ms after that round began\n\
             TIMING loop: container after it (restarted in the round the substrate was verified \
             healthy): healthy {} ms after the substrate\n",
            first_round.as_millis(),
            substrate_back.duration_since(round).as_millis(),
            container_back.duration_since(substrate_back).as_millis(),
        )
        .as_bytes(),
    );

    // (a) No container heal was tried, and none failed, while the engine was unreachable.
    let back = events
        .iter()
        .position(|e| e.service == "docker" && e.event == HealSucceeded)
        .unwrap();
    assert!(
        !events[..back]
            .iter()
            .any(|e| (e.service == "app" || e.service == "db")
                && matches!(e.event, HealStarted | HealFailed | ProbeFailed)),
        "{events:#?}"
    );
    // (b) The substrate came back through the systemd adapter: one heal, its unit started.
    assert_eq!(
        steps(&events, "docker"),
        [Step::HealSubstrate],
        "{events:#?}"
    );
    let sub_started = at("docker", HealStarted);
    assert_eq!(sub_started.adapter_type, "docker-systemd");
    assert_eq!(
        at("docker", HealSucceeded).outcome,
        Some(central_core::StepOutcome::SubstrateStarted {
            result: container_runtime::EnsureRunningOutcome::Started
        }),
        "{events:#?}"
    );
    let after = unit.systemd.inspect(&unit.label()).await.unwrap();
    assert_eq!(after.state, RunState::Running, "{after:?}");
    // (c) Then the container, through the engine behind the front door: restarted, not replaced.
    assert!(sub_ok <= app_started, "{events:#?}");
    assert_eq!(steps(&events, "app"), [Step::Restart], "{events:#?}");
    assert!(steps(&events, "db").is_empty(), "{events:#?}");
    let running = p.docker(&[
        "inspect",
        "-f",
        "{{.State.Running}}",
        &p.container_of("app"),
    ]);
    assert_eq!(String::from_utf8_lossy(&running.stdout).trim(), "true");
}
