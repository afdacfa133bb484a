//! `logs`: a service's output from where its manager keeps it — the embedded supervisor's log
//! files (last lines, then followed as they grow) and a real systemd unit's output files.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_joelclaw-node");

fn logs(inventory: &Path, args: &[&str]) -> (i32, Value) {
    let out = Command::new(BIN)
        .arg("logs")
        .args(args)
        .arg("--inventory")
        .arg(inventory)
        .arg("--json")
        .output()
        .unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), v)
}

#[test]
fn an_embedded_services_last_lines_then_what_it_writes_next() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let inv = dir.path().join("node.toml");
    std::fs::write(
        &inv,
        format!(
            "[node]\nid = \"logs\"\n\n[loop]\nstate_dir = \"{}\"\n\n[[service]]\nlabel = \"web\"\nmanager = \"embedded\"\n\n[service.config]\nprogram = \"/bin/true\"\n",
            state.display()
        ),
    )
    .unwrap();
    // Where the embedded supervisor writes a service's stdout.
    let out_log = state.join("embedded/logs/web.out.log");
    std::fs::create_dir_all(out_log.parent().unwrap()).unwrap();
    let lines: String = (1..=10).map(|i| format!("line {i}\n")).collect();
    std::fs::write(&out_log, lines).unwrap();

    let (code, v) = logs(&inv, &["web", "--lines", "3"]);
    assert_eq!(code, 0, "{v}");
    let first = &v["result"]["logs"][0];
    assert_eq!(first["source"], out_log.display().to_string());
    assert_eq!(
        first["lines"],
        serde_json::json!(["line 8", "line 9", "line 10"])
    );
    // The stderr file does not exist yet: an empty log, not an error.
    assert_eq!(v["result"]["logs"][1]["lines"], serde_json::json!([]));

    let (code, v) = logs(&inv, &["nope"]);
    assert_eq!((code, &v["error"]["kind"]), (2, &Value::from("not-found")));

    // -f: what is appended shows, line by line.
    let mut follow = Command::new(BIN)
        .args(["logs", "web", "-f", "--lines", "1", "--inventory"])
        .arg(&inv)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(follow.stdout.take().unwrap()).lines();
    assert_eq!(out.next().unwrap().unwrap(), "line 10");
    std::fs::OpenOptions::new()
        .append(true)
        .open(&out_log)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"line 11\n"))
        .unwrap();
    assert_eq!(out.next().unwrap().unwrap(), "line 11");
    let _ = follow.kill();
    let _ = follow.wait();
}

#[test]
fn a_systemd_units_output_files() {
    let Some(pid) = common::systemd_pid() else {
        return;
    };
    let label = "jc-logs-journal";
    let unit_dir = PathBuf::from(format!("/proc/{pid}/root/etc/systemd/system"));
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("node.toml");
    let marker = format!("jc-marker-{}", std::process::id());
    // A log folder that does not exist yet where the unit runs: `enable` must make it, or
    // systemd fails the start at STDOUT (it opens the files before any LogsDirectory=).
    let log_dir = format!("/var/log/jc-logs-test-{}", std::process::id());
    let log_dir_seen = PathBuf::from(format!("/proc/{pid}/root{log_dir}"));
    let _ = std::fs::remove_dir_all(&log_dir_seen);
    std::fs::write(
        &inv,
        format!(
            "[node]\nid = \"logs\"\nlog_dir = \"{log_dir}\"\n\n\
             [managers.systemd]\ndefinition_dir = \"{}\"\ncommand_prefix = [\"nsenter\", \"-t\", \"{pid}\", \"-a\"]\nservice_account = \"joelclaw\"\n\n\
             [loop]\nstate_dir = \"{}\"\n\n\
             [[service]]\nlabel = \"{label}\"\nmanager = \"systemd\"\n\n[service.config]\nprogram = \"/bin/sh\"\nargs = [\"-c\", \"echo {marker}; exec sleep 100000\"]\n",
            unit_dir.display(),
            dir.path().join("state").display()
        ),
    )
    .unwrap();
    // `enable` installs this run's definition (a unit left by an earlier run is replaced).
    let start = Command::new(BIN)
        .args(["enable", label, "--json", "--inventory"])
        .arg(&inv)
        .output()
        .unwrap();
    assert!(
        start.status.success(),
        "{}",
        String::from_utf8_lossy(&start.stdout)
    );
    let (code, v) = sysutil::poll::until_blocking(
        "the marker in the unit's output",
        Duration::from_secs(30),
        || {
            let (code, v) = logs(&inv, &[label, "--lines", "20"]);
            v.to_string().contains(&marker).then_some((code, v))
        },
    );
    assert_eq!(code, 0, "{v}");
    // Its output files, read where the unit runs (inside the systemd container).
    let source = v["result"]["logs"][0]["source"].as_str().unwrap();
    assert!(
        source.contains("nsenter") && source.contains("tail"),
        "{source}"
    );
    assert!(source.contains(&log_dir), "{source}");
    let _ = Command::new(BIN)
        .args(["disable", label, "--inventory"])
        .arg(&inv)
        .output();
    let _ = std::fs::remove_dir_all(&log_dir_seen);
}
