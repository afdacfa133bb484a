//! Acting on a decision: the heal call through the port (bounded by the port's deadline
//! wrapper) with its `before_restart` hooks, the notify command, and `after_heal` hooks.

use std::future::Future;
use std::time::Duration;

use futures::StreamExt;

use super::hooks::HookRun;
use super::{Action, HealCall, HealLoop};
use crate::events::{CallFailure, EventKind, FailureKind, HealEvent, Step, StepOutcome};
use crate::probe::{run_command, CommandEnd};

/// What one action did: the call's result (`Ok(None)` for an action with no outcome of its
/// own) and what its hooks did, in order.
#[derive(Debug)]
pub(super) struct Done {
    pub(super) index: usize,
    pub(super) result: Result<Option<StepOutcome>, CallFailure>,
    pub(super) hooks: Vec<HookRun>,
}

impl HealLoop {
    /// The events of an action that does not hold its service (a notify, `after_heal` hooks):
    /// what its hooks did, and a failed notify as the escalation's `heal.failed`.
    pub(super) fn unheld_done(&self, done: Done, now: u64, events: &mut Vec<HealEvent>) {
        for run in done.hooks {
            events.push(self.hook_event(done.index, run, now));
        }
        if let Err(CallFailure { kind, detail }) = done.result {
            let mut e = self.event(done.index, EventKind::HealFailed, now, detail);
            e.step = Some(Step::Escalate);
            e.error_kind = Some(kind);
            e.outcome = Some(StepOutcome::Failed);
            events.push(e);
        }
    }

    /// The calls of `actions`, as a future owning all it needs (so it can run in its own task).
    pub(super) fn execute(
        &self,
        actions: Vec<Action>,
    ) -> impl Future<Output = Vec<Done>> + Send + 'static {
        let notify = self.notify.clone();
        let jobs: Vec<_> = actions
            .into_iter()
            .map(|action| {
                let notify = notify.clone();
                async move {
                    match action {
                        // The ports' deadline wrappers bound the call (`Ports::with_deadlines`).
                        Action::Heal {
                            index,
                            call,
                            before,
                        } => {
                            let hooks = match before {
                                Some(job) => job.run().await,
                                None => Vec::new(),
                            };
                            let result = heal_call(call).await.map(Some);
                            Done {
                                index,
                                result,
                                hooks,
                            }
                        }
                        Action::Hooks { index, job } => Done {
                            index,
                            result: Ok(None),
                            hooks: job.run().await,
                        },
                        Action::Notify { index, event } => {
                            let result = match notify {
                                None => Ok(None),
                                Some(spec) => {
                                    let env = [
                                        ("JOELCLAW_EVENT", event.to_json_line()),
                                        ("JOELCLAW_SERVICE", event.service.clone()),
                                    ];
                                    let end = run_command(&spec.argv, &env, spec.timeout).await;
                                    command_outcome(
                                        end,
                                        "notify command",
                                        spec.timeout,
                                        FailureKind::NotifyFailed,
                                    )
                                    .map(|()| None)
                                }
                            };
                            Done {
                                index,
                                result,
                                hooks: Vec::new(),
                            }
                        }
                    }
                }
            })
            .collect();
        futures::stream::iter(jobs)
            .buffer_unordered(self.settings.max_concurrency)
            .collect()
    }
}

/// A command's end as a call's result: exit 0 passes; anything else fails with `failed` (or
/// the missing program, or the deadline), naming `what`.
pub(super) fn command_outcome(
    end: CommandEnd,
    what: &str,
    timeout: Duration,
    failed: FailureKind,
) -> Result<(), CallFailure> {
    match end {
        CommandEnd::Exited(Some(0)) => Ok(()),
        CommandEnd::Exited(Some(code)) => {
            Err(CallFailure::new(failed, format!("{what} exited {code}")))
        }
        CommandEnd::Exited(None) => Err(CallFailure::new(
            failed,
            format!("{what} was killed by a signal"),
        )),
        CommandEnd::NotFound(why) => Err(CallFailure::new(FailureKind::BinaryNotFound, why)),
        CommandEnd::TimedOut => Err(CallFailure::new(
            FailureKind::Timeout,
            format!("{what} killed after {timeout:?}"),
        )),
        CommandEnd::Failed(why) => Err(CallFailure::new(failed, why)),
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
        call @ (HealCall::RestartContainer(..)
        | HealCall::RecreateContainer(..)
        | HealCall::SubstrateThenContainer(..)) => super::container::execute(call).await,
        HealCall::EnsureRunning(rt) => rt
            .ensure_running()
            .await
            .map(|result| StepOutcome::SubstrateStarted { result })
            .map_err(|e| CallFailure::new(e.kind(), e.to_string())),
    }
}
