//! `audit`: the Central host policy (ADR-0246's verification list), checked on the installed
//! definitions, accounts and folders under a root folder. Each rule gives one verdict per file
//! (or folder) it judges, with the evidence.
//!
//! Every definition in the system and per-user domains is read (see [`discover`]; symlinks are
//! followed inside the audited root, and accounts come from its own `etc/passwd` first); with an
//! inventory, those that look like a service of this system (an inventory label, the labels'
//! common prefix, or a program under the services' folders or the system's name) are held to
//! the policy, and the rest pass as someone else's. Without one, every definition is.
//!
//! Per definition:
//! - `parseable`: it can be listed, followed and read as a definition (garbage, a symlink loop,
//!   a folder named `x.plist` fail).
//! - `system-daemon`: a service of this system is a system daemon or system unit, not an agent in
//!   the global or a person's login domain (a relay account's own domain is allowed).
//! - `service-account`: a critical service runs as the configured service account (not root, not
//!   a person). Without a configured account, `non-root-user`: it names an account, not root.
//! - `no-developer-home`: no string anywhere in it (arguments, shell strings, environment, watch
//!   paths, working and log folders, a unit's `.timer`/`.path` and drop-ins) names a person's
//!   home (`/Users/<name>`, `/home/<name>` as a whole component; `~/` and `$HOME` when a person
//!   runs it); the service and relay accounts' homes are allowed.
//! - `definition-not-writable`: the file is not group or world writable.
//! - `no-desktop-runtime`: it does not use OrbStack or Docker Desktop.
//! - `no-gui-session`: it does not need a login session (`LimitLoadToSessionType=Aqua`,
//!   `graphical-session.target`).
//! - `colima-state`: a definition that runs Colima keeps its state out of a person's home.
//!
//! For the host (see [`host`]): `definitions-found`, `definition-installed` (each critical
//! service's definition is in the system domain), `account-home-private`,
//! `services-folder-owner`, `state-dir-private`, `env-file-private` (each service's env file is
//! not readable by others nor writable by its group or others, and is owned by root or the
//! service's account), `no-auto-login`, and `no-desktop-runtime` on
//! the inventory's substrate endpoint.

mod accounts;
mod discover;
mod host;
mod rules;
mod scope;

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::Serialize;

pub use scope::{AuditScope, EnvFile, Required, SystemMarks};

/// A rule's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The rule holds.
    Pass,
    /// It does not.
    Fail,
}

/// One rule's verdict on one file or folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The rule.
    pub rule: &'static str,
    /// The file or folder judged.
    pub file: String,
    /// The definition's label, when the file is a definition that was read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Pass or fail.
    pub verdict: Verdict,
    /// What was seen.
    pub evidence: String,
}

impl Finding {
    pub(crate) fn new(rule: &'static str, file: impl Into<String>, pass: bool) -> Self {
        Finding {
            rule,
            file: file.into(),
            label: None,
            verdict: if pass { Verdict::Pass } else { Verdict::Fail },
            evidence: String::new(),
        }
    }
    pub(crate) fn because(mut self, evidence: impl Into<String>) -> Self {
        self.evidence = evidence.into();
        self
    }
    /// Whether the rule held.
    pub fn passed(&self) -> bool {
        self.verdict == Verdict::Pass
    }
}

/// The homes that are not a person's: `Shared`, the service account's and the relay accounts'.
fn system_homes(scope: &AuditScope) -> BTreeSet<String> {
    ["Shared".to_string()]
        .into_iter()
        .chain(scope.service_user.clone())
        .chain(scope.unit_service_user.clone())
        .chain(scope.relay_accounts.iter().cloned())
        .collect()
}

/// Runs every rule. Verdicts come per definition (in discovery order, each in rule order), then
/// the host's.
pub fn audit(scope: &AuditScope) -> Vec<Finding> {
    let extra: Vec<(PathBuf, discover::Kind)> = scope
        .definition_dirs
        .iter()
        .map(|(dir, unit)| {
            let kind = if *unit {
                discover::Kind::SystemUnit
            } else {
                discover::Kind::SystemDaemon
            };
            (accounts::on_root(&scope.root, dir), kind)
        })
        .collect();
    let entries = discover::discover(&scope.root, &extra);
    let homes = system_homes(scope);
    let mut findings = Vec::new();
    if entries.is_empty() {
        findings.push(
            Finding::new("definitions-found", scope.root.display().to_string(), false).because(
                format!(
                    "no service definition found, nothing to check (looked in {})",
                    discover::SEARCHED
                ),
            ),
        );
    }
    let mut read = Vec::new();
    for entry in entries {
        match entry {
            discover::Entry::Read(def) => {
                findings.extend(rules::judge(&def, scope, &homes));
                read.push(def);
            }
            discover::Entry::Masked(path) => findings.push(
                Finding::new("parseable", path.display().to_string(), true)
                    .because("masked (linked to /dev/null)"),
            ),
            discover::Entry::Broken { path, why } => findings
                .push(Finding::new("parseable", path.display().to_string(), false).because(why)),
        }
    }
    findings.extend(host::judge(scope, &read));
    findings
}
