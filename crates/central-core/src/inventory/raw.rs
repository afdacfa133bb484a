//! The file as written: serde structs that mirror the TOML, every value checked after reading
//! kept [`Spanned`] so its error points at its own line.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use toml::Spanned;

use crate::model::{
    EndpointClass, EngineTls, ManagerKind, ManagerSettings, Role, ServiceClass, SubstrateKind,
};

/// Shows at most this many characters of a value in a message.
const ECHO_MAX: usize = 80;

/// `text` for a message: whole when short, else its start, an ellipsis and its length, so a
/// 10,000-character value does not flood the terminal.
pub(crate) fn echo(text: &str) -> String {
    let len = text.chars().count();
    if len <= ECHO_MAX {
        format!("{text:?}")
    } else {
        let start: String = text.chars().take(ECHO_MAX).collect();
        format!("{start:?}… ({len} characters)")
    }
}

/// A duration written as `"10s"`, `"250ms"`, `"1m 30s"`.
#[derive(Debug, Clone, Copy)]
pub(super) struct HumanDuration(pub(super) Duration);

/// The start of a duration parse error; [`super::lower`] reads it as a bad duration.
pub(super) const BAD_DURATION: &str = "bad duration";

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map(HumanDuration)
            .map_err(|e| {
                serde::de::Error::custom(format!(
                    "{BAD_DURATION} {}: {e} (write e.g. \"10s\", \"250ms\", \"1m\")",
                    echo(&text)
                ))
            })
    }
}

pub(super) type Dur = Option<Spanned<HumanDuration>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInventory {
    #[serde(default)]
    pub(super) node: RawNode,
    pub(super) substrate: Option<Spanned<RawSubstrate>>,
    #[serde(default, rename = "loop")]
    pub(super) settings: RawLoop,
    pub(super) heal: Option<Spanned<RawHeal>>,
    pub(super) escalation: Option<Spanned<RawEscalation>>,
    #[serde(default, rename = "service")]
    pub(super) services: Vec<Spanned<RawService>>,
    #[serde(default)]
    pub(super) managers: BTreeMap<String, Spanned<ManagerSettings>>,
    pub(super) fleet: Option<Spanned<RawFleet>>,
    pub(super) telemetry: Option<Spanned<RawTelemetry>>,
    pub(super) api: Option<Spanned<RawApi>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFleet {
    pub(super) redis: Spanned<String>,
    pub(super) username: Option<Spanned<String>>,
    pub(super) password_file: Option<Spanned<PathBuf>>,
    pub(super) ca_file: Option<Spanned<PathBuf>>,
    pub(super) cert_file: Option<Spanned<PathBuf>>,
    pub(super) key_file: Option<Spanned<PathBuf>>,
    pub(super) prefix: Option<Spanned<String>>,
    pub(super) heartbeat: Dur,
    pub(super) queue: Option<Spanned<usize>>,
    pub(super) stream_maxlen: Option<Spanned<usize>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApi {
    pub(super) health_listen: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTelemetry {
    pub(super) otlp: Spanned<String>,
    pub(super) export_every: Dur,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNode {
    pub(super) id: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) role: Role,
    pub(super) log_dir: Option<Spanned<PathBuf>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSubstrate {
    pub(super) name: Option<Spanned<String>>,
    pub(super) kind: Option<SubstrateKind>,
    pub(super) profile: Option<String>,
    pub(super) endpoint: Option<String>,
    pub(super) unit: Option<Spanned<String>>,
    pub(super) compose_command: Option<Spanned<Vec<String>>>,
    pub(super) tls: Option<EngineTls>,
    pub(super) timeout: Dur,
    pub(super) start_timeout: Dur,
    pub(super) heal: Option<Spanned<RawHeal>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLoop {
    pub(super) interval: Dur,
    pub(super) max_concurrency: Option<Spanned<usize>>,
    pub(super) heal_timeout: Dur,
    pub(super) probe_timeout: Dur,
    pub(super) max_heals: Option<Spanned<usize>>,
    pub(super) manager_unreachable_after: Dur,
    pub(super) drift_every: Option<Spanned<u32>>,
    pub(super) state_dir: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHeal {
    pub(super) failures_to_down: Option<Spanned<u32>>,
    pub(super) passes_to_up: Option<Spanned<u32>>,
    pub(super) grace: Dur,
    pub(super) start_grace: Dur,
    pub(super) stop_grace: Dur,
    pub(super) backoff_initial: Dur,
    pub(super) backoff_max: Dur,
    pub(super) backoff_multiplier: Option<Spanned<f64>>,
    pub(super) jitter: Option<Spanned<f64>>,
    pub(super) breaker_threshold: Option<Spanned<u32>>,
    pub(super) breaker_window: Dur,
    pub(super) breaker_cooldown: Dur,
    pub(super) stable_after: Dur,
    pub(super) repair_after: Option<Spanned<u32>>,
    pub(super) observe_max: Dur,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEscalation {
    pub(super) notify: Vec<String>,
    pub(super) timeout: Dur,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawService {
    pub(super) label: Spanned<String>,
    pub(super) manager: ManagerKind,
    #[serde(default)]
    pub(super) class: ServiceClass,
    #[serde(default)]
    pub(super) depends_on: Vec<Spanned<String>>,
    pub(super) container: Option<Spanned<String>>,
    pub(super) compose: Option<Spanned<RawCompose>>,
    #[serde(default, rename = "probe")]
    pub(super) probes: Vec<Spanned<RawProbe>>,
    pub(super) heal: Option<Spanned<RawHeal>>,
    pub(super) config: Option<Spanned<RawConfig>>,
    #[serde(default)]
    pub(super) monitor_only: bool,
    #[serde(default)]
    pub(super) before_restart: Vec<Spanned<RawHook>>,
    #[serde(default)]
    pub(super) after_heal: Vec<Spanned<RawHook>>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub(super) enum HookKind {
    Command,
    Http,
    FreePort,
}

/// `[[service.before_restart]]` / `[[service.after_heal]]`: one hook.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHook {
    pub(super) kind: HookKind,
    pub(super) argv: Option<Spanned<Vec<String>>>,
    pub(super) method: Option<Spanned<String>>,
    pub(super) url: Option<Spanned<String>>,
    pub(super) port: Option<Spanned<i64>>,
    pub(super) timeout: Dur,
}

/// `compose = { project, file, service }`; the service defaults to the label.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCompose {
    pub(super) project: String,
    pub(super) file: PathBuf,
    pub(super) service: Option<String>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub(super) enum ProbeKind {
    Process,
    Http,
    Tcp,
    Container,
    Command,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProbe {
    pub(super) kind: ProbeKind,
    pub(super) url: Option<Spanned<String>>,
    pub(super) address: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) endpoints: Vec<Spanned<RawEndpoint>>,
    pub(super) status: Option<Spanned<[u16; 2]>>,
    pub(super) argv: Option<Spanned<Vec<String>>>,
    pub(super) exit_code: Option<i32>,
    pub(super) container: Option<String>,
    pub(super) timeout: Dur,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEndpoint {
    #[serde(default)]
    pub(super) class: EndpointClass,
    pub(super) url: Option<Spanned<String>>,
    pub(super) address: Option<Spanned<String>>,
}

/// `[service.config]` as written: its keys with their spans, and values, in file order. It is
/// a `ServiceConfig` without the label (the service's); the reader adds the label and checks
/// it strictly, pointing errors at the key they concern.
pub(super) struct RawConfig {
    pub(super) entries: Vec<(Spanned<String>, Spanned<toml::Value>)>,
}

impl<'de> Deserialize<'de> for RawConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> Visitor<'de> for Entries {
            type Value = RawConfig;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a table (the service's desired definition)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawConfig, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    let value = map.next_value::<Spanned<toml::Value>>()?;
                    entries.push((key, value));
                }
                Ok(RawConfig { entries })
            }
        }
        d.deserialize_map(Entries)
    }
}
