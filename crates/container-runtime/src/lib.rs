//! The container-runtime port: what the heal loop needs from the container substrate (a Colima
//! VM, a native Docker Engine, a remote engine), in platform-neutral types.
//!
//! - [`ContainerRuntimePort`]: substrate health, VM address, uptime, SSH config, bringing the
//!   substrate up, and the container-level operations a heal needs (inspect, restart, list).
//! - [`RuntimeError`]: one error enum by meaning, with [`RuntimeError::is_retryable`] and
//!   [`RuntimeError::kind`] (the [`ErrorKind`] the process port's errors share).
//! - [`MemoryRuntime`]: the in-memory adapter, also the production `null` substrate (it keeps
//!   nothing per call).
//! - [`WithDeadline`]: an outer deadline around any adapter, per operation.
//! - `testkit` (feature): the conformance suite every adapter runs
//!   ([`conformance_tests!`]), and the `Faulty`/`Recording` wrappers for tests.
//!
//! This crate links no Docker client and spawns nothing.

mod deadline;
mod memory;
#[cfg(feature = "testkit")]
pub mod testkit;

use std::collections::BTreeMap;
use std::fmt::{self, Debug};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use deadline::WithDeadline;
pub use memory::MemoryRuntime;
pub use port_kit::ErrorKind;

/// The port's operations, for errors and telemetry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuntimeOperation {
    /// `is_healthy`
    Health,
    /// `vm_ip`
    VmIp,
    /// `uptime_seconds`
    Uptime,
    /// `ssh_config`
    SshConfig,
    /// `ensure_running`
    EnsureRunning,
    /// `inspect_container`
    InspectContainer,
    /// `restart_container`
    RestartContainer,
    /// `list_containers`
    ListContainers,
}

impl fmt::Display for RuntimeOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RuntimeOperation::Health => "is_healthy",
            RuntimeOperation::VmIp => "vm_ip",
            RuntimeOperation::Uptime => "uptime_seconds",
            RuntimeOperation::SshConfig => "ssh_config",
            RuntimeOperation::EnsureRunning => "ensure_running",
            RuntimeOperation::InspectContainer => "inspect_container",
            RuntimeOperation::RestartContainer => "restart_container",
            RuntimeOperation::ListContainers => "list_containers",
        })
    }
}

/// Errors from a [`ContainerRuntimePort`]. The same variants, fields and kinds as the process
/// port's `ProcessError` where the meaning is the same (`NotFound` names a container or profile
/// rather than a service; `Parse` is the runtime's own).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// No such container (or profile).
    #[error("{what} not found")]
    NotFound {
        /// What was asked for.
        what: String,
    },
    /// The caller may not reach the runtime (socket permissions).
    #[error("permission denied for {operation} on {target}: {detail}")]
    PermissionDenied {
        /// What was attempted.
        operation: RuntimeOperation,
        /// On what (a container, a socket).
        target: String,
        /// What the runtime said.
        detail: String,
    },
    /// The runtime cannot be reached: binary missing, daemon or VM down, socket absent.
    #[error("{adapter} unavailable: {detail}")]
    Unavailable {
        /// The adapter.
        adapter: String,
        /// What was looked for or what failed.
        detail: String,
    },
    /// The call did not finish within its deadline.
    #[error("{operation} timed out after {after:?}")]
    Timeout {
        /// What was attempted.
        operation: RuntimeOperation,
        /// The deadline that passed.
        after: Duration,
    },
    /// This adapter does not do this.
    #[error("{operation} is not supported by the {adapter} adapter")]
    NotSupported {
        /// What was attempted.
        operation: RuntimeOperation,
        /// The adapter.
        adapter: String,
    },
    /// Bad input: an endpoint, a container name, a label filter, a profile.
    #[error("invalid input{}: {detail}", for_label(.label))]
    InvalidInput {
        /// The container (or service) it concerns, when there is one.
        label: Option<String>,
        /// What was wrong.
        detail: String,
    },
    /// The runtime's answer could not be understood (malformed JSON, unexpected fields).
    #[error("{adapter}: could not parse {what}: {detail}")]
    Parse {
        /// The adapter.
        adapter: String,
        /// What was being parsed (e.g. `colima status --json`).
        what: String,
        /// What was wrong.
        detail: String,
    },
    /// The runtime refused or failed for another reason.
    #[error("{adapter} failed: {source}")]
    Backend {
        /// The adapter.
        adapter: String,
        /// The adapter's own error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

fn for_label(label: &Option<String>) -> String {
    label
        .as_ref()
        .map(|l| format!(" for {l:?}"))
        .unwrap_or_default()
}

impl RuntimeError {
    /// An `InvalidInput` about no container in particular.
    pub fn invalid_input(detail: impl Into<String>) -> Self {
        RuntimeError::InvalidInput {
            label: None,
            detail: detail.into(),
        }
    }

    /// Whether trying again later can help (deadline passed, runtime down, transient failure).
    pub fn is_retryable(&self) -> bool {
        self.kind().is_retryable()
    }

    /// What the error means, for events and telemetry (stable names: `timeout`,
    /// `not-found`...), shared with the process port's errors.
    pub fn kind(&self) -> ErrorKind {
        match self {
            RuntimeError::NotFound { .. } => ErrorKind::NotFound,
            RuntimeError::PermissionDenied { .. } => ErrorKind::PermissionDenied,
            RuntimeError::Unavailable { .. } => ErrorKind::Unavailable,
            RuntimeError::Timeout { .. } => ErrorKind::Timeout,
            RuntimeError::NotSupported { .. } => ErrorKind::NotSupported,
            RuntimeError::InvalidInput { .. } => ErrorKind::InvalidInput,
            RuntimeError::Parse { .. } => ErrorKind::Parse,
            RuntimeError::Backend { .. } => ErrorKind::Backend,
        }
    }
}

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

/// A container's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerStatus {
    /// Its name (without a leading `/`).
    pub name: String,
    /// Its id.
    pub id: String,
    /// Running (Docker's `State.Running`).
    pub running: bool,
    /// Docker's `State.Status` (`running`, `exited`, `restarting`, ...).
    pub status: String,
    /// Health check state.
    pub health: ContainerHealth,
    /// Restarts counted by the engine.
    pub restart_count: u64,
    /// The last exit code, when it has exited.
    pub exit_code: Option<i64>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

/// What `ensure_running` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EnsureRunningOutcome {
    /// It was healthy; nothing was done.
    AlreadyRunning,
    /// It was down and was started.
    Started,
}

/// What `restart_container` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ContainerRestartOutcome {
    /// It was running and was restarted.
    Restarted,
    /// It was stopped and was started.
    Started,
}

/// A container substrate: a Colima VM, a Docker Engine (local or remote), or the in-memory one.
///
/// Every call has a deadline; a hung socket or CLI is a [`RuntimeError::Timeout`].
#[async_trait]
pub trait ContainerRuntimePort: Send + Sync + Debug + 'static {
    /// The adapter's name for telemetry (`colima`, `docker`, `memory`).
    fn adapter(&self) -> &str;

    /// Whether the substrate answers. A runtime that is down is `Ok(false)`, not an error;
    /// errors are for when health could not be decided (e.g. permission denied).
    async fn is_healthy(&self) -> Result<bool, RuntimeError>;

    /// The VM's address, `None` where there is no VM (or it has no routable address).
    async fn vm_ip(&self) -> Result<Option<IpAddr>, RuntimeError>;

    /// Seconds since the substrate last started.
    async fn uptime_seconds(&self) -> Result<u64, RuntimeError>;

    /// How to SSH into the VM, `None` where there is no VM.
    async fn ssh_config(&self) -> Result<Option<SshConfig>, RuntimeError>;

    /// Brings the substrate up if it is down (`colima start`). Heal step 4.
    async fn ensure_running(&self) -> Result<EnsureRunningOutcome, RuntimeError> {
        Err(RuntimeError::NotSupported {
            operation: RuntimeOperation::EnsureRunning,
            adapter: self.adapter().to_string(),
        })
    }

    /// One container's state.
    async fn inspect_container(&self, name: &str) -> Result<ContainerStatus, RuntimeError> {
        let _ = name;
        Err(RuntimeError::NotSupported {
            operation: RuntimeOperation::InspectContainer,
            adapter: self.adapter().to_string(),
        })
    }

    /// Restarts one container (Docker never restarts an unhealthy one on its own).
    async fn restart_container(&self, name: &str) -> Result<ContainerRestartOutcome, RuntimeError> {
        let _ = name;
        Err(RuntimeError::NotSupported {
            operation: RuntimeOperation::RestartContainer,
            adapter: self.adapter().to_string(),
        })
    }

    /// Containers, all or those carrying `label` (`key` or `key=value`).
    async fn list_containers(
        &self,
        label: Option<&str>,
    ) -> Result<Vec<ContainerStatus>, RuntimeError> {
        let _ = label;
        Err(RuntimeError::NotSupported {
            operation: RuntimeOperation::ListContainers,
            adapter: self.adapter().to_string(),
        })
    }
}

/// Whether a container's labels satisfy a Docker-style filter: `key` (present) or `key=value`.
pub fn label_matches(labels: &BTreeMap<String, String>, filter: &str) -> bool {
    match filter.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|have| have == v),
        None => labels.contains_key(filter),
    }
}

/// A shared runtime, as the heal loop holds it.
pub type SharedContainerRuntime = Arc<dyn ContainerRuntimePort>;

// Compile-time guard: the trait must stay object-safe.
const _: Option<&dyn ContainerRuntimePort> = None;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_by_meaning() {
        assert!(RuntimeError::Timeout {
            operation: RuntimeOperation::Health,
            after: Duration::from_secs(1)
        }
        .is_retryable());
        assert!(!RuntimeError::NotFound {
            what: "redis".into()
        }
        .is_retryable());
        assert!(!RuntimeError::Parse {
            adapter: "colima".into(),
            what: "status".into(),
            detail: "eof".into()
        }
        .is_retryable());
    }
}
