//! Pushed service events from systemd: `Subscribe` on the manager, then its `PropertiesChanged`
//! signals for services, turned into [`ServiceEvent`]s. The watch has its own connection (a
//! signal stream that is read slowly must never hold up the replies of queries), is made again
//! with a back-off when it breaks, and stops when the adapter is dropped. Polling stays the
//! safety net for whatever is missed while it reconnects.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::FuturesUnordered;
use futures::StreamExt as _;
use process_manager::{ExitStatus, RunState, ServiceEvent, ServiceLabel};
use tokio::sync::{broadcast, watch};
use zbus::message::Type as MessageType;
use zbus::{MatchRule, MessageStream};

use super::bus::{
    number, subscribe, text, unit_name_of_path, BusError, Detail, SystemdBus, MANAGER_INTERFACE,
    MANAGER_PATH, SERVICE_INTERFACE, UNIT_INTERFACE,
};
use super::show::UnitState;

/// Events kept for a slow receiver before the oldest are dropped (it then polls).
const EVENT_BUFFER: usize = 1024;
/// Signals queued on the watch's connection before zbus holds the socket.
const SIGNAL_QUEUE: usize = 4096;
/// Back-off between reconnections: from the first to the last, doubled each time.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// A watch that lived this long resets the back-off.
const STABLE: Duration = Duration::from_secs(10);

/// The watch of one adapter: the event channel, and the task that feeds it once started.
#[derive(Debug)]
pub(crate) struct Watch {
    bus: Arc<SystemdBus>,
    events: broadcast::Sender<ServiceEvent>,
    /// Dropped with the adapter, which ends the task.
    stop: watch::Sender<()>,
    started: Mutex<bool>,
}

impl Watch {
    pub(crate) fn new(bus: Arc<SystemdBus>) -> Arc<Self> {
        Arc::new(Watch {
            bus,
            events: broadcast::channel(EVENT_BUFFER).0,
            stop: watch::channel(()).0,
            started: Mutex::new(false),
        })
    }

    /// A receiver of the events, starting the watch on this thread's tokio runtime if it has
    /// not started (outside a runtime it starts at the adapter's next call).
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<ServiceEvent> {
        let receiver = self.events.subscribe();
        self.ensure_started();
        receiver
    }

    /// Starts the watch when someone listens (a receiver taken outside a runtime): a caller
    /// that only reads states (`status`) never pays for a second connection and `Subscribe`.
    pub(crate) fn ensure_started_if_subscribed(&self) {
        if self.events.receiver_count() > 0 {
            self.ensure_started();
        }
    }

    /// Whether the watch task was started.
    #[cfg(test)]
    pub(crate) fn started(&self) -> bool {
        *self.started.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts the watch task once, when there is a runtime to run it.
    pub(crate) fn ensure_started(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut started = self.started.lock().unwrap_or_else(|e| e.into_inner());
        if *started {
            return;
        }
        *started = true;
        runtime.spawn(run(
            self.bus.clone(),
            self.events.clone(),
            self.stop.subscribe(),
        ));
    }
}

/// Watches until `stop`'s sender is dropped, connecting again after every break.
async fn run(
    bus: Arc<SystemdBus>,
    events: broadcast::Sender<ServiceEvent>,
    mut stop: watch::Receiver<()>,
) {
    let mut retry = RETRY_FIRST;
    let mut seen = Seen::default();
    loop {
        let began = tokio::time::Instant::now();
        tokio::select! {
            _ = stop.changed() => return,
            ended = watch_once(&bus, &events, &mut seen) => {
                tracing::debug!(address = bus.address(), error = %ended, "systemd watch ended, connecting again");
            }
        }
        if began.elapsed() >= STABLE {
            retry = RETRY_FIRST;
        }
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(retry) => {}
        }
        retry = (retry * 2).min(RETRY_MAX);
    }
}

/// One connection's watch: returns why it ended.
async fn watch_once(
    bus: &SystemdBus,
    events: &broadcast::Sender<ServiceEvent>,
    seen: &mut Seen,
) -> BusError {
    let conn = match bus.connect().await {
        Ok(c) => c,
        Err(e) => return e,
    };
    let setup = async {
        let rule = MatchRule::builder()
            .msg_type(MessageType::Signal)
            .sender("org.freedesktop.systemd1")?
            .interface("org.freedesktop.DBus.Properties")?
            .member("PropertiesChanged")?
            .path_namespace("/org/freedesktop/systemd1/unit")?
            .build();
        let stream = MessageStream::for_match_rule(rule, &conn, Some(SIGNAL_QUEUE)).await?;
        let reload = MatchRule::builder()
            .msg_type(MessageType::Signal)
            .sender("org.freedesktop.systemd1")?
            .interface(MANAGER_INTERFACE)?
            .member("Reloading")?
            .path(MANAGER_PATH)?
            .build();
        let reloads = MessageStream::for_match_rule(reload, &conn, Some(64)).await?;
        // After the matches are in place, so no change between them is lost.
        subscribe(&conn).await?;
        Ok::<_, zbus::Error>((stream, reloads))
    };
    let (mut stream, mut reloads) = match tokio::time::timeout(bus.deadline(), setup).await {
        Err(_) => return BusError::Timeout(bus.deadline()),
        Ok(Err(e)) => return super::bus::classify(e),
        Ok(Ok(s)) => s,
    };
    tracing::debug!(address = bus.address(), "watching systemd's services");
    // Read-backs run beside the stream, so a slow one never holds up the signals behind it.
    let mut reading = FuturesUnordered::new();
    loop {
        let message = tokio::select! {
            Some((label, generation, read)) = reading.next(), if !reading.is_empty() => {
                if let Some(event) = seen.read_back(label, generation, read) {
                    // No receiver is not an error: nobody listens yet.
                    let _ = events.send(event);
                }
                continue;
            }
            Some(Ok(reload)) = reloads.next() => {
                // A change during a daemon-reload can go unsignalled: once it is done, every
                // service told about is read back.
                if reload.body().deserialize::<bool>().is_ok_and(|starting| !starting) {
                    for (label, generation) in seen.read_all_back() {
                        reading.push(read_state(bus, label, generation));
                    }
                }
                continue;
            }
            message = stream.next() => message,
        };
        let message = match message {
            None => break,
            Some(Ok(m)) => m,
            Some(Err(e)) => return super::bus::classify(e),
        };
        let header = message.header();
        let Some(path) = header.path() else { continue };
        let Some(label) = service_label(path.as_str()) else {
            continue;
        };
        let Ok((interface, changed, _)) = message
            .body()
            .deserialize::<(String, Properties, Vec<String>)>()
        else {
            continue;
        };
        match seen.event(label, &interface, &changed) {
            Some(Signal::Told(event)) => {
                let _ = events.send(event);
            }
            Some(Signal::Down(label, generation)) => {
                reading.push(read_state(bus, label, generation))
            }
            None => {}
        }
    }
    BusError::Unreachable("the bus closed the connection".into())
}

type Properties = HashMap<String, zbus::zvariant::OwnedValue>;

/// A service reported down (`failed`, `inactive`) is read back before it is told: systemd 252
/// passes a unit through `failed` (or `inactive`) on every exit on its way to `auto-restart`,
/// in one step of its event loop, so a read answered after the signal sees where it settled.
async fn read_state(
    bus: &SystemdBus,
    label: ServiceLabel,
    generation: u64,
) -> (ServiceLabel, u64, Result<RunState, BusError>) {
    let read = bus
        .unit_states(&[format!("{label}.service")], Detail::Status)
        .await
        .map(|states| {
            states
                .first()
                .map_or(RunState::Unknown, UnitState::run_state)
        });
    (label, generation, read)
}

/// What one signal asks of the watch.
#[derive(Debug, PartialEq)]
enum Signal {
    /// An event to send.
    Told(ServiceEvent),
    /// A service signalled down: read it back first (the generation of the signal).
    Down(ServiceLabel, u64),
}

/// The label of a service unit's object path; other units (and names that are no label) are
/// none of the port's business.
fn service_label(path: &str) -> Option<ServiceLabel> {
    let name = unit_name_of_path(path)?;
    let label = name.strip_suffix(".service")?;
    ServiceLabel::new(label).ok()
}

/// What was last told about each service, so a signal that repeats a state tells nothing new.
#[derive(Debug, Default)]
struct Seen {
    states: HashMap<ServiceLabel, RunState>,
    /// The down state signalled for a service being read back.
    pending: HashMap<ServiceLabel, RunState>,
    /// State signals seen per service: a read-back that a later signal overtook is dropped.
    generations: HashMap<ServiceLabel, u64>,
    /// The monotonic time of the last main-process exit told, per service.
    exits: HashMap<ServiceLabel, u64>,
}

impl Seen {
    /// A state change, unless it is the state last told.
    fn tell(&mut self, label: ServiceLabel, state: RunState) -> Option<ServiceEvent> {
        if self.states.insert(label.clone(), state) == Some(state) {
            return None;
        }
        Some(ServiceEvent::StateChanged { label, state })
    }

    /// The event a read-back makes: none when a later state signal came meanwhile (it tells,
    /// or reads back, itself); the signalled state when the read failed (the poll corrects it).
    fn read_back(
        &mut self,
        label: ServiceLabel,
        generation: u64,
        read: Result<RunState, BusError>,
    ) -> Option<ServiceEvent> {
        if self.generations.get(&label) != Some(&generation) {
            return None;
        }
        let signalled = self.pending.remove(&label)?;
        let state = read.unwrap_or_else(|e| {
            tracing::debug!(error = %e, %label, "could not read a down service back");
            signalled
        });
        self.tell(label, state)
    }

    /// Every service told about, each to be read back (after a daemon-reload).
    fn read_all_back(&mut self) -> Vec<(ServiceLabel, u64)> {
        let told: Vec<(ServiceLabel, RunState)> =
            self.states.iter().map(|(l, s)| (l.clone(), *s)).collect();
        told.into_iter()
            .map(|(label, state)| {
                let generation = self.generations.entry(label.clone()).or_default();
                *generation += 1;
                let generation = *generation;
                self.pending.insert(label.clone(), state);
                (label, generation)
            })
            .collect()
    }

    /// What one `PropertiesChanged` asks, if anything.
    fn event(
        &mut self,
        label: ServiceLabel,
        interface: &str,
        changed: &Properties,
    ) -> Option<Signal> {
        match interface {
            UNIT_INTERFACE => {
                let active_state = text(changed, "ActiveState")?;
                let sub_state = text(changed, "SubState")?;
                let state = run_state(active_state, sub_state);
                let generation = self.generations.entry(label.clone()).or_default();
                *generation += 1;
                let generation = *generation;
                if matches!(state, RunState::Failed | RunState::Stopped) {
                    self.pending.insert(label.clone(), state);
                    return Some(Signal::Down(label, generation));
                }
                self.tell(label, state).map(Signal::Told)
            }
            SERVICE_INTERFACE => {
                let exited_at = number::<u64>(changed, "ExecMainExitTimestampMonotonic")?;
                let status = match number::<i32>(changed, "ExecMainCode")? {
                    1 => ExitStatus::Code(number::<i32>(changed, "ExecMainStatus")?),
                    2 | 3 => ExitStatus::Signal(number::<i32>(changed, "ExecMainStatus")?),
                    _ => return None,
                };
                if exited_at == 0 || self.exits.insert(label.clone(), exited_at) == Some(exited_at)
                {
                    return None;
                }
                Some(Signal::Told(ServiceEvent::Exited { label, status }))
            }
            _ => None,
        }
    }
}

/// The port's run state of an `ActiveState`/`SubState` pair, as [`UnitState::run_state`] reads it.
fn run_state(active_state: String, sub_state: String) -> RunState {
    UnitState {
        id: String::new(),
        load_state: String::new(),
        active_state,
        sub_state,
        main_pid: 0,
        n_restarts: None,
        exec_main_code: 0,
        exec_main_status: 0,
        result: String::new(),
        unit_file_state: String::new(),
        fragment_path: String::new(),
        need_daemon_reload: false,
    }
    .run_state()
}

#[cfg(test)]
mod tests {
    use super::*;
    use zbus::zvariant::{OwnedValue, Str, Value};

    fn props(pairs: &[(&str, Value<'_>)]) -> Properties {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), OwnedValue::try_from(v.clone()).unwrap()))
            .collect()
    }

    fn label(s: &str) -> ServiceLabel {
        ServiceLabel::new(s).unwrap()
    }

    #[test]
    fn only_services_with_a_label_are_watched() {
        assert_eq!(
            service_label("/org/freedesktop/systemd1/unit/web_2d1_2eservice"),
            Some(label("web-1"))
        );
        assert_eq!(
            service_label("/org/freedesktop/systemd1/unit/web_2d1_2etimer"),
            None
        );
        assert_eq!(service_label("/org/freedesktop/systemd1/job/12"), None);
    }

    #[test]
    fn a_state_is_told_once_and_an_exit_once_per_exit() {
        let mut seen = Seen::default();
        let failed = props(&[
            ("ActiveState", Value::Str(Str::from("failed"))),
            ("SubState", Value::Str(Str::from("failed"))),
        ]);
        // Down is read back before it is told; told once.
        assert_eq!(
            seen.event(label("a"), UNIT_INTERFACE, &failed),
            Some(Signal::Down(label("a"), 1))
        );
        assert_eq!(
            seen.read_back(label("a"), 1, Ok(RunState::Failed)),
            Some(ServiceEvent::StateChanged {
                label: label("a"),
                state: RunState::Failed
            })
        );
        assert_eq!(seen.tell(label("a"), RunState::Failed), None);
        // A read-back overtaken by a later signal is dropped: that signal tells.
        assert_eq!(
            seen.event(label("a"), UNIT_INTERFACE, &failed),
            Some(Signal::Down(label("a"), 2))
        );
        let restarting = props(&[
            ("ActiveState", Value::Str(Str::from("activating"))),
            ("SubState", Value::Str(Str::from("auto-restart"))),
        ]);
        let told = |e| Some(Signal::Told(e));
        assert_eq!(
            seen.event(label("a"), UNIT_INTERFACE, &restarting),
            told(ServiceEvent::StateChanged {
                label: label("a"),
                state: RunState::SupervisorRestarting
            })
        );
        assert_eq!(seen.event(label("a"), UNIT_INTERFACE, &restarting), None);
        assert_eq!(seen.read_back(label("a"), 2, Ok(RunState::Failed)), None);
        // Another property alone (a timestamp) is no state.
        let other = props(&[("ActiveEnterTimestamp", Value::U64(5))]);
        assert_eq!(seen.event(label("a"), UNIT_INTERFACE, &other), None);

        let killed = props(&[
            ("ExecMainExitTimestampMonotonic", Value::U64(10893093794)),
            ("ExecMainCode", Value::I32(2)),
            ("ExecMainStatus", Value::I32(9)),
        ]);
        assert_eq!(
            seen.event(label("a"), SERVICE_INTERFACE, &killed),
            told(ServiceEvent::Exited {
                label: label("a"),
                status: ExitStatus::Signal(9)
            })
        );
        // The same exit sent again with other changes (NRestarts, MainPID) is not a new one.
        assert_eq!(seen.event(label("a"), SERVICE_INTERFACE, &killed), None);
        let running = props(&[
            ("ExecMainExitTimestampMonotonic", Value::U64(0)),
            ("ExecMainCode", Value::I32(0)),
            ("ExecMainStatus", Value::I32(0)),
        ]);
        assert_eq!(seen.event(label("a"), SERVICE_INTERFACE, &running), None);
        let exit_3 = props(&[
            ("ExecMainExitTimestampMonotonic", Value::U64(10999999999)),
            ("ExecMainCode", Value::I32(1)),
            ("ExecMainStatus", Value::I32(3)),
        ]);
        assert_eq!(
            seen.event(label("a"), SERVICE_INTERFACE, &exit_3),
            told(ServiceEvent::Exited {
                label: label("a"),
                status: ExitStatus::Code(3)
            })
        );
    }
}
