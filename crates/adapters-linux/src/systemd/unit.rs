//! Unit files from a [`ServiceConfig`], written the way systemd reads them back.
//!
//! The quoting follows `systemd.syntax(7)` and the "Command lines" section of
//! `systemd.service(7)` (systemd 252): each `ExecStart=` word is double-quoted, with `\\`, `\"`
//! and C escapes for control characters (so a newline becomes `\n` and can never start a new
//! directive); `%` is written `%%` because specifiers are expanded after unquoting; `$` is written
//! `$$` because `ExecStart=` expands `$VAR` when the process starts. `Environment=` takes the same
//! quoting and specifiers but no `$` expansion. Path directives (`WorkingDirectory=`,
//! `StandardOutput=append:`) are not unquoted at all, so only `%` is escaped there and paths that
//! systemd would read differently (control characters, a trailing `\` that would continue the line,
//! leading or trailing blanks that it would strip) are refused.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use process_manager::{ProcessError, RestartPolicy, ServiceConfig, ServiceScope};

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
fn path_value(config: &ServiceConfig, what: &str, path: &Path) -> Result<String, ProcessError> {
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

fn seconds(d: Duration) -> String {
    // Milliseconds keep sub-second settings exact; systemd accepts the `ms` suffix everywhere
    // a time span is read.
    format!("{}ms", d.as_millis())
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
    unit.push_str(
        "# Written by joelclaw (adapters-linux). Changes here are replaced on the next apply.\n",
    );
    unit.push_str("[Unit]\n");
    let _ = writeln!(unit, "Description=joelclaw service {}", config.label);
    if let Some(limit) = config.start_limit {
        let _ = writeln!(unit, "StartLimitIntervalSec={}", seconds(limit.interval));
        let _ = writeln!(unit, "StartLimitBurst={}", limit.burst);
    }

    unit.push_str("\n[Service]\n");
    // `exec`: `systemctl start` returns once the program is really executing, and fails when it
    // cannot be (missing binary, bad user), instead of reporting a start that never happened.
    unit.push_str("Type=exec\n");
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
        RestartPolicy::Never => "no",
        RestartPolicy::OnFailure => "on-failure",
        RestartPolicy::Always => "always",
    };
    let _ = writeln!(unit, "Restart={restart}");
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
    if config.hardening {
        unit.push_str("NoNewPrivileges=yes\n");
        // `full` (read-only /usr, /boot, /etc) rather than `strict`: services keep writing their
        // own state under /var without each one listing ReadWritePaths=.
        unit.push_str("ProtectSystem=full\n");
        unit.push_str("PrivateTmp=yes\n");
    }

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

#[cfg(test)]
mod tests {
    use super::*;
    use process_manager::{ServiceLabel, StartLimit};

    fn cfg() -> ServiceConfig {
        ServiceConfig::new(ServiceLabel::new("svc").unwrap(), "/usr/bin/sleep").with_args(["1000"])
    }

    fn account() -> ServiceAccount {
        ServiceAccount::new("joelclaw")
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
WorkingDirectory=/var/lib/svc
User=joelclaw
Group=staff
Restart=on-failure
RestartSec=1500ms
StandardOutput=append:/var/log/svc/out.log
StandardError=append:/var/log/svc/err%%.log
NoNewPrivileges=yes
ProtectSystem=full
PrivateTmp=yes

[Install]
WantedBy=multi-user.target
"#
        );
    }

    #[test]
    fn hardening_can_be_relaxed_and_run_at_load_off_has_no_install() {
        let mut c = cfg();
        c.hardening = false;
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
