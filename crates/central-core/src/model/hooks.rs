//! What runs around a heal: `before_restart` hooks before a step that (re)starts the service's
//! process, `after_heal` hooks once a heal is verified. Each has its own deadline; its outcome
//! is an event of its own and never changes the heal's.

use std::time::Duration;

/// A service's hooks, in the order they run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hooks {
    /// Run before a restart, repair, container restart or recreate, inside the same heal call
    /// (so once per attempt: the attempt is on disk before the call).
    pub before_restart: Vec<Hook>,
    /// Run once a heal is verified (`heal.succeeded`), after the state saying so is on disk.
    pub after_heal: Vec<Hook>,
}

impl Hooks {
    /// No hook at all.
    pub fn is_empty(&self) -> bool {
        self.before_restart.is_empty() && self.after_heal.is_empty()
    }
}

/// One hook and its deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    /// What it does.
    pub action: HookAction,
    /// How long it may take; a command is killed (its whole process group) after.
    pub timeout: Duration,
}

/// What a hook does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookAction {
    /// Runs a program (argv, no shell). Passes when it exits 0. It gets `JOELCLAW_SERVICE`,
    /// `JOELCLAW_HOOK` (`before_restart`, `after_heal`), `JOELCLAW_STEP` and `JOELCLAW_ATTEMPT`.
    Command {
        /// Program and arguments.
        argv: Vec<String>,
    },
    /// One HTTP request on a fresh connection (e.g. `PUT` to make a workflow engine re-sync a
    /// restarted worker). Passes on a 2xx answer.
    Http {
        /// `GET`, `POST`, `PUT`, `PATCH` or `DELETE`.
        method: String,
        /// A plain `http://` URL.
        url: String,
    },
    /// Frees a local TCP port from a process that listens on it and is not the service's own
    /// current process (nor started by it): SIGTERM (with SIGCONT, so a stopped process acts
    /// on it), then SIGKILL at half the deadline. Passes when no stranger holds the port.
    FreePort {
        /// The port.
        port: u16,
    },
}

impl std::fmt::Display for HookAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // As shown in events: an argument or URL part named like a secret is redacted.
            HookAction::Command { argv } => write!(
                f,
                "command {}",
                process_manager::redact::redact_args(argv).join(" ")
            ),
            HookAction::Http { method, url } => write!(
                f,
                "http {method} {}",
                process_manager::redact::redact_text(url)
            ),
            HookAction::FreePort { port } => write!(f, "free-port {port}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hook_is_shown_without_its_secrets() {
        let command = HookAction::Command {
            argv: [
                "/usr/bin/notify",
                "--api-token",
                "s3cr3t-a",
                "API_KEY=s3cr3t-b",
            ]
            .map(String::from)
            .to_vec(),
        };
        let http = HookAction::Http {
            method: "PUT".into(),
            url: "http://u:s3cr3t-c@127.0.0.1:3111/sync?token=s3cr3t-d".into(),
        };
        for shown in [command.to_string(), http.to_string()] {
            assert!(!shown.contains("s3cr3t"), "{shown}");
        }
        assert!(command
            .to_string()
            .starts_with("command /usr/bin/notify --api-token "));
    }
}
