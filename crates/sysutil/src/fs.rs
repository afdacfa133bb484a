//! Atomic file writes: a reader sees the old file or the new one, never half of either, and
//! after a crash the rename is on disk or not at all.

use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// What an atomic write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// There was no file; now there is.
    Created,
    /// The file had other bytes (or was rewritten unconditionally); it has the new ones.
    Replaced,
    /// The file already had these bytes; it was not touched.
    Unchanged,
}

impl WriteOutcome {
    /// Whether the file on disk changed.
    pub fn changed(self) -> bool {
        self != WriteOutcome::Unchanged
    }
}

/// Why a write failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// A file-system call failed; `step` says which ("creating", "writing", "renaming into"...).
    #[error("{step} {}: {source}", path.display())]
    Io {
        /// What was being done.
        step: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The system's answer.
        #[source]
        source: std::io::Error,
    },
    /// The folder is not safe to write a trusted file into.
    #[error("{0}")]
    UnsafeFolder(String),
}

impl WriteError {
    /// The I/O error's kind (`Other` for an unsafe folder), for callers that map by kind.
    pub fn io_kind(&self) -> std::io::ErrorKind {
        match self {
            WriteError::Io { source, .. } => source.kind(),
            WriteError::UnsafeFolder(_) => std::io::ErrorKind::Other,
        }
    }
}

impl From<WriteError> for std::io::Error {
    fn from(e: WriteError) -> Self {
        std::io::Error::new(e.io_kind(), e.to_string())
    }
}

fn io<'a>(step: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> WriteError + 'a {
    move |source| WriteError::Io {
        step,
        path: path.to_path_buf(),
        source,
    }
}

/// How to write: the file's mode, whether equal bytes skip the write, and whether the folder
/// must be one only trusted users can write.
#[derive(Debug, Clone)]
pub struct AtomicWrite {
    mode: u32,
    only_if_changed: bool,
    safe_folder: Option<SafeFolder>,
    temp_prefix: String,
}

/// Who may own a folder a trusted file goes into: root, this process's user, or `also`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SafeFolder {
    also: Option<u32>,
}

impl AtomicWrite {
    /// A write that leaves the file with `mode` (e.g. `0o600`) and always writes.
    pub fn with_mode(mode: u32) -> Self {
        AtomicWrite {
            mode,
            only_if_changed: false,
            safe_folder: None,
            temp_prefix: ".tmp".into(),
        }
    }

    /// Leaves the file alone (and reports [`WriteOutcome::Unchanged`]) when it already has the
    /// bytes; the folder check then does not run either, since nothing is written.
    pub fn only_if_changed(mut self) -> Self {
        self.only_if_changed = true;
        self
    }

    /// Refuses a folder writable by group or others, or owned by anyone but root, this
    /// process's user, or `also_owner` (see [`check_safe_folder`]).
    pub fn into_safe_folder(mut self, also_owner: Option<u32>) -> Self {
        self.safe_folder = Some(SafeFolder { also: also_owner });
        self
    }

    /// Names the temporary file `<prefix>XXXXXX` (so a stray one says whose it is).
    pub fn temp_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.temp_prefix = prefix.into();
        self
    }

    /// Writes `bytes` to `path`: creates the folder, writes a temporary file beside `path` with
    /// the mode, fsyncs it, renames it over `path`, and fsyncs the folder (its error is
    /// reported: until then the rename may not survive a crash).
    pub fn write(&self, path: &Path, bytes: &[u8]) -> Result<WriteOutcome, WriteError> {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let existed = if self.only_if_changed {
            match std::fs::read(path) {
                Ok(old) if old == bytes => return Ok(WriteOutcome::Unchanged),
                Ok(_) => true,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
                Err(e) => return Err(io("reading", path)(e)),
            }
        } else {
            path.exists()
        };
        std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
        if let Some(safe) = self.safe_folder {
            check_safe_folder(dir, safe.also)?;
        }
        let mut tmp = tempfile::Builder::new()
            .prefix(&self.temp_prefix)
            .tempfile_in(dir)
            .map_err(io("creating a temporary file in", dir))?;
        // The mode is set before the bytes go in, so a private file is never readable by others.
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(self.mode))
            .map_err(io("setting the mode of", tmp.path()))?;
        tmp.write_all(bytes).map_err(io("writing", tmp.path()))?;
        tmp.as_file()
            .sync_all()
            .map_err(io("syncing", tmp.path()))?;
        tmp.persist(path)
            .map_err(|e| io("renaming into", path)(e.error))?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io("syncing the folder", dir))?;
        Ok(if existed {
            WriteOutcome::Replaced
        } else {
            WriteOutcome::Created
        })
    }
}

/// Checks that `dir` is safe to hold files another program trusts (a supervisor runs what they
/// say): not writable by group or others, and owned by root, this process's user, or
/// `also_owner` (e.g. the user whose folder it is, when root manages it).
pub fn check_safe_folder(dir: &Path, also_owner: Option<u32>) -> Result<(), WriteError> {
    let meta = std::fs::metadata(dir).map_err(io("reading", dir))?;
    let euid = nix::unistd::geteuid().as_raw();
    if meta.mode() & 0o022 != 0 {
        return Err(WriteError::UnsafeFolder(format!(
            "{} is writable by group or others (mode {:o}); refusing to install a service definition there",
            dir.display(),
            meta.mode() & 0o777
        )));
    }
    if meta.uid() != euid && meta.uid() != 0 && Some(meta.uid()) != also_owner {
        return Err(WriteError::UnsafeFolder(format!(
            "{} is owned by uid {}, neither this user ({euid}), the domain's user, nor root",
            dir.display(),
            meta.uid()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn only_if_changed_reports_created_unchanged_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/a.conf");
        let w = AtomicWrite::with_mode(0o644).only_if_changed();
        assert_eq!(w.write(&path, b"one").unwrap(), WriteOutcome::Created);
        assert_eq!(w.write(&path, b"one").unwrap(), WriteOutcome::Unchanged);
        assert_eq!(w.write(&path, b"two").unwrap(), WriteOutcome::Replaced);
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(mode(&path), 0o644);
        assert_eq!(names(&dir.path().join("sub")), ["a.conf"]);
    }

    #[test]
    fn always_writes_with_the_mode_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let w = AtomicWrite::with_mode(0o600);
        assert_eq!(w.write(&path, b"x").unwrap(), WriteOutcome::Created);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert_eq!(w.write(&path, b"x").unwrap(), WriteOutcome::Replaced);
        assert_eq!(mode(&path), 0o600);
        assert_eq!(names(dir.path()), ["state.json"]);
    }

    #[test]
    fn refuses_a_folder_others_can_write_and_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("agents");
        let path = folder.join("x.plist");
        let w = AtomicWrite::with_mode(0o644).into_safe_folder(None);
        w.write(&path, b"one").unwrap();
        std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o777)).unwrap();
        match w.write(&path, b"two") {
            Err(WriteError::UnsafeFolder(msg)) => assert!(msg.contains("writable"), "{msg}"),
            other => panic!("expected UnsafeFolder, got {other:?}"),
        }
        assert_eq!(std::fs::read(&path).unwrap(), b"one");
    }

    #[test]
    fn a_failed_step_names_itself_and_keeps_its_kind() {
        let dir = tempfile::tempdir().unwrap();
        // A file where the folder should be: creating the folder fails.
        std::fs::write(dir.path().join("f"), b"").unwrap();
        let e = AtomicWrite::with_mode(0o644)
            .write(&dir.path().join("f/x"), b"x")
            .unwrap_err();
        assert!(e.to_string().starts_with("creating "), "{e}");
        let io: std::io::Error = e.into();
        assert!(io.to_string().contains("creating"), "{io}");
    }
}
