//! One service as the loop tracks it (its probes, policy and decision state), the
//! targets its heals go to, and the calls and actions a decision produces.

use std::sync::Arc;
use std::time::Duration;

use container_runtime::{ContainerRef, SharedContainerRuntime};
use process_manager::{RunState, ServiceConfig, ServiceLabel, SharedProcessManager};

use super::hooks::{HookJob, HookPoint};
use super::machine::ServiceState;
use super::{Health, ProbeSummary, ServiceSnapshot};
use crate::events::{EventKind, HealEvent, Step};
use crate::model::{HealPolicy, Hook, Hooks, ServiceClass};
use crate::probe::{Probe, ProbeFailure};
use crate::state::Desired;

/// One service's probe round, with the run state a process probe saw.
#[derive(Debug, Clone)]
pub(super) struct Probed {
    pub(super) summary: ProbeSummary,
    pub(super) run_state: Option<RunState>,
    pub(super) pid: Option<u32>,
    /// The manager's whole answer where a process probe asked.
    pub(super) process: Option<process_manager::ServiceStatus>,
    /// A probe asked the manager (or runtime) and it did not answer.
    pub(super) manager_silent: bool,
    /// The installed definition differs from the desired one (how), where it was compared.
    pub(super) drift: Option<String>,
}

impl Probed {
    /// Nothing but the manager's silence was seen: the service's health is unknown.
    pub(super) fn unknown(&self) -> bool {
        self.summary.failure == Some(ProbeFailure::ManagerUnavailable)
    }
}

#[derive(Debug, Clone)]
pub(super) enum Target {
    Process(SharedProcessManager),
    Container {
        runtime: SharedContainerRuntime,
        name: ContainerRef,
    },
    Substrate(SharedContainerRuntime),
}

#[derive(Debug)]
pub(super) struct Tracked {
    pub(super) label: ServiceLabel,
    pub(super) class: ServiceClass,
    pub(super) manager_name: String,
    pub(super) adapter: String,
    pub(super) target: Target,
    pub(super) probes: Vec<Arc<dyn Probe>>,
    pub(super) policy: HealPolicy,
    pub(super) config: Option<ServiceConfig>,
    pub(super) throttle: Option<Duration>,
    /// Watched and escalated, never acted on.
    pub(super) monitor_only: bool,
    /// What runs around its heals.
    pub(super) hooks: TrackedHooks,
    /// What the decision reads and writes.
    pub(super) state: ServiceState,
    pub(super) last_event: Option<EventKind>,
}

/// A heal call, owning what it needs so calls can run concurrently.
#[derive(Debug, Clone)]
pub(super) enum HealCall {
    Restart(SharedProcessManager, ServiceLabel),
    Repair(SharedProcessManager, Box<ServiceConfig>),
    RestartContainer(SharedContainerRuntime, ContainerRef),
    EnsureRunning(SharedContainerRuntime),
    // The container rungs past a restart (heal/container.rs).
    RecreateContainer(SharedContainerRuntime, container_runtime::ComposeService),
    SubstrateThenContainer(SharedContainerRuntime, ContainerRef),
}

#[derive(Debug)]
pub(super) enum Action {
    /// A heal call, its `before_restart` hooks first.
    Heal {
        index: usize,
        call: HealCall,
        before: Option<HookJob>,
    },
    Notify {
        index: usize,
        event: Box<HealEvent>,
    },
    /// `after_heal` hooks (they do not hold the service).
    Hooks {
        index: usize,
        job: HookJob,
    },
}

/// A service's hooks, shared with the tasks that run them.
#[derive(Debug, Clone)]
pub(super) struct TrackedHooks {
    pub(super) before_restart: Arc<[Hook]>,
    pub(super) after_heal: Arc<[Hook]>,
}

impl Default for TrackedHooks {
    fn default() -> Self {
        TrackedHooks::from(&Hooks::default())
    }
}

impl From<&Hooks> for TrackedHooks {
    fn from(h: &Hooks) -> Self {
        TrackedHooks {
            before_restart: h.before_restart.clone().into(),
            after_heal: h.after_heal.clone().into(),
        }
    }
}

impl Tracked {
    /// The job running this service's hooks at `point` of attempt `attempt` (taking `step`),
    /// if it has any there.
    pub(super) fn hook_job(&self, point: HookPoint, step: Step, attempt: u32) -> Option<HookJob> {
        let hooks = match point {
            HookPoint::BeforeRestart => &self.hooks.before_restart,
            HookPoint::AfterHeal => &self.hooks.after_heal,
        };
        if hooks.is_empty() {
            return None;
        }
        Some(HookJob {
            point,
            hooks: hooks.clone(),
            label: self.label.clone(),
            step,
            attempt,
            manager: match &self.target {
                Target::Process(m) => Some(m.clone()),
                _ => None,
            },
        })
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        label: ServiceLabel,
        class: ServiceClass,
        manager_name: String,
        adapter: String,
        target: Target,
        probes: Vec<Arc<dyn Probe>>,
        policy: HealPolicy,
        config: Option<ServiceConfig>,
        throttle: Option<Duration>,
    ) -> Self {
        Tracked {
            label,
            class,
            manager_name,
            adapter,
            target,
            probes,
            policy,
            config,
            throttle,
            monitor_only: false,
            hooks: TrackedHooks::default(),
            state: ServiceState::default(),
            last_event: None,
        }
    }

    pub(super) fn snapshot(&self) -> ServiceSnapshot {
        let s = &self.state;
        let unknown = s.last_probe.as_ref().map(|p| p.failure)
            == Some(Some(ProbeFailure::ManagerUnavailable));
        let health = if s.record.desired == Desired::Stopped {
            Health::Stopped
        } else if s.record.desired == Desired::Disabled {
            Health::Disabled
        } else if unknown {
            // Its manager did not answer: neither healthy nor down.
            Health::Unknown
        } else if s.hyst.down {
            Health::Unhealthy
        } else if s.hyst.failures > 0 || s.hyst.had_failure {
            Health::Failing
        } else if s.hyst.seen {
            Health::Healthy
        } else {
            Health::Unknown
        };
        ServiceSnapshot {
            label: self.label.to_string(),
            manager: self.manager_name.clone(),
            adapter_type: self.adapter.clone(),
            class: self.class,
            health,
            run_state: s.run_state,
            pid: s.pid,
            process: s.process.clone(),
            last_probe: s.last_probe.clone(),
            endpoint_class: s.endpoint_class,
            step: s.step,
            breaker: s.breaker.state(),
            last_event: self.last_event,
            in_flight: s.record.in_flight.clone(),
            desired: s.record.desired,
            monitor_only: self.monitor_only,
        }
    }
}
