//! `status --fleet` and `events --fleet`: every node publishing to Central's Redis (the
//! inventory's `[fleet]`), read back from it: role, last heartbeat, summary, stale nodes flagged
//! as unreachable; and the fleet's heal events, `--follow` to wait for new ones.

use std::path::PathBuf;
use std::time::Duration;

use central_core::Inventory;
use clap::Args;
use fleet::{
    fleet_status, latest_events, read_events, EventReader, FleetConfig, FleetEvent, FleetNode,
};
use schemars::JsonSchema;
use serde::Serialize;

use crate::output::{table, Failure, Report};
use crate::setup::{load, runtime};

/// The fleet's configuration, or a usage error saying where to set it.
fn config(command: &'static str, inventory: &Inventory) -> Result<FleetConfig, Failure> {
    let spec = inventory.fleet.as_ref().ok_or_else(|| {
        Failure::input(
            command,
            format!(
                "{}: no [fleet] section: the fleet is read from Central's Redis; add [fleet] redis = \"redis://central:6379\"",
                inventory.file.display()
            ),
        )
    })?;
    let config = FleetConfig::from_spec(spec);
    config.validate().map_err(|e| Failure::input(command, e))?;
    Ok(config)
}

/// `status --fleet`'s result.
#[derive(Debug, Serialize, JsonSchema)]
pub struct FleetStatusResult {
    /// Central's Redis (its password hidden).
    pub redis: String,
    /// Every node that ever published, sorted by node id.
    pub nodes: Vec<FleetNode>,
}

/// `status --fleet --node ID`'s result.
#[derive(Debug, Serialize, JsonSchema)]
pub struct FleetNodeResult {
    /// Central's Redis (its password hidden).
    pub redis: String,
    /// No heartbeat within its TTL: the snapshot is as old as the last heartbeat.
    pub stale: bool,
    /// How old the node's last heartbeat is (ms, by this machine's clock).
    pub age_ms: u64,
    /// The node's snapshot, as its last heartbeat wrote it (`GET /v1/status`'s result there).
    pub status: central_core::NodeStatus,
}

/// `events --fleet`'s result (without `--follow`; each line of a follow is one of `events`).
#[derive(Debug, Serialize, JsonSchema)]
pub struct FleetEventsResult {
    /// The events read, oldest first.
    pub events: Vec<FleetEvent>,
    /// The last event's stream id (pass it as `--since` to read what follows); null when none.
    pub last_id: Option<String>,
}

fn age(ms: u64) -> String {
    humantime::format_duration(Duration::from_secs(ms / 1000)).to_string() + " ago"
}

/// `status --fleet`: exit 1 when a node is stale or has unhealthy services.
pub fn status(inventory: &Inventory) -> Result<Report, Failure> {
    const CMD: &str = "status";
    let config = config(CMD, inventory)?;
    let nodes = runtime(CMD)?
        .block_on(fleet_status(&config))
        .map_err(|e| Failure::failed(CMD, e))?;
    let rows: Vec<Vec<String>> = nodes
        .iter()
        .map(|n| {
            let h = &n.heartbeat;
            vec![
                h.node.node_id.clone(),
                h.node.role.clone(),
                h.node.platform.clone(),
                if n.stale { "unreachable" } else { "up" }.into(),
                age(n.age_ms),
                h.summary.healthy.to_string(),
                h.summary.unhealthy.to_string(),
                h.summary.open_breakers.to_string(),
                if h.summary.unhealthy_services.is_empty() {
                    "-".into()
                } else {
                    h.summary.unhealthy_services.join(",")
                },
            ]
        })
        .collect();
    let mut human = table(
        &[
            "NODE",
            "ROLE",
            "PLATFORM",
            "STATE",
            "HEARTBEAT",
            "HEALTHY",
            "UNHEALTHY",
            "BREAKERS",
            "DOWN",
        ],
        &rows,
    );
    if nodes.is_empty() {
        human = format!("no node has published to {} yet\n", config.redacted_url());
    }
    let troubled = nodes
        .iter()
        .any(|n| n.stale || n.heartbeat.summary.unhealthy > 0);
    let result = FleetStatusResult {
        redis: config.redacted_url(),
        nodes,
    };
    Ok(if troubled {
        Report::findings(CMD, result, human)
    } else {
        Report::ok(CMD, result, human)
    })
}

/// `status --fleet --node ID`: that node's latest snapshot, as its last heartbeat wrote it,
/// and whether the node is stale (its snapshot is then as old as its last heartbeat). Exit 1
/// when the node is stale or a service is not healthy; `not-found` when it never published.
pub fn node_status(inventory: &Inventory, node_id: &str) -> Result<Report, Failure> {
    const CMD: &str = "status";
    let config = config(CMD, inventory)?;
    let rt = runtime(CMD)?;
    let found = rt
        .block_on(fleet::node_status(&config, node_id))
        .map_err(|e| Failure::failed(CMD, e))?;
    let Some((node, status)) = found else {
        return Err(Failure::not_found(
            CMD,
            format!(
                "node {node_id:?} has published no status to {}",
                config.redacted_url()
            ),
        ));
    };
    use crate::output::json_name as name;
    let rows: Vec<Vec<String>> = status
        .services
        .iter()
        .map(|s| {
            vec![
                s.label.clone(),
                s.manager.clone(),
                name(&s.health),
                name(&s.desired),
                crate::output::opt(&s.pid),
                name(&s.breaker),
                s.last_event.map_or("-".into(), |e| e.as_str().to_string()),
            ]
        })
        .collect();
    let human = format!(
        "{node_id}: {}, snapshot of {}\n",
        if node.stale { "unreachable" } else { "up" },
        age(node.age_ms)
    ) + &table(
        &[
            "SERVICE",
            "MANAGER",
            "HEALTH",
            "DESIRED",
            "PID",
            "BREAKER",
            "LAST EVENT",
        ],
        &rows,
    );
    let troubled = node.stale
        || status.services.iter().any(|s| {
            !matches!(
                s.health,
                central_core::Health::Healthy
                    | central_core::Health::Stopped
                    | central_core::Health::Disabled
            )
        });
    let result = FleetNodeResult {
        redis: config.redacted_url(),
        stale: node.stale,
        age_ms: node.age_ms,
        status,
    };
    Ok(if troubled {
        Report::findings(CMD, result, human)
    } else {
        Report::ok(CMD, result, human)
    })
}

/// `events --fleet [--follow] [--since ID] [--lines N]`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// The inventory (TOML) naming Central's Redis in `[fleet]`.
    #[arg(long, short = 'i', value_name = "FILE")]
    pub inventory: PathBuf,
    /// Read the whole fleet's events from Central's Redis (the only source so far).
    #[arg(long)]
    pub fleet: bool,
    /// Keep waiting for new events, printing each as it arrives (one JSON line each with
    /// `--json`), until interrupted.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Start after this stream id (a previous read's `last_id`; `0` for the oldest kept).
    /// Default: the newest `--lines` events, or with `--follow` only those yet to come.
    #[arg(long, value_name = "ID")]
    pub since: Option<String>,
    /// At most this many events (without --follow): the newest, unless `--since` is given.
    #[arg(long, short = 'n', value_name = "N", default_value_t = 100)]
    pub lines: usize,
}

fn line(e: &FleetEvent) -> String {
    let field = |k: &str| e.event[k].as_str().unwrap_or("-").to_string();
    format!(
        "{}  {}  {}  {}  {}",
        e.id,
        e.node_id,
        field("service"),
        field("event"),
        field("detail")
    )
}

/// Reads (or follows) the fleet's event stream.
pub fn events(args: EventsArgs, as_json: bool) -> Result<Report, Failure> {
    const CMD: &str = "events";
    if !args.fleet {
        return Err(Failure::input(
            CMD,
            "events reads the fleet's stream: pass --fleet (a node's own events are in the --events output of `run`)",
        ));
    }
    let inventory = load(CMD, &args.inventory)?;
    let config = config(CMD, &inventory)?;
    let rt = runtime(CMD)?;
    if args.follow {
        return rt.block_on(follow(&config, args.since, as_json));
    }
    let events = rt
        .block_on(async {
            match &args.since {
                Some(after) => read_events(&config, after, args.lines, None).await,
                None => latest_events(&config, args.lines).await,
            }
        })
        .map_err(|e| Failure::failed(CMD, e))?;
    let human: String = events.iter().map(|e| line(e) + "\n").collect();
    let last = events.last().map(|e| e.id.clone());
    Ok(Report::ok(
        CMD,
        FleetEventsResult {
            events,
            last_id: last,
        },
        if human.is_empty() {
            "no events\n".into()
        } else {
            human
        },
    ))
}

/// `events --fleet --follow`: prints each new event as it arrives, until interrupted. One
/// connection; a lost one is retried with back-off (said once on stderr), going on after the
/// last event printed, so nothing is skipped or printed twice.
async fn follow(
    config: &FleetConfig,
    since: Option<String>,
    as_json: bool,
) -> Result<Report, Failure> {
    const CMD: &str = "events";
    let mut reader = EventReader::connect(config)
        .await
        .map_err(|e| Failure::failed(CMD, e))?;
    let mut after = match since {
        Some(id) => id,
        None => reader
            .last_id()
            .await
            .map_err(|e| Failure::failed(CMD, e))?,
    };
    // On stderr, so a JSON-lines stdout stays one stream: where the follow starts.
    eprintln!("events: following the fleet's stream after {after}");
    let mut backoff = Duration::from_millis(200);
    loop {
        match reader
            .after(&after, 256, Some(Duration::from_secs(5)))
            .await
        {
            Ok(batch) => {
                backoff = Duration::from_millis(200);
                for e in &batch {
                    if as_json {
                        println!("{}", serde_json::to_string(e).unwrap_or_default());
                    } else {
                        println!("{}", line(e));
                    }
                    after.clone_from(&e.id);
                }
            }
            Err(e) => {
                eprintln!("events: {e}; retrying in {} ms", backoff.as_millis());
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                if let Ok(fresh) = EventReader::connect(config).await {
                    reader = fresh;
                }
            }
        }
    }
}
