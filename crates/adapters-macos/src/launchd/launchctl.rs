//! The `launchctl` client: builds each verb's argv (`print`, `print-disabled`, `bootout`,
//! `bootstrap`, `kickstart`, `enable`/`disable`, `list`), runs it through `sysutil` with the
//! configured deadline, and maps launchctl's exit codes and messages to [`ProcessError`]s.
//! The port implementation (which domain, which verbs in which order) is in `launchd/mod.rs`.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use process_manager::{Operation, ProcessError, ServiceLabel, ServiceScope};

use super::parse::{self, classify, Failure, PrintInfo};
use super::{ADAPTER, BUSY_BACKOFF, BUSY_RETRIES};
use crate::command::{self, CommandError, CommandOutput, ProgramLocation};

/// `launchctl` at a configured path or on a `PATH`, with the deadline of every call.
#[derive(Debug, Clone)]
pub(crate) struct Launchctl {
    location: ProgramLocation,
    deadline: Duration,
}

/// A `launchctl` call that failed in a way with no port-level meaning. Kept private; callers see
/// [`ProcessError::Backend`] with this as its source.
#[derive(Debug)]
struct LaunchctlFailed {
    argv: String,
    code: Option<i32>,
    stderr: String,
    hint: Option<&'static str>,
}

impl fmt::Display for LaunchctlFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code {
            Some(c) => write!(f, "`launchctl {}` exited with {c}", self.argv)?,
            None => write!(f, "`launchctl {}` was killed by a signal", self.argv)?,
        }
        let stderr = self.stderr.trim();
        if !stderr.is_empty() {
            write!(f, ": {}", stderr.replace('\n', " / "))?;
        }
        if let Some(h) = self.hint {
            write!(f, " ({h})")?;
        }
        Ok(())
    }
}

impl std::error::Error for LaunchctlFailed {}

const EIO_HINT: &str = "launchd answers EIO when the job is already loaded, is disabled, or its plist is invalid; check `plutil -lint` on the plist and `launchctl print-disabled`";
const BOOTOUT_EIO_HINT: &str = "launchd would not unload it as asked: bootout answers EIO when the job is loaded under another domain or session type than the one named, or launchd will not let it go; `launchctl print` shows where and how it is loaded";
const SIP_HINT: &str = "the job is protected by System Integrity Protection, which even root cannot unload; leave it to macOS or manage another label";
pub(crate) const ROOT_HINT: &str =
    "the system domain needs root: run the node agent as root (a LaunchDaemon) or with sudo";

/// A failed call with no port-level meaning, with what launchctl said (and a hint, if any).
fn backend(argv: &[&str], out: &CommandOutput, hint: Option<&'static str>) -> ProcessError {
    ProcessError::Backend {
        adapter: ADAPTER.into(),
        source: Box::new(LaunchctlFailed {
            argv: argv.join(" "),
            code: out.code,
            stderr: out.stderr.clone(),
            hint,
        }),
    }
}

/// `<domain>/<label>`, as launchctl names a service.
fn service_target(scope: ServiceScope, label: &ServiceLabel) -> String {
    format!("{scope}/{label}")
}

impl Launchctl {
    /// `launchctl` at `path`, or looked up on `search_path` (this process's `PATH` if `None`).
    pub(crate) fn new(
        path: Option<PathBuf>,
        search_path: Option<OsString>,
        deadline: Duration,
    ) -> Self {
        Launchctl {
            location: ProgramLocation {
                name: "launchctl",
                path,
                search_path,
            },
            deadline,
        }
    }

    /// Runs `launchctl args...` with the deadline.
    async fn run(
        &self,
        operation: Operation,
        args: &[&str],
    ) -> Result<CommandOutput, ProcessError> {
        let program = self
            .location
            .resolve()
            .map_err(|detail| ProcessError::Unavailable {
                adapter: ADAPTER.into(),
                detail,
            })?;
        tracing::debug!(program = %program.display(), ?args, "launchctl");
        match command::run(&program, args, self.deadline).await {
            Ok(out) => Ok(out),
            Err(CommandError::Timeout) => Err(ProcessError::Timeout {
                operation,
                after: self.deadline,
            }),
            Err(CommandError::Spawn(e)) => Err(ProcessError::Unavailable {
                adapter: ADAPTER.into(),
                detail: format!("could not run {}: {e}", program.display()),
            }),
        }
    }

    /// Maps a failed call to the port's error by meaning.
    pub(crate) fn failure(
        &self,
        operation: Operation,
        label: &ServiceLabel,
        scope: ServiceScope,
        argv: &[&str],
        out: &CommandOutput,
    ) -> ProcessError {
        match classify(out.code, &out.stderr) {
            Failure::NotFound => ProcessError::NotFound {
                label: label.to_string(),
                scope: Some(scope.to_string()),
            },
            Failure::NotPermitted => ProcessError::PermissionDenied {
                operation,
                target: service_target(scope, label),
                detail: format!(
                    "launchctl said {:?}; {}",
                    out.stderr.trim(),
                    if scope == ServiceScope::System {
                        ROOT_HINT
                    } else {
                        "run as the user who owns the domain, or as root"
                    }
                ),
            },
            Failure::DomainUnsupported => ProcessError::Unavailable {
                adapter: ADAPTER.into(),
                detail: format!(
                    "{scope} does not accept {label} ({:?}): there is no GUI login session for that user (SSH or headless); log the user in, or install it in the system domain or user/<uid>",
                    out.stderr.trim()
                ),
            },
            Failure::InputOutput => backend(argv, out, Some(EIO_HINT)),
            _ => backend(argv, out, None),
        }
    }

    /// `launchctl print <scope>/<label>`; `None` when launchd does not have it there.
    pub(crate) async fn print_in(
        &self,
        operation: Operation,
        scope: ServiceScope,
        label: &ServiceLabel,
    ) -> Result<Option<PrintInfo>, ProcessError> {
        let target = service_target(scope, label);
        let argv = ["print", target.as_str()];
        let out = self.run(operation, &argv).await?;
        if out.success() {
            return parse::parse_print(&out.stdout).map(Some).map_err(|e| {
                ProcessError::backend(ADAPTER, format!("`launchctl print {target}`: {e}"))
            });
        }
        match classify(out.code, &out.stderr) {
            // No GUI session: nothing can be loaded in that gui domain.
            Failure::NotFound | Failure::DomainUnsupported => Ok(None),
            _ => Err(self.failure(operation, label, scope, &argv, &out)),
        }
    }

    /// Whether `label` is disabled in `scope` (`launchctl print-disabled`).
    pub(crate) async fn is_disabled(
        &self,
        operation: Operation,
        scope: ServiceScope,
        label: &ServiceLabel,
    ) -> Result<bool, ProcessError> {
        let domain = scope.to_string();
        let argv = ["print-disabled", domain.as_str()];
        let out = self.run(operation, &argv).await?;
        if !out.success() {
            return match classify(out.code, &out.stderr) {
                Failure::NotFound | Failure::DomainUnsupported => Ok(false),
                _ => Err(self.failure(operation, label, scope, &argv, &out)),
            };
        }
        let map = parse::parse_print_disabled(&out.stdout).map_err(|e| {
            ProcessError::backend(ADAPTER, format!("`launchctl print-disabled {domain}`: {e}"))
        })?;
        Ok(map.get(label.as_str()).copied().unwrap_or(false))
    }

    /// `launchctl bootout <scope>/<label>`; `false` when it was not loaded.
    pub(crate) async fn bootout(
        &self,
        operation: Operation,
        scope: ServiceScope,
        label: &ServiceLabel,
    ) -> Result<bool, ProcessError> {
        let target = service_target(scope, label);
        let argv = ["bootout", target.as_str()];
        let out = self.run(operation, &argv).await?;
        if out.success() {
            return Ok(true);
        }
        match (out.code, classify(out.code, &out.stderr)) {
            // `Boot-out failed: 3: No such process`: already gone.
            (_, Failure::NoSuchProcess | Failure::NotFound) => Ok(false),
            // `36: Operation now in progress`: launchd is tearing it down; that is what we asked.
            (Some(36), _) => Ok(true),
            (_, Failure::InputOutput) => Err(backend(&argv, &out, Some(BOOTOUT_EIO_HINT))),
            // `150: Operation not permitted while System Integrity Protection is engaged`:
            // root would not help, so no root hint.
            _ if out.stderr.contains("System Integrity Protection") => {
                Err(ProcessError::PermissionDenied {
                    operation,
                    target,
                    detail: format!("launchctl said {:?}; {SIP_HINT}", out.stderr.trim()),
                })
            }
            _ => Err(self.failure(operation, label, scope, &argv, &out)),
        }
    }

    /// `launchctl bootstrap <scope> <plist>`, with launchd's known transient answers handled:
    /// EALREADY (still tearing down) is retried briefly; EIO (already loaded) is answered with
    /// one bootout and a retry, then reported with a hint.
    pub(crate) async fn bootstrap(
        &self,
        operation: Operation,
        scope: ServiceScope,
        label: &ServiceLabel,
        plist: &Path,
    ) -> Result<(), ProcessError> {
        let domain = scope.to_string();
        let plist = plist.to_string_lossy();
        let argv = ["bootstrap", domain.as_str(), plist.as_ref()];
        let mut busy = 0;
        let mut booted_out = false;
        loop {
            let out = self.run(operation, &argv).await?;
            if out.success() {
                return Ok(());
            }
            match classify(out.code, &out.stderr) {
                Failure::AlreadyInProgress if busy < BUSY_RETRIES => {
                    busy += 1;
                    tokio::time::sleep(BUSY_BACKOFF * busy).await;
                }
                Failure::InputOutput if !booted_out => {
                    booted_out = true;
                    self.bootout(operation, scope, label).await?;
                }
                _ => return Err(self.failure(operation, label, scope, &argv, &out)),
            }
        }
    }

    /// `launchctl kickstart [-k] <scope>/<label>`.
    pub(crate) async fn kickstart(
        &self,
        operation: Operation,
        scope: ServiceScope,
        label: &ServiceLabel,
        kill: bool,
    ) -> Result<(), ProcessError> {
        let target = service_target(scope, label);
        let argv: Vec<&str> = if kill {
            vec!["kickstart", "-k", target.as_str()]
        } else {
            vec!["kickstart", target.as_str()]
        };
        let out = self.run(operation, &argv).await?;
        if out.success() {
            Ok(())
        } else {
            Err(self.failure(operation, label, scope, &argv, &out))
        }
    }

    /// `launchctl enable|disable <scope>/<label>`: launchd's persistent override.
    pub(crate) async fn set_disabled(
        &self,
        operation: Operation,
        scope: ServiceScope,
        label: &ServiceLabel,
        disabled: bool,
    ) -> Result<(), ProcessError> {
        let target = service_target(scope, label);
        let verb = if disabled { "disable" } else { "enable" };
        let argv = [verb, target.as_str()];
        let out = self.run(operation, &argv).await?;
        if out.success() {
            Ok(())
        } else {
            Err(self.failure(operation, label, scope, &argv, &out))
        }
    }

    /// The labels `launchctl list` shows (the caller's domain, which includes jobs installed
    /// by hand).
    pub(crate) async fn list_labels(&self) -> Result<Vec<String>, ProcessError> {
        let out = self.run(Operation::List, &["list"]).await?;
        if !out.success() {
            return Err(backend(&["list"], &out, None));
        }
        let rows = parse::parse_list_table(&out.stdout)
            .map_err(|e| ProcessError::backend(ADAPTER, format!("`launchctl list`: {e}")))?;
        Ok(rows.into_iter().map(|row| row.label).collect())
    }
}
