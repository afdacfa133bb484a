//! `install-self`: the agent itself as a boot-time system daemon (a systemd unit or a
//! LaunchDaemon), for an inventory checked exactly as `run` checks it.
//!
//! The agent drives the supervisors, so it runs as **root** by default, inside its own sandbox
//! (on Linux: `ProtectSystem=strict` with only the definition folder, its state and its logs
//! writable, homes read-only, no capabilities, no new privileges). `--user NAME` runs it as
//! `NAME` instead (Linux only) and writes a polkit rule letting `NAME` start, stop and restart
//! exactly the inventory's units; such an agent never rewrites a definition.

mod unit;

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use central_core::Inventory;
use clap::Args;
use node_identity::Platform;
use process_manager::{
    ProcessManagerPort, RestartPolicy, ServiceConfig, ServiceLabel, ServiceScope,
};
use serde::Serialize;

use crate::compose;
use crate::output::{json_name, Failure, Report};
use crate::setup::{check_as_run, runtime};

pub use unit::{polkit_rule, POLKIT_RULE_PATH};

/// `install-self`.
#[derive(Debug, Clone, Args)]
pub struct InstallSelfArgs {
    /// Write the files under this root instead of installing and starting the agent.
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// The inventory the installed agent will run (copied to --installed-inventory).
    #[arg(long, short = 'i', value_name = "FILE")]
    pub inventory: PathBuf,
    /// Where the installed agent reads its inventory: a system path that outlives any home or
    /// checkout the inventory was written in.
    #[arg(long, value_name = "FILE", default_value = DEFAULT_INSTALLED_INVENTORY)]
    pub installed_inventory: PathBuf,
    /// The supervisor to install under (default: launchd on macOS, systemd elsewhere).
    #[arg(long, value_enum)]
    pub manager: Option<SelfManager>,
    /// The installed binary (default: this one).
    #[arg(long, value_name = "PATH")]
    pub program: Option<PathBuf>,
    /// Run the agent as this account instead of root (Linux). A polkit rule then lets it
    /// start, stop and restart exactly the inventory's units; it never rewrites a definition.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// The group of `--user` (default: same as the user).
    #[arg(long, requires = "user")]
    pub group: Option<String>,
    /// The agent's log folder once installed.
    #[arg(long, value_name = "DIR", default_value = "/var/log/joelclaw")]
    pub log_dir: PathBuf,
}

/// The supervisor `install-self` targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SelfManager {
    /// A LaunchDaemon in the system domain.
    Launchd,
    /// A systemd system unit.
    Systemd,
}

impl SelfManager {
    /// This platform's supervisor.
    pub fn native() -> SelfManager {
        match Platform::current() {
            Platform::Macos => SelfManager::Launchd,
            _ => SelfManager::Systemd,
        }
    }
}

/// Where the installed agent's inventory goes by default.
pub const DEFAULT_INSTALLED_INVENTORY: &str = "/etc/joelclaw/inventory.toml";
/// The agent's state folder when neither `--state-dir` nor the inventory names one.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/joelclaw";
/// The agent's systemd unit name.
pub const SYSTEMD_LABEL: &str = "joelclaw-node";
/// The agent's launchd label.
pub const LAUNCHD_LABEL: &str = "com.joelclaw.node-agent";

/// One file `install-self` handles, and what happened to it.
#[derive(Debug, Clone, Serialize)]
pub struct Written {
    /// What it is ("definition", "inventory", "polkit rule").
    pub what: &'static str,
    /// Where.
    pub path: PathBuf,
    /// `written` or `unchanged` (`would write` on a plan).
    pub outcome: String,
}

/// What `install-self` decided, before anything is written: `bootstrap` shows it on a dry run.
#[derive(Debug)]
pub struct Plan {
    /// The supervisor.
    pub manager: SelfManager,
    /// The agent's definition.
    pub config: ServiceConfig,
    /// Where the definition goes (re-rooted).
    pub definition_path: PathBuf,
    /// Its bytes.
    pub definition: Vec<u8>,
    /// systemd: the drop-in beside the unit with what the service renderer does not write
    /// (ordering, homes read-only): path (re-rooted) and text.
    pub dropin: Option<(PathBuf, String)>,
    /// The state folder (not re-rooted).
    pub state: PathBuf,
    /// The inventory's copy: source, destination (re-rooted) and bytes.
    pub inventory_copy: (PathBuf, PathBuf, Vec<u8>),
    /// The polkit rule of a non-root agent: path (re-rooted) and text.
    pub polkit: Option<(PathBuf, String)>,
    /// The account the agent runs as (`root` by default).
    pub account: String,
    /// Things worth saying (an inventory inside a home or a checkout).
    pub warnings: Vec<String>,
}

impl Plan {
    /// Every file the plan writes, with `written`/`unchanged` as the disk is now (or
    /// `would write` for a change when `dry` is set).
    pub fn files(&self, dry: bool) -> Vec<Written> {
        let mut out = vec![
            file(
                "inventory",
                &self.inventory_copy.1,
                &self.inventory_copy.2,
                dry,
            ),
            file("definition", &self.definition_path, &self.definition, dry),
        ];
        if let Some((path, text)) = &self.dropin {
            out.push(file("drop-in", path, text.as_bytes(), dry));
        }
        if let Some((path, text)) = &self.polkit {
            out.push(file("polkit rule", path, text.as_bytes(), dry));
        }
        out
    }

    /// The folders the agent needs: (path re-rooted, mode, whether owner and mode are set
    /// again when it exists). The state folder is the agent's alone; the log folder may be the
    /// services' too (systemd opens the log files, not the agent), so an existing one is left
    /// as it is.
    pub fn folders(&self, root: Option<&Path>, log_dir: &Path) -> Vec<(PathBuf, u32, bool)> {
        vec![
            (compose::reroot(root, &self.state), 0o700, true),
            (compose::reroot(root, log_dir), 0o750, false),
        ]
    }
}

fn file(what: &'static str, path: &Path, bytes: &[u8], dry: bool) -> Written {
    let same = std::fs::read(path).is_ok_and(|old| old == bytes);
    let outcome = match (same, dry) {
        (true, _) => "unchanged",
        (false, true) => "would write",
        (false, false) => "written",
    };
    Written {
        what,
        path: path.to_path_buf(),
        outcome: outcome.into(),
    }
}

/// Whether `path` is inside a person's home or a source checkout (a folder with `.git` above
/// it): places that move, get cleaned, or are edited without thinking of a running daemon.
fn unstable_place(path: &Path) -> Option<String> {
    let homes = ["/home/", "/Users/", "/root/"];
    if homes.iter().any(|h| path.starts_with(h)) {
        return Some("inside a home".into());
    }
    if let Some(home) = std::env::var_os("HOME").filter(|h| h.len() > 1) {
        if path.starts_with(&home) {
            return Some("inside a home".into());
        }
    }
    path.ancestors()
        .skip(1)
        .find(|dir| dir.join(".git").exists())
        .map(|dir| format!("inside the checkout {}", dir.display()))
}

/// The platform's search path for the agent and the programs it runs.
fn platform_path(manager: SelfManager) -> &'static str {
    match manager {
        SelfManager::Launchd => "/opt/homebrew/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        SelfManager::Systemd => "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    }
}

/// The agent's own service definition.
fn self_config(
    args: &InstallSelfArgs,
    manager: SelfManager,
    state: &Path,
    definition_dir: &Path,
) -> Result<ServiceConfig, String> {
    let label = match manager {
        SelfManager::Launchd => LAUNCHD_LABEL,
        SelfManager::Systemd => SYSTEMD_LABEL,
    };
    let program = match &args.program {
        Some(p) => p.clone(),
        None => std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?,
    };
    let mut config = ServiceConfig::new(ServiceLabel::new(label).expect("a valid label"), program)
        .with_args([
            "run".to_string(),
            "--inventory".into(),
            args.installed_inventory.display().to_string(),
            "--state-dir".into(),
            state.display().to_string(),
            "--events".into(),
            state.join("events.jsonl").display().to_string(),
        ])
        .with_env("PATH", platform_path(manager))
        .with_scope(ServiceScope::System);
    match (&args.user, manager) {
        (Some(user), _) => {
            config = config.with_user(
                user.clone(),
                Some(args.group.clone().unwrap_or_else(|| user.clone())),
            );
        }
        // launchd runs a daemon with no UserName as root.
        (None, SelfManager::Launchd) => config.allow_root = true,
        (None, SelfManager::Systemd) => {
            config = config.with_user("root", Some("root".into()));
            config.allow_root = true;
        }
    }
    config.restart = RestartPolicy::Always;
    config.restart_delay = Some(Duration::from_secs(10));
    config.run_at_load = true;
    config.working_dir = Some(state.to_path_buf());
    config.stdout_path = Some(args.log_dir.join("node-agent.out.log"));
    config.stderr_path = Some(args.log_dir.join("node-agent.err.log"));
    if manager == SelfManager::Systemd {
        unit::sandbox(&mut config, args.user.is_none(), definition_dir);
    }
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}

/// Checks the inventory as `run` would and renders everything `install-self` writes, under
/// `root` when given. Nothing is written.
pub fn plan(args: &InstallSelfArgs, state_flag: Option<&Path>) -> Result<Plan, Failure> {
    const CMD: &str = "install-self";
    let manager = args.manager.unwrap_or_else(SelfManager::native);
    let inventory = check_as_run(CMD, &args.inventory)?;
    if args.user.is_some() && manager == SelfManager::Launchd {
        return Err(Failure::input(
            CMD,
            "--user: on macOS the agent is a LaunchDaemon in the system domain (root); a non-root agent is a Linux option",
        ));
    }
    let root = args.root.as_deref();
    if !args.installed_inventory.is_absolute() {
        return Err(Failure::input(
            CMD,
            format!(
                "--installed-inventory {}: must be an absolute path",
                args.installed_inventory.display()
            ),
        ));
    }
    let state = state_flag
        .map(Path::to_path_buf)
        .or_else(|| inventory.settings.state_dir.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
    check_own_state(&inventory, &state).map_err(|e| Failure::input(CMD, e))?;
    let systemd = compose::systemd_adapter(compose::settings(&inventory, "systemd"), None);
    let definition_dir = systemd.unit_dir().to_path_buf();
    let config =
        self_config(args, manager, &state, &definition_dir).map_err(|e| Failure::input(CMD, e))?;
    let source = std::path::absolute(&args.inventory).map_err(|e| {
        Failure::input(
            CMD,
            format!("--inventory {}: {e}", args.inventory.display()),
        )
    })?;
    let bytes = std::fs::read(&source)
        .map_err(|e| Failure::input(CMD, format!("--inventory {}: {e}", source.display())))?;
    let mut warnings = Vec::new();
    if let Some(place) = unstable_place(&source) {
        warnings.push(format!(
            "the inventory {} is {place}; the installed agent runs its copy at {}: edit that copy, or run install-self again after each edit",
            source.display(),
            args.installed_inventory.display()
        ));
    }
    let mut dropin = None;
    let (definition_path, definition) = match manager {
        SelfManager::Launchd => {
            let m = compose::launchd_adapter(Default::default(), root)
                .map_err(|e| Failure::input(CMD, e))?;
            m.render(&config).map_err(|e| Failure::input(CMD, e))?
        }
        SelfManager::Systemd => {
            let m = compose::systemd_adapter(Default::default(), root);
            let text = m.render_unit(&config).map_err(|e| Failure::input(CMD, e))?;
            let path = m.unit_path(&config.label);
            let mut dir = path.clone().into_os_string();
            dir.push(".d");
            dropin = Some((
                PathBuf::from(dir).join(unit::DROPIN_NAME),
                unit::dropin(&unit::ordering(&inventory)),
            ));
            (path, text.into_bytes())
        }
    };
    let polkit = args.user.as_ref().map(|user| {
        (
            compose::reroot(root, Path::new(POLKIT_RULE_PATH)),
            polkit_rule(user, &managed_units(&inventory)),
        )
    });
    Ok(Plan {
        manager,
        account: args.user.clone().unwrap_or_else(|| "root".into()),
        config,
        definition_path,
        definition,
        dropin,
        state,
        inventory_copy: (
            source,
            compose::reroot(root, &args.installed_inventory),
            bytes,
        ),
        polkit,
        warnings,
    })
}

/// The agent's state folder is its own (private to the agent's account): a service's working
/// or writable folder inside it could not be reached by the service, and a service account's
/// home there would be the agent's.
fn check_own_state(inventory: &Inventory, state: &Path) -> Result<(), String> {
    let mut inside = Vec::new();
    for (spec, config) in inventory.desired_configs() {
        // The embedded supervisor's children run as the agent: their folders may be its own.
        if spec.manager == central_core::inventory::ManagerKind::Embedded {
            continue;
        }
        for dir in config.working_dir.iter().chain(&config.write_paths) {
            if dir.starts_with(state) {
                inside.push(format!("{} ({})", dir.display(), spec.label));
            }
        }
    }
    if inside.is_empty() {
        return Ok(());
    }
    Err(format!(
        "the agent's state folder {} holds services' folders: {}; give the agent a folder of its own (loop.state_dir = \"{}\", or --state-dir)",
        state.display(),
        inside.join(", "),
        state.join("agent").display()
    ))
}

/// The systemd units the inventory's services are, by unit name.
pub fn managed_units(inventory: &Inventory) -> Vec<String> {
    inventory
        .services
        .iter()
        .filter(|s| s.manager == central_core::inventory::ManagerKind::Systemd)
        .map(|s| format!("{}.service", s.label))
        .collect()
}

/// Makes the agent's folders, writes the changed files, then (without `--root`) loads and
/// starts the agent.
pub fn exec(args: InstallSelfArgs, state_flag: Option<PathBuf>) -> Result<Report, Failure> {
    const CMD: &str = "install-self";
    let plan = plan(&args, state_flag.as_deref())?;
    let root = args.root.as_deref();
    let files = plan.files(false);
    // The supervisor creates neither the working folder nor the log folder: make them,
    // private to the agent's account, before the definition can start it.
    let owner = match root {
        Some(_) => None,
        None => Some(
            nix::unistd::User::from_name(&plan.account)
                .ok()
                .flatten()
                .ok_or_else(|| {
                    Failure::input(
                        CMD,
                        format!(
                            "--user {}: no such account on this machine; create it first",
                            plan.account
                        ),
                    )
                })?,
        ),
    };
    for (dir, mode, own_always) in plan.folders(root, &args.log_dir) {
        if own_always || !dir.is_dir() {
            make_folder(&dir, mode, owner.as_ref()).map_err(|e| Failure::failed(CMD, e))?;
        }
    }
    let (_, copy, bytes) = &plan.inventory_copy;
    write(copy, bytes).map_err(|e| Failure::failed(CMD, e))?;
    if let Some((path, text)) = &plan.polkit {
        write(path, text.as_bytes()).map_err(|e| Failure::failed(CMD, e))?;
    }
    // The drop-in first: the supervisor reads it with the unit when it loads it.
    if let Some((path, text)) = &plan.dropin {
        write(path, text.as_bytes()).map_err(|e| Failure::failed(CMD, e))?;
    }
    let started = if root.is_some() {
        write(&plan.definition_path, &plan.definition).map_err(|e| Failure::failed(CMD, e))?;
        None
    } else {
        let dropin_changed = files
            .iter()
            .any(|f| f.what == "drop-in" && f.outcome == "written");
        Some(load_and_start(&plan, dropin_changed).map_err(|e| Failure::failed(CMD, e))?)
    };
    let mut human = String::new();
    for f in &files {
        human.push_str(&format!(
            "{} {} ({})\n",
            f.what,
            f.path.display(),
            f.outcome
        ));
    }
    human.push_str(&format!(
        "the agent runs as {} with state in {}\n",
        plan.account,
        plan.state.display()
    ));
    if let Some(s) = &started {
        human.push_str(&format!("agent: {s}\n"));
    }
    for w in &plan.warnings {
        human.push_str(&format!("warning: {w}\n"));
    }
    let changed = files.iter().filter(|f| f.outcome == "written").count();
    human.push_str(&match changed {
        0 => "install-self: no changes\n".to_string(),
        n => format!("install-self: {n} file(s) written\n"),
    });
    Ok(Report::ok(
        CMD,
        serde_json::json!({
            "label": plan.config.label,
            "path": plan.definition_path,
            "outcome": files.iter().find(|f| f.what == "definition").map(|f| f.outcome.clone()),
            "files": files,
            "account": plan.account,
            "state_dir": plan.state,
            "started": started,
            "warnings": plan.warnings,
            "changes": changed,
        }),
        human,
    ))
}

/// Makes `dir` with `mode`, owned by `owner` when given; an existing one gets both again.
pub fn make_folder(dir: &Path, mode: u32, owner: Option<&nix::unistd::User>) -> Result<(), String> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .map_err(|e| format!("create {}: {e}", dir.display()))?;
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(mode))
        .map_err(|e| format!("chmod {}: {e}", dir.display()))?;
    if let Some(user) = owner {
        nix::unistd::chown(dir, Some(user.uid), Some(user.gid))
            .map_err(|e| format!("chown {}: {e}", dir.display()))?;
    }
    Ok(())
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    sysutil::fs::AtomicWrite::with_mode(0o644)
        .only_if_changed()
        .write(path, bytes)
        .map(|_| ())
        .map_err(|e| format!("write {}: {e}", path.display()))
}

/// Installs the definition and starts the agent through its supervisor's adapter (which
/// reloads, enables, and restarts a running agent whose definition changed). A changed
/// drop-in alone also restarts it, so it runs with what was written.
fn load_and_start(plan: &Plan, dropin_changed: bool) -> Result<String, String> {
    let port: Arc<dyn ProcessManagerPort> = match plan.manager {
        SelfManager::Launchd => Arc::new(compose::launchd_adapter(Default::default(), None)?),
        SelfManager::Systemd => Arc::new(compose::systemd_adapter(Default::default(), None)),
    };
    let rt = runtime("install-self").map_err(|f| f.message)?;
    rt.block_on(async {
        let outcome = port.enable(&plan.config).await.map_err(|e| e.to_string())?;
        let stale = dropin_changed
            && matches!(
                outcome,
                process_manager::EnableOutcome::Unchanged | process_manager::EnableOutcome::Started
            );
        if stale {
            port.restart(&plan.config.label)
                .await
                .map_err(|e| e.to_string())?;
            return Ok("restarted".to_string());
        }
        Ok(json_name(&outcome))
    })
}
