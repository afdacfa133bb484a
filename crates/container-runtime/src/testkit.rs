//! The conformance suite every `ContainerRuntimePort` adapter runs. A scenario panics with a
//! message on the first broken expectation.

use crate::{ContainerRestartOutcome, ContainerRuntimePort, RuntimeError};

/// What the scenarios need from the adapter's test.
#[derive(Debug, Clone, Default)]
pub struct Fixture {
    /// Whether this substrate is a VM (then `vm_ip`/`ssh_config` may be `Some`; otherwise they
    /// must be `None`).
    pub has_vm: bool,
    /// A running container the scenarios may restart, and a label (`key=value`) it carries.
    /// `None` for adapters without container operations.
    pub container: Option<(String, String)>,
}

/// A healthy runtime says so, reports an uptime, and reports a VM only where there is one.
pub async fn healthy_runtime_describes_itself(rt: &dyn ContainerRuntimePort, fx: &Fixture) {
    assert!(
        rt.is_healthy().await.expect("is_healthy"),
        "runtime not healthy"
    );
    let up = rt.uptime_seconds().await.expect("uptime_seconds");
    assert!(up < 10 * 365 * 24 * 3600, "implausible uptime {up}s");
    let ip = rt.vm_ip().await.expect("vm_ip");
    let ssh = rt.ssh_config().await.expect("ssh_config");
    if !fx.has_vm {
        assert_eq!(ip, None, "no VM, yet vm_ip is {ip:?}");
        assert_eq!(ssh, None, "no VM, yet ssh_config is {ssh:?}");
    }
    if let Some(ip) = ip {
        assert!(!ip.is_unspecified(), "vm_ip {ip} is unspecified");
    }
}

/// `ensure_running` on a healthy runtime does nothing (or is not supported).
pub async fn ensure_running_is_idempotent(rt: &dyn ContainerRuntimePort, _fx: &Fixture) {
    match rt.ensure_running().await {
        Ok(crate::EnsureRunningOutcome::AlreadyRunning) => {}
        Err(RuntimeError::NotSupported { .. }) => {}
        other => panic!("ensure_running on a healthy runtime: {other:?}"),
    }
}

/// Containers: an unknown one is `NotFound`; the fixture's is found, listed by its label, and
/// restarted with an outcome that says so.
pub async fn containers(rt: &dyn ContainerRuntimePort, fx: &Fixture) {
    let Some((name, label)) = &fx.container else {
        return;
    };
    match rt.inspect_container("conformance-no-such-container").await {
        Err(RuntimeError::NotFound { .. }) => {}
        other => panic!("inspect of an unknown container: expected NotFound, got {other:?}"),
    }
    match rt.restart_container("conformance-no-such-container").await {
        Err(RuntimeError::NotFound { .. }) => {}
        other => panic!("restart of an unknown container: expected NotFound, got {other:?}"),
    }
    let c = rt.inspect_container(name).await.expect("inspect_container");
    assert_eq!(&c.name, name);
    assert!(c.running, "{c:?}");
    let listed = rt
        .list_containers(Some(label))
        .await
        .expect("list_containers");
    assert!(
        listed.iter().any(|c| &c.name == name),
        "{name} not listed under {label}: {listed:?}"
    );
    let none = rt
        .list_containers(Some("joelclaw.conformance.absent=1"))
        .await
        .expect("list_containers");
    assert!(none.is_empty(), "{none:?}");
    assert_eq!(
        rt.restart_container(name).await.expect("restart_container"),
        ContainerRestartOutcome::Restarted
    );
    let after = rt
        .inspect_container(name)
        .await
        .expect("inspect after restart");
    assert!(after.running, "{after:?}");
}

/// Every scenario.
pub async fn run_all(rt: &dyn ContainerRuntimePort, fx: &Fixture) {
    healthy_runtime_describes_itself(rt, fx).await;
    ensure_running_is_idempotent(rt, fx).await;
    containers(rt, fx).await;
}
