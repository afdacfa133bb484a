//! (c) CPU per HTTP probe and RSS at 50/200/1000 services, 1 s rounds, for the agent (its
//! embedded supervisor keeping a `sleep` per service, each service probed by HTTP) and monit
//! (a `check host` per service, HTTP, 1 s cycle). Every probe goes to one counting server in
//! this process, on a fresh connection, so the count says how many probes were made and the
//! shortfall against one per service per second is the missed cycles.

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::peers::{stop_child, which};
use crate::procs::{self, write};
use crate::Settings;

const SIZES: [usize; 3] = [50, 200, 1000];
const WARMUP: Duration = Duration::from_secs(8);
/// The longest wait for a peer's first probe (the agent starts its N children first).
const FIRST_PROBE_CAP: Duration = Duration::from_secs(120);
const WINDOW: Duration = Duration::from_secs(30);

/// An HTTP server that answers every request with 200 and counts them.
fn counting_server() -> (u16, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicU64::new(0));
    let counted = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut s = stream;
            let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n");
            counted.fetch_add(1, Ordering::Relaxed);
        }
    });
    (port, count)
}

struct Measured {
    cpu_ms_per_probe: f64,
    rss_mb: f64,
    probes: u64,
    expected: u64,
}

/// Starts `child`, waits for its first probe and then the warm-up, measures its own CPU time
/// and RSS (not its children's) over the window against the server's count, and stops it.
/// The warm-up counts from the first probe: the agent starts its N children before its first
/// round (seconds at 1,000 on a loaded machine), which is neither probing nor a missed cycle.
fn measure(mut child: Child, count: &AtomicU64, services: usize, tck: u64) -> Option<Measured> {
    let before = count.load(Ordering::Relaxed);
    let waiting = Instant::now();
    while count.load(Ordering::Relaxed) == before && waiting.elapsed() < FIRST_PROBE_CAP {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(WARMUP);
    let pid = child.id() as i32;
    if let Ok(Some(status)) = child.try_wait() {
        eprintln!("exited during warm-up: {status}");
        return None;
    }
    let cpu0 = procs::stat(pid)?.cpu_ticks;
    let n0 = count.load(Ordering::Relaxed);
    let start = Instant::now();
    std::thread::sleep(WINDOW);
    let st = procs::stat(pid)?;
    let probes = count.load(Ordering::Relaxed) - n0;
    let secs = start.elapsed().as_secs_f64();
    // What it started is stopped with it (the agent's embedded children), whatever it does.
    let tree = procs::tree(pid);
    stop_child(child);
    for p in tree {
        if procs::alive(p) {
            procs::signal(p, nix::sys::signal::Signal::SIGKILL);
        }
    }
    let page_kb = 4.0;
    Some(Measured {
        cpu_ms_per_probe: ((st.cpu_ticks - cpu0) as f64 * 1000.0 / tck as f64)
            / probes.max(1) as f64,
        rss_mb: st.rss_pages as f64 * page_kb / 1024.0,
        probes,
        expected: (services as f64 * secs) as u64,
    })
}

fn agent(agent: &Path, dir: &Path, services: usize, port: u16) -> Child {
    let mut inv = format!(
        "[node]\nid = \"bench\"\nrole = \"fleet\"\nlog_dir = \"{}\"\n\n[loop]\ninterval = \"1s\"\nprobe_timeout = \"1s\"\n",
        dir.join("logs").display()
    );
    for i in 0..services {
        inv.push_str(&format!(
            "\n[[service]]\nlabel = \"load-{i:04}\"\nmanager = \"embedded\"\nclass = \"app-level\"\n\n\
             [[service.probe]]\nkind = \"http\"\nendpoints = [{{ class = \"localhost\", url = \"http://127.0.0.1:{port}/\" }}]\n\n\
             [service.config]\nprogram = \"/bin/sleep\"\nargs = [\"infinity\"]\n"
        ));
    }
    let file = dir.join("inventory.toml");
    write(&file, &inv);
    Command::new(agent)
        .args(["run", "--inventory"])
        .arg(&file)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("agent.err")).unwrap())
        .spawn()
        .expect("joelclaw-node run")
}

fn monit(monit: &Path, dir: &Path, services: usize, port: u16) -> Child {
    let mut rc = format!(
        "set daemon 1\nset logfile {d}/monit.log\nset pidfile {d}/monit.pid\nset idfile {d}/monit.id\nset statefile {d}/monit.state\n",
        d = dir.display()
    );
    for i in 0..services {
        rc.push_str(&format!(
            "check host load-{i:04} with address 127.0.0.1\n  if failed port {port} protocol http with timeout 1 seconds then alert\n"
        ));
    }
    let file = dir.join("monitrc");
    write(&file, &rc);
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    Command::new(monit)
        .args(["-I", "-c"])
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("monit")
}

pub(crate) fn run(agent_bin: &Path, dir: &Path, _s: &Settings) -> String {
    let tck = procs::ticks_per_second();
    let (port, count) = counting_server();
    let monit_bin = which("monit");
    let mut t = format!(
        "\n### (c) CPU per HTTP probe and RSS, 1 s rounds ({}s window after {}s warm-up from the first probe)\n\n\
         | services | who | CPU ms/probe | RSS MB | probes | expected | missed |\n|---|---|---|---|---|---|---|\n",
        WINDOW.as_secs(),
        WARMUP.as_secs()
    );
    let mut ratios = Vec::new();
    for services in SIZES {
        let d = dir.join(format!("agent-{services}"));
        let a = measure(agent(agent_bin, &d, services, port), &count, services, tck);
        let m = monit_bin.as_ref().and_then(|bin| {
            let d = dir.join(format!("monit-{services}"));
            measure(monit(bin, &d, services, port), &count, services, tck)
        });
        for (who, r) in [("agent", &a), ("monit", &m)] {
            match r {
                Some(r) => t.push_str(&format!(
                    "| {services} | {who} | {:.3} | {:.1} | {} | {} | {} |\n",
                    r.cpu_ms_per_probe,
                    r.rss_mb,
                    r.probes,
                    r.expected,
                    r.expected.saturating_sub(r.probes)
                )),
                None => t.push_str(&format!("| {services} | {who} | - | - | - | - | - |\n")),
            }
        }
        if let (Some(a), Some(m)) = (&a, &m) {
            ratios.push(format!(
                "- {services} services: agent / monit CPU per probe {:.2}×",
                a.cpu_ms_per_probe / m.cpu_ms_per_probe
            ));
        }
    }
    if !ratios.is_empty() {
        t.push('\n');
        t.push_str(&ratios.join("\n"));
        t.push('\n');
    }
    t
}
