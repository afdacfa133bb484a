//! The rules judged on the host rather than on one definition: installed critical definitions,
//! account homes, the services and state folders, auto-login, the substrate's endpoint.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use super::accounts::{by_name, home_on_root, on_root};
use super::discover::Definition;
use super::rules::desktop_runtime;
use super::scope::EnvFile;
use super::{AuditScope, Finding, Required};

/// Every host rule.
pub(super) fn judge(scope: &AuditScope, read: &[Definition]) -> Vec<Finding> {
    let mut out = Vec::new();
    for required in &scope.required {
        out.push(installed(scope, read, required));
    }
    let accounts = scope
        .service_user
        .iter()
        .chain(&scope.unit_service_user)
        .chain(&scope.relay_accounts)
        .collect::<std::collections::BTreeSet<_>>();
    for name in accounts {
        out.push(home_private(&scope.root, name));
    }
    if let Some(user) = scope.service_user.as_deref() {
        for dir in &scope.services_dirs {
            out.push(services_folder(&scope.root, dir, user));
        }
    }
    // The agent's account, from its installed definition: root unless it names another.
    let agent = read
        .iter()
        .find(|d| AGENT_LABELS.contains(&d.label.as_str()))
        .and_then(|d| d.user.as_deref())
        .unwrap_or("root");
    for dir in &scope.state_dirs {
        out.push(state_dir(
            &scope.root,
            dir,
            scope.service_user.as_deref(),
            agent,
        ));
    }
    for file in &scope.env_files {
        out.push(env_file_private(&scope.root, file));
    }
    out.extend(auto_login(&scope.root));
    if let Some((file, endpoint)) = &scope.substrate_endpoint {
        let shown = file.display().to_string();
        out.push(match desktop_runtime(endpoint) {
            Some(m) => Finding::new("no-desktop-runtime", shown, false).because(format!(
                "the substrate's endpoint {endpoint:?} is a desktop runtime ({m})"
            )),
            None => Finding::new("no-desktop-runtime", shown, true)
                .because(format!("substrate endpoint {endpoint:?}")),
        });
    }
    out
}

fn installed(scope: &AuditScope, read: &[Definition], required: &Required) -> Finding {
    const RULE: &str = "definition-installed";
    let (label, unit) = (required.label.as_str(), required.unit);
    let found: Vec<&Definition> = read
        .iter()
        .filter(|d| d.label == label && d.kind.is_unit() == unit)
        .collect();
    let in_its_domain = |d: &&&Definition| match &required.domain_of {
        None => d.kind.is_system(),
        Some(account) => !d.kind.is_system() && d.domain_of.as_ref() == Some(account),
    };
    let domain = match &required.domain_of {
        None => "the system domain".to_string(),
        Some(account) => format!("{account}'s domain"),
    };
    let mut f = match found.iter().find(in_its_domain) {
        Some(d) => Finding::new(RULE, d.path.display().to_string(), true)
            .because(format!("installed in {domain}")),
        None => {
            let what = match (&required.domain_of, unit) {
                (None, true) => "etc/systemd/system/<label>.service".to_string(),
                (None, false) => "Library/LaunchDaemons/<label>.plist".to_string(),
                (Some(a), true) => format!("<{a}'s home>/.config/systemd/user/<label>.service"),
                (Some(a), false) => format!("<{a}'s home>/Library/LaunchAgents/<label>.plist"),
            };
            let elsewhere: Vec<String> =
                found.iter().map(|d| d.path.display().to_string()).collect();
            let evidence = if elsewhere.is_empty() {
                format!("critical service with no definition installed (want {what})")
            } else {
                format!(
                    "critical service installed only outside {domain}: {}",
                    elsewhere.join(", ")
                )
            };
            Finding::new(RULE, scope.root.display().to_string(), false).because(evidence)
        }
    };
    f.label = Some(label.to_string());
    f
}

fn home_private(root: &Path, name: &str) -> Finding {
    const RULE: &str = "account-home-private";
    let home = match home_on_root(root, name) {
        Ok(h) => h,
        Err(e) => {
            return Finding::new(RULE, root.display().to_string(), false)
                .because(format!("{name}: {e}"))
        }
    };
    let shown = home.display().to_string();
    match std::fs::metadata(&home) {
        Ok(m) if m.permissions().mode() & 0o077 == 0 => {
            Finding::new(RULE, shown, true).because(format!(
                "{name}'s home, mode {:04o}",
                m.permissions().mode() & 0o7777
            ))
        }
        Ok(m) => Finding::new(RULE, shown, false).because(format!(
            "{name}'s home is mode {:04o}; want 0700",
            m.permissions().mode() & 0o7777
        )),
        Err(e) => Finding::new(RULE, shown, false).because(format!("cannot stat: {e}")),
    }
}

/// Whether the folder's owner is `name`, as evidence either way.
fn owned_by(root: &Path, meta: &std::fs::Metadata, name: &str) -> Result<(), String> {
    match by_name(root, name) {
        Some(a) if a.uid == meta.uid() => Ok(()),
        Some(a) => Err(format!(
            "owned by uid {}, not {name} (uid {})",
            meta.uid(),
            a.uid
        )),
        None => Err(format!("service user {name:?} does not exist here")),
    }
}

fn services_folder(root: &Path, dir: &Path, user: &str) -> Finding {
    const RULE: &str = "services-folder-owner";
    let on_disk = on_root(root, dir);
    let shown = on_disk.display().to_string();
    match std::fs::metadata(&on_disk) {
        Ok(m) if m.is_dir() => match owned_by(root, &m, user) {
            Ok(()) => Finding::new(RULE, shown, true).because(format!("owned by {user}")),
            Err(e) => Finding::new(RULE, shown, false).because(e),
        },
        Ok(_) => Finding::new(RULE, shown, false).because("not a folder"),
        Err(e) => Finding::new(RULE, shown, false).because(format!("missing: {e}")),
    }
}

/// The node agent's own labels (systemd unit, LaunchDaemon), as `install-self` writes them.
const AGENT_LABELS: [&str; 2] = ["joelclaw-node", "com.joelclaw.node-agent"];

/// The state folder: private (0700, or 0710 so the service group reaches the API socket), and
/// owned by the agent's account or the service account.
fn state_dir(root: &Path, dir: &Path, user: Option<&str>, agent: &str) -> Finding {
    const RULE: &str = "state-dir-private";
    let on_disk = on_root(root, dir);
    let shown = on_disk.display().to_string();
    let fail = |e: String| Finding::new(RULE, shown.clone(), false).because(e);
    let meta = match std::fs::metadata(&on_disk) {
        Ok(m) if m.is_dir() => m,
        Ok(_) => return fail("not a folder".into()),
        Err(e) => return fail(format!("missing: {e}")),
    };
    let mode = meta.permissions().mode() & 0o7777;
    // 0710: the service group may reach the running agent's API socket inside, nothing more.
    if mode != 0o700 && mode != 0o710 {
        return fail(format!(
            "mode {mode:04o}; want 0700 (or 0710 for the API socket's group)"
        ));
    }
    if let Some(name) = user {
        let agents = owned_by(root, &meta, agent).is_ok() || (agent == "root" && meta.uid() == 0);
        if !agents {
            if let Err(e) = owned_by(root, &meta, name) {
                return fail(format!("{e}, nor by the agent's account {agent}"));
            }
        }
    }
    Finding::new(RULE, shown, true).because(format!("mode {mode:04o}"))
}

/// A service's env file holds its secrets: not readable by others, not writable by its group
/// or others, owned by root or the service's account. A missing one fails the start unless it
/// is optional (then there is nothing to judge).
fn env_file_private(root: &Path, file: &EnvFile) -> Finding {
    const RULE: &str = "env-file-private";
    let on_disk = on_root(root, &file.path);
    let shown = on_disk.display().to_string();
    let finding = |pass: bool, why: String| {
        let mut f = Finding::new(RULE, shown.clone(), pass).because(why);
        f.label = Some(file.label.clone());
        f
    };
    let meta = match std::fs::metadata(&on_disk) {
        Ok(m) if m.is_file() => m,
        Ok(_) => return finding(false, "not a file".into()),
        Err(e) if file.optional && e.kind() == std::io::ErrorKind::NotFound => {
            return finding(true, "absent, and optional ('-' path)".into())
        }
        Err(e) => return finding(false, format!("missing: {e} (the service cannot start)")),
    };
    let mode = meta.permissions().mode() & 0o7777;
    let mut problems = Vec::new();
    if mode & 0o004 != 0 {
        problems.push(format!("mode {mode:04o}: readable by others"));
    }
    if mode & 0o022 != 0 {
        problems.push(format!("mode {mode:04o}: writable by its group or others"));
    }
    if meta.uid() != 0 {
        match file.account.as_deref() {
            Some(name) => {
                if let Err(e) = owned_by(root, &meta, name) {
                    problems.push(format!("{e}, nor by root"));
                }
            }
            None => problems.push(format!(
                "owned by uid {}, not root, and the service names no account",
                meta.uid()
            )),
        }
    }
    if problems.is_empty() {
        finding(true, format!("mode {mode:04o}, uid {}", meta.uid()))
    } else {
        finding(false, problems.join("; "))
    }
}

/// Auto-login, where the host's files show it: macOS's login window preferences and saved
/// password, GDM and LightDM settings. A file that is absent says nothing.
fn auto_login(root: &Path) -> Vec<Finding> {
    const RULE: &str = "no-auto-login";
    let mut out = Vec::new();
    let loginwindow = root.join("Library/Preferences/com.apple.loginwindow.plist");
    if loginwindow.exists() {
        let shown = loginwindow.display().to_string();
        out.push(match plist::Value::from_file(&loginwindow) {
            Ok(v) => match v
                .as_dictionary()
                .and_then(|d| d.get("autoLoginUser"))
                .and_then(plist::Value::as_string)
            {
                Some(user) => Finding::new(RULE, shown, false)
                    .because(format!("autoLoginUser={user}: the host depends on a login")),
                None => Finding::new(RULE, shown, true).because("no autoLoginUser"),
            },
            Err(e) => Finding::new(RULE, shown, false).because(format!("unreadable: {e}")),
        });
    }
    let kcpassword = root.join("etc/kcpassword");
    if kcpassword.exists() {
        out.push(
            Finding::new(RULE, kcpassword.display().to_string(), false)
                .because("a saved auto-login password exists"),
        );
    }
    let linux = [
        ("etc/gdm3/custom.conf", "automaticloginenable"),
        ("etc/gdm/custom.conf", "automaticloginenable"),
        ("etc/lightdm/lightdm.conf", "autologin-user"),
    ];
    for (rel, key) in linux {
        let path = root.join(rel);
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let on = text.lines().map(str::trim).find(|l| {
            l.split_once('=').is_some_and(|(k, v)| {
                let v = v.trim().to_lowercase();
                k.trim().to_lowercase() == key && !v.is_empty() && v != "false" && v != "0"
            })
        });
        out.push(match on {
            Some(line) => Finding::new(RULE, path.display().to_string(), false)
                .because(format!("{line}: the host depends on a login")),
            None => Finding::new(RULE, path.display().to_string(), true).because("no auto-login"),
        });
    }
    out
}
