//! Where a running agent publishes itself besides its own event output: Central's Redis
//! (`[fleet]`, the `fleet` crate) and an OpenTelemetry collector (`[telemetry]`, the `telemetry`
//! crate). Both are event sinks that only enqueue, so neither can slow the heal loop; both are
//! validated before the loop starts, so a bad section fails `run` at once (exit 2).

use std::sync::Arc;
use std::time::Duration;

use central_core::heal::Health;
use central_core::{BreakerState, EventSink, Inventory, NodeStatus, NodeTags};
use fleet::{FleetConfig, FleetPublisher, NodeRecord, NodeSummary};
use telemetry::{HealthCounts, NodeAttributes, OtlpExport, TelemetryConfig};

/// The publishers an inventory asks for (none, one or both).
#[derive(Debug, Default)]
pub struct Publishers {
    fleet: Option<Arc<FleetPublisher>>,
    otlp: Option<Arc<OtlpExport>>,
    /// The probe rounds already recorded in the OTLP histogram.
    rounds: crate::rounds::NewRounds,
}

/// Counts of a node's services by health, for the fleet heartbeat and the OTLP gauge.
pub fn summary(status: &NodeStatus) -> NodeSummary {
    let mut s = NodeSummary::default();
    for svc in &status.services {
        match svc.health {
            Health::Healthy => s.healthy += 1,
            Health::Unknown => s.unknown += 1,
            Health::Stopped | Health::Disabled => s.stopped += 1,
            Health::Failing | Health::Unhealthy => {
                s.unhealthy += 1;
                s.unhealthy_services.push(svc.label.clone());
            }
        }
        if svc.breaker == BreakerState::Open {
            s.open_breakers += 1;
        }
    }
    s
}

impl Publishers {
    /// Checks the inventory's `[fleet]` and `[telemetry]` sections (the Redis address, the
    /// password file's mode, the collector address) and starts what they ask for, on the current
    /// Tokio runtime.
    pub fn start(inventory: &Inventory, tags: &NodeTags) -> Result<Self, String> {
        let role = crate::output::json_name(&inventory.node.role);
        let version = env!("CARGO_PKG_VERSION").to_string();
        let mut publishers = Publishers::default();
        if let Some(spec) = &inventory.fleet {
            let node = NodeRecord {
                node_id: tags.node_id.clone(),
                role: role.clone(),
                platform: tags.platform.clone(),
                version: version.clone(),
            };
            let publisher = FleetPublisher::start(FleetConfig::from_spec(spec), node)
                .map_err(|e| format!("{}: {e}", inventory.file.display()))?;
            publishers.fleet = Some(Arc::new(publisher));
        }
        if let Some(spec) = &inventory.telemetry {
            let node = NodeAttributes {
                node_id: tags.node_id.clone(),
                platform: tags.platform.clone(),
                role,
                version,
            };
            let export = OtlpExport::start(&TelemetryConfig::from_spec(spec), &node)
                .map_err(|e| format!("{}: {e}", inventory.file.display()))?;
            publishers.otlp = Some(Arc::new(export));
        }
        Ok(publishers)
    }

    /// The event sinks to hand to the heal loop.
    pub fn sinks(&self) -> Vec<Arc<dyn EventSink>> {
        let mut sinks: Vec<Arc<dyn EventSink>> = Vec::new();
        if let Some(f) = &self.fleet {
            sinks.push(f.clone());
        }
        if let Some(o) = &self.otlp {
            sinks.push(o.clone());
        }
        sinks
    }

    /// The node's latest snapshot, for the next heartbeat and the health gauge.
    pub fn publish_status(&self, status: NodeStatus) {
        let s = summary(&status);
        if let Some(o) = &self.otlp {
            o.set_health(HealthCounts {
                healthy: u64::from(s.healthy),
                unhealthy: u64::from(s.unhealthy),
                unknown: u64::from(s.unknown),
                stopped: u64::from(s.stopped),
                open_breakers: u64::from(s.open_breakers),
            });
            for (service, seconds) in self.rounds.take(&status) {
                o.record_probe_round(&service, seconds);
            }
        }
        if let Some(f) = &self.fleet {
            f.publish_summary(s);
            f.publish_snapshot(Arc::new(status));
        }
    }

    /// Flushes and stops, each within a bounded time (the OTLP flush runs off the runtime).
    pub async fn shutdown(&self) {
        if let Some(f) = &self.fleet {
            f.shutdown(Duration::from_secs(2)).await;
            tracing::info!(stats = ?f.stats(), "fleet publishing stopped");
        }
        if let Some(o) = self.otlp.clone() {
            let _ = tokio::time::timeout(
                Duration::from_secs(6),
                tokio::task::spawn_blocking(move || o.shutdown()),
            )
            .await;
        }
    }
}
