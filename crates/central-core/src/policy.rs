//! The pure parts of healing: hysteresis, backoff with jitter, and the breaker. No clock, no
//! I/O: times come in as milliseconds and randomness as a seeded RNG, so each rule is tested on
//! its own. Each rule takes only its own validated config ([`Hysteresis`], [`Backoff`],
//! [`Breaker`]); the breaker works on [`LiveBreaker`], converted from and to the persisted
//! [`BreakerRecord`] at the state file's boundary.

use std::collections::VecDeque;
use std::time::Duration;

use crate::model::{Backoff, Breaker, Hysteresis};
use crate::state::{BreakerRecord, BreakerState};

/// N-down / M-up counting over probe rounds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RoundCounter {
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

impl RoundCounter {
    pub(crate) fn record(&mut self, passed: bool, rule: &Hysteresis) -> Transition {
        self.seen = true;
        if passed {
            self.passes = self.passes.saturating_add(1);
            self.failures = 0;
            if self.passes >= rule.passes_to_up() && (self.down || self.had_failure) {
                self.down = false;
                self.had_failure = false;
                return Transition::Recovered;
            }
        } else {
            self.failures = self.failures.saturating_add(1);
            self.passes = 0;
            self.had_failure = true;
            if self.failures >= rule.failures_to_down() {
                self.down = true;
            }
        }
        Transition::None
    }

    /// A pushed exit the probe confirms: the round about to be recorded as failed is the last
    /// one needed to act (hysteresis is for health probes, not for facts).
    pub(crate) fn exit_seen(&mut self, rule: &Hysteresis) {
        self.failures = self.failures.max(rule.failures_to_down() - 1);
    }

    /// Healthy: passing, with no failure pending (a recovery already counted its passes).
    pub(crate) fn healthy(&self) -> bool {
        self.seen && !self.down && !self.had_failure && self.passes >= 1
    }

    /// Enough failures since the last heal started to act (again).
    pub(crate) fn wants_heal(&self, rule: &Hysteresis) -> bool {
        self.down && self.failures >= rule.failures_to_down()
    }
}

/// The wait after attempt `attempt` (1-based) before the next one:
/// `initial * multiplier^(attempt-1)`, capped at `max`, spread by ±`jitter`.
pub(crate) fn backoff(rule: &Backoff, attempt: u32, rng: &mut fastrand::Rng) -> Duration {
    let exp = attempt.saturating_sub(1).min(64) as i32;
    let base = rule.initial().as_secs_f64() * rule.multiplier().powi(exp);
    let capped = base.min(rule.max().as_secs_f64());
    let spread = if rule.jitter() > 0.0 {
        1.0 + rule.jitter() * (2.0 * rng.f64() - 1.0)
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

/// Where the breaker stands, with the times each position needs (so an open breaker always
/// knows when it opened: the record's loose `Option`s cannot say otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    Closed,
    Open {
        opened_ms: u64,
    },
    HalfOpen {
        opened_ms: u64,
        since_ms: u64,
        trial_used: bool,
    },
}

/// A service's breaker as the loop works on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LiveBreaker {
    position: Position,
    /// When heals failed (ms), oldest first, within the window.
    failures_ms: VecDeque<u64>,
}

impl Default for LiveBreaker {
    fn default() -> Self {
        LiveBreaker {
            position: Position::Closed,
            failures_ms: VecDeque::new(),
        }
    }
}

impl LiveBreaker {
    /// From the persisted record (a missing time reads as the epoch: long past).
    pub(crate) fn from_record(record: &BreakerRecord) -> Self {
        let opened_ms = record.opened_ms.unwrap_or(0);
        let position = match record.state {
            BreakerState::Closed => Position::Closed,
            BreakerState::Open => Position::Open { opened_ms },
            BreakerState::HalfOpen => Position::HalfOpen {
                opened_ms,
                since_ms: record.half_open_ms.unwrap_or(0),
                trial_used: record.trial_used,
            },
        };
        LiveBreaker {
            position,
            failures_ms: record.failures_ms.iter().copied().collect(),
        }
    }

    /// The record to persist.
    pub(crate) fn to_record(&self) -> BreakerRecord {
        let (state, opened_ms, half_open_ms, trial_used) = match self.position {
            Position::Closed => (BreakerState::Closed, None, None, false),
            Position::Open { opened_ms } => (BreakerState::Open, Some(opened_ms), None, false),
            Position::HalfOpen {
                opened_ms,
                since_ms,
                trial_used,
            } => (
                BreakerState::HalfOpen,
                Some(opened_ms),
                Some(since_ms),
                trial_used,
            ),
        };
        BreakerRecord {
            state,
            failures_ms: self.failures_ms.iter().copied().collect(),
            opened_ms,
            half_open_ms,
            trial_used,
        }
    }

    /// Its position.
    pub(crate) fn state(&self) -> BreakerState {
        match self.position {
            Position::Closed => BreakerState::Closed,
            Position::Open { .. } => BreakerState::Open,
            Position::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Failed heals counted in the window.
    pub(crate) fn failures(&self) -> usize {
        self.failures_ms.len()
    }

    /// Records a failed heal at `now`. Opens at the threshold within the window, or at once
    /// when the half-open trial failed.
    pub(crate) fn failure(&mut self, rule: &Breaker, now: u64) -> BreakerChange {
        let window = rule.window().as_millis() as u64;
        self.failures_ms.push_back(now);
        self.failures_ms
            .retain(|&t| now.saturating_sub(t) <= window);
        let open = match self.position {
            Position::Closed => self.failures_ms.len() as u32 >= rule.threshold(),
            Position::HalfOpen { .. } => true,
            Position::Open { .. } => false,
        };
        if open {
            self.position = Position::Open { opened_ms: now };
            BreakerChange::Opened
        } else {
            BreakerChange::None
        }
    }

    /// Moves the breaker on with time: open -> half-open after the cool-down; half-open (or a
    /// closed one holding failures) -> closed after the service has been healthy since
    /// `healthy_since` for `stable_after`.
    pub(crate) fn tick(
        &mut self,
        rule: &Breaker,
        stable_after: Duration,
        now: u64,
        healthy_since: Option<u64>,
    ) -> BreakerChange {
        let stable = stable_after.as_millis() as u64;
        match self.position {
            Position::Open { opened_ms } => {
                let cooldown = rule.cooldown().as_millis() as u64;
                if now >= opened_ms.saturating_add(cooldown) {
                    self.position = Position::HalfOpen {
                        opened_ms,
                        since_ms: now,
                        trial_used: false,
                    };
                    return BreakerChange::HalfOpened;
                }
                BreakerChange::None
            }
            Position::HalfOpen { since_ms, .. } => {
                let since = healthy_since.map(|h| h.max(since_ms));
                if since.is_some_and(|s| now >= s + stable) {
                    *self = LiveBreaker::default();
                    return BreakerChange::Closed;
                }
                BreakerChange::None
            }
            Position::Closed => {
                if healthy_since.is_some_and(|s| now >= s + stable) {
                    self.failures_ms.clear();
                }
                BreakerChange::None
            }
        }
    }

    /// Whether a heal may run now; takes the half-open trial when it does.
    pub(crate) fn allows(&mut self) -> bool {
        match &mut self.position {
            Position::Closed => true,
            Position::Open { .. } => false,
            Position::HalfOpen { trial_used, .. } if *trial_used => false,
            Position::HalfOpen { trial_used, .. } => {
                *trial_used = true;
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hysteresis() -> Hysteresis {
        Hysteresis::new(3, 2).unwrap()
    }

    fn backoff_rule(jitter: f64) -> Backoff {
        Backoff::new(
            Duration::from_secs(10),
            Duration::from_secs(60),
            2.0,
            jitter,
        )
        .unwrap()
    }

    fn breaker() -> Breaker {
        Breaker::new(3, Duration::from_secs(100), Duration::from_secs(50)).unwrap()
    }

    const STABLE: Duration = Duration::from_secs(30);

    #[test]
    fn hysteresis_needs_n_failures_and_m_passes() {
        let p = hysteresis();
        let mut h = RoundCounter::default();
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
        let p = hysteresis();
        let mut h = RoundCounter::default();
        for _ in 0..10 {
            h.record(false, &p);
            h.record(false, &p);
            h.record(true, &p);
        }
        assert!(!h.down);
    }

    #[test]
    fn backoff_grows_caps_and_jitters_reproducibly() {
        let p = backoff_rule(0.0);
        let mut rng = fastrand::Rng::with_seed(7);
        let waits: Vec<u64> = (1..=5)
            .map(|a| backoff(&p, a, &mut rng).as_secs())
            .collect();
        assert_eq!(waits, vec![10, 20, 40, 60, 60]);
        let p = backoff_rule(0.5);
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
        let p = breaker();
        let mut b = LiveBreaker::default();
        assert_eq!(b.failure(&p, 0), BreakerChange::None);
        assert_eq!(b.failure(&p, 10_000), BreakerChange::None);
        assert_eq!(b.failure(&p, 20_000), BreakerChange::Opened);
        assert!(!b.allows());
        assert_eq!(b.tick(&p, STABLE, 69_000, None), BreakerChange::None);
        assert_eq!(b.tick(&p, STABLE, 70_000, None), BreakerChange::HalfOpened);
        assert!(b.allows(), "one trial");
        assert!(!b.allows(), "only one");
        // Healthy from 80 s: closes 30 s later.
        assert_eq!(
            b.tick(&p, STABLE, 100_000, Some(80_000)),
            BreakerChange::None
        );
        assert_eq!(
            b.tick(&p, STABLE, 110_000, Some(80_000)),
            BreakerChange::Closed
        );
        assert_eq!(b, LiveBreaker::default());
        assert_eq!(b.to_record(), BreakerRecord::default());
    }

    #[test]
    fn failures_outside_the_window_do_not_count_and_a_failed_trial_reopens() {
        let p = breaker();
        let mut b = LiveBreaker::default();
        b.failure(&p, 0);
        b.failure(&p, 50_000);
        assert_eq!(b.failure(&p, 150_000), BreakerChange::None);
        assert_eq!(b.to_record().failures_ms, vec![50_000, 150_000]);
        let mut record = b.to_record();
        record.state = BreakerState::HalfOpen;
        let mut b = LiveBreaker::from_record(&record);
        assert_eq!(b.failure(&p, 160_000), BreakerChange::Opened);
        assert_eq!(b.to_record().opened_ms, Some(160_000));
    }

    #[test]
    fn the_persisted_record_round_trips_through_the_working_breaker() {
        let half_open = BreakerRecord {
            state: BreakerState::HalfOpen,
            failures_ms: vec![1, 2, 3],
            opened_ms: Some(3),
            half_open_ms: Some(60_003),
            trial_used: true,
        };
        let open = BreakerRecord {
            state: BreakerState::Open,
            failures_ms: vec![5],
            opened_ms: Some(5),
            half_open_ms: None,
            trial_used: false,
        };
        for record in [half_open, open, BreakerRecord::default()] {
            let live = LiveBreaker::from_record(&record);
            assert_eq!(live.state(), record.state);
            assert_eq!(live.to_record(), record);
        }
    }
}
