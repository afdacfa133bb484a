//! `GET /metrics` in the Prometheus text format (prometheus-client): heal events by kind,
//! service and outcome (counted as they happen), each service's probe round durations (observed
//! once per round as the agent's status updates arrive, see [`Metrics::observe_rounds`]), and
//! the node's services by health and breaker state (read from the latest round at scrape time).

use std::sync::Mutex;

use central_core::heal::Health;
use central_core::{BreakerState, EventSink, HealEvent, NodeStatus};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::rounds::NewRounds;

type Labels = Vec<(String, String)>;

/// The probe round histogram: OTLP's bounds (1 ms to 10 s), so both say the same.
fn probe_histogram() -> Histogram {
    Histogram::new(telemetry::PROBE_DURATION_BOUNDS)
}

/// The agent's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Mutex<Registry>,
    heal_events: Family<Labels, Counter>,
    services: Family<Labels, Gauge>,
    breakers: Family<Labels, Gauge>,
    probe_duration: Family<Labels, Histogram, fn() -> Histogram>,
    /// The rounds observed, so a round seen in two status updates is observed once.
    rounds: NewRounds,
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
        let probe_duration =
            Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(probe_histogram);
        registry.register_with_unit(
            "probe_duration",
            "How long each probe round of a service took (all its probes)",
            Unit::Seconds,
            probe_duration.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            heal_events,
            services,
            breakers,
            probe_duration,
            rounds: NewRounds::default(),
        }
    }
}

impl Metrics {
    /// Observes each service's last probe round in `status` that was not observed yet (a new
    /// `at_ms`). Called on every status update, so rounds between two scrapes are counted.
    pub fn observe_rounds(&self, status: &NodeStatus) {
        for (service, seconds) in self.rounds.take(status) {
            self.probe_duration
                .get_or_create(&vec![("service".into(), service)])
                .observe(seconds);
        }
    }

    /// The text exposition, with the gauges taken from `status`.
    pub fn render(&self, status: &NodeStatus) -> String {
        for health in Health::ALL {
            let n = status
                .services
                .iter()
                .filter(|s| s.health == health)
                .count();
            self.services
                .get_or_create(&vec![("health".into(), health.as_str().into())])
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

#[cfg(test)]
mod tests {
    use super::*;
    use central_core::ProbeSummary;

    /// `Health::ALL` is every value the published schema lists: the gauge iterates it.
    #[test]
    fn every_health_value_is_in_health_all() {
        let schema = serde_json::to_value(schemars::schema_for!(Health)).unwrap();
        // Each value is one `oneOf` alternative with its `const` (and its doc).
        let mut published: Vec<String> = schema["oneOf"]
            .as_array()
            .unwrap_or_else(|| panic!("no oneOf in {schema}"))
            .iter()
            .filter_map(|alt| alt["const"].as_str().map(str::to_string))
            .collect();
        published.sort();
        let mut all: Vec<String> = Health::ALL.iter().map(|h| h.as_str().to_string()).collect();
        all.sort();
        assert_eq!(published, all, "schema: {schema}");
        for h in Health::ALL {
            assert_eq!(crate::output::json_name(&h), h.as_str());
        }
    }

    fn status(rounds: &[(&str, u64, u64)]) -> NodeStatus {
        let mut status = NodeStatus::default();
        for (label, at_ms, duration_ms) in rounds {
            let mut svc: central_core::heal::ServiceSnapshot =
                serde_json::from_value(serde_json::json!({
                    "label": label, "manager": "m", "adapter_type": "memory",
                    "class": "app-level", "health": "healthy", "run_state": null,
                    "pid": null, "last_probe": null, "endpoint_class": null, "step": null,
                    "breaker": "closed", "last_event": null,
                }))
                .unwrap_or_else(|e| panic!("{e}"));
            svc.last_probe = Some(ProbeSummary {
                at_ms: *at_ms,
                passed: true,
                failure: None,
                endpoint_class: None,
                detail: String::new(),
                duration_ms: *duration_ms,
            });
            status.services.push(svc);
        }
        status
    }

    fn histogram_line(text: &str, service: &str, suffix: &str) -> String {
        text.lines()
            .find(|l| {
                l.starts_with(&format!("joelclaw_probe_duration_seconds_{suffix}"))
                    && l.contains(&format!("service=\"{service}\""))
            })
            .unwrap_or_else(|| panic!("no {suffix} for {service} in:\n{text}"))
            .to_string()
    }

    /// A round seen in two status updates is observed once; a new round (new `at_ms`) again.
    #[test]
    fn each_probe_round_is_observed_once() {
        let m = Metrics::default();
        m.observe_rounds(&status(&[("web", 1_000, 3), ("db", 1_000, 2_000)]));
        m.observe_rounds(&status(&[("web", 1_000, 3), ("db", 1_000, 2_000)]));
        let text = m.render(&NodeStatus::default());
        assert!(
            histogram_line(&text, "web", "count").ends_with(" 1"),
            "{text}"
        );
        assert!(
            histogram_line(&text, "db", "sum").ends_with(" 2.0"),
            "{text}"
        );
        m.observe_rounds(&status(&[("web", 2_000, 4), ("db", 1_000, 2_000)]));
        let text = m.render(&NodeStatus::default());
        assert!(
            histogram_line(&text, "web", "count").ends_with(" 2"),
            "{text}"
        );
        assert!(
            histogram_line(&text, "db", "count").ends_with(" 1"),
            "{text}"
        );
    }
}
