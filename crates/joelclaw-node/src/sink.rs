//! `QueuedJsonLines`: the agent's event output. The heal loop hands each event to a bounded
//! queue and a writer thread writes the JSON lines, so a reader that stops reading (a full
//! stdout pipe) can never stall the loop; when the queue is full, events are dropped and
//! counted, and the count is reported when the writer catches up.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use central_core::{EventSink, HealEvent};

/// Events waiting for the writer before new ones are dropped.
pub const QUEUE: usize = 4096;

/// An [`EventSink`] that never blocks the loop.
#[derive(Debug)]
pub struct QueuedJsonLines {
    tx: Mutex<Option<SyncSender<String>>>,
    /// Every event dropped so far (never reset).
    dropped: AtomicU64,
    /// Dropped since the writer last reported it.
    unreported: Arc<AtomicU64>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl QueuedJsonLines {
    /// Starts the writer thread over `out`.
    pub fn new(mut out: Box<dyn Write + Send>, capacity: usize) -> Self {
        let (tx, rx) = sync_channel::<String>(capacity);
        let unreported = Arc::new(AtomicU64::new(0));
        let lost = unreported.clone();
        let writer = std::thread::Builder::new()
            .name("event-writer".into())
            .spawn(move || {
                for line in rx {
                    let missed = lost.swap(0, Ordering::Relaxed);
                    if missed > 0 {
                        tracing::warn!(missed, "event output fell behind; events were dropped");
                    }
                    if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
                        // The reader is gone; the loop goes on (tracing still has the events).
                        return;
                    }
                }
            })
            .expect("spawn the event writer thread");
        QueuedJsonLines {
            tx: Mutex::new(Some(tx)),
            dropped: AtomicU64::new(0),
            unreported,
            writer: Mutex::new(Some(writer)),
        }
    }

    /// Events dropped so far because the writer was behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Closes the queue and waits until every queued event is written.
    pub fn finish(&self) {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(w) = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = w.join();
        }
    }
}

impl EventSink for QueuedJsonLines {
    fn emit(&self, event: &HealEvent) {
        let guard = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        let Some(tx) = guard.as_ref() else { return };
        match tx.try_send(event.to_json_line()) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                self.unreported.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::Receiver;

    /// A writer that blocks until told to go on, like a pipe nobody reads.
    struct Stalled {
        go: Receiver<()>,
        written: Arc<Mutex<Vec<u8>>>,
        released: bool,
    }

    impl Write for Stalled {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if !self.released {
                let _ = self.go.recv();
                self.released = true;
            }
            self.written.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn event(n: u64) -> HealEvent {
        let line = format!(
            r#"{{"event":"probe.failed","at_ms":{n},"node_id":"n","platform":"linux","adapter_type":"memory","endpoint_class":null,"service":"s","class":"app-level","step":null,"attempt":null,"error_kind":null,"cause":null,"outcome":null,"detail":""}}"#
        );
        serde_json::from_str(&line).expect("a valid event")
    }

    #[test]
    fn a_stalled_reader_never_blocks_emit_and_drops_are_counted() {
        let (go_tx, go) = std::sync::mpsc::channel();
        let written = Arc::new(Mutex::new(Vec::new()));
        let sink = QueuedJsonLines::new(
            Box::new(Stalled {
                go,
                written: written.clone(),
                released: false,
            }),
            4,
        );
        // The writer holds one line and blocks on it; four more fill the queue; the rest drop.
        for n in 0..20 {
            sink.emit(&event(n));
        }
        // 20 sent; at most one in the writer's hands and four queued get through.
        assert!(sink.dropped() >= 15, "dropped {}", sink.dropped());
        go_tx.send(()).unwrap();
        sink.finish();
        let text = String::from_utf8(written.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len() as u64 + sink.dropped(), 20, "{lines:?}");
        assert!((4..=5).contains(&lines.len()), "{lines:?}");
        assert!(lines[0].contains("\"at_ms\":0"), "{}", lines[0]);
    }
}
