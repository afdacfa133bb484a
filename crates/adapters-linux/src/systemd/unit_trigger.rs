//! A job's trigger units, written beside its `.service`: the `.timer` of its interval and
//! calendar triggers, the `.path` of its watch paths. Same quoting rules as the service unit.

use super::unit::UNIT_MARK;
use std::fmt::Write as _;

use process_manager::{CalendarInterval, ProcessError, ServiceConfig};

use super::unit::{path_value, seconds};

/// The name of a job's timer unit.
pub(crate) fn timer_name(label: &process_manager::ServiceLabel) -> String {
    format!("{label}.timer")
}

/// The name of a job's path unit.
pub(crate) fn path_unit_name(label: &process_manager::ServiceLabel) -> String {
    format!("{label}.path")
}

const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

/// An `OnCalendar=` expression: `[Weekday] *-MM-DD HH:MM:00`, `*` for each unset field.
pub(crate) fn calendar_expression(c: &CalendarInterval) -> String {
    let field = |v: Option<u8>| v.map_or_else(|| "*".to_string(), |v| format!("{v:02}"));
    let weekday = c
        .weekday
        .map(|w| format!("{} ", WEEKDAYS[usize::from(w) % 7]))
        .unwrap_or_default();
    format!(
        "{weekday}*-{}-{} {}:{}:00",
        field(c.month),
        field(c.day),
        field(c.hour),
        field(c.minute)
    )
}

/// The weekday number of an `OnCalendar=` weekday name.
pub(crate) fn weekday_number(name: &str) -> Option<u8> {
    WEEKDAYS
        .iter()
        .position(|w| w.eq_ignore_ascii_case(name))
        .and_then(|i| u8::try_from(i).ok())
}

fn trigger_header(unit: &mut String, config: &ServiceConfig, what: &str) {
    unit.push_str(UNIT_MARK);
    unit.push_str("[Unit]\n");
    let _ = writeln!(unit, "Description=joelclaw {what} of {}", config.label);
}

fn trigger_install(unit: &mut String, target: &str) {
    // Always installed: the trigger is what makes a job run, at boot as now.
    let _ = write!(unit, "\n[Install]\nWantedBy={target}\n");
}

/// The `.timer` of a job with an interval or calendar trigger; `None` for anything else.
pub(crate) fn render_timer(config: &ServiceConfig) -> Result<Option<String>, ProcessError> {
    config.validate()?;
    let triggers = &config.triggers;
    if !triggers.has_timer() {
        return Ok(None);
    }
    let mut unit = String::new();
    trigger_header(&mut unit, config, "timer");
    unit.push_str("\n[Timer]\n");
    if let Some(every) = triggers.interval {
        // From the timer's start (the first run), then from each run's start, like launchd's
        // StartInterval.
        let _ = writeln!(unit, "OnActiveSec={}", seconds(every));
        let _ = writeln!(unit, "OnUnitActiveSec={}", seconds(every));
    }
    for c in &triggers.calendar {
        let _ = writeln!(unit, "OnCalendar={}", calendar_expression(c));
    }
    if !triggers.calendar.is_empty() {
        // A calendar time missed while the machine was off runs at the next boot, as launchd
        // runs a missed one at the next wake.
        unit.push_str("Persistent=true\n");
    }
    // systemd's default slack is a minute; launchd starts a job on the second.
    unit.push_str("AccuracySec=1s\n");
    trigger_install(&mut unit, "timers.target");
    Ok(Some(unit))
}

/// The `.path` of a job with watch paths; `None` for anything else.
pub(crate) fn render_path(config: &ServiceConfig) -> Result<Option<String>, ProcessError> {
    config.validate()?;
    if config.triggers.watch_paths.is_empty() {
        return Ok(None);
    }
    let mut unit = String::new();
    trigger_header(&mut unit, config, "path watch");
    unit.push_str("\n[Path]\n");
    for p in &config.triggers.watch_paths {
        // Any change, as launchd's WatchPaths: created, written, removed, attributes.
        let _ = writeln!(
            unit,
            "PathModified={}",
            path_value(config, "watch path", p)?
        );
    }
    trigger_install(&mut unit, "paths.target");
    Ok(Some(unit))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::systemd::unit::{render_unit, ManagerKind, ServiceAccount};
    use process_manager::{RestartPolicy, ServiceLabel};
    use std::time::Duration;

    fn cfg() -> ServiceConfig {
        ServiceConfig::new(ServiceLabel::new("svc").unwrap(), "/usr/bin/sleep").with_args(["1000"])
    }

    #[test]
    fn a_job_is_a_oneshot_with_its_timer_and_path_units() {
        use process_manager::{CalendarInterval, Triggers};
        let mut c = cfg();
        c.restart = RestartPolicy::Never;
        c.run_at_load = false;
        c.triggers = Triggers {
            interval: Some(Duration::from_secs(2)),
            calendar: vec![
                CalendarInterval {
                    hour: Some(3),
                    minute: Some(30),
                    ..CalendarInterval::default()
                },
                CalendarInterval {
                    weekday: Some(1),
                    ..CalendarInterval::default()
                },
            ],
            watch_paths: vec!["/var/lib/svc/inbox".into()],
        };
        let unit = render_unit(
            &c,
            ManagerKind::System,
            Some(&ServiceAccount::new("joelclaw")),
        )
        .unwrap();
        assert!(unit.contains("\nType=oneshot\n"), "{unit}");
        assert!(!unit.contains("Restart="), "{unit}");
        assert!(!unit.contains("[Install]"), "{unit}");
        assert_eq!(
            render_timer(&c).unwrap().unwrap(),
            "# Written by joelclaw (adapters-linux). Changes here are replaced on the next apply.
[Unit]
Description=joelclaw timer of svc

[Timer]
OnActiveSec=2000ms
OnUnitActiveSec=2000ms
OnCalendar=*-*-* 03:30:00
OnCalendar=Mon *-*-* *:*:00
Persistent=true
AccuracySec=1s

[Install]
WantedBy=timers.target
"
        );
        let path = render_path(&c).unwrap().unwrap();
        assert!(
            path.contains(
                "[Path]\nPathModified=/var/lib/svc/inbox\n\n[Install]\nWantedBy=paths.target\n"
            ),
            "{path}"
        );
        assert_eq!(render_timer(&cfg()).unwrap(), None);
        assert_eq!(render_path(&cfg()).unwrap(), None);
    }

    #[test]
    fn calendar_weekdays_by_name() {
        assert_eq!(weekday_number("Sun"), Some(0));
        assert_eq!(weekday_number("sat"), Some(6));
        assert_eq!(weekday_number("Someday"), None);
        let c = CalendarInterval {
            weekday: Some(0),
            day: None,
            month: Some(12),
            hour: Some(0),
            minute: None,
        };
        assert_eq!(calendar_expression(&c), "Sun *-12-* 00:*:00");
    }
}
