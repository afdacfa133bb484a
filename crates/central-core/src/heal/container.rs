//! A container's own heal ladder, its health-gated order, and how its engine's restarts are
//! watched.
//!
//! - Ladder: restart → recreate from its Compose file (a Compose service only; the running
//!   container is replaced) → heal the substrate (bring it up, then start the container) →
//!   escalate (the breaker opens on the failures, as for any service). A container the engine no
//!   longer has (`docker rm -f`) is recreated at once: restarting it cannot work.
//! - Order: a container is healed only once every service it depends on is healthy (Compose's
//!   `depends_on: condition: service_healthy`, kept by the loop), not only its infra-critical
//!   ones.
//! - Crash loops: every container service is probed first by its [`EngineWatch`], which reads
//!   the engine's restart count and start time across looks. A container the engine's restart
//!   policy restarted is not up again until one of its runs has lasted [`ENGINE_SETTLE`], so a
//!   look that lands between two crashes (running, its other probes passing) is not a pass and
//!   cannot verify a heal: the loop observes the engine, then climbs its ladder to the breaker.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use container_runtime::{
    ContainerRef, ContainerStatus, EnsureRunningOutcome, SharedContainerRuntime,
};

use super::{HealCall, HealLoop, Target};
use crate::events::{CallFailure, Step, StepOutcome};
use crate::model::{EndpointClass, HealPolicy, ServiceSpec};
use crate::probe::{container_error, container_verdict, Probe, ProbeFailure, ProbeResult};

/// How long a container the engine restarted must run before it reads as up again (or the
/// service's `start_grace`, if longer): Docker's restart manager counts a run shorter than 10 s
/// as a failed start (its backoff keeps growing), and so does the watch.
pub(super) const ENGINE_SETTLE: Duration = Duration::from_secs(10);

/// The deadline of a watch that replaces no probe of the service.
const WATCH_TIMEOUT: Duration = Duration::from_secs(5);

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

/// Puts the [`EngineWatch`] of container `what` first among its service's `probes`, in place of
/// the plain container probes of the same container (the watch gives their verdicts too, from
/// one inspection per round). It keeps their deadline; with none, the longest of the others.
pub(super) fn watch_engine(
    probes: &mut Vec<Arc<dyn Probe>>,
    runtime: &SharedContainerRuntime,
    what: &ContainerRef,
    policy: &HealPolicy,
) {
    // A container probe describes itself by its `ContainerRef`, as the watch does.
    let own = what.to_string();
    let timeout = probes
        .iter()
        .find(|p| p.describe() == own)
        .or_else(|| probes.iter().max_by_key(|p| p.deadline()))
        .map_or(WATCH_TIMEOUT, |p| p.deadline());
    probes.retain(|p| p.describe() != own);
    let settle = policy.start_grace.max(ENGINE_SETTLE);
    probes.insert(
        0,
        Arc::new(EngineWatch::new(
            runtime.clone(),
            what.clone(),
            timeout,
            settle,
        )),
    );
}

/// What the watch kept from its previous looks.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Seen {
    /// The container's id and the engine's restart count at the last look.
    last: Option<(String, u64)>,
    /// The engine restarted this service's container and no container of it has run `settle`
    /// since (a restart or recreate by the loop does not clear it: the new run must last).
    suspect: bool,
}

/// A container's state through the engine, judged across looks: Docker's restart policy
/// restarting it, or having restarted it (its restart count grew since the last look, or it
/// restarted it less than `settle` ago), is a crash loop, not a pass; and once seen, every
/// run of the service's container must last `settle` before it reads as up. Otherwise its
/// verdict is the plain container probe's.
#[derive(Debug)]
pub(super) struct EngineWatch {
    runtime: SharedContainerRuntime,
    what: ContainerRef,
    timeout: Duration,
    settle: Duration,
    seen: Mutex<Seen>,
}

impl EngineWatch {
    /// Watches `what` through `runtime`: each look within `timeout`; a run the engine restarted
    /// must last `settle` to count.
    pub(super) fn new(
        runtime: SharedContainerRuntime,
        what: ContainerRef,
        timeout: Duration,
        settle: Duration,
    ) -> Self {
        EngineWatch {
            runtime,
            what,
            timeout,
            settle,
            seen: Mutex::new(Seen::default()),
        }
    }
}

#[async_trait]
impl Probe for EngineWatch {
    fn describe(&self) -> String {
        self.what.to_string()
    }

    fn deadline(&self) -> Duration {
        self.timeout
    }

    fn asks_manager(&self) -> bool {
        true
    }

    async fn check(&self) -> ProbeResult {
        match self.runtime.inspect_ref(&self.what).await {
            Ok(c) => {
                let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
                crash_loop(&mut seen, &c, self.settle)
                    .unwrap_or_else(|| container_verdict(&c, EndpointClass::Localhost))
            }
            Err(e) => container_error(&e),
        }
    }
}

/// The crash loop `c` shows after what earlier looks saw (`seen`, brought up to date), if any:
/// `None` leaves the verdict to the container's plain state.
fn crash_loop(seen: &mut Seen, c: &ContainerStatus, settle: Duration) -> Option<ProbeResult> {
    let grew = seen
        .last
        .as_ref()
        .is_some_and(|(id, count)| *id == c.id && c.restart_count > *count);
    seen.last = Some((c.id.clone(), c.restart_count));
    let settle_secs = settle.as_secs();
    // Whole seconds, as the engine's start time gives them.
    let short_run = c.uptime_seconds.is_some_and(|up| up < settle_secs);
    if c.is_restarting() || grew || (c.restart_count > 0 && short_run) {
        seen.suspect = true;
    }
    if !c.running || c.is_restarting() {
        // Its plain state already says it is not up.
        return None;
    }
    let up = c.uptime_seconds?;
    if up >= settle_secs {
        // A run long enough to count: whatever came before is over.
        seen.suspect = false;
        return grew.then(|| {
            ProbeResult::fail(
                ProbeFailure::SupervisorRestarting,
                format!(
                    "the engine restarted it since the last look ({} restarts by its restart \
                     policy)",
                    c.restart_count
                ),
            )
        });
    }
    if !seen.suspect {
        return None;
    }
    Some(if c.restart_count > 0 {
        ProbeResult::fail(
            ProbeFailure::SupervisorRestarting,
            format!(
                "a crash loop: restarted {} times by the engine's restart policy, up {up} s \
                 of the {settle_secs} s a run must last to count",
                c.restart_count
            ),
        )
    } else {
        ProbeResult::fail(
            ProbeFailure::Starting,
            format!(
                "started {up} s ago after a crash loop: not up until a run lasts {settle_secs} s"
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(id: &str, restarts: u64, up: Option<u64>, status: &str) -> ContainerStatus {
        ContainerStatus {
            name: "central-redis-1".into(),
            id: id.into(),
            image: "redis:7".into(),
            running: status != "exited",
            status: status.into(),
            health: container_runtime::ContainerHealth::None,
            restart_count: restarts,
            exit_code: None,
            uptime_seconds: up,
            labels: Default::default(),
        }
    }

    const SETTLE: Duration = Duration::from_secs(10);

    fn failure(r: Option<ProbeResult>) -> Option<ProbeFailure> {
        r.and_then(|r| r.failure)
    }

    #[test]
    fn a_container_the_engine_never_restarted_is_judged_by_its_state_alone() {
        let mut seen = Seen::default();
        for up in [0, 1, 30] {
            let c = container("a", 0, Some(up), "running");
            assert_eq!(crash_loop(&mut seen, &c, SETTLE), None, "up {up}");
        }
        assert!(!seen.suspect);
    }

    #[test]
    fn a_look_between_two_crashes_is_not_a_pass() {
        let mut seen = Seen::default();
        // Running for a moment between crashes, each look: never up.
        for (restarts, up) in [(1, 0), (2, 1), (3, 0), (3, 1)] {
            let c = container("a", restarts, Some(up), "running");
            assert_eq!(
                failure(crash_loop(&mut seen, &c, SETTLE)),
                Some(ProbeFailure::SupervisorRestarting),
                "{restarts} restarts, up {up}"
            );
        }
        // Waiting in Docker's backoff: the plain state says `restarting`.
        let waiting = container("a", 4, None, "restarting");
        assert_eq!(crash_loop(&mut seen, &waiting, SETTLE), None);
        assert!(seen.suspect);
    }

    #[test]
    fn after_a_crash_loop_a_restarted_or_recreated_container_must_last_a_whole_run() {
        let mut seen = Seen::default();
        crash_loop(&mut seen, &container("a", 5, Some(0), "running"), SETTLE);
        // The loop's restart reset the count (as Docker's does); a recreate gave a new id.
        for c in [
            container("a", 0, Some(2), "running"),
            container("b", 0, Some(9), "running"),
        ] {
            assert_eq!(
                failure(crash_loop(&mut seen, &c, SETTLE)),
                Some(ProbeFailure::Starting),
                "{c:?}"
            );
        }
        // A run of `settle`: up, and the crash loop is over.
        let lasted = container("b", 0, Some(10), "running");
        assert_eq!(crash_loop(&mut seen, &lasted, SETTLE), None);
        assert!(!seen.suspect);
        assert_eq!(
            crash_loop(&mut seen, &container("b", 0, Some(11), "running"), SETTLE),
            None
        );
    }

    #[test]
    fn a_restart_count_grown_since_the_last_look_is_seen_even_after_a_long_run() {
        let mut seen = Seen::default();
        crash_loop(&mut seen, &container("a", 0, Some(100), "running"), SETTLE);
        // Looked at again after a crash and a long run (a slow look): not up this time.
        let r = crash_loop(&mut seen, &container("a", 1, Some(50), "running"), SETTLE);
        assert_eq!(failure(r), Some(ProbeFailure::SupervisorRestarting));
        assert!(!seen.suspect, "the run since lasted long enough");
        let r = crash_loop(&mut seen, &container("a", 1, Some(51), "running"), SETTLE);
        assert_eq!(r, None);
    }

    #[test]
    fn a_stopped_container_is_left_to_its_plain_state() {
        let mut seen = Seen::default();
        let c = container("a", 2, None, "exited");
        assert_eq!(crash_loop(&mut seen, &c, SETTLE), None);
        assert_eq!(
            container_verdict(&c, EndpointClass::Localhost).failure,
            Some(ProbeFailure::NotRunning)
        );
    }
}
