//! Finding a program to run: a path is taken as given, a bare name is looked up on `PATH`.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

/// A program name that is not on the searched `PATH`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{} not found on PATH ({})", name.to_string_lossy(), searched.to_string_lossy())]
pub struct NotOnPath {
    /// The name looked for.
    pub name: OsString,
    /// The `PATH`-style list searched.
    pub searched: OsString,
}

/// Finds `program`: one with a `/` in it is returned as is (the spawn reports it if missing);
/// a bare name is looked up on `search_path`, or on this process's `PATH` when `None`.
pub fn find(program: &OsStr, search_path: Option<&OsStr>) -> Result<PathBuf, NotOnPath> {
    let as_path = Path::new(program);
    if as_path.components().count() > 1 {
        return Ok(as_path.to_path_buf());
    }
    let searched = match search_path {
        Some(p) => p.to_os_string(),
        None => std::env::var_os("PATH").unwrap_or_default(),
    };
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    which::which_in(program, Some(&searched), cwd).map_err(|_| NotOnPath {
        name: program.to_os_string(),
        searched,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_as_given_names_on_the_search_path() {
        assert_eq!(
            find(OsStr::new("/no/such/prog"), None).unwrap(),
            PathBuf::from("/no/such/prog")
        );
        let found = find(OsStr::new("sh"), Some(OsStr::new("/nonexistent:/bin"))).unwrap();
        assert_eq!(found, PathBuf::from("/bin/sh"));
        let e = find(OsStr::new("sh"), Some(OsStr::new("/nonexistent"))).unwrap_err();
        assert_eq!(e.to_string(), "sh not found on PATH (/nonexistent)");
    }
}
