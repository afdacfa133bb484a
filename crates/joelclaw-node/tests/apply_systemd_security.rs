//! On the real systemd the harness boots (`scripts/test`): the units `apply` writes for
//! `examples/fleet-linux.toml` (its programs swapped for busybox httpd, which the container
//! has) and the agent's own unit from `install-self` pass `systemd-analyze verify`, have their
//! `systemd-analyze security` exposure printed, the network services' at most 2.5, and the
//! services still start and answer. Under `CI=true` a missing harness fails the test.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use process_manager::{ProcessManagerPort, ServiceLabel};

/// The highest exposure a network service's unit may have.
const MAX_EXPOSURE: f64 = 2.5;

/// Ports the swapped-in httpd servers listen on, away from the real services' ports.
const OLLAMA_PORT: u16 = 18411;
const EMBEDDER_PORT: u16 = 18412;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_joelclaw-node"))
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().expect("run joelclaw-node");
    (
        out.status.code().expect("exited"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Straight to the stderr handle: libtest captures `eprintln!` of passing tests, and the
/// scores are for the record.
fn say(text: &str) {
    let _ = std::io::Write::write_all(&mut std::io::stderr(), format!("{text}\n").as_bytes());
}

/// The harness variable `name`; `None` (skipped) outside CI, a failure under `CI=true`.
fn harness(name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{name} is not set: this test needs real systemd, and CI=true never skips it; run it through scripts/test");
            }
            say(&format!(
                "SKIPPED (needs real systemd: run scripts/test): {name} is not set"
            ));
            None
        }
    }
}

/// Runs `argv` inside the container, with a deadline.
fn in_container(pid: &str, argv: &[&str]) -> std::process::Output {
    Command::new("timeout")
        .args(["60", "nsenter", "-t", pid, "-a"])
        .args(argv)
        .output()
        .expect("nsenter")
}

/// The number in "→ Overall exposure level for X.service: 1.3 OK 🙂".
fn overall_exposure(report: &str) -> Option<f64> {
    let line = report
        .lines()
        .find(|l| l.contains("Overall exposure level for"))?;
    let (_, rest) = line.rsplit_once(": ")?;
    rest.split_whitespace().next()?.parse().ok()
}

/// `examples/fleet-linux.toml` pointed at the container, its programs swapped for busybox
/// httpd serving each service's own writable folder. Every swap is checked to have happened,
/// so an edit of the example cannot quietly turn this test into a test of something else.
fn fleet_inventory(pid: &str, unit_dir: &Path) -> String {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/fleet-linux.toml");
    let mut text = fs::read_to_string(example).unwrap();
    let swaps: [(&str, String); 5] = [
        (
            "[managers.systemd]\n",
            format!(
                "[managers.systemd]\ndefinition_dir = \"{}\"\ncommand_prefix = [\"nsenter\", \"-t\", \"{pid}\", \"-a\"]\n",
                unit_dir.display()
            ),
        ),
        ("program = \"/usr/local/bin/ollama\"", "program = \"/bin/busybox\"".into()),
        (
            "args = [\"serve\"]",
            format!("args = [\"httpd\", \"-f\", \"-p\", \"127.0.0.1:{OLLAMA_PORT}\", \"-h\", \"/var/lib/ollama\"]"),
        ),
        ("program = \"/opt/joelclaw/bin/embedder\"", "program = \"/bin/busybox\"".into()),
        (
            "args = [\"--redis\", \"redis://127.0.0.1:6379\", \"--ollama\", \"http://127.0.0.1:11434\"]",
            format!("args = [\"httpd\", \"-f\", \"-p\", \"127.0.0.1:{EMBEDDER_PORT}\", \"-h\", \"/var/lib/joelclaw/embedder\"]"),
        ),
    ];
    for (from, to) in swaps {
        assert!(
            text.contains(from),
            "examples/fleet-linux.toml no longer has {from:?}"
        );
        text = text.replacen(from, &to, 1);
    }
    text
}

/// Disables the units through the adapter the agent uses (only the adapter speaks to the
/// systemd CLI) and removes their files, whatever an earlier run left. The next `apply` reloads.
fn cleanup(systemd: &adapters_linux::SystemdProcessManager, unit_dir: &Path, labels: &[&str]) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for l in labels {
        let _ = rt.block_on(systemd.disable(&ServiceLabel::new(*l).unwrap()));
        let _ = fs::remove_file(unit_dir.join(format!("{l}.service")));
    }
}

#[test]
fn the_exposure_line_is_read() {
    let report =
        "✗ PrivateNetwork=  x  0.5\n\n→ Overall exposure level for ollama.service: 1.9 OK 🙂\n";
    assert_eq!(overall_exposure(report), Some(1.9));
    assert_eq!(overall_exposure("nothing"), None);
}

#[test]
fn fleet_units_and_the_agents_own_unit_verify_score_and_still_answer() {
    let Some(pid) = harness("JOELCLAW_TEST_SYSTEMD_PID") else {
        return;
    };
    let Some(scratch) = harness("JOELCLAW_TEST_SCRATCH") else {
        return;
    };
    let unit_dir = PathBuf::from(format!("/proc/{pid}/root/etc/systemd/system"));
    let network = ["ollama", "joelclaw-embedder"];
    let agent = "joelclaw-node";
    let all = [network[0], network[1], agent];
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("fleet-linux.toml");
    fs::write(&inv, fleet_inventory(&pid, &unit_dir)).unwrap();
    // The test looks through the same adapter the agent uses, pointed at the container.
    let inventory = joelclaw_node::compose::load_inventory(&inv).unwrap();
    let systemd = joelclaw_node::compose::systemd_adapter(
        joelclaw_node::compose::settings(&inventory, "systemd"),
        None,
    );
    cleanup(&systemd, &unit_dir, &all);
    let own_folders = ["/var/lib/ollama", "/var/lib/joelclaw/embedder"];
    for f in own_folders {
        in_container(&pid, &["rm", "-rf", f]);
    }

    // The agent's own unit, as `install-self` renders it, installed beside them first so the
    // reload `apply` makes loads it too (not started: its privileges are a matter of their
    // own). Its program must exist for `verify`: the scratch folder is the same path inside
    // the container.
    let agent_bin = Path::new(&scratch).join("joelclaw-node-under-analysis");
    fs::copy(env!("CARGO_BIN_EXE_joelclaw-node"), &agent_bin).unwrap();
    let self_root = dir.path().join("self");
    let (code, out, err) = run(bin()
        .args(["install-self", "--manager", "systemd", "--program"])
        .arg(&agent_bin)
        .arg("--root")
        .arg(&self_root)
        .arg("-i")
        .arg(&inv));
    assert_eq!(code, 0, "{out}{err}");
    fs::copy(
        self_root.join("etc/systemd/system/joelclaw-node.service"),
        unit_dir.join("joelclaw-node.service"),
    )
    .unwrap();

    // The fleet's units, through `apply`, with the folders they need made in the container.
    let (code, out, err) = run(bin().args(["--json", "apply", "-i"]).arg(&inv));
    assert_eq!(code, 0, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["result"]["changes"], 2, "{out}");
    // Their own folders, made in the container for the service account, private.
    for f in own_folders {
        let out = in_container(&pid, &["stat", "-c", "%U:%G %a", f]);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "joelclaw:joelclaw 700",
            "{f}"
        );
    }
    let embedder = fs::read_to_string(unit_dir.join("joelclaw-embedder.service")).unwrap();
    // depends_on = ["redis", "ollama"]: ordered after ollama; redis is a container.
    assert!(
        embedder.contains("After=ollama.service\nWants=ollama.service\n"),
        "{embedder}"
    );

    // Each unit: verify, then its exposure, printed.
    let mut scores = Vec::new();
    for l in all {
        let path = format!("/etc/systemd/system/{l}.service");
        let out = in_container(&pid, &["systemd-analyze", "verify", &path]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let complaints: Vec<&str> = stderr.lines().filter(|line| line.contains(l)).collect();
        assert!(
            out.status.success() && complaints.is_empty(),
            "systemd-analyze verify {path}:\n{stderr}"
        );
        let out = in_container(
            &pid,
            &["systemd-analyze", "security", &format!("{l}.service")],
        );
        let report = String::from_utf8_lossy(&out.stdout).into_owned();
        let score = overall_exposure(&report)
            .unwrap_or_else(|| panic!("no exposure line for {l}:\n{report}\n{out:?}"));
        say(&format!("systemd-analyze security {l}.service: {score}"));
        scores.push((l, score, report));
    }
    for (l, score, report) in &scores {
        if network.contains(l) {
            assert!(
                *score <= MAX_EXPOSURE,
                "{l} scores {score} > {MAX_EXPOSURE}:\n{report}"
            );
        }
    }

    // The hardened services still start and answer, from their own folders.
    for (l, port, folder) in [
        ("ollama", OLLAMA_PORT, "/var/lib/ollama"),
        (
            "joelclaw-embedder",
            EMBEDDER_PORT,
            "/var/lib/joelclaw/embedder",
        ),
    ] {
        let page = format!("{folder}/index.html");
        let wrote = in_container(
            &pid,
            &[
                "sh",
                "-c",
                &format!("echo {l} answers > {page} && chmod 0644 {page}"),
            ],
        );
        assert!(wrote.status.success(), "{wrote:?}");
        let url = format!("http://127.0.0.1:{port}/index.html");
        let body = sysutil::poll::until_blocking(
            &format!("an answer from {l}"),
            Duration::from_secs(30),
            || {
                // No `-T`: busybox 1.35's wget crashes on it; `in_container` has a deadline.
                let out = in_container(&pid, &["busybox", "wget", "-q", "-O", "-", &url]);
                out.status
                    .success()
                    .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
            },
        );
        assert_eq!(body, format!("{l} answers\n"));
    }
    // Running, seen through the adapter the agent uses.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for l in network {
        let st = rt
            .block_on(systemd.inspect(&ServiceLabel::new(l).unwrap()))
            .unwrap();
        assert!(st.is_running(), "{l}: {st:?}");
    }

    cleanup(&systemd, &unit_dir, &all);
    let _ = fs::remove_file(&agent_bin);
}
