//! `WithDeadline`: every call through it finishes within its operation's deadline.

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

/// Wraps an adapter so that every call finishes within a deadline: one for every operation,
/// and longer (or shorter) ones for chosen operations (bringing a VM up takes minutes; a
/// restart, seconds). Adapters keep their own per-command deadlines; this is the outer bound
/// the heal loop relies on, whatever the adapter does.
///
/// `Op` is the port's operation type; each port crate implements its trait for
/// `WithDeadline<P, Op>` and names it `WithDeadline<P>`.
#[derive(Debug, Clone)]
pub struct WithDeadline<P, Op> {
    inner: P,
    default: Duration,
    per_operation: Vec<(Op, Duration)>,
}

impl<P, Op: Copy + PartialEq> WithDeadline<P, Op> {
    /// Wraps `inner` with `deadline` for every operation.
    pub fn new(inner: P, deadline: Duration) -> Self {
        WithDeadline {
            inner,
            default: deadline,
            per_operation: Vec::new(),
        }
    }

    /// `operation` gets `deadline` instead of the default.
    pub fn with_deadline_for(mut self, operation: Op, deadline: Duration) -> Self {
        self.per_operation.retain(|(op, _)| *op != operation);
        self.per_operation.push((operation, deadline));
        self
    }

    /// The deadline of operations without one of their own.
    pub fn deadline(&self) -> Duration {
        self.default
    }

    /// The deadline of `operation`.
    pub fn deadline_for(&self, operation: Op) -> Duration {
        self.per_operation
            .iter()
            .find(|(op, _)| *op == operation)
            .map_or(self.default, |(_, d)| *d)
    }

    /// The wrapped adapter.
    pub fn inner(&self) -> &P {
        &self.inner
    }

    /// Runs `call` (an `operation` of the inner adapter) under its deadline; a passed deadline
    /// becomes the error `timeout` makes from the operation and the deadline.
    pub async fn bound<T, E>(
        &self,
        operation: Op,
        call: impl Future<Output = Result<T, E>>,
        timeout: impl FnOnce(Op, Duration) -> E,
    ) -> Result<T, E> {
        let deadline = self.deadline_for(operation);
        match tokio::time::timeout(deadline, call).await {
            Ok(r) => r,
            Err(_) => Err(timeout(operation, deadline)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn each_operation_gets_its_own_deadline() {
        let w = WithDeadline::new((), Duration::from_secs(5))
            .with_deadline_for("start", Duration::from_secs(120));
        assert_eq!(w.deadline_for("restart"), Duration::from_secs(5));
        assert_eq!(w.deadline_for("start"), Duration::from_secs(120));
        let started = tokio::time::Instant::now();
        let r: Result<(), (&str, Duration)> = w
            .bound("start", std::future::pending(), |op, d| (op, d))
            .await;
        assert_eq!(r, Err(("start", Duration::from_secs(120))));
        assert_eq!(started.elapsed(), Duration::from_secs(120));
        let r: Result<u8, (&str, Duration)> =
            w.bound("restart", async { Ok(1) }, |op, d| (op, d)).await;
        assert_eq!(r, Ok(1));
    }
}
