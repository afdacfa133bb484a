//! Where Central's Redis is, how this node signs in, and the publishing limits.

use std::path::{Path, PathBuf};
use std::time::Duration;

use redis::IntoConnectionInfo;

/// What went wrong talking to, or configuring, Central's Redis.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The configuration is wrong (names the key and what is wrong with it).
    #[error("fleet: {0}")]
    Config(String),
    /// Redis did not answer within the deadline. Not the same as refusing: it may be busy.
    #[error("fleet: redis at {url} did not answer within {after:?} ({during})")]
    Timeout {
        /// The Redis address (without its password).
        url: String,
        /// The deadline that passed.
        after: Duration,
        /// What was being done.
        during: &'static str,
    },
    /// Redis answered with an error, or the connection failed.
    #[error("fleet: redis at {url}: {during}: {source}")]
    Redis {
        /// The Redis address (without its password).
        url: String,
        /// What was being done.
        during: &'static str,
        /// Redis's own error.
        #[source]
        source: redis::RedisError,
    },
    /// The TLS handshake was refused (by this node: the server's certificate; or by the server:
    /// this node's certificate). Not retried any differently, but said plainly.
    #[error("fleet: redis at {url}: {during}: TLS: {source}; {hint}")]
    Tls {
        /// The Redis address (without its password).
        url: String,
        /// What was being done.
        during: &'static str,
        /// Redis's own error, carrying rustls's.
        #[source]
        source: redis::RedisError,
        /// What to check.
        hint: &'static str,
    },
    /// A stored record could not be read.
    #[error("fleet: {key}: unreadable record: {detail}")]
    Record {
        /// The Redis key (and field) holding it.
        key: String,
        /// What was wrong.
        detail: String,
    },
}

/// How this node publishes to Central's Redis (`[fleet]` in the inventory).
#[derive(Debug, Clone, PartialEq)]
pub struct FleetConfig {
    /// `redis://host:port/db`, `rediss://…` (TLS) or `redis+unix:///path/to/socket`. A password in
    /// the address works but lands in logs and process listings: prefer `password_file`.
    pub url: String,
    /// The ACL user, when Redis has one per node (`AUTH user password`).
    pub username: Option<String>,
    /// A file holding the password (trailing newline ignored). Must not be readable by group or
    /// others: it is the node's secret.
    pub password_file: Option<PathBuf>,
    /// `rediss://` only: a PEM file of the CA(s) the server's certificate must chain to (a private
    /// CA, as Central's would be). Unset: the system's roots.
    pub ca_file: Option<PathBuf>,
    /// `rediss://` only: this node's client certificate (PEM), for a Redis that asks for one
    /// (`tls-auth-clients yes`). Goes with `key_file`.
    pub cert_file: Option<PathBuf>,
    /// `rediss://` only: the client certificate's private key (PEM). Like `password_file`, must
    /// not be readable by group or others.
    pub key_file: Option<PathBuf>,
    /// The key prefix (default `joelclaw`).
    pub prefix: String,
    /// How often the heartbeat is written.
    pub heartbeat_every: Duration,
    /// How long a heartbeat counts: a node silent for longer is stale. Default: 3 heartbeats.
    pub heartbeat_ttl: Duration,
    /// The stream's approximate cap (`XADD … MAXLEN ~ N`).
    pub stream_maxlen: usize,
    /// Events and summaries waiting for Redis before new ones are dropped (and counted).
    pub queue: usize,
    /// The deadline of every Redis call, connecting included.
    pub call_timeout: Duration,
}

impl FleetConfig {
    /// The defaults for `url`: heartbeat every 5 s, stale after 15 s, a stream of ~10,000 events,
    /// a queue of 1,024, 2 s per call.
    pub fn new(url: impl Into<String>) -> Self {
        FleetConfig {
            url: url.into(),
            username: None,
            password_file: None,
            ca_file: None,
            cert_file: None,
            key_file: None,
            prefix: "joelclaw".into(),
            heartbeat_every: Duration::from_secs(5),
            heartbeat_ttl: Duration::from_secs(15),
            stream_maxlen: 10_000,
            queue: 1024,
            call_timeout: Duration::from_secs(2),
        }
    }

    /// The configuration an inventory's `[fleet]` section asks for (defaults for what it leaves
    /// out; the heartbeat TTL is three heartbeats).
    pub fn from_spec(spec: &central_core::model::FleetSpec) -> Self {
        let mut config = FleetConfig::new(spec.redis.clone());
        config.username = spec.username.clone();
        config.password_file = spec.password_file.clone();
        config.ca_file = spec.ca_file.clone();
        config.cert_file = spec.cert_file.clone();
        config.key_file = spec.key_file.clone();
        if let Some(prefix) = &spec.prefix {
            config.prefix = prefix.clone();
        }
        if let Some(queue) = spec.queue {
            config.queue = queue;
        }
        if let Some(maxlen) = spec.stream_maxlen {
            config.stream_maxlen = maxlen;
        }
        if let Some(every) = spec.heartbeat {
            config.heartbeat_every = every;
            config.heartbeat_ttl = every * 3;
        }
        config
    }

    /// The address without any password in it, for messages.
    pub fn redacted_url(&self) -> String {
        match (self.url.find("://"), self.url.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                format!("{}://***@{}", &self.url[..scheme], &self.url[at + 1..])
            }
            _ => self.url.clone(),
        }
    }

    /// Checks everything before anything connects: the address parses, the limits make sense,
    /// the password file exists and is private, the TLS files (`rediss://`) hold what they should
    /// and the client key is private.
    pub fn validate(&self) -> Result<(), FleetError> {
        self.client().map(|_| ())
    }

    /// A Redis client for this configuration (reads the password file and the TLS files).
    pub(crate) fn client(&self) -> Result<redis::Client, FleetError> {
        let bad = |what: String| FleetError::Config(what);
        if self.heartbeat_every.is_zero() || self.call_timeout.is_zero() {
            return Err(bad(
                "fleet.heartbeat_every and the call timeout must be above zero".into(),
            ));
        }
        if self.heartbeat_ttl <= self.heartbeat_every {
            return Err(bad(format!(
                "fleet.heartbeat_ttl ({:?}) must be longer than fleet.heartbeat_every ({:?}), or every node looks stale between heartbeats",
                self.heartbeat_ttl, self.heartbeat_every
            )));
        }
        if self.queue == 0 || self.stream_maxlen == 0 {
            return Err(bad(
                "fleet.queue and fleet.stream_maxlen must be above zero".into(),
            ));
        }
        if self.prefix.is_empty() || self.prefix.contains(char::is_whitespace) {
            return Err(bad(format!(
                "fleet.prefix {:?}: must be non-empty, without spaces",
                self.prefix
            )));
        }
        let mut info = self.url.as_str().into_connection_info().map_err(|e| {
            bad(format!(
                "fleet.redis {:?}: not a Redis address ({e}); use redis://host:port, rediss://host:port or redis+unix:///path",
                self.redacted_url()
            ))
        })?;
        let mut settings = info.redis_settings().clone();
        if let Some(user) = &self.username {
            settings = settings.set_username(user);
        }
        if let Some(path) = &self.password_file {
            settings = settings.set_password(read_secret(path)?);
        }
        info = info.set_redis_settings(settings);
        let tls = match info.addr() {
            redis::ConnectionAddr::TcpTls { insecure: true, .. } => {
                return Err(bad(format!(
                    "fleet.redis {:?}: #insecure turns off the server's certificate check; name its CA in fleet.ca_file instead",
                    self.redacted_url()
                )))
            }
            redis::ConnectionAddr::TcpTls { .. } => true,
            _ => false,
        };
        if !tls {
            let set = [
                ("fleet.ca_file", &self.ca_file),
                ("fleet.cert_file", &self.cert_file),
                ("fleet.key_file", &self.key_file),
            ];
            if let Some((key, _)) = set.iter().find(|(_, v)| v.is_some()) {
                return Err(bad(format!(
                    "{key} applies to TLS only, and fleet.redis {:?} is not a rediss:// address",
                    self.redacted_url()
                )));
            }
        }
        let unusable =
            |e: redis::RedisError| bad(format!("fleet.redis {:?}: {e}", self.redacted_url()));
        if !tls {
            return redis::Client::open(info).map_err(unusable);
        }
        crate::tls::install_crypto_provider();
        match crate::tls::certificates(self)? {
            Some(certificates) => {
                redis::Client::build_with_tls(info, certificates).map_err(unusable)
            }
            None => redis::Client::open(info).map_err(unusable),
        }
    }
}

/// Reads a secret file (`key` names the setting, `what` the secret), refusing one that group or
/// others can read.
pub(crate) fn read_private(key: &str, path: &Path, what: &str) -> Result<String, FleetError> {
    let bad = |detail: String| FleetError::Config(format!("{key} {}: {detail}", path.display()));
    let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(bad(format!(
                "mode {mode:o} lets group or others read {what}; chmod 600 it (owner: the service account)"
            )));
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let secret = text.trim_end_matches(['\n', '\r']);
    if secret.is_empty() {
        return Err(bad("is empty".into()));
    }
    Ok(secret.to_string())
}

/// Reads the password file.
fn read_secret(path: &Path) -> Result<String, FleetError> {
    read_private("fleet.password_file", path, "the password")
}

/// Runs one Redis call under the configured deadline, naming what it was doing on failure.
pub(crate) async fn call<T>(
    config: &FleetConfig,
    during: &'static str,
    fut: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, FleetError> {
    match tokio::time::timeout(config.call_timeout, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(source)) if source.is_timeout() => Err(FleetError::Timeout {
            url: config.redacted_url(),
            after: config.call_timeout,
            during,
        }),
        Ok(Err(source)) => match tls_hint(&source) {
            Some(hint) => Err(FleetError::Tls {
                url: config.redacted_url(),
                during,
                source,
                hint,
            }),
            None => Err(FleetError::Redis {
                url: config.redacted_url(),
                during,
                source,
            }),
        },
        Err(_) => Err(FleetError::Timeout {
            url: config.redacted_url(),
            after: config.call_timeout,
            during,
        }),
    }
}

/// What to check when `error` is a refused TLS handshake. rustls's error reaches us only as the
/// text of an I/O error (redis keeps it behind an `Arc<dyn Error>`), so its wording is matched.
fn tls_hint(error: &redis::RedisError) -> Option<&'static str> {
    let text = error.to_string();
    if text.contains("invalid peer certificate") {
        Some("the server's certificate must chain to fleet.ca_file's CA (or the system's roots without it) and name the host of fleet.redis")
    } else if text.contains("CertificateRequired") || text.contains("peer sent no certificates") {
        Some("this Redis asks for a client certificate: set fleet.cert_file and fleet.key_file")
    } else if text.contains("received fatal alert") {
        Some("the server refused this node's TLS handshake (its client certificate, or the TLS versions)")
    } else {
        None
    }
}

/// Connects, under the deadline.
pub(crate) async fn connect(
    config: &FleetConfig,
    client: &redis::Client,
) -> Result<redis::aio::MultiplexedConnection, FleetError> {
    // No response timeout of the client's own: every command has its deadline from `call`,
    // and a blocking XREAD's is its wait plus the call's; the client's would cut that wait
    // short and report a quiet stream as Redis not answering.
    let settings = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(config.call_timeout))
        .set_response_timeout(None);
    call(
        config,
        "connect",
        client.get_multiplexed_async_connection_with_config(&settings),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_settings_are_named() {
        let mut c = FleetConfig::new("redis://127.0.0.1:6379");
        assert!(c.validate().is_ok());
        c.heartbeat_ttl = c.heartbeat_every;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("heartbeat_ttl"));
        let c = FleetConfig::new("http://example");
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("fleet.redis") && e.contains("not a Redis address"),
            "{e}"
        );
    }

    #[test]
    fn tls_addresses_use_the_system_roots_unless_a_ca_is_named() {
        assert!(FleetConfig::new("rediss://central:6380").validate().is_ok());
        let mut c = FleetConfig::new("rediss://central:6380");
        c.ca_file = Some("/nonexistent/central-ca.pem".into());
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("fleet.ca_file") && e.contains("/nonexistent/central-ca.pem"),
            "{e}"
        );
    }

    #[test]
    fn tls_files_on_a_plain_address_are_refused() {
        let mut c = FleetConfig::new("redis://central:6379");
        c.ca_file = Some("/etc/joelclaw/central-ca.pem".into());
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("fleet.ca_file") && e.contains("rediss://"),
            "{e}"
        );
    }

    #[test]
    fn tls_checks_are_never_turned_off() {
        let e = FleetConfig::new("rediss://central:6380/#insecure")
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("fleet.redis") && e.contains("insecure"), "{e}");
    }

    #[test]
    fn a_ca_file_without_certificates_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let mut c = FleetConfig::new("rediss://central:6380");
        c.ca_file = Some(path);
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("fleet.ca_file") && e.contains("ca.pem") && e.contains("no PEM certificate"),
            "{e}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_client_key_others_can_read_is_refused_and_a_cert_needs_its_key() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["node-a".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let cert_path = dir.path().join("node.crt");
        let key_path = dir.path().join("node.key");
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o640)).unwrap();

        let mut c = FleetConfig::new("rediss://central:6380");
        c.cert_file = Some(cert_path.clone());
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("fleet.key_file"), "{e}");

        c.key_file = Some(key_path.clone());
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("fleet.key_file") && e.contains("node.key") && e.contains("640"),
            "{e}"
        );
        assert!(!e.contains("PRIVATE KEY"), "{e}");

        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
        c.validate().unwrap();

        // Another key than the certificate's: named at start, not at the first handshake.
        let other = rcgen::KeyPair::generate().unwrap();
        std::fs::write(&key_path, other.serialize_pem()).unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("fleet.cert_file") && e.contains("fleet.key_file"),
            "{e}"
        );
    }

    #[test]
    fn passwords_never_reach_messages() {
        let c = FleetConfig::new("redis://node-a:s3cret@central:6379/0");
        assert_eq!(c.redacted_url(), "redis://***@central:6379/0");
    }

    #[cfg(unix)]
    #[test]
    fn a_password_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("redis.pass");
        std::fs::write(&path, "s3cret\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut c = FleetConfig::new("redis://127.0.0.1:6379");
        c.password_file = Some(path.clone());
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("redis.pass") && e.contains("644"), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(c.validate().is_ok());
    }
}
