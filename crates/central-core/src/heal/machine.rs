//! The decision, as pure functions of one service: [`observe`] folds a probe round into its
//! [`ServiceState`], [`act`] chooses what to do about it, [`settle`] folds in a heal call's
//! result, and [`decide`] is `observe` then `act`: `decide(state, observation, now, policy) ->
//! (state, actions)`. No clock, no I/O, no other service: time comes in as `now`, randomness
//! as a seeded RNG, and a dependency's health as [`Observation::blocked_by`]. The loop turns
//! the [`Out`]s into events and calls.
//!
//! Rules (each checked by a table or a property test below):
//! - A round in which the manager did not answer is unknown: it changes no counter.
//! - Never a heal while the manager is silent, and no verdict on an attempt meanwhile.
//! - Never a second heal while an attempt is in flight and within its grace.
//! - The cool-down (`next_allowed_ms`) counts from the start of an attempt.
//! - An attempt found starting (e.g. after an agent restart) is watched, not failed.
//! - A pushed exit that the next round confirms is acted on without hysteresis; a just-started service's
//!   failing health probes do not count during its start grace.
//! - A pushed exit after which the manager already runs a new process is the manager's own
//!   restart: no fact, the new process graced (no restart on top of systemd's `Restart=`).

use std::time::Duration;

use process_manager::RunState;

use super::{ProbeSummary, Probed};
use crate::events::{EventKind, FailureKind, Step, StepOutcome};
use crate::model::{EndpointClass, HealPolicy};
use crate::policy::{backoff, BreakerChange, LiveBreaker, RoundCounter, Transition};
use crate::probe::ProbeFailure;
use crate::state::{
    AttemptPhase, AttemptRecord, BreakerState, Desired, ServiceRecord, HISTORY_LEN,
};

/// Everything the decision reads and writes about one service.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ServiceState {
    pub(crate) hyst: RoundCounter,
    /// The breaker the loop works on; written into `record.breaker` when state is saved.
    pub(crate) breaker: LiveBreaker,
    pub(crate) record: ServiceRecord,
    pub(crate) healthy_since: Option<u64>,
    pub(crate) last_probe: Option<ProbeSummary>,
    pub(crate) run_state: Option<RunState>,
    pub(crate) pid: Option<u32>,
    pub(crate) process: Option<process_manager::ServiceStatus>,
    pub(crate) endpoint_class: Option<EndpointClass>,
    pub(crate) hold: Option<Hold>,
    pub(crate) step: Option<Step>,
    /// When the current run of observe-only rounds began (bounded by `observe_max`).
    pub(crate) observing_since: Option<u64>,
    /// The last probe round asked the manager and it did not answer.
    pub(crate) manager_silent: bool,
    /// The manager pushed an exit not yet acted on: a fact, needing no probe hysteresis.
    pub(crate) exit_pushed: bool,
    /// Until when (ms) a failing health probe does not count: the service just started.
    pub(crate) start_grace_until: u64,
}

impl ServiceState {
    fn push_history(&mut self, attempt: AttemptRecord) {
        self.record.history.push(attempt);
        if self.record.history.len() > HISTORY_LEN {
            let excess = self.record.history.len() - HISTORY_LEN;
            self.record.history.drain(..excess);
        }
    }

    /// Whether it counts as down for its dependents.
    pub(crate) fn is_failing(&self) -> bool {
        self.hyst.down || self.hyst.failures > 0
    }

    /// What is persisted changed between `self` and `before`.
    pub(crate) fn persisted_differs(&self, before: &ServiceState) -> bool {
        self.record != before.record || self.breaker != before.breaker
    }

    fn say(&self, kind: EventKind, detail: impl Into<String>) -> Say {
        Say {
            kind,
            detail: detail.into(),
            step: self.step,
            endpoint_class: self.endpoint_class,
            attempt: None,
            error_kind: None,
            cause: None,
            outcome: None,
        }
    }
}

/// Why a down service is held back instead of healed. Each is reported once per episode of
/// holding (a `heal.suppressed` whose `cause` is [`Hold::cause`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Hold {
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
    /// Monitor-only and down: a person was called; this node does not act on it.
    MonitorOnly,
}

/// What the heal goes to, as far as the decision cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TargetKind {
    /// Through a process manager; `can_repair` when the desired definition is known.
    Process { can_repair: bool },
    /// A container through the runtime; `compose` when it can be recreated from its Compose
    /// file.
    Container { compose: bool },
    /// The container substrate.
    Substrate,
}

/// What the decision knows about the service besides its state.
#[derive(Debug, Clone)]
pub(crate) struct Context<'a> {
    pub(crate) label: &'a str,
    pub(crate) policy: &'a HealPolicy,
    pub(crate) target: TargetKind,
    /// The manager's own respawn throttle (launchd), a floor under the backoff.
    pub(crate) throttle: Option<Duration>,
    /// A notify command is configured.
    pub(crate) notify: bool,
    /// Watched and escalated, never acted on (`monitor_only`).
    pub(crate) monitor_only: bool,
}

/// One round's input.
#[derive(Debug, Clone)]
pub(crate) struct Observation {
    pub(crate) probed: Probed,
    /// A down infra-critical dependency: it is healed first (its [`Hold::Dependency`] index
    /// and the cause to report).
    pub(crate) blocked_by: Option<(usize, String)>,
}

/// An event to report, before the node's tags are put on it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Say {
    pub(crate) kind: EventKind,
    pub(crate) detail: String,
    pub(crate) step: Option<Step>,
    pub(crate) endpoint_class: Option<EndpointClass>,
    pub(crate) attempt: Option<u32>,
    pub(crate) error_kind: Option<FailureKind>,
    pub(crate) cause: Option<String>,
    pub(crate) outcome: Option<StepOutcome>,
}

/// What the decision asks for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Out {
    /// Report this.
    Say(Say),
    /// Take this step now (the attempt is already recorded in the state).
    Heal(Step),
    /// Run the notify command with this escalation.
    Notify(Say),
    /// The heal taking `step` in attempt `attempt` is verified: its `after_heal` hooks run.
    /// Asked for only in the state change that ends the attempt, so at most once per heal.
    AfterHeal { step: Step, attempt: u32 },
}

/// Folds one probe round into the state.
pub(crate) fn observe(
    mut s: ServiceState,
    probed: &Probed,
    now: u64,
    policy: &HealPolicy,
) -> (ServiceState, Vec<Out>) {
    let mut out = Vec::new();
    let summary = &probed.summary;
    s.last_probe = Some(summary.clone());
    s.manager_silent = probed.manager_silent;
    let exit_pushed = std::mem::take(&mut s.exit_pushed);
    if probed.unknown() {
        // The manager did not answer: nothing is known about the service this round.
        return (s, out);
    }
    // The manager pushed an exit and already has it running again, a new process (systemd's
    // `Restart=`, which passes through `failed` on its way): its own restart, not a fact for
    // this loop to act on. The new process gets the start grace, as one this loop started.
    let respawned = exit_pushed
        && !probed.manager_silent
        && probed.run_state == Some(RunState::Running)
        && probed.pid != s.pid;
    if respawned {
        s.start_grace_until = now + policy.start_grace.as_millis() as u64;
    }
    if !probed.manager_silent {
        s.run_state = probed.run_state;
        s.pid = probed.pid;
        s.process = probed.process.clone();
    }
    if !s.record.desired.is_running() {
        // Stopped or disabled by request: what is seen is reported, nothing is counted.
        return (s, out);
    }
    if summary.passed {
        s.endpoint_class = summary.endpoint_class;
    }
    // The manager said it exited and the round, just after, fails: no hysteresis for a fact
    // (whichever probe saw it: a service may have only an HTTP probe).
    let exit_fact = exit_pushed && !respawned && !summary.passed;
    let process_fact = matches!(
        summary.failure,
        Some(ProbeFailure::NotRunning | ProbeFailure::NotInstalled)
    );
    if !summary.passed && !process_fact && !exit_fact && now < s.start_grace_until {
        // It just started: a health probe that fails now is not yet a verdict.
        return (s, out);
    }
    if exit_fact {
        s.hyst.exit_seen(&policy.hysteresis);
    }
    let transition = s.hyst.record(summary.passed, &policy.hysteresis);
    if !summary.passed {
        s.healthy_since = None;
        let mut e = s.say(
            EventKind::ProbeFailed,
            format!(
                "{} ({}/{} to act)",
                summary.detail,
                s.hyst.failures,
                policy.hysteresis.failures_to_down()
            ),
        );
        e.error_kind = summary.failure.map(FailureKind::from);
        e.endpoint_class = None;
        out.push(Out::Say(e));
    } else {
        let recovered = transition == Transition::Recovered;
        let verified =
            s.record.in_flight.is_some() && s.hyst.passes >= policy.hysteresis.passes_to_up();
        if recovered {
            out.push(Out::Say(
                s.say(EventKind::ProbeRecovered, summary.detail.clone()),
            ));
        }
        if verified {
            let attempt = s.record.in_flight.take().expect("checked above");
            s.push_history(attempt.clone());
            let mut e = s.say(
                EventKind::HealSucceeded,
                format!(
                    "healthy again after {} (attempt {})",
                    attempt.step, attempt.attempt
                ),
            );
            e.step = Some(attempt.step);
            e.attempt = Some(attempt.attempt);
            e.outcome = attempt.outcome.clone();
            out.push(Out::Say(e));
            out.push(Out::AfterHeal {
                step: attempt.step,
                attempt: attempt.attempt,
            });
        }
        if recovered || verified {
            s.hold = None;
            s.step = None;
            s.observing_since = None;
        }
        if s.hyst.healthy() && s.healthy_since.is_none() {
            s.healthy_since = Some(now);
        }
    }
    // Healthy long enough: the episode is over.
    if let Some(since) = s.healthy_since {
        let stable = now.saturating_sub(since) >= policy.stable_after.as_millis() as u64;
        if stable && (s.record.episode_attempts > 0 || s.record.next_allowed_ms > 0) {
            s.record.episode_attempts = 0;
            s.record.episode_restarts = 0;
            s.record.next_allowed_ms = 0;
        }
    }
    let healthy_since = s.healthy_since;
    // A round the manager did not answer moves no breaker, not even toward closing.
    let change = if s.manager_silent {
        BreakerChange::None
    } else {
        s.breaker
            .tick(&policy.breaker, policy.stable_after, now, healthy_since)
    };
    match change {
        BreakerChange::HalfOpened => out.push(Out::Say(s.say(
            EventKind::BreakerHalfOpen,
            "cool-down over: one trial heal allowed",
        ))),
        BreakerChange::Closed => out.push(Out::Say(s.say(
            EventKind::BreakerClosed,
            format!("healthy for {:?}: healing resumes", policy.stable_after),
        ))),
        BreakerChange::Opened | BreakerChange::None => {}
    }
    (s, out)
}

/// Holds the service back for `hold`, reported once while the same hold lasts.
fn suppress(s: &mut ServiceState, step: Step, hold: Hold, cause: String, detail: &str) -> Vec<Out> {
    if s.hold.as_ref() == Some(&hold) {
        return Vec::new();
    }
    s.hold = Some(hold);
    s.step = Some(step);
    let mut e = s.say(EventKind::HealSuppressed, detail);
    e.step = Some(step);
    e.cause = Some(cause);
    e.outcome = Some(if step == Step::Observe {
        StepOutcome::Observed
    } else {
        StepOutcome::Suppressed
    });
    vec![Out::Say(e)]
}

/// Records a failed heal on the breaker; when it opens, a person is called.
fn breaker_failed(s: &mut ServiceState, now: u64, ctx: &Context<'_>) -> Vec<Out> {
    let policy = ctx.policy;
    if s.breaker.failure(&policy.breaker, now) != BreakerChange::Opened {
        return Vec::new();
    }
    s.step = Some(Step::Escalate);
    s.hold = Some(Hold::BreakerOpen);
    let mut opened = s.say(
        EventKind::BreakerOpened,
        format!(
            "{} failed heals within {:?}: no more heals for {:?}",
            s.breaker.failures(),
            policy.breaker.window(),
            policy.breaker.cooldown()
        ),
    );
    opened.step = Some(Step::Escalate);
    let mut escalated = s.say(
        EventKind::HealEscalated,
        format!("{} needs a person: it keeps failing after heals", ctx.label),
    );
    escalated.step = Some(Step::Escalate);
    // A failing notify command is reported as its own heal.failed after it ran.
    escalated.outcome = Some(StepOutcome::Escalated {
        notify_command: ctx.notify,
    });
    let mut out = vec![Out::Say(opened), Out::Say(escalated.clone())];
    if ctx.notify {
        out.push(Out::Notify(escalated));
    }
    out
}

/// A monitor-only service is down: a person is called once per episode (until it recovers),
/// and nothing is done to it.
fn monitor_escalation(s: &mut ServiceState, ctx: &Context<'_>) -> Vec<Out> {
    if s.hold == Some(Hold::MonitorOnly) {
        return Vec::new();
    }
    s.hold = Some(Hold::MonitorOnly);
    s.step = Some(Step::Escalate);
    let detail = s
        .last_probe
        .as_ref()
        .map_or_else(String::new, |p| format!(": {}", p.detail));
    let mut e = s.say(
        EventKind::HealEscalated,
        format!(
            "{} is down and monitor-only (this node does not act on it){detail}",
            ctx.label
        ),
    );
    e.step = Some(Step::Escalate);
    e.cause = Some("monitor-only".into());
    e.outcome = Some(StepOutcome::Escalated {
        notify_command: ctx.notify,
    });
    let mut out = vec![Out::Say(e.clone())];
    if ctx.notify {
        out.push(Out::Notify(e));
    }
    out
}

/// Chooses what to do about the service after its round: nothing, hold it back, or one step
/// of the ladder (recorded as the attempt in flight before it is returned).
pub(crate) fn act(
    mut s: ServiceState,
    blocked_by: Option<(usize, String)>,
    drift: Option<&str>,
    now: u64,
    ctx: &Context<'_>,
    rng: &mut fastrand::Rng,
) -> (ServiceState, Vec<Out>) {
    let policy = ctx.policy;
    let mut out = Vec::new();
    if !s.record.desired.is_running() {
        // A person stopped it: never healed back, not even for drift, until started again.
        return (s, out);
    }
    if let Some(what) = drift.filter(|_| !ctx.monitor_only) {
        if let Some(repair) = repair_drift(&mut s, what, now, ctx, rng) {
            return (s, repair);
        }
    }
    if !s.hyst.wants_heal(&policy.hysteresis) {
        return (s, out);
    }
    // Never a heal through a manager that did not answer, and no verdict on an attempt
    // meanwhile (its silence says nothing about the service).
    if s.manager_silent {
        let detail = "its manager did not answer: not healing through it, not judging the \
                      attempt in flight";
        let cause = "manager-unavailable".to_string();
        out.extend(suppress(
            &mut s,
            Step::Observe,
            Hold::ManagerSilent,
            cause,
            detail,
        ));
        return (s, out);
    }
    if ctx.monitor_only {
        out.extend(monitor_escalation(&mut s, ctx));
        return (s, out);
    }
    let failure = s.last_probe.as_ref().and_then(|p| p.failure);
    let observing = failure.is_some_and(|f| f.is_observe());
    let since = if observing {
        *s.observing_since.get_or_insert(now)
    } else {
        s.observing_since = None;
        now
    };
    let observed_too_long = now.saturating_sub(since) >= policy.observe_max.as_millis() as u64;
    if observing && observed_too_long && s.hold != Some(Hold::ObserveLimit) {
        // The supervisor has had its chance (launchd respawns a crash loop forever, and says
        // so only as "spawn scheduled"): from here the loop's own ladder applies.
        s.hold = Some(Hold::ObserveLimit);
        let mut e = s.say(
            EventKind::ProbeFailed,
            format!(
                "observed for {:?} (observe_max) and still not healthy: healing it ourselves",
                policy.observe_max
            ),
        );
        e.step = Some(Step::Observe);
        e.cause = Some("observe-limit".into());
        out.push(Out::Say(e));
    }
    // Starting (e.g. an attempt interrupted by an agent restart, found `activating`): it is
    // watched, and the attempt in flight is not judged while it starts.
    if let Some(f) = failure.filter(|f| f.is_observe() && !observed_too_long) {
        let detail = match f {
            ProbeFailure::SupervisorRestarting => {
                "the supervisor is already restarting it: observing, not restarting on top"
            }
            _ => "it is starting: observing",
        };
        let cause = f.as_str().to_string();
        out.extend(suppress(
            &mut s,
            Step::Observe,
            Hold::Observe(f),
            cause,
            detail,
        ));
        return (s, out);
    }
    // The previous attempt had its chance: `failures_to_down` new failures since it began.
    if let Some(attempt) = s.record.in_flight.clone() {
        if now < attempt.started_ms + policy.grace.as_millis() as u64 {
            return (s, out);
        }
        s.record.in_flight = None;
        s.push_history(attempt.clone());
        let mut e = s.say(
            EventKind::HealFailed,
            format!(
                "still down after {} (attempt {})",
                attempt.step, attempt.attempt
            ),
        );
        e.step = Some(attempt.step);
        e.attempt = Some(attempt.attempt);
        e.error_kind = Some(FailureKind::StillDown);
        e.outcome = attempt.outcome.clone();
        out.push(Out::Say(e));
        let escalation = breaker_failed(&mut s, now, ctx);
        let notify = escalation.iter().any(|o| matches!(o, Out::Notify(_)));
        out.extend(escalation);
        if notify {
            return (s, out);
        }
    }
    // The probe could not judge the service: its own program is missing. The service is not
    // known to be down, and a restart would not fix the probe.
    if failure == Some(ProbeFailure::BinaryNotFound) {
        let detail = "the probe's own program is missing (check its path and PATH); not \
                      healing the service on its word";
        let cause = "probe-binary-not-found".to_string();
        out.extend(suppress(
            &mut s,
            Step::Observe,
            Hold::ProbeBinaryMissing,
            cause,
            detail,
        ));
        return (s, out);
    }
    // Bulkhead: a down infra-critical dependency is the root cause; it is healed first.
    if let Some((d, cause)) = blocked_by {
        let detail = format!("{cause}: healing it first, not {}", ctx.label);
        out.extend(suppress(
            &mut s,
            Step::Restart,
            Hold::Dependency(d),
            cause,
            &detail,
        ));
        return (s, out);
    }
    if s.breaker.state() == BreakerState::Open
        || now < s.record.next_allowed_ms
        || !s.breaker.allows()
    {
        return (s, out);
    }
    let step = rung(&s, failure, ctx);
    out.extend(start_attempt(&mut s, step, now, ctx, rng));
    (s, out)
}

/// Records `step` as the attempt in flight (its cool-down counting from now) and asks for it.
fn start_attempt(
    s: &mut ServiceState,
    step: Step,
    now: u64,
    ctx: &Context<'_>,
    rng: &mut fastrand::Rng,
) -> Vec<Out> {
    s.record.episode_attempts += 1;
    if step == Step::Restart {
        s.record.episode_restarts += 1;
    }
    let attempt = s.record.episode_attempts;
    let mut wait = backoff(&ctx.policy.backoff, attempt, rng);
    if let Some(throttle) = ctx.throttle {
        wait = wait.max(throttle);
    }
    s.record.next_allowed_ms = now + wait.as_millis() as u64;
    s.record.in_flight = Some(AttemptRecord {
        attempt,
        step,
        started_ms: now,
        phase: AttemptPhase::Started,
        outcome: None,
    });
    // Verification needs `failures_to_down` fresh failures.
    s.hyst.failures = 0;
    s.hold = None;
    // A service starting after this attempt gets its own `observe_max` of watching.
    s.observing_since = None;
    s.step = Some(step);
    let mut e = s.say(
        EventKind::HealStarted,
        format!("{step} (attempt {attempt}; next attempt no sooner than {wait:?})"),
    );
    e.step = Some(step);
    e.attempt = Some(attempt);
    vec![Out::Say(e), Out::Heal(step)]
}

/// A drifted definition is re-applied even while the service answers: when its manager
/// answers, no attempt is in flight, the cool-down has passed and the breaker allows it.
fn repair_drift(
    s: &mut ServiceState,
    what: &str,
    now: u64,
    ctx: &Context<'_>,
    rng: &mut fastrand::Rng,
) -> Option<Vec<Out>> {
    let repairable = ctx.target == TargetKind::Process { can_repair: true };
    if !repairable
        || s.manager_silent
        || s.record.in_flight.is_some()
        || now < s.record.next_allowed_ms
        || s.breaker.state() == BreakerState::Open
        || !s.breaker.allows()
    {
        return None;
    }
    let mut e = s.say(
        EventKind::DefinitionDrifted,
        format!("the installed definition is not the desired one ({what}): re-applying it"),
    );
    e.step = Some(Step::Repair);
    let mut out = vec![Out::Say(e)];
    out.extend(start_attempt(s, Step::Repair, now, ctx, rng));
    Some(out)
}

/// The rung of the ladder for this attempt: the substrate is brought up; a missing definition,
/// or restarts that did not hold, are repaired; otherwise a restart.
fn rung(s: &ServiceState, failure: Option<ProbeFailure>, ctx: &Context<'_>) -> Step {
    let previous = s.record.history.last().map(|a| a.step);
    match ctx.target {
        TargetKind::Substrate => Step::HealSubstrate,
        // Restart, recreate from Compose, heal the substrate (heal/container.rs).
        TargetKind::Container { compose } => {
            super::container::rung_step(compose, failure, s.record.episode_attempts)
        }
        TargetKind::Process { can_repair: true } if failure == Some(ProbeFailure::NotInstalled) => {
            Step::Repair
        }
        TargetKind::Process { can_repair: true }
            if ctx.policy.repair_after > 0
                && s.record.episode_restarts >= ctx.policy.repair_after
                && previous == Some(Step::Restart) =>
        {
            Step::Repair
        }
        _ => Step::Restart,
    }
}

/// `observe` then `act`: one round of one service.
pub(crate) fn decide(
    state: ServiceState,
    observation: &Observation,
    now: u64,
    ctx: &Context<'_>,
    rng: &mut fastrand::Rng,
) -> (ServiceState, Vec<Out>) {
    let (state, mut out) = observe(state, &observation.probed, now, ctx.policy);
    let drift = observation.probed.drift.as_deref();
    let (state, more) = act(state, observation.blocked_by.clone(), drift, now, ctx, rng);
    out.extend(more);
    (state, out)
}

/// A person asked for `desired` (a service verb): the episode, its counters, any hold and the
/// attempt in flight are over, whatever they were. Going back to running starts a fresh
/// episode with its start grace, so the first rounds after a `start` are not failures.
pub(crate) fn request(
    mut s: ServiceState,
    desired: Desired,
    now: u64,
    policy: &HealPolicy,
) -> ServiceState {
    s.record.desired = desired;
    s.record.desired_at_ms = Some(now);
    s.record.in_flight = None;
    s.record.episode_attempts = 0;
    s.record.episode_restarts = 0;
    s.record.next_allowed_ms = 0;
    s.hyst = RoundCounter::default();
    s.hold = None;
    s.step = None;
    s.observing_since = None;
    s.exit_pushed = false;
    s.healthy_since = None;
    if desired.is_running() {
        // As a reset of a failed unit: a person taking over closes the breaker.
        s.breaker = LiveBreaker::default();
        s.start_grace_until = now + policy.start_grace.as_millis() as u64;
    }
    s
}

/// Folds a heal call's result in. A failed call is a failed heal at once (and may open the
/// breaker); a successful one waits for the probes to say whether it worked, after the start
/// grace.
pub(crate) fn settle(
    mut s: ServiceState,
    result: Result<Option<StepOutcome>, (FailureKind, String)>,
    now: u64,
    ctx: &Context<'_>,
) -> (ServiceState, Vec<Out>) {
    let policy = ctx.policy;
    match result {
        Ok(outcome) => {
            // It was just (re)started: its health probes get their start grace.
            s.start_grace_until = now + policy.start_grace.as_millis() as u64;
            if let Some(a) = s.record.in_flight.as_mut() {
                a.phase = AttemptPhase::Done;
                a.outcome = outcome;
            }
            (s, Vec::new())
        }
        Err((kind, detail)) => {
            let attempt = s.record.in_flight.take();
            if let Some(a) = &attempt {
                s.push_history(a.clone());
            }
            // Still down: the next attempt comes after the backoff, not after N more rounds.
            s.hyst.failures = policy.hysteresis.failures_to_down();
            let mut e = s.say(EventKind::HealFailed, detail);
            e.step = attempt.as_ref().map(|a| a.step);
            e.attempt = attempt.as_ref().map(|a| a.attempt);
            e.error_kind = Some(kind);
            e.outcome = Some(StepOutcome::Failed);
            let mut out = vec![Out::Say(e)];
            out.extend(breaker_failed(&mut s, now, ctx));
            (s, out)
        }
    }
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
