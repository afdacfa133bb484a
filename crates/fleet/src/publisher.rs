//! The publishing side: a bounded queue the heal loop hands events to, and one task that drains
//! it into Redis. Nothing here can block the loop: `emit` and `publish_summary` never wait.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use central_core::{EventSink, HealEvent};
use redis::aio::MultiplexedConnection;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::{call, connect, FleetConfig, FleetError};
use crate::keys;
use crate::record::{NodeHeartbeat, NodeRecord, NodeSummary};

/// Events sent to Redis in one round trip at most.
const BATCH: usize = 256;
/// The longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The first wait after a failed connection.
const MIN_BACKOFF: Duration = Duration::from_millis(100);

/// What the publisher has done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PublisherStats {
    /// Events written to the stream.
    pub published_events: u64,
    /// Events lost: the queue was full (Redis away or slow), or a write of them failed.
    pub dropped_events: u64,
    /// Heartbeats written.
    pub heartbeats: u64,
    /// Redis calls (connecting included) that failed or timed out.
    pub failed_calls: u64,
    /// Whether the last call reached Redis.
    pub connected: bool,
}

#[derive(Debug, Default)]
struct Counters {
    published: AtomicU64,
    dropped: AtomicU64,
    heartbeats: AtomicU64,
    failed: AtomicU64,
    connected: AtomicBool,
}

/// Publishes this node to Central's Redis. Hand it to the heal loop as an [`EventSink`]; give it
/// the node's summary after each round with [`FleetPublisher::publish_summary`].
#[derive(Debug)]
pub struct FleetPublisher {
    events: mpsc::Sender<String>,
    summary: watch::Sender<NodeSummary>,
    snapshot: watch::Sender<Option<Arc<central_core::NodeStatus>>>,
    counters: Arc<Counters>,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl FleetPublisher {
    /// Validates `config` (the address, the password file) and starts the publishing task on the
    /// current Tokio runtime. It connects in the background: Redis being down at start is not an
    /// error, only counted and retried.
    pub fn start(config: FleetConfig, node: NodeRecord) -> Result<Self, FleetError> {
        let client = config.client()?;
        let (events_tx, events_rx) = mpsc::channel(config.queue);
        let (summary_tx, summary_rx) = watch::channel(NodeSummary::default());
        let (snapshot_tx, snapshot_rx) = watch::channel(None);
        let (stop_tx, stop_rx) = watch::channel(false);
        let counters = Arc::new(Counters::default());
        let worker = Worker {
            config,
            client,
            node,
            counters: counters.clone(),
            conn: None,
            backoff: MIN_BACKOFF,
            retry_at: None,
            warned: false,
        };
        let task = tokio::spawn(worker.run(events_rx, summary_rx, snapshot_rx, stop_rx));
        Ok(FleetPublisher {
            events: events_tx,
            summary: summary_tx,
            snapshot: snapshot_tx,
            counters,
            stop: stop_tx,
            task: Mutex::new(Some(task)),
        })
    }

    /// Replaces the summary the next heartbeat carries (only the latest one matters).
    pub fn publish_summary(&self, summary: NodeSummary) {
        self.summary.send_replace(summary);
    }

    /// Replaces the status snapshot the next heartbeat writes beside it. Only the latest one
    /// matters, so it is serialized at the heartbeat, not on every update.
    pub fn publish_snapshot(&self, status: Arc<central_core::NodeStatus>) {
        self.snapshot.send_replace(Some(status));
    }

    /// The counts so far.
    pub fn stats(&self) -> PublisherStats {
        let c = &self.counters;
        PublisherStats {
            published_events: c.published.load(Ordering::Relaxed),
            dropped_events: c.dropped.load(Ordering::Relaxed),
            heartbeats: c.heartbeats.load(Ordering::Relaxed),
            failed_calls: c.failed.load(Ordering::Relaxed),
            connected: c.connected.load(Ordering::Relaxed),
        }
    }

    /// Stops the task: what is queued gets one last chance to be written, within `within`.
    pub async fn shutdown(&self, within: Duration) {
        let _ = self.stop.send(true);
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(mut task) = task {
            if tokio::time::timeout(within, &mut task).await.is_err() {
                task.abort();
            }
        }
    }
}

impl EventSink for FleetPublisher {
    fn emit(&self, event: &HealEvent) {
        let Ok(json) = serde_json::to_string(event) else {
            return;
        };
        if self.events.try_send(json).is_err() {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for FleetPublisher {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// The task that owns the connection.
struct Worker {
    config: FleetConfig,
    client: redis::Client,
    node: NodeRecord,
    counters: Arc<Counters>,
    conn: Option<MultiplexedConnection>,
    /// The wait before the next connection after a failure; back to the minimum only once a
    /// command succeeds, so a Redis that accepts connections but refuses commands (NOPERM,
    /// LOADING, OOM) is retried with back-off, not in a hot loop.
    backoff: Duration,
    /// When a failure happened, the next connection waits until then.
    retry_at: Option<tokio::time::Instant>,
    /// Whether this outage was already logged (one warning per outage).
    warned: bool,
}

impl Worker {
    async fn run(
        mut self,
        mut events: mpsc::Receiver<String>,
        summary: watch::Receiver<NodeSummary>,
        snapshot: watch::Receiver<Option<Arc<central_core::NodeStatus>>>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut heartbeat = tokio::time::interval(self.config.heartbeat_every);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            if *stop.borrow() {
                break;
            }
            if self.conn.is_none() {
                if let Some(at) = self.retry_at.take() {
                    // The queue fills meanwhile; `emit` drops and counts past its bound.
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {}
                        _ = stop.changed() => {}
                    }
                    continue;
                }
                match connect(&self.config, &self.client).await {
                    Ok(conn) => {
                        self.conn = Some(conn);
                        heartbeat.reset_immediately();
                    }
                    Err(e) => {
                        self.failed(&e);
                        continue;
                    }
                }
            }
            tokio::select! {
                _ = heartbeat.tick() => {
                    let beat = self.heartbeat(&summary.borrow().clone());
                    let snapshot = snapshot
                        .borrow()
                        .clone()
                        .and_then(|s| serde_json::to_string(&*s).ok());
                    self.write_heartbeat(beat, snapshot).await;
                }
                n = events.recv_many(&mut batch, BATCH) => {
                    if n == 0 {
                        break;
                    }
                    self.write_events(&mut batch).await;
                }
                _ = stop.changed() => {}
            }
        }
        // One last chance for what is queued, within the deadline of one call; with no
        // connection, what is left is counted as dropped.
        events.close();
        while let Ok(e) = events.try_recv() {
            batch.push(e);
            if batch.len() == BATCH {
                self.write_events(&mut batch).await;
            }
        }
        self.write_events(&mut batch).await;
    }

    fn heartbeat(&self, summary: &NodeSummary) -> NodeHeartbeat {
        NodeHeartbeat {
            node: self.node.clone(),
            summary: summary.clone(),
            at_ms: now_ms(),
            ttl_ms: u64::try_from(self.config.heartbeat_ttl.as_millis()).unwrap_or(u64::MAX),
            dropped_events: self.counters.dropped.load(Ordering::Relaxed),
        }
    }

    async fn write_heartbeat(&mut self, beat: NodeHeartbeat, snapshot: Option<String>) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        let prefix = &self.config.prefix;
        let json = serde_json::to_string(&beat).unwrap_or_default();
        // One round trip, the record before the liveness key: a node seen alive has a record at
        // least one heartbeat old. Not MULTI/EXEC: a per-node ACL user then needs two commands
        // fewer, and redis 1.8's multiplexed connection panics on a refused MULTI (an
        // arithmetic underflow in its transaction bookkeeping).
        let mut pipe = redis::pipe();
        if let Some(snapshot) = snapshot {
            pipe.hset(keys::status(prefix), &beat.node.node_id, snapshot.as_str())
                .ignore();
        }
        pipe.hset(keys::nodes(prefix), &beat.node.node_id, json)
            .ignore()
            .cmd("SET")
            .arg(keys::alive(prefix, &beat.node.node_id))
            .arg(beat.at_ms)
            .arg("PX")
            .arg(beat.ttl_ms)
            .ignore();
        match call(
            &self.config,
            "write the heartbeat",
            pipe.query_async::<()>(conn),
        )
        .await
        {
            Ok(()) => {
                self.counters.heartbeats.fetch_add(1, Ordering::Relaxed);
                self.succeeded();
            }
            Err(e) => self.failed(&e),
        }
    }

    async fn write_events(&mut self, batch: &mut Vec<String>) {
        if batch.is_empty() {
            return;
        }
        let n = batch.len() as u64;
        let Some(conn) = self.conn.as_mut() else {
            self.counters.dropped.fetch_add(n, Ordering::Relaxed);
            batch.clear();
            return;
        };
        let key = keys::events(&self.config.prefix);
        let mut pipe = redis::pipe();
        for event in batch.drain(..) {
            pipe.cmd("XADD")
                .arg(&key)
                .arg("MAXLEN")
                .arg("~")
                .arg(self.config.stream_maxlen)
                .arg("*")
                .arg("node_id")
                .arg(&self.node.node_id)
                .arg("event")
                .arg(event)
                .ignore();
        }
        match call(&self.config, "append events", pipe.query_async::<()>(conn)).await {
            Ok(()) => {
                self.counters.published.fetch_add(n, Ordering::Relaxed);
                self.succeeded();
            }
            Err(e) => {
                self.counters.dropped.fetch_add(n, Ordering::Relaxed);
                self.failed(&e);
            }
        }
    }

    /// A call reached Redis: the outage, if any, is over.
    fn succeeded(&mut self) {
        self.counters.connected.store(true, Ordering::Relaxed);
        self.backoff = MIN_BACKOFF;
        if self.warned {
            tracing::info!("fleet publishing resumed");
            self.warned = false;
        }
    }

    /// A failed call (connecting included): count it, log it once per outage, drop the
    /// connection and wait the back-off before the next one.
    fn failed(&mut self, error: &FleetError) {
        self.counters.failed.fetch_add(1, Ordering::Relaxed);
        self.counters.connected.store(false, Ordering::Relaxed);
        if !self.warned {
            tracing::warn!(%error, "fleet publishing paused; healing goes on, events are queued then dropped and counted");
            self.warned = true;
        }
        self.conn = None;
        self.retry_at = Some(tokio::time::Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
