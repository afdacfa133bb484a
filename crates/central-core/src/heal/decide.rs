//! Deciding, per service and round: hysteresis on the probe round, bulkheads (suppression
//! while a dependency is down), the breaker, backoff and the escalation ladder.
//!
//! A round in which the manager did not answer is *unknown*: it counts neither as a failure nor
//! as a pass, and nothing is restarted through that manager or judged meanwhile. An exit the
//! manager pushed is a fact: it needs no hysteresis. A just-started service's failing health
//! probes do not count during its start grace.

use super::{Action, HealCall, HealLoop, Hold, Probed, Target};
use crate::events::{EventKind, FailureKind, HealEvent, Step, StepOutcome};
use crate::model::ServiceClass;
use crate::policy::{backoff, BreakerChange, Transition};
use crate::probe::ProbeFailure;
use crate::state::{AttemptPhase, AttemptRecord, BreakerState};

impl HealLoop {
    pub(super) fn observe_round(
        &mut self,
        i: usize,
        probed: &Probed,
        now: u64,
        events: &mut Vec<HealEvent>,
    ) {
        self.track_manager(i, probed, now, events);
        let summary = &probed.summary;
        let t = &mut self.services[i];
        let policy = t.policy.clone();
        t.last_probe = Some(summary.clone());
        t.manager_silent = probed.manager_silent;
        let exit_pushed = std::mem::take(&mut t.exit_pushed);
        if probed.unknown() {
            // The manager did not answer: nothing is known about the service this round.
            return;
        }
        if !probed.manager_silent {
            t.run_state = probed.run_state;
            t.pid = probed.pid;
        }
        if summary.passed {
            t.endpoint_class = summary.endpoint_class;
        }
        let process_fact = matches!(
            summary.failure,
            Some(ProbeFailure::NotRunning | ProbeFailure::NotInstalled)
        );
        if !summary.passed && !process_fact && now < t.start_grace_until {
            // It just started: a health probe that fails now is not yet a verdict.
            return;
        }
        if exit_pushed && summary.failure == Some(ProbeFailure::NotRunning) {
            // The manager said it exited and the probe agrees: no hysteresis for a fact.
            t.hyst.exit_seen(&policy.hysteresis);
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
    pub(super) fn is_failing(&self, i: usize) -> bool {
        let h = &self.services[i].hyst;
        h.down || h.failures > 0
    }

    pub(super) fn suppress(
        &mut self,
        i: usize,
        step: Step,
        hold: Hold,
        detail: String,
        now: u64,
        events: &mut Vec<HealEvent>,
    ) {
        if self.services[i].suppressed.as_ref() == Some(&hold) {
            return;
        }
        let cause = hold.cause(&self.services);
        let t = &mut self.services[i];
        t.suppressed = Some(hold);
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
    pub(super) fn breaker_failed(
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
        t.suppressed = Some(Hold::BreakerOpen);
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

    pub(super) fn decide(
        &mut self,
        i: usize,
        now: u64,
        events: &mut Vec<HealEvent>,
    ) -> Option<Action> {
        let policy = self.services[i].policy.clone();
        if !self.services[i].hyst.wants_heal(&policy.hysteresis) {
            return None;
        }
        // Never a restart through a manager that did not answer, and no verdict on an attempt
        // meanwhile (its silence says nothing about the service).
        if self.services[i].manager_silent {
            let detail = "its manager did not answer: not healing through it, not judging \
                          the attempt in flight"
                .to_string();
            self.suppress(i, Step::Observe, Hold::ManagerSilent, detail, now, events);
            return None;
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
        if observing && observed_too_long && t.suppressed != Some(Hold::ObserveLimit) {
            // The supervisor has had its chance (launchd respawns a crash loop forever, and
            // says so only as "spawn scheduled"): from here the loop's own ladder applies.
            t.suppressed = Some(Hold::ObserveLimit);
            let detail = format!(
                "observed for {:?} (observe_max) and still not healthy: healing it ourselves",
                t.policy.observe_max
            );
            let mut e = self.event(i, EventKind::ProbeFailed, now, detail);
            e.step = Some(Step::Observe);
            e.cause = Some(Hold::ObserveLimit.cause(&self.services));
            events.push(e);
        }
        // Starting (e.g. an attempt interrupted by an agent restart, found `activating`): it
        // is watched, and the attempt in flight is not judged while it starts.
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
                Hold::Observe(f),
                detail.into(),
                now,
                events,
            );
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
        // The probe could not judge the service: its own program is missing. The service is
        // not known to be down, and a restart would not fix the probe.
        if failure == Some(ProbeFailure::BinaryNotFound) {
            let detail = "the probe's own program is missing (check its path and PATH); \
                          not healing the service on its word"
                .to_string();
            self.suppress(
                i,
                Step::Observe,
                Hold::ProbeBinaryMissing,
                detail,
                now,
                events,
            );
            return None;
        }
        // Bulkhead: a down infra-critical dependency is the root cause; it is healed first.
        let blocker = self.deps[i]
            .iter()
            .copied()
            .find(|&d| self.services[d].class == ServiceClass::InfraCritical && self.is_failing(d));
        if let Some(d) = blocker {
            let hold = Hold::Dependency(d);
            let detail = format!(
                "{}: healing it first, not {}",
                hold.cause(&self.services),
                self.services[i].label
            );
            self.suppress(i, Step::Restart, hold, detail, now, events);
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
}
