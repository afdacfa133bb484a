//! The conformance suite against the in-memory adapter, directly and through `Arc<dyn>`.

use std::sync::Arc;
use std::time::Duration;

use process_manager::testkit::{self, Fixture};
use process_manager::{MemoryProcessManager, ProcessManagerPort, WithDeadline};

fn fixture() -> Fixture {
    Fixture::new("conf-mem-", "/bin/sleep", &["1000"])
}

#[tokio::test]
async fn conformance_direct() {
    let pm = MemoryProcessManager::new();
    testkit::run_all(&pm, &fixture()).await;
}

#[tokio::test]
async fn conformance_through_arc_dyn() {
    let pm: Arc<dyn ProcessManagerPort> = Arc::new(MemoryProcessManager::new());
    testkit::run_all(pm.as_ref(), &fixture()).await;
}

#[tokio::test]
async fn conformance_through_the_deadline_wrapper() {
    let inner: Arc<dyn ProcessManagerPort> = Arc::new(MemoryProcessManager::new());
    let pm: Arc<dyn ProcessManagerPort> =
        Arc::new(WithDeadline::new(inner, Duration::from_secs(5)));
    testkit::run_all(pm.as_ref(), &fixture()).await;
}
