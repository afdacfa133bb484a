//! `apply` writes complete definitions: default log paths under the node's log folder, the
//! folders a service needs, a warning (or with `--strict` a refusal) for paths under a person's
//! home, and a report (or with `--prune` removal) of definitions whose service left the
//! inventory. All under a scratch root, which `apply` creates.

use std::fs;
use std::os::unix::fs::PermissionsExt;
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

fn apply(root: &Path, inv: &Path, extra: &[&str]) -> (i32, String, String) {
    run(bin()
        .args(["apply", "--root"])
        .arg(root)
        .args(extra)
        .arg("-i")
        .arg(inv))
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

const INVENTORY: &str = r#"
[node]
log_dir = "/var/log/central"

[managers.launchd]
service_account = "joelclaw"

[managers.systemd]
service_account = "joelclaw"

[[service]]
label = "com.joelclaw.worker"
manager = "launchd"

[service.config]
program = "/opt/joelclaw/bin/worker"
working_dir = "/var/lib/joelclaw/worker"

[[service]]
label = "embedder"
manager = "systemd"

[service.config]
program = "/opt/joelclaw/bin/embedder"
write_paths = ["/var/lib/joelclaw/models"]
"#;

#[test]
fn apply_creates_the_root_the_log_folder_and_the_folders_a_service_needs() {
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("central.toml");
    fs::write(&inv, INVENTORY).unwrap();
    let root = dir.path().join("not/yet/there");

    // A dry run neither creates the root nor any folder, but says what it would make.
    let (code, out, err) = apply(&root, &inv, &["--dry-run"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!root.exists(), "dry run created the root");
    assert!(
        out.contains("would create folder /var/log/central (mode 750, owner joelclaw)"),
        "{out}"
    );

    let (code, out, err) = apply(&root, &inv, &[]);
    assert_eq!(code, 0, "{out}{err}");
    // Default log paths under the node's log folder, in the plist and the unit alike.
    let plist = root.join("Library/LaunchDaemons/com.joelclaw.worker.plist");
    let value = plist::Value::from_file(&plist).unwrap();
    let d = value.as_dictionary().unwrap();
    assert_eq!(
        d["StandardOutPath"].as_string(),
        Some("/var/log/central/com.joelclaw.worker.out.log")
    );
    assert_eq!(
        d["StandardErrorPath"].as_string(),
        Some("/var/log/central/com.joelclaw.worker.err.log")
    );
    let unit = fs::read_to_string(root.join("etc/systemd/system/embedder.service")).unwrap();
    assert!(
        unit.contains("StandardOutput=append:/var/log/central/embedder.out.log"),
        "{unit}"
    );
    // The folders, made inside the root with their modes.
    assert_eq!(mode(&root.join("var/log/central")), 0o750);
    assert_eq!(mode(&root.join("var/lib/joelclaw/worker")), 0o700);
    assert_eq!(mode(&root.join("var/lib/joelclaw/models")), 0o700);

    // Again: nothing new to make.
    let (code, out, _) = apply(&root, &inv, &[]);
    assert_eq!(code, 0);
    assert!(!out.contains("created folder"), "{out}");
    assert!(out.contains("apply: no changes"), "{out}");
}

#[test]
fn a_root_that_is_a_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("central.toml");
    fs::write(&inv, INVENTORY).unwrap();
    let file = dir.path().join("file");
    fs::write(&file, "").unwrap();
    let (code, _, err) = apply(&file, &inv, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not a folder"), "{err}");
}

const HOME_INVENTORY: &str = r#"
[managers.launchd]
service_account = "clawd"

[[service]]
label = "com.joelclaw.gateway"
manager = "launchd"

[service.config]
program = "/bin/bash"
args = ["-c", "cd /Users/ana/Code/gateway && exec ./run"]
working_dir = "/Users/clawd/gateway"
"#;

#[test]
fn paths_under_a_persons_home_warn_and_strict_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("central.toml");
    fs::write(&inv, HOME_INVENTORY).unwrap();
    let root = dir.path().join("root");

    let (code, out, err) = run(bin()
        .args(["--json", "apply", "--dry-run", "--root"])
        .arg(&root)
        .arg("-i")
        .arg(&inv));
    assert_eq!(code, 0, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    // The person's home inside the shell string is found; the service account's own is not.
    assert_eq!(
        v["result"]["warnings"],
        serde_json::json!([
            "com.joelclaw.gateway: args: cd /Users/ana/Code/gateway && exec ./run is under a person's home"
        ]),
        "{out}"
    );

    let (code, out, err) = apply(&root, &inv, &["--strict"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("nothing was written") && err.contains("/Users/ana/Code"),
        "{err}"
    );
    assert!(!root.exists(), "--strict refusal wrote into the root");
}

#[test]
fn definitions_of_services_that_left_the_inventory_are_reported_and_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("central.toml");
    fs::write(&inv, INVENTORY).unwrap();
    let root = dir.path().join("root");
    let (code, out, err) = apply(&root, &inv, &[]);
    assert_eq!(code, 0, "{out}{err}");

    // Left behind: a plist under the inventory's prefix, a unit (with its timer) the adapter
    // wrote. Not ours: another vendor's plist, a unit written by hand, the agent's own unit.
    let daemons = root.join("Library/LaunchDaemons");
    let units = root.join("etc/systemd/system");
    fs::write(daemons.join("com.joelclaw.old-worker.plist"), "<plist/>").unwrap();
    fs::write(daemons.join("com.vendor.updater.plist"), "<plist/>").unwrap();
    let marker = fs::read_to_string(units.join("embedder.service")).unwrap();
    fs::write(units.join("janitor.service"), &marker).unwrap();
    fs::write(units.join("janitor.timer"), "[Timer]\n").unwrap();
    fs::write(units.join("joelclaw-node.service"), &marker).unwrap();
    fs::write(
        units.join("nginx.service"),
        "[Service]\nExecStart=/bin/true\n",
    )
    .unwrap();

    let (code, out, err) = run(bin()
        .args(["--json", "apply", "--root"])
        .arg(&root)
        .arg("-i")
        .arg(&inv));
    assert_eq!(code, 0, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let left: Vec<&str> = v["result"]["left_inventory"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["label"].as_str().unwrap())
        .collect();
    assert_eq!(left, vec!["janitor", "com.joelclaw.old-worker"], "{out}");
    assert!(
        v["next_actions"][0]["argv"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "--prune"),
        "{out}"
    );
    assert!(
        units.join("janitor.service").exists(),
        "removed without --prune"
    );

    let (code, out, err) = apply(&root, &inv, &["--prune"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("left the inventory: janitor"), "{out}");
    for gone in [
        "etc/systemd/system/janitor.service",
        "etc/systemd/system/janitor.timer",
        "Library/LaunchDaemons/com.joelclaw.old-worker.plist",
    ] {
        assert!(!root.join(gone).exists(), "{gone} still there");
    }
    for kept in [
        "etc/systemd/system/joelclaw-node.service",
        "etc/systemd/system/nginx.service",
        "etc/systemd/system/embedder.service",
        "Library/LaunchDaemons/com.vendor.updater.plist",
        "Library/LaunchDaemons/com.joelclaw.worker.plist",
    ] {
        assert!(root.join(kept).exists(), "{kept} was removed");
    }
}

/// A relay host: one sandboxed user per relay, each service in its own user's launchd domain.
/// Every user a service names is served (not only `[managers.launchd].uid`).
#[test]
fn services_in_several_users_domains_are_written_to_each_users_agents() {
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("relay.toml");
    // uid 0 (home /root) and 65534 (home /nonexistent) exist on every Debian machine.
    fs::write(
        &inv,
        r#"
[[service]]
label = "com.joelclaw.relay-a"
manager = "launchd"

[service.config]
program = "/opt/joelclaw/bin/relay"
scope = { domain = "gui", uid = 0 }

[[service]]
label = "com.joelclaw.relay-b"
manager = "launchd"

[service.config]
program = "/opt/joelclaw/bin/relay"
scope = { domain = "user", uid = 65534 }
"#,
    )
    .unwrap();
    let root = dir.path().join("root");
    let (code, out, err) = apply(&root, &inv, &["--dry-run"]);
    assert_eq!(code, 0, "{out}{err}");
    for plist in [
        "root/Library/LaunchAgents/com.joelclaw.relay-a.plist",
        "nonexistent/Library/LaunchAgents/com.joelclaw.relay-b.plist",
    ] {
        assert!(out.contains(plist), "{plist} not planned:\n{out}");
    }
}
