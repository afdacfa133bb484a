//! The wrappers around any process manager: deadlines per operation, faults, recording; and
//! the null adapter keeping nothing per call.

use std::sync::Arc;
use std::time::Duration;

use process_manager::testkit::{instrumented, Fault, Faulty, Injection, Recording};
use process_manager::{
    LabelPattern, MemoryProcessManager, Operation, ProcessError, ProcessManagerPort,
    RestartOutcome, ServiceConfig, ServiceLabel, WithDeadline,
};

fn label(s: &str) -> ServiceLabel {
    ServiceLabel::new(s).unwrap()
}

#[tokio::test(start_paused = true)]
async fn injected_hang_times_out_through_the_deadline_wrapper() {
    let pm = Arc::new(Faulty::new(MemoryProcessManager::new()));
    pm.inject(Injection::new(Operation::Restart, Fault::Hang));
    let bounded: Arc<dyn ProcessManagerPort> =
        Arc::new(WithDeadline::new(pm.clone(), Duration::from_secs(5)));
    let started = tokio::time::Instant::now();
    let err = bounded.restart(&label("x")).await.unwrap_err();
    assert!(
        matches!(err, ProcessError::Timeout { operation: Operation::Restart, after } if after == Duration::from_secs(5)),
        "{err:?}"
    );
    assert!(err.is_retryable());
    // On paused time the clock moved exactly to the deadline, not past it.
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    // Other operations are not affected.
    assert!(matches!(
        bounded.inspect(&label("x")).await,
        Err(ProcessError::NotFound { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn one_operation_can_have_its_own_deadline() {
    let pm = Faulty::new(MemoryProcessManager::new());
    pm.inject(Injection::new(Operation::Enable, Fault::Hang));
    pm.inject(Injection::new(Operation::Restart, Fault::Hang));
    let bounded = WithDeadline::new(pm, Duration::from_secs(5))
        .with_deadline_for(Operation::Enable, Duration::from_secs(60));
    let started = tokio::time::Instant::now();
    let err = bounded
        .enable(&ServiceConfig::new(label("x"), "/bin/true"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProcessError::Timeout { operation: Operation::Enable, after } if after == Duration::from_secs(60)),
        "{err:?}"
    );
    assert_eq!(started.elapsed(), Duration::from_secs(60));
    let err = bounded.restart(&label("x")).await.unwrap_err();
    assert!(matches!(err, ProcessError::Timeout { after, .. } if after == Duration::from_secs(5)));
    assert_eq!(started.elapsed(), Duration::from_secs(65));
}

#[tokio::test]
async fn injected_failure_for_one_label_and_count() {
    let pm = instrumented(MemoryProcessManager::new());
    let a = label("a");
    let b = label("b");
    for l in [&a, &b] {
        pm.enable(&ServiceConfig::new(l.clone(), "/bin/true"))
            .await
            .unwrap();
    }
    pm.inject(
        Injection::new(
            Operation::Restart,
            Fault::fail(|| ProcessError::backend("memory", "boom")),
        )
        .for_target(&a)
        .times(1),
    );
    assert!(pm.restart(&b).await.is_ok());
    assert!(matches!(
        pm.restart(&a).await,
        Err(ProcessError::Backend { .. })
    ));
    assert_eq!(pm.restart(&a).await.unwrap(), RestartOutcome::Restarted);
    assert_eq!(pm.count_for(Operation::Restart, &a), 2);
    assert_eq!(pm.count(Operation::Restart), 3);
}

/// The null adapter runs for the agent's whole life: 100k calls leave a recording wrapper's
/// log at its bound (counts stay exact), and the plain adapter has no log to grow.
#[tokio::test]
async fn a_long_running_adapter_keeps_a_bounded_log() {
    let pm = Recording::with_capacity(MemoryProcessManager::new(), 64);
    let a = label("a");
    pm.enable(&ServiceConfig::new(a.clone(), "/bin/true"))
        .await
        .unwrap();
    for _ in 0..50_000 {
        pm.inspect(&a).await.unwrap();
        pm.list(&LabelPattern::all()).await.unwrap();
    }
    assert_eq!(pm.calls().len(), 64);
    assert_eq!(pm.count_for(Operation::Inspect, &a), 50_000);
    assert_eq!(pm.count(Operation::List), 50_000);
    // The plain adapter (the production `null`) keeps only its services: its debug dump is
    // the same size after 100k more calls.
    let plain = MemoryProcessManager::new();
    plain
        .enable(&ServiceConfig::new(a.clone(), "/bin/true"))
        .await
        .unwrap();
    plain.inspect(&a).await.unwrap();
    let before = format!("{plain:?}").len();
    for _ in 0..100_000 {
        plain.inspect(&a).await.unwrap();
    }
    assert_eq!(format!("{plain:?}").len(), before);
}
