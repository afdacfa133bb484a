//! [`LaunchdConfig`]: what the launchd adapter needs to know about this machine: where plists
//! go, which users' domains it serves, the service account, and the defaults generated plists
//! get (`PATH`, log folder).

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use super::plist_gen::ServiceAccount;

/// One user's launchd domains (`gui/<uid>`, `user/<uid>`) and where their agents' plists live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserDomain {
    /// The user's numeric id.
    pub uid: u32,
    /// The user's `Library/LaunchAgents` folder. Given, never derived from a home directory
    /// guessed here.
    pub agents_dir: PathBuf,
}

/// What `LaunchdProcessManager` needs to know about this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchdConfig {
    /// `launchctl` at this path; `None` looks it up on `search_path`.
    pub launchctl_path: Option<PathBuf>,
    /// The `PATH`-style list `launchctl` is looked up on; `None` is this process's `PATH`.
    pub search_path: Option<OsString>,
    /// Where system daemons' plists go (`/Library/LaunchDaemons`).
    pub system_plist_dir: PathBuf,
    /// The users whose `gui/<uid>` and `user/<uid>` domains are managed too, one per uid (a
    /// relay host runs one sandboxed user per relay); empty manages the `system` domain only.
    /// A service's scope picks its user; labels are searched in `system`, then in each user's
    /// domains in this order.
    pub users: Vec<UserDomain>,
    /// The account system daemons run as when their config names no user.
    pub service_account: Option<ServiceAccount>,
    /// `PATH` for generated plists whose config sets none (`None`: leave launchd's default).
    pub default_path: Option<String>,
    /// The folder of the log files a generated plist gets when its config names none:
    /// `<log_dir>/<label>.out.log` and `<label>.err.log` (`None`: no log files, launchd's
    /// default of `/dev/null`). launchd creates the files, not the folder: the caller makes it,
    /// writable by the accounts its services run as.
    pub log_dir: Option<PathBuf>,
    /// The wrapper that runs a service with env files (launchd has no `EnvironmentFile=`):
    /// the node agent's binary, run as `env-exec` (see `process_manager::env_file`). `None`
    /// refuses such services.
    pub env_exec: Option<PathBuf>,
    /// The deadline of every `launchctl` call.
    pub deadline: Duration,
    /// launchd's own daemon folders, which it loads into `system` at boot. A job booted out of
    /// one is still installed there, so it is looked for there (after `system_plist_dir`).
    pub launchd_daemon_dirs: Vec<PathBuf>,
    /// launchd's own agent folders, loaded into each user's domain at login; searched after
    /// the users' `agents_dir`s, and a job found only there is reported in the first user's.
    pub launchd_agent_dirs: Vec<PathBuf>,
}

/// The `PATH` generated plists get when their config sets none: Homebrew's folders first, which
/// launchd's default lacks, then the system's. Nothing from a home folder: a service must not
/// run a tool a person can replace. (Whether a config's own `PATH` names a person's home is
/// for the caller to warn about; the adapter writes what it is given.)
pub const DEFAULT_SERVICE_PATH: &str =
    "/opt/homebrew/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";

impl Default for LaunchdConfig {
    fn default() -> Self {
        LaunchdConfig {
            launchctl_path: None,
            search_path: None,
            system_plist_dir: PathBuf::from("/Library/LaunchDaemons"),
            users: Vec::new(),
            service_account: None,
            default_path: Some(DEFAULT_SERVICE_PATH.to_string()),
            log_dir: None,
            env_exec: None,
            deadline: Duration::from_secs(10),
            launchd_daemon_dirs: vec![
                PathBuf::from("/Library/LaunchDaemons"),
                PathBuf::from("/System/Library/LaunchDaemons"),
            ],
            launchd_agent_dirs: vec![
                PathBuf::from("/Library/LaunchAgents"),
                PathBuf::from("/System/Library/LaunchAgents"),
            ],
        }
    }
}

impl LaunchdConfig {
    /// Uses `launchctl` at `path` instead of looking it up on `PATH`.
    pub fn with_launchctl(mut self, path: impl Into<PathBuf>) -> Self {
        self.launchctl_path = Some(path.into());
        self
    }

    /// Looks `launchctl` up on this `PATH`-style list instead of the process's `PATH`.
    pub fn with_search_path(mut self, path: impl Into<OsString>) -> Self {
        self.search_path = Some(path.into());
        self
    }

    /// Puts system daemons' plists in `dir` (a scratch root in tests).
    pub fn with_system_plist_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.system_plist_dir = dir.into();
        self
    }

    /// Also manages user `uid`'s `gui/<uid>` and `user/<uid>` domains, with agents in
    /// `agents_dir` (replacing the folder of a uid already added).
    pub fn with_user(mut self, uid: u32, agents_dir: impl Into<PathBuf>) -> Self {
        let domain = UserDomain {
            uid,
            agents_dir: agents_dir.into(),
        };
        match self.users.iter_mut().find(|u| u.uid == uid) {
            Some(existing) => *existing = domain,
            None => self.users.push(domain),
        }
        self
    }

    /// The managed domain of user `uid`, if any.
    pub fn user(&self, uid: u32) -> Option<&UserDomain> {
        self.users.iter().find(|u| u.uid == uid)
    }

    /// Runs system daemons as `user` (and `group`) unless their config says otherwise.
    pub fn with_service_account(mut self, user: impl Into<String>, group: Option<String>) -> Self {
        self.service_account = Some(ServiceAccount {
            user: user.into(),
            group,
        });
        self
    }

    /// Sets (or, with `None`, drops) the `PATH` given to plists whose config sets none.
    pub fn with_default_path(mut self, path: Option<String>) -> Self {
        self.default_path = path;
        self
    }

    /// Runs services with env files through `wrapper env-exec --env-file F … -- PROGRAM …`.
    pub fn with_env_exec(mut self, wrapper: impl Into<PathBuf>) -> Self {
        self.env_exec = Some(wrapper.into());
        self
    }

    /// Gives plists whose config names no log files `<dir>/<label>.out.log`/`.err.log`.
    pub fn with_log_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.log_dir = Some(dir.into());
        self
    }

    /// Sets the deadline of every `launchctl` call.
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// Looks for unloaded jobs' plists in these daemon and agent folders instead of launchd's
    /// standard ones (a scratch root in tests).
    pub fn with_launchd_folders(
        mut self,
        daemons: impl IntoIterator<Item = impl Into<PathBuf>>,
        agents: impl IntoIterator<Item = impl Into<PathBuf>>,
    ) -> Self {
        self.launchd_daemon_dirs = daemons.into_iter().map(Into::into).collect();
        self.launchd_agent_dirs = agents.into_iter().map(Into::into).collect();
        self
    }

    /// What generated plists take from this config.
    pub(crate) fn plist_defaults(&self) -> super::plist_gen::PlistDefaults<'_> {
        super::plist_gen::PlistDefaults {
            account: self.service_account.as_ref(),
            default_path: self.default_path.as_deref(),
            log_dir: self.log_dir.as_deref(),
            env_exec: self.env_exec.as_deref(),
        }
    }
}
