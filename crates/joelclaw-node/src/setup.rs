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

/// The node's identity. An inventory that names the node (`node.id`) stands in for `NODE_ID`
/// (and wins over it), so a machine with an unusable hostname still runs when its inventory
/// says who it is, and every output of one command carries one node id.
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
    // Resolved once, one answer: the inventory's `node.id` is the node's id (as the loop's
    // event tags have it), so identity and events never disagree in one output.
    match inventory.and_then(|i| i.node.id.as_deref()) {
        Some(node_id) => {
            NodeIdentity::resolve(&InventoryNodeId(node_id)).map_err(|e| Failure::input(command, e))
        }
        None => NodeIdentity::detect().map_err(|e| Failure::input(command, e)),
    }
}

/// Checks an inventory the way `run` does before it heals (it loads and parses, has something
/// to heal, names a node this machine can be, and builds into a heal loop: adapters and the
/// service graph), without starting anything or writing state. Whatever installs the agent
/// calls this first, so a boot-time daemon is never written for an inventory `run` refuses.
pub fn check_as_run(command: &'static str, path: &Path) -> Result<Inventory, Failure> {
    let inventory = load(command, path)?;
    inventory
        .check_runnable()
        .map_err(|e| Failure::input(command, e))?;
    let identity = node_identity(command, Some(&inventory))?;
    let rt = runtime(command)?;
    rt.block_on(async {
        // Observe: the embedded supervisor is only looked at, so nothing is created.
        let unused_state = Path::new("/nonexistent/joelclaw-node-check");
        let comp = compose::compose(&inventory, unused_state, compose::Mode::Observe)
            .map_err(|e| Failure::input(command, e))?;
        let tags = central_core::NodeTags::from_identity(&identity, &inventory);
        central_core::HealLoop::new(
            &inventory,
            comp.ports(),
            central_core::LoopOptions::new(tags),
        )
        .map_err(|e| Failure::input(command, e))?;
        Ok::<(), Failure>(())
    })?;
    Ok(inventory)
}
