//! The fleet against a real `redis-server`: nodes publish heartbeats and heal events, a silent
//! node goes stale, and Redis going away costs the publisher nothing but counted drops.

mod support;

use std::time::Duration;

use central_core::model::ServiceClass;
use central_core::{EventKind, EventSink, HealEvent};
use fleet::{fleet_status, read_events, FleetConfig, FleetPublisher, NodeRecord, NodeSummary};
use support::{eventually, TestRedis};

fn config(url: &str) -> FleetConfig {
    FleetConfig {
        heartbeat_every: Duration::from_millis(100),
        heartbeat_ttl: Duration::from_millis(600),
        ..FleetConfig::new(url)
    }
}

fn node(id: &str) -> NodeRecord {
    NodeRecord {
        node_id: id.into(),
        role: "fleet".into(),
        platform: "linux".into(),
        version: "test".into(),
    }
}

fn event(node: &str, service: &str, kind: EventKind) -> HealEvent {
    HealEvent {
        event: kind,
        at_ms: 1,
        node_id: node.into(),
        platform: "linux".into(),
        adapter_type: "memory".into(),
        endpoint_class: None,
        service: service.into(),
        class: ServiceClass::ServiceCritical,
        step: None,
        attempt: Some(1),
        error_kind: None,
        cause: None,
        outcome: None,
        detail: format!("{service} went down"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_are_listed_and_a_silent_one_goes_stale() {
    let Some(redis) = TestRedis::start() else {
        return;
    };
    let cfg = config(&redis.url());
    let nodes: Vec<FleetPublisher> = ["node-a", "node-b", "node-c"]
        .into_iter()
        .enumerate()
        .map(|(i, id)| {
            let p = FleetPublisher::start(cfg.clone(), node(id)).unwrap();
            p.publish_summary(NodeSummary {
                healthy: 3 - i as u32,
                unhealthy: i as u32,
                unhealthy_services: (0..i).map(|n| format!("svc-{n}")).collect(),
                ..NodeSummary::default()
            });
            p
        })
        .collect();
    let listed = eventually("three live nodes with their summaries", || {
        let cfg = cfg.clone();
        async move {
            let nodes = fleet_status(&cfg).await.ok()?;
            // Each node's first heartbeat may go out before its summary is set: every node's
            // own summary, not only the last one's.
            let ready = nodes.len() == 3
                && nodes.iter().all(|n| !n.stale)
                && nodes
                    .iter()
                    .enumerate()
                    .all(|(i, n)| n.heartbeat.summary.unhealthy as usize == i);
            ready.then_some(nodes)
        }
    })
    .await;
    let ids: Vec<&str> = listed
        .iter()
        .map(|n| n.heartbeat.node.node_id.as_str())
        .collect();
    assert_eq!(ids, ["node-a", "node-b", "node-c"]);
    assert_eq!(listed[1].heartbeat.summary.unhealthy_services, ["svc-0"]);
    assert_eq!(listed[0].heartbeat.node.role, "fleet");

    // node-b stops publishing (as a killed agent would): stale within its TTL, still listed.
    nodes[1].shutdown(Duration::from_secs(1)).await;
    let after = eventually("node-b stale, the others live", || {
        let cfg = cfg.clone();
        async move {
            let nodes = fleet_status(&cfg).await.ok()?;
            let stale: Vec<bool> = nodes.iter().map(|n| n.stale).collect();
            (stale == [false, true, false]).then_some(nodes)
        }
    })
    .await;
    assert_eq!(after[1].heartbeat.node.node_id, "node-b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heal_events_reach_the_stream_with_their_node_id() {
    let Some(redis) = TestRedis::start() else {
        return;
    };
    let cfg = config(&redis.url());
    let a = FleetPublisher::start(cfg.clone(), node("node-a")).unwrap();
    let b = FleetPublisher::start(cfg.clone(), node("node-b")).unwrap();
    a.emit(&event("node-a", "web", EventKind::HealStarted));
    b.emit(&event("node-b", "worker", EventKind::HealSucceeded));
    let events = eventually("both events in the stream", || {
        let cfg = cfg.clone();
        async move {
            let events = read_events(&cfg, "0", 100, None).await.ok()?;
            (events.len() == 2).then_some(events)
        }
    })
    .await;
    let mut seen: Vec<(String, String, String)> = events
        .iter()
        .map(|e| {
            (
                e.node_id.clone(),
                e.event["service"].as_str().unwrap_or("").to_string(),
                e.event["event"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("node-a".into(), "web".into(), "heal.started".into()),
            ("node-b".into(), "worker".into(), "heal.succeeded".into()),
        ]
    );
    // Following: a read after the last id blocks until the next event, then returns only it.
    let last = events.last().unwrap().id.clone();
    let follow = {
        let cfg = cfg.clone();
        tokio::spawn(
            async move { read_events(&cfg, &last, 10, Some(Duration::from_secs(10))).await },
        )
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    a.emit(&event("node-a", "web", EventKind::HealSucceeded));
    let next = follow.await.unwrap().unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].event["event"], "heal.succeeded");
    eventually("node-a's count of published events", || {
        let n = a.stats().published_events;
        async move { (n == 2).then_some(()) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_away_costs_only_counted_drops_and_publishing_resumes() {
    let Some(mut redis) = TestRedis::start() else {
        return;
    };
    let cfg = FleetConfig {
        queue: 16,
        ..config(&redis.url())
    };
    let p = FleetPublisher::start(cfg.clone(), node("node-a")).unwrap();
    eventually("a first heartbeat", || {
        let stats = p.stats();
        async move { (stats.heartbeats > 0).then_some(()) }
    })
    .await;

    redis.kill();
    // Under the outage every emit returns at once; what does not fit the queue is counted.
    for n in 0..1000 {
        p.emit(&event(
            "node-a",
            &format!("svc-{n}"),
            EventKind::ProbeFailed,
        ));
    }
    let stats = eventually("the outage noticed", || {
        let stats = p.stats();
        async move { (!stats.connected && stats.failed_calls > 0).then_some(stats) }
    })
    .await;
    assert!(stats.dropped_events >= 1000 - 16 - 256, "{stats:?}");

    redis.resume();
    let beats = stats.heartbeats;
    eventually("reconnected, a heartbeat written", || {
        let stats = p.stats();
        async move { (stats.connected && stats.heartbeats > beats).then_some(()) }
    })
    .await;
    // The queue held the oldest events of the outage (newer ones were dropped): those are
    // published first, then what comes after.
    p.emit(&event("node-a", "after-outage", EventKind::HealSucceeded));
    let events = eventually("publishing resumed", || {
        let cfg = cfg.clone();
        async move {
            let events = read_events(&cfg, "0", 10_000, None).await.ok()?;
            events
                .iter()
                .any(|e| e.event["service"] == "after-outage")
                .then_some(events)
        }
    })
    .await;
    // What was queued when Redis came back is published too, bounded by the queue.
    assert!(events.len() <= 16 + 256 + 1, "{} events", events.len());
    let nodes = eventually("the heartbeat back, with the dropped count", || {
        let cfg = cfg.clone();
        async move {
            let nodes = fleet_status(&cfg).await.ok()?;
            nodes
                .first()
                .filter(|n| !n.stale && n.heartbeat.dropped_events > 0)
                .cloned()
        }
    })
    .await;
    assert_eq!(nodes.heartbeat.dropped_events, p.stats().dropped_events);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_is_a_clear_error_within_the_deadline() {
    let Some(redis) = TestRedis::start() else {
        return;
    };
    let cfg = FleetConfig {
        call_timeout: Duration::from_millis(300),
        ..config(&format!(
            "redis+unix://{}.missing",
            redis.socket().display()
        ))
    };
    let err = fleet_status(&cfg).await.unwrap_err().to_string();
    assert!(
        err.contains("redis at") && err.contains(".missing"),
        "{err}"
    );
}
