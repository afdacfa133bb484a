//! The platform-neutral core of a joelclaw node: the heal loop with its inventory, probes,
//! escalation policies and telemetry, written against the ports only (no adapter, no
//! `bollard`, no spawned supervisor CLI); and the forbidden-pattern [`gate`] that keeps the
//! architecture honest in this and other repositories.

pub mod events;
pub mod gate;
pub mod heal;
pub mod inventory;
mod policy;
pub mod probe;
pub mod state;

pub use events::{EventKind, EventSink, HealEvent, JsonLinesSink, MemorySink, Step};
pub use heal::{
    BuildError, HealLoop, Health, LoopOptions, NodeStatus, NodeTags, Ports, ProbeSummary,
    ServiceSnapshot, TickReport,
};
pub use inventory::{Inventory, InventoryError, InventoryErrorKind, ServiceSpec};
pub use probe::{Probe, ProbeFailure, ProbeResult, ScriptedProbe};
pub use state::{BreakerState, Clock};
