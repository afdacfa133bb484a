//! The inventory: a TOML file naming the node, its container substrate and its services, each
//! with a manager, a class, dependencies, probes, a heal policy and the desired definition.
//!
//! Parsing is all-or-nothing: a bad file is an [`InventoryError`] naming the file, line and key,
//! and no [`Inventory`] exists to act on.
//!
//! An example, the Central host's (`examples/central.toml` at the workspace root):
//!
//! ```toml
#![doc = include_str!("../../../examples/central.toml")]
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use process_manager::{ServiceConfig, ServiceLabel};
use serde::{Deserialize, Deserializer, Serialize};
use toml::Spanned;

/// The node's job in the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
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

/// When and how a service is healed. Every field has a default (see [`HealPolicy::default`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealPolicy {
    /// Consecutive failed probe rounds before the service counts as down (hysteresis N).
    pub failures_to_down: u32,
    /// Consecutive passing rounds before it counts as healthy again (hysteresis M).
    pub passes_to_up: u32,
    /// After a heal starts, no further step is taken for this long (the service is booting).
    pub grace: Duration,
    /// The wait after the first attempt of an episode before the second.
    pub backoff_initial: Duration,
    /// The longest wait between attempts.
    pub backoff_max: Duration,
    /// How much each wait grows.
    pub backoff_multiplier: f64,
    /// Random spread of each wait, as a fraction (0.2 = ±20 %), so nodes do not act in lockstep.
    pub jitter: f64,
    /// Failed heals within `breaker_window` that open the breaker.
    pub breaker_threshold: u32,
    /// The window failed heals are counted in.
    pub breaker_window: Duration,
    /// How long the breaker stays open before one half-open trial.
    pub breaker_cooldown: Duration,
    /// Healthy this long: the episode is over (backoff resets, a half-open breaker closes).
    pub stable_after: Duration,
    /// Restarts in one episode before the definition is re-applied instead (needs `config`).
    pub repair_after: u32,
    /// The longest the loop only observes a service the supervisor says it is restarting (or
    /// that says it is starting). launchd never gives up on a crash loop, so past this the
    /// loop climbs its own ladder (restart, repair, breaker, a person) instead of watching.
    pub observe_max: Duration,
}

impl Default for HealPolicy {
    /// Values chosen to beat the systems in the issue: a down service is noticed in three
    /// 10 s rounds, restarted at once, then after 10 s, 20 s, 40 s... up to 5 min; five failed
    /// heals in 30 min stop the loop acting and call a person.
    fn default() -> Self {
        HealPolicy {
            failures_to_down: 3,
            passes_to_up: 2,
            grace: Duration::from_secs(5),
            backoff_initial: Duration::from_secs(10),
            backoff_max: Duration::from_secs(300),
            backoff_multiplier: 2.0,
            jitter: 0.2,
            breaker_threshold: 5,
            breaker_window: Duration::from_secs(30 * 60),
            breaker_cooldown: Duration::from_secs(10 * 60),
            stable_after: Duration::from_secs(5 * 60),
            repair_after: 2,
            observe_max: Duration::from_secs(60),
        }
    }
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
    /// Its probes; all must pass. Never empty: a default is filled in from the manager.
    pub probes: Vec<ProbeSpec>,
    /// Its heal policy.
    pub heal: HealPolicy,
    /// The desired definition, for `apply` and the repair step.
    pub config: Option<ServiceConfig>,
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
    /// The health check's deadline.
    pub timeout: Duration,
    /// The deadline of bringing the substrate up (`colima start` boots a VM: minutes, not
    /// the seconds `loop.heal_timeout` gives a service restart).
    pub start_timeout: Duration,
    /// Its heal policy.
    pub heal: HealPolicy,
}

/// The node section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeSpec {
    /// Overrides the resolved node id.
    pub id: Option<String>,
    /// The node's role.
    pub role: Role,
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
    /// Where state is persisted, if the file names one (the CLI may override).
    pub state_dir: Option<PathBuf>,
}

impl Default for LoopSettings {
    fn default() -> Self {
        LoopSettings {
            interval: Duration::from_secs(10),
            max_concurrency: 64,
            heal_timeout: Duration::from_secs(30),
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
    /// Reads and checks an inventory file.
    pub fn load(path: impl AsRef<Path>) -> Result<Inventory, InventoryError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| InventoryError {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            key: String::new(),
            kind: InventoryErrorKind::Io,
            message: format!("cannot read the inventory: {e}"),
        })?;
        Inventory::parse(path, &text)
    }

    /// Checks inventory text; `file` is only used in messages.
    pub fn parse(file: impl AsRef<Path>, text: &str) -> Result<Inventory, InventoryError> {
        Parser {
            file: file.as_ref().to_path_buf(),
            src: text,
        }
        .parse()
    }

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
}

/// A duration written as `"10s"`, `"250ms"`, `"1m 30s"`.
#[derive(Debug, Clone, Copy)]
struct HumanDuration(Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        process_manager::serde_duration::deserialize(d).map(HumanDuration)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInventory {
    #[serde(default)]
    node: RawNode,
    substrate: Option<Spanned<RawSubstrate>>,
    #[serde(default, rename = "loop")]
    settings: RawLoop,
    #[serde(default)]
    heal: RawHeal,
    escalation: Option<Spanned<RawEscalation>>,
    #[serde(default, rename = "service")]
    services: Vec<Spanned<RawService>>,
    #[serde(default)]
    managers: BTreeMap<String, Spanned<ManagerSettings>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawNode {
    id: Option<Spanned<String>>,
    #[serde(default)]
    role: Role,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSubstrate {
    name: Option<Spanned<String>>,
    kind: Option<SubstrateKind>,
    profile: Option<String>,
    endpoint: Option<String>,
    timeout: Option<HumanDuration>,
    start_timeout: Option<HumanDuration>,
    #[serde(default)]
    heal: RawHeal,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLoop {
    interval: Option<HumanDuration>,
    max_concurrency: Option<usize>,
    heal_timeout: Option<HumanDuration>,
    probe_timeout: Option<HumanDuration>,
    state_dir: Option<PathBuf>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct RawHeal {
    failures_to_down: Option<u32>,
    passes_to_up: Option<u32>,
    grace: Option<HumanDuration>,
    backoff_initial: Option<HumanDuration>,
    backoff_max: Option<HumanDuration>,
    backoff_multiplier: Option<f64>,
    jitter: Option<f64>,
    breaker_threshold: Option<u32>,
    breaker_window: Option<HumanDuration>,
    breaker_cooldown: Option<HumanDuration>,
    stable_after: Option<HumanDuration>,
    repair_after: Option<u32>,
    observe_max: Option<HumanDuration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEscalation {
    notify: Vec<String>,
    timeout: Option<HumanDuration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    label: Spanned<String>,
    manager: ManagerKind,
    #[serde(default)]
    class: ServiceClass,
    #[serde(default)]
    depends_on: Vec<Spanned<String>>,
    container: Option<String>,
    #[serde(default, rename = "probe")]
    probes: Vec<Spanned<RawProbe>>,
    #[serde(default)]
    heal: RawHeal,
    config: Option<Spanned<toml::Table>>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum ProbeKind {
    Process,
    Http,
    Tcp,
    Container,
    Command,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProbe {
    kind: ProbeKind,
    url: Option<String>,
    address: Option<String>,
    #[serde(default)]
    endpoints: Vec<RawEndpoint>,
    status: Option<[u16; 2]>,
    argv: Option<Vec<String>>,
    exit_code: Option<i32>,
    container: Option<String>,
    timeout: Option<HumanDuration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEndpoint {
    #[serde(default)]
    class: EndpointClass,
    url: Option<String>,
    address: Option<String>,
}

struct Parser<'a> {
    file: PathBuf,
    src: &'a str,
}

/// 1-based line and column of a byte offset.
fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(src.len());
    let before = &src[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

/// The table header (`service.heal`) in force at `offset`, if any.
fn header_at(src: &str, offset: usize) -> Option<String> {
    let offset = offset.min(src.len());
    let line_start = src[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = src[offset..].find('\n').map_or(src.len(), |i| offset + i);
    std::iter::once(&src[line_start..line_end])
        .chain(src[..line_start].lines().rev())
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| {
            l.trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
}

/// The key written on the line holding `offset`, if the line is `key = value`.
fn key_on_line(src: &str, offset: usize) -> Option<String> {
    let offset = offset.min(src.len());
    let line_start = src[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = src[line_start..].lines().next().unwrap_or("").trim();
    if line.starts_with('[') {
        return None;
    }
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_matches('"');
    (!key.is_empty()).then(|| key.to_string())
}

fn join_key(header: Option<String>, key: Option<String>) -> String {
    match (header, key) {
        (Some(h), Some(k)) => format!("{h}.{k}"),
        (Some(h), None) => h,
        (None, Some(k)) => k,
        (None, None) => "(top level)".to_string(),
    }
}

/// The name between backticks in a serde message (`unknown field `foo``, `missing field `bar``).
fn quoted_name(message: &str, after: &str) -> Option<String> {
    let rest = &message[message.find(after)? + after.len()..];
    let rest = rest.trim_start().strip_prefix('`')?;
    Some(rest[..rest.find('`')?].to_string())
}

fn classify(message: &str) -> InventoryErrorKind {
    if message.contains("unknown field") {
        InventoryErrorKind::UnknownKey
    } else if message.contains("bad duration") {
        InventoryErrorKind::BadDuration
    } else if message.contains("invalid type") || message.contains("invalid length") {
        InventoryErrorKind::WrongType
    } else if message.contains("missing field") {
        InventoryErrorKind::MissingKey
    } else if message.contains("unknown variant") || message.contains("invalid value") {
        InventoryErrorKind::Invalid
    } else {
        InventoryErrorKind::Syntax
    }
}

impl Parser<'_> {
    fn error_at(
        &self,
        offset: usize,
        key: impl Into<String>,
        kind: InventoryErrorKind,
        message: impl Into<String>,
    ) -> InventoryError {
        let (line, column) = line_col(self.src, offset);
        InventoryError {
            file: self.file.clone(),
            line,
            column,
            key: key.into(),
            kind,
            message: message.into(),
        }
    }

    /// Turns a toml/serde error with a span into one that names line and key.
    fn toml_error(&self, err: &toml::de::Error) -> InventoryError {
        let message = err.message().trim().to_string();
        let offset = err.span().map_or(0, |s| s.start);
        let kind = classify(&message);
        let field = match kind {
            InventoryErrorKind::UnknownKey => quoted_name(&message, "unknown field"),
            InventoryErrorKind::MissingKey => quoted_name(&message, "missing field"),
            _ => None,
        };
        let key = join_key(
            header_at(self.src, offset),
            field.or_else(|| key_on_line(self.src, offset)),
        );
        let hint = match kind {
            InventoryErrorKind::UnknownKey => {
                " (check the spelling; see the inventory format in central-core's docs)"
            }
            _ => "",
        };
        self.error_at(offset, key, kind, format!("{message}{hint}"))
    }

    fn parse(&self) -> Result<Inventory, InventoryError> {
        let raw: RawInventory = toml::from_str(self.src).map_err(|e| self.toml_error(&e))?;
        let settings_probe_timeout = raw
            .settings
            .probe_timeout
            .map_or(Duration::from_secs(5), |d| d.0);
        // The node-wide defaults are checked on their own too, so a bad `[heal]` is reported
        // even in a file with no services yet.
        self.heal_policy(&raw.heal, &RawHeal::default(), 0, "heal")?;

        let settings = LoopSettings {
            interval: raw
                .settings
                .interval
                .map_or(Duration::from_secs(10), |d| d.0),
            max_concurrency: raw.settings.max_concurrency.unwrap_or(64),
            heal_timeout: raw
                .settings
                .heal_timeout
                .map_or(Duration::from_secs(30), |d| d.0),
            state_dir: raw.settings.state_dir.clone(),
        };
        if settings.max_concurrency == 0 || settings.interval.is_zero() {
            return Err(self.error_at(
                0,
                "loop",
                InventoryErrorKind::Invalid,
                "loop.interval must be above zero and loop.max_concurrency at least 1",
            ));
        }

        let node = NodeSpec {
            id: match &raw.node.id {
                Some(id) => {
                    node_identity::validate_node_id(id.get_ref()).map_err(|reason| {
                        self.error_at(
                            id.span().start,
                            "node.id",
                            InventoryErrorKind::Invalid,
                            reason,
                        )
                    })?;
                    Some(id.get_ref().clone())
                }
                None => None,
            },
            role: raw.node.role,
        };

        let substrate = match &raw.substrate {
            None => None,
            Some(sub) => {
                let offset = sub.span().start;
                let sub = sub.get_ref();
                let name = match &sub.name {
                    Some(n) => self.label(n, "substrate.name")?,
                    None => ServiceLabel::new("substrate").expect("a valid label"),
                };
                Some(SubstrateSpec {
                    name,
                    kind: sub.kind,
                    profile: sub.profile.clone(),
                    endpoint: sub.endpoint.clone(),
                    timeout: sub.timeout.map_or(settings_probe_timeout, |d| d.0),
                    start_timeout: sub
                        .start_timeout
                        .map_or(Duration::from_secs(5 * 60), |d| d.0),
                    heal: self.heal_policy(&sub.heal, &raw.heal, offset, "substrate.heal")?,
                })
            }
        };

        let notify = match &raw.escalation {
            None => None,
            Some(esc) => {
                if esc.get_ref().notify.is_empty() {
                    return Err(self.error_at(
                        esc.span().start,
                        "escalation.notify",
                        InventoryErrorKind::Invalid,
                        "escalation.notify needs a program (argv, no shell)",
                    ));
                }
                Some(NotifySpec {
                    argv: esc.get_ref().notify.clone(),
                    timeout: esc
                        .get_ref()
                        .timeout
                        .map_or(Duration::from_secs(10), |d| d.0),
                })
            }
        };

        let mut services = Vec::with_capacity(raw.services.len());
        let mut seen: HashMap<String, usize> = HashMap::new();
        if let Some(sub) = &substrate {
            seen.insert(
                sub.name.to_string(),
                raw.substrate.as_ref().map_or(0, |s| s.span().start),
            );
        }
        for spanned in &raw.services {
            let svc = spanned.get_ref();
            let label = self.label(&svc.label, "service.label")?;
            if let Some(first) = seen.get(label.as_str()) {
                let (first_line, _) = line_col(self.src, *first);
                return Err(self.error_at(
                    svc.label.span().start,
                    "service.label",
                    InventoryErrorKind::DuplicateLabel,
                    format!(
                        "duplicate label {:?}: already used on line {first_line}; labels must be unique",
                        label.as_str()
                    ),
                ));
            }
            seen.insert(label.to_string(), svc.label.span().start);
            services.push(self.service(
                spanned,
                label,
                &raw.heal,
                settings_probe_timeout,
                substrate.as_ref(),
            )?);
        }

        self.check_dependencies(&raw, &services, substrate.as_ref())?;

        let mut managers = BTreeMap::new();
        for (name, settings) in &raw.managers {
            if !matches!(name.as_str(), "launchd" | "systemd" | "embedded") {
                return Err(self.error_at(
                    settings.span().start,
                    format!("managers.{name}"),
                    InventoryErrorKind::UnknownKey,
                    format!("no manager {name:?} takes settings; use launchd, systemd or embedded"),
                ));
            }
            let settings = settings.get_ref();
            for (key, account) in [
                ("service_account", &settings.service_account),
                ("service_group", &settings.service_group),
            ] {
                if let Some(account) = account {
                    process_manager::check_account_name(key, account).map_err(|reason| {
                        self.error_at(
                            raw.managers[name].span().start,
                            format!("managers.{name}.{key}"),
                            InventoryErrorKind::Invalid,
                            reason,
                        )
                    })?;
                }
            }
            managers.insert(name.clone(), settings.clone());
        }
        Ok(Inventory {
            file: self.file.clone(),
            node,
            substrate,
            settings,
            notify,
            services,
            managers,
        })
    }

    fn label(&self, text: &Spanned<String>, key: &str) -> Result<ServiceLabel, InventoryError> {
        ServiceLabel::new(text.get_ref().as_str()).map_err(|e| {
            self.error_at(
                text.span().start,
                key,
                InventoryErrorKind::Invalid,
                e.to_string(),
            )
        })
    }

    fn heal_policy(
        &self,
        own: &RawHeal,
        node: &RawHeal,
        offset: usize,
        key: &str,
    ) -> Result<HealPolicy, InventoryError> {
        let d = HealPolicy::default();
        let dur = |a: Option<HumanDuration>, b: Option<HumanDuration>, def: Duration| {
            a.or(b).map_or(def, |x| x.0)
        };
        let p = HealPolicy {
            failures_to_down: own
                .failures_to_down
                .or(node.failures_to_down)
                .unwrap_or(d.failures_to_down),
            passes_to_up: own
                .passes_to_up
                .or(node.passes_to_up)
                .unwrap_or(d.passes_to_up),
            grace: dur(own.grace, node.grace, d.grace),
            backoff_initial: dur(own.backoff_initial, node.backoff_initial, d.backoff_initial),
            backoff_max: dur(own.backoff_max, node.backoff_max, d.backoff_max),
            backoff_multiplier: own
                .backoff_multiplier
                .or(node.backoff_multiplier)
                .unwrap_or(d.backoff_multiplier),
            jitter: own.jitter.or(node.jitter).unwrap_or(d.jitter),
            breaker_threshold: own
                .breaker_threshold
                .or(node.breaker_threshold)
                .unwrap_or(d.breaker_threshold),
            breaker_window: dur(own.breaker_window, node.breaker_window, d.breaker_window),
            breaker_cooldown: dur(
                own.breaker_cooldown,
                node.breaker_cooldown,
                d.breaker_cooldown,
            ),
            stable_after: dur(own.stable_after, node.stable_after, d.stable_after),
            observe_max: dur(own.observe_max, node.observe_max, d.observe_max),
            repair_after: own
                .repair_after
                .or(node.repair_after)
                .unwrap_or(d.repair_after),
        };
        let bad = |field: &str, why: &str| {
            Err(self.error_at(
                offset,
                format!("{key}.{field}"),
                InventoryErrorKind::Invalid,
                why.to_string(),
            ))
        };
        if p.failures_to_down == 0 {
            return bad("failures_to_down", "must be at least 1");
        }
        if p.passes_to_up == 0 {
            return bad("passes_to_up", "must be at least 1");
        }
        if p.breaker_threshold == 0 {
            return bad("breaker_threshold", "must be at least 1");
        }
        if !(0.0..=1.0).contains(&p.jitter) {
            return bad("jitter", "must be a fraction between 0 and 1 (0.2 = ±20 %)");
        }
        if !(p.backoff_multiplier >= 1.0 && p.backoff_multiplier <= 100.0) {
            return bad("backoff_multiplier", "must be between 1 and 100");
        }
        if p.backoff_max < p.backoff_initial {
            return bad("backoff_max", "must not be below backoff_initial");
        }
        Ok(p)
    }

    fn service(
        &self,
        spanned: &Spanned<RawService>,
        label: ServiceLabel,
        node_heal: &RawHeal,
        default_timeout: Duration,
        substrate: Option<&SubstrateSpec>,
    ) -> Result<ServiceSpec, InventoryError> {
        let svc = spanned.get_ref();
        let offset = spanned.span().start;
        let heal = self.heal_policy(&svc.heal, node_heal, offset, "service.heal")?;
        let container = match svc.manager {
            ManagerKind::Container => {
                Some(svc.container.clone().unwrap_or_else(|| label.to_string()))
            }
            _ => {
                if svc.container.is_some() {
                    return Err(self.error_at(
                        offset,
                        "service.container",
                        InventoryErrorKind::Invalid,
                        format!(
                            "service {label}: `container` only applies to manager = \"container\""
                        ),
                    ));
                }
                None
            }
        };
        if svc.manager == ManagerKind::Container && substrate.is_none() {
            return Err(self.error_at(
                offset,
                "service.manager",
                InventoryErrorKind::Invalid,
                format!("service {label} is a container but the inventory has no [substrate]"),
            ));
        }
        let mut probes = Vec::new();
        for p in &svc.probes {
            probes.push(self.probe(p, container.as_deref(), default_timeout)?);
        }
        if probes.is_empty() {
            probes.push(ProbeSpec {
                check: match &container {
                    Some(name) => ProbeCheck::Container { name: name.clone() },
                    None => ProbeCheck::Process,
                },
                timeout: default_timeout,
            });
        }
        let mut depends_on = Vec::new();
        for dep in &svc.depends_on {
            depends_on.push(self.label(dep, "service.depends_on")?);
        }
        // A container cannot be up while its substrate is down: say so once, here.
        if let (Some(_), Some(sub)) = (&container, substrate) {
            if !depends_on.contains(&sub.name) {
                depends_on.push(sub.name.clone());
            }
        }
        let config = match &svc.config {
            None => None,
            Some(table) => Some(self.config(table, &label)?),
        };
        Ok(ServiceSpec {
            label,
            manager: svc.manager,
            class: svc.class,
            depends_on,
            container,
            probes,
            heal,
            config,
        })
    }

    fn probe(
        &self,
        spanned: &Spanned<RawProbe>,
        container: Option<&str>,
        default_timeout: Duration,
    ) -> Result<ProbeSpec, InventoryError> {
        let p = spanned.get_ref();
        let offset = spanned.span().start;
        let bad = |key: &str, why: String| {
            self.error_at(
                offset,
                format!("service.probe.{key}"),
                InventoryErrorKind::Invalid,
                why,
            )
        };
        let timeout = p.timeout.map_or(default_timeout, |d| d.0);
        if timeout.is_zero() {
            return Err(bad("timeout", "must be above zero".into()));
        }
        let endpoints = |want_url: bool| -> Result<Vec<Endpoint>, InventoryError> {
            let (field, single) = if want_url {
                ("url", &p.url)
            } else {
                ("address", &p.address)
            };
            let mut out = Vec::new();
            if let Some(t) = single {
                out.push(Endpoint {
                    class: EndpointClass::Localhost,
                    target: t.clone(),
                });
            }
            for e in &p.endpoints {
                let t = if want_url { &e.url } else { &e.address };
                match t {
                    Some(t) => out.push(Endpoint {
                        class: e.class,
                        target: t.clone(),
                    }),
                    None => {
                        return Err(bad(
                            "endpoints",
                            format!("each endpoint of this probe needs `{field}`"),
                        ))
                    }
                }
            }
            if out.is_empty() {
                return Err(bad(
                    field,
                    format!("this probe needs `{field}` or `endpoints`"),
                ));
            }
            Ok(out)
        };
        let check =
            match p.kind {
                ProbeKind::Process => ProbeCheck::Process,
                ProbeKind::Http => {
                    let endpoints = endpoints(true)?;
                    for e in &endpoints {
                        if !e.target.starts_with("http://") {
                            return Err(bad(
                                "url",
                                format!(
                                "{:?}: only plain http:// URLs are probed (no TLS in the agent)",
                                e.target
                            ),
                            ));
                        }
                    }
                    let [lo, hi] = p.status.unwrap_or([200, 399]);
                    if lo > hi || !(100..=599).contains(&lo) || !(100..=599).contains(&hi) {
                        return Err(bad(
                            "status",
                            "write [lowest, highest], e.g. [200, 299]".into(),
                        ));
                    }
                    ProbeCheck::Http {
                        endpoints,
                        status: (lo, hi),
                    }
                }
                ProbeKind::Tcp => ProbeCheck::Tcp {
                    endpoints: endpoints(false)?,
                },
                ProbeKind::Container => ProbeCheck::Container {
                    name: match (&p.container, container) {
                        (Some(n), _) => n.clone(),
                        (None, Some(n)) => n.to_string(),
                        (None, None) => return Err(bad(
                            "container",
                            "a container probe needs `container` unless the service is a container"
                                .into(),
                        )),
                    },
                },
                ProbeKind::Command => {
                    let argv = p.argv.clone().unwrap_or_default();
                    if argv.is_empty() || argv[0].is_empty() {
                        return Err(bad(
                            "argv",
                            "a command probe needs argv = [\"/path/to/program\", ...]".into(),
                        ));
                    }
                    ProbeCheck::Command {
                        argv,
                        exit_code: p.exit_code.unwrap_or(0),
                    }
                }
            };
        Ok(ProbeSpec { check, timeout })
    }

    /// `[service.config]` is a `ServiceConfig` without the label (it is the service's). It is
    /// rendered back to TOML and parsed strictly, so its errors have keys, then mapped back to the
    /// original line.
    fn config(
        &self,
        table: &Spanned<toml::Table>,
        label: &ServiceLabel,
    ) -> Result<ServiceConfig, InventoryError> {
        let offset = table.span().start;
        let mut t = table.get_ref().clone();
        match t.get("label") {
            Some(toml::Value::String(l)) if l != label.as_str() => {
                return Err(self.error_at(
                    self.find_key(table, "label").unwrap_or(offset),
                    "service.config.label",
                    InventoryErrorKind::Invalid,
                    format!(
                        "config label {l:?} differs from the service label {label}; leave it out"
                    ),
                ))
            }
            _ => {}
        }
        t.insert("label".into(), toml::Value::String(label.to_string()));
        let rendered = toml::to_string(&t).unwrap_or_default();
        let config: ServiceConfig = toml::from_str(&rendered).map_err(|e| {
            let message = e.message().trim().to_string();
            let kind = classify(&message);
            let at = e.span().map_or(0, |s| s.start);
            let key = quoted_name(&message, "unknown field")
                .or_else(|| key_on_line(&rendered, at))
                .or_else(|| header_at(&rendered, at));
            let orig = key
                .as_deref()
                .and_then(|k| self.find_key(table, k.split('.').next().unwrap_or(k)))
                .unwrap_or(offset);
            self.error_at(
                orig,
                format!("service.config.{}", key.unwrap_or_default()),
                kind,
                format!("service {label}: {message}"),
            )
        })?;
        config.validate().map_err(|e| {
            self.error_at(
                offset,
                "service.config",
                InventoryErrorKind::Invalid,
                e.to_string(),
            )
        })?;
        Ok(config)
    }

    /// Where `key = ...` is written inside a table's span (or after its header).
    fn find_key(&self, table: &Spanned<toml::Table>, key: &str) -> Option<usize> {
        let span = table.span();
        // The span of a `[service.config]` table may start at its header; scan from there to the
        // next header.
        let start = span.start;
        let mut pos = start;
        for line in self.src[start..].split_inclusive('\n') {
            let t = line.trim_start();
            if pos > start && t.starts_with('[') {
                break;
            }
            if let Some(rest) = t.strip_prefix(key) {
                if rest.trim_start().starts_with('=') {
                    return Some(pos + (line.len() - t.len()));
                }
            }
            pos += line.len();
        }
        None
    }

    fn check_dependencies(
        &self,
        raw: &RawInventory,
        services: &[ServiceSpec],
        substrate: Option<&SubstrateSpec>,
    ) -> Result<(), InventoryError> {
        let index: BTreeMap<&str, usize> = services
            .iter()
            .enumerate()
            .map(|(i, s)| (s.label.as_str(), i))
            .collect();
        for (svc, rawsvc) in services.iter().zip(&raw.services) {
            for dep in &rawsvc.get_ref().depends_on {
                let name = dep.get_ref().as_str();
                let known =
                    index.contains_key(name) || substrate.is_some_and(|s| s.name.as_str() == name);
                if !known {
                    return Err(self.error_at(
                        dep.span().start,
                        "service.depends_on",
                        InventoryErrorKind::UnknownDependency,
                        format!(
                            "service {} depends on {name:?}, which is neither a service nor the substrate in this inventory",
                            svc.label
                        ),
                    ));
                }
                if name == svc.label.as_str() {
                    return Err(self.error_at(
                        dep.span().start,
                        "service.depends_on",
                        InventoryErrorKind::DependencyCycle,
                        format!("service {name} depends on itself"),
                    ));
                }
            }
        }
        // Depth-first search with colours; the edge that closes a cycle is reported.
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Active,
            Done,
        }
        let mut marks = vec![Mark::New; services.len()];
        let mut path: Vec<usize> = Vec::new();
        fn visit(
            i: usize,
            services: &[ServiceSpec],
            index: &BTreeMap<&str, usize>,
            marks: &mut [Mark],
            path: &mut Vec<usize>,
        ) -> Option<(usize, usize)> {
            marks[i] = Mark::Active;
            path.push(i);
            for (d, dep) in services[i].depends_on.iter().enumerate() {
                let Some(&j) = index.get(dep.as_str()) else {
                    continue;
                };
                match marks[j] {
                    Mark::Active => return Some((i, d)),
                    Mark::New => {
                        if let Some(found) = visit(j, services, index, marks, path) {
                            return Some(found);
                        }
                    }
                    Mark::Done => {}
                }
            }
            path.pop();
            marks[i] = Mark::Done;
            None
        }
        for i in 0..services.len() {
            if marks[i] != Mark::New {
                continue;
            }
            if let Some((from, dep_index)) = visit(i, services, &index, &mut marks, &mut path) {
                let target = services[from].depends_on[dep_index].as_str();
                let start = path
                    .iter()
                    .position(|&p| services[p].label.as_str() == target)
                    .unwrap_or(0);
                let mut names: Vec<&str> = path[start..]
                    .iter()
                    .map(|&p| services[p].label.as_str())
                    .collect();
                names.push(target);
                let span = raw.services[from].get_ref().depends_on[dep_index]
                    .span()
                    .start;
                return Err(self.error_at(
                    span,
                    "service.depends_on",
                    InventoryErrorKind::DependencyCycle,
                    format!("dependency cycle: {}", names.join(" -> ")),
                ));
            }
        }
        Ok(())
    }
}

/// Services in an order where every service comes after what it depends on (the substrate,
/// named `substrate`, first when present). The inventory is checked to be acyclic.
pub(crate) fn dependency_order(inventory: &Inventory) -> Vec<usize> {
    let index: BTreeMap<&str, usize> = inventory
        .services
        .iter()
        .enumerate()
        .map(|(i, s)| (s.label.as_str(), i))
        .collect();
    let mut done = vec![false; inventory.services.len()];
    let mut order = Vec::with_capacity(inventory.services.len());
    fn place(
        i: usize,
        inv: &Inventory,
        index: &BTreeMap<&str, usize>,
        done: &mut [bool],
        order: &mut Vec<usize>,
    ) {
        if done[i] {
            return;
        }
        done[i] = true;
        for dep in &inv.services[i].depends_on {
            if let Some(&j) = index.get(dep.as_str()) {
                place(j, inv, index, done, order);
            }
        }
        order.push(i);
    }
    for i in 0..inventory.services.len() {
        place(i, inventory, &index, &mut done, &mut order);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[node]
id = "mac-studio-central"
role = "central"

[substrate]
name = "colima"

[[service]]
label = "redis"
manager = "container"
class = "infra-critical"

[[service]]
label = "com.joelclaw.worker"
manager = "launchd"
depends_on = ["redis"]

[[service.probe]]
kind = "http"
endpoints = [
  { class = "localhost", url = "http://127.0.0.1:3111/health" },
  { class = "dns", url = "http://worker.tailnet:3111/health" },
]
status = [200, 299]
timeout = "2s"

[service.heal]
failures_to_down = 2
backoff_initial = "30s"

[service.config]
program = "/opt/joelclaw/bin/worker"
args = ["--port", "3111"]
env = { PATH = "/opt/homebrew/bin:/usr/bin:/bin" }
"#;

    fn parse(text: &str) -> Result<Inventory, InventoryError> {
        Inventory::parse("inv.toml", text)
    }

    #[test]
    fn the_documented_example_parses() {
        let inv = Inventory::parse(
            "central.toml",
            include_str!("../../../examples/central.toml"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(inv.services.len(), 7);
        let sub = inv.substrate.as_ref().unwrap();
        assert_eq!(sub.kind, Some(SubstrateKind::Colima));
        assert_eq!(
            inv.managers["launchd"].service_account.as_deref(),
            Some("joelclaw")
        );
        assert_eq!(sub.profile.as_deref(), Some("default"));
        assert_eq!(inv.desired_configs().count(), 2);
        assert_eq!(
            inv.notify.as_ref().unwrap().timeout,
            Duration::from_secs(10)
        );
        let minio = inv.service("minio").unwrap();
        assert_eq!(minio.container.as_deref(), Some("joelclaw-minio"));
        let worker = inv.service("com.joelclaw.system-bus-worker").unwrap();
        assert_eq!(worker.probes.len(), 2);
        assert_eq!(worker.heal.failures_to_down, 2);
        assert_eq!(worker.heal.passes_to_up, 2);
        // Dependencies come before dependents.
        let order = dependency_order(&inv);
        let pos = |l: &str| {
            order
                .iter()
                .position(|&i| inv.services[i].label.as_str() == l)
        };
        assert!(pos("redis") < pos("com.joelclaw.system-bus-worker"));
        assert!(pos("inngest") < pos("com.joelclaw.system-bus-worker"));
    }

    #[test]
    fn a_good_file_with_defaults_filled_in() {
        let inv = parse(GOOD).unwrap();
        assert_eq!(inv.node.id.as_deref(), Some("mac-studio-central"));
        assert_eq!(inv.node.role, Role::Central);
        assert_eq!(inv.settings, LoopSettings::default());
        let sub = inv.substrate.as_ref().unwrap();
        assert_eq!(sub.name.as_str(), "colima");

        let redis = inv.service("redis").unwrap();
        assert_eq!(redis.container.as_deref(), Some("redis"));
        assert_eq!(
            redis.probes[0].check,
            ProbeCheck::Container {
                name: "redis".into()
            }
        );
        // A container depends on its substrate without saying so.
        assert_eq!(redis.depends_on[0].as_str(), "colima");
        assert_eq!(redis.heal, HealPolicy::default());

        let worker = inv.service("com.joelclaw.worker").unwrap();
        assert_eq!(worker.class, ServiceClass::ServiceCritical);
        assert_eq!(worker.heal.failures_to_down, 2);
        assert_eq!(worker.heal.backoff_initial, Duration::from_secs(30));
        assert_eq!(worker.heal.passes_to_up, 2);
        match &worker.probes[0].check {
            ProbeCheck::Http { endpoints, status } => {
                assert_eq!(endpoints.len(), 2);
                assert_eq!(endpoints[1].class, EndpointClass::Dns);
                assert_eq!(*status, (200, 299));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(worker.probes[0].timeout, Duration::from_secs(2));
        let config = worker.config.as_ref().unwrap();
        assert_eq!(config.label.as_str(), "com.joelclaw.worker");
        assert_eq!(config.args, ["--port", "3111"]);
        assert_eq!(inv.desired_configs().count(), 1);
        // Dependencies come first.
        let order = dependency_order(&inv);
        assert_eq!(order, vec![0, 1]);
    }

    fn line_of(text: &str, needle: &str) -> usize {
        text.lines().position(|l| l.contains(needle)).unwrap() + 1
    }

    fn assert_error(text: &str, kind: InventoryErrorKind, needle: &str, key: &str) {
        let err = parse(text).unwrap_err();
        assert_eq!(err.kind, kind, "{err}");
        assert_eq!(err.line, line_of(text, needle), "{err}");
        assert_eq!(err.key, key, "{err}");
        let shown = err.to_string();
        assert!(
            shown.starts_with(&format!("inv.toml:{}:", err.line)),
            "{shown}"
        );
        assert!(shown.contains(key), "{shown}");
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let text = "[[service]]\nlabel = \"a\"\nmanager = \"null\"\n\n[service.heal]\nfailures_to_dwon = 3\n";
        assert_error(
            text,
            InventoryErrorKind::UnknownKey,
            "failures_to_dwon",
            "service.heal.failures_to_dwon",
        );
    }

    #[test]
    fn manager_settings_are_checked() {
        let text = "[managers.systemd]\nservice_account = \"joelclaw\"\ncommand_prefix = [\"nsenter\", \"-t\", \"7\", \"-a\"]\n";
        let inv = parse(text).unwrap();
        assert_eq!(inv.managers["systemd"].command_prefix.len(), 4);
        let err = parse("\n[managers.upstart]\nservice_account = \"x\"\n").unwrap_err();
        assert_eq!(
            (err.kind, err.line),
            (InventoryErrorKind::UnknownKey, 2),
            "{err}"
        );
        assert_eq!(err.key, "managers.upstart");
        let err = parse("[managers.launchd]\nservice_account = \"0day\"\n").unwrap_err();
        assert_eq!(err.kind, InventoryErrorKind::Invalid, "{err}");
        assert_eq!(err.key, "managers.launchd.service_account");
        let err = parse("[managers.launchd]\nunit_dir = \"/x\"\n").unwrap_err();
        assert_eq!(
            (err.kind, err.line),
            (InventoryErrorKind::UnknownKey, 2),
            "{err}"
        );
    }

    #[test]
    fn unknown_key_in_the_desired_config() {
        let text = "[[service]]\nlabel = \"a\"\nmanager = \"systemd\"\n\n[service.config]\nprogram = \"/bin/a\"\nprogramme = \"/bin/b\"\n";
        assert_error(
            text,
            InventoryErrorKind::UnknownKey,
            "programme",
            "service.config.programme",
        );
    }

    #[test]
    fn wrong_type_names_line_and_key() {
        let text = "[loop]\ninterval = \"5s\"\nmax_concurrency = \"lots\"\n";
        assert_error(
            text,
            InventoryErrorKind::WrongType,
            "max_concurrency",
            "loop.max_concurrency",
        );
    }

    #[test]
    fn duplicate_label_names_both_lines() {
        let text = "[[service]]\nlabel = \"a\"\nmanager = \"null\"\n\n[[service]]\nlabel = \"a\"  # again\nmanager = \"null\"\n";
        let err = parse(text).unwrap_err();
        assert_eq!(err.kind, InventoryErrorKind::DuplicateLabel);
        assert_eq!(err.line, line_of(text, "# again"));
        assert_eq!(err.key, "service.label");
        assert!(err.message.contains("line 2"), "{err}");
    }

    #[test]
    fn unknown_dependency_names_line_and_key() {
        let text =
            "[[service]]\nlabel = \"a\"\nmanager = \"null\"\ndepends_on = [\n  \"redis\",\n]\n";
        assert_error(
            text,
            InventoryErrorKind::UnknownDependency,
            "\"redis\"",
            "service.depends_on",
        );
    }

    #[test]
    fn dependency_cycle_shows_the_circle() {
        let text = "[[service]]\nlabel = \"a\"\nmanager = \"null\"\ndepends_on = [\"b\"]\n\n[[service]]\nlabel = \"b\"\nmanager = \"null\"\ndepends_on = [\"c\"] # b\n\n[[service]]\nlabel = \"c\"\nmanager = \"null\"\ndepends_on = [\"a\"] # c\n";
        let err = parse(text).unwrap_err();
        assert_eq!(err.kind, InventoryErrorKind::DependencyCycle, "{err}");
        assert_eq!(err.key, "service.depends_on");
        assert_eq!(err.line, line_of(text, "# c"), "{err}");
        assert!(err.message.contains("a -> b -> c -> a"), "{err}");
    }

    #[test]
    fn bad_duration_names_line_and_key() {
        let text = "[[service]]\nlabel = \"a\"\nmanager = \"null\"\n\n[service.heal]\ngrace = \"ten seconds\"\n";
        assert_error(
            text,
            InventoryErrorKind::BadDuration,
            "ten seconds",
            "service.heal.grace",
        );
    }

    #[test]
    fn syntax_error_names_the_line() {
        let text = "[node]\nrole = \"central\"\nid = \n";
        let err = parse(text).unwrap_err();
        assert_eq!(err.kind, InventoryErrorKind::Syntax, "{err}");
        assert_eq!(err.line, 3, "{err}");
    }

    #[test]
    fn bad_label_and_bad_enum_are_refused() {
        let text = "[[service]]\nlabel = \"-rf\"\nmanager = \"null\"\n";
        assert_error(text, InventoryErrorKind::Invalid, "-rf", "service.label");
        let text = "[[service]]\nlabel = \"a\"\nmanager = \"upstart\"\n";
        assert_error(
            text,
            InventoryErrorKind::Invalid,
            "upstart",
            "service.manager",
        );
    }

    #[test]
    fn missing_file_is_an_io_error_naming_it() {
        let err = Inventory::load("/nonexistent/inv.toml").unwrap_err();
        assert_eq!(err.kind, InventoryErrorKind::Io);
        assert!(err.to_string().contains("/nonexistent/inv.toml"));
    }
}
