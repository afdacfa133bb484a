//! Reading a launchd property list back into typed parts: the inverse of `plist_gen`, for
//! anything that judges installed definitions (the audit) rather than writing them.
//!
//! The reader is lenient the way launchd is: a key of an unexpected type is read as absent, and
//! keys it does not know are ignored. Only a file that is not a plist, a top level that is not a
//! dictionary, or a missing `Label` is an error.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use plist::{Dictionary, Value};
use process_manager::{
    CalendarInterval, Hardening, ProcessType, Relax, RestartPolicy, ServiceConfig, ServiceLabel,
    ServiceScope, Triggers,
};

use super::plist_trigger;
use super::sandbox::PRIVATE_UMASK;

/// launchd's `KeepAlive`, in the forms this system writes and the common other one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeepAlive {
    /// `<true/>` or `<false/>`.
    Always(bool),
    /// `{SuccessfulExit = false}`: respawn only after an unclean exit.
    UnlessSuccessfulExit,
    /// A dictionary of other conditions (network state, paths, other jobs).
    Conditions,
}

/// What a plist says, key by key (`None` or empty where the key is absent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlistDefinition {
    /// `Label`.
    pub label: String,
    /// `Program`: the executable, when given apart from the arguments.
    pub program: Option<String>,
    /// `ProgramArguments`: argv, including argv\[0\].
    pub program_arguments: Vec<String>,
    /// `UserName`.
    pub user: Option<String>,
    /// `GroupName`.
    pub group: Option<String>,
    /// `EnvironmentVariables` (string values only).
    pub env: BTreeMap<String, String>,
    /// `WorkingDirectory`.
    pub working_dir: Option<String>,
    /// `StandardOutPath`.
    pub stdout_path: Option<String>,
    /// `StandardErrorPath`.
    pub stderr_path: Option<String>,
    /// `RunAtLoad`.
    pub run_at_load: Option<bool>,
    /// `KeepAlive`.
    pub keep_alive: Option<KeepAlive>,
    /// `ThrottleInterval`, in seconds.
    pub throttle_interval: Option<u64>,
    /// `ProcessType`, as written.
    pub process_type: Option<String>,
    /// `LimitLoadToSessionType`, when a single string.
    pub session_type: Option<String>,
    /// `Umask`, as a number (launchd also takes an octal string, read here as its value).
    pub umask: Option<u64>,
    /// `SoftResourceLimits` (integer values only).
    pub soft_limits: BTreeMap<String, u64>,
    /// `HardResourceLimits` (integer values only).
    pub hard_limits: BTreeMap<String, u64>,
    /// `SessionCreate`: the job gets a security session of its own (never written here).
    pub session_create: Option<bool>,
    /// `StartInterval`, in seconds.
    pub start_interval: Option<u64>,
    /// `StartCalendarInterval`, a dictionary or an array of them, as a list.
    pub calendar: Vec<CalendarInterval>,
    /// `WatchPaths`.
    pub watch_paths: Vec<String>,
}

/// Reads the plist at `path`.
pub fn read_plist(path: &Path) -> Result<PlistDefinition, String> {
    let value = Value::from_file(path).map_err(|e| format!("not a readable plist: {e}"))?;
    from_value(&value)
}

/// Reads a plist from its bytes (XML or binary).
pub fn parse_plist(bytes: &[u8]) -> Result<PlistDefinition, String> {
    let value = Value::from_reader(std::io::Cursor::new(bytes))
        .map_err(|e| format!("not a readable plist: {e}"))?;
    from_value(&value)
}

fn from_value(value: &Value) -> Result<PlistDefinition, String> {
    let dict = value
        .as_dictionary()
        .ok_or("the plist's top level is not a dictionary")?;
    let s = |k: &str| dict.get(k).and_then(Value::as_string).map(str::to_string);
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_string)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(PlistDefinition {
        label: s("Label").ok_or("no Label key")?,
        program: s("Program"),
        program_arguments: dict
            .get("ProgramArguments")
            .map(strings)
            .unwrap_or_default(),
        user: s("UserName"),
        group: s("GroupName"),
        env: dict
            .get("EnvironmentVariables")
            .and_then(Value::as_dictionary)
            .map(string_map)
            .unwrap_or_default(),
        working_dir: s("WorkingDirectory"),
        stdout_path: s("StandardOutPath"),
        stderr_path: s("StandardErrorPath"),
        run_at_load: dict.get("RunAtLoad").and_then(Value::as_boolean),
        keep_alive: dict.get("KeepAlive").and_then(keep_alive),
        throttle_interval: dict
            .get("ThrottleInterval")
            .and_then(Value::as_unsigned_integer),
        process_type: s("ProcessType"),
        session_type: s("LimitLoadToSessionType"),
        umask: dict.get("Umask").and_then(umask),
        soft_limits: dict
            .get("SoftResourceLimits")
            .and_then(Value::as_dictionary)
            .map(integer_map)
            .unwrap_or_default(),
        hard_limits: dict
            .get("HardResourceLimits")
            .and_then(Value::as_dictionary)
            .map(integer_map)
            .unwrap_or_default(),
        session_create: dict.get("SessionCreate").and_then(Value::as_boolean),
        start_interval: dict
            .get("StartInterval")
            .and_then(Value::as_unsigned_integer),
        calendar: dict
            .get("StartCalendarInterval")
            .map(plist_trigger::read_calendar)
            .unwrap_or_default(),
        watch_paths: dict.get("WatchPaths").map(strings).unwrap_or_default(),
    })
}

/// `Umask`: an integer, or a string launchd reads with `strtol(.., 0)` (`"077"` is octal).
fn umask(v: &Value) -> Option<u64> {
    if let Some(n) = v.as_unsigned_integer() {
        return Some(n);
    }
    let text = v.as_string()?.trim();
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None if text.len() > 1 && text.starts_with('0') => u64::from_str_radix(&text[1..], 8).ok(),
        None => text.parse().ok(),
    }
}

fn integer_map(d: &Dictionary) -> BTreeMap<String, u64> {
    d.iter()
        .filter_map(|(k, v)| v.as_unsigned_integer().map(|v| (k.clone(), v)))
        .collect()
}

fn string_map(d: &Dictionary) -> BTreeMap<String, String> {
    d.iter()
        .filter_map(|(k, v)| v.as_string().map(|v| (k.clone(), v.to_string())))
        .collect()
}

fn keep_alive(v: &Value) -> Option<KeepAlive> {
    if let Some(b) = v.as_boolean() {
        return Some(KeepAlive::Always(b));
    }
    let d = v.as_dictionary()?;
    let only_successful_exit_false =
        d.len() == 1 && d.get("SuccessfulExit").and_then(Value::as_boolean) == Some(false);
    Some(if only_successful_exit_false {
        KeepAlive::UnlessSuccessfulExit
    } else {
        KeepAlive::Conditions
    })
}

impl PlistDefinition {
    /// The executable launchd runs: `Program`, else `ProgramArguments[0]`.
    pub fn executable(&self) -> Option<&str> {
        self.program
            .as_deref()
            .or_else(|| self.program_arguments.first().map(String::as_str))
    }

    /// The hardening the plist's keys describe (`sandbox`): on when `HardResourceLimits` forbids
    /// core dumps, with `umask` relaxed when `Umask` is not 0o077.
    pub fn hardening(&self) -> Hardening {
        if self.hard_limits.get("Core") != Some(&0) {
            return Hardening::off();
        }
        if self.umask == Some(PRIVATE_UMASK) {
            Hardening::on()
        } else {
            Hardening::relaxed([Relax::Umask])
        }
    }

    /// The definition as a [`ServiceConfig`] in `scope` (which the plist's folder, not the plist,
    /// decides). Absent keys take launchd's defaults (no `RunAtLoad`, no `KeepAlive`); a system
    /// daemon with no `UserName` runs as root, so it reads as `allow_root`; `hardening` is read
    /// from the sandbox keys and `triggers` from `StartInterval`, `StartCalendarInterval` and
    /// `WatchPaths`. What launchd has no key for (`start_limit`, `after`, `write_paths`) stays
    /// empty; `SessionCreate`, which a config cannot ask for, is only in the definition. A
    /// calendar entry out of range is an error. A program run through the `env-exec` wrapper
    /// reads as the program itself with its `env_files`.
    pub fn to_config(&self, scope: ServiceScope) -> Result<ServiceConfig, String> {
        let label = ServiceLabel::new(self.label.as_str()).map_err(|e| e.to_string())?;
        let program = self
            .executable()
            .ok_or_else(|| format!("{}: neither Program nor ProgramArguments", self.label))?;
        let wrapped = process_manager::env_file::unwrap_argv(&self.program_arguments)
            .filter(|(wrapper, ..)| *wrapper == Path::new(&program));
        let mut c = match wrapped {
            Some((_, files, program, args)) => {
                let mut c = ServiceConfig::new(label, program).with_args(args);
                c.env_files = files;
                c
            }
            None => ServiceConfig::new(label, program)
                .with_args(self.program_arguments.iter().skip(1).cloned()),
        }
        .with_scope(scope);
        c.env = self.env.clone();
        c.user = self.user.clone();
        c.group = self.group.clone();
        c.allow_root = scope == ServiceScope::System && self.user.is_none();
        c.working_dir = self.working_dir.as_ref().map(Into::into);
        c.stdout_path = self.stdout_path.as_ref().map(Into::into);
        c.stderr_path = self.stderr_path.as_ref().map(Into::into);
        c.run_at_load = self.run_at_load.unwrap_or(false);
        c.restart = match &self.keep_alive {
            None | Some(KeepAlive::Always(false)) => RestartPolicy::Never,
            Some(KeepAlive::Always(true)) => RestartPolicy::Always,
            Some(KeepAlive::UnlessSuccessfulExit) => RestartPolicy::OnFailure,
            Some(KeepAlive::Conditions) => {
                return Err(format!(
                    "{}: KeepAlive conditions have no restart policy",
                    self.label
                ))
            }
        };
        c.restart_delay = self.throttle_interval.map(Duration::from_secs);
        c.hardening = self.hardening();
        c.triggers = Triggers {
            interval: self.start_interval.map(Duration::from_secs),
            calendar: self.calendar.clone(),
            watch_paths: self.watch_paths.iter().map(Into::into).collect(),
        };
        c.triggers
            .check()
            .map_err(|e| format!("{}: {e}", self.label))?;
        c.process_type = match self.process_type.as_deref() {
            None => None,
            Some("Background") => Some(ProcessType::Background),
            Some("Standard") => Some(ProcessType::Standard),
            Some("Adaptive") => Some(ProcessType::Adaptive),
            Some("Interactive") => Some(ProcessType::Interactive),
            Some(other) => return Err(format!("{}: unknown ProcessType {other:?}", self.label)),
        };
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launchd::plist_gen::{
        build_plist, resolve, to_xml, PlistDefaults, ServiceAccount, BACKGROUND_SESSION,
    };
    use proptest::prelude::*;
    use std::path::PathBuf;

    fn label() -> impl Strategy<Value = ServiceLabel> {
        "[a-z][a-z0-9._-]{0,30}".prop_map(|s| ServiceLabel::new(s).unwrap())
    }

    fn path() -> impl Strategy<Value = String> {
        "(/[a-zA-Z0-9 ._%$-]{1,12}){1,4}"
    }

    /// Text XML can carry: no control characters but newline and tab (a carriage return is read
    /// back as a newline, as XML says).
    fn text() -> impl Strategy<Value = String> {
        "[\\PC\n\t]{0,16}"
    }

    fn restart() -> impl Strategy<Value = RestartPolicy> {
        prop_oneof![
            Just(RestartPolicy::Always),
            Just(RestartPolicy::OnFailure),
            Just(RestartPolicy::Never),
        ]
    }

    fn process_type() -> impl Strategy<Value = Option<ProcessType>> {
        prop_oneof![
            Just(None),
            Just(Some(ProcessType::Background)),
            Just(Some(ProcessType::Standard)),
            Just(Some(ProcessType::Adaptive)),
            Just(Some(ProcessType::Interactive)),
        ]
    }

    fn relax() -> impl Strategy<Value = Vec<Relax>> {
        prop::collection::vec(prop::sample::select(Relax::ALL.to_vec()), 0..4)
    }

    fn calendar() -> impl Strategy<Value = CalendarInterval> {
        (
            prop::option::of(0u8..60),
            prop::option::of(0u8..24),
            prop::option::of(prop_oneof![
                (1u8..32).prop_map(|d| (Some(d), None)),
                (0u8..7).prop_map(|w| (None, Some(w)))
            ]),
            prop::option::of(1u8..13),
        )
            .prop_map(|(minute, hour, day_or_weekday, month)| {
                let (day, weekday) = day_or_weekday.unwrap_or((None, None));
                CalendarInterval {
                    minute,
                    hour,
                    day,
                    weekday,
                    month,
                }
            })
    }

    fn triggers() -> impl Strategy<Value = Triggers> {
        (
            prop::option::of(1u64..1_000_000),
            prop::collection::vec(calendar(), 0..3),
            prop::collection::vec(path(), 0..3),
        )
            .prop_map(|(interval, calendar, watch)| Triggers {
                interval: interval.map(Duration::from_secs),
                calendar,
                watch_paths: watch.into_iter().map(Into::into).collect(),
            })
    }

    fn scope() -> impl Strategy<Value = ServiceScope> {
        prop_oneof![
            Just(ServiceScope::System),
            (1u32..100_000).prop_map(|uid| ServiceScope::Gui { uid }),
            (1u32..100_000).prop_map(|uid| ServiceScope::User { uid }),
        ]
    }

    fn account_name() -> impl Strategy<Value = String> {
        "[a-z_][a-z0-9_-]{0,12}"
    }

    /// What the manager's config gives: a service account, a `PATH`, a log folder.
    #[derive(Debug, Clone)]
    struct Defaults {
        account: Option<ServiceAccount>,
        default_path: Option<String>,
        log_dir: Option<PathBuf>,
    }

    impl Defaults {
        fn get(&self) -> PlistDefaults<'_> {
            PlistDefaults {
                account: self.account.as_ref(),
                default_path: self.default_path.as_deref(),
                log_dir: self.log_dir.as_deref(),
                env_exec: None,
            }
        }
    }

    prop_compose! {
        fn defaults()(
            account in prop::option::of((account_name(), prop::option::of(account_name()))),
            default_path in prop::option::of("[a-z/:]{1,30}"),
            log_dir in prop::option::of(path()),
        ) -> Defaults {
            Defaults {
                account: account.map(|(user, group)| ServiceAccount { user, group }),
                default_path,
                log_dir: log_dir.map(Into::into),
            }
        }
    }

    prop_compose! {
        /// Any config the generator takes, with its manager's defaults: a system daemon with no
        /// user either has an account to run as or is allowed root.
        fn config()(
            label in label(),
            program in path(),
            args in prop::collection::vec(text(), 0..5),
            env in prop::collection::btree_map("[A-Z_][A-Z0-9_]{0,8}", text(), 0..4),
            user in prop::option::of((account_name(), prop::option::of(account_name()))),
            allow_root in any::<bool>(),
            working_dir in prop::option::of(path()),
            stdout_path in prop::option::of(path()),
            stderr_path in prop::option::of(path()),
            run_at_load in any::<bool>(),
            restart in restart(),
            delay in prop::option::of(0u64..100_000_000),
            process_type in process_type(),
            scope in scope(),
            hardening in any::<bool>(),
            relax in relax(),
            triggers in triggers(),
            write_paths in prop::collection::vec(path(), 0..2),
            defaults in defaults(),
        ) -> (ServiceConfig, Defaults) {
            let mut c = ServiceConfig::new(label, program).with_args(args).with_scope(scope);
            c.env = env;
            if let Some((user, group)) = user {
                c.user = Some(user);
                c.group = group;
            }
            c.allow_root = scope == ServiceScope::System
                && c.user.is_none()
                && (allow_root || defaults.account.is_none());
            c.working_dir = working_dir.map(Into::into);
            c.stdout_path = stdout_path.map(Into::into);
            c.stderr_path = stderr_path.map(Into::into);
            c.run_at_load = run_at_load;
            c.restart = restart;
            c.restart_delay = delay.map(Duration::from_micros);
            c.process_type = process_type;
            c.hardening = Hardening { enabled: hardening, relax: relax.into_iter().collect() };
            c.triggers = triggers;
            if c.is_job() && c.restart == RestartPolicy::Always {
                c.restart = RestartPolicy::Never;
            }
            c.write_paths = write_paths.into_iter().map(Into::into).collect();
            (c, defaults)
        }
    }

    proptest! {
        /// The plist read back is the config as resolved, resolving is idempotent, and writing
        /// what was read gives the same bytes: every key written is read.
        #[test]
        fn written_then_read_gives_the_same_config((c, defaults) in config()) {
            let resolved = resolve(&c, &defaults.get()).unwrap();
            prop_assert_eq!(&resolve(&resolved, &defaults.get()).unwrap(), &resolved);
            let bytes = to_xml(&build_plist(&c, &defaults.get()).unwrap()).unwrap();
            let read = parse_plist(&bytes).unwrap();
            if matches!(c.scope, ServiceScope::User { .. }) {
                prop_assert_eq!(read.session_type.as_deref(), Some(BACKGROUND_SESSION));
            }
            prop_assert_eq!(read.session_create, None);
            let back = read.to_config(c.scope).unwrap();
            prop_assert_eq!(&back, &resolved);
            let again = to_xml(&build_plist(&back, &defaults.get()).unwrap()).unwrap();
            prop_assert_eq!(again, bytes);
        }
    }

    #[test]
    fn a_sub_second_delay_reads_back_rounded_up() {
        let mut c = ServiceConfig::new(ServiceLabel::new("d").unwrap(), "/bin/sleep");
        c.allow_root = true;
        c.restart_delay = Some(Duration::from_millis(2500));
        let none = PlistDefaults::default();
        let read = parse_plist(&to_xml(&build_plist(&c, &none).unwrap()).unwrap()).unwrap();
        assert_eq!(read.throttle_interval, Some(3));
        // No delay: launchd's own, written out.
        c.restart_delay = None;
        let read = parse_plist(&to_xml(&build_plist(&c, &none).unwrap()).unwrap()).unwrap();
        assert_eq!(read.throttle_interval, Some(10));
    }

    #[test]
    fn the_account_and_default_path_are_read_as_written() {
        let c = ServiceConfig::new(ServiceLabel::new("a").unwrap(), "/bin/sleep");
        let account = crate::launchd::ServiceAccount {
            user: "_joelclaw".into(),
            group: Some("_staff".into()),
        };
        let defaults = PlistDefaults {
            account: Some(&account),
            default_path: Some("/usr/bin:/bin"),
            log_dir: None,
            env_exec: None,
        };
        let bytes = to_xml(&build_plist(&c, &defaults).unwrap()).unwrap();
        let read = parse_plist(&bytes).unwrap();
        assert_eq!(read.user.as_deref(), Some("_joelclaw"));
        assert_eq!(read.group.as_deref(), Some("_staff"));
        assert_eq!(
            read.env.get("PATH").map(String::as_str),
            Some("/usr/bin:/bin")
        );
    }

    #[test]
    fn hand_written_jobs_and_sandbox_keys() {
        // launchd's own forms: one calendar dictionary, an octal Umask string, a session.
        let xml = br#"<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0"><dict>
  <key>Label</key><string>com.example.nightly</string>
  <key>ProgramArguments</key><array><string>/bin/sh</string><string>-c</string><string>true</string></array>
  <key>StartCalendarInterval</key><dict><key>Hour</key><integer>4</integer><key>Second</key><integer>1</integer></dict>
  <key>WatchPaths</key><array><string>/Users/someone/Drop</string></array>
  <key>Umask</key><string>022</string>
  <key>SessionCreate</key><true/>
  <key>HardResourceLimits</key><dict><key>Core</key><integer>0</integer></dict>
</dict></plist>"#;
        let d = parse_plist(xml).unwrap();
        assert_eq!(
            d.calendar,
            [CalendarInterval {
                hour: Some(4),
                ..CalendarInterval::default()
            }]
        );
        assert_eq!(d.watch_paths, ["/Users/someone/Drop"]);
        assert_eq!(d.umask, Some(0o022));
        assert_eq!(d.session_create, Some(true));
        assert_eq!(d.hardening(), Hardening::relaxed([Relax::Umask]));
        let c = d.to_config(ServiceScope::System).unwrap();
        assert!(c.is_job() && c.triggers.calendar.len() == 1);
        // A field no calendar accepts (negative, or past the field's range) is an error, not
        // "any".
        for bad in ["-1", "300", "61"] {
            let xml = format!(
                r#"<plist version="1.0"><dict><key>Label</key><string>x</string><key>Program</key><string>/x</string><key>StartCalendarInterval</key><array><dict><key>Minute</key><integer>{bad}</integer></dict></array></dict></plist>"#
            );
            let d = parse_plist(xml.as_bytes()).unwrap();
            let e = d.to_config(ServiceScope::System).unwrap_err();
            assert!(e.contains("minute"), "{bad}: {e}");
        }
        // No limits: not hardened, whatever the mask.
        let plain = br#"<plist version="1.0"><dict><key>Label</key><string>x</string><key>Umask</key><integer>63</integer></dict></plist>"#;
        assert_eq!(parse_plist(plain).unwrap().hardening(), Hardening::off());
    }

    #[test]
    fn odd_plists() {
        // Wrongly typed keys read as absent; Program wins over argv[0]; conditions are kept apart.
        let xml = br#"<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0"><dict>
  <key>Label</key><string>x</string>
  <key>Program</key><string>/usr/bin/real</string>
  <key>ProgramArguments</key><array><string>shown</string><integer>3</integer><string>-v</string></array>
  <key>UserName</key><integer>0</integer>
  <key>EnvironmentVariables</key><dict><key>A</key><string>1</string><key>B</key><true/></dict>
  <key>KeepAlive</key><dict><key>NetworkState</key><true/></dict>
</dict></plist>"#;
        let d = parse_plist(xml).unwrap();
        assert_eq!(d.executable(), Some("/usr/bin/real"));
        assert_eq!(d.program_arguments, ["shown", "-v"]);
        assert_eq!(d.user, None);
        assert_eq!(d.env.len(), 1);
        assert_eq!(d.keep_alive, Some(KeepAlive::Conditions));
        assert!(d.to_config(ServiceScope::System).is_err());

        let no_label =
            br#"<plist version="1.0"><dict><key>Program</key><string>/x</string></dict></plist>"#;
        assert_eq!(parse_plist(no_label).unwrap_err(), "no Label key");
        let array = br#"<plist version="1.0"><array/></plist>"#;
        assert!(parse_plist(array).unwrap_err().contains("not a dictionary"));
        // Bytes no plist reader takes as anything but a bare (old-style) string.
        assert!(parse_plist(b"\x00garbage").is_err());
        let cut = parse_plist(br#"<?xml version="1.0"?><plist version="1.0"><dict><key>Label"#);
        assert!(cut.unwrap_err().contains("not a readable plist"));
    }
}
