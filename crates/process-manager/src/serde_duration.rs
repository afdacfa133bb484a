//! Durations in human form (`"10s"`, `"1m 30s"`) for config files, via `humantime`.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// Serializes a duration as `"10s"`.
pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

/// Parses `"10s"`, `"250ms"`, `"1m 30s"`.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!(
            "bad duration {text:?}: {e} (write e.g. \"10s\", \"250ms\", \"1m\")"
        ))
    })
}

/// The same for `Option<Duration>`.
pub mod option {
    use super::*;

    /// Serializes `Some(d)` as `"10s"`, `None` as nothing.
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    /// Parses an optional duration.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        super::deserialize(d).map(Some)
    }
}
