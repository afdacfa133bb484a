//! The managers' own health, node-wide: a manager (or the container runtime) that leaves every
//! question unanswered for `loop.manager_unreachable_after` is reported once, as itself (the
//! root cause), and once more when it answers again. Its services meanwhile are *unknown*.

use std::collections::BTreeMap;

use super::{HealLoop, Probed};
use crate::events::{EventKind, HealEvent};
use crate::model::ServiceClass;

/// One manager's silence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Silence {
    /// When it was first seen not answering (ms).
    since_ms: u64,
    /// Whether `manager.unreachable` was sent for it.
    reported: bool,
}

/// Silent managers by name (the inventory's manager name, `container` or `substrate`).
pub(super) type Silences = BTreeMap<String, Silence>;

impl HealLoop {
    /// Folds one service's round into its manager's health.
    pub(super) fn track_manager(
        &mut self,
        i: usize,
        probed: &Probed,
        now: u64,
        events: &mut Vec<HealEvent>,
    ) {
        let name = self.services[i].manager_name.clone();
        if probed.manager_silent {
            let after = self.settings.manager_unreachable_after.as_millis() as u64;
            let silence = self.silences.entry(name.clone()).or_insert(Silence {
                since_ms: now,
                reported: false,
            });
            if !silence.reported && now.saturating_sub(silence.since_ms) >= after {
                silence.reported = true;
                let detail = format!(
                    "{name} has not answered for {}s: its services' state is unknown; \
                     nothing is restarted through it until it answers",
                    now.saturating_sub(silence.since_ms) / 1000
                );
                events.push(self.manager_event(i, EventKind::ManagerUnreachable, now, detail));
            }
        } else if self.probes_manager(i) {
            if let Some(silence) = self.silences.remove(&name) {
                if silence.reported {
                    let detail = format!(
                        "{name} answers again after {}s",
                        now.saturating_sub(silence.since_ms) / 1000
                    );
                    events.push(self.manager_event(i, EventKind::ManagerRecovered, now, detail));
                }
            }
        }
    }

    /// Whether service `i` has a probe that asks its manager (only those can say it answers).
    fn probes_manager(&self, i: usize) -> bool {
        self.services[i].probes.iter().any(|p| p.asks_manager())
    }

    fn manager_event(&self, i: usize, kind: EventKind, at_ms: u64, detail: String) -> HealEvent {
        let mut e = self.event(i, kind, at_ms, detail);
        e.service = self.services[i].manager_name.clone();
        e.class = ServiceClass::InfraCritical;
        e.endpoint_class = None;
        e.step = None;
        e
    }
}
