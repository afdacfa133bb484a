//! Each service's probe rounds, once each. The loop's status updates repeat a service's last
//! round until its next one, and the probe-duration histograms (`/metrics` and OTLP) must count
//! every round exactly once, whenever the updates arrive.

use std::collections::HashMap;
use std::sync::Mutex;

use central_core::NodeStatus;

/// The last round seen of each service.
#[derive(Debug, Default)]
pub struct NewRounds {
    /// Per service, the `at_ms` of the last round taken.
    seen: Mutex<HashMap<String, u64>>,
}

impl NewRounds {
    /// The rounds in `status` not taken before: each service with how long its round took, in
    /// seconds.
    pub fn take(&self, status: &NodeStatus) -> Vec<(String, f64)> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let mut fresh = Vec::new();
        for svc in &status.services {
            let Some(round) = &svc.last_probe else {
                continue;
            };
            if seen.get(&svc.label) == Some(&round.at_ms) {
                continue;
            }
            seen.insert(svc.label.clone(), round.at_ms);
            #[allow(clippy::cast_precision_loss)] // ms fit an f64's mantissa for 285k years
            fresh.push((svc.label.clone(), round.duration_ms as f64 / 1000.0));
        }
        fresh
    }
}
