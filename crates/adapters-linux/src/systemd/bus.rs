//! systemd's manager over D-Bus: one connection, kept and reused, a deadline on every call.
//! Reads unit properties (the same ones `systemctl show` gives the adapter) without spawning
//! anything; `systemctl` stays the way jobs are run and the fallback when the bus is not there.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::try_join_all;
use tokio::sync::{Mutex, Semaphore};
use zbus::zvariant::{OwnedObjectPath, OwnedValue};
use zbus::Connection;

use super::show::UnitState;

const DESTINATION: &str = "org.freedesktop.systemd1";
pub(crate) const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
pub(crate) const MANAGER_INTERFACE: &str = "org.freedesktop.systemd1.Manager";
pub(crate) const UNIT_INTERFACE: &str = "org.freedesktop.systemd1.Unit";
pub(crate) const SERVICE_INTERFACE: &str = "org.freedesktop.systemd1.Service";
pub(crate) const UNIT_PATH_PREFIX: &str = "/org/freedesktop/systemd1/unit/";
const PROPERTIES_INTERFACE: &str = "org.freedesktop.DBus.Properties";

/// Where the manager's bus is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusAddress {
    /// No bus: every query goes through `systemctl`.
    Off,
    /// A D-Bus address, e.g. `unix:path=/run/dbus/system_bus_socket`, or the system bus of a
    /// container seen from its host (`unix:path=/proc/<pid>/root/run/dbus/system_bus_socket`).
    Address(String),
}

impl BusAddress {
    /// The system bus at its standard place.
    pub fn system() -> Self {
        BusAddress::Address("unix:path=/run/dbus/system_bus_socket".into())
    }

    /// The user bus of `uid` at its standard place (`/run/user/<uid>/bus`), where a user
    /// manager is reached.
    pub fn user(uid: u32) -> Self {
        BusAddress::Address(format!("unix:path=/run/user/{uid}/bus"))
    }

    /// The address, unless [`BusAddress::Off`].
    pub fn as_address(&self) -> Option<&str> {
        match self {
            BusAddress::Off => None,
            BusAddress::Address(a) => Some(a),
        }
    }
}

/// Why a bus call gave no answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BusError {
    /// No connection could be made, or it broke: the caller falls back to `systemctl`.
    #[error("systemd's bus is unreachable: {0}")]
    Unreachable(String),
    /// The manager did not answer in time (frozen, overloaded): not a fact about any unit.
    #[error("systemd's bus did not answer within {0:?}")]
    Timeout(Duration),
    /// The manager answered with an error, or with something of the wrong shape.
    #[error("systemd's bus answered with an error: {0}")]
    Answer(String),
}

/// Calls in flight on one connection at most: the bus daemon refuses more pending replies
/// than its `max_replies_per_connection` (128 in dbus's system.conf) with `LimitsExceeded`.
const IN_FLIGHT: usize = 64;

/// How much of a unit's state a read asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Detail {
    /// What a [`process_manager::ServiceStatus`] holds: states, main pid, last exit, restarts,
    /// enablement.
    Status,
    /// And what `enable` decides on: `NeedDaemonReload`, `FragmentPath`, `Result`.
    Definition,
}

/// One kept connection to a manager's bus, made on first use and made again after it broke.
#[derive(Debug)]
pub(crate) struct SystemdBus {
    address: String,
    deadline: Duration,
    connection: Mutex<Option<Connection>>,
    in_flight: Semaphore,
}

impl SystemdBus {
    pub(crate) fn new(address: String, deadline: Duration) -> Arc<Self> {
        Arc::new(SystemdBus {
            address,
            deadline,
            connection: Mutex::new(None),
            in_flight: Semaphore::new(IN_FLIGHT),
        })
    }

    pub(crate) fn address(&self) -> &str {
        &self.address
    }

    pub(crate) fn deadline(&self) -> Duration {
        self.deadline
    }

    /// A new connection (not the kept one), within the deadline.
    pub(crate) async fn connect(&self) -> Result<Connection, BusError> {
        let build = async {
            zbus::connection::Builder::address(self.address.as_str())?
                .build()
                .await
        };
        match tokio::time::timeout(self.deadline, build).await {
            Err(_) => Err(BusError::Timeout(self.deadline)),
            Ok(Err(e)) => Err(BusError::Unreachable(e.to_string())),
            Ok(Ok(c)) => Ok(c),
        }
    }

    /// The kept connection, made if there is none.
    async fn connection(&self) -> Result<Connection, BusError> {
        let mut kept = self.connection.lock().await;
        if let Some(c) = kept.as_ref() {
            return Ok(c.clone());
        }
        let c = self.connect().await?;
        *kept = Some(c.clone());
        Ok(c)
    }

    /// Forgets the kept connection when it is still `broken`, so the next call makes a new one.
    async fn forget(&self, broken: &Connection) {
        let mut kept = self.connection.lock().await;
        if kept
            .as_ref()
            .is_some_and(|c| c.unique_name() == broken.unique_name())
        {
            *kept = None;
        }
    }

    /// The adapter's properties of each unit, in the order asked. A unit systemd does not
    /// know reads as `LoadState=not-found`, as with `systemctl show`.
    ///
    /// `GetAll` costs systemd about 0.5 ms a unit (the Service interface reads the unit's
    /// cgroup), so the states of all units come from one `ListUnitsByNames`, and each found
    /// unit then gets one `Get` per property it needs, all in flight at once: a running
    /// service's exit status is known to be none (systemd clears it when the process starts),
    /// a stopped one's main pid to be 0.
    pub(crate) async fn unit_states(
        &self,
        units: &[String],
        detail: Detail,
    ) -> Result<Vec<UnitState>, BusError> {
        self.call(|conn| async move {
            let listed = self.list_by_names(&conn, units).await?;
            try_join_all(units.iter().zip(listed).map(|(name, row)| {
                let conn = conn.clone();
                async move { self.unit_state(&conn, name, row, detail).await }
            }))
            .await
        })
        .await
    }

    /// (load, active, sub) state of each unit, in the order asked: one call, which loads a
    /// unit that is not loaded (as `systemctl show` does).
    async fn list_by_names(
        &self,
        conn: &Connection,
        units: &[String],
    ) -> Result<Vec<(String, String, String)>, BusError> {
        let reply = self
            .method(
                conn,
                MANAGER_PATH,
                MANAGER_INTERFACE,
                "ListUnitsByNames",
                &(units,),
            )
            .await?;
        let rows: Vec<ListedRow> = reply
            .body()
            .deserialize()
            .map_err(|e| BusError::Answer(format!("ListUnitsByNames: {e}")))?;
        let mut by_name: HashMap<String, (String, String, String)> =
            rows.into_iter().map(|r| (r.0, (r.2, r.3, r.4))).collect();
        Ok(units
            .iter()
            .map(|u| {
                by_name
                    .remove(u)
                    .unwrap_or_else(|| ("not-found".into(), "inactive".into(), "dead".into()))
            })
            .collect())
    }

    /// One unit's state from its listed states and the properties `detail` needs.
    async fn unit_state(
        &self,
        conn: &Connection,
        name: &str,
        (load_state, active_state, sub_state): (String, String, String),
        detail: Detail,
    ) -> Result<UnitState, BusError> {
        let mut state = UnitState {
            id: name.to_string(),
            load_state,
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
        };
        if state.is_not_found() {
            return Ok(state);
        }
        let service = name.ends_with(".service");
        let mut asks = vec![(UNIT_INTERFACE, "UnitFileState")];
        if detail == Detail::Definition {
            asks.extend([
                (UNIT_INTERFACE, "NeedDaemonReload"),
                (UNIT_INTERFACE, "FragmentPath"),
            ]);
            if service {
                asks.push((SERVICE_INTERFACE, "Result"));
            }
        }
        if service {
            asks.push((SERVICE_INTERFACE, "NRestarts"));
            let stopped = matches!(state.active_state.as_str(), "inactive" | "failed")
                || state.sub_state == "auto-restart";
            if !stopped {
                asks.push((SERVICE_INTERFACE, "MainPID"));
            }
            if state.sub_state != "running" {
                asks.extend([
                    (SERVICE_INTERFACE, "ExecMainCode"),
                    (SERVICE_INTERFACE, "ExecMainStatus"),
                ]);
            }
        }
        let path = unit_path(name);
        let values = try_join_all(
            asks.iter()
                .map(|(interface, property)| self.get(conn, &path, interface, property)),
        )
        .await?;
        let props: Properties = asks
            .iter()
            .map(|(_, p)| p.to_string())
            .zip(values)
            .collect();
        state.fill_from_bus(&props);
        Ok(state)
    }

    /// One property.
    async fn get(
        &self,
        conn: &Connection,
        path: &str,
        interface: &str,
        property: &str,
    ) -> Result<OwnedValue, BusError> {
        let reply = self
            .method(
                conn,
                path,
                PROPERTIES_INTERFACE,
                "Get",
                &(interface, property),
            )
            .await?;
        reply
            .body()
            .deserialize::<OwnedValue>()
            .map_err(|e| BusError::Answer(format!("{interface}.{property} of {path}: {e}")))
    }

    /// One method call to systemd, waiting for a place among the calls in flight.
    async fn method<B>(
        &self,
        conn: &Connection,
        path: &str,
        interface: &str,
        member: &str,
        body: &B,
    ) -> Result<zbus::Message, BusError>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
    {
        let _place = self
            .in_flight
            .acquire()
            .await
            .map_err(|e| BusError::Unreachable(e.to_string()))?;
        conn.call_method(Some(DESTINATION), path, Some(interface), member, body)
            .await
            .map_err(classify)
    }

    /// Runs `f` on the kept connection within the deadline (one deadline for all `f` asks: the
    /// calls are answered in turn by one manager). A connection that broke is made again, and
    /// `f` run again, once.
    async fn call<T, F, Fut>(&self, f: F) -> Result<T, BusError>
    where
        F: Fn(Connection) -> Fut,
        Fut: std::future::Future<Output = Result<T, BusError>>,
    {
        let deadline = self.deadline;
        let once = |conn| {
            let asked = f(conn);
            async move {
                match tokio::time::timeout(deadline, asked).await {
                    Err(_) => Err(BusError::Timeout(deadline)),
                    Ok(r) => r,
                }
            }
        };
        let conn = self.connection().await?;
        match once(conn.clone()).await {
            Err(BusError::Unreachable(detail)) => {
                tracing::debug!(%detail, "bus connection broke, connecting again");
                self.forget(&conn).await;
                once(self.connection().await?).await
            }
            other => other,
        }
    }
}

/// A unit's object path: systemd's `bus_label_escape` of its name (every byte that is not a
/// letter, or a digit after the first byte, becomes `_xx`). Asking for a path loads the unit.
pub(crate) fn unit_path(name: &str) -> String {
    let mut path = String::with_capacity(UNIT_PATH_PREFIX.len() + name.len() * 2);
    path.push_str(UNIT_PATH_PREFIX);
    if name.is_empty() {
        path.push('_');
    }
    for (i, b) in name.bytes().enumerate() {
        if b.is_ascii_alphabetic() || (i > 0 && b.is_ascii_digit()) {
            path.push(b as char);
        } else {
            path.push_str(&format!("_{b:02x}"));
        }
    }
    path
}

/// The unit name of an object path under [`UNIT_PATH_PREFIX`] (the reverse of [`unit_path`]).
pub(crate) fn unit_name_of_path(path: &str) -> Option<String> {
    let label = path.strip_prefix(UNIT_PATH_PREFIX)?;
    let bytes = label.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'_' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

type Properties = HashMap<String, OwnedValue>;

/// A zbus error by what the caller does about it: a dead connection is unreachable (fall back,
/// connect again); an error reply is the manager's answer.
pub(crate) fn classify(e: zbus::Error) -> BusError {
    match e {
        zbus::Error::InputOutput(io) if io.kind() == std::io::ErrorKind::TimedOut => {
            BusError::Timeout(Duration::ZERO)
        }
        zbus::Error::InputOutput(io) => BusError::Unreachable(io.to_string()),
        zbus::Error::MethodError(name, detail, _) => {
            BusError::Answer(format!("{name}: {}", detail.unwrap_or_default()))
        }
        other => BusError::Answer(other.to_string()),
    }
}

pub(crate) fn text(props: &Properties, key: &str) -> Option<String> {
    props
        .get(key)
        .and_then(|v| v.downcast_ref::<zbus::zvariant::Str<'_>>().ok())
        .map(|s| s.as_str().to_string())
}

pub(crate) fn number<T>(props: &Properties, key: &str) -> Option<T>
where
    T: TryFrom<OwnedValue>,
{
    props
        .get(key)
        .and_then(|v| v.try_clone().ok())
        .and_then(|v| T::try_from(v).ok())
}

impl UnitState {
    /// Sets the properties in `props` (by name, from either interface); others stay as they are.
    pub(crate) fn fill_from_bus(&mut self, props: &Properties) {
        if let Some(v) = text(props, "UnitFileState") {
            self.unit_file_state = v;
        }
        if let Some(v) = text(props, "FragmentPath") {
            self.fragment_path = v;
        }
        if let Some(v) = text(props, "Result") {
            self.result = v;
        }
        if let Some(v) = number::<bool>(props, "NeedDaemonReload") {
            self.need_daemon_reload = v;
        }
        if let Some(v) = number::<u32>(props, "MainPID") {
            self.main_pid = v;
        }
        if let Some(v) = number::<u32>(props, "NRestarts") {
            self.n_restarts = Some(u64::from(v));
        }
        if let Some(v) = number::<i32>(props, "ExecMainCode") {
            self.exec_main_code = v;
        }
        if let Some(v) = number::<i32>(props, "ExecMainStatus") {
            self.exec_main_status = v;
        }
    }
}

/// One row of `ListUnitsByPatterns` and `ListUnitsByNames`: name, description, load, active and sub state, followed
/// unit, object path, job id, job type, job path.
type ListedRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    OwnedObjectPath,
    u32,
    String,
    OwnedObjectPath,
);

impl SystemdBus {
    /// The loaded units whose name matches one of `patterns` (systemd's globs), as
    /// (name, load state): `systemctl list-units --all` over the bus.
    pub(crate) async fn list_units(
        &self,
        patterns: &[String],
    ) -> Result<Vec<(String, String)>, BusError> {
        self.call(|conn| async move {
            let reply = self
                .method(
                    &conn,
                    MANAGER_PATH,
                    MANAGER_INTERFACE,
                    "ListUnitsByPatterns",
                    &(Vec::<String>::new(), patterns),
                )
                .await?;
            let rows: Vec<ListedRow> = reply
                .body()
                .deserialize()
                .map_err(|e| BusError::Answer(format!("ListUnitsByPatterns: {e}")))?;
            Ok(rows.into_iter().map(|r| (r.0, r.2)).collect())
        })
        .await
    }
}

/// `Subscribe` on the manager: without a subscriber systemd sends no unit signals.
pub(crate) async fn subscribe(conn: &Connection) -> Result<(), zbus::Error> {
    conn.call_method(
        Some(DESTINATION),
        MANAGER_PATH,
        Some(MANAGER_INTERFACE),
        "Subscribe",
        &(),
    )
    .await
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_paths_escape_as_systemd_does() {
        assert_eq!(
            unit_path("conf-a.service"),
            "/org/freedesktop/systemd1/unit/conf_2da_2eservice"
        );
        assert_eq!(
            unit_path("2x_y@1.service"),
            "/org/freedesktop/systemd1/unit/_32x_5fy_401_2eservice"
        );
        assert_eq!(unit_path(""), "/org/freedesktop/systemd1/unit/_");
        for name in [
            "conf-a.service",
            "2x_y@1.service",
            "dbus.socket",
            "a\\x2db.timer",
        ] {
            assert_eq!(unit_name_of_path(&unit_path(name)).as_deref(), Some(name));
        }
        assert_eq!(unit_name_of_path("/org/freedesktop/systemd1"), None);
        assert_eq!(unit_name_of_path(&format!("{UNIT_PATH_PREFIX}a_2")), None);
    }
}
