//! A container's own heal ladder, and its health-gated order.
//!
//! - Ladder: restart → recreate from its Compose file (a Compose service only) → heal the
//!   substrate (bring it up, then start the container) → escalate (the breaker opens on the
//!   failures, as for any service). A container the engine no longer has (`docker rm -f`) is
//!   recreated at once: restarting it cannot work.
//! - Order: a container is healed only once every service it depends on is healthy (Compose's
//!   `depends_on: condition: service_healthy`, kept by the loop), not only its infra-critical
//!   ones.

use container_runtime::{ContainerRef, EnsureRunningOutcome, SharedContainerRuntime};

use super::{HealCall, HealLoop, Target};
use crate::events::{CallFailure, Step, StepOutcome};
use crate::model::ServiceSpec;
use crate::probe::ProbeFailure;

/// How a container service names its container (see [`ServiceSpec::container_ref`]).
pub(super) fn container_ref(spec: &ServiceSpec) -> ContainerRef {
    spec.container_ref()
        .unwrap_or_else(|| ContainerRef::Named(spec.label.to_string()))
}

/// The rung for the next attempt, from the attempts already made this episode (pure: the
/// decision in `machine` calls it).
pub(super) fn rung_step(compose: bool, failure: Option<ProbeFailure>, made: u32) -> Step {
    match (made, compose) {
        // Gone from the engine: only its definition can bring it back.
        (_, true) if failure == Some(ProbeFailure::NotInstalled) && made < 2 => Step::Repair,
        (0, _) => Step::Restart,
        (1, true) => Step::Repair,
        _ => Step::HealSubstrate,
    }
}

/// The call of a rung.
pub(super) fn rung_call(
    runtime: &SharedContainerRuntime,
    what: &ContainerRef,
    step: Step,
) -> HealCall {
    match (step, what) {
        (Step::Repair, ContainerRef::Compose(service)) => {
            HealCall::RecreateContainer(runtime.clone(), service.clone())
        }
        (Step::HealSubstrate, _) => HealCall::SubstrateThenContainer(runtime.clone(), what.clone()),
        _ => HealCall::RestartContainer(runtime.clone(), what.clone()),
    }
}

fn failed(e: container_runtime::RuntimeError) -> CallFailure {
    CallFailure::new(e.kind(), e.to_string())
}

/// Runs a container rung past the restart.
pub(super) async fn execute(call: HealCall) -> Result<StepOutcome, CallFailure> {
    match call {
        HealCall::RecreateContainer(rt, service) => rt
            .recreate(&service)
            .await
            .map(|result| StepOutcome::ContainerRestarted { result })
            .map_err(failed),
        HealCall::SubstrateThenContainer(rt, what) => {
            let substrate = rt.ensure_running().await.map_err(failed)?;
            // A container without a restart policy stays down after its substrate came back.
            match rt.inspect_ref(&what).await {
                Ok(c) if c.is_up() => {}
                Ok(c) => {
                    let started = rt.start_container(&c.name).await.map_err(failed)?;
                    if substrate == EnsureRunningOutcome::AlreadyRunning {
                        return Ok(StepOutcome::ContainerRestarted { result: started });
                    }
                }
                Err(e) => return Err(failed(e)),
            }
            Ok(StepOutcome::SubstrateStarted { result: substrate })
        }
        HealCall::RestartContainer(rt, what) => rt
            .restart_ref(&what)
            .await
            .map(|result| StepOutcome::ContainerRestarted { result })
            .map_err(failed),
        other => unreachable!("not a container call: {other:?}"),
    }
}

impl HealLoop {
    /// Whether service `i` waits for every dependency to be healthy before it is healed (a
    /// container: its dependencies' health gates its start), not only its infra-critical ones.
    pub(super) fn health_gated(&self, i: usize) -> bool {
        matches!(self.services[i].target, Target::Container { .. })
    }
}
