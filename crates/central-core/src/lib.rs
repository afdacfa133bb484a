//! The platform-neutral core of a joelclaw node: the heal loop with its inventory, probes,
//! escalation policies and telemetry, written against the ports only (no adapter, no
//! `bollard`, no spawned supervisor CLI).
//!
//! # Using the heal loop
//!
//! ```no_run
//! # async fn demo(
//! #     launchd: process_manager::SharedProcessManager,
//! #     colima: container_runtime::SharedContainerRuntime,
//! #     identity: node_identity::NodeIdentity,
//! # ) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use central_core::{HealLoop, Inventory, JsonLinesSink, LoopOptions, NodeTags, Ports};
//!
//! // (a) Parse: any error names file, line and key (`InventoryError`), and nothing runs.
//! let inventory = Inventory::load("central.toml")?;
//! // (f) Desired definitions, for `apply`.
//! for (service, config) in inventory.desired_configs() {
//!     println!("{} -> {}", service.label, config.program.display());
//! }
//! // (b) Build: adapters by the inventory's manager names, plus the container runtime.
//! let ports = Ports::new().with_manager("launchd", launchd).with_runtime(colima);
//! let options = LoopOptions::new(NodeTags::from_identity(&identity, &inventory))
//!     .with_state_dir("/var/lib/joelclaw/heal");
//! let mut heal = HealLoop::new(&inventory, ports, options)?;
//! // (d) Events: JSON lines to any writer, a broadcast feed, and `tracing` (target
//! //     `joelclaw::heal`; the binary installs the subscriber).
//! heal.add_sink(Arc::new(JsonLinesSink::new(std::io::stdout())));
//! let _feed = heal.subscribe();
//! // (e) One probe round for `status`, no heals, no events.
//! let status = heal.probe_round().await;
//! println!("{}", serde_json::to_string_pretty(&status)?);
//! // (c) Run until shutdown: any future, e.g. a `watch` channel turning true on SIGTERM.
//! let (_stop, mut stopped) = tokio::sync::watch::channel(false);
//! heal.run(async move {
//!     let _ = stopped.wait_for(|stop| *stop).await;
//! })
//! .await;
//! # Ok(()) }
//! ```
//!
//! - [`model`]: the domain (services, probes, endpoints, classes, the heal policy's validated
//!   [`Hysteresis`], [`Backoff`] and [`Breaker`], the substrate), plain data with no TOML.
//! - [`inventory`]: the TOML format (see its docs for an example file), [`Inventory::load`] /
//!   [`Inventory::parse`], [`InventoryError`] (`file:line:column: key: message`, with an
//!   [`InventoryErrorKind`]); [`Inventory::check_runnable`] refuses a file with nothing to heal.
//! - [`HealLoop`]: [`HealLoop::new`] (inventory + [`Ports`] + [`LoopOptions`], or a
//!   [`BuildError`] naming a missing adapter), [`HealLoop::run`], [`HealLoop::tick`] (one round,
//!   returns a [`TickReport`]), [`HealLoop::probe_round`] and [`HealLoop::status`] (a
//!   [`NodeStatus`] of [`ServiceSnapshot`]s: health, run state, pid, last probe, endpoint class,
//!   step, breaker, last event, heal in flight), [`HealLoop::add_sink`],
//!   [`HealLoop::subscribe`], [`HealLoop::set_probes`] (custom or scripted probes).
//! - [`events`]: [`HealEvent`] with a closed [`EventKind`] (`probe.failed`, `probe.recovered`,
//!   `heal.started`, `heal.succeeded`, `heal.failed`, `heal.suppressed`, `breaker.opened`,
//!   `breaker.half_open`, `breaker.closed`, `heal.escalated`, `manager.unreachable`,
//!   `manager.recovered`, `definition.drifted`) and the escalation [`Step`];
//!   [`EventSink`], [`JsonLinesSink`], [`MemorySink`].
//! - [`probe`]: the [`Probe`] trait, the real probes and [`ScriptedProbe`].
//! - [`drift`]: [`drift::DefinitionCheck`], how `run` finds a definition changed under it.
//! - [`agent_lock`]: one agent per state folder ([`agent_lock::AgentLock`]).
//! - [`state`]: the persisted state ([`state::StateStore`], atomic 0600 writes) and the
//!   injected [`Clock`].
//!
//! Time is tokio's (`tokio::time`), so the loop runs on paused time in tests; jitter comes from
//! a seeded RNG ([`LoopOptions::with_seed`]).

pub mod agent_lock;
pub mod deadlines;
pub mod drift;
pub mod events;
mod graph;
pub mod heal;
pub mod inventory;
pub mod model;
mod policy;
pub mod probe;
pub mod state;

pub use events::{
    EventKind, EventSink, FailureKind, HealEvent, JsonLinesSink, MemorySink, Step, StepOutcome,
};
pub use heal::{
    BuildError, Control, HealLoop, Health, LoopOptions, NodeStatus, NodeTags, Ports, ProbeSummary,
    ServiceSnapshot, Through, TickReport, Verb, VerbError, VerbOutcome, MIN_EARLY_TICK_GAP,
};
pub use inventory::{InventoryError, InventoryErrorKind};
pub use model::{
    Backoff, Breaker, HealPolicy, Hysteresis, Inventory, PolicyError, ServiceSpec, SubstrateSpec,
};
pub use probe::{Probe, ProbeFailure, ProbeResult, ScriptedProbe};
pub use state::{BreakerState, Clock, Desired};
