//! The composition root: from an inventory to the adapters the heal loop and the verbs use.
//! This is the one place that knows every adapter.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use adapters_linux::{
    ComposeCommand, DockerEndpoint, DockerRuntime, DockerTls, SystemdDockerSubstrate,
    SystemdProcessManager,
};
use adapters_macos::{
    ColimaConfig, ColimaRuntime, FnHealthCheck, LaunchdConfig, LaunchdProcessManager,
};
use central_core::deadlines::{deadline_manager, deadline_runtime};
use central_core::inventory::{ManagerKind, ManagerSettings, ProbeCheck, SubstrateKind};
use central_core::{Inventory, Ports};
use container_runtime::{MemoryRuntime, SharedContainerRuntime, SplitRuntime, SubstratePort};
use node_identity::Platform;
use process_manager::{MemoryProcessManager, ServiceLabel, ServiceScope, SharedProcessManager};

use crate::embedded::{EmbeddedOptions, EmbeddedSupervisor, EmbeddedView};

/// In an inventory, this token stands for the agent's own binary (the demo's services are the
/// agent's hidden `demo-service` verb, so the demo needs nothing installed).
pub const SELF_TOKEN: &str = "${JOELCLAW_NODE_BIN}";

/// Reads and checks an inventory, with [`SELF_TOKEN`] replaced. Errors name file, line and key.
pub fn load_inventory(path: &Path) -> Result<Inventory, String> {
    // Refuses a FIFO or anything else that is not a regular file, instead of blocking on it.
    let text =
        Inventory::read_text(path).map_err(|e| format!("{}: {}", e.file.display(), e.message))?;
    let text = if text.contains(SELF_TOKEN) {
        let exe = std::env::current_exe()
            .map_err(|e| format!("cannot find this agent's own binary for {SELF_TOKEN}: {e}"))?;
        // Escaped as a TOML basic string body; the token only ever stands inside quotes.
        let exe = exe
            .display()
            .to_string()
            .replace('\\', "\\\\")
            .replace('"', "\\\"");
        text.replace(SELF_TOKEN, &exe)
    } else {
        text
    };
    Inventory::parse(path, &text).map_err(|e| e.to_string())
}

/// Whether the embedded supervisor is driven (by `run`) or only looked at (`status`, `inspect`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// This process owns the embedded children.
    Own,
    /// Another process (the running agent) owns them; read its published state.
    Observe,
}

/// The adapters an inventory needs.
#[derive(Debug, Default)]
pub struct Composition {
    /// Process managers by the inventory's manager names, each behind its deadline wrapper.
    pub managers: BTreeMap<&'static str, SharedProcessManager>,
    /// The container runtime, when anything needs one, behind its deadline wrapper.
    pub runtime: Option<SharedContainerRuntime>,
    /// The embedded supervisor, in [`Mode::Own`].
    pub embedded: Option<EmbeddedSupervisor>,
    /// The launchd adapter, when used (for `apply`'s renderer).
    pub launchd: Option<Arc<LaunchdProcessManager>>,
    /// The systemd adapter, when used (for `apply`'s renderer).
    pub systemd: Option<Arc<SystemdProcessManager>>,
}

impl Composition {
    /// The ports for the heal loop.
    pub fn ports(&self) -> Ports {
        let mut ports = Ports::new();
        for (name, m) in &self.managers {
            ports = ports.with_manager(*name, m.clone());
        }
        if let Some(rt) = &self.runtime {
            ports = ports.with_runtime(rt.clone());
        }
        ports
    }

    /// The manager of `label`'s service.
    pub fn manager_of(&self, inventory: &Inventory, label: &str) -> Option<SharedProcessManager> {
        let spec = inventory.service(label)?;
        self.managers.get(spec.manager.as_str()).cloned()
    }
}

/// The inventory's `[managers.<name>]` settings (all defaults when it has none).
pub fn settings(inventory: &Inventory, name: &str) -> ManagerSettings {
    inventory.managers.get(name).cloned().unwrap_or_default()
}

/// The launchd adapter from `[managers.launchd]`; `root` re-roots its plist folder.
pub fn launchd_adapter(
    s: ManagerSettings,
    root: Option<&Path>,
) -> Result<LaunchdProcessManager, String> {
    launchd_with_users(s, std::iter::empty(), root)
}

/// The launchd adapter for `inventory`: `[managers.launchd]`, plus the user domain of every
/// launchd service whose config names one (`scope = { domain = "gui", uid = 502 }`), so a relay
/// host serves one sandboxed user per relay.
pub fn launchd_for_inventory(
    inventory: &Inventory,
    root: Option<&Path>,
) -> Result<LaunchdProcessManager, String> {
    let uids = inventory
        .services
        .iter()
        .filter(|s| s.manager == ManagerKind::Launchd)
        .filter_map(|s| match s.config.as_ref()?.scope {
            ServiceScope::Gui { uid } | ServiceScope::User { uid } => Some(uid),
            ServiceScope::System => None,
        });
    launchd_with_users(settings(inventory, "launchd"), uids, root)
}

fn launchd_with_users(
    s: ManagerSettings,
    service_uids: impl IntoIterator<Item = u32>,
    root: Option<&Path>,
) -> Result<LaunchdProcessManager, String> {
    if !s.command_prefix.is_empty() {
        return Err(
            "managers.launchd.command_prefix: launchd cannot be reached through a prefix".into(),
        );
    }
    let mut cfg = LaunchdConfig::default();
    // Services with env files run through this binary's `env-exec` (launchd has no
    // EnvironmentFile=): the path the agent itself runs from, which install-self put in its own
    // definition.
    if let Ok(me) = std::env::current_exe().and_then(|p| p.canonicalize()) {
        cfg = cfg.with_env_exec(me);
    }
    let dir = s
        .definition_dir
        .unwrap_or_else(|| cfg.system_plist_dir.clone());
    cfg = cfg.with_system_plist_dir(reroot(root, &dir));
    if let Some(account) = s.service_account {
        cfg = cfg.with_service_account(account, s.service_group);
    }
    let agents_dir = |uid: u32| {
        nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten()
            .map(|user| reroot(root, &user.dir.join("Library/LaunchAgents")))
    };
    let mut served = Vec::new();
    if let Some(uid) = s.uid {
        let dir = agents_dir(uid).ok_or_else(|| {
            format!("managers.launchd.uid: no user with uid {uid} on this machine")
        })?;
        cfg = cfg.with_user(uid, dir);
        served.push(uid);
    }
    for uid in service_uids {
        if served.contains(&uid) {
            continue;
        }
        // A uid no user has is left out: the adapter then refuses that one service, by its
        // label, and the others are served.
        if let Some(dir) = agents_dir(uid) {
            cfg = cfg.with_user(uid, dir);
            served.push(uid);
        }
    }
    Ok(LaunchdProcessManager::new(cfg))
}

/// The systemd adapter from `[managers.systemd]`; `root` re-roots its unit folder.
pub fn systemd_adapter(s: ManagerSettings, root: Option<&Path>) -> SystemdProcessManager {
    let mut m = SystemdProcessManager::system();
    let dir = s
        .definition_dir
        .unwrap_or_else(|| m.unit_dir().to_path_buf());
    m = m.with_unit_dir(reroot(root, &dir));
    if !s.command_prefix.is_empty() {
        m = m.with_command_prefix(s.command_prefix);
    }
    if let Some(user) = s.service_account {
        m = m.with_service_account(adapters_linux::ServiceAccount {
            user,
            group: s.service_group,
        });
    }
    m
}

/// `dir` under `root` (or `dir` itself without a root).
pub fn reroot(root: Option<&Path>, dir: &Path) -> PathBuf {
    match root {
        Some(root) => root.join(dir.strip_prefix("/").unwrap_or(dir)),
        None => dir.to_path_buf(),
    }
}

fn runtime(inventory: &Inventory) -> Result<Option<SharedContainerRuntime>, String> {
    let needs = inventory.substrate.is_some()
        || inventory.services.iter().any(|s| {
            s.manager == ManagerKind::Container
                || s.probes
                    .iter()
                    .any(|p| matches!(p.check, ProbeCheck::Container { .. }))
        });
    if !needs {
        return Ok(None);
    }
    let sub = inventory.substrate.as_ref();
    let kind = sub
        .and_then(|s| s.kind)
        .unwrap_or(match Platform::current() {
            Platform::Macos => SubstrateKind::Colima,
            _ => SubstrateKind::Docker,
        });
    let runtime: SharedContainerRuntime = match kind {
        SubstrateKind::Null => Arc::new(MemoryRuntime::new()),
        SubstrateKind::Docker => {
            let engine = Arc::new(docker_engine(inventory, None)?);
            match sub.and_then(|s| s.unit.as_deref()) {
                // The daemon is a systemd unit: brought back through the systemd adapter.
                Some(unit) => {
                    let systemd = Arc::new(systemd_adapter(settings(inventory, "systemd"), None));
                    let unit =
                        ServiceLabel::new(unit).map_err(|e| format!("substrate.unit: {e}"))?;
                    let mut substrate = SystemdDockerSubstrate::new(systemd, unit, engine.clone());
                    if let Some(s) = sub {
                        substrate = substrate.with_start_wait(s.start_timeout);
                    }
                    Arc::new(SplitRuntime::new(Arc::new(substrate), engine))
                }
                None => engine,
            }
        }
        SubstrateKind::Colima => {
            let mut cfg = ColimaConfig::default();
            if let Some(profile) = sub.and_then(|s| s.profile.clone()) {
                cfg = cfg.with_profile(profile);
            }
            // The VM's engine: the named endpoint, else the socket colima makes for the profile
            // under this user's home.
            let socket = dirs::home_dir().map(|home| cfg.docker_socket(&home));
            let engine = Arc::new(docker_engine(inventory, socket)?);
            let health = engine.clone();
            // Frequent health checks ping the VM's engine instead of running the slow
            // `colima status`.
            let colima = ColimaRuntime::new(cfg)
                .map_err(|e| format!("substrate: {e}"))?
                .with_health_check(Arc::new(FnHealthCheck::new(move || {
                    let engine = health.clone();
                    Box::pin(async move { engine.is_healthy().await })
                })));
            Arc::new(SplitRuntime::new(Arc::new(colima), engine))
        }
    };
    Ok(Some(deadline_runtime(runtime, inventory)))
}

/// The Docker engine of the substrate: its endpoint (else `default_socket`, else the machine's
/// `/var/run/docker.sock`), TLS paths and Compose command (bounded by `loop.heal_timeout`).
fn docker_engine(
    inventory: &Inventory,
    default_socket: Option<PathBuf>,
) -> Result<DockerRuntime, String> {
    let sub = inventory.substrate.as_ref();
    let mut engine = match (sub.and_then(|s| s.endpoint.as_deref()), default_socket) {
        (Some(url), _) => {
            DockerRuntime::connect(url).map_err(|e| format!("substrate.endpoint: {e}"))?
        }
        (None, Some(socket)) => DockerRuntime::with_endpoint(DockerEndpoint::Unix(socket)),
        (None, None) => DockerRuntime::local(),
    };
    // A recreate is a heal call: it gets the heal deadline (the port's wrapper bounds it too).
    let mut command = ComposeCommand {
        deadline: inventory.settings.heal_timeout,
        ..ComposeCommand::default()
    };
    if let Some(argv) = sub.and_then(|s| s.compose_command.clone()) {
        command.argv = argv;
    }
    engine = engine.with_compose(command);
    if let Some(tls) = sub.and_then(|s| s.tls.clone()) {
        engine = engine.with_tls(DockerTls {
            ca: tls.ca,
            cert: tls.cert,
            key: tls.key,
        });
    }
    Ok(engine)
}

/// Builds the adapters `inventory` needs, each behind its deadline wrapper
/// (`loop.heal_timeout`, and `substrate.start_timeout` for bringing the substrate up): the heal
/// loop and the verbs rely on it for an outer bound. In [`Mode::Own`] the embedded supervisor
/// keeps its logs and state under `state_dir/embedded`; in [`Mode::Observe`] it reads what the
/// running agent published there.
pub fn compose(inventory: &Inventory, state_dir: &Path, mode: Mode) -> Result<Composition, String> {
    let mut c = Composition {
        runtime: runtime(inventory)?,
        ..Composition::default()
    };
    for spec in &inventory.services {
        let name = spec.manager.as_str();
        if spec.manager == ManagerKind::Container || c.managers.contains_key(name) {
            continue;
        }
        let manager: SharedProcessManager = match spec.manager {
            ManagerKind::Launchd => {
                let m = Arc::new(launchd_for_inventory(inventory, None)?);
                c.launchd = Some(m.clone());
                m
            }
            ManagerKind::Systemd => {
                let m = Arc::new(systemd_adapter(settings(inventory, "systemd"), None));
                c.systemd = Some(m.clone());
                crate::unprivileged::for_this_process(m)
            }
            ManagerKind::Embedded => {
                let dir = state_dir.join("embedded");
                match mode {
                    Mode::Own => {
                        let sup = EmbeddedSupervisor::new(EmbeddedOptions::under(&dir))
                            .map_err(|e| e.to_string())?;
                        c.embedded = Some(sup.clone());
                        Arc::new(sup)
                    }
                    Mode::Observe => Arc::new(EmbeddedView::new(dir)),
                }
            }
            ManagerKind::Null => Arc::new(MemoryProcessManager::new()),
            ManagerKind::Container => unreachable!("skipped above"),
        };
        c.managers
            .insert(name, deadline_manager(manager, inventory));
    }
    for spec in &inventory.services {
        if spec.manager == ManagerKind::Embedded && spec.config.is_none() {
            return Err(format!(
                "{}: service {}: the embedded supervisor needs a [service.config] to start it",
                inventory.file.display(),
                spec.label
            ));
        }
    }
    Ok(c)
}

/// Where state lives when neither `--state-dir` nor the inventory says.
pub fn default_state_dir() -> Option<PathBuf> {
    dirs::state_dir()
        .or_else(dirs::data_local_dir)
        .map(|d| d.join("joelclaw-node"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example inventories as the agent composes them (nothing is started: the adapters
    /// connect lazily).
    fn example(name: &str) -> Composition {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples")
            .join(name);
        let text = std::fs::read_to_string(&path).unwrap();
        let inventory = Inventory::parse(&path, &text).unwrap_or_else(|e| panic!("{e}"));
        let state = tempfile::tempdir().unwrap();
        compose(&inventory, state.path(), Mode::Observe).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_linux_examples_docker_daemon_is_a_substrate_systemd_runs() {
        let runtime = example("fleet-linux.toml").runtime.expect("a runtime");
        assert_eq!(runtime.adapter(), "docker-systemd");
    }

    #[test]
    fn centrals_containers_run_on_colimas_engine() {
        let runtime = example("central.toml").runtime.expect("a runtime");
        assert_eq!(runtime.adapter(), "colima");
    }
}
