//! `SystemdProcessManager` over the D-Bus of a real systemd 252 (the harness's nspawn container,
//! its system bus reached from the host through `/proc/<pid>/root`): state read over the bus
//! equals `systemctl`'s, pushed events for a killed unit and a start-limit `failed`, the watch
//! surviving a lost connection, and what an unreachable or silent bus means.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use adapters_linux::{BusAddress, ServiceAccount, SystemdProcessManager};
use process_manager::testkit::Fixture;
use process_manager::{
    ExitStatus, LabelPattern, Operation, ProcessError, ProcessManagerPort, RestartPolicy, RunState,
    ServiceConfig, ServiceEvent, ServiceLabel, StartLimit,
};
use tokio::sync::broadcast;

/// How long a state change systemd makes on its own may take before a test gives up.
const SETTLE: Duration = Duration::from_secs(20);
/// How long a start-limit failure may be held off by daemon-reloads (each resets the count).
const RELOAD_PATIENCE: Duration = Duration::from_secs(90);

struct Container {
    pid: String,
}

impl Container {
    fn get() -> Option<Self> {
        let pid = support::daemon_env("JOELCLAW_TEST_SYSTEMD_PID", "real systemd")?;
        Some(Container { pid })
    }

    fn bus_socket(&self) -> PathBuf {
        PathBuf::from(format!(
            "/proc/{}/root/run/dbus/system_bus_socket",
            self.pid
        ))
    }

    /// The container's manager: jobs through nsenter, state and events over `bus`.
    fn manager(&self, bus: BusAddress) -> SystemdProcessManager {
        SystemdProcessManager::system()
            .with_command_prefix(["nsenter", "-t", &self.pid, "-a"])
            .with_unit_dir(format!("/proc/{}/root/etc/systemd/system", self.pid))
            .with_service_account(ServiceAccount::new("joelclaw"))
            .with_bus(bus)
    }

    fn bus_manager(&self) -> SystemdProcessManager {
        self.manager(address(&self.bus_socket()))
    }

    fn run(&self, argv: &[&str]) -> std::process::Output {
        Command::new("nsenter")
            .args(["-t", &self.pid, "-a"])
            .args(argv)
            .output()
            .expect("nsenter")
    }
}

fn address(socket: &Path) -> BusAddress {
    BusAddress::Address(format!("unix:path={}", socket.display()))
}

fn label(s: &str) -> ServiceLabel {
    ServiceLabel::new(s).unwrap()
}

fn looping(l: &ServiceLabel) -> ServiceConfig {
    let mut cfg = ServiceConfig::new(l.clone(), "/bin/sh").with_args([
        "-c",
        "while :; do sleep 1; done",
        l.as_str(),
    ]);
    cfg.restart = RestartPolicy::Always;
    cfg.restart_delay = Some(Duration::from_millis(100));
    cfg
}

async fn cleanup(pm: &SystemdProcessManager, c: &Container, l: &ServiceLabel) {
    let _ = pm.disable(l).await;
    let _ = std::fs::remove_file(pm.unit_path(l));
    c.run(&["systemctl", "daemon-reload"]);
    c.run(&["systemctl", "reset-failed", &format!("{l}.service")]);
}

/// The first event about `l` that `want` accepts, within [`SETTLE`].
async fn event_where(
    events: &mut broadcast::Receiver<ServiceEvent>,
    l: &ServiceLabel,
    what: &str,
    want: impl Fn(&ServiceEvent) -> bool,
) -> ServiceEvent {
    event_within(events, l, what, want, SETTLE).await
}

/// The first event about `l` that `want` accepts, within `bound`.
async fn event_within(
    events: &mut broadcast::Receiver<ServiceEvent>,
    l: &ServiceLabel,
    what: &str,
    want: impl Fn(&ServiceEvent) -> bool,
    bound: Duration,
) -> ServiceEvent {
    let wait = async {
        loop {
            match events.recv().await {
                Ok(e) if e.label() == l && want(&e) => return e,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => panic!("event channel closed"),
            }
        }
    };
    tokio::time::timeout(bound, wait)
        .await
        .unwrap_or_else(|_| panic!("no {what} event for {l} within {bound:?}"))
}

/// Removes unit files named `<prefix>*` that an earlier run left.
fn remove_leftovers(c: &Container, prefix: &str) {
    let dir = PathBuf::from(format!("/proc/{}/root/etc/systemd/system", c.pid));
    let mut removed = false;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.starts_with(prefix) {
            c.run(&["systemctl", "disable", "--now", &name]);
            std::fs::remove_file(dir.join(&name)).unwrap();
            removed = true;
        }
    }
    if removed {
        c.run(&["systemctl", "daemon-reload"]);
    }
}

/// The port's contract over the bus, the event scenario included (a kill behind systemd's
/// back must arrive as an event).
fn conformance_setup(scenario: &str) -> Option<(Arc<dyn ProcessManagerPort>, Fixture)> {
    let c = Container::get()?;
    let prefix = format!("conf-sdbus-{scenario}-");
    remove_leftovers(&c, &prefix);
    let mut fx = Fixture::new(&prefix, "/usr/bin/sleep", &["100000"]);
    fx.settle = SETTLE;
    let pid = c.pid.clone();
    fx.kill = Some(Box::new(move |_label, main_pid| {
        if let Some(p) = main_pid {
            let c = Container { pid: pid.clone() };
            c.run(&["kill", "-9", &p.to_string()]);
        }
    }));
    Some((Arc::new(c.bus_manager()), fx))
}

process_manager::conformance_tests!(conformance_over_the_bus, |scenario| async move {
    conformance_setup(scenario)
});

/// Kills `l`'s main process until an exit of it is told (the watch may not be subscribed yet
/// when the first kill lands, or be connecting again; the loop's polling covers such a miss).
async fn kill_until_told(
    c: &Container,
    pm: &SystemdProcessManager,
    l: &ServiceLabel,
    events: &mut broadcast::Receiver<ServiceEvent>,
) -> ServiceEvent {
    let told = async {
        loop {
            let running = sysutil::poll::until("running before a kill", SETTLE, || async {
                pm.inspect(l)
                    .await
                    .ok()
                    .filter(|s| s.is_running() && s.pid.is_some_and(|p| p > 0))
            })
            .await;
            c.run(&["kill", "-9", &running.pid.unwrap().to_string()]);
            let wait = event_where(events, l, "exit", |e| {
                matches!(e, ServiceEvent::Exited { .. })
            });
            if let Ok(e) = tokio::time::timeout(Duration::from_secs(2), wait).await {
                return e;
            }
        }
    };
    tokio::time::timeout(SETTLE, told)
        .await
        .unwrap_or_else(|_| panic!("no exit of {l} told within {SETTLE:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_over_the_bus_is_what_systemctl_says() {
    let Some(c) = Container::get() else { return };
    let pm = c.bus_manager();
    let by_systemctl = c.manager(BusAddress::Off);
    assert!(pm.capabilities().pushes_events);
    assert!(!by_systemctl.capabilities().pushes_events);
    assert!(by_systemctl.events().is_none());
    let up = label("jc-bus-same-up");
    let down = label("jc-bus-same-down");
    pm.enable(&looping(&up)).await.unwrap();
    let mut stopped = looping(&down);
    stopped.run_at_load = false;
    pm.enable(&stopped).await.unwrap();
    sysutil::poll::until("jc-bus-same-up running", SETTLE, || async {
        pm.inspect(&up).await.ok().filter(|s| s.pid.is_some())
    })
    .await;
    for l in [&up, &down] {
        let over_bus = pm.inspect(l).await.unwrap();
        let over_systemctl = by_systemctl.inspect(l).await.unwrap();
        assert_eq!(over_bus, over_systemctl);
    }
    assert_eq!(pm.inspect(&up).await.unwrap().state, RunState::Running);
    assert_eq!(pm.inspect(&down).await.unwrap().state, RunState::Stopped);
    let pattern = LabelPattern::new("jc-bus-same-*");
    let listed = pm.list(&pattern).await.unwrap();
    assert_eq!(listed, by_systemctl.list(&pattern).await.unwrap());
    assert_eq!(listed.len(), 2, "{listed:?}");
    match pm.inspect(&label("jc-bus-nosuch")).await {
        Err(ProcessError::NotFound { label, .. }) => assert_eq!(label, "jc-bus-nosuch"),
        other => panic!("{other:?}"),
    }
    cleanup(&pm, &c, &up).await;
    cleanup(&pm, &c, &down).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_unit_is_pushed_as_an_exit_and_its_restart() {
    let Some(c) = Container::get() else { return };
    let pm = c.bus_manager();
    let l = label("jc-bus-killed");
    let mut events = pm.events().expect("a bus manager pushes events");
    pm.enable(&looping(&l)).await.unwrap();
    let exit = kill_until_told(&c, &pm, &l, &mut events).await;
    assert_eq!(
        exit,
        ServiceEvent::Exited {
            label: l.clone(),
            status: ExitStatus::Signal(9)
        }
    );
    event_where(&mut events, &l, "auto-restart", |e| {
        matches!(
            e,
            ServiceEvent::StateChanged {
                state: RunState::SupervisorRestarting,
                ..
            }
        )
    })
    .await;
    event_where(&mut events, &l, "running again", |e| {
        matches!(
            e,
            ServiceEvent::StateChanged {
                state: RunState::Running,
                ..
            }
        )
    })
    .await;
    cleanup(&pm, &c, &l).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_limit_failure_is_pushed() {
    let Some(c) = Container::get() else { return };
    let pm = c.bus_manager();
    let l = label("jc-bus-startlimit");
    cleanup(&pm, &c, &l).await;
    let mut events = pm.events().unwrap();
    // Runs while the flag exists, else exits at once: once killed without its flag, systemd
    // restarts it until its start limit and leaves it `failed`.
    let flag = "/run/jc-bus-startlimit-ok";
    c.run(&["touch", flag]);
    let mut cfg = ServiceConfig::new(l.clone(), "/bin/sh").with_args([
        "-c",
        &format!("test -e {flag} || exit 3; while :; do sleep 1; done"),
    ]);
    cfg.restart = RestartPolicy::Always;
    // Restarts at once, so the start limit is reached between two daemon-reloads of other tests
    // (a reload resets systemd's start-limit count).
    cfg.restart_delay = Some(Duration::ZERO);
    cfg.start_limit = Some(StartLimit {
        interval: Duration::from_secs(60),
        burst: 5,
    });
    pm.enable(&cfg).await.unwrap();
    // An exit told: the watch is subscribed, nothing from here on is missed.
    kill_until_told(&c, &pm, &l, &mut events).await;
    let running = sysutil::poll::until("running before the last kill", SETTLE, || async {
        pm.inspect(&l)
            .await
            .ok()
            .filter(|s| s.is_running() && s.pid.is_some_and(|p| p > 0))
    })
    .await;
    c.run(&["rm", "-f", flag]);
    c.run(&["kill", "-9", &running.pid.unwrap().to_string()]);
    // A bound on the wait: reloads by other tests can hold off the start limit for a while.
    event_within(
        &mut events,
        &l,
        "failed",
        |e| {
            matches!(
                e,
                ServiceEvent::StateChanged {
                    state: RunState::Failed,
                    ..
                }
            )
        },
        RELOAD_PATIENCE,
    )
    .await;
    // Told only once it stayed `failed` (each exit passes through `failed` on its way to
    // `auto-restart`, and is not told as one).
    assert_eq!(pm.inspect(&l).await.unwrap().state, RunState::Failed);
    cleanup(&pm, &c, &l).await;
}

/// A unix socket that forwards every connection to the container's bus, until cut.
struct Relay {
    path: PathBuf,
    links: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Relay {
    fn start(dir: &Path, upstream: PathBuf) -> Relay {
        let path = dir.join("bus");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let links: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let kept = links.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut down, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let link = tokio::spawn(async move {
                    if let Ok(mut up) = tokio::net::UnixStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                    }
                });
                kept.lock().unwrap().push(link);
            }
        });
        Relay {
            path,
            links,
            accept,
        }
    }

    /// Drops every connection made so far (the bus "went away"); new ones are still relayed.
    fn cut(&self) {
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watch_subscribes_again_after_losing_the_bus() {
    let Some(c) = Container::get() else { return };
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), c.bus_socket());
    let pm = c.manager(address(&relay.path));
    let l = label("jc-bus-relay");
    let mut events = pm.events().unwrap();
    pm.enable(&looping(&l)).await.unwrap();
    kill_until_told(&c, &pm, &l, &mut events).await;
    relay.cut();
    // The watch connects again by itself; a query connects again on its next call.
    sysutil::poll::until("a query after the cut", SETTLE, || async {
        pm.inspect(&l).await.ok().filter(|s| s.is_running())
    })
    .await;
    // Until the watch is back, a kill may be missed.
    let exit = kill_until_told(&c, &pm, &l, &mut events).await;
    assert!(matches!(
        exit,
        ServiceEvent::Exited {
            status: ExitStatus::Signal(9),
            ..
        }
    ));
    cleanup(&pm, &c, &l).await;
}

#[tokio::test]
async fn an_unreachable_bus_falls_back_to_systemctl() {
    let Some(c) = Container::get() else { return };
    let dir = tempfile::tempdir().unwrap();
    let pm = c.manager(address(&dir.path().join("no-bus-here")));
    let l = label("jc-bus-fallback");
    pm.enable(&looping(&l)).await.unwrap();
    let st = pm.inspect(&l).await.unwrap();
    assert_eq!(st.label, l);
    assert!(
        matches!(st.state, RunState::Running | RunState::Starting),
        "{st:?}"
    );
    cleanup(&pm, &c, &l).await;
}

#[tokio::test]
async fn a_bus_that_does_not_answer_is_a_timeout_not_a_state() {
    // A socket that takes connections and never says a word: a frozen bus. No systemd needed;
    // `systemctl` is pointed at `false`, so a fallback would show as a failed call, not a pass.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("silent");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let held = tokio::spawn(async move {
        let mut kept = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            kept.push(s);
        }
    });
    let pm = SystemdProcessManager::system()
        .with_systemctl("/bin/false")
        .with_query_deadline(Duration::from_millis(300))
        .with_bus(address(&path));
    match pm.inspect(&label("anything")).await {
        Err(ProcessError::Timeout { operation, after }) => {
            assert_eq!(operation, Operation::Inspect);
            assert_eq!(after, Duration::from_millis(300));
        }
        other => panic!("a silent bus must be a timeout: {other:?}"),
    }
    match pm.list(&LabelPattern::all()).await {
        Err(ProcessError::Timeout { operation, .. }) => assert_eq!(operation, Operation::List),
        other => panic!("{other:?}"),
    }
    held.abort();
}
