//! Parsers for systemd's machine-readable output: `systemctl show` (one `Key=value` per line,
//! units separated by a blank line, properties in systemd's own order) and
//! `list-units --output=json`.

use std::collections::BTreeMap;

use process_manager::{ExitStatus, RunState, ServiceLabel, ServiceScope, ServiceStatus};
use serde::Deserialize;

/// The properties `inspect` and `list` ask for.
pub(crate) const SHOW_PROPERTIES: &str = "Id,LoadState,ActiveState,SubState,MainPID,NRestarts,ExecMainCode,ExecMainStatus,Result,UnitFileState,FragmentPath,NeedDaemonReload";

/// Output that does not have the shape systemd gives it.
#[derive(Debug, thiserror::Error)]
#[error("unexpected systemctl output: {0}")]
pub(crate) struct ParseError(pub(crate) String);

/// One unit's `show` block, as raw properties.
pub(crate) type ShowBlock = BTreeMap<String, String>;

/// Splits `systemctl show` output into one block per unit. Values never hold a newline (systemd
/// escapes them), so a blank line always ends a block.
pub(crate) fn parse_show_blocks(text: &str) -> Vec<ShowBlock> {
    let mut blocks = Vec::new();
    let mut current = ShowBlock::new();
    for line in text.lines() {
        if line.is_empty() {
            if !current.is_empty() {
                blocks.push(std::mem::take(&mut current));
            }
            continue;
        }
        // Split at the first `=`: values may hold `=` themselves (ExecStart's `argv[]=...`).
        if let Some((key, value)) = line.split_once('=') {
            current.insert(key.to_string(), value.to_string());
        }
    }
    if !current.is_empty() {
        blocks.push(current);
    }
    blocks
}

/// The properties the adapter uses, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UnitState {
    pub(crate) id: String,
    pub(crate) load_state: String,
    pub(crate) active_state: String,
    pub(crate) sub_state: String,
    pub(crate) main_pid: u32,
    /// `None` where systemd is too old to count (before 235).
    pub(crate) n_restarts: Option<u64>,
    pub(crate) exec_main_code: i32,
    pub(crate) exec_main_status: i32,
    pub(crate) result: String,
    pub(crate) unit_file_state: String,
    pub(crate) fragment_path: String,
    pub(crate) need_daemon_reload: bool,
}

fn number<T: std::str::FromStr>(block: &ShowBlock, key: &str) -> Result<Option<T>, ParseError> {
    match block.get(key).map(String::as_str) {
        None | Some("") | Some("[not set]") => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| ParseError(format!("{key}={v} is not a number"))),
    }
}

impl UnitState {
    pub(crate) fn from_block(block: &ShowBlock) -> Result<Self, ParseError> {
        let text = |key: &str| block.get(key).cloned().unwrap_or_default();
        let id = text("Id");
        if id.is_empty() {
            return Err(ParseError(format!("a block without Id=: {block:?}")));
        }
        Ok(UnitState {
            id,
            load_state: text("LoadState"),
            active_state: text("ActiveState"),
            sub_state: text("SubState"),
            main_pid: number(block, "MainPID")?.unwrap_or(0),
            n_restarts: number(block, "NRestarts")?,
            exec_main_code: number(block, "ExecMainCode")?.unwrap_or(0),
            exec_main_status: number(block, "ExecMainStatus")?.unwrap_or(0),
            result: text("Result"),
            unit_file_state: text("UnitFileState"),
            fragment_path: text("FragmentPath"),
            need_daemon_reload: text("NeedDaemonReload") == "yes",
        })
    }

    /// systemd knows no such unit: no file, nothing running under that name.
    pub(crate) fn is_not_found(&self) -> bool {
        self.load_state == "not-found" && matches!(self.active_state.as_str(), "inactive" | "")
    }

    pub(crate) fn run_state(&self) -> RunState {
        // `auto-restart` is reported under `activating`: systemd itself is bringing it back.
        if self.sub_state == "auto-restart" {
            return RunState::SupervisorRestarting;
        }
        match self.active_state.as_str() {
            // `reloading` still has its process; `active`/`exited` (a oneshot that stays
            // active) is up as far as systemd is concerned.
            "active" | "reloading" => RunState::Running,
            "activating" => RunState::Starting,
            "inactive" | "deactivating" => RunState::Stopped,
            // Any `failed` (start limit hit, or an exit with no restart policy) stays down until
            // someone resets or starts it: the heal loop's cue.
            "failed" => RunState::Failed,
            _ => RunState::Unknown,
        }
    }

    pub(crate) fn last_exit(&self) -> Option<ExitStatus> {
        // ExecMainCode is a `siginfo` si_code: CLD_EXITED=1, CLD_KILLED=2, CLD_DUMPED=3; 0 means
        // the main process has not exited yet.
        match self.exec_main_code {
            1 => Some(ExitStatus::Code(self.exec_main_status)),
            2 | 3 => Some(ExitStatus::Signal(self.exec_main_status)),
            _ => None,
        }
    }

    pub(crate) fn enabled(&self) -> Option<bool> {
        match self.unit_file_state.as_str() {
            "enabled" | "enabled-runtime" | "linked" | "linked-runtime" | "alias" => Some(true),
            "disabled" | "masked" | "masked-runtime" => Some(false),
            // static, indirect, generated, transient: no [Install] rule to speak of.
            _ => None,
        }
    }

    /// Whether `enable` must still switch it on at boot.
    pub(crate) fn needs_enabling(&self) -> bool {
        self.unit_file_state == "disabled"
    }

    pub(crate) fn to_status(&self, label: ServiceLabel, scope: ServiceScope) -> ServiceStatus {
        ServiceStatus {
            label,
            loaded: self.load_state == "loaded",
            state: self.run_state(),
            pid: (self.main_pid > 0).then_some(self.main_pid),
            last_exit: self.last_exit(),
            restart_count: self.n_restarts,
            enabled: self.enabled(),
            scope: Some(scope),
        }
    }
}

/// One row of `list-units --output=json`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct ListedUnit {
    pub(crate) unit: String,
    pub(crate) load: String,
    pub(crate) active: String,
    pub(crate) sub: String,
}

pub(crate) fn parse_list_units(text: &str) -> Result<Vec<ListedUnit>, ParseError> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(text).map_err(|e| ParseError(format!("list-units json: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! fixture {
        ($name:literal) => {
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/systemd/",
                $name
            ))
        };
    }

    fn one(text: &str) -> UnitState {
        let blocks = parse_show_blocks(text);
        assert_eq!(blocks.len(), 1, "{blocks:?}");
        UnitState::from_block(&blocks[0]).unwrap()
    }

    fn label(s: &str) -> ServiceLabel {
        ServiceLabel::new(s).unwrap()
    }

    #[test]
    fn show_252_running() {
        let u = one(fixture!("show-252-running.txt"));
        assert_eq!(
            u,
            UnitState {
                id: "b1.service".into(),
                load_state: "loaded".into(),
                active_state: "active".into(),
                sub_state: "running".into(),
                main_pid: 120531,
                n_restarts: Some(0),
                exec_main_code: 0,
                exec_main_status: 0,
                result: "success".into(),
                unit_file_state: "static".into(),
                fragment_path: String::new(),
                need_daemon_reload: false,
            }
        );
        let st = u.to_status(label("b1"), ServiceScope::System);
        assert_eq!(st.state, RunState::Running);
        assert_eq!(st.pid, Some(120531));
        assert_eq!(st.last_exit, None);
        assert_eq!(st.restart_count, Some(0));
        assert_eq!(st.enabled, None);
        assert!(st.loaded);
    }

    #[test]
    fn show_252_stopped() {
        let u = one(fixture!("show-252-stopped.txt"));
        assert_eq!(u.id, "b2.service");
        assert_eq!(u.fragment_path, "/etc/systemd/system/b2.service");
        assert_eq!(
            (u.active_state.as_str(), u.sub_state.as_str()),
            ("inactive", "dead")
        );
        let st = u.to_status(label("b2"), ServiceScope::System);
        assert_eq!(st.state, RunState::Stopped);
        assert_eq!(st.pid, None);
        assert_eq!(st.restart_count, Some(0));
        assert!(!u.is_not_found());
    }

    #[test]
    fn show_252_not_found() {
        let u = one(fixture!("show-252-not-found.txt"));
        assert_eq!(u.id, "nosuch.service");
        assert_eq!(u.load_state, "not-found");
        assert_eq!(u.unit_file_state, "");
        assert!(u.is_not_found());
        assert!(!u.to_status(label("nosuch"), ServiceScope::System).loaded);
    }

    #[test]
    fn show_252_batch_of_three() {
        let blocks = parse_show_blocks(fixture!("show-252-batch-3-units.txt"));
        let units: Vec<UnitState> = blocks
            .iter()
            .map(|b| UnitState::from_block(b).unwrap())
            .collect();
        let summary: Vec<(&str, u32, bool)> = units
            .iter()
            .map(|u| (u.id.as_str(), u.main_pid, u.is_not_found()))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("b1.service", 120531, false),
                ("b2.service", 120532, false),
                ("nosuch.service", 0, true),
            ]
        );
        assert!(units[..2]
            .iter()
            .all(|u| u.run_state() == RunState::Running && u.n_restarts == Some(0)));
        // Fields that were not asked for are absent, not guessed.
        assert_eq!(units[0].unit_file_state, "");
        assert_eq!(units[0].result, "");
    }

    #[test]
    fn full_show_of_a_recent_systemd() {
        let u = one(fixture!("systemctl-01.txt"));
        assert_eq!(u.id, "hello-world.service");
        assert_eq!(u.main_pid, 2353);
        assert_eq!(u.n_restarts, Some(0));
        assert_eq!(u.exec_main_status, 0);
        assert_eq!(u.exec_main_code, 0);
        assert_eq!(u.unit_file_state, "enabled");
        assert_eq!(u.fragment_path, "/etc/systemd/system/hello-world.service");
        assert!(!u.need_daemon_reload);
        let st = u.to_status(label("hello-world"), ServiceScope::System);
        assert_eq!(
            (st.state, st.pid, st.enabled, st.last_exit),
            (RunState::Running, Some(2353), Some(true), None)
        );
        // A value holding `;` and `=` is kept whole after the first `=`.
        let blocks = parse_show_blocks(fixture!("systemctl-01.txt"));
        let exec = &blocks[0]["ExecStart"];
        assert!(exec.starts_with("{ path="), "{exec}");
        assert!(exec.contains(" ; argv[]="), "{exec}");
    }

    #[test]
    fn forking_service_with_empty_values_and_u64_max() {
        let blocks = parse_show_blocks(fixture!("systemctl-02.txt"));
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0]["EffectiveCPUs"], "");
        assert_eq!(blocks[0]["IOReadBytes"], "18446744073709551615");
        let u = UnitState::from_block(&blocks[0]).unwrap();
        assert_eq!(u.id, "apache2.service");
        assert_eq!(u.main_pid, 679);
        assert_eq!(u.run_state(), RunState::Running);
        assert_eq!(u.enabled(), Some(true));
    }

    #[test]
    fn simple_service_248() {
        let u = one(fixture!("systemctl-04.txt"));
        assert_eq!(u.id, "wibble-webapp.service");
        assert_eq!(u.main_pid, 3764255);
        assert_eq!(u.fragment_path, "/lib/systemd/system/wibble-webapp.service");
        assert_eq!(u.run_state(), RunState::Running);
    }

    #[test]
    fn finished_oneshot() {
        let u = one(fixture!("systemctl-05.txt"));
        assert_eq!(u.id, "wibble-action-network-donations-sync.service");
        let st = u.to_status(
            label("wibble-action-network-donations-sync"),
            ServiceScope::System,
        );
        assert_eq!(st.state, RunState::Stopped);
        assert_eq!(st.pid, None);
        assert_eq!(st.last_exit, Some(ExitStatus::Code(0)));
        assert_eq!(st.enabled, Some(false));
        assert!(u.needs_enabling());
    }

    #[test]
    fn list_units_json() {
        let rows = parse_list_units(fixture!("systemctl-08.txt")).unwrap();
        assert_eq!(
            rows,
            vec![
                ListedUnit {
                    unit: "at-spi-dbus-bus.service".into(),
                    load: "loaded".into(),
                    active: "active".into(),
                    sub: "running".into(),
                },
                ListedUnit {
                    unit: "abrt-vmcore.service".into(),
                    load: "loaded".into(),
                    active: "inactive".into(),
                    sub: "dead".into(),
                },
            ]
        );
        let rows = parse_list_units(fixture!("list-units-252.json")).unwrap();
        assert_eq!(rows.len(), 113);
        assert_eq!(rows[0].unit, "b1.service");
        assert_eq!(rows[112].unit, "exit3.service");
        assert_eq!(
            (rows[111].active.as_str(), rows[111].sub.as_str()),
            ("failed", "failed")
        );
        assert_eq!(rows.iter().filter(|r| r.active == "active").count(), 111);
    }

    #[test]
    fn states_by_meaning() {
        let mut u = one(fixture!("show-252-running.txt"));
        for (active, sub, want) in [
            ("activating", "auto-restart", RunState::SupervisorRestarting),
            ("activating", "start", RunState::Starting),
            ("failed", "failed", RunState::Failed),
            ("deactivating", "stop-sigterm", RunState::Stopped),
            ("maintenance", "x", RunState::Unknown),
        ] {
            u.active_state = active.into();
            u.sub_state = sub.into();
            assert_eq!(u.run_state(), want, "{active}/{sub}");
        }
        u.exec_main_code = 2;
        u.exec_main_status = 9;
        assert_eq!(u.last_exit(), Some(ExitStatus::Signal(9)));
    }

    #[test]
    fn bad_numbers_are_errors_not_zero() {
        let blocks = parse_show_blocks("Id=x.service\nMainPID=abc\n");
        assert!(UnitState::from_block(&blocks[0]).is_err());
        assert!(UnitState::from_block(&parse_show_blocks("MainPID=1\n")[0]).is_err());
        assert!(parse_list_units("not json").is_err());
        assert_eq!(parse_list_units("").unwrap(), vec![]);
    }
}
