//! The fleet over TLS (`rediss://`) against a real `redis-server` with TLS only: publishing and
//! reading back through a private CA, a wrong CA or a wrong name as a clear error (not a hang),
//! and mutual TLS with a client certificate.

mod support;

use std::time::Duration;

use central_core::model::ServiceClass;
use central_core::{EventKind, EventSink, HealEvent};
use fleet::{
    fleet_status, read_events, FleetConfig, FleetError, FleetPublisher, NodeRecord, NodeSummary,
};
use support::eventually;
use support::tls::{Pki, TlsRedis};

fn config(url: &str, pki: &Pki) -> FleetConfig {
    FleetConfig {
        heartbeat_every: Duration::from_millis(100),
        heartbeat_ttl: Duration::from_millis(600),
        ca_file: Some(pki.path("ca.pem")),
        ..FleetConfig::new(url)
    }
}

fn with_client_cert(config: FleetConfig, pki: &Pki) -> FleetConfig {
    FleetConfig {
        cert_file: Some(pki.path("client.pem")),
        key_file: Some(pki.path("client.key")),
        ..config
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

fn event(node: &str, service: &str) -> HealEvent {
    HealEvent {
        event: EventKind::HealSucceeded,
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
        detail: format!("{service} healed"),
    }
}

/// A refused TLS handshake (not a deadline that passed), as text.
fn tls_refusal(result: Result<impl std::fmt::Debug, FleetError>) -> String {
    match result {
        Err(e @ FleetError::Tls { .. }) => e.to_string(),
        other => panic!("expected a TLS refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_and_events_travel_over_tls_through_a_private_ca() {
    let pki = Pki::new();
    let Some(redis) = TlsRedis::start(&pki, false) else {
        return;
    };
    let cfg = config(&redis.url(), &pki);
    let publisher = FleetPublisher::start(cfg.clone(), node("node-a")).unwrap();
    publisher.publish_summary(NodeSummary {
        healthy: 2,
        unhealthy: 1,
        unhealthy_services: vec!["worker".into()],
        ..NodeSummary::default()
    });
    publisher.emit(&event("node-a", "web"));

    let nodes = eventually("node-a listed over rediss://", || {
        let cfg = cfg.clone();
        async move {
            let nodes = fleet_status(&cfg).await.ok()?;
            (nodes.len() == 1 && !nodes[0].stale && nodes[0].heartbeat.summary.unhealthy == 1)
                .then_some(nodes)
        }
    })
    .await;
    assert_eq!(nodes[0].heartbeat.node.node_id, "node-a");
    assert_eq!(nodes[0].heartbeat.summary.unhealthy_services, ["worker"]);

    let events = eventually("node-a's event read back over rediss://", || {
        let cfg = cfg.clone();
        async move {
            let events = read_events(&cfg, "0", 10, None).await.ok()?;
            (!events.is_empty()).then_some(events)
        }
    })
    .await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].node_id, "node-a");
    assert_eq!(events[0].event["service"], "web");
    assert_eq!(events[0].event["event"], "heal.succeeded");
    let stats = publisher.stats();
    assert!(stats.connected && stats.published_events == 1, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_ca_or_name_is_a_clear_tls_error_and_the_publisher_counts_it() {
    let pki = Pki::new();
    let Some(redis) = TlsRedis::start(&pki, false) else {
        return;
    };
    // The server's certificate is not from the CA this node trusts.
    let wrong_ca = FleetConfig {
        ca_file: Some(pki.path("other-ca.pem")),
        call_timeout: Duration::from_secs(10),
        ..config(&redis.url(), &pki)
    };
    let err = tls_refusal(fleet_status(&wrong_ca).await);
    assert!(
        err.contains("connect") && err.contains("UnknownIssuer") && err.contains("fleet.ca_file"),
        "{err}"
    );

    // The right CA, but the certificate names 127.0.0.1, not `localhost`.
    let wrong_name = FleetConfig {
        call_timeout: Duration::from_secs(10),
        ..config(&format!("rediss://localhost:{}", redis.port()), &pki)
    };
    let err = tls_refusal(read_events(&wrong_name, "0", 1, None).await);
    assert!(
        err.contains("certificate") && err.contains("localhost"),
        "{err}"
    );

    // The publisher takes the refusal as any other connection failure: counted, retried, the
    // events queued then dropped and counted, nothing waits on it.
    let publisher = FleetPublisher::start(wrong_ca.clone(), node("node-a")).unwrap();
    publisher.emit(&event("node-a", "web"));
    let stats = eventually("refused connections counted", || {
        let stats = publisher.stats();
        async move { (stats.failed_calls >= 2).then_some(stats) }
    })
    .await;
    assert!(!stats.connected && stats.heartbeats == 0, "{stats:?}");
    let trusted = config(&redis.url(), &pki);
    assert!(fleet_status(&trusted).await.unwrap().is_empty());
    publisher.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_needs_the_client_certificate_and_works_with_it() {
    let pki = Pki::new();
    let Some(redis) = TlsRedis::start(&pki, true) else {
        return;
    };
    let cfg = config(&redis.url(), &pki);
    let err = tls_refusal(fleet_status(&cfg).await);
    assert!(
        err.contains("redis at rediss://127.0.0.1") && err.contains("fleet.cert_file"),
        "{err}"
    );

    let cfg = with_client_cert(cfg, &pki);
    let _publisher = FleetPublisher::start(cfg.clone(), node("node-m")).unwrap();
    let nodes = eventually("node-m listed over mutual TLS", || {
        let cfg = cfg.clone();
        async move {
            let nodes = fleet_status(&cfg).await.ok()?;
            (nodes.len() == 1).then_some(nodes)
        }
    })
    .await;
    assert_eq!(nodes[0].heartbeat.node.node_id, "node-m");
    assert!(!nodes[0].stale);
}
