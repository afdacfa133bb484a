//! The conformance suite against the in-memory runtime, directly and through `Arc<dyn>`, and the
//! deadline behaviour callers rely on.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use container_runtime::testkit::{self, Fixture};
use container_runtime::{
    ContainerRuntimePort, EnsureRunningOutcome, MemoryRuntime, RuntimeFault, RuntimeOperation,
};

fn fixture() -> Fixture {
    Fixture {
        has_vm: false,
        container: Some(("redis".into(), "com.joelclaw.stack=core".into())),
    }
}

fn runtime() -> MemoryRuntime {
    let rt = MemoryRuntime::new();
    rt.add_container("redis", &[("com.joelclaw.stack", "core")]);
    rt.add_container("other", &[("com.joelclaw.stack", "extra")]);
    rt
}

#[tokio::test]
async fn conformance_direct() {
    testkit::run_all(&runtime(), &fixture()).await;
}

#[tokio::test]
async fn conformance_through_arc_dyn() {
    let rt: Arc<dyn ContainerRuntimePort> = Arc::new(runtime());
    testkit::run_all(rt.as_ref(), &fixture()).await;
}

#[tokio::test]
async fn conformance_with_a_vm() {
    let rt = MemoryRuntime::with_vm(IpAddr::V4(Ipv4Addr::new(192, 168, 106, 2)));
    let fx = Fixture {
        has_vm: true,
        container: None,
    };
    testkit::run_all(&rt, &fx).await;
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
    let rt = runtime();
    rt.inject(RuntimeOperation::Health, RuntimeFault::Hang);
    let r = tokio::time::timeout(Duration::from_secs(2), rt.is_healthy()).await;
    assert!(r.is_err(), "a hang must not complete");
    rt.clear_faults();
    assert!(rt.is_healthy().await.unwrap());
    assert_eq!(rt.count(RuntimeOperation::Health), 2);
}
