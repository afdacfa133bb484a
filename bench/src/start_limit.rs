//! (e) A systemd unit left `failed` by its start limit → answering again, with the agent on
//! systemd (inside the container) keeping it: the unit restarts itself (`Restart=always`,
//! `RestartSec=0`) until `StartLimitBurst=3` is hit, systemd leaves it `failed`
//! (`Result=start-limit-hit`) and the agent, told over D-Bus, resets and starts it.
//!
//! Timed from systemd's own record of entering `failed` (`InactiveEnterTimestampMonotonic`, on
//! the clock `CLOCK_MONOTONIC` shared with the host) to the first answer from a new server.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::time::{clock_gettime, ClockId};

use crate::http::Prober;
use crate::peers::{stop_child, Container, BUSYBOX};
use crate::procs::{self, find_root, write};
use crate::{table, Series};

const UNIT: &str = "joelclaw-bench-limit.service";
const LABEL: &str = "joelclaw-bench-limit";
const INSIDE: &str = "/run/joelclaw-bench-limit";

fn monotonic_us() -> u64 {
    let t = clock_gettime(ClockId::CLOCK_MONOTONIC).expect("CLOCK_MONOTONIC");
    t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1000
}

/// `ActiveState` and `InactiveEnterTimestampMonotonic` (µs) in one `systemctl show`: the
/// timestamp is read while the unit is still `failed` (a reset unit is unloaded and forgets it).
fn state_and_failed_at(c: &Container) -> (String, u64) {
    let out = c.run_ok(&[
        "systemctl",
        "show",
        "-p",
        "ActiveState",
        "-p",
        "InactiveEnterTimestampMonotonic",
        UNIT,
    ]);
    let value = |key: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or("")
            .to_string()
    };
    (
        value("ActiveState"),
        value("InactiveEnterTimestampMonotonic")
            .parse()
            .unwrap_or(0),
    )
}

/// Kills the unit's server until systemd refuses to start it again: the pid killed last and
/// when the unit entered `failed` (µs, `CLOCK_MONOTONIC`).
fn drive_into_failed(c: &Container, marker: &str) -> Option<(i32, u64)> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = None;
    while Instant::now() < deadline {
        let (state, failed_at) = state_and_failed_at(c);
        if state == "failed" {
            return last.map(|pid| (pid, failed_at));
        }
        match find_root(marker) {
            Some(pid) if Some(pid) != last => {
                procs::signal(pid, Signal::SIGKILL);
                last = Some(pid);
            }
            _ => std::thread::sleep(Duration::from_millis(2)),
        }
    }
    None
}

pub(crate) fn run(c: &Container, agent: &Path, port: u16, n: usize) -> String {
    c.run_ok(&[
        "sh",
        "-c",
        "mkdir -p /run/bench-www && echo ok > /run/bench-www/index.html",
    ]);
    let exec = format!("{BUSYBOX} httpd -f -p 127.0.0.1:{port} -h /run/bench-www");
    c.start_unit(
        UNIT,
        &format!(
            "[Unit]\nStartLimitIntervalSec=60\nStartLimitBurst=3\n[Service]\nExecStart={exec}\nRestart=always\nRestartSec=0\n"
        ),
    );
    let _ = std::fs::remove_dir_all(c.path(&format!("{INSIDE}/state")));
    std::fs::create_dir_all(c.path(INSIDE)).unwrap();
    let _ = std::fs::remove_file(c.path(&format!("{INSIDE}/joelclaw-node")));
    std::fs::copy(agent, c.path(&format!("{INSIDE}/joelclaw-node"))).unwrap();
    write(
        &c.path(&format!("{INSIDE}/inventory.toml")),
        &format!(
            "[node]\nid = \"bench\"\nrole = \"fleet\"\nlog_dir = \"{INSIDE}/logs\"\n\n\
             [[service]]\nlabel = \"{LABEL}\"\nmanager = \"systemd\"\nclass = \"service-critical\"\n\n\
             [[service.probe]]\nkind = \"process\"\n\n\
             [[service.probe]]\nkind = \"http\"\nendpoints = [{{ class = \"localhost\", url = \"http://127.0.0.1:{port}/\" }}]\n",
        ),
    );
    let child = c.run_agent(
        INSIDE,
        Stdio::null(),
        std::fs::File::create(c.path(&format!("{INSIDE}/agent.err")))
            .unwrap()
            .into(),
    );
    let prober = Prober::in_netns_of(c.pid);
    let marker = format!("-p 127.0.0.1:{port}");
    let mut samples = Vec::new();
    for round in 0..n {
        // Answering, and up long enough that the agent's start grace is over.
        let settle = Instant::now();
        while !prober.answers(port) && settle.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(50));
        }
        // Healthy longer than the agent's `stable_after` (10 s): each sample is a new episode.
        std::thread::sleep(Duration::from_secs(12));
        let Some((killed, failed_at)) = drive_into_failed(c, &marker) else {
            eprintln!("start limit round {round}: the unit never reached failed");
            samples.push(None);
            continue;
        };
        let (mono0, start) = (monotonic_us(), Instant::now());
        let took = prober.wait_answering(port, start, Duration::from_secs(30), move || {
            !procs::alive(killed)
        });
        let sample = took.filter(|_| failed_at > 0).map(|d| {
            let answered = mono0 + d.as_micros() as u64;
            answered.saturating_sub(failed_at) as f64 / 1000.0
        });
        eprintln!(
            "start limit round {round}: {}",
            sample.map_or("never".into(), |t| format!("{t:.1} ms"))
        );
        samples.push(sample);
    }
    if let Some(p) = find_root(&format!("{INSIDE}/inventory.toml")) {
        procs::signal(p, Signal::SIGTERM);
        std::thread::sleep(Duration::from_secs(2));
        if procs::alive(p) {
            procs::signal(p, Signal::SIGKILL);
        }
    }
    stop_child(child);
    c.remove_unit(UNIT);
    table(
        "(e) a systemd unit left failed by its start limit → answering again (from systemd's own failed timestamp)",
        "ms",
        &[Series {
            what: "agent on systemd (pushed `failed` over D-Bus)".into(),
            samples,
        }],
    )
}
