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

use process_manager::{
    CalendarInterval, Hardening, Relax, RestartPolicy, ServiceConfig, ServiceLabel, ServiceScope,
    StartLimit, Triggers,
};

use super::sandbox::{is_sandbox_directive, PROTECT_SYSTEM_STRICT, SANDBOX};
use super::unit::own_write_paths;
use super::unit_trigger::weekday_number;

/// The characters of a value, with one of look-ahead.
type Chars<'a> = Peekable<StrChars<'a>>;

/// What a unit file says, directive by directive (`None` or empty where it is absent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitDefinition {
    /// The unit's name without `.service`.
    pub label: String,
    /// `Description=`.
    pub description: Option<String>,
    /// `After=` units (in `[Unit]`).
    pub after: Vec<String>,
    /// `Wants=` units (in `[Unit]`).
    pub wants: Vec<String>,
    /// `Type=`, as written.
    pub service_type: Option<String>,
    /// `ExecStart=` command lines, each unquoted into argv (program first, prefixes such as
    /// `-` or `+` dropped).
    pub exec_start: Vec<Vec<String>>,
    /// `Environment=` assignments.
    pub env: BTreeMap<String, String>,
    /// `EnvironmentFile=` paths, a leading `-` (may be missing) kept.
    pub env_files: Vec<String>,
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
    /// The sandbox directives (`ProtectSystem=`, `ProtectHome=`, `SystemCallFilter=`...) as
    /// written, the last of each.
    pub sandbox: BTreeMap<String, String>,
    /// What the unit's `.timer` and `.path` siblings say (empty when there are none).
    pub triggers: Triggers,
    /// `WantedBy=` targets (in `[Install]`).
    pub wanted_by: Vec<String>,
}

/// Reads the unit at `path`, and the `.timer` and `.path` of the same name beside it when they
/// exist; its label is the file name without `.service`.
pub fn read_unit(path: &Path) -> Result<UnitDefinition, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("unreadable: {e}"))?;
    let label = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let sibling = |ext: &str| -> Result<Option<String>, String> {
        match std::fs::read_to_string(path.with_extension(ext)) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{ext} unit unreadable: {e}")),
        }
    };
    let (timer, watch) = (sibling("timer")?, sibling("path")?);
    Ok(parse_unit(&label, &text).with_trigger_units(timer.as_deref(), watch.as_deref()))
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
            ("Unit", "After") if value.is_empty() => d.after.clear(),
            ("Unit", "After") => d.after.extend(value.split_whitespace().map(str::to_string)),
            ("Unit", "Wants") if value.is_empty() => d.wants.clear(),
            ("Unit", "Wants") => d.wants.extend(value.split_whitespace().map(str::to_string)),
            ("Service", "Type") => d.service_type = Some(value.to_string()),
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
            ("Service", "EnvironmentFile") if value.is_empty() => d.env_files.clear(),
            ("Service", "EnvironmentFile") => d.env_files.push(percents(value)),
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
                words(value)
                    .iter()
                    .map(|p| percents(p.trim_start_matches(['-', '+']))),
            ),
            ("Service", key) if is_sandbox_directive(key) => {
                match key {
                    "NoNewPrivileges" => d.no_new_privileges = boolean(value),
                    "ProtectSystem" => d.protect_system = Some(value.to_string()),
                    "PrivateTmp" => d.private_tmp = boolean(value),
                    _ => {}
                }
                d.sandbox.insert(key.to_string(), value.to_string());
            }
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

/// Reads a job's `.timer` and `.path` texts into its triggers (what it cannot read is left out).
fn parse_triggers(timer: Option<&str>, watch: Option<&str>) -> Triggers {
    let mut t = Triggers::default();
    for line in timer.map(logical_lines).unwrap_or_default() {
        match line.split_once('=').map(|(k, v)| (k.trim(), v.trim())) {
            Some(("OnUnitActiveSec", v)) => t.interval = time_span(v),
            Some(("OnCalendar", "")) => t.calendar.clear(),
            Some(("OnCalendar", v)) => t.calendar.extend(calendar(v)),
            _ => {}
        }
    }
    for line in watch.map(logical_lines).unwrap_or_default() {
        match line.split_once('=').map(|(k, v)| (k.trim(), v.trim())) {
            Some(("PathModified" | "PathChanged" | "PathExists", v)) if !v.is_empty() => {
                t.watch_paths.push(percents(v).into())
            }
            _ => {}
        }
    }
    t
}

/// An `OnCalendar=` expression of the shape the writer gives (`[Weekday] *-MM-DD HH:MM:00`,
/// `*` for any); `None` for any other.
fn calendar(value: &str) -> Option<CalendarInterval> {
    let parts: Vec<&str> = value.split_whitespace().collect();
    let (weekday, date, time) = match parts.as_slice() {
        [w, d, t] => (Some(weekday_number(w)?), *d, *t),
        [d, t] => (None, *d, *t),
        _ => return None,
    };
    let field = |f: &str| -> Option<Option<u8>> {
        if f == "*" {
            Some(None)
        } else {
            f.parse().ok().map(Some)
        }
    };
    let [year, month, day] = date.split('-').collect::<Vec<_>>()[..] else {
        return None;
    };
    let [hour, minute, second] = time.split(':').collect::<Vec<_>>()[..] else {
        return None;
    };
    if year != "*" || second != "00" {
        return None;
    }
    Some(CalendarInterval {
        minute: field(minute)?,
        hour: field(hour)?,
        day: field(day)?,
        weekday,
        month: field(month)?,
    })
}

impl UnitDefinition {
    /// This definition with the triggers its `.timer` and `.path` texts give.
    pub fn with_trigger_units(mut self, timer: Option<&str>, watch: Option<&str>) -> Self {
        self.triggers = parse_triggers(timer, watch);
        self
    }

    /// The hardening the sandbox directives describe: on when `ProtectSystem=` is; in the
    /// system manager, each relax key whose directives are not all there as the writer puts
    /// them is relaxed (`write-paths` when `ProtectSystem=` is not `strict`). A user manager's
    /// units have one fixed baseline and no relax keys.
    fn hardening(&self, scope: ServiceScope) -> Hardening {
        let enabled = self
            .protect_system
            .as_deref()
            .is_some_and(|p| !boolean_no(p));
        if !enabled || scope != ServiceScope::System {
            return enabled.into();
        }
        let mut relax: Vec<Relax> = SANDBOX
            .iter()
            .filter(|(_, directives)| {
                !directives
                    .iter()
                    .all(|(n, v)| self.sandbox.get(*n).map(String::as_str) == Some(*v))
            })
            .map(|(key, _)| *key)
            .collect();
        if self.protect_system.as_deref() != Some(PROTECT_SYSTEM_STRICT) {
            relax.push(Relax::WritePaths);
        }
        Hardening::relaxed(relax)
    }

    /// The definition as a [`ServiceConfig`] in `scope` (system or a user's manager: the unit's
    /// folder decides, not the unit). Absent directives take systemd's defaults (`Restart=no`,
    /// not enabled); `hardening` is read from the sandbox directives; `ReadWritePaths=` beyond
    /// the folders a strict sandbox opens on its own are `write_paths`; `After=` services are
    /// `after`; `User=root` reads as `allow_root`.
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
        c.env_files = self.env_files.iter().map(Into::into).collect();
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
        c.hardening = self.hardening(scope);
        let mut writable: &[String] = &self.read_write_paths;
        if scope == ServiceScope::System && c.hardening.applies(Relax::WritePaths) {
            let own = own_write_paths(
                c.working_dir.as_deref(),
                c.stdout_path.as_deref(),
                c.stderr_path.as_deref(),
            );
            let starts_with_own = own.len() <= writable.len()
                && own
                    .iter()
                    .zip(writable)
                    .all(|(o, w)| o.as_os_str() == w.as_str());
            if starts_with_own {
                writable = &writable[own.len()..];
            }
        }
        c.write_paths = writable.iter().map(Into::into).collect();
        c.after = self
            .after
            .iter()
            .filter_map(|u| u.strip_suffix(".service"))
            .filter_map(|l| ServiceLabel::new(l).ok())
            .collect();
        c.triggers = self.triggers.clone();
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
    // systemd keeps time spans in whole microseconds and drops finer digits.
    Some(Duration::from_micros(
        u64::try_from(total.as_micros()).ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::systemd::unit::{render_unit, ManagerKind, ServiceAccount};
    use crate::systemd::unit_trigger::{render_path, render_timer};
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

    fn relax() -> impl Strategy<Value = std::collections::BTreeSet<Relax>> {
        prop::collection::btree_set(prop::sample::select(Relax::ALL.to_vec()), 0..6)
    }

    fn calendar() -> impl Strategy<Value = CalendarInterval> {
        (
            prop::option::of(0u8..60),
            prop::option::of(0u8..24),
            prop::option::of(1u8..32),
            prop::option::of(0u8..7),
            prop::option::of(1u8..13),
        )
            .prop_map(|(minute, hour, day, weekday, month)| CalendarInterval {
                minute,
                hour,
                // launchd and systemd disagree on both together; the config refuses them.
                day: if weekday.is_some() { None } else { day },
                weekday,
                month,
            })
    }

    fn triggers() -> impl Strategy<Value = Triggers> {
        (
            prop::option::of(1u64..100_000),
            prop::collection::vec(calendar(), 0..3),
            prop::collection::vec(path(), 0..3),
        )
            .prop_map(|(interval, calendar, watch)| Triggers {
                interval: interval.map(Duration::from_secs),
                calendar,
                watch_paths: watch.into_iter().map(Into::into).collect(),
            })
    }

    prop_compose! {
        /// Every config the generator writes in full: a system service that names its account
        /// (or root, allowed), or a user service; a daemon or a job.
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
            relax in relax(),
            write_paths in prop::collection::vec(path(), 0..3),
            after in prop::collection::vec(label(), 0..3),
            triggers in triggers(),
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
            c.hardening = match (hardening, user_manager) {
                // A user manager's units take no relax keys.
                (true, None) => Hardening::relaxed(relax),
                (on, _) => on.into(),
            };
            c.write_paths = write_paths.into_iter().map(Into::into).collect();
            c.after = after.into_iter().filter(|l| *l != c.label).collect();
            c.triggers = triggers;
            if c.is_job() && c.restart == RestartPolicy::Always {
                c.restart = RestartPolicy::Never;
            }
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
            let timer = render_timer(&c).unwrap();
            let watch = render_path(&c).unwrap();
            let read = parse_unit(c.label.as_str(), &text)
                .with_trigger_units(timer.as_deref(), watch.as_deref());
            prop_assert_eq!(
                read.to_config(c.scope).unwrap(),
                c,
                "{}\n{:?}\n{:?}",
                text,
                timer,
                watch
            );
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
        assert_eq!(read.protect_system.as_deref(), Some("strict"));
        assert_eq!(
            read.to_config(ServiceScope::System).unwrap().hardening,
            Hardening::on()
        );
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
    fn read_unit_reads_the_timer_and_path_units_beside_it() {
        let mut c = ServiceConfig::new(ServiceLabel::new("janitor").unwrap(), "/usr/bin/true");
        c.user = Some("joelclaw".into());
        c.restart = RestartPolicy::Never;
        c.triggers = Triggers {
            interval: Some(Duration::from_secs(600)),
            calendar: vec![CalendarInterval {
                weekday: Some(0),
                hour: Some(4),
                minute: Some(5),
                ..CalendarInterval::default()
            }],
            watch_paths: vec!["/var/lib/joelclaw/inbox".into()],
        };
        let dir = tempfile::tempdir().unwrap();
        let unit = dir.path().join("janitor.service");
        std::fs::write(&unit, render_unit(&c, ManagerKind::System, None).unwrap()).unwrap();
        let timer = render_timer(&c).unwrap().unwrap();
        std::fs::write(dir.path().join("janitor.timer"), timer).unwrap();
        let watch = render_path(&c).unwrap().unwrap();
        std::fs::write(dir.path().join("janitor.path"), watch).unwrap();
        let read = read_unit(&unit).unwrap();
        assert_eq!(read.service_type.as_deref(), Some("oneshot"));
        assert_eq!(read.to_config(ServiceScope::System).unwrap(), c);
        // Without its trigger units it reads as the service alone.
        std::fs::remove_file(dir.path().join("janitor.timer")).unwrap();
        std::fs::remove_file(dir.path().join("janitor.path")).unwrap();
        assert!(read_unit(&unit).unwrap().triggers.is_empty());
    }

    #[test]
    fn hand_written_sandboxes_read_as_relax_keys() {
        let text = "[Service]\nExecStart=/bin/x\nNoNewPrivileges=yes\nProtectSystem=full\nPrivateTmp=yes\n";
        let h = parse_unit("x", text).hardening(ServiceScope::System);
        assert!(h.enabled);
        assert!(!h.relax.contains(&Relax::Tmp), "{h:?}");
        for key in [
            Relax::WritePaths,
            Relax::Home,
            Relax::Privileges,
            Relax::Syscalls,
        ] {
            assert!(h.relax.contains(&key), "{key}: {h:?}");
        }
        let off = parse_unit("x", "[Service]\nExecStart=/bin/x\nProtectSystem=no\n");
        assert_eq!(off.hardening(ServiceScope::System), Hardening::off());
    }

    #[test]
    fn time_spans() {
        assert_eq!(time_span("1500ms"), Some(Duration::from_millis(1500)));
        assert_eq!(time_span("30"), Some(Duration::from_secs(30)));
        assert_eq!(time_span("1h 1min"), Some(Duration::from_secs(3660)));
        assert_eq!(time_span("0.5s"), Some(Duration::from_millis(500)));
        assert_eq!(time_span("5 parsecs"), None);
        // Finer than systemd's microsecond is dropped, as systemd does.
        assert_eq!(time_span("0.000007015s"), Some(Duration::from_micros(7)));
        assert_eq!(time_span(""), None);
    }
}
