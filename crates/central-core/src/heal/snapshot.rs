//! What the loop reports: health, the last probe round, a service's and the node's snapshot,
//! and what one tick did.

use process_manager::RunState;
use serde::{Deserialize, Serialize};

use crate::events::{EventKind, HealEvent, Step};
use crate::model::{EndpointClass, Role, ServiceClass};
use crate::probe::ProbeFailure;
use crate::state::{AttemptRecord, BreakerState, Desired};

/// Health as the loop sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Health {
    /// Not probed yet, or its manager did not answer the last round.
    Unknown,
    /// Passing.
    Healthy,
    /// Failing, not yet for `failures_to_down` rounds (or recovering, not yet for
    /// `passes_to_up`).
    Failing,
    /// Down: being healed, suppressed or escalated.
    Unhealthy,
    /// Stopped by request: not healed until started.
    Stopped,
    /// Disabled by request: not healed until enabled.
    Disabled,
}

impl Health {
    /// Every health value, in the order above.
    pub const ALL: [Health; 6] = [
        Health::Unknown,
        Health::Healthy,
        Health::Failing,
        Health::Unhealthy,
        Health::Stopped,
        Health::Disabled,
    ];

    /// Its name, as JSON has it (`unhealthy`).
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Healthy => "healthy",
            Health::Failing => "failing",
            Health::Unhealthy => "unhealthy",
            Health::Stopped => "stopped",
            Health::Disabled => "disabled",
        }
    }
}

/// The last probe round of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ProbeSummary {
    /// When (ms since the epoch).
    pub at_ms: u64,
    /// Whether every probe passed.
    pub passed: bool,
    /// The first failure.
    pub failure: Option<ProbeFailure>,
    /// The endpoint class that answered.
    pub endpoint_class: Option<EndpointClass>,
    /// What was seen.
    pub detail: String,
    /// How long the whole round took (every probe of the service, in order), in ms: what the
    /// agent's `joelclaw_probe_duration_seconds` histogram observes. 0 in a snapshot written
    /// before it was measured.
    #[serde(default)]
    pub duration_ms: u64,
}

/// One service in a [`NodeStatus`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ServiceSnapshot {
    /// Its label.
    pub label: String,
    /// The inventory's manager name, or `substrate`.
    pub manager: String,
    /// The adapter (`launchd`, `memory`, `colima`...).
    pub adapter_type: String,
    /// Its class.
    pub class: ServiceClass,
    /// Its health.
    pub health: Health,
    /// The run state, where a process probe saw one.
    pub run_state: Option<RunState>,
    /// The pid, where a process probe saw one.
    pub pid: Option<u32>,
    /// The manager's last answer about it (state, pid, restarts, last exit, enablement),
    /// where a process probe asked: `status` shows it without asking the manager again.
    #[serde(default)]
    pub process: Option<process_manager::ServiceStatus>,
    /// The last probe round.
    pub last_probe: Option<ProbeSummary>,
    /// The endpoint class of the last pass.
    pub endpoint_class: Option<EndpointClass>,
    /// The escalation step it is at (none when healthy).
    pub step: Option<Step>,
    /// The breaker.
    pub breaker: BreakerState,
    /// The last event about it.
    pub last_event: Option<EventKind>,
    /// The heal attempt waiting for its result.
    pub in_flight: Option<AttemptRecord>,
    /// What a person asked for (`running` unless stopped or disabled by request).
    #[serde(default)]
    pub desired: Desired,
    /// Watched and escalated, never acted on by this node.
    #[serde(default)]
    pub monitor_only: bool,
}

/// A node status snapshot for `status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct NodeStatus {
    /// The node id.
    pub node_id: String,
    /// The platform.
    pub platform: String,
    /// The role.
    pub role: Role,
    /// When (ms since the epoch).
    pub at_ms: u64,
    /// The substrate first (if any), then services in inventory order.
    pub services: Vec<ServiceSnapshot>,
    /// Problems with persisted state (a corrupt file moved aside, a failed write).
    pub warnings: Vec<String>,
}

/// What one tick did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TickReport {
    /// The events, in order.
    pub events: Vec<HealEvent>,
    /// Heal calls made.
    pub heals: usize,
}

impl TickReport {
    /// `(event, service)` pairs, for compact assertions.
    pub fn summary(&self) -> Vec<(EventKind, String)> {
        self.events
            .iter()
            .map(|e| (e.event, e.service.clone()))
            .collect()
    }
}
