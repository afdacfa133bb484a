//! `GET /metrics` in the Prometheus text format (prometheus-client): heal events by kind,
//! service and outcome (counted as they happen), and the node's services by health and breaker
//! state (read from the latest round at scrape time).

use std::sync::Mutex;

use central_core::{BreakerState, EventSink, HealEvent, NodeStatus};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

/// The agent's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Mutex<Registry>,
    heal_events: Family<Labels, Counter>,
    services: Family<Labels, Gauge>,
    breakers: Family<Labels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("joelclaw");
        let heal_events = Family::<Labels, Counter>::default();
        registry.register(
            "heal_events",
            "Heal-loop events by kind, service and outcome",
            heal_events.clone(),
        );
        let services = Family::<Labels, Gauge>::default();
        registry.register(
            "services",
            "Services by health at the last round",
            services.clone(),
        );
        let breakers = Family::<Labels, Gauge>::default();
        registry.register(
            "breakers",
            "Services by breaker state at the last round",
            breakers.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            heal_events,
            services,
            breakers,
        }
    }
}

impl Metrics {
    /// The text exposition, with the gauges taken from `status`.
    pub fn render(&self, status: &NodeStatus) -> String {
        for health in ["unknown", "healthy", "failing", "unhealthy"] {
            let n = status
                .services
                .iter()
                .filter(|s| crate::output::json_name(&s.health) == health)
                .count();
            self.services
                .get_or_create(&vec![("health".into(), health.into())])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        for (state, name) in [
            (BreakerState::Closed, "closed"),
            (BreakerState::Open, "open"),
            (BreakerState::HalfOpen, "half-open"),
        ] {
            let n = status
                .services
                .iter()
                .filter(|s| s.breaker == state)
                .count();
            self.breakers
                .get_or_create(&vec![("state".into(), name.into())])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        let _ = encode(&mut out, &registry);
        out
    }
}

impl EventSink for Metrics {
    fn emit(&self, event: &HealEvent) {
        let outcome = event.outcome.as_ref().map_or("none", |o| o.kind());
        self.heal_events
            .get_or_create(&vec![
                ("event".into(), event.event.as_str().into()),
                ("service".into(), event.service.clone()),
                ("outcome".into(), outcome.into()),
            ])
            .inc();
    }
}
