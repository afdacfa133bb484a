//! Waiting, within a bound, until something holds: for tests that watch another process or a
//! daemon settle. A bound on a wait, not a timing assertion.

use std::future::Future;
use std::time::Duration;

/// How often a condition is tried again.
const EVERY: Duration = Duration::from_millis(50);

/// Tries `probe` until it gives `Some`, every 50 ms for at most `limit`, and returns the value;
/// panics naming `what` when the limit passes. Uses tokio's clock, so paused-time tests work.
pub async fn until<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let give_up = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        if tokio::time::Instant::now() >= give_up {
            panic!("gave up waiting for {what} after {limit:?}");
        }
        tokio::time::sleep(EVERY).await;
    }
}

/// [`until`] for a plain condition.
pub async fn until_true(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    until(what, limit, || std::future::ready(cond().then_some(()))).await
}

/// [`until`] for code outside an async runtime: sleeps the thread between tries.
pub fn until_blocking<T>(what: &str, limit: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let give_up = std::time::Instant::now() + limit;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        if std::time::Instant::now() >= give_up {
            panic!("gave up waiting for {what} after {limit:?}");
        }
        std::thread::sleep(EVERY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_the_first_value() {
        let mut n = 0;
        let got = until("n to reach 3", Duration::from_secs(5), || {
            n += 1;
            std::future::ready((n >= 3).then_some(n))
        })
        .await;
        assert_eq!(got, 3);
    }

    #[test]
    #[should_panic(expected = "gave up waiting for never")]
    fn blocking_gives_up_naming_what() {
        until_blocking::<()>("never", Duration::from_millis(10), || None);
    }
}
