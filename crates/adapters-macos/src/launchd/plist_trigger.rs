//! A job's triggers as plist keys: `StartInterval` (seconds), `StartCalendarInterval` (one
//! dictionary, or an array of them, of `Minute`, `Hour`, `Day`, `Weekday`, `Month`) and
//! `WatchPaths` (an array of paths). One place for the writer and the reader.

use plist::{Dictionary, Value};
use process_manager::{CalendarInterval, Triggers};

/// The calendar fields and their plist keys.
fn fields(c: &mut CalendarInterval) -> [(&'static str, &mut Option<u8>); 5] {
    [
        ("Minute", &mut c.minute),
        ("Hour", &mut c.hour),
        ("Day", &mut c.day),
        ("Weekday", &mut c.weekday),
        ("Month", &mut c.month),
    ]
}

/// Adds the keys for `triggers` to `d`.
pub(crate) fn write(triggers: &Triggers, d: &mut Dictionary) {
    if let Some(every) = triggers.interval {
        d.insert(
            "StartInterval".into(),
            Value::Integer(every.as_secs().into()),
        );
    }
    let mut entries: Vec<Value> = triggers
        .calendar
        .iter()
        .map(|c| {
            let mut c = *c;
            let mut entry = Dictionary::new();
            for (key, value) in fields(&mut c) {
                if let Some(v) = value {
                    entry.insert(key.into(), Value::Integer(u64::from(*v).into()));
                }
            }
            Value::Dictionary(entry)
        })
        .collect();
    match entries.len() {
        0 => {}
        // One rule is written the way launchd's own examples write it: a dictionary.
        1 => {
            d.insert("StartCalendarInterval".into(), entries.remove(0));
        }
        _ => {
            d.insert("StartCalendarInterval".into(), Value::Array(entries));
        }
    }
    if !triggers.watch_paths.is_empty() {
        let paths = triggers
            .watch_paths
            .iter()
            .map(|p| Value::String(p.to_string_lossy().into_owned()))
            .collect();
        d.insert("WatchPaths".into(), Value::Array(paths));
    }
}

/// `StartCalendarInterval`, in either form. An integer a field cannot hold reads as 255, which
/// no field accepts, so [`CalendarInterval::check`] reports it; keys launchd does not know are
/// ignored, as launchd does.
pub(crate) fn read_calendar(value: &Value) -> Vec<CalendarInterval> {
    let entry = |v: &Value| -> Option<CalendarInterval> {
        let dict = v.as_dictionary()?;
        let mut c = CalendarInterval::default();
        for (key, field) in fields(&mut c) {
            if let Some(v) = dict.get(key).and_then(Value::as_signed_integer) {
                *field = Some(u8::try_from(v).unwrap_or(u8::MAX));
            }
        }
        Some(c)
    };
    match value {
        Value::Array(items) => items.iter().filter_map(entry).collect(),
        other => entry(other).into_iter().collect(),
    }
}
