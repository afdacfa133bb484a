//! What a node publishes about itself.

use serde::{Deserialize, Serialize};

/// Who the node is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct NodeRecord {
    /// The node id (as `identity` resolves it).
    pub node_id: String,
    /// Its role (`central`, `relay`, `fleet`...).
    pub role: String,
    /// `macos`, `linux`, `other`.
    pub platform: String,
    /// The agent's version.
    pub version: String,
}

/// The node's services at its last probe round, in counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct NodeSummary {
    /// Services passing their probes.
    pub healthy: u32,
    /// Services failing or down.
    pub unhealthy: u32,
    /// Services not yet known (not probed, or their manager did not answer).
    pub unknown: u32,
    /// Services stopped or disabled by request (not healed, not a fault).
    #[serde(default)]
    pub stopped: u32,
    /// Services whose breaker is open (a person was called).
    pub open_breakers: u32,
    /// The labels of the services that are not healthy.
    pub unhealthy_services: Vec<String>,
}

/// One heartbeat: the node, its summary, and the publisher's own health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct NodeHeartbeat {
    /// Who.
    pub node: NodeRecord,
    /// Its services.
    pub summary: NodeSummary,
    /// When this heartbeat was written (ms since the epoch, the node's clock).
    pub at_ms: u64,
    /// How long the heartbeat stays valid (ms): the node is stale after it.
    pub ttl_ms: u64,
    /// Events this node could not publish since it started (queue full while Redis was away).
    pub dropped_events: u64,
}
