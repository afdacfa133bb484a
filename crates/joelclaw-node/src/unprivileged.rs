//! A system manager seen by an agent that is not root (`install-self --user`): its polkit rule
//! lets it start, stop and restart the inventory's units, but it cannot write or remove a
//! definition. Installing (`enable`, the repair step) and removing (`disable`) are then
//! refused as [`ProcessError::PermissionDenied`] without being tried, so the heal loop reports
//! "not permitted" instead of a half-done write or an error from a read-only folder.

use async_trait::async_trait;
use process_manager::{
    Capabilities, DisableOutcome, EnableOutcome, LabelPattern, Operation, ProcessError,
    ProcessManagerPort, RestartOutcome, ServiceConfig, ServiceEvent, ServiceLabel, ServiceStatus,
    SharedProcessManager, StopOutcome,
};
use tokio::sync::broadcast;

/// `inner` as this process may drive it: unchanged for root, [`NoDefinitions`] otherwise.
pub fn for_this_process(inner: SharedProcessManager) -> SharedProcessManager {
    if nix::unistd::geteuid().is_root() {
        inner
    } else {
        std::sync::Arc::new(NoDefinitions { inner })
    }
}

/// A manager whose definitions this process may not change.
#[derive(Debug)]
pub struct NoDefinitions {
    inner: SharedProcessManager,
}

fn not_permitted(operation: Operation, target: &str) -> ProcessError {
    ProcessError::PermissionDenied {
        operation,
        target: target.into(),
        detail: "the agent runs without root (install-self --user): it may restart the inventory's units but not write or remove their definitions; run `joelclaw-node apply` as root".into(),
    }
}

#[async_trait]
impl ProcessManagerPort for NoDefinitions {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn list(&self, pattern: &LabelPattern) -> Result<Vec<ServiceStatus>, ProcessError> {
        self.inner.list(pattern).await
    }
    async fn inspect(&self, label: &ServiceLabel) -> Result<ServiceStatus, ProcessError> {
        self.inner.inspect(label).await
    }
    async fn inspect_many(
        &self,
        labels: &[ServiceLabel],
    ) -> Result<Vec<Result<ServiceStatus, ProcessError>>, ProcessError> {
        self.inner.inspect_many(labels).await
    }
    async fn restart(&self, label: &ServiceLabel) -> Result<RestartOutcome, ProcessError> {
        self.inner.restart(label).await
    }
    async fn stop(&self, label: &ServiceLabel) -> Result<StopOutcome, ProcessError> {
        self.inner.stop(label).await
    }
    async fn disable(&self, label: &ServiceLabel) -> Result<DisableOutcome, ProcessError> {
        Err(not_permitted(Operation::Disable, label.as_str()))
    }
    async fn enable(&self, config: &ServiceConfig) -> Result<EnableOutcome, ProcessError> {
        Err(not_permitted(Operation::Enable, config.label.as_str()))
    }
    fn events(&self) -> Option<broadcast::Receiver<ServiceEvent>> {
        self.inner.events()
    }
    fn log_source(&self, config: &ServiceConfig) -> Option<process_manager::LogSource> {
        self.inner.log_source(config)
    }
}
