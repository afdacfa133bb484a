//! The verbs that work over an inventory: `run`, `status`, `inspect`, `apply`, `install-self`,
//! and the inventory side of `audit`.

use std::collections::BTreeSet;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use central_core::inventory::{ManagerKind, ServiceClass};
use central_core::{HealLoop, Inventory, LoopOptions, NodeStatus, NodeTags};
use node_identity::{NodeIdentity, Platform};
use process_manager::{
    ProcessError, ProcessManagerPort, RestartPolicy, ServiceConfig, ServiceLabel, ServiceScope,
};
use serde::Serialize;

use crate::audit::AuditScope;
use crate::cli::{ApplyArgs, InspectArgs, InstallSelfArgs, InventoryArgs, RunArgs, SelfManager};
use crate::compose::{self, compose, default_state_dir, Mode};
use crate::output::{table, Failure, Report};
use crate::sink::QueuedJsonLines;

fn runtime(command: &'static str) -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure::failed(command, format!("cannot start the async runtime: {e}")))
}

fn load(command: &'static str, path: &Path) -> Result<Inventory, Failure> {
    compose::load_inventory(path).map_err(|e| Failure::input(command, e))
}

fn state_dir(
    command: &'static str,
    flag: Option<PathBuf>,
    inventory: &Inventory,
) -> Result<PathBuf, Failure> {
    flag.or_else(|| inventory.settings.state_dir.clone())
        .or_else(default_state_dir)
        .ok_or_else(|| {
            Failure::input(
                command,
                "no state folder: pass --state-dir or set loop.state_dir",
            )
        })
}

/// The node's identity. An inventory that names the node (`node.id`) stands in for `NODE_ID`,
/// so a machine with an unusable hostname still runs when its inventory says who it is.
fn identity(command: &'static str, inventory: Option<&Inventory>) -> Result<NodeIdentity, Failure> {
    struct InventoryNodeId<'a>(&'a str);
    impl node_identity::Environment for InventoryNodeId<'_> {
        fn var(&self, key: &str) -> Option<String> {
            if key == "NODE_ID" {
                return Some(self.0.to_string());
            }
            node_identity::SystemEnvironment.var(key)
        }
        fn hostname(&self) -> Option<String> {
            node_identity::SystemEnvironment.hostname()
        }
        fn platform_home(&self) -> Option<PathBuf> {
            node_identity::SystemEnvironment.platform_home()
        }
    }
    let detected = NodeIdentity::detect();
    match (detected, inventory.and_then(|i| i.node.id.as_deref())) {
        (Ok(id), _) => Ok(id),
        (Err(_), Some(node_id)) => {
            NodeIdentity::resolve(&InventoryNodeId(node_id)).map_err(|e| Failure::input(command, e))
        }
        (Err(e), None) => Err(Failure::input(command, e)),
    }
}

/// Installs the agent's log output: human lines on stderr, level from `RUST_LOG` (default info).
fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the agent still runs; it just cannot shut down gracefully.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
}

/// `run`: the heal loop until SIGINT/SIGTERM; then children stopped and state saved.
pub fn run(args: RunArgs, state_flag: Option<PathBuf>) -> Result<Report, Failure> {
    const CMD: &str = "run";
    let inventory = load(CMD, &args.inventory)?;
    inventory
        .check_runnable()
        .map_err(|e| Failure::input(CMD, e))?;
    let identity = identity(CMD, Some(&inventory))?;
    let state = state_dir(CMD, state_flag, &inventory)?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&state)
        .map_err(|e| Failure::input(CMD, format!("state folder {}: {e}", state.display())))?;
    let events: Box<dyn std::io::Write + Send> = if args.events == "-" {
        Box::new(std::io::stdout())
    } else {
        Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&args.events)
                .map_err(|e| Failure::input(CMD, format!("--events {}: {e}", args.events)))?,
        )
    };
    init_tracing();
    let rt = runtime(CMD)?;
    rt.block_on(async {
        let comp = compose(&inventory, &state, Mode::Own).map_err(|e| Failure::input(CMD, e))?;
        let tags = NodeTags::from_identity(&identity, &inventory);
        let mut heal = HealLoop::new(
            &inventory,
            comp.ports(),
            LoopOptions::new(tags).with_state_dir(state.join("heal")),
        )
        .map_err(|e| Failure::input(CMD, e))?;
        let sink = Arc::new(QueuedJsonLines::new(events, crate::sink::QUEUE));
        heal.add_sink(sink.clone());
        if let Some(sup) = &comp.embedded {
            for (spec, config) in inventory.desired_configs() {
                if spec.manager != ManagerKind::Embedded {
                    continue;
                }
                if sup.is_disabled(&config.label) {
                    tracing::info!(service = %config.label, "disabled; not started");
                    continue;
                }
                // A failure here is the heal loop's to handle: it probes and escalates.
                match sup.enable(config).await {
                    Ok(outcome) => tracing::info!(service = %config.label, ?outcome, "started"),
                    Err(e) => {
                        tracing::warn!(service = %config.label, error = %e, "could not start")
                    }
                }
            }
        }
        tracing::info!(
            inventory = %args.inventory.display(),
            state = %state.display(),
            services = inventory.services.len(),
            "heal loop running"
        );
        heal.run(shutdown_signal()).await;
        if let Some(sup) = &comp.embedded {
            sup.shutdown().await;
        }
        sink.finish();
        tracing::info!(dropped_events = sink.dropped(), "stopped; state saved");
        Ok(Report::ok(
            CMD,
            serde_json::json!({ "stopped": true, "state_dir": state }),
            String::new(),
        ))
    })
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

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map_or("-".into(), T::to_string)
}

fn json_name<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "-".into())
}

/// `status`: one probe round, no heals.
pub fn status(args: InventoryArgs, state_flag: Option<PathBuf>) -> Result<Report, Failure> {
    const CMD: &str = "status";
    let inventory = load(CMD, &args.inventory)?;
    let identity = identity(CMD, Some(&inventory))?;
    let state = state_dir(CMD, state_flag, &inventory)?;
    let rt = runtime(CMD)?;
    let status: NodeStatus = rt.block_on(async {
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
        Ok::<_, Failure>(heal.probe_round().await)
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
    let unhealthy: Vec<&str> = status
        .services
        .iter()
        .filter(|s| s.last_probe.as_ref().is_some_and(|p| !p.passed))
        .map(|s| s.label.as_str())
        .collect();
    let result = serde_json::json!({ "identity": identity, "status": status });
    Ok(if unhealthy.is_empty() {
        Report::ok(CMD, result, human)
    } else {
        human.push_str(&format!("unhealthy: {}\n", unhealthy.join(", ")));
        Report::findings(CMD, result, human).with_next(unhealthy.iter().map(|l| {
            format!(
                "joelclaw-node inspect {l} --inventory {}",
                args.inventory.display()
            )
        }))
    })
}

/// `inspect LABEL`: one service's state from its manager.
pub fn inspect(args: InspectArgs, state_flag: Option<PathBuf>) -> Result<Report, Failure> {
    const CMD: &str = "inspect";
    let label = ServiceLabel::new(args.label.as_str()).map_err(|e| Failure::input(CMD, e))?;
    let rt = runtime(CMD)?;
    let manager: Arc<dyn ProcessManagerPort> = match &args.inventory {
        Some(path) => {
            let inventory = load(CMD, path)?;
            let spec = inventory.service(label.as_str()).ok_or_else(|| {
                Failure::input(
                    CMD,
                    format!("unknown label \"{label}\": not in {}", path.display()),
                )
            })?;
            if spec.manager == ManagerKind::Container {
                return Err(Failure::input(
                    CMD,
                    format!("{label} is a container; its state comes from the container runtime (use status)"),
                ));
            }
            let state = state_dir(CMD, state_flag, &inventory)?;
            let comp =
                compose(&inventory, &state, Mode::Observe).map_err(|e| Failure::input(CMD, e))?;
            comp.manager_of(&inventory, label.as_str())
                .ok_or_else(|| Failure::input(CMD, format!("no manager for {label}")))?
        }
        None => {
            // Without an inventory, ask the platform's own supervisor.
            match Platform::current() {
                Platform::Macos => Arc::new(
                    compose::launchd_adapter(Default::default(), None)
                        .map_err(|e| Failure::input(CMD, e))?,
                ),
                _ => Arc::new(compose::systemd_adapter(Default::default(), None)),
            }
        }
    };
    let st = rt.block_on(manager.inspect(&label)).map_err(|e| match e {
        ProcessError::NotFound { .. }
        | ProcessError::InvalidLabel(_)
        | ProcessError::InvalidInput { .. } => Failure::input(CMD, e),
        e => Failure::failed(CMD, e),
    })?;
    let rows = vec![
        vec!["label".into(), st.label.to_string()],
        vec!["adapter".into(), manager.capabilities().adapter],
        vec!["loaded".into(), st.loaded.to_string()],
        vec!["state".into(), st.state.to_string()],
        vec!["pid".into(), opt(&st.pid)],
        vec!["last exit".into(), opt(&st.last_exit)],
        vec!["restarts".into(), opt(&st.restart_count)],
        vec!["enabled".into(), opt(&st.enabled)],
        vec!["scope".into(), opt(&st.scope)],
    ];
    let running = st.is_running();
    let human = table(&["FIELD", "VALUE"], &rows);
    Ok(if running {
        Report::ok(CMD, &st, human)
    } else {
        Report::findings(CMD, &st, human)
    })
}

/// One definition `apply` handles.
#[derive(Debug, Serialize)]
struct Planned {
    label: String,
    manager: &'static str,
    path: PathBuf,
    change: &'static str,
    #[serde(skip)]
    bytes: Vec<u8>,
    #[serde(skip)]
    config: ServiceConfig,
    diff: String,
    outcome: Option<String>,
}

fn diff(path: &Path, old: &str, new: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(
            &format!("{} (installed)", path.display()),
            &format!("{} (desired)", path.display()),
        )
        .to_string()
}

/// `apply`: desired definitions to installed plists or units. Renders and checks everything
/// first; writes nothing unless all of it is good.
pub fn apply(args: ApplyArgs) -> Result<Report, Failure> {
    const CMD: &str = "apply";
    let inventory = load(CMD, &args.inventory)?;
    let root = args.root.as_deref();
    if let Some(r) = root {
        if !r.is_dir() {
            return Err(Failure::input(
                CMD,
                format!("--root {}: not a folder", r.display()),
            ));
        }
    }
    let launchd = if inventory
        .desired_configs()
        .any(|(s, _)| s.manager == ManagerKind::Launchd)
    {
        Some(Arc::new(
            compose::launchd_adapter(compose::settings(&inventory, "launchd"), root)
                .map_err(|e| Failure::input(CMD, e))?,
        ))
    } else {
        None
    };
    let systemd = if inventory
        .desired_configs()
        .any(|(s, _)| s.manager == ManagerKind::Systemd)
    {
        Some(Arc::new(compose::systemd_adapter(
            compose::settings(&inventory, "systemd"),
            root,
        )))
    } else {
        None
    };
    // 1. Render and check every definition; collect every problem before touching anything.
    let mut plan = Vec::new();
    let mut problems = Vec::new();
    let mut skipped = Vec::new();
    for (spec, config) in inventory.desired_configs() {
        let rendered = match spec.manager {
            ManagerKind::Launchd => launchd.as_ref().map(|m| m.render(config)),
            ManagerKind::Systemd => systemd.as_ref().map(|m| {
                m.render_unit(config)
                    .map(|text| (m.unit_path(&config.label), text.into_bytes()))
            }),
            _ => {
                skipped.push(format!(
                    "{} ({}: started by the agent itself)",
                    spec.label,
                    spec.manager.as_str()
                ));
                None
            }
        };
        match rendered {
            None => {}
            Some(Err(e)) => problems.push(format!("{}: {e}", spec.label)),
            Some(Ok((path, bytes))) => {
                let old = std::fs::read(&path).ok();
                let change = match &old {
                    None => "new",
                    Some(o) if *o == bytes => "unchanged",
                    Some(_) => "changed",
                };
                let diff = diff(
                    &path,
                    &String::from_utf8_lossy(old.as_deref().unwrap_or_default()),
                    &String::from_utf8_lossy(&bytes),
                );
                plan.push(Planned {
                    label: spec.label.to_string(),
                    manager: spec.manager.as_str(),
                    path,
                    change,
                    bytes,
                    config: config.clone(),
                    diff,
                    outcome: None,
                });
            }
        }
    }
    if !problems.is_empty() {
        return Err(Failure::input(
            CMD,
            format!(
                "{}: nothing was written; fix these first:\n  {}",
                args.inventory.display(),
                problems.join("\n  ")
            ),
        ));
    }
    // 2. Act: nothing on a dry run; files only under --root; otherwise through the adapter,
    //    which writes atomically and (re)loads the service.
    if !args.dry_run {
        let rt = runtime(CMD)?;
        for p in &mut plan {
            if root.is_some() {
                if p.change != "unchanged" {
                    crate::fsutil::write_atomic(&p.path, &p.bytes, 0o644).map_err(|e| {
                        Failure::failed(
                            CMD,
                            format!("{}: write {}: {e}", p.label, p.path.display()),
                        )
                    })?;
                }
                p.outcome = Some(
                    if p.change == "unchanged" {
                        "unchanged"
                    } else {
                        "written"
                    }
                    .into(),
                );
                continue;
            }
            let manager: Arc<dyn ProcessManagerPort> = match p.manager {
                "launchd" => launchd.clone().expect("built above"),
                _ => systemd.clone().expect("built above"),
            };
            let outcome = rt
                .block_on(manager.enable(&p.config))
                .map_err(|e| Failure::failed(CMD, format!("{}: {e}", p.label)))?;
            p.outcome = Some(json_name(&outcome));
        }
    }
    let changes = plan.iter().filter(|p| p.change != "unchanged").count();
    let mut human = String::new();
    for p in plan.iter().filter(|p| p.change != "unchanged") {
        human.push_str(&p.diff);
    }
    let rows: Vec<Vec<String>> = plan
        .iter()
        .map(|p| {
            vec![
                p.label.clone(),
                p.manager.into(),
                p.change.into(),
                p.outcome.clone().unwrap_or_else(|| "dry-run".into()),
                p.path.display().to_string(),
            ]
        })
        .collect();
    human.push_str(&table(
        &["SERVICE", "MANAGER", "CHANGE", "OUTCOME", "PATH"],
        &rows,
    ));
    for s in &skipped {
        human.push_str(&format!("skipped {s}\n"));
    }
    human.push_str(&match (changes, args.dry_run) {
        (0, _) => "apply: no changes\n".to_string(),
        (n, true) => format!("apply: {n} definition(s) would change (dry run: nothing written)\n"),
        (n, false) => format!("apply: {n} definition(s) changed\n"),
    });
    let result = serde_json::json!({
        "dry_run": args.dry_run,
        "root": args.root,
        "changes": changes,
        "definitions": plan,
        "skipped": skipped,
    });
    let mut report = Report::ok(CMD, result, human);
    if args.dry_run && changes > 0 {
        report = report.with_next([format!(
            "joelclaw-node apply --inventory {}",
            args.inventory.display()
        )]);
    }
    Ok(report)
}

/// The agent's own service definition.
fn self_config(
    args: &InstallSelfArgs,
    manager: SelfManager,
    state: &Path,
) -> Result<ServiceConfig, String> {
    let label = match manager {
        SelfManager::Launchd => "com.joelclaw.node-agent",
        SelfManager::Systemd => "joelclaw-node",
    };
    let program = match &args.program {
        Some(p) => p.clone(),
        None => std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?,
    };
    let inventory = std::path::absolute(&args.inventory)
        .map_err(|e| format!("--inventory {}: {e}", args.inventory.display()))?;
    let mut config = ServiceConfig::new(ServiceLabel::new(label).expect("a valid label"), program)
        .with_args([
            "run".to_string(),
            "--inventory".into(),
            inventory.display().to_string(),
            "--state-dir".into(),
            state.display().to_string(),
            "--events".into(),
            state.join("events.jsonl").display().to_string(),
        ])
        .with_env(
            "PATH",
            "/opt/homebrew/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        )
        .with_scope(ServiceScope::System)
        .with_user(
            args.user.clone(),
            Some(args.group.clone().unwrap_or_else(|| args.user.clone())),
        );
    config.restart = RestartPolicy::Always;
    config.restart_delay = Some(Duration::from_secs(10));
    config.run_at_load = true;
    config.working_dir = Some(state.to_path_buf());
    config.stdout_path = Some(args.log_dir.join("node-agent.out.log"));
    config.stderr_path = Some(args.log_dir.join("node-agent.err.log"));
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}

/// `install-self`: the agent as a LaunchDaemon or a systemd unit (boot-time, no login, a
/// non-root service user, restarted on failure).
pub fn install_self(args: InstallSelfArgs, state_flag: Option<PathBuf>) -> Result<Report, Failure> {
    const CMD: &str = "install-self";
    let state = state_flag.unwrap_or_else(|| PathBuf::from("/var/lib/joelclaw"));
    let manager = args.manager.unwrap_or(match Platform::current() {
        Platform::Macos => SelfManager::Launchd,
        _ => SelfManager::Systemd,
    });
    if !args.inventory.is_file() {
        return Err(Failure::input(
            CMD,
            format!("--inventory {}: no such file", args.inventory.display()),
        ));
    }
    let config = self_config(&args, manager, &state).map_err(|e| Failure::input(CMD, e))?;
    let root = args.root.as_deref();
    // The supervisor creates neither the working folder nor the log folder: make them, private
    // to the service account, before the definition can start the agent.
    for (dir, mode) in [(&state, 0o700), (&args.log_dir, 0o750)] {
        let dir = compose::reroot(root, dir);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(&dir)
            .map_err(|e| Failure::failed(CMD, format!("create {}: {e}", dir.display())))?;
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(mode))
            .map_err(|e| Failure::failed(CMD, format!("chmod {}: {e}", dir.display())))?;
        if root.is_none() {
            let user = nix::unistd::User::from_name(&args.user)
                .ok()
                .flatten()
                .ok_or_else(|| {
                    Failure::input(
                        CMD,
                        format!(
                            "--user {}: no such account on this machine; create it first",
                            args.user
                        ),
                    )
                })?;
            nix::unistd::chown(&dir, Some(user.uid), Some(user.gid))
                .map_err(|e| Failure::failed(CMD, format!("chown {}: {e}", dir.display())))?;
        }
    }
    let (port, path, bytes): (Arc<dyn ProcessManagerPort>, PathBuf, Vec<u8>) = match manager {
        SelfManager::Launchd => {
            let m = compose::launchd_adapter(Default::default(), root)
                .map_err(|e| Failure::input(CMD, e))?;
            let (path, bytes) = m.render(&config).map_err(|e| Failure::input(CMD, e))?;
            (Arc::new(m), path, bytes)
        }
        SelfManager::Systemd => {
            let m = compose::systemd_adapter(Default::default(), root);
            let text = m.render_unit(&config).map_err(|e| Failure::input(CMD, e))?;
            let path = m.unit_path(&config.label);
            (Arc::new(m), path, text.into_bytes())
        }
    };
    let outcome = if root.is_some() {
        crate::fsutil::write_atomic(&path, &bytes, 0o644)
            .map_err(|e| Failure::failed(CMD, format!("write {}: {e}", path.display())))?;
        "written".to_string()
    } else {
        let rt = runtime(CMD)?;
        json_name(
            &rt.block_on(port.enable(&config))
                .map_err(|e| Failure::failed(CMD, e))?,
        )
    };
    let human = format!(
        "{} {} ({outcome})\n{}",
        match manager {
            SelfManager::Launchd => "LaunchDaemon",
            SelfManager::Systemd => "systemd unit",
        },
        path.display(),
        String::from_utf8_lossy(&bytes)
    );
    Ok(Report::ok(
        CMD,
        serde_json::json!({ "path": path, "label": config.label, "outcome": outcome }),
        human,
    ))
}

/// Fills the audit scope from an inventory: critical labels, state folder, service user.
pub fn audit_scope_from_inventory(path: &Path, scope: &mut AuditScope) -> Result<(), Failure> {
    let inventory = load("audit", path)?;
    let critical: BTreeSet<String> = inventory
        .services
        .iter()
        .filter(|s| s.class != ServiceClass::AppLevel)
        .map(|s| s.label.to_string())
        .collect();
    scope.critical = Some(critical);
    if let Some(dir) = &inventory.settings.state_dir {
        scope.state_dirs.push(dir.clone());
    }
    scope.service_user = inventory
        .managers
        .values()
        .find_map(|m| m.service_account.clone());
    Ok(())
}
