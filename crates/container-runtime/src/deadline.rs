//! The port through `Arc`/`Box`, and the deadline wrapper any runtime can be put behind.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::{
    ContainerRestartOutcome, ContainerRuntimePort, ContainerStatus, EnsureRunningOutcome,
    RuntimeError, RuntimeOperation, SshConfig,
};

/// Forwards every operation to the pointee, so wrappers and tests take a runtime by value, by
/// `Arc` or by `Box` alike.
macro_rules! forward_through {
    ($($pointer:ident),*) => {$(
        #[async_trait]
        impl<R: ContainerRuntimePort + ?Sized> ContainerRuntimePort for $pointer<R> {
            fn adapter(&self) -> &str {
                (**self).adapter()
            }
            async fn is_healthy(&self) -> Result<bool, RuntimeError> {
                (**self).is_healthy().await
            }
            async fn vm_ip(&self) -> Result<Option<IpAddr>, RuntimeError> {
                (**self).vm_ip().await
            }
            async fn uptime_seconds(&self) -> Result<u64, RuntimeError> {
                (**self).uptime_seconds().await
            }
            async fn ssh_config(&self) -> Result<Option<SshConfig>, RuntimeError> {
                (**self).ssh_config().await
            }
            async fn ensure_running(&self) -> Result<EnsureRunningOutcome, RuntimeError> {
                (**self).ensure_running().await
            }
            async fn inspect_container(&self, name: &str) -> Result<ContainerStatus, RuntimeError> {
                (**self).inspect_container(name).await
            }
            async fn restart_container(&self, name: &str) -> Result<ContainerRestartOutcome, RuntimeError> {
                (**self).restart_container(name).await
            }
            async fn list_containers(&self, label: Option<&str>) -> Result<Vec<ContainerStatus>, RuntimeError> {
                (**self).list_containers(label).await
            }
        }
    )*};
}

forward_through!(Arc, Box);

/// Any runtime behind an outer deadline per operation (see [`port_kit::WithDeadline`]): a call
/// that does not finish in time is [`RuntimeError::Timeout`]. Give `ensure_running` a longer
/// one: bringing a VM up takes minutes.
pub type WithDeadline<R> = port_kit::WithDeadline<R, RuntimeOperation>;

fn timeout(operation: RuntimeOperation, after: Duration) -> RuntimeError {
    RuntimeError::Timeout { operation, after }
}

#[async_trait]
impl<R: ContainerRuntimePort> ContainerRuntimePort for WithDeadline<R> {
    fn adapter(&self) -> &str {
        self.inner().adapter()
    }
    async fn is_healthy(&self) -> Result<bool, RuntimeError> {
        self.bound(RuntimeOperation::Health, self.inner().is_healthy(), timeout)
            .await
    }
    async fn vm_ip(&self) -> Result<Option<IpAddr>, RuntimeError> {
        self.bound(RuntimeOperation::VmIp, self.inner().vm_ip(), timeout)
            .await
    }
    async fn uptime_seconds(&self) -> Result<u64, RuntimeError> {
        self.bound(
            RuntimeOperation::Uptime,
            self.inner().uptime_seconds(),
            timeout,
        )
        .await
    }
    async fn ssh_config(&self) -> Result<Option<SshConfig>, RuntimeError> {
        self.bound(
            RuntimeOperation::SshConfig,
            self.inner().ssh_config(),
            timeout,
        )
        .await
    }
    async fn ensure_running(&self) -> Result<EnsureRunningOutcome, RuntimeError> {
        self.bound(
            RuntimeOperation::EnsureRunning,
            self.inner().ensure_running(),
            timeout,
        )
        .await
    }
    async fn inspect_container(&self, name: &str) -> Result<ContainerStatus, RuntimeError> {
        self.bound(
            RuntimeOperation::InspectContainer,
            self.inner().inspect_container(name),
            timeout,
        )
        .await
    }
    async fn restart_container(&self, name: &str) -> Result<ContainerRestartOutcome, RuntimeError> {
        self.bound(
            RuntimeOperation::RestartContainer,
            self.inner().restart_container(name),
            timeout,
        )
        .await
    }
    async fn list_containers(
        &self,
        label: Option<&str>,
    ) -> Result<Vec<ContainerStatus>, RuntimeError> {
        self.bound(
            RuntimeOperation::ListContainers,
            self.inner().list_containers(label),
            timeout,
        )
        .await
    }
}
