//! The `[fleet]` and `[telemetry]` sections: where this node publishes itself. Checked here for
//! what the file alone can tell (the address's scheme, the durations, the path is absolute);
//! connecting, and reading the password file, is the publisher's job at start.

use toml::Spanned;

use super::lower::Parser;
use super::raw::{RawFleet, RawTelemetry};
use super::{InventoryError, InventoryErrorKind};
use crate::model::{FleetSpec, TelemetrySpec};

impl Parser<'_> {
    pub(super) fn fleet(&self, raw: &Spanned<RawFleet>) -> Result<FleetSpec, InventoryError> {
        let fleet = raw.get_ref();
        let redis = fleet.redis.get_ref();
        if !["redis://", "rediss://", "redis+unix://", "unix://"]
            .iter()
            .any(|scheme| redis.starts_with(scheme))
        {
            return Err(self.error_at(
                fleet.redis.span().start,
                "fleet.redis",
                InventoryErrorKind::Invalid,
                "fleet.redis must be a Redis address: redis://host:port, rediss://host:port or redis+unix:///path",
            ));
        }
        if redis.contains('@') {
            return Err(self.error_at(
                fleet.redis.span().start,
                "fleet.redis",
                InventoryErrorKind::Invalid,
                "fleet.redis holds a password: put it in fleet.password_file (readable by the agent only) so it stays out of files and listings",
            ));
        }
        if let Some(path) = &fleet.password_file {
            if !path.get_ref().is_absolute() {
                return Err(self.error_at(
                    path.span().start,
                    "fleet.password_file",
                    InventoryErrorKind::Invalid,
                    "fleet.password_file must be an absolute path",
                ));
            }
        }
        if let Some(prefix) = &fleet.prefix {
            let p = prefix.get_ref();
            if p.is_empty() || p.contains(|c: char| c.is_whitespace() || c == ':') {
                return Err(self.error_at(
                    prefix.span().start,
                    "fleet.prefix",
                    InventoryErrorKind::Invalid,
                    "fleet.prefix must be a non-empty word without spaces or ':'",
                ));
            }
        }
        let heartbeat = match &fleet.heartbeat {
            None => None,
            Some(_) => Some(self.positive_duration(
                &fleet.heartbeat,
                "fleet.heartbeat",
                std::time::Duration::from_secs(5),
            )?),
        };
        Ok(FleetSpec {
            redis: redis.clone(),
            username: fleet.username.as_ref().map(|u| u.get_ref().clone()),
            password_file: fleet.password_file.as_ref().map(|p| p.get_ref().clone()),
            prefix: fleet.prefix.as_ref().map(|p| p.get_ref().clone()),
            heartbeat,
        })
    }

    pub(super) fn telemetry(
        &self,
        raw: &Spanned<RawTelemetry>,
    ) -> Result<TelemetrySpec, InventoryError> {
        let telemetry = raw.get_ref();
        let otlp = telemetry.otlp.get_ref();
        if !otlp.starts_with("http://") {
            return Err(self.error_at(
                telemetry.otlp.span().start,
                "telemetry.otlp",
                InventoryErrorKind::Invalid,
                "telemetry.otlp must be an OTLP/HTTP address: http://host:4318 (a local collector; https is not built in)",
            ));
        }
        let export_every = match &telemetry.export_every {
            None => None,
            Some(_) => Some(self.positive_duration(
                &telemetry.export_every,
                "telemetry.export_every",
                std::time::Duration::from_secs(10),
            )?),
        };
        Ok(TelemetrySpec {
            otlp: otlp.clone(),
            export_every,
        })
    }
}
