//! The hardening a generated plist gets: launchd's equivalents of the systemd sandbox, one table
//! for the writer (`plist_gen`) and the reader (`plist_read`).
//!
//! launchd has no per-job sandbox of files, devices, system calls or privileges, so of the
//! [`Relax`] keys only `umask` has a launchd meaning (`Umask`); every other key changes nothing
//! in a plist (`write-paths`, `home`, `tmp`, `devices`, `kernel`, `proc`, `network-families`,
//! `namespaces`, `wx-memory`, `syscalls`, `realtime`, `privileges`, `capabilities`, `users`,
//! `ipc`: none has a launchd key). With hardening on, a plist gets:
//!
//! - `Umask` 63 (0o077): files it creates are its own. Given back by relax `umask`.
//! - `SoftResourceLimits` and `HardResourceLimits` `Core` 0: no core dumps, since a core holds
//!   the service's memory and its secrets.
//! - `SoftResourceLimits` `NumberOfFiles` 4096 (launchd's own is 256, too few for a network
//!   service) and `HardResourceLimits` `NumberOfFiles` 10240 (`OPEN_MAX`), a bound on what one
//!   service can take of the host's files.
//! - `ProcessType` `Background` for a job whose config names none: throttled CPU and I/O for
//!   work nobody waits on.
//!
//! Only `hardening = false` drops the limits and the job's `ProcessType`. A daemon keeps launchd's `Standard` unless its config names a `ProcessType`: `Background`
//! throttles CPU, disk and network, which would slow a service that answers requests.
//! `SessionCreate` (a security session, for jobs that need a login keychain) is never written.
//! A hardened plist is recognised by `HardResourceLimits` `Core = 0`.

use process_manager::Relax;

/// `Umask` of a hardened service: files it creates are its own.
pub(crate) const PRIVATE_UMASK: u64 = 0o077;

/// `SoftResourceLimits` of a hardened service.
pub(crate) const SOFT_LIMITS: &[(&str, u64)] = &[("Core", 0), ("NumberOfFiles", 4096)];

/// `HardResourceLimits` of a hardened service.
pub(crate) const HARD_LIMITS: &[(&str, u64)] = &[("Core", 0), ("NumberOfFiles", 10240)];

/// The relax keys a plist expresses; the others have no launchd meaning.
pub(crate) const LAUNCHD_RELAX_KEYS: &[Relax] = &[Relax::Umask];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_stay_within_what_launchd_accepts() {
        // A soft limit above the hard one, or a file limit above OPEN_MAX, makes launchd's
        // setrlimit fail and the job start with launchd's defaults.
        for ((soft_key, soft), (hard_key, hard)) in SOFT_LIMITS.iter().zip(HARD_LIMITS) {
            assert_eq!(soft_key, hard_key);
            assert!(soft <= hard, "{soft_key}");
        }
        assert!(HARD_LIMITS.iter().all(|(_, v)| *v <= 10240));
        assert_eq!(PRIVATE_UMASK, 63);
    }
}
