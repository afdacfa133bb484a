//! `HealLoop::run` under faults, on paused tokio time over the in-memory adapters: each service
//! on its own schedule (a slow call delays only its own service), shutdown at once whatever is
//! in flight, a pushed exit acted on at once, a start grace, an interrupted attempt watched.

use std::sync::Arc;
use std::time::Duration;

use central_core::{
    Clock, EventKind, HealEvent, HealLoop, Inventory, LoopOptions, MemorySink, NodeTags, Ports,
    ScriptedProbe,
};
use process_manager::testkit::{instrumented, Fault, Faulty, Injection, Recording};
use process_manager::{
    ExitStatus, MemoryProcessManager, Operation, ProcessManagerPort, RunState, ServiceConfig,
    ServiceLabel,
};
use tokio::time::{sleep, Instant};

use EventKind::*;

const EPOCH_MS: u64 = 1_800_000_000_000;

type TestManager = Recording<Faulty<MemoryProcessManager>>;

fn label(s: &str) -> ServiceLabel {
    ServiceLabel::new(s).unwrap()
}

fn inventory(text: &str) -> Inventory {
    Inventory::parse("supervised.toml", text).unwrap_or_else(|e| panic!("{e}"))
}

fn options() -> LoopOptions {
    LoopOptions::new(NodeTags::new("node", "linux"))
        .with_clock(Clock::starting_at(EPOCH_MS))
        .with_seed(7)
}

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

fn services(labels: &[&str]) -> String {
    labels
        .iter()
        .map(|l| format!("\n[[service]]\nlabel = \"{l}\"\nmanager = \"null\"\n"))
        .collect()
}

/// Runs `heal` in a task until the returned sender is told to stop.
fn spawn(
    mut heal: HealLoop,
) -> (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<HealLoop>,
) {
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        heal.run(async move {
            let _ = stopped.wait_for(|s| *s).await;
        })
        .await;
        heal
    });
    (stop, task)
}

fn at_ms(events: &[HealEvent], kind: EventKind, service: &str) -> Vec<u64> {
    events
        .iter()
        .filter(|e| e.event == kind && e.service == service)
        .map(|e| e.at_ms - EPOCH_MS)
        .collect()
}

/// Row "one heal takes 12 s": the other services keep their 1 s rhythm, and a crash of
/// another service meanwhile is healed at once.
#[tokio::test(start_paused = true)]
async fn a_slow_heal_delays_only_its_own_service() {
    let pm = manager(&["slow", "fine", "other"]).await;
    let inv = inventory(&format!(
        "[loop]\ninterval = \"1s\"\nheal_timeout = \"12s\"\n\n[heal]\nfailures_to_down = 1\npasses_to_up = 1\ngrace = \"0s\"\njitter = 0.0\n{}",
        services(&["slow", "fine", "other"])
    ));
    let mut heal = HealLoop::new(
        &inv,
        Ports::new()
            .with_manager("null", pm.clone())
            .with_deadlines(&inv),
        options(),
    )
    .unwrap();
    let sink = Arc::new(MemorySink::new());
    heal.add_sink(sink.clone());
    pm.inject(Injection::new(Operation::Restart, Fault::Hang).for_target(&label("slow")));
    pm.crash(&label("slow"), ExitStatus::Signal(9));
    let (stop, task) = spawn(heal);
    sleep(Duration::from_millis(3500)).await;
    pm.crash(&label("other"), ExitStatus::Code(1));
    sleep(Duration::from_millis(6000)).await;
    // Rounds of `fine` at 0..=9 s while `slow`'s restart hangs from 0 s to 12 s.
    assert_eq!(pm.count_for(Operation::Inspect, &label("fine")), 10);
    let events = sink.events();
    assert_eq!(at_ms(&events, HealStarted, "slow"), vec![0]);
    assert_eq!(at_ms(&events, HealFailed, "slow"), Vec::<u64>::new());
    // The pushed exit of `other` is acted on when it happens, not after `slow`'s call.
    assert_eq!(at_ms(&events, HealStarted, "other"), vec![3500]);
    assert_eq!(pm.count_for(Operation::Restart, &label("other")), 1);
    stop.send(true).unwrap();
    task.await.unwrap();
}

/// Shutdown is honoured at once whatever is in flight: thousands of hanging probes and a
/// hanging heal.
#[tokio::test(start_paused = true)]
async fn shutdown_is_honoured_at_once_with_probes_and_a_heal_in_flight() {
    let labels: Vec<String> = (0..2000).map(|i| format!("svc{i}")).collect();
    let refs: Vec<&str> = labels.iter().map(String::as_str).collect();
    let pm = manager(&refs).await;
    let inv = inventory(&format!(
        "[loop]\ninterval = \"1s\"\nheal_timeout = \"60s\"\nprobe_timeout = \"30s\"\n\n[heal]\nfailures_to_down = 1\ngrace = \"0s\"\n{}",
        services(&refs)
    ));
    let mut heal = HealLoop::new(
        &inv,
        Ports::new()
            .with_manager("null", pm.clone())
            .with_deadlines(&inv),
        options(),
    )
    .unwrap();
    pm.crash(&label("svc0"), ExitStatus::Signal(9));
    pm.inject(Injection::new(Operation::Restart, Fault::Hang));
    let slow = ScriptedProbe::passing();
    slow.set_hang(true);
    for l in &refs[1..] {
        heal.set_probes(l, vec![Arc::new(slow.clone())]);
    }
    let started = Instant::now();
    heal.run(sleep(Duration::from_millis(2500))).await;
    assert_eq!(started.elapsed(), Duration::from_millis(2500));
    assert_eq!(pm.count(Operation::Restart), 1, "the heal was in flight");
}

/// Row "an exit is a fact": a pushed exit restarts at once at the default hysteresis (three
/// failed rounds for health probes), without waiting for the next round.
#[tokio::test(start_paused = true)]
async fn a_pushed_exit_is_restarted_at_once_without_hysteresis() {
    let pm = manager(&["worker"]).await;
    let inv = inventory(&format!(
        "[loop]\ninterval = \"1s\"\n\n[heal]\nfailures_to_down = 3\njitter = 0.0\nbackoff_initial = \"10s\"\n{}",
        services(&["worker"])
    ));
    let mut heal = HealLoop::new(
        &inv,
        Ports::new().with_manager("null", pm.clone()),
        options(),
    )
    .unwrap();
    let sink = Arc::new(MemorySink::new());
    heal.add_sink(sink.clone());
    let (stop, task) = spawn(heal);
    sleep(Duration::from_millis(200)).await;
    pm.crash(&label("worker"), ExitStatus::Signal(9));
    sleep(Duration::from_millis(10)).await;
    let events = sink.events();
    // At once: not at the next 1 s round, nor after three of them.
    assert_eq!(at_ms(&events, HealStarted, "worker"), vec![200]);
    assert_eq!(pm.count_for(Operation::Restart, &label("worker")), 1);

    // Repeated exits back off (10 s, 20 s... from each attempt's start) and never give up.
    sleep(Duration::from_millis(790)).await;
    pm.crash(&label("worker"), ExitStatus::Signal(9));
    sleep(Duration::from_secs(12)).await;
    let events = sink.events();
    assert_eq!(at_ms(&events, HealStarted, "worker"), vec![200, 10_200]);
    stop.send(true).unwrap();
    task.await.unwrap();
}

/// Row "the demo at start": a service the agent just started has not bound its port yet; its
/// health probe failing in the first moments is not reported.
#[tokio::test(start_paused = true)]
async fn a_just_started_service_gets_a_start_grace() {
    let pm = manager(&["web"]).await;
    let inv = inventory(&format!(
        "[loop]\ninterval = \"100ms\"\n\n[heal]\nfailures_to_down = 1\nstart_grace = \"2s\"\n{}",
        services(&["web"])
    ));
    let mut heal = HealLoop::new(
        &inv,
        Ports::new().with_manager("null", pm.clone()),
        options(),
    )
    .unwrap();
    let http = ScriptedProbe::passing();
    http.set_passing(false);
    heal.set_probes("web", vec![Arc::new(http.clone())]);
    let sink = Arc::new(MemorySink::new());
    heal.add_sink(sink.clone());
    let (stop, task) = spawn(heal);
    sleep(Duration::from_millis(500)).await;
    http.set_passing(true);
    sleep(Duration::from_secs(3)).await;
    assert!(sink.events().is_empty(), "{:?}", sink.events());
    // After the grace a failure counts as usual.
    http.set_passing(false);
    sleep(Duration::from_millis(150)).await;
    let events = sink.events();
    assert_eq!(events[0].event, ProbeFailed, "{events:?}");
    stop.send(true).unwrap();
    task.await.unwrap();
}

/// Row "agent killed mid-restart": the interrupted attempt, found starting after the agent
/// restarts, is watched, not failed; once it runs the attempt succeeds.
#[tokio::test(start_paused = true)]
async fn an_interrupted_attempt_found_starting_is_watched_then_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let pm = manager(&["worker"]).await;
    let worker = label("worker");
    let inv = inventory(&format!(
        "[loop]\ninterval = \"10s\"\n\n[heal]\nfailures_to_down = 1\npasses_to_up = 1\ngrace = \"0s\"\nbreaker_threshold = 1\n{}",
        services(&["worker"])
    ));
    let ports = Ports::new().with_manager("null", pm.clone());
    let mut first =
        HealLoop::new(&inv, ports.clone(), options().with_state_dir(dir.path())).unwrap();
    pm.crash(&worker, ExitStatus::Signal(9));
    pm.inject(
        Injection::new(Operation::Restart, Fault::Hang)
            .for_target(&worker)
            .times(1),
    );
    assert!(tokio::time::timeout(Duration::from_secs(1), first.tick())
        .await
        .is_err());
    drop(first);
    // The unit is `activating`.
    pm.set_state(&worker, RunState::Starting);
    let mut second = HealLoop::new(&inv, ports, options().with_state_dir(dir.path())).unwrap();
    let r = second.tick().await;
    let kinds: Vec<_> = r.events.iter().map(|e| e.event).collect();
    assert_eq!(kinds, vec![ProbeFailed, HealSuppressed], "{:?}", r.events);
    assert_eq!(r.events[1].cause.as_deref(), Some("starting"));
    pm.set_state(&worker, RunState::Running);
    sleep(Duration::from_secs(10)).await;
    let r = second.tick().await;
    let kinds: Vec<_> = r.events.iter().map(|e| e.event).collect();
    assert_eq!(kinds, vec![ProbeRecovered, HealSucceeded], "{:?}", r.events);
    assert_eq!(
        second.status().services[0].breaker,
        central_core::BreakerState::Closed
    );
    assert_eq!(pm.count_for(Operation::Restart, &worker), 1);
}

/// What `run` is given to compare: here, the in-memory manager's installed config.
#[derive(Debug)]
struct InstalledIs(Arc<TestManager>);

impl central_core::drift::DefinitionCheck for InstalledIs {
    fn drifted(&self, desired: &ServiceConfig) -> Option<String> {
        let installed = self.0.config_of(&desired.label)?;
        (installed != *desired).then(|| format!("user {:?}", installed.user))
    }
}

/// Row "a unit's `User=` changed to root": noticed by `run` within `drift_every` rounds and
/// repaired with its own event, while the service answers the whole time.
#[tokio::test(start_paused = true)]
async fn a_drifted_definition_is_repaired_while_the_service_answers() {
    let pm = manager(&[]).await;
    let inv = inventory(
        "[loop]\ninterval = \"1s\"\ndrift_every = 3\n\n[heal]\npasses_to_up = 1\n\n\
         [[service]]\nlabel = \"web\"\nmanager = \"systemd\"\n\n[service.config]\nprogram = \"/opt/bin/web\"\n",
    );
    let desired = inv.desired_configs().next().unwrap().1.clone();
    pm.enable(&desired).await.unwrap();
    let mut heal = HealLoop::new(
        &inv,
        Ports::new().with_manager("systemd", pm.clone()),
        options(),
    )
    .unwrap();
    heal.set_definition_check("systemd", Arc::new(InstalledIs(pm.clone())));
    let sink = Arc::new(MemorySink::new());
    heal.add_sink(sink.clone());
    let (stop, task) = spawn(heal);
    sleep(Duration::from_millis(3500)).await;
    assert!(sink.events().is_empty(), "as desired: {:?}", sink.events());

    // Someone flips it to root; it keeps running and answering.
    let mut rooted = desired.clone().with_user("root", None);
    rooted.allow_root = true;
    pm.enable(&rooted).await.unwrap();
    pm.clear_calls();
    sleep(Duration::from_secs(4)).await;
    let events = sink.events();
    let kinds: Vec<_> = events.iter().map(|e| e.event).collect();
    assert_eq!(
        kinds,
        vec![DefinitionDrifted, HealStarted, HealSucceeded],
        "{events:?}"
    );
    assert!(events[0].detail.contains("root"), "{}", events[0].detail);
    assert_eq!(events[1].step, Some(central_core::Step::Repair));
    assert_eq!(pm.count(Operation::Enable), 1);
    assert_eq!(pm.config_of(&label("web")), Some(desired));
    stop.send(true).unwrap();
    task.await.unwrap();
}

/// Row "200k services": with every one of 20,000 services down at once (a probe failure and
/// a heal each), a shutdown is still seen promptly: the loop does bounded work between looks
/// at it. Real time on one thread; the bound is a limit on a wait, not a measurement.
#[tokio::test(flavor = "current_thread")]
async fn a_shutdown_is_seen_promptly_while_thousands_of_services_are_down() {
    let labels: Vec<String> = (0..20_000).map(|i| format!("svc{i}")).collect();
    let refs: Vec<&str> = labels.iter().map(String::as_str).collect();
    let pm = manager(&refs).await;
    let inv = inventory(&format!(
        "[loop]\ninterval = \"1s\"\n\n[heal]\nfailures_to_down = 1\ngrace = \"0s\"\n{}",
        services(&refs)
    ));
    let mut heal = HealLoop::new(
        &inv,
        Ports::new().with_manager("null", pm.clone()),
        options(),
    )
    .unwrap();
    for l in &refs {
        pm.crash(&label(l), ExitStatus::Signal(9));
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(async move {
        heal.run(async move {
            let _ = stopped.await;
        })
        .await;
    });
    sleep(Duration::from_millis(300)).await;
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("the loop stopped within the bound")
        .unwrap();
}

/// An exit is a fact for a service with only an HTTP probe too: the refused connection right
/// after the pushed exit needs no three rounds, start grace or not.
#[tokio::test(start_paused = true)]
async fn a_pushed_exit_of_a_service_with_only_an_http_probe_is_restarted_at_once() {
    let pm = manager(&["web"]).await;
    let inv = inventory(&format!(
        "[loop]\ninterval = \"1s\"\n\n[heal]\nfailures_to_down = 3\nstart_grace = \"5s\"\n{}",
        services(&["web"])
    ));
    let mut heal = HealLoop::new(
        &inv,
        Ports::new().with_manager("null", pm.clone()),
        options(),
    )
    .unwrap();
    let http = ScriptedProbe::passing();
    heal.set_probes("web", vec![Arc::new(http.clone())]);
    let sink = Arc::new(MemorySink::new());
    heal.add_sink(sink.clone());
    let (stop, task) = spawn(heal);
    sleep(Duration::from_millis(1200)).await;
    http.set_passing(false);
    pm.crash(&label("web"), ExitStatus::Signal(9));
    sleep(Duration::from_millis(10)).await;
    assert_eq!(at_ms(&sink.events(), HealStarted, "web"), vec![1200]);
    stop.send(true).unwrap();
    task.await.unwrap();
}

/// A person's `stop` goes through the loop: the service stays stopped (no heal, across a loop
/// restart too: the desired state is on disk), with one `service.stopped` event; `start`
/// makes it healed again.
#[tokio::test(start_paused = true)]
async fn a_service_stopped_by_request_is_not_healed_back_until_started() {
    use central_core::{Desired, Health, Through, Verb, VerbError};
    let pm = manager(&["web"]).await;
    let inv = inventory(&format!(
        "[loop]\ninterval = \"1s\"\n\n[heal]\nfailures_to_down = 1\ngrace = \"0s\"\njitter = 0.0\n{}",
        services(&["web"])
    ));
    let dir = tempfile::tempdir().unwrap();
    let ports = Ports::new().with_manager("null", pm.clone());
    let build =
        || HealLoop::new(&inv, ports.clone(), options().with_state_dir(dir.path())).unwrap();
    let mut heal = build();
    let sink = Arc::new(MemorySink::new());
    heal.add_sink(sink.clone());
    let control = heal.control();
    let (stop, task) = spawn(heal);
    sleep(Duration::from_millis(1500)).await;

    let patience = Duration::from_secs(30);
    let stopped = control.send("web", Verb::Stop, patience).await.unwrap();
    assert_eq!(stopped.did, "stopped");
    assert_eq!(stopped.desired, Desired::Stopped);
    assert_eq!(stopped.through, Through::Agent);
    sleep(Duration::from_secs(10)).await;
    assert_eq!(pm.count_for(Operation::Restart, &label("web")), 0);
    assert_eq!(
        pm.inspect(&label("web")).await.unwrap().state,
        RunState::Stopped
    );
    let events = sink.events();
    assert_eq!(at_ms(&events, ServiceStopped, "web").len(), 1);
    assert!(at_ms(&events, HealStarted, "web").is_empty());
    assert!(at_ms(&events, ProbeFailed, "web").is_empty());
    let unknown = control.send("nope", Verb::Stop, patience).await;
    assert_eq!(unknown, Err(VerbError::NotFound("nope".into())));
    stop.send(true).unwrap();
    task.await.unwrap();

    // A new agent on the same state folder keeps it stopped.
    let mut heal = build();
    let control = heal.control();
    let status = heal.watch_status();
    let (stop, task) = spawn(heal);
    sleep(Duration::from_secs(5)).await;
    assert_eq!(pm.count_for(Operation::Restart, &label("web")), 0);
    assert_eq!(status.borrow().services[0].health, Health::Stopped);

    let started = control.send("web", Verb::Start, patience).await.unwrap();
    assert_eq!(started.did, "started");
    assert_eq!(started.desired, Desired::Running);
    sleep(Duration::from_secs(3)).await;
    assert_eq!(status.borrow().services[0].health, Health::Healthy);
    // Healed again from here.
    pm.crash(&label("web"), ExitStatus::Signal(9));
    sleep(Duration::from_secs(3)).await;
    assert_eq!(pm.count_for(Operation::Restart, &label("web")), 2);
    stop.send(true).unwrap();
    task.await.unwrap();
}

/// A verb is serialized with the service's heal: a `stop` asked while a restart hangs waits
/// for that call to end, and then wins (the service stays stopped).
#[tokio::test(start_paused = true)]
async fn a_verb_waits_for_the_heal_in_flight() {
    use central_core::Verb;
    let pm = manager(&["slow"]).await;
    let inv = inventory(&format!(
        "[loop]\ninterval = \"1s\"\nheal_timeout = \"12s\"\n\n[heal]\nfailures_to_down = 1\ngrace = \"0s\"\njitter = 0.0\n{}",
        services(&["slow"])
    ));
    let mut heal = HealLoop::new(
        &inv,
        Ports::new()
            .with_manager("null", pm.clone())
            .with_deadlines(&inv),
        options(),
    )
    .unwrap();
    let control = heal.control();
    pm.inject(
        Injection::new(Operation::Restart, Fault::Hang)
            .for_target(&label("slow"))
            .times(1),
    );
    pm.crash(&label("slow"), ExitStatus::Signal(9));
    let (stop, task) = spawn(heal);
    sleep(Duration::from_millis(1000)).await;
    let asked = Instant::now();
    let outcome = control
        .send("slow", Verb::Stop, Duration::from_secs(60))
        .await
        .unwrap();
    // The hanging restart started at 0 s and ends at its 12 s deadline.
    assert_eq!(asked.elapsed(), Duration::from_secs(11));
    assert_eq!(outcome.did, "already-stopped");
    sleep(Duration::from_secs(10)).await;
    assert_eq!(pm.count_for(Operation::Restart, &label("slow")), 1);
    stop.send(true).unwrap();
    task.await.unwrap();
}
