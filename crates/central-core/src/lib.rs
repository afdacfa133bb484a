//! The platform-neutral core of a joelclaw node: the heal loop with its inventory, probes,
//! escalation policies and telemetry, written against the ports only (no adapter, no
//! `bollard`, no spawned supervisor CLI); and the forbidden-pattern [`gate`] that keeps the
//! architecture honest in this and other repositories.

pub mod gate;
pub mod inventory;
