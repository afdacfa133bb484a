//! `EmbeddedSupervisor`: a `ProcessManagerPort` that spawns and watches child processes itself,
//! for machines (a laptop, CI, a container) where no OS supervisor should own the services.
//!
//! It detects an exit at once (a task awaits every child) and pushes it as a `ServiceEvent`, but
//! it does not respawn on its own: the heal loop is the one that restarts, so its backoff and
//! breaker apply and two restarters never race. Each child leads its own process group, so a stop
//! (SIGTERM and SIGCONT, then SIGKILL after the service's grace period) reaches everything it
//! started, a stopped (hung by SIGSTOP) child included; on Linux a child also gets SIGKILL if the
//! agent dies, so an agent crash leaves no orphans. A service's env files are read at each start
//! (systemd's syntax and order, see `process_manager::env_file`).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::{Gid, Group, Pid, Uid, User};
use process_manager::{
    Capabilities, DisableOutcome, EnableOutcome, ExitStatus, LabelPattern, Operation, ProcessError,
    ProcessManagerPort, RestartOutcome, RunState, ServiceConfig, ServiceEvent, ServiceLabel,
    ServiceStatus, StopOutcome,
};
use tokio::sync::{broadcast, watch};

const ADAPTER: &str = "embedded";
/// The file a running supervisor publishes its children's state to.
const PUBLISHED: &str = "services.json";

/// Where the supervisor keeps logs and state, and how long a stop may take.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// Default folder for `<label>.out.log` / `<label>.err.log` when a config names no log path.
    pub log_dir: PathBuf,
    /// Folder for the disabled set (so `disable` survives an agent restart). `None`: in memory.
    pub state_dir: Option<PathBuf>,
    /// Time between SIGTERM and SIGKILL on stop, for a service with no grace of its own
    /// ([`EmbeddedSupervisor::set_stop_grace`]).
    pub stop_grace: Duration,
}

/// The stop grace of a service with none of its own: a hung child is killed soon, so a hang
/// is healed fast; a service that needs longer to drain says so (`heal.stop_grace`).
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(2);

impl EmbeddedOptions {
    /// Logs and state under `dir`, the [`DEFAULT_STOP_GRACE`].
    pub fn under(dir: &Path) -> Self {
        EmbeddedOptions {
            log_dir: dir.join("logs"),
            state_dir: Some(dir.to_path_buf()),
            stop_grace: DEFAULT_STOP_GRACE,
        }
    }
}

#[derive(Debug)]
struct Service {
    config: ServiceConfig,
    enabled: bool,
    state: RunState,
    pid: Option<u32>,
    last_exit: Option<ExitStatus>,
    restarts: u64,
    /// Bumped at every spawn so that a late exit of an old child cannot overwrite a new one.
    generation: u64,
    /// Turns `true` when the current child has been reaped.
    exited: Option<watch::Receiver<bool>>,
}

#[derive(Debug)]
struct Inner {
    options: EmbeddedOptions,
    services: Mutex<BTreeMap<ServiceLabel, Service>>,
    disabled: Mutex<BTreeSet<String>>,
    /// Per-service stop graces (the default is `options.stop_grace`).
    stop_graces: Mutex<BTreeMap<ServiceLabel, Duration>>,
    events: broadcast::Sender<ServiceEvent>,
}

impl Inner {
    fn stop_grace(&self, label: &ServiceLabel) -> Duration {
        self.stop_graces
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(label)
            .copied()
            .unwrap_or(self.options.stop_grace)
    }

    fn services(&self) -> MutexGuard<'_, BTreeMap<ServiceLabel, Service>> {
        self.services.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes every child's state to `<state_dir>/services.json` for `status` and `inspect`
    /// run from another process (see [`EmbeddedView`]). Best effort: a failed write is logged.
    fn publish(&self, services: &BTreeMap<ServiceLabel, Service>) {
        let Some(dir) = &self.options.state_dir else {
            return;
        };
        let all: Vec<ServiceStatus> = services
            .iter()
            .map(|(l, s)| EmbeddedSupervisor::status_of(l, s))
            .collect();
        let json = serde_json::to_vec_pretty(&all).expect("statuses serialize");
        if let Err(e) =
            sysutil::fs::AtomicWrite::with_mode(0o600).write(&dir.join(PUBLISHED), &json)
        {
            tracing::warn!(error = %e, "publishing embedded service state");
        }
    }

    fn on_exit(&self, label: &ServiceLabel, generation: u64, status: std::process::ExitStatus) {
        let status = match (status.code(), status.signal()) {
            (Some(code), _) => ExitStatus::Code(code),
            (None, Some(sig)) => ExitStatus::Signal(sig),
            (None, None) => ExitStatus::Code(-1),
        };
        let mut services = self.services();
        let Some(svc) = services.get_mut(label) else {
            return;
        };
        if svc.generation != generation {
            return;
        }
        // Whatever the leader left behind in its group goes with it.
        if let Some(pid) = svc.pid.take() {
            let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
        svc.state = RunState::Stopped;
        svc.last_exit = Some(status);
        tracing::debug!(service = %label, %status, "embedded child exited");
        self.publish(&services);
        let _ = self.events.send(ServiceEvent::Exited {
            label: label.clone(),
            status,
        });
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let services = self.services.get_mut().unwrap_or_else(|e| e.into_inner());
        for svc in services.values() {
            if let Some(pid) = svc.pid {
                let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
            }
        }
    }
}

/// The embedded supervisor. Cheap to clone; clones share the children.
#[derive(Debug, Clone)]
pub struct EmbeddedSupervisor {
    inner: Arc<Inner>,
}

fn disabled_file(dir: &Path) -> PathBuf {
    dir.join("embedded-disabled.json")
}

impl EmbeddedSupervisor {
    /// A supervisor with no services. Reads the persisted disabled set, if any.
    pub fn new(options: EmbeddedOptions) -> Result<Self, ProcessError> {
        let disabled = match &options.state_dir {
            Some(dir) => match std::fs::read(disabled_file(dir)) {
                Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "embedded disabled set unreadable; starting empty");
                    BTreeSet::new()
                }),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeSet::new(),
                Err(e) => return Err(io_err("read the disabled set", e)),
            },
            None => BTreeSet::new(),
        };
        Ok(EmbeddedSupervisor {
            inner: Arc::new(Inner {
                options,
                services: Mutex::new(BTreeMap::new()),
                disabled: Mutex::new(disabled),
                stop_graces: Mutex::new(BTreeMap::new()),
                events: broadcast::channel(1024).0,
            }),
        })
    }

    /// Gives `label` its own time between SIGTERM and SIGKILL on stop.
    pub fn set_stop_grace(&self, label: &ServiceLabel, grace: Duration) {
        self.inner
            .stop_graces
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(label.clone(), grace);
    }

    /// Stops every running child (SIGTERM, then SIGKILL after the grace period), concurrently.
    /// The agent calls this on SIGINT/SIGTERM.
    pub async fn shutdown(&self) {
        let labels: Vec<ServiceLabel> = self.inner.services().keys().cloned().collect();
        let stops = labels.iter().map(|l| self.stop_child(l));
        for r in futures::future::join_all(stops).await {
            if let Err(e) = r {
                tracing::warn!(error = %e, "stopping a child at shutdown");
            }
        }
    }

    /// Whether `label` was disabled (by this agent or an earlier one over the same state folder).
    /// The agent does not start a disabled service from its inventory.
    pub fn is_disabled(&self, label: &ServiceLabel) -> bool {
        self.inner
            .disabled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(label.as_str())
    }

    fn set_disabled(&self, label: &ServiceLabel, disabled: bool) -> Result<(), ProcessError> {
        let mut set = self
            .inner
            .disabled
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let changed = if disabled {
            set.insert(label.to_string())
        } else {
            set.remove(label.as_str())
        };
        if let (true, Some(dir)) = (changed, &self.inner.options.state_dir) {
            let json = serde_json::to_vec_pretty(&*set).expect("a set of strings serializes");
            sysutil::fs::AtomicWrite::with_mode(0o600)
                .write(&disabled_file(dir), &json)
                .map_err(|e| io_err("persist the disabled set", e.into()))?;
        }
        Ok(())
    }

    fn log_file(
        &self,
        configured: &Option<PathBuf>,
        label: &ServiceLabel,
        stream: &str,
    ) -> PathBuf {
        configured.clone().unwrap_or_else(|| {
            self.inner
                .options
                .log_dir
                .join(format!("{label}.{stream}.log"))
        })
    }

    /// Spawns the service's program. The caller holds no lock.
    fn spawn(&self, label: &ServiceLabel) -> Result<(), ProcessError> {
        let mut services = self.inner.services();
        let svc = services
            .get_mut(label)
            .ok_or_else(|| ProcessError::not_found(label))?;
        let config = &svc.config;
        // Read at each start, as systemd does, so an edited file takes effect on the next
        // restart; its values override `env` (systemd's order). The error names the file only.
        let from_files = process_manager::env_file::load(&config.env_files).map_err(|e| {
            ProcessError::InvalidInput {
                label: Some(label.to_string()),
                detail: e.to_string(),
            }
        })?;
        let mut cmd = tokio::process::Command::new(&config.program);
        cmd.args(&config.args)
            .envs(&config.env)
            .envs(from_files)
            .stdin(Stdio::null())
            .process_group(0)
            .kill_on_drop(false);
        if let Some(dir) = &config.working_dir {
            cmd.current_dir(dir);
        }
        apply_account(&mut cmd, config)?;
        let open = |path: PathBuf| -> Result<std::fs::File, ProcessError> {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| io_err(&format!("create log folder {}", parent.display()), e))?;
            }
            OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o640)
                .open(&path)
                .map_err(|e| io_err(&format!("open log {}", path.display()), e))
        };
        cmd.stdout(open(self.log_file(&config.stdout_path, label, "out"))?);
        cmd.stderr(open(self.log_file(&config.stderr_path, label, "err"))?);
        die_with_parent(&mut cmd);
        let mut child = cmd.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ProcessError::InvalidInput {
                label: Some(label.to_string()),
                detail: format!("program {} not found", config.program.display()),
            },
            std::io::ErrorKind::PermissionDenied => ProcessError::PermissionDenied {
                operation: Operation::Enable,
                target: label.to_string(),
                detail: format!("cannot execute {}: {e}", config.program.display()),
            },
            _ => io_err(&format!("spawn {}", config.program.display()), e),
        })?;
        svc.generation += 1;
        let generation = svc.generation;
        svc.pid = child.id();
        svc.state = RunState::Running;
        let (done_tx, done_rx) = watch::channel(false);
        svc.exited = Some(done_rx);
        self.inner.publish(&services);
        drop(services);
        let inner = Arc::downgrade(&self.inner);
        let label = label.clone();
        tokio::spawn(async move {
            // Awaiting the child reaps it: no zombies.
            let status = child.wait().await;
            if let (Some(inner), Ok(status)) = (inner.upgrade(), status) {
                inner.on_exit(&label, generation, status);
            }
            let _ = done_tx.send(true);
        });
        Ok(())
    }

    /// SIGTERM the child's group, SIGKILL after its grace period, and wait until it is reaped.
    async fn stop_child(&self, label: &ServiceLabel) -> Result<StopOutcome, ProcessError> {
        let (pid, mut exited) = {
            let mut services = self.inner.services();
            let svc = services
                .get_mut(label)
                .ok_or_else(|| ProcessError::not_found(label))?;
            match (svc.pid, svc.exited.clone()) {
                (Some(pid), Some(exited)) if svc.state.is_running() => (pid, exited),
                _ => return Ok(StopOutcome::AlreadyStopped),
            }
        };
        let group = Pid::from_raw(pid as i32);
        let _ = killpg(group, Signal::SIGTERM);
        // A stopped (SIGSTOP, hung) process keeps SIGTERM pending until it runs again: wake it
        // so it gets its SIGTERM now, as systemd does, instead of waiting out the grace.
        let _ = killpg(group, Signal::SIGCONT);
        let grace = self.inner.stop_grace(label);
        if tokio::time::timeout(grace, exited.wait_for(|done| *done))
            .await
            .is_err()
        {
            tracing::warn!(service = %label, ?grace, "child ignored SIGTERM; sending SIGKILL");
            let _ = killpg(group, Signal::SIGKILL);
            if tokio::time::timeout(Duration::from_secs(5), exited.wait_for(|done| *done))
                .await
                .is_err()
            {
                return Err(ProcessError::Timeout {
                    operation: Operation::Stop,
                    after: grace + Duration::from_secs(5),
                });
            }
        }
        Ok(StopOutcome::Stopped)
    }

    fn status_of(label: &ServiceLabel, svc: &Service) -> ServiceStatus {
        ServiceStatus {
            label: label.clone(),
            loaded: true,
            state: svc.state,
            pid: svc.pid,
            last_exit: svc.last_exit,
            restart_count: Some(svc.restarts),
            enabled: Some(svc.enabled),
            scope: None,
        }
    }
}

fn io_err(what: &str, e: std::io::Error) -> ProcessError {
    ProcessError::Backend {
        adapter: ADAPTER.into(),
        source: format!("{what}: {e}").into(),
    }
}

/// Runs the child as the configured account. Only root can switch; anyone may "switch" to
/// themselves.
fn apply_account(
    cmd: &mut tokio::process::Command,
    config: &ServiceConfig,
) -> Result<(), ProcessError> {
    let denied = |detail: String| ProcessError::PermissionDenied {
        operation: Operation::Enable,
        target: config.label.to_string(),
        detail,
    };
    let me = Uid::effective();
    if let Some(name) = &config.user {
        let user =
            User::from_name(name)
                .ok()
                .flatten()
                .ok_or_else(|| ProcessError::InvalidInput {
                    label: Some(config.label.to_string()),
                    detail: format!("user {name:?} does not exist on this machine"),
                })?;
        if user.uid != me {
            if !me.is_root() {
                return Err(denied(format!(
                    "running as {name:?} needs the agent to run as root"
                )));
            }
            cmd.uid(user.uid.as_raw());
            cmd.gid(user.gid.as_raw());
        }
    }
    if let Some(name) = &config.group {
        let group =
            Group::from_name(name)
                .ok()
                .flatten()
                .ok_or_else(|| ProcessError::InvalidInput {
                    label: Some(config.label.to_string()),
                    detail: format!("group {name:?} does not exist on this machine"),
                })?;
        if group.gid != Gid::effective() {
            if !me.is_root() {
                return Err(denied(format!(
                    "running with group {name:?} needs the agent to run as root"
                )));
            }
            cmd.gid(group.gid.as_raw());
        }
    }
    Ok(())
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn die_with_parent(cmd: &mut tokio::process::Command) {
    // SAFETY: the closure runs in the forked child before exec and only makes one
    // async-signal-safe syscall (prctl), touching no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_cmd: &mut tokio::process::Command) {
    // macOS has no parent-death signal; the agent stops children on shutdown and the process
    // group lets a LaunchDaemon's own teardown reach them.
}

#[async_trait]
impl ProcessManagerPort for EmbeddedSupervisor {
    fn capabilities(&self) -> Capabilities {
        Capabilities::basic(ADAPTER).pushing_events()
    }

    async fn list(&self, pattern: &LabelPattern) -> Result<Vec<ServiceStatus>, ProcessError> {
        Ok(self
            .inner
            .services()
            .iter()
            .filter(|(l, _)| pattern.matches(l.as_str()))
            .map(|(l, s)| Self::status_of(l, s))
            .collect())
    }

    async fn inspect(&self, label: &ServiceLabel) -> Result<ServiceStatus, ProcessError> {
        self.inner
            .services()
            .get(label)
            .map(|s| Self::status_of(label, s))
            .ok_or_else(|| ProcessError::not_found(label))
    }

    async fn restart(&self, label: &ServiceLabel) -> Result<RestartOutcome, ProcessError> {
        let outcome = match self.stop_child(label).await? {
            StopOutcome::Stopped => RestartOutcome::Restarted,
            StopOutcome::AlreadyStopped => RestartOutcome::Started,
        };
        if let Some(svc) = self.inner.services().get_mut(label) {
            svc.restarts += 1;
        }
        self.spawn(label)?;
        Ok(outcome)
    }

    async fn stop(&self, label: &ServiceLabel) -> Result<StopOutcome, ProcessError> {
        self.stop_child(label).await
    }

    async fn disable(&self, label: &ServiceLabel) -> Result<DisableOutcome, ProcessError> {
        let was_enabled = {
            let services = self.inner.services();
            let svc = services
                .get(label)
                .ok_or_else(|| ProcessError::not_found(label))?;
            svc.enabled
        };
        let stopped = self.stop_child(label).await?;
        if let Some(svc) = self.inner.services().get_mut(label) {
            svc.enabled = false;
        }
        self.set_disabled(label, true)?;
        Ok(if !was_enabled && stopped == StopOutcome::AlreadyStopped {
            DisableOutcome::AlreadyDisabled
        } else {
            DisableOutcome::Disabled
        })
    }

    async fn enable(&self, config: &ServiceConfig) -> Result<EnableOutcome, ProcessError> {
        config.validate()?;
        let label = config.label.clone();
        enum Plan {
            Install,
            Replace,
            Start,
            Nothing,
        }
        let plan = {
            let services = self.inner.services();
            match services.get(&label) {
                None => Plan::Install,
                Some(svc) if svc.config != *config => Plan::Replace,
                Some(svc) if svc.enabled && svc.state.is_running() => Plan::Nothing,
                Some(_) => Plan::Start,
            }
        };
        let outcome = match plan {
            Plan::Nothing => return Ok(EnableOutcome::Unchanged),
            Plan::Install => {
                self.inner.services().insert(
                    label.clone(),
                    Service {
                        config: config.clone(),
                        enabled: true,
                        state: RunState::Stopped,
                        pid: None,
                        last_exit: None,
                        restarts: 0,
                        generation: 0,
                        exited: None,
                    },
                );
                EnableOutcome::Installed
            }
            Plan::Replace => {
                self.stop_child(&label).await?;
                if let Some(svc) = self.inner.services().get_mut(&label) {
                    svc.config = config.clone();
                }
                EnableOutcome::Updated
            }
            Plan::Start => EnableOutcome::Started,
        };
        // An explicit enable lifts a persisted disable.
        if let Some(svc) = self.inner.services().get_mut(&label) {
            svc.enabled = true;
        }
        self.set_disabled(&label, false)?;
        let running = self
            .inner
            .services()
            .get(&label)
            .is_some_and(|s| s.state.is_running());
        if !running && (config.run_at_load || outcome != EnableOutcome::Installed) {
            self.spawn(&label)?;
        }
        Ok(outcome)
    }

    fn events(&self) -> Option<broadcast::Receiver<ServiceEvent>> {
        Some(self.inner.events.subscribe())
    }

    fn log_source(&self, config: &ServiceConfig) -> Option<process_manager::LogSource> {
        Some(process_manager::LogSource::Files(vec![
            self.log_file(&config.stdout_path, &config.label, "out"),
            self.log_file(&config.stderr_path, &config.label, "err"),
        ]))
    }
}

/// A read-only view of the services a running agent's embedded supervisor owns, read from the
/// state it publishes. `status` and `inspect` use it from another process; it can change
/// nothing (the running agent owns those processes), and a published pid that is gone is
/// reported as `Unknown` (the agent died without cleaning up).
#[derive(Debug, Clone)]
pub struct EmbeddedView {
    dir: PathBuf,
}

impl EmbeddedView {
    /// A view over the state folder of an embedded supervisor.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        EmbeddedView { dir: dir.into() }
    }

    fn read(&self) -> Result<Vec<ServiceStatus>, ProcessError> {
        match std::fs::read(self.dir.join(PUBLISHED)) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                ProcessError::backend(ADAPTER, format!("published state unreadable: {e}"))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(io_err("read the published state", e)),
        }
    }

    fn checked(mut status: ServiceStatus) -> ServiceStatus {
        if let Some(pid) = status.pid {
            let alive = nix::sys::signal::kill(Pid::from_raw(pid as i32), None).is_ok();
            if !alive {
                status.state = RunState::Unknown;
                status.pid = None;
            }
        }
        status
    }

    fn read_only(&self, operation: Operation) -> ProcessError {
        ProcessError::NotSupported {
            operation,
            adapter: "embedded (read-only view; the running agent owns these processes)".into(),
        }
    }
}

#[async_trait]
impl ProcessManagerPort for EmbeddedView {
    /// The same files the running supervisor writes (its options under the same folder).
    fn log_source(&self, config: &ServiceConfig) -> Option<process_manager::LogSource> {
        let logs = EmbeddedOptions::under(&self.dir).log_dir;
        let file = |configured: &Option<PathBuf>, stream: &str| {
            configured
                .clone()
                .unwrap_or_else(|| logs.join(format!("{}.{stream}.log", config.label)))
        };
        Some(process_manager::LogSource::Files(vec![
            file(&config.stdout_path, "out"),
            file(&config.stderr_path, "err"),
        ]))
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::basic(ADAPTER)
    }

    async fn list(&self, pattern: &LabelPattern) -> Result<Vec<ServiceStatus>, ProcessError> {
        Ok(self
            .read()?
            .into_iter()
            .filter(|s| pattern.matches(s.label.as_str()))
            .map(Self::checked)
            .collect())
    }

    async fn inspect(&self, label: &ServiceLabel) -> Result<ServiceStatus, ProcessError> {
        self.read()?
            .into_iter()
            .find(|s| &s.label == label)
            .map(Self::checked)
            .ok_or_else(|| ProcessError::NotFound {
                label: label.to_string(),
                scope: Some(format!(
                    "the embedded supervisor's published state in {}",
                    self.dir.display()
                )),
            })
    }

    async fn restart(&self, _label: &ServiceLabel) -> Result<RestartOutcome, ProcessError> {
        Err(self.read_only(Operation::Restart))
    }

    async fn stop(&self, label: &ServiceLabel) -> Result<StopOutcome, ProcessError> {
        // With no agent, its children are gone with it: a stop is then already done (and the
        // caller records it, so the next agent does not start the service).
        match self.inspect(label).await {
            Ok(status) if status.is_running() => Err(self.read_only(Operation::Stop)),
            Ok(_) | Err(ProcessError::NotFound { .. }) => Ok(StopOutcome::AlreadyStopped),
            Err(e) => Err(e),
        }
    }

    async fn disable(&self, _label: &ServiceLabel) -> Result<DisableOutcome, ProcessError> {
        Err(self.read_only(Operation::Disable))
    }

    async fn enable(&self, _config: &ServiceConfig) -> Result<EnableOutcome, ProcessError> {
        Err(self.read_only(Operation::Enable))
    }
}
