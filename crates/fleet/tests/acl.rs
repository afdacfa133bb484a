//! Authentication against a real `redis-server` with ACL users: a node logged in as the README's
//! per-node user (password from a private file) publishes and reads back; a user Redis lets in
//! but whose commands it refuses costs a few backed-off retries, not a hot loop.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use central_core::{EventKind, EventSink, HealEvent};
use fleet::{fleet_status, latest_events, node_status, FleetConfig, FleetPublisher, NodeRecord};
use support::{eventually, TestRedis};

/// The ACL rule the README gives for a node, with `>PASSWORD` as written there.
fn readme_acl_rule() -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("the README");
    let start = readme
        .find("`ACL SETUSER node-a ")
        .expect("the README gives a per-node ACL rule");
    let rule = &readme[start + "`ACL SETUSER node-a ".len()..];
    let rule = &rule[..rule.find('`').expect("the rule's closing backtick")];
    rule.split_whitespace().map(str::to_string).collect()
}

fn node(id: &str) -> NodeRecord {
    NodeRecord {
        node_id: id.into(),
        role: "fleet".into(),
        platform: "linux".into(),
        version: "test".into(),
    }
}

fn password_file(dir: &tempfile::TempDir, password: &str) -> std::path::PathBuf {
    let path = dir.path().join("redis.pass");
    std::fs::write(&path, format!("{password}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

fn config(url: &str, user: &str, password_file: std::path::PathBuf) -> FleetConfig {
    FleetConfig {
        heartbeat_every: Duration::from_millis(100),
        heartbeat_ttl: Duration::from_millis(600),
        username: Some(user.into()),
        password_file: Some(password_file),
        ..FleetConfig::new(url)
    }
}

fn healed(service: &str) -> HealEvent {
    HealEvent {
        event: EventKind::HealSucceeded,
        at_ms: 1,
        node_id: "node-a".into(),
        platform: "linux".into(),
        adapter_type: "memory".into(),
        endpoint_class: None,
        service: service.into(),
        class: central_core::model::ServiceClass::ServiceCritical,
        step: None,
        attempt: Some(1),
        error_kind: None,
        cause: None,
        outcome: None,
        detail: String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_acl_user_publishes_and_reads_with_its_password_file() {
    let mut directive = vec!["--user".to_string(), "node-a".into()];
    directive.extend(readme_acl_rule().into_iter().map(|w| {
        if w == ">PASSWORD" {
            ">s3cret".into()
        } else {
            w
        }
    }));
    let directive: Vec<&str> = directive.iter().map(String::as_str).collect();
    let Some(redis) = TestRedis::start_with(&[&directive, &["--user", "default", "off"]]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&redis.url(), "node-a", password_file(&dir, "s3cret"));
    let p = FleetPublisher::start(cfg.clone(), node("node-a")).unwrap();
    p.emit(&healed("web"));
    let mut status = central_core::NodeStatus {
        node_id: "node-a".into(),
        platform: "linux".into(),
        at_ms: 7,
        ..Default::default()
    };
    status.warnings.push("a state file moved aside".into());
    p.publish_snapshot(std::sync::Arc::new(status.clone()));
    let nodes = eventually("node-a listed, read as node-a", || {
        let cfg = cfg.clone();
        async move { fleet_status(&cfg).await.ok().filter(|n| n.len() == 1) }
    })
    .await;
    assert!(!nodes[0].stale);
    let events = eventually("its event in the stream", || {
        let cfg = cfg.clone();
        async move { latest_events(&cfg, 10).await.ok().filter(|e| !e.is_empty()) }
    })
    .await;
    assert_eq!(events[0].event["service"], "web");
    // Its status snapshot, written with the heartbeat, read back whole with the node (HGET and
    // EXISTS are in the rule).
    let (node_a, snapshot) = eventually("its status snapshot", || {
        let cfg = cfg.clone();
        async move { node_status(&cfg, "node-a").await.ok().flatten() }
    })
    .await;
    assert_eq!(snapshot, status);
    assert_eq!(node_a.heartbeat.node.node_id, "node-a");
    assert!(!node_a.stale);
    assert_eq!(node_status(&cfg, "node-z").await.unwrap(), None);
    let stats = p.stats();
    assert_eq!(stats.failed_calls, 0, "{stats:?}");

    // The wrong password: refused, saying so, and never printed.
    let wrong = config(&redis.url(), "node-a", password_file(&dir, "guess"));
    let err = fleet_status(&wrong).await.unwrap_err().to_string();
    assert!(!err.contains("guess"), "{err}");
    assert!(
        err.to_lowercase().contains("auth") || err.contains("WRONGPASS"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_whose_commands_are_refused_is_retried_with_backoff_not_in_a_loop() {
    // Let in, allowed to say hello, refused everything the publisher writes with.
    let Some(redis) = TestRedis::start_with(&[&[
        "--user",
        "node-a",
        "on",
        ">s3cret",
        "~joelclaw:*",
        "+ping",
        "+hello",
    ]]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&redis.url(), "node-a", password_file(&dir, "s3cret"));
    let p = FleetPublisher::start(cfg, node("node-a")).unwrap();
    eventually("a refused write", || {
        let failed = p.stats().failed_calls;
        async move { (failed > 0).then_some(()) }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Back-off from 100 ms doubling: about 5 attempts in 2 s (a hot loop makes thousands). The
    // bound is loose for a slow machine: fewer attempts only make it easier to meet.
    let stats = p.stats();
    assert!(
        (1..=8).contains(&stats.failed_calls),
        "a refused write must back off: {stats:?}"
    );
    assert_eq!(stats.heartbeats, 0);
    assert!(!stats.connected);
    p.shutdown(Duration::from_secs(1)).await;
}
