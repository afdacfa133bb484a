//! Probes: one [`Probe`] trait the loop holds, real probes built from the inventory (process
//! state, HTTP, TCP, container health, substrate health, a command), and [`ScriptedProbe`], a
//! probe a test or an embedding program drives by hand.
//!
//! A probe with several endpoints tries them in order and passes with the first that answers,
//! reporting that endpoint's class. Every endpoint has a deadline; the loop puts an outer one on
//! the whole probe ([`Probe::deadline`]).

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use container_runtime::{
    ContainerHealth, ContainerRef, ContainerStatus, RuntimeError, SharedContainerRuntime,
};
use process_manager::{ProcessError, RunState, ServiceLabel, ServiceStatus, SharedProcessManager};
use serde::{Deserialize, Serialize};

use crate::inventory::{Endpoint, EndpointClass};

mod http;
pub(crate) mod port_holder;
mod scripted;
use http::Get;
pub use http::HttpClient;
pub use port_holder::PortOwner;
pub use scripted::ScriptedProbe;

/// Why a probe failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum ProbeFailure {
    /// The process is not running and nothing is bringing it back.
    NotRunning,
    /// The supervisor is already restarting it: observe, do not restart on top.
    SupervisorRestarting,
    /// It is starting: observe.
    Starting,
    /// The manager does not know the service (its definition is missing): repair.
    NotInstalled,
    /// It answered, but not as healthy (HTTP status, health check, exit code).
    Unhealthy,
    /// No endpoint answered (refused, no route, runtime down).
    Unreachable,
    /// The deadline passed.
    Timeout,
    /// The probe's own program is missing (its own failure, not the service's).
    BinaryNotFound,
    /// The process manager (or container runtime) could not be asked or did not answer in
    /// time (its CLI missing, daemon or bus down or frozen, no permission): the service's
    /// state is unknown, not bad. It counts neither as a failure nor as a pass.
    ManagerUnavailable,
    /// The probe could not decide (permission denied, adapter error).
    Error,
    /// A local endpoint failed and its port is held by a process that is not the service's own
    /// (the detail names its pid and name): the service cannot bind.
    PortHeld,
}

impl ProbeFailure {
    /// The stable name (`supervisor-restarting`).
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeFailure::NotRunning => "not-running",
            ProbeFailure::SupervisorRestarting => "supervisor-restarting",
            ProbeFailure::Starting => "starting",
            ProbeFailure::NotInstalled => "not-installed",
            ProbeFailure::Unhealthy => "unhealthy",
            ProbeFailure::Unreachable => "unreachable",
            ProbeFailure::Timeout => "timeout",
            ProbeFailure::BinaryNotFound => "binary-not-found",
            ProbeFailure::ManagerUnavailable => "manager-unavailable",
            ProbeFailure::Error => "error",
            ProbeFailure::PortHeld => "port-held",
        }
    }

    /// Whether the right step is to wait for someone else (the supervisor, a boot).
    pub fn is_observe(self) -> bool {
        matches!(
            self,
            ProbeFailure::SupervisorRestarting | ProbeFailure::Starting
        )
    }
}

impl fmt::Display for ProbeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The result of one probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeResult {
    /// `None` when it passed.
    pub failure: Option<ProbeFailure>,
    /// The class of the endpoint that answered (for a pass).
    pub endpoint_class: Option<EndpointClass>,
    /// What was seen, for people.
    pub detail: String,
    /// The run state, for a process probe.
    pub run_state: Option<RunState>,
    /// The pid, for a process probe of a running service.
    pub pid: Option<u32>,
    /// The manager's whole answer, for a process probe (restarts, last exit, enablement).
    #[serde(default)]
    pub process: Option<ServiceStatus>,
}

impl ProbeResult {
    /// A pass through `class`.
    pub fn pass(class: EndpointClass, detail: impl Into<String>) -> Self {
        ProbeResult {
            failure: None,
            endpoint_class: Some(class),
            detail: detail.into(),
            run_state: None,
            pid: None,
            process: None,
        }
    }

    /// A failure.
    pub fn fail(failure: ProbeFailure, detail: impl Into<String>) -> Self {
        ProbeResult {
            failure: Some(failure),
            endpoint_class: None,
            detail: detail.into(),
            run_state: None,
            pid: None,
            process: None,
        }
    }

    /// Whether it passed.
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }
}

/// Something that says whether a service is healthy.
#[async_trait]
pub trait Probe: Send + Sync + fmt::Debug {
    /// What it checks, for people (`tcp 127.0.0.1:6379`).
    fn describe(&self) -> String;

    /// The outer bound the loop puts on [`Probe::check`]; past it the probe failed with
    /// [`ProbeFailure::Timeout`].
    fn deadline(&self) -> Duration;

    /// Runs the check once.
    async fn check(&self) -> ProbeResult;

    /// Whether the check asks the service's manager (or the container runtime) rather than
    /// the service itself: then a passed deadline means the manager did not answer, which says
    /// nothing about the service ([`ProbeFailure::ManagerUnavailable`]).
    fn asks_manager(&self) -> bool {
        false
    }
}

/// Runs a probe under its deadline. Its detail comes back with secret-named values redacted
/// (a command line or an answer may quote one), since it reaches status, events and logs.
pub(crate) async fn run_probe(probe: &dyn Probe) -> ProbeResult {
    let mut result = run_probe_unredacted(probe).await;
    if let std::borrow::Cow::Owned(shown) = process_manager::redact::redact_text(&result.detail) {
        result.detail = shown;
    }
    result
}

async fn run_probe_unredacted(probe: &dyn Probe) -> ProbeResult {
    let deadline = probe.deadline();
    match tokio::time::timeout(deadline, probe.check()).await {
        Ok(r) => r,
        Err(_) if probe.asks_manager() => ProbeResult::fail(
            ProbeFailure::ManagerUnavailable,
            format!(
                "{}: the manager did not answer within {deadline:?}",
                probe.describe()
            ),
        ),
        Err(_) => ProbeResult::fail(
            ProbeFailure::Timeout,
            format!("{} did not answer within {deadline:?}", probe.describe()),
        ),
    }
}

/// The run state through the service's process manager.
#[derive(Debug)]
pub struct ProcessProbe {
    manager: SharedProcessManager,
    label: ServiceLabel,
    timeout: Duration,
    job: bool,
}

impl ProcessProbe {
    /// Probes `label` through `manager`.
    pub fn new(manager: SharedProcessManager, label: ServiceLabel, timeout: Duration) -> Self {
        ProcessProbe {
            manager,
            label,
            timeout,
            job: false,
        }
    }

    /// Probes a job (a service its triggers start): between runs it is idle with its trigger
    /// armed, which both adapters report as `SupervisorRestarting`; for a job that is its
    /// healthy state, not a crash being respawned, so it passes instead of being observed and
    /// then healed off its schedule.
    pub fn for_job(mut self) -> Self {
        self.job = true;
        self
    }
}

#[async_trait]
impl Probe for ProcessProbe {
    fn describe(&self) -> String {
        format!("process {}", self.label)
    }

    fn deadline(&self) -> Duration {
        self.timeout
    }

    fn asks_manager(&self) -> bool {
        true
    }

    async fn check(&self) -> ProbeResult {
        match self.manager.inspect(&self.label).await {
            Ok(status) => {
                let mut r = match status.state {
                    RunState::Running => ProbeResult::pass(
                        EndpointClass::Localhost,
                        format!("running, pid {}", status.pid.unwrap_or(0)),
                    ),
                    RunState::SupervisorRestarting if self.job => {
                        ProbeResult::pass(EndpointClass::Localhost, "idle, its trigger armed")
                    }
                    RunState::SupervisorRestarting => ProbeResult::fail(
                        ProbeFailure::SupervisorRestarting,
                        "the supervisor is restarting it",
                    ),
                    RunState::Starting => ProbeResult::fail(ProbeFailure::Starting, "starting"),
                    state => ProbeResult::fail(
                        ProbeFailure::NotRunning,
                        match status.last_exit {
                            Some(exit) => format!("{state} (last {exit})"),
                            None => state.to_string(),
                        },
                    ),
                };
                r.run_state = Some(status.state);
                r.pid = status.pid;
                r.process = Some(status);
                r
            }
            Err(ProcessError::NotFound { .. }) => ProbeResult::fail(
                ProbeFailure::NotInstalled,
                format!(
                    "{} does not know {}",
                    self.manager.capabilities().adapter,
                    self.label
                ),
            ),
            // The manager did not answer: that is not the service being down.
            Err(ProcessError::Timeout { after, .. }) => ProbeResult::fail(
                ProbeFailure::ManagerUnavailable,
                format!("the manager did not answer inspect within {after:?}"),
            ),
            Err(e @ (ProcessError::Unavailable { .. } | ProcessError::PermissionDenied { .. })) => {
                ProbeResult::fail(ProbeFailure::ManagerUnavailable, e.to_string())
            }
            Err(e) => ProbeResult::fail(ProbeFailure::Error, e.to_string()),
        }
    }
}

fn runtime_failure(e: &RuntimeError) -> ProbeFailure {
    match e {
        RuntimeError::Timeout { .. } => ProbeFailure::Timeout,
        RuntimeError::Unavailable { .. } => ProbeFailure::Unreachable,
        RuntimeError::NotFound { .. } => ProbeFailure::NotInstalled,
        _ => ProbeFailure::Error,
    }
}

/// A container's state and health check through the runtime port.
#[derive(Debug)]
pub struct ContainerProbe {
    runtime: SharedContainerRuntime,
    what: ContainerRef,
    class: EndpointClass,
    timeout: Duration,
}

impl ContainerProbe {
    /// Probes container `name`; a pass is reported as `class` (where the containers run).
    pub fn new(
        runtime: SharedContainerRuntime,
        name: impl Into<String>,
        class: EndpointClass,
        timeout: Duration,
    ) -> Self {
        Self::of(runtime, ContainerRef::Named(name.into()), class, timeout)
    }

    /// Probes the container `what` names (a Compose service's is found by its labels).
    pub fn of(
        runtime: SharedContainerRuntime,
        what: ContainerRef,
        class: EndpointClass,
        timeout: Duration,
    ) -> Self {
        ContainerProbe {
            runtime,
            what,
            class,
            timeout,
        }
    }
}

#[async_trait]
impl Probe for ContainerProbe {
    fn describe(&self) -> String {
        self.what.to_string()
    }

    fn deadline(&self) -> Duration {
        self.timeout
    }

    fn asks_manager(&self) -> bool {
        true
    }

    async fn check(&self) -> ProbeResult {
        match self.runtime.inspect_ref(&self.what).await {
            Ok(c) => container_verdict(&c, self.class),
            Err(e) => container_error(&e),
        }
    }
}

/// What a container's state says about it, a pass reported as `class`.
pub(crate) fn container_verdict(c: &ContainerStatus, class: EndpointClass) -> ProbeResult {
    match c {
        // Docker's restart policy is already restarting it (a crash loop): observed for
        // `observe_max`, then the loop's own ladder takes over.
        c if c.is_restarting() => ProbeResult::fail(
            ProbeFailure::SupervisorRestarting,
            format!(
                "restarting under Docker's restart policy ({} restarts)",
                c.restart_count
            ),
        ),
        c if !c.running => ProbeResult::fail(
            ProbeFailure::NotRunning,
            format!(
                "{} ({})",
                c.status,
                c.exit_code.map_or(String::new(), |e| format!("exit {e}"))
            ),
        ),
        c => match c.health {
            ContainerHealth::Healthy | ContainerHealth::None => {
                ProbeResult::pass(class, format!("running, health {:?}", c.health))
            }
            ContainerHealth::Starting => {
                ProbeResult::fail(ProbeFailure::Starting, "health check starting")
            }
            ContainerHealth::Unhealthy => ProbeResult::fail(
                ProbeFailure::Unhealthy,
                "running but its health check fails (Docker will not restart it)",
            ),
        },
    }
}

/// What an engine error on inspecting a container says about it.
pub(crate) fn container_error(e: &RuntimeError) -> ProbeResult {
    match e {
        // The runtime did not answer: the container's state is unknown, not bad.
        RuntimeError::Timeout { .. } | RuntimeError::Unavailable { .. } => {
            ProbeResult::fail(ProbeFailure::ManagerUnavailable, e.to_string())
        }
        e => ProbeResult::fail(runtime_failure(e), e.to_string()),
    }
}

/// The container substrate itself (`is_healthy`).
#[derive(Debug)]
pub struct SubstrateProbe {
    runtime: SharedContainerRuntime,
    timeout: Duration,
}

impl SubstrateProbe {
    /// Probes the runtime.
    pub fn new(runtime: SharedContainerRuntime, timeout: Duration) -> Self {
        SubstrateProbe { runtime, timeout }
    }
}

#[async_trait]
impl Probe for SubstrateProbe {
    fn describe(&self) -> String {
        format!("substrate {}", self.runtime.adapter())
    }

    fn deadline(&self) -> Duration {
        self.timeout
    }

    async fn check(&self) -> ProbeResult {
        match self.runtime.is_healthy().await {
            Ok(true) => ProbeResult::pass(EndpointClass::Localhost, "runtime answers"),
            Ok(false) => ProbeResult::fail(ProbeFailure::Unreachable, "runtime is down"),
            Err(e) => ProbeResult::fail(runtime_failure(&e), e.to_string()),
        }
    }
}

/// HTTP GET with an accepted status range, over endpoints in order.
#[derive(Debug)]
pub struct HttpProbe {
    client: HttpClient,
    endpoints: Endpoints,
    /// Each endpoint's request, made once (`None`: its target names `{vm_ip}`, or its URL is
    /// not one, which each check then reports).
    gets: Vec<Option<Get>>,
    status: (u16, u16),
    owner: Option<PortOwner>,
}

impl HttpProbe {
    /// A probe using `client` (a fresh connection per probe).
    pub fn new(
        client: HttpClient,
        endpoints: Vec<Endpoint>,
        status: (u16, u16),
        timeout: Duration,
    ) -> Self {
        let gets = endpoints
            .iter()
            .map(|ep| {
                (!ep.target.contains(VM_IP_PLACEHOLDER))
                    .then(|| Get::new(&ep.target).ok())
                    .flatten()
            })
            .collect();
        HttpProbe {
            client,
            endpoints: Endpoints::new(endpoints, timeout),
            gets,
            status,
            owner: None,
        }
    }

    /// The service whose own process should hold the endpoints' local ports: when the probe
    /// fails and another process holds one, the failure says so ([`ProbeFailure::PortHeld`]).
    pub fn with_owner(mut self, owner: Option<PortOwner>) -> Self {
        self.owner = owner;
        self
    }

    /// Resolves `{vm_ip}` in endpoint targets through `runtime` at each check (a Colima VM's
    /// address changes when it is recreated).
    pub fn with_vm(mut self, runtime: SharedContainerRuntime) -> Self {
        self.endpoints.vm = Some(runtime);
        self
    }

    /// A client suited to probes: no proxy (a probe of localhost must not go through one), no
    /// redirects (a redirect status is the answer), a fresh connection per probe.
    pub fn client() -> HttpClient {
        HttpClient
    }
}

#[async_trait]
impl Probe for HttpProbe {
    fn describe(&self) -> String {
        self.endpoints.describe("http")
    }

    fn deadline(&self) -> Duration {
        self.endpoints.deadline()
    }

    async fn check(&self) -> ProbeResult {
        let timeout = self.endpoints.timeout;
        let result = self
            .endpoints
            .first_answer(|index, ep, url| async move {
                let request = async {
                    match &self.gets[index] {
                        Some(get) => get.status().await,
                        None => self.client.get_status(&url).await,
                    }
                };
                match tokio::time::timeout(timeout, request).await {
                    Err(_) => timed_out(ep, timeout),
                    Ok(Err(e)) => ProbeResult::fail(
                        ProbeFailure::Unreachable,
                        format!("{} ({}): {e}", ep.target, ep.class),
                    ),
                    Ok(Ok(code)) => {
                        if (self.status.0..=self.status.1).contains(&code) {
                            return ProbeResult::pass(
                                ep.class,
                                format!("{} answered {code}", ep.target),
                            );
                        }
                        // It answered: a wrong status is the service's verdict, but a later
                        // endpoint may still be the healthy path (e.g. a stale localhost proxy).
                        ProbeResult::fail(
                            ProbeFailure::Unhealthy,
                            format!(
                                "{} ({}) answered {code}, expected {}-{}",
                                ep.target, ep.class, self.status.0, self.status.1
                            ),
                        )
                    }
                }
            })
            .await;
        self.endpoints.explain(result, self.owner.as_ref()).await
    }
}

/// A TCP connect, over endpoints in order.
#[derive(Debug)]
pub struct TcpProbe {
    endpoints: Endpoints,
    owner: Option<PortOwner>,
}

impl TcpProbe {
    /// Connects to each `host:port` in order.
    pub fn new(endpoints: Vec<Endpoint>, timeout: Duration) -> Self {
        TcpProbe {
            endpoints: Endpoints::new(endpoints, timeout),
            owner: None,
        }
    }

    /// The service whose own process should hold the endpoints' local ports (see
    /// [`HttpProbe::with_owner`]).
    pub fn with_owner(mut self, owner: Option<PortOwner>) -> Self {
        self.owner = owner;
        self
    }

    /// Resolves `{vm_ip}` in endpoint targets through `runtime` at each check.
    pub fn with_vm(mut self, runtime: SharedContainerRuntime) -> Self {
        self.endpoints.vm = Some(runtime);
        self
    }
}

/// Endpoints tried in order, shared by the network probes: `{vm_ip}` is filled at each check,
/// the first endpoint that passes wins (and names its class), else the last failure stands.
#[derive(Debug)]
struct Endpoints {
    list: Vec<Endpoint>,
    timeout: Duration,
    vm: Option<SharedContainerRuntime>,
}

impl Endpoints {
    fn new(list: Vec<Endpoint>, timeout: Duration) -> Self {
        Endpoints {
            list,
            timeout,
            vm: None,
        }
    }

    fn describe(&self, kind: &str) -> String {
        format!(
            "{kind} {}",
            self.list.first().map_or("", |e| e.target.as_str())
        )
    }

    fn deadline(&self) -> Duration {
        // Each endpoint may take its timeout, plus one for a VM address lookup; after a failure,
        // up to two more to find who holds the port (the manager, then the lookup).
        self.timeout * 2 * (self.list.len().max(1) as u32 + 1)
    }

    /// A failure explained by a stranger holding the port, where one does.
    async fn explain(&self, result: ProbeResult, owner: Option<&PortOwner>) -> ProbeResult {
        port_holder::explain(result, &self.list, owner, self.timeout).await
    }

    /// Runs `attempt` on each endpoint (its index, itself, its resolved target) until one
    /// passes.
    async fn first_answer<'a, F, Fut>(&'a self, attempt: F) -> ProbeResult
    where
        F: Fn(usize, &'a Endpoint, Cow<'a, str>) -> Fut,
        Fut: std::future::Future<Output = ProbeResult>,
    {
        let mut last = ProbeResult::fail(ProbeFailure::Unreachable, "no endpoint");
        for (index, ep) in self.list.iter().enumerate() {
            last = match resolve_target(&ep.target, self.vm.as_ref(), self.timeout).await {
                Ok(target) => attempt(index, ep, target).await,
                Err(why) => why,
            };
            if last.passed() {
                break;
            }
        }
        last
    }
}

fn timed_out(ep: &Endpoint, timeout: Duration) -> ProbeResult {
    ProbeResult::fail(
        ProbeFailure::Timeout,
        format!("{} ({}) timed out after {timeout:?}", ep.target, ep.class),
    )
}

/// The placeholder for the container VM's address in an endpoint target.
pub const VM_IP_PLACEHOLDER: &str = "{vm_ip}";

/// Fills `{vm_ip}` in `target` from the runtime; the error says why the endpoint is unusable.
async fn resolve_target<'a>(
    target: &'a str,
    vm: Option<&SharedContainerRuntime>,
    timeout: Duration,
) -> Result<Cow<'a, str>, ProbeResult> {
    if !target.contains(VM_IP_PLACEHOLDER) {
        return Ok(Cow::Borrowed(target));
    }
    let Some(runtime) = vm else {
        return Err(ProbeResult::fail(
            ProbeFailure::Unreachable,
            format!("{target}: no container runtime to ask for the VM address"),
        ));
    };
    match tokio::time::timeout(timeout, runtime.vm_ip()).await {
        Ok(Ok(Some(ip))) => Ok(Cow::Owned(
            target.replace(VM_IP_PLACEHOLDER, &ip.to_string()),
        )),
        Ok(Ok(None)) => Err(ProbeResult::fail(
            ProbeFailure::Unreachable,
            format!("{target}: the runtime has no VM address"),
        )),
        Ok(Err(e)) => Err(ProbeResult::fail(
            runtime_failure(&e),
            format!("{target}: {e}"),
        )),
        Err(_) => Err(ProbeResult::fail(
            ProbeFailure::Timeout,
            format!("{target}: vm_ip timed out after {timeout:?}"),
        )),
    }
}

#[async_trait]
impl Probe for TcpProbe {
    fn describe(&self) -> String {
        self.endpoints.describe("tcp")
    }

    fn deadline(&self) -> Duration {
        self.endpoints.deadline()
    }

    async fn check(&self) -> ProbeResult {
        let timeout = self.endpoints.timeout;
        let result = self
            .endpoints
            .first_answer(|_, ep, address| async move {
                let connect = tokio::net::TcpStream::connect(&*address);
                match tokio::time::timeout(timeout, connect).await {
                    Ok(Ok(_stream)) => {
                        ProbeResult::pass(ep.class, format!("{} accepted", ep.target))
                    }
                    Ok(Err(e)) => ProbeResult::fail(
                        ProbeFailure::Unreachable,
                        format!("{} ({}): {e}", ep.target, ep.class),
                    ),
                    Err(_) => timed_out(ep, timeout),
                }
            })
            .await;
        self.endpoints.explain(result, self.owner.as_ref()).await
    }
}

/// How a command run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CommandEnd {
    /// It exited with this code (`None`: killed by a signal).
    Exited(Option<i32>),
    /// The program is not there or not executable.
    NotFound(String),
    /// The deadline passed; it was killed.
    TimedOut,
    /// It could not be started for another reason.
    Failed(String),
}

/// Runs `argv` (no shell) with `env` added, output discarded, killed at `timeout` with its
/// whole process group (sysutil), so nothing the command started outlives the probe.
pub(crate) async fn run_command(
    argv: &[String],
    env: &[(&str, String)],
    timeout: Duration,
) -> CommandEnd {
    use sysutil::command::RunError;
    let Some((program, args)) = argv.split_first() else {
        return CommandEnd::NotFound("empty argv".into());
    };
    let mut cmd = sysutil::command::Command::new(program, timeout)
        .args(args)
        .discard_output();
    for (k, v) in env {
        cmd = cmd.env(k, v);
    }
    match cmd.run().await {
        Ok(out) => CommandEnd::Exited(out.code()),
        Err(RunError::NotFound { source, .. } | RunError::PermissionDenied { source, .. }) => {
            CommandEnd::NotFound(format!("{program}: {source}"))
        }
        Err(RunError::Io { source, .. }) => CommandEnd::Failed(format!("{program}: {source}")),
        Err(RunError::Timeout { .. }) => CommandEnd::TimedOut,
    }
}

/// A command (argv, no shell) that passes with an expected exit code.
#[derive(Debug)]
pub struct CommandProbe {
    argv: Vec<String>,
    exit_code: i32,
    timeout: Duration,
}

impl CommandProbe {
    /// Runs `argv`; passes when it exits with `exit_code` within `timeout`.
    pub fn new(argv: Vec<String>, exit_code: i32, timeout: Duration) -> Self {
        CommandProbe {
            argv,
            exit_code,
            timeout,
        }
    }
}

#[async_trait]
impl Probe for CommandProbe {
    fn describe(&self) -> String {
        format!("command {}", self.argv.join(" "))
    }

    fn deadline(&self) -> Duration {
        // The command's own deadline kills it; the outer one only guards a stuck reap.
        self.timeout + Duration::from_secs(1)
    }

    async fn check(&self) -> ProbeResult {
        match run_command(&self.argv, &[], self.timeout).await {
            CommandEnd::Exited(Some(code)) if code == self.exit_code => {
                ProbeResult::pass(EndpointClass::Localhost, format!("exited {code}"))
            }
            CommandEnd::Exited(code) => ProbeResult::fail(
                ProbeFailure::Unhealthy,
                match code {
                    Some(c) => format!("exited {c}, expected {}", self.exit_code),
                    None => "killed by a signal".to_string(),
                },
            ),
            CommandEnd::NotFound(why) => ProbeResult::fail(
                ProbeFailure::BinaryNotFound,
                format!("probe program not found: {why} (check PATH or use an absolute path)"),
            ),
            CommandEnd::TimedOut => ProbeResult::fail(
                ProbeFailure::Timeout,
                format!("did not exit within {:?}; killed", self.timeout),
            ),
            CommandEnd::Failed(why) => ProbeResult::fail(ProbeFailure::Error, why),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn ep(class: EndpointClass, target: String) -> Endpoint {
        Endpoint { class, target }
    }

    /// A one-line HTTP server answering every request with `status`.
    async fn http_server(status: u16) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let _ = sock.read(&mut buf).await;
                    let reply = format!(
                        "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                    let _ = sock.write_all(reply.as_bytes()).await;
                });
            }
        });
        format!("http://{addr}/health")
    }

    /// An address nothing listens on: the port is bound without listening and stays bound
    /// while the returned socket lives, so no other test or process on the machine can take it
    /// and answer.
    fn closed_address() -> (tokio::net::TcpSocket, String) {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = socket.local_addr().unwrap().to_string();
        (socket, addr)
    }

    #[tokio::test]
    async fn http_passes_in_range_and_reports_the_endpoint_that_answered() {
        let ok = http_server(204).await;
        let (_held, closed) = closed_address();
        let dead = format!("http://{closed}/health");
        let probe = HttpProbe::new(
            HttpProbe::client(),
            vec![
                ep(EndpointClass::Localhost, dead),
                ep(EndpointClass::Vm, ok),
            ],
            (200, 299),
            Duration::from_secs(2),
        );
        let r = run_probe(&probe).await;
        assert!(r.passed(), "{r:?}");
        assert_eq!(r.endpoint_class, Some(EndpointClass::Vm));
    }

    #[tokio::test]
    async fn http_out_of_range_is_unhealthy_and_refused_is_unreachable() {
        let bad = http_server(503).await;
        let probe = HttpProbe::new(
            HttpProbe::client(),
            vec![ep(EndpointClass::Localhost, bad)],
            (200, 299),
            Duration::from_secs(2),
        );
        let r = run_probe(&probe).await;
        assert_eq!(r.failure, Some(ProbeFailure::Unhealthy), "{r:?}");
        assert!(r.detail.contains("503"), "{r:?}");

        let (_held, closed) = closed_address();
        let dead = format!("http://{closed}/");
        let probe = HttpProbe::new(
            HttpProbe::client(),
            vec![ep(EndpointClass::Dns, dead)],
            (200, 299),
            Duration::from_secs(2),
        );
        assert_eq!(
            run_probe(&probe).await.failure,
            Some(ProbeFailure::Unreachable)
        );
    }

    #[tokio::test]
    async fn tcp_connects_to_a_listener_and_fails_where_none_listens() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = listener.local_addr().unwrap().to_string();
        let probe = TcpProbe::new(
            vec![ep(EndpointClass::Localhost, open)],
            Duration::from_secs(2),
        );
        let r = run_probe(&probe).await;
        assert!(r.passed(), "{r:?}");
        assert_eq!(r.endpoint_class, Some(EndpointClass::Localhost));
        let (_held, closed) = closed_address();
        let probe = TcpProbe::new(
            vec![ep(EndpointClass::Localhost, closed)],
            Duration::from_secs(2),
        );
        let r = run_probe(&probe).await;
        assert_eq!(r.failure, Some(ProbeFailure::Unreachable), "{r:?}");
    }

    #[tokio::test]
    async fn vm_endpoints_are_resolved_through_the_runtime() {
        use container_runtime::MemoryRuntime;
        let (_held, closed) = closed_address();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let endpoints = vec![
            ep(EndpointClass::Localhost, closed.clone()),
            ep(EndpointClass::Vm, format!("{{vm_ip}}:{port}")),
        ];
        let with_vm = Arc::new(MemoryRuntime::with_vm("127.0.0.1".parse().unwrap()));
        let probe = TcpProbe::new(endpoints.clone(), Duration::from_secs(2)).with_vm(with_vm);
        let r = run_probe(&probe).await;
        assert_eq!(r.endpoint_class, Some(EndpointClass::Vm), "{r:?}");
        let no_vm = Arc::new(MemoryRuntime::new());
        let probe = TcpProbe::new(endpoints, Duration::from_secs(2)).with_vm(no_vm);
        let r = run_probe(&probe).await;
        assert_eq!(r.failure, Some(ProbeFailure::Unreachable));
        assert!(r.detail.contains("no VM address"), "{r:?}");
    }

    #[tokio::test]
    async fn command_exit_codes_missing_binary_and_deadline() {
        let t = Duration::from_secs(5);
        let pass = CommandProbe::new(vec!["true".into()], 0, t);
        assert!(run_probe(&pass).await.passed());
        let fail = CommandProbe::new(vec!["false".into()], 0, t);
        assert_eq!(
            run_probe(&fail).await.failure,
            Some(ProbeFailure::Unhealthy)
        );
        let expect_one = CommandProbe::new(vec!["false".into()], 1, t);
        assert!(run_probe(&expect_one).await.passed());
        let missing = CommandProbe::new(vec!["/nonexistent/probe-bin".into()], 0, t);
        let r = run_probe(&missing).await;
        assert_eq!(r.failure, Some(ProbeFailure::BinaryNotFound), "{r:?}");
        let slow = CommandProbe::new(
            vec!["sleep".into(), "30".into()],
            0,
            Duration::from_millis(200),
        );
        let started = std::time::Instant::now();
        assert_eq!(run_probe(&slow).await.failure, Some(ProbeFailure::Timeout));
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[tokio::test]
    async fn a_timed_out_command_leaves_no_process_of_its_group() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        // The shell writes its pid (its process group) once its child is started.
        let probe = CommandProbe::new(
            vec![
                "/bin/sh".into(),
                "-c".into(),
                format!("sleep 30 & echo $$ > {}; wait", pidfile.display()),
            ],
            0,
            Duration::from_secs(2),
        );
        assert_eq!(run_probe(&probe).await.failure, Some(ProbeFailure::Timeout));
        let pgid: u32 = std::fs::read_to_string(&pidfile)
            .expect("the shell started within the deadline")
            .trim()
            .parse()
            .unwrap();
        sysutil::command::group::wait_until_empty(pgid, Duration::from_secs(10)).await;
    }

    #[tokio::test]
    async fn process_probe_reads_the_run_state() {
        use process_manager::{MemoryProcessManager, ProcessManagerPort, ServiceConfig};
        let pm = Arc::new(MemoryProcessManager::new());
        let label = ServiceLabel::new("w").unwrap();
        pm.enable(&ServiceConfig::new(label.clone(), "/bin/w"))
            .await
            .unwrap();
        let probe = ProcessProbe::new(pm.clone(), label.clone(), Duration::from_secs(1));
        let r = run_probe(&probe).await;
        assert!(r.passed());
        assert!(r.pid.is_some());
        pm.set_state(&label, RunState::SupervisorRestarting);
        let r = run_probe(&probe).await;
        assert_eq!(r.failure, Some(ProbeFailure::SupervisorRestarting));
        assert!(r.failure.unwrap().is_observe());
        let other = ProcessProbe::new(pm, ServiceLabel::new("x").unwrap(), Duration::from_secs(1));
        assert_eq!(
            run_probe(&other).await.failure,
            Some(ProbeFailure::NotInstalled)
        );
    }

    #[tokio::test]
    async fn an_idle_job_with_its_trigger_armed_passes_and_a_stopped_one_does_not() {
        use process_manager::{MemoryProcessManager, ProcessManagerPort, ServiceConfig};
        let pm = Arc::new(MemoryProcessManager::new());
        let label = ServiceLabel::new("janitor").unwrap();
        pm.enable(&ServiceConfig::new(label.clone(), "/bin/janitor"))
            .await
            .unwrap();
        let probe = ProcessProbe::new(pm.clone(), label.clone(), Duration::from_secs(1)).for_job();
        pm.set_state(&label, RunState::SupervisorRestarting);
        let r = run_probe(&probe).await;
        assert!(r.passed(), "{r:?}");
        pm.set_state(&label, RunState::Stopped);
        let r = run_probe(&probe).await;
        assert_eq!(r.failure, Some(ProbeFailure::NotRunning));
    }

    #[tokio::test]
    async fn container_and_substrate_probes_through_the_runtime() {
        use container_runtime::MemoryRuntime;
        let rt = Arc::new(MemoryRuntime::new());
        rt.add_container("redis", &[]);
        let probe = ContainerProbe::new(
            rt.clone(),
            "redis",
            EndpointClass::Vm,
            Duration::from_secs(1),
        );
        assert_eq!(
            run_probe(&probe).await.endpoint_class,
            Some(EndpointClass::Vm)
        );
        rt.set_container_health("redis", ContainerHealth::Unhealthy, true);
        assert_eq!(
            run_probe(&probe).await.failure,
            Some(ProbeFailure::Unhealthy)
        );
        let sub = SubstrateProbe::new(rt.clone(), Duration::from_secs(1));
        assert!(run_probe(&sub).await.passed());
        rt.set_healthy(false);
        assert_eq!(
            run_probe(&sub).await.failure,
            Some(ProbeFailure::Unreachable)
        );
        // The runtime not answering says nothing about the container: unknown, not down.
        assert_eq!(
            run_probe(&probe).await.failure,
            Some(ProbeFailure::ManagerUnavailable)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_probe_ends_at_its_deadline() {
        let p = ScriptedProbe::passing();
        p.set_hang(true);
        let started = tokio::time::Instant::now();
        let r = run_probe(&p).await;
        assert_eq!(r.failure, Some(ProbeFailure::Timeout));
        assert_eq!(started.elapsed(), p.deadline());
    }
}
