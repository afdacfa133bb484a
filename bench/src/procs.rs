//! Processes as the host sees them: finding a measured server by its command line, whether a
//! pid is still a live process, its CPU time and memory, and commands run for setup.

use std::path::Path;
use std::process::{Command, Output};

/// Host pids whose command line holds `marker`, roots only: busybox httpd forks a child per
/// connection with the same command line, and the one that matters is the listener.
pub(crate) fn find_root(marker: &str) -> Option<i32> {
    let mut found: Vec<(i32, i32)> = Vec::new();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        // A shell that started it (monit's start program) or the nsenter that entered the
        // container for it names it too: skip those.
        if cmdline.contains(marker)
            && !cmdline.starts_with("/bin/sh")
            && !cmdline.starts_with("nsenter")
        {
            if let Some(stat) = stat(pid) {
                if stat.state != 'Z' {
                    found.push((pid, stat.ppid));
                }
            }
        }
    }
    let pids: Vec<i32> = found.iter().map(|(p, _)| *p).collect();
    found
        .iter()
        .find(|(_, ppid)| !pids.contains(ppid))
        .map(|(p, _)| *p)
}

/// Fields of `/proc/<pid>/stat` the benchmark reads.
pub(crate) struct Stat {
    pub(crate) state: char,
    pub(crate) ppid: i32,
    /// utime + stime, in clock ticks.
    pub(crate) cpu_ticks: u64,
    /// Resident pages.
    pub(crate) rss_pages: u64,
}

pub(crate) fn stat(pid: i32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last `)`.
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(Stat {
        state: f.first()?.chars().next()?,
        ppid: f.get(1)?.parse().ok()?,
        cpu_ticks: f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?,
        rss_pages: f.get(21)?.parse().ok()?,
    })
}

/// Whether `pid` is a process that has not exited (a zombie has).
pub(crate) fn alive(pid: i32) -> bool {
    stat(pid).is_some_and(|s| s.state != 'Z')
}

/// The pids of `pid` and all its descendants.
pub(crate) fn tree(pid: i32) -> Vec<i32> {
    let mut all: Vec<(i32, i32)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            if let Ok(p) = e.file_name().to_string_lossy().parse::<i32>() {
                if let Some(s) = stat(p) {
                    all.push((p, s.ppid));
                }
            }
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let parent = out[i];
        out.extend(all.iter().filter(|(_, pp)| *pp == parent).map(|(p, _)| *p));
        i += 1;
    }
    out
}

pub(crate) fn signal(pid: i32, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
}

/// Runs `argv`, its output whatever its status.
pub(crate) fn run(argv: &[&str]) -> Output {
    Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .unwrap_or_else(|e| panic!("{argv:?}: {e}"))
}

/// Runs `argv` and panics on a non-zero exit.
pub(crate) fn run_ok(argv: &[&str]) -> String {
    let out = run(argv);
    assert!(
        out.status.success(),
        "{argv:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Writes `text` to `path`, making its folder.
pub(crate) fn write(path: &Path, text: &str) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// Clock ticks per second (for CPU times).
pub(crate) fn ticks_per_second() -> u64 {
    let out = run(&["getconf", "CLK_TCK"]);
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(100)
}
