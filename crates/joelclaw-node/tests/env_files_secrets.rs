//! Environment files and secrets, end to end through `joelclaw-node run` on the embedded
//! supervisor: an env file's values reach the service; a value named like a secret (from an env
//! file, an argument, a probe URL) appears in no output of any verb, human or JSON, nor in the
//! events file or the agent's log; and a port held by a stranger is named in the events.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_joelclaw-node");

const ENV_SECRET: &str = "s3cr3t-env-4a7f";
const ARG_SECRET: &str = "s3cr3t-arg-9b2c";
const URL_SECRET: &str = "s3cr3t-url-77aa";

/// The agent, killed (with its children, by the supervisor's parent-death signal) on drop.
struct Agent {
    child: Child,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(dir: &Path, inventory: &Path) -> Agent {
    let child = Command::new(BIN)
        .arg("run")
        .arg("--inventory")
        .arg(inventory)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--events")
        .arg(dir.join("events.jsonl"))
        .env("RUST_LOG", "debug")
        .stdout(std::fs::File::create(dir.join("agent.out")).unwrap())
        .stderr(std::fs::File::create(dir.join("agent.err")).unwrap())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    Agent { child }
}

fn events(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("events.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Runs a verb, human and `--json`, and returns both outputs (stdout and stderr).
fn both_ways(dir: &Path, args: &[&str]) -> String {
    let mut all = String::new();
    for json in [false, true] {
        let mut cmd = Command::new(BIN);
        cmd.args(args).arg("--state-dir").arg(dir.join("state"));
        if json {
            cmd.arg("--json");
        }
        let out = cmd.env("NODE_ID", "secrets-node").output().unwrap();
        if json {
            // Redaction keeps the envelope valid JSON whatever the output holds.
            let stdout = String::from_utf8_lossy(&out.stdout);
            serde_json::from_str::<serde_json::Value>(stdout.trim())
                .unwrap_or_else(|e| panic!("{args:?}: not one JSON document ({e}): {stdout}"));
        }
        all.push_str(&format!("$ {args:?} json={json}\n"));
        all.push_str(&String::from_utf8_lossy(&out.stdout));
        all.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    all
}

fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn env_file_values_reach_the_service_and_no_output_shows_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let env_file = dir.join("worker.env");
    write_private(
        &env_file,
        &format!("# worker settings\nGREETING=\"hello world\"\nWORKER_API_TOKEN={ENV_SECRET}\n"),
    );
    let env_out = dir.join("env.out");
    let closed = common::free_port();
    let inventory = dir.join("node.toml");
    std::fs::write(
        &inventory,
        format!(
            r#"[node]
id = "secrets-node"
role = "fleet"

[loop]
interval = "1s"
probe_timeout = "1s"

[heal]
failures_to_down = 1
passes_to_up = 1
grace = "1s"

[[service]]
label = "envsvc"
manager = "embedded"

[[service.probe]]
kind = "process"

[service.config]
program = "/bin/sh"
args = ["-c", "env > {out}; env; exec sleep 100000", "--api-token", "{ARG_SECRET}"]
env_files = ["{env_file}", "-{dir}/absent.env"]

[[service]]
label = "tokenweb"
manager = "embedded"
class = "app-level"

[[service.probe]]
kind = "http"
endpoints = [{{ class = "localhost", url = "http://127.0.0.1:{closed}/health?api_token={URL_SECRET}" }}]

[service.config]
program = "/bin/sh"
args = ["-c", "exec sleep 100000"]
"#,
            out = env_out.display(),
            env_file = env_file.display(),
            dir = dir.display(),
        ),
    )
    .unwrap();
    let agent = start(dir, &inventory);

    // The env file's values reach the service (and an optional missing file is no error).
    let seen = sysutil::poll::until_blocking("the service's env", Duration::from_secs(30), || {
        std::fs::read_to_string(&env_out)
            .ok()
            .filter(|t| t.contains("GREETING"))
    });
    assert!(seen.lines().any(|l| l == "GREETING=hello world"), "{seen}");
    assert!(
        seen.lines()
            .any(|l| l == format!("WORKER_API_TOKEN={ENV_SECRET}")),
        "{seen}"
    );

    // The failing probe's detail quotes its URL: redacted, not left out.
    let failed = sysutil::poll::until_blocking(
        "a probe.failed of tokenweb",
        Duration::from_secs(30),
        || {
            events(dir)
                .into_iter()
                .find(|e| e["service"] == "tokenweb" && e["event"] == "probe.failed")
        },
    );
    let detail = failed["detail"].as_str().unwrap();
    assert!(detail.contains("api_token=<redacted>"), "{failed}");

    // Every verb, human and JSON.
    let inv = inventory.to_str().unwrap();
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    let root = root.to_str().unwrap();
    let units = dir.join("units.toml");
    std::fs::write(
        &units,
        format!(
            r#"[managers.systemd]
service_account = "joelclaw"

[[service]]
label = "worker"
manager = "systemd"

[[service.probe]]
kind = "process"

[service.config]
program = "/opt/joelclaw/bin/worker"
args = ["--api-token", "{ARG_SECRET}", "DB_PASSWORD={ARG_SECRET}"]
env_files = ["/etc/joelclaw/worker.env"]
"#
        ),
    )
    .unwrap();
    let units = units.to_str().unwrap();
    let mut outputs = String::new();
    for args in [
        vec!["status", "--inventory", inv],
        vec!["inspect", "envsvc", "--inventory", inv],
        vec!["inspect", "tokenweb", "--inventory", inv],
        vec!["events", "--inventory", inv],
        vec!["list", "--inventory", inv],
        vec!["logs", "envsvc", "--lines", "500", "--inventory", inv],
        vec!["logs", "tokenweb", "--inventory", inv],
        vec!["restart", "tokenweb", "--inventory", inv],
        vec!["identity"],
        vec!["apply", "--dry-run", "--root", root, "--inventory", units],
        vec!["apply", "--dry-run", "--root", root, "--inventory", inv],
        vec!["audit", "--root", root, "--inventory", units],
        vec!["audit", "--root", root, "--inventory", inv],
    ] {
        outputs.push_str(&both_ways(dir, &args));
    }
    // The dry run showed the unit, with the argument redacted rather than left out.
    assert!(
        outputs.contains("EnvironmentFile=/etc/joelclaw/worker.env"),
        "{outputs}"
    );
    assert!(outputs.contains("<redacted>"), "{outputs}");
    // `logs` showed the service's own output (it prints its environment), the secret redacted.
    assert!(outputs.contains("GREETING=hello world"), "{outputs}");
    assert!(outputs.contains("WORKER_API_TOKEN=<redacted>"), "{outputs}");
    drop(agent);
    let files = ["events.jsonl", "agent.out", "agent.err"]
        .map(|f| std::fs::read_to_string(dir.join(f)).unwrap_or_default());
    for secret in [ENV_SECRET, ARG_SECRET, URL_SECRET] {
        assert!(
            !outputs.contains(secret),
            "{secret} in a verb's output:\n{outputs}"
        );
        for (name, text) in ["events.jsonl", "agent.out", "agent.err"]
            .iter()
            .zip(&files)
        {
            assert!(!text.contains(secret), "{secret} in {name}:\n{text}");
        }
    }
}

#[test]
fn a_port_held_by_a_stranger_is_named_in_the_events() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    // The stranger: this test process, listening and never answering.
    let stranger = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = stranger.local_addr().unwrap().port();
    let inventory: PathBuf = dir.join("node.toml");
    std::fs::write(
        &inventory,
        format!(
            r#"[node]
id = "port-node"

[loop]
interval = "1s"
probe_timeout = "1s"

[heal]
failures_to_down = 1
passes_to_up = 1
grace = "1s"

[[service]]
label = "web"
manager = "embedded"

[[service.probe]]
kind = "http"
endpoints = [{{ class = "localhost", url = "http://127.0.0.1:{port}/" }}]

[service.config]
program = "${{JOELCLAW_NODE_BIN}}"
args = ["demo-service", "--port", "{port}"]
"#
        ),
    )
    .unwrap();
    let _agent = start(dir, &inventory);
    let me = std::process::id();
    let held = sysutil::poll::until_blocking(
        "a probe.failed naming the stranger",
        Duration::from_secs(60),
        || {
            events(dir).into_iter().find(|e| {
                e["service"] == "web"
                    && e["event"] == "probe.failed"
                    && e["error_kind"] == "port-held"
            })
        },
    );
    let detail = held["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("port {port} held by pid {me} (")),
        "{held}"
    );
    drop(stranger);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_env_file_fails_the_embedded_start_naming_the_file_only() {
    use joelclaw_node::embedded::{EmbeddedOptions, EmbeddedSupervisor};
    use process_manager::{ProcessManagerPort, ServiceConfig, ServiceLabel};

    let dir = tempfile::tempdir().unwrap();
    let sup = EmbeddedSupervisor::new(EmbeddedOptions::under(dir.path())).unwrap();
    let label = ServiceLabel::new("needs-env").unwrap();
    let missing = dir.path().join("missing.env");
    let mut config = ServiceConfig::new(label.clone(), "/bin/sleep").with_args(["1000"]);
    config.env_files = vec![missing.clone()];
    let e = sup.enable(&config).await.unwrap_err().to_string();
    assert!(
        e.contains(&missing.display().to_string()) && e.contains("missing"),
        "{e}"
    );
    assert!(!sup.inspect(&label).await.unwrap().is_running());

    // Present but not UTF-8: refused, and the message never quotes the file.
    write_private(&missing, "");
    std::fs::write(
        &missing,
        [b"API_TOKEN=".as_slice(), ENV_SECRET.as_bytes(), &[0xff]].concat(),
    )
    .unwrap();
    let e = sup.restart(&label).await.unwrap_err().to_string();
    assert!(e.contains("UTF-8") && !e.contains(ENV_SECRET), "{e}");
    sup.shutdown().await;
}

#[test]
fn a_port_held_by_the_services_own_hung_process_is_not_a_stranger() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let port = common::free_port();
    let inventory: PathBuf = dir.join("node.toml");
    std::fs::write(
        &inventory,
        format!(
            r#"[node]
id = "own-port-node"

[loop]
interval = "1s"
probe_timeout = "1s"

[heal]
failures_to_down = 1
passes_to_up = 1
grace = "1s"

[[service]]
label = "wedged"
manager = "embedded"

[[service.probe]]
kind = "http"
endpoints = [{{ class = "localhost", url = "http://127.0.0.1:{port}/" }}]

[service.config]
program = "${{JOELCLAW_NODE_BIN}}"
args = ["demo-service", "--port", "{port}", "--hang-after", "1s"]
"#
        ),
    )
    .unwrap();
    let _agent = start(dir, &inventory);
    let failed = sysutil::poll::until_blocking(
        "a probe.failed of the hung service",
        Duration::from_secs(60),
        || {
            // Before it binds, a probe may find nothing listening (unreachable): not the case
            // under test.
            events(dir).into_iter().find(|e| {
                e["service"] == "wedged"
                    && e["event"] == "probe.failed"
                    && (e["error_kind"] == "timeout" || e["error_kind"] == "port-held")
            })
        },
    );
    // It holds its own port and does not answer: a timeout, not a stranger.
    assert_eq!(failed["error_kind"], "timeout", "{failed}");
    let all = events(dir);
    assert!(
        !all.iter().any(|e| e["error_kind"] == "port-held"),
        "{all:?}"
    );
}

/// launchd's wrapper (`env-exec`): the files' values reach the program (a later file wins, a
/// `-`-prefixed file may be missing); a missing file fails naming the file, never a value.
#[test]
fn env_exec_gives_the_files_values_to_the_program_it_becomes() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("w.env");
    let second = dir.path().join("w.local.env");
    write_private(&first, &format!("API_TOKEN={ENV_SECRET}\nMODE=base\n"));
    write_private(&second, "MODE=local\n");
    let out = Command::new(BIN)
        .arg("env-exec")
        .arg(format!("--env-file={}", first.display()))
        .arg(format!("--env-file={}", second.display()))
        .arg(format!(
            "--env-file=-{}",
            dir.path().join("absent.env").display()
        ))
        .args([
            "--",
            "/bin/sh",
            "-c",
            "echo \"$MODE $API_TOKEN $$\"; echo \"$1\"",
            "sh",
            "-x",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap().rsplit_once(' ').unwrap().0,
        format!("local {ENV_SECRET}")
    );
    assert_eq!(
        lines.next(),
        Some("-x"),
        "arguments pass through as written"
    );

    let missing = dir.path().join("missing.env");
    let out = Command::new(BIN)
        .arg("env-exec")
        .arg(format!("--env-file={}", first.display()))
        .arg(format!("--env-file={}", missing.display()))
        .args(["--", "/bin/true"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        shown.contains(&missing.display().to_string()) && !shown.contains(ENV_SECRET),
        "{shown}"
    );
}
