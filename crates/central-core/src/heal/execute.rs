//! Acting on a decision: the heal call through the port (bounded by the port's deadline
//! wrapper) and the notify command.

use std::future::Future;

use futures::StreamExt;

use super::{Action, HealCall, HealLoop};
use crate::events::{CallFailure, FailureKind, StepOutcome};
use crate::probe::{run_command, CommandEnd};

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
