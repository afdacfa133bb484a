//! The command line: the global flags, the verbs, and the dispatch to each verb's `exec` in
//! [`crate::verbs`]. Nothing here knows what a verb does.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::output::{exit, Failure};
use crate::verbs::service::{ListArgs, ServiceArgs};
use crate::verbs::{
    apply, audit, bootstrap, demo_service, env_exec, fleet, gate, identity, inspect, install_self,
    logs, run, service, status,
};
use crate::verbs::{
    apply::ApplyArgs, audit::AuditArgs, bootstrap::BootstrapArgs, demo_service::DemoServiceArgs,
    env_exec::EnvExecArgs, gate::GateArgs, inspect::InspectArgs, install_self::InstallSelfArgs,
    run::RunArgs, status::StatusArgs,
};
use central_core::Verb;

/// The joelclaw node agent: keeps this node's services alive and checks its setup.
#[derive(Debug, Parser)]
#[command(name = "joelclaw-node", version, about, max_term_width = 100)]
pub struct Cli {
    /// Print a JSON envelope (`ok`, `command`, `result`, `next_actions`) instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// The agent's state folder (default: the inventory's `loop.state_dir`, else the user's
    /// state folder; for `install-self` and `bootstrap`, /var/lib/joelclaw). `status` and `inspect` read the
    /// running agent's state from it.
    #[arg(long, global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// The verb.
    #[command(subcommand)]
    pub command: Command,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the heal loop over an inventory (the main job).
    Run(RunArgs),
    /// One probe round: a table of services, node identity and substrate (`--fleet`: every
    /// node publishing to Central's Redis).
    Status(StatusArgs),
    /// The fleet's heal events from Central's Redis (`--fleet`), `--follow` for new ones.
    Events(fleet::EventsArgs),
    /// One service's state, from its manager.
    Inspect(InspectArgs),
    /// Every service: manager, desired state, health, pid (from the running agent, if any).
    List(ListArgs),
    /// Start a service; healed again from then on (through the running agent, if any).
    Start(ServiceArgs),
    /// Stop a service; not healed back until started, across agent restarts.
    Stop(ServiceArgs),
    /// Restart a service (start it if stopped), what the gateway used to kickstart.
    Restart(ServiceArgs),
    /// Install, enable at boot and start a service; healed again from then on.
    Enable(ServiceArgs),
    /// Stop a service and keep it from starting at boot; not healed until enabled.
    Disable(ServiceArgs),
    /// A service's output: its log files or its journal (`-f` to follow).
    Logs(logs::LogsArgs),
    /// This node's identity, with where each value came from.
    Identity,
    /// Install the inventory's desired definitions (plists, units), idempotently.
    Apply(ApplyArgs),
    /// Check the Central host policy (ADR-0246) on every installed definition, the service and
    /// relay accounts' homes, and the services and state folders.
    Audit(AuditArgs),
    /// Report forbidden patterns in a repository (exit 1 on hits).
    Gate(GateArgs),
    /// Install this agent itself as a boot-time system daemon (root by default, sandboxed).
    InstallSelf(InstallSelfArgs),
    /// From a bare machine to a healing node: accounts, folders, `apply`, `install-self`,
    /// then `audit` (macOS: prints the administrator's commands).
    Bootstrap(BootstrapArgs),
    /// A tiny HTTP service for the demo inventory (not for production).
    #[command(hide = true)]
    DemoService(DemoServiceArgs),
    /// Run a program with env files' values (the wrapper of launchd services with env files).
    #[command(hide = true)]
    EnvExec(EnvExecArgs),
    /// Print the JSON Schema of a document of the contract (published in schemas/): the
    /// envelope (default), the status snapshot, an event, a verb's outcome, and the results of
    /// list, inspect, identity, logs, status --fleet [--node] and events --fleet.
    Schema {
        /// Which document.
        #[arg(value_enum, default_value = "envelope")]
        document: crate::output::Document,
    },
    /// Print a shell completion script (e.g. `joelclaw-node completions bash >
    /// /etc/bash_completion.d/joelclaw-node`).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

impl Command {
    /// The verb named `name` as the envelope spells it (`joelclaw-node` for none or an unknown
    /// one), for usage errors, which happen before a verb runs.
    fn from_name(name: Option<&str>) -> &'static str {
        use clap::CommandFactory;
        let cli = Cli::command();
        name.and_then(|n| {
            cli.get_subcommands()
                .map(clap::Command::get_name)
                .find(|known| *known == n)
                .map(|known| -> &'static str { Box::leak(known.to_string().into_boxed_str()) })
        })
        .unwrap_or("joelclaw-node")
    }
}

/// Parses the command line, runs the verb, prints, and returns the exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            if !e.use_stderr() {
                // --help, --version: not errors.
                let _ = e.print();
                return ExitCode::from(exit::OK);
            }
            let args: Vec<String> = std::env::args().skip(1).collect();
            if args.iter().any(|a| a == "--json") {
                // The contract holds for a bad command line too: one envelope on stdout.
                let verb = args.iter().find(|a| !a.starts_with('-')).cloned();
                let command = Command::from_name(verb.as_deref());
                let message = e.render().to_string();
                Failure::usage(command, message.trim_end()).print(true);
            } else {
                let _ = e.print();
            }
            return ExitCode::from(exit::USAGE);
        }
    };
    let as_json = cli.json;
    let state_dir = cli.state_dir;
    let result = match cli.command {
        Command::Identity => identity::exec(),
        Command::Gate(args) => gate::exec(args),
        Command::Audit(args) => audit::exec(args),
        Command::Run(args) => run::exec(args, state_dir),
        Command::Status(args) => status::exec(args, state_dir, as_json),
        Command::Events(args) => fleet::events(args, as_json),
        Command::Inspect(args) => inspect::exec(args, state_dir),
        Command::List(args) => service::list(args, state_dir),
        Command::Start(args) => service::exec(Verb::Start, args, state_dir),
        Command::Stop(args) => service::exec(Verb::Stop, args, state_dir),
        Command::Restart(args) => service::exec(Verb::Restart, args, state_dir),
        Command::Enable(args) => service::exec(Verb::Enable, args, state_dir),
        Command::Disable(args) => service::exec(Verb::Disable, args, state_dir),
        Command::Logs(args) => logs::exec(args, state_dir, as_json),
        Command::Apply(args) => apply::exec(args),
        Command::InstallSelf(args) => install_self::exec(args, state_dir),
        Command::Bootstrap(args) => bootstrap::exec(args, state_dir),
        Command::DemoService(args) => demo_service::exec(args),
        Command::EnvExec(args) => env_exec::exec(args),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "joelclaw-node",
                &mut std::io::stdout(),
            );
            return ExitCode::from(exit::OK);
        }
        Command::Schema { document } => {
            print!("{}", document.schema());
            return ExitCode::from(exit::OK);
        }
    };
    match result {
        Ok(report) => {
            report.print(as_json);
            ExitCode::from(report.code)
        }
        Err(failure) => {
            failure.print(as_json);
            ExitCode::from(failure.code)
        }
    }
}
