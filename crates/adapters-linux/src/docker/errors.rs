//! How the Docker Engine's answers and bollard's errors map to the port's errors.

use std::time::Duration;

use bollard::errors::Error as BollardError;
use container_runtime::{RuntimeError, RuntimeOperation};

use super::ADAPTER;

/// The adapter's own detailed errors, kept private and boxed into [`RuntimeError::Backend`].
#[derive(Debug, thiserror::Error)]
pub(super) enum DockerError {
    #[error("conflict (409) on {what}: {message}")]
    Conflict { what: String, message: String },
    #[error("engine answered {status} on {what}: {message}")]
    Server {
        what: String,
        status: u16,
        message: String,
    },
    #[error("{0}")]
    Client(#[source] BollardError),
}

fn io_error_in<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a std::io::Error> {
    let mut current: Option<&'a (dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = current {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        current = err.source();
    }
    None
}

/// The error and each of its causes not already in its text: hyper's "client error (Connect)"
/// alone does not say that ssh could not reach the host, or why.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !more.is_empty() && !text.contains(&more) {
            text.push_str(": ");
            text.push_str(more.trim());
        }
        cause = c.source();
    }
    text
}

pub(super) fn convert(operation: RuntimeOperation, what: &str, e: BollardError) -> RuntimeError {
    match e {
        BollardError::DockerResponseServerError {
            status_code: 404, ..
        } => RuntimeError::NotFound { what: what.into() },
        BollardError::DockerResponseServerError {
            status_code: 409,
            message,
        } => RuntimeError::Backend {
            adapter: ADAPTER.into(),
            source: Box::new(DockerError::Conflict {
                what: what.into(),
                message,
            }),
        },
        BollardError::DockerResponseServerError {
            status_code: 401 | 403,
            message,
        } => RuntimeError::PermissionDenied {
            operation,
            target: what.into(),
            detail: message,
        },
        BollardError::DockerResponseServerError {
            status_code,
            message,
        } => RuntimeError::Backend {
            adapter: ADAPTER.into(),
            source: Box::new(DockerError::Server {
                what: what.into(),
                status: status_code,
                message,
            }),
        },
        BollardError::RequestTimeoutError => RuntimeError::Timeout {
            operation,
            after: Duration::ZERO,
        },
        BollardError::SocketNotFoundError(path) => RuntimeError::Unavailable {
            adapter: ADAPTER.into(),
            detail: format!("no socket at {path}"),
        },
        // `IOError` is `#[error(transparent)]`: its `source()` skips the io::Error itself.
        BollardError::IOError { err } => match err.kind() {
            std::io::ErrorKind::PermissionDenied => RuntimeError::PermissionDenied {
                operation,
                target: what.into(),
                detail: err.to_string(),
            },
            _ => RuntimeError::Unavailable {
                adapter: ADAPTER.into(),
                detail: format!("{what}: {err}"),
            },
        },
        other => match io_error_in(&other).map(std::io::Error::kind) {
            Some(std::io::ErrorKind::PermissionDenied) => RuntimeError::PermissionDenied {
                operation,
                target: what.into(),
                detail: other.to_string(),
            },
            Some(_) => RuntimeError::Unavailable {
                adapter: ADAPTER.into(),
                detail: format!("{what}: {}", with_causes(&other)),
            },
            None => match other {
                BollardError::HyperLegacyError { .. } | BollardError::HyperResponseError { .. } => {
                    RuntimeError::Unavailable {
                        adapter: ADAPTER.into(),
                        detail: format!("{what}: {}", with_causes(&other)),
                    }
                }
                other => RuntimeError::Backend {
                    adapter: ADAPTER.into(),
                    source: Box::new(DockerError::Client(other)),
                },
            },
        },
    }
}
