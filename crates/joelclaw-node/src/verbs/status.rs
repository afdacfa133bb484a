//! `status`: one probe round over an inventory, no heals: a table of services, node identity
//! and substrate.

use std::path::{Path, PathBuf};

use central_core::{HealLoop, Inventory, LoopOptions, NodeStatus, NodeTags};
use clap::Args;
use container_runtime::{ContainerStatus, SharedContainerRuntime};
use serde::Serialize;

use crate::compose::{compose, Mode};
use crate::output::{json_name, opt, table, Failure, NextAction, Report};
use crate::setup::{load, node_identity, runtime, state_dir};

/// `--inventory FILE [--fleet]`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The inventory (TOML).
    #[arg(long, short = 'i', value_name = "FILE")]
    pub inventory: PathBuf,
    /// Every node of the fleet instead, from Central's Redis (the inventory's `[fleet]`).
    #[arg(long)]
    pub fleet: bool,
}

/// Copies the files of `from` (not its subfolders) into `to`; `false` when there were none.
fn copy_dir_files(from: &Path, to: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(from) else {
        return false;
    };
    let mut any = false;
    for e in entries.flatten() {
        if e.file_type().is_ok_and(|t| t.is_file())
            && std::fs::copy(e.path(), to.join(e.file_name())).is_ok()
        {
            any = true;
        }
    }
    any
}

fn health_cell(s: &central_core::ServiceSnapshot) -> String {
    serde_json::to_value(s.health)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{:?}", s.health))
}

/// A container service's container as the engine reports it.
#[derive(Debug, Serialize)]
struct ContainerRow {
    service: String,
    /// The Compose service, when it is one.
    compose_service: Option<String>,
    container: Option<ContainerStatus>,
    /// Why the engine could not say (the container is gone, the engine is down).
    error: Option<String>,
}

/// Every container service's container, asked of the engine at once.
async fn containers(
    inventory: &Inventory,
    rt: Option<&SharedContainerRuntime>,
) -> Vec<ContainerRow> {
    let Some(rt) = rt else { return Vec::new() };
    let asks = inventory.services.iter().filter_map(|spec| {
        let what = spec.container_ref()?;
        Some(async move {
            let compose_service = spec.compose.as_ref().map(|c| c.service.clone());
            match rt.inspect_ref(&what).await {
                Ok(c) => ContainerRow {
                    service: spec.label.to_string(),
                    compose_service,
                    container: Some(c),
                    error: None,
                },
                Err(e) => ContainerRow {
                    service: spec.label.to_string(),
                    compose_service,
                    container: None,
                    error: Some(e.to_string()),
                },
            }
        })
    });
    futures::future::join_all(asks).await
}

fn container_table(rows: &[ContainerRow]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let c = r.container.as_ref();
            let state = match c {
                Some(c) if c.is_restarting() => "restarting (crash loop)".to_string(),
                Some(c) => c.status.clone(),
                None => r.error.clone().unwrap_or_default(),
            };
            vec![
                r.service.clone(),
                c.map_or("-".into(), |c| c.name.clone()),
                c.map_or("-".into(), |c| c.image.clone()),
                state,
                c.map_or("-".into(), |c| json_name(&c.health)),
                c.map_or("-".into(), |c| c.restart_count.to_string()),
                c.and_then(|c| c.uptime_seconds).map_or("-".into(), |s| {
                    humantime::format_duration(std::time::Duration::from_secs(s)).to_string()
                }),
                r.compose_service.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    table(
        &[
            "SERVICE",
            "CONTAINER",
            "IMAGE",
            "STATE",
            "HEALTH",
            "RESTARTS",
            "UPTIME",
            "COMPOSE",
        ],
        &cells,
    )
}

/// One probe round; exit 1 when a service is unhealthy.
pub fn exec(args: StatusArgs, state_flag: Option<PathBuf>) -> Result<Report, Failure> {
    const CMD: &str = "status";
    let inventory = load(CMD, &args.inventory)?;
    if args.fleet {
        return super::fleet::status(&inventory);
    }
    let identity = node_identity(CMD, Some(&inventory))?;
    let state_arg = state_flag.clone();
    let state = state_dir(CMD, state_flag, &inventory)?;
    let rt = runtime(CMD)?;
    let (status, containers): (NodeStatus, Vec<ContainerRow>) = rt.block_on(async {
        let comp =
            compose(&inventory, &state, Mode::Observe).map_err(|e| Failure::input(CMD, e))?;
        // The running agent's persisted breakers and in-flight heals, for the table. Read from
        // a copy: loading moves a corrupt file aside, and `status` changes nothing of the agent's.
        let mut options = LoopOptions::new(NodeTags::from_identity(&identity, &inventory));
        let copy = tempfile::tempdir()
            .map_err(|e| Failure::failed(CMD, format!("scratch folder: {e}")))?;
        if copy_dir_files(&state.join("heal"), copy.path()) {
            options = options.with_state_dir(copy.path());
        }
        let mut heal =
            HealLoop::new(&inventory, comp.ports(), options).map_err(|e| Failure::input(CMD, e))?;
        let status = heal.probe_round().await;
        Ok::<_, Failure>((status, containers(&inventory, comp.runtime.as_ref()).await))
    })?;
    let rows: Vec<Vec<String>> = status
        .services
        .iter()
        .map(|s| {
            vec![
                s.label.clone(),
                s.manager.clone(),
                json_name(&s.class),
                opt(&s.run_state),
                opt(&s.pid),
                health_cell(s),
                s.endpoint_class.as_ref().map_or("-".into(), json_name),
                json_name(&s.breaker),
                s.last_probe
                    .as_ref()
                    .map_or(String::new(), |p| p.detail.clone()),
            ]
        })
        .collect();
    let mut human = format!(
        "node {} ({}, {}), inventory {}\n",
        status.node_id,
        status.platform,
        json_name(&status.role),
        args.inventory.display()
    );
    human.push_str(&table(
        &[
            "SERVICE", "MANAGER", "CLASS", "STATE", "PID", "HEALTH", "ENDPOINT", "BREAKER",
            "DETAIL",
        ],
        &rows,
    ));
    if !containers.is_empty() {
        human.push('\n');
        human.push_str(&container_table(&containers));
    }
    let unhealthy: Vec<&str> = status
        .services
        .iter()
        .filter(|s| s.last_probe.as_ref().is_some_and(|p| !p.passed))
        .map(|s| s.label.as_str())
        .collect();
    let result =
        serde_json::json!({ "identity": identity, "status": status, "containers": containers });
    Ok(if unhealthy.is_empty() {
        Report::ok(CMD, result, human)
    } else {
        human.push_str(&format!("unhealthy: {}\n", unhealthy.join(", ")));
        Report::findings(CMD, result, human).with_next(unhealthy.iter().map(|l| {
            let mut argv = vec![
                "inspect".to_string(),
                l.to_string(),
                "--inventory".into(),
                args.inventory.display().to_string(),
            ];
            if let Some(dir) = &state_arg {
                argv.extend(["--state-dir".into(), dir.display().to_string()]);
            }
            NextAction::node(argv, format!("{l} from its manager"))
        }))
    })
}
