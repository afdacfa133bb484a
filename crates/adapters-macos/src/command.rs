//! Running `launchctl` and `colima`: where to find them, and one call with a deadline through
//! `sysutil` (its own process group, killed whole when the deadline passes or the call is
//! dropped, so a hung `colima` leaves nothing it started behind).

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sysutil::command::RunError;

/// Where to find a program: a configured path, or a name looked up on `PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProgramLocation {
    /// The program's name, looked up on `search_path` when `path` is `None`.
    pub(crate) name: &'static str,
    /// A configured absolute path, used as is.
    pub(crate) path: Option<PathBuf>,
    /// The `PATH`-style list to search; `None` means this process's `PATH`.
    pub(crate) search_path: Option<OsString>,
}

impl ProgramLocation {
    /// Resolves the program, or says what was looked for and where.
    pub(crate) fn resolve(&self) -> Result<PathBuf, String> {
        if let Some(path) = &self.path {
            return if path.is_file() {
                Ok(path.clone())
            } else {
                Err(format!(
                    "{} not found at the configured path {}",
                    self.name,
                    path.display()
                ))
            };
        }
        sysutil::program::find(OsStr::new(self.name), self.search_path.as_deref())
            .map_err(|e| e.to_string())
    }
}

/// What a finished command said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommandOutput {
    /// The exit code; `None` when a signal ended it.
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl CommandOutput {
    pub(crate) fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// Why a command gave no output.
#[derive(Debug)]
pub(crate) enum CommandError {
    /// The program could not be started (missing, not executable).
    Spawn(std::io::Error),
    /// It did not finish within the deadline; it and its process group were killed.
    Timeout,
}

/// Runs `program args...` (never through a shell) and waits at most `deadline`.
pub(crate) async fn run<I, S>(
    program: &Path,
    args: I,
    deadline: Duration,
) -> Result<CommandOutput, CommandError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    match sysutil::command::Command::new(program, deadline)
        .args(args)
        .run()
        .await
    {
        Ok(out) => Ok(CommandOutput {
            code: out.code(),
            stdout: out.stdout,
            stderr: out.stderr,
        }),
        Err(RunError::Timeout { .. }) => Err(CommandError::Timeout),
        Err(
            RunError::NotFound { source, .. }
            | RunError::PermissionDenied { source, .. }
            | RunError::Io { source, .. },
        ) => Err(CommandError::Spawn(source)),
    }
}
