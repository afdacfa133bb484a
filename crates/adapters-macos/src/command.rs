//! Running an external program by argv with a deadline: the one place this crate spawns.
//!
//! Every call gets stdin from `/dev/null`, captured stdout/stderr, and `kill_on_drop`, so a
//! passed deadline drops (and kills) the child instead of leaving a hung heal loop.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

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
        let search = match &self.search_path {
            Some(p) => p.clone(),
            None => std::env::var_os("PATH").unwrap_or_default(),
        };
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        which::which_in(self.name, Some(&search), cwd).map_err(|_| {
            format!(
                "{} not found on PATH ({})",
                self.name,
                search.to_string_lossy()
            )
        })
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
    /// It did not finish within the deadline; it was killed.
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
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(CommandError::Spawn)?;
    // Dropping the `wait_with_output` future on timeout drops the child, which kills it.
    match tokio::time::timeout(deadline, child.wait_with_output()).await {
        Ok(Ok(out)) => Ok(CommandOutput {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }),
        Ok(Err(e)) => Err(CommandError::Spawn(e)),
        Err(_) => Err(CommandError::Timeout),
    }
}
