//! What a manager says about a service, what each operation did, and what the manager can do.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::ServiceScope;
use crate::label::ServiceLabel;

/// The run state of a service as its manager sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum RunState {
    /// A process is running.
    Running,
    /// Being started (systemd `activating`, launchd `spawn scheduled` with no pid yet).
    Starting,
    /// Exited, and the manager will respawn it on its own (systemd `auto-restart`, launchd
    /// throttled respawn). A heal loop observes this; it does not restart on top of it.
    SupervisorRestarting,
    /// Not running, and nothing will start it until asked.
    Stopped,
    /// The manager gave up (systemd start limit hit, `failed`). Needs a reset before a restart.
    Failed,
    /// The manager reported something this adapter does not understand.
    Unknown,
}

impl RunState {
    /// Whether a process is up.
    pub fn is_running(self) -> bool {
        matches!(self, RunState::Running)
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RunState::Running => "running",
            RunState::Starting => "starting",
            RunState::SupervisorRestarting => "supervisor-restarting",
            RunState::Stopped => "stopped",
            RunState::Failed => "failed",
            RunState::Unknown => "unknown",
        })
    }
}

/// How the last process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum ExitStatus {
    /// Exited with this code.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
}

impl ExitStatus {
    /// Exit code 0.
    pub fn success(self) -> bool {
        matches!(self, ExitStatus::Code(0))
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitStatus::Code(c) => write!(f, "exit {c}"),
            ExitStatus::Signal(s) => write!(f, "signal {s}"),
        }
    }
}

/// A service's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ServiceStatus {
    /// Which service.
    pub label: ServiceLabel,
    /// The manager knows the definition (launchd: bootstrapped; systemd: `LoadState=loaded`).
    pub loaded: bool,
    /// The run state.
    pub state: RunState,
    /// The main process id, when running.
    pub pid: Option<u32>,
    /// How the last process ended, when the manager remembers.
    pub last_exit: Option<ExitStatus>,
    /// Restarts counted by the manager (systemd `NRestarts`, launchd `runs - 1`), where it counts.
    pub restart_count: Option<u64>,
    /// Whether it is allowed to start (not disabled). `None` where the manager does not say.
    pub enabled: Option<bool>,
    /// The domain it was found in, where the manager has domains.
    pub scope: Option<ServiceScope>,
}

impl ServiceStatus {
    /// A loaded, stopped service with nothing else known; adapters fill in the rest.
    pub fn new(label: ServiceLabel) -> Self {
        ServiceStatus {
            label,
            loaded: true,
            state: RunState::Stopped,
            pid: None,
            last_exit: None,
            restart_count: None,
            enabled: None,
            scope: None,
        }
    }

    /// Whether a process is up.
    pub fn is_running(&self) -> bool {
        self.state.is_running()
    }
}

/// What `restart` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum RestartOutcome {
    /// It was running and was restarted.
    Restarted,
    /// It was not running and was started.
    Started,
    /// It was `failed` (start limit); the failure was cleared and it was started.
    ResetAndStarted,
}

/// What `stop` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopOutcome {
    /// It was running and is now stopped.
    Stopped,
    /// It was not running; nothing was done.
    AlreadyStopped,
}

/// What `disable` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DisableOutcome {
    /// It was stopped (if running) and will not start again, across reboots.
    Disabled,
    /// It was already disabled and stopped; nothing was done.
    AlreadyDisabled,
}

/// What `enable` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum EnableOutcome {
    /// No definition existed; it was installed and started.
    Installed,
    /// A different definition existed; it was replaced and the service restarted.
    Updated,
    /// The same definition was installed but the service was disabled or not running; it was
    /// enabled and started.
    Started,
    /// The same definition was installed, enabled and running; nothing was done.
    Unchanged,
}

/// What a manager does on its own that the heal loop must not fight, and what it tells.
/// Every field is read by the heal loop and checked by the conformance suite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// The adapter's name for telemetry (`launchd`, `systemd`, `embedded`, `memory`); never
    /// empty. Events carry it as `adapter_type`.
    pub adapter: String,
    /// The least time the manager waits between respawns (launchd's 10 s `ThrottleInterval`).
    /// A restart attempted inside it is throttled, not failed, so the heal loop waits at least
    /// this long between its own restarts.
    #[serde(with = "crate::serde_duration::option")]
    pub respawn_throttle: Option<Duration>,
    /// `events()` yields service events (and `Some` exactly then); the heal loop wakes on them
    /// instead of waiting for its next round.
    pub pushes_events: bool,
}

impl Capabilities {
    /// Capabilities of a manager that does nothing on its own and pushes nothing.
    pub fn basic(adapter: impl Into<String>) -> Self {
        Capabilities {
            adapter: adapter.into(),
            respawn_throttle: None,
            pushes_events: false,
        }
    }

    /// With a respawn throttle.
    pub fn with_respawn_throttle(mut self, throttle: Duration) -> Self {
        self.respawn_throttle = Some(throttle);
        self
    }

    /// Pushing events.
    pub fn pushing_events(mut self) -> Self {
        self.pushes_events = true;
        self
    }
}

/// Something a manager pushed about a service, where it can.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServiceEvent {
    /// The main process exited.
    Exited {
        /// Which service.
        label: ServiceLabel,
        /// How it ended.
        status: ExitStatus,
    },
    /// The run state changed.
    StateChanged {
        /// Which service.
        label: ServiceLabel,
        /// The new state.
        state: RunState,
    },
}

impl ServiceEvent {
    /// The service it is about.
    pub fn label(&self) -> &ServiceLabel {
        match self {
            ServiceEvent::Exited { label, .. } | ServiceEvent::StateChanged { label, .. } => label,
        }
    }
}

/// Where a service's output can be read (`joelclaw-node logs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogSource {
    /// Plain files the service's output is appended to (stdout's first).
    Files(Vec<std::path::PathBuf>),
    /// A program that prints the service's log (`journalctl -u UNIT`, or `tail` of files in
    /// the manager's own namespace); the reader appends `lines_flag N` and, to follow,
    /// `follow_flag`.
    Command {
        /// The program and its arguments.
        argv: Vec<std::ffi::OsString>,
        /// Its flag for "the last N lines" (`--lines`, `-n`).
        lines_flag: &'static str,
        /// Its flag for "and keep printing" (`--follow`, `-F`).
        follow_flag: &'static str,
    },
}
