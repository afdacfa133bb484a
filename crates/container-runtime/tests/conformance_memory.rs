//! The conformance suite against the in-memory runtime (directly, through `Arc<dyn>`, through
//! the deadline and test wrappers), and the deadline and fault behaviour callers rely on.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use container_runtime::testkit::{instrumented, Fault, Fixture, Injection};
use container_runtime::{
    ComposeService, ContainerRef, ContainerRestartOutcome, ContainerRuntimePort, EnginePort,
    EnsureRunningOutcome, MemoryRuntime, RuntimeError, RuntimeOperation, SplitRuntime,
    SubstratePort, WithDeadline,
};

fn web() -> ComposeService {
    ComposeService {
        project: "central".into(),
        file: "/opt/central/compose.yaml".into(),
        service: "web".into(),
    }
}

fn fixture() -> Fixture {
    Fixture::new(false)
        .with_container("redis", "com.joelclaw.stack=core")
        .with_compose(web())
}

fn runtime() -> MemoryRuntime {
    let rt = MemoryRuntime::new();
    rt.add_container("redis", &[("com.joelclaw.stack", "core")]);
    rt.add_container("other", &[("com.joelclaw.stack", "extra")]);
    rt.add_compose_service(&web());
    rt
}

/// A fixture that takes `rt` down the way the in-memory runtime fails: no longer healthy.
fn taking_down(fx: Fixture, rt: &Arc<MemoryRuntime>) -> Fixture {
    let rt = rt.clone();
    fx.with_take_down(move || {
        let rt = rt.clone();
        async move { rt.set_healthy(false) }
    })
}

container_runtime::substrate_conformance_tests!(substrate_half, |_| async {
    let rt = Arc::new(runtime());
    let fx = taking_down(Fixture::new(false), &rt);
    let rt: Arc<dyn ContainerRuntimePort> = rt;
    Some((rt, fx))
});

container_runtime::engine_conformance_tests!(engine_half, |_| async {
    Some((runtime(), fixture()))
});

container_runtime::conformance_tests!(split_into_two_halves, |_| async {
    let substrate = Arc::new(MemoryRuntime::new());
    let engine = Arc::new(runtime());
    let fx = taking_down(fixture(), &substrate);
    Some((SplitRuntime::new(substrate, engine), fx))
});

container_runtime::conformance_tests!(direct, |_| async { Some((runtime(), fixture())) });

container_runtime::conformance_tests!(through_arc_dyn, |_| async {
    let rt = Arc::new(runtime());
    let fx = taking_down(fixture(), &rt);
    let rt: Arc<dyn ContainerRuntimePort> = rt;
    Some((rt, fx))
});

container_runtime::conformance_tests!(through_the_deadline_wrapper, |_| async {
    Some((
        WithDeadline::new(runtime(), Duration::from_secs(5)),
        fixture(),
    ))
});

container_runtime::conformance_tests!(through_the_test_wrappers, |_| async {
    Some((instrumented(runtime()), fixture()))
});

container_runtime::conformance_tests!(with_a_vm, |_| async {
    let rt = MemoryRuntime::with_vm(IpAddr::V4(Ipv4Addr::new(192, 168, 106, 2)));
    Some((rt, Fixture::new(true)))
});

#[tokio::test]
async fn a_vm_has_an_address() {
    let rt = MemoryRuntime::with_vm(IpAddr::V4(Ipv4Addr::new(192, 168, 106, 2)));
    assert!(rt.vm_ip().await.unwrap().is_some());
}

#[tokio::test(start_paused = true)]
async fn down_then_brought_up() {
    let rt = runtime();
    rt.set_healthy(false);
    assert!(!rt.is_healthy().await.unwrap());
    assert!(rt.inspect_container("redis").await.is_err());
    assert_eq!(
        rt.ensure_running().await.unwrap(),
        EnsureRunningOutcome::Started
    );
    tokio::time::advance(Duration::from_secs(3)).await;
    assert_eq!(rt.uptime_seconds().await.unwrap(), 3);
    assert_eq!(
        rt.ensure_running().await.unwrap(),
        EnsureRunningOutcome::AlreadyRunning
    );
}

#[tokio::test(start_paused = true)]
async fn a_hung_call_is_bounded_by_the_callers_deadline() {
    let rt = instrumented(runtime());
    rt.inject(Injection::new(RuntimeOperation::Health, Fault::Hang));
    let r = tokio::time::timeout(Duration::from_secs(2), rt.is_healthy()).await;
    assert!(r.is_err(), "a hang must not complete");
    rt.clear_faults();
    assert!(rt.is_healthy().await.unwrap());
    assert_eq!(rt.count(RuntimeOperation::Health), 2);
}

#[tokio::test(start_paused = true)]
async fn starting_the_substrate_gets_its_own_deadline() {
    let rt = instrumented(runtime());
    rt.inject(Injection::new(RuntimeOperation::EnsureRunning, Fault::Hang));
    rt.inject(Injection::new(RuntimeOperation::Health, Fault::Hang));
    let bounded = WithDeadline::new(rt, Duration::from_secs(5))
        .with_deadline_for(RuntimeOperation::EnsureRunning, Duration::from_secs(120));
    let started = tokio::time::Instant::now();
    match bounded.ensure_running().await {
        Err(RuntimeError::Timeout { operation, after }) => {
            assert_eq!(operation, RuntimeOperation::EnsureRunning);
            assert_eq!(after, Duration::from_secs(120));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(started.elapsed(), Duration::from_secs(120));
    assert!(matches!(
        bounded.is_healthy().await,
        Err(RuntimeError::Timeout { after, .. }) if after == Duration::from_secs(5)
    ));
}

#[tokio::test]
async fn a_failure_for_one_container_only() {
    let rt = instrumented(runtime());
    rt.inject(
        Injection::new(
            RuntimeOperation::RestartContainer,
            Fault::fail(|| RuntimeError::Unavailable {
                adapter: "memory".into(),
                detail: "boom".into(),
            }),
        )
        .for_target("redis"),
    );
    assert!(rt.restart_container("other").await.is_ok());
    assert!(rt.restart_container("redis").await.is_err());
    assert_eq!(rt.count_for(RuntimeOperation::RestartContainer, "redis"), 1);
    assert_eq!(rt.count(RuntimeOperation::RestartContainer), 2);
}

#[tokio::test]
async fn a_removed_compose_container_is_recreated_with_its_labels() {
    let rt = runtime();
    let first = rt.find_compose_container(&web()).await.unwrap();
    rt.remove_container(&first.name);
    let what = ContainerRef::Compose(web());
    assert!(matches!(
        rt.inspect_ref(&what).await,
        Err(RuntimeError::NotFound { .. })
    ));
    assert_eq!(
        rt.recreate(&web()).await.unwrap(),
        ContainerRestartOutcome::Recreated
    );
    let again = rt.inspect_ref(&what).await.unwrap();
    assert_ne!(again.id, first.id, "a new container");
    assert_eq!(again.labels, first.labels);
}

#[tokio::test]
async fn a_crash_loop_is_running_but_not_up() {
    let rt = runtime();
    rt.set_crash_looping("redis");
    let c = rt.inspect_container("redis").await.unwrap();
    assert!(c.running && c.is_restarting() && !c.is_up(), "{c:?}");
    assert_eq!(
        rt.start_container("redis").await.unwrap(),
        ContainerRestartOutcome::Started
    );
    assert!(rt.inspect_container("redis").await.unwrap().is_up());
}

#[tokio::test]
async fn a_container_without_compose_cannot_be_recreated_by_a_bare_name() {
    let rt = runtime();
    let undeclared = ComposeService {
        service: "ghost".into(),
        ..web()
    };
    assert!(matches!(
        rt.recreate(&undeclared).await,
        Err(RuntimeError::NotFound { .. })
    ));
}
