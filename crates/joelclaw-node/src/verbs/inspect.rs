//! `inspect LABEL`: one service's state, from its manager.

use std::path::PathBuf;
use std::sync::Arc;

use central_core::inventory::ManagerKind;
use clap::Args;
use node_identity::Platform;
use process_manager::{ProcessError, ProcessManagerPort, ServiceLabel};

use crate::compose::{self, compose, Mode};
use crate::output::{opt, table, Failure, Report};
use crate::setup::{load, runtime, state_dir};

/// `inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The service label.
    pub label: String,
    /// The inventory that names the service's manager.
    #[arg(long, short = 'i', value_name = "FILE")]
    pub inventory: Option<PathBuf>,
}

/// Asks the service's manager (the inventory's, else the platform's own) for its state; exit 1
/// when it is not running.
pub fn exec(args: InspectArgs, state_flag: Option<PathBuf>) -> Result<Report, Failure> {
    const CMD: &str = "inspect";
    let label = ServiceLabel::new(args.label.as_str()).map_err(|e| Failure::input(CMD, e))?;
    let rt = runtime(CMD)?;
    let manager: Arc<dyn ProcessManagerPort> = match &args.inventory {
        Some(path) => {
            let inventory = load(CMD, path)?;
            let spec = inventory.service(label.as_str()).ok_or_else(|| {
                Failure::input(
                    CMD,
                    format!("unknown label \"{label}\": not in {}", path.display()),
                )
            })?;
            if spec.manager == ManagerKind::Container {
                return Err(Failure::input(
                    CMD,
                    format!("{label} is a container; its state comes from the container runtime (use status)"),
                ));
            }
            let state = state_dir(CMD, state_flag, &inventory)?;
            let comp =
                compose(&inventory, &state, Mode::Observe).map_err(|e| Failure::input(CMD, e))?;
            comp.manager_of(&inventory, label.as_str())
                .ok_or_else(|| Failure::input(CMD, format!("no manager for {label}")))?
        }
        None => {
            // Without an inventory, ask the platform's own supervisor.
            match Platform::current() {
                Platform::Macos => Arc::new(
                    compose::launchd_adapter(Default::default(), None)
                        .map_err(|e| Failure::input(CMD, e))?,
                ),
                _ => Arc::new(compose::systemd_adapter(Default::default(), None)),
            }
        }
    };
    let st = rt.block_on(manager.inspect(&label)).map_err(|e| match e {
        ProcessError::NotFound { .. }
        | ProcessError::InvalidLabel(_)
        | ProcessError::InvalidInput { .. } => Failure::input(CMD, e),
        e => Failure::failed(CMD, e),
    })?;
    let rows = vec![
        vec!["label".into(), st.label.to_string()],
        vec!["adapter".into(), manager.capabilities().adapter],
        vec!["loaded".into(), st.loaded.to_string()],
        vec!["state".into(), st.state.to_string()],
        vec!["pid".into(), opt(&st.pid)],
        vec!["last exit".into(), opt(&st.last_exit)],
        vec!["restarts".into(), opt(&st.restart_count)],
        vec!["enabled".into(), opt(&st.enabled)],
        vec!["scope".into(), opt(&st.scope)],
    ];
    let running = st.is_running();
    let human = table(&["FIELD", "VALUE"], &rows);
    Ok(if running {
        Report::ok(CMD, &st, human)
    } else {
        Report::findings(CMD, &st, human)
    })
}
