//! The conformance suite against the in-memory adapter: directly, through `Arc<dyn>`, through
//! the deadline wrapper and through the test wrappers (which must be transparent).

use std::sync::Arc;
use std::time::Duration;

use process_manager::testkit::{self, Fixture};
use process_manager::{ExitStatus, MemoryProcessManager, ProcessManagerPort, WithDeadline};

/// A fixture whose kill is the memory adapter's simulated crash.
fn fixture(pm: &Arc<MemoryProcessManager>) -> Fixture {
    let pm = pm.clone();
    Fixture::new("conf-mem-", "/bin/sleep", &["1000"])
        .with_kill(move |label, _pid| pm.crash(label, ExitStatus::Signal(9)))
}

process_manager::conformance_tests!(direct, |_| async {
    let pm = Arc::new(MemoryProcessManager::new());
    let fx = fixture(&pm);
    Some((pm, fx))
});

process_manager::conformance_tests!(through_arc_dyn, |_| async {
    let pm = Arc::new(MemoryProcessManager::new());
    let fx = fixture(&pm);
    let shared: Arc<dyn ProcessManagerPort> = pm;
    Some((shared, fx))
});

process_manager::conformance_tests!(through_the_deadline_wrapper, |_| async {
    let pm = Arc::new(MemoryProcessManager::new());
    let fx = fixture(&pm);
    Some((WithDeadline::new(pm, Duration::from_secs(5)), fx))
});

process_manager::conformance_tests!(through_the_test_wrappers, |_| async {
    let pm = Arc::new(MemoryProcessManager::new());
    let fx = fixture(&pm);
    Some((testkit::instrumented(pm), fx))
});

process_manager::conformance_tests!(without_pushed_events, |_| async {
    let pm =
        MemoryProcessManager::with_capabilities(process_manager::Capabilities::basic("memory"));
    Some((pm, Fixture::new("conf-mem-", "/bin/sleep", &["1000"])))
});
