//! The joelclaw node agent as a library: the embedded supervisor, the audit policy, the output
//! envelope and the CLI verbs. The `joelclaw-node` binary is a thin `main` over [`cli::main`].

pub mod agent;
pub mod audit;
pub mod cli;
pub mod compose;
pub mod demo;
pub mod embedded;
pub mod output;
pub mod sink;
