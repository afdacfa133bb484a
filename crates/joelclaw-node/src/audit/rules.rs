//! The rules judged on each definition that was read.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;

use super::accounts::{homes_named, mentions_path};
use super::discover::{Definition, Field, Kind};
use super::{AuditScope, Finding};

/// Accounts that are the system's own, not a person's, when a definition names them.
fn is_system_account(name: &str) -> bool {
    name.starts_with('_') || ["root", "0", "daemon", "nobody"].contains(&name)
}

/// Why `def` is a service of this system, or `None` when it is someone else's.
fn ours(def: &Definition, scope: &AuditScope) -> Option<String> {
    let Some(marks) = &scope.ours else {
        return Some("no inventory: every definition is held to the policy".into());
    };
    if marks.labels.contains(&def.label) {
        return Some("its label is in the inventory".into());
    }
    if let Some(prefix) = marks.label_prefix.as_deref() {
        if def.label.starts_with(prefix) {
            return Some(format!("its label starts with {prefix}"));
        }
    }
    if let Some(name) = marks.name.as_deref() {
        if def.label.starts_with(&format!("{name}-")) {
            return Some(format!("its label starts with {name}-"));
        }
    }
    let commands = def.fields.iter().filter(|f| f.is_command());
    for f in commands {
        if let Some(p) = marks.paths.iter().find(|p| mentions_path(&f.text, p)) {
            return Some(format!("{} runs from {p}", f.key));
        }
        if let Some(name) = marks.name.as_deref() {
            if mentions_name(&f.text, name) {
                return Some(format!("{} runs from a {name} folder: {:?}", f.key, f.text));
            }
        }
    }
    if marks.colima && runs_colima(def) {
        return Some("it runs Colima, the inventory's substrate".into());
    }
    None
}

/// Whether `text` has `/<name>` as a whole path component.
fn mentions_name(text: &str, name: &str) -> bool {
    text.match_indices(&format!("/{name}")).any(|(at, m)| {
        text[at + m.len()..]
            .chars()
            .next()
            .is_none_or(|c| !c.is_alphanumeric() && c != '-' && c != '_' && c != '.')
    })
}

fn runs_colima(def: &Definition) -> bool {
    def.label.to_lowercase().contains("colima")
        || def
            .fields
            .iter()
            .filter(|f| f.is_command())
            .any(|f| mentions_name(&f.text, "colima") || f.text.starts_with("colima"))
}

/// The person whose domain a per-user definition is in (`None` for a system or relay domain).
fn persons_domain<'a>(def: &'a Definition, homes: &BTreeSet<String>) -> Option<&'a str> {
    def.domain_of.as_deref().filter(|d| !homes.contains(*d))
}

/// Every rule on one definition.
pub(super) fn judge(
    def: &Definition,
    scope: &AuditScope,
    homes: &BTreeSet<String>,
) -> Vec<Finding> {
    let file = def.path.display().to_string();
    let finding = |rule, pass, evidence: String| {
        let mut f = Finding::new(rule, file.clone(), pass).because(evidence);
        f.label = Some(def.label.clone());
        f
    };
    let mut out = Vec::new();
    let Some(why_ours) = ours(def, scope) else {
        out.push(finding(
            "system-daemon",
            true,
            "not a service of this system (label and program match nothing in the inventory)"
                .into(),
        ));
        out.push(not_writable(def, &finding));
        if runs_colima(def) {
            out.push(colima_state(def, scope, homes, &finding));
        }
        return out;
    };
    out.push(system_daemon(def, homes, &why_ours, &finding));
    let critical = scope
        .critical
        .as_ref()
        .is_none_or(|set| set.contains(&def.label));
    if critical {
        out.push(account(def, scope, &finding));
    }
    out.push(no_developer_home(def, homes, &finding));
    out.push(not_writable(def, &finding));
    out.push(no_desktop_runtime(&def.fields, &finding));
    out.push(no_gui_session(def, &finding));
    if runs_colima(def) {
        out.push(colima_state(def, scope, homes, &finding));
    }
    out
}

type Make<'a> = dyn Fn(&'static str, bool, String) -> Finding + 'a;

fn system_daemon(def: &Definition, homes: &BTreeSet<String>, why: &str, f: &Make) -> Finding {
    const RULE: &str = "system-daemon";
    match def.kind {
        Kind::SystemDaemon | Kind::SystemUnit => f(RULE, true, "system daemon".into()),
        Kind::GlobalAgent => f(
            RULE,
            false,
            format!(
                "a LaunchAgent runs only in a logged-in session; install it in \
                 /Library/LaunchDaemons (a service of this system: {why})"
            ),
        ),
        Kind::UserAgent | Kind::UserUnit => match persons_domain(def, homes) {
            Some(person) => f(
                RULE,
                false,
                format!(
                    "an agent in {person}'s domain stops when they log out; make it a system \
                     daemon (a service of this system: {why})"
                ),
            ),
            None => f(
                RULE,
                true,
                format!(
                    "in {}'s own domain (a relay or service account, not a person)",
                    def.domain_of.as_deref().unwrap_or("?")
                ),
            ),
        },
    }
}

fn account(def: &Definition, scope: &AuditScope, f: &Make) -> Finding {
    let none = if def.kind.is_unit() {
        "no User=: a system unit without it runs as root"
    } else {
        "no UserName: a LaunchDaemon without it runs as root"
    };
    let want = match def.kind.is_unit() {
        true => scope
            .unit_service_user
            .as_ref()
            .or(scope.service_user.as_ref()),
        false => scope.service_user.as_ref(),
    };
    let Some(want) = want.map(String::as_str) else {
        return match def.user.as_deref() {
            None => f("non-root-user", false, none.into()),
            Some("root") | Some("0") => f("non-root-user", false, "runs as root".into()),
            Some(u) => f("non-root-user", true, format!("runs as {u}")),
        };
    };
    const RULE: &str = "service-account";
    match def.user.as_deref() {
        Some(u) if u == want => f(RULE, true, format!("runs as {u}, the service account")),
        None => f(RULE, false, format!("{none}; want {want}")),
        Some(u @ ("root" | "0")) => f(RULE, false, format!("runs as {u}; want {want}")),
        Some(u) => f(
            RULE,
            false,
            format!("runs as {u}, not the service account {want}"),
        ),
    }
}

/// The person a definition runs as: the owner of the per-user domain it is in, else the
/// account it names when that is neither a system, service nor relay account.
fn person_running(def: &Definition, homes: &BTreeSet<String>) -> Option<String> {
    persons_domain(def, homes).map(str::to_string).or_else(|| {
        def.user
            .clone()
            .filter(|u| !is_system_account(u) && !homes.contains(u))
    })
}

/// Whether `text` reaches the running account's home through `~/`, `$HOME` or `${HOME}`.
fn names_own_home(text: &str) -> bool {
    text.contains("$HOME")
        || text.contains("${HOME}")
        || text.starts_with("~/")
        || text.contains(" ~/")
        || text.contains("'~/")
        || text.contains("\"~/")
        || text.contains("=~/")
        || text.contains(":~/")
}

fn no_developer_home(def: &Definition, homes: &BTreeSet<String>, f: &Make) -> Finding {
    const RULE: &str = "no-developer-home";
    let person = person_running(def, homes);
    let hits: Vec<String> = def
        .fields
        .iter()
        .filter(|fl| {
            homes_named(&fl.text).iter().any(|n| !homes.contains(n))
                || (person.is_some() && names_own_home(&fl.text))
        })
        .map(|fl| format!("{}={:?}", fl.key, fl.text))
        .collect();
    if hits.is_empty() {
        f(RULE, true, "no path under a person's home".into())
    } else {
        f(
            RULE,
            false,
            format!("paths under a person's home: {}", hits.join("; ")),
        )
    }
}

fn not_writable(def: &Definition, f: &Make) -> Finding {
    const RULE: &str = "definition-not-writable";
    match std::fs::metadata(&def.file) {
        Ok(m) if m.permissions().mode() & 0o022 != 0 => f(
            RULE,
            false,
            format!(
                "mode {:04o} is group/world writable; want 0644",
                m.permissions().mode() & 0o7777
            ),
        ),
        Ok(m) => f(
            RULE,
            true,
            format!("mode {:04o}", m.permissions().mode() & 0o7777),
        ),
        Err(e) => f(RULE, false, format!("cannot stat: {e}")),
    }
}

/// What gives away OrbStack or Docker Desktop in a path, socket or name (lowercase).
const DESKTOP_MARKS: &[&str] = &[
    "orbstack",
    "docker.app",
    "docker desktop",
    "com.docker.",
    "/.docker/run/docker.sock",
];

/// The desktop runtime `text` names, if any.
pub(super) fn desktop_runtime(text: &str) -> Option<&'static str> {
    let lower = text.to_lowercase();
    DESKTOP_MARKS.iter().copied().find(|m| lower.contains(m))
}

fn no_desktop_runtime(fields: &[Field], f: &Make) -> Finding {
    const RULE: &str = "no-desktop-runtime";
    let hits: Vec<String> = fields
        .iter()
        .filter_map(|fl| {
            desktop_runtime(&fl.text).map(|m| format!("{}={:?} ({m})", fl.key, fl.text))
        })
        .collect();
    if hits.is_empty() {
        f(RULE, true, "no OrbStack or Docker Desktop".into())
    } else {
        f(
            RULE,
            false,
            format!("uses a desktop container runtime: {}", hits.join("; ")),
        )
    }
}

fn no_gui_session(def: &Definition, f: &Make) -> Finding {
    const RULE: &str = "no-gui-session";
    let hits: Vec<String> = def
        .fields
        .iter()
        .filter(|fl| {
            (fl.key.starts_with("LimitLoadToSessionType") && fl.text == "Aqua")
                || fl.text.contains("graphical-session.target")
        })
        .map(|fl| format!("{}={}", fl.key, fl.text))
        .collect();
    if hits.is_empty() {
        f(RULE, true, "needs no login session".into())
    } else {
        f(
            RULE,
            false,
            format!("needs a GUI login session: {}", hits.join("; ")),
        )
    }
}

/// Colima keeps its state in `$COLIMA_HOME`, else `~/.colima` of the account it runs as.
fn colima_state(
    def: &Definition,
    scope: &AuditScope,
    homes: &BTreeSet<String>,
    f: &Make,
) -> Finding {
    const RULE: &str = "colima-state";
    let under_person = |text: &str| homes_named(text).into_iter().find(|n| !homes.contains(n));
    let colima_home = def.fields.iter().find(|fl| fl.key.ends_with("COLIMA_HOME"));
    if let Some(home) = colima_home {
        return match under_person(&home.text) {
            Some(p) => f(
                RULE,
                false,
                format!("COLIMA_HOME={:?} is in {p}'s home", home.text),
            ),
            None => f(RULE, true, format!("COLIMA_HOME={:?}", home.text)),
        };
    }
    if let Some(fl) = def
        .fields
        .iter()
        .find(|fl| fl.text.contains(".colima") && under_person(&fl.text).is_some())
    {
        return f(
            RULE,
            false,
            format!("{}={:?}: Colima state in a person's home", fl.key, fl.text),
        );
    }
    match person_running(def, homes) {
        Some(person) => f(
            RULE,
            false,
            format!("runs as {person} without COLIMA_HOME: its state is ~{person}/.colima"),
        ),
        None => f(
            RULE,
            true,
            format!(
                "state in ~{}/.colima",
                def.user
                    .as_deref()
                    .or(scope.service_user.as_deref())
                    .unwrap_or("root")
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn daemon(user: &str, command: &str) -> Definition {
        Definition {
            path: PathBuf::from("/Library/LaunchDaemons/x.plist"),
            file: PathBuf::from("/Library/LaunchDaemons/x.plist"),
            kind: Kind::SystemDaemon,
            domain_of: None,
            label: "com.joelclaw.x".into(),
            user: Some(user.into()),
            fields: vec![Field {
                key: "ProgramArguments[2]".into(),
                text: command.into(),
            }],
        }
    }

    fn home_verdict(def: &Definition) -> bool {
        let homes: BTreeSet<String> = ["Shared", "joelclaw"].map(String::from).into();
        let make = |rule, pass, evidence: String| Finding::new(rule, "x", pass).because(evidence);
        no_developer_home(def, &homes, &make).passed()
    }

    #[test]
    fn tilde_and_home_are_a_persons_home_only_when_a_person_runs_it() {
        for command in ["cd ~/Code && make", "exec \"$HOME/bin/x\"", "--dir=~/data"] {
            assert!(!home_verdict(&daemon("alice", command)), "{command}");
            assert!(home_verdict(&daemon("joelclaw", command)), "{command}");
        }
        assert!(home_verdict(&daemon("alice", "exec /opt/x/bin/y --n=3")));
        assert!(!home_verdict(&daemon("joelclaw", "cd /home/alice/x")));
    }
}
