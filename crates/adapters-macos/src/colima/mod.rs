//! `ColimaRuntime`: the Colima VM as a [`SubstratePort`], over the `colima` CLI. Its engine is
//! the Docker Engine API on the VM's socket ([`ColimaConfig::docker_socket`]), which the
//! composition root pairs with it (the Docker adapter is the one Docker client).
//!
//! `colima status` runs commands inside the VM and takes a while, so its answer is cached for a
//! few seconds (on tokio's clock, so tests can pause time). Frequent health checks should not
//! pay for it at all: the composition root can supply a [`HealthCheck`] that pings the Docker
//! socket (the Docker adapter's client), and the cached status is only the default.

pub mod parse;

use std::ffi::OsString;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use container_runtime::{
    EnsureRunningOutcome, RuntimeAdapter, RuntimeError, RuntimeOperation, SshConfig, SubstratePort,
};
use tokio::time::Instant;

use crate::command::{self, CommandError, CommandOutput, ProgramLocation};
use parse::ColimaStatus;

const ADAPTER: &str = "colima";

/// A fast "is the substrate up?" check, e.g. a ping on the Docker socket. Supplied by the
/// composition root, which owns the Docker client; without one, `is_healthy` asks the (cached)
/// `colima status`.
#[async_trait]
pub trait HealthCheck: Send + Sync + fmt::Debug + 'static {
    /// `Ok(false)` when the substrate is down; errors when health cannot be decided.
    async fn is_healthy(&self) -> Result<bool, RuntimeError>;
}

/// A [`HealthCheck`] made from a closure, for a composition root that has a ping at hand:
/// `FnHealthCheck::new(move || Box::pin(async move { Ok(docker.ping().await.is_ok()) }))`.
pub struct FnHealthCheck<F>(F);

/// What an [`FnHealthCheck`] closure returns.
pub type HealthFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<bool, RuntimeError>> + Send>>;

impl<F> FnHealthCheck<F>
where
    F: Fn() -> HealthFuture + Send + Sync + 'static,
{
    /// Wraps `check`.
    pub fn new(check: F) -> Self {
        FnHealthCheck(check)
    }
}

impl<F> fmt::Debug for FnHealthCheck<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FnHealthCheck")
    }
}

#[async_trait]
impl<F> HealthCheck for FnHealthCheck<F>
where
    F: Fn() -> HealthFuture + Send + Sync + 'static,
{
    async fn is_healthy(&self) -> Result<bool, RuntimeError> {
        (self.0)().await
    }
}

/// How to reach Colima.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColimaConfig {
    /// `colima` at this path; `None` looks it up on `search_path`.
    pub colima_path: Option<PathBuf>,
    /// The `PATH`-style list `colima` is looked up on; `None` is this process's `PATH`. launchd's
    /// default `PATH` lacks `/opt/homebrew/bin`, so a daemon should set this or the path.
    pub search_path: Option<OsString>,
    /// The Colima profile (`--profile`); `None` is colima's default profile.
    pub profile: Option<String>,
    /// The deadline of `status`, `list`, `ssh-config` and `ssh` calls.
    pub deadline: Duration,
    /// The deadline of `colima start`, which boots a VM.
    pub start_deadline: Duration,
    /// How long a `colima status` answer is reused.
    pub status_ttl: Duration,
}

impl Default for ColimaConfig {
    fn default() -> Self {
        ColimaConfig {
            colima_path: None,
            search_path: None,
            profile: None,
            deadline: Duration::from_secs(20),
            start_deadline: Duration::from_secs(600),
            status_ttl: Duration::from_secs(5),
        }
    }
}

impl ColimaConfig {
    /// Uses `colima` at `path`.
    pub fn with_colima(mut self, path: impl Into<PathBuf>) -> Self {
        self.colima_path = Some(path.into());
        self
    }

    /// Looks `colima` up on this `PATH`-style list.
    pub fn with_search_path(mut self, path: impl Into<OsString>) -> Self {
        self.search_path = Some(path.into());
        self
    }

    /// Uses this Colima profile.
    pub fn with_profile(mut self, profile: impl Into<String>) -> Self {
        self.profile = Some(profile.into());
        self
    }

    /// The VM's Docker socket as colima makes it, `<home>/.colima/<profile>/docker.sock`
    /// (`$COLIMA_HOME` replaces `<home>/.colima` when the agent's environment sets it).
    pub fn docker_socket(&self, home: &std::path::Path) -> PathBuf {
        let base = std::env::var_os("COLIMA_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join(".colima"));
        base.join(self.profile.as_deref().unwrap_or("default"))
            .join("docker.sock")
    }

    /// Sets the deadline of ordinary calls.
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }
}

#[derive(Debug, Clone)]
enum StatusAnswer {
    Running(Arc<ColimaStatus>),
    Stopped,
}

/// A `colima` call that failed in a way with no port-level meaning.
#[derive(Debug)]
struct ColimaFailed {
    argv: String,
    code: Option<i32>,
    stderr: String,
}

impl fmt::Display for ColimaFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code {
            Some(c) => write!(f, "`colima {}` exited with {c}", self.argv)?,
            None => write!(f, "`colima {}` was killed by a signal", self.argv)?,
        }
        let stderr = self.stderr.trim();
        if !stderr.is_empty() {
            write!(f, ": {}", stderr.replace('\n', " / "))?;
        }
        Ok(())
    }
}

impl std::error::Error for ColimaFailed {}

/// Colima as a [`SubstratePort`].
#[derive(Debug)]
pub struct ColimaRuntime {
    config: ColimaConfig,
    health: Option<Arc<dyn HealthCheck>>,
    /// The last `colima status` answer and when it was taken. A tokio mutex so that concurrent
    /// callers share one slow `colima status` instead of each running their own.
    status_cache: tokio::sync::Mutex<Option<(Instant, StatusAnswer)>>,
    /// This `colima` rejected `--json` once (an older version): ask for the text forms.
    text_status_only: AtomicBool,
}

fn valid_profile(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 64
        && !p.starts_with('-')
        && p.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl ColimaRuntime {
    /// A runtime for `config`. The profile name is checked here, since it goes into argv.
    pub fn new(config: ColimaConfig) -> Result<Self, RuntimeError> {
        if let Some(p) = &config.profile {
            if !valid_profile(p) {
                return Err(RuntimeError::invalid_input(format!(
                    "colima profile {p:?}: use letters, digits, '-', '_' or '.', not starting with '-'"
                )));
            }
        }
        Ok(ColimaRuntime {
            config,
            health: None,
            status_cache: tokio::sync::Mutex::new(None),
            text_status_only: AtomicBool::new(false),
        })
    }

    /// Uses `check` for `is_healthy` instead of the cached `colima status`.
    pub fn with_health_check(mut self, check: Arc<dyn HealthCheck>) -> Self {
        self.health = Some(check);
        self
    }

    /// The configuration.
    pub fn config(&self) -> &ColimaConfig {
        &self.config
    }

    fn profile_name(&self) -> &str {
        self.config.profile.as_deref().unwrap_or("default")
    }

    /// `colima <verb> [--profile p] <rest...>`.
    async fn colima(
        &self,
        operation: RuntimeOperation,
        verb: &str,
        rest: &[&str],
        deadline: Duration,
    ) -> Result<(Vec<String>, CommandOutput), RuntimeError> {
        let location = ProgramLocation {
            name: "colima",
            path: self.config.colima_path.clone(),
            search_path: self.config.search_path.clone(),
        };
        let program = location
            .resolve()
            .map_err(|detail| RuntimeError::Unavailable {
                adapter: ADAPTER.into(),
                detail,
            })?;
        let mut argv = vec![verb.to_string()];
        if let Some(p) = &self.config.profile {
            argv.push("--profile".into());
            argv.push(p.clone());
        }
        argv.extend(rest.iter().map(|s| s.to_string()));
        tracing::debug!(program = %program.display(), ?argv, "colima");
        match command::run(&program, &argv, deadline).await {
            Ok(out) => Ok((argv, out)),
            Err(CommandError::Timeout) => Err(RuntimeError::Timeout {
                operation,
                after: deadline,
            }),
            Err(CommandError::Spawn(e)) => Err(RuntimeError::Unavailable {
                adapter: ADAPTER.into(),
                detail: format!("could not run {}: {e}", program.display()),
            }),
        }
    }

    fn failed(argv: &[String], out: &CommandOutput) -> RuntimeError {
        RuntimeError::Backend {
            adapter: ADAPTER.into(),
            source: Box::new(ColimaFailed {
                argv: argv.join(" "),
                code: out.code,
                stderr: out.stderr.clone(),
            }),
        }
    }

    fn parse_error(what: &str, detail: String) -> RuntimeError {
        RuntimeError::Parse {
            adapter: ADAPTER.into(),
            what: what.into(),
            detail,
        }
    }

    fn not_running(&self) -> RuntimeError {
        RuntimeError::Unavailable {
            adapter: ADAPTER.into(),
            detail: format!(
                "the colima VM (profile {}) is not running",
                self.profile_name()
            ),
        }
    }

    /// `colima status --json` (the log-format `colima status` where `--json` is unknown),
    /// reused for `status_ttl` unless `fresh`. Only colima's own "is not running" is a stopped
    /// VM: any other failure is an error, so it never leads to a `colima start`.
    async fn status(
        &self,
        operation: RuntimeOperation,
        fresh: bool,
    ) -> Result<StatusAnswer, RuntimeError> {
        let mut cache = self.status_cache.lock().await;
        if !fresh {
            if let Some((at, answer)) = cache.as_ref() {
                if at.elapsed() < self.config.status_ttl {
                    return Ok(answer.clone());
                }
            }
        }
        let answer = if self.text_status_only.load(Ordering::Relaxed) {
            self.text_status(operation).await?
        } else {
            let (argv, out) = self
                .colima(operation, "status", &["--json"], self.config.deadline)
                .await?;
            if out.success() {
                StatusAnswer::Running(Arc::new(
                    parse::parse_status_json(&out.stdout)
                        .map_err(|e| Self::parse_error("colima status --json", e))?,
                ))
            } else if parse::rejects_json_flag(&out.stderr) {
                // An older colima: its log-format status says the same, less a few numbers.
                self.text_status_only.store(true, Ordering::Relaxed);
                self.text_status(operation).await?
            } else if out.code == Some(1) && parse::says_not_running(&out.stderr) {
                StatusAnswer::Stopped
            } else {
                return Err(Self::failed(&argv, &out));
            }
        };
        *cache = Some((Instant::now(), answer.clone()));
        Ok(answer)
    }

    /// `colima status` in its log format (logrus writes it to stderr; stdout is read as well).
    async fn text_status(&self, operation: RuntimeOperation) -> Result<StatusAnswer, RuntimeError> {
        let (argv, out) = self
            .colima(operation, "status", &[], self.config.deadline)
            .await?;
        if out.success() {
            let log = parse::parse_status_log(&format!("{}\n{}", out.stdout, out.stderr));
            if !log.running {
                return Err(Self::parse_error(
                    "colima status",
                    "exited 0 without saying `colima is running`".into(),
                ));
            }
            Ok(StatusAnswer::Running(Arc::new(log.to_status())))
        } else if out.code == Some(1) && parse::says_not_running(&out.stderr) {
            Ok(StatusAnswer::Stopped)
        } else {
            Err(Self::failed(&argv, &out))
        }
    }

    async fn running_status(
        &self,
        operation: RuntimeOperation,
    ) -> Result<Arc<ColimaStatus>, RuntimeError> {
        match self.status(operation, false).await? {
            StatusAnswer::Running(s) => Ok(s),
            StatusAnswer::Stopped => Err(self.not_running()),
        }
    }

    /// `colima list --json`: every profile (`--profile` is a global flag and does not narrow it).
    /// Where `--json` is unknown (an older colima), the `colima list` table.
    pub async fn profiles(&self) -> Result<Vec<parse::ColimaProfile>, RuntimeError> {
        let op = RuntimeOperation::Health;
        if !self.text_status_only.load(Ordering::Relaxed) {
            let (argv, out) = self
                .colima(op, "list", &["--json"], self.config.deadline)
                .await?;
            if out.success() {
                return parse::parse_list_json(&out.stdout)
                    .map_err(|e| Self::parse_error("colima list --json", e));
            }
            if !parse::rejects_json_flag(&out.stderr) {
                return Err(Self::failed(&argv, &out));
            }
            self.text_status_only.store(true, Ordering::Relaxed);
        }
        let (argv, out) = self.colima(op, "list", &[], self.config.deadline).await?;
        if !out.success() {
            return Err(Self::failed(&argv, &out));
        }
        parse::parse_list_table(&out.stdout).map_err(|e| Self::parse_error("colima list", e))
    }
}

impl RuntimeAdapter for ColimaRuntime {
    fn adapter(&self) -> &str {
        ADAPTER
    }
}

#[async_trait]
impl SubstratePort for ColimaRuntime {
    async fn is_healthy(&self) -> Result<bool, RuntimeError> {
        if let Some(check) = &self.health {
            return check.is_healthy().await;
        }
        Ok(matches!(
            self.status(RuntimeOperation::Health, false).await?,
            StatusAnswer::Running(_)
        ))
    }

    async fn vm_ip(&self) -> Result<Option<IpAddr>, RuntimeError> {
        Ok(self
            .running_status(RuntimeOperation::VmIp)
            .await?
            .ip_address)
    }

    async fn uptime_seconds(&self) -> Result<u64, RuntimeError> {
        let op = RuntimeOperation::Uptime;
        self.running_status(op).await?;
        let (argv, out) = self
            .colima(
                op,
                "ssh",
                &["--", "cat", "/proc/uptime"],
                self.config.deadline,
            )
            .await?;
        if !out.success() {
            return Err(Self::failed(&argv, &out));
        }
        parse::parse_proc_uptime(&out.stdout).map_err(|e| Self::parse_error("/proc/uptime", e))
    }

    async fn ssh_config(&self) -> Result<Option<SshConfig>, RuntimeError> {
        let op = RuntimeOperation::SshConfig;
        self.running_status(op).await?;
        let (argv, out) = self
            .colima(op, "ssh-config", &[], self.config.deadline)
            .await?;
        if !out.success() {
            return Err(Self::failed(&argv, &out));
        }
        parse::parse_ssh_config(&out.stdout)
            .map(Some)
            .map_err(|e| Self::parse_error("colima ssh-config", e))
    }

    async fn ensure_running(&self) -> Result<EnsureRunningOutcome, RuntimeError> {
        let op = RuntimeOperation::EnsureRunning;
        if let StatusAnswer::Running(_) = self.status(op, true).await? {
            return Ok(EnsureRunningOutcome::AlreadyRunning);
        }
        let (argv, out) = self
            .colima(op, "start", &[], self.config.start_deadline)
            .await?;
        // Whatever happened, the cached "stopped" is stale now.
        *self.status_cache.lock().await = None;
        if !out.success() {
            return Err(Self::failed(&argv, &out));
        }
        Ok(EnsureRunningOutcome::Started)
    }
}
