//! [`HealLoop::run`]: every service on its own schedule, its I/O in its own task.
//!
//! The node-level part here owns what is shared (the services' state and thus dependency
//! health for bulkheads, one state writer, the event bus, the node-wide heal budget) and never
//! awaits one service's I/O: a probe, heal or notify call runs in a task of its own and reports
//! back through a channel. So a slow heal, probe or adapter call delays only its own service,
//! and shutdown is honoured at once whatever is in flight (in-flight tasks are dropped; their
//! heal calls are idempotent and were recorded before they started).
//!
//! A service is *busy* while its probe or heal call is in flight: it is never probed or healed
//! twice at once. Its next probe is due one interval after the previous one was due (no
//! catch-up burst after a slow call). A pushed service event probes it at once, at most once
//! per [`MIN_EARLY_TICK_GAP`] (or interval, if shorter) counted from its previous early round;
//! one that comes while it is busy probes it when it is free again; a pushed `failed` (the
//! manager gave up, e.g. its start limit) skips the gap: nothing else will change it.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::future::Future;
use std::sync::Arc;

use process_manager::{RunState, ServiceConfig, ServiceEvent};
use tokio::sync::{broadcast, mpsc, oneshot, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::control::{Through, Verb, VerbError, VerbOutcome, VerbRequest};
use super::execute::Done;
use super::{probe_service, Action, HealLoop, Probed, Target, MIN_EARLY_TICK_GAP};
use crate::drift::DefinitionCheck;
use crate::events::{CallFailure, FailureKind};

/// What a service's task reports back.
enum Finished {
    Probed(usize, Probed),
    /// Its actions came back; `true` when they were its heal (which held it busy).
    Acted(usize, Vec<Done>, bool),
    /// A person's verb came back from the manager, with where its answer goes.
    Verb(usize, Verb, Result<String, CallFailure>, VerbReply),
}

type VerbReply = oneshot::Sender<Result<VerbOutcome, VerbError>>;

/// Pushed events buffered between the forwarders and the loop; beyond it, polling catches up.
const PUSHED_QUEUE: usize = 4096;

/// Per-service scheduling.
struct Schedule {
    /// When each service's next probe is due.
    due: Vec<Instant>,
    /// Its probe or heal is in flight.
    busy: Vec<bool>,
    /// When its last early (pushed) round ran.
    last_early: Vec<Option<Instant>>,
    /// Its rounds so far (drift is compared every `drift_every`).
    rounds: Vec<u32>,
    /// Due times, earliest first; entries that no longer match `due` are stale.
    queue: BinaryHeap<Reverse<(Instant, usize)>>,
    /// Verbs waiting for the service's probe or heal in flight, oldest first.
    waiting: Vec<VecDeque<VerbRequest>>,
    /// A pushed event came while its probe or heal was in flight: probed early once it ends
    /// (`true`: the manager gave up, probed at once).
    pending_early: Vec<Option<bool>>,
    /// The least time between two early rounds of one service.
    early_gap: std::time::Duration,
}

impl Schedule {
    fn at(&mut self, i: usize, when: Instant) {
        self.due[i] = when;
        self.queue.push(Reverse((when, i)));
    }

    /// Probes service `i` early for a pushed event: at once when the manager gave up, else
    /// no sooner than `early_gap` after its previous early round; never later than it is due.
    fn early(&mut self, i: usize, gave_up: bool) {
        let now = Instant::now();
        let when = match self.last_early[i] {
            Some(last) if !gave_up => (last + self.early_gap).max(now),
            _ => now,
        };
        if when < self.due[i] {
            self.last_early[i] = Some(when);
            self.at(i, when);
        }
    }

    /// The earliest entry that is still current (stale ones are dropped).
    fn next(&mut self) -> Option<(Instant, usize)> {
        while let Some(Reverse((when, i))) = self.queue.peek().copied() {
            if self.busy[i] || self.due[i] != when {
                self.queue.pop();
                continue;
            }
            return Some((when, i));
        }
        None
    }
}

impl HealLoop {
    /// Runs until `shutdown` completes, then saves state. Each service is probed every
    /// `loop.interval` on its own schedule, with at most `loop.max_concurrency` probes and
    /// `loop.max_heals` heal calls in flight on the node; see the module docs.
    ///
    /// Managers that push service events (see `Capabilities::pushes_events`) get the service
    /// probed at once; a pushed exit that the probe confirms is acted on without hysteresis.
    pub async fn run(&mut self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let n = self.services.len();
        let interval = self.settings.interval;
        let early_gap = MIN_EARLY_TICK_GAP.min(interval);
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Finished>();
        let (pushed_tx, mut pushed_rx) = mpsc::channel::<ServiceEvent>(PUSHED_QUEUE);
        let forwarders = self.forward_service_events(pushed_tx);
        let heal_budget = Arc::new(Semaphore::new(self.settings.max_heals));
        let mut tasks = JoinSet::new();
        let mut probes_in_flight = 0usize;

        // Whatever the agent just started gets its start grace.
        let now_ms = self.clock.now_ms();
        for t in &mut self.services {
            t.state.start_grace_until = now_ms + t.policy.start_grace.as_millis() as u64;
        }
        let start = Instant::now();
        let mut plan = Schedule {
            due: vec![start; n],
            busy: vec![false; n],
            last_early: vec![None; n],
            rounds: vec![0; n],
            queue: BinaryHeap::with_capacity(n),
            waiting: (0..n).map(|_| VecDeque::new()).collect(),
            pending_early: vec![None; n],
            early_gap,
        };
        let mut verbs = self.verbs.take();
        // Dependencies first, so their state is known early.
        for &i in &self.order {
            plan.queue.push(Reverse((start, i)));
        }

        // One timer for the loop, moved only when the earliest due probe changes (not one made
        // and dropped at every turn of the loop).
        let wake = tokio::time::sleep_until(start);
        tokio::pin!(wake);
        let mut armed = start;
        loop {
            let next = if probes_in_flight < self.settings.max_concurrency {
                plan.next()
            } else {
                None
            };
            if let Some((when, _)) = next {
                if when != armed {
                    wake.as_mut().reset(when);
                    armed = when;
                }
            }
            tokio::select! {
                biased;
                _ = &mut shutdown => break,
                Some(done) = done_rx.recv() => {
                    let i = match done {
                        Finished::Probed(i, probed) => {
                            probes_in_flight -= 1;
                            self.probed(i, probed, &mut plan, &mut tasks, &done_tx, &heal_budget);
                            i
                        }
                        Finished::Acted(i, outcomes, heal) => {
                            self.acted(i, outcomes, heal, &mut plan, &mut tasks, &done_tx);
                            i
                        }
                        Finished::Verb(i, verb, result, reply) => {
                            let answer = self.finish_verb(i, verb, result, Through::Agent);
                            let _ = reply.send(answer);
                            // Probed at once, so the snapshot shows what the verb did.
                            plan.busy[i] = false;
                            plan.at(i, Instant::now());
                            i
                        }
                    };
                    if !plan.busy[i] {
                        if let Some(request) = plan.waiting[i].pop_front() {
                            self.start_verb(i, request, &mut plan, &mut tasks, &done_tx);
                        }
                    }
                }
                Some(request) = next_verb(&mut verbs) => {
                    match self.by_label.get(request.label.as_str()).copied() {
                        None => {
                            let _ = request.reply.send(Err(VerbError::NotFound(request.label)));
                        }
                        // Serialized with the service's own calls: it waits for them.
                        Some(i) if plan.busy[i] => plan.waiting[i].push_back(request),
                        Some(i) => self.start_verb(i, request, &mut plan, &mut tasks, &done_tx),
                    }
                }
                Some(event) = pushed_rx.recv() => {
                    let Some(&i) = self.by_label.get(event.label().as_str()) else { continue };
                    let exited = match &event {
                        ServiceEvent::Exited { .. } => true,
                        ServiceEvent::StateChanged { state, .. } => {
                            matches!(state, RunState::Stopped | RunState::Failed)
                        }
                    };
                    // The manager gave up (a start limit): nothing else will change it, so it
                    // is probed at once, whatever the gap after the burst of exits before it.
                    let gave_up = matches!(
                        event,
                        ServiceEvent::StateChanged { state: RunState::Failed, .. }
                    );
                    let t = &mut self.services[i];
                    if !matches!(t.target, Target::Process(_)) {
                        continue;
                    }
                    t.state.exit_pushed |= exited;
                    if plan.busy[i] {
                        // Its heal or probe is in flight: probed early when it ends.
                        let pending = plan.pending_early[i].unwrap_or(false);
                        plan.pending_early[i] = Some(pending || gave_up);
                        continue;
                    }
                    plan.early(i, gave_up);
                }
                _ = &mut wake, if next.is_some() => {
                    // Every probe due by now starts in this turn (services start due together
                    // and stay in step), each in its own task as before.
                    let now = Instant::now().max(armed);
                    while probes_in_flight < self.settings.max_concurrency {
                        let Some((when, i)) = plan.next() else { break };
                        if when > now {
                            break;
                        }
                        plan.queue.pop();
                        probes_in_flight += 1;
                        self.start_probe(i, &mut plan, &mut tasks, &done_tx);
                    }
                }
            }
            // Reap finished tasks without waiting (their results came through the channel).
            while tasks.try_join_next().is_some() {}
        }
        tasks.abort_all();
        for task in forwarders {
            task.abort();
        }
        self.persist();
    }

    /// A service's probe round came back: decide, and start its heal if one is due.
    fn probed(
        &mut self,
        i: usize,
        probed: Probed,
        plan: &mut Schedule,
        tasks: &mut JoinSet<()>,
        done: &mpsc::UnboundedSender<Finished>,
        budget: &Arc<Semaphore>,
    ) {
        let now = self.clock.now_ms();
        let mut events = Vec::new();
        let actions = self.round(i, &probed, now, &mut events);
        // The attempt (or its end) is on disk before any call: a crash from here on repeats
        // neither the call nor its hooks.
        self.persist();
        self.publish(&events);
        self.refresh_status(!events.is_empty());
        let (heals, unheld): (Vec<_>, Vec<_>) = actions
            .into_iter()
            .partition(|a| matches!(a, Action::Heal { .. }));
        if heals.is_empty() {
            // A notify or `after_heal` hooks do not hold the service.
            self.reschedule(i, plan);
        } else {
            let calls = self.execute(heals);
            let budget = budget.clone();
            let tx = done.clone();
            tasks.spawn(async move {
                // The node-wide heal budget: at most `max_heals` calls at once.
                let _permit = budget.acquire_owned().await.ok();
                let outcomes = calls.await;
                let _ = tx.send(Finished::Acted(i, outcomes, true));
            });
        }
        self.spawn_unheld(i, unheld, tasks, done);
    }

    /// Runs actions that do not hold service `i` (notifies, `after_heal` hooks) in a task.
    fn spawn_unheld(
        &self,
        i: usize,
        actions: Vec<Action>,
        tasks: &mut JoinSet<()>,
        done: &mpsc::UnboundedSender<Finished>,
    ) {
        if actions.is_empty() {
            return;
        }
        let calls = self.execute(actions);
        let tx = done.clone();
        tasks.spawn(async move {
            let outcomes = calls.await;
            let _ = tx.send(Finished::Acted(i, outcomes, false));
        });
    }

    /// A heal or notify call came back: settle it, and notify a person if it says so.
    fn acted(
        &mut self,
        i: usize,
        outcomes: Vec<Done>,
        heal: bool,
        plan: &mut Schedule,
        tasks: &mut JoinSet<()>,
        done: &mpsc::UnboundedSender<Finished>,
    ) {
        let now = self.clock.now_ms();
        let mut events = Vec::new();
        let mut notifies = Vec::new();
        for done in outcomes {
            if heal {
                for run in done.hooks {
                    events.push(self.hook_event(done.index, run, now));
                }
                notifies.extend(self.settle(done.index, done.result, now, &mut events));
            } else {
                self.unheld_done(done, now, &mut events);
            }
        }
        self.persist();
        self.publish(&events);
        self.refresh_status(true);
        if heal {
            self.reschedule(i, plan);
        }
        self.spawn_unheld(i, notifies, tasks, done);
    }

    /// Starts a person's verb on service `i` (not busy): its desired state is saved before
    /// the call, and the service is busy (no probe, no heal) until the call comes back.
    fn start_verb(
        &mut self,
        i: usize,
        request: VerbRequest,
        plan: &mut Schedule,
        tasks: &mut JoinSet<()>,
        done: &mpsc::UnboundedSender<Finished>,
    ) {
        let verb = request.verb;
        let call = match self.begin_verb(&request.label, verb) {
            Ok((_, call)) => call,
            Err(e) => {
                let _ = request.reply.send(Err(e));
                return;
            }
        };
        plan.busy[i] = true;
        let deadline = self.settings.heal_timeout;
        let tx = done.clone();
        let reply = request.reply;
        tasks.spawn(async move {
            let result = tokio::time::timeout(deadline, call)
                .await
                .unwrap_or_else(|_| {
                    Err(CallFailure::new(
                        FailureKind::Timeout,
                        format!("no answer within {deadline:?}"),
                    ))
                });
            let _ = tx.send(Finished::Verb(i, verb, result, reply));
        });
    }

    /// Starts service `i`'s probe round in a task of its own; it reports back on `done`.
    fn start_probe(
        &mut self,
        i: usize,
        plan: &mut Schedule,
        tasks: &mut JoinSet<()>,
        done: &mpsc::UnboundedSender<Finished>,
    ) {
        plan.busy[i] = true;
        let probes = self.services[i].probes.clone();
        let drift = self.drift_due(i, plan);
        let deadline = self.settings.heal_timeout;
        let now_ms = self.clock.now_ms();
        let tx = done.clone();
        tasks.spawn(async move {
            let mut probed = probe_service(&probes, now_ms).await;
            if let Some((check, desired)) = drift {
                // A file read, off the runtime's threads and under a deadline.
                let read = tokio::task::spawn_blocking(move || check.drifted(&desired));
                probed.drift = match tokio::time::timeout(deadline, read).await {
                    Ok(Ok(drift)) => drift,
                    _ => None,
                };
            }
            let _ = tx.send(Finished::Probed(i, probed));
        });
    }

    /// The check and desired definition of service `i` when its round is one that compares.
    fn drift_due(
        &self,
        i: usize,
        plan: &mut Schedule,
    ) -> Option<(Arc<dyn DefinitionCheck>, ServiceConfig)> {
        let round = plan.rounds[i];
        plan.rounds[i] = round.wrapping_add(1);
        if round % self.settings.drift_every != 0 {
            return None;
        }
        let t = &self.services[i];
        let desired = t.config.clone()?;
        let check = self.definition_checks.get(&t.manager_name)?.clone();
        Some((check, desired))
    }

    /// Frees service `i` and puts its next probe one interval after the last one was due.
    fn reschedule(&mut self, i: usize, plan: &mut Schedule) {
        plan.busy[i] = false;
        let now = Instant::now();
        let mut when = plan.due[i] + self.settings.interval;
        if when < now {
            // A slow call does not cause a burst of catch-up probes.
            when = now;
        }
        plan.at(i, when);
        if let Some(gave_up) = plan.pending_early[i].take() {
            plan.early(i, gave_up);
        }
    }

    /// One forwarding task per distinct manager that pushes events.
    fn forward_service_events(
        &self,
        pushed: mpsc::Sender<ServiceEvent>,
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
            let pushed = pushed.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    match events.recv().await {
                        // A full queue drops the event: the next probe round catches up.
                        Ok(event) => {
                            let _ = pushed.try_send(event);
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => return,
                    }
                }
            }));
        }
        tasks
    }
}

/// The next verb, or never when nobody asked for a [`HealLoop::control`] handle.
async fn next_verb(verbs: &mut Option<mpsc::Receiver<VerbRequest>>) -> Option<VerbRequest> {
    match verbs {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
