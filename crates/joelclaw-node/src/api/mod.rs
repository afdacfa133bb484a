//! The running agent's local API: HTTP over a Unix socket in its state folder
//! (`STATE/agent.sock`, mode 0660, group = the service group: that permission is the
//! authorization). Every JSON answer is the same envelope as the CLI's `--json`
//! ([`crate::output::Envelope`]).
//!
//! - `GET /v1/health` — the agent answers, its node, its last round;
//! - `GET /v1/status` — the live snapshot of the last round (no probe round of its own);
//! - `GET /v1/services/{label}` — one service of that snapshot;
//! - `GET /v1/events?since=SEQ` — the kept events after SEQ; `GET /v1/events/stream` — Server-Sent
//!   Events as they happen (`id:` is the sequence number);
//! - `GET /v1/fleet` — every node publishing to Central's Redis (the inventory's `[fleet]`),
//!   as `status --fleet` has them (`schemas/fleet-status.schema.json`);
//! - `GET /metrics` — Prometheus text format (these two also on `[api] health_listen`, a
//!   loopback TCP address, for a watchdog; nothing else is served there);
//! - `POST /v1/services/{label}/{start|stop|restart|enable|disable}` — a service verb through
//!   the loop (serialized with that service's heals; a stop or disable is kept across restarts).

mod journal;
mod metrics;
mod routes;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use central_core::NodeStatus;
use tokio::sync::watch;

pub use journal::{EventJournal, JournalEntry};
pub use metrics::Metrics;

/// The socket's name in the state folder.
pub const SOCKET: &str = "agent.sock";

/// What the API serves from.
#[derive(Debug, Clone)]
pub struct ApiState {
    /// The latest round's snapshot.
    pub status: watch::Receiver<NodeStatus>,
    /// Recent events.
    pub journal: Arc<EventJournal>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// When the agent started (ms since the epoch).
    pub started_ms: u64,
    /// Central's Redis, when the inventory names one (`GET /v1/fleet`).
    pub fleet: Option<fleet::FleetConfig>,
    /// Service verbs into the loop (`POST /v1/services/{label}/{verb}`).
    pub control: Option<central_core::Control>,
    /// How long a verb may wait for the service's heal in flight and its own call.
    pub verb_patience: std::time::Duration,
}

/// How long a verb may take through the agent: a heal in flight, then its own call, each
/// bounded by the loop's heal deadline.
pub fn verb_patience(settings: &central_core::model::LoopSettings) -> std::time::Duration {
    settings.heal_timeout * 2 + std::time::Duration::from_secs(1)
}

/// A bound API socket; removed when dropped.
#[derive(Debug)]
pub struct ApiSocket {
    path: PathBuf,
    listener: Option<tokio::net::UnixListener>,
}

impl ApiSocket {
    /// Binds `STATE/agent.sock`, mode 0660, group `group` when given (the service group; it
    /// must exist), else the agent's own group. The state folder becomes 0710 with that group:
    /// its members may reach the socket, not list or read the folder (its files are 0600). A
    /// stale socket from a previous agent is replaced: the state folder's lock says no other
    /// agent runs here.
    pub fn bind(state_dir: &Path, group: Option<&str>) -> Result<Self, String> {
        use std::os::unix::fs::PermissionsExt;
        let gid = match group {
            Some(group) => {
                nix::unistd::Group::from_name(group)
                    .map_err(|e| format!("API socket group {group}: {e}"))?
                    .ok_or_else(|| format!("API socket group {group}: no such group"))?
                    .gid
            }
            None => nix::unistd::getgid(),
        };
        // An agent without CAP_CHOWN (its own sandbox) may not give the folder to a group it is
        // not in: the API then stays the agent's own (root's), and the loop runs regardless.
        let gid = match nix::unistd::chown(state_dir, None, Some(gid)) {
            Ok(()) => gid,
            Err(e) => {
                tracing::warn!(
                    state = %state_dir.display(),
                    error = %e,
                    "the API socket stays the agent's own group: give the agent the service group (SupplementaryGroups=) to share it"
                );
                nix::unistd::getgid()
            }
        };
        std::fs::set_permissions(state_dir, std::fs::Permissions::from_mode(0o710))
            .map_err(|e| format!("state folder {}: {e}", state_dir.display()))?;
        let path = state_dir.join(SOCKET);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("{}: {e}", path.display())),
        }
        let listener = tokio::net::UnixListener::bind(&path)
            .map_err(|e| format!("API socket {}: {e}", path.display()))?;
        nix::unistd::chown(&path, None, Some(gid))
            .map_err(|e| format!("API socket {}: chown: {e}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660))
            .map_err(|e| format!("API socket {}: {e}", path.display()))?;
        Ok(ApiSocket {
            path,
            listener: Some(listener),
        })
    }

    /// Serves until `shutdown` completes.
    pub async fn serve(
        mut self,
        state: ApiState,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let Some(listener) = self.listener.take() else {
            return;
        };
        let app = routes::router(state);
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::warn!(error = %e, "the local API stopped");
        }
    }
}

impl Drop for ApiSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The running API: stop it with [`RunningApi::stop`].
#[derive(Debug)]
pub struct RunningApi {
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Completes when `stop` says so (or its sender is gone).
async fn stopped(mut stop: tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

impl RunningApi {
    /// Binds the socket in `state_dir` (group: the inventory's service group, when one is
    /// configured), hands the journal and the metrics to the loop as sinks, and serves.
    pub fn start(
        state_dir: &Path,
        inventory: &central_core::Inventory,
        heal: &mut central_core::HealLoop,
    ) -> Result<Self, String> {
        let group = inventory
            .managers
            .values()
            .find_map(|m| m.service_group.as_deref());
        let socket = ApiSocket::bind(state_dir, group)?;
        let started_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let status = heal.watch_status();
        let node_id = status.borrow().node_id.clone();
        let journal = Arc::new(EventJournal::new(&node_id, started_ms));
        let metrics = Arc::new(Metrics::default());
        heal.add_sink(journal.clone());
        heal.add_sink(metrics.clone());
        let state = ApiState {
            status,
            journal,
            metrics,
            started_ms,
            fleet: inventory.fleet.as_ref().map(fleet::FleetConfig::from_spec),
            control: Some(heal.control()),
            verb_patience: verb_patience(heal.settings()),
        };
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let mut tasks = Vec::new();
        if let Some(addr) = inventory.api.health_listen {
            // Health and metrics on loopback for a watchdog or scraper; the socket stays the
            // only way to read more or act. A port in use costs this listener, not the API.
            match std::net::TcpListener::bind(addr)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .and_then(tokio::net::TcpListener::from_std)
            {
                Ok(listener) => {
                    let app = routes::read_only_router(state.clone());
                    let stop = stopped(stop_rx.clone());
                    tasks.push(tokio::spawn(async move {
                        if let Err(e) = axum::serve(listener, app)
                            .with_graceful_shutdown(stop)
                            .await
                        {
                            tracing::warn!(error = %e, "the health listener stopped");
                        }
                    }));
                }
                Err(e) => {
                    tracing::warn!(%addr, error = %e, "api.health_listen: not listening")
                }
            }
        }
        // Each probe round into the histogram as the loop's status updates arrive, not at
        // scrape time only: rounds between two scrapes count too.
        let mut rounds = state.status.clone();
        let observer = state.metrics.clone();
        let mut observer_stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                observer.observe_rounds(&rounds.borrow_and_update());
                tokio::select! {
                    changed = rounds.changed() => if changed.is_err() { return },
                    _ = observer_stop.wait_for(|s| *s) => return,
                }
            }
        }));
        tasks.push(tokio::spawn(socket.serve(state, stopped(stop_rx))));
        Ok(RunningApi { stop, tasks })
    }

    /// Stops serving (open streams are closed) and removes the socket, within a second.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
        for mut task in self.tasks {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                task.abort();
            }
        }
    }
}
