//! When and how a service is healed: three small configs, each checked when it is built
//! ([`Hysteresis`], [`Backoff`], [`Breaker`]), and the [`HealPolicy`] that holds them with the
//! escalation settings.

use std::time::Duration;

use serde::Serialize;

/// A policy value that was refused: the field and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct PolicyError {
    /// The field, as written in the inventory (`backoff_max`).
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

fn refuse<T>(field: &'static str, reason: impl Into<String>) -> Result<T, PolicyError> {
    Err(PolicyError {
        field,
        reason: reason.into(),
    })
}

/// N-down / M-up over probe rounds: a service is down after `failures_to_down` failed rounds
/// in a row and up again after `passes_to_up` passing ones. Both at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Hysteresis {
    failures_to_down: u32,
    passes_to_up: u32,
}

impl Hysteresis {
    /// Checks both counts are at least 1.
    pub fn new(failures_to_down: u32, passes_to_up: u32) -> Result<Self, PolicyError> {
        if failures_to_down == 0 {
            return refuse("failures_to_down", "must be at least 1");
        }
        if passes_to_up == 0 {
            return refuse("passes_to_up", "must be at least 1");
        }
        Ok(Hysteresis {
            failures_to_down,
            passes_to_up,
        })
    }

    /// Consecutive failed rounds before the service counts as down (N).
    pub fn failures_to_down(&self) -> u32 {
        self.failures_to_down
    }

    /// Consecutive passing rounds before it counts as healthy again (M).
    pub fn passes_to_up(&self) -> u32 {
        self.passes_to_up
    }
}

/// The waits between heal attempts: `initial * multiplier^(attempt-1)`, capped at `max`,
/// spread by ±`jitter` so nodes do not act in lockstep.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    multiplier: f64,
    jitter: f64,
}

impl Backoff {
    /// Checks `max >= initial`, a multiplier in 1..=100 and a jitter fraction in 0..=1.
    pub fn new(
        initial: Duration,
        max: Duration,
        multiplier: f64,
        jitter: f64,
    ) -> Result<Self, PolicyError> {
        if !(0.0..=1.0).contains(&jitter) {
            return refuse("jitter", "must be a fraction between 0 and 1 (0.2 = ±20 %)");
        }
        if !(1.0..=100.0).contains(&multiplier) {
            return refuse("backoff_multiplier", "must be between 1 and 100");
        }
        if max < initial {
            return refuse("backoff_max", "must not be below backoff_initial");
        }
        Ok(Backoff {
            initial,
            max,
            multiplier,
            jitter,
        })
    }

    /// The wait after the first attempt of an episode before the second.
    pub fn initial(&self) -> Duration {
        self.initial
    }

    /// The longest wait between attempts.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// How much each wait grows.
    pub fn multiplier(&self) -> f64 {
        self.multiplier
    }

    /// Random spread of each wait, as a fraction (0.2 = ±20 %).
    pub fn jitter(&self) -> f64 {
        self.jitter
    }
}

/// The circuit breaker: `threshold` failed heals within `window` open it; it stays open for
/// `cooldown`, then allows one half-open trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Breaker {
    threshold: u32,
    window: Duration,
    cooldown: Duration,
}

impl Breaker {
    /// Checks the threshold is at least 1 and the window is not zero.
    pub fn new(threshold: u32, window: Duration, cooldown: Duration) -> Result<Self, PolicyError> {
        if threshold == 0 {
            return refuse("breaker_threshold", "must be at least 1");
        }
        if window.is_zero() {
            return refuse("breaker_window", "must be above zero");
        }
        Ok(Breaker {
            threshold,
            window,
            cooldown,
        })
    }

    /// Failed heals within the window that open the breaker.
    pub fn threshold(&self) -> u32 {
        self.threshold
    }

    /// The window failed heals are counted in.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// How long the breaker stays open before one half-open trial.
    pub fn cooldown(&self) -> Duration {
        self.cooldown
    }
}

/// When and how a service is healed. Every value has a default (see [`HealPolicy::default`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealPolicy {
    /// When a service counts as down and up again.
    pub hysteresis: Hysteresis,
    /// The waits between attempts.
    pub backoff: Backoff,
    /// When the loop stops acting and calls a person.
    pub breaker: Breaker,
    /// After a heal starts, no further step is taken for this long (the service is booting).
    pub grace: Duration,
    /// After the service (or the agent) starts, its failing health probes do not count for
    /// this long (it is still binding its port). A pushed exit and the process probe do.
    pub start_grace: Duration,
    /// When stopping it, the time between SIGTERM and SIGKILL (where the agent stops it).
    pub stop_grace: Duration,
    /// Healthy this long: the episode is over (backoff resets, a half-open breaker closes).
    pub stable_after: Duration,
    /// Restarts in one episode before the definition is re-applied instead (needs `config`).
    pub repair_after: u32,
    /// The longest the loop only observes a service the supervisor says it is restarting (or
    /// that says it is starting). launchd never gives up on a crash loop, so past this the
    /// loop climbs its own ladder (restart, repair, breaker, a person) instead of watching.
    pub observe_max: Duration,
}

impl Default for HealPolicy {
    /// Values chosen to heal fast: a pushed exit is restarted at once; a hang is noticed in
    /// two failed 1 s rounds (`loop.interval`, `loop.probe_timeout`: healed in ≈ 2.5 s, measured
    /// in BENCHMARKS.md; the cost is that a service silent for ≈ 2 s, e.g. a long pause, is
    /// restarted: raise `failures_to_down` for one that may pause longer) and restarted, its
    /// process getting 2 s between SIGTERM and SIGKILL; repeated exits or failures back off
    /// 1 s, 2 s, 4 s... up to 5 min, until the service has been healthy for 10 s (the episode
    /// is over: the next exit is restarted at once again; Docker resets its restart back-off
    /// after 10 s up too); five failed heals in 30 min stop the loop acting and call a person.
    fn default() -> Self {
        HealPolicy {
            hysteresis: Hysteresis::new(2, 2).expect("valid default"),
            backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(300), 2.0, 0.2)
                .expect("valid default"),
            breaker: Breaker::new(
                5,
                Duration::from_secs(30 * 60),
                Duration::from_secs(10 * 60),
            )
            .expect("valid default"),
            grace: Duration::from_secs(5),
            start_grace: Duration::from_secs(2),
            stop_grace: Duration::from_secs(2),
            stable_after: Duration::from_secs(10),
            repair_after: 2,
            observe_max: Duration::from_secs(60),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_config_names_what_is_wrong() {
        let s = Duration::from_secs;
        assert_eq!(Hysteresis::new(0, 1).unwrap_err().field, "failures_to_down");
        assert_eq!(Hysteresis::new(1, 0).unwrap_err().field, "passes_to_up");
        assert_eq!(
            Backoff::new(s(1), s(2), 2.0, 5.0).unwrap_err().field,
            "jitter"
        );
        assert_eq!(
            Backoff::new(s(1), s(2), 0.5, 0.1).unwrap_err().field,
            "backoff_multiplier"
        );
        assert_eq!(
            Backoff::new(s(1), s(2), f64::NAN, 0.1).unwrap_err().field,
            "backoff_multiplier"
        );
        let err = Backoff::new(s(3), s(2), 2.0, 0.1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "backoff_max: must not be below backoff_initial"
        );
        assert_eq!(
            Breaker::new(0, s(1), s(1)).unwrap_err().field,
            "breaker_threshold"
        );
        assert_eq!(
            Breaker::new(1, s(0), s(1)).unwrap_err().field,
            "breaker_window"
        );
        assert!(Breaker::new(1, s(1), s(0)).is_ok());
    }
}
