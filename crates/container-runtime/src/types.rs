//! The plain data the port speaks in: containers, their health, Compose services, SSH configs
//! and what an operation did.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// How to reach the VM over SSH (`colima ssh-config`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshConfig {
    /// The `Host` alias.
    pub host: String,
    /// `Hostname`.
    pub hostname: String,
    /// `Port`.
    pub port: u16,
    /// `User`.
    pub user: Option<String>,
    /// `IdentityFile` (first one).
    pub identity_file: Option<PathBuf>,
    /// Every `Key value` line as given, for options not named above.
    pub options: BTreeMap<String, String>,
}

/// A container's health check state (Docker's `State.Health.Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ContainerHealth {
    /// The health check passes.
    Healthy,
    /// The health check fails. Docker never restarts a container for this.
    Unhealthy,
    /// Within the start period.
    Starting,
    /// No health check defined.
    None,
}

/// The label Compose puts on a container for its project.
pub const COMPOSE_PROJECT_LABEL: &str = "com.docker.compose.project";
/// The label Compose puts on a container for its service.
pub const COMPOSE_SERVICE_LABEL: &str = "com.docker.compose.service";

/// A container's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerStatus {
    /// Its name (without a leading `/`).
    pub name: String,
    /// Its id.
    pub id: String,
    /// The image it was created from, as configured (`redis:7`).
    #[serde(default)]
    pub image: String,
    /// Running (Docker's `State.Running`; also true while Docker restarts it in a loop).
    pub running: bool,
    /// Docker's `State.Status` (`running`, `exited`, `restarting`, ...).
    pub status: String,
    /// Health check state.
    pub health: ContainerHealth,
    /// Restarts made by the engine's own restart policy (Docker's `RestartCount`); a restart or
    /// start asked for through the port resets it to 0, as Docker does.
    pub restart_count: u64,
    /// The last exit code, when it has exited.
    pub exit_code: Option<i64>,
    /// Seconds since it last started (Docker's `State.StartedAt`), while it runs.
    #[serde(default)]
    pub uptime_seconds: Option<u64>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

impl ContainerStatus {
    /// Docker is restarting it under its restart policy (`State.Restarting`): a crash loop, which
    /// is a failure even though `running` may say true.
    pub fn is_restarting(&self) -> bool {
        self.status == "restarting"
    }

    /// Running, not in a restart loop, and not failing its health check.
    pub fn is_up(&self) -> bool {
        self.running
            && !self.is_restarting()
            && matches!(
                self.health,
                ContainerHealth::Healthy | ContainerHealth::None
            )
    }

    /// The Compose service it belongs to, from its labels.
    pub fn compose_service(&self) -> Option<&str> {
        self.labels.get(COMPOSE_SERVICE_LABEL).map(String::as_str)
    }
}

/// A service of a Compose project: where its container comes from and how it is recreated.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ComposeService {
    /// The project name (`-p`; the `com.docker.compose.project` label).
    pub project: String,
    /// The Compose file (`-f`).
    pub file: PathBuf,
    /// The service (the `com.docker.compose.service` label).
    pub service: String,
}

impl ComposeService {
    /// The label filter (`key=value`) that selects the project's containers.
    pub fn project_filter(&self) -> String {
        format!("{COMPOSE_PROJECT_LABEL}={}", self.project)
    }

    /// Whether `c` is this service's container, by its Compose labels.
    pub fn owns(&self, c: &ContainerStatus) -> bool {
        c.labels.get(COMPOSE_PROJECT_LABEL) == Some(&self.project)
            && c.labels.get(COMPOSE_SERVICE_LABEL) == Some(&self.service)
    }
}

impl std::fmt::Display for ComposeService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "compose service {}/{}", self.project, self.service)
    }
}

/// How a service names its container: by a fixed name, or as a Compose service found by its
/// labels (a Compose container's name is Compose's choice, and changes when it is recreated).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ContainerRef {
    /// A container by name or id.
    Named(String),
    /// A Compose service's container.
    Compose(ComposeService),
}

impl std::fmt::Display for ContainerRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ContainerRef::Named(n) => write!(f, "container {n}"),
            ContainerRef::Compose(c) => c.fmt(f),
        }
    }
}

/// What `ensure_running` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum EnsureRunningOutcome {
    /// It was healthy; nothing was done.
    AlreadyRunning,
    /// It was down and was started.
    Started,
}

/// What `restart_container` (or `start_container`) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum ContainerRestartOutcome {
    /// It was running and was restarted.
    Restarted,
    /// It was stopped and was started.
    Started,
    /// It was already running; nothing was done (`start_container` only).
    AlreadyRunning,
    /// It was created again from its definition (a Compose service).
    Recreated,
}
