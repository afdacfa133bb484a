//! The pure parts of healing: hysteresis, backoff with jitter, and the breaker. No clock, no
//! I/O: times come in as milliseconds and randomness as a seeded RNG, so each rule is tested on
//! its own.

use std::time::Duration;

use crate::inventory::HealPolicy;
use crate::state::{BreakerRecord, BreakerState};

/// N-down / M-up hysteresis over probe rounds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Hysteresis {
    /// Consecutive failed rounds (reset by a pass, and when a heal starts).
    pub(crate) failures: u32,
    /// Consecutive passing rounds.
    pub(crate) passes: u32,
    /// Down: `failures_to_down` failures seen, not yet `passes_to_up` passes since.
    pub(crate) down: bool,
    /// A failure was seen since the service was last healthy.
    pub(crate) had_failure: bool,
    /// At least one round was seen.
    pub(crate) seen: bool,
}

/// What one round changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transition {
    /// Nothing to report beyond the round itself.
    None,
    /// It reached `passes_to_up` passes after failures.
    Recovered,
}

impl Hysteresis {
    pub(crate) fn record(&mut self, passed: bool, policy: &HealPolicy) -> Transition {
        self.seen = true;
        if passed {
            self.passes = self.passes.saturating_add(1);
            self.failures = 0;
            if self.passes >= policy.passes_to_up && (self.down || self.had_failure) {
                self.down = false;
                self.had_failure = false;
                return Transition::Recovered;
            }
        } else {
            self.failures = self.failures.saturating_add(1);
            self.passes = 0;
            self.had_failure = true;
            if self.failures >= policy.failures_to_down {
                self.down = true;
            }
        }
        Transition::None
    }

    /// Healthy: passing, with no failure pending (a recovery already counted its passes).
    pub(crate) fn healthy(&self) -> bool {
        self.seen && !self.down && !self.had_failure && self.passes >= 1
    }

    /// Enough failures since the last heal started to act (again).
    pub(crate) fn wants_heal(&self, policy: &HealPolicy) -> bool {
        self.down && self.failures >= policy.failures_to_down
    }
}

/// The wait after attempt `attempt` (1-based) before the next one:
/// `initial * multiplier^(attempt-1)`, capped at `max`, spread by ±`jitter`.
pub(crate) fn backoff(policy: &HealPolicy, attempt: u32, rng: &mut fastrand::Rng) -> Duration {
    let exp = attempt.saturating_sub(1).min(64) as i32;
    let base = policy.backoff_initial.as_secs_f64() * policy.backoff_multiplier.powi(exp);
    let capped = base.min(policy.backoff_max.as_secs_f64());
    let spread = if policy.jitter > 0.0 {
        1.0 + policy.jitter * (2.0 * rng.f64() - 1.0)
    } else {
        1.0
    };
    Duration::from_secs_f64((capped * spread).max(0.0))
}

/// What the breaker did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BreakerChange {
    /// Nothing.
    None,
    /// It opened (a person is called).
    Opened,
    /// The cool-down passed.
    HalfOpened,
    /// It closed.
    Closed,
}

/// Records a failed heal at `now`. Opens at the threshold within the window, or at once when the
/// half-open trial failed.
pub(crate) fn breaker_failure(
    b: &mut BreakerRecord,
    policy: &HealPolicy,
    now: u64,
) -> BreakerChange {
    let window = policy.breaker_window.as_millis() as u64;
    b.failures_ms.push(now);
    b.failures_ms.retain(|&t| now.saturating_sub(t) <= window);
    let open = match b.state {
        BreakerState::Closed => b.failures_ms.len() as u32 >= policy.breaker_threshold,
        BreakerState::HalfOpen => true,
        BreakerState::Open => false,
    };
    if open {
        b.state = BreakerState::Open;
        b.opened_ms = Some(now);
        b.half_open_ms = None;
        b.trial_used = false;
        BreakerChange::Opened
    } else {
        BreakerChange::None
    }
}

/// Moves the breaker on with time: open -> half-open after the cool-down; half-open (or a closed
/// one holding failures) -> closed after the service has been healthy since `healthy_since` for
/// `stable_after`.
pub(crate) fn breaker_tick(
    b: &mut BreakerRecord,
    policy: &HealPolicy,
    now: u64,
    healthy_since: Option<u64>,
) -> BreakerChange {
    let stable = policy.stable_after.as_millis() as u64;
    match b.state {
        BreakerState::Open => {
            let cooldown = policy.breaker_cooldown.as_millis() as u64;
            if b.opened_ms.is_none_or(|t| now >= t + cooldown) {
                b.state = BreakerState::HalfOpen;
                b.half_open_ms = Some(now);
                b.trial_used = false;
                return BreakerChange::HalfOpened;
            }
            BreakerChange::None
        }
        BreakerState::HalfOpen => {
            let since = healthy_since.map(|h| h.max(b.half_open_ms.unwrap_or(h)));
            if since.is_some_and(|s| now >= s + stable) {
                *b = BreakerRecord::default();
                return BreakerChange::Closed;
            }
            BreakerChange::None
        }
        BreakerState::Closed => {
            if healthy_since.is_some_and(|s| now >= s + stable) {
                b.failures_ms.clear();
            }
            BreakerChange::None
        }
    }
}

/// Whether a heal may run now; takes the half-open trial when it does.
pub(crate) fn breaker_allows(b: &mut BreakerRecord) -> bool {
    match b.state {
        BreakerState::Closed => true,
        BreakerState::Open => false,
        BreakerState::HalfOpen if b.trial_used => false,
        BreakerState::HalfOpen => {
            b.trial_used = true;
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> HealPolicy {
        HealPolicy {
            failures_to_down: 3,
            passes_to_up: 2,
            jitter: 0.0,
            backoff_initial: Duration::from_secs(10),
            backoff_max: Duration::from_secs(60),
            breaker_threshold: 3,
            breaker_window: Duration::from_secs(100),
            breaker_cooldown: Duration::from_secs(50),
            stable_after: Duration::from_secs(30),
            ..HealPolicy::default()
        }
    }

    #[test]
    fn hysteresis_needs_n_failures_and_m_passes() {
        let p = policy();
        let mut h = Hysteresis::default();
        h.record(false, &p);
        h.record(false, &p);
        assert!(!h.wants_heal(&p));
        h.record(false, &p);
        assert!(h.wants_heal(&p));
        assert_eq!(h.record(true, &p), Transition::None);
        assert!(h.down);
        assert_eq!(h.record(true, &p), Transition::Recovered);
        assert!(!h.down);
        assert!(h.healthy());
    }

    #[test]
    fn flapping_never_goes_down() {
        let p = policy();
        let mut h = Hysteresis::default();
        for _ in 0..10 {
            h.record(false, &p);
            h.record(false, &p);
            h.record(true, &p);
        }
        assert!(!h.down);
    }

    #[test]
    fn backoff_grows_caps_and_jitters_reproducibly() {
        let mut p = policy();
        let mut rng = fastrand::Rng::with_seed(7);
        let waits: Vec<u64> = (1..=5)
            .map(|a| backoff(&p, a, &mut rng).as_secs())
            .collect();
        assert_eq!(waits, vec![10, 20, 40, 60, 60]);
        p.jitter = 0.5;
        let a: Vec<Duration> = (1..=4)
            .map(|n| backoff(&p, n, &mut fastrand::Rng::with_seed(n as u64)))
            .collect();
        let b: Vec<Duration> = (1..=4)
            .map(|n| backoff(&p, n, &mut fastrand::Rng::with_seed(n as u64)))
            .collect();
        assert_eq!(a, b, "same seed, same waits");
        for (n, d) in a.iter().enumerate() {
            let base = [10.0, 20.0, 40.0, 60.0][n];
            let s = d.as_secs_f64();
            assert!(s >= base * 0.5 && s <= base * 1.5, "{n}: {s}");
        }
        assert!(a.iter().any(|d| d.as_secs_f64().fract() != 0.0));
    }

    #[test]
    fn breaker_opens_half_opens_and_closes() {
        let p = policy();
        let mut b = BreakerRecord::default();
        assert_eq!(breaker_failure(&mut b, &p, 0), BreakerChange::None);
        assert_eq!(breaker_failure(&mut b, &p, 10_000), BreakerChange::None);
        assert_eq!(breaker_failure(&mut b, &p, 20_000), BreakerChange::Opened);
        assert!(!breaker_allows(&mut b));
        assert_eq!(breaker_tick(&mut b, &p, 69_000, None), BreakerChange::None);
        assert_eq!(
            breaker_tick(&mut b, &p, 70_000, None),
            BreakerChange::HalfOpened
        );
        assert!(breaker_allows(&mut b), "one trial");
        assert!(!breaker_allows(&mut b), "only one");
        // Healthy from 80 s: closes 30 s later.
        assert_eq!(
            breaker_tick(&mut b, &p, 100_000, Some(80_000)),
            BreakerChange::None
        );
        assert_eq!(
            breaker_tick(&mut b, &p, 110_000, Some(80_000)),
            BreakerChange::Closed
        );
        assert_eq!(b, BreakerRecord::default());
    }

    #[test]
    fn failures_outside_the_window_do_not_count_and_a_failed_trial_reopens() {
        let p = policy();
        let mut b = BreakerRecord::default();
        breaker_failure(&mut b, &p, 0);
        breaker_failure(&mut b, &p, 50_000);
        assert_eq!(breaker_failure(&mut b, &p, 150_000), BreakerChange::None);
        assert_eq!(b.failures_ms, vec![50_000, 150_000]);
        b.state = BreakerState::HalfOpen;
        assert_eq!(breaker_failure(&mut b, &p, 160_000), BreakerChange::Opened);
        assert_eq!(b.opened_ms, Some(160_000));
    }
}
