//! `ProcessError`: what can go wrong through the port, by meaning.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use port_kit::ErrorKind;

use crate::label::LabelError;

/// The port's operations, for errors and telemetry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Operation {
    /// `list`
    List,
    /// `inspect`
    Inspect,
    /// `restart`
    Restart,
    /// `stop`
    Stop,
    /// `disable`
    Disable,
    /// `enable`
    Enable,
}

impl Operation {
    /// Every operation.
    pub const ALL: [Operation; 6] = [
        Operation::List,
        Operation::Inspect,
        Operation::Restart,
        Operation::Stop,
        Operation::Disable,
        Operation::Enable,
    ];
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::List => "list",
            Operation::Inspect => "inspect",
            Operation::Restart => "restart",
            Operation::Stop => "stop",
            Operation::Disable => "disable",
            Operation::Enable => "enable",
        })
    }
}

/// A boxed source error from an adapter's own detailed error type.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors from a [`crate::ProcessManagerPort`]. Adapters keep their detailed errors private and
/// convert to these.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProcessError {
    /// The manager has no such service.
    #[error("service {label:?} not found{}", in_where(.scope))]
    NotFound {
        /// The label asked for.
        label: String,
        /// Where it was looked for (e.g. `system, gui/501`), when the adapter knows.
        scope: Option<String>,
    },
    /// The caller may not do this (e.g. the `system` domain without root).
    #[error("permission denied for {operation} on {target}: {detail}")]
    PermissionDenied {
        /// What was attempted.
        operation: Operation,
        /// On what (a label or a domain).
        target: String,
        /// What the manager said, and a hint.
        detail: String,
    },
    /// The manager cannot be reached: binary missing, daemon down, socket absent.
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
        operation: Operation,
        /// The deadline that passed.
        after: Duration,
    },
    /// This adapter does not do this.
    #[error("{operation} is not supported by the {adapter} adapter")]
    NotSupported {
        /// What was attempted.
        operation: Operation,
        /// The adapter.
        adapter: String,
    },
    /// A label failed validation.
    #[error(transparent)]
    InvalidLabel(#[from] LabelError),
    /// Bad input: a config field, a pattern.
    #[error("invalid input{}: {detail}", for_label(.label))]
    InvalidInput {
        /// The service it concerns, when there is one.
        label: Option<String>,
        /// What was wrong.
        detail: String,
    },
    /// The manager refused or failed for another reason.
    #[error("{adapter} failed: {source}")]
    Backend {
        /// The adapter.
        adapter: String,
        /// The adapter's own error.
        #[source]
        source: BoxError,
    },
}

fn in_where(scope: &Option<String>) -> String {
    scope
        .as_ref()
        .map(|s| format!(" in {s}"))
        .unwrap_or_default()
}

fn for_label(label: &Option<String>) -> String {
    label
        .as_ref()
        .map(|l| format!(" for {l:?}"))
        .unwrap_or_default()
}

impl ProcessError {
    /// Whether trying the same call again later can help: a deadline passed, the manager was
    /// down, or it failed for a reason of its own. Bad input, missing services, refusals and
    /// unsupported operations will answer the same again.
    pub fn is_retryable(&self) -> bool {
        self.kind().is_retryable()
    }

    /// A `NotFound` for a label.
    pub fn not_found(label: impl fmt::Display) -> Self {
        ProcessError::NotFound {
            label: label.to_string(),
            scope: None,
        }
    }

    /// A `Backend` error from a message.
    pub fn backend(adapter: impl Into<String>, message: impl Into<String>) -> Self {
        ProcessError::Backend {
            adapter: adapter.into(),
            source: message.into().into(),
        }
    }

    /// What the error means, for events and telemetry (stable names: `timeout`,
    /// `not-found`...), shared with the runtime port's errors.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ProcessError::NotFound { .. } => ErrorKind::NotFound,
            ProcessError::PermissionDenied { .. } => ErrorKind::PermissionDenied,
            ProcessError::Unavailable { .. } => ErrorKind::Unavailable,
            ProcessError::Timeout { .. } => ErrorKind::Timeout,
            ProcessError::NotSupported { .. } => ErrorKind::NotSupported,
            ProcessError::InvalidLabel(_) => ErrorKind::InvalidLabel,
            ProcessError::InvalidInput { .. } => ErrorKind::InvalidInput,
            ProcessError::Backend { .. } => ErrorKind::Backend,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_by_meaning() {
        let t = ProcessError::Timeout {
            operation: Operation::Restart,
            after: Duration::from_secs(5),
        };
        assert!(t.is_retryable());
        assert!(ProcessError::backend("x", "boom").is_retryable());
        assert!(!ProcessError::not_found("redis").is_retryable());
        let ns = ProcessError::NotSupported {
            operation: Operation::Disable,
            adapter: "memory".into(),
        };
        assert!(!ns.is_retryable());
        assert_eq!(
            ns.to_string(),
            "disable is not supported by the memory adapter"
        );
    }

    #[test]
    fn messages_name_the_target() {
        let e = ProcessError::NotFound {
            label: "redis".into(),
            scope: Some("system, gui/501".into()),
        };
        assert_eq!(
            e.to_string(),
            "service \"redis\" not found in system, gui/501"
        );
    }
}
