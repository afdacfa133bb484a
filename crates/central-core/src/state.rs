//! What the loop remembers across its own restarts: per service, the restart history, the
//! breaker, the attempt in flight and when the next attempt is allowed. Written atomically
//! (temporary file, fsync, rename; mode 0600) so a crash mid-write leaves the old file whole.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::events::{Step, StepOutcome};

/// Wall-clock time driven by tokio's clock, so that paused-time tests move it too and persisted
/// timestamps stay comparable across two loops built from the same `Clock`.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin_ms: u64,
    origin: Instant,
}

impl Clock {
    /// The system clock, read once; later readings advance with tokio's clock.
    pub fn system() -> Self {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_millis() as u64;
        Clock::starting_at(ms)
    }

    /// A clock that reads `origin_ms` now (tests use a fixed value).
    pub fn starting_at(origin_ms: u64) -> Self {
        Clock {
            origin_ms,
            origin: Instant::now(),
        }
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        self.origin_ms + self.origin.elapsed().as_millis() as u64
    }
}

/// Breaker position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum BreakerState {
    /// Heals run normally.
    #[default]
    Closed,
    /// Too many failed heals: nothing is done until the cool-down passes.
    Open,
    /// One trial heal is allowed; it closes after the service stays healthy.
    HalfOpen,
}

impl std::fmt::Display for BreakerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
        })
    }
}

/// Where a recorded attempt got to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum AttemptPhase {
    /// Recorded before the call. After a crash it is not known whether the call ran; heals are
    /// idempotent, but it is treated as done so no episode is healed twice.
    Started,
    /// The call returned; the service is being watched to see whether it worked.
    Done,
}

/// One heal attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AttemptRecord {
    /// 1-based within its episode.
    pub attempt: u32,
    /// The step taken.
    pub step: Step,
    /// When it started (ms since the epoch). Cool-downs count from here.
    pub started_ms: u64,
    /// How far it got.
    pub phase: AttemptPhase,
    /// What the call said, once done.
    pub outcome: Option<StepOutcome>,
}

/// A service's breaker, as persisted. The loop works on its own in-memory breaker (where an
/// open breaker always knows when it opened) and converts from and to this record when it
/// loads and saves state, so the file format and the working state can change apart.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerRecord {
    /// Its position.
    pub state: BreakerState,
    /// When heals failed (ms), within the window.
    pub failures_ms: Vec<u64>,
    /// When it last opened.
    pub opened_ms: Option<u64>,
    /// When it went half-open.
    pub half_open_ms: Option<u64>,
    /// Whether the half-open trial has been used.
    pub trial_used: bool,
}

/// Everything persisted about one service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRecord {
    /// Attempts in the current episode (resets after the service stays healthy).
    pub episode_attempts: u32,
    /// Restarts in the current episode (decides when to repair instead).
    pub episode_restarts: u32,
    /// The earliest time (ms) the next attempt may start: backoff and throttle, from the start
    /// of the previous attempt.
    pub next_allowed_ms: u64,
    /// The attempt whose result is not known yet.
    pub in_flight: Option<AttemptRecord>,
    /// The last attempts, newest last (bounded).
    pub history: Vec<AttemptRecord>,
    /// The breaker.
    pub breaker: BreakerRecord,
    /// What a person asked for (`joelclaw-node stop` …): a service stopped or disabled by
    /// request is not healed back until it is started or enabled again. Absent in files written
    /// before it existed: running.
    #[serde(default, skip_serializing_if = "Desired::is_running")]
    pub desired: Desired,
    /// When a person last asked (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_at_ms: Option<u64>,
}

/// The state a person asked a service to be in. The loop heals only what is meant to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Desired {
    /// Kept running and healed (the default).
    #[default]
    Running,
    /// Stopped by request: watched, reported, never restarted until started again.
    Stopped,
    /// Disabled by request (stopped, not started at boot): never restarted until enabled.
    Disabled,
}

impl Desired {
    /// Meant to run (healed).
    pub fn is_running(&self) -> bool {
        *self == Desired::Running
    }
}

impl std::fmt::Display for Desired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Desired::Running => "running",
            Desired::Stopped => "stopped",
            Desired::Disabled => "disabled",
        })
    }
}

/// How many past attempts are kept per service.
pub(crate) const HISTORY_LEN: usize = 20;

/// The state file's content.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistedState {
    /// Format version.
    pub version: u32,
    /// Per service label.
    pub services: BTreeMap<String, ServiceRecord>,
}

const FORMAT_VERSION: u32 = 1;
const FILE_NAME: &str = "heal-state.json";

/// The state file in a state directory.
#[derive(Debug, Clone)]
pub struct StateStore {
    dir: PathBuf,
}

impl StateStore {
    /// A store in `dir` (created, mode 0700, on first save).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        StateStore { dir: dir.into() }
    }

    /// The state file's path.
    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// Reads the state. A missing file is an empty state. A file that cannot be parsed is moved
    /// aside (`heal-state.json.corrupt-<ms>`) and an empty state returned with a warning: a bad
    /// file must never keep the agent from healing.
    pub fn load(&self) -> (PersistedState, Option<String>) {
        let path = self.path();
        let text = match fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return (
                    PersistedState {
                        version: FORMAT_VERSION,
                        ..Default::default()
                    },
                    None,
                )
            }
            Err(e) => {
                let warning = format!(
                    "cannot read heal state {}: {e}; starting with empty state",
                    path.display()
                );
                tracing::warn!(target: "joelclaw::heal", "{warning}");
                return (PersistedState::default(), Some(warning));
            }
        };
        match serde_json::from_slice::<PersistedState>(&text) {
            Ok(state) if state.version == FORMAT_VERSION => (state, None),
            other => {
                let why = match other {
                    Ok(s) => format!("unknown format version {}", s.version),
                    Err(e) => e.to_string(),
                };
                let stamp = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or(Duration::ZERO)
                    .as_millis();
                let aside = self.dir.join(format!("{FILE_NAME}.corrupt-{stamp}"));
                let moved = fs::rename(&path, &aside);
                let warning = match moved {
                    Ok(()) => format!(
                        "heal state {} is unreadable ({why}); moved it to {} and started with empty state",
                        path.display(),
                        aside.display()
                    ),
                    Err(e) => format!(
                        "heal state {} is unreadable ({why}) and could not be moved aside ({e}); starting with empty state",
                        path.display()
                    ),
                };
                tracing::warn!(target: "joelclaw::heal", "{warning}");
                (
                    PersistedState {
                        version: FORMAT_VERSION,
                        ..Default::default()
                    },
                    Some(warning),
                )
            }
        }
    }

    /// Writes the state atomically with mode 0600.
    pub fn save(&self, state: &PersistedState) -> std::io::Result<()> {
        create_private_dir(&self.dir)?;
        let mut body = serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?;
        body.push(b'\n');
        sysutil::fs::AtomicWrite::with_mode(0o600).write(&self.path(), &body)?;
        Ok(())
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir)?;
    set_private(dir, 0o700)
}

#[cfg(unix)]
fn set_private(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_private(_path: &Path, _mode: u32) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> PersistedState {
        let mut s = PersistedState {
            version: FORMAT_VERSION,
            ..Default::default()
        };
        s.services.insert(
            "redis".into(),
            ServiceRecord {
                episode_attempts: 1,
                episode_restarts: 1,
                next_allowed_ms: 42,
                in_flight: Some(AttemptRecord {
                    attempt: 1,
                    step: Step::Restart,
                    started_ms: 32,
                    phase: AttemptPhase::Done,
                    outcome: Some(StepOutcome::Restarted {
                        result: process_manager::RestartOutcome::Restarted,
                    }),
                }),
                history: vec![],
                breaker: BreakerRecord::default(),
                desired: Desired::Stopped,
                desired_at_ms: Some(40),
            },
        );
        s
    }

    #[test]
    fn a_file_from_before_desired_states_reads_as_running() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path());
        fs::write(
            store.path(),
            r#"{"version":1,"services":{"redis":{"episode_attempts":0,"episode_restarts":0,
               "next_allowed_ms":0,"in_flight":null,"history":[],"breaker":{"state":"closed",
               "failures_ms":[],"opened_ms":null,"half_open_ms":null,"trial_used":false}}}}"#,
        )
        .unwrap();
        let (state, warning) = store.load();
        assert!(warning.is_none(), "{warning:?}");
        assert_eq!(state.services["redis"].desired, Desired::Running);
        // And a stopped service's desired state is written and read back.
        store.save(&sample()).unwrap();
        assert_eq!(store.load().0.services["redis"].desired, Desired::Stopped);
    }

    #[test]
    fn round_trip_with_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path().join("state"));
        assert_eq!(store.load().0.services.len(), 0);
        store.save(&sample()).unwrap();
        store.save(&sample()).unwrap();
        let (back, warning) = store.load();
        assert_eq!(back, sample());
        assert!(warning.is_none());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(store.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            let mode = fs::metadata(dir.path().join("state"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o700);
        }
        // No temporary files are left behind.
        let names: Vec<_> = fs::read_dir(dir.path().join("state"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(FILE_NAME)]);
    }

    #[test]
    fn corrupt_file_is_moved_aside_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path());
        fs::write(store.path(), b"{ not json").unwrap();
        let (state, warning) = store.load();
        assert!(state.services.is_empty());
        let warning = warning.unwrap();
        assert!(warning.contains("moved it to"), "{warning}");
        assert!(!store.path().exists());
        let aside = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .find(|n| n.starts_with("heal-state.json.corrupt-"))
            .unwrap();
        assert_eq!(
            fs::read(dir.path().join(aside)).unwrap(),
            b"{ not json".to_vec()
        );
    }
}
