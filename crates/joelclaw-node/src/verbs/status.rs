//! `status`: the running agent's live snapshot (else one probe round, no heals), with each
//! service's state, pid and restarts from its manager and each container from the engine.

use std::path::{Path, PathBuf};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use central_core::{HealLoop, Inventory, LoopOptions, NodeStatus, NodeTags, Ports};
use clap::Args;
use container_runtime::{ContainerStatus, SharedContainerRuntime};
use process_manager::{ProcessError, ProcessManagerPort, ServiceLabel, ServiceStatus};
use serde::Serialize;

use super::service::Source;
use crate::compose::{compose, Mode};
use crate::output::{json_name, opt, table, Failure, NextAction, Report};
use crate::setup::{load, node_identity, state_dir};

/// `--inventory FILE [--fleet]`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The inventory (TOML).
    #[arg(long, short = 'i', value_name = "FILE")]
    pub inventory: PathBuf,
    /// Every node of the fleet instead, from Central's Redis (the inventory's `[fleet]`).
    #[arg(long)]
    pub fleet: bool,
    /// With `--fleet`: one node's latest status snapshot (every service's health, state,
    /// breaker and last event), as its last heartbeat published it.
    #[arg(long, value_name = "NODE_ID", requires = "fleet")]
    pub node: Option<String>,
    /// Refresh every 2 s until interrupted (with `--json`: one envelope per line).
    #[arg(long, conflicts_with = "fleet")]
    pub watch: bool,
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

/// Seconds as a person reads them (`2h 5m 3s`), `-` when unknown.
fn uptime_cell(seconds: Option<u64>) -> String {
    seconds.map_or("-".into(), |s| {
        humantime::format_duration(std::time::Duration::from_secs(s)).to_string()
    })
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
                uptime_cell(c.and_then(|c| c.uptime_seconds)),
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

/// A process service's state as its manager reports it (pid, restarts, last exit): shown for
/// every service, whatever probes it declares.
#[derive(Debug, Serialize)]
struct ProcessRow {
    service: String,
    state: Option<process_manager::ServiceStatus>,
    /// Seconds since its main process started, where its pid could be read.
    uptime_s: Option<u64>,
    /// Why the manager could not say.
    error: Option<String>,
}

impl ProcessRow {
    fn new(service: String, answer: &Result<ServiceStatus, ProcessError>) -> Self {
        match answer {
            Ok(st) => ProcessRow {
                service,
                state: Some(st.clone()),
                uptime_s: None,
                error: None,
            },
            Err(e) => ProcessRow {
                service,
                state: None,
                uptime_s: None,
                error: Some(e.to_string()),
            },
        }
    }
}

/// The manager's answer about one service.
type Answer = (ServiceLabel, Result<ServiceStatus, ProcessError>);

/// The manager's answers about some services, in the inventory's order.
type Answers = Vec<Answer>;

/// The process services among `wanted` (inventory indexes), each manager asked once for all
/// its services (systemd reads all its units' states in one bus round), each under the
/// adapter's deadline. Answers keep the inventory's order.
async fn read_processes(
    inventory: &Inventory,
    comp: &crate::compose::Composition,
    wanted: impl Iterator<Item = usize>,
) -> Answers {
    let mut by_manager: Vec<(&str, process_manager::SharedProcessManager, Vec<usize>)> = Vec::new();
    for i in wanted {
        let spec = &inventory.services[i];
        let Some(manager) = comp.manager_of(inventory, spec.label.as_str()) else {
            continue;
        };
        let name = spec.manager.as_str();
        match by_manager.iter_mut().find(|(n, _, _)| *n == name) {
            Some((_, _, members)) => members.push(i),
            None => by_manager.push((name, manager, vec![i])),
        }
    }
    let asks = by_manager
        .into_iter()
        .map(|(_, manager, members)| async move {
            let labels: Vec<ServiceLabel> = members
                .iter()
                .map(|&i| inventory.services[i].label.clone())
                .collect();
            let answers = match manager.inspect_many(&labels).await {
                Ok(answers) => answers,
                // The whole batch failed: each service says why.
                Err(e) => labels.iter().map(|_| Err(copy_error(&e))).collect(),
            };
            members
                .into_iter()
                .zip(labels)
                .zip(answers)
                .map(|((i, label), answer)| (i, (label, answer)))
                .collect::<Vec<_>>()
        });
    let mut answers: Vec<(usize, Answer)> = futures::future::join_all(asks)
        .await
        .into_iter()
        .flatten()
        .collect();
    answers.sort_by_key(|(i, _)| *i);
    answers.into_iter().map(|(_, a)| a).collect()
}

/// The same error again, for a second reader of one answer: its kind (what a probe decides
/// on) and its words.
fn copy_error(e: &ProcessError) -> ProcessError {
    match e {
        ProcessError::NotFound { label, scope } => ProcessError::NotFound {
            label: label.clone(),
            scope: scope.clone(),
        },
        ProcessError::Timeout { operation, after } => ProcessError::Timeout {
            operation: *operation,
            after: *after,
        },
        ProcessError::Unavailable { adapter, detail } => ProcessError::Unavailable {
            adapter: adapter.clone(),
            detail: detail.clone(),
        },
        ProcessError::PermissionDenied {
            operation,
            target,
            detail,
        } => ProcessError::PermissionDenied {
            operation: *operation,
            target: target.clone(),
            detail: detail.clone(),
        },
        other => ProcessError::backend("status", other.to_string()),
    }
}

/// A manager whose services' states were just read in one batch: the probe round's `inspect`s
/// take those answers (one read serves the probes and the table), anything else goes through.
#[derive(Debug)]
struct AlreadyRead {
    inner: process_manager::SharedProcessManager,
    answers: Mutex<HashMap<ServiceLabel, Result<ServiceStatus, ProcessError>>>,
}

#[async_trait::async_trait]
impl ProcessManagerPort for AlreadyRead {
    fn capabilities(&self) -> process_manager::Capabilities {
        self.inner.capabilities()
    }
    async fn list(
        &self,
        pattern: &process_manager::LabelPattern,
    ) -> Result<Vec<ServiceStatus>, ProcessError> {
        self.inner.list(pattern).await
    }
    async fn inspect(&self, label: &ServiceLabel) -> Result<ServiceStatus, ProcessError> {
        let known = self
            .answers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(label);
        match known {
            Some(answer) => answer,
            None => self.inner.inspect(label).await,
        }
    }
    async fn restart(
        &self,
        label: &ServiceLabel,
    ) -> Result<process_manager::RestartOutcome, ProcessError> {
        self.inner.restart(label).await
    }
    async fn stop(
        &self,
        label: &ServiceLabel,
    ) -> Result<process_manager::StopOutcome, ProcessError> {
        self.inner.stop(label).await
    }
    async fn disable(
        &self,
        label: &ServiceLabel,
    ) -> Result<process_manager::DisableOutcome, ProcessError> {
        self.inner.disable(label).await
    }
    async fn enable(
        &self,
        config: &process_manager::ServiceConfig,
    ) -> Result<process_manager::EnableOutcome, ProcessError> {
        self.inner.enable(config).await
    }
}

/// The heal loop's ports, each manager answering `inspect` from `answers` first.
fn ports_answering_from(
    inventory: &Inventory,
    comp: &crate::compose::Composition,
    answers: &Answers,
) -> Ports {
    let mut by_manager: HashMap<&str, HashMap<ServiceLabel, _>> = HashMap::new();
    for (label, answer) in answers {
        if let Some(spec) = inventory.service(label.as_str()) {
            let copy = match answer {
                Ok(st) => Ok(st.clone()),
                Err(e) => Err(copy_error(e)),
            };
            by_manager
                .entry(spec.manager.as_str())
                .or_default()
                .insert(label.clone(), copy);
        }
    }
    let mut ports = Ports::new();
    for (name, manager) in &comp.managers {
        let answers = by_manager.remove(name).unwrap_or_default();
        ports = ports.with_manager(
            *name,
            Arc::new(AlreadyRead {
                inner: manager.clone(),
                answers: Mutex::new(answers),
            }),
        );
    }
    if let Some(rt) = &comp.runtime {
        ports = ports.with_runtime(rt.clone());
    }
    ports
}

/// How long asking for the processes' ages may take (one `ps` on macOS).
const UPTIME_DEADLINE: std::time::Duration = std::time::Duration::from_secs(2);

/// `--watch`: how often the table is refreshed.
const WATCH_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// The running agent's live snapshot (no probe round), else one probe round of this command's
/// own; then the managers' and the engine's view of each service. Exit 1 when a service is
/// unhealthy. `--watch` refreshes until interrupted.
pub fn exec(
    args: StatusArgs,
    state_flag: Option<PathBuf>,
    as_json: bool,
) -> Result<Report, Failure> {
    const CMD: &str = "status";
    let inventory = load(CMD, &args.inventory)?;
    if args.fleet {
        return match &args.node {
            Some(node) => super::fleet::node_status(&inventory, node),
            None => super::fleet::status(&inventory),
        };
    }
    let identity = node_identity(CMD, Some(&inventory))?;
    let state_arg = state_flag.clone();
    let state = state_dir(CMD, state_flag, &inventory)?;
    // One thread: the command's work is a few batched reads and one probe round.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::failed(CMD, format!("cannot start the async runtime: {e}")))?;
    loop {
        let report = rt.block_on(once(
            &args,
            &inventory,
            &identity,
            &state,
            state_arg.as_deref(),
        ))?;
        if !args.watch {
            return Ok(report);
        }
        // Each refresh replaces the last on a terminal; piped, one envelope per line.
        if std::io::IsTerminal::is_terminal(&std::io::stdout()) && !as_json {
            print!("\x1b[2J\x1b[H");
        }
        report.print(as_json);
        std::thread::sleep(WATCH_EVERY);
    }
}

async fn once(
    args: &StatusArgs,
    inventory: &Inventory,
    identity: &node_identity::NodeIdentity,
    state: &Path,
    state_arg: Option<&Path>,
) -> Result<Report, Failure> {
    const CMD: &str = "status";
    let comp = compose(inventory, state, Mode::Observe).map_err(|e| Failure::input(CMD, e))?;
    let agent = crate::agent_client::AgentClient::for_state_dir(state);
    let live = match agent
        .get("/v1/status", std::time::Duration::from_secs(5))
        .await
    {
        Ok((_, envelope)) if envelope["ok"].as_bool() == Some(true) => {
            serde_json::from_value::<NodeStatus>(envelope["result"].clone()).ok()
        }
        Ok(_) | Err(crate::agent_client::AgentError::NotRunning(_)) => None,
        // An agent that runs and does not answer is said, not hidden behind a probe round.
        Err(e) => return Err(Failure::failed(CMD, e)),
    };
    let source = if live.is_some() {
        Source::Agent
    } else {
        Source::Probe
    };
    let (status, mut processes, containers) = match live {
        Some(status) => {
            // The agent's process probes already hold each manager's answer: the manager is
            // asked only about the services no process probe read.
            let unread = inventory.services.iter().enumerate().filter(|(_, spec)| {
                !status
                    .services
                    .iter()
                    .any(|s| s.label == spec.label.as_str() && s.process.is_some())
            });
            let (unread, containers) = tokio::join!(
                read_processes(inventory, &comp, unread.map(|(i, _)| i)),
                containers(inventory, comp.runtime.as_ref())
            );
            let mut unread: HashMap<ServiceLabel, _> = unread.into_iter().collect();
            let processes = inventory
                .services
                .iter()
                .filter_map(|spec| {
                    let service = spec.label.to_string();
                    if let Some(answer) = unread.remove(&spec.label) {
                        return Some(ProcessRow::new(service, &answer));
                    }
                    let seen = status.services.iter().find(|s| s.label == service)?;
                    Some(ProcessRow {
                        service,
                        state: Some(seen.process.clone()?),
                        uptime_s: None,
                        error: None,
                    })
                })
                .collect::<Vec<_>>();
            (status, processes, containers)
        }
        None => {
            // One batched read per manager serves both the probe round (its process probes
            // take these answers) and the table.
            let (answers, containers) = tokio::join!(
                read_processes(inventory, &comp, 0..inventory.services.len()),
                containers(inventory, comp.runtime.as_ref())
            );
            // The running agent's persisted breakers, in-flight heals and requests, for the
            // table. Read from a copy: loading moves a corrupt file aside, and `status` changes
            // nothing of the agent's.
            let mut options = LoopOptions::new(NodeTags::from_identity(identity, inventory));
            let copy = tempfile::tempdir()
                .map_err(|e| Failure::failed(CMD, format!("scratch folder: {e}")))?;
            if copy_dir_files(&state.join("heal"), copy.path()) {
                options = options.with_state_dir(copy.path());
            }
            let ports = ports_answering_from(inventory, &comp, &answers);
            let mut heal =
                HealLoop::new(inventory, ports, options).map_err(|e| Failure::input(CMD, e))?;
            let status = heal.probe_round().await;
            let processes = answers
                .iter()
                .map(|(label, answer)| ProcessRow::new(label.to_string(), answer))
                .collect();
            (status, processes, containers)
        }
    };
    // Every running process's age in one pass (`/proc`, or one `ps` on macOS).
    let pids: Vec<u32> = processes
        .iter()
        .filter_map(|p| p.state.as_ref()?.pid)
        .collect();
    let uptimes = sysutil::uptime::uptimes(&pids, UPTIME_DEADLINE).await;
    for p in &mut processes {
        p.uptime_s = p
            .state
            .as_ref()
            .and_then(|s| s.pid)
            .and_then(|pid| uptimes.get(&pid).copied());
    }
    let colour = crate::output::colour_on_stdout();
    let by_service: HashMap<&str, &ProcessRow> =
        processes.iter().map(|p| (p.service.as_str(), p)).collect();
    let rows: Vec<Vec<String>> = status
        .services
        .iter()
        .map(|s| {
            let managed = by_service
                .get(s.label.as_str())
                .and_then(|p| p.state.as_ref());
            let state = managed
                .map(|m| m.state.to_string())
                .or_else(|| s.run_state.map(|r| r.to_string()))
                .unwrap_or_else(|| "-".into());
            let pid = managed.and_then(|m| m.pid).or(s.pid);
            vec![
                s.label.clone(),
                s.manager.clone(),
                state,
                opt(&pid),
                managed
                    .and_then(|m| m.restart_count)
                    .map_or("-".into(), |n| n.to_string()),
                uptime_cell(by_service.get(s.label.as_str()).and_then(|p| p.uptime_s)),
                crate::output::paint(&health_cell(s), colour),
                s.desired.to_string(),
                json_name(&s.breaker),
                s.last_event.map_or("-".into(), |e| e.as_str().to_string()),
                s.last_probe
                    .as_ref()
                    .map_or(String::new(), |p| p.detail.clone()),
            ]
        })
        .collect();
    let mut human = format!(
        "node {} ({}, {}), inventory {}, from {}\n",
        status.node_id,
        status.platform,
        json_name(&status.role),
        args.inventory.display(),
        if source == Source::Agent {
            "the running agent"
        } else {
            "a probe round (no agent running)"
        }
    );
    human.push_str(&table(
        &[
            "SERVICE",
            "MANAGER",
            "STATE",
            "PID",
            "RESTARTS",
            "UPTIME",
            "HEALTH",
            "DESIRED",
            "BREAKER",
            "LAST EVENT",
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
        .filter(|s| s.desired.is_running() && s.last_probe.as_ref().is_some_and(|p| !p.passed))
        .map(|s| s.label.as_str())
        .collect();
    let result = serde_json::json!({
        "identity": identity,
        "source": source,
        "status": status,
        "processes": processes,
        "containers": containers,
    });
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
            if let Some(dir) = state_arg {
                argv.extend(["--state-dir".into(), dir.display().to_string()]);
            }
            NextAction::node(argv, format!("{l} from its manager"))
        }))
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use process_manager::{
        Capabilities, DisableOutcome, EnableOutcome, LabelPattern, MemoryProcessManager,
        RestartOutcome, ServiceConfig, StopOutcome,
    };

    use super::*;

    /// The in-memory manager, counting the reads it is asked for.
    #[derive(Debug, Default)]
    struct Counting {
        inner: MemoryProcessManager,
        inspects: AtomicUsize,
        batches: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl ProcessManagerPort for Counting {
        fn capabilities(&self) -> Capabilities {
            self.inner.capabilities()
        }
        async fn list(&self, pattern: &LabelPattern) -> Result<Vec<ServiceStatus>, ProcessError> {
            self.inner.list(pattern).await
        }
        async fn inspect(&self, label: &ServiceLabel) -> Result<ServiceStatus, ProcessError> {
            self.inspects.fetch_add(1, Ordering::SeqCst);
            self.inner.inspect(label).await
        }
        async fn inspect_many(
            &self,
            labels: &[ServiceLabel],
        ) -> Result<Vec<Result<ServiceStatus, ProcessError>>, ProcessError> {
            self.batches.fetch_add(1, Ordering::SeqCst);
            self.inner.inspect_many(labels).await
        }
        async fn restart(&self, label: &ServiceLabel) -> Result<RestartOutcome, ProcessError> {
            self.inner.restart(label).await
        }
        async fn stop(&self, label: &ServiceLabel) -> Result<StopOutcome, ProcessError> {
            self.inner.stop(label).await
        }
        async fn disable(&self, label: &ServiceLabel) -> Result<DisableOutcome, ProcessError> {
            self.inner.disable(label).await
        }
        async fn enable(&self, config: &ServiceConfig) -> Result<EnableOutcome, ProcessError> {
            self.inner.enable(config).await
        }
    }

    fn inventory(labels: &[&str]) -> Inventory {
        let mut text = "[node]\nid = \"t\"\nrole = \"fleet\"\n".to_string();
        for l in labels {
            text.push_str(&format!(
                "\n[[service]]\nlabel = \"{l}\"\nmanager = \"null\"\nclass = \"app-level\"\n\n[[service.probe]]\nkind = \"process\"\n"
            ));
        }
        Inventory::parse(Path::new("t.toml"), &text).unwrap()
    }

    /// Without an agent, one batched read per manager serves both the probe round and the
    /// table: the probe round asks the manager nothing more, and every row is that read's.
    #[tokio::test]
    async fn one_batched_read_serves_the_probe_round_and_the_table() {
        let labels = ["a", "b", "gone"];
        let inventory = inventory(&labels);
        let counting = Arc::new(Counting::default());
        for l in ["a", "b"] {
            let label = ServiceLabel::new(l).unwrap();
            counting
                .inner
                .enable(&ServiceConfig::new(label, "/bin/true"))
                .await
                .unwrap();
        }
        let mut comp = crate::compose::Composition::default();
        comp.managers.insert("null", counting.clone());
        let answers = read_processes(&inventory, &comp, 0..labels.len()).await;
        assert_eq!(counting.batches.load(Ordering::SeqCst), 1);
        let ports = ports_answering_from(&inventory, &comp, &answers);
        let options = LoopOptions::new(NodeTags::new("t", "linux"));
        let mut heal = HealLoop::new(&inventory, ports, options).unwrap();
        let status = heal.probe_round().await;
        assert_eq!(
            (
                counting.batches.load(Ordering::SeqCst),
                counting.inspects.load(Ordering::SeqCst)
            ),
            (1, 0),
            "the probe round asked the manager again"
        );
        // The probes saw the batch's answers: two running, one the manager does not know.
        let running: Vec<&str> = status
            .services
            .iter()
            .filter(|s| s.process.as_ref().is_some_and(|p| p.is_running()))
            .map(|s| s.label.as_str())
            .collect();
        assert_eq!(running, ["a", "b"]);
        let gone = status.services.iter().find(|s| s.label == "gone").unwrap();
        assert_eq!(
            gone.last_probe.as_ref().and_then(|p| p.failure),
            Some(central_core::ProbeFailure::NotInstalled)
        );
        // A second inspect of one label is the manager's again, not a stale copy.
        let again = AlreadyRead {
            inner: counting.clone(),
            answers: Mutex::new(HashMap::new()),
        };
        again
            .inspect(&ServiceLabel::new("a").unwrap())
            .await
            .unwrap();
        assert_eq!(counting.inspects.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_copied_error_keeps_its_kind() {
        let timeout = ProcessError::Timeout {
            operation: process_manager::Operation::Inspect,
            after: std::time::Duration::from_secs(3),
        };
        assert!(matches!(
            copy_error(&timeout),
            ProcessError::Timeout { after, .. } if after == std::time::Duration::from_secs(3)
        ));
        let gone = ProcessError::NotFound {
            label: "x".into(),
            scope: None,
        };
        assert_eq!(copy_error(&gone).to_string(), gone.to_string());
    }
}
