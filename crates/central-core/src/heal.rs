//! The heal loop: probe every service (concurrently, bounded), apply hysteresis, decide one
//! escalation step per down service (observe, restart, repair, heal the substrate, escalate),
//! respecting bulkheads, backoff and the breaker; persist before acting; act under deadlines;
//! report typed events.
//!
//! One [`HealLoop::tick`] is one round. Within it, probes run first (each under its deadline),
//! then decisions are taken in dependency order (so a dependency's state is known before its
//! dependents'), then the heal calls run concurrently, each under `loop.heal_timeout` (the
//! deadline wrappers of [`Ports::with_deadlines`] put it on every port call). Probes
//! and calls run at most `loop.max_concurrency` at a time, so a tick ends within (probe
//! deadline + heal deadline + notify deadline) per batch of that many hanging calls, whatever an
//! adapter does; with fewer hangs than the bound, one of each.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use container_runtime::SharedContainerRuntime;
use futures::StreamExt;
use process_manager::{RunState, ServiceConfig, ServiceLabel, SharedProcessManager};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::deadlines::{deadline_manager, deadline_runtime};
use crate::events::{CallFailure, EventKind, EventSink, FailureKind, HealEvent, Step, StepOutcome};
use crate::graph::Graph;
use crate::model::{
    EndpointClass, HealPolicy, Inventory, LoopSettings, ManagerKind, NotifySpec, ProbeCheck, Role,
    ServiceClass,
};
use crate::policy::{backoff, BreakerChange, LiveBreaker, RoundCounter, Transition};
use crate::probe::{
    run_command, run_probe, CommandEnd, CommandProbe, ContainerProbe, HttpProbe, Probe,
    ProbeFailure, ProbeResult, ProcessProbe, SubstrateProbe, TcpProbe,
};
use crate::state::{
    AttemptPhase, AttemptRecord, BreakerState, Clock, PersistedState, ServiceRecord, StateStore,
    HISTORY_LEN,
};

/// The least time between the start of a round and an early round woken by a service event.
pub const MIN_EARLY_TICK_GAP: Duration = Duration::from_secs(1);

/// The tags every event carries about the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeTags {
    /// The node id (the inventory's `node.id` wins over the resolved one).
    pub node_id: String,
    /// `macos`, `linux`, `other`.
    pub platform: String,
}

impl NodeTags {
    /// Tags from explicit values.
    pub fn new(node_id: impl Into<String>, platform: impl Into<String>) -> Self {
        NodeTags {
            node_id: node_id.into(),
            platform: platform.into(),
        }
    }

    /// Tags from the resolved identity, with the inventory's `node.id` override applied.
    pub fn from_identity(identity: &node_identity::NodeIdentity, inventory: &Inventory) -> Self {
        NodeTags {
            node_id: inventory
                .node
                .id
                .clone()
                .unwrap_or_else(|| identity.node_id.value.clone()),
            platform: identity.platform.value.to_string(),
        }
    }
}

/// The adapters the loop acts through: process managers by inventory name (`launchd`,
/// `systemd`, `embedded`, `null`) and the container runtime.
#[derive(Debug, Clone, Default)]
pub struct Ports {
    managers: BTreeMap<String, SharedProcessManager>,
    runtime: Option<SharedContainerRuntime>,
}

impl Ports {
    /// No adapters yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves services whose `manager` is `name`.
    pub fn with_manager(mut self, name: impl Into<String>, manager: SharedProcessManager) -> Self {
        self.managers.insert(name.into(), manager);
        self
    }

    /// The container runtime (the substrate and `manager = "container"` services).
    pub fn with_runtime(mut self, runtime: SharedContainerRuntime) -> Self {
        self.runtime = Some(runtime);
        self
    }

    /// Every adapter behind [`deadline_manager`]/[`deadline_runtime`] for `inventory`. The loop
    /// puts no deadline of its own around a port call: give it bounded ports.
    pub fn with_deadlines(self, inventory: &Inventory) -> Self {
        Ports {
            managers: self
                .managers
                .into_iter()
                .map(|(name, m)| (name, deadline_manager(m, inventory)))
                .collect(),
            runtime: self.runtime.map(|rt| deadline_runtime(rt, inventory)),
        }
    }
}

/// How a loop is built besides the inventory: tags, state directory, clock and RNG seed.
#[derive(Debug, Clone)]
pub struct LoopOptions {
    /// Event tags.
    pub tags: NodeTags,
    /// Where state is persisted; `None` uses the inventory's `loop.state_dir`, and if that is
    /// absent too nothing is persisted.
    pub state_dir: Option<PathBuf>,
    /// The wall clock (driven by tokio's clock).
    pub clock: Clock,
    /// Seed of the jitter RNG.
    pub rng_seed: u64,
}

impl LoopOptions {
    /// Options with the system clock and a random seed.
    pub fn new(tags: NodeTags) -> Self {
        LoopOptions {
            tags,
            state_dir: None,
            clock: Clock::system(),
            rng_seed: fastrand::u64(..),
        }
    }

    /// Persists state in `dir`.
    pub fn with_state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = Some(dir.into());
        self
    }

    /// Uses `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Seeds the jitter RNG.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.rng_seed = seed;
        self
    }
}

/// Why a loop could not be built from an inventory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A service names a manager the caller gave no adapter for.
    #[error("service {service} uses manager {manager:?}, but no {manager} adapter was given")]
    MissingManager {
        /// The service.
        service: String,
        /// The manager name.
        manager: String,
    },
    /// The substrate, a container service or a container probe needs the runtime.
    #[error("{what} needs the container runtime, but none was given")]
    MissingRuntime {
        /// What needs it.
        what: String,
    },
}

/// Health as the loop sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Health {
    /// Not probed yet.
    Unknown,
    /// Passing.
    Healthy,
    /// Failing, not yet for `failures_to_down` rounds (or recovering, not yet for
    /// `passes_to_up`).
    Failing,
    /// Down: being healed, suppressed or escalated.
    Unhealthy,
}

/// The last probe round of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeSummary {
    /// When (ms since the epoch).
    pub at_ms: u64,
    /// Whether every probe passed.
    pub passed: bool,
    /// The first failure.
    pub failure: Option<ProbeFailure>,
    /// The endpoint class that answered.
    pub endpoint_class: Option<EndpointClass>,
    /// What was seen.
    pub detail: String,
}

/// One service in a [`NodeStatus`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceSnapshot {
    /// Its label.
    pub label: String,
    /// The inventory's manager name, or `substrate`.
    pub manager: String,
    /// The adapter (`launchd`, `memory`, `colima`...).
    pub adapter_type: String,
    /// Its class.
    pub class: ServiceClass,
    /// Its health.
    pub health: Health,
    /// The run state, where a process probe saw one.
    pub run_state: Option<RunState>,
    /// The pid, where a process probe saw one.
    pub pid: Option<u32>,
    /// The last probe round.
    pub last_probe: Option<ProbeSummary>,
    /// The endpoint class of the last pass.
    pub endpoint_class: Option<EndpointClass>,
    /// The escalation step it is at (none when healthy).
    pub step: Option<Step>,
    /// The breaker.
    pub breaker: BreakerState,
    /// The last event about it.
    pub last_event: Option<EventKind>,
    /// The heal attempt waiting for its result.
    pub in_flight: Option<AttemptRecord>,
}

/// A node status snapshot for `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// The node id.
    pub node_id: String,
    /// The platform.
    pub platform: String,
    /// The role.
    pub role: Role,
    /// When (ms since the epoch).
    pub at_ms: u64,
    /// The substrate first (if any), then services in inventory order.
    pub services: Vec<ServiceSnapshot>,
    /// Problems with persisted state (a corrupt file moved aside, a failed write).
    pub warnings: Vec<String>,
}

/// What one tick did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TickReport {
    /// The events, in order.
    pub events: Vec<HealEvent>,
    /// Heal calls made.
    pub heals: usize,
}

impl TickReport {
    /// `(event, service)` pairs, for compact assertions.
    pub fn summary(&self) -> Vec<(EventKind, String)> {
        self.events
            .iter()
            .map(|e| (e.event, e.service.clone()))
            .collect()
    }
}

/// One service's probe round, with the run state a process probe saw.
#[derive(Debug, Clone)]
struct Probed {
    summary: ProbeSummary,
    run_state: Option<RunState>,
    pid: Option<u32>,
}

#[derive(Debug, Clone)]
enum Target {
    Process(SharedProcessManager),
    Container {
        runtime: SharedContainerRuntime,
        name: String,
    },
    Substrate(SharedContainerRuntime),
}

#[derive(Debug)]
struct Tracked {
    label: ServiceLabel,
    class: ServiceClass,
    manager_name: String,
    adapter: String,
    target: Target,
    probes: Vec<Arc<dyn Probe>>,
    policy: HealPolicy,
    config: Option<ServiceConfig>,
    throttle: Option<Duration>,
    hyst: RoundCounter,
    /// The breaker the loop works on; written into `record.breaker` when state is saved.
    breaker: LiveBreaker,
    healthy_since: Option<u64>,
    last_probe: Option<ProbeSummary>,
    run_state: Option<RunState>,
    pid: Option<u32>,
    endpoint_class: Option<EndpointClass>,
    last_event: Option<EventKind>,
    suppressed: Option<String>,
    step: Option<Step>,
    record: ServiceRecord,
    /// When the current run of observe-only rounds began (bounded by `observe_max`).
    observing_since: Option<u64>,
}

/// A heal call, owning what it needs so calls can run concurrently.
#[derive(Debug, Clone)]
enum HealCall {
    Restart(SharedProcessManager, ServiceLabel),
    Repair(SharedProcessManager, Box<ServiceConfig>),
    RestartContainer(SharedContainerRuntime, String),
    EnsureRunning(SharedContainerRuntime),
}

#[derive(Debug)]
enum Action {
    Heal { index: usize, call: HealCall },
    Notify { index: usize, event: Box<HealEvent> },
}

/// The heal loop over one inventory.
pub struct HealLoop {
    services: Vec<Tracked>,
    order: Vec<usize>,
    /// Transitive dependencies of each service, by index.
    deps: Vec<Vec<usize>>,
    settings: LoopSettings,
    notify: Option<NotifySpec>,
    tags: NodeTags,
    role: Role,
    clock: Clock,
    rng: fastrand::Rng,
    store: Option<StateStore>,
    warnings: Vec<String>,
    sinks: Vec<Arc<dyn EventSink>>,
    events_tx: broadcast::Sender<HealEvent>,
    dirty: bool,
}

impl std::fmt::Debug for HealLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealLoop")
            .field("services", &self.services.len())
            .field("tags", &self.tags)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl HealLoop {
    /// Builds a loop: real probes from the inventory, adapters from `ports`, state loaded from
    /// the state directory (a corrupt file is moved aside; see [`HealLoop::status`] warnings).
    pub fn new(
        inventory: &Inventory,
        ports: Ports,
        options: LoopOptions,
    ) -> Result<HealLoop, BuildError> {
        let client = HttpProbe::client();
        let mut services = Vec::with_capacity(inventory.services.len() + 1);
        if let Some(sub) = &inventory.substrate {
            let runtime = ports
                .runtime
                .clone()
                .ok_or_else(|| BuildError::MissingRuntime {
                    what: format!("the substrate {}", sub.name),
                })?;
            services.push(Tracked::new(
                sub.name.clone(),
                ServiceClass::InfraCritical,
                "substrate".into(),
                runtime.adapter().to_string(),
                Target::Substrate(runtime.clone()),
                vec![Arc::new(SubstrateProbe::new(runtime, sub.timeout))],
                sub.heal.clone(),
                None,
                None,
            ));
        }
        for spec in &inventory.services {
            let (target, adapter, throttle) = match spec.manager {
                ManagerKind::Container => {
                    let runtime =
                        ports
                            .runtime
                            .clone()
                            .ok_or_else(|| BuildError::MissingRuntime {
                                what: format!("container service {}", spec.label),
                            })?;
                    let adapter = runtime.adapter().to_string();
                    (
                        Target::Container {
                            runtime,
                            name: spec
                                .container
                                .clone()
                                .unwrap_or_else(|| spec.label.to_string()),
                        },
                        adapter,
                        None,
                    )
                }
                kind => {
                    let manager = ports.managers.get(kind.as_str()).cloned().ok_or_else(|| {
                        BuildError::MissingManager {
                            service: spec.label.to_string(),
                            manager: kind.as_str().to_string(),
                        }
                    })?;
                    let caps = manager.capabilities();
                    (
                        Target::Process(manager),
                        caps.adapter,
                        caps.respawn_throttle,
                    )
                }
            };
            let mut probes: Vec<Arc<dyn Probe>> = Vec::new();
            for p in &spec.probes {
                probes.push(match (&p.check, &target) {
                    (ProbeCheck::Process, Target::Process(m)) => {
                        Arc::new(ProcessProbe::new(m.clone(), spec.label.clone(), p.timeout))
                    }
                    (ProbeCheck::Process, Target::Container { runtime, name }) => {
                        // A container's "process" is the container itself.
                        Arc::new(ContainerProbe::new(
                            runtime.clone(),
                            name.clone(),
                            EndpointClass::Localhost,
                            p.timeout,
                        ))
                    }
                    (ProbeCheck::Container { name }, _) => {
                        let runtime =
                            ports
                                .runtime
                                .clone()
                                .ok_or_else(|| BuildError::MissingRuntime {
                                    what: format!("the container probe of {}", spec.label),
                                })?;
                        Arc::new(ContainerProbe::new(
                            runtime,
                            name.clone(),
                            EndpointClass::Localhost,
                            p.timeout,
                        ))
                    }
                    (ProbeCheck::Http { endpoints, status }, _) => {
                        let probe =
                            HttpProbe::new(client.clone(), endpoints.clone(), *status, p.timeout);
                        Arc::new(match &ports.runtime {
                            Some(rt) => probe.with_vm(rt.clone()),
                            None => probe,
                        })
                    }
                    (ProbeCheck::Tcp { endpoints }, _) => {
                        let probe = TcpProbe::new(endpoints.clone(), p.timeout);
                        Arc::new(match &ports.runtime {
                            Some(rt) => probe.with_vm(rt.clone()),
                            None => probe,
                        })
                    }
                    (ProbeCheck::Command { argv, exit_code }, _) => {
                        Arc::new(CommandProbe::new(argv.clone(), *exit_code, p.timeout))
                    }
                    (ProbeCheck::Process, Target::Substrate(runtime)) => {
                        Arc::new(SubstrateProbe::new(runtime.clone(), p.timeout))
                    }
                });
            }
            services.push(Tracked::new(
                spec.label.clone(),
                spec.class,
                spec.manager.as_str().to_string(),
                adapter,
                target,
                probes,
                spec.heal.clone(),
                spec.config.clone(),
                throttle,
            ));
        }

        // The substrate (first, when there is one) depends on nothing; services on what they
        // name. Dependencies come first in `order`.
        let offset = usize::from(inventory.substrate.is_some());
        let graph = Graph::from_named(services.iter().enumerate().map(|(i, t)| {
            let named = i
                .checked_sub(offset)
                .map_or(&[][..], |s| inventory.services[s].depends_on.as_slice());
            (t.label.as_str(), named.iter().map(ServiceLabel::as_str))
        }));
        let deps = (0..services.len())
            .map(|i| graph.dependencies_of(i))
            .collect::<Vec<_>>();
        let order = graph.dependency_order();

        let state_dir = options
            .state_dir
            .clone()
            .or_else(|| inventory.settings.state_dir.clone());
        let store = state_dir.map(StateStore::new);
        let mut warnings = Vec::new();
        if let Some(store) = &store {
            let (mut state, warning) = store.load();
            warnings.extend(warning);
            for t in &mut services {
                if let Some(rec) = state.services.remove(t.label.as_str()) {
                    t.step = rec.in_flight.as_ref().map(|a| a.step);
                    t.breaker = LiveBreaker::from_record(&rec.breaker);
                    t.record = rec;
                }
            }
        }

        Ok(HealLoop {
            services,
            order,
            deps,
            settings: inventory.settings.clone(),
            notify: inventory.notify.clone(),
            tags: options.tags,
            role: inventory.node.role,
            clock: options.clock,
            rng: fastrand::Rng::with_seed(options.rng_seed),
            store,
            warnings,
            sinks: Vec::new(),
            events_tx: broadcast::channel(1024).0,
            dirty: false,
        })
    }

    /// Adds a sink that receives every event (e.g. a [`crate::JsonLinesSink`] on a file).
    pub fn add_sink(&mut self, sink: Arc<dyn EventSink>) {
        self.sinks.push(sink);
    }

    /// A live feed of events. A receiver that falls behind by more than 1024 events loses the
    /// oldest (`RecvError::Lagged`).
    pub fn subscribe(&self) -> broadcast::Receiver<HealEvent> {
        self.events_tx.subscribe()
    }

    /// Replaces a service's probes (a seam for custom or scripted probes). Returns whether the
    /// label is known.
    pub fn set_probes(&mut self, label: &str, probes: Vec<Arc<dyn Probe>>) -> bool {
        match self.services.iter_mut().find(|t| t.label.as_str() == label) {
            Some(t) => {
                t.probes = probes;
                true
            }
            None => false,
        }
    }

    /// The loop's settings (interval, concurrency, deadlines).
    pub fn settings(&self) -> &LoopSettings {
        &self.settings
    }

    /// Runs ticks every `loop.interval` until `shutdown` completes, then saves state. A tick in
    /// progress is abandoned at shutdown: its heal calls are idempotent and were recorded before
    /// they started, so the next run neither repeats nor loses them.
    ///
    /// Managers that push service events (see `Capabilities::pushes_events`) wake the loop early
    /// when a service exits or changes state, so a crash is seen at once rather than at the next
    /// round; early rounds are at least [`MIN_EARLY_TICK_GAP`] apart so an event storm cannot
    /// turn into a probe storm.
    pub async fn run(&mut self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let (wake_tx, mut wake_rx) = tokio::sync::mpsc::channel::<()>(1);
        let forwarders = self.forward_service_events(wake_tx);
        let interval = self.settings.interval;
        let mut next = tokio::time::Instant::now();
        loop {
            let started = tokio::time::Instant::now();
            tokio::select! {
                _ = &mut shutdown => break,
                _ = self.tick() => {}
            }
            next += interval;
            let now = tokio::time::Instant::now();
            if next < now {
                // A slow tick does not cause a burst of catch-up ticks.
                next = now;
            }
            let earliest = started + MIN_EARLY_TICK_GAP.min(interval);
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep_until(next) => {}
                Some(()) = wake_rx.recv() => {
                    tokio::select! {
                        _ = &mut shutdown => break,
                        _ = tokio::time::sleep_until(earliest) => {}
                    }
                    next = tokio::time::Instant::now();
                }
            }
        }
        for task in forwarders {
            task.abort();
        }
        self.persist();
    }

    /// One forwarding task per distinct manager that pushes events, each waking the loop.
    fn forward_service_events(
        &self,
        wake: tokio::sync::mpsc::Sender<()>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let mut seen: Vec<*const ()> = Vec::new();
        let mut tasks = Vec::new();
        for t in &self.services {
            let Target::Process(manager) = &t.target else {
                continue;
            };
            let key = Arc::as_ptr(manager) as *const ();
            if seen.contains(&key) {
                continue;
            }
            seen.push(key);
            let Some(mut events) = manager.events() else {
                continue;
            };
            let wake = wake.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    match events.recv().await {
                        // A full channel means a wake-up is already pending.
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                            let _ = wake.try_send(());
                        }
                        Err(broadcast::error::RecvError::Closed) => return,
                    }
                }
            }));
        }
        tasks
    }

    /// One probe round without healing and without publishing events, for `status`. Health in
    /// the snapshot reflects the hysteresis so far (a single failed round is `failing`).
    pub async fn probe_round(&mut self) -> NodeStatus {
        let results = self.probe_all().await;
        let now = self.clock.now_ms();
        let mut discard = Vec::new();
        for i in self.order.clone() {
            self.observe_round(i, &results[i], now, &mut discard);
        }
        self.status()
    }

    /// The current snapshot.
    pub fn status(&self) -> NodeStatus {
        NodeStatus {
            node_id: self.tags.node_id.clone(),
            platform: self.tags.platform.clone(),
            role: self.role,
            at_ms: self.clock.now_ms(),
            services: self.services.iter().map(Tracked::snapshot).collect(),
            warnings: self.warnings.clone(),
        }
    }

    /// One round: probe, decide, persist, heal, persist. Returns the events in order (they are
    /// also traced, sent to the sinks and to subscribers).
    pub async fn tick(&mut self) -> TickReport {
        let results = self.probe_all().await;
        let now = self.clock.now_ms();
        let mut events = Vec::new();
        for i in self.order.clone() {
            self.observe_round(i, &results[i], now, &mut events);
        }
        let mut actions = Vec::new();
        for i in self.order.clone() {
            if let Some(action) = self.decide(i, now, &mut events) {
                actions.push(action);
            }
        }
        // The attempt is on disk before the call: a crash from here on does not repeat it.
        self.persist();
        self.publish(&events);
        let mut report = TickReport {
            heals: actions
                .iter()
                .filter(|a| matches!(a, Action::Heal { .. }))
                .count(),
            events,
        };

        let (heals, mut notifies): (Vec<_>, Vec<_>) = actions
            .into_iter()
            .partition(|a| matches!(a, Action::Heal { .. }));
        let mut outcomes = self.execute(heals).await;
        // Calls finish in any order; events are reported in service order, so a tick's events
        // do not depend on which adapter answered first.
        outcomes.sort_by_key(|(index, _)| *index);
        let now = self.clock.now_ms();
        let mut after = Vec::new();
        for (index, result) in outcomes {
            if let Some(notify) = self.settle(index, result, now, &mut after) {
                notifies.push(notify);
            }
        }
        self.persist();
        self.publish(&after);
        report.events.extend(after);

        let mut notified = self.execute(notifies).await;
        notified.sort_by_key(|(index, _)| *index);
        let now = self.clock.now_ms();
        let mut last = Vec::new();
        for (index, result) in notified {
            if let Err(CallFailure { kind, detail }) = result {
                let mut e = self.event(index, EventKind::HealFailed, now, detail);
                e.step = Some(Step::Escalate);
                e.error_kind = Some(kind);
                e.outcome = Some(StepOutcome::Failed);
                last.push(e);
            }
        }
        self.publish(&last);
        report.events.extend(last);
        report
    }

    async fn probe_all(&self) -> Vec<Probed> {
        let now = self.clock.now_ms();
        // Collected into owned futures first: a stream over a borrowing iterator would make
        // the loop's future not `Send` (it could not be spawned).
        let jobs: Vec<_> = self
            .services
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let probes = t.probes.clone();
                async move {
                    let mut pass: Option<ProbeResult> = None;
                    let mut seen_state = (None, None);
                    for p in &probes {
                        let r = run_probe(p.as_ref()).await;
                        if r.run_state.is_some() {
                            seen_state = (r.run_state, r.pid);
                        }
                        if !r.passed() {
                            return (i, r, seen_state);
                        }
                        // The most specific path that answered (a network probe after the
                        // process probe) is the one reported.
                        pass = Some(r);
                    }
                    let r = pass.unwrap_or_else(|| {
                        ProbeResult::pass(EndpointClass::Localhost, "no probes configured")
                    });
                    (i, r, seen_state)
                }
            })
            .collect();
        let mut out: Vec<Option<Probed>> = vec![None; self.services.len()];
        let mut stream =
            futures::stream::iter(jobs).buffer_unordered(self.settings.max_concurrency);
        while let Some((i, r, (run_state, pid))) = stream.next().await {
            out[i] = Some(Probed {
                summary: ProbeSummary {
                    at_ms: now,
                    passed: r.passed(),
                    failure: r.failure,
                    endpoint_class: r.endpoint_class,
                    detail: r.detail,
                },
                run_state,
                pid,
            });
        }
        out.into_iter()
            .map(|p| p.expect("every service was probed"))
            .collect()
    }

    fn observe_round(&mut self, i: usize, probed: &Probed, now: u64, events: &mut Vec<HealEvent>) {
        let summary = &probed.summary;
        let t = &mut self.services[i];
        let policy = t.policy.clone();
        t.last_probe = Some(summary.clone());
        t.run_state = probed.run_state;
        t.pid = probed.pid;
        if summary.passed {
            t.endpoint_class = summary.endpoint_class;
        }
        let transition = t.hyst.record(summary.passed, &policy.hysteresis);
        if !summary.passed {
            t.healthy_since = None;
            let failures = t.hyst.failures;
            let mut e = self.event(
                i,
                EventKind::ProbeFailed,
                now,
                format!(
                    "{} ({failures}/{} to act)",
                    summary.detail,
                    policy.hysteresis.failures_to_down()
                ),
            );
            e.error_kind = summary.failure.map(FailureKind::from);
            e.endpoint_class = None;
            events.push(e);
        } else {
            let recovered = transition == Transition::Recovered;
            let t = &mut self.services[i];
            let verified =
                t.record.in_flight.is_some() && t.hyst.passes >= policy.hysteresis.passes_to_up();
            if recovered {
                let e = self.event(i, EventKind::ProbeRecovered, now, summary.detail.clone());
                events.push(e);
            }
            if verified {
                let t = &mut self.services[i];
                let attempt = t.record.in_flight.take().expect("checked above");
                t.push_history(attempt.clone());
                self.dirty = true;
                let mut e = self.event(
                    i,
                    EventKind::HealSucceeded,
                    now,
                    format!(
                        "healthy again after {} (attempt {})",
                        attempt.step, attempt.attempt
                    ),
                );
                e.step = Some(attempt.step);
                e.attempt = Some(attempt.attempt);
                e.outcome = attempt.outcome.clone();
                events.push(e);
            }
            let t = &mut self.services[i];
            if recovered || verified {
                t.suppressed = None;
                t.step = None;
                t.observing_since = None;
            }
            if t.hyst.healthy() && t.healthy_since.is_none() {
                t.healthy_since = Some(now);
            }
        }
        let t = &mut self.services[i];
        // Healthy long enough: the episode is over.
        if let Some(since) = t.healthy_since {
            let stable = now.saturating_sub(since) >= policy.stable_after.as_millis() as u64;
            if stable && (t.record.episode_attempts > 0 || t.record.next_allowed_ms > 0) {
                t.record.episode_attempts = 0;
                t.record.episode_restarts = 0;
                t.record.next_allowed_ms = 0;
                self.dirty = true;
            }
        }
        let t = &mut self.services[i];
        let healthy_since = t.healthy_since;
        match t
            .breaker
            .tick(&policy.breaker, policy.stable_after, now, healthy_since)
        {
            BreakerChange::HalfOpened => {
                self.dirty = true;
                let e = self.event(
                    i,
                    EventKind::BreakerHalfOpen,
                    now,
                    "cool-down over: one trial heal allowed".to_string(),
                );
                events.push(e);
            }
            BreakerChange::Closed => {
                self.dirty = true;
                let e = self.event(
                    i,
                    EventKind::BreakerClosed,
                    now,
                    format!("healthy for {:?}: healing resumes", policy.stable_after),
                );
                events.push(e);
            }
            BreakerChange::Opened | BreakerChange::None => {}
        }
    }

    /// Whether service `i` counts as down for its dependents.
    fn is_failing(&self, i: usize) -> bool {
        let h = &self.services[i].hyst;
        h.down || h.failures > 0
    }

    fn suppress(
        &mut self,
        i: usize,
        step: Step,
        cause: String,
        detail: String,
        now: u64,
        events: &mut Vec<HealEvent>,
    ) {
        let t = &mut self.services[i];
        if t.suppressed.as_deref() == Some(cause.as_str()) {
            return;
        }
        t.suppressed = Some(cause.clone());
        t.step = Some(step);
        let mut e = self.event(i, EventKind::HealSuppressed, now, detail);
        e.step = Some(step);
        e.cause = Some(cause);
        e.outcome = Some(if step == Step::Observe {
            StepOutcome::Observed
        } else {
            StepOutcome::Suppressed
        });
        events.push(e);
    }

    /// Records a failed heal on the breaker; when it opens, a person is called.
    fn breaker_failed(
        &mut self,
        i: usize,
        now: u64,
        events: &mut Vec<HealEvent>,
    ) -> Option<Action> {
        let t = &mut self.services[i];
        let policy = t.policy.clone();
        self.dirty = true;
        if t.breaker.failure(&policy.breaker, now) != BreakerChange::Opened {
            return None;
        }
        t.step = Some(Step::Escalate);
        t.suppressed = Some("breaker-open".into());
        let failures = t.breaker.failures();
        let mut opened = self.event(
            i,
            EventKind::BreakerOpened,
            now,
            format!(
                "{failures} failed heals within {:?}: no more heals for {:?}",
                policy.breaker.window(),
                policy.breaker.cooldown()
            ),
        );
        opened.step = Some(Step::Escalate);
        events.push(opened);
        let mut escalated = self.event(
            i,
            EventKind::HealEscalated,
            now,
            format!(
                "{} needs a person: it keeps failing after heals",
                self.services[i].label
            ),
        );
        escalated.step = Some(Step::Escalate);
        // A failing notify command is reported as its own heal.failed after it ran.
        escalated.outcome = Some(StepOutcome::Escalated {
            notify_command: self.notify.is_some(),
        });
        events.push(escalated.clone());
        self.notify.as_ref().map(|_| Action::Notify {
            index: i,
            event: Box::new(escalated),
        })
    }

    fn decide(&mut self, i: usize, now: u64, events: &mut Vec<HealEvent>) -> Option<Action> {
        let policy = self.services[i].policy.clone();
        if !self.services[i].hyst.wants_heal(&policy.hysteresis) {
            return None;
        }
        // The previous attempt had its chance: `failures_to_down` new failures since it began.
        if let Some(attempt) = self.services[i].record.in_flight.clone() {
            if now < attempt.started_ms + policy.grace.as_millis() as u64 {
                return None;
            }
            let t = &mut self.services[i];
            t.record.in_flight = None;
            t.push_history(attempt.clone());
            let mut e = self.event(
                i,
                EventKind::HealFailed,
                now,
                format!(
                    "still down after {} (attempt {})",
                    attempt.step, attempt.attempt
                ),
            );
            e.step = Some(attempt.step);
            e.attempt = Some(attempt.attempt);
            e.error_kind = Some(FailureKind::StillDown);
            e.outcome = attempt.outcome.clone();
            events.push(e);
            if let Some(notify) = self.breaker_failed(i, now, events) {
                return Some(notify);
            }
        }
        let failure = self.services[i].last_probe.as_ref().and_then(|p| p.failure);
        let observing = failure.is_some_and(|f| f.is_observe());
        let t = &mut self.services[i];
        let since = if observing {
            *t.observing_since.get_or_insert(now)
        } else {
            t.observing_since = None;
            now
        };
        let observed_too_long =
            now.saturating_sub(since) >= t.policy.observe_max.as_millis() as u64;
        if observing && observed_too_long && t.suppressed.as_deref() != Some("observe-limit") {
            // The supervisor has had its chance (launchd respawns a crash loop forever, and
            // says so only as "spawn scheduled"): from here the loop's own ladder applies.
            t.suppressed = Some("observe-limit".into());
            let detail = format!(
                "observed for {:?} (observe_max) and still not healthy: healing it ourselves",
                t.policy.observe_max
            );
            let mut e = self.event(i, EventKind::ProbeFailed, now, detail);
            e.step = Some(Step::Observe);
            e.cause = Some("observe-limit".into());
            events.push(e);
        }
        if let Some(f) = failure.filter(|f| f.is_observe() && !observed_too_long) {
            let detail = match f {
                ProbeFailure::SupervisorRestarting => {
                    "the supervisor is already restarting it: observing, not restarting on top"
                }
                _ => "it is starting: observing",
            };
            self.suppress(
                i,
                Step::Observe,
                f.as_str().into(),
                detail.into(),
                now,
                events,
            );
            return None;
        }
        // The probe could not judge the service: its own program is missing, or the manager
        // could not be asked (its CLI missing, its daemon or bus down, no permission). The
        // service is not known to be down, and a restart would not fix the probe.
        let unjudged = match failure {
            Some(ProbeFailure::BinaryNotFound) => Some((
                "probe-binary-not-found",
                "the probe's own program is missing (check its path and PATH)",
            )),
            Some(ProbeFailure::ManagerUnavailable) => Some((
                "manager-unavailable",
                "the process manager could not be asked (see the probe detail)",
            )),
            _ => None,
        };
        if let Some((cause, why)) = unjudged {
            let detail = format!("{why}; not healing the service on its word");
            self.suppress(i, Step::Observe, cause.into(), detail, now, events);
            return None;
        }
        // Bulkhead: a down infra-critical dependency is the root cause; it is healed first.
        let blocker = self.deps[i]
            .iter()
            .copied()
            .find(|&d| self.services[d].class == ServiceClass::InfraCritical && self.is_failing(d));
        if let Some(d) = blocker {
            let dep = &self.services[d];
            let cause = format!("dependency {} ({}) is down", dep.label, dep.class);
            let detail = format!("{cause}: healing it first, not {}", self.services[i].label);
            self.suppress(i, Step::Restart, cause, detail, now, events);
            return None;
        }
        let t = &mut self.services[i];
        if t.breaker.state() == BreakerState::Open {
            return None;
        }
        if now < t.record.next_allowed_ms {
            return None;
        }
        if !t.breaker.allows() {
            return None;
        }
        let previous = t.record.history.last().map(|a| a.step);
        let can_repair = t.config.is_some() && matches!(t.target, Target::Process(_));
        let step = match &t.target {
            Target::Substrate(_) => Step::HealSubstrate,
            _ if can_repair && failure == Some(ProbeFailure::NotInstalled) => Step::Repair,
            _ if can_repair
                && policy.repair_after > 0
                && t.record.episode_restarts >= policy.repair_after
                && previous == Some(Step::Restart) =>
            {
                Step::Repair
            }
            _ => Step::Restart,
        };
        let call = match (&t.target, step) {
            (Target::Substrate(rt), _) => HealCall::EnsureRunning(rt.clone()),
            (Target::Container { runtime, name }, _) => {
                HealCall::RestartContainer(runtime.clone(), name.clone())
            }
            (Target::Process(m), Step::Repair) => HealCall::Repair(
                m.clone(),
                Box::new(t.config.clone().expect("can_repair checked the config")),
            ),
            (Target::Process(m), _) => HealCall::Restart(m.clone(), t.label.clone()),
        };
        t.record.episode_attempts += 1;
        if step == Step::Restart {
            t.record.episode_restarts += 1;
        }
        let attempt = t.record.episode_attempts;
        // The cool-down counts from the start of this attempt, not from its success.
        let mut wait = backoff(&policy.backoff, attempt, &mut self.rng);
        if let Some(throttle) = t.throttle {
            wait = wait.max(throttle);
        }
        t.record.next_allowed_ms = now + wait.as_millis() as u64;
        t.record.in_flight = Some(AttemptRecord {
            attempt,
            step,
            started_ms: now,
            phase: AttemptPhase::Started,
            outcome: None,
        });
        // Verification needs `failures_to_down` fresh failures.
        t.hyst.failures = 0;
        t.suppressed = None;
        t.step = Some(step);
        self.dirty = true;
        let mut e = self.event(
            i,
            EventKind::HealStarted,
            now,
            format!("{step} (attempt {attempt}; next attempt no sooner than {wait:?})"),
        );
        e.step = Some(step);
        e.attempt = Some(attempt);
        events.push(e);
        Some(Action::Heal { index: i, call })
    }

    async fn execute(
        &self,
        actions: Vec<Action>,
    ) -> Vec<(usize, Result<Option<StepOutcome>, CallFailure>)> {
        if actions.is_empty() {
            return Vec::new();
        }
        let notify = self.notify.clone();
        let jobs: Vec<_> = actions
            .into_iter()
            .map(|action| {
                let notify = notify.clone();
                async move {
                    match action {
                        // The ports' deadline wrappers bound the call (`Ports::with_deadlines`).
                        Action::Heal { index, call } => (index, heal_call(call).await.map(Some)),
                        Action::Notify { index, event } => {
                            let Some(spec) = notify else {
                                return (index, Ok(None));
                            };
                            let env = [
                                ("JOELCLAW_EVENT", event.to_json_line()),
                                ("JOELCLAW_SERVICE", event.service.clone()),
                            ];
                            let r = match run_command(&spec.argv, &env, spec.timeout).await {
                                CommandEnd::Exited(Some(0)) => Ok(None),
                                CommandEnd::Exited(code) => Err(CallFailure::new(
                                    FailureKind::NotifyFailed,
                                    format!("notify command exited {code:?}"),
                                )),
                                CommandEnd::NotFound(why) => {
                                    Err(CallFailure::new(FailureKind::BinaryNotFound, why))
                                }
                                CommandEnd::TimedOut => Err(CallFailure::new(
                                    FailureKind::Timeout,
                                    format!("notify command killed after {:?}", spec.timeout),
                                )),
                                CommandEnd::Failed(why) => {
                                    Err(CallFailure::new(FailureKind::NotifyFailed, why))
                                }
                            };
                            (index, r)
                        }
                    }
                }
            })
            .collect();
        futures::stream::iter(jobs)
            .buffer_unordered(self.settings.max_concurrency)
            .collect()
            .await
    }

    /// Applies a heal call's result. A failed call is a failed heal at once (and may open the
    /// breaker); a successful one waits for the probes to say whether it worked.
    fn settle(
        &mut self,
        i: usize,
        result: Result<Option<StepOutcome>, CallFailure>,
        now: u64,
        events: &mut Vec<HealEvent>,
    ) -> Option<Action> {
        self.dirty = true;
        let policy = self.services[i].policy.clone();
        let t = &mut self.services[i];
        match result {
            Ok(outcome) => {
                if let Some(a) = t.record.in_flight.as_mut() {
                    a.phase = AttemptPhase::Done;
                    a.outcome = outcome;
                }
                None
            }
            Err(CallFailure { kind, detail }) => {
                let attempt = t.record.in_flight.take();
                if let Some(a) = &attempt {
                    t.push_history(a.clone());
                }
                // Still down: the next attempt comes after the backoff, not after N more rounds.
                t.hyst.failures = policy.hysteresis.failures_to_down();
                let mut e = self.event(i, EventKind::HealFailed, now, detail);
                e.step = attempt.as_ref().map(|a| a.step);
                e.attempt = attempt.as_ref().map(|a| a.attempt);
                e.error_kind = Some(kind);
                e.outcome = Some(StepOutcome::Failed);
                events.push(e);
                self.breaker_failed(i, now, events)
            }
        }
    }

    fn event(&self, i: usize, kind: EventKind, at_ms: u64, detail: String) -> HealEvent {
        let t = &self.services[i];
        HealEvent {
            event: kind,
            at_ms,
            node_id: self.tags.node_id.clone(),
            platform: self.tags.platform.clone(),
            adapter_type: t.adapter.clone(),
            endpoint_class: t.endpoint_class,
            service: t.label.to_string(),
            class: t.class,
            step: t.step,
            attempt: None,
            error_kind: None,
            cause: None,
            outcome: None,
            detail,
        }
    }

    fn publish(&mut self, events: &[HealEvent]) {
        for e in events {
            if let Some(t) = self
                .services
                .iter_mut()
                .find(|t| t.label.as_str() == e.service)
            {
                t.last_event = Some(e.event);
            }
            e.trace();
            for sink in &self.sinks {
                sink.emit(e);
            }
            // No subscriber is not an error.
            let _ = self.events_tx.send(e.clone());
        }
    }

    fn persist(&mut self) {
        if !self.dirty {
            return;
        }
        let Some(store) = &self.store else {
            self.dirty = false;
            return;
        };
        let state = PersistedState {
            version: 1,
            services: self
                .services
                .iter()
                .map(|t| {
                    let record = ServiceRecord {
                        breaker: t.breaker.to_record(),
                        ..t.record.clone()
                    };
                    (t.label.to_string(), record)
                })
                .collect(),
        };
        match store.save(&state) {
            Ok(()) => self.dirty = false,
            Err(e) => {
                let warning = format!("cannot write heal state {}: {e}", store.path().display());
                tracing::warn!(target: "joelclaw::heal", "{warning}");
                if !self.warnings.contains(&warning) {
                    self.warnings.push(warning);
                }
            }
        }
    }
}

async fn heal_call(call: HealCall) -> Result<StepOutcome, CallFailure> {
    match call {
        HealCall::Restart(m, label) => m
            .restart(&label)
            .await
            .map(|result| StepOutcome::Restarted { result })
            .map_err(|e| CallFailure::new(e.kind(), e.to_string())),
        HealCall::Repair(m, config) => m
            .enable(&config)
            .await
            .map(|result| StepOutcome::Repaired { result })
            .map_err(|e| CallFailure::new(e.kind(), e.to_string())),
        HealCall::RestartContainer(rt, name) => rt
            .restart_container(&name)
            .await
            .map(|result| StepOutcome::ContainerRestarted { result })
            .map_err(|e| CallFailure::new(e.kind(), e.to_string())),
        HealCall::EnsureRunning(rt) => rt
            .ensure_running()
            .await
            .map(|result| StepOutcome::SubstrateStarted { result })
            .map_err(|e| CallFailure::new(e.kind(), e.to_string())),
    }
}

impl Tracked {
    #[allow(clippy::too_many_arguments)]
    fn new(
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
            observing_since: None,
            step: None,
            record: ServiceRecord::default(),
        }
    }

    fn push_history(&mut self, attempt: AttemptRecord) {
        self.record.history.push(attempt);
        if self.record.history.len() > HISTORY_LEN {
            let excess = self.record.history.len() - HISTORY_LEN;
            self.record.history.drain(..excess);
        }
    }

    fn snapshot(&self) -> ServiceSnapshot {
        let health = if self.hyst.down {
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
