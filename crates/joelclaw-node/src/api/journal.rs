//! The running agent's recent events, each with a sequence number and an id, for
//! `GET /v1/events?since=SEQ` and the live stream. An [`EventSink`]: it only takes a short lock
//! and never waits on a reader.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use central_core::{EventSink, HealEvent};
use schemars::JsonSchema;
use serde::Serialize;
use tokio::sync::broadcast;

/// Events kept for `since` queries; older ones are only in the event output and the fleet.
pub(super) const KEPT: usize = 1024;

/// One event as the API serves it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct JournalEntry {
    /// Increasing from 1 for this agent process.
    pub seq: u64,
    /// Unique across agents and restarts: `NODE-STARTMS-SEQ`.
    pub id: String,
    /// The heal event.
    pub event: HealEvent,
}

/// The journal.
#[derive(Debug)]
pub struct EventJournal {
    prefix: String,
    next: AtomicU64,
    kept: Mutex<VecDeque<JournalEntry>>,
    live: broadcast::Sender<JournalEntry>,
}

impl EventJournal {
    /// An empty journal for `node_id`, whose ids start with the agent's start time.
    pub fn new(node_id: &str, started_ms: u64) -> Self {
        EventJournal {
            prefix: format!("{node_id}-{started_ms}"),
            next: AtomicU64::new(1),
            kept: Mutex::new(VecDeque::with_capacity(KEPT)),
            live: broadcast::channel(KEPT).0,
        }
    }

    /// The kept events after `since`, oldest first, and the last sequence number handed out.
    pub fn since(&self, since: u64) -> (Vec<JournalEntry>, u64) {
        let kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        let events = kept.iter().filter(|e| e.seq > since).cloned().collect();
        (events, self.next.load(Ordering::Relaxed) - 1)
    }

    /// New events as they happen (a reader that falls behind by [`KEPT`] loses the oldest).
    pub fn subscribe(&self) -> broadcast::Receiver<JournalEntry> {
        self.live.subscribe()
    }
}

impl EventSink for EventJournal {
    fn emit(&self, event: &HealEvent) {
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        // Numbered under the lock, so the journal's order is the sequence order.
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        let entry = JournalEntry {
            seq,
            id: format!("{}-{seq}", self.prefix),
            event: event.clone(),
        };
        if kept.len() == KEPT {
            kept.pop_front();
        }
        kept.push_back(entry.clone());
        drop(kept);
        let _ = self.live.send(entry);
    }
}
