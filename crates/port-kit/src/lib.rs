//! What the ports (`process-manager`, `container-runtime`) share, so that both have one shape:
//!
//! - [`ErrorKind`]: the stable, `Copy` name of a port error's meaning, for events and telemetry.
//! - [`WithDeadline`]: an outer deadline around any adapter, per operation.
//! - `testkit` (feature): [`Faulty`] (fault and hang injection) and [`Recording`] (a bounded
//!   call log with exact counts), wrappers around any adapter.
//!
//! Each port crate implements its trait for these wrappers and names them with its own
//! operation and error types (`process_manager::WithDeadline<P>` and so on). This crate knows
//! no port and does no I/O.

mod deadline;
mod kind;
#[cfg(feature = "testkit")]
mod testkit;

pub use deadline::WithDeadline;
pub use kind::ErrorKind;
#[cfg(feature = "testkit")]
pub use testkit::{Call, Fault, Faulty, Injection, Recording, DEFAULT_LOG_CAPACITY};
