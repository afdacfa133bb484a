//! The reading side: the fleet's nodes and their events, for `status --fleet` and
//! `events --fleet`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::streams::{StreamId, StreamRangeReply, StreamReadOptions, StreamReadReply};
use serde::Serialize;

use crate::config::{call, connect, FleetConfig, FleetError};
use crate::keys;
use crate::record::NodeHeartbeat;

/// One node as Central sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct FleetNode {
    /// Its last heartbeat.
    #[serde(flatten)]
    pub heartbeat: NodeHeartbeat,
    /// No heartbeat within its TTL (by Redis's clock): the node or its link is down.
    pub stale: bool,
    /// How old the last heartbeat is, by this machine's clock (ms; 0 when in the future).
    pub age_ms: u64,
}

/// One event of the fleet's stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct FleetEvent {
    /// The stream entry id (`ms-seq`): pass it back to read what follows.
    pub id: String,
    /// The node that published it.
    pub node_id: String,
    /// The heal event, as the node wrote it (kept as written: a newer node's fields pass
    /// through).
    #[cfg_attr(feature = "schema", schemars(with = "central_core::HealEvent"))]
    pub event: serde_json::Value,
}

/// Every node that ever published, with whether it is stale, sorted by node id.
pub async fn fleet_status(config: &FleetConfig) -> Result<Vec<FleetNode>, FleetError> {
    let client = config.client()?;
    let mut conn = connect(config, &client).await?;
    let nodes_key = keys::nodes(&config.prefix);
    let all: Vec<(String, String)> = call(
        config,
        "read the nodes",
        redis::cmd("HGETALL").arg(&nodes_key).query_async(&mut conn),
    )
    .await?;
    let mut pipe = redis::pipe();
    for (id, _) in &all {
        pipe.exists(keys::alive(&config.prefix, id));
    }
    let alive: Vec<bool> = if all.is_empty() {
        Vec::new()
    } else {
        call(config, "read the heartbeats", pipe.query_async(&mut conn)).await?
    };
    let now = now_ms();
    let mut nodes = all
        .into_iter()
        .zip(alive)
        .map(|((id, json), alive)| fleet_node(&nodes_key, &id, &json, alive, now))
        .collect::<Result<Vec<_>, _>>()?;
    nodes.sort_by(|a, b| a.heartbeat.node.node_id.cmp(&b.heartbeat.node.node_id));
    Ok(nodes)
}

/// This machine's clock, in ms since the epoch.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A node from its heartbeat's JSON (the field `id` of the hash `nodes_key`).
fn fleet_node(
    nodes_key: &str,
    id: &str,
    json: &str,
    alive: bool,
    now: u64,
) -> Result<FleetNode, FleetError> {
    let heartbeat: NodeHeartbeat = serde_json::from_str(json).map_err(|e| FleetError::Record {
        key: format!("{nodes_key} {id}"),
        detail: e.to_string(),
    })?;
    Ok(FleetNode {
        age_ms: now.saturating_sub(heartbeat.at_ms),
        heartbeat,
        stale: !alive,
    })
}

/// One node as Central sees it with its latest status snapshot, as its last heartbeat wrote
/// them, in one round trip (`None`: the node never published a snapshot).
pub async fn node_status(
    config: &FleetConfig,
    node_id: &str,
) -> Result<Option<(FleetNode, central_core::NodeStatus)>, FleetError> {
    let client = config.client()?;
    let mut conn = connect(config, &client).await?;
    let (nodes_key, status_key) = (keys::nodes(&config.prefix), keys::status(&config.prefix));
    let mut pipe = redis::pipe();
    pipe.hget(&nodes_key, node_id)
        .exists(keys::alive(&config.prefix, node_id))
        .hget(&status_key, node_id);
    let (heartbeat, alive, status): (Option<String>, bool, Option<String>) =
        call(config, "read a node's status", pipe.query_async(&mut conn)).await?;
    let (Some(heartbeat), Some(status)) = (heartbeat, status) else {
        return Ok(None);
    };
    let node = fleet_node(&nodes_key, node_id, &heartbeat, alive, now_ms())?;
    let status = serde_json::from_str(&status).map_err(|e| FleetError::Record {
        key: format!("{status_key} {node_id}"),
        detail: e.to_string(),
    })?;
    Ok(Some((node, status)))
}

/// Up to `count` events after the entry `after` (`0` for the oldest kept, an id from a previous
/// read to go on). With `block`, waits up to that long for the first one (Redis's `BLOCK`).
pub async fn read_events(
    config: &FleetConfig,
    after: &str,
    count: usize,
    block: Option<Duration>,
) -> Result<Vec<FleetEvent>, FleetError> {
    EventReader::connect(config)
        .await?
        .after(after, count, block)
        .await
}

/// The newest `count` events, oldest first (what `events --fleet --lines N` shows, as `tail`
/// would).
pub async fn latest_events(
    config: &FleetConfig,
    count: usize,
) -> Result<Vec<FleetEvent>, FleetError> {
    EventReader::connect(config).await?.latest(count).await
}

/// One connection to the event stream, for reading it repeatedly (`--follow`).
pub struct EventReader {
    config: FleetConfig,
    conn: redis::aio::MultiplexedConnection,
    key: String,
}

impl EventReader {
    /// Connects (within the call deadline).
    pub async fn connect(config: &FleetConfig) -> Result<Self, FleetError> {
        let client = config.client()?;
        let conn = connect(config, &client).await?;
        Ok(EventReader {
            key: keys::events(&config.prefix),
            config: config.clone(),
            conn,
        })
    }

    /// The id of the newest entry (`0-0` when the stream is empty): what a follow starts after,
    /// so nothing appended between two of its reads is missed (`$` would be re-resolved at each).
    pub async fn last_id(&mut self) -> Result<String, FleetError> {
        let newest = self.latest(1).await?;
        Ok(newest
            .last()
            .map_or_else(|| "0-0".to_string(), |e| e.id.clone()))
    }

    /// The newest `count` events, oldest first.
    pub async fn latest(&mut self, count: usize) -> Result<Vec<FleetEvent>, FleetError> {
        let reply: StreamRangeReply = call(
            &self.config,
            "read the newest events",
            redis::cmd("XREVRANGE")
                .arg(&self.key)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(count)
                .query_async(&mut self.conn),
        )
        .await?;
        let mut out = entries(&self.key, reply.ids)?;
        out.reverse();
        Ok(out)
    }

    /// Up to `count` events after `after`; with `block`, waits up to that long for the first.
    pub async fn after(
        &mut self,
        after: &str,
        count: usize,
        block: Option<Duration>,
    ) -> Result<Vec<FleetEvent>, FleetError> {
        let mut opts = StreamReadOptions::default().count(count);
        if let Some(block) = block {
            opts = opts.block(usize::try_from(block.as_millis()).unwrap_or(usize::MAX));
        }
        // The deadline covers the wait Redis was asked for, plus the call's own.
        let deadline = FleetConfig {
            call_timeout: self.config.call_timeout + block.unwrap_or_default(),
            ..self.config.clone()
        };
        let reply: Option<StreamReadReply> = call(
            &deadline,
            "read events",
            redis::cmd("XREAD")
                .arg(&opts)
                .arg("STREAMS")
                .arg(&self.key)
                .arg(after)
                .query_async(&mut self.conn),
        )
        .await?;
        let mut out = Vec::new();
        for stream in reply.map(|r| r.keys).unwrap_or_default() {
            out.extend(entries(&self.key, stream.ids)?);
        }
        Ok(out)
    }
}

/// Stream entries as events; an entry without its fields is an error naming it.
fn entries(key: &str, ids: Vec<StreamId>) -> Result<Vec<FleetEvent>, FleetError> {
    let mut out = Vec::with_capacity(ids.len());
    for entry in ids {
        let field = |name: &str| -> Option<String> {
            entry
                .map
                .get(name)
                .and_then(|v| redis::from_redis_value::<String>(v.clone()).ok())
        };
        let bad = |what: &str| FleetError::Record {
            key: format!("{key} {}", entry.id),
            detail: what.to_string(),
        };
        let node_id = field("node_id").ok_or_else(|| bad("no node_id field"))?;
        let event = field("event").ok_or_else(|| bad("no event field"))?;
        let event = serde_json::from_str(&event).map_err(|e| bad(&e.to_string()))?;
        out.push(FleetEvent {
            id: entry.id.clone(),
            node_id,
            event,
        });
    }
    Ok(out)
}
