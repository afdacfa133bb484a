//! One module per verb: its clap arguments and its `exec`, which returns the [`Report`] or
//! [`Failure`] that the command line prints. Verbs share [`crate::setup`] (inventory, state folder,
//! identity, runtime), [`crate::compose`] (the adapters) and [`crate::output`]; no verb uses
//! another, except `bootstrap`, which sequences `apply`, `install-self` and `audit`.
//!
//! [`Report`]: crate::output::Report
//! [`Failure`]: crate::output::Failure

pub mod apply;
pub mod audit;
pub mod bootstrap;
pub mod demo_service;
pub mod env_exec;
pub mod fleet;
pub mod gate;
pub mod identity;
pub mod inspect;
pub mod install_self;
pub mod logs;
pub mod run;
pub mod service;
pub mod status;
