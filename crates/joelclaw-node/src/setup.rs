//! What the verbs over an inventory do first: read the inventory, find the state folder, know
//! the node, start an async runtime. Each failure comes back as the verb's [`Failure`].

use std::path::{Path, PathBuf};

use central_core::Inventory;
use node_identity::NodeIdentity;

use crate::compose::{self, default_state_dir};
use crate::output::Failure;

/// A small multi-threaded runtime for one verb.
pub fn runtime(command: &'static str) -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure::failed(command, format!("cannot start the async runtime: {e}")))
}

/// Reads and checks the inventory; a bad one is bad input (exit 2).
pub fn load(command: &'static str, path: &Path) -> Result<Inventory, Failure> {
    compose::load_inventory(path).map_err(|e| Failure::input(command, e))
}

/// The state folder: `--state-dir`, else the inventory's `loop.state_dir`, else the user's
/// state folder.
pub fn state_dir(
    command: &'static str,
    flag: Option<PathBuf>,
    inventory: &Inventory,
) -> Result<PathBuf, Failure> {
    flag.or_else(|| inventory.settings.state_dir.clone())
        .or_else(default_state_dir)
        .ok_or_else(|| {
            Failure::input(
                command,
                "no state folder: pass --state-dir or set loop.state_dir",
            )
        })
}

/// The node's identity. An inventory that names the node (`node.id`) stands in for `NODE_ID`,
/// so a machine with an unusable hostname still runs when its inventory says who it is.
pub fn node_identity(
    command: &'static str,
    inventory: Option<&Inventory>,
) -> Result<NodeIdentity, Failure> {
    struct InventoryNodeId<'a>(&'a str);
    impl node_identity::Environment for InventoryNodeId<'_> {
        fn var(&self, key: &str) -> Option<String> {
            if key == "NODE_ID" {
                return Some(self.0.to_string());
            }
            node_identity::SystemEnvironment.var(key)
        }
        fn hostname(&self) -> Option<String> {
            node_identity::SystemEnvironment.hostname()
        }
        fn platform_home(&self) -> Option<PathBuf> {
            node_identity::SystemEnvironment.platform_home()
        }
    }
    let detected = NodeIdentity::detect();
    match (detected, inventory.and_then(|i| i.node.id.as_deref())) {
        (Ok(id), _) => Ok(id),
        (Err(_), Some(node_id)) => {
            NodeIdentity::resolve(&InventoryNodeId(node_id)).map_err(|e| Failure::input(command, e))
        }
        (Err(e), None) => Err(Failure::input(command, e)),
    }
}
