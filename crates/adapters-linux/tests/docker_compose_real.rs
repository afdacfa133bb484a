//! Compose services on a real dockerd (the harness's, with Debian's `docker-compose`): found by
//! their labels, restarted after their process is killed, recreated after `docker rm -f` (and a
//! crash-looping one replaced by a recreate), and a crash loop under `restart: always` seen for
//! what it is. Each test has its own project.

mod support;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use adapters_linux::{ComposeCommand, DockerRuntime};
use container_runtime::testkit::Fixture;
use container_runtime::{
    ComposeService, ContainerRef, ContainerRestartOutcome, EnginePort, RuntimeError,
    COMPOSE_PROJECT_LABEL, COMPOSE_SERVICE_LABEL,
};

/// A Compose project made for one test, taken down (containers removed) when dropped.
struct Project {
    host: String,
    name: String,
    file: PathBuf,
    _dir: tempfile::TempDir,
}

/// Two services from the harness's busybox image, no networks: `db` with a health check that
/// passes once it has started, and `app` that depends on it.
fn two_services(image: &str) -> String {
    format!(
        r#"version: "2.4"
services:
  db:
    image: {image}
    network_mode: none
    command: ["sh", "-c", "trap 'exit 0' TERM; touch /ready; while :; do sleep 1; done"]
    healthcheck:
      test: ["CMD", "test", "-f", "/ready"]
      interval: 1s
      timeout: 2s
      retries: 3
  app:
    image: {image}
    network_mode: none
    command: ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]
    depends_on:
      db:
        condition: service_healthy
"#
    )
}

impl Project {
    fn up(test: &str, yaml: &str) -> Option<Self> {
        let host = support::daemon_env("JOELCLAW_TEST_DOCKER_HOST", "a real dockerd")?;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("compose.yaml");
        std::fs::write(&file, yaml).unwrap();
        let p = Project {
            host,
            name: format!("jc{}{}", test.replace(['_', '-'], ""), std::process::id()),
            file,
            _dir: dir,
        };
        let out = p.compose(&["up", "-d"]);
        assert!(out.status.success(), "docker-compose up: {out:?}");
        Some(p)
    }

    fn compose(&self, args: &[&str]) -> Output {
        Command::new("docker-compose")
            .env("DOCKER_HOST", &self.host)
            .arg("-p")
            .arg(&self.name)
            .arg("-f")
            .arg(&self.file)
            .args(args)
            .output()
            .expect("docker-compose (Debian's package)")
    }

    fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .arg("-H")
            .arg(&self.host)
            .args(args)
            .output()
            .expect("the docker CLI")
    }

    fn service(&self, service: &str) -> ComposeService {
        ComposeService {
            project: self.name.clone(),
            file: self.file.clone(),
            service: service.into(),
        }
    }

    fn engine(&self) -> DockerRuntime {
        DockerRuntime::connect(&self.host)
            .unwrap()
            .with_compose(ComposeCommand::standalone())
            .with_stop_grace(Duration::from_secs(2))
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        self.compose(&["down", "-t", "1", "--remove-orphans"]);
        // Whatever `down` missed (a container recreated outside Compose's view).
        let filter = format!("label={COMPOSE_PROJECT_LABEL}={}", self.name);
        let ids = self.docker(&["ps", "-aq", "--filter", &filter]);
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            self.docker(&["rm", "-f", id]);
        }
    }
}

fn image() -> Option<String> {
    support::daemon_env("JOELCLAW_TEST_DOCKER_IMAGE", "a real dockerd")
}

/// Polls `check` every 100 ms until it is true (the engine's own pace decides; no timed
/// assertion, only a generous limit).
async fn until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let limit = Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(Instant::now() < limit, "{what}: not within 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn report(what: &str, took: Duration) {
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!("TIMING {what}: {} ms\n", took.as_millis()).as_bytes(),
    );
}

async fn conformance_setup(scenario: &str) -> Option<(DockerRuntime, Fixture)> {
    let image = image()?;
    let project = Project::up(&format!("conf{scenario}"), &two_services(&image))?;
    let engine = project.engine();
    let db = project.service("db");
    let name = engine.find_compose_container(&db).await.unwrap().name;
    let label = format!("{COMPOSE_SERVICE_LABEL}=db");
    let fx = Fixture::new(false)
        .with_container(name, label)
        .with_compose(db)
        .keeping(project);
    Some((engine, fx))
}

container_runtime::engine_conformance_tests!(
    engine_conformance_with_compose_on_a_real_dockerd,
    |scenario| async move { conformance_setup(scenario).await }
);

#[tokio::test]
async fn a_killed_container_is_found_by_its_labels_and_restarted() {
    let Some(image) = image() else { return };
    let Some(p) = Project::up("killed", &two_services(&image)) else {
        return;
    };
    let rt = p.engine();
    let db = ContainerRef::Compose(p.service("db"));
    let before = rt.inspect_ref(&db).await.unwrap();
    assert_eq!(before.compose_service(), Some("db"));
    assert!(!before.image.is_empty(), "{before:?}");
    let out = p.docker(&["kill", "-s", "KILL", &before.id]);
    assert!(out.status.success(), "{out:?}");
    let killed = rt.inspect_ref(&db).await.unwrap();
    assert!(!killed.running && !killed.is_up(), "{killed:?}");
    let started = Instant::now();
    assert_eq!(
        rt.restart_ref(&db).await.unwrap(),
        ContainerRestartOutcome::Started
    );
    until("db healthy after its restart", async || {
        rt.inspect_ref(&db)
            .await
            .is_ok_and(|c| c.is_up() && c.health == container_runtime::ContainerHealth::Healthy)
    })
    .await;
    report("container restart (killed -> healthy)", started.elapsed());
    let after = rt.inspect_ref(&db).await.unwrap();
    assert_eq!(after.id, before.id, "restarted, not replaced");
}

#[tokio::test]
async fn a_removed_container_is_recreated_from_the_compose_file_with_the_same_labels() {
    let Some(image) = image() else { return };
    let Some(p) = Project::up("removed", &two_services(&image)) else {
        return;
    };
    let rt = p.engine();
    let app = p.service("app");
    let before = rt.find_compose_container(&app).await.unwrap();
    let db_before = rt.find_compose_container(&p.service("db")).await.unwrap();
    let out = p.docker(&["rm", "-f", &before.id]);
    assert!(out.status.success(), "{out:?}");
    match rt.inspect_ref(&ContainerRef::Compose(app.clone())).await {
        Err(RuntimeError::NotFound { .. }) => {}
        other => panic!("a removed container: expected NotFound, got {other:?}"),
    }
    let started = Instant::now();
    assert_eq!(
        rt.recreate(&app).await.unwrap(),
        ContainerRestartOutcome::Recreated
    );
    until("app running after its recreation", async || {
        rt.find_compose_container(&app)
            .await
            .is_ok_and(|c| c.is_up())
    })
    .await;
    report("container recreate (rm -f -> running)", started.elapsed());
    let after = rt.find_compose_container(&app).await.unwrap();
    assert_ne!(after.id, before.id, "a new container");
    for key in [COMPOSE_PROJECT_LABEL, COMPOSE_SERVICE_LABEL] {
        assert_eq!(after.labels.get(key), before.labels.get(key), "{key}");
    }
    // `--no-deps`: the dependency was left alone (`--force-recreate` applies to app only).
    let db = rt.find_compose_container(&p.service("db")).await.unwrap();
    assert_eq!(db.id, db_before.id, "the dependency was not recreated");
    assert_eq!(db.restart_count, 0, "{db:?}");
}

#[tokio::test]
async fn a_crash_looping_container_is_replaced_by_recreate_with_the_same_labels() {
    let Some(image) = image() else { return };
    // Up for about a second, then a crash: Docker's restart policy starts the same container
    // again, with the same (unchanged) config, so a plain `up` would leave it alone.
    let yaml = format!(
        r#"version: "2.4"
services:
  crashy:
    image: {image}
    network_mode: none
    restart: always
    command: ["sh", "-c", "sleep 1; exit 3"]
"#
    );
    let Some(p) = Project::up("replaced", &yaml) else {
        return;
    };
    let rt = p.engine();
    let crashy = p.service("crashy");
    until("docker restarting the crashing container", async || {
        rt.find_compose_container(&crashy)
            .await
            .is_ok_and(|c| c.restart_count > 0)
    })
    .await;
    let before = rt.find_compose_container(&crashy).await.unwrap();
    let started = Instant::now();
    assert_eq!(
        rt.recreate(&crashy).await.unwrap(),
        ContainerRestartOutcome::Recreated
    );
    report(
        "container recreate (crash-looping, replaced)",
        started.elapsed(),
    );
    let after = rt.find_compose_container(&crashy).await.unwrap();
    assert_ne!(after.id, before.id, "a new container: {after:?}");
    for key in [COMPOSE_PROJECT_LABEL, COMPOSE_SERVICE_LABEL] {
        assert_eq!(after.labels.get(key), before.labels.get(key), "{key}");
    }
    let all = rt
        .list_containers(Some(&crashy.project_filter()))
        .await
        .unwrap();
    assert_eq!(all.len(), 1, "the old container is gone: {all:?}");
}

#[tokio::test]
async fn a_crash_loop_under_restart_always_is_not_up() {
    let Some(image) = image() else { return };
    let yaml = format!(
        r#"version: "2.4"
services:
  crashy:
    image: {image}
    network_mode: none
    restart: always
    command: ["sh", "-c", "exit 3"]
"#
    );
    let Some(p) = Project::up("crashloop", &yaml) else {
        return;
    };
    let rt = p.engine();
    let crashy = ContainerRef::Compose(p.service("crashy"));
    // Docker flips between `restarting` and a brief `running` on every crash, so the assertion
    // is on the very reading that said `restarting`, not on a second read a moment later.
    let mut seen = None;
    until(
        "docker restarting the crashing container",
        async || match rt.inspect_ref(&crashy).await {
            Ok(c) if c.is_restarting() && c.restart_count > 0 => {
                seen = Some(c);
                true
            }
            _ => false,
        },
    )
    .await;
    let c = seen.expect("a restarting reading");
    assert!(!c.is_up(), "a crash loop is a failure: {c:?}");
    assert_eq!(c.exit_code, Some(3), "the crash's exit code is kept: {c:?}");
}

#[tokio::test]
async fn a_service_the_file_does_not_define_is_not_found() {
    let Some(image) = image() else { return };
    let Some(p) = Project::up("undefined", &two_services(&image)) else {
        return;
    };
    let rt = p.engine();
    match rt.recreate(&p.service("ghost")).await {
        Err(RuntimeError::NotFound { .. } | RuntimeError::Backend { .. }) => {}
        other => panic!("{other:?}"),
    }
}
