//! End to end: `joelclaw-node run` on the demo inventory as a subprocess. A child killed with
//! SIGKILL is detected and healed (`heal.succeeded` in the JSON lines); SIGTERM to the agent
//! leaves no child behind.

mod common;
use common::{alive, published_pid};

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Kills the agent if a test panics before it stops it, so a failure leaves nothing running.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_killed_child_is_healed_and_sigterm_leaves_no_child() {
    let state = tempfile::tempdir().unwrap();
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/demo.toml");
    let agent = Command::new(env!("CARGO_BIN_EXE_joelclaw-node"))
        .args(["run", "--inventory"])
        .arg(&demo)
        .arg("--state-dir")
        .arg(state.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the agent");
    let mut agent = KillOnDrop(agent);
    let (tx, rx) = mpsc::channel::<serde_json::Value>();
    let stdout = agent.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Ok(v) = serde_json::from_str(&line) {
                let _ = tx.send(v);
            }
        }
    });

    let victim = sysutil::poll::until_blocking("demo-web running", Duration::from_secs(30), || {
        published_pid(state.path(), "demo-web")
    });
    let mut children = vec![victim];
    children.extend(
        ["demo-flaky", "demo-wedged"]
            .iter()
            .filter_map(|l| published_pid(state.path(), l)),
    );
    let killed_at_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    kill(Pid::from_raw(victim as i32), Signal::SIGKILL).unwrap();

    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    let healed = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(ev) = rx.recv_timeout(left) else {
            break false;
        };
        if ev["service"] == "demo-web" {
            seen.push(ev["event"].as_str().unwrap_or("?").to_string());
            // Every event carries the telemetry tags.
            for tag in ["node_id", "platform", "adapter_type", "class"] {
                assert!(!ev[tag].is_null(), "{tag} missing in {ev}");
            }
            if ev["event"] == "heal.succeeded" {
                // A measurement, not an assertion (shared machines are noisy): run with
                // `--nocapture` to see it.
                let at = ev["at_ms"].as_u64().unwrap_or(killed_at_ms);
                println!(
                    "kill -9 -> heal.succeeded: {} ms (demo: interval 2s, failures_to_down 2)",
                    at.saturating_sub(killed_at_ms)
                );
                assert_eq!(ev["step"], "restart", "{ev}");
                assert_eq!(ev["node_id"], "demo");
                assert_eq!(ev["adapter_type"], "embedded");
                break true;
            }
        }
    };
    assert!(
        healed,
        "no heal.succeeded for demo-web; its events: {seen:?}"
    );
    assert_eq!(
        seen.first().map(String::as_str),
        Some("probe.failed"),
        "{seen:?}"
    );
    assert!(seen.contains(&"heal.started".to_string()), "{seen:?}");
    let new_pid = sysutil::poll::until_blocking("demo-web back", Duration::from_secs(10), || {
        published_pid(state.path(), "demo-web").filter(|p| *p != victim)
    });
    children.push(new_pid);
    for label in ["demo-flaky", "demo-wedged"] {
        if let Some(p) = published_pid(state.path(), label) {
            children.push(p);
        }
    }

    kill(Pid::from_raw(agent.0.id() as i32), Signal::SIGTERM).unwrap();
    let status =
        sysutil::poll::until_blocking("the agent to exit", Duration::from_secs(30), || {
            agent.0.try_wait().unwrap()
        });
    assert!(status.success(), "agent exit after SIGTERM: {status:?}");
    for pid in children {
        sysutil::poll::until_blocking(&format!("child {pid} gone"), Duration::from_secs(5), || {
            (!alive(pid)).then_some(())
        });
    }
    // Nothing left in the agent's process groups either: every demo-service is gone.
    let left: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains("demo-service") && c.contains("--port 1860"))
        .collect();
    assert!(left.is_empty(), "demo services left behind: {left:?}");
}

#[test]
fn an_agent_killed_with_sigkill_leaves_no_orphans() {
    let state = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Its own ports, so it can run beside the demo test.
    let demo = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/demo.toml"),
    )
    .unwrap()
    .replace("1860", "1870");
    let inv = dir.path().join("demo.toml");
    std::fs::write(&inv, demo).unwrap();
    let agent = Command::new(env!("CARGO_BIN_EXE_joelclaw-node"))
        .args(["run", "--inventory"])
        .arg(&inv)
        .arg("--state-dir")
        .arg(state.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the agent");
    let mut agent = KillOnDrop(agent);
    let children: Vec<u32> = ["demo-web", "demo-flaky", "demo-wedged"]
        .iter()
        .map(|l| {
            sysutil::poll::until_blocking(&format!("{l} running"), Duration::from_secs(30), || {
                published_pid(state.path(), l)
            })
        })
        .collect();
    agent.0.kill().unwrap(); // SIGKILL: no chance to stop its children itself
    agent.0.wait().unwrap();
    for pid in children {
        sysutil::poll::until_blocking(
            &format!("child {pid} gone after the agent died"),
            Duration::from_secs(10),
            || (!alive(pid)).then_some(()),
        );
    }
}

/// Row "two `run` on one state folder": the second is refused at once, naming the first's pid,
/// and starts nothing.
#[test]
fn a_second_agent_on_one_state_folder_is_refused_naming_the_first() {
    let state = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let demo = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/demo.toml"),
    )
    .unwrap()
    .replace("1860", "1880");
    let inv = dir.path().join("demo.toml");
    std::fs::write(&inv, demo).unwrap();
    let start = || {
        Command::new(env!("CARGO_BIN_EXE_joelclaw-node"))
            .args(["run", "--inventory"])
            .arg(&inv)
            .arg("--state-dir")
            .arg(state.path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the agent")
    };
    let first = KillOnDrop(start());
    let web = sysutil::poll::until_blocking("demo-web running", Duration::from_secs(30), || {
        published_pid(state.path(), "demo-web")
    });
    let second = start().wait_with_output().expect("the second agent ends");
    assert_eq!(second.status.code(), Some(2), "{second:?}");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains(&format!("pid {}", first.0.id())),
        "names the holder: {stderr}"
    );
    assert_eq!(
        published_pid(state.path(), "demo-web"),
        Some(web),
        "the first agent's child is untouched"
    );
}

/// On a terminal, `run` prints human lines only: no JSON line on stdout (the same events would
/// otherwise show twice), and no envelope mixed in at exit. Run under `script`, which gives it
/// a pseudo-terminal.
#[test]
fn run_on_a_terminal_prints_no_json_lines() {
    let state = tempfile::tempdir().unwrap();
    // Its own ports: the first test counts every demo service on the demo's ports as its own.
    let demo = state.path().join("demo.toml");
    std::fs::write(
        &demo,
        std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/demo.toml"),
        )
        .unwrap()
        .replace("1860", "1890"),
    )
    .unwrap();
    let typescript = state.path().join("terminal.txt");
    let line = format!(
        "RUST_LOG=info {} run --inventory {} --state-dir {}",
        env!("CARGO_BIN_EXE_joelclaw-node"),
        demo.display(),
        state.path().join("s").display()
    );
    let agent = Command::new("script")
        .args(["-q", "-e", "-c", &line])
        .arg(&typescript)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("script(1) from util-linux");
    let mut agent = KillOnDrop(agent);
    let pid = sysutil::poll::until_blocking("demo-web running", Duration::from_secs(30), || {
        published_pid(&state.path().join("s"), "demo-web")
    });
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
    // The heal shows as a human line on the terminal.
    sysutil::poll::until_blocking("the heal on the terminal", Duration::from_secs(60), || {
        let seen = std::fs::read_to_string(&typescript).ok()?;
        seen.contains("heal.succeeded").then_some(())
    });
    let agent_pid =
        sysutil::poll::until_blocking("the agent's pid", Duration::from_secs(5), || {
            std::fs::read_to_string(state.path().join("s/agent.lock"))
                .ok()?
                .trim()
                .parse::<i32>()
                .ok()
        });
    kill(Pid::from_raw(agent_pid), Signal::SIGTERM).unwrap();
    let _ = agent.0.wait();
    let seen = std::fs::read_to_string(&typescript).unwrap();
    let json_lines: Vec<&str> = seen
        .lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .collect();
    assert!(json_lines.is_empty(), "JSON on a terminal: {json_lines:?}");
}
