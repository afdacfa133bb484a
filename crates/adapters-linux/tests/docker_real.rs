//! `DockerRuntime` against a real dockerd (started by `scripts/harness/dockerd.sh`), and against
//! sockets that are dead or never answer.

mod support;

use std::process::Command;
use std::time::Duration;

use adapters_linux::DockerRuntime;
use container_runtime::testkit::Fixture;
use container_runtime::{
    ContainerRestartOutcome, ContainerRuntimePort, EnginePort, RuntimeError, SubstratePort,
};
use support::TestContainer;

fn engine() -> Option<(String, String)> {
    let host = support::daemon_env("JOELCLAW_TEST_DOCKER_HOST", "a real dockerd")?;
    let image = support::daemon_env("JOELCLAW_TEST_DOCKER_IMAGE", "a real dockerd")?;
    Some((host, image))
}

/// A container of the scenario's own (scenarios run at once), kept for the scenario, and the
/// engine through `Arc<dyn>`, as the heal loop holds it.
fn conformance_setup(
    scenario: &str,
) -> Option<(std::sync::Arc<dyn ContainerRuntimePort>, Fixture)> {
    let (host, image) = engine()?;
    let name = format!("jc-conf-{scenario}-{}", std::process::id()).replace('_', "-");
    let label = format!("com.joelclaw.test={name}");
    let container = TestContainer::run(&host, &image, &name, &label);
    let rt = DockerRuntime::connect(&host).unwrap();
    let fx = Fixture::new(false)
        .with_container(name, label)
        .keeping(container);
    Some((std::sync::Arc::new(rt), fx))
}

container_runtime::conformance_tests!(conformance_on_a_real_dockerd, |scenario| async move {
    conformance_setup(scenario)
});

#[tokio::test]
async fn container_details_are_real() {
    let Some((host, image)) = engine() else {
        return;
    };
    let name = format!("jc-details-{}", std::process::id());
    let label = format!("com.joelclaw.test={name}");
    let container = TestContainer::run(&host, &image, &name, &label);
    let rt = DockerRuntime::connect(&host).unwrap();
    let c = rt.inspect_container(&name).await.unwrap();
    assert_eq!(c.status, "running");
    assert_eq!(c.exit_code, None);
    assert_eq!(c.labels.get("com.joelclaw.test"), Some(&name));
    assert_eq!(c.id.len(), 64, "{c:?}");
    // Inspect by id works as well as by name.
    assert_eq!(rt.inspect_container(&c.id).await.unwrap().name, name);

    let out = container.docker(&["stop", "-t", "1", &name]);
    assert!(out.status.success(), "{out:?}");
    let stopped = rt.inspect_container(&name).await.unwrap();
    assert!(!stopped.running, "{stopped:?}");
    assert_eq!(stopped.status, "exited");
    assert_eq!(stopped.exit_code, Some(0));
    assert_eq!(
        rt.restart_container(&name).await.unwrap(),
        ContainerRestartOutcome::Started
    );
    assert!(rt.inspect_container(&name).await.unwrap().running);
    let listed = rt.list_containers(Some(&label)).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].name, name);
    // Bad names are refused before they reach a URL.
    assert!(matches!(
        rt.inspect_container("../images/json").await,
        Err(RuntimeError::InvalidInput { .. })
    ));
}

#[tokio::test]
async fn uptime_is_the_engine_process_uptime() {
    let Some((host, _)) = engine() else {
        return;
    };
    let Some(pidfile) = support::daemon_env("JOELCLAW_TEST_DOCKER_PIDFILE", "a real dockerd")
    else {
        return;
    };
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    // The daemon's age as `ps` tells it, just before and just after the adapter's answer, so
    // the check holds however slow the machine is (a second of slack for tick rounding).
    let etimes = || -> u64 {
        let ps = Command::new("ps")
            .args(["-o", "etimes=", "-p", pid.trim()])
            .output()
            .unwrap();
        String::from_utf8_lossy(&ps.stdout).trim().parse().unwrap()
    };
    let rt = DockerRuntime::connect(&host).unwrap();
    let before = etimes();
    let up = rt.uptime_seconds().await.unwrap();
    let after = etimes();
    assert!(
        before <= up + 1 && up <= after + 1,
        "ps said {before}s then {after}s, the adapter {up}s"
    );
    let remote = DockerRuntime::connect("tcp://127.0.0.1:9").unwrap();
    assert!(matches!(
        remote.uptime_seconds().await,
        Err(RuntimeError::NotSupported { .. })
    ));
}

/// A socket path with nothing behind it: unhealthy, promptly, never an error or a hang.
#[tokio::test]
async fn a_missing_socket_is_unhealthy() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("docker.sock");
    let rt = DockerRuntime::connect(&format!("unix://{}", sock.display()))
        .unwrap()
        .with_deadline(Duration::from_millis(500));
    let healthy = tokio::time::timeout(Duration::from_secs(10), rt.is_healthy())
        .await
        .expect("is_healthy must not hang");
    assert!(!healthy.unwrap());
    assert!(matches!(
        rt.inspect_container("redis").await,
        Err(RuntimeError::Unavailable { .. })
    ));
}

/// A stopped daemon leaves its socket file behind: connections are refused.
#[tokio::test]
async fn a_stopped_daemons_socket_is_unhealthy() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("docker.sock");
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    assert!(sock.exists());
    let rt = DockerRuntime::connect(&format!("unix://{}", sock.display()))
        .unwrap()
        .with_deadline(Duration::from_millis(500));
    let healthy = tokio::time::timeout(Duration::from_secs(10), rt.is_healthy())
        .await
        .expect("is_healthy must not hang");
    assert!(!healthy.unwrap());
    let up = rt.uptime_seconds().await;
    assert!(
        matches!(up, Err(RuntimeError::Unavailable { .. })),
        "{up:?}"
    );
}

/// A daemon that accepts and never answers: the deadline decides, and it is unhealthy.
#[tokio::test]
async fn a_hung_daemon_is_unhealthy_within_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("docker.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let rt = DockerRuntime::connect(&format!("unix://{}", sock.display()))
        .unwrap()
        .with_deadline(Duration::from_millis(300));
    let healthy = tokio::time::timeout(Duration::from_secs(10), rt.is_healthy())
        .await
        .expect("is_healthy must not hang");
    assert!(!healthy.unwrap());
    match rt.list_containers(None).await {
        Err(RuntimeError::Timeout { after, .. }) => assert_eq!(after, Duration::from_millis(300)),
        other => panic!("expected a timeout, got {other:?}"),
    }
    drop(listener);
}

/// A remote engine nobody answers for: a clear error within the deadline, never a hang; a TLS
/// engine with a missing file names it (or, built without TLS, TLS is refused by name), and an
/// SSH engine whose host has no sshd is the ssh client's refusal, named (built without SSH,
/// SSH is refused by name).
#[tokio::test]
async fn unreachable_and_unsupported_remote_engines_say_so_promptly() {
    let refused = DockerRuntime::connect("tcp://127.0.0.1:9")
        .unwrap()
        .with_deadline(Duration::from_millis(500));
    let r = tokio::time::timeout(Duration::from_secs(10), refused.list_containers(None))
        .await
        .expect("must not hang");
    assert!(
        matches!(
            r,
            Err(RuntimeError::Unavailable { .. } | RuntimeError::Timeout { .. })
        ),
        "{r:?}"
    );
    assert!(!refused.is_healthy().await.unwrap());
    let tls = DockerRuntime::connect("tcp://127.0.0.1:2376")
        .unwrap()
        .with_tls(adapters_linux::DockerTls {
            ca: "/nonexistent/ca.pem".into(),
            cert: "/nonexistent/cert.pem".into(),
            key: "/nonexistent/key.pem".into(),
        });
    match tls.list_containers(None).await {
        // With a TLS client (the agent's build): the missing file is named.
        #[cfg(feature = "docker-tls")]
        Err(e @ RuntimeError::InvalidInput { .. }) => {
            assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}")
        }
        // Without one: TLS is refused by name.
        #[cfg(not(feature = "docker-tls"))]
        Err(e @ RuntimeError::NotSupported { .. }) => {
            assert!(e.to_string().contains("TLS"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    // SSH to a host with no sshd (or none that lets `nobody` in): the ssh client's refusal,
    // named, within the deadline (never a wait); without the feature, SSH is refused by name.
    let ssh = DockerRuntime::connect("ssh://nobody@127.0.0.1")
        .unwrap()
        .with_deadline(Duration::from_secs(10));
    let asked = std::time::Instant::now();
    let answer = ssh.inspect_container("redis").await;
    assert!(
        asked.elapsed() < Duration::from_secs(11),
        "{:?}",
        asked.elapsed()
    );
    match answer {
        #[cfg(feature = "docker-ssh")]
        Err(e @ RuntimeError::Unavailable { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("over SSH") && text.contains("remote host"),
                "{text}"
            );
            assert!(
                asked.elapsed() < Duration::from_secs(11),
                "{:?}",
                asked.elapsed()
            );
        }
        #[cfg(not(feature = "docker-ssh"))]
        Err(e @ RuntimeError::NotSupported { .. }) => {
            assert!(e.to_string().contains("SSH"), "{e}")
        }
        other => panic!("{other:?}"),
    }
}

fn systemd_substrate(
    url: &str,
    manager: process_manager::MemoryProcessManager,
) -> adapters_linux::SystemdDockerSubstrate {
    let engine = DockerRuntime::connect(url)
        .unwrap()
        .with_deadline(Duration::from_millis(500));
    adapters_linux::SystemdDockerSubstrate::new(
        std::sync::Arc::new(manager),
        process_manager::ServiceLabel::new("docker").unwrap(),
        std::sync::Arc::new(engine),
    )
    .with_start_wait(Duration::from_secs(2))
}

container_runtime::substrate_conformance_tests!(
    systemd_substrate_conformance_on_a_real_dockerd,
    |_| async {
        let (host, _) = engine()?;
        Some((
            systemd_substrate(&host, process_manager::MemoryProcessManager::new()),
            Fixture::new(false),
        ))
    }
);

/// A daemon that is down and a unit its manager does not know: a clear error naming the unit,
/// not a wait.
#[tokio::test]
async fn a_down_daemon_whose_unit_is_unknown_says_which_unit() {
    let dir = tempfile::tempdir().unwrap();
    let sock = format!("unix://{}", dir.path().join("docker.sock").display());
    let sub = systemd_substrate(&sock, process_manager::MemoryProcessManager::new());
    assert!(!sub.is_healthy().await.unwrap());
    match sub.ensure_running().await {
        Err(e @ RuntimeError::NotFound { .. }) => assert!(e.to_string().contains("docker"), "{e}"),
        other => panic!("{other:?}"),
    }
}
