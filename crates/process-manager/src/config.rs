//! `ServiceConfig`: the desired definition of a service, independent of the manager that will
//! install it (plist, unit file, embedded child).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::ProcessError;
use crate::hardening::Hardening;
use crate::label::ServiceLabel;
use crate::triggers::Triggers;

/// Where a service runs: the machine-wide domain or one user's.
///
/// launchd: `system`, `gui/<uid>`, `user/<uid>`. systemd: the system manager, or `--user`
/// (`gui` and `user` both map to the user's manager there).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "domain", rename_all = "lowercase")]
pub enum ServiceScope {
    /// Machine-wide: a LaunchDaemon or a system unit. Runs with no one logged in.
    #[default]
    System,
    /// A user's login (GUI) session: a LaunchAgent in `gui/<uid>`.
    Gui {
        /// The user's numeric id.
        uid: u32,
    },
    /// A user's background domain: `user/<uid>` (launchd) or the systemd user manager (`--user`).
    User {
        /// The user's numeric id.
        uid: u32,
    },
}

impl fmt::Display for ServiceScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceScope::System => f.write_str("system"),
            ServiceScope::Gui { uid } => write!(f, "gui/{uid}"),
            ServiceScope::User { uid } => write!(f, "user/{uid}"),
        }
    }
}

/// When the manager itself brings a service back after it exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Never respawn.
    Never,
    /// Respawn after an unclean exit (non-zero status or a signal).
    OnFailure,
    /// Respawn whenever it exits (launchd `KeepAlive = true`, systemd `Restart=always`).
    #[default]
    Always,
}

/// A start-rate limit: at most `burst` starts within `interval`, then the manager gives up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StartLimit {
    /// The window.
    #[serde(with = "crate::serde_duration")]
    pub interval: Duration,
    /// Starts allowed within the window.
    pub burst: u32,
}

/// launchd's `ProcessType`: how the kernel schedules the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ProcessType {
    /// Throttled background work.
    Background,
    /// The default.
    Standard,
    /// Varies with XPC activity.
    Adaptive,
    /// Never throttled.
    Interactive,
}

/// Names of environment variables that look like they hold a secret. Such values must come from a
/// credentials file (launchd: a file read by the program; systemd: `LoadCredential=`), never from
/// a world-readable definition file.
const SECRET_MARKERS: &[&str] = &[
    "SECRET",
    "TOKEN",
    "PASSWORD",
    "PASSWD",
    "API_KEY",
    "APIKEY",
    "PRIVATE_KEY",
    "CREDENTIAL",
    "AUTH",
];

/// Whether an environment variable name looks like it holds a secret.
pub fn looks_like_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    SECRET_MARKERS.iter().any(|m| upper.contains(m))
}

/// The desired definition of a service. Its `Debug` shows secret-named `env` values redacted
/// (see [`crate::redact`]), so a traced config never carries one.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// The service's label (launchd `Label`, systemd unit name without `.service`).
    pub label: ServiceLabel,
    /// Absolute path of the program.
    pub program: PathBuf,
    /// Arguments after the program (not including it).
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment. Set `PATH` explicitly: launchd's default lacks `/opt/homebrew/bin`.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Environment files (absolute), read when the service starts, in systemd's
    /// `EnvironmentFile=` syntax (see [`crate::env_file`]); their values override `env`. A path
    /// written with a leading `-` may be missing (systemd's spelling); without it a missing file
    /// fails the start. Secrets belong here, in a file only the service account can read.
    #[serde(default)]
    pub env_files: Vec<PathBuf>,
    /// Working directory (absolute).
    #[serde(default)]
    pub working_dir: Option<PathBuf>,
    /// The account it runs as. `None` on a system service means the adapter's service account.
    #[serde(default)]
    pub user: Option<String>,
    /// The group it runs as.
    #[serde(default)]
    pub group: Option<String>,
    /// Only with this set may a system service run as root.
    #[serde(default)]
    pub allow_root: bool,
    /// When the manager respawns it.
    #[serde(default)]
    pub restart: RestartPolicy,
    /// The least time between two starts (launchd `ThrottleInterval`, systemd `RestartSec=`).
    #[serde(default, with = "crate::serde_duration::option")]
    pub restart_delay: Option<Duration>,
    /// Where the manager gives up (systemd `StartLimitIntervalSec=`/`StartLimitBurst=`).
    #[serde(default)]
    pub start_limit: Option<StartLimit>,
    /// Start when loaded / at boot.
    #[serde(default = "yes")]
    pub run_at_load: bool,
    /// File for standard output.
    #[serde(default)]
    pub stdout_path: Option<PathBuf>,
    /// File for standard error.
    #[serde(default)]
    pub stderr_path: Option<PathBuf>,
    /// The domain it runs in.
    #[serde(default)]
    pub scope: ServiceScope,
    /// launchd `ProcessType`, where given.
    #[serde(default)]
    pub process_type: Option<ProcessType>,
    /// The manager's sandbox: `true` (the default), `false`, or `{ relax = [KEYS] }` giving back
    /// the named protections (see [`crate::Relax`]).
    #[serde(default)]
    pub hardening: Hardening,
    /// Folders (absolute) it writes besides its working folder and its log files' folders, which
    /// stay writable under the sandbox (systemd `ReadWritePaths=`). Each must exist when the
    /// service starts: systemd refuses to start it otherwise.
    #[serde(default)]
    pub write_paths: Vec<PathBuf>,
    /// Services it starts after, and pulls in when it starts (systemd `After=` and `Wants=`;
    /// launchd has no ordering).
    #[serde(default)]
    pub after: Vec<ServiceLabel>,
    /// What starts it, when it is a job rather than a daemon. A job runs to completion each
    /// time; its `restart` is `never` or `on-failure`.
    #[serde(default)]
    pub triggers: Triggers,
}

fn yes() -> bool {
    true
}

impl fmt::Debug for ServiceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Spelled out so a new field cannot be left out silently.
        let ServiceConfig {
            label,
            program,
            args,
            env,
            env_files,
            working_dir,
            user,
            group,
            allow_root,
            restart,
            restart_delay,
            start_limit,
            run_at_load,
            stdout_path,
            stderr_path,
            scope,
            process_type,
            hardening,
            write_paths,
            after,
            triggers,
        } = self;
        f.debug_struct("ServiceConfig")
            .field("label", label)
            .field("program", program)
            .field("args", &crate::redact::redact_args(args))
            .field("env", &crate::redact::redact_env(env))
            .field("env_files", env_files)
            .field("working_dir", working_dir)
            .field("user", user)
            .field("group", group)
            .field("allow_root", allow_root)
            .field("restart", restart)
            .field("restart_delay", restart_delay)
            .field("start_limit", start_limit)
            .field("run_at_load", run_at_load)
            .field("stdout_path", stdout_path)
            .field("stderr_path", stderr_path)
            .field("scope", scope)
            .field("process_type", process_type)
            .field("hardening", hardening)
            .field("write_paths", write_paths)
            .field("after", after)
            .field("triggers", triggers)
            .finish()
    }
}

impl ServiceConfig {
    /// A config with the defaults a person would expect: restart always, run at load, system
    /// scope, hardening on, no args or env.
    pub fn new(label: ServiceLabel, program: impl Into<PathBuf>) -> Self {
        ServiceConfig {
            label,
            program: program.into(),
            args: Vec::new(),
            env: BTreeMap::new(),
            env_files: Vec::new(),
            working_dir: None,
            user: None,
            group: None,
            allow_root: false,
            restart: RestartPolicy::default(),
            restart_delay: None,
            start_limit: None,
            run_at_load: true,
            stdout_path: None,
            stderr_path: None,
            scope: ServiceScope::System,
            process_type: None,
            hardening: Hardening::on(),
            write_paths: Vec::new(),
            after: Vec::new(),
            triggers: Triggers::default(),
        }
    }

    /// The same config with secret-named `env` values (and `NAME=value` arguments) redacted:
    /// what any output shows of a definition (see [`crate::redact`]).
    pub fn redacted(&self) -> ServiceConfig {
        let mut c = self.clone();
        c.env = crate::redact::redact_env(&c.env);
        c.args = crate::redact::redact_args(&c.args);
        c
    }

    /// Whether it is a job (something triggers it) rather than a daemon.
    pub fn is_job(&self) -> bool {
        !self.triggers.is_empty()
    }

    /// Sets the arguments.
    pub fn with_args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args = args.into_iter().map(Into::into).collect();
        self
    }

    /// Adds one environment variable.
    pub fn with_env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(key.into(), value.into());
        self
    }

    /// Sets the scope.
    pub fn with_scope(mut self, scope: ServiceScope) -> Self {
        self.scope = scope;
        self
    }

    /// Sets the user (and group, when given).
    pub fn with_user(mut self, user: impl Into<String>, group: Option<String>) -> Self {
        self.user = Some(user.into());
        self.group = group;
        self
    }

    /// Checks everything an adapter relies on before it touches a file or spawns a process:
    /// absolute program and paths, argv and env free of NUL, env names well-formed, account
    /// names well-formed. Secret-looking env names are refused here too, since every manager's
    /// definition file is readable by others.
    pub fn validate(&self) -> Result<(), ProcessError> {
        let bad = |what: String| ProcessError::InvalidInput {
            label: Some(self.label.to_string()),
            detail: what,
        };
        check_abs_path("program", &self.program).map_err(bad)?;
        if let Some(dir) = &self.working_dir {
            check_abs_path("working_dir", dir).map_err(bad)?;
        }
        if let Some(p) = &self.stdout_path {
            check_abs_path("stdout_path", p).map_err(bad)?;
        }
        if let Some(p) = &self.stderr_path {
            check_abs_path("stderr_path", p).map_err(bad)?;
        }
        for (i, arg) in self.args.iter().enumerate() {
            if arg.contains('\0') {
                return Err(bad(format!("args[{i}] contains a NUL byte")));
            }
        }
        for (k, v) in &self.env {
            if k.is_empty()
                || k.starts_with(|c: char| c.is_ascii_digit())
                || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return Err(bad(format!(
                    "env name {k:?} is not a valid variable name (letters, digits, '_', not starting with a digit)"
                )));
            }
            if v.contains('\0') {
                return Err(bad(format!("env {k} contains a NUL byte")));
            }
            if looks_like_secret(k) {
                return Err(bad(format!(
                    "env {k} looks like a secret; definition files are readable by other users, so load it from a credentials file (env_files, readable only by the service account, or a file the program reads) instead"
                )));
            }
        }
        for (i, p) in self.env_files.iter().enumerate() {
            let (path, _) = crate::env_file::spec(p);
            check_abs_path(&format!("env_files[{i}]"), path).map_err(bad)?;
        }
        if let Some(user) = &self.user {
            check_account_name("user", user).map_err(bad)?;
        }
        if let Some(group) = &self.group {
            check_account_name("group", group).map_err(bad)?;
        }
        for (i, p) in self.write_paths.iter().enumerate() {
            check_abs_path(&format!("write_paths[{i}]"), p).map_err(bad)?;
        }
        for (i, p) in self.triggers.watch_paths.iter().enumerate() {
            check_abs_path(&format!("triggers.watch_paths[{i}]"), p).map_err(bad)?;
        }
        self.triggers.check().map_err(bad)?;
        if self.is_job() && self.restart == RestartPolicy::Always {
            return Err(bad(
                "a job (it has triggers) runs to completion each time; set restart = \"never\" or \"on-failure\", not \"always\"".into(),
            ));
        }
        if let Some(dep) = self.after.iter().find(|d| **d == self.label) {
            return Err(bad(format!("after names the service itself ({dep})")));
        }
        if let Some(limit) = &self.start_limit {
            if limit.burst == 0 {
                return Err(bad("start_limit.burst must be at least 1".into()));
            }
        }
        if !self.allow_root
            && matches!(self.user.as_deref(), Some("root"))
            && self.scope == ServiceScope::System
        {
            return Err(bad(
                "user = \"root\" needs allow_root = true: critical services run as a non-root service account".into(),
            ));
        }
        Ok(())
    }
}

fn check_abs_path(what: &str, path: &Path) -> Result<(), String> {
    let text = path.to_string_lossy();
    if !path.is_absolute() {
        return Err(format!("{what} {text:?} must be an absolute path"));
    }
    if text.contains(['\0', '\n', '\r']) {
        return Err(format!("{what} {text:?} contains a NUL or newline"));
    }
    Ok(())
}

/// Checks an account (user or group) name the way shadow-utils' default rules do: starts with a
/// lowercase letter or `_`, then lowercase letters, digits, `_`, `-`, at most 32 bytes. This
/// refuses names like `0day` or `0x0`, which some systemd versions parsed as a numeric uid and ran
/// as root.
pub fn check_account_name(what: &str, name: &str) -> Result<(), String> {
    let ok_first = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let ok_rest = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if name.is_empty() || name.len() > 32 || !ok_first || !ok_rest {
        return Err(format!(
            "{what} {name:?} is not a valid account name: start with a lowercase letter or '_', then lowercase letters, digits, '_' or '-', at most 32 characters (names like \"0day\" can be read as a numeric uid)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> ServiceConfig {
        ServiceConfig::new(ServiceLabel::new("svc").unwrap(), "/usr/bin/true")
    }

    #[test]
    fn valid_default_config() {
        cfg().validate().unwrap();
    }

    #[test]
    fn refuses_relative_program() {
        let mut c = cfg();
        c.program = "bin/worker".into();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("program") && e.contains("absolute"), "{e}");
        assert!(e.contains("svc"), "{e}");
    }

    #[test]
    fn refuses_numeric_looking_accounts() {
        for name in ["0day", "0x0", "1000", "Root", "a b", ""] {
            let c = cfg().with_user(name, None);
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains("not a valid account name"), "{name}: {e}");
        }
        cfg()
            .with_user("joelclaw", Some("staff".into()))
            .validate()
            .unwrap();
        cfg().with_user("_joelclaw", None).validate().unwrap();
    }

    #[test]
    fn refuses_root_unless_asked() {
        let c = cfg().with_user("root", None);
        assert!(c.validate().unwrap_err().to_string().contains("allow_root"));
        let mut c = c;
        c.allow_root = true;
        c.validate().unwrap();
    }

    #[test]
    fn refuses_secrets_in_env() {
        let e = cfg()
            .with_env("OPENAI_API_KEY", "sk-...")
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("OPENAI_API_KEY") && e.contains("credentials file"),
            "{e}"
        );
        cfg().with_env("PATH", "/usr/bin").validate().unwrap();
    }

    #[test]
    fn refuses_bad_env_names_and_nul() {
        assert!(cfg().with_env("A=B", "x").validate().is_err());
        assert!(cfg().with_env("1A", "x").validate().is_err());
        assert!(cfg().with_env("A", "x\0y").validate().is_err());
        assert!(cfg().with_args(["a\0b"]).validate().is_err());
    }

    #[test]
    fn jobs_run_to_completion_and_name_valid_triggers() {
        use crate::triggers::CalendarInterval;
        let mut c = cfg();
        c.triggers.interval = Some(Duration::from_secs(60));
        assert!(c.is_job());
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("restart") && e.contains("never"), "{e}");
        c.restart = RestartPolicy::Never;
        c.validate().unwrap();
        c.restart = RestartPolicy::OnFailure;
        c.validate().unwrap();
        c.triggers.watch_paths = vec!["relative/inbox".into()];
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("watch_paths[0]"), "{e}");
        c.triggers.watch_paths.clear();
        c.triggers.calendar = vec![CalendarInterval {
            hour: Some(24),
            ..CalendarInterval::default()
        }];
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("calendar[0]") && e.contains("hour"), "{e}");
    }

    #[test]
    fn write_paths_are_absolute_and_after_is_not_itself() {
        let mut c = cfg();
        c.write_paths = vec!["/var/lib/svc".into(), "state".into()];
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("write_paths[1]"), "{e}");
        let mut c = cfg();
        c.after = vec![ServiceLabel::new("redis").unwrap()];
        c.validate().unwrap();
        c.after.push(c.label.clone());
        assert!(c.validate().unwrap_err().to_string().contains("itself"));
    }

    #[test]
    fn hardening_reads_as_a_switch_or_with_relax_keys() {
        use crate::hardening::{Hardening, Relax};
        let c: ServiceConfig =
            serde_json::from_str(r#"{ "label": "svc", "program": "/bin/x", "hardening": false }"#)
                .unwrap();
        assert_eq!(c.hardening, Hardening::off());
        let c: ServiceConfig = serde_json::from_str(
            r#"{ "label": "svc", "program": "/bin/x", "hardening": { "relax": ["proc"] } }"#,
        )
        .unwrap();
        assert_eq!(c.hardening, Hardening::relaxed([Relax::Proc]));
        let c: ServiceConfig =
            serde_json::from_str(r#"{ "label": "svc", "program": "/bin/x" }"#).unwrap();
        assert_eq!(c.hardening, Hardening::on());
        assert!(c.triggers.is_empty() && c.after.is_empty() && c.write_paths.is_empty());
    }

    #[test]
    fn scope_display() {
        assert_eq!(ServiceScope::System.to_string(), "system");
        assert_eq!(ServiceScope::Gui { uid: 501 }.to_string(), "gui/501");
        assert_eq!(ServiceScope::User { uid: 501 }.to_string(), "user/501");
    }
}
