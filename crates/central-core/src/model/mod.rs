//! The domain model of a node: its services, how each is probed and healed, its container
//! substrate and the loop's settings. Plain data (the heal policy's parts are checked when
//! built): the TOML reader in [`crate::inventory`] is one way to build it, and nothing here
//! knows TOML.

mod heal_policy;
mod hooks;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

pub use container_runtime::ComposeService;
use process_manager::{ServiceConfig, ServiceLabel};
use serde::{Deserialize, Serialize};

pub use heal_policy::{Backoff, Breaker, HealPolicy, Hysteresis, PolicyError};
pub use hooks::{Hook, HookAction, Hooks};

/// The node's job in the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// The Central host (containers, workers, gateway).
    Central,
    /// A relay-only machine.
    Relay,
    /// Any other node.
    #[default]
    Fleet,
}

/// Who supervises a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ManagerKind {
    /// launchd (macOS).
    Launchd,
    /// systemd (Linux).
    Systemd,
    /// A container in the node's substrate, through the container-runtime port.
    Container,
    /// The node agent's own embedded supervisor.
    Embedded,
    /// The null manager (nothing to supervise; the in-memory adapter).
    Null,
}

impl ManagerKind {
    /// The name used in the inventory and as the key of the manager map.
    pub fn as_str(self) -> &'static str {
        match self {
            ManagerKind::Launchd => "launchd",
            ManagerKind::Systemd => "systemd",
            ManagerKind::Container => "container",
            ManagerKind::Embedded => "embedded",
            ManagerKind::Null => "null",
        }
    }
}

impl fmt::Display for ManagerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How much a service matters, which decides bulkheads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum ServiceClass {
    /// Others depend on it (the substrate, Redis): while it is down its dependents are not healed.
    InfraCritical,
    /// A service that matters on its own (workers, gateway).
    #[default]
    ServiceCritical,
    /// An application; its failures never cause work on infrastructure.
    AppLevel,
}

impl fmt::Display for ServiceClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServiceClass::InfraCritical => "infra-critical",
            ServiceClass::ServiceCritical => "service-critical",
            ServiceClass::AppLevel => "app-level",
        })
    }
}

/// Which path reached a service: tried in the order listed, the first that answers wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum EndpointClass {
    /// This machine (loopback, or the local supervisor).
    #[default]
    Localhost,
    /// The container VM's address.
    Vm,
    /// A name resolved through DNS (tailnet, LAN).
    Dns,
}

impl fmt::Display for EndpointClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EndpointClass::Localhost => "localhost",
            EndpointClass::Vm => "vm",
            EndpointClass::Dns => "dns",
        })
    }
}

/// One way to reach a probe target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Its class, reported when it is the one that answered.
    pub class: EndpointClass,
    /// A URL (HTTP) or `host:port` (TCP).
    pub target: String,
}

/// What a probe checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeCheck {
    /// The run state through the service's process manager.
    Process,
    /// HTTP GET; passes when the status is within `status` (inclusive).
    Http {
        /// Endpoints in order.
        endpoints: Vec<Endpoint>,
        /// Lowest and highest accepted status.
        status: (u16, u16),
    },
    /// A TCP connect.
    Tcp {
        /// Endpoints in order.
        endpoints: Vec<Endpoint>,
    },
    /// A container's state and health check through the runtime port.
    Container {
        /// The container's name.
        name: String,
    },
    /// A command (argv, no shell) that passes with `exit_code`.
    Command {
        /// Program and arguments.
        argv: Vec<String>,
        /// The exit code that means healthy.
        exit_code: i32,
    },
}

/// A probe and its deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSpec {
    /// What it checks.
    pub check: ProbeCheck,
    /// How long one endpoint may take before the probe counts as failed.
    pub timeout: Duration,
}

/// One service.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSpec {
    /// Its label.
    pub label: ServiceLabel,
    /// Who supervises it.
    pub manager: ManagerKind,
    /// How much it matters.
    pub class: ServiceClass,
    /// Services (or the substrate) it needs, by label.
    pub depends_on: Vec<ServiceLabel>,
    /// The container name, for `manager = "container"` (defaults to the label).
    pub container: Option<String>,
    /// The Compose service the container belongs to (`compose = { project, file, service }`):
    /// its container is found by Compose's labels, and recreated from the file.
    pub compose: Option<ComposeService>,
    /// Its probes; all must pass. Never empty: a default is filled in from the manager.
    pub probes: Vec<ProbeSpec>,
    /// Its heal policy.
    pub heal: HealPolicy,
    /// The desired definition, for `apply` and the repair step.
    pub config: Option<ServiceConfig>,
    /// Watched, reported and escalated, never acted on by this node (`monitor_only = true`):
    /// a service on another host, one another supervisor owns, a remote engine.
    pub monitor_only: bool,
    /// What runs around its heals (`[[service.before_restart]]`, `[[service.after_heal]]`).
    pub hooks: Hooks,
}

impl ServiceSpec {
    /// The container a `manager = "container"` service names: its Compose service, else its
    /// `container` name (the label by default). `None` for other managers.
    pub fn container_ref(&self) -> Option<container_runtime::ContainerRef> {
        use container_runtime::ContainerRef;
        if self.manager != ManagerKind::Container {
            return None;
        }
        Some(match &self.compose {
            Some(compose) => ContainerRef::Compose(compose.clone()),
            None => ContainerRef::Named(
                self.container
                    .clone()
                    .unwrap_or_else(|| self.label.to_string()),
            ),
        })
    }
}

/// Which container runtime the node agent should build for the substrate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SubstrateKind {
    /// A Colima VM (macOS).
    Colima,
    /// A Docker Engine, local or remote.
    Docker,
    /// The in-memory runtime (demos, tests).
    Null,
}

/// The node's container substrate, a service of its own (class `infra-critical`).
#[derive(Debug, Clone, PartialEq)]
pub struct SubstrateSpec {
    /// The name services use in `depends_on`.
    pub name: ServiceLabel,
    /// Which runtime; `None` leaves the choice to the agent (Colima on macOS, Docker on Linux).
    pub kind: Option<SubstrateKind>,
    /// The Colima profile, when not the default.
    pub profile: Option<String>,
    /// The Docker endpoint (`unix:///var/run/docker.sock`, `tcp://host:2375`), when not the
    /// default.
    pub endpoint: Option<String>,
    /// The systemd unit that runs the Docker daemon (`docker`), for a Docker substrate the agent
    /// brings back through the systemd adapter; `None` leaves the daemon to someone else.
    pub unit: Option<String>,
    /// The Compose command, program and leading arguments (`["docker", "compose"]` by
    /// default, or `["docker-compose"]`).
    pub compose_command: Option<Vec<String>>,
    /// The client certificate, key and CA of a TLS engine (`tcp://host:2376`).
    pub tls: Option<EngineTls>,
    /// The health check's deadline.
    pub timeout: Duration,
    /// The deadline of bringing the substrate up (`colima start` boots a VM: minutes, not
    /// the seconds `loop.heal_timeout` gives a service restart).
    pub start_timeout: Duration,
    /// Its heal policy.
    pub heal: HealPolicy,
}

/// The client certificate, key and CA paths of a TLS engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineTls {
    /// The CA that signed the engine's certificate.
    pub ca: PathBuf,
    /// The client certificate.
    pub cert: PathBuf,
    /// The client key.
    pub key: PathBuf,
}

/// The node section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeSpec {
    /// Overrides the resolved node id.
    pub id: Option<String>,
    /// The node's role.
    pub role: Role,
    /// Where definitions that name no log files log (`[node] log_dir`); see
    /// [`NodeSpec::log_dir`].
    pub log_dir: Option<PathBuf>,
}

/// The node's log folder when the inventory names none.
pub const DEFAULT_LOG_DIR: &str = "/var/log/joelclaw";

impl NodeSpec {
    /// The node's log folder: `[node] log_dir`, else [`DEFAULT_LOG_DIR`].
    pub fn log_dir(&self) -> PathBuf {
        self.log_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_LOG_DIR))
    }
}

/// The loop's own settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopSettings {
    /// Time between probe rounds.
    pub interval: Duration,
    /// Probes (and heals) in flight at once.
    pub max_concurrency: usize,
    /// Deadline of one heal call (restart, repair, substrate start, notify).
    pub heal_timeout: Duration,
    /// Heal calls in flight at once on the node (a restart storm cannot take every worker).
    pub max_heals: usize,
    /// How long a manager may leave every question unanswered before `manager.unreachable`.
    pub manager_unreachable_after: Duration,
    /// A service's installed definition is compared with the desired one every this many of
    /// its rounds (where the binary gave the loop a way to compare).
    pub drift_every: u32,
    /// Where state is persisted, if the file names one (the CLI may override).
    pub state_dir: Option<PathBuf>,
}

impl Default for LoopSettings {
    fn default() -> Self {
        // A hang is healed within about 3.5 s: two failed 1 s rounds, then the restart.
        LoopSettings {
            interval: Duration::from_secs(1),
            max_concurrency: 64,
            heal_timeout: Duration::from_secs(30),
            max_heals: 8,
            manager_unreachable_after: Duration::from_secs(10),
            drift_every: 10,
            state_dir: None,
        }
    }
}

/// The command run when a service escalates to a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifySpec {
    /// Program and arguments (no shell). The event is passed as JSON in `JOELCLAW_EVENT`.
    pub argv: Vec<String>,
    /// Its deadline; it is killed after.
    pub timeout: Duration,
}

/// A parsed, checked inventory.
#[derive(Debug, Clone, PartialEq)]
pub struct Inventory {
    /// The file it came from (for messages).
    pub file: PathBuf,
    /// The node.
    pub node: NodeSpec,
    /// The container substrate, if the node has one.
    pub substrate: Option<SubstrateSpec>,
    /// Loop settings.
    pub settings: LoopSettings,
    /// The escalation hook.
    pub notify: Option<NotifySpec>,
    /// The services, in file order.
    pub services: Vec<ServiceSpec>,
    /// Settings for the agent's adapters, by manager name (`[managers.systemd]`).
    pub managers: BTreeMap<String, ManagerSettings>,
    /// Publishing this node to Central's Redis (`[fleet]`), when set.
    pub fleet: Option<FleetSpec>,
    /// Exporting heal events and health to an OpenTelemetry collector (`[telemetry]`), when set.
    pub telemetry: Option<TelemetrySpec>,
    /// `[api]`: the local API's optional read-only loopback listener.
    pub api: ApiSpec,
}

/// Where this node publishes its heartbeat, status and events (`[fleet]`). Plain data: the
/// `fleet` crate connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetSpec {
    /// `redis://host:port`, `rediss://…` or `redis+unix:///path`.
    pub redis: String,
    /// The ACL user.
    pub username: Option<String>,
    /// A file holding the password, readable by the agent only.
    pub password_file: Option<PathBuf>,
    /// `rediss://` only: the CA (PEM) the server's certificate must chain to; unset, the
    /// system's roots.
    pub ca_file: Option<PathBuf>,
    /// `rediss://` only: this node's client certificate (PEM), for mutual TLS; with `key_file`.
    pub cert_file: Option<PathBuf>,
    /// `rediss://` only: the client certificate's key (PEM), readable by the agent only.
    pub key_file: Option<PathBuf>,
    /// The key prefix (default `joelclaw`).
    pub prefix: Option<String>,
    /// How often the heartbeat is written (default 5 s; the node is stale after 3 of them).
    pub heartbeat: Option<Duration>,
    /// Events held while Redis is away or slow (default 1,024); past it they are dropped and
    /// counted, so memory stays bounded.
    pub queue: Option<usize>,
    /// The stream's approximate cap, shared by every node (`MAXLEN ~`, default 10,000).
    pub stream_maxlen: Option<usize>,
}

/// `[api]`: how the local API is reached besides its Unix socket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiSpec {
    /// A loopback address (`127.0.0.1:9999`) serving `/v1/health` and `/metrics` only, for a
    /// watchdog or a scraper that cannot reach the Unix socket. Nothing else is served there.
    pub health_listen: Option<std::net::SocketAddr>,
}

/// `[telemetry]`: heal events and counters to an OpenTelemetry collector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetrySpec {
    /// The collector's OTLP/HTTP address (`http://host:4318`).
    pub otlp: String,
    /// How often metrics are exported (default 10 s).
    pub export_every: Option<Duration>,
}

/// How the agent should set up one manager's adapter (`[managers.launchd]`,
/// `[managers.systemd]`, `[managers.embedded]`). Plain data: central-core knows no adapter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManagerSettings {
    /// The non-root account system services run as when their config names none.
    #[serde(default)]
    pub service_account: Option<String>,
    /// Its group.
    #[serde(default)]
    pub service_group: Option<String>,
    /// Where definitions are installed (`/Library/LaunchDaemons`, `/etc/systemd/system`).
    #[serde(default)]
    pub definition_dir: Option<PathBuf>,
    /// Argv put before the manager's CLI, to reach another machine's manager
    /// (e.g. `["nsenter", "-t", "4242", "-a"]`).
    #[serde(default)]
    pub command_prefix: Vec<String>,
    /// The user whose domain user-scoped services live in.
    #[serde(default)]
    pub uid: Option<u32>,
}

impl Inventory {
    /// The services that carry a desired definition, for `apply`.
    pub fn desired_configs(&self) -> impl Iterator<Item = (&ServiceSpec, &ServiceConfig)> {
        self.services
            .iter()
            .filter_map(|s| s.config.as_ref().map(|c| (s, c)))
    }

    /// A service by label.
    pub fn service(&self, label: &str) -> Option<&ServiceSpec> {
        self.services.iter().find(|s| s.label.as_str() == label)
    }

    /// Services in an order where every service comes after what it depends on. The reader
    /// checks the inventory is acyclic; on a cycle every service still appears once.
    pub fn dependency_order(&self) -> Vec<usize> {
        crate::graph::Graph::from_named(self.services.iter().map(|s| {
            (
                s.label.as_str(),
                s.depends_on.iter().map(ServiceLabel::as_str),
            )
        }))
        .dependency_order()
    }
}
