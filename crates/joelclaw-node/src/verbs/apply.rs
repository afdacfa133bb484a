//! `apply`: the inventory's desired definitions to installed plists or units, idempotently.
//! Renders and checks everything first; writes nothing unless all of it is good.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use central_core::inventory::ManagerKind;
use clap::Args;
use process_manager::{ProcessManagerPort, ServiceConfig};
use serde::Serialize;

use crate::compose;
use crate::output::{json_name, table, Failure, Report};
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
    /// Write definitions under this root instead of `/` (launchd plists; no bootstrap).
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
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

/// Plans every definition; then, unless `--dry-run`, writes the changed ones under `--root` or
/// enables each through its manager.
pub fn exec(args: ApplyArgs) -> Result<Report, Failure> {
    const CMD: &str = "apply";
    let inventory = load(CMD, &args.inventory)?;
    let root = args.root.as_deref();
    if let Some(r) = root {
        if !r.is_dir() {
            return Err(Failure::input(
                CMD,
                format!("--root {}: not a folder", r.display()),
            ));
        }
    }
    let launchd = if inventory
        .desired_configs()
        .any(|(s, _)| s.manager == ManagerKind::Launchd)
    {
        Some(Arc::new(
            compose::launchd_adapter(compose::settings(&inventory, "launchd"), root)
                .map_err(|e| Failure::input(CMD, e))?,
        ))
    } else {
        None
    };
    let systemd = if inventory
        .desired_configs()
        .any(|(s, _)| s.manager == ManagerKind::Systemd)
    {
        Some(Arc::new(compose::systemd_adapter(
            compose::settings(&inventory, "systemd"),
            root,
        )))
    } else {
        None
    };
    // 1. Render and check every definition; collect every problem before touching anything.
    let mut plan = Vec::new();
    let mut problems = Vec::new();
    let mut skipped = Vec::new();
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
        match rendered {
            None => {}
            Some(Err(e)) => problems.push(format!("{}: {e}", spec.label)),
            Some(Ok((path, bytes))) => {
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
    // 2. Act: nothing on a dry run; files only under --root; otherwise through the adapter,
    //    which writes atomically and (re)loads the service.
    if !args.dry_run {
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
    });
    let mut report = Report::ok(CMD, result, human);
    if args.dry_run && changes > 0 {
        report = report.with_next([format!(
            "joelclaw-node apply --inventory {}",
            args.inventory.display()
        )]);
    }
    Ok(report)
}
