//! Jobs: a service that runs to completion when its `.timer` or `.path` unit (written beside the
//! `.service`, same name) starts it. The trigger units are what is enabled and kept active; the
//! service is a `oneshot` that is inactive between runs.

use std::collections::HashSet;

use process_manager::{
    EnableOutcome, Operation, ProcessError, RunState, ServiceConfig, ServiceLabel, ServiceScope,
    ServiceStatus,
};

use super::show::UnitState;
use super::unit::UNIT_MARK;
use super::unit_trigger::{path_unit_name, render_path, render_timer, timer_name};
use super::{is_active, unit_name, SystemdProcessManager, ADAPTER};
use sysutil::fs::WriteOutcome;

/// What writing a config's trigger units did.
#[derive(Debug, Default)]
pub(super) struct TriggerWrite {
    /// The trigger units the config has (written or already as wanted), timer first.
    pub(super) present: Vec<String>,
    /// Those whose file was created or replaced: a running one must restart to take it.
    pub(super) changed: Vec<String>,
    /// Whether a unit file was removed (a trigger the config no longer has).
    pub(super) removed: bool,
}

impl TriggerWrite {
    /// Whether systemd must reload to see the files.
    pub(super) fn any_file_changed(&self) -> bool {
        self.removed || !self.changed.is_empty()
    }
}

/// Whether `path` is a unit file this adapter wrote (its first line is the adapter's mark), so
/// a hand-written `.timer` or `.path` of the same name is never removed.
fn written_by_us(path: &std::path::Path) -> bool {
    use std::io::BufRead as _;
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    let mut first = String::new();
    let _ = std::io::BufReader::new(file).read_line(&mut first);
    first.starts_with(UNIT_MARK)
}

/// Whether any `*.wants`/`*.requires` folder of `unit_dir` links `unit` (it starts at boot).
fn has_boot_link(unit_dir: &std::path::Path, unit: &str) -> bool {
    let Ok(entries) = std::fs::read_dir(unit_dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let name = e.file_name();
        let name = name.to_string_lossy();
        (name.ends_with(".wants") || name.ends_with(".requires"))
            && e.path().join(unit).symlink_metadata().is_ok()
    })
}

/// The trigger unit names a label may have: its timer and its path unit.
fn trigger_names(label: &ServiceLabel) -> [String; 2] {
    [timer_name(label), path_unit_name(label)]
}

impl SystemdProcessManager {
    /// Writes the `.timer` and `.path` units `config` asks for, and disables and removes the
    /// ones it no longer has. Nothing is written unless both render.
    pub(super) async fn write_triggers(
        &self,
        config: &ServiceConfig,
    ) -> Result<TriggerWrite, ProcessError> {
        let texts = [render_timer(config)?, render_path(config)?];
        let mut out = TriggerWrite::default();
        for (name, text) in trigger_names(&config.label).into_iter().zip(texts) {
            match text {
                Some(text) => {
                    if self.write_unit_file(&name, &text).await? != WriteOutcome::Unchanged {
                        out.changed.push(name.clone());
                    }
                    out.present.push(name);
                }
                None if written_by_us(&self.unit_dir.join(&name)) => {
                    // Disarmed before its file goes, so systemd forgets no running trigger.
                    self.job(Operation::Enable, &["disable", "--now", &name])
                        .await?;
                    std::fs::remove_file(self.unit_dir.join(&name)).map_err(|e| {
                        ProcessError::Backend {
                            adapter: ADAPTER.into(),
                            source: Box::new(e),
                        }
                    })?;
                    out.removed = true;
                }
                None => {}
            }
        }
        Ok(out)
    }

    /// The rest of `enable` for a job, once its units are written and loaded: triggers enabled
    /// and active (restarted when their file changed), the service enabled when it runs at load
    /// and run once (without waiting for it) when its definition is new or changed; a changed
    /// definition restarts a run in progress.
    pub(super) async fn enable_job(
        &self,
        config: &ServiceConfig,
        written: WriteOutcome,
        triggers: &TriggerWrite,
        service: &UnitState,
        trigger_states: &[UnitState],
    ) -> Result<EnableOutcome, ProcessError> {
        let unit = unit_name(&config.label);
        let mut enable: Vec<&str> = Vec::new();
        let mut restart: Vec<&str> = Vec::new();
        let mut start: Vec<&str> = Vec::new();
        if config.run_at_load && service.needs_enabling() {
            enable.push(&unit);
        }
        for (name, state) in triggers.present.iter().zip(trigger_states) {
            if state.needs_enabling() {
                enable.push(name);
            }
            if !is_active(state.run_state()) {
                start.push(name);
            } else if triggers.changed.contains(name) {
                restart.push(name);
            }
        }
        // A daemon that became a job keeps its boot link unless it is removed: it would still
        // start at every boot on top of its trigger.
        let stale_boot_link = !config.run_at_load && has_boot_link(&self.unit_dir, &unit);
        if stale_boot_link {
            self.job(Operation::Enable, &["disable", &unit]).await?;
        }
        let acted =
            stale_boot_link || !(enable.is_empty() && restart.is_empty() && start.is_empty());
        for (verb, units) in [("enable", enable), ("restart", restart), ("start", start)] {
            if !units.is_empty() {
                let mut args = vec![verb];
                args.extend(units);
                self.job(Operation::Enable, &args).await?;
            }
        }
        // A job may run for long; its result is the unit's state, not this call's. A new
        // definition takes effect only in a new process (a daemon that became a job included).
        let run = match (written, config.run_at_load) {
            (WriteOutcome::Created, true) => Some("start"),
            (WriteOutcome::Replaced, true) => Some("restart"),
            (WriteOutcome::Replaced, false) => Some("try-restart"),
            _ => None,
        };
        if let Some(verb) = run {
            self.job(Operation::Enable, &[verb, "--no-block", &unit])
                .await?;
        }
        Ok(match written {
            WriteOutcome::Created => EnableOutcome::Installed,
            WriteOutcome::Replaced => EnableOutcome::Updated,
            WriteOutcome::Unchanged if triggers.any_file_changed() => EnableOutcome::Updated,
            WriteOutcome::Unchanged if acted => EnableOutcome::Started,
            WriteOutcome::Unchanged => EnableOutcome::Unchanged,
        })
    }

    /// The service's state and its loaded trigger units' (name, state), in one `show`.
    /// `NotFound` when systemd knows none of them.
    pub(super) async fn job_states(
        &self,
        operation: Operation,
        label: &ServiceLabel,
    ) -> Result<(UnitState, Vec<(String, UnitState)>), ProcessError> {
        let names = job_unit_names(label);
        let states = self.show(operation, &names).await?;
        self.job_of(label, &names, states)
    }

    /// Many services' statuses from one `show` of all their units (each service with its
    /// triggers), in the order asked.
    pub(super) async fn job_statuses(
        &self,
        labels: &[ServiceLabel],
    ) -> Result<Vec<Result<ServiceStatus, ProcessError>>, ProcessError> {
        let loaded = self.loaded_triggers().await;
        let per_label: Vec<Vec<String>> = labels
            .iter()
            .map(|label| match &loaded {
                Some(loaded) => self.batch_unit_names(label, loaded),
                None => job_unit_names(label),
            })
            .collect();
        let all: Vec<String> = per_label.iter().flatten().cloned().collect();
        let mut states = self.show(Operation::Inspect, &all).await?.into_iter();
        Ok(labels
            .iter()
            .zip(&per_label)
            .map(|(label, names)| {
                let mine: Vec<UnitState> = states.by_ref().take(names.len()).collect();
                let (service, triggers) = self.job_of(label, names, mine)?;
                Ok(job_status(&service, &triggers, label.clone(), self.scope))
            })
            .collect())
    }

    /// The `.timer` and `.path` units systemd has loaded, from one call over the bus (it reads
    /// no disk); `None` without a bus, or when it did not answer (then every trigger name is
    /// asked for, as `inspect` does).
    async fn loaded_triggers(&self) -> Option<HashSet<String>> {
        let (bus, _) = self.bus.as_ref()?;
        let patterns = ["*.timer".to_string(), "*.path".to_string()];
        match bus.list_units(&patterns).await {
            Ok(units) => Some(
                units
                    .into_iter()
                    .filter(|(_, load)| load != "not-found")
                    .map(|(name, _)| name)
                    .collect(),
            ),
            Err(e) => {
                tracing::debug!(error = %e, "could not list the loaded triggers");
                None
            }
        }
    }

    /// A service's unit and those of its triggers worth asking about in a batch: the ones
    /// systemd has loaded (an armed or enabled trigger always is) and the ones whose file is
    /// beside the service, where `enable` writes them. A name systemd does not know costs it
    /// a search of every unit folder, for each of hundreds of services that are no jobs.
    fn batch_unit_names(&self, label: &ServiceLabel, loaded: &HashSet<String>) -> Vec<String> {
        let mut names = vec![unit_name(label)];
        names.extend(
            trigger_names(label)
                .into_iter()
                .filter(|t| loaded.contains(t) || self.unit_dir.join(t).exists()),
        );
        names
    }

    /// A service's state and its loaded triggers' from the states of `names` (the service's
    /// unit first); `NotFound` when systemd knows none of them.
    fn job_of(
        &self,
        label: &ServiceLabel,
        names: &[String],
        states: Vec<UnitState>,
    ) -> Result<(UnitState, Vec<(String, UnitState)>), ProcessError> {
        let mut states = states.into_iter();
        let service = states.next().ok_or_else(|| {
            ProcessError::backend(ADAPTER, "systemctl show gave no block for the service")
        })?;
        let triggers: Vec<(String, UnitState)> = names[1..]
            .iter()
            .cloned()
            .zip(states)
            .filter(|(_, s)| !s.is_not_found())
            .collect();
        if service.is_not_found() && triggers.is_empty() {
            return Err(ProcessError::NotFound {
                label: label.to_string(),
                scope: Some(self.systemctl.scope_name()),
            });
        }
        Ok((service, triggers))
    }
}

/// A service's unit and its possible triggers' units, the service's first.
fn job_unit_names(label: &ServiceLabel) -> Vec<String> {
    let mut names = vec![unit_name(label)];
    names.extend(trigger_names(label));
    names
}

/// A job's status: the service's, except that it counts as enabled when a trigger is, and an
/// idle service whose trigger is active reads as [`RunState::SupervisorRestarting`]: systemd will
/// start it on its own, so nobody should start it on top.
pub(super) fn job_status(
    service: &UnitState,
    triggers: &[(String, UnitState)],
    label: ServiceLabel,
    scope: ServiceScope,
) -> ServiceStatus {
    let mut status = service.to_status(label, scope);
    if triggers.is_empty() {
        return status;
    }
    let enabled: Vec<Option<bool>> = triggers.iter().map(|(_, s)| s.enabled()).collect();
    status.enabled = if enabled.contains(&Some(true)) {
        Some(true)
    } else if enabled.contains(&Some(false)) {
        Some(false)
    } else {
        status.enabled
    };
    let armed = triggers.iter().any(|(_, s)| is_active(s.run_state()));
    if armed && status.state == RunState::Stopped {
        status.state = RunState::SupervisorRestarting;
    }
    status.loaded = status.loaded || triggers.iter().any(|(_, s)| s.load_state == "loaded");
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::systemd::show::{parse_show_blocks, UnitState};

    fn state(text: &str) -> UnitState {
        UnitState::from_block(&parse_show_blocks(text)[0]).unwrap()
    }

    /// A batch asks for a service's `.timer`/`.path` only when systemd has it loaded or its
    /// file is beside the service: no name systemd must search every unit folder for.
    #[test]
    fn a_batch_asks_only_for_triggers_that_exist() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.path"), "").unwrap();
        let pm = SystemdProcessManager::system().with_unit_dir(dir.path());
        let loaded: HashSet<String> = ["a.timer".to_string(), "other.timer".to_string()].into();
        let names = |l: &str| pm.batch_unit_names(&ServiceLabel::new(l).unwrap(), &loaded);
        assert_eq!(names("a"), ["a.service", "a.timer"]);
        assert_eq!(names("b"), ["b.service", "b.path"]);
        assert_eq!(names("c"), ["c.service"]);
        // `inspect` of one service still asks for both (one call either way).
        assert_eq!(
            job_unit_names(&ServiceLabel::new("c").unwrap()),
            ["c.service", "c.timer", "c.path"]
        );
    }

    /// Reading states never starts the event watch (a second connection and `Subscribe`);
    /// taking the events does.
    #[tokio::test]
    async fn reads_start_no_watch_until_someone_listens() {
        let pm = SystemdProcessManager::system()
            .with_systemctl("/nonexistent/systemctl")
            .with_bus(crate::BusAddress::Address(
                "unix:path=/nonexistent/bus".into(),
            ));
        let watch = pm.bus.as_ref().unwrap().1.clone();
        let label = ServiceLabel::new("x").unwrap();
        let _ =
            process_manager::ProcessManagerPort::inspect_many(&pm, std::slice::from_ref(&label))
                .await;
        let _ = process_manager::ProcessManagerPort::inspect(&pm, &label).await;
        assert!(!watch.started());
        let _events = process_manager::ProcessManagerPort::events(&pm);
        assert!(watch.started());
    }

    #[test]
    fn an_idle_job_with_an_armed_trigger_is_left_to_systemd() {
        let service = state("Id=j.service\nLoadState=loaded\nActiveState=inactive\nSubState=dead\nUnitFileState=static\n");
        let timer = state("Id=j.timer\nLoadState=loaded\nActiveState=active\nSubState=waiting\nUnitFileState=enabled\n");
        let label = ServiceLabel::new("j").unwrap();
        let st = job_status(
            &service,
            &[("j.timer".into(), timer.clone())],
            label.clone(),
            ServiceScope::System,
        );
        assert_eq!(
            (st.state, st.enabled),
            (RunState::SupervisorRestarting, Some(true))
        );
        let stopped = state("Id=j.timer\nLoadState=loaded\nActiveState=inactive\nSubState=dead\nUnitFileState=disabled\n");
        let st = job_status(
            &service,
            &[("j.timer".into(), stopped)],
            label.clone(),
            ServiceScope::System,
        );
        assert_eq!((st.state, st.enabled), (RunState::Stopped, Some(false)));
        let failed = state("Id=j.service\nLoadState=loaded\nActiveState=failed\nSubState=failed\nUnitFileState=static\n");
        let st = job_status(
            &failed,
            &[("j.timer".into(), timer)],
            label,
            ServiceScope::System,
        );
        assert_eq!(st.state, RunState::Failed);
    }
}
