//! The conformance suite every `ProcessManagerPort` adapter runs: `pub async fn` scenarios over a
//! `&dyn ProcessManagerPort`. A scenario panics with a message on the first broken expectation.
//!
//! Real managers need a real program to run and a label space of their own; the adapter's test
//! supplies both through [`Fixture`]. Each scenario uses labels under the fixture's prefix and
//! disables what it enabled.

use std::time::Duration;

use crate::config::ServiceConfig;
use crate::error::ProcessError;
use crate::label::{LabelPattern, ServiceLabel};
use crate::port::ProcessManagerPort;
use crate::status::{
    DisableOutcome, EnableOutcome, RestartOutcome, RunState, ServiceStatus, StopOutcome,
};

/// What a scenario needs from the adapter's test.
pub struct Fixture {
    /// A label prefix no other test uses (e.g. `conf-systemd-`).
    pub prefix: String,
    /// A config for a long-running service under `label`; `variant` changes the definition
    /// (e.g. one more argument) so that `enable` sees a different config.
    pub make_config: Box<dyn Fn(ServiceLabel, u32) -> ServiceConfig + Send + Sync>,
    /// How long to wait for a state change a real manager makes asynchronously.
    pub settle: Duration,
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
        }
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
        Err(ProcessError::NotFound { .. }) => {}
        other => panic!("{what} of an unknown label: expected NotFound, got {other:?}"),
    }
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

/// Every scenario, in order.
pub async fn run_all(pm: &dyn ProcessManagerPort, fx: &Fixture) {
    unknown_label_is_not_found(pm, fx).await;
    enable_is_idempotent(pm, fx).await;
    stop_is_idempotent(pm, fx).await;
    restart_starts_or_restarts(pm, fx).await;
    disable_is_idempotent(pm, fx).await;
    list_filters_by_pattern(pm, fx).await;
}
