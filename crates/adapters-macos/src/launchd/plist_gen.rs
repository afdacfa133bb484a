//! Turning a `ServiceConfig` into a launchd property list, and putting it on disk atomically.

use std::path::Path;

use plist::{Dictionary, Value};
use process_manager::{ProcessType, RestartPolicy, ServiceConfig, ServiceScope};
use sysutil::fs::{AtomicWrite, WriteOutcome};

/// The account system daemons run as unless their config names one (or asks for root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccount {
    /// `UserName`.
    pub user: String,
    /// `GroupName`, when given.
    pub group: Option<String>,
}

/// `LimitLoadToSessionType` for agents that belong in the user's background domain
/// (`user/<uid>`) rather than the GUI session: it is also how an unloaded agent's plist says
/// which domain it belongs to.
pub(crate) const BACKGROUND_SESSION: &str = "Background";

/// Builds the plist for `config`. `account` fills in `UserName`/`GroupName` for a system daemon
/// whose config names no user; a daemon is never left to run as root unless `allow_root`.
/// `default_path` becomes `PATH` when the config sets none: launchd's own default lacks
/// `/opt/homebrew/bin`, and a job that cannot find its tools fails quietly for days.
pub(crate) fn build_plist(
    config: &ServiceConfig,
    account: Option<&ServiceAccount>,
    default_path: Option<&str>,
) -> Result<Value, String> {
    let mut d = Dictionary::new();
    d.insert("Label".into(), Value::String(config.label.to_string()));
    let mut argv = vec![Value::String(config.program.to_string_lossy().into_owned())];
    argv.extend(config.args.iter().cloned().map(Value::String));
    d.insert("ProgramArguments".into(), Value::Array(argv));
    d.insert("RunAtLoad".into(), Value::Boolean(config.run_at_load));
    match config.restart {
        RestartPolicy::Always => {
            d.insert("KeepAlive".into(), Value::Boolean(true));
        }
        RestartPolicy::OnFailure => {
            // Respawn only after an unclean exit.
            let mut keep = Dictionary::new();
            keep.insert("SuccessfulExit".into(), Value::Boolean(false));
            d.insert("KeepAlive".into(), Value::Dictionary(keep));
        }
        RestartPolicy::Never => {
            d.insert("KeepAlive".into(), Value::Boolean(false));
        }
    }
    if let Some(delay) = config.restart_delay {
        // launchd counts whole seconds; round up so a delay is never shortened to nothing.
        let secs = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
        d.insert("ThrottleInterval".into(), Value::Integer(secs.into()));
    }
    let (user, group) = match (&config.user, config.scope) {
        (Some(u), _) => (Some(u.clone()), config.group.clone()),
        (None, ServiceScope::System) if config.allow_root => (None, config.group.clone()),
        (None, ServiceScope::System) => match account {
            Some(a) => (
                Some(a.user.clone()),
                config.group.clone().or_else(|| a.group.clone()),
            ),
            None => {
                return Err(format!(
                    "{} is a system daemon with no user, no service account is configured, and allow_root is false: configure the service account (UserName) or set user",
                    config.label
                ))
            }
        },
        // Agents run as the user whose domain they are in.
        (None, _) => (None, config.group.clone()),
    };
    if let Some(u) = user {
        d.insert("UserName".into(), Value::String(u));
    }
    if let Some(g) = group {
        d.insert("GroupName".into(), Value::String(g));
    }
    if let Some(dir) = &config.working_dir {
        d.insert(
            "WorkingDirectory".into(),
            Value::String(dir.to_string_lossy().into_owned()),
        );
    }
    let mut env: Dictionary = config
        .env
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    if let (false, Some(path)) = (config.env.contains_key("PATH"), default_path) {
        env.insert("PATH".into(), Value::String(path.into()));
    }
    if !env.is_empty() {
        d.insert("EnvironmentVariables".into(), Value::Dictionary(env));
    }
    if let Some(p) = &config.stdout_path {
        d.insert(
            "StandardOutPath".into(),
            Value::String(p.to_string_lossy().into_owned()),
        );
    }
    if let Some(p) = &config.stderr_path {
        d.insert(
            "StandardErrorPath".into(),
            Value::String(p.to_string_lossy().into_owned()),
        );
    }
    if let Some(pt) = config.process_type {
        let name = match pt {
            ProcessType::Background => "Background",
            ProcessType::Standard => "Standard",
            ProcessType::Adaptive => "Adaptive",
            ProcessType::Interactive => "Interactive",
        };
        d.insert("ProcessType".into(), Value::String(name.into()));
    }
    if matches!(config.scope, ServiceScope::User { .. }) {
        d.insert(
            "LimitLoadToSessionType".into(),
            Value::String(BACKGROUND_SESSION.into()),
        );
    }
    Ok(Value::Dictionary(d))
}

/// The plist as XML bytes.
pub(crate) fn to_xml(value: &Value) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    value
        .to_writer_xml(&mut out)
        .map_err(|e| format!("serializing plist: {e}"))?;
    // A final newline, as every hand-written plist has.
    out.push(b'\n');
    Ok(out)
}

/// Why a plist could not be written.
#[derive(Debug)]
pub(crate) enum WriteError {
    /// The folder or file may not be written by this process.
    Permission(String),
    /// The folder is not safe to install into (writable by others, owned by someone else).
    Unsafe(String),
    /// Anything else.
    Io(String),
}

/// Writes `bytes` to `dir/<file_name>` atomically (sysutil): a temporary file in the same
/// folder, mode 0644, fsync, rename over the old one, fsync of the folder. A reader (launchd)
/// sees the old plist or the new one, never half of one. A file that already has these bytes
/// is left alone ([`WriteOutcome::Unchanged`]).
///
/// The folder must not be writable by group or others, and must belong to root, this process's
/// user, or `folder_owner` (the user whose LaunchAgents folder it is, when root manages it):
/// launchd trusts whatever is in it, so anyone who can write it can run code as the service
/// account (or root).
pub(crate) fn write_atomically(
    dir: &Path,
    file_name: &str,
    bytes: &[u8],
    folder_owner: Option<u32>,
) -> Result<WriteOutcome, WriteError> {
    AtomicWrite::with_mode(0o644)
        .only_if_changed()
        .into_safe_folder(folder_owner)
        .temp_prefix(".joelclaw-")
        .write(&dir.join(file_name), bytes)
        .map_err(|e| match e {
            sysutil::fs::WriteError::UnsafeFolder(msg) => WriteError::Unsafe(msg),
            e if e.io_kind() == std::io::ErrorKind::PermissionDenied => {
                WriteError::Permission(e.to_string())
            }
            e => WriteError::Io(e.to_string()),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use process_manager::ServiceLabel;
    use std::time::Duration;

    fn label(s: &str) -> ServiceLabel {
        ServiceLabel::new(s).unwrap()
    }

    fn account() -> ServiceAccount {
        ServiceAccount {
            user: "_joelclaw".into(),
            group: Some("_joelclaw".into()),
        }
    }

    fn parse_back(bytes: &[u8]) -> Dictionary {
        Value::from_reader_xml(bytes)
            .expect("generated plist parses")
            .into_dictionary()
            .expect("a dictionary")
    }

    #[test]
    fn full_config_round_trips() {
        let mut c = ServiceConfig::new(label("com.joelclaw.worker"), "/opt/joelclaw/bin/worker")
            .with_args(["--port", "3111"])
            .with_env("PATH", "/opt/homebrew/bin:/usr/bin:/bin");
        c.working_dir = Some("/var/lib/joelclaw".into());
        c.stdout_path = Some("/var/log/joelclaw/worker.out".into());
        c.stderr_path = Some("/var/log/joelclaw/worker.err".into());
        c.restart_delay = Some(Duration::from_millis(2500));
        c.process_type = Some(ProcessType::Interactive);
        let bytes = to_xml(&build_plist(&c, Some(&account()), None).unwrap()).unwrap();
        let d = parse_back(&bytes);
        let s = |k: &str| d.get(k).and_then(Value::as_string).map(str::to_string);
        assert_eq!(s("Label").as_deref(), Some("com.joelclaw.worker"));
        let argv: Vec<&str> = d
            .get("ProgramArguments")
            .and_then(Value::as_array)
            .unwrap()
            .iter()
            .map(|v| v.as_string().unwrap())
            .collect();
        assert_eq!(argv, ["/opt/joelclaw/bin/worker", "--port", "3111"]);
        assert_eq!(d.get("RunAtLoad").and_then(Value::as_boolean), Some(true));
        assert_eq!(d.get("KeepAlive").and_then(Value::as_boolean), Some(true));
        assert_eq!(
            d.get("ThrottleInterval")
                .and_then(Value::as_unsigned_integer),
            Some(3)
        );
        assert_eq!(s("UserName").as_deref(), Some("_joelclaw"));
        assert_eq!(s("GroupName").as_deref(), Some("_joelclaw"));
        assert_eq!(s("WorkingDirectory").as_deref(), Some("/var/lib/joelclaw"));
        assert_eq!(
            s("StandardOutPath").as_deref(),
            Some("/var/log/joelclaw/worker.out")
        );
        assert_eq!(
            s("StandardErrorPath").as_deref(),
            Some("/var/log/joelclaw/worker.err")
        );
        assert_eq!(s("ProcessType").as_deref(), Some("Interactive"));
        let env = d
            .get("EnvironmentVariables")
            .and_then(Value::as_dictionary)
            .unwrap();
        assert_eq!(
            env.get("PATH").and_then(Value::as_string),
            Some("/opt/homebrew/bin:/usr/bin:/bin")
        );
        assert!(d.get("LimitLoadToSessionType").is_none());
    }

    #[test]
    fn path_is_always_set() {
        let base = ServiceConfig::new(label("p"), "/bin/sleep");
        let d = parse_back(
            &to_xml(
                &build_plist(&base, Some(&account()), Some("/opt/homebrew/bin:/usr/bin")).unwrap(),
            )
            .unwrap(),
        );
        let env = d
            .get("EnvironmentVariables")
            .and_then(Value::as_dictionary)
            .unwrap();
        assert_eq!(
            env.get("PATH").and_then(Value::as_string),
            Some("/opt/homebrew/bin:/usr/bin")
        );
        // The config's own PATH wins.
        let own = base.clone().with_env("PATH", "/usr/bin");
        let d = parse_back(
            &to_xml(&build_plist(&own, Some(&account()), Some("/opt/homebrew/bin")).unwrap())
                .unwrap(),
        );
        let env = d
            .get("EnvironmentVariables")
            .and_then(Value::as_dictionary)
            .unwrap();
        assert_eq!(env.get("PATH").and_then(Value::as_string), Some("/usr/bin"));
        // No default and no env: no EnvironmentVariables at all.
        let d = parse_back(&to_xml(&build_plist(&base, Some(&account()), None).unwrap()).unwrap());
        assert!(d.get("EnvironmentVariables").is_none());
    }

    #[test]
    fn keepalive_forms() {
        let base = ServiceConfig::new(label("k"), "/bin/sleep");
        let mut on_failure = base.clone();
        on_failure.restart = RestartPolicy::OnFailure;
        let d = parse_back(
            &to_xml(&build_plist(&on_failure, Some(&account()), None).unwrap()).unwrap(),
        );
        let keep = d.get("KeepAlive").and_then(Value::as_dictionary).unwrap();
        assert_eq!(
            keep.get("SuccessfulExit").and_then(Value::as_boolean),
            Some(false)
        );
        let mut never = base;
        never.restart = RestartPolicy::Never;
        never.run_at_load = false;
        let d = parse_back(&to_xml(&build_plist(&never, Some(&account()), None).unwrap()).unwrap());
        assert_eq!(d.get("KeepAlive").and_then(Value::as_boolean), Some(false));
        assert_eq!(d.get("RunAtLoad").and_then(Value::as_boolean), Some(false));
    }

    #[test]
    fn accounts() {
        let base = ServiceConfig::new(label("a"), "/bin/sleep");
        // A daemon with no user and no account configured is refused, not run as root.
        let e = build_plist(&base, None, None).unwrap_err();
        assert!(e.contains("service account"), "{e}");
        // allow_root without a user: no UserName, launchd runs it as root.
        let mut root = base.clone();
        root.allow_root = true;
        let d = parse_back(&to_xml(&build_plist(&root, Some(&account()), None).unwrap()).unwrap());
        assert!(d.get("UserName").is_none());
        // An explicit user wins over the account.
        let named = base.clone().with_user("redis", None);
        let d = parse_back(&to_xml(&build_plist(&named, Some(&account()), None).unwrap()).unwrap());
        assert_eq!(d.get("UserName").and_then(Value::as_string), Some("redis"));
        assert!(d.get("GroupName").is_none());
        // Agents run as their user: no UserName, whatever the account.
        let agent = base.clone().with_scope(ServiceScope::Gui { uid: 501 });
        let d = parse_back(&to_xml(&build_plist(&agent, Some(&account()), None).unwrap()).unwrap());
        assert!(d.get("UserName").is_none());
        assert!(d.get("LimitLoadToSessionType").is_none());
        let bg = base.with_scope(ServiceScope::User { uid: 501 });
        let d = parse_back(&to_xml(&build_plist(&bg, None, None).unwrap()).unwrap());
        assert_eq!(
            d.get("LimitLoadToSessionType").and_then(Value::as_string),
            Some(BACKGROUND_SESSION)
        );
    }

    #[test]
    fn xml_metacharacters_are_escaped_and_round_trip() {
        let nasty = [
            "a<b>c",
            "x & y",
            "say \"hi\"",
            "it's",
            "line1\nline2",
            "]]>",
            "<!-- -->",
        ];
        let c = ServiceConfig::new(label("com.joelclaw.esc"), "/bin/echo")
            .with_args(nasty)
            .with_env("NOTE", "<&>\"'\n");
        c.validate().unwrap();
        let bytes = to_xml(&build_plist(&c, Some(&account()), None).unwrap()).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.contains("a&lt;b&gt;c"), "{text}");
        assert!(text.contains("x &amp; y"), "{text}");
        assert!(!text.contains("<!-- -->"), "{text}");
        let d = parse_back(&bytes);
        let argv: Vec<&str> = d
            .get("ProgramArguments")
            .and_then(Value::as_array)
            .unwrap()
            .iter()
            .map(|v| v.as_string().unwrap())
            .collect();
        assert_eq!(&argv[1..], nasty);
        let env = d
            .get("EnvironmentVariables")
            .and_then(Value::as_dictionary)
            .unwrap();
        assert_eq!(env.get("NOTE").and_then(Value::as_string), Some("<&>\"'\n"));
    }

    #[test]
    fn atomic_write_sets_mode_and_refuses_unsafe_folders() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let agents = dir.path().join("Library/LaunchAgents");
        let path = agents.join("x.plist");
        assert_eq!(
            write_atomically(&agents, "x.plist", b"one", None).unwrap(),
            WriteOutcome::Created
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"one");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        write_atomically(&agents, "x.plist", b"two", None).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(&agents)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["x.plist"]);
        std::fs::set_permissions(&agents, std::fs::Permissions::from_mode(0o777)).unwrap();
        match write_atomically(&agents, "x.plist", b"three", None) {
            Err(WriteError::Unsafe(msg)) => assert!(msg.contains("writable"), "{msg}"),
            other => panic!("expected Unsafe, got {other:?}"),
        }
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
    }
}
