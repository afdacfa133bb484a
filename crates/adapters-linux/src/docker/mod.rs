//! `DockerRuntime`: the Docker Engine API through bollard, as an [`EnginePort`] (containers,
//! and Compose services recreated through the Compose CLI) and as a bare [`SubstratePort`] (a
//! daemon nothing here can start); [`SystemdDockerSubstrate`] is a daemon under systemd, brought
//! back through the systemd adapter.
//!
//! A local engine is reached on its unix socket, a remote one on `tcp://host:port`: plain HTTP,
//! or TLS with a client certificate, key and CA ([`DockerTls`], with the `docker-tls` feature;
//! without it TLS is refused by name). An `ssh://` endpoint goes through the system's `ssh`
//! client and `docker system dial-stdio` on the engine's host (bollard's `ssh`, the `docker-ssh`
//! feature; without it SSH is refused by name).
//! There is no VM, so `vm_ip` and `ssh_config` are `None`.

mod compose;
mod errors;
mod systemd_substrate;

pub use compose::ComposeCommand;
pub use systemd_substrate::SystemdDockerSubstrate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use bollard::errors::Error as BollardError;
use bollard::models::{ContainerInspectResponse, HealthStatusEnum};
use bollard::query_parameters::{
    InspectContainerOptions, ListContainersOptions, LogsOptions, RestartContainerOptions,
    StartContainerOptions, StopContainerOptions,
};
use bollard::Docker;
use container_runtime::{
    ComposeService, ContainerHealth, ContainerRestartOutcome, ContainerStatus, EnginePort,
    RuntimeAdapter, RuntimeError, RuntimeOperation, SshConfig, SubstratePort,
};

use errors::{convert, DockerError};

const ADAPTER: &str = "docker";

/// Where the engine listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DockerEndpoint {
    /// A unix socket (`unix:///var/run/docker.sock`).
    Unix(PathBuf),
    /// A remote engine over TCP (`tcp://host:2375`), kept as `host:port`; TLS when the runtime
    /// is given a [`DockerTls`].
    Tcp(String),
    /// A remote engine over SSH (`ssh://user@host`), kept as given.
    Ssh(String),
}

/// The client certificate, key and CA of a TLS engine (`tcp://host:2376`), as Docker's own
/// `--tlscacert`, `--tlscert` and `--tlskey`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerTls {
    /// The CA that signed the engine's certificate.
    pub ca: PathBuf,
    /// The client certificate.
    pub cert: PathBuf,
    /// The client key.
    pub key: PathBuf,
}

impl DockerEndpoint {
    /// The endpoint as `DOCKER_HOST` spells it (for the Compose CLI).
    pub fn url(&self) -> String {
        match self {
            DockerEndpoint::Unix(p) => format!("unix://{}", p.display()),
            DockerEndpoint::Tcp(hostport) => format!("tcp://{hostport}"),
            DockerEndpoint::Ssh(url) => url.clone(),
        }
    }
}

impl DockerEndpoint {
    /// Reads `unix:///path`, an absolute socket path, `tcp://host:port` or `http://host:port`.
    pub fn parse(url: &str) -> Result<Self, RuntimeError> {
        if let Some(path) = url.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(RuntimeError::invalid_input(format!(
                    "docker endpoint {url:?}: a unix socket path must be absolute"
                )));
            }
            return Ok(DockerEndpoint::Unix(PathBuf::from(path)));
        }
        if url.starts_with('/') {
            return Ok(DockerEndpoint::Unix(PathBuf::from(url)));
        }
        for scheme in ["tcp://", "http://"] {
            if let Some(rest) = url.strip_prefix(scheme) {
                let hostport = rest.trim_end_matches('/');
                if hostport.is_empty() || hostport.contains('/') || !hostport.contains(':') {
                    return Err(RuntimeError::invalid_input(format!(
                        "docker endpoint {url:?}: expected {scheme}host:port"
                    )));
                }
                return Ok(DockerEndpoint::Tcp(hostport.to_string()));
            }
        }
        if let Some(rest) = url.strip_prefix("ssh://") {
            if rest.is_empty() || rest.starts_with('-') || rest.chars().any(char::is_whitespace) {
                return Err(RuntimeError::invalid_input(format!(
                    "docker endpoint {url:?}: expected ssh://[user@]host"
                )));
            }
            // bollard hands `user@host:port` to ssh as a host name; a port is set where ssh
            // reads it.
            if rest
                .rsplit('@')
                .next()
                .is_some_and(|host| host.contains(':'))
            {
                return Err(RuntimeError::invalid_input(format!(
                    "docker endpoint {url:?}: no port in an ssh:// endpoint (the SSH client takes it as part of the host name); give the host a Port in ~/.ssh/config and use ssh://user@host"
                )));
            }
            return Ok(DockerEndpoint::Ssh(url.to_string()));
        }
        Err(RuntimeError::invalid_input(format!(
            "docker endpoint {url:?}: use unix:///path, tcp://host:port (TLS: give the cert paths) or ssh://user@host"
        )))
    }
}

/// A Docker Engine, local or remote.
///
/// Every call has a deadline (5 s by default; bollard's own 120 s is never what bounds a call);
/// a restart gets the stop grace on top. Server status codes map to meanings: 404 is
/// [`RuntimeError::NotFound`], 409 a conflict (a retryable backend error), 304 "already in that
/// state" (success), 401/403 [`RuntimeError::PermissionDenied`]; a socket that refuses or is
/// missing is [`RuntimeError::Unavailable`].
#[derive(Debug)]
pub struct DockerRuntime {
    endpoint: DockerEndpoint,
    deadline: Duration,
    stop_grace: Duration,
    compose: ComposeCommand,
    tls: Option<DockerTls>,
    /// Built and version-negotiated on first use, so a runtime can be made while the engine
    /// (and its socket) is down; a failed attempt is retried on the next call.
    client: tokio::sync::OnceCell<Docker>,
}

impl DockerRuntime {
    /// The engine at `url` (see [`DockerEndpoint::parse`]). Nothing is contacted until the first
    /// call, so a runtime can be built while the engine is down.
    pub fn connect(url: &str) -> Result<Self, RuntimeError> {
        Ok(Self::with_endpoint(DockerEndpoint::parse(url)?))
    }

    /// The machine's engine on `/var/run/docker.sock`.
    pub fn local() -> Self {
        Self::with_endpoint(DockerEndpoint::Unix(PathBuf::from("/var/run/docker.sock")))
    }

    /// The engine at `endpoint`, with a 5 s deadline per call and a 10 s stop grace.
    pub fn with_endpoint(endpoint: DockerEndpoint) -> Self {
        DockerRuntime {
            endpoint,
            deadline: Duration::from_secs(5),
            stop_grace: Duration::from_secs(10),
            compose: ComposeCommand::default(),
            tls: None,
            client: tokio::sync::OnceCell::new(),
        }
    }

    /// The deadline of each call.
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// How long a restart lets a container stop before it is killed (Docker's `t`, 10 s by
    /// default). A restart's deadline is this plus the call deadline.
    pub fn with_stop_grace(mut self, grace: Duration) -> Self {
        self.stop_grace = grace;
        self
    }

    /// How Compose services are recreated (`docker compose` by default).
    pub fn with_compose(mut self, compose: ComposeCommand) -> Self {
        self.compose = compose;
        self
    }

    /// Speaks TLS to a `tcp://` engine with these client certificate, key and CA paths.
    pub fn with_tls(mut self, tls: DockerTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &DockerEndpoint {
        &self.endpoint
    }

    /// Runs one engine call within `deadline`.
    async fn call<T>(
        &self,
        operation: RuntimeOperation,
        what: &str,
        deadline: Duration,
        fut: impl std::future::Future<Output = Result<T, BollardError>>,
    ) -> Result<T, RuntimeError> {
        match tokio::time::timeout(deadline, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(convert(operation, what, e)),
            Err(_) => Err(RuntimeError::Timeout {
                operation,
                after: deadline,
            }),
        }
    }

    /// The client, built and agreed on an API version with the engine once (bollard speaks a
    /// newer version than older engines accept; negotiation only ever steps down).
    async fn ready(&self, operation: RuntimeOperation) -> Result<&Docker, RuntimeError> {
        self.client
            .get_or_try_init(|| async {
                // bollard's own timeout is whole seconds and only backs ours up (the tokio
                // deadline in `call` is what callers see); 120 s by default, never used here.
                let backstop = self.deadline.as_secs() + self.stop_grace.as_secs() + 1;
                let docker = match &self.endpoint {
                    DockerEndpoint::Unix(path) => Docker::connect_with_unix(
                        &path.to_string_lossy(),
                        backstop,
                        bollard::API_DEFAULT_VERSION,
                    ),
                    DockerEndpoint::Tcp(hostport) if self.tls.is_some() => {
                        let docker = self.connect_tls(operation, hostport, backstop)?;
                        return self
                            .call(
                                operation,
                                "engine version",
                                self.deadline,
                                docker.negotiate_version(),
                            )
                            .await;
                    }
                    DockerEndpoint::Tcp(hostport) => Docker::connect_with_http(
                        &format!("tcp://{hostport}"),
                        backstop,
                        bollard::API_DEFAULT_VERSION,
                    ),
                    DockerEndpoint::Ssh(url) => Ok(self.connect_ssh(operation, url, backstop)?),
                }
                .map_err(|e| convert(operation, "engine", e))?;
                self.call(
                    operation,
                    if matches!(self.endpoint, DockerEndpoint::Ssh(_)) {
                        "engine version (over SSH)"
                    } else {
                        "engine version"
                    },
                    self.deadline,
                    docker.negotiate_version(),
                )
                .await
            })
            .await
    }

    /// A client speaking TLS to `hostport` with the configured certificate, key and CA; each
    /// file is checked first, so a missing one is named rather than left to a TLS error.
    #[cfg(feature = "docker-tls")]
    fn connect_tls(
        &self,
        operation: RuntimeOperation,
        hostport: &str,
        backstop: u64,
    ) -> Result<Docker, RuntimeError> {
        let tls = self.tls.as_ref().expect("only called with TLS configured");
        for (what, path) in [
            ("CA", &tls.ca),
            ("certificate", &tls.cert),
            ("key", &tls.key),
        ] {
            if let Err(e) = std::fs::File::open(path) {
                return Err(RuntimeError::InvalidInput {
                    label: None,
                    detail: format!("docker TLS {what} {}: {e}", path.display()),
                });
            }
        }
        Docker::connect_with_ssl(
            &format!("tcp://{hostport}"),
            &tls.key,
            &tls.cert,
            &tls.ca,
            backstop,
            bollard::API_DEFAULT_VERSION,
        )
        .map_err(|e| convert(operation, "engine (TLS)", e))
    }

    /// Without the `docker-tls` feature there is no TLS client: said by name.
    #[cfg(not(feature = "docker-tls"))]
    fn connect_tls(
        &self,
        operation: RuntimeOperation,
        _hostport: &str,
        _backstop: u64,
    ) -> Result<Docker, RuntimeError> {
        Err(self.unsupported_transport(operation, "TLS"))
    }

    /// A client reaching the engine over SSH: the system's `ssh` (a control master per
    /// connection, the user's keys, agent and known hosts) running `docker system dial-stdio`
    /// on the engine's host. Each call keeps its deadline, so an unreachable host is a
    /// timeout or a named connection error, never a wait.
    #[cfg(feature = "docker-ssh")]
    fn connect_ssh(
        &self,
        operation: RuntimeOperation,
        url: &str,
        backstop: u64,
    ) -> Result<Docker, RuntimeError> {
        Docker::connect_with_ssh(url, backstop, bollard::API_DEFAULT_VERSION)
            .map_err(|e| convert(operation, "engine (SSH)", e))
    }

    /// Without the `docker-ssh` feature there is no SSH client: said by name.
    #[cfg(not(feature = "docker-ssh"))]
    fn connect_ssh(
        &self,
        operation: RuntimeOperation,
        _url: &str,
        _backstop: u64,
    ) -> Result<Docker, RuntimeError> {
        Err(self.unsupported_transport(operation, "SSH"))
    }

    /// A transport this build does not link (bollard's `ssh` feature, and `ssl` without the
    /// `docker-tls` feature): said at once, before any connection is tried.
    fn unsupported_transport(&self, operation: RuntimeOperation, what: &str) -> RuntimeError {
        tracing::warn!(endpoint = %self.endpoint.url(), transport = what, "docker endpoint not supported by this build");
        RuntimeError::NotSupported {
            operation,
            adapter: format!(
                "{ADAPTER} ({what} endpoint {}: this build links no {what} client; reach the engine through a unix socket forward or plain tcp://)",
                self.endpoint.url()
            ),
        }
    }

    async fn inspect(
        &self,
        operation: RuntimeOperation,
        name: &str,
    ) -> Result<ContainerInspectResponse, RuntimeError> {
        check_container_name(name)?;
        let docker = self.ready(operation).await?;
        self.call(
            operation,
            &format!("container {name}"),
            self.deadline,
            docker.inspect_container(name, None::<InspectContainerOptions>),
        )
        .await
    }
}

/// Docker's 304: the container is already in the state asked for.
fn is_not_modified(e: &RuntimeError) -> bool {
    matches!(e, RuntimeError::Backend { source, .. }
        if source
            .downcast_ref::<DockerError>()
            .is_some_and(|d| matches!(d, DockerError::Server { status: 304, .. })))
}

/// Container names and ids as Docker allows them; anything else would be spliced into a URL
/// path.
fn check_container_name(name: &str) -> Result<(), RuntimeError> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(RuntimeError::invalid_input(format!(
            "container name {name:?}: use letters, digits, '_', '.', '-', starting with a letter or digit"
        )))
    }
}

fn status_of(c: ContainerInspectResponse) -> ContainerStatus {
    let state = c.state.unwrap_or_default();
    let running = state.running.unwrap_or(false);
    let restarting = state.restarting.unwrap_or(false);
    let health = match state.health.and_then(|h| h.status) {
        Some(HealthStatusEnum::HEALTHY) => ContainerHealth::Healthy,
        Some(HealthStatusEnum::UNHEALTHY) => ContainerHealth::Unhealthy,
        Some(HealthStatusEnum::STARTING) => ContainerHealth::Starting,
        _ => ContainerHealth::None,
    };
    let status = state
        .status
        .map(|s| s.to_string())
        .unwrap_or_else(|| "unknown".into());
    let uptime_seconds = if running {
        state.started_at.as_deref().and_then(seconds_since)
    } else {
        None
    };
    let config = c.config.unwrap_or_default();
    ContainerStatus {
        name: c
            .name
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string(),
        id: c.id.unwrap_or_default(),
        image: config.image.unwrap_or_default(),
        running,
        // Docker reports 0 for a running container; an exit code is only meaningful once it
        // has exited, or while Docker restarts it after a crash (`Running` and `Restarting`
        // both true, the crash's code kept): the code a person needs to see the loop's cause.
        exit_code: if running && !restarting {
            None
        } else {
            state.exit_code
        },
        status,
        health,
        restart_count: c.restart_count.unwrap_or(0).max(0) as u64,
        uptime_seconds,
        labels: config
            .labels
            .map(|l| l.into_iter().collect::<BTreeMap<_, _>>())
            .unwrap_or_default(),
    }
}

/// Seconds from an RFC 3339 time (Docker's `State.StartedAt`) to now; `None` for Docker's
/// "never" (`0001-01-01T00:00:00Z`) or a time it cannot read.
fn seconds_since(rfc3339: &str) -> Option<u64> {
    let at = humantime::parse_rfc3339(rfc3339).ok()?;
    Some(
        std::time::SystemTime::now()
            .duration_since(at)
            .unwrap_or_default()
            .as_secs(),
    )
}

/// The pid of the process serving a unix socket, as the kernel tells it (`SO_PEERCRED`).
fn socket_server_pid(socket: &Path) -> std::io::Result<u32> {
    let stream = std::os::unix::net::UnixStream::connect(socket)?;
    let creds = nix::sys::socket::getsockopt(&stream, nix::sys::socket::sockopt::PeerCredentials)
        .map_err(std::io::Error::from)?;
    u32::try_from(creds.pid())
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the socket's server is in another pid namespace",
            )
        })
}

impl RuntimeAdapter for DockerRuntime {
    fn adapter(&self) -> &str {
        ADAPTER
    }
}

/// The engine's daemon as a substrate nothing here manages: its health and uptime are real,
/// bringing it up is not supported (see [`SystemdDockerSubstrate`] for a daemon under systemd).
#[async_trait]
impl SubstratePort for DockerRuntime {
    /// `/_ping` answers `OK` and `info` answers, each within the deadline. A refused, missing
    /// or silent socket is `Ok(false)`; only a permission error is an `Err`, since then health
    /// cannot be told.
    #[tracing::instrument(skip_all, fields(adapter = ADAPTER))]
    async fn is_healthy(&self) -> Result<bool, RuntimeError> {
        let op = RuntimeOperation::Health;
        let verdict = async {
            let docker = self.ready(op).await?;
            let pong = self.call(op, "ping", self.deadline, docker.ping()).await?;
            if pong.trim() != "OK" {
                return Ok(false);
            }
            self.call(op, "info", self.deadline, docker.info()).await?;
            Ok(true)
        }
        .await;
        match verdict {
            Ok(healthy) => Ok(healthy),
            Err(e @ RuntimeError::PermissionDenied { .. }) => Err(e),
            Err(e) => {
                tracing::info!(error = %e, "docker engine not healthy");
                Ok(false)
            }
        }
    }

    async fn vm_ip(&self) -> Result<Option<std::net::IpAddr>, RuntimeError> {
        Ok(None)
    }

    /// Seconds since the engine process started: the kernel names the process serving the
    /// unix socket (`SO_PEERCRED`), and `/proc` gives its start time. The Engine API has no
    /// start time of its own. A remote (`tcp://`) engine's process cannot be seen from here, so
    /// that is [`RuntimeError::NotSupported`]. Behind a socket proxy this is the proxy's uptime.
    #[tracing::instrument(skip_all, fields(adapter = ADAPTER))]
    async fn uptime_seconds(&self) -> Result<u64, RuntimeError> {
        let op = RuntimeOperation::Uptime;
        let DockerEndpoint::Unix(socket) = &self.endpoint else {
            return Err(RuntimeError::NotSupported {
                operation: op,
                adapter: ADAPTER.into(),
            });
        };
        let socket = socket.clone();
        let target = socket.display().to_string();
        let work = tokio::task::spawn_blocking(move || {
            let pid = socket_server_pid(&socket)?;
            sysutil::uptime::from_proc(Path::new("/proc"), pid)
        });
        match tokio::time::timeout(self.deadline, work).await {
            Err(_) => Err(RuntimeError::Timeout {
                operation: op,
                after: self.deadline,
            }),
            Ok(Err(join)) => Err(RuntimeError::Backend {
                adapter: ADAPTER.into(),
                source: Box::new(join),
            }),
            Ok(Ok(Err(e))) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                Err(RuntimeError::PermissionDenied {
                    operation: op,
                    target,
                    detail: e.to_string(),
                })
            }
            Ok(Ok(Err(e))) => Err(RuntimeError::Unavailable {
                adapter: ADAPTER.into(),
                detail: format!("engine process: {e}"),
            }),
            Ok(Ok(Ok(secs))) => Ok(secs),
        }
    }

    async fn ssh_config(&self) -> Result<Option<SshConfig>, RuntimeError> {
        Ok(None)
    }
}

#[async_trait]
impl EnginePort for DockerRuntime {
    #[tracing::instrument(skip_all, fields(adapter = ADAPTER, container = name))]
    async fn inspect_container(&self, name: &str) -> Result<ContainerStatus, RuntimeError> {
        Ok(status_of(
            self.inspect(RuntimeOperation::InspectContainer, name)
                .await?,
        ))
    }

    #[tracing::instrument(skip_all, fields(adapter = ADAPTER, container = name))]
    async fn restart_container(&self, name: &str) -> Result<ContainerRestartOutcome, RuntimeError> {
        let op = RuntimeOperation::RestartContainer;
        let before = status_of(self.inspect(op, name).await?);
        let docker = self.ready(op).await?;
        let grace_secs = i32::try_from(self.stop_grace.as_secs()).unwrap_or(i32::MAX);
        let options = RestartContainerOptions {
            t: Some(grace_secs),
            signal: None,
        };
        let result = self
            .call(
                op,
                &format!("container {name}"),
                self.deadline + self.stop_grace,
                docker.restart_container(name, Some(options)),
            )
            .await;
        match result {
            Ok(()) => {}
            // 304: already in the state asked for; nothing left to do.
            Err(e) if is_not_modified(&e) => {}
            Err(e) => return Err(e),
        }
        Ok(if before.running {
            ContainerRestartOutcome::Restarted
        } else {
            ContainerRestartOutcome::Started
        })
    }

    /// Starts a stopped container. A running one is left alone; one Docker is restarting in a
    /// loop is restarted (starting it again would not break the loop's wait).
    #[tracing::instrument(skip_all, fields(adapter = ADAPTER, container = name))]
    async fn start_container(&self, name: &str) -> Result<ContainerRestartOutcome, RuntimeError> {
        let op = RuntimeOperation::StartContainer;
        let before = status_of(self.inspect(op, name).await?);
        if before.is_restarting() {
            self.restart_container(name).await?;
            return Ok(ContainerRestartOutcome::Started);
        }
        if before.running {
            return Ok(ContainerRestartOutcome::AlreadyRunning);
        }
        let docker = self.ready(op).await?;
        let result = self
            .call(
                op,
                &format!("container {name}"),
                self.deadline,
                docker.start_container(name, None::<StartContainerOptions>),
            )
            .await;
        match result {
            Ok(()) => Ok(ContainerRestartOutcome::Started),
            Err(e) if is_not_modified(&e) => Ok(ContainerRestartOutcome::AlreadyRunning),
            Err(e) => Err(e),
        }
    }

    /// `docker stop` with the adapter's grace: a container stopped this way stays stopped
    /// whatever its restart policy.
    async fn stop_container(&self, name: &str) -> Result<bool, RuntimeError> {
        let op = RuntimeOperation::StopContainer;
        let before = status_of(self.inspect(op, name).await?);
        let docker = self.ready(op).await?;
        let options = StopContainerOptions {
            t: Some(i32::try_from(self.stop_grace.as_secs()).unwrap_or(i32::MAX)),
            signal: None,
        };
        let result = self
            .call(
                op,
                &format!("container {name}"),
                self.deadline + self.stop_grace,
                docker.stop_container(name, Some(options)),
            )
            .await;
        match result {
            Ok(()) => Ok(before.running),
            // 304: it was not running.
            Err(e) if is_not_modified(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `docker logs --tail N` (stdout and stderr), read whole within the deadline.
    async fn container_logs(&self, name: &str, tail: usize) -> Result<Vec<String>, RuntimeError> {
        use futures::TryStreamExt;
        let op = RuntimeOperation::ContainerLogs;
        let docker = self.ready(op).await?;
        let options = LogsOptions {
            stdout: true,
            stderr: true,
            tail: tail.to_string(),
            ..Default::default()
        };
        let chunks: Vec<bollard::container::LogOutput> = self
            .call(
                op,
                &format!("container {name}"),
                self.deadline,
                docker.logs(name, Some(options)).try_collect(),
            )
            .await?;
        let text: String = chunks
            .iter()
            .map(|c| String::from_utf8_lossy(c.as_ref()).into_owned())
            .collect();
        Ok(text.lines().map(str::to_string).collect())
    }

    async fn follow_container_logs(
        &self,
        name: &str,
        tail: usize,
        line: &mut (dyn FnMut(String) + Send),
    ) -> Result<(), RuntimeError> {
        use futures::TryStreamExt;
        let op = RuntimeOperation::ContainerLogs;
        let docker = self.ready(op).await?;
        let options = LogsOptions {
            stdout: true,
            stderr: true,
            follow: true,
            tail: tail.to_string(),
            ..Default::default()
        };
        // The engine reached and the container there, within the deadline; then the stream
        // lasts as long as the container writes (no output for a while is normal).
        self.inspect_container(name).await?;
        let what = format!("container {name}");
        let mut stream = docker.logs(name, Some(options));
        // A chunk may end mid-line: the rest waits for its newline.
        let mut partial = String::new();
        while let Some(chunk) = stream.try_next().await.map_err(|e| convert(op, &what, e))? {
            partial.push_str(&String::from_utf8_lossy(chunk.as_ref()));
            while let Some(at) = partial.find('\n') {
                let rest = partial.split_off(at + 1);
                partial.pop();
                line(std::mem::replace(&mut partial, rest));
            }
        }
        if !partial.is_empty() {
            line(partial);
        }
        Ok(())
    }

    /// `docker compose -p P -f F up -d --no-deps --force-recreate SERVICE` (or the configured
    /// Compose command)
    /// against this engine (`DOCKER_HOST`), by argv with the Compose deadline.
    #[tracing::instrument(skip_all, fields(adapter = ADAPTER, project = %service.project, service = %service.service))]
    async fn recreate(
        &self,
        service: &ComposeService,
    ) -> Result<ContainerRestartOutcome, RuntimeError> {
        // Compose reaches an ssh:// engine itself (DOCKER_HOST), with the same ssh client.
        if matches!(self.endpoint, DockerEndpoint::Ssh(_)) && !cfg!(feature = "docker-ssh") {
            return Err(self.unsupported_transport(RuntimeOperation::Recreate, "SSH"));
        }
        self.compose
            .up(&self.endpoint.url(), self.tls.as_ref(), service)
            .await?;
        Ok(ContainerRestartOutcome::Recreated)
    }

    /// Lists (including stopped containers) through the engine's own label filter, then
    /// inspects each so restart counts and health are real, not guessed from summary text.
    #[tracing::instrument(skip_all, fields(adapter = ADAPTER))]
    async fn list_containers(
        &self,
        label: Option<&str>,
    ) -> Result<Vec<ContainerStatus>, RuntimeError> {
        let op = RuntimeOperation::ListContainers;
        let docker = self.ready(op).await?;
        let mut filters = std::collections::HashMap::new();
        if let Some(label) = label {
            if label.is_empty() || label.chars().any(char::is_control) {
                return Err(RuntimeError::invalid_input(format!(
                    "label filter {label:?}: expected key or key=value"
                )));
            }
            filters.insert("label".to_string(), vec![label.to_string()]);
        }
        let options = ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        };
        let summaries = self
            .call(
                op,
                "containers",
                self.deadline,
                docker.list_containers(Some(options)),
            )
            .await?;
        let ids: Vec<String> = summaries.into_iter().filter_map(|s| s.id).collect();
        let inspections =
            futures::future::join_all(ids.iter().map(|id| self.inspect(op, id))).await;
        let mut out = Vec::with_capacity(ids.len());
        for result in inspections {
            match result {
                Ok(c) => out.push(status_of(c)),
                // Removed between the listing and the inspection.
                Err(RuntimeError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::errors::convert;
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            DockerEndpoint::parse("unix:///run/x/docker.sock").unwrap(),
            DockerEndpoint::Unix("/run/x/docker.sock".into())
        );
        assert_eq!(
            DockerEndpoint::parse("/var/run/docker.sock").unwrap(),
            DockerEndpoint::Unix("/var/run/docker.sock".into())
        );
        assert_eq!(
            DockerEndpoint::parse("tcp://10.0.0.5:2375").unwrap(),
            DockerEndpoint::Tcp("10.0.0.5:2375".into())
        );
        assert_eq!(
            DockerEndpoint::parse("http://node:2375/").unwrap(),
            DockerEndpoint::Tcp("node:2375".into())
        );
        // An SSH endpoint is read as given (used through the system's ssh client).
        assert_eq!(
            DockerEndpoint::parse("ssh://joel@central").unwrap(),
            DockerEndpoint::Ssh("ssh://joel@central".into())
        );
        for bad in [
            "https://node:2376",
            "unix://relative",
            "tcp://nohost",
            "ssh://",
            "ssh://-oProxyCommand=x",
            "ssh://joel@central:2222",
            "",
        ] {
            assert!(
                matches!(
                    DockerEndpoint::parse(bad),
                    Err(RuntimeError::InvalidInput { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn container_names_never_reach_a_url_unchecked() {
        for ok in ["redis", "joelclaw-redis-1", "a.b_c", "3f2a9c"] {
            check_container_name(ok).unwrap();
        }
        for bad in ["", "../images/json", "a/b", "-x", "a b", "x?y=1", "é"] {
            assert!(check_container_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn status_codes_map_to_meanings() {
        let server = |status_code| BollardError::DockerResponseServerError {
            status_code,
            message: "m".into(),
        };
        let op = RuntimeOperation::InspectContainer;
        assert!(matches!(
            convert(op, "c", server(404)),
            RuntimeError::NotFound { .. }
        ));
        assert!(matches!(
            convert(op, "c", server(403)),
            RuntimeError::PermissionDenied { .. }
        ));
        match convert(op, "c", server(409)) {
            RuntimeError::Backend { source, .. } => {
                assert!(source.to_string().contains("conflict"), "{source}");
            }
            other => panic!("{other:?}"),
        }
        let e = convert(op, "c", server(500));
        assert!(e.is_retryable(), "{e:?}");
        let refused = BollardError::IOError {
            err: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        };
        assert!(matches!(
            convert(op, "c", refused),
            RuntimeError::Unavailable { .. }
        ));
        let denied = BollardError::IOError {
            err: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        };
        assert!(matches!(
            convert(op, "c", denied),
            RuntimeError::PermissionDenied { .. }
        ));
    }
}
