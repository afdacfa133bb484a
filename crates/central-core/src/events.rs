//! Telemetry: the closed set of heal-loop events, each carrying the node and adapter tags, sent
//! through `tracing` and to any [`EventSink`] (JSON lines for agents).

use std::fmt;
use std::io::Write;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use container_runtime::{ContainerRestartOutcome, EnsureRunningOutcome};
use process_manager::{EnableOutcome, ErrorKind, RestartOutcome};

use crate::inventory::{EndpointClass, ServiceClass};
use crate::probe::ProbeFailure;

/// Why a probe or a heal failed, as events carry it in `error_kind`: a probe's verdict, a port
/// error's kind, or the loop's own. Serialized as its stable kebab-case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// Probe: not running, nothing bringing it back.
    NotRunning,
    /// Probe: the supervisor is restarting it.
    SupervisorRestarting,
    /// Probe: starting.
    Starting,
    /// Probe: the manager does not know it.
    NotInstalled,
    /// Probe: it answered, not as healthy.
    Unhealthy,
    /// Probe: no endpoint answered.
    Unreachable,
    /// Probe or call: a deadline passed.
    Timeout,
    /// Probe or notify: the program is missing.
    BinaryNotFound,
    /// Probe: the manager could not be asked.
    ManagerUnavailable,
    /// Probe: could not decide.
    Error,
    /// Probe: its port is held by a process not its own.
    PortHeld,
    /// Call: no such service or container.
    NotFound,
    /// Call: not allowed.
    PermissionDenied,
    /// Call: the manager or runtime cannot be reached.
    Unavailable,
    /// Call: the adapter does not do this.
    NotSupported,
    /// Call: a label failed validation.
    InvalidLabel,
    /// Call: bad input.
    InvalidInput,
    /// Call: the backend's answer could not be understood.
    Parse,
    /// Call: the backend failed.
    Backend,
    /// The service stayed down after a heal's grace.
    StillDown,
    /// The notify command failed.
    NotifyFailed,
    /// A heal hook failed (its command exited non-zero, its request got no 2xx, its port stayed
    /// held).
    HookFailed,
}

impl FailureKind {
    /// The stable name (`timeout`, `still-down`...).
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::NotRunning => "not-running",
            FailureKind::SupervisorRestarting => "supervisor-restarting",
            FailureKind::Starting => "starting",
            FailureKind::NotInstalled => "not-installed",
            FailureKind::Unhealthy => "unhealthy",
            FailureKind::Unreachable => "unreachable",
            FailureKind::Timeout => "timeout",
            FailureKind::BinaryNotFound => "binary-not-found",
            FailureKind::ManagerUnavailable => "manager-unavailable",
            FailureKind::Error => "error",
            FailureKind::PortHeld => "port-held",
            FailureKind::NotFound => "not-found",
            FailureKind::PermissionDenied => "permission-denied",
            FailureKind::Unavailable => "unavailable",
            FailureKind::NotSupported => "not-supported",
            FailureKind::InvalidLabel => "invalid-label",
            FailureKind::InvalidInput => "invalid-input",
            FailureKind::Parse => "parse",
            FailureKind::Backend => "backend",
            FailureKind::StillDown => "still-down",
            FailureKind::NotifyFailed => "notify-failed",
            FailureKind::HookFailed => "hook-failed",
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<ProbeFailure> for FailureKind {
    fn from(f: ProbeFailure) -> Self {
        match f {
            ProbeFailure::NotRunning => FailureKind::NotRunning,
            ProbeFailure::SupervisorRestarting => FailureKind::SupervisorRestarting,
            ProbeFailure::Starting => FailureKind::Starting,
            ProbeFailure::NotInstalled => FailureKind::NotInstalled,
            ProbeFailure::Unhealthy => FailureKind::Unhealthy,
            ProbeFailure::Unreachable => FailureKind::Unreachable,
            ProbeFailure::Timeout => FailureKind::Timeout,
            ProbeFailure::BinaryNotFound => FailureKind::BinaryNotFound,
            ProbeFailure::ManagerUnavailable => FailureKind::ManagerUnavailable,
            ProbeFailure::Error => FailureKind::Error,
            ProbeFailure::PortHeld => FailureKind::PortHeld,
        }
    }
}

impl From<ErrorKind> for FailureKind {
    fn from(k: ErrorKind) -> Self {
        match k {
            ErrorKind::NotFound => FailureKind::NotFound,
            ErrorKind::PermissionDenied => FailureKind::PermissionDenied,
            ErrorKind::Unavailable => FailureKind::Unavailable,
            ErrorKind::Timeout => FailureKind::Timeout,
            ErrorKind::NotSupported => FailureKind::NotSupported,
            ErrorKind::InvalidLabel => FailureKind::InvalidLabel,
            ErrorKind::InvalidInput => FailureKind::InvalidInput,
            ErrorKind::Parse => FailureKind::Parse,
            ErrorKind::Backend => FailureKind::Backend,
        }
    }
}

/// A failed call as the loop reports it: what it means and what it said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallFailure {
    /// What it means.
    pub kind: FailureKind,
    /// The error's own words.
    pub detail: String,
}

impl CallFailure {
    /// A failure of `kind` saying `detail`.
    pub fn new(kind: impl Into<FailureKind>, detail: impl Into<String>) -> Self {
        CallFailure {
            kind: kind.into(),
            detail: detail.into(),
        }
    }
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum EventKind {
    /// A probe round failed.
    #[serde(rename = "probe.failed")]
    ProbeFailed,
    /// The service passes again (after `passes_to_up` rounds).
    #[serde(rename = "probe.recovered")]
    ProbeRecovered,
    /// A heal step started.
    #[serde(rename = "heal.started")]
    HealStarted,
    /// The healed service is healthy again.
    #[serde(rename = "heal.succeeded")]
    HealSucceeded,
    /// A heal call failed, or the service stayed down after it.
    #[serde(rename = "heal.failed")]
    HealFailed,
    /// A heal was held back (the supervisor is on it, a dependency is down, the breaker is open).
    #[serde(rename = "heal.suppressed")]
    HealSuppressed,
    /// Too many failed heals: the loop stops acting on the service.
    #[serde(rename = "breaker.opened")]
    BreakerOpened,
    /// The cool-down passed: one trial heal is allowed.
    #[serde(rename = "breaker.half_open")]
    BreakerHalfOpen,
    /// The service stayed healthy: normal healing resumes.
    #[serde(rename = "breaker.closed")]
    BreakerClosed,
    /// A person is called (event, and the notify command if configured).
    #[serde(rename = "heal.escalated")]
    HealEscalated,
    /// A process manager (or the container runtime) has not answered for
    /// `loop.manager_unreachable_after`: the root cause, reported once for the manager (its
    /// name in `service`), not as its services being down.
    #[serde(rename = "manager.unreachable")]
    ManagerUnreachable,
    /// A manager reported unreachable answers again.
    #[serde(rename = "manager.recovered")]
    ManagerRecovered,
    /// The installed definition is not the desired one: it is re-applied (a repair), even
    /// while the service answers.
    #[serde(rename = "definition.drifted")]
    DefinitionDrifted,
    /// Started by request (`joelclaw-node start`): healed again from here.
    #[serde(rename = "service.started")]
    ServiceStarted,
    /// Stopped by request: not healed back until started again.
    #[serde(rename = "service.stopped")]
    ServiceStopped,
    /// Restarted by request.
    #[serde(rename = "service.restarted")]
    ServiceRestarted,
    /// Enabled (installed, started at boot, started) by request.
    #[serde(rename = "service.enabled")]
    ServiceEnabled,
    /// Disabled (stopped, not started at boot) by request: not healed until enabled.
    #[serde(rename = "service.disabled")]
    ServiceDisabled,
    /// A `before_restart` or `after_heal` hook did what it should (`cause` names which hook).
    #[serde(rename = "hook.succeeded")]
    HookSucceeded,
    /// A hook failed or ran out of time; the heal's own outcome is unchanged.
    #[serde(rename = "hook.failed")]
    HookFailed,
}

impl EventKind {
    /// The dotted name (`heal.started`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::ProbeFailed => "probe.failed",
            EventKind::ProbeRecovered => "probe.recovered",
            EventKind::HealStarted => "heal.started",
            EventKind::HealSucceeded => "heal.succeeded",
            EventKind::HealFailed => "heal.failed",
            EventKind::HealSuppressed => "heal.suppressed",
            EventKind::BreakerOpened => "breaker.opened",
            EventKind::BreakerHalfOpen => "breaker.half_open",
            EventKind::BreakerClosed => "breaker.closed",
            EventKind::HealEscalated => "heal.escalated",
            EventKind::ManagerUnreachable => "manager.unreachable",
            EventKind::ManagerRecovered => "manager.recovered",
            EventKind::DefinitionDrifted => "definition.drifted",
            EventKind::ServiceStarted => "service.started",
            EventKind::ServiceStopped => "service.stopped",
            EventKind::ServiceRestarted => "service.restarted",
            EventKind::ServiceEnabled => "service.enabled",
            EventKind::ServiceDisabled => "service.disabled",
            EventKind::HookSucceeded => "hook.succeeded",
            EventKind::HookFailed => "hook.failed",
        }
    }

    /// Whether the event reports something wrong (a warning in logs and telemetry), rather than
    /// progress.
    pub fn is_warning(self) -> bool {
        matches!(
            self,
            EventKind::ProbeFailed
                | EventKind::HealFailed
                | EventKind::BreakerOpened
                | EventKind::HealEscalated
                | EventKind::ManagerUnreachable
                | EventKind::DefinitionDrifted
                | EventKind::HookFailed
        )
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The escalation steps of DESIGN.md §4, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// The supervisor is restarting it, or it is booting after a heal: wait.
    Observe,
    /// Restart through its manager (or the runtime, for a container).
    Restart,
    /// Re-apply the desired definition (enable with the inventory's config).
    Repair,
    /// Bring the container substrate up.
    HealSubstrate,
    /// Call a person and open the breaker.
    Escalate,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Observe => "observe",
            Step::Restart => "restart",
            Step::Repair => "repair",
            Step::HealSubstrate => "heal-substrate",
            Step::Escalate => "escalate",
        })
    }
}

/// What an escalation step did: the adapter's own typed answer for calls, or why nothing was
/// called.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum StepOutcome {
    /// Waited: the supervisor is restarting it, or it is starting.
    Observed,
    /// Held back (a bulkhead, a broken probe); `cause` on the event says why.
    Suppressed,
    /// The manager restarted (or started, or reset and started) it.
    Restarted {
        /// The manager's answer.
        result: RestartOutcome,
    },
    /// The runtime restarted the container.
    ContainerRestarted {
        /// The runtime's answer.
        result: ContainerRestartOutcome,
    },
    /// The desired definition was applied.
    Repaired {
        /// The manager's answer.
        result: EnableOutcome,
    },
    /// The substrate was brought up.
    SubstrateStarted {
        /// The runtime's answer.
        result: EnsureRunningOutcome,
    },
    /// A person was called: the event itself, and the notify command when one is configured
    /// (a failing command is reported as its own `heal.failed` with step `escalate`).
    Escalated {
        /// Whether a notify command is configured and was run.
        notify_command: bool,
    },
    /// A person's verb was carried out (`service.*` events).
    Requested {
        /// What the manager did (`stopped`, `already-running`, `restarted`...).
        did: String,
    },
    /// The call failed (its kind is also in `error_kind`).
    Failed,
}

impl StepOutcome {
    /// The outcome's kebab-case name, as serialized in `kind` (`restarted`, `escalated`...).
    pub fn kind(&self) -> &'static str {
        match self {
            StepOutcome::Observed => "observed",
            StepOutcome::Suppressed => "suppressed",
            StepOutcome::Restarted { .. } => "restarted",
            StepOutcome::ContainerRestarted { .. } => "container-restarted",
            StepOutcome::Repaired { .. } => "repaired",
            StepOutcome::SubstrateStarted { .. } => "substrate-started",
            StepOutcome::Escalated { .. } => "escalated",
            StepOutcome::Requested { .. } => "requested",
            StepOutcome::Failed => "failed",
        }
    }
}

/// One event. Every event carries the node, platform, adapter, endpoint class, service, class
/// and step (`null` where there is none, e.g. the endpoint of a failed probe).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct HealEvent {
    /// What happened.
    pub event: EventKind,
    /// Wall-clock time, milliseconds since the Unix epoch (from the loop's [`crate::Clock`]).
    pub at_ms: u64,
    /// The node.
    pub node_id: String,
    /// `macos`, `linux`, `other`.
    pub platform: String,
    /// The adapter that manages the service (`launchd`, `systemd`, `colima`, `memory`...).
    pub adapter_type: String,
    /// Which endpoint class answered the last passing probe.
    pub endpoint_class: Option<EndpointClass>,
    /// The service label.
    pub service: String,
    /// Its class.
    pub class: ServiceClass,
    /// The escalation step concerned.
    pub step: Option<Step>,
    /// The attempt number within the episode, for heal events.
    pub attempt: Option<u32>,
    /// The error's kind (`timeout`, `not-found`, `binary-not-found`, `still-down`...).
    pub error_kind: Option<FailureKind>,
    /// Why a heal was held back (`dependency colima is down`, `breaker open`).
    pub cause: Option<String>,
    /// What the step did, for heal events.
    pub outcome: Option<StepOutcome>,
    /// A human sentence.
    pub detail: String,
}

impl HealEvent {
    /// The event with secret-named values in its text redacted (`process_manager::redact`):
    /// what every sink, the log and subscribers get.
    pub fn redacted(&self) -> HealEvent {
        let shown = |t: &str| process_manager::redact::redact_text(t).into_owned();
        HealEvent {
            detail: shown(&self.detail),
            cause: self.cause.as_deref().map(shown),
            ..self.clone()
        }
    }

    /// The event as one line of JSON (no trailing newline).
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| {
            format!(
                "{{\"event\":\"{}\",\"serialize_error\":{:?}}}",
                self.event,
                e.to_string()
            )
        })
    }

    /// Sends the event to `tracing` (target `joelclaw::heal`) with every tag as a field. Failures
    /// are warnings; the rest is info.
    pub(crate) fn trace(&self) {
        let endpoint = self.endpoint_class.map(|c| c.to_string());
        let step = self.step.map(|s| s.to_string());
        macro_rules! emit {
            ($level:ident) => {
                tracing::$level!(
                    target: "joelclaw::heal",
                    event = self.event.as_str(),
                    node_id = %self.node_id,
                    platform = %self.platform,
                    adapter_type = %self.adapter_type,
                    endpoint_class = endpoint.as_deref(),
                    service = %self.service,
                    class = %self.class,
                    step = step.as_deref(),
                    attempt = self.attempt,
                    error_kind = self.error_kind.map(FailureKind::as_str),
                    cause = self.cause.as_deref(),
                    "{}",
                    self.detail
                )
            };
        }
        if self.event.is_warning() {
            emit!(warn)
        } else {
            emit!(info)
        }
    }
}

/// Where events go besides `tracing`.
pub trait EventSink: Send + Sync {
    /// Receives one event. Must not block for long: it runs inside the tick.
    fn emit(&self, event: &HealEvent);
}

/// Writes each event as one JSON line to a writer (a file, stdout), flushing after each line so
/// an agent tailing it sees events at once.
pub struct JsonLinesSink<W: Write + Send> {
    out: Mutex<W>,
}

impl<W: Write + Send> JsonLinesSink<W> {
    /// Wraps `out`.
    pub fn new(out: W) -> Self {
        JsonLinesSink {
            out: Mutex::new(out),
        }
    }

    /// Returns the writer.
    pub fn into_inner(self) -> W {
        self.out.into_inner().unwrap_or_else(|e| e.into_inner())
    }
}

impl<W: Write + Send> EventSink for JsonLinesSink<W> {
    fn emit(&self, event: &HealEvent) {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        // A full disk or closed pipe must not stop the loop; tracing still has the event.
        let _ = writeln!(out, "{}", event.to_json_line()).and_then(|_| out.flush());
    }
}

/// Keeps every event in memory (tests, and callers that poll).
#[derive(Debug, Default)]
pub struct MemorySink {
    events: Mutex<Vec<HealEvent>>,
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything received so far.
    pub fn events(&self) -> Vec<HealEvent> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl EventSink for MemorySink {
    fn emit(&self, event: &HealEvent) {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(event.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_events_error_kind_keeps_the_name_it_came_with() {
        let ports = [
            ErrorKind::NotFound,
            ErrorKind::PermissionDenied,
            ErrorKind::Unavailable,
            ErrorKind::Timeout,
            ErrorKind::NotSupported,
            ErrorKind::InvalidLabel,
            ErrorKind::InvalidInput,
            ErrorKind::Parse,
            ErrorKind::Backend,
        ];
        for k in ports {
            assert_eq!(FailureKind::from(k).as_str(), k.as_str());
        }
        let probes = [
            ProbeFailure::NotRunning,
            ProbeFailure::SupervisorRestarting,
            ProbeFailure::Starting,
            ProbeFailure::NotInstalled,
            ProbeFailure::Unhealthy,
            ProbeFailure::Unreachable,
            ProbeFailure::Timeout,
            ProbeFailure::BinaryNotFound,
            ProbeFailure::ManagerUnavailable,
            ProbeFailure::Error,
        ];
        for f in probes {
            assert_eq!(FailureKind::from(f).as_str(), f.as_str());
        }
        let mut e = event();
        e.error_kind = Some(FailureKind::StillDown);
        let json = e.to_json_line();
        assert!(json.contains(r#""error_kind":"still-down""#), "{json}");
        let back: HealEvent = serde_json::from_str(&json).unwrap();
        assert_eq!(back, e);
    }

    fn event() -> HealEvent {
        HealEvent {
            event: EventKind::BreakerHalfOpen,
            at_ms: 5,
            node_id: "n1".into(),
            platform: "linux".into(),
            adapter_type: "systemd".into(),
            endpoint_class: Some(EndpointClass::Vm),
            service: "redis".into(),
            class: ServiceClass::InfraCritical,
            step: Some(Step::HealSubstrate),
            attempt: Some(2),
            error_kind: None,
            cause: None,
            outcome: Some(StepOutcome::SubstrateStarted {
                result: EnsureRunningOutcome::Started,
            }),
            detail: "x".into(),
        }
    }

    #[test]
    fn json_line_has_dotted_names_and_every_tag() {
        let line = event().to_json_line();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["event"], "breaker.half_open");
        assert_eq!(v["endpoint_class"], "vm");
        assert_eq!(v["class"], "infra-critical");
        assert_eq!(v["step"], "heal-substrate");
        assert_eq!(v["outcome"]["kind"], "substrate-started");
        assert_eq!(v["outcome"]["result"], "started");
        for key in ["node_id", "platform", "adapter_type", "service"] {
            assert!(v[key].is_string(), "{key} in {line}");
        }
        let back: HealEvent = serde_json::from_str(&line).unwrap();
        assert_eq!(back, event());
    }

    /// Records the fields of every tracing event (a minimal subscriber; the library installs
    /// none of its own).
    /// A traced event: its level and its fields as text.
    type Traced = (tracing::Level, Vec<(String, String)>);

    #[derive(Default, Clone)]
    struct Recorder {
        events: std::sync::Arc<Mutex<Vec<Traced>>>,
    }

    struct Fields(Vec<(String, String)>);

    impl tracing::field::Visit for Fields {
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
            self.0
                .push((field.name().to_string(), format!("{value:?}")));
        }
        fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
            self.0.push((field.name().to_string(), value.to_string()));
        }
    }

    impl tracing::Subscriber for Recorder {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            let mut fields = Fields(Vec::new());
            event.record(&mut fields);
            self.events
                .lock()
                .unwrap()
                .push((*event.metadata().level(), fields.0));
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    #[test]
    fn traced_with_every_tag_as_a_field() {
        let recorder = Recorder::default();
        tracing::subscriber::with_default(recorder.clone(), || {
            event().trace();
            HealEvent {
                event: EventKind::HealFailed,
                ..event()
            }
            .trace();
        });
        let seen = recorder.events.lock().unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].0, tracing::Level::INFO);
        assert_eq!(seen[1].0, tracing::Level::WARN);
        let field = |name: &str| {
            seen[0]
                .1
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(field("event").as_deref(), Some("breaker.half_open"));
        assert_eq!(field("node_id").as_deref(), Some("n1"));
        assert_eq!(field("platform").as_deref(), Some("linux"));
        assert_eq!(field("adapter_type").as_deref(), Some("systemd"));
        assert_eq!(field("endpoint_class").as_deref(), Some("vm"));
        assert_eq!(field("service").as_deref(), Some("redis"));
        assert_eq!(field("class").as_deref(), Some("infra-critical"));
        assert_eq!(field("step").as_deref(), Some("heal-substrate"));
    }

    #[test]
    fn json_lines_sink_writes_one_line_per_event() {
        let sink = JsonLinesSink::new(Vec::new());
        sink.emit(&event());
        sink.emit(&event());
        let text = String::from_utf8(sink.into_inner()).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(text.ends_with('\n'));
    }
}
