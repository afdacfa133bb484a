//! The port through `Arc`/`Box`, and the deadline wrapper any substrate or engine can be put
//! behind.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::{
    ComposeService, ContainerRestartOutcome, ContainerStatus, EnginePort, EnsureRunningOutcome,
    RuntimeAdapter, RuntimeError, RuntimeOperation, SshConfig, SubstratePort,
};

/// Forwards every operation to the pointee, so wrappers and tests take a runtime by value, by
/// `Arc` or by `Box` alike.
macro_rules! forward_through {
    ($($pointer:ident),*) => {$(
        impl<R: RuntimeAdapter + ?Sized> RuntimeAdapter for $pointer<R> {
            fn adapter(&self) -> &str {
                (**self).adapter()
            }
        }
        #[async_trait]
        impl<R: SubstratePort + ?Sized> SubstratePort for $pointer<R> {
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
        }
        #[async_trait]
        impl<R: EnginePort + ?Sized> EnginePort for $pointer<R> {
            async fn inspect_container(&self, name: &str) -> Result<ContainerStatus, RuntimeError> {
                (**self).inspect_container(name).await
            }
            async fn restart_container(&self, name: &str) -> Result<ContainerRestartOutcome, RuntimeError> {
                (**self).restart_container(name).await
            }
            async fn start_container(&self, name: &str) -> Result<ContainerRestartOutcome, RuntimeError> {
                (**self).start_container(name).await
            }
            async fn stop_container(&self, name: &str) -> Result<bool, RuntimeError> {
                (**self).stop_container(name).await
            }
            async fn container_logs(&self, name: &str, tail: usize) -> Result<Vec<String>, RuntimeError> {
                (**self).container_logs(name, tail).await
            }
            async fn follow_container_logs(&self, name: &str, tail: usize, line: &mut (dyn FnMut(String) + Send)) -> Result<(), RuntimeError> {
                (**self).follow_container_logs(name, tail, line).await
            }
            async fn list_containers(&self, label: Option<&str>) -> Result<Vec<ContainerStatus>, RuntimeError> {
                (**self).list_containers(label).await
            }
            async fn recreate(&self, service: &ComposeService) -> Result<ContainerRestartOutcome, RuntimeError> {
                (**self).recreate(service).await
            }
            async fn find_compose_container(&self, service: &ComposeService) -> Result<ContainerStatus, RuntimeError> {
                (**self).find_compose_container(service).await
            }
        }
    )*};
}

forward_through!(Arc, Box);

/// Any substrate or engine behind an outer deadline per operation (see
/// [`port_kit::WithDeadline`]): a call that does not finish in time is
/// [`RuntimeError::Timeout`]. Give `ensure_running` and `recreate` longer ones: bringing a VM up
/// takes minutes, and Compose may pull an image.
pub type WithDeadline<R> = port_kit::WithDeadline<R, RuntimeOperation>;

fn timeout(operation: RuntimeOperation, after: Duration) -> RuntimeError {
    RuntimeError::Timeout { operation, after }
}

impl<R: RuntimeAdapter> RuntimeAdapter for WithDeadline<R> {
    fn adapter(&self) -> &str {
        self.inner().adapter()
    }
}

#[async_trait]
impl<R: SubstratePort> SubstratePort for WithDeadline<R> {
    async fn is_healthy(&self) -> Result<bool, RuntimeError> {
        self.bound(RuntimeOperation::Health, self.inner().is_healthy(), timeout)
            .await
    }
    async fn vm_ip(&self) -> Result<Option<IpAddr>, RuntimeError> {
        self.bound(RuntimeOperation::VmIp, self.inner().vm_ip(), timeout)
            .await
    }
    async fn uptime_seconds(&self) -> Result<u64, RuntimeError> {
        let op = RuntimeOperation::Uptime;
        self.bound(op, self.inner().uptime_seconds(), timeout).await
    }
    async fn ssh_config(&self) -> Result<Option<SshConfig>, RuntimeError> {
        let op = RuntimeOperation::SshConfig;
        self.bound(op, self.inner().ssh_config(), timeout).await
    }
    async fn ensure_running(&self) -> Result<EnsureRunningOutcome, RuntimeError> {
        let op = RuntimeOperation::EnsureRunning;
        self.bound(op, self.inner().ensure_running(), timeout).await
    }
}

#[async_trait]
impl<R: EnginePort> EnginePort for WithDeadline<R> {
    async fn inspect_container(&self, name: &str) -> Result<ContainerStatus, RuntimeError> {
        let op = RuntimeOperation::InspectContainer;
        self.bound(op, self.inner().inspect_container(name), timeout)
            .await
    }
    async fn restart_container(&self, name: &str) -> Result<ContainerRestartOutcome, RuntimeError> {
        let op = RuntimeOperation::RestartContainer;
        self.bound(op, self.inner().restart_container(name), timeout)
            .await
    }
    async fn start_container(&self, name: &str) -> Result<ContainerRestartOutcome, RuntimeError> {
        let op = RuntimeOperation::StartContainer;
        self.bound(op, self.inner().start_container(name), timeout)
            .await
    }
    async fn stop_container(&self, name: &str) -> Result<bool, RuntimeError> {
        let op = RuntimeOperation::StopContainer;
        self.bound(op, self.inner().stop_container(name), timeout)
            .await
    }
    async fn container_logs(&self, name: &str, tail: usize) -> Result<Vec<String>, RuntimeError> {
        let op = RuntimeOperation::ContainerLogs;
        self.bound(op, self.inner().container_logs(name, tail), timeout)
            .await
    }
    /// Not bounded here: following lasts as long as the output does (the adapter bounds
    /// reaching the engine; the caller stops it by dropping the call).
    async fn follow_container_logs(
        &self,
        name: &str,
        tail: usize,
        line: &mut (dyn FnMut(String) + Send),
    ) -> Result<(), RuntimeError> {
        self.inner().follow_container_logs(name, tail, line).await
    }
    async fn list_containers(
        &self,
        label: Option<&str>,
    ) -> Result<Vec<ContainerStatus>, RuntimeError> {
        let op = RuntimeOperation::ListContainers;
        self.bound(op, self.inner().list_containers(label), timeout)
            .await
    }
    async fn recreate(
        &self,
        service: &ComposeService,
    ) -> Result<ContainerRestartOutcome, RuntimeError> {
        let op = RuntimeOperation::Recreate;
        self.bound(op, self.inner().recreate(service), timeout)
            .await
    }
    async fn find_compose_container(
        &self,
        service: &ComposeService,
    ) -> Result<ContainerStatus, RuntimeError> {
        let op = RuntimeOperation::ListContainers;
        self.bound(op, self.inner().find_compose_container(service), timeout)
            .await
    }
}
