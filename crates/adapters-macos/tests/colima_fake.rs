//! `ColimaRuntime` against the fake `colima` (tests/fake/colima).

mod common;

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use adapters_macos::{ColimaConfig, ColimaRuntime, FnHealthCheck, HealthCheck};
use async_trait::async_trait;
use common::FakeTool;
use container_runtime::testkit::Fixture;
use container_runtime::{EnsureRunningOutcome, RuntimeError, RuntimeOperation, SubstratePort};

struct Colima {
    fake: FakeTool,
    rt: ColimaRuntime,
}

impl Colima {
    fn new(adjust: impl FnOnce(ColimaConfig) -> ColimaConfig) -> Self {
        let fake = FakeTool::new("colima", "FAKE_COLIMA_STATE");
        let config = ColimaConfig::default()
            .with_colima(&fake.wrapper)
            .with_deadline(Duration::from_secs(20));
        let rt = ColimaRuntime::new(adjust(config)).unwrap();
        Colima { fake, rt }
    }

    fn running(adjust: impl FnOnce(ColimaConfig) -> ColimaConfig) -> Self {
        let c = Self::new(adjust);
        c.fake.set("running", "");
        c.fake.set("ip", "192.168.64.2");
        c.fake.set("uptime", "12345");
        c
    }

    fn calls(&self, verb: &str) -> usize {
        self.fake
            .argv_log()
            .iter()
            .filter(|l| l.split(' ').next() == Some(verb))
            .count()
    }
}

container_runtime::substrate_conformance_tests!(conformance_over_the_fake, |_| async {
    let Colima { fake, rt } = Colima::running(|c| c);
    let fake = std::sync::Arc::new(fake);
    let down = fake.clone();
    // The VM stopped behind the agent's back (`colima stop`, a crash): its state file gone.
    let fx = Fixture::new(true)
        .with_take_down(move || {
            down.unset("running");
            async {}
        })
        .keeping(fake);
    Some((rt, fx))
});

#[tokio::test]
async fn a_running_vm_describes_itself() {
    let c = Colima::running(|c| c);
    assert!(c.rt.is_healthy().await.unwrap());
    assert_eq!(
        c.rt.vm_ip().await.unwrap(),
        Some("192.168.64.2".parse::<IpAddr>().unwrap())
    );
    assert_eq!(c.rt.uptime_seconds().await.unwrap(), 12345);
    let ssh = c.rt.ssh_config().await.unwrap().unwrap();
    assert_eq!(ssh.host, "colima");
    assert_eq!(ssh.hostname, "127.0.0.1");
    assert_eq!(ssh.port, 60022);
    assert_eq!(ssh.user.as_deref(), Some("joelclaw"));
    let profiles = c.rt.profiles().await.unwrap();
    assert_eq!(profiles.len(), 1);
    assert!(profiles[0].is_running());
    assert_eq!(profiles[0].cpus, Some(4));
    assert!(c
        .fake
        .argv_log()
        .contains(&"ssh -- cat /proc/uptime".to_string()));
}

#[tokio::test]
async fn a_vm_without_its_own_address_has_no_ip() {
    let c = Colima::running(|c| c);
    c.fake.unset("ip");
    assert!(c.rt.is_healthy().await.unwrap());
    assert_eq!(c.rt.vm_ip().await.unwrap(), None);
}

#[tokio::test]
async fn a_stopped_vm_is_unhealthy_and_ensure_running_starts_it() {
    let c = Colima::new(|c| c);
    assert!(!c.rt.is_healthy().await.unwrap(), "exit 1, empty output");
    match c.rt.vm_ip().await {
        Err(e @ RuntimeError::Unavailable { .. }) => {
            assert!(e.to_string().contains("not running"), "{e}")
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(matches!(
        c.rt.uptime_seconds().await,
        Err(RuntimeError::Unavailable { .. })
    ));
    assert_eq!(
        c.rt.ensure_running().await.unwrap(),
        EnsureRunningOutcome::Started
    );
    assert_eq!(c.calls("start"), 1);
    // The cached "stopped" answer was dropped.
    assert!(c.rt.is_healthy().await.unwrap());
    assert_eq!(
        c.rt.ensure_running().await.unwrap(),
        EnsureRunningOutcome::AlreadyRunning
    );
    assert_eq!(c.calls("start"), 1);
}

#[tokio::test]
async fn malformed_status_is_a_parse_error() {
    let c = Colima::running(|c| c);
    c.fake.set("malformed", "");
    match c.rt.is_healthy().await {
        Err(RuntimeError::Parse { what, detail, .. }) => {
            assert_eq!(what, "colima status --json");
            assert!(!detail.is_empty());
        }
        other => panic!("expected Parse, got {other:?}"),
    }
}

#[tokio::test]
async fn status_is_cached_briefly() {
    let c = Colima::running(|c| ColimaConfig {
        status_ttl: Duration::from_secs(3600),
        ..c
    });
    for _ in 0..3 {
        assert!(c.rt.is_healthy().await.unwrap());
        c.rt.vm_ip().await.unwrap();
    }
    assert_eq!(c.calls("status"), 1);

    // With a short TTL, an answer older than it is asked again.
    let c = Colima::running(|c| ColimaConfig {
        status_ttl: Duration::from_millis(50),
        ..c
    });
    assert!(c.rt.is_healthy().await.unwrap());
    tokio::time::sleep(Duration::from_millis(200)).await;
    c.fake.unset("running");
    assert!(!c.rt.is_healthy().await.unwrap());
    assert_eq!(c.calls("status"), 2);
}

#[tokio::test]
async fn the_profile_goes_into_argv() {
    let c = Colima::running(|c| c.with_profile("work"));
    c.rt.is_healthy().await.unwrap();
    c.rt.ssh_config().await.unwrap();
    let log = c.fake.argv_log();
    assert_eq!(log[0], "status --profile work --json");
    assert_eq!(log[1], "ssh-config --profile work");
    for bad in ["-rf", "a b", "", "x/y"] {
        assert!(matches!(
            ColimaRuntime::new(ColimaConfig::default().with_profile(bad)),
            Err(RuntimeError::InvalidInput { .. })
        ));
    }
}

#[tokio::test]
async fn a_hanging_colima_is_a_timeout() {
    let c = Colima::running(|c| c.with_deadline(Duration::from_millis(300)));
    c.fake.set("hang", "*");
    let r = tokio::time::timeout(Duration::from_secs(60), c.rt.is_healthy()).await;
    match r.expect("the adapter's own deadline fired") {
        Err(RuntimeError::Timeout { operation, after }) => {
            assert_eq!(operation, RuntimeOperation::Health);
            assert_eq!(after, Duration::from_millis(300));
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
}

#[tokio::test]
async fn a_timed_out_colima_leaves_no_process_of_its_group() {
    let c = Colima::running(|c| c.with_deadline(Duration::from_secs(2)));
    c.fake.set("hang-with-child", "*");
    match c.rt.is_healthy().await {
        Err(RuntimeError::Timeout { .. }) => {}
        other => panic!("expected Timeout, got {other:?}"),
    }
    c.fake.assert_hung_group_gone().await;
}

#[tokio::test]
async fn a_missing_colima_is_unavailable_naming_what_was_looked_for() {
    let empty = tempfile::tempdir().unwrap();
    let rt = ColimaRuntime::new(ColimaConfig::default().with_search_path(empty.path().as_os_str()))
        .unwrap();
    match rt.is_healthy().await {
        Err(RuntimeError::Unavailable { detail, .. }) => {
            assert!(detail.contains("colima not found on PATH"), "{detail}")
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[derive(Debug)]
struct CountingCheck {
    answer: bool,
    calls: AtomicUsize,
}

#[async_trait]
impl HealthCheck for CountingCheck {
    async fn is_healthy(&self) -> Result<bool, RuntimeError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(self.answer)
    }
}

#[tokio::test]
async fn a_supplied_health_check_replaces_colima_status() {
    let c = Colima::running(|c| c);
    let check = Arc::new(CountingCheck {
        answer: false,
        calls: AtomicUsize::new(0),
    });
    let rt = ColimaRuntime::new(c.rt.config().clone())
        .unwrap()
        .with_health_check(check.clone());
    assert!(!rt.is_healthy().await.unwrap());
    assert_eq!(check.calls.load(Ordering::SeqCst), 1);
    assert_eq!(c.calls("status"), 0, "the socket check is the fast path");
}

#[tokio::test]
async fn a_closure_can_be_the_health_check() {
    let c = Colima::new(|c| c);
    let rt = ColimaRuntime::new(c.rt.config().clone())
        .unwrap()
        .with_health_check(Arc::new(FnHealthCheck::new(|| {
            Box::pin(async {
                Err(RuntimeError::PermissionDenied {
                    operation: RuntimeOperation::Health,
                    target: "docker.sock".into(),
                    detail: "docker.sock: permission denied".into(),
                })
            })
        })));
    assert!(matches!(
        rt.is_healthy().await,
        Err(RuntimeError::PermissionDenied { .. })
    ));
    assert_eq!(c.calls("status"), 0);
}

#[tokio::test]
async fn an_old_colima_without_json_is_read_from_its_text_status() {
    // Running: the text status says so, with the address; nothing is started.
    let c = Colima::running(|c| c);
    c.fake.set("old", "");
    assert!(c.rt.is_healthy().await.unwrap());
    assert_eq!(
        c.rt.vm_ip().await.unwrap(),
        Some("192.168.64.2".parse::<IpAddr>().unwrap())
    );
    assert_eq!(
        c.rt.ensure_running().await.unwrap(),
        EnsureRunningOutcome::AlreadyRunning
    );
    assert_eq!(c.calls("start"), 0, "a rejected flag is no stopped VM");
    assert!(c.fake.argv_log().contains(&"status".to_string()));
    // `list` falls back to its table too.
    let profiles = c.rt.profiles().await.unwrap();
    assert_eq!(profiles.len(), 1);
    assert!(profiles[0].is_running());
    assert_eq!(profiles[0].address, Some("192.168.64.2".parse().unwrap()));

    // A named profile's messages say `colima [profile=work] is running`.
    let c = Colima::running(|c| c.with_profile("work"));
    c.fake.set("old", "");
    assert!(c.rt.is_healthy().await.unwrap());
    assert_eq!(c.calls("start"), 0);

    // Stopped: the text status says "is not running", so ensure_running starts it.
    let c = Colima::new(|c| c);
    c.fake.set("old", "");
    assert!(!c.rt.is_healthy().await.unwrap());
    assert_eq!(
        c.rt.ensure_running().await.unwrap(),
        EnsureRunningOutcome::Started
    );
    assert_eq!(c.calls("start"), 1);
}

#[tokio::test]
async fn a_failing_colima_status_is_an_error_and_never_a_start() {
    let c = Colima::running(|c| c);
    c.fake.set("broken", "");
    match c.rt.is_healthy().await {
        Err(e @ RuntimeError::Backend { .. }) => {
            assert!(e.to_string().contains("empty value"), "{e}")
        }
        other => panic!("expected Backend, got {other:?}"),
    }
    assert!(c.rt.ensure_running().await.is_err());
    assert_eq!(c.calls("start"), 0, "an unreadable status is no stopped VM");
}
