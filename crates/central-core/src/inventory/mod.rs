//! The inventory reader: a TOML file naming the node, its container substrate and its
//! services, each with a manager, a class, dependencies, probes, a heal policy and the desired
//! definition, read into the domain [`crate::model`].
//!
//! Reading is all-or-nothing: a bad file is an [`InventoryError`] naming the file, line and
//! key (the exact span of the value or key at fault), and no [`Inventory`] exists to act on.
//! The file as written lives in `raw`, the checks and defaults in `lower`.
//!
//! An example, the Central host's (`examples/central.toml` at the workspace root):
//!
//! ```toml
#![doc = include_str!("../../../../examples/central.toml")]
//! ```

mod config;
mod container;
mod hooks;
mod lower;
mod probe;
mod publish;
mod raw;
#[cfg(test)]
mod tests;

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;

pub use lower::MAX_DURATION;
// The model's types are also reachable here, where they were first defined.
pub use crate::model::{
    Backoff, Breaker, ComposeService, Endpoint, EndpointClass, EngineTls, HealPolicy, Hysteresis,
    Inventory, LoopSettings, ManagerKind, ManagerSettings, NodeSpec, NotifySpec, PolicyError,
    ProbeCheck, ProbeSpec, Role, ServiceClass, ServiceSpec, SubstrateKind, SubstrateSpec,
};

/// What was wrong with an inventory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum InventoryErrorKind {
    /// The file could not be read.
    Io,
    /// Not valid TOML.
    Syntax,
    /// A key the inventory does not know.
    UnknownKey,
    /// A value of the wrong type.
    WrongType,
    /// A required key is absent.
    MissingKey,
    /// Two services with one label.
    DuplicateLabel,
    /// `depends_on` names no service.
    UnknownDependency,
    /// Services depend on each other in a circle.
    DependencyCycle,
    /// A duration that does not parse.
    BadDuration,
    /// A value out of range or otherwise invalid.
    Invalid,
    /// No service and no substrate (refused by [`Inventory::check_runnable`]).
    NothingToHeal,
}

/// A rejected inventory: file, line, column, key and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}:{column}: {key}: {message}", file.display())]
pub struct InventoryError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line (0 when the file could not be read).
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// The dotted key it concerns (`service.heal.grace`).
    pub key: String,
    /// The kind of problem.
    pub kind: InventoryErrorKind,
    /// What was wrong, and how to fix it.
    pub message: String,
}

impl Inventory {
    /// Reads and checks an inventory file (see [`Inventory::read_text`]).
    pub fn load(path: impl AsRef<Path>) -> Result<Inventory, InventoryError> {
        let path = path.as_ref();
        let text = Inventory::read_text(path)?;
        Inventory::parse(path, &text)
    }

    /// Reads an inventory file's text. Anything but a regular file (a FIFO, a device, a
    /// folder) is refused before it is read, so a FIFO cannot hang the agent: it is opened
    /// without blocking and checked on the open handle, so swapping the path for a FIFO
    /// between a check and the open changes nothing.
    pub fn read_text(path: impl AsRef<Path>) -> Result<String, InventoryError> {
        let path = path.as_ref();
        let io_error = |message: String| InventoryError {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            key: String::new(),
            kind: InventoryErrorKind::Io,
            message,
        };
        let not_regular = |kind: std::fs::FileType| {
            io_error(format!(
                "the inventory must be a regular file, and this is {}",
                describe_file_type(kind)
            ))
        };
        let meta = std::fs::metadata(path)
            .map_err(|e| io_error(format!("cannot read the inventory: {e}")))?;
        if !meta.is_file() {
            return Err(not_regular(meta.file_type()));
        }
        let mut options = std::fs::OpenOptions::new();
        options.read(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.custom_flags(libc::O_NONBLOCK);
        }
        let mut file = options
            .open(path)
            .map_err(|e| io_error(format!("cannot read the inventory: {e}")))?;
        let meta = file
            .metadata()
            .map_err(|e| io_error(format!("cannot read the inventory: {e}")))?;
        if !meta.is_file() {
            return Err(not_regular(meta.file_type()));
        }
        let mut text = String::new();
        file.read_to_string(&mut text)
            .map_err(|e| io_error(format!("cannot read the inventory: {e}")))?;
        Ok(text)
    }

    /// Checks inventory text; `file` is only used in messages.
    pub fn parse(file: impl AsRef<Path>, text: &str) -> Result<Inventory, InventoryError> {
        lower::Parser {
            file: file.as_ref().to_path_buf(),
            src: text,
        }
        .parse()
    }

    /// Refuses an inventory with nothing to heal (no service and no substrate): a heal loop
    /// over nothing is a mistake (a wrong file, an empty template), so `run` stops at load, as
    /// a supervisor refuses a unit with nothing to start. Reading commands accept such a file.
    pub fn check_runnable(&self) -> Result<(), InventoryError> {
        if self.services.is_empty() && self.substrate.is_none() {
            return Err(InventoryError {
                file: self.file.clone(),
                line: 1,
                column: 1,
                key: "service".into(),
                kind: InventoryErrorKind::NothingToHeal,
                message: "the inventory has no [[service]] and no [substrate]: nothing to heal; \
                          add a [[service]] table"
                    .into(),
            });
        }
        Ok(())
    }
}

fn describe_file_type(kind: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if kind.is_socket() {
            return "a socket";
        }
        if kind.is_block_device() || kind.is_char_device() {
            return "a device";
        }
    }
    if kind.is_dir() {
        "a folder"
    } else {
        "not a regular file"
    }
}
