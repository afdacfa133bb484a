//! Drift: a service's installed definition no longer being the desired one (a unit flipped to
//! `User=root`, its hardening removed). How a manager renders and where it keeps a definition
//! is the adapters' business, so the binary hands the loop a [`DefinitionCheck`] per manager
//! (the same comparison `apply` makes); the loop runs it every `loop.drift_every` rounds of a
//! service and repairs drift with its own `definition.drifted` event, even while the service
//! answers.

use std::fmt;

use process_manager::ServiceConfig;

/// Compares a service's installed definition with the desired one.
pub trait DefinitionCheck: Send + Sync + fmt::Debug {
    /// `None`: as desired, or nothing to compare (not installed is the probes' to say);
    /// `Some(what)`: drifted, `what` says how (for people). Quick and local (a file read).
    fn drifted(&self, desired: &ServiceConfig) -> Option<String>;
}
