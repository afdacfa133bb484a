//! `LaunchdProcessManager`: [`ProcessManagerPort`] over launchd, through the modern `launchctl`
//! verbs (`print`, `bootstrap`, `bootout`, `kickstart`, `enable`, `disable`, `print-disabled`,
//! `list`) and plists generated from a [`ServiceConfig`].
//!
//! Domains: a service lives in `system`, `gui/<uid>` or `user/<uid>`, for any of the users the
//! config names (a relay host has one sandboxed user per relay); its scope picks the domain and
//! the user's LaunchAgents folder. A label is looked up by asking launchd in `system`, then in
//! each user's `gui` and `user` domains, so a service that moved from a LaunchAgent to a
//! LaunchDaemon is found (and restarted) where it really is. A definition launchd has not
//! loaded (booted out by `stop`, disabled) is still reported, as `loaded: false`, when its plist
//! is in this adapter's folders, where `print` said it was loaded from before this manager
//! booted it out, or in launchd's own folders (`/Library/LaunchDaemons`,
//! `/System/Library/LaunchDaemons`, ...), which launchd loads at boot: `restart` bootstraps it
//! from there again.
//!
//! Jobs (a config with triggers) are plists with `StartInterval`, `StartCalendarInterval` or
//! `WatchPaths` and no `KeepAlive`: launchd keeps the trigger armed while the job is loaded, so
//! an idle loaded job reads as [`RunState::SupervisorRestarting`], never as a stopped service to
//! be started.

mod config;
mod launchctl;
pub mod parse;
pub(crate) mod plist_gen;
pub mod plist_read;
mod plist_trigger;
mod sandbox;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use process_manager::{
    Capabilities, DisableOutcome, EnableOutcome, LabelPattern, Operation, ProcessError,
    ProcessManagerPort, RestartOutcome, RunState, ServiceConfig, ServiceLabel, ServiceScope,
    ServiceStatus, StopOutcome,
};

pub use config::{LaunchdConfig, UserDomain, DEFAULT_SERVICE_PATH};
use launchctl::{Launchctl, ROOT_HINT};
use parse::{LastExitCode, PrintInfo};
pub use plist_gen::ServiceAccount;
use sysutil::fs::WriteOutcome;

pub(crate) const ADAPTER: &str = "launchd";

/// launchd's default `ThrottleInterval`: it waits this long between respawns of a job.
pub const LAUNCHD_RESPAWN_THROTTLE: Duration = Duration::from_secs(10);

/// How long `bootstrap` keeps retrying while launchd says the previous instance is still being
/// torn down (`37: Operation already in progress`).
pub(crate) const BUSY_RETRIES: u32 = 5;
pub(crate) const BUSY_BACKOFF: Duration = Duration::from_millis(200);

/// launchd as a [`ProcessManagerPort`].
#[derive(Debug, Clone)]
pub struct LaunchdProcessManager {
    config: LaunchdConfig,
    launchctl: Launchctl,
    /// Where `print` said each job booted out by this manager was loaded from, so that a job
    /// loaded from a folder this adapter does not manage can be bootstrapped again. Shared by
    /// clones; lives as long as the manager (launchd itself forgets an ad-hoc path at bootout).
    booted_out_from: BootedOutFrom,
}

/// Label → (scope, plist path) of the jobs this manager booted out.
type BootedOutFrom = Arc<Mutex<BTreeMap<ServiceLabel, (ServiceScope, PathBuf)>>>;

/// Where a label was found.
#[derive(Debug)]
enum Located {
    /// launchd has it loaded in `scope`.
    Loaded {
        scope: ServiceScope,
        info: Box<PrintInfo>,
    },
    /// Its plist `plist` is installed for `scope`, but launchd has not loaded it.
    Installed { scope: ServiceScope, plist: PathBuf },
    /// Neither.
    Missing,
}

fn plist_file_name(label: &ServiceLabel) -> String {
    format!("{label}.plist")
}

/// launchd's job state as the port's run state. A loaded job (it has a `StartInterval`,
/// `StartCalendarInterval` or `WatchPaths` trigger) that is idle reads as
/// [`RunState::SupervisorRestarting`], whatever its last exit: launchd has no failed state and
/// runs it again when the trigger fires, so a heal loop must not start it on top. Its last exit
/// is still reported.
fn run_state(info: &PrintInfo) -> RunState {
    match info.state.as_deref() {
        Some("running") => RunState::Running,
        // Scheduled to spawn after it ran before: launchd is respawning it (throttled). Before
        // its first run it is simply starting.
        Some("spawn scheduled") => {
            let ran_before = info.runs.unwrap_or(0) > 0
                || matches!(
                    info.last_exit_code,
                    Some(LastExitCode::Code(_) | LastExitCode::Signal(_))
                );
            if ran_before {
                RunState::SupervisorRestarting
            } else {
                RunState::Starting
            }
        }
        Some("spawning") | Some("xpcproxy") => RunState::Starting,
        // Idle between runs, with a trigger launchd keeps armed while the job is loaded: launchd
        // starts it on its own, as systemd does a job whose timer or path unit is active.
        Some("not running") | Some("waiting") | Some("exited") if info.has_trigger() => {
            RunState::SupervisorRestarting
        }
        Some("not running") | Some("waiting") | Some("exited") => RunState::Stopped,
        None if info.pid.is_some() => RunState::Running,
        _ => RunState::Unknown,
    }
}

impl LaunchdProcessManager {
    /// A manager with `config`. Nothing is looked up until the first call, so a missing
    /// `launchctl` is reported per call as [`ProcessError::Unavailable`].
    pub fn new(config: LaunchdConfig) -> Self {
        let launchctl = Launchctl::new(
            config.launchctl_path.clone(),
            config.search_path.clone(),
            config.deadline,
        );
        LaunchdProcessManager {
            config,
            launchctl,
            booted_out_from: Arc::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &LaunchdConfig {
        &self.config
    }

    /// The plist `enable` would install for `config` and where, without touching anything: for
    /// dry runs and diffs. The config is validated first.
    pub fn render(&self, config: &ServiceConfig) -> Result<(PathBuf, Vec<u8>), ProcessError> {
        config.validate()?;
        let label = &config.label;
        let dir = self.plist_dir(config.scope, label)?;
        let plist =
            plist_gen::build_plist(config, &self.config.plist_defaults()).map_err(|detail| {
                ProcessError::InvalidInput {
                    label: Some(label.to_string()),
                    detail,
                }
            })?;
        let bytes = plist_gen::to_xml(&plist).map_err(|e| ProcessError::backend(ADAPTER, e))?;
        Ok((dir.join(plist_file_name(label)), bytes))
    }

    /// The domains searched for a label, in order: `system`, then each managed user's `gui`
    /// and `user` domains, users in the config's order.
    pub fn search_order(&self) -> Vec<ServiceScope> {
        let mut scopes = vec![ServiceScope::System];
        for u in &self.config.users {
            scopes.push(ServiceScope::Gui { uid: u.uid });
            scopes.push(ServiceScope::User { uid: u.uid });
        }
        scopes
    }

    fn searched(&self) -> String {
        self.search_order()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn not_found(&self, label: &ServiceLabel) -> ProcessError {
        ProcessError::NotFound {
            label: label.to_string(),
            scope: Some(self.searched()),
        }
    }

    /// The folder holding plists for `scope`, if this manager manages that domain.
    fn plist_dir(&self, scope: ServiceScope, label: &ServiceLabel) -> Result<&Path, ProcessError> {
        match scope {
            ServiceScope::System => Ok(&self.config.system_plist_dir),
            ServiceScope::Gui { uid } | ServiceScope::User { uid } => {
                if let Some(u) = self.config.user(uid) {
                    return Ok(&u.agents_dir);
                }
                let managed: Vec<String> = self
                    .config
                    .users
                    .iter()
                    .map(|u| u.uid.to_string())
                    .collect();
                Err(ProcessError::InvalidInput {
                    label: Some(label.to_string()),
                    detail: if managed.is_empty() {
                        format!(
                            "scope {scope} needs a user domain (uid and LaunchAgents folder) in the launchd adapter's config"
                        )
                    } else {
                        format!(
                            "scope {scope} is the domain of a user this launchd adapter does not manage (it manages uid {})",
                            managed.join(", ")
                        )
                    },
                })
            }
        }
    }

    /// Finds `label`: loaded in the first domain that has it, else installed, else missing.
    async fn locate(
        &self,
        operation: Operation,
        label: &ServiceLabel,
    ) -> Result<Located, ProcessError> {
        for scope in self.search_order() {
            if let Some(info) = self.launchctl.print_in(operation, scope, label).await? {
                return Ok(Located::Loaded {
                    scope,
                    info: Box::new(info),
                });
            }
        }
        let (config, remembered, wanted) = (
            self.config.clone(),
            self.booted_out_from.clone(),
            label.clone(),
        );
        let installed = blocking("the plist lookup", move || {
            installed_scope(&config, &remembered, &wanted)
        })
        .await?;
        Ok(match installed {
            Some((scope, plist)) => Located::Installed { scope, plist },
            None => Located::Missing,
        })
    }

    async fn inspect_as(
        &self,
        operation: Operation,
        label: &ServiceLabel,
    ) -> Result<ServiceStatus, ProcessError> {
        match self.locate(operation, label).await? {
            Located::Loaded { scope, info } => {
                let disabled = self.launchctl.is_disabled(operation, scope, label).await?;
                let state = run_state(&info);
                Ok(ServiceStatus {
                    label: label.clone(),
                    loaded: true,
                    state,
                    pid: info.pid,
                    last_exit: info.last_exit(),
                    restart_count: info.runs.map(|r| r.saturating_sub(1)),
                    enabled: Some(!disabled),
                    scope: Some(scope),
                })
            }
            Located::Installed { scope, .. } => {
                let disabled = self.launchctl.is_disabled(operation, scope, label).await?;
                Ok(ServiceStatus {
                    label: label.clone(),
                    loaded: false,
                    state: RunState::Stopped,
                    pid: None,
                    last_exit: None,
                    restart_count: None,
                    enabled: Some(!disabled),
                    scope: Some(scope),
                })
            }
            Located::Missing => Err(self.not_found(label)),
        }
    }

    /// Notes the plist `print` reported for a job about to be booted out.
    fn remember_plist(&self, label: &ServiceLabel, scope: ServiceScope, info: &PrintInfo) {
        if let Some(path) = &info.path {
            self.booted_out_from
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .insert(label.clone(), (scope, PathBuf::from(path)));
        }
    }

    /// Labels worth inspecting for `list`: plists in the managed folders and jobs `launchctl
    /// list` shows (the caller's domain, which includes jobs installed by hand).
    async fn candidate_labels(
        &self,
        pattern: &LabelPattern,
    ) -> Result<BTreeSet<ServiceLabel>, ProcessError> {
        let mut dirs = vec![self.config.system_plist_dir.clone()];
        dirs.extend(self.config.users.iter().map(|u| u.agents_dir.clone()));
        let wanted = pattern.clone();
        let mut labels = blocking("the plist folder scan", move || {
            plist_labels(&dirs, &wanted)
        })
        .await?;
        for name in self.launchctl.list_labels().await? {
            // Labels outside the port's alphabet (launchd allows more) cannot be managed here.
            if let Ok(label) = ServiceLabel::new(name) {
                if pattern.matches(label.as_str()) {
                    labels.insert(label);
                }
            }
        }
        Ok(labels)
    }
}

/// Where an installed-but-unloaded plist is and the scope it belongs to: this adapter's
/// folders first, then where `print` said a job this manager booted out came from, then
/// launchd's own folders (which launchd loads at boot, so a job there is installed).
fn installed_scope(
    config: &LaunchdConfig,
    booted_out_from: &BootedOutFrom,
    label: &ServiceLabel,
) -> Option<(ServiceScope, PathBuf)> {
    let file = plist_file_name(label);
    let daemon = |dir: &Path| {
        let path = dir.join(&file);
        path.is_file().then_some((ServiceScope::System, path))
    };
    let agent = |uid: u32, dir: &Path| {
        let path = dir.join(&file);
        if !path.is_file() {
            return None;
        }
        let background = plist::Value::from_file(&path)
            .ok()
            .and_then(|v| {
                v.as_dictionary()
                    .and_then(|d| d.get("LimitLoadToSessionType"))
                    .and_then(|s| s.as_string().map(str::to_string))
            })
            .is_some_and(|s| s == plist_gen::BACKGROUND_SESSION);
        let scope = if background {
            ServiceScope::User { uid }
        } else {
            ServiceScope::Gui { uid }
        };
        Some((scope, path))
    };
    let remembered = || {
        let map = booted_out_from
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        map.get(label).filter(|(_, path)| path.is_file()).cloned()
    };
    // launchd's shared agent folders load into every user's domain; a job found only there is
    // reported in the first managed user's.
    let first_user = config.users.first().map(|u| u.uid);
    daemon(&config.system_plist_dir)
        .or_else(|| {
            config
                .users
                .iter()
                .find_map(|u| agent(u.uid, &u.agents_dir))
        })
        .or_else(remembered)
        .or_else(|| config.launchd_daemon_dirs.iter().find_map(|d| daemon(d)))
        .or_else(|| {
            let uid = first_user?;
            config.launchd_agent_dirs.iter().find_map(|d| agent(uid, d))
        })
}

/// The labels of the `.plist` files in `dirs` that match `pattern`.
fn plist_labels(dirs: &[PathBuf], pattern: &LabelPattern) -> BTreeSet<ServiceLabel> {
    let mut labels = BTreeSet::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".plist")) else {
                continue;
            };
            if let Ok(label) = ServiceLabel::new(stem) {
                if pattern.matches(label.as_str()) {
                    labels.insert(label);
                }
            }
        }
    }
    labels
}

/// Runs blocking file I/O off the async workers (as the systemd adapter does).
async fn blocking<T, F>(what: &str, f: F) -> Result<T, ProcessError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ProcessError::backend(ADAPTER, format!("{what} panicked: {e}")))
}

#[async_trait]
impl ProcessManagerPort for LaunchdProcessManager {
    /// The plist's `StandardOutPath`/`StandardErrorPath` (the config's, else the adapter's log
    /// folder); launchd keeps no log of its own for a job without them.
    fn log_source(&self, config: &ServiceConfig) -> Option<process_manager::LogSource> {
        let resolved = plist_gen::resolve(config, &self.config.plist_defaults()).ok()?;
        let files: Vec<_> = [resolved.stdout_path, resolved.stderr_path]
            .into_iter()
            .flatten()
            .collect();
        (!files.is_empty()).then_some(process_manager::LogSource::Files(files))
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::basic(ADAPTER).with_respawn_throttle(LAUNCHD_RESPAWN_THROTTLE)
    }

    #[tracing::instrument(skip_all, fields(adapter = ADAPTER, pattern = %pattern))]
    async fn list(&self, pattern: &LabelPattern) -> Result<Vec<ServiceStatus>, ProcessError> {
        let mut found = Vec::new();
        for label in self.candidate_labels(pattern).await? {
            match self.inspect_as(Operation::List, &label).await {
                Ok(st) => found.push(st),
                // Gone between listing and inspecting.
                Err(ProcessError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(found)
    }

    #[tracing::instrument(skip_all, fields(adapter = ADAPTER, label = %label))]
    async fn inspect(&self, label: &ServiceLabel) -> Result<ServiceStatus, ProcessError> {
        self.inspect_as(Operation::Inspect, label).await
    }

    #[tracing::instrument(skip_all, fields(adapter = ADAPTER, label = %label))]
    async fn restart(&self, label: &ServiceLabel) -> Result<RestartOutcome, ProcessError> {
        let op = Operation::Restart;
        // Loaded or not, a disabled job is not started: a disable is meant to last until undone.
        let refuse_disabled = |scope: ServiceScope| {
            ProcessError::InvalidInput {
            label: Some(label.to_string()),
            detail: format!(
                "{label} is disabled in {scope}; enable it before restarting (a disable is meant to survive until undone)"
            ),
        }
        };
        match self.locate(op, label).await? {
            Located::Missing => Err(self.not_found(label)),
            Located::Installed { scope, plist } => {
                if self.launchctl.is_disabled(op, scope, label).await? {
                    return Err(refuse_disabled(scope));
                }
                self.launchctl.bootstrap(op, scope, label, &plist).await?;
                // RunAtLoad may be false; a restart means "make it run".
                self.launchctl.kickstart(op, scope, label, false).await?;
                Ok(RestartOutcome::Started)
            }
            Located::Loaded { scope, info } => {
                if self.launchctl.is_disabled(op, scope, label).await? {
                    return Err(refuse_disabled(scope));
                }
                let was_running = run_state(&info) == RunState::Running;
                // In the domain it was found in: a system daemon restarted in gui/<uid> would
                // be a different (or missing) job.
                self.launchctl.kickstart(op, scope, label, true).await?;
                Ok(if was_running {
                    RestartOutcome::Restarted
                } else {
                    RestartOutcome::Started
                })
            }
        }
    }

    #[tracing::instrument(skip_all, fields(adapter = ADAPTER, label = %label))]
    async fn stop(&self, label: &ServiceLabel) -> Result<StopOutcome, ProcessError> {
        let op = Operation::Stop;
        match self.locate(op, label).await? {
            Located::Missing => Err(self.not_found(label)),
            Located::Installed { .. } => Ok(StopOutcome::AlreadyStopped),
            Located::Loaded { scope, info } => {
                let was_running = matches!(
                    run_state(&info),
                    RunState::Running | RunState::Starting | RunState::SupervisorRestarting
                );
                // `launchctl stop` would be undone at once by KeepAlive; bootout unloads the
                // job, so launchd has nothing to respawn until it is bootstrapped again, from
                // the plist `print` named (which may be in a folder this adapter does not manage).
                self.remember_plist(label, scope, &info);
                let was_loaded = self.launchctl.bootout(op, scope, label).await?;
                Ok(if was_running && was_loaded {
                    StopOutcome::Stopped
                } else {
                    StopOutcome::AlreadyStopped
                })
            }
        }
    }

    #[tracing::instrument(skip_all, fields(adapter = ADAPTER, label = %label))]
    async fn disable(&self, label: &ServiceLabel) -> Result<DisableOutcome, ProcessError> {
        let op = Operation::Disable;
        let (scope, loaded) = match self.locate(op, label).await? {
            Located::Missing => return Err(self.not_found(label)),
            Located::Installed { scope, .. } => (scope, false),
            Located::Loaded { scope, info } => {
                self.remember_plist(label, scope, &info);
                (scope, true)
            }
        };
        let was_disabled = self.launchctl.is_disabled(op, scope, label).await?;
        if !was_disabled {
            // The override persists in launchd's database, so the job stays off across reboots.
            self.launchctl.set_disabled(op, scope, label, true).await?;
        }
        let booted_out = loaded && self.launchctl.bootout(op, scope, label).await?;
        Ok(if was_disabled && !booted_out {
            DisableOutcome::AlreadyDisabled
        } else {
            DisableOutcome::Disabled
        })
    }

    #[tracing::instrument(skip_all, fields(adapter = ADAPTER, label = %config.label, scope = %config.scope))]
    async fn enable(&self, config: &ServiceConfig) -> Result<EnableOutcome, ProcessError> {
        let op = Operation::Enable;
        let (path, bytes) = self.render(config)?;
        let label = &config.label;
        let scope = config.scope;
        let dir = self.plist_dir(scope, label)?.to_path_buf();
        let invalid = |detail: String| ProcessError::InvalidInput {
            label: Some(label.to_string()),
            detail,
        };
        // The new plist lands first (unless it already has these bytes): if it cannot be
        // written (no permission, an unsafe folder), nothing has been booted out or disabled
        // yet. launchd reads it only at bootstrap, so writing it under a loaded job changes
        // nothing until the reload below.
        let folder_owner = match scope {
            ServiceScope::System => None,
            ServiceScope::Gui { uid } | ServiceScope::User { uid } => Some(uid),
        };
        let file_name = plist_file_name(label);
        let written = blocking("the plist writer", move || {
            plist_gen::write_atomically(&dir, &file_name, &bytes, folder_owner)
        })
        .await?
        .map_err(|e| match e {
            plist_gen::WriteError::Permission(detail) => ProcessError::PermissionDenied {
                operation: op,
                target: path.display().to_string(),
                detail: format!(
                    "{detail}; {}",
                    if scope == ServiceScope::System {
                        ROOT_HINT
                    } else {
                        "the LaunchAgents folder must be writable by this user"
                    }
                ),
            },
            plist_gen::WriteError::Unsafe(detail) => invalid(detail),
            plist_gen::WriteError::Io(detail) => ProcessError::backend(ADAPTER, detail),
        })?;
        let same = written == WriteOutcome::Unchanged;

        // A service that moved domains (a LaunchAgent that became a LaunchDaemon) must not keep
        // running in the old one: two supervisors would own it.
        let mut moved = false;
        for other in self.search_order().into_iter().filter(|s| *s != scope) {
            if self.launchctl.print_in(op, other, label).await?.is_some() {
                self.launchctl.bootout(op, other, label).await?;
                self.launchctl.set_disabled(op, other, label, true).await?;
                moved = true;
            }
        }

        let loaded = self.launchctl.print_in(op, scope, label).await?;
        let disabled = self.launchctl.is_disabled(op, scope, label).await?;

        let outcome = if written == WriteOutcome::Created {
            EnableOutcome::Installed
        } else if !same || moved {
            EnableOutcome::Updated
        } else {
            EnableOutcome::Started
        };

        if outcome == EnableOutcome::Started {
            if let Some(info) = &loaded {
                let running = run_state(info) != RunState::Stopped;
                if !disabled && (running || !config.run_at_load) {
                    return Ok(EnableOutcome::Unchanged);
                }
                if disabled {
                    self.launchctl.set_disabled(op, scope, label, false).await?;
                }
                self.launchctl.kickstart(op, scope, label, false).await?;
                return Ok(EnableOutcome::Started);
            }
        }

        if !same {
            if loaded.is_some() {
                // launchd reads the plist at bootstrap only: unload, then load the new file.
                self.launchctl.bootout(op, scope, label).await?;
            }
        } else if moved && loaded.is_some() {
            // Same file, but it was also running elsewhere: nothing to replace here.
            return Ok(EnableOutcome::Updated);
        }
        if disabled {
            self.launchctl.set_disabled(op, scope, label, false).await?;
        }
        self.launchctl.bootstrap(op, scope, label, &path).await?;
        Ok(outcome)
    }
}
