//! The outer deadlines the composition root puts around every adapter, from the inventory:
//! the heal loop relies on them and writes no timeout of its own around a port call.

use std::sync::Arc;
use std::time::Duration;

use container_runtime::{RuntimeOperation, SharedContainerRuntime};
use process_manager::{Operation, SharedProcessManager};

use crate::inventory::Inventory;

/// The longest probe deadline in `inventory`, so the outer bound on a read never cuts a probe
/// shorter than its own `timeout`.
fn longest_probe(inventory: &Inventory) -> Duration {
    inventory
        .services
        .iter()
        .flat_map(|s| s.probes.iter().map(|p| p.timeout))
        .chain(inventory.substrate.as_ref().map(|s| s.timeout))
        .max()
        .unwrap_or_default()
}

/// `manager` behind an outer deadline: `loop.heal_timeout` for every call, and no less than the
/// longest probe deadline for the reads (`inspect`, `list`).
pub fn deadline_manager(
    manager: SharedProcessManager,
    inventory: &Inventory,
) -> SharedProcessManager {
    let heal = inventory.settings.heal_timeout;
    let read = heal.max(longest_probe(inventory));
    Arc::new(
        process_manager::WithDeadline::new(manager, heal)
            .with_deadline_for(Operation::Inspect, read)
            .with_deadline_for(Operation::List, read),
    )
}

/// `runtime` behind an outer deadline: `loop.heal_timeout` for the heal calls, no less than the
/// longest probe deadline for the reads, and `substrate.start_timeout` (if longer) for
/// `ensure_running`: bringing a VM up takes minutes, a service restart seconds.
pub fn deadline_runtime(
    runtime: SharedContainerRuntime,
    inventory: &Inventory,
) -> SharedContainerRuntime {
    let heal = inventory.settings.heal_timeout;
    let read = heal.max(longest_probe(inventory));
    let start = inventory
        .substrate
        .as_ref()
        .map_or(heal, |s| s.start_timeout.max(heal));
    let mut bounded = container_runtime::WithDeadline::new(runtime, read)
        .with_deadline_for(RuntimeOperation::RestartContainer, heal)
        .with_deadline_for(RuntimeOperation::EnsureRunning, start);
    for read_op in [
        RuntimeOperation::Health,
        RuntimeOperation::VmIp,
        RuntimeOperation::Uptime,
        RuntimeOperation::SshConfig,
        RuntimeOperation::InspectContainer,
        RuntimeOperation::ListContainers,
    ] {
        bounded = bounded.with_deadline_for(read_op, read);
    }
    Arc::new(bounded)
}
