//! Acting on a decision: the heal call through the port (bounded by the port's deadline
//! wrapper), and settling its outcome into the service's record and events.

use std::future::Future;

use futures::StreamExt;

use super::{Action, HealCall, HealLoop};
use crate::events::{CallFailure, EventKind, FailureKind, HealEvent, StepOutcome};
use crate::probe::{run_command, CommandEnd};
use crate::state::AttemptPhase;

impl HealLoop {
    /// The calls of `actions`, as a future owning all it needs (so it can run in its own task).
    pub(super) fn execute(
        &self,
        actions: Vec<Action>,
    ) -> impl Future<Output = Vec<(usize, Result<Option<StepOutcome>, CallFailure>)>> + Send + 'static
    {
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
    }

    /// Applies a heal call's result. A failed call is a failed heal at once (and may open the
    /// breaker); a successful one waits for the probes to say whether it worked.
    pub(super) fn settle(
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
                // It was just (re)started: its health probes get their start grace.
                t.start_grace_until = now + policy.start_grace.as_millis() as u64;
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
