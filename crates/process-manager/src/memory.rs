//! `MemoryProcessManager`: an in-memory manager that behaves like a real one (state transitions,
//! idempotent outcomes, `NotFound`). It is the null adapter for machines with nothing to manage,
//! so it keeps nothing per call: its memory grows only with the services it holds. Tests that
//! need faults or a call log wrap it (`testkit::Faulty`, `testkit::Recording`).

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::config::ServiceConfig;
use crate::error::ProcessError;
use crate::label::{LabelPattern, ServiceLabel};
use crate::port::ProcessManagerPort;
use crate::status::{
    Capabilities, DisableOutcome, EnableOutcome, ExitStatus, RestartOutcome, RunState,
    ServiceEvent, ServiceStatus, StopOutcome,
};

#[derive(Debug, Clone)]
struct Entry {
    config: ServiceConfig,
    state: RunState,
    pid: Option<u32>,
    enabled: bool,
    last_exit: Option<ExitStatus>,
    restarts: u64,
}

#[derive(Debug, Default)]
struct State {
    services: BTreeMap<ServiceLabel, Entry>,
    next_pid: u32,
}

impl State {
    fn spawn(&mut self, label: &ServiceLabel) {
        self.next_pid += 1;
        let pid = 1000 + self.next_pid;
        if let Some(e) = self.services.get_mut(label) {
            e.state = RunState::Running;
            e.pid = Some(pid);
        }
    }
}

/// The in-memory manager.
#[derive(Debug)]
pub struct MemoryProcessManager {
    state: Mutex<State>,
    capabilities: Capabilities,
    events: broadcast::Sender<ServiceEvent>,
}

impl Default for MemoryProcessManager {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryProcessManager {
    /// An empty manager with basic capabilities (adapter name `memory`).
    pub fn new() -> Self {
        Self::with_capabilities(Capabilities::basic("memory").pushing_events())
    }

    /// An empty manager that reports `capabilities` (e.g. to play launchd with a throttle).
    /// `events()` is `Some` exactly when `capabilities.pushes_events`.
    pub fn with_capabilities(capabilities: Capabilities) -> Self {
        MemoryProcessManager {
            state: Mutex::new(State::default()),
            capabilities,
            events: broadcast::channel(1024).0,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic in a test thread must not poison every later assertion.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Simulates the main process exiting (a crash, when `status` is not success). The service
    /// ends up `Stopped` with `last_exit` set, as under a manager that does not respawn.
    pub fn crash(&self, label: &ServiceLabel, status: ExitStatus) {
        let mut st = self.lock();
        if let Some(e) = st.services.get_mut(label) {
            e.state = RunState::Stopped;
            e.pid = None;
            e.last_exit = Some(status);
            let _ = self.events.send(ServiceEvent::Exited {
                label: label.clone(),
                status,
            });
        }
    }

    /// Forces a run state, e.g. `SupervisorRestarting` or `Failed`, for a scenario. A running
    /// state gets a pid; others lose it.
    pub fn set_state(&self, label: &ServiceLabel, state: RunState) {
        let mut st = self.lock();
        if state == RunState::Running {
            st.spawn(label);
        } else if let Some(e) = st.services.get_mut(label) {
            e.state = state;
            e.pid = None;
        }
        let _ = self.events.send(ServiceEvent::StateChanged {
            label: label.clone(),
            state,
        });
    }

    /// The installed definition of a service, if any.
    pub fn config_of(&self, label: &ServiceLabel) -> Option<ServiceConfig> {
        self.lock().services.get(label).map(|e| e.config.clone())
    }

    fn status_of(label: &ServiceLabel, e: &Entry) -> ServiceStatus {
        ServiceStatus {
            label: label.clone(),
            loaded: true,
            state: e.state,
            pid: e.pid,
            last_exit: e.last_exit,
            restart_count: Some(e.restarts),
            enabled: Some(e.enabled),
            scope: Some(e.config.scope),
        }
    }
}

#[async_trait]
impl ProcessManagerPort for MemoryProcessManager {
    fn capabilities(&self) -> Capabilities {
        self.capabilities.clone()
    }

    async fn list(&self, pattern: &LabelPattern) -> Result<Vec<ServiceStatus>, ProcessError> {
        let st = self.lock();
        Ok(st
            .services
            .iter()
            .filter(|(l, _)| pattern.matches(l.as_str()))
            .map(|(l, e)| Self::status_of(l, e))
            .collect())
    }

    async fn inspect(&self, label: &ServiceLabel) -> Result<ServiceStatus, ProcessError> {
        let st = self.lock();
        st.services
            .get(label)
            .map(|e| Self::status_of(label, e))
            .ok_or_else(|| ProcessError::not_found(label))
    }

    async fn restart(&self, label: &ServiceLabel) -> Result<RestartOutcome, ProcessError> {
        let mut st = self.lock();
        let e = st
            .services
            .get_mut(label)
            .ok_or_else(|| ProcessError::not_found(label))?;
        let outcome = match e.state {
            RunState::Running | RunState::Starting => {
                e.last_exit = Some(ExitStatus::Signal(15));
                RestartOutcome::Restarted
            }
            RunState::Failed => RestartOutcome::ResetAndStarted,
            _ => RestartOutcome::Started,
        };
        e.restarts += 1;
        st.spawn(label);
        Ok(outcome)
    }

    async fn stop(&self, label: &ServiceLabel) -> Result<StopOutcome, ProcessError> {
        let mut st = self.lock();
        let e = st
            .services
            .get_mut(label)
            .ok_or_else(|| ProcessError::not_found(label))?;
        Ok(match e.state {
            RunState::Stopped | RunState::Failed | RunState::Unknown => StopOutcome::AlreadyStopped,
            RunState::Running | RunState::Starting | RunState::SupervisorRestarting => {
                e.state = RunState::Stopped;
                e.pid = None;
                e.last_exit = Some(ExitStatus::Signal(15));
                StopOutcome::Stopped
            }
        })
    }

    async fn disable(&self, label: &ServiceLabel) -> Result<DisableOutcome, ProcessError> {
        let mut st = self.lock();
        let e = st
            .services
            .get_mut(label)
            .ok_or_else(|| ProcessError::not_found(label))?;
        let running = !matches!(e.state, RunState::Stopped | RunState::Failed);
        if !e.enabled && !running {
            return Ok(DisableOutcome::AlreadyDisabled);
        }
        e.enabled = false;
        if running {
            e.state = RunState::Stopped;
            e.pid = None;
            e.last_exit = Some(ExitStatus::Signal(15));
        }
        Ok(DisableOutcome::Disabled)
    }

    async fn enable(&self, config: &ServiceConfig) -> Result<EnableOutcome, ProcessError> {
        config.validate()?;
        let mut st = self.lock();
        let label = config.label.clone();
        let outcome = match st.services.get_mut(&label) {
            None => {
                st.services.insert(
                    label.clone(),
                    Entry {
                        config: config.clone(),
                        state: RunState::Stopped,
                        pid: None,
                        enabled: true,
                        last_exit: None,
                        restarts: 0,
                    },
                );
                EnableOutcome::Installed
            }
            Some(e) if e.config != *config => {
                e.config = config.clone();
                e.enabled = true;
                EnableOutcome::Updated
            }
            Some(e) if e.enabled && e.state.is_running() => return Ok(EnableOutcome::Unchanged),
            Some(e) => {
                e.enabled = true;
                EnableOutcome::Started
            }
        };
        if config.run_at_load || outcome != EnableOutcome::Installed {
            st.spawn(&label);
        }
        Ok(outcome)
    }

    fn events(&self) -> Option<broadcast::Receiver<ServiceEvent>> {
        self.capabilities
            .pushes_events
            .then(|| self.events.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(s: &str) -> ServiceLabel {
        ServiceLabel::new(s).unwrap()
    }

    #[tokio::test]
    async fn inspect_many_answers_each_as_inspect_in_the_order_asked() {
        let pm = MemoryProcessManager::new();
        let (a, b, gone) = (label("a"), label("b"), label("gone"));
        for l in [&a, &b] {
            pm.enable(&ServiceConfig::new(l.clone(), "/bin/true"))
                .await
                .unwrap();
        }
        pm.set_state(&b, RunState::Failed);
        let all = pm
            .inspect_many(&[b.clone(), gone.clone(), a.clone()])
            .await
            .unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].as_ref().unwrap().state, RunState::Failed);
        assert!(matches!(all[1], Err(ProcessError::NotFound { .. })));
        assert_eq!(
            all[2].as_ref().unwrap(),
            &pm.inspect(&a).await.unwrap(),
            "the same answer as inspect"
        );
    }

    #[tokio::test]
    async fn crash_and_failed_states() {
        let pm = MemoryProcessManager::new();
        let a = label("a");
        pm.enable(&ServiceConfig::new(a.clone(), "/bin/true"))
            .await
            .unwrap();
        let mut events = pm.events().unwrap();
        pm.crash(&a, ExitStatus::Signal(9));
        let st = pm.inspect(&a).await.unwrap();
        assert_eq!(st.state, RunState::Stopped);
        assert_eq!(st.last_exit, Some(ExitStatus::Signal(9)));
        assert!(matches!(
            events.recv().await.unwrap(),
            ServiceEvent::Exited {
                status: ExitStatus::Signal(9),
                ..
            }
        ));
        pm.set_state(&a, RunState::Failed);
        assert_eq!(
            pm.restart(&a).await.unwrap(),
            RestartOutcome::ResetAndStarted
        );
        assert!(pm.inspect(&a).await.unwrap().is_running());
    }

    #[tokio::test]
    async fn enable_refuses_bad_config_before_installing() {
        let pm = MemoryProcessManager::new();
        let cfg = ServiceConfig::new(label("a"), "relative/bin");
        assert!(matches!(
            pm.enable(&cfg).await,
            Err(ProcessError::InvalidInput { .. })
        ));
        assert!(pm.list(&LabelPattern::all()).await.unwrap().is_empty());
    }
}
