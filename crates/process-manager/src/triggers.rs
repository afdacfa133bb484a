//! [`Triggers`]: what starts a *job*, a service that runs to completion when something happens
//! instead of staying up. Kept to what both launchd and systemd express:
//!
//! | here            | launchd                   | systemd                                   |
//! |-----------------|---------------------------|-------------------------------------------|
//! | `interval`      | `StartInterval`           | `.timer` `OnActiveSec=`+`OnUnitActiveSec=` |
//! | `calendar`      | `StartCalendarInterval`   | `.timer` `OnCalendar=` (one per entry)     |
//! | `watch_paths`   | `WatchPaths`              | `.path` `PathChanged=` (one per path)      |
//!
//! ```toml
//! [triggers]
//! interval = "15m"
//! calendar = [{ hour = 3, minute = 30 }, { weekday = 1, hour = 9, minute = 0 }]
//! watch_paths = ["/var/lib/joelclaw/inbox"]
//! ```

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One calendar rule, launchd's `StartCalendarInterval` dictionary: each field that is set
/// must match, each missing one matches anything (all missing: every minute).
///
/// `day` and `weekday` are never set together: launchd starts the job when *either* matches,
/// systemd only when *both* do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarInterval {
    /// 0–59.
    #[serde(default)]
    pub minute: Option<u8>,
    /// 0–23.
    #[serde(default)]
    pub hour: Option<u8>,
    /// Day of the month, 1–31.
    #[serde(default)]
    pub day: Option<u8>,
    /// Day of the week, 0 (Sunday) – 6 (Saturday).
    #[serde(default)]
    pub weekday: Option<u8>,
    /// 1–12.
    #[serde(default)]
    pub month: Option<u8>,
}

impl CalendarInterval {
    /// What is wrong with it, if anything.
    pub fn check(&self) -> Result<(), String> {
        let fields = [
            ("minute", self.minute, 0, 59),
            ("hour", self.hour, 0, 23),
            ("day", self.day, 1, 31),
            ("weekday", self.weekday, 0, 6),
            ("month", self.month, 1, 12),
        ];
        for (name, value, lo, hi) in fields {
            if let Some(v) = value {
                if !(lo..=hi).contains(&v) {
                    return Err(format!("calendar {name} = {v} is outside {lo}..={hi}"));
                }
            }
        }
        if self.day.is_some() && self.weekday.is_some() {
            return Err(
                "calendar sets both day and weekday: launchd runs on either, systemd only on both; use two calendar entries".into(),
            );
        }
        Ok(())
    }
}

/// What starts a job. Empty (the default): the service is a daemon, started at load and kept up
/// by its restart policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Triggers {
    /// Every this long (whole seconds, at least 1 s), counted from the last start.
    #[serde(default, with = "crate::serde_duration::option")]
    pub interval: Option<Duration>,
    /// At these wall-clock times (local time).
    #[serde(default)]
    pub calendar: Vec<CalendarInterval>,
    /// When one of these paths (absolute) is created, changed or removed.
    #[serde(default)]
    pub watch_paths: Vec<PathBuf>,
}

impl Triggers {
    /// No trigger: the service is a daemon.
    pub fn is_empty(&self) -> bool {
        self.interval.is_none() && self.calendar.is_empty() && self.watch_paths.is_empty()
    }

    /// Whether a timer (interval or calendar) starts it.
    pub fn has_timer(&self) -> bool {
        self.interval.is_some() || !self.calendar.is_empty()
    }

    /// Checks the interval and calendar entries (paths are checked with the config's own).
    pub fn check(&self) -> Result<(), String> {
        if let Some(every) = self.interval {
            if every < Duration::from_secs(1) || every.subsec_nanos() != 0 {
                return Err(format!(
                    "triggers.interval {every:?} must be whole seconds, at least 1s (launchd's StartInterval counts seconds)"
                ));
            }
        }
        for (i, c) in self.calendar.iter().enumerate() {
            c.check()
                .map_err(|e| format!("triggers.calendar[{i}]: {e}"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_ranges_and_day_with_weekday() {
        CalendarInterval::default().check().unwrap();
        let ok = CalendarInterval {
            minute: Some(59),
            hour: Some(23),
            day: Some(31),
            month: Some(12),
            weekday: None,
        };
        ok.check().unwrap();
        let e = CalendarInterval {
            weekday: Some(7),
            ..CalendarInterval::default()
        }
        .check()
        .unwrap_err();
        assert!(e.contains("weekday"), "{e}");
        let e = CalendarInterval {
            day: Some(1),
            weekday: Some(1),
            ..CalendarInterval::default()
        }
        .check()
        .unwrap_err();
        assert!(e.contains("either"), "{e}");
        assert!(CalendarInterval {
            day: Some(0),
            ..CalendarInterval::default()
        }
        .check()
        .is_err());
    }

    #[test]
    fn intervals_are_whole_seconds() {
        let t = |ms| Triggers {
            interval: Some(Duration::from_millis(ms)),
            ..Triggers::default()
        };
        t(2000).check().unwrap();
        assert!(t(500).check().is_err());
        assert!(t(1500).check().is_err());
        assert!(Triggers::default().is_empty());
        assert!(t(2000).has_timer() && !t(2000).is_empty());
    }

    #[test]
    fn reads_from_a_config_table() {
        let t: Triggers = serde_json::from_str(
            r#"{ "interval": "15m", "calendar": [{ "hour": 3, "minute": 30 }], "watch_paths": ["/x"] }"#,
        )
        .unwrap();
        assert_eq!(t.interval, Some(Duration::from_secs(900)));
        assert_eq!(t.calendar[0].hour, Some(3));
        assert!(serde_json::from_str::<Triggers>(r#"{ "every": "1s" }"#).is_err());
    }
}
