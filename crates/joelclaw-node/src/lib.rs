//! The joelclaw node agent as a library: the embedded supervisor, the composition of adapters
//! from an inventory, and the CLI verbs. The `joelclaw-node` binary is a thin `main` over it.

pub mod embedded;
pub mod fsutil;
