//! Running a program by argv (never through a shell) with a deadline.
//!
//! Each run gets stdin from `/dev/null` and its own process group. When the deadline passes,
//! or the caller drops the future (its own timeout, a cancelled task), the whole group gets
//! SIGKILL, not only the program: a wrapper (`nsenter`, `ssh`, a shell script) and whatever it
//! started go together, so nothing keeps running after the caller gave up. A program that
//! finishes in time leaves its group alone (a daemon it started on purpose keeps running).
//!
//! Built on `tokio::process` with std's `process_group(0)` and `killpg`: the one extra
//! behaviour (kill the group on drop) is a small guard, which reads more plainly here than a
//! wrapper crate's layered traits.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _};

/// The most of each stream kept by default; the rest is read and dropped so the program never
/// blocks on a full pipe.
pub const DEFAULT_OUTPUT_LIMIT: usize = 16 * 1024 * 1024;

/// How long a killed program's reaping is waited for before tokio's background reaper takes it.
const REAP_WAIT: Duration = Duration::from_secs(1);

/// A program, its arguments and environment, and how long it may take.
#[derive(Debug, Clone)]
pub struct Command {
    program: PathBuf,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    removed_envs: Vec<OsString>,
    current_dir: Option<PathBuf>,
    deadline: Duration,
    capture: bool,
    output_limit: usize,
}

/// What a program that finished in time said.
#[derive(Debug, Clone)]
pub struct Output {
    /// How it ended.
    pub status: ExitStatus,
    /// Its standard output (lossy UTF-8, at most the output limit); empty when discarded.
    pub stdout: String,
    /// The same bytes as received (for output that is not text, such as `git ls-files -z`
    /// with file names that are not UTF-8).
    pub stdout_bytes: Vec<u8>,
    /// Its standard error, likewise.
    pub stderr: String,
}

impl Output {
    /// The exit code; `None` when a signal ended it.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Whether it exited with 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }
}

/// Why a run gave no [`Output`].
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The program does not exist.
    #[error("{} not found: {source}", program.display())]
    NotFound {
        /// The program.
        program: PathBuf,
        /// The spawn's error.
        #[source]
        source: std::io::Error,
    },
    /// The program may not be run by this process.
    #[error("{} may not be run: {source}", program.display())]
    PermissionDenied {
        /// The program.
        program: PathBuf,
        /// The spawn's error.
        #[source]
        source: std::io::Error,
    },
    /// It could not be started for another reason, or waiting for it failed.
    #[error("could not run {}: {source}", program.display())]
    Io {
        /// The program.
        program: PathBuf,
        /// The system's answer.
        #[source]
        source: std::io::Error,
    },
    /// It did not finish within the deadline; its whole process group was killed.
    #[error("did not finish within {after:?}; killed")]
    Timeout {
        /// The deadline.
        after: Duration,
    },
}

impl Command {
    /// Runs `program` (a path; see [`crate::program::find`] for names) within `deadline`,
    /// capturing its output.
    pub fn new(program: impl Into<PathBuf>, deadline: Duration) -> Self {
        Command {
            program: program.into(),
            args: Vec::new(),
            envs: Vec::new(),
            removed_envs: Vec::new(),
            current_dir: None,
            deadline,
            capture: true,
            output_limit: DEFAULT_OUTPUT_LIMIT,
        }
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Adds an environment variable (on top of this process's environment).
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.envs.push((key.into(), value.into()));
        self
    }

    /// Removes a variable from the environment it inherits.
    pub fn env_remove(mut self, key: impl Into<OsString>) -> Self {
        self.removed_envs.push(key.into());
        self
    }

    /// Runs it in `dir`.
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.current_dir = Some(dir.into());
        self
    }

    /// Sends stdout and stderr to `/dev/null` instead of capturing them.
    pub fn discard_output(mut self) -> Self {
        self.capture = false;
        self
    }

    /// Keeps at most `bytes` of each stream.
    pub fn output_limit(mut self, bytes: usize) -> Self {
        self.output_limit = bytes;
        self
    }

    /// The program.
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// The arguments.
    pub fn arguments(&self) -> &[OsString] {
        &self.args
    }

    /// The deadline.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// Runs it. A non-zero exit is an [`Output`], not an error: its meaning is the caller's.
    pub async fn run(&self) -> Result<Output, RunError> {
        let piped = || {
            if self.capture {
                Stdio::piped()
            } else {
                Stdio::null()
            }
        };
        let mut cmd = tokio::process::Command::new(&self.program);
        for key in &self.removed_envs {
            cmd.env_remove(key);
        }
        if let Some(dir) = &self.current_dir {
            cmd.current_dir(dir);
        }
        cmd.args(&self.args)
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(piped())
            .stderr(piped())
            .kill_on_drop(true)
            .process_group(0);
        let mut child = cmd.spawn().map_err(|source| {
            let program = self.program.clone();
            match source.kind() {
                std::io::ErrorKind::NotFound => RunError::NotFound { program, source },
                std::io::ErrorKind::PermissionDenied => {
                    RunError::PermissionDenied { program, source }
                }
                _ => RunError::Io { program, source },
            }
        })?;
        // Declared after `child`, so on a drop it fires first, while the group still exists.
        let mut group = GroupGuard(child.id());
        tracing::debug!(program = %self.program.display(), args = ?self.args, "spawn");
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let limit = self.output_limit;
        let finished = tokio::time::timeout(self.deadline, async {
            tokio::try_join!(
                child.wait(),
                read_bounded(stdout, limit),
                read_bounded(stderr, limit)
            )
        })
        .await;
        match finished {
            Ok(Ok((status, stdout, stderr))) => {
                // Reaped: its pid may be reused, so the group is no longer ours to signal.
                group.disarm();
                Ok(Output {
                    status,
                    stdout: String::from_utf8_lossy(&stdout).into_owned(),
                    stdout_bytes: stdout,
                    stderr: String::from_utf8_lossy(&stderr).into_owned(),
                })
            }
            Ok(Err(source)) => Err(RunError::Io {
                program: self.program.clone(),
                source,
            }),
            Err(_) => {
                group.kill();
                // Reap the leader now; if it cannot be (stuck in the kernel), dropping the
                // child hands it to tokio's background reaper.
                let _ = tokio::time::timeout(REAP_WAIT, child.wait()).await;
                group.disarm();
                Err(RunError::Timeout {
                    after: self.deadline,
                })
            }
        }
    }
}

impl Command {
    /// Runs it from synchronous code: on a thread of its own with a one-thread runtime, so it
    /// works whether or not the caller is inside a tokio runtime. Same deadline and group kill.
    pub fn run_blocking(&self) -> Result<Output, RunError> {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_io()
                        .enable_time()
                        .build()
                        .map_err(|source| RunError::Io {
                            program: self.program.clone(),
                            source,
                        })?;
                    runtime.block_on(self.run())
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}

/// SIGKILLs the process group (whose id is the leader's pid) when dropped, unless disarmed.
struct GroupGuard(Option<u32>);

impl GroupGuard {
    fn kill(&self) {
        if let Some(pgid) = self.0.and_then(|p| i32::try_from(p).ok()) {
            // ESRCH (the group is already gone) is what we want anyway.
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pgid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }

    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads `stream` to its end, keeping at most `limit` bytes.
async fn read_bounded(
    stream: Option<impl AsyncRead + Unpin>,
    limit: usize,
) -> std::io::Result<Vec<u8>> {
    let mut kept = Vec::new();
    let Some(mut stream) = stream else {
        return Ok(kept);
    };
    let mut chunk = [0u8; 8192];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(kept);
        }
        let room = limit.saturating_sub(kept.len());
        kept.extend_from_slice(&chunk[..n.min(room)]);
    }
}

/// Test support: which live processes are in a process group, read from `/proc` (Linux; where
/// there is no `/proc` the group always reads as empty, so these checks prove nothing there).
pub mod group {
    /// The pids of live (not zombie) processes whose process group is `pgid`. Zombies are left
    /// out: they are dead, and whether they are reaped depends on who adopted them.
    pub fn live_members(pgid: u32) -> Vec<u32> {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                    return false;
                };
                // After the command name's closing parenthesis: state ppid pgrp ...
                let Some((_, rest)) = stat.rsplit_once(')') else {
                    return false;
                };
                let mut fields = rest.split_whitespace();
                let state = fields.next();
                let pgrp = fields.nth(1).and_then(|f| f.parse::<u32>().ok());
                state != Some("Z") && pgrp == Some(pgid)
            })
            .collect()
    }

    /// Waits, at most `limit`, until no live process is left in group `pgid`; panics if one
    /// is. For tests that prove a timed-out command left nothing behind.
    pub async fn wait_until_empty(pgid: u32, limit: std::time::Duration) {
        crate::poll::until_true(
            &format!("no live process left in process group {pgid}"),
            limit,
            || live_members(pgid).is_empty(),
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A shell that starts two grandchildren, then writes its pid (= its group id) to
    /// `pidfile`, and waits for them.
    fn hanging_family(pidfile: &Path, deadline: Duration) -> Command {
        Command::new("/bin/sh", deadline).args([
            "-c".into(),
            format!(
                "sleep 30 & sleep 30 & echo $$ > {}; wait",
                pidfile.display()
            ),
        ])
    }

    /// Runs the family until it times out after it started (a loaded machine may not get
    /// the shell going within a short deadline: then it tries again with a longer one), and
    /// returns its group id.
    async fn time_out_a_started_family(dir: &Path) -> u32 {
        let mut deadline = Duration::from_millis(200);
        for attempt in 0..4 {
            let pidfile = dir.join(format!("pid-{attempt}"));
            let e = hanging_family(&pidfile, deadline).run().await.unwrap_err();
            assert!(matches!(e, RunError::Timeout { .. }), "{e:?}");
            if let Some(pgid) = read_pid(&pidfile) {
                return pgid;
            }
            deadline *= 5;
        }
        panic!("the shell never started its children");
    }

    fn read_pid(pidfile: &Path) -> Option<u32> {
        let text = std::fs::read_to_string(pidfile).ok()?;
        text.trim().parse().ok()
    }

    async fn group_gone(pgid: u32) {
        group::wait_until_empty(pgid, Duration::from_secs(10)).await;
    }

    #[tokio::test]
    async fn output_and_exit_code() {
        let out = Command::new("/bin/sh", Duration::from_secs(10))
            .args(["-c", "echo out; echo err >&2; exit 3"])
            .env("X", "y")
            .run()
            .await
            .unwrap();
        assert_eq!(out.code(), Some(3));
        assert!(!out.success());
        assert_eq!(out.stdout, "out\n");
        assert_eq!(out.stderr, "err\n");
    }

    #[test]
    fn run_blocking_works_outside_and_inside_a_runtime_and_keeps_raw_bytes() {
        let cmd = Command::new("/bin/sh", Duration::from_secs(10))
            .args(["-c", "printf 'a\\377\\000b'; pwd"])
            .current_dir("/");
        let out = cmd.run_blocking().unwrap();
        assert_eq!(out.stdout_bytes, b"a\xff\0b/\n");
        let inside = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async { cmd.run_blocking() })
            .unwrap();
        assert_eq!(inside.stdout_bytes, out.stdout_bytes);
        let timed_out = Command::new("/bin/sh", Duration::from_millis(100))
            .args(["-c", "sleep 30"])
            .run_blocking()
            .unwrap_err();
        assert!(
            matches!(timed_out, RunError::Timeout { .. }),
            "{timed_out:?}"
        );
    }

    #[tokio::test]
    async fn output_is_bounded() {
        let out = Command::new("/bin/sh", Duration::from_secs(10))
            .args(["-c", "head -c 100000 /dev/zero"])
            .output_limit(10)
            .run()
            .await
            .unwrap();
        assert!(out.success());
        assert_eq!(out.stdout.len(), 10);
    }

    #[tokio::test]
    async fn spawn_errors_by_kind() {
        let e = Command::new("/no/such/program", Duration::from_secs(1))
            .run()
            .await
            .unwrap_err();
        assert!(matches!(e, RunError::NotFound { .. }), "{e:?}");
        let dir = tempfile::tempdir().unwrap();
        let e = Command::new(dir.path(), Duration::from_secs(1))
            .run()
            .await
            .unwrap_err();
        assert!(matches!(e, RunError::PermissionDenied { .. }), "{e:?}");
    }

    #[tokio::test]
    async fn a_timeout_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let pgid = time_out_a_started_family(dir.path()).await;
        group_gone(pgid).await;
    }

    #[tokio::test]
    async fn a_dropped_run_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let cmd = hanging_family(&pidfile, Duration::from_secs(60));
        let mut run = Box::pin(cmd.run());
        // The caller's own timeout drops the run future once the family is up.
        let pgid = tokio::select! {
            r = &mut run => panic!("a 30 s family finished: {r:?}"),
            pgid = crate::poll::until("the shell's pid", Duration::from_secs(30), || {
                std::future::ready(read_pid(&pidfile))
            }) => pgid,
        };
        drop(run);
        group_gone(pgid).await;
    }
}
