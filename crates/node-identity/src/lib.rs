//! Node identity: who this node is and where its files live, resolved from the environment,
//! then the hostname, then platform defaults, with each value recording where it came from.
//!
//! Resolution order:
//! - `node_id`: `NODE_ID`, then the hostname lowercased with `.local`/`.localdomain` stripped.
//!   An empty or invalid `NODE_ID` is an error, never a silent fall back to the hostname.
//! - `home_dir`: `HOME`, then the platform's notion (`dirs::home_dir`).
//! - `repo_root`: `JOELCLAW_ROOT`, then `<home>/Code/joelhooks/joelclaw`.
//! - `vault_path`: `VAULT_PATH`, then `<home>/Vault`.
//! - `platform`, `arch`: the build target.
//!
//! Environment reads go through [`Environment`] so tests can fake them.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// The longest node id: one DNS label.
pub const MAX_NODE_ID_LEN: usize = 63;

/// Where identity values come from. [`SystemEnvironment`] is the real one.
pub trait Environment {
    /// An environment variable, `None` when unset or not valid Unicode.
    fn var(&self, key: &str) -> Option<String>;
    /// The machine's hostname.
    fn hostname(&self) -> Option<String>;
    /// The platform's idea of the home directory (password database on Unix).
    fn platform_home(&self) -> Option<PathBuf>;
}

/// The process environment and the OS.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemEnvironment;

impl Environment for SystemEnvironment {
    fn var(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }
    fn hostname(&self) -> Option<String> {
        hostname::get().ok().and_then(|h| h.into_string().ok())
    }
    fn platform_home(&self) -> Option<PathBuf> {
        dirs::home_dir()
    }
}

/// A fake environment from a map, for tests.
#[derive(Debug, Clone, Default)]
pub struct FakeEnvironment {
    /// Variables.
    pub vars: HashMap<String, String>,
    /// The hostname.
    pub hostname: Option<String>,
    /// The platform home.
    pub platform_home: Option<PathBuf>,
}

impl FakeEnvironment {
    /// Sets a variable.
    pub fn with_var(mut self, key: &str, value: &str) -> Self {
        self.vars.insert(key.into(), value.into());
        self
    }
}

impl Environment for FakeEnvironment {
    fn var(&self, key: &str) -> Option<String> {
        self.vars.get(key).cloned()
    }
    fn hostname(&self) -> Option<String> {
        self.hostname.clone()
    }
    fn platform_home(&self) -> Option<PathBuf> {
        self.platform_home.clone()
    }
}

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "kind", content = "detail", rename_all = "kebab-case")]
pub enum Source {
    /// An environment variable.
    Env(String),
    /// The hostname (normalized).
    Hostname,
    /// The platform's home directory lookup.
    PlatformHome,
    /// A default derived from another value (e.g. `<home>/Vault`).
    Default(String),
    /// The build target.
    BuildTarget,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Env(k) => write!(f, "env {k}"),
            Source::Hostname => f.write_str("hostname"),
            Source::PlatformHome => f.write_str("platform home directory"),
            Source::Default(d) => write!(f, "default ({d})"),
            Source::BuildTarget => f.write_str("build target"),
        }
    }
}

/// A value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Sourced<T> {
    /// The value.
    pub value: T,
    /// Where it came from.
    pub source: Source,
}

impl<T> Sourced<T> {
    fn new(value: T, source: Source) -> Self {
        Sourced { value, source }
    }
}

/// The OS family, for adapter choice and telemetry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// macOS (launchd, Colima).
    Macos,
    /// Linux (systemd, Docker).
    Linux,
    /// Anything else (embedded supervisor only).
    Other,
}

impl Platform {
    /// The platform this binary was built for.
    pub fn current() -> Self {
        match std::env::consts::OS {
            "macos" => Platform::Macos,
            "linux" => Platform::Linux,
            _ => Platform::Other,
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Platform::Macos => "macos",
            Platform::Linux => "linux",
            Platform::Other => "other",
        })
    }
}

/// Why identity could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// A node id (from `NODE_ID` or the hostname) breaks a rule.
    #[error("invalid node id {value:?} from {origin}: {reason}")]
    InvalidNodeId {
        /// The value.
        value: String,
        /// Where it came from.
        origin: Source,
        /// The rule it broke.
        reason: String,
    },
    /// Neither `NODE_ID` nor a hostname is available.
    #[error("no node id: NODE_ID is unset and the hostname could not be read")]
    NoNodeId,
    /// Neither `HOME` nor the platform knows a home directory.
    #[error("no home directory: HOME is unset and the platform has none for this user")]
    NoHome,
    /// A path variable is set but not absolute.
    #[error("{var} must be an absolute path, got {value:?}")]
    RelativePath {
        /// The variable.
        var: String,
        /// Its value.
        value: String,
    },
}

/// Who this node is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct NodeIdentity {
    /// The node's id (telemetry `node_id`, inventory matching).
    pub node_id: Sourced<String>,
    /// The home directory of the user the agent runs as.
    pub home_dir: Sourced<PathBuf>,
    /// The joelclaw checkout.
    pub repo_root: Sourced<PathBuf>,
    /// The vault.
    pub vault_path: Sourced<PathBuf>,
    /// The OS family.
    pub platform: Sourced<Platform>,
    /// The CPU architecture (`aarch64`, `x86_64`).
    pub arch: Sourced<String>,
}

/// Checks a node id: non-empty, at most [`MAX_NODE_ID_LEN`] bytes, no whitespace, `/` or control
/// characters.
pub fn validate_node_id(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("it is empty".into());
    }
    if value.len() > MAX_NODE_ID_LEN {
        return Err(format!(
            "it is {} bytes, the limit is {MAX_NODE_ID_LEN}",
            value.len()
        ));
    }
    if let Some(c) = value.chars().find(|c| c.is_whitespace()) {
        return Err(format!("it contains whitespace ({c:?})"));
    }
    if value.contains('/') {
        return Err("it contains '/'".into());
    }
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(format!("it contains a control character ({c:?})"));
    }
    Ok(())
}

/// Lowercases a hostname and strips `.local` / `.localdomain` (mDNS and Debian defaults).
pub fn normalize_hostname(host: &str) -> String {
    let lower = host.trim().to_ascii_lowercase();
    for suffix in [".localdomain", ".local"] {
        if let Some(stripped) = lower.strip_suffix(suffix) {
            return stripped.to_string();
        }
    }
    lower
}

fn path_var(env: &dyn Environment, var: &str) -> Result<Option<PathBuf>, IdentityError> {
    match env.var(var) {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(None),
        Some(v) if Path::new(&v).is_absolute() => Ok(Some(PathBuf::from(v))),
        Some(v) => Err(IdentityError::RelativePath {
            var: var.into(),
            value: v,
        }),
    }
}

impl NodeIdentity {
    /// Resolves identity from the real environment.
    pub fn detect() -> Result<Self, IdentityError> {
        Self::resolve(&SystemEnvironment)
    }

    /// Resolves identity from `env`.
    pub fn resolve(env: &dyn Environment) -> Result<Self, IdentityError> {
        let node_id = match env.var("NODE_ID") {
            Some(v) => {
                let source = Source::Env("NODE_ID".into());
                validate_node_id(&v).map_err(|reason| IdentityError::InvalidNodeId {
                    value: v.clone(),
                    origin: source.clone(),
                    reason,
                })?;
                Sourced::new(v, source)
            }
            None => {
                let host = env.hostname().ok_or(IdentityError::NoNodeId)?;
                let id = normalize_hostname(&host);
                validate_node_id(&id).map_err(|reason| IdentityError::InvalidNodeId {
                    value: id.clone(),
                    origin: Source::Hostname,
                    reason,
                })?;
                Sourced::new(id, Source::Hostname)
            }
        };
        let home_dir = match path_var(env, "HOME")? {
            Some(h) => Sourced::new(h, Source::Env("HOME".into())),
            None => Sourced::new(
                env.platform_home().ok_or(IdentityError::NoHome)?,
                Source::PlatformHome,
            ),
        };
        let repo_root = match path_var(env, "JOELCLAW_ROOT")? {
            Some(p) => Sourced::new(p, Source::Env("JOELCLAW_ROOT".into())),
            None => Sourced::new(
                home_dir.value.join("Code/joelhooks/joelclaw"),
                Source::Default("<home>/Code/joelhooks/joelclaw".into()),
            ),
        };
        let vault_path = match path_var(env, "VAULT_PATH")? {
            Some(p) => Sourced::new(p, Source::Env("VAULT_PATH".into())),
            None => Sourced::new(
                home_dir.value.join("Vault"),
                Source::Default("<home>/Vault".into()),
            ),
        };
        Ok(NodeIdentity {
            node_id,
            home_dir,
            repo_root,
            vault_path,
            platform: Sourced::new(Platform::current(), Source::BuildTarget),
            arch: Sourced::new(std::env::consts::ARCH.to_string(), Source::BuildTarget),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> FakeEnvironment {
        FakeEnvironment {
            vars: HashMap::new(),
            hostname: Some("Mac-Studio.local".into()),
            platform_home: Some("/home/from-passwd".into()),
        }
    }

    #[test]
    fn node_id_from_env_wins() {
        let id = NodeIdentity::resolve(&base().with_var("NODE_ID", "mac-studio-central")).unwrap();
        assert_eq!(id.node_id.value, "mac-studio-central");
        assert_eq!(id.node_id.source, Source::Env("NODE_ID".into()));
    }

    #[test]
    fn node_id_from_hostname_normalized() {
        let id = NodeIdentity::resolve(&base()).unwrap();
        assert_eq!(id.node_id.value, "mac-studio");
        assert_eq!(id.node_id.source, Source::Hostname);
        for (host, want) in [
            ("relay.localdomain", "relay"),
            ("GPU-Box", "gpu-box"),
            ("fleet-1.example.com", "fleet-1.example.com"),
            ("plain.local.example", "plain.local.example"),
        ] {
            let env = FakeEnvironment {
                hostname: Some(host.into()),
                ..base()
            };
            assert_eq!(NodeIdentity::resolve(&env).unwrap().node_id.value, want);
        }
    }

    #[test]
    fn no_node_id_at_all() {
        let env = FakeEnvironment {
            hostname: None,
            ..base()
        };
        assert_eq!(NodeIdentity::resolve(&env), Err(IdentityError::NoNodeId));
    }

    #[test]
    fn bad_node_id_is_an_error_not_a_fallback() {
        for (value, reason) in [
            ("", "empty"),
            ("mac studio", "whitespace"),
            ("a\tb", "whitespace"),
            ("a/b", "'/'"),
            ("a\u{7}b", "control"),
        ] {
            let err = NodeIdentity::resolve(&base().with_var("NODE_ID", value)).unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.contains("NODE_ID") && msg.contains(reason),
                "{value:?}: {msg}"
            );
        }
        let long = "a".repeat(64);
        let msg = NodeIdentity::resolve(&base().with_var("NODE_ID", &long))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("64 bytes") && msg.contains("63"), "{msg}");
        assert!(NodeIdentity::resolve(&base().with_var("NODE_ID", &"a".repeat(63))).is_ok());
    }

    #[test]
    fn bad_hostname_is_an_error() {
        let env = FakeEnvironment {
            hostname: Some("bad host".into()),
            ..base()
        };
        let msg = NodeIdentity::resolve(&env).unwrap_err().to_string();
        assert!(
            msg.contains("hostname") && msg.contains("whitespace"),
            "{msg}"
        );
    }

    #[test]
    fn home_from_env_then_platform() {
        let id = NodeIdentity::resolve(&base().with_var("HOME", "/srv/joelclaw")).unwrap();
        assert_eq!(id.home_dir.value, PathBuf::from("/srv/joelclaw"));
        assert_eq!(id.home_dir.source, Source::Env("HOME".into()));
        let id = NodeIdentity::resolve(&base()).unwrap();
        assert_eq!(id.home_dir.value, PathBuf::from("/home/from-passwd"));
        assert_eq!(id.home_dir.source, Source::PlatformHome);
        let env = FakeEnvironment {
            platform_home: None,
            ..base()
        };
        assert_eq!(NodeIdentity::resolve(&env), Err(IdentityError::NoHome));
        // An empty HOME counts as unset (launchd jobs can have HOME="").
        let id = NodeIdentity::resolve(&base().with_var("HOME", "")).unwrap();
        assert_eq!(id.home_dir.source, Source::PlatformHome);
    }

    #[test]
    fn repo_and_vault_from_env_then_defaults_under_home() {
        let env = base()
            .with_var("HOME", "/srv/j")
            .with_var("JOELCLAW_ROOT", "/opt/joelclaw")
            .with_var("VAULT_PATH", "/data/vault");
        let id = NodeIdentity::resolve(&env).unwrap();
        assert_eq!(id.repo_root.value, PathBuf::from("/opt/joelclaw"));
        assert_eq!(id.repo_root.source, Source::Env("JOELCLAW_ROOT".into()));
        assert_eq!(id.vault_path.value, PathBuf::from("/data/vault"));
        assert_eq!(id.vault_path.source, Source::Env("VAULT_PATH".into()));

        let id = NodeIdentity::resolve(&base().with_var("HOME", "/srv/j")).unwrap();
        assert_eq!(
            id.repo_root.value,
            PathBuf::from("/srv/j/Code/joelhooks/joelclaw")
        );
        assert!(matches!(id.repo_root.source, Source::Default(_)));
        assert_eq!(id.vault_path.value, PathBuf::from("/srv/j/Vault"));
        assert!(matches!(id.vault_path.source, Source::Default(_)));
    }

    #[test]
    fn relative_path_vars_are_refused() {
        let err = NodeIdentity::resolve(&base().with_var("VAULT_PATH", "Vault")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "VAULT_PATH must be an absolute path, got \"Vault\""
        );
    }

    #[test]
    fn platform_and_arch_from_the_build() {
        let id = NodeIdentity::resolve(&base()).unwrap();
        assert_eq!(id.platform.value, Platform::current());
        assert_eq!(id.arch.value, std::env::consts::ARCH);
        assert_eq!(id.arch.source, Source::BuildTarget);
        let json = serde_json::to_value(&id).unwrap();
        assert_eq!(json["node_id"]["source"]["kind"], "hostname");
    }

    #[test]
    fn detect_works_on_this_machine() {
        // The real environment resolves (CI machines have a hostname and HOME).
        let id = NodeIdentity::detect().unwrap();
        assert!(validate_node_id(&id.node_id.value).is_ok());
    }
}
