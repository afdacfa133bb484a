//! From the file as written ([`super::raw`]) to the checked model: defaults filled in, every
//! value checked, each error pointing at the span of the value (or key) it concerns.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use process_manager::ServiceLabel;
use toml::Spanned;

use super::raw::{echo, Dur, HumanDuration, RawHeal, RawInventory, RawService, BAD_DURATION};
use super::{InventoryError, InventoryErrorKind};
use crate::graph::Graph;
use crate::model::{
    Backoff, Breaker, HealPolicy, Hysteresis, Inventory, LoopSettings, ManagerKind, NodeSpec,
    NotifySpec, ProbeCheck, ProbeSpec, ServiceSpec, SubstrateSpec,
};

/// A probe endpoint's deadline when the file gives none (`loop.probe_timeout`): a hung
/// service is a failed round after 1 s.
const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The longest duration any key accepts: a year. Longer is a typo (`"100000000000d"`), and
/// would overflow the loop's millisecond clock arithmetic.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 60 * 60);

pub(super) struct Parser<'a> {
    pub(super) file: PathBuf,
    pub(super) src: &'a str,
}

/// 1-based line and column of a byte offset.
pub(super) fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(src.len());
    let before = &src[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

/// The dotted key of a serde path: map keys only (no array indices, no `Spanned` internals).
pub(super) fn dotted(path: &serde_path_to_error::Path) -> String {
    path.iter()
        .filter_map(|segment| match segment {
            serde_path_to_error::Segment::Map { key } if !key.starts_with("$__") => {
                Some(key.as_str())
            }
            _ => None,
        })
        .collect::<Vec<_>>()
        .join(".")
}

pub(super) fn join(prefix: &str, key: &str) -> String {
    match (prefix.is_empty(), key.is_empty()) {
        (true, true) => "(top level)".to_string(),
        (true, false) => key.to_string(),
        (false, true) => prefix.to_string(),
        (false, false) => format!("{prefix}.{key}"),
    }
}

/// The field serde names in a `missing field `x`` message (serde's own wording).
pub(super) fn missing_field(message: &str) -> Option<&str> {
    let rest = message.split("missing field `").nth(1)?;
    rest.split('`').next()
}

/// The kind of a serde error, from the wording serde's standard errors use.
pub(super) fn classify(message: &str) -> InventoryErrorKind {
    if message.contains("unknown field") {
        InventoryErrorKind::UnknownKey
    } else if message.contains(BAD_DURATION) {
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

const UNKNOWN_KEY_HINT: &str =
    " (check the spelling; see the inventory format in central-core's docs)";

impl Parser<'_> {
    pub(super) fn error_at(
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

    /// A serde error at its exact place: toml gives the span, the path gives the key.
    fn serde_error(
        &self,
        err: serde_path_to_error::Error<toml::de::Error>,
        prefix: &str,
        fallback_offset: usize,
    ) -> InventoryError {
        let key = dotted(err.path());
        let inner = err.into_inner();
        let message = inner.message().trim().to_string();
        let kind = classify(&message);
        let key = match (kind, missing_field(&message)) {
            (InventoryErrorKind::MissingKey, Some(field)) => join(&join(prefix, &key), field),
            _ => join(prefix, &key),
        };
        let hint = if kind == InventoryErrorKind::UnknownKey {
            UNKNOWN_KEY_HINT
        } else {
            ""
        };
        let offset = inner.span().map_or(fallback_offset, |s| s.start);
        self.error_at(offset, key, kind, format!("{message}{hint}"))
    }

    /// A duration, if written, at most [`MAX_DURATION`].
    fn duration(
        &self,
        value: Option<&Spanned<HumanDuration>>,
        key: &str,
    ) -> Result<Option<Duration>, InventoryError> {
        let Some(value) = value else { return Ok(None) };
        let d = value.get_ref().0;
        if d > MAX_DURATION {
            return Err(self.error_at(
                value.span().start,
                key,
                InventoryErrorKind::BadDuration,
                format!("{d:?} is too long: durations are at most 365 days"),
            ));
        }
        Ok(Some(d))
    }

    /// A duration that must be above zero.
    pub(super) fn positive_duration(
        &self,
        value: &Dur,
        key: &str,
        default: Duration,
    ) -> Result<Duration, InventoryError> {
        let d = self.duration(value.as_ref(), key)?.unwrap_or(default);
        if d.is_zero() {
            let at = value.as_ref().map_or(0, |v| v.span().start);
            return Err(self.error_at(at, key, InventoryErrorKind::Invalid, "must be above zero"));
        }
        Ok(d)
    }

    pub(super) fn parse(&self) -> Result<Inventory, InventoryError> {
        let de = toml::Deserializer::new(self.src);
        let raw: RawInventory =
            serde_path_to_error::deserialize(de).map_err(|e| self.serde_error(e, "", 0))?;
        let probe_timeout = self.positive_duration(
            &raw.settings.probe_timeout,
            "loop.probe_timeout",
            DEFAULT_PROBE_TIMEOUT,
        )?;
        // The node-wide defaults are checked on their own too, so a bad `[heal]` is reported
        // even in a file with no services yet.
        self.heal_policy(raw.heal.as_ref(), "heal", None)?;

        let defaults = LoopSettings::default();
        let settings = LoopSettings {
            interval: self.positive_duration(
                &raw.settings.interval,
                "loop.interval",
                defaults.interval,
            )?,
            max_concurrency: match &raw.settings.max_concurrency {
                None => defaults.max_concurrency,
                Some(n) if *n.get_ref() == 0 => {
                    return Err(self.error_at(
                        n.span().start,
                        "loop.max_concurrency",
                        InventoryErrorKind::Invalid,
                        "must be at least 1",
                    ))
                }
                Some(n) => *n.get_ref(),
            },
            heal_timeout: self.positive_duration(
                &raw.settings.heal_timeout,
                "loop.heal_timeout",
                defaults.heal_timeout,
            )?,
            max_heals: match &raw.settings.max_heals {
                None => defaults.max_heals,
                Some(n) if *n.get_ref() == 0 => {
                    return Err(self.error_at(
                        n.span().start,
                        "loop.max_heals",
                        InventoryErrorKind::Invalid,
                        "must be at least 1",
                    ))
                }
                Some(n) => *n.get_ref(),
            },
            manager_unreachable_after: self.positive_duration(
                &raw.settings.manager_unreachable_after,
                "loop.manager_unreachable_after",
                defaults.manager_unreachable_after,
            )?,
            drift_every: match &raw.settings.drift_every {
                None => defaults.drift_every,
                Some(n) if *n.get_ref() == 0 => {
                    return Err(self.error_at(
                        n.span().start,
                        "loop.drift_every",
                        InventoryErrorKind::Invalid,
                        "must be at least 1",
                    ))
                }
                Some(n) => *n.get_ref(),
            },
            state_dir: raw.settings.state_dir.clone(),
        };

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
            log_dir: match &raw.node.log_dir {
                Some(dir) if !dir.get_ref().is_absolute() => {
                    return Err(self.error_at(
                        dir.span().start,
                        "node.log_dir",
                        InventoryErrorKind::Invalid,
                        format!("{}: not an absolute path", dir.get_ref().display()),
                    ))
                }
                Some(dir) => Some(dir.get_ref().clone()),
                None => None,
            },
        };

        let substrate = match &raw.substrate {
            None => None,
            Some(sub) => {
                let sub = sub.get_ref();
                let (unit, compose_command) = self.substrate_engine_keys(sub)?;
                let name = match &sub.name {
                    Some(n) => self.label(n, "substrate.name")?,
                    None => ServiceLabel::new("substrate").expect("a valid label"),
                };
                Some(SubstrateSpec {
                    name,
                    kind: sub.kind,
                    profile: sub.profile.clone(),
                    endpoint: sub.endpoint.clone(),
                    unit,
                    compose_command,
                    tls: sub.tls.clone(),
                    timeout: self.positive_duration(
                        &sub.timeout,
                        "substrate.timeout",
                        probe_timeout,
                    )?,
                    start_timeout: self.positive_duration(
                        &sub.start_timeout,
                        "substrate.start_timeout",
                        Duration::from_secs(5 * 60),
                    )?,
                    heal: self.heal_policy(
                        sub.heal.as_ref(),
                        "substrate.heal",
                        raw.heal.as_ref(),
                    )?,
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
                    timeout: self.positive_duration(
                        &esc.get_ref().timeout,
                        "escalation.timeout",
                        Duration::from_secs(10),
                    )?,
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
                raw.heal.as_ref(),
                probe_timeout,
                substrate.as_ref(),
            )?);
        }

        self.check_dependencies(&raw, &services, substrate.as_ref())?;
        order_after_dependencies(&mut services);
        default_log_paths(&mut services, &node.log_dir());

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
            let at = settings.span().start;
            let settings = settings.get_ref();
            for (key, account) in [
                ("service_account", &settings.service_account),
                ("service_group", &settings.service_group),
            ] {
                if let Some(account) = account {
                    process_manager::check_account_name(key, account).map_err(|reason| {
                        self.error_at(
                            at,
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
            fleet: raw.fleet.as_ref().map(|f| self.fleet(f)).transpose()?,
            telemetry: raw
                .telemetry
                .as_ref()
                .map(|t| self.telemetry(t))
                .transpose()?,
            api: raw
                .api
                .as_ref()
                .map(|a| self.api(a))
                .transpose()?
                .unwrap_or_default(),
        })
    }

    fn label(&self, text: &Spanned<String>, key: &str) -> Result<ServiceLabel, InventoryError> {
        ServiceLabel::new(text.get_ref().as_str()).map_err(|e| {
            // The label error echoes the whole input; say which rule it broke, echo it short.
            self.error_at(
                text.span().start,
                key,
                InventoryErrorKind::Invalid,
                format!("invalid service label {}: {}", echo(text.get_ref()), e.rule),
            )
        })
    }

    /// The policy of one table (`own`, written at `key`), falling back to the node-wide
    /// `[heal]` for each value it leaves out, then to [`HealPolicy::default`]. A refused value
    /// is reported where it was written.
    fn heal_policy(
        &self,
        own: Option<&Spanned<RawHeal>>,
        key: &str,
        node: Option<&Spanned<RawHeal>>,
    ) -> Result<HealPolicy, InventoryError> {
        // Where each value came from: (field, offset, the key prefix of its table).
        let mut written: Vec<(&'static str, usize, &str)> = Vec::new();
        let tables = [(own, key), (node, "heal")];
        macro_rules! pick {
            ($field:ident) => {{
                let found = tables.iter().find_map(|(table, prefix)| {
                    let value = table.and_then(|t| t.get_ref().$field.as_ref())?;
                    Some((value, *prefix))
                });
                if let Some((value, prefix)) = found {
                    written.push((stringify!($field), value.span().start, prefix));
                }
                found
            }};
        }
        macro_rules! number {
            ($field:ident, $default:expr) => {
                pick!($field).map_or($default, |(v, _)| *v.get_ref())
            };
        }
        macro_rules! duration {
            ($field:ident, $default:expr) => {
                match pick!($field) {
                    None => $default,
                    Some((v, prefix)) => self
                        .duration(Some(v), &format!("{prefix}.{}", stringify!($field)))?
                        .unwrap_or($default),
                }
            };
        }
        let d = HealPolicy::default();
        let failures_to_down = number!(failures_to_down, d.hysteresis.failures_to_down());
        let passes_to_up = number!(passes_to_up, d.hysteresis.passes_to_up());
        let backoff_initial = duration!(backoff_initial, d.backoff.initial());
        let backoff_max = duration!(backoff_max, d.backoff.max());
        let backoff_multiplier = number!(backoff_multiplier, d.backoff.multiplier());
        let jitter = number!(jitter, d.backoff.jitter());
        let breaker_threshold = number!(breaker_threshold, d.breaker.threshold());
        let breaker_window = duration!(breaker_window, d.breaker.window());
        let breaker_cooldown = duration!(breaker_cooldown, d.breaker.cooldown());
        let grace = duration!(grace, d.grace);
        let start_grace = duration!(start_grace, d.start_grace);
        let stop_grace = duration!(stop_grace, d.stop_grace);
        let stable_after = duration!(stable_after, d.stable_after);
        let repair_after = number!(repair_after, d.repair_after);
        let observe_max = duration!(observe_max, d.observe_max);

        let refused = |e: crate::model::PolicyError| {
            let table_at = own.or(node).map_or(0, |t| t.span().start);
            let (offset, prefix) = written
                .iter()
                .find(|(field, _, _)| *field == e.field)
                .map_or((table_at, key), |(_, at, prefix)| (*at, *prefix));
            self.error_at(
                offset,
                format!("{prefix}.{}", e.field),
                InventoryErrorKind::Invalid,
                e.reason,
            )
        };
        Ok(HealPolicy {
            hysteresis: Hysteresis::new(failures_to_down, passes_to_up).map_err(refused)?,
            backoff: Backoff::new(backoff_initial, backoff_max, backoff_multiplier, jitter)
                .map_err(refused)?,
            breaker: Breaker::new(breaker_threshold, breaker_window, breaker_cooldown)
                .map_err(refused)?,
            grace,
            start_grace,
            stop_grace,
            stable_after,
            repair_after,
            observe_max,
        })
    }

    fn service(
        &self,
        spanned: &Spanned<RawService>,
        label: ServiceLabel,
        node_heal: Option<&Spanned<RawHeal>>,
        default_timeout: Duration,
        substrate: Option<&SubstrateSpec>,
    ) -> Result<ServiceSpec, InventoryError> {
        let svc = spanned.get_ref();
        let offset = spanned.span().start;
        let heal = self.heal_policy(svc.heal.as_ref(), "service.heal", node_heal)?;
        let container = match (svc.manager, &svc.container) {
            (ManagerKind::Container, name) => Some(
                name.as_ref()
                    .map_or_else(|| label.to_string(), |n| n.get_ref().clone()),
            ),
            (_, Some(name)) => {
                return Err(self.error_at(
                    name.span().start,
                    "service.container",
                    InventoryErrorKind::Invalid,
                    format!("service {label}: `container` only applies to manager = \"container\""),
                ))
            }
            (_, None) => None,
        };
        if svc.manager == ManagerKind::Container && substrate.is_none() {
            return Err(self.error_at(
                offset,
                "service.manager",
                InventoryErrorKind::Invalid,
                format!("service {label} is a container but the inventory has no [substrate]"),
            ));
        }
        let compose = self.compose(svc, &label)?;
        // A Compose service's container is found by its labels: its name is Compose's choice.
        let container = if compose.is_some() { None } else { container };
        let mut probes = Vec::new();
        for p in &svc.probes {
            probes.push(self.probe(p, container.as_deref(), default_timeout)?);
        }
        if probes.is_empty() {
            probes.push(ProbeSpec {
                // A container service's "process" is its container (for a Compose service,
                // the one its labels find).
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
        if let (true, Some(sub)) = (svc.manager == ManagerKind::Container, substrate) {
            if !depends_on.contains(&sub.name) {
                depends_on.push(sub.name.clone());
            }
        }
        let config = match &svc.config {
            None => None,
            Some(table) => Some(self.config(table, &label)?),
        };
        let hooks = self.hooks(svc, label.as_str())?;
        Ok(ServiceSpec {
            label,
            manager: svc.manager,
            class: svc.class,
            depends_on,
            container,
            compose,
            probes,
            heal,
            config,
            monitor_only: svc.monitor_only,
            hooks,
        })
    }

    fn check_dependencies(
        &self,
        raw: &RawInventory,
        services: &[ServiceSpec],
        substrate: Option<&SubstrateSpec>,
    ) -> Result<(), InventoryError> {
        let known: HashMap<&str, usize> = services
            .iter()
            .enumerate()
            .map(|(i, s)| (s.label.as_str(), i))
            .collect();
        for (svc, rawsvc) in services.iter().zip(&raw.services) {
            for dep in &rawsvc.get_ref().depends_on {
                let name = dep.get_ref().as_str();
                let found =
                    known.contains_key(name) || substrate.is_some_and(|s| s.name.as_str() == name);
                if !found {
                    return Err(self.error_at(
                        dep.span().start,
                        "service.depends_on",
                        InventoryErrorKind::UnknownDependency,
                        format!(
                            "service {} depends on {}, which is neither a service nor the substrate in this inventory",
                            svc.label,
                            echo(name)
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
        let graph = Graph::from_named(services.iter().map(|s| {
            (
                s.label.as_str(),
                s.depends_on.iter().map(ServiceLabel::as_str),
            )
        }));
        if let Some(cycle) = graph.find_cycle() {
            // The edge that closes the circle: the last service's entry naming the first.
            let (last, first) = (cycle[cycle.len() - 1], cycle[0]);
            let target = services[first].label.as_str();
            let span = raw.services[last]
                .get_ref()
                .depends_on
                .iter()
                .find(|d| d.get_ref() == target)
                .map_or(raw.services[last].span().start, |d| d.span().start);
            let mut names: Vec<&str> = cycle.iter().map(|&i| services[i].label.as_str()).collect();
            names.push(target);
            return Err(self.error_at(
                span,
                "service.depends_on",
                InventoryErrorKind::DependencyCycle,
                format!("dependency cycle: {}", names.join(" -> ")),
            ));
        }
        Ok(())
    }
}

/// Fills each definition's `after` from its `depends_on`: a manager can order only its own
/// services, so the substrate and services under other managers are left out (the heal loop
/// orders those). Labels the config already names keep their place.
fn order_after_dependencies(services: &mut [ServiceSpec]) {
    let managers: HashMap<ServiceLabel, ManagerKind> = services
        .iter()
        .map(|s| (s.label.clone(), s.manager))
        .collect();
    for svc in services.iter_mut() {
        let manager = svc.manager;
        let Some(config) = svc.config.as_mut() else {
            continue;
        };
        for dep in &svc.depends_on {
            if managers.get(dep) == Some(&manager) && !config.after.contains(dep) {
                config.after.push(dep.clone());
            }
        }
    }
}

/// Gives each launchd or systemd definition that names no log files `LOG_DIR/<label>.out.log`
/// and `.err.log`, so `apply` and the heal loop's repair write the same definition and no
/// service's output is lost. The embedded supervisor keeps its own logs under the state folder.
fn default_log_paths(services: &mut [ServiceSpec], log_dir: &std::path::Path) {
    for svc in services.iter_mut() {
        if !matches!(svc.manager, ManagerKind::Launchd | ManagerKind::Systemd) {
            continue;
        }
        let Some(config) = svc.config.as_mut() else {
            continue;
        };
        let label = config.label.as_str();
        if config.stdout_path.is_none() {
            config.stdout_path = Some(log_dir.join(format!("{label}.out.log")));
        }
        if config.stderr_path.is_none() {
            config.stderr_path = Some(log_dir.join(format!("{label}.err.log")));
        }
    }
}
