//! Heal hooks end to end through `joelclaw-node run`, on the embedded supervisor and on the
//! real systemd (the agent inside the harness's container): a stale process holding the
//! service's port is freed by a `before_restart` `free-port` hook and the service comes back;
//! an `after_heal` HTTP hook is called exactly once per successful heal, counted by a test
//! server, though the agent is killed in the middle of the heal and started again.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_joelclaw-node");

/// A process killed (SIGKILL, with its process group) and reaped on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let pgid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::SIGKILL);
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Spawns `argv` in its own process group, output to `log`.
fn spawn(argv: &[String], log: &Path) -> Killed {
    use std::os::unix::process::CommandExt;
    let out = std::fs::File::create(log).unwrap();
    let child = Command::new(&argv[0])
        .args(&argv[1..])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    Killed(child)
}

fn events(file: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn count(all: &[serde_json::Value], event: &str, cause: Option<&str>) -> usize {
    all.iter()
        .filter(|e| e["event"] == event && cause.is_none_or(|c| e["cause"] == c))
        .count()
}

/// An HTTP server answering 204 to every request, keeping each request's first line.
#[derive(Clone)]
struct CountingServer {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
}

impl CountingServer {
    fn serve(listener: TcpListener) -> CountingServer {
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&head)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string();
                seen.lock().unwrap().push(line);
                let _ = conn.write_all(
                    b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        CountingServer { port, requests }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// The inventory's service part: `before_restart` frees the port, then writes the attempt to
/// `marks` and takes `linger` (so a test can kill the agent in the middle of the heal);
/// `after_heal` PUTs to the counting server.
fn hooks(port: u16, marks: &Path, linger: &str, counter: u16) -> String {
    format!(
        r#"
[[service.before_restart]]
kind = "free-port"
port = {port}
timeout = "5s"

[[service.before_restart]]
kind = "command"
argv = ["/bin/sh", "-c", "echo $JOELCLAW_ATTEMPT >> {marks}; sleep {linger}"]
timeout = "20s"

[[service.after_heal]]
kind = "http"
method = "PUT"
url = "http://127.0.0.1:{counter}/api/inngest"
timeout = "5s"
"#,
        marks = marks.display()
    )
}

/// The inventory's loop, heal policy and the service (`demo-service` on `port`, process and
/// HTTP probes, the hooks), ending inside its `[service.config]`.
fn worker(
    label: &str,
    manager: &str,
    program: &str,
    port: u16,
    marks: &Path,
    server: &CountingServer,
) -> String {
    format!(
        r#"[loop]
interval = "1s"

[heal]
failures_to_down = 1
passes_to_up = 1
grace = "2s"

[[service]]
label = "{label}"
manager = "{manager}"

[[service.probe]]
kind = "process"

[[service.probe]]
kind = "http"
endpoints = [{{ class = "localhost", url = "http://127.0.0.1:{port}/" }}]
{}
[service.config]
program = "{program}"
args = ["demo-service", "--port", "{port}"]"#,
        hooks(port, marks, "3", server.port)
    )
}

/// The first `before_restart` hook event in `file` succeeded, saying `what`.
fn assert_freed(file: &Path, what: &str) {
    let all = events(file);
    let freed = all
        .iter()
        .find(|e| e["event"] == "hook.succeeded" && e["cause"] == "before_restart")
        .unwrap_or_else(|| panic!("{all:#?}"));
    assert!(freed["detail"].as_str().unwrap().contains(what), "{freed}");
}

/// Waits until `marks` has `lines` lines.
fn wait_for_marks(marks: &Path, lines: usize) {
    sysutil::poll::until_blocking(
        "the before_restart hook's mark",
        Duration::from_secs(90),
        || {
            (std::fs::read_to_string(marks)
                .unwrap_or_default()
                .lines()
                .count()
                >= lines)
                .then_some(())
        },
    );
}

/// Waits for `n` `heal.succeeded` and `n` `after_heal` hook events of `service` in the events
/// files of every agent so far, then a while longer, to see that no more come, and that the
/// server was called exactly `n` times.
fn wait_for_heals(files: &[PathBuf], service: &str, n: usize, server: &CountingServer) {
    let done = || {
        let all: Vec<_> = files
            .iter()
            .flat_map(|f| events(f))
            .filter(|e| e["service"] == service)
            .collect();
        (
            count(&all, "heal.succeeded", None),
            count(&all, "hook.succeeded", Some("after_heal")),
        )
    };
    sysutil::poll::until_blocking(
        "the heal verified and its hook run",
        Duration::from_secs(90),
        || (done() == (n, n)).then_some(()),
    );
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        done(),
        (n, n),
        "{:#?}",
        files.iter().map(|f| events(f)).collect::<Vec<_>>()
    );
    assert_eq!(
        server.requests(),
        vec!["PUT /api/inngest HTTP/1.1".to_string(); n],
        "exactly one call per successful heal"
    );
}

#[test]
fn embedded_a_stale_port_holder_is_freed_and_after_heal_runs_once_across_an_agent_restart() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let port = common::free_port();
    let marks = dir.join("marks");
    let server = CountingServer::serve(TcpListener::bind("127.0.0.1:0").unwrap());
    // The stale process: holds the service's port, accepts and never answers.
    let stranger = spawn(
        &[
            BIN.into(),
            "demo-service".into(),
            "--port".into(),
            port.to_string(),
            "--hang-after".into(),
            "0s".into(),
        ],
        &dir.join("stranger.log"),
    );
    let stranger_pid = stranger.0.id();
    let inventory: PathBuf = dir.join("node.toml");
    std::fs::write(
        &inventory,
        format!(
            "[node]\nid = \"hooks-node\"\n\n{}",
            worker(
                "worker",
                "embedded",
                "${JOELCLAW_NODE_BIN}",
                port,
                &marks,
                &server
            )
        ),
    )
    .unwrap();
    let run = |events: &str| -> Vec<String> {
        [
            BIN,
            "run",
            "--inventory",
            &inventory.display().to_string(),
            "--state-dir",
            &dir.join("state").display().to_string(),
            "--events",
            &dir.join(events).display().to_string(),
        ]
        .map(String::from)
        .to_vec()
    };
    let files = [dir.join("first.jsonl"), dir.join("second.jsonl")];
    // The worker cannot bind (the stranger has its port): the agent frees the port and
    // restarts it; the heal is verified and after_heal called once.
    let first = spawn(&run("first.jsonl"), &dir.join("first.log"));
    wait_for_heals(&files, "worker", 1, &server);
    assert!(
        !common::alive(stranger_pid),
        "the free-port hook stopped the stranger"
    );
    assert_freed(
        &files[0],
        &format!("port {port} freed: stopped pid {stranger_pid} ("),
    );

    // The worker is killed; the agent is killed while the next attempt's before_restart hook
    // runs (the middle of the heal).
    let worker = common::published_pid(&dir.join("state"), "worker").expect("the worker's pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(worker as i32),
        nix::sys::signal::SIGKILL,
    )
    .unwrap();
    wait_for_marks(&marks, 2);
    drop(first);

    // The next agent starts the worker, finds attempt 2 on disk and verifies it: one more
    // heal, one more call; no hook runs twice.
    let _second = spawn(&run("second.jsonl"), &dir.join("second.log"));
    wait_for_heals(&files, "worker", 2, &server);
    assert_eq!(std::fs::read_to_string(&marks).unwrap(), "1\n2\n");
    let answer = http_get(port);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

fn http_get(port: u16) -> String {
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    let _ = conn.read_to_string(&mut answer);
    answer
}

/// The agent's folder inside the systemd container, as the host reaches it.
fn inside(pid: &str, path: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/root{path}"))
}

/// Binds a loopback listener inside the network namespace of process `pid`.
fn listen_in_netns_of(pid: &str) -> TcpListener {
    let pid = pid.to_string();
    std::thread::spawn(move || {
        let ns = std::fs::File::open(format!("/proc/{pid}/ns/net")).unwrap();
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        TcpListener::bind("127.0.0.1:0").unwrap()
    })
    .join()
    .unwrap()
}

/// Removes the test's unit through the adapter (stop, disable, delete) on drop.
struct Unit(String, ServiceLabelText);
type ServiceLabelText = &'static str;

impl Drop for Unit {
    fn drop(&mut self) {
        use process_manager::ProcessManagerPort;
        let pid = &self.0;
        let manager = adapters_linux::SystemdProcessManager::system()
            .with_command_prefix(["nsenter", "-t", pid, "-a"].map(String::from).to_vec())
            .with_unit_dir(PathBuf::from(format!(
                "/proc/{pid}/root/etc/systemd/system"
            )));
        let label = process_manager::ServiceLabel::new(self.1).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _ = rt.block_on(manager.disable(&label));
        let _ = std::fs::remove_file(format!(
            "/proc/{pid}/root/etc/systemd/system/{}.service",
            self.1
        ));
    }
}

#[test]
fn systemd_a_stale_port_holder_is_freed_and_after_heal_runs_once_across_an_agent_restart() {
    let Some(pid) = common::systemd_pid() else {
        return;
    };
    const LABEL: &str = "jc-hooks-worker";
    let home = "/run/jc-hooks-test";
    let _ = std::fs::remove_dir_all(inside(&pid, home));
    std::fs::create_dir_all(inside(&pid, home)).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(inside(&pid, home), std::fs::Permissions::from_mode(0o755)).unwrap();
    // The log folder `apply` would make (a repair does not: see the unit's StandardOutput=).
    let logs = format!("{home}/logs");
    std::fs::create_dir_all(inside(&pid, &logs)).unwrap();
    let chown = Command::new("nsenter")
        .args(["-t", &pid, "-a", "chown", "joelclaw", &logs])
        .status()
        .unwrap();
    assert!(chown.success());
    let agent_bin = format!("{home}/joelclaw-node");
    std::fs::copy(BIN, inside(&pid, &agent_bin)).unwrap();
    let _unit = Unit(pid.clone(), LABEL);
    let port = 30000 + (std::process::id() % 20000) as u16;
    let marks = format!("{home}/marks");
    let server = CountingServer::serve(listen_in_netns_of(&pid));
    let enter = |argv: &[&str]| -> Vec<String> {
        ["nsenter", "-t", &pid, "-a"]
            .iter()
            .chain(argv)
            .map(|s| s.to_string())
            .collect()
    };
    let dir = tempfile::tempdir().unwrap();
    let stranger = spawn(
        &enter(&[
            &agent_bin,
            "demo-service",
            "--port",
            &port.to_string(),
            "--hang-after",
            "0s",
        ]),
        &dir.path().join("stranger.log"),
    );
    std::fs::write(
        inside(&pid, &format!("{home}/node.toml")),
        format!(
            "[node]\nid = \"hooks-systemd\"\nlog_dir = \"{home}/logs\"\n\n\
             [managers.systemd]\nservice_account = \"joelclaw\"\n\n{}\nrestart = \"never\"\n",
            worker(
                LABEL,
                "systemd",
                &agent_bin,
                port,
                Path::new(&marks),
                &server
            )
        ),
    )
    .unwrap();
    let run = |events: &str| {
        enter(&[
            &agent_bin,
            "run",
            "--inventory",
            &format!("{home}/node.toml"),
            "--state-dir",
            &format!("{home}/state"),
            "--events",
            &format!("{home}/{events}"),
        ])
    };
    let files = [
        inside(&pid, &format!("{home}/first.jsonl")),
        inside(&pid, &format!("{home}/second.jsonl")),
    ];
    // The agent frees the port, installs and starts the unit (a repair: it is not installed);
    // the heal is verified and after_heal called once.
    let first = spawn(&run("first.jsonl"), &dir.path().join("first.log"));
    wait_for_heals(&files, LABEL, 1, &server);
    // The stranger (nsenter's child, in the container) is gone: nsenter ended with it.
    let mut stranger = stranger;
    let status =
        sysutil::poll::until_blocking("the stranger gone", Duration::from_secs(10), || {
            stranger.0.try_wait().ok().flatten()
        });
    assert!(!status.success(), "stopped by a signal: {status:?}");
    assert_freed(&files[0], &format!("port {port} freed: stopped pid"));

    // The unit's process is killed (Restart=no: the agent's to heal); the agent is killed while
    // the next attempt's before_restart hook runs.
    let needle = format!("demo-service\0--port\0{port}");
    let worker = find_process(&needle).expect("the unit's process");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(worker as i32),
        nix::sys::signal::SIGKILL,
    )
    .unwrap();
    wait_for_marks(&inside(&pid, &marks), 2);
    drop(first);

    // The next agent judges the interrupted attempt (the unit still down), makes attempt 3, and
    // that heal is verified: one more call, two in all; each attempt ran its hooks once.
    let _second = spawn(&run("second.jsonl"), &dir.path().join("second.log"));
    wait_for_heals(&files, LABEL, 2, &server);
    let marks = std::fs::read_to_string(inside(&pid, &marks)).unwrap();
    assert_eq!(marks, "1\n2\n3\n", "once per attempt");
}

/// The host pid of the one process whose command line contains `needle`.
fn find_process(needle: &str) -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            String::from_utf8_lossy(&cmdline)
                .contains(needle)
                .then_some(pid)
                .filter(|_| common::alive(pid))
        })
}
