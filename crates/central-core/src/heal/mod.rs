//! The heal loop: probe every service, apply hysteresis, decide one escalation step per down
//! service (observe, restart, repair, heal the substrate, escalate), respecting bulkheads,
//! backoff and the breaker; persist before acting; act under deadlines; report typed events.
//!
//! The decision itself is pure (`machine.rs`: one service's state, its round, the time and its
//! policy in; the new state and what to do out). [`HealLoop::run`] (`supervise.rs`) gives each
//! service its own schedule, its probe and heal calls their own tasks, and keeps what is
//! shared node-wide (dependency health, the heal budget, one state writer, the event bus), so a
//! slow call delays only its own service and a shutdown is seen at once. [`HealLoop::tick`] is
//! one whole round of every service (probes, then decisions in dependency order, then the heal
//! calls), for `status` and for tests; each call is bounded by the ports' deadline wrappers
//! ([`Ports::with_deadlines`]).
//!
//! A manager that does not answer makes its services *unknown* (no failure counted, nothing
//! restarted through it, `managers.rs` reports the manager itself once).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use futures::StreamExt;
use process_manager::ServiceLabel;
use tokio::sync::broadcast;

use crate::drift::DefinitionCheck;
use crate::events::{EventKind, EventSink, HealEvent};
use crate::graph::Graph;
use crate::model::{
    EndpointClass, Inventory, LoopSettings, ManagerKind, NotifySpec, ProbeCheck, Role, ServiceClass,
};
use crate::policy::LiveBreaker;
use crate::probe::{
    run_probe, CommandProbe, ContainerProbe, HttpProbe, PortOwner, Probe, ProbeFailure,
    ProbeResult, ProcessProbe, SubstrateProbe, TcpProbe,
};
use crate::state::{Clock, PersistedState, ServiceRecord, StateStore};

mod container;
mod control;
mod decide;
mod execute;
mod hooks;
mod machine;
mod managers;
mod setup;
mod snapshot;
mod supervise;
mod tracked;

pub use control::{Control, Through, Verb, VerbError, VerbOutcome};
pub use setup::{BuildError, LoopOptions, NodeTags, Ports, MIN_EARLY_TICK_GAP};
pub use snapshot::{Health, NodeStatus, ProbeSummary, ServiceSnapshot, TickReport};
use tracked::{Action, HealCall, Probed, Target, Tracked};

/// The longest a `watch_status` reader waits for a fresh snapshot while nothing happens.
pub const STATUS_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

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
    status_tx: tokio::sync::watch::Sender<NodeStatus>,
    /// When the snapshot was last sent to `watch_status` readers.
    status_sent: Option<tokio::time::Instant>,
    dirty: bool,
    /// Managers that did not answer, node-wide.
    silences: managers::Silences,
    /// How to compare an installed definition with the desired one, by manager name.
    definition_checks: BTreeMap<String, Arc<dyn DefinitionCheck>>,
    /// Service index by label.
    by_label: HashMap<String, usize>,
    /// Service verbs from [`HealLoop::control`]'s handles, read by [`HealLoop::run`].
    verbs: Option<tokio::sync::mpsc::Receiver<control::VerbRequest>>,
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
        // Every heal call is bounded whoever built the ports (wrapping twice is harmless).
        let ports = ports.with_deadlines(inventory);
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
                            name: container::container_ref(spec),
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
            let owner = match &target {
                Target::Process(m) => Some(PortOwner {
                    manager: m.clone(),
                    label: spec.label.clone(),
                }),
                _ => None,
            };
            let mut probes: Vec<Arc<dyn Probe>> = Vec::new();
            for p in &spec.probes {
                probes.push(match (&p.check, &target) {
                    (ProbeCheck::Process, Target::Process(m)) => {
                        let probe = ProcessProbe::new(m.clone(), spec.label.clone(), p.timeout);
                        let is_job = spec.config.as_ref().is_some_and(|c| c.is_job());
                        Arc::new(if is_job { probe.for_job() } else { probe })
                    }
                    (ProbeCheck::Process, Target::Container { runtime, name }) => {
                        // A container's "process" is the container itself.
                        Arc::new(ContainerProbe::of(
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
                            HttpProbe::new(client.clone(), endpoints.clone(), *status, p.timeout)
                                .with_owner(owner.clone());
                        Arc::new(match &ports.runtime {
                            Some(rt) => probe.with_vm(rt.clone()),
                            None => probe,
                        })
                    }
                    (ProbeCheck::Tcp { endpoints }, _) => {
                        let probe =
                            TcpProbe::new(endpoints.clone(), p.timeout).with_owner(owner.clone());
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
            if let Target::Container { runtime, name } = &target {
                // Its engine's restarts are watched first (crash loops: heal/container.rs).
                container::watch_engine(&mut probes, runtime, name, &spec.heal);
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
            if let Some(t) = services.last_mut() {
                t.monitor_only = spec.monitor_only;
                t.hooks = (&spec.hooks).into();
            }
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
                    t.state.step = rec.in_flight.as_ref().map(|a| a.step);
                    t.state.breaker = LiveBreaker::from_record(&rec.breaker);
                    t.state.record = rec;
                }
            }
        }

        let by_label = services
            .iter()
            .enumerate()
            .map(|(i, t)| (t.label.to_string(), i))
            .collect();
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
            status_tx: tokio::sync::watch::channel(NodeStatus::default()).0,
            status_sent: None,
            dirty: false,
            silences: managers::Silences::new(),
            definition_checks: BTreeMap::new(),
            by_label,
            verbs: None,
        })
    }

    /// Sends the snapshot to `watch_status` readers: at once when something happened (`now`),
    /// else at most every [`STATUS_EVERY`], so a node of thousands of services does not copy
    /// its whole snapshot on every probe.
    pub(super) fn refresh_status(&mut self, now: bool) {
        if self.status_tx.receiver_count() == 0 {
            return;
        }
        let due = self
            .status_sent
            .is_none_or(|at| at.elapsed() >= STATUS_EVERY);
        if now || due {
            self.status_tx.send_replace(self.status());
            self.status_sent = Some(tokio::time::Instant::now());
        }
    }

    /// The node's snapshot after each round (the latest only): what the local API and the
    /// fleet heartbeat show, without a probe round of their own.
    pub fn watch_status(&self) -> tokio::sync::watch::Receiver<NodeStatus> {
        self.status_tx.send_replace(self.status());
        self.status_tx.subscribe()
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

    /// Compares the installed definitions of `manager`'s services with the desired ones every
    /// `loop.drift_every` rounds of [`HealLoop::run`], and repairs drift.
    pub fn set_definition_check(&mut self, manager: &str, check: Arc<dyn DefinitionCheck>) {
        self.definition_checks.insert(manager.to_string(), check);
    }

    /// What a person asked of `label` (running unless stopped or disabled by request; also for
    /// an unknown label). Whoever starts services before the loop runs asks this first.
    pub fn desired(&self, label: &str) -> crate::state::Desired {
        self.by_label
            .get(label)
            .map(|&i| self.services[i].state.record.desired)
            .unwrap_or_default()
    }

    /// The loop's settings (interval, concurrency, deadlines).
    pub fn settings(&self) -> &LoopSettings {
        &self.settings
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
        let mut actions = Vec::new();
        for i in self.order.clone() {
            actions.extend(self.observe_round(i, &results[i], now, &mut events));
        }
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
        outcomes.sort_by_key(|done| done.index);
        let now = self.clock.now_ms();
        let mut after = Vec::new();
        for done in outcomes {
            for run in done.hooks {
                after.push(self.hook_event(done.index, run, now));
            }
            if let Some(notify) = self.settle(done.index, done.result, now, &mut after) {
                notifies.push(notify);
            }
        }
        self.persist();
        self.publish(&after);
        report.events.extend(after);

        let mut notified = self.execute(notifies).await;
        notified.sort_by_key(|done| done.index);
        let now = self.clock.now_ms();
        let mut last = Vec::new();
        for done in notified {
            self.unheld_done(done, now, &mut last);
        }
        self.publish(&last);
        report.events.extend(last);
        self.refresh_status(true);
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
                async move { (i, probe_service(&probes, now).await) }
            })
            .collect();
        let mut out: Vec<Option<Probed>> = vec![None; self.services.len()];
        let mut stream =
            futures::stream::iter(jobs).buffer_unordered(self.settings.max_concurrency);
        while let Some((i, probed)) = stream.next().await {
            out[i] = Some(probed);
        }
        out.into_iter()
            .map(|p| p.expect("every service was probed"))
            .collect()
    }

    fn event(&self, i: usize, kind: EventKind, at_ms: u64, detail: String) -> HealEvent {
        let t = &self.services[i];
        HealEvent {
            event: kind,
            at_ms,
            node_id: self.tags.node_id.clone(),
            platform: self.tags.platform.clone(),
            adapter_type: t.adapter.clone(),
            endpoint_class: t.state.endpoint_class,
            service: t.label.to_string(),
            class: t.class,
            step: t.state.step,
            attempt: None,
            error_kind: None,
            cause: None,
            outcome: None,
            detail,
        }
    }

    fn publish(&mut self, events: &[HealEvent]) {
        for e in &events.iter().map(HealEvent::redacted).collect::<Vec<_>>() {
            // By label through the index: a linear search per event made a round of failures
            // at 200k services quadratic (minutes of work with no chance to see a signal).
            if let Some(&i) = self.by_label.get(e.service.as_str()) {
                if !matches!(
                    e.event,
                    EventKind::ManagerUnreachable | EventKind::ManagerRecovered
                ) {
                    self.services[i].last_event = Some(e.event);
                }
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
                        breaker: t.state.breaker.to_record(),
                        ..t.state.record.clone()
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

/// One service's probe round: its probes in order, the first failure wins. A probe whose
/// manager did not answer does not end the round: the probes that do not go through the
/// manager (HTTP, TCP, command) still run and report. Only when nothing else failed is the
/// round *unknown* (its failure [`ProbeFailure::ManagerUnavailable`]).
async fn probe_service(probes: &[Arc<dyn Probe>], now: u64) -> Probed {
    let mut pass: Option<ProbeResult> = None;
    let mut silent: Option<ProbeResult> = None;
    let mut seen_state = (None, None);
    let mut process = None;
    let mut verdict = None;
    let started = tokio::time::Instant::now();
    for p in probes {
        let mut r = run_probe(p.as_ref()).await;
        if r.run_state.is_some() {
            seen_state = (r.run_state, r.pid);
            process = r.process.take();
        }
        if r.failure == Some(ProbeFailure::ManagerUnavailable) {
            silent.get_or_insert(r);
            continue;
        }
        if !r.passed() {
            verdict = Some(r);
            break;
        }
        // The most specific path that answered (a network probe after the process probe)
        // is the one reported.
        pass = Some(r);
    }
    let manager_silent = silent.is_some();
    let r = verdict
        .or(silent)
        .or(pass)
        .unwrap_or_else(|| ProbeResult::pass(EndpointClass::Localhost, "no probes configured"));
    Probed {
        summary: ProbeSummary {
            at_ms: now,
            passed: r.passed(),
            failure: r.failure,
            endpoint_class: r.endpoint_class,
            detail: r.detail,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        },
        run_state: seen_state.0,
        pid: seen_state.1,
        process,
        manager_silent,
        drift: None,
    }
}
