//! Unit files from a [`ServiceConfig`], written the way systemd reads them back.
//!
//! The quoting follows `systemd.syntax(7)` and the "Command lines" section of
//! `systemd.service(7)` (systemd 252): each `ExecStart=` word is double-quoted, with `\\`, `\"`
//! and C escapes for control characters (so a newline becomes `\n` and can never start a new
//! directive); `%` is written `%%` because specifiers are expanded after unquoting; `$` is written
//! `$$` because `ExecStart=` expands `$VAR` when the process starts. `Environment=` takes the same
//! quoting and specifiers but no `$` expansion. Path directives (`WorkingDirectory=`,
//! `StandardOutput=append:`, `EnvironmentFile=`) are not unquoted at all, so only `%` is escaped there and paths that
//! systemd would read differently (control characters, a trailing `\` that would continue the line,
//! leading or trailing blanks that it would strip) are refused. `ReadWritePaths=` words are
//! unquoted but not C-unescaped, so they take the command-line quoting minus `$$`.
//!
//! A hardened system unit gets the whole table of `sandbox` minus the config's relax keys, with
//! `ProtectSystem=strict` and `ReadWritePaths=` its working folder, its log files' folders and
//! its `write_paths`; a job is a `Type=oneshot` service whose `.timer`/`.path` come from
//! `unit_trigger`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use process_manager::{ProcessError, Relax, RestartPolicy, ServiceConfig, ServiceScope};

use super::sandbox::{PROTECT_SYSTEM_FULL, PROTECT_SYSTEM_STRICT, SANDBOX, USER_BASELINE};

/// The first line of every unit file this adapter writes: how its own files are told from a
/// person's (only those are replaced or removed).
pub(crate) const UNIT_MARK: &str =
    "# Written by joelclaw (adapters-linux). Changes here are replaced on the next apply.\n";

/// The account a system service runs as when its config names none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccount {
    /// `User=`
    pub user: String,
    /// `Group=`, when not the user's own group.
    pub group: Option<String>,
}

impl ServiceAccount {
    /// An account with its own primary group.
    pub fn new(user: impl Into<String>) -> Self {
        ServiceAccount {
            user: user.into(),
            group: None,
        }
    }
}

/// Whether the unit is for the system manager or a user's (`--user`) manager; decides `User=`
/// and the install target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ManagerKind {
    System,
    User,
}

fn invalid(config: &ServiceConfig, detail: impl Into<String>) -> ProcessError {
    ProcessError::InvalidInput {
        label: Some(config.label.to_string()),
        detail: detail.into(),
    }
}

/// One `ExecStart=` word (or `Environment=` assignment) as a double-quoted systemd string.
/// `expand_dollar` says whether the directive expands `$VAR` (and so needs `$$`).
pub(crate) fn quote_word(word: &str, expand_dollar: bool) -> String {
    let mut out = String::with_capacity(word.len() + 2);
    out.push('"');
    for c in word.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '%' => out.push_str("%%"),
            '$' if expand_dollar => out.push_str("$$"),
            c if c.is_control() => {
                // C escapes cover every control character; `\x` takes exactly two hex digits,
                // `\u` four (only for characters beyond ASCII).
                let n = c as u32;
                if n < 0x80 {
                    let _ = write!(out, "\\x{n:02x}");
                } else {
                    let _ = write!(out, "\\u{n:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A path for a directive that is not unquoted: checked, with `%` escaped.
pub(crate) fn path_value(
    config: &ServiceConfig,
    what: &str,
    path: &Path,
) -> Result<String, ProcessError> {
    let text = path
        .to_str()
        .ok_or_else(|| invalid(config, format!("{what} {path:?} is not valid UTF-8")))?;
    if !path.is_absolute() {
        return Err(invalid(config, format!("{what} {text:?} must be absolute")));
    }
    if text.chars().any(char::is_control) {
        return Err(invalid(
            config,
            format!("{what} {text:?} contains a control character"),
        ));
    }
    if text.ends_with('\\') || text.trim() != text {
        return Err(invalid(
            config,
            format!("{what} {text:?} ends in a backslash or blank that systemd would not keep"),
        ));
    }
    Ok(text.replace('%', "%%"))
}

pub(crate) fn seconds(d: Duration) -> String {
    // Milliseconds keep sub-second settings exact; systemd accepts the `ms` and `us` suffixes
    // everywhere a time span is read, and keeps microseconds (its resolution), so a span that is
    // not whole milliseconds is written in microseconds rather than rounded down to `0ms`.
    if d.subsec_nanos() % 1_000_000 == 0 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}us", d.as_micros())
    }
}

/// Renders the unit file for `config`. Calls `config.validate()` first, so nothing is written for
/// a config any adapter would refuse.
pub(crate) fn render_unit(
    config: &ServiceConfig,
    kind: ManagerKind,
    default_account: Option<&ServiceAccount>,
) -> Result<String, ProcessError> {
    config.validate()?;
    // `name@.service` is a template and `@name` no unit at all: `@` only between two parts.
    let label = config.label.as_str();
    if label.starts_with('@') || label.ends_with('@') {
        return Err(invalid(
            config,
            format!("label {label:?}: systemd reads a leading or trailing '@' as a template; put '@' between a name and an instance"),
        ));
    }
    match (kind, config.scope) {
        (ManagerKind::System, ServiceScope::System) => {}
        (ManagerKind::User, ServiceScope::User { .. } | ServiceScope::Gui { .. }) => {}
        (ManagerKind::System, other) => {
            return Err(invalid(
                config,
                format!("scope {other} belongs to a user manager; this is the system manager"),
            ))
        }
        (ManagerKind::User, other) => {
            return Err(invalid(
                config,
                format!("scope {other} belongs to the system manager; this is a user manager"),
            ))
        }
    }
    let program = config
        .program
        .to_str()
        .ok_or_else(|| invalid(config, "program path is not valid UTF-8"))?;
    if program.contains('$') {
        // systemd expands `$` in argv[0] but not in the path it executes, so no escaping makes
        // both come out right.
        return Err(invalid(
            config,
            format!("program {program:?} contains '$', which systemd cannot run unchanged"),
        ));
    }

    let mut unit = String::new();
    unit.push_str(UNIT_MARK);
    unit.push_str("[Unit]\n");
    let _ = writeln!(unit, "Description=joelclaw service {}", config.label);
    if !config.after.is_empty() {
        let names: Vec<String> = config
            .after
            .iter()
            .map(|l| format!("{l}.service"))
            .collect();
        let _ = writeln!(unit, "After={}", names.join(" "));
        let _ = writeln!(unit, "Wants={}", names.join(" "));
    }
    if let Some(limit) = config.start_limit {
        let _ = writeln!(unit, "StartLimitIntervalSec={}", seconds(limit.interval));
        let _ = writeln!(unit, "StartLimitBurst={}", limit.burst);
    }

    unit.push_str("\n[Service]\n");
    if config.is_job() {
        // A job runs to completion each time its timer or path starts it.
        unit.push_str("Type=oneshot\n");
    } else {
        // `exec`: `systemctl start` returns once the program is really executing, and fails
        // when it cannot be (missing binary, bad user), instead of reporting a start that never
        // happened.
        unit.push_str("Type=exec\n");
    }
    let mut exec = quote_word(program, false);
    for arg in &config.args {
        exec.push(' ');
        exec.push_str(&quote_word(arg, true));
    }
    let _ = writeln!(unit, "ExecStart={exec}");
    for (key, value) in &config.env {
        let _ = writeln!(
            unit,
            "Environment={}",
            quote_word(&format!("{key}={value}"), false)
        );
    }
    // systemd reads these as root when it starts the service (before any sandbox), so the file
    // can stay readable only by root or the service account; a leading `-` (may be missing) is
    // written as configured.
    for (i, configured) in config.env_files.iter().enumerate() {
        let (path, optional) = process_manager::env_file::spec(configured);
        let value = path_value(config, &format!("env_files[{i}]"), path)?;
        let dash = if optional { "-" } else { "" };
        let _ = writeln!(unit, "EnvironmentFile={dash}{value}");
    }
    if let Some(dir) = &config.working_dir {
        let _ = writeln!(
            unit,
            "WorkingDirectory={}",
            path_value(config, "working_dir", dir)?
        );
    }
    match kind {
        ManagerKind::System => {
            let (user, group) = match (&config.user, default_account) {
                (Some(user), _) => (user.clone(), config.group.clone()),
                (None, Some(account)) => (
                    account.user.clone(),
                    config.group.clone().or_else(|| account.group.clone()),
                ),
                (None, None) => {
                    return Err(invalid(
                        config,
                        "no user given and no service account configured; system services never run as root unless asked (user = \"root\", allow_root = true)",
                    ))
                }
            };
            // Account names are re-checked here because a default account comes from the
            // adapter's options, not from a validated config.
            process_manager::check_account_name("user", &user).map_err(|e| invalid(config, e))?;
            if user == "root" && !config.allow_root {
                return Err(invalid(config, "user root needs allow_root"));
            }
            let _ = writeln!(unit, "User={user}");
            if let Some(group) = group {
                process_manager::check_account_name("group", &group)
                    .map_err(|e| invalid(config, e))?;
                let _ = writeln!(unit, "Group={group}");
            }
        }
        ManagerKind::User => {
            if config.user.is_some() || config.group.is_some() {
                return Err(invalid(
                    config,
                    "a user manager runs services as its own user; user/group cannot be set",
                ));
            }
        }
    }
    let restart = match config.restart {
        // A job's default: it is started again by its trigger, not by systemd.
        RestartPolicy::Never if config.is_job() => None,
        RestartPolicy::Never => Some("no"),
        RestartPolicy::OnFailure => Some("on-failure"),
        RestartPolicy::Always => Some("always"),
    };
    if let Some(restart) = restart {
        let _ = writeln!(unit, "Restart={restart}");
    }
    if let Some(delay) = config.restart_delay {
        let _ = writeln!(unit, "RestartSec={}", seconds(delay));
    }
    if let Some(path) = &config.stdout_path {
        let _ = writeln!(
            unit,
            "StandardOutput=append:{}",
            path_value(config, "stdout_path", path)?
        );
    }
    if let Some(path) = &config.stderr_path {
        let _ = writeln!(
            unit,
            "StandardError=append:{}",
            path_value(config, "stderr_path", path)?
        );
    }
    write_sandbox(&mut unit, config, kind)?;

    if config.run_at_load {
        unit.push_str("\n[Install]\n");
        let target = match kind {
            ManagerKind::System => "multi-user.target",
            ManagerKind::User => "default.target",
        };
        let _ = writeln!(unit, "WantedBy={target}");
    }
    Ok(unit)
}

/// The folders a hardened system service may write without listing them: its working folder
/// and its log files' folders, in that order, each once, never `/`.
pub(crate) fn own_write_paths(
    working_dir: Option<&Path>,
    stdout: Option<&Path>,
    stderr: Option<&Path>,
) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    let candidates = [
        working_dir,
        stdout.and_then(Path::parent),
        stderr.and_then(Path::parent),
    ];
    for p in candidates.into_iter().flatten() {
        if p.parent().is_some() && !out.iter().any(|o| o == p) {
            out.push(p.to_path_buf());
        }
    }
    out
}

/// `ReadWritePaths=` and the sandbox directives [`ServiceConfig::hardening`] asks for.
fn write_sandbox(
    unit: &mut String,
    config: &ServiceConfig,
    kind: ManagerKind,
) -> Result<(), ProcessError> {
    let hardening = &config.hardening;
    let strict = kind == ManagerKind::System && hardening.applies(Relax::WritePaths);
    let mut writable = if strict {
        own_write_paths(
            config.working_dir.as_deref(),
            config.stdout_path.as_deref(),
            config.stderr_path.as_deref(),
        )
    } else {
        Vec::new()
    };
    writable.extend(config.write_paths.iter().cloned());
    if !writable.is_empty() {
        let mut words = Vec::with_capacity(writable.len());
        for p in &writable {
            path_value(config, "write path", p)?;
            // Unquoted, then specifiers: the quoting of a command-line word minus `$$`.
            words.push(quote_word(&p.to_string_lossy(), false));
        }
        let _ = writeln!(unit, "ReadWritePaths={}", words.join(" "));
    }
    if !hardening.enabled {
        return Ok(());
    }
    if kind == ManagerKind::User {
        if let Some(key) = hardening.relax.first() {
            return Err(invalid(
                config,
                format!("hardening.relax ({key}) applies to system services; a user manager's services get a fixed baseline (NoNewPrivileges, ProtectSystem=full, PrivateTmp)"),
            ));
        }
        for (name, value) in USER_BASELINE {
            let _ = writeln!(unit, "{name}={value}");
        }
        return Ok(());
    }
    let protect = if strict {
        PROTECT_SYSTEM_STRICT
    } else {
        PROTECT_SYSTEM_FULL
    };
    let _ = writeln!(unit, "ProtectSystem={protect}");
    for (key, directives) in SANDBOX {
        if hardening.applies(*key) {
            for (name, value) in *directives {
                let _ = writeln!(unit, "{name}={value}");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use process_manager::{Hardening, ServiceLabel, StartLimit};

    fn cfg() -> ServiceConfig {
        ServiceConfig::new(ServiceLabel::new("svc").unwrap(), "/usr/bin/sleep").with_args(["1000"])
    }

    fn account() -> ServiceAccount {
        ServiceAccount::new("joelclaw")
    }

    #[test]
    fn sub_millisecond_spans_are_written_in_microseconds() {
        // Found by the systemd_unit fuzz target: 7 µs was written `0ms` and read back as 0.
        assert_eq!(seconds(Duration::from_micros(7)), "7us");
        assert_eq!(seconds(Duration::from_micros(1_500)), "1500us");
        assert_eq!(seconds(Duration::from_millis(1_500)), "1500ms");
        assert_eq!(seconds(Duration::ZERO), "0ms");
    }

    #[test]
    fn quoting_follows_systemd_rules() {
        assert_eq!(quote_word("plain", true), r#""plain""#);
        assert_eq!(quote_word("a b", true), r#""a b""#);
        assert_eq!(quote_word(r#"say "hi""#, true), r#""say \"hi\"""#);
        assert_eq!(quote_word(r"back\slash", true), r#""back\\slash""#);
        assert_eq!(quote_word("100%", true), r#""100%%""#);
        assert_eq!(quote_word("$HOME ${X}", true), r#""$$HOME $${X}""#);
        assert_eq!(quote_word("$HOME", false), r#""$HOME""#);
        assert_eq!(quote_word("line1\nline2", true), r#""line1\nline2""#);
        assert_eq!(quote_word("a\tb\rc\x07", true), r#""a\tb\rc\x07""#);
        assert_eq!(quote_word("", true), r#""""#);
        assert_eq!(quote_word(";", true), r#"";""#);
        assert_eq!(quote_word("\u{85}", true), r#""\u0085""#);
    }

    #[test]
    fn no_value_can_start_a_new_line() {
        let c = cfg()
            .with_args(["x\nExecStartPre=/bin/evil", "y\r\nUser=root"])
            .with_env("NOTE", "a\n[Service]\nUser=root");
        let unit = render_unit(&c, ManagerKind::System, Some(&account())).unwrap();
        for line in unit.lines() {
            assert!(
                !line.starts_with("ExecStartPre") && !line.starts_with("User=root"),
                "{unit}"
            );
            assert!(
                !line.starts_with("[Service]") || line == "[Service]",
                "{unit}"
            );
        }
        assert_eq!(
            unit.lines().filter(|l| l.starts_with('[')).count(),
            3,
            "{unit}"
        );
    }

    #[test]
    fn full_unit_exact() {
        let mut c = cfg()
            .with_args(["--port", "6379", "50% off", "$PATH"])
            .with_env("PATH", "/usr/bin:/bin")
            .with_env("GREETING", "hello \"world\"");
        c.env_files = vec!["/etc/svc/svc.env".into(), "-/etc/svc/50%.env".into()];
        c.working_dir = Some("/var/lib/svc".into());
        c.stdout_path = Some("/var/log/svc/out.log".into());
        c.stderr_path = Some("/var/log/svc/err%.log".into());
        c.restart = RestartPolicy::OnFailure;
        c.restart_delay = Some(Duration::from_millis(1500));
        c.start_limit = Some(StartLimit {
            interval: Duration::from_secs(30),
            burst: 3,
        });
        c.group = Some("staff".into());
        let unit = render_unit(&c, ManagerKind::System, Some(&account())).unwrap();
        assert_eq!(
            unit,
            r#"# Written by joelclaw (adapters-linux). Changes here are replaced on the next apply.
[Unit]
Description=joelclaw service svc
StartLimitIntervalSec=30000ms
StartLimitBurst=3

[Service]
Type=exec
ExecStart="/usr/bin/sleep" "--port" "6379" "50%% off" "$$PATH"
Environment="GREETING=hello \"world\""
Environment="PATH=/usr/bin:/bin"
EnvironmentFile=/etc/svc/svc.env
EnvironmentFile=-/etc/svc/50%%.env
WorkingDirectory=/var/lib/svc
User=joelclaw
Group=staff
Restart=on-failure
RestartSec=1500ms
StandardOutput=append:/var/log/svc/out.log
StandardError=append:/var/log/svc/err%%.log
ReadWritePaths="/var/lib/svc" "/var/log/svc"
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
DevicePolicy=closed
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
ProcSubset=pid
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
RestrictNamespaces=yes
PrivateMounts=yes
MemoryDenyWriteExecute=yes
SystemCallFilter=@system-service
SystemCallArchitectures=native
LockPersonality=yes
RestrictRealtime=yes
NoNewPrivileges=yes
RestrictSUIDSGID=yes
CapabilityBoundingSet=
AmbientCapabilities=
PrivateUsers=yes
UMask=0077
RemoveIPC=yes
KeyringMode=private

[Install]
WantedBy=multi-user.target
"#
        );
    }

    #[test]
    fn each_relax_key_gives_back_its_protections_only() {
        let c = cfg();
        let full = render_unit(&c, ManagerKind::System, Some(&account())).unwrap();
        let mut c = cfg();
        c.hardening = Hardening::relaxed([Relax::WxMemory, Relax::Proc, Relax::WritePaths]);
        c.working_dir = Some("/var/lib/svc".into());
        let unit = render_unit(&c, ManagerKind::System, Some(&account())).unwrap();
        for gone in [
            "MemoryDenyWriteExecute",
            "ProtectProc",
            "ProcSubset",
            "ReadWritePaths",
        ] {
            assert!(full.contains(gone) || gone == "ReadWritePaths", "{full}");
            assert!(!unit.contains(gone), "{gone}: {unit}");
        }
        assert!(unit.contains("\nProtectSystem=full\n"), "{unit}");
        assert!(
            unit.contains("\nSystemCallFilter=@system-service\n"),
            "{unit}"
        );
        assert!(unit.contains("\nPrivateUsers=yes\n"), "{unit}");
    }

    #[test]
    fn write_paths_open_the_service_own_folders_never_root() {
        let mut c = cfg();
        c.working_dir = Some("/".into());
        c.stdout_path = Some("/out.log".into());
        c.stderr_path = Some("/var/log/a b/err.log".into());
        c.write_paths = vec!["/srv/100%".into()];
        let unit = render_unit(&c, ManagerKind::System, Some(&account())).unwrap();
        assert!(
            unit.contains("\nReadWritePaths=\"/var/log/a b\" \"/srv/100%%\"\n"),
            "{unit}"
        );
    }

    #[test]
    fn user_manager_units_get_the_baseline_and_refuse_relax_keys() {
        let mut c = cfg().with_scope(ServiceScope::User { uid: 1000 });
        let unit = render_unit(&c, ManagerKind::User, None).unwrap();
        assert!(
            unit.contains("NoNewPrivileges=yes\nProtectSystem=full\nPrivateTmp=yes\n"),
            "{unit}"
        );
        assert!(!unit.contains("PrivateUsers"), "{unit}");
        c.hardening = Hardening::relaxed([Relax::Home]);
        let e = render_unit(&c, ManagerKind::User, None).unwrap_err();
        assert!(e.to_string().contains("baseline"), "{e}");
    }

    #[test]
    fn dependencies_are_after_and_wants() {
        let mut c = cfg();
        c.after = vec![
            ServiceLabel::new("redis").unwrap(),
            ServiceLabel::new("colima").unwrap(),
        ];
        let unit = render_unit(&c, ManagerKind::System, Some(&account())).unwrap();
        assert!(
            unit.contains("[Unit]\nDescription=joelclaw service svc\nAfter=redis.service colima.service\nWants=redis.service colima.service\n"),
            "{unit}"
        );
    }

    #[test]
    fn hardening_can_be_relaxed_and_run_at_load_off_has_no_install() {
        let mut c = cfg();
        c.hardening = Hardening::off();
        c.run_at_load = false;
        let unit = render_unit(&c, ManagerKind::System, Some(&account())).unwrap();
        assert!(!unit.contains("NoNewPrivileges"), "{unit}");
        assert!(!unit.contains("ProtectSystem"), "{unit}");
        assert!(!unit.contains("[Install]"), "{unit}");
    }

    #[test]
    fn system_services_need_an_account_and_never_default_to_root() {
        let e = render_unit(&cfg(), ManagerKind::System, None).unwrap_err();
        assert!(e.to_string().contains("service account"), "{e}");
        let e = render_unit(
            &cfg(),
            ManagerKind::System,
            Some(&ServiceAccount::new("root")),
        )
        .unwrap_err();
        assert!(e.to_string().contains("allow_root"), "{e}");
        let mut c = cfg().with_user("root", None);
        c.allow_root = true;
        let unit = render_unit(&c, ManagerKind::System, None).unwrap();
        assert!(unit.contains("\nUser=root\n"), "{unit}");
        for bad in ["0day", "0x0"] {
            let e =
                render_unit(&cfg().with_user(bad, None), ManagerKind::System, None).unwrap_err();
            assert!(matches!(e, ProcessError::InvalidInput { .. }), "{e}");
            let e = render_unit(&cfg(), ManagerKind::System, Some(&ServiceAccount::new(bad)))
                .unwrap_err();
            assert!(matches!(e, ProcessError::InvalidInput { .. }), "{e}");
        }
    }

    #[test]
    fn user_manager_units() {
        let c = cfg().with_scope(ServiceScope::User { uid: 1000 });
        let unit = render_unit(&c, ManagerKind::User, None).unwrap();
        assert!(!unit.contains("User="), "{unit}");
        assert!(unit.contains("WantedBy=default.target"), "{unit}");
        assert!(render_unit(&cfg(), ManagerKind::User, None).is_err());
        assert!(render_unit(&c, ManagerKind::System, Some(&account())).is_err());
        let c = c.with_user("joelclaw", None);
        assert!(render_unit(&c, ManagerKind::User, None).is_err());
    }

    #[test]
    fn refuses_what_systemd_would_read_differently() {
        let mut c = cfg();
        c.program = "/opt/$bin/x".into();
        assert!(render_unit(&c, ManagerKind::System, Some(&account())).is_err());
        let mut c = cfg();
        c.working_dir = Some("/srv/dir\\".into());
        assert!(render_unit(&c, ManagerKind::System, Some(&account())).is_err());
        let mut c = cfg();
        c.stdout_path = Some("/var/log/x.log ".into());
        assert!(render_unit(&c, ManagerKind::System, Some(&account())).is_err());
        let mut c = cfg();
        c.stdout_path = Some("/var/log/\u{1b}x".into());
        assert!(render_unit(&c, ManagerKind::System, Some(&account())).is_err());
        let mut c = cfg();
        c.program = "bin/relative".into();
        assert!(render_unit(&c, ManagerKind::System, Some(&account())).is_err());
    }

    #[test]
    fn a_label_that_would_be_a_template_is_refused() {
        for bad in ["worker@", "@worker"] {
            let cfg = ServiceConfig::new(ServiceLabel::new(bad).unwrap(), "/usr/bin/sleep");
            let e = render_unit(
                &cfg,
                ManagerKind::System,
                Some(&ServiceAccount::new("joelclaw")),
            )
            .unwrap_err()
            .to_string();
            assert!(e.contains("template"), "{bad}: {e}");
        }
        let ok = ServiceConfig::new(ServiceLabel::new("getty@tty1").unwrap(), "/usr/bin/sleep");
        assert!(render_unit(
            &ok,
            ManagerKind::System,
            Some(&ServiceAccount::new("joelclaw"))
        )
        .is_ok());
    }
}
