//! The conformance suites every substrate and engine adapter runs, and the test wrappers.
//!
//! - Scenarios: `pub async fn` over a `&dyn SubstratePort` or a `&dyn EnginePort`, each
//!   panicking with a message on the first broken expectation.
//!   [`crate::substrate_conformance_tests!`] and [`crate::engine_conformance_tests!`] turn them
//!   into one test per scenario per adapter; [`crate::conformance_tests!`] runs both on a whole
//!   runtime.
//! - [`Faulty`] and [`Recording`]: wrap any runtime to fail or hang chosen calls, and to count
//!   them. The same shapes as the process port's.

use std::any::Any;
use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;

use crate::{
    ComposeService, ContainerRef, ContainerRestartOutcome, ContainerStatus, EnginePort,
    EnsureRunningOutcome, RuntimeAdapter, RuntimeError, RuntimeOperation, SshConfig, SubstratePort,
};

/// Any runtime that fails or hangs the calls armed with `inject`.
pub type Faulty<R> = port_kit::Faulty<R, RuntimeOperation, RuntimeError>;
/// Any runtime whose calls are recorded (a bounded log and exact counts).
pub type Recording<R> = port_kit::Recording<R, RuntimeOperation>;
/// A fault armed on a [`Faulty`] runtime: an operation, optionally one container, how often.
pub type Injection = port_kit::Injection<RuntimeOperation, RuntimeError>;
/// What an injected fault does: fail with an error, or hang.
pub type Fault = port_kit::Fault<RuntimeError>;
/// One recorded call.
pub type Call = port_kit::Call<RuntimeOperation>;

/// `Recording<Faulty<R>>`: faults can be armed, and every call is counted, failed or not.
pub fn instrumented<R: RuntimeAdapter>(inner: R) -> Recording<Faulty<R>> {
    Recording::new(Faulty::new(inner))
}

/// Implements both halves of the port for a wrapper whose `$before(operation, target)` runs
/// before each call is passed to the wrapped runtime.
macro_rules! wrap_port {
    ($wrapper:ident, |$this:ident, $op:ident, $target:ident| $before:expr) => {
        impl<R: RuntimeAdapter> RuntimeAdapter for $wrapper<R> {
            fn adapter(&self) -> &str {
                (**self).adapter()
            }
        }
        #[async_trait]
        impl<R: SubstratePort> SubstratePort for $wrapper<R> {
            async fn is_healthy(&self) -> Result<bool, RuntimeError> {
                let ($this, $op, $target) = (self, RuntimeOperation::Health, None::<&str>);
                $before;
                (**self).is_healthy().await
            }
            async fn vm_ip(&self) -> Result<Option<IpAddr>, RuntimeError> {
                let ($this, $op, $target) = (self, RuntimeOperation::VmIp, None::<&str>);
                $before;
                (**self).vm_ip().await
            }
            async fn uptime_seconds(&self) -> Result<u64, RuntimeError> {
                let ($this, $op, $target) = (self, RuntimeOperation::Uptime, None::<&str>);
                $before;
                (**self).uptime_seconds().await
            }
            async fn ssh_config(&self) -> Result<Option<SshConfig>, RuntimeError> {
                let ($this, $op, $target) = (self, RuntimeOperation::SshConfig, None::<&str>);
                $before;
                (**self).ssh_config().await
            }
            async fn ensure_running(&self) -> Result<EnsureRunningOutcome, RuntimeError> {
                let ($this, $op, $target) = (self, RuntimeOperation::EnsureRunning, None::<&str>);
                $before;
                (**self).ensure_running().await
            }
        }
        #[async_trait]
        impl<R: EnginePort> EnginePort for $wrapper<R> {
            async fn inspect_container(&self, name: &str) -> Result<ContainerStatus, RuntimeError> {
                let ($this, $op, $target) = (self, RuntimeOperation::InspectContainer, Some(name));
                $before;
                (**self).inspect_container(name).await
            }
            async fn restart_container(
                &self,
                name: &str,
            ) -> Result<ContainerRestartOutcome, RuntimeError> {
                let ($this, $op, $target) = (self, RuntimeOperation::RestartContainer, Some(name));
                $before;
                (**self).restart_container(name).await
            }
            async fn start_container(
                &self,
                name: &str,
            ) -> Result<ContainerRestartOutcome, RuntimeError> {
                let ($this, $op, $target) = (self, RuntimeOperation::StartContainer, Some(name));
                $before;
                (**self).start_container(name).await
            }
            async fn stop_container(&self, name: &str) -> Result<bool, RuntimeError> {
                let ($this, $op, $target) = (self, RuntimeOperation::StopContainer, Some(name));
                $before;
                (**self).stop_container(name).await
            }
            async fn container_logs(
                &self,
                name: &str,
                tail: usize,
            ) -> Result<Vec<String>, RuntimeError> {
                let ($this, $op, $target) = (self, RuntimeOperation::ContainerLogs, Some(name));
                $before;
                (**self).container_logs(name, tail).await
            }
            async fn follow_container_logs(
                &self,
                name: &str,
                tail: usize,
                line: &mut (dyn FnMut(String) + Send),
            ) -> Result<(), RuntimeError> {
                let ($this, $op, $target) = (self, RuntimeOperation::ContainerLogs, Some(name));
                $before;
                (**self).follow_container_logs(name, tail, line).await
            }
            async fn list_containers(
                &self,
                label: Option<&str>,
            ) -> Result<Vec<ContainerStatus>, RuntimeError> {
                let ($this, $op, $target) = (self, RuntimeOperation::ListContainers, None::<&str>);
                $before;
                (**self).list_containers(label).await
            }
            async fn recreate(
                &self,
                service: &ComposeService,
            ) -> Result<ContainerRestartOutcome, RuntimeError> {
                let ($this, $op, $target) = (
                    self,
                    RuntimeOperation::Recreate,
                    Some(service.service.as_str()),
                );
                $before;
                (**self).recreate(service).await
            }
        }
    };
}

wrap_port!(Faulty, |this, op, target| this.enter(op, target).await?);
wrap_port!(Recording, |this, op, target| this.record(op, target));

/// What the scenarios need from the adapter's test.
#[derive(Clone, Default)]
pub struct Fixture {
    /// Whether this substrate is a VM (then `vm_ip`/`ssh_config` may be `Some`; otherwise they
    /// must be `None`).
    pub has_vm: bool,
    /// A running container the scenarios may restart, and a label (`key=value`) it carries.
    /// `None` for adapters without container operations.
    pub container: Option<(String, String)>,
    /// A running Compose service the scenarios may find and recreate. `None` for engines
    /// without Compose.
    pub compose: Option<ComposeService>,
    /// What must live as long as the scenario (a test container, a fake's folder).
    pub keep: Vec<Arc<dyn Any + Send + Sync>>,
    /// Takes the substrate down (stops the VM, kills the daemon), for
    /// [`a_down_substrate_is_brought_up`]. `None`: that scenario has nothing to check.
    pub take_down: Option<TakeDown>,
}

/// Takes a substrate down, the way it fails for real (see [`Fixture::take_down`]).
pub type TakeDown =
    Arc<dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Send + Sync>;

impl Fixture {
    /// A fixture for a substrate with (`has_vm`) or without a VM, and no container.
    pub fn new(has_vm: bool) -> Self {
        Fixture {
            has_vm,
            ..Fixture::default()
        }
    }

    /// With a running container the scenarios may restart, and a label (`key=value`) it has.
    pub fn with_container(mut self, name: impl Into<String>, label: impl Into<String>) -> Self {
        self.container = Some((name.into(), label.into()));
        self
    }

    /// With a running Compose service the scenarios may find and recreate.
    pub fn with_compose(mut self, service: ComposeService) -> Self {
        self.compose = Some(service);
        self
    }

    /// With a way to take the substrate down (a VM stopped, a daemon killed).
    pub fn with_take_down<F, Fut>(mut self, take_down: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        self.take_down = Some(Arc::new(move || Box::pin(take_down())));
        self
    }

    /// Keeps `value` alive for the scenario.
    pub fn keeping(mut self, value: impl Any + Send + Sync) -> Self {
        self.keep.push(Arc::new(value));
        self
    }
}

fn check_name(rt: &dyn RuntimeAdapter) {
    let name = rt.adapter().to_string();
    assert!(!name.is_empty(), "empty adapter name");
    assert!(
        !name.contains(char::is_whitespace),
        "adapter name {name:?} is not one word"
    );
    assert_eq!(rt.adapter(), name, "adapter name changed between calls");
}

/// The substrate has a one-word name for telemetry, the same every time.
pub async fn substrate_is_named(rt: &dyn SubstratePort, _fx: &Fixture) {
    check_name(rt);
}

/// The engine has a one-word name for telemetry, the same every time.
pub async fn engine_is_named(rt: &dyn EnginePort, _fx: &Fixture) {
    check_name(rt);
}

/// A healthy runtime says so, reports an uptime, and reports a VM only where there is one.
pub async fn healthy_runtime_describes_itself(rt: &dyn SubstratePort, fx: &Fixture) {
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
pub async fn ensure_running_is_idempotent(rt: &dyn SubstratePort, _fx: &Fixture) {
    match rt.ensure_running().await {
        Ok(EnsureRunningOutcome::AlreadyRunning) => {}
        Err(RuntimeError::NotSupported { .. }) => {}
        other => panic!("ensure_running on a healthy runtime: {other:?}"),
    }
}

/// A substrate taken down says it is not healthy (an answer, not an error); `ensure_running`
/// brings it up (`Started`), it is healthy with an uptime counted from then, and a second
/// `ensure_running` does nothing.
pub async fn a_down_substrate_is_brought_up(rt: &dyn SubstratePort, fx: &Fixture) {
    let Some(take_down) = &fx.take_down else {
        return;
    };
    let before = rt.uptime_seconds().await.expect("uptime_seconds");
    take_down().await;
    // A daemon killed may take a moment to be seen gone.
    let mut down = false;
    for _ in 0..300 {
        if !rt
            .is_healthy()
            .await
            .expect("is_healthy on a down substrate")
        {
            down = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(down, "still healthy 30 s after being taken down");
    match rt.ensure_running().await {
        Ok(EnsureRunningOutcome::Started) => {}
        other => panic!("ensure_running on a down substrate: {other:?}"),
    }
    assert!(
        rt.is_healthy().await.expect("is_healthy after start"),
        "ensure_running said Started, yet not healthy"
    );
    let up = rt.uptime_seconds().await.expect("uptime after start");
    assert!(
        up < 120,
        "uptime {up}s after a fresh start (it was {before}s)"
    );
    match rt.ensure_running().await {
        Ok(EnsureRunningOutcome::AlreadyRunning) => {}
        other => panic!("ensure_running right after a start: {other:?}"),
    }
}

/// An unknown container is `NotFound` for inspect and restart.
pub async fn unknown_container_is_not_found(rt: &dyn EnginePort, fx: &Fixture) {
    if fx.container.is_none() {
        return;
    }
    match rt.inspect_container("conformance-no-such-container").await {
        Err(e @ RuntimeError::NotFound { .. }) => {
            assert_eq!(e.kind(), crate::ErrorKind::NotFound, "{e}");
            assert!(
                !e.is_retryable(),
                "a missing container is not retryable: {e}"
            );
        }
        other => panic!("inspect of an unknown container: expected NotFound, got {other:?}"),
    }
    match rt.restart_container("conformance-no-such-container").await {
        Err(RuntimeError::NotFound { .. }) => {}
        other => panic!("restart of an unknown container: expected NotFound, got {other:?}"),
    }
    match rt.start_container("conformance-no-such-container").await {
        Err(RuntimeError::NotFound { .. }) => {}
        other => panic!("start of an unknown container: expected NotFound, got {other:?}"),
    }
    let absent = ComposeService {
        project: "conformance-no-such-project".into(),
        file: "/nonexistent/compose.yaml".into(),
        service: "absent".into(),
    };
    match rt.inspect_ref(&ContainerRef::Compose(absent)).await {
        Err(RuntimeError::NotFound { .. }) => {}
        other => panic!("an unknown compose service: expected NotFound, got {other:?}"),
    }
}

/// A stopped container stays stopped (the engine's restart policy does not bring it back), a
/// second stop says it was not running, and start brings the same container back.
pub async fn a_stopped_container_stays_stopped_until_started(rt: &dyn EnginePort, fx: &Fixture) {
    let Some((name, _)) = &fx.container else {
        return;
    };
    let before = rt.inspect_container(name).await.expect("inspect_container");
    assert!(
        rt.stop_container(name).await.expect("stop_container"),
        "it was running"
    );
    let stopped = rt
        .inspect_container(name)
        .await
        .expect("inspect after stop");
    assert!(!stopped.running, "{stopped:?}");
    assert!(
        !rt.stop_container(name).await.expect("stop again"),
        "already stopped"
    );
    assert_eq!(
        rt.start_container(name).await.expect("start_container"),
        ContainerRestartOutcome::Started
    );
    let after = rt
        .inspect_container(name)
        .await
        .expect("inspect after start");
    assert!(after.running, "{after:?}");
    assert_eq!(before.id, after.id, "stop and start keep the container");
}

/// Starting a running container does nothing and says so; it is still running after.
pub async fn start_leaves_a_running_container_alone(rt: &dyn EnginePort, fx: &Fixture) {
    let Some((name, _)) = &fx.container else {
        return;
    };
    let before = rt.inspect_container(name).await.expect("inspect_container");
    assert_eq!(
        rt.start_container(name).await.expect("start_container"),
        ContainerRestartOutcome::AlreadyRunning
    );
    let after = rt
        .inspect_container(name)
        .await
        .expect("inspect after start");
    assert!(after.running, "{after:?}");
    assert_eq!(before.id, after.id, "start must not replace the container");
    assert!(!after.image.is_empty(), "no image: {after:?}");
    assert!(
        after.uptime_seconds.is_some(),
        "a running container has an uptime: {after:?}"
    );
}

/// A Compose service's container is found by its labels, and `recreate` replaces it (a running
/// container with an unchanged config too) with a new, running container carrying the same
/// Compose labels.
pub async fn compose_services_are_found_and_recreated(rt: &dyn EnginePort, fx: &Fixture) {
    let Some(service) = &fx.compose else {
        return;
    };
    let c = rt
        .inspect_ref(&ContainerRef::Compose(service.clone()))
        .await
        .expect("find the compose service's container");
    assert!(service.owns(&c), "{c:?} is not {service}");
    assert_eq!(c.compose_service(), Some(service.service.as_str()));
    assert_eq!(
        rt.recreate(service).await.expect("recreate"),
        ContainerRestartOutcome::Recreated
    );
    let after = rt
        .find_compose_container(service)
        .await
        .expect("the service after recreate");
    assert!(service.owns(&after), "{after:?}");
    assert!(after.running, "{after:?}");
    assert_ne!(
        after.id, c.id,
        "recreate must replace the running container"
    );
    for label in [crate::COMPOSE_PROJECT_LABEL, crate::COMPOSE_SERVICE_LABEL] {
        assert_eq!(after.labels.get(label), c.labels.get(label), "{label}");
    }
}

/// The fixture's container is found, listed by its label (and not under another), and
/// restarted with an outcome that says so.
pub async fn containers_are_found_listed_and_restarted(rt: &dyn EnginePort, fx: &Fixture) {
    let Some((name, label)) = &fx.container else {
        return;
    };
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

/// One test per substrate scenario: a module `$module` with a `#[tokio::test]` (or the test
/// attribute given) for each. `$setup` is a closure taking the scenario's name and returning a
/// future of `Option<(substrate, Fixture)>`; `None` skips the scenario (a real daemon that is
/// not there, which the setup reports itself).
#[macro_export]
macro_rules! substrate_conformance_tests {
    ($module:ident, #[$test:meta], $setup:expr $(,)?) => {
        $crate::__port_kit::conformance_scenarios!(
            ($crate::testkit),
            $module,
            #[$test],
            $setup,
            substrate_is_named,
            healthy_runtime_describes_itself,
            ensure_running_is_idempotent,
            a_down_substrate_is_brought_up,
        );
    };
    // After the arm above: an attribute would otherwise be parsed as the start of `$setup`.
    ($module:ident, $setup:expr $(,)?) => {
        $crate::substrate_conformance_tests!($module, #[tokio::test], $setup);
    };
}

/// One test per engine scenario, as [`substrate_conformance_tests!`] (the setup returns an
/// engine).
#[macro_export]
macro_rules! engine_conformance_tests {
    ($module:ident, #[$test:meta], $setup:expr $(,)?) => {
        $crate::__port_kit::conformance_scenarios!(
            ($crate::testkit),
            $module,
            #[$test],
            $setup,
            engine_is_named,
            unknown_container_is_not_found,
            containers_are_found_listed_and_restarted,
            start_leaves_a_running_container_alone,
            a_stopped_container_stays_stopped_until_started,
            compose_services_are_found_and_recreated,
        );
    };
    ($module:ident, $setup:expr $(,)?) => {
        $crate::engine_conformance_tests!($module, #[tokio::test], $setup);
    };
}

/// Both suites on a whole runtime (a substrate that is also its engine, or a
/// [`crate::SplitRuntime`]).
#[macro_export]
macro_rules! conformance_tests {
    ($module:ident, #[$test:meta], $setup:expr $(,)?) => {
        $crate::__port_kit::conformance_scenarios!(
            ($crate::testkit),
            $module,
            #[$test],
            $setup,
            substrate_is_named,
            healthy_runtime_describes_itself,
            ensure_running_is_idempotent,
            a_down_substrate_is_brought_up,
            engine_is_named,
            unknown_container_is_not_found,
            containers_are_found_listed_and_restarted,
            start_leaves_a_running_container_alone,
            a_stopped_container_stays_stopped_until_started,
            compose_services_are_found_and_recreated,
        );
    };
    ($module:ident, $setup:expr $(,)?) => {
        $crate::conformance_tests!($module, #[tokio::test], $setup);
    };
}
