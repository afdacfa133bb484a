//! The process-manager port: what the heal loop and the CLI need from launchd, systemd or the
//! embedded supervisor, in platform-neutral types.
//!
//! - [`ServiceLabel`]: the validated name used everywhere; bad input is refused before any file
//!   or process is touched.
//! - [`ServiceConfig`]: the desired definition; [`ServiceStatus`]: what the manager says.
//! - [`ProcessManagerPort`]: the six idempotent operations, each with an outcome that says what
//!   happened, and [`Capabilities`] so the heal loop does not fight the supervisor.
//! - [`env_file`]: environment files in systemd's `EnvironmentFile=` syntax, read the same way
//!   by every adapter that reads them itself.
//! - [`redact`]: which names hold secrets, and how any output shows configs and messages
//!   without their values.
//! - [`ProcessError`]: one error enum by meaning, with [`ProcessError::is_retryable`].
//! - [`MemoryProcessManager`]: the in-memory adapter, also the production `null` adapter (it
//!   keeps nothing per call).
//! - [`WithDeadline`]: an outer deadline around any adapter, per operation.
//! - `testkit` (feature): the conformance suite every adapter runs
//!   ([`conformance_tests!`]), and the `Faulty`/`Recording` wrappers for tests.
//!
//! This crate spawns nothing and knows no adapter.

mod config;
pub mod env_file;
mod error;
mod hardening;
mod label;
mod memory;
mod port;
pub mod redact;
pub mod serde_duration;
mod status;
#[cfg(feature = "testkit")]
pub mod testkit;

// For the conformance macro's expansion in other crates.
#[cfg(feature = "testkit")]
#[doc(hidden)]
pub use port_kit as __port_kit;
mod triggers;

pub use config::{
    check_account_name, looks_like_secret, ProcessType, RestartPolicy, ServiceConfig, ServiceScope,
    StartLimit,
};
pub use error::{BoxError, ErrorKind, Operation, ProcessError};
pub use hardening::{Hardening, Relax};
pub use label::{LabelError, LabelPattern, LabelRule, ServiceLabel, MAX_LABEL_LEN};
pub use memory::MemoryProcessManager;
pub use port::{ProcessManagerPort, SharedProcessManager, WithDeadline};
pub use status::{
    Capabilities, DisableOutcome, EnableOutcome, ExitStatus, LogSource, RestartOutcome, RunState,
    ServiceEvent, ServiceStatus, StopOutcome,
};
pub use triggers::{CalendarInterval, Triggers};
