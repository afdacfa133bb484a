//! `SystemdDockerSubstrate`: a Docker daemon that systemd runs (`docker.service`), brought back
//! through the process-manager port (the systemd adapter: a start-limit `failed` unit is reset,
//! then started) and judged up by its engine answering.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use container_runtime::{
    EnsureRunningOutcome, ErrorKind, RuntimeAdapter, RuntimeError, RuntimeOperation, SshConfig,
    SubstratePort,
};
use process_manager::{ProcessError, ServiceLabel, SharedProcessManager};

const ADAPTER: &str = "docker-systemd";

/// A Docker daemon under systemd, as a [`SubstratePort`].
///
/// Health and uptime are the engine's own (its ping, the process serving its socket); bringing
/// it up is the manager's restart of the unit (reset-failed and start when it is `failed`),
/// then a wait, bounded by `start_wait`, until the engine answers.
#[derive(Debug, Clone)]
pub struct SystemdDockerSubstrate {
    manager: SharedProcessManager,
    unit: ServiceLabel,
    engine: Arc<dyn SubstratePort>,
    start_wait: Duration,
    poll: Duration,
}

impl SystemdDockerSubstrate {
    /// The daemon of `unit` (e.g. `docker`, for `docker.service`) under `manager`, whose engine
    /// (its daemon-side view: ping, uptime) is `engine`.
    pub fn new(
        manager: SharedProcessManager,
        unit: ServiceLabel,
        engine: Arc<dyn SubstratePort>,
    ) -> Self {
        SystemdDockerSubstrate {
            manager,
            unit,
            engine,
            start_wait: Duration::from_secs(60),
            poll: Duration::from_millis(200),
        }
    }

    /// How long a started daemon has to answer (60 s by default).
    pub fn with_start_wait(mut self, wait: Duration) -> Self {
        self.start_wait = wait;
        self
    }

    /// The unit.
    pub fn unit(&self) -> &ServiceLabel {
        &self.unit
    }
}

/// The manager's error, with the same meaning on this port.
fn from_process(e: ProcessError, unit: &ServiceLabel) -> RuntimeError {
    let detail = e.to_string();
    match e.kind() {
        ErrorKind::NotFound => RuntimeError::NotFound {
            what: format!("unit {unit}"),
        },
        ErrorKind::PermissionDenied => RuntimeError::PermissionDenied {
            operation: RuntimeOperation::EnsureRunning,
            target: unit.to_string(),
            detail,
        },
        ErrorKind::Unavailable | ErrorKind::Timeout => RuntimeError::Unavailable {
            adapter: ADAPTER.into(),
            detail: format!("the manager of {unit}: {detail}"),
        },
        _ => RuntimeError::Backend {
            adapter: ADAPTER.into(),
            source: Box::new(e),
        },
    }
}

impl RuntimeAdapter for SystemdDockerSubstrate {
    fn adapter(&self) -> &str {
        ADAPTER
    }
}

#[async_trait]
impl SubstratePort for SystemdDockerSubstrate {
    async fn is_healthy(&self) -> Result<bool, RuntimeError> {
        self.engine.is_healthy().await
    }

    async fn vm_ip(&self) -> Result<Option<IpAddr>, RuntimeError> {
        Ok(None)
    }

    async fn uptime_seconds(&self) -> Result<u64, RuntimeError> {
        self.engine.uptime_seconds().await
    }

    async fn ssh_config(&self) -> Result<Option<SshConfig>, RuntimeError> {
        Ok(None)
    }

    #[tracing::instrument(skip_all, fields(adapter = ADAPTER, unit = %self.unit))]
    async fn ensure_running(&self) -> Result<EnsureRunningOutcome, RuntimeError> {
        if self.engine.is_healthy().await? {
            return Ok(EnsureRunningOutcome::AlreadyRunning);
        }
        let outcome = self
            .manager
            .restart(&self.unit)
            .await
            .map_err(|e| from_process(e, &self.unit))?;
        tracing::info!(
            ?outcome,
            "docker daemon unit started; waiting for its engine"
        );
        let waited = tokio::time::timeout(self.start_wait, async {
            loop {
                if matches!(self.engine.is_healthy().await, Ok(true)) {
                    return;
                }
                tokio::time::sleep(self.poll).await;
            }
        })
        .await;
        match waited {
            Ok(()) => Ok(EnsureRunningOutcome::Started),
            Err(_) => Err(RuntimeError::Timeout {
                operation: RuntimeOperation::EnsureRunning,
                after: self.start_wait,
            }),
        }
    }
}
