//! The supervisors compared, each keeping the same small HTTP server (`busybox httpd`) up on a
//! port of its own: systemd `Restart=always`, Docker `--restart=always`, monit at a 1 s cycle,
//! and the agent (its embedded supervisor, and on systemd with the agent as the only healer).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::http::Prober;
use crate::procs::{self, find_root, run, run_ok, write};

pub(crate) const BUSYBOX: &str = "/usr/bin/busybox";

/// The harness's systemd container.
pub(crate) struct Container {
    pub(crate) pid: u32,
}

impl Container {
    /// A path inside the container, as the host reaches it.
    pub(crate) fn path(&self, inside: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root{inside}", self.pid))
    }

    pub(crate) fn nsenter(&self) -> Vec<String> {
        vec![
            "nsenter".into(),
            "-t".into(),
            self.pid.to_string(),
            "-a".into(),
        ]
    }

    /// Starts `joelclaw-node run` inside the container from the folder `inside` (its binary,
    /// `inventory.toml` and `state` there), its output to `stdout` and `stderr`.
    pub(crate) fn run_agent(&self, inside: &str, stdout: Stdio, stderr: Stdio) -> Child {
        let mut argv = self.nsenter();
        argv.extend([
            format!("{inside}/joelclaw-node"),
            "run".into(),
            "--inventory".into(),
            format!("{inside}/inventory.toml"),
            "--state-dir".into(),
            format!("{inside}/state"),
        ]);
        Command::new(&argv[0])
            .args(&argv[1..])
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("nsenter joelclaw-node run")
    }

    /// Runs `argv` inside the container.
    pub(crate) fn run(&self, argv: &[&str]) -> std::process::Output {
        let mut all: Vec<String> = self.nsenter();
        all.extend(argv.iter().map(|s| s.to_string()));
        let words: Vec<&str> = all.iter().map(String::as_str).collect();
        run(&words)
    }

    pub(crate) fn run_ok(&self, argv: &[&str]) -> String {
        let mut all: Vec<String> = self.nsenter();
        all.extend(argv.iter().map(|s| s.to_string()));
        let words: Vec<&str> = all.iter().map(String::as_str).collect();
        run_ok(&words)
    }

    /// Installs `name` (a unit file's text) and starts it.
    pub(crate) fn start_unit(&self, name: &str, text: &str) {
        write(&self.path(&format!("/etc/systemd/system/{name}")), text);
        self.run_ok(&["systemctl", "daemon-reload"]);
        self.run(&["systemctl", "reset-failed", name]);
        self.run_ok(&["systemctl", "restart", name]);
    }

    pub(crate) fn remove_unit(&self, name: &str) {
        self.run(&["systemctl", "stop", name]);
        let _ = std::fs::remove_file(self.path(&format!("/etc/systemd/system/{name}")));
        self.run(&["systemctl", "daemon-reload"]);
        self.run(&["systemctl", "reset-failed", name]);
    }
}

/// One supervisor keeping one server up.
pub(crate) struct Peer {
    pub(crate) name: &'static str,
    pub(crate) port: u16,
    pub(crate) prober: Prober,
    /// Whether it is expected to heal a hang (systemd and Docker never do: one sample says so).
    pub(crate) heals_hang: bool,
    cleanup: Vec<Box<dyn FnOnce()>>,
}

impl Peer {
    /// The command-line mark of the server this peer keeps.
    pub(crate) fn marker(&self) -> String {
        format!("-p 127.0.0.1:{}", self.port)
    }

    pub(crate) fn server_pid(&self) -> Option<i32> {
        find_root(&self.marker())
    }

    pub(crate) fn teardown(&mut self) {
        for step in self.cleanup.drain(..).rev() {
            step();
        }
    }
}

fn httpd_args(port: u16, www: &str) -> Vec<String> {
    ["httpd", "-f", "-p", &format!("127.0.0.1:{port}"), "-h", www]
        .map(String::from)
        .to_vec()
}

/// systemd's own `Restart=always` (its default `RestartSec=100ms`; no start limit, so repeated
/// kills measure restarts, not the limit).
pub(crate) fn systemd_restart(c: &Container, port: u16) -> Peer {
    let unit = "joelclaw-bench-systemd.service";
    c.run_ok(&[
        "sh",
        "-c",
        "mkdir -p /run/bench-www && echo ok > /run/bench-www/index.html",
    ]);
    let exec = format!("{BUSYBOX} {}", httpd_args(port, "/run/bench-www").join(" "));
    c.start_unit(
        unit,
        &format!("[Unit]\nStartLimitIntervalSec=0\n[Service]\nExecStart={exec}\nRestart=always\n"),
    );
    let pid = c.pid;
    Peer {
        name: "systemd Restart=always",
        port,
        prober: Prober::in_netns_of(pid),
        heals_hang: false,
        cleanup: vec![Box::new(move || Container { pid }.remove_unit(unit))],
    }
}

/// Docker's `--restart=always`, on the host's network so no proxy stands in front.
pub(crate) fn docker(docker_host: &str, image: &str, port: u16) -> Option<Peer> {
    let name = "joelclaw-bench-http";
    let docker = |args: &[&str]| {
        let mut all = vec!["docker", "-H", docker_host];
        all.extend(args);
        run(&all)
    };
    if !docker(&["version"]).status.success() {
        return None;
    }
    docker(&["rm", "-f", name]);
    let script = format!(
        "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 127.0.0.1:{port} -h /www"
    );
    let out = docker(&[
        "run",
        "-d",
        "--restart=always",
        "--network=host",
        "--name",
        name,
        image,
        "sh",
        "-c",
        &script,
    ]);
    if !out.status.success() {
        eprintln!("docker run: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    let host = docker_host.to_string();
    Some(Peer {
        name: "Docker --restart=always",
        port,
        prober: Prober::host(),
        heals_hang: false,
        cleanup: vec![Box::new(move || {
            run(&["docker", "-H", &host, "rm", "-f", name]);
        })],
    })
}

/// monit (Debian's), a 1 s cycle, an HTTP check that restarts on failure.
pub(crate) fn monit(dir: &Path, port: u16) -> Option<Peer> {
    let monit = which("monit")?;
    let www = dir.join("www");
    write(&www.join("index.html"), "ok\n");
    let pidfile = dir.join("monit-http.pid");
    let start = format!(
        "/bin/sh -c '{BUSYBOX} {} & echo $! > {}'",
        httpd_args(port, &www.display().to_string()).join(" "),
        pidfile.display()
    );
    let stop = format!("/bin/sh -c 'kill -9 $(cat {})'", pidfile.display());
    let rc = dir.join("monitrc");
    write(
        &rc,
        &format!(
            "set daemon 1\nset logfile {log}\nset pidfile {dir}/monit.pid\nset idfile {dir}/monit.id\nset statefile {dir}/monit.state\n\
             check process joelclaw-bench-http with pidfile {pid}\n  start program = \"{start}\"\n  stop program = \"{stop}\"\n  \
             if failed host 127.0.0.1 port {port} protocol http with timeout 1 seconds then restart\n",
            log = dir.join("monit.log").display(),
            dir = dir.display(),
            pid = pidfile.display(),
        ),
    );
    set_mode(&rc, 0o600);
    let child = Command::new(monit)
        .args(["-I", "-c"])
        .arg(&rc)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let marker = format!("-p 127.0.0.1:{port}");
    Some(Peer {
        name: "monit (1 s cycle)",
        port,
        prober: Prober::host(),
        heals_hang: true,
        cleanup: vec![Box::new(move || {
            stop_child(child);
            if let Some(p) = find_root(&marker) {
                procs::signal(p, nix::sys::signal::Signal::SIGKILL);
            }
        })],
    })
}

/// The agent with its embedded supervisor, at its defaults or with `settings` (inventory TOML
/// sections, e.g. `[heal]` values) added.
pub(crate) fn agent_embedded(
    agent: &Path,
    dir: &Path,
    port: u16,
    settings: Option<&str>,
    name: &'static str,
) -> Peer {
    let www = dir.join("www");
    write(&www.join("index.html"), "ok\n");
    let loop_part = settings.map_or(String::new(), |t| format!("{t}\n"));
    let inventory = dir.join("inventory.toml");
    let args: Vec<String> = httpd_args(port, &www.display().to_string())
        .into_iter()
        .map(|a| format!("\"{a}\""))
        .collect();
    write(
        &inventory,
        &format!(
            "[node]\nid = \"bench\"\nrole = \"fleet\"\nlog_dir = \"{logs}\"\n\n{loop_part}\
             [[service]]\nlabel = \"bench-embedded\"\nmanager = \"embedded\"\nclass = \"service-critical\"\n\n\
             [[service.probe]]\nkind = \"process\"\n\n\
             [[service.probe]]\nkind = \"http\"\nendpoints = [{{ class = \"localhost\", url = \"http://127.0.0.1:{port}/\" }}]\n\n\
             [service.config]\nprogram = \"{BUSYBOX}\"\nargs = [{args}]\n",
            logs = dir.join("logs").display(),
            args = args.join(", "),
        ),
    );
    let child = Command::new(agent)
        .args(["run", "--inventory"])
        .arg(&inventory)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .stdout(std::fs::File::create(dir.join("agent.out")).unwrap())
        .stderr(std::fs::File::create(dir.join("agent.err")).unwrap())
        .spawn()
        .expect("joelclaw-node run");
    let marker = format!("-p 127.0.0.1:{port}");
    Peer {
        name,
        port,
        prober: Prober::host(),
        heals_hang: true,
        cleanup: vec![Box::new(move || {
            stop_child(child);
            if let Some(p) = find_root(&marker) {
                procs::signal(p, nix::sys::signal::Signal::SIGKILL);
            }
        })],
    }
}

/// The agent on systemd, run inside the container (its own system bus, no prefix), the unit
/// with `Restart=no`: every heal is the agent's.
pub(crate) fn agent_systemd(
    c: &Container,
    agent: &Path,
    port: u16,
    interval: Option<&str>,
) -> Peer {
    let unit = "joelclaw-bench-agent.service";
    c.run_ok(&[
        "sh",
        "-c",
        "mkdir -p /run/bench-www && echo ok > /run/bench-www/index.html",
    ]);
    let exec = format!("{BUSYBOX} {}", httpd_args(port, "/run/bench-www").join(" "));
    c.start_unit(unit, &format!("[Service]\nExecStart={exec}\nRestart=no\n"));
    let inside = "/run/joelclaw-bench-agent";
    // A fresh state folder: breakers left open by an earlier run would hold every heal.
    let _ = std::fs::remove_dir_all(c.path(&format!("{inside}/state")));
    std::fs::create_dir_all(c.path(inside)).unwrap();
    // Unlinked first: a copy left running by an interrupted run keeps its file busy.
    let _ = std::fs::remove_file(c.path(&format!("{inside}/joelclaw-node")));
    std::fs::copy(agent, c.path(&format!("{inside}/joelclaw-node"))).unwrap();
    let loop_part = interval.map_or(String::new(), |i| format!("[loop]\ninterval = \"{i}\"\n\n"));
    write(
        &c.path(&format!("{inside}/inventory.toml")),
        &format!(
            "[node]\nid = \"bench\"\nrole = \"fleet\"\nlog_dir = \"{inside}/logs\"\n\n{loop_part}\
             [[service]]\nlabel = \"joelclaw-bench-agent\"\nmanager = \"systemd\"\nclass = \"service-critical\"\n\n\
             [[service.probe]]\nkind = \"process\"\n\n\
             [[service.probe]]\nkind = \"http\"\nendpoints = [{{ class = \"localhost\", url = \"http://127.0.0.1:{port}/\" }}]\n",
        ),
    );
    let child = c.run_agent(
        inside,
        std::fs::File::create(c.path(&format!("{inside}/agent.out")))
            .unwrap()
            .into(),
        std::fs::File::create(c.path(&format!("{inside}/agent.err")))
            .unwrap()
            .into(),
    );
    let pid = c.pid;
    let agent_mark = format!("{inside}/inventory.toml");
    Peer {
        name: "agent on systemd (Restart=no)",
        port,
        prober: Prober::in_netns_of(pid),
        heals_hang: true,
        cleanup: vec![
            Box::new(move || Container { pid }.remove_unit(unit)),
            Box::new(move || {
                // nsenter forks the agent: stop the agent itself, by its own command line.
                if let Some(p) = find_root(&agent_mark) {
                    procs::signal(p, nix::sys::signal::Signal::SIGTERM);
                    std::thread::sleep(Duration::from_secs(2));
                    if procs::alive(p) {
                        procs::signal(p, nix::sys::signal::Signal::SIGKILL);
                    }
                }
                stop_child(child);
            }),
        ],
    }
}

/// SIGTERM, two seconds, then SIGKILL, and reaped.
pub(crate) fn stop_child(mut child: Child) {
    procs::signal(child.id() as i32, nix::sys::signal::Signal::SIGTERM);
    for _ in 0..40 {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

pub(crate) fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}
