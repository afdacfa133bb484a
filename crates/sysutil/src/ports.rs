//! Who listens on a local TCP port: the processes holding it, by pid and name, and whether a
//! process descends from another. Asked only when a probe has already failed, so the cost (a
//! scan of the process table's open files on Linux, one `lsof` on macOS) is paid rarely, and
//! always within a deadline.
//!
//! Linux reads `/proc/net/tcp` and `/proc/net/tcp6` for sockets in the LISTEN state on the port
//! (their inodes), then `/proc/<pid>/fd/*` for the processes holding those inodes; processes
//! whose files cannot be read (another user's, without privilege) are skipped. macOS asks
//! `lsof -nP -iTCP:<port> -sTCP:LISTEN -Fpc`.

use std::time::Duration;

/// A process holding a listening socket.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PortHolder {
    /// Its pid.
    pub pid: u32,
    /// Its command name (`comm`), possibly cut short by the kernel.
    pub name: String,
}

/// Why the holders could not be found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortLookupError {
    /// This platform has no way to ask that is built here.
    #[error("finding a port's holder is not supported on this platform")]
    NotSupported,
    /// The lookup took longer than its deadline.
    #[error("finding the holder of port {port} took longer than {after:?}")]
    Timeout {
        /// The port.
        port: u16,
        /// The deadline.
        after: Duration,
    },
    /// The lookup itself failed.
    #[error("finding the holder of port {port}: {detail}")]
    Failed {
        /// The port.
        port: u16,
        /// What went wrong.
        detail: String,
    },
}

/// The processes listening on TCP `port` (any local address), found within `deadline`.
pub async fn holders(port: u16, deadline: Duration) -> Result<Vec<PortHolder>, PortLookupError> {
    #[cfg(target_os = "linux")]
    {
        let scan = tokio::task::spawn_blocking(move || linux::holders(port));
        match tokio::time::timeout(deadline, scan).await {
            Ok(Ok(found)) => found.map_err(|detail| PortLookupError::Failed { port, detail }),
            Ok(Err(e)) => Err(PortLookupError::Failed {
                port,
                detail: e.to_string(),
            }),
            Err(_) => Err(PortLookupError::Timeout {
                port,
                after: deadline,
            }),
        }
    }
    #[cfg(target_os = "macos")]
    {
        macos::holders(port, deadline).await
    }
    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    {
        let _ = (port, deadline);
        Err(PortLookupError::NotSupported)
    }
}

/// Whether `pid` is `ancestor` or one of its descendants (Linux: by the parent chain in
/// `/proc`; elsewhere only `pid == ancestor`).
pub fn descends_from(pid: u32, ancestor: u32) -> bool {
    let mut current = pid;
    // A bounded walk: a parent chain is short, and pid reuse must not loop forever.
    for _ in 0..64 {
        if current == ancestor {
            return true;
        }
        match parent_of(current) {
            Some(parent) if parent != 0 && parent != current => current = parent,
            _ => return false,
        }
    }
    false
}

#[cfg(target_os = "linux")]
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid ...`: comm may hold spaces and parentheses, so read after the
    // last `)`.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(not(target_os = "linux"))]
fn parent_of(_pid: u32) -> Option<u32> {
    None
}

#[cfg(target_os = "linux")]
mod linux {
    use std::collections::BTreeSet;

    use super::PortHolder;

    /// TCP state LISTEN in `/proc/net/tcp`.
    const LISTEN: &str = "0A";

    /// The inodes of the sockets listening on `port`, from one `/proc/net/tcp*` table.
    pub(super) fn listening_inodes(table: &str, port: u16) -> BTreeSet<u64> {
        table
            .lines()
            .skip(1)
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let local = fields.get(1)?;
                let state = fields.get(3)?;
                let inode = fields.get(9)?;
                let (_, port_hex) = local.rsplit_once(':')?;
                let listening = *state == LISTEN && u16::from_str_radix(port_hex, 16).ok()? == port;
                listening.then(|| inode.parse().ok()).flatten()
            })
            .filter(|inode| *inode != 0)
            .collect()
    }

    pub(super) fn holders(port: u16) -> Result<Vec<PortHolder>, String> {
        let mut inodes = BTreeSet::new();
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            match std::fs::read_to_string(table) {
                Ok(text) => inodes.extend(listening_inodes(&text, port)),
                // No IPv6 in this kernel: nothing listens there.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("{table}: {e}")),
            }
        }
        if inodes.is_empty() {
            return Ok(Vec::new());
        }
        let wanted: BTreeSet<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
        let mut found = BTreeSet::new();
        let procs = std::fs::read_dir("/proc").map_err(|e| format!("/proc: {e}"))?;
        for entry in procs.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
                continue;
            };
            let holds = fds.flatten().any(|fd| {
                std::fs::read_link(fd.path())
                    .ok()
                    .and_then(|t| t.to_str().map(|t| wanted.contains(t)))
                    .unwrap_or(false)
            });
            if holds {
                let name = std::fs::read_to_string(entry.path().join("comm"))
                    .map(|n| n.trim_end().to_string())
                    .unwrap_or_else(|_| "?".into());
                found.insert(PortHolder { pid, name });
            }
        }
        Ok(found.into_iter().collect())
    }
}

#[cfg(target_os = "macos")]
mod macos {
    use super::{Duration, PortHolder, PortLookupError};

    pub(super) async fn holders(
        port: u16,
        deadline: Duration,
    ) -> Result<Vec<PortHolder>, PortLookupError> {
        let out = crate::command::Command::new("/usr/sbin/lsof", deadline)
            .args([
                "-nP".to_string(),
                format!("-iTCP:{port}"),
                "-sTCP:LISTEN".to_string(),
                "-Fpc".to_string(),
            ])
            .run()
            .await
            .map_err(|e| PortLookupError::Failed {
                port,
                detail: e.to_string(),
            })?;
        // `lsof` exits 1 when nothing matches.
        let mut found = Vec::new();
        let mut pid = None;
        for line in out.stdout.lines() {
            if let Some(p) = line.strip_prefix('p') {
                pid = p.parse().ok();
            } else if let (Some(name), Some(p)) = (line.strip_prefix('c'), pid) {
                found.push(PortHolder {
                    pid: p,
                    name: name.to_string(),
                });
            }
        }
        found.sort();
        found.dedup();
        Ok(found)
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn listening_sockets_are_read_from_the_tcp_table() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:0C1F 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0000000000000000 100 0 0 10 0\n\
   1: 0100007F:0C1F 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1000        0 4343 1 0000000000000000 100 0 0 10 0\n\
   2: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4444 1 0000000000000000 100 0 0 10 0\n";
        assert_eq!(linux::listening_inodes(table, 3103), BTreeSet::from([4242]));
        assert_eq!(linux::listening_inodes(table, 8080), BTreeSet::from([4444]));
        assert!(linux::listening_inodes(table, 1).is_empty());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_listener_of_this_process_is_found_with_its_pid_and_name() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let found = holders(port, Duration::from_secs(10)).await.unwrap();
        let me = std::process::id();
        assert!(found.iter().any(|h| h.pid == me), "{found:?}");
        drop(listener);
        let found = holders(port, Duration::from_secs(10)).await.unwrap();
        assert!(found.iter().all(|h| h.pid != me), "{found:?}");
    }

    #[test]
    fn a_process_descends_from_itself_and_its_parents() {
        let me = std::process::id();
        assert!(descends_from(me, me));
        assert!(descends_from(me, std::os::unix::process::parent_id()));
        assert!(!descends_from(1, me));
    }
}
