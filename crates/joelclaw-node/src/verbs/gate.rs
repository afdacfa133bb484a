//! `gate`: forbidden patterns in a repository (exit 1 on hits). The scanner lives elsewhere;
//! this file only turns flags into rules and hits into a report.

use std::path::PathBuf;

use ::gate::{default_repo_rules, scan, Rule};
use clap::Args;

use crate::output::{Failure, NextAction, Report};

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

/// Scans the repository with the default rules (or `--forbid`), each widened by `--allow`.
pub fn exec(args: GateArgs) -> Result<Report, Failure> {
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
    // The same scan again, to run once the calls are moved behind the allowed package.
    let mut again = vec![
        "gate".to_string(),
        "--repo".into(),
        args.repo.display().to_string(),
    ];
    for f in &args.forbid {
        again.extend(["--forbid".to_string(), f.clone()]);
    }
    for a in &args.allow {
        again.extend(["--allow".to_string(), a.clone()]);
    }
    Ok(Report::findings(
        "gate",
        serde_json::json!({ "repo": args.repo, "violations": report.violations, "totals": totals }),
        format!("{report}fix: move each call behind the allowed package, or add --allow GLOB\n"),
    )
    .with_next([NextAction::node(
        again,
        "scan again once each call is behind the allowed package",
    )]))
}
