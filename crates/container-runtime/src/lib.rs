//! The container-runtime port: what the heal loop needs from the container substrate (a Colima
//! VM, a native Docker Engine, a remote engine), in platform-neutral types.
//!
//! The port has two halves, split where the real systems split:
//!
//! - [`SubstratePort`]: the thing that runs an engine (a Colima VM, a Docker daemon under
//!   systemd, a remote engine): health, VM address, uptime, SSH config, bringing it up.
//! - [`EnginePort`]: the containers: list, inspect (state, health, restart count, a crash loop
//!   under Docker's restart policy), start, restart, and recreate a Compose service from its
//!   file; a Compose service's container is found by its labels ([`ContainerRef`]).
//! - [`ContainerRuntimePort`]: both at once, what the heal loop holds; [`SplitRuntime`] pairs a
//!   substrate with the engine it runs.
//! - [`RuntimeError`]: one error enum by meaning, with [`RuntimeError::is_retryable`] and
//!   [`RuntimeError::kind`] (the [`ErrorKind`] the process port's errors share).
//! - [`MemoryRuntime`]: the in-memory adapter, also the production `null` substrate (it keeps
//!   nothing per call).
//! - [`WithDeadline`]: an outer deadline around any adapter, per operation.
//! - `testkit` (feature): a conformance suite per half ([`substrate_conformance_tests!`],
//!   [`engine_conformance_tests!`]; [`conformance_tests!`] runs both), and the `Faulty`/`Recording` wrappers for tests.
//!
//! This crate links no Docker client and spawns nothing.

mod deadline;
mod memory;
mod port;
#[cfg(feature = "testkit")]
pub mod testkit;
mod types;

// For the conformance macro's expansion in other crates.
#[cfg(feature = "testkit")]
#[doc(hidden)]
pub use port_kit as __port_kit;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use deadline::WithDeadline;
pub use memory::MemoryRuntime;
pub use port::{ContainerRuntimePort, EnginePort, RuntimeAdapter, SplitRuntime, SubstratePort};
pub use port_kit::ErrorKind;
pub use types::{
    ComposeService, ContainerHealth, ContainerRef, ContainerRestartOutcome, ContainerStatus,
    EnsureRunningOutcome, SshConfig, COMPOSE_PROJECT_LABEL, COMPOSE_SERVICE_LABEL,
};

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
    /// `start_container`
    StartContainer,
    /// `recreate` (a Compose service)
    Recreate,
    /// `stop_container`
    StopContainer,
    /// `container_logs`
    ContainerLogs,
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
            RuntimeOperation::StartContainer => "start_container",
            RuntimeOperation::Recreate => "recreate",
            RuntimeOperation::StopContainer => "stop_container",
            RuntimeOperation::ContainerLogs => "container_logs",
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

/// Whether a container's labels satisfy a Docker-style filter: `key` (present) or `key=value`.
pub fn label_matches(labels: &BTreeMap<String, String>, filter: &str) -> bool {
    match filter.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|have| have == v),
        None => labels.contains_key(filter),
    }
}

/// A shared runtime, as the heal loop holds it.
pub type SharedContainerRuntime = Arc<dyn ContainerRuntimePort>;
/// A shared substrate.
pub type SharedSubstrate = Arc<dyn SubstratePort>;
/// A shared engine.
pub type SharedEngine = Arc<dyn EnginePort>;

// Compile-time guard: the traits must stay object-safe.
const _: Option<&dyn ContainerRuntimePort> = None;
const _: Option<&dyn SubstratePort> = None;
const _: Option<&dyn EnginePort> = None;

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
