//! Service verbs (`start`, `stop`, `restart`, `enable`, `disable`): what a person asks of one
//! service, through the running loop or, with no loop running, directly.
//!
//! Through the loop ([`HealLoop::control`] → [`Control`]), a verb is serialized with that
//! service's heals (it waits for a heal or probe in flight, and no heal starts while it runs)
//! and the loop knows it was intended: the desired state a verb sets ([`Desired`]) is
//! persisted *before* the manager is called, so a service a person stopped is never healed
//! back, across agent restarts too, until it is started again.
//!
//! [`HealLoop::request`] is the same verb without a running loop (the CLI when no agent runs;
//! it holds the state folder's lock meanwhile). Both end in [`verb_call`], the one place a
//! verb becomes a port call.

use std::time::Duration;

use process_manager::{ProcessError, RunState, ServiceConfig, ServiceLabel};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use super::{machine, HealLoop, Target};
use crate::events::{CallFailure, EventKind, FailureKind, HealEvent, StepOutcome};
use crate::state::Desired;

/// A service verb.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Verb {
    /// Start it if it is not running; healed again from here.
    Start,
    /// Stop it; not healed back until started.
    Stop,
    /// Restart it (start it if stopped); healed again from here.
    Restart,
    /// Install its definition, enable it at boot and start it; healed again from here.
    Enable,
    /// Stop it and keep it from starting at boot; not healed until enabled.
    Disable,
}

impl Verb {
    /// Every verb, in the order the CLI lists them.
    pub const ALL: [Verb; 5] = [
        Verb::Start,
        Verb::Stop,
        Verb::Restart,
        Verb::Enable,
        Verb::Disable,
    ];

    /// Its name (`start`).
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Start => "start",
            Verb::Stop => "stop",
            Verb::Restart => "restart",
            Verb::Enable => "enable",
            Verb::Disable => "disable",
        }
    }

    /// The verb named `name`.
    pub fn parse(name: &str) -> Option<Verb> {
        Verb::ALL.into_iter().find(|v| v.as_str() == name)
    }

    /// The state a person asks for with it.
    pub fn desired(self) -> Desired {
        match self {
            Verb::Start | Verb::Restart | Verb::Enable => Desired::Running,
            Verb::Stop => Desired::Stopped,
            Verb::Disable => Desired::Disabled,
        }
    }

    fn event(self) -> EventKind {
        match self {
            Verb::Start => EventKind::ServiceStarted,
            Verb::Stop => EventKind::ServiceStopped,
            Verb::Restart => EventKind::ServiceRestarted,
            Verb::Enable => EventKind::ServiceEnabled,
            Verb::Disable => EventKind::ServiceDisabled,
        }
    }
}

impl std::fmt::Display for Verb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a verb did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct VerbOutcome {
    /// The service.
    pub label: String,
    /// The verb.
    pub verb: Verb,
    /// What the manager did (`stopped`, `already-stopped`, `restarted`, `started`...).
    pub did: String,
    /// The state the loop now keeps it in.
    pub desired: Desired,
    /// Through the running agent (serialized with its heals), or directly through the adapter
    /// because no agent runs for this state folder.
    pub through: Through,
}

/// Who carried a verb out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Through {
    /// The running agent's loop.
    Agent,
    /// The adapter, with no agent running.
    Adapter,
}

/// Why a verb was not carried out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerbError {
    /// No such service in the inventory.
    #[error("no service {0:?} in this inventory")]
    NotFound(String),
    /// The verb does not apply to this service (e.g. `enable` without a definition).
    #[error("{0}")]
    NotSupported(String),
    /// The manager's call failed (the desired state is recorded regardless).
    #[error("{verb} {label}: {detail}")]
    Failed {
        /// The service.
        label: String,
        /// The verb.
        verb: Verb,
        /// What the failure means.
        kind: FailureKind,
        /// Its own words.
        detail: String,
    },
    /// The loop stopped before answering.
    #[error("the agent stopped before it answered")]
    Gone,
}

/// One verb on its way into the loop, with where its answer goes.
#[derive(Debug)]
pub(super) struct VerbRequest {
    pub(super) label: String,
    pub(super) verb: Verb,
    pub(super) reply: oneshot::Sender<Result<VerbOutcome, VerbError>>,
}

/// A handle on the running loop for service verbs (cheap to clone; one per API).
#[derive(Debug, Clone)]
pub struct Control {
    tx: mpsc::Sender<VerbRequest>,
}

impl Control {
    /// Asks the loop to carry out `verb` on `label` and waits for its answer. The loop's own
    /// deadline bounds the manager's call; `patience` bounds the wait for a heal in flight.
    pub async fn send(
        &self,
        label: &str,
        verb: Verb,
        patience: Duration,
    ) -> Result<VerbOutcome, VerbError> {
        let (reply, answer) = oneshot::channel();
        let request = VerbRequest {
            label: label.to_string(),
            verb,
            reply,
        };
        let sent = tokio::time::timeout(patience, self.tx.send(request)).await;
        if !matches!(sent, Ok(Ok(()))) {
            return Err(VerbError::Gone);
        }
        match tokio::time::timeout(patience, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(VerbError::Gone),
            Err(_) => Err(VerbError::Failed {
                label: label.to_string(),
                verb,
                kind: FailureKind::Timeout,
                detail: format!("no answer from the agent within {patience:?}"),
            }),
        }
    }
}

/// How many verbs may wait for the loop at once.
const VERB_QUEUE: usize = 64;

impl HealLoop {
    /// A handle for service verbs while [`HealLoop::run`] runs (verbs sent before `run`
    /// starts wait for it). Call before `run`.
    pub fn control(&mut self) -> Control {
        let (tx, rx) = mpsc::channel(VERB_QUEUE);
        self.verbs = Some(rx);
        Control { tx }
    }

    /// Carries out `verb` with no loop running (the CLI's path when no agent runs): the
    /// desired state is saved first, then the manager is called under the loop's deadline.
    /// The caller holds the state folder's lock.
    pub async fn request(&mut self, label: &str, verb: Verb) -> Result<VerbOutcome, VerbError> {
        let (i, call) = self.begin_verb(label, verb)?;
        let result = tokio::time::timeout(self.settings.heal_timeout, call)
            .await
            .unwrap_or_else(|_| {
                Err(CallFailure::new(
                    FailureKind::Timeout,
                    format!("no answer within {:?}", self.settings.heal_timeout),
                ))
            });
        self.finish_verb(i, verb, result, Through::Adapter)
    }

    /// Checks the verb, records the desired state (on disk before any call) and returns the
    /// call to make.
    pub(super) fn begin_verb(
        &mut self,
        label: &str,
        verb: Verb,
    ) -> Result<(usize, VerbCall), VerbError> {
        let i = *self
            .by_label
            .get(label)
            .ok_or_else(|| VerbError::NotFound(label.to_string()))?;
        if self.services[i].monitor_only {
            return Err(VerbError::NotSupported(format!(
                "{verb} {label}: it is monitor-only (watched and reported; this node does not act on it)"
            )));
        }
        let call = verb_call(
            &self.services[i].target,
            &self.services[i].config,
            label,
            verb,
        )?;
        let now = self.clock.now_ms();
        let t = &mut self.services[i];
        let state = std::mem::take(&mut t.state);
        t.state = machine::request(state, verb.desired(), now, &t.policy);
        self.dirty = true;
        self.persist();
        Ok((i, call))
    }

    /// Reports a verb's result (its event) and answers.
    pub(super) fn finish_verb(
        &mut self,
        i: usize,
        verb: Verb,
        result: Result<String, CallFailure>,
        through: Through,
    ) -> Result<VerbOutcome, VerbError> {
        let now = self.clock.now_ms();
        let t = &self.services[i];
        let label = t.label.to_string();
        let desired = t.state.record.desired;
        let by = match through {
            Through::Agent => "by request",
            Through::Adapter => "by request, with no agent running",
        };
        let mut event: HealEvent = self.event(i, verb.event(), now, String::new());
        event.step = None;
        let answer = match result {
            Ok(did) => {
                event.detail = match desired {
                    Desired::Running => format!("{did} {by}"),
                    held => format!("{did} {by}: {held}, not healed until started"),
                };
                event.outcome = Some(StepOutcome::Requested { did: did.clone() });
                Ok(VerbOutcome {
                    label,
                    verb,
                    did,
                    desired,
                    through,
                })
            }
            Err(CallFailure { kind, detail }) => {
                event.detail = format!("{verb} {by} failed: {detail}");
                event.error_kind = Some(kind);
                event.outcome = Some(StepOutcome::Failed);
                Err(VerbError::Failed {
                    label,
                    verb,
                    kind,
                    detail,
                })
            }
        };
        self.publish(std::slice::from_ref(&event));
        self.refresh_status(true);
        answer
    }
}

/// A verb's port call, owning what it needs.
pub(super) type VerbCall = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<String, CallFailure>> + Send + 'static>,
>;

fn failed<E: FailureSource>(e: E) -> CallFailure {
    e.call_failure()
}

/// A port's error as the loop reports it.
trait FailureSource: std::fmt::Display {
    fn call_failure(&self) -> CallFailure;
}

impl FailureSource for process_manager::ProcessError {
    fn call_failure(&self) -> CallFailure {
        CallFailure::new(self.kind(), self.to_string())
    }
}

impl FailureSource for container_runtime::RuntimeError {
    fn call_failure(&self) -> CallFailure {
        CallFailure::new(self.kind(), self.to_string())
    }
}

fn kebab<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The one place a verb becomes a port call: what it is for each kind of target.
fn verb_call(
    target: &Target,
    config: &Option<ServiceConfig>,
    label: &str,
    verb: Verb,
) -> Result<VerbCall, VerbError> {
    match target {
        Target::Process(m) => {
            let m = m.clone();
            let name = ServiceLabel::new(label)
                .map_err(|e| VerbError::NotSupported(format!("{label}: {e}")))?;
            match verb {
                Verb::Start => {
                    let config = config.clone();
                    Ok(Box::pin(async move {
                        match m.inspect(&name).await {
                            Ok(now)
                                if matches!(now.state, RunState::Running | RunState::Starting) =>
                            {
                                return Ok("already-running".to_string());
                            }
                            Ok(_) => {}
                            // Not installed (an embedded service the agent never started):
                            // installed from the inventory's definition, and started.
                            Err(ProcessError::NotFound { .. }) if config.is_some() => {
                                let config = config.expect("checked");
                                return m.enable(&config).await.map(|o| kebab(&o)).map_err(failed);
                            }
                            Err(e) => return Err(failed(e)),
                        }
                        m.restart(&name).await.map(|o| kebab(&o)).map_err(failed)
                    }))
                }
                Verb::Restart => Ok(Box::pin(async move {
                    m.restart(&name).await.map(|o| kebab(&o)).map_err(failed)
                })),
                Verb::Stop => Ok(Box::pin(async move {
                    m.stop(&name).await.map(|o| kebab(&o)).map_err(failed)
                })),
                Verb::Disable => Ok(Box::pin(async move {
                    m.disable(&name).await.map(|o| kebab(&o)).map_err(failed)
                })),
                Verb::Enable => {
                    let config = config.clone().ok_or_else(|| {
                        VerbError::NotSupported(format!(
                            "enable {label}: the inventory gives no definition to install (add its program)"
                        ))
                    })?;
                    Ok(Box::pin(async move {
                        m.enable(&config).await.map(|o| kebab(&o)).map_err(failed)
                    }))
                }
            }
        }
        Target::Container { runtime, name } => {
            let (rt, what) = (runtime.clone(), name.clone());
            match verb {
                Verb::Start => Ok(Box::pin(async move {
                    let c = rt.inspect_ref(&what).await.map_err(failed)?;
                    if c.is_up() {
                        return Ok("already-running".to_string());
                    }
                    rt.start_container(&c.name)
                        .await
                        .map(|o| kebab(&o))
                        .map_err(failed)
                })),
                Verb::Restart => Ok(Box::pin(async move {
                    rt.restart_ref(&what)
                        .await
                        .map(|o| kebab(&o))
                        .map_err(failed)
                })),
                Verb::Stop => Ok(Box::pin(async move {
                    let c = rt.inspect_ref(&what).await.map_err(failed)?;
                    rt.stop_container(&c.name)
                        .await
                        .map(|was| if was { "stopped" } else { "already-stopped" }.to_string())
                        .map_err(failed)
                })),
                Verb::Enable | Verb::Disable => Err(VerbError::NotSupported(format!(
                    "{verb} {label}: a container is enabled by its Compose project and restart \
                     policy; stop and start it here, change its policy in the Compose file"
                ))),
            }
        }
        Target::Substrate(rt) => match verb {
            Verb::Start => {
                let rt = rt.clone();
                Ok(Box::pin(async move {
                    rt.ensure_running().await.map(|o| kebab(&o)).map_err(failed)
                }))
            }
            _ => Err(VerbError::NotSupported(format!(
                "{verb} {label}: the substrate is only started from here (stop it with its own \
                 tool: colima, or dockerd's unit)"
            ))),
        },
    }
}
