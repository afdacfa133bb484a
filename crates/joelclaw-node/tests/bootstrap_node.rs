//! A node from nothing, on real systemd: each test boots its own fresh nspawn container (the
//! host's systemd and /usr, a tmpfs root) whose `/etc`, `/var/lib` and `/var/log` are folders
//! kept on the host, runs `joelclaw-node bootstrap` inside it, and checks that the installed
//! agent heals. One test powers the container off and boots it again on the same folders.
//! Runs as root with `systemd-nspawn`; under `CI=true` missing either fails the test.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// The longest a container may take to boot or power off, and a service to be healed.
const BOOT: Duration = Duration::from_secs(90);
const HEAL: Duration = Duration::from_secs(120);

/// Straight to stderr: libtest captures `eprintln!` of passing tests.
fn say(text: &str) {
    let _ = std::io::Write::write_all(&mut std::io::stderr(), format!("{text}\n").as_bytes());
}

/// Whether this test can run here; `None` prints SKIPPED, except under `CI=true`, which fails.
fn can_boot() -> Option<()> {
    let root = nix::unistd::geteuid().is_root();
    let nspawn = Command::new("systemd-nspawn")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if root && nspawn {
        return Some(());
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("this test boots a systemd container: it needs root and systemd-nspawn, and CI=true never skips it");
    }
    say("SKIPPED (needs root and systemd-nspawn to boot a container)");
    None
}

/// A booted container; powered off (or killed) when dropped.
struct Node {
    name: String,
    /// The persistent folders: etc, varlib, varlog; and `share`, bound read-only at /share.
    dir: PathBuf,
    nspawn: Option<Child>,
    systemd: u32,
    /// The cgroups made for it, removed once it is off.
    cgroups: Vec<PathBuf>,
}

impl Node {
    /// Boots a container on `dir`'s folders (made when missing), with this crate's binary at
    /// /opt/joelclaw/joelclaw-node and `dir/share` at /share, both read-only.
    fn boot(name: &str, dir: &Path) -> Node {
        for sub in ["etc", "varlib", "varlog", "share"] {
            fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let bin_dir = Path::new(env!("CARGO_BIN_EXE_joelclaw-node"))
            .parent()
            .unwrap()
            .to_path_buf();
        // A cgroup of its own: with --keep-unit the container's tree goes under the caller's
        // cgroup, and two containers started from the same one (this and the shared harness)
        // would share `payload/...` and its units' cgroups.
        let cgroups = own_cgroups(name);
        let mut enter = String::new();
        for c in &cgroups {
            enter.push_str(&format!("echo $$ > {}/cgroup.procs && ", c.display()));
        }
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            &format!("{enter}exec \"$0\" \"$@\""),
            "systemd-nspawn",
        ]);
        cmd.args(["-D", "/", "--volatile=yes", "--register=no", "--keep-unit"])
            .arg(format!("--machine={name}"))
            .args(["--private-network", "--console=passive"])
            .arg(format!("--bind={}:/etc", dir.join("etc").display()))
            .arg(format!("--bind={}:/var/lib", dir.join("varlib").display()))
            .arg(format!("--bind={}:/var/log", dir.join("varlog").display()))
            .arg(format!("--bind-ro={}:/share", dir.join("share").display()))
            .arg(format!("--bind-ro={}:/opt/joelclaw", bin_dir.display()))
            .args([
                "-b",
                "systemd.firstboot=off",
                "systemd.unit=multi-user.target",
                "systemd.mask=docker.service",
                "systemd.mask=docker.socket",
                "systemd.mask=containerd.service",
                "systemd.mask=nftables.service",
                "systemd.mask=redis-server.service",
                // A private network is never "online": waiting for it would hold the agent
                // (After=network-online.target) for two minutes.
                "systemd.mask=systemd-networkd-wait-online.service",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().expect("systemd-nspawn");
        let nspawn_pid = child.id();
        let mut node = Node {
            name: name.into(),
            dir: dir.into(),
            nspawn: Some(child),
            systemd: 0,
            cgroups,
        };
        node.systemd = sysutil::poll::until_blocking("the container's systemd", BOOT, || {
            let pid = find_systemd(nspawn_pid)?;
            let out = in_pid(pid, &bus_get(MANAGER_PATH, MANAGER, "SystemState"));
            let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
            matches!(state.as_str(), "s \"running\"" | "s \"degraded\"").then_some(pid)
        });
        node
    }

    /// Runs `argv` inside, with a deadline.
    fn run<S: AsRef<std::ffi::OsStr>>(&self, argv: &[S]) -> Output {
        in_pid(self.systemd, argv)
    }

    fn stdout<S: AsRef<std::ffi::OsStr>>(&self, argv: &[S]) -> String {
        String::from_utf8_lossy(&self.run(argv).stdout)
            .trim()
            .to_string()
    }

    fn is_active(&self, unit: &str) -> bool {
        let path = unit_path(unit);
        self.stdout(&bus_get(
            &path,
            "org.freedesktop.systemd1.Unit",
            "ActiveState",
        )) == "s \"active\""
    }

    /// SIGKILLs `unit` until systemd gives up on it (its start limit), then waits for the
    /// installed agent's event saying it restarted it and for the unit to be active.
    fn kill_past_start_limit_and_see_healed(&self, unit: &str) {
        let gave_up = || {
            self.stdout(&["journalctl", "-u", unit, "-o", "cat", "--no-pager"])
                .matches("Start request repeated too quickly")
                .count()
        };
        let label = unit.trim_end_matches(".service");
        let healed_before = self.heals(label, "restart", "heal.succeeded");
        let before = gave_up();
        let mut hit = false;
        for _ in 0..20 {
            self.run(&bus_call("KillUnit", &["ssi", unit, "main", "9"]));
            std::thread::sleep(Duration::from_millis(250));
            if gave_up() > before {
                hit = true;
                break;
            }
        }
        assert!(hit, "{unit} never hit its start limit");
        // Healed by the installed agent: its own event says so.
        sysutil::poll::until_blocking(&format!("{unit} healed by the agent"), HEAL, || {
            (self.heals(label, "restart", "heal.succeeded") > healed_before && self.is_active(unit))
                .then_some(())
        });
    }

    /// How many `event` lines of the agent name `label` and `step`.
    fn heals(&self, label: &str, step: &str, event: &str) -> usize {
        self.events()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["service"] == label && v["step"] == step && v["event"] == event)
            .count()
    }

    /// The agent's events, as lines.
    fn events(&self) -> String {
        fs::read_to_string(self.dir.join("varlib/joelclaw-agent/events.jsonl")).unwrap_or_default()
    }

    /// Powers the container off and waits for nspawn to exit.
    fn power_off(&mut self) {
        let Some(mut child) = self.nspawn.take() else {
            return;
        };
        let _ = in_pid(
            self.systemd,
            &bus_call(
                "StartUnit",
                &["ss", "poweroff.target", "replace-irreversibly"],
            ),
        );
        let give_up = std::time::Instant::now() + BOOT;
        let mut exited = false;
        while std::time::Instant::now() < give_up {
            if child.try_wait().ok().flatten().is_some() {
                exited = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if !exited {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.power_off();
        for c in &self.cgroups {
            remove_cgroup(c);
        }
        say(&format!("container {} powered off", self.name));
    }
}

/// The service manager's bus object and interface (the test speaks to it over D-Bus, as any
/// client would; only the systemd adapter runs its command-line tool).
const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";

/// `busctl get-property` of `property` on `path`.
fn bus_get(path: &str, interface: &str, property: &str) -> Vec<String> {
    [
        "busctl",
        "get-property",
        "org.freedesktop.systemd1",
        path,
        interface,
        property,
    ]
    .map(String::from)
    .to_vec()
}

/// `busctl call` of a manager method, never asking for interactive authorization.
fn bus_call(method: &str, args: &[&str]) -> Vec<String> {
    let mut argv: Vec<String> = [
        "busctl",
        "--allow-interactive-authorization=no",
        "call",
        "org.freedesktop.systemd1",
        MANAGER_PATH,
        MANAGER,
        method,
    ]
    .map(String::from)
    .to_vec();
    argv.extend(args.iter().map(|a| a.to_string()));
    argv
}

/// A unit's bus object path: every byte but ASCII letters and digits as `_xx`.
fn unit_path(unit: &str) -> String {
    let mut out = format!("{MANAGER_PATH}/unit/");
    for b in unit.bytes() {
        if b.is_ascii_alphanumeric() {
            out.push(b as char);
        } else {
            out.push_str(&format!("_{b:02x}"));
        }
    }
    out
}

/// Makes `joelclaw-test-<name>` in each cgroup hierarchy systemd uses here (the named v1
/// `systemd` one and the unified one of a hybrid setup, or the root of a pure v2 one).
fn own_cgroups(name: &str) -> Vec<PathBuf> {
    let base = Path::new("/sys/fs/cgroup");
    let roots: Vec<PathBuf> = if base.join("cgroup.controllers").exists() {
        vec![base.to_path_buf()]
    } else {
        ["systemd", "unified"]
            .iter()
            .map(|h| base.join(h))
            .filter(|h| h.join("cgroup.procs").exists())
            .collect()
    };
    roots
        .into_iter()
        .map(|r| {
            let dir = r.join(format!("joelclaw-test-{name}"));
            fs::create_dir_all(&dir).unwrap();
            dir
        })
        .collect()
}

/// Removes a cgroup and what the container left under it, deepest first (only empty cgroups
/// can be removed; a cgroup's files go with it).
fn remove_cgroup(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup(&e.path());
            }
        }
    }
    let _ = fs::remove_dir(dir);
}

/// The first descendant of `pid` named `systemd`.
fn find_systemd(pid: u32) -> Option<u32> {
    let mut queue = vec![pid];
    while let Some(p) = queue.pop() {
        let kids = fs::read_dir(format!("/proc/{p}/task"))
            .ok()?
            .flatten()
            .flat_map(|t| {
                fs::read_to_string(t.path().join("children"))
                    .unwrap_or_default()
                    .split_whitespace()
                    .filter_map(|k| k.parse::<u32>().ok())
                    .collect::<Vec<_>>()
            });
        for k in kids.collect::<Vec<_>>() {
            if fs::read_to_string(format!("/proc/{k}/comm")).is_ok_and(|c| c.trim() == "systemd") {
                return Some(k);
            }
            queue.push(k);
        }
    }
    None
}

fn in_pid<S: AsRef<std::ffi::OsStr>>(pid: u32, argv: &[S]) -> Output {
    Command::new("timeout")
        .args(["60", "nsenter", "-t", &pid.to_string(), "-a"])
        .args(argv)
        .stdin(Stdio::null())
        .output()
        .expect("nsenter")
}

/// A fleet node's inventory (shaped like examples/fleet-linux.toml) with what runs in the
/// container: busybox httpd and sleep as two hardened units, fast heal settings.
fn inventory() -> String {
    r#"[node]
role = "fleet"
id = "bootstrap-test"
log_dir = "/var/log/joelclaw"

[loop]
interval = "1s"
state_dir = "/var/lib/joelclaw-agent"

[heal]
failures_to_down = 1
passes_to_up = 1
grace = "2s"
backoff_initial = "1s"
backoff_max = "2s"
jitter = 0.0
breaker_threshold = 20
stable_after = "3s"

[managers.systemd]
service_account = "joelclaw"
service_group = "joelclaw"

[[service]]
label = "jc-web"
manager = "systemd"
class = "service-critical"

[[service.probe]]
kind = "process"

[service.config]
program = "/bin/busybox"
args = ["httpd", "-f", "-p", "127.0.0.1:18480", "-h", "/var/lib/jc-web"]
restart = "always"
restart_delay = "100ms"
start_limit = { interval = "60s", burst = 2 }
write_paths = ["/var/lib/jc-web"]

[[service]]
label = "jc-sleeper"
manager = "systemd"
class = "service-critical"
depends_on = ["jc-web"]

[[service.probe]]
kind = "process"

[service.config]
program = "/bin/sleep"
args = ["1000000"]
restart = "always"
restart_delay = "100ms"
start_limit = { interval = "60s", burst = 2 }
"#
    .to_string()
}

fn bootstrap(node: &Node, extra: &[&str]) -> (i32, String) {
    let mut argv = vec![
        "/opt/joelclaw/joelclaw-node",
        "bootstrap",
        "-i",
        "/share/node.toml",
    ];
    argv.extend_from_slice(extra);
    let out = node.run(&argv);
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn scratch(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("{name}-"))
        .tempdir_in("/var/tmp")
        .unwrap()
}

#[test]
fn bootstrap_makes_a_healing_node_that_survives_a_reboot() {
    if can_boot().is_none() {
        return;
    }
    let dir = scratch("joelclaw-bootstrap");
    fs::create_dir_all(dir.path().join("share")).unwrap();
    fs::write(dir.path().join("share/node.toml"), inventory()).unwrap();
    let name = format!("jc-bootstrap-{}", std::process::id());
    let mut node = Node::boot(&name, dir.path());

    // A dry run shows the steps and changes nothing.
    let (code, out) = bootstrap(&node, &["--dry-run"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("would run: useradd --system"), "{out}");
    assert!(out.contains("dry run, nothing changed"), "{out}");
    assert!(node.stdout(&["getent", "passwd", "joelclaw"]).is_empty());
    assert!(!dir
        .path()
        .join("etc/systemd/system/joelclaw-node.service")
        .exists());

    // The real run: account, folders, units, agent, audit passing.
    let (code, out) = bootstrap(&node, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("audit         the installed node: passed"),
        "{out}"
    );
    let passwd = node.stdout(&["getent", "passwd", "joelclaw"]);
    assert!(
        passwd.ends_with(":/var/lib/joelclaw:/usr/sbin/nologin"),
        "{passwd}"
    );
    let uid: u32 = passwd.split(':').nth(2).unwrap().parse().unwrap();
    assert!(uid < 1000, "not a system account: {passwd}");
    assert_eq!(
        node.stdout(&["stat", "-c", "%U %a", "/var/lib/jc-web"]),
        "joelclaw 700"
    );
    // 0710 once the agent runs: its API socket's group may pass through, nothing more.
    assert_eq!(
        node.stdout(&["stat", "-c", "%U %a", "/var/lib/joelclaw-agent"]),
        "root 710"
    );
    for unit in [
        "joelclaw-node.service",
        "jc-web.service",
        "jc-sleeper.service",
    ] {
        sysutil::poll::until_blocking(&format!("{unit} active"), BOOT, || {
            node.is_active(unit).then_some(())
        });
    }
    // The agent's own sandbox, as systemd scores it (printed for the record).
    let security = node.stdout(&["systemd-analyze", "security", "joelclaw-node.service"]);
    say(security.lines().last().unwrap_or_default());

    // Again: nothing changes, and it says so.
    let (code, out) = bootstrap(&node, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("bootstrap: nothing changed"), "{out}");

    // The installed agent heals a unit systemd gave up on.
    node.kill_past_start_limit_and_see_healed("jc-sleeper.service");

    // An edited definition is repaired by it: the unit file comes back as written.
    let unit_file = dir.path().join("etc/systemd/system/jc-web.service");
    let desired = fs::read_to_string(&unit_file).unwrap();
    fs::write(
        &unit_file,
        desired.replace("ExecStart=\"/bin/busybox\"", "ExecStart=\"/bin/false\""),
    )
    .unwrap();
    node.run(&bus_call("Reload", &[]));
    node.run(&bus_call(
        "RestartUnit",
        &["ss", "jc-web.service", "replace"],
    ));
    sysutil::poll::until_blocking("jc-web repaired by the agent", HEAL, || {
        (node.heals("jc-web", "repair", "heal.succeeded") > 0).then_some(())
    });
    assert_eq!(fs::read_to_string(&unit_file).unwrap(), desired);
    assert!(node.is_active("jc-web.service"));

    // Reboot on the same folders: with no step of ours, the agent and every service run,
    // and the agent heals again.
    node.power_off();
    drop(node);
    let node = Node::boot(&name, dir.path());
    for unit in [
        "joelclaw-node.service",
        "jc-web.service",
        "jc-sleeper.service",
    ] {
        sysutil::poll::until_blocking(&format!("{unit} active after the reboot"), BOOT, || {
            node.is_active(unit).then_some(())
        });
    }
    node.kill_past_start_limit_and_see_healed("jc-sleeper.service");
}

#[test]
fn a_non_root_agent_restarts_only_its_units_and_reports_repair_not_permitted() {
    if can_boot().is_none() {
        return;
    }
    let dir = scratch("joelclaw-nonroot");
    fs::create_dir_all(dir.path().join("share")).unwrap();
    fs::write(dir.path().join("share/node.toml"), inventory()).unwrap();
    let name = format!("jc-nonroot-{}", std::process::id());
    let node = Node::boot(&name, dir.path());
    let (code, out) = bootstrap(&node, &["--agent-user", "jcagent"]);
    assert_eq!(code, 0, "{out}");
    let rule = fs::read_to_string(
        dir.path()
            .join("etc/polkit-1/rules.d/50-joelclaw-node.rules"),
    )
    .unwrap();
    assert!(
        rule.contains(r#"["jc-web.service", "jc-sleeper.service"]"#),
        "{rule}"
    );
    let agent_unit =
        fs::read_to_string(dir.path().join("etc/systemd/system/joelclaw-node.service")).unwrap();
    assert!(agent_unit.contains("\nUser=jcagent\n"), "{agent_unit}");
    sysutil::poll::until_blocking("the agent active", BOOT, || {
        node.is_active("joelclaw-node.service").then_some(())
    });

    // It restarts a unit of its inventory that systemd gave up on.
    node.kill_past_start_limit_and_see_healed("jc-sleeper.service");

    // It may not manage a unit outside the inventory.
    let as_agent = |unit: &str| {
        let mut argv = vec![
            "setpriv",
            "--reuid=jcagent",
            "--regid=jcagent",
            "--clear-groups",
        ];
        let call = bus_call("RestartUnit", &["ss", unit, "replace"]);
        argv.extend(call.iter().map(String::as_str));
        node.run(&argv)
    };
    let other = as_agent("systemd-journald.service");
    let refused = String::from_utf8_lossy(&other.stderr).to_lowercase();
    assert!(
        !other.status.success()
            && (refused.contains("access denied") || refused.contains("authentication")),
        "{other:?}"
    );
    let ours = as_agent("jc-web.service");
    assert!(ours.status.success(), "{ours:?}");

    // An edited definition: repair is reported as not permitted, and the file is left alone.
    let unit_file = dir.path().join("etc/systemd/system/jc-web.service");
    let desired = fs::read_to_string(&unit_file).unwrap();
    let edited = desired.replace("ExecStart=\"/bin/busybox\"", "ExecStart=\"/bin/false\"");
    fs::write(&unit_file, &edited).unwrap();
    node.run(&bus_call("Reload", &[]));
    node.run(&bus_call(
        "RestartUnit",
        &["ss", "jc-web.service", "replace"],
    ));
    sysutil::poll::until_blocking("repair reported not permitted", HEAL, || {
        node.events()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .any(|v| {
                v["service"] == "jc-web"
                    && v["step"] == "repair"
                    && v["error_kind"] == "permission-denied"
            })
            .then_some(())
    });
    assert_eq!(fs::read_to_string(&unit_file).unwrap(), edited);
}
