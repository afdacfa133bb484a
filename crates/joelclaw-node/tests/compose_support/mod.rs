//! A Compose project on the harness's dockerd, an inventory naming its services, and the heal
//! loop run in this process over the agent's own composition (shared by the container tests).

#![allow(dead_code)] // each test binary uses a different part

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use central_core::{EventKind, HealEvent, HealLoop, Inventory, LoopOptions, NodeTags, Step};
use joelclaw_node::compose::{compose, Mode};

/// The value of `var`, set by the harness (`scripts/test`) when its dockerd runs. Missing: a
/// panic under `CI=true`, else a loud `SKIPPED` and `None`.
pub(crate) fn daemon_env(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{var} is not set: this test needs a real dockerd, and CI=true never skips it; run it through scripts/test");
            }
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                format!("SKIPPED (needs a real dockerd: run scripts/test): {var} is not set\n")
                    .as_bytes(),
            );
            None
        }
    }
}

/// Two services from the harness's busybox image, no networks: `db` with a health check, and
/// `app` that depends on it being healthy. `restart` is the services' restart policy.
pub(crate) fn two_services(image: &str, restart: &str) -> String {
    format!(
        r#"version: "2.4"
services:
  db:
    image: {image}
    network_mode: none
    restart: "{restart}"
    command: ["sh", "-c", "trap 'exit 0' TERM; touch /ready; while :; do sleep 1; done"]
    healthcheck:
      test: ["CMD", "test", "-f", "/ready"]
      interval: 1s
      timeout: 2s
      retries: 3
  app:
    image: {image}
    network_mode: none
    restart: "{restart}"
    command: ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]
    depends_on:
      db:
        condition: service_healthy
"#
    )
}

/// A Compose project made for one test, taken down when dropped.
pub(crate) struct Project {
    pub(crate) host: String,
    pub(crate) name: String,
    pub(crate) file: PathBuf,
    pub(crate) dir: tempfile::TempDir,
}

impl Project {
    pub(crate) fn up(test: &str, yaml: &str) -> Option<Self> {
        let host = daemon_env("JOELCLAW_TEST_DOCKER_HOST")?;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("compose.yaml");
        std::fs::write(&file, yaml).unwrap();
        let p = Project {
            host,
            name: format!("jcnode{test}{}", std::process::id()),
            file,
            dir,
        };
        let out = p.compose(&["up", "-d"]);
        assert!(out.status.success(), "docker-compose up: {out:?}");
        Some(p)
    }

    pub(crate) fn compose(&self, args: &[&str]) -> Output {
        Command::new("docker-compose")
            .env("DOCKER_HOST", &self.host)
            .args(["-p", &self.name, "-f"])
            .arg(&self.file)
            .args(args)
            .output()
            .expect("docker-compose (Debian's package)")
    }

    pub(crate) fn docker(&self, args: &[&str]) -> Output {
        let out = Command::new("docker")
            .arg("-H")
            .arg(&self.host)
            .args(args)
            .output()
            .expect("the docker CLI");
        assert!(out.status.success(), "docker {args:?}: {out:?}");
        out
    }

    /// The id of `service`'s container.
    pub(crate) fn container_of(&self, service: &str) -> String {
        let out = self.docker(&[
            "ps",
            "-aq",
            "--no-trunc",
            "--filter",
            &format!("label=com.docker.compose.project={}", self.name),
            "--filter",
            &format!("label=com.docker.compose.service={service}"),
        ]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// An inventory: the substrate section given, then `db` and `app` as Compose services of
    /// this project (`app` depends on `db`), with a fast loop.
    pub(crate) fn inventory(&self, substrate: &str, heal: &str) -> Inventory {
        self.inventory_with(substrate, heal, "")
    }

    /// As [`Project::inventory`], with `db_extra` (e.g. a `[[service.probe]]`) at the end of
    /// `db`'s table.
    pub(crate) fn inventory_with(&self, substrate: &str, heal: &str, db_extra: &str) -> Inventory {
        let compose = format!(
            "compose = {{ project = \"{}\", file = \"{}\" }}",
            self.name,
            self.file.display()
        );
        let text = format!(
            r#"[node]
id = "central-test"
role = "central"

[loop]
interval = "1s"
heal_timeout = "60s"

[heal]
failures_to_down = 1
passes_to_up = 1
grace = "2s"
jitter = 0.0
backoff_initial = "1s"
backoff_max = "2s"
{heal}

{substrate}

[[service]]
label = "db"
manager = "container"
{compose}
{db_extra}

[[service]]
label = "app"
manager = "container"
depends_on = ["db"]
{compose}
"#
        );
        let path = self.dir.path().join("central.toml");
        std::fs::write(&path, &text).unwrap();
        Inventory::parse(&path, &text).unwrap_or_else(|e| panic!("{e}"))
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        self.compose(&["down", "-t", "1", "--remove-orphans"]);
        let filter = format!("label=com.docker.compose.project={}", self.name);
        if let Ok(out) = Command::new("docker")
            .arg("-H")
            .arg(&self.host)
            .args(["ps", "-aq", "--filter", &filter])
            .output()
        {
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("docker")
                    .arg("-H")
                    .arg(&self.host)
                    .args(["rm", "-f", id])
                    .output();
            }
        }
    }
}

/// `joelclaw-node status` on the project's inventory (`central.toml`, written by
/// [`Project::inventory`]), as a person runs it (`path`: the PATH it sees, a fake `colima` first,
/// if any): both containers listed with their state, image, health, restarts, uptime and Compose
/// service, in the JSON and in the table. Returns the JSON rows.
pub(crate) fn status_lists_both_containers(
    p: &Project,
    image: &str,
    path: Option<&std::ffi::OsStr>,
) -> Vec<serde_json::Value> {
    let agent_state = tempfile::tempdir().unwrap();
    let status = |json: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_joelclaw-node"));
        cmd.arg("status")
            .arg("-i")
            .arg(p.dir.path().join("central.toml"));
        cmd.arg("--state-dir").arg(agent_state.path());
        if json {
            cmd.arg("--json");
        }
        if let Some(path) = path {
            cmd.env("PATH", path);
        }
        cmd.output().unwrap()
    };
    let out = status(true);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let rows = json["result"]["containers"]
        .as_array()
        .expect("containers")
        .clone();
    assert_eq!(rows.len(), 2, "{json:#}");
    for (row, service) in rows.iter().zip(["db", "app"]) {
        let c = &row["container"];
        assert_eq!(row["service"], service);
        assert_eq!(row["compose_service"], service);
        assert_eq!(c["status"], "running", "{row:#}");
        assert_eq!(c["image"], image, "{row:#}");
        assert!(c["restart_count"].is_u64(), "{row:#}");
        assert!(
            c["uptime_seconds"].as_u64().is_some_and(|s| s < 3600),
            "{row:#}"
        );
    }
    // db has a health check, app none.
    assert_eq!(rows[0]["container"]["health"], "healthy", "{:#}", rows[0]);
    assert_eq!(rows[1]["container"]["health"], "none", "{:#}", rows[1]);
    let text = String::from_utf8_lossy(&status(false).stdout).to_string();
    let header = text
        .lines()
        .find(|l| l.starts_with("SERVICE") && l.contains("CONTAINER"))
        .unwrap_or_else(|| panic!("no container table: {text}"));
    for column in ["IMAGE", "STATE", "HEALTH", "RESTARTS", "UPTIME", "COMPOSE"] {
        assert!(header.contains(column), "{column} missing: {header}");
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with("db ") && l.contains(image) && l.contains("healthy")),
        "{text}"
    );
    rows
}

/// The heal loop over the agent's own composition for `inventory`, state under `state`.
pub(crate) fn heal_loop(inventory: &Inventory, state: &Path) -> HealLoop {
    let comp = compose(inventory, state, Mode::Own).unwrap_or_else(|e| panic!("{e}"));
    let options =
        LoopOptions::new(NodeTags::new("central-test", "linux")).with_state_dir(state.join("heal"));
    HealLoop::new(inventory, comp.ports(), options).unwrap()
}

/// Ticks every second (the inventory's interval) until `done` says so over the events so
/// far; returns them all. A generous limit, not a timed assertion.
pub(crate) async fn run_until(
    heal: &mut HealLoop,
    what: &str,
    mut done: impl FnMut(&[HealEvent]) -> bool,
) -> Vec<HealEvent> {
    let limit = Instant::now() + Duration::from_secs(120);
    let mut seen = Vec::new();
    loop {
        seen.extend(heal.tick().await.events);
        if done(&seen) {
            return seen;
        }
        assert!(
            Instant::now() < limit,
            "{what}: not within 120 s; events: {seen:#?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Whether `service` had event `kind` (at `step`, when given).
pub(crate) fn had(
    events: &[HealEvent],
    service: &str,
    kind: EventKind,
    step: Option<Step>,
) -> bool {
    events
        .iter()
        .any(|e| e.service == service && e.event == kind && (step.is_none() || e.step == step))
}

/// How many `kind` events `service` had.
pub(crate) fn count(events: &[HealEvent], service: &str, kind: EventKind) -> usize {
    events
        .iter()
        .filter(|e| e.service == service && e.event == kind)
        .count()
}

/// Steps of `service`'s started heals, in order.
pub(crate) fn steps(events: &[HealEvent], service: &str) -> Vec<Step> {
    events
        .iter()
        .filter(|e| e.service == service && e.event == EventKind::HealStarted)
        .filter_map(|e| e.step)
        .collect()
}

pub(crate) fn report(what: &str, took: Duration) {
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!("TIMING {what}: {} ms\n", took.as_millis()).as_bytes(),
    );
}
