//! Which files a scan reads: inside a git repository what git tracks (as `git grep` does), so a
//! tracked file that matches `.gitignore` is read and an untracked one is not; elsewhere every
//! file not ignored by a `.gitignore`.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::GateError;

/// How the files of a scan were listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Listing {
    /// `git ls-files`: the root is inside a git repository.
    Git,
    /// A walk honouring `.gitignore` files: the root is in no git repository.
    Walk,
}

/// How to ask git for the tracked files.
#[derive(Debug, Clone)]
pub struct GitSettings {
    /// The git program (found on `PATH` when bare).
    pub program: PathBuf,
    /// How long `git ls-files` may take before it is killed (with its process group) and the
    /// scan fails.
    pub deadline: Duration,
}

impl Default for GitSettings {
    fn default() -> Self {
        GitSettings {
            program: PathBuf::from("git"),
            deadline: Duration::from_secs(60),
        }
    }
}

/// The files (and symlinks) under `root`, relative to it.
pub(crate) fn list(root: &Path, git: &GitSettings) -> Result<(Listing, Vec<PathBuf>), GateError> {
    if in_git_repository(root) {
        Ok((Listing::Git, tracked(root, git)?))
    } else {
        Ok((Listing::Walk, walk(root)?))
    }
}

/// Whether `root` or a folder above it holds `.git` (a folder, or a file for a linked checkout).
fn in_git_repository(root: &Path) -> bool {
    let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    root.ancestors().any(|dir| dir.join(".git").exists())
}

fn tracked(root: &Path, git: &GitSettings) -> Result<Vec<PathBuf>, GateError> {
    let fail = |detail: String| GateError::Git {
        path: root.into(),
        detail,
    };
    let program =
        sysutil::program::find(git.program.as_os_str(), None).map_err(|e| fail(e.to_string()))?;
    let mut cmd = sysutil::command::Command::new(program, git.deadline)
        .args(["ls-files", "-z"])
        .current_dir(root);
    // A hook (pre-commit) runs with these set for its own repository; the scanned root decides.
    for var in ["GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"] {
        cmd = cmd.env_remove(var);
    }
    // Past the deadline the whole process group is killed (sysutil's runner).
    let out = cmd.run_blocking().map_err(|e| match e {
        sysutil::command::RunError::Timeout { after } => fail(format!(
            "`git ls-files` timed out after {after:?}; it was killed with its process group"
        )),
        other => fail(format!("{}: {other}", git.program.display())),
    })?;
    if !out.success() {
        return Err(fail(format!(
            "`git ls-files` failed ({}): {}",
            out.status,
            out.stderr.trim()
        )));
    }
    Ok(out
        .stdout_bytes
        .split(|&b| b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| PathBuf::from(OsStr::from_bytes(p)))
        .collect())
}

fn walk(root: &Path) -> Result<Vec<PathBuf>, GateError> {
    let walker = ignore::WalkBuilder::new(root)
        .hidden(false)
        .require_git(false)
        .filter_entry(|e| e.file_name() != ".git")
        .build();
    let mut files = Vec::new();
    for entry in walker {
        let entry = entry.map_err(|e| GateError::Walk {
            path: root.into(),
            detail: e.to_string(),
        })?;
        if entry
            .file_type()
            .is_some_and(|t| t.is_file() || t.is_symlink())
        {
            let rel = entry.path().strip_prefix(root).unwrap_or(entry.path());
            files.push(rel.to_path_buf());
        }
    }
    Ok(files)
}
