//! The Redis key names, in one place, so the writer and every reader agree.

/// The hash of every node's last heartbeat (node id → JSON).
pub fn nodes(prefix: &str) -> String {
    format!("{prefix}:nodes")
}

/// The hash of every node's latest status snapshot (node id → the `NodeStatus` JSON, as the
/// local API's `/v1/status` has it), written with each heartbeat.
pub fn status(prefix: &str) -> String {
    format!("{prefix}:status")
}

/// The key whose presence (it expires after the heartbeat TTL) says the node is alive.
pub fn alive(prefix: &str, node_id: &str) -> String {
    format!("{prefix}:alive:{node_id}")
}

/// The stream of heal events of every node.
pub fn events(prefix: &str) -> String {
    format!("{prefix}:events")
}
