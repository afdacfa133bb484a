//! Running a service's hooks around a heal: `before_restart` inside the heal call, before the
//! port is asked (so at most once per attempt: the attempt is on disk before the call starts),
//! `after_heal` once the loop has said `heal.succeeded` (decided in the same state change that
//! ends the attempt, written before any call runs: at most once per successful heal).
//!
//! Every hook runs, in order, each within its own deadline; a failing hook is its own
//! `hook.failed` event and never changes the heal's outcome.

use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use process_manager::{ServiceLabel, SharedProcessManager};
use tokio::time::Instant;

use super::execute::command_outcome;
use super::HealLoop;
use crate::events::{CallFailure, EventKind, FailureKind, HealEvent, Step};
use crate::model::{Hook, HookAction};
use crate::probe::port_holder::{is_own, own_pid};
use crate::probe::{run_command, HttpClient};

/// Where in a heal a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HookPoint {
    BeforeRestart,
    AfterHeal,
}

impl HookPoint {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            HookPoint::BeforeRestart => "before_restart",
            HookPoint::AfterHeal => "after_heal",
        }
    }
}

/// The hooks of one point of one heal, owning what they need to run in a task of their own.
#[derive(Debug, Clone)]
pub(super) struct HookJob {
    pub(super) point: HookPoint,
    pub(super) hooks: Arc<[Hook]>,
    pub(super) label: ServiceLabel,
    pub(super) step: Step,
    pub(super) attempt: u32,
    /// The service's manager, which tells its own current process from a stranger.
    pub(super) manager: Option<SharedProcessManager>,
}

/// What one hook did.
#[derive(Debug)]
pub(super) struct HookRun {
    pub(super) point: HookPoint,
    pub(super) step: Step,
    pub(super) attempt: u32,
    pub(super) hook: String,
    pub(super) result: Result<String, CallFailure>,
}

impl HookJob {
    /// Runs every hook in order, each within its deadline.
    pub(super) async fn run(self) -> Vec<HookRun> {
        let mut runs = Vec::with_capacity(self.hooks.len());
        for hook in self.hooks.iter() {
            let result = match tokio::time::timeout(hook.timeout, self.one(hook)).await {
                Ok(r) => r,
                Err(_) => Err(CallFailure::new(
                    FailureKind::Timeout,
                    format!("did not finish within {:?}", hook.timeout),
                )),
            };
            runs.push(HookRun {
                point: self.point,
                step: self.step,
                attempt: self.attempt,
                hook: hook.action.to_string(),
                result,
            });
        }
        runs
    }

    async fn one(&self, hook: &Hook) -> Result<String, CallFailure> {
        match &hook.action {
            HookAction::Command { argv } => {
                let env = [
                    ("JOELCLAW_SERVICE", self.label.to_string()),
                    ("JOELCLAW_HOOK", self.point.as_str().to_string()),
                    ("JOELCLAW_STEP", self.step.to_string()),
                    ("JOELCLAW_ATTEMPT", self.attempt.to_string()),
                ];
                let end = run_command(argv, &env, hook.timeout).await;
                command_outcome(end, "hook command", hook.timeout, FailureKind::HookFailed)
                    .map(|()| "exited 0".to_string())
            }
            HookAction::Http { method, url } => {
                match HttpClient.request_status(method, url).await {
                    Ok(status @ 200..=299) => Ok(format!("answered {status}")),
                    Ok(status) => Err(CallFailure::new(
                        FailureKind::HookFailed,
                        format!("answered {status}, not 2xx"),
                    )),
                    Err(e) => Err(CallFailure::new(FailureKind::Unreachable, e.to_string())),
                }
            }
            HookAction::FreePort { port } => self.free_port(*port, hook.timeout).await,
        }
    }

    /// Stops every process listening on `port` that is not the service's own current process
    /// (nor one it started): SIGCONT and SIGTERM, then SIGKILL at half the deadline.
    async fn free_port(&self, port: u16, timeout: Duration) -> Result<String, CallFailure> {
        let started = Instant::now();
        let own = match &self.manager {
            None => None,
            Some(m) => match own_pid(m, &self.label).await {
                Ok(pid) => pid,
                // Not installed (yet: the repair installs it): it has no process.
                Err(process_manager::ProcessError::NotFound { .. }) => None,
                // Not known: the service's own process cannot be told from a stranger, so
                // nothing is killed.
                Err(e) => {
                    return Err(CallFailure::new(
                        FailureKind::HookFailed,
                        format!(
                            "cannot tell {}'s own process from a stranger: {e}",
                            self.label
                        ),
                    ))
                }
            },
        };
        let strangers = |holders: Vec<sysutil::ports::PortHolder>| -> Vec<_> {
            holders
                .into_iter()
                .filter(|h| !is_own(h.pid, own))
                .collect()
        };
        let lookup = |left: Duration| async move {
            sysutil::ports::holders(port, left)
                .await
                .map_err(|e| CallFailure::new(FailureKind::HookFailed, e.to_string()))
        };
        let found = strangers(lookup(timeout).await?);
        if found.is_empty() {
            return Ok(format!("port {port}: no other process holds it"));
        }
        let named = found
            .iter()
            .map(|h| format!("pid {} ({})", h.pid, h.name))
            .collect::<Vec<_>>()
            .join(", ");
        for h in &found {
            signal(h.pid, Signal::SIGCONT)?;
            signal(h.pid, Signal::SIGTERM)?;
        }
        let mut killed = false;
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let left = timeout.saturating_sub(started.elapsed());
            let still = strangers(lookup(left.max(Duration::from_millis(50))).await?);
            if still.is_empty() {
                let how = if killed { "SIGKILL" } else { "SIGTERM" };
                return Ok(format!("port {port} freed: stopped {named} with {how}"));
            }
            if !killed && started.elapsed() >= timeout / 2 {
                for h in &still {
                    signal(h.pid, Signal::SIGKILL)?;
                }
                killed = true;
            }
        }
    }
}

/// Sends `sig` to `pid`; a process already gone is not an error.
fn signal(pid: u32, sig: Signal) -> Result<(), CallFailure> {
    let target = i32::try_from(pid).map_err(|_| {
        CallFailure::new(FailureKind::HookFailed, format!("pid {pid} out of range"))
    })?;
    match kill(Pid::from_raw(target), sig) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(e) => Err(CallFailure::new(
            FailureKind::PermissionDenied,
            format!("cannot send {sig} to pid {pid}: {e}"),
        )),
    }
}

impl HealLoop {
    /// The event saying what a hook of service `i` did.
    pub(super) fn hook_event(&self, i: usize, run: HookRun, now: u64) -> HealEvent {
        let (kind, detail, error_kind) = match run.result {
            Ok(what) => (
                EventKind::HookSucceeded,
                format!("{}: {what}", run.hook),
                None,
            ),
            Err(CallFailure { kind, detail }) => (
                EventKind::HookFailed,
                match run.point {
                    HookPoint::BeforeRestart => {
                        format!("{}: {detail} (the {} goes on)", run.hook, run.step)
                    }
                    HookPoint::AfterHeal => {
                        format!("{}: {detail} (the heal itself succeeded)", run.hook)
                    }
                },
                Some(kind),
            ),
        };
        let mut e = self.event(i, kind, now, detail);
        e.step = Some(run.step);
        e.attempt = Some(run.attempt);
        e.cause = Some(run.point.as_str().to_string());
        e.error_kind = error_kind;
        e
    }
}
