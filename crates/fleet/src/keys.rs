//! The Redis key names, in one place, so the writer and every reader agree.

/// The hash of every node's last heartbeat (node id → JSON).
pub fn nodes(prefix: &str) -> String {
    format!("{prefix}:nodes")
}

/// The key whose presence (it expires after the heartbeat TTL) says the node is alive.
pub fn alive(prefix: &str, node_id: &str) -> String {
    format!("{prefix}:alive:{node_id}")
}

/// The stream of heal events of every node.
pub fn events(prefix: &str) -> String {
    format!("{prefix}:events")
}
