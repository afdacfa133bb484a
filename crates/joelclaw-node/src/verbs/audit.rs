//! `audit`: the Central host policy ([`crate::audit`]) checked on the installed definitions,
//! accounts and folders under a root; the inventory, when given, says what is this system's,
//! what is critical, and who the service account is.

use std::path::PathBuf;

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
    /// The inventory: which services are this system's and critical, the state folder, the
    /// service account.
    #[arg(long, short = 'i', value_name = "FILE")]
    pub inventory: Option<PathBuf>,
}

/// Runs every rule; exit 1 when any fails.
pub fn exec(args: AuditArgs) -> Result<Report, Failure> {
    if !args.root.is_dir() {
        return Err(Failure::input(
            "audit",
            format!("--root {}: not a folder", args.root.display()),
        ));
    }
    let scope = match &args.inventory {
        Some(path) => AuditScope::from_inventory(&args.root, &load("audit", path)?),
        None => AuditScope {
            root: args.root.clone(),
            ..AuditScope::default()
        },
    };
    let findings = audit(&scope);
    let failed = findings.iter().filter(|f| !f.passed()).count();
    let rows: Vec<Vec<String>> = findings
        .iter()
        .map(|f| {
            vec![
                if f.passed() { "pass" } else { "FAIL" }.into(),
                f.rule.into(),
                match &f.label {
                    Some(l) => format!("{} ({l})", f.file),
                    None => f.file.clone(),
                },
                f.evidence.clone(),
            ]
        })
        .collect();
    let mut human = table(&["RESULT", "RULE", "FILE", "EVIDENCE"], &rows);
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
