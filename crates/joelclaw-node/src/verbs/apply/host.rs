//! What `apply` does on the host besides writing definitions: the folders a service needs
//! before it can start, the paths under a person's home a definition names, and the
//! definitions still installed for services that left the inventory.

use std::collections::BTreeSet;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use process_manager::ServiceConfig;
use serde::Serialize;

/// How long one command through a manager's `command_prefix` may take.
const PREFIX_DEADLINE: Duration = Duration::from_secs(20);

/// The agent's own definitions (`install-self`), never reported as having left the inventory.
pub(super) const SELF_LABELS: [&str; 2] = ["joelclaw-node", "com.joelclaw.node-agent"];

/// The first line of every unit the systemd adapter writes.
const UNIT_MARKER: &str = "# Written by joelclaw";

/// The account a service's folders belong to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(super) struct Owner {
    pub user: String,
    /// `None`: the user's primary group.
    pub group: Option<String>,
}

/// A folder a service needs, with the mode it is made with when missing.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Folder {
    pub path: PathBuf,
    pub mode: u32,
    pub owner: Option<Owner>,
    /// The service that needs it.
    pub label: String,
}

/// The account a system service's folders belong to: its own `user`, else the manager's
/// service account.
pub(super) fn owner_of(
    config: &ServiceConfig,
    account: Option<&str>,
    group: Option<&str>,
) -> Option<Owner> {
    match (&config.user, account) {
        (Some(user), _) => Some(Owner {
            user: user.clone(),
            group: config.group.clone(),
        }),
        (None, Some(user)) => Some(Owner {
            user: user.into(),
            group: config.group.clone().or(group.map(String::from)),
        }),
        (None, None) => None,
    }
}

/// The folders `config` needs to exist when it starts: its log files' folders (0750, readable
/// by the group that reads logs), its working folder and `write_paths` (0700, its own state).
/// The supervisor makes none of them, and systemd refuses to start a sandboxed unit whose
/// `ReadWritePaths=` is missing.
pub(super) fn folders(config: &ServiceConfig, owner: Option<&Owner>) -> Vec<Folder> {
    let mut out: Vec<Folder> = Vec::new();
    let logs = [&config.stdout_path, &config.stderr_path]
        .into_iter()
        .flatten()
        .filter_map(|p| p.parent().map(Path::to_path_buf));
    let own = config
        .working_dir
        .iter()
        .chain(&config.write_paths)
        .cloned();
    for (path, mode) in logs.map(|p| (p, 0o750)).chain(own.map(|p| (p, 0o700))) {
        if path.as_os_str().is_empty() || out.iter().any(|f| f.path == path) {
            continue;
        }
        out.push(Folder {
            path,
            mode,
            owner: owner.cloned(),
            label: config.label.to_string(),
        });
    }
    out
}

/// Where folders are made: natively (optionally under a scratch root, without changing owners)
/// or through a manager's `command_prefix` (another machine or container, as root there).
pub(super) enum Host<'a> {
    Native { root: Option<&'a Path> },
    Prefixed { prefix: &'a [String] },
}

fn prefixed(prefix: &[String], argv: &[&str]) -> Result<sysutil::command::Output, String> {
    let (program, rest) = prefix.split_first().expect("a non-empty prefix");
    let path = sysutil::program::find(program.as_ref(), None)
        .map_err(|e| format!("command_prefix: {e}"))?;
    sysutil::command::Command::new(path, PREFIX_DEADLINE)
        .args(rest)
        .args(argv)
        .run_blocking()
        .map_err(|e| format!("{}: {e}", prefix.join(" ")))
}

impl Host<'_> {
    /// `path` as seen by this process.
    fn local(&self, path: &Path) -> PathBuf {
        match self {
            Host::Native { root } => crate::compose::reroot(*root, path),
            Host::Prefixed { .. } => path.to_path_buf(),
        }
    }

    /// Which of `folders` do not exist yet.
    pub(super) fn missing(&self, folders: &[Folder]) -> Result<Vec<Folder>, String> {
        match self {
            Host::Native { .. } => Ok(folders
                .iter()
                .filter(|f| !self.local(&f.path).is_dir())
                .cloned()
                .collect()),
            Host::Prefixed { prefix } => {
                if folders.is_empty() {
                    return Ok(Vec::new());
                }
                let mut argv = vec![
                    "sh",
                    "-c",
                    r#"for d; do [ -d "$d" ] || printf '%s\n' "$d"; done"#,
                    "sh",
                ];
                let paths: Vec<String> = folders
                    .iter()
                    .map(|f| f.path.display().to_string())
                    .collect();
                argv.extend(paths.iter().map(String::as_str));
                let out = prefixed(prefix, &argv)?;
                if !out.success() {
                    return Err(format!("checking folders: {}", out.stderr.trim()));
                }
                let missing: BTreeSet<&str> = out.stdout.lines().collect();
                Ok(folders
                    .iter()
                    .filter(|f| missing.contains(f.path.display().to_string().as_str()))
                    .cloned()
                    .collect())
            }
        }
    }

    /// Whether `user` exists where the folders are made (always yes under a scratch root,
    /// where owners are not set).
    pub(super) fn has_account(&self, user: &str) -> Result<bool, String> {
        match self {
            Host::Native { root: Some(_) } => Ok(true),
            Host::Native { root: None } => Ok(nix::unistd::User::from_name(user)
                .map_err(|e| format!("looking up account {user}: {e}"))?
                .is_some()),
            Host::Prefixed { prefix } => Ok(prefixed(prefix, &["id", "-u", user])?.success()),
        }
    }

    /// Makes `folder` (and missing parents) with its mode and, outside a scratch root, its owner.
    pub(super) fn create(&self, folder: &Folder) -> Result<(), String> {
        let mode = format!("{:o}", folder.mode);
        match self {
            Host::Native { root } => {
                let dir = self.local(&folder.path);
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(folder.mode)
                    .create(&dir)
                    .map_err(|e| format!("create {}: {e}", dir.display()))?;
                std::fs::set_permissions(
                    &dir,
                    std::os::unix::fs::PermissionsExt::from_mode(folder.mode),
                )
                .map_err(|e| format!("chmod {}: {e}", dir.display()))?;
                if let (None, Some(owner)) = (root, &folder.owner) {
                    let user = nix::unistd::User::from_name(&owner.user)
                        .ok()
                        .flatten()
                        .ok_or_else(|| format!("no account {}", owner.user))?;
                    let gid = match &owner.group {
                        Some(g) => {
                            nix::unistd::Group::from_name(g)
                                .ok()
                                .flatten()
                                .ok_or_else(|| format!("no group {g}"))?
                                .gid
                        }
                        None => user.gid,
                    };
                    nix::unistd::chown(&dir, Some(user.uid), Some(gid))
                        .map_err(|e| format!("chown {}: {e}", dir.display()))?;
                }
                Ok(())
            }
            Host::Prefixed { prefix } => {
                let path = folder.path.display().to_string();
                let (user, group) = folder
                    .owner
                    .as_ref()
                    .map(|o| (o.user.as_str(), o.group.as_deref().unwrap_or("")))
                    .unwrap_or(("", ""));
                let script = r#"set -e; u=$1; g=$2; m=$3; d=$4
[ -d "$d" ] && exit 0
if [ -z "$u" ]; then exec install -d -m "$m" "$d"; fi
[ -n "$g" ] || g=$(id -gn "$u")
install -d -m "$m" -o "$u" -g "$g" "$d""#;
                let out = prefixed(
                    prefix,
                    &["sh", "-c", script, "sh", user, group, &mode, &path],
                )?;
                if out.success() {
                    Ok(())
                } else {
                    Err(format!("create {path}: {}", out.stderr.trim()))
                }
            }
        }
    }
}

/// The home folder names (`/Users/<name>`, `/home/<name>`) that belong to the service account
/// itself: its name, and where the account database puts its home.
pub(super) fn own_homes(account: Option<&str>) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    if let Some(account) = account {
        names.insert(account.to_string());
        if let Ok(Some(user)) = nix::unistd::User::from_name(account) {
            if let Some(name) = home_names(&user.dir.display().to_string())
                .into_iter()
                .next()
            {
                names.insert(name);
            }
        }
    }
    names
}

/// The person names of every `/Users/<name>` or `/home/<name>` path in `text`, wherever it
/// stands (a whole argument, inside a `bash -c` string, in a `PATH` list).
fn home_names(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for base in ["/Users/", "/home/"] {
        for (at, _) in text.match_indices(base) {
            let before = text[..at].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || "/._-~".contains(c)) {
                continue;
            }
            let name: String = text[at + base.len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || "._-".contains(*c))
                .collect();
            if !name.is_empty() && name != "Shared" {
                out.push(name);
            }
        }
    }
    out
}

/// Every place in `config` that names a path under a person's home (any home but the service
/// account's own), as `what: value` lines.
pub(super) fn person_home_paths(config: &ServiceConfig, own: &BTreeSet<String>) -> Vec<String> {
    let path = |p: &PathBuf| p.display().to_string();
    let mut fields: Vec<(String, String)> = vec![("program".into(), path(&config.program))];
    fields.extend(config.args.iter().map(|a| ("args".into(), a.clone())));
    fields.extend(
        config
            .env
            .iter()
            .map(|(k, v)| (format!("env.{k}"), v.clone())),
    );
    let paths = [
        ("working_dir", config.working_dir.as_ref()),
        ("stdout_path", config.stdout_path.as_ref()),
        ("stderr_path", config.stderr_path.as_ref()),
    ];
    fields.extend(
        paths
            .iter()
            .filter_map(|(k, p)| p.map(|p| (k.to_string(), path(p)))),
    );
    fields.extend(
        config
            .write_paths
            .iter()
            .map(|p| ("write_paths".into(), path(p))),
    );
    fields.extend(
        config
            .triggers
            .watch_paths
            .iter()
            .map(|p| ("triggers.watch_paths".into(), path(p))),
    );
    fields
        .into_iter()
        .filter(|(_, v)| home_names(v).iter().any(|n| !own.contains(n)))
        .map(|(k, v)| format!("{k}: {v}"))
        .collect()
}

/// A definition installed in a folder `apply` writes to, for a service the inventory no
/// longer names.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Orphan {
    pub label: String,
    pub manager: &'static str,
    /// The definition and (systemd) its `.timer`/`.path` beside it.
    pub files: Vec<PathBuf>,
    pub outcome: Option<String>,
}

fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    paths.sort();
    paths
}

/// Units in `dir` the systemd adapter wrote (they open with its marker) whose label `named`
/// does not hold. Units written by hand or by packages are not this inventory's to judge.
pub(super) fn systemd_orphans(dir: &Path, named: &BTreeSet<String>) -> Vec<Orphan> {
    let mut out = Vec::new();
    for path in sorted_entries(dir) {
        let Some(label) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".service"))
        else {
            continue;
        };
        if named.contains(label) || SELF_LABELS.contains(&label) || !path.is_file() {
            continue;
        }
        let ours = std::fs::read_to_string(&path).is_ok_and(|text| {
            text.lines()
                .next()
                .is_some_and(|l| l.starts_with(UNIT_MARKER))
        });
        if !ours {
            continue;
        }
        let mut files = vec![path.clone()];
        for ext in ["timer", "path"] {
            let companion = dir.join(format!("{label}.{ext}"));
            if companion.is_file() {
                files.push(companion);
            }
        }
        out.push(Orphan {
            label: label.to_string(),
            manager: "systemd",
            files,
            outcome: None,
        });
    }
    out
}

/// The label prefixes of an inventory's launchd services: each label up to its last dot, when
/// that keeps at least two parts (`com.joelclaw.`), so one prefix never claims a whole vendor.
pub(super) fn label_prefixes<'a>(labels: impl Iterator<Item = &'a str>) -> BTreeSet<String> {
    labels
        .filter_map(|l| l.rfind('.').map(|i| &l[..=i]))
        .filter(|p| p.matches('.').count() >= 2)
        .map(String::from)
        .collect()
}

/// Plists in `dir` under one of `prefixes` whose label `named` does not hold.
pub(super) fn launchd_orphans(
    dir: &Path,
    prefixes: &BTreeSet<String>,
    named: &BTreeSet<String>,
) -> Vec<Orphan> {
    let mut out = Vec::new();
    for path in sorted_entries(dir) {
        let Some(label) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".plist"))
        else {
            continue;
        };
        if !prefixes.iter().any(|p| label.starts_with(p.as_str()))
            || named.contains(label)
            || SELF_LABELS.contains(&label)
        {
            continue;
        }
        out.push(Orphan {
            label: label.to_string(),
            manager: "launchd",
            files: vec![path.clone()],
            outcome: None,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use process_manager::ServiceLabel;

    #[test]
    fn person_homes_are_found_inside_strings_but_not_the_service_accounts_own() {
        let mut c = ServiceConfig::new(ServiceLabel::new("svc").unwrap(), "/opt/bin/svc")
            .with_args(["-c", "cd /Users/ana/Code && exec ./run"])
            .with_env("PATH", "/usr/bin:/home/ana/.local/bin");
        c.working_dir = Some("/Users/clawd/state".into());
        c.triggers.watch_paths = vec!["/Users/ana/inbox".into()];
        c.write_paths = vec!["/srv/home/x".into(), "/Users/Shared/cache".into()];
        let own: BTreeSet<String> = ["clawd".to_string()].into();
        let found = person_home_paths(&c, &own);
        assert_eq!(
            found,
            vec![
                "args: cd /Users/ana/Code && exec ./run",
                "env.PATH: /usr/bin:/home/ana/.local/bin",
                "triggers.watch_paths: /Users/ana/inbox",
            ]
        );
    }

    #[test]
    fn prefixes_keep_two_parts_at_least() {
        let p = label_prefixes(["com.joelclaw.worker", "com.x", "plain"].into_iter());
        assert_eq!(p, ["com.joelclaw.".to_string()].into());
    }
}
