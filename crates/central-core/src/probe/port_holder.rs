//! A port held by a stranger: when a network probe of a local endpoint fails and a process that
//! is not the service's own current one (nor started by it) listens on the port, the failure is
//! [`ProbeFailure::PortHeld`] and names that process ("port 3111 held by pid N (name)"): the
//! service cannot bind, and restarting it alone will not help.
//!
//! Asked only after a failure, within the probe's timeout (see `sysutil::ports`).

use std::time::Duration;

use process_manager::{ServiceLabel, SharedProcessManager};

use super::{ProbeFailure, ProbeResult};
use crate::inventory::Endpoint;

/// The service a network probe belongs to, whose own process may hold its port.
#[derive(Clone)]
pub struct PortOwner {
    /// Its manager (asked for the current pid).
    pub manager: SharedProcessManager,
    /// The service.
    pub label: ServiceLabel,
}

impl std::fmt::Debug for PortOwner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortOwner")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

/// The local port of an endpoint target (`127.0.0.1:3111`, `http://localhost:3111/x`,
/// `[::1]:80`), or `None` for a remote host or a target without one.
pub(crate) fn local_port(target: &str) -> Option<u16> {
    let authority = match target.split_once("://") {
        Some((scheme, rest)) => {
            let authority = rest.split(['/', '?', '#']).next()?;
            let authority = authority.rsplit('@').next()?;
            let default = match scheme {
                "http" => Some(80),
                "https" => Some(443),
                _ => None,
            };
            return host_port(authority, default);
        }
        None => target,
    };
    host_port(authority, None)
}

fn host_port(authority: &str, default: Option<u16>) -> Option<u16> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let local = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified());
    if !local {
        return None;
    }
    match port {
        Some(p) => p.parse().ok(),
        None => default,
    }
}

/// The service's own current process: its main pid while it runs, as its manager says.
pub(crate) async fn own_pid(
    manager: &SharedProcessManager,
    label: &ServiceLabel,
) -> Result<Option<u32>, process_manager::ProcessError> {
    let status = manager.inspect(label).await?;
    Ok(status.pid.filter(|_| status.is_running()))
}

/// Whether `pid` is the service's own process `own` or one it started (so never a stranger).
pub(crate) fn is_own(pid: u32, own: Option<u32>) -> bool {
    own.is_some_and(|o| sysutil::ports::descends_from(pid, o))
}

/// `failed` itself, or a [`ProbeFailure::PortHeld`] naming the stranger that listens on one of
/// the endpoints' local ports while the service's own process does not.
pub(crate) async fn explain(
    failed: ProbeResult,
    endpoints: &[Endpoint],
    owner: Option<&PortOwner>,
    timeout: Duration,
) -> ProbeResult {
    let Some(owner) = owner else {
        return failed;
    };
    if failed.passed() {
        return failed;
    }
    let mut ports: Vec<u16> = endpoints
        .iter()
        .filter_map(|e| local_port(&e.target))
        .collect();
    ports.dedup();
    if ports.is_empty() {
        return failed;
    }
    let own_pid = match tokio::time::timeout(timeout, own_pid(&owner.manager, &owner.label)).await {
        Ok(Ok(pid)) => pid,
        // Unknown: a holder cannot be told from the service's own process.
        _ => return failed,
    };
    for port in ports {
        let Ok(holders) = sysutil::ports::holders(port, timeout).await else {
            continue;
        };
        if holders.iter().any(|h| is_own(h.pid, own_pid)) {
            continue;
        }
        if let Some(stranger) = holders.first() {
            let own_text = match own_pid {
                Some(pid) => format!("its own process is pid {pid}"),
                None => "it is not running".to_string(),
            };
            return ProbeResult::fail(
                ProbeFailure::PortHeld,
                format!(
                    "port {port} held by pid {} ({}), not by {} ({own_text}); {}",
                    stranger.pid, stranger.name, owner.label, failed.detail
                ),
            );
        }
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_targets_have_a_port_to_look_up() {
        assert_eq!(local_port("127.0.0.1:3111"), Some(3111));
        assert_eq!(local_port("http://localhost:3111/api/inngest"), Some(3111));
        assert_eq!(local_port("http://127.0.0.1/health"), Some(80));
        assert_eq!(local_port("https://user@[::1]:8443/x"), Some(8443));
        assert_eq!(local_port("0.0.0.0:6379"), Some(6379));
        assert_eq!(local_port("http://gpu-box.tailnet:11434/api"), None);
        assert_eq!(local_port("10.0.0.2:80"), None);
        assert_eq!(local_port("{vm_ip}:80"), None);
    }
}
