//! The `[fleet]` and `[telemetry]` sections: where this node publishes itself. Checked here for
//! what the file alone can tell (the address's scheme, the durations, the paths are absolute,
//! TLS files only with a `rediss://` address, a client certificate with its key); connecting,
//! and reading the password and TLS files, is the publisher's job at start.

use toml::Spanned;

use super::lower::Parser;
use super::raw::{RawApi, RawFleet, RawTelemetry};
use super::{InventoryError, InventoryErrorKind};
use crate::model::{ApiSpec, FleetSpec, TelemetrySpec};

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
        let tls_files = [
            ("fleet.ca_file", &fleet.ca_file),
            ("fleet.cert_file", &fleet.cert_file),
            ("fleet.key_file", &fleet.key_file),
        ];
        for (key, path) in [("fleet.password_file", &fleet.password_file)]
            .into_iter()
            .chain(tls_files)
        {
            let Some(path) = path else { continue };
            if !path.get_ref().is_absolute() {
                return Err(self.error_at(
                    path.span().start,
                    key,
                    InventoryErrorKind::Invalid,
                    format!("{key} must be an absolute path"),
                ));
            }
            if key != "fleet.password_file" && !redis.starts_with("rediss://") {
                return Err(self.error_at(
                    path.span().start,
                    key,
                    InventoryErrorKind::Invalid,
                    format!(
                        "{key} is for TLS: fleet.redis must then be a rediss://host:port address"
                    ),
                ));
            }
        }
        match (&fleet.cert_file, &fleet.key_file) {
            (Some(only), None) | (None, Some(only)) => {
                return Err(self.error_at(
                    only.span().start,
                    if fleet.cert_file.is_some() {
                        "fleet.key_file"
                    } else {
                        "fleet.cert_file"
                    },
                    InventoryErrorKind::Invalid,
                    "fleet.cert_file and fleet.key_file go together: a client certificate and its key, for a Redis that asks for one",
                ));
            }
            _ => {}
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
        let at_least_one = |value: &Option<Spanned<usize>>, key: &str| match value {
            Some(n) if *n.get_ref() == 0 => Err(self.error_at(
                n.span().start,
                key,
                InventoryErrorKind::Invalid,
                format!("{key} must be at least 1"),
            )),
            other => Ok(other.as_ref().map(|n| *n.get_ref())),
        };
        let queue = at_least_one(&fleet.queue, "fleet.queue")?;
        let stream_maxlen = at_least_one(&fleet.stream_maxlen, "fleet.stream_maxlen")?;
        Ok(FleetSpec {
            queue,
            stream_maxlen,
            redis: redis.clone(),
            username: fleet.username.as_ref().map(|u| u.get_ref().clone()),
            password_file: fleet.password_file.as_ref().map(|p| p.get_ref().clone()),
            ca_file: fleet.ca_file.as_ref().map(|p| p.get_ref().clone()),
            cert_file: fleet.cert_file.as_ref().map(|p| p.get_ref().clone()),
            key_file: fleet.key_file.as_ref().map(|p| p.get_ref().clone()),
            prefix: fleet.prefix.as_ref().map(|p| p.get_ref().clone()),
            heartbeat,
        })
    }

    pub(super) fn api(&self, raw: &Spanned<RawApi>) -> Result<ApiSpec, InventoryError> {
        let Some(listen) = &raw.get_ref().health_listen else {
            return Ok(ApiSpec::default());
        };
        match listen.get_ref().parse::<std::net::SocketAddr>() {
            Ok(addr) if addr.ip().is_loopback() => Ok(ApiSpec {
                health_listen: Some(addr),
            }),
            Ok(_) => Err(self.error_at(
                listen.span().start,
                "api.health_listen",
                InventoryErrorKind::Invalid,
                "api.health_listen must be a loopback address (127.0.0.1:PORT or [::1]:PORT): it is unauthenticated",
            )),
            Err(e) => Err(self.error_at(
                listen.span().start,
                "api.health_listen",
                InventoryErrorKind::Invalid,
                format!("api.health_listen: not an address and port ({e}); e.g. 127.0.0.1:9999"),
            )),
        }
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

#[cfg(test)]
mod tests {
    use crate::Inventory;

    #[test]
    fn the_health_listener_is_loopback_only() {
        let ok =
            Inventory::parse("inv.toml", "[api]\nhealth_listen = \"127.0.0.1:9999\"\n").unwrap();
        assert_eq!(
            ok.api.health_listen,
            Some("127.0.0.1:9999".parse().unwrap())
        );
        for (text, says) in [
            ("[api]\nhealth_listen = \"0.0.0.0:9999\"\n", "loopback"),
            ("[api]\nhealth_listen = \"localhost\"\n", "not an address"),
        ] {
            let e = Inventory::parse("inv.toml", text).unwrap_err().to_string();
            assert!(e.contains("api.health_listen") && e.contains(says), "{e}");
            assert!(e.starts_with("inv.toml:2:"), "{e}");
        }
        assert_eq!(
            Inventory::parse("inv.toml", "").unwrap().api.health_listen,
            None
        );
    }

    #[test]
    fn tls_files_are_read_and_checked() {
        let text = "[fleet]\nredis = \"rediss://central:6380\"\nca_file = \"/etc/joelclaw/central-ca.pem\"\ncert_file = \"/etc/joelclaw/node.crt\"\nkey_file = \"/etc/joelclaw/node.key\"\n";
        let fleet = Inventory::parse("inv.toml", text).unwrap().fleet.unwrap();
        assert_eq!(
            fleet.ca_file.as_deref(),
            Some(std::path::Path::new("/etc/joelclaw/central-ca.pem"))
        );
        assert_eq!(
            fleet.cert_file.as_deref(),
            Some(std::path::Path::new("/etc/joelclaw/node.crt"))
        );
        assert_eq!(
            fleet.key_file.as_deref(),
            Some(std::path::Path::new("/etc/joelclaw/node.key"))
        );

        for (text, key, line) in [
            (
                "[fleet]\nredis = \"rediss://central\"\nca_file = \"ca.pem\"\n",
                "fleet.ca_file",
                3,
            ),
            (
                "[fleet]\nredis = \"redis://central\"\nca_file = \"/etc/ca.pem\"\n",
                "fleet.ca_file",
                3,
            ),
            (
                "[fleet]\nredis = \"rediss://central\"\ncert_file = \"/etc/node.crt\"\n",
                "fleet.key_file",
                3,
            ),
            (
                "[fleet]\nredis = \"rediss://central\"\n\nkey_file = \"/etc/node.key\"\n",
                "fleet.cert_file",
                4,
            ),
        ] {
            let err = Inventory::parse("inv.toml", text).unwrap_err();
            assert_eq!((err.key.as_str(), err.line), (key, line), "{err}");
        }
    }
}
