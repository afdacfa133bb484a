//! The conformance suite every `ProcessManagerPort` adapter runs, and the test wrappers.
//!
//! - Scenarios: `pub async fn` over a `&dyn ProcessManagerPort`, each panicking with a message
//!   on the first broken expectation. [`crate::conformance_tests!`] turns them into one test per
//!   scenario per adapter, so one failure does not hide the rest.
//! - [`Faulty`] and [`Recording`]: wrap any adapter to fail or hang chosen calls, and to count
//!   them. The same shapes as the runtime port's.
//!
//! Real managers need a real program to run and a label space of their own; the adapter's test
//! supplies both through [`Fixture`]. Each scenario uses labels under the fixture's prefix and
//! disables what it enabled.

use std::any::Any;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::config::ServiceConfig;
use crate::error::{Operation, ProcessError};
use crate::label::{LabelPattern, ServiceLabel};
use crate::port::ProcessManagerPort;
use crate::status::{
    Capabilities, DisableOutcome, EnableOutcome, RestartOutcome, RunState, ServiceEvent,
    ServiceStatus, StopOutcome,
};

/// Any process manager that fails or hangs the calls armed with `inject`.
pub type Faulty<P> = port_kit::Faulty<P, Operation, ProcessError>;
/// Any process manager whose calls are recorded (a bounded log and exact counts).
pub type Recording<P> = port_kit::Recording<P, Operation>;
/// A fault armed on a [`Faulty`] manager: an operation, optionally one label, how often.
pub type Injection = port_kit::Injection<Operation, ProcessError>;
/// What an injected fault does: fail with an error, or hang.
pub type Fault = port_kit::Fault<ProcessError>;
/// One recorded call.
pub type Call = port_kit::Call<Operation>;

/// `Recording<Faulty<P>>`: faults can be armed, and every call is counted, failed or not.
pub fn instrumented<P: ProcessManagerPort>(inner: P) -> Recording<Faulty<P>> {
    Recording::new(Faulty::new(inner))
}

/// Implements the port for a wrapper whose `$before(operation, target)` runs before each call
/// is passed to the wrapped adapter.
macro_rules! wrap_port {
    ($wrapper:ident, |$this:ident, $op:ident, $target:ident| $before:expr) => {
        #[async_trait]
        impl<P: ProcessManagerPort> ProcessManagerPort for $wrapper<P> {
            fn capabilities(&self) -> Capabilities {
                (**self).capabilities()
            }
            async fn list(
                &self,
                pattern: &LabelPattern,
            ) -> Result<Vec<ServiceStatus>, ProcessError> {
                let ($this, $op, $target) = (self, Operation::List, None::<&str>);
                $before;
                (**self).list(pattern).await
            }
            async fn inspect(&self, label: &ServiceLabel) -> Result<ServiceStatus, ProcessError> {
                let ($this, $op, $target) = (self, Operation::Inspect, Some(label.as_str()));
                $before;
                (**self).inspect(label).await
            }
            async fn restart(&self, label: &ServiceLabel) -> Result<RestartOutcome, ProcessError> {
                let ($this, $op, $target) = (self, Operation::Restart, Some(label.as_str()));
                $before;
                (**self).restart(label).await
            }
            async fn stop(&self, label: &ServiceLabel) -> Result<StopOutcome, ProcessError> {
                let ($this, $op, $target) = (self, Operation::Stop, Some(label.as_str()));
                $before;
                (**self).stop(label).await
            }
            async fn disable(&self, label: &ServiceLabel) -> Result<DisableOutcome, ProcessError> {
                let ($this, $op, $target) = (self, Operation::Disable, Some(label.as_str()));
                $before;
                (**self).disable(label).await
            }
            async fn enable(&self, config: &ServiceConfig) -> Result<EnableOutcome, ProcessError> {
                let ($this, $op, $target) = (self, Operation::Enable, Some(config.label.as_str()));
                $before;
                (**self).enable(config).await
            }
            fn events(&self) -> Option<broadcast::Receiver<ServiceEvent>> {
                (**self).events()
            }
            fn log_source(&self, config: &ServiceConfig) -> Option<$crate::LogSource> {
                (**self).log_source(config)
            }
        }
    };
}

wrap_port!(Faulty, |this, op, target| this.enter(op, target).await?);
wrap_port!(Recording, |this, op, target| this.record(op, target));

/// Kills a service's main process from outside its manager: `(label, pid)`.
pub type Kill = Box<dyn Fn(&ServiceLabel, Option<u32>) + Send + Sync>;

/// What a scenario needs from the adapter's test.
pub struct Fixture {
    /// A label prefix no other test uses (e.g. `conf-systemd-`).
    pub prefix: String,
    /// A config for a long-running service under `label`; `variant` changes the definition
    /// (e.g. one more argument) so that `enable` sees a different config.
    pub make_config: Box<dyn Fn(ServiceLabel, u32) -> ServiceConfig + Send + Sync>,
    /// How long to wait for a state change a real manager makes asynchronously.
    pub settle: Duration,
    /// Kills a running service's main process behind the manager's back (a crash), where the
    /// test can; the event scenario needs it.
    pub kill: Option<Kill>,
    /// What must live as long as the scenario (a temporary folder, a lock on a shared daemon).
    pub keep: Vec<Box<dyn Any + Send + Sync>>,
}

impl Fixture {
    /// A fixture whose services run `program args...` (plus `variant` as a last argument when
    /// it is not 0).
    pub fn new(prefix: &str, program: &str, args: &[&str]) -> Self {
        let program = program.to_string();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        Fixture {
            prefix: prefix.to_string(),
            make_config: Box::new(move |label, variant| {
                let mut a = args.clone();
                if variant != 0 {
                    a.push(variant.to_string());
                }
                ServiceConfig::new(label, program.clone()).with_args(a)
            }),
            settle: Duration::from_secs(10),
            kill: None,
            keep: Vec::new(),
        }
    }

    /// With a way to crash a service (see [`Fixture::kill`]).
    pub fn with_kill(
        mut self,
        kill: impl Fn(&ServiceLabel, Option<u32>) + Send + Sync + 'static,
    ) -> Self {
        self.kill = Some(Box::new(kill));
        self
    }

    /// Keeps `value` alive for the scenario.
    pub fn keeping(mut self, value: impl Any + Send + Sync) -> Self {
        self.keep.push(Box::new(value));
        self
    }

    /// The label `<prefix><name>`.
    pub fn label(&self, name: &str) -> ServiceLabel {
        ServiceLabel::new(format!("{}{}", self.prefix, name))
            .expect("fixture prefix and scenario names form a valid label")
    }

    fn config(&self, label: &ServiceLabel, variant: u32) -> ServiceConfig {
        (self.make_config)(label.clone(), variant)
    }
}

/// Polls `inspect` until `pred` holds or the fixture's settle time passes.
pub async fn eventually(
    pm: &dyn ProcessManagerPort,
    fx: &Fixture,
    label: &ServiceLabel,
    what: &str,
    pred: impl Fn(&ServiceStatus) -> bool,
) -> ServiceStatus {
    let deadline = tokio::time::Instant::now() + fx.settle;
    loop {
        let st = pm
            .inspect(label)
            .await
            .unwrap_or_else(|e| panic!("inspect {label} while waiting for {what}: {e}"));
        if pred(&st) {
            return st;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!(
                "{label}: expected {what} within {:?}, last state {st:?}",
                fx.settle
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn assert_not_found<T: std::fmt::Debug>(what: &str, r: Result<T, ProcessError>) {
    match r {
        Err(e @ ProcessError::NotFound { .. }) => {
            assert_eq!(e.kind(), crate::ErrorKind::NotFound, "{e}");
            assert!(!e.is_retryable(), "a missing service is not retryable: {e}");
        }
        other => panic!("{what} of an unknown label: expected NotFound, got {other:?}"),
    }
}

/// The adapter has a name for telemetry, the same every time; a respawn throttle, if any, is a
/// plausible wait.
pub async fn capabilities_describe_the_adapter(pm: &dyn ProcessManagerPort, _fx: &Fixture) {
    let caps = pm.capabilities();
    assert!(!caps.adapter.is_empty(), "empty adapter name: {caps:?}");
    assert!(
        !caps.adapter.contains(char::is_whitespace),
        "adapter name {:?} is not one word",
        caps.adapter
    );
    assert_eq!(
        pm.capabilities(),
        caps,
        "capabilities changed between calls"
    );
    if let Some(t) = caps.respawn_throttle {
        assert!(
            t > Duration::ZERO && t <= Duration::from_secs(3600),
            "implausible respawn throttle {t:?}"
        );
    }
}

/// `events()` is `Some` exactly when the capabilities say the manager pushes events; where it
/// does and the fixture can crash a service, the crash arrives as an event about it.
pub async fn events_match_capabilities(pm: &dyn ProcessManagerPort, fx: &Fixture) {
    let caps = pm.capabilities();
    let events = pm.events();
    assert_eq!(
        events.is_some(),
        caps.pushes_events,
        "events() is {} but pushes_events is {}",
        if events.is_some() { "Some" } else { "None" },
        caps.pushes_events
    );
    let (Some(mut events), Some(kill)) = (events, &fx.kill) else {
        return;
    };
    let label = fx.label("events");
    pm.enable(&fx.config(&label, 0)).await.unwrap();
    let st = eventually(pm, fx, &label, "running", |s| s.is_running()).await;
    kill(&label, st.pid);
    let about_it = async {
        loop {
            match events.recv().await {
                Ok(ev) if ev.label() == &label => return ev,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => {
                    panic!("the event channel closed before an event about {label}")
                }
            }
        }
    };
    // A bound on a wait, not a timing assertion.
    tokio::time::timeout(fx.settle, about_it)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "{label} was killed, but no event came within {:?}",
                fx.settle
            )
        });
    cleanup(pm, &label).await;
}

/// Unknown labels are `NotFound` for inspect, restart, stop and disable.
pub async fn unknown_label_is_not_found(pm: &dyn ProcessManagerPort, fx: &Fixture) {
    let ghost = fx.label("never-installed");
    assert_not_found("inspect", pm.inspect(&ghost).await);
    assert_not_found("restart", pm.restart(&ghost).await);
    assert_not_found("stop", pm.stop(&ghost).await);
    assert_not_found("disable", pm.disable(&ghost).await);
}

/// `enable` installs and starts; the same config again is `Unchanged`; a changed one `Updated`.
pub async fn enable_is_idempotent(pm: &dyn ProcessManagerPort, fx: &Fixture) {
    let label = fx.label("enable");
    let cfg = fx.config(&label, 0);
    assert_eq!(pm.enable(&cfg).await.unwrap(), EnableOutcome::Installed);
    let st = eventually(pm, fx, &label, "running after enable", |s| s.is_running()).await;
    assert!(st.loaded, "{st:?}");
    assert_ne!(st.enabled, Some(false), "{st:?}");
    assert_eq!(
        pm.enable(&cfg).await.unwrap(),
        EnableOutcome::Unchanged,
        "second enable with the same config"
    );
    let changed = fx.config(&label, 1);
    assert_eq!(pm.enable(&changed).await.unwrap(), EnableOutcome::Updated);
    eventually(pm, fx, &label, "running after update", |s| s.is_running()).await;
    assert_eq!(pm.enable(&changed).await.unwrap(), EnableOutcome::Unchanged);
    cleanup(pm, &label).await;
}

/// `stop` stops; a second `stop` says it already was.
pub async fn stop_is_idempotent(pm: &dyn ProcessManagerPort, fx: &Fixture) {
    let label = fx.label("stop");
    pm.enable(&fx.config(&label, 0)).await.unwrap();
    eventually(pm, fx, &label, "running", |s| s.is_running()).await;
    assert_eq!(pm.stop(&label).await.unwrap(), StopOutcome::Stopped);
    let st = eventually(pm, fx, &label, "stopped", |s| !s.is_running()).await;
    assert_eq!(st.pid, None, "{st:?}");
    assert_eq!(
        pm.stop(&label).await.unwrap(),
        StopOutcome::AlreadyStopped,
        "second stop"
    );
    cleanup(pm, &label).await;
}

/// `restart` starts a stopped service and restarts a running one with a new process.
pub async fn restart_starts_or_restarts(pm: &dyn ProcessManagerPort, fx: &Fixture) {
    let label = fx.label("restart");
    pm.enable(&fx.config(&label, 0)).await.unwrap();
    eventually(pm, fx, &label, "running", |s| s.is_running()).await;
    pm.stop(&label).await.unwrap();
    eventually(pm, fx, &label, "stopped", |s| !s.is_running()).await;
    assert_eq!(pm.restart(&label).await.unwrap(), RestartOutcome::Started);
    let first = eventually(pm, fx, &label, "running after start", |s| s.is_running()).await;
    assert_eq!(pm.restart(&label).await.unwrap(), RestartOutcome::Restarted);
    if let Some(old) = first.pid {
        eventually(pm, fx, &label, "a new pid after restart", |s| {
            s.is_running() && s.pid.is_some() && s.pid != Some(old)
        })
        .await;
    }
    cleanup(pm, &label).await;
}

/// `disable` stops and disables; a second `disable` says it already was; `enable` brings it back.
pub async fn disable_is_idempotent(pm: &dyn ProcessManagerPort, fx: &Fixture) {
    let label = fx.label("disable");
    let cfg = fx.config(&label, 0);
    pm.enable(&cfg).await.unwrap();
    eventually(pm, fx, &label, "running", |s| s.is_running()).await;
    assert_eq!(pm.disable(&label).await.unwrap(), DisableOutcome::Disabled);
    // A disabled service may be reported as not loaded (launchd boots it out) or as loaded and
    // disabled; either way it is not running and not enabled.
    match pm.inspect(&label).await {
        Ok(st) => {
            assert_ne!(st.state, RunState::Running, "{st:?}");
            assert_ne!(st.enabled, Some(true), "{st:?}");
        }
        Err(ProcessError::NotFound { .. }) => {}
        Err(e) => panic!("inspect after disable: {e}"),
    }
    assert_eq!(
        pm.disable(&label).await.unwrap(),
        DisableOutcome::AlreadyDisabled,
        "second disable"
    );
    assert_eq!(pm.enable(&cfg).await.unwrap(), EnableOutcome::Started);
    let st = eventually(pm, fx, &label, "running after re-enable", |s| {
        s.is_running()
    })
    .await;
    assert_ne!(st.enabled, Some(false), "{st:?}");
    cleanup(pm, &label).await;
}

/// `list` returns the services that match the pattern and no others.
pub async fn list_filters_by_pattern(pm: &dyn ProcessManagerPort, fx: &Fixture) {
    let a = fx.label("list-a");
    let b = fx.label("list-b");
    let other = fx.label("other-c");
    for l in [&a, &b, &other] {
        pm.enable(&fx.config(l, 0)).await.unwrap();
    }
    let pattern = LabelPattern::new(format!("{}list-*", fx.prefix));
    let found: Vec<String> = pm
        .list(&pattern)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.label.to_string())
        .collect();
    assert!(found.contains(&a.to_string()), "{found:?}");
    assert!(found.contains(&b.to_string()), "{found:?}");
    assert!(!found.contains(&other.to_string()), "{found:?}");
    assert!(
        found.iter().all(|l| pattern.matches(l)),
        "list returned labels outside the pattern: {found:?}"
    );
    for l in [&a, &b, &other] {
        cleanup(pm, l).await;
    }
}

async fn cleanup(pm: &dyn ProcessManagerPort, label: &ServiceLabel) {
    match pm.disable(label).await {
        Ok(_) | Err(ProcessError::NotFound { .. }) => {}
        Err(e) => panic!("cleanup: disable {label}: {e}"),
    }
}

/// One test per scenario for an adapter: a module `$module` with a `#[tokio::test]` (or the
/// test attribute given) for each scenario of [`crate::testkit`], so the first failure does not
/// hide the rest.
///
/// `$setup` is a closure taking the scenario's name and returning a future of
/// `Option<(port, Fixture)>`; `None` skips the scenario (a real daemon that is not there, which
/// the setup reports itself). Scenarios run concurrently, so a setup against a shared daemon
/// gives each its own label prefix.
///
/// ```ignore
/// process_manager::conformance_tests!(memory, |_scenario| async {
///     Some((MemoryProcessManager::new(), Fixture::new("conf-mem-", "/bin/sleep", &["1000"])))
/// });
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($module:ident, #[$test:meta], $setup:expr $(,)?) => {
        $crate::__port_kit::conformance_scenarios!(
            ($crate::testkit),
            $module,
            #[$test],
            $setup,
            capabilities_describe_the_adapter,
            events_match_capabilities,
            unknown_label_is_not_found,
            enable_is_idempotent,
            stop_is_idempotent,
            restart_starts_or_restarts,
            disable_is_idempotent,
            list_filters_by_pattern,
        );
    };
    // After the arm above: an attribute would otherwise be parsed as the start of `$setup`.
    ($module:ident, $setup:expr $(,)?) => {
        $crate::conformance_tests!($module, #[tokio::test], $setup);
    };
}
