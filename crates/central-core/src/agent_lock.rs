//! One agent per state folder: an exclusive `flock` on `agent.lock` in the folder, held for the
//! agent's life (the kernel drops it when the process ends, however it ends), with the holder's
//! pid written in the file so a second agent can say who holds it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The lock file's name in a state folder.
pub const LOCK_FILE: &str = "agent.lock";

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// Another agent holds it.
    #[error(
        "another agent{} already runs on the state folder {} (lock {}); stop it first, \
         or give this one its own --state-dir",
        pid.map_or(String::new(), |p| format!(" (pid {p})")),
        folder.display(),
        path.display()
    )]
    Held {
        /// The holder's pid, as it wrote it.
        pid: Option<u32>,
        /// The state folder.
        folder: PathBuf,
        /// The lock file.
        path: PathBuf,
    },
    /// The lock file could not be opened or locked.
    #[error("cannot lock {}: {source}", path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The held lock; dropping it releases it.
#[derive(Debug)]
pub struct AgentLock {
    _file: Locked,
    path: PathBuf,
}

impl AgentLock {
    /// Takes the lock on `folder` (which must exist) without waiting, and writes this
    /// process's pid into it.
    pub fn acquire(folder: &Path) -> Result<AgentLock, LockError> {
        let path = folder.join(LOCK_FILE);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(&path).map_err(io)?;
        let mut file = match lock_exclusive(file) {
            Ok(locked) => locked,
            Err((mut file, e)) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(LockError::Held {
                    pid: text.trim().parse().ok(),
                    folder: folder.to_path_buf(),
                    path,
                });
            }
            Err((_, e)) => return Err(io(e)),
        };
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(AgentLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(unix)]
type Locked = nix::fcntl::Flock<File>;
#[cfg(not(unix))]
type Locked = File;

/// An exclusive, non-blocking `flock`; the lock lives as long as the returned value.
#[cfg(unix)]
fn lock_exclusive(file: File) -> Result<Locked, (File, std::io::Error)> {
    use nix::fcntl::{Flock, FlockArg};
    Flock::lock(file, FlockArg::LockExclusiveNonblock)
        .map_err(|(file, errno)| (file, std::io::Error::from(errno)))
}

#[cfg(not(unix))]
fn lock_exclusive(file: File) -> Result<Locked, (File, std::io::Error)> {
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_one_folder_is_refused_naming_the_holder_and_freed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let first = AgentLock::acquire(dir.path()).unwrap();
        let err = AgentLock::acquire(dir.path()).unwrap_err();
        let me = std::process::id();
        assert!(
            matches!(&err, LockError::Held { pid: Some(p), .. } if *p == me),
            "{err:?}"
        );
        assert!(err.to_string().contains(&format!("pid {me}")), "{err}");
        drop(first);
        let again = AgentLock::acquire(dir.path()).unwrap();
        assert_eq!(again.path(), dir.path().join(LOCK_FILE));
    }
}
