//! `audit`: the Central host policy ([`crate::audit`]) checked on the installed definitions and
//! state folders under a root; the inventory, when given, says what is critical.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use central_core::inventory::ServiceClass;
use clap::Args;

use crate::audit::{audit, AuditScope};
use crate::output::{table, Failure, Report};
use crate::setup::load;

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

/// Fills the audit scope from an inventory: critical labels, state folder, service user.
fn scope_from_inventory(path: &Path, scope: &mut AuditScope) -> Result<(), Failure> {
    let inventory = load("audit", path)?;
    let critical: BTreeSet<String> = inventory
        .services
        .iter()
        .filter(|s| s.class != ServiceClass::AppLevel)
        .map(|s| s.label.to_string())
        .collect();
    scope.critical = Some(critical);
    if let Some(dir) = &inventory.settings.state_dir {
        scope.state_dirs.push(dir.clone());
    }
    scope.service_user = inventory
        .managers
        .values()
        .find_map(|m| m.service_account.clone());
    Ok(())
}

/// Runs every rule; exit 1 when any fails.
pub fn exec(args: AuditArgs) -> Result<Report, Failure> {
    let mut scope = AuditScope {
        root: args.root.clone(),
        ..AuditScope::default()
    };
    if let Some(inv) = &args.inventory {
        scope_from_inventory(inv, &mut scope)?;
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
