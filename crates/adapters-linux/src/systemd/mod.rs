//! `SystemdProcessManager`: [`ProcessManagerPort`] over systemd's D-Bus API, `systemctl` and
//! unit files.

mod bus;
mod command;
mod job;
mod sandbox;
pub(crate) mod show;
pub(crate) mod unit;
pub mod unit_read;
mod unit_trigger;
mod watch;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use process_manager::{
    Capabilities, DisableOutcome, EnableOutcome, LabelPattern, Operation, ProcessError,
    ProcessManagerPort, RestartOutcome, RunState, ServiceConfig, ServiceEvent, ServiceLabel,
    ServiceScope, ServiceStatus, StopOutcome,
};
use tokio::sync::broadcast;

pub use bus::BusAddress;
pub use command::SystemdTarget;
pub use unit::ServiceAccount;

use bus::{BusError, Detail, SystemdBus};
use command::{CallKind, Systemctl};
use show::{parse_list_units, parse_show_blocks, UnitState};
use sysutil::fs::{AtomicWrite, WriteOutcome};
use unit::ManagerKind;

pub(crate) const ADAPTER: &str = "systemd";

/// Most unit names given to one `systemctl show`, well inside the kernel's argv limit.
const SHOW_BATCH: usize = 512;

/// The process manager of a systemd host: the system manager, or a user's (`--user`) manager.
///
/// Unit state is read over the manager's D-Bus (one kept connection, a deadline on every call)
/// where there is a bus (see [`Self::with_bus`]); its service state changes are pushed through
/// [`ProcessManagerPort::events`] then. Jobs, and queries when the bus cannot be reached, run
/// `systemctl` by argv (never a shell) with a deadline, reading `systemctl show` properties
/// (never `status` text); a bus that does not answer in time is a timeout, not a reason to ask
/// again another way. Definitions are unit files written into
/// [`SystemdProcessManager::unit_dir`] atomically (0644). Units are named `<label>.service`.
///
/// ```no_run
/// use adapters_linux::{ServiceAccount, SystemdProcessManager};
/// // The host's system manager, running services as `joelclaw` unless a config says otherwise.
/// let pm = SystemdProcessManager::system().with_service_account(ServiceAccount::new("joelclaw"));
/// // The systemd of a container, reached through nsenter, its units written through /proc.
/// // Its bus, seen from the host, for state and events without a spawn.
/// let pm = SystemdProcessManager::system()
///     .with_command_prefix(["nsenter", "-t", "4242", "-a"])
///     .with_unit_dir("/proc/4242/root/etc/systemd/system")
///     .with_bus(adapters_linux::BusAddress::Address(
///         "unix:path=/proc/4242/root/run/dbus/system_bus_socket".into(),
///     ));
/// ```
#[derive(Debug, Clone)]
pub struct SystemdProcessManager {
    systemctl: Systemctl,
    unit_dir: PathBuf,
    scope: ServiceScope,
    service_account: Option<ServiceAccount>,
    /// The bus asked for; `None` is the manager's own bus when `systemctl` reaches the local
    /// manager, and no bus when it reaches another (prefix, target, another `systemctl`).
    bus_setting: Option<BusAddress>,
    /// The bus in use and its watch, made from the settings (shared by clones).
    bus: Option<(Arc<SystemdBus>, Arc<watch::Watch>)>,
}

impl SystemdProcessManager {
    /// The system manager, with units in `/etc/systemd/system`, `systemctl` from `PATH`,
    /// 10 s for queries and 120 s for jobs. System services need a user: the config's, or the
    /// one set with [`Self::with_service_account`].
    pub fn system() -> Self {
        SystemdProcessManager {
            systemctl: Systemctl {
                program: None,
                prefix: Vec::new(),
                user_manager: false,
                target: None,
                query_deadline: Duration::from_secs(10),
                job_deadline: Duration::from_secs(120),
            },
            unit_dir: PathBuf::from("/etc/systemd/system"),
            scope: ServiceScope::System,
            service_account: None,
            bus_setting: None,
            bus: None,
        }
        .bus_rebuilt()
    }

    /// The user manager of `uid` (`systemctl --user`), with units in `unit_dir` (normally
    /// `~/.config/systemd/user` of that user; the caller resolves the home, this crate reads no
    /// environment). Run it as that user.
    pub fn user(uid: u32, unit_dir: impl Into<PathBuf>) -> Self {
        let mut pm = Self::system();
        pm.systemctl.user_manager = true;
        pm.unit_dir = unit_dir.into();
        pm.scope = ServiceScope::User { uid };
        pm.bus_rebuilt()
    }

    /// Where the manager's D-Bus is: [`BusAddress::Off`] for `systemctl` alone, or an address
    /// (a container's bus through `/proc/<pid>/root`, a user's bus). Without this, the local
    /// system bus (the user's bus for [`Self::user`]) is used when `systemctl` reaches the local
    /// manager, and none once a command prefix, a target or another `systemctl` is set.
    pub fn with_bus(mut self, bus: BusAddress) -> Self {
        self.bus_setting = Some(bus);
        self.bus_rebuilt()
    }

    /// The bus address in use, if any.
    pub fn bus_address(&self) -> Option<&str> {
        self.bus.as_ref().map(|(b, _)| b.address())
    }

    /// Makes the bus (and its watch) again from the settings.
    fn bus_rebuilt(mut self) -> Self {
        let local = self.systemctl.prefix.is_empty()
            && self.systemctl.target.is_none()
            && self.systemctl.program.is_none();
        let default = match self.scope {
            ServiceScope::User { uid } => BusAddress::user(uid),
            _ => BusAddress::system(),
        };
        let address = match &self.bus_setting {
            Some(asked) => asked.as_address(),
            None if local => default.as_address(),
            None => None,
        }
        .map(str::to_string);
        self.bus = address.map(|a| {
            let bus = SystemdBus::new(a, self.systemctl.query_deadline);
            let watch = watch::Watch::new(bus.clone());
            (bus, watch)
        });
        self
    }

    /// Where unit files are written. Point it at the target's unit directory when the manager
    /// is elsewhere (e.g. `/proc/<pid>/root/etc/systemd/system` for a container).
    pub fn with_unit_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.unit_dir = dir.into();
        self
    }

    /// Words put before `systemctl` on every call, e.g. `["nsenter", "-t", PID, "-a"]` or
    /// `["ssh", "node-1"]`. With a prefix, `systemctl` is found by the prefix, not on this
    /// machine's `PATH`; the first word is taken as a path when it has a `/`, otherwise looked
    /// up on `PATH`.
    pub fn with_command_prefix<I, S>(mut self, prefix: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.systemctl.prefix = prefix.into_iter().map(Into::into).collect();
        self.bus_rebuilt()
    }

    /// Another manager, the way `systemctl --machine`/`--host` reach it. Unit files still go to
    /// [`Self::unit_dir`], which must then be that machine's (a mount, or `/var/lib/machines/..`).
    pub fn with_target(mut self, target: SystemdTarget) -> Self {
        self.systemctl.target = Some(target);
        self.bus_rebuilt()
    }

    /// Runs this `systemctl` instead of the one on `PATH`.
    pub fn with_systemctl(mut self, path: impl Into<PathBuf>) -> Self {
        self.systemctl.program = Some(path.into());
        self.bus_rebuilt()
    }

    /// The deadline of each query (`show`, `list-units`, or one batch of bus calls); past it
    /// the call is killed and is a [`ProcessError::Timeout`].
    pub fn with_query_deadline(mut self, deadline: Duration) -> Self {
        self.systemctl.query_deadline = deadline;
        self.bus_rebuilt()
    }

    /// The deadline of each job (`start`, `stop`, `restart`, `daemon-reload`, `enable`). Keep
    /// it above the units' stop timeout (90 s by default), or a slow stop reads as a timeout.
    pub fn with_job_deadline(mut self, deadline: Duration) -> Self {
        self.systemctl.job_deadline = deadline;
        self
    }

    /// The account system services run as when their config names no user.
    pub fn with_service_account(mut self, account: ServiceAccount) -> Self {
        self.service_account = Some(account);
        self
    }

    /// The unit directory.
    pub fn unit_dir(&self) -> &Path {
        &self.unit_dir
    }

    /// Where the unit file of `label` goes.
    pub fn unit_path(&self, label: &ServiceLabel) -> PathBuf {
        self.unit_dir.join(unit_name(label))
    }

    /// The unit file `enable` would write for `config` (for dry runs and diffs). Refuses what
    /// `enable` refuses.
    pub fn render_unit(&self, config: &ServiceConfig) -> Result<String, ProcessError> {
        unit::render_unit(config, self.kind(), self.service_account.as_ref())
    }

    fn kind(&self) -> ManagerKind {
        if self.systemctl.user_manager {
            ManagerKind::User
        } else {
            ManagerKind::System
        }
    }

    /// The state of many units, in the order asked: over the bus where there is one, else (or
    /// when it cannot be reached) by `systemctl show`.
    async fn show(
        &self,
        operation: Operation,
        units: &[String],
    ) -> Result<Vec<UnitState>, ProcessError> {
        if let Some((bus, watch)) = &self.bus {
            watch.ensure_started_if_subscribed();
            let detail = match operation {
                Operation::Enable => Detail::Definition,
                _ => Detail::Status,
            };
            match bus.unit_states(units, detail).await {
                Ok(states) => return Ok(states),
                Err(e) => self.bus_failed(operation, e)?,
            }
        }
        self.show_by_systemctl(operation, units).await
    }

    /// What a failed bus call means: a timeout is the answer (systemd did not answer; asking
    /// `systemctl` would wait as long again); anything else falls back to `systemctl`.
    fn bus_failed(&self, operation: Operation, e: BusError) -> Result<(), ProcessError> {
        match e {
            BusError::Timeout(_) => Err(ProcessError::Timeout {
                operation,
                after: self.systemctl.query_deadline,
            }),
            other => {
                tracing::debug!(error = %other, "systemd bus not usable, asking systemctl");
                Ok(())
            }
        }
    }

    /// `systemctl show` of many units in one call per [`SHOW_BATCH`], in the order asked.
    async fn show_by_systemctl(
        &self,
        operation: Operation,
        units: &[String],
    ) -> Result<Vec<UnitState>, ProcessError> {
        let mut states = Vec::with_capacity(units.len());
        for chunk in units.chunks(SHOW_BATCH) {
            let mut args = vec!["show", "-p", show::SHOW_PROPERTIES];
            args.extend(chunk.iter().map(String::as_str));
            let out = self
                .systemctl
                .run(CallKind::Query, operation, &args)
                .await?;
            let blocks = parse_show_blocks(&out.stdout);
            if blocks.len() != chunk.len() {
                return Err(parse_failure(format!(
                    "asked for {} units, systemctl show gave {} blocks",
                    chunk.len(),
                    blocks.len()
                )));
            }
            for block in &blocks {
                states.push(UnitState::from_block(block).map_err(backend)?);
            }
        }
        Ok(states)
    }

    /// Names of the unit files (regular files, not alias symlinks) in the unit directory.
    async fn installed_units(&self) -> Result<Vec<String>, ProcessError> {
        let dir = self.unit_dir.clone();
        let read = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<String>> {
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(e),
            };
            let mut names = Vec::new();
            for entry in entries {
                let entry = entry?;
                if entry.file_type()?.is_file() {
                    if let Some(name) = entry.file_name().to_str() {
                        if name.ends_with(".service") {
                            names.push(name.to_string());
                        }
                    }
                }
            }
            Ok(names)
        })
        .await
        .map_err(|e| ProcessError::backend(ADAPTER, format!("unit dir reader panicked: {e}")))?;
        read.map_err(|e| match e.kind() {
            std::io::ErrorKind::PermissionDenied => ProcessError::PermissionDenied {
                operation: Operation::List,
                target: self.unit_dir.display().to_string(),
                detail: e.to_string(),
            },
            _ => ProcessError::Backend {
                adapter: ADAPTER.into(),
                source: Box::new(e),
            },
        })
    }

    /// The service units systemd has loaded (matching `glob`), as (name, load state).
    async fn loaded_services(
        &self,
        glob: Option<&str>,
    ) -> Result<Vec<(String, String)>, ProcessError> {
        if let Some((bus, watch)) = &self.bus {
            watch.ensure_started_if_subscribed();
            let patterns = vec![glob.unwrap_or("*.service").to_string()];
            match bus.list_units(&patterns).await {
                Ok(units) => {
                    return Ok(units
                        .into_iter()
                        .filter(|(name, _)| name.ends_with(".service"))
                        .collect())
                }
                Err(e) => self.bus_failed(Operation::List, e)?,
            }
        }
        let mut args = vec!["list-units", "--all", "--type=service", "--output=json"];
        if let Some(g) = glob {
            args.push(g);
        }
        let loaded = self
            .systemctl
            .run(CallKind::Query, Operation::List, &args)
            .await?;
        Ok(parse_list_units(&loaded.stdout)
            .map_err(backend)?
            .into_iter()
            .map(|u| (u.unit, u.load))
            .collect())
    }

    async fn job(&self, operation: Operation, args: &[&str]) -> Result<(), ProcessError> {
        self.systemctl
            .run(CallKind::Job, operation, args)
            .await
            .map(drop)
    }

    /// Writes `text` as the unit file `name` (`x.service`, `x.timer`) if it differs; says
    /// whether it did.
    async fn write_unit_file(&self, name: &str, text: &str) -> Result<WriteOutcome, ProcessError> {
        let path = self.unit_dir.join(name);
        let target = path.display().to_string();
        let text = text.to_string();
        let result = tokio::task::spawn_blocking(move || write_if_changed(&path, &text))
            .await
            .map_err(|e| ProcessError::backend(ADAPTER, format!("unit writer panicked: {e}")))?;
        result.map_err(|e| match e.io_kind() {
            std::io::ErrorKind::PermissionDenied => ProcessError::PermissionDenied {
                operation: Operation::Enable,
                target,
                detail: e.to_string(),
            },
            _ => ProcessError::Backend {
                adapter: ADAPTER.into(),
                source: Box::new(e),
            },
        })
    }
}

fn unit_name(label: &ServiceLabel) -> String {
    format!("{label}.service")
}

fn backend(e: show::ParseError) -> ProcessError {
    ProcessError::Backend {
        adapter: ADAPTER.into(),
        source: Box::new(e),
    }
}

fn parse_failure(detail: String) -> ProcessError {
    backend(show::ParseError(detail))
}

/// Whether systemd has (or is bringing back) a process for it.
fn is_active(state: RunState) -> bool {
    matches!(
        state,
        RunState::Running | RunState::Starting | RunState::SupervisorRestarting
    )
}

/// Atomic replace (sysutil): a temporary file in the same directory, chmod 0644, written,
/// fsynced, renamed over the unit, then the directory fsynced, so systemd never reads half a
/// unit and a crash leaves the old one or the new one. Equal bytes are left alone.
fn write_if_changed(path: &Path, text: &str) -> Result<WriteOutcome, sysutil::fs::WriteError> {
    AtomicWrite::with_mode(0o644)
        .only_if_changed()
        .temp_prefix(".joelclaw-unit-")
        .write(path, text.as_bytes())
}

/// A label pattern as a `systemctl` glob, when systemd's fnmatch reads it the same way (only
/// label characters, `*` and `?`); otherwise every service is listed and filtered here.
fn systemd_glob(pattern: &LabelPattern) -> Option<String> {
    let p = pattern.as_str();
    let plain = p
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@' | '*' | '?'));
    (plain && !p.is_empty()).then(|| format!("{p}.service"))
}

#[async_trait]
impl ProcessManagerPort for SystemdProcessManager {
    fn capabilities(&self) -> Capabilities {
        // `RestartSec=` spaces systemd's own respawns, but a restart someone asks for is never
        // throttled by it: there is no window in which a heal is refused. (A start-limit
        // failure is cleared by `restart` itself.)
        let capabilities = Capabilities::basic(ADAPTER);
        if self.bus.is_some() {
            capabilities.pushing_events()
        } else {
            capabilities
        }
    }

    fn events(&self) -> Option<broadcast::Receiver<ServiceEvent>> {
        self.bus.as_ref().map(|(_, watch)| watch.subscribe())
    }

    /// The unit's `StandardOutput=`/`StandardError=` files where it has them (read with `tail`
    /// where the manager runs: behind a prefix they are in its mount namespace), else its
    /// journal; either through the same manager `systemctl` reaches.
    fn log_source(&self, config: &ServiceConfig) -> Option<process_manager::LogSource> {
        let files: Vec<_> = [&config.stdout_path, &config.stderr_path]
            .into_iter()
            .flatten()
            .collect();
        Some(if files.is_empty() {
            process_manager::LogSource::Command {
                argv: self.systemctl.journal_argv(&unit_name(&config.label)),
                lines_flag: "--lines",
                follow_flag: "--follow",
            }
        } else {
            let mut argv = self.systemctl.prefix.clone();
            argv.push("tail".into());
            argv.extend(files.into_iter().map(|f| f.as_os_str().to_os_string()));
            process_manager::LogSource::Command {
                argv,
                lines_flag: "-n",
                follow_flag: "-F",
            }
        })
    }

    #[tracing::instrument(skip_all, fields(adapter = ADAPTER, pattern = %pattern))]
    async fn list(&self, pattern: &LabelPattern) -> Result<Vec<ServiceStatus>, ProcessError> {
        // Two sources, two spawns at most and one of them free: what systemd has loaded
        // (`list-units --all`, cheap, one call) and the unit files this adapter installs (read
        // from the unit directory, so a disabled, unloaded service is still listed).
        // `list-unit-files` would say the same for every directory but costs ~1 s per 200 files.
        let glob = systemd_glob(pattern);
        let loaded = self.loaded_services(glob.as_deref()).await?;
        let installed = self.installed_units().await?;
        let mut names: Vec<String> = loaded
            .into_iter()
            .filter(|(_, load)| load != "not-found")
            .map(|(unit, _)| unit)
            .chain(installed)
            .filter(|name| {
                name.strip_suffix(".service").is_some_and(|label| {
                    // Templates (`name@.service`) are not services until instantiated.
                    !label.ends_with('@')
                        && ServiceLabel::new(label).is_ok()
                        && pattern.matches(label)
                })
            })
            .collect();
        names.sort();
        names.dedup();
        let states = self.show(Operation::List, &names).await?;
        let mut statuses = Vec::with_capacity(names.len());
        for (name, state) in names.iter().zip(states) {
            if state.is_not_found() {
                continue; // removed between the listing and the show
            }
            let label = name.trim_end_matches(".service");
            if let Ok(label) = ServiceLabel::new(label) {
                statuses.push(state.to_status(label, self.scope));
            }
        }
        Ok(statuses)
    }

    #[tracing::instrument(skip_all, fields(adapter = ADAPTER, label = %label))]
    async fn inspect(&self, label: &ServiceLabel) -> Result<ServiceStatus, ProcessError> {
        // With its timer and path units, so a job reads as one: enabled when its trigger is,
        // left to systemd while its trigger waits.
        let (service, triggers) = self.job_states(Operation::Inspect, label).await?;
        Ok(job::job_status(
            &service,
            &triggers,
            label.clone(),
            self.scope,
        ))
    }

    /// All states from one read: over the bus, one `ListUnitsByNames` of every unit and its
    /// triggers, then the few properties each found unit needs, pipelined on one connection.
    async fn inspect_many(
        &self,
        labels: &[ServiceLabel],
    ) -> Result<Vec<Result<ServiceStatus, ProcessError>>, ProcessError> {
        self.job_statuses(labels).await
    }

    #[tracing::instrument(skip_all, fields(adapter = ADAPTER, label = %label))]
    async fn restart(&self, label: &ServiceLabel) -> Result<RestartOutcome, ProcessError> {
        let op = Operation::Restart;
        let (state, triggers) = self.job_states(op, label).await?;
        let unit = unit_name(label);
        // A job (a oneshot its timer or path starts) may run for long: its start is queued,
        // not waited for, so a heal's deadline never cuts a run that is going fine. Its
        // triggers are started too, so a restarted job is armed again after a stop.
        let is_job = !triggers.is_empty();
        let call = |verb: &'static str| {
            let mut args = vec![verb];
            if is_job {
                args.push("--no-block");
            }
            args
        };
        let outcome = match state.run_state() {
            RunState::Failed => {
                // A start-limit `failed` refuses every start until it is reset.
                self.job(op, &["reset-failed", &unit]).await?;
                self.job(op, &[call("start"), vec![unit.as_str()]].concat())
                    .await?;
                RestartOutcome::ResetAndStarted
            }
            s if is_active(s) => {
                self.job(op, &[call("restart"), vec![unit.as_str()]].concat())
                    .await?;
                RestartOutcome::Restarted
            }
            _ => {
                self.job(op, &[call("start"), vec![unit.as_str()]].concat())
                    .await?;
                RestartOutcome::Started
            }
        };
        let idle_triggers: Vec<&str> = triggers
            .iter()
            .filter(|(_, s)| !is_active(s.run_state()))
            .map(|(name, _)| name.as_str())
            .collect();
        if !idle_triggers.is_empty() {
            self.job(op, &[vec!["start"], idle_triggers].concat())
                .await?;
        }
        Ok(outcome)
    }

    #[tracing::instrument(skip_all, fields(adapter = ADAPTER, label = %label))]
    async fn stop(&self, label: &ServiceLabel) -> Result<StopOutcome, ProcessError> {
        // A job's timer and path units stop with it, or they would start it again.
        let (service, triggers) = self.job_states(Operation::Stop, label).await?;
        let unit = unit_name(label);
        let mut active: Vec<&str> = triggers
            .iter()
            .filter(|(_, s)| is_active(s.run_state()))
            .map(|(name, _)| name.as_str())
            .collect();
        if is_active(service.run_state()) {
            active.push(&unit);
        }
        if active.is_empty() {
            return Ok(StopOutcome::AlreadyStopped);
        }
        let mut args = vec!["stop"];
        args.extend(active);
        self.job(Operation::Stop, &args).await?;
        Ok(StopOutcome::Stopped)
    }

    #[tracing::instrument(skip_all, fields(adapter = ADAPTER, label = %label))]
    async fn disable(&self, label: &ServiceLabel) -> Result<DisableOutcome, ProcessError> {
        let (service, triggers) = self.job_states(Operation::Disable, label).await?;
        let on = |s: &show::UnitState| s.enabled() == Some(true) || is_active(s.run_state());
        if !on(&service) && !triggers.iter().any(|(_, s)| on(s)) {
            return Ok(DisableOutcome::AlreadyDisabled);
        }
        // `disable` removes the [Install] symlinks (the boot-time part); `--now` stops it too.
        // A job's timer and path units go with it.
        let unit = unit_name(label);
        let mut args = vec!["disable", "--now", unit.as_str()];
        args.extend(triggers.iter().map(|(name, _)| name.as_str()));
        self.job(Operation::Disable, &args).await?;
        Ok(DisableOutcome::Disabled)
    }

    #[tracing::instrument(skip_all, fields(adapter = ADAPTER, label = %config.label))]
    async fn enable(&self, config: &ServiceConfig) -> Result<EnableOutcome, ProcessError> {
        // Everything is checked before anything is written or spawned.
        let text = self.render_unit(config)?;
        unit_trigger::render_timer(config)?;
        unit_trigger::render_path(config)?;
        let label = &config.label;
        let unit = unit_name(label);
        let written = self.write_unit_file(&unit, &text).await?;
        // A job's `.timer`/`.path` beside it; those a config no longer has are removed.
        let triggers = self.write_triggers(config).await?;
        let mut names = vec![unit.clone()];
        names.extend(triggers.present.iter().cloned());
        let mut states = self.show(Operation::Enable, &names).await?;
        if written != WriteOutcome::Unchanged
            || triggers.any_file_changed()
            || states
                .iter()
                .any(|s| s.need_daemon_reload || s.is_not_found())
        {
            self.job(Operation::Enable, &["daemon-reload"]).await?;
            states = self.show(Operation::Enable, &names).await?;
        }
        if states.is_empty() {
            return Err(parse_failure("no show block".into()));
        }
        let state = states.remove(0);
        if state.is_not_found() {
            // Written, reloaded, and still unknown: the unit directory is not one this manager
            // reads (e.g. a --machine target with a local unit_dir).
            return Err(ProcessError::InvalidInput {
                label: Some(label.to_string()),
                detail: format!(
                    "wrote {} but the {} does not know {unit} after daemon-reload; point unit_dir at a directory it loads units from",
                    self.unit_path(label).display(),
                    self.systemctl.scope_name()
                ),
            });
        }
        // Its output files' folders, before anything starts it (a job's trigger included).
        let mut folders: Vec<&Path> = [&config.stdout_path, &config.stderr_path]
            .into_iter()
            .flatten()
            .filter_map(|p| p.parent())
            .collect();
        folders.dedup();
        if let Some(made) = self
            .systemctl
            .make_folders(Operation::Enable, &folders)
            .await
        {
            made?;
        }
        if config.is_job() {
            return self
                .enable_job(config, written, &triggers, &state, &states)
                .await;
        }
        let run_state = state.run_state();
        if !config.run_at_load {
            // Installed and loaded, not switched on: started only when asked (restart).
            if written == WriteOutcome::Replaced {
                self.job(Operation::Enable, &["try-restart", &unit]).await?;
            }
            return Ok(match written {
                WriteOutcome::Created => EnableOutcome::Installed,
                WriteOutcome::Replaced => EnableOutcome::Updated,
                WriteOutcome::Unchanged => EnableOutcome::Unchanged,
            });
        }
        if written == WriteOutcome::Unchanged && is_active(run_state) && !state.needs_enabling() {
            return Ok(EnableOutcome::Unchanged);
        }
        if state.needs_enabling() {
            self.job(Operation::Enable, &["enable", &unit]).await?;
        }
        if run_state == RunState::Failed {
            self.job(Operation::Enable, &["reset-failed", &unit])
                .await?;
        }
        match written {
            WriteOutcome::Replaced => {
                // A new definition takes effect only in a new process.
                self.job(Operation::Enable, &["restart", &unit]).await?;
                Ok(EnableOutcome::Updated)
            }
            WriteOutcome::Created => {
                self.job(Operation::Enable, &["start", &unit]).await?;
                Ok(EnableOutcome::Installed)
            }
            WriteOutcome::Unchanged => {
                self.job(Operation::Enable, &["start", &unit]).await?;
                Ok(EnableOutcome::Started)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_only_when_systemd_reads_them_alike() {
        assert_eq!(
            systemd_glob(&LabelPattern::new("conf-*")).as_deref(),
            Some("conf-*.service")
        );
        assert_eq!(
            systemd_glob(&LabelPattern::all()).as_deref(),
            Some("*.service")
        );
        assert_eq!(systemd_glob(&LabelPattern::new("a[bc]")), None);
        assert_eq!(systemd_glob(&LabelPattern::new("a\\*")), None);
        assert_eq!(systemd_glob(&LabelPattern::new("")), None);
    }

    #[test]
    fn atomic_write_reports_what_changed_and_sets_0644() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let unit_dir = dir.path().join("units");
        let path = unit_dir.join("a.service");
        assert_eq!(
            write_if_changed(&path, "one\n").unwrap(),
            WriteOutcome::Created
        );
        assert_eq!(
            write_if_changed(&path, "one\n").unwrap(),
            WriteOutcome::Unchanged
        );
        assert_eq!(
            write_if_changed(&path, "two\n").unwrap(),
            WriteOutcome::Replaced
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        let names: Vec<_> = std::fs::read_dir(&unit_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.service")]);
    }
}
