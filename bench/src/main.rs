//! The heal loop side by side with systemd, Docker and monit, on this machine, in one run:
//! (a) kill -9 → answering again, (b) hang (SIGSTOP) → answering again, (c) CPU per HTTP probe
//! and RSS at 50/200/1000 services, (d) `status` of 200 systemd units (with and without an
//! agent running), (e) a systemd unit left `failed` by its start limit → answering again. Run
//! it with `bench/run`
//! (which builds it and the agent); it prints the table and writes it to `--out`.
//!
//! Needs root, the harness's systemd container (`JOELCLAW_TEST_SYSTEMD_PID`), optionally its
//! dockerd (`JOELCLAW_TEST_DOCKER_HOST`, `JOELCLAW_TEST_DOCKER_IMAGE`) and `monit`; a peer
//! that is missing is left out of the table and named.

mod http;
mod load;
mod peers;
mod procs;
mod start_limit;
mod status;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use peers::{Container, Peer};

/// Settings from the command line and the environment.
struct Settings {
    agent: PathBuf,
    out: Option<PathBuf>,
    samples: usize,
    parts: String,
    /// Longest wait for a heal before a sample is "never".
    cap: Duration,
    /// Least time between two kills of one peer: Docker's restart back-off resets after 10 s
    /// of running, the agent's after 10 s healthy (`stable_after`, counted from its second
    /// passing probe); systemd's start limit is off for its peer.
    spacing: Duration,
    work: PathBuf,
}

fn settings() -> Settings {
    let mut args = std::env::args().skip(1);
    let mut s = Settings {
        agent: PathBuf::from("target/release/joelclaw-node"),
        out: None,
        samples: 10,
        parts: "abcde".into(),
        cap: Duration::from_secs(60),
        spacing: Duration::from_secs(15),
        work: std::env::temp_dir().join("joelclaw-bench"),
    };
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--agent" => s.agent = PathBuf::from(value()),
            "--out" => s.out = Some(PathBuf::from(value())),
            "-n" | "--samples" => s.samples = value().parse().expect("a number"),
            "--parts" => s.parts = value(),
            "--cap" => s.cap = Duration::from_secs(value().parse().expect("seconds")),
            "--spacing" => s.spacing = Duration::from_secs(value().parse().expect("seconds")),
            "--work" => s.work = PathBuf::from(value()),
            other => panic!("unknown argument {other}"),
        }
    }
    s
}

/// Samples of one measurement, in milliseconds; a `None` never happened within the cap.
pub(crate) struct Series {
    pub(crate) what: String,
    pub(crate) samples: Vec<Option<f64>>,
}

impl Series {
    fn sorted(&self) -> Vec<f64> {
        let mut v: Vec<f64> = self.samples.iter().flatten().copied().collect();
        v.sort_by(f64::total_cmp);
        v
    }

    /// Nearest-rank percentile of the samples that happened.
    pub(crate) fn pct(&self, p: f64) -> Option<f64> {
        let v = self.sorted();
        if v.is_empty() || v.len() < self.samples.len() {
            return None;
        }
        let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
        v.get(rank - 1).copied()
    }

    pub(crate) fn row(&self, unit: &str) -> String {
        let cell = |v: Option<f64>| v.map_or("never".to_string(), |v| format!("{v:.1}"));
        let missed = self.samples.iter().filter(|s| s.is_none()).count();
        format!(
            "| {} | {} | {} | {} | {} |{}",
            self.what,
            self.samples.len(),
            cell(self.pct(50.0)),
            cell(self.pct(90.0)),
            cell(self.sorted().last().copied().filter(|_| missed == 0)),
            if missed > 0 {
                format!(
                    " {missed} of {} not within the cap ({unit})",
                    self.samples.len()
                )
            } else {
                String::new()
            }
        )
    }
}

/// A table of series with each one's p50 as a ratio to every other's.
pub(crate) fn table(title: &str, unit: &str, series: &[Series]) -> String {
    let mut t = format!(
        "\n### {title}\n\n| what | n | p50 {unit} | p90 {unit} | max {unit} |\n|---|---|---|---|---|\n"
    );
    for s in series {
        t.push_str(&s.row(unit));
        t.push('\n');
    }
    let ratios: Vec<String> = series
        .iter()
        .flat_map(|a| {
            series.iter().filter_map(move |b| {
                if std::ptr::eq(a, b) || !a.what.starts_with("agent") || b.what.starts_with("agent")
                {
                    return None;
                }
                match (a.pct(50.0), b.pct(50.0)) {
                    (Some(x), Some(y)) if y > 0.0 => {
                        Some(format!("- {} / {}: {:.2}×", a.what, b.what, x / y))
                    }
                    _ => None,
                }
            })
        })
        .collect();
    if !ratios.is_empty() {
        t.push_str("\np50 ratios (agent / peer, same run):\n\n");
        t.push_str(&ratios.join("\n"));
        t.push('\n');
    }
    t
}

/// Waits until the peer answers with a server up for at least `up_for`; `false` when it does
/// not answer within two minutes (it gave up: the rest of its samples are "never").
fn settle(peer: &Peer, up_for: Duration) -> bool {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !peer.prober.answers(peer.port) {
        if Instant::now() > deadline {
            eprintln!(
                "{} does not answer on {}: left out from here",
                peer.name, peer.port
            );
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(up_for);
    true
}

/// One fault: `sig` to the server, then the time until a new server answers.
fn fault(peer: &Peer, sig: Signal, cap: Duration) -> Option<f64> {
    let Some(pid) = peer.server_pid() else {
        eprintln!("{}: no server process found", peer.name);
        return None;
    };
    let start = Instant::now();
    procs::signal(pid, sig);
    let took = peer.prober.wait_answering(peer.port, start, cap, move || {
        // Answered by a new process, not by the one just signalled.
        sig != Signal::SIGKILL || !procs::alive(pid)
    });
    if took.is_none() {
        // Not healed within the cap: bring it back (the stopped one killed, its supervisor
        // restarts it) for the next sample.
        procs::signal(pid, Signal::SIGCONT);
        procs::signal(pid, Signal::SIGKILL);
    }
    took.map(|d| d.as_secs_f64() * 1000.0)
}

fn faults(peers: &[Peer], s: &Settings, sig: Signal, label: &str) -> Vec<Series> {
    let mut out: Vec<Series> = peers
        .iter()
        .map(|p| Series {
            what: p.name.to_string(),
            samples: Vec::new(),
        })
        .collect();
    let mut given_up = vec![false; peers.len()];
    for round in 0..s.samples {
        let round_start = Instant::now();
        for (i, peer) in peers.iter().enumerate() {
            // A peer that never heals a hang is shown once, not waited for ten times.
            if sig == Signal::SIGSTOP && !peer.heals_hang && round > 0 {
                continue;
            }
            if given_up[i] || !settle(peer, Duration::from_millis(500)) {
                given_up[i] = true;
                out[i].samples.push(None);
                continue;
            }
            let cap = if sig == Signal::SIGSTOP && !peer.heals_hang {
                Duration::from_secs(15)
            } else {
                s.cap
            };
            let took = fault(peer, sig, cap);
            eprintln!(
                "{label} round {round} {}: {}",
                peer.name,
                took.map_or("never".into(), |t| format!("{t:.1} ms"))
            );
            out[i].samples.push(took);
        }
        let spent = round_start.elapsed();
        if spent < s.spacing && round + 1 < s.samples {
            std::thread::sleep(s.spacing - spent);
        }
    }
    out
}

/// The load average (1, 5, 15 min) now: the machine is shared, and every row says what else ran.
pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|t| t.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// A part's closing line: the load average before and after it.
fn loaded(before: &str) -> String {
    format!(
        "\nLoad average (1/5/15 min): {before} before this part, {} after.\n",
        load_average()
    )
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_string())
        })
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024 / 1024);
    let kernel = procs::run(&["uname", "-r"]);
    let systemd = procs::run(&["systemctl", "--version"]);
    format!(
        "{cores} cores ({cpu}), {mem} GiB, Linux {}, {}",
        String::from_utf8_lossy(&kernel.stdout).trim(),
        String::from_utf8_lossy(&systemd.stdout)
            .lines()
            .next()
            .unwrap_or("")
    )
}

fn main() {
    let s = settings();
    let systemd_pid: u32 = std::env::var("JOELCLAW_TEST_SYSTEMD_PID")
        .ok()
        .and_then(|p| p.parse().ok())
        .expect("JOELCLAW_TEST_SYSTEMD_PID: the harness's systemd container (scripts/test)");
    let c = Container { pid: systemd_pid };
    let _ = std::fs::remove_dir_all(&s.work);
    std::fs::create_dir_all(&s.work).unwrap();
    let agent = std::fs::canonicalize(&s.agent).expect("the agent binary (build it first)");
    let mut report = format!(
        "## Run of {}\n\nMachine: {}. Agent: `{}`. n = {} per row unless a row says otherwise; times in ms.\n",
        procs::run_ok(&["date", "-u", "+%Y-%m-%d %H:%M UTC"]).trim(),
        machine(),
        agent.display(),
        s.samples
    );
    let mut missing = Vec::new();

    if s.parts.contains('a') || s.parts.contains('b') {
        let mut peers = vec![peers::systemd_restart(&c, 18081)];
        match (
            std::env::var("JOELCLAW_TEST_DOCKER_HOST"),
            std::env::var("JOELCLAW_TEST_DOCKER_IMAGE"),
        ) {
            (Ok(host), Ok(image)) => match peers::docker(&host, &image, 18082) {
                Some(p) => peers.push(p),
                None => missing.push("Docker (its daemon did not answer)"),
            },
            _ => missing.push("Docker (JOELCLAW_TEST_DOCKER_HOST not set)"),
        }
        match peers::monit(&s.work.join("monit"), 18083) {
            Some(p) => peers.push(p),
            None => missing.push("monit (not installed)"),
        }
        peers.push(peers::agent_embedded(
            &agent,
            &s.work.join("agent-embedded"),
            18084,
            None,
            "agent embedded (defaults)",
        ));
        peers.push(peers::agent_embedded(
            &agent,
            &s.work.join("agent-embedded-2f"),
            18086,
            Some("[heal]\nfailures_to_down = 2\n"),
            "agent embedded (failures_to_down = 2)",
        ));
        peers.push(peers::agent_systemd(&c, &agent, 18085, None));
        if s.parts.contains('a') {
            let before = load_average();
            let series = faults(&peers, &s, Signal::SIGKILL, "kill");
            report.push_str(&table("(a) kill -9 → answering again", "ms", &series));
            report.push_str(&loaded(&before));
        }
        if s.parts.contains('b') {
            let before = load_average();
            let series = faults(&peers, &s, Signal::SIGSTOP, "hang");
            report.push_str(&table(
                "(b) hang (SIGSTOP) → answering again (systemd and Docker: one sample, 15 s cap)",
                "ms",
                &series,
            ));
            report.push_str(&loaded(&before));
        }
        for p in &mut peers {
            p.teardown();
        }
    }
    if s.parts.contains('c') {
        let before = load_average();
        report.push_str(&load::run(&agent, &s.work.join("load"), &s));
        report.push_str(&loaded(&before));
    }
    if s.parts.contains('d') {
        let before = load_average();
        report.push_str(&status::run(&c, &agent, s.samples));
        report.push_str(&loaded(&before));
    }
    if s.parts.contains('e') {
        let before = load_average();
        report.push_str(&start_limit::run(&c, &agent, 18087, s.samples));
        report.push_str(&loaded(&before));
    }
    if !missing.is_empty() {
        report.push_str(&format!("\nLeft out: {}.\n", missing.join("; ")));
    }
    println!("{report}");
    if let Some(out) = &s.out {
        procs::write(out, &report);
    }
}
