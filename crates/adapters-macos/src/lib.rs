//! macOS adapters: launchd and Colima behind the platform-neutral ports, so the heal loop and
//! the CLI never call `launchctl` or `colima` themselves.
//!
//! - [`LaunchdProcessManager`] implements `ProcessManagerPort` over the modern `launchctl` verbs
//!   and plists generated from a `ServiceConfig`, aware of launchd's domains (`system`,
//!   `gui/<uid>`, `user/<uid>`).
//! - [`ColimaRuntime`] is the Colima VM as a `SubstratePort` over the `colima` CLI (its engine is
//!   the Docker Engine on the VM's socket), with a short status cache and a pluggable fast [`HealthCheck`].
//!
//! Both compile on every OS: they run their tools by argv (found on `PATH` with `which`, or at a
//! configured path) with a deadline on every call, so their tests run on Linux against faithful
//! fakes (`tests/fake/`) and real captured outputs (`tests/fixtures/`). The parsers are
//! public ([`launchd::parse`], [`colima::parse`]) for tools that read the same outputs.

pub mod colima;
mod command;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod launchd;

pub use colima::{ColimaConfig, ColimaRuntime, FnHealthCheck, HealthCheck};
pub use launchd::{LaunchdConfig, LaunchdProcessManager, ServiceAccount, UserDomain};
