//! OS plumbing shared by the adapters, the heal loop and the node agent, so each piece of it
//! exists once:
//!
//! - [`fs`]: write a file atomically (temporary file in the same folder, mode, fsync, rename,
//!   folder fsync), optionally only when its bytes change and only into a safe folder;
//! - [`command`]: run a program by argv with a deadline, in its own process group, so a
//!   deadline or a cancelled call kills everything it started;
//! - [`program`]: find a program on `PATH`;
//! - [`ports`]: who listens on a local TCP port (pid and name), for a probe that failed;
//! - [`uptime`]: how long processes have been running, by pid (`/proc`, else one `ps`);
//! - [`poll`]: wait, within a bound, until a condition holds (for tests).
//!
//! It knows nothing of services or probes, nor of the port crates: the port crates stay free of I/O and do not
//! depend on it.

pub mod command;
pub mod fs;
pub mod poll;
pub mod ports;
pub mod program;
pub mod uptime;
