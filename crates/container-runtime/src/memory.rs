//! `MemoryRuntime`: an in-memory substrate with containers, that can be taken down and brought
//! up. It is the null substrate too, so it keeps nothing per call; tests that need faults or a
//! call log wrap it (`testkit::Faulty`, `testkit::Recording`).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use tokio::time::Instant;

use crate::{
    ContainerHealth, ContainerRestartOutcome, ContainerRuntimePort, ContainerStatus,
    EnsureRunningOutcome, RuntimeError, SshConfig,
};

#[derive(Debug)]
struct State {
    healthy: bool,
    started: Instant,
    vm_ip: Option<IpAddr>,
    ssh: Option<SshConfig>,
    containers: BTreeMap<String, ContainerStatus>,
}

/// The in-memory runtime. Starts healthy, with no VM and no containers.
#[derive(Debug)]
pub struct MemoryRuntime {
    state: Mutex<State>,
}

impl Default for MemoryRuntime {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryRuntime {
    /// A healthy runtime with no VM.
    pub fn new() -> Self {
        MemoryRuntime {
            state: Mutex::new(State {
                healthy: true,
                started: Instant::now(),
                vm_ip: None,
                ssh: None,
                containers: BTreeMap::new(),
            }),
        }
    }

    /// A healthy runtime that plays a VM at `ip`, with an SSH config for it.
    pub fn with_vm(ip: IpAddr) -> Self {
        let rt = Self::new();
        {
            let mut st = rt.lock();
            st.vm_ip = Some(ip);
            st.ssh = Some(SshConfig {
                host: "memory-vm".into(),
                hostname: ip.to_string(),
                port: 22,
                user: Some("vm".into()),
                identity_file: None,
                options: BTreeMap::new(),
            });
        }
        rt
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the substrate down (`false`) or brings it up (`true`, restarting the uptime clock).
    pub fn set_healthy(&self, healthy: bool) {
        let mut st = self.lock();
        if healthy && !st.healthy {
            st.started = Instant::now();
        }
        st.healthy = healthy;
    }

    /// Adds (or replaces) a running, healthy container.
    pub fn add_container(&self, name: &str, labels: &[(&str, &str)]) {
        let status = ContainerStatus {
            name: name.to_string(),
            id: format!("mem-{name}"),
            running: true,
            status: "running".into(),
            health: ContainerHealth::Healthy,
            restart_count: 0,
            exit_code: None,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        self.lock().containers.insert(name.to_string(), status);
    }

    /// Sets a container's health (and running flag: `Unhealthy` keeps it running, as Docker does).
    pub fn set_container_health(&self, name: &str, health: ContainerHealth, running: bool) {
        if let Some(c) = self.lock().containers.get_mut(name) {
            c.health = health;
            c.running = running;
            c.status = if running { "running" } else { "exited" }.into();
        }
    }

    fn down(&self) -> RuntimeError {
        RuntimeError::Unavailable {
            adapter: "memory".into(),
            detail: "the in-memory runtime is down".into(),
        }
    }
}

#[async_trait]
impl ContainerRuntimePort for MemoryRuntime {
    fn adapter(&self) -> &str {
        "memory"
    }

    async fn is_healthy(&self) -> Result<bool, RuntimeError> {
        Ok(self.lock().healthy)
    }

    async fn vm_ip(&self) -> Result<Option<IpAddr>, RuntimeError> {
        Ok(self.lock().vm_ip)
    }

    async fn uptime_seconds(&self) -> Result<u64, RuntimeError> {
        let st = self.lock();
        if !st.healthy {
            return Err(self.down());
        }
        Ok(st.started.elapsed().as_secs())
    }

    async fn ssh_config(&self) -> Result<Option<SshConfig>, RuntimeError> {
        Ok(self.lock().ssh.clone())
    }

    async fn ensure_running(&self) -> Result<EnsureRunningOutcome, RuntimeError> {
        let mut st = self.lock();
        if st.healthy {
            return Ok(EnsureRunningOutcome::AlreadyRunning);
        }
        st.healthy = true;
        st.started = Instant::now();
        Ok(EnsureRunningOutcome::Started)
    }

    async fn inspect_container(&self, name: &str) -> Result<ContainerStatus, RuntimeError> {
        let st = self.lock();
        if !st.healthy {
            return Err(self.down());
        }
        st.containers
            .get(name)
            .cloned()
            .ok_or_else(|| RuntimeError::NotFound {
                what: format!("container {name:?}"),
            })
    }

    async fn restart_container(&self, name: &str) -> Result<ContainerRestartOutcome, RuntimeError> {
        let mut st = self.lock();
        if !st.healthy {
            return Err(self.down());
        }
        let c = st
            .containers
            .get_mut(name)
            .ok_or_else(|| RuntimeError::NotFound {
                what: format!("container {name:?}"),
            })?;
        let outcome = if c.running {
            ContainerRestartOutcome::Restarted
        } else {
            ContainerRestartOutcome::Started
        };
        c.running = true;
        c.status = "running".into();
        c.health = ContainerHealth::Healthy;
        Ok(outcome)
    }

    async fn list_containers(
        &self,
        label: Option<&str>,
    ) -> Result<Vec<ContainerStatus>, RuntimeError> {
        let st = self.lock();
        if !st.healthy {
            return Err(self.down());
        }
        Ok(st
            .containers
            .values()
            .filter(|c| label.is_none_or(|l| crate::label_matches(&c.labels, l)))
            .cloned()
            .collect())
    }
}
