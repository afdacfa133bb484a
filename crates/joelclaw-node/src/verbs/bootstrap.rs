//! `bootstrap`: from a bare machine to a healing node in one idempotent command.
//!
//! On Linux, in order: the inventory checked as `run` checks it; the service accounts and
//! groups (system accounts, no login shell); then `apply` (the services' folders with owners
//! and modes, their units written and enabled), `install-self` (the agent's folders, unit and
//! inventory copy; started), and `audit`, whose result is the command's. Every step looks
//! before it acts, so a second run changes nothing and says so, and a run stopped midway is
//! completed by the next. `--dry-run` shows each step and changes nothing.
//!
//! On macOS, account creation is the administrator's decision (Standard-user model): bootstrap
//! checks the accounts and folders and prints the exact commands to run.
//!
//! This is the one verb that runs others: it sequences `apply`, `install-self` and `audit`
//! through their own `exec`, so each step behaves exactly as the verb alone.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use central_core::inventory::ManagerKind;
use central_core::Inventory;
use clap::Args;
use node_identity::Platform;

use crate::output::{Failure, NextAction, Report};
use crate::setup::check_as_run;
use crate::verbs::apply::{self, ApplyArgs};
use crate::verbs::audit::{self, AuditArgs};
use crate::verbs::install_self::{self, InstallSelfArgs};

/// How long one account command (`groupadd`, `useradd`) may take.
const ACCOUNT_DEADLINE: Duration = Duration::from_secs(30);
/// The shell of a service account: no login.
const NO_LOGIN: &str = "/usr/sbin/nologin";

/// `bootstrap`.
#[derive(Debug, Args)]
pub struct BootstrapArgs {
    /// The inventory (TOML).
    #[arg(long, short = 'i', value_name = "FILE")]
    pub inventory: PathBuf,
    /// Show every step; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Write definitions and folders under this root instead of `/` (no accounts created, no
    /// owners set, nothing started), as `apply --root` does.
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Run the agent as this account instead of root (see `install-self --user`).
    #[arg(long, value_name = "NAME")]
    pub agent_user: Option<String>,
    /// The agent's log folder once installed.
    #[arg(long, value_name = "DIR", default_value = "/var/log/joelclaw")]
    pub log_dir: PathBuf,
    /// The installed binary (default: this one).
    #[arg(long, value_name = "PATH")]
    pub program: Option<PathBuf>,
}

/// A service account (and its group) the inventory's services run as.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
struct Account {
    user: String,
    group: String,
}

impl Account {
    /// The account's home: private, outside any person's home, never a login.
    fn home(&self) -> PathBuf {
        PathBuf::from("/var/lib").join(&self.user)
    }

    fn groupadd(&self) -> Vec<String> {
        vec!["groupadd".into(), "--system".into(), self.group.clone()]
    }

    fn useradd(&self) -> Vec<String> {
        [
            "useradd",
            "--system",
            "--gid",
            &self.group,
            "--home-dir",
            &self.home().display().to_string(),
            "--no-create-home",
            "--shell",
            NO_LOGIN,
            "--comment",
            "joelclaw service account",
            &self.user,
        ]
        .map(String::from)
        .to_vec()
    }
}

/// The accounts the inventory's supervised services run as (never root).
fn accounts(inventory: &Inventory, agent_user: Option<&str>) -> Vec<Account> {
    let mut out = BTreeSet::new();
    for kind in [ManagerKind::Systemd, ManagerKind::Launchd] {
        let s = crate::compose::settings(inventory, kind.as_str());
        if let Some(user) = s.service_account {
            let group = s.service_group.unwrap_or_else(|| user.clone());
            out.insert(Account { user, group });
        }
    }
    for (spec, config) in inventory.desired_configs() {
        if !matches!(spec.manager, ManagerKind::Systemd | ManagerKind::Launchd) {
            continue;
        }
        if let Some(user) = config.user.clone().filter(|u| u != "root") {
            let group = config.group.clone().unwrap_or_else(|| user.clone());
            out.insert(Account { user, group });
        }
    }
    if let Some(user) = agent_user {
        out.insert(Account {
            user: user.into(),
            group: user.into(),
        });
    }
    out.into_iter().collect()
}

fn user_exists(name: &str) -> bool {
    nix::unistd::User::from_name(name).ok().flatten().is_some()
}

fn group_exists(name: &str) -> bool {
    nix::unistd::Group::from_name(name).ok().flatten().is_some()
}

fn run_argv(argv: &[String]) -> Result<(), String> {
    let out = sysutil::command::Command::new(&argv[0], ACCOUNT_DEADLINE)
        .args(&argv[1..])
        .run_blocking()
        .map_err(|e| format!("{}: {e}", argv.join(" ")))?;
    if out.success() {
        Ok(())
    } else {
        Err(format!("{}: {}", argv.join(" "), out.stderr.trim()))
    }
}

/// One step's line in the report.
#[derive(Debug, serde::Serialize)]
struct Step {
    step: &'static str,
    what: String,
    /// `created`, `exists`, `changed`, `unchanged`, `would ...`, `skipped`, or the audit result.
    outcome: String,
}

/// Runs the steps in order; stops at the first that fails (the next run picks up there).
pub fn exec(args: BootstrapArgs, state_flag: Option<PathBuf>) -> Result<Report, Failure> {
    const CMD: &str = "bootstrap";
    let inventory = check_as_run(CMD, &args.inventory)?;
    let accounts = accounts(&inventory, args.agent_user.as_deref());
    if Platform::current() == Platform::Macos && args.root.is_none() {
        return Ok(macos_checklist(&args, &accounts));
    }
    let mut steps = Vec::new();
    let mut changed = 0usize;
    let dry = args.dry_run;
    // 1. Accounts: groups first (useradd names the group).
    for a in &accounts {
        let mut to_run = Vec::new();
        if !group_exists(&a.group) {
            to_run.push(("group", a.group.clone(), a.groupadd()));
        }
        if !user_exists(&a.user) {
            to_run.push(("account", a.user.clone(), a.useradd()));
        }
        if to_run.is_empty() {
            steps.push(Step {
                step: "account",
                what: format!("{}:{}", a.user, a.group),
                outcome: "exists".into(),
            });
        }
        for (step, name, argv) in to_run {
            let outcome = if args.root.is_some() {
                format!("skipped under --root (would run: {})", argv.join(" "))
            } else if dry {
                format!("would run: {}", argv.join(" "))
            } else {
                run_argv(&argv).map_err(|e| Failure::failed(CMD, e))?;
                changed += 1;
                format!("created ({})", argv.join(" "))
            };
            steps.push(Step {
                step,
                what: name,
                outcome,
            });
        }
    }
    // Each account's home: private (the audit's rule), made here rather than by useradd, whose
    // mode follows the machine's login.defs.
    for a in &accounts {
        let Some(user) = nix::unistd::User::from_name(&a.user).ok().flatten() else {
            continue; // a dry run or --root: not created
        };
        let home = crate::compose::reroot(args.root.as_deref(), &user.dir);
        if home.is_dir() || user.dir == std::path::Path::new("/") {
            continue;
        }
        let outcome = if dry {
            "would create".to_string()
        } else {
            let owner = args.root.is_none().then_some(&user);
            install_self::make_folder(&home, 0o700, owner).map_err(|e| Failure::failed(CMD, e))?;
            changed += 1;
            "created".into()
        };
        steps.push(Step {
            step: "home",
            what: format!("{} (mode 700, owner {})", home.display(), a.user),
            outcome,
        });
    }
    let accounts_pending = dry
        && args.root.is_none()
        && accounts
            .iter()
            .any(|a| !user_exists(&a.user) || !group_exists(&a.group));
    // 2. apply: the services' folders and units.
    let applied = apply::exec(ApplyArgs {
        inventory: args.inventory.clone(),
        dry_run: dry,
        root: args.root.clone(),
        strict: false,
        prune: false,
    });
    let mut human_parts = Vec::new();
    match applied {
        Ok(report) => {
            let n = report.result["changes"].as_u64().unwrap_or(0) as usize
                + report.result["folders"].as_array().map_or(0, Vec::len);
            if !dry {
                changed += n;
            }
            steps.push(Step {
                step: "apply",
                what: args.inventory.display().to_string(),
                outcome: match (n, dry) {
                    (0, _) => "unchanged".into(),
                    (n, true) => format!("would change {n}"),
                    (n, false) => format!("changed {n}"),
                },
            });
            human_parts.push(report.human);
        }
        // On a dry run the accounts are not made yet, so apply cannot plan their folders.
        Err(f) if accounts_pending => {
            steps.push(Step {
                step: "apply",
                what: args.inventory.display().to_string(),
                outcome: "would run once the accounts exist".into(),
            });
            human_parts.push(format!(
                "apply (before the accounts exist): {}\n",
                f.message
            ));
        }
        Err(f) => return Err(Failure { command: CMD, ..f }),
    }
    // 3. install-self: the agent's folders, unit and inventory copy; started.
    let self_args = InstallSelfArgs {
        root: args.root.clone(),
        inventory: args.inventory.clone(),
        installed_inventory: PathBuf::from(install_self::DEFAULT_INSTALLED_INVENTORY),
        manager: None,
        program: args.program.clone(),
        user: args.agent_user.clone(),
        group: None,
        log_dir: args.log_dir.clone(),
    };
    if dry {
        let plan = install_self::plan(&self_args, state_flag.as_deref())
            .map_err(|f| Failure { command: CMD, ..f })?;
        for f in plan.files(true) {
            steps.push(Step {
                step: "install-self",
                what: format!("{} {}", f.what, f.path.display()),
                outcome: f.outcome,
            });
        }
        for (dir, mode, _) in plan.folders(args.root.as_deref(), &args.log_dir) {
            if !dir.is_dir() {
                steps.push(Step {
                    step: "install-self",
                    what: format!(
                        "folder {} (mode {mode:o}, owner {})",
                        dir.display(),
                        plan.account
                    ),
                    outcome: "would create".into(),
                });
            }
        }
        steps.push(Step {
            step: "audit",
            what: "the installed node".into(),
            outcome: "would run".into(),
        });
    } else {
        let report = install_self::exec(self_args, state_flag.clone())
            .map_err(|f| Failure { command: CMD, ..f })?;
        let n = report.result["changes"].as_u64().unwrap_or(0) as usize;
        changed += n;
        steps.push(Step {
            step: "install-self",
            what: report.result["path"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            outcome: if n == 0 {
                "unchanged".into()
            } else {
                format!("changed {n}")
            },
        });
        human_parts.push(report.human);
    }
    // 4. audit: the result of the whole command.
    let mut code = crate::output::exit::OK;
    let mut audit_result = serde_json::Value::Null;
    if !dry {
        let report = audit::exec(AuditArgs {
            root: args.root.clone().unwrap_or_else(|| PathBuf::from("/")),
            inventory: Some(args.inventory.clone()),
        })
        .map_err(|f| Failure { command: CMD, ..f })?;
        code = report.code;
        steps.push(Step {
            step: "audit",
            what: "the installed node".into(),
            outcome: if report.ok {
                "passed".into()
            } else {
                "FAILED".into()
            },
        });
        audit_result = report.result.clone();
        human_parts.push(report.human);
    }
    let mut human = human_parts.join("");
    for s in &steps {
        human.push_str(&format!("{:<13} {}: {}\n", s.step, s.what, s.outcome));
    }
    human.push_str(&match (dry, changed) {
        (true, _) => "bootstrap: dry run, nothing changed\n".to_string(),
        (false, 0) => "bootstrap: nothing changed\n".to_string(),
        (false, n) => format!("bootstrap: {n} change(s)\n"),
    });
    let result = serde_json::json!({
        "dry_run": dry,
        "root": args.root,
        "changes": changed,
        "steps": steps,
        "audit": audit_result,
    });
    let mut report = if code == crate::output::exit::OK {
        Report::ok(CMD, result, human)
    } else {
        Report::findings(CMD, result, human)
    };
    if dry {
        // The same bootstrap for real, with every flag that shaped this plan.
        let mut argv = vec![
            "bootstrap".to_string(),
            "--inventory".into(),
            args.inventory.display().to_string(),
        ];
        if let Some(root) = &args.root {
            argv.extend(["--root".into(), root.display().to_string()]);
        }
        if let Some(user) = &args.agent_user {
            argv.extend(["--agent-user".into(), user.clone()]);
        }
        if let Some(program) = &args.program {
            argv.extend(["--program".into(), program.display().to_string()]);
        }
        argv.extend(["--log-dir".into(), args.log_dir.display().to_string()]);
        report = report.with_next([NextAction::node(
            argv,
            "carry out the steps this dry run showed",
        )]);
    }
    Ok(report)
}

/// macOS: what exists, and the administrator's commands for what does not.
fn macos_checklist(args: &BootstrapArgs, accounts: &[Account]) -> Report {
    let mut missing = Vec::new();
    let mut commands = Vec::new();
    for a in accounts {
        if user_exists(&a.user) {
            continue;
        }
        missing.push(format!("account {}", a.user));
        // A free id below 500: a hidden system account, like the OS's own `_` accounts.
        let id = (300..500)
            .find(|id| {
                nix::unistd::User::from_uid((*id).into())
                    .ok()
                    .flatten()
                    .is_none()
                    && nix::unistd::Group::from_gid((*id).into())
                        .ok()
                        .flatten()
                        .is_none()
            })
            .unwrap_or(499);
        let u = &a.user;
        let g = &a.group;
        if !group_exists(g) {
            commands.push(argv(&[
                "sudo",
                "dscl",
                ".",
                "-create",
                &format!("/Groups/{g}"),
                "PrimaryGroupID",
                &id.to_string(),
            ]));
        }
        for (key, value) in [
            ("UniqueID", id.to_string()),
            ("PrimaryGroupID", id.to_string()),
            ("UserShell", "/usr/bin/false".into()),
            ("NFSHomeDirectory", format!("/var/lib/{u}")),
            ("RealName", "joelclaw service account".into()),
            ("IsHidden", "1".into()),
        ] {
            commands.push(argv(&[
                "sudo",
                "dscl",
                ".",
                "-create",
                &format!("/Users/{u}"),
                key,
                &value,
            ]));
        }
        commands.push(argv(&[
            "sudo",
            "install",
            "-d",
            "-m",
            "0700",
            "-o",
            u,
            "-g",
            g,
            &format!("/var/lib/{u}"),
        ]));
    }
    let inv = args.inventory.display().to_string();
    for verb in ["apply", "install-self", "audit"] {
        commands.push(argv(&["sudo", "joelclaw-node", verb, "--inventory", &inv]));
    }
    let mut human = String::new();
    if missing.is_empty() {
        human.push_str("bootstrap: every account exists\n");
    } else {
        human.push_str(&format!("bootstrap: missing: {}\n", missing.join(", ")));
    }
    human.push_str("account creation on macOS is the administrator's decision; run:\n");
    for c in &commands {
        human.push_str(&format!("  {}\n", shell_line(c)));
    }
    let next: Vec<NextAction> = commands
        .iter()
        .map(|argv| NextAction {
            argv: argv.clone(),
            description: "an administrator's step of this node's setup".into(),
        })
        .collect();
    Report::ok(
        "bootstrap",
        serde_json::json!({ "missing": missing, "commands": commands }),
        human,
    )
    .with_next(next)
}

fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| (*w).to_string()).collect()
}

/// An argv as a person would type it (words with spaces quoted).
fn shell_line(argv: &[String]) -> String {
    argv.iter()
        .map(|w| {
            if w.contains(char::is_whitespace) {
                format!("\"{w}\"")
            } else {
                w.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
