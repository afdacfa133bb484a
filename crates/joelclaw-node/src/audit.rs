//! `audit`: the Central host policy, checked on the installed definitions under a root folder.
//!
//! Rules, each reported per definition (or state folder) as pass or fail:
//! - `system-daemon`: a critical service is a system daemon (`/Library/LaunchDaemons`, a system
//!   unit), not an agent in a person's login domain.
//! - `non-root-user`: it names a service account (`UserName`, `User=`) and that account is not
//!   root.
//! - `no-developer-home`: no program, working directory, log or env path under `/Users/<name>`
//!   or `/home/<name>`.
//! - `definition-not-writable`: the definition file is not group or world writable.
//! - `state-dir-private`: each state folder exists with mode 0700 (owned by the service user when
//!   one is named).
//! - `definitions-found`: at least one definition exists under the root. An audit that found
//!   nothing to check has verified nothing (a Central host has at least the agent's own), so it
//!   fails rather than passing with zero checks.
//!
//! Definitions are read with the adapters' own readers (`plist_read`, `unit_read`), the inverses
//! of what `apply` writes.
//!
//! Without an inventory every definition found is held to the policy; with one, only the
//! `infra-critical` and `service-critical` services are, and `app-level` ones pass as such.

use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use adapters_linux::unit_read::read_unit;
use adapters_macos::launchd::plist_read::read_plist;
use serde::Serialize;

/// What `audit` looks at.
#[derive(Debug, Clone, Default)]
pub struct AuditScope {
    /// The filesystem root the definitions live under (`/`, or a scratch root).
    pub root: PathBuf,
    /// Labels held to the policy; `None` means every definition found.
    pub critical: Option<BTreeSet<String>>,
    /// State folders that must be private.
    pub state_dirs: Vec<PathBuf>,
    /// The service account that must own the state folders, when known.
    pub service_user: Option<String>,
}

/// One rule's verdict on one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The rule.
    pub rule: &'static str,
    /// The file or folder judged.
    pub target: String,
    /// Pass or fail.
    pub pass: bool,
    /// Why.
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    SystemDaemon,
    GlobalAgent,
    UserAgent,
    SystemUnit,
    UserUnit,
}

#[derive(Debug)]
struct Definition {
    path: PathBuf,
    kind: Kind,
    label: String,
    user: Option<String>,
    paths: Vec<String>,
}

fn glob_files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == ext) && p.is_file())
        .collect();
    out.sort();
    out
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    out.sort();
    out
}

fn is_developer_home(path: &str) -> bool {
    ["/Users/", "/home/"].iter().any(|prefix| {
        path.strip_prefix(prefix).is_some_and(|rest| {
            !rest.is_empty() && rest != "Shared" && !rest.starts_with("Shared/")
        })
    })
}

/// Every string in a plist that may name a path: program, argv, working folder, log files, and
/// each `:`-separated part of every environment value.
fn plist_definition(path: &Path, kind: Kind) -> Result<Definition, String> {
    let d = read_plist(path)?;
    let mut paths: Vec<String> = [&d.program, &d.working_dir, &d.stdout_path, &d.stderr_path]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    paths.extend(d.program_arguments.iter().cloned());
    for v in d.env.values() {
        paths.extend(v.split(':').map(str::to_string));
    }
    Ok(Definition {
        path: path.to_path_buf(),
        kind,
        label: d.label,
        user: d.user,
        paths,
    })
}

/// Every absolute path inside a unit's command lines, environment, working folder, log files and
/// writable paths (values are split at blanks, `:`, `=` and quotes, so `--dir=/x` and `A=/x:/y`
/// count).
fn unit_definition(path: &Path, kind: Kind) -> Result<Definition, String> {
    let d = read_unit(path)?;
    let values = d
        .exec_start
        .iter()
        .flatten()
        .cloned()
        .chain(d.env.iter().map(|(k, v)| format!("{k}={v}")))
        .chain(d.working_dir.iter().cloned())
        .chain(d.stdout_path.iter().cloned())
        .chain(d.stderr_path.iter().cloned())
        .chain(d.read_write_paths.iter().cloned());
    let paths = values
        .flat_map(|v| {
            v.split([' ', ':', '=', '"'])
                .filter(|w| w.starts_with('/'))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    Ok(Definition {
        path: path.to_path_buf(),
        kind,
        label: d.label,
        user: d.user,
        paths,
    })
}

fn discover(root: &Path) -> Vec<(PathBuf, Kind)> {
    let mut found = Vec::new();
    let mut add = |dir: PathBuf, ext: &str, kind: Kind| {
        found.extend(glob_files(&dir, ext).into_iter().map(|p| (p, kind)));
    };
    add(
        root.join("Library/LaunchDaemons"),
        "plist",
        Kind::SystemDaemon,
    );
    add(
        root.join("Library/LaunchAgents"),
        "plist",
        Kind::GlobalAgent,
    );
    add(root.join("etc/systemd/system"), "service", Kind::SystemUnit);
    for homes in ["Users", "home"] {
        for home in subdirs(&root.join(homes)) {
            add(home.join("Library/LaunchAgents"), "plist", Kind::UserAgent);
            add(home.join(".config/systemd/user"), "service", Kind::UserUnit);
        }
    }
    found
}

/// Where definitions are looked for, relative to the root (for the `definitions-found` verdict).
const SEARCHED: &str = "Library/LaunchDaemons, Library/LaunchAgents, etc/systemd/system, \
    {Users,home}/*/Library/LaunchAgents, {Users,home}/*/.config/systemd/user";

/// Runs every rule. The verdicts come in a stable order (by file, then rule).
pub fn audit(scope: &AuditScope) -> Vec<Finding> {
    let mut findings = Vec::new();
    let definitions = discover(&scope.root);
    if definitions.is_empty() {
        findings.push(Finding {
            rule: "definitions-found",
            target: scope.root.display().to_string(),
            pass: false,
            detail: format!("no service definition found, nothing to check (looked in {SEARCHED})"),
        });
    }
    for (path, kind) in definitions {
        let shown = path.display().to_string();
        let parsed = match kind {
            Kind::SystemUnit | Kind::UserUnit => unit_definition(&path, kind),
            _ => plist_definition(&path, kind),
        };
        let def = match parsed {
            Ok(d) => d,
            Err(e) => {
                findings.push(Finding {
                    rule: "parseable",
                    target: shown,
                    pass: false,
                    detail: e,
                });
                continue;
            }
        };
        findings.extend(judge(&def, scope));
    }
    for dir in &scope.state_dirs {
        findings.push(state_dir_finding(
            &scope.root,
            dir,
            scope.service_user.as_deref(),
        ));
    }
    findings
}

fn judge(def: &Definition, scope: &AuditScope) -> Vec<Finding> {
    let target = format!("{} ({})", def.path.display(), def.label);
    let finding = |rule, pass, detail: String| Finding {
        rule,
        target: target.clone(),
        pass,
        detail,
    };
    let critical = scope
        .critical
        .as_ref()
        .is_none_or(|set| set.contains(&def.label));
    if !critical {
        return vec![finding(
            "system-daemon",
            true,
            "not critical (app-level); the host policy does not apply".into(),
        )];
    }
    let mut out = Vec::new();
    out.push(match def.kind {
        Kind::SystemDaemon | Kind::SystemUnit => {
            finding("system-daemon", true, "system daemon".into())
        }
        Kind::GlobalAgent => finding(
            "system-daemon",
            false,
            "a LaunchAgent runs only in a logged-in session; install it in /Library/LaunchDaemons"
                .into(),
        ),
        Kind::UserAgent | Kind::UserUnit => finding(
            "system-daemon",
            false,
            "an agent in a person's domain stops when they log out; make it a system daemon".into(),
        ),
    });
    out.push(match def.user.as_deref() {
        None => finding(
            "non-root-user",
            false,
            match def.kind {
                Kind::SystemUnit | Kind::UserUnit => {
                    "no User=: a system unit without it runs as root"
                }
                _ => "no UserName: a LaunchDaemon without it runs as root",
            }
            .into(),
        ),
        Some("root") | Some("0") => finding("non-root-user", false, "runs as root".into()),
        Some(u) => finding("non-root-user", true, format!("runs as {u}")),
    });
    let home_paths: Vec<&String> = def.paths.iter().filter(|p| is_developer_home(p)).collect();
    out.push(if home_paths.is_empty() {
        finding(
            "no-developer-home",
            true,
            "no path under a person's home".into(),
        )
    } else {
        finding(
            "no-developer-home",
            false,
            format!("paths under a person's home: {home_paths:?}"),
        )
    });
    out.push(match std::fs::metadata(&def.path) {
        Ok(m) if m.permissions().mode() & 0o022 != 0 => finding(
            "definition-not-writable",
            false,
            format!(
                "mode {:04o} is group/world writable; want 0644",
                m.permissions().mode() & 0o7777
            ),
        ),
        Ok(m) => finding(
            "definition-not-writable",
            true,
            format!("mode {:04o}", m.permissions().mode() & 0o7777),
        ),
        Err(e) => finding(
            "definition-not-writable",
            false,
            format!("cannot stat: {e}"),
        ),
    });
    out
}

fn state_dir_finding(root: &Path, dir: &Path, user: Option<&str>) -> Finding {
    let on_disk = root.join(dir.strip_prefix("/").unwrap_or(dir));
    let target = on_disk.display().to_string();
    let fail = |detail: String| Finding {
        rule: "state-dir-private",
        target: target.clone(),
        pass: false,
        detail,
    };
    let meta = match std::fs::metadata(&on_disk) {
        Ok(m) if m.is_dir() => m,
        Ok(_) => return fail("not a folder".into()),
        Err(e) => return fail(format!("missing: {e}")),
    };
    let mode = meta.permissions().mode() & 0o7777;
    if mode != 0o700 {
        return fail(format!("mode {mode:04o}; want 0700"));
    }
    if let Some(name) = user {
        match nix::unistd::User::from_name(name).ok().flatten() {
            Some(u) if u.uid.as_raw() == meta.uid() => {}
            Some(u) => {
                return fail(format!(
                    "owned by uid {}, not {name} (uid {})",
                    meta.uid(),
                    u.uid
                ))
            }
            None => return fail(format!("service user {name:?} does not exist here")),
        }
    }
    Finding {
        rule: "state-dir-private",
        target,
        pass: true,
        detail: format!("mode {mode:04o}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn developer_home_detection() {
        assert!(is_developer_home("/Users/alice/bin/worker"));
        assert!(is_developer_home("/home/bob/.bun/bin/bun"));
        assert!(!is_developer_home("/Users/Shared/joelclaw"));
        assert!(!is_developer_home("/opt/homebrew/bin/colima"));
        assert!(!is_developer_home("/Users/"));
    }
}
