//! The command line: verbs, flags, and the dispatch to each verb's code.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use node_identity::NodeIdentity;

use crate::audit::{audit, AuditScope};
use crate::output::{exit, table, Failure, Report};

/// The joelclaw node agent: keeps this node's services alive and checks its setup.
#[derive(Debug, Parser)]
#[command(name = "joelclaw-node", version, about, max_term_width = 100)]
pub struct Cli {
    /// Print a JSON envelope (`ok`, `command`, `result`, `next_actions`) instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// The agent's state folder (default: the inventory's `loop.state_dir`, else the user's
    /// state folder; for `install-self`, /var/lib/joelclaw). `status` and `inspect` read the
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
    /// One probe round: a table of services, node identity and substrate.
    Status(InventoryArgs),
    /// One service's state, from its manager.
    Inspect(InspectArgs),
    /// This node's identity, with where each value came from.
    Identity,
    /// Install the inventory's desired definitions (plists, units), idempotently.
    Apply(ApplyArgs),
    /// Check the Central host policy on installed definitions and state folders.
    Audit(AuditArgs),
    /// Report forbidden patterns in a repository (exit 1 on hits).
    Gate(GateArgs),
    /// Install this agent itself as a LaunchDaemon or systemd unit.
    InstallSelf(InstallSelfArgs),
    /// A tiny HTTP service for the demo inventory (not for production).
    #[command(hide = true)]
    DemoService(DemoServiceArgs),
}

/// `demo-service`.
#[derive(Debug, Args)]
pub struct DemoServiceArgs {
    /// Port on 127.0.0.1.
    #[arg(long)]
    pub port: u16,
    /// Exit with status 1 after this long (e.g. `12s`).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub crash_after: Option<std::time::Duration>,
    /// Stop answering after this long (e.g. `12s`).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub hang_after: Option<std::time::Duration>,
}

/// `--inventory FILE`.
#[derive(Debug, Args)]
pub struct InventoryArgs {
    /// The inventory (TOML).
    #[arg(long, short = 'i', value_name = "FILE")]
    pub inventory: PathBuf,
}

/// `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The inventory (TOML).
    #[arg(long, short = 'i', value_name = "FILE")]
    pub inventory: PathBuf,
    /// Where to write events as JSON lines (`-` for stdout, the default).
    #[arg(long, value_name = "FILE", default_value = "-")]
    pub events: String,
}

/// `inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The service label.
    pub label: String,
    /// The inventory that names the service's manager.
    #[arg(long, short = 'i', value_name = "FILE")]
    pub inventory: Option<PathBuf>,
}

/// `apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The inventory (TOML).
    #[arg(long, short = 'i', value_name = "FILE")]
    pub inventory: PathBuf,
    /// Show the diff; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Write definitions under this root instead of `/` (launchd plists; no bootstrap).
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
}

/// `audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The filesystem root to audit.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// The inventory: which services are critical, the state folder and service user.
    #[arg(long, short = 'i', value_name = "FILE")]
    pub inventory: Option<PathBuf>,
}

/// `gate`.
#[derive(Debug, Args)]
pub struct GateArgs {
    /// The repository to scan.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub repo: PathBuf,
    /// A forbidden regular expression (repeatable). Without any, the default rules apply.
    #[arg(long, value_name = "REGEX")]
    pub forbid: Vec<String>,
    /// A glob (relative to the repo) where forbidden patterns are allowed (repeatable; each
    /// applies to every rule).
    #[arg(long, value_name = "GLOB")]
    pub allow: Vec<String>,
}

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

/// Parses the command line, runs the verb, prints, and returns the exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let as_json = cli.json;
    let state_dir = cli.state_dir;
    let result = match cli.command {
        Command::Identity => identity(),
        Command::Gate(args) => gate(args),
        Command::Audit(args) => audit_cmd(args),
        Command::Run(args) => crate::agent::run(args, state_dir),
        Command::Status(args) => crate::agent::status(args, state_dir),
        Command::Inspect(args) => crate::agent::inspect(args, state_dir),
        Command::Apply(args) => crate::agent::apply(args),
        Command::InstallSelf(args) => crate::agent::install_self(args, state_dir),
        Command::DemoService(args) => {
            use crate::demo::{serve, Failure as DemoFailure};
            let failure = match (args.crash_after, args.hang_after) {
                (Some(d), _) => DemoFailure::CrashAfter(d),
                (None, Some(d)) => DemoFailure::HangAfter(d),
                (None, None) => DemoFailure::None,
            };
            let e = serve(args.port, failure);
            Err(Failure::failed(
                "demo-service",
                format!("port {}: {e}", args.port),
            ))
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

fn identity() -> Result<Report, Failure> {
    let id = NodeIdentity::detect().map_err(|e| Failure::input("identity", e))?;
    let rows = vec![
        vec![
            "node_id".into(),
            id.node_id.value.clone(),
            id.node_id.source.to_string(),
        ],
        vec![
            "home_dir".into(),
            id.home_dir.value.display().to_string(),
            id.home_dir.source.to_string(),
        ],
        vec![
            "repo_root".into(),
            id.repo_root.value.display().to_string(),
            id.repo_root.source.to_string(),
        ],
        vec![
            "vault_path".into(),
            id.vault_path.value.display().to_string(),
            id.vault_path.source.to_string(),
        ],
        vec![
            "platform".into(),
            id.platform.value.to_string(),
            id.platform.source.to_string(),
        ],
        vec![
            "arch".into(),
            id.arch.value.clone(),
            id.arch.source.to_string(),
        ],
    ];
    Ok(Report::ok(
        "identity",
        &id,
        table(&["FIELD", "VALUE", "SOURCE"], &rows),
    ))
}

fn gate(args: GateArgs) -> Result<Report, Failure> {
    use ::gate::{default_repo_rules, scan, Rule};
    let rules = if args.forbid.is_empty() {
        let mut rules = default_repo_rules();
        if !args.allow.is_empty() {
            rules = rules
                .into_iter()
                .map(|r| {
                    let mut spec = r.spec().clone();
                    spec.allow.extend(args.allow.iter().cloned());
                    Rule::new(spec)
                })
                .collect::<Result<_, _>>()
                .map_err(|e| Failure::input("gate", e))?;
        }
        rules
    } else {
        args.forbid
            .iter()
            .map(|f| Rule::forbid(f, &args.allow))
            .collect::<Result<_, _>>()
            .map_err(|e| Failure::input("gate", e))?
    };
    let report = scan(&args.repo, &rules).map_err(|e| Failure::input("gate", e))?;
    let totals = report.totals();
    if report.violations.is_empty() {
        return Ok(Report::ok(
            "gate",
            serde_json::json!({ "repo": args.repo, "violations": [], "totals": totals }),
            format!(
                "gate: {} clean ({} rules, {} files)\n",
                args.repo.display(),
                rules.len(),
                totals.files_scanned
            ),
        ));
    }
    Ok(Report::findings(
        "gate",
        serde_json::json!({ "repo": args.repo, "violations": report.violations, "totals": totals }),
        report.to_string(),
    )
    .with_next(["move the call behind the allowed package, or add --allow GLOB".to_string()]))
}

fn audit_cmd(args: AuditArgs) -> Result<Report, Failure> {
    let mut scope = AuditScope {
        root: args.root.clone(),
        ..AuditScope::default()
    };
    if let Some(inv) = &args.inventory {
        crate::agent::audit_scope_from_inventory(inv, &mut scope)?;
    }
    if !scope.root.is_dir() {
        return Err(Failure::input(
            "audit",
            format!("--root {}: not a folder", scope.root.display()),
        ));
    }
    let findings = audit(&scope);
    let failed = findings.iter().filter(|f| !f.pass).count();
    let rows: Vec<Vec<String>> = findings
        .iter()
        .map(|f| {
            vec![
                if f.pass { "pass" } else { "FAIL" }.into(),
                f.rule.into(),
                f.target.clone(),
                f.detail.clone(),
            ]
        })
        .collect();
    let mut human = table(&["RESULT", "RULE", "TARGET", "DETAIL"], &rows);
    human.push_str(&format!(
        "audit: {} checks, {} failed\n",
        findings.len(),
        failed
    ));
    let result = serde_json::json!({ "root": scope.root, "findings": findings, "failed": failed });
    Ok(if failed == 0 {
        Report::ok("audit", result, human)
    } else {
        Report::findings("audit", result, human)
    })
}
