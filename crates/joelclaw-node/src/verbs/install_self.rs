//! `install-self`: the agent itself as a LaunchDaemon or a systemd unit (boot-time, no login, a
//! non-root service user, restarted on failure).

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use node_identity::Platform;
use process_manager::{
    ProcessManagerPort, Relax, RestartPolicy, ServiceConfig, ServiceLabel, ServiceScope,
};

use crate::compose;
use crate::output::{json_name, Failure, Report};
use crate::setup::runtime;

/// `install-self`.
#[derive(Debug, Args)]
pub struct InstallSelfArgs {
    /// Write the definition under this root instead of installing and loading it.
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// The inventory the installed agent will run.
    #[arg(long, short = 'i', value_name = "FILE")]
    pub inventory: PathBuf,
    /// The supervisor to install under (default: launchd on macOS, systemd elsewhere).
    #[arg(long, value_enum)]
    pub manager: Option<SelfManager>,
    /// The installed binary (default: this one).
    #[arg(long, value_name = "PATH")]
    pub program: Option<PathBuf>,
    /// The non-root service account the agent runs as.
    #[arg(long, default_value = "joelclaw")]
    pub user: String,
    /// Its group (default: same as the user).
    #[arg(long)]
    pub group: Option<String>,
    /// The agent's log folder once installed.
    #[arg(long, value_name = "DIR", default_value = "/var/log/joelclaw")]
    pub log_dir: PathBuf,
}

/// The supervisor `install-self` targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SelfManager {
    /// A LaunchDaemon in the system domain.
    Launchd,
    /// A systemd system unit.
    Systemd,
}

/// Where the agent's systemd repairs write unit files.
const SYSTEMD_DEFINITION_DIR: &str = "/etc/systemd/system";

/// The agent's own service definition.
fn self_config(
    args: &InstallSelfArgs,
    manager: SelfManager,
    state: &Path,
) -> Result<ServiceConfig, String> {
    let label = match manager {
        SelfManager::Launchd => "com.joelclaw.node-agent",
        SelfManager::Systemd => "joelclaw-node",
    };
    let program = match &args.program {
        Some(p) => p.clone(),
        None => std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?,
    };
    let inventory = std::path::absolute(&args.inventory)
        .map_err(|e| format!("--inventory {}: {e}", args.inventory.display()))?;
    let mut config = ServiceConfig::new(ServiceLabel::new(label).expect("a valid label"), program)
        .with_args([
            "run".to_string(),
            "--inventory".into(),
            inventory.display().to_string(),
            "--state-dir".into(),
            state.display().to_string(),
            "--events".into(),
            state.join("events.jsonl").display().to_string(),
        ])
        .with_env(
            "PATH",
            "/opt/homebrew/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        )
        .with_scope(ServiceScope::System)
        .with_user(
            args.user.clone(),
            Some(args.group.clone().unwrap_or_else(|| args.user.clone())),
        );
    config.restart = RestartPolicy::Always;
    config.restart_delay = Some(Duration::from_secs(10));
    config.run_at_load = true;
    config.working_dir = Some(state.to_path_buf());
    config.stdout_path = Some(args.log_dir.join("node-agent.out.log"));
    config.stderr_path = Some(args.log_dir.join("node-agent.err.log"));
    if manager == SelfManager::Systemd {
        // The agent drives the supervisor, so the service sandbox would stop it: it repairs
        // unit files in the definition folder, its process probes read other services' /proc,
        // and it must reach systemd as its own account (no private user namespace). The rest
        // of the sandbox stays.
        config.write_paths = vec![PathBuf::from(SYSTEMD_DEFINITION_DIR)];
        config.hardening.relax.extend([Relax::Proc, Relax::Users]);
    }
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}

/// Makes the agent's folders, then writes (under `--root`) or installs and loads its definition.
pub fn exec(args: InstallSelfArgs, state_flag: Option<PathBuf>) -> Result<Report, Failure> {
    const CMD: &str = "install-self";
    let state = state_flag.unwrap_or_else(|| PathBuf::from("/var/lib/joelclaw"));
    let manager = args.manager.unwrap_or(match Platform::current() {
        Platform::Macos => SelfManager::Launchd,
        _ => SelfManager::Systemd,
    });
    if !args.inventory.is_file() {
        return Err(Failure::input(
            CMD,
            format!("--inventory {}: no such file", args.inventory.display()),
        ));
    }
    let config = self_config(&args, manager, &state).map_err(|e| Failure::input(CMD, e))?;
    let root = args.root.as_deref();
    // The supervisor creates neither the working folder nor the log folder: make them, private
    // to the service account, before the definition can start the agent.
    for (dir, mode) in [(&state, 0o700), (&args.log_dir, 0o750)] {
        let dir = compose::reroot(root, dir);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(&dir)
            .map_err(|e| Failure::failed(CMD, format!("create {}: {e}", dir.display())))?;
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(mode))
            .map_err(|e| Failure::failed(CMD, format!("chmod {}: {e}", dir.display())))?;
        if root.is_none() {
            let user = nix::unistd::User::from_name(&args.user)
                .ok()
                .flatten()
                .ok_or_else(|| {
                    Failure::input(
                        CMD,
                        format!(
                            "--user {}: no such account on this machine; create it first",
                            args.user
                        ),
                    )
                })?;
            nix::unistd::chown(&dir, Some(user.uid), Some(user.gid))
                .map_err(|e| Failure::failed(CMD, format!("chown {}: {e}", dir.display())))?;
        }
    }
    let (port, path, bytes): (Arc<dyn ProcessManagerPort>, PathBuf, Vec<u8>) = match manager {
        SelfManager::Launchd => {
            let m = compose::launchd_adapter(Default::default(), root)
                .map_err(|e| Failure::input(CMD, e))?;
            let (path, bytes) = m.render(&config).map_err(|e| Failure::input(CMD, e))?;
            (Arc::new(m), path, bytes)
        }
        SelfManager::Systemd => {
            let m = compose::systemd_adapter(Default::default(), root);
            let text = m.render_unit(&config).map_err(|e| Failure::input(CMD, e))?;
            let path = m.unit_path(&config.label);
            (Arc::new(m), path, text.into_bytes())
        }
    };
    let outcome = if root.is_some() {
        sysutil::fs::AtomicWrite::with_mode(0o644)
            .write(&path, &bytes)
            .map_err(|e| Failure::failed(CMD, format!("write {}: {e}", path.display())))?;
        "written".to_string()
    } else {
        let rt = runtime(CMD)?;
        json_name(
            &rt.block_on(port.enable(&config))
                .map_err(|e| Failure::failed(CMD, e))?,
        )
    };
    let human = format!(
        "{} {} ({outcome})\n{}",
        match manager {
            SelfManager::Launchd => "LaunchDaemon",
            SelfManager::Systemd => "systemd unit",
        },
        path.display(),
        String::from_utf8_lossy(&bytes)
    );
    Ok(Report::ok(
        CMD,
        serde_json::json!({ "path": path, "label": config.label, "outcome": outcome }),
        human,
    ))
}
