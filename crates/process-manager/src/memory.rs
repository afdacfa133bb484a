//! `MemoryProcessManager`: an in-memory manager that behaves like a real one (state transitions,
//! idempotent outcomes, `NotFound`) and can be told to fail or hang on chosen operations. It is
//! the null adapter for machines with nothing to manage and the stand-in for every test above the
//! port.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::config::ServiceConfig;
use crate::error::{Operation, ProcessError};
use crate::label::{LabelPattern, ServiceLabel};
use crate::port::ProcessManagerPort;
use crate::status::{
    Capabilities, DisableOutcome, EnableOutcome, ExitStatus, RestartOutcome, RunState,
    ServiceEvent, ServiceStatus, StopOutcome,
};

/// What an injected fault does.
#[derive(Clone)]
pub enum Fault {
    /// The call returns the error this makes.
    Fail(Arc<dyn Fn() -> ProcessError + Send + Sync>),
    /// The call never returns (until its caller's deadline drops it).
    Hang,
}

impl Fault {
    /// A fault that fails with the error `make` returns.
    pub fn fail(make: impl Fn() -> ProcessError + Send + Sync + 'static) -> Self {
        Fault::Fail(Arc::new(make))
    }
}

impl std::fmt::Debug for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Fail(make) => write!(f, "Fail({})", make()),
            Fault::Hang => f.write_str("Hang"),
        }
    }
}

/// Where and how often a fault applies.
#[derive(Debug, Clone)]
pub struct Injection {
    operation: Operation,
    label: Option<ServiceLabel>,
    fault: Fault,
    remaining: Option<u32>,
}

impl Injection {
    /// `fault` on every call of `operation`, for every label, until cleared.
    pub fn new(operation: Operation, fault: Fault) -> Self {
        Injection {
            operation,
            label: None,
            fault,
            remaining: None,
        }
    }

    /// Only for this label.
    pub fn for_label(mut self, label: &ServiceLabel) -> Self {
        self.label = Some(label.clone());
        self
    }

    /// Only for the next `n` matching calls.
    pub fn times(mut self, n: u32) -> Self {
        self.remaining = Some(n);
        self
    }
}

/// One call made to the adapter, for tests that assert what the heal loop did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The operation.
    pub operation: Operation,
    /// The label (none for `list`).
    pub label: Option<String>,
}

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
    injections: Vec<Injection>,
    calls: Vec<Call>,
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
        let mut capabilities = Capabilities::basic("memory");
        capabilities.reports_restart_count = true;
        capabilities.native_restart = true;
        capabilities.pushes_events = true;
        Self::with_capabilities(capabilities)
    }

    /// An empty manager that reports `capabilities` (e.g. to play launchd with a throttle).
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

    /// Adds a fault.
    pub fn inject(&self, injection: Injection) {
        self.lock().injections.push(injection);
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        self.lock().injections.clear();
    }

    /// The calls made so far, oldest first.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// How many calls of `operation` were made for `label`.
    pub fn count(&self, operation: Operation, label: &ServiceLabel) -> usize {
        self.lock()
            .calls
            .iter()
            .filter(|c| c.operation == operation && c.label.as_deref() == Some(label.as_str()))
            .count()
    }

    /// Forgets the recorded calls.
    pub fn clear_calls(&self) {
        self.lock().calls.clear();
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

    /// Records the call, then applies a matching fault if one is armed.
    async fn enter(
        &self,
        operation: Operation,
        label: Option<&ServiceLabel>,
    ) -> Result<(), ProcessError> {
        let fault = {
            let mut st = self.lock();
            st.calls.push(Call {
                operation,
                label: label.map(|l| l.to_string()),
            });
            let hit = st.injections.iter_mut().position(|i| {
                i.operation == operation
                    && i.remaining != Some(0)
                    && (i.label.is_none() || i.label.as_ref() == label)
            });
            hit.map(|idx| {
                let inj = &mut st.injections[idx];
                if let Some(n) = inj.remaining.as_mut() {
                    *n -= 1;
                }
                inj.fault.clone()
            })
        };
        match fault {
            None => Ok(()),
            Some(Fault::Fail(make)) => Err(make()),
            Some(Fault::Hang) => {
                std::future::pending::<()>().await;
                unreachable!("pending never completes")
            }
        }
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
        self.enter(Operation::List, None).await?;
        let st = self.lock();
        Ok(st
            .services
            .iter()
            .filter(|(l, _)| pattern.matches(l.as_str()))
            .map(|(l, e)| Self::status_of(l, e))
            .collect())
    }

    async fn inspect(&self, label: &ServiceLabel) -> Result<ServiceStatus, ProcessError> {
        self.enter(Operation::Inspect, Some(label)).await?;
        let st = self.lock();
        st.services
            .get(label)
            .map(|e| Self::status_of(label, e))
            .ok_or_else(|| ProcessError::not_found(label))
    }

    async fn restart(&self, label: &ServiceLabel) -> Result<RestartOutcome, ProcessError> {
        self.enter(Operation::Restart, Some(label)).await?;
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
        self.enter(Operation::Stop, Some(label)).await?;
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
        self.enter(Operation::Disable, Some(label)).await?;
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
        self.enter(Operation::Enable, Some(&config.label)).await?;
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
        Some(self.events.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn label(s: &str) -> ServiceLabel {
        ServiceLabel::new(s).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn injected_hang_times_out_through_the_deadline_wrapper() {
        let pm = Arc::new(MemoryProcessManager::new());
        pm.inject(Injection::new(Operation::Restart, Fault::Hang));
        let bounded: Arc<dyn ProcessManagerPort> =
            Arc::new(crate::WithDeadline::new(pm.clone(), Duration::from_secs(5)));
        let started = tokio::time::Instant::now();
        let err = bounded.restart(&label("x")).await.unwrap_err();
        assert!(
            matches!(err, ProcessError::Timeout { operation: Operation::Restart, after } if after == Duration::from_secs(5)),
            "{err:?}"
        );
        assert!(err.is_retryable());
        // On paused time the clock moved exactly to the deadline, not past it.
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        // Other operations are not affected.
        assert!(matches!(
            bounded.inspect(&label("x")).await,
            Err(ProcessError::NotFound { .. })
        ));
    }

    #[tokio::test]
    async fn injected_failure_for_one_label_and_count() {
        let pm = MemoryProcessManager::new();
        let a = label("a");
        let b = label("b");
        for l in [&a, &b] {
            pm.enable(&ServiceConfig::new(l.clone(), "/bin/true"))
                .await
                .unwrap();
        }
        pm.inject(
            Injection::new(
                Operation::Restart,
                Fault::fail(|| ProcessError::backend("memory", "boom")),
            )
            .for_label(&a)
            .times(1),
        );
        assert!(pm.restart(&b).await.is_ok());
        assert!(matches!(
            pm.restart(&a).await,
            Err(ProcessError::Backend { .. })
        ));
        assert_eq!(pm.restart(&a).await.unwrap(), RestartOutcome::Restarted);
        assert_eq!(pm.count(Operation::Restart, &a), 2);
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
