//! Running `systemctl` by argv, with a deadline on every call, optionally behind a command
//! prefix (`nsenter -t PID -a`, `ssh host`, a logging wrapper) and with a target
//! (`--machine`/`--host`).

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use process_manager::{Operation, ProcessError};
use sysutil::command::RunError;

use super::ADAPTER;

/// Which systemd instance `systemctl` talks to, as its own `--machine`/`--host` options say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SystemdTarget {
    /// `--machine=NAME`: a local container registered with systemd-machined
    /// (`[USER@]NAME` for its user manager).
    Machine(String),
    /// `--host=[USER@]HOST`: another machine over SSH.
    Host(String),
}

/// The adapter's own detailed error for a failed `systemctl` call; converted to a
/// [`ProcessError`] at the port.
#[derive(Debug, thiserror::Error)]
#[error("`{argv}` exited with {status}: {stderr}")]
pub(crate) struct CommandFailed {
    pub(crate) argv: String,
    pub(crate) status: String,
    pub(crate) stderr: String,
}

/// What a finished call printed.
#[derive(Debug)]
pub(crate) struct Output {
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Systemctl {
    /// Configured path of `systemctl`, or `None` to look it up on `PATH`.
    pub(crate) program: Option<PathBuf>,
    pub(crate) prefix: Vec<OsString>,
    pub(crate) user_manager: bool,
    pub(crate) target: Option<SystemdTarget>,
    /// For questions (`show`, `list-units`).
    pub(crate) query_deadline: Duration,
    /// For jobs (`start`, `stop`, `restart`, `daemon-reload`): long enough for systemd's own
    /// stop timeout (90 s by default) to run out first.
    pub(crate) job_deadline: Duration,
}

/// Which deadline a call gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallKind {
    Query,
    Job,
}

impl Systemctl {
    /// `journalctl` for `unit`, reaching the same manager as `systemctl` does (the same
    /// prefix, user manager, machine or host), as argv: what `logs` runs.
    pub(crate) fn journal_argv(&self, unit: &str) -> Vec<OsString> {
        let mut argv = self.prefix.clone();
        argv.push("journalctl".into());
        if self.user_manager {
            argv.push("--user".into());
        }
        match &self.target {
            Some(SystemdTarget::Machine(m)) => argv.push(format!("--machine={m}").into()),
            Some(SystemdTarget::Host(h)) => argv.push(format!("--host={h}").into()),
            None => {}
        }
        for a in ["--no-pager", "--output=short-iso", "--unit", unit] {
            argv.push(a.into());
        }
        argv
    }

    /// Creates the folders of a unit's output files where the manager runs (through the
    /// prefix, as `systemctl` is), within the job deadline. systemd opens `StandardOutput=
    /// append:` files before it would create a `LogsDirectory=`, so a missing folder fails the
    /// start with 209/STDOUT. `None`: a `--machine`/`--host` manager, whose files this cannot
    /// reach.
    pub(crate) async fn make_folders(
        &self,
        operation: Operation,
        folders: &[&std::path::Path],
    ) -> Option<Result<(), ProcessError>> {
        if folders.is_empty() || self.target.is_some() {
            return None;
        }
        let mut argv: Vec<OsString> = self.prefix.clone();
        argv.extend(["mkdir".into(), "-p".into(), "--".into()]);
        argv.extend(folders.iter().map(|f| f.as_os_str().to_os_string()));
        let (program, args) = argv.split_first().expect("mkdir at least");
        let program = match resolve(program) {
            Ok(p) => p,
            Err(e) => return Some(Err(e)),
        };
        let run = sysutil::command::Command::new(&program, self.job_deadline)
            .args(args.iter().cloned())
            .env("LC_ALL", "C")
            .run()
            .await;
        let shown = || {
            folders
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(" ")
        };
        Some(match run {
            Ok(out) if out.success() => Ok(()),
            Ok(out) => Err(ProcessError::Backend {
                adapter: ADAPTER.into(),
                source: Box::new(CommandFailed {
                    argv: format!("mkdir -p {}", shown()),
                    status: out.status.to_string(),
                    stderr: out.stderr.trim().to_string(),
                }),
            }),
            Err(RunError::Timeout { after }) => Err(ProcessError::Timeout { operation, after }),
            Err(e) => Err(ProcessError::Unavailable {
                adapter: ADAPTER.into(),
                detail: format!("could not create the log folders {}: {e}", shown()),
            }),
        })
    }

    /// The argv to spawn: prefix (if any), then systemctl and its global options, then `args`.
    fn argv(&self, args: &[&str]) -> Result<(PathBuf, Vec<OsString>), ProcessError> {
        let systemctl: OsString = self
            .program
            .clone()
            .map(PathBuf::into_os_string)
            .unwrap_or_else(|| "systemctl".into());
        let mut rest: Vec<OsString> = Vec::new();
        let program = match self.prefix.split_first() {
            Some((first, prefix_args)) => {
                rest.extend(prefix_args.iter().cloned());
                // Behind a prefix, `systemctl` is found by the prefix (e.g. inside the
                // container nsenter enters), not on this machine's PATH.
                rest.push(systemctl);
                resolve(first)?
            }
            None => resolve(&systemctl)?,
        };
        if self.user_manager {
            rest.push("--user".into());
        }
        match &self.target {
            Some(SystemdTarget::Machine(m)) => rest.push(format!("--machine={m}").into()),
            Some(SystemdTarget::Host(h)) => rest.push(format!("--host={h}").into()),
            None => {}
        }
        rest.push("--no-pager".into());
        rest.push("--no-ask-password".into());
        rest.extend(args.iter().map(OsString::from));
        Ok((program, rest))
    }

    /// Runs one call; a non-zero exit is an error converted by meaning.
    pub(crate) async fn run(
        &self,
        kind: CallKind,
        operation: Operation,
        args: &[&str],
    ) -> Result<Output, ProcessError> {
        let (mut status, mut out) = self.run_status(kind, operation, args).await?;
        if !status.success() && kind == CallKind::Query && is_transport_failure(&out.stderr) {
            // A query is safe to repeat, and the bus connection to another manager (through
            // --machine's stdio bridge, or a daemon-reload racing it) can drop once; repeat it
            // once before calling the manager unavailable.
            tracing::debug!(stderr = %out.stderr.trim(), "transport failure, retrying once");
            tokio::time::sleep(Duration::from_millis(100)).await;
            (status, out) = self.run_status(kind, operation, args).await?;
        }
        if status.success() {
            return Ok(out);
        }
        Err(self.failure(operation, args, &status, &out))
    }

    /// Runs one call and returns its exit status whatever it is.
    pub(crate) async fn run_status(
        &self,
        kind: CallKind,
        operation: Operation,
        args: &[&str],
    ) -> Result<(std::process::ExitStatus, Output), ProcessError> {
        let deadline = match kind {
            CallKind::Query => self.query_deadline,
            CallKind::Job => self.job_deadline,
        };
        let (program, argv) = self.argv(args)?;
        // Its own process group (sysutil's runner), so a deadline kills a prefix and what it
        // started (nsenter forks systemctl) together.
        let run = sysutil::command::Command::new(&program, deadline)
            .args(argv)
            .env("LC_ALL", "C")
            .env("SYSTEMD_COLORS", "0")
            .run()
            .await;
        match run {
            Ok(output) => Ok((
                output.status,
                Output {
                    stdout: output.stdout,
                    stderr: output.stderr,
                },
            )),
            Err(RunError::NotFound { source, .. }) => Err(ProcessError::Unavailable {
                adapter: ADAPTER.into(),
                detail: format!("{} not found: {source}", program.display()),
            }),
            Err(RunError::PermissionDenied { source, .. }) => Err(ProcessError::PermissionDenied {
                operation,
                target: program.display().to_string(),
                detail: source.to_string(),
            }),
            Err(RunError::Io { source, .. }) => Err(ProcessError::Unavailable {
                adapter: ADAPTER.into(),
                detail: format!("could not run {}: {source}", program.display()),
            }),
            Err(RunError::Timeout { after }) => Err(ProcessError::Timeout { operation, after }),
        }
    }

    fn failure(
        &self,
        operation: Operation,
        args: &[&str],
        status: &std::process::ExitStatus,
        out: &Output,
    ) -> ProcessError {
        let stderr = out.stderr.trim().to_string();
        let lower = stderr.to_ascii_lowercase();
        let target = args.last().copied().unwrap_or_default().to_string();
        // 126/127: a wrapper in the command prefix (nsenter, ssh) could not run its command.
        // Its "command not found" is about the manager's CLI, not about the unit.
        if matches!(status.code(), Some(126 | 127)) {
            return ProcessError::Unavailable {
                adapter: ADAPTER.into(),
                detail: format!("could not run the manager's command ({status}): {stderr}"),
            };
        }
        if lower.contains("not found")
            || lower.contains("not loaded")
            || lower.contains("does not exist")
        {
            return ProcessError::NotFound {
                label: target.trim_end_matches(".service").to_string(),
                scope: Some(self.scope_name()),
            };
        }
        if lower.contains("access denied")
            || lower.contains("permission denied")
            || lower.contains("interactive authentication required")
        {
            return ProcessError::PermissionDenied {
                operation,
                target,
                detail: stderr,
            };
        }
        if lower.contains("failed to connect to bus")
            || lower.contains("not been booted with systemd")
            || is_transport_failure(&stderr)
        {
            return ProcessError::Unavailable {
                adapter: ADAPTER.into(),
                detail: stderr,
            };
        }
        ProcessError::Backend {
            adapter: ADAPTER.into(),
            source: Box::new(CommandFailed {
                argv: format!("systemctl {}", args.join(" ")),
                status: status.to_string(),
                stderr,
            }),
        }
    }

    pub(crate) fn scope_name(&self) -> String {
        let manager = if self.user_manager {
            "user manager"
        } else {
            "system manager"
        };
        match &self.target {
            Some(SystemdTarget::Machine(m)) => format!("{manager} of machine {m}"),
            Some(SystemdTarget::Host(h)) => format!("{manager} on {h}"),
            None => manager.to_string(),
        }
    }
}

/// systemctl's words for a bus connection that broke or never formed.
fn is_transport_failure(stderr: &str) -> bool {
    let lower = stderr.to_ascii_lowercase();
    lower.contains("transport endpoint is not connected")
        || lower.contains("connection reset by peer")
        || lower.contains("connection refused")
}

/// A program name or path to something spawnable: paths are taken as given, bare names are
/// looked up on `PATH`.
fn resolve(program: &std::ffi::OsStr) -> Result<PathBuf, ProcessError> {
    sysutil::program::find(program, None).map_err(|e| ProcessError::Unavailable {
        adapter: ADAPTER.into(),
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn systemctl() -> Systemctl {
        Systemctl {
            program: None,
            prefix: Vec::new(),
            user_manager: false,
            target: None,
            query_deadline: Duration::from_secs(1),
            job_deadline: Duration::from_secs(1),
        }
    }

    fn words(v: &[OsString]) -> Vec<&str> {
        v.iter().map(|w| w.to_str().unwrap()).collect()
    }

    #[test]
    fn argv_puts_prefix_then_systemctl_then_its_options() {
        let mut s = systemctl();
        s.prefix = ["/usr/bin/nsenter", "-t", "42", "-a"]
            .map(OsString::from)
            .to_vec();
        s.user_manager = true;
        s.target = Some(SystemdTarget::Machine("joelclaw@.host".into()));
        let (program, args) = s.argv(&["show", "a.service"]).unwrap();
        assert_eq!(program, PathBuf::from("/usr/bin/nsenter"));
        assert_eq!(
            words(&args),
            [
                "-t",
                "42",
                "-a",
                "systemctl",
                "--user",
                "--machine=joelclaw@.host",
                "--no-pager",
                "--no-ask-password",
                "show",
                "a.service"
            ]
        );
        let mut s = systemctl();
        s.program = Some("/opt/systemd/bin/systemctl".into());
        s.target = Some(SystemdTarget::Host("ops@node-1".into()));
        let (program, args) = s.argv(&["daemon-reload"]).unwrap();
        assert_eq!(program, PathBuf::from("/opt/systemd/bin/systemctl"));
        assert_eq!(
            words(&args),
            [
                "--host=ops@node-1",
                "--no-pager",
                "--no-ask-password",
                "daemon-reload"
            ]
        );
    }

    #[test]
    fn failures_by_meaning() {
        let s = systemctl();
        let fail = |stderr: &str| {
            let status = std::process::Command::new("false").status().unwrap();
            s.failure(
                Operation::Restart,
                &["restart", "x.service"],
                &status,
                &Output {
                    stdout: String::new(),
                    stderr: stderr.into(),
                },
            )
        };
        match fail("Failed to restart x.service: Unit x.service not found.") {
            ProcessError::NotFound { label, scope } => {
                assert_eq!(label, "x");
                assert_eq!(scope.as_deref(), Some("system manager"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            fail("Failed to restart x.service: Access denied"),
            ProcessError::PermissionDenied { .. }
        ));
        assert!(matches!(
            fail("Failed to connect to bus: No such file or directory"),
            ProcessError::Unavailable { .. }
        ));
        // A prefix (nsenter, ssh) that could not find the manager's CLI: exit 127.
        let exit_127 = std::process::Command::new("sh")
            .args(["-c", "exit 127"])
            .status()
            .unwrap();
        let e = s.failure(
            Operation::Restart,
            &["restart", "x.service"],
            &exit_127,
            &Output {
                stdout: String::new(),
                stderr: "nsenter: failed to execute systemctl: No such file or directory: command not found".into(),
            },
        );
        assert!(matches!(e, ProcessError::Unavailable { .. }), "{e:?}");
        assert!(matches!(
            fail("Failed to get properties: Transport endpoint is not connected"),
            ProcessError::Unavailable { .. }
        ));
        match fail("Job for x.service failed because the control process exited with error code.") {
            ProcessError::Backend { source, .. } => {
                let text = source.to_string();
                assert!(text.contains("systemctl restart x.service"), "{text}");
                assert!(text.contains("Job for x.service failed"), "{text}");
            }
            other => panic!("{other:?}"),
        }
    }
}
