//! Accounts and homes: who an account is on the audited root, and which homes a text mentions.
//!
//! Accounts are looked up in the root's own `etc/passwd` first (an audited tree carries its own
//! accounts), then on the running host (directory services on macOS, NSS on Linux).

use std::path::{Path, PathBuf};

/// An account as the audited root knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Account {
    pub name: String,
    pub uid: u32,
    /// Its home, as written in the account database (not under the root).
    pub home: Option<PathBuf>,
}

fn passwd_entries(root: &Path) -> Vec<Account> {
    let Ok(text) = std::fs::read_to_string(root.join("etc/passwd")) else {
        return Vec::new();
    };
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(Account {
                name: f.first()?.to_string(),
                uid: f.get(2)?.parse().ok()?,
                home: f.get(5).filter(|h| !h.is_empty()).map(PathBuf::from),
            })
        })
        .collect()
}

fn from_host(user: nix::unistd::User) -> Account {
    Account {
        name: user.name,
        uid: user.uid.as_raw(),
        home: Some(user.dir),
    }
}

/// The account named `name`.
pub(super) fn by_name(root: &Path, name: &str) -> Option<Account> {
    passwd_entries(root)
        .into_iter()
        .find(|a| a.name == name)
        .or_else(|| {
            nix::unistd::User::from_name(name)
                .ok()
                .flatten()
                .map(from_host)
        })
}

/// The name of the account with id `uid`.
pub(super) fn name_of(root: &Path, uid: u32) -> Option<String> {
    passwd_entries(root)
        .into_iter()
        .find(|a| a.uid == uid)
        .map(|a| a.name)
        .or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
                .ok()
                .flatten()
                .map(|u| u.name)
        })
}

/// `path` (absolute, as the audited system sees it) on the disk under `root`.
pub(super) fn on_root(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

/// Where `name`'s home is on the disk under `root`: the account database's entry, else
/// `Users/<name>` or `home/<name>`, the first that exists.
pub(super) fn home_on_root(root: &Path, name: &str) -> Result<PathBuf, String> {
    let mut tried = Vec::new();
    let recorded = by_name(root, name).and_then(|a| a.home);
    let candidates = recorded
        .into_iter()
        .chain([
            PathBuf::from(format!("/Users/{name}")),
            PathBuf::from(format!("/home/{name}")),
        ])
        .map(|p| on_root(root, &p));
    for c in candidates {
        if c.exists() {
            return Ok(c);
        }
        tried.push(c.display().to_string());
    }
    Err(format!("no home found (looked at {})", tried.join(", ")))
}

/// Characters that end a path inside a command line or a list.
fn ends_path(c: char) -> bool {
    c.is_whitespace() || "'\"`:;,|&()<>{}=".contains(c)
}

/// The home owners a text names: every `/Users/<name>` or `/home/<name>` that starts a path
/// (at the start, or after a blank, a quote, `=`, `:` and the like, so `/mnt/home/x` is not one).
/// `<name>` is the whole path component, so `/Users/alicebot` names `alicebot`, never `alice`.
pub(super) fn homes_named(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for base in ["/Users/", "/home/"] {
        for (at, _) in text.match_indices(base) {
            let starts_path = text[..at]
                .chars()
                .next_back()
                .is_none_or(|c| ends_path(c) || c == '~' || c == '$');
            if !starts_path {
                continue;
            }
            let name: String = text[at + base.len()..]
                .chars()
                .take_while(|&c| c != '/' && !ends_path(c))
                .collect();
            if !name.is_empty() {
                out.push(name);
            }
        }
    }
    out
}

/// Whether `text` names `path` or something under it, as a whole path (`/opt/joelclaw` is in
/// `cd /opt/joelclaw/bin &&`, not in `/opt/joelclaw2`).
pub(super) fn mentions_path(text: &str, path: &str) -> bool {
    let path = path.trim_end_matches('/');
    !path.is_empty()
        && text.match_indices(path).any(|(at, _)| {
            text[at + path.len()..]
                .chars()
                .next()
                .is_none_or(|c| c == '/' || ends_path(c))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn homes_are_whole_path_components() {
        assert_eq!(homes_named("/Users/alice/bin/worker"), vec!["alice"]);
        assert_eq!(homes_named("/home/bob/.bun/bin/bun"), vec!["bob"]);
        assert_eq!(homes_named("/Users/alicebot/services"), vec!["alicebot"]);
        assert_eq!(
            homes_named("cd '/Users/alice/Code' && exec x --d=/home/ann"),
            vec!["alice", "ann"]
        );
        assert_eq!(
            homes_named("PATH=/usr/bin:/Users/alice/.bun/bin"),
            vec!["alice"]
        );
        assert!(homes_named("/mnt/home/x /opt/homebrew/bin /Users/").is_empty());
    }

    #[test]
    fn paths_are_matched_whole() {
        assert!(mentions_path("cd /opt/joelclaw/bin && x", "/opt/joelclaw"));
        assert!(mentions_path("/opt/joelclaw", "/opt/joelclaw/"));
        assert!(!mentions_path("/opt/joelclaw2/x", "/opt/joelclaw"));
    }

    #[test]
    fn accounts_come_from_the_roots_passwd_first() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        std::fs::write(
            root.path().join("etc/passwd"),
            "# comment\nsvc:x:4242:4242::/Users/svc:/bin/false\n",
        )
        .unwrap();
        let a = by_name(root.path(), "svc").unwrap();
        assert_eq!((a.uid, a.home), (4242, Some(PathBuf::from("/Users/svc"))));
        assert_eq!(name_of(root.path(), 4242).as_deref(), Some("svc"));
    }
}
