//! What a loop is built from besides the inventory: the node's tags, the adapters (`Ports`),
//! the options (state folder, clock, seed), and why a build can fail.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use container_runtime::SharedContainerRuntime;
use process_manager::SharedProcessManager;
use serde::{Deserialize, Serialize};

use crate::deadlines::{deadline_manager, deadline_runtime};
use crate::model::Inventory;
use crate::state::Clock;

/// The least time between two early probes of one service woken by its pushed events (an event
/// storm cannot become a probe storm); the first one runs at once.
pub const MIN_EARLY_TICK_GAP: Duration = Duration::from_secs(1);

/// The tags every event carries about the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeTags {
    /// The node id (the inventory's `node.id` wins over the resolved one).
    pub node_id: String,
    /// `macos`, `linux`, `other`.
    pub platform: String,
}

impl NodeTags {
    /// Tags from explicit values.
    pub fn new(node_id: impl Into<String>, platform: impl Into<String>) -> Self {
        NodeTags {
            node_id: node_id.into(),
            platform: platform.into(),
        }
    }

    /// Tags from the resolved identity, with the inventory's `node.id` override applied.
    pub fn from_identity(identity: &node_identity::NodeIdentity, inventory: &Inventory) -> Self {
        NodeTags {
            node_id: inventory
                .node
                .id
                .clone()
                .unwrap_or_else(|| identity.node_id.value.clone()),
            platform: identity.platform.value.to_string(),
        }
    }
}

/// The adapters the loop acts through: process managers by inventory name (`launchd`,
/// `systemd`, `embedded`, `null`) and the container runtime.
#[derive(Debug, Clone, Default)]
pub struct Ports {
    pub(super) managers: BTreeMap<String, SharedProcessManager>,
    pub(super) runtime: Option<SharedContainerRuntime>,
}

impl Ports {
    /// No adapters yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves services whose `manager` is `name`.
    pub fn with_manager(mut self, name: impl Into<String>, manager: SharedProcessManager) -> Self {
        self.managers.insert(name.into(), manager);
        self
    }

    /// The container runtime (the substrate and `manager = "container"` services).
    pub fn with_runtime(mut self, runtime: SharedContainerRuntime) -> Self {
        self.runtime = Some(runtime);
        self
    }

    /// Every adapter behind [`deadline_manager`]/[`deadline_runtime`] for `inventory`. The loop
    /// puts no deadline of its own around a port call: give it bounded ports.
    pub fn with_deadlines(self, inventory: &Inventory) -> Self {
        Ports {
            managers: self
                .managers
                .into_iter()
                .map(|(name, m)| (name, deadline_manager(m, inventory)))
                .collect(),
            runtime: self.runtime.map(|rt| deadline_runtime(rt, inventory)),
        }
    }
}

/// How a loop is built besides the inventory: tags, state directory, clock and RNG seed.
#[derive(Debug, Clone)]
pub struct LoopOptions {
    /// Event tags.
    pub tags: NodeTags,
    /// Where state is persisted; `None` uses the inventory's `loop.state_dir`, and if that is
    /// absent too nothing is persisted.
    pub state_dir: Option<PathBuf>,
    /// The wall clock (driven by tokio's clock).
    pub clock: Clock,
    /// Seed of the jitter RNG.
    pub rng_seed: u64,
}

impl LoopOptions {
    /// Options with the system clock and a random seed.
    pub fn new(tags: NodeTags) -> Self {
        LoopOptions {
            tags,
            state_dir: None,
            clock: Clock::system(),
            rng_seed: fastrand::u64(..),
        }
    }

    /// Persists state in `dir`.
    pub fn with_state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = Some(dir.into());
        self
    }

    /// Uses `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Seeds the jitter RNG.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.rng_seed = seed;
        self
    }
}

/// Why a loop could not be built from an inventory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A service names a manager the caller gave no adapter for.
    #[error("service {service} uses manager {manager:?}, but no {manager} adapter was given")]
    MissingManager {
        /// The service.
        service: String,
        /// The manager name.
        manager: String,
    },
    /// The substrate, a container service or a container probe needs the runtime.
    #[error("{what} needs the container runtime, but none was given")]
    MissingRuntime {
        /// What needs it.
        what: String,
    },
}
