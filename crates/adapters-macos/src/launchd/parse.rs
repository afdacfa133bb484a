//! Parsers for what `launchctl` prints: pure functions over text, tested on real captured output
//! (`tests/fixtures/launchd/`).
//!
//! `launchctl print` is meant for people, not programs: a block of `key = value` lines with
//! nested blocks (`resource coalition = { ... state = active ... }`) whose keys repeat the
//! top-level ones. Only depth-1 lines are read, so a nested `state = active` never becomes the
//! job's state.

use std::collections::BTreeMap;

use process_manager::ExitStatus;

/// `launchctl print <domain>/<label>`, top level only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrintInfo {
    /// The first line's target, e.g. `gui/501/com.example.agent`.
    pub target: String,
    /// `state = ...` (`running`, `not running`, `spawn scheduled`, `waiting`, ...).
    pub state: Option<String>,
    /// `pid = ...`, present while a process runs.
    pub pid: Option<u32>,
    /// `last exit code = ...`.
    pub last_exit_code: Option<LastExitCode>,
    /// What launchd wrote after the number on the `last exit code` line: a sysexits name
    /// (`EX_CONFIG`) or a signal's description (`Killed: 9`).
    pub last_exit_description: Option<String>,
    /// `last exit reason = ...`: why launchd (not the program) ended or refused the last run,
    /// e.g. `OS_REASON_CODESIGNING`, `OS_REASON_DYLD`, `JETSAM_REASON_MEMORY_IDLE_EXIT`.
    pub last_exit_reason: Option<String>,
    /// `last terminating signal = Terminated: 15` -> 15.
    pub last_signal: Option<i32>,
    /// `runs = ...`: how many times launchd started it.
    pub runs: Option<u64>,
    /// `path = ...`: the plist it was loaded from.
    pub path: Option<String>,
    /// `type = LaunchDaemon | LaunchAgent`.
    pub job_type: Option<String>,
    /// `domain = ...` (e.g. `gui/501 [100020]`, `system`).
    pub domain: Option<String>,
    /// `username = ...`, for a daemon with `UserName`.
    pub username: Option<String>,
    /// `run interval = 900 seconds`: a `StartInterval` job's period.
    pub run_interval: Option<u64>,
    /// The `stream` of each entry of the `event triggers` block: launchd's form of
    /// `StartCalendarInterval` (`com.apple.launchd.calendarinterval`) and `WatchPaths`
    /// (`com.apple.fsevents.matching`), among others.
    pub event_streams: Vec<String>,
}

/// The `last exit code` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastExitCode {
    /// `(never exited)`: loaded but never ran to an end.
    NeverExited,
    /// A number, possibly followed by its sysexits name (`78: EX_CONFIG`).
    Code(i32),
    /// A number whose description names a signal (`9: Killed: 9`): the process did not exit,
    /// it was killed.
    Signal(i32),
}

impl PrintInfo {
    /// Whether launchd starts the job on a trigger of its own (a period or an event) while it
    /// is loaded.
    pub fn has_trigger(&self) -> bool {
        self.run_interval.is_some() || !self.event_streams.is_empty()
    }

    /// How the last process ended: a terminating signal if launchd reports one, else the code.
    pub fn last_exit(&self) -> Option<ExitStatus> {
        if let Some(sig) = self.last_signal {
            return Some(ExitStatus::Signal(sig));
        }
        match self.last_exit_code {
            Some(LastExitCode::Code(c)) => Some(ExitStatus::Code(c)),
            Some(LastExitCode::Signal(s)) => Some(ExitStatus::Signal(s)),
            _ => None,
        }
    }
}

/// Parses `launchctl print <service-target>` output.
pub fn parse_print(text: &str) -> Result<PrintInfo, String> {
    let mut lines = text.lines().skip_while(|l| l.trim().is_empty());
    let first = lines
        .next()
        .ok_or_else(|| "empty `launchctl print` output".to_string())?;
    let target = first
        .trim()
        .strip_suffix('{')
        .and_then(|s| s.trim_end().strip_suffix('='))
        .map(|s| s.trim().to_string())
        .ok_or_else(|| {
            format!("`launchctl print` output starts with {first:?}, not `<target> = {{`")
        })?;
    let mut info = PrintInfo {
        target,
        ..PrintInfo::default()
    };
    // Depth 1 is the service's own block; nested blocks go deeper.
    let mut depth: usize = 1;
    // The depth-1 block being read (`event triggers`), while depth > 1.
    let mut section: Option<&str> = None;
    for line in lines {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        let opens = trimmed.ends_with('{') || trimmed.ends_with('[');
        // `0 = \t\t\t\t]` (an empty cdhash array) holds a value and a close on one line, while
        // `domain = gui/501 [100020]` ends in `]` and closes nothing.
        let closes = !opens
            && (trimmed.starts_with('}')
                || trimmed.starts_with(']')
                || (trimmed.ends_with(']') && !trimmed.contains('[')));
        if depth == 1 && !closes {
            if let Some((key, value)) = trimmed.split_once(" = ") {
                let (key, value) = (key.trim(), value.trim());
                if opens {
                    section = Some(key);
                } else {
                    apply_print_field(&mut info, key, value)?;
                }
            }
        }
        // `event triggers = { <name> => { stream = ... } }`: the stream is at depth 3.
        if depth == 3 && section == Some("event triggers") && !opens && !closes {
            if let Some(("stream", value)) = trimmed.split_once(" = ").map(|(k, v)| (k.trim(), v)) {
                info.event_streams.push(value.trim().to_string());
            }
        }
        if opens {
            depth += 1;
        } else if closes {
            depth = depth.saturating_sub(1);
            if depth == 0 {
                break;
            }
            if depth == 1 {
                section = None;
            }
        }
    }
    Ok(info)
}

fn apply_print_field(info: &mut PrintInfo, key: &str, value: &str) -> Result<(), String> {
    let number = |what: &str| -> Result<u64, String> {
        value
            .parse::<u64>()
            .map_err(|_| format!("`{what} = {value}` is not a number"))
    };
    match key {
        "state" => info.state = Some(value.to_string()),
        "pid" => {
            info.pid = Some(
                u32::try_from(number("pid")?).map_err(|_| format!("pid {value} out of range"))?,
            )
        }
        "runs" => info.runs = Some(number("runs")?),
        "last exit code" => {
            let (code, description) = parse_last_exit_code(value)?;
            info.last_exit_code = Some(code);
            info.last_exit_description = description;
        }
        "last exit reason" => info.last_exit_reason = Some(value.to_string()),
        "last terminating signal" => {
            // `Terminated: 15`, `Killed: 9`.
            let n = value.rsplit(':').next().unwrap_or(value).trim();
            info.last_signal = Some(
                n.parse()
                    .map_err(|_| format!("`last terminating signal = {value}` has no number"))?,
            );
        }
        "path" => info.path = Some(value.to_string()),
        "type" => info.job_type = Some(value.to_string()),
        "domain" => info.domain = Some(value.to_string()),
        "username" => info.username = Some(value.to_string()),
        "run interval" => {
            let secs = value.strip_suffix(" seconds").unwrap_or(value).trim();
            info.run_interval = Some(
                secs.parse()
                    .map_err(|_| format!("`run interval = {value}` is not a number of seconds"))?,
            );
        }
        _ => {}
    }
    Ok(())
}

/// The `last exit code` value and the description after its number, if any.
fn parse_last_exit_code(value: &str) -> Result<(LastExitCode, Option<String>), String> {
    if value == "(never exited)" {
        return Ok((LastExitCode::NeverExited, None));
    }
    // `78: EX_CONFIG`, `9: Killed: 9`, `0`.
    let (number, description) = match value.split_once(':') {
        Some((n, d)) => (n.trim(), Some(d.trim()).filter(|d| !d.is_empty())),
        None => (value.trim(), None),
    };
    let code: i32 = number
        .parse()
        .map_err(|_| format!("`last exit code = {value}` is not understood"))?;
    let exit = match description.and_then(signal_in_description) {
        // The description's own number when it gives one, else launchd's.
        Some(signal) => LastExitCode::Signal(signal.unwrap_or(code)),
        None => LastExitCode::Code(code),
    };
    Ok((exit, description.map(str::to_string)))
}

/// Darwin's `strsignal` texts for signals 1-31, which launchd prints as `<text>: <n>`.
const DARWIN_SIGNAL_NAMES: [&str; 31] = [
    "Hangup",
    "Interrupt",
    "Quit",
    "Illegal instruction",
    "Trace/BPT trap",
    "Abort trap",
    "EMT trap",
    "Floating point exception",
    "Killed",
    "Bus error",
    "Segmentation fault",
    "Bad system call",
    "Broken pipe",
    "Alarm clock",
    "Terminated",
    "Urgent I/O condition",
    "Suspended (signal)",
    "Suspended",
    "Continued",
    "Child exited",
    "Stopped (tty input)",
    "Stopped (tty output)",
    "I/O possible",
    "Cputime limit exceeded",
    "Filesize limit exceeded",
    "Virtual timer expired",
    "Profiling timer expired",
    "Window size changes",
    "Information request",
    "User defined signal 1",
    "User defined signal 2",
];

/// `Some(number)` when `description` is a signal's (`Killed: 9` -> `Some(Some(9))`, `Killed` ->
/// `Some(None)`); `None` for anything else (`EX_CONFIG`).
fn signal_in_description(description: &str) -> Option<Option<i32>> {
    let (name, number) = match description.rsplit_once(':') {
        Some((name, n)) => match n.trim().parse::<i32>() {
            Ok(n) => (name.trim(), Some(n)),
            Err(_) => (description, None),
        },
        None => (description, None),
    };
    let known = DARWIN_SIGNAL_NAMES.contains(&name)
        || (name == "Unknown signal" && number.is_some_and(|n| n > 0));
    known.then_some(number)
}

/// One row of the `launchctl list` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListRow {
    /// The pid, `None` for `-` (not running).
    pub pid: Option<u32>,
    /// The last exit status: a code, or a negative signal number (`-9` = SIGKILL).
    pub status: Option<i32>,
    /// The job's label.
    pub label: String,
}

/// Parses the `launchctl list` table (`PID\tStatus\tLabel`, `-` for no pid).
pub fn parse_list_table(text: &str) -> Result<Vec<ListRow>, String> {
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with("PID\t") {
            continue;
        }
        let mut fields = line.splitn(3, '\t');
        let (Some(pid), Some(status), Some(label)) = (fields.next(), fields.next(), fields.next())
        else {
            return Err(format!(
                "`launchctl list` line {} is not PID<TAB>Status<TAB>Label: {line:?}",
                n + 1
            ));
        };
        let dash_or = |s: &str, what: &str| -> Result<Option<i64>, String> {
            if s == "-" {
                Ok(None)
            } else {
                s.parse()
                    .map(Some)
                    .map_err(|_| format!("`launchctl list` line {}: bad {what} {s:?}", n + 1))
            }
        };
        rows.push(ListRow {
            pid: dash_or(pid, "pid")?
                .map(|p| u32::try_from(p).map_err(|_| format!("pid {p} out of range")))
                .transpose()?,
            status: dash_or(status, "status")?
                .map(|s| i32::try_from(s).map_err(|_| format!("status {s} out of range")))
                .transpose()?,
            label: label.trim_end().to_string(),
        });
    }
    Ok(rows)
}

impl ListRow {
    /// The status as an exit: negative numbers are signals; `None` for a number that is no
    /// signal (`i32::MIN`).
    pub fn last_exit(&self) -> Option<ExitStatus> {
        match self.status? {
            // `i32::MIN` has no positive counterpart: it names no signal.
            s if s < 0 => s.checked_neg().map(ExitStatus::Signal),
            s => Some(ExitStatus::Code(s)),
        }
    }
}

/// `launchctl list <label>`: the dict form.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListDict {
    /// `"Label"`.
    pub label: String,
    /// `"PID"`, absent when not running.
    pub pid: Option<u32>,
    /// `"LastExitStatus"`, a raw wait status (`19968` = exit 78).
    pub last_exit_status: Option<i64>,
    /// `"OnDemand"`.
    pub on_demand: Option<bool>,
    /// `"Program"`.
    pub program: Option<String>,
    /// Every top-level scalar `"Key" = value;` as given, quotes removed.
    pub fields: BTreeMap<String, String>,
}

impl ListDict {
    /// The last exit decoded from the wait status.
    pub fn last_exit(&self) -> Option<ExitStatus> {
        self.last_exit_status.map(decode_wait_status)
    }
}

/// Decodes a raw wait status (`LastExitStatus`): low 7 bits a signal, else the code in bits 8-15.
pub fn decode_wait_status(raw: i64) -> ExitStatus {
    let signal = (raw & 0x7f) as i32;
    if signal != 0 {
        ExitStatus::Signal(signal)
    } else {
        ExitStatus::Code(((raw >> 8) & 0xff) as i32)
    }
}

/// Parses `launchctl list <label>` (`{`, tab-indented `"Key" = value;` lines, `};`).
pub fn parse_list_dict(text: &str) -> Result<ListDict, String> {
    let mut depth = 0usize;
    let mut dict = ListDict::default();
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        if t == "{" {
            depth += 1;
            continue;
        }
        if t.starts_with(')') || t.starts_with('}') {
            depth = depth.saturating_sub(1);
            continue;
        }
        if t.ends_with('(') || t.ends_with('{') {
            depth += 1;
            continue;
        }
        if depth != 1 {
            continue;
        }
        let Some((key, value)) = t.split_once(" = ") else {
            continue;
        };
        let key = key.trim().trim_matches('"').to_string();
        let value = value.trim().trim_end_matches(';').trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value)
            .to_string();
        dict.fields.insert(key, value);
    }
    if depth == 0 && dict.fields.is_empty() {
        return Err("`launchctl list <label>` output has no `{ ... }` block".into());
    }
    let get = |k: &str| dict.fields.get(k).cloned();
    dict.label = get("Label").ok_or("`launchctl list <label>` output has no \"Label\"")?;
    dict.pid = get("PID")
        .map(|p| p.parse().map_err(|_| format!("bad \"PID\" {p:?}")))
        .transpose()?;
    dict.last_exit_status = get("LastExitStatus")
        .map(|s| {
            s.parse()
                .map_err(|_| format!("bad \"LastExitStatus\" {s:?}"))
        })
        .transpose()?;
    dict.on_demand = get("OnDemand")
        .map(|b| match b.as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(format!("bad \"OnDemand\" {b:?}")),
        })
        .transpose()?;
    dict.program = get("Program");
    Ok(dict)
}

/// Parses `launchctl print-disabled <domain>`: label -> `true` when disabled. Accepts both
/// dialects: `=> disabled` / `=> enabled` (newer) and `=> true` / `=> false` (older, where
/// `true` means disabled).
pub fn parse_print_disabled(text: &str) -> Result<BTreeMap<String, bool>, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let t = line.trim();
        let Some((label, value)) = t.split_once("=>") else {
            continue;
        };
        let label = label.trim().trim_matches('"').to_string();
        let disabled = match value.trim() {
            "disabled" | "true" => true,
            "enabled" | "false" => false,
            other => {
                return Err(format!(
                    "print-disabled: {label:?} => {other:?} not understood"
                ))
            }
        };
        out.insert(label, disabled);
    }
    Ok(out)
}

/// What a failed `launchctl` call meant, from its exit code and stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// 113 / `Could not find service`: not loaded in that domain.
    NotFound,
    /// 3 / `No such process`: bootout of something not loaded.
    NoSuchProcess,
    /// 5 / `Input/output error`: bootstrap of something already loaded (or disabled, or a bad
    /// plist: launchd does not say which).
    InputOutput,
    /// 37 / `Operation already in progress`: still being torn down; transient.
    AlreadyInProgress,
    /// 125 / `Domain does not support specified action`: no GUI session for `gui/<uid>`.
    DomainUnsupported,
    /// 1 / `Operation not permitted`, `Not privileged`: the `system` domain without root.
    NotPermitted,
    /// 119 / `Service is disabled`.
    ServiceDisabled,
    /// Anything else.
    Other,
}

pub(crate) fn classify(code: Option<i32>, stderr: &str) -> Failure {
    let has = |s: &str| stderr.contains(s);
    match code {
        Some(113) => return Failure::NotFound,
        Some(3) if has("No such process") || has("Boot-out failed") => {
            return Failure::NoSuchProcess
        }
        Some(5) => return Failure::InputOutput,
        Some(37) => return Failure::AlreadyInProgress,
        Some(125) => return Failure::DomainUnsupported,
        Some(119) => return Failure::ServiceDisabled,
        _ => {}
    }
    if has("Could not find service") {
        Failure::NotFound
    } else if has("No such process") {
        Failure::NoSuchProcess
    } else if has("Operation not permitted") || has("Not privileged") || has("Permission denied") {
        Failure::NotPermitted
    } else if has("Input/output error") {
        Failure::InputOutput
    } else if has("Operation already in progress") {
        Failure::AlreadyInProgress
    } else if has("Domain does not support specified action") {
        Failure::DomainUnsupported
    } else if has("Service is disabled") {
        Failure::ServiceDisabled
    } else {
        Failure::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = format!(
            "{}/tests/fixtures/launchd/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
    }

    struct PrintCase {
        file: &'static str,
        target: &'static str,
        state: &'static str,
        pid: Option<u32>,
        last_exit_code: LastExitCode,
        runs: u64,
        job_type: Option<&'static str>,
        domain: Option<&'static str>,
    }

    #[test]
    fn print_fixtures_exact() {
        use LastExitCode::*;
        let cases = [
            PrintCase {
                file: "print-01.txt",
                target: "gui/501/com.sglavoie.forgejo-sync",
                state: "not running",
                pid: None,
                last_exit_code: Code(0),
                runs: 18,
                job_type: Some("LaunchAgent"),
                domain: Some("gui/501 [100020]"),
            },
            PrintCase {
                file: "print-02.txt",
                target: "gui/501/com.sglavoie.brainnotes-vault-guard",
                state: "running",
                pid: Some(1082),
                last_exit_code: NeverExited,
                runs: 1,
                job_type: Some("LaunchAgent"),
                domain: Some("gui/501 [100020]"),
            },
            PrintCase {
                file: "print-03.txt",
                target: "gui/501/com.sglavoie.ddc-brightnessd",
                state: "running",
                pid: Some(1076),
                last_exit_code: NeverExited,
                runs: 1,
                job_type: Some("LaunchAgent"),
                domain: Some("gui/501 [100020]"),
            },
            PrintCase {
                file: "print-05.txt",
                target: "gui/501/com.sglavoie.brew-maintain",
                state: "not running",
                pid: None,
                last_exit_code: NeverExited,
                runs: 0,
                job_type: Some("LaunchAgent"),
                domain: Some("gui/501 [100020]"),
            },
            PrintCase {
                file: "print-06.txt",
                target: "gui/501/com.motherboard.disaster.backup",
                state: "not running",
                pid: None,
                last_exit_code: Code(1),
                runs: 4,
                job_type: Some("LaunchAgent"),
                domain: Some("gui/501 [100003]"),
            },
            PrintCase {
                file: "print-07.txt",
                target: "gui/501/com.motherboard.snapshot.retention",
                state: "not running",
                pid: None,
                last_exit_code: Code(0),
                runs: 4,
                job_type: Some("LaunchAgent"),
                domain: Some("gui/501 [100003]"),
            },
            PrintCase {
                file: "print-09.txt",
                target: "gui/501/com.teamwork-leader.auto-resume-daemon",
                state: "spawn scheduled",
                pid: None,
                last_exit_code: Code(1),
                runs: 2,
                job_type: Some("LaunchAgent"),
                domain: Some("gui/501 [100003]"),
            },
            PrintCase {
                file: "print-12.txt",
                target: "system/ai.openclaw.system.gateway",
                state: "running",
                pid: Some(21802),
                last_exit_code: Code(0),
                runs: 10,
                job_type: Some("LaunchDaemon"),
                domain: Some("system"),
            },
            PrintCase {
                file: "print-13.txt",
                target: "gui/501/agenc-cron.04af416d",
                state: "not running",
                pid: None,
                last_exit_code: Code(78),
                runs: 16,
                job_type: None,
                domain: None,
            },
        ];
        for c in cases {
            let info = parse_print(&fixture(c.file)).unwrap_or_else(|e| panic!("{}: {e}", c.file));
            assert_eq!(info.target, c.target, "{}", c.file);
            assert_eq!(info.state.as_deref(), Some(c.state), "{}", c.file);
            assert_eq!(info.pid, c.pid, "{}", c.file);
            assert_eq!(info.last_exit_code, Some(c.last_exit_code), "{}", c.file);
            assert_eq!(info.last_signal, None, "{}", c.file);
            assert_eq!(info.runs, Some(c.runs), "{}", c.file);
            assert_eq!(info.job_type.as_deref(), c.job_type, "{}", c.file);
            assert_eq!(info.domain.as_deref(), c.domain, "{}", c.file);
        }
    }

    #[test]
    fn print_extra_fields() {
        let p12 = parse_print(&fixture("print-12.txt")).unwrap();
        assert_eq!(p12.username.as_deref(), Some("qingchang"));
        assert_eq!(
            p12.path.as_deref(),
            Some("/Library/LaunchDaemons/ai.openclaw.system.gateway.plist")
        );
        assert_eq!(p12.last_exit(), Some(ExitStatus::Code(0)));
        let p13 = parse_print(&fixture("print-13.txt")).unwrap();
        assert_eq!(p13.last_exit(), Some(ExitStatus::Code(78)));
        let p02 = parse_print(&fixture("print-02.txt")).unwrap();
        assert_eq!(p02.last_exit(), None, "(never exited) is no exit");
    }

    #[test]
    fn print_triggers() {
        // StartInterval: a period line; calendar and WatchPaths: an event trigger each.
        let p01 = parse_print(&fixture("print-01.txt")).unwrap();
        assert_eq!(p01.run_interval, Some(900));
        assert!(p01.event_streams.is_empty() && p01.has_trigger());
        let p05 = parse_print(&fixture("print-05.txt")).unwrap();
        assert_eq!(p05.event_streams, ["com.apple.launchd.calendarinterval"]);
        assert_eq!(p05.run_interval, None);
        let p09 = parse_print(&fixture("print-09.txt")).unwrap();
        assert_eq!(p09.event_streams, ["com.apple.fsevents.matching"]);
        // A daemon has none; a `stream` line of another block is not a trigger.
        let p12 = parse_print(&fixture("print-12.txt")).unwrap();
        assert!(!p12.has_trigger());
        let text =
            "system/x = {\n\tevent channels = {\n\t\t\"s\" = {\n\t\t\tstream = s\n\t\t}\n\t}\n}\n";
        assert!(!parse_print(text).unwrap().has_trigger());
    }

    #[test]
    fn nested_state_never_leaks() {
        // Every coalition block says `state = active`; the job's own state is elsewhere.
        for f in ["print-01.txt", "print-05.txt", "print-12.txt"] {
            let info = parse_print(&fixture(f)).unwrap();
            assert_ne!(info.state.as_deref(), Some("active"), "{f}");
        }
        // A nested block first and no top-level state at all: the nested one must not count.
        let text = "system/x = {\n\tresource coalition = {\n\t\tstate = active\n\t\tpid = 7\n\t}\n\truns = 1\n}\n";
        let info = parse_print(text).unwrap();
        assert_eq!(info.state, None);
        assert_eq!(info.pid, None);
        assert_eq!(info.runs, Some(1));
        // A nested block after the top-level state must not overwrite it.
        let text = "system/x = {\n\tstate = not running\n\tjetsam coalition = {\n\t\tstate = active\n\t}\n}\n";
        assert_eq!(
            parse_print(text).unwrap().state.as_deref(),
            Some("not running")
        );
    }

    #[test]
    fn print_signal_and_garbage() {
        let text = "system/x = {\n\tstate = not running\n\tlast exit code = 0\n\tlast terminating signal = Terminated: 15\n}\n";
        let info = parse_print(text).unwrap();
        assert_eq!(info.last_signal, Some(15));
        assert_eq!(info.last_exit(), Some(ExitStatus::Signal(15)));
        assert!(parse_print("").is_err());
        assert!(parse_print("Bad request.\n").is_err());
        assert!(parse_print("system/x = {\n\tpid = banana\n}\n")
            .unwrap_err()
            .contains("pid"));
    }

    #[test]
    fn a_last_exit_code_described_as_a_signal_is_a_signal() {
        let print = |line: &str| {
            parse_print(&format!(
                "gui/501/x = {{\n\tstate = not running\n\t{line}\n}}\n"
            ))
            .unwrap()
        };
        // Real shapes: the description after the number is strsignal's text (`Killed: 9`).
        let killed = print("last exit code = 9: Killed: 9");
        assert_eq!(killed.last_exit_code, Some(LastExitCode::Signal(9)));
        assert_eq!(killed.last_exit(), Some(ExitStatus::Signal(9)));
        assert_eq!(killed.last_exit_description.as_deref(), Some("Killed: 9"));
        let terminated = print("last exit code = 15: Terminated: 15");
        assert_eq!(terminated.last_exit(), Some(ExitStatus::Signal(15)));
        let segv = print("last exit code = 11: Segmentation fault: 11");
        assert_eq!(segv.last_exit(), Some(ExitStatus::Signal(11)));
        // A signal's name without its number still names a signal.
        assert_eq!(
            print("last exit code = 9: Killed").last_exit(),
            Some(ExitStatus::Signal(9))
        );
        // A sysexits name stays an exit code, and its name is kept.
        let config = print("last exit code = 78: EX_CONFIG");
        assert_eq!(config.last_exit(), Some(ExitStatus::Code(78)));
        assert_eq!(config.last_exit_description.as_deref(), Some("EX_CONFIG"));
        let plain = print("last exit code = 9");
        assert_eq!(plain.last_exit(), Some(ExitStatus::Code(9)));
        assert_eq!(plain.last_exit_description, None);
        assert_eq!(
            parse_print(&fixture("print-13.txt"))
                .unwrap()
                .last_exit_description
                .as_deref(),
            Some("EX_CONFIG")
        );
    }

    #[test]
    fn a_last_exit_reason_is_reported() {
        // launchd killed it for its signature before it ran: no exit code line at all.
        let text = "gui/501/x = {\n\tstate = not running\n\truns = 1\n\tlast exit reason = OS_REASON_CODESIGNING\n\tjob state = spawn failed\n}\n";
        let info = parse_print(text).unwrap();
        assert_eq!(
            info.last_exit_reason.as_deref(),
            Some("OS_REASON_CODESIGNING")
        );
        let with_code =
            "gui/501/x = {\n\tlast exit code = 78\n\tlast exit reason = killed by signal: 9\n}\n";
        let info = parse_print(with_code).unwrap();
        assert_eq!(
            info.last_exit_reason.as_deref(),
            Some("killed by signal: 9")
        );
        // A nested `last exit reason` belongs to another block.
        let nested = "gui/501/x = {\n\tsomething = {\n\t\tlast exit reason = OTHER\n\t}\n}\n";
        assert_eq!(parse_print(nested).unwrap().last_exit_reason, None);
        for f in ["print-01.txt", "print-12.txt", "print-13.txt"] {
            assert_eq!(
                parse_print(&fixture(f)).unwrap().last_exit_reason,
                None,
                "{f}"
            );
        }
    }

    #[test]
    fn a_list_status_of_i32_min_is_no_signal() {
        // `-(i32::MIN)` does not fit an i32: no overflow, and no made-up signal.
        let r = row(None, i32::MIN, "x");
        assert_eq!(r.last_exit(), None);
        let table = parse_list_table("-\t-2147483648\tx\n").unwrap();
        assert_eq!(table[0].last_exit(), None);
        // Real negative statuses are still signals.
        assert_eq!(row(None, -9, "x").last_exit(), Some(ExitStatus::Signal(9)));
        assert_eq!(row(None, 1, "x").last_exit(), Some(ExitStatus::Code(1)));
    }

    fn row(pid: Option<u32>, status: i32, label: &str) -> ListRow {
        ListRow {
            pid,
            status: Some(status),
            label: label.into(),
        }
    }

    #[test]
    fn list_tables_exact() {
        let l1 = parse_list_table(&fixture("list-01.txt")).unwrap();
        assert_eq!(l1.len(), 29);
        assert_eq!(l1[0], row(None, 0, "com.apple.SafariHistoryServiceAgent"));
        assert_eq!(l1[1], row(Some(47299), -9, "com.apple.progressd"));
        assert_eq!(l1[4], row(None, -9, "com.apple.MENotificationService"));
        assert_eq!(l1[5], row(Some(612), 0, "com.apple.Finder"));
        assert_eq!(
            l1[28],
            row(None, 0, "com.apple.cmio.LaunchCMIOUserExtensionsAgent")
        );
        assert_eq!(l1[1].last_exit(), Some(ExitStatus::Signal(9)));
        assert_eq!(l1[5].last_exit(), Some(ExitStatus::Code(0)));

        let l2 = parse_list_table(&fixture("list-02.txt")).unwrap();
        assert_eq!(l2.len(), 14);
        assert_eq!(l2[0], row(Some(42561), -15, "com.apple.Finder"));
        assert_eq!(l2[13], row(None, -9, "com.apple.stickersd"));

        let l3 = parse_list_table(&fixture("list-03.txt")).unwrap();
        assert_eq!(l3.len(), 19);
        assert_eq!(
            l3[0],
            row(
                Some(68715),
                0,
                "application.com.tencent.xinWeChat.262172259.262172267"
            )
        );
        assert_eq!(l3[11], row(None, 0, "us.zoom.updater"));
        assert_eq!(l3[14], row(Some(50857), 0, "com.openclaw.xiaohongshu-mcp"));
        assert!(parse_list_table("12 0 spaces-not-tabs\n").is_err());
        assert!(parse_list_table("x\t0\tlabel\n").is_err());
    }

    #[test]
    fn list_dicts_exact() {
        let d4 = parse_list_dict(&fixture("list-04.txt")).unwrap();
        assert_eq!(d4.label, "bluekvm");
        assert_eq!(d4.pid, Some(31317));
        assert_eq!(d4.last_exit_status, Some(0));
        assert_eq!(d4.on_demand, Some(false));
        assert_eq!(d4.program.as_deref(), Some("/usr/local/bin/bluekvm.sh"));
        assert_eq!(
            d4.fields.get("LimitLoadToSessionType").map(String::as_str),
            Some("Aqua")
        );

        let d5 = parse_list_dict(&fixture("list-05.txt")).unwrap();
        assert_eq!(d5.label, "com.taskctl.daemon");
        assert_eq!(d5.pid, Some(85615));
        assert_eq!(d5.last_exit_status, Some(0));
        assert_eq!(d5.on_demand, Some(false));
        assert_eq!(
            d5.fields.get("StandardOutPath").map(String::as_str),
            Some("/Users/gweiher/Library/Logs/taskctl/taskctl-daemon.log")
        );

        let d6 = parse_list_dict(&fixture("list-06.txt")).unwrap();
        assert_eq!(d6.label, "sh.missionctl.diaryctl");
        assert_eq!(d6.pid, None);
        assert_eq!(d6.on_demand, Some(true));
        assert_eq!(d6.last_exit(), Some(ExitStatus::Code(0)));

        let d9 = parse_list_dict(&fixture("list-09.txt")).unwrap();
        assert_eq!(d9.label, "com.cyberwave.usbip");
        assert_eq!(d9.pid, None);
        assert_eq!(d9.last_exit_status, Some(19968));
        assert_eq!(d9.last_exit(), Some(ExitStatus::Code(78)));
        // The nested ProgramArguments array does not leak into the top-level fields.
        assert!(!d9
            .fields
            .contains_key("/Users/x/.cyberwave/usbip_wrapper.sh"));
        assert_eq!(
            d9.program.as_deref(),
            Some("/Users/x/.cyberwave/usbip_wrapper.sh")
        );
        assert_eq!(decode_wait_status(9), ExitStatus::Signal(9));
        assert!(parse_list_dict("nothing here\n").is_err());
    }

    #[test]
    fn print_disabled_exact() {
        let d1 = parse_print_disabled(&fixture("print-disabled-01.txt")).unwrap();
        let expect1: BTreeMap<String, bool> = [
            ("com.adguard.mac.adguard.helper", false),
            ("com.apple.CSCSupportd", true),
            ("com.apple.ftpd", true),
            ("com.openssh.sshd", true),
            (
                "org.pqrs.service.daemon.Karabiner-VirtualHIDDevice-Daemon",
                false,
            ),
            ("homebrew.mxcl.tailscale", false),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(d1, expect1);

        let d3 = parse_print_disabled(&fixture("print-disabled-03.txt")).unwrap();
        assert_eq!(d3.len(), 5);
        assert_eq!(d3.get("com.apple.Siri.agent"), Some(&true));
        assert_eq!(d3.get("com.smine.routine.smine-nightly"), Some(&true));
        assert_eq!(
            d3.get("2BUA8C4S2C.com.1password.browser-helper"),
            Some(&false)
        );
        assert_eq!(d3.get("com.docker.helper"), Some(&false));

        let d4 = parse_print_disabled(&fixture("print-disabled-04.txt")).unwrap();
        assert_eq!(d4.len(), 4);
        assert_eq!(d4.get("com.byliu.egress-guard.daemon"), Some(&true));
        assert_eq!(d4.get("com.feingeist.shimo.helper"), Some(&false));

        // The older dialect: `true` means disabled.
        let old = "disabled services = {\n\t\"com.a\" => true\n\t\"com.b\" => false\n}\n";
        let d = parse_print_disabled(old).unwrap();
        assert_eq!(d.get("com.a"), Some(&true));
        assert_eq!(d.get("com.b"), Some(&false));
        assert!(parse_print_disabled("\t\"x\" => maybe\n").is_err());
    }

    #[test]
    fn errors_classified() {
        let cases = [
            ("error-01.txt", Some(113), Failure::NotFound),
            ("error-02.txt", Some(113), Failure::NotFound),
            ("error-03.txt", Some(113), Failure::NotFound),
            ("error-05.txt", Some(5), Failure::InputOutput),
            ("error-07.txt", Some(3), Failure::NoSuchProcess),
            ("error-08.txt", Some(37), Failure::AlreadyInProgress),
            ("error-09.txt", Some(125), Failure::DomainUnsupported),
        ];
        for (file, code, want) in cases {
            let stderr = fixture(file);
            assert_eq!(classify(code, &stderr), want, "{file} with its exit code");
            // The message alone is enough when the exit code is lost (e.g. error-01's source
            // did not show it).
            assert_eq!(classify(Some(1), &stderr), want, "{file} by message");
        }
        assert_eq!(
            classify(Some(1), "Bootstrap failed: 1: Operation not permitted\n"),
            Failure::NotPermitted
        );
        assert_eq!(classify(Some(2), "something else\n"), Failure::Other);
    }
}
