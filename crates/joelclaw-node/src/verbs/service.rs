//! `start`, `stop`, `restart`, `enable`, `disable LABEL` and `list`: what the joelclaw CLI and
//! gateway call instead of each platform's supervisor CLI.
//!
//! When an agent runs for the inventory's state folder, a verb goes through it (its local API):
//! serialized with that service's heals, and the agent keeps what was asked (a service stopped
//! by request is not healed back, across agent restarts, until started). With no agent
//! running, the verb takes the state folder's lock, records the same desired state and acts
//! through the adapter directly, and says so.

use std::path::{Path, PathBuf};
use std::time::Duration;

use central_core::agent_lock::AgentLock;
use central_core::{HealLoop, LoopOptions, NodeTags, Verb, VerbError, VerbOutcome};
use clap::Args;
use serde_json::Value;

use crate::agent_client::{AgentClient, AgentError};
use crate::compose::{compose, Mode};
use crate::output::{table, ErrorCode, Failure, NextAction, Report};
use crate::setup::{load, node_identity, runtime, state_dir};

/// `start|stop|restart|enable|disable LABEL`.
#[derive(Debug, Args)]
pub struct ServiceArgs {
    /// The service label.
    pub label: String,
    /// The inventory that names the service.
    #[arg(long, short = 'i', value_name = "FILE")]
    pub inventory: PathBuf,
}

/// `list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// The inventory.
    #[arg(long, short = 'i', value_name = "FILE")]
    pub inventory: PathBuf,
}

/// The verb's command name, as the envelope spells it.
fn command(verb: Verb) -> &'static str {
    verb.as_str()
}

/// How long the CLI waits for the API to answer a quick question.
const ASK: Duration = Duration::from_secs(5);

/// Carries out `verb` on one service: through the running agent, else directly.
pub fn exec(verb: Verb, args: ServiceArgs, state_flag: Option<PathBuf>) -> Result<Report, Failure> {
    let cmd = command(verb);
    let inventory = load(cmd, &args.inventory)?;
    if inventory.service(&args.label).is_none()
        && inventory.substrate.as_ref().map(|s| s.name.as_str()) != Some(args.label.as_str())
    {
        return Err(Failure::not_found(
            cmd,
            format!(
                "unknown label {:?}: not in {}",
                args.label,
                args.inventory.display()
            ),
        ));
    }
    let state = state_dir(cmd, state_flag, &inventory)?;
    let rt = runtime(cmd)?;
    let patience = crate::api::verb_patience(&inventory.settings) + ASK;
    let agent = AgentClient::for_state_dir(&state);
    let path = format!("/v1/services/{}/{}", args.label, verb);
    let outcome = match rt.block_on(agent.post(&path, patience)) {
        Ok((_, envelope)) => from_envelope(cmd, envelope)?,
        Err(AgentError::NotRunning(_)) => {
            let identity = node_identity(cmd, Some(&inventory))?;
            rt.block_on(directly(
                cmd,
                &inventory,
                &state,
                identity,
                &args.label,
                verb,
            ))?
        }
        Err(e) => return Err(Failure::failed(cmd, e)),
    };
    let human = format!(
        "{} {}: {}{}\n",
        verb,
        outcome.label,
        outcome.did,
        match (outcome.desired.is_running(), outcome.through) {
            (false, _) => format!(" — {}, not healed until started", outcome.desired),
            (true, central_core::Through::Adapter) =>
                " (no agent running: done through the adapter)".into(),
            (true, central_core::Through::Agent) => String::new(),
        }
    );
    let state_arg = state.display().to_string();
    let inv_arg = args.inventory.display().to_string();
    let undo = match verb {
        Verb::Stop => Some(Verb::Start),
        Verb::Disable => Some(Verb::Enable),
        _ => None,
    };
    let mut next = vec![NextAction::node(
        ["status", "-i", &inv_arg, "--state-dir", &state_arg],
        "see the service's state",
    )];
    if let Some(undo) = undo {
        next.push(NextAction::node(
            [
                undo.as_str(),
                &outcome.label,
                "-i",
                &inv_arg,
                "--state-dir",
                &state_arg,
            ],
            format!("{undo} it again (healed from then on)"),
        ));
    }
    Ok(Report::ok(cmd, &outcome, human).with_next(next))
}

/// The verb's outcome from the API's envelope, or the agent's error as the CLI's.
fn from_envelope(cmd: &'static str, envelope: Value) -> Result<VerbOutcome, Failure> {
    if envelope["ok"].as_bool() == Some(true) {
        return serde_json::from_value(envelope["result"].clone())
            .map_err(|e| Failure::failed(cmd, format!("the agent's answer: {e}")));
    }
    let kind: ErrorCode =
        serde_json::from_value(envelope["error"]["kind"].clone()).unwrap_or(ErrorCode::Failed);
    let message = envelope["error"]["message"]
        .as_str()
        .unwrap_or("the agent refused without saying why")
        .to_string();
    let base = match kind {
        ErrorCode::Failed => Failure::failed(cmd, message),
        _ => Failure::input(cmd, message),
    };
    Err(Failure { kind, ..base })
}

/// No agent runs: hold the state folder (so none starts meanwhile), record the desired state,
/// act through the adapter.
async fn directly(
    cmd: &'static str,
    inventory: &central_core::Inventory,
    state: &Path,
    identity: node_identity::NodeIdentity,
    label: &str,
    verb: Verb,
) -> Result<VerbOutcome, Failure> {
    std::fs::create_dir_all(state)
        .map_err(|e| Failure::input(cmd, format!("state folder {}: {e}", state.display())))?;
    let _lock = AgentLock::acquire(state).map_err(|e| {
        Failure::failed(
            cmd,
            format!("{e}; its API does not answer (see its log), so nothing was done"),
        )
    })?;
    let comp = compose(inventory, state, Mode::Observe).map_err(|e| Failure::input(cmd, e))?;
    let tags = NodeTags::from_identity(&identity, inventory);
    let mut heal = HealLoop::new(
        inventory,
        comp.ports(),
        LoopOptions::new(tags).with_state_dir(state.join("heal")),
    )
    .map_err(|e| Failure::input(cmd, e))?;
    heal.request(label, verb).await.map_err(|e| match e {
        VerbError::NotFound(_) => Failure::not_found(cmd, e),
        VerbError::NotSupported(_) => Failure {
            kind: ErrorCode::NotSupported,
            ..Failure::input(cmd, e)
        },
        e => Failure::failed(
            cmd,
            format!(
                "{e} (no agent running; the request is recorded: {label} is {} from now on)",
                verb.desired()
            ),
        ),
    })
}

/// Where `list` (and `status`) read the services from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The running agent's last round.
    Agent,
    /// A probe round of the command's own (no agent running).
    Probe,
}

/// `list`'s result.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct ListResult {
    /// The node id.
    pub node_id: String,
    /// Where the services were read from.
    pub source: Source,
    /// Every service, substrate first, then in inventory order.
    pub services: Vec<ListedService>,
}

/// One service in `list`.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct ListedService {
    /// Its label.
    pub label: String,
    /// The inventory's manager name, or `substrate`.
    pub manager: String,
    /// The adapter (`systemd`, `embedded`, ...).
    pub adapter_type: String,
    /// What a person asked for.
    pub desired: central_core::Desired,
    /// Its health at that round.
    pub health: central_core::Health,
    /// The run state, where a process probe saw one.
    pub run_state: Option<process_manager::RunState>,
    /// The pid, where a process probe saw one.
    pub pid: Option<u32>,
}

/// `list`: every service with its manager, what was asked of it and its health — from the
/// running agent's last round, else one probe round of this command's own.
pub fn list(args: ListArgs, state_flag: Option<PathBuf>) -> Result<Report, Failure> {
    const CMD: &str = "list";
    let inventory = load(CMD, &args.inventory)?;
    let state = state_dir(CMD, state_flag, &inventory)?;
    let rt = runtime(CMD)?;
    let agent = AgentClient::for_state_dir(&state);
    let (status, source) = match rt.block_on(agent.get("/v1/status", ASK)) {
        Ok((_, envelope)) if envelope["ok"].as_bool() == Some(true) => (
            serde_json::from_value::<central_core::NodeStatus>(envelope["result"].clone())
                .map_err(|e| Failure::failed(CMD, format!("the agent's answer: {e}")))?,
            Source::Agent,
        ),
        Ok((_, envelope)) => return Err(from_envelope(CMD, envelope).unwrap_err()),
        Err(AgentError::NotRunning(_)) => {
            let identity = node_identity(CMD, Some(&inventory))?;
            let comp =
                compose(&inventory, &state, Mode::Observe).map_err(|e| Failure::input(CMD, e))?;
            let tags = NodeTags::from_identity(&identity, &inventory);
            let mut heal = HealLoop::new(
                &inventory,
                comp.ports(),
                LoopOptions::new(tags).with_state_dir(state.join("heal")),
            )
            .map_err(|e| Failure::input(CMD, e))?;
            (rt.block_on(heal.probe_round()), Source::Probe)
        }
        Err(e) => return Err(Failure::failed(CMD, e)),
    };
    let rows: Vec<Vec<String>> = status
        .services
        .iter()
        .map(|s| {
            vec![
                s.label.clone(),
                s.manager.clone(),
                s.desired.to_string(),
                crate::output::json_name(&s.health),
                s.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let human = table(&["LABEL", "MANAGER", "DESIRED", "HEALTH", "PID"], &rows);
    let result = ListResult {
        services: status
            .services
            .iter()
            .map(|s| ListedService {
                label: s.label.clone(),
                manager: s.manager.clone(),
                adapter_type: s.adapter_type.clone(),
                desired: s.desired,
                health: s.health,
                run_state: s.run_state,
                pid: s.pid,
            })
            .collect(),
        node_id: status.node_id,
        source,
    };
    Ok(Report::ok(CMD, result, human))
}
