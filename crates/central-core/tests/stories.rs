//! The heal loop's failure stories (DESIGN.md §4), each on paused tokio time over the in-memory
//! adapters, asserting the events and the calls made to the ports.

use std::sync::Arc;
use std::time::Duration;

use central_core::{
    BreakerState, Clock, EventKind, FailureKind, HealLoop, Health, Inventory, JsonLinesSink,
    LoopOptions, MemorySink, NodeTags, Ports, ScriptedProbe, Step, StepOutcome, TickReport,
};
use container_runtime::{MemoryRuntime, RuntimeOperation};
use process_manager::testkit::{instrumented, Fault, Faulty, Injection, Recording};
use process_manager::{
    ExitStatus, MemoryProcessManager, Operation, ProcessManagerPort, RunState, ServiceConfig,
    ServiceLabel,
};
use tokio::time::{sleep, Instant};

use EventKind::*;

const EPOCH_MS: u64 = 1_800_000_000_000;

fn label(s: &str) -> ServiceLabel {
    ServiceLabel::new(s).unwrap()
}

fn inventory(text: &str) -> Inventory {
    Inventory::parse("stories.toml", text).unwrap_or_else(|e| panic!("{e}"))
}

fn options(clock: Clock) -> LoopOptions {
    LoopOptions::new(NodeTags::new("story-node", "linux"))
        .with_clock(clock)
        .with_seed(7)
}

/// The memory manager, with faults and a call count.
type TestManager = Recording<Faulty<MemoryProcessManager>>;

/// The memory runtime, with faults and a call count.
type TestRuntime =
    container_runtime::testkit::Recording<container_runtime::testkit::Faulty<MemoryRuntime>>;

fn runtime() -> Arc<TestRuntime> {
    Arc::new(container_runtime::testkit::instrumented(
        MemoryRuntime::new(),
    ))
}

/// A memory manager with these services installed and running.
async fn manager(labels: &[&str]) -> Arc<TestManager> {
    let pm = Arc::new(instrumented(MemoryProcessManager::new()));
    for l in labels {
        pm.enable(&ServiceConfig::new(label(l), format!("/opt/bin/{l}")))
            .await
            .unwrap();
    }
    pm.clear_calls();
    pm
}

fn kinds(report: &TickReport) -> Vec<(EventKind, &str)> {
    report
        .events
        .iter()
        .map(|e| (e.event, e.service.as_str()))
        .collect()
}

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
"#;

#[tokio::test(start_paused = true)]
async fn crash_is_restarted_once_then_healthy_and_left_alone() {
    let pm = manager(&["worker"]).await;
    let inv = inventory(&format!(
        "{FAST}\n[[service]]\nlabel = \"worker\"\nmanager = \"null\"\n"
    ));
    let sink = Arc::new(MemorySink::new());
    let mut heal = HealLoop::new(
        &inv,
        Ports::new().with_manager("null", pm.clone()),
        options(Clock::starting_at(EPOCH_MS)),
    )
    .unwrap();
    heal.add_sink(sink.clone());

    assert!(
        heal.tick().await.events.is_empty(),
        "healthy: nothing to say"
    );
    pm.crash(&label("worker"), ExitStatus::Signal(9));
    let r = heal.tick().await;
    assert_eq!(
        kinds(&r),
        vec![(ProbeFailed, "worker"), (HealStarted, "worker")]
    );
    assert_eq!(r.events[1].step, Some(Step::Restart));
    assert_eq!(
        r.events[0].error_kind.map(FailureKind::as_str),
        Some("not-running")
    );
    assert_eq!(pm.count_for(Operation::Restart, &label("worker")), 1);

    sleep(Duration::from_secs(10)).await;
    let r = heal.tick().await;
    assert_eq!(
        kinds(&r),
        vec![(ProbeRecovered, "worker"), (HealSucceeded, "worker")]
    );
    // The manager's own answer, typed: it was stopped, so it was started.
    assert_eq!(
        r.events[1].outcome,
        Some(StepOutcome::Restarted {
            result: process_manager::RestartOutcome::Started
        })
    );
    sleep(Duration::from_secs(10)).await;
    assert!(heal.tick().await.events.is_empty());
    assert_eq!(
        pm.count_for(Operation::Restart, &label("worker")),
        1,
        "no second restart"
    );

    // Every event carries the tags, and the sink saw the same sequence.
    let all = sink.events();
    assert_eq!(all.len(), 4);
    for e in &all {
        assert_eq!(e.node_id, "story-node");
        assert_eq!(e.platform, "linux");
        assert_eq!(e.adapter_type, "memory");
    }
    assert_eq!(
        all[3].endpoint_class,
        Some(central_core::inventory::EndpointClass::Localhost)
    );

    let status = heal.status();
    let w = &status.services[0];
    assert_eq!(w.health, Health::Healthy);
    assert_eq!(w.run_state, Some(RunState::Running));
    assert!(w.pid.is_some());
    assert_eq!(w.breaker, BreakerState::Closed);
    assert_eq!(w.last_event, Some(HealSucceeded));
    assert!(w.last_probe.as_ref().unwrap().passed);
}

#[tokio::test(start_paused = true)]
async fn hang_is_restarted_after_exactly_n_failed_probes() {
    let pm = manager(&["gateway"]).await;
    let inv = inventory(
        "[heal]\nfailures_to_down = 3\npasses_to_up = 1\ngrace = \"0s\"\n\n[[service]]\nlabel = \"gateway\"\nmanager = \"null\"\n",
    );
    let mut heal = HealLoop::new(
        &inv,
        Ports::new().with_manager("null", pm.clone()),
        options(Clock::starting_at(EPOCH_MS)),
    )
    .unwrap();
    // The process is alive; its endpoint does not answer.
    let probe = ScriptedProbe::passing();
    heal.set_probes("gateway", vec![Arc::new(probe.clone())]);
    probe.set_passing(false);

    for round in 1..=2 {
        let r = heal.tick().await;
        assert_eq!(kinds(&r), vec![(ProbeFailed, "gateway")], "round {round}");
        assert_eq!(pm.count_for(Operation::Restart, &label("gateway")), 0);
        sleep(Duration::from_secs(10)).await;
    }
    let r = heal.tick().await;
    assert_eq!(
        kinds(&r),
        vec![(ProbeFailed, "gateway"), (HealStarted, "gateway")]
    );
    assert_eq!(pm.count_for(Operation::Restart, &label("gateway")), 1);
    assert_eq!(heal.status().services[0].health, Health::Unhealthy);

    probe.set_passing(true);
    sleep(Duration::from_secs(10)).await;
    let r = heal.tick().await;
    assert_eq!(
        kinds(&r),
        vec![(ProbeRecovered, "gateway"), (HealSucceeded, "gateway")]
    );
}

/// A round's `duration_ms` spans all of its probes: a probe that hangs until its deadline (5 s)
/// after one that answers at once makes a 5000 ms round; two that answer at once make 0 ms.
#[tokio::test(start_paused = true)]
async fn a_probe_round_reports_how_long_all_its_probes_took() {
    let pm = manager(&["gateway"]).await;
    let inv = inventory(&format!(
        "{FAST}\n[[service]]\nlabel = \"gateway\"\nmanager = \"null\"\n"
    ));
    let mut heal = HealLoop::new(
        &inv,
        Ports::new().with_manager("null", pm.clone()),
        options(Clock::starting_at(EPOCH_MS)),
    )
    .unwrap();
    let first = ScriptedProbe::passing();
    let second = ScriptedProbe::passing();
    heal.set_probes(
        "gateway",
        vec![Arc::new(first.clone()), Arc::new(second.clone())],
    );
    let last_round = |heal: &HealLoop| heal.status().services[0].last_probe.clone().unwrap();

    heal.tick().await;
    let quick = last_round(&heal);
    assert!(quick.passed);
    assert_eq!(quick.duration_ms, 0, "{quick:?}");

    second.set_hang(true);
    sleep(Duration::from_secs(10)).await;
    heal.tick().await;
    let slow = last_round(&heal);
    assert!(!slow.passed, "{slow:?}");
    assert_eq!(slow.duration_ms, 5_000, "{slow:?}");
    assert_eq!(first.calls(), 2, "both rounds ran the first probe too");
}

#[tokio::test(start_paused = true)]
async fn crash_loop_backs_off_opens_the_breaker_then_one_trial_then_closes() {
    let pm = manager(&["worker"]).await;
    let inv = inventory(&format!(
        "{FAST}\nbackoff_multiplier = 2.0\nbreaker_threshold = 3\nbreaker_window = \"10m\"\nbreaker_cooldown = \"5m\"\nstable_after = \"1m\"\n\n[[service]]\nlabel = \"worker\"\nmanager = \"null\"\n"
    ));
    let mut heal = HealLoop::new(
        &inv,
        Ports::new().with_manager("null", pm.clone()),
        options(Clock::starting_at(EPOCH_MS)),
    )
    .unwrap();
    let worker = label("worker");
    let start = Instant::now();
    let mut restarts_at = Vec::new();
    let mut log: Vec<(u64, EventKind)> = Vec::new();
    let mut crashing = true;
    // Ticks every 10 s for 7 minutes; the service crashes right after every start until the
    // half-open trial.
    for _ in 0..=42 {
        let t = start.elapsed().as_secs();
        if crashing {
            pm.crash(&worker, ExitStatus::Code(1));
        }
        let before = pm.count_for(Operation::Restart, &worker);
        let r = heal.tick().await;
        if pm.count_for(Operation::Restart, &worker) > before {
            restarts_at.push(t);
        }
        for e in &r.events {
            if e.event != ProbeFailed {
                log.push((t, e.event));
            }
            if e.event == BreakerHalfOpen {
                crashing = false;
            }
        }
        sleep(Duration::from_secs(10)).await;
    }
    // Restarts spaced 10 s then 20 s (backoff from each attempt's start), then the breaker; one
    // trial after the 5 min cool-down.
    assert_eq!(restarts_at, vec![0, 10, 30, 340]);
    assert_eq!(
        log,
        vec![
            (0, HealStarted),
            (10, HealFailed),
            (10, HealStarted),
            (20, HealFailed),
            (30, HealStarted),
            (40, HealFailed),
            (40, BreakerOpened),
            (40, HealEscalated),
            (340, BreakerHalfOpen),
            (340, HealStarted),
            (350, ProbeRecovered),
            (350, HealSucceeded),
            (410, BreakerClosed),
        ]
    );
    assert_eq!(heal.status().services[0].breaker, BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn substrate_down_leaves_its_containers_unknown_heals_it_first_and_restarts_none() {
    let rt = runtime();
    rt.add_container("redis", &[]);
    rt.add_container("typesense", &[]);
    let inv = inventory(&format!(
        "{FAST}\n[substrate]\nname = \"colima\"\n\n[[service]]\nlabel = \"redis\"\nmanager = \"container\"\nclass = \"infra-critical\"\n\n[[service]]\nlabel = \"typesense\"\nmanager = \"container\"\n"
    ));
    let mut heal = HealLoop::new(
        &inv,
        Ports::new().with_runtime(rt.clone()),
        options(Clock::starting_at(EPOCH_MS)),
    )
    .unwrap();
    assert!(heal.tick().await.events.is_empty());

    rt.set_healthy(false);
    let r = heal.tick().await;
    // With the runtime down its containers cannot be asked about: they are unknown, neither
    // down nor healthy, so nothing is said or done about them; the substrate is healed.
    assert_eq!(
        kinds(&r),
        vec![(ProbeFailed, "colima"), (HealStarted, "colima")]
    );
    assert_eq!(r.events[1].step, Some(Step::HealSubstrate));
    assert_eq!(rt.count(RuntimeOperation::EnsureRunning), 1);
    for s in &heal.status().services[1..] {
        assert_eq!(s.health, Health::Unknown, "{}", s.label);
    }

    sleep(Duration::from_secs(10)).await;
    let r = heal.tick().await;
    assert_eq!(
        kinds(&r),
        vec![(ProbeRecovered, "colima"), (HealSucceeded, "colima")]
    );
    assert_eq!(rt.count(RuntimeOperation::RestartContainer), 0);
    assert_eq!(rt.count(RuntimeOperation::EnsureRunning), 1);
    assert_eq!(
        r.events[1].outcome,
        Some(StepOutcome::SubstrateStarted {
            result: container_runtime::EnsureRunningOutcome::Started
        })
    );
}

#[tokio::test(start_paused = true)]
async fn an_app_level_failure_never_causes_work_on_infra() {
    let pm = manager(&["db", "app"]).await;
    let rt = runtime();
    let inv = inventory(&format!(
        "{FAST}\n[substrate]\n\n[[service]]\nlabel = \"db\"\nmanager = \"null\"\nclass = \"infra-critical\"\ndepends_on = [\"substrate\"]\n\n[[service]]\nlabel = \"app\"\nmanager = \"null\"\nclass = \"app-level\"\ndepends_on = [\"db\"]\n"
    ));
    let mut heal = HealLoop::new(
        &inv,
        Ports::new()
            .with_manager("null", pm.clone())
            .with_runtime(rt.clone()),
        options(Clock::starting_at(EPOCH_MS)),
    )
    .unwrap();
    let probe = ScriptedProbe::passing();
    heal.set_probes("app", vec![Arc::new(probe.clone())]);
    probe.set_passing(false);
    let r = heal.tick().await;
    assert_eq!(kinds(&r), vec![(ProbeFailed, "app"), (HealStarted, "app")]);
    assert_eq!(pm.count_for(Operation::Restart, &label("app")), 1);
    assert_eq!(pm.count_for(Operation::Restart, &label("db")), 0);
    assert_eq!(rt.count(RuntimeOperation::EnsureRunning), 0);
}

#[tokio::test(start_paused = true)]
async fn flapping_probe_is_kept_from_restarting_by_hysteresis() {
    let pm = manager(&["inngest"]).await;
    let inv = inventory(
        "[heal]\nfailures_to_down = 3\npasses_to_up = 2\n\n[[service]]\nlabel = \"inngest\"\nmanager = \"null\"\n",
    );
    let mut heal = HealLoop::new(
        &inv,
        Ports::new().with_manager("null", pm.clone()),
        options(Clock::starting_at(EPOCH_MS)),
    )
    .unwrap();
    let probe = ScriptedProbe::passing();
    heal.set_probes("inngest", vec![Arc::new(probe.clone())]);
    // Two failures at most in a row, for 30 rounds.
    let pattern = [false, true, false, false, true, true, false, true];
    probe.queue(&pattern.repeat(4)[..30]);
    let mut seen = Vec::new();
    for _ in 0..30 {
        seen.extend(heal.tick().await.events.into_iter().map(|e| e.event));
        sleep(Duration::from_secs(10)).await;
    }
    assert!(seen.contains(&ProbeFailed));
    assert!(seen.contains(&ProbeRecovered), "{seen:?}");
    assert!(
        seen.iter()
            .all(|e| matches!(e, ProbeFailed | ProbeRecovered)),
        "{seen:?}"
    );
    assert_eq!(pm.count_for(Operation::Restart, &label("inngest")), 0);
}

#[tokio::test(start_paused = true)]
async fn agent_restart_mid_episode_does_not_restart_again() {
    let dir = tempfile::tempdir().unwrap();
    let pm = manager(&["worker"]).await;
    let worker = label("worker");
    let inv = inventory(&format!(
        "{FAST}\n[[service]]\nlabel = \"worker\"\nmanager = \"null\"\n"
    ));
    let clock = Clock::starting_at(EPOCH_MS);
    let ports = Ports::new().with_manager("null", pm.clone());

    let mut first = HealLoop::new(
        &inv,
        ports.clone(),
        options(clock).with_state_dir(dir.path()),
    )
    .unwrap();
    pm.crash(&worker, ExitStatus::Signal(9));
    let r = first.tick().await;
    assert_eq!(
        kinds(&r),
        vec![(ProbeFailed, "worker"), (HealStarted, "worker")]
    );
    assert_eq!(pm.count_for(Operation::Restart, &worker), 1);
    // The agent dies here, before it saw whether the restart worked; and the worker crashes
    // again at once.
    drop(first);
    pm.crash(&worker, ExitStatus::Signal(9));

    sleep(Duration::from_secs(2)).await;
    let mut second = HealLoop::new(
        &inv,
        ports.clone(),
        options(clock).with_state_dir(dir.path()),
    )
    .unwrap();
    assert_eq!(
        second.status().services[0]
            .in_flight
            .as_ref()
            .map(|a| a.step),
        Some(Step::Restart),
        "the restart is remembered"
    );
    let r = second.tick().await;
    // The recorded restart is judged (it did not hold), and no new one starts inside the
    // backoff that began with it.
    assert_eq!(
        kinds(&r),
        vec![(ProbeFailed, "worker"), (HealFailed, "worker")]
    );
    assert_eq!(r.events[1].attempt, Some(1));
    assert_eq!(pm.count_for(Operation::Restart, &worker), 1);

    // Ten seconds after the first attempt started, the second one may run: attempt 2, not 1.
    sleep(Duration::from_secs(8)).await;
    let r = second.tick().await;
    assert_eq!(
        kinds(&r),
        vec![(ProbeFailed, "worker"), (HealStarted, "worker")]
    );
    assert_eq!(r.events[1].attempt, Some(2));
    assert_eq!(pm.count_for(Operation::Restart, &worker), 2);
}

#[tokio::test(start_paused = true)]
async fn agent_killed_during_the_restart_call_does_not_repeat_it() {
    let dir = tempfile::tempdir().unwrap();
    let pm = manager(&["worker"]).await;
    let worker = label("worker");
    let inv = inventory(&format!(
        "{FAST}\n[[service]]\nlabel = \"worker\"\nmanager = \"null\"\n"
    ));
    let clock = Clock::starting_at(EPOCH_MS);
    let ports = Ports::new().with_manager("null", pm.clone());
    let mut first = HealLoop::new(
        &inv,
        ports.clone(),
        options(clock).with_state_dir(dir.path()),
    )
    .unwrap();
    pm.crash(&worker, ExitStatus::Signal(9));
    pm.inject(
        Injection::new(Operation::Restart, Fault::Hang)
            .for_target(&worker)
            .times(1),
    );
    // The agent is killed one second into the (hanging) restart call.
    assert!(tokio::time::timeout(Duration::from_secs(1), first.tick())
        .await
        .is_err());
    drop(first);
    // Meanwhile the supervisor brought it back.
    pm.set_state(&worker, RunState::Running);

    let mut second = HealLoop::new(&inv, ports, options(clock).with_state_dir(dir.path())).unwrap();
    let r = second.tick().await;
    assert_eq!(kinds(&r), vec![(HealSucceeded, "worker")]);
    assert_eq!(
        pm.count_for(Operation::Restart, &worker),
        1,
        "only the interrupted call"
    );
}

#[tokio::test(start_paused = true)]
async fn supervisor_already_restarting_is_observed_not_restarted() {
    let pm = manager(&["worker"]).await;
    let worker = label("worker");
    let inv = inventory(&format!(
        "{FAST}\n[[service]]\nlabel = \"worker\"\nmanager = \"null\"\n"
    ));
    let mut heal = HealLoop::new(
        &inv,
        Ports::new().with_manager("null", pm.clone()),
        options(Clock::starting_at(EPOCH_MS)),
    )
    .unwrap();
    pm.set_state(&worker, RunState::SupervisorRestarting);
    let r = heal.tick().await;
    assert_eq!(
        kinds(&r),
        vec![(ProbeFailed, "worker"), (HealSuppressed, "worker")]
    );
    assert_eq!(r.events[1].step, Some(Step::Observe));
    assert_eq!(r.events[1].cause.as_deref(), Some("supervisor-restarting"));
    assert_eq!(r.events[1].outcome, Some(StepOutcome::Observed));
    for _ in 0..3 {
        sleep(Duration::from_secs(10)).await;
        assert_eq!(kinds(&heal.tick().await), vec![(ProbeFailed, "worker")]);
    }
    assert_eq!(pm.count_for(Operation::Restart, &worker), 0);
    pm.set_state(&worker, RunState::Running);
    sleep(Duration::from_secs(10)).await;
    assert_eq!(kinds(&heal.tick().await), vec![(ProbeRecovered, "worker")]);
    assert_eq!(pm.count_for(Operation::Restart, &worker), 0);
}

#[tokio::test(start_paused = true)]
async fn a_supervisor_crash_loop_is_observed_only_until_observe_max() {
    // launchd respawns a crash loop forever and reports "spawn scheduled" in between; the loop
    // watches for `observe_max`, then heals it itself instead of crash-looping silently.
    let pm = manager(&["worker"]).await;
    let worker = label("worker");
    let inv = inventory(&format!(
        "{FAST}observe_max = \"30s\"\n\n[[service]]\nlabel = \"worker\"\nmanager = \"null\"\n"
    ));
    let mut heal = HealLoop::new(
        &inv,
        Ports::new().with_manager("null", pm.clone()),
        options(Clock::starting_at(EPOCH_MS)),
    )
    .unwrap();
    pm.set_state(&worker, RunState::SupervisorRestarting);
    let r = heal.tick().await;
    assert_eq!(
        kinds(&r),
        vec![(ProbeFailed, "worker"), (HealSuppressed, "worker")]
    );
    for _ in 0..2 {
        sleep(Duration::from_secs(10)).await;
        assert_eq!(kinds(&heal.tick().await), vec![(ProbeFailed, "worker")]);
        pm.set_state(&worker, RunState::SupervisorRestarting);
    }
    assert_eq!(
        pm.count_for(Operation::Restart, &worker),
        0,
        "observed for 20 s"
    );
    sleep(Duration::from_secs(10)).await;
    let r = heal.tick().await;
    assert_eq!(
        kinds(&r),
        vec![
            (ProbeFailed, "worker"),
            (ProbeFailed, "worker"),
            (HealStarted, "worker")
        ],
        "{:?}",
        r.events
    );
    assert_eq!(r.events[1].cause.as_deref(), Some("observe-limit"));
    assert_eq!(r.events[2].step, Some(Step::Restart));
    assert_eq!(pm.count_for(Operation::Restart, &worker), 1);
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_manager_is_not_a_reason_to_restart() {
    let pm = manager(&["worker"]).await;
    let worker = label("worker");
    let inv = inventory(&format!(
        "{FAST}\n[[service]]\nlabel = \"worker\"\nmanager = \"null\"\n"
    ));
    let mut heal = HealLoop::new(
        &inv,
        Ports::new().with_manager("null", pm.clone()),
        options(Clock::starting_at(EPOCH_MS)),
    )
    .unwrap();
    pm.inject(Injection::new(
        Operation::Inspect,
        Fault::fail(|| process_manager::ProcessError::Unavailable {
            adapter: "memory".into(),
            detail: "binary not found on PATH".into(),
        }),
    ));
    // Unknown, not down: nothing about the service; after `manager_unreachable_after` (10 s),
    // one event about the manager itself.
    let r = heal.tick().await;
    assert!(r.events.is_empty(), "{:?}", kinds(&r));
    assert_eq!(heal.status().services[0].health, Health::Unknown);
    sleep(Duration::from_secs(10)).await;
    let r = heal.tick().await;
    assert_eq!(kinds(&r), vec![(ManagerUnreachable, "null")]);
    assert_eq!(r.events[0].adapter_type, "memory");
    assert_eq!(pm.count_for(Operation::Restart, &worker), 0);
}

/// The frozen-manager rows: a manager that does not answer (systemd frozen, its bus gone) for
/// many rounds restarts nothing, counts nothing toward a breaker or toward "failures to act",
/// is reported once as itself, while a probe that does not go through it still reports a
/// service that hangs meanwhile.
#[tokio::test(start_paused = true)]
async fn a_frozen_manager_restarts_nothing_opens_no_breaker_and_a_hang_meanwhile_is_reported() {
    let pm = manager(&["a", "b", "web"]).await;
    let inv = inventory(
        "[loop]\ninterval = \"10s\"\nheal_timeout = \"5s\"\n\n[heal]\nfailures_to_down = 3\npasses_to_up = 1\ngrace = \"0s\"\njitter = 0.0\nbreaker_threshold = 2\n\n\
         [[service]]\nlabel = \"a\"\nmanager = \"null\"\n\n[[service]]\nlabel = \"b\"\nmanager = \"null\"\n\n\
         [[service]]\nlabel = \"web\"\nmanager = \"null\"\n",
    );
    let mut heal = HealLoop::new(
        &inv,
        Ports::new()
            .with_manager("null", pm.clone())
            .with_deadlines(&inv),
        options(Clock::starting_at(EPOCH_MS)),
    )
    .unwrap();
    // `web` has the process probe (through the manager) and an HTTP-like probe (not).
    let http = ScriptedProbe::passing();
    let process =
        central_core::probe::ProcessProbe::new(pm.clone(), label("web"), Duration::from_secs(5));
    heal.set_probes("web", vec![Arc::new(process), Arc::new(http.clone())]);
    assert!(heal.tick().await.events.is_empty());

    // Frozen for 75 s of 10 s rounds.
    pm.inject(Injection::new(Operation::Inspect, Fault::Hang));
    let mut seen = Vec::new();
    for round in 0..8 {
        if round == 3 {
            // `web` hangs while its manager is frozen.
            http.set_passing(false);
        }
        sleep(Duration::from_secs(10)).await;
        seen.extend(heal.tick().await.events);
    }
    let count = |kind: EventKind, service: &str| {
        seen.iter()
            .filter(|e| e.event == kind && e.service == service)
            .count()
    };
    assert_eq!(count(ManagerUnreachable, "null"), 1, "reported once");
    for healthy in ["a", "b"] {
        assert!(
            seen.iter().all(|e| e.service != healthy),
            "nothing about healthy {healthy}: {seen:?}"
        );
        assert_eq!(heal_status_health(&heal, healthy), Health::Unknown);
    }
    assert!(
        count(ProbeFailed, "web") >= 3,
        "the hang is reported: {seen:?}"
    );
    let held: Vec<_> = seen
        .iter()
        .filter(|e| e.event == HealSuppressed && e.service == "web")
        .collect();
    assert_eq!(held.len(), 1, "{seen:?}");
    assert_eq!(held[0].cause.as_deref(), Some("manager-unavailable"));
    for kind in [HealStarted, HealFailed, BreakerOpened, HealEscalated] {
        assert!(seen.iter().all(|e| e.event != kind), "{kind}: {seen:?}");
    }
    assert_eq!(pm.count(Operation::Restart), 0);
    assert_eq!(pm.count(Operation::Enable), 0);

    // It answers again: one `manager.recovered`, and `web` (still hanging) is healed now.
    pm.clear_faults();
    sleep(Duration::from_secs(10)).await;
    let r = heal.tick().await;
    assert_eq!(
        kinds(&r),
        vec![
            (ManagerRecovered, "null"),
            (ProbeFailed, "web"),
            (HealStarted, "web")
        ]
    );
    assert_eq!(pm.count(Operation::Restart), 1);

    // The outage rounds did not count toward "failures to act": a real crash of `a` needs
    // its three failed rounds (no pushed exit without `run`).
    pm.crash(&label("a"), ExitStatus::Signal(9));
    for _ in 0..2 {
        sleep(Duration::from_secs(10)).await;
        let r = heal.tick().await;
        assert!(r
            .events
            .iter()
            .all(|e| e.event != HealStarted || e.service != "a"));
    }
    sleep(Duration::from_secs(10)).await;
    let r = heal.tick().await;
    assert!(r
        .events
        .iter()
        .any(|e| e.event == HealStarted && e.service == "a"));
}

fn heal_status_health(heal: &HealLoop, service: &str) -> Health {
    heal.status()
        .services
        .iter()
        .find(|s| s.label == service)
        .map(|s| s.health)
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn bringing_the_substrate_up_gets_its_own_longer_deadline() {
    // `colima start` boots a VM; the 5 s heal deadline of a service restart would kill it
    // mid-boot every time. The substrate gets `substrate.start_timeout`.
    let rt = runtime();
    let inv = inventory(&format!(
        "{FAST}\n[substrate]\nname = \"colima\"\nstart_timeout = \"2m\"\n"
    ));
    let mut heal = HealLoop::new(
        &inv,
        Ports::new().with_runtime(rt.clone()).with_deadlines(&inv),
        options(Clock::starting_at(EPOCH_MS)),
    )
    .unwrap();
    rt.set_healthy(false);
    rt.inject(container_runtime::testkit::Injection::new(
        RuntimeOperation::EnsureRunning,
        container_runtime::testkit::Fault::Hang,
    ));
    let started = Instant::now();
    let r = heal.tick().await;
    assert_eq!(started.elapsed(), Duration::from_secs(120));
    let failed = r
        .events
        .iter()
        .find(|e| e.event == HealFailed)
        .expect("heal.failed");
    assert_eq!(failed.error_kind.map(FailureKind::as_str), Some("timeout"));
    assert!(
        failed.detail.contains("2m") || failed.detail.contains("120s"),
        "{}",
        failed.detail
    );
}

#[tokio::test(start_paused = true)]
async fn a_hanging_adapter_call_is_a_timeout_and_others_are_probed_on_time() {
    let pm = manager(&["stuck", "fine"]).await;
    let stuck = label("stuck");
    let fine = label("fine");
    let inv = inventory(&format!(
        "{FAST}\n[[service]]\nlabel = \"stuck\"\nmanager = \"null\"\n\n[[service]]\nlabel = \"fine\"\nmanager = \"null\"\n"
    ));
    let mut heal = HealLoop::new(
        &inv,
        Ports::new()
            .with_manager("null", pm.clone())
            .with_deadlines(&inv),
        options(Clock::starting_at(EPOCH_MS)),
    )
    .unwrap();
    pm.crash(&stuck, ExitStatus::Signal(9));
    pm.inject(Injection::new(Operation::Restart, Fault::Hang).for_target(&stuck));

    let started = Instant::now();
    let r = heal.tick().await;
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(5),
        "the heal deadline"
    );
    assert_eq!(
        kinds(&r),
        vec![
            (ProbeFailed, "stuck"),
            (HealStarted, "stuck"),
            (HealFailed, "stuck")
        ]
    );
    assert_eq!(
        r.events[2].error_kind.map(FailureKind::as_str),
        Some("timeout")
    );
    assert_eq!(pm.count_for(Operation::Inspect, &fine), 1);

    // The loop keeps its 10 s rhythm whatever `stuck` does: every tick probes `fine`.
    let sink = Arc::new(MemorySink::new());
    heal.add_sink(sink.clone());
    heal.run(sleep(Duration::from_secs(31))).await;
    assert_eq!(pm.count_for(Operation::Inspect, &fine), 5);
    let failed_heals: Vec<_> = sink
        .events()
        .into_iter()
        .filter(|e| e.event == HealFailed)
        .map(|e| (e.at_ms - EPOCH_MS) / 1000)
        .collect();
    // `run` ticks at 5, 15, 25 and 35 s. The second attempt may start 10 s after the first
    // (at 0 s) began: at 15 s, timing out at 20 s; the third may start 20 s after that, at 35 s,
    // and is still hanging when the loop is shut down at 36 s.
    assert_eq!(failed_heals, vec![20]);

    // A hanging probe is a probe timeout; the other service is still probed.
    pm.clear_faults();
    pm.inject(Injection::new(Operation::Inspect, Fault::Hang).for_target(&stuck));
    let before = pm.count_for(Operation::Inspect, &fine);
    let r = heal.tick().await;
    // The manager not answering about `stuck` makes it unknown, not down.
    assert!(r.events.is_empty(), "{:?}", kinds(&r));
    assert_eq!(heal.status().services[0].health, Health::Unknown);
    assert_eq!(pm.count_for(Operation::Inspect, &fine), before + 1);
}

#[tokio::test(start_paused = true)]
async fn events_are_available_as_json_lines_and_on_a_channel() {
    let pm = manager(&["worker"]).await;
    let inv = inventory(&format!(
        "{FAST}\n[[service]]\nlabel = \"worker\"\nmanager = \"null\"\n"
    ));
    let mut heal = HealLoop::new(
        &inv,
        Ports::new().with_manager("null", pm.clone()),
        options(Clock::starting_at(EPOCH_MS)),
    )
    .unwrap();
    let file = tempfile::NamedTempFile::new().unwrap();
    heal.add_sink(Arc::new(JsonLinesSink::new(file.reopen().unwrap())));
    let mut feed = heal.subscribe();
    pm.crash(&label("worker"), ExitStatus::Code(2));
    heal.tick().await;
    let text = std::fs::read_to_string(file.path()).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["event"], "probe.failed");
    assert_eq!(lines[1]["event"], "heal.started");
    assert_eq!(lines[1]["step"], "restart");
    assert_eq!(lines[1]["service"], "worker");
    assert_eq!(feed.recv().await.unwrap().event, ProbeFailed);
    assert_eq!(feed.recv().await.unwrap().event, HealStarted);
}

#[tokio::test(start_paused = true)]
async fn a_missing_definition_is_repaired_from_the_desired_config() {
    let pm = manager(&[]).await;
    let inv = inventory(&format!(
        "{FAST}\n[[service]]\nlabel = \"worker\"\nmanager = \"systemd\"\n\n[service.config]\nprogram = \"/opt/bin/worker\"\nenv = {{ PATH = \"/usr/bin:/bin\" }}\n"
    ));
    let mut heal = HealLoop::new(
        &inv,
        Ports::new().with_manager("systemd", pm.clone()),
        options(Clock::starting_at(EPOCH_MS)),
    )
    .unwrap();
    let r = heal.tick().await;
    assert_eq!(
        kinds(&r),
        vec![(ProbeFailed, "worker"), (HealStarted, "worker")]
    );
    assert_eq!(
        r.events[0].error_kind.map(FailureKind::as_str),
        Some("not-installed")
    );
    assert_eq!(r.events[1].step, Some(Step::Repair));
    assert_eq!(pm.count_for(Operation::Enable, &label("worker")), 1);
    assert_eq!(
        pm.config_of(&label("worker")).unwrap().env["PATH"],
        "/usr/bin:/bin"
    );
    sleep(Duration::from_secs(10)).await;
    assert_eq!(
        kinds(&heal.tick().await),
        vec![(ProbeRecovered, "worker"), (HealSucceeded, "worker")]
    );
}

#[tokio::test(start_paused = true)]
async fn a_status_round_probes_without_healing() {
    let pm = manager(&["worker", "idle"]).await;
    let inv = inventory(
        "[node]\nrole = \"relay\"\n\n[[service]]\nlabel = \"worker\"\nmanager = \"null\"\n\n[[service]]\nlabel = \"idle\"\nmanager = \"null\"\n",
    );
    let mut heal = HealLoop::new(
        &inv,
        Ports::new().with_manager("null", pm.clone()),
        options(Clock::starting_at(EPOCH_MS)),
    )
    .unwrap();
    let mut feed = heal.subscribe();
    pm.crash(&label("worker"), ExitStatus::Code(3));
    let status = heal.probe_round().await;
    assert_eq!(status.role, central_core::inventory::Role::Relay);
    assert_eq!(status.services[0].health, Health::Failing);
    assert_eq!(status.services[0].run_state, Some(RunState::Stopped));
    assert_eq!(status.services[1].health, Health::Healthy);
    assert!(feed.try_recv().is_err(), "status publishes nothing");
    let json = serde_json::to_value(&status).unwrap();
    assert_eq!(json["services"][0]["breaker"], "closed");
    assert_eq!(pm.count_for(Operation::Restart, &label("worker")), 0);
}

#[test]
fn missing_adapters_are_build_errors() {
    let inv = inventory("[[service]]\nlabel = \"w\"\nmanager = \"launchd\"\n");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let err =
            HealLoop::new(&inv, Ports::new(), options(Clock::starting_at(EPOCH_MS))).unwrap_err();
        assert!(err.to_string().contains("launchd"), "{err}");
    });
}

/// Real time: the notify command is a real process.
#[tokio::test]
async fn escalation_runs_the_notify_command_with_the_event() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("notified");
    let pm = manager(&["worker"]).await;
    let worker = label("worker");
    let inv = inventory(&format!(
        "[heal]\nfailures_to_down = 1\nbreaker_threshold = 1\n\n[escalation]\nnotify = [\"/bin/sh\", \"-c\", \"printf '%s' \\\"$JOELCLAW_SERVICE\\\" > {}\"]\ntimeout = \"10s\"\n\n[[service]]\nlabel = \"worker\"\nmanager = \"null\"\n",
        out.display()
    ));
    let mut heal = HealLoop::new(
        &inv,
        Ports::new().with_manager("null", pm.clone()),
        options(Clock::system()),
    )
    .unwrap();
    pm.crash(&worker, ExitStatus::Code(1));
    pm.inject(
        Injection::new(
            Operation::Restart,
            Fault::fail(|| process_manager::ProcessError::backend("memory", "exec format error")),
        )
        .for_target(&worker),
    );
    let r = heal.tick().await;
    assert_eq!(
        kinds(&r),
        vec![
            (ProbeFailed, "worker"),
            (HealStarted, "worker"),
            (HealFailed, "worker"),
            (BreakerOpened, "worker"),
            (HealEscalated, "worker"),
        ]
    );
    assert_eq!(
        r.events[2].error_kind.map(FailureKind::as_str),
        Some("backend")
    );
    assert_eq!(
        r.events[4].outcome,
        Some(StepOutcome::Escalated {
            notify_command: true
        })
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "worker");
}

#[tokio::test(start_paused = true)]
async fn a_probe_whose_program_is_missing_does_not_restart_the_service() {
    let pm = manager(&["worker"]).await;
    let inv = inventory(&format!(
        "{FAST}\n[[service]]\nlabel = \"worker\"\nmanager = \"null\"\n"
    ));
    let mut heal = HealLoop::new(
        &inv,
        Ports::new().with_manager("null", pm.clone()),
        options(Clock::starting_at(EPOCH_MS)),
    )
    .unwrap();
    let probe = ScriptedProbe::passing();
    heal.set_probes("worker", vec![Arc::new(probe.clone())]);
    probe.set_steady(central_core::ProbeResult::fail(
        central_core::ProbeFailure::BinaryNotFound,
        "redis-cli: not found",
    ));
    let r = heal.tick().await;
    assert_eq!(
        kinds(&r),
        vec![(ProbeFailed, "worker"), (HealSuppressed, "worker")]
    );
    assert_eq!(
        r.events[0].error_kind.map(FailureKind::as_str),
        Some("binary-not-found")
    );
    assert_eq!(r.events[1].cause.as_deref(), Some("probe-binary-not-found"));
    assert_eq!(pm.count_for(Operation::Restart, &label("worker")), 0);
}

#[tokio::test(start_paused = true)]
async fn restarts_respect_the_managers_respawn_throttle() {
    // A launchd-like manager: it will not respawn more often than every 10 s.
    let mut caps = process_manager::Capabilities::basic("launchd-like");
    caps.respawn_throttle = Some(Duration::from_secs(10));
    caps.pushes_events = true;
    let pm = Arc::new(instrumented(MemoryProcessManager::with_capabilities(caps)));
    let worker = label("worker");
    pm.enable(&ServiceConfig::new(worker.clone(), "/opt/bin/worker"))
        .await
        .unwrap();
    let fast_backoff = FAST.replace(
        "backoff_initial = \"10s\"",
        "backoff_initial = \"1s\"\nbackoff_max = \"1s\"",
    );
    let inv = inventory(&format!(
        "{fast_backoff}\n[[service]]\nlabel = \"worker\"\nmanager = \"launchd\"\n"
    ));
    let mut heal = HealLoop::new(
        &inv,
        Ports::new().with_manager("launchd", pm.clone()),
        options(Clock::starting_at(EPOCH_MS)),
    )
    .unwrap();
    let mut restarts_at = Vec::new();
    let start = Instant::now();
    for _ in 0..25 {
        pm.crash(&worker, ExitStatus::Code(1));
        let before = pm.count_for(Operation::Restart, &worker);
        let r = heal.tick().await;
        assert!(r.events.iter().all(|e| e.adapter_type == "launchd-like"));
        if pm.count_for(Operation::Restart, &worker) > before {
            restarts_at.push(start.elapsed().as_secs());
        }
        sleep(Duration::from_secs(1)).await;
    }
    // A 1 s backoff is stretched to the 10 s throttle.
    assert_eq!(restarts_at, vec![0, 10, 20]);
}

#[tokio::test(start_paused = true)]
async fn the_loop_runs_in_a_task_until_shutdown_and_saves_state() {
    let dir = tempfile::tempdir().unwrap();
    let pm = manager(&["worker"]).await;
    let inv = inventory(&format!(
        "{FAST}\n[[service]]\nlabel = \"worker\"\nmanager = \"null\"\n"
    ));
    let mut heal = HealLoop::new(
        &inv,
        Ports::new().with_manager("null", pm.clone()),
        options(Clock::starting_at(EPOCH_MS)).with_state_dir(dir.path()),
    )
    .unwrap();
    let mut feed = heal.subscribe();
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        heal.run(async move {
            let _ = stopped.wait_for(|s| *s).await;
        })
        .await;
        heal
    });
    sleep(Duration::from_secs(15)).await;
    pm.crash(&label("worker"), ExitStatus::Signal(9));
    assert_eq!(feed.recv().await.unwrap().event, ProbeFailed);
    assert_eq!(feed.recv().await.unwrap().event, HealStarted);
    assert_eq!(feed.recv().await.unwrap().event, ProbeRecovered);
    assert_eq!(feed.recv().await.unwrap().event, HealSucceeded);
    stop.send(true).unwrap();
    let heal = task.await.unwrap();
    assert_eq!(heal.status().services[0].health, Health::Healthy);
    let saved = std::fs::read_to_string(dir.path().join("heal-state.json")).unwrap();
    assert!(saved.contains("\"worker\""), "{saved}");
    assert_eq!(pm.count_for(Operation::Restart, &label("worker")), 1);
}

#[tokio::test(start_paused = true)]
async fn after_repeated_restarts_the_definition_is_repaired() {
    let pm = manager(&[]).await;
    let worker = label("worker");
    let inv = inventory(&format!(
        "{FAST}\nrepair_after = 2\nbreaker_threshold = 10\n\n[[service]]\nlabel = \"worker\"\nmanager = \"systemd\"\n\n[service.config]\nprogram = \"/opt/bin/worker\"\n"
    ));
    pm.enable(&ServiceConfig::new(worker.clone(), "/opt/bin/old-worker"))
        .await
        .unwrap();
    pm.clear_calls();
    let mut heal = HealLoop::new(
        &inv,
        Ports::new().with_manager("systemd", pm.clone()),
        options(Clock::starting_at(EPOCH_MS)),
    )
    .unwrap();
    let mut steps = Vec::new();
    for _ in 0..12 {
        pm.crash(&worker, ExitStatus::Code(1));
        let r = heal.tick().await;
        steps.extend(
            r.events
                .iter()
                .filter(|e| e.event == HealStarted)
                .map(|e| e.step.unwrap()),
        );
        sleep(Duration::from_secs(10)).await;
    }
    assert_eq!(steps[..3], [Step::Restart, Step::Restart, Step::Repair]);
    assert_eq!(pm.count_for(Operation::Enable, &worker), 1);
    assert_eq!(
        pm.config_of(&worker).unwrap().program,
        std::path::PathBuf::from("/opt/bin/worker"),
        "the desired definition replaced the drifted one"
    );
}

/// The worker on 60 s rounds, its loop running in a task (stopped by sending `true`), and its
/// event feed: any earlier round is the pushed events' doing.
fn worker_on_60s_rounds(
    pm: &Arc<TestManager>,
) -> (
    tokio::sync::broadcast::Receiver<central_core::HealEvent>,
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
) {
    let mut inv = inventory(&format!(
        "{FAST}\n[[service]]\nlabel = \"worker\"\nmanager = \"null\"\n"
    ));
    inv.settings.interval = Duration::from_secs(60);
    let heal = HealLoop::new(
        &inv,
        Ports::new().with_manager("null", pm.clone()),
        options(Clock::starting_at(EPOCH_MS)),
    )
    .unwrap();
    let feed = heal.subscribe();
    let (stop, task) = running(heal);
    (feed, stop, task)
}

/// Runs `heal` in a task until `true` is sent on the returned channel.
fn running(
    mut heal: HealLoop,
) -> (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
) {
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        heal.run(async move {
            let _ = stopped.wait_for(|s| *s).await;
        })
        .await;
    });
    (stop, task)
}

#[tokio::test(start_paused = true)]
async fn a_pushed_exit_event_wakes_the_loop_before_the_next_round() {
    let pm = manager(&["worker"]).await;
    let (mut feed, stop, task) = worker_on_60s_rounds(&pm);
    let start = Instant::now();
    sleep(Duration::from_secs(5)).await;
    // The in-memory manager pushes `Exited`; the loop does not wait for its 60 s round.
    pm.crash(&label("worker"), ExitStatus::Signal(9));
    let failed = feed.recv().await.unwrap();
    assert_eq!(failed.event, ProbeFailed);
    assert_eq!(feed.recv().await.unwrap().event, HealStarted);
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    assert_eq!(pm.count_for(Operation::Restart, &label("worker")), 1);
    stop.send(true).unwrap();
    task.await.unwrap();
}

/// A start limit: the manager restarted it itself (an early round used its gap), then gave
/// up (`failed`). The `failed` is probed at once, not a gap after the early round before it.
#[tokio::test(start_paused = true)]
async fn a_pushed_failed_is_acted_on_at_once_after_a_burst_of_pushed_events() {
    let pm = manager(&["worker"]).await;
    let worker = label("worker");
    let (mut feed, stop, task) = worker_on_60s_rounds(&pm);
    let start = Instant::now();
    sleep(Duration::from_secs(5)).await;
    pm.set_state(&worker, RunState::SupervisorRestarting);
    assert_eq!(feed.recv().await.unwrap().event, ProbeFailed);
    assert_eq!(feed.recv().await.unwrap().event, HealSuppressed);
    sleep(Duration::from_millis(100)).await;
    pm.set_state(&worker, RunState::Failed);
    assert_eq!(feed.recv().await.unwrap().event, ProbeFailed);
    assert_eq!(feed.recv().await.unwrap().event, HealStarted);
    assert_eq!(start.elapsed(), Duration::from_millis(5100));
    assert_eq!(pm.count_for(Operation::Restart, &worker), 1);
    stop.send(true).unwrap();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_corrupt_state_file_is_moved_aside_and_the_loop_heals_anyway() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("heal-state.json"), b"\0\0 half-written").unwrap();
    let pm = manager(&["worker"]).await;
    let inv = inventory(&format!(
        "{FAST}\n[[service]]\nlabel = \"worker\"\nmanager = \"null\"\n"
    ));
    let mut heal = HealLoop::new(
        &inv,
        Ports::new().with_manager("null", pm.clone()),
        options(Clock::starting_at(EPOCH_MS)).with_state_dir(dir.path()),
    )
    .unwrap();
    let warnings = heal.status().warnings;
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].contains("moved it to"), "{warnings:?}");
    pm.crash(&label("worker"), ExitStatus::Signal(9));
    assert_eq!(
        kinds(&heal.tick().await),
        vec![(ProbeFailed, "worker"), (HealStarted, "worker")]
    );
    // A fresh, valid file replaced it.
    let saved = std::fs::read_to_string(dir.path().join("heal-state.json")).unwrap();
    assert!(serde_json::from_str::<serde_json::Value>(&saved).is_ok());
}

#[tokio::test(start_paused = true)]
async fn the_deadline_wrapper_never_cuts_a_probe_shorter_than_its_own_timeout() {
    // heal_timeout is 5 s; this probe may take 20 s. The ports' outer bound on a read is the
    // longest probe deadline, so the probe's own timeout is what ends it.
    let pm = manager(&["slow"]).await;
    let slow = label("slow");
    let inv = inventory(&format!(
        "{FAST}\n[[service]]\nlabel = \"slow\"\nmanager = \"null\"\n\n[[service.probe]]\nkind = \"process\"\ntimeout = \"20s\"\n"
    ));
    let mut heal = HealLoop::new(
        &inv,
        Ports::new()
            .with_manager("null", pm.clone())
            .with_deadlines(&inv),
        options(Clock::starting_at(EPOCH_MS)),
    )
    .unwrap();
    pm.inject(Injection::new(Operation::Inspect, Fault::Hang).for_target(&slow));
    let started = Instant::now();
    let r = heal.probe_round().await;
    assert_eq!(started.elapsed(), Duration::from_secs(20));
    let probe = r.services[0].last_probe.clone().expect("probed");
    assert_eq!(
        probe.failure.map(|f| f.as_str()),
        Some("manager-unavailable")
    );
}

/// A monitor-only service that goes down is reported and a person is called (once per
/// episode), and no start, restart or repair call reaches its manager (its call log has
/// only the probe's inspects).
#[tokio::test(start_paused = true)]
async fn a_monitor_only_service_is_escalated_and_never_acted_on() {
    let pm = manager(&["remote"]).await;
    let inv = inventory(&format!(
        "{FAST}\n[[service]]\nlabel = \"remote\"\nmanager = \"null\"\nmonitor_only = true\n"
    ));
    let mut heal = HealLoop::new(
        &inv,
        Ports::new().with_manager("null", pm.clone()),
        options(Clock::starting_at(EPOCH_MS)),
    )
    .unwrap();
    assert!(heal.tick().await.events.is_empty());
    pm.crash(&label("remote"), ExitStatus::Signal(9));
    let r = heal.tick().await;
    assert_eq!(
        kinds(&r),
        vec![(ProbeFailed, "remote"), (HealEscalated, "remote")]
    );
    assert_eq!(r.events[1].cause.as_deref(), Some("monitor-only"));
    // Down for a while: said once, nothing done.
    for _ in 0..5 {
        sleep(Duration::from_secs(10)).await;
        let r = heal.tick().await;
        assert!(
            !kinds(&r)
                .iter()
                .any(|(k, _)| *k == HealEscalated || *k == HealStarted),
            "{r:?}"
        );
    }
    for op in [
        Operation::Restart,
        Operation::Enable,
        Operation::Stop,
        Operation::Disable,
    ] {
        assert_eq!(pm.count_for(op, &label("remote")), 0, "{op:?}");
    }
    assert_eq!(heal.status().services[0].health, Health::Unhealthy);
    assert!(heal.status().services[0].monitor_only);
    // A person's verb is refused too.
    let refused = heal.request("remote", central_core::Verb::Restart).await;
    assert!(
        matches!(refused, Err(central_core::VerbError::NotSupported(_))),
        "{refused:?}"
    );
    assert_eq!(pm.count_for(Operation::Restart, &label("remote")), 0);
}
