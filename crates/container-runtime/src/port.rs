//! The two halves of the runtime port: the substrate that runs an engine, and the engine that
//! runs containers; and [`SplitRuntime`], one of each as a whole runtime.

use std::fmt::Debug;
use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;

use crate::{
    ComposeService, ContainerRef, ContainerRestartOutcome, ContainerStatus, EnsureRunningOutcome,
    RuntimeError, RuntimeOperation, SshConfig,
};

/// What both halves share: a one-word name for telemetry.
pub trait RuntimeAdapter: Send + Sync + Debug + 'static {
    /// The adapter's name (`colima`, `docker`, `docker-systemd`, `memory`).
    fn adapter(&self) -> &str;
}

fn not_supported(adapter: &str, operation: RuntimeOperation) -> RuntimeError {
    RuntimeError::NotSupported {
        operation,
        adapter: adapter.to_string(),
    }
}

/// The thing that runs an engine: a Colima VM, a Docker daemon under systemd, a remote engine.
///
/// Every call has a deadline; a hung socket or CLI is a [`RuntimeError::Timeout`].
#[async_trait]
pub trait SubstratePort: RuntimeAdapter {
    /// Whether the substrate answers. A substrate that is down is `Ok(false)`, not an error;
    /// errors are for when health could not be decided (e.g. permission denied).
    async fn is_healthy(&self) -> Result<bool, RuntimeError>;

    /// The VM's address, `None` where there is no VM (or it has no routable address).
    async fn vm_ip(&self) -> Result<Option<IpAddr>, RuntimeError>;

    /// Seconds since the substrate last started.
    async fn uptime_seconds(&self) -> Result<u64, RuntimeError>;

    /// How to SSH into the VM, `None` where there is no VM.
    async fn ssh_config(&self) -> Result<Option<SshConfig>, RuntimeError>;

    /// Brings the substrate up if it is down (`colima start`, starting the daemon's unit).
    async fn ensure_running(&self) -> Result<EnsureRunningOutcome, RuntimeError> {
        Err(not_supported(
            self.adapter(),
            RuntimeOperation::EnsureRunning,
        ))
    }
}

/// The engine: containers, listed, inspected, started, restarted and recreated.
#[async_trait]
pub trait EnginePort: RuntimeAdapter {
    /// One container's state, by name or id.
    async fn inspect_container(&self, name: &str) -> Result<ContainerStatus, RuntimeError>;

    /// Restarts one container (Docker never restarts an unhealthy one on its own).
    async fn restart_container(&self, name: &str) -> Result<ContainerRestartOutcome, RuntimeError>;

    /// Starts a stopped container; a running one is left alone (`AlreadyRunning`).
    async fn start_container(&self, name: &str) -> Result<ContainerRestartOutcome, RuntimeError>;

    /// Stops a container (its stop signal, then a kill after the adapter's grace); the engine's
    /// restart policy does not bring back a container stopped this way. `false` when it was not
    /// running.
    async fn stop_container(&self, name: &str) -> Result<bool, RuntimeError> {
        let _ = name;
        Err(not_supported(
            self.adapter(),
            RuntimeOperation::StopContainer,
        ))
    }

    /// The last `tail` lines of a container's output (stdout and stderr, in order).
    async fn container_logs(&self, name: &str, tail: usize) -> Result<Vec<String>, RuntimeError> {
        let _ = (name, tail);
        Err(not_supported(
            self.adapter(),
            RuntimeOperation::ContainerLogs,
        ))
    }

    /// Follows a container's output (`docker logs -f`): its last `tail` lines, then each new
    /// one as it is written, handed to `line` in order, until the container stops or the
    /// engine ends the stream. Reaching the engine has the adapter's deadline; following lasts
    /// as long as the output does, until the caller drops the call.
    async fn follow_container_logs(
        &self,
        name: &str,
        tail: usize,
        line: &mut (dyn FnMut(String) + Send),
    ) -> Result<(), RuntimeError> {
        let _ = (name, tail, line);
        Err(not_supported(
            self.adapter(),
            RuntimeOperation::ContainerLogs,
        ))
    }

    /// Containers, all or those carrying `label` (`key` or `key=value`), stopped ones included.
    async fn list_containers(
        &self,
        label: Option<&str>,
    ) -> Result<Vec<ContainerStatus>, RuntimeError>;

    /// Creates a Compose service's container again from its file (`up -d --no-deps
    /// --force-recreate SERVICE`): a removed container comes back, and a present one (running
    /// or crash-looping, even with an unchanged config) is replaced by a new one, with the same
    /// Compose labels either way.
    async fn recreate(
        &self,
        service: &ComposeService,
    ) -> Result<ContainerRestartOutcome, RuntimeError> {
        let _ = service;
        Err(not_supported(self.adapter(), RuntimeOperation::Recreate))
    }

    /// A Compose service's container, found by its labels (a running one first). `NotFound`
    /// when the project has no container for the service (it was removed).
    async fn find_compose_container(
        &self,
        service: &ComposeService,
    ) -> Result<ContainerStatus, RuntimeError> {
        let mut found: Vec<ContainerStatus> = self
            .list_containers(Some(&service.project_filter()))
            .await?
            .into_iter()
            .filter(|c| service.owns(c))
            .collect();
        found.sort_by_key(|c| (!c.running, c.name.clone()));
        found
            .into_iter()
            .next()
            .ok_or_else(|| RuntimeError::NotFound {
                what: service.to_string(),
            })
    }

    /// The state of the container `what` names.
    async fn inspect_ref(&self, what: &ContainerRef) -> Result<ContainerStatus, RuntimeError> {
        match what {
            ContainerRef::Named(name) => self.inspect_container(name).await,
            ContainerRef::Compose(service) => self.find_compose_container(service).await,
        }
    }

    /// Restarts the container `what` names (a stopped one is started).
    async fn restart_ref(
        &self,
        what: &ContainerRef,
    ) -> Result<ContainerRestartOutcome, RuntimeError> {
        match what {
            ContainerRef::Named(name) => self.restart_container(name).await,
            ContainerRef::Compose(service) => {
                let c = self.find_compose_container(service).await?;
                self.restart_container(&c.name).await
            }
        }
    }
}

/// A whole runtime: a substrate and its engine (what the heal loop holds). Any type that is
/// both is one; [`SplitRuntime`] pairs two separate halves.
pub trait ContainerRuntimePort: SubstratePort + EnginePort {}

impl<T: SubstratePort + EnginePort + ?Sized> ContainerRuntimePort for T {}

/// A substrate and the engine it runs, as one runtime: Colima's VM with the Docker Engine on
/// the VM's socket, a systemd-managed dockerd with the engine on its socket.
#[derive(Debug, Clone)]
pub struct SplitRuntime {
    substrate: Arc<dyn SubstratePort>,
    engine: Arc<dyn EnginePort>,
}

impl SplitRuntime {
    /// `substrate` running `engine`.
    pub fn new(substrate: Arc<dyn SubstratePort>, engine: Arc<dyn EnginePort>) -> Self {
        SplitRuntime { substrate, engine }
    }

    /// The substrate half.
    pub fn substrate(&self) -> &Arc<dyn SubstratePort> {
        &self.substrate
    }

    /// The engine half.
    pub fn engine(&self) -> &Arc<dyn EnginePort> {
        &self.engine
    }
}

impl RuntimeAdapter for SplitRuntime {
    /// The substrate's name: it is what the node runs (`colima`), the engine is Docker's API.
    fn adapter(&self) -> &str {
        self.substrate.adapter()
    }
}

#[async_trait]
impl SubstratePort for SplitRuntime {
    async fn is_healthy(&self) -> Result<bool, RuntimeError> {
        self.substrate.is_healthy().await
    }
    async fn vm_ip(&self) -> Result<Option<IpAddr>, RuntimeError> {
        self.substrate.vm_ip().await
    }
    async fn uptime_seconds(&self) -> Result<u64, RuntimeError> {
        self.substrate.uptime_seconds().await
    }
    async fn ssh_config(&self) -> Result<Option<SshConfig>, RuntimeError> {
        self.substrate.ssh_config().await
    }
    async fn ensure_running(&self) -> Result<EnsureRunningOutcome, RuntimeError> {
        self.substrate.ensure_running().await
    }
}

#[async_trait]
impl EnginePort for SplitRuntime {
    async fn inspect_container(&self, name: &str) -> Result<ContainerStatus, RuntimeError> {
        self.engine.inspect_container(name).await
    }
    async fn restart_container(&self, name: &str) -> Result<ContainerRestartOutcome, RuntimeError> {
        self.engine.restart_container(name).await
    }
    async fn start_container(&self, name: &str) -> Result<ContainerRestartOutcome, RuntimeError> {
        self.engine.start_container(name).await
    }
    async fn stop_container(&self, name: &str) -> Result<bool, RuntimeError> {
        self.engine.stop_container(name).await
    }
    async fn container_logs(&self, name: &str, tail: usize) -> Result<Vec<String>, RuntimeError> {
        self.engine.container_logs(name, tail).await
    }
    async fn follow_container_logs(
        &self,
        name: &str,
        tail: usize,
        line: &mut (dyn FnMut(String) + Send),
    ) -> Result<(), RuntimeError> {
        self.engine.follow_container_logs(name, tail, line).await
    }
    async fn list_containers(
        &self,
        label: Option<&str>,
    ) -> Result<Vec<ContainerStatus>, RuntimeError> {
        self.engine.list_containers(label).await
    }
    async fn recreate(
        &self,
        service: &ComposeService,
    ) -> Result<ContainerRestartOutcome, RuntimeError> {
        self.engine.recreate(service).await
    }
    async fn find_compose_container(
        &self,
        service: &ComposeService,
    ) -> Result<ContainerStatus, RuntimeError> {
        self.engine.find_compose_container(service).await
    }
}
