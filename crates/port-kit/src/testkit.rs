//! Test wrappers around any adapter: [`Faulty`] fails or hangs chosen calls, [`Recording`]
//! remembers what was called. Each port crate implements its trait for both, so every port
//! has the same fault API.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::{self, Debug};
use std::ops::Deref;
use std::sync::{Arc, Mutex, MutexGuard};

/// What an injected fault does.
pub enum Fault<E> {
    /// The call returns the error this makes.
    Fail(Arc<dyn Fn() -> E + Send + Sync>),
    /// The call never returns (until its caller's deadline drops it).
    Hang,
}

impl<E> Fault<E> {
    /// A fault that fails with the error `make` returns.
    pub fn fail(make: impl Fn() -> E + Send + Sync + 'static) -> Self {
        Fault::Fail(Arc::new(make))
    }
}

impl<E> Clone for Fault<E> {
    fn clone(&self) -> Self {
        match self {
            Fault::Fail(make) => Fault::Fail(make.clone()),
            Fault::Hang => Fault::Hang,
        }
    }
}

impl<E: fmt::Display> Debug for Fault<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Fail(make) => write!(f, "Fail({})", make()),
            Fault::Hang => f.write_str("Hang"),
        }
    }
}

/// Where and how often a fault applies: an operation, optionally one target (a label, a
/// container name), optionally only the next `n` matching calls.
pub struct Injection<Op, E> {
    operation: Op,
    target: Option<String>,
    fault: Fault<E>,
    remaining: Option<u32>,
}

impl<Op: Debug, E: fmt::Display> Debug for Injection<Op, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Injection")
            .field("operation", &self.operation)
            .field("target", &self.target)
            .field("fault", &self.fault)
            .field("remaining", &self.remaining)
            .finish()
    }
}

impl<Op, E> Injection<Op, E> {
    /// `fault` on every call of `operation`, for every target, until cleared.
    pub fn new(operation: Op, fault: Fault<E>) -> Self {
        Injection {
            operation,
            target: None,
            fault,
            remaining: None,
        }
    }

    /// Only for calls about `target` (a service label, a container name).
    pub fn for_target<T: fmt::Display + ?Sized>(mut self, target: &T) -> Self {
        self.target = Some(target.to_string());
        self
    }

    /// Only for the next `n` matching calls.
    pub fn times(mut self, n: u32) -> Self {
        self.remaining = Some(n);
        self
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic in a test thread must not poison every later assertion.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// An adapter that fails or hangs the calls armed with [`Faulty::inject`], and otherwise
/// passes them on. The first armed injection that matches a call applies.
pub struct Faulty<P, Op, E> {
    inner: P,
    injections: Mutex<Vec<Injection<Op, E>>>,
}

impl<P: Debug, Op: Debug, E: fmt::Display> Debug for Faulty<P, Op, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Faulty")
            .field("inner", &self.inner)
            .field("injections", &*lock(&self.injections))
            .finish()
    }
}

impl<P, Op: Copy + PartialEq, E> Faulty<P, Op, E> {
    /// Wraps `inner` with no fault armed.
    pub fn new(inner: P) -> Self {
        Faulty {
            inner,
            injections: Mutex::new(Vec::new()),
        }
    }

    /// Arms a fault.
    pub fn inject(&self, injection: Injection<Op, E>) {
        lock(&self.injections).push(injection);
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        lock(&self.injections).clear();
    }

    /// Applies the first armed fault that matches `operation` on `target`: its error, or a
    /// hang. `Ok` when none matches (the call goes on to the inner adapter).
    pub async fn enter(&self, operation: Op, target: Option<&str>) -> Result<(), E> {
        let fault = {
            let mut injections = lock(&self.injections);
            injections
                .iter_mut()
                .find(|i| {
                    i.operation == operation
                        && i.remaining != Some(0)
                        && (i.target.is_none() || i.target.as_deref() == target)
                })
                .map(|i| {
                    if let Some(n) = i.remaining.as_mut() {
                        *n -= 1;
                    }
                    i.fault.clone()
                })
        };
        match fault {
            None => Ok(()),
            Some(Fault::Fail(make)) => Err(make()),
            Some(Fault::Hang) => std::future::pending().await,
        }
    }
}

/// So a test reaches the wrapped adapter's own methods (e.g. the memory adapter's `crash`).
impl<P, Op, E> Deref for Faulty<P, Op, E> {
    type Target = P;
    fn deref(&self) -> &P {
        &self.inner
    }
}

/// One call made to an adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call<Op> {
    /// The operation.
    pub operation: Op,
    /// What it was about (a label, a container name), if anything.
    pub target: Option<String>,
}

/// How many recent calls a [`Recording`] keeps by default.
pub const DEFAULT_LOG_CAPACITY: usize = 4096;

#[derive(Debug)]
struct Log<Op> {
    recent: VecDeque<Call<Op>>,
    capacity: usize,
    counts: BTreeMap<(Op, Option<String>), u64>,
}

/// An adapter that records every call before passing it on: the most recent calls (a bounded
/// log, oldest dropped first) and exact counts per operation and target, which grow only with
/// the number of distinct targets. Put it outside a [`Faulty`] to count failed and hung calls
/// too.
pub struct Recording<P, Op> {
    inner: P,
    log: Mutex<Log<Op>>,
}

impl<P: Debug, Op: Debug> Debug for Recording<P, Op> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let log = lock(&self.log);
        f.debug_struct("Recording")
            .field("inner", &self.inner)
            .field("recent", &log.recent.len())
            .finish()
    }
}

impl<P, Op: Copy + Ord> Recording<P, Op> {
    /// Wraps `inner`, keeping the last [`DEFAULT_LOG_CAPACITY`] calls.
    pub fn new(inner: P) -> Self {
        Self::with_capacity(inner, DEFAULT_LOG_CAPACITY)
    }

    /// Wraps `inner`, keeping the last `capacity` calls.
    pub fn with_capacity(inner: P, capacity: usize) -> Self {
        Recording {
            inner,
            log: Mutex::new(Log {
                recent: VecDeque::new(),
                capacity,
                counts: BTreeMap::new(),
            }),
        }
    }

    /// Records a call of `operation` about `target`.
    pub fn record(&self, operation: Op, target: Option<&str>) {
        let mut log = lock(&self.log);
        let target = target.map(str::to_string);
        *log.counts.entry((operation, target.clone())).or_default() += 1;
        if log.capacity == 0 {
            return;
        }
        if log.recent.len() == log.capacity {
            log.recent.pop_front();
        }
        log.recent.push_back(Call { operation, target });
    }

    /// The most recent calls, oldest first (at most the log's capacity).
    pub fn calls(&self) -> Vec<Call<Op>> {
        lock(&self.log).recent.iter().cloned().collect()
    }

    /// How many calls of `operation` were made, about any target.
    pub fn count(&self, operation: Op) -> u64 {
        lock(&self.log)
            .counts
            .iter()
            .filter(|((op, _), _)| *op == operation)
            .map(|(_, n)| n)
            .sum()
    }

    /// How many calls of `operation` were made about `target`.
    pub fn count_for<T: fmt::Display + ?Sized>(&self, operation: Op, target: &T) -> u64 {
        lock(&self.log)
            .counts
            .get(&(operation, Some(target.to_string())))
            .copied()
            .unwrap_or(0)
    }

    /// Forgets the calls made so far (log and counts).
    pub fn clear_calls(&self) {
        let mut log = lock(&self.log);
        log.recent.clear();
        log.counts.clear();
    }
}

/// So a test reaches the wrapped adapter's own methods (`inject`, `crash`...).
impl<P, Op> Deref for Recording<P, Op> {
    type Target = P;
    fn deref(&self) -> &P {
        &self.inner
    }
}

/// One test per scenario: the body of each port's `conformance_tests!`. `($testkit)` is the path
/// of the port's testkit module, where each scenario is an `async fn(&port, &fixture)`; `$setup`
/// takes the scenario's name and gives `Option<(port, fixture)>` (`None` skips, as a real
/// daemon's absence does).
#[doc(hidden)]
#[macro_export]
macro_rules! conformance_scenarios {
    (($($testkit:tt)+), $module:ident, #[$test:meta], $setup:expr, $($scenario:ident),+ $(,)?) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            use $($testkit)+ as __testkit;
            $(
                #[$test]
                async fn $scenario() {
                    let setup = $setup;
                    if let Some((port, fixture)) = setup(stringify!($scenario)).await {
                        __testkit::$scenario(&port, &fixture).await;
                    }
                }
            )+
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_recording_keeps_a_bounded_log_and_exact_counts() {
        let rec: Recording<(), u8> = Recording::with_capacity((), 100);
        for i in 0..100_000u32 {
            rec.record(1, Some(if i % 2 == 0 { "a" } else { "b" }));
        }
        assert_eq!(rec.calls().len(), 100);
        assert_eq!(rec.count(1), 100_000);
        assert_eq!(rec.count_for(1, "a"), 50_000);
        assert_eq!(lock(&rec.log).counts.len(), 2, "one counter per target");
        rec.clear_calls();
        assert_eq!(rec.count(1), 0);
    }

    #[tokio::test]
    async fn an_injection_applies_to_its_target_the_given_number_of_times() {
        let f: Faulty<(), u8, String> = Faulty::new(());
        f.inject(
            Injection::new(1, Fault::fail(|| "boom".to_string()))
                .for_target("a")
                .times(1),
        );
        assert_eq!(f.enter(1, Some("b")).await, Ok(()));
        assert_eq!(f.enter(2, Some("a")).await, Ok(()));
        assert_eq!(f.enter(1, Some("a")).await, Err("boom".to_string()));
        assert_eq!(f.enter(1, Some("a")).await, Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_hang_never_returns() {
        let f: Faulty<(), u8, String> = Faulty::new(());
        f.inject(Injection::new(1, Fault::Hang));
        let r = tokio::time::timeout(std::time::Duration::from_secs(3600), f.enter(1, None)).await;
        assert!(r.is_err());
        f.clear_faults();
        assert_eq!(f.enter(1, None).await, Ok(()));
    }
}
