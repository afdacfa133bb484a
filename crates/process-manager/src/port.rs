//! The port trait, its forwarding through `Arc`/`Box`, and the deadline wrapper that any
//! adapter can be put behind.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::config::ServiceConfig;
use crate::error::{Operation, ProcessError};
use crate::label::{LabelPattern, ServiceLabel};
use crate::status::{
    Capabilities, DisableOutcome, EnableOutcome, LogSource, RestartOutcome, ServiceEvent,
    ServiceStatus, StopOutcome,
};

/// A process manager: launchd, systemd, the embedded supervisor, or the in-memory adapter.
///
/// Every operation is idempotent and says what it did. Unknown labels are
/// [`ProcessError::NotFound`] (except `enable`, which installs). Implementations put a deadline
/// on every external call and report a passed deadline as [`ProcessError::Timeout`].
#[async_trait]
pub trait ProcessManagerPort: Send + Sync + Debug + 'static {
    /// What this manager can do.
    fn capabilities(&self) -> Capabilities;

    /// Managed services whose label matches `pattern`.
    async fn list(&self, pattern: &LabelPattern) -> Result<Vec<ServiceStatus>, ProcessError>;

    /// One service's state.
    async fn inspect(&self, label: &ServiceLabel) -> Result<ServiceStatus, ProcessError>;

    /// Many services' states, in the order asked, each as [`Self::inspect`] would give it. The
    /// outer error is the manager failing the whole batch (no answer, unreachable). A manager
    /// that reads many states in one call overrides this; by default each is asked at once.
    async fn inspect_many(
        &self,
        labels: &[ServiceLabel],
    ) -> Result<Vec<Result<ServiceStatus, ProcessError>>, ProcessError> {
        Ok(futures::future::join_all(labels.iter().map(|l| self.inspect(l))).await)
    }

    /// Restarts a service (starts it if stopped; clears a start-limit failure first).
    async fn restart(&self, label: &ServiceLabel) -> Result<RestartOutcome, ProcessError>;

    /// Stops a service so that the manager does not bring it back until asked.
    async fn stop(&self, label: &ServiceLabel) -> Result<StopOutcome, ProcessError>;

    /// Stops a service and keeps it from starting again, across reboots.
    async fn disable(&self, label: &ServiceLabel) -> Result<DisableOutcome, ProcessError>;

    /// Installs `config` as the service's definition (if it differs), enables and starts it.
    async fn enable(&self, config: &ServiceConfig) -> Result<EnableOutcome, ProcessError>;

    /// Pushed service events, where the manager has them (exactly when
    /// [`Capabilities::pushes_events`]). `None` means poll with `inspect`.
    fn events(&self) -> Option<broadcast::Receiver<ServiceEvent>> {
        None
    }

    /// Where the service defined by `config` writes its output, for `logs` (no call is made).
    /// `None`: this manager keeps no log a caller can read.
    fn log_source(&self, config: &ServiceConfig) -> Option<LogSource> {
        let _ = config;
        None
    }
}

/// A shared process manager, as the heal loop holds it.
pub type SharedProcessManager = Arc<dyn ProcessManagerPort>;

// Compile-time guard: the trait must stay object-safe.
const _: Option<&dyn ProcessManagerPort> = None;

/// Forwards every operation to the pointee, so wrappers and tests take an adapter by value,
/// by `Arc` or by `Box` alike.
macro_rules! forward_through {
    ($($pointer:ident),*) => {$(
        #[async_trait]
        impl<P: ProcessManagerPort + ?Sized> ProcessManagerPort for $pointer<P> {
            fn capabilities(&self) -> Capabilities {
                (**self).capabilities()
            }
            async fn list(&self, pattern: &LabelPattern) -> Result<Vec<ServiceStatus>, ProcessError> {
                (**self).list(pattern).await
            }
            async fn inspect(&self, label: &ServiceLabel) -> Result<ServiceStatus, ProcessError> {
                (**self).inspect(label).await
            }
            async fn inspect_many(
                &self,
                labels: &[ServiceLabel],
            ) -> Result<Vec<Result<ServiceStatus, ProcessError>>, ProcessError> {
                (**self).inspect_many(labels).await
            }
            async fn restart(&self, label: &ServiceLabel) -> Result<RestartOutcome, ProcessError> {
                (**self).restart(label).await
            }
            async fn stop(&self, label: &ServiceLabel) -> Result<StopOutcome, ProcessError> {
                (**self).stop(label).await
            }
            async fn disable(&self, label: &ServiceLabel) -> Result<DisableOutcome, ProcessError> {
                (**self).disable(label).await
            }
            async fn enable(&self, config: &ServiceConfig) -> Result<EnableOutcome, ProcessError> {
                (**self).enable(config).await
            }
            fn events(&self) -> Option<broadcast::Receiver<ServiceEvent>> {
                (**self).events()
            }
            fn log_source(&self, config: &ServiceConfig) -> Option<LogSource> {
                (**self).log_source(config)
            }
        }
    )*};
}

forward_through!(Arc, Box);

/// Any process manager behind an outer deadline per operation (see [`port_kit::WithDeadline`]):
/// a call that does not finish in time is [`ProcessError::Timeout`].
pub type WithDeadline<P> = port_kit::WithDeadline<P, Operation>;

fn timeout(operation: Operation, after: std::time::Duration) -> ProcessError {
    ProcessError::Timeout { operation, after }
}

#[async_trait]
impl<P: ProcessManagerPort> ProcessManagerPort for WithDeadline<P> {
    fn capabilities(&self) -> Capabilities {
        self.inner().capabilities()
    }
    async fn list(&self, pattern: &LabelPattern) -> Result<Vec<ServiceStatus>, ProcessError> {
        self.bound(Operation::List, self.inner().list(pattern), timeout)
            .await
    }
    async fn inspect(&self, label: &ServiceLabel) -> Result<ServiceStatus, ProcessError> {
        self.bound(Operation::Inspect, self.inner().inspect(label), timeout)
            .await
    }
    async fn inspect_many(
        &self,
        labels: &[ServiceLabel],
    ) -> Result<Vec<Result<ServiceStatus, ProcessError>>, ProcessError> {
        self.bound(
            Operation::Inspect,
            self.inner().inspect_many(labels),
            timeout,
        )
        .await
    }
    async fn restart(&self, label: &ServiceLabel) -> Result<RestartOutcome, ProcessError> {
        self.bound(Operation::Restart, self.inner().restart(label), timeout)
            .await
    }
    async fn stop(&self, label: &ServiceLabel) -> Result<StopOutcome, ProcessError> {
        self.bound(Operation::Stop, self.inner().stop(label), timeout)
            .await
    }
    async fn disable(&self, label: &ServiceLabel) -> Result<DisableOutcome, ProcessError> {
        self.bound(Operation::Disable, self.inner().disable(label), timeout)
            .await
    }
    async fn enable(&self, config: &ServiceConfig) -> Result<EnableOutcome, ProcessError> {
        self.bound(Operation::Enable, self.inner().enable(config), timeout)
            .await
    }
    fn events(&self) -> Option<broadcast::Receiver<ServiceEvent>> {
        self.inner().events()
    }
    fn log_source(&self, config: &ServiceConfig) -> Option<LogSource> {
        self.inner().log_source(config)
    }
}
