//! Turning a `ServiceConfig` into a launchd property list, and putting it on disk atomically.
//!
//! Two steps: [`resolve`] fills in what the manager's config decides (account, log files,
//! `PATH`, launchd's defaults made explicit, the hardening of `sandbox`), then `emit` writes
//! the resolved config key by key. `plist_read` is the inverse of `emit`.

use std::path::Path;
use std::time::Duration;

use plist::{Dictionary, Value};
use process_manager::{Hardening, ProcessType, Relax, RestartPolicy, ServiceConfig, ServiceScope};
use sysutil::fs::{AtomicWrite, WriteOutcome};

use super::plist_trigger;
use super::sandbox::{HARD_LIMITS, LAUNCHD_RELAX_KEYS, PRIVATE_UMASK, SOFT_LIMITS};
use super::LAUNCHD_RESPAWN_THROTTLE;

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

/// What the manager's config gives every plist whose service config leaves it open.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PlistDefaults<'a> {
    /// `UserName`/`GroupName` of a system daemon that names no user; `GroupName` of one that
    /// names the account's user but no group.
    pub(crate) account: Option<&'a ServiceAccount>,
    /// `PATH` when the config sets none: launchd's own default lacks `/opt/homebrew/bin`, and
    /// a job that cannot find its tools fails quietly for days.
    pub(crate) default_path: Option<&'a str>,
    /// The folder of `<label>.out.log`/`.err.log` when the config names no log files.
    pub(crate) log_dir: Option<&'a Path>,
    /// The wrapper that reads a service's env files at each start (`env-exec`).
    pub(crate) env_exec: Option<&'a Path>,
}

/// The config as the plist will say it: every default the plist makes explicit filled in
/// (account, group, log files, `PATH`, `ThrottleInterval`, a job's `ProcessType`), and what a
/// plist cannot say dropped (`start_limit`, `after`, `write_paths`, relax keys without a launchd
/// meaning). Reading the written plist back gives exactly this, and resolving it again changes
/// nothing. A system daemon is never left to run as root unless `allow_root`.
pub(crate) fn resolve(
    config: &ServiceConfig,
    defaults: &PlistDefaults<'_>,
) -> Result<ServiceConfig, String> {
    if !config.env_files.is_empty() && defaults.env_exec.is_none() {
        // launchd has no EnvironmentFile. Copying the values into the plist would put secrets
        // in a file others can often read (LaunchAgents are typically 0644), so the values stay
        // in their file and a wrapper reads it at each start; without one, refused rather than
        // started without its settings.
        return Err(format!(
            "{}: env_files under launchd need the env-exec wrapper (the node agent's binary), which this adapter was not given; its values are never copied into the plist, which others can read",
            config.label
        ));
    }
    let mut c = config.clone();
    let account = defaults.account;
    match (&c.user, c.scope) {
        (Some(user), ServiceScope::System) => {
            // The service account named outright still gets the account's group.
            if let Some(a) = account.filter(|a| a.user == *user) {
                c.group = c.group.or_else(|| a.group.clone());
            }
        }
        (Some(_), _) => {}
        (None, ServiceScope::System) if c.allow_root => {}
        (None, ServiceScope::System) => match account {
            Some(a) => {
                c.user = Some(a.user.clone());
                c.group = c.group.or_else(|| a.group.clone());
            }
            None => {
                return Err(format!(
                    "{} is a system daemon with no user, no service account is configured, and allow_root is false: configure the service account (UserName) or set user",
                    c.label
                ))
            }
        },
        // Agents run as the user whose domain they are in.
        (None, _) => {}
    }
    // launchd counts whole seconds; round up so a delay is never shortened to nothing. No delay
    // is launchd's default, written out so the plist says what launchd does.
    let delay = c.restart_delay.unwrap_or(LAUNCHD_RESPAWN_THROTTLE);
    let secs = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
    c.restart_delay = Some(Duration::from_secs(secs));
    if let Some(dir) = defaults.log_dir {
        c.stdout_path = c
            .stdout_path
            .or_else(|| Some(dir.join(format!("{}.out.log", c.label))));
        c.stderr_path = c
            .stderr_path
            .or_else(|| Some(dir.join(format!("{}.err.log", c.label))));
    }
    if let (false, Some(path)) = (c.env.contains_key("PATH"), defaults.default_path) {
        c.env.insert("PATH".into(), path.into());
    }
    c.hardening.relax.retain(|k| LAUNCHD_RELAX_KEYS.contains(k));
    if !c.hardening.enabled {
        c.hardening = Hardening::off();
    }
    if c.hardening.enabled && c.is_job() && c.process_type.is_none() {
        c.process_type = Some(ProcessType::Background);
    }
    c.start_limit = None;
    c.after.clear();
    c.write_paths.clear();
    Ok(c)
}

/// Builds the plist for `config`, with `defaults` filling in what it leaves open
/// ([`resolve`]).
pub(crate) fn build_plist(
    config: &ServiceConfig,
    defaults: &PlistDefaults<'_>,
) -> Result<Value, String> {
    Ok(emit(&resolve(config, defaults)?, defaults.env_exec))
}

/// The plist of a resolved config, key by key.
fn emit(c: &ServiceConfig, env_exec: Option<&Path>) -> Value {
    let mut d = Dictionary::new();
    let path_string = |p: &Path| Value::String(p.to_string_lossy().into_owned());
    d.insert("Label".into(), Value::String(c.label.to_string()));
    let argv: Vec<Value> = match env_exec.filter(|_| !c.env_files.is_empty()) {
        // The wrapper reads the files at each start, then becomes the program.
        Some(wrapper) => {
            process_manager::env_file::wrapped_argv(wrapper, &c.env_files, &c.program, &c.args)
                .into_iter()
                .map(Value::String)
                .collect()
        }
        None => std::iter::once(path_string(&c.program))
            .chain(c.args.iter().cloned().map(Value::String))
            .collect(),
    };
    d.insert("ProgramArguments".into(), Value::Array(argv));
    d.insert("RunAtLoad".into(), Value::Boolean(c.run_at_load));
    match c.restart {
        RestartPolicy::Always => {
            d.insert("KeepAlive".into(), Value::Boolean(true));
        }
        RestartPolicy::OnFailure => {
            // Respawn only after an unclean exit.
            let mut keep = Dictionary::new();
            keep.insert("SuccessfulExit".into(), Value::Boolean(false));
            d.insert("KeepAlive".into(), Value::Dictionary(keep));
        }
        // A job runs when its trigger fires and has no KeepAlive at all.
        RestartPolicy::Never if c.is_job() => {}
        RestartPolicy::Never => {
            d.insert("KeepAlive".into(), Value::Boolean(false));
        }
    }
    if let Some(delay) = c.restart_delay {
        d.insert(
            "ThrottleInterval".into(),
            Value::Integer(delay.as_secs().into()),
        );
    }
    plist_trigger::write(&c.triggers, &mut d);
    if let Some(u) = &c.user {
        d.insert("UserName".into(), Value::String(u.clone()));
    }
    if let Some(g) = &c.group {
        d.insert("GroupName".into(), Value::String(g.clone()));
    }
    if let Some(dir) = &c.working_dir {
        d.insert("WorkingDirectory".into(), path_string(dir));
    }
    let env: Dictionary = c
        .env
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    if !env.is_empty() {
        d.insert("EnvironmentVariables".into(), Value::Dictionary(env));
    }
    if let Some(p) = &c.stdout_path {
        d.insert("StandardOutPath".into(), path_string(p));
    }
    if let Some(p) = &c.stderr_path {
        d.insert("StandardErrorPath".into(), path_string(p));
    }
    if let Some(pt) = c.process_type {
        let name = match pt {
            ProcessType::Background => "Background",
            ProcessType::Standard => "Standard",
            ProcessType::Adaptive => "Adaptive",
            ProcessType::Interactive => "Interactive",
        };
        d.insert("ProcessType".into(), Value::String(name.into()));
    }
    if c.hardening.applies(Relax::Umask) {
        d.insert("Umask".into(), Value::Integer(PRIVATE_UMASK.into()));
    }
    if c.hardening.enabled {
        let limits = |table: &[(&str, u64)]| {
            Value::Dictionary(
                table
                    .iter()
                    .map(|(k, v)| (k.to_string(), Value::Integer((*v).into())))
                    .collect(),
            )
        };
        d.insert("SoftResourceLimits".into(), limits(SOFT_LIMITS));
        d.insert("HardResourceLimits".into(), limits(HARD_LIMITS));
    }
    if matches!(c.scope, ServiceScope::User { .. }) {
        d.insert(
            "LimitLoadToSessionType".into(),
            Value::String(BACKGROUND_SESSION.into()),
        );
    }
    Value::Dictionary(d)
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

    fn defaults<'a>(
        account: Option<&'a ServiceAccount>,
        default_path: Option<&'a str>,
    ) -> PlistDefaults<'a> {
        PlistDefaults {
            account,
            default_path,
            log_dir: None,
            env_exec: None,
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
        let bytes = to_xml(&build_plist(&c, &defaults(Some(&account()), None)).unwrap()).unwrap();
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
    fn env_files_run_through_the_wrapper_never_copied_into_the_plist() {
        let mut c = ServiceConfig::new(label("com.example.w"), "/bin/w")
            .with_user("w", None)
            .with_args(["--port", "3111"]);
        c.env_files = vec!["/etc/w.env".into(), "-/etc/w.local.env".into()];
        let e = resolve(&c, &PlistDefaults::default()).unwrap_err();
        assert!(e.contains("env_files") && e.contains("env-exec"), "{e}");
        let wrapper = Path::new("/usr/local/bin/joelclaw-node");
        let defaults = PlistDefaults {
            env_exec: Some(wrapper),
            ..PlistDefaults::default()
        };
        let xml = to_xml(&build_plist(&c, &defaults).unwrap()).unwrap();
        let d = parse_back(&xml);
        let argv: Vec<&str> = d
            .get("ProgramArguments")
            .and_then(Value::as_array)
            .unwrap()
            .iter()
            .filter_map(Value::as_string)
            .collect();
        assert_eq!(
            argv,
            [
                "/usr/local/bin/joelclaw-node",
                "env-exec",
                "--env-file=/etc/w.env",
                "--env-file=-/etc/w.local.env",
                "--",
                "/bin/w",
                "--port",
                "3111"
            ]
        );
        assert!(d
            .get("EnvironmentVariables")
            .and_then(Value::as_dictionary)
            .is_none_or(|e| e.get("PATH").is_some() || e.is_empty()));
        // Read back, it is the config: the files, the program and its arguments.
        let read = crate::launchd::plist_read::parse_plist(&xml)
            .unwrap()
            .to_config(ServiceScope::System)
            .unwrap();
        assert_eq!(read.env_files, c.env_files);
        assert_eq!(read.program, c.program);
        assert_eq!(read.args, c.args);
    }

    #[test]
    fn path_is_always_set() {
        let base = ServiceConfig::new(label("p"), "/bin/sleep");
        let d = parse_back(
            &to_xml(
                &build_plist(
                    &base,
                    &defaults(Some(&account()), Some("/opt/homebrew/bin:/usr/bin")),
                )
                .unwrap(),
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
            &to_xml(
                &build_plist(&own, &defaults(Some(&account()), Some("/opt/homebrew/bin"))).unwrap(),
            )
            .unwrap(),
        );
        let env = d
            .get("EnvironmentVariables")
            .and_then(Value::as_dictionary)
            .unwrap();
        assert_eq!(env.get("PATH").and_then(Value::as_string), Some("/usr/bin"));
        // No default and no env: no EnvironmentVariables at all.
        let d = parse_back(
            &to_xml(&build_plist(&base, &defaults(Some(&account()), None)).unwrap()).unwrap(),
        );
        assert!(d.get("EnvironmentVariables").is_none());
    }

    #[test]
    fn keepalive_forms() {
        let base = ServiceConfig::new(label("k"), "/bin/sleep");
        let mut on_failure = base.clone();
        on_failure.restart = RestartPolicy::OnFailure;
        let d = parse_back(
            &to_xml(&build_plist(&on_failure, &defaults(Some(&account()), None)).unwrap()).unwrap(),
        );
        let keep = d.get("KeepAlive").and_then(Value::as_dictionary).unwrap();
        assert_eq!(
            keep.get("SuccessfulExit").and_then(Value::as_boolean),
            Some(false)
        );
        let mut never = base;
        never.restart = RestartPolicy::Never;
        never.run_at_load = false;
        let d = parse_back(
            &to_xml(&build_plist(&never, &defaults(Some(&account()), None)).unwrap()).unwrap(),
        );
        assert_eq!(d.get("KeepAlive").and_then(Value::as_boolean), Some(false));
        assert_eq!(d.get("RunAtLoad").and_then(Value::as_boolean), Some(false));
    }

    #[test]
    fn accounts() {
        let base = ServiceConfig::new(label("a"), "/bin/sleep");
        // A daemon with no user and no account configured is refused, not run as root.
        let e = build_plist(&base, &defaults(None, None)).unwrap_err();
        assert!(e.contains("service account"), "{e}");
        // allow_root without a user: no UserName, launchd runs it as root.
        let mut root = base.clone();
        root.allow_root = true;
        let d = parse_back(
            &to_xml(&build_plist(&root, &defaults(Some(&account()), None)).unwrap()).unwrap(),
        );
        assert!(d.get("UserName").is_none());
        // An explicit user wins over the account.
        let named = base.clone().with_user("redis", None);
        let d = parse_back(
            &to_xml(&build_plist(&named, &defaults(Some(&account()), None)).unwrap()).unwrap(),
        );
        assert_eq!(d.get("UserName").and_then(Value::as_string), Some("redis"));
        assert!(d.get("GroupName").is_none());
        // Agents run as their user: no UserName, whatever the account.
        let agent = base.clone().with_scope(ServiceScope::Gui { uid: 501 });
        let d = parse_back(
            &to_xml(&build_plist(&agent, &defaults(Some(&account()), None)).unwrap()).unwrap(),
        );
        assert!(d.get("UserName").is_none());
        assert!(d.get("LimitLoadToSessionType").is_none());
        let bg = base.with_scope(ServiceScope::User { uid: 501 });
        let d = parse_back(&to_xml(&build_plist(&bg, &defaults(None, None)).unwrap()).unwrap());
        assert_eq!(
            d.get("LimitLoadToSessionType").and_then(Value::as_string),
            Some(BACKGROUND_SESSION)
        );
    }

    fn dict(config: &ServiceConfig, defaults: &PlistDefaults<'_>) -> Dictionary {
        parse_back(&to_xml(&build_plist(config, defaults).unwrap()).unwrap())
    }

    fn int(d: &Dictionary, key: &str) -> Option<u64> {
        d.get(key).and_then(Value::as_unsigned_integer)
    }

    #[test]
    fn plists_are_complete() {
        let logs = Path::new("/var/log/joelclaw");
        let full = PlistDefaults {
            account: Some(&ServiceAccount {
                user: "joelclaw".into(),
                group: Some("joelclaw".into()),
            }),
            default_path: Some(crate::launchd::DEFAULT_SERVICE_PATH),
            log_dir: Some(logs),
            env_exec: None,
        };
        // The account named outright still gets the account's group; launchd's throttle and
        // the log files are written out.
        let c = ServiceConfig::new(label("com.joelclaw.gateway"), "/bin/sleep")
            .with_user("joelclaw", None);
        let d = dict(&c, &full);
        assert_eq!(
            d.get("GroupName").and_then(Value::as_string),
            Some("joelclaw")
        );
        assert_eq!(int(&d, "ThrottleInterval"), Some(10));
        assert_eq!(
            d.get("StandardOutPath").and_then(Value::as_string),
            Some("/var/log/joelclaw/com.joelclaw.gateway.out.log")
        );
        assert_eq!(
            d.get("StandardErrorPath").and_then(Value::as_string),
            Some("/var/log/joelclaw/com.joelclaw.gateway.err.log")
        );
        let path = d
            .get("EnvironmentVariables")
            .and_then(Value::as_dictionary)
            .and_then(|e| e.get("PATH"))
            .and_then(Value::as_string)
            .unwrap();
        assert!(path.starts_with("/opt/homebrew/bin:"), "{path}");
        assert!(!path.contains("/Users/"), "{path}");
        // A service's own log files win over the folder.
        let mut own = c.clone();
        own.stdout_path = Some("/srv/out".into());
        let d = dict(&own, &full);
        assert_eq!(
            d.get("StandardOutPath").and_then(Value::as_string),
            Some("/srv/out")
        );
        assert_eq!(
            d.get("StandardErrorPath").and_then(Value::as_string),
            Some("/var/log/joelclaw/com.joelclaw.gateway.err.log")
        );
    }

    #[test]
    fn hardened_by_default_relaxable_and_never_a_session() {
        let base = ServiceConfig::new(label("h"), "/bin/sleep");
        let account = account();
        let none = defaults(Some(&account), None);
        let d = dict(&base, &none);
        assert_eq!(int(&d, "Umask"), Some(0o077));
        for key in ["SoftResourceLimits", "HardResourceLimits"] {
            let limits = d.get(key).and_then(Value::as_dictionary).unwrap();
            assert_eq!(int(limits, "Core"), Some(0), "{key}");
            assert!(int(limits, "NumberOfFiles").is_some(), "{key}");
        }
        // A daemon keeps launchd's scheduling unless it names one.
        assert!(d.get("ProcessType").is_none());
        assert!(d.get("SessionCreate").is_none());
        // `umask` gives the mask back; the keys launchd has no meaning for change nothing.
        let mut relaxed = base.clone();
        relaxed.hardening = Hardening::relaxed([Relax::Umask]);
        let d = dict(&relaxed, &none);
        assert!(d.get("Umask").is_none());
        assert!(d.get("HardResourceLimits").is_some());
        let mut other = base.clone();
        other.hardening = Hardening::relaxed(Relax::ALL.into_iter().filter(|k| *k != Relax::Umask));
        assert_eq!(dict(&other, &none), dict(&base, &none));
        let mut off = base;
        off.hardening = Hardening::off();
        let d = dict(&off, &none);
        for key in [
            "Umask",
            "SoftResourceLimits",
            "HardResourceLimits",
            "SessionCreate",
        ] {
            assert!(d.get(key).is_none(), "{key}");
        }
    }

    #[test]
    fn jobs_get_their_triggers_and_no_keep_alive() {
        use process_manager::{CalendarInterval, Triggers};
        let account = account();
        let none = defaults(Some(&account), None);
        let mut job = ServiceConfig::new(label("com.joelclaw.janitor"), "/bin/true");
        job.restart = RestartPolicy::Never;
        job.run_at_load = false;
        job.triggers = Triggers {
            interval: Some(Duration::from_secs(900)),
            calendar: vec![CalendarInterval {
                hour: Some(3),
                minute: Some(30),
                ..CalendarInterval::default()
            }],
            watch_paths: vec!["/var/lib/joelclaw/inbox".into()],
        };
        let d = dict(&job, &none);
        assert_eq!(int(&d, "StartInterval"), Some(900));
        // One calendar rule: a dictionary, as launchd's examples write it.
        let cal = d
            .get("StartCalendarInterval")
            .and_then(Value::as_dictionary)
            .unwrap();
        assert_eq!((int(cal, "Hour"), int(cal, "Minute")), (Some(3), Some(30)));
        assert_eq!(
            cal.len(),
            2,
            "unset fields are left out (they match anything)"
        );
        let watch: Vec<&str> = d
            .get("WatchPaths")
            .and_then(Value::as_array)
            .unwrap()
            .iter()
            .filter_map(Value::as_string)
            .collect();
        assert_eq!(watch, ["/var/lib/joelclaw/inbox"]);
        assert!(d.get("KeepAlive").is_none());
        assert_eq!(d.get("RunAtLoad").and_then(Value::as_boolean), Some(false));
        assert_eq!(
            d.get("ProcessType").and_then(Value::as_string),
            Some("Background")
        );
        // Several rules: an array of dictionaries; a job's own ProcessType wins.
        job.triggers.calendar.push(CalendarInterval {
            weekday: Some(1),
            ..CalendarInterval::default()
        });
        job.process_type = Some(ProcessType::Standard);
        let d = dict(&job, &none);
        let cal = d
            .get("StartCalendarInterval")
            .and_then(Value::as_array)
            .unwrap();
        assert_eq!(cal.len(), 2);
        assert_eq!(
            d.get("ProcessType").and_then(Value::as_string),
            Some("Standard")
        );
        // On failure, a job respawns after an unclean run only.
        job.restart = RestartPolicy::OnFailure;
        let d = dict(&job, &none);
        assert!(d.get("KeepAlive").and_then(Value::as_dictionary).is_some());
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
        let bytes = to_xml(&build_plist(&c, &defaults(Some(&account()), None)).unwrap()).unwrap();
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
