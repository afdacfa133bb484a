//! `fleet`: this node seen from Central. Each agent that names Central's Redis (`[fleet] redis =
//! "redis://…"`, or `rediss://…` for TLS, see [`FleetConfig`]) keeps a heartbeat there with its identity and latest status summary, and appends
//! its heal events to one Redis Stream; `status --fleet` and `events --fleet` read them back.
//!
//! Redis is an existing engine Central already runs: no home-made gossip or consensus. Its being
//! slow or down must never slow or stop healing, so the loop only ever hands events and summaries
//! to a bounded queue ([`FleetPublisher`]); one task drains it into Redis with a deadline on every
//! call, reconnects with backoff, drops (and counts) what does not fit, and reports the count in
//! its next heartbeat.
//!
//! Keys (under a prefix, `joelclaw` by default), see [`keys`]:
//! - `{prefix}:nodes` — a hash, node id → the node's last [`NodeHeartbeat`] (kept after the node
//!   stops, so a node that went away is listed as stale rather than forgotten);
//! - `{prefix}:status` — a hash, node id → the node's latest status snapshot (every service's
//!   health, state, breaker, last event), written with each heartbeat;
//! - `{prefix}:alive:{node_id}` — set with a TTL on each heartbeat; its absence marks the node stale;
//! - `{prefix}:events` — the stream of heal events (`node_id`, `event` fields), capped with
//!   `MAXLEN ~`.

mod config;
pub mod keys;
mod publisher;
mod reader;
mod record;
mod tls;

pub use config::{FleetConfig, FleetError};
pub use publisher::{FleetPublisher, PublisherStats};
pub use reader::{
    fleet_status, latest_events, node_status, read_events, EventReader, FleetEvent, FleetNode,
};
pub use record::{NodeHeartbeat, NodeRecord, NodeSummary};
