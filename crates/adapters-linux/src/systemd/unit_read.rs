//! Reading a service unit file back into typed parts: the inverse of `unit`, for anything that
//! judges installed definitions (the audit) rather than writing them.
//!
//! It follows `systemd.syntax(7)` as far as these units need: sections, `#`/`;` comments, a
//! trailing `\` continuing a line, an empty assignment resetting a list. Command lines and
//! `Environment=` are split into words and unquoted (double or single quotes, C escapes), then
//! `%%` becomes `%` (other specifiers are left as written: they name the running system) and, in
//! command lines, `$$` becomes `$`. Path directives are not unquoted; only `%%` is undone. The
//! reader is lenient: a directive it cannot make sense of is left out, never an error.

use std::collections::BTreeMap;
use std::iter::Peekable;
use std::path::Path;
use std::str::Chars as StrChars;
use std::time::Duration;

use process_manager::{RestartPolicy, ServiceConfig, ServiceLabel, ServiceScope, StartLimit};

/// The characters of a value, with one of look-ahead.
type Chars<'a> = Peekable<StrChars<'a>>;

/// What a unit file says, directive by directive (`None` or empty where it is absent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitDefinition {
    /// The unit's name without `.service`.
    pub label: String,
    /// `Description=`.
    pub description: Option<String>,
    /// `ExecStart=` command lines, each unquoted into argv (program first, prefixes such as
    /// `-` or `+` dropped).
    pub exec_start: Vec<Vec<String>>,
    /// `Environment=` assignments.
    pub env: BTreeMap<String, String>,
    /// `WorkingDirectory=` (a leading `-` dropped).
    pub working_dir: Option<String>,
    /// `User=`.
    pub user: Option<String>,
    /// `Group=`.
    pub group: Option<String>,
    /// `Restart=`, as written.
    pub restart: Option<String>,
    /// `RestartSec=`.
    pub restart_sec: Option<Duration>,
    /// `StartLimitIntervalSec=` (in `[Unit]`).
    pub start_limit_interval: Option<Duration>,
    /// `StartLimitBurst=` (in `[Unit]`).
    pub start_limit_burst: Option<u32>,
    /// The file of `StandardOutput=append:|file:|truncate:`.
    pub stdout_path: Option<String>,
    /// The file of `StandardError=append:|file:|truncate:`.
    pub stderr_path: Option<String>,
    /// `ReadWritePaths=` entries.
    pub read_write_paths: Vec<String>,
    /// `NoNewPrivileges=` is true.
    pub no_new_privileges: bool,
    /// `ProtectSystem=`, as written.
    pub protect_system: Option<String>,
    /// `PrivateTmp=` is true.
    pub private_tmp: bool,
    /// `WantedBy=` targets (in `[Install]`).
    pub wanted_by: Vec<String>,
}

/// Reads the unit at `path`; its label is the file name without `.service`.
pub fn read_unit(path: &Path) -> Result<UnitDefinition, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("unreadable: {e}"))?;
    let label = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(parse_unit(&label, &text))
}

/// Reads a unit's text.
pub fn parse_unit(label: &str, text: &str) -> UnitDefinition {
    let mut d = UnitDefinition {
        label: label.to_string(),
        ..UnitDefinition::default()
    };
    let mut section = String::new();
    for line in logical_lines(text) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        match (section.as_str(), key) {
            ("Unit", "Description") => d.description = Some(value.to_string()),
            ("Unit", "StartLimitIntervalSec") => d.start_limit_interval = time_span(value),
            ("Unit", "StartLimitBurst") => d.start_limit_burst = value.parse().ok(),
            ("Service", "ExecStart") if value.is_empty() => d.exec_start.clear(),
            ("Service", "ExecStart") => {
                let value = value.trim_start_matches(['-', '@', ':', '+', '!']);
                let argv: Vec<String> =
                    words(value).iter().map(|w| dollars(&percents(w))).collect();
                if !argv.is_empty() {
                    d.exec_start.push(argv);
                }
            }
            ("Service", "Environment") if value.is_empty() => d.env.clear(),
            ("Service", "Environment") => {
                for word in words(value) {
                    if let Some((k, v)) = percents(&word).split_once('=') {
                        d.env.insert(k.to_string(), v.to_string());
                    }
                }
            }
            ("Service", "WorkingDirectory") => {
                d.working_dir = Some(percents(value.strip_prefix('-').unwrap_or(value)))
            }
            ("Service", "User") => d.user = Some(value.to_string()),
            ("Service", "Group") => d.group = Some(value.to_string()),
            ("Service", "Restart") => d.restart = Some(value.to_string()),
            ("Service", "RestartSec") => d.restart_sec = time_span(value),
            ("Service", "StandardOutput") => d.stdout_path = output_file(value),
            ("Service", "StandardError") => d.stderr_path = output_file(value),
            ("Service", "ReadWritePaths") if value.is_empty() => d.read_write_paths.clear(),
            ("Service", "ReadWritePaths") => d.read_write_paths.extend(
                value
                    .split_whitespace()
                    .map(|p| percents(p.trim_start_matches(['-', '+']))),
            ),
            ("Service", "NoNewPrivileges") => d.no_new_privileges = boolean(value),
            ("Service", "ProtectSystem") => d.protect_system = Some(value.to_string()),
            ("Service", "PrivateTmp") => d.private_tmp = boolean(value),
            ("Install", "WantedBy") if value.is_empty() => d.wanted_by.clear(),
            ("Install", "WantedBy") => {
                d.wanted_by
                    .extend(value.split_whitespace().map(str::to_string));
            }
            _ => {}
        }
    }
    d
}

impl UnitDefinition {
    /// The definition as a [`ServiceConfig`] in `scope` (system or a user's manager: the unit's
    /// folder decides, not the unit). Absent directives take systemd's defaults (`Restart=no`,
    /// not enabled); `hardening` is on when all three sandboxing directives the generator writes
    /// are set; `User=root` reads as `allow_root`.
    pub fn to_config(&self, scope: ServiceScope) -> Result<ServiceConfig, String> {
        let label = ServiceLabel::new(self.label.as_str()).map_err(|e| e.to_string())?;
        let [argv] = self.exec_start.as_slice() else {
            return Err(format!(
                "{}: {} ExecStart= command lines; a service config has one",
                self.label,
                self.exec_start.len()
            ));
        };
        let mut c = ServiceConfig::new(label, argv[0].as_str())
            .with_args(argv[1..].iter().cloned())
            .with_scope(scope);
        c.env = self.env.clone();
        c.working_dir = self.working_dir.as_ref().map(Into::into);
        c.user = self.user.clone();
        c.group = self.group.clone();
        c.allow_root = self.user.as_deref() == Some("root");
        c.restart = match self.restart.as_deref() {
            None | Some("no") => RestartPolicy::Never,
            Some("on-failure") => RestartPolicy::OnFailure,
            Some("always") => RestartPolicy::Always,
            Some(other) => return Err(format!("{}: Restart={other} has no policy", self.label)),
        };
        c.restart_delay = self.restart_sec;
        c.start_limit = match (self.start_limit_interval, self.start_limit_burst) {
            (Some(interval), Some(burst)) => Some(StartLimit { interval, burst }),
            _ => None,
        };
        c.run_at_load = !self.wanted_by.is_empty();
        c.stdout_path = self.stdout_path.as_ref().map(Into::into);
        c.stderr_path = self.stderr_path.as_ref().map(Into::into);
        c.hardening = self.no_new_privileges
            && self.private_tmp
            && self
                .protect_system
                .as_deref()
                .is_some_and(|p| !boolean_no(p));
        Ok(c)
    }
}

/// Lines with comments dropped and `\`-continued lines joined.
fn logical_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending: Option<String> = None;
    for raw in text.lines() {
        let line = raw.trim();
        if line.starts_with(['#', ';']) {
            continue;
        }
        let (body, continued) = match line.strip_suffix('\\') {
            Some(body) => (body, true),
            None => (line, false),
        };
        let joined = match pending.take() {
            Some(mut p) => {
                p.push(' ');
                p.push_str(body);
                p
            }
            None => body.to_string(),
        };
        if continued {
            pending = Some(joined);
        } else if !joined.is_empty() {
            out.push(joined);
        }
    }
    out.extend(pending);
    out
}

/// Splits a value into words, unquoting `"…"` and `'…'` and undoing C escapes. An unterminated
/// quote runs to the end of the line.
fn words(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = value.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return out;
        }
        let mut word = String::new();
        let mut quote: Option<char> = None;
        while let Some(c) = chars.next() {
            match (c, quote) {
                ('\\', _) => unescape(&mut chars, &mut word),
                (q, None) if q == '"' || q == '\'' => quote = Some(q),
                (q, Some(open)) if q == open => quote = None,
                (c, None) if c.is_whitespace() => break,
                (c, _) => word.push(c),
            }
        }
        out.push(word);
    }
}

/// One C escape after a backslash; an unknown or incomplete one is kept as written.
fn unescape(chars: &mut Chars<'_>, out: &mut String) {
    let Some(c) = chars.next() else {
        out.push('\\');
        return;
    };
    let digits = match c {
        'x' => 2,
        'u' => 4,
        'U' => 8,
        _ => 0,
    };
    if digits > 0 {
        let hex: String = (0..digits)
            .map_while(|_| chars.next_if(char::is_ascii_hexdigit))
            .collect();
        match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
            Some(c) if hex.len() == digits => out.push(c),
            _ => {
                out.push('\\');
                out.push(c);
                out.push_str(&hex);
            }
        }
        return;
    }
    let plain = match c {
        'a' => '\x07',
        'b' => '\x08',
        'f' => '\x0c',
        'n' => '\n',
        'r' => '\r',
        't' => '\t',
        'v' => '\x0b',
        's' => ' ',
        '\\' | '"' | '\'' => c,
        other => {
            out.push('\\');
            other
        }
    };
    out.push(plain);
}

/// `%%` → `%`; other specifiers stay as written.
fn percents(s: &str) -> String {
    s.replace("%%", "%")
}

/// `$$` → `$` (a command line's escape for a literal dollar).
fn dollars(s: &str) -> String {
    s.replace("$$", "$")
}

/// The file of an output directive that names one.
fn output_file(value: &str) -> Option<String> {
    ["append:", "file:", "truncate:"]
        .iter()
        .find_map(|p| value.strip_prefix(p))
        .map(percents)
}

fn boolean(value: &str) -> bool {
    matches!(
        value.to_ascii_lowercase().as_str(),
        "1" | "yes" | "y" | "true" | "t" | "on"
    )
}

fn boolean_no(value: &str) -> bool {
    matches!(
        value.to_ascii_lowercase().as_str(),
        "0" | "no" | "n" | "false" | "f" | "off"
    )
}

/// A systemd time span (`1500ms`, `30s`, `1min 30s`, `2.5s`; a bare number is seconds).
fn time_span(value: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = value.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_end);
        let tail = tail.trim_start();
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.' || c.is_whitespace())
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_end);
        let nanos_per: u128 = match unit {
            "" | "s" | "sec" | "second" | "seconds" => 1_000_000_000,
            "ms" | "msec" => 1_000_000,
            "us" | "usec" | "µs" => 1_000,
            "ns" | "nsec" => 1,
            "m" | "min" | "minute" | "minutes" => 60_000_000_000,
            "h" | "hr" | "hour" | "hours" => 3_600_000_000_000,
            "d" | "day" | "days" => 86_400_000_000_000,
            "w" | "week" | "weeks" => 604_800_000_000_000,
            _ => return None,
        };
        let (whole, frac) = num.split_once('.').unwrap_or((num, ""));
        if whole.is_empty() && frac.is_empty() {
            return None;
        }
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().ok()?
        };
        let mut nanos = whole.checked_mul(nanos_per)?;
        let mut scale = nanos_per;
        for digit in frac.chars() {
            scale /= 10;
            nanos += u128::from(digit.to_digit(10)?) * scale;
        }
        total = total.checked_add(Duration::from_nanos(u64::try_from(nanos).ok()?))?;
        rest = tail.trim_start();
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::systemd::unit::{render_unit, ManagerKind, ServiceAccount};
    use process_manager::looks_like_secret;
    use proptest::prelude::*;

    fn label() -> impl Strategy<Value = ServiceLabel> {
        "[a-z][a-z0-9._-]{0,30}".prop_map(|s| ServiceLabel::new(s).unwrap())
    }

    /// Absolute paths the generator accepts (no control characters, no trailing blank or
    /// backslash), with the characters it escapes.
    fn path() -> impl Strategy<Value = String> {
        "(/[a-zA-Z0-9._%-][a-zA-Z0-9 ._%$\\\\-]{0,10}[a-zA-Z0-9._%-]){1,3}"
    }

    fn restart() -> impl Strategy<Value = RestartPolicy> {
        prop_oneof![
            Just(RestartPolicy::Always),
            Just(RestartPolicy::OnFailure),
            Just(RestartPolicy::Never),
        ]
    }

    fn account() -> impl Strategy<Value = (String, Option<String>)> {
        (
            "[a-z_][a-z0-9_-]{0,12}",
            prop::option::of("[a-z_][a-z0-9_-]{0,12}"),
        )
    }

    prop_compose! {
        /// Every config the generator writes in full: a system service that names its account
        /// (or root, allowed), or a user service.
        fn config()(
            label in label(),
            program in "(/[a-zA-Z0-9 ._%\\\\\"'-]{1,12}){1,4}",
            args in prop::collection::vec(any::<String>(), 0..5),
            env in prop::collection::btree_map(
                "[A-Z_][A-Z0-9_]{0,8}".prop_filter("not a secret's name", |k| !looks_like_secret(k)),
                any::<String>(),
                0..4,
            ),
            account in prop::option::of(account()),
            working_dir in prop::option::of(path()),
            stdout_path in prop::option::of(path()),
            stderr_path in prop::option::of(path()),
            run_at_load in any::<bool>(),
            restart in restart(),
            delay in prop::option::of(0u64..10_000_000),
            start_limit in prop::option::of((0u64..10_000_000, 1u32..1000)),
            hardening in any::<bool>(),
            user_manager in prop::option::of(1u32..100_000),
        ) -> ServiceConfig {
            let mut c = ServiceConfig::new(label, program).with_args(
                args.into_iter().map(|a| a.replace('\0', "")),
            );
            c.env = env.into_iter().map(|(k, v)| (k, v.replace('\0', ""))).collect();
            match (user_manager, account) {
                (Some(uid), _) => c.scope = ServiceScope::User { uid },
                (None, Some((user, group))) => {
                    c.allow_root = user == "root";
                    c.user = Some(user);
                    c.group = group;
                }
                (None, None) => {
                    c.user = Some("root".into());
                    c.allow_root = true;
                }
            }
            c.working_dir = working_dir.map(Into::into);
            c.stdout_path = stdout_path.map(Into::into);
            c.stderr_path = stderr_path.map(Into::into);
            c.run_at_load = run_at_load;
            c.restart = restart;
            c.restart_delay = delay.map(Duration::from_millis);
            c.start_limit = start_limit.map(|(ms, burst)| StartLimit {
                interval: Duration::from_millis(ms),
                burst,
            });
            c.hardening = hardening;
            c
        }
    }

    fn kind(c: &ServiceConfig) -> ManagerKind {
        match c.scope {
            ServiceScope::System => ManagerKind::System,
            _ => ManagerKind::User,
        }
    }

    proptest! {
        #[test]
        fn written_then_read_gives_the_same_config(c in config()) {
            let text = render_unit(&c, kind(&c), None).unwrap();
            let read = parse_unit(c.label.as_str(), &text);
            prop_assert_eq!(read.to_config(c.scope).unwrap(), c, "{}", text);
        }
    }

    #[test]
    fn the_default_account_is_read_as_written() {
        let c = ServiceConfig::new(ServiceLabel::new("svc").unwrap(), "/usr/bin/sleep");
        let account = ServiceAccount {
            user: "joelclaw".into(),
            group: Some("staff".into()),
        };
        let read = parse_unit(
            "svc",
            &render_unit(&c, ManagerKind::System, Some(&account)).unwrap(),
        );
        assert_eq!(read.user.as_deref(), Some("joelclaw"));
        assert_eq!(read.group.as_deref(), Some("staff"));
        assert_eq!(read.wanted_by, ["multi-user.target"]);
        assert_eq!(read.protect_system.as_deref(), Some("full"));
    }

    #[test]
    fn hand_written_units() {
        let text = r#"
# a comment with = in it
[Unit]
Description=Hand written
[Service]
ExecStart=-/usr/bin/env 'single quoted' bare\sword "a"b \
    /continued/line
Environment=A=1 "B=two words"
Environment=C=%%x
WorkingDirectory=-/srv/x
StandardOutput=journal
StandardError=file:/var/log/x.err
ReadWritePaths=/var/lib/x -/var/cache/x
Restart=on-abnormal
RestartSec=1min 2.5s
[Install]
WantedBy=multi-user.target
"#;
        let d = parse_unit("x", text);
        assert_eq!(d.description.as_deref(), Some("Hand written"));
        assert_eq!(
            d.exec_start,
            [vec![
                "/usr/bin/env",
                "single quoted",
                "bare word",
                "ab",
                "/continued/line"
            ]]
        );
        assert_eq!(
            d.env
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>(),
            ["A=1", "B=two words", "C=%x"]
        );
        assert_eq!(d.working_dir.as_deref(), Some("/srv/x"));
        assert_eq!(d.stdout_path, None);
        assert_eq!(d.stderr_path.as_deref(), Some("/var/log/x.err"));
        assert_eq!(d.read_write_paths, ["/var/lib/x", "/var/cache/x"]);
        assert_eq!(d.restart_sec, Some(Duration::from_millis(62_500)));
        assert!(d.to_config(ServiceScope::System).is_err(), "on-abnormal");
        // An empty assignment resets the list before it.
        let d = parse_unit("y", "[Service]\nExecStart=/a\nExecStart=\nExecStart=/b c\n");
        assert_eq!(d.exec_start, [vec!["/b", "c"]]);
    }

    #[test]
    fn time_spans() {
        assert_eq!(time_span("1500ms"), Some(Duration::from_millis(1500)));
        assert_eq!(time_span("30"), Some(Duration::from_secs(30)));
        assert_eq!(time_span("1h 1min"), Some(Duration::from_secs(3660)));
        assert_eq!(time_span("0.5s"), Some(Duration::from_millis(500)));
        assert_eq!(time_span("5 parsecs"), None);
        assert_eq!(time_span(""), None);
    }
}
