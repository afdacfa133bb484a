//! The joelclaw node agent as a library: the command line ([`cli`]) over one module per verb
//! ([`verbs`]), the composition root ([`compose`]), the embedded supervisor, the audit policy,
//! the event sink and the output envelope. The `joelclaw-node` binary is a thin `main` over
//! [`cli::main`].
//!
//! Layers, each using only those below it: `cli` → `verbs` → `setup`, `audit`, `demo`, `sink`,
//! `publish`, `agent_client` → `compose` → `embedded`, `unprivileged`; `output` is used by `cli`,
//! `verbs` and `setup`; `api` serves the running agent and `agent_client` is the verbs' way to it;
//! `redacted_log` (the log writer) by `verbs::run`. Every output path redacts secrets through
//! `process_manager::redact`.

pub mod agent_client;
pub mod api;
pub mod audit;
pub mod cli;
pub mod compose;
pub mod demo;
pub mod embedded;
pub mod output;
pub mod publish;
pub mod redacted_log;
pub mod rounds;
pub mod setup;
pub mod sink;
pub mod unprivileged;
pub mod verbs;
