//! The sandbox a hardened system unit gets, directive by directive, grouped by the [`Relax`] key
//! that gives each group back. One table for the writer (`unit`) and the reader (`unit_read`),
//! so a directive added here is written and read alike.
//!
//! With nothing relaxed, a non-root network service scores about 1.5 ("OK") in
//! `systemd-analyze security` on systemd 252; what is left open is the network itself
//! (`PrivateNetwork=`, `IPAddressDeny=`, the `AF_INET*` families), which a network service needs.

use process_manager::Relax;

/// `ProtectSystem=` with nothing relaxed: only the unit's `ReadWritePaths=` are writable.
pub(crate) const PROTECT_SYSTEM_STRICT: &str = "strict";
/// `ProtectSystem=` under `write-paths`: `/usr`, `/boot`, `/efi` and `/etc` read-only, the rest
/// as the account's permissions say.
pub(crate) const PROTECT_SYSTEM_FULL: &str = "full";

/// Each relax key with the directives (name, value) it drops. `write-paths` is not here: it
/// changes `ProtectSystem=` and the derived `ReadWritePaths=` instead of dropping them.
pub(crate) const SANDBOX: &[(Relax, &[(&str, &str)])] = &[
    (Relax::Home, &[("ProtectHome", "yes")]),
    (Relax::Tmp, &[("PrivateTmp", "yes")]),
    (
        Relax::Devices,
        &[("PrivateDevices", "yes"), ("DevicePolicy", "closed")],
    ),
    (
        Relax::Kernel,
        &[
            ("ProtectKernelTunables", "yes"),
            ("ProtectKernelModules", "yes"),
            ("ProtectKernelLogs", "yes"),
            ("ProtectControlGroups", "yes"),
            ("ProtectClock", "yes"),
            ("ProtectHostname", "yes"),
        ],
    ),
    (
        Relax::Proc,
        &[("ProtectProc", "invisible"), ("ProcSubset", "pid")],
    ),
    (
        Relax::NetworkFamilies,
        &[("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX")],
    ),
    (
        Relax::Namespaces,
        &[("RestrictNamespaces", "yes"), ("PrivateMounts", "yes")],
    ),
    (Relax::WxMemory, &[("MemoryDenyWriteExecute", "yes")]),
    (
        Relax::Syscalls,
        &[
            ("SystemCallFilter", "@system-service"),
            ("SystemCallArchitectures", "native"),
            ("LockPersonality", "yes"),
        ],
    ),
    (Relax::Realtime, &[("RestrictRealtime", "yes")]),
    (
        Relax::Privileges,
        &[("NoNewPrivileges", "yes"), ("RestrictSUIDSGID", "yes")],
    ),
    (
        Relax::Capabilities,
        // Empty: no capability at all, in the bounding set or inherited.
        &[("CapabilityBoundingSet", ""), ("AmbientCapabilities", "")],
    ),
    (Relax::Users, &[("PrivateUsers", "yes")]),
    (Relax::Umask, &[("UMask", "0077")]),
    (
        Relax::Ipc,
        &[("RemoveIPC", "yes"), ("KeyringMode", "private")],
    ),
];

/// What a user manager's unit gets when hardened: a user manager cannot drop capabilities or
/// set up most namespaces for its services, so only these, and no relax key.
pub(crate) const USER_BASELINE: &[(&str, &str)] = &[
    ("NoNewPrivileges", "yes"),
    ("ProtectSystem", PROTECT_SYSTEM_FULL),
    ("PrivateTmp", "yes"),
];

/// Whether `name` is a directive of the table (the reader keeps their values).
pub(crate) fn is_sandbox_directive(name: &str) -> bool {
    name == "ProtectSystem"
        || SANDBOX
            .iter()
            .any(|(_, directives)| directives.iter().any(|(n, _)| *n == name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_relax_key_has_one_group() {
        for key in Relax::ALL {
            let groups = SANDBOX.iter().filter(|(k, _)| *k == key).count();
            let expected = usize::from(key != Relax::WritePaths);
            assert_eq!(groups, expected, "{key}");
        }
    }
}
