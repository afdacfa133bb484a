//! How long processes have been running, by pid, for `status`'s UPTIME and an engine's uptime.
//!
//! Linux reads `/proc/PID/stat` (the start, in clock ticks after boot) and `/proc/uptime`: no
//! process is started. Elsewhere (macOS, where launchd does not say when a job started) one
//! `ps -o pid=,etime= -p PID,PID…` for all of them, within a deadline. A pid that is gone or
//! unreadable is left out: the caller shows it as unknown.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string())
}

/// What every process's age in `/proc` is read against: the time since boot and the clock's
/// ticks per second. Read once for a batch of pids.
struct ProcClock {
    since_boot: f64,
    ticks_per_second: f64,
}

impl ProcClock {
    fn read(proc_root: &Path) -> std::io::Result<Self> {
        let uptime = std::fs::read_to_string(proc_root.join("uptime"))?;
        let since_boot = uptime
            .split_whitespace()
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid("no uptime"))?;
        let ticks_per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .filter(|t| *t > 0)
            .unwrap_or(100) as f64;
        Ok(ProcClock {
            since_boot,
            ticks_per_second,
        })
    }

    /// Seconds since the process `pid` started (its start, in ticks after boot, from its stat).
    fn age(&self, proc_root: &Path, pid: u32) -> std::io::Result<u64> {
        let stat = std::fs::read_to_string(proc_root.join(pid.to_string()).join("stat"))?;
        // Field 2 (comm) is in parentheses and may hold spaces; count fields after its last `)`.
        let after = stat
            .rsplit_once(')')
            .ok_or_else(|| invalid("no ) in stat"))?
            .1;
        // After `)`, field 3 (state) is first, so field 22 (starttime) is the 20th.
        let start_ticks: u64 = after
            .split_whitespace()
            .nth(19)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid("no starttime in stat"))?;
        Ok((self.since_boot - start_ticks as f64 / self.ticks_per_second).max(0.0) as u64)
    }
}

/// Seconds since the process `pid` started, from the `proc` folder at `proc_root` (`/proc`; a
/// test gives its own).
pub fn from_proc(proc_root: &Path, pid: u32) -> std::io::Result<u64> {
    ProcClock::read(proc_root)?.age(proc_root, pid)
}

/// `ps`'s elapsed time, `[[DD-]HH:]MM:SS`, in seconds.
pub fn parse_etime(etime: &str) -> Option<u64> {
    let etime = etime.trim();
    let (days, clock) = match etime.split_once('-') {
        Some((d, rest)) => (d.parse::<u64>().ok()?, rest),
        None => (0, etime),
    };
    let parts: Vec<u64> = clock
        .split(':')
        .map(|p| p.parse::<u64>().ok())
        .collect::<Option<_>>()?;
    let (h, m, s) = match parts[..] {
        [m, s] => (0, m, s),
        [h, m, s] => (h, m, s),
        _ => return None,
    };
    if m >= 60 || s >= 60 {
        return None;
    }
    Some(((days * 24 + h) * 60 + m) * 60 + s)
}

/// Every pid's uptime from one `ps` call (`program`, normally `ps`), within `deadline`.
pub async fn from_ps(
    program: &Path,
    pids: &[u32],
    deadline: Duration,
) -> Result<HashMap<u32, u64>, String> {
    if pids.is_empty() {
        return Ok(HashMap::new());
    }
    let list = pids
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let out = crate::command::Command::new(program, deadline)
        .args(["-o", "pid=,etime=", "-p", &list])
        .run()
        .await
        .map_err(|e| e.to_string())?;
    // `ps` exits 1 when some pid is gone; the lines it printed still count.
    Ok(out
        .stdout
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let pid = fields.next()?.parse().ok()?;
            Some((pid, parse_etime(fields.next()?)?))
        })
        .collect())
}

/// Every pid's uptime in seconds, where it can be read (best effort: a gone pid is absent).
pub async fn uptimes(pids: &[u32], deadline: Duration) -> HashMap<u32, u64> {
    if cfg!(target_os = "linux") {
        let proc_root = Path::new("/proc");
        let Ok(clock) = ProcClock::read(proc_root) else {
            return HashMap::new();
        };
        pids.iter()
            .filter_map(|&pid| Some((pid, clock.age(proc_root, pid).ok()?)))
            .collect()
    } else {
        from_ps(Path::new("ps"), pids, deadline)
            .await
            .unwrap_or_else(|e| {
                tracing::debug!("process uptimes: {e}");
                HashMap::new()
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_from_proc_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("42")).unwrap();
        // comm with a space and a `)`, as the kernel allows; starttime (field 22) = 1000 ticks.
        let mut fields = vec!["S"];
        fields.extend(std::iter::repeat_n("0", 18));
        fields.push("1000");
        fields.extend(["0", "0"]);
        std::fs::write(
            dir.path().join("42/stat"),
            format!("42 (my ) daemon) {}\n", fields.join(" ")),
        )
        .unwrap();
        std::fs::write(dir.path().join("uptime"), "250.50 900.00\n").unwrap();
        let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .unwrap()
            .unwrap() as f64;
        let want = (250.5 - 1000.0 / ticks) as u64;
        assert_eq!(from_proc(dir.path(), 42).unwrap(), want);
        assert!(from_proc(dir.path(), 43).is_err(), "a gone pid");
    }

    #[test]
    fn ps_elapsed_times() {
        assert_eq!(parse_etime("00:07"), Some(7));
        assert_eq!(parse_etime("  12:34"), Some(754));
        assert_eq!(parse_etime("01:02:03"), Some(3723));
        assert_eq!(parse_etime("3-01:02:03"), Some(3 * 86400 + 3723));
        assert_eq!(parse_etime("61:00"), None);
        assert_eq!(parse_etime("soon"), None);
        assert_eq!(parse_etime("1:2:3:4"), None);
    }

    /// The `ps` path (macOS's) against this machine's own `ps`, which takes the same flags: it
    /// agrees with `/proc` about this test's process and leaves a pid that is gone out.
    #[tokio::test]
    async fn ps_and_proc_agree_about_a_live_process() {
        let Ok(ps) = which::which("ps") else {
            assert!(
                std::env::var("CI").map_or(true, |v| v != "true"),
                "ps (procps) is not installed: CI=true never skips this"
            );
            eprintln!("SKIPPED: no ps on this machine (install procps)");
            return;
        };
        let me = std::process::id();
        let gone = u32::try_from(i32::MAX).unwrap();
        let seen = from_ps(&ps, &[me, gone], Duration::from_secs(10))
            .await
            .unwrap();
        let by_proc = from_proc(Path::new("/proc"), me).unwrap();
        let by_ps = seen[&me];
        assert!(
            by_ps.abs_diff(by_proc) <= 2,
            "ps {by_ps} s, /proc {by_proc} s"
        );
        assert!(!seen.contains_key(&gone), "{seen:?}");
        assert!(from_ps(&ps, &[], Duration::from_secs(1))
            .await
            .unwrap()
            .is_empty());
    }
}
