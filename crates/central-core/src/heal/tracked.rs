//! One service as the loop tracks it (its probes, policy, counters, breaker and record), the
//! targets its heals go to, and the calls and actions a decision produces.

use std::sync::Arc;
use std::time::Duration;

use container_runtime::SharedContainerRuntime;
use process_manager::{RunState, ServiceConfig, ServiceLabel, SharedProcessManager};

use super::{Health, ProbeSummary, ServiceSnapshot};
use crate::events::{EventKind, HealEvent, Step};
use crate::model::{EndpointClass, HealPolicy, ServiceClass};
use crate::policy::{LiveBreaker, RoundCounter};
use crate::probe::{Probe, ProbeFailure};
use crate::state::{AttemptRecord, ServiceRecord, HISTORY_LEN};

/// One service's probe round, with the run state a process probe saw.
#[derive(Debug, Clone)]
pub(super) struct Probed {
    pub(super) summary: ProbeSummary,
    pub(super) run_state: Option<RunState>,
    pub(super) pid: Option<u32>,
    /// A probe asked the manager (or runtime) and it did not answer.
    pub(super) manager_silent: bool,
}

impl Probed {
    /// Nothing but the manager's silence was seen: the service's health is unknown.
    pub(super) fn unknown(&self) -> bool {
        self.summary.failure == Some(ProbeFailure::ManagerUnavailable)
    }
}

/// Why a down service is held back instead of healed. Each is reported once per episode of
/// holding (a `heal.suppressed` whose `cause` is [`Hold::cause`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Hold {
    /// The supervisor is restarting it, or it is starting: someone else is on it.
    Observe(ProbeFailure),
    /// Observed for `observe_max`: from here the loop heals it itself.
    ObserveLimit,
    /// The probe could not judge it (its own program missing).
    ProbeBinaryMissing,
    /// Its manager did not answer: no restart through it, no verdict on an attempt.
    ManagerSilent,
    /// An infra-critical dependency (by index) is down: it is healed first.
    Dependency(usize),
    /// The breaker opened: a person was called.
    BreakerOpen,
}

impl Hold {
    /// The stable cause name events carry; a dependency is named with its class.
    pub(super) fn cause(&self, services: &[Tracked]) -> String {
        match self {
            Hold::Observe(f) => f.as_str().to_string(),
            Hold::ObserveLimit => "observe-limit".into(),
            Hold::ProbeBinaryMissing => "probe-binary-not-found".into(),
            Hold::ManagerSilent => "manager-unavailable".into(),
            Hold::Dependency(d) => {
                let dep = &services[*d];
                format!("dependency {} ({}) is down", dep.label, dep.class)
            }
            Hold::BreakerOpen => "breaker-open".into(),
        }
    }
}

#[derive(Debug, Clone)]
pub(super) enum Target {
    Process(SharedProcessManager),
    Container {
        runtime: SharedContainerRuntime,
        name: String,
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
    pub(super) hyst: RoundCounter,
    /// The breaker the loop works on; written into `record.breaker` when state is saved.
    pub(super) breaker: LiveBreaker,
    pub(super) healthy_since: Option<u64>,
    pub(super) last_probe: Option<ProbeSummary>,
    pub(super) run_state: Option<RunState>,
    pub(super) pid: Option<u32>,
    pub(super) endpoint_class: Option<EndpointClass>,
    pub(super) last_event: Option<EventKind>,
    pub(super) suppressed: Option<Hold>,
    /// The last probe round asked the manager and it did not answer.
    pub(super) manager_silent: bool,
    /// The manager pushed an exit not yet acted on: a fact, needing no probe hysteresis.
    pub(super) exit_pushed: bool,
    /// Until when (ms) a failing health probe does not count: the service just started.
    pub(super) start_grace_until: u64,
    pub(super) step: Option<Step>,
    pub(super) record: ServiceRecord,
    /// When the current run of observe-only rounds began (bounded by `observe_max`).
    pub(super) observing_since: Option<u64>,
}

/// A heal call, owning what it needs so calls can run concurrently.
#[derive(Debug, Clone)]
pub(super) enum HealCall {
    Restart(SharedProcessManager, ServiceLabel),
    Repair(SharedProcessManager, Box<ServiceConfig>),
    RestartContainer(SharedContainerRuntime, String),
    EnsureRunning(SharedContainerRuntime),
}

#[derive(Debug)]
pub(super) enum Action {
    Heal { index: usize, call: HealCall },
    Notify { index: usize, event: Box<HealEvent> },
}

impl Tracked {
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
            hyst: RoundCounter::default(),
            breaker: LiveBreaker::default(),
            healthy_since: None,
            last_probe: None,
            run_state: None,
            pid: None,
            endpoint_class: None,
            last_event: None,
            suppressed: None,
            manager_silent: false,
            exit_pushed: false,
            start_grace_until: 0,
            observing_since: None,
            step: None,
            record: ServiceRecord::default(),
        }
    }

    pub(super) fn push_history(&mut self, attempt: AttemptRecord) {
        self.record.history.push(attempt);
        if self.record.history.len() > HISTORY_LEN {
            let excess = self.record.history.len() - HISTORY_LEN;
            self.record.history.drain(..excess);
        }
    }

    pub(super) fn snapshot(&self) -> ServiceSnapshot {
        let unknown = self.last_probe.as_ref().map(|p| p.failure)
            == Some(Some(ProbeFailure::ManagerUnavailable));
        let health = if unknown {
            // Its manager did not answer: neither healthy nor down.
            Health::Unknown
        } else if self.hyst.down {
            Health::Unhealthy
        } else if self.hyst.failures > 0 || self.hyst.had_failure {
            Health::Failing
        } else if self.hyst.seen {
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
            run_state: self.run_state,
            pid: self.pid,
            last_probe: self.last_probe.clone(),
            endpoint_class: self.endpoint_class,
            step: self.step,
            breaker: self.breaker.state(),
            last_event: self.last_event,
            in_flight: self.record.in_flight.clone(),
        }
    }
}
