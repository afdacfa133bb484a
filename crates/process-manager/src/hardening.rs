//! [`Hardening`]: how tightly a manager sandboxes a service, as one switch and a set of named
//! [`Relax`] keys, each giving back one protection the service cannot live without.
//!
//! In a config file it is either a switch or a table:
//!
//! ```toml
//! hardening = false                              # no sandbox at all
//! hardening = { relax = ["wx-memory", "proc"] }  # the sandbox, minus two protections
//! ```

use std::collections::BTreeSet;
use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One protection a service may ask back. The systemd directives each key drops are listed per
/// variant; launchd has no equivalent for most and ignores them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Relax {
    /// Write outside its own folders: `ProtectSystem=full` instead of `strict`, and no
    /// `ReadWritePaths=` for its working, log and `write_paths` folders beyond those listed.
    WritePaths,
    /// See and use home folders: no `ProtectHome=yes`.
    Home,
    /// Share the host's `/tmp`: no `PrivateTmp=yes`.
    Tmp,
    /// Use devices: no `PrivateDevices=yes`, `DevicePolicy=closed`.
    Devices,
    /// Touch kernel settings: no `ProtectKernelTunables/Modules/Logs=`, `ProtectControlGroups=`,
    /// `ProtectClock=`, `ProtectHostname=`.
    Kernel,
    /// See other processes and all of `/proc` (e.g. `/proc/cpuinfo`): no
    /// `ProtectProc=invisible`, `ProcSubset=pid`.
    Proc,
    /// Open sockets other than IPv4, IPv6 and Unix (netlink, packet): no
    /// `RestrictAddressFamilies=`.
    NetworkFamilies,
    /// Create namespaces or mounts (sandboxing programs, container tools): no
    /// `RestrictNamespaces=yes`, `PrivateMounts=yes`.
    Namespaces,
    /// Writable and executable memory (JIT runtimes: V8/Node, Bun, the JVM, LuaJIT): no
    /// `MemoryDenyWriteExecute=yes`.
    WxMemory,
    /// System calls beyond a service's usual set: no `SystemCallFilter=@system-service`,
    /// `SystemCallArchitectures=native`, `LockPersonality=yes`.
    Syscalls,
    /// Real-time scheduling: no `RestrictRealtime=yes`.
    Realtime,
    /// Gain privileges through setuid programs: no `NoNewPrivileges=yes`,
    /// `RestrictSUIDSGID=yes`. systemd still implies `NoNewPrivileges` for a non-root service
    /// while any seccomp-based protection stays (`syscalls`, `network-families`, `namespaces`,
    /// `wx-memory`, `realtime`, `kernel`, `devices`), so relax those too.
    Privileges,
    /// Keep Linux capabilities: no empty `CapabilityBoundingSet=` and `AmbientCapabilities=`.
    Capabilities,
    /// Run in the host's user namespace (files of other accounts keep their owners, setgroups
    /// works): no `PrivateUsers=yes`.
    Users,
    /// Create files others can read: no `UMask=0077`.
    Umask,
    /// Keep System V IPC objects and kernel keys across runs: no `RemoveIPC=yes`,
    /// `KeyringMode=private`.
    Ipc,
}

impl Relax {
    /// Every key, in order.
    pub const ALL: [Relax; 16] = [
        Relax::WritePaths,
        Relax::Home,
        Relax::Tmp,
        Relax::Devices,
        Relax::Kernel,
        Relax::Proc,
        Relax::NetworkFamilies,
        Relax::Namespaces,
        Relax::WxMemory,
        Relax::Syscalls,
        Relax::Realtime,
        Relax::Privileges,
        Relax::Capabilities,
        Relax::Users,
        Relax::Umask,
        Relax::Ipc,
    ];

    /// The key as written in a config file (`wx-memory`).
    pub fn as_str(self) -> &'static str {
        match self {
            Relax::WritePaths => "write-paths",
            Relax::Home => "home",
            Relax::Tmp => "tmp",
            Relax::Devices => "devices",
            Relax::Kernel => "kernel",
            Relax::Proc => "proc",
            Relax::NetworkFamilies => "network-families",
            Relax::Namespaces => "namespaces",
            Relax::WxMemory => "wx-memory",
            Relax::Syscalls => "syscalls",
            Relax::Realtime => "realtime",
            Relax::Privileges => "privileges",
            Relax::Capabilities => "capabilities",
            Relax::Users => "users",
            Relax::Umask => "umask",
            Relax::Ipc => "ipc",
        }
    }
}

impl fmt::Display for Relax {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether the manager sandboxes the service, and which protections it gives back.
///
/// On (with nothing relaxed) by default: a system unit then scores ≤ 2.5 in
/// `systemd-analyze security`. A service that breaks under a protection names it in `relax`
/// rather than turning everything off. Common cases: JIT runtimes (Node, Bun, the JVM) need
/// `wx-memory`; GPU or other device users need `devices`; a program reading `/proc/cpuinfo` or
/// `/proc/meminfo` needs `proc`; a root service that must act as root needs `capabilities` and
/// `users`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Hardening {
    /// Sandbox at all. Off writes no protection, whatever `relax` says.
    pub enabled: bool,
    /// Protections given back.
    pub relax: BTreeSet<Relax>,
}

impl Default for Hardening {
    fn default() -> Self {
        Hardening::on()
    }
}

impl From<bool> for Hardening {
    fn from(enabled: bool) -> Self {
        Hardening {
            enabled,
            relax: BTreeSet::new(),
        }
    }
}

impl Hardening {
    /// Every protection.
    pub fn on() -> Self {
        true.into()
    }

    /// No sandbox.
    pub fn off() -> Self {
        false.into()
    }

    /// Every protection except `relax`.
    pub fn relaxed(relax: impl IntoIterator<Item = Relax>) -> Self {
        Hardening {
            enabled: true,
            relax: relax.into_iter().collect(),
        }
    }

    /// Whether the protection that `key` relaxes is applied.
    pub fn applies(&self, key: Relax) -> bool {
        self.enabled && !self.relax.contains(&key)
    }
}

/// The table form: `{ enabled = true, relax = [...] }`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HardeningTable {
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    relax: BTreeSet<Relax>,
}

fn yes() -> bool {
    true
}

impl Serialize for Hardening {
    /// A plain switch when nothing is relaxed, so `hardening = true` reads as it was written.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.relax.is_empty() {
            s.serialize_bool(self.enabled)
        } else {
            HardeningTable {
                enabled: self.enabled,
                relax: self.relax.clone(),
            }
            .serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for Hardening {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Either;
        impl<'de> Visitor<'de> for Either {
            type Value = Hardening;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true, false, or a table { enabled = BOOL, relax = [KEYS] }")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Hardening, E> {
                Ok(v.into())
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Hardening, A::Error> {
                let t = HardeningTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(Hardening {
                    enabled: t.enabled,
                    relax: t.relax,
                })
            }
        }
        d.deserialize_any(Either)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_switch_or_a_table() {
        let on: Hardening = serde_json::from_str("true").unwrap();
        assert_eq!(on, Hardening::on());
        let off: Hardening = serde_json::from_str("false").unwrap();
        assert_eq!(off, Hardening::off());
        let some: Hardening =
            serde_json::from_str(r#"{ "relax": ["wx-memory", "network-families"] }"#).unwrap();
        assert_eq!(
            some,
            Hardening::relaxed([Relax::WxMemory, Relax::NetworkFamilies])
        );
        assert!(some.applies(Relax::Home) && !some.applies(Relax::WxMemory));
        assert!(!Hardening::off().applies(Relax::Home));
        for h in [Hardening::on(), Hardening::off(), some] {
            let text = serde_json::to_string(&h).unwrap();
            assert_eq!(
                serde_json::from_str::<Hardening>(&text).unwrap(),
                h,
                "{text}"
            );
        }
    }

    #[test]
    fn an_unknown_key_is_named() {
        let e = serde_json::from_str::<Hardening>(r#"{ "relax": ["wx_memory"] }"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("wx_memory") && e.contains("wx-memory"), "{e}");
        let e = serde_json::from_str::<Hardening>(r#"{ "relaxed": [] }"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("relaxed"), "{e}");
    }

    #[test]
    fn every_key_has_its_serde_name() {
        for key in Relax::ALL {
            let text = serde_json::to_string(&key).unwrap();
            assert_eq!(text, format!("\"{}\"", key.as_str()));
        }
    }
}
