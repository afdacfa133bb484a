//! The architecture gate (ARCHITECTURE.md's invariants) over this repository, and proof on a
//! scratch tree that it catches what it must.

use std::fs;
use std::path::Path;

use gate::{scan, workspace_rules, Rule};
use workspace_tests::repo_root;

fn rule(name: &str) -> Rule {
    workspace_rules()
        .into_iter()
        .find(|r| r.spec().name == name)
        .unwrap_or_else(|| panic!("no rule {name}"))
}

/// The forbidden word a rule names (kept in the rules file, not in this Rust source, so this
/// file passes the gate it tests).
fn word(name: &str) -> String {
    rule(name).spec().literal.clone().expect("literal rule")
}

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
}

#[test]
fn the_workspace_passes_its_own_gate() {
    let hits = scan(&repo_root(), &workspace_rules()).unwrap().violations;
    assert!(
        hits.is_empty(),
        "architecture gate violations:\n{}",
        hits.iter()
            .map(|h| format!("  {h}\n    why: {}\n", h.why))
            .collect::<String>()
    );
}

#[test]
fn a_launchd_call_in_central_core_fails_the_gate() {
    let dir = tempfile::tempdir().unwrap();
    let launchd = word("launchd-cli-outside-macos-adapter");
    let call = format!("    std::process::Command::new(\"{launchd}\").arg(\"list\");\n");
    write(dir.path(), "crates/adapters-macos/src/launchd.rs", &call);
    write(
        dir.path(),
        "crates/central-core/src/heal.rs",
        &format!("fn heal() {{\n{call}}}\n"),
    );
    let hits = scan(dir.path(), &workspace_rules()).unwrap().violations;
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0].rule, "launchd-cli-outside-macos-adapter");
    assert_eq!(hits[0].path, Path::new("crates/central-core/src/heal.rs"));
    assert_eq!(hits[0].line, 2);
}

#[test]
fn systemd_calls_home_paths_and_adapter_dependencies_fail_the_gate() {
    let dir = tempfile::tempdir().unwrap();
    let systemd = word("systemd-cli-outside-linux-adapter");
    let home = word("developer-home-path");
    write(
        dir.path(),
        "crates/adapters-linux/src/ok.rs",
        &format!("\"{systemd}\"\n"),
    );
    write(
        dir.path(),
        "crates/node-identity/src/lib.rs",
        &format!("\"{systemd}\"\n"),
    );
    write(
        dir.path(),
        "examples/central.toml",
        &format!("program = \"{home}/bin/x\"\n"),
    );
    write(
        dir.path(),
        "crates/central-core/Cargo.toml",
        "[dependencies]\nserde = \"1\"\nbollard.workspace = true\n",
    );
    write(
        dir.path(),
        "crates/process-manager/Cargo.toml",
        "[dependencies]\nadapters-linux = { path = \"../adapters-linux\" }\n",
    );
    // An adapter may depend on bollard.
    write(
        dir.path(),
        "crates/adapters-linux/Cargo.toml",
        "[dependencies]\nbollard = \"0.19\"\n",
    );
    let hits = scan(dir.path(), &workspace_rules()).unwrap().violations;
    let got: Vec<(String, String, usize)> = hits
        .iter()
        .map(|h| (h.rule.clone(), h.path.display().to_string(), h.line))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "adapter-dependency-in-port-or-core".into(),
                "crates/central-core/Cargo.toml".into(),
                3
            ),
            (
                "systemd-cli-outside-linux-adapter".into(),
                "crates/node-identity/src/lib.rs".into(),
                1
            ),
            (
                "adapter-dependency-in-port-or-core".into(),
                "crates/process-manager/Cargo.toml".into(),
                2
            ),
            (
                "developer-home-path".into(),
                "examples/central.toml".into(),
                1
            ),
        ]
    );
}

#[test]
fn the_service_accounts_home_is_not_a_developers_home() {
    let dir = tempfile::tempdir().unwrap();
    let home = word("developer-home-path");
    write(
        dir.path(),
        "examples/central.toml",
        &format!("program = \"{home}claw/bin/x\"\nlogs = \"{home}/logs\"\n"),
    );
    let hits = scan(dir.path(), &workspace_rules()).unwrap().violations;
    let got: Vec<(&str, usize)> = hits.iter().map(|h| (h.rule.as_str(), h.line)).collect();
    assert_eq!(got, vec![("developer-home-path", 2)]);
}

#[test]
fn the_scanner_in_central_core_fails_the_gate() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "crates/central-core/Cargo.toml",
        "[dependencies]\nserde = \"1\"\ngate.workspace = true\nignore = \"0.4\"\n",
    );
    // The node agent may use the gate.
    write(
        dir.path(),
        "crates/joelclaw-node/Cargo.toml",
        "[dependencies]\ngate.workspace = true\n",
    );
    let hits = scan(dir.path(), &workspace_rules()).unwrap().violations;
    let got: Vec<(&str, usize)> = hits.iter().map(|h| (h.rule.as_str(), h.line)).collect();
    assert_eq!(
        got,
        vec![("scanner-in-heal-loop", 3), ("scanner-in-heal-loop", 4)]
    );
}
