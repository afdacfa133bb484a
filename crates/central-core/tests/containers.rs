//! Container services in the heal loop, on paused time over the in-memory runtime: the ladder
//! (restart → recreate from Compose → heal the substrate → escalate), a removed container
//! recreated at once, a crash loop under Docker's restart policy observed then healed (also one
//! whose every look lands between two crashes), and the health-gated order of dependent
//! containers.

use std::sync::Arc;
use std::time::Duration;

use central_core::{
    Clock, EventKind, HealLoop, Inventory, LoopOptions, NodeTags, Ports, Step, StepOutcome,
    TickReport,
};
use container_runtime::testkit::{instrumented, Fault, Faulty, Injection, Recording};
use container_runtime::{
    ComposeService, ContainerHealth, ContainerRestartOutcome, EnginePort, MemoryRuntime,
    RuntimeError, RuntimeOperation,
};
use tokio::time::sleep;

use EventKind::*;

type TestRuntime = Recording<Faulty<MemoryRuntime>>;

const FAST: &str = r#"
[loop]
interval = "10s"
heal_timeout = "5s"

[heal]
failures_to_down = 1
passes_to_up = 1
grace = "0s"
jitter = 0.0
backoff_initial = "10s"
backoff_max = "10s"
breaker_threshold = 3
observe_max = "30s"
"#;

fn service(name: &str) -> ComposeService {
    ComposeService {
        project: "central".into(),
        file: "/opt/joelclaw/central/compose.yaml".into(),
        service: name.into(),
    }
}

fn central(extra: &str) -> Inventory {
    let text = format!(
        "{FAST}\n[substrate]\nname = \"engine\"\nkind = \"null\"\n\n\
         [[service]]\nlabel = \"redis\"\nmanager = \"container\"\n\
         compose = {{ project = \"central\", file = \"/opt/joelclaw/central/compose.yaml\" }}\n\n\
         [[service]]\nlabel = \"inngest\"\nmanager = \"container\"\ndepends_on = [\"redis\"]\n\
         compose = {{ project = \"central\", file = \"/opt/joelclaw/central/compose.yaml\" }}\n{extra}"
    );
    Inventory::parse("central.toml", &text).unwrap_or_else(|e| panic!("{e}"))
}

fn runtime() -> Arc<TestRuntime> {
    let rt = Arc::new(instrumented(MemoryRuntime::new()));
    rt.add_compose_service(&service("redis"));
    rt.add_compose_service(&service("inngest"));
    rt
}

fn heal_loop(rt: &Arc<TestRuntime>) -> HealLoop {
    let options = LoopOptions::new(NodeTags::new("central", "macos"))
        .with_clock(Clock::starting_at(1_800_000_000_000))
        .with_seed(7);
    HealLoop::new(&central(""), Ports::new().with_runtime(rt.clone()), options).unwrap()
}

fn of<'a>(r: &'a TickReport, service: &str) -> Vec<&'a central_core::HealEvent> {
    r.events.iter().filter(|e| e.service == service).collect()
}

fn started_step(r: &TickReport, service: &str) -> Option<Step> {
    of(r, service)
        .into_iter()
        .find(|e| e.event == HealStarted)
        .and_then(|e| e.step)
}

fn fail(op: RuntimeOperation) -> Injection {
    Injection::new(
        op,
        Fault::fail(|| RuntimeError::Unavailable {
            adapter: "memory".into(),
            detail: "refused".into(),
        }),
    )
}

#[tokio::test(start_paused = true)]
async fn the_ladder_is_restart_then_recreate_then_the_substrate_then_a_person() {
    let rt = runtime();
    let mut heal = heal_loop(&rt);
    assert!(heal.tick().await.events.is_empty(), "all healthy");
    rt.set_container_health("central-redis-1", ContainerHealth::None, false);
    for op in [
        RuntimeOperation::RestartContainer,
        RuntimeOperation::Recreate,
        RuntimeOperation::EnsureRunning,
    ] {
        rt.inject(fail(op));
    }
    let mut steps = Vec::new();
    let mut escalated = false;
    for _ in 0..6 {
        let r = heal.tick().await;
        steps.extend(started_step(&r, "redis"));
        escalated |= of(&r, "redis").iter().any(|e| e.event == HealEscalated);
        sleep(Duration::from_secs(10)).await;
    }
    assert_eq!(
        steps,
        [Step::Restart, Step::Repair, Step::HealSubstrate],
        "one attempt per rung, then no more"
    );
    assert!(escalated, "the breaker opened and a person was called");
    assert_eq!(rt.count(RuntimeOperation::RestartContainer), 1);
    assert_eq!(rt.count(RuntimeOperation::Recreate), 1);
    assert_eq!(rt.count(RuntimeOperation::EnsureRunning), 1);
}

#[tokio::test(start_paused = true)]
async fn a_removed_compose_container_is_recreated_with_its_labels_not_restarted() {
    let rt = runtime();
    let mut heal = heal_loop(&rt);
    heal.tick().await;
    let before = rt.find_compose_container(&service("redis")).await.unwrap();
    rt.remove_container(&before.name);
    let r = heal.tick().await;
    assert_eq!(started_step(&r, "redis"), Some(Step::Repair));
    let failed = of(&r, "redis")[0];
    assert_eq!(failed.event, ProbeFailed);
    assert_eq!(rt.count(RuntimeOperation::RestartContainer), 0);
    assert_eq!(rt.count(RuntimeOperation::Recreate), 1);

    sleep(Duration::from_secs(10)).await;
    let r = heal.tick().await;
    let done = of(&r, "redis");
    assert!(done.iter().any(|e| e.event == HealSucceeded), "{done:?}");
    assert!(done.iter().any(|e| e.outcome
        == Some(StepOutcome::ContainerRestarted {
            result: ContainerRestartOutcome::Recreated
        })));
    let after = rt.find_compose_container(&service("redis")).await.unwrap();
    assert_ne!(after.id, before.id);
    assert_eq!(after.labels, before.labels);
}

#[tokio::test(start_paused = true)]
async fn a_crash_loop_under_the_engines_restart_policy_is_not_healthy_and_is_healed_after_observing(
) {
    let rt = runtime();
    let mut heal = heal_loop(&rt);
    heal.tick().await;
    rt.set_crash_looping("central-redis-1");
    let r = heal.tick().await;
    let redis = of(&r, "redis");
    assert_eq!(redis[0].event, ProbeFailed, "a crash loop is a failure");
    assert_eq!(redis[1].event, HealSuppressed);
    assert_eq!(redis[1].step, Some(Step::Observe));
    assert_eq!(rt.count(RuntimeOperation::RestartContainer), 0);
    // Past observe_max (30 s) the loop's own ladder takes over.
    let mut step = None;
    for _ in 0..4 {
        sleep(Duration::from_secs(10)).await;
        step = step.or(started_step(&heal.tick().await, "redis"));
    }
    assert_eq!(step, Some(Step::Restart));
    assert_eq!(rt.count(RuntimeOperation::RestartContainer), 1);
}

#[tokio::test(start_paused = true)]
async fn a_crash_loop_seen_only_between_crashes_is_not_healthy_and_climbs_to_a_person() {
    let rt = runtime();
    let mut heal = heal_loop(&rt);
    assert!(heal.tick().await.events.is_empty(), "all healthy");
    let mut steps = Vec::new();
    let mut redis = Vec::new();
    for _ in 0..20 {
        sleep(Duration::from_secs(10)).await;
        // Each look lands just after the engine's restart policy started it again: running.
        rt.crash("central-redis-1");
        let r = heal.tick().await;
        steps.extend(started_step(&r, "redis"));
        redis.extend(of(&r, "redis").into_iter().cloned());
    }
    assert!(
        redis
            .iter()
            .any(|e| e.event == ProbeFailed && e.detail.contains("crash loop")),
        "{redis:#?}"
    );
    assert!(
        !redis
            .iter()
            .any(|e| matches!(e.event, HealSucceeded | ProbeRecovered)),
        "a look between two crashes read as healthy: {redis:#?}"
    );
    assert_eq!(
        steps,
        [Step::Restart, Step::Repair, Step::HealSubstrate],
        "each rung once, then the breaker"
    );
    assert!(redis.iter().any(|e| e.event == HealEscalated), "{redis:#?}");
    assert_eq!(rt.count(RuntimeOperation::RestartContainer), 1);
    assert_eq!(rt.count(RuntimeOperation::Recreate), 1);
}

#[tokio::test(start_paused = true)]
async fn one_restart_by_the_engine_is_observed_then_up_once_the_run_lasts() {
    let rt = runtime();
    let mut heal = heal_loop(&rt);
    heal.tick().await;
    rt.crash("central-redis-1");
    let r = heal.tick().await;
    let redis = of(&r, "redis");
    assert_eq!(redis[0].event, ProbeFailed, "{redis:?}");
    assert_eq!(redis[1].event, HealSuppressed);
    assert_eq!(redis[1].step, Some(Step::Observe));
    // Docker's measure of a run that counts: 10 s.
    sleep(Duration::from_secs(10)).await;
    let r = heal.tick().await;
    let redis = of(&r, "redis");
    assert!(redis.iter().any(|e| e.event == ProbeRecovered), "{redis:?}");
    assert_eq!(started_step(&r, "redis"), None);
    assert_eq!(rt.count(RuntimeOperation::RestartContainer), 0);
}

#[tokio::test(start_paused = true)]
async fn a_dependent_container_is_held_until_its_dependency_is_healthy() {
    let rt = runtime();
    let mut heal = heal_loop(&rt);
    heal.tick().await;
    rt.set_container_health("central-redis-1", ContainerHealth::Unhealthy, true);
    rt.set_container_health("central-inngest-1", ContainerHealth::None, false);
    let r = heal.tick().await;
    assert_eq!(started_step(&r, "redis"), Some(Step::Restart));
    let held = of(&r, "inngest");
    assert!(
        held.iter().any(|e| e.event == HealSuppressed
            && e.cause
                .as_deref()
                .is_some_and(|c| c.starts_with("dependency redis "))),
        "{held:?}"
    );
    assert_eq!(
        rt.count_for(RuntimeOperation::RestartContainer, "central-inngest-1"),
        0
    );

    // The memory engine's restart made redis healthy: this round's probe says so, and its
    // dependent is healed in the same round.
    sleep(Duration::from_secs(10)).await;
    let r = heal.tick().await;
    assert!(of(&r, "redis").iter().any(|e| e.event == HealSucceeded));
    assert_eq!(started_step(&r, "inngest"), Some(Step::Restart));
}
