//! `MemoryRuntime`: an in-memory substrate and engine with containers (and Compose services it
//! can recreate), that can be taken down and brought up. It is the null substrate too, so it
//! keeps nothing per call; tests that need faults or a call log wrap it (`testkit::Faulty`,
//! `testkit::Recording`).
//!
//! It counts as Docker does: a container's uptime runs on tokio's clock from its last start
//! (so paused-time tests see it grow), `restart_count` counts only the restarts of the engine's
//! own restart policy ([`MemoryRuntime::crash`]), and a restart asked for through the port
//! resets it.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use tokio::time::Instant;

use crate::{
    ComposeService, ContainerHealth, ContainerRestartOutcome, ContainerStatus, EnginePort,
    EnsureRunningOutcome, RuntimeAdapter, RuntimeError, SshConfig, SubstratePort,
    COMPOSE_PROJECT_LABEL, COMPOSE_SERVICE_LABEL,
};

#[derive(Debug)]
struct State {
    healthy: bool,
    started: Instant,
    vm_ip: Option<IpAddr>,
    ssh: Option<SshConfig>,
    containers: BTreeMap<String, ContainerStatus>,
    /// When each container (by name) last started: its uptime is counted from here.
    started_at: BTreeMap<String, Instant>,
    /// Compose services `recreate` knows (as a Compose file would).
    compose: Vec<ComposeService>,
    /// Ids handed out so far, so a recreated container has a new id.
    created: u64,
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
                started_at: BTreeMap::new(),
                compose: Vec::new(),
                created: 0,
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
        let labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Self::insert(&mut self.lock(), name, labels);
    }

    fn insert(st: &mut State, name: &str, labels: BTreeMap<String, String>) {
        st.created += 1;
        let status = ContainerStatus {
            name: name.to_string(),
            id: format!("mem-{name}-{}", st.created),
            image: "memory".into(),
            running: true,
            status: "running".into(),
            health: ContainerHealth::Healthy,
            restart_count: 0,
            exit_code: None,
            uptime_seconds: Some(0),
            labels,
        };
        st.containers.insert(name.to_string(), status);
        st.started_at.insert(name.to_string(), Instant::now());
    }

    /// A container as the engine would report it now (its uptime from its last start).
    fn current(st: &State, key: &str) -> Option<ContainerStatus> {
        let mut c = st.containers.get(key)?.clone();
        c.uptime_seconds = match st.started_at.get(key) {
            Some(at) if c.running => Some(at.elapsed().as_secs()),
            _ => None,
        };
        Some(c)
    }

    /// Declares a Compose service (as its file would) and creates its running container, named
    /// as Compose names it (`project-service-1`) and labelled as Compose labels it.
    pub fn add_compose_service(&self, service: &ComposeService) -> String {
        let name = Self::compose_name(service);
        let mut st = self.lock();
        if !st.compose.contains(service) {
            st.compose.push(service.clone());
        }
        Self::insert(&mut st, &name, Self::compose_labels(service));
        name
    }

    fn compose_name(service: &ComposeService) -> String {
        format!("{}-{}-1", service.project, service.service)
    }

    fn compose_labels(service: &ComposeService) -> BTreeMap<String, String> {
        BTreeMap::from([
            (COMPOSE_PROJECT_LABEL.to_string(), service.project.clone()),
            (COMPOSE_SERVICE_LABEL.to_string(), service.service.clone()),
        ])
    }

    /// Removes a container (`docker rm -f`).
    pub fn remove_container(&self, name: &str) {
        let mut st = self.lock();
        st.containers.remove(name);
        st.started_at.remove(name);
    }

    /// The container exited and the engine's restart policy started it again at once: running,
    /// just started, one more restart counted (a crash loop seen between two crashes).
    pub fn crash(&self, name: &str) {
        let mut st = self.lock();
        if let Some(c) = st.containers.get_mut(name) {
            c.running = true;
            c.status = "running".into();
            c.restart_count += 1;
            st.started_at.insert(name.to_string(), Instant::now());
        }
    }

    /// Puts a container in a crash loop under the engine's restart policy (`restarting`,
    /// `running` still true, as Docker reports it), counting one more restart.
    pub fn set_crash_looping(&self, name: &str) {
        if let Some(c) = self.lock().containers.get_mut(name) {
            c.running = true;
            c.status = "restarting".into();
            c.restart_count += 1;
        }
    }

    /// Sets a container's health (and running flag: `Unhealthy` keeps it running, as Docker does).
    pub fn set_container_health(&self, name: &str, health: ContainerHealth, running: bool) {
        if let Some(c) = self.lock().containers.get_mut(name) {
            c.health = health;
            c.running = running;
            c.status = if running { "running" } else { "exited" }.into();
        }
    }

    /// The key of the container named `name`, or whose id is `name` (the engine takes both).
    fn key_of(st: &State, name: &str) -> Option<String> {
        if st.containers.contains_key(name) {
            return Some(name.to_string());
        }
        st.containers
            .values()
            .find(|c| c.id == name)
            .map(|c| c.name.clone())
    }

    fn down(&self) -> RuntimeError {
        RuntimeError::Unavailable {
            adapter: "memory".into(),
            detail: "the in-memory runtime is down".into(),
        }
    }
}

impl RuntimeAdapter for MemoryRuntime {
    fn adapter(&self) -> &str {
        "memory"
    }
}

#[async_trait]
impl SubstratePort for MemoryRuntime {
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
}

#[async_trait]
impl EnginePort for MemoryRuntime {
    async fn inspect_container(&self, name: &str) -> Result<ContainerStatus, RuntimeError> {
        let st = self.lock();
        if !st.healthy {
            return Err(self.down());
        }
        Self::key_of(&st, name)
            .and_then(|k| Self::current(&st, &k))
            .ok_or_else(|| RuntimeError::NotFound {
                what: format!("container {name:?}"),
            })
    }

    async fn restart_container(&self, name: &str) -> Result<ContainerRestartOutcome, RuntimeError> {
        let mut st = self.lock();
        if !st.healthy {
            return Err(self.down());
        }
        let key = Self::key_of(&st, name).ok_or_else(|| RuntimeError::NotFound {
            what: format!("container {name:?}"),
        })?;
        let c = st.containers.get_mut(&key).expect("key_of found it");
        let outcome = if c.running {
            ContainerRestartOutcome::Restarted
        } else {
            ContainerRestartOutcome::Started
        };
        c.running = true;
        c.status = "running".into();
        c.health = ContainerHealth::Healthy;
        // A restart asked for resets the engine's own count, as Docker's does.
        c.restart_count = 0;
        st.started_at.insert(key, Instant::now());
        Ok(outcome)
    }

    async fn start_container(&self, name: &str) -> Result<ContainerRestartOutcome, RuntimeError> {
        {
            let st = self.lock();
            if !st.healthy {
                return Err(self.down());
            }
            let c = Self::key_of(&st, name)
                .and_then(|k| st.containers.get(&k))
                .ok_or_else(|| RuntimeError::NotFound {
                    what: format!("container {name:?}"),
                })?;
            if c.running && !c.is_restarting() {
                return Ok(ContainerRestartOutcome::AlreadyRunning);
            }
        }
        self.restart_container(name)
            .await
            .map(|_| ContainerRestartOutcome::Started)
    }

    async fn stop_container(&self, name: &str) -> Result<bool, RuntimeError> {
        let mut st = self.lock();
        if !st.healthy {
            return Err(self.down());
        }
        let key = Self::key_of(&st, name).ok_or_else(|| RuntimeError::NotFound {
            what: format!("container {name:?}"),
        })?;
        let c = st.containers.get_mut(&key).expect("key_of found it");
        let was = c.running;
        c.running = false;
        c.status = "exited".into();
        c.exit_code = Some(0);
        Ok(was)
    }

    /// Creates the service's container again, replacing a running one as `--force-recreate`
    /// does (a declared service only: an undeclared one is `NotFound`, as Compose says "no such
    /// service").
    async fn recreate(
        &self,
        service: &ComposeService,
    ) -> Result<ContainerRestartOutcome, RuntimeError> {
        let mut st = self.lock();
        if !st.healthy {
            return Err(self.down());
        }
        if !st.compose.contains(service) {
            return Err(RuntimeError::NotFound {
                what: service.to_string(),
            });
        }
        let name = Self::compose_name(service);
        Self::insert(&mut st, &name, Self::compose_labels(service));
        Ok(ContainerRestartOutcome::Recreated)
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
            .iter()
            .filter(|(_, c)| label.is_none_or(|l| crate::label_matches(&c.labels, l)))
            .filter_map(|(key, _)| Self::current(&st, key))
            .collect())
    }
}
