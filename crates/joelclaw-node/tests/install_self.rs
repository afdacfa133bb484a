//! `install-self` and `bootstrap` into a scratch root, through the binary: what the agent's own
//! definition says (root, its sandbox, its ordering, the platform's PATH), the inventory
//! checked as `run` checks it before anything is written, the polkit rule of a non-root
//! agent, and runs that change nothing saying so. On real systemd: tests/bootstrap_node.rs.

use std::fs;
use std::path::Path;
use std::process::Command;

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

/// Every file under `root`, relative, sorted.
fn files_under(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// A runnable node: one systemd service, a container probe (so the agent orders itself after
/// Docker), its own state folder.
const NODE: &str = r#"
[node]
role = "fleet"
id = "install-test"

[loop]
state_dir = "/var/lib/joelclaw-agent"

[managers.systemd]
service_account = "joelclaw"

[substrate]
name = "docker"
kind = "docker"

[[service]]
label = "jc-sleeper"
manager = "systemd"

[service.config]
program = "/bin/sleep"
args = ["1000"]
"#;

fn install_self(inv: &Path, root: &Path, extra: &[&str]) -> (i32, String, String) {
    run(bin()
        .args([
            "install-self",
            "--program",
            "/usr/local/bin/joelclaw-node",
            "--root",
        ])
        .arg(root)
        .arg("-i")
        .arg(inv)
        .args(extra))
}

#[test]
fn the_systemd_unit_runs_the_agent_as_root_in_its_own_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("node.toml");
    fs::write(&inv, NODE).unwrap();
    let root = dir.path().join("root");
    let (code, out, err) = install_self(&inv, &root, &["--manager", "systemd"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        files_under(&root),
        vec![
            "etc/joelclaw/inventory.toml".to_string(),
            "etc/systemd/system/joelclaw-node.service".to_string(),
            "etc/systemd/system/joelclaw-node.service.d/10-node-agent.conf".to_string(),
        ]
    );
    // The agent runs the copy at a stable system path, not the file it was given.
    assert_eq!(
        fs::read_to_string(root.join("etc/joelclaw/inventory.toml")).unwrap(),
        NODE
    );
    let unit = fs::read_to_string(root.join("etc/systemd/system/joelclaw-node.service")).unwrap();
    // What the service renderer does not write, in the drop-in beside the unit.
    let dropin = fs::read_to_string(
        root.join("etc/systemd/system/joelclaw-node.service.d/10-node-agent.conf"),
    )
    .unwrap();
    for line in [
        "After=network-online.target docker.service",
        "Wants=network-online.target",
        "ProtectHome=read-only",
    ] {
        assert!(
            dropin.lines().any(|l| l == line),
            "{line} missing:\n{dropin}"
        );
    }
    for line in [
        "User=root",
        "Restart=always",
        "WantedBy=multi-user.target",
        // The inventory's state folder, not one of install-self's own.
        r#"ExecStart="/usr/local/bin/joelclaw-node" "run" "--inventory" "/etc/joelclaw/inventory.toml" "--state-dir" "/var/lib/joelclaw-agent""#,
        r#"Environment="PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin""#,
        // Writable: exactly its state, its logs and the definition folder it repairs.
        r#"ReadWritePaths="/var/lib/joelclaw-agent" "/var/log/joelclaw" "/etc/systemd/system""#,
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=",
        "PrivateUsers=yes",
    ] {
        assert!(
            unit.lines().any(|l| l.starts_with(line)),
            "{line} missing:\n{unit}"
        );
    }
    for absent in ["/opt/homebrew", "ProtectHome=", "ProtectProc=invisible"] {
        assert!(!unit.contains(absent), "{absent} present:\n{unit}");
    }
    // Again: nothing written, and it says so.
    let (code, out, err) = install_self(&inv, &root, &["--manager", "systemd"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("install-self: no changes"), "{out}");
    assert!(
        out.contains("(unchanged)") && !out.contains("(written)"),
        "{out}"
    );
}

#[test]
fn the_launchd_daemon_runs_in_the_system_domain_as_root() {
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("node.toml");
    fs::write(&inv, NODE).unwrap();
    let root = dir.path().join("root");
    let (code, out, err) = install_self(&inv, &root, &["--manager", "launchd"]);
    assert_eq!(code, 0, "{out}{err}");
    let plist =
        fs::read_to_string(root.join("Library/LaunchDaemons/com.joelclaw.node-agent.plist"))
            .unwrap();
    for needle in [
        "<key>RunAtLoad</key>",
        "<key>KeepAlive</key>",
        "/opt/homebrew/bin",
    ] {
        assert!(plist.contains(needle), "{needle} missing:\n{plist}");
    }
    assert!(!plist.contains("<key>UserName</key>"), "{plist}");
    // A non-root agent is a Linux option.
    let (code, _, err) = install_self(&inv, &root, &["--manager", "launchd", "--user", "agent"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn a_non_root_agent_gets_a_polkit_rule_for_exactly_its_units() {
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("node.toml");
    fs::write(&inv, NODE).unwrap();
    let root = dir.path().join("root");
    let (code, out, err) =
        install_self(&inv, &root, &["--manager", "systemd", "--user", "jcagent"]);
    assert_eq!(code, 0, "{out}{err}");
    let unit = fs::read_to_string(root.join("etc/systemd/system/joelclaw-node.service")).unwrap();
    assert!(unit.contains("User=jcagent\nGroup=jcagent\n"), "{unit}");
    // It repairs nothing, so the definition folder is not writable to it.
    assert!(
        unit.contains(r#"ReadWritePaths="/var/lib/joelclaw-agent" "/var/log/joelclaw""#)
            && !unit.contains("\"/etc/systemd/system\""),
        "{unit}"
    );
    let rule =
        fs::read_to_string(root.join("etc/polkit-1/rules.d/50-joelclaw-node.rules")).unwrap();
    assert!(rule.contains(r#"subject.user == "jcagent""#), "{rule}");
    assert!(
        rule.contains(r#"var units = ["jc-sleeper.service"];"#),
        "{rule}"
    );
}

#[test]
fn a_bad_inventory_is_exit_2_with_its_own_error_and_nothing_written() {
    let cases = [
        ("malformed", "[node\nrole = \"fleet\"\n", "malformed.toml:1"),
        ("empty", "[node]\nrole = \"fleet\"\n", "nothing to heal"),
        (
            "cyclic",
            "[node]\nrole = \"fleet\"\n\n[[service]]\nlabel = \"a\"\nmanager = \"null\"\ndepends_on = [\"b\"]\n\n[[service]]\nlabel = \"b\"\nmanager = \"null\"\ndepends_on = [\"a\"]\n",
            "cycle",
        ),
    ];
    for (name, text, says) in cases {
        let dir = tempfile::tempdir().unwrap();
        let inv = dir.path().join(format!("{name}.toml"));
        fs::write(&inv, text).unwrap();
        let root = dir.path().join("root");
        for verb in [&["install-self"][..], &["bootstrap"][..]] {
            let (code, out, err) = run(bin()
                .args(verb)
                .arg("--root")
                .arg(&root)
                .arg("-i")
                .arg(&inv));
            assert_eq!(code, 2, "{name} {verb:?}: {out}{err}");
            assert!(err.contains(says), "{name} {verb:?}: {err}");
            assert!(
                files_under(&root).is_empty(),
                "{name} {verb:?}: {:?}",
                files_under(&root)
            );
            // `run` says the same.
            let (code, _, run_err) = run(bin().arg("run").arg("-i").arg(&inv));
            assert_eq!(code, 2, "{name}: {run_err}");
        }
    }
}

#[test]
fn a_state_folder_holding_services_folders_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("node.toml");
    fs::write(
        &inv,
        NODE.replace(
            "args = [\"1000\"]",
            "args = [\"1000\"]\nworking_dir = \"/var/lib/joelclaw-agent/sleeper\"",
        ),
    )
    .unwrap();
    let root = dir.path().join("root");
    let (code, out, err) = install_self(&inv, &root, &["--manager", "systemd"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("holds services' folders"), "{err}");
    assert!(files_under(&root).is_empty());
}

#[test]
fn bootstrap_under_a_root_plans_then_writes_then_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("node.toml");
    fs::write(&inv, NODE).unwrap();
    let root = dir.path().join("root");
    let bootstrap = |extra: &[&str]| {
        run(bin()
            .args([
                "bootstrap",
                "--program",
                "/usr/local/bin/joelclaw-node",
                "--root",
            ])
            .arg(&root)
            .arg("-i")
            .arg(&inv)
            .args(extra))
    };
    let (code, out, err) = bootstrap(&["--dry-run"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("dry run, nothing changed"), "{out}");
    assert!(
        out.contains("etc/systemd/system/joelclaw-node.service: would write"),
        "{out}"
    );
    assert!(files_under(&root).is_empty(), "{:?}", files_under(&root));

    // The audit of a scratch root has no accounts to find: its verdict is not the point here.
    let (code, out, err) = bootstrap(&[]);
    assert!(code == 0 || code == 1, "{out}{err}");
    assert!(out.contains("change(s)"), "{out}");
    for f in [
        "etc/joelclaw/inventory.toml",
        "etc/systemd/system/joelclaw-node.service",
        "etc/systemd/system/jc-sleeper.service",
    ] {
        assert!(
            root.join(f).is_file(),
            "{f} missing: {:?}",
            files_under(&root)
        );
    }
    let (_, out, err) = bootstrap(&[]);
    assert!(out.contains("bootstrap: nothing changed"), "{out}{err}");
}

#[test]
fn a_bootstrap_stopped_midway_is_completed_by_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("node.toml");
    fs::write(&inv, NODE).unwrap();
    let root = dir.path().join("root");
    // As if a bootstrap had stopped after its apply step.
    let (code, out, err) = run(bin()
        .args(["apply", "--root"])
        .arg(&root)
        .arg("-i")
        .arg(&inv));
    assert_eq!(code, 0, "{out}{err}");
    let unit = root.join("etc/systemd/system/jc-sleeper.service");
    let applied = fs::read(&unit).unwrap();
    let bootstrap = || {
        run(bin()
            .args([
                "--json",
                "bootstrap",
                "--program",
                "/usr/local/bin/joelclaw-node",
            ])
            .arg("--root")
            .arg(&root)
            .arg("-i")
            .arg(&inv))
    };
    let (_, out, err) = bootstrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|_| panic!("{out}{err}"));
    let steps = v["result"]["steps"].as_array().unwrap();
    let outcome = |step: &str| {
        steps
            .iter()
            .find(|s| s["step"] == step)
            .map(|s| s["outcome"].as_str().unwrap().to_string())
    };
    // What was done stays done; the rest is done now.
    assert_eq!(outcome("apply").as_deref(), Some("unchanged"), "{out}");
    assert!(
        outcome("install-self").unwrap().starts_with("changed"),
        "{out}"
    );
    assert_eq!(fs::read(&unit).unwrap(), applied);
    assert!(root
        .join("etc/systemd/system/joelclaw-node.service")
        .is_file());
    let (_, out, _) = bootstrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["result"]["changes"], 0, "{out}");
}

#[test]
fn an_inventory_in_a_checkout_is_copied_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join(".git")).unwrap();
    fs::create_dir(dir.path().join("examples")).unwrap();
    let inv = dir.path().join("examples/node.toml");
    fs::write(&inv, NODE).unwrap();
    let root = tempfile::tempdir().unwrap();
    let (code, out, err) = install_self(&inv, root.path(), &["--manager", "systemd"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("warning:")
            && out.contains("inside the checkout")
            && out.contains("/etc/joelclaw/inventory.toml"),
        "{out}"
    );
    let unit =
        fs::read_to_string(root.path().join("etc/systemd/system/joelclaw-node.service")).unwrap();
    assert!(!unit.contains("examples/node.toml"), "{unit}");
}
