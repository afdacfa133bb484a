//! `apply`: the inventory's desired definitions to installed plists or units, idempotently,
//! with the folders they need. Renders and checks everything first (definitions, folders and
//! their accounts, paths under a person's home with `--strict`); writes nothing unless all of
//! it is good. Reports definitions of services that left the inventory; `--prune` removes them.

mod host;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use central_core::inventory::ManagerKind;
use clap::Args;
use process_manager::{ProcessManagerPort, ServiceConfig};
use serde::Serialize;

use crate::compose;
use crate::output::{json_name, table, Failure, NextAction, Report};
use crate::setup::{load, runtime};

/// `apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The inventory (TOML).
    #[arg(long, short = 'i', value_name = "FILE")]
    pub inventory: PathBuf,
    /// Show the diff; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Write definitions and folders under this root instead of `/` (created when missing;
    /// no bootstrap, no owners set).
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Refuse (exit 2, nothing written) a definition naming a path under a person's home,
    /// instead of warning.
    #[arg(long)]
    pub strict: bool,
    /// Remove the installed definitions of services that left the inventory.
    #[arg(long)]
    pub prune: bool,
}

/// One definition `apply` handles.
#[derive(Debug, Serialize)]
struct Planned {
    label: String,
    manager: &'static str,
    path: PathBuf,
    change: &'static str,
    #[serde(skip)]
    bytes: Vec<u8>,
    #[serde(skip)]
    config: ServiceConfig,
    diff: String,
    outcome: Option<String>,
}

fn diff(path: &Path, old: &str, new: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(
            &format!("{} (installed)", path.display()),
            &format!("{} (desired)", path.display()),
        )
        .to_string()
}

/// Whether the inventory uses `manager`, by a service or a `[managers.<name>]` table (a table
/// alone still says where that manager's definitions live, so ones left behind are found).
fn uses(inventory: &central_core::Inventory, manager: ManagerKind) -> bool {
    inventory.managers.contains_key(manager.as_str())
        || inventory.services.iter().any(|s| s.manager == manager)
}

/// Plans every definition and folder; then, unless `--dry-run`, makes the missing folders and
/// writes the changed definitions under `--root` or enables each through its manager.
pub fn exec(args: ApplyArgs) -> Result<Report, Failure> {
    const CMD: &str = "apply";
    let inventory = load(CMD, &args.inventory)?;
    let root = args.root.as_deref();
    if let Some(r) = root {
        if r.exists() && !r.is_dir() {
            return Err(Failure::input(
                CMD,
                format!("--root {}: not a folder", r.display()),
            ));
        }
    }
    // Without launchd definitions to write, launchd is only looked in for ones left behind:
    // an adapter it cannot build (a uid of another machine) is then no error.
    let launchd_built = || compose::launchd_for_inventory(&inventory, root);
    let launchd = if inventory
        .desired_configs()
        .any(|(s, _)| s.manager == ManagerKind::Launchd)
    {
        Some(Arc::new(
            launchd_built().map_err(|e| Failure::input(CMD, e))?,
        ))
    } else if uses(&inventory, ManagerKind::Launchd) {
        launchd_built().ok().map(Arc::new)
    } else {
        None
    };
    let systemd_settings = compose::settings(&inventory, "systemd");
    let systemd = uses(&inventory, ManagerKind::Systemd)
        .then(|| Arc::new(compose::systemd_adapter(systemd_settings.clone(), root)));
    // Folders are made where the services run: under --root, through systemd's command
    // prefix when it reaches another machine, else here.
    let systemd_host = match (root, systemd_settings.command_prefix.is_empty()) {
        (None, false) => host::Host::Prefixed {
            prefix: &systemd_settings.command_prefix,
        },
        _ => host::Host::Native { root },
    };
    let launchd_host = host::Host::Native { root };
    // 1. Render and check every definition; collect every problem before touching anything.
    let mut plan = Vec::new();
    let mut problems = Vec::new();
    let mut skipped = Vec::new();
    let mut warnings = Vec::new();
    let mut folders: Vec<(ManagerKind, host::Folder)> = Vec::new();
    for (spec, config) in inventory.desired_configs() {
        let rendered = match spec.manager {
            ManagerKind::Launchd => launchd.as_ref().map(|m| m.render(config)),
            ManagerKind::Systemd => systemd.as_ref().map(|m| {
                m.render_unit(config)
                    .map(|text| (m.unit_path(&config.label), text.into_bytes()))
            }),
            _ => {
                skipped.push(format!(
                    "{} ({}: started by the agent itself)",
                    spec.label,
                    spec.manager.as_str()
                ));
                None
            }
        };
        let settings = compose::settings(&inventory, spec.manager.as_str());
        let account = settings.service_account.as_deref();
        let owner = host::owner_of(config, account, settings.service_group.as_deref());
        let own_homes = host::own_homes(owner.as_ref().map(|o| o.user.as_str()).or(account));
        warnings.extend(
            host::person_home_paths(config, &own_homes)
                .into_iter()
                .map(|w| format!("{}: {w} is under a person's home", spec.label)),
        );
        match rendered {
            None => {}
            Some(Err(e)) => problems.push(format!("{}: {e}", spec.label)),
            Some(Ok((path, bytes))) => {
                folders.extend(
                    host::folders(config, owner.as_ref())
                        .into_iter()
                        .map(|f| (spec.manager, f)),
                );
                let old = std::fs::read(&path).ok();
                let change = match &old {
                    None => "new",
                    Some(o) if *o == bytes => "unchanged",
                    Some(_) => "changed",
                };
                let diff = diff(
                    &path,
                    &String::from_utf8_lossy(old.as_deref().unwrap_or_default()),
                    &String::from_utf8_lossy(&bytes),
                );
                plan.push(Planned {
                    label: spec.label.to_string(),
                    manager: spec.manager.as_str(),
                    path,
                    change,
                    bytes,
                    config: config.clone(),
                    diff,
                    outcome: None,
                });
            }
        }
    }
    // Folders: one entry per path (the first service naming it decides owner and mode), and
    // only those missing; their accounts must exist before any is made.
    let mut seen = BTreeSet::new();
    folders.retain(|(_, f)| seen.insert(f.path.clone()));
    let mut missing: Vec<(ManagerKind, host::Folder)> = Vec::new();
    for (kind, host) in [
        (ManagerKind::Systemd, &systemd_host),
        (ManagerKind::Launchd, &launchd_host),
    ] {
        let wanted: Vec<host::Folder> = folders
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, f)| f.clone())
            .collect();
        match host.missing(&wanted) {
            Ok(m) => missing.extend(m.into_iter().map(|f| (kind, f))),
            Err(e) => problems.push(e),
        }
        let accounts: BTreeSet<&str> = missing
            .iter()
            .filter(|(k, _)| *k == kind)
            .filter_map(|(_, f)| f.owner.as_ref().map(|o| o.user.as_str()))
            .collect();
        for user in accounts {
            match host.has_account(user) {
                Ok(true) => {}
                Ok(false) => problems.push(format!(
                    "account {user} (owner of the services' folders): no such account; create it first"
                )),
                Err(e) => problems.push(e),
            }
        }
    }
    if args.strict && !warnings.is_empty() {
        problems.extend(warnings.iter().map(|w| format!("{w} (--strict)")));
    }
    if !problems.is_empty() {
        return Err(Failure::input(
            CMD,
            format!(
                "{}: nothing was written; fix these first:\n  {}",
                args.inventory.display(),
                problems.join("\n  ")
            ),
        ));
    }
    // Definitions in the folders apply writes to, for services the inventory no longer names.
    let named: BTreeSet<String> = inventory
        .services
        .iter()
        .map(|s| s.label.to_string())
        .collect();
    let mut orphans = Vec::new();
    if let Some(m) = &systemd {
        orphans.extend(host::systemd_orphans(m.unit_dir(), &named));
    }
    if let Some(m) = &launchd {
        let prefixes = host::label_prefixes(
            inventory
                .services
                .iter()
                // Only services whose definition apply writes: a watched-only label
                // (`com.docker.vmnetd`) must not make another vendor's daemons look like ours.
                .filter(|s| s.manager == ManagerKind::Launchd && s.config.is_some())
                .map(|s| s.label.as_str()),
        );
        orphans.extend(host::launchd_orphans(
            &m.config().system_plist_dir,
            &prefixes,
            &named,
        ));
    }
    // 2. Act: nothing on a dry run; files only under --root; otherwise through the adapter,
    //    which writes atomically and (re)loads the service.
    if !args.dry_run {
        if let Some(r) = root {
            std::fs::create_dir_all(r)
                .map_err(|e| Failure::failed(CMD, format!("create --root {}: {e}", r.display())))?;
        }
        for (kind, folder) in &missing {
            let host = match kind {
                ManagerKind::Systemd => &systemd_host,
                _ => &launchd_host,
            };
            host.create(folder)
                .map_err(|e| Failure::failed(CMD, format!("{}: {e}", folder.label)))?;
        }
        let rt = runtime(CMD)?;
        for p in &mut plan {
            if root.is_some() {
                if p.change != "unchanged" {
                    sysutil::fs::AtomicWrite::with_mode(0o644)
                        .write(&p.path, &p.bytes)
                        .map_err(|e| {
                            Failure::failed(
                                CMD,
                                format!("{}: write {}: {e}", p.label, p.path.display()),
                            )
                        })?;
                }
                p.outcome = Some(
                    if p.change == "unchanged" {
                        "unchanged"
                    } else {
                        "written"
                    }
                    .into(),
                );
                continue;
            }
            let manager: Arc<dyn ProcessManagerPort> = match p.manager {
                "launchd" => launchd.clone().expect("built above"),
                _ => systemd.clone().expect("built above"),
            };
            let outcome = rt
                .block_on(manager.enable(&p.config))
                .map_err(|e| Failure::failed(CMD, format!("{}: {e}", p.label)))?;
            p.outcome = Some(json_name(&outcome));
        }
        if args.prune {
            for o in &mut orphans {
                if root.is_none() {
                    let manager: Arc<dyn ProcessManagerPort> = match o.manager {
                        "launchd" => launchd.clone().expect("found through it"),
                        _ => systemd.clone().expect("found through it"),
                    };
                    let label = process_manager::ServiceLabel::new(&o.label)
                        .map_err(|e| Failure::failed(CMD, format!("{}: {e}", o.label)))?;
                    rt.block_on(manager.disable(&label))
                        .map_err(|e| Failure::failed(CMD, format!("{}: {e}", o.label)))?;
                }
                for f in &o.files {
                    std::fs::remove_file(f).map_err(|e| {
                        Failure::failed(CMD, format!("{}: remove {}: {e}", o.label, f.display()))
                    })?;
                }
                o.outcome = Some("removed".into());
            }
        }
    }
    let changes = plan.iter().filter(|p| p.change != "unchanged").count();
    let mut human = String::new();
    for p in plan.iter().filter(|p| p.change != "unchanged") {
        human.push_str(&p.diff);
    }
    let rows: Vec<Vec<String>> = plan
        .iter()
        .map(|p| {
            vec![
                p.label.clone(),
                p.manager.into(),
                p.change.into(),
                p.outcome.clone().unwrap_or_else(|| "dry-run".into()),
                p.path.display().to_string(),
            ]
        })
        .collect();
    human.push_str(&table(
        &["SERVICE", "MANAGER", "CHANGE", "OUTCOME", "PATH"],
        &rows,
    ));
    for s in &skipped {
        human.push_str(&format!("skipped {s}\n"));
    }
    let made = if args.dry_run {
        "would create"
    } else {
        "created"
    };
    for (_, f) in &missing {
        let owner = f
            .owner
            .as_ref()
            .map(|o| format!(", owner {}", o.user))
            .unwrap_or_default();
        human.push_str(&format!(
            "{made} folder {} (mode {:o}{owner}) for {}\n",
            f.path.display(),
            f.mode,
            f.label
        ));
    }
    for w in &warnings {
        human.push_str(&format!("warning: {w}\n"));
    }
    for o in &orphans {
        let files: Vec<String> = o.files.iter().map(|f| f.display().to_string()).collect();
        human.push_str(&format!(
            "left the inventory: {} ({}, {}){}\n",
            o.label,
            o.manager,
            files.join(", "),
            match &o.outcome {
                Some(done) => format!(": {done}"),
                None if args.prune => ": would be removed (dry run)".into(),
                None => ": still installed; `apply --prune` removes it".into(),
            }
        ));
    }
    human.push_str(&match (changes, args.dry_run) {
        (0, _) => "apply: no changes\n".to_string(),
        (n, true) => format!("apply: {n} definition(s) would change (dry run: nothing written)\n"),
        (n, false) => format!("apply: {n} definition(s) changed\n"),
    });
    let result = serde_json::json!({
        "dry_run": args.dry_run,
        "root": args.root,
        "changes": changes,
        "definitions": plan,
        "skipped": skipped,
        "folders": missing.iter().map(|(_, f)| f).collect::<Vec<_>>(),
        "warnings": warnings,
        "left_inventory": orphans,
    });
    let mut report = Report::ok(CMD, result, human);
    // The same apply for real, with every flag that shaped this one (a dry run under --root
    // must not suggest writing to the real /).
    let again = |prune: bool| {
        let mut argv = vec!["apply".to_string(), "--inventory".into()];
        argv.push(args.inventory.display().to_string());
        if let Some(root) = &args.root {
            argv.extend(["--root".to_string(), root.display().to_string()]);
        }
        if args.strict {
            argv.push("--strict".into());
        }
        if prune {
            argv.push("--prune".into());
        }
        argv
    };
    if args.dry_run && changes > 0 {
        report = report.with_next([NextAction::node(
            again(args.prune),
            "write the definitions this dry run showed",
        )]);
    } else if !args.prune && !orphans.is_empty() {
        report = report.with_next([NextAction::node(
            again(true),
            "remove the definitions whose service left the inventory",
        )]);
    }
    Ok(report)
}
