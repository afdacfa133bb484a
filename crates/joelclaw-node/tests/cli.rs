//! The CLI as a user meets it: the binary run as a subprocess, exit codes, human and JSON output.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_joelclaw-node"))
}

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("run joelclaw-node");
    (
        status.code().expect("exited, not killed"),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn place(root: &Path, fixture: &str, rel: &str, mode: u32) -> PathBuf {
    let to = root.join(rel);
    fs::create_dir_all(to.parent().unwrap()).unwrap();
    fs::copy(data(&format!("audit/{fixture}")), &to).unwrap();
    fs::set_permissions(&to, fs::Permissions::from_mode(mode)).unwrap();
    to
}

#[test]
fn gate_finds_a_planted_call_with_file_and_line_and_honours_allow() {
    let repo = tempfile::tempdir().unwrap();
    copy_tree(&data("ts-tree"), repo.path());
    // Ignored by the tree's .gitignore: never reported.
    fs::create_dir_all(repo.path().join("node_modules/legacy")).unwrap();
    fs::copy(
        repo.path().join("packages/gateway/src/restart.ts"),
        repo.path().join("node_modules/legacy/index.ts"),
    )
    .unwrap();

    let (code, out, _) = run(bin().args(["gate", "--repo"]).arg(repo.path()));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("packages/gateway/src/restart.ts:5:"),
        "file:line of the planted call: {out}"
    );
    assert!(
        !out.contains("packages/process-manager/"),
        "allowed package reported: {out}"
    );
    assert!(
        !out.contains("node_modules"),
        "ignored folder reported: {out}"
    );
    assert!(out.contains("1 violation"), "{out}");

    let (code, out, _) = run(bin()
        .args(["--json", "gate", "--allow", "packages/gateway/**", "--repo"])
        .arg(repo.path()));
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["command"], "gate");
    assert_eq!(v["result"]["violations"].as_array().unwrap().len(), 0);
}

#[test]
fn gate_with_custom_rules_and_json_hits() {
    let repo = tempfile::tempdir().unwrap();
    copy_tree(&data("ts-tree"), repo.path());
    let (code, out, _) = run(bin()
        .args(["--json", "gate", "--forbid", r"execSync\(", "--repo"])
        .arg(repo.path()));
    assert_eq!(code, 1, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ok"], false);
    let hits = v["result"]["violations"].as_array().unwrap();
    assert_eq!(hits.len(), 1, "{out}");
    assert_eq!(hits[0]["path"], "packages/gateway/src/restart.ts");
    assert_eq!(hits[0]["line"], 5);
    // The next action is the same scan, as a runnable argv.
    let argv = v["next_actions"][0]["argv"].as_array().unwrap();
    assert_eq!(argv[1], "gate");
    assert!(argv.iter().any(|a| a == r"execSync\("), "{out}");
}

#[test]
fn gate_on_a_clean_tree_exits_0() {
    let repo = tempfile::tempdir().unwrap();
    fs::write(repo.path().join("index.ts"), "export const ok = 1;\n").unwrap();
    let (code, out, _) = run(bin().args(["gate", "--repo"]).arg(repo.path()));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("clean"), "{out}");
}

#[test]
fn audit_passes_a_correct_daemon() {
    let root = tempfile::tempdir().unwrap();
    place(
        root.path(),
        "good.plist",
        "Library/LaunchDaemons/com.joelclaw.system-bus-worker.plist",
        0o644,
    );
    let (code, out, err) = run(bin().args(["audit", "--root"]).arg(root.path()));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("0 failed"), "{out}");
    for rule in [
        "system-daemon",
        "non-root-user",
        "no-developer-home",
        "definition-not-writable",
    ] {
        assert!(
            out.lines()
                .any(|l| l.starts_with("pass") && l.contains(rule)),
            "{rule}: {out}"
        );
    }
}

fn failed_rules(root: &Path) -> Vec<(String, String)> {
    let (code, out, err) = run(bin().args(["--json", "audit", "--root"]).arg(root));
    assert_eq!(code, 1, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["result"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["verdict"] == "fail")
        .map(|f| {
            (
                f["rule"].as_str().unwrap().to_string(),
                format!(
                    "{} ({})",
                    f["file"].as_str().unwrap(),
                    f["label"].as_str().unwrap_or("")
                ),
            )
        })
        .collect()
}

#[test]
fn audit_flags_a_launch_agent_in_a_users_home() {
    let root = tempfile::tempdir().unwrap();
    place(
        root.path(),
        "user-agent.plist",
        "Users/alice/Library/LaunchAgents/com.joelclaw.gateway.plist",
        0o644,
    );
    let failed: Vec<String> = failed_rules(root.path())
        .into_iter()
        .map(|(r, _)| r)
        .collect();
    assert_eq!(
        failed,
        vec!["system-daemon", "non-root-user", "no-developer-home"]
    );
}

#[test]
fn audit_flags_a_daemon_without_username() {
    let root = tempfile::tempdir().unwrap();
    place(
        root.path(),
        "no-username.plist",
        "Library/LaunchDaemons/com.joelclaw.restate-worker.plist",
        0o644,
    );
    let failed = failed_rules(root.path());
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, "non-root-user");
    assert!(
        failed[0].1.contains("com.joelclaw.restate-worker"),
        "{failed:?}"
    );
}

#[test]
fn audit_flags_a_world_writable_definition() {
    let root = tempfile::tempdir().unwrap();
    place(
        root.path(),
        "world-writable.plist",
        "Library/LaunchDaemons/com.joelclaw.typesense.plist",
        0o666,
    );
    let failed = failed_rules(root.path());
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, "definition-not-writable");
}

#[test]
fn bad_input_is_exit_2_with_a_message_and_no_backtrace() {
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["gate", "--repo", "/nonexistent/repo"],
            "/nonexistent/repo",
        ),
        (vec!["gate", "--forbid", "(", "--repo", "."], "regex"),
        (
            vec!["audit", "--root", "/nonexistent/root"],
            "/nonexistent/root",
        ),
        (vec!["--no-such-flag"], "--no-such-flag"),
        (vec!["frobnicate"], "frobnicate"),
    ];
    for (args, needle) in cases {
        let (code, out, err) = run(bin().args(&args));
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(
            err.contains(needle),
            "{args:?}: message should name {needle:?}: {err}"
        );
        assert!(
            !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
            "{err}"
        );
    }
}

#[test]
fn identity_says_where_each_value_came_from() {
    let (code, out, err) = run(bin()
        .args(["--json", "identity"])
        .env("NODE_ID", "mac-studio-central")
        .env("VAULT_PATH", "/srv/vault"));
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["result"]["node_id"]["value"], "mac-studio-central");
    assert_eq!(v["result"]["node_id"]["source"]["detail"], "NODE_ID");
    assert_eq!(v["result"]["vault_path"]["value"], "/srv/vault");

    let (code, _, err) = run(bin().arg("identity").env("NODE_ID", "bad id"));
    assert_eq!(code, 2);
    assert!(
        err.contains("NODE_ID") && err.contains("whitespace"),
        "{err}"
    );
}

#[test]
fn audit_of_a_root_with_nothing_to_check_fails() {
    // Zero checks is not a pass: nothing was verified.
    let root = tempfile::tempdir().unwrap();
    let failed = failed_rules(root.path());
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, "definitions-found");
    let (code, out, _) = run(bin().args(["audit", "--root"]).arg(root.path()));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("nothing to check"), "{out}");
}

#[test]
fn audit_reads_unit_files_with_the_adapters_reader() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("etc/systemd/system");
    fs::create_dir_all(&dir).unwrap();
    // No User= (runs as root), and a person's home inside a quoted `--flag=` argument.
    fs::write(
        dir.join("worker.service"),
        "[Service]\nExecStart=\"/usr/bin/worker\" \"--data=/home/alice/data\"\n",
    )
    .unwrap();
    fs::write(
        dir.join("good.service"),
        "[Service]\nExecStart=\"/usr/bin/good\"\nUser=joelclaw\n",
    )
    .unwrap();
    for f in ["worker.service", "good.service"] {
        fs::set_permissions(dir.join(f), fs::Permissions::from_mode(0o644)).unwrap();
    }
    let mut failed = failed_rules(root.path());
    failed.sort();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert_eq!(failed[0].0, "no-developer-home");
    assert_eq!(failed[1].0, "non-root-user");
    assert!(
        failed.iter().all(|(_, t)| t.contains("(worker)")),
        "{failed:?}"
    );
}

/// Completion scripts come from the same clap definition: every verb is in them.
#[test]
fn completions_name_every_verb() {
    for shell in ["bash", "zsh", "fish"] {
        let (code, out, err) = run(bin().args(["completions", shell]));
        assert_eq!(code, 0, "{shell}: {err}");
        for verb in [
            "run", "status", "list", "start", "stop", "restart", "enable", "disable",
        ] {
            assert!(out.contains(verb), "{shell}: {verb} missing");
        }
    }
    let (code, _, err) = run(bin().args(["completions", "tcsh"]));
    assert_eq!(code, 2, "{err}");
}
