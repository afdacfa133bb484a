//! `run`: the heal loop over an inventory until SIGINT/SIGTERM; then children stopped and state
//! saved.

use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::sync::Arc;

use central_core::agent_lock::AgentLock;
use central_core::drift::DefinitionCheck;
use central_core::inventory::ManagerKind;
use central_core::{HealLoop, LoopOptions, NodeTags};
use clap::Args;
use process_manager::{ProcessManagerPort, ServiceConfig};

use crate::api::RunningApi;
use crate::compose::{self, compose, Mode};
use crate::output::{Failure, Report};
use crate::publish::Publishers;
use crate::setup::{load, node_identity, state_dir};
use crate::sink::QueuedJsonLines;

/// `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The inventory (TOML).
    #[arg(long, short = 'i', value_name = "FILE")]
    pub inventory: PathBuf,
    /// Where to write events as JSON lines (`-` for stdout). Default: stdout when it is not a
    /// terminal (a pipe, a journal); on a terminal, none (the human lines on stderr say it all).
    #[arg(long, value_name = "FILE")]
    pub events: Option<String>,
}

/// Where the JSON lines go.
enum EventsTo {
    Stdout,
    File(String),
    Nowhere,
}

impl EventsTo {
    fn of(flag: Option<&str>) -> EventsTo {
        match flag {
            Some("-") => EventsTo::Stdout,
            Some(file) => EventsTo::File(file.to_string()),
            None if std::io::IsTerminal::is_terminal(&std::io::stdout()) => EventsTo::Nowhere,
            None => EventsTo::Stdout,
        }
    }
}

/// Installs the agent's log output: human lines on stderr, level from `RUST_LOG` (default info).
fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(crate::redacted_log::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the agent still runs; it just cannot shut down gracefully.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
}

/// Gives the loop `apply`'s comparison of each installed definition with the rendered desired
/// one, for the managers whose definitions are files (systemd units, launchd plists).
fn add_definition_checks(heal: &mut HealLoop, inventory: &central_core::Inventory) {
    let uses = |kind: ManagerKind| inventory.desired_configs().any(|(s, _)| s.manager == kind);
    if uses(ManagerKind::Systemd) {
        let systemd = compose::systemd_adapter(compose::settings(inventory, "systemd"), None);
        heal.set_definition_check("systemd", Arc::new(RenderedFile::Systemd(systemd)));
    }
    if uses(ManagerKind::Launchd) {
        match compose::launchd_for_inventory(inventory, None) {
            Ok(launchd) => {
                heal.set_definition_check("launchd", Arc::new(RenderedFile::Launchd(launchd)))
            }
            Err(e) => tracing::warn!(error = %e, "launchd definitions are not compared for drift"),
        }
    }
}

/// A definition file compared byte for byte with what `apply` would write.
#[derive(Debug)]
enum RenderedFile {
    Systemd(adapters_linux::SystemdProcessManager),
    Launchd(adapters_macos::LaunchdProcessManager),
}

impl DefinitionCheck for RenderedFile {
    fn drifted(&self, desired: &ServiceConfig) -> Option<String> {
        let (path, want) = match self {
            RenderedFile::Systemd(m) => (
                m.unit_path(&desired.label),
                m.render_unit(desired).ok()?.into_bytes(),
            ),
            RenderedFile::Launchd(m) => m.render(desired).ok()?,
        };
        // Missing is not drift: the probes report it (not installed) and it is repaired.
        let have = std::fs::read(&path).ok()?;
        if have == want {
            return None;
        }
        let (have, want) = (
            String::from_utf8_lossy(&have),
            String::from_utf8_lossy(&want),
        );
        let changed: Vec<String> = similar::TextDiff::from_lines(&*want, &*have)
            .iter_all_changes()
            .filter(|c| c.tag() != similar::ChangeTag::Equal)
            .take(4)
            .map(|c| format!("{}{}", c.tag(), c.value().trim_end()))
            .collect();
        Some(format!("{}: {}", path.display(), changed.join(" ")))
    }
}

/// Gives back the pages set-up freed: parsing the inventory peaks at several MB (≈7.5 MB at
/// 1,000 services) and glibc keeps freed pages inside its heap resident until trimmed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn release_setup_memory() {
    // SAFETY: malloc_trim only walks glibc's own free lists; it has no arguments to get wrong.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_setup_memory() {}

/// Runs the heal loop until a shutdown signal.
pub fn exec(args: RunArgs, state_flag: Option<PathBuf>) -> Result<Report, Failure> {
    const CMD: &str = "run";
    let inventory = load(CMD, &args.inventory)?;
    inventory
        .check_runnable()
        .map_err(|e| Failure::input(CMD, e))?;
    let identity = node_identity(CMD, Some(&inventory))?;
    let state = state_dir(CMD, state_flag, &inventory)?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&state)
        .map_err(|e| Failure::input(CMD, format!("state folder {}: {e}", state.display())))?;
    // One agent per state folder: a second one would start the same children (which then fail
    // to bind) and judge them by the first one's answers. Held until this function returns.
    let _lock = AgentLock::acquire(&state).map_err(|e| Failure::input(CMD, e))?;
    let events_to = EventsTo::of(args.events.as_deref());
    let events: Box<dyn std::io::Write + Send> = match &events_to {
        EventsTo::Stdout => Box::new(std::io::stdout()),
        EventsTo::Nowhere => Box::new(std::io::sink()),
        EventsTo::File(path) => Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| Failure::input(CMD, format!("--events {path}: {e}")))?,
        ),
    };
    init_tracing();
    // One thread runs the loop, its probes and the API (blocking work goes to tokio's blocking
    // pool as before): a probe is a few syscalls, and worker threads made each one cost
    // wake-ups, futexes and context switches (BENCHMARKS.md, CPU per probe).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::failed(CMD, format!("cannot start the async runtime: {e}")))?;
    rt.block_on(async {
        let comp = compose(&inventory, &state, Mode::Own).map_err(|e| Failure::input(CMD, e))?;
        let tags = NodeTags::from_identity(&identity, &inventory);
        let publishers =
            Publishers::start(&inventory, &tags).map_err(|e| Failure::input(CMD, e))?;
        let mut heal = HealLoop::new(
            &inventory,
            comp.ports(),
            LoopOptions::new(tags).with_state_dir(state.join("heal")),
        )
        .map_err(|e| Failure::input(CMD, e))?;
        add_definition_checks(&mut heal, &inventory);
        let sink = Arc::new(QueuedJsonLines::new(events, crate::sink::QUEUE));
        heal.add_sink(sink.clone());
        for publisher in publishers.sinks() {
            heal.add_sink(publisher);
        }
        // The API is for callers; healing does not depend on it.
        let api = match RunningApi::start(&state, &inventory, &mut heal) {
            Ok(api) => Some(api),
            Err(e) => {
                tracing::warn!(error = %e, "the local API is not available; healing goes on");
                None
            }
        };
        let publishers = Arc::new(publishers);
        let mut rounds = heal.watch_status();
        let status_feed = {
            let publishers = publishers.clone();
            tokio::spawn(async move {
                loop {
                    // A copy, so the loop's next update never waits for the publishers.
                    publishers.publish_status(rounds.borrow_and_update().clone());
                    if rounds.changed().await.is_err() {
                        return;
                    }
                }
            })
        };
        if let Some(sup) = &comp.embedded {
            for (spec, config) in inventory.desired_configs() {
                if spec.manager != ManagerKind::Embedded {
                    continue;
                }
                sup.set_stop_grace(&config.label, spec.heal.stop_grace);
                if sup.is_disabled(&config.label) {
                    tracing::info!(service = %config.label, "disabled; not started");
                    continue;
                }
                if spec.monitor_only {
                    tracing::info!(service = %config.label, "monitor-only; not started");
                    continue;
                }
                let desired = heal.desired(config.label.as_str());
                if !desired.is_running() {
                    tracing::info!(service = %config.label, %desired, "by request; not started");
                    continue;
                }
                // A failure here is the heal loop's to handle: it probes and escalates.
                match sup.enable(config).await {
                    Ok(outcome) => tracing::info!(service = %config.label, ?outcome, "started"),
                    Err(e) => {
                        tracing::warn!(service = %config.label, error = %e, "could not start")
                    }
                }
            }
        }
        tracing::info!(
            inventory = %args.inventory.display(),
            state = %state.display(),
            services = inventory.services.len(),
            "heal loop running"
        );
        release_setup_memory();
        // The loop is a task, not the future `block_on` drives: a probe task that reports back
        // then wakes it through the runtime's own queue, not through its eventfd (a write and
        // an epoll wake-up for each report).
        let looped = tokio::spawn(async move {
            heal.run(shutdown_signal()).await;
        });
        if let Err(e) = looped.await {
            tracing::error!(error = %e, "the heal loop panicked");
        }
        if let Some(sup) = &comp.embedded {
            sup.shutdown().await;
        }
        status_feed.abort();
        if let Some(api) = api {
            api.stop().await;
        }
        publishers.shutdown().await;
        sink.finish();
        tracing::info!(dropped_events = sink.dropped(), "stopped; state saved");
        let mut report = Report::ok(
            CMD,
            serde_json::json!({ "stopped": true, "state_dir": state }),
            String::new(),
        );
        // One stream on stdout: the events, or the envelope, never both.
        report.stdout_taken = matches!(events_to, EventsTo::Stdout);
        Ok(report)
    })
}
